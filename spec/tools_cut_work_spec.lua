-- A chat_async with a toolset (the tool-call loop: a request, the tool
-- run, the next request) cut by a host's watchdog hook at any instruction,
-- the hook following into every task from the start: the interrupt reaches
-- step()'s caller as it is (README "Lifecycle"), and the future ends once
-- -- done, or failed with the task's INTERRUPTED error -- its
-- on_done/on_error once by the next step, the task waiting on it woken.
--
-- Every cut point (~3,000) reaches step()'s caller: none is swallowed by
-- the tool call's guarded_xpcall (tools.lua) or the dialogue loop's (a
-- gap an earlier sweep by hand reported, ~11 points, not seen here).
-- Only where a cut in a task can be told (PUC 5.3, 5.4: the hook's frame
-- is on the task's stack).

local sweep = require "future_sweep"

describe("a chat_async with a toolset cut by a watchdog hook in its work", function ()
  local srv, surfaces
  sweep.fixture(_ENV, function (s, t) srv, surfaces = s, t end)

  it("the watchdog reaches step()'s caller, the future ends once, cut at every point", function ()
    if not sweep.TELLS_TASK_CUTS then
      return pending("a cut inside a task is not told on " .. _VERSION .. " (README: no frame names a hook)")
    end
    local bad, n, after, left = sweep.each_cut(srv, surfaces.chat_async_toolset, "work")
    assert.same({ bad = {}, swept = true, after = true, left = 0 },
                { bad = bad, swept = n > 20, after = after ~= nil, left = left })
  end)
end)
