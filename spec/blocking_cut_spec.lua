-- A blocking call with a stream callback cut by a host's watchdog (a count
-- hook that raises once) at its n-th instruction in aigc's client code,
-- for every n: the interrupt reaches the caller as it is, and no code of
-- the caller's runs after it. Cut between the request's submit and the
-- wait for it (two Lua calls then), the request ran on with nobody
-- waiting: the loop's next turns delivered its events to the cut call's
-- stream callback. Now a blocking call
-- is submitted and waited for in one C call (engine:call).

local devserver = require "devserver"

local HI = { { role = "user", content = "hi there" } }
local FILES = { "aigc/client.lua", "aigc/responses.lua", "aigc/hooks.lua" }

describe("a blocking streamed call cut by a watchdog hook", function ()
  local client
  devserver.fixture(_ENV, function (_, c) client = c end, nil, nil, { pause_ms = 0 })
  local jit = rawget(_G, "jit")
  before_each(function () if jit then jit.off() end end)   -- (count hooks are not called in compiled code)
  after_each(function () debug.sethook(); if jit then jit.on() end end)

  local function in_files (src)
    for _, f in ipairs(FILES) do if src:find(f, 1, true) then return true end end
    return false
  end

  -- call(c, on_delta) cut at its n-th instruction inside FILES: whether
  -- the cut fired, and what the call gave.
  local function cut_call (call, c, n, on_delta)
    local k, fired = 0, false
    local ok, e = pcall(function ()
      debug.sethook(function ()
        local info = debug.getinfo(2, "S")
        if info and in_files(info.source) then
          k = k + 1
          if k == n then debug.sethook(); fired = true; error("watchdog", 0) end
        end
      end, "", 1)
      local r, err = call(c, on_delta)
      debug.sethook()
      return r or err
    end)
    debug.sethook()
    return fired, ok, e
  end

  local function each_cut (call)
    local c = client
    assert.truthy(call(c, function () end))   -- (the modules loaded)
    local bad, n = {}, 0
    repeat
      n = n + 1
      local state = {}
      local fired, ok, e = cut_call(call, c, n, function () if state.cut then state.after = true end end)
      state.cut = fired
      if fired and (ok or e ~= "watchdog") then bad[#bad + 1] = ("cut at %d: %s"):format(n, tostring(e)) end
      if not fired and not (ok and type(e) == "table" and e.text) then
        bad[#bad + 1] = ("not cut (%d): %s"):format(n, tostring(e))
      end
      local r, err = c:chat { messages = HI }   -- (its wait drives the engine)
      if not r then bad[#bad + 1] = ("the call after the cut at %d: %s"):format(n, tostring(err)) end
      local guard = os.time() + 10   -- (a guard against a hang only)
      while c._engine:active() > 0 and os.time() < guard do c:step(0.01) end   -- (what is left, ended)
      if c._engine:active() > 0 then bad[#bad + 1] = ("cut at %d: a request never ended"):format(n) end
      if state.after then bad[#bad + 1] = ("cut at %d: its stream callback ran after the cut"):format(n) end
    until not fired or n == 3000
    assert.is_true(n > 50 and n < 3000)
    assert.same({}, bad)
  end

  it("respond: raises the watchdog as it is, and runs no callback after it, cut at every point", function ()
    each_cut(function (c, on_delta) return c:respond { input = "hi there", stream = on_delta } end)
  end)

  it("chat: raises the watchdog as it is, and runs no callback after it, cut at every point", function ()
    each_cut(function (c, on_delta) return c:chat { messages = HI, stream = on_delta } end)
  end)
end)
