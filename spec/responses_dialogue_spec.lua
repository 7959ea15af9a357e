-- The dialogue layer over the Responses API (issue 14 item 3): toolsets run
-- the function_call -> function_call_output loop (parallel calls, chained
-- with previous_response_id, or the whole input again with store = false),
-- `schema` maps to text.format with res.parsed validated, and the failure
-- kinds -- against the bundled server, whose recorded requests show what
-- went on the wire.
local aigc = require "aigc"
local devserver = require "devserver"

local CITY = { type = "object", properties = { city = { type = "string" } }, required = { "city" },
               additionalProperties = false }
local ANSWER = { type = "object", properties = { answer = { type = "string" } }, required = { "answer" },
                 additionalProperties = false }
local BOTH = 'Use get_weather({"city":"Paris"}) and get_time({"city":"Tokyo"})'

describe("dialogue over the Responses API", function ()
  local srv, client, calls
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { model = "aigc-dev" })
  before_each(function () calls = {} end)

  local function toolset ()
    return aigc.tools {
      { name = "get_weather", description = "Weather of a city", parameters = CITY,
        fn = function (args) calls[#calls + 1] = "weather " .. args.city; return { temperature = 18 } end },
      { name = "get_time", description = "Time in a city", parameters = CITY,
        fn = function (args) calls[#calls + 1] = "time " .. args.city; return "10:00" end },
    }
  end

  local function bodies () return srv:bodies("/v1/responses") end

  describe("tools", function ()
    it("runs parallel calls and chains the outputs with previous_response_id", function ()
      local res = assert(client:respond { input = BOTH, tools = toolset() })
      assert.same({ "weather Paris", "time Tokyo" }, calls)
      assert.equal(1, res.tool_rounds)
      assert.equal(2, #res.tool_calls_made)
      assert.matches("^Here is what I found: ", res.text)
      assert.matches("10:00", res.text)
      local sent = bodies()
      assert.equal(2, #sent)
      -- the Responses tool format, flat, strict said explicitly
      assert.same({ type = "function", name = "get_weather", description = "Weather of a city",
                    parameters = CITY, strict = false }, sent[1].tools[1])
      assert.is_nil(sent[1].previous_response_id)
      local second = sent[2]
      assert.matches("^resp_", second.previous_response_id)
      assert.equal(2, #second.input)
      for i, item in ipairs(second.input) do
        assert.equal("function_call_output", item.type)
        assert.matches("^call_", item.call_id)
        assert.equal(res.tool_messages[i].call_id, item.call_id)   -- the calls come first in tool_messages
      end
      assert.equal('{"temperature":18}', second.input[1].output)
      assert.equal("10:00", second.input[2].output)
      -- tool_messages: the function_call items, then their outputs
      assert.same({ "function_call", "function_call", "function_call_output", "function_call_output" },
                  { res.tool_messages[1].type, res.tool_messages[2].type, res.tool_messages[3].type,
                    res.tool_messages[4].type })
    end)

    it("with store = false sends the whole input again, calls and outputs included", function ()
      assert(client:respond { input = BOTH, tools = toolset(), store = false })
      local second = bodies()[2]
      assert.is_nil(second.previous_response_id)
      assert.equal(5, #second.input)
      assert.equal(BOTH, second.input[1].content)
      assert.equal("function_call", second.input[2].type)
      assert.equal("function_call", second.input[3].type)
      assert.equal("function_call_output", second.input[4].type)
      assert.equal(second.input[2].call_id, second.input[4].call_id)
    end)

    -- A conversation (the Conversations API) holds each response's items,
    -- and previous_response_id "cannot be used in conjunction with
    -- conversation" (the spec; OpenAI answers 400): the next round names
    -- the conversation again and sends only the tool outputs.
    it("with a conversation: the next round names it, with the outputs alone and no previous_response_id",
      function ()
      -- (the bundled server keeps conversations: one made first, as a user would)
      local conv = assert(client:create_conversation {})
      local res, err = client:respond { input = BOTH, tools = toolset(), conversation = conv.id }
      assert.is_nil(err)
      assert.equal(1, res.tool_rounds)
      local second = bodies()[2]
      assert.equal(conv.id, second.conversation)
      assert.is_nil(second.previous_response_id)
      assert.same({ "function_call_output", "function_call_output" }, { second.input[1].type, second.input[2].type })
      assert.equal(2, #second.input)
    end)

    -- A reasoning model's reasoning item goes back by its id, which only a
    -- stored response keeps, or with its encrypted_content (include
    -- "reasoning.encrypted_content"): OpenAI answers 404 "Item with id
    -- 'rs_...' not found. Items are not persisted when `store` is set to
    -- false" to anything else, and the bundled server does as it does.
    it("with store = false and a reasoning model: a reasoning item goes back only with its encrypted content",
      function ()
      local res, err = client:respond { model = "aigc-reasoner", input = BOTH, tools = toolset(), store = false }
      assert.is_nil(err)
      assert.equal(2, #calls)
      local second = bodies()[2]
      assert.same({ "message", "function_call", "function_call", "function_call_output", "function_call_output" },
                  { second.input[1].type or "message", second.input[2].type, second.input[3].type,
                    second.input[4].type, second.input[5].type })
      assert.equal("reasoning", res.output[1].type)
      -- with the encrypted content asked for, the reasoning goes back with the calls
      srv:reset()
      calls = {}
      assert(client:respond { model = "aigc-reasoner", input = BOTH, tools = toolset(), store = false,
                              include = { "reasoning.encrypted_content" } })
      second = bodies()[2]
      assert.equal("reasoning", second.input[2].type)
      assert.matches("^gAAAA", second.input[2].encrypted_content)
      -- stored (the default), it goes back by its id within the chain
      srv:reset()
      calls = {}
      assert(client:respond { model = "aigc-reasoner", input = BOTH, tools = toolset() })
      assert.equal(2, #calls)
    end)

    it("sums usage over the rounds and keeps each round's", function ()
      local res = assert(client:respond { input = BOTH, tools = toolset() })
      assert.equal(2, #res.usage_rounds)
      assert.equal(res.usage_rounds[1].total_tokens + res.usage_rounds[2].total_tokens, res.usage.total_tokens)
    end)

    it("streams the deltas of every round, and runs as a future", function ()
      local deltas = {}
      local fut = client:respond_async { input = BOTH, tools = toolset(),
                                         stream = function (d) deltas[#deltas + 1] = d end }
      local res = assert(fut:wait())
      assert.equal(res.text, table.concat(deltas))
      assert.equal(2, #calls)
    end)

    it("after max_tool_rounds forces tool_choice none", function ()
      local res = assert(client:respond { input = BOTH, tools = toolset(), max_tool_rounds = 0 })
      assert.equal(0, res.tool_rounds)
      assert.equal("none", bodies()[1].tool_choice)
    end)

    it("a stream iterator with a toolset is misuse", function ()
      assert.error_matches(function () client:stream_response { input = "x", tools = toolset() } end,
        "bad argument #1 to 'stream_response' %(a toolset or a schema needs client:respond")
    end)
  end)

  describe("schema", function ()
    it("maps to text.format and returns res.parsed", function ()
      local res = assert(client:respond { input = "What is the capital of France?", schema = ANSWER,
                                          text = { verbosity = "low" } })
      assert.is_string(res.parsed.answer)
      local body = bodies()[1]
      assert.same({ type = "json_schema", name = "response", schema = ANSWER, strict = true }, body.text.format)
      assert.equal("low", body.text.verbosity)   -- the caller's other text options stay
      assert.equal("json_schema", res.schema_mode)
    end)

    it("json_object mode puts the schema in a developer message", function ()
      local res = assert(client:respond { input = "What is the capital of France?", schema = ANSWER,
                                          schema_mode = "json_object" })
      assert.is_string(res.parsed.answer)
      local body = bodies()[1]
      assert.same({ type = "json_object" }, body.text.format)
      assert.equal("developer", body.input[1].role)
      assert.matches("JSON schema", body.input[1].content)
      assert.equal("user", body.input[2].role)
    end)

    it("a reply that breaks the schema: kind schema with violations", function ()
      local res, err = client:respond { input = "x", schema = ANSWER,
                                        headers = { ["x-aigc-fault"] = "schema=violate" } }
      assert.is_nil(res)
      assert.equal("schema", err.kind)
      assert.is_table(err.violations)
      assert.equal("response", err.response.object)
    end)

    it("a refusal: kind refusal", function ()
      local res, err = client:respond { input = "x", schema = ANSWER, headers = { ["x-aigc-fault"] = "refusal" } }
      assert.is_nil(res)
      assert.equal("refusal", err.kind)
      assert.equal("I'm sorry, but I can't help with that.", err.refusal)
    end)

    it("an incomplete response: kind incomplete with the reason", function ()
      local res, err = client:respond { input = "Generate a short story about a robot that learns to paint.",
                                        schema = ANSWER, headers = { ["x-aigc-fault"] = "incomplete" } }
      assert.is_nil(res)
      assert.equal("incomplete", err.kind)
      assert.equal("max_output_tokens", err.reason)
    end)

    it("text.format with schema is misuse", function ()
      assert.error_matches(function ()
        client:respond { input = "x", schema = ANSWER, text = { format = { type = "text" } } }
      end, "bad argument #1 to 'respond' %(params.text.format: not with params.schema")
    end)

    it("tools and schema together: the final answer is parsed", function ()
      local res = assert(client:respond { input = BOTH, tools = toolset(), schema = ANSWER })
      assert.equal(2, #calls)
      assert.is_string(res.parsed.answer)
    end)
  end)
end)
