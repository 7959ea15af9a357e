-- The bundled servers under a hostile or slow client: a request head sent a
-- byte at a time, a head of megabytes. Each case runs in a child bounded by
-- `timeout 60`, a hang's bound, not a timing (the machine may be loaded):
-- the old code took minutes there, the fixed one seconds.
local proc = require "procutil"
local devserver = require "devserver"

-- Runs `code` in a child Lua 5.4 (lua/ and spec/support on the path) under
-- `timeout 60` (or `seconds`): true or false, and what it printed.
local function bounded (code, seconds)
  local setup = "package.path = 'lua/?.lua;lua/?/init.lua;spec/support/?.lua;' .. package.path; "
  return proc.sh(("timeout %d lua5.4 -e "):format(seconds or 60) .. proc.quote(setup .. code))
end

local function cassette_server (args) return proc.cassette_server(args, finally) end

-- Child code: status(port, pieces, gap) sends the strings of `pieces` on one
-- connection, each alone (`gap` seconds between them, to be read apart),
-- and gives the status line that comes back.
local STATUS = [=[
  local socket = require "socket"
  local function status (port, pieces, gap)
    local c = assert(socket.tcp())
    c:settimeout(30)
    assert(c:connect("127.0.0.1", port))
    c:setoption("tcp-nodelay", true)
    for i, piece in ipairs(pieces) do
      if gap and i > 1 then socket.sleep(gap) end
      c:send(piece)
    end
    local line = c:receive("*l")
    c:close()
    return line
  end
]=]

describe("the bundled servers and a slow client", function ()
  it("the devserver's head sent a byte at a time: its pieces kept, not a copy of it all per byte", function ()
    -- The parser fed directly (what the loop does with each read), as for
    -- the chunk line below: the bytes the Lua heap grows by, the collector
    -- stopped, while a head with a line of 4,000 bytes comes a byte at a
    -- time (all but its last). Each byte was a copy (and a search) of the head so far:
    -- 8 MB; now the pieces. (Work counted, not timed: the machine may be loaded.)
    local ok, out = bounded([[
      local parser = require "aigc.devserver.parser"
      local conn = { pstate = "head", queue = {} }
      local head = "GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Pad: " .. ("a"):rep(4000) .. "\r\n\r\n"
      collectgarbage(); collectgarbage("stop")
      local before = collectgarbage("count")
      for i = 1, #head - 1 do parser.feed(conn, head:sub(i, i)) end
      local grew = (collectgarbage("count") - before) * 1024
      collectgarbage("restart")
      io.write(conn.pstate, " ", grew < 400000 and "small" or string.format("%.0f", grew))]])
    assert.is_true(ok, out)
    assert.equal("head small", out)   -- (all but the last byte: still in the head)
  end)

  it("the devserver reads a head of 65 kB sent a byte at a time, each byte alone", function ()
    -- The server runs in the child, on the loop of its client, which sends
    -- the next byte only once the loop has gone round: the server reads each
    -- alone. How much work a byte costs is counted above; the 300 s here
    -- only bound a hang (65,000 turns of the loop: seconds, more when loaded).
    local ok, out = bounded([[
      local uv = require "luv"
      local srv = assert(require("aigc.devserver").start { port = 0, quiet = true, announce = false })
      local head = "GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Pad: " .. ("a"):rep(65000) .. "\r\n\r\n"
      local statuses = {}
      local function one (k)
        if k > 1 then srv.close(); return end
        local c = uv.new_tcp()
        c:connect("127.0.0.1", srv.port, function (err)
          assert(not err, err)
          c:nodelay(true)
          local got, i, step = "", 0, uv.new_timer()
          c:read_start(function (_, data)
            if data then got = got .. data end
            if not data or got:find("\r\n") then
              statuses[#statuses + 1] = got:match("^%S+ (%d+)") or "none"
              c:close(); one(k + 1)
            end
          end)
          local function send ()
            i = i + 1
            if i > #head then step:close(); return end
            c:write(head:sub(i, i), function () step:start(0, 0, send) end)
          end
          send()
        end)
      end
      one(1)
      uv.run()
      io.write(table.concat(statuses, " "))]], 300)
    assert.is_true(ok, out)
    assert.equal("200", out)
  end)

  it("the devserver holds a body sent a byte at a time in about its size (over 20 times it)", function ()
    -- The server in the child, as above; before the body's last byte, what
    -- the Lua heap holds more than before the request (after full
    -- collections) is what the server keeps of it: a slot per byte was 1.8 GB
    -- for the 64 MiB a body may have. What is asserted is counted; the 300 s
    -- only bound a hang (100,000 turns of the loop: over 60 s when loaded).
    local ok, out = bounded([[
      local uv = require "luv"
      local srv = assert(require("aigc.devserver").start { port = 0, quiet = true, announce = false })
      local n = 100000
      local msg = "POST /_aigc/reset HTTP/1.1\r\nHost: x\r\nContent-Length: " .. n .. "\r\n\r\n" .. ("a"):rep(n)
      local c, i, step, base, held, status = uv.new_tcp(), 0, uv.new_timer(), nil, nil, nil
      c:connect("127.0.0.1", srv.port, function (err)
        assert(not err, err)
        c:nodelay(true)
        c:read_start(function (_, data)
          status = data and data:match("^%S+ (%d+)") or "none"
          c:close(); srv.close()
        end)
        local function send ()
          i = i + 1
          if i == #msg then
            collectgarbage(); collectgarbage()
            held = collectgarbage("count") * 1024 - base
          end
          if i > #msg then step:close(); return end
          c:write(msg:sub(i, i), function () step:start(0, 0, send) end)
        end
        collectgarbage(); collectgarbage()
        base = collectgarbage("count") * 1024
        send()
      end)
      uv.run()
      io.write(status, " ", held < 2 * n and "about its size" or string.format("%.1f times its size", held / n))]], 300)
    assert.is_true(ok, out)
    assert.equal("200 about its size", out)
  end)

  it("the devserver's chunk line sent a byte at a time: its pieces kept, not a copy of it all per byte", function ()
    -- The parser fed directly (what the loop does with each read), in a
    -- Lua 5.4 child as the devserver runs: the bytes the Lua heap grows by,
    -- the collector stopped, while a chunk's size line and then a trailer
    -- line of 4,000 bytes come a byte at a time. Each byte copied the whole
    -- line so far: 8.1 MB per line, up to its cap; 86 kB now.
    local ok, out = bounded([[
      local parser = require "aigc.devserver.parser"
      local conn = { pstate = "head", queue = {} }
      parser.feed(conn, "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
      local function grows_by (text)
        collectgarbage(); collectgarbage("stop")
        local before = collectgarbage("count")
        for i = 1, #text do parser.feed(conn, text:sub(i, i)) end
        local grew = (collectgarbage("count") - before) * 1024
        collectgarbage("restart")
        return grew < 400000 and "small" or string.format("%.0f", grew)
      end
      local states = { conn.pstate, grows_by(("0"):rep(3999) .. "3\r\n"), conn.pstate }
      parser.feed(conn, "abc\r\n0\r\n")
      states[#states + 1] = conn.pstate
      states[#states + 1] = grows_by("X-T: " .. ("t"):rep(3995) .. "\r\n")
      states[#states + 1] = conn.pstate
      states[#states + 1] = tostring(conn.no_more)
      io.write(table.concat(states, " "))]])
    assert.is_true(ok, out)
    assert.equal("size small data trailer small trailer nil", out)
  end)

  -- A client that connected and sent nothing (or half a head), or that
  -- never read what it was played, held its connection for ever (a stuck
  -- test hung CI). Past --idle-timeout of waiting on the client it is
  -- closed; a client that reads, however slowly, gets every byte.
  it("the cassette server closes a client idle past --idle-timeout; a slow reader gets it all", function ()
    local tape = os.tmpname()
    local body = ("0123456789abcdef"):rep(4 * 65536)   -- (4 MiB, 32 events)
    local events = { '{"t":0,"data":"HTTP/1.1 200 OK\\r\\nContent-Length: ' .. #body .. '\\r\\n\\r\\n"}' }
    for i = 1, #body, 131072 do events[#events + 1] = '{"t":0,"data":"' .. body:sub(i, i + 131071) .. '"}' end
    local f = assert(io.open(tape, "wb"))
    f:write('{"key":"k","raw":true,"events":[' .. table.concat(events, ",") .. ']}\n')
    f:close()
    finally(function () os.remove(tape) end)
    local port = cassette_server("--no-timing --idle-timeout 0.4 " .. proc.quote(tape))
    -- The slow reader has a server of its own with a limit of 3 s: against
    -- 0.4 s, a reader whose 20 ms pause a loaded machine stretched past it
    -- was closed (CI). What is shown stays: its pauses add up to more than
    -- the limit (counted, not timed: a sleep is never shorter), each far
    -- under it, and it gets every byte.
    local slow_port = cassette_server("--no-timing --idle-timeout 3 " .. proc.quote(tape))
    local ok, out = bounded(([[
      local socket = require "socket"
      local function open (port)
        local c = assert(socket.tcp())
        c:settimeout(30)
        assert(c:connect("127.0.0.1", port or %d))
        return c
      end
      local REQ = "GET /x HTTP/1.1\r\nHost: x\r\nx-aigc-cassette: 1\r\n\r\n"
      local silent, half = open(), open()
      half:send("GET /x HTTP/1.1\r\nHost: x\r\n")
      print("silent", (select(2, silent:receive(1))))
      print("half", (select(2, half:receive(1))))
      local slow = open(%d)   -- (reads 64 KiB after each 60 ms pause: 64 of them, 3.84 s)
      slow:send(REQ)
      local got, paused = {}, 0
      while true do
        socket.sleep(0.06)
        paused = paused + 0.06
        local data, err, part = slow:receive(65536)
        got[#got + 1] = data or part
        if err then break end
      end
      print("slow", #table.concat(got), paused > 3)
      local never = open()
      never:send(REQ)
      socket.sleep(1.2)   -- (past the limit: the server waited on it that long)
      local data, err, part = never:receive("*a")
      print("never", err or "closed", #(data or part) < 4 * 1048576)
      silent:close(); half:close(); slow:close(); never:close()]]):format(port, slow_port))
    assert.is_true(ok, out)
    local whole = #("HTTP/1.1 200 OK\r\nContent-Length: " .. #body .. "\r\n\r\n") + #body
    assert.equal("silent\tclosed\nhalf\tclosed\nslow\t" .. whole
                 .. "\ttrue\nnever\tclosed\ttrue\n", out)
  end)

  -- The README's other half of that promise: the idle limit is the
  -- client's, "never while the proxy waits for the server it records" (a
  -- model that thinks for minutes before its first byte is recorded whole).
  it("the recording cassette server never closes a client while it waits on the upstream past --idle-timeout",
     function ()
    local srv = devserver.start()
    finally(function () srv:stop() end)
    local port = cassette_server("--idle-timeout 0.2 --record " .. srv.url)
    local ok, out = bounded(STATUS .. ([[
      local body = '{"model":"fault:delay=1200","messages":[{"role":"user","content":"Echo: waited"}]}'
      print(status(%d, { "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nx-aigc-cassette-key: k\r\n"
                         .. "Content-Type: application/json\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body }))
      ]]):format(port))
    assert.is_true(ok, out)
    assert.equal("HTTP/1.1 200 OK\n", out)
    assert.equal("Echo: waited", srv:last().body_json.messages[1].content)
  end)

  it("the cassette server run by hand: its usage names --idle-timeout and --record; a bad limit is refused", function ()
    -- (the README sends a user there; 0 closed every connection at once, a word was 60 s unsaid)
    local function run (args)
      local ok, out = proc.sh("timeout 20 lua5.4 lua/aigc/cassette_server.lua " .. args .. " </dev/null 2>&1")
      return ok, out
    end
    local ok, out = run("")
    assert.is_false(ok)
    assert.matches("usage: cassette_server.lua CASSETTE [--record URL] [--idle-timeout SECONDS]", out, 1, true)
    local tape = os.tmpname()
    finally(function () os.remove(tape) end)
    for _, bad in ipairs { "0", "-1", "abc", "inf" } do
      ok, out = run(proc.quote(tape) .. " --idle-timeout " .. bad)
      assert.is_false(ok, bad)
      assert.matches("^%-%-idle%-timeout: SECONDS > 0 expected\n", out)
    end
  end)

  it("the cassette server refuses a head over 1 MiB (431) and goes on answering", function ()
    -- (it kept any head whole, joined again at each read: a head of 20 MB
    -- held 160 MB and 1.6 s of its loop, one of 200 MB minutes)
    local port = cassette_server()
    local ok, out = bounded(STATUS .. ([[
      local function pad (n)   -- (a head with n lines of 64 KiB)
        local pieces = { "GET /v1/models HTTP/1.1\r\nHost: x\r\nx-aigc-cassette: miss\r\n" }
        for _ = 1, n do pieces[#pieces + 1] = "X-Pad: " .. ("a"):rep(65536) .. "\r\n" end
        pieces[#pieces + 1] = "\r\n"
        return pieces
      end
      print(status(%d, pad(40)))   -- (2.5 MiB)
      print(status(%d, pad(10)))   -- (640 KiB: under the bound)
      print(status(%d, pad(0)))]]):format(port, port, port))
    assert.is_true(ok, out)
    assert.equal("HTTP/1.1 431 Request Header Fields Too Large\nHTTP/1.1 404 Not Found\nHTTP/1.1 404 Not Found\n", out)
  end)

  it("the cassette server refuses a body over 1 GiB at once (413), and a Content-Length that is none (400)", function ()
    -- (it waited for the 10 GB, holding all the client sent)
    local port = cassette_server()
    local ok, out = bounded(STATUS .. ([[
      local function length (n)
        return { "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nx-aigc-cassette: miss\r\nContent-Length: "
                 .. n .. "\r\n\r\nabc" }
      end
      print(status(%d, length("10000000000")))
      print(status(%d, length("-5")))
      print(status(%d, length("3")))]]):format(port, port, port))
    assert.is_true(ok, out)
    assert.equal("HTTP/1.1 413 Payload Too Large\nHTTP/1.1 400 Bad Request\nHTTP/1.1 404 Not Found\n", out)
  end)

  it("the cassette server, recording, sends a chunked body on (an upload of a pipe) and answers", function ()
    -- (it took the body for none: the upstream got the head alone and
    -- waited for the chunks, the client for an answer)
    local srv = devserver.start()
    finally(function () srv:stop() end)
    local port = cassette_server("--record " .. srv.url)
    local ok, out = bounded(STATUS .. ([[
      local function chunked (...)   -- (its pieces read apart)
        return { "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nx-aigc-cassette-key: k\r\n"
                 .. "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n", ... }
      end
      local body = '{"model":"m","messages":[{"role":"user","content":"hi"}]}'
      print(status(%d, chunked(("%%x\r\n%%s"):format(#body - 4, body:sub(1, 20)), body:sub(21, -5) .. "\r",
                               "\n4;x=y\r\n", body:sub(-4) .. "\r\n0\r\n", "\r\n"), 0.01))
      print(status(%d, chunked("zz\r\n"), 0.01))
      print(status(%d, chunked("40000001\r\n"), 0.01))]]):format(port, port, port))
    assert.is_true(ok, out)
    assert.equal("HTTP/1.1 200 OK\nHTTP/1.1 400 Bad Request\nHTTP/1.1 413 Payload Too Large\n", out)
    local last = srv:last()
    assert.equal("hi", last.body_json.messages[1].content)
    assert.equal("chunked", last.headers["transfer-encoding"])
  end)

  it("a client recording a cassette through the proxy uploads a file of no known size (a /proc file)", function ()
    -- (sent chunked, as the README says; the proxy sent the head alone: the
    -- call failed on its timeout, "Operation too slow")
    local aigc = require "aigc"
    local srv = devserver.start()
    finally(function () srv:stop() end)
    local tape = os.tmpname()
    os.remove(tape)
    local c = aigc.client { base_url = srv.base_url, api_key = "sk-test", max_retries = 0, timeout = 30,
                            cassette = { path = tape, mode = "record" } }
    finally(function () c:close(); os.remove(tape) end)
    local res, err = c:files_upload { file = "/proc/cpuinfo", purpose = "assistants" }
    assert.is_nil(err and err.message)
    assert.matches("^file%-", res.id)
    local last = srv:last()
    assert.equal("/v1/files", last.path)
    assert.equal("chunked", last.headers["transfer-encoding"])
  end)

  it("the devserver refuses a chunk size of 16 hex digits (413) and goes on answering", function ()
    -- ("ffffffffffffffff" wrapped to -1: the body loop went back a byte at
    -- a time, forever, and the server answered no one again)
    local srv = devserver.start()
    finally(function () srv:stop() end)
    local ok, out = bounded(STATUS .. ([[
      local chunked = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      print(status(%d, { chunked .. "ffffffffffffffff\r\nabc" }))
      print(status(%d, { chunked .. "8000000000000000\r\nabc" }))
      print(status(%d, { "GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n" }))]]):format(srv.port, srv.port, srv.port))
    assert.is_true(ok, out)
    assert.equal("HTTP/1.1 413 Payload Too Large\nHTTP/1.1 413 Payload Too Large\nHTTP/1.1 200 OK\n", out)
  end)
end)
