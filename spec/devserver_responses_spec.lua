-- luacheck: std +busted
-- The devserver's Responses API (issue 14): POST /v1/responses blocking,
-- streamed (typed events, sequence numbers) and in the background; tools,
-- text.format, reasoning summaries, previous_response_id chains; retrieve,
-- delete, cancel, input_items; its stream faults and the words2 tokenizer.
-- Over raw sockets, never aigc; shapes from ../shared/openapi/openapi.yaml.

local cjson = require "cjson"
local safe = require "cjson.safe"
local devserver = require "devserver"
local raw = require "rawhttp"

local null = cjson.null

local WEATHER = { type = "function", name = "get_weather", description = "Weather of a city",
  parameters = { type = "object", properties = { city = { type = "string" } }, required = { "city" } } }
local TIME = { type = "function", name = "get_time",
  parameters = { type = "object", properties = { zone = { type = "string" } } } }

describe("devserver Responses API", function ()
  local srv
  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)
  before_each(function () srv:reset() end)

  local function call (method, path, body, headers)
    return raw.call(srv.port, method, path, body, headers)
  end

  local function create (body, headers)
    local res = call("POST", "/v1/responses", body, headers)
    assert.equal(200, res.status, res.body)
    return res.json, res
  end

  local function stream (body, headers)
    local res = raw.stream(srv.port, "/v1/responses", body, headers)
    assert.equal(200, res.status, res.body)
    return res
  end

  local function output_text (r)
    local parts = {}
    for _, it in ipairs(r.output) do
      if it.type == "message" then
        for _, c in ipairs(it.content) do if c.type == "output_text" then parts[#parts + 1] = c.text end end
      end
    end
    return table.concat(parts)
  end

  -- Accumulate a stream's events into the response they describe.
  local function accumulate (chunks)
    local acc = { output = {} }
    for _, e in ipairs(chunks) do
      if e.type == "response.created" then acc.created = e.response
      elseif e.type == "response.output_item.added" then acc.output[e.output_index + 1] = e.item
      elseif e.type == "response.content_part.added" then
        acc.output[e.output_index + 1].content[e.content_index + 1] = e.part
      elseif e.type == "response.output_text.delta" then
        local part = acc.output[e.output_index + 1].content[e.content_index + 1]
        part.text = part.text .. e.delta
      elseif e.type == "response.refusal.delta" then
        local part = acc.output[e.output_index + 1].content[e.content_index + 1]
        part.refusal = part.refusal .. e.delta
      elseif e.type == "response.function_call_arguments.delta" then
        local it = acc.output[e.output_index + 1]
        it.arguments = it.arguments .. e.delta
      elseif e.type == "response.reasoning_summary_part.added" then
        acc.output[e.output_index + 1].summary[e.summary_index + 1] = e.part
      elseif e.type == "response.reasoning_summary_text.delta" then
        local part = acc.output[e.output_index + 1].summary[e.summary_index + 1]
        part.text = part.text .. e.delta
      elseif e.type == "response.output_item.done" then
        acc.output[e.output_index + 1].status = e.item.status
      elseif e.type == "response.completed" or e.type == "response.incomplete" then acc.final = e.response end
    end
    return acc
  end

  it("answers in the Response shape with usage in input/output tokens", function ()
    local r, res = create { model = "gpt-4o", input = "What is the capital of France?" }
    assert.matches("^resp_%x+$", r.id)
    assert.equal("response", r.object)
    assert.equal("completed", r.status)
    assert.equal("gpt-4o", r.model)
    assert.is_number(r.created_at)
    assert.is_number(r.completed_at)
    for _, k in ipairs { "error", "incomplete_details", "instructions", "max_output_tokens", "previous_response_id" } do
      assert.equal(null, r[k], k)
    end
    assert.is_nil(r.user) -- a string when given; the schema has no null
    assert.is_true(r.parallel_tool_calls)
    assert.is_true(r.store)
    assert.same({ format = { type = "text" } }, r.text)
    assert.equal("auto", r.tool_choice)
    assert.same({}, r.tools)
    assert.same({}, r.metadata)
    assert.equal(1, #r.output)
    local msg = r.output[1]
    assert.matches("^msg_%x+$", msg.id)
    assert.same({ type = "message", role = "assistant", status = "completed", id = msg.id,
      content = { { type = "output_text", text = "The capital of France is Paris.", annotations = {},
                    logprobs = {} } } }, msg)
    assert.same({ input_tokens = 6 + 4, input_tokens_details = { cached_tokens = 0, cache_write_tokens = 0 },
      output_tokens = 6, output_tokens_details = { reasoning_tokens = 0 }, total_tokens = 16 }, r.usage)
    assert.matches("^req_", res.headers["x-request-id"])
    assert.equal("/v1/responses", srv:last().path)
  end)

  it("takes input as an item list, with instructions counted as a message", function ()
    local r = create { input = { { role = "user", content = { { type = "input_text", text = "Echo: items work" } } } },
                       instructions = "Be brief." }
    assert.equal("items work", output_text(r))
    assert.equal("Be brief.", r.instructions)
    assert.equal((3 + 4) + (2 + 4), r.usage.input_tokens)
    local typed = create { input = { { type = "message", role = "user", content = "Echo: typed" } } }
    assert.equal("typed", output_text(typed))
    local bad = call("POST", "/v1/responses", { input = { 42 } })
    assert.equal(400, bad.status)
    assert.equal("input[0]", bad.json.error.param)
    local none = call("POST", "/v1/responses", { model = "gpt-4o" })
    assert.equal(400, none.status)
    assert.equal("input", none.json.error.param)
    assert.equal(405, call("GET", "/v1/responses").status)
  end)

  it("streams typed events with sequence numbers that accumulate to response.completed", function ()
    local s = stream { input = "Generate a short story about a robot that learns to paint.", max_output_tokens = 40 }
    local types, ok = {}, true
    for i, ev in ipairs(s.events) do
      local e = s.chunks[i]
      assert.equal(ev.event, e.type) -- every event is named
      types[#types + 1] = e.type
      if e.sequence_number ~= i - 1 then ok = false end
    end
    assert.is_true(ok, "sequence numbers 0..n-1")
    assert.same({ "response.created", "response.in_progress", "response.output_item.added",
      "response.content_part.added", "response.output_text.delta" }, { table.unpack(types, 1, 5) })
    assert.same({ "response.output_text.done", "response.content_part.done", "response.output_item.done",
      "response.incomplete" }, { table.unpack(types, #types - 3) })
    assert.equal("in_progress", s.chunks[1].response.status)
    assert.same({}, s.chunks[1].response.output)
    assert.is_nil(s.chunks[1].response.usage) -- the schema has no null usage: absent until final
    local acc = accumulate(s.chunks)
    local final = acc.final
    assert.equal("incomplete", final.status)
    assert.same({ reason = "max_output_tokens" }, final.incomplete_details)
    assert.same(final.output, acc.output)
    assert.equal(40, final.usage.output_tokens)
    assert.is_nil(s.body:find("[DONE]", 1, true))
    -- the same request unstreamed gives the same output (ids aside)
    local plain = create { input = "Generate a short story about a robot that learns to paint.",
                           max_output_tokens = 40 }
    assert.equal(output_text(plain), output_text(final))
  end)

  it("refuses max_output_tokens below 16, the spec's minimum, as OpenAI does", function ()
    local res = call("POST", "/v1/responses", { input = "Hi", max_output_tokens = 15 })
    assert.equal(400, res.status)
    assert.equal("max_output_tokens", res.json.error.param)
    assert.equal("integer_below_min_value", res.json.error.code)
    assert.equal("incomplete", create({ input = "Generate a short story about a robot that learns to paint.",
                                        max_output_tokens = 16 }).status)
  end)

  it("pauses between events (pause=MS)", function ()
    local s = stream({ input = "Hi" }, { ["x-aigc-fault"] = "pause=30" })
    assert.is_true(#s.events >= 10)
    assert.is_true(s.elapsed >= 0.03 * (#s.events - 1) * 0.9, "elapsed " .. s.elapsed)
  end)

  it("streams reasoning summaries for reasoning models and reasoning.summary", function ()
    local s = stream { model = "o-reasoner", input = "What is 2 + 2?" }
    local acc = accumulate(s.chunks)
    local final = acc.final
    assert.equal("reasoning", final.output[1].type)
    assert.matches("^rs_", final.output[1].id)
    assert.equal(1, #final.output[1].summary)
    assert.equal("summary_text", final.output[1].summary[1].type)
    assert.matches("What is 2 %+ 2%?", final.output[1].summary[1].text)
    assert.same(final.output, acc.output)
    assert.equal("2 + 2 = 4.", output_text(final))
    assert.is_true(final.usage.output_tokens_details.reasoning_tokens > 0)
    assert.equal("auto", final.reasoning.summary)
    local seen = {}
    for _, e in ipairs(s.chunks) do seen[e.type] = (seen[e.type] or 0) + 1 end
    for _, t in ipairs { "response.reasoning_summary_part.added", "response.reasoning_summary_part.done",
                         "response.reasoning_summary_text.done" } do
      assert.equal(1, seen[t], t)
    end
    assert.is_true(seen["response.reasoning_summary_text.delta"] > 3)
    local detailed = create { model = "gpt-4o", input = "Hi", reasoning = { effort = "high", summary = "detailed" } }
    assert.equal(2, #detailed.output[1].summary)
    assert.same({ effort = "high", summary = "detailed" }, detailed.reasoning)
    assert.equal("message", create({ input = "Hi" }).output[1].type) -- no reasoning item otherwise
  end)

  it("calls function tools, streams their arguments, and answers from function_call_output", function ()
    local r = create { input = 'Call get_weather({"city":"Paris"}) and get_time please', tools = { WEATHER, TIME } }
    assert.equal(2, #r.output)
    local c1, c2 = r.output[1], r.output[2]
    assert.same({ type = "function_call", id = c1.id, call_id = c1.call_id, name = "get_weather",
      arguments = '{"city":"Paris"}', status = "completed" }, c1)
    assert.matches("^fc_", c1.id)
    assert.matches("^call_", c1.call_id)
    assert.equal("get_time", c2.name)
    assert.equal('{"zone":"sample zone"}', c2.arguments)
    local one = create { input = "get_weather and get_time", tools = { WEATHER, TIME }, parallel_tool_calls = false }
    assert.equal(1, #one.output)
    local forced = create { input = "Hello", tools = { WEATHER, TIME },
                            tool_choice = { type = "function", name = "get_time" } }
    assert.equal("get_time", forced.output[1].name)
    assert.equal("message", create({ input = "get_weather", tools = { WEATHER }, tool_choice = "none" }).output[1].type)
    local s = stream { input = 'get_weather({"city":"Lisbon, Portugal"})', tools = { WEATHER } }
    local acc = accumulate(s.chunks)
    assert.equal('{"city":"Lisbon, Portugal"}', acc.output[1].arguments)
    assert.same(acc.final.output, acc.output)
    local deltas = 0
    for _, e in ipairs(s.chunks) do
      if e.type == "response.function_call_arguments.delta" then deltas = deltas + 1; assert.is_true(#e.delta <= 8) end
      if e.type == "response.function_call_arguments.done" then assert.equal("get_weather", e.name) end
    end
    assert.is_true(deltas > 2)
    local follow = create { previous_response_id = r.id, tools = { WEATHER, TIME }, input = {
      { type = "function_call_output", call_id = c1.call_id, output = "18 C and sunny" },
      { type = "function_call_output", call_id = c2.call_id, output = "noon" } } }
    assert.equal("Here is what I found: 18 C and sunny; noon", output_text(follow))
  end)

  it("follows text.format json_schema and json_object", function ()
    local schema = { type = "object", properties = { answer = { type = "string" }, score = { type = "integer",
      minimum = 3 } }, required = { "answer", "score" }, additionalProperties = false }
    local r = create { input = "What is the capital of Italy?",
                       text = { format = { type = "json_schema", name = "a", schema = schema, strict = true } } }
    assert.same({ answer = "The capital of Italy is Rome.", score = 3 }, cjson.decode(output_text(r)))
    assert.equal("json_schema", r.text.format.type)
    local o = create { input = "Hello", text = { format = { type = "json_object" } } }
    assert.same({ reply = "Hello! How can I help you today?" }, cjson.decode(output_text(o)))
    local v = create({ input = "Hi", text = { format = { type = "json_schema", name = "a", schema = schema } } },
      { ["x-aigc-fault"] = "schema=violate" })
    local bad = cjson.decode(output_text(v))
    assert.is_nil(bad.answer)
    assert.is_true(bad.unexpected)
  end)

  it("keeps previous_response_id chains in memory: a 5-turn conversation", function ()
    local prev, tokens_before = nil, 0
    for turn = 1, 5 do
      local r = create { input = "Tell me about rivers", previous_response_id = prev }
      if turn == 1 then assert.matches('You asked: "Tell me about rivers"', output_text(r), 1, true)
      else assert.matches("turn " .. turn, output_text(r), 1, true) end
      assert.equal(prev or null, r.previous_response_id)
      assert.is_true(r.usage.input_tokens > tokens_before)
      tokens_before = r.usage.input_tokens
      prev = r.id
    end
    local missing = call("POST", "/v1/responses", { input = "Hi", previous_response_id = "resp_nope" })
    assert.equal(400, missing.status)
    assert.equal("previous_response_id", missing.json.error.param)
    local unstored = create { input = "Hi", store = false }
    assert.is_false(unstored.store)
    assert.equal(400, call("POST", "/v1/responses", { input = "Hi", previous_response_id = unstored.id }).status)
    -- previous_response_id "cannot be used in conjunction with conversation" (the spec)
    local both = call("POST", "/v1/responses", { input = "Hi", previous_response_id = prev, conversation = "conv_1" })
    assert.equal(400, both.status)
    assert.equal("mutually_exclusive_parameters", both.json.error.code)
    srv:reset() -- forgets them
    assert.equal(404, call("GET", "/v1/responses/" .. prev).status)
  end)

  it("follows a long previous_response_id chain in work linear in its length (each turn once)", function ()
    -- Each stored response kept a copy of its whole history: N turns kept N*(N+1) messages (40,200
    -- for 200 turns, 100 million for 10,000), and each turn read all those before it again. Now
    -- each keeps its own turn, input and reply (2 messages), and its chain's counts.
    local N, prev, ids, tokens_before = 200, nil, {}, 0
    for turn = 1, N do
      local r = create { input = "Tell me about rivers", previous_response_id = prev }
      assert.is_true(r.usage.input_tokens > tokens_before)   -- (the whole chain is still the input)
      tokens_before = r.usage.input_tokens
      prev, ids[turn] = r.id, r.id
    end
    assert.equal(2 * N, srv:stats().responses_messages_kept)
    assert.equal(0, srv:stats().responses_history_read)   -- (no turn read the ones before it)
    -- a response deleted inside the chain: the turns after it still see it, as before
    assert.equal(200, call("DELETE", "/v1/responses/" .. ids[N / 2]).status)
    assert.equal(2 * N - 2, srv:stats().responses_messages_kept)
    local last = create { input = "Tell me about rivers", previous_response_id = prev }
    assert.matches("turn " .. (N + 1), output_text(last), 1, true)
    assert.is_true(last.usage.input_tokens > tokens_before)
    assert.equal(0, srv:stats().responses_history_read)
    -- a json_object reply looks for a schema a message gave: it reads the chain, once
    local first = create { input = 'Use JSON schema: {"type":"object","properties":{"a":{"type":"integer"}},'
                                   .. '"required":["a"]}' }
    local obj = create { input = "Now give it", previous_response_id = first.id,
                         text = { format = { type = "json_object" } } }
    assert.same({ a = 1 }, cjson.decode(output_text(obj)))
    assert.equal(2, srv:stats().responses_history_read)
    srv:reset()
    assert.equal(0, srv:stats().responses_messages_kept)
  end)

  it("retrieves and deletes stored responses", function ()
    local r = create { input = "What is the capital of Spain?", metadata = { k = "v" } }
    local got = call("GET", "/v1/responses/" .. r.id)
    assert.equal(200, got.status)
    assert.same(r, got.json)
    local del = call("DELETE", "/v1/responses/" .. r.id)
    assert.same({ id = r.id, object = "response", deleted = true }, del.json)
    local gone = call("GET", "/v1/responses/" .. r.id)
    assert.equal(404, gone.status)
    assert.matches(r.id, gone.json.error.message, 1, true)
    assert.equal(404, call("DELETE", "/v1/responses/" .. r.id).status)
    assert.equal(405, call("PUT", "/v1/responses/" .. r.id, {}).status)
  end)

  it("runs background responses that can be cancelled", function ()
    local r = create { input = "Hi", background = true }
    assert.equal("queued", r.status)
    assert.is_true(r.background)
    assert.same({}, r.output)
    local done = raw.wait_until(function ()
      local g = call("GET", "/v1/responses/" .. r.id).json
      return g.status == "completed" and g
    end, 5)
    assert.equal("Hello! How can I help you today?", output_text(done))
    local c = create({ input = "Hi", background = true }, { ["x-aigc-fault"] = "pause=2000" })
    local cancelled = call("POST", "/v1/responses/" .. c.id .. "/cancel")
    assert.equal(200, cancelled.status)
    assert.equal("cancelled", cancelled.json.status)
    assert.equal("cancelled", call("GET", "/v1/responses/" .. c.id).json.status)
    assert.equal(200, call("POST", "/v1/responses/" .. c.id .. "/cancel").status) -- idempotent
    local fg = create { input = "Hi" }
    assert.equal(400, call("POST", "/v1/responses/" .. fg.id .. "/cancel").status)
    assert.equal(400, call("POST", "/v1/responses/" .. done.id .. "/cancel").status)
    assert.equal(400, call("POST", "/v1/responses", { input = "Hi", background = true, store = false }).status)
  end)

  it("keeps a background response's events: GET ?stream=true&starting_after=N replays those after N", function ()
    local live = stream { input = "Hi", background = true }   -- (a background response streamed as it is made)
    local id = live.chunks[1].response.id
    local function replay (query)
      local res = call("GET", "/v1/responses/" .. id .. query)
      local chunks = {}
      for _, ev in ipairs(raw.sse_events(res.body or "")) do chunks[#chunks + 1] = cjson.decode(ev.data) end
      return res, chunks
    end
    local all_res, all = replay "?stream=true"
    assert.equal(200, all_res.status)
    assert.matches("^text/event%-stream", all_res.headers["content-type"])
    assert.same(live.chunks, all)   -- the same events, numbers and ids as the live stream
    local _, after = replay "?stream=true&starting_after=3"
    assert.equal(#all - 4, #after)
    for i, e in ipairs(after) do assert.same(all[i + 4], e) end
    assert.equal("response.completed", after[#after].type)
    assert.same({}, select(2, replay("?stream=true&starting_after=" .. #all + 5)))   -- nothing after the end
    assert.equal(400, replay("?stream=true&starting_after=x").status)
    assert.equal(200, call("GET", "/v1/responses/" .. id .. "?stream=false").status)   -- the response itself
    assert.equal(404, call("GET", "/v1/responses/resp_nope?stream=true").status)
    local fg = create { input = "Hi" }
    assert.equal(400, call("GET", "/v1/responses/" .. fg.id .. "?stream=true").status)
    local c = create({ input = "Hi", background = true }, { ["x-aigc-fault"] = "pause=2000" })
    assert.equal(200, call("POST", "/v1/responses/" .. c.id .. "/cancel").status)
    local cancelled = call("GET", "/v1/responses/" .. c.id .. "?stream=true")
    assert.equal(400, cancelled.status)
    assert.matches("cancelled", cancelled.json.error.message)
  end)

  it("lists input items with ids, order, limit and after", function ()
    local input = {}
    for i = 1, 5 do input[i] = { role = "user", content = "message " .. i } end
    local r = create { input = input }
    local all = call("GET", "/v1/responses/" .. r.id .. "/input_items").json
    assert.equal("list", all.object)
    assert.equal(5, #all.data)
    assert.same({ { type = "input_text", text = "message 5" } }, all.data[1].content) -- desc by default
    assert.matches("^msg_", all.data[1].id)
    assert.equal("user", all.data[1].role)
    assert.equal(all.data[1].id, all.first_id)
    assert.equal(all.data[5].id, all.last_id)
    assert.is_false(all.has_more)
    local page = call("GET", "/v1/responses/" .. r.id .. "/input_items?order=asc&limit=2").json
    assert.same({ "message 1", "message 2" }, { page.data[1].content[1].text, page.data[2].content[1].text })
    assert.is_true(page.has_more)
    local nxt = call("GET", "/v1/responses/" .. r.id .. "/input_items?order=asc&limit=2&after=" .. page.last_id).json
    assert.equal("message 3", nxt.data[1].content[1].text)
    assert.equal(400, call("GET", "/v1/responses/" .. r.id .. "/input_items?limit=0").status)
  end)

  describe("faults", function ()
    local function sfault (spec, body)
      return stream(body or { input = "What is the capital of France?" }, { ["x-aigc-fault"] = spec })
    end
    local function numbers (s)
      local out = {}
      for i, c in ipairs(s.chunks) do out[i] = c.sequence_number end
      return out
    end

    it("seq-gap skips a sequence number; seq-disorder swaps two events", function ()
      local g = numbers(sfault "seq-gap")
      assert.same({ 0, 1, 2, 3, 5, 6 }, { table.unpack(g, 1, 6) })
      local d = sfault "seq-disorder"
      local n = numbers(d)
      assert.same({ 0, 1, 2, 3, 5, 4, 6 }, { table.unpack(n, 1, 7) })
      assert.equal("response.completed", d.chunks[#d.chunks].type)
    end)

    it("failed-mid sends response.failed after two deltas; truncate ends before response.completed", function ()
      local f = sfault "failed-mid"
      local last = f.chunks[#f.chunks]
      assert.equal("response.failed", last.type)
      assert.equal("failed", last.response.status)
      assert.same({ code = "server_error", message = "The server had an error while processing your request." },
        last.response.error)
      local deltas = 0
      for _, c in ipairs(f.chunks) do if c.type == "response.output_text.delta" then deltas = deltas + 1 end end
      assert.equal(2, deltas)
      assert.is_nil(f.err)
      local blocking = call("POST", "/v1/responses", { input = "Hi" }, { ["x-aigc-fault"] = "failed-mid" }).json
      assert.equal("failed", blocking.status)
      assert.equal("server_error", blocking.error.code)
      local t = sfault "truncate"
      assert.is_nil(t.err) -- the HTTP response itself ends properly
      assert.equal("response.output_item.done", t.chunks[#t.chunks].type)
    end)

    it("incomplete and max_output_tokens give status incomplete; refusal streams a refusal", function ()
      local i = sfault "incomplete"
      local last = i.chunks[#i.chunks]
      assert.equal("response.incomplete", last.type)
      assert.same({ reason = "max_output_tokens" }, last.response.incomplete_details)
      assert.equal("incomplete", last.response.output[1].status)
      assert.equal("The capital of", output_text(last.response))
      local r = sfault "refusal"
      local acc = accumulate(r.chunks)
      local part = acc.final.output[1].content[1]
      assert.same({ type = "refusal", refusal = "I'm sorry, but I can't help with that." }, part)
      assert.same(acc.final.output, acc.output)
      local seen = {}
      for _, c in ipairs(r.chunks) do seen[c.type] = true end
      assert.is_true(seen["response.refusal.delta"] and seen["response.refusal.done"])
      assert.is_nil(seen["response.output_text.delta"])
    end)

    it("error-event, echo-key and the transport faults apply to Responses streams", function ()
      local e = sfault "error-event"
      assert.equal(3, #e.events)
      assert.equal("error", e.events[3].event)
      assert.same({ type = "error", code = "server_error", message = "The server had an error while processing "
        .. "your request.", param = null, sequence_number = 2 }, e.chunks[3])
      local key = sfault("echo-key", nil)
      assert.equal("error", key.events[2].event)
      local k = stream({ input = "Hi" }, { ["x-aigc-fault"] = "echo-key", Authorization = "Bearer sk-abc" })
      assert.equal("sk-abc", k.chunks[2].details.key)
      local drop = sfault "drop-after=4"
      assert.equal(4, #drop.events)
      assert.equal("closed", drop.err)
      local crlf = sfault "crlf"
      assert.is_nil(crlf.body:find("[^\r]\n"))
      assert.equal("response.completed", crlf.chunks[#crlf.chunks].type)
      assert.equal(503, call("POST", "/v1/responses", { input = "Hi" }, { ["x-aigc-fault"] = "status=503" }).status)
    end)

    it("tokenizer=words2 (fault or --tokenizer) counts 2 per word and 3 per message", function ()
      local input = { { role = "user", content = "one two three" }, { role = "assistant", content = "four five" },
                      { role = "user", content = "Echo: six" } }
      local w = call("POST", "/v1/responses", { input = input }, { ["x-aigc-fault"] = "tokenizer=words2" }).json
      assert.equal(2 * (3 + 2 + 2) + 3 * 3, w.usage.input_tokens)
      assert.equal(2, w.usage.output_tokens) -- "six": one word
      local plain = create { input = input }
      assert.equal(3 + 2 + 2 + 4 * 3, plain.usage.input_tokens)
      local c = call("POST", "/v1/chat/completions", { messages = input }, { ["x-aigc-fault"] = "tokenizer=words2" })
      assert.equal(2 * 7 + 3 * 3, c.json.usage.prompt_tokens)
      assert.equal(2, c.json.usage.completion_tokens)
      local s2 = devserver.start { args = { "--tokenizer", "words2" } }
      local r2 = raw.call(s2.port, "POST", "/v1/responses", { input = input }).json
      s2:stop()
      assert.equal(2 * 7 + 3 * 3, r2.usage.input_tokens)
      assert.equal(400, call("POST", "/v1/responses", { input = "Hi" }, { ["x-aigc-fault"] = "tokenizer=chars" })
        .status)
    end)
  end)

  it("records the request and never returns undecodable JSON", function ()
    local s = stream { input = "Hello" }
    assert.is_true(#s.events > 2, "too few events to check")
    for _, ev in ipairs(s.events) do assert.truthy(safe.decode(ev.data)) end
    assert.is_true(srv:last().stream)
    assert.equal("Hello", srv:last().body_json.input)
  end)
end)
