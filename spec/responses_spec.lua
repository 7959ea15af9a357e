-- The Responses API client (issue 14): client:respond in every form
-- (blocking, callback stream, iterator, async, task), the stream's typed
-- events accumulated in C into exactly the response.completed payload
-- across every wire variant, every failure kind, and the stored-response
-- calls -- against the bundled server.
local aigc = require "aigc"
local devserver = require "devserver"

local null = aigc.null
local FRANCE = "What is the capital of France?"
local STORY = "Generate a short story about a robot that learns to paint."

local WEATHER = { type = "function", name = "get_weather", description = "Weather of a city",
  parameters = { type = "object", properties = { city = { type = "string" } }, required = { "city" } } }
local TIME = { type = "function", name = "get_time", description = "Time in a city",
  parameters = { type = "object", properties = { city = { type = "string" } }, required = { "city" } } }

-- What aigc adds to a response from the transport, and `text`: the output
-- text, in place of the response's echo of the request's `text` option
-- (README: "Responses API").
local ADDED = { text = true, output_text = true, request_id = true, headers = true, retries = true }

local function without_added (res)
  local t = {}
  for k, v in pairs(res) do
    if not ADDED[k] then t[k] = v end
  end
  return t
end


-- A response with what differs between two requests blanked: ids, times.
local function comparable (res)
  local t = without_added(res)
  t.id, t.created_at, t.completed_at = "resp_*", 0, 0
  local output = {}
  for i, item in ipairs(t.output) do
    local copy = {}
    for k, v in pairs(item) do copy[k] = v end
    copy.id = copy.id and "*"
    copy.call_id = copy.call_id and "call_*"
    output[i] = copy
  end
  t.output = output
  return t
end

-- Streams `params` with a callback that records every event; returns
-- res, err, the events, the text deltas joined and the completed payload.
local function record (client, params)
  local events, deltas, completed = {}, {}, nil
  params.stream = function (delta, event)
    events[#events + 1] = event
    if delta then deltas[#deltas + 1] = delta end
    if event.type == "response.completed" or event.type == "response.incomplete" then
      completed = event.response
    end
  end
  local res, err = client:respond(params)
  return res, err, events, table.concat(deltas), completed
end

-- A one-shot server answering with the SSE body given (events of another
-- server than the bundled one; spec/support/oneshot.lua).
local function canned_client (sse_body)
  return require("oneshot").sse_client(aigc, sse_body)
end

local sse = require("sse").body

describe("Responses API", function ()
  local srv, client
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { model = "aigc-dev" })

  local function fault (spec, params) return devserver.fault_params(spec, params or { input = FRANCE }) end

  describe("blocking", function ()
    it("returns the response with text, request_id and headers", function ()
      local res = assert(client:respond { input = FRANCE, instructions = "Be brief." })
      assert.equal("response", res.object)
      assert.equal("completed", res.status)
      assert.equal("The capital of France is Paris.", res.text)
      assert.equal(res.output[1].content[1].text, res.text)
      assert.equal(res.text, res.output_text)   -- (the SDKs' name, for code written for them)
      assert.matches("^req_", res.request_id)
      assert.equal(res.request_id, res.headers["x-request-id"])
      assert.equal(0, res.retries)
      local sent = srv:last()
      assert.equal("/v1/responses", sent.path)
      assert.equal("Be brief.", sent.body_json.instructions)
      assert.equal("aigc-dev", sent.body_json.model)
      assert.is_nil(sent.body_json.stream)
    end)

    it("takes a string as the input, and a list of items", function ()
      assert(client:respond(FRANCE))
      assert.equal(FRANCE, srv:last().body_json.input)
      local res = assert(client:respond { input = {
        { role = "user", content = { { type = "input_text", text = "Repeat after me: two parts" } } } } })
      assert.equal("two parts", res.text)
    end)

    it("passes every other field through", function ()
      assert(client:respond { input = "Hi", store = false, metadata = { k = "v" }, temperature = 0,
                              max_output_tokens = 50, reasoning = { effort = "low" } })
      local body = srv:last().body_json
      assert.is_false(body.store)
      assert.same({ k = "v" }, body.metadata)
      assert.equal(50, body.max_output_tokens)
      assert.same({ effort = "low" }, body.reasoning)
    end)

    it("text is the concatenated output_text of every message part, '' with none", function ()
      local res = assert(client:respond { input = 'Use get_weather({"city":"Paris"})', tools = { WEATHER } })
      assert.equal("function_call", res.output[1].type)
      assert.equal("", res.text)
    end)
  end)

  describe("streaming", function ()
    it("gives every event and the text deltas; the result is the completed payload", function ()
      local res, err, events, text, completed = record(client, { input = STORY })
      assert.is_nil(err)
      assert.equal(res.text, text)
      assert.truthy(#text > 100)
      assert.equal("response.created", events[1].type)
      assert.equal("response.completed", events[#events].type)
      for i, e in ipairs(events) do assert.equal(i - 1, e.sequence_number) end
      assert.same(without_added(completed), without_added(res))
      assert.same({ format = { type = "text" } }, completed.text)   -- the echoed option res.text replaces
      assert.is_true(srv:last().body_json.stream)
      assert.equal("text/event-stream", srv:last().headers.accept)
      assert.is_nil(srv:last().body_json.stream_options)   -- chat's include_usage is not sent
    end)

    it("accumulates what the blocking call returns", function ()
      local plain = assert(client:respond { input = STORY })
      local streamed = assert(client:respond { input = STORY, stream = true })
      assert.same(comparable(plain), comparable(streamed))
      assert.equal(plain.text, streamed.text)
    end)

    local CASES = {
      { "a message", { input = STORY } },
      { "a reasoning summary (2 parts)", { input = FRANCE, model = "aigc-reason",
                                           reasoning = { summary = "detailed" } } },
      { "parallel function calls", { input = 'Use get_weather({"city":"Paris"}) and get_time({"city":"Tokyo"})',
                                     tools = { WEATHER, TIME } } },
      { "a refusal", fault("refusal") },
      { "an incomplete response", fault("incomplete", { input = STORY }) },
    }
    for _, case in ipairs(CASES) do
      it("equals response.completed field by field: " .. case[1], function ()
        local params = {}
        for k, v in pairs(case[2]) do params[k] = v end
        local res, err, _, _, completed = record(client, params)
        assert.is_nil(err)
        assert.is_table(completed)
        assert.same(without_added(completed), without_added(res))
      end)
    end

    for _, wire in ipairs { "crlf", "cr", "comments", "no-space", "multiline", "byte-writes" } do
      it("equals response.completed field by field over the wire variant " .. wire, function ()
        local params = fault(wire, { input = FRANCE, model = "aigc-reason",
                                     tools = { WEATHER }, reasoning = { summary = "detailed" } })
        local res, err, events, _, completed = record(client, params)
        assert.is_nil(err)
        assert.same(without_added(completed), without_added(res))
        local plain = assert(client:respond { input = FRANCE, model = "aigc-reason", tools = { WEATHER },
                                              reasoning = { summary = "detailed" } })
        assert.same(comparable(plain), comparable(res))
        assert.truthy(#events > 10)
      end)
    end

    -- Without response.completed (fault truncate: every event but the last),
    -- the output built from the events alone is the completed payload's.
    for _, case in ipairs {
      { "a message", { input = STORY } },
      { "a reasoning summary", { input = FRANCE, model = "aigc-reason", reasoning = { summary = "detailed" } } },
      { "parallel function calls", { input = 'Use get_weather({"city":"Paris"}) and get_time({"city":"Tokyo"})',
                                     tools = { WEATHER, TIME } } },
      { "a refusal, byte by byte", { input = FRANCE }, "refusal,byte-writes" },
      { "a message, CRLF", { input = FRANCE }, "crlf" },
    } do
      it("builds the completed output from the events alone: " .. case[1], function ()
        local full = {}
        for k, v in pairs(case[2]) do full[k] = v end
        if case[3] then full.headers = { ["x-aigc-fault"] = case[3] } end
        local _, _, _, _, completed = record(client, full)
        local cut = {}
        for k, v in pairs(case[2]) do cut[k] = v end
        cut.stream = true
        cut.headers = { ["x-aigc-fault"] = "truncate" .. (case[3] and ("," .. case[3]) or "") }
        local res, err = client:respond(cut)
        assert.is_nil(res)
        assert.equal("stream", err.kind)
        assert.same(comparable(completed).output, comparable(err.partial).output)
      end)
    end

    it("the reasoning summary arrives live, before the answer", function ()
      local order = {}
      assert(client:respond { input = FRANCE, model = "aigc-reason", stream = function (delta, event)
        if event.type == "response.reasoning_summary_text.delta" then order[#order + 1] = "summary"
        elseif delta then order[#order + 1] = "text" end
      end })
      assert.equal("summary", order[1])
      assert.equal("text", order[#order])
    end)

    it("joins function call arguments", function ()
      local res = assert(client:respond { input = 'Use get_weather({"city":"Paris"}) and get_time({"city":"Tokyo"})',
                                          tools = { WEATHER, TIME }, stream = true })
      assert.equal(2, #res.output)
      assert.equal("get_weather", res.output[1].name)
      assert.equal('{"city":"Paris"}', res.output[1].arguments)
      assert.equal('{"city":"Tokyo"}', res.output[2].arguments)
      assert.equal("completed", res.output[2].status)
    end)

    it("iterates: client:stream_response", function ()
      local deltas, types = {}, {}
      local s = client:stream_response { input = STORY }
      for delta, event in s:deltas() do
        deltas[#deltas + 1] = delta
        types[event.type] = true
      end
      local res = assert(s:result())
      assert.equal(res.text, table.concat(deltas))
      assert.is_true(types["response.output_item.done"])
    end)

    it("raises the error object from the iterator", function ()
      local s = client:stream_response(fault("failed-mid"))
      local ok, err = pcall(function () for _ in s:deltas() do end end)
      assert.is_false(ok)
      assert.equal("api", err.kind)
    end)
  end)

  describe("non-blocking", function ()
    it("respond_async returns a request; on_done gets the response", function ()
      local got
      local req = client:respond_async { input = FRANCE, stream = function () end,
                                         on_done = function (res) got = res end }
      while client:step(0.01) > 0 do end
      assert.equal("done", req:status())
      assert.equal("The capital of France is Paris.", got.text)
      assert.equal(got, (req:result()))
    end)

    it("cancel inside the stream callback: nothing more is delivered, kind canceled", function ()
      local seen = 0
      local req
      req = client:respond_async { input = STORY, stream = function (_, event)
        seen = seen + 1
        if event.type == "response.output_text.delta" then req:cancel() end
      end }
      local res, err = req:wait()
      assert.is_nil(res)
      assert.equal("canceled", err.kind)
      local at_cancel = seen
      client:step(0.05)
      assert.equal(at_cancel, seen)
      assert.equal(5, seen)   -- created, in_progress, item added, part added, the first delta
    end)

    it("a stream whose accumulated response passes max_json_values: kind limit", function ()
      local res, err = client:respond { input = STORY, stream = true, max_json_values = 60 }
      assert.is_nil(res)
      assert.equal("limit", err.kind)
      assert.matches("the streamed response", err.message)
    end)

    it("iterates inside a task: the iterator yields to the loop", function ()
      if _VERSION == "Lua 5.1" and not rawget(_G, "jit") then
        pending("PUC Lua 5.1 cannot yield across the iterator's __call (README: the Lua versions)")
        return
      end
      local text
      client:spawn(function ()
        local parts = {}
        for delta in client:stream_response { input = FRANCE } do parts[#parts + 1] = delta end
        text = table.concat(parts)
      end)
      while client:step(0.01) > 0 do end
      assert.equal("The capital of France is Paris.", text)
    end)

    it("runs in a task without blocking", function ()
      local texts = {}
      for i = 1, 3 do
        client:spawn(function ()
          texts[i] = assert(client:respond { input = "Repeat after me: task " .. i }).text
        end)
      end
      while client:step(0.01) > 0 do end
      assert.same({ "task 1", "task 2", "task 3" }, texts)
    end)
  end)

  describe("failures", function ()
    it("response.failed mid-stream: kind api, with the partial response", function ()
      local res, err = client:respond(fault("failed-mid", { input = STORY, stream = true }))
      assert.is_nil(res)
      assert.equal("api", err.kind)
      assert.equal("server_error", err.code)
      assert.is_table(err.partial)
      assert.equal("message", err.partial.output[1].type)
      assert.truthy(#err.partial.output[1].content[1].text > 0)
    end)

    it("a failed blocking response: kind api", function ()
      local res, err = client:respond(fault("failed-mid"))
      assert.is_nil(res)
      assert.equal("api", err.kind)
      assert.equal("server_error", err.code)
    end)

    it("a stream that ends before response.completed: kind stream with err.partial", function ()
      local res, err = client:respond(fault("truncate", { input = FRANCE, stream = true }))
      assert.is_nil(res)
      assert.equal("stream", err.kind)
      assert.matches("before response.completed", err.message)
      assert.equal("The capital of France is Paris.", err.partial.output[1].content[1].text)
      assert.same({ "The capital of France is Paris.", "The capital of France is Paris." },
                  { err.partial.text, err.partial.output_text })
    end)

    for _, f in ipairs { "seq-gap", "seq-disorder" } do
      it("a sequence_number out of order (" .. f .. "): kind stream", function ()
        local delivered = 0
        local res, err = client:respond(fault(f, { input = STORY, stream = function () delivered = delivered + 1 end }))
        assert.is_nil(res)
        assert.equal("stream", err.kind)
        assert.matches("sequence_number 5 came after 3", err.message)
        assert.equal(4, delivered)   -- nothing after the gap
        assert.is_table(err.partial)
      end)
    end

    it("response.incomplete: a result with its reason", function ()
      for _, stream in ipairs { false, true } do
        local res = assert(client:respond(fault("incomplete", { input = STORY, stream = stream })))
        assert.equal("incomplete", res.status)
        assert.equal("max_output_tokens", res.incomplete_details.reason)
        assert.truthy(#res.text > 0)
      end
    end)

    it("an error event: kind api with the server's code", function ()
      local res, err = client:respond(fault("error-event", { input = FRANCE, stream = true }))
      assert.is_nil(res)
      assert.equal("api", err.kind)
      assert.equal("server_error", err.code)
      assert.is_table(err.partial)
    end)

    it("an error event echoing the API key: the key appears nowhere in the error", function ()
      local secret = "sk-resp-secret-0123456789"
      local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", max_retries = 0, api_key = secret }
      local res, err = c:respond(fault("echo-key", { input = FRANCE, stream = true }))
      c:close()
      assert.is_nil(res)
      assert.equal("api", err.kind)
      local seen = {}
      local function walk (v)
        if type(v) == "string" then
          assert.is_nil(v:find(secret, 1, true), "the key leaked: " .. v)
          seen[#seen + 1] = v
        elseif type(v) == "table" and not seen[v] then
          seen[v] = true
          for k, x in pairs(v) do walk(k); walk(x) end
        end
      end
      walk(err)
      assert.is_nil(tostring(err):find(secret, 1, true))
      assert.truthy(table.concat(seen, " "):find("[redacted]", 1, true), "the echoed key was not scrubbed")
    end)

    it("an HTTP error: kind http with status and param", function ()
      local res, err = client:respond { input = "Hi", previous_response_id = "resp_unknown" }
      assert.is_nil(res)
      assert.equal("http", err.kind)
      assert.equal(400, err.status)
      assert.equal("previous_response_id", err.param)
    end)

    it("misuse raises at the caller's line", function ()
      assert.has_error(function () client:respond(42) end,
        "bad argument #1 to 'respond' (table or string expected, got number)")
      assert.error_matches(function () client:respond { input = "x", timeout = "soon" } end,
        "bad argument #1 to 'respond' %(params.timeout: ")
      assert.error_matches(function () client:get_response(nil) end,
        "bad argument #1 to 'get_response' %(a response id")
      assert.error_matches(function () client:respond { input = 42 } end,
        "bad argument #1 to 'respond' %(params.input: string or list of input items expected, got number%)")
      assert.error_matches(function () client:respond { input = { "x" } } end,
        "bad argument #1 to 'respond' %(params.input%[1%]: input item table expected, got string%)")
      assert.error_matches(function () client:respond { input = "x", store = "yes" } end,
        "bad argument #1 to 'respond' %(params.store: boolean expected")
    end)
  end)

  it("warns once about a likely typo in a Responses field", function ()
    local warned = {}
    local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", max_retries = 0,
                            log = function (level, msg) if level == "warn" then warned[#warned + 1] = msg end end }
    assert(c:respond { input = "Hi", max_output_token = 20 })
    c:close()
    assert.matches("max_output_token", table.concat(warned, "\n"))
    assert.matches("max_output_tokens", table.concat(warned, "\n"))
  end)

  describe("stored responses", function ()
    it("retrieve, input_items, delete", function ()
      local res = assert(client:respond { input = FRANCE })
      local got = assert(client:get_response(res.id))
      assert.equal(res.id, got.id)
      assert.equal(res.text, got.text)
      assert.equal(res.text, got.output_text)
      assert.equal("GET", srv:last().method)
      local items = assert(client:response_input_items(res.id, { order = "asc", limit = 5 }))
      assert.equal("list", items.object)
      assert.equal(FRANCE, items.data[1].content[1].text)
      assert.equal("/v1/responses/" .. res.id .. "/input_items", srv:last().path)
      assert.same({ order = "asc", limit = "5" }, srv:last().query)
      local del = assert(client:delete_response(res.id))
      assert.is_true(del.deleted)
      assert.equal("DELETE", srv:last().method)
      local gone, err = client:get_response(res.id)
      assert.is_nil(gone)
      assert.equal(404, err.status)
    end)

    it("refuses a query value that is not a scalar or a list of scalars, before sending anything", function ()
      local before = #srv:requests()
      assert.error_matches(function () client:get_response("resp_1", { include = { "a", {} } }) end,
        "bad argument #2 to 'get_response' %(opts.include%[2%]: string, number or boolean expected, got table%)")
      assert.equal(before, #srv:requests())   -- (it was sent as include=table: 0x...)
      local _, err = client:get_response("resp_none", { include = { "a", 2, true } })
      assert.equal(404, err.status)
      assert.equal("true", srv:last().query["include[]"])   -- (the devserver keeps the last of a repeated name)
    end)

    it("cancel a background response", function ()
      local res = assert(client:respond(fault("pause=2000", { input = FRANCE, background = true })))
      assert.equal("queued", res.status)
      local c = assert(client:cancel_response(res.id))
      assert.equal("cancelled", c.status)
      assert.equal("POST", srv:last().method)
    end)

    it("a GET after a DELETE on a reused connection is a GET", function ()
      local res = assert(client:respond { input = FRANCE })
      assert(client:delete_response(res.id))
      assert(client:models())
      assert.equal("GET", srv:last().method)
      assert(client:respond { input = FRANCE })
      assert.equal("POST", srv:last().method)
    end)
  end)

  -- luacheck: push ignore 631 (the events, one a line as a server sends them)
  describe("another server's events", function ()
    it("passes unknown events to the callback untouched, in order, and merges the rest", function ()
      local c, done = canned_client(sse {
        { "response.created", '{"type":"response.created","sequence_number":0,"response":{"id":"r","object":"response","status":"in_progress","output":[]}}' },
        { "response.future_event", '{"type":"response.future_event","sequence_number":1,"payload":{"deep":[1,2,{"x":null}]}}' },
        { nil, '{"type":"response.output_text.delta","sequence_number":2,"output_index":0,"content_index":0,"delta":"Hi"}' },
        { "keepalive", '{"type":"keepalive","sequence_number":3}' },
        { "response.output_text.delta", '{"sequence_number":4,"output_index":0,"content_index":0,"delta":"!"}' },
        { "response.completed", '{"type":"response.completed","sequence_number":5,"response":{"id":"r","object":"response","status":"completed"}}' },
      })
      local seen, deltas = {}, {}
      local res, err = c:respond { input = "x", stream = function (delta, event)
        seen[#seen + 1] = event
        deltas[#deltas + 1] = delta or "-"
      end }
      done()
      assert.is_nil(err)
      assert.equal(6, #seen)
      assert.same({ type = "response.future_event", sequence_number = 1, payload = { deep = { 1, 2, { x = null } } } }, seen[2])
      assert.same({ type = "keepalive", sequence_number = 3 }, seen[4])
      -- the event without "type" is merged by its SSE name, and its delta
      -- given as it is merged (the deltas joined are res.text); the event
      -- itself is as sent
      assert.same({ "-", "-", "Hi", "-", "!", "-" }, deltas)
      assert.same({ sequence_number = 4, output_index = 0, content_index = 0, delta = "!" }, seen[5])
      assert.equal("Hi!", res.text)
      assert.equal("completed", res.status)
    end)

    it("takes the completed payload's output when no item event came", function ()
      local c, done = canned_client(sse {
        { nil, '{"type":"response.created","response":{"id":"r","object":"response","status":"in_progress","output":[]}}' },
        { nil, '{"type":"response.completed","response":{"id":"r","object":"response","status":"completed","output":[{"type":"message","content":[{"type":"output_text","text":"whole"}]}]}}' },
      })
      local res = c:respond { input = "x", stream = true }
      done()
      assert.equal("whole", res.text)
    end)

    it("a server that does not end the response after response.completed: done within the grace", function ()
      local c, done = canned_client(sse {
        { "response.created", '{"type":"response.created","response":{"id":"r","object":"response","status":"in_progress"}}' },
        { "response.output_text.delta", '{"type":"response.output_text.delta","output_index":0,"content_index":0,"delta":"ok"}' },
        { "response.completed", '{"type":"response.completed","response":{"id":"r","object":"response","status":"completed"}}' },
      }, true)
      local t0 = aigc.now()
      local res, err = c:respond { input = "x", stream = true, timeout = 60 }
      local took = aigc.now() - t0
      done()
      assert.is_nil(err)
      assert.equal("ok", res.text)
      assert.truthy(took < 15, ("took %.1f s: the 2 s grace after response.completed did not end it"):format(took))
    end)

    -- The slots an event makes on the way to its target count against the
    -- limits as its payload does: events of a few bytes each that jump to
    -- index 1023 (output, content and annotation) used to fill arrays with
    -- thousands of uncharged nulls each -- 3,000 of them (650 KB) took
    -- 128 MB whatever max_json_values said.
    local function far_annotations (n)
      local events = { { "response.created", '{"type":"response.created","sequence_number":0,"response":'
                         .. '{"id":"r","object":"response","status":"in_progress","output":[]}}' } }
      for i = 1, n do
        events[#events + 1] = { nil, ('{"type":"response.output_text.annotation.added","sequence_number":%d,'
          .. '"output_index":%d,"content_index":1023,"annotation_index":1023,"annotation":{}}'):format(i, i - 1) }
      end
      events[#events + 1] = { nil, ('{"type":"response.completed","sequence_number":%d,"response":'
        .. '{"id":"r","object":"response","status":"completed"}}'):format(n + 1) }
      return sse(events)
    end

    local function nulls_in (v, seen)
      if v == null then return 1 end
      if type(v) ~= "table" or seen[v] then return 0 end
      seen[v] = true
      local n = 0
      for _, x in pairs(v) do n = n + nulls_in(x, seen) end
      return n
    end

    it("events that jump to far indexes: the nulls they make count, kind limit within a few events", function ()
      local c, done = canned_client(far_annotations(40))
      local seen = 0
      local res, err = c:respond { input = "x", max_json_values = 20000, max_json_containers = 5000,
                                   stream = function () seen = seen + 1 end }
      done()
      assert.is_nil(res and "a response of " .. #res.output .. " items")
      assert.equal("limit", err.kind)
      assert.equal("the streamed response holds more than 20000 values (the limit is max_json_values)", err.message)
      -- each of those events makes some 2,050 slots: the tenth is refused
      assert.is_true(seen >= 2 and seen <= 10, "events delivered: " .. seen)
      assert.is_table(err.partial)
      assert.is_true(nulls_in(err.partial, {}) <= 20000)
    end)

    it("a stream whose indexes are far but honest is merged, within limits it fits", function ()
      local c, done = canned_client(sse {
        { nil, '{"type":"response.created","response":{"id":"r","object":"response","status":"in_progress","output":[]}}' },
        { nil, '{"type":"response.output_text.delta","output_index":1023,"content_index":1023,"delta":"far"}' },
        { nil, '{"type":"response.output_text.delta","output_index":1023,"content_index":1023,"delta":" away"}' },
        { nil, '{"type":"response.output_text.annotation.added","output_index":1023,"content_index":1023,'
               .. '"annotation_index":1023,"annotation":{"type":"url_citation"}}' },
        { nil, '{"type":"response.completed","response":{"id":"r","object":"response","status":"completed"}}' },
      })
      -- three arrays of 1,024: some 3,100 values, 6 containers
      local res, err = c:respond { input = "x", stream = true, max_json_values = 3200, max_json_containers = 10 }
      done()
      assert.is_nil(err)
      assert.equal("far away", res.text)
      assert.equal(1024, #res.output)
      assert.equal(null, res.output[1])
      local part = res.output[1024].content[1024]
      assert.equal("output_text", part.type)
      assert.equal(1024, #part.annotations)
      assert.equal("url_citation", part.annotations[1024].type)
    end)

    it("an event that is not a response event's shape: kind parse", function ()
      local c, done = canned_client(sse {
        { nil, '{"type":"response.output_text.delta","output_index":-1,"content_index":0,"delta":"x"}' },
      })
      local res, err = c:respond { input = "x", stream = true }
      done()
      assert.is_nil(res)
      assert.equal("parse", err.kind)
      assert.matches("output_index", err.message)
    end)
  end)

  -- luacheck: pop

  it("null stays aigc.null in results", function ()
    local res = assert(client:respond { input = FRANCE, stream = true })
    assert.equal(null, res.previous_response_id)
  end)
end)
