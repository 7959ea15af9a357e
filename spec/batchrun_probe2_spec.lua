-- Probes of the Batch API and of batch runs (aigc.batch, aigc.batch_backend,
-- aigc.runner, `aigc run --batch`), second round: each test failed before
-- its fix.

local aigc = require "aigc"
local batch = require "aigc.batch"
local cli = require "cli"
local devserver = require "devserver"
local proc = require "procutil"
local runner = require "aigc.runner"

-- (each block's server, a batch line a millisecond, and client: the library's
-- default retries, a key to find in what is kept)
local PROBE_SERVER = { pause_ms = 0, batch_delay_ms = 1 }
local PROBE_CLIENT = { model = "aigc-dev", api_key = "sk-probe2-key-31", max_retries = 2 }

local function ask (id, content)
  return { custom_id = id, body = { messages = { { role = "user", content = content or "Hi" } } } }
end

describe("the test helper devserver.start", function ()
  it("passes batch_delay_ms to the server (it was ignored: the batch ran at the default 20 ms a line)", function ()
    -- a minute a line: the batch is not over when a short wait times out
    local srv = devserver.start { pause_ms = 0, batch_delay_ms = 60000 }
    local client = aigc.client { base_url = srv.base_url, model = "aigc-dev", api_key = "k" }
    local b = assert(batch.create(client, { ask("a") }))
    -- (at the default 20 ms a line it is over in about 0.1 s)
    local over, err = batch.wait(client, b.id, { interval = 0.05, timeout = 0.4 })
    client:close()
    srv:stop()
    assert.is_nil(over, "the batch was over: the delay did not reach the server")
    assert.equal("timeout", err.kind)
  end)
end)

describe("aigc.batch", function ()
  local client
  devserver.fixture(_ENV, function (_, c) client = c end, PROBE_CLIENT, nil, PROBE_SERVER)

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
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, PROBE_CLIENT, nil, PROBE_SERVER)

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
  local client, home
  devserver.fixture(_ENV, function (_, c) client = c end, PROBE_CLIENT, nil, PROBE_SERVER)
  before_each(function () home = cli.home() end)
  after_each(function () cli.rmdir(home) end)

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

  -- OUT.batch was opened to be read (and written) whatever it was: a FIFO
  -- there blocked the run (and the host) for ever before anything was sent.
  it("OUT.batch that is not a regular file (a FIFO) keeps nothing: the run sends its batch and ends", function ()
    local out = home .. "/results.jsonl"
    assert(proc.execute("mkfifo '" .. out .. ".batch'"))
    local r = require("luachild").run([[
      local aigc = require "aigc"
      local client = aigc.client { base_url = arg[1], model = "aigc-dev", max_retries = 0 }
      local summary, err = require("aigc.runner").run { client = client, backend = "batch", batch_interval = 0.02,
        out = arg[2], cases = { { id = "fr", prompt = "Capital of France?" } } }
      print(summary and summary.ok, err)
    ]], { args = { client.base_url, out }, timeout = 15 })
    assert.equal(0, r.status, r.stderr)
    assert.equal("1\tnil\n", r.stdout)
  end)
end)

describe("a batch run resumed after its cases changed", function ()
  local client, home
  devserver.fixture(_ENV, function (_, c) client = c end, PROBE_CLIENT, nil, PROBE_SERVER)
  before_each(function () home = cli.home() end)
  after_each(function () cli.rmdir(home) end)

  -- A batch run stopped while its batch is in progress (the progress
  -- callback raises): OUT.batch keeps the batch. Its id.
  local function stopped_run (cases, out)
    local stopped = pcall(runner.run, { client = client, cases = cases, out = out, backend = "batch",
      batch_interval = 0.02, batch_metadata = { aigc_delay_ms = "100" },
      on_progress = function () error("stopped by the test") end })
    assert.is_false(stopped)
    return assert(proc.read_file(out .. ".batch")):match("^(%S+)")
  end

  local function batches () return #assert(client:request("GET", "/batches")).data end

  it("a changed case gets the answer to its new text, an added one is sent, an unchanged one resumed", function ()
    local out = home .. "/r.jsonl"
    local first = stopped_run({ { id = "fr", prompt = "Echo: paris-old" }, { id = "es", prompt = "Echo: madrid" } },
                              out)
    local summary = assert(runner.run { client = client, out = out, backend = "batch", batch_interval = 0.02,
      cases = { { id = "fr", prompt = "Echo: paris-new" }, { id = "es", prompt = "Echo: madrid" },
                { id = "de", prompt = "Echo: berlin" } } })
    assert.equal(3, summary.ok)
    assert.equal("paris-new", summary.results.fr.text)      -- (it was the old prompt's answer, paris-old)
    assert.equal("berlin", summary.results.de.text)         -- (it failed "without this case")
    assert.equal("madrid", summary.results.es.text)
    assert.equal(first, summary.results.es.batch_id)        -- resumed, not sent again
    assert.are_not.equal(first, summary.results.fr.batch_id)
    assert.equal(summary.results.fr.batch_id, summary.results.de.batch_id)
    assert.equal(2, batches())
    assert.is_nil(proc.read_file(out .. ".batch"))
  end)

  it("cases numbered by their line: a line inserted before them does not shift the answers", function ()
    local out = home .. "/r.jsonl"
    stopped_run({ { prompt = "Echo: a" }, { prompt = "Echo: b" } }, out)
    local summary = assert(runner.run { client = client, out = out, backend = "batch", batch_interval = 0.02,
      cases = { { prompt = "Echo: z" }, { prompt = "Echo: a" }, { prompt = "Echo: b" } } })
    assert.equal(3, summary.ok)
    assert.equal("z", summary.results["1"].text)
    assert.equal("a", summary.results["2"].text)
    assert.equal("b", summary.results["3"].text)
  end)
end)

describe("a batch run whose results go to a device (--out /dev/stdout)", function ()
  local client, home
  devserver.fixture(_ENV, function (_, c) client = c end, PROBE_CLIENT, nil, PROBE_SERVER)
  before_each(function () home = cli.home() end)
  after_each(function () cli.rmdir(home) end)

  -- (a link to /dev/null in the test's folder: OUT.batch went beside it, as into /dev for /dev/stdout)
  it("keeps no OUT.batch beside it", function ()
    local out = home .. "/null.jsonl"
    assert.is_true(proc.execute("ln -s /dev/null '" .. out .. "'"))
    local seen, polls = false, 0
    local summary = assert(runner.run { client = client, backend = "batch", batch_interval = 0.02, out = out,
      cases = { { id = "a", prompt = "Echo: a" } }, batch_metadata = { aigc_delay_ms = "50" },
      on_progress = function (p)
        if p.batch then polls = polls + 1 end
        if proc.exists(out .. ".batch") then seen = true end
      end })
    assert.equal(1, summary.ok)
    assert.is_true(polls > 0, "no progress while the batch ran: the test saw nothing")
    assert.is_false(seen, "OUT.batch was written beside the device")
  end)
end)

describe("aigc run --batch --out DEVICE stopped by Ctrl-C", function ()
  local srv, home
  setup(function () srv = devserver.start { pause_ms = 0, batch_delay_ms = 3000 } end)
  teardown(function () srv:stop() end)
  before_each(function () srv:reset(); home = cli.home() end)
  after_each(function () cli.rmdir(home) end)

  it("says to run it again with --batch-id (not that DEVICE.batch keeps the id)", function ()
    cli.write(home .. "/cases.jsonl", '{"id":"a","prompt":"Hi"}\n')
    local out = home .. "/null.jsonl"
    assert.is_true(proc.execute("ln -s /dev/null '" .. out .. "'"))
    local interrupted = require "batch_interrupt"
    local id, stderr = interrupted.run(srv, home, { "--out", out })
    assert.equal(interrupted.message(id), stderr)
    assert.is_false(proc.exists(out .. ".batch"))
  end)
end)

describe("a batch run's progress", function ()
  local client
  devserver.fixture(_ENV, function (_, c) client = c end, PROBE_CLIENT, nil, PROBE_SERVER)

  it("its final line names the batch, as the others (it showed the direct backend's 'x4')", function ()
    local final
    local summary = assert(runner.run { client = client, backend = "batch", batch_interval = 0.02,
      cases = { { id = "a", prompt = "Echo: a" } }, on_progress = function (p) if p.final then final = p end end })
    assert.is_table(final)
    assert.is_table(final.batch)
    assert.equal(summary.batch_id, final.batch.id)
    assert.equal("completed", final.batch.status)
    local line = require("aigc.cli.run").progress_line(final)
    assert.matches("batch " .. summary.batch_id .. " completed", line, 1, true)
    assert.is_nil(line:find(" x%d"))
  end)
end)

describe("the runner's cases", function ()
  local srv, client, home
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, PROBE_CLIENT)
  before_each(function () home = cli.home() end)
  after_each(function () cli.rmdir(home) end)

  it("an id JSON cannot carry (not UTF-8, NaN) is refused at load, naming the case (the run raised)", function ()
    for _, bad in ipairs { "caf" .. string.char(233), 0 / 0 } do
      local ok, summary, err = pcall(runner.run, { client = client, out = home .. "/r.jsonl",
        cases = { { id = "fine", prompt = "Hi" }, { id = bad, prompt = "Hi" } } })
      assert.is_true(ok, tostring(summary))
      assert.is_nil(summary)
      assert.equal("input", err.code)
      assert.matches("^case 2: id cannot be written in the results %(JSON%): ", err.message)
      assert.equal(0, #srv:requests())   -- (refused before anything was sent)
    end
  end)
end)

describe("runner.run's batch_endpoint", function ()
  it("is the api's path: /v1/responses is refused for chat lines (they went chat-shaped), and taken with "
     .. "api = \"responses\"", function ()
    local client = aigc.client { base_url = "http://127.0.0.1:9/v1", model = "m", api_key = "k", max_retries = 0 }
    local ok, err = pcall(runner.run, { client = client, backend = "batch", batch_endpoint = "/v1/responses",
                                        cases = { { id = "a", prompt = "Hi" } } })
    assert.is_false(ok)
    assert.equal("bad argument #1 to 'run' (spec.batch_endpoint: the runner's batch lines are chat completions "
                 .. "(api = \"chat\"): '/v1/responses' is not (give \"/v1/chat/completions\", the default, or "
                 .. "api = \"responses\" for /v1/responses))", (tostring(err):gsub("^[^:]*:%d+: ", "")))
    -- with api = "responses" it is the batch's endpoint (the server, unreachable, is the error)
    local summary, rerr = runner.run { client = client, backend = "batch", batch_endpoint = "/v1/responses",
                                       api = "responses", cases = { { id = "a", prompt = "Hi" } } }
    client:close()
    assert.is_nil(summary)
    assert.equal("connect", rerr.kind)
  end)
end)
