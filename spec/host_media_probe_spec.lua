-- What a game embedding aigc meets with voice and images (a C host or a
-- LuaJIT engine): a disk that fills up while portraits are saved, replies
-- to speech that are not audio, transcriptions whose text is not text.
-- Each case is a defect found by probing as such a host would; each must
-- end in a clear error with nothing lost, never a file that looks whole
-- and is not.
local aigc = require "aigc"
local devserver = require "devserver"
local luachild = require "luachild"
local oneshot = require "oneshot"
local proc = require "procutil"

-- A one-off server: each request carries its whole answer (hex, in
-- `x-answer`); with `x-hold: NAME`, only the headers and 16 bytes of
-- the body go at once, the rest when GET /release/NAME comes; /quit ends it.
local SERVER = [[
  local oneshot = require "oneshot"
  local server = oneshot.listen()
  server:settimeout(60)   -- (idle: the spec is gone)
  local held = {}   -- connections answered in part (x-hold), by name
  while true do
    local c = server:accept()
    if not c then break end
    c:settimeout(5)
    local answer, len, path, hold = nil, 0, nil, nil
    while true do
      local line = c:receive("*l")
      if not line or line == "" then break end
      path = path or line:match("^%u+ (%S+)")
      answer = line:match("^[Xx]%-[Aa]nswer: *(%x+)") or answer
      hold = line:match("^[Xx]%-[Hh]old: *(%w+)") or hold
      len = tonumber(line:match("^[Cc]ontent%-[Ll]ength: *(%d+)")) or len
    end
    if len > 0 then c:receive(len) end
    if path == "/quit" then c:close(); break end
    local bytes = (answer or ""):gsub("%x%x", function (h) return string.char(tonumber(h, 16)) end)
    local released = path and path:match("^/release/(%w+)$")
    if hold then   -- the headers and a few bytes now, the rest at GET /release/NAME
      local cut = bytes:find("\r\n\r\n", 1, true) + 3 + 16
      c:send(bytes:sub(1, cut))
      held[hold] = { c = c, rest = bytes:sub(cut + 1) }
    elseif released and held[released] then
      local h = held[released]
      held[released] = nil
      h.c:send(h.rest)
      h.c:close()
      c:send("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
      c:close()
    else
      c:send(bytes)
      c:close()
    end
  end
]]

local function hex (s)
  return (s:gsub(".", function (ch) return string.format("%02x", ch:byte()) end))
end

-- The headers of a call answered 200 with `body` of type `ctype` (held
-- under the name `hold`, when given).
local function reply (body, ctype, hold)
  return { ["x-answer"] = hex(("HTTP/1.1 200 OK\r\nContent-Type: %s\r\nConnection: close\r\n"
                               .. "Content-Length: %d\r\n\r\n%s"):format(ctype, #body, body)),
           ["x-hold"] = hold }
end

local function tmpdir ()
  local p = io.popen("mktemp -d /tmp/aigc-hostprobe-XXXXXX")
  local d = p:read("*l")
  p:close()
  return d
end

-- SERVER in a child for the describe block it is called in, and a fresh
-- client on it for each test, given to `set` (closed after the test).
local function with_server (set)
  local port, child, c
  setup(function () port, child = oneshot.start(SERVER) end)
  teardown(function ()
    local q = aigc.client { base_url = "http://127.0.0.1:" .. port .. "/v1", max_retries = 0 }
    q:download("http://127.0.0.1:" .. port .. "/quit")
    q:close()
    child:wait(10)
  end)
  before_each(function ()
    c = aigc.client { base_url = "http://127.0.0.1:" .. port .. "/v1", max_retries = 0, timeout = 10 }
    set(c)
  end)
  after_each(function () c:close() end)
end

describe("a game's media on a host", function ()
  local srv, client, dir

  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { model = "aigc-dev" })
  setup(function () dir = tmpdir() end)
  teardown(function () os.execute("rm -rf '" .. dir .. "'") end)

  describe("res:save() on a full disk", function ()
    -- A file size limit (RLIMIT_FSIZE, SIGXFSZ ignored: writes past it fail
    -- with EFBIG) in a child that saves an image of `size`; what it printed.
    -- (ulimit -f counts 512-byte blocks in dash and 1024-byte ones in bash.)
    local function save_limited (blocks, size, name)
      local wrapper = dir .. "/limited.sh"
      local f = assert(io.open(wrapper, "w"))
      f:write("#!/bin/sh\ntrap '' XFSZ\nulimit -f " .. blocks .. "\nexec " .. luachild.interpreter() .. ' "$@"\n')
      f:close()
      assert.is_true(proc.execute("chmod +x '" .. wrapper .. "'"))
      local r = luachild.run([[
        local aigc = require "aigc"
        local c = aigc.client { base_url = arg[1], max_retries = 0, model = "aigc-dev" }
        local res = assert(c:images_generate { prompt = "a knight", size = arg[3], response_format = "b64_json" })
        local paths, err = res:save(arg[2])
        c:close()
        print(#res.data[1].bytes, paths and "saved" or (err.kind .. ": " .. err.message))
      ]], { lua = wrapper, args = { srv.base_url, dir .. "/" .. name .. "-%d.png", size } })
      assert.equal(0, r.status, r.stderr)
      return r.stdout
    end

    -- The image goes whole into stdio's buffer (4 KiB or more): only the
    -- close() says the disk is full, and the cut image must not stand.
    it("a small image whose bytes only fail at close: kind io, not a path to a cut file", function ()
      local out = save_limited(1, "64x64", "mouse")
      local n = tonumber(out:match("^%d+"))
      assert.is_true(n > 1024 and n < 4096, out)
      assert.matches("\tio: could not write .*mouse%-1%.png: .*[Ll]arge", out)
      assert.is_false(proc.exists(dir .. "/mouse-1.png"))
      assert.is_false(proc.exists(dir .. "/mouse-1.png.part"))
    end)

    -- The disk fills in the middle of the image.
    it("an image cut by the disk filling up: kind io, and no cut PNG left under its name", function ()
      local out = save_limited(16, "256x256", "knight")
      assert.is_true(tonumber(out:match("^%d+")) > 12000, out)
      assert.matches("\tio: could not write .*knight%-1%.png: .*[Ll]arge", out)
      assert.is_false(proc.exists(dir .. "/knight-1.png"))
      assert.is_false(proc.exists(dir .. "/knight-1.png.part"))
    end)

    -- (/dev/full behind a link at the path, as `to = path` treats a device)
    it("a link to a device at the path: kind io, the device not written", function ()
      local res = assert(client:images_generate { prompt = "a mouse", size = "8x8", response_format = "b64_json" })
      local target = dir .. "/full-1.png"
      assert.is_true(proc.execute("ln -s /dev/full '" .. target .. "'"))
      local paths, err = res:save(dir .. "/full-%d.png")
      assert.is_nil(paths)
      assert.equal("io", err.kind)
      assert.equal("could not write " .. target .. ": it is a character device, not a regular file", err.message)
      assert.is_false(proc.exists(target .. ".part"))
    end)
  end)

  describe("res:save() after the client, over a file", function ()
    it("url images after the client was closed (a scene unloaded): nil, err (kind canceled), not a raise", function ()
      local own = aigc.client { base_url = srv.base_url, max_retries = 0, model = "aigc-dev" }
      local res = assert(own:images_generate { prompt = "a bard", size = "8x8", response_format = "url" })
      own:close()
      local ok, paths, err = pcall(res.save, res, dir .. "/bard-%d.png")
      assert.is_true(ok, tostring(paths))
      assert.is_nil(paths)
      assert.equal("canceled", err.kind)
      assert.equal("image 1 is a url, and the client it came from (which downloads it) is closed", err.message)
      assert.is_false(proc.exists(dir .. "/bard-1.png"))
    end)

    it("saving over an existing image: the new bytes replace it whole", function ()
      local res = assert(client:images_generate { prompt = "a cat", size = "16x16", response_format = "b64_json" })
      local path = dir .. "/cat-1.png"
      local f = assert(io.open(path, "wb"))
      f:write(string.rep("old", 10000))
      f:close()
      assert.same({ path }, assert(res:save(dir .. "/cat-%d.png")))
      assert.equal(res.data[1].bytes, proc.read_file(path))
      assert.is_false(proc.exists(path .. ".part"))
    end)
  end)

  describe("speech answered with text, not audio (a proxy's page, a plain-text error)", function ()
    local c
    with_server(function (made) c = made end)

    local PAGE = "<html><body><h1>502 Bad Gateway</h1></body></html>"

    it("text/html to a string, a file, a function: kind parse, the page kept in err.body, no file", function ()
      local path = dir .. "/halt.wav"
      local got = {}
      local results = {
        { c:speech { input = "Halt!", headers = reply(PAGE, "text/html; charset=utf-8") } },
        { c:speech { input = "Halt!", to = path, headers = reply(PAGE, "text/html") } },
        { c:speech { input = "Halt!", to = function (chunk) got[#got + 1] = chunk end,
                     headers = reply(PAGE, "text/html") } },
      }
      for _, r in ipairs(results) do
        local res, err = r[1], r[2]
        assert.is_nil(res)
        assert.equal("parse", err.kind)
        assert.matches("not audio", err.message)
        assert.matches("text/html", err.message)
        assert.equal(PAGE, err.body)
        assert.equal(200, err.status)
      end
      assert.is_false(proc.exists(path))
      assert.is_false(proc.exists(path .. ".part"))
      assert.same({}, got)   -- (a function gets none of it, as with JSON: not played as audio)
    end)

    it("an API error sent as text/plain: kind api with its message and code", function ()
      local res, err = c:speech_async { input = "Halt!", headers = reply(
        '{"error":{"message":"quota exceeded","code":"insufficient_quota"}}', "text/plain") }:wait()
      assert.is_nil(res)
      assert.equal("api", err.kind)
      assert.equal("quota exceeded", err.message)
      assert.equal("insufficient_quota", err.code)
    end)

    it("audio of any audio type, or none said, is still the result", function ()
      assert.equal("RIFF....", assert(c:speech { input = "x", headers = reply("RIFF....", "audio/wav") }).body)
      assert.equal("ID3.", assert(c:speech { input = "x", headers = reply("ID3.", "application/octet-stream") }).body)
    end)
  end)

  describe("a transcription whose text is not text", function ()
    local c
    with_server(function (made) c = made end)

    local NOTE = { data = "RIFF....", filename = "npc.wav" }
    local function sse (events)
      local t = {}
      for i, e in ipairs(events) do t[i] = "data: " .. e .. "\n\n" end
      return { ["x-answer"] = hex("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
                                  .. table.concat(t)) }
    end

    it("text null, a number, an object, or none: kind parse naming the field, blocking and async", function ()
      for body, shape in pairs { ['{"text":null}'] = "null", ['{"text":7}'] = "a number",
                                 ['{"text":{"a":1}}'] = "an object", ['{"duration":1.5}'] = "nothing" } do
        local res, err = c:transcribe { file = NOTE, headers = reply(body, "application/json") }
        assert.is_nil(res, body)
        assert.equal("parse", err.kind)
        assert.equal("the reply's text: a string expected, got " .. shape, err.message)
        assert.equal(200, err.status)
        local failed
        local req = c:translate_async { file = NOTE, headers = reply(body, "application/json"),
                                        on_error = function (e) failed = e end }
        while c:step(0.05) > 0 do end
        assert.equal("failed", req:status())
        assert.equal("parse", failed.kind)
      end
    end)

    it("a stream whose done event has no text: kind parse; a string text is the result", function ()
      local got = {}
      local res, err = c:transcribe { file = NOTE, stream = function (ev) got[#got + 1] = ev.delta end,
        headers = sse { '{"type":"transcript.text.delta","delta":"Hal"}',
                        '{"type":"transcript.text.done","text":null}' } }
      assert.is_nil(res)
      assert.equal("parse", err.kind)
      assert.equal("the reply's text: a string expected, got null", err.message)
      assert.same({ "Hal" }, got)
      res = assert(c:transcribe { file = NOTE, stream = true,
        headers = sse { '{"type":"transcript.text.done","text":"Halt!"}' } })
      assert.equal("Halt!", res.text)
      assert.equal("", assert(c:transcribe { file = NOTE, headers = reply('{"text":""}', "application/json") }).text)
    end)
  end)

  describe("two downloads to the same path at once (two NPCs' lines to one file)", function ()
    local port, child, c, origin

    setup(function ()
      port, child = oneshot.start(SERVER)
      origin = "http://127.0.0.1:" .. port
    end)
    teardown(function ()
      local q = aigc.client { base_url = origin .. "/v1", max_retries = 0 }
      q:download(origin .. "/quit")
      q:close()
      child:wait(10)
    end)
    before_each(function () c = aigc.client { base_url = origin .. "/v1", max_retries = 0, timeout = 30 } end)
    after_each(function () c:close() end)

    local FIRST = "RIFF" .. string.rep("first line of the innkeeper ", 2000)
    local SECOND = "RIFF" .. string.rep("the guard's line ", 50)

    -- The inode number of path, or nil (the part files are told apart by it).
    local function inode (path)
      return tonumber(proc.first_line("stat -c %i '" .. path .. "' 2>/dev/null") or "")
    end

    -- Steps until the path's part file exists and is not the file `other`
    -- (a download has begun writing it: it is made at the first bytes), or
    -- `seconds` passed.
    local function until_writing (path, other, seconds)
      local t0 = aigc.now()
      while aigc.now() - t0 < seconds do
        c:step(0.02)
        local now = inode(path .. ".part")
        if now and now ~= other then return true end
      end
      return false
    end

    it("the first ends after the second began: the second's audio whole, the first an io error", function ()
      local path = dir .. "/line.wav"
      local first = c:speech_async { input = "first", to = path, headers = reply(FIRST, "audio/wav", "first") }
      assert.is_true(until_writing(path, nil, 60))
      local second = assert(c:speech { input = "second", to = path, headers = reply(SECOND, "audio/wav") })
      assert.equal(#SECOND, second.bytes)
      assert.equal(SECOND, proc.read_file(path))
      assert(c:download(origin .. "/release/first"))
      local res, err = first:wait()
      assert.is_nil(res)
      assert.equal("io", err.kind)
      assert.matches("another download to the same path", err.message)
      assert.equal(SECOND, proc.read_file(path))   -- (not the first's bytes over the second's)
      assert.is_false(proc.exists(path .. ".part"))
    end)

    it("the first canceled while the second is written: the second's part file stays, and arrives whole", function ()
      local path = dir .. "/guard.wav"
      local first = c:speech_async { input = "first", to = path, headers = reply(FIRST, "audio/wav", "a") }
      assert.is_true(until_writing(path, nil, 60))
      local firsts = inode(path .. ".part")
      local second = c:speech_async { input = "second", to = path, headers = reply(SECOND, "audio/wav", "b") }
      -- (its own part file is made at its first bytes; if that has not come in 10 s, the
      -- first's is removed at the cancel, and the second still must arrive whole)
      until_writing(path, firsts, 10)
      first:cancel("the innkeeper walked away")
      assert.equal("canceled", select(2, first:wait()).kind)
      assert(c:download(origin .. "/release/b"))
      assert.equal(#SECOND, assert(second:wait()).bytes)
      assert.equal(SECOND, proc.read_file(path))
      assert(c:download(origin .. "/release/a"))
    end)
  end)

  describe("an upload's type", function ()
    it("with a CR or LF (it would add lines to the part's headers): raises at the call, nothing sent", function ()
      for _, call in ipairs {
        function ()
          return client:transcribe { file = { data = "RIFF", filename = "a.wav", type = "audio/wav\r\nX-Evil: 1" } }
        end,
        function () return client:images_edit { prompt = "a hat", image = { { data = "png", filename = "a.png",
                                                                              type = "image/png\nX-Evil: 1" } } } end,
        function () return client:files_upload { purpose = "batch", file = { filename = "a.jsonl", type = "a/b\r",
                                                                              reader = function () end } } end,
      } do
        local ok, err = pcall(call)
        assert.is_false(ok)
        assert.matches("%.type: a MIME type %(one line%) expected, got string", err)
      end
      assert.equal(0, #srv:requests())
      assert.equal("hi", assert(client:transcribe { file = { data = "RIFF AIGC-TEXT:hi", filename = "a.wav",
                                                             type = "audio/wav; codecs=1" } }).text)
    end)
  end)

  describe("a host's watchdog hook that ends a frame running too long", function ()
    -- A game's host stops a frame's script after N instructions (a count
    -- hook that raises); the frame's step() is cut wherever that falls, the
    -- next frame steps again. Every call must still end: a wait lost at the
    -- cut (the core's list of waiters taken, or a wake cut before it took
    -- the wait) left the call "running" for ever with nothing active.
    it("cut at every point of a frame's step: every call still ends, the client goes on", function ()
      local f = assert(io.open(dir .. "/note.wav", "wb"))
      f:write("RIFF....WAVE AIGC-TEXT:halt")
      f:close()
      local lost = {}
      for n = 1, 400, 3 do
        local c = aigc.client { base_url = srv.base_url, max_retries = 0, model = "aigc-dev",
                                error_handler = function () end }   -- (the hook's errors, reported)
        local reqs = {
          c:speech_async { input = "Halt!", response_format = "wav", to = dir .. "/halt.wav" },
          c:transcribe_async { file = dir .. "/note.wav" },
          c:images_generate_async { prompt = "a guard", size = "8x8", response_format = "b64_json" },
          c:chat_async { messages = { { role = "user", content = "hi" } }, stream = function () end },
          c:transcribe_async { file = { data = "RIFF AIGC-TEXT:yo", filename = "a.wav" }, stream = function () end },
        }
        local function live ()
          local k = 0
          for _, r in ipairs(reqs) do if r:status() == "queued" or r:status() == "running" then k = k + 1 end end
          return k
        end
        for _ = 1, 40 do   -- (the host's frames: the hook raises inside step)
          pcall(function ()
            debug.sethook(function () debug.sethook(); error("frame budget exceeded") end, "", n)
            c:step(0.005)
            debug.sethook()
          end)
          debug.sethook()
          if live() == 0 then break end
        end
        -- then frames without the watchdog: whatever was cut goes on
        local t0 = aigc.now()
        while live() > 0 and c:active() > 0 and aigc.now() - t0 < 30 do c:step(0.01) end
        for i, r in ipairs(reqs) do
          if r:status() == "queued" or r:status() == "running" then lost[#lost + 1] = n .. ":" .. i end
        end
        c:close()
      end
      assert.same({}, lost)
    end)
  end)
end)
