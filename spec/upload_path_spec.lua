-- Uploads from a path (`file = "/tmp/voice.wav"`): the file is opened, and
-- its size taken, when each attempt is sent, not when the call is made. A
-- game that records /tmp/voice.wav again while an earlier transcribe_async
-- waits for a slot sends the file as it is then; a file that changes size
-- while it is sent, or is gone when it is sent, fails the call at once
-- (kind "io", naming the field and the path, not retried), where libcurl's
-- size taken at the call made a body shorter than its Content-Length (the
-- server waited out `timeout` on every attempt) or a corrupt one. A path
-- that is not a regular file (a FIFO: opening it would block step(0) for
-- ever) is refused at the call. What the server received is read back from
-- its own record of the multipart parts (size, CRC-32).
local aigc = require "aigc"
local devserver = require "devserver"
local luachild = require "luachild"
local proc = require "procutil"
local uploads = require "uploads"
local raises = require("misuse").raises
local has_util, util = pcall(require, "aigc.devserver.util")

-- A WAV-ish file whose transcription the server gives back as `text`.
local function note (text, pad) return "RIFF\0\0\0\0WAVE" .. "AIGC-TEXT:" .. text .. "\0" .. (pad or "") end

local function write (path, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
end

-- The part named `name` of the server's last request.
local function part_of (srv, name) return uploads.part_of(srv:last(), name) end

local function same_crc (bytes, crc)
  if has_util then assert.equal(util.crc32(bytes), crc) end
end

describe("uploads from a path", function ()
  local srv, client, logs, dir

  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)
  uploads.folder_fixture(_ENV, function (d) dir = d end)

  -- A client with one slot (a call waits in the queue behind `hold()`).
  local function new_client (opts)
    local o = { base_url = srv.base_url, max_retries = 0, timeout = 10, max_concurrency = 1,
                log = function (level, msg) logs[#logs + 1] = level .. ": " .. msg end }
    for k, v in pairs(opts or {}) do o[k] = v end
    return aigc.client(o)
  end

  before_each(function ()
    srv:reset()
    logs = {}
    client = new_client()
  end)
  after_each(function () client:close() end)

  -- Takes the client's only slot: the next call waits in the queue (no
  -- step runs before it, so this one is still in flight).
  local function hold (c)
    return (c or client):speech_async { input = "hold the only slot", response_format = "wav",
                                        to = function () end }
  end

  describe("the file as it is when the request is sent", function ()
    it("rewritten shorter while the call waits for a slot: its new bytes go, with their length", function ()
      local path = dir .. "/voice.wav"
      write(path, note("first line", string.rep("x", 200000)))
      local busy = hold()
      local req = client:transcribe_async { file = path }
      assert.equal("queued", req:status())
      local now = note("second line")
      write(path, now)                        -- the next recording, shorter
      local res, err = req:wait()
      assert.is_nil(err)
      assert.equal("second line", res.text)
      local p = part_of(srv, "file")
      assert.equal(#now, p.size)
      same_crc(now, p.crc32)
      assert.equal("voice.wav", p.filename)
      assert(busy:wait())
    end)

    it("rewritten longer while it waits: the whole new file, not a corrupt body", function ()
      local path = dir .. "/grow.wav"
      write(path, note("short"))
      local busy = hold()
      local req = client:transcribe_async { file = path }
      local now = note("grown", string.rep("y", 300000))
      write(path, now)
      local res, err = req:wait()
      assert.is_nil(err)
      assert.equal("grown", res.text)
      local p = part_of(srv, "file")
      assert.equal(#now, p.size)
      same_crc(now, p.crc32)
      assert(busy:wait())
    end)

    it("a retry reads the file again: the second attempt sends it as it is then", function ()
      local path = dir .. "/retry.wav"
      write(path, note("before", string.rep("a", 50000)))
      local now = note("after the 503")
      local c = new_client { max_retries = 2, max_concurrency = 8,
                             log = function (level, msg)
                               logs[#logs + 1] = level .. ": " .. msg
                               if msg:find("retrying in", 1, true) then write(path, now) end
                             end }
      local res, err = c:transcribe { file = path, headers = { ["x-aigc-fault"] = "status=503,times=1,key=rr" } }
      c:close()
      assert.is_nil(err)
      assert.equal("after the 503", res.text)
      assert.equal(1, res.retries)
      assert.equal(#now, part_of(srv, "file").size)
    end)
  end)

  it("the part's filename (the base name) and Content-Type, as libcurl gives a file's", function ()
    for _, case in ipairs {
      { "note.wav", nil, "note.wav", "application/octet-stream" },
      { "in.jsonl", nil, "in.jsonl", "application/octet-stream" },
      { "pic.PNG", nil, "pic.PNG", "image/png" },
      { "noext", { filename = "named.txt" }, "named.txt", "text/plain" },
      { "typed.wav", { type = "audio/wav" }, "typed.wav", "audio/wav" },
    } do
      local path = dir .. "/" .. case[1]
      write(path, "AIGC-TEXT:x")
      local file = path
      if case[2] then
        file = { path = path }
        for k, v in pairs(case[2]) do file[k] = v end
      end
      assert(client:files_upload { purpose = "batch", file = file })
      local p = part_of(srv, "file")
      assert.equal(case[3], p.filename)
      assert.equal(case[4], p.content_type, case[1])
    end
  end)

  describe("fails at once, kind \"io\", not retried", function ()
    -- (A slot is free: the attempt starts inside the _async call, which
    -- opens the file and takes its size; nothing is read before wait.)
    for _, case in ipairs {
      { "shrinks", note("long", string.rep("s", 200000)), note("short"), "200[0-9]+ bytes when the request began" },
      { "grows", note("short"), note("long", string.rep("g", 200000)), "when the request began, 200[0-9]+ then" },
    } do
      it("a file that " .. case[1] .. " while it is sent: the call fails well before its timeout", function ()
        local path = dir .. "/" .. case[1] .. ".wav"
        write(path, case[2])
        local c = new_client { max_retries = 2, timeout = 8, max_concurrency = 8 }
        local t0 = aigc.now()
        local req = c:transcribe_async { file = path }
        write(path, case[3])                  -- rewritten in place (the same inode)
        local res, err = req:wait()
        local took = aigc.now() - t0
        c:close()
        assert.is_nil(res)
        assert.equal("io", err.kind)
        assert.matches("params.file: " .. path .. " changed size while it was sent", err.message, 1, true)
        assert.matches(case[4], err.message)
        assert.equal(0, err.retries)
        assert.is_nil(err.status)
        assert.is_true(took < 4, "took " .. took .. " s")   -- (the old code waited 8 s x 3 attempts)
        assert.not_matches("retrying", table.concat(logs, "\n"))
      end)
    end

    it("a file gone when the request is sent: the field and the path, no retry", function ()
      local path = dir .. "/vanish.wav"
      write(path, note("hi"))
      local c = new_client { max_retries = 2 }
      local busy = hold(c)
      local req = c:transcribe_async { file = path }
      os.remove(path)
      local res, err = req:wait()
      assert(busy:wait())
      c:close()
      assert.is_nil(res)
      assert.equal("io", err.kind)
      assert.equal("params.file: " .. path .. ": No such file or directory (when the request is sent)",
                   err.message)
      assert.equal(0, err.retries)
      assert.is_nil(err.status)   -- (not the status of the call that had the slot)
      assert.not_matches("retrying", table.concat(logs, "\n"))
      assert.is_true(#srv:requests() > 0)   -- (the call that had the slot: else the loop checks nothing)
      for _, r in ipairs(srv:requests()) do assert.not_equal("/v1/audio/transcriptions", r.path) end
    end)

    it("a list's files go in the caller's order (the first is the image edited)", function ()
      local paths = {}
      for i, name in ipairs { "a", "b", "c", "d", "e" } do
        paths[i] = dir .. "/" .. name .. ".png"
        -- (the server reads the signature and the IHDR chunk's size: 1 x 1)
        write(paths[i], "\137PNG\r\n\26\n\0\0\0\13IHDR\0\0\0\1\0\0\0\1" .. name)
      end
      assert(client:images_edit { prompt = "x", image = paths })
      local got = {}
      for _, p in ipairs(srv:last().parts) do
        if p.name == "image[]" then got[#got + 1] = p.filename end
      end
      assert.same({ "a.png", "b.png", "c.png", "d.png", "e.png" }, got)
    end)

    it("a list's file gone: named as the caller's list item", function ()
      local a, b = dir .. "/a.png", dir .. "/b.png"
      write(a, "PNG a")
      write(b, "PNG b")
      local busy = hold()
      local req = client:images_edit_async { prompt = "x", image = { a, b } }
      os.remove(b)
      local _, err = req:wait()
      assert(busy:wait())
      assert.equal("io", err.kind)
      -- (aigc.media gives each path part its `field`: the caller's words)
      local label = err.message:match("^(.-): " .. b:gsub("%p", "%%%0") .. ": No such file")
      assert.equal("params.image[2]", label, err.message)
    end)
  end)

  describe("misuse raises at the call, naming the caller's field", function ()
    it("a missing file, an empty path", function ()
      local ok = dir .. "/ok.png"
      write(ok, "PNG")
      -- (A list's item: params.image[2], the field aigc.media gives it.)
      local ok_call, e = pcall(client.images_edit, client, { prompt = "x", image = { ok, dir .. "/missing.png" } })
      assert.is_false(ok_call)
      local at = dir:gsub("%p", "%%%0") .. "/missing%.png: No such file or directory%)$"
      local label = tostring(e):match("%(([^:]+): " .. at)
      assert.equal("params.image[2]", label, tostring(e))
      raises("bad argument #1 to 'transcribe' %(params%.file: an empty path%)", function ()
        client:transcribe { file = "" }
      end)
      raises("bad argument #1 to 'files_upload' %(params%.file%.path: " .. dir:gsub("%p", "%%%0")
             .. "/none%.jsonl: No such file", function ()
        client:files_upload { purpose = "batch", file = { path = dir .. "/none.jsonl" } }
      end)
    end)

    it("the core names a part by its `field`, else by its name, a list's item by its place", function ()
      local engine = require("aigc.core").engine { base_url = srv.base_url }
      local function up (part)
        return engine:submit("json", {}, { path = "/files", fname = "upload",
                                           form = { { name = "purpose", value = "batch" }, part } })
      end
      local missing = dir .. "/none.jsonl"
      local at = missing:gsub("%p", "%%%0")
      raises("bad argument #2 to 'upload' %(params%.mine%[3%]: " .. at .. ": No such file or directory%)$",
             function () up { name = "file", path = missing, field = "params.mine[3]" } end)
      raises("bad argument #2 to 'upload' %(params%.file: " .. at .. ": No such file",
             function () up { name = "file", path = missing } end)
      raises("bad argument #2 to 'upload' %(params%.form%[3%]: " .. at .. ": No such file", function ()
        local form = { { name = "purpose", value = "batch" }, { name = "doc[]", data = "x", filename = "x" },
                       { name = "doc[]", path = missing } }
        engine:submit("json", {}, { path = "/files", fname = "upload", form = form })
      end)
      engine:close()
    end)

    it("a directory, a device, a FIFO: only a regular file is uploaded", function ()
      raises("%(params%.file: " .. dir:gsub("%p", "%%%0") .. " is a directory %(only a regular file",
             function () client:transcribe_async { file = dir } end)
      raises("%(params%.file: /dev/null is a character device %(only a regular file",
             function () client:transcribe_async { file = "/dev/null" } end)
      local fifo = dir .. "/fifo"
      assert(proc.sh("mkfifo " .. proc.quote(fifo)))
      -- (the old code accepted it, then blocked step(0) in libcurl's fopen)
      raises("%(params%.file: " .. fifo:gsub("%p", "%%%0") .. " is a FIFO %(only a regular file",
             function () client:transcribe_async { file = fifo } end)
      os.remove(fifo)
    end)
  end)

  -- In a child: the old code blocked here for ever (a failed run is a
  -- killed child, not a stuck suite).
  it("a path that became a FIFO before it is sent: step(0) does not block, kind \"io\"", function ()
    local r = luachild.run([[
      local aigc = require "aigc"
      local base, path = ...
      local function write (p, s) local f = assert(io.open(p, "wb")); f:write(s); f:close() end
      write(path, "AIGC-TEXT:hi")
      local c = aigc.client { base_url = base, max_retries = 2, timeout = 5, max_concurrency = 1 }
      local busy = c:speech_async { input = "hold the only slot", response_format = "wav", to = function () end }
      local req = c:transcribe_async { file = path }
      os.remove(path)
      assert(os.execute("mkfifo '" .. path .. "'"))
      local slowest, t0 = 0, aigc.now()
      while req:status() == "queued" or req:status() == "running" do
        local s = aigc.now()
        c:step(0)
        slowest = math.max(slowest, aigc.now() - s)
        if aigc.now() - t0 > 8 then break end
        aigc.sleep(0.005)
      end
      assert(busy:wait())
      local _, err = req:result()
      print(req:status(), err and err.kind, err and err.message, slowest < 1)
      os.remove(path)
    ]], { args = { srv.base_url, dir .. "/became-fifo.wav" }, timeout = 30 })
    assert.equal(0, r.status, r.stderr)
    assert.equal("failed\tio\tparams.file: " .. dir .. "/became-fifo.wav is a FIFO when the request is sent "
                 .. "(only a regular file can be uploaded)\ttrue\n", r.stdout)
  end)
end)
