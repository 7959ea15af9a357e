-- Issue 15 end to end: images, speech, transcription, moderation, files and
-- embeddings through the client, blocking and non-blocking, against the
-- bundled server over loopback (real libcurl, real multipart bodies). What
-- the server received is read back from the server itself (LuaSocket),
-- the files written are checked by independent tools (ImageMagick's
-- `identify`, sox's `soxi`) when installed.
local aigc = require "aigc"
local devserver = require "devserver"
local proc = require "procutil"

local SECRET = "sk-test-SECRET-media-77"

local function tmpdir ()
  local p = io.popen("mktemp -d /tmp/aigc-media-XXXXXX")
  local d = p:read("*l")
  p:close()
  return d
end

local read_all = proc.read_file

local function write_all (path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

local exists = proc.exists

local tool = proc.first_line   -- (nil when the command is not installed)
local HAS_IDENTIFY = tool("command -v identify") ~= nil
local HAS_SOXI = tool("command -v soxi") ~= nil

-- A WAV whose transcription the server gives back as `text`.
local function voice_note (text)
  return "RIFF\0\0\0\0WAVE" .. "AIGC-TEXT:" .. text
end

describe("media (issue 15)", function ()
  local srv, client, dir

  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { api_key = SECRET, model = "aigc-dev" })
  setup(function () dir = tmpdir() end)
  teardown(function () os.execute("rm -rf '" .. dir .. "'") end)

  local function fault (spec) return { ["x-aigc-fault"] = spec } end

  describe("images", function ()
    it("generate: b64_json decoded in C, res:save writes PNGs of the size asked (identify)", function ()
      local res = assert(client:images_generate { prompt = "a knight", size = "48x32", n = 2,
                                                  response_format = "b64_json", model = "dall-e-2" })
      assert.equal(2, #res.data)
      assert.equal("\137PNG\r\n\26\n", res.data[1].bytes:sub(1, 8))
      assert.equal(aigc.media.b64decode(res.data[2].b64_json), res.data[2].bytes)
      local paths = assert(res:save(dir .. "/knight-%d.png"))
      assert.same({ dir .. "/knight-1.png", dir .. "/knight-2.png" }, paths)
      assert.equal(res.data[1].bytes, read_all(paths[1]))
      local in_dir = assert(res:save(dir))
      assert.equal(dir .. "/image-2.png", in_dir[2])
      if HAS_IDENTIFY then
        assert.equal("48 32", tool("identify -format '%w %h' '" .. paths[1] .. "'"))
        assert.equal("48 32", tool("identify -format '%w %h' '" .. in_dir[2] .. "'"))
      end
      local last = srv:last()
      assert.equal("/v1/images/generations", last.path)
      assert.equal("48x32", last.body_json.size)
    end)

    it("generate_async: the future's result is decoded; on_done gets it", function ()
      local got
      local f = client:images_generate_async { prompt = "a cat", size = "16x16", response_format = "b64_json",
                                               model = "dall-e-2", on_done = function (res) got = res end }
      while client:step(0.05) > 0 do end
      local res = assert(f:result())
      assert.equal(res, got)
      assert.equal("\137PNG", res.data[1].bytes:sub(1, 4))
      assert.is_function(res.save)
    end)

    it("a url result: save downloads each image through the client, straight to its file", function ()
      local res = assert(client:images_generate { prompt = "a dog", size = "24x16", model = "dall-e-2", n = 2 })
      assert.is_string(res.data[1].url)
      assert.is_nil(res.data[1].bytes)
      local paths = assert(res:save(dir .. "/dog-%d.png"))
      assert.equal(2, #paths)
      assert.equal("\137PNG", read_all(paths[2]):sub(1, 4))
      if HAS_IDENTIFY then assert.equal("24 16", tool("identify -format '%w %h' '" .. paths[1] .. "'")) end
      local copy = assert(setmetatable({ data = { { revised_prompt = "x" } } }, getmetatable(res)))
      local none, err = copy:save(dir)
      assert.is_nil(none)
      assert.equal("parse", err.kind)
    end)

    it("save: only the pattern's last %d is the number, any other % stays in the name", function ()
      local res = assert(client:images_generate { prompt = "a bar", size = "16x16", n = 2,
                                                  response_format = "b64_json", model = "dall-e-2" })
      local paths = assert(res:save(dir .. "/100%done-%d.png"))
      assert.same({ dir .. "/100%done-1.png", dir .. "/100%done-2.png" }, paths)
      assert.equal(res.data[2].bytes, read_all(dir .. "/100%done-2.png"))
      assert.same({ dir .. "/50%-1.png", dir .. "/50%-2.png" }, assert(res:save(dir .. "/50%-%d.png")))
    end)

    it("save replaces a file already there; overwrite = false fails (kind io) and writes no image", function ()
      local res = assert(client:images_generate { prompt = "a bird", size = "16x16", n = 2,
                                                  response_format = "b64_json", model = "dall-e-2" })
      write_all(dir .. "/bird-2.png", "the player's own picture")
      assert.same({ dir .. "/bird-1.png", dir .. "/bird-2.png" }, assert(res:save(dir .. "/bird-%d.png")))
      assert.equal(res.data[2].bytes, read_all(dir .. "/bird-2.png"))
      write_all(dir .. "/kept-2.png", "the player's own picture")
      local paths, err = res:save(dir .. "/kept-%d.png", { overwrite = false })
      assert.is_nil(paths)
      assert.equal("io", err.kind)
      assert.matches("kept-2.png: a file is there already (overwrite = false)", err.message, 1, true)
      assert.equal("the player's own picture", read_all(dir .. "/kept-2.png"))
      assert.is_false(exists(dir .. "/kept-1.png"))
      assert.same({ dir .. "/new-1.png", dir .. "/new-2.png" },
                  assert(res:save(dir .. "/new-%d.png", { overwrite = false })))
      assert.has_error(function () res:save(dir, { overwrite = "no" }) end)
      assert.has_error(function () res:save(dir, 5) end)
    end)

    -- overwrite = false checked the paths, then renamed each image into
    -- place: a file another process made at a path in between (here while
    -- the first image downloads) was replaced.
    it("overwrite = false: a file made at a path after the check is not replaced (kind io)", function ()
      local res = assert(client:images_generate { prompt = "a cat", size = "16x16", model = "dall-e-2", n = 2 })
      assert.is_string(res.data[1].url)
      res.data[2].bytes = "the second image"   -- (written at once, after the download)
      local f = res:save_async(dir .. "/race-%d.png", { overwrite = false })
      assert.equal("running", f:status())   -- (the paths checked; the first image downloading)
      write_all(dir .. "/race-2.png", "another process's picture")
      while client:step(0.05) > 0 do end
      local paths, err = f:result()
      assert.is_nil(paths)
      assert.equal("io", err.kind)
      assert.matches("race-2.png: a file is there already (overwrite = false)", err.message, 1, true)
      assert.equal("another process's picture", read_all(dir .. "/race-2.png"))
      assert.is_false(exists(dir .. "/race-2.png.part"))
    end)

    -- A url image's download was renamed into place even with overwrite =
    -- false: a file another process made at its path while it downloaded
    -- was replaced. Now linked, as a b64_json image is; and download's own
    -- overwrite = false.
    it("overwrite = false: a file made at a url image's path while it downloads is not replaced (kind io)",
       function ()
      local res = assert(client:images_generate { prompt = "a dog", size = "16x16", model = "dall-e-2", n = 1 })
      assert.is_string(res.data[1].url)
      local f = res:save_async(dir .. "/dl-%d.png", { overwrite = false })
      assert.equal("running", f:status())   -- (the path checked; the image downloading)
      write_all(dir .. "/dl-1.png", "another process's picture")
      while client:step(0.05) > 0 do end
      local paths, err = f:result()
      assert.is_nil(paths)
      assert.equal("io", err.kind)
      assert.equal("could not write " .. dir .. "/dl-1.png: a file is there already (overwrite = false)", err.message)
      assert.equal("another process's picture", read_all(dir .. "/dl-1.png"))
      assert.is_false(exists(dir .. "/dl-1.png.part"))
      local none, derr = client:download(res.data[1].url, { to = dir .. "/dl-1.png", overwrite = false })
      assert.is_nil(none)
      assert.equal("io", derr.kind)
      assert.equal("another process's picture", read_all(dir .. "/dl-1.png"))
      assert(client:download(res.data[1].url, { to = dir .. "/dl-2.png", overwrite = false }))
      assert.equal(read_all(dir .. "/dl-2.png"), assert(client:download(res.data[1].url)).body)
      assert.has_error(function () client:download(res.data[1].url, { to = dir .. "/x", overwrite = "no" }) end)
    end)

    -- overwrite = false asked whether a path was taken by opening it: a FIFO
    -- there blocked the save (and the host) for ever.
    it("overwrite = false with a FIFO at a path: that path is taken (kind io), not opened", function ()
      assert(proc.execute("mkfifo '" .. dir .. "/pipe-2.png'"))
      local r = require("luachild").run([[
        local c = require("aigc").client { base_url = arg[1], max_retries = 0 }
        local res = assert(c:images_generate { prompt = "a fish", size = "16x16", n = 2,
                                               response_format = "b64_json", model = "dall-e-2" })
        local paths, err = res:save(arg[2] .. "/pipe-%d.png", { overwrite = false })
        print(paths, err.kind, err.message)
      ]], { args = { srv.base_url, dir }, timeout = 10 })
      assert.equal(0, r.status, r.stderr)
      assert.equal("nil\tio\tcould not write " .. dir .. "/pipe-2.png: a file is there already (overwrite = false)\n",
                   r.stdout)
      assert.is_false(exists(dir .. "/pipe-1.png"))
    end)

    -- A b64_json image was written by Lua's io.open(path .. ".part", "wb"):
    -- a symbolic link planted under that name (a shared /tmp) had its target
    -- overwritten with the image, a FIFO there blocked the save for ever,
    -- and a FIFO at the path itself was replaced, where `to = path` refuses it.
    it("save writes as to = path: a link or FIFO at path.part is not written through, a FIFO at the path stays",
       function ()
      local victim = dir .. "/the-players-notes.txt"
      write_all(victim, "the player's notes")
      assert(proc.execute("ln -s '" .. victim .. "' '" .. dir .. "/seal-1.png.part' && mkfifo '"
                          .. dir .. "/seal-2.png.part' && mkfifo '" .. dir .. "/held-1.png'"))
      local r = require("luachild").run([[
        local c = require("aigc").client { base_url = arg[1], max_retries = 0 }
        local res = assert(c:images_generate { prompt = "a seal", size = "16x16", n = 2,
                                               response_format = "b64_json", model = "dall-e-2" })
        local paths = assert(res:save(arg[2] .. "/seal-%d.png"))
        io.write(#paths, "|", (res.data[1].bytes == io.open(paths[1], "rb"):read("*a")) and "same" or "other", "\n")
        local none, err = res:save(arg[2] .. "/held-%d.png")
        io.write(tostring(none), "|", err.kind, "|", err.message, "\n")
      ]], { args = { srv.base_url, dir }, timeout = 10 })
      assert.equal(0, r.status, r.stderr)
      assert.equal("2|same\nnil|io|could not write " .. dir .. "/held-1.png: it is a FIFO, not a regular file\n",
                   r.stdout)
      assert.equal("the player's notes", read_all(victim))
      assert.equal("file", aigc.core.file_kind(dir .. "/seal-1.png"))
      assert.equal("fifo", aigc.core.file_kind(dir .. "/held-1.png"))
      assert.is_false(exists(dir .. "/seal-1.png.part") or exists(dir .. "/seal-2.png.part"))
    end)

    it("save_async: url images downloaded as the loop turns, never in the call; the paths its result", function ()
      local res = assert(client:images_generate { prompt = "a dog", size = "24x16", model = "dall-e-2", n = 2 })
      assert.is_string(res.data[1].url)
      local got
      local f = res:save_async(dir .. "/async-%d.png", { on_done = function (p) got = p end })
      assert.equal("running", f:status())   -- (the call did not wait for the download)
      assert.is_false(exists(dir .. "/async-1.png"))
      while client:step(0.05) > 0 do end
      local paths = assert(f:result())
      assert.same({ dir .. "/async-1.png", dir .. "/async-2.png" }, paths)
      assert.equal(paths, got)
      assert.equal("\137PNG", read_all(paths[2]):sub(1, 4))
      -- canceled before the loop turned: the download under way is canceled, no file made
      local c2 = res:save_async(dir .. "/gone-%d.png")
      assert.is_true(c2:cancel())
      while client:step(0.05) > 0 do end
      assert.equal("canceled", select(2, c2:result()).kind)
      assert.is_false(exists(dir .. "/gone-1.png"))
      assert.is_false(exists(dir .. "/gone-1.png.part"))
      assert.is_false(exists(dir .. "/gone-2.png"))
    end)

    it("save_async of a result whose client is closed: bytes written, a url image fails (kind canceled)", function ()
      local c = aigc.client { base_url = srv.base_url, max_retries = 0 }
      local b64 = assert(c:images_generate { prompt = "x", size = "16x16", response_format = "b64_json" })
      local url = assert(c:images_generate { prompt = "x", size = "16x16" })
      c:close()
      assert.same({ dir .. "/closed-1.png" }, assert(b64:save_async(dir .. "/closed-%d.png"):wait()))
      local none, err = url:save_async(dir .. "/closed-url-%d.png"):wait()
      assert.is_nil(none)
      assert.equal("canceled", err.kind)
    end)

    it("a url result keeps its client alive: save works with the client dropped, not after", function ()
      local c = aigc.client { base_url = srv.base_url, max_retries = 0 }
      local res = assert(c:images_generate { prompt = "x", size = "16x16" })
      local weak = setmetatable({ c }, { __mode = "v" })
      c = nil   -- luacheck: ignore 311
      for _ = 1, 4 do collectgarbage() end
      assert.is_table(weak[1])
      assert.same({ dir .. "/kept-client-1.png" }, assert(res:save(dir .. "/kept-client-%d.png")))
      res = nil   -- luacheck: ignore 311
      for _ = 1, 4 do collectgarbage() end
      assert.is_nil(weak[1], "the result (gone) still held its client")
    end)

    it("a client dropped while a save_async of its url result is under way is collected (5.1, LuaJIT too)", function ()
      -- (the save's task, which the client's loop holds, holds the result: on Lua 5.1 and
      -- LuaJIT, which have no ephemerons, a weak-keyed result -> client table kept both for ever)
      local c = aigc.client { base_url = srv.base_url, max_retries = 0 }
      local res = assert(c:images_generate { prompt = "x", size = "16x16" })
      local f = res:save_async(dir .. "/dropped-%d.png", { on_done = function () return res end })
      local weak = setmetatable({ c, res, f }, { __mode = "v" })
      c, res, f = nil, nil, nil   -- luacheck: ignore 311
      for _ = 1, 4 do collectgarbage() end
      assert.is_nil(weak[1], "the dropped client was never collected")
      assert.is_nil(weak[2], "its result was never collected")
    end)

    it("stream: partial images to the function (bytes decoded), the completed one as the result", function ()
      local seen = {}
      local res = assert(client:images_generate { prompt = "a castle", size = "32x16", model = "gpt-image-1",
        partial_images = 2, stream = function (ev)
          seen[#seen + 1] = ev.type
          assert.equal("\137PNG", ev.bytes:sub(1, 4))
        end })
      assert.same({ "image_generation.partial_image", "image_generation.partial_image",
                    "image_generation.completed" }, seen)
      assert.is_true(srv:last().body_json.stream)
      assert.equal("\137PNG", res.data[1].bytes:sub(1, 4))
      local paths = assert(res:save(dir .. "/castle-%d.png"))
      if HAS_IDENTIFY then assert.equal("32 16", tool("identify -format '%w %h' '" .. paths[1] .. "'")) end
      -- edits stream too (multipart), async
      local f = client:images_edit_async { image = { data = res.data[1].bytes, filename = "c.png" },
                                           prompt = "add a flag", model = "gpt-image-1", stream = true }
      local edited = assert(f:wait())
      assert.equal("image_edit.completed", edited.type)
      assert.equal("\137PNG", edited.data[1].bytes:sub(1, 4))
    end)

    it("stream: the completed image is decoded from base64 once, not again for the result", function ()
      -- (a final image is megabytes: its function got it decoded, the result shares those bytes)
      local media, decodes, seen = require("aigc.core").media, {}, nil
      local b64decode = media.b64decode
      media.b64decode = function (s) decodes[s] = (decodes[s] or 0) + 1; return b64decode(s) end
      local ok, res = pcall(client.images_generate, client, { prompt = "a tower", size = "32x16",
        model = "gpt-image-1", partial_images = 1, stream = function (ev) seen = ev end })
      media.b64decode = b64decode
      assert(ok, res)
      assert.is_table(res)
      assert.equal("image_generation.completed", seen.type)
      assert.equal(1, decodes[res.data[1].b64_json])
      assert.equal(seen.bytes, res.data[1].bytes)
      assert.equal(b64decode(res.data[1].b64_json), res.data[1].bytes)
    end)

    it("stream: an image stream cut before its completed event is an error, not a result", function ()
      local res, err = client:images_generate { prompt = "cut", size = "16x16", model = "gpt-image-1",
                                                partial_images = 3, stream = true, headers = fault("drop-after=2") }
      assert.is_nil(res)
      assert.is_true(err.kind == "stream" or err.kind == "connect", tostring(err))
    end)

    it("download: credentials go to the client's own origin only", function ()
      local other = devserver.start()
      local c = aigc.client { base_url = srv.base_url, api_key = SECRET, organization = "org-9" }
      local ours = assert(c:download(srv.base_url .. "/models", { to = dir .. "/models.json" }))
      assert.equal(dir .. "/models.json", ours.path)
      assert.equal("authorization", srv:last().auth_header)
      local theirs = assert(c:download(other.base_url .. "/models"))
      assert.matches('"object"', theirs.body)
      local seen = other:last()
      local function absent (v) return v == nil or v == devserver.null or type(v) == "userdata" end
      assert.is_true(absent(seen.auth_header))   -- neither Authorization nor api-key
      assert.is_true(absent(seen.headers["openai-organization"]))
      assert.is_nil(seen.headers.authorization)
      local f = c:download_async(other.base_url .. "/models", { to = function () end })
      assert.is_true(assert(f:wait()).bytes > 0)
      assert.has_error(function () c:download("file:///etc/passwd") end)
      c:close()
      other:stop()
    end)

    it("edit: image from a path and mask from memory go as multipart parts", function ()
      local base = assert(client:images_generate { prompt = "base", size = "32x32", response_format = "b64_json",
                                                   model = "dall-e-2" })
      local path = dir .. "/base.png"
      write_all(path, base.data[1].bytes)
      local mask = { data = base.data[1].bytes, filename = "mask.png", type = "image/png" }
      local res = assert(client:images_edit { image = path, prompt = "add a hat", response_format = "b64_json",
                                              mask = mask })
      assert.equal("\137PNG", res.data[1].bytes:sub(1, 4))
      local last = srv:last()
      assert.equal("/v1/images/edits", last.path)
      local parts = {}
      for _, p in ipairs(last.parts) do parts[p.name] = p end
      assert.equal("base.png", parts.image.filename)
      assert.equal(#base.data[1].bytes, parts.image.size)
      assert.equal("mask.png", parts.mask.filename)
      assert.equal("image/png", parts.mask.content_type)
      assert.equal("add a hat", parts.prompt.value)
      assert.equal("aigc-dev", parts.model.value)   -- the client's model
      assert.is_nil(last.headers["content-type"]:find("json"))
    end)

    it("variation_async from memory; a same-size mask is checked by the server (400 -> api error)", function ()
      local base = assert(client:images_generate { prompt = "v", size = "16x16", response_format = "b64_json",
                                                   model = "dall-e-2" })
      local f = client:images_variation_async { image = { data = base.data[1].bytes, filename = "v.png" },
                                                response_format = "b64_json", size = "16x16" }
      local res = assert(f:wait())
      assert.equal("\137PNG", res.data[1].bytes:sub(1, 4))
      local small = assert(client:images_generate { prompt = "m", size = "8x8", response_format = "b64_json",
                                                    model = "dall-e-2" })
      local nothing, err = client:images_edit { prompt = "x",
        image = { data = base.data[1].bytes, filename = "i.png" },
        mask = { data = small.data[1].bytes, filename = "m.png" } }
      assert.is_nil(nothing)
      assert.equal(400, err.status)
      assert.equal("mask", err.param)
    end)
  end)

  describe("speech", function ()
    it("to a string, a file and a chunk callback: the same WAV (soxi reads it)", function ()
      local params = { input = "Halt, who goes there", model = "tts-1", response_format = "wav" }
      local whole = assert(client:speech(params))
      assert.equal("RIFF", whole.body:sub(1, 4))
      assert.equal(#whole.body, whole.bytes)
      assert.matches("audio/wav", whole.content_type)

      local path = dir .. "/line.wav"
      params.to = path
      local saved = assert(client:speech(params))
      assert.equal(path, saved.path)
      assert.is_nil(saved.body)
      assert.equal(whole.body, read_all(path))
      assert.is_false(exists(path .. ".part"))
      if HAS_SOXI then
        assert.equal("24000", tool("soxi -r '" .. path .. "'"))
        -- 20 characters at 50 ms: 1 s
        assert.equal(1.0, tonumber(tool("soxi -D '" .. path .. "'")))
      end

      local chunks = {}
      params.to = function (chunk) chunks[#chunks + 1] = chunk end
      local streamed = assert(client:speech(params))
      assert.is_true(#chunks > 1)   -- it came in pieces, each delivered as it arrived
      assert.equal(whole.body, table.concat(chunks))
      assert.equal(#whole.body, streamed.bytes)
    end)

    it("stream_format sse: speech.audio.delta events decoded in C into the same audio, chunk by chunk", function ()
      local plain = assert(client:speech { input = "Hello there", model = "gpt-4o-mini-tts", response_format = "pcm" })
      local chunks = {}
      local res = assert(client:speech { input = "Hello there", model = "gpt-4o-mini-tts", response_format = "pcm",
                                         stream_format = "sse", to = function (c) chunks[#chunks + 1] = c end })
      assert.equal("speech.audio.done", res.type)
      assert.is_nil(srv:last().body_json.stream)   -- the speech API has no `stream`: stream_format says it
      assert.equal("sse", srv:last().body_json.stream_format)
      assert.is_true(#chunks > 1)
      assert.equal(plain.body, table.concat(chunks))
      assert.has_error(function () client:speech { input = "x", stream_format = "sse" } end)
    end)

    it("speech_async to chunks: playback can start before the end (chunks before the request is over)", function ()
      local chunks_before_end = 0
      local req
      req = client:speech_async { input = "one two three four five six", response_format = "pcm",
        headers = fault("pause=30"),
        to = function () if req:status() == "running" then chunks_before_end = chunks_before_end + 1 end end }
      while client:step(0.05) > 0 do end
      local res = assert(req:result())
      assert.is_true(chunks_before_end > 1)
      assert.is_true(res.bytes > 0)
    end)

    it("cancel mid-download: the partial file is removed, the file never appears", function ()
      local path = dir .. "/cut.wav"
      local req = client:speech_async { input = string.rep("long line ", 20), response_format = "wav",
                                        to = path, headers = fault("pause=100") }
      local t0 = aigc.now()
      while not exists(path .. ".part") and aigc.now() - t0 < 10 do client:step(0.02) end
      assert.is_true(exists(path .. ".part"))
      assert.is_true(req:cancel())
      while client:step(0.02) > 0 do end
      assert.equal("canceled", req:status())
      assert.is_false(exists(path .. ".part"))
      assert.is_false(exists(path))
    end)

    it("a failure after bytes (a dropped connection) removes the partial file", function ()
      local path = dir .. "/drop.wav"
      local res, err = client:speech { input = string.rep("word ", 30), response_format = "wav",
                                       to = path, headers = fault("drop-after=2") }
      assert.is_nil(res)
      assert.is_not_nil(err)
      assert.is_false(exists(path .. ".part"))
      assert.is_false(exists(path))
    end)

    it("a file sink is retried from the start; a chunk sink is not retried once a chunk was delivered", function ()
      local c = aigc.client { base_url = srv.base_url, api_key = SECRET, max_retries = 2 }
      local path = dir .. "/retry.wav"
      local res = assert(c:speech { input = "retry me", response_format = "wav", to = path,
                                    headers = fault("status=500,times=1,key=r1"), timeout = 10 })
      assert.equal(1, res.retries)
      assert.equal("RIFF", read_all(path):sub(1, 4))
      srv:reset()
      local got = 0
      local nothing, err = c:speech { input = string.rep("word ", 30), response_format = "wav",
                                      headers = fault("drop-after=2"), to = function (chunk) got = got + #chunk end }
      assert.is_nil(nothing)
      assert.is_true(got > 0)
      assert.equal("stream", err.kind)
      assert.equal(1, #srv:requests())   -- not sent again after bytes were delivered
      c:close()
    end)

    it("an error in the chunk callback fails the call (kind callback), the Lua state stays usable", function ()
      local res, err = client:speech { input = "boom", response_format = "pcm",
                                       to = function () error("player broke") end }
      assert.is_nil(res)
      assert.equal("callback", err.kind)
      assert.matches("player broke", err.message)
      assert.is_string(assert(client:speech { input = "again", response_format = "pcm" }).body)
    end)

    it("cancel or close from inside the chunk callback: nothing delivered after it, one on_error", function ()
      local req, chunks, errors = nil, 0, {}
      req = client:speech_async { input = string.rep("word ", 20), response_format = "pcm",
        headers = fault("pause=20"),
        to = function () chunks = chunks + 1; req:cancel() end,
        on_error = function (e) errors[#errors + 1] = e.kind end }
      while client:step(0.02) > 0 do end
      assert.equal(1, chunks)
      assert.same({ "canceled" }, errors)
      local c = aigc.client { base_url = srv.base_url }
      local n = 0
      local r2 = c:speech_async { input = string.rep("word ", 20), response_format = "pcm",
                                  headers = fault("pause=20"), to = function () n = n + 1; c:close() end }
      while r2:status() == "running" do c:step(0.02) end
      assert.equal(1, n)
      assert.equal("canceled", r2:status())
      assert.is_false(pcall(c.speech, c, { input = "x" }))   -- closed: misuse
    end)

    it("finalizers that cancel while chunks become Lua strings: the request ends once, the state is sane", function ()
      -- Objects whose __gc cancels the request, collected while the C core
      -- pushes chunks (the re-entrancy rule). Table __gc needs 5.2+.
      if _VERSION == "Lua 5.1" then pending("needs Lua 5.2+: table __gc") return end
      local req, ends, after = nil, 0, 0
      local function arm ()
        setmetatable({}, { __gc = function () if req then req:cancel() end end })
      end
      collectgarbage("setpause", 0)
      req = client:speech_async { input = string.rep("word ", 40), response_format = "pcm",
        to = function () if req:status() ~= "running" then after = after + 1 end; for _ = 1, 50 do arm() end end,
        on_error = function () ends = ends + 1 end, on_done = function () ends = ends + 1 end }
      for _ = 1, 50 do arm() end
      while client:step(0.02) > 0 do end
      collectgarbage("setpause", 200)
      assert.equal(1, ends)
      -- No chunk is handed over once the request ended (the core checks
      -- right before each call). The call itself allocates (Lua's frame for
      -- it) before its first line runs: a finalizer there cancels it as one
      -- inside the callback would, and that one call sees "canceled". Any
      -- more would be chunks delivered after the end (flaky as 1 on 5.2).
      assert.is_true(after <= 1, "chunks delivered after the end: " .. after)
      assert.is_true(req:status() == "canceled" or req:status() == "done")
      assert.is_string(assert(client:speech { input = "still fine", response_format = "pcm" }).body)
    end)

    it("max_response_bytes: a limit error, and no partial file left", function ()
      local path = dir .. "/big.wav"
      local res, err = client:speech { input = string.rep("a", 200), response_format = "wav", to = path,
                                       max_response_bytes = 1000 }
      assert.is_nil(res)
      assert.equal("limit", err.kind)
      assert.is_false(exists(path .. ".part"))
      assert.is_false(exists(path))
    end)

    it("a destination that cannot be written: kind io", function ()
      local res, err = client:speech { input = "x", response_format = "wav", to = dir .. "/no/such/dir/x.wav" }
      assert.is_nil(res)
      assert.equal("io", err.kind)
      assert.matches("no/such/dir", err.message)
    end)

    it("a folder removed mid-download: kind io saying so, not that another download replaced the file", function ()
      local sub = dir .. "/vanishing"
      assert.is_true(proc.execute("mkdir '" .. sub .. "'"))
      local req = client:speech_async { input = string.rep("a", 40), response_format = "wav", to = sub .. "/line.wav",
                                        headers = fault("pause=20") }   -- (its pieces 20 ms apart)
      local removed = false
      while req:status() == "queued" or req:status() == "running" do
        client:step(0.01)
        if not removed and exists(sub .. "/line.wav.part") then
          removed = true
          assert.is_true(proc.execute("rm -rf '" .. sub .. "'"))
        end
      end
      assert.is_true(removed)
      local res, err = req:result()
      assert.is_nil(res)
      assert.equal("io", err.kind)
      assert.matches("No such file", err.message)
      assert.is_nil(err.message:find("another download", 1, true))
    end)

    it("a FIFO (or a device) as the destination: kind io, and it is left as it was", function ()
      local fifo = dir .. "/player.fifo"
      if not proc.execute("mkfifo '" .. fifo .. "' 2>/dev/null") then pending("no mkfifo here") return end
      local res, err = client:speech { input = "x", response_format = "wav", to = fifo }
      assert.is_nil(res)
      assert.equal("io", err.kind)
      assert.matches("FIFO", err.message)
      assert.is_true(proc.execute("test -p '" .. fifo .. "'"))   -- (not replaced by a regular file)
      assert.is_false(exists(fifo .. ".part"))
      local _, derr = client:speech { input = "x", response_format = "wav", to = dir }
      assert.equal("io", derr.kind)
      assert.matches("directory", derr.message)
    end)

    it("the server's errors come back as api errors (opus refused)", function ()
      local res, err = client:speech { input = "x", response_format = "opus", to = dir .. "/x.opus" }
      assert.is_nil(res)
      assert.equal(400, err.status)
      assert.is_false(exists(dir .. "/x.opus"))
    end)
  end)

  describe("transcription and translation", function ()
    it("a speech WAV round-trips from a path; every format", function ()
      local path = dir .. "/note.wav"
      assert(client:speech { input = "Where is my order", response_format = "wav", to = path })
      local res = assert(client:transcribe { file = path, model = "whisper-1" })
      assert.equal("Where is my order", res.text)
      local last = srv:last()
      assert.equal("note.wav", last.parts[1].filename)
      local verbose = assert(client:transcribe { file = path, model = "whisper-1", response_format = "verbose_json",
                                                 timestamp_granularities = { "word", "segment" } })
      assert.equal("transcribe", verbose.task)
      assert.is_table(verbose.words)
      assert.equal(4, #verbose.words)
      local names = {}
      for _, p in ipairs(srv:last().parts) do names[#names + 1] = p.name end
      assert.same({ "file", "model", "response_format", "timestamp_granularities[]", "timestamp_granularities[]" },
                  names)
      assert.equal("Where is my order", assert(client:transcribe { file = path, response_format = "text" }).text
                   :gsub("%s+$", ""))
      local srt = assert(client:transcribe { file = path, response_format = "srt" })
      assert.matches("^1\r?\n00:00:00,000 %-%-> ", srt.text)
      assert.matches("^WEBVTT", assert(client:transcribe { file = path, response_format = "vtt" }).text)
    end)

    it("stream: transcript.text.delta events to the function, the done event as the result", function ()
      local deltas = {}
      local res = assert(client:transcribe { file = { data = voice_note("one two three"), filename = "s.wav" },
        model = "gpt-4o-transcribe", stream = function (ev) deltas[#deltas + 1] = ev.delta end })
      assert.equal("one two three", res.text)
      assert.equal("one two three", table.concat(deltas))
      local stream_part
      for _, p in ipairs(srv:last().parts) do if p.name == "stream" then stream_part = p.value end end
      assert.equal("true", stream_part)
      local f = client:transcribe_async { file = { data = voice_note("async words"), filename = "s.wav" },
                                          model = "gpt-4o-transcribe", stream = true }
      assert.equal("async words", assert(f:wait()).text)
    end)

    it("bytes from memory, blocking and async; translations", function ()
      local res = assert(client:transcribe { file = { data = voice_note("hello there"), filename = "n.wav" } })
      assert.equal("hello there", res.text)
      local f = client:translate_async { file = { data = voice_note("bonjour"), filename = "b.wav" },
                                         model = "whisper-1" }
      assert.equal("bonjour", assert(f:wait()).text)
      assert.equal("/v1/audio/translations", srv:last().path)
    end)

    it("an upload from a path is sent again on a retry (the same bytes)", function ()
      local c = aigc.client { base_url = srv.base_url, api_key = SECRET, max_retries = 2 }
      local path = dir .. "/retry-note.wav"
      write_all(path, voice_note("again please"))
      local res = assert(c:transcribe { file = path, headers = fault("status=503,times=1,key=t1") })
      assert.equal("again please", res.text)
      assert.equal(1, res.retries)
      local reqs = srv:requests()
      assert.equal(2, #reqs)
      assert.equal(reqs[1].parts[1].crc32, reqs[2].parts[1].crc32)
      assert.equal(reqs[1].parts[1].size, reqs[2].parts[1].size)
      c:close()
    end)

    it("a file the server refuses (its extension) is an api error", function ()
      local res, err = client:transcribe { file = { data = "abc", filename = "notes.txt" } }
      assert.is_nil(res)
      assert.equal(400, err.status)
    end)
  end)

  describe("moderation", function ()
    it("says whether anything was flagged and which categories", function ()
      local res = assert(client:moderate { input = { "I will kill you", "have a nice day" } })
      assert.is_true(res.flagged)
      assert.same({ "violence" }, res.flagged_categories)
      assert.is_true(res.results[1].flagged)
      assert.is_false(res.results[2].flagged)
      local flagged, cats = aigc.media.flags(res)
      assert.is_true(flagged)
      assert.same({ "violence" }, cats)
      local clean = assert(client:moderate("where is my parcel?"))
      assert.is_false(clean.flagged)
      assert.same({}, clean.flagged_categories)
    end)

    it("moderate_async with on_done", function ()
      local got
      client:moderate_async { input = "I will kill you", on_done = function (res) got = res end }
      while client:step(0.05) > 0 do end
      assert.is_true(got.flagged)
    end)
  end)

  describe("files", function ()
    it("upload (path and memory), list with pagination, retrieve, content, delete", function ()
      local path = dir .. "/batch.jsonl"
      write_all(path, '{"custom_id":"1"}\n')
      local a = assert(client:files_upload { file = path, purpose = "batch" })
      local b = assert(client:files_upload { file = { data = "{}\n", filename = "b.jsonl" }, purpose = "batch" })
      assert.equal("batch.jsonl", a.filename)
      assert.equal(18, a.bytes)
      local parts = {}
      for _, p in ipairs(srv:last().parts) do parts[p.name] = p end
      assert.is_nil(parts.model)   -- a file has no model
      assert.equal("batch", parts.purpose.value)

      local page1 = assert(client:files_list { limit = 1, order = "asc" })
      assert.equal(1, #page1.data)
      assert.is_true(page1.has_more)
      assert.equal(a.id, page1.next_after)
      assert.same({ limit = "1", order = "asc" }, srv:last().query)
      local page2 = assert(client:files_list { limit = 1, order = "asc", after = page1.next_after })
      assert.equal(b.id, page2.data[1].id)
      assert.is_nil(page2.next_after)

      assert.equal("b.jsonl", assert(client:files_retrieve(b.id)).filename)
      assert.equal('{"custom_id":"1"}\n', assert(client:files_content(a.id)).body)
      local out = dir .. "/content.jsonl"
      assert.equal(out, assert(client:files_content(a.id, { to = out })).path)
      assert.equal('{"custom_id":"1"}\n', read_all(out))

      local del = assert(client:files_delete(a.id))
      assert.is_true(del.deleted)
      assert.equal("DELETE", srv:last().method)
      local gone, err = client:files_retrieve(a.id)
      assert.is_nil(gone)
      assert.equal(404, err.status)
    end)

    it("a large upload from a path does not block the frame loop; one canceled mid-way ends canceled", function ()
      local path = dir .. "/big.jsonl"
      write_all(path, string.rep('{"custom_id":"x","method":"POST"}\n', 250000))   -- ~8.5 MB
      local req = client:files_upload_async { file = path, purpose = "batch" }
      local frames = 0
      while req:status() == "queued" or req:status() == "running" do
        client:step(0)          -- a frame: never waits for the network
        frames = frames + 1
        if frames % 50 == 0 then aigc.sleep(0.001) end
      end
      local res = assert(req:result())
      assert.equal(250000 * 34, res.bytes)
      assert.is_true(frames > 1)
      local cut = client:files_upload_async { file = path, purpose = "batch" }
      client:step(0)
      assert.is_true(cut:cancel())
      while client:step(0.01) > 0 do end
      assert.equal("canceled", cut:status())
      assert.equal(1, #assert(client:files_list {}).data)   -- only the first upload is there
    end)

    it("async forms", function ()
      local up = client:files_upload_async { file = { data = "x\n", filename = "x.jsonl" }, purpose = "user_data" }
      local f = assert(up:wait())
      local req = client:files_content_async(f.id)
      assert.equal("x\n", assert(req:wait()).body)
      local del = client:files_delete_async(f.id)
      assert.is_true(assert(del:wait()).deleted)
    end)
  end)

  describe("embeddings", function ()
    it("asks for base64 when the caller did not choose, and decodes float32 exactly in C", function ()
      local res = assert(client:embeddings { input = { "hello", "world" }, model = "text-embedding-3-small" })
      assert.equal("base64", srv:last().body_json.encoding_format)
      local floats = assert(client:embeddings { input = { "hello", "world" }, model = "text-embedding-3-small",
                                                encoding_format = "float" })
      assert.equal("float", srv:last().body_json.encoding_format)
      assert.equal(#floats.data[1].embedding, #res.data[1].embedding)
      local unpack_f = string.unpack   -- (5.3+: check exactness to float32)
      for i, x in ipairs(floats.data[2].embedding) do
        local want = unpack_f and unpack_f("<f", string.pack("<f", x)) or x
        if unpack_f then assert.equal(want, res.data[2].embedding[i])
        else assert.is_true(math.abs(want - res.data[2].embedding[i]) < 1e-6) end
      end
      local raw = assert(client:embeddings { input = "hi", encoding_format = "base64" })
      assert.is_string(raw.data[1].embedding)   -- the caller chose base64: theirs
    end)

    it("embeddings_async", function ()
      local f = client:embeddings_async { input = "hello", model = "text-embedding-3-small" }
      local res = assert(f:wait())
      assert.is_table(res.data[1].embedding)
      assert.is_number(res.data[1].embedding[1])
    end)
  end)

  describe("misuse raises at the caller's line", function ()
    local raises = require("misuse").raises
    it("each API", function ()
      raises("bad argument #1 to 'images_generate' %(params.prompt: string expected, got nil%)", function ()
        client:images_generate {}
      end)
      raises("bad argument #1 to 'speech' %(params.to: a path or a function expected, got number%)", function ()
        client:speech { input = "x", to = 5 }
      end)
      raises("bad argument #1 to 'speech' %(params%.to: contains a NUL byte%)$", function ()
        client:speech { input = "x", to = "out\0.wav" }
      end)
      raises("bad argument #1 to 'files_content' %(params%.to: contains a NUL byte%)$", function ()
        client:files_content("file-1", { to = "out\0.jsonl" })
      end)
      raises("bad argument #1 to 'transcribe' %(params.file.filename: ", function ()
        client:transcribe { file = { data = "x" } }
      end)
      raises("bad argument #1 to 'files_content_async' %(a file id", function ()
        client:files_content_async(nil)
      end)
      raises("bad argument #1 to 'files_upload' %(params.purpose: string expected", function ()
        client:files_upload { file = "x" }
      end)
      -- (the core finds the file missing: named as the caller wrote it, not as the form's part)
      raises("bad argument #1 to 'images_edit' %(params%.image: .*/missing%.png: No such file", function ()
        client:images_edit { image = dir .. "/missing.png", prompt = "x" }
      end)
      write_all(dir .. "/here.png", "x")
      raises("bad argument #1 to 'images_edit' %(params%.image%[2%]: .*/gone%.png: No such file", function ()
        client:images_edit { image = { dir .. "/here.png", dir .. "/gone.png" }, prompt = "x" }
      end)
      raises("bad argument #1 to 'images_edit' %(params%.mask[%.a-z]*: .*/gone%.png: No such file", function ()
        client:images_edit { image = dir .. "/here.png", mask = { path = dir .. "/gone.png" }, prompt = "x" }
      end)
      raises("bad argument #1 to 'files_upload' %(params.file.filename: a string expected, got number%)", function ()
        client:files_upload { file = { path = dir .. "/here.png", filename = 5 }, purpose = "batch" }
      end)
      raises("bad argument #1 to 'transcribe' %(params.file.type: contains a NUL byte%)", function ()
        client:transcribe { file = { data = "x", filename = "a.wav", type = "audio/\0wav" } }
      end)
      -- a NUL (or a newline) in a field's name: escaped as util.path writes a
      -- name (%q, one line), never raw in the message (was "params.a<NUL>b: ...")
      for _, p in ipairs {
        { file = { data = "x", filename = "a.wav" }, ["lang\0uage"] = "en" },
        { file = { data = "x", filename = "a.wav" }, extra_body = { ["x\0y"] = "1" } },
        { file = { data = "x", filename = "a.wav" }, ["tags\0"] = { "a" } },
        { file = { data = "x", filename = "a.wav" }, ["meta\nFAKE LINE"] = { k = {} } },
      } do
        local ok, e = pcall(client.transcribe, client, p)
        assert.is_false(ok)
        e = tostring(e)
        assert.is_nil(e:find("[%z\n]"), e)
        assert.matches("%(params[%.%a_]*%[\"[%a]+\\", e)
      end
    end)
  end)
end)

describe("aigc.vec and aigc.media (C helpers)", function ()
  it("cosine and top-k", function ()
    assert.near(1, aigc.vec.cosine({ 1, 2, 3 }, { 2, 4, 6 }), 1e-6)
    assert.near(0, aigc.vec.cosine({ 1, 0 }, { 0, 1 }), 1e-6)
    assert.equal(0, aigc.vec.cosine({ 0, 0 }, { 1, 1 }))
    local index = aigc.vec.index()
    assert.equal(1, index:add { 1, 0, 0 })
    index:add { 0, 1, 0 }
    index:add { 0.9, 0.1, 0 }
    index:add { -1, 0, 0 }
    assert.equal(4, index:len())
    local best, scores = index:topk({ 1, 0.05, 0 }, 2)
    assert.same({ 1, 3 }, best)
    assert.is_true(scores[1] >= scores[2])
    local all = index:topk({ 1, 0, 0 }, 10)
    assert.same({ 1, 3, 2, 4 }, all)
    assert.has_error(function () index:add { 1, 2 } end)
    assert.has_error(function () index:topk({ 1, "x", 3 }, 1) end)
  end)

  it("base64 and float32", function ()
    assert.equal("hello", aigc.media.b64decode("aGVsbG8="))
    assert.equal("hello", aigc.media.b64decode("aGVs\nbG8"))
    assert.equal("\255\254", aigc.media.b64decode("//4="))
    assert.equal("\255\254", aigc.media.b64decode("__4"))
    local none, why = aigc.media.b64decode("aGV*bG8=")
    assert.is_nil(none)
    assert.equal("not base64: byte value 42 at byte 4", why)   -- ("*", counted from 1)
    assert.is_nil((aigc.media.b64decode("a")))
    assert.is_nil((aigc.media.b64decode("aG=x")))
    assert.same({ 1, 2, -0.5 }, aigc.media.f32("AACAPwAAAEAAAAC/", "base64"))
    assert.same({ 1 }, aigc.media.f32("\0\0\128\63"))
    assert.is_nil((aigc.media.f32("abc")))
  end)
end)
