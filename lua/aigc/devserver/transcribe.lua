--- aigc devserver: POST /v1/audio/transcriptions and /v1/audio/translations
-- (multipart/form-data). The text is the one the test chose: what follows
-- "AIGC-TEXT:" in the uploaded bytes (to a NUL byte or the end; the WAV files
-- of /v1/audio/speech carry their input there), else the `prompt` field,
-- else "Audio file NAME, N bytes." Formats json, text, srt, vtt,
-- verbose_json (segments per sentence, words with timestamp_granularities[]
-- word), and stream=true (transcriptions: transcript.text.delta / .done;
-- whisper-1 ignores it). A body over 25 MiB is refused with a 413, as the API's.
-- Part of the devserver package.

local json = require "aigc.devserver.json"
local util = require "aigc.devserver.util"
local errors = require "aigc.devserver.errors"
local tokens = require "aigc.devserver.tokens"

local find, format, lower, match, sub = string.find, string.format, string.lower, string.match, string.sub
local sunpack = string.unpack
local concat = table.concat
local O, A = json.O, json.A
local tokenize, trim, words = util.tokenize, util.trim, util.words
local bad_param, isnull = errors.bad_param, errors.isnull

local M = { MAX_UPLOAD = 25 * 1024 * 1024 }

local SECONDS_PER_WORD = 0.4
local FORMATS = { json = true, text = true, srt = true, vtt = true, verbose_json = true }
local EXTENSIONS = { "flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm" }

-- The text the test chose (see the header).
local function chosen_text (file, prompt)
  local _, e = find(file.data, "AIGC-TEXT:", 1, true)
  if e then
    local stop = find(file.data, "\0", e + 1, true)
    return trim(sub(file.data, e + 1, stop and stop - 1 or #file.data))
  end
  if prompt and prompt ~= "" then return prompt end
  return format("Audio file %s, %d bytes.", file.filename or "audio", #file.data)
end

local function round_ms (t) return math.floor(t * 1000 + 0.5) / 1000 end

-- Seconds of audio: from a WAV header when there is one, else from the words.
local function duration (file, text)
  local d = file.data
  if sub(d, 1, 4) == "RIFF" and sub(d, 9, 12) == "WAVE" then
    local pos, rate = 13, nil
    while pos + 8 <= #d do
      local id, size = sub(d, pos, pos + 3), sunpack("<I4", d, pos + 4)
      if id == "fmt " then rate = sunpack("<I4", d, pos + 16) -- byte rate
      elseif id == "data" and rate and rate > 0 then return round_ms(math.min(size, #d - pos - 7) / rate) end
      pos = pos + 8 + size + size % 2
    end
  end
  return round_ms(math.max(1, words(text)) * SECONDS_PER_WORD)
end

-- A word without the punctuation around it, in byte loops ("%p+$" read a
-- run of marks inside a word from each of its bytes, quadratic).
local function bare (w)
  local i, j = 1, #w
  while i <= j and find(w, "^%p", i) do i = i + 1 end
  while j >= i and find(w, "^%p", j) do j = j - 1 end
  return sub(w, i, j)
end

-- Segments: one per sentence, timed by words over the whole duration.
local function segments (text, total)
  local list, per, t = {}, total / math.max(1, words(text)), 0
  -- (what gmatch("%s*(.-[%.!%?]+)%s") gave, found forward: that lazy pattern
  -- read the rest again from each byte after the last sentence, quadratic)
  local padded, pos = text .. " ", 1
  while true do
    local from = find(padded, "%S", pos)
    local stop = from and find(padded, "[%.!%?]%s", from)
    if not stop then break end
    list[#list + 1], pos = sub(padded, from, stop), stop + 2
  end
  if #list == 0 or concat(list, " ") ~= text then list = { text } end
  local out = {}
  for i, s in ipairs(list) do
    local len = words(s) * per
    out[i] = { text = s, start = round_ms(t), finish = round_ms(math.min(total, t + len)) }
    t = t + len
  end
  return out
end

local function stamp (t, sep)
  local ms = math.floor(t * 1000 + 0.5)
  return format("%02d:%02d:%02d%s%03d", ms // 3600000, ms // 60000 % 60, ms // 1000 % 60, sep, ms % 1000)
end

local function subtitles (segs, vtt)
  local out = { vtt and "WEBVTT\n" or nil }
  for i, s in ipairs(segs) do
    out[#out + 1] = (vtt and "" or i .. "\n") .. stamp(s.start, vtt and "." or ",") .. " --> "
      .. stamp(s.finish, vtt and "." or ",") .. "\n" .. s.text .. "\n"
  end
  return concat(out, "\n")
end

local function verbose (task, text, total, segs, want_words)
  local list = A()
  for i, s in ipairs(segs) do
    list[i] = O("id", i - 1, "seek", 0, "start", s.start, "end", s.finish, "text", " " .. s.text,
      "tokens", A { 50364 + i }, "temperature", 0, "avg_logprob", -0.25, "compression_ratio", 1.2,
      "no_speech_prob", 0.01)
  end
  local wl
  if want_words then
    wl = A()
    local per = total / math.max(1, words(text))
    for w in text:gmatch("%S+") do
      local k = #wl
      wl[k + 1] = O("word", bare(w), "start", round_ms(k * per),
        "end", round_ms((k + 1) * per))
    end
  end
  return O("task", task, "language", "english", "duration", total, "text", text, "words", wl, "segments", list,
    "usage", O("type", "duration", "seconds", math.ceil(total)))
end

-- Validate the upload; returns {file, text, format, ...} or nil and an error response.
local function params (req)
  local form, body = req.form, req.body
  -- (the API's upload limit, on the whole request body: 413, as it answers)
  if #req.job.body > M.MAX_UPLOAD then
    return nil, errors.error_resp(413, format("Maximum content size limit (%d) exceeded (%d bytes read)",
      M.MAX_UPLOAD, #req.job.body), "server_error")
  end
  local file = form.files.file
  if not file then
    return nil, bad_param("file", "Missing required parameter: 'file'.", "missing_required_parameter")
  end
  local ext = lower(match(file.filename or "", "%.([%w]+)$") or "")
  local known = false
  for _, e in ipairs(EXTENSIONS) do if e == ext then known = true end end
  if not known then
    return nil, bad_param("file", format("Invalid file format. Supported formats: ['%s']", concat(EXTENSIONS, "', '")),
      "invalid_value")
  end
  local fmt = isnull(body.response_format) and "json" or body.response_format
  if not FORMATS[fmt] then
    return nil, bad_param("response_format", format("Invalid value for 'response_format': '%s'.", tostring(fmt)),
      "invalid_value")
  end
  local p = { file = file, format = fmt, stream = body.stream == "true" }
  p.text = chosen_text(file, body.prompt)
  p.duration = duration(file, p.text)
  for _, part in ipairs(form.fields["timestamp_granularities[]"] or {}) do
    if part.data == "word" then p.want_words = true end
  end
  for _, part in ipairs(form.fields["include[]"] or {}) do
    if part.data == "logprobs" then p.logprobs = true end
  end
  return p
end

local function usage_tokens (req, p)
  local out = tokens.completion(req.tokenizer, words(p.text))
  local inp = math.ceil(p.duration * 10)
  return O("type", "tokens", "input_tokens", inp, "input_token_details", O("text_tokens", 0, "audio_tokens", inp),
    "output_tokens", out, "total_tokens", inp + out)
end

local function logprobs (text)
  local list = A()
  for i, tok in ipairs(tokenize(text)) do
    list[i] = O("token", tok, "logprob", -((util.fnv(tok .. i) % 1000) / 10000), "bytes", A { tok:byte(1, -1) })
  end
  return list
end

local function answer (req, task)
  local p, err = params(req)
  if not p then return err end
  local resp = { status = 200, headers = {} }
  -- (whisper-1 ignores `stream`, as the API says: it answers in one piece)
  if p.stream and task == "transcribe" and req.model ~= "whisper-1" then
    local events = { done = false }
    for _, tok in ipairs(tokenize(p.text)) do
      events[#events + 1] = { data = json.encode(O("type", "transcript.text.delta", "delta", tok,
        "logprobs", p.logprobs and logprobs(tok) or nil)) }
    end
    events[#events + 1] = { data = json.encode(O("type", "transcript.text.done", "text", p.text,
      "logprobs", p.logprobs and logprobs(p.text) or nil, "usage", usage_tokens(req, p))) }
    resp.events = events
  elseif p.format == "json" then
    resp.object = O("text", p.text, "logprobs", p.logprobs and task == "transcribe" and logprobs(p.text) or nil,
      "usage", task == "transcribe" and (req.model == "whisper-1" and O("type", "duration", "seconds",
        math.ceil(p.duration)) or usage_tokens(req, p)) or nil)
  elseif p.format == "verbose_json" then
    resp.object = verbose(task, p.text, p.duration, segments(p.text, p.duration), p.want_words)
  else
    resp.ctype = p.format == "vtt" and "text/vtt" or "text/plain; charset=utf-8"
    resp.body = p.format == "text" and p.text .. "\n" or subtitles(segments(p.text, p.duration), p.format == "vtt")
  end
  return resp
end

--- POST /v1/audio/transcriptions
function M.transcriptions (req) return answer(req, "transcribe") end

--- POST /v1/audio/translations (the chosen text, as if already English)
function M.translations (req) return answer(req, "translate") end

M.routes = {
  { "POST", "^/v1/audio/transcriptions$", M.transcriptions, body = "multipart" },
  { "POST", "^/v1/audio/translations$", M.translations, body = "multipart" },
}

return M
