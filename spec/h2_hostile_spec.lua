-- aigc against a hostile HTTP/2 server (spec/support/h2hostile.js, on
-- Node's http2): streams reset mid-reply or refused, GOAWAY with requests in
-- flight, a header block too big, trailers, one stream at a time, a server
-- that goes silent or stops reading. Every request must end with a result
-- or an error a user can read (kind and message), retried as the README
-- says, and the client stay usable. Every wait is bounded: the calls' own
-- `timeout` and `deadline`, and WAIT_BOUND for the loops of async calls.
local aigc = require "aigc"
local socket = require "socket"
local h2hostile = require "h2hostile"

local WAIT_BOUND = 20   -- seconds: a bound for a loaded machine, not a timing
local MSGS = { { role = "user", content = "hi" } }

describe("a hostile HTTP/2 server", function ()
  local srv, why, serial = nil, nil, 0
  setup(function ()
    if not aigc.http2 then
      why = "this libcurl has no HTTP/2"
    else
      srv, why = h2hostile.start()
    end
  end)
  teardown(function () if srv then srv.stop() end end)

  -- A client of mode `mode` with a token of its own (the server counts the
  -- requests each token received), or nil when the server could not start.
  local function client (mode, opts)
    if not srv then
      pending(why)
      return nil
    end
    serial = serial + 1
    local token = "t" .. serial
    local o = { base_url = srv.url(mode, token), ca_file = srv.ca_file, max_retries = 0,
                timeout = 5, deadline = 15 }
    for k, v in pairs(opts or {}) do o[k] = v end
    return aigc.client(o), token
  end

  -- Starts n chats on c (every other one streaming unless `plain`; what
  -- each stream delivered kept in deltas[i]) and steps until all have
  -- ended, or WAIT_BOUND passed; returns the requests and the deltas.
  local function run_async (c, n, plain)
    local reqs, deltas = {}, {}
    for i = 1, n do
      deltas[i] = {}
      local stream = not plain and i % 2 == 0 and function (d) deltas[i][#deltas[i] + 1] = d end or nil
      reqs[i] = c:chat_async { messages = MSGS, stream = stream }
    end
    local limit, left = socket.gettime() + WAIT_BOUND, n
    while left > 0 and socket.gettime() < limit do
      c:step(0.05)
      left = 0
      for i = 1, n do
        local s = reqs[i]:status()
        if s == "queued" or s == "running" then left = left + 1 end
      end
    end
    return reqs, deltas
  end

  describe("RST_STREAM", function ()
    it("INTERNAL_ERROR in the middle of a JSON answer is a connection error, retried as one", function ()
      local c, token = client("rst_internal", { max_retries = 1 })
      if not c then return end
      local res, err = c:chat { messages = MSGS }
      c:close()
      assert.is_nil(res)
      assert.equal("connect", err.kind)
      assert.matches("not closed cleanly: INTERNAL_ERROR", err.message)
      assert.equal(2, srv.count(token))   -- the first attempt and one retry
    end)

    it("INTERNAL_ERROR after a stream's first event is a stream error, not retried, the event kept", function ()
      local c, token = client("rst_internal", { max_retries = 2 })
      if not c then return end
      local seen = {}
      local res, err = c:chat { messages = MSGS, stream = function (d) seen[#seen + 1] = d end }
      c:close()
      assert.is_nil(res)
      assert.equal("stream", err.kind)
      assert.matches("the stream was interrupted: .*INTERNAL_ERROR", err.message)
      assert.same({ "half" }, seen)
      assert.equal(1, srv.count(token))   -- delivered: never sent again
    end)

    it("INTERNAL_ERROR before a Content-Length's end is a connection error, retried as one", function ()
      local c, token = client("rst_internal_cl", { max_retries = 1 })
      if not c then return end
      local res, err = c:chat { messages = MSGS }
      c:close()
      assert.is_nil(res)
      assert.equal("connect", err.kind)
      assert.matches("INTERNAL_ERROR", err.message)
      assert.equal(2, srv.count(token))
    end)

    it("CANCEL before any header is a connection error naming it, retried as one", function ()
      local c, token = client("rst_cancel", { max_retries = 1 })
      if not c then return end
      local res, err = c:chat { messages = MSGS, stream = function () end }
      c:close()
      assert.is_nil(res)
      assert.equal("connect", err.kind)
      assert.matches("CANCEL", err.message)
      assert.equal(2, srv.count(token))
    end)

    it("REFUSED_STREAM once: the request is sent again (libcurl's own resend) and answered", function ()
      local c, token = client("refused_once")
      if not c then return end
      local res, err = c:chat { messages = MSGS }
      c:close()
      assert.is_nil(err)
      assert.equal("ok", res.text)
      assert.equal(0, res.retries)   -- (not one of max_retries: the server did not process it)
      assert.equal(2, srv.count(token))
    end)

    it("REFUSED_STREAM every time ends with a connection error, libcurl's resends bounded", function ()
      local c, token = client("refused")
      if not c then return end
      local res, err = c:chat { messages = MSGS }
      c:close()
      assert.is_nil(res)
      assert.equal("connect", err.kind)
      assert.truthy(err.message ~= "")
      local n = srv.count(token)
      assert.is_true(n >= 2 and n <= 6, tostring(n))   -- libcurl: 5 resends at most
    end)
  end)

  describe("GOAWAY with 4 requests in flight, the last processed the first", function ()
    -- (libcurl 7.88 sends the 3 never processed again, but one of them, in
    -- about 1 run in 2, failed instead: "Error in the HTTP2 framing layer",
    -- a "connect" error, with max_retries 0 the call's end. 5 rounds each.)
    for _, mode in ipairs { "goaway4", "goaway4_close" } do
      it((mode == "goaway4" and "" or "then the connection closed: ")
         .. "the first is answered, the 3 never processed are sent again and answered", function ()
        for _ = 1, 5 do
          local c, token = client(mode)
          if not c then return end
          local reqs, deltas = run_async(c, 4)
          local got, retries = {}, {}
          for i = 1, 4 do
            local res, err = reqs[i]:result()
            got[i], retries[i] = res and res.text or tostring(err), res and res.retries
          end
          c:close()
          assert.same({ "before goaway", "after goaway", "after goaway", "after goaway" }, got)
          assert.same({ 0, 0, 0, 0 }, retries)   -- (not retries: never processed)
          assert.equal("after goaway", table.concat(deltas[2]))
          assert.equal(7, srv.count(token))
        end
      end)
    end
  end)

  it("a header block over libcurl's 128 KiB for HTTP/2 is a limit error, not retried", function ()
    -- (it was a "connect" error, "nghttp2_session_mem_recv() returned
    -- -902: The user callback function failed", and sent max_retries times
    -- more, each time for 300 KB of headers)
    local c, token = client("big_headers", { max_retries = 2 })
    if not c then return end
    local res, err = c:chat { messages = MSGS }
    local res2, err2 = c:chat { messages = MSGS, stream = function () end }
    c:close()
    assert.is_nil(res)
    assert.equal("limit", err.kind)
    assert.matches("the response headers are too large", err.message)
    assert.is_nil(res2)
    assert.equal("limit", err2.kind)
    assert.equal(2, srv.count(token))   -- once each
  end)

  it("an answer with trailers is the answer", function ()
    local c = client("trailers")
    if not c then return end
    local res, err = c:chat { messages = MSGS }
    local res2, err2 = c:chat { messages = MSGS, stream = function () end }
    c:close()
    assert.is_nil(err)
    assert.equal("with trailers", res.text)
    assert.is_nil(err2)
    assert.equal("with trailers", res2.text)
  end)

  -- (The server refuses the streams over its limit that the client opened
  -- before its SETTINGS came: libcurl 7.88 sends a refused stream again up
  -- to 5 times within one attempt, then fails it, "Connection died, tried 5
  -- times before giving up" (README). How many get there depends on timing:
  -- under CI's load 1 of 20 did, with max_retries = 0. So the default
  -- retries, and each request must end answered or with that error.)
  it("20 in flight to a server allowing 1 stream at a time all end: answered, or libcurl's refusal", function ()
    if not srv then pending(why); return end
    local c = aigc.client { base_url = srv.conc1_url, ca_file = srv.ca_file, max_retries = 2,
                            timeout = 5, deadline = 15 }
    local reqs = run_async(c, 20)
    local answered, other = 0, {}
    for i = 1, 20 do
      local res, err = reqs[i]:result()
      if res and res.text == "one at a time" then answered = answered + 1
      elseif not (err and err.kind == "connect" and err.message:find("Connection died", 1, true)) then
        other[#other + 1] = res and res.text or tostring(err)
      end
    end
    c:close()
    assert.same({}, other)
    assert.is_true(answered >= 1)
  end)

  -- (raw frames: Node's http2 cannot send them; any request gets one JSON answer)
  for _, case in ipairs { { "unknown_url", "raw_unknown", "50 frames of an unknown type before each answer" },
                          { "ping_url", "raw_ping", "20,000 PINGs before each answer" } } do
    it(case[3] .. ": 4 requests in flight all answered", function ()
      if not srv then pending(why); return end
      -- (timeout and deadline only bound a hang: a loaded machine took over
      -- 5 s for 20,000 PINGs and their acknowledgements, and the call ended)
      local c = aigc.client { base_url = srv[case[1]], ca_file = srv.ca_file, max_retries = 0,
                              timeout = WAIT_BOUND, deadline = WAIT_BOUND }
      local reqs = run_async(c, 4, true)
      local got = {}
      for i = 1, 4 do
        local res, err = reqs[i]:result()
        got[i] = res and res.text or tostring(err)
      end
      c:close()
      assert.same({ case[2], case[2], case[2], case[2] }, got)
      assert.equal(4, srv.count(case[2]))
    end)
  end

  describe("a server that goes quiet", function ()
    -- The server's count for `token` once it reached `n`, or after
    -- WAIT_BOUND: a call ended by a 1 s timeout may end before a loaded
    -- machine's server has taken in its request (the count said 0 or 1).
    local function count_of (token, n)
      local limit, got = socket.gettime() + WAIT_BOUND, srv.count(token)
      while got ~= n and socket.gettime() < limit do
        socket.sleep(0.05)
        got = srv.count(token)
      end
      return got
    end

    it("headers, then nothing: the timeout ends the call, the stream's idle limit a stream", function ()
      local c, token = client("silent", { timeout = 1 })
      if not c then return end
      local res, err = c:chat { messages = MSGS }
      local res2, err2 = c:chat { messages = MSGS, stream = function () end }
      c:close()
      assert.is_nil(res)
      assert.equal("timeout", err.kind)
      assert.matches("timeout: 1 s per attempt", err.message)
      assert.is_nil(res2)
      assert.equal("timeout", err2.kind)
      assert.matches("idle timeout", err2.message)
      assert.equal(2, count_of(token, 2))
    end)

    it("never reading a 2 MB body (its window never reopened): the timeout ends the call", function ()
      local c, token = client("noread", { timeout = 1 })
      if not c then return end
      local res, err = c:chat { messages = { { role = "user", content = ("x"):rep(2 * 1024 * 1024) } } }
      local up, uerr = c:files_upload { file = { data = ("y"):rep(1024 * 1024), filename = "in.jsonl" },
                                        purpose = "batch" }
      c:close()
      assert.is_nil(res)
      assert.equal("timeout", err.kind)
      assert.is_nil(up)
      assert.equal("timeout", uerr.kind)
      assert.equal(2, count_of(token, 2))
    end)
  end)

  it("an upload reset mid-reply is sent again with the same bytes, then fails readably", function ()
    local c, token = client("rst_internal", { max_retries = 1 })
    if not c then return end
    local up, err = c:files_upload { file = { data = '{"custom_id":"1"}\n', filename = "in.jsonl" },
                                     purpose = "batch" }
    c:close()
    assert.is_nil(up)
    assert.equal("connect", err.kind)
    assert.matches("INTERNAL_ERROR", err.message)
    assert.equal(2, srv.count(token))
  end)
end)
