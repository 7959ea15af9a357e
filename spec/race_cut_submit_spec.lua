-- race and best_of cut by a host's watchdog (a count hook that raises
-- once) at every instruction of aigc's code that starts their requests
-- (the strategies, the judge's send, the adapter, the client's submit):
-- the cut propagates, and every request the strategy started is canceled
-- -- none runs on to its end (its on_done, billed) after the cut.
--
-- One did: cut between engine:submit returning and the request's store in
-- the strategy's list of what it started (the list a cut cancels), the
-- request ran on unseen. engine:submit now stores it into that list itself
-- (util.submit_into) before it returns.

local strategy = require "aigc.strategy"
local wd = require "watchdog_cut"

local HI = { { role = "user", content = "hi there" } }

-- The instructions counted: the code between a strategy and engine:submit.
local function counted (info)
  local src = info.source
  return src:find("aigc[/\\]strategy") ~= nil or src:find("aigc[/\\]judge%.lua$") ~= nil
         or src:find("aigc[/\\]adapter%.lua$") ~= nil or src:find("aigc[/\\]client%.lua$") ~= nil
end

describe("race and best_of cut while they start their requests", function ()
  local client
  wd.fixture(_ENV, function (c) client = c end)

  local function each_cut (run)
    local c = client
    local state = {}
    local function on_done () if state.cut then state.after = (state.after or 0) + 1 end end
    assert.truthy(run(c, on_done))   -- (the modules loaded)
    local n, bad = wd.sweep(1, 3000, function (k, bad)
      state.cut, state.after = false, nil
      local fired, ok, e = wd.cut(k, function () return run(c, on_done) end, counted)
      state.cut = fired
      if fired and (ok or e ~= "watchdog") then
        bad[#bad + 1] = ("cut at %d: gave %s"):format(k, ok and "no error" or tostring(e))
      end
      wd.drain(c, bad, k)   -- (what is left, ended)
      if state.after then
        bad[#bad + 1] = ("cut at %d: %d request(s) ran on to on_done after the cut"):format(k, state.after)
      end
      return fired
    end)
    assert.is_true(n > 50 and n < 3000)
    assert.same({}, bad)
    assert.truthy(c:chat { messages = HI })   -- (the client goes on)
  end

  it("race: every request it started is canceled, cut at every point", function ()
    each_cut(function (c, on_done)
      return strategy.race { params = { messages = HI, on_done = on_done }, { client = c }, { client = c },
                             { client = c } }
    end)
  end)

  it("best_of: every request it started is canceled, cut at every point", function ()
    each_cut(function (c, on_done)
      return strategy.best_of { client = c, n = 3, params = { messages = HI, on_done = on_done },
                                score = function (t) return #t end }
    end)
  end)
end)
