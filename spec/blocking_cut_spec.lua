-- A blocking call with a stream callback cut by a host's watchdog (a count
-- hook that raises once) at its n-th instruction in aigc's client code,
-- for every n: the interrupt reaches the caller as it is, and no code of
-- the caller's runs after it. Cut between the request's submit and the
-- wait for it (two Lua calls then), the request ran on with nobody
-- waiting: the loop's next turns delivered its events to the cut call's
-- stream callback. Now a blocking call
-- is submitted and waited for in one C call (engine:call).

local wd = require "watchdog_cut"

local HI = { { role = "user", content = "hi there" } }
local FILES = { "aigc/client.lua", "aigc/responses.lua", "aigc/hooks.lua" }

describe("a blocking streamed call cut by a watchdog hook", function ()
  local client
  wd.fixture(_ENV, function (c) client = c end)

  local function in_files (info)
    for _, f in ipairs(FILES) do if info and info.source:find(f, 1, true) then return true end end
    return false
  end

  local function each_cut (call)
    local c = client
    assert.truthy(call(c, function () end))   -- (the modules loaded)
    local n, bad = wd.sweep(1, 3000, function (n, bad)
      local state = {}
      local fired, ok, e = wd.cut(n, function ()
        local r, err = call(c, function () if state.cut then state.after = true end end)
        return r or err
      end, in_files)
      state.cut = fired
      if fired and (ok or e ~= "watchdog") then bad[#bad + 1] = ("cut at %d: %s"):format(n, tostring(e)) end
      if not fired and not (ok and type(e) == "table" and e.text) then
        bad[#bad + 1] = ("not cut (%d): %s"):format(n, tostring(e))
      end
      local r, err = c:chat { messages = HI }   -- (its wait drives the engine)
      if not r then bad[#bad + 1] = ("the call after the cut at %d: %s"):format(n, tostring(err)) end
      wd.drain(c, bad, n)   -- (what is left, ended)
      if state.after then bad[#bad + 1] = ("cut at %d: its stream callback ran after the cut"):format(n) end
      return fired
    end)
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
