--- What every media call shares (images, audio, moderation, files,
-- downloads): its params checked, the form of an upload (parts from
-- paths, bytes or a reader function), the sink a reply's bytes go to, and
-- the submit-then-finish that makes a blocking call or its `_async` form.
-- `aigc.media`, `aigc.files` and `aigc.download` build their methods on it.
--
-- @module aigc.media_call
-- @local

local core = require "aigc.core"
local check = require "aigc.check"
local future = require "aigc.future"
local task = require "aigc.task"
local reply = require "aigc.reply"
local util = require "aigc.util"

local error, ipairs, pairs, pcall, rawget, tonumber, tostring, type =
  error, ipairs, pairs, pcall, rawget, tonumber, tostring, type
local math_floor, string_format = math.floor, string.format
local table_sort = table.sort
local argerror, expected, field_error = util.argerror, util.expected, util.field_error
local null = core.null

util.own_module()

local M = {}


-- Per-call options of the media calls (never sent).
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
    -- (else the core's words, "params.sink.path", named a field the caller never wrote)
    if to:find("\0", 1, true) then field_error(fname, 1, "params.to", "contains a NUL byte") end
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
  -- (libcurl sends the type as it is: a CR or LF would add lines to the part's headers)
  if v.type ~= nil and (type(v.type) ~= "string" or v.type:find("[\r\n]")) then
    field_error(fname, 1, path .. ".type", expected("a MIME type (one line)", v.type))
  end
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
-- A list field's items (`image[]`, `timestamp_granularities[]`): one with a
-- hole is misuse, as a JSON body's is (ipairs sent what came before it only).
local function list_of (fname, k, v)
  local hole = util.hole_problem(v)
  if hole then field_error(fname, 1, util.path("params", k), hole) end
  return v
end

local function text_value (fname, path, v)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then
    if v == math_floor(v) and v >= -2 ^ 53 and v <= 2 ^ 53 then return string_format("%.0f", v) end
    -- As in a JSON body: the shortest text that reads back, with a '.'
    -- whatever the C locale (string.format writes "0,5" under de_DE).
    if v == v and v > -math.huge and v < math.huge then return core.json.encode(v) end
    -- (it went as "-nan" or "inf", text no API reads: a misuse, as in a JSON body)
    field_error(fname, 1, path, "a finite number expected, got " .. (v ~= v and "NaN" or v > 0 and "inf" or "-inf"))
  end
  if t == "boolean" then return tostring(v) end
  field_error(fname, 1, path, expected("string, number or boolean", v))
end

-- params.extra_body's fields as text parts, over the params' own (the Python SDK
-- merges it into the form's data); a table or an upload's field: refused.
local function add_extra (fname, extra, files, add)
  for k, v in pairs(extra) do
    local path = util.path("params.extra_body", k)   -- (a NUL or a control in k escaped: %q)
    if type(k) ~= "string" then
      field_error(fname, 1, "params.extra_body", "a field name must be a string, got " .. util.typename(k))
    elseif files[k] then
      field_error(fname, 1, path, "an upload: give it in params." .. k)
    elseif v ~= null then   -- (aigc.null: the field is left out of the form)
      add({ name = k, value = text_value(fname, path, v) }, path, true)
    end
  end
end

--- The multipart form of `params`: fields in `files` are uploads (a list
-- of them goes as `name[]`), the others text parts (a list as `name[]`, a
-- table as `name[key]`), then extra_body's over them; call options are
-- not sent. The model is the
-- client's unless given. Returns the form, the call options, the
-- function feeding an upload part (`{reader = fn}`), if any, and what
-- each part of the form is in the caller's params (`labels`, for
-- `perform`: the core names a part by its place in the form).
-- @local
function M.form_of (self, fname, params, files)
  local form, options, reader, label_of, order = {}, { headers = {} }, nil, {}, {}
  local function add (part, path, bare)
    form[#form + 1] = part
    label_of[part] = { path = path, bare = bare }
    order[part] = #form
  end
  local function add_file (path, name, v)
    local part, fn = file_part(fname, path, name, v)
    -- (the core names a path part's errors at send time by its field: the caller's words)
    if part.path then part.field = type(v) == "string" and path or path .. ".path" end
    if fn then
      if reader then field_error(fname, 1, path, "one upload fed by a function per call") end
      reader = function () return fn() end   -- (a callable table too)
    end
    add(part, path, type(v) == "string")
  end
  local extra = type(params.extra_body) == "table" and params.extra_body or {}
  for k, v in pairs(params) do
    if rawget(extra, k) ~= nil then   -- luacheck: ignore 542 (extra_body's is sent instead)
    elseif check.call_options[k] or k == "on_done" or k == "on_error" or OWN_OPTIONS[k] then
      -- (headers: merged below into a table of our own; never the caller's,
      -- which the Expect and Content-Type lines must not touch)
      if k ~= "on_done" and k ~= "on_error" and k ~= "headers" and not OWN_OPTIONS[k] then options[k] = v end
    elseif type(k) ~= "string" then
      field_error(fname, 1, "params", "a field name must be a string, got " .. util.typename(k))
    elseif files[k] then
      if type(v) == "table" and v[1] ~= nil then
        for i, f in ipairs(list_of(fname, k, v)) do
          add_file(util.path("params", k) .. "[" .. i .. "]", k .. "[]", f)
        end
      else
        add_file(util.path("params", k), k, v)
      end
    elseif type(v) == "table" and v[1] ~= nil then
      for i, x in ipairs(list_of(fname, k, v)) do
        local path = util.path("params", k) .. "[" .. i .. "]"
        add({ name = k .. "[]", value = text_value(fname, path, x) }, path, true)
      end
    elseif type(v) == "table" then
      for sk, x in pairs(v) do
        local path = util.path(util.path("params", k), sk)
        add({ name = k .. "[" .. tostring(sk) .. "]", value = text_value(fname, path, x) }, path, true)
      end
    elseif v ~= null then
      local path = util.path("params", k)   -- (a NUL in a field's name: shown escaped, %q)
      add({ name = k, value = text_value(fname, path, v) }, path, true)
    end
  end
  add_extra(fname, extra, files, add)
  if params.model == nil and self.model ~= nil then add({ name = "model", value = self.model }, "model", true) end
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
  -- By name (the same form whatever order pairs() gives), a list's items
  -- in their order (the first image of an edit is the one edited):
  -- table.sort is not stable, and sent a, b, c as b, a, c.
  table_sort(form, function (a, b) return a.name < b.name or a.name == b.name and order[a] < order[b] end)
  local labels = {}
  for i, part in ipairs(form) do labels[i] = label_of[part] end
  return form, options, reader, labels
end

-- A misuse the core found in a part of the form (`params.form[2].path:
-- cannot read x.png`, a NUL in a filename) named as the caller wrote it
-- (`params.image[2]: cannot read x.png`): the core only knows the form.
local function caller_names (msg, labels)
  return (msg:gsub("params%.form%[(%d+)%]%.?([%a_]*)", function (i, field)
    local l = labels[tonumber(i)]
    if l == nil then return nil end
    if field == "" or l.bare then return l.path end   -- (a bare path or a text part: the value itself)
    return l.path .. "." .. field
  end))
end

--- Submits and returns the outcome (blocking) or what stands for it
-- (`async`): the request itself when there is nothing to do after it,
-- else a future whose result is `finish(res)` and which runs the caller's
-- on_done / on_error. `s`: fname, async, api, path, params (sent), body
-- (the core's form / sink / method options), finish, on_done, on_error;
-- `labels` (a form's parts as the caller named them: `form_of`);
-- `model`, the model the call asked for (the result's `model` when the
-- reply names none and has usage: the client's usage counts it there);
-- `failed`, a table where a stream's event function leaves the error
-- (`failed.err`) it raised for: the call's error then; `partial`, a
-- function giving a failed call's `err.partial` (what its stream got).
-- @local
function M.perform (self, submit, s)
  local plain = s.finish == nil and s.on_done == nil and s.on_error == nil
  -- (not plain: its end is heard here, after the wait, with the model set)
  local ok, req, call = pcall(submit, self, s.api, s.params, s.path, s.fname, 1, s.body, not plain or nil)
  if not ok then
    if s.labels and type(req) == "string" then req = caller_names(req, s.labels) end
    error(req, 0)   -- (already located at the caller's line)
  end
  if plain then
    if s.async then return req end
    return task.await(req)
  end
  local f = future.run(self._loop, function (f)
    f:track(req)
    local res, err = req:wait()
    if type(res) == "table" and res.model == nil and res.usage ~= nil and type(s.model) == "string" then
      res.model = s.model
    end
    local hook = rawget(self, "_hook")
    if hook and call then hook.await(self, req, call, res, err) end
    if res == nil and s.failed and s.failed.err then
      local e = s.failed.err
      err = reply.reply_error(self, s.params, err or {}, e.kind, e.message)
    end
    -- (after the scrub: an image is bytes, not text to search for secrets)
    if res == nil and s.partial and type(err) == "table" and err.partial == nil then err.partial = s.partial() end
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

return M
