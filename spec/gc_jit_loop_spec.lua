-- A request submitted from a __gc finalizer must not hang the process on
-- LuaJIT. LuaJIT 2.1 before commit 119fd1fa (Aug 2023, LuaJIT #1045; Debian
-- 12's 2.1.0~beta3+git20220320 among them) spins for ever in a compiled
-- pairs() loop whose trace exits at its first guard inside __gc; the Lua
-- layer's loops (here hooks.before's copy of the params) were compiled by
-- earlier calls, so the lifecycle tester (seed 12004 seq 67, an `arm`
-- finalizer starting a stream) hung in 2 of 3 replays. aigc keeps its Lua
-- layer off the JIT (lua/aigc/compat.lua keep_aigc_off_jit).
--
-- The case runs in a child process under the interpreter being tested
-- (procutil.lua_command: $AIGC_LUA, the jit suites' luajit), bounded by
-- timeout(1): a hang is a failure, not a stuck suite. On 5.1-5.4 it passes
-- trivially (no JIT).

local proc = require "procutil"

-- %s: how the script gets a client.
local SCRIPT = [[
local client = %s { base_url = "http://127.0.0.1:9/v1", max_retries = 0, timeout = 5,
                             max_concurrency = 1 }
local msgs = { { role = "user", content = "Hi" } }
-- Compile the Lua layer's loops for params whose values are numbers...
for _ = 1, 300 do client:chat_async { messages = msgs, temperature = 0.5, max_tokens = 5 } end
local ran = false
local function fin ()
  -- ...then submit from a finalizer with values of other types.
  client:chat_async { user = "u", stop = { "x" }, messages = msgs, seed = 1, n = 1 }
  ran = true
end
local newproxy = rawget(_G, "newproxy")
local obj
if newproxy then
  obj = newproxy(true)
  getmetatable(obj).__gc = fin
else
  obj = setmetatable({}, { __gc = fin })
end
obj = nil   -- luacheck: ignore
collectgarbage("collect")
collectgarbage("collect")
client:close()
io.write("finalizer ran: ", tostring(ran), "\n")
]]

local function run (new_client)
  local cmd = "timeout -k 5 60 " .. proc.lua_command() .. " -e " .. proc.quote(SCRIPT:format(new_client))
  local ok, out = proc.sh(cmd)
  assert.is_true(ok, "the child did not end within 60 s or failed (status 124 = hang): " .. out)
  assert.matches("finalizer ran: true", out, 1, true)
end

describe("a request submitted from a __gc finalizer", function ()
  it("returns (no endless loop of LuaJIT's compiled pairs() inside __gc)", function ()
    run('require("aigc").client')
  end)

  it("returns when the client module is required without aigc's init", function ()
    run('require("aigc.client").new')
  end)
end)
