-- The Responses API against another server's streams: what a one-shot
-- server sends (events the bundled server never makes) as a user of the
-- official SDKs meets them -- incomplete responses cut by a content filter
-- or by max_output_tokens in the middle of a tool call, text that comes
-- with the done events alone, events named by their SSE event line alone,
-- events after the last one, a proxy's {"error": {...}} in the stream.
local aigc = require "aigc"

local A = aigc.array

-- A one-shot server answering with the SSE body given (spec/support/oneshot.lua);
-- `linger`: seconds it keeps the response open after the body.
local function canned_client (sse_body, linger)
  return require("oneshot").sse_client(aigc, sse_body, linger, { model = "m" })
end

-- The SSE body of a list of events (each a table with its `type`), numbered from 0.
local sse = require("sse").numbered

-- A response object with `status` and `output`.
local function response (status, output, reason)
  return { id = "resp_1", object = "response", created_at = 1, model = "m", status = status,
           output = output or A {}, incomplete_details = reason and { reason = reason } or aigc.null }
end

-- The events of a response whose one output item is `item`, given whole,
-- ending with `last` (response.completed or response.incomplete).
local function one_item_stream (item, status, reason)
  return sse {
    { type = "response.created", response = response("in_progress") },
    { type = "response.output_item.added", output_index = 0, item = item },
    { type = "response.output_item.done", output_index = 0, item = item },
    { type = "response." .. status, response = response(status, { item }, reason) },
  }
end

local ANSWER = { type = "object", properties = { answer = { type = "string" } }, required = { "answer" },
                 additionalProperties = false }

describe("Responses API: other servers' incomplete responses", function ()
  local stop
  after_each(function () if stop then stop(); stop = nil end end)

  it("a structured response cut by the content filter says so, not 'raise max_output_tokens'", function ()
    local item = { id = "msg_1", type = "message", role = "assistant", status = "incomplete",
                   content = { { type = "output_text", text = '{"answer": "Th', annotations = A {} } } }
    local c
    c, stop = canned_client(one_item_stream(item, "incomplete", "content_filter"))
    local res, err = c:respond { input = "x", schema = ANSWER, stream = function () end }
    assert.is_nil(res)
    assert.equal("incomplete", err.kind)
    assert.equal("content_filter", err.reason)
    assert.matches("content filter", err.message, 1, true)
    assert.not_matches("max_output_tokens", err.message, 1, true)
  end)

  it("a tool call cut by max_output_tokens names max_output_tokens, the Responses API's parameter", function ()
    local item = { id = "fc_1", type = "function_call", status = "incomplete", call_id = "call_1",
                   name = "get_weather", arguments = '{"ci' }
    local c
    c, stop = canned_client(one_item_stream(item, "incomplete", "max_output_tokens"))
    local ran = false
    local tools = aigc.tools { { name = "get_weather", parameters = { type = "object" },
                                 fn = function () ran = true; return "sunny" end } }
    local res, err = c:respond { input = "x", tools = tools, max_output_tokens = 16, stream = function () end }
    assert.is_nil(res)
    assert.is_false(ran)
    assert.equal("incomplete", err.kind)
    assert.equal("max_output_tokens", err.reason)
    assert.matches("raise max_output_tokens", err.message, 1, true)
  end)
end)

describe("Responses API: other servers' streams", function ()
  local stop
  after_each(function () if stop then stop(); stop = nil end end)

  -- A server that adds a part empty and sends its text with output_item.done
  -- alone (no delta, no output_text.done or content_part.done): the SDKs'
  -- result, response.completed's, has the text; so must aigc's.
  it("a part added empty whose text comes with output_item.done alone has that text", function ()
    local added = { id = "msg_1", type = "message", role = "assistant", status = "in_progress", content = A {} }
    local done = { id = "msg_1", type = "message", role = "assistant", status = "completed",
                   content = { { type = "output_text", text = "Paris.", annotations = A {} } } }
    local c
    c, stop = canned_client(sse {
      { type = "response.created", response = response("in_progress") },
      { type = "response.output_item.added", output_index = 0, item = added },
      { type = "response.content_part.added", item_id = "msg_1", output_index = 0, content_index = 0,
        part = { type = "output_text", text = "", annotations = A {} } },
      { type = "response.output_item.done", output_index = 0, item = done },
      { type = "response.completed", response = response("completed", { done }) },
    })
    local res = assert(c:respond { input = "x", stream = function () end })
    assert.equal("Paris.", res.text)
    assert.equal("Paris.", res.output[1].content[1].text)
    assert.equal("completed", res.output[1].status)
  end)

  -- The accumulator takes an event's type from its SSE `event:` line when
  -- its data has no "type" member; the callback's text deltas follow it,
  -- so that what a stream shows is res.text (the events stay as sent).
  it("events named only by their SSE event line give their text deltas to the callback and the iterator", function ()
    local named = {
      { "response.created", { response = response("in_progress") } },
      { "response.output_text.delta", { output_index = 0, content_index = 0, delta = "Par" } },
      { "response.output_text.delta", { output_index = 0, content_index = 0, delta = "is." } },
      { "response.completed", { response = response("completed") } },
    }
    local t = {}
    for _, e in ipairs(named) do t[#t + 1] = "event: " .. e[1] .. "\ndata: " .. aigc.json.encode(e[2]) .. "\n\n" end
    local c
    c, stop = canned_client(table.concat(t))
    local deltas, events = {}, 0
    local res = assert(c:respond { input = "x", stream = function (delta, event)
      deltas[#deltas + 1] = delta
      events = events + 1
      assert.is_nil(event.type)
    end })
    assert.equal("Paris.", res.text)
    assert.same({ "Par", "is." }, deltas)
    assert.equal(4, events)
    stop()
    c, stop = canned_client(table.concat(t))
    local shown = {}
    for delta in c:stream_response { input = "x" } do shown[#shown + 1] = delta end
    assert.equal("Paris.", table.concat(shown))
  end)

  -- response.completed is the end, as [DONE] is chat's: the SDKs take the
  -- response from it; an event after it (a server's trailing error, a
  -- stray delta) neither reaches the callback nor changes the result.
  it("nothing after response.completed counts: neither a late delta nor a late error event", function ()
    local text = { id = "msg_1", type = "message", role = "assistant", status = "completed",
                   content = { { type = "output_text", text = "Paris.", annotations = A {} } } }
    local c
    c, stop = canned_client(sse {
      { type = "response.created", response = response("in_progress") },
      { type = "response.output_text.delta", output_index = 0, content_index = 0, delta = "Paris." },
      { type = "response.completed", response = response("completed", { text }) },
      { type = "response.output_text.delta", output_index = 0, content_index = 0, delta = " LATE" },
      { type = "error", code = "server_error", message = "late" },
    })
    local types = {}
    local res, err = c:respond { input = "x", stream = function (_, event) types[#types + 1] = event.type end }
    assert.is_nil(err)
    assert.equal("Paris.", res.text)
    assert.equal("completed", res.status)
    assert.same({ "response.created", "response.output_text.delta", "response.completed" }, types)
  end)

  -- The same end for a server that names its events in their data alone
  -- (no `event:` line, which the accumulator reads as well): with the
  -- response left open after response.completed, the call waited for the
  -- idle timeout and failed with kind "timeout" holding a whole response.
  it("a response.completed named in its data alone ends the stream too, and nothing after it counts", function ()
    local text = { id = "msg_1", type = "message", role = "assistant", status = "completed",
                   content = { { type = "output_text", text = "ok", annotations = A {} } } }
    local events = {
      { type = "response.created", response = response("in_progress") },
      { type = "response.output_text.delta", output_index = 0, content_index = 0, delta = "ok" },
      { type = "response.completed", response = response("completed", { text }) },
      { type = "error", code = "server_error", message = "late" },
    }
    local t = {}
    for i, e in ipairs(events) do
      e.sequence_number = i - 1
      t[#t + 1] = "data: " .. aigc.json.encode(e) .. "\n\n"
    end
    local c
    c, stop = canned_client(table.concat(t), 60)
    local res, err = c:respond { input = "x", stream = function () end, timeout = 20 }
    assert.is_nil(err)
    assert.equal("ok", res.text)
    assert.equal("completed", res.status)
  end)

  -- A proxy (OpenRouter, LiteLLM...) reports a failure mid-stream as chat
  -- streams do, {"error": {...}} with no type: no event of the Responses
  -- API has an "error" member, so it fails the call with the server's
  -- message, as in a chat stream, not "ended before response.completed".
  it("an untyped {error = {...}} event fails the call with the server's message and code", function ()
    local c
    c, stop = canned_client(sse {
      { type = "response.created", response = response("in_progress") },
      { type = "response.output_text.delta", output_index = 0, content_index = 0, delta = "Par" },
    } .. 'data: {"error":{"message":"Upstream provider overloaded","code":502,"type":"server_error"}}\n\n')
    local res, err = c:respond { input = "x", stream = function () end }
    assert.is_nil(res)
    assert.equal("api", err.kind)
    assert.equal("Upstream provider overloaded", err.message)
    assert.equal(502, err.code)
    assert.equal("server_error", err.type)
    assert.equal("Par", err.partial.output[1].content[1].text)
  end)
end)
