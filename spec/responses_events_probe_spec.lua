-- The Responses API's stream events, every kind the current API sends
-- (openapi.yaml, ResponseStreamEvent), as another server sends them over
-- real HTTP on loopback (a one-shot server, spec/support/oneshot.lua): what
-- the stream callback sees, what `res` (or `err.partial`) holds at the end.
local aigc = require "aigc"

local A = aigc.array

local function canned_client (sse_body)
  return require("oneshot").sse_client(aigc, sse_body, nil, { model = "m" })
end

-- The SSE body of a list of events (each a table with its `type`),
-- numbered from 0 unless they carry their own sequence_number.
local function sse (events)
  local t = {}
  for i, e in ipairs(events) do
    if e.sequence_number == nil then e.sequence_number = i - 1 end
    t[#t + 1] = "event: " .. e.type .. "\ndata: " .. aigc.json.encode(e) .. "\n\n"
  end
  return table.concat(t)
end

-- A response object with `status` and `output`.
local function response (status, output)
  return { id = "resp_1", object = "response", created_at = 1, model = "m", status = status,
           output = output or A {}, incomplete_details = aigc.null }
end

local MSG = { id = "msg_1", type = "message", role = "assistant", status = "completed",
              content = { { type = "output_text", text = "Paris.", annotations = A {} } } }

-- The events of a message "Paris." at output_index 0, with `between`
-- inserted after its first delta.
local function text_stream (between)
  local events = {
    { type = "response.created", response = response("in_progress") },
    { type = "response.output_text.delta", item_id = "msg_1", output_index = 0, content_index = 0, delta = "Par" },
  }
  for _, e in ipairs(between) do events[#events + 1] = e end
  events[#events + 1] = { type = "response.output_text.delta", item_id = "msg_1", output_index = 0,
                          content_index = 0, delta = "is." }
  events[#events + 1] = { type = "response.completed", response = response("completed", { MSG }) }
  return sse(events)
end

describe("Responses API: stream events", function ()
  local stop
  after_each(function () if stop then stop(); stop = nil end end)

  -- A typed event of a later API version may well carry an "error" member
  -- (a hosted tool's failure, say): the check meant for a proxy's untyped
  -- {"error": {...}} took it for the server's error and failed a stream
  -- that then completed.
  it("an unknown response.* event with an error member reaches the callback and fails nothing", function ()
    local c
    c, stop = canned_client(text_stream {
      { type = "response.future_tool_call.failed", item_id = "ft_1", output_index = 1,
        error = { code = "tool_error", message = "the tool failed" } },
    })
    local types = {}
    local res, err = c:respond { input = "x", stream = function (_, event) types[#types + 1] = event.type end }
    assert.is_nil(err)
    assert.equal("Paris.", res.text)
    assert.equal("completed", res.status)
    assert.same({ "response.created", "response.output_text.delta", "response.future_tool_call.failed",
                  "response.output_text.delta", "response.completed" }, types)
  end)

  for _, name in ipairs { "response.failed", "response.error" } do
    it("a " .. name .. " whose error is at the top (no response) still fails with the server's message", function ()
      local c
      c, stop = canned_client(text_stream {
        { type = name, error = { code = "server_error", message = "Upstream broke" } },
      })
      local res, err = c:respond { input = "x", stream = function () end }
      assert.is_nil(res)
      assert.equal("api", err.kind)
      assert.equal("Upstream broke", err.message)
      assert.equal("server_error", err.code)
    end)
  end

  -- A custom tool call's input, a code interpreter call's code and an MCP
  -- call's arguments stream as deltas, as a function call's arguments do:
  -- they were dropped, so a stream cut before the items' done events left
  -- them "" in err.partial (the function call's arguments were there).
  local function tool_deltas (announce)
    local events = { { type = "response.created", response = response("in_progress") } }
    local function add (e) events[#events + 1] = e end
    if announce then
      add { type = "response.output_item.added", output_index = 0,
            item = { id = "ctc_1", type = "custom_tool_call", call_id = "call_1", name = "run", input = "" } }
    end
    add { type = "response.custom_tool_call_input.delta", item_id = "ctc_1", output_index = 0, delta = "print(" }
    add { type = "response.custom_tool_call_input.delta", item_id = "ctc_1", output_index = 0, delta = "1)" }
    if announce then
      add { type = "response.output_item.added", output_index = 1,
            item = { id = "ci_1", type = "code_interpreter_call", status = "in_progress", code = aigc.null,
                     container_id = "cntr_1", outputs = aigc.null } }
    end
    add { type = "response.code_interpreter_call_code.delta", item_id = "ci_1", output_index = 1, delta = "x = " }
    add { type = "response.code_interpreter_call_code.delta", item_id = "ci_1", output_index = 1, delta = "6 * 7" }
    if announce then
      add { type = "response.output_item.added", output_index = 2,
            item = { id = "mcp_1", type = "mcp_call", server_label = "wiki", name = "search", arguments = "" } }
    end
    add { type = "response.mcp_call_arguments.delta", item_id = "mcp_1", output_index = 2, delta = '{"q":' }
    add { type = "response.mcp_call_arguments.delta", item_id = "mcp_1", output_index = 2, delta = '"Lua"}' }
    return events
  end

  for _, announce in ipairs { true, false } do
    it("a stream cut mid-call keeps the custom tool input, code and MCP arguments streamed so far"
       .. (announce and "" or " (items never announced)"), function ()
      local c
      c, stop = canned_client(sse(tool_deltas(announce)))
      local res, err = c:respond { input = "x", stream = function () end }
      assert.is_nil(res)
      assert.equal("stream", err.kind)
      local out = err.partial.output
      assert.equal("custom_tool_call", out[1].type)
      assert.equal("print(1)", out[1].input)
      assert.equal("code_interpreter_call", out[2].type)
      assert.equal("x = 6 * 7", out[2].code)
      assert.equal("mcp_call", out[3].type)
      assert.equal('{"q":"Lua"}', out[3].arguments)
      if announce then
        assert.equal("run", out[1].name)
        assert.equal("cntr_1", out[2].container_id)
        assert.equal("wiki", out[3].server_label)
      end
    end)
  end

  it("their done events give the whole text when no delta came, and the result is response.completed's", function ()
    local ctc = { id = "ctc_1", type = "custom_tool_call", call_id = "call_1", name = "run", input = "print(1)" }
    local ci = { id = "ci_1", type = "code_interpreter_call", status = "completed", code = "x = 6 * 7",
                 container_id = "cntr_1", outputs = A {} }
    local mcp = { id = "mcp_1", type = "mcp_call", server_label = "wiki", name = "search",
                  arguments = '{"q":"Lua"}', output = "Lua is a language." }
    local events = tool_deltas(true)
    events[#events + 1] = { type = "response.custom_tool_call_input.done", item_id = "ctc_1", output_index = 0,
                            input = "print(1)" }
    events[#events + 1] = { type = "response.code_interpreter_call_code.done", item_id = "ci_1", output_index = 1,
                            code = "x = 6 * 7" }
    events[#events + 1] = { type = "response.mcp_call_arguments.done", item_id = "mcp_1", output_index = 2,
                            arguments = '{"q":"Lua"}' }
    for i, item in ipairs { ctc, ci, mcp } do
      events[#events + 1] = { type = "response.output_item.done", output_index = i - 1, item = item }
    end
    events[#events + 1] = { type = "response.completed", response = response("completed", { ctc, ci, mcp }) }
    local c
    c, stop = canned_client(sse(events))
    local res = assert(c:respond { input = "x", stream = function () end })
    assert.same(aigc.json.decode(aigc.json.encode { ctc, ci, mcp }), aigc.json.decode(aigc.json.encode(res.output)))
    stop()
    -- the done events alone (a server that sends no delta): cut before the items' done
    c, stop = canned_client(sse {
      { type = "response.created", response = response("in_progress") },
      { type = "response.custom_tool_call_input.done", item_id = "ctc_1", output_index = 0, input = "print(1)" },
      { type = "response.code_interpreter_call_code.done", item_id = "ci_1", output_index = 1, code = "x = 6 * 7" },
      { type = "response.mcp_call_arguments.done", item_id = "mcp_1", output_index = 2, arguments = '{"q":"Lua"}' },
    })
    local _, err = c:respond { input = "x", stream = function () end }
    assert.equal("print(1)", err.partial.output[1].input)
    assert.equal("x = 6 * 7", err.partial.output[2].code)
    assert.equal('{"q":"Lua"}', err.partial.output[3].arguments)
  end)

  -- A server that announces no item (no output_item.added) before a
  -- reasoning_text part: the item made for the part was a "message",
  -- so err.partial showed the model's reasoning as a message.
  it("a reasoning_text part of an item never announced makes a reasoning item, a refusal part a message", function ()
    local c
    c, stop = canned_client(sse {
      { type = "response.created", response = response("in_progress") },
      { type = "response.content_part.added", item_id = "rs_1", output_index = 0, content_index = 0,
        part = { type = "reasoning_text", text = "" } },
      { type = "response.reasoning_text.delta", item_id = "rs_1", output_index = 0, content_index = 0,
        delta = "Paris is the capital." },
      { type = "response.content_part.added", item_id = "msg_1", output_index = 1, content_index = 0,
        part = { type = "refusal", refusal = "" } },
      { type = "response.refusal.delta", item_id = "msg_1", output_index = 1, content_index = 0, delta = "No." },
    })
    local _, err = c:respond { input = "x", stream = function () end }
    assert.equal("stream", err.kind)
    local out = err.partial.output
    assert.equal("reasoning", out[1].type)
    assert.same({ { type = "reasoning_text", text = "Paris is the capital." } }, out[1].content)
    assert.equal("message", out[2].type)
    assert.same({ { type = "refusal", refusal = "No." } }, out[2].content)
  end)

  -- An event sent twice (a proxy's replay) would add its delta twice: the
  -- stream fails, kind "stream", but the message said "out of order" of
  -- events that were in order.
  it("an event repeated with its sequence_number fails the stream saying so, with the text so far", function ()
    local c
    c, stop = canned_client(sse {
      { type = "response.created", response = response("in_progress"), sequence_number = 0 },
      { type = "response.output_text.delta", item_id = "msg_1", output_index = 0, content_index = 0,
        delta = "Par", sequence_number = 1 },
      { type = "response.output_text.delta", item_id = "msg_1", output_index = 0, content_index = 0,
        delta = "Par", sequence_number = 1 },
    })
    local _, err = c:respond { input = "x", stream = function () end }
    assert.equal("stream", err.kind)
    assert.matches("sequence_number 1 came after 1 (an event repeated)", err.message, 1, true)
    assert.equal("Par", err.partial.output[1].content[1].text)
  end)
end)

describe("Responses API: a malformed stream event", function ()
  local stop
  after_each(function () if stop then stop(); stop = nil end end)

  -- The error named the field and not the event (of the dozens of types a
  -- stream mixes, which one a proxy got wrong); the type is the server's
  -- text, so it is bounded and scrubbed as a server's message is.
  it("fails naming the event's type", function ()
    local c
    c, stop = require("oneshot").sse_client(aigc, sse {
      { type = "response.created", response = response("in_progress") },
      { type = "response.output_text.delta", item_id = "msg_1", output_index = 0, content_index = 0, delta = "Par" },
      { type = "response.output_text.delta", item_id = "msg_1", output_index = 0, delta = "is." },
    }, nil, { model = "m" })
    local res, err = c:respond { input = "x", stream = function () end }
    assert.is_nil(res)
    assert.equal("parse", err.kind)
    assert.matches("(response.output_text.delta): content_index is missing", err.message, 1, true)
    assert.equal("Par", err.partial.output[1].content[1].text)
  end)

  it("a sequence error names the event's type too, scrubbed of the key", function ()
    local key = "sk-probe" .. string.rep("Z", 24)
    for _, t in ipairs { "response.output_text.delta", "response.later_thing " .. key } do
      local c
      c, stop = require("oneshot").sse_client(aigc, sse {
        { type = "response.created", response = response("in_progress"), sequence_number = 0 },
        { type = t, item_id = "msg_1", output_index = 0, content_index = 0, delta = "Par", sequence_number = 2 },
      }, nil, { model = "m", api_key = key })
      local _, err = c:respond { input = "x", stream = function () end }
      stop(); stop = nil
      assert.equal("stream", err.kind)
      assert.not_matches(key, tostring(err), 1, true)
      if t == "response.output_text.delta" then
        assert.matches("(response.output_text.delta): sequence_number 2 came after 0", err.message, 1, true)
      else
        assert.matches("(response.later_thing [redacted]): sequence_number 2 came after 0", err.message, 1, true)
      end
    end
  end)
end)

describe("Responses API: the bundled server", function ()
  local srv, c
  setup(function ()
    srv = require("devserver").start { pause_ms = 0 }
    c = aigc.client { base_url = srv.base_url, model = "m", max_retries = 0 }
  end)
  teardown(function () c:close(); srv:stop() end)

  -- A function_call_output's output may be a list of input_text parts (the
  -- API's other form): the server answered with their JSON, not their text.
  it("a tool output given as input_text parts is read as its text, streamed or not", function ()
    local input = {
      { role = "user", content = "What is the weather?" },
      { type = "function_call", call_id = "call_1", name = "get_weather", arguments = "{}" },
      { type = "function_call_output", call_id = "call_1",
        output = { { type = "input_text", text = "sunny" }, { type = "input_text", text = "21 C" } } },
    }
    local res = assert(c:respond { input = input })
    assert.equal("Here is what I found: sunny 21 C", res.text)
    local deltas = {}
    local streamed = assert(c:respond { input = input, stream = function (d) deltas[#deltas + 1] = d end })
    assert.equal(res.text, streamed.text)
    assert.equal(res.text, table.concat(deltas))
  end)

  -- A stream the server failed midway (fault failed-mid: response.failed)
  -- was stored as "completed" with that error beside it: GET
  -- /responses/{id} contradicted the stream it had sent.
  it("a response whose stream failed midway is stored as failed", function ()
    local devserver = require "devserver"
    local id
    local res, err = c:respond { input = "Hi", headers = { ["x-aigc-fault"] = "failed-mid" },
                                 stream = function (_, ev) if ev.response then id = ev.response.id end end }
    assert.is_nil(res)
    assert.equal("api", err.kind)
    assert.equal("failed", err.partial.status)
    local body, status = devserver.http("GET", srv.base_url .. "/responses/" .. id)
    assert.equal(200, status)
    local stored = aigc.json.decode(body)
    assert.equal("failed", stored.status)
    assert.equal("server_error", stored.error.code)
    assert.equal(0, #stored.output)
  end)
end)

