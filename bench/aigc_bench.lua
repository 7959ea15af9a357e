-- aigc's side of the benchmark: the same work as floor.c, through the
-- public API (a params table per request, res.choices[1].message.content
-- checked).
--
--   lua5.4 bench/aigc_bench.lua seq    URL N EXPECT      blocking client:chat
--   lua5.4 bench/aigc_bench.lua stream URL N EXPECT      client:chat{stream = fn}
--   lua5.4 bench/aigc_bench.lua multi  URL N EXPECT K    K in flight: chat_async + step
--   lua5.4 bench/aigc_bench.lua steps  URL N EXPECT K    the same, timing every step(0)
--   lua5.4 bench/aigc_bench.lua idle   -   N -      K    step(0) with K waiting on a
--                                                       server that never answers
--   lua5.4 bench/aigc_bench.lua timers -   N -      K    step(0) with K streams waiting, each
--                                                       with its own timeout (T s) coming due in
--                                                       turn: N of them end, each replaced
--   lua5.4 bench/aigc_bench.lua cancelq -  N -      K    N queued behind max_concurrency = K (a
--                                                       server that never answers), all canceled
--                                                       newest first: CPU per cancel
--   lua5.4 bench/aigc_bench.lua waitq  URL N EXPECT K    N blocking client:chat, each queued behind K
--                                                       in flight (max_concurrency = K, each replaced)
--   lua5.4 bench/aigc_bench.lua rss    URL N EXPECT      RSS growth over N requests
--   BENCH_CPATH='build/jit/?.so' luajit bench/aigc_bench.lua ...   the same under LuaJIT
--
-- Prints one line "ok n=... wall=... cpu=... rss_kb=..." like floor.c
-- (CPU: os.clock(), user+sys of the process, of the timed part only).
-- Runs on Lua 5.4 and LuaJIT (and 5.1-5.3): no 5.4-only syntax here.

-- BENCH_ROOT: another build of aigc to measure (a baseline checkout);
-- BENCH_CPATH: the module's cpath template under it (default ./?.so, the
-- 5.4 build; `make cpath LUA_VERSION=jit` prints LuaJIT's).
local root = os.getenv("BENCH_ROOT") or "."
local cpath = os.getenv("BENCH_CPATH") or "./?.so"
if cpath:sub(1, 1) ~= "/" then cpath = root .. "/" .. cpath:gsub("^%./", "") end
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. (arg[0]:match("^(.*)/") or ".") .. "/?.lua;"
  .. package.path
package.cpath = cpath .. ";" .. package.cpath

local aigc = require "aigc"

local mode, url, n, expect_file, k = arg[1], arg[2], tonumber(arg[3]), arg[4], tonumber(arg[5] or 64)
local now, clock = aigc.now, os.clock
local WARMUP = 50

local expect
if expect_file and expect_file ~= "-" then
  local f = assert(io.open(expect_file, "rb"))
  expect = f:read("*a")
  f:close()
end

local function status_kb (field)
  local f = assert(io.open("/proc/self/status"))
  local v = f:read("*a"):match(field .. ":%s*(%d+)")
  f:close()
  return tonumber(v)
end

local function report (count, wall, cpu, extra)
  io.write(("ok n=%d wall=%.6f cpu=%.6f rss_kb=%d"):format(count, wall, cpu, status_kb("VmHWM")))
  for _, kv in ipairs(extra or {}) do io.write((" %s=%s"):format(kv[1], kv[2])) end
  io.write("\n")
end

-- The request every client sends.
local params = require "request_params"

local function check (res, err)
  if not res then error("request failed: " .. tostring(err and err.message)) end
  if res.choices[1].message.content ~= expect then error("unexpected response content") end
end

local function percentile (sorted, p)
  return sorted[math.max(1, math.ceil(#sorted * p))]
end

local modes = {}

function modes.seq ()
  local client = aigc.client { base_url = url, api_key = "sk-bench", max_retries = 0 }
  for i = 1, WARMUP do check(client:chat(params(i))) end
  local t0, c0 = now(), clock()
  for i = 1, n do check(client:chat(params(i))) end
  report(n, now() - t0, clock() - c0)
end

-- include_usage off, as OpenAI's SDKs send a stream by default (aigc
-- asks for usage unless told; the canned server sends none either way).
local NO_USAGE = { include_usage = false }

function modes.stream ()
  local client = aigc.client { base_url = url, api_key = "sk-bench", max_retries = 0 }
  local chunks, bytes = 0, 0
  local function on_delta (delta)
    chunks = chunks + 1
    if delta then bytes = bytes + #delta end
  end
  local function one (i)
    local p = params(i)
    p.stream = on_delta   -- one parameter: the core builds no chunk table for it
    p.stream_options = NO_USAGE
    local res, err = client:chat(p)
    if not res then error("request failed: " .. tostring(err and err.message)) end
    if res.choices[1].message.content ~= expect then error("unexpected stream content") end
  end
  for i = 1, math.floor(WARMUP / 10) do one(i) end
  chunks, bytes = 0, 0
  local t0, c0 = now(), clock()
  for i = 1, n do one(i) end
  report(n, now() - t0, clock() - c0, { { "chunks", chunks } })
end

-- K in flight: each on_done checks and starts the next request.
local function inflight (client, total, on_step)
  local started, done = 0, 0
  local on_done
  local function on_error (err) error("request failed: " .. tostring(err.message)) end
  local function start ()
    started = started + 1
    local p = params(started)
    p.on_done = on_done
    p.on_error = on_error
    client:chat_async(p)
  end
  on_done = function (res)
    check(res)
    done = done + 1
    if started < total then start() end
  end
  for _ = 1, math.min(k, total) do start() end
  while done < total do
    local _, errors = on_step()
    if errors then error(tostring(errors[1])) end
  end
end

-- BENCH_CA_FILE: the canned server's certificate, for its TLS ports
-- (HTTP/2 and HTTP/1.1 over TLS).
local CA_FILE = os.getenv("BENCH_CA_FILE")

-- The number of TCP connections this process has open (Linux: its
-- sockets in /proc/self/fd), sampled while K requests are in flight.
local function open_sockets ()
  local p = io.popen("ls -l /proc/$PPID/fd 2>/dev/null | grep -c socket:")   -- ($PPID: this process)
  local count = p and tonumber(p:read("*a"):match("%d+")) or 0
  if p then p:close() end
  return count
end

function modes.multi ()
  local client = aigc.client { base_url = url, api_key = "sk-bench", max_retries = 0, ca_file = CA_FILE,
                               timeout = 120, connect_timeout = 60 }
  local steps = 0
  local function step () steps = steps + 1 return client:step(1) end
  inflight(client, 2 * k, step)   -- warm-up: every connection opened and used
  local sockets = CA_FILE and open_sockets() or nil   -- (the TLS cases: connections kept)
  steps = 0
  local t0, c0 = now(), clock()
  inflight(client, n, step)
  report(n, now() - t0, clock() - c0, { { "steps", steps }, sockets and { "sockets", sockets } or nil })
end

-- The cost of one client:step(0) while K requests are in flight, in a
-- frame loop that never blocks (each step handles whatever is ready).
function modes.steps ()
  local client = aigc.client { base_url = url, api_key = "sk-bench", max_retries = 0 }
  inflight(client, 2 * k, function () return client:step(1) end)
  local times, ns = {}, 0
  local function step ()
    local t = now()
    local a, b = client:step(0)
    ns = ns + 1
    times[ns] = now() - t
    return a, b
  end
  local t0, c0 = now(), clock()
  inflight(client, n, step)
  local wall, cpu = now() - t0, clock() - c0
  table.sort(times)
  report(n, wall, cpu, { { "steps", ns }, { "step_med_us", ("%.2f"):format(percentile(times, 0.5) * 1e6) },
                         { "step_p99_us", ("%.2f"):format(percentile(times, 0.99) * 1e6) } })
end

-- The same with nothing ever ready: K requests sent to a server that
-- accepts them (the kernel's backlog) and never answers, as a frame loop
-- sees K requests waiting on a slow LLM. The fixed cost of one step.
function modes.idle ()
  local socket = require "socket"
  local srv = assert(socket.bind("127.0.0.1", 0, k + 64))
  local _, port = srv:getsockname()
  local client = aigc.client { base_url = "http://127.0.0.1:" .. port .. "/v1",
                               api_key = "sk-bench", max_retries = 0, timeout = 600 }
  local reqs = {}   -- kept: a request nobody holds is canceled by its __gc
  for i = 1, k do reqs[i] = client:chat_async(params(i)) end
  -- Let every connection be made and every request be sent.
  local deadline = now() + 1
  while now() < deadline do client:step(0.01) end
  local times = {}
  local t0, c0 = now(), clock()
  for i = 1, n do
    local t = now()
    local active = client:step(0)
    times[i] = now() - t
    if active ~= k then error("expected " .. k .. " requests in flight, got " .. active) end
  end
  local wall, cpu = now() - t0, clock() - c0
  table.sort(times)
  client:close()
  srv:close()
  assert(#reqs == k)
  report(n, wall, cpu, { { "step_med_us", ("%.2f"):format(percentile(times, 0.5) * 1e6) },
                         { "step_p99_us", ("%.2f"):format(percentile(times, 0.99) * 1e6) } })
end

-- K streams waiting on a server that never answers, each with its own
-- timeout (BENCH_TIMEOUT seconds, default 1: a stream's idle limit, a timer
-- of aigc's own), started in turn over that time so that their timers come
-- due one after another; each one that times out is replaced by a new one.
-- Every step(0) is timed until N have timed out: what a frame loop pays per
-- frame while timers fire; then the CPU per request that ended, over N
-- more. BENCH_SPIN=0 skips the step(0) loop (under callgrind: how often it
-- spins between two timers depends on the clock, not on the work).
function modes.timers ()
  local socket = require "socket"
  local srv = assert(socket.bind("127.0.0.1", 0, k + 64))   -- (never accepts: the rest wait in SYN)
  local _, port = srv:getsockname()
  local T = tonumber(os.getenv("BENCH_TIMEOUT") or "") or 1
  local client = aigc.client { base_url = "http://127.0.0.1:" .. port .. "/v1", api_key = "sk-bench",
                               max_retries = 0, connect_timeout = 600 }
  local ended, bad, stop = 0, nil, false
  local start
  local function on_error (err)
    if stop then return end
    if err.kind ~= "timeout" then bad = err end
    ended = ended + 1
    start()
  end
  function start ()
    local p = params(ended)
    p.timeout, p.stream, p.on_error = T, function () end, on_error
    client:chat_async(p)
  end
  local t0 = now()
  for i = 1, k do   -- (in turn over T: the timers come due one after another)
    while now() < t0 + T * (i - 1) / k do client:step(0) end
    start()
  end
  while ended < k do client:step(0.01) end   -- (the first ones replaced: steady state)
  if bad then error(tostring(bad)) end
  local times, ns, total = {}, 0, 0
  local target = ended + n
  local c0
  t0, c0 = now(), clock()
  if os.getenv("BENCH_SPIN") == "0" then target = ended end
  while ended < target do   -- a frame loop: step(0), timed
    local t = now()
    client:step(0)
    ns = ns + 1
    times[ns] = now() - t
    total = total + times[ns]
  end
  local wall, cpu = now() - t0, clock() - c0
  -- The CPU per request that ended, with a loop that sleeps until the next
  -- timer (step(1) returns when one fires): the work, not the spinning.
  target = ended + n
  local c1 = clock()
  while ended < target do client:step(1) end
  local cpu_req = (clock() - c1) / n
  if bad then error(tostring(bad)) end
  table.sort(times)
  if ns == 0 then times, ns, total = { 0 }, 1, 0 end
  stop = true
  client:close()
  srv:close()
  report(n, wall, cpu, { { "steps", ns }, { "step_med_us", ("%.2f"):format(percentile(times, 0.5) * 1e6) },
                         { "step_p99_us", ("%.2f"):format(percentile(times, 0.99) * 1e6) },
                         { "step_mean_us", ("%.2f"):format(total / ns * 1e6) },
                         { "cpu_req_us", ("%.2f"):format(cpu_req * 1e6) } })
end

-- N requests queued behind max_concurrency = K (K in flight to a server
-- that accepts and never answers), then all canceled newest first, as a
-- game cancels the NPC lines it queued when the player leaves: the CPU of
-- the cancels (each a queued request leaving its class's queue), then of
-- delivering their ends.
function modes.cancelq ()
  local socket = require "socket"
  local srv = assert(socket.bind("127.0.0.1", 0, k + 64))
  local _, port = srv:getsockname()
  local client = aigc.client { base_url = "http://127.0.0.1:" .. port .. "/v1", api_key = "sk-bench",
                               max_retries = 0, max_concurrency = k, timeout = 600 }
  local ended = 0
  local function on_error (err)
    if err.kind ~= "canceled" then error(tostring(err)) end
    ended = ended + 1
  end
  local function submit (i)
    local p = params(i)
    p.on_error = on_error
    return client:chat_async(p)
  end
  local running = {}
  for i = 1, k do running[i] = submit(i) end
  local queued = {}
  for i = 1, n do queued[i] = submit(k + i) end
  client:step(0)
  local t0, c0 = now(), clock()
  for i = n, 1, -1 do queued[i]:cancel() end
  local wall, cpu = now() - t0, clock() - c0
  local c1 = clock()
  while ended < n do client:step(0) end
  local cpu_end = clock() - c1
  client:close()
  srv:close()
  assert(#running == k)
  report(n, wall, cpu, { { "cancel_us", ("%.3f"):format(cpu / n * 1e6) },
                         { "end_us", ("%.3f"):format(cpu_end / n * 1e6) } })
end

-- N blocking client:chat calls, each queued behind K requests in flight
-- (max_concurrency = K; each of the K replaced as it ends): every turn of
-- the blocking call's wait asks whether the call can start at all.
function modes.waitq ()
  local client = aigc.client { base_url = url, api_key = "sk-bench", max_retries = 0, max_concurrency = k,
                               timeout = 120, connect_timeout = 60 }
  local stop = false
  local submit
  local function on_done () if not stop then submit() end end
  function submit ()
    local p = params(1)
    p.on_done, p.on_error = on_done, function (err) error(tostring(err)) end
    client:chat_async(p)
  end
  for _ = 1, k do submit() end
  for i = 1, 2 do check(client:chat(params(i))) end   -- (each waits for ~K others: 2 warm up)
  local t0, c0 = now(), clock()
  for i = 1, n do check(client:chat(params(i))) end
  local wall, cpu = now() - t0, clock() - c0
  stop = true
  while client:step(1) > 0 do end
  client:close()
  report(n, wall, cpu, { { "chat_us", ("%.1f"):format(cpu / n * 1e6) } })
end

-- RSS after a warm-up and after N more requests, each after a full GC.
function modes.rss ()
  local client = aigc.client { base_url = url, api_key = "sk-bench", max_retries = 0 }
  for i = 1, 5000 do check(client:chat(params(i))) end
  collectgarbage("collect")
  collectgarbage("collect")
  local rss0 = status_kb("VmRSS")
  local t0, c0 = now(), clock()
  for i = 1, n do check(client:chat(params(i))) end
  local wall, cpu = now() - t0, clock() - c0
  collectgarbage("collect")
  collectgarbage("collect")
  local rss1 = status_kb("VmRSS")
  report(n, wall, cpu, { { "rss0_kb", rss0 }, { "rss1_kb", rss1 }, { "growth_kb", rss1 - rss0 } })
end

assert(modes[mode], "unknown mode " .. tostring(mode))(mode)
