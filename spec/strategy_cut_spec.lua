-- race and best_of cut by a host's watchdog (a count hook that raises
-- once) at their n-th instruction, every 5th n: no stream callback (nor
-- score) of the caller's runs after the cut, every request ends, and the
-- client goes on. Cut between a candidate's submit and its place in the
-- list that cancel_on_error cancels, the candidate ran on: its stream
-- callback ran after the interrupt, in the loop's next turns. Now the
-- strategies' stream callbacks are dropped once the run was cut
-- (strategy_shared.guarded).

local strategy = require "aigc.strategy"
local wd = require "watchdog_cut"

local HI = { { role = "user", content = "hi there" } }

describe("race and best_of cut by a watchdog hook", function ()
  local client
  wd.fixture(_ENV, function (c) client = c end)

  local function each_cut (run)
    local c = client
    assert.truthy(run(c, function () end))   -- (the modules loaded)
    local n, bad = wd.sweep(5, 6000, function (n, bad)
      local state = {}
      local fired = wd.cut(n, function ()
        return run(c, function (kind) if state.cut then state.after = kind end end)
      end)
      state.cut = fired
      wd.drain(c, bad, n)   -- (what is left, ended)
      if state.after then bad[#bad + 1] = ("cut at %d: its %s callback ran after the cut"):format(n, state.after) end
      local r, err = c:chat { messages = HI }
      if not r then bad[#bad + 1] = ("the call after the cut at %d: %s"):format(n, tostring(err)) end
      return fired
    end)
    assert.is_true(n > 200 and n < 6000)
    assert.same({}, bad)
  end

  it("race: runs no stream callback after the cut, cut at every 5th point", function ()
    each_cut(function (c, user)
      return strategy.race { params = { messages = HI, stream = function () user("stream") end },
                             { client = c }, { client = c }, { client = c } }
    end)
  end)

  it("best_of: runs no stream callback nor score after the cut, cut at every 5th point", function ()
    each_cut(function (c, user)
      return strategy.best_of { client = c, n = 3, params = { messages = HI, stream = function () user("stream") end },
                                score = function (t) user("score"); return #t end }
    end)
  end)
end)
