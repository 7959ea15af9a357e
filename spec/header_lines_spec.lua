-- Response headers sent in more than one line: a header folded onto a
-- continuation line (RFC 9112's obs-fold, which
-- libcurl hands as a line of its own). Raw replies from a one-off server
-- (spec/support/oneshot.lua).
local aigc = require "aigc"
local oneshot = require "oneshot"

local REPLY = '{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":'
  .. '[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}]}'

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
