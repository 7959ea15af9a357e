-- A hostile or just odd server, byte for byte (spec/support/oneshot.lua's
-- raw replies, one a connection): each reply is the call's result, or a
-- failure of a clear kind that keeps the request id, never a crash or a
-- hang.
local aigc = require "aigc"
local oneshot = require "oneshot"

-- luacheck: push ignore 631 (the replies, one a line)
local REPLY = '{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}]}'
local J = "Content-Type: application/json\r\n"
-- luacheck: pop

local function sized (head, body)
  return head .. "Content-Length: " .. #body .. "\r\nConnection: close\r\n\r\n" .. body
end

local function chunked (body, ext, trailer)
  return string.format("%x%s\r\n%s\r\n0\r\n%s\r\n", #body, ext or "", body, trailer or "")
end

-- The result and error of one chat to a server answering `reply`.
local function chat_to (reply)
  local c = aigc.client { base_url = oneshot.serve_raw({ reply }, finally), api_key = "sk-fake-hostile-0123",
                          max_retries = 0, timeout = 30 }
  local res, err = c:chat { model = "m", messages = { { role = "user", content = "Hi" } } }
  c:close()
  return res, err
end

describe("a server's header name with blanks before its colon", function ()
  -- ("X-Request-Id : req_1": the name was kept as "x-request-id ", and
  -- the request id, a Retry-After, a Content-Type were never found)
  it("is the header of that name: the request id and the wait are read from it", function ()
    local res, err = chat_to(sized("HTTP/1.1 429 Too Many Requests\r\n" .. J .. "X-Request-Id : req_space\r\n"
                                   .. "Retry-After\t: 7\r\n", '{"error":{"message":"slow down"}}'))
    assert.is_nil(res)
    assert.same({ "http", 429, "slow down", "req_space", 7 },
                { err.kind, err.status, err.message, err.request_id, err.retry_after })
    assert.equal("req_space", err.headers["x-request-id"])
    res, err = chat_to(sized("HTTP/1.1 200 OK\r\nContent-Type  : application/json\r\nX-Request-Id : req_ok\r\n", REPLY))
    assert.is_nil(err)
    assert.same({ "Hi", "req_ok", "application/json" }, { res.text, res.request_id, res.headers["content-type"] })
  end)
end)

describe("an odd server's reply", function ()
  -- (each: the reply, then the result's text or the error's kind, status and request id)
  it("is the call's result, or an error of a clear kind with its request id", function ()
    local gzip = assert(io.popen("printf '%s' '" .. REPLY .. "' | gzip -c")):read("*a")
    for _, case in ipairs {
      -- HTTP/1.0 without Content-Length: the body ends with the connection
      { "HTTP/1.0 200 OK\r\n" .. J .. "x-request-id: req_10\r\n\r\n" .. REPLY, "Hi", "req_10" },
      -- both Transfer-Encoding and Content-Length: the chunks win (RFC 9112)
      { "HTTP/1.1 200 OK\r\n" .. J .. "Content-Length: 5\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        .. chunked(REPLY), "Hi" },
      -- a 103 Early Hints first: the headers are the final reply's
      { "HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\nx-request-id: req_hint\r\n\r\n"
        .. sized("HTTP/1.1 200 OK\r\n" .. J .. "x-request-id: req_103\r\n", REPLY), "Hi", "req_103" },
      { sized("HTTP/1.1 200 OK\r\n" .. J .. "Content-Encoding: gzip\r\n", gzip), "Hi" },
      -- chunk extensions, and the request id in a trailer
      { "HTTP/1.1 200 OK\r\n" .. J .. "Transfer-Encoding: chunked\r\nTrailer: x-request-id\r\nConnection: close\r\n\r\n"
        .. chunked(REPLY, ";a=b", "x-request-id: req_trailer\r\n"), "Hi", "req_trailer" },
      { sized("HTTP/1.1 200\r\ncontent-TYPE: application/json\r\nX-REQUEST-ID: req_case\r\n", REPLY), "Hi",
        "req_case" },
      { "HTTP/1.1 204 No Content\r\nx-request-id: req_204\r\nConnection: close\r\n\r\n", "parse", "req_204", 204 },
      { "HTTP/1.1 304 Not Modified\r\nx-request-id: req_304\r\nConnection: close\r\n\r\n", "http", "req_304", 304 },
      { sized("HTTP/1.1 200 OK\r\n" .. J .. "Content-Encoding: foo\r\nx-request-id: req_enc\r\n", REPLY), "parse",
        "req_enc", 200 },
      -- a redirect of a POST is never followed (no body sent again, no key sent to another host)
      { sized("HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.2:1/v1/chat/completions\r\n"
              .. "x-request-id: req_307\r\n", ""), "http", "req_307", 307 },
      { sized("HTTP/1.1 308 Permanent Redirect\r\nLocation: /v2/chat/completions\r\n", ""), "http", nil, 308 },
      { sized("HTTP/1.1 600 Odd\r\n" .. J .. "x-request-id: req_600\r\n", '{"error":{"message":"odd"}}'), "http",
        "req_600", 600 },
    } do
      local res, err = chat_to(case[1])
      local what = case[1]:match("^[^\r]*")
      if case[2] == "Hi" then
        assert.is_nil(err and tostring(err), what)
        assert.same({ "Hi", case[3] }, { res.text, res.request_id }, what)
      else
        assert.is_nil(res, what)
        assert.same({ case[2], case[3], case[4] }, { err.kind, err.request_id, err.status }, what)
      end
    end
  end)

  -- (libcurl refuses trailer lines over its bound as "Out of memory in
  -- chunked-encoding": kind connect, retried, the whole answer asked again)
  it("with trailers over libcurl's bound is a limit error that says so, not retried", function ()
    local body = "HTTP/1.1 200 OK\r\n" .. J .. "Transfer-Encoding: chunked\r\nx-request-id: req_trail\r\n"
                 .. "Connection: close\r\n\r\n" .. chunked(REPLY, nil, "X-T: " .. ("a"):rep(200000) .. "\r\n")
    local res, err = chat_to(body)
    assert.is_nil(res)
    assert.same({ "limit", 200, "req_trail", false }, { err.kind, err.status, err.request_id, err.retryable })
    assert.equal("the response's trailer lines (after its chunked body) are larger than libcurl takes", err.message)
  end)

  it("with a status code out of HTTP's range is a connection error (libcurl takes no such reply)", function ()
    for _, line in ipairs { "HTTP/1.1 1000 X", "HTTP/1.1 099 X" } do
      local res, err = chat_to(line .. "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
      assert.is_nil(res)
      assert.same({ "connect", true }, { err.kind, err.message:find("Unsupported response code", 1, true) ~= nil })
    end
  end)
end)

-- (child) Answers connection i with arg[i + 1]: "417" (at once, after the
-- request's head), "417late" (after the whole body: libcurl sends it when
-- no answer came in its 1 s wait), or a reply of that name after reading the whole body;
-- writes each request's head lines and body size to the file arg[1].
local REFUSER = [=[
  local oneshot = require "oneshot"
  local server = oneshot.listen()
  server:settimeout(30)
  local REPLIES = {
    file = '{"id":"file-1","object":"file","bytes":3,"filename":"a.jsonl","purpose":"batch","created_at":1}',
    chat = '{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,'
           .. '"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}]}',
  }
  for i = 2, #arg do
    local c = assert(server:accept())
    c:settimeout(10)
    local log, len = assert(io.open(arg[1], "ab")), 0
    repeat
      local line = assert(c:receive("*l"))
      log:write(i - 1, ": ", line, "\n")
      len = tonumber(line:lower():match("^content%-length: *(%d+)")) or len
    until line == ""
    if arg[i]:match("^417") then
      if arg[i] == "417late" then log:write(i - 1, " body ", #(len > 0 and c:receive(len) or ""), "\n") end
      c:send("HTTP/1.1 417 Expectation Failed\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
             .. "Connection: close\r\n\r\n{}")
    else
      local body = len > 0 and c:receive(len) or ""
      log:write(i - 1, " body ", #(body or ""), "\n")
      local reply = REPLIES[arg[i]]
      c:send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " .. #reply
             .. "\r\nConnection: close\r\n\r\n" .. reply)
    end
    log:close()
    c:close()
  end
]=]

describe("a server that answers 417 to \"Expect: 100-continue\"", function ()
  -- (aigc's own for an upload fed by a reader, or a caller's: libcurl sends
  -- a request again without it only when it added it itself, and the call
  -- failed with the 417: every reader upload through such a proxy)
  -- A client (with `headers`) to a server giving `replies`; done() closes
  -- both and gives the server's log.
  local function serve (replies, headers)
    local log = os.tmpname()
    local args = { log }
    for _, r in ipairs(replies) do args[#args + 1] = r end
    local port, child = oneshot.start(REFUSER, args)
    local c = aigc.client { base_url = "http://127.0.0.1:" .. port .. "/v1", api_key = "sk-fake-expect-0123",
                            max_retries = 0, timeout = 30, headers = headers }
    return c, function ()
      c:close()
      child:wait(30)
      local text = require("cli").read(log)
      os.remove(log)
      return text
    end
  end

  it("gets the request again without it: an upload fed by a reader (which asks it), whole", function ()
    local c, done = serve { "417", "file" }
    local given = 0
    local f, err = c:files_upload { purpose = "batch",
      file = { filename = "a.jsonl", size = 3, reader = function ()
        given = given + 1
        if given == 1 then return "{}\n" end
      end } }
    local log = done()
    assert.is_nil(err and tostring(err))
    assert.equal("file-1", f.id)
    assert.matches("\n1: Expect: 100%-continue\n", "\n" .. log)
    assert.is_nil(log:find("\n2: [Ee]xpect", 1, true), log)
    local len = tonumber(log:match("\n2: [Cc]ontent%-[Ll]ength: (%d+)"))
    assert.equal(len, tonumber(log:match("\n2 body (%d+)")))
  end)

  it("gets a chat again without it, the client's header or the call's", function ()
    for _, case in ipairs { { {}, { Expect = "100-continue" } }, { { Expect = "100-Continue" }, {} } } do
      local c, done = serve({ "417", "chat" }, case[1])
      local res, err = c:chat { model = "m", messages = { { role = "user", content = "Hi" } }, headers = case[2] }
      local log = done()
      assert.is_nil(err and tostring(err))
      assert.equal("Hi", res.text)
      assert.matches("\n1: Expect: 100%-[Cc]ontinue\n", "\n" .. log)
      assert.is_nil(log:find("\n2: [Ee]xpect", 1, true), log)
    end
  end)

  -- A 417 that came after libcurl's 1 s wait, when the body was sent: a
  -- `data` body is sent again; a reader's bytes are gone, and the call's
  -- error was a bare "HTTP status 417" that did not say why it was not.
  describe("only after the body was sent (a server slower than libcurl's 1 s wait)", function ()
    it("gets a chat (a data body) again without it, whole", function ()
      local c, done = serve({ "417late", "chat" }, { Expect = "100-continue" })
      local res, err = c:chat { model = "m", messages = { { role = "user", content = "Hi" } } }
      local log = done()
      assert.is_nil(err and tostring(err))
      assert.equal("Hi", res.text)
      assert.is_nil(log:find("\n2: [Ee]xpect", 1, true), log)
      local len = tonumber(log:match("\n2: [Cc]ontent%-[Ll]ength: (%d+)"))
      assert.same({ len, len }, { tonumber(log:match("\n1 body (%d+)")), tonumber(log:match("\n2 body (%d+)")) })
    end)

    it("is an upload fed by a reader's error that says why it was not sent again; the client goes on", function ()
      local c, done = serve { "417late", "chat" }
      local left = "{}\n"   -- (given once: nothing to give again)
      local f, err = c:files_upload { purpose = "batch",
        file = { filename = "a.jsonl", size = 3, reader = function ()
          local s = left ~= "" and left or nil
          left = ""
          return s
        end } }
      assert.is_nil(f)
      assert.same({ "http", 417 }, { err.kind, err.status })
      assert.matches("HTTP status 417", err.message, 1, true)
      assert.matches('refused "Expect: 100-continue" after the upload\'s reader gave 3 bytes', err.message, 1, true)
      assert.matches('headers = { Expect = "" }', err.message, 1, true)
      assert.is_nil(tostring(err):find("sk-fake", 1, true))
      local res, err2 = c:chat { model = "m", messages = { { role = "user", content = "Hi" } } }
      local log = done()
      assert.is_nil(err2 and tostring(err2))
      assert.equal("Hi", res.text)
      assert.matches("\n1 body %d+\n", "\n" .. log)
    end)
  end)

  it("twice: the second 417 is the call's error (sent again once only)", function ()
    local c, done = serve { "417", "417" }
    local res, err = c:chat { model = "m", messages = { { role = "user", content = "Hi" } },
                              headers = { Expect = "100-continue" } }
    done()
    assert.is_nil(res)
    assert.same({ "http", 417 }, { err.kind, err.status })
  end)
end)
