-- A host's watchdog (an error raised in a debug hook, as lua.c's Ctrl-C and
-- game hosts' frame watchdogs do) cutting a turn of a client whose task
-- waits on ANOTHER client's request: that turn drives the other client (a
-- guest). The loop kept a flag on itself while it drove its guests, set
-- before the drive and cleared after it; a cut in between left it set,
-- the guests were never driven again, and the task slept for ever
-- (`client:active()` 1 for ever). And a cut in the wake of the task, its
-- reply there, after its wait's guest was taken off the loop: the core kept
-- the wake for the other client's next turn, but nothing drove that client
-- any more (the task asleep, `client:active()` 0). The cut comes at every
-- instruction n of the turns, one run per n, until it no longer fires.

local aigc, cut, socket = require "aigc", require "watchdog_cut", require "socket"

describe("a watchdog cut in the turn that drives another client for a task", function ()
  local client, srv
  cut.fixture(_ENV, function (c, s) client, srv = c, s end)

  it("leaves the other client driven: the task gets its reply and ends, nothing counted", function ()
    local other = aigc.client { base_url = srv.base_url, max_retries = 0 }
    finally(function () other:close() end)
    local last, bad = cut.sweep(1, 20000, function (n, bad)
      local text
      local co = client:spawn(function ()
        local res, err = other:chat { messages = { { role = "user", content = "Line 2" } } }
        text = res and res.text or tostring(err)
      end)
      local state, turns = {}, 0
      while not state.fired and coroutine.status(co) ~= "dead" and turns < 2000 do
        turns = turns + 1
        local ok, e = cut.run(n, state, function () client:step(0.01) end, function (c) return c == nil end)
        if not ok and e ~= "watchdog" then bad[#bad + 1] = ("cut at %d: step() raised %s"):format(n, tostring(e)) end
      end
      local deadline = socket.gettime() + 60   -- (only against a hang, never a measure)
      while coroutine.status(co) ~= "dead" and socket.gettime() < deadline do client:step(0.01) end
      for _ = 1, 20 do
        if client:step(0) == 0 then break end
      end
      if coroutine.status(co) ~= "dead" then
        bad[#bad + 1] = ("cut at %d: the task is %s"):format(n, coroutine.status(co))
      end
      if client:active() ~= 0 then bad[#bad + 1] = ("cut at %d: %d still active"):format(n, client:active()) end
      if not tostring(text):find('"Line 2"', 1, true) then
        bad[#bad + 1] = ("cut at %d: the task's call gave %s"):format(n, tostring(text))
      end
      -- (stops at the first bad point: the next ones would each wait 60 s)
      return state.fired == true and #bad == 0
    end)
    assert.is_true(last > 50 and last < 20000, "the turns ran " .. last .. " instructions")
    assert.same({}, bad)
  end)
end)
