-- The Batch API (issue 16 item 6): aigc.batch against the bundled server's
-- /files and /batches, and the runner's batch backend: the same results
-- file as a direct run, partial failures, resume and cancel by batch id.

local aigc = require "aigc"
local batch = require "aigc.batch"
local runner = require "aigc.runner"
local cjson = require "cjson"
local cli = require "cli"
local devserver = require "devserver"
local proc = require "procutil"

local read_lines = proc.json_lines

local function ask (id, content, model)
  return { custom_id = id, body = { model = model, messages = { { role = "user", content = content } } } }
end

describe("aigc.batch", function ()
  local srv, client, dir
  setup(function () srv = devserver.start { pause_ms = 0, batch_delay_ms = 5 } end)
  teardown(function () srv:stop() end)
  before_each(function ()
    srv:reset()
    client = aigc.client { base_url = srv.base_url, model = "aigc-dev", api_key = "sk-batch-key-31" }
    dir = cli.home()
  end)
  after_each(function () client:close(); cli.rmdir(dir) end)

  it("uploads, creates, polls with progress and maps the output and error files back", function ()
    local seen = {}
    local results, b = batch.run(client, {
      ask("a", "Echo: alpha"), ask("b", "Echo: beta"), ask("bad", "Echo: x", "fault:status=500"),
      ask("c", "Echo: gamma"),
    -- (100 ms a line: the polls see it in progress, however slow the test's process -- the server's
    -- batch_delay_ms of 5 ms is for the other tests)
    }, { interval = 0.02, metadata = { aigc_delay_ms = "100" },
         on_progress = function (x) seen[#seen + 1] = x.status end })
    assert.is_table(results, tostring(b))
    assert.equal("completed", b.status)
    assert.same({ total = 4, completed = 3, failed = 1 }, b.request_counts)
    assert.equal("completed", seen[#seen])
    assert.is_true(#seen >= 2)
    assert.equal("alpha", results.a.body.choices[1].message.content)
    assert.equal("gamma", results.c.body.choices[1].message.content)
    assert.is_true(results.a.ok)
    assert.is_false(results.bad.ok)
    assert.equal(500, results.bad.status_code)
    -- the lines went with the client's default model, and the key only in the header
    local upload = srv:requests()[1]
    assert.equal("/v1/files", upload.path)
    assert.is_nil(cjson.encode(upload):find("sk-batch-key-31", 1, true))
  end)

  it("without the files API (LuaSocket over http), uploads with the client's query parameters", function ()
    -- (a client-like table without files_upload: the fallback path; its URL is built as the engine builds one)
    local bare = { base_url = srv.base_url, _query = { tenant = "t 1" }, _engine = client._engine,
                   _hlines = { authorization = "Authorization: Bearer sk-batch-key-31" } }
    local file = assert(batch.upload(bare, '{"custom_id":"a"}\n', "one.jsonl"))
    assert.is_string(file.id)
    local last = srv:last()
    assert.equal("/v1/files", last.path)
    assert.equal("t 1", last.query.tenant)
  end)

  it("without the files API, a header given \"\" is sent empty, as the client's own requests send it", function ()
    -- (the client's line for it is "X-Empty;", libcurl's form of an empty header: the LuaSocket path
    -- read no value in it and dropped the header; aigc.null still removes one)
    local c = aigc.client { base_url = srv.base_url, organization = "org-1",
                            headers = { ["X-Empty"] = "", ["X-Kept"] = "1", ["OpenAI-Organization"] = aigc.null } }
    local bare = { base_url = srv.base_url, _engine = client._engine, _hlines = c._hlines }
    assert(batch.upload(bare, '{"custom_id":"a"}\n', "one.jsonl"))
    c:close()
    local h = {}
    for k, v in pairs(srv:last().headers) do h[k:lower()] = v end
    assert.equal("1", h["x-kept"])
    assert.equal("", h["x-empty"])
    assert.is_nil(h["openai-organization"])
  end)

  it("cancels a batch: cancelled, with the lines done by then", function ()
    local b = assert(batch.create(client, { ask("1", "Echo: one"), ask("2", "Echo: two"), ask("3", "Echo: three") },
                                  { metadata = { aigc_delay_ms = "300" } }))
    local c = assert(batch.cancel(client, b.id))
    assert.equal("cancelling", c.status)
    local over = assert(batch.wait(client, b.id, { interval = 0.02 }))
    assert.equal("cancelled", over.status)
    local results = assert(batch.results(client, over))
    local n = 0
    for _ in pairs(results) do n = n + 1 end
    assert.is_true(n < 3)
    assert.equal("cancelled", assert(batch.cancel(client, b.id)).status)   -- again: no change
    local done = assert(batch.wait(client, assert(batch.create(client, { ask("4", "Echo: four") })).id,
                                   { interval = 0.02 }))
    local again, err = batch.cancel(client, done.id)   -- completed: the server refuses
    assert.is_nil(again)
    assert.equal(409, err.status)
  end)

  it("misuse raises in the one format", function ()
    assert.error_matches(function () batch.jsonl({ ask("x", "a"), ask("x", "b") }) end,
      "bad argument #1 to 'jsonl' %(requests%[2%].custom_id: duplicate 'x'%)")
    assert.error_matches(function () batch.jsonl({}) end, "non%-empty list")
  end)

  describe("as the runner's backend", function ()
    local tpl = aigc.template.new { prompt = "Echo: {{word}}", params = { temperature = 0 } }
    local function cases (n)
      local list = {}
      for i = 1, n do
        list[i] = { id = "k" .. i, vars = { word = "w" .. i }, assert = { { type = "contains", value = "w" .. i } } }
      end
      return list
    end
    local function comparable (line)   -- what differs between two runs of any backend
      line.finished_at, line.latency_ms, line.batch_id, line.cost = nil, nil, nil, nil
      return line
    end

    it("gives the same results file as the direct run", function ()
      local direct = assert(runner.run { client = client, cases = cases(6), template = tpl, out = dir .. "/d.jsonl" })
      local batched = assert(runner.run { client = client, cases = cases(6), template = tpl, out = dir .. "/b.jsonl",
                                          backend = "batch", batch_interval = 0.02 })
      assert.equal(6, batched.ok)
      assert.equal(6, batched.passed)
      assert.equal(direct.passed, batched.passed)
      assert.is_string(batched.batch_id)
      local d, b = read_lines(dir .. "/d.jsonl"), read_lines(dir .. "/b.jsonl")
      local by_id = {}
      for _, line in ipairs(d) do by_id[line.id] = comparable(line) end
      assert.equal(6, #b)
      for _, line in ipairs(b) do assert.same(by_id[line.id], comparable(line)) end
      assert.is_nil(io.open(dir .. "/b.jsonl.batch"))   -- done: the id file is gone
    end)

    it("a batch run's summary has totals of the direct run's shape: its lines, at the batch's prices", function ()
      local prices = { ["aigc-dev"] = { input = 1, output = 2 } }
      local direct = assert(runner.run { client = client, cases = cases(4), template = tpl, prices = prices })
      local batched = assert(runner.run { client = client, cases = cases(4), template = tpl, prices = prices,
                                          backend = "batch", batch_interval = 0.02 })
      assert.is_table(direct.totals)
      assert.is_table(batched.totals)
      local function keys (t)
        local list = {}
        for k in pairs(t) do list[#list + 1] = k end
        table.sort(list)
        return table.concat(list, " ")
      end
      assert.equal(keys(direct.totals), keys(batched.totals))
      assert.equal(keys(direct.totals.models["aigc-dev"]), keys(batched.totals.models["aigc-dev"]))
      -- one request a line (the batch's own calls -- upload, create, polls -- are no model requests)
      assert.equal(4, batched.totals.requests)
      assert.equal(0, batched.totals.errors)
      assert.equal(4, batched.totals.models["aigc-dev"].requests)
      for _, k in ipairs { "prompt_tokens", "completion_tokens", "total_tokens" } do
        assert.equal(direct.totals[k], batched.totals[k])
        assert.equal(direct.usage[k], batched.usage[k])
      end
      assert.is_true(math.abs(batched.totals.cost - direct.totals.cost * 0.5) < 1e-12)
      assert.equal(batched.totals.cost, batched.cost)
      -- a failed line is an error, as a failed request of a direct run
      local bad = assert(runner.run { client = client, cases = { { id = "z", prompt = "x" } }, backend = "batch",
                                      batch_interval = 0.02, params = { model = "fault:status=500" } })
      assert.equal(1, bad.totals.requests)
      assert.equal(1, bad.totals.errors)
      -- a judge is a request of the run too (made directly, at the full price)
      local judged = assert(runner.run { client = client, cases = cases(1), template = tpl, prices = prices,
        backend = "batch", batch_interval = 0.02, assert = { { type = "judge", value = "Is it an echo?" } } })
      assert.equal(2, judged.totals.requests)
      assert.equal(2, judged.totals.models["aigc-dev"].requests)
    end)

    it("a stopped run resumes its batch (not a new one); failed lines are failed cases", function ()
      local list = cases(4)
      list[3].model = nil
      local out = dir .. "/r.jsonl"
      -- stop the run while the batch is in progress: the progress callback raises
      local stopped = pcall(runner.run, { client = client, cases = list, template = tpl, out = out, backend = "batch",
        batch_interval = 0.02, batch_metadata = { aigc_delay_ms = "100" },
        on_progress = function () error("stopped by the test") end })
      assert.is_false(stopped)
      local id = proc.read_file(out .. ".batch"):match("%S+")
      assert.matches("^batch_", id)
      local summary = assert(runner.run { client = client, cases = list, template = tpl, out = out,
                                          backend = "batch", batch_interval = 0.02 })
      assert.equal(id, summary.batch_id)
      assert.equal(4, summary.ok)
      local listed = assert(client:request("GET", "/batches"))
      assert.equal(1, #listed.data)                   -- one batch only: the first was resumed
      -- a failing line: the case fails with the line's status, and a rerun makes a new batch for it alone
      local bad = { { id = "z", messages = { { role = "user", content = "x" } } } }
      local s2 = assert(runner.run { client = client, cases = bad, out = dir .. "/z.jsonl", backend = "batch",
                                     batch_interval = 0.02, params = { model = "fault:status=500" } })
      assert.equal(1, s2.failed)
      local line = read_lines(dir .. "/z.jsonl")[1]
      assert.is_false(line.ok)
      assert.equal(500, line.error.status)
    end)

    it("aigc run --batch, and --cancel by batch id", function ()
      local home = cli.home()
      finally(function () cli.rmdir(home) end)
      cli.write(home .. "/templates/echo.lua", '{ prompt = "Echo: {{word}}" }')
      local f = assert(io.open(home .. "/cases.jsonl", "wb"))
      for i = 1, 3 do f:write(cjson.encode { id = "n" .. i, vars = { word = "v" .. i } }, "\n") end
      f:close()
      local r = cli.run({ "run", home .. "/cases.jsonl", "-t", "echo", "--out", home .. "/r.jsonl", "--batch",
                          "-m", "aigc-dev", "--json" }, { home = home, base_url = srv.base_url })
      assert.equal(0, r.code, r.stderr)
      local summary = cjson.decode(r.stdout)
      assert.equal(3, summary.ok)
      assert.matches("^batch_", summary.batch_id)
      local slow = assert(batch.create(client, { ask("s", "Echo: slow") }, { metadata = { aigc_delay_ms = "5000" } }))
      r = cli.run({ "run", home .. "/cases.jsonl", "--batch", "--cancel", "--batch-id", slow.id },
                  { home = home, base_url = srv.base_url })
      assert.equal(0, r.code, r.stderr)
      assert.matches("cancelling", r.stderr)
    end)
  end)
end)
