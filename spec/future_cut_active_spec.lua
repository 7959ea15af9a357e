-- A future's end that a host's watchdog (an error raised in a debug hook)
-- cut before it was posted to the loop is counted by client:active() until
-- it ran: a script that steps `while client:active() > 0` gets its on_done.
--
-- It was not: the end stayed on the futures' own list of ends to finish
-- (the next turn runs it), active() said 0, and such a loop stopped before
-- on_done ran.

local aigc = require "aigc"
local future = require "aigc.future"
local client_loop = require "aigc.client_loop"

describe("a future's end cut before it was posted", function ()
  local jit = rawget(_G, "jit")
  before_each(function () if jit then jit.off() end end)
  after_each(function () debug.sethook(); if jit then jit.on() end end)

  it("is counted by active() until it ran; the loop then runs on_done once", function ()
    local c = aigc.client { base_url = "http://127.0.0.1:9/v1", api_key = "sk-fake", max_retries = 0 }
    local calls = 0
    local f = future.new(c._loop, { on_done = function () calls = calls + 1 end })
    -- (the watchdog fires as resolve posts the end: at the call of client_loop.post)
    local fired = false
    debug.sethook(function ()
      if debug.getinfo(2, "f").func == client_loop.post then
        debug.sethook()
        fired = true
        error("watchdog", 0)
      end
    end, "c")
    local ok, e = pcall(f.resolve, f, { text = "hi" })
    debug.sethook()
    assert.is_true(fired)
    assert.is_false(ok)
    assert.equal("watchdog", e)
    assert.equal("done", f:status())
    assert.equal(0, calls)
    assert.equal(1, c:active())
    local turns = 0
    while c:active() > 0 and turns < 100 do
      turns = turns + 1
      c:step(0)
    end
    assert.equal(1, calls)
    assert.equal(0, c:active())
    c:close()
  end)
end)
