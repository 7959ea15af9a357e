-- params.extra_body (as the official SDKs' extra_body): fields sent in the
-- body as they are, for a server's field named as one of aigc's per-call
-- options -- vLLM's integer `priority` was a misuse error and could not be
-- sent. The same body for chat (plain and streamed), completions,
-- Responses, the cache's keys and the runner's batch lines.

local aigc = require "aigc"
local cassette = require "aigc.cassette"
local cjson = require "cjson"
local devserver = require "devserver"
local runner = require "aigc.runner"

describe("params.extra_body", function ()
  local srv, client
  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)
  before_each(function ()
    srv:reset()
    client = aigc.client { base_url = srv.base_url, model = "m", max_retries = 0 }
  end)
  after_each(function () client:close() end)

  local function last_sent ()
    local r = srv:last()
    return r.body_json, r.body
  end

  it("sends its fields at the top of the body: vLLM's integer priority, with aigc's own priority too", function ()
    assert(client:chat { messages = { { role = "user", content = "hi" } }, priority = "background",
                         extra_body = { priority = 5, top_k = 3 } })
    local body, raw = last_sent()
    assert.equal(5, body.priority)
    assert.equal(3, body.top_k)
    assert.is_nil(body.extra_body)
    assert.equal(1, select(2, raw:gsub('"priority"', "")))   -- aigc's own stays out
  end)

  it("a field in both the params and extra_body is sent once, extra_body's (as the SDKs)", function ()
    assert(client:chat { messages = { { role = "user", content = "hi" } }, temperature = 0.2,
                         extra_body = { temperature = 0.7 } })
    local body, raw = last_sent()
    assert.equal(0.7, body.temperature)
    assert.equal(1, select(2, raw:gsub('"temperature"', "")))
  end)

  it("the same for a stream, completions and Responses", function ()
    local res = assert(client:chat { messages = { { role = "user", content = "hi" } }, stream = true,
                                     extra_body = { priority = 1 } })
    assert.is_string(res.text)
    local body = last_sent()
    assert.equal(1, body.priority)
    assert.is_true(body.stream)
    assert.is_true(body.stream_options.include_usage)
    assert(client:complete { prompt = "hi", extra_body = { priority = 2 } })
    body = last_sent()
    assert.equal(2, body.priority)
    assert.equal("hi", body.prompt)
    assert(client:respond { input = "hi", extra_body = { priority = 3 } })
    body = last_sent()
    assert.equal(3, body.priority)
    assert.is_nil(body.extra_body)
  end)

  it("its stream_options replace aigc's default", function ()
    assert(client:chat { messages = { { role = "user", content = "hi" } }, stream = true,
                         extra_body = { stream_options = aigc.null } })
    local _, raw = last_sent()
    assert.equal(1, select(2, raw:gsub('"stream_options":null', "")))
    assert.equal(1, select(2, raw:gsub('"stream_options"', "")))
  end)

  it("misuse: not a table, model or stream in it, a bad value -- errors naming the field", function ()
    local msgs = { { role = "user", content = "hi" } }
    local function refused (extra, pattern)
      local ok, e = pcall(client.chat, client, { messages = msgs, extra_body = extra })
      assert.is_false(ok)
      assert.matches(pattern, tostring(e))
    end
    refused("x", "params%.extra_body: table expected")
    refused({ model = "other" }, "params%.extra_body%.model: aigc's own field")
    refused({ stream = true }, "params%.extra_body%.stream: aigc's own field")
    refused({ x = 0 / 0 }, "params%.extra_body%.x: cannot encode NaN")
    refused(setmetatable({}, { __index = { priority = 1 } }), "params%.extra_body: a plain table %(no metatable%)")
    assert.equal(0, srv:stats().requests_total)
  end)

  it("a conversation's params carry it to every say; misuse there is refused when made", function ()
    local conv = aigc.conversation { client = client, params = { extra_body = { priority = 4 } } }
    assert(conv:say("hi"))
    assert.equal(4, last_sent().priority)
    local ok, e = pcall(aigc.conversation, { client = client, params = { extra_body = { stream = true } } })
    assert.is_false(ok)
    assert.matches("opts%.params%.extra_body%.stream: aigc's own field", tostring(e))
  end)

  it("is in the cache's key as it is sent (a field in both: extra_body's)", function ()
    local msgs = { { role = "user", content = "hi" } }
    local key = cassette.key("chat", { messages = msgs, temperature = 0.2,
                                       extra_body = { priority = 5, temperature = 0.7 } })
    assert.matches('"priority":5', key, 1, true)
    assert.matches('"temperature":0.69', key, 1, true)
    assert.is_nil(key:find("0.2", 1, true))
    assert.is_nil(key:find("extra_body", 1, true))
    assert.are_not.equal(cassette.key("chat", { messages = msgs, extra_body = { priority = 1 } }),
                         cassette.key("chat", { messages = msgs, extra_body = { priority = 2 } }))
  end)

  it("goes into the runner's batch lines as a direct call sends it", function ()
    local summary = assert(runner.run { client = client, backend = "batch", batch_interval = 0.02,
      cases = { { id = "a", prompt = "hi" } },
      params = { temperature = 0.2, extra_body = { priority = 5, temperature = 0.7 } } })
    assert.equal(1, summary.ok)
    local files = cjson.decode((devserver.http("GET", srv.base_url .. "/files?purpose=batch")))
    assert.equal(1, #files.data)
    local text = devserver.http("GET", srv.base_url .. "/files/" .. files.data[1].id .. "/content")
    local line = cjson.decode(text:match("[^\n]+"))
    assert.equal(5, line.body.priority)
    assert.equal(0.7, line.body.temperature)
    assert.is_nil(line.body.extra_body)
  end)
end)
