-- Floats in request bodies: the short decimals of a typical body take a
-- fast path in the encoder (no snprintf/strtod); its text must be exactly
-- what the general formatter writes: the shortest of %.15g, %.16g, %.17g
-- that reads back as the same double, with ".0" on integral values.
-- On 5.1, 5.2 and LuaJIT numbers have no float subtype: an integral
-- number is written as an integer ("1", "0" for -0.0) and one beyond 2^53
-- is refused (spec/numbers_spec.lua), so those are left out there.
local aigc = require "aigc"
local portable = require "portable"

local function integral (x) return x == math.floor(x) end

local function reference (x)
  if not portable.has_integers and integral(x) then
    if math.abs(x) > 2 ^ 53 then return nil end
    return x == 0 and "0" or string.format("%.0f", x)
  end
  local s
  for prec = 15, 17 do
    s = string.format("%." .. prec .. "g", x)
    if prec == 17 or tonumber(s) == x then break end
  end
  if not s:find("[%.eEn]") then s = s .. ".0" end
  return s
end

describe("float encoding", function ()
  it("writes the same text as the general formatter", function ()
    local cases = { 0.7, 0.95, 1.0, -2.5, 123.456, 1e-4, -1e-4, 0.0001234, 0.1 + 0.2, 1 / 3,
                    1e15 - 0.5, 999999999999999.0, 1e15, 123456.789012, 0.000001, 1e300, 5e-324,
                    -0.0, 2 ^ 53, 2 ^ 53 + 2.0, 4503599627370497.5, 0.30000000000000004 }
    for _, x in ipairs(cases) do
      local want = reference(x)
      if want then assert.equal(want, aigc.json.encode(x), "for " .. string.format("%.17g", x)) end
    end
    -- And many decimals of every size, the fast path's domain and its edges.
    local seed = 12345
    local function rnd (n) seed = (seed * 1103515245 + 12345) % 2147483648 return seed % n end
    for _ = 1, 20000 do
      local x = (rnd(2 ^ 30) * 1000 + rnd(1000)) / 10 ^ rnd(9)
      if rnd(2) == 1 then x = -x end
      x = x + 0.0
      local want = reference(x)
      if want then assert.equal(want, aigc.json.encode(x), "for " .. string.format("%.17g", x)) end
    end
  end)
end)
