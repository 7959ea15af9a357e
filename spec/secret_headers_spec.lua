-- A credential sent in a header of any credential-like name is a secret:
-- Azure API Management's `Ocp-Apim-Subscription-Key`, Gemini's
-- `x-goog-api-key`, a gateway's `X-Auth-Token`, a `Cookie`, an
-- `X-Secret`. Before, only Authorization, api-key, x-api-key and
-- Proxy-Authorization were: a server (or gateway) echoing any other one
-- put the key whole into err.headers, tostring(err) and the log lines.
local aigc = require "aigc"
local devserver = require "devserver"

-- (and gateways': Cloudflare AI Gateway's cf-aig-authorization, Portkey's
-- x-portkey-api-key; a JWT in Cloudflare Access's or Google IAP's
-- assertion header, a session's id: not credentials by name before)
local NAMES = { "Ocp-Apim-Subscription-Key", "x-goog-api-key", "X-Auth-Token", "X-Access-Token",
                "Cookie", "X-Secret", "X-Custom-Authentication", "cf-aig-authorization", "x-portkey-api-key",
                "Cf-Access-Jwt-Assertion", "X-Goog-Iap-Jwt-Assertion", "X-JWT", "X-Session-Id", "Session" }

local function value_for (name)   -- distinct, long, no comma (the fault spec's separator)
  return "V-" .. name:gsub("[^%w]", "") .. "-Qz7Wx9Lk2Rt5Yp8"
end

local texts = require "texts"
local contains, all_text = texts.contains, texts.all

describe("a credential in a header of any credential-like name", function ()
  local srv
  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)

  -- The server answers 401 and echoes `value` in a response header, as a
  -- gateway quoting the rejected key does.
  local function echoed (client_headers, call_headers, value, lines)
    local c = aigc.client { base_url = srv.base_url, max_retries = 0, headers = client_headers,
                            log = function (level, msg) lines[#lines + 1] = level .. ": " .. msg end }
    local h = { ["x-aigc-fault"] = "status=401,raw-header=x-echo: " .. value }
    for k, v in pairs(call_headers or {}) do h[k] = v end
    local res, err = c:chat { model = "m", messages = { { role = "user", content = "Hi" } }, headers = h }
    c:close()
    assert.is_nil(res)
    return err
  end

  for _, name in ipairs(NAMES) do
    it("a client's " .. name .. " header: not in the error nor the log lines", function ()
      local value, lines = value_for(name), {}
      local err = echoed({ [name] = value }, nil, value, lines)
      assert.equal(401, err.status)
      assert.equal("[redacted]", err.headers["x-echo"])
      assert.is_false(contains(all_text(err) .. tostring(err) .. table.concat(lines, "\n"), value))
    end)

    it("one call's " .. name .. " header: not in that call's error nor log lines", function ()
      local value, lines = value_for(name), {}
      local err = echoed(nil, { [name] = value }, value, lines)
      assert.equal("[redacted]", err.headers["x-echo"])
      assert.is_false(contains(all_text(err) .. tostring(err) .. table.concat(lines, "\n"), value))
    end)
  end

  -- A value with trailing blanks (a key read from a file or a .env line
  -- "KEY=sk-... "): sent so, and servers strip them; the credential was
  -- taken as the empty word after the last blank, so none was a secret.
  it("a credential with trailing spaces or a tab, the client's or one call's: still a secret", function ()
    local value = value_for("x-api-key")
    for _, header in ipairs { { Authorization = "Bearer " .. value .. " " }, { ["api-key"] = value .. " \t " },
                              { ["x-goog-api-key"] = value .. "\t" } } do
      for _, per_call in ipairs { false, true } do
        local lines = {}
        local err = echoed(not per_call and header or nil, per_call and header or nil, value, lines)
        local what = next(header) .. (per_call and " (one call's)" or " (the client's)")
        assert.equal(401, err.status, what)
        assert.equal("[redacted]", err.headers["x-echo"], what)
        assert.is_false(contains(all_text(err) .. tostring(err) .. table.concat(lines, "\n"), value), what)
      end
    end
  end)

  -- A credential header whose value has more than one word after its
  -- scheme ("Bearer KEY extra", a gateway's "KEY ORG-ID"): only the last
  -- word was a secret, so a server echoing the key showed it whole. Now
  -- every word is one but a known auth scheme's name in front ("Bearer",
  -- "Negotiate", "AWS4-HMAC-SHA256"), which stays shown.
  it("every word of a credential header's value is a secret, but a known auth scheme in front", function ()
    local key, extra = "Kq7Wx9Lk2Rt5Yp8Mn3-first", "Zt4Hv6Jd1Fs0Gb3-second"
    local cases = {
      { { Authorization = key .. " " .. extra }, { key, extra } },
      { { Authorization = "Bearer " .. key .. " " .. extra }, { key, extra } },
      { { ["X-Auth-Token"] = key .. "\t" .. extra .. " " }, { key, extra } },
      { { Authorization = "Negotiate " .. key .. " " .. extra }, { key, extra }, "Negotiate" },
      { { Cookie = "session=" .. key .. "; csrftoken=" .. extra }, { key, extra } },   -- (two cookies)
      { { Authorization = "AWS4-HMAC-SHA256 Credential=" .. key .. ", Signature=" .. extra },
        { key, extra }, "AWS4-HMAC-SHA256" },   -- (the words hold them: "Credential=KEY,")
    }
    for i, case in ipairs(cases) do
      for _, per_call in ipairs { false, true } do
        local what = ("case %d%s"):format(i, per_call and " (one call's)" or " (the client's)")
        for _, word in ipairs(case[2]) do
          local lines = {}
          local echo = (case[3] or "scheme") .. " " .. word
          local err = echoed(not per_call and case[1] or nil, per_call and case[1] or nil, echo, lines)
          assert.equal(401, err.status, what)
          assert.equal((case[3] or "scheme") .. " [redacted]", err.headers["x-echo"], what .. ": " .. word)
          local text = all_text(err) .. tostring(err) .. table.concat(lines, "\n")
          assert.is_false(contains(text, key), what)
          assert.is_false(contains(text, extra), what)
        end
      end
    end
  end)

  -- An HTTP Basic credential given as a header: its base64 was the only
  -- secret, so a server rejecting it with the user and password decoded
  -- showed them whole (a base_url's "user:password@" was redacted decoded).
  it("a Basic credential in a header, the client's or one call's: its password echoed decoded is redacted", function ()
    local password = "pw-Qz7Wx9Lk2Rt5Yp8Mn3"
    local header = { Authorization = "Basic " .. require("b64")("bob:" .. password) }
    for _, per_call in ipairs { false, true } do
      for _, echo in ipairs { "bob:" .. password, "password " .. password .. " refused" } do
        local lines = {}
        local err = echoed(not per_call and header or nil, per_call and header or nil, echo, lines)
        local what = echo .. (per_call and " (one call's)" or " (the client's)")
        assert.equal(401, err.status, what)
        assert.is_false(contains(all_text(err) .. tostring(err) .. table.concat(lines, "\n"), password), what)
        assert.matches("[redacted]", err.headers["x-echo"], 1, true)
      end
    end
  end)

  it("other headers are not secrets: an Idempotency-Key, a User-Agent, aigc's cassette key stay shown", function ()
    local value = "idem-Qz7Wx9Lk2Rt5Yp8"
    for _, name in ipairs { "Idempotency-Key", "User-Agent", "OpenAI-Project", "X-Keyboard", "X-Aigc-Cassette-Key" } do
      local err = echoed({ [name] = value }, nil, value, {})
      assert.equal(value, err.headers["x-echo"], name)
    end
  end)

  it("the bundled server's records keep no such header's value; an Idempotency-Key stays", function ()
    local h = { ["Idempotency-Key"] = "idem-Qz7Wx9Lk2Rt5Yp8" }
    for _, name in ipairs(NAMES) do h[name] = value_for(name) end
    local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", max_retries = 0 }
    assert(c:chat { messages = { { role = "user", content = "Hi" } }, headers = h })
    c:close()
    local last = srv:last()
    for _, name in ipairs(NAMES) do
      assert.equal("<redacted len=" .. #value_for(name) .. ">", last.headers[name:lower()], name)
    end
    assert.equal("idem-Qz7Wx9Lk2Rt5Yp8", last.headers["idempotency-key"])
  end)

  it("the aigc command refuses a config file whose client headers hold such a credential", function ()
    local cli = require "cli"
    local home = cli.home()
    local value = value_for("X-Auth-Token")
    cli.write(home .. "/config.lua", '{ client = { headers = { ["X-Auth-Token"] = "' .. value .. '" } } }')
    local r = cli.run({ "Hi" }, { home = home, base_url = srv.base_url })
    cli.rmdir(home)
    assert.equal(2, r.code, r.stderr)
    assert.matches('client.headers%["X%-Auth%-Token"%] is a secret, which a config file may not hold', r.stderr)
    assert.is_false(contains(r.stderr .. r.stdout, value))
  end)

  it("the aigc command refuses a credential given with -o (a command line is shown by ps)", function ()
    local cli = require "cli"
    local home = cli.home()
    local key = "sk-proj-Qz7Wx9Lk2Rt5Yp8Mn4Bv6Cx"
    for _, case in ipairs {
      { "api_key=" .. key, "-o api_key: " },
      { "azure_ad_token=" .. key, "-o azure_ad_token: " },
      { 'headers={"X-Auth-Token":"' .. key .. '"}', "-o headers.X-Auth-Token: " },
      { 'extra_headers={"Authorization":"Bearer ' .. key .. '"}', "-o extra_headers.Authorization: " },
      { 'extra_query={"key":"' .. key .. '"}', "-o extra_query.key: " },
    } do
      local r = cli.run({ "--no-log", "-o", case[1], "Hi" }, { home = home, base_url = srv.base_url })
      assert.equal(2, r.code, case[1] .. ": " .. r.stderr)
      assert.equal(1, select(2, r.stderr:gsub("\n", "")), r.stderr)   -- one line
      assert.is_true(r.stderr:find(case[2] .. "a secret on the command line is visible to every user (ps)", 1, true)
                     ~= nil, r.stderr)
      assert.is_false(contains(r.stderr .. r.stdout, key))
    end
    -- a param that only ends like one is not refused
    local r = cli.run({ "--no-log", "-o", "prompt_cache_key=abc", "-o", 'headers={"X-Trace":"1"}', "Hi" },
                      { home = home, base_url = srv.base_url })
    cli.rmdir(home)
    assert.equal(0, r.code, r.stderr)
  end)
end)
