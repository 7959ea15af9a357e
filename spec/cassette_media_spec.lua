-- Cassettes and replies that are bytes, not text: audio recorded through
-- the proxy (the bundled server is plain http) replays byte for byte, and
-- the cassette still opens.

local aigc = require "aigc"
local devserver = require "devserver"
local cli = require "cli"

describe("a cassette recorded through the proxy with binary replies", function ()
  local srv, dir
  setup(function () srv = devserver.start { pause_ms = 0 } end)
  teardown(function () srv:stop() end)
  before_each(function () dir = cli.home(); srv:reset() end)
  after_each(function () cli.rmdir(dir) end)

  it("opens and replays speech audio byte for byte, and the text calls around it", function ()
    local tape = dir .. "/audio.jsonl"
    local rec = aigc.client { base_url = srv.base_url, model = "aigc-dev", cassette = { path = tape } }
    local before = assert(rec:chat "Echo: before the audio")
    local audio = assert(rec:speech { input = "Hello there, recorded" })
    local after = assert(rec:chat "Echo: after the audio")
    rec:close()
    assert.is_truthy(audio.body:find("[\128-\255]"))   -- (bytes no JSON string may hold as they are)
    local rep = aigc.client { base_url = "http://127.0.0.1:9/v1", model = "aigc-dev", cassette = { path = tape } }
    local b = assert(rep:chat "Echo: before the audio")
    local replayed = assert(rep:speech { input = "Hello there, recorded" })
    local a = assert(rep:chat "Echo: after the audio")
    rep:close()
    assert.equal(before.text, b.text)
    assert.equal(#audio.body, #replayed.body)
    assert.is_true(audio.body == replayed.body)
    assert.equal(after.text, a.text)
  end)

  it("records an image stream (a long line of base64 per event) and replays its events", function ()
    local tape = dir .. "/image.jsonl"
    local function run (c)
      local events = 0
      local res = assert(c:images_generate { prompt = "a red square", timeout = 30,
                                             stream = function () events = events + 1 end })
      return events, res.data[1].bytes
    end
    local rec = aigc.client { base_url = srv.base_url, model = "aigc-dev", cassette = { path = tape } }
    local live_events, live_image = run(rec)
    rec:close()
    assert.is_true(live_events > 0)
    assert.is_true(#live_image > 10000, #live_image)
    local rep = aigc.client { base_url = "http://127.0.0.1:9/v1", model = "aigc-dev", cassette = { path = tape } }
    local events, image = run(rep)
    rep:close()
    assert.equal(live_events, events)
    assert.is_true(live_image == image)
  end)
end)

describe("a cassette recorded in the client (proxy = false, as for https)", function ()
  local srv, dir
  setup(function () srv = devserver.start { pause_ms = 0 } end)
  teardown(function () srv:stop() end)
  before_each(function () dir = cli.home(); srv:reset() end)
  after_each(function () cli.rmdir(dir) end)

  local function record_then_replay (tape, run)
    local rec = aigc.client { base_url = srv.base_url, model = "aigc-dev", cassette = { path = tape, proxy = false } }
    local live = run(rec)
    rec:close()
    local rep = aigc.client { base_url = "http://127.0.0.1:9/v1", model = "aigc-dev", cassette = { path = tape } }
    local ok, again = pcall(run, rep)
    rep:close()
    assert(ok, again)
    return live, again
  end

  it("replays a JSON transcript's text (the reply's own field, not the core's)", function ()
    local live, again = record_then_replay(dir .. "/transcript.jsonl", function (c)
      return assert(c:transcribe { file = { data = "RIFF audio", filename = "a.wav" } }).text
    end)
    assert.matches("a.wav", live)
    assert.equal(live, again)
  end)

  it("replays speech audio (in memory and written to a file) and a transcript as text, byte for byte", function ()
    local live, again = record_then_replay(dir .. "/bytes.jsonl", function (c)
      local out = { audio = assert(c:speech { input = "Hello there" }).body }
      assert(c:speech { input = "Into a file", to = dir .. "/speech.mp3" })
      local f = assert(io.open(dir .. "/speech.mp3", "rb"))
      out.file = f:read("*a")
      f:close()
      os.remove(dir .. "/speech.mp3")
      local file = { data = "RIFF audio", filename = "a.wav" }
      out.srt = assert(c:transcribe { file = file, response_format = "srt" }).text
      return out
    end)
    assert.is_truthy(live.audio:find("[\128-\255]"))
    assert.is_true(#live.file > 0)
    assert.matches("%-%->", live.srt)
    for _, k in ipairs { "audio", "file", "srt" } do
      assert.equal(#live[k], #again[k])
      assert.is_true(live[k] == again[k], k)
    end
  end)
end)
