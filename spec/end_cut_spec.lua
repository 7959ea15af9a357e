-- A request's end survives a host's watchdog hook that cuts the turn
-- delivering it at any instruction (the lifecycle contract: a request with
-- on_done/on_error gets exactly one of them; a task waiting on it wakes).
--
-- A host's watchdog (a count hook that raises to end a frame that ran too
-- long) may cut client:step() between any two instructions. Cut inside the
-- caller's on_done, the end's waiters were lost: a task waiting on the
-- request slept for ever. Cut inside the usage count, or the prompt log
-- write, that ran before the caller's on_done (a wrapper that called it),
-- the on_done was lost. Now the interrupt goes on up and what the end had
-- not run yet runs on the next turn.

local aigc = require "aigc"
local devserver = require "devserver"
local points = require "sweep_points"
local GUARD = require("call_forms").GUARD   -- (seconds: against a hang only)

local HI = { { role = "user", content = "hi there" } }

describe("a request's end cut by a watchdog hook", function ()
  local srv
  setup(function () srv = devserver.start { pause_ms = 0 } end)
  teardown(function () srv:stop() end)
  local jit = rawget(_G, "jit")
  before_each(function () if jit then jit.off() end end)   -- (count hooks are not called in compiled code)
  after_each(function () debug.sethook(); if jit then jit.on() end end)

  -- One run: a request with callbacks and a task waiting on it; the turns
  -- that deliver its end are cut at their n-th instruction (counted over
  -- the turns), then the loop turns with no hook. Returns whether the cut
  -- fired, and what the end gave: on_done and on_error calls, the task's result.
  local function run (client_opts, n)
    local opts = { base_url = srv.base_url, max_retries = 0, error_handler = function () end }
    for k, v in pairs(client_opts) do opts[k] = v end
    local c = aigc.client(opts)
    local got = { done = 0, failed = 0 }
    local on_done = function () got.done = got.done + 1 end
    local on_error = function () got.failed = got.failed + 1 end
    local req = c:chat_async { messages = HI, on_done = on_done, on_error = on_error }
    c:spawn(function ()
      got.co = coroutine.running()
      local r = req:wait()
      got.woke = r and r.text or "failed"
    end)
    local k, fired = 0, false
    local deadline = os.time() + GUARD
    while not fired and got.woke == nil and os.time() < deadline do
      pcall(function ()
        debug.sethook(function ()
          k = k + 1
          if k == n then
            -- (a cut inside the caller's own callback: delivered, and cut there)
            local f = debug.getinfo(2, "f").func
            got.cut_inside = f == on_done or f == on_error
            -- (LuaJIT's hooks are global: a cut in the task, resumed, is the task's own)
            got.cut_task = coroutine.running() == got.co
            debug.sethook(); fired = true; error("watchdog", 0)
          end
        end, "", 1)
        c:step(0.01)
        debug.sethook()
      end)
      debug.sethook()
    end
    -- (20 turns, and on while the request is in flight: on a loaded
    -- machine, under valgrind most, the server may answer later than 20
    -- turns of 10 ms after an early cut; GUARD s at most, against a hang)
    local guard, turns = os.time() + GUARD, 0
    while not (got.woke ~= nil and got.done + got.failed > 0) and os.time() < guard
          and (turns < 20 or req:status() == "running" or req:status() == "queued") do
      turns = turns + 1
      c:step(0.01)
    end
    for _ = 1, 3 do c:step(0) end
    got.status = req:status()
    c:close()
    return fired, got
  end

  -- What went wrong in the run cut at n (a line for `bad`), or nil.
  local function wrong (n, got, status)
    local ends = got.done + got.failed
    if not (ends == 1 or (ends == 0 and got.cut_inside)) or (got.woke == nil and not got.cut_task)
       or got.status ~= (status or "done") then
      return ("cut at %d: %d on_done, %d on_error, task %s, %s"):format(
        n, got.done, got.failed, tostring(got.woke), got.status)
    end
  end

  local function each_cut (client_opts, status)
    local bad, n = {}, 0
    repeat
      n = points.after(n)   -- (every point, but under valgrind and ASan: sweep_points)
      local fired, got = run(client_opts, n)
      bad[#bad + 1] = wrong(n, got, status)
    until not fired
    assert.is_true(n > 20)
    assert.same({}, bad)
  end

  -- A server that answers late (a loaded machine's: CI's valgrind lanes run
  -- beside five others on two cores): the end of a request cut before its
  -- answer came still comes. (The runs waited 20 turns of 10 ms, then
  -- closed the client: a request still running was counted lost.)
  it("gives on_done once and wakes the task, cut before a late answer came", function ()
    local bad = {}
    for n = 1, 3 do
      local fired, got = run({ headers = { ["x-aigc-fault"] = "delay=1000" } }, n)
      assert.is_true(fired)
      bad[#bad + 1] = wrong(n, got)
    end
    assert.same({}, bad)
  end)

  it("gives on_done once and wakes the task, counting usage, cut at every point", function ()
    each_cut {}
  end)

  it("gives on_done once and wakes the task, writing a prompt log row, cut at every point", function ()
    local log = { rows = 0 }
    function log.record_call () log.rows = log.rows + 1; return log.rows end
    each_cut { prompt_log = log }
  end)

  it("gives on_error once and wakes the task, a failed request cut at every point", function ()
    each_cut({ base_url = srv.base_url .. "/no-such-api" }, "failed")
  end)
end)
