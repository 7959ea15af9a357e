-- A secret option that is blank (only spaces or tabs) is refused as the
-- client is made, naming the option and never echoing the value: sent, it
-- authenticated nothing, and as a secret of 8 bytes or more it redacted
-- every run of as many spaces in every error and log line. A key read from
-- a file with its newline is refused there too (CR, LF).
local aigc = require "aigc"

local URL = "http://127.0.0.1:9/v1"
local AZURE = { azure = true, endpoint = "http://127.0.0.1:9", api_version = "2024-06-01" }

local function with (base, extra)
  local t = {}
  for k, v in pairs(base) do t[k] = v end
  for k, v in pairs(extra) do t[k] = v end
  return t
end

-- The misuse error of aigc.client(opts): it names `field` and holds no
-- byte of the value but what every message has.
local function refused (opts, field, value)
  local ok, err = pcall(aigc.client, opts)
  assert.is_false(ok, field)
  assert.is_string(err)
  assert.truthy(err:find("bad argument #1 to 'client' (" .. field, 1, true), err)
  if value:find("%S") then
    assert.is_nil(err:find(value:match("%S+"), 1, true), err)
  end
  assert.is_nil(err:find("        ", 1, true), err)   -- (8 spaces: no blank value echoed)
  assert.is_nil(err:find("\t", 1, true), err)
end

describe("a blank secret option", function ()
  it("api_key of spaces, a tab: refused, naming opts.api_key", function ()
    for _, key in ipairs { "        ", "\t", " \t  \t    " } do
      refused({ base_url = URL, api_key = key }, "opts.api_key: is blank", key)
    end
  end)

  it("api_key ending in a newline (read from a file) or with a CR: refused, naming opts.api_key", function ()
    for _, key in ipairs { "sk-test-0123456789abcdef\n", "sk-test-0123456789abcdef\r\n", "\n" } do
      refused({ base_url = URL, api_key = key }, "opts.api_key: contains CR, LF or NUL", key)
    end
  end)

  it("Azure's api_key and azure_ad_token: refused, named", function ()
    refused(with(AZURE, { api_key = "            " }), "opts.api_key: is blank", "")
    refused(with(AZURE, { azure_ad_token = "            " }), "opts.azure_ad_token: is blank", "")
    refused(with(AZURE, { azure_ad_token = "eyJ-test-token-0123456789\n" }), "opts.azure_ad_token: contains",
            "eyJ-test")
  end)

  it("a credential header's value, blank: refused, naming the header", function ()
    refused({ base_url = URL, headers = { ["x-api-key"] = "         " } },
            'opts.headers: header "x-api-key" is blank', "")
    refused({ base_url = URL, headers = { ["api-key"] = "\t" } }, 'opts.headers: header "api-key" is blank', "")
  end)

  it("a proxy's or base_url's password, blank: refused, naming the option", function ()
    refused({ base_url = URL, proxy = "http://user:%20%20%20%20%20%20%20%20@127.0.0.1:3128" },
            "opts.proxy: holds a blank secret", "user")
    refused({ base_url = "http://user:%20%20%20%20%20%20%20%20%20@127.0.0.1:9/v1" },
            "opts.base_url: holds a blank secret", "user")
  end)

  it("a credential query parameter, blank: refused, naming it and where it came from", function ()
    refused({ base_url = URL, query = { key = "          " } }, 'opts.query: parameter "key" is blank', "")
    refused({ base_url = URL .. "?code=%20%20%20%20%20%20%20%20%20" }, 'opts.base_url: parameter "code" is blank', "")
  end)

  it("a Basic credential header whose password is blank: refused, naming opts.headers", function ()
    local basic = "Basic " .. require("aigc.util").base64("user:          ")
    refused({ base_url = URL, headers = { Authorization = basic } }, "opts.headers: holds a blank secret", "user")
  end)

  it("$OPENAI_API_KEY and Azure's variables, blank: refused, naming the variable (in a child, its environment)",
     function ()
    local luachild = require "luachild"
    for _, case in ipairs {
      { "OPENAI_API_KEY", "{ base_url = 'http://127.0.0.1:9/v1' }" },
      { "AZURE_OPENAI_API_KEY", "{ azure = true, endpoint = 'http://127.0.0.1:9', api_version = '2024-06-01' }" },
      { "AZURE_OPENAI_AD_TOKEN", "{ azure = true, endpoint = 'http://127.0.0.1:9', api_version = '2024-06-01' }" },
    } do
      local env = { OPENAI_API_KEY = "", AZURE_OPENAI_API_KEY = "", AZURE_OPENAI_AD_TOKEN = "" }   -- ("": unset)
      env[case[1]] = "  \t      "
      local r = luachild.run("local ok, e = pcall(require('aigc').client, " .. case[2] .. ") io.write(tostring(e))",
                             { env = env })
      assert.equal(0, r.status, r.stderr)
      assert.truthy(r.stdout:find("($" .. case[1] .. ": is blank", 1, true), r.stdout)
    end
  end)

  it("none made: a client with an ordinary key keeps runs of spaces in what it scrubs", function ()
    local c = aigc.client { base_url = URL, api_key = "sk-test-0123456789abcdef" }
    local text = "a\t\tb        c        sk-test-0123456789abcdef"
    assert.equal("a\t\tb        c        [redacted]", c._engine:scrub(text))
    c:close()
  end)

  it("an empty key is still no key (a local server's), and a user name alone is no secret", function ()
    local c = aigc.client { base_url = URL, api_key = "" }
    assert.equal("a        b", c._engine:scrub("a        b"))
    c:close()
    c = aigc.client { base_url = "http://user:p4ssw0rd-test-xyz@127.0.0.1:9/v1" }
    assert.equal("a        b [redacted]", c._engine:scrub("a        b p4ssw0rd-test-xyz"))
    c:close()
  end)
end)

-- A call's own credentials (a per-call key, a credential query parameter,
-- an extra_body key, a Basic header's password) that are blank are no
-- secrets of the call: its error text kept its runs of spaces as "[redacted]".
describe("a blank credential of one call", function ()
  local cjson = require "cjson"
  local scripted = require "scripted"
  local b64 = require("aigc.util").base64
  local MESSAGE = "bad:        indented        text"   -- (runs of 8 spaces)
  local BLANK = "        "

  for _, case in ipairs {
    { "api_key", { api_key = BLANK } },
    { "a query key", { query = { key = BLANK } } },
    { "extra_query's key", { extra_query = { access_token = BLANK } } },
    { "extra_body's api_key", { extra_body = { api_key = BLANK } } },
    { "a Basic header's password", { headers = { Authorization = "Basic " .. b64("user:" .. BLANK) } } },
  } do
    it("(" .. case[1] .. ") is not searched: the error's text as the server sent it", function ()
      local srv = scripted.start { "e400 " .. cjson.encode { error = { message = MESSAGE, type = "bad" } } }
      local c = aigc.client { base_url = srv.base_url, api_key = "sk-test-0123456789abcdef", max_retries = 0 }
      local params = { model = "m", messages = { { role = "user", content = "hi" } } }
      for k, v in pairs(case[2]) do params[k] = v end
      local res, err = c:chat(params)
      c:close()
      srv:finish()
      assert.is_nil(res)
      assert.equal(400, err.status)
      assert.equal(MESSAGE, err.message)
    end)
  end
end)
