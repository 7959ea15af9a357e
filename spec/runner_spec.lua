-- aigc.runner against the bundled server: results lines, assertions and
-- their pass-rate table, retries, strategies, resuming (also of a run
-- killed with SIGKILL), and 1,000 cases under a server rate limit with no
-- 429 and no failed case. Also `aigc run` as a process.

local aigc = require "aigc"
local cjson = require "cjson"
local cli = require "cli"
local devserver = require "devserver"
local proc = require "procutil"
local runner = require "aigc.runner"
local socket = require "socket"

local function write_cases (path, n, extra)
  local f = assert(io.open(path, "wb"))
  local countries = { "France", "Spain", "Italy", "Germany", "Japan" }
  for i = 1, n do
    local c = { id = "c" .. i, vars = { country = countries[(i - 1) % 5 + 1] } }
    if extra then extra(c, i) end
    f:write(cjson.encode(c), "\n")
  end
  f:close()
end

local read_lines = proc.json_lines

local capital = aigc.template.new { prompt = "What is the capital of {{country}}?", params = { temperature = 0 } }

describe("aigc.runner", function ()
  local srv, client, dir
  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)
  before_each(function ()
    srv:reset()
    client = aigc.client { base_url = srv.base_url }
    dir = cli.home()
  end)
  after_each(function ()
    client:close()
    cli.rmdir(dir)
  end)

  it("writes one result line per case with text, usage, timing, cost and assertions", function ()
    local cases = {
      { id = "fr", vars = { country = "France" }, assert = { { type = "contains", value = "Paris" } } },
      { id = "es", vars = { country = "Spain" }, assert = { { type = "contains", value = "Paris" } } },
      { id = 3, country = "Italy" },                       -- variables without `vars`
    }
    local out = dir .. "/results.jsonl"
    local seen = {}
    local summary = assert(runner.run {
      client = client, cases = cases, template = capital, out = out, params = { model = "gpt-4o-mini" },
      prices = { ["gpt-4o"] = { input = 2.5, output = 10 }, ["gpt-4o-mini"] = { input = 0.15, output = 0.6 } },
      assert = { { type = "icontains", value = "THE CAPITAL" } },
      on_result = function (r) seen[#seen + 1] = r.id end,
    })
    assert.equal(3, #seen)
    local lines = read_lines(out)
    assert.equal(3, #lines)
    local by = {}
    for _, r in ipairs(lines) do by[r.id] = r end
    local fr = by.fr
    assert.is_true(fr.ok)
    assert.equal("The capital of France is Paris.", fr.text)
    assert.equal("gpt-4o-mini", fr.model)
    assert.is_true(fr.usage.prompt_tokens > 0 and fr.usage.completion_tokens > 0)
    assert.is_number(fr.latency_ms)
    assert.equal(1, fr.attempts)
    -- the longest matching price name wins: gpt-4o-mini, not gpt-4o
    local want = (fr.usage.prompt_tokens * 0.15 + fr.usage.completion_tokens * 0.6) / 1e6
    assert.near(want, fr.cost, 1e-12)
    assert.is_true(fr.pass)
    assert.is_false(by.es.pass)
    assert.equal("The capital of Italy is Rome.", by[3].text)
    assert.equal(3, summary.total)
    assert.equal(3, summary.ok)
    assert.equal(2, summary.passed)
    assert.near(2 / 3, summary.pass_rate, 1e-9)
    assert.same({ { name = "contains Paris", type = "contains", passed = 1, total = 2 },
                  { name = "icontains THE CAPITAL", type = "icontains", passed = 3, total = 3 } },
                summary.assertions)
    assert.equal(3, #srv:requests())
    assert.is_nil(srv:requests()[1].body_json.max_retries)   -- a per-call option: never sent
  end)

  it("checks every kind of assertion", function ()
    local text = 'The answer is {"city": "Paris", "rank": 1}'
    local function check (a, t) return (runner.check({ a }, t or text, { client = client })) end
    assert.is_true(check { type = "contains", value = "Paris" })
    assert.is_false(check { type = "contains", value = "paris" })
    assert.is_true(check { type = "icontains", value = "paris" })
    assert.is_true(check { type = "not-contains", value = "Rome" })
    assert.is_true(check({ type = "equals", value = "Paris" }, "  Paris\n"))
    assert.is_true(check { type = "starts-with", value = "The answer" })
    assert.is_true(check { type = "pattern", value = "rank\": %d" })
    assert.is_false(check { type = "pattern", value = "[" })      -- a bad pattern fails, it does not raise
    if pcall(require, "rex_pcre2") then
      assert.is_true(check { type = "regex", value = [[\{"city": "\w+"]] })
      assert.is_false(check { type = "regex", value = [[^Paris]] })
    end
    local json = '{"city": "Paris", "rank": 1}'
    assert.is_true(check({ type = "is-json" }, json))
    assert.is_true(check({ type = "is-json" }, "```json\n" .. json .. "\n```"))
    assert.is_false(check { type = "is-json" })
    -- (a reasoning model's reply: the JSON after its leading <think> block, as a structured reply is read)
    assert.is_true(check({ type = "is-json" }, "<think>\nA city and its rank.\n</think>\n\n" .. json))
    assert.is_false(check({ type = "is-json" }, "<think>\nA city and its rank.\n" .. json))
    local schema = { type = "object", properties = { city = { type = "string" }, rank = { type = "integer" } },
                     required = { "city", "rank" } }
    assert.is_true(check({ type = "json-schema", value = schema }, json))
    assert.is_true(check({ type = "json-schema", value = schema },
                         "<think>Paris, 1.</think>\n```json\n" .. json .. "\n```"))
    local pass, results = runner.check({ { type = "json-schema", value = schema } }, '{"city": 3, "rank": 1}')
    assert.is_false(pass)
    assert.matches("%$%.city", results[1].reason)
    -- judge: the bundled server scores min(10, words // 10 + 1)
    local long = string.rep("word ", 65)
    pass, results = runner.check({ { type = "judge", value = "Is it thorough?", threshold = 7 } }, long,
                                 { client = client, model = "gpt-4o-mini" })
    assert.is_true(pass)
    assert.equal(7, results[1].score)
    assert.matches("Is it thorough%?", cjson.decode(srv:last().body).messages[1].content)
    assert.is_false((runner.check({ { type = "judge", value = "x", threshold = 8 } }, long, { client = client })))
    assert.is_false(check { type = "no-such-thing" })
  end)

  it("reads a reasoning model's reply after its leading <think> block, for every assertion", function ()
    -- (the text ones read the thinking as the answer: "Paris" thought of and rejected passed
    -- `contains Paris`, `equals`/`starts-with` never passed, the judge scored the thinking too)
    local reply = "<think>\nParis? No, it moved. Rome.\n</think>\n\nLyon"
    local function check (a, t) return (runner.check({ a }, t or reply, { client = client })) end
    assert.is_false(check { type = "contains", value = "Paris" })
    assert.is_false(check { type = "icontains", value = "paris" })
    assert.is_true(check { type = "not-contains", value = "Rome" })
    assert.is_true(check { type = "equals", value = "Lyon" })
    assert.is_true(check { type = "starts-with", value = "Lyon" })
    assert.is_true(check { type = "pattern", value = "^Lyon$" })
    assert.is_true(check({ type = "contains", value = "<think>" }, "<think>open, never closed: all of it is the reply"))
    local pass = runner.check({ { type = "judge", value = "Is it right?", threshold = 1 } },
                              "<think>" .. string.rep("weighing ", 80) .. "</think>Lyon", { client = client })
    assert.is_true(pass)
    local asked = cjson.decode(srv:last().body).messages[1].content
    assert.matches("Candidate:\nLyon$", asked)
    assert.is_nil(asked:find("weighing", 1, true))
  end)

  it("retries 429s and 5xx itself, honouring retry-after; failures that cannot be retried are final", function ()
    local cases = {
      { id = "flaky", prompt = "Hi" },
      { id = "bad", prompt = "Hi" },
    }
    local summary = assert(runner.run {
      client = client, cases = cases, concurrency = 2,
      strategy = function (c, params, case)
        params.model = case.id == "flaky" and "fault:status=503,retry-after-ms=10,times=2,key=flaky"
                       or "fault:status=400"
        return c:chat(params)
      end,
    })
    assert.equal(1, summary.ok)
    assert.equal(1, summary.failed)
    assert.equal(2, summary.retries)
    assert.equal(3, summary.results.flaky.attempts)
    assert.is_false(summary.results.bad.ok)
    assert.equal(400, summary.results.bad.error.status)
    assert.equal(1, summary.results.bad.attempts)
    assert.equal(4, #srv:requests())
  end)

  it("retries as the server's x-should-retry says, over the status", function ()
    -- (before: it retried a 500 the server said not to retry, 6 attempts, and never a 400 it said to)
    local cases = { { id = "no", prompt = "Hi" }, { id = "yes", prompt = "Hi" } }
    local summary = assert(runner.run {
      client = client, cases = cases, concurrency = 2,
      strategy = function (c, params, case)
        params.model = case.id == "no" and "fault:status=500,should-retry=false"
                       or "fault:status=400,should-retry=true,retry-after-ms=10,times=1,key=yes"
        return c:chat(params)
      end,
    })
    assert.equal(1, summary.results.no.attempts)
    assert.equal(500, summary.results.no.error.status)
    assert.is_true(summary.results.yes.ok)
    assert.equal(2, summary.results.yes.attempts)
    assert.equal(3, #srv:requests())
  end)

  it("runs a strategy per case: best_of with a judge, vote", function ()
    local cases = { { id = 1, prompt = "Tell me a joke" } }
    local s = assert(runner.run { client = client, cases = cases, strategy = { best_of = 3 } })
    assert.equal(4, #srv:requests())
    local r = s.results["1"]
    assert.is_true(r.ok)
    assert.is_number(r.strategy.chosen)
    assert.is_true(r.usage.total_tokens > 0)
    srv:reset()
    s = assert(runner.run { client = client, cases = { { id = 1, prompt = "What is 2 + 2?" } },
                            strategy = { vote = 3 } })
    assert.equal(3, #srv:requests())
    assert.equal(3, s.results["1"].strategy.total)
  end)

  it("charges response-cache hits nothing, on their lines and in the summary (their tokens still count)", function ()
    local cached = aigc.client { base_url = srv.base_url, cache = true }
    local cases = { { id = "a", prompt = "Echo: one" }, { id = "b", prompt = "Echo: two" } }
    local spec = { client = cached, cases = cases, params = { temperature = 0 },
                   prices = { ["aigc-dev"] = { input = 10, output = 20 } } }
    local live = assert(runner.run(spec))
    assert.is_true(live.cost > 0)
    assert.is_true(live.results.a.cost > 0)
    local again = assert(runner.run(spec))
    assert.equal(2, again.totals.cache_hits)
    assert.equal(2, #srv:requests())                        -- the second run sent nothing
    assert.equal(0, again.cost)
    assert.equal(0, again.results.a.cost)
    assert.equal(0, again.results.b.cost)
    assert.equal(live.usage.total_tokens, again.usage.total_tokens)
    assert.equal(live.results.a.usage.total_tokens, again.results.a.usage.total_tokens)
    cached:close()
  end)

  it("a case whose template lacks a variable fails without a request", function ()
    local s = assert(runner.run { client = client, template = capital, cases = { { id = "x", vars = {} } } })
    assert.equal(1, s.failed)
    assert.equal("template", s.results.x.error.kind)
    assert.matches("country", s.results.x.error.message)
    assert.equal(0, #srv:requests())
  end)

  it("another request's on_done error while a run waits is kept for the user's step() (the run's step() lost it)",
     function ()
    local other = client:chat_async { messages = { { role = "user", content = "Hi" } },
                                      on_done = function () error("the other's on_done", 0) end }
    local cases = {}
    for i = 1, 4 do cases[i] = { id = i, vars = { country = "France" } } end
    local s = assert(runner.run { client = client, template = capital, cases = cases })
    assert.equal(4, s.ok)
    assert.equal("done", other:status())
    local errs = {}
    repeat
      local n, e = client:step(0.01)
      for _, x in ipairs(e or {}) do errs[#errs + 1] = x end
    until n == 0
    assert.equal(1, #errs)
    assert.matches("the other's on_done", tostring(errs[1]), 1, true)
  end)

  it("runner.run inside a callback, outside a task: refused naming itself (it named a step() never made)", function ()
    local got
    local req = client:chat_async { messages = { { role = "user", content = "Hi" } }, on_done = function ()
      local spain = { { id = 1, vars = { country = "Spain" } } }
      got = { pcall(runner.run, { client = client, template = capital, cases = spain }) }
    end }
    repeat until client:step(0.01) == 0
    assert.equal("done", req:status())
    assert.is_false(got[1])
    assert.matches("runner.run called from inside an aigc callback, outside a task", tostring(got[2]), 1, true)
    -- in a task it runs (on Lua 5.1 too: its pcall could not yield there)
    local s
    client:spawn(function ()
      s = runner.run { client = client, template = capital, cases = { { id = 1, vars = { country = "Spain" } } } }
    end)
    repeat until client:step(0.01) == 0
    assert.equal(1, s.ok)
  end)

  it("resumes from the results file: done cases are skipped, a killed run's partial line is dropped", function ()
    local cases_path, out = dir .. "/cases.jsonl", dir .. "/results.jsonl"
    write_cases(cases_path, 10)
    local f = assert(io.open(out, "wb"))
    for i = 1, 4 do
      f:write(cjson.encode { id = "c" .. i, ok = true, text = "earlier", pass = true,
                             usage = { total_tokens = 1 } }, "\n")
    end
    f:write(cjson.encode { id = "c5", ok = false, error = { kind = "http" } }, "\n")   -- failed: runs again
    f:write('{"id": "c6", "ok": tr')                                                    -- cut by a kill
    f:close()
    local s = assert(runner.run { client = client, cases = cases_path, template = capital, out = out })
    assert.equal(6, #srv:requests())
    assert.equal(4, s.skipped)
    assert.equal(10, s.ok)
    local lines = read_lines(out)                          -- every line decodes: the partial one is gone
    assert.equal(11, #lines)
    local ok_ids = {}
    for _, r in ipairs(lines) do if r.ok then ok_ids[#ok_ids + 1] = r.id end end
    assert.equal(10, #ok_ids)
    -- run again: nothing left to do
    srv:reset()
    s = assert(runner.run { client = client, cases = cases_path, template = capital, out = out })
    assert.equal(0, #srv:requests())
    assert.equal(10, s.skipped)
    -- resume = false refuses an existing file
    local none, err = runner.run { client = client, cases = cases_path, template = capital, out = out, resume = false }
    assert.is_nil(none)
    assert.matches("exists", err.message)
  end)

  it("drops a killed run's partial line in place: a link or a FIFO at OUT.partial is neither written through "
     .. "nor waited on (another file was overwritten, then renamed over OUT; a FIFO hung the run)", function ()
    local luachild = require "luachild"
    local cases_path, victim = dir .. "/cases.jsonl", dir .. "/victim.txt"
    write_cases(cases_path, 2)
    cli.write(victim, "another file\n")
    local outs = { dir .. "/linked.jsonl", dir .. "/fifo.jsonl" }
    for _, out in ipairs(outs) do
      cli.write(out, cjson.encode { id = "c1", ok = true, text = "earlier", pass = true } .. '\n{"id": "c2", "ok": tr')
    end
    assert(proc.execute("ln -s victim.txt " .. proc.quote(outs[1] .. ".partial")
                        .. " && mkfifo " .. proc.quote(outs[2] .. ".partial")))
    local r = luachild.run([[
      local aigc = require "aigc"
      local client = aigc.client { base_url = arg[1], model = "aigc-dev" }
      local template = aigc.template.new { prompt = "What is the capital of {{country}}?" }
      local runner = require "aigc.runner"
      for i = 3, 4 do
        local s = assert(runner.run { client = client, cases = arg[2], template = template, out = arg[i] })
        print(s.skipped, s.ok)
      end
      client:close()
    ]], { args = { srv.base_url, cases_path, outs[1], outs[2] }, timeout = 20 })
    assert.equal(0, r.status, r.stderr)
    assert.equal("1\t2\n1\t2\n", r.stdout)
    assert.equal("another file\n", proc.read_file(victim))
    for _, out in ipairs(outs) do
      assert.equal("file", require("aigc.core").file_kind(out))
      local lines = read_lines(out)
      assert.same({ "c1", "c2" }, { lines[1].id, lines[2].id })
      assert.equal(2, #lines)
    end
  end)

  it("never writes into a file that is not a results file, and keeps a last line without its newline", function ()
    local cases_path = dir .. "/cases.jsonl"
    local cases_text = '{"id":"a","prompt":"Echo: a"}\n{"id":"b","prompt":"Echo: b"}'   -- no final newline
    cli.write(cases_path, cases_text)
    local notes = dir .. "/notes.txt"
    cli.write(notes, "my notes, one line without a newline")
    for path, text in pairs { [cases_path] = cases_text, [notes] = "my notes, one line without a newline" } do
      local none, err = runner.run { client = client, cases = cases_path, out = path }
      assert.is_nil(none)
      assert.matches(path:gsub("%p", "%%%0") .. " is not a results file", err.message)
      assert.equal(text, proc.read_file(path))                -- not rewritten, not appended to
    end
    assert.equal(0, #srv:requests())
    -- a complete ok line whose newline an editor stripped: kept, the case not run again
    local out = dir .. "/results.jsonl"
    cli.write(out, '{"id":"a","ok":true,"text":"hand-checked","pass":true}')
    local s = assert(runner.run { client = client, cases = cases_path, out = out })
    assert.equal(1, s.skipped)
    assert.equal(1, #srv:requests())
    local lines = read_lines(out)
    assert.equal(2, #lines)
    assert.equal("hand-checked", lines[1].text)
    assert.equal("b", lines[2].id)
    -- a killed run's first write, cut short, is dropped
    cli.write(out, '{"id":"a","ok":tr')
    s = assert(runner.run { client = client, cases = cases_path, out = out })
    assert.equal(0, s.skipped)
    assert.equal(2, #read_lines(out))
  end)

  it("refuses bad input clearly", function ()
    local path = dir .. "/bad.jsonl"
    cli.write(path, '{"id": 1}\nnot json\n')
    local none, err = runner.run { client = client, cases = path, template = capital }
    assert.is_nil(none)
    assert.matches("bad.jsonl:2: not a JSON object", err.message)
    none, err = runner.run { client = client, cases = { { id = 1 }, { id = 1 } }, template = capital }
    assert.is_nil(none)
    assert.matches("two cases have the id 1", err.message)
    -- an assert that is one object is a one-item list; a string (or any other shape) names its case
    cli.write(path, '{"id": "a", "prompt": "Capital of France?", "assert": {"type": "contains", "value": "Berlin"}}\n')
    local s = assert(runner.run { client = client, cases = path })
    assert.is_false(s.results.a.pass)
    assert.equal("contains", s.results.a.assertions[1].type)
    cli.write(path, '{"id": "b", "prompt": "Capital of France?", "assert": "contains:Berlin"}\n')
    none, err = runner.run { client = client, cases = path }
    assert.is_nil(none)
    assert.equal(path .. ":1: case b: assert: a list of assertion objects (each with a type and a value), or one, "
                 .. "expected, got string", err.message)
    none, err = runner.run { client = client, cases = { { id = "c", prompt = "x", assert = { value = "x" } } } }
    assert.is_nil(none)
    assert.matches("case c: assert: a list of assertion objects .* got a table of other fields", err.message)
    assert.equal(1, #srv:requests())                      -- a case that does not load runs nothing
    assert.has_error(function () runner.run { client = client, cases = {}, backend = "batch",
                                              strategy = { vote = 3 } } end,
      "bad argument #1 to 'run' (spec.strategy: strategies run on the direct backend only "
      .. "(a batch line is one request))")
    assert.has_error(function () runner.run { client = client, cases = {}, backend = "remote" } end,
      "bad argument #1 to 'run' (spec.backend: unknown backend 'remote')")
    assert.has_error(function () runner.run { client = client, cases = {}, concurency = 3 } end,
      "bad argument #1 to 'run' (spec.concurency: unknown option (did you mean concurrency?))")
    assert.has_error(function () runner.run { cases = {} } end,
      "bad argument #1 to 'run' (spec.client: aigc.client expected, got nil)")
    assert.has_error(function () runner.run { client = client, cases = {}, assert = { { type = "nope" } } } end,
      "bad argument #1 to 'run' (spec.assert[1]: unknown assertion nope)")
    -- (a JSON null where the type goes read "unknown assertion userdata: (nil)", then
    -- "unknown assertion userdata": it is named as the JSON wrote it)
    assert.has_error(function () runner.run { client = client, cases = {}, assert = { { type = aigc.null } } } end,
      "bad argument #1 to 'run' (spec.assert[1]: unknown assertion null)")
    assert.has_error(function () runner.run { client = client, cases = {}, assert = { { type = 5 } } } end,
      "bad argument #1 to 'run' (spec.assert[1]: unknown assertion 5)")
  end)

  it("refuses a bad price table or assertion argument at the call, before any request", function ()
    local function refused (spec, want)
      spec.client, spec.cases = client, spec.cases or { { id = 1, prompt = "Hi" } }
      local ok, err = pcall(runner.run, spec)
      assert.is_false(ok)
      assert.equal("bad argument #1 to 'run' (" .. want .. ")", (tostring(err):gsub("^[^\n]-:%d+: ", "")))
      assert.matches("^[^\n]*runner_spec%.lua:%d+: ", tostring(err))   -- at the caller's line
    end
    -- (a price of "x" counted as 0, and -1 gave a negative cost)
    refused({ prices = { m = { input = "x" } } }, "spec.prices.m.input: a number >= 0 expected, got string")
    refused({ prices = { ["gpt-4o"] = { output = -1 } } },
            'spec.prices["gpt-4o"].output: a number >= 0 expected, got -1')
    refused({ prices = { m = { cached_input = 0 / 0 } } },
            "spec.prices.m.cached_input: a number >= 0 expected, got NaN")
    refused({ prices = { m = { input = math.huge } } }, "spec.prices.m.input: a finite number >= 0 expected, got inf")
    refused({ prices = { m = 5 } }, "spec.prices.m: table ({ input =, output =, cached_input = }) expected, got number")
    refused({ prices = { m = { inptu = 1 } } }, "spec.prices.m.inptu: unknown field (input, output, cached_input)")
    refused({ prices = { { input = 1 } } }, "spec.prices[1]: a model name (a string) expected as the key, got number")
    refused({ batch_price_factor = -0.5 }, "spec.batch_price_factor: a finite number >= 0 expected, got -0.5")
    -- (each case failed the same way: "bad pattern", or "the reply is not JSON" for a schema that is not one)
    refused({ assert = { { type = "pattern", value = "[" } } },
      "spec.assert[1]: pattern '[': malformed pattern (missing ']')")
    refused({ assert = { { type = "contains", value = "a" }, { type = "pattern", value = "x[" } } },
      "spec.assert[2]: pattern 'x[': malformed pattern (missing ']')")
    refused({ assert = { { type = "pattern", value = "(%d" } } }, "spec.assert[1]: pattern '(%d': unfinished capture")
    refused({ assert = { { type = "json-schema", value = "notaschema" } } },
      "spec.assert[1]: json-schema: the value must be a JSON schema (an object), got string")
    refused({ assert = { { type = "json-schema", value = { type = 5 } } } },
      "spec.assert[1]: json-schema: not a valid schema: #/type must be a type name or a list of them, got number")
    refused({ assert = { { type = "judge", value = "ok?", threshold = "high" } } },
      "spec.assert[1]: judge: threshold must be a number, got string")
    refused({ assert = { { type = "contains" } } }, "spec.assert[1]: contains: the value must be a string, got nil")
    -- (an empty `contains` passed on every reply, `not-contains` failed on every one)
    refused({ assert = { { type = "contains", value = "" } } },
            "spec.assert[1]: contains: an empty value (it would decide every reply the same way)")
    refused({ assert = { { type = "not-contains", value = "" } } },
            "spec.assert[1]: not-contains: an empty value (it would decide every reply the same way)")
    refused({ assert = { { type = "judge", value = "" } } },
            "spec.assert[1]: judge: an empty value (it would decide every reply the same way)")
    assert.is_nil(runner.assertion_problem { type = "equals", value = "" })   -- (an empty reply: a real check)
    if pcall(require, "rex_pcre2") then
      assert.error_matches(function () runner.run { client = client, cases = {}, assert = { { type = "regex",
        value = "(" } } } end, "bad argument #1 to 'run' %(spec.assert%[1%]: regex '%(': .*parenthesis")
    end
    -- in a case: its load error names the case (and in a file, its line)
    local none, err = runner.run { client = client, cases = { { id = "p", prompt = "Hi",
                                                                assert = { type = "pattern", value = "%" } } } }
    assert.is_nil(none)
    assert.equal("case p: assert: pattern '%': malformed pattern (ends with '%')", err.message)
    local path = dir .. "/cases.jsonl"
    cli.write(path, '{"id": "a", "prompt": "Hi"}\n\n{"id": "b", "prompt": "Hi", "assert": [{"type": "contains", '
              .. '"value": "Hi"}, {"type": "json-schema", "value": "notaschema"}]}\n')
    none, err = runner.run { client = client, cases = path }
    assert.is_nil(none)
    assert.equal(path .. ":3: case b: assert: json-schema: the value must be a JSON schema (an object), got string",
                 err.message)
    -- what is right still runs: a plain ")" is text to string.find, a class may hold "]"
    local s = assert(runner.run { client = client, cases = { { id = 1, prompt = "Echo: a) []]" } },
      prices = { m = { input = 0, output = 1.5, cached_input = 0.5 }, n = {} },
      assert = { { type = "pattern", value = "a)" }, { type = "pattern", value = "%[[]]+%]$" },
                 { type = "json-schema", value = { type = "object" } } } })
    assert.equal(1, s.ok)
    assert.equal(1, #srv:requests())                      -- the refused runs sent nothing
  end)
end)

describe("aigc.runner under a rate limit", function ()
  it("runs 1,000 cases with no failed case and no 429 (the server counts them)", function ()
    -- 975 requests a minute: a burst of 975, then 16 a second; 60,000 tokens a minute
    -- (a case costs about 30): the runner must pace the last 25 cases itself.
    local srv = devserver.start { args = { "--rate-limit", "975,60000" } }
    local client = aigc.client { base_url = srv.base_url }
    local dir = cli.home()
    local cases_path, out = dir .. "/cases.jsonl", dir .. "/results.jsonl"
    write_cases(cases_path, 1000)
    local progress = {}
    local s = assert(runner.run { client = client, cases = cases_path, template = capital, out = out,
                                  concurrency = 16, on_progress = function (p) progress[#progress + 1] = p end })
    local stats = srv:stats()
    assert.equal(0, stats.rate_limited_total)
    assert.equal(1000, stats.requests_total)
    assert.equal(0, s.failed)
    assert.equal(1000, s.ok)
    assert.equal(0, s.rate_limited)
    assert.equal(1000, #read_lines(out))
    local last = progress[#progress]
    assert.is_true(last.final)
    assert.equal(1000, last.done)
    assert.is_true(last.tokens > 0)
    client:close()
    srv:stop()
    cli.rmdir(dir)
  end)

  it("without pacing the same run meets 429s, and still finishes every case by retrying", function ()
    -- (a burst of 60, then 1 a second: the last 4 cases meet the limit unless the 64 requests
    -- take over 4 s; with a burst of 240 and 4 a second a run slowed past 0.75 s by CI's load met none)
    local srv = devserver.start { args = { "--rate-limit", "60" } }
    local client = aigc.client { base_url = srv.base_url }
    local cases = {}
    for i = 1, 64 do cases[i] = { id = i, prompt = "Hi" } end
    local s = assert(runner.run { client = client, cases = cases, concurrency = 8, pace = false })
    assert.equal(64, s.ok)
    assert.is_true(srv:stats().rate_limited_total > 0)
    assert.is_true(s.rate_limited > 0)
    client:close()
    srv:stop()
  end)

  it("a 429 asking for a day pauses the case max_wait (default 120 s), not a day", function ()
    local port, child = require("oneshot").start([[
      local oneshot = require "oneshot"
      local server = oneshot.listen()
      server:settimeout(60)
      local ok = '{"choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}'
      local slow = '{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}'
      for _, r in ipairs { { "429 Too Many Requests", slow, "retry-after: 86400\r\n" }, { "200 OK", ok, "" } } do
        local c = oneshot.read_request(server)
        c:send("HTTP/1.1 " .. r[1] .. "\r\nContent-Type: application/json\r\nContent-Length: " .. #r[2]
               .. "\r\nConnection: close\r\n" .. r[3] .. "\r\n" .. r[2])
        c:close()
      end
    ]])
    local client = aigc.client { base_url = "http://127.0.0.1:" .. port .. "/v1", max_retries = 0 }
    local t0 = aigc.now()
    local s = assert(runner.run { client = client, cases = { { id = 1, prompt = "Hi" } }, pace = false,
                                  max_wait = 0.3, interrupted = function () return aigc.now() - t0 > 20 end })
    assert.equal(1, s.ok)        -- (before: paused for 86,400 s, stopped by `interrupted` with 0 done)
    assert.equal(1, s.retries)
    assert.is_true(aigc.now() - t0 < 15)
    client:close()
    child:wait(10)
  end)
end)

describe("aigc run (the command)", function ()
  local srv, home
  cli.fixture(_ENV, function (s, h) srv, home = s, h end)

  it("runs a template over the cases, prints the pass-rate table, exits 3 when assertions fail", function ()
    cli.write(home .. "/templates/capital.lua", '{ prompt = "What is the capital of {{country}}?" }')
    write_cases(home .. "/cases.jsonl", 5, function (c, i)
      c.assert = { { type = "contains", value = i == 2 and "Paris" or "capital" } }
    end)
    local r = cli.run({ "run", home .. "/cases.jsonl", "-t", "capital", "--out", home .. "/r.jsonl",
                        "--assert", "icontains:THE" }, { home = home, base_url = srv.base_url })
    assert.equal(3, r.code, r.stderr)
    assert.matches("5/5 .* 100%%", r.stderr)                              -- the final progress line
    assert.matches("cases 5 %(0 from an earlier run%): ok 5, failed 0; passed 4/5 %(80.0%%%)", r.stderr)
    assert.matches("contains Paris +0 +1 +0.0%%", r.stderr)
    assert.matches("icontains THE +5 +5 +100.0%%", r.stderr)
    assert.equal(5, #read_lines(home .. "/r.jsonl"))
    -- every call is in the prompt log, from "run"
    local logs = cjson.decode(cli.run({ "logs", "--json", "-n", "0", "--source", "run" }, { home = home }).stdout)
    assert.equal(5, #logs)
    -- again: everything is done
    r = cli.run({ "run", home .. "/cases.jsonl", "-t", "capital", "--out", home .. "/r.jsonl", "--json" },
                { home = home, base_url = srv.base_url })
    local summary = cjson.decode(r.stdout)
    assert.equal(5, summary.skipped)
    assert.equal(5, #srv:requests())
  end)

  it("--out /dev/stdout (a pipe) is written to, never read: the run does not hang", function ()
    cli.write(home .. "/one.jsonl", '{"id":"a","prompt":"Echo: a"}\n')
    local cmd = cli.command({ "run", home .. "/one.jsonl", "--out", "/dev/stdout", "-q", "--no-log" },
                            { home = home, base_url = srv.base_url })
    local p = assert(io.popen("timeout 15 " .. cmd .. " </dev/null 2>/dev/null; echo rc=$?", "r"))
    local text = p:read("*a")
    p:close()
    assert.matches("rc=0\n$", text)
    local line = cjson.decode(text:match("^([^\n]*)\n"))
    assert.equal("a", line.id)
    assert.is_true(line.ok)
  end)

  it("SIGINT (Ctrl-C) stops a run: exit 130, one line, only whole result lines; a rerun resumes", function ()
    local n = 100   -- (30 ms a reply, 4 in flight: the 80 left after the 20th line take 0.6 s)
    write_cases(home .. "/cases.jsonl", n)
    cli.write(home .. "/templates/capital.lua", '{ prompt = "What is the capital of {{country}}?" }')
    local out, err = home .. "/r.jsonl", home .. "/err.txt"
    local args = { "run", home .. "/cases.jsonl", "-t", "capital", "--out", out, "--concurrency", "4", "-q",
                   "--no-log", "-m", "fault:delay=30" }
    local job = cli.background(args, { home = home, base_url = srv.base_url, stderr = err })
    local deadline = socket.gettime() + 20
    while #((proc.read_file(out) or ""):gsub("[^\n]", "")) < 20 do
      assert.is_true(socket.gettime() < deadline, "the run wrote too little")
      socket.sleep(0.01)
    end
    os.execute("kill -INT " .. job.pid)
    assert.equal(130, job.wait_exit(deadline), proc.read_file(err))
    assert.equal("aigc run: interrupted (the results so far are in " .. out .. ": run it again to resume)\n",
                 proc.read_file(err))
    local text = proc.read_file(out)
    assert.matches("\n$", text)
    local done = #read_lines(out)                  -- (every line decodes)
    assert.is_true(done < n, "the run finished before the SIGINT")
    srv:reset()
    local r = cli.run(args, { home = home, base_url = srv.base_url })
    assert.equal(0, r.code, r.stderr)
    assert.equal(n - done, srv:stats().requests_total)
  end)

  it("a run killed with SIGKILL resumes without redoing the cases it had done", function ()
    cli.write(home .. "/templates/capital.lua", '{ prompt = "What is the capital of {{country}}?" }')
    local n = 150
    write_cases(home .. "/cases.jsonl", n)
    local out = home .. "/r.jsonl"
    -- each reply takes 20 ms: the run lasts about 0.75 s at 4 in flight (0.45 s after the 60th line)
    local args = { "run", home .. "/cases.jsonl", "-t", "capital", "--out", out, "--concurrency", "4", "-q",
                   "--no-log", "-m", "fault:delay=20" }
    local cmd = cli.command(args, { home = home, base_url = srv.base_url })
    local p = assert(io.popen("sh -c " .. proc.quote("exec " .. cmd .. " >/dev/null 2>&1") .. " & echo $!"))
    local pid = tonumber(p:read("*a"):match("%d+"))
    p:close()
    finally(function () os.execute("kill -9 " .. pid .. " 2>/dev/null") end)   -- (never left to run on)
    local deadline = socket.gettime() + 20
    while #((proc.read_file(out) or ""):gsub("[^\n]", "")) < 60 do
      assert.is_true(socket.gettime() < deadline, "the run wrote too little")
      socket.sleep(0.01)
    end
    os.execute("kill -9 " .. pid)
    while proc.alive(pid) do socket.sleep(0.01) end
    local text = proc.read_file(out)
    local done = select(2, text:gsub("\n", ""))
    assert.is_true(done < n, "the run finished before the kill")
    local before = srv:stats().requests_total
    srv:reset()
    local r = cli.run(args, { home = home, base_url = srv.base_url })
    assert.equal(0, r.code, r.stderr)
    -- the second run asked for exactly the cases without a complete line
    assert.equal(n - done, srv:stats().requests_total)
    assert.is_true(before >= done)
    local ids = {}
    for _, line in ipairs(read_lines(out)) do
      assert.is_true(line.ok)
      assert.is_nil(ids[line.id], "case " .. tostring(line.id) .. " twice")
      ids[line.id] = true
    end
    local count = 0
    for _ in pairs(ids) do count = count + 1 end
    assert.equal(n, count)
  end)
end)

describe("aigc run (one writer per results file; clear refusals)", function ()
  local srv, home
  cli.fixture(_ENV, function (s, h) srv, home = s, h end)

  local function one_line (r)   -- a refusal is one line: no traceback
    assert.matches("^[^\n]+\n$", r.stderr)
    assert.is_nil(r.stderr:find("traceback", 1, true))
  end

  -- `aigc ARGS` is refused: exit 2 and `want` as its one line on stderr
  local function refused (args, want)
    local r = cli.run(args, { home = home, base_url = srv.base_url })
    assert.equal(2, r.code, r.stderr)
    one_line(r)
    assert.equal(want .. "\n", r.stderr)
  end

  it("a second run on the same --out is refused, naming the file; the lock goes at the end, even a kill's", function ()
    write_cases(home .. "/cases.jsonl", 40)
    cli.write(home .. "/templates/capital.lua", '{ prompt = "What is the capital of {{country}}?" }')
    local out = home .. "/r.jsonl"
    local args = { "run", home .. "/cases.jsonl", "-t", "capital", "--out", out, "--concurrency", "2", "-q",
                   "--no-log", "-m", "fault:delay=50" }
    local function wait_lines (n)
      local deadline = socket.gettime() + 20
      while #((proc.read_file(out) or ""):gsub("[^\n]", "")) < n do
        assert.is_true(socket.gettime() < deadline, "the run wrote too little")
        socket.sleep(0.01)
      end
    end
    -- (started as the SIGKILL test above starts it: a shell job killed with -9 has its shell say "Killed")
    local cmd = cli.command(args, { home = home, base_url = srv.base_url })
    local p = assert(io.popen("sh -c " .. proc.quote("exec " .. cmd .. " >/dev/null 2>&1") .. " & echo $!"))
    local job = { pid = tonumber(p:read("*a"):match("%d+")) }
    p:close()
    finally(function () os.execute("kill -9 " .. job.pid .. " 2>/dev/null") end)   -- (never left to run on)
    wait_lines(2)
    local second = {}                                          -- (its requests would name another model)
    for i, a in ipairs(args) do second[i] = a == "fault:delay=50" and "second-run" or a end
    local r = cli.run(second, { home = home, base_url = srv.base_url })
    assert.equal(1, r.code, r.stderr)
    one_line(r)
    assert.equal("aigc run: " .. out .. " is in use: another run (pid " .. job.pid .. ") is writing it (its lock is "
                 .. out .. ".lock): wait for it to end, or give another results file\n", r.stderr)
    -- (the raw body: a request of the first run still in flight has no body_json yet)
    assert.is_true(#srv:requests() > 0)   -- (the first run's: else the loop checks nothing)
    for _, req in ipairs(srv:requests()) do
      assert.is_nil((type(req.body) == "string" and req.body or ""):find("second-run", 1, true))
    end
    os.execute("kill -9 " .. job.pid)                          -- killed: the kernel drops its lock
    while proc.alive(job.pid) do socket.sleep(0.01) end
    srv:reset()
    r = cli.run(args, { home = home, base_url = srv.base_url })
    assert.equal(0, r.code, r.stderr)
    local ids = {}
    for _, line in ipairs(read_lines(out)) do
      assert.is_nil(ids[line.id], "case " .. tostring(line.id) .. " twice")
      ids[line.id] = true
    end
    assert.is_nil(io.open(out .. ".lock"))                     -- removed at the end
    -- Ctrl-C: the lock goes too
    os.remove(out)
    job = cli.background(args, { home = home, base_url = srv.base_url })
    wait_lines(2)
    os.execute("kill -INT " .. job.pid)
    assert.equal(130, job.wait_exit(socket.gettime() + 10))
    assert.is_nil(io.open(out .. ".lock"))
  end)

  it("a case id that is an object, a list, a boolean or empty is refused at load, naming its line", function ()
    for i, id in ipairs { '{"x":1}', "[1]", "true", '""', "null" } do
      cli.write(home .. "/cases.jsonl", '{"id": "ok", "prompt": "Echo: a"}\n{"id": ' .. id .. ', "prompt": "b"}\n')
      local r = cli.run({ "run", home .. "/cases.jsonl", "--out", home .. "/r" .. i .. ".jsonl", "-q", "--no-log" },
                        { home = home, base_url = srv.base_url })
      assert.equal(2, r.code, r.stderr)
      one_line(r)
      local shown = id == "[1]" and "%[1%]" or id:gsub("%p", "%%%0")
      assert.matches("^aigc run: .*cases%.jsonl:2: id must be a non%-empty string or a number, got " .. shown, r.stderr)
    end
    assert.equal(0, #srv:requests())
    -- string and number ids resume: nothing is run twice
    cli.write(home .. "/cases.jsonl", '{"id": "s", "prompt": "Echo: a"}\n{"id": 0.1, "prompt": "Echo: b"}\n'
              .. '{"id": 7, "prompt": "Echo: c"}\n{"prompt": "Echo: d"}\n')
    for _ = 1, 2 do
      local r = cli.run({ "run", home .. "/cases.jsonl", "--out", home .. "/r.jsonl", "-q", "--no-log" },
                        { home = home, base_url = srv.base_url })
      assert.equal(0, r.code, r.stderr)
    end
    assert.equal(4, #srv:requests())
    assert.equal(4, #read_lines(home .. "/r.jsonl"))
    -- and as Lua tables
    local client = aigc.client { base_url = srv.base_url }
    local none, err = runner.run { client = client, cases = { { id = { 1 }, prompt = "x" } } }
    client:close()
    assert.is_nil(none)
    assert.equal("case 1: id must be a non-empty string or a number, got [1]", err.message)
  end)

  it("a directory as the cases, a prompt or messages of the wrong type: one line, exit 2", function ()
    refused({ "run", home, "-q" }, "aigc run: cannot read the cases: " .. home .. " is a directory, not a JSONL file")
    local cases = home .. "/cases.jsonl"
    cli.write(cases, '{"id": "a", "prompt": 123}\n')
    refused({ "run", cases, "-q" }, "aigc run: " .. cases .. ":1: case a: prompt must be a string, got 123")
    cli.write(cases, '\n{"id": "b", "messages": "nope"}\n')
    refused({ "run", cases, "-q" },
            "aigc run: " .. cases .. ":2: case b: messages must be a list of messages, got string")
    -- a cassette (config: client.cassette) whose path is a directory
    cli.write(home .. "/config.lua", 'return { client = { cassette = { path = "' .. home .. '/templates" } } }')
    local dir_error = "cannot make the client: aigc.cassette: " .. home .. "/templates is a directory: "
                      .. "the cassette is a file (a .jsonl to record into)"
    cli.write(cases, '{"id": "a", "prompt": "Hi"}\n')
    refused({ "run", cases, "-q", "--no-log" }, dir_error)
    refused({ "--no-log", "Hi" }, dir_error)
    os.remove(home .. "/config.lua")
    -- with a template, prompt is a variable like any other
    cli.write(home .. "/templates/say.lua", '{ prompt = "Echo: {{prompt}}" }')
    cli.write(cases, '{"id": "a", "prompt": 123}\n')
    local r = cli.run({ "run", cases, "-q", "-t", "say", "--json" }, { home = home, base_url = srv.base_url })
    assert.equal(0, r.code, r.stderr)
    assert.equal(1, #srv:requests())
  end)

  it("an assertion's bad argument (--assert or a case's) is one line, exit 2, before anything runs", function ()
    local cases = home .. "/cases.jsonl"
    cli.write(cases, '{"id": "a", "prompt": "Hi"}\n{"id": "b", "prompt": "Hi"}\n')
    -- (each case ran and failed: "bad pattern", or "the reply is not JSON" for a schema that is not one)
    refused({ "run", cases, "-q", "--no-log", "--assert", "pattern:[" },
            "--assert: pattern '[': malformed pattern (missing ']')")
    refused({ "run", cases, "-q", "--no-log", "--assert", "contains:a", "--assert", "pattern:%f" },
            "--assert: pattern '%f': missing '[' after '%f' in pattern")
    refused({ "run", cases, "-q", "--no-log", "--assert", 'json-schema:{"type": "objet"}' },
            '--assert: json-schema: not a valid schema: #/type: unknown type "objet" (null, boolean, object, array, '
            .. 'number, string, integer)')
    refused({ "run", cases, "-q", "--no-log", "--assert", "contains" },
            "--assert: contains: the value must be a string, got nil")
    cli.write(cases, '{"id": "a", "prompt": "Hi"}\n{"id": "b", "prompt": "Hi", "assert": '
              .. '{"type": "json-schema", "value": "notaschema"}}\n')
    refused({ "run", cases, "-q", "--no-log" }, "aigc run: " .. cases .. ":2: case b: assert: json-schema: the value "
            .. "must be a JSON schema (an object), got string")
    cli.write(cases, '{"id": "a", "prompt": "Hi", "assert": [{"type": "pattern", "value": "(%d+"}]}\n')
    refused({ "run", cases, "-q", "--no-log" }, "aigc run: " .. cases .. ":1: case a: assert: pattern '(%d+': "
            .. "unfinished capture")
    cli.write(cases, '{"id": "a", "prompt": "Hi", "assert": {"type": "judge", "value": "ok?", "threshold": "7"}}\n')
    refused({ "run", cases, "-q", "--no-log" }, "aigc run: " .. cases .. ":1: case a: assert: judge: threshold "
            .. "must be a number, got string")
    assert.equal(0, #srv:requests())
  end)

  it("a stale OUT.batch (the server no longer has that batch) is an error naming the file", function ()
    write_cases(home .. "/cases.jsonl", 2)
    cli.write(home .. "/templates/capital.lua", '{ prompt = "What is the capital of {{country}}?" }')
    local out = home .. "/r.jsonl"
    cli.write(out .. ".batch", "batch_gone\n")
    local args = { "run", home .. "/cases.jsonl", "-t", "capital", "--out", out, "--batch", "-q", "--no-log" }
    local r = cli.run(args, { home = home, base_url = srv.base_url })
    assert.equal(1, r.code, r.stderr)
    one_line(r)
    assert.matches("^aigc run: cannot resume batch batch_gone, whose id " .. out:gsub("%p", "%%%0")
                   .. "%.batch keeps: .*batch_gone.*%(remove " .. out:gsub("%p", "%%%0")
                   .. "%.batch to send the cases as a new batch%)\n$", r.stderr)
    os.remove(out .. ".batch")                             -- as it says: then it runs
    r = cli.run(args, { home = home, base_url = srv.base_url })
    assert.equal(0, r.code, r.stderr)
    cli.write(out .. ".batch", "batch_gone\n")
    r = cli.run({ "run", home .. "/cases.jsonl", "--out", out, "--batch", "--cancel" },
                { home = home, base_url = srv.base_url })
    assert.equal(1, r.code, r.stderr)
    assert.matches("batch_gone, whose id " .. out:gsub("%p", "%%%0") .. "%.batch keeps", r.stderr)
  end)
end)

describe("aigc.runner stops cleanly", function ()
  local srv, client
  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)
  before_each(function () client = aigc.client { base_url = srv.base_url } end)
  after_each(function () client:close() end)

  it("when on_result raises: run raises that error instead of waiting forever", function ()
    local cases = {}
    for i = 1, 5 do cases[i] = { id = i, prompt = "Hi" } end
    assert.has_error(function ()
      runner.run { client = client, cases = cases, on_result = function () error("stop here", 0) end }
    end, "stop here")
  end)

  it("when the results file cannot be opened: nil and an error", function ()
    local dir = cli.home()
    local none, err = runner.run { client = client, cases = { { id = 1, prompt = "Hi" } },
                                   out = dir .. "/no/such/dir/r" }
    assert.is_nil(none)
    assert.matches("cannot open .*no/such/dir/r", err.message)
    cli.rmdir(dir)
  end)
end)
