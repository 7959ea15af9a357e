--- aigc devserver: /v1/files -- upload (multipart: file, purpose,
-- expires_after[anchor|seconds]), list (purpose, order, limit, after),
-- retrieve, content, delete; kept in memory (forgotten by /_aigc/reset).
-- The batches write their output and error files here too.
-- Part of the devserver package.

local json = require "aigc.devserver.json"
local util = require "aigc.devserver.util"
local errors = require "aigc.devserver.errors"

local format = string.format
local O, A, NULL = json.O, json.A, json.NULL
local uid, url_decode = util.uid, util.url_decode
local bad_param, isnull, error_resp = errors.bad_param, errors.isnull, errors.error_resp

local M = {}

M.PURPOSES = { assistants = true, batch = true, ["fine-tune"] = true, vision = true, user_data = true, evals = true }

local function store (srv)
  return srv.keep("files", function () return { list = {}, by_id = {} } end)
end

--- Keep a file; returns its record {id, bytes = data, filename, purpose, created_at, ctype}.
function M.add (srv, data, filename, purpose, ctype, expires_at)
  local s = store(srv)
  local f = { id = "file-" .. uid(), data = data, filename = filename, purpose = purpose, created_at = os.time(),
              ctype = ctype or "application/octet-stream", expires_at = expires_at }
  s.list[#s.list + 1] = f
  s.by_id[f.id] = f
  return f
end

--- The file with id, or nil.
function M.get (srv, id) return store(srv).by_id[id] end

function M.obj (f)
  return O("id", f.id, "object", "file", "bytes", #f.data, "created_at", f.created_at, "expires_at", f.expires_at,
    "filename", f.filename, "purpose", f.purpose, "status", "processed")
end

local function not_found (id)
  return error_resp(404, format("No such File object: %s", id), "invalid_request_error", "id", NULL)
end

--- POST /v1/files
function M.upload (req)
  local form, body = req.form, req.body
  local file = form.files.file
  if not file then return bad_param("file", "Missing required parameter: 'file'.", "missing_required_parameter") end
  local purpose = body.purpose
  if isnull(purpose) then
    return bad_param("purpose", "Missing required parameter: 'purpose'.", "missing_required_parameter")
  end
  if not M.PURPOSES[purpose] then
    return bad_param("purpose", format("Invalid value for 'purpose': '%s'. Expected one of assistants, batch, "
      .. "fine-tune, vision, user_data, evals.", purpose), "invalid_value")
  end
  local expires_at
  local seconds = tonumber(body["expires_after[seconds]"])
  if seconds then
    if seconds < 3600 or seconds > 2592000 then
      return bad_param("expires_after", "Invalid 'expires_after[seconds]': between 3600 and 2592000.",
        "integer_out_of_range")
    end
    expires_at = os.time() + math.floor(seconds)
  end
  local f = M.add(req.srv, file.data, file.filename or "upload", purpose, file.content_type, expires_at)
  return { status = 200, headers = {}, object = M.obj(f) }
end

--- GET /v1/files?purpose=&order=&limit=&after=
function M.list (req)
  local q = req.query or {}
  local limit = math.tointeger(tonumber(q.limit or "10000"))
  if not limit or limit < 1 or limit > 10000 then
    return bad_param("limit", "Invalid 'limit': integer between 1 and 10000 expected.", "integer_out_of_range")
  end
  local order = q.order or "desc"
  if order ~= "asc" and order ~= "desc" then
    return bad_param("order", "Invalid 'order': expected 'asc' or 'desc'.", "invalid_value")
  end
  local all, list = {}, store(req.srv).list
  for i = 1, #list do
    local f = order == "asc" and list[i] or list[#list - i + 1]
    if not q.purpose or f.purpose == q.purpose then all[#all + 1] = f end
  end
  local start = 1
  if q.after then
    start = nil
    for i, f in ipairs(all) do if f.id == q.after then start = i + 1 end end
    if not start then return not_found(q.after) end
  end
  local data = A()
  for i = start, math.min(#all, start + limit - 1) do data[#data + 1] = M.obj(all[i]) end
  return { status = 200, headers = {}, object = O("object", "list", "data", data,
    "first_id", data[1] and data[1].id or NULL, "last_id", data[#data] and data[#data].id or NULL,
    "has_more", start + limit - 1 < #all) }
end

local function find_file (req)
  local id = url_decode(req.captures[1])
  local f = M.get(req.srv, id)
  if not f then return nil, not_found(id) end
  return f
end

--- GET /v1/files/{id}
function M.retrieve (req)
  local f, err = find_file(req)
  if not f then return err end
  return { status = 200, headers = {}, object = M.obj(f) }
end

--- GET /v1/files/{id}/content
function M.content (req)
  local f, err = find_file(req)
  if not f then return err end
  local name = f.filename:gsub('[%c"\\]', "_") -- never a header injection
  return { status = 200, headers = { { "Content-Disposition", format('attachment; filename="%s"', name) } },
           ctype = f.ctype, body = f.data }
end

--- DELETE /v1/files/{id}
function M.delete (req)
  local f, err = find_file(req)
  if not f then return err end
  local s = store(req.srv)
  s.by_id[f.id] = nil
  for i, x in ipairs(s.list) do if x == f then table.remove(s.list, i); break end end
  return { status = 200, headers = {}, object = O("id", f.id, "object", "file", "deleted", true) }
end

-- {======================================================
-- Uploads in parts: POST /v1/uploads, /v1/uploads/{id}/parts (multipart
-- `data`, at most 64 MB), /complete (part_ids in order: the file is their
-- bytes in that order, which must be the upload's `bytes`; `md5` is taken,
-- not checked), /cancel. Kept in memory with the files.
-- =======================================================

local PART_MAX, UPLOAD_MAX = 64 * 1024 * 1024, 8 * 1024 * 1024 * 1024

local function uploads (srv)
  return srv.keep("uploads", function () return {} end)
end

local function upload_obj (u)
  return O("id", u.id, "object", "upload", "bytes", u.bytes, "created_at", u.created_at, "filename", u.filename,
    "purpose", u.purpose, "status", u.status, "expires_at", u.created_at + 3600,
    "file", u.file and M.obj(u.file) or NULL)
end

--- POST /v1/uploads
function M.upload_create (req)
  local b = req.body
  for _, k in ipairs { "filename", "purpose", "mime_type" } do
    if type(b[k]) ~= "string" then
      return bad_param(k, format("Missing required parameter: '%s'.", k), "missing_required_parameter")
    end
  end
  if not M.PURPOSES[b.purpose] then return bad_param("purpose", "Invalid value for 'purpose'.", "invalid_value") end
  if type(b.bytes) ~= "number" or b.bytes % 1 ~= 0 or b.bytes < 0 or b.bytes > UPLOAD_MAX then
    return bad_param("bytes", "Invalid 'bytes': an integer from 0 to 8 GB expected.", "invalid_value")
  end
  local u = { id = "upload_" .. uid(), bytes = math.floor(b.bytes), filename = b.filename, purpose = b.purpose,
              mime_type = b.mime_type, status = "pending", created_at = os.time(), parts = {} }
  uploads(req.srv)[u.id] = u
  return { status = 200, headers = {}, object = upload_obj(u) }
end

-- The pending upload the path names, or nil and the error response.
local function pending_upload (req)
  local id = url_decode(req.captures[1])
  local u = uploads(req.srv)[id]
  if not u then return nil, error_resp(404, format("No such Upload object: %s", id), "invalid_request_error", "id") end
  if u.status ~= "pending" then
    return nil, error_resp(400, format("Upload %s is %s.", id, u.status), "invalid_request_error", NULL)
  end
  return u
end

--- POST /v1/uploads/{id}/parts
function M.upload_part (req)
  local u, err = pending_upload(req)
  if not u then return err end
  local data = req.form.files.data or req.form.values.data and { data = req.form.values.data }
  if not data then return bad_param("data", "Missing required parameter: 'data'.", "missing_required_parameter") end
  if #data.data > PART_MAX then return bad_param("data", "A part is at most 64 MB.", "invalid_value") end
  local part = { id = "part_" .. uid(), data = data.data }
  u.parts[part.id] = part
  return { status = 200, headers = {}, object = O("id", part.id, "object", "upload.part", "created_at", os.time(),
    "upload_id", u.id) }
end

--- POST /v1/uploads/{id}/complete
function M.upload_complete (req)
  local u, err = pending_upload(req)
  if not u then return err end
  local ids = req.body.part_ids
  if type(ids) ~= "table" then
    return bad_param("part_ids", "Missing required parameter: 'part_ids'.", "missing_required_parameter")
  end
  -- (cjson decodes [] and {} alike: the body says which it was)
  if not string.find(req.job.body, '"part_ids"%s*:%s*%[') then
    return bad_param("part_ids", "Invalid type for 'part_ids': expected an array.", "invalid_type")
  end
  local pieces, seen = {}, {}
  for i = 1, #ids do
    local part = u.parts[ids[i]]
    if not part or seen[part] then
      return bad_param("part_ids", format("Invalid part id: %s.", tostring(ids[i])), "invalid_value")
    end
    seen[part], pieces[i] = true, part.data
  end
  local data = table.concat(pieces)
  if #data ~= u.bytes then
    return bad_param("part_ids", format("The parts hold %d bytes, the upload was created with %d.", #data, u.bytes),
      "invalid_value")
  end
  u.status, u.parts = "completed", {}
  u.file = M.add(req.srv, data, u.filename, u.purpose, u.mime_type)
  return { status = 200, headers = {}, object = upload_obj(u) }
end

--- POST /v1/uploads/{id}/cancel
function M.upload_cancel (req)
  local u, err = pending_upload(req)
  if not u then return err end
  u.status, u.parts = "cancelled", {}
  return { status = 200, headers = {}, object = upload_obj(u) }
end

-- }======================================================

M.routes = {
  { "POST", "^/v1/uploads$", M.upload_create },
  { "POST", "^/v1/uploads/([^/]+)/parts$", M.upload_part, body = "multipart" },
  { "POST", "^/v1/uploads/([^/]+)/complete$", M.upload_complete },
  { "POST", "^/v1/uploads/([^/]+)/cancel$", M.upload_cancel, body = "none" },
  { "POST", "^/v1/files$", M.upload, body = "multipart" },
  { "GET", "^/v1/files$", M.list },
  { "GET", "^/v1/files/([^/]+)$", M.retrieve },
  { "DELETE", "^/v1/files/([^/]+)$", M.delete },
  { "GET", "^/v1/files/([^/]+)/content$", M.content },
}

return M
