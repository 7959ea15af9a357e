-- The Responses API's stream and stored results, second round: the shell
-- tool's streamed commands and output, the API's failure events reaching
-- the stream callback (as the SDKs' iterators yield them), servers that do
-- not count their events, a stored failed response retrieved. Over real
-- HTTP on loopback: a one-shot server (spec/support/oneshot.lua) for
-- another server's events, the bundled server for stored responses.
local aigc = require "aigc"
local devserver = require "devserver"

local A = aigc.array

local function canned_client (sse_body)
  return require("oneshot").sse_client(aigc, sse_body, nil, { model = "m" })
end

-- The SSE body of a list of events (each a table with its `type`),
-- numbered from 0 unless they carry their own sequence_number (false:
-- none).
local function sse (events)
  local t = {}
  for i, e in ipairs(events) do
    if e.sequence_number == nil then e.sequence_number = i - 1 end
    if e.sequence_number == false then e.sequence_number = nil end
    t[#t + 1] = "event: " .. e.type .. "\ndata: " .. aigc.json.encode(e) .. "\n\n"
  end
  return table.concat(t)
end

local function response (status, output, err)
  return { id = "resp_1", object = "response", created_at = 1, model = "m", status = status,
           output = output or A {}, incomplete_details = aigc.null, error = err or aigc.null }
end

local MSG = { id = "msg_1", type = "message", role = "assistant", status = "completed",
              content = { { type = "output_text", text = "Paris.", annotations = A {} } } }

local function text_events ()
  return {
    { type = "response.created", response = response("in_progress") },
    { type = "response.output_text.delta", item_id = "msg_1", output_index = 0, content_index = 0, delta = "Par" },
    { type = "response.output_text.delta", item_id = "msg_1", output_index = 0, content_index = 0, delta = "is." },
  }
end

describe("Responses API: more of the stream", function ()
  local stop
  after_each(function () if stop then stop(); stop = nil end end)

  -- The shell tool's events (openapi.yaml: response.shell_call_command.*,
  -- response.shell_call_output_content.delta) were unknown to the
  -- accumulator: a stream cut before the items' done events lost the
  -- commands and the output in err.partial.
  it("a cut stream keeps a shell call's streamed commands and output in err.partial", function ()
    local c
    c, stop = canned_client(sse {
      { type = "response.created", response = response("in_progress") },
      { type = "response.output_item.added", output_index = 0,
        item = { id = "sh_1", type = "shell_call", call_id = "call_1", status = "in_progress",
                 action = { commands = A {}, timeout_ms = aigc.null, max_output_length = aigc.null } } },
      { type = "response.shell_call_command.added", output_index = 0, command_index = 0, command = "" },
      { type = "response.shell_call_command.delta", output_index = 0, command_index = 0, delta = "ls " },
      { type = "response.shell_call_command.delta", output_index = 0, command_index = 0, delta = "-l" },
      { type = "response.shell_call_command.done", output_index = 0, command_index = 0, command = "ls -l" },
      { type = "response.shell_call_command.added", output_index = 0, command_index = 1, command = "" },
      { type = "response.shell_call_command.delta", output_index = 0, command_index = 1, delta = "pw" },
      { type = "response.shell_call_output_content.delta", item_id = "sho_1", output_index = 1,
        command_index = 0, delta = { stdout = "total 0\n" } },
      { type = "response.shell_call_output_content.delta", item_id = "sho_1", output_index = 1,
        command_index = 0, delta = { stderr = "ls: warning" } },
    })
    local types = {}
    local res, err = c:respond { input = "x", stream = function (_, e) types[#types + 1] = e.type end }
    assert.is_nil(res)
    assert.equal("stream", err.kind)
    assert.equal(10, #types)   -- (every event reached the callback)
    local call = err.partial.output[1]
    assert.equal("shell_call", call.type)
    assert.equal("call_1", call.call_id)
    assert.same({ "ls -l", "pw" }, call.action.commands)
    local out = err.partial.output[2]
    assert.equal("shell_call_output", out.type)
    assert.same({ { stdout = "total 0\n", stderr = "ls: warning" } }, out.output)
  end)

  it("a shell call's command with no delta takes its done event's text; the completed response wins", function ()
    local item = { id = "sh_1", type = "shell_call", call_id = "call_1", status = "completed",
                   action = { commands = { "pwd" }, timeout_ms = aigc.null, max_output_length = aigc.null } }
    local c
    c, stop = canned_client(sse {
      { type = "response.created", response = response("in_progress") },
      { type = "response.shell_call_command.done", output_index = 0, command_index = 0, command = "pwd" },
      { type = "response.output_item.done", output_index = 0, item = item },
      { type = "response.completed", response = response("completed", { item }) },
    })
    local res = assert(c:respond { input = "x", stream = function () end })
    assert.same({ "pwd" }, res.output[1].action.commands)
    assert.equal("call_1", res.output[1].call_id)
  end)

  -- The API's own failure events are events of the stream: the SDKs'
  -- iterators yield them, then raise. The callback never saw them, so a
  -- UI that shows every event (or logs them) lost the one saying why.
  for _, case in ipairs {
    { "error", { type = "error", code = "rate_limit_exceeded", message = "Slow down", param = aigc.null } },
    { "response.failed", { type = "response.failed",
        response = response("failed", nil, { code = "server_error", message = "Slow down" }) } },
  } do
    local name, event = case[1], case[2]
    it("a " .. name .. " event reaches the callback before the call fails with its error", function ()
      local events = text_events()
      events[#events + 1] = event
      local c
      c, stop = canned_client(sse(events))
      local seen = {}
      local res, err = c:respond { input = "x", stream = function (delta, e)
        seen[#seen + 1] = e.type
        if e.type == name then assert.is_nil(delta) end
      end }
      assert.is_nil(res)
      assert.equal("api", err.kind)
      assert.equal("Slow down", err.message)
      assert.equal("Par" .. "is.", err.partial.output[1].content[1].text)
      assert.same({ "response.created", "response.output_text.delta", "response.output_text.delta", name }, seen)
    end)
  end

  it("the iterator yields the error event, then raises its error", function ()
    local events = text_events()
    events[#events + 1] = { type = "error", code = "server_error", message = "It broke", param = aigc.null }
    local c
    c, stop = canned_client(sse(events))
    local s = c:stream_response { input = "x" }
    local seen = {}
    local ok, err = pcall(function ()
      for _, e in s:deltas() do seen[#seen + 1] = e.type end
    end)
    assert.is_false(ok)
    assert.equal("api", err.kind)
    assert.equal("It broke", err.message)
    assert.equal("error", seen[#seen])
  end)

  it("a callback that raises on the error event: its error is the call's", function ()
    local events = text_events()
    events[#events + 1] = { type = "error", code = "server_error", message = "It broke", param = aigc.null }
    local c
    c, stop = canned_client(sse(events))
    local res, err = c:respond { input = "x", stream = function (_, e)
      if e.type == "error" then error("callback saw it") end
    end }
    assert.is_nil(res)
    assert.equal("callback", err.kind)
    assert.matches("callback saw it", err.message, 1, true)
  end)

  it("a callback that cancels on the error event: the request ends canceled, on_error once with that", function ()
    local events = text_events()
    events[#events + 1] = { type = "error", code = "server_error", message = "It broke", param = aigc.null }
    local c
    c, stop = canned_client(sse(events))
    local req, seen, errors = nil, {}, {}
    req = c:respond_async { input = "x", on_error = function (e) errors[#errors + 1] = e.kind end,
      stream = function (_, e)
        seen[#seen + 1] = e.type
        if e.type == "error" then req:cancel() end
      end }
    local res, err = req:wait()
    assert.is_nil(res)
    assert.equal("canceled", err.kind)
    assert.equal("canceled", req:status())
    assert.same({ "canceled" }, errors)   -- (not the server's error too: exactly one end)
    assert.equal("error", seen[#seen])
  end)

  -- sequence_number: LiteLLM's synthesized streams serialize 0 on every
  -- event; gateways (sub2api) number the response.failed they make up 0.
  -- The SDKs do not check the numbers; aigc failed such a stream.
  it("a server numbering every event 0 streams fine", function ()
    local events = text_events()
    events[#events + 1] = { type = "response.completed", response = response("completed", { MSG }) }
    for _, e in ipairs(events) do e.sequence_number = 0 end
    local c
    c, stop = canned_client(sse(events))
    local res, err = c:respond { input = "x", stream = function () end }
    assert.is_nil(err)
    assert.equal("Paris.", res.text)
  end)

  it("a server numbering no event streams fine", function ()
    local events = text_events()
    events[#events + 1] = { type = "response.completed", response = response("completed", { MSG }) }
    for _, e in ipairs(events) do e.sequence_number = false end
    local c
    c, stop = canned_client(sse(events))
    local res, err = c:respond { input = "x", stream = function () end }
    assert.is_nil(err)
    assert.equal("Paris.", res.text)
  end)

  it("a response.failed numbered 0 after counted events reports the server's error, not the order", function ()
    local events = text_events()
    events[#events + 1] = { type = "response.failed", sequence_number = 0,
                            response = response("failed", nil, { code = "server_error", message = "Upstream gone" }) }
    local c
    c, stop = canned_client(sse(events))
    local res, err = c:respond { input = "x", stream = function () end }
    assert.is_nil(res)
    assert.equal("api", err.kind)
    assert.equal("Upstream gone", err.message)
  end)

  it("a server that counts is still held to it: a repeat after counting fails the stream", function ()
    local events = text_events()
    events[3].sequence_number = 1   -- (created 0, delta 1, delta 1)
    local c
    c, stop = canned_client(sse(events))
    local res, err = c:respond { input = "x", stream = function () end }
    assert.is_nil(res)
    assert.equal("stream", err.kind)
    assert.matches("an event repeated", err.message, 1, true)
  end)
end)

describe("Responses API: stored results", function ()
  local client
  devserver.fixture(_ENV, function (_, c) client = c end, { model = "aigc-dev" })

  -- A stored response that failed is a response: the SDKs' retrieve
  -- returns it (status "failed", its error beside); aigc returned nil,
  -- err, so a loop polling a background response could not tell "it
  -- failed" from "the retrieve failed".
  it("get_response of a failed response returns it, status failed with its error", function ()
    local res, err = client:respond { input = "Tell me a story.", stream = true,
                                      headers = { ["x-aigc-fault"] = "failed-mid" } }
    assert.is_nil(res)
    local id = err.partial.id
    assert.is_string(id)
    local got, gerr = client:get_response(id)
    assert.is_nil(gerr)
    assert.equal(id, got.id)
    assert.equal("failed", got.status)
    assert.equal("server_error", got.error.code)
    assert.is_string(got.text)
    assert.matches("^req_", got.request_id)
    assert.equal(0, got.retries)
  end)

  -- The README's reconnect loop went on after kind "network", a kind aigc
  -- has not: a stream idle past its timeout (kind "timeout") or a server
  -- unreachable for a moment (kind "connect") ended the loop at once. The
  -- loop is run as the README has it, its first call given a timeout.
  it("the README's reconnect loop resumes a stream that went idle past its timeout", function ()
    local readme = assert(io.open("README.md")):read("*a")
    local code = readme:match("The reconnect loop %(spec/responses_resume_spec.lua runs it%):%s*```lua\n(.-)```")
    assert.is_string(code)
    local written, calls = {}, {}
    local proxy = {
      -- (response.created at once, then 10 s between events: idle past 2 s)
      respond = function (_, p)
        calls[#calls + 1] = "respond"
        p.timeout, p.headers = 2, { ["x-aigc-fault"] = "pause=10000" }
        return client:respond(p)
      end,
      get_response = function (_, id, q)
        calls[#calls + 1] = "get_response"
        return client:get_response(id, q)
      end,
    }
    local env = setmetatable({ client = proxy, io = { write = function (s) written[#written + 1] = s end } },
                             { __index = _G })
    local loadstring, setfenv = rawget(_G, "loadstring"), rawget(_G, "setfenv")   -- (5.1, LuaJIT)
    local chunk = assert((loadstring or load)(code .. "\nreturn res, err", "=README", "t", env))
    if setfenv then setfenv(chunk, env) end
    local res, err = chunk()
    assert.is_nil(err)
    assert.same({ "respond", "get_response" }, calls)
    assert.equal("completed", res.status)
    assert.truthy(#res.text > 0)
    assert.equal(res.text, table.concat(written))
  end)

  -- The bundled server answered a background response that was to fail
  -- with the error already in its "queued" object (so the call failed at
  -- once): it is queued, then failed when polled, as OpenAI's.
  it("a background response that fails: queued at first, then get_response polls it to failed", function ()
    local res = assert(client:respond { input = "Tell me a story.", background = true,
                                        headers = { ["x-aigc-fault"] = "failed-mid" } })
    assert.equal("queued", res.status)
    assert.equal(aigc.null, res.error)
    local got
    for _ = 1, 600 do   -- (about 0.6 s of the server's clock; up to 60 s here)
      got = assert(client:get_response(res.id))
      if got.status ~= "queued" and got.status ~= "in_progress" then break end
      client:sleep(0.1)
    end
    assert.equal("failed", got.status)
    assert.equal("server_error", got.error.code)
  end)

  it("get_response of an unknown id is still an error (404)", function ()
    local got, err = client:get_response("resp_nothing_here")
    assert.is_nil(got)
    assert.equal(404, err.status)
  end)
end)
