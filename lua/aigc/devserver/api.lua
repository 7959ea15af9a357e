--- aigc devserver: routing. One table of routes (method, path pattern,
-- handler, how the body is read); authentication (--api-key), the body
-- (JSON or multipart/form-data), the fault spec of the request, then the
-- handler, then the faults that change a 200 reply. Control requests
-- (/_aigc/...) go to aigc.devserver.records. Part of the devserver package.
--
-- A handler gets `req` = {srv =, job =, rec =, body = (decoded JSON, or the
-- form's text fields), form = (multipart: {parts =, fields = name -> list}),
-- model =, fault =, captures = (the pattern's), query =, tokenizer =} and
-- returns a response {status =, headers = {{name, value}...}, ctype =,
-- object = (encoded here) | body = string | events = SSE list | chunks = binary
-- list, tokens = (for the rate-limit headers)}.

local json = require "aigc.devserver.json"
local util = require "aigc.devserver.util"
local errors = require "aigc.devserver.errors"
local faults = require "aigc.devserver.faults"
local records = require "aigc.devserver.records"
local multipart = require "aigc.devserver.multipart"
local chat = require "aigc.devserver.chat"
local completions = require "aigc.devserver.completions"
local embeddings = require "aigc.devserver.embeddings"
local responses = require "aigc.devserver.responses"
local images = require "aigc.devserver.images"
local speech = require "aigc.devserver.speech"
local transcribe = require "aigc.devserver.transcribe"
local moderations = require "aigc.devserver.moderations"
local files = require "aigc.devserver.files"
local ratelimit = require "aigc.devserver.ratelimit"
local batches = require "aigc.devserver.batches"
local conversations = require "aigc.devserver.conversations"

local find, format, lower, match, sub = string.find, string.format, string.lower, string.match, string.sub
local concat = table.concat
local url_decode = util.url_decode
local error_resp, bad_param, isnull = errors.error_resp, errors.bad_param, errors.isnull

local M = { DEFAULT_MODEL = "aigc-dev" }

-- { method, pattern, handler, body = "json" | "multipart" | "none", azure = true (model = capture 1) }
local ROUTES = {
  { "POST", "^/v1/chat/completions$", chat.chat },
  { "POST", "^/v1/completions$", completions.completions },
  { "POST", "^/v1/embeddings$", embeddings.embeddings },
  { "GET", "^/v1/models$", embeddings.models },
  { "GET", "^/v1/models/(.+)$", embeddings.model },
  { "POST", "^/openai/deployments/([^/]+)/chat/completions$", chat.chat, azure = true },
  { "POST", "^/openai/deployments/([^/]+)/completions$", completions.completions, azure = true },
  { "POST", "^/openai/deployments/([^/]+)/embeddings$", embeddings.embeddings, azure = true },
}
for _, m in ipairs { responses, images, speech, transcribe, moderations, files, batches, conversations } do
  for _, r in ipairs(m.routes) do ROUTES[#ROUTES + 1] = r end
end

--- Add routes (the endpoint modules of later stages register here).
function M.add_routes (list)
  for _, r in ipairs(list) do ROUTES[#ROUTES + 1] = r end
end

-- The route for method and path; or nil and the methods the path allows.
local function route (method, path)
  local allowed = {}
  for _, r in ipairs(ROUTES) do
    local caps = { match(path, r[2]) }
    if caps[1] ~= nil then
      if r[1] == method then return r, caps end
      allowed[#allowed + 1] = r[1]
    end
  end
  return nil, allowed
end

local function check_auth (srv, rec)
  if not srv.api_key then return nil end
  local cred = rec.credential
  local bearer = rec.auth_header ~= "authorization" or lower(rec.authorization_prefix) == "bearer"
  if not cred or cred == "" or not bearer then
    return error_resp(401, "You didn't provide an API key. You need to provide your API key in an Authorization "
      .. "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).", "invalid_request_error", nil,
      "invalid_api_key")
  elseif cred ~= srv.api_key then
    return error_resp(401, format("Incorrect API key provided: %s. You can find your API key at "
      .. "https://platform.openai.com/account/api-keys.", records.mask(cred)), "invalid_request_error", nil,
      "invalid_api_key")
  end
  return nil
end

local BAD_JSON = "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
  .. "your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)"

-- Read the body as the route says; fills req.body (and req.form). Returns an
-- error response when it cannot be read (applied after `status=` faults).
local function read_body (req, r)
  local job, rec = req.job, req.rec
  local kind = r.body or (r[1] == "POST" and "json" or "none")
  if kind == "none" then req.body = {}; return nil end
  if kind == "multipart" then
    local form, err = multipart.parse(job.headers["content-type"], job.body)
    if not form then req.body = {}; return bad_param(nil, err, "invalid_multipart") end
    req.form, req.body, rec.parts = form, form.values, form.parts
    return nil
  end
  local decoded = json.decode(job.body)
  rec.body_json = decoded
  if type(decoded) ~= "table" or not find(job.body, "^%s*{") then req.body = {}; return error_resp(400, BAD_JSON) end
  req.body = decoded
  return nil
end

-- The model: Azure's deployment, else the body's `model` (a string).
local function read_model (req, r)
  if r.azure then req.model = url_decode(req.captures[1]); return nil end
  local m = req.body.model
  if isnull(m) then return nil end
  if type(m) ~= "string" then
    return bad_param("model", "Invalid type for 'model': expected a string.", "invalid_type")
  end
  req.model = m
  return nil
end

-- The fault of the request: the model's `fault:` spec, then the header's.
-- Returns the fault table ({} when none applies) or nil and an error response.
local function read_fault (srv, req)
  local specs, model, job, rec = {}, req.model, req.job, req.rec
  if type(model) == "string" and sub(model, 1, 6) == "fault:" then specs[#specs + 1] = sub(model, 7) end
  if job.headers["x-aigc-fault"] then specs[#specs + 1] = job.headers["x-aigc-fault"] end
  if #specs == 0 then return {} end
  local spec = concat(specs, ",")
  local f, ferr = faults.parse(spec)
  if not f then return nil, error_resp(400, ferr, "invalid_request_error", "x-aigc-fault", "invalid_fault") end
  local fault, applies = {}, true
  if f.times or f.skip then
    local key = f.key or spec
    local c = (srv.fault_counts[key] or 0) + 1
    local skip = f.skip or 0
    srv.fault_counts[key] = c
    applies = c > skip and (not f.times or c <= skip + f.times)
  end
  if applies then fault = f; rec.fault = spec end
  fault.echo_value = rec.credential or ""
  return fault
end

-- The faults that change a 200 reply, and the encoding of its object.
local function finish_reply (resp, fault)
  if resp.status ~= 200 then return resp end
  if fault.status then resp.status = fault.status end
  for _, h in ipairs(faults.headers(fault)) do resp.headers[#resp.headers + 1] = h end
  if fault.body then faults.body(resp, fault)
  elseif resp.object then resp.body = json.encode(resp.object) end
  resp.ctype = resp.ctype or (resp.events and "text/event-stream" or "application/json")
  return resp
end

-- Route an API request; returns the response and the fault applied (or {}).
local function api (srv, job)
  local rec = job.rec
  local r, caps = route(job.method, job.path)
  local err = (r or #caps > 0) and check_auth(srv, rec)
  if err then return err, {} end
  if not r and #caps == 0 then return error_resp(404, format("Invalid URL (%s %s)", job.method, job.path)), {} end
  if not r then
    return error_resp(405, format("Invalid method for URL (%s %s)", job.method, job.path), nil, nil,
      "method_not_allowed", { { "Allow", concat(caps, ", ") } }), {}
  end
  local req = { srv = srv, job = job, rec = rec, captures = caps, query = job.query, tokenizer = srv.tokenizer }
  local body_err = read_body(req, r)
  if not body_err then body_err = read_model(req, r) end
  rec.stream = req.body.stream == true or req.body.stream == "true"
  local fault, ferr = read_fault(srv, req)
  if not fault then return ferr, {} end
  local limiter, limit_headers = ratelimit.for_request(srv, fault), nil
  if limiter then
    local limited
    limit_headers, limited = ratelimit.admit(limiter, ratelimit.estimate(job.body, req.body),
      req.model or M.DEFAULT_MODEL)
    if limited then
      srv.stats.rate_limited_total = srv.stats.rate_limited_total + 1
      return limited, fault
    end
  end
  local resp
  if fault.status and fault.status >= 400 then resp = faults.status(fault)
  elseif body_err then resp = body_err
  else
    req.model, req.fault, req.call = req.model or M.DEFAULT_MODEL, fault, M.call
    if fault.tokenizer then req.tokenizer = fault.tokenizer end
    resp = finish_reply(r[3](req), fault)
  end
  resp.ratelimit = resp.ratelimit or limit_headers
  return resp, fault
end

--- Answer a request made inside the server (a batch's line): no socket, no
-- record, no auth, no rate limit; the model's `fault:` spec applies (its
-- status= and body faults; wire faults have no wire here). Returns the response.
function M.call (srv, method, path, body)
  local r, caps = route(method, path)
  if not r then return error_resp(404, format("Invalid URL (%s %s)", method, path)) end
  local job = { headers = {}, query = {}, body = json.encode(body), method = method, path = path }
  local req = { srv = srv, job = job, rec = {}, captures = caps, query = {}, tokenizer = srv.tokenizer, body = body,
                call = M.call }
  local err = read_model(req, r)
  if err then return err end
  local fault, ferr = read_fault(srv, req)
  if not fault then return ferr end
  if fault.status and fault.status >= 400 then return faults.status(fault) end
  req.model, req.fault = req.model or M.DEFAULT_MODEL, fault
  if fault.tokenizer then req.tokenizer = fault.tokenizer end
  return finish_reply(r[3](req), fault)
end

--- Answer a job: a control request or an API request. Returns the response
-- and the fault applied ({} when none).
function M.dispatch (srv, job)
  if not job.rec then
    local blob = match(job.path, "^/_aigc/files/([^/]+)$")
    if blob and job.method == "GET" then return images.serve_blob(srv, blob), {} end
    return records.control(srv, job), {}
  end
  return api(srv, job)
end

return M
