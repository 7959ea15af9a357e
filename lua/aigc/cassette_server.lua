--[[
aigc cassette replay server -- serves a cassette's recorded exchanges over
loopback HTTP so that a client in replay mode runs through the real engine.

Run by aigc.cassette (never by hand, though it can be):
  lua5.4 lua/aigc/cassette_server.lua CASSETTE [--parent-pid PID] [--no-timing]
  lua5.4 lua/aigc/cassette_server.lua CASSETTE --record http://HOST:PORT [--parent-pid PID]
It needs Lua 5.4, luv and lua-cjson (what the bundled devserver needs),
whatever Lua the client runs on. When ready it prints one line to stdout:
  `aigc cassette server PORT PID` (PORT on 127.0.0.1, PID its own).

The client chooses the exchange (the canonical request key is computed in
one place, aigc.cassette) and names it in the header `x-aigc-cassette: N`
(the exchange on line N of the cassette). This server only plays bytes:
an exchange it recorded itself (`raw`) is the upstream's whole response,
status line, headers and body framing included, played back as it came;
one the client recorded (an https upstream, see aigc.cassette) is
the recorded status, headers and body, or for a stream the recorded SSE
event bytes at their recorded offsets (unless --no-timing), the body ended
by closing the connection (`Connection: close`: HTTP/1.1 allows a body
delimited by the close when it has no length). `x-aigc-cassette: miss`
with `x-aigc-cassette-request: DESCRIPTION` answers 404 with an OpenAI
error body (code "cassette_miss") naming the request, so a miss is one
error whatever kind of call made it. A request is read whole (its body by
Content-Length or chunks) before it is answered; a head over 1 MiB is
answered 431, a body over 1 GiB 413 (no client sends either).
RECORDING (--record URL: a plain-http upstream such as the bundled server):
a proxy. Each request is sent on to the upstream as it came, minus the
x-aigc-cassette-* headers, with `Connection: close`; the response goes
back to the client byte for byte as it arrives and is appended to the
cassette as one line `{key, raw = true, events = [{t, data}]}`: the bytes
cut after each newline (so no UTF-8 character is split), t in ms from the
request. The key comes from the client in `x-aigc-cassette-key`, and the
secrets of its Lua state's live clients in `x-aigc-cassette-secrets`
(hex, ","-joined; masked as the request's own credentials). Nothing
of the request (its Authorization header) is stored, and the credentials
it carries are masked in what is stored of the response (a server may
echo the key in a header or a body), as the engine scrubs errors: any run
of 12 bytes or more of one or of its base64, hex or percent-encoded
forms, in any case, as it is or in a JSON string with any character
escaped ("\/", Gson's "\u003d"), becomes `[redacted]***`, as many bytes;
one a stream's deltas carry a few characters at a time, `*` each.
IDLE: a connection that keeps the server waiting on its client -- for the
rest of a request, or to read what it is sent -- longer than
--idle-timeout SECONDS (60) is closed (a stuck client hung a test run);
never while the proxy waits for its upstream. What is sent waits for the
client to read it (each event's write, the upstream's reads past 1 MiB
unread): a client that never reads holds no growing queue and no CPU.
It exits when its parent is gone
(polled every 0.5 s) or on SIGTERM; a
recording proxy's SIGTERM first lets the exchanges in flight finish and be
written (at most 5 s).
]]

local uv = require "luv"
local cjson = require "cjson"

local path, parent, timing, upstream, idle_ms = nil, nil, true, nil, 60000
local USAGE = "usage: cassette_server.lua CASSETTE [--record URL] [--idle-timeout SECONDS] [--no-timing] "
  .. "[--parent-pid PID]\n"
do
  local i = 1
  while arg[i] do
    if arg[i] == "--parent-pid" then parent = tonumber(arg[i + 1]); i = i + 1
    elseif arg[i] == "--idle-timeout" then
      local s = tonumber(arg[i + 1])   -- (0, a word: every connection closed at once, or 60 s unsaid)
      if not (s and s > 0 and s < 1e9) then
        io.stderr:write("--idle-timeout: SECONDS > 0 expected\n", USAGE)
        os.exit(2)
      end
      idle_ms = math.max(1, math.floor(s * 1000)); i = i + 1
    elseif arg[i] == "--record" then upstream = arg[i + 1]; i = i + 1
    elseif arg[i] == "--no-timing" then timing = false
    else path = arg[i] end
    i = i + 1
  end
end
if not path then
  io.stderr:write(USAGE)
  os.exit(2)
end

-- (the masking of what is stored: a module beside this script, found by
-- its own path when aigc is not on package.path)
local script_dir = (arg and arg[0] or ""):match("^(.*)/aigc/[^/]*$")
if script_dir then package.path = script_dir .. "/?.lua;" .. package.path end
local masking = require "aigc.cassette_mask"
local B64, base64 = masking.B64, masking.base64
local credentials, pieces_of, mask, mask_split = masking.credentials, masking.pieces_of, masking.mask,
  masking.mask_split
local utf8_text, drop_private_headers = masking.utf8_text, masking.drop_private_headers

-- (the decoder of what is played: unbase64's string of bits took seconds
-- for a megabyte of audio)
local B64_VALUE = {}
for i = 1, 64 do B64_VALUE[B64:byte(i)] = i - 1 end

local function decode64 (s)
  return ((s:gsub("[^%w+/]", ""):gsub("..?.?.?", function (g)
    local n = 0
    for i = 1, 4 do n = n * 64 + (B64_VALUE[g:byte(i) or 0] or 0) end
    local bytes = string.char(math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
    return bytes:sub(1, #g - 1)   -- (4 characters: 3 bytes; 3: 2; 2: 1)
  end)))
end

-- The exchanges, by line number (blank lines keep their number).
local exchanges = {}
if not upstream then
  local f = assert(io.open(path, "rb"))
  local n = 0
  for line in f:lines() do
    n = n + 1
    -- (a line that does not decode is a torn last one, which the client
    -- names no request with: the client refuses any other)
    if line:find("%S") then
      local ok, x = pcall(cjson.decode, line)
      if ok then
        exchanges[n] = x
        if type(x) == "table" and x.body == nil and type(x.body_b64) == "string" then x.body = decode64(x.body_b64) end
        for _, ev in ipairs(type(x) == "table" and type(x.events) == "table" and x.events or {}) do
          if type(ev) == "table" and ev.data == nil and type(ev.b64) == "string" then ev.data = decode64(ev.b64) end
        end
      end
    end
  end
  f:close()
end

local REASONS = { [200] = "OK", [400] = "Bad Request", [401] = "Unauthorized", [404] = "Not Found",
                  [413] = "Payload Too Large", [429] = "Too Many Requests",
                  [431] = "Request Header Fields Too Large", [500] = "Internal Server Error",
                  [507] = "Insufficient Storage" }
-- Hop-by-hop and length headers: this server sets its own.
local SKIP = { ["content-length"] = true, ["transfer-encoding"] = true, ["connection"] = true,
               ["keep-alive"] = true }

local function head (status, headers, content_length)
  local lines = { ("HTTP/1.1 %d %s"):format(status, REASONS[status] or "Status") }
  for name, value in pairs(headers or {}) do
    if not SKIP[name:lower()] then lines[#lines + 1] = name .. ": " .. tostring(value) end
  end
  if content_length then lines[#lines + 1] = "Content-Length: " .. content_length end
  lines[#lines + 1] = "Connection: close"
  return table.concat(lines, "\r\n") .. "\r\n\r\n"
end

-- Answers `status` with an OpenAI error body, then closes; `linger`: once
-- the client closes too, at most 2 s later (the caller drops what it still
-- reads: closed with bytes unread, the socket sends a reset, which can
-- take the answer with it).
local function refuse (sock, status, message, code, linger)
  local body = cjson.encode { error = { message = message, type = "invalid_request_error", code = code,
                                        param = cjson.null } }
  sock:write(head(status, { ["content-type"] = "application/json" }, #body) .. body)
  if not linger then return sock:shutdown(function () sock:close() end) end
  sock:shutdown()
  local t = uv.new_timer()
  t:start(2000, 0, function () t:close(); if not sock:is_closing() then sock:close() end end)
end

local MAX_HEAD = 1024 * 1024
local MAX_BODY = 1024 * 1024 * 1024   -- (more than an upload takes: OpenAI's files are at most 512 MB)

-- The connections the server waits on (the loop time since when): for the
-- rest of a request, or for their writes to be read. Swept for those past
-- idle_ms, closed (see IDLE above).
local waiting = {}
local function wait_on (sock) waiting[sock] = uv.now() end
local function done_waiting (sock) waiting[sock] = nil end
local sweeper = uv.new_timer()
sweeper:start(idle_ms, math.max(10, math.min(1000, math.floor(idle_ms / 4))), function ()
  local now = uv.now()
  for sock, since in pairs(waiting) do
    if sock:is_closing() or now - since >= idle_ms then
      waiting[sock] = nil
      if not sock:is_closing() then sock:close() end
    end
  end
end)

-- Writes `data` on `sock`, waited on until the client has it; then(err).
local function send (sock, data, after)
  if sock:is_closing() then return after and after("closed") end
  wait_on(sock)
  sock:write(data, function (err)
    if sock:get_write_queue_size() == 0 then done_waiting(sock) else wait_on(sock) end
    if after then after(err) end
  end)
end

-- Plays exchange `x` on `sock`, then closes it: each event once the one
-- before is written (a client that does not read stops the play).
local function play (sock, x)
  local function finish () if not sock:is_closing() then sock:shutdown(function () sock:close() end) end end
  if not x.events then
    local body = x.body or ""
    return send(sock, head(x.status or 200, x.headers, #body) .. body, finish)
  end
  if not x.raw then send(sock, head(x.status or 200, x.headers)) end
  local i, timer, t0 = 0, uv.new_timer(), uv.now()
  local function next_event ()
    i = i + 1
    local ev = x.events[i]
    if ev == nil or sock:is_closing() then timer:close(); return finish() end
    send(sock, ev.data, function (err)
      if err then timer:close(); return finish() end
      local nxt = x.events[i + 1]
      local wait = (timing and nxt) and math.max(0, math.floor((nxt.t or 0) - (uv.now() - t0))) or 0
      timer:start(wait, 0, next_event)
    end)
  end
  timer:start(timing and math.floor(x.events[1] and x.events[1].t or 0) or 0, 0, next_event)
end

-- The upstream of a recording: host, port, address.
local up_host, up_port, up_addr
if upstream then
  -- (an IPv6 literal too, "http://[::1]:8080", and a scheme in capitals:
  -- both made the proxy exit, and the client raised that its server "did
  -- not start (needs lua5.4 with luv...)")
  local rest = upstream:match("^[Hh][Tt][Tt][Pp]://(.*)$") or ""
  local literal, port6 = rest:match("^%[([%x:.]+)%]:?(%d*)")
  if literal then up_host, up_port = "[" .. literal .. "]", port6
  else up_host, up_port = rest:match("^([^/:?]+):?(%d*)") end
  if not up_host then io.stderr:write("--record needs an http:// URL\n") os.exit(2) end
  up_port = tonumber(up_port) or 80
  -- IPv4 first (a "localhost" server listening on 127.0.0.1 alone), else any
  local ai = not literal and uv.getaddrinfo(up_host, nil, { socktype = "stream", family = "inet" })
  ai = ai or assert(uv.getaddrinfo(literal or up_host, nil, { socktype = "stream" }))
  up_addr = ai[1].addr
end

-- A failed append (a full disk) lost the exchange unsaid: the first one's
-- reason is kept, told on stdout (the client reads it as it closes the
-- cassette and reports it, kind "io") and to every later request, which is
-- not forwarded (a call made and paid for, then lost from the tape).
local tape_failed, lost = nil, 0
local function tape_fail (why)
  lost = lost + 1
  tape_failed = tape_failed or ("could not write " .. path .. ": " .. tostring(why))
  io.stdout:write(("aigc cassette server: %s (%d exchange(s) not on the tape)\n"):format(tape_failed, lost))
  io.stdout:flush()
end

local function append_exchange (key, events, secrets)
  local fd, oerr = uv.fs_open(path, "a", tonumber("600", 8))
  if not fd then return tape_fail(oerr) end
  drop_private_headers(events)
  local pieces, whole = pieces_of(secrets)
  mask_split(events, pieces, whole)
  for _, ev in ipairs(events) do
    ev.data = mask(ev.data, pieces, whole)
    -- Bytes that are no text (audio, an image, a gzip body) as base64:
    -- written as they came, the line was no JSON the client could read,
    -- and the whole cassette failed to open ("not a cassette exchange").
    if not utf8_text(ev.data) then ev.b64, ev.data = base64(ev.data), nil end
  end
  -- (one write(2) for the line, unbuffered: a long line went out in 4 KiB
  -- blocks then the rest, and the client appends to the same file -- a
  -- reply the response cache gave -- which could come between the parts)
  local line = cjson.encode { key = key, raw = true, events = events } .. "\n"
  -- (the disk full inside the line: what went is cut off again, when
  -- nothing was appended after it since; the rest tried, for its errno)
  local done, werr = 0, nil
  while done < #line and not werr do
    local n, e = uv.fs_write(fd, done == 0 and line or line:sub(done + 1))
    if n and n > 0 then done = done + n else werr = e or "nothing written" end
  end
  local st = werr and done > 0 and uv.fs_fstat(fd)
  if st then uv.fs_ftruncate(fd, st.size - done) end
  local closed, cerr = uv.fs_close(fd)
  if werr or not closed then tape_fail(werr or cerr) end
end

-- The request as the upstream gets it: no x-aigc-cassette-* header, its
-- own Host, Connection: close (the response then ends with the connection).
local function upstream_request (request_head, body)
  local lines = { request_head:match("^[^\r\n]*") }
  for line in request_head:gmatch("\r\n([^\r\n]+)") do
    local name = (line:match("^([^:]*):") or ""):lower()
    if not (name:find("^x%-aigc%-cassette") or name == "connection" or name == "host") then
      lines[#lines + 1] = line
    end
  end
  lines[#lines + 1] = "Host: " .. up_host .. ":" .. up_port
  lines[#lines + 1] = "Connection: close"
  return table.concat(lines, "\r\n") .. "\r\n\r\n" .. body
end

-- Exchanges being recorded; a SIGTERM waits for them (the client may have
-- its whole response before this process has seen the upstream close and
-- written the line), at most DRAIN_MS.
local recording, draining, DRAIN_MS = 0, false, 5000

-- Forwards one request, relays and records the response.
local function proxy (sock, request_head, body, key, live)
  if tape_failed then   -- (x-should-retry: the engine would ask again and again)
    local msg = cjson.encode { error = { message = "cassette recording: " .. tape_failed .. "; " .. lost
      .. " exchange(s) not on the tape", type = "server_error", code = "cassette_tape" } }
    sock:write(head(507, { ["content-type"] = "application/json", ["x-should-retry"] = "false" }, #msg) .. msg)
    return sock:shutdown(function () sock:close() end)
  end
  -- (`pending`: the pieces of the line not yet ended, joined once it ends:
  -- joining them at each piece copied a long line -- a reply of several MB
  -- on one line -- once per piece, quadratic)
  local up, t0, events, pending = uv.new_tcp(), uv.now(), {}, {}
  local secrets = credentials(request_head, body)
  -- (and those of the client's Lua state's other live clients, which the request does not carry)
  for hex in (live or ""):gmatch("[^,]+") do
    secrets[#secrets + 1] = hex:gsub("%x%x", function (h) return string.char(tonumber(h, 16)) end)
  end
  recording = recording + 1
  local function finish ()
    recording = recording - 1
    if draining and recording == 0 then uv.stop() end
    if not sock:is_closing() then sock:shutdown(function () sock:close() end) end
  end
  up:connect(up_addr, up_port, function (cerr)
    if cerr then
      up:close()
      local msg = cjson.encode { error = { message = "cassette recording: upstream " .. upstream .. ": " .. cerr,
                                           type = "server_error", code = "cassette_upstream" } }
      sock:write(head(502, { ["content-type"] = "application/json" }, #msg) .. msg)
      return finish()
    end
    up:write(upstream_request(request_head, body))
    local on_read, stopped
    -- (the upstream read no faster than the client reads: past 1 MiB
    -- unread, reads stop until it is down to 256 KiB; a client gone or
    -- closed for idling ends the exchange, unrecorded: its call failed)
    local function written (err)
      if err and not up:is_closing() then up:close(); return finish() end
      if stopped and not up:is_closing() and sock:get_write_queue_size() <= 262144 then
        stopped = false
        up:read_start(on_read)
      end
    end
    function on_read (rerr, data)
      if data then
        send(sock, data, written)
        if not stopped and sock:get_write_queue_size() > 1048576 then stopped = true; up:read_stop() end
        -- (only the new piece is searched; anchored: unanchored, a piece
        -- with no newline -- a long line of base64, an image stream's --
        -- was searched from each of its bytes)
        local cut = data:match("^.*\n()")
        if cut then
          pending[#pending + 1] = data:sub(1, cut - 1)
          events[#events + 1] = { t = uv.now() - t0, data = table.concat(pending) }
          pending = { data:sub(cut) }
        else
          pending[#pending + 1] = data
        end
        return
      end
      local rest = table.concat(pending)
      if rest ~= "" then events[#events + 1] = { t = uv.now() - t0, data = rest } end
      up:close()
      if not rerr and key and #events > 0 then append_exchange(key, events, secrets) end
      finish()
    end
    up:read_start(on_read)
  end)
end

-- The line to play: the first the client named ("12 14 19": the
-- exchanges of its key from the one its call is at), and for each further
-- attempt of the same call (the engine retrying a 429 or a 5xx) the next
-- one when the last was recorded by the proxy, which recorded every
-- attempt; a whole call recorded in the client is played again.
-- The attempts of the last KEEP_CALLS calls only are kept (a call's
-- attempts come while it is in flight): the server kept them for every
-- call it served, as long as it ran (~400 bytes a call: 8 MiB over 20,000
-- calls of one replaying client).
local KEEP_CALLS = 1024
local attempts = {}   -- call name -> { lines, index }
local names, count = {}, 0   -- the names kept: a ring of KEEP_CALLS

local function remember (call, a)
  if attempts[call] == nil then
    count = count + 1
    local slot = (count - 1) % KEEP_CALLS + 1
    if names[slot] ~= nil then attempts[names[slot]] = nil end
    names[slot] = call
  end
  attempts[call] = a
end

local function pick (which, call)
  local lines = {}
  for n in (which or ""):gmatch("%d+") do lines[#lines + 1] = tonumber(n) end
  if #lines == 0 then return nil end
  local a = call and attempts[call]
  if not a or a.which ~= which then
    a = { which = which, i = 1 }
    if call then remember(call, a) end
  elseif exchanges[lines[a.i]] and exchanges[lines[a.i]].raw and a.i < #lines then
    a.i = a.i + 1
  end
  return lines[a.i]
end

-- Where a chunked body ends: feeds `data` to `st` (its framing so far);
-- the bytes of data up to the end, or nil (not yet), or false and the status
-- to refuse it with. (Such a body -- an upload of a file of no known size,
-- a pipe's -- was taken as none: the proxy sent the head alone and the
-- upstream waited for the chunks, the call for an answer.)
local function chunked_end (st, data)
  local i = 1
  while i <= #data do
    if st.left > 0 then
      local take = math.min(st.left, #data - i + 1)
      st.left, i = st.left - take, i + take
    else
      local nl = data:find("\n", i, true)
      st.line = st.line .. data:sub(i, (nl or #data + 1) - 1)
      if #st.line > 4096 then return false, 400 end
      if not nl then return nil end
      local line = st.line:gsub("\r$", "")
      st.line, i = "", nl + 1
      if st.trailer then
        if line == "" then return i - 1 end
      elseif st.crlf then   -- (after a chunk's data)
        if line ~= "" then return false, 400 end
        st.crlf = false
      else
        local digits = (line:match("^[ \t]*(%x+)") or ""):gsub("^0+(%x)", "%1")
        if digits == "" then return false, 400 end
        st.total = st.total + (#digits <= 15 and tonumber(digits, 16) or MAX_BODY + 1)
        if st.total > MAX_BODY then return false, 413 end
        if digits == "0" then st.trailer = true else st.left, st.crlf = tonumber(digits, 16), true end
      end
    end
  end
  return nil
end

-- Reads one request (head, then its body: Content-Length bytes or chunks)
-- and answers it.
local function on_connection (server)
  local sock = uv.new_tcp()
  server:accept(sock)
  -- The pieces read, joined once the request is whole (joining them at each
  -- piece copied a body of several MB once per piece, quadratic); until the
  -- head has ended, only the new bytes (and the 3 before them) are searched
  -- for its end (a head sent a byte at a time was joined and searched whole
  -- at each byte, quadratic). A head over MAX_HEAD (more than a client
  -- sends: libcurl's limit) is refused: it was kept whatever its size.
  local parts, size, buf, hend, headers, need, tail, refused, chunks = {}, 0, "", nil, nil, nil, "", false, nil
  wait_on(sock)
  sock:read_start(function (err, data)
    if err or not data then if not sock:is_closing() then sock:close() end return end
    if refused then return end
    wait_on(sock)
    parts[#parts + 1], size = data, size + #data
    if not hend then
      local at = (tail .. data):find("\r\n\r\n", 1, true)
      if at then hend = size - #data - #tail + at end
      if (hend or size) > MAX_HEAD then
        refused, parts = true, nil
        return refuse(sock, 431, "request head over " .. MAX_HEAD .. " bytes", nil, true)
      end
      if not hend then tail = (tail .. data):sub(-3); return end
      buf = table.concat(parts)
      parts = { buf }
      -- (each line matched anchored: "([^:\r\n]+):" unanchored was tried
      -- from each byte of a line without a colon to its end, quadratic)
      headers = {}
      for line in buf:sub(1, hend):gmatch("[^\r\n]+") do
        local name, value = line:match("^([^:]+):[ \t]*(.*)$")
        if name then headers[name:lower()] = value end
      end
      -- (a body's length as it came was waited for: a client's 10 GB, all
      -- of it held; a length that is none is refused too)
      local length = (headers["content-length"] or "0"):match("^(%d+)[ \t]*$")
      if (headers["transfer-encoding"] or ""):lower():find("chunked", 1, true) then
        chunks, data = { left = 0, line = "", total = 0 }, buf:sub(hend + 4)
      elseif not length or #length > 15 or tonumber(length) > MAX_BODY then
        refused, parts = true, nil
        if not length then return refuse(sock, 400, "invalid Content-Length", nil, true) end
        return refuse(sock, 413, "request body over " .. MAX_BODY .. " bytes", nil, true)
      else
        need = hend + 3 + tonumber(length)
      end
    end
    if not need then
      local k, status = chunked_end(chunks, data)
      if k == false then
        refused, parts = true, nil
        return refuse(sock, status, "malformed chunked body, or over " .. MAX_BODY .. " bytes", nil, true)
      end
      if not k then return end
      need = size - #data + k
    end
    if size < need then return end
    buf = table.concat(parts)
    sock:read_stop()
    done_waiting(sock)
    if upstream then
      return proxy(sock, buf:sub(1, hend - 1), buf:sub(hend + 4, need), headers["x-aigc-cassette-key"],
                   headers["x-aigc-cassette-secrets"])
    end
    local x = exchanges[pick(headers["x-aigc-cassette"], headers["x-aigc-cassette-call"])]
    if x then return play(sock, x) end
    refuse(sock, 404, "cassette miss: no exchange recorded for "
      .. (headers["x-aigc-cassette-request"] or "this request") .. " in " .. path, "cassette_miss")
  end)
end

local server = uv.new_tcp()
assert(server:bind("127.0.0.1", 0))
assert(server:listen(64, function () on_connection(server) end))
io.stdout:write(("aigc cassette server %d %d\n"):format(server:getsockname().port, uv.os_getpid()))
io.stdout:flush()

local function stop () uv.stop() end
local sigterm = uv.new_signal()
sigterm:start("sigterm", function ()
  if recording == 0 then return stop() end
  draining = true
  server:close()
  uv.new_timer():start(DRAIN_MS, 0, stop)
end)
if parent then   -- (started in the background: its parent is init, the client is gone when it is a zombie)
  local poll = uv.new_timer()
  poll:start(500, 500, function ()
    local gone = not uv.kill(parent, 0)
    local f = not gone and io.open("/proc/" .. parent .. "/stat")
    if f then
      gone = (f:read("*a") or ""):match("%) (%a)") == "Z"
      f:close()
    end
    if gone then stop() end
  end)
end
uv.run()
os.exit(0)
