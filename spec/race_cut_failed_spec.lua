-- A race run in a task whose entries fail, its turns cut by a host's
-- watchdog hook at every third instruction of the main thread (where the
-- loop runs the entries' callbacks): the interrupt reaches step()'s
-- caller, and the race still ends as it would have -- the one entry that
-- succeeds wins, every other one is told "failed" (or "canceled"); with
-- every entry failing, the race fails with the last one's error -- and the
-- client goes on.
--
-- It did not: an entry whose on_error the cut stopped (the core does not
-- run a cut callback again) stayed "running" in the race's outcomes after
-- the race returned; and when every entry failed, the race failed with
-- "every client of the race was closed" (kind "canceled"), not their error.

local wd = require "watchdog_cut"

local HI = { { role = "user", content = "hi there" } }
-- (the winner answers last: the others have failed by then)
local LATE = { messages = HI, headers = { ["x-aigc-fault"] = "delay=50" } }
local FAILS = { messages = HI, headers = { ["x-aigc-fault"] = "status=500" } }

describe("a race in a task whose entries fail, cut by a watchdog hook", function ()
  local client
  wd.fixture(_ENV, function (c) client = c end)   -- (a server with no pauses; the JIT off, no hook left)

  -- One run of a race of `entries` cut at the main thread's n-th
  -- instruction: whether it fired; what went wrong goes to `bad`.
  local function one (c, entries, n, bad, check)
    local got, fired = wd.race_turns(c, entries, n, bad)
    local guard = os.time() + 30   -- (only a guard against a hang)
    while not got.ended and os.time() < guard do c:step(0.01) end
    if not got.ended then
      bad[#bad + 1] = ("cut at %d: the race never ended"):format(n)
    else
      local why = check(got)
      if why then bad[#bad + 1] = ("cut at %d: %s"):format(n, why) end
    end
    wd.drain(c, bad, n)
    return fired
  end

  local function statuses (o)
    local t = {}
    for i = 1, #o do t[i] = tostring(o[i].status) end
    return table.concat(t, " ")
  end

  local function sweep (entries, check)
    local c = client
    local bad = {}
    assert.is_false(one(c, entries(c), 1e9, bad, check))   -- (the modules loaded; no cut)
    assert.same({}, bad)
    local n
    n, bad = wd.sweep(3, 5000, function (k, b) return one(c, entries(c), k, b, check) end)
    assert.is_true(n > 100 and n < 5000)
    assert.same({}, bad)
    assert.truthy(c:chat { messages = HI })   -- (the client goes on)
  end

  it("the one success wins, the others failed, cut at every third point", function ()
    sweep(function (c)
      return { { client = c, params = LATE }, { client = c, params = FAILS }, { client = c, params = FAILS } }
    end, function (got)
      local o = got.outcomes
      local function lost (x) return x.status == "failed" or x.status == "canceled" end
      if not got.res or o.winner ~= 1 or not lost(o[2]) or not lost(o[3]) then
        return ("%s, winner %s, entries %s"):format(tostring(got.res and "res" or got.err), tostring(o.winner),
                                                    statuses(o))
      end
    end)
  end)

  it("every entry failed: the race fails with their error, cut at every third point", function ()
    sweep(function (c)
      return { { client = c, params = FAILS }, { client = c, params = FAILS } }
    end, function (got)
      local o = got.outcomes
      if got.res or got.err.kind ~= "http" or o[1].status ~= "failed" or o[2].status ~= "failed" then
        return ("%s, entries %s"):format(tostring(got.res and "res" or got.err), statuses(o))
      end
    end)
  end)
end)
