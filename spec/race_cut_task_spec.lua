-- A race run in a task, its turns cut by a host's watchdog hook at every
-- instruction of the main thread (where the loop runs the entries'
-- callbacks): the interrupt reaches step()'s caller, the race still ends
-- -- its winner the fast entry, the slow ones canceled, not left running
-- -- and the client goes on.
--
-- It did not: a cut inside the winner's on_done (which the C core counts
-- as run) after it took the win but before it resolved the race's future
-- left that future "running": the race waited on, and the losers' requests
-- ran to their end, billed, after the strategy should have ended; cut
-- inside that resolve, between its stores, the future was "done" with no
-- end, and the task waiting on it slept for ever.

local wd = require "watchdog_cut"

local HI = { { role = "user", content = "hi there" } }
-- (the losers answer after 5 s: a race that cancels them ends long before)
local SLOW = { messages = HI, headers = { ["x-aigc-fault"] = "delay=5000" } }

describe("a race in a task cut by a watchdog hook", function ()
  local client
  wd.fixture(_ENV, function (c) client = c end)   -- (a server with no pauses; the JIT off, no hook left)

  -- One run cut at the main thread's n-th instruction: whether it fired, and what went wrong.
  local function one (c, n, bad)
    local got, fired = wd.race_turns(c, { { client = c, params = { messages = HI } },
                                          { client = c, params = SLOW }, { client = c, params = SLOW } }, n, bad)
    -- (the race ends as soon as the fast entry won: until then, only a guard against a hang)
    local guard = os.time() + 30
    while not got.ended and os.time() < guard do c:step(0.01) end
    if not got.ended then
      bad[#bad + 1] = ("cut at %d: the race never ended"):format(n)
    else
      local o = got.outcomes
      if not got.res or o.winner ~= 1 or o[2].status ~= "canceled" or o[3].status ~= "canceled" then
        bad[#bad + 1] = ("cut at %d: %s, winner %s, entries %s %s %s (%s)"):format(n,
          tostring(got.res and "res" or got.err), tostring(o and o.winner), o and o[1].status, o and o[2].status,
          o and o[3].status, tostring(o and (o[2].err or o[3].err)))
      end
    end
    wd.drain(c, bad, n)
    while c:active() > 0 and os.time() < guard do c:step(0.01) end
    return fired
  end

  it("raises the watchdog, still ends with the losers canceled, cut at every point", function ()
    local c = client
    local bad = {}
    assert.is_false(one(c, 1e9, bad))   -- (the modules loaded; no cut)
    assert.same({}, bad)
    local n
    n, bad = wd.sweep(1, 5000, function (k, b) return one(c, k, b) end)
    assert.is_true(n > 100 and n < 5000)
    assert.same({}, bad)
    assert.truthy(c:chat { messages = HI })   -- (the client goes on)
  end)
end)
