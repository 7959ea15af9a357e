-- The iterator of client:stream must not wait for an event that was
-- delivered while it was preparing to wait. Stream:__call made the "stream
-- event" future (an allocation: a finalizer may run there and drive the
-- client, as the lifecycle tester's `arm` finalizers do) and only then
-- registered it; chunks or the end delivered in between woke nobody and the
-- loop waited for ever (lifecycle seed 305479 seq 3 on LuaJIT, 1 in ~8
-- replays). Here the driving is made deterministic: future.new is wrapped
-- so that its first "stream event" call drives the client until the
-- request has ended, as such a finalizer does. The iteration runs in a
-- child process under timeout(1), so the old hang is a failure, not a
-- stuck suite.

local devserver = require "devserver"
local proc = require "procutil"

local SCRIPT = [[
local aigc = require "aigc"
local future = require "aigc.future"
local client = aigc.client { base_url = %q, max_retries = 0, timeout = 10 }
local real_new, drove = future.new, false
future.new = function (loop, opts)
  if not drove and type(opts) == "table" and opts.label == "stream event" then
    drove = true
    -- What a finalizer run by this allocation may do: drive the client.
    local req = opts.request
    while req:status() == "queued" or req:status() == "running" do client:step(0.05) end
  end
  return real_new(loop, opts)
end
local text = {}
for delta in client:stream { messages = { { role = "user", content = "Hi" } } } do text[#text + 1] = delta end
io.write("drove: ", tostring(drove), "; text: ", table.concat(text), "\n")
client:close()
]]

describe("client:stream's iterator", function ()
  local srv
  setup(function () srv = devserver.start() end)
  teardown(function () if srv then srv:stop() end end)

  it("delivers the stream when its end came while the iterator was preparing to wait", function ()
    local cmd = "timeout -k 5 30 " .. proc.lua_command() .. " -e " .. proc.quote(SCRIPT:format(srv.base_url))
    local ok, out = proc.sh(cmd)
    assert.is_true(ok, "the iteration did not end within 30 s (status 124 = hang): " .. out)
    assert.matches("drove: true; text: %S", out)
  end)
end)
