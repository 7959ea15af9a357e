-- The cost of one disk cache write (`cache:put` with `dir =`): the wall
-- time and CPU of N puts of a 1 kB reply, each a new key (a new file), in
-- a fresh folder under /tmp; the median of ROUNDS rounds. Until
-- 2026-12-06 evening every write started a shell (os.execute) to make its
-- file 0600: a fork+exec whose wall time the CPU clock of this process
-- does not show, hence both figures. Then the folder's other costs: a
-- cache opening a fresh folder (`cache.new`), and one listing of N entries
-- as the size cap's scan makes it (`prune_disk`, once a minute under
-- `max_disk_bytes`; the TTL sweep's is the same): until 2026-12-06 late
-- each started a shell (`mkdir -p`, `find`).
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
local opens, scans = {}, {}
for r = 1, ROUNDS do
  local dir = os.tmpname()
  os.remove(dir)
  local w = core.now()
  local c = cache.new { dir = dir, max_disk_bytes = 1e9 }
  opens[r] = core.now() - w
  for i = 1, N do c:put("key " .. i, reply) end
  w = core.now()
  c:prune_disk()
  scans[r] = core.now() - w
  os.execute("rm -rf '" .. dir .. "'")
end
for _, t in ipairs { walls, cpus, opens, scans } do table.sort(t) end
local mid = (ROUNDS + 1) // 2
print(string.format("%d puts x %d rounds: wall %.1f us/put, CPU %.1f us/put; open %.1f us, scan of %d %.1f us"
                    .. " (medians, wall)", N, ROUNDS, walls[mid] * 1e6, cpus[mid] * 1e6, opens[mid] * 1e6, N,
                    scans[mid] * 1e6))
