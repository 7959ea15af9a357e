-- Voice for chatbots and NPCs, probed over real HTTP on loopback: speech,
-- transcription and the bundled server's answers where they must match the
-- API's (limits counted as the API counts them, models that ignore
-- `stream`), and sentence streaming's edge cases.
local devserver = require "devserver"

local SECRET = "sk-test-SECRET-voice-31"

-- A WAV-looking upload whose transcription the bundled server gives back as `text`.
local function voice_note (text)
  return { data = "RIFF\0\0\0\0WAVE" .. "AIGC-TEXT:" .. text, filename = "line.wav" }
end

describe("voice probe", function ()
  local srv, client

  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { api_key = SECRET, model = "aigc-dev" },
                    nil, { api_key = SECRET })

  describe("speech (bundled server)", function ()
    it("the 4096 limit of input and instructions counts characters, not bytes (2,000 Chinese ones are allowed)", function ()
      local zh = string.rep("\228\189\160", 2000)   -- 2,000 x U+4F60: 6,000 bytes of UTF-8
      local res, err = client:speech { input = zh, model = "gpt-4o-mini-tts", response_format = "pcm",
                                       instructions = string.rep("\195\169", 3000) }   -- 3,000 x e-acute
      assert.is_nil(err)
      assert.equal("audio/pcm", res.content_type)
      assert.is_true(#res.body > 0)
      -- one character over: refused, naming the field
      local _, e1 = client:speech { input = string.rep("a", 4097), response_format = "pcm" }
      assert.equal(400, e1 and e1.status)
      assert.equal("input", e1.param)
      assert.equal("string_above_max_length", e1.code)
      local _, e2 = client:speech { input = "Halt.", response_format = "pcm", model = "gpt-4o-mini-tts",
                                    instructions = string.rep("\228\189\160", 4097) }
      assert.equal(400, e2 and e2.status)
      assert.equal("instructions", e2.param)
    end)
  end)

  describe("transcription (bundled server)", function ()
    it("stream asked of whisper-1 (which ignores it): one JSON answer, the function gets its text once", function ()
      local seen = {}
      local res, err = client:transcribe { file = voice_note("Halt! Who goes there?"), model = "whisper-1",
                                           stream = function (ev) seen[#seen + 1] = ev end }
      assert.is_nil(err)
      assert.equal("Halt! Who goes there?", res.text)
      assert.is_nil(res.type)                                   -- not a transcript.text.done event
      assert.same({ { type = "transcript.text.delta", delta = "Halt! Who goes there?" } }, seen)
      -- a model that streams still does
      local n = 0
      local done = assert(client:transcribe { file = voice_note("Halt! Who goes there?"), model = "gpt-4o-transcribe",
                                              stream = function () n = n + 1 end })
      assert.equal("transcript.text.done", done.type)
      assert.is_true(n > 1)
    end)

    it("an upload over the API's 25 MiB is refused with its 413; one just under it is not", function ()
      local limit = 25 * 1024 * 1024
      local pad = string.rep("\0", limit)
      local _, err = client:transcribe { file = { data = pad, filename = "long.wav" }, model = "whisper-1" }
      assert.equal(413, err and err.status)
      assert.matches("Maximum content size limit (26214400) exceeded", err.message, 1, true)
      local small = "RIFF\0\0\0\0WAVE" .. string.rep("\0", limit - 4096)
      local res = assert(client:transcribe { file = { data = small, filename = "long.wav" }, model = "whisper-1" })
      assert.equal("string", type(res.text))
    end)
  end)
end)
