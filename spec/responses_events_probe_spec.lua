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

  it("a response.failed whose error is at the top (no response) still fails with the server's message", function ()
    local c
    c, stop = canned_client(text_stream {
      { type = "response.failed", error = { code = "server_error", message = "Upstream broke" } },
    })
    local res, err = c:respond { input = "x", stream = function () end }
    assert.is_nil(res)
    assert.equal("api", err.kind)
    assert.equal("Upstream broke", err.message)
    assert.equal("server_error", err.code)
  end)
end)
