-- The dataset runner's Responses mode (`runner.run { api = "responses" }`,
-- `aigc run --api responses`), against the bundled server: a run of a
-- Responses-only model (o3-pro, codex) went to /v1/chat/completions, and
-- a batch run with batch_endpoint = "/v1/responses" was refused.

local aigc = require "aigc"
local cjson = require "cjson"
local cli = require "cli"
local devserver = require "devserver"
local proc = require "procutil"
local runner = require "aigc.runner"

local SYSTEM = "Answer with one sentence."
local capital = aigc.template.new { system = SYSTEM, prompt = "What is the capital of {{country}}?",
                                   params = { temperature = 0 } }
local IMAGE = "data:image/png;base64,iVBORw0KGgo="
local PRICES = { ["aigc-dev"] = { input = 1, output = 2 } }   -- ($ per 1M tokens)
local CITY = { type = "object", properties = { city = { type = "string" } }, required = { "city" },
               additionalProperties = false }

local function cases ()
  return {
    { id = "fr", vars = { country = "France" }, assert = { { type = "contains", value = "Paris" } } },
    { id = "es", vars = { country = "Spain" }, assert = { { type = "contains", value = "Madrid" } } },
    { id = "it", vars = { country = "Italy" }, assert = { { type = "contains", value = "Paris" } } },
  }
end

-- The keys of a result line, sorted, but the ones that vary with the backend's timing.
local function shape (r)
  local keys = {}
  for k in pairs(r) do if k ~= "latency_ms" then keys[#keys + 1] = k end end
  table.sort(keys)
  return table.concat(keys, ",")
end

-- The JSONL a batch was sent.
local function batch_input (client, id)
  local b = assert(require("aigc.batch").retrieve(client, id))
  return assert(client:files_content(b.input_file_id)).body
end

local function posts (srv, path)
  local list = {}
  for _, r in ipairs(srv:requests()) do
    if r.method == "POST" and r.path == path then list[#list + 1] = r end
  end
  return list
end

describe("runner.run { api = \"responses\" }", function ()
  local srv, client
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { model = "aigc-dev", api_key = "k" }, nil,
                    { pause_ms = 0, batch_delay_ms = 1 })

  -- The same run as chat and as Responses, on a backend: both summaries.
  local function both (backend)
    local chat = assert(runner.run { client = client, cases = cases(), template = capital, backend = backend,
                                     batch_interval = 0.02, prices = PRICES })
    local n_chat = #srv:requests()
    local resp = assert(runner.run { client = client, cases = cases(), template = capital, backend = backend,
                                     batch_interval = 0.02, api = "responses", prices = PRICES })
    return chat, resp, n_chat
  end

  -- `factor`: the prices' factor (a batch's lines are at half price)
  local function same_results (chat, resp, factor)
    assert.equal(3, resp.ok)
    assert.equal(chat.passed, resp.passed)
    assert.equal(2, resp.passed)
    for _, id in ipairs { "fr", "es", "it" } do
      local c, r = chat.results[id], resp.results[id]
      assert.equal(shape(c), shape(r))
      assert.equal(c.text, r.text)
      assert.matches("capital", r.text)
      assert.equal(c.pass, r.pass)
      -- input/output tokens are the line's prompt/completion tokens
      assert.is_true(r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0)
      assert.equal(r.usage.prompt_tokens + r.usage.completion_tokens, r.usage.total_tokens)
      local cost = (r.usage.prompt_tokens * 1 + r.usage.completion_tokens * 2) / 1e6 * factor
      assert.is_true(math.abs(r.cost - cost) < 1e-12, r.cost .. " ~= " .. cost)
    end
    assert.is_true(resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens > 0)
  end

  it("sends each case to /v1/responses, the system prompt as instructions, with chat's result lines", function ()
    local chat, resp, n_chat = both(nil)
    same_results(chat, resp, 1)
    local sent = posts(srv, "/v1/responses")
    assert.equal(3, #sent)
    assert.equal(n_chat, #srv:requests() - 3)   -- (no chat request in the second run)
    for _, r in ipairs(sent) do
      local body = r.body_json
      assert.equal(SYSTEM, body.instructions)
      assert.is_nil(body.messages)
      assert.equal(1, #body.input)
      assert.equal("user", body.input[1].role)
      assert.matches("^What is the capital of ", body.input[1].content)
      assert.is_nil(body.max_retries)
    end
  end)

  it("goes through the Batch API as /v1/responses lines, read as response objects", function ()
    local chat, resp = both("batch")
    same_results(chat, resp, 0.5)
    local created = posts(srv, "/v1/batches")
    assert.equal(2, #created)
    assert.equal("/v1/chat/completions", created[1].body_json.endpoint)
    assert.equal("/v1/responses", created[2].body_json.endpoint)
    local lines = batch_input(client, resp.batch_id)
    assert.matches('"url":"/v1/responses"', lines, 1, true)
    assert.matches('"instructions":"' .. SYSTEM .. '"', lines, 1, true)
    assert.equal(0, #posts(srv, "/v1/responses"))   -- (no direct call)
    assert.is_string(resp.results.fr.batch_id)
  end)

  for _, backend in ipairs { "direct", "batch" } do
    it("sends a schema as text.format and parses the reply (" .. backend .. ")", function ()
      local tpl = aigc.template.new { prompt = "Capital of {{country}} as JSON", schema = CITY }
      local s = assert(runner.run { client = client, template = tpl, backend = backend, batch_interval = 0.02,
        api = "responses", cases = { { id = "fr", vars = { country = "France" },
                                       assert = { { type = "json-schema", value = CITY } } } } })
      local r = s.results.fr
      assert.is_true(r.ok, cjson.encode(r))
      assert.is_true(r.pass)
      assert.is_table(r.parsed)
      assert.is_string(r.parsed.city)
      if backend == "direct" then
        local body = posts(srv, "/v1/responses")[1].body_json
        assert.equal("json_schema", body.text.format.type)
        assert.same(CITY.required, body.text.format.schema.required)
        assert.is_nil(body.response_format)
      else
        local line = cjson.decode((batch_input(client, s.batch_id):match("[^\n]+")))
        assert.equal("/v1/responses", line.url)
        assert.equal("json_schema", line.body.text.format.type)
        assert.is_nil(line.body.response_format)
      end
    end)

    it("fails a case the server refuses, with its status (" .. backend .. ")", function ()
      local bad = assert(runner.run { client = client, backend = backend, batch_interval = 0.02, api = "responses",
        max_attempts = 1, params = { model = "fault:status=400" }, cases = { { id = "bad", prompt = "Hi" } } })
      local r = bad.results.bad
      assert.is_false(r.ok)
      assert.equal(400, r.error.status)
      assert.equal(1, bad.failed)
    end)
  end

  it("sends the judges of a Responses run to /v1/responses", function ()
    local s = assert(runner.run { client = client, api = "responses",
      cases = { { id = "a", prompt = "Hi",
                  assert = { { type = "judge", value = "Is it a greeting?", threshold = 1 } } } } })
    assert.is_true(s.results.a.pass, cjson.encode(s.results.a))
    assert.equal(2, #posts(srv, "/v1/responses"))
    assert.equal(0, #posts(srv, "/v1/chat/completions"))
  end)

  it("maps messages: system to instructions, content parts to input parts, max_tokens", function ()
    assert(runner.run { client = client, api = "responses", params = { max_tokens = 20 }, cases = { { id = "m",
      messages = { { role = "system", content = "Be brief." },
                   { role = "user", content = { { type = "text", text = "Hi" },
                     { type = "image_url", image_url = { url = IMAGE, detail = "low" } } } },
                   { role = "assistant", content = "Hello." },
                   { role = "user", content = "Bye" } } } } })
    local body = posts(srv, "/v1/responses")[1].body_json
    assert.equal("Be brief.", body.instructions)
    assert.equal(20, body.max_output_tokens)
    assert.is_nil(body.max_tokens)
    assert.equal(3, #body.input)
    assert.same({ { type = "input_text", text = "Hi" }, { type = "input_image", image_url = IMAGE, detail = "low" } },
                body.input[1].content)
    assert.same({ role = "assistant", content = "Hello." }, body.input[2])
  end)

  it("maps a case's tool calls and tool replies to function_call and function_call_output items", function ()
    -- (sent as chat messages, a "tool" role and tool_calls, the server refused them)
    assert(runner.run { client = client, api = "responses", cases = { { id = "t",
      messages = { { role = "user", content = "Weather in Paris?" },
                   { role = "assistant", content = cjson.null, tool_calls = { { id = "call_1", type = "function",
                     ["function"] = { name = "weather", arguments = '{"city":"Paris"}' } } } },
                   { role = "tool", tool_call_id = "call_1", content = { { type = "text", text = "18 C" } } },
                   { role = "user", content = "And so?" } } } } })
    local body = posts(srv, "/v1/responses")[1].body_json
    assert.equal(4, #body.input)
    assert.same({ type = "function_call", call_id = "call_1", name = "weather", arguments = '{"city":"Paris"}' },
                body.input[2])
    assert.same({ type = "function_call_output", call_id = "call_1", output = "18 C" }, body.input[3])
    assert.same({ role = "user", content = "And so?" }, body.input[4])
  end)

  it("gives a strategy function the Responses params", function ()
    local got
    local s = assert(runner.run { client = client, api = "responses", template = capital,
      cases = { { id = "fr", vars = { country = "France" } } },
      strategy = function (c, params) got = params; return c:respond(params) end })
    assert.equal(SYSTEM, got.instructions)
    assert.is_nil(got.messages)
    assert.matches("Paris", s.results.fr.text)
  end)

  it("refuses to resume a batch of the other API, given or kept (the kept id stays)", function ()
    local dir = cli.home()
    local out = dir .. "/r.jsonl"
    for _, api in ipairs { "responses", "chat" } do
      local other = api == "responses" and "chat" or "responses"
      local b = assert(runner.run { client = client, backend = "batch", batch_interval = 0.02, api = api,
                                    cases = { { id = "a", prompt = "Hi" } } }).batch_id
      for _, kept in ipairs { false, true } do
        if kept then cli.write(out .. ".batch", b .. "\n") end
        local s, err = runner.run { client = client, backend = "batch", api = other ~= "chat" and other or nil,
          batch_id = not kept and b or nil, out = kept and out or nil, cases = { { id = "a", prompt = "Hi" } } }
        assert.is_nil(s, "resumed as " .. other)
        assert.equal("batch " .. b .. " was sent to /v1/" .. (api == "chat" and "chat/completions" or "responses")
          .. ": its lines are not of this run's API (api = \"" .. other .. "\"): resume it with api = \"" .. api
          .. "\" (aigc run --api " .. api .. ")", err.message)
      end
      assert.equal("", proc.read_file(out))                   -- (no result line written)
      assert.equal(b .. "\n", proc.read_file(out .. ".batch"))   -- (kept: the right run resumes it)
    end
    cli.rmdir(dir)
  end)

  it("refuses an unknown api, best_of/vote, and the other API's batch endpoint", function ()
    local function refused (spec, msg)
      spec.client, spec.cases = client, { { id = "a", prompt = "Hi" } }
      local ok, err = pcall(runner.run, spec)
      assert.is_false(ok)
      assert.equal("bad argument #1 to 'run' (" .. msg .. ")", (tostring(err):gsub("^[^:]*:%d+: ", "")))
    end
    refused({ api = "completions" }, "spec.api: unknown API 'completions' (\"chat\" or \"responses\")")
    refused({ api = "responses", strategy = { vote = 3 } },
            "spec.strategy: best_of and vote send chat requests: with api = \"responses\", give a function")
    refused({ api = "responses", backend = "batch", batch_endpoint = "/v1/chat/completions" },
            "spec.batch_endpoint: the runner's batch lines are Responses requests (api = \"responses\"): "
            .. "'/v1/chat/completions' is not (give \"/v1/responses\", the default)")
    assert.equal(0, #srv:requests())
  end)
end)

describe("aigc run --api responses", function ()
  local srv, home
  cli.fixture(_ENV, function (s, h) srv, home = s, h end)

  it("sends the cases to /v1/responses, directly and with --batch", function ()
    cli.write(home .. "/cases.jsonl", '{"id":"a","prompt":"What is the capital of France?",'
      .. '"assert":{"type":"contains","value":"Paris"}}\n')
    for _, batch in ipairs { false, true } do
      local out = home .. (batch and "/rb.jsonl" or "/r.jsonl")
      local args = { "run", home .. "/cases.jsonl", "--api", "responses", "--out", out, "-q" }
      if batch then args[#args + 1] = "--batch" end
      local r = cli.run(args, { home = home, base_url = srv.base_url })
      assert.equal(0, r.code, r.stderr)
      assert.matches("passed 1/1", r.stderr)
      local line = cjson.decode((proc.read_file(out):match("[^\n]+")))
      assert.is_true(line.pass)
      assert.matches("Paris", line.text)
    end
    -- the prompt log has each case's prompt (a Responses request has no messages)
    for _, source in ipairs { "run", "batch" } do
      local logs = cjson.decode(cli.run({ "logs", "--json", "-n", "0", "--source", source }, { home = home }).stdout)
      assert.equal(1, #logs, source)
      assert.equal("What is the capital of France?", logs[1].prompt)
      assert.matches("Paris", logs[1].response)
    end
    local direct, lines = 0, 0
    for _, q in ipairs(srv:requests()) do
      if q.path == "/v1/responses" then direct = direct + 1 end
      if q.path == "/v1/chat/completions" then lines = lines + 1 end
    end
    assert.equal(1, direct)
    assert.equal(0, lines)
    local r = cli.run({ "run", home .. "/cases.jsonl", "--api", "responses", "--vote", "3" },
                      { home = home, base_url = srv.base_url })
    assert.equal(2, r.code)
    assert.matches("not with %-%-api responses", r.stderr)
  end)
end)
