-- The cost of one disk cache write (`cache:put` with `dir =`): the wall
-- time and CPU of N puts of a 1 kB reply, each a new key (a new file), in
-- a fresh folder under /tmp; the median of ROUNDS rounds. Until
-- 2026-12-06 evening every write started a shell (os.execute) to make its
-- file 0600: a fork+exec whose wall time the CPU clock of this process
-- does not show, hence both figures.
--
--   lua5.4 bench/cache_bench.lua [N] [ROUNDS] [TREE]   (default 200, 5, .)
-- Not run by `make bench`: run it by hand from the repo root after `make`
-- (TREE: another built tree, its lua/ and aigc/core.so, to compare).
local tree = arg[3] or "."
package.path = tree .. "/lua/?.lua;" .. tree .. "/lua/?/init.lua;" .. package.path
package.cpath = tree .. "/?.so;" .. package.cpath
local cache = require "aigc.cache"
local core = require "aigc.core"
local N, ROUNDS = tonumber(arg[1]) or 200, tonumber(arg[2]) or 5

local reply = { status = 200, text = ("a reply of some length. "):rep(40), headers = {} }
local walls, cpus = {}, {}
for r = 1, ROUNDS do
  local dir = os.tmpname()
  os.remove(dir)
  local c = cache.new { dir = dir, max_entries = 10 }
  local w, t = core.now(), os.clock()
  for i = 1, N do c:put("key " .. r .. " " .. i, reply) end
  walls[r], cpus[r] = (core.now() - w) / N, (os.clock() - t) / N
  os.execute("rm -rf '" .. dir .. "'")
end
table.sort(walls)
table.sort(cpus)
local mid = (ROUNDS + 1) // 2
print(string.format("%d puts x %d rounds: wall %.1f us/put, CPU %.1f us/put (medians)",
                    N, ROUNDS, walls[mid] * 1e6, cpus[mid] * 1e6))
