-- Floats in request bodies: the short decimals of a typical body take a
-- fast path in the encoder (no snprintf/strtod); its text must be exactly
-- what the general formatter writes: the shortest of %.15g, %.16g, %.17g
-- that reads back as the same double, with ".0" on integral values.
local aigc = require "aigc"
local luaver = require "luaver"

local function reference (x)
  local s
  for prec = 15, 17 do
    s = string.format("%." .. prec .. "g", x)
    if prec == 17 or tonumber(s) == x then break end
  end
  if not s:find("[%.eEn]") then s = s .. ".0" end
  return s
end

-- What encode(x) gives: the reference text; on Lua where numbers are
-- doubles (5.1, 5.2, LuaJIT) an integral value is an integer there: written
-- without ".0" up to 2^53, refused beyond (README, the differences table).
local function check (x)
  local why = "for " .. string.format("%.17g", x)
  if luaver.int64 or x ~= math.floor(x) then
    assert.equal(reference(x), aigc.json.encode(x), why)
  elseif math.abs(x) <= 2 ^ 53 then
    assert.equal(string.format("%.0f", x):gsub("^%-0$", "0"), aigc.json.encode(x), why)
  else
    assert.matches("beyond 2%^53", select(2, pcall(aigc.json.encode, x)), why)
  end
end

describe("float encoding", function ()
  it("writes the same text as the general formatter", function ()
    local cases = { 0.7, 0.95, 1.0, -2.5, 123.456, 1e-4, -1e-4, 0.0001234, 0.1 + 0.2, 1 / 3,
                    1e15 - 0.5, 999999999999999.0, 1e15, 123456.789012, 0.000001, 1e300, 5e-324,
                    -0.0, 2 ^ 53, 2 ^ 53 + 2.0, 4503599627370497.5, 0.30000000000000004 }
    for _, x in ipairs(cases) do
      check(x)
    end
    -- And many decimals of every size, the fast path's domain and its edges.
    local seed = 12345
    local function rnd (n) seed = (seed * 1103515245 + 12345) % 2147483648 return seed % n end
    for _ = 1, 20000 do
      local x = (rnd(2 ^ 30) * 1000 + rnd(1000)) / 10 ^ rnd(9)
      if rnd(2) == 1 then x = -x end
      x = x + 0.0
      check(x)
    end
  end)
end)
