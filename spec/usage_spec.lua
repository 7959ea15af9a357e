-- Usage and cost totals on a client (issue 16 item 7) and the client's
-- prompt_log option (item 2), against the bundled server.

local aigc = require "aigc"
local usage = require "aigc.usage"
local devserver = require "devserver"
local cli = require "cli"
local promptlog = require "aigc.promptlog"

describe("client:usage()", function ()
  local srv
  setup(function () srv = devserver.start { pause_ms = 0 } end)
  teardown(function () srv:stop() end)

  local PRICES = { ["aigc-dev"] = { input = 1, output = 2 } }

  it("counts blocking, streamed and non-blocking calls: requests, tokens by model, cost", function ()
    local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", prices = PRICES }
    local r1 = assert(c:chat "hello there")
    local r2 = assert(c:chat { messages = { { role = "user", content = "a stream" } }, stream = function () end,
                               stream_options = { include_usage = true } })
    local req = c:chat_async "async one"
    while req:status() == "queued" or req:status() == "running" do c:step(0.01) end
    local r3 = assert(req:result())
    c:step(0)
    local u = c:usage()
    assert.equal(3, u.requests)
    assert.equal(0, u.errors)
    local p, k = 0, 0
    for _, r in ipairs { r1, r2, r3 } do
      p = p + r.usage.prompt_tokens; k = k + r.usage.completion_tokens
    end
    assert.equal(p, u.prompt_tokens)
    assert.equal(k, u.completion_tokens)
    assert.equal(p + k, u.total_tokens)
    local m = u.models[r1.model]
    assert.is_table(m)
    assert.equal(3, m.requests)
    assert.near((p * 1 + k * 2) / 1e6, u.cost, 1e-12)
    assert.near(u.cost, m.cost, 1e-12)
    c:close()
  end)

  it("counts a chat_async request the frame loop polled, read and dropped", function ()
    local c = aigc.client { base_url = srv.base_url, model = "aigc-dev" }
    do
      local req = c:chat_async "polled by a frame loop"
      while req:status() == "queued" or req:status() == "running" do c:step(0.01) end
      assert(req:result())
    end
    collectgarbage()
    collectgarbage()
    assert.equal(1, c:usage().requests)
    c:close()
  end)

  it("counts errors by kind and retries; no price, no cost", function ()
    local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", max_retries = 2 }
    local res, err = c:chat { model = "fault:status=400", messages = { { role = "user", content = "x" } } }
    assert.is_nil(res)
    local res2 = assert(c:chat { model = "fault:status=503,times=1", messages = { { role = "user", content = "y" } } })
    local u = c:usage()
    assert.equal(2, u.requests)
    assert.equal(1, u.errors)
    assert.equal(1, u.errors_by_kind[err.kind])
    assert.equal(res2.retries, u.retries)
    assert.is_true(u.retries >= 1)
    assert.is_nil(u.cost)
    c:reset_usage()
    assert.equal(0, c:usage().requests)
    c:close()
  end)

  -- A tool loop's last reply carries the sum of every round's usage
  -- (res.usage); the totals must count each request's own usage once.
  -- Before the fix, the last round was counted with the sum, so the first
  -- rounds counted twice (two rounds of 11 and 22 tokens gave 44).
  it("counts each round of a tool loop once, in every form (chat, stream, respond, chat_async, say)", function ()
    local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", prices = PRICES }
    local tools = aigc.tools { { name = "track_order",
      parameters = { type = "object", properties = { order_id = { type = "string" } }, required = { "order_id" } },
      fn = function () return "ok" end } }
    local msgs = { { role = "user", content = "Track order A-1" } }
    local conv = aigc.conversation { client = c }
    local forms = {
      chat = function () return c:chat { messages = msgs, tools = tools } end,
      stream = function () return c:chat { messages = msgs, tools = tools, stream = function () end } end,
      respond = function () return c:respond { input = "Track order A-1", tools = tools } end,
      chat_async = function () return c:chat_async({ messages = msgs, tools = tools }):wait() end,
      task = function ()
        local got
        c:spawn(function () got = assert(c:chat { messages = msgs, tools = tools }) end)
        while got == nil do c:step(0.01) end
        return got
      end,
      say = function () return select(2, conv:say("Track order A-1", { tools = tools })) end,
    }
    for _, form in ipairs { "chat", "stream", "respond", "chat_async", "task", "say" } do
      c:reset_usage()
      local res = assert(forms[form]())
      local u = c:usage()
      assert.equal(2, #res.usage_rounds, form)
      local p, k, t = 0, 0, 0
      for _, r in ipairs(res.usage_rounds) do
        p = p + (r.prompt_tokens or r.input_tokens)
        k = k + (r.completion_tokens or r.output_tokens)
        t = t + r.total_tokens
      end
      assert.is_true(res.usage_rounds[1].total_tokens < t, form)
      assert.equal(t, res.usage.total_tokens, form)   -- (res.usage stays the sum)
      assert.equal(2, u.requests, form)
      assert.equal(p, u.prompt_tokens, form)
      assert.equal(k, u.completion_tokens, form)
      assert.equal(t, u.total_tokens, form)
      assert.equal(2, u.models["aigc-dev"].requests, form)
      assert.equal(t, u.models["aigc-dev"].total_tokens, form)
      assert.near((p * 1 + k * 2) / 1e6, u.cost, 1e-12)
    end
    c:close()
  end)

  it("usage.diff gives what happened between two snapshots; set_prices applies from then on", function ()
    local c = aigc.client { base_url = srv.base_url, model = "aigc-dev" }
    assert(c:chat "one")
    local before = c:usage()
    c:set_prices(PRICES)
    local r = assert(c:chat "two")
    local d = usage.diff(c:usage(), before)
    assert.equal(1, d.requests)
    assert.equal(r.usage.total_tokens, d.total_tokens)
    assert.near((r.usage.prompt_tokens + 2 * r.usage.completion_tokens) / 1e6, d.cost, 1e-12)
    c:close()
  end)

  it("usage = false turns the totals off; bad options raise in the one format", function ()
    local c = aigc.client { base_url = srv.base_url, usage = false }
    assert.is_nil(c:usage())
    c:close()
    assert.error_matches(function () aigc.client { prices = 3 } end,
      "bad argument #1 to 'client' %(opts.prices: table .*expected, got number%)")
    -- each entry is checked: a price of "x" counted as 0, a negative one gave a negative cost
    for prices, want in pairs {
      [{ m = { input = "x" } }] = "opts.prices.m.input: a number >= 0 expected, got string",
      [{ ["gpt-4o"] = { output = -1 } }] = 'opts.prices["gpt-4o"].output: a number >= 0 expected, got -1',
      [{ m = { cached_input = 0 / 0 } }] = "opts.prices.m.cached_input: a number >= 0 expected, got NaN",
      [{ m = 5 }] = "opts.prices.m: table ({ input =, output =, cached_input = }) expected, got number",
      [{ m = { input = 1, ouput = 2 } }] = "opts.prices.m.ouput: unknown field (input, output, cached_input)",
    } do
      local ok, err = pcall(aigc.client, { base_url = srv.base_url, prices = prices })
      assert.is_false(ok)
      assert.equal("bad argument #1 to 'client' (" .. want .. ")", (tostring(err):gsub("^[^\n]-:%d+: ", "")))
      assert.matches("usage_spec%.lua:%d+: ", tostring(err))   -- at the caller's line
      c = aigc.client { base_url = srv.base_url }
      ok, err = pcall(c.set_prices, c, prices)
      c:close()
      assert.is_false(ok)
      assert.equal("bad argument #1 to 'set_prices' (" .. want:gsub("^opts%.", "") .. ")",
                   (tostring(err):gsub("^[^\n]-:%d+: ", "")))
    end
    assert.error_matches(function () aigc.client { prompt_log = 3 } end, "opts.prompt_log")
    assert.error_matches(function () aigc.client { usage = "yes" } end, "opts.usage")
  end)
end)

describe("the prompt_log client option", function ()
  local srv, dir
  setup(function () srv = devserver.start { pause_ms = 0 } end)
  teardown(function () srv:stop() end)
  before_each(function () dir = cli.home() end)
  after_each(function () cli.rmdir(dir) end)

  it("logs every chat call of a script to the prompt log (never the key)", function ()
    local path = dir .. "/logs.db"
    local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", api_key = "sk-secret-never-logged-42",
                            prompt_log = path }
    assert(c:chat "first question about llamas")
    local s = c:stream { messages = { { role = "user", content = "second, streamed" } } }
    for _ in s:deltas() do end
    local res, err = c:chat { model = "fault:status=400", messages = { { role = "user", content = "failing one" } } }
    assert.is_nil(res); assert.is_table(err)
    c:close()
    local log = assert(promptlog.open(path))
    assert.equal(3, log:count())
    local found = log:list { query = "llamas" }
    assert.equal(1, #found)
    assert.equal("first question about llamas", found[1].prompt)
    local failed = log:list { status = err.kind, n = 0 }
    assert.equal(1, #failed)
    log:close()
    local f = assert(io.open(path, "rb"))
    local bytes = f:read("*a")
    f:close()
    assert.is_nil(bytes:find("sk-secret-never-logged-42", 1, true))
  end)

  it("takes an open log (left open for its owner) , and does not close it", function ()
    local log = assert(promptlog.open(dir .. "/own.db"))
    local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", prompt_log = log }
    assert(c:chat "hello")
    c:close()
    assert.equal(1, log:count())   -- still open: the client did not close it
    log:close()
  end)
end)

describe("the runner's totals come from the client's", function ()
  local srv
  setup(function () srv = devserver.start { pause_ms = 0 } end)
  teardown(function () srv:stop() end)

  it("summary.usage, cost and totals count what the client sent, failed requests included", function ()
    local runner = require "aigc.runner"
    local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", max_retries = 0 }
    assert(c:chat "before the run: not the run's")
    local cases = { { id = "a", prompt = "one" }, { id = "b", prompt = "two" }, { id = "c", prompt = "three" } }
    -- the first request the server sees fails (400: not retried), whichever case it is
    local summary = assert(runner.run { client = c, cases = cases, concurrency = 1, max_attempts = 1,
                                        params = { model = "fault:status=400,times=1" },
                                        prices = { fault = { input = 1, output = 1 },
                                                   aigc = { input = 1, output = 1 } } })
    assert.equal(2, summary.ok)
    assert.equal(3, summary.totals.requests)
    assert.equal(1, summary.totals.errors)
    local tokens = 0
    for _, r in pairs(summary.results) do if r.ok then tokens = tokens + r.usage.total_tokens end end
    assert.equal(tokens, summary.usage.total_tokens)
    assert.near(tokens / 1e6, summary.cost, 1e-12)
    assert.equal(4, c:usage().requests)   -- the client's own count goes on
    c:close()
  end)
end)
