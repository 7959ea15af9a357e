--- The Batch API: many requests as one asynchronous job (the provider's
-- own distributed engine, at half the price). (The dataset runner's
-- "batch" backend is aigc.batch_backend.)
--
-- A batch is a JSONL file of requests (`{"custom_id", "method": "POST",
-- "url", "body"}` per line), uploaded with purpose "batch", then a job
-- (`POST /batches`) the server works through within its completion window;
-- its object counts the lines done (`request_counts`), and when it is over
-- its output file holds the answered lines and its error file the failed
-- ones, each `{custom_id, response = {status_code, request_id, body},
-- error}`.
--
--     local results, b = assert(aigc.batch.run(client, {
--       { custom_id = "fr", body = { messages = { { role = "user", content = "Capital of France?" } } } },
--     }, { on_progress = function (b) print(b.status, b.request_counts.completed) end }))
--     print(results.fr.body.choices[1].message.content)
--
-- Every function returns `nil, err` on failure (err.kind "http" with
-- `status` for a server's refusal; "batch" for a batch that ended badly;
-- "parse", naming the field, for a reply the API does not describe --
-- what a server sends never raises) and raises on misuse. Waiting polls
-- with `client:sleep`, so inside a task it yields.
--
-- **Files.** Uploads and downloads go through one pair of functions
-- (`upload`, `download`): the client's files API (`client:files_upload`,
-- `client:files_content`: issue 15) when the client has it; else a plain
-- multipart POST / GET with LuaSocket, for a plain-http server (the
-- bundled one, a local server), with the client's own headers -- a
-- stopgap until the files API is on every client.
--
-- @module aigc.batch

local check = require "aigc.check"
local core = require "aigc.core"
local task = require "aigc.task"
local util = require "aigc.util"

local json = core.json
local ipairs, pairs, pcall, tonumber, tostring, type = ipairs, pairs, pcall, tonumber, tostring, type
local table_concat = table.concat
local argerror, field_error = util.argerror, util.field_error

util.own_module()

local M = {}

-- The type of a value for a message (JSON null says "null").
local function typename (v)
  if v == core.null then return "null" end
  return util.typename(v)
end

local function expected (what, v)
  if v == core.null then return what .. " expected, got null" end
  return util.expected(what, v)
end

--- The Batch API's limits (OpenAI's): requests per batch, and bytes of
-- its input file. `create` refuses more, before uploading anything.
M.MAX_REQUESTS = 50000
M.MAX_BYTES = 200 * 1000 * 1000
--- An embeddings batch's limit: inputs across all its requests (a
-- request's `input` list counts each of its items).
M.MAX_EMBEDDING_INPUTS = 50000

--- The longest wait between two polls of `wait` without an `interval`
-- (it backs off from 1 s while the batch does not move).
M.MAX_POLL_INTERVAL = 60

--- The shortest wait between two polls: a smaller `interval` (0) is taken
-- as this one (at 0 `wait` polled with no pause, as fast as the server
-- answered: a loop hammering it).
M.MIN_POLL_INTERVAL = 0.01

--- How long past its expiry (`expires_at`, else `created_at` and its
-- `completion_window`) `wait` goes on polling a batch the server has not
-- ended (it turns "expired" itself; a clock skew is allowed for): past it,
-- `wait` gives up (kind "timeout"). A server that never ended a batch was
-- polled until Ctrl-C.
M.EXPIRY_GRACE = 3600

--- The statuses after which a batch changes no more.
M.TERMINAL = { completed = true, failed = true, expired = true, cancelled = true }

-- Every error built here from what the server sent (a batch's id, status,
-- errors, a line's body) goes through util.scrub: a server may echo the key.
local function batch_error (client, message, fields)
  local e = { kind = "batch", message = message }
  for k, v in pairs(fields or {}) do e[k] = v end
  return util.scrub(client, util.new_error(e))
end

-- A reply that is not what the API describes: kind "parse", naming the field.
local function parse_error (client, message, fields)
  local e = { kind = "parse", message = message }
  for k, v in pairs(fields or {}) do e[k] = v end
  return util.scrub(client, util.new_error(e))
end

-- {======================================================
-- Arguments and ids
-- =======================================================

-- Argument 1 of every function: a client (`loose`: for upload and
-- download, also a client-like table with a `base_url`, for the LuaSocket
-- path). `aigc.batch:retrieve(...)` (a colon) passes this module.
local function check_client (fname, client, loose)
  if util.is_a(client, "aigc.client") then return end
  if client == M then
    argerror(fname, 1, "aigc.client expected, got the aigc.batch module: call aigc.batch." .. fname
                       .. "(client, ...) with '.', not ':'")
  end
  if loose and type(client) == "table" and type(client.base_url) == "string" then return end
  argerror(fname, 1, expected("aigc.client", client))
end

-- Whether `id` can be one segment of a URL path (every byte of it is then
-- percent-encoded by `segment`).
local is_id = util.is_path_segment
local segment = util.urlencode

local not_id = util.not_path_segment

-- An id from the server (a batch's, a file's) as messages quote it: at most
-- ID_SHOWN bytes, cut at a character. A megabyte-long batch id went two or
-- three times into a message, and into every case's error of a run;
-- `err.batch_id` and the batch keep it whole.
local ID_SHOWN = 200
-- `s` at most `max` bytes (util.clip). With the client, scrubbed before the
-- cut: a key the cut split, text following, kept a piece (8 to 11 bytes)
-- that no scrub of the message finds.
local function clipped (s, max, client)
  if #s > max and client then s = util.scrubbed_text(client, s) end
  return util.clip(s, max)
end

local function shown_id (id, client)
  return clipped(tostring(id), ID_SHOWN, client)
end

local function check_id (fname, argn, id, what)
  if not is_id(id) then argerror(fname, argn, not_id(what or "batch id", id)) end
end

-- The options of create and of wait (run takes both). Another name was
-- ignored: a misspelt `completion_windw` or `timout` sent the default.
local CREATE_OPTIONS = { endpoint = true, completion_window = true, filename = true, metadata = true,
                         output_expires_after = true }
local WAIT_OPTIONS = { interval = true, timeout = true, on_progress = true }

local function check_opts (fname, argn, opts)
  if opts == nil then return {} end
  if type(opts) ~= "table" then argerror(fname, argn, expected("table", opts)) end
  for k in pairs(opts) do
    if not ((fname ~= "wait" and CREATE_OPTIONS[k]) or (fname ~= "create" and WAIT_OPTIONS[k])) then
      local known = check.likely_typo(k, fname ~= "wait" and CREATE_OPTIONS or {},
                                      fname ~= "create" and WAIT_OPTIONS or {})
      field_error(fname, argn, util.path("opts", k),
                  "unknown option" .. (known and " (did you mean " .. known .. "?)" or ""))
    end
  end
  for _, k in ipairs { "endpoint", "completion_window", "filename" } do
    if opts[k] ~= nil and type(opts[k]) ~= "string" then
      field_error(fname, argn, "opts." .. k, expected("string", opts[k]))
    end
  end
  for _, k in ipairs { "metadata", "output_expires_after" } do
    if opts[k] ~= nil and type(opts[k]) ~= "table" then
      field_error(fname, argn, "opts." .. k, expected("table", opts[k]))
    end
  end
  for _, k in ipairs { "interval", "timeout" } do
    if opts[k] ~= nil and not util.is_duration(opts[k]) then
      field_error(fname, argn, "opts." .. k, expected("number of seconds >= 0", opts[k]))
    end
  end
  if opts.on_progress ~= nil and type(opts.on_progress) ~= "function" then
    field_error(fname, argn, "opts.on_progress", expected("function", opts.on_progress))
  end
  return opts
end

-- `b`, a reply of /batches, when it is a batch object (a table with an
-- `id` usable in a path and a string `status`), else nil and a parse
-- error naming the field. (b, err) from client:request pass through.
local function checked_batch (client, b, err)
  if b == nil then return nil, err end
  if type(b) ~= "table" then
    return nil, parse_error(client, "the server's batch is not an object (got " .. typename(b) .. ")")
  end
  if not is_id(b.id) then
    return nil, parse_error(client, "the server's batch has no usable id (id: " .. not_id("batch id", b.id) .. ")",
                            { batch = b })
  end
  if type(b.status) ~= "string" then
    return nil, parse_error(client, "the server's batch " .. shown_id(b.id, client) .. " has no status (status: "
                                    .. expected("string", b.status) .. ")", { batch = b })
  end
  return b
end

-- }======================================================

-- {======================================================
-- Files: the one place bytes go up and come down
-- =======================================================

-- The client's headers for a request made outside its engine (the key
-- included: it goes to the server, never into an error).
local function client_headers (client, content_type)
  local h = {}
  for name, line in pairs(client._hlines or {}) do
    -- ("Name;": a header given "", sent empty as the engine sends it; "Name:": one aigc.null removed)
    local value = line:match("^[^:;]*;$") and "" or line:match("^[^:]*:%s*(.*)$")
    if value == "" and line:find(":", 1, true) then value = nil end
    if value and name ~= "content-type" and name ~= "expect" and name ~= "accept" then
      h[name] = value
    end
  end
  h["content-type"] = content_type
  return h
end

-- One plain HTTP request with LuaSocket: the body, or nil, err.
local function socket_request (client, method, path, body, content_type)
  local url = client.base_url .. path
  if client._query and next(client._query) then   -- (the base URL's query, `query`: as the engine sends them)
    url = url .. (path:find("?", 1, true) and "&" or "?") .. util.encode_query(client._query)
  end
  if not url:lower():find("^http://") then
    return nil, batch_error(client, "uploading or downloading a file needs the client's files API (issue 15) "
                                    .. "for an https server; this client has none")
  end
  local ok, http = pcall(require, "socket.http")
  if not ok then return nil, batch_error(client, "file transfers need LuaSocket (lua-socket) or the files API") end
  local ltn12 = require "ltn12"
  local out = {}
  local headers = client_headers(client, content_type)
  if body then headers["content-length"] = tostring(#body) end
  local _, status = http.request { url = url, method = method, headers = headers, sink = ltn12.sink.table(out),
                                   source = body and ltn12.source.string(body) or nil }
  local text = table_concat(out)
  if type(status) ~= "number" then
    return nil, util.scrub(client, util.new_error { kind = "connect", message = tostring(status) })
  end
  if status < 200 or status > 299 then
    local decoded = json.decode(text)
    local msg = type(decoded) == "table" and type(decoded.error) == "table" and decoded.error.message or text
    return nil, util.scrub(client, util.new_error { kind = "http", status = status, message = tostring(msg),
                                                    body = decoded or text })
  end
  return text
end

--- Uploads `bytes` as a file with purpose "batch": the file object.
-- @tparam aigc.client client
-- @tparam string bytes
-- @tparam[opt="batch.jsonl"] string filename
-- @treturn[1] table the file (`id`)
-- @treturn[2] nil
-- @treturn[2] aigc.error err
function M.upload (client, bytes, filename)
  check_client("upload", client, true)
  if type(bytes) ~= "string" then argerror("upload", 2, expected("string", bytes)) end
  if filename ~= nil and type(filename) ~= "string" then argerror("upload", 3, expected("string", filename)) end
  filename = filename or "batch.jsonl"
  if type(client.files_upload) == "function" then
    return client:files_upload { file = { data = bytes, filename = filename, type = "application/jsonl" },
                                 purpose = "batch" }
  end
  local boundary = "aigc-batch-" .. tostring(math.random(1, 1e9))
  local body = table_concat {
    "--", boundary, "\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n",
    "--", boundary, "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"", filename, "\"\r\n",
    "Content-Type: application/jsonl\r\n\r\n", bytes, "\r\n--", boundary, "--\r\n" }
  local text, err = socket_request(client, "POST", "/files", body, "multipart/form-data; boundary=" .. boundary)
  if not text then return nil, err end
  local file, why = json.decode(text)
  if type(file) ~= "table" then
    return nil, parse_error(client, "the server's file object is not " .. (file == nil and "JSON: " .. tostring(why)
                                    or "an object (got " .. typename(file) .. ")"), { body = text })
  end
  return file
end

--- Downloads a file's content (bytes).
-- @tparam aigc.client client
-- @tparam string file_id
-- @treturn[1] string
-- @treturn[2] nil
-- @treturn[2] aigc.error err
function M.download (client, file_id)
  check_client("download", client, true)
  check_id("download", 2, file_id, "file id")
  if type(client.files_content) == "function" then
    local res, err = client:files_content(file_id)
    if not res then return nil, err end
    if type(res.body) ~= "string" then
      return nil, parse_error(client, "file " .. shown_id(file_id, client) .. ": no content (body: "
                                      .. expected("string", res.body) .. ")")
    end
    return res.body
  end
  return socket_request(client, "GET", "/files/" .. segment(file_id) .. "/content")
end

-- }======================================================


-- {======================================================
-- Batches
-- =======================================================

local function check_requests (fname, argn, requests)
  if type(requests) ~= "table" or requests[1] == nil then
    argerror(fname, argn, expected("non-empty list of { custom_id =, body = }", requests))
  end
  local hole = util.hole_problem(requests)   -- (ipairs made a batch of the requests before it only)
  if hole then field_error(fname, argn, "requests", hole) end
  local seen = {}
  for i, r in ipairs(requests) do
    if type(r) ~= "table" then field_error(fname, argn, "requests[" .. i .. "]", expected("table", r)) end
    local id = r.custom_id
    if type(id) ~= "string" or id == "" then
      field_error(fname, argn, "requests[" .. i .. "].custom_id", expected("non-empty string", id))
    end
    if seen[id] then field_error(fname, argn, "requests[" .. i .. "].custom_id", "duplicate '" .. id .. "'") end
    seen[id] = true
    if type(r.body) ~= "table" then
      field_error(fname, argn, "requests[" .. i .. "].body", expected("table", r.body))
    end
  end
end

-- The JSONL of `requests`, checked as argument `argn` of `fname`'s.
local function jsonl (fname, argn, requests, endpoint)
  local lines = {}
  for i, r in ipairs(requests) do
    local ok, line = pcall(json.encode, { custom_id = r.custom_id, method = "POST",
                                          url = endpoint or "/v1/chat/completions", body = r.body })
    if not ok then
      util.reraise_memory(line)   -- (Lua out of memory: not a bad request)
      -- A value JSON cannot carry (a string not UTF-8...): the encoder's
      -- "bad argument #1 to 'encode' (value.custom_id: ...)" named neither
      -- the function called nor the request.
      local path, why = tostring(line):match("%(value([^:]*): (.*)%)$")
      if not path then path, why = "", tostring(line) end
      field_error(fname, argn, "requests[" .. i .. "]" .. path, why)
    end
    lines[i] = line
  end
  return table_concat(lines, "\n") .. "\n"
end

--- The JSONL of a batch: one request line per `{ custom_id =, body = }`.
-- @tparam table requests
-- @tparam[opt="/v1/chat/completions"] string endpoint
-- @treturn string
function M.jsonl (requests, endpoint)
  check_requests("jsonl", 1, requests)
  if endpoint ~= nil and type(endpoint) ~= "string" then argerror("jsonl", 2, expected("string", endpoint)) end
  return jsonl("jsonl", 1, requests, endpoint)
end

-- The inputs of an embeddings request: a string or a list of token ids
-- is one, a list of them as many.
local function embedding_inputs (body)
  local input = body.input
  if type(input) ~= "table" or type(input[1]) == "number" then return 1 end
  return #input
end

-- create, checking its arguments as `fname`'s (create, run).
local function create (fname, client, requests, opts)
  check_client(fname, client)
  check_requests(fname, 2, requests)
  opts = check_opts(fname, 3, opts)
  local lines = {}
  for i, r in ipairs(requests) do
    local body = r.body
    if body.model == nil and client.model then
      body = util.merge(body, { model = client.model })
    end
    lines[i] = { custom_id = r.custom_id, body = body }
  end
  local endpoint = opts.endpoint or "/v1/chat/completions"
  -- The Batch API's limits, checked before the upload: past them the
  -- server refuses the file or fails the batch after the upload, and a
  -- run finds out late and without saying which limit.
  if #lines > M.MAX_REQUESTS then
    return nil, batch_error(client, string.format("%d requests: a batch takes at most %d (the Batch API's limit): "
                                                  .. "send them as several batches", #lines, M.MAX_REQUESTS),
                            { code = "too_many_requests" })
  end
  if endpoint == "/v1/embeddings" then
    local n = 0
    for _, line in ipairs(lines) do n = n + embedding_inputs(line.body) end
    if n > M.MAX_EMBEDDING_INPUTS then
      return nil, batch_error(client, string.format("%d embedding inputs: an embeddings batch takes at most %d "
                                                    .. "(the Batch API's limit): send them as several batches",
                                                    n, M.MAX_EMBEDDING_INPUTS), { code = "too_many_inputs" })
    end
  end
  local text = jsonl(fname, 2, lines, endpoint)
  if #text > M.MAX_BYTES then
    return nil, batch_error(client, string.format("the batch's input file would be %d bytes: a batch takes at most "
                                                  .. "%d (the Batch API's limit): send the requests as several batches",
                                                  #text, M.MAX_BYTES), { code = "too_large" })
  end
  local file, err = M.upload(client, text, opts.filename)
  if not file then return nil, err end
  local file_id = type(file) == "table" and file.id or nil
  if not is_id(file_id) then
    return nil, parse_error(client, "the server's file object has no usable id (id: " .. not_id("file id", file_id)
                                    .. ")", { file = file })
  end
  local b, berr = checked_batch(client, client:request("POST", "/batches", { input_file_id = file_id,
    endpoint = endpoint, completion_window = opts.completion_window or "24h", metadata = opts.metadata,
    output_expires_after = opts.output_expires_after }))   -- (how long the output files stay)
  if not b and type(berr) == "table" and berr.kind == "http" then
    -- The server refused the batch: its input file is no one's now (it
    -- stayed on the server, billed as storage, one more per failed try).
    -- Best effort: the refusal is the error that counts. (Not after a lost
    -- connection or a malformed reply: the batch may exist and need it.)
    if type(client.files_delete) == "function" then pcall(client.files_delete, client, file_id)
    else pcall(socket_request, client, "DELETE", "/files/" .. segment(file_id)) end
  end
  return b, berr
end

--- Uploads the requests and creates the batch: the batch object. (When the
-- server refuses the batch, its uploaded input file is deleted.)
-- @tparam aigc.client client
-- @tparam table requests `{ custom_id =, body = }` (the body as for the endpoint; `model` defaults
-- to the client's)
-- @tparam[opt] table opts `endpoint` ("/v1/chat/completions"), `completion_window` ("24h"), `metadata`,
-- `output_expires_after` (`{ anchor = "created_at", seconds = }`)
-- @treturn[1] table the batch (`id`, `status`...)
-- @treturn[2] nil
-- @treturn[2] aigc.error err
function M.create (client, requests, opts)
  return create("create", client, requests, opts)
end

--- The batch object now.
-- @tparam aigc.client client
-- @tparam string id
-- @treturn[1] table
-- @treturn[2] nil
-- @treturn[2] aigc.error err
function M.retrieve (client, id)
  check_client("retrieve", client)
  check_id("retrieve", 2, id)
  return checked_batch(client, client:request("GET", "/batches/" .. segment(id)))
end

--- Cancels a batch (it goes "cancelling", then "cancelled" with the files
-- of the lines done).
-- @tparam aigc.client client
-- @tparam string id
-- @treturn[1] table the batch
-- @treturn[2] nil
-- @treturn[2] aigc.error err
function M.cancel (client, id)
  check_client("cancel", client)
  check_id("cancel", 2, id)
  return checked_batch(client, client:request("POST", "/batches/" .. segment(id) .. "/cancel", {}))
end

-- When batch `b` expires (epoch seconds), or nil when it does not say.
local function expiry (b)
  local function time (v) v = tonumber(v); return v and v >= 0 and v < 2 ^ 40 and v or nil end   -- (not NaN)
  local at = time(b.expires_at)
  if at then return at end
  local created, hours = time(b.created_at), type(b.completion_window) == "string"
    and tonumber(b.completion_window:match("^(%d+)h$"))
  if created and hours then return created + hours * 3600 end
end

-- The error of a client closed while a batch is waited for (by an
-- on_progress, a finalizer, another task), or nil: kind "canceled", as any
-- call's. (The next poll raised "attempt to use a closed client" instead.)
local function closed_error (client)
  local loop = rawget(client, "_loop")
  if not (type(loop) == "table" and loop.closed) then return nil end
  return util.new_error { kind = "canceled", message = "the client was closed" }
end

-- wait, checking its arguments as `fname`'s.
local function wait (fname, client, id, opts)
  check_client(fname, client)
  check_id(fname, 2, id)
  opts = check_opts(fname, 3, opts)
  local started, interval, last = core.now(), math.max(opts.interval or 1, M.MIN_POLL_INTERVAL), nil
  while true do
    local b, err = checked_batch(client, client:request("GET", "/batches/" .. segment(id)))
    if not b then return nil, err end
    if opts.on_progress then opts.on_progress(b) end
    if M.TERMINAL[b.status] then return b end
    local due = expiry(b)
    if due and os.time() > due + M.EXPIRY_GRACE then
      return nil, util.scrub(client, util.new_error { kind = "timeout", message = "batch " .. shown_id(id, client)
                               .. " still " .. shown_id(b.status, client) .. " " .. (os.time() - math.floor(due))
                               .. " s past its expiry (" .. os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(due))
                               .. "): the server does not end it", batch = b })
    end
    if opts.timeout and core.now() - started > opts.timeout then
      return nil, util.scrub(client, util.new_error { kind = "timeout", message = "batch " .. shown_id(id, client)
                               .. " still " .. shown_id(b.status, client) .. " after " .. opts.timeout .. " s",
                               batch = b })
    end
    -- Without an `interval`, polls back off while the batch does not move
    -- (1 s, 2, 4... MAX_POLL_INTERVAL), and come back to 1 s when it does:
    -- at 1 s a day-long batch cost 86,400 polls.
    local c = type(b.request_counts) == "table" and b.request_counts or {}
    local now_is = table_concat({ b.status, tostring(c.completed), tostring(c.failed), tostring(c.total) }, " ")
    if opts.interval == nil then
      interval = now_is == last and math.min(interval * 2, M.MAX_POLL_INTERVAL) or 1
    end
    last = now_is
    local pause = interval   -- (not past the timeout)
    if opts.timeout then
      pause = math.min(pause, math.max(M.MIN_POLL_INTERVAL, started + opts.timeout - core.now()))
    end
    local gone = closed_error(client)   -- (by on_progress)
    if gone then return nil, gone end
    client:sleep(pause)
    gone = closed_error(client)   -- (meanwhile: by a finalizer, another task)
    if gone then return nil, gone end
  end
end

--- Waits until a batch is over, polling every `interval` seconds.
-- @tparam aigc.client client
-- @tparam string id
-- @tparam[opt] table opts `interval` (default: 1 s, doubling up to `MAX_POLL_INTERVAL` while the
-- batch does not move; `MIN_POLL_INTERVAL` at least), `on_progress(batch)` after each poll, `timeout` (s)
-- @treturn[1] table the batch, over (see `TERMINAL`)
-- @treturn[2] nil
-- @treturn[2] aigc.error err (kind "timeout" when `timeout` passed)
function M.wait (client, id, opts)
  return wait("wait", client, id, opts)
end

-- What is wrong with a decoded line `x` of an output/error file (its
-- field and what it holds), or nil: `response` an object or null,
-- `status_code` a number, and a 2xx line's `body` an object.
local function line_fault (x, status)
  local r = x.response
  if r == nil or r == core.null then return nil end
  if type(r) ~= "table" then return "response: " .. expected("object", r) end
  if status == nil then return "response.status_code: " .. expected("number", r.status_code) end
  if status >= 200 and status < 300 and type(r.body) ~= "table" then
    return "response.body: " .. expected("object", r.body)
  end
  return nil
end

-- The custom_id a line that is not JSON names (its string, escapes and
-- all: an id with a quote or a \n was not found, and its case said the
-- batch "ended completed without this case"), or nil.
local function named_id (line)
  local _, from = line:find('"custom_id"%s*:%s*"')
  if not from then return nil end
  local i = from + 1
  while true do
    i = line:find('["\\]', i)
    if not i then return nil end
    if line:sub(i, i) == '"' then break end
    i = i + 2
  end
  local id = json.decode(line:sub(from, i))
  return type(id) == "string" and id ~= "" and id or nil
end

-- A failed line's server text (its `error`, its body: an error reply
-- such as "Incorrect API key provided: sk-...") with the client's
-- secrets replaced, as util.scrub does for errors: a server may echo the key.
local function scrub_entry (client, entry)
  local engine = rawget(client, "_engine")
  if engine == nil or util.pcall_passing_interrupts(engine.scrub, engine, entry) then   -- (in place)
    return entry
  end
  -- (not scrubbed, no memory for it: its server text is not kept; fails closed)
  return { ok = false, status_code = entry.status_code,
           error = core.error { kind = "api", message = "[text withheld: it could not be scrubbed of secrets]" } }
end

-- Puts a line's result in `into`. A custom_id on several lines (in both the
-- output and the error file, or twice in one): a line that succeeded is
-- never replaced (a reply the server gave, and billed, is not thrown away
-- for an error line naming the same case); else the first line read (the
-- output file's) stays. (The error file, read last, silently won.)
local function put (client, into, id, entry)
  local had = into[id]
  if had ~= nil and (had.ok or not entry.ok) then return end
  into[id] = entry.ok and entry or scrub_entry(client, entry)
end

-- Adds one line of a JSONL output/error file to `into`. A line the
-- server sent malformed is that line's failure (`error` a parse error);
-- one without a custom_id names no case and is skipped.
local function read_line (client, file_id, line, into)
  local x, why = json.decode(line)
  if x == nil then
    -- Not JSON (a reply's invalid UTF-8, a line cut short) but naming its
    -- custom_id: that line's failure. (Skipped, its case said the batch
    -- "ended completed without this case", though the server answered it.)
    local id = named_id(line)
    if id then
      local e = parse_error(client, "batch file " .. shown_id(file_id, client) .. ", line of custom_id '"
                            .. shown_id(id, client)
                            .. "': not JSON ("
                            .. tostring(why) .. ")", { custom_id = id })
      put(client, into, id, { ok = false, error = e })
    end
    return
  end
  if type(x) == "table" and type(x.custom_id) == "string" then
    local r = type(x.response) == "table" and x.response or {}
    local status = tonumber(r.status_code)
    local fault = line_fault(x, status)
    local ok = fault == nil and status ~= nil and status >= 200 and status < 300
               and (x.error == nil or x.error == core.null)
    local e = x.error ~= core.null and x.error or nil
    if fault then
      e = parse_error(client, "batch file " .. shown_id(file_id, client) .. ", line of custom_id '"
                      .. shown_id(x.custom_id, client)
                      .. "': " .. fault,
                      { custom_id = x.custom_id, status = status })
    end
    put(client, into, x.custom_id,
        { ok = ok, status_code = status, request_id = r.request_id, body = r.body, error = e })
  end
end

-- A sink for a file's chunks that reads each line as it completes, and
-- the function that reads a last line without its newline: an output
-- file of 50,000 replies is never held whole in memory beside its results.
local function line_sink (client, file_id, into)
  local parts, first = {}, true   -- (the pieces of the line not yet ended)
  local function line (text)
    -- A UTF-8 BOM before the first line (a file saved by an editor, a
    -- proxy's): that line was not JSON and its case had no result.
    if first then text, first = text:gsub("^\239\187\191", ""), false end
    read_line(client, file_id, text, into)
  end
  local function feed (chunk)
    local from = 1
    while true do
      local nl = chunk:find("\n", from, true)
      if not nl then break end
      parts[#parts + 1] = chunk:sub(from, nl - 1)
      line(table_concat(parts))
      parts, from = {}, nl + 1
    end
    if from <= #chunk then parts[#parts + 1] = chunk:sub(from) end
  end
  local function finish ()
    if parts[1] then line(table_concat(parts)) end
    parts = {}
  end
  return feed, finish
end

--- The results of a batch that is over: `{ [custom_id] = { ok =, status_code =, body =, error = } }`
-- from its output and error files (a line the batch never did has none; a
-- custom_id on several lines keeps the one that succeeded, else the first).
-- A failed line's `error` and body are scrubbed of the client's secrets.
-- @tparam aigc.client client
-- @tparam table batch
-- @treturn[1] table
-- @treturn[2] nil
-- @treturn[2] aigc.error err
function M.results (client, batch)
  check_client("results", client)
  if type(batch) ~= "table" then argerror("results", 2, expected("batch (table)", batch)) end
  local out = {}
  for _, field in ipairs { "output_file_id", "error_file_id" } do
    local id = batch[field]
    if id ~= nil and id ~= core.null then
      if not is_id(id) then
        return nil, parse_error(client, "the batch's " .. field .. " is not a file id (" .. field .. ": "
                                        .. not_id("file id", id) .. ")", { batch = batch })
      end
      local feed, finish = line_sink(client, id, out)
      if type(client.files_content) == "function" then   -- streamed, line by line
        local res, err = client:files_content(id, { to = feed })
        if not res then return nil, err end
      else
        local text, err = M.download(client, id)
        if not text then return nil, err end
        feed(text)
      end
      finish()
    end
  end
  return out
end

-- Why a batch ended without doing everything, from its `errors` (a
-- failed batch's: the input's faults, with their lines), or "": without
-- it every case of a failed batch said only "ended failed".
-- The server's message is quoted up to WHY_MAX bytes (cut at a character):
-- whole, a message of a megabyte went into every case's error (50,000 cases
-- of a run: 50 GB); the whole list stays in the batch's `errors`.
local WHY_MAX = 400
local function why_over (b, client)
  local list = type(b.errors) == "table" and type(b.errors.data) == "table" and b.errors.data or {}
  local first = list[1]
  if type(first) ~= "table" or type(first.message) ~= "string" then return "" end
  local message = clipped(first.message, WHY_MAX, client)
  local line = tonumber(first.line)
  if line and (line ~= math.floor(line) or line < 0 or line > 2^53) then line = nil end
  return string.format(" (%s%s%s)", line and "input line " .. string.format("%d", line) .. ": " or "",
                       message, #list > 1 and string.format("; and %d more", #list - 1) or "")
end

-- What a caller of `run` is told of batch `id` that it stopped waiting for.
local function pending (id)
  id = shown_id(id)
  return "batch " .. id .. " goes on at the server (aigc.batch.wait(client, \"" .. id .. "\") waits for it again, "
         .. "aigc.batch.cancel cancels it)"
end

-- `err` naming batch `id`: its `batch_id`, and `what` before its message.
local function named (client, err, id, what)
  if not util.is_error(err) then return err end
  err.batch_id = id
  err.message = what .. ": " .. tostring(err.message)
  return util.scrub(client, err)
end

--- Creates a batch, waits for it and reads its results.
-- @tparam aigc.client client
-- @tparam table requests
-- @tparam[opt] table opts as `create` and `wait`
-- @treturn[1] table results (see `results`)
-- @treturn[1] table the batch
-- @treturn[2] nil
-- @treturn[2] aigc.error err
function M.run (client, requests, opts)
  local b, err = create("run", client, requests, opts)
  if not b then return nil, err end
  -- From here the batch exists at the server, and goes on (billed) whatever
  -- ends this call: a poll failing for good, a timeout, Ctrl-C. The error
  -- names it (`batch_id`, and in its message) so it can be waited for again
  -- or cancelled; it said only "down" or "interrupted!", and the id was lost.
  local id = b.id
  local ok
  ok, b, err = task.pcall(wait, "run", client, id, opts)
  if not ok then
    -- (an interrupt stays one: the message still ends with "interrupted!")
    if type(b) == "string" then error(batch_error(client, pending(id) .. ": " .. b).message, 0) end
    error(named(client, b, id, pending(id)), 0)   -- (an error object: named too; any other value as it is)
  end
  if not b then return nil, named(client, err, id, pending(id)) end
  if b.status == "failed" then
    -- (with why: "batch X failed" alone sent the caller digging in err.errors)
    return nil, batch_error(client, "batch " .. shown_id(b.id, client) .. " failed" .. why_over(b, client),
                            { batch = b, errors = b.errors })
  end
  local results, rerr = nil, closed_error(client)   -- (closed by on_progress: results would raise)
  if not rerr then results, rerr = M.results(client, b) end
  if not results then
    return nil, named(client, rerr, id, "batch " .. shown_id(id, client) .. " is " .. shown_id(b.status, client)
                                        .. " (aigc.batch.results reads it again)")
  end
  return results, b
end

-- }======================================================

--- Why a batch ended without doing everything (see `run`): internal, for
-- aigc.batch_backend's messages.
M.why_over = why_over

--- A server's id as messages quote it (see `run`): internal, for
-- aigc.batch_backend's and the command's messages.
M.shown_id = shown_id

return M
