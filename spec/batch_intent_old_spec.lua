-- OUT.batch as an older version wrote it before asking for its batch:
-- "pending TOKEN TIME", without the digests of the batch's lines. A run
-- that found the batch by its token kept its id with an empty table of
-- digests, which says the batch has none of the cases: stopped again before
-- the results were written, the next run sent every case as a new batch
-- (paid twice) and cancelled the first. No digests are kept now: the cases
-- are taken as the batch's, as by the run that found it.

local aigc = require "aigc"
local cli = require "cli"
local devserver = require "devserver"
local runner = require "aigc.runner"

describe("the runner's batch backend, an intent kept without digests", function ()
  local srv, client, dir
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { model = "m" })
  before_each(function () dir = cli.home() end)
  after_each(function () cli.rmdir(dir) end)

  local cases = { { id = "a", prompt = "Echo: one" }, { id = "b", prompt = "Echo: two" } }

  -- A run stopped once its batch is made or found (on_progress raises):
  -- the id of its batch.
  local function stopped_run (out)
    local id
    local ok, e = pcall(runner.run, { client = client, backend = "batch", batch_interval = 0.02, out = out,
      cases = cases,
      on_progress = function (p) id = p.batch and p.batch.id; error("stopped") end })
    assert.is_false(ok)
    assert.matches("stopped", tostring(e))
    assert.is_string(id)
    return id
  end

  it("is resolved to its batch, and a run stopped after that resumes it: one batch", function ()
    local out = dir .. "/r.jsonl"
    local id = stopped_run(out)
    local token = assert(aigc.batch.retrieve(client, id)).metadata.aigc_run
    assert.is_string(token)
    cli.write(out .. ".batch", "pending " .. token .. " " .. os.time() .. "\n")   -- (an older version's)
    assert.equal(id, stopped_run(out))   -- (found by its token; stopped again)
    assert.equal(1, devserver.count(srv, "POST", "/v1/batches"))
    -- the next run: that batch's results, no second batch
    local summary = assert(runner.run { client = client, backend = "batch", batch_interval = 0.02, out = out,
                                        cases = cases })
    assert.equal(2, summary.ok)
    assert.equal(id, summary.batch_id)
    assert.is_nil(summary.abandoned_batch)
    assert.equal(1, devserver.count(srv, "POST", "/v1/batches"))
  end)
end)
