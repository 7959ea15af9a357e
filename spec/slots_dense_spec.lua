-- The engine's tables of handles are keyed by each request's slot, a small
-- integer given back for the next request: they stay in their array parts
-- only while their keys stay within what they hold. A request kept its
-- slot until its finalizer ran (5a73c92), which under the generational
-- collector is the next major collection: with K in flight the tables
-- held K live keys among K + every request ended since, and their hash
-- parts churned (bench/README, 2026-12-06, two pools of slots: up to 91k
-- instructions per request at 1,024 in flight). A handle's slot is now
-- given back at its end; only the core's own slot waits for the finalizer.
local devserver = require "devserver"

local params = devserver.params
local WEAK = 2   -- AIGC_EN_WEAK (src/aigc.h): slot -> every live request

describe("the engine's tables of handles", function ()
  local client
  devserver.fixture(_ENV, function (_, c) client = c end)

  local it54 = _VERSION == "Lua 5.4" and it or pending   -- (debug.getuservalue(u, n): 5.4 only)
  it54("are keyed within the requests in flight while no finalizer runs", function ()
    local K, TOTAL = 4, 60
    local started, done, failed, slots_seen = 0, 0, {}, 0
    local on_done, on_error
    local function start ()
      started = started + 1
      client:chat_async(params(nil, { on_done = on_done, on_error = on_error }))   -- (handle dropped)
    end
    on_done = function ()
      done = done + 1
      if started < TOTAL then start() end
    end
    on_error = function (e) failed[#failed + 1] = tostring(e); done = done + 1 end
    collectgarbage("stop")   -- (no finalizer runs: as when the handles die old and wait for a major)
    local ok, err = pcall(function ()
      for _ = 1, K do start() end
      while done < TOTAL do
        client:step(1)
        for slot in pairs(debug.getuservalue(client._engine, WEAK)) do
          if slot > slots_seen then slots_seen = slot end
        end
      end
    end)
    collectgarbage("restart")
    assert(ok, err)
    assert.same({}, failed)
    assert.equal(TOTAL, done)
    assert.is_true(slots_seen >= 1)   -- (the table was read while requests were in flight)
    assert.is_true(slots_seen <= 2 * K, "the largest slot key was " .. slots_seen)
  end)
end)
