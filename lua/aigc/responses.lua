--- The Responses API (`POST /responses` and the stored responses): the
-- client's methods `respond`, `respond_async`, `stream_response`,
-- `get_response`, `delete_response`, `cancel_response` and
-- `response_input_items`, installed on the client class by client.lua.
--
-- The three forms are chat's: blocking, a `stream = function (text_delta,
-- event)` callback, and the iterator. A stream's typed events are merged
-- into the response in C (src/raccum.c), so a streamed call returns what
-- the blocking one does; `res.text` is the output text (the SDKs'
-- `output_text`). `response.failed` fails the call (kind "api", after the
-- callback got the event; a stored response that failed, retrieved, is
-- a result), a stream
-- that ends before `response.completed` too (kind "stream", `err.partial`
-- the response so far); `response.incomplete` is a result whose
-- `incomplete_details.reason` says why.
--
-- @module aigc.responses

local check = require "aigc.check"
local reply = require "aigc.reply"
local core = require "aigc.core"
local task = require "aigc.task"
local util = require "aigc.util"
local stream_mod = require "aigc.stream"

local ipairs, pairs, type = ipairs, pairs, type
local table_concat, table_sort = table.concat, table.sort
local argerror, expected = util.argerror, util.expected

util.own_module()

local M = {}

--- The SDKs' `output_text`: the text of every `output_text` part of the
-- response's messages, joined ("" when there is none).
-- @tparam table res a response
-- @treturn string
function M.output_text (res)
  local parts = {}
  for _, item in ipairs(type(res.output) == "table" and res.output or {}) do
    if type(item) == "table" and item.type == "message" and type(item.content) == "table" then
      for _, part in ipairs(item.content) do
        if type(part) == "table" and part.type == "output_text" and type(part.text) == "string" then
          parts[#parts + 1] = part.text
        end
      end
    end
  end
  return table_concat(parts)
end

local urlencode = util.urlencode

-- The path of a stored response: "/responses/<id>[/rest]".
local function response_path (fname, id, rest)
  if not util.is_path_segment(id) then
    argerror(fname, 1, util.not_path_segment("a response id", id))
  end
  return "/responses/" .. urlencode(id) .. (rest or "")
end

local function is_scalar (v)
  local t = type(v)
  return t == "string" or t == "number" or t == "boolean"
end

-- A query string from a table of scalars or lists of them ("" when
-- empty), keys sorted. Anything else raises: tostring would send
-- `include=table: 0x...`. A list goes as the SDKs send it
-- (openai-python's Querystring(array_format="brackets")):
-- `include%5B%5D=a&include%5B%5D=b`, i.e. `include[]=a&include[]=b`, which
-- OpenAI reads; the OpenAPI spec's form (`include=a&include=b`) is not sent:
-- for a server that reads only that one, a string value goes as `include=a`.
local function query_of (fname, argn, opts)
  if opts == nil then return "" end
  if type(opts) ~= "table" then argerror(fname, argn, expected("table", opts)) end
  local keys = {}
  for k, v in pairs(opts) do
    local path = util.path("opts", k)
    if type(k) ~= "string" or not (is_scalar(v) or type(v) == "table") then
      util.field_error(fname, argn, path, expected("string, number, boolean or a list of them", v))
    end
    if type(v) == "table" then
      local n = 0
      for _ in pairs(v) do n = n + 1 end
      for i = 1, n do
        if not is_scalar(v[i]) then
          util.field_error(fname, argn, path .. "[" .. i .. "]", expected("string, number or boolean", v[i]))
        end
      end
    end
    keys[#keys + 1] = k
  end
  table_sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = opts[k]
    if type(v) == "table" then   -- include = { "a", "b" } -> include[]=a&include[]=b (the SDKs')
      local name = urlencode(k:sub(-2) == "[]" and k or k .. "[]")
      for _, x in ipairs(v) do parts[#parts + 1] = name .. "=" .. urlencode(x) end
    else
      parts[#parts + 1] = urlencode(k) .. "=" .. urlencode(v)
    end
  end
  return #parts > 0 and ("?" .. table_concat(parts, "&")) or ""
end

M.query_of = query_of   -- (aigc.conversations' queries too)

-- The query fields of GET /responses/{id}; the rest of a resumed stream's
-- options are the per-call ones (stream, on_done, timeout, headers...).
local RETRIEVE_QUERY = { include = true, include_obfuscation = true, starting_after = true }
-- The per-call options of no use to a resumed stream (it sends no body and
-- runs no dialogue), and those the core's list lacks that it takes.
local NOT_RESUMED = { extra_body = true, schema = true, schema_mode = true, schema_name = true,
                      schema_strict = true, max_tool_rounds = true, tool_errors = true }
local RESUMED_TOO = { stream = true, api_key = true, azure_ad_token = true, cache = true }

-- A resumed stream of a background response, `GET
-- /responses/{id}?stream=true&starting_after=N` (the SDKs' retrieve with
-- stream=True): its path, its params for the core (the per-call options)
-- and the core's options: a GET, and N, after which the events go on (the
-- core checks that the first is N + 1, and takes the output of the final
-- response.completed whole: the deltas after N build only part of it).
local function resume_call (self, fname, argn, id, opts)
  local query, params = { stream = "true" }, {}
  for k, v in pairs(opts) do
    if RETRIEVE_QUERY[k] then query[k] = v
    elseif (core.call_options[k] ~= nil and not NOT_RESUMED[k]) or RESUMED_TOO[k] then params[k] = v
    elseif k ~= "response_id" then   -- (an `input` sent nowhere: the SDKs refuse it too)
      util.field_error(fname, argn, util.path(argn == 1 and "params" or "opts", k),
                       "not for a resumed stream (it sends no body: a new response is another call)")
    end
  end
  if not params.stream then params.stream = true end   -- (the reply is a stream whatever it says)
  local n = opts.starting_after
  if n ~= nil then
    if type(n) ~= "number" or n < 0 or n ~= math.floor(n) or n >= 2^53 then
      util.field_error(fname, argn, "opts.starting_after", expected("sequence number (an integer >= 0)", n))
    end
    query.starting_after = string.format("%d", n)   -- (not "3.0")
  end
  local path = response_path(fname, id) .. query_of(fname, argn, query)
  check.call(self, fname, argn, "responses", params)
  return path, params, { method = "GET", starting_after = n }
end

-- A result of a stored-response call given its text (the blocking form).
-- A stored response that failed is a result (the SDKs' retrieve returns
-- it): the core took its "error" member for the server's error.
local function with_text (res, err)
  local body = not res and err and err.kind == "api" and err.body
  if type(body) == "table" and body.object == "response" and body.status == "failed" then
    body.request_id, body.headers, body.retries = err.request_id, err.headers, err.retries
    res, err = body, nil
  end
  if res and res.object == "response" then
    res.text = M.output_text(res)
    res.output_text = res.text   -- (as the C core's results: the SDKs' name)
  end
  return res, err
end

-- client.lua's private helpers, given to `install`.
local check_self, submit, await

-- A call's params: a string is the input; checked as every call's.
local function params_of (self, params, fname)
  if type(params) == "string" then return { input = params } end
  if type(params) ~= "table" then argerror(fname, 1, expected("table or string", params)) end
  check.call(self, fname, 1, "responses", params)
  return params
end

-- Params that need the dialogue layer (a toolset, a schema).
local function layered (params)
  return params.schema ~= nil or util.is_a(params.tools, "aigc.toolset")
end

-- The methods `install` puts on the client class.
local Client = {}

--- A response (`POST /responses`). `params` is the request body (`input`
-- a string or a list of items, `instructions`, `tools`, `text`,
-- `previous_response_id`, `store`, `reasoning`... every field passes
-- through) plus chat's per-call options (`stream`, `on_done`,
-- `on_error`, `timeout`, `deadline`, `headers`...). A string is the input.
-- `stream = function (text_delta, event)` gets every event (unknown types
-- too) and the text of `response.output_text.delta` events (else nil).
-- @tparam table|string params
-- @treturn[1] table the response, with `text`, `request_id`, `headers`, `retries`
-- @treturn[2] nil
-- @treturn[2] aigc.error err
-- @usage local res = assert(client:respond { input = "Hi", instructions = "Be brief." }); print(res.text)
function Client:respond (params)
  check_self(self, "respond")
  params = params_of(self, params, "respond")
  if layered(params) then return require("aigc.dialogue").respond(self, params, "respond") end
  return await(self, submit(self, "responses", params, "/responses", "respond", nil, nil, "now"))
end

--- Starts a response without waiting: an `aigc.request` (see `chat_async`).
-- @tparam table|string params
-- @treturn aigc.request
-- @usage local req = client:respond_async { input = "Hi", on_done = function (res) print(res.text) end }
function Client:respond_async (params)
  check_self(self, "respond_async")
  if type(params) == "table" and params.response_id ~= nil then   -- a background response resumed
    local path, p, core_opts = resume_call(self, "respond_async", 1, params.response_id, params)
    return submit(self, "responses", p, path, "respond_async", 1, core_opts)
  end
  params = params_of(self, params, "respond_async")
  if layered(params) then return require("aigc.dialogue").respond_async(self, params, "respond_async") end
  return submit(self, "responses", params, "/responses", "respond_async")
end

--- Streams a response as an iterator (see `client:stream`): each step
-- gives the event's text delta ("" for events without text) and the
-- event. `s:result()` is the response at the end.
-- @tparam table|string params
-- @treturn aigc.stream
-- @usage for delta in client:stream_response { input = "Hi" } do io.write(delta) end
function Client:stream_response (params)
  check_self(self, "stream_response")
  if type(params) == "table" and params.response_id ~= nil then   -- a background response resumed
    local path, p, core_opts = resume_call(self, "stream_response", 1, params.response_id, params)
    local s, sp = stream_mod.new(self._loop, p)
    s.request = submit(self, "responses", sp, path, "stream_response", 1, core_opts)
    return s, nil, nil, s
  end
  params = params_of(self, params, "stream_response")
  if layered(params) then
    argerror("stream_response", 1,
             "a toolset or a schema needs client:respond { ..., stream = function (delta) end }")
  end
  local s, p = stream_mod.new(self._loop, params)
  s.request = submit(self, "responses", p, "/responses", "stream_response")
  return s, nil, nil, s
end

--- A stored response (`GET /responses/{id}`), with `text`; one that
-- failed too (`status` "failed", its `error`), as the SDKs' retrieve. With `stream`
-- (a function, as `respond`'s, or true) the stream of a response created
-- with `background = true`, resumed after the event `starting_after` (a
-- sequence number; none: from the start): every event after it reaches
-- the callback, and the result is the whole response.
-- @tparam string id
-- @tparam[opt] table query e.g. `{ include = { "reasoning.encrypted_content" } }`, or
-- `{ stream = function (text_delta, event) end, starting_after = n }` and per-call options
-- @treturn[1] table the response
-- @treturn[2] nil
-- @treturn[2] aigc.error err
-- @usage local res = assert(client:get_response(id))
function Client:get_response (id, query)
  check_self(self, "get_response")
  if type(query) == "table" and query.stream ~= nil and query.stream ~= false then
    local path, p, core_opts = resume_call(self, "get_response", 2, id, query)
    return await(self, submit(self, "responses", p, path, "get_response", 2, core_opts, "now"))
  end
  local path = response_path("get_response", id) .. query_of("get_response", 2, query)
  return with_text(task.await(submit(self, "get", nil, path, "get_response")))
end

--- Deletes a stored response (`DELETE /responses/{id}`).
-- @tparam string id
-- @treturn[1] table `{ id =, object = "response", deleted = true }`
-- @treturn[2] nil
-- @treturn[2] aigc.error err
-- @usage assert(client:delete_response(id))
function Client:delete_response (id)
  check_self(self, "delete_response")
  return task.await(submit(self, "delete", nil, response_path("delete_response", id), "delete_response"))
end

--- Cancels a background response (`POST /responses/{id}/cancel`).
-- @tparam string id
-- @treturn[1] table the response (status "cancelled")
-- @treturn[2] nil
-- @treturn[2] aigc.error err
-- @usage client:cancel_response(id)
function Client:cancel_response (id)
  check_self(self, "cancel_response")
  local path = response_path("cancel_response", id, "/cancel")
  return with_text(task.await(submit(self, "json", {}, path, "cancel_response")))
end

--- The input items of a stored response (`GET /responses/{id}/input_items`).
-- @tparam string id
-- @tparam[opt] table query `limit`, `order` ("asc" | "desc"), `after`, `include` (a list
-- goes as `include[]=a&include[]=b`, as the SDKs send it; a string as `include=a`)
-- @treturn[1] table `{ object = "list", data =, first_id =, last_id =, has_more = }`
-- @treturn[2] nil
-- @treturn[2] aigc.error err
-- @usage local items = assert(client:response_input_items(id, { order = "asc" })).data
function Client:response_input_items (id, query)
  check_self(self, "response_input_items")
  local path = response_path("response_input_items", id, "/input_items")
    .. query_of("response_input_items", 2, query)
  return task.await(submit(self, "get", nil, path, "response_input_items"))
end

-- The most pages response_input_items_all asks for, unless told.
local MAX_PAGES = 100

-- The cursor of the page after `page` (its last_id, else its last item's
-- id), or nil and why.
local function next_cursor (page, data)
  local c = page.last_id
  if type(c) ~= "string" then c = data[#data] and data[#data].id end
  if type(c) ~= "string" or c == "" then
    return nil, "the reply says has_more but gives no cursor (last_id, or its last item's id)"
  end
  return c
end

--- Every input item of a stored response: `response_input_items` page
-- after page, each asked `after` the last one's `last_id`, while
-- `has_more` is true. A reply that is not a list of items, that says
-- `has_more` with no cursor, or whose cursor was given before (a server
-- that ignores `after`, cursors in a cycle) is an error of kind "parse";
-- more than `max_pages` pages (100; not sent) one of kind "limit". An
-- error says so with `err.data`, the items got so far.
-- @tparam string id
-- @tparam[opt] table query `limit` (a page's size), `order`, `after` (where to start),
-- `include`, `max_pages`
-- @treturn[1] table `{ object = "list", data =, first_id =, last_id =, has_more = false, pages = }`
-- @treturn[2] nil
-- @treturn[2] aigc.error err
-- @usage for _, item in ipairs(assert(client:response_input_items_all(id, { order = "asc" })).data) do end
function Client:response_input_items_all (id, query)
  check_self(self, "response_input_items_all")
  if query ~= nil and type(query) ~= "table" then argerror("response_input_items_all", 2, expected("table", query)) end
  local q, max_pages = {}, MAX_PAGES
  for k, v in pairs(query or {}) do q[k] = v end
  if q.max_pages ~= nil then
    max_pages = q.max_pages
    if type(max_pages) ~= "number" or max_pages < 1 or max_pages ~= math.floor(max_pages) then
      util.field_error("response_input_items_all", 2, "opts.max_pages", expected("integer >= 1", max_pages))
    end
    q.max_pages = nil
  end
  -- (misuse named as this call: each page's response_input_items would name itself)
  response_path("response_input_items_all", id)
  query_of("response_input_items_all", 2, q)
  local all, seen, pages, last = {}, {}, 0, nil
  -- (err.data scrubbed too: an item may hold the key a user pasted, and
  -- every string reachable from an error is scrubbed)
  local function fail (kind, why, page)
    local err = reply.reply_error(self, q, page or {}, kind, "response_input_items_all: " .. why)
    err.data = all
    return nil, reply.scrub(self, err, q)
  end
  while true do
    if pages >= max_pages then
      return fail("limit", "more than " .. max_pages .. " pages (max_pages)", last)
    end
    local page, err = self:response_input_items(id, q)
    if not page then
      err.data = all
      return nil, reply.scrub(self, err, q)
    end
    pages, last = pages + 1, page
    local data, why = reply.reply_objects(page, "data")
    if not data then return fail("parse", why, page) end
    for _, item in ipairs(data) do all[#all + 1] = item end
    if page.has_more ~= true then break end
    local cursor, bad = next_cursor(page, data)
    if cursor and (cursor == q.after or seen[cursor]) then
      bad = "the next page's cursor (" .. cursor .. ") was given before: the server did not move on"
    end
    if bad then return fail("parse", bad, page) end
    seen[cursor], q.after = true, cursor
  end
  return { object = "list", data = all, first_id = all[1] and all[1].id or nil,
           last_id = all[#all] and all[#all].id or nil, has_more = false, pages = pages,
           request_id = last.request_id, headers = last.headers }
end

--- An `install(class, helpers)` for a module of client methods (this one,
-- aigc.conversations): it gives client.lua's private helpers (`check_self(self,
-- fname)`, `submit(self, api, params, path, fname, argn)`) to `keep`, then puts
-- `methods` on the client class.
-- @tparam table methods
-- @tparam function keep `keep(helpers)`
-- @treturn function
-- @local
function M.installer (methods, keep)
  return function (class, helpers)
    keep(helpers)
    for name, fn in pairs(methods) do class[name] = fn end
  end
end

M.install = M.installer(Client, function (h) check_self, submit, await = h.check_self, h.submit, h.await end)

return M
