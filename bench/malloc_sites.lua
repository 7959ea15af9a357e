-- The allocation sites of bench/malloc_sites.c per unit of work: the
-- difference of two runs (N1 and N2 requests), divided by N2 - N1, so the
-- start-up's allocations cancel out.
--
--   lua5.4 bench/malloc_sites.lua RUN1.out RUN2.out N2-N1
--
-- Prints "per-unit size frames..." for every site that moved by more than
-- 0.02 per unit, largest first. Resolve an aigc frame with
-- `addr2line -f -e aigc/core.so 0xOFFSET`.

local function load (path)
  local t = {}
  for line in io.lines(path) do
    local n, site = line:match("^(%d+) (.*)$")
    if n then t[site] = tonumber(n) end
  end
  return t
end

local a, b, units = load(arg[1]), load(arg[2]), assert(tonumber(arg[3]), "usage: malloc_sites.lua A B UNITS")
local rows = {}
for site, n in pairs(b) do
  local per = (n - (a[site] or 0)) / units
  if per > 0.02 then rows[#rows + 1] = { per, site } end
end
table.sort(rows, function (x, y) return x[1] > y[1] end)
for _, r in ipairs(rows) do print(("%.3f %s"):format(r[1], r[2])) end
