-- A conversation's say cut by a host's watchdog (a count hook that raises
-- once, as lua.c's Ctrl-C does) at its n-th instruction, for every n: the
-- interrupt reaches the caller as it is, the history keeps the whole turn
-- or none of it, and the next say works. Three cuts went wrong: inside
-- the check of the say's params (a pcall that turns what it catches into
-- a misuse message) the watchdog came back as "bad argument #2 to 'say'
-- (watchdog)"; between the turn's appends the user's message was kept
-- without its reply; after the say's protected call, before it let go of
-- the conversation, every later say was "busy" for ever.

local aigc = require "aigc"
local devserver = require "devserver"
local points = require "sweep_points"

local HISTORY = { { role = "system", content = "You are Sam." }, { role = "user", content = "Hello" },
                  { role = "assistant", content = "Hi! How can I help?" } }

describe("a conversation's say cut by a watchdog hook", function ()
  local client
  devserver.fixture(_ENV, function (_, c) client = c end, { max_retries = 0 })
  local jit = rawget(_G, "jit")
  before_each(function () if jit then jit.off() end end)   -- (count hooks are not called in compiled code)
  after_each(function () debug.sethook(); if jit then jit.on() end end)

  local function fresh ()
    local msgs = {}
    for i, m in ipairs(HISTORY) do msgs[i] = { role = m.role, content = m.content } end
    return aigc.conversation { client = client, messages = msgs }
  end

  -- conv:say cut at its n-th instruction: whether the cut fired, and what the say gave.
  local function cut_say (conv, n)
    local k, fired = 0, false
    local ok, e = pcall(function ()
      debug.sethook(function ()
        k = k + 1
        if k == n then debug.sethook(); fired = true; error("watchdog", 0) end
      end, "", 1)
      local reply = conv:say "Where is my order?"
      debug.sethook()
      return reply
    end)
    debug.sethook()
    return fired, ok, e
  end

  it("raises the watchdog as it is, keeps a whole turn or none, and says again, cut at every point", function ()
    assert.truthy(fresh():say "warm up")   -- (the modules loaded)
    local bad, n = {}, 0
    repeat
      n = points.after(n)   -- (every point, but under valgrind and ASan: sweep_points)
      local conv = fresh()
      local fired, ok, e = cut_say(conv, n)
      local grew, msgs = #conv.messages - #HISTORY, conv.messages
      if fired and (ok or e ~= "watchdog") then bad[#bad + 1] = ("cut at %d: %s"):format(n, tostring(e)) end
      if not fired and not (ok and e) then bad[#bad + 1] = ("not cut (%d): %s"):format(n, tostring(e)) end
      if not (grew == 0 or grew == 2 and msgs[4].role == "user" and msgs[5].role == "assistant") then
        bad[#bad + 1] = ("cut at %d: the history grew by %d"):format(n, grew)
      end
      local said, reply, err = pcall(conv.say, conv, "And now?")
      if not (said and reply) then bad[#bad + 1] = ("say after the cut at %d: %s"):format(n, tostring(err or reply)) end
    until not fired or n >= 5000
    assert.is_true(n > 500 and n < 5000)
    assert.same({}, bad)
  end)
end)
