-- `__gc` finalizers that call `close()`, a new `chat_async`, a blocking
-- `chat` or `step()` while a blocking call of each kind runs in the main
-- chunk -- chat, completion, a stream, the stream iterator, embeddings,
-- images, audio, responses, batch.run, download --, planted before the
-- call (the collector runs them at whatever allocation comes) or collected
-- inside the call's first callback (DESIGN.md's re-entrancy rule). The
-- sweep (spec/support/finalizer_sweep.lua's run_blocking: its rules) runs
-- in a child process: a crash or a hang fails it, not the run. The async
-- forms, turn by turn: spec/finalizer_kinds_spec.lua.
local devserver = require "devserver"

describe("a finalizer re-entering the client of a blocking call", function ()
  local srv   -- (the fixture's client, unused: the cases make their own)
  devserver.fixture(_ENV, function (s) srv = s end, nil, nil, { pause_ms = 0 })

  it("keeps the contract for every kind and action", function ()
    local sweep = require "finalizer_sweep"
    local got = sweep.in_child(srv.base_url, "require('finalizer_sweep').run_blocking(arg[1])")
    assert.equal(0, got.status, got.stderr)
    assert.same({}, got.violations)
    assert.equal("CASES " .. #sweep.BLOCKING * #sweep.BLOCKING_ACTIONS * 2, got.cases)
  end)
end)
