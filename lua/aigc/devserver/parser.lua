--- aigc devserver: HTTP/1.1 request parsing, incremental: Content-Length
-- and chunked bodies, pipelining, `Expect: 100-continue`, limits (64 KiB of
-- headers, 64 MiB of body). A complete request becomes a job in the
-- connection's queue (aigc.devserver.conn runs them). Part of the devserver
-- package.

local uv = require "luv"
local util = require "aigc.devserver.util"
local records = require "aigc.devserver.records"

local find, gsub, lower, match, sub = string.find, string.gsub, string.lower, string.match, string.sub
local concat = table.concat
local uid, url_decode, gmatch_lines, trim_end = util.uid, util.url_decode, util.gmatch_lines, util.trim_end
local new_record = records.new_record

local M = {}

local MAX_BODY = 64 * 1024 * 1024
local MAX_HEAD = 64 * 1024

local function parse_target (target)
  target = gsub(target, "^%a[%w+.-]*://[^/]*", "")
  local path, q = match(target, "^([^?#]*)%??([^#]*)")
  local query = {}
  for pair in string.gmatch(q or "", "[^&]+") do
    local k, v = match(pair, "^([^=]*)=?(.*)$")
    query[url_decode(k)] = url_decode(v)
  end
  return path, query
end

local function ows (b) return b == 32 or b == 9 end   -- (HTTP's blanks: space, tab)

local function parse_head (head)
  local lines = {}
  for line in gmatch_lines(head) do lines[#lines + 1] = line end
  local method, target, version = match(lines[1] or "", "^([!#$%%&'*+%-.^_`|~%w]+) (%S+) HTTP/(%d%.%d)$")
  if not method then return nil, 400, "Malformed HTTP request line." end
  if version ~= "1.1" and version ~= "1.0" then return nil, 505, "HTTP version not supported." end
  if sub(target, 1, 1) ~= "/" and not match(target, "^https?://") then
    return nil, 400, "Malformed request target."
  end
  local headers = {}
  for i = 2, #lines do
    -- (the value's trailing blanks trimmed in a loop: "(.-)[ \t]*$" took 12 s
    -- for a line of 64 kB of blanks between two letters)
    local name, value = match(lines[i], "^([!#$%%&'*+%-.^_`|~%w]+):[ \t]*(.*)$")
    if not name then return nil, 400, "Malformed HTTP header line." end
    name, value = lower(name), trim_end(value, ows)
    local old = headers[name]
    if old and name == "content-length" and old ~= value then return nil, 400, "Conflicting Content-Length." end
    headers[name] = (old and name ~= "content-length") and old .. ", " .. value or value
  end
  local path, query = parse_target(target)
  local req = { method = method, target = target, path = path, query = query, version = version, headers = headers }
  local te, cl = headers["transfer-encoding"], headers["content-length"]
  if te then
    if not find(lower(te), "chunked%s*$") then return nil, 501, "Unsupported Transfer-Encoding." end
    req.chunked = true
  elseif cl then
    if not match(cl, "^%d+$") or #cl > 15 then return nil, 400, "Invalid Content-Length." end
    req.length = tonumber(cl)
    if req.length > MAX_BODY then return nil, 413, "Request body too large (limit 64 MiB)." end
  else
    req.length = 0
  end
  local c = lower(headers.connection or "")
  if version == "1.1" then req.keep_alive = not find(c, "close", 1, true)
  else req.keep_alive = find(c, "keep-alive", 1, true) ~= nil end
  return req
end

local function bad_request (conn, status, message)
  conn.no_more = true
  conn.pstate = "dead"
  local job = { id = "req_" .. uid(), t0 = uv.hrtime(), bad = true, bad_status = status, bad_message = message,
                method = "-", path = "-", version = "1.1", keep_alive = false }
  conn.live[job] = true
  conn.queue[#conn.queue + 1] = job
end

local function request_done (conn)
  local srv, req = conn.srv, conn.req
  local parts = conn.parts
  parts[#parts + 1] = concat(conn.run)
  req.body = concat(parts)
  conn.run = nil
  conn.parts, conn.req, conn.pstate = nil, nil, "head"
  req.id = "req_" .. uid()
  req.t0 = uv.hrtime()
  if sub(req.path, 1, 7) ~= "/_aigc/" then
    req.rec = new_record(srv, req)
    local s = srv.stats
    if not conn.counted then
      conn.counted = true
      s.connections_open = s.connections_open + 1
      if s.connections_open > s.max_connections_open then s.max_connections_open = s.connections_open end
    end
    if conn.epoch ~= srv.epoch then conn.epoch = srv.epoch; s.connections_total = s.connections_total + 1 end
  end
  conn.live[req] = true
  conn.queue[#conn.queue + 1] = req
  if not req.keep_alive then conn.no_more = true; conn.pstate = "dead" end
end

-- Keep a piece of the body: small ones are joined by the thousand (a body
-- sent a byte at a time was a slot per byte: 28 bytes of memory each, 1.8 GB
-- held for the 64 MiB a body may have).
local function add_piece (conn, piece)
  local run, small = conn.run, #piece < 1024
  if small then
    run[#run + 1] = piece
    if #run < 1024 then return end
  end
  local parts = conn.parts
  if run[1] then parts[#parts + 1] = concat(run); conn.run = {} end
  if not small then parts[#parts + 1] = piece end
end

local function take_body (conn, data, pos)
  local n = #data
  local take = math.min(conn.need, n - pos + 1)
  if take > 0 then
    add_piece(conn, sub(data, pos, pos + take - 1))
    conn.need = conn.need - take
    conn.total = conn.total + take
  end
  return pos + take
end

-- Take one line (up to LF) from data at pos; nil if incomplete (its pieces
-- kept in conn.lparts, joined once the line ends: a line sent a byte at a
-- time was copied whole per byte, 8 MB of copies for one 4 KB line).
local function take_line (conn, data, pos)
  local nl = find(data, "\n", pos, true)
  local parts = conn.lparts
  if not nl then
    local piece = sub(data, pos)
    if piece ~= "" then
      if not parts then parts = {}; conn.lparts, conn.lsize = parts, 0 end
      parts[#parts + 1] = piece
      conn.lsize = conn.lsize + #piece
      if conn.lsize > 4096 then return nil, #data + 1, true end
    end
    return nil, #data + 1
  end
  local line = sub(data, pos, nl - 1)
  if parts then
    parts[#parts + 1] = line
    line = concat(parts)
    conn.lparts, conn.lsize = nil, nil
  end
  return (gsub(line, "\r$", "")), nl + 1
end

-- Take the head (up to its blank line) from data at pos: the head, where
-- data goes on after it, its size; or nil, #data + 1 and the size so far
-- (kept in conn.hparts). Only the new bytes (and the 3 kept before them) are
-- searched for the blank line, and the pieces joined once it is found: a
-- client sending its head a byte at a time cost, per byte, a copy and a
-- search of all it had sent (17 s of the loop for a head of 60 kB).
local function take_head (conn, data, pos)
  local parts = conn.hparts
  if not parts then   -- (blank lines before a request line are skipped)
    pos = select(2, find(data, "^[\r\n]*", pos)) + 1
    local s, e = find(data, "\r?\n\r?\n", pos)
    if s then return sub(data, pos, s - 1), e + 1, s - pos end
    if pos > #data then return nil, pos, 0 end
    local piece = sub(data, pos)
    conn.hparts, conn.hsize, conn.htail = { piece }, #piece, sub(piece, -3)
    return nil, #data + 1, #piece
  end
  local piece, tail = sub(data, pos), conn.htail
  local s, e = find(tail .. piece, "\r?\n\r?\n")
  if not s then
    parts[#parts + 1] = piece
    conn.hsize, conn.htail = conn.hsize + #piece, sub(tail .. piece, -3)
    return nil, #data + 1, conn.hsize
  end
  local before = conn.hsize - #tail   -- (the bytes before the tail)
  conn.hparts, conn.hsize, conn.htail = nil, nil, nil
  parts[#parts + 1] = piece
  return sub(concat(parts), 1, before + s - 1), pos + e - #tail, before + s - 1
end

local function feed (conn, data)
  local pos = 1
  while pos <= #data and not conn.no_more do
    local st = conn.pstate
    if st == "head" then
      local head, np, size = take_head(conn, data, pos)
      if not head then
        if size > MAX_HEAD then return bad_request(conn, 431, "Request header fields too large.") end
        return
      end
      if size > MAX_HEAD then return bad_request(conn, 431, "Request header fields too large.") end
      local req, status, msg = parse_head(head)
      if not req then return bad_request(conn, status, msg) end
      pos = np
      conn.req, conn.parts, conn.run, conn.total = req, {}, {}, 0
      if req.chunked then conn.pstate, conn.lparts, conn.lsize = "size", nil, nil
      else conn.pstate, conn.need = "body", req.length end
      if lower(req.headers.expect or "") == "100-continue" and pos > #data and (req.chunked or req.length > 0)
        and not conn.busy and #conn.queue == 0 then
        conn.tcp:write("HTTP/1.1 100 Continue\r\n\r\n")
      end
      if conn.pstate == "body" and conn.need == 0 then request_done(conn) end
    elseif st == "body" or st == "data" then
      pos = take_body(conn, data, pos)
      if conn.need == 0 then
        if st == "body" then request_done(conn) else conn.pstate = "crlf" end
      end
    else -- chunked framing: size line, data, CRLF, trailers
      local line, np, too_long = take_line(conn, data, pos)
      pos = np
      if too_long then return bad_request(conn, 400, "Chunk line too long.") end
      if line then
        if st == "size" then
          -- (16 hex digits or more wrapped: "ffffffffffffffff" was -1, a
          -- size the body loop went back with, byte by byte, forever)
          local digits = gsub(match(line, "^%s*(%x+)%s*;?.*$") or "", "^0+(%x)", "%1")
          if digits == "" then return bad_request(conn, 400, "Malformed chunk size.") end
          local size = #digits <= 15 and tonumber(digits, 16) or math.huge
          if conn.total + size > MAX_BODY then
            return bad_request(conn, 413, "Request body too large (limit 64 MiB).")
          end
          if size == 0 then conn.pstate = "trailer" else conn.pstate, conn.need = "data", size end
        elseif st == "crlf" then
          if line ~= "" then return bad_request(conn, 400, "Malformed chunk.") end
          conn.pstate = "size"
        elseif st == "trailer" then
          if line == "" then request_done(conn) end
        end
      end
    end
  end
end

M.feed, M.bad_request, M.MAX_BODY = feed, bad_request, MAX_BODY

return M
