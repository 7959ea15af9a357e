-- A blocking wait whose end is already posted to the loop does not wait on
-- the sockets first. A turn waited its whole slice (50 ms) for the network
-- before it ran the deliveries posted to it; a future whose end was posted
-- (resolved by a task that waited on another future, say) made every
-- blocking wait on it 50 ms longer. The turn's wait is 0 while deliveries
-- are posted.

local aigc = require "aigc"
local future = require "aigc.future"

describe("a blocking wait with an end posted", function ()
  -- The client's engine, seen through a stand-in that records the timeout
  -- of each wait on the sockets (step, or drive where the core has it).
  local function recorded (c)
    local engine, timeouts = c._loop.engine, {}
    c._loop.engine = setmetatable({}, { __index = function (_, k)
      local v = engine[k]
      if type(v) ~= "function" then return v end
      return function (_, ...)
        if k == "step" or k == "drive" or k == "pump" then timeouts[#timeouts + 1] = (...) end
        return v(engine, ...)
      end
    end })
    return timeouts, function () c._loop.engine = engine end
  end

  it("does not wait on the sockets for it", function ()
    local c = aigc.client { base_url = "http://127.0.0.1:9" }
    local g = future.new(c._loop)
    local f = future.run(c._loop, function () return g:wait() end)
    g:resolve(7)   -- (its end is posted: the task waiting on g wakes from the loop)
    local timeouts, restore = recorded(c)
    local res, err = f:wait()
    restore()
    c:close()
    assert.same({ 7, nil }, { res, err })
    assert.is_true(#timeouts >= 1)
    for i, t in ipairs(timeouts) do assert.equal(0, t, "wait " .. i) end
  end)

  it("still waits when nothing is posted (a sleep)", function ()
    local c = aigc.client { base_url = "http://127.0.0.1:9" }
    local f = future.run(c._loop, function () c:sleep(0.02); return 1 end)
    local timeouts, restore = recorded(c)
    assert.equal(1, (f:wait()))
    restore()
    c:close()
    local waited = 0
    for _, t in ipairs(timeouts) do waited = waited + t end
    assert.is_true(waited > 0)
  end)
end)
