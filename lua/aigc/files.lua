--- Files and embeddings (issue 15): the client's methods for `/files`
-- (upload, list with pagination, retrieve, content, delete) and
-- `/embeddings` (blocking and `_async`; base64 on the wire by default,
-- decoded in C into arrays of numbers, exact to float32).
--
-- The methods are installed on the client by `aigc.client` (listed below
-- as `Client:...`); the module has no functions of its own.
--
-- @module aigc.files

local core = require "aigc.core"
local media_call = require "aigc.media_call"
local reply = require "aigc.reply"
local util = require "aigc.util"
local check = require "aigc.check"
local future = require "aigc.future"
local task = require "aigc.task"

local ipairs, next, pairs, tostring, type = ipairs, next, pairs, tostring, type
local argerror, expected, field_error = util.argerror, util.expected, util.field_error
local urlencode = util.urlencode

util.own_module()

local M = {}

-- A file id as a path segment (checked: a string without controls).
local function file_path (fname, id, suffix)
  if not util.is_path_segment(id) then argerror(fname, 1, util.not_path_segment("a file id", id)) end
  return "/files/" .. urlencode(id) .. (suffix or "")
end

-- Options of an id-taking call (argument 2): call options and `to`.
local function options_of (self, fname, opts)
  if opts == nil then return {} end
  return media_call.params_of(self, fname, opts)
end

local function upload (self, submit, fname, params, async)
  params = media_call.params_of(self, fname, params)
  if params.file == nil then
    field_error(fname, 1, "params.file", expected("a path or {data =, filename =}", nil))
  end
  if type(params.purpose) ~= "string" then
    field_error(fname, 1, "params.purpose", expected("string", params.purpose))
  end
  local form, options, reader, labels = media_call.form_of(self, fname, params, { file = true })
  for i = #form, 1, -1 do   -- (a file has no model)
    if form[i].name == "model" and params.model == nil then
      table.remove(form, i)
      table.remove(labels, i)
    end
  end
  return media_call.perform(self, submit, {
    fname = fname, async = async, api = "json", path = "/files", params = options, labels = labels,
    body = { form = form, reader = reader },
    on_done = params.on_done, on_error = params.on_error,
  })
end

-- The page walks of a client's files_list loops, so that a server whose
-- cursors cycle (A, B, A: the README's `while page.next_after do` loop
-- never ended) is caught: per query (purpose, order, limit), the cursors
-- of the walk so far. A call whose `after` is the cursor the walk gave
-- last goes on with it; any other starts a walk. A walk is dropped at its
-- last page, and all of them past MAX_WALKS queries (memory stays bounded).
local MAX_WALKS = 16

-- The walk a page of `query` belongs to (`self._file_walks`).
local function walk_of (self, query)
  local walks = self._file_walks
  if not walks or walks.count >= MAX_WALKS then
    walks = { count = 0, by = {} }
    self._file_walks = walks
  end
  local sig = tostring(query.purpose) .. "\0" .. tostring(query.order) .. "\0" .. tostring(query.limit)
  local w = walks.by[sig]
  if not w or query.after == nil or w.next ~= query.after then
    if not w then walks.count = walks.count + 1 end
    w = { seen = {} }
    walks.by[sig] = w
  end
  if query.after ~= nil then w.seen[query.after] = true end
  return w, walks, sig
end

-- list: purpose, limit, after, order go in the query; res.next_after is the
-- cursor of the next page (nil on the last one). A reply whose `data` is
-- not an array of objects, or whose last file has no string id while
-- `has_more` says there is a next page, or whose next cursor is the `after`
-- it was asked with, is an error (kind "parse").
local function list (self, submit, fname, params, async)
  params = params == nil and {} or media_call.params_of(self, fname, params)
  local query, call = {}, {}
  for k, v in pairs(params) do
    if k == "purpose" or k == "limit" or k == "after" or k == "order" then query[k] = v
    elseif k ~= "on_done" and k ~= "on_error" then call[k] = v end
  end
  if next(query) then
    local q = {}
    for k, v in pairs(params.query or {}) do q[k] = v end
    for k, v in pairs(query) do q[k] = v end
    call.query = q
  end
  return media_call.perform(self, submit, {
    fname = fname, async = async, api = "get", path = "/files", params = call,
    on_done = params.on_done, on_error = params.on_error,
    finish = function (res)
      local data, why = reply.reply_objects(res, "data")
      if data and res.has_more == true and data[#data] and type(data[#data].id) ~= "string" then
        why = "the reply's data[" .. #data .. "].id (the next page's cursor): a string expected, got "
              .. reply.shape(data[#data].id)
      end
      -- (a server that ignores `after`, or repeats a cursor, gives the page
      -- asked for again: the loop `while page.next_after do` never ended)
      if not why and res.has_more == true and data[#data] and data[#data].id == query.after then
        why = "the reply's next page's cursor (data[" .. #data .. "].id) is the one sent as after ("
              .. query.after .. "): the server did not move on"
      end
      local w, walks, sig = walk_of(self, query)
      local nxt = not why and res.has_more == true and data[#data] and data[#data].id or nil
      if nxt and w.seen[nxt] then
        why = "the reply's next page's cursor (data[" .. #data .. "].id, " .. nxt
              .. ") was given before in this page loop: the server's cursors go round in a cycle"
      end
      if why or not nxt then   -- (the walk is over)
        if walks.by[sig] == w then walks.by[sig], walks.count = nil, walks.count - 1 end
      end
      if why then return nil, reply.reply_error(self, call, res, "parse", why) end
      w.next, res.next_after = nxt, nxt
      return res
    end,
  })
end

local function by_id (what)
  return function (self, submit, fname, id, opts, async)
    local path = file_path(fname, id, what == "content" and "/content" or nil)
    opts = options_of(self, fname, opts)
    local body
    if what == "delete" then body = { method = "DELETE" }
    elseif what == "content" then body = { sink = media_call.sink_of(fname, opts.to) } end
    return media_call.perform(self, submit, {
      fname = fname, async = async, api = "get", path = path, params = media_call.sendable(opts), body = body,
      on_done = opts.on_done, on_error = opts.on_error,
    })
  end
end

-- {======================================================
-- Embeddings
-- =======================================================

-- data[i] made the embedding of input i: each item's `index` says whose it
-- is, and a server need not send them in order (one that embeds a batch
-- in parallel sends each as it is done), so `data[1]` could be the second
-- input's. Items without indexes, or a single one, are left as sent;
-- indexes that are not exactly 0..n-1, each once, are an error (why): with
-- a gap (0 and 2 for 3 inputs) data[2] would have been the third input's.
local function order_by_index (data)
  local n, sorted, indexed = #data, {}, false
  for _, item in ipairs(data) do indexed = indexed or item.index ~= nil end
  if not indexed or n == 1 then return end
  for j, item in ipairs(data) do
    local i = item.index
    if type(i) ~= "number" or i < 0 or i >= n or i % 1 ~= 0 or sorted[i + 1] then
      return "the reply's data[" .. j .. "].index: one of 0.." .. (n - 1) .. " (each once) expected, got "
             .. (type(i) == "number" and tostring(i) or reply.shape(i))
    end
    sorted[i + 1] = item
  end
  for i = 1, n do data[i] = sorted[i] end
end

-- How many embeddings a request's input asks for (one per string or token
-- list; a string or a list of tokens is one), or nil when it cannot tell.
local function input_count (input)
  if type(input) == "string" then return 1 end
  if type(input) ~= "table" or input[1] == nil then return nil end
  return type(input[1]) == "number" and 1 or #input
end

-- What is wrong with an embedding (a list of numbers), or nil. JSON floats
-- cannot carry a NaN or inf (aigc's decoder refuses 1e400), so a server
-- writes a NaN as null (llama.cpp's llama-server for a degenerate input:
-- lfnovo/esperanto#119; TEI: huggingface/text-embeddings-inference#51)
-- and base64 float32 carries it as it is. (A list of lists, llama-cpp-
-- python's per-token shape, is left as sent; a string or a boolean element
-- is not a number: vec.index's add would raise on it.)
local function bad_embedding (v)
  if type(v) ~= "table" or reply.is_object(v) and next(v) ~= nil then
    return "a list of numbers expected, got " .. reply.shape(v)
  end
  if v[1] == nil then return "a list of numbers expected, got an empty list" end   -- (index:add raised on it)
  local null, huge = core.null, math.huge
  for j = 1, #v do   -- (one test a value: 2048 inputs of 1536 are 3 M values)
    local x = v[j]
    if x ~= x or x == huge or x == -huge or type(x) ~= "number" and type(x) ~= "table" then
      return "element " .. j .. " is " .. (x == null and "null" or type(x) ~= "number" and reply.shape(x)
                                           or x ~= x and "NaN" or "inf")
    end
  end
end

-- Each embedding sent as base64 (because we asked: `decode`) decoded in C.
-- A reply whose `data` is not an array of objects, whose indexes are not
-- 0..n-1, that has not one embedding per input (`want`, when known), or an
-- embedding that is not base64 or not a list of finite numbers (a null, a
-- NaN, an inf, a string), is an error (kind "parse"): not a vector that
-- raises in vec.index's add, that a NaN puts first in every top-k of a
-- store of one's own, or that stands for another input.
local function finish_embeddings (self, params, res, decode, want)
  local data, why = reply.reply_objects(res, "data")
  if data and want and #data ~= want then
    why = "the reply has " .. #data .. " embedding(s) for " .. want .. " input(s)"
  end
  why = why or order_by_index(data)
  if why then return nil, reply.reply_error(self, params, res, "parse", why) end
  for i, item in ipairs(data) do
    local v, bad = item.embedding, nil
    if type(v) == "string" and decode then v, bad = core.media.f32(v, "base64") end
    if type(v) ~= "string" then bad = bad or bad_embedding(v) end   -- (a string the caller asked for: theirs)
    if bad then return nil, reply.reply_error(self, params, res, "parse", "embedding " .. i .. ": " .. bad) end
    item.embedding = v
  end
  return res
end

local function embeddings (self, submit, fname, params, async)
  params = media_call.params_of(self, fname, params, "input")   -- (a string: the input, as moderate's)
  if params.input == nil then field_error(fname, 1, "params.input", expected("string or list", nil)) end
  local ours = params.encoding_format == nil
  local sent = media_call.sendable(params, ours and { encoding_format = "base64" } or nil)
  local model = params.model
  if model == nil then model = self.model end
  return media_call.perform(self, submit, {
    fname = fname, async = async, api = "json", path = "/embeddings", params = sent,
    finish = function (res) return finish_embeddings(self, sent, res, ours, input_count(params.input)) end,
    on_done = params.on_done, on_error = params.on_error, model = type(model) == "string" and model or nil,
  })
end

-- }======================================================

-- {======================================================
-- Uploads in parts (POST /uploads, its parts, complete, cancel)
-- =======================================================

M.PART_MAX = 64 * 1024 * 1024   -- the Uploads API's limit of one part
local PIECE = 1024 * 1024         -- what one call of a part's reader reads

-- What a path that is not a regular file is, for the message (core.file_kind's word).
local SPECIAL = { fifo = " (a FIFO)", char = " (a character device)", block = " (a block device)",
                  socket = " (a socket)" }

-- The bytes of params.file: take(max) gives at most max bytes, nil at the
-- end. A function's pieces are cut at the parts' edges.
local function source_of (file)
  if type(file) == "string" then
    -- (asked before opening it: opening a FIFO blocked the call for ever,
    -- and /dev/zero seeks to an "end" of 0 and was taken as an empty file)
    local kind = core.file_kind(file)
    if kind ~= nil and kind ~= "file" then
      return nil, media_call.io_error("params.file: " .. file .. ": not a regular file" .. (SPECIAL[kind] or ""))
    end
    local fh, why = io.open(file, "rb")
    if not fh then return nil, media_call.io_error("params.file: " .. tostring(why)) end
    -- (a directory opens on Linux, and on ext4 seeks to an "end" of 2^63 - 1:
    -- reading is what fails, with EISDIR; at the end of a file, no error)
    local size = fh:seek("end")
    local at0 = size and fh:seek("set")
    local more, rerr
    if at0 then more, rerr = fh:read(0) end
    if not size or not at0 or rerr then
      fh:close()
      return nil, media_call.io_error("params.file: " .. file .. ": not a regular file")
    end
    -- (a /proc or /sys file: the system says 0 bytes, its bytes are known
    -- by reading it; files_upload sends them, but the upload is created
    -- with its size first: it grew during the upload, once created)
    if size == 0 and more then
      fh:close()
      return nil, media_call.io_error("params.file: " .. file .. ": no size known before it is read"
        .. " (the system says 0 bytes, yet it has some: a /proc or /sys file); the Uploads API needs"
        .. " the size first: give { reader = fn, size = bytes }, or use files_upload")
    end
    -- at(offset): a take from offset on, for parts in flight together. All
    -- read the one handle opened here, each seeking to its place first (the
    -- readers run one at a time, from the loop), as the parts sent one after
    -- another read it: the file as it was when the upload began, whatever is
    -- renamed over its path meanwhile. (A handle a part, opened by name as the
    -- part began, sent a new recording renamed into place mid-upload as the
    -- rest of the old one, a mix "completed"; a file removed meanwhile failed
    -- as "shrank"; and kept to the end, 2,048 parts held 2,048 files open.)
    local function at (offset)
      local pos = offset
      return function (max)
        if fh:seek("set", pos) == nil then return nil end
        local s = fh:read(max)
        if s then pos = pos + #s end
        return s
      end
    end
    local function close () fh:close() end
    return { size = size, close = close, at = at, take = function (max) return fh:read(max) end,
             more = "params.file: " .. file .. " grew during the upload (" .. size .. " bytes when it began)",
             less = "params.file: " .. file .. " shrank during the upload (" .. size .. " bytes when it began)" }
  end
  -- (the reader's string is read from `at` on: cutting its rest off at each
  -- take copied it again, time as the square of a big string's size)
  local held, at, fn = "", 1, file.reader
  return { size = file.size, close = function () end, take = function (max)
    if at > #held then
      held, at = fn(), 1
      if held == nil or held == "" then held = "" return nil end
      if type(held) ~= "string" then error("params.file.reader returned " .. type(held) .. ", not a string", 0) end
    end
    local out = held:sub(at, at + max - 1)
    at = at + #out
    return out
  end }
end

-- The call's options (`timeout`, `headers`, `extra_query`... as the other
-- calls take them) for each of its requests: `ctx.opts`, and its `deadline`
-- as a time on aigc.now()'s clock (`ctx.at`): it is for the whole upload,
-- each request given what is left of it. `extra_body` goes to the create
-- only (the parts are multipart: its fields would be text parts there), and
-- `idempotency_key` too (given to every part, the server would take each
-- part for the first one again).
local NOT_PER_REQUEST = { on_done = true, on_error = true, on_stream_end = true, deadline = true,
                          extra_body = true, idempotency_key = true }
local function call_options_of (self, params)
  local opts = {}
  for k, reader in pairs(core.call_options) do
    if reader ~= "dialogue" and not NOT_PER_REQUEST[k] then opts[k] = params[k] end
  end
  local d = params.deadline
  if d == nil then d = self._deadline end   -- (the client's, for the whole upload too)
  if d == false then opts.deadline = false end   -- (the client's default off)
  return opts, type(d) == "number" and core.now() + d or nil
end

local function deadline_error (ctx)
  return core.error { kind = "timeout", retryable = false,
                      message = "the call's deadline (" .. ctx.deadline .. " s for the whole upload) passed" }
end

-- A JSON POST of the upload (a form: `body`) with the call's options; waits
-- (yields in a task). `last`: the cancel, sent after the deadline too.
-- `kept`: not the future's (its cancel lets it finish): the create, whose
-- reply names the upload to cancel at the server.
local function start (self, submit, ctx, path, params, body, last, kept)
  for k, v in pairs(ctx.opts) do if params[k] == nil then params[k] = v end end
  if ctx.at and not last then
    local left = ctx.at - core.now()
    if left <= 0 then return nil, deadline_error(ctx) end
    params.deadline = left
  end
  local ok, req = pcall(submit, self, "json", params, path, ctx.fname, 1, body)
  if not ok then error(req, 0) end
  if ctx.future and not last and not kept then ctx.future:track(req) end
  return req
end

local function post (self, submit, ctx, path, params, body, last, kept)
  local req, err = start(self, submit, ctx, path, params, body, last, kept)
  if not req then return nil, err end
  return req:wait()
end

-- res, an object whose id goes into paths; else an error (kind "parse").
local function with_id (self, res, what)
  if type(res) ~= "table" then res = {} end
  if type(res.id) == "string" and util.is_path_segment(res.id) then return res end
  return nil, reply.reply_error(self, {}, res, "parse", what .. " without a string id")
end

-- A part's options: the call's headers, with libcurl's multipart Content-Type
-- and Expect.
local function part_options (ctx)
  local h = { Expect = "100-continue" }   -- (`Expect = ""` of the caller's turns it off, as files_upload's)
  for k, v in pairs(ctx.opts.headers or {}) do h[k] = v end
  h["Content-Type"] = core.null
  return { headers = h }
end

-- The request of part i (bytes from `offset`, n of them), started; `st.want`
-- is what its reader has yet to give. Parts in flight together
-- (concurrency > 1, a path) read from their own handles at their offsets.
local function start_part (self, submit, ctx, src, base, offset, n)
  local st = { want = n }
  local take = ctx.concurrency > 1 and src.at(offset) or src.take
  -- (as files_upload's: libcurl writes the multipart Content-Type, and no
  -- byte is read before the server says go on, so a refusal is retried)
  local req, err = start(self, submit, ctx, base .. "/parts", part_options(ctx), { reader = function ()
    if st.want == 0 then return nil end
    local s = take(math.min(st.want, PIECE))
    st.want = st.want - #(s or "")
    return s
  end, form = { { name = "data", reader = true, filename = "part", size = n } } })
  return req, err or st
end

-- Whether err is the 400 of a complete (what: "complete") or cancel
-- ("cancel") sent again by the engine after a reply lost on the way back:
-- the first try did it, so the server says the upload "is already
-- completed" (cancelled). A call sent once is not taken for that.
local function done_before (err, what)
  local m = util.is_error(err) and err.status == 400 and type(err.retries) == "number" and err.retries > 0
            and type(err.message) == "string" and err.message:lower()
  if not m then return false end
  if what == "complete" then
    return (m:find("already complete", 1, true) or m:find("is completed", 1, true)) ~= nil
  end
  return (m:find("already cancel", 1, true) or m:find("is cancel", 1, true)) ~= nil
end

-- The upload ctx.upload, completed by a try whose reply was lost (err: the
-- retry's 400): the Uploads API has no retrieve, so its file is looked up
-- in GET /files (the purpose's newest: the name and size of this upload,
-- made since it). Returns the Upload object as complete gives it (status
-- "completed", `file`), or err, saying why, when no one file matches.
local function completed_before (self, submit, ctx, err)
  local up, q = ctx.upload, { purpose = ctx.purpose, order = "desc", limit = "100" }
  local p = {}
  for k, v in pairs(ctx.opts) do p[k] = v end
  for k, v in pairs(ctx.opts.query or {}) do if q[k] == nil then q[k] = v end end
  p.query = q
  if ctx.at then p.deadline = math.max(ctx.at - core.now(), 0.001) end
  local req = submit(self, "get", p, "/files", ctx.fname, 1)
  if ctx.future then ctx.future:track(req) end
  local page = req:wait()
  local found, n = nil, 0
  for _, f in ipairs(type(page) == "table" and type(page.data) == "table" and page.data or {}) do
    if type(f) == "table" and f.filename == ctx.filename and f.bytes == ctx.size and type(f.id) == "string"
       and (type(f.created_at) ~= "number" or type(up.created_at) ~= "number" or f.created_at >= up.created_at) then
      found, n = f, n + 1
    end
  end
  if n ~= 1 then
    local why = n == 0 and "its file was not found" or n .. " files could be its"
    err.message = tostring(err.message) .. " (sent again after a lost reply: the first try completed the upload, but "
                  .. why .. " in GET /files)"
    ctx.completed = true   -- (not to be cancelled: upload_parts)
    return nil, err
  end
  local res = {}
  for k, v in pairs(up) do res[k] = v end
  res.status, res.file = "completed", found
  return res
end

-- The parts (up to ctx.concurrency in flight, their ids kept in order),
-- then complete: the Upload object (its `file`), or nil, err. A failed part
-- leaves those in flight in ctx.flight: upload_parts cancels them.
local function send_parts (self, submit, ctx, src, base, part_size, md5)
  local ids, flight, count = {}, {}, math.ceil(src.size / part_size)
  ctx.flight = flight   -- (an error or an interrupt raised here: upload_parts cancels them)
  local sent, done = 0, 0
  while done < count do
    while sent < count and sent - done < ctx.concurrency do
      local offset = sent * part_size
      local req, st = start_part(self, submit, ctx, src, base, offset, math.min(part_size, src.size - offset))
      if not req then return nil, st end
      sent = sent + 1
      flight[sent] = { req = req, st = st }
    end
    done = done + 1
    local f = flight[done]
    flight[done] = nil
    local part, err = f.req:wait()
    if part then part, err = with_id(self, part, "a part") end
    -- (a path that shrank: said so, not "the upload's reader", never given)
    if not part and src.less and f.st.want > 0 and util.is_error(err) and err.kind == "io" then
      err = media_call.io_error(src.less)
    end
    if not part then return nil, err end
    ids[done] = part.id
  end
  -- (as an upload fed by a function: more than its size is no success)
  if (ctx.concurrency > 1 and src.at(src.size) or src.take)(1) then
    return nil, media_call.io_error(src.more or "params.file.reader gave more bytes than its size (" .. src.size .. ")")
  end
  if md5 == true then md5 = core.md5(src.md5) end   -- (the bytes sent, hashed as they went)
  -- (core.array: an empty file has no part, and an empty table is sent as {})
  local res, err = post(self, submit, ctx, base .. "/complete", { part_ids = core.array(ids), md5 = md5 })
  if not res and done_before(err, "complete") then return completed_before(self, submit, ctx, err) end
  return res, err
end

local TYPES = { jsonl = "text/jsonl", json = "application/json", txt = "text/plain", pdf = "application/pdf" }

-- The params checked (misuse raises, also for the _async form): the
-- file's name and the part size.
local function parts_params (fname, params)
  if type(params) ~= "table" then argerror(fname, 1, expected("table", params)) end
  local file = params.file
  if type(file) ~= "string" and (type(file) ~= "table" or not check.is_callable(file.reader)
     or type(file.size) ~= "number" or file.size < 0 or file.size ~= math.floor(file.size)
     or file.size == math.huge) then
    field_error(fname, 1, "params.file", expected("a path or {reader = fn, size = bytes}", file))
  end
  if type(params.purpose) ~= "string" then
    field_error(fname, 1, "params.purpose", expected("string", params.purpose))
  end
  -- (anchored: "[^/]*$" was tried from each byte to the next "/", quadratic in a long name before one)
  local name = params.filename or (type(file) == "string" and (file:match("^.*/(.*)$") or file))
  if type(name) ~= "string" or name == "" then field_error(fname, 1, "params.filename", expected("string", name)) end
  local part_size = params.part_size or M.PART_MAX
  if type(part_size) ~= "number" or part_size < 1 or part_size > M.PART_MAX or part_size ~= math.floor(part_size) then
    field_error(fname, 1, "params.part_size", expected("a whole number from 1 to " .. M.PART_MAX, part_size))
  end
  local conc = params.concurrency or 1
  if type(conc) ~= "number" or conc < 1 or conc > 16 or conc ~= math.floor(conc) then
    field_error(fname, 1, "params.concurrency", expected("a whole number from 1 to 16", conc))
  end
  -- (a reader's bytes come in order, as does their MD5: parts side by side need a path)
  if conc > 1 and (type(file) ~= "string" or params.md5 == true) then
    field_error(fname, 1, "params.concurrency", "more than 1 needs a path for params.file, and md5 not true")
  end
  return name, part_size, conc
end

-- Whether a failed create surely made no upload at the server: it answered
-- with an error status, or the connection was never made (libcurl's
-- resolve and connect failures). A timeout or a connection lost after the
-- request went is not sure: the upload may be made, its reply lost.
local NOT_SENT = { [5] = true, [6] = true, [7] = true }
local function surely_not_made (err)
  return type(err) == "table" and (type(err.status) == "number" and err.status >= 400 and err.kind ~= "connect"
                                   or err.kind == "connect" and NOT_SENT[err.curl_code] == true)
end

-- POST /uploads, retried here (not by the engine) and only when the
-- failure surely made no upload: a retry after a lost reply made a second
-- one, the first left pending at the server for an hour, its id unknown.
-- The retries and waits are the engine's (max_retries, the backoff, the
-- server's retry-after up to 120 s).
local function create (self, submit, ctx, body)
  local retries = ctx.max_retries or self._max_retries or 2
  local n = 0
  while true do
    local p = {}
    for k, v in pairs(body) do p[k] = v end
    p.max_retries = 0
    -- (not canceled with the future: a create canceled in flight may be made
    -- at the server, its id never read, the upload left there for its hour)
    local up, err = post(self, submit, ctx, "/uploads", p, nil, nil, true)
    local canceled = ctx.future and ctx.future:canceled()
    if up or n >= retries or canceled or not (util.is_error(err) and err.retryable and surely_not_made(err)) then
      if not up and util.is_error(err) and err.retryable and not surely_not_made(err) then
        err.message = tostring(err.message) .. " (the upload is not created again: it may have been made, "
                      .. "its reply lost)"
      end
      if err and util.is_error(err) then err.retries = n end
      return up, err
    end
    local wait = err.retry_after
    if type(wait) == "number" and wait > 120 then return nil, err end   -- (as the engine: not retried)
    if type(wait) ~= "number" or wait <= 0 then
      wait = math.min(0.5 * 2 ^ n, 8) * (1 - 0.25 * math.random())
    end
    if ctx.at and core.now() + wait >= ctx.at then return nil, err end
    n = n + 1
    self:sleep(wait)
  end
end

local function upload_parts (self, submit, ctx, params, name, part_size)
  local src, serr = source_of(params.file)
  if not src then return nil, serr end
  if params.md5 == true then   -- (md5 = true: the MD5 of the bytes as they are read and sent)
    local take = src.take
    src.take = function (max)
      local s = take(max)
      if s and s ~= "" then src.md5 = core.md5(src.md5, s) end
      return s
    end
  end
  local up, err = create(self, submit, ctx, { purpose = params.purpose, filename = name, bytes = src.size,
    mime_type = params.mime_type or TYPES[name:match("%.(%w+)$") or ""] or "application/octet-stream",
    expires_after = params.expires_after, extra_body = params.extra_body, idempotency_key = params.idempotency_key })
  if up then up, err = with_id(self, up, "an upload") end
  if not up then src.close() return nil, err end
  local base = "/uploads/" .. urlencode(up.id)
  ctx.upload, ctx.purpose, ctx.filename, ctx.size = up, params.purpose, name, src.size
  local ok, res, perr = true, nil, core.error { kind = "canceled", message = "the request was canceled" }
  if not (ctx.future and ctx.future:canceled()) then   -- (canceled while the create went: no part is sent)
    ok, res, perr = task.pcall(send_parts, self, submit, ctx, src, base, part_size, params.md5)
  end
  src.close()
  if ok and res then return res end
  -- Failed, canceled or interrupted (Ctrl-C): its parts would wait at the
  -- server for an hour, so the upload is cancelled there first.
  for _, f in pairs(ctx.flight or {}) do pcall(f.req.cancel, f.req) end   -- (parts still in flight)
  -- (a client closed by a reader, a server down: the cancel fails, and the
  -- error says so, not "cancelled": the upload waits there for its hour)
  if ok and ctx.completed then   -- (completed by a lost try: nothing to cancel)
    perr.upload_id = up.id
    return nil, util.scrub(self, perr)
  end
  local cok, cres, cerr = task.pcall(post, self, submit, ctx, base .. "/cancel", {}, nil, true)
  if not ok then error(res, 0) end   -- (an interrupt stays one)
  if cok and not cres and done_before(cerr, "cancel") then cres = true end   -- (its first try did it)
  if util.is_error(perr) then
    local why = not cok and tostring(cres) or cres == nil and tostring(util.is_error(cerr) and cerr.message or cerr)
    perr.upload_id = up.id
    perr.message = "upload " .. up.id .. (why and " (not cancelled at the server: " .. why:sub(1, 200) .. ")"
                                          or " (cancelled)") .. ": " .. tostring(perr.message)
  end
  return nil, util.scrub(self, perr)   -- (the id is the server's: it may echo the key)
end

local function parts_call (self, submit, fname, params)
  local name, part_size, conc = parts_params(fname, params)
  check.call(self, fname, 1, "json", params)   -- (the call options: as the other calls check them)
  local opts, at = call_options_of(self, params)
  local ctx = { fname = fname, opts = opts, at = at, deadline = params.deadline or self._deadline,
                max_retries = params.max_retries, concurrency = conc }
  local async = fname:find("_async$") ~= nil
  if not async and params.on_done == nil and params.on_error == nil then
    return upload_parts(self, submit, ctx, params, name, part_size)
  end
  local f = future.run(self._loop, function (fut)
    ctx.future = fut
    return upload_parts(self, submit, ctx, params, name, part_size)
  end, { label = fname, what = fname, on_done = params.on_done, on_error = params.on_error })
  if async then return f end
  return f:wait()
end

-- }======================================================

--- Client methods (installed on every client). Each one also has an
-- `_async` form taking the same arguments and returning an `aigc.request`;
-- each takes the call options (`timeout`, `headers`...) and `on_done` /
-- `on_error` in its params or options.
-- @section client

--- Uploads a file (`POST /files`, multipart): `file` (a path, `{ data =
-- bytes, filename = }` or `{ reader = fn, filename = [, size =] }`) and
-- `purpose`.
-- @function Client:files_upload
-- @tparam table params
-- @treturn[1] table the file object (`id`, `bytes`, `filename`...)
-- @treturn[2] nil
-- @treturn[2] aigc.error err

--- Uploads a file of any size through the Uploads API (`POST /uploads`,
-- its parts, complete): `file` (a path or `{ reader = fn, size = bytes }`),
-- `purpose`, and optional `filename`, `mime_type`, `md5` (a string sent as
-- given; `true`: computed from the bytes sent), `expires_after`,
-- `concurrency` (parts side by side, 1 to 16, a path only; 1 by default),
-- `part_size` (at most `aigc.files.PART_MAX`, 64 MB, the default), and the
-- call options (`timeout` per request, `deadline` for the whole upload,
-- `headers`, `extra_query`... on each request; `on_done` / `on_error`). A
-- failure, a cancel or Ctrl-C cancels the upload at the server. The create
-- is not sent again after a failure that may have made it (a timeout, a
-- connection lost after it went).
-- @function Client:files_upload_parts
-- @tparam table params
-- @treturn[1] table the Upload object (`status` "completed", `file` the file object)
-- @treturn[2] nil
-- @treturn[2] aigc.error err (`upload_id` once the upload was made)

--- Lists files (`GET /files`): `purpose`, `limit`, `after`, `order`;
-- `res.next_after` is the cursor of the next page (nil on the last; a
-- reply whose next cursor is the `after` it was asked with, or one the
-- same page loop was given before -- cursors in a cycle --, is an error of
-- kind "parse", so a page loop ends).
-- @function Client:files_list
-- @tparam[opt] table params
-- @treturn[1] table the page (`data`, `has_more`, `next_after`)
-- @treturn[2] nil
-- @treturn[2] aigc.error err

--- A file object (`GET /files/ID`).
-- @function Client:files_retrieve
-- @tparam string id
-- @tparam[opt] table opts call options
-- @treturn[1] table the file object
-- @treturn[2] nil
-- @treturn[2] aigc.error err

--- A file's content (`GET /files/ID/content`): `res.body`, or where
-- `opts.to` says (a path or a function called with each chunk).
-- @function Client:files_content
-- @tparam string id
-- @tparam[opt] table opts `to` and call options
-- @treturn[1] table the result (`body` or `bytes`)
-- @treturn[2] nil
-- @treturn[2] aigc.error err

--- Deletes a file (`DELETE /files/ID`).
-- @function Client:files_delete
-- @tparam string id
-- @tparam[opt] table opts call options
-- @treturn[1] table `{ id =, deleted = true }`
-- @treturn[2] nil
-- @treturn[2] aigc.error err

--- Embeddings (`POST /embeddings`): base64 on the wire unless you choose
-- an `encoding_format`, decoded in C into arrays of numbers (exact to
-- float32) in `res.data[i].embedding`, `data` in the order of its `index`.
-- @function Client:embeddings
-- @tparam table|string params the request body (a string: the input)
-- @treturn[1] table the result
-- @treturn[2] nil
-- @treturn[2] aigc.error err

--- Installs the methods on the client class.
-- @local
function M.install (Client, submit, check_self)
  local function both (name, fn)
    Client[name] = function (self, ...)
      check_self(self, name)
      return fn(self, submit, name, ...)
    end
    Client[name .. "_async"] = function (self, ...)
      check_self(self, name .. "_async")
      return fn(self, submit, name .. "_async", ...)
    end
  end
  local function one (fn)
    return function (self, s, fname, a) return fn(self, s, fname, a, fname:find("_async$") ~= nil) end
  end
  local function two (fn)
    return function (self, s, fname, a, b) return fn(self, s, fname, a, b, fname:find("_async$") ~= nil) end
  end
  both("files_upload", one(upload))
  both("files_list", one(list))
  both("files_retrieve", two(by_id("retrieve")))
  both("files_content", two(by_id("content")))
  both("files_delete", two(by_id("delete")))
  both("embeddings", one(embeddings))
  both("files_upload_parts", parts_call)
end

return M
