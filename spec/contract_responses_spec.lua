--- Contract tests of the Responses API client (issue 14): every request
-- shape client:respond and the stored-response calls send, validated
-- against the OpenAI API description (`<repo>/../shared/openapi/openapi.yaml`
-- or $AIGC_OPENAPI) by Steady, as spec/contract_spec.lua does for chat
-- (see there for how Steady reports). Negative tests prove the check fails
-- when a request is wrong. Pending where the spec file is absent.

local aigc = require "aigc"

-- The shared preamble and checks (spec/contract/checks.lua, beside this file).
local checks = dofile((debug.getinfo(1, "S").source:match("^@(.-)[^/]*$") or "") .. "contract/checks.lua")
local steady_errors, assert_accepted = checks.steady_errors, checks.assert_accepted
local assert_stream_accepted = checks.assert_stream_accepted

local null = aigc.null

local function assert_response (res, what)
  assert.equal("response", res.object, what .. ": object")
  assert.is_string(res.id, what .. ": id")
  assert.is_string(res.text, what .. ": text (output_text)")
  assert.is_table(res.output, what .. ": output")
end

local WEATHER = { type = "function", name = "get_weather", description = "The weather in a city", strict = true,
  parameters = { type = "object", properties = { city = { type = "string" } }, required = { "city" },
                 additionalProperties = false } }

-- Every kind of input item aigc's dialogue layer sends: messages of every
-- role, a function call and its output.
local ALL_ITEMS = {
  { role = "developer", content = "Be terse." },
  { role = "system", content = "Answer in English." },
  { type = "message", role = "user", content = "What is the weather in Paris?" },
  { role = "assistant", content = "Let me check." },
  { type = "function_call", call_id = "call_1", name = "get_weather", arguments = '{"city":"Paris"}' },
  { type = "function_call_output", call_id = "call_1", output = '{"temperature":18}' },
  { role = "user", content = "Thanks." },
}

-- A message whose content is a list of parts.
local PARTS_MESSAGE = { role = "user", content = {
  { type = "input_text", text = "What is in this image?" },
  { type = "input_image", image_url = "https://example.com/cat.png", detail = "low" },
  { type = "input_file", filename = "notes.txt", file_data = "data:text/plain;base64,aGk=" },
} }

local SCHEMA_FORMAT = { type = "json_schema", name = "weather", strict = true,
  schema = { type = "object", properties = { city = { type = "string" }, temperature = { type = "number" } },
             required = { "city", "temperature" }, additionalProperties = false } }

describe("contract: Responses API (OpenAPI spec via Steady)", function ()
  local client
  -- (a list in a query, include, goes as the SDKs send it, include[]=a: openai-python's
  -- brackets array_format; the spec's style would be include=a, Steady's default)
  local contract = checks.fixture(_ENV, { "--stream-interval=0", "--validator-query-array-format=brackets" },
                                  function (c) client = c end, { model = "gpt-4o-mini" })

  contract("respond: a string input", function ()
    local res, err = client:respond "Say this is a test"
    assert_response(assert_accepted(res, err, "respond string", "/responses"), "respond string")
  end)

  contract("respond: every kind of input item, instructions and every documented field", function ()
    local what = "respond full-parameter"
    local res, err = client:respond {
      model = "gpt-4o", input = ALL_ITEMS, instructions = "You are a weather bot.",
      tools = { WEATHER }, tool_choice = "auto", parallel_tool_calls = true,
      text = { format = SCHEMA_FORMAT, verbosity = "low" },
      reasoning = { effort = "low", summary = "auto" },
      max_output_tokens = 256, max_tool_calls = 4, temperature = 0.7, top_p = 0.9,
      store = true, metadata = { session = "abc" }, truncation = "auto",
      safety_identifier = "5f2b9c1e0a", prompt_cache_key = "weather-v1",
      include = { "reasoning.encrypted_content" }, service_tier = "auto", top_logprobs = 2,
    }
    assert_response(assert_accepted(res, err, what, "/responses"), what)
  end)

  contract("respond: a message with content parts (Steady's known oneOf ambiguity)", function ()
    -- Such a message matches two variants of the spec's InputItem oneOf
    -- (EasyInputMessage and InputMessage), which strict oneOf refuses:
    -- Steady reports exactly that, E3012 at body.input, and nothing else.
    -- The body is the one the API documents (spec/responses_spec.lua checks
    -- what aigc sends byte for byte against the bundled server).
    local res, err = client:respond { input = { PARTS_MESSAGE } }
    assert(res, "parts message: " .. tostring(err))
    assert.same({ "#1 E3012 body.input: No variant matched: 2 variants all failed structurally" },
                steady_errors(res.headers))
  end)

  contract("respond: tool_choice none, required and named", function ()
    for _, tc in ipairs { "none", "required", { type = "function", name = "get_weather" } } do
      local what = "respond tool_choice " .. (type(tc) == "string" and tc or "named")
      local res, err = client:respond { input = "Weather in Paris?", tools = { WEATHER }, tool_choice = tc }
      assert_response(assert_accepted(res, err, what, "/responses"), what)
    end
  end)

  contract("respond: text.format text, json_object and json_schema", function ()
    for _, f in ipairs { { type = "text" }, { type = "json_object" }, SCHEMA_FORMAT } do
      local what = "respond text.format " .. f.type
      local res, err = client:respond { input = "Report the weather as JSON.", text = { format = f } }
      assert_response(assert_accepted(res, err, what, "/responses"), what)
    end
  end)

  contract("respond: previous_response_id with store, and background", function ()
    local what = "respond previous_response_id"
    local res, err = client:respond { input = "And in Rome?", previous_response_id = "resp_123", store = true }
    assert_response(assert_accepted(res, err, what, "/responses"), what)
    what = "respond background"
    res, err = client:respond { input = "Write a poem.", background = true, store = true }
    assert_response(assert_accepted(res, err, what, "/responses"), what)
  end)

  contract("respond: nullable fields as aigc.null", function ()
    local what = "respond nulls"
    local res, err = client:respond { input = "hi", previous_response_id = null, instructions = null,
                                      max_output_tokens = null, temperature = null }
    assert_response(assert_accepted(res, err, what, "/responses"), what)
  end)

  contract("streaming: callback, iterator and async send stream true and get SSE", function ()
    local what = "respond stream (callback)"
    local events = 0
    local res, err = client:respond { input = "hi", stream = function () events = events + 1 end }
    assert_stream_accepted(res, err, what, "/responses")
    assert.truthy(events >= 1, what .. ": no event reached the callback")
    what = "stream_response (iterator)"
    local s = client:stream_response { input = "hi", tools = { WEATHER } }
    pcall(function () for _ in s do end end)
    assert_stream_accepted(s:result(), select(2, s:result()), what, "/responses")
    what = "respond_async stream"
    local req = client:respond_async { input = "hi", stream = true }
    assert_stream_accepted(req:wait(), select(2, req:result()), what, "/responses")
  end)

  contract("stored responses: retrieve, delete, cancel, input_items", function ()
    local res, err = client:get_response("resp_123")
    assert_response(assert_accepted(res, err, "get_response", "/responses/{response_id}"), "get_response")
    res, err = client:get_response("resp_123", { include = { "reasoning.encrypted_content" } })
    assert_accepted(res, err, "get_response include", "/responses/{response_id}")
    res, err = client:delete_response("resp_123")
    assert_accepted(res, err, "delete_response", "/responses/{response_id}")
    res, err = client:cancel_response("resp_123")
    assert_accepted(res, err, "cancel_response", "/responses/{response_id}/cancel")
    res, err = client:response_input_items("resp_123", { limit = 5, order = "asc", after = "msg_1" })
    res = assert_accepted(res, err, "response_input_items", "/responses/{response_id}/input_items")
    assert.equal("list", res.object)
  end)

  contract("negative: temperature = 7 and an input that is neither a string nor a list are reported", function ()
    local res, err = client:respond { input = "hi", temperature = 7 }
    assert(res, "temperature = 7: Steady answers 200 with error headers; aigc said: " .. tostring(err))
    assert.equal("body.temperature", res.headers["x-steady-error-1-path"])
    assert.is_false((pcall(assert_accepted, res, err, "temperature = 7", "/responses")))
    -- (client:respond refuses input = 42 itself: the raw call sends it)
    res, err = client:request("POST", "/responses", { model = "gpt-4o-mini", input = 42 })
    local problems = table.concat(steady_errors((res or err).headers), "\n")
    assert.matches("body.input", problems, 1, true)
    assert.is_false((pcall(assert_accepted, res, err, "input = 42", "/responses")))
  end)

  contract("negative: a query value outside its enum, and a bad include value, are reported", function ()
    local res, err = client:response_input_items("resp_123", { order = "sideways" })
    assert.matches("query.order", table.concat(steady_errors((res or err).headers), "\n"), 1, true)
    assert.is_false((pcall(assert_accepted, res, err, "order", "/responses/{response_id}/input_items")))
    -- (Steady reads include[]=... as include, its values checked against the enum)
    res, err = client:get_response("resp_123", { include = { "no.such.field" } })
    assert.matches("query.include", table.concat(steady_errors((res or err).headers), "\n"), 1, true)
    assert.is_false((pcall(assert_accepted, res, err, "include", "/responses/{response_id}")))
  end)
end)
