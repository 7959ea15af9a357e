--- The cut specs' host watchdog: a one-shot count hook that raises
-- "watchdog" at the n-th instruction, as lua.c's Ctrl-C and game hosts'
-- frame watchdogs do (the method of end_cut_spec, future_cut_spec,
-- blocking_cut_spec and strategy_cut_spec: cut a turn of the loop at
-- every instruction, one run per n); and the end of what a cut left
-- running.
local GUARD = require("call_forms").GUARD

local M = {}

--- Runs `fn()` under the hook; `state.k` counts the instructions met so
-- far (give the same table to every call of one run). When it fires it
-- records in `state`: `fired`, `where` (the function it cut), `co` (the
-- coroutine it cut, or nil on the main thread). `counts(co)` (optional)
-- says whether an instruction of coroutine `co` (nil: main) is counted.
-- `follow` (optional): a function; while it returns true, the hook
-- follows into the coroutines resumed (aigc's tasks), as a host's
-- watchdog set on every thread would (PUC Lua's debug.sethook sets one
-- thread's hook, and a Lua hook function is not called in a coroutine it
-- was not given to).
-- Returns pcall's results for fn.
function M.run (n, state, fn, counts, follow)
  state.k = state.k or 0
  local hooked = {}
  local function unhook ()
    debug.sethook()
    for co in pairs(hooked) do debug.sethook(co) end
  end
  local function hook (event)
    if event ~= "count" then   -- (a call: into a coroutine?)
      if debug.getinfo(2, "f").func == coroutine.resume and follow() then
        local _, co = debug.getlocal(2, 1)
        if type(co) == "thread" and not hooked[co] then
          hooked[co] = true
          debug.sethook(co, hook, "c", 1)
        end
      end
      return
    end
    local co, main = coroutine.running()
    if main then co = nil end
    if counts and not counts(co) then return end
    state.k = state.k + 1
    if state.k == n then
      state.where = debug.getinfo(2, "f").func
      state.co = co
      unhook(); state.fired = true; error("watchdog", 0)
    end
  end
  local ok, e = pcall(function ()
    debug.sethook(hook, follow and "c" or "", 1)
    fn()
    unhook()
  end)
  unhook()
  return ok, e
end

--- f() with the watchdog at the n-th instruction counted (those whose
-- debug.getinfo "S" `counts` accepts; every one when nil). Returns
-- whether it fired, then pcall's ok and f's value or the error.
function M.cut (n, f, counts)
  local k, fired = 0, false
  local ok, e = pcall(function ()
    debug.sethook(function ()
      if counts == nil or counts(debug.getinfo(2, "S")) then
        k = k + 1
        if k == n then debug.sethook(); fired = true; error("watchdog", 0) end
      end
    end, "", 1)
    local v = f()
    debug.sethook()
    return v
  end)
  debug.sethook()
  return fired, ok, e
end

--- `one(n, bad)` for n = step, 2 step, ... while it says the cut fired
-- (below `limit`): returns the last n and `bad`, where `one` adds what
-- went wrong. (Under valgrind and ASan, every AIGC_SWEEP_STRIDE-th of
-- those n only: spec/support/sweep_points.lua.)
function M.sweep (step, limit, one)
  local points = require "sweep_points"
  local bad, k = {}, 0
  repeat k = points.after(k) until not one(k * step, bad) or k * step >= limit
  return k * step, bad
end

--- A race run in a task of client `c` (`strategy.race(entries)`), its
-- turns cut at the main thread's n-th instruction (where the loop runs the
-- entries' callbacks) until the cut fired or the race ended; a step() that
-- did not raise the watchdog goes to `bad`. Returns `got` (`res`, `err`,
-- `outcomes`, `ended` once the race returned) and whether the cut fired.
function M.race_turns (c, entries, n, bad)
  local got = {}
  c:spawn(function ()
    local r, x, y = require("aigc.strategy").race(entries)
    got.res, got.err, got.outcomes = r, not r and x, r and x or y
    got.ended = true
  end)
  local state, turns = {}, 0
  while not state.fired and not got.ended and turns < 2000 do
    turns = turns + 1
    local ok, e = M.run(n, state, function () c:step(0.01) end, function (co) return co == nil end)
    if state.fired and (ok or e ~= "watchdog") then
      bad[#bad + 1] = ("cut at %d: step() gave %s"):format(n, ok and "no error" or tostring(e))
    end
  end
  return got, state.fired == true
end

--- Turns client `c`'s loop until no request of it is active
-- (call_forms.GUARD s at most, scaled under valgrind: a guard against a
-- hang only); one that never ended goes to `bad`.
function M.drain (c, bad, n)
  local guard = os.time() + GUARD
  while c._engine:active() > 0 and os.time() < guard do c:step(0.01) end
  if c._engine:active() > 0 then bad[#bad + 1] = ("cut at %d: a request never ended"):format(n) end
end

--- The cut specs' setup: the devserver fixture (a server with no
-- pauses; `assign(client, server)` gets each test's client), the JIT off (count
-- hooks are not called in compiled code), no hook left after a test.
function M.fixture (env, assign)
  env = env or rawget(_G, "getfenv")(2)   -- (Lua 5.1 has no _ENV)
  require("devserver").fixture(env, function (s, c) assign(c, s) end, nil, nil, { pause_ms = 0 })
  local jit = rawget(_G, "jit")
  env.before_each(function () if jit then jit.off() end end)
  env.after_each(function () debug.sethook(); if jit then jit.on() end end)
end

return M
