-- A frame loop against a flooding server: N streams, each of which sends
-- one 900 KB chunk event (the bundled server's `event-bytes` fault), and
-- client:step(0) once per frame (1/60 s) until all have ended. Prints, per
-- `max_bytes_per_step` (0: no bound), the median, p99 and worst single
-- step(0) in CPU, the frames it took and whether every stream ended done
-- (max_starts_per_step = 8 throughout: the starts are bench/burst_bench.lua's).
-- Without the bound a step reads and parses every byte that arrived since
-- the last one; with it, at most about that many (then the transfers wait,
-- paused in libcurl, for the next frames).
--
--   lua5.4 bench/flood_bench.lua [N [ROUNDS]]      (default 100 streams, 2 rounds)
-- Not run by `make bench`: run it by hand from the repo root after `make`.
-- It starts the bundled server (Lua 5.4 with lua-luv and lua-cjson) itself.
package.path = "lua/?.lua;lua/?/init.lua;bench/?.lua;" .. package.path
package.cpath = "./?.so;" .. package.cpath
local aigc = require "aigc"
local N, ROUNDS = tonumber(arg[1]) or 100, tonumber(arg[2]) or 2
local BOUNDS = { 0, 65536, 16384 }

-- The bundled server on a free port, stopped when this script ends.
local port, server_pid = require("bundled_server").start "--exit-after 900"

local function flood (bound)
  local client = aigc.client { base_url = "http://127.0.0.1:" .. port .. "/v1", api_key = "sk-bench",
                               model = "aigc-dev", max_retries = 0, max_bytes_per_step = bound, max_starts_per_step = 8,
                               max_response_bytes = 2 * 1024 * 1024 }
  local done = 0
  for _ = 1, N do
    client:chat_async { messages = { { role = "user", content = "Hi" } },
                        headers = { ["x-aigc-fault"] = "event-bytes=900000" },
                        stream = function () end, on_done = function () done = done + 1 end }
  end
  local cpu = {}
  while true do
    local c = os.clock()
    local active = client:step(0)
    cpu[#cpu + 1] = os.clock() - c
    if active == 0 then break end
    aigc.sleep(1 / 60)
  end
  client:close()
  table.sort(cpu)
  return cpu[math.ceil(#cpu / 2)], cpu[math.ceil(#cpu * 0.99)], cpu[#cpu], #cpu, done
end

print(("%d streams of one 900 KB event each, step(0) once per frame; %d rounds"):format(N, ROUNDS))
print("max_bytes_per_step   median step(0) CPU   p99 step(0) CPU   worst step(0) CPU   frames   done")
for _, bound in ipairs(BOUNDS) do
  for _ = 1, ROUNDS do
    local median, p99, worst, frames, done = flood(bound)
    print(("%18d   %15.2f ms   %12.2f ms   %14.2f ms   %6d   %d/%d"):format(bound, median * 1e3, p99 * 1e3,
                                                                          worst * 1e3, frames, done, N))
  end
end
os.execute("kill " .. server_pid .. " 2>/dev/null")
