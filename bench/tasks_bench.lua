-- K requests in flight written two ways a game writes NPCs, for the cost
-- that grows with K (bench/README "many tasks making blocking calls"):
--
--   lua5.4 bench/tasks_bench.lua tasks URL N K   K tasks (client:spawn), each
--                                                making blocking client:chat calls
--   lua5.4 bench/tasks_bench.lua poll  URL N K   K chat_async requests without
--                                                callbacks, polled with status()
--   lua5.4 bench/tasks_bench.lua sleepers URL N K  K tasks asleep (client:sleep),
--                                                N frames' step(0): the CPU per
--                                                step (no request is made to URL)
--
-- Prints the CPU per request; run under callgrind at two N for instructions
-- per request (the difference over the difference of N).
package.path = "lua/?.lua;lua/?/init.lua;bench/?.lua;" .. package.path   -- (from the checkout)
package.cpath = "./?.so;" .. package.cpath
local aigc = require "aigc"
local params = require "request_params"
local mode, url, n, k = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4])
local client = aigc.client { base_url = url, api_key = "sk-bench", max_retries = 0, timeout = 120,
                             connect_timeout = 60 }
if mode == "sleepers" then   -- (NPCs waiting for their next line: the turn must not walk them)
  for _ = 1, k do client:spawn(function () client:sleep(3600) end) end
  client:step(0)
  local c0 = os.clock()
  for _ = 1, n do client:step(0) end
  print(("ok n=%d k=%d cpu_us_per_step=%.2f"):format(n, k, (os.clock() - c0) / n * 1e6))
  return
end
local done, started = 0, 0
local function run (total)
  done, started = 0, 0
  if mode == "tasks" then
    for _ = 1, k do
      client:spawn(function ()
        while started < total do
          started = started + 1
          local res = client:chat(params(started))
          assert(res.choices[1].message.content)
          done = done + 1
        end
      end)
    end
  else -- "poll": chat_async without callbacks, polled each step
    local reqs = {}
    local function start () started = started + 1; reqs[#reqs + 1] = client:chat_async(params(started)) end
    for _ = 1, k do start() end
    while done < total do
      client:step(1)
      local i = 1
      while i <= #reqs do
        local st = reqs[i]:status()
        if st == "done" then
          assert(reqs[i]:result().choices[1].message.content)
          done = done + 1
          reqs[i] = reqs[#reqs]; reqs[#reqs] = nil
          if started < total then start() end
        else i = i + 1 end
      end
    end
    return
  end
  while done < total do client:step(1) end
end
run(2 * k)
local c0 = os.clock()
run(n)
print(("ok n=%d cpu_us=%.2f"):format(n, (os.clock() - c0) / n * 1e6))
