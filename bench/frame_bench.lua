-- The frame-loop contract in numbers (issue 13 item 6): what one
-- `client:step(0)` costs per frame of a 60 Hz loop while 8, 64 and 256 NPC
-- requests are streaming, and the worst frame.
--
--   lua5.4 bench/frame_bench.lua            (after `make`; `make LUA_VERSION=jit`
--                                            adds LuaJIT rows)
--   BENCH_FRAME_SECONDS=5 BENCH_FRAME_NPCS="8 64 256 256:32" BENCH_FRAME_PAUSE_MS=50
--   (N:B: N streams, stepped with client:step(0, B), at most B callbacks a frame)
--
-- The bundled server (lua/aigc/devserver.lua, its own process) streams each
-- reply as ~20 deltas with BENCH_FRAME_PAUSE_MS between them, like a model
-- that is still talking; every NPC whose line ends asks for its next one at
-- once (from its on_done), so N streams are open all the time. The client
-- runs a real 60 Hz loop: each frame one `client:step(0)` (the deltas of
-- that frame go to the stream callbacks, the ends to on_done), then it
-- sleeps to the next frame. What is timed is the step alone, wall clock
-- (core.now), per frame; "CPU/frame" is the process's CPU time over the
-- frames. Each case runs in a fresh process for each interpreter.
-- A benchmark, not a test: nothing fails on a slow machine.
local MODE = arg[1]

-- {======================================================
-- The worker: `frame_bench.lua run URL NPCS SECONDS` prints one result line.
-- =======================================================
if MODE == "run" then
  local aigc = require "aigc"
  local core = require "aigc.core"
  local url, npcs, seconds, budget = arg[2], tonumber(arg[3]), tonumber(arg[4]), tonumber(arg[5])
  local pause = os.getenv("BENCH_FRAME_PAUSE_MS") or "50"
  local client = aigc.client { base_url = url, max_retries = 0, timeout = 60 }
  local deltas, lines, failures = 0, 0, 0
  local function on_delta (d) if d then deltas = deltas + 1 end end
  local talk
  local function on_done () lines = lines + 1; talk() end
  local function on_error () failures = failures + 1; talk() end
  function talk ()
    client:chat_async { messages = { { role = "user", content = "Say your next line." } },
                        headers = { ["x-aigc-fault"] = "pause=" .. pause }, priority = "background",
                        stream = on_delta, on_done = on_done, on_error = on_error }
  end
  local frame = 1 / 60
  local cpus = {}
  local function frames (n, times, starting)
    local next_at = core.now()
    for i = 1, n do
      -- (the warm-up starts the NPCs spread over its frames: they do not
      -- all end, and ask again, in the same frame)
      for _ = 1, starting and math.floor(npcs * i / n) - math.floor(npcs * (i - 1) / n) or 0 do talk() end
      local t0, c0 = core.now(), os.clock()
      client:step(0, budget)
      if times then times[i], cpus[i] = core.now() - t0, os.clock() - c0 end
      next_at = next_at + frame
      local left = next_at - core.now()
      if left > 0 then core.sleep(left) else next_at = core.now() end
    end
  end
  frames(60, nil, true)   -- warm-up: every NPC connected and talking
  frames(60)
  local times, n = {}, math.floor(seconds * 60)
  local d0, l0, cpu0 = deltas, lines, os.clock()
  frames(n, times)
  local cpu = os.clock() - cpu0
  table.sort(times)
  table.sort(cpus)
  if budget > 0 then npcs = npcs .. ", budget " .. budget end
  local function pct (t, p) return t[math.max(1, math.ceil(#t * p))] * 1e6 end
  print(string.format("result %s %d %.3f %.1f %.1f %.1f %.1f %.1f %.1f %.1f %d %d", npcs, n, (deltas - d0) / n,
                      pct(times, 0.5), pct(times, 0.99), pct(times, 1), pct(cpus, 0.5), pct(cpus, 0.99),
                      pct(cpus, 1), cpu / n * 1e6, lines - l0, failures))
  client:close()
  os.exit(0)
end
-- }======================================================


-- {======================================================
-- The driver: the server, each case in each interpreter, the table.
-- =======================================================
local function sh (cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  p:close()
  return out
end

local SECONDS = tonumber(os.getenv("BENCH_FRAME_SECONDS") or "") or 5
-- N streams, or N:B (step(0, B): at most B callbacks per frame)
local NPCS = {}
for n, b in (os.getenv("BENCH_FRAME_NPCS") or "8 64 256 256:32"):gmatch("(%d+):?(%d*)") do
  NPCS[#NPCS + 1] = { n = tonumber(n), budget = tonumber(b) or 0 }
end
local PAUSE = os.getenv("BENCH_FRAME_PAUSE_MS") or "50"

local dir = "build/bench"
os.execute("mkdir -p " .. dir)
local port_file = dir .. "/frame-server.port"
os.remove(port_file)
local LPATH = "package.path=\"lua/?.lua;lua/?/init.lua;\"..package.path"
local server_pid = sh("lua5.4 -e '" .. LPATH .. "' lua/aigc/devserver.lua --port 0 --port-file " .. port_file
  .. " --quiet --exit-after 900 > " .. dir .. "/frame-server.log 2>&1 & echo $!"):match("%d+")
local port
for _ = 1, 100 do
  local f = io.open(port_file)
  port = f and f:read("*l")
  if f then f:close() end
  if port then break end
  os.execute("sleep 0.1")
end
assert(port, "the bundled server did not start (" .. dir .. "/frame-server.log)")
local url = "http://127.0.0.1:" .. port .. "/v1"

local interps = { { name = "Lua 5.4", cmd = "lua5.4", cpath = "./?.so" } }
local jit_cpath = sh("make -s --no-print-directory cpath LUA_VERSION=jit 2>/dev/null"):gsub("%s+$", "")
if sh("command -v luajit") ~= "" and jit_cpath ~= "" and io.open((jit_cpath:gsub("%?", "aigc/core"))) then
  interps[2] = { name = "LuaJIT", cmd = "luajit", cpath = jit_cpath }
end

print(string.format("frame loop: 60 Hz, %g s per case, the bundled server streaming ~20 deltas per line, "
  .. "%s ms apart; %s", SECONDS, PAUSE, sh("nproc"):gsub("%s+$", "") .. " CPUs"))
print("| NPC streams | Lua | frames | deltas/frame | step(0) wall: median | p99 | worst "
  .. "| step(0) CPU: median | p99 | worst | process CPU/frame | lines | errors |")
print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
local ok = true
for _, case in ipairs(NPCS) do
  for _, it in ipairs(interps) do
    local out = sh(("%s -e '" .. LPATH .. "; package.cpath=\"%s;\"..package.cpath' bench/frame_bench.lua"
      .. " run %s %d %g %d 2>&1"):format(it.cmd, it.cpath, url, case.n, SECONDS, case.budget))
    local r = { out:match("result ([^\n]-) (%d+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%d+) (%d+)") }
    if r[1] then
      print(string.format("| %s | %s | %s | %.1f | %s us | %s us | %s us | %s us | %s us | %s us | %s us | %s | %s |",
        r[1], it.name, r[2], tonumber(r[3]), r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12]))
    else
      ok = false
      print(string.format("| %d | %s | failed: %s |", case.n, it.name, (out:gsub("\n", " "))))
    end
  end
end
os.execute("kill " .. server_pid .. " 2>/dev/null")
os.exit(ok and 0 or 1)
-- }======================================================
