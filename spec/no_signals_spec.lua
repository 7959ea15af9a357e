-- The README's promise to hosts (A C/C++ host, "What is thread-safe"):
-- "No signals: transfers set CURLOPT_NOSIGNAL; the library installs no
-- signal handler". A host (a game engine, a bot with its own SIGINT or
-- SIGPIPE handling) keeps its signal dispositions: in a child Lua, the
-- signals caught and ignored (Linux's /proc/self/status, SigCgt and
-- SigIgn) are the same before aigc is loaded, inside a stream callback and
-- a blocking call's transfer, after a request that failed to connect, and
-- after the client is closed. (CURLOPT_NOSIGNAL itself is not seen here:
-- without it libcurl ignores SIGPIPE only inside its own calls and puts the
-- disposition back, and no Lua code runs in between.)

local devserver = require "devserver"
local luachild = require "luachild"
local proc = require "procutil"

local linux = proc.read_file("/proc/self/status") ~= nil
local describe_linux = linux and describe or pending

describe_linux("aigc and the process's signals", function ()
  local srv
  devserver.fixture(_ENV, function (s) srv = s end)

  it("are left as the host set them: no handler installed, none ignored, during transfers too", function ()
    local r = luachild.run([[
      local function dispositions ()
        local f = assert(io.open("/proc/self/status"))
        local s = f:read("*a")
        f:close()
        return s:match("\nSigIgn:%s*(%x+)") .. " " .. s:match("\nSigCgt:%s*(%x+)")
      end
      local seen = { before = dispositions() }
      local aigc = require "aigc"
      local c = aigc.client { base_url = arg[1], max_retries = 0, timeout = 30 }
      seen.loaded = dispositions()
      local chunks = 0
      assert(c:chat { messages = { { role = "user", content = "Echo: one two three four" } },
                      stream = function ()
                        chunks = chunks + 1
                        seen["in a stream callback " .. chunks] = dispositions()
                      end })
      assert(chunks > 0)
      local done = false
      c:chat_async { messages = { { role = "user", content = "Echo: hi" } }, on_done = function () done = true end }
      while not done do c:step(0.05); seen.stepping = dispositions() end
      local down = aigc.client { base_url = "http://127.0.0.1:9/v1", max_retries = 0, timeout = 5 }
      local none = down:chat "Hi"
      assert(none == nil)
      seen.refused = dispositions()
      down:close()
      c:close()
      collectgarbage()
      seen.closed = dispositions()
      for what, d in pairs(seen) do
        if d ~= seen.before then print(what .. ": " .. d .. " (before: " .. seen.before .. ")") end
      end
      print("checked " .. chunks)
    ]], { args = { srv.base_url }, default_signals = true })   -- (luasocket ignores SIGPIPE in busted)
    assert.equal(0, r.status, r.stderr)
    assert.matches("^checked %d+\n$", r.stdout)
  end)
end)
