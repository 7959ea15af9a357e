-- A reply that counts no usage (a stream sent without include_usage, a
-- server that ignores it or answers "usage": null) has res.usage nil, as the
-- SDKs' None: aigc.null is truthy, and `if res.usage then ... end` raised.
local aigc = require "aigc"
local devserver = require "devserver"
local scripted = require "scripted"

local USER = { { role = "user", content = "Say something short." } }
local NO_USAGE = { include_usage = false }

-- The README's test of a usage: raises when res.usage is truthy but no table.
local function total_of (res)
  if res.usage then return res.usage.total_tokens end
  return "none"
end

describe("a reply without usage", function ()
  local client
  devserver.fixture(_ENV, function (_, c) client = c end, { model = "aigc-dev" })

  it("a streamed chat without the usage chunk has res.usage nil", function ()
    local res = assert(client:chat { messages = USER, stream = true, stream_options = NO_USAGE })
    assert.is_nil(res.usage)
    assert.equal("none", total_of(res))
    assert.is_string(res.text)
    -- (the same stream with it: a table, as before)
    local with = assert(client:chat { messages = USER, stream = true })
    assert.is_table(with.usage)
    assert.is_number(total_of(with))
  end)

  it("a streamed completion, the iterator's result and a chat_async's too", function ()
    local res = assert(client:complete { prompt = "Once", max_tokens = 5, stream = true, stream_options = NO_USAGE })
    assert.is_nil(res.usage)
    local s = client:stream { messages = USER, stream_options = NO_USAGE }
    local n = 0
    for _ in s:deltas() do n = n + 1 end
    assert.truthy(n > 0)
    local sres = assert(s:result())
    assert.is_nil(sres.usage)
    local req = client:chat_async { messages = USER, stream = function () end, stream_options = NO_USAGE }
    local ares = assert(req:wait())
    assert.is_nil(ares.usage)
  end)

  it("a conversation's reply and a strategy's totals", function ()
    local conv = aigc.conversation { client = client, params = { stream_options = NO_USAGE } }
    local reply, res = conv:say("Hi", { stream = function () end })
    assert.is_string(reply)
    assert.is_nil(res.usage)
    local best = assert(aigc.strategy.best_of { client = client, n = 2,
      params = { messages = USER, stream = true, stream_options = NO_USAGE },
      score = function (text) return #text end })
    assert.is_nil(best.usage)
    assert.equal(2, best.usage_total.requests)
    assert.equal(0, best.usage_total.total_tokens)
    assert.equal(3, client:usage().no_usage)
  end)
end)

describe("a server that sends usage null or none", function ()
  local function with_server (replies, body)
    local s = scripted.start(replies)
    local c = aigc.client { base_url = s.base_url, api_key = "sk-fake-usage", max_retries = 0 }
    local ok, err = pcall(body, c)
    c:close()
    s.finish()
    assert(ok, err)
  end

  it("a non-streamed reply whose usage is null", function ()
    local cjson = require "cjson"
    local body = cjson.encode { id = "c1", object = "chat.completion", model = "m", created = 1,
      choices = { { index = 0, message = { role = "assistant", content = "hi" }, finish_reason = "stop" } },
      usage = cjson.null }
    with_server({ "json " .. body }, function (c)
      local res = assert(c:chat { messages = USER })
      assert.equal("hi", res.text)
      assert.is_nil(res.usage)
      assert.equal("none", total_of(res))
    end)
  end)

  it("a stream from a server that ignores include_usage", function ()
    with_server({ scripted.sse({ { role = "assistant", content = "he" }, { content = "llo" } }, "stop") }, function (c)
      local res = assert(c:chat { messages = USER, stream = true })
      assert.equal("hello", res.text)
      assert.is_nil(res.usage)
    end)
  end)

  it("a stream cut before [DONE]: err.partial has no usage either", function ()
    local chunk = '{"id":"s1","object":"chat.completion.chunk","model":"m","created":1,'
      .. '"choices":[{"index":0,"delta":{"content":"he"},"finish_reason":null}]}'
    with_server({ "sse data: " .. chunk .. "\n\n" }, function (c)
      local res, err = c:chat { messages = USER, stream = true }
      assert.is_nil(res)
      assert.equal("stream", err.kind)
      assert.equal("he", err.partial.choices[1].message.content)
      assert.is_nil(err.partial.usage)
    end)
  end)
end)
