--- Contract tests: every request shape aigc can send, validated against the
-- OpenAI API description (`<repo>/../shared/openapi/openapi.yaml`, or
-- $AIGC_OPENAPI) by Steady, the spec-validating mock server from npm
-- (`@stdy/cli`, pinned in spec/contract/package-lock.json) that the official
-- OpenAI SDKs test against.
--
-- Steady reports each problem it finds in a request in response headers
-- `x-steady-error-N-code|path|message` (with `x-steady-error-count`). Only
-- some problems change the status (a missing required field gives 400; a
-- range violation such as `temperature: 7` keeps 200), so every test checks
-- the headers, not only the status; the negative tests at the end prove that
-- this check fails when it should.
--
-- Where the spec file is absent every test is pending, with a message saying
-- so. `node_modules` is installed on first use (`npm ci`, see
-- spec/contract/steady.lua).

local aigc = require "aigc"
local portable = require "portable"

-- The shared preamble and checks (spec/contract/checks.lua, beside this file).
local checks = dofile((debug.getinfo(1, "S").source:match("^@(.-)[^/]*$") or "") .. "contract/checks.lua")
local steady, CONTRACT_DIR = checks.steady, checks.CONTRACT_DIR
local STEADY = "Steady, @stdy/cli " .. (steady.pinned_version(CONTRACT_DIR) or "?")

local null, array = aigc.null, aigc.array

-- {======================================================
-- Checks
-- =======================================================

local steady_errors, assert_accepted = checks.steady_errors, checks.assert_accepted
local assert_no_steady_errors = checks.assert_no_steady_errors

local function is_list (t, min)
  return type(t) == "table" and aigc.is_array(t) and #t >= (min or 0)
end

local function is_int (v) return portable.math_type(v) == "integer" end   -- (doubles: integral)

local CHAT_FINISH = { stop = true, length = true, tool_calls = true, content_filter = true, function_call = true }
local TEXT_FINISH = { stop = true, length = true, content_filter = true }

local function assert_chat_completion (res, what)
  assert.equal("chat.completion", res.object, what .. ": object")
  assert.is_string(res.id, what .. ": id")
  assert(is_int(res.created), what .. ": created must be an integer")
  assert.is_string(res.model, what .. ": model")
  assert(is_list(res.choices, 1), what .. ": choices must be a non-empty array")
  for i, c in ipairs(res.choices) do
    local w = ("%s: choices[%d]"):format(what, i)
    assert(is_int(c.index), w .. ".index must be an integer")
    assert.is_table(c.message, w .. ".message")
    assert.equal("assistant", c.message.role, w .. ".message.role")
    assert(CHAT_FINISH[c.finish_reason], w .. ".finish_reason: " .. tostring(c.finish_reason))
  end
end

local function assert_text_completion (res, what)
  assert.equal("text_completion", res.object, what .. ": object")
  assert.is_string(res.id, what .. ": id")
  assert(is_int(res.created), what .. ": created must be an integer")
  assert.is_string(res.model, what .. ": model")
  assert(is_list(res.choices, 1), what .. ": choices must be a non-empty array")
  for i, c in ipairs(res.choices) do
    local w = ("%s: choices[%d]"):format(what, i)
    assert(is_int(c.index), w .. ".index must be an integer")
    assert.is_string(c.text, w .. ".text")
    assert(TEXT_FINISH[c.finish_reason], w .. ".finish_reason: " .. tostring(c.finish_reason))
  end
end

local function assert_embeddings (res, what)
  assert.equal("list", res.object, what .. ": object")
  assert.is_string(res.model, what .. ": model")
  assert(is_list(res.data, 1), what .. ": data must be a non-empty array")
  for i, d in ipairs(res.data) do
    assert.equal("embedding", d.object, ("%s: data[%d].object"):format(what, i))
    assert(is_int(d.index), ("%s: data[%d].index must be an integer"):format(what, i))
    assert(type(d.embedding) == "table" or type(d.embedding) == "string",
           ("%s: data[%d].embedding is a %s"):format(what, i, type(d.embedding)))
  end
  assert.is_table(res.usage, what .. ": usage")
  assert(is_int(res.usage.prompt_tokens) and is_int(res.usage.total_tokens), what .. ": usage counts")
end

--- A streaming call: the request is valid and, where the spec declares a
-- `text/event-stream` answer (`sse`), Steady answered with an SSE stream
-- (which it does only for `Accept: text/event-stream`). Steady's streams are
-- random (choice indexes, finish reasons), so the only failure accepted from
-- aigc is one about the stream's content (kind "stream", after a 200), never
-- one about the request.
local function assert_stream_accepted (res, err, what, path, sse)
  local h = assert_no_steady_errors(res, err, what, path)
  local ctype = h["content-type"] or ""
  if sse then
    assert(ctype:find("^text/event%-stream"),
           what .. ": expected an SSE answer (content-type text/event-stream, which Steady sends only for "
           .. "Accept: text/event-stream), got content-type " .. ctype)
    assert.equal("true", h["x-steady-streaming"], what .. ": x-steady-streaming")
  else
    assert(ctype:find("^application/json"), what .. ": expected the spec's JSON answer, got content-type " .. ctype)
  end
  if err then
    assert(err.kind == "stream" and err.status == 200,
           what .. ": the request failed for a reason other than the mock's stream content: " .. tostring(err))
  end
  return h
end

--- One line about what the mock streamed, for the test log.
local function record_stream (what, chunks, res, err)
  local idx = {}
  for i, c in ipairs(chunks) do
    local first = type(c.choices) == "table" and c.choices[1]
    idx[i] = first and tostring(first.index) or "-"
  end
  print(("contract: %s: Steady streamed %d chunk(s), first choice indexes %s; aigc: %s")
        :format(what, #chunks, table.concat(idx, ","),
                res and ("ok, " .. #(res.choices or {}) .. " choice(s)") or tostring(err)))
end

local function assert_chunks (chunks, object, what)
  assert(#chunks >= 1, what .. ": no chunk reached the stream callback")
  for i, c in ipairs(chunks) do
    assert.equal(object, c.object, ("%s: chunk %d object"):format(what, i))
    assert(type(c.choices) == "table", ("%s: chunk %d has no choices array"):format(what, i))
  end
end

-- }======================================================


-- {======================================================
-- Request pieces
-- =======================================================

local USER_HI = { { role = "user", content = "Say this is a test" } }

local WEATHER_FN = {
  name = "get_weather",
  description = "The current weather in a city",
  parameters = {
    type = "object",
    properties = { city = { type = "string" }, unit = { type = "string", enum = { "c", "f" } } },
    required = { "city", "unit" },
    additionalProperties = false,
  },
  strict = true,
}

local TOOLS = {
  { type = "function", ["function"] = WEATHER_FN },
  { type = "custom", custom = {
      name = "run_sql", description = "Runs one SELECT statement",
      format = { type = "grammar", grammar = { definition = "start: \"SELECT \" /[a-z0-9_, *]+/", syntax = "lark" } },
  } },
  { type = "custom", custom = { name = "free_text", format = { type = "text" } } },
}

-- Every role, every user content part, an assistant turn with tool calls of
-- both kinds and their tool answers (string and parts).
local ALL_ROLES = {
  { role = "developer", content = "You are a terse assistant.", name = "dev" },
  { role = "system", content = { { type = "text", text = "Answer in English." } }, name = "sys" },
  { role = "user", name = "alice", content = {
      { type = "text", text = "What is in this image, and what is the weather in Paris?" },
      { type = "image_url", image_url = { url = "https://example.com/cat.png", detail = "low" } },
      { type = "image_url", image_url = { url = "data:image/png;base64,iVBORw0KGgo=" } },
      { type = "input_audio", input_audio = { data = "UklGRiQAAABXQVZF", format = "wav" } },
      { type = "file", file = { filename = "notes.txt", file_data = "data:text/plain;base64,aGk=" } },
      { type = "file", file = { file_id = "file-abc123" } },
  } },
  { role = "assistant", content = null, tool_calls = {
      { id = "call_1", type = "function",
        ["function"] = { name = "get_weather", arguments = '{"city":"Paris","unit":"c"}' } },
      { id = "call_2", type = "custom", custom = { name = "run_sql", input = "SELECT 1" } },
  } },
  { role = "tool", tool_call_id = "call_1", content = '{"temperature":18}' },
  { role = "tool", tool_call_id = "call_2", content = { { type = "text", text = "1" } } },
  { role = "assistant", name = "bot", refusal = null, content = {
      { type = "text", text = "A cat. It is 18 C in Paris." },
      { type = "refusal", refusal = "I cannot identify the cat." },
  } },
  { role = "assistant", content = "Anything else?", audio = { id = "audio_abc123" } },
  { role = "user", content = "No, thanks." },
}

local JSON_SCHEMA_FORMAT = {
  type = "json_schema",
  json_schema = {
    name = "weather",
    description = "A weather report",
    schema = {
      type = "object",
      properties = { city = { type = "string" }, temperature = { type = "number" } },
      required = { "city", "temperature" },
      additionalProperties = false,
    },
    strict = true,
  },
}

-- }======================================================


describe("contract (OpenAPI spec via " .. STEADY .. ")", function ()
  -- --stream-interval=0: Steady's streams come at once instead of every 100 ms.
  local client
  local contract = checks.fixture(_ENV, { "--stream-interval=0" }, function (c) client = c end,
                                  { model = "gpt-4o-mini" })

  -- {====================================================
  -- Chat completions
  -- =====================================================

  contract("chat minimal: model and one user message", function ()
    local what = "chat minimal"
    local res, err = client:chat { messages = USER_HI }
    assert_chat_completion(assert_accepted(res, err, what, "/chat/completions"), what)
  end)

  contract("chat with every documented request field", function ()
    local what = "chat full-parameter"
    local res, err = client:chat {
      model = "gpt-4o",
      messages = ALL_ROLES,
      temperature = 0.7,
      top_p = 0.9,
      n = 2,
      stop = { "\n\n", "END" },
      max_tokens = 256,
      max_completion_tokens = 512,
      seed = rawget(math, "maxinteger") or 2 ^ 53,   -- (doubles: the largest exact integer)
      frequency_penalty = 0.5,
      presence_penalty = -0.5,
      logit_bias = { ["50256"] = -100, ["1234"] = 5 },
      logprobs = true,
      top_logprobs = 5,
      response_format = JSON_SCHEMA_FORMAT,
      tools = TOOLS,
      tool_choice = "auto",
      parallel_tool_calls = false,
      user = "user-1234",
      safety_identifier = "5f2b9c1e0a",
      prompt_cache_key = "weather-v1",
      prompt_cache_retention = "24h",
      prompt_cache_options = { ttl = "30m", mode = "implicit" },
      metadata = { session = "abc", team = "core" },
      store = true,
      service_tier = "auto",
      modalities = { "text", "audio" },
      audio = { voice = "alloy", format = "mp3" },
      verbosity = "low",
      reasoning_effort = "low",
      prediction = { type = "content", content = "A cat. It is 18 C in Paris." },
      web_search_options = {
        search_context_size = "low",
        user_location = { type = "approximate",
                          approximate = { country = "FR", region = "IDF", city = "Paris", timezone = "Europe/Paris" } },
      },
      moderation = { model = "omni-moderation-latest", policy = { input = { mode = "score" }, output = null } },
    }
    assert_chat_completion(assert_accepted(res, err, what, "/chat/completions"), what)
  end)

  contract("chat stop as a string and as an array of up to 4 strings", function ()
    for _, stop in ipairs { "END", { "END" }, { "a", "b", "c", "d" } } do
      local what = "chat stop = " .. (type(stop) == "string" and stop or ("{" .. table.concat(stop, ",") .. "}"))
      local res, err = client:chat { messages = USER_HI, stop = stop }
      assert_chat_completion(assert_accepted(res, err, what, "/chat/completions"), what)
    end
  end)

  contract("chat response_format text, json_object and json_schema", function ()
    local formats = {
      { "text", { type = "text" } },
      { "json_object", { type = "json_object" } },
      { "json_schema (name only)", { type = "json_schema", json_schema = { name = "anything" } } },
      { "json_schema (name, schema, strict)", JSON_SCHEMA_FORMAT },
    }
    for _, f in ipairs(formats) do
      local what = "chat response_format " .. f[1]
      local res, err = client:chat { messages = USER_HI, response_format = f[2] }
      assert_chat_completion(assert_accepted(res, err, what, "/chat/completions"), what)
    end
  end)

  contract("chat tools with tool_choice auto, none, required, named and allowed_tools", function ()
    local choices = {
      { "auto", "auto" }, { "none", "none" }, { "required", "required" },
      { "named function", { type = "function", ["function"] = { name = "get_weather" } } },
      { "named custom", { type = "custom", custom = { name = "run_sql" } } },
      { "allowed_tools", { type = "allowed_tools", allowed_tools = {
          mode = "auto", tools = { { type = "function", ["function"] = { name = "get_weather" } } } } } },
    }
    for _, c in ipairs(choices) do
      local what = "chat tool_choice " .. c[1]
      local res, err = client:chat { messages = USER_HI, tools = TOOLS, tool_choice = c[2],
                                     parallel_tool_calls = true }
      assert_chat_completion(assert_accepted(res, err, what, "/chat/completions"), what)
    end
  end)

  contract("chat with the deprecated functions, function_call and function-role message", function ()
    local msgs = {
      { role = "user", content = "Weather in Paris?" },
      { role = "assistant", content = null,
        function_call = { name = "get_weather", arguments = '{"city":"Paris","unit":"c"}' } },
      { role = "function", name = "get_weather", content = '{"temperature":18}' },
    }
    local fns = { { name = "get_weather", description = WEATHER_FN.description, parameters = WEATHER_FN.parameters } }
    for _, fc in ipairs { "auto", "none", { name = "get_weather" } } do
      local what = "chat function_call " .. (type(fc) == "string" and fc or "named")
      local res, err = client:chat { messages = msgs, functions = fns, function_call = fc }
      assert_chat_completion(assert_accepted(res, err, what, "/chat/completions"), what)
    end
  end)

  contract("chat with aigc.null for nullable fields, aigc.array{} and {} where empty is valid", function ()
    local what = "chat nulls and empties"
    local res, err = client:chat {
      messages = {
        { role = "user", content = "Hi" },
        { role = "assistant", content = null, refusal = null, tool_calls = array {} },
        { role = "user", content = "Again" },
      },
      -- nullable in the spec (not top_logprobs: CreateModelResponseProperties,
      -- one of the request's allOf parts, declares it a plain integer)
      temperature = null, top_p = null, n = null, stop = null, max_tokens = null,
      max_completion_tokens = null, seed = null, frequency_penalty = null, presence_penalty = null,
      logprobs = null, store = null, service_tier = null, audio = null,
      modalities = null, verbosity = null, reasoning_effort = null, stream_options = null,
      safety_identifier = null, prompt_cache_key = null, moderation = null,
      -- empty arrays where the spec has no minItems; an empty plain table is an empty object
      tools = array {},
      logit_bias = {},
      metadata = {},
    }
    assert_chat_completion(assert_accepted(res, err, what, "/chat/completions"), what)
  end)

  contract("chat streaming, callback form: request accepted, SSE answer", function ()
    local what = "chat stream (callback)"
    local chunks, deltas = {}, 0
    local res, err = client:chat {
      messages = USER_HI, temperature = 0.5, max_completion_tokens = 64,
      stream = function (_, chunk) deltas = deltas + 1; chunks[#chunks + 1] = chunk end,
    }
    record_stream(what, chunks, res, err)
    assert_stream_accepted(res, err, what, "/chat/completions", true)
    assert_chunks(chunks, "chat.completion.chunk", what)
    assert.equal(#chunks, deltas)
  end)

  -- A client:stream iterator run to its end: the request accepted at
  -- `path` (with an SSE answer when `sse`), a loop that raises only the
  -- request's own error, chunks of `object`.
  local function check_iterated_stream (what, params, path, sse, object)
    local chunks = {}
    local s = client:stream(params)
    local ok, raised = pcall(function ()
      for _, chunk in s do chunks[#chunks + 1] = chunk end
    end)
    local res, err = s:result()
    record_stream(what, chunks, res, err)
    assert_stream_accepted(res, err, what, path, sse)
    if not ok then
      assert.equal(err, raised, what .. ": the loop raised something other than the request's error")
    end
    assert_chunks(chunks, object, what)
  end

  contract("chat streaming, client:stream iterator: request accepted, SSE answer", function ()
    check_iterated_stream("chat stream (iterator)",
                          { messages = ALL_ROLES, tools = TOOLS, tool_choice = "auto", n = 1,
                            stream_options = { include_usage = true, include_obfuscation = false } },
                          "/chat/completions", true, "chat.completion.chunk")
  end)

  -- }====================================================


  -- {====================================================
  -- Legacy completions
  -- =====================================================

  contract("completions minimal: model and a prompt", function ()
    local what = "completions minimal"
    local res, err = client:complete { prompt = "Say this is a test" }
    assert_text_completion(assert_accepted(res, err, what, "/completions"), what)
  end)

  contract("completions with every documented field, prompt as string, strings and tokens", function ()
    local prompts = {
      { "string", "Once upon a time" },
      { "array of strings", { "Once upon a time", "In a galaxy far away" } },
      { "token array", { 7454, 2402, 257, 640 } },
      { "array of token arrays", { { 7454, 2402 }, { 818, 257 } } },
    }
    for _, p in ipairs(prompts) do
      local what = "completions full-parameter, prompt as " .. p[1]
      local res, err = client:complete {
        model = "gpt-3.5-turbo-instruct",
        prompt = p[2],
        suffix = " The end.",
        echo = true,
        best_of = 3,
        logprobs = 5,
        max_tokens = 16,
        n = 2,
        stop = { "\n", "###" },
        temperature = 0.2,
        top_p = 0.5,
        frequency_penalty = 0.1,
        presence_penalty = 0.1,
        seed = 9007199254740993,   -- 2^53 + 1: an integer a double cannot hold
        user = "user-1234",
        logit_bias = { ["50256"] = -100 },
      }
      assert_text_completion(assert_accepted(res, err, what, "/completions"), what)
    end
    local what = "completions stop as a string"
    local res, err = client:complete { prompt = "x", stop = "\n", max_tokens = 0, logprobs = 0, best_of = 1 }
    assert_text_completion(assert_accepted(res, err, what, "/completions"), what)
  end)

  contract("completions streaming via client:stream: request accepted", function ()
    -- The spec declares only application/json for POST /completions (no
    -- text/event-stream), so Steady answers with one JSON body here; what is
    -- checked is that the streaming request itself matches the spec.
    check_iterated_stream("completions stream (iterator)", { prompt = "Once upon a time", max_tokens = 8 },
                          "/completions", false, "text_completion")
  end)

  -- }====================================================


  -- {====================================================
  -- Models and embeddings
  -- =====================================================

  contract("models: list, and retrieve one", function ()
    local what = "models list"
    local res, err = client:models()
    res = assert_accepted(res, err, what, "/models")
    assert.equal("list", res.object, what .. ": object")
    assert(is_list(res.data, 1), what .. ": data must be a non-empty array")
    for i, m in ipairs(res.data) do
      assert.is_string(m.id, ("%s: data[%d].id"):format(what, i))
      assert.equal("model", m.object, ("%s: data[%d].object"):format(what, i))
      assert(is_int(m.created), ("%s: data[%d].created"):format(what, i))
      assert.is_string(m.owned_by, ("%s: data[%d].owned_by"):format(what, i))
    end
    what = "models retrieve"
    res, err = client:request("GET", "/models/gpt-4o-mini")
    res = assert_accepted(res, err, what, "/models/{model}")
    assert.equal("model", res.object, what .. ": object")
    assert.is_string(res.id, what .. ": id")
  end)

  contract("embeddings: string, strings and token input; encoding_format; dimensions", function ()
    local cases = {
      { "string input", { input = "The food was delicious", model = "text-embedding-3-small" } },
      { "string, float, dimensions", { input = "The food was delicious", model = "text-embedding-3-small",
                                       encoding_format = "float", dimensions = 256, user = "user-1234" } },
      { "array of strings, base64", { input = { "first", "second" }, model = "text-embedding-3-large",
                                      encoding_format = "base64", dimensions = 1024 } },
      { "token array", { input = { 791, 3691, 574, 18406 }, model = "text-embedding-ada-002" } },
      { "array of token arrays", { input = { { 791, 3691 }, { 574 } }, model = "text-embedding-3-small" } },
    }
    for _, c in ipairs(cases) do
      local what = "embeddings " .. c[1]
      local res, err = client:embeddings(c[2])
      if res == nil and err and err.kind == "parse" and err.message:find("embedding%(s%) for 2 input%(s%)") then
        -- (Steady answers one embedding whatever the input: aigc refuses a
        -- reply without one per input; the request itself must be valid)
        checks.assert_no_steady_errors(res, err, what, "/embeddings")
      else
        assert_embeddings(assert_accepted(res, err, what, "/embeddings"), what)
      end
    end
  end)

  -- }====================================================


  -- {====================================================
  -- Negative: the harness must be able to fail
  -- =====================================================

  contract("negative: temperature = 7 keeps 200 but is reported in x-steady-error headers", function ()
    local res, err = client:chat { messages = USER_HI, temperature = 7 }
    assert(res, "temperature = 7: Steady answers 200 with error headers; aigc said: " .. tostring(err))
    local problems = steady_errors(res.headers)
    assert(#problems >= 1, "temperature = 7: no x-steady-error-N headers, the contract check would pass silently")
    assert.equal("body.temperature", res.headers["x-steady-error-1-path"])
    assert.equal(tostring(#problems), res.headers["x-steady-error-count"])
    local ok = pcall(assert_accepted, res, err, "temperature = 7", "/chat/completions")
    assert.is_false(ok, "assert_accepted let a request with temperature = 7 through")
  end)

  contract("negative: a chat without messages gets 400 and an error header naming messages", function ()
    local res, err = client:request("POST", "/chat/completions", { model = "gpt-4o-mini" })
    assert.is_nil(res, "a chat without messages was accepted")
    assert.equal(400, err.status, "status: " .. tostring(err))
    local problems = table.concat(steady_errors(err.headers), "\n")
    assert.matches("messages", problems, 1, true)
    assert.is_false((pcall(assert_accepted, res, err, "no messages", "/chat/completions")))
  end)

  contract("negative: aigc.null on a non-nullable field and aigc.array{} below minItems are reported", function ()
    -- These prove that aigc.null reaches the wire as null and aigc.array{}
    -- as [] (had aigc dropped them, Steady would see nothing wrong).
    local res, err = client:chat { messages = USER_HI, user = null, stop = array {} }
    assert(res, "Steady answers 200 with error headers; aigc said: " .. tostring(err))
    local problems = table.concat(steady_errors(res.headers), "\n")
    assert.matches("body.user: Expected type string, got null", problems, 1, true)
    assert.matches("body.stop:", problems, 1, true)
    assert.is_false((pcall(assert_accepted, res, err, "null user, empty stop", "/chat/completions")))
  end)

  -- }====================================================
end)
