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

  it("with a status code out of HTTP's range is a connection error (libcurl takes no such reply)", function ()
    for _, line in ipairs { "HTTP/1.1 1000 X", "HTTP/1.1 099 X" } do
      local res, err = chat_to(line .. "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
      assert.is_nil(res)
      assert.same({ "connect", true }, { err.kind, err.message:find("Unsupported response code", 1, true) ~= nil })
    end
  end)
end)
