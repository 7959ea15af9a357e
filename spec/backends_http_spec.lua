-- What goes on the wire and what comes back, byte for byte, from a one-off
-- server (spec/support/oneshot.lua) that answers by the request's model:
-- a reply that starts with a UTF-8 byte order mark, the request line and
-- headers aigc sent (echoed back as the reply's text).
local aigc = require "aigc"
local oneshot = require "oneshot"

-- luacheck: push ignore 631 (the bodies, one a line as the servers send them)
local SERVER = [=[
  local BOM = "\239\187\191"
  local J, SSE = "application/json", "text/event-stream"
  local REPLY = '{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}]}'
  local CHUNK = 'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":"stop"}]}\n\n'
  local CASES = {
    ["bom"] = { "200 OK", J, BOM .. REPLY },
    ["bom-error"] = { "400 Bad Request", J, BOM .. '{"error":{"message":"the model is unknown","type":"invalid_request_error"}}' },
    ["bom-text-error"] = { "503 Service Unavailable", "text/plain", BOM .. "upstream down" },
    ["bom-sse"] = { "200 OK", SSE, BOM .. CHUNK .. "data: [DONE]\n\n" },
    ["bom-json-as-sse"] = { "200 OK", SSE, BOM .. REPLY },
    ["bom-unlabelled"] = { "200 OK", nil, BOM .. REPLY },
    -- (the 4th: the body's first bytes sent alone, the rest after a pause: two reads)
    ["split-bom-json-as-sse"] = { "200 OK", SSE, BOM .. REPLY, 1 },
    ["split-bom-unlabelled"] = { "200 OK", nil, BOM .. REPLY, 2 },
    ["split-bom-sse"] = { "200 OK", SSE, BOM .. CHUNK .. "data: [DONE]\n\n", 1 },
    -- (keep-alive blank lines alone in the first read, then the reply: llama.cpp's, a proxy's)
    ["blanks-json-as-sse"] = { "200 OK", SSE, "\n\n" .. REPLY, 2 },
    ["blanks-unlabelled"] = { "200 OK", nil, "\r\n\r\n" .. REPLY, 4 },
    ["blanks-error-as-sse"] = { "200 OK", SSE, "\n\n" .. '{"error":{"message":"context too long","type":"server_error"}}', 2 },
    ["blanks-sse"] = { "200 OK", SSE, "\n\n" .. CHUNK .. "data: [DONE]\n\n", 2 },
    ["blanks-split-sse"] = { "200 OK", SSE, "\r" .. CHUNK .. "data: [DONE]\n\n", 1 },
    -- (blank lines, then a mark, then the reply: in one read, and split in the mark)
    ["blanks-bom"] = { "200 OK", J, "\n\n" .. BOM .. REPLY },
    ["blanks-bom-json-as-sse"] = { "200 OK", SSE, "\r\n" .. BOM .. REPLY },
    ["blanks-bom-unlabelled"] = { "200 OK", nil, "\n \n" .. BOM .. REPLY },
    ["blanks-split-bom-json-as-sse"] = { "200 OK", SSE, "\n\n" .. BOM .. REPLY, 3 },
    ["blanks-split-bom-unlabelled"] = { "200 OK", nil, "\n\n" .. BOM .. REPLY, 4 },
    -- (blank lines, then a mark, then events: in one read, the blanks alone, the mark split, CR line ends)
    ["blanks-bom-sse"] = { "200 OK", SSE, "\n\n" .. BOM .. CHUNK .. "data: [DONE]\n\n" },
    ["blanks-alone-bom-sse"] = { "200 OK", SSE, "\r\n\r\n" .. BOM .. CHUNK .. "data: [DONE]\n\n", 4 },
    ["blanks-split-bom-sse"] = { "200 OK", SSE, "\n\n" .. BOM .. CHUNK .. "data: [DONE]\n\n", 3 },
    ["cr-blanks-bom-sse"] = { "200 OK", SSE, "\r\r" .. BOM .. CHUNK .. "data: [DONE]\n\n", 1 },
  }
  local function json_string (s)
    return '"' .. s:gsub('[%c"\\]', function (c) return string.format("\\u%04x", c:byte()) end) .. '"'
  end
  local server = require("oneshot").listen()
  while true do
    local c = assert(server:accept())
    c:settimeout(5)
    local head, len = {}, 0
    repeat
      local line = assert(c:receive("*l"))
      head[#head + 1] = line
      len = tonumber(line:match("^[Cc]ontent%-[Ll]ength: *(%d+)")) or len
    until line == ""
    local body = len > 0 and c:receive(len) or ""
    local model = body:match('"model":"([^"]*)"')
    if model == "quit" then c:close(); break end
    local case = CASES[model]
    if model == "echo" then   -- (the request line and headers, one a line, as the reply's text)
      case = { "200 OK", J, (REPLY:gsub('"Hi"', function () return json_string(table.concat(head, "\n")) end)) }
    elseif model == "echo-error" then
      case = { "400 Bad Request", J, '{"error":{"message":' .. json_string(head[1]) .. '}}' }
    end
    case = case or { "404 Not Found", J, '{"error":{"message":"no such case"}}' }
    local split = case[4] or #case[3]
    c:send("HTTP/1.1 " .. case[1] .. "\r\n" .. (case[2] and "Content-Type: " .. case[2] .. "\r\n" or "")
           .. "Content-Length: " .. #case[3] .. "\r\nConnection: close\r\n\r\n" .. case[3]:sub(1, split))
    if split < #case[3] then
      require("socket").sleep(0.05)
      c:send(case[3]:sub(split + 1))
    end
    c:close()
  end
]=]
-- luacheck: pop

describe("a server", function ()
  local srv, client

  setup(function () srv = oneshot.model_server(SERVER) end)
  teardown(function () srv.stop() end)
  before_each(function ()
    client = aigc.client { base_url = srv.base_url, api_key = "sk-http-0123456789", max_retries = 0, timeout = 30 }
  end)
  after_each(function () client:close() end)

  local function chat (model, params, c)
    local p = { model = model, messages = { { role = "user", content = "Hi" } } }
    for k, v in pairs(params or {}) do p[k] = v end
    return (c or client):chat(p)
  end

  describe("whose reply starts with a UTF-8 byte order mark (both SDKs' decoders drop it)", function ()
    it("gives the JSON reply, not kind parse ('unexpected byte 0xEF')", function ()
      local res, err = chat("bom")
      assert.is_nil(err)
      assert.same({ "Hi", "c1" }, { res.text, res.id })
    end)

    it("gives an error body's message, not the whole body with the mark", function ()
      local res, err = chat("bom-error")
      assert.is_nil(res)
      assert.same({ "http", "the model is unknown", 400 }, { err.kind, err.message, err.status })
      res, err = chat("bom-text-error")
      assert.is_nil(res)
      assert.equal("HTTP status 503: upstream down", err.message)
    end)

    it("gives a stream's events, and a JSON reply to a stream labelled text/event-stream or not labelled",
       function ()
      local deltas = {}
      local res, err = chat("bom-sse", { stream = function (d) deltas[#deltas + 1] = d end })
      assert.is_nil(err)
      assert.same({ "Hi", "Hi" }, { res.text, table.concat(deltas) })
      for _, model in ipairs { "bom-json-as-sse", "bom-unlabelled" } do
        deltas = {}
        res, err = chat(model, { stream = function (d) deltas[#deltas + 1] = d end })
        assert.is_nil(err, model)
        assert.same({ "Hi", "c1", "Hi" }, { res.text, res.id, table.concat(deltas) })
      end
      res, err = chat("bom-json-as-sse")   -- (not asked to stream)
      assert.is_nil(err)
      assert.equal("Hi", res.text)
    end)

    -- The body's kind was judged from the first read alone: a mark split
    -- across two reads (EF, then BB BF {...}) was no JSON's start, and a
    -- JSON reply to a stream was read as events (kind stream).
    it("split across the first two reads: a JSON reply to a stream is JSON, a stream's events are events", function ()
      for _, model in ipairs { "split-bom-json-as-sse", "split-bom-unlabelled", "split-bom-sse" } do
        local deltas = {}
        local res, err = chat(model, { stream = function (d) deltas[#deltas + 1] = d end })
        assert.is_nil(err, model)
        assert.same({ "Hi", "c1", "Hi" }, { res.text, res.id, table.concat(deltas) }, model)
      end
      local res, err = chat("split-bom-json-as-sse")   -- (not asked to stream)
      assert.is_nil(err)
      assert.equal("Hi", res.text)
    end)
  end)

  -- The body's kind was judged from the first read alone: keep-alive blank
  -- lines there (and nothing else) made any reply an event stream, and a
  -- JSON reply after them failed as kind stream ("no [DONE]").
  describe("whose first read is only blank lines", function ()
    -- Each model's reply, streamed: its text, id and the deltas given.
    local function streams_hi (models)
      for _, model in ipairs(models) do
        local deltas = {}
        local res, err = chat(model, { stream = function (d) deltas[#deltas + 1] = d end })
        assert.is_nil(err, model)
        assert.same({ "Hi", "c1", "Hi" }, { res.text, res.id, table.concat(deltas) }, model)
      end
    end

    it("gives a JSON reply after them to a stream, labelled text/event-stream or not labelled", function ()
      streams_hi { "blanks-json-as-sse", "blanks-unlabelled" }
    end)

    it("gives a JSON error body after them as the server's error, not kind stream", function ()
      local res, err = chat("blanks-error-as-sse", { stream = function () end })
      assert.is_nil(res)
      assert.same({ "api", "context too long" }, { err.kind, err.message })
    end)

    it("still gives a stream's events after them, a line end split across the reads too", function ()
      streams_hi { "blanks-sse", "blanks-split-sse" }
    end)

    -- A byte order mark after the blank lines (in one read) was no JSON's
    -- start: a JSON reply to a stream failed as kind stream, and one not
    -- streamed as kind parse (the mark was dropped only at the body's start).
    it("then a byte order mark: a JSON reply is JSON, streamed or not, the mark split across reads too", function ()
      streams_hi { "blanks-bom-json-as-sse", "blanks-bom-unlabelled", "blanks-split-bom-json-as-sse",
                   "blanks-split-bom-unlabelled" }
      for _, model in ipairs { "blanks-bom", "blanks-bom-json-as-sse", "blanks-bom-unlabelled" } do
        local res, err = chat(model)
        assert.is_nil(err, model)
        assert.same({ "Hi", "c1" }, { res.text, res.id }, model)
      end
    end)

    -- A byte order mark after the blank lines, then events: the parser
    -- dropped a mark only at the stream's very start, so the first event's
    -- line was "<BOM>data: ..." (an unknown field) and that event was lost.
    it("then a byte order mark, then events: the first event is kept, however the reads fall", function ()
      streams_hi { "blanks-bom-sse", "blanks-alone-bom-sse", "blanks-split-bom-sse", "cr-blanks-bom-sse" }
      local res, err = chat("blanks-bom-sse")   -- (not asked to stream: the events, accumulated)
      assert.is_nil(err)
      assert.same({ "Hi", "c1" }, { res.text, res.id })
    end)
  end)

  describe("is sent", function ()
    -- The request line and header lines the server got.
    local function sent (params, c)
      local res, err = chat("echo", params, c)
      assert.is_nil(err)
      return res.text
    end

    it("a base_url's repeated query parameter, every value in order (httpx sends them all; not only the last)",
       function ()
      local c = aigc.client { base_url = srv.base_url .. "?a=1&b=x&a=2&a=3", max_retries = 0, timeout = 30 }
      local line = sent(nil, c):match("^[^\n]*")
      assert.equal("POST /v1/chat/completions?a=1&a=2&a=3&b=x HTTP/1.1", line)
      -- a per-call query's parameter of that name replaces them all, as opts.query's does
      line = sent({ query = { a = "9" } }, c):match("^[^\n]*")
      assert.equal("POST /v1/chat/completions?a=9&b=x HTTP/1.1", line)
      c:close()
      c = aigc.client { base_url = srv.base_url .. "?a=1&a=2", query = { a = "q" }, max_retries = 0, timeout = 30 }
      assert.equal("POST /v1/chat/completions?a=q HTTP/1.1", sent(nil, c):match("^[^\n]*"))
      c:close()
    end)

    it("both values of a credential parameter repeated in base_url, each a secret of the client", function ()
      local first, second = "first-secret-0123456789", "second-secret-9876543210"
      local c = aigc.client { base_url = srv.base_url .. "?key=" .. first .. "&key=" .. second, max_retries = 0,
                              timeout = 30 }
      local res, err = chat("echo-error", nil, c)
      c:close()
      assert.is_nil(res)
      assert.matches("^POST /v1/chat/completions%?key=.+&key=.+ HTTP/1%.1$", err.message)
      assert.is_nil(err.message:find(first, 1, true), err.message)
      assert.is_nil(err.message:find(second, 1, true), err.message)
    end)

    it("a header given \"\" (or blanks), empty, as the SDKs send it (libcurl drops a 'Name:' line)", function ()
      local c = aigc.client { base_url = srv.base_url, max_retries = 0, timeout = 30,
                              headers = { ["X-Empty"] = "", ["X-Blank"] = "  " } }
      local head = sent({ headers = { ["X-Call-Empty"] = "" } }, c)
      assert.matches("\nX%-Empty:[ ]?\n", head)
      assert.matches("\nX%-Blank:[ ]?\n", head)
      assert.matches("\nX%-Call%-Empty:[ ]?\n", head)
      -- (and a client's empty header stays when a call has headers of its own)
      head = sent({ extra_headers = { ["X-Other"] = "1" } }, c)
      assert.matches("\nX%-Empty:[ ]?\n", head)
      assert.matches("\nX%-Other: 1\n", head)
      c:close()
    end)

    it("Content-Type set to aigc.null, by the client or by one call: a JSON body goes with none", function ()
      -- (libcurl put its own "application/x-www-form-urlencoded" where the header was removed: a
      -- server reading the body by its type read the JSON as a form)
      local c = aigc.client { base_url = srv.base_url, max_retries = 0, timeout = 30,
                              headers = { ["Content-Type"] = aigc.null } }
      for _, params in ipairs { {}, { extra_headers = { ["X-Other"] = "1" } } } do
        local head = sent(params, c):lower()
        assert.is_nil(head:find("\ncontent-type:", 1, true), head)
      end
      c:close()
      c = aigc.client { base_url = srv.base_url, max_retries = 0, timeout = 30 }
      local head = sent({ headers = { ["Content-Type"] = aigc.null } }, c):lower()
      assert.is_nil(head:find("\ncontent-type:", 1, true), head)
      assert.matches("\ncontent%-type: application/json\n", sent(nil, c):lower())   -- (the next call has it)
      c:close()
    end)

    -- Expect set to aigc.null dropped aigc's own "Expect:" line (which keeps
    -- libcurl from adding one): a body over 1 MiB went with libcurl's
    -- "Expect: 100-continue", and a server that never answers 100 held
    -- each such call a second.
    it("no Expect line with Expect set to aigc.null, by the client or by one call, a body over 1 MiB too", function ()
      local big = { { role = "user", content = ("x"):rep(1100 * 1024) } }
      local c = aigc.client { base_url = srv.base_url, max_retries = 0, timeout = 30,
                              headers = { Expect = aigc.null } }
      local heads = { sent({ messages = big }, c):lower(),
                      sent({ messages = big, headers = { Expect = aigc.null } }):lower(),
                      sent({ messages = big, extra_headers = { Expect = aigc.null, ["X-Other"] = "1" } }, c):lower() }
      c:close()
      for i, head in ipairs(heads) do
        assert.is_nil(head:find("\nexpect:", 1, true), i .. ": " .. head)
        assert.matches("\ncontent%-length: 11%d%d%d%d%d\n", head)
      end
    end)

    it("no default header set to aigc.null, by the client or by one call (the README's promise)", function ()
      local c = aigc.client { base_url = srv.base_url, api_key = "sk-http-0123456789", organization = "org-1",
                              max_retries = 0, timeout = 30, headers = { ["User-Agent"] = aigc.null } }
      local head = sent(nil, c):lower()
      assert.is_nil(head:find("\nuser-agent:", 1, true), head)
      assert.matches("\nopenai%-organization: org%-1\n", head)
      head = sent({ headers = { ["OpenAI-Organization"] = aigc.null, Authorization = aigc.null } }, c):lower()
      assert.is_nil(head:find("\nopenai-organization:", 1, true), head)
      assert.is_nil(head:find("\nauthorization:", 1, true), head)
      assert.matches("\nopenai%-organization: org%-1\n", sent(nil, c):lower())   -- (the next call has it again)
      c:close()
    end)
  end)
end)

describe("an Azure client whose model is \"\"", function ()
  it("is misuse naming the option, not a request to /deployments//chat/completions", function ()
    for _, case in ipairs {
      { { model = "" }, {}, "params.model" },
      { {}, { model = "" }, "opts.model" },
    } do
      local opts = { azure = true, endpoint = "http://127.0.0.1:1", api_version = "2024-06-01", api_key = "k-azure-1",
                     max_retries = 0 }
      for k, v in pairs(case[2]) do opts[k] = v end
      local c = aigc.client(opts)
      local params = { messages = { { role = "user", content = "Hi" } } }
      for k, v in pairs(case[1]) do params[k] = v end
      local ok, e = pcall(c.chat, c, params)
      c:close()
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'chat' (" .. case[3]
                     .. ": empty: Azure OpenAI needs a model, the deployment name)", e, 1, true)
    end
  end)
end)

describe("a multipart upload from a client whose Content-Type is aigc.null", function ()
  it("goes with libcurl's multipart/form-data and its boundary, the call's headers null it or not", function ()
    local srv = require("devserver").start()
    local c = aigc.client { base_url = srv.base_url, max_retries = 0, timeout = 30,
                            headers = { ["Content-Type"] = aigc.null } }
    local got = {}
    for i, headers in ipairs { false, { ["Content-Type"] = aigc.null } } do
      local f, err = c:files_upload { file = { data = "{}\n", filename = "a" .. i .. ".jsonl" }, purpose = "batch",
                                      headers = headers or nil }
      local ct = (srv:last().headers or {})["content-type"]
      got[i] = { f and f.id ~= nil, err and tostring(err), ct and ct:match("^multipart/form%-data; boundary=") ~= nil }
    end
    c:close()
    srv:stop()
    assert.same({ { true, nil, true }, { true, nil, true } }, got)
  end)
end)
