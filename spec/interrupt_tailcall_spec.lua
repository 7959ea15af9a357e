-- An error raised in a host's watchdog hook is told as an interrupt
-- wherever the hook fires: at a `return f()` (a tail call) with a call hook
-- set too, and at the call of a C function -- in a task's coroutine that
-- the cut killed (core.thread_interrupt) as under the Lua layer's message
-- handler (core.keep_interrupt).
--
-- On Lua 5.3 neither was told: the hook function's frame, which 5.3 names
-- "hook" elsewhere, goes unnamed there (ldo.c's callhook takes the hook's
-- own call, made at a tail call instruction, for a tail call; and a frame
-- whose caller is C is never named). A future's on_done task cut at its
-- `return cb(value)` then died of what looked like its own error: the
-- watchdog was swallowed (step() returned), and the future ended "done"
-- with neither on_done nor on_error run (future_cut_spec, pending on 5.3).

local core = require "aigc.core"

local jit = rawget(_G, "jit")
-- (a dead coroutine's stack names its hook frame on 5.3 and 5.4 only: see
-- future_sweep.TELLS_TASK_CUTS; elsewhere a task's cut is its own error)
local TELLS_TASK_CUTS = not jit and _VERSION ~= "Lua 5.1" and _VERSION ~= "Lua 5.2"
-- (each cut raises a message of its own: the core keeps the last
-- interrupt it told, and a string equal to it is told by that alone)
local cuts = 0
local function message () cuts = cuts + 1; return "watchdog " .. cuts end

local function cb (v) local y = v + 1; return y end
local function enter (v) local z = v; return cb(z) end   -- (as future.lua's enter_callback)
local function body () local a = enter(1); return a end

-- A hook raising at the n-th instruction counted ("count" events; with
-- `mask` "c" it is called at calls too, and does nothing there); the
-- message it raised goes to `state.fired`.
local function count_hook (n, state)
  local k = 0
  return function (event)
    if event ~= "count" then return end
    k = k + 1
    if k == n then state.fired = message(); debug.sethook(); error(state.fired, 0) end
  end
end

-- A hook raising at the call of C function `fn` (the call hook event).
local function call_hook (fn, state)
  return function ()
    if debug.getinfo(2, "f").func == fn then state.fired = message(); debug.sethook(); error(state.fired, 0) end
  end
end

describe("a watchdog hook's error", function ()
  before_each(function () if jit then jit.off() end end)
  after_each(function () debug.sethook(); if jit then jit.on() end end)

  -- `fn` run as a coroutine under `make_hook(state)` (with `mask`, count
  -- 1): whether the hook fired, and whether the coroutine's death was told.
  local function cut_coroutine (fn, make_hook, mask)
    local co, state = coroutine.create(fn), {}
    debug.sethook(co, make_hook(state), mask, 1)
    local ok, e = coroutine.resume(co)
    debug.sethook(co)
    if not state.fired then return false end
    assert.is_false(ok)
    assert.equal(state.fired, e)
    return true, core.thread_interrupt(co, e)
  end

  -- The same, run under xpcall with the Lua layer's message handler.
  local function cut_protected (fn, make_hook, mask)
    local state = {}
    local ok, e = xpcall(function ()
      debug.sethook(make_hook(state), mask, 1)
      local r = fn()
      debug.sethook()
      return r
    end, core.keep_interrupt)
    debug.sethook()
    if not state.fired then return false end
    assert.is_false(ok)
    assert.equal(state.fired, e)
    return true, core.is_interrupt(e)
  end

  -- Cuts `fn` at each instruction in turn (both masks): the cuts not told.
  local function each_cut (cut)
    local missed, runs = {}, 0
    for _, mask in ipairs { "", "c" } do
      for n = 1, 200 do
        local fired, told = cut(body, function (state) return count_hook(n, state) end, mask)
        if not fired then break end
        runs = runs + 1
        if not told then missed[#missed + 1] = ("mask %q, cut at %d"):format(mask, n) end
      end
    end
    assert.is_true(runs >= 16, "runs " .. runs)   -- (every instruction of body, enter, cb: twice)
    return missed
  end

  -- A call of a C function, cut at that call.
  local function c_call_cut (cut)
    return cut(function () return string.rep("x", 3) .. "" end,
               function (state) return call_hook(string.rep, state) end, "c")
  end

  it("is told in the coroutine it killed, cut at every instruction of a tail call", function ()
    if not TELLS_TASK_CUTS then return pending("Lua 5.1, 5.2, LuaJIT: a hook's frame is not named") end
    assert.same({}, each_cut(cut_coroutine))
  end)

  it("is told in the coroutine it killed, raised at the call of a C function", function ()
    if not TELLS_TASK_CUTS then return pending("Lua 5.1, 5.2, LuaJIT: a hook's frame is not named") end
    local fired, told = c_call_cut(cut_coroutine)
    assert.is_true(fired)
    assert.is_true(told)
  end)

  it("is told under the message handler, cut at every instruction of a tail call", function ()
    assert.same({}, each_cut(cut_protected))
  end)

  it("is told under the message handler, raised at the call of a C function", function ()
    local fired, told = c_call_cut(cut_protected)
    assert.is_true(fired)
    assert.is_true(told)
  end)

  it("is not confused with a task's own error raised in a tail-called function", function ()
    -- (its frame is unnamed, and a weak table lies just below it; a hook
    -- is set that never raises)
    local function own () error("own error", 0) end
    local function tail () return own() end
    local co = coroutine.create(function ()
      local w = setmetatable({}, { __mode = "k" })
      local r = tail()
      return r, w
    end)
    debug.sethook(co, function () end, "c", 1)
    local ok, e = coroutine.resume(co)
    debug.sethook(co)
    assert.is_false(ok)
    assert.equal("own error", e)
    assert.is_false(core.thread_interrupt(co, e))
    assert.is_false(core.is_interrupt(e))
  end)
end)
