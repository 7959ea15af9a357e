-- The cut sweeps' sampling (spec/support/sweep_points.lua): valgrind's and
-- ASan's runs set AIGC_SWEEP_STRIDE and AIGC_SWEEP_OFFSET and visit one
-- point in `stride`; every other run visits every point. Each sweep runs
-- in a child Lua with those variables set as the suite sets them.

local proc = require "procutil"

-- The points watchdog_cut.sweep(step, 1000, one) visits when its cut fires
-- up to point `last` (a list), and the bad ones it returns (`one` calls the
-- points in `bad_at` bad), in a child with `env` ("VAR=value ...").
local function swept (env, step, last, bad_at)
  local code = ([[
    package.path = %q .. package.path
    local seen, wd = {}, require "watchdog_cut"
    local bad_at = {}
    for n in (%q):gmatch("%%d+") do bad_at[tonumber(n)] = true end
    local n, bad = wd.sweep(%d, 1000, function (n, bad)
      seen[#seen + 1] = n
      if bad_at[n] then bad[#bad + 1] = "cut at " .. n end
      return n < %d
    end)
    print(table.concat(seen, " ") .. "|" .. n .. "|" .. table.concat(bad, ","))
  ]]):format(proc.root() .. "/spec/support/?.lua;", table.concat(bad_at or {}, " "), step, last)
  local ok, out = proc.sh("env -u AIGC_SWEEP_STRIDE -u AIGC_SWEEP_OFFSET " .. env .. " "
                          .. proc.lua_command() .. " -e " .. proc.quote(code))
  assert(ok, out)
  local seen, n, bad = out:match("^([%d ]*)|(%d+)|([^\n]*)\n$")
  assert(seen, out)
  local list = {}
  for p in seen:gmatch("%d+") do list[#list + 1] = tonumber(p) end
  return list, tonumber(n), bad
end

describe("the cut sweeps' points", function ()
  it("are every point when no stride is set, up to the first cut that does not fire", function ()
    local seen, n = swept("", 1, 12)
    assert.same({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 }, seen)
    assert.equal(12, n)
    seen = swept("", 5, 20)
    assert.same({ 5, 10, 15, 20 }, seen)
  end)

  it("are one in AIGC_SWEEP_STRIDE from AIGC_SWEEP_OFFSET + 1, and the offsets together cover every point",
     function ()
    local all = {}
    for offset = 0, 4 do
      local seen = swept("AIGC_SWEEP_STRIDE=5 AIGC_SWEEP_OFFSET=" .. offset, 1, 23)
      assert.equal(offset + 1, seen[1])
      for i, p in ipairs(seen) do
        if i > 1 then assert.equal(5, p - seen[i - 1]) end
        assert.is_nil(all[p], "point " .. p .. " twice")
        all[p] = true
      end
      assert.is_true(seen[#seen] >= 23 and seen[#seen] < 28)   -- (on to the first past the end)
    end
    for p = 1, 23 do assert.is_true(all[p], "point " .. p .. " never visited") end
    -- (a step's multiples: step, 2 step... sampled the same way)
    assert.same({ 15, 40, 65 }, (swept("AIGC_SWEEP_STRIDE=5 AIGC_SWEEP_OFFSET=2", 5, 60)))
  end)

  it("still fail a sweep on a bad point they visit", function ()
    local seen, _, bad = swept("AIGC_SWEEP_STRIDE=5 AIGC_SWEEP_OFFSET=1", 1, 30, { 7, 12, 13 })
    assert.same({ 2, 7, 12, 17, 22, 27, 32 }, seen)
    assert.equal("cut at 7,cut at 12", bad)
  end)

  it("refuse a stride or an offset that is not a whole number, naming the variable", function ()
    for _, env in ipairs { "AIGC_SWEEP_STRIDE=0", "AIGC_SWEEP_STRIDE=x", "AIGC_SWEEP_OFFSET=-1",
                           "AIGC_SWEEP_STRIDE=2.5" } do
      local ok, out = proc.sh("env " .. env .. " " .. proc.lua_command() .. " -e "
        .. proc.quote("package.path = " .. ("%q"):format(proc.root() .. "/spec/support/?.lua;")
                      .. " .. package.path; require 'sweep_points'"))
      assert.is_false(ok, env)
      assert.truthy(out:find(env:match("^[%u_]+") .. " must be an integer", 1, true), out)
    end
  end)
end)
