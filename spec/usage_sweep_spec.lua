-- The usage hook (on by default) hears the end of a request without
-- callbacks at the step it ends in (hooks.lua `sweep`). Its walk asks every
-- such request in flight for its status, so it must be skipped when no
-- request can have ended: with thousands waiting, each step(0) walked them
-- all (issue 17: step(0) with 4,096 waiting went from 1.4 µs to ~1 ms).
-- These cases count the status() calls a step makes, and check that the
-- skip never loses an end, whatever else was submitted meanwhile.
local devserver = require "devserver"

local fault = devserver.params   -- (fault grammar, extra fields)

-- Counts calls of the requests' status() (all requests share a metatable)
-- while `fn` runs.
local function count_status_calls (some_request, fn)
  local methods = getmetatable(some_request).__index
  local status = methods.status
  local n = 0
  methods.status = function (...) n = n + 1; return status(...) end
  local ok, e = pcall(fn)
  methods.status = status
  assert(ok, e)
  return n
end

local function aigc_client (srv)
  return require("aigc").client { base_url = srv.base_url, max_retries = 0 }
end

describe("usage of requests without callbacks", function ()
  local srv
  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)

  it("a step with many requests waiting and none ending asks none of them for its status", function ()
    local c = aigc_client(srv)
    local waiting = {}
    for i = 1, 200 do waiting[i] = c:chat_async(fault("hang", { deadline = 60 })) end
    for _ = 1, 5 do c:step(0.01) end   -- (connected, sent: now only waiting)
    local calls = count_status_calls(waiting[1], function ()
      for _ = 1, 50 do c:step(0) end
    end)
    -- (before: 200 per step, 10,000 in all)
    assert.is_true(calls < 200, calls .. " status() calls in 50 steps with 200 waiting")
    c:close()
    assert.equal(200, c:usage().requests)   -- (closed: canceled ends are heard too)
  end)

  it("hears an end in the step it happens, also when a request with callbacks was submitted meanwhile", function ()
    -- (a prompt log is told of each chat's end by the sweep; usage() would
    -- force a walk and prove nothing)
    local logged = {}
    local log = { record_call = function (_, params) logged[#logged + 1] = params.headers["x-aigc-fault"] end }
    local c = require("aigc").client { base_url = srv.base_url, max_retries = 0, prompt_log = log }
    local slow = c:chat_async(fault("hang", { deadline = 60 }))
    local quick = c:chat_async(fault("delay=50"))
    for _ = 1, 5 do c:step(0.01) end   -- (both sent)
    require("aigc").sleep(0.3)          -- (quick's answer waits on its socket)
    -- A request with callbacks, submitted now, raises active() by one: the
    -- end of `quick` in the next step must not hide behind it.
    local held_done = false
    c:chat_async(fault("delay=300", { on_done = function () held_done = true end }))
    local t0 = os.time()
    repeat c:step(0.01) until quick:status() == "done" or os.time() - t0 > 20
    assert.equal("done", quick:status())
    assert.same({ "delay=50" }, logged)   -- (in the step that ended it)
    repeat c:step(0.01) until held_done or os.time() - t0 > 20
    assert.same({ "delay=50", "delay=300" }, logged)
    slow:cancel()
    c:step(0)
    assert.same({ "delay=50", "delay=300", "hang" }, logged)
    c:close()
  end)

  -- Many NPCs as tasks, each making blocking calls: every end resumes a
  -- task whose next call submits, and each submit and step swept. The walk
  -- asked every request in flight for its status then (1.06M instructions
  -- per request with 512 tasks); the engine now lists the ends it
  -- delivered (eng:take_ended), and a blocking call hears its own.
  it("many tasks making blocking calls: no request is asked for its status, every one is counted", function ()
    local logged = 0
    local log = { record_call = function () logged = logged + 1 end }
    local c = require("aigc").client { base_url = srv.base_url, max_retries = 0, prompt_log = log }
    local replies = 0
    local probe = c:chat_async(fault("hang", { deadline = 60 }))
    local calls = count_status_calls(probe, function ()
      for _ = 1, 100 do
        c:spawn(function ()
          for _ = 1, 3 do
            assert(c:chat(fault("delay=5")))
            replies = replies + 1
          end
        end)
      end
      local t0 = os.time()
      while replies < 300 and os.time() - t0 < 30 do c:step(0.01) end
    end)
    assert.equal(300, replies)
    assert.equal(0, calls)   -- (before: tens of thousands)
    assert.equal(300, logged)
    -- and the ends nobody waits for still reach the log: two plain ones
    -- (one dropped once it ended) and a canceled one
    local plain = c:chat_async(fault("delay=5"))
    local dropped = c:chat_async(fault("delay=5"))
    local t0 = os.time()
    while (plain:status() ~= "done" or dropped:status() ~= "done") and os.time() - t0 < 20 do c:step(0.01) end
    dropped = nil   -- luacheck: ignore (heard in the step it ended: dropping it loses nothing)
    collectgarbage()
    probe:cancel()
    c:step(0)
    assert.equal(303, logged)
    assert.equal(303, c:usage().requests)
    c:close()
  end)
end)
