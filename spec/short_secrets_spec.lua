-- A short key (under 8 bytes), as a local server takes ("sk-1"), was never
-- redacted: a server echoing it (llama.cpp-style "Incorrect API key
-- provided: sk-1", a request id "req_sk-1") put it into err.message,
-- err.headers, tostring(err) and the log lines. Now one of 4 to 7 bytes
-- holding a letter and a digit is redacted where it stands as a whole
-- word; a placeholder word ("EMPTY", "ollama", "no-key") or a number is
-- not, since as a word it is ordinary text the redaction would mangle.
local aigc = require "aigc"
local devserver = require "devserver"

local texts = require "texts"
local contains, all_text = texts.contains, texts.all

describe("a short key", function ()
  local srv
  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)

  local function echoed (key, lines)
    local c = aigc.client { base_url = srv.base_url, api_key = key, max_retries = 0,
                            log = function (level, msg) lines[#lines + 1] = level .. ": " .. msg end }
    local res, err = c:chat { model = "m", messages = { { role = "user", content = "Hi" } },
                              headers = { ["x-aigc-fault"] = "echo-key,status=401" } }
    c:close()
    assert.is_nil(res)
    return err
  end

  for _, key in ipairs { "sk-1", "key42", "sk-1234" } do
    it(key .. " echoed by a server: not in the error, tostring(err) nor the log lines", function ()
      local lines = {}
      local err = echoed(key, lines)
      assert.equal(401, err.status)
      assert.equal("req_[redacted]", err.request_id)
      assert.equal("[redacted]", err.headers["x-echo"])
      assert.equal("[redacted]", err.body.error.details.key)
      assert.is_true(#lines > 0)
      local text = all_text(err) .. "\n" .. tostring(err) .. "\n" .. table.concat(lines, "\n")
      for word in text:gmatch("[%w%-]+") do assert.not_equal(key, word) end
      assert.is_false(contains(text, " " .. key))
    end)
  end

  it("is redacted only as a whole word: ordinary text around it is kept", function ()
    local c = aigc.client { base_url = "http://127.0.0.1:1/v1", api_key = "sk-1" }
    local scrub = function (s) return c._engine:scrub(s) end
    assert.equal("[redacted]", scrub("sk-1"))
    assert.equal("key [redacted]. req_[redacted] (\"[redacted]\")", scrub("key sk-1. req_sk-1 (\"sk-1\")"))
    assert.equal("task-1 sk-12 ask-1 sk-1x", scrub("task-1 sk-12 ask-1 sk-1x"))
    c:close()
  end)

  it("a call's own short key (a per-call header) is redacted from that call's error", function ()
    local c = aigc.client { base_url = srv.base_url, max_retries = 0 }
    local _, err = c:chat { model = "m", messages = { { role = "user", content = "Hi" } },
                            headers = { ["x-aigc-fault"] = "echo-key,status=401", ["api-key"] = "az-7" } }
    c:close()
    assert.equal("[redacted]", err.headers["x-echo"])
    assert.is_false(contains(tostring(err), "az-7"))
  end)

  it("a placeholder word or a number, or under 4 bytes, is not: it would blank ordinary text", function ()
    for _, key in ipairs { "EMPTY", "ollama", "no-key", "1234", "k1" } do
      local c = aigc.client { base_url = "http://127.0.0.1:1/v1", api_key = key }
      local text = "ollama pull llama3: 1234 tokens, EMPTY no-key k1"
      assert.equal(text, c._engine:scrub(text), key)
      c:close()
    end
  end)

  -- (README: the rule is the same for a proxy's password; one of letters
  -- only is a word of ordinary text, "hunter" as "hello" would be)
  it("a proxy's short password of letters only is not either; with a digit it is, as a word", function ()
    local text = "the hunter said hello to hunter7 and hello7"
    for _, pass in ipairs { "hunter", "hello" } do
      local c = aigc.client { base_url = "http://127.0.0.1:1/v1", proxy = "http://bob:" .. pass .. "@127.0.0.1:1" }
      assert.equal(text, c._engine:scrub(text), pass)
      c:close()
    end
    local c = aigc.client { base_url = "http://127.0.0.1:1/v1", proxy = "http://bob:hunter7@127.0.0.1:1" }
    local scrubbed = c._engine:scrub(text)
    c:close()
    assert.is_nil(scrubbed:find("hunter7", 1, true))
    assert.truthy(scrubbed:find("the hunter said hello to ", 1, true))
  end)
end)
