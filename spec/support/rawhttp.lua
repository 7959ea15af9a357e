--- Raw HTTP/1.1 over LuaSocket for the devserver's own specs: requests as
-- bytes, responses read field by field (chunked, Content-Length or close
-- delimited), SSE events split exactly as a client would. Never aigc: the
-- devserver is the oracle the module's transport tests rely on, so it is
-- tested with tools independent of the module.
--
-- @usage
-- local raw = require "rawhttp"
-- local res = raw.call(port, "POST", "/v1/chat/completions", { messages = ... })
-- print(res.status, res.json.choices[1].message.content)

local socket = require "socket"
local cjson = require "cjson"
local safe = require "cjson.safe"

local M = {}

--- A connected TCP socket with a 30 s timeout (a bound for a hung server,
-- not a timing: the machine may be loaded).
-- @usage local c = raw.connect(srv.port)
function M.connect (port)
  local c = assert(socket.tcp())
  c:settimeout(30)
  assert(c:connect("127.0.0.1", port))
  return c
end

--- The bytes of a request; a table body is JSON-encoded (Content-Type
-- application/json unless `headers` name another).
-- @usage c:send(raw.request_bytes("GET", "/v1/models"))
function M.request_bytes (method, path, body, headers)
  if type(body) == "table" then body = cjson.encode(body) end
  local lines = { method .. " " .. path .. " HTTP/1.1", "Host: 127.0.0.1" }
  local has_ctype = false
  for k in pairs(headers or {}) do if k:lower() == "content-type" then has_ctype = true end end
  if body then
    if not has_ctype then lines[#lines + 1] = "Content-Type: application/json" end
    lines[#lines + 1] = "Content-Length: " .. #body
  end
  for k, v in pairs(headers or {}) do lines[#lines + 1] = k .. ": " .. v end
  return table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")
end

--- Read one response. With a chunked or close-delimited body that ends
-- early, `res.err` says why and `res.body` holds what arrived. Header names
-- are lower case; `res.header_list` keeps every header line in order.
-- @usage local res = raw.read_response(c)
function M.read_response (c)
  local line, err = c:receive("*l")
  if not line then return nil, err end
  local res = { line = line, status = tonumber(line:match("^HTTP/1%.1 (%d+)")), headers = {}, header_list = {} }
  while true do
    local l, herr = c:receive("*l")
    if not l then res.err = herr; res.body = ""; return res end
    if l == "" then break end
    res.header_list[#res.header_list + 1] = l
    local k, v = l:match("^([^:]+):%s*(.-)%s*$")
    if k then res.headers[k:lower()] = v end
  end
  local h = res.headers
  if h["transfer-encoding"] == "chunked" then
    local parts = {}
    res.chunks = 0
    while true do
      local size, serr, partial = c:receive("*l")
      if not size then
        parts[#parts + 1] = partial
        res.err = serr; break
      end
      local n = tonumber(size, 16)
      if n == 0 then c:receive("*l"); break end
      local data, derr, dpartial = c:receive(n)
      if not data then parts[#parts + 1] = dpartial; res.err = derr; break end
      parts[#parts + 1] = data
      res.chunks = res.chunks + 1
      c:receive("*l")
    end
    res.body = table.concat(parts)
  elseif h["content-length"] then
    local n = tonumber(h["content-length"])
    if n == 0 then res.body = ""
    else
      local data, derr, partial = c:receive(n)
      res.body, res.err = data or partial, derr
    end
  else
    local data, derr, partial = c:receive("*a")
    res.body, res.err = data or partial, derr
  end
  return res
end

--- One request on a new connection; `res.json` is the decoded body when the
-- reply is JSON, `res.elapsed` the seconds from sending to the whole reply.
-- @usage local res = raw.call(port, "GET", "/v1/models")
function M.call (port, method, path, body, headers)
  local c = M.connect(port)
  assert(c:send(M.request_bytes(method, path, body, headers)))
  local t0 = socket.gettime()
  local res = assert(M.read_response(c))
  res.elapsed = socket.gettime() - t0
  c:close()
  if (res.headers["content-type"] or ""):find("^application/json") and res.body ~= "" then
    res.json = safe.decode(res.body)
  end
  return res
end

--- Events of an SSE body: { {event =, data =, comments =} ... } (any line ends).
-- @usage for _, ev in ipairs(raw.sse_events(res.body)) do print(ev.event, ev.data) end
function M.sse_events (body)
  body = body:gsub("\r\n", "\n"):gsub("\r", "\n")
  local events, blocks, pos = {}, {}, 1
  while true do -- find, not gmatch: a long tail without a blank line must stay linear
    local e = body:find("\n\n", pos, true)
    if not e then break end
    blocks[#blocks + 1] = body:sub(pos, e - 1)
    pos = e + 2
  end
  for _, block in ipairs(blocks) do
    local ev, data, comments = {}, {}, 0
    for line in (block .. "\n"):gmatch("(.-)\n") do
      if line:sub(1, 1) == ":" then comments = comments + 1
      else
        local field, value = line:match("^([^:]*):? ?(.*)$")
        if field == "data" then data[#data + 1] = value elseif field == "event" then ev.event = value end
      end
    end
    if #data > 0 or ev.event then
      ev.data, ev.comments = table.concat(data, "\n"), comments
      events[#events + 1] = ev
    end
  end
  return events
end

--- A streamed request: `res.events` (SSE) and `res.chunks` (decoded data,
-- [DONE] left out; undecodable data as nil holes are skipped).
-- @usage local s = raw.stream(port, "/v1/chat/completions", { messages = ... })
function M.stream (port, path, body, headers)
  body.stream = true
  local res = M.call(port, "POST", path, body, headers)
  res.events = M.sse_events(res.body or "")
  res.chunks = {}
  for _, ev in ipairs(res.events) do
    if ev.data ~= "[DONE]" then res.chunks[#res.chunks + 1] = safe.decode(ev.data) end
  end
  return res
end

--- A multipart/form-data body: `fields` is a list of
-- { name =, value = } or { name =, filename =, content_type =, value = }.
-- Returns the body and the Content-Type header value.
-- @usage local body, ctype = raw.multipart { { name = "purpose", value = "batch" } }
function M.multipart (fields, boundary)
  boundary = boundary or "aigc-spec-boundary-7d1f"
  local out = {}
  for _, f in ipairs(fields) do
    local disp = 'Content-Disposition: form-data; name="' .. f.name .. '"'
    if f.filename then disp = disp .. '; filename="' .. f.filename .. '"' end
    out[#out + 1] = "--" .. boundary .. "\r\n" .. disp .. "\r\n"
      .. (f.content_type and "Content-Type: " .. f.content_type .. "\r\n" or "") .. "\r\n" .. f.value .. "\r\n"
  end
  out[#out + 1] = "--" .. boundary .. "--\r\n"
  return table.concat(out), "multipart/form-data; boundary=" .. boundary
end

--- Poll fn until it returns a true value or `seconds` (default 3) pass.
-- @usage assert.is_true(raw.wait_until(function () return srv:stats().open_now == 0 end))
function M.wait_until (fn, seconds)
  local deadline = socket.gettime() + (seconds or 3)
  repeat
    local v = fn()
    if v then return v end
    socket.sleep(0.01)
  until socket.gettime() > deadline
  return fn()
end

return M
