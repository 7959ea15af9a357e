-- A task waiting on a future, or asleep in its loop, is woken whichever
-- allocation fails.
--
-- On Lua 5.1 calling a function may itself raise out of memory (the stack
-- or CallInfo list grows there), before a pcall protects anything. A
-- future's waiters were each marked taken before the pcall that ran it,
-- and a loop's sleeper was taken off its list before the call to wake:
-- when that call raised, the waker was lost and the task slept for ever
-- (the future it worked for running, a wait on it timed out). Now a waiter
-- is taken inside its pcall and a sleeper by the wake itself, and what a
-- raise left is run on the next turn of a loop.

describe("a wake out of memory", function ()
  local luachild = require "luachild"

  -- For each case, each depth d and each n in 1..last, the call runs d
  -- frames deep (where the stack must grow moves with d) and the host fails
  -- the n-th growth after it starts and the run - 1 after it. Then, with
  -- memory again, the future must settle within 1 s. (Every wait is
  -- bounded: no debug hook stops a hung one, since a hook's call can
  -- itself raise out of memory anywhere.)
  local SCRIPT = [[
    local aigc = require "aigc"
    local future = require "aigc.future"
    local run, last, depths = tonumber(arg[1]), tonumber(arg[2]), tonumber(arg[3])
    local bad, runs = {}, 0
    local function at_depth (d, fn, ...)
      if d == 0 then return fn(...) end
      return (at_depth(d - 1, fn, ...))
    end
    local cases = {
      -- a task waiting on another future (its waker is one of g's waiters)
      { "waiter", function (c)
        local g = future.new(c._loop)
        local f = future.run(c._loop, function () return g:wait() end)
        -- (g's resolve may itself fail: then it is resolved after)
        return f, function () g:resolve(1); return f:wait(1) end,
               function () if g:status() == "running" then g:resolve(1) end end
      end },
      -- a task asleep in its loop (a sleeper)
      { "sleeper", function (c)
        local f = future.run(c._loop, function () c:sleep(0); return 1 end)
        return f, function () return f:wait(1) end
      end },
    }
    for _, case in ipairs(cases) do
      for d = 0, depths do
        for n = 1, last do
          local c = aigc.client { base_url = "http://127.0.0.1:9", max_retries = 0, timeout = 5,
                                  error_handler = function () end }
          local f, go, after = case[2](c)
          aigc_host_failat(n, run)
          pcall(at_depth, d, go)
          aigc_host_failat(0)
          if after then after() end
          local ok, e = pcall(f.wait, f, 1)
          if f:status() == "running" then
            bad[#bad + 1] = case[1] .. " d" .. d .. " n" .. n .. " (" .. tostring(not ok and e or "pending") .. ")"
          end
          pcall(c.close, c)
          runs = runs + 1
        end
      end
    end
    print(runs .. " runs; " .. #bad .. " bad" .. (bad[1] and (": " .. table.concat(bad, " ")) or ""))
  ]]

  for _, run in ipairs { 1, 2, 4 } do
    it("wakes, whichever allocation fails (runs of " .. run .. ")", function ()
      local host = luachild.host()
      if not host then pending("no C compiler to build spec/support/lua_host.c"); return end
      local r = luachild.run(SCRIPT, { lua = host, args = { tostring(run), "60", "40" }, timeout = 300 })
      assert.equal(0, r.status, r.stderr)
      assert.equal("4920 runs; 0 bad\n", r.stdout)
    end)
  end
end)
