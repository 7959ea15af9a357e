-- A future's end cut by a host's watchdog hook (future_cut_spec), with
-- aigc's Lua modules loaded stripped of their debug information, as a game
-- may ship them (`luac -s`, `string.dump(f, true)`): still exactly one
-- on_done/on_error by the next step, the waiting task woken.
--
-- Stripped, the end lost its callback: run_end told whether a cut task
-- had called it by the line its frame stood at (debug.getinfo's
-- currentline), which is -1 there -- counted as called, so a cut before the
-- call ran neither on_done nor on_error.
--
-- The sweep runs in a child process (spec/support/stripped_sweep.lua): the
-- stripped copies of aigc's modules, and the marks they leave in aigc.core,
-- must not outlive this file (run in the busted process, on LuaJIT a later
-- watchdog_counting_spec of the same run failed 4 of 7; the file was
-- pending there).

local devserver = require "devserver"
local luachild = require "luachild"

local SURFACES = { "say_async", "chat_async_toolset" }

describe("a future's end cut by a watchdog hook, aigc loaded stripped", function ()
  local srv, child, swept, bad
  setup(function ()
    srv = devserver.start { pause_ms = 0 }
    local args = { srv.base_url }
    for _, name in ipairs(SURFACES) do args[#args + 1] = name end
    -- (600 s: a guard against a hang only)
    child = luachild.run('dofile("spec/support/stripped_sweep.lua")(...)', { args = args, timeout = 600 })
    swept, bad = {}, {}
    for name, n, after, left in child.stdout:gmatch("\nsweep (%S+) (%d+) (%S+) (%S+)") do
      swept[name] = { n = tonumber(n), after = after == "true", left = tonumber(left) }
      bad[name] = {}
    end
    for name, line in child.stdout:gmatch("\nbad ([^:]+): ([^\n]*)") do
      bad[name][#bad[name] + 1] = line
    end
  end)
  teardown(function () srv:stop() end)

  it("the child ran to its end, its modules stripped (no line information)", function ()
    assert.equal(0, child.status, child.stderr)
    assert.equal("true", child.stdout:match("^stripped (%S+)\n"))
    local line = tonumber(child.stdout:match("\nline (%S+)\n"))
    assert.is_true(line ~= nil and line <= 0, "line " .. tostring(line))   -- (-1; 0 on 5.1)
  end)

  for _, name in ipairs(SURFACES) do
    it(name .. ": one on_done, the task wakes, cut at every point", function ()
      local s = swept[name]
      assert.is_table(s, child.stderr)
      assert.is_true(s.after)
      assert.equal(0, s.left)
      assert.is_true(s.n > 20)
      assert.same({}, bad[name])
    end)
  end
end)
