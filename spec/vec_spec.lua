-- aigc.vec's refusals: a value that is not a finite float32 (NaN, inf,
-- beyond 3.4e38) in a vector added or queried, and a k that is not a
-- positive integer. A NaN row used to rank above every real one, a NaN
-- query to score them all NaN, and k = 1.5 or inf to pass on LuaJIT and 5.1
-- (no integers there); topk with no k said "got userdata".
local aigc = require "aigc"
local vec = aigc.vec

local NAN, INF = 0 / 0, math.huge

-- The message of f's error, without its position.
local function message_of (f)
  local ok, e = pcall(f)
  assert.is_false(ok, "accepted")
  return (tostring(e):gsub("^[^:]*:%d+: ", ""))
end

describe("aigc.vec", function ()
  local index
  before_each(function ()
    index = vec.index()
    index:add { 1, 0 }
    index:add { 0, 1 }
  end)

  it("refuses NaN, inf and float32 overflow in an added vector, naming the element", function ()
    assert.equal("bad argument #1 to 'add' (element 1 is NaN)", message_of(function () index:add { NAN, 1 } end))
    assert.equal("bad argument #1 to 'add' (element 2 is inf)", message_of(function () index:add { 1, INF } end))
    assert.equal("bad argument #1 to 'add' (element 2 is inf)", message_of(function () index:add { 1, -INF } end))
    assert.equal("bad argument #1 to 'add' (element 1 is beyond float32's range (3.4e38))",
      message_of(function () index:add { 1e300, 1 } end))
    assert.equal(2, #index)   -- nothing was added
    local best, scores = index:topk({ 1, 0 }, 2)
    assert.same({ 1, 2 }, best)
    assert.equal(1, scores[1])
    assert.equal(0, scores[2])
  end)

  it("refuses them in a query, also on an empty index, and in cosine", function ()
    assert.equal("bad argument #1 to 'topk' (element 1 is NaN)", message_of(function () index:topk({ NAN, 0 }, 1) end))
    local empty = vec.index()
    assert.equal("bad argument #1 to 'topk' (element 2 is inf)", message_of(function () empty:topk({ 0, INF }, 1) end))
    assert.matches("element 1 is NaN", message_of(function () vec.cosine({ NAN, 0 }, { 1, 0 }) end), 1, true)
    assert.matches("element 1 is inf", message_of(function () vec.cosine({ 1, 0 }, { INF, 0 }) end), 1, true)
  end)

  it("takes the largest finite float32 values: norms do not overflow", function ()
    local big = vec.index()
    big:add { 3e38, 3e38 }
    big:add { 1e-30, 0 }
    local best, scores = big:topk({ 1e20, 1e20 }, 2)
    assert.same({ 1, 2 }, best)
    assert.is_true(math.abs(scores[1] - 1) < 1e-6)
    assert.is_true(math.abs(vec.cosine({ 3e38, 3e38 }, { 1, 1 }) - 1) < 1e-6)
  end)

  it("wants k, a positive integer, and says so", function ()
    for _, case in ipairs {
      { nil, "no value" }, { "2", "string" }, { 1.5, "1.5" }, { INF, "inf" }, { 0, "0" }, { -1, "-1" },
    } do
      local k = case[1]
      local msg = message_of(function () index:topk({ 1, 0 }, k) end)
      -- (no k: the third argument is absent; Lua 5.1 says "nil" when it is given as nil)
      if k == nil then msg = msg:gsub("got nil%)$", "got no value)") end
      assert.equal("bad argument #2 to 'topk' (a positive integer k expected, got " .. case[2] .. ")", msg)
    end
    assert.matches("a positive integer k expected, got %-?nan",
      message_of(function () index:topk({ 1, 0 }, NAN) end))
    assert.equal("bad argument #2 to 'topk' (a positive integer k expected, got no value)",
      message_of(function () index:topk { 1, 0 } end))
    assert.equal("bad argument #2 to 'topk' (a positive integer k expected, got 1.5)",
      message_of(function () vec.index():topk({ 1 }, 1.5) end))   -- an empty index too
    local best = index:topk({ 1, 0 }, 2 ^ 40)                      -- more than there are: all
    assert.same({ 1, 2 }, best)
    assert.same({ 1 }, (index:topk({ 1, 0 }, 1.0)))               -- a float with an integer value
  end)
end)

describe("aigc.vec scores", function ()
  -- (a vector whose cosine with itself rounded to 1.0000000000000002, and
  -- float unit rows whose dot with themselves came to 1.00000003: math.acos
  -- of either was NaN)
  it("stay in [-1, 1]: a vector's cosine with itself is 1, with its opposite -1", function ()
    local a = { 4.68611991, -0.00292439479, -1.06629393, -4.20515433, -0.00372031275, 0.0415154351,
      -0.00325055834, 0.0114448788, 0.185410165, 390.20642, -20.8564548, 23.4848985, 0.0236667454,
      0.122643837, -25.2397787, -3.85220329, -4.84514964 }
    local b = {}
    for i, x in ipairs(a) do b[i] = -x end
    assert.equal(1, vec.cosine(a, a))
    assert.equal(-1, vec.cosine(a, b))
    assert.equal(0, math.acos(vec.cosine(a, a)))
    local seed = 12345   -- (a fixed generator: the same rows on every Lua)
    local function rnd ()
      seed = (seed * 1103515245 + 12345) % 2147483648
      return seed / 2147483648 - 0.5
    end
    local index, rows = vec.index(), {}
    for t = 1, 200 do
      rows[t] = {}
      for i = 1, 37 do rows[t][i] = rnd() end
      index:add(rows[t])
    end
    local over = 0
    for t = 1, 200 do
      local best, scores = index:topk(rows[t], 2)
      assert.equal(t, best[1])
      if not (scores[1] <= 1 and scores[2] >= -1) then over = over + 1 end
    end
    assert.equal(0, over)
  end)
end)

describe("aigc.vec and a finalizer that adds to the same index", function ()
  -- A vector's first allocation (its float scratch) may run a finalizer;
  -- one that adds a first vector of another length to the same empty
  -- index, while add or topk read a vector of 5, used to leave rows of
  -- two lengths (read past their end; add wrote past the block once it
  -- grew). The collector runs a whole cycle at every allocation check and
  -- one finalizer is always pending (each re-arms another, as in
  -- spec/gc_before_copy_spec.lua), so the first one after `act` is set
  -- runs at the call's first allocation. In a child: a whole cycle per
  -- allocation over busted's heap took 34 s under ASan, and a crash fails
  -- the case, not the run.
  local CHILD = [[
    local vec, portable = require "aigc.vec", require "portable"
    local act, armed
    local function arm ()
      portable.finalized(function ()
        if act then
          local f = act
          act = nil
          f()
        end
        if armed then arm() end
      end)
    end
    local function tries (call)
      local fired, both = 0, 0
      portable.gc_incremental(1, 1000000, 20)   -- (1, not 0: 5.4 takes a 0 as "unchanged")
      armed = true
      arm()
      collectgarbage()   -- (the new pause counts from the end of a cycle)
      for _ = 1, 10 do
        local index, v5, v3, added = vec.index(), { 1, 2, 3, 4, 5 }, { 1, 0, 0 }, nil
        act = function () added = pcall(index.add, index, v3) end
        local done, out = pcall(call, index, v5)
        act = nil
        if added ~= nil then fired = fired + 1 end
        if added and done and out ~= nil then both = both + 1 end
      end
      act, armed = nil, false
      portable.gc_incremental(200, 200)
      collectgarbage()
      return fired, both
    end
    local fired, both = tries(function (index, v) return index:add(v) end)
    local fired2, both2 = tries(function (index, v) return index:topk(v, 1)[1] end)
    print(("fired=%d both=%d fired2=%d both2=%d %s"):format(fired, both, fired2, both2, portable.version))
  ]]

  it("add and topk refuse a vector of another length than the one the finalizer added first", function ()
    local r = require("luachild").run(CHILD, { timeout = 120 })
    assert.equal(0, r.status, r.stdout .. r.stderr)
    local fired, both, fired2, both2, version = r.stdout:match("fired=(%d+) both=(%d+) fired2=(%d+) both2=(%d+) (%S+)")
    assert(fired, "the child printed no summary: " .. r.stdout .. r.stderr)
    if fired + fired2 == 0 then
      return pending("no finalizer ran during add or topk on " .. version)
    end
    assert.equal(0, tonumber(both))    -- (both in: rows of 3 and 5)
    assert.equal(0, tonumber(both2))   -- (a 5-vector scored against a row of 3)
  end)
end)
