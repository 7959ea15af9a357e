-- Issue 15: an upload part fed by a Lua function, `{reader = fn, filename =,
-- type =, size =}`, in any upload field. fn is called from the engine's loop
-- (never from inside libcurl) each time libcurl wants bytes; what the server
-- received is read back from the server itself (its record of the multipart
-- parts: size and CRC-32; the file's content through /files/ID/content).
local aigc = require "aigc"
local devserver = require "devserver"
local portable = require "portable"
local proc = require "procutil"
-- The server's CRC-32 of a part, checked when the devserver's helpers load
-- (Lua 5.3+: they use bitwise operators); the bytes are also read back.
local has_util, util = pcall(require, "aigc.devserver.util")
local function same_crc (bytes, crc)
  if has_util then assert.equal(util.crc32(bytes), crc) end
end

local SECRET = "sk-test-SECRET-reader-15"

-- A function giving `total` bytes in pieces of varying sizes (1..max), and
-- what it gave so far (the pieces, the number of calls).
local function pieces (total, max, seed)
  local st = { given = {}, calls = 0, bytes = 0 }
  local x = seed or 7
  function st.reader ()
    st.calls = st.calls + 1
    if st.bytes >= total then return nil end
    x = (x * 1103515245 + 12345) % 2147483648
    local n = math.min(1 + x % max, total - st.bytes)
    local line = string.rep(string.char(97 + x % 26), n - 1) .. "\n"
    st.given[#st.given + 1] = line
    st.bytes = st.bytes + n
    return line
  end
  function st.all () return table.concat(st.given) end
  return st
end

-- A WAV whose transcription the server gives back as `text`.
local function voice_note (text) return "RIFF\0\0\0\0WAVE" .. "AIGC-TEXT:" .. text end

local header = require("uploads").header

-- nginx offering HTTP/2 over TLS in front of the devserver (it buffers the
-- upload and forwards it over HTTP/1.1): libcurl's HTTP/2 upload path pauses
-- and resumes differently. Nil when nginx or openssl is missing.
local function start_h2_proxy (dev_port)
  if not (proc.sh("command -v nginx") and proc.sh("command -v openssl")) then return nil end
  local dir = proc.nginx_dir { { "h2", "IP:127.0.0.1" } }
  local port
  local pid = proc.start_nginx(dir, function (owner)
    port = proc.free_port()
    return proc.nginx_conf(dir, proc.fill([[
  client_max_body_size 64m;
  log_format p "$request $server_protocol $status"; access_log DIR/access.log p;
  server { listen 127.0.0.1:PORT ssl http2; ssl_certificate DIR/h2.pem; ssl_certificate_key DIR/h2.key;
           location / { proxy_pass http://127.0.0.1:DEV; proxy_http_version 1.1; } }
  server { listen 127.0.0.1:OWNPORT; location = /_owner { return 200 'OWNER'; } }]],
      { DIR = dir, OWNPORT = owner.port, PORT = port, DEV = dev_port, OWNER = owner.token }))
  end)
  return { dir = dir, port = port, stop = function ()
    proc.stop(pid)
    os.execute("rm -rf " .. proc.quote(dir))
  end }
end

describe("upload parts fed by a function (issue 15)", function ()
  local srv, client, logs

  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)

  before_each(function ()
    srv:reset()
    logs = {}
    client = aigc.client { base_url = srv.base_url, api_key = SECRET, max_retries = 0, timeout = 20,
                           log = function (level, msg) logs[#logs + 1] = level .. ": " .. msg end }
  end)
  after_each(function () client:close() end)

  local function fault (spec) return { ["x-aigc-fault"] = spec } end

  it("several MB in small pieces, chunked: the server gets every byte (size, CRC), the file reads back the same",
     function ()
    local feed = pieces(3 * 1024 * 1024 + 17, 3000)
    local res = assert(client:files_upload { purpose = "batch",
                                             file = { reader = feed.reader, filename = "big.jsonl" } })
    local sent = feed.all()
    assert.equal(#sent, res.bytes)
    assert.is_true(#feed.given > 1000)
    assert.equal(#feed.given + 1, feed.calls)   -- called once more for the end, never after it
    local rec = srv:last()
    local part
    for _, p in ipairs(rec.parts) do if p.name == "file" then part = p end end
    assert.equal(#sent, part.size)
    same_crc(sent, part.crc32)
    assert.equal("big.jsonl", part.filename)
    assert.matches("chunked", header(rec, "transfer-encoding") or "")
    assert.equal("100-continue", header(rec, "expect"))   -- no byte read before the server says go on
    assert.equal(sent, assert(client:files_content(res.id)).body)
  end)

  it("with size: the body has a Content-Length (not chunked) and the same bytes", function ()
    local feed = pieces(200000, 5000, 3)
    local res = assert(client:files_upload { purpose = "batch",
                                             file = { reader = feed.reader, filename = "s.jsonl", size = 200000 } })
    assert.equal(200000, res.bytes)
    local rec = srv:last()
    assert.is_nil(header(rec, "transfer-encoding"))
    assert.is_true(tonumber(header(rec, "content-length")) > 200000)
    assert.equal(feed.all(), assert(client:files_content(res.id)).body)
    -- headers = { Expect = "" } turns the 100-continue round trip off
    local off = pieces(5000, 700)
    assert(client:files_upload { purpose = "batch", headers = { expect = "" },
                                 file = { reader = off.reader, filename = "o.jsonl" } })
    assert.is_nil(header(srv:last(), "expect"))
  end)

  it("headers: Expect = \"\" in any case turns 100-continue off; the caller's table is never changed", function ()
    for _, name in ipairs { "expect", "Expect", "EXPECT" } do
      local headers = { [name] = "", ["X-Mine"] = "kept" }
      assert(client:files_upload { purpose = "batch", headers = headers,
                                   file = { reader = pieces(3000, 700).reader, filename = "o.jsonl" } })
      assert.is_nil(header(srv:last(), "expect"), name)
      assert.equal("kept", header(srv:last(), "x-mine"))
      assert.same({ [name] = "", ["X-Mine"] = "kept" }, headers)   -- no Expect, no Content-Type = null added
    end
    -- the same table reused for a JSON call still sends its Content-Type
    -- (an upload used to write Content-Type = aigc.null into it)
    local headers = { ["X-Mine"] = "kept" }
    assert(client:files_upload { purpose = "batch", headers = headers,
                                 file = { reader = pieces(100, 50).reader, filename = "p.jsonl" } })
    assert(client:chat { model = "aigc-dev", messages = { { role = "user", content = "hi" } }, headers = headers })
    assert.matches("application/json", header(srv:last(), "content-type") or "")
  end)

  it("in transcribe (with a type) and images_edit; \"\" ends like nil", function ()
    local note, at = voice_note("fed by a reader"), 0
    local res = assert(client:transcribe { file = { filename = "note.wav", type = "audio/wav", reader = function ()
      if at >= #note then return "" end
      at = at + 5
      return note:sub(at - 4, at)
    end } })
    assert.equal("fed by a reader", res.text)
    assert.equal("audio/wav", srv:last().parts[1].content_type)
    local png = assert(client:images_generate { prompt = "p", size = "32x32", response_format = "b64_json",
                                                model = "dall-e-2" }).data[1].bytes
    local halves = { png:sub(1, 40), png:sub(41) }
    local edited = assert(client:images_edit { prompt = "x", image = { filename = "in.png", reader = function ()
      return table.remove(halves, 1)
    end } })
    assert.equal(1, #edited.data)
    local images = 0
    for _, p in ipairs(srv:last().parts) do
      if p.name == "image" then
        images = images + 1
        assert.equal(#png, p.size)
        same_crc(png, p.crc32)
      end
    end
    assert.equal(1, images)   -- (else nothing of the image was checked)
  end)

  it("an error raised by the reader fails the call (kind callback, its message), the state stays usable", function ()
    local n = 0
    local res, err = client:files_upload { purpose = "batch", file = { filename = "e.jsonl", reader = function ()
      n = n + 1
      if n == 3 then error("disk on fire") end
      return string.rep("x", 10000) .. "\n"
    end } }
    assert.is_nil(res)
    assert.equal("callback", err.kind)
    assert.matches("disk on fire", err.message)
    -- (the server's "100 Continue" is no answer: not a status of the error, nor "callback error 100")
    assert.is_nil(err.status)
    assert.is_nil(tostring(err):find(" 100", 1, true), tostring(err))
    assert.equal(3, n)
    local ok = assert(client:files_upload { purpose = "batch", file = { data = "ok\n", filename = "ok.jsonl" } })
    assert.equal(3, ok.bytes)
  end)

  it("a reader that returns neither a string nor nil fails the call", function ()
    local res, err = client:files_upload { purpose = "batch", file = { filename = "e.jsonl", reader = function ()
      return {}
    end } }
    assert.is_nil(res)
    assert.equal("callback", err.kind)
    assert.matches("neither a string nor nil", err.message)
  end)

  it("more or fewer bytes than the size given: kind io, nothing hangs", function ()
    local res, err = client:files_upload { purpose = "batch", file = { filename = "m.jsonl", size = 10,
                                                                        reader = pieces(11, 20).reader } }
    assert.is_nil(res)
    assert.equal("io", err.kind)
    assert.matches("more bytes than its size", err.message)
    res, err = client:files_upload { purpose = "batch", file = { filename = "f.jsonl", size = 100,
                                                                  reader = pieces(99, 20).reader } }
    assert.is_nil(res)
    assert.equal("io", err.kind)
    assert.matches("ended before its size", err.message)
  end)

  it("non-blocking across step(0) frames: the reader runs only inside step, one piece per frame at most", function ()
    local feed, in_step, frames, outside = pieces(2 * 1024 * 1024, 8000, 11), false, 0, 0
    local counted = feed.reader
    local calls_in_frame = 0
    local max_in_frame = 0
    local req = client:files_upload_async { purpose = "batch", file = { filename = "nb.jsonl", reader = function ()
      if not in_step then outside = outside + 1 end
      calls_in_frame = calls_in_frame + 1
      return counted()
    end } }
    while req:status() == "queued" or req:status() == "running" do
      in_step, calls_in_frame = true, 0
      client:step(0)   -- a frame: never waits for the network
      in_step = false
      if calls_in_frame > max_in_frame then max_in_frame = calls_in_frame end
      frames = frames + 1
    end
    local res = assert(req:result())
    assert.equal(feed.bytes, res.bytes)
    assert.equal(0, outside)
    assert.equal(1, max_in_frame)
    assert.is_true(frames > #feed.given)
    same_crc(feed.all(), srv:last().parts[1].crc32)
    assert.equal(feed.all(), assert(client:files_content(res.id)).body)
  end)

  it("the reader may call the client: a blocking chat inside it (it runs from the loop, not inside libcurl)",
     function ()
    local feed, replies = pieces(300000, 4000, 5), {}
    local res = assert(client:files_upload { purpose = "batch", file = { filename = "n.jsonl", reader = function ()
      if feed.calls % 20 == 3 then
        replies[#replies + 1] = assert(client:chat { messages = { { role = "user", content = "hi" } } }).text
      end
      return feed.reader()
    end } })
    assert.equal(feed.bytes, res.bytes)
    assert.is_true(#replies >= 2)
    assert.equal(feed.all(), assert(client:files_content(res.id)).body)
  end)

  it("with an external event loop (luv, client:watch / act): the whole upload, the reader called from act()",
     function ()
    local ok_uv, uv = pcall(require, "luv")
    if not ok_uv then pending("luv is not installed") return end
    -- luv is loaded once per busted process and its loop caches the time it
    -- last ran: after minutes of other specs, the 20 s guard below was due on
    -- the loop's first turn and stopped it at once (seen in make test).
    uv.update_time()
    local polls, timer = {}, uv.new_timer()
    local c = aigc.client { base_url = srv.base_url, api_key = SECRET, max_retries = 0, timeout = 20 }
    local in_act = false
    local function act (fd, ev)
      in_act = true
      c:act(fd, ev)
      in_act = false
    end
    c:watch(function (fd, what)
      local p = polls[fd]
      if what == "remove" then
        if p then p:stop(); p:close(); polls[fd] = nil end
        return
      end
      if not p then p = uv.new_socket_poll(fd); polls[fd] = p end
      p:start(what == "in" and "r" or what == "out" and "w" or "rw", function (_, ev) act(fd, ev) end)
    end, function (seconds)
      timer:stop()
      if seconds then timer:start(math.ceil(seconds * 1000), 0, function () act() end) end
    end)
    local feed, outside, result = pieces(1024 * 1024, 9000, 13), 0, nil
    c:files_upload_async { purpose = "batch", on_done = function (res) result = res end,
                           on_error = function (e) result = e end,
                           file = { filename = "uv.jsonl", reader = function ()
                             if not in_act then outside = outside + 1 end
                             return feed.reader()
                           end } }
    act()   -- kick: the loop takes over from here
    local guard = uv.new_timer()
    guard:start(20000, 0, function () uv.stop() end)
    local check = uv.new_check()
    check:start(function () if result then uv.stop() end end)
    uv.run()
    guard:close(); check:close(); timer:close()
    for _, p in pairs(polls) do p:close() end
    uv.run("nowait")
    c:close()
    assert.is_table(result)
    assert.is_nil(result.kind, result.message)   -- (an error, not the file)
    assert.equal(feed.bytes, result.bytes)
    assert.equal(0, outside)
    assert.equal(feed.all(), assert(client:files_content(result.id)).body)
  end)

  it("cancel from the reader mid-upload: canceled, the reader is not called again, one on_error", function ()
    local n, errors, req = 0, 0, nil
    req = client:files_upload_async { purpose = "batch", on_error = function () errors = errors + 1 end,
      file = { filename = "c.jsonl", reader = function ()
        n = n + 1
        if n == 20 then req:cancel() end
        return string.rep("y", 4000) .. "\n"
      end } }
    local _, err = req:wait()
    assert.equal("canceled", req:status())
    assert.equal("canceled", err.kind)
    while client:step(0.01) > 0 do end
    assert.equal(20, n)
    assert.equal(1, errors)
    assert.equal(0, #assert(client:files_list {}).data)
  end)

  it("close from the reader mid-upload: every call ends, the client is closed, no more reads", function ()
    local c = aigc.client { base_url = srv.base_url, api_key = SECRET }
    local n = 0
    local res, err = c:files_upload { purpose = "batch", file = { filename = "c.jsonl", reader = function ()
      n = n + 1
      if n == 5 then c:close() end
      return string.rep("z", 4000) .. "\n"
    end } }
    assert.is_nil(res)
    assert.equal("canceled", err.kind)
    assert.equal(5, n)
    local ok, e = pcall(c.files_list, c, {})
    assert.is_false(ok)
    assert.matches("closed client", e)
  end)

  it("finalizers that cancel or close while the reader's pieces are taken: one end, the state is sane", function ()
    for round = 1, 6 do
      local c = aigc.client { base_url = srv.base_url, api_key = SECRET }
      local req
      local n = 0
      req = c:files_upload_async { purpose = "batch", file = { filename = "g.jsonl", reader = function ()
        n = n + 1
        if n == round then   -- garbage whose finalizer acts at the next collection
          portable.finalized(function () if round % 2 == 0 then req:cancel() else c:close() end end)
          collectgarbage()
          collectgarbage()
        end
        if round == 6 and n == 6 then return {} end   -- and a failing reader meanwhile
        if n > 100 then return nil end   -- (bounded: a finalizer that did not act fails below)
        return string.rep("w", 3000) .. "\n"
      end } }
      local _, err = req:wait()
      assert.equal("canceled", err.kind)
      assert.is_true(n <= round + 1)
      c:close()
    end
    local ok = assert(client:files_upload { purpose = "batch", file = { data = "a\n", filename = "a.jsonl" } })
    assert.equal(2, ok.bytes)
  end)

  it("over HTTP/2 (TLS, nginx in front): chunked and sized, every byte arrives", function ()
    local h2 = start_h2_proxy(srv.port)
    if not h2 then pending("nginx or openssl is not installed") return end
    local c = aigc.client { base_url = "https://127.0.0.1:" .. h2.port .. "/v1", api_key = SECRET,
                            ca_file = h2.dir .. "/h2.pem", max_retries = 0, timeout = 20 }
    local ok, e = pcall(function ()
      for _, sized in ipairs { false, true } do
        local total = 1024 * 1024 + 5
        local feed = pieces(total, 7000, sized and 2 or 1)
        local res = assert(c:files_upload { purpose = "batch", file = { filename = "h2.jsonl", reader = feed.reader,
                                                                        size = sized and total or nil } })
        assert.equal(total, res.bytes)
        assert.equal(feed.all(), assert(c:files_content(res.id)).body)
      end
      local log = proc.read_file(h2.dir .. "/access.log") or ""
      local _, uploads = log:gsub("POST /v1/files HTTP/2.0 HTTP/2.0 200", "")
      assert.equal(2, uploads)
    end)
    c:close()
    h2.stop()
    assert(ok, e)
  end)

  describe("retries", function ()
    it("not retried once the reader gave bytes: the server's 503 is the call's error, the log says why", function ()
      local c = aigc.client { base_url = srv.base_url, api_key = SECRET, max_retries = 3,
                              log = function (level, msg) logs[#logs + 1] = level .. ": " .. msg end }
      local feed = pieces(50000, 1000)
      local res, err = c:files_upload { purpose = "batch", headers = fault("status=503"),
                                        file = { filename = "r.jsonl", reader = feed.reader } }
      assert.is_nil(res)
      assert.equal(503, err.status)
      assert.equal(1, #srv:requests())
      assert.equal(#feed.given + 1, feed.calls)
      local said = table.concat(logs, "\n")
      assert.matches("not retrying: the upload's reader already gave 50000 bytes", said, 1, true)
      assert.not_matches("retrying in", said)
      c:close()
    end)

    it("retried while nothing was read: a server drops the first attempt before the body, the second gets it all",
       function ()
      -- A tiny server in this process, served between step() frames: the
      -- first connection is closed once its headers are in (libcurl waits
      -- for "100 Continue" before reading the body, so the reader gave
      -- nothing); the second gets 100 Continue, the whole chunked body,
      -- then a file object.
      local socket = require "socket"
      local server = assert(socket.bind("127.0.0.1", 0))
      server:settimeout(0)
      local _, port = server:getsockname()
      local c = aigc.client { base_url = "http://127.0.0.1:" .. port .. "/v1", api_key = SECRET, max_retries = 2,
                              timeout = 20 }
      local feed = pieces(100000, 3000, 9)
      local req = c:files_upload_async { purpose = "batch", file = { filename = "again.jsonl", reader = feed.reader } }
      local conns, calls_at_drop, body = {}, nil, nil
      local deadline = socket.gettime() + 20
      while (req:status() == "queued" or req:status() == "running") and socket.gettime() < deadline do
        c:step(0.002)
        local s = server:accept()
        if s then
          s:settimeout(0)
          conns[#conns + 1] = { sock = s, buf = "" }
        end
        for i, k in ipairs(conns) do
          local data, err, part = k.sock:receive(65536)
          k.buf = k.buf .. (data or part or "")
          local head_end = k.buf:find("\r\n\r\n", 1, true)
          if i == 1 and head_end and not k.done then
            calls_at_drop, k.done = feed.calls, true
            k.sock:close()
          elseif i == 2 and head_end and not k.continued then
            k.continued = true
            k.sock:send("HTTP/1.1 100 Continue\r\n\r\n")
          elseif i == 2 and k.continued and not k.done and k.buf:find("\r\n0\r\n\r\n$") then
            k.done, body = true, k.buf:sub(head_end + 4)
            local reply = '{"id":"file-x","object":"file","bytes":' .. feed.bytes .. ',"filename":"again.jsonl",'
                          .. '"purpose":"batch","created_at":1,"status":"processed"}'
            k.sock:send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " .. #reply
                        .. "\r\n\r\n" .. reply)
          end
          if err == "closed" and not k.done then k.done = true end
        end
      end
      for _, k in ipairs(conns) do k.sock:close() end
      server:close()
      local res = assert(req:result())
      assert.equal("file-x", res.id)
      assert.equal(1, res.retries)
      assert.equal(0, calls_at_drop)             -- the first attempt took nothing from the reader
      -- the chunked body, decoded, holds every byte the reader gave, once
      local plain, pos = {}, 1
      while true do
        local size_end = body:find("\r\n", pos, true)
        local n = tonumber(body:sub(pos, size_end - 1), 16)
        if n == 0 then break end
        plain[#plain + 1] = body:sub(size_end + 2, size_end + 1 + n)
        pos = size_end + 2 + n + 2
      end
      local sent = table.concat(plain)
      local a, b = sent:find(feed.all(), 1, true)
      assert.is_truthy(a)
      assert.is_nil(sent:find(feed.all(), b + 1, true))
      c:close()
    end)

    it("retried while nothing was read (the connection failed): the reader is never called", function ()
      local port, release = proc.closed_port()   -- nothing listens there
      finally(release)
      local c = aigc.client { base_url = "http://127.0.0.1:" .. port .. "/v1", api_key = SECRET, max_retries = 2,
                              log = function (level, msg) logs[#logs + 1] = level .. ": " .. msg end }
      local calls = 0
      local res, err = c:files_upload { purpose = "batch", file = { filename = "r.jsonl", reader = function ()
        calls = calls + 1
        return nil
      end } }
      assert.is_nil(res)
      assert.equal("connect", err.kind)
      assert.equal(0, calls)
      local retried = 0
      for _, l in ipairs(logs) do if l:find("retrying in", 1, true) then retried = retried + 1 end end
      assert.equal(2, retried)
      c:close()
    end)
  end)

  describe("misuse raises at the caller's line", function ()
    local raises = require("misuse").raises
    it("the reader part's fields", function ()
      raises("bad argument #1 to 'files_upload' %(params.file.reader: function expected, got number%)", function ()
        client:files_upload { purpose = "batch", file = { reader = 5, filename = "a" } }
      end)
      raises("bad argument #1 to 'transcribe' %(params.file.filename: string", function ()
        client:transcribe { file = { reader = function () end } }
      end)
      raises("bad argument #1 to 'files_upload' %(params.file.size: a whole number >= 0 expected, got", function ()
        client:files_upload { purpose = "batch", file = { reader = function () end, filename = "a", size = -1 } }
      end)
      raises("bad argument #1 to 'images_edit_async' %(params.image%[2%]: one upload fed by a function per call%)",
             function ()
        client:images_edit_async { prompt = "x", image = { { reader = print, filename = "a.png" },
                                                           { reader = print, filename = "b.png" } } }
      end)
    end)
  end)
end)
