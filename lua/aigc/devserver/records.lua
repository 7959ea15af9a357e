--- aigc devserver: what the server saw -- counters, the last 200 API
-- requests, and the control endpoints /_aigc/stats, /_aigc/reset,
-- /_aigc/requests, /_aigc/last (see the devserver header, CONTROL).
-- Part of the devserver package.

local json = require "aigc.devserver.json"
local errors = require "aigc.devserver.errors"
local util = require "aigc.devserver.util"

local format, match, rep, sub = string.format, string.match, string.rep, string.sub
local O, A, NULL = json.O, json.A, json.NULL
local error_resp = errors.error_resp

local M = {}

local MAX_RECORDS = 200

local function new_stats ()
  return { requests_total = 0, open_now = 0, max_open = 0, connections_total = 0, connections_open = 0,
           max_connections_open = 0, client_closed_total = 0, idle_closed_total = 0, rate_limited_total = 0 }
end

local function stats_obj (srv)
  local s = srv.stats
  return O("requests_total", s.requests_total, "open_now", s.open_now, "max_open", s.max_open,
    "connections_total", s.connections_total, "connections_open", s.connections_open,
    "max_connections_open", s.max_connections_open, "client_closed_total", s.client_closed_total,
    "idle_closed_total", s.idle_closed_total, "rate_limited_total", s.rate_limited_total,
    "timers_active", srv.live_timers, "jobs_active", srv.live_jobs,
    "jobs_waiting", srv.ready.last - srv.ready.first + 1,
    "responses_messages_kept", srv.kept.responses and srv.kept.responses.messages or 0,
    "responses_history_read", srv.kept.responses and srv.kept.responses.read or 0)
end

local function parts_obj (parts)
  if not parts then return nil end
  local list = A()
  for i, p in ipairs(parts) do
    list[i] = O("name", p.name, "filename", p.filename or NULL, "content_type", p.content_type or NULL,
      "size", #p.data, "crc32", p.crc32 or util.crc32(p.data),
      "value", p.filename == nil and #p.data <= 4096 and p.data or nil)
    p.crc32 = list[i].crc32
  end
  return list
end

local function record_obj (r)
  return O("id", r.id, "method", r.method, "path", r.path, "query", r.query, "headers", r.headers,
    "body", r.parts and NULL or r.body, "body_bytes", #r.body, "parts", parts_obj(r.parts),
    "body_json", r.body_json == nil and NULL or r.body_json, "status", r.status or NULL,
    "stream", r.stream or false, "client_closed", r.client_closed, "fault", r.fault or NULL,
    "writes", r.writes or 0,
    "auth_header", r.auth_header or NULL, "authorization_prefix", r.authorization_prefix or NULL,
    "authorization_len", r.authorization_len or NULL,
    "authorization_ok", r.authorization_ok == nil and NULL or r.authorization_ok)
end

local function control (srv, job)
  local p, m = job.path, job.method
  local function ok (v) return { status = 200, ctype = "application/json", headers = {}, body = json.encode(v) } end
  local want = p == "/_aigc/reset" and "POST" or "GET"
  if p ~= "/_aigc/stats" and p ~= "/_aigc/reset" and p ~= "/_aigc/requests" and p ~= "/_aigc/last" then
    return error_resp(404, format("Invalid URL (%s %s)", m, p))
  end
  if m ~= want then
    return error_resp(405, format("Method %s not allowed for %s", m, p), nil, nil, "method_not_allowed",
      { { "Allow", want } })
  end
  local s = srv.stats
  if p == "/_aigc/stats" then return ok(stats_obj(srv)) end
  if p == "/_aigc/reset" then
    s.requests_total, s.connections_total, s.client_closed_total, s.idle_closed_total = 0, 0, 0, 0
    s.rate_limited_total = 0
    s.max_open, s.max_connections_open = s.open_now, s.connections_open
    srv.records, srv.fault_counts = {}, {}
    for _, hook in ipairs(srv.reset_hooks) do hook(srv) end
    srv.epoch = srv.epoch + 1
    return ok(O("ok", true))
  end
  if p == "/_aigc/last" then
    local r = srv.records[#srv.records]
    return ok(r and record_obj(r) or NULL)
  end
  local list = A()
  for i, r in ipairs(srv.records) do list[i] = record_obj(r) end
  return ok(list)
end

-- Mask a key like OpenAI does: never the whole key.
local function mask (key)
  if #key >= 12 then return sub(key, 1, 3) .. "..." .. sub(key, -4) end
  return rep("*", #key)
end

-- Whether a header's value is a credential, never kept whole in a record:
-- the client's rule (aigc.credentials.credential_header; the devserver needs no
-- aigc module): a name ending in key or token (x-api-key, X-Auth-Token,
-- Ocp-Apim-Subscription-Key), or with a word among CREDENTIAL_WORDS;
-- not Idempotency-Key nor x-aigc-*. (Names come lower-cased.)
local CREDENTIAL_WORDS = { authorization = true, authentication = true, auth = true, secret = true,
                           password = true, passwd = true, credential = true, credentials = true,
                           cookie = true, sig = true, signature = true, jwt = true, assertion = true,
                           session = true, sessionid = true }
local function credential_header (name)
  if name == "idempotency-key" or name:find("^x%-aigc%-") then return false end
  if name:find("key$") or name:find("token$") then return true end
  for word in name:gmatch("[^%-_.]+") do
    if CREDENTIAL_WORDS[word] then return true end
  end
  return false
end

local function new_record (srv, job)
  local h = {}
  for k, v in pairs(job.headers) do
    h[k] = credential_header(k) and format("<redacted len=%d>", #v) or v
  end
  local rec = { id = job.id, method = job.method, path = job.path, query = job.query, headers = h,
                body = job.body, client_closed = false, open = true }
  local auth, key = job.headers.authorization, job.headers["api-key"]
  local cred
  if auth then
    rec.auth_header = "authorization"
    local scheme, rest = match(auth, "^(%S+)%s+(.*)$")
    rec.authorization_prefix = scheme or auth
    cred = rest or ""
  elseif key then
    rec.auth_header = "api-key"
    cred = key
  end
  rec.credential = cred -- never encoded, never logged
  rec.authorization_len = cred and #cred or nil
  if srv.api_key then rec.authorization_ok = cred == srv.api_key end
  local recs = srv.records
  recs[#recs + 1] = rec
  if #recs > MAX_RECORDS then table.remove(recs, 1) end
  local s = srv.stats
  s.requests_total = s.requests_total + 1
  s.open_now = s.open_now + 1
  if s.open_now > s.max_open then s.max_open = s.open_now end
  return rec
end

M.new_stats, M.control, M.mask, M.new_record = new_stats, control, mask, new_record

return M
