--- aigc devserver: a connection's life -- its coroutine (one per response,
-- run by aigc.devserver.server), the waits it makes (writes, sleeps), its
-- timers, and its end, which takes everything with it: a hang, a drip or a
-- paused stream whose client went away keeps no timer, coroutine or
-- descriptor. Part of the devserver package.

local uv = require "luv"

local format = string.format
local cyield, cresume, cstatus = coroutine.yield, coroutine.resume, coroutine.status

local M = {}

--- The error a coroutine raises when its connection is gone.
M.CLOSED = setmetatable({}, { __tostring = function () return "connection closed" end })
local CLOSED = M.CLOSED

local function log_line (conn, job, client_gone)
  local srv = conn.srv
  if srv.quiet then return end
  local rec = job.rec
  io.stderr:write(format("%s %s %s %s %s %dB %dms%s%s\n", os.date("!%Y-%m-%dT%H:%M:%SZ"), conn.peer or "?",
    job.method or "-", job.path or "-", job.status and tostring(job.status) or "---", job.bytes or 0,
    (uv.hrtime() - (job.t0 or uv.hrtime())) // 1000000, rec and rec.fault and " fault=" .. rec.fault or "",
    client_gone and " client-closed" or ""))
end

--- A response has ended (or its client went away): counters, record, log.
function M.finish_job (conn, job, client_gone)
  if job.done then return end
  job.done = true
  conn.live[job] = nil
  local srv, rec = conn.srv, job.rec
  if rec then
    if client_gone then
      rec.client_closed = true
      srv.stats.client_closed_total = srv.stats.client_closed_total + 1
    end
    if rec.open then rec.open = false; srv.stats.open_now = srv.stats.open_now - 1 end
  end
  log_line(conn, job, client_gone)
end

--- A timer owned by a connection, counted in stats.timers_active until closed.
function M.timer (conn)
  local t = uv.new_timer()
  conn.srv.live_timers = conn.srv.live_timers + 1
  return t
end

local function close_timer (conn, t)
  if t and not t:is_closing() then
    t:close()
    conn.srv.live_timers = conn.srv.live_timers - 1
  end
end

-- Forget the connection's coroutine: it is never resumed again, so nothing
-- of it may stay alive (coroutine.close also runs its to-be-closed values).
local function drop_job (conn)
  local co = conn.co
  if not co then return end
  conn.co = nil
  if conn.co_counted then conn.srv.live_jobs = conn.srv.live_jobs - 1 end
  if cstatus(co) == "suspended" then coroutine.close(co) end
end

--- Close a connection now (RST when `reset`); its jobs end as `client_gone` says.
function M.close (conn, client_gone, reset)
  if conn.closed then return end
  conn.closed = true
  for job in pairs(conn.live) do M.finish_job(conn, job, client_gone) end
  close_timer(conn, conn.timer)
  close_timer(conn, conn.linger)
  drop_job(conn)
  if not conn.tcp:is_closing() then
    if reset then
      if not pcall(conn.tcp.close_reset, conn.tcp) then conn.tcp:close() end
    else
      conn.tcp:close()
    end
  end
  local srv = conn.srv
  if conn.counted then srv.stats.connections_open = srv.stats.connections_open - 1 end
  srv.conns[conn] = nil
end

--- Half-close our side; close when the client closes too, or after 2 s.
function M.fin_close (conn)
  if conn.closed or conn.shut then return end
  conn.shut = true
  conn.no_more = true
  local ok = pcall(conn.tcp.shutdown, conn.tcp, function ()
    if conn.closed then return end
    conn.linger = M.timer(conn)
    conn.linger:start(2000, 0, function () M.close(conn, false) end)
  end)
  if not ok then M.close(conn, false) end
end

--- Called when a connection's coroutine has ended (set by aigc.devserver.server).
M.on_job_done = function () end

--- Resume the connection's coroutine; when it ends, the next job may start.
function M.step (conn, ...)
  local co = conn.co
  local ok, err = cresume(co, ...)
  if not ok then
    if err ~= CLOSED then
      io.stderr:write("aigc devserver: ", debug.traceback(co, tostring(err)), "\n")
      M.close(conn, false)
    end
    return
  end
  if cstatus(co) == "dead" then
    if conn.co == co then
      conn.co = nil
      if conn.co_counted then conn.srv.live_jobs = conn.srv.live_jobs - 1 end
    end
    conn.job, conn.busy = nil, false
    conn.last_active = uv.now()
    M.on_job_done(conn)
  end
end

-- The coroutine waits for one thing at a time; `conn.waiting` is that wait's
-- token, so a late callback of an earlier wait never resumes it.
local function suspend (conn, token)
  conn.waiting = token
  local ok = cyield()
  if not ok then error(CLOSED, 0) end
end

local function wake (conn, token)
  if conn.closed or conn.waiting ~= token then return end
  conn.waiting = nil
  M.step(conn, true)
end

--- Wait forever: only the client's going ends this (a `hang`).
function M.wait_forever (conn)
  conn.waiting = nil
  cyield()
  error(CLOSED, 0)
end

--- Write data (a string or {head, body}) from the coroutine; raises CLOSED
-- when the client is gone.
function M.write (conn, data)
  if conn.closed then error(CLOSED, 0) end
  local job = conn.job
  if job then
    job.bytes = (job.bytes or 0) + (type(data) == "table" and #data[1] + #data[2] or #data)
    if job.rec then job.rec.writes = (job.rec.writes or 0) + 1 end -- for byte-writes checks
  end
  local token, done = {}, false
  local ok = conn.tcp:write(data, function (err)
    done = true
    if conn.closed then return end
    if err then M.close(conn, true); return end
    wake(conn, token)
  end)
  if not ok then M.close(conn, true); error(CLOSED, 0) end
  -- Already in the kernel: go on at once. A response then ends (and stops
  -- counting as open) before the loop reads the client's next request.
  if done or conn.tcp:get_write_queue_size() == 0 then return end
  suspend(conn, token)
end

--- Sleep ms milliseconds in the coroutine (no-op for nil or <= 0).
function M.sleep (conn, ms)
  if not ms or ms <= 0 then return end
  conn.timer = conn.timer or M.timer(conn)
  local token = {}
  conn.timer:start(ms, 0, function () wake(conn, token) end)
  suspend(conn, token)
end

return M
