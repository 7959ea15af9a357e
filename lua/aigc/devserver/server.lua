--- aigc devserver: the listening socket, accepted connections, and the
-- scheduler that starts their jobs; `start` makes a server on the current
-- luv loop (aigc.devserver.start / run wrap it). Part of the devserver package.

local uv = require "luv"
local conn_ = require "aigc.devserver.conn"
local parser = require "aigc.devserver.parser"
local respond = require "aigc.devserver.respond"
local records = require "aigc.devserver.records"
local ratelimit = require "aigc.devserver.ratelimit"

local format, match = string.format, string.match
local ccreate = coroutine.create
local floor, tointeger = math.floor, math.tointeger

local M = {}

local function start_job (conn)
  if conn.closed then return end -- the client went away while the job waited
  conn.co = ccreate(respond.run_job)
  conn.co_counted = conn.job.rec ~= nil -- API jobs; not the control request reading the count
  if conn.co_counted then conn.srv.live_jobs = conn.srv.live_jobs + 1 end
  conn_.step(conn, conn, conn.job)
end

-- API jobs start from an idle handle, a few milliseconds' worth per loop
-- iteration, never from inside a read callback: a burst of a thousand
-- requests (big replies included) then cannot hold the loop, so departures,
-- control requests and SIGTERM are seen between them, and a job whose client
-- left before it started costs nothing.
local SLICE_NS = 5 * 1000000

local function run_ready (srv)
  local ready, t0 = srv.ready, uv.hrtime()
  while ready.first <= ready.last and uv.hrtime() - t0 < SLICE_NS and not srv.closed do
    local conn = ready[ready.first]
    ready[ready.first] = nil
    ready.first = ready.first + 1
    start_job(conn)
  end
  if ready.first > ready.last and srv.runner:is_active() then srv.runner:stop() end
end

local function schedule (conn)
  local srv = conn.srv
  local ready = srv.ready
  ready.last = ready.last + 1
  ready[ready.last] = conn
  if not srv.runner:is_active() then srv.runner:start(function () run_ready(srv) end) end
end

-- Start the connection's next job, if it has one and is free.
local function pump (conn)
  if conn.busy or conn.closed then return end
  local job = table.remove(conn.queue, 1)
  if not job then
    if conn.no_more and not conn.shut then conn_.fin_close(conn) end
    return
  end
  if not conn.reading and #conn.queue < 8 and not conn.no_more then
    conn.reading = true
    conn.tcp:read_start(conn.on_read)
  end
  conn.busy, conn.job = true, job
  if job.rec then schedule(conn) else start_job(conn) end -- control and 4xx replies are cheap: at once
end

conn_.on_job_done = function (conn)
  if not conn.closed and not conn.shut then pump(conn) end
end

local function on_connection (srv, server)
  local tcp = uv.new_tcp()
  if not pcall(server.accept, server, tcp) then tcp:close(); return end
  local conn = { srv = srv, tcp = tcp, queue = {}, live = {}, pstate = "head", reading = true,
                 last_active = uv.now() }
  local peer = tcp:getpeername()
  conn.peer = peer and peer.ip or "?"
  srv.conns[conn] = true
  conn.on_read = function (err, data)
    if conn.closed then return end
    if err or not data then
      conn_.close(conn, not conn.shut and (conn.busy or #conn.queue > 0))
      return
    end
    conn.last_active = uv.now()
    if conn.shut or conn.no_more then return end
    local ok, e = pcall(parser.feed, conn, data)
    if not ok then
      io.stderr:write("aigc devserver: parse error: ", tostring(e), "\n")
      parser.bad_request(conn, 400, "Malformed HTTP request.")
    end
    if #conn.queue > 32 and conn.reading then conn.reading = false; tcp:read_stop() end
    pump(conn)
  end
  tcp:read_start(conn.on_read)
end

-- Keep-alive connections idle (no request in progress, nothing received)
-- for idle_ms are closed, as nginx's keepalive_timeout does: clients that
-- leak their connections cannot pile up descriptors.
local function idle_sweeper (srv, idle_ms)
  local sweep = uv.new_timer()
  srv.handles[#srv.handles + 1] = sweep
  local every = math.max(20, math.min(1000, idle_ms // 4))
  sweep:start(every, every, function ()
    local now = uv.now()
    for conn in pairs(srv.conns) do
      if not conn.busy and #conn.queue == 0 and not conn.shut and now - conn.last_active >= idle_ms then
        srv.stats.idle_closed_total = srv.stats.idle_closed_total + 1
        conn_.close(conn, false)
      end
    end
  end)
end

-- Close the server when process ppid is gone (a zombie counts as gone).
local function watch_parent (srv, ppid)
  local t = uv.new_timer()
  srv.handles[#srv.handles + 1] = t
  t:start(500, 500, function ()
    local gone = not ppid or not uv.kill(ppid, 0)
    local f = not gone and io.open("/proc/" .. ppid .. "/stat")
    if f then
      local stat = f:read("a") or ""
      f:close()
      gone = match(stat, "%) (%a)") == "Z"
    end
    if gone then srv.close() end
  end)
end

--- Listen and serve on the current luv loop; see aigc.devserver.start.
function M.start (opts)
  local host = opts.host or "127.0.0.1"
  local srv = { pause_ms = tointeger(opts.pause_ms) or 0, api_key = opts.api_key, quiet = opts.quiet,
                tokenizer = opts.tokenizer, batch_delay_ms = tointeger(opts.batch_delay_ms),
                stats = records.new_stats(), records = {}, fault_counts = {},
                conns = {}, epoch = 1, handles = {}, ready = { first = 1, last = 0 }, runner = uv.new_idle(),
                live_timers = 0, live_jobs = 0, opts = opts,
                reset_hooks = {}, close_hooks = {}, kept = {}, stoppers = {} }
  srv.handles[#srv.handles + 1] = srv.runner

  --- An endpoint's state, made on first use, forgotten by /_aigc/reset and
  -- stopped (timers...) by `stop` then and when the server closes.
  function srv.keep (name, make, stop)
    local v = srv.kept[name]
    if v == nil then v = make(); srv.kept[name] = v; srv.stoppers[name] = stop end
    return v
  end
  local function drop_kept ()
    for name, v in pairs(srv.kept) do
      if srv.stoppers[name] then srv.stoppers[name](v) end
    end
    srv.kept, srv.stoppers = {}, {}
  end
  srv.reset_hooks[#srv.reset_hooks + 1] = drop_kept
  srv.close_hooks[#srv.close_hooks + 1] = drop_kept
  local server = uv.new_tcp()
  local ok, err = server:bind(host, tointeger(opts.port) or 8089)
  if not ok then server:close(); srv.runner:close(); return nil, "bind: " .. tostring(err) end
  ok, err = server:listen(1024, function (lerr)
    if lerr then return end
    local pok, perr = pcall(on_connection, srv, server)
    if not pok then io.stderr:write("aigc devserver: accept: ", tostring(perr), "\n") end
  end)
  if not ok then server:close(); srv.runner:close(); return nil, "listen: " .. tostring(err) end
  srv.port = server:getsockname().port
  srv.url = format("http://%s:%d/v1", match(host, ":") and "[" .. host .. "]" or host, srv.port)

  function srv.close ()
    if srv.closed then return end
    srv.closed = true
    for conn in pairs(srv.conns) do conn_.close(conn, false) end
    for _, h in ipairs(srv.handles) do if not h:is_closing() then h:close() end end
    if not server:is_closing() then server:close() end
    srv.ready = { first = 1, last = 0 }
    for _, hook in ipairs(srv.close_hooks) do hook(srv) end
    -- run(): stop now; whatever was in flight (a storm of drips, queued big
    -- replies) went with its connections
    if srv.owns_loop then uv.stop() end
  end

  -- --rate-limit RPM[,TPM]: full buckets at start and after /_aigc/reset
  local rpm, tpm = match(tostring(opts.rate_limit or ""), "^(%d+),?(%d*)$")
  rpm, tpm = tointeger(tonumber(rpm)), tointeger(tonumber(tpm))
  if rpm and rpm > 0 then srv.limiter = ratelimit.new(rpm, tpm and tpm > 0 and tpm or nil) end
  srv.reset_hooks[#srv.reset_hooks + 1] = function ()
    srv.fault_limiters = nil
    if srv.limiter then srv.limiter = ratelimit.new(srv.limiter.rpm, srv.limiter.tpm) end
  end

  local idle_ms = floor((tonumber(opts.idle_timeout) or 60) * 1000)
  if idle_ms > 0 then idle_sweeper(srv, idle_ms) end
  if opts.parent_pid then watch_parent(srv, tointeger(tonumber(opts.parent_pid))) end
  if tonumber(opts.exit_after) then
    local t = uv.new_timer()
    srv.handles[#srv.handles + 1] = t
    t:start(floor(tonumber(opts.exit_after) * 1000), 0, srv.close)
  end
  return srv
end

return M
