-- What a hostile or broken server can put on the wire, one raw reply a
-- connection (spec/support/oneshot.lua): floods of headers and of 1xx
-- answers, broken chunked encoding, Content-Length lies, a compression the
-- client did not ask for, odd bytes in content, odd event streams. Each is
-- the reply, or an error of a clear kind with the status and request id
-- the server sent: never a crash, a hang, or a reply made up.
local aigc = require "aigc"
local oneshot = require "oneshot"

-- luacheck: push ignore 631 (the replies, one a line)
local REPLY = '{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}]}'
local CHUNK = 'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}'
local LAST = 'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}'
-- luacheck: pop
local J = "Content-Type: application/json\r\nx-request-id: req_w\r\n"
local S = "Content-Type: text/event-stream\r\nx-request-id: req_w\r\n"
local TE = "HTTP/1.1 200 OK\r\n" .. J .. "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"

local function sized (head, body)
  return head .. "Content-Length: " .. #body .. "\r\nConnection: close\r\n\r\n" .. body
end

-- One chat (streamed when `stream`) to a server answering `reply`: the
-- result, the error and the deltas given.
local function chat_to (reply, stream)
  local c = aigc.client { base_url = oneshot.serve_raw({ reply }, finally), api_key = "sk-fake-wire-0123",
                          max_retries = 0, timeout = 30 }
  local deltas = {}
  local res, err = c:chat { model = "m", messages = { { role = "user", content = "Hi" } },
                            stream = stream and function (d) deltas[#deltas + 1] = d end or nil }
  c:close()
  return res, err, table.concat(deltas)
end

-- Each case: a reply, then the error's kind, status and a plain piece of its message.
local function fails_as (cases, stream)
  for _, case in ipairs(cases) do
    local res, err = chat_to(case[1], stream)
    assert.is_nil(res, case[4])
    assert.same({ case[2], case[3] }, { err.kind, err.status }, case[4])
    assert.truthy(err.message:find(case[4], 1, true), err.message)
    assert.is_nil(tostring(err):find("sk-fake", 1, true))
  end
end

describe("a server that floods", function ()
  it("5,000 header lines: the reply, every header kept", function ()
    local lines = {}
    for i = 1, 5000 do lines[i] = "X-H" .. i .. ": v" .. i .. "\r\n" end
    local res, err = chat_to(sized("HTTP/1.1 200 OK\r\n" .. J .. table.concat(lines), REPLY))
    assert.is_nil(err and tostring(err))
    assert.same({ "Hi", "v5000", "req_w" }, { res.text, res.headers["x-h5000"], res.request_id })
  end)

  it("60,000 header lines, or 30,000 1xx answers before the reply: a limit error", function ()
    local lines = {}
    for i = 1, 60000 do lines[i] = "X-H" .. i .. ": v\r\n" end
    fails_as {
      { sized("HTTP/1.1 200 OK\r\n" .. J .. table.concat(lines), REPLY), "limit", 200,
        "the response headers are larger than 200 KiB" },
      { ("HTTP/1.1 100 Continue\r\n\r\n"):rep(30000) .. sized("HTTP/1.1 200 OK\r\n" .. J, REPLY), "limit", nil,
        "the response headers are larger than 200 KiB" },
      { ("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"):rep(20000) .. sized("HTTP/1.1 200 OK\r\n" .. J, REPLY),
        "limit", nil, "the response headers are larger than 200 KiB" },
    }
  end)
end)

describe("a server whose framing lies", function ()
  it("chunk sizes that are no number, too long, negative; no last chunk: a connection error", function ()
    fails_as {
      { TE .. "zz\r\n" .. REPLY .. "\r\n0\r\n\r\n", "connect", 200, "Illegal or missing hexadecimal sequence" },
      { TE .. "-5\r\n" .. REPLY .. "\r\n0\r\n\r\n", "connect", 200, "Illegal or missing hexadecimal sequence" },
      { TE .. ("f"):rep(20) .. "\r\n" .. REPLY .. "\r\n0\r\n\r\n", "connect", 200, "Too long hexadecimal number" },
      { TE .. ("0"):rep(100000) .. string.format("%x", #REPLY) .. "\r\n" .. REPLY .. "\r\n0\r\n\r\n", "connect", 200,
        "Too long hexadecimal number" },
      { TE .. string.format("%x", #REPLY + 50) .. "\r\n" .. REPLY .. "\r\n0\r\n\r\n", "connect", 200,
        "transfer closed with outstanding read data remaining" },
      { TE .. string.format("%x", #REPLY) .. "\r\n" .. REPLY .. "\r\n", "connect", 200,
        "transfer closed with outstanding read data remaining" },
    }
  end)

  it("a Content-Length over the body: a connection error; under it: the cut body is no JSON (kind parse)", function ()
    local head = "HTTP/1.1 200 OK\r\n" .. J .. "Connection: close\r\nContent-Length: "
    fails_as {
      { head .. (#REPLY + 100) .. "\r\n\r\n" .. REPLY, "connect", 200, "transfer closed with 100 bytes remaining" },
      { head .. (#REPLY - 10) .. "\r\n\r\n" .. REPLY, "parse", 200, "the response is not valid JSON" },
      { head .. "-1\r\n\r\n" .. REPLY, "connect", 200, "Invalid Content-Length" },
    }
  end)

  it("a NUL in a header line, HTTP/0.9, a status line that is no status: a connection error", function ()
    fails_as {
      { sized("HTTP/1.1 200 OK\r\n" .. J .. "X-Odd: a\0b\r\n", REPLY), "connect", 200, "Nul byte in header" },
      { "SSH-2.0-OpenSSH_9.2\r\n", "connect", nil, "HTTP/0.9" },
      { "HTTP/1.1 2xx OK\r\n\r\n", "connect", nil, "Unsupported response code" },
    }
  end)
end)

-- zlib's form of `s` (RFC 1950) from gzip's (RFC 1952): the same deflate
-- data, gzip's 10-byte header and 8-byte tail made zlib's 2 and Adler-32.
local function zlib_of (s)
  local z = assert(io.popen("printf '%s' '" .. s .. "' | gzip -c")):read("*a")
  local a, b = 1, 0
  for i = 1, #s do
    a = (a + s:byte(i)) % 65521
    b = (b + a) % 65521
  end
  return "\120\156" .. z:sub(11, -9) .. string.char(math.floor(b / 256), b % 256, math.floor(a / 256), a % 256)
end

describe("a server that closes the connection inside the headers", function ()
  -- (libcurl calls that done: it was "the response body is empty", kind
  -- parse, not retried, or a stream that "ended before [DONE]")
  it("is a connection error, streamed or not, and is retried as one", function ()
    local cut = "HTTP/1.1 200 OK\r\n" .. J
    for _, stream in ipairs { false, true } do
      local res, err = chat_to(cut, stream)
      assert.is_nil(res)
      assert.same({ "connect", true, "req_w" }, { err.kind, err.retryable, err.request_id })
      assert.equal('the connection closed before the response headers ended (after "HTTP 200")', err.message)
    end
    local c = aigc.client { base_url = oneshot.serve_raw({ cut, sized("HTTP/1.1 200 OK\r\n" .. J, REPLY) }, finally),
                            api_key = "sk-fake-wire-0123", max_retries = 1, timeout = 30 }
    local res, err = c:chat { model = "m", messages = { { role = "user", content = "Hi" } } }
    c:close()
    assert.is_nil(err and tostring(err))
    assert.same({ "Hi", 1 }, { res.text, res.retries })
  end)
end)

describe("a server's body", function ()
  it("deflated though the client asked for none (zlib's form, or raw): the reply", function ()
    local z = zlib_of(REPLY)
    for _, body in ipairs { z, z:sub(3, -5) } do
      local res, err = chat_to(sized("HTTP/1.1 200 OK\r\n" .. J .. "Content-Encoding: deflate\r\n", body))
      assert.is_nil(err and tostring(err))
      assert.equal("Hi", res.text)
    end
  end)

  it("gzipped small that inflates past max_response_bytes: a limit error, counted on what it inflates to", function ()
    local bomb = assert(io.popen("head -c 2000000 /dev/zero | gzip -c")):read("*a")
    for _, head in ipairs { J, S } do
      local reply = sized("HTTP/1.1 200 OK\r\n" .. head .. "Content-Encoding: gzip\r\n", bomb)
      local c = aigc.client { base_url = oneshot.serve_raw({ reply }, finally), api_key = "sk-fake-wire-0123",
                              max_retries = 0, timeout = 30, max_response_bytes = 100000 }
      local res, err = c:chat { model = "m", messages = { { role = "user", content = "Hi" } },
                                stream = head == S or nil }
      c:close()
      assert.is_nil(res)
      assert.same({ "limit", "the response is larger than max_response_bytes (100000 bytes)" },
                  { err.kind, err.message })
    end
  end)

  it("with a NUL escaped in content: kept; raw NUL or invalid UTF-8 in a JSON string: kind parse", function ()
    local res, err = chat_to(sized("HTTP/1.1 200 OK\r\n" .. J, (REPLY:gsub('"Hi"', '"H\\u0000i"'))))
    assert.is_nil(err and tostring(err))
    assert.equal("H\0i", res.text)
    fails_as {
      { sized("HTTP/1.1 200 OK\r\n" .. J, (REPLY:gsub('"Hi"', '"H\0i"'))), "parse", 200,
        "control character in string" },
      { sized("HTTP/1.1 200 OK\r\n" .. J, (REPLY:gsub('"Hi"', '"H\255\254i"'))), "parse", 200,
        "invalid UTF-8 in string" },
    }
    fails_as({ { sized("HTTP/1.1 200 OK\r\n" .. S, (CHUNK:gsub('"Hi"', '"H\255i"')) .. "\n\n" .. LAST
                       .. "\n\ndata: [DONE]\n\n"), "parse", 200, "a stream event is not valid JSON" } }, true)
  end)
end)

describe("a server's event stream", function ()
  local function streams_hi (reply, what)
    local res, err, deltas = chat_to(reply, true)
    assert.is_nil(err and tostring(err), what)
    assert.same({ "Hi", "Hi", "req_w" }, { res.text, deltas, res.request_id }, what)
  end

  it("with CR-only line ends, 'data:' with no space, [DONE] twice, a NUL escaped: the reply", function ()
    streams_hi(sized("HTTP/1.1 200 OK\r\n" .. S, CHUNK .. "\r\r" .. LAST .. "\r\rdata: [DONE]\r\r"), "CR")
    local bare = CHUNK:gsub("^data: ", "data:") .. "\n\n" .. LAST:gsub("^data: ", "data:") .. "\n\ndata:[DONE]\n\n"
    streams_hi(sized("HTTP/1.1 200 OK\r\n" .. S, bare), "no space")
    streams_hi(sized("HTTP/1.1 200 OK\r\n" .. S, CHUNK .. "\n\n" .. LAST .. "\n\ndata: [DONE]\n\ndata: [DONE]\n\n"),
               "twice")
    local res, err, deltas = chat_to(sized("HTTP/1.1 200 OK\r\n" .. S, (CHUNK:gsub('"Hi"', '"H\\u0000i"')) .. "\n\n"
                                           .. LAST .. "\n\ndata: [DONE]\n\n"), true)
    assert.is_nil(err and tostring(err))
    assert.same({ "H\0i", "H\0i" }, { res.text, deltas })
  end)

  it("over HTTP/1.0, ended by the connection's close: the reply; cut inside an event: kind stream", function ()
    streams_hi("HTTP/1.0 200 OK\r\n" .. S .. "\r\n" .. CHUNK .. "\n\n" .. LAST .. "\n\ndata: [DONE]\n\n", "1.0")
    local res, err, deltas = chat_to("HTTP/1.0 200 OK\r\n" .. S .. "\r\n" .. CHUNK .. "\n\n" .. LAST:sub(1, 30), true)
    assert.is_nil(res)
    assert.same({ "stream", 200, "Hi", "Hi" }, { err.kind, err.status, deltas, err.partial.choices[1].message.content })
  end)

  it("of comments only: kind stream (it ended before [DONE]), nothing made up", function ()
    local res, err, deltas = chat_to(sized("HTTP/1.1 200 OK\r\n" .. S, ": ping\n\n: ping\n\n"), true)
    assert.is_nil(res)
    assert.same({ "stream", 200, "" }, { err.kind, err.status, deltas })
    assert.matches("ended before [DONE]", err.message, 1, true)
  end)
end)
