-- The benchmark driver (bench/run.sh runs it from the repo root, after
-- installing what it needs and building the floor).
--
-- Starts the canned nginx pinned to one CPU, runs every client in several
-- alternating rounds (the order reverses each round, so a drift of the
-- machine's load does not favour one side), and prints each figure as the
-- median of the rounds beside its ratio to the C floor of the same round,
-- then the targets as met / missed. Benchmarks only: nothing here is a
-- test, nothing fails on a missed target.
--
-- Environment: BENCH_QUICK=1 (a fast pass: 2 rounds, a quarter of the
-- work), BENCH_ROUNDS=N, BENCH_CPU (the CPU for nginx and the client,
-- default 0), BENCH_SPLIT_CPU (the client's CPU in the split placement,
-- default 1; "none" skips it), BENCH_OUT (also write the report there),
-- BENCH_JIT=0 (leave LuaJIT out).
--
-- aigc runs twice in each scenario: under Lua 5.4 (./aigc/core.so) and
-- under LuaJIT 2.1 (the module `make LUA_VERSION=jit` built, found with
-- `make cpath LUA_VERSION=jit`), each with its ratio to the same C floor;
-- a last table puts LuaJIT's figures over 5.4's.

package.path = "bench/?.lua;" .. package.path

local fixtures = require "fixtures"
local server = require "server"
local socket = require "socket"

local QUICK = os.getenv("BENCH_QUICK") == "1"
local ROUNDS = tonumber(os.getenv("BENCH_ROUNDS") or "") or (QUICK and 2 or 5)
local SCALE = QUICK and 0.25 or 1
-- The CPUs this process may use (a container may not offer CPU 0).
local function allowed_cpus ()
  local f = io.open("/proc/self/status")
  local list = f and f:read("a"):match("Cpus_allowed_list:%s*(%S+)") or "0"
  if f then f:close() end
  local cpus = {}
  for a, b in list:gmatch("(%d+)%-?(%d*)") do
    for c = tonumber(a), tonumber(b ~= "" and b or a) do cpus[#cpus + 1] = tostring(c) end
  end
  return cpus
end
local CPUS = allowed_cpus()
local CPU = os.getenv("BENCH_CPU") or CPUS[1] or "0"
local SPLIT_CPU = os.getenv("BENCH_SPLIT_CPU") or CPUS[2] or "none"
local OUT = os.getenv("BENCH_OUT")
local DIR = "build/bench"
local LOG = DIR .. "/clients.log"

local function count (n) return math.max(1, math.floor(n * SCALE)) end

local function sh (cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  return out
end

-- LuaJIT's build of aigc: its cpath template, or nil (and why) when there is none.
local JIT_CPATH, JIT_MISSING
do
  local c = sh("make -s --no-print-directory cpath LUA_VERSION=jit 2>/dev/null"):gsub("%s+$", "")
  if os.getenv("BENCH_JIT") == "0" then JIT_MISSING = "BENCH_JIT=0"
  elseif sh("command -v luajit") == "" then JIT_MISSING = "luajit is not installed"
  elseif c == "" or c == "./?.so" then JIT_MISSING = "no per-version build (make cpath LUA_VERSION=jit)"
  elseif not io.open((c:gsub("%?", "aigc/core"))) then JIT_MISSING = "not built (make LUA_VERSION=jit)"
  else JIT_CPATH = c end
end
-- bench/lua_bound_core.c built for LuaJIT too (run.sh): the bound's LuaJIT row.
local JIT_BOUND = false
if JIT_CPATH then
  local f = io.open(DIR .. "/jit/lua_bound_core.so")
  if f then f:close(); JIT_BOUND = true end
end

local function write (path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local report_lines = {}
local function say (fmt, ...)
  local line = select("#", ...) > 0 and fmt:format(...) or fmt
  io.write(line, "\n")
  io.flush()
  report_lines[#report_lines + 1] = line
end

local TTY = os.execute("[ -t 2 ]")
local function progress (msg)
  if not TTY then return end
  io.stderr:write("\r\27[K", msg)
  io.stderr:flush()
end

-- Runs one client; returns its figures { n=, wall=, cpu=, rss_kb=, ... }
-- or nil and the tail of its log.
local function run (cpu, cmd)
  local full = ("taskset -c %s %s 2>>%s"):format(cpu, cmd, LOG)
  local f = io.open(LOG, "a")
  if f then f:write("$ ", full, "\n"); f:close() end
  local out = sh(full)
  local line = out:match("ok [^\n]*")
  if not line then
    return nil, (sh("tail -n 5 " .. LOG):gsub("\n", " | "))
  end
  local r = {}
  for k, v in line:gmatch("([%w_]+)=(%S+)") do r[k] = tonumber(v) or v end
  return r
end

local function median (list)
  if #list == 0 then return nil end
  local t = {}
  for i, v in ipairs(list) do t[i] = v end
  table.sort(t)
  local m = (#t + 1) // 2
  if #t % 2 == 1 then return t[m] end
  return (t[m] + t[m + 1]) / 2
end

-- {======================================================
-- The clients
-- =======================================================

local E_CHAT, E_STREAM = DIR .. "/expect_chat.txt", DIR .. "/expect_stream.txt"

-- Each client of a scenario: a name, and how to run it against srv.
-- The server's URL for a mode: "stream_openai" is the stream mode against
-- OpenAI's chunk shape of today (fixtures.stream_openai, the same text).
local function url_of (srv, mode)
  if mode == "stream_openai" then return srv.sse_openai_url, "stream" end
  -- K in flight over TLS: HTTP/2 (ALPN) or HTTP/1.1 only (server.lua's TLS ports)
  if mode == "multi_h2" then return srv.h2_url, "multi" end
  if mode == "multi_h1tls" then return srv.h1_tls_url, "multi" end
  if mode == "stream" then return srv.sse_url, mode end
  return srv.url, mode
end

local function floor (mode, n, k)
  return function (srv)
    local url, m = url_of(srv, mode)
    return ("build/bench/floor %s %s/chat/completions %d %s %s"):format(m, url, n,
      m == "stream" and E_STREAM or E_CHAT, k or "")
  end
end

-- The aigc client under Lua 5.4, or under LuaJIT when `jit` is true.
local function aigc_lua (jit)
  if jit then return ("env BENCH_CPATH='%s' luajit"):format(JIT_CPATH) end
  return "lua5.4"
end

local function aigc (mode, n, k, jit)
  return function (srv)
    local url, m = url_of(srv, mode)
    if url == nil then return "echo 'no TLS ports: openssl is missing' >&2" end
    return ("%s%s bench/aigc_bench.lua %s %s %d %s %s"):format(
      url:find("^https") and ("env BENCH_CA_FILE=%s "):format(srv.ca_file) or "", aigc_lua(jit), m, url, n,
      m == "stream" and E_STREAM or E_CHAT, k or "")
  end
end

local function node (mode, n, k)
  return function (srv)
    return ("node bench/node_bench.mjs %s %s %d %s %s"):format(mode, mode == "stream" and srv.sse_url or srv.url, n,
      mode == "stream" and E_STREAM or E_CHAT, k or "")
  end
end

-- leafo/lua-openai, unmodified, from ../shared/peers (BENCH_PEERS): the
-- client exits saying "skipped" when that folder is absent.
local function lua_openai (mode, n)
  return function (srv)
    local url = mode == "stream" and srv.sse_url or srv.url
    return ("lua5.4 bench/lua_openai_bench.lua %s %s %d %s"):format(mode, url, n,
      mode == "stream" and E_STREAM or E_CHAT)
  end
end

-- The least a Lua client costs (bench/lua_bound.lua): "bound" (the same
-- Lua objects as a decoded reply, made without parsing) or "cjson" (a
-- client written by hand on lua-cjson); through bench/lua_bound_core.c, whose
-- libcurl calls are the floor's. `jit`: under LuaJIT.
local function lua_bound (mode, n, jit)
  return function (srv)
    return ("%s bench/lua_bound.lua %s %s %d %s"):format(
      jit and "env BENCH_LUA_BOUND='build/bench/jit/?.so' luajit" or "lua5.4", mode, srv.url, n, E_CHAT)
  end
end

local function luasocket (n)
  return function (srv)
    return ("lua5.4 bench/luasocket_bench.lua seq %s %d %s"):format(srv.url, n, E_CHAT)
  end
end

-- Scenarios: the first client is the floor the others are compared with.
-- `per` is what a figure counts: requests or stream chunks.
local SCENARIOS = {
  { id = "seq", title = "Sequential: one request at a time, keep-alive", per = "req",
    clients = {
      { id = "floor", name = "C floor (libcurl, one easy handle)", cmd = floor("seq", count(20000)) },
      { id = "aigc", name = "aigc client:chat", cmd = aigc("seq", count(20000)) },
      { id = "lua_bound", name = "Lua bound (same objects, no parse)", cmd = lua_bound("bound", count(20000)) },
      { id = "lua_cjson", name = "libcurl + lua-cjson, by hand", cmd = lua_bound("cjson", count(20000)) },
      { id = "luasocket", name = "socket.http + cjson (pure Lua)", cmd = luasocket(count(3000)) },
      { id = "lua_openai", name = "leafo/lua-openai (socket.http, tableshape)", cmd = lua_openai("seq", count(2000)) },
      { id = "node", name = "OpenAI Node SDK (await)", cmd = node("seq", count(3000)) },
    } },
  { id = "multi64", title = "64 in flight", per = "req",
    clients = {
      { id = "floor", name = "C floor (curl-multi, 64 handles)", cmd = floor("multi", count(20000), 64) },
      { id = "aigc", name = "aigc chat_async + step", cmd = aigc("multi", count(20000), 64) },
      { id = "node", name = "OpenAI Node SDK (Promise.all of 64)", cmd = node("all", count(64 * 40), 64) },
    } },
  { id = "multi256", title = "256 in flight", per = "req",
    clients = {
      { id = "floor", name = "C floor (curl-multi, 256 handles)", cmd = floor("multi", count(20000), 256) },
      { id = "aigc", name = "aigc chat_async + step", cmd = aigc("multi", count(20000), 256) },
      { id = "steps", name = "aigc, step(0) loop, each step timed", cmd = aigc("steps", count(20000), 256) },
    } },
  { id = "stream", title = "Streaming: 200 chunks per response", per = "chunk",
    clients = {
      { id = "floor", name = "C floor (SSE split in the write callback)", cmd = floor("stream", count(1000)) },
      { id = "aigc", name = "aigc client:chat{stream = fn}", cmd = aigc("stream", count(1000)) },
      { id = "node", name = "OpenAI Node SDK (for await)", cmd = node("stream", count(100)) },
      { id = "lua_openai", name = "leafo/lua-openai (chunk callback)", cmd = lua_openai("stream", count(50)) },
    } },
  -- What an independent benchmark measured (issue 17): today's OpenAI
  -- chunks (each with its "obfuscation" padding), include_usage off, a
  -- one-parameter callback counting deltas.
  -- HTTP/2 (issue 17 item 4): 1,000 in flight over TLS, multiplexed on one
  -- connection, against 1,000 HTTP/1.1 connections (the base of the ratios
  -- here, in the "floor" column). The client counts its sockets.
  { id = "h2", title = "TLS, 1,000 in flight: HTTP/2 (one connection) over HTTP/1.1 (one each) as the base",
    per = "req", clients = {
      { id = "floor", name = "aigc, HTTP/1.1 over TLS", cmd = aigc("multi_h1tls", count(10000), 1000) },
      { id = "aigc", name = "aigc, HTTP/2 over TLS", cmd = aigc("multi_h2", count(10000), 1000) },
    } },
  { id = "stream_openai", title = "Streaming, OpenAI's chunks of today (+ obfuscation), include_usage off",
    per = "chunk", clients = {
      { id = "floor", name = "C floor (SSE split in the write callback)", cmd = floor("stream_openai", count(1000)) },
      { id = "aigc", name = "aigc client:chat{stream = fn}", cmd = aigc("stream_openai", count(1000)) },
    } },
}

-- The split placement: the figures that matter most, fewer rounds.
-- LuaJIT's rows, under 5.4's in each scenario (when LuaJIT's build is there).
local JIT_ROWS = {
  seq = { id = "aigc_jit", name = "aigc client:chat, LuaJIT", mode = "seq", n = 20000 },
  multi64 = { id = "aigc_jit", name = "aigc chat_async + step, LuaJIT", mode = "multi", n = 20000, k = 64 },
  multi256 = { id = "aigc_jit", name = "aigc chat_async + step, LuaJIT", mode = "multi", n = 20000, k = 256 },
  stream = { id = "aigc_jit", name = "aigc client:chat{stream = fn}, LuaJIT", mode = "stream", n = 1000 },
  stream_openai = { id = "aigc_jit", name = "aigc client:chat{stream = fn}, LuaJIT", mode = "stream_openai",
                    n = 1000 },
}

local SPLIT = {
  { id = "seq", title = "Sequential", per = "req", clients = {
      { id = "floor", name = "C floor", cmd = floor("seq", count(5000)) },
      { id = "aigc", name = "aigc", cmd = aigc("seq", count(5000)) } } },
  { id = "multi64", title = "64 in flight", per = "req", clients = {
      { id = "floor", name = "C floor", cmd = floor("multi", count(20000), 64) },
      { id = "aigc", name = "aigc", cmd = aigc("multi", count(20000), 64) } } },
  { id = "stream", title = "Streaming", per = "chunk", clients = {
      { id = "floor", name = "C floor", cmd = floor("stream", count(1000)) },
      { id = "aigc", name = "aigc", cmd = aigc("stream", count(1000)) } } },
}

if JIT_CPATH then
  local function add (scenarios, name_of, n_of)
    for _, sc in ipairs(scenarios) do
      local row = JIT_ROWS[sc.id]
      if row then
        for i, c in ipairs(sc.clients) do
          if c.id == "aigc" then
            table.insert(sc.clients, i + 1, { id = row.id, name = name_of(row),
              cmd = aigc(row.mode, count(n_of(row)), row.k, true) })
            break
          end
        end
      end
    end
  end
  add(SCENARIOS, function (row) return row.name end, function (row) return row.n end)
  if JIT_BOUND then
    for i, c in ipairs(SCENARIOS[1].clients) do
      if c.id == "lua_bound" then
        table.insert(SCENARIOS[1].clients, i + 1, { id = "lua_bound_jit", name = "Lua bound, LuaJIT",
                                                     cmd = lua_bound("bound", count(20000), true) })
        break
      end
    end
  end
  add(SPLIT, function () return "aigc, LuaJIT" end, function (row) return row.mode == "seq" and 5000 or row.n end)
end

-- }======================================================


-- {======================================================
-- Rounds
-- =======================================================

-- Per-run figures: rate (requests or chunks per second), CPU per unit (us).
local function figures (r, per)
  local units = per == "chunk" and r.chunks or r.n
  return { rate = units / r.wall, cpu = r.cpu / units * 1e6, rss = r.rss_kb, raw = r }
end

-- Runs `rounds` alternating rounds of every scenario on `cpu`. Returns
-- results[scenario][client] = { runs = {figures...}, ratio_cpu = {...}, ratio_rate = {...} }.
local function rounds (srv, scenarios, cpu, nrounds, label)
  local results = {}
  for _, sc in ipairs(scenarios) do
    results[sc.id] = {}
    for _, c in ipairs(sc.clients) do
      results[sc.id][c.id] = { runs = {}, ratio_cpu = {}, ratio_rate = {}, failed = nil }
    end
  end
  for round = 1, nrounds do
    for _, sc in ipairs(scenarios) do
      local order = {}
      for i, c in ipairs(sc.clients) do order[i] = c end
      if round % 2 == 0 then   -- alternate: reversed every other round
        local rev = {}
        for i = #order, 1, -1 do rev[#rev + 1] = order[i] end
        order = rev
      end
      local this = {}
      for _, c in ipairs(order) do
        progress(("%s round %d/%d: %s / %s"):format(label, round, nrounds, sc.id, c.id))
        local r, err = run(cpu, c.cmd(srv))
        if r then
          this[c.id] = figures(r, sc.per)
          table.insert(results[sc.id][c.id].runs, this[c.id])
        else
          results[sc.id][c.id].failed = err
        end
      end
      local fl = this.floor
      for id, f in pairs(this) do
        if fl then
          table.insert(results[sc.id][id].ratio_cpu, f.cpu / fl.cpu)
          table.insert(results[sc.id][id].ratio_rate, f.rate / fl.rate)
        end
      end
    end
  end
  progress("")
  return results
end

local function med (res, field)
  local t = {}
  for i, f in ipairs(res.runs) do t[i] = f[field] end
  return median(t)
end

local function med_raw (res, field)
  local t = {}
  for _, f in ipairs(res.runs) do t[#t + 1] = tonumber(f.raw[field]) end
  return median(t)
end

-- }======================================================


-- {======================================================
-- Printing
-- =======================================================

local function fmt_rate (x)
  if not x then return "-" end
  local s = ("%.0f"):format(x)
  return (s:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", ""))
end

local function fmt_num (x, digits)
  if not x then return "-" end
  return ("%." .. (digits or 2) .. "f"):format(x)
end

local function print_scenario (sc, res)
  local unit = sc.per == "chunk" and "chunk" or "req"
  say("")
  say("%s", sc.title)
  say("  %-44s %12s %9s %8s %8s %9s", "client", unit .. "/s", "CPU/" .. unit, "x floor", "rate x", "peak RSS")
  say("  %-44s %12s %9s %8s %8s %9s", "", "", "(us)", "(CPU)", "floor", "(MiB)")
  for _, c in ipairs(sc.clients) do
    local r = res[sc.id][c.id]
    if #r.runs == 0 then
      say("  %-44s %s: %s", c.name, tostring(r.failed):find("skipped", 1, true) and "skipped" or "failed",
          tostring(r.failed))
    else
      local rss = med(r, "rss")
      say("  %-44s %12s %9s %8s %8s %9s", c.name, fmt_rate(med(r, "rate")),
          fmt_num(med(r, "cpu"), sc.per == "chunk" and 3 or 2), fmt_num(median(r.ratio_cpu)),
          fmt_num(median(r.ratio_rate)), fmt_num(rss and rss / 1024, 1))
    end
  end
  local socks = {}
  for _, c in ipairs(sc.clients) do
    local n = med_raw(res[sc.id][c.id], "sockets")
    if n then socks[#socks + 1] = ("%s %.0f"):format(c.name, n) end
  end
  if #socks > 0 then say("  sockets open in the client after the warm-up: %s", table.concat(socks, ", ")) end
  if sc.per == "chunk" then   -- the same runs, per stream (a request of 200 chunks)
    local parts = {}
    for _, c in ipairs(sc.clients) do
      local r = res[sc.id][c.id]
      local t = {}
      for i, f in ipairs(r.runs) do t[i] = f.raw.cpu / f.raw.n * 1e6 end
      if #t > 0 then parts[#parts + 1] = ("%s %s us"):format(c.id, fmt_num(median(t), 1)) end
    end
    say("  CPU per stream request (%d chunks): %s", fixtures.chunks, table.concat(parts, ", "))
  end
end

-- }======================================================


-- {======================================================
-- Scale curves and charts
-- =======================================================

local SCALE_K = { 64, 256, 1024, 4096 }

-- Each K: the floor, aigc and the Lua bound (bench/lua_bound.lua: the
-- least a Lua client with K in flight costs), in rounds whose order
-- rotates; then step(0) with K waiting. Prints the table, writes
-- DIR/scale.dat, draws the charts.
local function scale_curves (srv)
  local rows = {}
  local nrounds = math.max(1, ROUNDS // 2)
  for _, k in ipairs(SCALE_K) do
    local n = math.max(count(20000), 4 * k)
    local row = { k = k, floor = {}, aigc = {}, bound = {}, ratio = {}, bound_ratio = {} }
    local cmds = { floor = floor("multi", n, k), aigc = aigc("multi", n, k),
                   bound = function (s) return lua_bound("bound", n)(s) .. " " .. k end }
    for round = 1, nrounds do
      progress(("scale K=%d round %d/%d"):format(k, round, nrounds))
      local order = ({ { "floor", "aigc", "bound" }, { "bound", "aigc", "floor" }, { "aigc", "floor", "bound" } })
                    [(round - 1) % 3 + 1]
      local this = {}
      for _, who in ipairs(order) do
        local r = run(CPU, cmds[who](srv))
        if r then
          this[who] = figures(r, "req")
          table.insert(row[who], this[who])
        end
      end
      if this.floor and this.aigc then table.insert(row.ratio, this.aigc.cpu / this.floor.cpu) end
      if this.floor and this.bound then table.insert(row.bound_ratio, this.bound.cpu / this.floor.cpu) end
    end
    local idle = run(CPU, ("lua5.4 bench/aigc_bench.lua idle - %d - %d"):format(count(8000), k))
    row.step_med = idle and idle.step_med_us
    row.idle_rss = idle and idle.rss_kb
    local fidle = run(CPU, ("build/bench/floor idle - 0 - %d"):format(k))
    row.floor_idle_rss = fidle and fidle.rss_kb
    rows[#rows + 1] = row
  end
  progress("")
  local function med_of (list, field)
    local t = {}
    for i, f in ipairs(list) do t[i] = f[field] end
    return median(t)
  end
  say("")
  say("Scale: K requests in flight (aigc chat_async + step beside curl-multi with K handles; %d round(s))", nrounds)
  say("  %6s %12s %12s %10s %10s %10s %10s %10s %12s %12s", "K", "floor req/s", "aigc req/s", "floor CPU",
      "aigc CPU", "x floor", "Lua bound", "bound x", "step(0) K", "RSS K")
  say("  %6s %12s %12s %10s %10s %10s %10s %10s %12s %12s", "", "", "", "(us/req)", "(us/req)", "(CPU)", "CPU (us)",
      "floor", "waiting (us)", "waiting MiB")
  local dat = { "# K floor_rps aigc_rps floor_cpu_us aigc_cpu_us ratio step_med_us bound_cpu_us bound_ratio" }
  for _, row in ipairs(rows) do
    local fr, ar = med_of(row.floor, "rate"), med_of(row.aigc, "rate")
    local fc, ac, bc = med_of(row.floor, "cpu"), med_of(row.aigc, "cpu"), med_of(row.bound, "cpu")
    row.x, row.bound_x = median(row.ratio), median(row.bound_ratio)
    say("  %6d %12s %12s %10s %10s %10s %10s %10s %12s %12s", row.k, fmt_rate(fr), fmt_rate(ar), fmt_num(fc, 1),
        fmt_num(ac, 1), fmt_num(row.x), fmt_num(bc, 1), fmt_num(row.bound_x), fmt_num(row.step_med),
        fmt_num(row.idle_rss and row.idle_rss / 1024, 1))
    dat[#dat + 1] = ("%d %s %s %s %s %s %s %s %s"):format(row.k, fr or "NaN", ar or "NaN", fc or "NaN", ac or "NaN",
      row.x or "NaN", row.step_med or "NaN", bc or "NaN", row.bound_x or "NaN")
  end
  -- Memory per waiting request: peak RSS growth from the smallest to the
  -- largest K, per request, for aigc and for the floor (libcurl's easy
  -- handle and what it keeps per transfer); the difference is aigc's own.
  local a, b = rows[1], rows[#rows]
  if a.idle_rss and b.idle_rss and a.floor_idle_rss and b.floor_idle_rss then
    local mine = (b.idle_rss - a.idle_rss) / (b.k - a.k)
    local theirs = (b.floor_idle_rss - a.floor_idle_rss) / (b.k - a.k)
    say("  memory per waiting request (peak RSS from K=%d to K=%d): aigc %.1f KiB, the floor (libcurl) %.1f KiB",
        a.k, b.k, mine, theirs)
    rows.own_kib = mine - theirs
  end
  write(DIR .. "/scale.dat", table.concat(dat, "\n") .. "\n")
  return rows
end

-- Draws bench/scale.svg with gnuplot (when installed): CPU per request,
-- throughput and step(0) against K; per-chunk CPU beside the floor's.
local function draw_charts (chunk_rows)
  if sh("command -v gnuplot") == "" then
    say("charts: gnuplot is not installed (scripts/deps.sh bench installs it)")
    return
  end
  local cd = {}
  for i, r in ipairs(chunk_rows) do cd[i] = ('%d "%s" %s'):format(i - 1, r[1], r[2] or "NaN") end
  write(DIR .. "/chunk.dat", table.concat(cd, "\n") .. "\n")
  local body = ([[
set multiplot layout 2,2 title "aigc beside the libcurl floor (DATE)"
set logscale x 2; set xrange [48:5500]; set xtics (64, 256, 1024, 4096); set grid; set key top left
set title "CPU per request (us), K in flight"; set xlabel "requests in flight"
plot "D/scale.dat" using 1:4 with linespoints title "curl-multi floor", "" using 1:5 with linespoints title "aigc", \
     "" using 1:8 with linespoints dashtype 2 title "Lua bound"
set title "throughput (requests/s)"
plot "D/scale.dat" using 1:2 with linespoints title "curl-multi floor", "" using 1:3 with linespoints title "aigc"
set title "client:step(0) with K waiting, median (us)"; set yrange [0:*]
plot "D/scale.dat" using 1:7 with linespoints title "aigc"
unset logscale x; set xrange [-0.6:3.6]; set xtics auto; set xlabel ""
set title "CPU per stream chunk (us); *: OpenAI's chunks"
set style fill solid 0.6; set boxwidth 0.6; set yrange [0:*]; set key off
plot "D/chunk.dat" using 1:3:xtic(2) with boxes
unset multiplot
]]):gsub("D/", DIR .. "/"):gsub("DATE", os.date("!%Y-%m-%d"))
  local ok = true
  for _, out in ipairs { { "svg", 'svg size 1000,760 dynamic font "sans,11"' },
                         { "png", 'pngcairo size 1000,760 font "sans,10"' } } do
    write(DIR .. "/charts-" .. out[1] .. ".gp",
          ("set terminal %s\nset output \"bench/scale.%s\"\n"):format(out[2], out[1]) .. body)
    ok = os.execute(("gnuplot %s/charts-%s.gp 2>>%s"):format(DIR, out[1], LOG)) and ok
  end
  say(ok and "charts: bench/scale.svg, bench/scale.png" or ("charts: gnuplot failed (see %s)"):format(LOG))
end

-- }======================================================


local function main ()
  os.execute("mkdir -p " .. DIR)
  write(LOG, "")
  write(E_CHAT, fixtures.content)
  write(E_STREAM, fixtures.stream_content)

  local ncpu = tonumber(sh("nproc --all")) or 1
  local split = SPLIT_CPU ~= "none" and SPLIT_CPU ~= CPU

  local srv = server.start(DIR .. "/nginx", CPU)
  local ok, err = pcall(function ()
    local t_start = socket.gettime()
    local machine = sh("lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1"):gsub("%s+$", "")
    say("aigc benchmarks, %s", os.date("!%Y-%m-%d %H:%M UTC"))
    say("machine: %s, %d CPUs, %s; Linux %s", machine ~= "" and machine or "?", ncpu,
        (sh("free -g | awk '/Mem:/ {print $2 \" GiB\"}'"):gsub("%s+$", "")), (sh("uname -r"):gsub("%s+$", "")))
    say("versions: %s, Lua %s, %s, node %s, openai %s (Node SDK), nginx %s; aigc at %s",
        (sh("curl-config --version 2>/dev/null"):gsub("%s+$", "")),
        sh("lua5.4 -v 2>&1"):match("Lua (%S+)") or "?",
        JIT_CPATH and (sh("luajit -v 2>&1"):match("(LuaJIT %S+)") or "LuaJIT ?") or ("no LuaJIT: " .. JIT_MISSING),
        (sh("node --version"):gsub("%s+$", "")),
        (sh("node -p \"require('./bench/node_modules/openai/package.json').version\""):gsub("%s+$", "")),
        sh("nginx -v 2>&1"):match("nginx/(%S+)") or "?",
        (sh("git rev-parse --short HEAD 2>/dev/null"):gsub("%s+$", ""))
          .. (sh("git status --porcelain src lua 2>/dev/null") ~= "" and " (+ uncommitted changes)" or ""))
    say("placement: nginx (one worker) and every client pinned to CPU %s (same CPU); %d alternating rounds%s",
        CPU, ROUNDS, QUICK and " (BENCH_QUICK: a quarter of the work)" or "")
    say("figures: medians of the rounds; 'x floor' = the median of each round's ratio to the C floor run beside it")

    local res = rounds(srv, SCENARIOS, CPU, ROUNDS, "same CPU")
    for _, sc in ipairs(SCENARIOS) do print_scenario(sc, res) end

    -- step() cost, with 256 in flight: the fixed cost of a step while
    -- every request waits (what a frame loop pays per frame), then a
    -- step(0) loop against nginx (each step delivers what is ready, so its
    -- time grows with the responses it hands over).
    local steps = res.multi256.steps
    local loop_med, loop_p99 = med_raw(steps, "step_med_us"), med_raw(steps, "step_p99_us")
    local loop_steps = med_raw(steps, "steps")
    progress("step() with 256 waiting")
    local function idle_steps (jit)
      local meds, p99s = {}, {}
      for _ = 1, ROUNDS do
        local r = run(CPU, ("%s bench/aigc_bench.lua idle - %d - 256"):format(aigc_lua(jit), count(20000)))
        if r then
          meds[#meds + 1] = r.step_med_us
          p99s[#p99s + 1] = r.step_p99_us
        end
      end
      return median(meds), median(p99s)
    end
    local idle_med, idle_p99 = idle_steps(false)
    local jit_idle_med, jit_idle_p99
    if JIT_CPATH then jit_idle_med, jit_idle_p99 = idle_steps(true) end
    say("")
    say("client:step(0) with 256 requests in flight (us per call)")
    say("  %-62s %8s %9s", "", "median", "p99")
    say("  %-62s %8s %9s", "all 256 waiting (sent, the server has not answered yet)",
        fmt_num(idle_med), fmt_num(idle_p99))
    if JIT_CPATH then
      say("  %-62s %8s %9s", "the same, LuaJIT", fmt_num(jit_idle_med), fmt_num(jit_idle_p99))
    end
    say("  %-62s %8s %9s", ("a step(0) loop against nginx (%s responses per step on average)")
        :format(loop_steps and fmt_num(count(20000) / loop_steps, 0) or "-"),
        fmt_num(loop_med, 1), fmt_num(loop_p99, 1))

    -- Timers (issue 17 item 3): K streams, each with its own timeout
    -- falling due in turn (aigc_bench.lua timers; T = K / 512 s, so that
    -- 512 time out per second at every K), each replaced as it ends.
    local timer_rows = {}
    for _, k in ipairs { 1024, 4096 } do
      progress(("timers K=%d"):format(k))
      local row = { k = k, med = {}, p99 = {}, cpu = {} }
      for _ = 1, math.max(1, ROUNDS // 2) do
        local r = run(CPU, ("env BENCH_TIMEOUT=%d lua5.4 bench/aigc_bench.lua timers - %d - %d"):format(k // 512,
          count(2000), k))
        if r then
          table.insert(row.med, r.step_med_us)
          table.insert(row.p99, r.step_p99_us)
          table.insert(row.cpu, r.cpu_req_us)
        end
      end
      timer_rows[#timer_rows + 1] = row
    end
    say("")
    say("Timers: K streams waiting, each with its own timeout (K / 512 s) falling due in turn, each replaced")
    say("  %6s %14s %14s %22s", "K", "step(0) median", "step(0) p99", "CPU per timed-out (us)")
    for _, row in ipairs(timer_rows) do
      say("  %6d %14s %14s %22s", row.k, fmt_num(median(row.med)), fmt_num(median(row.p99)),
          fmt_num(median(row.cpu), 1))
    end

    -- The queue (issue 17 item 3): Q = 4,096 queued behind max_concurrency
    -- = 4, all canceled newest first (aigc_bench.lua cancelq); blocking
    -- client:chat calls queued behind K = 1,024 in flight (waitq).
    progress("queue: cancels, blocking calls behind K")
    local cq, wq = { cancel = {}, ends = {} }, {}
    for _ = 1, math.max(1, ROUNDS // 2) do
      local r = run(CPU, ("lua5.4 bench/aigc_bench.lua cancelq - %d - 4"):format(count(4096)))
      if r then
        table.insert(cq.cancel, r.cancel_us)
        table.insert(cq.ends, r.end_us)
      end
      local w = run(CPU, ("lua5.4 bench/aigc_bench.lua waitq %s %d %s 1024"):format(srv.url, count(20), E_CHAT))
      if w then table.insert(wq, w.chat_us) end
    end
    say("")
    say("Queue: Q = %d queued behind max_concurrency = 4, canceled newest first (us per request)", count(4096))
    say("  %-62s %8s", "CPU per cancel", fmt_num(median(cq.cancel), 2))
    say("  %-62s %8s", "CPU per end delivered (on_error canceled)", fmt_num(median(cq.ends), 2))
    say("  %-62s %8s", "a blocking chat behind 1,024 in flight (ms CPU, ~1,024 served meanwhile)",
        fmt_num(median(wq) and median(wq) / 1000, 1))

    -- Scale (issue 17 item 3): CPU per request and throughput at 64 ...
    -- 4,096 in flight, aigc beside curl-multi, alternating; step(0) with K
    -- waiting; the charts.
    local scale = scale_curves(srv)

    -- Memory: RSS growth over 100,000 requests.
    progress("RSS growth")
    local nrss = QUICK and 20000 or 100000
    local rss = run(CPU, ("lua5.4 bench/aigc_bench.lua rss %s %d %s"):format(srv.url, nrss, E_CHAT))
    local growth_per_100k = rss and rss.growth_kb * 100000 / nrss
    local jit_rss = JIT_CPATH and run(CPU, ("%s bench/aigc_bench.lua rss %s %d %s"):format(aigc_lua(true), srv.url,
      nrss, E_CHAT))
    say("")
    say("Memory")
    for _, m in ipairs { { "aigc", rss }, { "aigc on LuaJIT", jit_rss, not JIT_CPATH } } do
      local r = m[2]
      if r then
        say("  %s RSS after 5,000 requests %.1f MiB, after %s more %.1f MiB: growth %+d KiB (%+.0f KiB per 100,000)",
            m[1], r.rss0_kb / 1024, fmt_rate(nrss), r.rss1_kb / 1024, r.growth_kb, r.growth_kb * 100000 / nrss)
      elseif not m[3] then
        say("  %s: RSS run failed", m[1])
      end
    end

    -- Start-up.
    progress("start-up (hyperfine)")
    local hf = DIR .. "/hyperfine.json"
    os.execute(("taskset -c %s hyperfine -N --warmup 20 --runs %d --export-json %s "
      .. "\"lua5.4 -e ''\" \"lua5.4 -e 'package.path=[[lua/?.lua;lua/?/init.lua;]]..package.path "
      .. "package.cpath=[[./?.so;]]..package.cpath require [[aigc]]'\" "
      .. "\"lua5.4 -e 'package.path=[[lua/?.lua;lua/?/init.lua;]]..package.path "
      .. "package.cpath=[[./?.so;]]..package.cpath require([[aigc]]).client{base_url=[[http://127.0.0.1:1/v1]]}'\" "
      .. ">/dev/null 2>>%s"):format(CPU, QUICK and 50 or 200, hf, LOG))
    local hj = io.open(hf) and io.open(hf):read("a") or ""
    local means = {}
    for m in hj:gmatch('"median":%s*([%d.e+-]+)') do means[#means + 1] = tonumber(m) end
    local jit_means = {}
    if JIT_CPATH then
      local jhf = DIR .. "/hyperfine-jit.json"
      local setup = ("package.path=[[lua/?.lua;lua/?/init.lua;]]..package.path package.cpath=[[%s;]]..package.cpath")
        :format(JIT_CPATH)
      os.execute(("taskset -c %s hyperfine -N --warmup 20 --runs %d --export-json %s "
        .. "\"luajit -e ''\" \"luajit -e '%s require [[aigc]]'\" "
        .. "\"luajit -e '%s require([[aigc]]).client{base_url=[[http://127.0.0.1:1/v1]]}'\" "
        .. ">/dev/null 2>>%s"):format(CPU, QUICK and 50 or 200, jhf, setup, setup, LOG))
      local jj = io.open(jhf) and io.open(jhf):read("a") or ""
      for m in jj:gmatch('"median":%s*([%d.e+-]+)') do jit_means[#jit_means + 1] = tonumber(m) end
    end
    say("")
    say("Start-up (hyperfine, median of %d runs)", QUICK and 50 or 200)
    for _, set in ipairs { { "lua5.4", means }, { "luajit", jit_means, not JIT_CPATH } } do
      local lua, ms = set[1], set[2]
      if #ms >= 3 then
        say("  %-35s %7.2f ms", lua .. " -e ''", ms[1] * 1e3)
        say("  %-35s %7.2f ms  (+%.2f ms)", lua .. ": require \"aigc\"", ms[2] * 1e3, (ms[2] - ms[1]) * 1e3)
        say("  %-35s %7.2f ms  (+%.2f ms)", lua .. ": + aigc.client{...}", ms[3] * 1e3, (ms[3] - ms[1]) * 1e3)
      elseif not set[3] then
        say("  %s: hyperfine failed (see %s)", lua, LOG)
      end
    end

    -- Instructions per request under callgrind: the difference between a
    -- run of N+1000 and one of N requests, so start-up cancels out.
    progress("callgrind")
    local function instructions (cmd)
      -- (valgrind goes after an `env X=...` prefix: run on `env`, it would
      -- count env and not the interpreter env runs: the LuaJIT rows)
      local env, rest = cmd:match("^(env%s+[%w_]+=%S+%s+)(.*)$")
      local out = sh(("%svalgrind --tool=callgrind --callgrind-out-file=/dev/null %s 2>&1 >/dev/null")
        :format(env or "", rest or cmd))
      return tonumber((out:match("Collected : (%d+)")))
    end
    -- Each row: a name, how to run it for n requests (or streams), the
    -- units per request (200 chunks per stream), and the row it is a
    -- ratio to (the C floor of the same work).
    local cg = {}
    local SEQ, STREAM, OPENAI = "C floor, sequential", "C floor, stream (per chunk)",
                                "C floor, OpenAI's chunks (per chunk)"
    local cg_runs = {
      { SEQ, function (n) return floor("seq", n)(srv) end },
      { "aigc, sequential", function (n) return aigc("seq", n)(srv) end, 1, SEQ },
      { "Lua bound, sequential", function (n) return lua_bound("bound", n)(srv) end, 1, SEQ },
      { "libcurl + lua-cjson, sequential", function (n) return lua_bound("cjson", n)(srv) end, 1, SEQ },
      { STREAM, function (n) return floor("stream", n)(srv) end, 200 },
      { "aigc, stream (per chunk)", function (n) return aigc("stream", n)(srv) end, 200, STREAM },
      { OPENAI, function (n) return floor("stream_openai", n)(srv) end, 200 },
      { "aigc, OpenAI's chunks (per chunk)", function (n) return aigc("stream_openai", n)(srv) end, 200, OPENAI },
    }
    if JIT_CPATH then
      table.insert(cg_runs, 5, { "aigc on LuaJIT, sequential", function (n) return aigc("seq", n, nil, true)(srv) end,
                                 1, SEQ })
      if JIT_BOUND then
        table.insert(cg_runs, 6, { "Lua bound on LuaJIT, sequential",
                                   function (n) return lua_bound("bound", n, true)(srv) end, 1, SEQ })
      end
      table.insert(cg_runs, { "aigc on LuaJIT, stream (per chunk)",
                              function (n) return aigc("stream", n, nil, true)(srv) end, 200, STREAM })
    end
    local cg_by_name = {}
    for _, c in ipairs(cg_runs) do
      local k = c[3] or 1
      -- enough to average over GC cycles: 500 and 3,000 requests; a stream
      -- row 10 and 60 requests of 200 chunks (2 and 15 left the first
      -- requests' warm-up in the difference: ~120 instructions per chunk)
      local n0, n1 = 500 // k, 3000 // k
      if k > 1 then n0, n1 = 2000 // k, 12000 // k end
      local a, b = instructions(c[2](n0)), instructions(c[2](n1))
      cg[#cg + 1] = { c[1], a and b and (b - a) / ((n1 - n0) * k), c[4] }
      cg_by_name[c[1]] = cg[#cg][2]
    end
    say("")
    say("Instructions (callgrind; the difference of runs of 3,000 and 500 requests, "
        .. "of 60 and 10 streams; start-up cancelled)")
    for _, c in ipairs(cg) do
      local ratio, base = "", c[3] and cg_by_name[c[3]]
      if base and c[2] then ratio = ("  %.2fx the floor"):format(c[2] / base) end
      say("  %-34s %10s per %s%s", c[1], c[2] and fmt_rate(c[2]) or "failed",
          c[1]:find("chunk", 1, true) and "chunk" or "request", ratio)
    end

    -- System calls per request (strace -c): the kernel's work, which
    -- callgrind does not count. The difference of two run lengths, as
    -- above. (clock() in every request's hash seed was a system call the
    -- vDSO does not answer: 4 per request, 15 % of the CPU, unseen by
    -- callgrind until this table.)
    progress("strace")
    say("")
    if sh("command -v strace") == "" then
      say("System calls: not measured (strace is not installed; scripts/deps.sh bench installs it)")
    else
      -- strace -c's counts by name, of `cmd` traced with `how`.
      local function counted (how, cmd)
        local file = DIR .. "/strace.txt"
        os.remove(file)
        sh(("strace %s -f -c -o %s %s >/dev/null 2>&1"):format(how, file, cmd))
        local f = io.open(file)
        if not f then return nil end
        local calls = {}
        for line in f:lines() do
          local n, name = line:match("^%s*[%d.]+%s+[%d.]+%s+%d+%s+(%d+)%s+%d*%s*([%w_]+)%s*$")
          if n and name ~= "total" then calls[name] = tonumber(n) end
        end
        f:close()
        return calls
      end
      -- Every call stopping the process slows it, and with K in flight a
      -- slower client finds more answers ready per step: its heap then
      -- behaves otherwise (full tracing showed no `brk` at 64 in flight,
      -- where there is one every ~9 requests). The memory calls are
      -- counted apart, tracing only them (--seccomp-bpf: the others run
      -- untouched).
      local function syscalls (cmd)
        local all, memory = counted("", cmd), counted("--seccomp-bpf -e trace=%memory", cmd)
        if not (all and next(all) and memory) then return nil end
        for _, name in ipairs { "brk", "mmap", "munmap", "mremap", "madvise", "mprotect" } do
          all[name] = memory[name]
        end
        return all
      end
      -- Minor page faults, from /usr/bin/time (GNU time): also the kernel's
      -- work, and not a system call (glibc returning the heap's top after a
      -- Lua GC cycle, and faulting it back page by page, makes ~1 a request
      -- with 64 in flight). Longer runs: they come in bursts.
      local function faults (cmd)
        local out = sh(("/usr/bin/time -f 'MINFLT=%%R' %s 2>&1 >/dev/null"):format(cmd))
        return tonumber(out:match("MINFLT=(%d+)"))
      end
      local has_time = sh("test -x /usr/bin/time && echo yes"):find("yes") ~= nil
      say("System calls per request (strace -c -f, the memory calls in a run of their own; the difference of runs"
          .. " of 3,000 and 500 requests, of 60 and 10 streams) and minor page faults per request (GNU time; of"
          .. " 12,000 and 2,000 requests, 300 and 50 streams)")
      say("  %-34s %6s %8s  %s", "", "calls", "faults", "the calls")
      for _, c in ipairs {
        { "C floor, sequential", function (n) return floor("seq", n)(srv) end },
        { "aigc, sequential", function (n) return aigc("seq", n)(srv) end },
        { "C floor, 64 in flight", function (n) return floor("multi", n, 64)(srv) end },
        { "aigc, 64 in flight", function (n) return aigc("multi", n, 64)(srv) end },
        { "C floor, stream of 200 chunks", function (n) return floor("stream", n)(srv) end, 200 },
        { "aigc, stream of 200 chunks", function (n) return aigc("stream", n)(srv) end, 200 },
      } do
        local n0, n1, f0, f1 = 500, 3000, 2000, 12000
        if c[3] then n0, n1, f0, f1 = 10, 60, 50, 300 end
        local a, b = syscalls(c[2](n0)), syscalls(c[2](n1))
        local fa, fb
        if has_time then fa, fb = faults(c[2](f0)), faults(c[2](f1)) end
        local per_fault = fa and fb and fmt_num((fb - fa) / (f1 - f0), 3) or "-"
        if a and b then
          local total, parts = 0, {}
          for name, nb in pairs(b) do
            local per = (nb - (a[name] or 0)) / (n1 - n0)
            total = total + per
            if per >= 0.05 then parts[#parts + 1] = { name, per } end
          end
          table.sort(parts, function (x, y) return x[2] > y[2] end)
          for i, p in ipairs(parts) do parts[i] = ("%s %.2f"):format(p[1], p[2]) end
          say("  %-34s %6.2f %8s  (%s)", c[1], total, per_fault, table.concat(parts, ", "))
        else
          say("  %-34s %6s %8s", c[1], "failed", per_fault)
        end
      end
    end

    -- Split placement.
    local sres
    if split then
      os.execute("mkdir -p " .. DIR)
      sres = rounds(srv, SPLIT, SPLIT_CPU, math.max(2, ROUNDS // 2), "split")
      say("")
      say("Split placement: nginx on CPU %s, the client on CPU %s (%d rounds; a cross-CPU wake-up per request)",
          CPU, SPLIT_CPU, math.max(2, ROUNDS // 2))
      for _, sc in ipairs(SPLIT) do print_scenario(sc, sres) end
    end

    -- LuaJIT next to Lua 5.4: each figure of the same-CPU rounds, as a ratio.
    say("")
    if JIT_CPATH then
      say("LuaJIT next to Lua 5.4 (same-CPU rounds; CPU ratio < 1: LuaJIT spends less)")
      say("  %-44s %12s %12s %10s %10s", "scenario", "5.4 x floor", "JIT x floor", "JIT/5.4", "JIT/5.4")
      say("  %-44s %12s %12s %10s %10s", "", "(CPU)", "(CPU)", "(CPU)", "(rate)")
      local shown = 0
      for _, sc in ipairs(SCENARIOS) do
        local a, j = res[sc.id].aigc, res[sc.id].aigc_jit
        if a and j and #a.runs > 0 and #j.runs > 0 then
          shown = shown + 1
          say("  %-44s %12s %12s %10s %10s", (sc.title:gsub(":.*", "")), fmt_num(median(a.ratio_cpu)),
              fmt_num(median(j.ratio_cpu)), fmt_num(med(j, "cpu") / med(a, "cpu")),
              fmt_num(med(j, "rate") / med(a, "rate")))
        end
      end
      if shown == 0 then say("  (no scenario has figures from both: see the failed rows above)") end
    else
      say("LuaJIT: not measured (%s)", JIT_MISSING)
    end

    -- Targets.
    local function ratio (sc, id, field) return median(res[sc][id][field]) end
    local function cg_ratio (name)   -- a callgrind row over its floor's row
      for _, c in ipairs(cg) do
        if c[1] == name and c[2] and c[3] and cg_by_name[c[3]] then return c[2] / cg_by_name[c[3]] end
      end
      return nil
    end
    local aigc_cpu = med(res.seq.aigc, "cpu")
    local targets = {
      { "CPU per request <= 1.25x the C floor (full decode into Lua tables)",
        ratio("seq", "aigc", "ratio_cpu"), function (v) return v <= 1.25 end, "%.2fx" },
      { ">= 5x less CPU per request than socket.http + cjson",
        med(res.seq.luasocket, "cpu") and aigc_cpu and med(res.seq.luasocket, "cpu") / aigc_cpu,
        function (v) return v >= 5 end, "%.1fx less" },
      { ">= 60x less CPU per request than the OpenAI Node SDK",
        med(res.seq.node, "cpu") and aigc_cpu and med(res.seq.node, "cpu") / aigc_cpu,
        function (v) return v >= 60 end, "%.1fx less" },
      { "streaming: <= 1 us CPU per chunk delivered to a Lua callback",
        med(res.stream.aigc, "cpu"), function (v) return v <= 1 end, "%.3f us" },
      { "per stream chunk <= 1.5x the C floor (CPU)",
        ratio("stream", "aigc", "ratio_cpu"), function (v) return v <= 1.5 end, "%.2fx" },
      { "per stream chunk <= 1.5x the C floor (CPU), OpenAI's chunks of today",
        ratio("stream_openai", "aigc", "ratio_cpu"), function (v) return v <= 1.5 end, "%.2fx" },
      { "per stream chunk <= 1.5x the C floor (callgrind instructions)",
        cg_ratio("aigc, stream (per chunk)"), function (v) return v <= 1.5 end, "%.2fx" },
      { "per request <= 1.25x the C floor (callgrind instructions)",
        cg_ratio("aigc, sequential"), function (v) return v <= 1.25 end, "%.2fx" },
      { "64 in flight: >= 0.8x the curl-multi floor's throughput",
        ratio("multi64", "aigc", "ratio_rate"), function (v) return v >= 0.8 end, "%.2fx" },
      { "step() with 256 in flight: <= 50 us median (all 256 waiting)",
        idle_med, function (v) return v <= 50 end, "%.1f us" },
      { "LuaJIT: CPU per request <= 1.25x the C floor",
        JIT_CPATH and ratio("seq", "aigc_jit", "ratio_cpu") or nil, function (v) return v <= 1.25 end, "%.2fx" },
      { "LuaJIT: streaming <= 1 us CPU per chunk",
        JIT_CPATH and med(res.stream.aigc_jit, "cpu") or nil, function (v) return v <= 1 end, "%.3f us" },
      { "LuaJIT: step() with 256 in flight <= 50 us median",
        jit_idle_med, function (v) return v <= 50 end, "%.1f us" },
      { "CPU per request <= 1.3x curl-multi at 64, 256, 1,024 and 4,096 in flight (the worst)",
        (function ()
          local worst
          for _, row in ipairs(scale) do if row.x and (not worst or row.x > worst) then worst = row.x end end
          return worst
        end)(), function (v) return v <= 1.3 end, "%.2fx" },
      { "aigc's own memory per request in flight <= 4 KiB beyond libcurl's",
        scale.own_kib, function (v) return v <= 4 end, "%.1f KiB" },
      { "client:step(0) <= 50 us median with 4,096 requests waiting",
        scale[#scale].step_med, function (v) return v <= 50 end, "%.1f us" },
      { "RSS growth <= 1 MiB per 100,000 requests",
        growth_per_100k, function (v) return v <= 1024 end, "%+.0f KiB" },
    }
    -- The peers users compare with: aigc's CPU over theirs.
    say("")
    say("aigc next to the other clients (CPU per request or per chunk, same-CPU rounds)")
    for _, row in ipairs {
      { "seq", "luasocket", "socket.http + cjson, per request" }, { "seq", "lua_openai", "lua-openai, per request" },
      { "seq", "node", "OpenAI Node SDK, per request" }, { "stream", "lua_openai", "lua-openai, per chunk" },
      { "stream", "node", "OpenAI Node SDK, per chunk" } } do
      local other, mine = res[row[1]][row[2]], res[row[1]].aigc
      if other and #other.runs > 0 and #mine.runs > 0 then
        say("  %-44s %7.1fx less CPU with aigc", row[3], med(other, "cpu") / med(mine, "cpu"))
      else
        say("  %-44s %s", row[3], other and other.failed and (tostring(other.failed):find("skipped", 1, true)
          and "skipped (../shared/peers absent)" or "failed") or "-")
      end
    end
    say("")
    say("Targets")
    for _, t in ipairs(targets) do
      local v = t[2]
      local mark = v == nil and "n/a   " or (t[3](v) and "met   " or "MISSED")
      say("  [%s] %-72s %s", mark, t[1], v and t[4]:format(v) or "-")
    end
    -- What Lua itself costs (bench/lua_bound.lua): a per-request target
    -- under the bound cannot be met by any Lua module that returns the
    -- reply as tables, however little it does.
    say("")
    say("The Lua bound: the same Lua objects as a decoded reply, made without parsing, libcurl called as the floor"
        .. " calls it (bench/lua_bound.lua)")
    local function over (a, b) return a and b and a / b or nil end
    local rows = { { "Lua 5.4", "lua_bound", "aigc", "Lua bound, sequential", "aigc, sequential" } }
    if JIT_BOUND then
      rows[2] = { "LuaJIT", "lua_bound_jit", "aigc_jit", "Lua bound on LuaJIT, sequential",
                  "aigc on LuaJIT, sequential" }
    end
    for _, r in ipairs(rows) do
      local bound_res, aigc_res = res.seq[r[2]], res.seq[r[3]]
      say("  %-8s per request: the bound %sx the floor (CPU), %sx (instructions); aigc %sx / %sx the bound",
          r[1], fmt_num(bound_res and ratio("seq", r[2], "ratio_cpu")), fmt_num(cg_ratio(r[4])),
          fmt_num(over(aigc_res and med(aigc_res, "cpu"), bound_res and med(bound_res, "cpu"))),
          fmt_num(over(cg_by_name[r[5]], cg_by_name[r[4]])))
    end
    local ks, bx, ax = {}, {}, {}
    for _, row in ipairs(scale) do
      ks[#ks + 1], bx[#bx + 1], ax[#ax + 1] = tostring(row.k), fmt_num(row.bound_x), fmt_num(row.x)
    end
    say("  Lua 5.4  K in flight (%s): the bound %s x the floor (CPU); aigc %s", table.concat(ks, ", "),
        table.concat(bx, ", "), table.concat(ax, ", "))
    say("  (a target under the bound cannot be met by any Lua module that returns the reply as tables)")
    say("")
    draw_charts {
      { "floor", med(res.stream.floor, "cpu") }, { "aigc", med(res.stream.aigc, "cpu") },
      -- (short labels: two long ones ran into each other under their bars)
      { "floor*", med(res.stream_openai.floor, "cpu") },
      { "aigc*", med(res.stream_openai.aigc, "cpu") },
    }
    say("")
    say("(%.0f s; client logs in %s)", socket.gettime() - t_start, LOG)
  end)
  srv.stop()
  if OUT then write(OUT, table.concat(report_lines, "\n") .. "\n") end
  if not ok then
    io.stderr:write("bench: ", tostring(err), "\n")
    os.exit(1)
  end
end

main()
