-- Numbers across Lua versions (issue 12, item 3; json.h and compat.h say
-- why). Lua 5.3 and 5.4 have 64-bit integers: a JSON integer stays exact
-- both ways. On 5.1, 5.2 and LuaJIT every number is a double: integers are
-- exact up to 2^53; a reply's larger integer becomes the nearest double;
-- sending an integer-valued number beyond 2^53 raises, naming its path,
-- instead of sending a value that may already be rounded.
local core = require "aigc.core"

local exact = math.type ~= nil and math.type(1) == "integer"
local encode, decode = core.json.encode, core.json.decode
local TWO53 = 9007199254740992

describe("numbers", function ()
  it("integers up to 2^53 are exact both ways, written without a fraction", function ()
    assert.equal("[0,128,-5,9007199254740992,-9007199254740992]",
                 encode { 0, 128, -5, TWO53, -TWO53 })
    local v = decode("[9007199254740992,-9007199254740992,1,-1]")
    assert.equal(TWO53, v[1])
    assert.equal(-TWO53, v[2])
    assert.equal(1, v[3])
  end)

  it("floats keep their form and read back exactly", function ()
    assert.equal("[0.7,1.5e-07,-2.25,0.1]", encode { 0.7, 1.5e-7, -2.25, 0.1 })
    assert.equal(0.1, decode("[0.1]")[1])
    assert.equal(1e300, decode("[1e300]")[1])
  end)

  if exact then
    it("5.3+: 64-bit integers are exact; a float beyond 2^53 is sent as a float", function ()
      assert.equal("[9223372036854775807,-9223372036854775808]", encode { math.maxinteger, math.mininteger })
      local v = decode("[9007199254740993,9223372036854775807]")
      assert.equal(9007199254740993, v[1])
      assert.equal("integer", math.type(v[1]))
      assert.equal(math.maxinteger, v[2])
      assert.equal('{"seed":9007199254740994.0}', encode { seed = 2 ^ 53 + 2 })
      assert.equal("[1e+300]", encode { 1e300 })
    end)
  else
    it("doubles: a reply's integer beyond 2^53 is the nearest double", function ()
      local v = decode("[9007199254740993,18446744073709551615]")
      assert.equal(TWO53, v[1])             -- 2^53 + 1 rounds to 2^53
      assert.equal(2 ^ 64, v[2])
    end)

    it("doubles: sending an integer-valued number beyond 2^53 raises, naming its path", function ()
      local ok, e = pcall(encode, { params = { seed = 2 ^ 53 + 2 } })
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'encode' %(value%.params%.seed: the integer 9007199254740994 is "
                     .. "beyond 2%^53, where this Lua's numbers %(doubles%) are no longer exact: send it as a "
                     .. "string%)", e)
      assert.has_error(function () encode { 1e300 } end)
      assert.has_error(function () encode { -2 ^ 60 } end)
    end)
  end
end)
