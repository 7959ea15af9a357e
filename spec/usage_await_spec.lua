-- A blocking call's end counted by the usage totals (aigc.hooks' `await`,
-- the counting-only client's straight line): an error raised while counting
-- is dropped (the caller gets its reply, the client goes on), but an error
-- raised in a debug hook there -- an interrupt: lua.c's Ctrl-C, a host's
-- watchdog -- reaches the caller. Real HTTP to the bundled server.
local devserver = require "devserver"

local jit_off = rawget(_G, "jit") and rawget(_G, "jit").off or function () end

local HI = { { role = "user", content = "Hi" } }

describe("usage totals at a blocking call's end", function ()
  local client

  devserver.fixture(_ENV, function (_, c) client = c end, { api_key = "sk-test-await-5d1a" })

  it("drops an error of the count and passes an interrupt on", function ()
    local totals = rawget(client, "_usage")
    assert.is_table(totals)
    totals.record = function () error("the count broke") end
    local res, err = client:chat { model = "m", messages = HI, temperature = 0.5 }
    assert.is_nil(err)
    assert.is_string(res.text)

    local function interrupting ()
      debug.sethook(function ()
        debug.sethook()
        error("interrupted!")
      end, "c")
      return tostring(1)   -- (a call: the hook runs and raises)
    end
    jit_off(interrupting)
    totals.record = interrupting
    local ok, e = pcall(client.chat, client, { model = "m", messages = HI, temperature = 0.5 })
    debug.sethook()
    assert.is_false(ok)
    assert.matches("interrupted!", tostring(e), 1, true)

    totals.record = nil   -- (the class's again)
    local before = client:usage().requests
    assert(client:chat { model = "m", messages = HI, temperature = 0.5 })
    assert.equal(before + 1, client:usage().requests)
  end)
end)
