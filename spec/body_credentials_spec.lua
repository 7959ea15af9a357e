-- A per-user credential a call sends in its body through `extra_body`, at
-- any depth (LiteLLM's client-side credentials,
-- `user_config.model_list[i].litellm_params.api_key`; Keywords AI's
-- `customer_credentials.openai.api_key`): it was no secret of the call, so
-- a server echoing the request (FastAPI's "extra field" error shows its
-- input) put it whole into err, tostring(err) and the log lines, and the
-- cassette's key and the prompt log wrote it to their files. A string in
-- extra_body under a name like a credential's (`credentials.secret_param`:
-- api_key, token, secret...) is now a secret of that call.
local aigc = require "aigc"
local cjson = require "cjson"
local cli = require "cli"
local logdb = require "logdb"
local scripted = require "scripted"
local texts = require "texts"
local upstream = require "upstream"
local credentials = require "aigc.credentials"

local USER_KEY = "sk-user-Vb7Nm3Qw9Er5Ty1Ui8Op2As"
local PARTNER_TOKEN = "tok-partner-Zx4Cv6Bn8Mq2Wl5Kj"

local function extra_body ()
  return { user_config = { model_list = { { model_name = "mine", litellm_params = { api_key = USER_KEY } } } },
           customer_credentials = { partner = { access_token = PARTNER_TOKEN } }, region = "eu-west-1-long-name" }
end

local function leaks (s)
  for _, k in ipairs { USER_KEY, PARTNER_TOKEN } do
    if s:find(k:sub(3, 14), 1, true) then return true end
  end
  return false
end

describe("a credential sent in extra_body", function ()
  it("is a secret of the call; other fields are not", function ()
    local secrets = credentials.call_credentials { extra_body = extra_body() } or {}
    table.sort(secrets)
    -- (compared, not printed)
    assert.is_true(#secrets == 2 and secrets[1] == USER_KEY and secrets[2] == PARTNER_TOKEN)
  end)

  it("echoed by the server: not in err, tostring(err), the log lines", function ()
    local echo = cjson.encode { detail = { { type = "extra_forbidden", loc = { "body", "user_config" },
                                              input = extra_body().user_config, msg = "Extra inputs" },
                                            { input = "token " .. PARTNER_TOKEN },
                                            { input = extra_body().region } } }
    local srv = scripted.start { "e400 " .. echo }
    local lines = {}
    local c = aigc.client { base_url = srv.base_url, api_key = "sk-client-Qz7Wx9Lk2Rt5", max_retries = 0,
                            log = function (level, msg) lines[#lines + 1] = level .. ": " .. msg end }
    local res, err = c:chat { model = "m", messages = { { role = "user", content = "Hi" } }, extra_body = extra_body() }
    c:close()
    srv.finish()
    assert.is_nil(res)
    assert.equal(400, err.status)
    assert.is_false(leaks(texts.all(err) .. tostring(err) .. table.concat(lines, "\n")))
    assert.is_truthy(texts.all(err):find("eu-west-1-long-name", 1, true))   -- (no secret: shown)
  end)

  it("not in a cassette's key nor in the prompt log", function ()
    local srv = scripted.start { scripted.chat { content = "hi" } }
    local dir, path, log = logdb.open()
    finally(function () logdb.close(dir, log); srv.finish() end)
    local tape = dir .. "/tape.jsonl"
    local c = aigc.client { base_url = srv.base_url, model = "m", prompt_log = log,
                            cassette = { path = tape, mode = "record", proxy = false } }
    assert(c:chat { messages = { { role = "user", content = "Hi" } }, extra_body = extra_body() })
    c:close()
    assert.is_false(leaks(cli.read(tape)), "the cassette")
    log:close()
    log = nil
    local f = assert(io.open(path, "rb"))
    local bytes = f:read("*a")
    f:close()
    assert.is_truthy(bytes:find("eu-west-1-long-name", 1, true))   -- (the params are in it)
    assert.is_false(leaks(bytes), "the prompt log")
  end)

  it("echoed by the upstream of a recording proxy: masked on the tape", function ()
    local live, err, bytes = upstream.recorded([=[
      local sent = buf:sub(h + 4)
      local key, token = sent:match('"api_key":"([^"]*)"'), sent:match('"access_token":"([^"]*)"')
      reply(s, "keys: " .. (key or "") .. " " .. (token or ""))
    ]=], { model = "m" }, { messages = { { role = "user", content = "Hi" } }, extra_body = extra_body() }, finally)
    assert.is_nil(err and err.message)
    assert.is_true(leaks(live.text))   -- (the upstream did echo them: checked, not printed)
    assert.matches("keys: ", bytes, 1, true)
    assert.is_false(leaks(bytes), "the tape")
  end)
end)
