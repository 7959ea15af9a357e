-- The re-entrancy rule (docs/ARCHITECTURE.md: callbacks, finalizers and
-- hooks may call anything at any time) in the layers the random lifecycle
-- tester (spec/lifecycle) does not draw: sentences, the Responses API,
-- the runner and the Batch API, media uploads and downloads, the cache,
-- cassettes, the usage and prompt-log hooks, strategies, conversation
-- save, watch/act. Each user callback of those layers closes the client,
-- cancels its request and another, makes a nested blocking call, calls
-- step/act/wait, collects garbage, raises (twice, where it is called
-- more than once), yields, or drops the last references; in plain code
-- and inside a task of another client. Expected: a clear error or the
-- documented outcome, exactly one end per request with callbacks, no
-- crash, no hang, and the client (or a new one) usable after. The cases
-- run in child processes (a crash or a hang fails the case, not the run).
local devserver = require "devserver"
local luachild = require "luachild"

-- {======================================================
-- Defects found by the probe
-- =======================================================

-- A client with a cassette that is collected, or a script that exits,
-- without client:close(): the io.popen file of the cassette's server can
-- be finalized before the cassette (whose finalizer kills the server; on
-- LuaJIT a table has none), and its pclose waited for the server, which
-- waits for its parent: the process never ended.
local CASSETTE_CHILD = [[
local aigc = require "aigc"
local url, tape, mode, form = arg[1], arg[2], arg[3], arg[4]
local c = aigc.client { base_url = url, max_retries = 0, model = "aigc-dev",
                        cassette = { path = tape, mode = mode } }
local res, err = c:chat "Hi"
print("chat", res and res.text ~= nil, err and err.kind)
if form == "drop" then
  c = nil
  collectgarbage(); collectgarbage()
  print("collected")
end
print("end")
]]

describe("re-entrancy in the layers the lifecycle tester does not draw", function ()
  local srv
  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)

  describe("a cassette's client never closed", function ()
    for _, form in ipairs { "exit", "drop" } do
      it("lets the process end (" .. form .. "), recording and replaying", function ()
        local tape = os.tmpname()
        os.remove(tape)
        for _, mode in ipairs { "record", "replay" } do
          local r = luachild.run(CASSETTE_CHILD, { args = { srv.base_url, tape, mode, form }, timeout = 30 })
          assert.equal(0, r.status, mode .. ": " .. r.stdout .. r.stderr)
          assert.matches("chat\ttrue", r.stdout)
          assert.matches("end\n$", r.stdout)
        end
        os.remove(tape)
      end)
    end
  end)
end)
