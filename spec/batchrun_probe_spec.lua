-- Probes of the prompt-workflow tools at scale (the dataset runner's batch
-- backend, aigc.batch's results, the judge assertion) where they broke:
-- each test failed before its fix.

local aigc = require "aigc"
local batch = require "aigc.batch"
local cli = require "cli"
local devserver = require "devserver"
local proc = require "procutil"
local runner = require "aigc.runner"
local scripted = require "scripted"

local tpl = aigc.template.new { prompt = "Capital of {{country}}?" }
local CASES = { { id = "fr", vars = { country = "France" } }, { id = "es", vars = { country = "Spain" } } }

-- (the probe's client: the library's default retries, a key to find in what is kept)
local PROBE_CLIENT = { model = "aigc-dev", api_key = "sk-probe-key-77", max_retries = 2 }

describe("the runner's batch backend", function ()
  local srv, client, home
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, PROBE_CLIENT)
  before_each(function () home = cli.home() end)
  after_each(function () cli.rmdir(home) end)

  -- A results file on a full disk: a link to /dev/full, which takes the
  -- open and fails every flush with ENOSPC (in the test's own folder: the
  -- batch's id goes beside it, OUT.batch).
  local function full_disk ()
    local out = home .. "/full.jsonl"
    assert.is_true(proc.execute("ln -s /dev/full '" .. out .. "'"))
    return out
  end

  it("a results file it cannot write is nil, err (as on the direct backend), not a raise", function ()
    local out = full_disk()
    local ok, summary, err = pcall(runner.run, { client = client, backend = "batch", batch_interval = 0.02,
                                                 template = tpl, cases = CASES, out = out })
    assert.is_true(ok, tostring(summary))
    assert.is_nil(summary)
    assert.equal("runner", err.kind)
    assert.matches("cannot write " .. out, err.message, 1, true)
  end)

  it("a case whose text is not UTF-8 fails alone, as on the direct backend (it stopped the run)", function ()
    local cases = { { id = "fr", vars = { country = "Fran" .. string.char(233) .. "ce" } }, CASES[2] }
    local ok, summary = pcall(runner.run, { client = client, backend = "batch", batch_interval = 0.02,
                                            template = tpl, cases = cases })
    assert.is_true(ok, tostring(summary))
    assert.equal(1, summary.ok)
    assert.is_true(summary.results.es.ok)
    assert.is_false(summary.results.fr.ok)
    assert.equal("the case cannot be sent: params.messages[1].content: invalid UTF-8 at byte 16 of a string",
                 summary.results.fr.error.message)
  end)

  it("aigc run --batch --out on a full disk: the error, exit 1 (it was an internal error, exit 70)", function ()
    cli.write(home .. "/cases.jsonl", '{"id":"fr","prompt":"Capital of France?"}\n')
    local out = full_disk()
    local r = cli.run({ "run", home .. "/cases.jsonl", "--batch", "-q", "--out", out },
                      { home = home, base_url = srv.base_url, env = { AIGC_NO_LOG = "1" } })
    assert.equal(1, r.code, r.stderr)
    assert.is_nil(r.stderr:find("internal error", 1, true))
    assert.matches("aigc run: cannot write " .. out .. ": ", r.stderr, 1, true)
  end)
end)

describe("aigc.batch's results", function ()
  local client
  devserver.fixture(_ENV, function (_, c) client = c end, PROBE_CLIENT)

  it("an answered line that is not JSON (invalid UTF-8 in the reply) is its case's failure, not missing", function ()
    local function ask (id, model)
      return { custom_id = id, body = { model = model, messages = { { role = "user", content = "Hi" } } } }
    end
    local results, b = batch.run(client, { ask("good"), ask("bad", "fault:body=invalid-utf8") }, { interval = 0.02 })
    assert.is_table(results, tostring(b))
    assert.same({ total = 2, completed = 2, failed = 0 }, b.request_counts)   -- (the server answered both)
    assert.is_true(results.good.ok)
    assert.is_table(results.bad, "the line of 'bad' was dropped")
    assert.is_false(results.bad.ok)
    assert.equal("parse", results.bad.error.kind)
    assert.matches("line of custom_id 'bad': not JSON (", results.bad.error.message, 1, true)
    -- the runner's case: that error, not "ended completed without this case"
    local summary = assert(runner.run { client = client, backend = "batch", batch_interval = 0.02,
      cases = { { id = "bad", prompt = "Hi" } }, params = { model = "fault:body=invalid-utf8" } })
    assert.matches("not JSON", summary.results.bad.error.message, 1, true)
  end)
end)

describe("the judge assertion", function ()
  -- (the scale before the score: its first number is the scale's 1)
  it("reads the score as the strategies' judge does: 'On a scale of 1 to 10, I'd give it 8' is 8", function ()
    local srv = scripted.start { scripted.chat { content = "On a scale of 1 to 10, I'd give it 8." },
                                 scripted.chat { content = "I'd rate it 3/10: on a 1-10 scale it misses the point." } }
    local client = aigc.client { base_url = srv.base_url, api_key = "k", max_retries = 0 }
    local pass, results = runner.check({ { type = "judge", value = "Is it right?", threshold = 7 } }, "Paris",
                                       { client = client, model = "m" })
    local pass2, results2 = runner.check({ { type = "judge", value = "Is it right?", threshold = 2 } }, "Lyon",
                                         { client = client, model = "m" })
    client:close()
    srv.finish()
    assert.is_true(pass, results[1].reason)
    assert.equal(8, results[1].score)
    assert.is_true(pass2, results2[1].reason)
    assert.equal(3, results2[1].score)
  end)

  it("a scale written with an en or em dash, or 'between 1 and 10', is no score", function ()
    local judge = require "aigc.judge"
    local en, em = string.char(226, 128, 147), string.char(226, 128, 148)
    assert.equal(8, judge.score_of("On a scale of 1" .. en .. "10, I'd give it 8."))
    assert.equal(7, judge.score_of("Score (1 " .. em .. " 10): 7"))
    assert.equal(9, judge.score_of("Between 1 and 10, this is a 9."))
    assert.equal(6, judge.score_of("6"))
    assert.equal(10, judge.score_of("10/10 on the 1-10 scale"))
  end)
end)

describe("a batch run's result lines", function ()
  local client
  devserver.fixture(_ENV, function (_, c) client = c end, PROBE_CLIENT)

  it("cost the line at the batch's prices and its judge at the full ones, as the summary counts them", function ()
    local prices = { ["aigc-dev"] = { input = 1, output = 2 } }
    local s = assert(runner.run { client = client, backend = "batch", batch_interval = 0.02, template = tpl,
      cases = { CASES[1] }, prices = prices, assert = { { type = "judge", value = "Is it right?" } } })
    assert.equal(2, s.totals.requests)      -- the line and its judge
    local line = s.results.fr
    assert.is_number(line.cost)
    -- one case: its line's cost is the run's (the judge was halved with the line)
    assert.is_true(math.abs(line.cost - s.cost) < 1e-12, line.cost .. " ~= " .. s.cost)
  end)
end)

describe("a result line's cost", function ()
  local client
  devserver.fixture(_ENV, function (_, c) client = c end, PROBE_CLIENT)

  -- (the judge's tokens were priced as the case's model's: 70 times too cheap here)
  it("prices a judge on another model at that model's price, as the summary does (both backends)", function ()
    local prices = { ["aigc-dev"] = { input = 1, output = 2 }, ["aigc-judge"] = { input = 70, output = 140 } }
    for _, backend in ipairs { "direct", "batch" } do
      local s = assert(runner.run { client = client, backend = backend, batch_interval = 0.02, template = tpl,
        cases = { CASES[1] }, prices = prices,
        assert = { { type = "judge", value = "Is it right?", model = "aigc-judge", threshold = 1 } } })
      assert.is_true(s.results.fr.pass, backend)
      assert.is_true(s.cost > 0, backend)
      local line = s.results.fr.cost
      assert.is_true(math.abs(line - s.cost) < 1e-12, backend .. ": " .. line .. " ~= " .. s.cost)
    end
  end)
end)

describe("a batch run's judges", function ()
  local srv, client
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, PROBE_CLIENT)

  -- (they ran one after another once the batch was over: 10,000 judged lines took hours)
  it("run side by side, at most `concurrency` at once, as a direct run's", function ()
    local cases = {}
    for i = 1, 6 do cases[i] = { id = "c" .. i, vars = { country = "C" .. i } } end
    local seen = {}
    local s = assert(runner.run { client = client, backend = "batch", batch_interval = 0.02, template = tpl,
      cases = cases, concurrency = 3, on_result = function (r) seen[#seen + 1] = r.id end,
      assert = { { type = "judge", value = "Is it right?", model = "fault:delay=300", threshold = 1 } } })
    assert.equal(6, s.passed)
    assert.equal(6, #seen)
    assert.equal(12, s.totals.requests)   -- the lines and their judges
    local stats = srv:stats()
    assert.is_true(stats.max_open >= 2, "judges at once: " .. stats.max_open)
    assert.is_true(stats.max_open <= 3, "judges at once: " .. stats.max_open)
  end)

  it("a callback that raises in one of them stops the run with its error", function ()
    local ok, err = pcall(runner.run, { client = client, backend = "batch", batch_interval = 0.02, template = tpl,
      cases = CASES, on_result = function () error("stop here") end,
      assert = { { type = "judge", value = "Is it right?", threshold = 1 } } })
    assert.is_false(ok)
    assert.matches("stop here", tostring(err))
  end)
end)

describe("a batch run of a template with a schema", function ()
  local client
  devserver.fixture(_ENV, function (_, c) client = c end, PROBE_CLIENT)

  local schema = { type = "object", properties = { city = { type = "string" } }, required = { "city" },
                   additionalProperties = false }
  local function run (backend, mode)
    local t = aigc.template.new { prompt = "Capital of {{country}}?", schema = schema,
                                  params = { schema_mode = mode } }
    local s = assert(runner.run { client = client, backend = backend, batch_interval = 0.02, template = t,
      cases = { { id = "fr", vars = { country = "France" }, assert = { { type = "json-schema", value = schema } } } } })
    return s.results.fr
  end

  -- (the schema went with the call options: the lines were free text, and the assertion failed)
  it("sends the schema as a direct run does, and gives the same line (parsed, assertion passed)", function ()
    for _, mode in ipairs { "json_schema", "json_object" } do
      local direct, batched = run("direct", mode), run("batch", mode)
      assert.is_true(direct.pass, mode)
      assert.is_true(batched.ok, mode)
      assert.equal(direct.text, batched.text, mode)
      assert.same(direct.parsed, batched.parsed, mode)
      assert.is_true(batched.pass, mode)
    end
  end)
end)

describe("a batch run resumed", function ()
  local client, home
  devserver.fixture(_ENV, function (_, c) client = c end, PROBE_CLIENT)
  before_each(function () home = cli.home() end)
  after_each(function () cli.rmdir(home) end)

  local function run (cases, out)
    return assert(runner.run { client = client, backend = "batch", batch_interval = 0.02, template = tpl,
                               cases = cases, out = out })
  end

  it("with every case done, forgets its spent batch: a case added later goes in a new batch", function ()
    local out = home .. "/r.jsonl"
    local first = run({ CASES[1] }, out)
    assert.equal(1, first.ok)
    -- stopped after its last result line, before removing OUT.batch (Ctrl-C, a kill, on_result raising)
    cli.write(out .. ".batch", first.batch_id .. "\n")
    local again = run({ CASES[1] }, out)
    assert.equal(1, again.skipped)
    local more = run(CASES, out)
    assert.equal(1, more.skipped)
    assert.is_true(more.results.es.ok, more.results.es.error and more.results.es.error.message)
    assert.are_not.equal(first.batch_id, more.batch_id)
    assert.is_nil(io.open(out .. ".batch"))
  end)
end)

describe("aigc run --batch stopped by Ctrl-C", function ()
  local srv, home
  setup(function () srv = devserver.start { pause_ms = 0, args = { "--batch-delay-ms", "3000" } } end)
  teardown(function () srv:stop() end)
  before_each(function () srv:reset(); home = cli.home() end)
  after_each(function () cli.rmdir(home) end)

  -- (it said "aigc: interrupted" alone: the batch went on, billed, and a run without --out had
  -- no way to its results; running it again sent a second batch)
  it("names the batch that goes on at the server, and how to take its results or cancel it", function ()
    cli.write(home .. "/cases.jsonl", '{"id":"a","prompt":"Hi"}\n{"id":"b","prompt":"Yo"}\n')
    local interrupted = require "batch_interrupt"
    local id, stderr = interrupted.run(srv, home)
    assert.equal(interrupted.message(id), stderr)
  end)
end)
