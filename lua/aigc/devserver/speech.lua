--- aigc devserver: POST /v1/audio/speech -- real audio whose length follows
-- the text: `wav` (RIFF, 24 kHz 16-bit mono: a tone per word, silence per
-- space, the input text kept after "AIGC-TEXT:" in a LIST/INFO/ICMT chunk so
-- that a transcription gives it back), `pcm` (the same samples, raw,
-- little-endian), `mp3` (valid MPEG-2 Layer III frames of silence, 24 kHz
-- mono: the devserver has no MP3 encoder, so the tone is only in wav/pcm).
-- `opus`, `aac` and `flac` are refused with a 400 that says so. Sent with
-- chunked transfer in 100 ms pieces (pause=MS or --pause-ms between them),
-- or as SSE (stream_format "sse": speech.audio.delta / speech.audio.done).
-- Part of the devserver package.

local json = require "aigc.devserver.json"
local util = require "aigc.devserver.util"
local errors = require "aigc.devserver.errors"

local format, gsub, rep, sub = string.format, string.gsub, string.rep, string.sub
local spack = string.pack
local concat = table.concat
local O = json.O
local base64, words = util.base64, util.words
local bad_param, isnull = errors.bad_param, errors.isnull

local M = { RATE = 24000, MS_PER_CHAR = 50, MARKER = "AIGC-TEXT:" }

-- Tone frequencies that divide 24000 (a whole number of samples per period).
M.VOICES = { alloy = 400, ash = 480, ballad = 300, coral = 600, echo = 500, fable = 375, onyx = 240, nova = 800,
             sage = 320, shimmer = 750, verse = 200, marin = 250, cedar = 192 }

local period_cache = {}
local function period (freq)
  local p = period_cache[freq]
  if not p then
    local n, out = M.RATE // freq, {}
    for i = 0, n - 1 do out[#out + 1] = spack("<i2", math.floor(8000 * math.sin(2 * math.pi * i / n) + 0.5)) end
    p = concat(out)
    period_cache[freq] = p
  end
  return p
end

--- The samples (16-bit little-endian) of `text`: per character 50 ms / speed,
-- a tone for letters, silence for whitespace.
function M.samples (text, freq, speed)
  local per_char = math.max(1, math.floor(M.RATE * M.MS_PER_CHAR / 1000 / speed))
  local tone, plen = period(freq), M.RATE // freq
  local out = {}
  for run, ws in text:gmatch("(%S*)(%s*)") do
    if #run > 0 then
      local n = #run * per_char
      out[#out + 1] = rep(tone, n // plen) .. sub(tone, 1, (n % plen) * 2)
    end
    if #ws > 0 then out[#out + 1] = rep("\0\0", #ws * per_char) end
  end
  local s = concat(out)
  if #s < M.RATE // 5 * 2 then s = s .. rep("\0\0", M.RATE // 5 - #s // 2) end -- at least 200 ms
  return s
end

--- A WAV file of samples, with `comment` in a LIST/INFO/ICMT chunk.
function M.wav (samples, comment)
  local icmt = comment .. "\0"
  if #icmt % 2 == 1 then icmt = icmt .. "\0" end
  local list = "INFO" .. "ICMT" .. spack("<I4", #icmt) .. icmt
  local fmt = spack("<I2I2I4I4I2I2", 1, 1, M.RATE, M.RATE * 2, 2, 16)
  local body = "WAVE" .. "fmt " .. spack("<I4", #fmt) .. fmt .. "LIST" .. spack("<I4", #list) .. list
    .. "data" .. spack("<I4", #samples) .. samples
  return "RIFF" .. spack("<I4", #body) .. body
end

--- MPEG-2 Layer III, 32 kbit/s, 24 kHz, mono: frames of 96 bytes holding no
-- audio data (silence), 576 samples each, covering `seconds`.
function M.mp3_silence (seconds)
  local frame = "\255\243\68\192" .. rep("\0", 92)
  return rep(frame, math.max(1, math.ceil(seconds * M.RATE / 576)))
end

local function pieces (bytes, size)
  local out = {}
  for i = 1, #bytes, size do out[#out + 1] = sub(bytes, i, i + size - 1) end
  return out
end

local UNSUPPORTED = { opus = true, aac = true, flac = true }
local CTYPES = { wav = "audio/wav", pcm = "audio/pcm", mp3 = "audio/mpeg" }

-- Validate; returns {input, freq, speed, format, sse} or nil and an error response.
local function params (body)
  local input, err = errors.need_string(body, "input")
  if not input then return nil, err end
  -- (the limits are in characters, as the API counts them: 4096 Chinese
  -- characters are 12 KB of UTF-8 and still allowed)
  for _, key in ipairs { "input", "instructions" } do
    local v = body[key]
    if type(v) == "string" and (utf8.len(v) or #v) > 4096 then
      return nil, bad_param(key, format("Invalid '%s': string too long (maximum 4096 characters).", key),
        "string_above_max_length")
    end
  end
  local voice = body.voice
  if type(voice) == "table" and type(voice.id) == "string" then voice = voice.id end
  if isnull(voice) then
    return nil, bad_param("voice", "Missing required parameter: 'voice'.", "missing_required_parameter")
  end
  -- built-in voices have their own pitch; custom voices (voice_...) sound like alloy
  local freq = M.VOICES[voice] or (type(voice) == "string" and voice:match("^voice_") and M.VOICES.alloy)
  if not freq then
    return nil, bad_param("voice", format("Invalid value for 'voice': '%s'.", tostring(voice)), "invalid_value")
  end
  local speed, e2 = errors.opt_num(body, "speed", 0.25, 4, 1)
  if not speed then return nil, e2 end
  local fmt = isnull(body.response_format) and "mp3" or body.response_format
  if UNSUPPORTED[fmt] then
    return nil, bad_param("response_format", format("The devserver does not encode '%s': ask for wav, pcm or mp3 "
      .. "(mp3 is silent there).", fmt), "unsupported_value")
  end
  if not CTYPES[fmt] then
    return nil, bad_param("response_format", format("Invalid value for 'response_format': '%s'.", tostring(fmt)),
      "invalid_value")
  end
  local sf = isnull(body.stream_format) and "audio" or body.stream_format
  if sf ~= "audio" and sf ~= "sse" then
    return nil, bad_param("stream_format", "Invalid 'stream_format': expected 'audio' or 'sse'.", "invalid_value")
  end
  return { input = input, freq = freq, speed = speed, format = fmt, sse = sf == "sse" }
end

--- POST /v1/audio/speech
function M.speech (req)
  local p, err = params(req.body)
  if not p then return err end
  local samples = M.samples(p.input, p.freq, p.speed)
  local bytes
  if p.format == "wav" then bytes = M.wav(samples, M.MARKER .. gsub(p.input, "%z", " "))
  elseif p.format == "pcm" then bytes = samples
  else bytes = M.mp3_silence(#samples / 2 / M.RATE) end
  local chunks = pieces(bytes, M.RATE // 10 * 2)
  local input_tokens = words(p.input)
  local resp = { status = 200, headers = { { "x-aigc-audio-seconds", format("%.3f", #samples / 2 / M.RATE) } },
                 tokens = input_tokens }
  if p.sse then
    local events = { done = false }
    for i, c in ipairs(chunks) do
      events[i] = { event = "speech.audio.delta",
                    data = json.encode(O("type", "speech.audio.delta", "audio", base64(c))) }
    end
    local out_tokens = #chunks * 10
    events[#events + 1] = { event = "speech.audio.done", data = json.encode(O("type", "speech.audio.done",
      "usage", O("input_tokens", input_tokens, "output_tokens", out_tokens,
        "total_tokens", input_tokens + out_tokens))) }
    resp.events = events
  else
    resp.ctype, resp.chunks = CTYPES[p.format], chunks
  end
  return resp
end

M.routes = { { "POST", "^/v1/audio/speech$", M.speech } }

return M
