-- Response headers sent in more than one line: a header repeated (a proxy
-- adding its own x-request-id or x-should-retry to the server's), and a
-- header folded onto a continuation line (RFC 9112's obs-fold, which
-- libcurl hands as a line of its own). Raw replies from a one-off server
-- (spec/support/oneshot.lua).
local aigc = require "aigc"
local oneshot = require "oneshot"

local REPLY = '{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":'
  .. '[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}]}'
local FAIL = '{"error":{"message":"no","type":"server_error"}}'

-- The result and error of one chat call to a server answering with the
-- raw `replies`, one a connection (a retry takes the next).
-- A reply left unasked for is then asked for (the server waits for it).
local function call (replies, max_retries)
  local c = aigc.client { base_url = oneshot.serve_raw(replies, finally), api_key = "sk-fake-lines-0123",
                          max_retries = max_retries or 0, timeout = 30 }
  local params = { model = "m", messages = { { role = "user", content = "Hi" } } }
  local res, err = c:chat(params)
  for _ = (res or err).retries + 2, #replies do
    local rest, rest_err = c:chat(params)
    assert(rest, rest_err and rest_err.message)
  end
  c:close()
  return res, err
end

describe("a response header in two lines", function ()
  -- Only the first line was the request id: a proxy's id before the
  -- server's hid the one the provider's support asks for, while
  -- res.headers showed both.
  it("x-request-id: the request id is every line's, as res.headers shows it", function ()
    local res, err = call { oneshot.http_reply("200 OK", REPLY, "X-Request-Id: req_proxy\r\nx-request-id: req_1\r\n") }
    assert.is_nil(err)
    assert.same({ "req_proxy, req_1", "req_proxy, req_1" }, { res.request_id, res.headers["x-request-id"] })
    res, err = call { oneshot.http_reply("400 Bad Request", FAIL, "X-Request-Id: req_a\r\nX-Request-Id: req_b\r\n") }
    assert.is_nil(res)
    assert.same({ 400, "req_a, req_b", "req_a, req_b" }, { err.status, err.request_id, err.headers["x-request-id"] })
  end)

  -- Only the first line decided: a "false" before a "true" stopped a retry
  -- and a 500's retry, whose err.headers said "false, true". Now lines
  -- that agree decide; lines that conflict decide nothing (the status
  -- does, as the SDKs, which see the joined value as no verdict).
  it("x-should-retry: decides when every value agrees, else the status decides", function ()
    local ok = oneshot.http_reply("200 OK", REPLY)
    local function retried (status, lines)
      local res, err = call({ oneshot.http_reply(status, FAIL, lines), ok }, 1)
      assert(res or err.status, tostring(err and err.message))
      return res ~= nil
    end
    local conflicting = "X-Should-Retry: false\r\nx-should-retry: true\r\n"
    assert.same({ true, false }, { retried("500 Internal Server Error", conflicting),
                                   retried("400 Bad Request", conflicting) })
    assert.same({ true, true, false }, {
      retried("400 Bad Request", "x-should-retry: true, true\r\n"),
      retried("400 Bad Request", "x-should-retry: true\r\nx-should-retry: true\r\n"),
      retried("500 Internal Server Error", "x-should-retry: false\r\nX-Should-Retry:  false \r\n"),
    })
  end)
end)

describe("a folded response header (a line that starts with a blank)", function ()
  -- The continuation was dropped (no colon) or stored as a header named
  -- " b" (with one): the value lost its end.
  it("is one value, the fold made a space, a colon in the continuation too", function ()
    local res, err = call { oneshot.http_reply("200 OK", REPLY,
      "X-Request-Id: req_7\r\n  part2\r\nX-Note: a\r\n\tb: c\r\nX-Empty:\r\n z\r\nX-After: 1\r\n") }
    assert.is_nil(err)
    assert.same({ "req_7 part2", "a b: c", "z", "1" },
                { res.request_id, res.headers["x-note"], res.headers["x-empty"], res.headers["x-after"] })
    for name in pairs(res.headers) do assert.is_nil(name:find("^[ \t]"), name) end
  end)
end)
