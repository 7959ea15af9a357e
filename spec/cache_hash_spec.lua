-- aigc.cache's 64-bit hash (the digests of a dataset run's requests, the
-- cache's file names), now core.hash64 in C: it must give what the Lua
-- arithmetic gave, bit for bit, or every results file written before
-- would run again and every cache entry be missed.

local cache = require "aigc.cache"
local core = require "aigc.core"

-- The Lua arithmetic it replaces, as it was.
local function lua_hash (s)
  local h1, h2 = 5381, 2166136261
  for i = 1, #s do
    local b = s:byte(i)
    h1 = (h1 * 33 + b) % 4294967296
    h2 = (h2 * 1048573 + b) % 4294967296
  end
  return string.format("%08x%08x", h1, h2)
end

describe("aigc.cache.hash", function ()
  it("is core.hash64", function ()
    assert.equal(core.hash64, cache.hash)
  end)

  it("gives the Lua arithmetic's digests: known values, random bytes of every length to 300", function ()
    assert.equal("00001505811c9dc5", cache.hash(""))
    assert.equal(lua_hash('{"messages":[{"content":"Echo: hello 1","role":"user"}],"model":"aigc-dev"}'),
                 cache.hash('{"messages":[{"content":"Echo: hello 1","role":"user"}],"model":"aigc-dev"}'))
    math.randomseed(7)
    for n = 0, 300 do
      for _ = 1, 5 do
        local t = {}
        for i = 1, n do t[i] = string.char(math.random(0, 255)) end
        local s = table.concat(t)
        assert.equal(lua_hash(s), cache.hash(s), n)
      end
    end
    local big = string.rep("\255\0", 50000)
    assert.equal(lua_hash(big), cache.hash(big))
  end)

  it("refuses what is not a string", function ()
    assert.has_error(function () core.hash64({}) end)
  end)
end)
