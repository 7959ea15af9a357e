-- luacheck: std +busted
-- needs: Lua 5.4 (PNG/WAV decoded with string.unpack and bitwise operators: 5.3+)
-- (the bundled server it tests is a Lua 5.4 program whatever Lua runs the specs)
-- The devserver's media endpoints (issue 15): multipart/form-data, images
-- (generations, edits, variations; real PNGs, b64_json or URLs it serves,
-- partial-image streams), speech (wav / pcm tones, silent mp3, chunked or
-- SSE), transcriptions and translations (the text the test chose, in every
-- format, streamed), moderations, files, and base64 embeddings. Raw sockets;
-- the PNG and WAV bytes are checked by this file's own decoder (CRC-32,
-- stored deflate, Adler-32) and, when installed, by ImageMagick's `identify`
-- and sox's `soxi`.

local cjson = require "cjson"
local devserver = require "devserver"
local raw = require "rawhttp"
local proc = require "procutil"

local null = cjson.null

-- Independent checks ---------------------------------------------------------

local function crc32 (s) -- bitwise, unlike the server's table-driven one
  local crc = 0xFFFFFFFF
  for i = 1, #s do
    crc = crc ~ s:byte(i)
    for _ = 1, 8 do crc = (crc >> 1) ~ (0xEDB88320 & -(crc & 1)) end
  end
  return crc ~ 0xFFFFFFFF
end

local function adler32 (s)
  local a, b = 1, 0
  for i = 1, #s do a = (a + s:byte(i)) % 65521; b = (b + a) % 65521 end
  return (b << 16) | a
end

-- Decode a PNG: {width, height, bit_depth, color_type, raw = inflated data}; raises on any defect.
local function decode_png (bytes)
  assert(bytes:sub(1, 8) == "\137PNG\r\n\26\n", "PNG signature")
  local pos, png, idat = 9, {}, {}
  while pos <= #bytes do
    local len, ctype = string.unpack(">I4c4", bytes, pos)
    local data = bytes:sub(pos + 8, pos + 7 + len)
    assert(string.unpack(">I4", bytes, pos + 8 + len) == crc32(ctype .. data), "CRC of " .. ctype)
    if ctype == "IHDR" then png.width, png.height, png.bit_depth, png.color_type = string.unpack(">I4I4BB", data)
    elseif ctype == "IDAT" then idat[#idat + 1] = data end
    pos = pos + 12 + len
    if ctype == "IEND" then break end
  end
  local z = table.concat(idat)
  assert(z:byte(1) & 15 == 8 and ((z:byte(1) << 8) | z:byte(2)) % 31 == 0, "zlib header")
  local out, p = {}, 3
  while true do -- stored blocks only (what the devserver writes)
    local hdr = z:byte(p)
    assert(hdr & 6 == 0, "a stored block")
    local len, nlen = string.unpack("<I2I2", z, p + 1)
    assert(len == nlen ~ 0xFFFF, "LEN/NLEN")
    out[#out + 1] = z:sub(p + 5, p + 4 + len)
    p = p + 5 + len
    if hdr & 1 == 1 then break end
  end
  png.raw = table.concat(out)
  assert(string.unpack(">I4", z, p) == adler32(png.raw), "Adler-32")
  local row = (png.width * png.bit_depth + 7) // 8 + 1
  assert(#png.raw == png.height * row, "image data size")
  return png
end

local function have (tool) return proc.sh("command -v " .. tool) end

local function identify (bytes)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb")); f:write(bytes); f:close()
  local ok, out = proc.sh("identify -format '%w %h %m' " .. path)
  os.remove(path)
  assert(ok, out)
  return out
end

-- A WAV's format and samples (RIFF chunks walked here).
local function decode_wav (bytes)
  assert(bytes:sub(1, 4) == "RIFF" and bytes:sub(9, 12) == "WAVE")
  assert(string.unpack("<I4", bytes, 5) == #bytes - 8, "RIFF size")
  local pos, w = 13, { chunks = {} }
  while pos < #bytes do
    local id, size = string.unpack("<c4I4", bytes, pos)
    w.chunks[#w.chunks + 1] = id
    local data = bytes:sub(pos + 8, pos + 7 + size)
    if id == "fmt " then
      w.format, w.channels, w.rate, w.byte_rate, w.align, w.bits = string.unpack("<I2I2I4I4I2I2", data)
    elseif id == "data" then w.data = data
    elseif id == "LIST" then w.list = data end
    pos = pos + 8 + size + size % 2
  end
  return w
end

-- ---------------------------------------------------------------------------

describe("devserver media endpoints", function ()
  local srv
  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)
  before_each(function () srv:reset() end)

  local function post (path, body, headers) return raw.call(srv.port, "POST", path, body, headers) end
  local function get (path) return raw.call(srv.port, "GET", path) end

  local function form (path, fields, headers)
    local body, ctype = raw.multipart(fields)
    headers = headers or {}
    headers["Content-Type"] = ctype
    return raw.call(srv.port, "POST", path, body, headers)
  end

  local function b64decode (s)
    local map = {}
    local A = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    for i = 1, 64 do map[A:byte(i)] = i - 1 end
    local out = {}
    s = s:gsub("=", "")
    for i = 1, #s, 4 do
      local a, b, c, d = s:byte(i, i + 3)
      local n = (map[a] << 18) | (map[b] << 12) | ((c and map[c] or 0) << 6) | (d and map[d] or 0)
      out[#out + 1] = string.char(n >> 16, (n >> 8) & 255, n & 255):sub(1, d and 3 or c and 2 or 1)
    end
    return table.concat(out)
  end

  describe("multipart/form-data", function ()
    it("records parts (names, filenames, content types, sizes, CRC-32) and refuses malformed bodies", function ()
      local res = form("/v1/files", { { name = "purpose", value = "batch" },
        { name = "file", filename = "in.jsonl", content_type = "application/jsonl", value = '{"a":1}\n' } })
      assert.equal(200, res.status, res.body)
      local last = srv:last()
      assert.equal(null, last.body)
      assert.is_true(last.body_bytes > 100)
      assert.same({ name = "purpose", filename = null, content_type = null, size = 5, crc32 = crc32("batch"),
                    value = "batch" }, last.parts[1])
      assert.same({ name = "file", filename = "in.jsonl", content_type = "application/jsonl", size = 8,
                    crc32 = crc32('{"a":1}\n') }, last.parts[2])
      local cases = {
        { "multipart/form-data", "--x\r\n\r\n" },                                        -- no boundary
        { "multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1" },
        { "multipart/form-data; boundary=x", "--x\r\nX: y\r\n\r\n1\r\n--x--\r\n" },       -- no disposition
        { "multipart/form-data; boundary=x", "garbage" },
        { "application/json", '{"purpose":"batch"}' },
      }
      for i, c in ipairs(cases) do
        local r = post("/v1/files", c[2], { ["Content-Type"] = c[1] })
        assert.equal(400, r.status, i)
        assert.equal("invalid_multipart", r.json.error.code, i)
      end
      local quoted = post("/v1/files", '--a b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        .. '--a b\r\nContent-Disposition: form-data; name="file"; filename="q.txt"\r\n\r\nx\r\n--a b--\r\n',
        { ["Content-Type"] = 'multipart/form-data; boundary="a b"' })
      assert.equal(200, quoted.status, quoted.body)
      assert.equal("q.txt", quoted.json.filename)
      -- (a part's header with 1 MB of spaces inside its value: "(.-)%s*$" tried the
      -- rest of the run at each space, hours; rawhttp's 30 s timeout is the hang bound)
      local spaces = string.rep(" ", 1000000)
      local padded = post("/v1/files", '--x\r\nContent-Disposition: form-data; name="purpose"\r\nX-Pad: a' .. spaces
        .. 'b ' .. spaces .. '\r\n\r\nbatch\r\n--x\r\nContent-Disposition: form-data; name="file"; '
        .. 'filename="p.txt"\r\n\r\nx\r\n--x--\r\n', { ["Content-Type"] = "multipart/form-data; boundary=x" })
      assert.equal(200, padded.status, padded.body)
      assert.equal("p.txt", padded.json.filename)
    end)
  end)

  describe("images", function ()
    it("generates real PNGs of the requested size, n of them, as b64_json", function ()
      local res = post("/v1/images/generations", { prompt = "a robot painting", size = "256x128", n = 2,
                                                   response_format = "b64_json" })
      assert.equal(200, res.status, res.body)
      assert.equal(2, #res.json.data)
      local a, b = b64decode(res.json.data[1].b64_json), b64decode(res.json.data[2].b64_json)
      local png = decode_png(a)
      assert.same({ 256, 128, 2, 3 }, { png.width, png.height, png.bit_depth, png.color_type })
      assert.not_equal(a, b)
      local again = post("/v1/images/generations", { prompt = "a robot painting", size = "256x128", n = 2,
                                                     response_format = "b64_json" })
      assert.equal(res.json.data[1].b64_json, again.json.data[1].b64_json) -- deterministic
      if have("identify") then assert.equal("256 128 PNG", identify(a)) end
      assert.is_number(res.json.created)
      local gpt = post("/v1/images/generations", { model = "gpt-image-1", prompt = "a cat", size = "1024x1536" }).json
      assert.is_string(gpt.data[1].b64_json)
      assert.equal("1024x1536", gpt.size)
      assert.equal("png", gpt.output_format)
      assert.equal(3, gpt.usage.input_tokens_details.text_tokens + 1)
      local d3 = post("/v1/images/generations", { model = "dall-e-3", prompt = "a cat", size = "64x64",
                                                  response_format = "b64_json" }).json
      assert.equal("A picture of a cat", d3.data[1].revised_prompt)
    end)

    it("serves url results itself", function ()
      local res = post("/v1/images/generations", { prompt = "a lighthouse", size = "64x32" })
      local url = res.json.data[1].url
      assert.matches("^http://127%.0%.0%.1:%d+/_aigc/files/img_%x+%.png$", url)
      local file = get(url:match("^http://[^/]+(/.*)$"))
      assert.equal(200, file.status)
      assert.equal("image/png", file.headers["content-type"])
      local png = decode_png(file.body)
      assert.same({ 64, 32 }, { png.width, png.height })
      assert.equal(404, get("/_aigc/files/img_nope.png").status)
      assert.equal("/v1/images/generations", srv:last().path) -- the download is not recorded
    end)

    it("streams partial images, then the completed image", function ()
      local s = raw.stream(srv.port, "/v1/images/generations", { model = "gpt-image-1", prompt = "a tree",
        size = "1024x1024", partial_images = 2, quality = "low", background = "transparent" })
      assert.equal(200, s.status)
      assert.same({ "image_generation.partial_image", "image_generation.partial_image",
                    "image_generation.completed" }, { s.events[1].event, s.events[2].event, s.events[3].event })
      assert.equal(3, #s.chunks)
      assert.equal(0, s.chunks[1].partial_image_index)
      assert.equal(1, s.chunks[2].partial_image_index)
      for _, c in ipairs(s.chunks) do
        assert.equal(1024, decode_png(b64decode(c.b64_json)).width)
        assert.equal("1024x1024", c.size)
        assert.equal("low", c.quality)
        assert.equal("transparent", c.background)
      end
      assert.not_equal(s.chunks[1].b64_json, s.chunks[3].b64_json)
      assert.is_number(s.chunks[3].usage.total_tokens)
      assert.is_nil(s.body:find("[DONE]", 1, true))
    end)

    it("edits an uploaded image (with a mask of the same size) and makes variations", function ()
      local img = b64decode(post("/v1/images/generations", { prompt = "base", size = "128x64",
                                                             response_format = "b64_json" }).json.data[1].b64_json)
      local mask = b64decode(post("/v1/images/generations", { prompt = "mask", size = "128x64",
                                                              response_format = "b64_json" }).json.data[1].b64_json)
      local res = form("/v1/images/edits", { { name = "prompt", value = "add a hat" },
        { name = "image", filename = "in.png", content_type = "image/png", value = img },
        { name = "mask", filename = "mask.png", content_type = "image/png", value = mask },
        { name = "response_format", value = "b64_json" } })
      assert.equal(200, res.status, res.body)
      local out = decode_png(b64decode(res.json.data[1].b64_json))
      assert.same({ 128, 64 }, { out.width, out.height }) -- the input's size by default
      local parts = srv:last().parts
      assert.same({ "prompt", "image", "mask", "response_format" },
        { parts[1].name, parts[2].name, parts[3].name, parts[4].name })
      assert.equal(#img, parts[2].size)
      local small = b64decode(post("/v1/images/generations", { prompt = "m", size = "16x16",
                                                               response_format = "b64_json" }).json.data[1].b64_json)
      local bad = form("/v1/images/edits", { { name = "prompt", value = "x" },
        { name = "image", filename = "in.png", value = img }, { name = "mask", filename = "m.png", value = small } })
      assert.equal(400, bad.status)
      assert.equal("mask", bad.json.error.param)
      assert.equal(400, form("/v1/images/edits", { { name = "prompt", value = "x" } }).status)
      assert.equal(400, form("/v1/images/edits", { { name = "prompt", value = "x" },
        { name = "image", filename = "a.txt", value = "not an image" } }).status)
      local multi = form("/v1/images/edits", { { name = "prompt", value = "x" }, { name = "size", value = "32x32" },
        { name = "image[]", filename = "a.png", value = img }, { name = "image[]", filename = "b.png", value = mask },
        { name = "response_format", value = "b64_json" }, { name = "n", value = "3" } })
      assert.equal(3, #multi.json.data)
      assert.equal(32, decode_png(b64decode(multi.json.data[3].b64_json)).width)
      local v = form("/v1/images/variations", { { name = "image", filename = "in.png", value = img },
        { name = "size", value = "256x256" }, { name = "response_format", value = "b64_json" } })
      assert.equal(200, v.status, v.body)
      assert.equal(256, decode_png(b64decode(v.json.data[1].b64_json)).height)
    end)

    it("validates like OpenAI", function ()
      assert.equal("prompt", post("/v1/images/generations", { size = "64x64" }).json.error.param)
      assert.equal("size", post("/v1/images/generations", { prompt = "x", size = "huge" }).json.error.param)
      assert.equal("n", post("/v1/images/generations", { prompt = "x", n = 11 }).json.error.param)
      local jpeg = post("/v1/images/generations", { prompt = "x", output_format = "jpeg" })
      assert.equal(400, jpeg.status)
      assert.matches("PNG only", jpeg.json.error.message)
      assert.equal(503, post("/v1/images/generations", { prompt = "x" }, { ["x-aigc-fault"] = "status=503" }).status)
    end)
  end)

  describe("speech", function ()
    it("speaks a WAV tone whose length follows the text, with the text inside", function ()
      local text = "Hello there, traveller."
      local res = post("/v1/audio/speech", { model = "tts-1", input = text, voice = "alloy", response_format = "wav" })
      assert.equal(200, res.status)
      assert.equal("audio/wav", res.headers["content-type"])
      assert.equal("chunked", res.headers["transfer-encoding"])
      local w = decode_wav(res.body)
      assert.same({ 1, 1, 24000, 16 }, { w.format, w.channels, w.rate, w.bits })
      assert.same({ "fmt ", "LIST", "data" }, w.chunks)
      assert.equal(#text * 1200 * 2, #w.data) -- 50 ms (1200 samples) per character
      assert.matches("AIGC%-TEXT:Hello there, traveller%.", w.list)
      local nonzero = 0
      for i = 1, 4800, 2 do if string.unpack("<i2", w.data, i) ~= 0 then nonzero = nonzero + 1 end end
      assert.is_true(nonzero > 2000) -- a tone, not silence
      local fast = decode_wav(post("/v1/audio/speech", { input = text, voice = "alloy", response_format = "wav",
                                                         speed = 2 }).body)
      assert.equal(#w.data // 2, #fast.data)
      if have("soxi") then
        local path = os.tmpname() .. ".wav"
        local f = assert(io.open(path, "wb")); f:write(res.body); f:close()
        local ok, out = proc.sh("soxi -D " .. path)
        os.remove(path)
        assert.is_true(ok, out)
        assert.equal(1.15, tonumber(out))
      end
    end)

    it("sends pcm raw, mp3 as silent frames, refuses the formats it cannot encode", function ()
      local pcm = post("/v1/audio/speech", { input = "Hi there", voice = "nova", response_format = "pcm" })
      assert.equal("audio/pcm", pcm.headers["content-type"])
      assert.equal(8 * 1200 * 2, #pcm.body)
      local mp3 = post("/v1/audio/speech", { input = "Hi there", voice = "nova" }) -- mp3 by default
      assert.equal("audio/mpeg", mp3.headers["content-type"])
      assert.equal("\255\243\68\192", mp3.body:sub(1, 4))
      assert.equal(0, #mp3.body % 96)
      assert.equal(math.ceil(0.4 * 24000 / 576), #mp3.body // 96)
      for _, fmt in ipairs { "opus", "aac", "flac" } do
        local r = post("/v1/audio/speech", { input = "Hi", voice = "nova", response_format = fmt })
        assert.equal(400, r.status)
        assert.equal("unsupported_value", r.json.error.code)
      end
      assert.equal("voice", post("/v1/audio/speech", { input = "Hi" }).json.error.param)
      assert.equal("voice", post("/v1/audio/speech", { input = "Hi", voice = "nobody" }).json.error.param)
      assert.equal(200, post("/v1/audio/speech", { input = "Hi", voice = { id = "voice_123" } }).status)
    end)

    it("streams audio in 100 ms chunks with pauses, or as speech.audio events", function ()
      local text = "one two three four five six"
      local res = post("/v1/audio/speech", { input = text, voice = "echo", response_format = "pcm" },
        { ["x-aigc-fault"] = "pause=20" })
      assert.equal(math.ceil(#text * 0.05 * 10), res.chunks)
      assert.is_true(res.elapsed >= 0.02 * (res.chunks - 1) * 0.9)
      local s = raw.stream(srv.port, "/v1/audio/speech", { input = text, voice = "echo", response_format = "pcm",
                                                           stream_format = "sse" })
      local audio = {}
      for i = 1, #s.chunks - 1 do
        assert.equal("speech.audio.delta", s.chunks[i].type)
        audio[#audio + 1] = b64decode(s.chunks[i].audio)
      end
      assert.equal(res.body, table.concat(audio))
      local done = s.chunks[#s.chunks]
      assert.equal("speech.audio.done", done.type)
      assert.equal(done.usage.input_tokens + done.usage.output_tokens, done.usage.total_tokens)
    end)
  end)

  describe("transcriptions and translations", function ()
    local function transcribe (fields, path)
      return form(path or "/v1/audio/transcriptions", fields)
    end

    it("gives back the text a test chose: in the file after AIGC-TEXT:, else the prompt", function ()
      local wav = post("/v1/audio/speech", { input = "Where is my order A-1042?", voice = "alloy",
                                             response_format = "wav" }).body
      local r = transcribe { { name = "file", filename = "note.wav", content_type = "audio/wav", value = wav },
                             { name = "model", value = "whisper-1" } }
      assert.equal(200, r.status, r.body)
      assert.equal("Where is my order A-1042?", r.json.text)
      assert.same({ type = "duration", seconds = 2 }, r.json.usage)
      local p = transcribe { { name = "file", filename = "a.mp3", value = "\255\243\68\192" },
                             { name = "model", value = "gpt-4o-transcribe" }, { name = "prompt", value = "Chosen." } }
      assert.equal("Chosen.", p.json.text)
      assert.equal("tokens", p.json.usage.type)
      local d = transcribe { { name = "file", filename = "x.ogg", value = "OggS1234" },
                             { name = "model", value = "m" } }
      assert.equal("Audio file x.ogg, 8 bytes.", d.json.text)
      local bad = transcribe { { name = "file", filename = "x.txt", value = "hi" }, { name = "model", value = "m" } }
      assert.equal(400, bad.status)
      assert.matches("Invalid file format", bad.json.error.message)
      assert.equal("file", transcribe({ { name = "model", value = "m" } }).json.error.param)
    end)

    it("answers in text, srt, vtt and verbose_json (segments, words)", function ()
      local file = { name = "file", filename = "a.wav", value = "AIGC-TEXT:Hello there. How are you today?" }
      local function as (fmt, extra)
        local fields = { file, { name = "model", value = "whisper-1" }, { name = "response_format", value = fmt } }
        for _, e in ipairs(extra or {}) do fields[#fields + 1] = e end
        return transcribe(fields)
      end
      local t = as "text"
      assert.equal("Hello there. How are you today?\n", t.body)
      assert.matches("^text/plain", t.headers["content-type"])
      assert.equal("1\n00:00:00,000 --> 00:00:00,800\nHello there.\n\n2\n00:00:00,800 --> 00:00:02,400\n"
        .. "How are you today?\n", as("srt").body)
      assert.equal("WEBVTT\n\n00:00:00.000 --> 00:00:00.800\nHello there.\n\n00:00:00.800 --> 00:00:02.400\n"
        .. "How are you today?\n", as("vtt").body)
      local v = as("verbose_json", { { name = "timestamp_granularities[]", value = "word" },
                                     { name = "timestamp_granularities[]", value = "segment" } }).json
      assert.equal("transcribe", v.task)
      assert.equal("english", v.language)
      assert.equal(2.4, v.duration)
      assert.equal(2, #v.segments)
      assert.equal(" How are you today?", v.segments[2].text)
      assert.equal(0.8, v.segments[2].start)
      assert.equal(6, #v.words)
      assert.same({ word = "today", start = 2.0, ["end"] = 2.4 }, v.words[6])
      local tr = transcribe({ file, { name = "model", value = "whisper-1" },
                              { name = "response_format", value = "verbose_json" } }, "/v1/audio/translations").json
      assert.equal("translate", tr.task)
      assert.equal("Hello there. How are you today?", tr.text)
      assert.equal(400, as("mp4").status)
      -- (a text ending in 300 kB without a stop, a word with 200 kB of marks inside: the
      -- sentence and word patterns read them again from each byte, minutes; rawhttp's
      -- 30 s timeout is the hang bound)
      local long, marks = string.rep("a", 300000), string.rep("!", 200000)
      file.value = "AIGC-TEXT:Hello there. " .. long .. " x" .. marks .. "y"
      v = as("verbose_json", { { name = "timestamp_granularities[]", value = "word" },
                               { name = "timestamp_granularities[]", value = "segment" } }).json
      assert.equal(1, #v.segments)
      assert.equal(" Hello there. " .. long .. " x" .. marks .. "y", v.segments[1].text)
      assert.equal(4, #v.words)
      assert.equal("x" .. marks .. "y", v.words[4].word)
    end)

    it("streams transcript.text.delta events, then transcript.text.done", function ()
      local body, ctype = raw.multipart { { name = "file", filename = "a.wav", value = "AIGC-TEXT:one two three" },
        { name = "model", value = "gpt-4o-mini-transcribe" }, { name = "stream", value = "true" },
        { name = "include[]", value = "logprobs" } }
      local res = raw.call(srv.port, "POST", "/v1/audio/transcriptions", body, { ["Content-Type"] = ctype })
      local events = raw.sse_events(res.body)
      assert.equal(4, #events)
      local deltas = {}
      for i = 1, 3 do
        local e = cjson.decode(events[i].data)
        assert.equal("transcript.text.delta", e.type)
        deltas[i] = e.delta
        assert.equal(e.delta, e.logprobs[1].token)
      end
      assert.equal("one two three", table.concat(deltas))
      local done = cjson.decode(events[4].data)
      assert.equal("transcript.text.done", done.type)
      assert.equal("one two three", done.text)
      assert.equal("tokens", done.usage.type)
      assert.is_true(srv:last().stream)
    end)
  end)

  describe("moderations", function ()
    it("flags categories by keywords with deterministic scores, for text and images", function ()
      local r = post("/v1/moderations", { input = { "I will kill you, idiot", "What a nice day" } }).json
      assert.matches("^modr%-", r.id)
      assert.equal("omni-moderation-latest", r.model)
      assert.equal(2, #r.results)
      local a, b = r.results[1], r.results[2]
      assert.is_true(a.flagged)
      assert.is_true(a.categories.violence)
      assert.is_true(a.categories.harassment)
      assert.is_false(a.categories.sexual)
      assert.is_true(a.category_scores.violence >= 0.9)
      assert.is_true(a.category_scores.sexual < 0.01)
      assert.same({ "text" }, a.category_applied_input_types.violence)
      assert.is_false(b.flagged)
      local n = 0
      for _ in pairs(b.categories) do n = n + 1 end
      assert.equal(13, n)
      local again = post("/v1/moderations", { input = { "I will kill you, idiot", "What a nice day" } }).json
      assert.same(r.results, again.results)
      local img = post("/v1/moderations", { model = "omni-moderation-2024-09-26", input = {
        { type = "text", text = "look at this" },
        { type = "image_url", image_url = { url = "https://example.com/gore.png" } } } }).json
      assert.equal("omni-moderation-2024-09-26", img.model)
      assert.equal(1, #img.results)
      assert.is_true(img.results[1].categories["violence/graphic"])
      assert.same({ "text", "image" }, img.results[1].category_applied_input_types.violence)
      assert.same({ "text" }, img.results[1].category_applied_input_types.harassment)
      assert.is_false(post("/v1/moderations", { input = "killer whales are mammals" }).json.results[1].flagged)
      assert.equal(400, post("/v1/moderations", {}).status)
      assert.equal(400, post("/v1/moderations", { input = { 1, 2 } }).status)
    end)
  end)

  describe("files", function ()
    local function upload (name, purpose, data)
      return form("/v1/files", { { name = "purpose", value = purpose },
        { name = "file", filename = name, content_type = "text/plain", value = data } })
    end

    it("uploads, lists with pagination, retrieves, downloads and deletes", function ()
      local ids = {}
      for i = 1, 5 do
        local r = upload("f" .. i .. ".txt", i % 2 == 0 and "user_data" or "batch", "content " .. i)
        assert.equal(200, r.status, r.body)
        assert.same({ id = r.json.id, object = "file", bytes = 9, created_at = r.json.created_at,
                      filename = "f" .. i .. ".txt", purpose = r.json.purpose, status = "processed" }, r.json)
        ids[i] = r.json.id
      end
      local all = get("/v1/files").json
      assert.equal("list", all.object)
      assert.equal(ids[5], all.data[1].id) -- newest first
      assert.equal(5, #all.data)
      local page = get("/v1/files?order=asc&limit=2").json
      assert.same({ ids[1], ids[2] }, { page.data[1].id, page.data[2].id })
      assert.is_true(page.has_more)
      local rest = get("/v1/files?order=asc&limit=10&after=" .. page.last_id).json
      assert.equal(3, #rest.data)
      assert.is_false(rest.has_more)
      assert.equal(2, #get("/v1/files?purpose=user_data").json.data)
      assert.equal("f3.txt", get("/v1/files/" .. ids[3]).json.filename)
      local content = get("/v1/files/" .. ids[3] .. "/content")
      assert.equal("content 3", content.body)
      assert.equal("text/plain", content.headers["content-type"])
      local del = raw.call(srv.port, "DELETE", "/v1/files/" .. ids[3])
      assert.same({ id = ids[3], object = "file", deleted = true }, del.json)
      assert.equal(404, get("/v1/files/" .. ids[3]).status)
      assert.equal(404, get("/v1/files/" .. ids[3] .. "/content").status)
      assert.equal(4, #get("/v1/files").json.data)
      assert.equal("purpose", upload("x", "nonsense", "x").json.error.param)
      assert.equal("file", form("/v1/files", { { name = "purpose", value = "batch" } }).json.error.param)
      srv:reset()
      assert.equal(0, #get("/v1/files").json.data)
    end)
  end)

  it("embeddings: base64 is the little-endian float32 of the float list", function ()
    local f = post("/v1/embeddings", { input = "hello", dimensions = 8 }).json.data[1].embedding
    local b = post("/v1/embeddings", { input = "hello", dimensions = 8, encoding_format = "base64" })
      .json.data[1].embedding
    local bytes = b64decode(b)
    assert.equal(32, #bytes)
    for i = 1, 8 do
      local v = string.unpack("<f", bytes, (i - 1) * 4 + 1)
      assert.equal(string.unpack("<f", string.pack("<f", f[i])), v) -- the decimal reads back as that float32
      assert.is_true(math.abs(f[i] - v) < 1e-8)
    end
  end)
end)
