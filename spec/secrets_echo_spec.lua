-- Secrets a server echoes transformed, and secrets the command's own lines
-- show: an error body holding the key upper-cased, lower-cased, hex- or
-- percent-encoded, base64'd or JSON-escaped (a '+' as .NET's "\u002B")
-- is scrubbed, at the 64 KiB cut too; a
-- config file's base_url with a password or a query key is refused; the
-- `aigc run --batch` progress line scrubs the batch's status.
local aigc = require "aigc"
local cjson = require "cjson"
local cli = require "cli"
local devserver = require "devserver"
local oneshot = require "oneshot"
local scripted = require "scripted"
local base64 = require "b64"

local KEY = "sk-proj-" .. ("Zx81QwErTy7uIoPaSdFgHjKl3ZxCvBnM0qWeRtYuIoP"):rep(2)
-- A key with characters percent-encoding escapes ('/', '+', '='), none
-- of its pieces between them 12 bytes long.
local SLASH_KEY = "Ab3/Xy9+Qw7=Zr5/Tp1+Mn4=Kd8/Lq2+Vw6="

-- A client holding KEY, for the `aigc run` code that scrubs with it (no
-- server: nothing is sent).
local function key_client () return aigc.client { base_url = "http://127.0.0.1:9/v1", api_key = KEY } end

local function hex (s)
  return (s:gsub(".", function (c) return string.format("%02x", c:byte()) end))
end
local function percent (s)
  return (s:gsub("[^%w%-%._~]", function (c) return string.format("%%%02X", c:byte()) end))
end

-- What a server may send back of a secret: every form the scrubber
-- promises to find, each a list of (text, pieces to look for).
local function forms_of (secret)
  return {
    upper = secret:upper(), lower = secret:lower(), hex = hex(secret), HEX = hex(secret):upper(),
    percent = percent(secret), percent_lower = percent(secret):lower(),
    base64 = base64(secret), bearer64 = base64("Bearer " .. secret),
    -- (a JSON text in a string: a gateway wrapping the upstream's body)
    json = (secret:gsub("[/\\\"]", "\\%0")),
    -- (the same, by .NET's System.Text.Json, an ASP.NET gateway's default
    -- encoder: '+' as "\u002B", HTML's characters too, '\' as "\\")
    dotnet = (secret:gsub("[+<>&'\"`\\]", function (c)
      return c == "\\" and "\\\\" or string.format("\\u%04X", c:byte())
    end)),
  }
end

-- Whether s holds 12 bytes in a row of a form of a secret, in any case
-- (the pieces of base64 forms: 12 characters inside them, away from the
-- ends that other bytes decide), or ends with the first 8 of one.
local RUN = 12
local function leak (s, secret)
  local hay = s:lower()
  for name, form in pairs(forms_of(secret)) do
    local inner = (name == "base64" or name == "bearer64") and form:sub(3, -4) or form
    inner = inner:lower()
    for i = 1, #inner - RUN + 1 do
      if hay:find(inner:sub(i, i + RUN - 1), 1, true) then return name end
    end
  end
  local low = secret:lower()
  for n = 8, #secret - 1 do
    if hay:sub(-n) == low:sub(1, n) then return "cut start" end
  end
end

local function strings_of (v, out, seen)
  out, seen = out or {}, seen or {}
  if type(v) == "string" then out[#out + 1] = v
  elseif type(v) == "table" and not seen[v] then
    seen[v] = true
    for k, x in pairs(v) do strings_of(k, out, seen); strings_of(x, out, seen) end
  end
  return out
end

local function assert_clean (v, secret, what)
  for _, s in ipairs(strings_of(v)) do
    local form = leak(s, secret)
    if form then error(what .. " leaks the secret (" .. form .. " form)", 2) end
  end
end

describe("scrubbing transformed echoes", function ()
  it("a key upper-cased, lower-cased, hex, percent-encoded, base64'd or JSON-escaped (\\/, .NET's \\u002B) "
     .. "in an error body: scrubbed", function ()
    for _, secret in ipairs { KEY, SLASH_KEY } do
      local forms, names = forms_of(secret), {}
      for name in pairs(forms) do names[#names + 1] = name end
      table.sort(names)
      local replies = {}
      for i, name in ipairs(names) do
        replies[i] = "e400 " .. cjson.encode { error = { message = "Invalid key " .. forms[name] .. " given",
                                                        details = { seen = "<" .. forms[name] .. ">" } } }
      end
      local srv = scripted.start(replies)
      local lines = {}
      local client = aigc.client { base_url = srv.base_url, api_key = secret, max_retries = 0,
                                   log = function (_, msg) lines[#lines + 1] = msg end }
      for _, name in ipairs(names) do
        local res, err = client:chat { model = "m", messages = { { role = "user", content = "Hi" } } }
        assert.is_nil(res)
        assert.equal(400, err.status)
        assert_clean(err, secret, name .. ": err")
        assert_clean(tostring(err), secret, name .. ": tostring(err)")
        -- (a base64 form keeps the few characters at its ends that other bytes decide)
        local want = (name == "base64" or name == "bearer64") and "[redacted]" or "Invalid key [redacted] given"
        assert.matches(want, err.message, 1, true)
        assert.matches(want == "[redacted]" and want or "<[redacted]>", err.body.error.details.seen, 1, true)
      end
      assert_clean(lines, secret, "a log line")
      client:close()
      srv.finish()
    end
  end)

  it("ordinary text (hex, words, a key's public prefix in capitals) is not blanked", function ()
    local client = aigc.client { base_url = "http://127.0.0.1:9/v1", api_key = KEY }
    local text = "SK-PROJ- keys; " .. hex("hello world, ordinary text") .. " %2F%2B ZX81 QWERTY"
    assert.equal(text, client._engine:scrub(text))
    client:close()
  end)

  it("a key upper-cased at the 64 KiB cut of a text body: its start is redacted", function ()
    local body = ("x"):rep(65536 - 10) .. KEY:upper() .. " trailing"
    local srv = scripted.start { "e400 " .. body }
    local client = aigc.client { base_url = srv.base_url, api_key = KEY, max_retries = 0 }
    local res, err = client:chat { model = "m", messages = { { role = "user", content = "Hi" } } }
    assert.is_nil(res)
    assert.is_string(err.body)
    assert.equal(("x"):rep(65536 - 10) .. "[redacted]", err.body)
    assert_clean(err, KEY, "err")
    client:close()
    srv.finish()
  end)

  it("a key the server sends a byte at a time (split over many reads): scrubbed", function ()
    local srv = devserver.start()
    local client = aigc.client { base_url = srv.base_url, api_key = KEY, max_retries = 0, timeout = 60 }
    local res, err = client:chat { model = "m", messages = { { role = "user", content = "Hi" } },
                                   headers = { ["x-aigc-fault"] = "echo-key,status=401,drip=1" } }
    assert.is_nil(res)
    assert.equal(401, err.status)
    assert.matches("Incorrect API key provided: [redacted].", err.message, 1, true)
    assert_clean(err, KEY, "err")
    client:close()
    srv:stop()
  end)
end)

describe("a log line's long path", function ()
  local srv
  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)

  -- The line a streamed chat to base_url logs when it is sent.
  local function logged (base_url)
    local lines = {}
    local client = aigc.client { base_url = base_url, api_key = KEY, max_retries = 0,
                                 log = function (_, msg) lines[#lines + 1] = msg end }
    client:chat { model = "m", messages = { { role = "user", content = "Hi" } }, stream = function () end }
    client:close()
    for _, l in ipairs(lines) do
      if l:find("^POST ") then return l, lines end
    end
    error("no POST line logged")
  end

  it("is cut at a character, with its mark, and keeps ' (stream)'", function ()
    -- "/v1/" then 2-byte characters: byte 255 is the second of one
    local line = logged(srv.base_url .. "/" .. ("\195\169"):rep(200))
    assert.matches(" (stream)", line, 1, true)
    assert.matches("\195\169\226\128\166 (stream)", line, 1, true)   -- "é… (stream)": whole characters
    local path = line:match("^POST (.-)\226\128\166 %(stream%)$")
    assert.is_string(path)
    assert.equal(254, #path)
  end)

  it("is not cut inside the key (the start of a cut key then ' (stream)' was shown)", function ()
    -- "/v1/" and 242 bytes: the cut at 255 falls 9 bytes into the key
    local line, lines = logged(srv.base_url .. "/" .. ("a"):rep(242) .. KEY)
    assert_clean((line:gsub(" %(stream%)$", "")), KEY, "the log line")
    assert.matches(("a"):rep(242) .. "\226\128\166 (stream)", line, 1, true)
    -- and the line of its end ("POST <path> -> 404 in 0.001 s")
    local ended = 0
    for _, l in ipairs(lines) do
      local path = l:match("^POST (.-) %-> ")
      if path then
        ended = ended + 1
        assert_clean(path, KEY, "the end's log line")
        assert.equal(("a"):rep(242) .. "\226\128\166", path:sub(-245))
      end
    end
    assert.equal(1, ended)
  end)
end)

describe("aigc run --batch progress line", function ()
  it("scrubs the batch's id and status of the run's key", function ()
    local run, client = require "aigc.cli.run", key_client()
    local line = run.progress_line({ done = 1, total = 2, ok = 1, failed = 0, tokens = 3, rate = 1,
                                     batch = { id = "batch_" .. KEY, status = "failed: bad key " .. KEY:upper() } },
                                   nil, client)
    assert_clean(line, KEY, "the progress line")
    assert.matches("batch batch_[redacted] failed: bad key [redacted]", line, 1, true)
    client:close()
  end)
end)

describe("aigc config: a credential in a URL", function ()
  local srv, home
  local aigc_cmd = cli.fixture(_ENV, function (s, h) srv, home = s, h end)

  it("refuses base_url with a password or a query key (client or endpoint), and shows none", function ()
    local PASSWORD = "Hunter2-Vq8ZrT3mWx5LpK9sNb4Yd"
    local port = srv.base_url:match(":(%d+)/")
    local cases = {
      { '{ client = { base_url = "http://bob:' .. PASSWORD .. '@127.0.0.1:' .. port .. '/v1" } }', "client.base_url" },
      { '{ endpoint = "w", endpoints = { w = { base_url = "http://127.0.0.1:' .. port .. '/v1?api-key='
        .. PASSWORD .. '" } } }', "endpoints.w.base_url" },
      { '{ endpoint = "w", endpoints = { w = { base_url = "http://127.0.0.1:' .. port .. '/v1?key='
        .. PASSWORD .. '" } } }', "endpoints.w.base_url" },
      { '{ endpoint = "w", endpoints = { w = { base_url = "http://127.0.0.1:' .. port .. '/v1", query = { key = "'
        .. PASSWORD .. '" } } } }', "endpoints.w.query.key" },
    }
    for _, c in ipairs(cases) do
      cli.write(home .. "/config.lua", c[1])
      local r = aigc_cmd { "Hi" }
      assert.equal(2, r.code, r.stderr)
      assert.matches(c[2], r.stderr, 1, true)
      assert.matches("a config file may not hold", r.stderr, 1, true)
      assert.is_nil(r.stderr:find(PASSWORD, 1, true))
      assert.is_nil(r.stdout:find(PASSWORD, 1, true))
    end
    assert.equal(0, #srv:requests())
  end)
end)

describe("Azure details", function ()
  it("a gateway's error with only apim-request-id: err.request_id is it (x-request-id first when both)", function ()
    local body = '{"statusCode": 429, "message": "Rate limit is exceeded."}'
    local client = aigc.client { base_url = oneshot.apim_server("429 Too Many Requests", body, finally), api_key = "k",
                                 max_retries = 0 }
    local _, err = client:chat { model = "m", messages = { { role = "user", content = "Hi" } } }
    assert.equal(429, err.status)
    assert.equal("6f1c2a9e-apim", err.request_id)
    assert.matches("[request 6f1c2a9e-apim]", tostring(err), 1, true)
    _, err = client:chat { model = "m", messages = { { role = "user", content = "Hi" } } }
    assert.equal("req_openai", err.request_id)
    client:close()
  end)

  it("aigc.batch refuses an option it does not know, naming it", function ()
    local client = aigc.client { base_url = "http://127.0.0.1:9/v1", api_key = "k" }
    local reqs = { { custom_id = "a", body = { model = "m", messages = { { role = "user", content = "Hi" } } } } }
    local ok, msg = pcall(aigc.batch.create, client, reqs, { completion_windw = "24h" })
    assert.is_false(ok)
    assert.matches("opts.completion_windw: unknown option (did you mean completion_window?)", msg, 1, true)
    ok, msg = pcall(aigc.batch.wait, client, "batch_1", { timout = 5 })
    assert.is_false(ok)
    assert.matches("opts.timout: unknown option (did you mean timeout?)", msg, 1, true)
    ok, msg = pcall(aigc.batch.wait, client, "batch_1", { endpoint = "/v1/embeddings" })   -- (create's, not wait's)
    assert.is_false(ok)
    assert.matches("opts.endpoint: unknown option", msg, 1, true)
    ok, msg = pcall(aigc.batch.run, client, reqs, { api_version = "2024-10-21" })
    assert.is_false(ok)
    assert.matches("opts.api_version: unknown option", msg, 1, true)
    client:close()
  end)
end)

describe("a cassette recorded through the proxy", function ()
  local SCRIPT = [[
    local oneshot = require "oneshot"
    local server = oneshot.listen()
    server:settimeout(30)
    local c = oneshot.read_request(server)
    local body = arg[1]
    c:send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nx-debug: " .. arg[2] .. "\r\nContent-Length: "
           .. #body .. "\r\nConnection: close\r\n\r\n" .. body)
    c:close()
  ]]
  local function reply_body (text)
    return cjson.encode { id = "c1", object = "chat.completion", model = "m", created = 1,
      choices = { { index = 0, message = { role = "assistant", content = text }, finish_reason = "stop" } } }
  end

  -- Records one call through the proxy to an upstream answering `body` (and
  -- `header` in x-debug): the reply, and the tape's text.
  local function record (body, header)
    local port, child = oneshot.start(SCRIPT, { body, header })
    local path = os.tmpname()
    local rec = aigc.client { base_url = "http://127.0.0.1:" .. port .. "/v1", api_key = SLASH_KEY, max_retries = 0,
                              cassette = { path = path, mode = "record", proxy = true } }
    local res = assert(rec:chat { model = "m", messages = { { role = "user", content = "Hi" } } })
    rec:close()
    child:wait(10)
    local f = assert(io.open(path, "rb"))
    local tape = f:read("*a")
    f:close()
    os.remove(path)
    assert.matches('"raw"', tape, 1, true)
    return res, tape
  end

  it("holds no key the upstream echoes upper-cased, hex or percent-encoded", function ()
    local forms = forms_of(SLASH_KEY)
    local text = "Your key: " .. forms.upper .. " / " .. forms.HEX .. " / " .. forms.percent_lower
    local res, tape = record(reply_body(text), forms.hex)
    assert.equal(text, res.text)   -- (the reply is the caller's: not altered)
    assert.matches("Your key: [redacted]", tape, 1, true)
    assert_clean(cjson.decode(tape:match("[^\n]+")), SLASH_KEY, "the tape")
    assert_clean(tape, SLASH_KEY, "the tape's text")
  end)

  -- (forms the engine finds in errors, which the proxy's own list lacked)
  it("holds no key echoed percent-encoded byte by byte, nor base64'd upper- or lower-cased", function ()
    local every = SLASH_KEY:gsub(".", function (c) return string.format("%%%02X", c:byte()) end)
    local echoes = { every, base64(SLASH_KEY:upper()), base64(("Bearer " .. SLASH_KEY):lower()) }
    local text = "Your key: " .. table.concat(echoes, " / ")
    local res, tape = record(reply_body(text), "none")
    assert.equal(text, res.text)   -- (the reply is the caller's: not altered)
    assert.matches("Your key: [redacted]", tape, 1, true)
    local recorded = table.concat(strings_of(cjson.decode(tape:match("[^\n]+"))), "\n")
    for i, echo in ipairs(echoes) do
      local inner = i == 1 and echo or echo:sub(4, -4)   -- (a base64 form's ends: decided by other bytes)
      for j = 1, #inner - 11 do
        assert.is_nil(recorded:find(inner:sub(j, j + 11), 1, true), "echo " .. i .. " in the tape")
      end
    end
  end)

  it("holds no key a .NET upstream echoes in its JSON, a '+' written \\u002B", function ()
    -- (System.Text.Json's default: the bytes on the wire hold the escapes)
    local body = reply_body("Your key: KEY."):gsub("KEY", (forms_of(SLASH_KEY).dotnet:gsub("%%", "%%%%")))
    local res, tape = record(body, "none")
    assert.equal("Your key: " .. SLASH_KEY .. ".", res.text)   -- (the reply is the caller's: not altered)
    assert.matches("Your key: [redacted]", tape, 1, true)
    assert_clean(cjson.decode(tape:match("[^\n]+")), SLASH_KEY, "the tape")
  end)
end)

describe("aigc run --batch report", function ()
  it("shows the batch's id and an abandoned batch's status and error scrubbed", function ()
    local run, client = require "aigc.cli.run", key_client()
    local s = { total = 1, skipped = 0, ok = 1, failed = 0, passed = 1, pass_rate = 1, usage = {}, elapsed = 1,
                requests = 1, retries = 0, rate_limited = 0, assertions = {}, results = {},
                batch_id = "batch_" .. KEY,
                abandoned_batch = { id = "batch_old", status = "cancelled " .. KEY:lower(),
                                    error = "refused: " .. hex(KEY) } }
    run.scrub_summary(s, client)
    client:close()
    local report = run.report(s)
    assert_clean(report, KEY, "the report")
    assert.matches("through the Batch API: batch batch_[redacted]", report, 1, true)
    s.abandoned_batch.error = nil
    assert.matches("was cancelled (cancelled [redacted])", run.report(s), 1, true)
  end)
end)

describe("a log line cut at 1 KiB", function ()
  local function valid_utf8 (s)
    local i, n = 1, #s
    while i <= n do
      local c = s:byte(i)
      local len = c < 128 and 1 or c >= 240 and 4 or c >= 224 and 3 or c >= 194 and 2 or nil
      if not len or i + len - 1 > n then return false end
      for k = i + 1, i + len - 1 do
        local d = s:byte(k)
        if d < 128 or d > 191 then return false end
      end
      i = i + len
    end
    return true
  end

  it("is cut at a character (a server's long message of 2-byte characters)", function ()
    -- (two messages one byte apart: whatever the line's start, one of them is cut inside a character)
    local replies = {}
    for i, pad in ipairs { "", "x" } do
      replies[i] = "e400 " .. cjson.encode { error = { message = pad .. ("\195\169"):rep(700) } }
    end
    local srv = scripted.start(replies)
    local lines = {}
    local client = aigc.client { base_url = srv.base_url, api_key = KEY, max_retries = 0,
                                 log = function (level, msg) if level == "warn" then lines[#lines + 1] = msg end end }
    for _ = 1, 2 do
      local _, err = client:chat { model = "m", messages = { { role = "user", content = "Hi" } } }
      assert.equal(400, err.status)
    end
    client:close()
    srv.finish()
    assert.equal(2, #lines)
    for _, l in ipairs(lines) do
      assert.is_true(#l > 1000)
      assert.is_true(valid_utf8(l), "a log line is not valid UTF-8")
    end
  end)
end)
