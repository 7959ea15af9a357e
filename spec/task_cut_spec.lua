-- A task's wake and end survive a host's watchdog hook that cuts a turn
-- at any instruction, even when the end it leaves then raises out again.
--
-- A host's watchdog (a count hook that raises to end a frame that ran too
-- long) may cut client:step() between any two instructions. Cut there:
-- a sleeper taken off its loop's list before the wake (the task asleep
-- for ever); a task marked for the list of pending ends but not on it,
-- never listed again, so that an end that then raised out was not retried
-- (the task dead, its future running for ever); the resume's outcome lost
-- before it was kept; a task's end hook (which fails its future) dropped
-- after one raise. Each case here: the turn that wakes the task is cut
-- at its n-th instruction, for every n; then the task's end is made to
-- raise out (its 8 tries and the last); then the loop turns with no hook.
-- The future the task works for must have ended.

local aigc = require "aigc"
local future = require "aigc.future"
local task = require "aigc.task"

describe("a task under a watchdog hook", function ()
  local function upvalue (fn, name)
    for i = 1, 255 do
      local n, v = debug.getupvalue(fn, i)
      if n == nil then break end
      if n == name then return v end
    end
    error("no upvalue " .. name)
  end
  local after_resume = upvalue(upvalue(upvalue(task.SCHED.wake, "resume_task"), "finish_resume"), "after_resume")

  -- `make(c)` starts a task that waits and then fails (outside any pcall of
  -- its own: its end hook fails the future), and returns that future.
  local cases = {
    { "sleeper", function (c)
      local f = future.new(c._loop)
      task.spawn_guarded(c._loop, function () c:sleep(0); error("boom") end, "a task",
                         function (e) return f:reject(e) end)
      return f
    end },
  }

  -- Runs step(0) with a count hook that raises at the n-th instruction.
  local function cut_step (c, n)
    local k = 0
    pcall(function ()
      debug.sethook(function () k = k + 1; if k == n then error("cut", 0) end end, "", 1)
      c:step(0)
      debug.sethook()
    end)
    debug.sethook()
    return k
  end

  -- Runs step(0) with every call of the task's end raising (9 times).
  local function end_raises (c)
    local left = 9
    pcall(function ()
      debug.sethook(function ()
        if left > 0 and debug.getinfo(2, "f").func == after_resume then left = left - 1; error("cut end", 0) end
      end, "", 1)
      c:step(0)
      debug.sethook()
    end)
    debug.sethook()
  end

  for _, case in ipairs(cases) do
    it("ends its future, cut at every point (" .. case[1] .. ")", function ()
      local jit = rawget(_G, "jit")
      if jit then jit.off() end   -- (count hooks are not called in compiled code)
      local bad, n, k = {}, 0, 1
      while n <= k + 2 do   -- (until a turn runs to its end uncut)
        n = n + 1
        local c = aigc.client { base_url = "http://127.0.0.1:9", error_handler = function () end }
        local f = case[2](c)
        k = cut_step(c, n)
        end_raises(c)
        for _ = 1, 5 do pcall(c.step, c, 0) end
        if f:status() == "running" then bad[#bad + 1] = n end
        c:close()
      end
      if jit then jit.on() end
      assert.is_true(n > 100, "cut at " .. n .. " points")
      assert.equal("cut at every point; bad: ", "cut at every point; bad: " .. table.concat(bad, " "))
    end)
  end
end)
