-- A say_async's work (the task that makes the say's request and waits
-- for it) cut by a host's watchdog hook at any instruction, the hook following into every
-- task from the start: the interrupt reaches step()'s caller as it is (a
-- watchdog's error is an interrupt, README "Lifecycle"), and the future
-- ends once -- done, or failed with the task's INTERRUPTED error -- its
-- on_done/on_error once by the next step, the task waiting on it woken.
--
-- It was not: the work ran under a plain pcall, which took the watchdog
-- for the work's own error: the future failed with a callback error
-- ("error in a conversation's say: watchdog"), reported, and step()
-- returned as if nothing had happened. And a cut inside the future's
-- settle, between its stores, ended it "done" with its end neither
-- posted nor listed: no on_done, the waiting task asleep for ever.
--
-- Only where a cut in a task can be told (PUC 5.3, 5.4: the hook's frame
-- is on the task's stack); PUC 5.3 still has the open gap of
-- future_cut_spec (pending there with its reason).

local sweep = require "future_sweep"

describe("a future's work cut by a watchdog hook", function ()
  local srv, surfaces
  sweep.fixture(_ENV, function (s, t) srv, surfaces = s, t end)

  it("say_async: the watchdog reaches step()'s caller, the future ends once, cut at every point", function ()
    if not sweep.TELLS_TASK_CUTS then
      return pending("a cut inside a task is not told on " .. _VERSION .. " (README: no frame names a hook)")
    end
    local bad, n, after, left = sweep.each_cut(srv, surfaces.say_async, "work")
    -- (the client goes on: a call after the sweep, and nothing left active)
    assert.same({ bad = {}, swept = true, after = true, left = 0 },
                { bad = bad, swept = n > 20, after = after ~= nil, left = left })
  end)
end)
