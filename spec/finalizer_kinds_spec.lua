-- `__gc` finalizers that call `close()`, `cancel()`, a new `chat_async`,
-- a blocking `chat`, `step()` or the call's `wait()` while a call of each kind is in flight -- chat,
-- completion, stream, chat_async, embeddings, images, audio, responses,
-- batch, download -- collected before each of the first turns of `step()`
-- (collectgarbage() between the steps) and from inside the call's own
-- callbacks (DESIGN.md's re-entrancy rule). The sweep
-- (spec/support/finalizer_sweep.lua: its rules) runs each kind in a child
-- process: a crash or a hang fails that kind, not the run. The blocking
-- kinds run in a task of their client, so that the spec turns its loop;
-- a finalizer's cancel reaches the async kinds only (a blocking call has
-- no handle). Sampled: the first 6 turns (most calls end in about as many
-- on the devserver without pauses; later turns meet an ended call), the
-- first 2 for step and wait.
--
-- Found by the sweep: a task asleep in client:sleep (batch.run's pause
-- between polls, a retry's) when its client was closed was never woken:
-- the call never returned, whatever waited on it waited for ever.
local aigc, devserver = require "aigc", require "devserver"
local portable = require "portable"
local sweep = require "finalizer_sweep"
local forms = require "call_forms"
-- (a pcall a task can yield across, on PUC 5.1 too)
local tpcall = require("aigc.task").pcall

describe("a finalizer re-entering the client of a call in flight", function ()
  local srv   -- (the fixture's client, unused: the cases make their own)
  devserver.fixture(_ENV, function (s) srv = s end, nil, nil, { pause_ms = 0 })

  it("wakes a task asleep in client:sleep when a finalizer closes its client", function ()
    for _, when in ipairs { "between", "inside" } do
      local c = aigc.client { base_url = srv.base_url, max_retries = 0, model = "aigc-dev" }
      local seen = {}
      c:spawn(function ()
        for _ = 1, 2 do
          local ok, e = tpcall(c.sleep, c, 30)   -- (30 s: asleep for the whole test)
          seen[#seen + 1] = ok and "woke" or tostring(e)
        end
      end)
      local other
      if when == "inside" then
        -- (collected from inside a callback of another request)
        other = c:chat_async { messages = { { role = "user", content = "Hi" } },
                               on_done = function () collectgarbage(); collectgarbage() end }
      end
      c:step(0)
      portable.finalized(function () c:close() end)
      if when == "between" then collectgarbage(); collectgarbage() end
      local guard = aigc.now() + forms.GUARD   -- (a guard against a hang only)
      while seen[2] == nil and aigc.now() < guard and pcall(c.step, c, 0.01) do end
      assert.equal("woke", seen[1])
      assert.matches("attempt to use a closed client", seen[2], 1, true)
      -- (the collector may run the finalizer before the request ended: then canceled)
      if other then assert.is_true(other:status() == "done" or other:status() == "canceled") end
    end
  end)

  for _, kind in ipairs(sweep.KINDS) do
    it("keeps the contract for a call of kind " .. kind, function ()
      local got = sweep.in_child(srv.base_url, ("require('finalizer_sweep').run(arg[1], %q)"):format(kind))
      assert.equal(0, got.status, got.stderr)
      assert.same({}, got.violations)
      assert.equal("CASES " .. sweep.cases(), got.cases)
    end)
  end
end)
