-- A call's own short credential (a per-call Basic password "p", a 3-byte
-- token) was replaced everywhere in a cassette's key, inside words too:
-- "com[redacted]letions". The tape then missed for the same call made
-- with another password, the very replay a cassette is for. Short
-- secrets are replaced where they stand as words, as src/redact.c
-- searches them; a long one anywhere, as before.
local aigc = require "aigc"
local credentials = require "aigc.credentials"
local devserver = require "devserver"
local cli = require "cli"
local b64 = require "b64"

local function shown () return "[redacted]" end

describe("credentials.replace_secrets", function ()
  it("replaces a short secret as a word, never inside one", function ()
    local key = 'POST /chat/completions {"password":"p","q":"up","u":"u:p@x"}'
    assert.equal('POST /chat/completions {"password":"[redacted]","q":"up","u":"u:[redacted]@x"}',
                 credentials.replace_secrets(key, { "p" }, shown))
  end)

  it("replaces a long secret anywhere, in its JSON form too", function ()
    local s = credentials.replace_secrets('x sk-long-secret-1234y "sk-long\\"secret"',
                                          { "sk-long-secret-1234", 'sk-long"secret' }, shown)
    assert.equal('x [redacted]y "[redacted]"', s)
  end)
end)

describe("a cassette of a call with its own short Basic password", function ()
  local dir, srv
  before_each(function () dir, srv = cli.home(), devserver.start { pause_ms = 1 } end)
  after_each(function () srv:stop(); cli.rmdir(dir) end)

  local function call (path, mode, password)
    local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", api_key = "sk-fake-cassette-0123",
                            max_retries = 0, cassette = { path = path, mode = mode, proxy = false } }
    local res, err = c:chat { messages = { { role = "user", content = "Hi" } }, temperature = 0,
                              headers = { Authorization = "Basic " .. b64("u:" .. password) } }
    c:close()
    return res, err
  end

  it("replays for the same call made with another password", function ()
    local path = dir .. "/tape.jsonl"
    assert(call(path, "record", "p"))
    local text = assert(io.open(path)):read("*a")
    assert.truthy(text:find("/chat/completions", 1, true))
    local res, err = call(path, "replay", "q")
    assert.is_nil(err and tostring(err))
    assert.equal("Hello! How can I help you today?", res.text)
  end)
end)
