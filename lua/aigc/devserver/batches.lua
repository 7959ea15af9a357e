--- aigc devserver: the Batch API -- POST /v1/batches from an uploaded JSONL
-- file (purpose "batch"), GET /v1/batches/{id}, GET /v1/batches (after,
-- limit), POST /v1/batches/{id}/cancel. Each line {custom_id, method "POST",
-- url = the batch's endpoint, body} is answered by this server's own
-- endpoint (aigc.devserver.api.call), one line per tick of --batch-delay-ms
-- (default 20) or metadata.aigc_delay_ms; a line whose body's model says
-- `fault:status=CODE` fails (partial failures). Results go to an output file
-- (2xx) and an error file (others), OpenAI's line format; statuses
-- validating -> in_progress -> finalizing -> completed, or failed (the input
-- is invalid: errors with line numbers), or cancelling -> cancelled, or
-- expired (after metadata.aigc_expire_after lines).
-- Part of the devserver package.

local uv = require "luv"
local json = require "aigc.devserver.json"
local util = require "aigc.devserver.util"
local errors = require "aigc.devserver.errors"
local files = require "aigc.devserver.files"

local format = string.format
local concat = table.concat
local O, A, NULL, RAW = json.O, json.A, json.NULL, json.RAW
local uid, url_decode = util.uid, util.url_decode
local bad_param, isnull, error_resp = errors.bad_param, errors.isnull, errors.error_resp

local M = {}

M.ENDPOINTS = { ["/v1/responses"] = true, ["/v1/chat/completions"] = true, ["/v1/embeddings"] = true,
                ["/v1/completions"] = true, ["/v1/moderations"] = true, ["/v1/images/generations"] = true }

local function store (srv)
  return srv.keep("batches", function () return { list = {}, by_id = {}, timers = {} } end, function (s)
    for t in pairs(s.timers) do if not t:is_closing() then t:close() end end
  end)
end

local function counts (b) return O("total", b.total, "completed", b.completed, "failed", b.failed) end

local function obj (b)
  return O("id", b.id, "object", "batch", "endpoint", b.endpoint, "model", b.model,
    "errors", b.errors and O("object", "list", "data", b.errors) or nil,
    "input_file_id", b.input_file_id, "completion_window", "24h", "status", b.status,
    "output_file_id", b.output_file_id, "error_file_id", b.error_file_id,
    "created_at", b.created_at, "in_progress_at", b.in_progress_at, "expires_at", b.created_at + 86400,
    "finalizing_at", b.finalizing_at, "completed_at", b.completed_at, "failed_at", b.failed_at,
    "cancelling_at", b.cancelling_at, "cancelled_at", b.cancelled_at, "expired_at", b.expired_at,
    "request_counts", counts(b),
    "usage", O("input_tokens", b.input_tokens, "input_tokens_details", O("cached_tokens", 0),
      "output_tokens", b.output_tokens, "output_tokens_details", O("reasoning_tokens", 0),
      "total_tokens", b.input_tokens + b.output_tokens),
    "metadata", b.metadata or NULL)
end

-- Parse and check the input file; returns the lines or the errors (with line numbers).
local function parse_input (data, endpoint)
  local lines, errs, seen, n = {}, A(), {}, 0
  for text in (data .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if text:match("%S") then
      local line = json.decode(text)
      local function bad (code, msg, param)
        errs[#errs + 1] = O("code", code, "message", msg, "param", param or NULL, "line", n)
      end
      if type(line) ~= "table" then bad("invalid_json_line", "This line is not valid JSON.")
      elseif type(line.custom_id) ~= "string" then bad("missing_custom_id", "Each line needs a custom_id.", "custom_id")
      elseif seen[line.custom_id] then
        bad("duplicate_custom_id", format("The custom_id '%s' is used twice.", line.custom_id), "custom_id")
      elseif line.method ~= "POST" then bad("invalid_method", "The method must be POST.", "method")
      elseif line.url ~= endpoint then
        bad("mismatched_url", format("The url must be the batch's endpoint %s.", endpoint), "url")
      elseif type(line.body) ~= "table" then bad("missing_body", "Each line needs a body object.", "body")
      else
        seen[line.custom_id] = true
        lines[#lines + 1] = line
      end
    end
  end
  if #lines == 0 and #errs == 0 then errs[1] = O("code", "empty_file", "message", "The input file has no requests.",
    "param", NULL, "line", NULL) end
  return lines, errs
end

-- Answer one line through the server's own endpoint.
local function run_line (srv, b, line, call)
  local resp = call(srv, "POST", line.url, line.body)
  local body = resp.body or (resp.object and json.encode(resp.object)) or "{}"
  local out = O("id", "batch_req_" .. uid(), "custom_id", line.custom_id,
    "response", O("status_code", resp.status, "request_id", "req_" .. uid(), "body", RAW(body)), "error", NULL)
  local u = resp.object and resp.object.usage
  if type(u) == "table" then
    b.input_tokens = b.input_tokens + (u.prompt_tokens or u.input_tokens or 0)
    b.output_tokens = b.output_tokens + (u.completion_tokens or u.output_tokens or 0)
  end
  if resp.status >= 200 and resp.status < 300 then
    b.completed = b.completed + 1
    b.out[#b.out + 1] = json.encode(out)
  else
    b.failed = b.failed + 1
    b.err[#b.err + 1] = json.encode(out)
  end
end

local function finish (srv, b)
  if #b.out > 0 then
    b.output_file_id = files.add(srv, concat(b.out, "\n") .. "\n", b.id .. "_output.jsonl", "batch_output",
      "application/jsonl").id
  end
  if #b.err > 0 then
    b.error_file_id = files.add(srv, concat(b.err, "\n") .. "\n", b.id .. "_error.jsonl", "batch_output",
      "application/jsonl").id
  end
end

-- The completion window passed (metadata.aigc_expire_after lines done):
-- the lines not done go to the error file as OpenAI's do, and the batch
-- is "expired" with the files of the lines done.
local function expire (srv, b, now)
  for i = b.next, #b.lines do
    b.err[#b.err + 1] = json.encode(O("id", "batch_req_" .. uid(), "custom_id", b.lines[i].custom_id,
      "response", NULL, "error", O("code", "batch_expired",
        "message", "This request could not be executed before the completion window expired.")))
  end
  finish(srv, b)
  b.status, b.expired_at = "expired", now
end

-- One tick of a batch's life.
local function tick (srv, b, call)
  local now = os.time()
  if b.status == "validating" then
    b.status, b.in_progress_at = "in_progress", now
  elseif b.status == "cancelling" then
    finish(srv, b)
    b.status, b.cancelled_at = "cancelled", now
  elseif b.status == "in_progress" then
    local line = b.lines[b.next]
    if line and b.expire_after and b.next > b.expire_after then
      expire(srv, b, now)
    elseif line then
      b.next = b.next + 1
      run_line(srv, b, line, call)
    else
      b.status, b.finalizing_at = "finalizing", now
    end
  elseif b.status == "finalizing" then
    finish(srv, b)
    b.status, b.completed_at = "completed", now
  end
  return b.status == "completed" or b.status == "cancelled" or b.status == "expired"
end

local function start (srv, b, delay, call)
  local s = store(srv)
  local t = uv.new_timer()
  s.timers[t] = true
  t:start(delay, delay, function ()
    if tick(srv, b, call) then s.timers[t] = nil; t:stop(); t:close() end
  end)
end

--- POST /v1/batches
function M.create (req)
  local body, srv = req.body, req.srv
  local fid, err = errors.need_string(body, "input_file_id")
  if not fid then return err end
  local endpoint = body.endpoint
  if not M.ENDPOINTS[endpoint] then
    return bad_param("endpoint", format("Invalid value for 'endpoint': '%s'.", tostring(endpoint)), "invalid_value")
  end
  if body.completion_window ~= "24h" then
    return bad_param("completion_window", "Invalid 'completion_window': only '24h' is supported.", "invalid_value")
  end
  local file = files.get(srv, fid)
  if not file then return error_resp(404, format("No such File object: %s", fid), "invalid_request_error",
    "input_file_id", NULL) end
  if file.purpose ~= "batch" then
    return bad_param("input_file_id", format("File %s has purpose '%s'; batches need purpose 'batch'.", fid,
      file.purpose), "invalid_value")
  end
  local metadata = type(body.metadata) == "table" and body.metadata or nil
  local delay = math.tointeger(tonumber(metadata and metadata.aigc_delay_ms)) or srv.batch_delay_ms or 20
  local b = { id = "batch_" .. uid(), endpoint = endpoint, input_file_id = fid, status = "validating",
              created_at = os.time(), completed = 0, failed = 0, total = 0, input_tokens = 0, output_tokens = 0,
              metadata = metadata, out = {}, err = {}, next = 1,
              expire_after = math.tointeger(tonumber(metadata and metadata.aigc_expire_after)) }
  local lines, errs = parse_input(file.data, endpoint)
  if #errs > 0 then
    b.status, b.failed_at, b.errors = "failed", os.time(), errs
  else
    b.lines, b.total = lines, #lines
    b.model = type(lines[1].body.model) == "string" and lines[1].body.model or nil
  end
  local s = store(srv)
  s.list[#s.list + 1] = b
  s.by_id[b.id] = b
  if b.status ~= "failed" then start(srv, b, math.max(1, delay), req.call) end
  return { status = 200, headers = {}, object = obj(b) }
end

local function find_batch (req)
  local id = url_decode(req.captures[1])
  local b = store(req.srv).by_id[id]
  if not b then return nil, error_resp(404, format("No batch found with id '%s'.", id), "invalid_request_error",
    "batch_id", NULL) end
  return b
end

--- GET /v1/batches/{id}
function M.retrieve (req)
  local b, err = find_batch(req)
  if not b then return err end
  return { status = 200, headers = {}, object = obj(b) }
end

--- POST /v1/batches/{id}/cancel
function M.cancel (req)
  local b, err = find_batch(req)
  if not b then return err end
  if b.status == "validating" or b.status == "in_progress" or b.status == "finalizing" then
    b.status, b.cancelling_at = "cancelling", os.time()
  elseif b.status ~= "cancelling" and b.status ~= "cancelled" then
    return error_resp(409, format("Cannot cancel a batch with status '%s'.", b.status), "invalid_request_error",
      NULL, "batch_not_cancellable")
  end
  return { status = 200, headers = {}, object = obj(b) }
end

--- GET /v1/batches?after=&limit=
function M.list (req)
  local q = req.query or {}
  local limit = math.tointeger(tonumber(q.limit or "20"))
  if not limit or limit < 1 or limit > 100 then
    return bad_param("limit", "Invalid 'limit': integer between 1 and 100 expected.", "integer_out_of_range")
  end
  local list, all = store(req.srv).list, {}
  for i = #list, 1, -1 do all[#all + 1] = list[i] end -- newest first
  local first = 1
  if not isnull(q.after) and q.after then
    first = nil
    for i, b in ipairs(all) do if b.id == q.after then first = i + 1 end end
    if not first then return error_resp(404, format("No batch found with id '%s'.", q.after)) end
  end
  local data = A()
  for i = first, math.min(#all, first + limit - 1) do data[#data + 1] = obj(all[i]) end
  return { status = 200, headers = {}, object = O("object", "list", "data", data,
    "first_id", data[1] and data[1].id or nil, "last_id", data[#data] and data[#data].id or nil,
    "has_more", first + limit - 1 < #all) }
end

M.routes = {
  { "POST", "^/v1/batches$", M.create },
  { "GET", "^/v1/batches$", M.list },
  { "GET", "^/v1/batches/([^/]+)$", M.retrieve },
  { "POST", "^/v1/batches/([^/]+)/cancel$", M.cancel, body = "none" },
}

return M
