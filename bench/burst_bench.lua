-- A frame loop's burst: N requests started in one frame (a level loads,
-- every NPC speaks), then client:step(0) once per frame (1/60 s) until all
-- have ended. Prints, per `max_starts_per_step` (0: no cap), the worst
-- single step(0) in CPU and wall time, and the frames the burst took.
-- Starting a request is work for the step that hands it to libcurl (its
-- connection and its send); the option spreads that over frames.
--
--   lua5.4 bench/burst_bench.lua [N [ROUNDS]]      (default 200 requests, 3 rounds)
-- Not run by `make bench`: run it by hand from the repo root after `make`.
-- It starts the bundled server (Lua 5.4 with lua-luv and lua-cjson) itself.
package.path = "lua/?.lua;lua/?/init.lua;bench/?.lua;" .. package.path
package.cpath = "./?.so;" .. package.cpath
local aigc = require "aigc"
local N, ROUNDS = tonumber(arg[1]) or 200, tonumber(arg[2]) or 3
local CAPS = { 0, 8, 16 }

-- The bundled server on a free port, stopped when this script ends.
local port, server_pid = require("bundled_server").start "--pause-ms 5 --exit-after 600"

local function burst (cap)
  local client = aigc.client { base_url = "http://127.0.0.1:" .. port .. "/v1", api_key = "sk-bench",
                               model = "aigc-dev", max_retries = 0, max_starts_per_step = cap }
  local ended = 0
  local function on_end () ended = ended + 1 end
  for i = 1, N do
    client:chat_async { messages = { { role = "user", content = "NPC " .. i .. ": say something." } },
                        max_tokens = 20, stream = function () end, on_done = on_end, on_error = on_end }
  end
  local worst_cpu, worst_wall, frames = 0, 0, 0
  while true do
    frames = frames + 1
    local t, c = aigc.now(), os.clock()
    local active = client:step(0)
    worst_cpu = math.max(worst_cpu, os.clock() - c)
    worst_wall = math.max(worst_wall, aigc.now() - t)
    if active == 0 then break end
    aigc.sleep(1 / 60)
  end
  client:close()
  assert(ended == N, "every request ended")
  return worst_cpu, worst_wall, frames
end

print(("%d requests started in one frame, then step(0) once per frame; %d rounds"):format(N, ROUNDS))
print("max_starts_per_step   worst step(0) CPU   worst step(0) wall   frames")
for _, cap in ipairs(CAPS) do
  for _ = 1, ROUNDS do
    local cpu, wall, frames = burst(cap)
    print(("%19d   %14.2f ms   %15.2f ms   %6d"):format(cap, cpu * 1e3, wall * 1e3, frames))
  end
end
os.execute("kill " .. server_pid .. " 2>/dev/null")
