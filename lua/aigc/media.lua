--- Images, audio and moderation (issue 15): the client's methods for
-- `POST /images/generations|edits|variations`, `/audio/speech`,
-- `/audio/transcriptions|translations` and `/moderations`, each blocking
-- and `_async`; and the helpers `aigc.files` shares (uploads, sinks, the
-- call's shape).
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
local future = require "aigc.future"
local task = require "aigc.task"
local util = require "aigc.util"

local io_open, ipairs, pairs, setmetatable, tostring, type =
  io.open, ipairs, pairs, setmetatable, tostring, type
local math_floor, string_format = math.floor, string.format
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
-- What every call shares
-- =======================================================

-- Per-call options of this module (never sent).
local OWN_OPTIONS = { to = true }

--- The params of a call as a table (a string is `input`), checked.
-- @local
function M.params_of (self, fname, params, default_field, argn)
  argn = argn or 1
  if type(params) == "string" and default_field then params = { [default_field] = params } end
  if type(params) ~= "table" then argerror(fname, argn, expected("table", params)) end
  check.call(self, fname, argn, "json", params)
  return params
end

--- A shallow copy of params without on_done / on_error and this module's
-- own options (the future delivers the callbacks, after `finish`), plus
-- `extra`.
-- @local
function M.sendable (params, extra)
  local t = {}
  for k, v in pairs(params) do
    if k ~= "on_done" and k ~= "on_error" and not OWN_OPTIONS[k] then t[k] = v end
  end
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

-- The sink of `to`: "bytes" (nil), {path = to} (a string) or the function.
local function sink_of (fname, to)
  if to == nil then return "bytes" end
  if type(to) == "string" then
    if to == "" then field_error(fname, 1, "params.to", "an empty path") end
    return { path = to }
  end
  if check.is_callable(to) then
    if type(to) ~= "function" then return function (chunk) return to(chunk) end end
    return to
  end
  field_error(fname, 1, "params.to", expected("a path or a function", to))
end
M.sink_of = sink_of

-- One upload part from `v` (a path, {path=}, {data=, filename=, type=}, or
-- {reader=fn, filename=, type=, size=}: bytes fed by fn from the loop).
local function file_part (fname, path, name, v)
  if type(v) == "string" then return { name = name, path = v } end
  if type(v) ~= "table" then field_error(fname, 1, path, expected("a path or {data =, filename =}", v)) end
  if type(v.path) == "string" then
    return { name = name, path = v.path, filename = v.filename, type = v.type }
  end
  if v.reader ~= nil then   -- bytes from a function, as libcurl asks for them
    if not check.is_callable(v.reader) then field_error(fname, 1, path .. ".reader", expected("function", v.reader)) end
    if type(v.filename) ~= "string" then
      field_error(fname, 1, path .. ".filename", expected("string (the server reads the format from it)", v.filename))
    end
    local size = v.size   -- known: a Content-Length; else the body goes chunked
    if size ~= nil and (type(size) ~= "number" or size < 0 or size ~= math_floor(size) or size > 2 ^ 53) then
      field_error(fname, 1, path .. ".size", expected("a whole number >= 0", size))
    end
    return { name = name, reader = true, filename = v.filename, type = v.type, size = size }, v.reader
  end
  if type(v.data) ~= "string" then
    field_error(fname, 1, path,
                "{path = ...}, {data = bytes, filename = ...} or {reader = fn, filename = ...} expected")
  end
  if type(v.filename) ~= "string" then
    field_error(fname, 1, path .. ".filename", expected("string (the server reads the format from it)", v.filename))
  end
  return { name = name, data = v.data, filename = v.filename, type = v.type }
end

-- A text part's value: strings, numbers and booleans as the API reads them.
local function text_value (fname, path, v)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then
    if v == math_floor(v) and v >= -2 ^ 53 and v <= 2 ^ 53 then return string_format("%.0f", v) end
    return string_format("%.17g", v)
  end
  if t == "boolean" then return tostring(v) end
  field_error(fname, 1, path, expected("string, number or boolean", v))
end

--- The multipart form of `params`: fields in `files` are uploads (a list
-- of them goes as `name[]`), the others text parts (a list as `name[]`, a
-- table as `name[key]`); call options are not sent. The model is the
-- client's unless given. Returns the form, the call options and the
-- function feeding an upload part (`{reader = fn}`), if any.
-- @local
function M.form_of (self, fname, params, files)
  local form, options, reader = {}, { headers = {} }, nil
  local function add_file (path, name, v)
    local part, fn = file_part(fname, path, name, v)
    if fn then
      if reader then field_error(fname, 1, path, "one upload fed by a function per call") end
      reader = function () return fn() end   -- (a callable table too)
    end
    form[#form + 1] = part
  end
  for k, v in pairs(params) do
    if check.call_options[k] or k == "on_done" or k == "on_error" or OWN_OPTIONS[k] then
      -- (headers: merged below into a table of our own; never the caller's,
      -- which the Expect and Content-Type lines must not touch)
      if k ~= "on_done" and k ~= "on_error" and k ~= "headers" and not OWN_OPTIONS[k] then options[k] = v end
    elseif type(k) ~= "string" then
      field_error(fname, 1, "params", "a field name must be a string, got " .. util.typename(k))
    elseif files[k] then
      if type(v) == "table" and v[1] ~= nil then
        for i, f in ipairs(v) do add_file("params." .. k .. "[" .. i .. "]", k .. "[]", f) end
      else
        add_file("params." .. k, k, v)
      end
    elseif type(v) == "table" and v[1] ~= nil then
      for i, x in ipairs(v) do
        form[#form + 1] = { name = k .. "[]", value = text_value(fname, "params." .. k .. "[" .. i .. "]", x) }
      end
    elseif type(v) == "table" then
      for sk, x in pairs(v) do
        local name = k .. "[" .. tostring(sk) .. "]"
        form[#form + 1] = { name = name, value = text_value(fname, "params." .. k .. "." .. tostring(sk), x) }
      end
    elseif v ~= null then
      form[#form + 1] = { name = k, value = text_value(fname, "params." .. k, v) }
    end
  end
  if params.model == nil and self.model ~= nil then form[#form + 1] = { name = "model", value = self.model } end
  -- libcurl writes the multipart Content-Type (with its boundary): the
  -- client's JSON one must not be sent.
  -- A reader's bytes cannot be sent twice: wait for the server's "100
  -- Continue" before reading any (the client turns Expect off otherwise),
  -- so a server that answers first (401, 429, 5xx) leaves the reader
  -- untouched and the call may be retried.
  if reader then options.headers.Expect = "100-continue" end
  for k, v in pairs(params.headers or {}) do
    if reader and type(k) == "string" and k:lower() == "expect" then options.headers.Expect = nil end
    options.headers[k] = v
  end
  options.headers["Content-Type"] = null
  table_sort(form, function (a, b) return a.name < b.name end)   -- (a stable order for tests)
  return form, options, reader
end

--- Submits and returns the outcome (blocking) or what stands for it
-- (`async`): the request itself when there is nothing to do after it,
-- else a future whose result is `finish(res)` and which runs the caller's
-- on_done / on_error. `s`: fname, async, api, path, params (sent), body
-- (the core's form / sink / method options), finish, on_done, on_error.
-- @local
function M.perform (self, submit, s)
  local req = submit(self, s.api, s.params, s.path, s.fname, 1, s.body)
  if s.finish == nil and s.on_done == nil and s.on_error == nil then
    if s.async then return req end
    return task.await(req)
  end
  local f = future.run(self._loop, function (f)
    f:track(req)
    local res, err = req:wait()
    if res ~= nil and s.finish then return s.finish(res) end
    return res, err
  end, { label = s.fname, on_done = s.on_done, on_error = s.on_error, request = req })
  if s.async then return f end
  return f:wait()
end

--- A failure of ours (a file that cannot be written) as an error object.
-- @local
function M.io_error (message)
  return core.error { kind = "io", message = message }
end

--- An error found in a reply the core accepted (a stream that stopped
-- early, a field that does not decode): with the reply's status, headers
-- and request id, as the core's errors have them.
-- @local
function M.reply_error (res, kind, message)
  return core.error { kind = kind, message = message, status = 200, headers = res.headers,
                      request_id = res.request_id, retries = res.retries }
end

-- }======================================================


-- {======================================================
-- Images
-- =======================================================

local Images = {}
Images.__index = Images
Images.__name = "aigc.images"

-- The client an images result came from (its `url` images are downloaded
-- through it); weak: a result does not keep its client alive.
local owner_of = setmetatable({}, { __mode = "k" })

-- {======================================================
-- Downloads
-- =======================================================

local function origin (url)
  local o = url:match("^(%a+://[^/?#]+)")
  return o and o:lower()
end

-- Headers that carry credentials: sent only to the client's own origin.
local CREDENTIALS = { "Authorization", "api-key", "x-api-key", "OpenAI-Organization", "OpenAI-Project" }
local IS_CREDENTIAL = {}
for _, name in ipairs(CREDENTIALS) do IS_CREDENTIAL[name:lower()] = true end

local function download (self, submit, fname, url, opts, async)
  if type(url) ~= "string" or not url:find("^[hH][tT][tT][pP][sS]?://[^/%s]") or url:find("[%c%s]") then
    argerror(fname, 1, expected("an http:// or https:// URL", url))
  end
  opts = opts == nil and {} or M.params_of(self, fname, opts, nil, 2)
  local params = M.sendable(opts)
  if origin(url) ~= origin(self.base_url) then   -- another host: no key, no organization
    local h = {}
    -- (the call's own too, whatever their case: "authorization" and a
    -- null "Authorization" side by side would leave the one pairs() met last)
    for k, v in pairs(opts.headers or {}) do
      if not (type(k) == "string" and IS_CREDENTIAL[k:lower()]) then h[k] = v end
    end
    for _, name in ipairs(CREDENTIALS) do h[name] = null end
    params.headers = h
  end
  return M.perform(self, submit, {
    fname = fname, async = async, api = "get", path = url, params = params,
    body = { absolute = true, sink = sink_of(fname, opts.to) },
    on_done = opts.on_done, on_error = opts.on_error,
  })
end

-- }======================================================

-- Writes image i of a result to path: its bytes, or its url downloaded
-- through the client it came from (straight to the file).
local function write_image (client, i, item, path)
  if type(item.bytes) ~= "string" then
    if type(item.url) ~= "string" or client == nil then
      return nil, core.error { kind = "parse", message = "image " .. i .. " has neither bytes nor a url" }
    end
    return client:download(item.url, { to = path })
  end
  local f, why = io_open(path, "wb")
  if not f then return nil, M.io_error("could not write " .. path .. ": " .. tostring(why)) end
  local ok, werr = f:write(item.bytes)
  f:close()
  if not ok then return nil, M.io_error("could not write " .. path .. ": " .. tostring(werr)) end
  return true
end

--- Writes the images of an images result: `target` is a folder (files
-- `image-1.png`...) or a pattern where `%d` is the image's number
-- (`"portrait-%d.png"`): the decoded `b64_json`, or a `url` image
-- downloaded through the client (`client:download`). Returns the list of
-- paths, or `nil, err`.
-- @tparam string target
-- @treturn table|nil paths
function Images:save (target)
  if type(target) ~= "string" or target == "" then argerror("save", 1, expected("a folder or a pattern", target)) end
  local paths = {}
  for i, item in ipairs(self.data or {}) do
    local ext = self.output_format or "png"
    local path = target:find("%d", 1, true) and target:gsub("%%d", tostring(i))
                 or (target:gsub("/+$", "") .. "/image-" .. i .. "." .. ext)
    local ok, err = write_image(owner_of[self], i, item, path)
    if not ok then return nil, err end
    paths[#paths + 1] = path
  end
  return paths
end

-- The b64_json of each image decoded in C into `bytes`; `res:save(...)`.
local function finish_images (res, client)
  for i, item in ipairs(res.data or {}) do
    if type(item.b64_json) == "string" then
      local bytes, why = core.media.b64decode(item.b64_json)
      if bytes == nil then
        return nil, M.reply_error(res, "parse", "image " .. i .. ": " .. why)
      end
      item.bytes = bytes
    end
  end
  owner_of[res] = client
  -- res.headers is made when first read, through the metatable the core
  -- gave the result: make it now, since Images replaces that metatable.
  rawset(res, "headers", res.headers)
  return setmetatable(res, Images)
end

local IMAGE_FILES = { edit = { image = true, mask = true }, variation = { image = true } }

-- A streamed images call (`stream = true` or a function): the partial
-- images are events (their b64_json decoded into `bytes`) given to the
-- function; the completed event becomes the result, shaped like a plain one
-- (`res.data[1]`). A server that answers in one JSON piece: that answer.
local function image_events (params)
  local user = params.stream
  local fn = function (ev)
    if type(ev.b64_json) == "string" then ev.bytes = core.media.b64decode(ev.b64_json) end
    if user ~= true then return user(ev) end
  end
  local function completed (res)
    if res.data ~= nil then return res end   -- (answered without a stream)
    if type(res.type) ~= "string" or not res.type:find("%.completed$") then
      return nil, M.reply_error(res, "stream", "the image stream ended before its completed event"
                                .. (res.type and " (last: " .. tostring(res.type) .. ")" or ""))
    end
    res.data = { { b64_json = res.b64_json, revised_prompt = res.revised_prompt } }
    res.b64_json = nil
    return res
  end
  return fn, completed
end

local function images (self, submit, fname, what, params, async)
  params = M.params_of(self, fname, params, what == "generate" and "prompt" or nil)
  local events, completed
  if params.stream then events, completed = image_events(params) end
  local s = { fname = fname, async = async, api = "json", on_done = params.on_done, on_error = params.on_error,
              finish = function (res)
                if completed then
                  local err
                  res, err = completed(res)
                  if res == nil then return nil, err end
                end
                return finish_images(res, self)
              end }
  if what == "generate" then
    if params.prompt == nil then field_error(fname, 1, "params.prompt", expected("string", nil)) end
    s.path, s.params, s.body = "/images/generations", M.sendable(params), { events = events }
    s.params.stream = nil   -- (the core sends "stream": true for events)
  else
    if params.image == nil then
      field_error(fname, 1, "params.image", expected("a path or {data =, filename =}", nil))
    end
    local form, options, reader = M.form_of(self, fname, params, IMAGE_FILES[what])
    if events then form[#form + 1] = { name = "stream", value = "true" } end
    s.path = what == "edit" and "/images/edits" or "/images/variations"
    s.params, s.body = options, { form = form, events = events, reader = reader }
  end
  return M.perform(self, submit, s)
end

-- }======================================================


-- {======================================================
-- Audio
-- =======================================================

-- The non-JSON transcription formats: the reply is the text itself.
local TEXT_FORMATS = { text = true, srt = true, vtt = true }

-- stream_format = "sse": the audio comes as speech.audio.delta events
-- (base64), decoded here and given to `to` (a function) chunk by chunk; the
-- result is the done event (usage).
local function speech_events (fname, to)
  if not check.is_callable(to) then
    field_error(fname, 1, "params.to", "a function expected with stream_format = \"sse\"")
  end
  return function (ev)
    if type(ev.audio) == "string" then
      local chunk, why = core.media.b64decode(ev.audio)
      if chunk == nil then error("speech.audio.delta: " .. why, 0) end
      return to(chunk)
    end
  end
end

local function speech (self, submit, fname, params, async)
  params = M.params_of(self, fname, params, "input")
  if type(params.input) ~= "string" then field_error(fname, 1, "params.input", expected("string", params.input)) end
  local extra = {}
  if params.voice == nil then extra.voice = "alloy" end
  local body = { sink = sink_of(fname, params.to) }
  if params.stream_format == "sse" then   -- (no "stream": true: stream_format says it)
    body = { events = speech_events(fname, params.to), stream_field = false }
  end
  return M.perform(self, submit, {
    fname = fname, async = async, api = "json", path = "/audio/speech",
    params = M.sendable(params, extra), body = body,
    on_done = params.on_done, on_error = params.on_error,
  })
end

local function transcribe (self, submit, fname, path, params, async)
  params = M.params_of(self, fname, params, "file")
  if params.file == nil then field_error(fname, 1, "params.file", expected("a path or {data =, filename =}", nil)) end
  local form, options, reader = M.form_of(self, fname, params, { file = true })
  local text = TEXT_FORMATS[params.response_format]
  local events = params.stream   -- transcript.text.delta events, then .done (the result)
  if events then
    form[#form + 1] = { name = "stream", value = "true" }
    if events == true then events = function () end end
  end
  return M.perform(self, submit, {
    fname = fname, async = async, api = "json", path = path, params = options,
    body = { form = form, sink = (text and not events) and "bytes" or nil, events = events or nil, reader = reader },
    on_done = params.on_done, on_error = params.on_error,
    -- text/srt/vtt replies: { text = the reply } like the JSON formats' text
    finish = function (res)
      if text and not events then res.text, res.body = res.body, nil end
      if events and res.type ~= nil and res.type ~= "transcript.text.done" then
        return nil, M.reply_error(res, "stream", "the transcription stream ended before "
                                  .. "transcript.text.done (last: " .. tostring(res.type) .. ")")
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
  for _, r in ipairs(res.results or {}) do
    if r.flagged == true then flagged = true end
    for name, on in pairs(r.categories or {}) do
      if on == true and not seen[name] then
        seen[name] = true
        names[#names + 1] = name
      end
    end
  end
  table_sort(names)
  return flagged or #names > 0, names
end

local function finish_moderation (res)
  res.flagged, res.flagged_categories = M.flags(res)
  return res
end

local function moderate (self, submit, fname, params, async)
  params = M.params_of(self, fname, params, "input")
  if params.input == nil then field_error(fname, 1, "params.input", expected("string or list", nil)) end
  return M.perform(self, submit, {
    fname = fname, async = async, api = "json", path = "/moderations", params = M.sendable(params),
    finish = finish_moderation, on_done = params.on_done, on_error = params.on_error,
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
-- each chunk from the loop). `stream_format = "sse"` decodes the events.
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
-- to the client's own origin only.
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
  both("download", function (self, fname, async, url, opts) return download(self, submit, fname, url, opts, async) end)
end

return M
