-- Response headers at scale: the CPU of one blocking chat whose reply
-- carries N tiny headers (the bundled server's `headers=N` fault), for
-- N = 1,500 and 15,000, and the ratio. Ten times the headers should cost
-- about ten times the work: the quadratic join of defect 7 (issue 10) cost
-- a hundred times. This was a ratio asserted in spec/bounds_spec.lua; a test
-- asserts no time (on a loaded machine it read 36x: cache effects), so it
-- is measured here, the median of ROUNDS calls each.
--
--   lua5.4 bench/headers_bench.lua [ROUNDS]      (default 9)
-- Not run by `make bench`: run it by hand from the repo root after `make`.
package.path = "lua/?.lua;lua/?/init.lua;bench/?.lua;" .. package.path
package.cpath = "./?.so;" .. package.cpath
local aigc = require "aigc"
local ROUNDS = tonumber(arg[1]) or 9

local port, server_pid = require("bundled_server").start "--exit-after 300"
local client = aigc.client { base_url = "http://127.0.0.1:" .. port .. "/v1", api_key = "sk-bench",
                             model = "aigc-dev", max_retries = 0 }

local function cpu_of (n)
  local t = {}
  for i = 1, ROUNDS do
    local c = os.clock()
    local res = assert(client:chat { messages = { { role = "user", content = "Hi" } },
                                     headers = { ["x-aigc-fault"] = "headers=" .. n } })
    assert(res.headers["x-f-" .. n] == "a")   -- (built: res.headers is made when first read)
    t[i] = os.clock() - c
  end
  table.sort(t)
  return t[(ROUNDS + 1) // 2]
end

cpu_of(500)   -- warm up (connection, allocator)
local small, big = cpu_of(1500), cpu_of(15000)
print(("headers: 1,500 in %.3f ms, 15,000 in %.3f ms of CPU per call (median of %d): %.1fx for 10x the headers")
      :format(small * 1e3, big * 1e3, ROUNDS, big / small))
client:close()
os.execute("kill " .. server_pid .. " 2>/dev/null")
