-- Resuming the stream of a background response (GET
-- /v1/responses/{id}?stream=true&starting_after=N, the SDKs'
-- retrieve(stream=True, starting_after=N)): in the three forms of
-- `respond` (callback, iterator, async), numbered on from N, the result the
-- whole response; its errors, a cancel mid-stream, and the reconnect loop
-- of the README after a dropped connection -- against the bundled server.
local aigc = require "aigc"
local devserver = require "devserver"

local STORY = "Generate a short story about a robot that learns to paint."

-- What aigc adds to a response from the transport (README: "Responses API").
local ADDED = { text = true, output_text = true, request_id = true, headers = true, retries = true }

local function without_added (res)
  local t = {}
  for k, v in pairs(res) do
    if not ADDED[k] then t[k] = v end
  end
  return t
end

-- A stream callback recording the events, their numbers and text deltas.
local function recorder ()
  local r = { events = {}, seqs = {}, deltas = {} }
  r.stream = function (delta, event)
    r.events[#r.events + 1] = event
    r.seqs[#r.seqs + 1] = event.sequence_number
    if delta then r.deltas[#r.deltas + 1] = delta end
    if event.type == "response.completed" then r.completed = event.response end
  end
  return r
end

-- Whether seqs are first, first + 1, ... (none missing, none twice).
local function consecutive (seqs, first)
  for i, n in ipairs(seqs) do
    if n ~= first + i - 1 then return false end
  end
  return #seqs > 0
end

describe("Responses API: resuming a background stream", function ()
  local srv, client
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { model = "aigc-dev" })

  local function background ()
    local r = assert(client:respond { input = STORY, background = true })
    assert.equal("queued", r.status)
    return r.id
  end

  -- The whole stream of response id, from its first event.
  local function whole (id)
    local rec = recorder()
    local res = assert(client:get_response(id, { stream = rec.stream }))
    assert.is_true(consecutive(rec.seqs, 0))
    return res, rec
  end

  it("get_response with stream and starting_after: the events after N, numbered on, and the whole response",
     function ()
    local id = background()
    local full, all = whole(id)
    assert.equal("completed", full.status)
    local rec = recorder()
    local res, err = client:get_response(id, { stream = rec.stream, starting_after = 5 })
    assert.is_nil(err)
    assert.is_true(consecutive(rec.seqs, 6))
    assert.equal(#all.seqs - 6, #rec.seqs)
    assert.same(without_added(full), without_added(res))
    assert.same(without_added(rec.completed), without_added(res))   -- the response.completed payload, output and all
    assert.equal(full.text, res.text)
    assert.equal(res.text, res.output_text)
    -- the deltas after N are the end of the text
    local tail = table.concat(rec.deltas)
    assert.is_true(#tail > 0 and #tail < #full.text)
    assert.equal(tail, full.text:sub(-#tail))
    local sent = srv:last()
    assert.equal("GET", sent.method)
    assert.equal("/v1/responses/" .. id, sent.path)
    assert.same({ stream = "true", starting_after = "5" }, sent.query)
    assert.equal("", sent.body)
  end)

  it("the log names the request a GET, with no body, even with log_bodies", function ()
    local id = background()
    local lines = {}
    local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", max_retries = 0, log_bodies = true,
                            log = function (_, message) lines[#lines + 1] = message end }
    assert(c:get_response(id, { stream = true, starting_after = 1 }))
    c:close()
    local all = table.concat(lines, "\n")
    assert.matches("GET /v1/responses/" .. id .. " (stream)", all, 1, true)   -- (the log leaves out queries)
    assert.matches("GET /v1/responses/" .. id .. " -> 200", all, 1, true)
    assert.not_matches("POST", all, 1, true)
  end)

  it("stream = true without a callback, and without starting_after (from the start)", function ()
    local id = background()
    local full = whole(id)
    local res = assert(client:get_response(id, { stream = true }))
    assert.same(without_added(full), without_added(res))
    assert.same({ stream = "true" }, srv:last().query)
    -- a float with an integer value goes as the integer
    assert(client:get_response(id, { stream = true, starting_after = 2.0 }))
    assert.equal("2", srv:last().query.starting_after)
  end)

  it("a retried attempt (a 503 first) resumes after N too", function ()
    local id = background()
    local full = whole(id)
    local rec = recorder()
    local res = assert(client:get_response(id, { stream = rec.stream, starting_after = 4, max_retries = 1,
                                                 headers = { ["x-aigc-fault"] = "status=503,times=1" } }))
    assert.equal(1, res.retries)
    assert.is_true(consecutive(rec.seqs, 5))
    assert.same(without_added(full), without_added(res))
  end)

  it("the iterator form: stream_response { response_id =, starting_after = }", function ()
    local id = background()
    local full = whole(id)
    local s = client:stream_response { response_id = id, starting_after = 3 }
    local text, seqs = {}, {}
    for delta, event in s do
      text[#text + 1] = delta
      seqs[#seqs + 1] = event.sequence_number
    end
    assert.is_true(consecutive(seqs, 4))
    assert.equal(full.text:sub(-#table.concat(text)), table.concat(text))
    assert.same(without_added(full), without_added(s:result()))
  end)

  it("the async form: respond_async { response_id =, starting_after =, stream =, on_done = }", function ()
    local id = background()
    local full = whole(id)
    local rec, done = recorder(), nil
    local req = client:respond_async { response_id = id, starting_after = 10, stream = rec.stream,
                                       on_done = function (res) done = res end }
    assert(req:wait())
    assert.is_true(consecutive(rec.seqs, 11))
    assert.same(without_added(full), without_added(done))
    -- without a stream callback (or with stream = false) it streams all the same: the reply is a stream
    for _, params in ipairs { { response_id = id, starting_after = 10, stream = false },
                              { response_id = id, starting_after = 10 } } do
      local res = assert(client:respond_async(params):wait())
      assert.same(without_added(full), without_added(res))
    end
  end)

  it("checks that the first event follows N: a server that replays from the start fails the stream", function ()
    local events = {
      { "response.created", '{"type":"response.created","sequence_number":0,"response":{"id":"resp_1",'
        .. '"object":"response","status":"in_progress","output":[]}}' },
      { "response.completed", '{"type":"response.completed","sequence_number":1,"response":{"id":"resp_1",'
        .. '"object":"response","status":"completed","output":[]}}' },
    }
    local body = {}
    for _, e in ipairs(events) do body[#body + 1] = "event: " .. e[1] .. "\ndata: " .. e[2] .. "\n\n" end
    local c, done = require("oneshot").sse_client(aigc, table.concat(body))
    local res, err = c:get_response("resp_1", { stream = true, starting_after = 7 })
    done()
    assert.is_nil(res)
    assert.equal("stream", err.kind)
    assert.matches("sequence_number 0 came after 7", err.message, 1, true)
  end)

  it("errors: an unknown id (404), a response not made in the background, bad starting_after", function ()
    local res, err = client:get_response("resp_unknown", { stream = true, starting_after = 0 })
    assert.is_nil(res)
    assert.equal("http", err.kind)
    assert.equal(404, err.status)
    local plain = assert(client:respond { input = "Hi" })
    res, err = client:get_response(plain.id, { stream = function () end })
    assert.is_nil(res)
    assert.equal(400, err.status)
    assert.matches("background", err.message)
    for _, bad in ipairs { -1, 1.5, "3", true } do
      assert.has_error(function () client:get_response(plain.id, { stream = true, starting_after = bad }) end)
    end
    assert.has_error(function () client:stream_response { response_id = 42 } end)
    -- body fields have nowhere to go: refused, as the SDKs refuse response_id with new response args
    local ok, why = pcall(client.stream_response, client, { response_id = plain.id, input = "Hi" })
    assert.is_false(ok)
    assert.matches("params.input: not for a resumed stream", why, 1, true)
    ok, why = pcall(client.get_response, client, plain.id, { stream = true, model = "x" })
    assert.is_false(ok)
    assert.matches("opts.model: not for a resumed stream", why, 1, true)
    ok, why = pcall(client.respond_async, client, { response_id = plain.id, schema = { type = "object" } })
    assert.is_false(ok)
    assert.matches("params.schema: not for a resumed stream", why, 1, true)
  end)

  it("a cancel (cancel_response) mid-stream ends the stream; the response cannot be streamed after", function ()
    -- (pause: the background run lasts 1 s an event, far beyond this test's cancel)
    local id = assert(client:respond { input = STORY, background = true,
                                       headers = { ["x-aigc-fault"] = "pause=1000" } }).id
    local rec, cancelled = recorder(), nil
    local res, err = client:get_response(id, {
      starting_after = 2, headers = { ["x-aigc-fault"] = "pause=100" },   -- (16 s of events: the cancel comes first)
      stream = function (delta, event)
        rec.stream(delta, event)
        if #rec.seqs == 2 then cancelled = assert(client:cancel_response(id)) end
      end })
    assert.is_nil(res)
    assert.equal("stream", err.kind)
    assert.equal("cancelled", cancelled.status)
    assert.is_true(consecutive(rec.seqs, 3))
    assert.is_nil(rec.completed)
    assert.equal("cancelled", assert(client:get_response(id)).status)
    res, err = client:get_response(id, { stream = true, starting_after = rec.seqs[#rec.seqs] })
    assert.is_nil(res)
    assert.equal(400, err.status)
  end)

  it("canceling the request mid-stream, then resuming from the last event seen, gives the whole response",
     function ()
    local id = background()
    local full = whole(id)
    local s = client:stream_response { response_id = id, headers = { ["x-aigc-fault"] = "pause=20" } }
    local last, text = nil, {}
    for delta, event in s do
      last = event.sequence_number
      text[#text + 1] = delta
      if last == 12 then break end
    end
    s:close()
    local rec = recorder()
    local res = assert(client:get_response(id, { stream = rec.stream, starting_after = last }))
    assert.is_true(consecutive(rec.seqs, 13))
    assert.equal(full.text, table.concat(text) .. table.concat(rec.deltas))
    assert.same(without_added(full), without_added(res))
  end)

  it("the README's reconnect loop: dropped connections (the first stream's and a replay's) resumed "
     .. "from the last sequence number seen", function ()
    local id, last, text, drops = nil, nil, {}, 0
    local function on_event (delta, event)
      if event.type == "response.created" then id = event.response.id end
      last = event.sequence_number or last
      if delta then text[#text + 1] = delta end
    end
    -- the server drops the first connection after 6 events, the first replay after 4
    local res, err = client:respond { input = STORY, background = true, stream = on_event,
                                      headers = { ["x-aigc-fault"] = "drop-after=6" } }
    for attempt = 1, 5 do
      local k = not res and id and err.kind
      if not (k == "stream" or k == "timeout" or k == "connect") then break end
      drops = drops + 1
      local fault = attempt == 1 and { ["x-aigc-fault"] = "drop-after=4" } or nil
      res, err = client:get_response(id, { stream = on_event, starting_after = last, headers = fault })
    end
    assert.is_nil(err)
    assert.equal(2, drops)
    local full = whole(id)
    assert.same(without_added(full), without_added(res))
    assert.equal(full.text, table.concat(text))   -- every delta once, in order
    assert.equal(full.text, res.text)
  end)
end)
