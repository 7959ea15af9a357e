-- What keeps a client, a request, a conversation or a callback alive once
-- the user dropped it, layer by layer (futures and tasks, the loop's guests,
-- strategies' judges, the rate limiter, compiled schemas, the usage hooks'
-- `_counted` and `_unheld`). Each probe makes a few objects through the
-- public API, with callbacks that lead back to what made them (the shape
-- that leaks on Lua 5.1 and LuaJIT, which have no ephemerons: a weak-keyed
-- table whose value refers to its key keeps both), drops them, and counts
-- what is left after three full collections.
local aigc = require "aigc"
local devserver = require "devserver"
local ratelimit = require "aigc.ratelimit"

local HI = { { role = "user", content = "Hi" } }

-- (after three full collections: see portable.left_after_collect)
local left_after_collect = require("portable").left_after_collect

describe("what holds objects alive", function ()
  local srv
  setup(function () srv = devserver.start() end)
  teardown(function () if srv then srv:stop() end end)

  local function client ()
    return aigc.client { base_url = srv.base_url, model = "aigc-dev", max_retries = 0 }
  end

  it("futures whose callbacks keep the future and its client", function ()
    local gone = setmetatable({}, { __mode = "k" })
    local schema = { type = "object", properties = { ok = { type = "boolean" } } }
    for i = 1, 4 do
      local app = { c = client() }
      app.f = app.c:chat_async { messages = HI, schema = schema,
                                 on_done = function (r) app.res = r; app.seen = app.f end,
                                 on_error = function (e) app.err = e; app.seen = app.f end }
      if i % 2 == 0 then assert.is_table((app.f:wait())) end
      gone[app], gone[app.c], gone[app.f] = true, true, true
    end
    assert.equal(0, left_after_collect(gone))
  end)

  it("tasks asleep or waiting on another client's request, both clients dropped", function ()
    local gone = setmetatable({}, { __mode = "k" })
    for i = 1, 4 do
      local app = { a = client(), b = client() }
      app.a:spawn(function () app.a:sleep(3600) end)
      app.a:spawn(function ()
        app.req = app.b:chat_async { messages = HI }
        app.res = app.req:wait()
      end)
      if i % 2 == 0 then app.a:step(0) end
      gone[app], gone[app.a], gone[app.b] = true, true, true
    end
    assert.equal(0, left_after_collect(gone))
  end)

  it("a task of a kept client waiting on a dropped client's request lets it go once it ended", function ()
    local a = client()
    finally(function () a:close() end)
    local gone = setmetatable({}, { __mode = "k" })
    local ended = 0
    for _ = 1, 4 do
      local b = client()
      a:spawn(function ()
        local f = b:chat_async { messages = HI, schema = { type = "object" } }
        f:wait()
        ended = ended + 1
      end)
      gone[b] = true
    end
    while ended < 4 and a:active() > 0 do a:step(0.05) end
    for _ = 1, 3 do a:step(0) end
    assert.equal(4, ended)
    assert.equal(0, left_after_collect(gone))
  end)

  it("strategies with a judge, their clients and params dropped", function ()
    local gone = setmetatable({}, { __mode = "k" })
    for _ = 1, 3 do
      local app = { c = client() }
      app.params = { messages = HI, on_done = function () return app end }
      app.best = aigc.strategy.best_of { client = app.c, n = 2, params = { messages = HI },
                                         judge = { prompt = "Which?", params = { model = "aigc-dev" } } }
      assert.is_string(app.best.text)
      gone[app], gone[app.c], gone[app.params] = true, true, true
    end
    assert.equal(0, left_after_collect(gone))
  end)

  it("callers a kept limiter refused, then dropped, are not kept and hold back no one", function ()
    -- (its queue held each named caller strongly until a later caller found
    -- it lapsed, LAPSE s past its wait: a long-lived limiter kept a task
    -- given up, and its client, for ever when no caller came; and the first
    -- one still held back every other caller meanwhile)
    local lim = ratelimit.new { concurrency = 1 }
    local ticket = lim:sent(1)
    local gone = setmetatable({}, { __mode = "k" })
    for i = 1, 4 do
      local caller = { c = client() }
      caller.co = coroutine.create(function () return caller end)
      local ok = lim:reserve(1, 1, i % 2 == 0 and caller or caller.co)
      assert.is_false(ok)
      gone[caller], gone[caller.c], gone[caller.co] = true, true, true
    end
    assert.equal(0, left_after_collect(gone))
    lim:observe(ticket)
    assert.is_true((lim:reserve(1, 1, "next")))
  end)

  it("schemas compiled and kept by their apps, the apps dropped", function ()
    local gone = setmetatable({}, { __mode = "k" })
    for i = 1, 4 do
      local app = { c = client() }
      app.schema = { type = "object", properties = { n = { type = "integer", description = "n" .. i } } }
      app.res = assert(app.c:chat { messages = HI, schema = app.schema })
      app.c.error_handler = function (e) app.err = e end
      gone[app], gone[app.c], gone[app.schema] = true, true, true
    end
    assert.equal(0, left_after_collect(gone))
  end)

  it("callbacks counted by the usage hooks, leading back to their client", function ()
    local gone = setmetatable({}, { __mode = "k" })
    for i = 1, 4 do
      local app = { c = client() }
      app.on_done = function (r) app.last = r end
      app.on_error = function (e) app.err = e end
      local req = app.c:chat_async { messages = HI, on_done = app.on_done, on_error = app.on_error }
      if i % 2 == 0 then req:wait() end
      gone[app], gone[app.c], gone[app.on_done], gone[req] = true, true, true, true
    end
    assert.equal(0, left_after_collect(gone))
  end)

  it("requests without callbacks kept with their params, dropped before they end", function ()
    local c = client()
    finally(function () c:close() end)
    local gone = setmetatable({}, { __mode = "k" })
    for _ = 1, 4 do
      local npc = {}
      npc.params = { messages = { { role = "user", content = "Echo: slow" } },
                     headers = { ["x-aigc-fault"] = "pause=60000" }, stream = true }
      npc.req = c:chat_async(npc.params)
      gone[npc], gone[npc.req] = true, true
    end
    c:step(0)
    assert.equal(0, left_after_collect(gone))
  end)

  -- Lifecycle seed 637013 sequence 12 (CI, LuaJIT under ASan): a future's
  -- on_error making a blocking call yields its task; the future stayed on
  -- future.lua's module-wide list of ends to finish until some loop turned
  -- again, and with it the client and its sockets, dropped by the user.
  it("a say_async whose on_error waits in a blocking call, its client dropped after one step", function ()
    local gone = setmetatable({}, { __mode = "k" })
    for i = 1, 2 do
      local npc = { c = client() }
      npc.conv = aigc.conversation { client = npc.c }
      npc.f = npc.conv:say_async("Hi " .. i, {
        on_error = function (e) npc.err = e; npc.again = npc.c:chat { messages = HI } end })
      npc.f:cancel()
      npc.c:step(0)
      assert.equal("canceled", npc.err.kind)   -- (its on_error ran: the task waits in chat)
      assert.is_nil(npc.again)
      gone[npc], gone[npc.c], gone[npc.f], gone[npc.conv] = true, true, true, true
    end
    assert.equal(0, left_after_collect(gone))
  end)

  it("conversations whose say_async callbacks and tools lead back to them, pending or ended", function ()
    local gone = setmetatable({}, { __mode = "k" })
    for i = 1, 4 do
      local npc = {}
      local tools = aigc.tools { { name = "poke", parameters = { type = "object", properties = {} },
                                   fn = function () npc.poked = npc.conv; return "ok" end } }
      npc.conv = aigc.conversation { client = client(), params = { tools = tools } }
      npc.f = npc.conv:say_async("Please poke order A-1042 " .. i,
                                 { on_done = function () npc.done = npc.f end,
                                   on_error = function (e) npc.err = e; npc.seen = npc.conv end })
      if i % 2 == 0 then assert(npc.f:wait()); assert.is_table(npc.poked) end
      gone[npc], gone[npc.conv], gone[npc.conv.client], gone[npc.f] = true, true, true, true
    end
    assert.equal(0, left_after_collect(gone))
  end)
end)
