-- Probes of aigc.batch (the Batch API) against the bundled server and a
-- raw routed server over loopback HTTP: the API's limits, odd JSONL,
-- statuses, polling failures. Each test failed before its fix, or pins
-- what was found correct.

local aigc = require "aigc"
local batch = require "aigc.batch"
local cjson = require "cjson"
local cli = require "cli"
local devserver = require "devserver"
local routed = require "routed"


local KEY = "sk-proj-BATCHPROBE0123456789abcdefXYZ"
local FILE = { body = '{"id":"file-1","object":"file","purpose":"batch"}' }
local REPLY = '{"choices":[{"index":0,"message":{"role":"assistant","content":"Paris"},"finish_reason":"stop"}]}'
local function ask (id, content)
  return { custom_id = id, body = { messages = { { role = "user", content = content or "Hi" } } } }
end
local function out_line (id, status, body)
  return '{"custom_id":"' .. id .. '","response":{"status_code":' .. status .. ',"request_id":"r","body":'
         .. body .. '},"error":null}'
end

describe("aigc.batch probes against a raw server", function ()
  local srv, routes_path, client

  setup(function ()
    srv = routed.start()
    routes_path = srv.routes_path
  end)
  teardown(function () srv:stop() end)
  local function serve (routes) srv:serve(routes) end

  before_each(function ()
    client = aigc.client { base_url = srv.base_url, model = "aigc-dev", api_key = KEY,
                           max_retries = 0, timeout = 10 }
  end)
  after_each(function () client:close() end)

  local function results_of (text, err_text)
    local routes = { ["GET /v1/files/out/content"] = { ctype = "application/jsonl", body = text } }
    local b = { id = "b", status = "completed", output_file_id = "out" }
    if err_text then
      routes["GET /v1/files/err/content"] = { ctype = "application/jsonl", body = err_text }
      b.error_file_id = "err"
    end
    serve(routes)
    return batch.results(client, b)
  end

  it("reads CRLF lines, U+2028/U+2029 in strings, lines out of order, a last line without newline", function ()
    local odd = "a" .. string.char(226, 128, 168) .. "b" .. string.char(226, 128, 169) .. "c"
    local text = out_line("z", 200, '{"choices":[{"message":{"role":"assistant","content":"' .. odd .. '"}}]}')
                 .. "\r\n" .. out_line("a", 200, REPLY) .. "\r\n" .. out_line("m", 200, REPLY)
    local r = assert(results_of(text))
    assert.is_true(r.z.ok)
    assert.equal(odd, r.z.body.choices[1].message.content)
    assert.is_true(r.a.ok)
    assert.is_true(r.m.ok, "the last line, without its newline, was lost")
  end)

  it("an empty output file gives no results; output and error files both read", function ()
    assert.same({}, assert(results_of("")))
    local r = assert(results_of(out_line("a", 200, REPLY) .. "\n",
      out_line("b", 400, '{"error":{"message":"bad model","type":"invalid_request_error"}}') .. "\n"
      .. '{"custom_id":"c","response":null,"error":{"code":"batch_expired","message":"expired"}}\n'))
    assert.is_true(r.a.ok)
    assert.is_false(r.b.ok)
    assert.equal(400, r.b.status_code)
    assert.equal("bad model", r.b.body.error.message)
    assert.is_false(r.c.ok)
    assert.equal("batch_expired", r.c.error.code)
  end)

  it("a line that is not JSON, of a custom_id with escapes: that line's failure (it had no result)", function ()
    local bad = string.char(255)
    local r = assert(results_of('{"custom_id":"a\\"b\\nc\\u00e9","response":{"status_code":200,"body":{"x":"'
                                .. bad .. '"}},"error":null}\n' .. out_line("ok", 200, REPLY) .. "\n"))
    local id = 'a"b\nc' .. string.char(195, 169)
    assert.is_table(r[id], "the line's case had no result")
    assert.is_false(r[id].ok)
    assert.equal("parse", r[id].error.kind)
    assert.equal(id, r[id].error.custom_id)
    assert.is_true(r.ok.ok)
  end)

  it("a poll that fails for good after the batch was made: the error names the batch", function ()
    serve { ["POST /v1/files"] = FILE, ["POST /v1/batches"] = { body = '{"id":"batch_kept","status":"validating"}' },
            ["GET /v1/batches/"] = { status = 500, body = '{"error":{"message":"down"}}' } }
    local res, err = batch.run(client, { ask("a") }, { interval = 0.02 })
    assert.is_nil(res)
    assert.equal(500, err.status)
    assert.equal("batch_kept", err.batch_id)
    assert.matches("batch_kept", tostring(err))
  end)
  it("a batch id that echoes the key: scrubbed from the error that names it, and from an interrupt", function ()
    serve { ["POST /v1/files"] = FILE, ["POST /v1/batches"] = { body = '{"id":"' .. KEY .. '","status":"validating"}' },
            ["GET /v1/batches/"] = { status = 500, body = '{"error":{"message":"down"}}' } }
    local res, err = batch.run(client, { ask("a") }, { interval = 0.02 })
    assert.is_nil(res)
    assert.is_nil(tostring(err):find(KEY, 1, true))
    assert.is_nil(tostring(err.batch_id):find(KEY, 1, true))
    assert.matches("%[redacted%]", err.message)
    serve { ["POST /v1/files"] = FILE, ["POST /v1/batches"] = { body = '{"id":"' .. KEY .. '","status":"validating"}' },
            ["GET /v1/batches/"] = { body = '{"id":"' .. KEY .. '","status":"in_progress"}' } }
    local ok, raised = pcall(batch.run, client, { ask("a") }, { interval = 0.02,
                             on_progress = function () error("interrupted!", 0) end })
    assert.is_false(ok)
    assert.is_nil(raised:find(KEY, 1, true))
    assert.matches("^batch %[redacted%] goes on at the server .*: interrupted!$", raised)
  end)

  it("an error object raised while it waits (an on_progress's) names the batch too", function ()
    local running = { body = '{"id":"batch_obj","status":"in_progress"}' }
    serve { ["POST /v1/files"] = FILE, ["POST /v1/batches"] = running, ["GET /v1/batches/"] = running }
    local ok, raised = pcall(batch.run, client, { ask("a") }, { interval = 0.02, on_progress = function ()
      error(require("aigc.util").new_error { kind = "callback", message = "stopped" }, 0)
    end })
    assert.is_false(ok)
    assert.equal("callback", raised.kind)
    assert.equal("batch_obj", raised.batch_id)
    assert.matches("^batch batch_obj goes on at the server .*: stopped$", raised.message)
  end)

  it("a batch run whose polls fail for good: the error names the batch, which goes on at the server", function ()
    serve { ["POST /v1/files"] = FILE, ["POST /v1/batches"] = { body = '{"id":"batch_run1","status":"validating"}' },
            ["GET /v1/batches/"] = { status = 500, body = '{"error":{"message":"down"}}' } }
    local runner = require "aigc.runner"
    local summary, err = runner.run { client = client, backend = "batch", batch_interval = 0.02,
      cases = { { id = "a", messages = { { role = "user", content = "Hi" } } } } }
    assert.is_nil(summary)
    assert.equal(500, err.status)
    assert.equal("batch_run1", err.batch_id)
    assert.equal('batch batch_run1 goes on at the server (batch_id = "batch_run1", aigc run --batch-id batch_run1, '
                 .. 'takes its results): down', err.message)
  end)

  it("a batch over whose output file cannot be read: the error names the batch", function ()
    local done = { body = '{"id":"batch_done","status":"completed","output_file_id":"out"}' }
    serve { ["POST /v1/files"] = FILE, ["POST /v1/batches"] = done, ["GET /v1/batches/"] = done,
            ["GET /v1/files/out/content"] = { status = 500, body = '{"error":{"message":"storage down"}}' } }
    local res, err = batch.run(client, { ask("a") }, { interval = 0.02 })
    assert.is_nil(res)
    assert.equal(500, err.status)
    assert.equal("batch_done", err.batch_id)
    assert.matches("^batch batch_done is completed %(aigc%.batch%.results reads it again%): .*storage down",
                   err.message)
  end)
  it("an embeddings batch over 50,000 inputs in all is refused before anything is uploaded", function ()
    serve { ["POST /v1/files"] = { status = 500, body = '{"error":{"message":"upload reached"}}' } }
    local many = {}
    for i = 1, 49999 do many[i] = "x" end
    local reqs = { { custom_id = "many", body = { input = many } },
                   { custom_id = "tokens", body = { input = { 1, 2, 3 } } } }   -- (a token list: one input)
    -- 50,000: at the limit, it goes (to the upload, which this server refuses)
    local b, err = batch.create(client, reqs, { endpoint = "/v1/embeddings" })
    assert.is_nil(b)
    assert.equal(500, err.status)
    reqs[3] = { custom_id = "one", body = { input = "s" } }
    b, err = batch.create(client, reqs, { endpoint = "/v1/embeddings" })
    assert.is_nil(b)
    assert.equal("batch", err.kind)
    assert.equal("too_many_inputs", err.code)
    assert.matches("50001 embedding inputs: an embeddings batch takes at most 50000", err.message)
    assert.equal(50000, batch.MAX_EMBEDDING_INPUTS)
    -- (the other endpoints count requests, not inputs)
    b, err = batch.create(client, reqs, { endpoint = "/v1/moderations" })
    assert.is_nil(b)
    assert.equal(500, err.status)
  end)

  it("a custom_id or body JSON cannot carry: bad argument naming the function and the request", function ()
    local misuse = require "misuse"
    local bad = "a" .. string.char(255)
    misuse.raises("bad argument #2 to 'create' %(requests%[2%]%.custom_id: invalid UTF%-8", function ()
      batch.create(client, { ask("ok"), ask(bad) })
    end)
    misuse.raises("bad argument #2 to 'run' %(requests%[1%]%.body%.messages%[1%]%.content: invalid UTF%-8",
                  function () batch.run(client, { ask("ok", bad) }) end)
    misuse.raises("bad argument #1 to 'jsonl' %(requests%[1%]%.body%.messages%[1%]%.content: invalid UTF%-8",
                  function () batch.jsonl { ask("ok", bad) } end)
  end)
  it("every status: polls through the live ones, gives an expired or cancelled batch's partial results", function ()
    for _, over in ipairs { "expired", "cancelled" } do
      local states = { "validating", "in_progress", "finalizing", "cancelling", over }
      local seen, n = {}, 0
      local function route (status)
        return { body = '{"id":"b","status":"' .. status .. '","output_file_id":"out","error_file_id":"err"}' }
      end
      serve { ["POST /v1/files"] = FILE, ["POST /v1/batches"] = route("validating"),
              ["GET /v1/batches/b"] = route(states[1]),
              ["GET /v1/files/out/content"] = { body = out_line("a", 200, REPLY) .. "\n" },
              ["GET /v1/files/err/content"] = {
                body = '{"custom_id":"b","response":{"status_code":200,"body":{}},'
                       .. '"error":{"code":"x","message":"y"}}' } }
      local results, b = batch.run(client, { ask("a"), ask("b"), ask("c") }, { interval = 0.01,
        on_progress = function (x)
          seen[#seen + 1] = x.status
          n = n + 1
          if states[n + 1] then   -- (the next poll's status)
            local f = assert(io.open(routes_path))
            local r = cjson.decode(f:read("*a"))
            f:close()
            r["GET /v1/batches/b"] = route(states[n + 1])
            serve(r)
          end
        end })
      assert.is_table(results, tostring(b))
      assert.same(states, seen)
      assert.equal(over, b.status)
      assert.is_true(results.a.ok)
      assert.is_false(results.b.ok)             -- a 200 with an error: the error counts
      assert.equal("y", results.b.error.message)
      assert.is_nil(results.c)                  -- never done
    end
  end)
end)

describe("aigc.batch.run stopped while it polls", function ()
  local srv
  setup(function () srv = devserver.start { pause_ms = 0, batch_delay_ms = 60000 } end)
  teardown(function () srv:stop() end)

  it("by Ctrl-C: the interrupt names the batch, which goes on at the server", function ()
    local luachild, socket = require "luachild", require "socket"
    local job = luachild.run([[
      local aigc = require "aigc"
      local client = aigc.client { base_url = arg[1], model = "aigc-dev", api_key = arg[2] }
      aigc.batch.run(client, { { custom_id = "a", body = { messages = { { role = "user", content = "Hi" } } } } },
                     { interval = 0.05 })
      print("not interrupted")
    ]], { args = { srv.base_url, KEY }, background = true })
    local id = devserver.batch_polled(srv, 2, socket.gettime() + 30)
    os.execute("kill -INT " .. job.pid)
    local r = job:wait(30)
    assert.not_equal(0, r.status)
    assert.matches("batch " .. id .. " goes on at the server %(aigc%.batch%.wait%(client, \"" .. id
                   .. "\"%) waits for it again, aigc%.batch%.cancel cancels it%): .*interrupted!", r.stderr)
    assert.is_nil(r.stderr:find(KEY, 1, true))
    local client = aigc.client { base_url = srv.base_url, model = "aigc-dev" }
    local b = assert(batch.retrieve(client, id))
    client:close()
    assert.is_nil(batch.TERMINAL[b.status], b.status)   -- (not over: its lines take a minute each)
  end)
end)

describe("aigc.batch against the bundled server", function ()
  local srv, client
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { model = "aigc-dev" }, nil,
                    { pause_ms = 0, batch_delay_ms = 1 })

  it("a poll that fails for a while (503 twice) is retried by the client, and the wait goes on", function ()
    local b = assert(batch.create(client, { { custom_id = "a", body = { messages = {
      { role = "user", content = "Echo: one" } } } } }))
    local flaky = aigc.client { base_url = srv.base_url, model = "aigc-dev", max_retries = 3,
                                headers = { ["x-aigc-fault"] = "status=503,retry-after-ms=10,times=2" } }
    local over, err = batch.wait(flaky, b.id, { interval = 0.02 })
    local retries = flaky:usage().retries
    flaky:close()
    assert.is_table(over, tostring(err))
    assert.equal("completed", over.status)
    assert.equal(2, retries)
  end)

  it("a custom_id with quotes, a backslash, a newline, URL characters, U+2028 and accents; every endpoint", function ()
    local odd = 'a"b\\c\n/d?e=f&g%20 ' .. string.char(226, 128, 168) .. string.char(195, 169)
    local bodies = { ["/v1/chat/completions"] = { messages = { { role = "user", content = "Echo: x" } } },
                     ["/v1/embeddings"] = { input = { "a", "b" } }, ["/v1/completions"] = { prompt = "hi" },
                     ["/v1/responses"] = { input = "Echo: r" }, ["/v1/moderations"] = { input = "hi" } }
    for endpoint, body in pairs(bodies) do
      local results, b = batch.run(client, { { custom_id = odd, body = body }, { custom_id = "2", body = body } },
                                   { endpoint = endpoint, interval = 0.02 })
      assert.is_table(results, endpoint .. ": " .. tostring(b))
      assert.is_true(results[odd].ok, endpoint)
      assert.is_true(results["2"].ok, endpoint)
      assert.equal(endpoint, b.endpoint)
    end
    assert.equal(2, #batch.run(client, { { custom_id = odd, body = bodies["/v1/embeddings"] } },
      { endpoint = "/v1/embeddings", interval = 0.02 })[odd].body.data)
  end)

  it("the server's expired batch: the lines done, the others in the error file as batch_expired", function ()
    local results, b = batch.run(client, { ask("a", "Echo: one"), ask("b", "Echo: two"), ask("c", "Echo: three") },
                                 { interval = 0.02, metadata = { aigc_expire_after = "1" } })
    assert.is_table(results, tostring(b))
    assert.equal("expired", b.status)
    assert.is_number(b.expired_at)
    assert.is_true(results.a.ok)
    assert.equal("one", results.a.body.choices[1].message.content)
    for _, id in ipairs { "b", "c" } do
      assert.is_false(results[id].ok)
      assert.equal("batch_expired", results[id].error.code)
    end
    local _, err = batch.cancel(client, b.id)   -- (over: not cancellable)
    assert.equal(409, err.status)
    -- a run: the case done passes, the other fails with the server's reason, and runs again next time
    local runner = require "aigc.runner"
    local dir = cli.home()
    local out = dir .. "/e.jsonl"
    local cases = { { id = "x", messages = { { role = "user", content = "Echo: x1" } } },
                    { id = "y", messages = { { role = "user", content = "Echo: y1" } } } }
    local s1 = assert(runner.run { client = client, cases = cases, out = out, backend = "batch", batch_interval = 0.02,
                                   batch_metadata = { aigc_expire_after = "1" } })
    assert.equal(1, s1.ok)
    assert.equal(1, s1.failed)
    assert.matches("completion window expired", tostring(s1.results.y.error.message))
    local s2 = assert(runner.run { client = client, cases = cases, out = out, backend = "batch",
                                   batch_interval = 0.02 })
    cli.rmdir(dir)
    assert.equal(2, s2.ok)
    assert.equal(1, s2.skipped)
  end)

  it("yields while it polls (its wait is guarded, on every Lua): another task runs meanwhile", function ()
    local results, ticks = nil, 0
    client:spawn(function ()
      results = assert(batch.run(client, { { custom_id = "a", body = { messages = {
        { role = "user", content = "Echo: one" } } } } }, { interval = 0.02 }))
    end)
    client:spawn(function ()
      while results == nil do ticks = ticks + 1; client:sleep(0.01) end
    end)
    while client:step(0.05) > 0 do end
    assert.is_true(results.a.ok)
    assert.equal("one", results.a.body.choices[1].message.content)
    assert.is_true(ticks > 0)
  end)
end)

describe("a batch run past the Batch API's limits", function ()
  local srv, client, dir
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { model = "aigc-dev" }, nil,
                    { pause_ms = 0, batch_delay_ms = 1 })
  local runner = require "aigc.runner"
  local tpl = aigc.template.new { prompt = "Echo: {{word}}" }
  local function cases (n)
    local list = {}
    for i = 1, n do
      list[i] = { id = "k" .. i, vars = { word = "w" .. i }, assert = { { type = "contains", value = "w" .. i } } }
    end
    return list
  end
  -- (the limits, lowered for the test: 50,000 cases would take minutes)
  local function with_limits (requests, bytes, f)
    local r0, b0 = batch.MAX_REQUESTS, batch.MAX_BYTES
    batch.MAX_REQUESTS, batch.MAX_BYTES = requests, bytes
    local ok, a, b = pcall(f)
    batch.MAX_REQUESTS, batch.MAX_BYTES = r0, b0
    assert(ok, a)
    return a, b
  end
  local function batches ()
    local n = 0
    for _, r in ipairs(srv:requests()) do if r.method == "POST" and r.path == "/v1/batches" then n = n + 1 end end
    return n
  end
  setup(function () dir = cli.home() end)
  teardown(function () cli.rmdir(dir) end)

  it("goes as several batches, one after another (it failed: 'send them as several batches')", function ()
    local summary, err = with_limits(2, 200 * 1000 * 1000, function ()
      return runner.run { client = client, cases = cases(5), template = tpl, out = dir .. "/n.jsonl",
                          backend = "batch", batch_interval = 0.02 }
    end)
    assert.is_table(summary, tostring(err))
    assert.equal(5, summary.passed)
    assert.equal(3, batches())
    assert.is_nil(io.open(dir .. "/n.jsonl.batch"))
  end)

  it("its progress counts the cases done by its earlier batches (done went back to 0 with each batch)", function ()
    local seen = {}
    local summary, err = with_limits(2, 200 * 1000 * 1000, function ()
      return runner.run { client = client, cases = cases(5), template = tpl, backend = "batch", batch_interval = 0.02,
                          on_progress = function (p) seen[#seen + 1] = p.done end }
    end)
    assert.is_table(summary, tostring(err))
    assert.equal(5, seen[#seen])
    for i = 2, #seen do
      assert.is_true(seen[i] >= seen[i - 1], "done went back: " .. table.concat(seen, " "))
    end
  end)

  it("by bytes: a batch takes the lines its input file holds", function ()
    local one = #batch.jsonl({ { custom_id = "k1", body = { model = "aigc-dev", messages = {
      { role = "user", content = "Echo: w1" } } } } })
    local summary, err = with_limits(50000, one * 2 + 10, function ()
      return runner.run { client = client, cases = cases(4), template = tpl, out = dir .. "/b.jsonl",
                          backend = "batch", batch_interval = 0.02 }
    end)
    assert.is_table(summary, tostring(err))
    assert.equal(4, summary.passed)
    assert.equal(2, batches())
  end)

  it("stopped in its second batch, resumes that one (the first's cases are done)", function ()
    local out, first = dir .. "/s.jsonl", nil
    local stopped = with_limits(2, 200 * 1000 * 1000, function ()
      return (pcall(runner.run, { client = client, cases = cases(4), template = tpl, out = out, backend = "batch",
        batch_interval = 0.02, batch_metadata = { aigc_delay_ms = "50" },
        on_progress = function (p)
          first = first or p.batch.id
          if p.batch.id ~= first then error("stopped by the test") end
        end }))
    end)
    assert.is_false(stopped)
    local kept = assert(io.open(out .. ".batch")):read("*l")
    assert.not_equal(first, kept)
    local summary, err = with_limits(2, 200 * 1000 * 1000, function ()
      return runner.run { client = client, cases = cases(4), template = tpl, out = out, backend = "batch",
                          batch_interval = 0.02 }
    end)
    assert.is_table(summary, tostring(err))
    assert.equal(kept, summary.batch_id)
    assert.equal(2, summary.skipped)   -- (k1, k2: written by the first run)
    assert.equal(4, summary.passed)
    assert.equal(2, batches())   -- (the two of the first run: none made by the second)
  end)
end)
