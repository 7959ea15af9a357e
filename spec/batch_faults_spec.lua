-- aigc.batch against a server that sends what the Batch API does not
-- describe, or echoes the key, and against misuse: what a server sends is
-- `nil, err` (kind "parse", naming the field; per line for output lines),
-- never a raise; every error built from server data is scrubbed of the
-- client's secrets; misuse raises `bad argument #N to 'fn'` at the
-- caller's line; ids go into paths percent-encoded.
--
-- The server: a small LuaSocket child (spec/support/oneshot) answering
-- each request by the longest "METHOD /prefix" route of a table the test
-- writes (as hostile servers do: any body, any status), logging each
-- request line.

local aigc = require "aigc"
local batch = require "aigc.batch"
local runner = require "aigc.runner"
local cjson = require "cjson"
local cli = require "cli"
local misuse = require "misuse"
local proc = require "procutil"
local routed = require "routed"


local KEY = "sk-proj-BATCHSECRET0123456789abcdefXYZ"
local FILE = { body = '{"id":"file-1","object":"file","purpose":"batch"}' }
local function done_batch (extra)
  return { body = '{"id":"b","status":"completed","output_file_id":"out"' .. (extra or "") .. '}' }
end
local function ask (id, content)
  return { custom_id = id, body = { messages = { { role = "user", content = content } } } }
end
local REQS = { ask("fr", "Capital of France?") }
local REPLY = '{"choices":[{"index":0,"message":{"role":"assistant","content":"Paris"},"finish_reason":"stop"}]}'
local function out_line (id, status, body)
  return '{"custom_id":"' .. id .. '","response":{"status_code":' .. status .. ',"body":' .. body .. '},"error":null}'
end

describe("aigc.batch against a hostile server", function ()
  local srv, dir, client

  setup(function ()
    srv = routed.start()
    dir = srv.dir
  end)
  teardown(function () srv:stop() end)

  local function serve (routes)
    srv:serve(routes)
    srv:forget()
  end
  local function requests () return srv:requests() end

  before_each(function ()
    client = aigc.client { base_url = srv.base_url, model = "aigc-dev", api_key = KEY,
                           max_retries = 0, timeout = 10 }
  end)
  after_each(function () client:close() end)

  describe("errors built from server data are scrubbed", function ()
    it("wait's timeout: a status that echoes the key", function ()
      serve { ["GET /v1/batches/b"] = { body = '{"id":"b","status":"' .. KEY .. '"}' } }
      local b, err = batch.wait(client, "b", { timeout = 0.05, interval = 0.02 })
      assert.is_nil(b)
      assert.equal("timeout", err.kind)
      assert.is_nil(tostring(err):find(KEY, 1, true))
      assert.matches("still %[redacted%]", tostring(err))
      assert.is_nil(cjson.encode(err.batch):find(KEY, 1, true))
    end)

    it("wait without an interval backs off while the batch does not move, to 1 s again when it moves",
       function ()
      local function moving (done)
        return { body = '{"id":"b","status":"in_progress","request_counts":{"total":2,"completed":' .. done
                        .. ',"failed":0}}' }
      end
      serve { ["GET /v1/batches/b"] = moving(0) }
      local slept = {}
      client.sleep = function (_, s)   -- (no real sleeping: the server moves when the test says)
        slept[#slept + 1] = s
        if #slept == 8 then serve { ["GET /v1/batches/b"] = moving(1) } end
        if #slept == 9 then serve { ["GET /v1/batches/b"] = done_batch() } end
      end
      local b = assert(batch.wait(client, "b"))
      assert.equal("completed", b.status)
      assert.same({ 1, 2, 4, 8, 16, 32, 60, 60, 1 }, slept)
      assert.equal(60, batch.MAX_POLL_INTERVAL)
    end)

    it("wait's backoff does not sleep past its timeout", function ()
      serve { ["GET /v1/batches/b"] = { body = '{"id":"b","status":"in_progress"}' } }
      local slept, sleep = {}, client.sleep
      client.sleep = function (self, s) slept[#slept + 1] = s; return sleep(self, s) end
      local b, err = batch.wait(client, "b", { timeout = 0.2 })
      assert.is_nil(b)
      assert.equal("timeout", err.kind)
      assert.is_true(#slept > 0, "wait never slept through client.sleep: nothing checked")
      for _, s in ipairs(slept) do assert.is_true(s <= 0.2, tostring(s)) end
    end)

    it("run's failed batch: an id and errors that echo the key", function ()
      local failed = { body = '{"id":"' .. KEY .. '","status":"failed",'
                              .. '"errors":{"data":[{"message":"' .. KEY .. '"}]}}' }
      serve { ["POST /v1/files"] = FILE, ["POST /v1/batches"] = failed, ["GET /v1/batches/"] = failed }
      local res, err = batch.run(client, REQS, { interval = 0.02 })
      assert.is_nil(res)
      assert.equal("batch", err.kind)
      assert.is_nil(tostring(err):find(KEY, 1, true))
      assert.matches("batch %[redacted%] failed", tostring(err))
      assert.is_nil(err.errors.data[1].message:find(KEY, 1, true))
    end)

    it("run's failed batch: the message says why (its first error, with its input line)", function ()
      local failed = { body = '{"id":"b","status":"failed","errors":{"object":"list","data":['
        .. '{"code":"invalid_json_line","message":"This line is not valid JSON.","line":2}]}}' }
      serve { ["POST /v1/files"] = FILE, ["POST /v1/batches"] = failed, ["GET /v1/batches/"] = failed }
      local res, err = batch.run(client, REQS, { interval = 0.02 })
      assert.is_nil(res)
      assert.equal("batch b failed (input line 2: This line is not valid JSON.)", err.message)
    end)

    it("a malformed output line whose custom_id echoes the key", function ()
      serve { ["GET /v1/files/out/content"] = { ctype = "application/jsonl", body = out_line(KEY, 200, "null") } }
      local results = assert(batch.results(client, { id = "b", status = "completed", output_file_id = "out" }))
      local _, r = next(results)
      assert.equal("parse", r.error.kind)
      assert.is_nil(tostring(r.error):find(KEY, 1, true))
    end)
  end)

  describe("a server fault is nil, err (kind parse, naming the field), never a raise", function ()
    local function fails (pattern, ...)
      local ok, res, err = pcall(...)
      assert.is_true(ok, tostring(res))
      assert.is_nil(res)
      assert.equal("parse", err.kind, tostring(err))
      assert.matches(pattern, err.message)
      return err
    end

    it("a batch without an id, with an id not a string or a dot segment, without a status", function ()
      for _, body in ipairs { '{"object":"batch","status":"validating"}', '{"id":5,"status":"validating"}',
                              '{"id":"..","status":"validating"}', '{"id":"","status":"validating"}' } do
        serve { ["POST /v1/files"] = FILE, ["POST /v1/batches"] = { body = body } }
        fails("batch has no usable id %(id: batch id expected, got", batch.run, client, REQS, { interval = 0.02 })
        fails("batch has no usable id", batch.create, client, REQS)
      end
      serve { ["POST /v1/files"] = FILE, ["POST /v1/batches"] = { body = '{"id":"b","status":"validating"}' },
              ["GET /v1/batches/b"] = { body = '{"id":"b","status":{"x":1}}' } }
      fails("batch b has no status %(status: string expected, got table%)", batch.run, client, REQS,
            { interval = 0.02 })
      serve { ["GET /v1/batches/b"] = { body = '[1,2]' } }
      fails("object", batch.retrieve, client, "b")   -- (the core refuses a reply not an object)
      fails("object", batch.wait, client, "b", { interval = 0.02 })
      serve { ["POST /v1/batches/b/cancel"] = { body = '{"id":null,"status":"cancelling"}' } }
      fails("id: batch id expected, got null", batch.cancel, client, "b")
    end)

    it("a file object without an id", function ()
      serve { ["POST /v1/files"] = { body = '{"object":"file"}' }, ["POST /v1/batches"] = done_batch() }
      fails("file object has no usable id", batch.run, client, REQS, { interval = 0.02 })
      assert.same({ "POST /v1/files" }, requests())   -- the upload only: no batch made of nil
    end)

    it("a batch whose output_file_id is not a file id", function ()
      fails("output_file_id: file id expected, got number", batch.results, client,
            { id = "b", status = "completed", output_file_id = 7 })
      fails("error_file_id: file id expected, got an empty string", batch.results, client,
            { id = "b", status = "completed", error_file_id = "" })
      -- null is no file
      assert.same({}, batch.results(client, { id = "b", status = "completed", output_file_id = aigc.null }))
    end)

    it("output lines: a malformed one fails its case, the others go on", function ()
      local lines = { out_line("ok1", 200, REPLY), out_line("null", 200, "null"), out_line("str", 200, '"hello"'),
        '{"custom_id":"resp","response":"oops","error":null}', out_line("code", '"two hundred"', REPLY),
        '{bad json', out_line("ok2", 200, REPLY),
        '{"custom_id":"gone","response":null,"error":{"code":"batch_expired","message":"expired"}}' }
      serve { ["POST /v1/files"] = FILE, ["POST /v1/batches"] = done_batch(), ["GET /v1/batches/b"] = done_batch(),
              ["GET /v1/files/out/content"] = { ctype = "application/jsonl", body = table.concat(lines, "\n") } }
      local reqs = {}
      for _, id in ipairs { "ok1", "null", "str", "resp", "code", "ok2", "gone" } do reqs[#reqs + 1] = ask(id, id) end
      local results, b = batch.run(client, reqs, { interval = 0.02 })
      assert.is_table(results, tostring(b))
      assert.is_true(results.ok1.ok)
      assert.is_true(results.ok2.ok)
      assert.equal("Paris", results.ok2.body.choices[1].message.content)
      local want = { null = "response%.body: object expected, got null",
                     str = "response%.body: object expected, got string",
                     resp = "response: object expected, got string",
                     code = "response%.status_code: number expected, got string" }
      for id, pattern in pairs(want) do
        local r = results[id]
        assert.is_false(r.ok, id)
        assert.equal("parse", r.error.kind, id)
        assert.matches("custom_id '" .. id .. "': " .. pattern, r.error.message)
      end
      assert.is_false(results.gone.ok)                -- an error-file line: the server's error, as it was
      assert.equal("expired", results.gone.error.message)
    end)

    describe("the runner's batch backend", function ()
      local tpl = aigc.template.new { prompt = "Capital of {{country}}?" }
      local CASES = { { id = "fr", vars = { country = "France" } }, { id = "es", vars = { country = "Spain" } } }
      local ROUTES = { ["POST /v1/files"] = FILE, ["POST /v1/batches"] = done_batch(),
        ["GET /v1/batches/b"] = done_batch(),
        ["GET /v1/files/out/content"] = { ctype = "application/jsonl",
                                          body = out_line("fr", 200, "null") .. "\n" .. out_line("es", 200, REPLY) } }

      -- A run's intent left in OUT.batch ("pending TOKEN TIME"): its batch looked for in the
      -- server's list. A server without GET /batches said "run it again", which told no more; a
      -- list longer than 1,000 was taken as "none made": a second batch sent, paid twice.
      -- (again: OUT.batch as the last run left it)
      local function intent_run (batches_route, timed, again)   -- (timed: the intent says when it was made)
        local routes = { ["POST /v1/files"] = FILE, ["POST /v1/batches"] = done_batch() }
        routes["GET /v1/batches?"] = batches_route
        serve(routes)
        local out = dir .. "/intent.jsonl"
        if not again then
          cli.write(out .. ".batch", "pending 0123456789abcdef" .. (timed and " " .. os.time() or "") .. "\n{}\n")
        end
        local summary, err = runner.run { client = client, backend = "batch", batch_interval = 0.02,
                                          template = tpl, cases = CASES, out = out }
        local posts, lists = 0, 0
        for _, r in ipairs(requests()) do
          if r:find("^POST ") then posts = posts + 1 end
          if r:find("^GET /v1/batches%?") then lists = lists + 1 end
        end
        return summary, err, posts, lists, out
      end
      local function page (created_at)
        return { body = cjson.encode { object = "list", has_more = true, data = {
          { id = "b_other", object = "batch", created_at = created_at, metadata = { aigc_run = "ffff" } } } } }
      end

      it("a pending intent and a server that does not list its batches: an error saying what to do", function ()
        local summary, err, posts, lists, out = intent_run(nil)
        assert.is_nil(summary)
        assert.equal(0, posts)
        assert.equal(1, lists)
        assert.matches("the server does not list its batches: remove " .. out .. ".batch to send the cases as a new "
                       .. "batch", err.message, 1, true)
        assert.is_nil(err.message:find("run it again", 1, true))
      end)

      -- (it was an error at each run, the same 10,000 looked through: "run it again" could not end it)
      it("a pending intent not among 10,000 batches newer than it: no second batch; the next run looks on", function ()
        local summary, err, posts, lists, out = intent_run(page(os.time()), true)
        assert.is_nil(summary)
        assert.equal(0, posts)
        assert.equal(100, lists)
        assert.matches("not among the 10000 batches newer than it looked through (up to batch b_other) (run it "
                       .. "again to look through the next 10000 (" .. out .. ".batch keeps where this look stopped)",
                       err.message, 1, true)
        assert.matches("its metadata aigc_run is 0123456789abcdef", err.message, 1, true)
        assert.matches("^pending 0123456789abcdef %d+ b_other\n{}\n$", proc.read_file(out .. ".batch"))
        -- The next run goes on from b_other: past the batches older than the intent, none was made.
        local _, _, posts2, lists2 = intent_run(page(os.time() - 7200), true, true)
        assert.equal(1, lists2)
        assert.equal(2, posts2)   -- (the cases sent as a new batch: its file, the batch)
        local first
        for _, r in ipairs(requests()) do
          if not first and r:find("^GET /v1/batches%?") then first = r end
        end
        assert.matches("after=b_other", first, 1, true)
      end)

      it("a pending intent: the list is read back to the batches older than it, no further", function ()
        local _, _, posts, lists = intent_run(page(os.time() - 7200), true)
        assert.equal(1, lists)   -- (one page of the list)
        assert.equal(2, posts)   -- (none made: the cases sent as a new batch: its file, the batch)
      end)

      it("a line whose body is null fails its case (kind parse); the others pass; a resumed run too", function ()
        serve(ROUTES)
        local out = dir .. "/r.jsonl"
        for round = 1, 2 do   -- 2: resumes batch b from r.jsonl.batch (a server fault used to raise every time)
          if round == 2 then os.remove(out); cli.write(out .. ".batch", "b\n") end
          local ok, summary = pcall(runner.run, { client = client, backend = "batch", batch_interval = 0.02,
                                                  template = tpl, cases = CASES, out = out })
          assert.is_true(ok, tostring(summary))
          assert.equal(1, summary.ok)
          assert.equal(1, summary.failed)
          assert.equal(2, summary.totals.requests)   -- the malformed line is counted, as an error
          assert.equal(1, summary.totals.errors)
          local by_id = {}
          for line in proc.read_file(out):gmatch("[^\n]+") do
            local x = cjson.decode(line)
            by_id[x.id] = x
          end
          assert.is_true(by_id.es.ok)
          assert.is_false(by_id.fr.ok)
          assert.equal("parse", by_id.fr.error.kind)
          assert.matches("response%.body: object expected, got null", by_id.fr.error.message)
          assert.is_nil(io.open(out .. ".batch"))
        end
      end)

      it("a reply that breaks the template's schema fails its case as a direct call's (kind schema)", function ()
        serve(ROUTES)   -- (es: "Paris", not the JSON object the schema asks for)
        local schema = { type = "object", properties = { city = { type = "string" } }, required = { "city" } }
        local summary = assert(runner.run { client = client, backend = "batch", batch_interval = 0.02,
          template = aigc.template.new { prompt = "Capital of {{country}}?", schema = schema }, cases = { CASES[2] } })
        assert.equal(1, summary.failed)
        assert.equal("schema", summary.results.es.error.kind)
        assert.equal(1, summary.totals.requests)
      end)

      -- A line whose `error` is a plain string (a proxy's, a gateway's) was
      -- "status 200" (or "status nil" with no response): the server's words lost.
      it("a line whose error is a string, or an object with a code only: the case's error says so", function ()
        local lines = {
          '{"custom_id":"fr","response":{"status_code":200,"body":' .. REPLY .. '},"error":"quota exceeded for '
            .. KEY .. '"}',
          '{"custom_id":"es","response":null,"error":{"code":"batch_expired"}}',
          '{"custom_id":"it","response":{"status_code":500,"body":{"error":"upstream gateway down"}},"error":null}',
        }
        serve { ["POST /v1/files"] = FILE, ["POST /v1/batches"] = done_batch(), ["GET /v1/batches/b"] = done_batch(),
                ["GET /v1/files/out/content"] = { ctype = "application/jsonl", body = table.concat(lines, "\n") } }
        local cases = { CASES[1], CASES[2], { id = "it", vars = { country = "Italy" } } }
        local summary = assert(runner.run { client = client, backend = "batch", batch_interval = 0.02,
                                            template = tpl, cases = cases })
        assert.equal(3, summary.failed)
        local fr, es, it_ = summary.results.fr.error, summary.results.es.error, summary.results.it.error
        assert.equal("quota exceeded for [redacted]", fr.message)   -- (scrubbed, as every server text)
        assert.equal(200, fr.status)
        assert.equal("batch_expired", es.message)
        assert.equal("upstream gateway down", it_.message)
        assert.equal(500, it_.status)
      end)

      it("a failed batch: each case's error says why (the batch's first error, its input line)", function ()
        local failed = { body = '{"id":"b","status":"failed","errors":{"object":"list","data":['
          .. '{"code":"invalid_json_line","message":"This line is not valid JSON.","line":2},'
          .. '{"code":"missing_body","message":"Each line needs a body object.","line":5}]}}' }
        serve { ["POST /v1/files"] = FILE, ["POST /v1/batches"] = failed, ["GET /v1/batches/b"] = failed }
        local summary = assert(runner.run { client = client, backend = "batch", batch_interval = 0.02,
                                            template = tpl, cases = CASES })
        assert.equal(2, summary.failed)
        for _, id in ipairs { "fr", "es" } do
          assert.equal("batch b ended failed without this case (input line 2: This line is not valid JSON.; "
                       .. "and 1 more)", summary.results[id].error.message)
        end
      end)

      it("an expired batch with partial output: the done case passes, the other fails and runs again", function ()
        local expired = { body = '{"id":"b","status":"expired","output_file_id":"out"}' }
        serve { ["POST /v1/files"] = FILE, ["POST /v1/batches"] = expired, ["GET /v1/batches/b"] = expired,
                ["GET /v1/files/out/content"] = { ctype = "application/jsonl", body = out_line("es", 200, REPLY) } }
        local out = dir .. "/expired.jsonl"
        local summary = assert(runner.run { client = client, backend = "batch", batch_interval = 0.02,
                                            template = tpl, cases = CASES, out = out })
        assert.equal(1, summary.ok)
        assert.equal("Paris", summary.results.es.text)
        assert.equal("batch b ended expired without this case", summary.results.fr.error.message)
        assert.is_nil(io.open(out .. ".batch"))   -- (its results are written: a rerun sends a new batch)
        serve { ["POST /v1/files"] = FILE, ["POST /v1/batches"] = done_batch(), ["GET /v1/batches/b"] = done_batch(),
                ["GET /v1/files/out/content"] = { ctype = "application/jsonl", body = out_line("fr", 200, REPLY) } }
        summary = assert(runner.run { client = client, backend = "batch", batch_interval = 0.02,
                                      template = tpl, cases = CASES, out = out })
        assert.equal(1, summary.skipped)
        assert.equal(2, summary.ok)
        assert.equal(1, summary.requests)   -- only fr went in the new batch
      end)

      it("aigc run --batch: the case fails, no internal error (exit 1, not 70), resumed or not", function ()
        serve(ROUTES)
        local home = cli.home()
        finally(function () cli.rmdir(home) end)
        cli.write(home .. "/cases.jsonl",
                  '{"id":"fr","messages":[{"role":"user","content":"Capital of France?"}]}\n')
        for round = 1, 2 do
          if round == 2 then cli.write(home .. "/out.jsonl.batch", "b\n") end
          local r = cli.run({ "run", home .. "/cases.jsonl", "--batch", "--out", home .. "/out.jsonl" },
                            { home = home, base_url = srv.base_url,
                              env = { AIGC_NO_LOG = "1" } })
          assert.equal(1, r.code, r.stderr)
          assert.is_nil(r.stderr:find("internal error", 1, true))
          assert.matches("failed 1", r.stderr)
        end
      end)
    end)
  end)

  describe("ids go into paths percent-encoded", function ()
    it("retrieve, cancel and wait with an id holding / ? = and ..", function ()
      local b = { body = '{"id":"../files?x=","status":"completed"}' }
      serve { ["GET /v1/batches/"] = b, ["POST /v1/batches/"] = b, ["GET /v1/files"] = { status = 500 } }
      assert(batch.retrieve(client, "../files?x="))
      assert(batch.cancel(client, "../files?x="))
      assert(batch.wait(client, "../files?x=", { interval = 0.02 }))
      assert.same({ "GET /v1/batches/..%2Ffiles%3Fx%3D", "POST /v1/batches/..%2Ffiles%3Fx%3D/cancel",
                    "GET /v1/batches/..%2Ffiles%3Fx%3D" }, requests())
    end)

    it("a server-chosen id reaches no other endpoint", function ()
      local made = { body = '{"id":"../files?x=","status":"validating"}' }
      serve { ["POST /v1/files"] = FILE, ["POST /v1/batches"] = made,
              ["GET /v1/batches/"] = { body = '{"id":"../files?x=","status":"completed"}' },
              ["GET /v1/files"] = { body = '{"id":"x","status":"completed","output_file_id":"o"}' } }
      local results = assert(batch.run(client, REQS, { interval = 0.02 }))
      assert.same({}, results)
      local sent = requests()
      assert.is_true(#sent >= 3, table.concat(sent, ", "))   -- (the upload, the create, the polls: each checked)
      for _, r in ipairs(sent) do assert.is_nil(r:find("?x=", 1, true), r) end
    end)
  end)
end)

describe("aigc.batch misuse", function ()
  local client
  before_each(function () client = aigc.client { base_url = "http://127.0.0.1:9/v1", max_retries = 0 } end)
  after_each(function () client:close() end)

  it("raises bad argument #N to the function called, at the caller's line", function ()
    misuse.raises("bad argument #1 to 'run' %(aigc%.client expected, got nil%)",
                  function () batch.run(nil, REQS) end)
    misuse.raises("bad argument #1 to 'retrieve' %(aigc%.client expected, got the aigc%.batch module: "
                  .. "call aigc%.batch%.retrieve%(client, %.%.%.%) with '%.', not ':'%)",
                  function () batch:retrieve("x") end)
    misuse.raises("bad argument #2 to 'results' %(batch %(table%) expected, got nil%)",
                  function () batch.results(client, nil) end)
    misuse.raises("bad argument #1 to 'jsonl' %(non%-empty list of { custom_id =, body = } expected, got nil%)",
                  function () batch.jsonl(nil) end)
    misuse.raises("bad argument #1 to 'jsonl' %(requests%[2%]%.custom_id: duplicate 'fr'%)",
                  function () batch.jsonl { ask("fr", "a"), ask("fr", "b") } end)
    misuse.raises("bad argument #2 to 'jsonl' %(string expected, got number%)",
                  function () batch.jsonl(REQS, 5) end)
    misuse.raises("bad argument #2 to 'run' %(requests%[1%]: table expected, got string%)",
                  function () batch.run(client, { "x" }) end)
    misuse.raises("bad argument #3 to 'run' %(table expected, got string%)",
                  function () batch.run(client, REQS, "fast") end)
    misuse.raises("bad argument #3 to 'create' %(opts%.metadata: table expected, got string%)",
                  function () batch.create(client, REQS, { metadata = "m" }) end)
    misuse.raises("bad argument #3 to 'wait' %(opts%.interval: number of seconds >= 0 expected, got %-1%)",
                  function () batch.wait(client, "b", { interval = -1 }) end)
    misuse.raises("bad argument #3 to 'wait' %(opts%.on_progress: function expected, got string%)",
                  function () batch.wait(client, "b", { on_progress = "print" }) end)
    misuse.raises("bad argument #2 to 'wait' %(batch id expected, got nil%)", function () batch.wait(client) end)
    misuse.raises("bad argument #2 to 'cancel' %(batch id expected, got an empty string%)",
                  function () batch.cancel(client, "") end)
    misuse.raises("bad argument #2 to 'retrieve' %(batch id expected, got '%.%.'%)",
                  function () batch.retrieve(client, "..") end)
    misuse.raises("bad argument #1 to 'cancel' %(aigc%.client expected, got string%)",
                  function () batch.cancel("b") end)
    misuse.raises("bad argument #2 to 'download' %(file id expected, got nil%)",
                  function () batch.download(client) end)
    misuse.raises("bad argument #2 to 'upload' %(string expected, got nil%)", function () batch.upload(client) end)
  end)
end)
