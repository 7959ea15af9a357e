-- Probes of the Batch API and of batch runs (aigc.batch, aigc.batch_backend,
-- aigc.runner, `aigc run --batch`), second round: each test failed before
-- its fix.

local aigc = require "aigc"
local batch = require "aigc.batch"
local cli = require "cli"
local devserver = require "devserver"
local runner = require "aigc.runner"

local function ask (id, content)
  return { custom_id = id, body = { messages = { { role = "user", content = content or "Hi" } } } }
end

describe("the test helper devserver.start", function ()
  it("passes batch_delay_ms to the server (it was ignored: the batch ran at the default 20 ms a line)", function ()
    -- a minute a line: the batch is not over when a short wait times out
    local srv = devserver.start { pause_ms = 0, batch_delay_ms = 60000 }
    local client = aigc.client { base_url = srv.base_url, model = "aigc-dev", api_key = "k" }
    local b = assert(batch.create(client, { ask("a") }))
    local over, err = batch.wait(client, b.id, { interval = 0.05, timeout = 1 })
    client:close()
    srv:stop()
    assert.is_nil(over, "the batch was over: the delay did not reach the server")
    assert.equal("timeout", err.kind)
  end)
end)

describe("aigc.batch", function ()
  local srv, client
  setup(function () srv = devserver.start { pause_ms = 0, batch_delay_ms = 1 } end)
  teardown(function () srv:stop() end)
  before_each(function ()
    srv:reset()
    client = aigc.client { base_url = srv.base_url, model = "aigc-dev", api_key = "sk-probe2-key-31" }
  end)
  after_each(function () client:close() end)

  local function line (id, content)
    return '{"custom_id":"' .. id .. '","response":{"status_code":200,"request_id":"r","body":'
      .. '{"choices":[{"message":{"role":"assistant","content":"' .. content .. '"}}]}},"error":null}'
  end

  it("results: a UTF-8 BOM before an output file's first line does not lose that line", function ()
    local bom = string.char(239, 187, 191)
    local file = assert(batch.upload(client, bom .. line("a", "one") .. "\n" .. line("b", "two") .. "\n"))
    local results = assert(batch.results(client, { output_file_id = file.id }))
    assert.is_table(results.a, "the first line was skipped")
    assert.is_true(results.a.ok)
    assert.equal("one", results.a.body.choices[1].message.content)
    assert.is_true(results.b.ok)
  end)
end)

describe("aigc.batch.create refused by the server after the upload", function ()
  local srv, client
  setup(function () srv = devserver.start { pause_ms = 0, batch_delay_ms = 1 } end)
  teardown(function () srv:stop() end)
  before_each(function ()
    srv:reset()
    client = aigc.client { base_url = srv.base_url, model = "aigc-dev", api_key = "sk-probe2-key-31" }
  end)
  after_each(function () client:close() end)

  local function files ()
    local res = assert(client:files_list())
    return res.data
  end

  it("deletes the input file it uploaded (it stayed on the server, one more per failed try)", function ()
    local before = #files()
    local b, err = batch.create(client, { ask("a") }, { completion_window = "1h" })
    assert.is_nil(b)
    assert.equal("http", err.kind)
    assert.equal(400, err.status)
    assert.matches("completion_window", err.message, 1, true)   -- (the refusal, not the deletion's outcome)
    local uploaded = false
    for _, r in ipairs(srv:requests()) do if r.method == "POST" and r.path == "/v1/files" then uploaded = true end end
    assert.is_true(uploaded, "nothing was uploaded: the test tests nothing")
    assert.equal(before, #files(), "the uploaded input file is still on the server")
  end)
end)

describe("the runner's batch backend", function ()
  local srv, client, home
  setup(function () srv = devserver.start { pause_ms = 0, batch_delay_ms = 1 } end)
  teardown(function () srv:stop() end)
  before_each(function ()
    srv:reset()
    client = aigc.client { base_url = srv.base_url, model = "aigc-dev", api_key = "sk-probe2-key-31" }
    home = cli.home()
  end)
  after_each(function () client:close(); cli.rmdir(home) end)

  it("a kept batch whose output file is gone: the error says to remove OUT.batch", function ()
    local b = assert(batch.create(client, { { custom_id = "fr", body = { messages = {
      { role = "user", content = "Capital of France?" } } } } }))
    b = assert(batch.wait(client, b.id, { interval = 0.02 }))
    assert(client:files_delete(b.output_file_id))
    local out = home .. "/results.jsonl"
    cli.write(out .. ".batch", b.id .. "\n")
    local summary, err = runner.run { client = client, backend = "batch", batch_interval = 0.02, out = out,
                                      cases = { { id = "fr", prompt = "Capital of France?" } } }
    assert.is_nil(summary)
    assert.equal(404, err.status)
    assert.matches("remove " .. out .. ".batch to send the cases as a new batch", err.message, 1, true)
  end)
end)
