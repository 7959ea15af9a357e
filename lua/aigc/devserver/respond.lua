--- aigc devserver: writing one response from the connection's coroutine --
-- the status line and headers every reply carries, then the body as the
-- response and its wire faults say: at once, one byte per write, as SSE
-- events with pauses, as binary chunks, cut short, reset, or never.
-- Part of the devserver package.

local uv = require "luv"
local json = require "aigc.devserver.json"
local util = require "aigc.devserver.util"
local errors = require "aigc.devserver.errors"
local faults = require "aigc.devserver.faults"
local conn_ = require "aigc.devserver.conn"
local api = require "aigc.devserver.api"

local format, rep, sub = string.format, string.rep, string.sub
local concat = table.concat
local O, NULL = json.O, json.NULL
local http_date, filler = util.http_date, util.filler
local REASONS = errors.REASONS
local cwrite, csleep, finish_job, fin_close = conn_.write, conn_.sleep, conn_.finish_job, conn_.fin_close

local M = {}

-- x-ratelimit-* as OpenAI sends them: the rate limiter's (aigc.devserver.ratelimit)
-- when one is configured, else generous constants.
local function ratelimit_headers (srv, resp, h)
  if resp.ratelimit then
    for _, kv in ipairs(resp.ratelimit) do h[#h + 1] = kv[1] .. ": " .. kv[2] end
    return
  end
  local limit_req, limit_tok = 10000, 2000000
  local rem = resp.ratelimited and 0 or limit_req - 1 - (math.max(srv.stats.requests_total, 1) - 1) % limit_req
  h[#h + 1] = "x-ratelimit-limit-requests: " .. limit_req
  h[#h + 1] = "x-ratelimit-remaining-requests: " .. rem
  h[#h + 1] = "x-ratelimit-reset-requests: " .. (resp.ratelimited and "1s" or "6ms")
  h[#h + 1] = "x-ratelimit-limit-tokens: " .. limit_tok
  h[#h + 1] = "x-ratelimit-remaining-tokens: " .. math.max(0, limit_tok - (resp.tokens or 0))
  h[#h + 1] = "x-ratelimit-reset-tokens: " .. (resp.tokens and resp.tokens > 0 and "1ms" or "0s")
end

local function response_head (conn, job, resp, opts)
  local st = resp.status
  job.status = st
  if job.rec then job.rec.status = st end
  local h = { format("HTTP/1.1 %d %s", st, REASONS[st] or "Unknown"), "Date: " .. http_date(),
              "Server: aigc-devserver", "Content-Type: " .. (resp.ctype or "application/json") }
  if opts.chunked then h[#h + 1] = "Transfer-Encoding: chunked" end
  if resp.events then h[#h + 1] = "Cache-Control: no-cache"
  elseif not resp.chunks then h[#h + 1] = "Content-Length: " .. #resp.body end
  h[#h + 1] = "Connection: " .. (opts.keep and "keep-alive" or "close")
  h[#h + 1] = "x-request-id: " .. (opts.request_id or job.id)
  h[#h + 1] = "openai-version: 2020-10-01"
  h[#h + 1] = format("openai-processing-ms: %d", (uv.hrtime() - job.t0) // 1000000)
  ratelimit_headers(conn.srv, resp, h)
  for _, kv in ipairs(resp.headers or {}) do h[#h + 1] = kv.raw or kv[1] .. ": " .. kv[2] end
  return concat(h, "\r\n") .. "\r\n\r\n"
end

-- Write bytes as the fault asks: one byte per write (drip, byte-writes) or at once.
local function emitter (conn, fault)
  if fault.drip or fault["byte-writes"] then
    pcall(conn.tcp.nodelay, conn.tcp, true)
    return function (s)
      for i = 1, #s do
        cwrite(conn, sub(s, i, i))
        if fault.drip then csleep(conn, fault.drip) end
      end
    end
  end
  return function (s) cwrite(conn, s) end
end

local function frame (s, chunked)
  if not chunked or s == "" then return s end
  return format("%x\r\n", #s) .. s .. "\r\n"
end

-- comment-drip: the head of an SSE stream, then `:` every MS ms, forever.
local function send_comment_drip (conn, job, resp, fault, emit, request_id)
  resp = { status = 200, ctype = "text/event-stream", headers = resp.headers, events = {} }
  local chunked = job.version == "1.1"
  emit(response_head(conn, job, resp, { chunked = chunked, keep = false, request_id = request_id }))
  while true do
    csleep(conn, fault["comment-drip"])
    emit(frame(":\n", chunked))
  end
end

-- A body sent whole (or half, for close-mid-body and reset).
local function send_body (conn, job, head, body, fault, emit)
  if fault["close-mid-body"] or fault.reset then
    emit(head .. sub(body, 1, #body // 2))
    finish_job(conn, job, false)
    if fault.reset then
      csleep(conn, 20)
      conn_.close(conn, false, true)
      return false
    end
    fin_close(conn)
    return false
  end
  if fault.drip or fault["byte-writes"] then emit(head .. body)
  else cwrite(conn, { head, body }) end
  if fault["long-body"] then cwrite(conn, "GARBAGE-AFTER-BODY\r\n\r\nHTTP/1.1 418 I'm a teapot\r\n\r\n") end
  return true
end

-- `huge-line`: one endless `data:` line of n bytes, then close.
local function send_huge_line (conn, job, total, chunked, emit)
  local sent, piece, line = 0, 65536, "data: "
  while sent < total do
    local n = math.min(piece, total - sent)
    local s = sent == 0 and sub(line, 1, n) .. filler(math.max(0, n - #line)) or filler(n)
    emit(frame(s, chunked))
    sent = sent + n
  end
  finish_job(conn, job, false)
  fin_close(conn)
end

-- SSE events with pauses between them (and the stream faults).
local function send_events (conn, job, resp, fault, emit, chunked)
  local pause = fault.pause or conn.srv.pause_ms
  local events = faults.stream(resp.events, fault)
  for i, ev in ipairs(events) do
    if fault["drop-after"] and i > fault["drop-after"] then
      finish_job(conn, job, false)
      fin_close(conn)
      return false
    end
    if i > 1 then csleep(conn, ev.pause or pause) end
    if resp.events.stopped and resp.events.stopped() then break end   -- (a background response cancelled)
    emit(frame(faults.format_event(ev, fault), chunked))
    if i == 1 and fault["huge-line"] then send_huge_line(conn, job, fault["huge-line"], chunked, emit); return false end
  end
  if chunked then emit("0\r\n\r\n") end
  return true
end

-- Binary chunks (speech audio) with pauses between them, chunked on HTTP/1.1.
local function send_chunks (conn, job, resp, fault, emit, chunked)
  local pause = fault.pause or conn.srv.pause_ms or 0
  for i, c in ipairs(resp.chunks) do
    if fault["drop-after"] and i > fault["drop-after"] then
      finish_job(conn, job, false)
      fin_close(conn)
      return false
    end
    if i > 1 then csleep(conn, pause) end
    emit(frame(c, chunked))
  end
  if chunked then emit("0\r\n\r\n") end
  return true
end

-- Send one response (runs in the connection's coroutine).
local function send (conn, job, resp, fault)
  local streamed = resp.events ~= nil or resp.chunks ~= nil
  local chunked = streamed and job.version == "1.1"
  local keep = job.keep_alive and not resp.close and (chunked or not streamed)
  csleep(conn, fault.delay)
  if fault.hang then conn_.wait_forever(conn) end
  if fault["garbage-status"] then
    job.status = 0
    cwrite(conn, "HTXP/9.9 banana\r\n\r\n")
    finish_job(conn, job, false)
    return fin_close(conn)
  end
  local emit = emitter(conn, fault)
  local request_id = fault["echo-key"] and "req_" .. fault.echo_value or nil
  if fault["comment-drip"] and resp.status < 400 then
    return send_comment_drip(conn, job, resp, fault, emit, request_id)
  end
  local head = response_head(conn, job, resp, { chunked = chunked, keep = keep, request_id = request_id })
  if fault.informational then head = rep("HTTP/1.1 100 Continue\r\n\r\n", fault.informational) .. head end
  if resp.events and (fault["close-mid-body"] or fault.reset or fault["long-body"]) then
    local parts = {}
    for i, ev in ipairs(faults.stream(resp.events, fault)) do
      parts[i] = frame(faults.format_event(ev, fault), chunked)
    end
    if chunked then parts[#parts + 1] = "0\r\n\r\n" end
    resp.body, streamed = concat(parts), false
  end
  local complete
  if not streamed then complete = send_body(conn, job, head, resp.body, fault, emit)
  else
    emit(head)
    if resp.events then complete = send_events(conn, job, resp, fault, emit, chunked)
    else complete = send_chunks(conn, job, resp, fault, emit, chunked) end
  end
  if not complete then return end
  finish_job(conn, job, false)
  if not keep then fin_close(conn) end
end

--- The body of a connection's coroutine: answer one job.
function M.run_job (conn, job)
  local srv = conn.srv
  local resp, fault
  if job.bad then
    resp = errors.status_error(job.bad_status)
    resp.body = json.encode(O("error", O("message", job.bad_message, "type", "invalid_request_error", "param", NULL,
      "code", NULL)))
    resp.close = true
  else
    local ok, r, f = pcall(api.dispatch, srv, job)
    if ok then resp, fault = r, f
    else
      io.stderr:write("aigc devserver: internal error: ", tostring(r), "\n")
      resp = errors.status_error(500)
    end
  end
  send(conn, job, resp, fault or {})
end

return M
