--- Test helper: the sweep of future_cut_spec -- a future's end cut by a
-- host's watchdog hook at its n-th instruction, one run per n, until a run
-- the hook never reached -- for the specs that sweep it under other
-- conditions (future_cut_stripped_spec: aigc's modules loaded stripped).
local aigc = require "aigc"
local devserver = require "devserver"
local watchdog_cut = require "watchdog_cut"
local points = require "sweep_points"
local INTERRUPTED = require("aigc.task").INTERRUPTED
local GUARD = require("call_forms").GUARD

local M = {}

local HI = { { role = "user", content = "hi there" } }

-- Whether an error raised in a hook can be told in a task the hook cut (a
-- coroutine that coroutine.resume stopped: no message handler ran there):
-- 5.3 and 5.4 name the hook's frame on its stack; 5.1, 5.2 and LuaJIT do
-- not, and there the cut stays the task's own error (its work fails with
-- it, reported). There the sweep cuts only what runs outside tasks (on
-- LuaJIT hooks are global: every task's instructions would count too).
local jit = rawget(_G, "jit")
M.TELLS_TASK_CUTS = not jit and _VERSION ~= "Lua 5.1" and _VERSION ~= "Lua 5.2"
local TELLS_TASK_CUTS = M.TELLS_TASK_CUTS

--- The future-based calls, each started on `c` with callbacks `cbs`, for
-- the devserver `srv`.
function M.surfaces (srv)
  return {
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
end

-- One run on client `c`: the future, with callbacks and a task waiting on
-- it; the turns until its end are cut at their n-th instruction (counted
-- over the turns), then the loop turns with no hook. Returns whether the
-- cut fired, and what happened: whether step() raised the watchdog, the
-- on_done/on_error calls, the task's wake, the future's status.
local function run (c, start, n, follow)
  local got = { done = 0, failed = 0 }
  local cbs = {}
  function cbs.on_done () got.done = got.done + 1 end
  function cbs.on_error (e) got.failed, got.err = got.failed + 1, e end
  local f = start(c, cbs)
  c:spawn(function ()
    got.co = coroutine.running()
    local r, err = f:wait()
    got.woke = r and "done" or tostring(err)
  end)
  local state, tries = {}, 0
  local function counts (co) return co == nil or TELLS_TASK_CUTS end
  -- (into the tasks resumed once f ended: its on_done/on_error's, the waiting one;
  -- "work": into every task from the start, the one doing f's work too)
  local into = follow == "work" and function () return true end
    or follow and function () return f:status() ~= "running" end
  while not state.fired and (got.woke == nil or got.done + got.failed == 0) and tries < 2000 do
    tries = tries + 1
    local ok, e = watchdog_cut.run(n, state, function () c:step(0.01) end, counts, into)
    if state.fired then got.raised = not ok and e == "watchdog" and "watchdog" or tostring(e) end
  end
  got.cut_inside = state.fired and (state.where == cbs.on_done or state.where == cbs.on_error)
  -- (a cut in the waiting task itself is the task's own)
  got.cut_task = state.fired and state.co == got.co
  -- What the cut left to run is counted: a script that steps while
  -- active() > 0 gets it.
  local due = (got.done + got.failed == 0 and not got.cut_inside) or (got.woke == nil and not got.cut_task)
  if state.fired and due then
    got.active = c:active()
  end
  -- (20 turns, and on while the work goes on: a loaded machine's server
  -- may answer later than that -- call_forms.GUARD s at most (20, scaled
  -- by AIGC_TIMEOUT_SCALE: valgrind's 4), a guard against a hang)
  local guard, turns = os.time() + GUARD, 0
  while not (got.woke ~= nil and got.done + got.failed > 0) and os.time() < guard
        and (turns < 20 or f:status() == "running" or f:status() == "queued") do
    turns = turns + 1
    c:step(0.01)
  end
  c:step(0)
  got.status = f:status()
  return state.fired, got
end

--- Sweeps `start` (one of `surfaces`) on a new client of `srv`: returns
-- the runs that went wrong (one line each), how many runs were made, and
-- the client's results after the sweep: a call, and what step(0) counts.
-- `follow`: the hook follows into the tasks resumed once the future ended
-- (watchdog_cut.run): its on_done/on_error's, the one waiting on it;
-- "work": into every task from the start, the future's work too (a cut
-- there fails the future with task.INTERRUPTED, its on_error once).
function M.each_cut (srv, start, follow)
  local c = aigc.client { base_url = srv.base_url, max_retries = 0, error_handler = function () end }
  local bad, n = {}, 0
  repeat
    n = points.after(n)   -- (every point, but under valgrind and ASan: sweep_points)
    local fired, got = run(c, start, n, follow)
    local ends = got.done + got.failed
    local ended = got.status == "done" or follow == "work" and got.status == "failed" and got.err == INTERRUPTED
    if (fired and got.raised ~= "watchdog" and not got.cut_task)
       or not (ends == 1 or (ends == 0 and got.cut_inside))
       or (got.woke == nil and not got.cut_task) or not ended or got.active == 0 then
      bad[#bad + 1] = ("cut at %d: raised %s, %d on_done, %d on_error, task %s, %s, active() after the cut %s"):format(
        n, tostring(got.raised), got.done, got.failed, tostring(got.woke), got.status, tostring(got.active))
        .. (got.err and ", on_error's " .. tostring(got.err) or "")
    end
  until not fired
  -- (the client goes on: a call after the sweep)
  local after = c:chat { messages = HI }
  local left = c:step(0)
  c:close()
  return bad, n, after, left
end

--- A devserver for the sweeps, and its surfaces.
function M.start ()
  local srv = devserver.start { pause_ms = 0 }
  return srv, M.surfaces(srv)
end

--- The sweeps' setup in a spec's environment `env` (nil on Lua 5.1: the
-- caller's): a devserver for the file, `assign(srv, surfaces)` once it
-- runs; the JIT off and no hook left around each test.
function M.fixture (env, assign)
  env = env or rawget(_G, "getfenv")(2)
  local srv
  env.setup(function () srv = M.start(); assign(srv, M.surfaces(srv)) end)
  env.teardown(function () srv:stop() end)
  env.before_each(M.jit_off)
  env.after_each(M.unhook)
end

--- For before_each and after_each: count hooks are not called in code
-- LuaJIT compiled; a hook left set is taken off.
function M.jit_off () if jit then jit.off() end end
function M.unhook () debug.sethook(); if jit then jit.on() end end

return M
