-- The runner's batch backend and the batch OUT.batch keeps: when every case
-- changed since it was sent, the run sends a new batch, and the old one --
-- which no case waits for any more -- went on at the server (billed) with
-- nothing said. It is cancelled now, best effort, and the run says so.

local aigc = require "aigc"
local cli = require "cli"
local devserver = require "devserver"
local runner = require "aigc.runner"
local report = require("aigc.cli.run").report

describe("the runner's batch backend, a kept batch no case waits for", function ()
  local client, dir
  devserver.fixture(_ENV, function (_, c) client = c end, { model = "m" })
  before_each(function () dir = cli.home() end)
  after_each(function () cli.rmdir(dir) end)

  local function case (country) return { { id = "a", prompt = "What is the capital of " .. country .. "?" } } end

  -- A run stopped once its batch was sent (its OUT.batch kept), the batch
  -- still running when `slow` (a line every 100 s); its id.
  local function stopped_run (out, country, slow)
    local id
    local ok, e = pcall(runner.run, { client = client, backend = "batch", batch_interval = 0.02, out = out,
      cases = case(country), batch_metadata = slow and { aigc_delay_ms = "100000" } or nil,
      on_progress = function (p) id = p.batch and p.batch.id; error("stopped") end })
    assert.is_false(ok)
    assert.matches("stopped", tostring(e))
    assert.is_string(id)
    assert.is_truthy(io.open(out .. ".batch"))
    return id
  end

  local function kept_batch (out) return stopped_run(out, "Spain", true) end

  it("is cancelled, and the summary and aigc run's report say so", function ()
    local out = dir .. "/r.jsonl"
    local old = kept_batch(out)
    local summary = assert(runner.run { client = client, backend = "batch", batch_interval = 0.02, out = out,
                                        cases = case("France") })
    assert.equal(1, summary.ok)
    assert.are_not.equal(old, summary.batch_id)   -- (the case went as a new batch)
    assert.equal(old, summary.abandoned_batch.id)
    assert.is_nil(summary.abandoned_batch.error)
    local b = assert(aigc.batch.retrieve(client, old))
    assert.is_truthy(b.status == "cancelling" or b.status == "cancelled", b.status)
    assert.matches("batch " .. old .. " %(sent before every case's request changed%) was cancelled",
                   report(summary))
    assert.is_nil(io.open(out .. ".batch"))
  end)

  it("a cancel the server refuses: the run goes on, and says the batch may still run", function ()
    local out = dir .. "/r.jsonl"
    local old = kept_batch(out)
    local cancelled = false
    local real = aigc.batch.cancel
    aigc.batch.cancel = function ()   -- (the bundled server cancels whatever is running)
      cancelled = true
      return nil, { kind = "http", status = 500, message = "cancel failed" }
    end
    local ok, summary = pcall(runner.run, { client = client, backend = "batch", batch_interval = 0.02, out = out,
                                            cases = case("France") })
    aigc.batch.cancel = real
    assert.is_true(ok, tostring(summary))
    assert.is_true(cancelled)
    assert.equal(1, summary.ok)
    assert.same({ old, "cancel failed" }, { summary.abandoned_batch.id, summary.abandoned_batch.error })
    assert.matches("could not be cancelled: cancel failed %(%-%-batch %-%-cancel %-%-batch%-id " .. old .. "%)",
                   report(summary))
  end)

  it("a kept batch that a case still waits for is resumed, not cancelled", function ()
    local out = dir .. "/r.jsonl"
    local old = stopped_run(out, "France", false)
    local summary = assert(runner.run { client = client, backend = "batch", batch_interval = 0.02, out = out,
                                        cases = case("France") })
    assert.equal(1, summary.ok)
    assert.equal(old, summary.batch_id)
    assert.is_nil(summary.abandoned_batch)
    assert.equal("completed", assert(aigc.batch.retrieve(client, old)).status)
  end)
end)
