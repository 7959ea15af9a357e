-- A future's end (the Lua layer's requests: a say_async, a chat_async with
-- a toolset, the media calls) survives a host's watchdog hook that cuts the
-- turn delivering it at any instruction, as a C request's does (end_cut_spec):
-- the interrupt reaches step()'s caller as it is, exactly one of on_done /
-- on_error runs by the next step (a cut inside it counts: it ran), a task
-- waiting on the future wakes, and the client goes on.
--
-- Cut at every instruction of that turn, the end went wrong: run_end took
-- the callbacks off the future and then spawned their task, so a cut in
-- between ran neither; a cut while the waiters were run left a waiting task
-- asleep for ever; and most cuts were swallowed by step() -- the loop ran
-- its deliveries and the tasks' resumes under plain pcalls, and the
-- watchdog became a reported callback error while the script ran on.

local aigc = require "aigc"
local devserver = require "devserver"
local watchdog_cut = require "watchdog_cut"

local HI = { { role = "user", content = "hi there" } }

-- Whether an error raised in a hook can be told in a task the hook cut (a
-- coroutine that coroutine.resume stopped: no message handler ran there):
-- 5.3 and 5.4 name the hook's frame on its stack; 5.1, 5.2 and LuaJIT do
-- not, and there the cut stays the task's own error (its work fails with
-- it, reported). There the sweep cuts only what runs outside tasks (on
-- LuaJIT hooks are global: every task's instructions would count too).
local jit = rawget(_G, "jit")
local TELLS_TASK_CUTS = not jit and _VERSION ~= "Lua 5.1" and _VERSION ~= "Lua 5.2"

describe("a future's end cut by a watchdog hook", function ()
  local srv
  setup(function () srv = devserver.start { pause_ms = 0 } end)
  teardown(function () srv:stop() end)
  before_each(function () if jit then jit.off() end end)   -- (count hooks are not called in compiled code)
  after_each(function () debug.sethook(); if jit then jit.on() end end)

  -- The future-based calls, each started on `c` with callbacks `cbs`.
  local SURFACES = {
    say_async = function (c, cbs)
      local conv = aigc.conversation { client = c, messages = { { role = "system", content = "Sam" } } }
      return conv:say_async("hi there", { on_done = cbs.on_done, on_error = cbs.on_error })
    end,
    chat_async_toolset = function (c, cbs)
      local ts = aigc.tools { { name = "now", fn = function () return "noon" end } }
      return c:chat_async { messages = { { role = "user", content = "now()" } }, tools = ts,
                            on_done = cbs.on_done, on_error = cbs.on_error }
    end,
    images_generate_async = function (c, cbs)
      return c:images_generate_async { prompt = "x", size = "16x16", response_format = "b64_json",
                                       on_done = cbs.on_done, on_error = cbs.on_error }
    end,
    embeddings_async = function (c, cbs)
      return c:embeddings_async { input = "x", model = "text-embedding-3-small",
                                  on_done = cbs.on_done, on_error = cbs.on_error }
    end,
    download_async = function (c, cbs)
      return c:download_async(srv.base_url .. "/models", { on_done = cbs.on_done, on_error = cbs.on_error })
    end,
  }

  -- One run on client `c`: the future, with callbacks and a task waiting on
  -- it; the turns until its end are cut at their n-th instruction (counted
  -- over the turns), then the loop turns with no hook. Returns whether the
  -- cut fired, and what happened: whether step() raised the watchdog, the
  -- on_done/on_error calls, the task's wake, the future's status.
  local function run (c, start, n)
    local got = { done = 0, failed = 0 }
    local cbs = {}
    function cbs.on_done () got.done = got.done + 1 end
    function cbs.on_error () got.failed = got.failed + 1 end
    local f = start(c, cbs)
    c:spawn(function ()
      got.co = coroutine.running()
      local r, err = f:wait()
      got.woke = r and "done" or tostring(err)
    end)
    local state, tries = {}, 0
    local function counts (co) return co == nil or TELLS_TASK_CUTS end
    while not state.fired and (got.woke == nil or got.done + got.failed == 0) and tries < 2000 do
      tries = tries + 1
      local ok, e = watchdog_cut.run(n, state, function () c:step(0.01) end, counts)
      if state.fired then got.raised = not ok and e == "watchdog" and "watchdog" or tostring(e) end
    end
    got.cut_inside = state.fired and (state.where == cbs.on_done or state.where == cbs.on_error)
    -- (a cut in the waiting task itself is the task's own)
    got.cut_task = state.fired and state.co == got.co
    for _ = 1, 20 do
      if got.woke ~= nil and got.done + got.failed > 0 then break end
      c:step(0.01)
    end
    c:step(0)
    got.status = f:status()
    return state.fired, got
  end

  local function each_cut (start)
    local c = aigc.client { base_url = srv.base_url, max_retries = 0, error_handler = function () end }
    local bad, n = {}, 0
    repeat
      n = n + 1
      local fired, got = run(c, start, n)
      local ends = got.done + got.failed
      if (fired and got.raised ~= "watchdog" and not got.cut_task)
         or not (ends == 1 or (ends == 0 and got.cut_inside))
         or (got.woke == nil and not got.cut_task) or got.status ~= "done" then
        bad[#bad + 1] = ("cut at %d: raised %s, %d on_done, %d on_error, task %s, %s"):format(
          n, tostring(got.raised), got.done, got.failed, tostring(got.woke), got.status)
      end
    until not fired
    -- (the client goes on: a call after the sweep)
    assert.truthy(c:chat { messages = HI })
    assert.equal(0, c:step(0))
    c:close()
    assert.is_true(n > 20)
    assert.same({}, bad)
  end

  for _, name in ipairs { "say_async", "chat_async_toolset", "images_generate_async", "embeddings_async",
                          "download_async" } do
    it(name .. ": the watchdog reaches step()'s caller, one on_done, the task wakes, cut at every point", function ()
      each_cut(SURFACES[name])
    end)
  end
end)
