-- The hostile-server matrix: every fault the bundled devserver can inject,
-- in every way a script can call (blocking, non-blocking, streaming). Each
-- cell checks the error kind the module must report, that the error is a
-- proper aigc error with a one-line tostring, and that the same client then
-- completes a normal request: no fault leaves a client broken, and no
-- garbage from one response ever becomes the next one.
--
-- Retries are off (max_retries = 0) so that kinds are checked, not retries;
-- the last describe checks that connection faults are retried by default.
local aigc = require "aigc"
local devserver = require "devserver"
local portable = require "portable"

portable.warn_on()

local clock = require("aigc.core").now

-- {======================================================
-- The modes: three ways to run one call
-- =======================================================

local function pending (req)
  local s = req:status()
  return s == "queued" or s == "running"
end

-- client:chat { ... } (a stream callback only when the cell streams).
local function run_blocking (client, params)
  return client:chat(params)
end

-- client:chat { ..., stream = fn }: deltas counted, the call still blocks.
local function run_streaming (client, params)
  local deltas = 0
  params.stream = function () deltas = deltas + 1 end
  return client:chat(params)
end

-- client:chat_async { ... } driven by client:step(0.01): on_error exactly
-- once, on_done never (nor later steps), and req:result() agrees.
local function run_nonblocking (client, params, stream)
  local dones, errors, seen = 0, 0, nil
  params.on_done = function () dones = dones + 1 end
  params.on_error = function (e) errors = errors + 1; seen = e end
  if stream then params.stream = function () end end
  local req = client:chat_async(params)
  local deadline = clock() + 20
  while pending(req) do
    assert(clock() < deadline, "the request is still pending after 20 s")
    local _, step_errors = client:step(0.01)
    assert.is_nil(step_errors)   -- no callback raised
  end
  for _ = 1, 3 do client:step(0) end   -- nothing more may be delivered
  local res, err = req:result()
  if res == nil then
    assert.equal("failed", req:status())
    assert.equal(1, errors)
    assert.equal(0, dones)
    assert.is_true(rawequal(seen, err))
  else
    assert.equal("done", req:status())
    assert.equal(1, dones)
    assert.equal(0, errors)
  end
  return res, err
end

local MODES = {
  blocking = function (client, params) return run_blocking(client, params) end,
  nonblocking = function (client, params, cell) return run_nonblocking(client, params, cell.stream) end,
  streaming = function (client, params) return run_streaming(client, params) end,
}
local MODE_ORDER = { "blocking", "nonblocking", "streaming" }

-- }======================================================


-- {======================================================
-- The matrix
-- =======================================================

-- Each fault: the devserver spec, client options, and the error kind per
-- mode. `modes` maps a mode to a string (the kind) or a table overriding
-- fault/opts/expect/stream for that mode; modes absent do not apply.
-- `expect = "ok-or-error"` (long-body) accepts the correct result or a clear
-- error. Kinds follow DESIGN.md "Errors" and REFERENCE.md: a malformed reply
-- is "parse"; a transfer that breaks before any stream event is delivered
-- is a connection error ("connect"), after one it is "stream" (an
-- interrupted stream is never retried nor accepted); over a size limit is
-- "limit"; silence past a timeout is "timeout"; an error sent by the server
-- in the stream as JSON is "api".
local ALL_PARSE = { blocking = "parse", nonblocking = "parse", streaming = "parse" }

local FAULTS = {
  { name = "an empty body (Content-Length: 0)", fault = "body=empty", modes = ALL_PARSE },
  { name = "truncated JSON", fault = "body=malformed", modes = ALL_PARSE },
  { name = "JSON that is not an object ([1,2,3])", fault = "body=not-object", modes = ALL_PARSE },
  { name = "a reply without choices", fault = "body=no-choices", modes = ALL_PARSE },
  { name = "choices that is not an array", fault = "body=choices-not-array", modes = ALL_PARSE },
  { name = "JSON nested 100,000 levels deep", fault = "body=deep", modes = ALL_PARSE },
  { name = "a number beyond double range (1e400)", fault = "body=huge-number", modes = ALL_PARSE },
  { name = "invalid UTF-8 in a string", fault = "body=invalid-utf8", modes = ALL_PARSE },
  { name = "a response larger than max_response_bytes",
    modes = {
      -- An SSE line of 64 MiB with no line end, under the default 64 MiB limit.
      streaming = { fault = "huge-line=67108864", expect = "limit" },
      -- Its non-streamed equivalent: a 200 kB body over a 100 kB limit.
      blocking = { fault = "body=huge,size=200000", opts = { max_response_bytes = 100000 }, expect = "limit" },
      nonblocking = { fault = "body=huge,size=200000", opts = { max_response_bytes = 100000 }, expect = "limit" },
    } },
  { name = "a body shorter than its Content-Length (close mid-body)", fault = "close-mid-body",
    modes = { blocking = "connect", nonblocking = "connect", streaming = "stream" } },
  -- drip=1: the garbage comes 1 ms after the last byte of the body, so that
  -- libcurl has ended the response (and pooled the connection) before it
  -- arrives, every time; without it the outcome depends on TCP timing.
  { name = "a body longer than its Content-Length (garbage after it)", fault = "long-body,drip=1",
    modes = { blocking = "ok-or-error", nonblocking = "ok-or-error", streaming = "ok-or-error" } },
  { name = "a connection reset mid-body", fault = "reset",
    modes = { blocking = "connect", nonblocking = "connect", streaming = "stream" } },
  { name = "a garbage status line", fault = "garbage-status",
    modes = { blocking = "connect", nonblocking = "connect", streaming = "connect" } },
  { name = "a server that accepts and never answers", fault = "hang", opts = { timeout = 0.3 },
    modes = { blocking = "timeout", nonblocking = "timeout", streaming = "timeout" } },
  { name = "a slow drip past the total timeout (non-stream)", fault = "drip=20", opts = { timeout = 0.3 },
    modes = { blocking = "timeout", nonblocking = "timeout" } },
  { name = "a stream dripping slower than its idle timeout", fault = "drip=700", opts = { timeout = 0.3 },
    modes = { streaming = "timeout", nonblocking = { expect = "timeout", stream = true } } },

  -- Mid-stream faults: streaming mode, and chat_async with a stream callback.
  { name = "a stream dropped after 3 events", fault = "drop-after=3",
    modes = { streaming = "stream", nonblocking = { expect = "stream", stream = true } } },
  { name = "a stream without [DONE]", fault = "no-done",
    modes = { streaming = "stream", nonblocking = { expect = "stream", stream = true } } },
  { name = "an `event: error` mid-stream", fault = "error-event",
    modes = { streaming = "api", nonblocking = { expect = "api", stream = true } } },
  { name = "a `data: {\"error\": ...}` mid-stream", fault = "error-data",
    modes = { streaming = "api", nonblocking = { expect = "api", stream = true } } },
  { name = "a malformed chunk", fault = "malformed-chunk",
    modes = { streaming = "parse", nonblocking = { expect = "parse", stream = true } } },
  { name = "a stream whose choice never gets a finish_reason", fault = "no-finish-reason",
    modes = { streaming = "stream", nonblocking = { expect = "stream", stream = true } } },
  { name = "a stream event larger than max_response_bytes", fault = "event-bytes=200000",
    opts = { max_response_bytes = 100000 },
    modes = { streaming = "limit", nonblocking = { expect = "limit", stream = true } } },
}

-- }======================================================

local PROMPT = "Repeat after me: the fault matrix"
local REPLY = "the fault matrix"

local function check_error (err, kind)
  assert.is_true(aigc.is_error(err), "not an aigc error: " .. tostring(err))
  local line = tostring(err)
  assert.equal(kind, err.kind, "wrong kind; the error was: " .. line)
  assert.matches("^aigc: ", line)
  assert.is_nil(line:find("[\r\n]"), "tostring(err) is not one line: " .. string.format("%q", line))
  assert.is_string(err.message)
  assert.truthy(#err.message > 0)
end

-- The same client, right after the fault, answers a normal request
-- correctly (a distinct text: the garbage of the fault never becomes it).
local function check_usable (client, n)
  local want = "still usable " .. n
  local res, err = client:chat { messages = { { role = "user", content = "Repeat after me: " .. want } } }
  assert.is_nil(err, err and tostring(err))
  assert.equal("chat.completion", res.object)
  assert.equal(want, res.text)
  local res2, err2 = client:chat { messages = { { role = "user", content = "Repeat after me: " .. want .. "!" } },
                                   stream = function () end }
  assert.is_nil(err2, err2 and tostring(err2))
  assert.equal(want .. "!", res2.text)
end

local closing

describe("fault matrix", function ()
  local srv
  local cells = 0

  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)
  -- each test's clients are closed after it (`local client <close>` on 5.4)
  local scope = portable.scope()
  closing = scope.keep
  after_each(scope.close_all)

  for _, f in ipairs(FAULTS) do
    for _, mode in ipairs(MODE_ORDER) do
      local m = f.modes[mode]
      if m ~= nil then
        if type(m) == "string" then m = { expect = m } end
        local cell = {
          fault = m.fault or f.fault,
          opts = m.opts or f.opts or {},
          expect = m.expect,
          stream = m.stream,
        }
        cells = cells + 1
        local n = cells
        it(("%s x %s -> %s"):format(f.name, mode, cell.expect), function ()
          local copts = { base_url = srv.base_url, model = "aigc-dev", max_retries = 0 }
          for k, v in pairs(cell.opts) do copts[k] = v end
          local client = closing(aigc.client(copts))
          local params = { messages = { { role = "user", content = PROMPT } },
                           headers = { ["x-aigc-fault"] = cell.fault } }
          local res, err = MODES[mode](client, params, cell)
          if cell.expect == "ok-or-error" then
            if res ~= nil then
              assert.is_nil(err)
              assert.equal(REPLY, res.text)
            else
              assert.is_true(aigc.is_error(err))
              local line = tostring(err)
              assert.matches("^aigc: %a+ error", line)
              assert.is_nil(line:find("[\r\n]"))
            end
          else
            assert.is_nil(res, "the call succeeded; expected a " .. cell.expect .. " error")
            check_error(err, cell.expect)
          end
          check_usable(client, n)
          assert.equal(0, client:active())
        end)
      end
    end
  end

  describe("stream idle timeout", function ()
    -- A listening socket of this process (accept() does not wait) and a
    -- client of it, without retries, with that timeout.
    local function served_here (timeout)
      local server = assert(require("socket").bind("127.0.0.1", 0))
      finally(function () server:close() end)
      server:settimeout(0)
      local _, port = server:getsockname()
      return server, closing(aigc.client { base_url = "http://127.0.0.1:" .. port .. "/v1", max_retries = 0,
                                           timeout = timeout })
    end

    -- The server is this process: it sends a line before each step, so
    -- every poll of the client finds bytes, and the client reads them before
    -- it looks at its timers. (A server process of its own, the devserver's
    -- drip of a byte every 2 ms, was kept off a loaded machine's CPU past
    -- the 0.5 s once, and the stream rightly timed out: idle it was.)
    it("does not fire while bytes keep coming (a line before each step, idle 0.5 s, watched for 1.4 s)", function ()
      local server, client = served_here(0.5)
      local errors, dones, conn = 0, 0, nil
      local req = client:chat_async {
        messages = { { role = "user", content = PROMPT } },
        stream = function () end,
        on_error = function () errors = errors + 1 end,
        on_done = function () dones = dones + 1 end,
      }
      local stop = clock() + 0.5 + 0.9
      while clock() < stop do
        if conn then
          assert(conn:send(":\n"))   -- (an SSE comment: bytes, no event)
        else
          conn = server:accept()   -- (the request is left unread)
          if conn then
            finally(function () conn:close() end)
            assert(conn:send("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"))
          end
        end
        local _, step_errors = client:step(0.01)
        assert.is_nil(step_errors)
        local _, err = req:result()
        assert.is_nil(err, err and tostring(err))
        assert.equal("running", req:status())
      end
      assert.truthy(conn, "the client never connected")
      assert.equal(0, errors)
      assert.equal(0, dones)
      assert.is_true(req:cancel())
      assert.equal("canceled", req:status())
      local _, err = req:result()
      assert.equal("canceled", err.kind)
      assert.equal(0, errors)   -- canceling runs no callback
      -- and the client goes on: a call answered here too (check_usable's, stepped)
      local want = "still usable drip"
      local body = '{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,'
        .. '"message":{"role":"assistant","content":"' .. want .. '"},"finish_reason":"stop"}]}'
      local next_req = client:chat_async { messages = { { role = "user", content = "Repeat after me: " .. want } } }
      local c2, got, deadline = nil, "", clock() + 20
      while pending(next_req) do
        assert(clock() < deadline, "the call is still pending after 20 s")
        c2 = c2 or server:accept()
        if c2 and got then
          c2:settimeout(0)
          local data, _, part = c2:receive(65536)
          got = got .. (data or part or "")
          local head_end = got:find("\r\n\r\n", 1, true)
          if head_end and #got >= head_end + 3 + tonumber(got:match("[Cc]ontent%-[Ll]ength: *(%d+)") or 0) then
            assert(c2:send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " .. #body
                           .. "\r\nConnection: close\r\n\r\n" .. body))
            got = nil   -- (answered)
          end
        end
        client:step(0.01)
      end
      if c2 then c2:close() end
      local res, err2 = next_req:result()
      assert.is_nil(err2, err2 and tostring(err2))
      assert.equal(want, res.text)
    end)

    -- (the gaps are 6x under the limit: with 100 ms against 0.4 s, a CI run
    -- with its lanes and other work on 2 CPUs once saw a gap over 0.4 s. The
    -- server is this process, as above: an event due is sent before the
    -- step, so a stall of the machine delays it and the client's look alike)
    it("counts between events, not in total (8 events 150 ms apart, idle 0.9 s)", function ()
      local server, client = served_here(0.9)
      local function chunk (delta, finish)
        return '{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,'
          .. '"delta":' .. delta .. ',"finish_reason":' .. (finish and '"stop"' or "null") .. '}]}'
      end
      local events = { chunk('{"role":"assistant","content":""}') }
      for _, word in ipairs { "one", " two", " three", " four", " five" } do
        events[#events + 1] = chunk('{"content":"' .. word .. '"}')
      end
      events[#events + 1] = chunk("{}", true)
      events[#events + 1] = "[DONE]"
      local started = clock()
      local deltas = {}
      local req = client:chat_async {
        messages = { { role = "user", content = "Repeat after me: one two three four five" } },
        stream = function (d) deltas[#deltas + 1] = d end,
      }
      local conn, sent, next_at, deadline = nil, 0, nil, clock() + 20
      while pending(req) do
        assert(clock() < deadline, "the call is still pending after 20 s")
        if not conn then
          conn = server:accept()
          if conn then
            finally(function () conn:close() end)
            conn:settimeout(0)
            assert(conn:send("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"))
            next_at = clock()
          end
        else
          conn:receive(65536)   -- (the request, read and dropped: a close never finds it unread)
          if sent < #events and clock() >= next_at then
            sent = sent + 1
            assert(conn:send("data: " .. events[sent] .. "\n\n"))
            next_at = clock() + 0.15
            if sent == #events then conn:shutdown("send") end
          end
        end
        client:step(0.01)
      end
      local res, err = req:result()
      assert.is_nil(err, err and tostring(err))
      assert.truthy(clock() - started > 0.9)   -- longer in total than the timeout
      assert.equal("one two three four five", res.text)
      assert.equal(res.text, table.concat(deltas))
    end)
  end)

  describe("with the default retries", function ()
    local counter = 0
    local function once (spec)
      counter = counter + 1
      return { messages = { { role = "user", content = PROMPT } },
               headers = { ["x-aigc-fault"] = ("%s,times=1,key=retry%d"):format(spec, counter) } }
    end

    for _, spec in ipairs { "reset", "close-mid-body", "garbage-status", "hang" } do
      it("retries a connection fault (" .. spec .. ") and succeeds", function ()
        srv:reset()
        local client = closing(aigc.client { base_url = srv.base_url, timeout = 0.5 })
        local res, err = client:chat(once(spec))
        assert.is_nil(err, err and tostring(err))
        assert.equal(REPLY, res.text)
        assert.equal(1, res.retries)
        assert.equal(2, srv:stats().requests_total)
      end)
    end

    it("never retries a stream interrupted after its first event", function ()
      srv:reset()
      local client = closing(aigc.client { base_url = srv.base_url })
      local p = once("drop-after=2")
      p.stream = function () end
      local res, err = client:chat(p)
      assert.is_nil(res)
      assert.equal("stream", err.kind)
      assert.equal(0, err.retries)
      assert.equal(1, srv:stats().requests_total)
    end)
  end)
end)
