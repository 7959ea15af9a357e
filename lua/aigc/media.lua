--- Images, audio and moderation (issue 15): the client's methods for
-- `POST /images/generations|edits|variations`, `/audio/speech`,
-- `/audio/transcriptions|translations` and `/moderations`, each blocking
-- and `_async`, built on `aigc.media_call` (uploads, sinks, the call's
-- shape), which `aigc.files` and `aigc.download` share.
--
-- Bytes never pass through Lua on their way in or out unless asked:
-- uploads name a file (`file = "voice.wav"`, read by libcurl when the
-- request is sent, again on a retry) or give bytes
-- (`file = { data = s, filename = "voice.wav" }`); audio goes to a string,
-- a file (`to = "line.wav"`: written as it arrives, renamed into place at
-- the end, never left half-written) or a function called with each chunk
-- as it arrives (`to = function (chunk) ... end`, for playback that starts
-- early).
--
-- An upload part may also be fed by a function
-- (`file = { reader = fn, filename = "voice.wav" }`, with `type =` and
-- `size =` if known): `fn()` returns the next bytes, nil at the end; it is
-- called from the driving loop, never from inside libcurl, and the call is
-- not retried once `fn` gave bytes.
--
-- The methods are installed on the client by `aigc.client` (listed below
-- as `Client:...`); this module itself gives the decoders and `flags`.
--
-- @module aigc.media

local core = require "aigc.core"
local check = require "aigc.check"
local call = require "aigc.media_call"
local future = require "aigc.future"
local reply = require "aigc.reply"
local util = require "aigc.util"

local error, getmetatable, ipairs, pairs, rawget, setmetatable, tostring, type =
  error, getmetatable, ipairs, pairs, rawget, setmetatable, tostring, type
local table_sort = table.sort
local argerror, expected, field_error = util.argerror, util.expected, util.field_error
local null = core.null

util.own_module()

local M = {}

--- Decodes base64 (standard or URL-safe; whitespace skipped) in C.
-- @function b64decode
-- @tparam string s
-- @treturn string|nil the bytes, or nil and why (where the text is wrong)
M.b64decode = core.media.b64decode

--- Decodes little-endian float32 values (an embedding) in C, exactly,
-- straight into an array; from bytes, or from base64 with `"base64"`.
-- @function f32
-- @tparam string s
-- @tparam[opt] string encoding `"base64"`
-- @treturn table|nil the numbers, or nil and why
M.f32 = core.media.f32

-- {======================================================
-- Images
-- =======================================================

local Images = {}
Images.__index = Images
Images.__name = "aigc.images"

-- The client an images result came from (its `url` images are downloaded
-- through it), held by the result's own metatable: a result keeps its
-- client alive as long as it lives, so `save` finds it unless it was
-- closed. (It was the value of a weak-keyed table, the result its key;
-- Lua 5.1 and LuaJIT have no ephemerons, so a client that led back to its
-- result kept both, and all they held, for ever: an error_handler whose
-- owner keeps the last images, or a save_async under way, which the
-- client's loop holds and which holds its result.)
local OWNER = {}

local function owner_of (res)
  local mt = getmetatable(res)
  return type(mt) == "table" and rawget(mt, OWNER) or nil
end

local function is_http_url (url)
  return type(url) == "string" and url:find("^[hH][tT][tT][pP][sS]?://[^/%s]") ~= nil and not url:find("[%c%s]")
end
M.is_http_url = is_http_url

-- The download option (a private key) of a `url` image saved (its number):
-- the reply must be an image, not a page (aigc.download; aigc image uses it).
M.AN_IMAGE = setmetatable({}, { __name = "aigc.media.AN_IMAGE" })

-- Writes image i of a result to path: its bytes, or its url downloaded
-- through the client it came from (straight to the file); in the task of
-- save_async's future `f`, a download it tracks (its cancel reaches it).
local function write_image (client, i, item, path, f, no_replace)
  if type(item) ~= "table" then
    return nil, core.error { kind = "parse",
                             message = "image " .. i .. ": an object expected, got " .. reply.shape(item) }
  end
  if type(item.bytes) ~= "string" then
    if type(item.url) ~= "string" then
      return nil, core.error { kind = "parse", message = "image " .. i .. " has neither bytes nor a url" }
    end
    if not is_http_url(item.url) then   -- (the server's text: not shown)
      return nil, core.error { kind = "parse", message = "image " .. i .. ": its url is not an http(s) URL" }
    end
    -- (a closed client would raise at download(): the same case as a collected one)
    local gone = client == nil and "was collected" or client._loop.closed and "is closed"
    if gone then
      return nil, core.error { kind = "canceled", message = "image " .. i .. " is a url, and the client "
                               .. "it came from (which downloads it) " .. gone }
    end
    local opts = { to = path, overwrite = not no_replace, [M.AN_IMAGE] = i }
    if f then return f:track(client:download_async(item.url, opts)):wait() end
    return client:download(item.url, opts)
  end
  -- As a download's file, by the same C code: never over a folder, a FIFO
  -- or a device; written to a new path.part (a link or FIFO there is not
  -- written through), renamed into place when whole; its close checked (a
  -- full disk often fails only there), a cut image never left as one.
  -- `no_replace` (overwrite = false): never over a file made there since
  -- the paths were checked (another process's: link(2), not a rename).
  local ok, why = core.media.save(path, item.bytes, nil, no_replace)
  if not ok then return nil, call.io_error(why) end
  return true
end

-- The file extension of a result's images: its output_format when it is a
-- plain word ("png", "jpeg", "webp"), "png" when it has none.
local function extension (res)
  local ext = res.output_format
  if ext == nil or ext == null then return "png" end
  if type(ext) ~= "string" or not ext:find("^%w+$") or #ext > 16 then
    return nil, core.error { kind = "parse", message = "the reply's output_format: a file extension "
                             .. "(letters and digits) expected, got " .. reply.shape(ext) }
  end
  return ext
end

-- The paths of a result's images in `target` (see save), or nil, err.
local function image_paths (self, target)
  local paths = {}
  local data = type(self.data) == "table" and self.data or {}
  -- (the last %d is the number: another `%`, as in "100%done-%d.png", is part of the name)
  local head, tail = target:match("^(.*)%%d(.-)$")   -- (greedy: the last %d)
  for i in ipairs(data) do
    if head then
      paths[i] = head .. i .. tail
    else
      local ext, err = extension(self)
      if ext == nil then return nil, err end
      paths[i] = target:gsub("/+$", "") .. "/image-" .. i .. "." .. ext
    end
  end
  return paths
end

-- save's and save_async's arguments checked: the options table.
local function save_args (fname, target, opts)
  if type(target) ~= "string" or target == "" then argerror(fname, 1, expected("a folder or a pattern", target)) end
  if opts == nil then return {} end
  if type(opts) ~= "table" then argerror(fname, 2, expected("table", opts)) end
  if opts.overwrite ~= nil and type(opts.overwrite) ~= "boolean" then
    field_error(fname, 2, "opts.overwrite", expected("boolean", opts.overwrite))
  end
  for _, k in ipairs { "on_done", "on_error" } do
    if opts[k] ~= nil and not check.is_callable(opts[k]) then
      field_error(fname, 2, "opts." .. k, expected("function", opts[k]))
    end
  end
  return opts
end

-- Writes the images (`f`: save_async's future, whose task this runs in).
local function save_images (self, target, opts, f)
  local paths, err = image_paths(self, target)
  if paths == nil then return nil, err end
  if opts.overwrite == false then   -- (every path checked before any is written)
    for _, path in ipairs(paths) do
      -- (asked, not opened: opening a FIFO there blocked the save for ever)
      if core.file_kind(path) ~= nil then
        return nil, call.io_error("could not write " .. path .. ": a file is there already (overwrite = false)")
      end
    end
  end
  for i, item in ipairs(type(self.data) == "table" and self.data or {}) do
    if f and f:canceled() then return nil end
    local ok, werr = write_image(owner_of(self), i, item, paths[i], f, opts.overwrite == false)
    if not ok then return nil, werr end
  end
  return paths
end

--- Writes the images of an images result: `target` is a folder (files
-- `image-1.png`..., the extension the reply's `output_format`) or a
-- pattern whose last `%d` is the image's number (`"portrait-%d.png"`;
-- any other `%` is kept as it is): the
-- decoded `b64_json`, or a `url` image downloaded through the client
-- (`client:download`, a blocking call: `save_async` in a frame loop). A
-- file already at a path is replaced, as by `to = path`; with
-- `opts.overwrite = false` the call fails instead (kind `"io"`), every
-- path checked before any image is written. Returns the list of paths,
-- or `nil, err` (kind
-- `"io"`, a file that cannot be written; `"parse"`, an image with neither
-- bytes nor an http(s) url, an `output_format` that is no extension; or
-- the download's error).
-- @tparam string target
-- @tparam[opt] table opts `overwrite` (default true)
-- @treturn table|nil paths
function Images:save (target, opts)
  return save_images(self, target, save_args("save", target, opts))
end

--- `save` without blocking: a future (`wait`, `result`, `cancel`, `on_done`
-- and `on_error` in `opts`) of the paths, from the client the result came
-- from; its `url` images are downloaded as
-- the loop turns, its bytes written at once. A cancel stops the download
-- under way (its file is not made) and the images after it.
-- @tparam string target
-- @tparam[opt] table opts `overwrite`, `on_done`, `on_error`
-- @treturn aigc.future
function Images:save_async (target, opts)
  opts = save_args("save_async", target, opts)
  local client = owner_of(self)
  if client == nil then error("save_async: the client this result came from was collected", 2) end
  return future.run(client._loop, function (f) return save_images(self, target, opts, f) end,
                    { label = "save", what = "an images save", on_done = opts.on_done, on_error = opts.on_error })
end

-- The b64_json of each image decoded in C into `bytes`; `res:save(...)`.
-- A reply whose `data` is not an array of objects is an error (kind
-- "parse"); one without `data` (the API's schema allows it) has no images.
-- `decoded`: the bytes of data[i], already decoded (a stream's completed
-- events, which its function got decoded), not decoded again.
local function finish_images (self, params, res, decoded)
  local data, why = reply.reply_objects(res, "data", true)
  if data == nil then return nil, reply.reply_error(self, params, res, "parse", why) end
  for i, item in ipairs(data) do
    if type(item.b64_json) == "string" then
      local bytes, bad
      bytes = decoded and decoded[i]
      if bytes == nil then bytes, bad = core.media.b64decode(item.b64_json) end
      if bytes == nil then
        return nil, reply.reply_error(self, params, res, "parse", "image " .. i .. ": " .. bad)
      end
      item.bytes = bytes
    end
  end
  -- res.headers is made when first read, through the metatable the core
  -- gave the result: make it now, since Images replaces that metatable.
  rawset(res, "headers", res.headers)
  return setmetatable(res, { __index = Images, __name = Images.__name, [OWNER] = self })
end

local IMAGE_FILES = { edit = { image = true, mask = true }, variation = { image = true } }

-- A streamed images call (`stream = true` or a function): the partial
-- images are events (their b64_json decoded into `bytes`) given to the
-- function; the completed events (one per image: `n = 2` gives two) become
-- the result, shaped like a plain one (`res.data[i]`, the last event's
-- other fields). A server that answers in one JSON piece: that answer.
-- An event whose b64_json does not decode ends the call (kind "parse", in
-- `failed.err`), as speech's audio events: never an event without its bytes.
-- `partial()`: what a failed stream leaves (err.partial): the images
-- completed before it failed, and the last partial image after them.
local function image_events (self, params, failed)
  local user, plain = params.stream, false
  -- The completed images so far ({b64_json =, revised_prompt =}; their
  -- bytes in `decoded`, as their events got them: an image is megabytes,
  -- decoded once) and the last partial image event after them.
  local done, decoded, last_partial = {}, {}, nil
  local fn = function (ev, whole)
    -- (a reply in one piece comes as (its text, the reply): not an event)
    if whole ~= nil or type(ev) ~= "table" then plain = true; return end
    local bytes, why
    if type(ev.b64_json) == "string" then
      bytes, why = core.media.b64decode(ev.b64_json)
      if bytes == nil then
        failed.err = { kind = "parse", message = "an image stream event's b64_json: " .. why }
        error(failed.err.message, 0)
      end
      ev.bytes = bytes
    end
    if type(ev.type) == "string" and ev.type:find("%.completed$") then
      done[#done + 1] = { b64_json = ev.b64_json, revised_prompt = ev.revised_prompt }
      decoded[#done], last_partial = bytes, nil   -- (nil: no b64_json, a hole)
    elseif bytes then
      last_partial = ev
    end
    if user ~= true then return user(ev) end
  end
  local function partial ()   -- (nil: nothing came)
    if #done == 0 and last_partial == nil then return nil end
    local data = {}
    for i = 1, #done do data[i] = { bytes = decoded[i] } end
    return { data = data, partial_image = last_partial and { bytes = last_partial.bytes,
                                                             partial_image_index = last_partial.partial_image_index } }
  end
  local function completed (res)
    if plain or (res.data ~= nil and res.type == nil) then return res end   -- (answered without a stream)
    if type(res.type) ~= "string" or not res.type:find("%.completed$") or #done == 0 then
      local err = reply.reply_error(self, params, res, "stream", "the image stream ended before its completed event"
                                    .. (res.type ~= nil and " (last: " .. tostring(res.type) .. ")" or ""))
      err.partial = partial()
      return nil, err
    end
    res.data = done
    res.b64_json, res.revised_prompt = nil, nil
    return res, decoded
  end
  return fn, completed, partial
end

-- The model a call asks for: its own, else the client's.
local function model_of (self, params)
  local m = params.model
  if m == nil then m = self.model end
  return type(m) == "string" and m or nil
end

local function images (self, submit, fname, what, params, async)
  params = call.params_of(self, fname, params, what == "generate" and "prompt" or nil)
  local events, completed, failed, partial
  if params.stream then
    failed = {}
    events, completed, partial = image_events(self, params, failed)
  end
  local s = { fname = fname, async = async, api = "json", on_done = params.on_done, on_error = params.on_error,
              model = model_of(self, params), failed = failed, partial = partial,
              finish = function (res)
                local decoded
                if completed then
                  res, decoded = completed(res)
                  if res == nil then return nil, decoded end
                end
                return finish_images(self, params, res, decoded)
              end }
  if what == "generate" then
    if params.prompt == nil then field_error(fname, 1, "params.prompt", expected("string", nil)) end
    s.path, s.params, s.body = "/images/generations", call.sendable(params), { events = events }
    s.params.stream = nil   -- (the core sends "stream": true for events)
  else
    if params.image == nil then
      field_error(fname, 1, "params.image", expected("a path or {data =, filename =}", nil))
    end
    local form, options, reader, labels = call.form_of(self, fname, params, IMAGE_FILES[what])
    if events then form[#form + 1] = { name = "stream", value = "true" } end
    s.path = what == "edit" and "/images/edits" or "/images/variations"
    s.params, s.body, s.labels = options, { form = form, events = events, reader = reader }, labels
  end
  return call.perform(self, submit, s)
end

-- }======================================================


-- {======================================================
-- Audio
-- =======================================================

-- The non-JSON transcription formats: the reply is the text itself.
local TEXT_FORMATS = { text = true, srt = true, vtt = true }

-- stream_format = "sse": the audio comes as speech.audio.delta events
-- (base64), decoded here and given to `to` (a function) chunk by chunk; the
-- result is the done event (usage). An event whose audio does not decode
-- ends the call: `failed.err` says why (kind "parse"); a reply in one
-- JSON piece (no events) sets `failed.plain`. A server that ignores
-- stream_format and answers audio/... (its Content-Type) sends the audio
-- itself: the core gives `to` its chunks as they come (a string alone).
-- Whether a Content-Type says audio/... (as the core reads it: body.c).
local function is_audio_type (ct)
  return type(ct) == "string" and ct:lower():find("^[ \t]*audio/") ~= nil
end

local function speech_events (fname, to, failed)
  if not check.is_callable(to) then
    field_error(fname, 1, "params.to", "a function expected with stream_format = \"sse\"")
  end
  local function fail (why)
    failed.err = { kind = "parse", message = "a speech.audio.delta event's audio: " .. why }
    error(failed.err.message, 0)
  end
  return function (ev, whole)
    if whole == nil and type(ev) == "string" then return to(ev) end   -- (the audio itself)
    -- (a reply in one piece comes as (its text, the reply): not an event)
    if whole ~= nil or type(ev) ~= "table" then failed.plain = true; return end
    local audio = ev.audio
    if type(audio) == "string" then
      local chunk, why = core.media.b64decode(audio)
      if chunk == nil then fail(why) end
      return to(chunk)
    elseif audio ~= nil then
      fail("base64 text expected, got " .. reply.shape(audio))
    end
  end
end

local function speech (self, submit, fname, params, async)
  params = call.params_of(self, fname, params, "input")
  if type(params.input) ~= "string" then field_error(fname, 1, "params.input", expected("string", params.input)) end
  local extra = {}
  if params.voice == nil then extra.voice = "alloy" end
  local sent = call.sendable(params, extra)
  local s = { fname = fname, async = async, api = "json", path = "/audio/speech", params = sent,
              on_done = params.on_done, on_error = params.on_error, model = model_of(self, params) }
  if params.stream_format == "sse" then   -- (no "stream": true: stream_format says it)
    local failed = {}
    s.failed = failed
    s.body = { events = speech_events(fname, params.to, failed), stream_field = false, audio = true }
    s.finish = function (res)
      -- (the audio itself, given to `to`: the result says how much, as a function sink's)
      if res.type == nil and is_audio_type(res.content_type) then return res end
      if failed.plain then
        return nil, reply.reply_error(self, sent, res, "parse", "the server answered with one JSON reply, "
                                  .. "not the stream of events stream_format = \"sse\" asks for")
      end
      if res.type ~= "speech.audio.done" then
        return nil, reply.reply_error(self, sent, res, "stream", "the speech stream ended before speech.audio.done"
                                  .. " (last: " .. tostring(res.type) .. ")")
      end
      return res
    end
    return call.perform(self, submit, s)
  end
  -- Audio is expected: a 2xx JSON or text/* reply (a server's error with a
  -- 200, or a proxy's page) is an error, not audio. It is kept in memory
  -- instead (`audio`: the file at the path stays as it was, a function
  -- gets none of it: not played as noise).
  local sink = call.sink_of(fname, params.to)
  if type(sink) == "table" then sink.audio = true end
  s.body = { sink = sink, audio = true }
  s.finish = function (res)
    if not reply.is_not_audio_type(res.content_type) then return res end
    return nil, reply.not_audio(self, sent, res, res.body)
  end
  return call.perform(self, submit, s)
end

local function transcribe (self, submit, fname, path, params, async)
  params = call.params_of(self, fname, params, "file")
  if params.file == nil then field_error(fname, 1, "params.file", expected("a path or {data =, filename =}", nil)) end
  local form, options, reader, labels = call.form_of(self, fname, params, { file = true })
  local text = TEXT_FORMATS[params.response_format]
  local user = params.stream
  local events, plain = user, false   -- transcript.text.delta events, then .done (the result)
  if events then
    form[#form + 1] = { name = "stream", value = "true" }
    events = function (ev, whole)
      if whole ~= nil or type(ev) ~= "table" then   -- answered in one piece: (its text, the reply)
        plain = true
        -- (the function still sees the text, as a chat stream's does)
        if user ~= true and type(ev) == "string" then return user { type = "transcript.text.delta", delta = ev } end
        return
      end
      if user ~= true then return user(ev) end
    end
  end
  return call.perform(self, submit, {
    fname = fname, async = async, api = "json", path = path, params = options, labels = labels,
    -- (sink "bytes" beside events: a text/... reply, from a server that does
    -- not stream, such as whisper-1, is the transcript itself)
    body = { form = form, sink = text and "bytes" or nil, events = events or nil, reader = reader },
    on_done = params.on_done, on_error = params.on_error, model = model_of(self, params),
    -- text/srt/vtt replies: { text = the reply } like the JSON formats' text
    finish = function (res)
      local whole = text and (not events or type(res.body) == "string")
      if whole then
        -- An API error with a 200 (`{"error": ...}`, whatever its type
        -- said) is no transcript: not to become the subtitles' text.
        local v = type(res.body) == "string" and res.body:find("^%s*{") and core.json.decode(res.body)
        if reply.is_object(v) and (reply.is_object(v.error) or type(v.error) == "string") then
          return nil, reply.not_audio(self, options, res, res.body)
        end
        res.text, res.body = res.body, nil
        if events then   -- (answered without a stream: the function sees the text, as for JSON)
          plain = true
          if user ~= true then user { type = "transcript.text.delta", delta = res.text } end
        end
      end
      if events and not plain and res.type ~= "transcript.text.done" then
        return nil, reply.reply_error(self, options, res, "stream", "the transcription stream ended before "
                                  .. "transcript.text.done (last: " .. tostring(res.type) .. ")")
      end
      if type(res.text) ~= "string" then   -- (a subtitle set from it would get null, or fail later)
        return nil, reply.reply_error(self, options, res, "parse", "the reply's text: a string expected, got "
                                  .. reply.shape(res.text))
      end
      return res
    end,
  })
end

-- }======================================================


-- {======================================================
-- Moderation
-- =======================================================

--- What a moderation result says, for a pre-filter: whether any input
-- was flagged, and the flagged categories' names (sorted, each once).
-- Also `res.flagged` and `res.flagged_categories` on every result.
-- @tparam table res a moderation result
-- @treturn boolean flagged
-- @treturn table categories
function M.flags (res)
  local flagged, seen, names = false, {}, {}
  local results = type(res) == "table" and res.results
  for _, r in ipairs(type(results) == "table" and results or {}) do
    if type(r) == "table" then
      if r.flagged == true then flagged = true end
      local categories = r.categories
      for name, on in pairs(type(categories) == "table" and categories or {}) do
        if on == true and not seen[name] then
          seen[name] = true
          names[#names + 1] = name
        end
      end
    end
  end
  table_sort(names, function (a, b) return tostring(a) < tostring(b) end)
  return flagged or #names > 0, names
end

-- How many results a moderation input asks for: one per string of a list,
-- one for a string or for a list of multi-modal parts; nil when unsure.
local function moderation_count (input)
  if type(input) == "string" then return 1 end
  if type(input) ~= "table" or input[1] == nil then return nil end
  return type(input[1]) == "string" and #input or type(input[1]) == "table" and 1 or nil
end

-- A moderation reply: `results`, an array of objects, one per input
-- (`want`, when known), whose `flagged` (when given) is a boolean and
-- whose `categories` (when given) is an object; else an error of kind
-- "parse". (A pre-filter must not pass what it was not told about: a reply
-- with no result for an input, or `"flagged": "yes"`, read as not flagged.)
local function finish_moderation (self, params, res, want)
  local results, why = reply.reply_objects(res, "results")
  if results and want and #results ~= want then
    why = "the reply has " .. #results .. " result(s) for " .. want .. " input(s)"
  end
  for i, r in ipairs(not why and results or {}) do
    if r.flagged ~= nil and type(r.flagged) ~= "boolean" then
      why = "the reply's results[" .. i .. "].flagged: a boolean expected, got " .. reply.shape(r.flagged)
    elseif r.categories ~= nil and not reply.is_object(r.categories) then
      why = "the reply's results[" .. i .. "].categories: an object expected, got " .. reply.shape(r.categories)
    end
    if why then break end
  end
  if why then return nil, reply.reply_error(self, params, res, "parse", why) end
  res.flagged, res.flagged_categories = M.flags(res)
  return res
end

local function moderate (self, submit, fname, params, async)
  params = call.params_of(self, fname, params, "input")
  if params.input == nil then field_error(fname, 1, "params.input", expected("string or list", nil)) end
  local sent = call.sendable(params)
  return call.perform(self, submit, {
    fname = fname, async = async, api = "json", path = "/moderations", params = sent,
    finish = function (res) return finish_moderation(self, sent, res, moderation_count(params.input)) end,
    on_done = params.on_done, on_error = params.on_error, model = model_of(self, params),
  })
end

-- }======================================================


--- Client methods (installed on every client). Each one also has an
-- `_async` form taking the same arguments and returning an `aigc.request`
-- (`status`, `result`, `wait`, `cancel`; `on_done` / `on_error` in params);
-- each takes the call options (`timeout`, `deadline`, `max_retries`,
-- `max_response_bytes`, `headers`...). An upload field is a path, `{ data =
-- bytes, filename = }` or `{ reader = fn, filename = [, size =] }`.
-- @section client

--- Generates images (`POST /images/generations`); `b64_json` is decoded in
-- C into `res.data[i].bytes`; `res:save(target)` writes them. `stream`
-- (true or a function) streams partial images.
-- @function Client:images_generate
-- @tparam table|string params the request body (a string: the prompt)
-- @treturn[1] table the result (`data`, `save`)
-- @treturn[2] nil
-- @treturn[2] aigc.error err

--- Edits an image (`POST /images/edits`, multipart): `image` (one upload
-- or a list) and an optional `mask` upload, `prompt`.
-- @function Client:images_edit
-- @tparam table params
-- @treturn[1] table the result, as `images_generate`'s
-- @treturn[2] nil
-- @treturn[2] aigc.error err

--- Variations of an image (`POST /images/variations`, multipart).
-- @function Client:images_variation
-- @tparam table params `image` (an upload), `n`, `size`...
-- @treturn[1] table the result, as `images_generate`'s
-- @treturn[2] nil
-- @treturn[2] aigc.error err

--- Text to speech (`POST /audio/speech`): the audio in `res.body`, or
-- where `to` says (a path, written as it arrives; a function, called with
-- each chunk from the loop); a 2xx JSON or text/* reply is an error (kind
-- "api" or "parse"), not audio. `stream_format = "sse"` decodes the events: a stream
-- cut before `speech.audio.done` fails (kind "stream"), audio that does
-- not decode too (kind "parse").
-- @function Client:speech
-- @tparam table|string params the request body (a string: the input)
-- @treturn[1] table the result (`body` or `bytes`, `content_type`)
-- @treturn[2] nil
-- @treturn[2] aigc.error err

--- Transcribes audio (`POST /audio/transcriptions`, multipart): `file`
-- (an upload), `response_format` json, verbose_json, text, srt or vtt
-- (`res.text` in every one); `stream` for transcript events.
-- @function Client:transcribe
-- @tparam table params
-- @treturn[1] table the result (`text`...)
-- @treturn[2] nil
-- @treturn[2] aigc.error err

--- Translates audio into English (`POST /audio/translations`), as
-- `transcribe`.
-- @function Client:translate
-- @tparam table params
-- @treturn[1] table the result (`text`...)
-- @treturn[2] nil
-- @treturn[2] aigc.error err

--- Moderation (`POST /moderations`), with `res.flagged` and
-- `res.flagged_categories` (see `flags`).
-- @function Client:moderate
-- @tparam table|string params the request body (a string: the input)
-- @treturn[1] table the result
-- @treturn[2] nil
-- @treturn[2] aigc.error err

--- Fetches an http(s) URL through the client's engine (retries, limits,
-- cancel): to a string, or `opts.to` (a path or a function). Credentials go
-- to the client's own origin only: another origin gets no `Authorization`,
-- `api-key`, `x-api-key` or `Proxy-Authorization` header, neither the
-- client's nor the caller's own in `opts.headers`, no header of the
-- client's holding one of its secrets, no organization or project. Follows
-- up to 5 redirects, that rule applied at each hop (`aigc.download`).
-- @function Client:download
-- @tparam string url
-- @tparam[opt] table opts `to` and call options
-- @treturn[1] table the result (`body` or `bytes`)
-- @treturn[2] nil
-- @treturn[2] aigc.error err

--- Installs the methods on the client class.
-- @local
function M.install (Client, submit, check_self)
  local function both (name, fn)
    Client[name] = function (self, ...)
      check_self(self, name)
      return fn(self, name, false, ...)
    end
    Client[name .. "_async"] = function (self, ...)
      check_self(self, name .. "_async")
      return fn(self, name .. "_async", true, ...)
    end
  end
  for _, what in ipairs { "generate", "edit", "variation" } do
    both("images_" .. what, function (self, fname, async, params)
      return images(self, submit, fname, what, params, async)
    end)
  end
  both("speech", function (self, fname, async, params) return speech(self, submit, fname, params, async) end)
  both("transcribe", function (self, fname, async, params)
    return transcribe(self, submit, fname, "/audio/transcriptions", params, async)
  end)
  both("translate", function (self, fname, async, params)
    return transcribe(self, submit, fname, "/audio/translations", params, async)
  end)
  both("moderate", function (self, fname, async, params) return moderate(self, submit, fname, params, async) end)
  local download = require("aigc.download").download   -- (it calls this module's perform)
  both("download", function (self, fname, async, url, opts) return download(self, submit, fname, url, opts, async) end)
end

return M
