-- examples/autoreply.lua (users copy examples): its figures must be true.
-- Its 50 tasks start together and each waits for a reply, so more than the
-- client's cap of 8 wait at once; the old example showed
-- min(client:active(), 8), which could never say more than 8.
local devserver = require "devserver"
local proc = require "procutil"


describe("examples/autoreply.lua", function ()
  local srv
  setup(function () srv = devserver.start { pause_ms = 0 } end)
  teardown(function () if srv then srv:stop() end end)

  it("reports how many emails waited for a reply at once, beyond the cap it queued them at", function ()
    -- (the interpreter under test, with this checkout's aigc)
    local cmd = string.format("env -u OPENAI_API_KEY OPENAI_BASE_URL=%s AIGC_MODEL=aigc-dev timeout 120 %s %s"
      .. " </dev/null",
      proc.quote(srv.base_url), proc.lua_command(), proc.quote(proc.root() .. "/examples/autoreply.lua"))
    local ok, out = proc.sh(cmd)
    assert.is_true(ok, out)
    local answered, peak = out:match("\n(%d+) emails answered in [%d.]+ s %((%D*%d+)")
    assert.equal("50", answered, out)
    peak = tonumber(peak:match("%d+$"))
    assert.is_true(peak > 8 and peak <= 50, out)
    -- every progress line: the answered and the waiting make at most the 50 emails
    local lines = 0
    for done, waiting in out:gmatch("(%d+)/50 answered, +(%d+) waiting") do
      lines = lines + 1
      assert.is_true(tonumber(done) + tonumber(waiting) <= 50, out)
    end
    assert.is_true(lines > 0, out)
  end)
end)
