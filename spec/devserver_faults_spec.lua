-- luacheck: std +busted
-- The devserver's hostile-server faults for the client lanes' trust specs
-- (/work/notes/FAULTS-PLANNED.md): header floods, echoed keys, value floods,
-- comment drips, raw header lines, bad gzip, hostile tool calls, a plain
-- reply to a stream request, duplicate keys. Over raw sockets, never aigc.

local socket = require "socket"
local cjson = require "cjson"
local safe = require "cjson.safe"
local devserver = require "devserver"
local raw = require "rawhttp"

local null = cjson.null

local function user (text) return { { role = "user", content = text } } end

describe("devserver hostile faults", function ()
  local srv
  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)
  before_each(function () srv:reset() end)

  local function post (spec, body, headers, path)
    headers = headers or {}
    headers["x-aigc-fault"] = spec
    return raw.call(srv.port, "POST", path or "/v1/chat/completions", body or { messages = user "Hi" }, headers)
  end

  local function stream (spec, body, headers)
    headers = headers or {}
    headers["x-aigc-fault"] = spec
    return raw.stream(srv.port, "/v1/chat/completions", body or { messages = user "What is the capital of France?" },
      headers)
  end

  it("headers=N adds N tiny headers, on replies, errors and streams", function ()
    local res = post "headers=5000"
    assert.equal(200, res.status)
    assert.equal("a", res.headers["x-f-1"])
    assert.equal("a", res.headers["x-f-5000"])
    assert.is_nil(res.headers["x-f-5001"])
    local n = 0
    for _, l in ipairs(res.header_list) do if l:match("^x%-f%-%d+: a$") then n = n + 1 end end
    assert.equal(5000, n)
    assert.equal("Hello! How can I help you today?", res.json.choices[1].message.content)
    local e = post "status=503,headers=3"
    assert.equal(503, e.status)
    assert.equal("a", e.headers["x-f-3"])
    local s = stream "headers=2"
    assert.equal("a", s.headers["x-f-2"])
    assert.equal("[DONE]", s.events[#s.events].data)
    assert.equal(400, post("headers=1000001").status)
  end)

  it("echo-key echoes the credential in error bodies (message, nested, array), headers and ids", function ()
    local key = "sk-echo-0123456789abcdef"
    local e = post("status=401,echo-key", nil, { Authorization = "Bearer " .. key })
    assert.equal(401, e.status)
    assert.matches(key, e.json.error.message, 1, true)
    assert.equal(key, e.json.error.details.key)
    assert.equal(key, e.json.error.details.list[2])
    assert.equal("invalid_api_key", e.json.error.code)
    assert.equal(key, e.headers["x-echo"])
    assert.equal("req_" .. key, e.headers["x-request-id"])
    local az = post("status=500,echo-key", nil, { ["api-key"] = "azure-key-42" })
    assert.equal("azure-key-42", az.json.error.details.key)
    assert.equal("server_error", az.json.error.type)
    -- a 200: the reply text carries it
    local ok = post("echo-key", nil, { Authorization = "Bearer " .. key })
    assert.equal(200, ok.status)
    assert.matches(key, ok.json.choices[1].message.content, 1, true)
    assert.equal(key, ok.headers["x-echo"])
    -- a stream: one chunk, then an error event carrying it
    local s = stream("echo-key", nil, { Authorization = "Bearer " .. key })
    assert.equal(2, #s.events)
    assert.equal("chat.completion.chunk", s.chunks[1].object)
    assert.equal("error", s.events[2].event)
    local err = cjson.decode(s.events[2].data).error
    assert.matches(key, err.message, 1, true)
    assert.equal(key, err.details.key)
    assert.equal("req_" .. key, s.headers["x-request-id"])
    -- the server's own record stays redacted
    assert.equal("<redacted len=" .. #("Bearer " .. key) .. ">", srv:last().headers.authorization)
  end)

  it("body=empty-arrays,size=BYTES floods a valid 200 reply with empty arrays", function ()
    local res = post "body=empty-arrays,size=300000"
    assert.equal(200, res.status)
    local x = res.body:match('"x":(%[.*%])')
    assert.is_true(math.abs(#x - 300000) <= 3, "length " .. #x)
    local doc = assert(safe.decode(res.body))
    assert.equal(99999, #doc.x)
    assert.same({}, doc.x[1])
    assert.equal("Hello! How can I help you today?", doc.choices[1].message.content)
    local default = post "body=empty-arrays"
    assert.is_true(#default.body > 1048576)
  end)

  it("comment-drip=MS sends SSE comments forever and never data", function ()
    local c = raw.connect(srv.port)
    assert(c:send(raw.request_bytes("POST", "/v1/chat/completions", { messages = user "Hi", stream = true },
      { ["x-aigc-fault"] = "comment-drip=20" })))
    assert.equal("HTTP/1.1 200 OK", c:receive("*l"))
    local headers = {}
    while true do
      local l = assert(c:receive("*l"))
      if l == "" then break end
      headers[#headers + 1] = l
    end
    assert.matches("Content%-Type: text/event%-stream", table.concat(headers, "\n"))
    assert.matches("Transfer%-Encoding: chunked", table.concat(headers, "\n"))
    local got, t0 = {}, socket.gettime()
    while socket.gettime() - t0 < 0.3 do
      local size = assert(c:receive("*l"))
      local data = assert(c:receive(tonumber(size, 16)))
      got[#got + 1] = data
      c:receive("*l")
    end
    c:close()
    assert.is_true(#got >= 5, "comments: " .. #got)
    for _, d in ipairs(got) do assert.equal(":\n", d) end
    assert.is_true(raw.wait_until(function () return srv:stats().open_now == 0 end))
    assert.is_true(srv:last().client_closed)
    assert.equal(400, post("comment-drip=0").status)
  end)

  it("raw-header=TEXT adds one verbatim header line, %2C for commas", function ()
    local res = post "raw-header=HTTP/1.1-x: 1"
    assert.equal(200, res.status)
    assert.equal("HTTP/1.1-x: 1", res.header_list[#res.header_list])
    local two = post "raw-header=X-A: 1%2C 2,raw-header=X-B: b"
    assert.equal("X-A: 1, 2", two.header_list[#two.header_list - 1])
    assert.equal("X-B: b", two.header_list[#two.header_list])
    -- the normal headers all come first
    assert.matches("^x%-ratelimit", res.header_list[#res.header_list - 1])
  end)

  it("bad-gzip labels a body gzip that is not", function ()
    local res = post "bad-gzip"
    assert.equal(200, res.status)
    assert.equal("gzip", res.headers["content-encoding"])
    assert.not_equal("\31\139", res.body:sub(1, 2))
    assert.truthy(safe.decode(res.body).choices)
    local s = stream "bad-gzip"
    assert.equal("gzip", s.headers["content-encoding"])
  end)

  it("informational=N sends N `100 Continue` responses before the real one", function ()
    local c = raw.connect(srv.port)
    assert(c:send(raw.request_bytes("POST", "/v1/chat/completions", { messages = user "Hi" },
      { ["x-aigc-fault"] = "informational=3,status=401" })))
    for _ = 1, 3 do
      assert.equal("HTTP/1.1 100 Continue", c:receive("*l"))
      assert.equal("", c:receive("*l"))
    end
    local res = assert(raw.read_response(c))
    c:close()
    assert.equal(401, res.status)
    assert.equal("invalid_api_key", safe.decode(res.body).error.code)
    assert.equal(400, post("informational=1000001").status)
  end)

  it("tool-calls=hostile puts a number where the tool calls belong", function ()
    local res = post "tool-calls=hostile"
    assert.equal(200, res.status)
    local m = res.json.choices[1].message
    assert.same({ 1 }, m.tool_calls)
    assert.equal(null, m.content)
    assert.equal("tool_calls", res.json.choices[1].finish_reason)
    assert.matches('"tool_calls":[1]', res.body, 1, true)
    local s = stream "tool-calls=hostile"
    assert.same({ 1 }, s.chunks[2].choices[1].delta.tool_calls)
    assert.equal("tool_calls", s.chunks[#s.chunks].choices[1].finish_reason)
  end)

  it("plain-for-stream answers a stream request with one plain JSON reply", function ()
    local res = post("plain-for-stream", { messages = user "Hi", stream = true })
    assert.equal(200, res.status)
    assert.equal("application/json", res.headers["content-type"])
    assert.equal("chat.completion", res.json.object)
    assert.equal("Hello! How can I help you today?", res.json.choices[1].message.content)
    assert.is_true(srv:last().stream)
    local cpl = post("plain-for-stream", { prompt = "Hi", stream = true }, nil, "/v1/completions")
    assert.equal("text_completion", cpl.json.object)
    assert.truthy(cpl.json.usage)
  end)

  it("dup-key repeats the content key inside the 2nd content delta", function ()
    local s = stream "dup-key"
    assert.matches('"delta":{"content":"a","content":"b"}', s.events[2].data, 1, true)
    assert.equal("", s.chunks[1].choices[1].delta.content) -- the role delta is the 1st
    assert.equal("b", s.chunks[2].choices[1].delta.content) -- cjson: last wins
    assert.equal(" capital", s.chunks[3].choices[1].delta.content)
    assert.equal("[DONE]", s.events[#s.events].data)
  end)

  it("faults combine, and the new names are recorded", function ()
    local res = post("status=429,headers=2,echo-key,raw-header=x-z: z", nil, { Authorization = "Bearer k" })
    assert.equal(429, res.status)
    assert.equal("a", res.headers["x-f-2"])
    assert.equal("k", res.headers["x-echo"])
    assert.equal("x-z: z", res.header_list[#res.header_list])
    assert.equal("status=429,headers=2,echo-key,raw-header=x-z: z", srv:last().fault)
    assert.equal(400, post("tool-calls=friendly").status)
  end)
end)
