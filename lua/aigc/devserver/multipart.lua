--- aigc devserver: multipart/form-data bodies (RFC 7578), as OpenAI's upload
-- endpoints take them (files, images, audio). Strict enough to catch a
-- client that frames them wrong: a missing or unquoted boundary, a part
-- without `Content-Disposition: form-data; name=`, a body that does not end
-- with the closing delimiter -- each is an error naming what is wrong.
-- Part of the devserver package.

local trim = require("aigc.devserver.util").trim

local find, lower, match, sub = string.find, string.lower, string.match, string.sub

local M = {}

-- A header parameter (`name="x"` or `name=x`) of a header value.
local function param (value, key)
  local q = match(value, ";%s*" .. key .. "%s*=%s*\"(.-)\"")
  if q then return (q:gsub('\\(.)', "%1")) end
  return match(value, ";%s*" .. key .. "%s*=%s*([^;%s]+)")
end

-- The headers of one part: lower-case names -> values.
local function part_headers (head)
  local h = {}
  for line in (head .. "\r\n"):gmatch("(.-)\r\n") do
    -- (the value trimmed in loops: "(.-)%s*$" was quadratic in a run of spaces)
    local k, v = match(line, "^([^:]+):(.*)$")
    if k then h[lower(k)] = trim(v) elseif line ~= "" then return nil, "malformed part header: " .. line:sub(1, 60) end
  end
  return h
end

local function parse_part (raw_part, index)
  local hend = find(raw_part, "\r\n\r\n", 1, true)
  local head, data
  if hend then head, data = sub(raw_part, 1, hend - 1), sub(raw_part, hend + 4)
  elseif sub(raw_part, 1, 2) == "\r\n" then head, data = "", sub(raw_part, 3)
  else return nil, ("part %d has no blank line after its headers"):format(index) end
  local h, herr = part_headers(head)
  if not h then return nil, herr end
  local disp = h["content-disposition"]
  if not disp or not find(lower(disp), "^%s*form%-data") then
    return nil, ("part %d has no Content-Disposition: form-data"):format(index)
  end
  local name = param(disp, "name")
  if not name then return nil, ("part %d has no name"):format(index) end
  return { name = name, filename = param(disp, "filename"), content_type = h["content-type"], data = data,
           headers = h }
end

--- Parse a body. Returns {parts = list, fields = name -> list of parts,
-- values = name -> the first text (non-file) value, files = name -> the first
-- file part} or nil and a message.
-- @usage local form, err = multipart.parse(headers["content-type"], body)
function M.parse (content_type, body)
  if not content_type or not find(lower(content_type), "^%s*multipart/form%-data") then
    return nil, "Expected a multipart/form-data body (Content-Type: " .. tostring(content_type) .. ")."
  end
  local boundary = param(content_type, "boundary")
  if not boundary or boundary == "" or #boundary > 200 then
    return nil, "The multipart/form-data Content-Type has no boundary."
  end
  local delim = "--" .. boundary
  local s, e = find(body, delim, 1, true)
  if not s or (s > 1 and sub(body, s - 2, s - 1) ~= "\r\n") then
    return nil, "The multipart body does not start with its boundary."
  end
  local form = { parts = {}, fields = {}, values = {}, files = {} }
  local pos = e + 1
  while true do
    if sub(body, pos, pos + 1) == "--" then break end -- the closing delimiter
    if sub(body, pos, pos + 1) ~= "\r\n" then return nil, "Malformed multipart boundary line." end
    local ns = find(body, "\r\n" .. delim, pos, true)
    if not ns then return nil, "The multipart body ends before its closing boundary." end
    local part, perr = parse_part(sub(body, pos + 2, ns - 1), #form.parts + 1)
    if not part then return nil, perr end
    form.parts[#form.parts + 1] = part
    local list = form.fields[part.name] or {}
    list[#list + 1] = part
    form.fields[part.name] = list
    if part.filename then form.files[part.name] = form.files[part.name] or part
    elseif form.values[part.name] == nil then form.values[part.name] = part.data end
    pos = ns + 2 + #delim
  end
  return form
end

return M
