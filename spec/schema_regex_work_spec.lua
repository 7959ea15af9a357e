-- The work of checking regexes (`pattern`, `patternProperties`) is bounded
-- per validation, and a schema is compiled once, not at every call.
-- Work is counted in Lua VM instructions (a count hook), never timed.
local aigc = require "aigc"
local schema = require "aigc.schema"
local schema_regex = require "aigc.schema_regex"
local json = aigc.json

-- Runs fn under a budget of Lua VM instructions.
local within_budget = require("workbudget").within_budget

-- n pseudo-random "a"s and "b"s (the same on every Lua).
local function random_ab (n, seed)
  local t, x = {}, seed
  for i = 1, n do
    x = (x * 75 + 74) % 65537   -- (exact in a double)
    t[i] = x >= 32768 and "a" or "b"
  end
  return table.concat(t)
end

-- Its DFA needs a new state at nearly every character of a random string
-- (the last 21 characters are its state: 2^21 of them).
local HARD = "(a|b)*a(a|b){20}$"

describe("regex work per validation", function ()
  it("is bounded when the DFA needs a new state at every character (it took seconds, minutes for 1 MB)", function ()
    local s = { type = "string", pattern = HARD }
    -- past the budget the string is left unchecked (the server applied the pattern), not refused
    assert.is_true((within_budget(1e8, schema.validate, random_ab(200000, 1), s)))
    -- within it, strings are checked
    assert.is_false((schema.validate(string.rep("b", 21), s)))
    assert.is_true((schema.validate("a" .. string.rep("b", 20), s)))
  end)

  describe("(with a smaller budget, for speed)", function ()
    local max_work
    before_each(function () max_work = schema_regex.MAX_WORK; schema_regex.MAX_WORK = 100000 end)
    after_each(function () schema_regex.MAX_WORK = max_work end)

    it("does not grow with the string's length", function ()
      local s = { type = "string", pattern = HARD }
      assert.is_true((within_budget(2e7, schema.validate, random_ab(1000000, 2), s)))
    end)

    it("is bounded for all the strings of one value together", function ()
      local items = {}
      for i = 1, 40 do items[i] = random_ab(5000, i) .. "a" .. string.rep("b", 20) end   -- (each matches)
      local s = { type = "array", items = { pattern = HARD } }
      local ok, list = within_budget(2e7, schema.validate, aigc.array(items), s)
      assert.is_true(ok)
      assert.same({}, list)
    end)

    it("leaves parse's integers their own budget (validation may have spent its own)", function ()
      local s = { type = "object", properties = { text = { type = "string", pattern = HARD } },
                  patternProperties = { ["^x_"] = { type = "integer" } } }
      local v = assert(schema.parse('{"text": "' .. random_ab(100000, 5) .. '", "x_1": 3.0}', s))
      assert.equal(3, v.x_1)
      if math.type then assert.equal("integer", math.type(v.x_1)) end   -- (5.3+: an integer, as the schema says)
    end)

    it("leaves a property name too costly to check unchecked: it may match, so it is not additional", function ()
      local s = { type = "object", patternProperties = { [HARD] = { type = "integer" } }, additionalProperties = false }
      local v = {}
      v[random_ab(100000, 3)] = 1
      assert.is_true((within_budget(2e7, schema.validate, v, s)))
      local _, list = schema.validate({ [string.rep("b", 21)] = 1 }, s)
      assert.equal("property is not allowed (additionalProperties is false)", list[1].message)
    end)
  end)

  it("a matcher answers nil past its budget, true or false within it", function ()
    local m = assert(schema_regex.compile(HARD))
    local budget = { left = 100 }
    assert.is_nil(m(random_ab(1000, 4), budget))
    assert.equal(0, budget.left)
    assert.is_nil(m("a" .. string.rep("b", 20), budget))   -- (spent: nothing more is checked)
    assert.is_true(m("a" .. string.rep("b", 20)))          -- (no budget given: a fresh one)
    assert.is_false(m("b"))
  end)
end)

describe("the DFA cache", function ()
  it("starts again past MAX_CACHED places, with the same answers", function ()
    local cached = schema_regex.MAX_CACHED
    schema_regex.MAX_CACHED = 50
    local ok, err = pcall(function ()
      local m = assert(schema_regex.compile("(a|b)*a(a|b){5}$"))
      local seen = {}
      for i = 1, 30 do
        local s = random_ab(40, i)
        assert.equal(s:sub(-6, -6) == "a", m(s))
        seen[m(s)] = true
      end
      assert.same({ [true] = true, [false] = true }, seen)   -- (both answers were tried)
    end)
    schema_regex.MAX_CACHED = cached
    assert(ok, err)
  end)
end)

describe("compiled schemas", function ()
  local calls, real
  before_each(function ()
    calls, real = 0, schema_regex.compile
    schema_regex.compile = function (...) calls = calls + 1; return real(...) end
  end)
  after_each(function () schema_regex.compile = real end)

  local function new_schema ()
    return { type = "object", properties = { id = { type = "string", pattern = "^[a-z]+$" } },
             patternProperties = { ["^x_"] = { type = "integer" } } }
  end

  it("are compiled at the first call only (a 1,000-alternative regex took 20 ms at every reply)", function ()
    local s = new_schema()
    local ok1, l1 = schema.validate({ id = "abc", x_1 = "no" }, s)
    assert.equal(2, calls)
    local ok2, l2 = schema.validate({ id = "abc", x_1 = "no" }, s)
    assert.equal(2, calls)
    assert.is_false(ok1)
    assert.equal(ok1, ok2)
    assert.same(l1, l2)
    assert.same({ { path = "$.x_1", message = "expected integer, got string" } }, l2)
    assert.is_true(schema.check_schema(s))
    assert.is_true((schema.validate({ id = "xyz" }, s)))
    assert.equal(2, calls)
  end)

  it("are compiled once per parse (it compiled twice)", function ()
    local v = assert(schema.parse('{"id": "abc", "x_1": 3}', new_schema()))
    assert.equal(2, calls)
    assert.equal("abc", v.id)
    assert.equal(3, v.x_1)
  end)

  it("follow a schema changed between calls", function ()
    local s = new_schema()
    assert.is_true((schema.validate({ id = "abc" }, s)))
    s.properties.id.pattern = "^[0-9]+$"
    assert.is_false((schema.validate({ id = "abc" }, s)))
    assert.is_true((schema.validate({ id = "123" }, s)))
    s.properties.id = { type = "integer" }
    assert.is_true((schema.validate({ id = 5 }, s)))
    s.properties.id.minimum = "5"
    assert.has_error(function () schema.validate({ id = 5 }, s) end)
    s.properties.id.minimum = 5
    s.enum = { json.decode('{"id": 5}') }
    assert.is_true((schema.validate({ id = 5 }, s)))
    s.enum[1] = json.decode('{"id": 6}')   -- (data: read as it is at each call)
    assert.is_false((schema.validate({ id = 5 }, s)))
  end)

  it("are collected with their schema", function ()
    local weak = setmetatable({}, { __mode = "k" })
    do
      local s = new_schema()
      weak[s] = true
      assert.is_true((schema.validate({ id = "abc" }, s)))
    end
    collectgarbage()
    collectgarbage()
    assert.is_nil(next(weak))
  end)
end)

describe("format", function ()
  it("duration follows RFC 3339 appendix A: a part only after the one before it (P1Y2D passed)", function ()
    local cases = {
      { "P1Y2D", false }, { "PT1H2S", false }, { "P1Y2M", true }, { "P1M2D", true }, { "P1Y2M3D", true },
      { "PT1M2S", true }, { "PT1H2M", true }, { "P4DT12H30M5S", true }, { "P2W", true }, { "P1Y2W", false },
      { "PT", false }, { "P1DT", false }, { "P", false }, { "P2D1Y", false }, { "P1D2H", false },
    }
    for i, c in ipairs(cases) do
      local ok = schema.validate(c[1], { type = "string", format = "duration" })
      assert(ok == c[2], ("case %d: %q"):format(i, c[1]))
    end
  end)

  it("ipv6 takes the forms RFC 4291 has (:: and an IPv4 tail; no zone id)", function ()
    local cases = {
      { "::", true }, { "::ffff:1.2.3.4", true }, { "::1.2.3.4", true }, { "1:2:3:4:5:6:7::", true },
      { "fe80::1%eth0", false }, { "::1:2:3:4:5:6:1.2.3.4", false }, { "1::2::3", false }, { ":1::", false },
      { "::ffff:256.1.1.1", false }, { "1:2:3:4:5:6:7:8:9", false }, { "12345::", false },
    }
    for i, c in ipairs(cases) do
      local ok = schema.validate(c[1], { type = "string", format = "ipv6" })
      assert(ok == c[2], ("case %d: %q"):format(i, c[1]))
    end
  end)
end)
