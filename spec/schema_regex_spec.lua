-- JSON Schema's regexes (`pattern`, `patternProperties`), `format`, and
-- integers beyond what a Lua number holds exactly: checked in structured
-- output and tool arguments (aigc.schema, aigc.schema_regex,
-- aigc.schema_format).
local aigc = require "aigc"
local schema = require "aigc.schema"
local scripted = require "scripted"
local json = aigc.json

local function user () return { { role = "user", content = "go" } } end

-- A structured-output chat against `replies`: res, err.
local function schema_chat (s, replies)
  local srv = scripted.start(replies)
  local c = aigc.client { base_url = srv.base_url, api_key = "k", max_retries = 0 }
  local res, err = c:chat { messages = user(), schema = s }
  c:close()
  srv.finish()
  return res, err
end

local function messages (value, s)
  local _, list = schema.validate(value, s)
  local out = {}
  for i, v in ipairs(list) do out[i] = v.path .. ": " .. v.message end
  return out
end

-- Runs fn under a budget of Lua VM instructions (a count, not a time):
-- an exponential matcher exceeds it by orders of magnitude.
local within_budget = require("workbudget").within_budget

describe("patternProperties with alternation and groups", function ()
  local S = { type = "object", additionalProperties = false,
              patternProperties = { ["^(foo|bar)_[0-9]+$"] = { type = "integer" },
                                    ["^(?:x|y)$"] = { type = "string" } } }

  it("matches them as the regex does (they matched any key: nothing was additional, no schema applied)", function ()
    assert.is_true(schema.validate(json.decode('{"foo_1": 1, "bar_22": 2, "x": "a", "y": "b"}'), S))
    assert.same({
      "$.bar_: property is not allowed (additionalProperties is false)",
      "$.baz_1: property is not allowed (additionalProperties is false)",
      "$.foo_1: expected integer, got string",
      "$.xy: property is not allowed (additionalProperties is false)",
    }, messages(json.decode('{"foo_1": "s", "baz_1": 1, "bar_": 2, "xy": "c"}'), S))
  end)

  it("on Lua 5.3+ a 3.0 under a pattern's integer schema, or additionalProperties', is an integer (stayed 3.0)",
     function ()
    local P = { type = "object", patternProperties = { ["^(n|m)_"] = { type = "integer" } },
                additionalProperties = { type = "integer" }, properties = { x = { type = "number" } } }
    local v = assert(schema.parse('{"n_1": 3.0, "m_2": 4.0, "other": 5.0, "x": 6.0}', P))
    local int = math.type and "integer" or "number"
    local function kind (n) return math.type and math.type(n) or "number" end
    assert.same({ int, int, int }, { kind(v.n_1), kind(v.m_2), kind(v.other) })
    assert.equal(math.type and "float" or "number", kind(v.x))
    assert.same({ 3, 4, 5, 6 }, { v.n_1, v.m_2, v.other, v.x })
  end)

  it("refuses a structured reply with such a key as a schema error; a tool call's arguments too", function ()
    local _, err = schema_chat(S, { scripted.chat { content = '{"qux_1": 1}' } })
    assert.equal("schema", err.kind)
    assert.same({ path = "$.qux_1", message = "property is not allowed (additionalProperties is false)" },
                err.violations[1])
    local ts = aigc.tools { { name = "t", parameters = S, fn = function () return "ran" end } }
    local res, terr = scripted.tool_chat(ts, {
      scripted.chat { tool_calls = { scripted.call("c1", "t", '{"foo_1": 1, "z": 2}') } },
      scripted.chat { content = "done" } })
    assert(res, terr)
    local rec = res.tool_calls_made[1]
    assert.is_false(rec.ok)
    assert.equal("$.z", rec.violations[1].path)
  end)

  it("matches ECMA syntax: classes, escapes, repeats, anchors, word boundaries, characters", function ()
    local function allowed (re, key)
      return (schema.validate({ [key] = 1 }, { type = "object", additionalProperties = false,
                                              patternProperties = { [re] = true } }))
    end
    local cases = {
      { "^(a|bc)+$", "abca", true }, { "^(a|bc)+$", "abcb", false }, { "^(ab)?c$", "c", true },
      { "^(ab)?c$", "abc", true }, { "^(ab)?c$", "ac", false }, { "^(?:a|b){2,3}$", "aba", true },
      { "^(?:a|b){2,3}$", "abab", false }, { "^(?<id>x\\d)$", "x1", true }, { "(cat|dog)s?$", "hotdogs", true },
      { "\\bid\\b", "my id", true }, { "\\bid\\b", "myid", false }, { "\\Bid", "myid", true },
      { "^.$", "\195\169", true }, { "^[^a]{2}$", "\195\169\195\169", true }, { "^\\s+$", " \t", true },
      { "^\\w+$", "\195\169", false }, { "^[\\d.-]+$", "1.5-2", true }, { "^\\u00e9$", "\195\169", true },
      { "^x{$", "x{", true }, { "^a|b$", "ab_", true }, { "^a|b$", "cab", true }, { "^a|b$", "ca", false },
      { "^$", "", true }, { "^(|a)$", "", true }, { "[]", "a", false }, { "^[^]$", "a", true },
      { "^(a*)*$", "aaa", true }, { "^(a*)*b$", "aaa", false }, { "^[\\w-.]+$", "a-b.c", true },
      { "^[\\w-.]+$", "a,b", false },
    }
    for i, c in ipairs(cases) do
      assert(allowed(c[1], c[2]) == c[3], ("case %d: %s on %q"):format(i, c[1], c[2]))
    end
  end)

  it("refuses a schema whose regex is invalid, naming the place (it was silently unchecked)", function ()
    local cases = {
      { "(a", "is not a valid regular expression (a ( is not closed)" },
      { "a)", "is not a valid regular expression (a ) is not opened)" },
      { "*a", "is not a valid regular expression (nothing to repeat before *)" },
      { "[z-a]", "is not a valid regular expression (a range out of order)" },
      { "a{3,2}", "is not a valid regular expression (numbers out of order in {3,2})" },
    }
    for _, c in ipairs(cases) do
      local ok, why = schema.check_schema { patternProperties = { [c[1]] = true } }
      assert.is_false(ok)
      assert.equal("#/patternProperties/" .. c[1] .. ": " .. string.format("%q", c[1]) .. " " .. c[2], why)
      local ok2, why2 = schema.check_schema { properties = { s = { type = "string", pattern = c[1] } } }
      assert.is_false(ok2)
      assert.matches("^#/properties/s/pattern: ", why2)
    end
    assert.has_error(function ()
      aigc.tools { { name = "t", parameters = { type = "object", properties = { p = { pattern = "(x" } } },
                     fn = function () end } }
    end)
  end)

  -- (a server with the whole of ECMA's regexes takes these: the schema must
  -- not become a misuse here, nor be checked wrongly)
  it("leaves a valid regex it cannot check exactly unchecked: lookaround, backreferences, \\p{}, too large", function ()
    local regexes = { "^(?=a)", "(a)\\1", "\\p{L}", "(a{1000}){1000}", string.rep("(", 1000) .. string.rep(")", 1000) }
    for _, re in ipairs(regexes) do
      assert.is_true(schema.check_schema { properties = { s = { type = "string", pattern = re } } }, re)
      local one = { type = "object", properties = { s = { type = "string", pattern = re } } }
      assert.is_true(schema.validate({ s = "zzz" }, one), re)
      -- (a patternProperties one may match any key: never "additional", its schema not applied)
      local pp = { type = "object", additionalProperties = false, patternProperties = { [re] = { type = "integer" } } }
      assert.is_true(schema.validate({ zzz = "text" }, pp), re)
      -- (the other, checkable patterns still apply)
      pp.patternProperties["^n_"] = { type = "integer" }
      local ok, errs = schema.validate({ n_1 = "text" }, pp)
      assert.is_false(ok, re)
      assert.same({ { path = "$.n_1", message = "expected integer, got string" } }, errs)
    end
    aigc.tools { { name = "t", parameters = { type = "object", properties = { p = { pattern = "(?!x)" } } },
                   fn = function () end } }
  end)

  it("a huge count on an empty group is left unchecked at once (it repeated nothing 10^11 times: hung)", function ()
    -- (in a child: the old code is killed by the timeout)
    local r = require("luachild").run([[
      local schema = require "aigc.schema"
      local s1 = { type = "object", properties = { s = { pattern = "(?:){99999999999}" } } }
      local s2 = { type = "object", properties = { s = { pattern = "(){0,99999999999}" } } }
      print(schema.check_schema(s1), (schema.validate({ s = "x" }, s1)))
      print(schema.check_schema(s2), (schema.validate({ s = "x" }, s2)))
    ]], { timeout = 120 })
    assert.equal(0, r.status, r.stderr)
    assert.equal("true\ttrue\ntrue\ttrue\n", r.stdout)
  end)
end)

describe("pattern", function ()
  local S = { type = "object", properties = { code = { type = "string", pattern = "^[A-Z]{3}-\\d{2,4}$" },
                                              tag = { type = "string", pattern = "ab|cd" } } }

  it("checks a string against its regex, unanchored as JSON Schema's are (it was not checked)", function ()
    assert.is_true(schema.validate({ code = "ABC-12", tag = "xxcdxx" }, S))
    assert.same({ '$.code: "AB-12" does not match the pattern "^[A-Z]{3}-\\\\d{2,4}$"',
                  '$.tag: "ac" does not match the pattern "ab|cd"' },
                messages({ code = "AB-12", tag = "ac" }, S))
    assert.is_false(schema.validate("ABC-12345", S.properties.code))
    assert.is_true(schema.validate(5, { pattern = "^x$" }))   -- (pattern is for strings only)
  end)

  it("a structured reply that breaks it is a schema error; a tool call's arguments get the violation", function ()
    local res, err = schema_chat(S, { scripted.chat { content = '{"code": "abc-12"}' } })
    assert.is_nil(res)
    assert.equal("schema", err.kind)
    assert.equal("$.code", err.violations[1].path)
    local ts = aigc.tools { { name = "t", parameters = S, fn = function () return "ran" end } }
    local r2, terr, sent = scripted.tool_chat(ts, {
      scripted.chat { tool_calls = { scripted.call("c1", "t", '{"code": "A-1"}') } },
      scripted.chat { content = "done" } })
    assert(r2, terr)
    assert.is_false(r2.tool_calls_made[1].ok)
    assert.matches('does not match the pattern', sent[2].messages[3].content, 1, true)
  end)
end)

describe("format", function ()
  it("checks the formats of OpenAI's structured outputs, and uri (they were not checked)", function ()
    local cases = {
      { "date-time", "2024-02-29T08:30:06.25Z", true }, { "date-time", "2024-02-29T08:30:06+02:00", true },
      { "date-time", "2023-02-29T08:30:06Z", false }, { "date-time", "2024-02-29 08:30:06Z", false },
      { "date-time", "2024-02-29T08:30:06", false }, { "date-time", "1990-12-31T23:59:60Z", true },
      { "date-time", "1990-12-31T22:59:60Z", false }, { "date-time", "2024-02-29T08:30:0612Z", false },
      { "date-time", "2024-02-29T08:30:06.Z", false },
      { "date", "2000-02-29", true }, { "date", "1900-02-29", false }, { "date", "2024-13-01", false },
      { "time", "23:59:59Z", true }, { "time", "24:00:00Z", false }, { "time", "12:00:00", false },
      { "duration", "P3Y6M4DT12H30M5S", true }, { "duration", "PT36H", true }, { "duration", "P2W", true },
      { "duration", "P", false }, { "duration", "PT", false }, { "duration", "P1D2H", false },
      { "email", "joe.bloggs@example.com", true }, { "email", "joe@[IPv6:::1]", true },
      { "email", "joe..b@example.com", false }, { "email", "joe", false }, { "email", "a@b@example.com", false },
      { "hostname", "api.example.com", true }, { "hostname", "-a.example.com", false },
      { "hostname", string.rep("a", 64) .. ".com", false }, { "hostname", "a_b.com", false },
      { "ipv4", "192.168.0.1", true }, { "ipv4", "256.1.1.1", false }, { "ipv4", "01.1.1.1", false },
      { "ipv6", "2001:db8::1", true }, { "ipv6", "::ffff:192.0.2.1", true }, { "ipv6", "1::2::3", false },
      { "ipv6", "1:2:3:4:5:6:7:8:9", false }, { "ipv6", "12345::", false },
      { "uuid", "123e4567-E89B-12d3-a456-426614174000", true }, { "uuid", "123e4567e89b12d3a456426614174000", false },
      { "uri", "https://example.com/a?b=c#d", true }, { "uri", "urn:isbn:0451450523", true },
      { "uri", "http://[2001:db8::1]:8080/", true }, { "uri", "/relative/path", false },
      { "uri", "http://a b.com/", false }, { "uri", "http://x/%zz", false },
      { "x-unknown", "anything", true },   -- (other formats are annotations)
    }
    for i, c in ipairs(cases) do
      local ok = schema.validate(c[2], { type = "string", format = c[1] })
      assert(ok == c[3], ("case %d: %s %q"):format(i, c[1], c[2]))
    end
    assert.same({ '$.when: "yesterday" is not a valid date-time (format)' },
                messages({ when = "yesterday" }, { properties = { when = { format = "date-time" } } }))
    assert.is_true(schema.validate(12, { format = "email" }))   -- (format is for strings only)
  end)

  it("a structured reply with a bad format is a schema error", function ()
    local S = { type = "object", properties = { id = { type = "string", format = "uuid" } }, required = { "id" } }
    local _, err = schema_chat(S, { scripted.chat { content = '{"id": "not-a-uuid"}' } })
    assert.equal("schema", err.kind)
    assert.equal('"not-a-uuid" is not a valid uuid (format)', err.violations[1].message)
    local res = assert(schema_chat(S, { scripted.chat { content = '{"id": "123e4567-e89b-12d3-a456-426614174000"}' } }))
    assert.equal("123e4567-e89b-12d3-a456-426614174000", res.parsed.id)
    local ok, why = schema.check_schema { format = 5 }
    assert.is_false(ok)
    assert.equal("#/format must be a string, got number", why)
  end)
end)

describe("regex cost on hostile patterns and inputs", function ()
  it("a 1 MB key against 1,000 alternatives, and patterns that make a backtracking matcher exponential", function ()
    local alts = {}
    for i = 1, 1000 do alts[i] = "key" .. i end
    local S = { type = "object", additionalProperties = false,
                patternProperties = { ["^(" .. table.concat(alts, "|") .. ")$"] = { type = "integer" },
                                      ["^(a|aa)+$"] = true, ["^(x+x+)+y$"] = true } }
    local huge = string.rep("k", 2 ^ 20)
    local ok, list = within_budget(5e8, schema.validate,
      { [huge] = 1, key999 = 2, key1001 = 3, [string.rep("a", 100000)] = 4, [string.rep("a", 99999) .. "b"] = 5,
        [string.rep("x", 5000)] = 6 }, S)
    assert.is_false(ok)
    local bad = {}
    for _, v in ipairs(list) do bad[#bad + 1] = #v.path end
    table.sort(bad)
    -- ($.key1001, the 100,000-character "a...ab", the 5,000 x's, the 1 MB key: not allowed)
    assert.same({ #"$.key1001", #("$." .. string.rep("x", 5000)), #("$." .. string.rep("a", 99999) .. "b"),
                  #("$." .. huge) }, bad)
  end)

  it("a regex whose DFA has more states than are kept (2^13 here) still matches exactly", function ()
    local s = { type = "string", pattern = "(a|b)*a(a|b){12}$" }
    local parts, seed = {}, 7
    for i = 1, 8000 do   -- (thousands of different states: the cache starts again)
      seed = (seed * 1103515245 + 12345) % 2147483648
      parts[i] = math.floor(seed / 65536) % 2 == 0 and "a" or "b"
    end
    local text = table.concat(parts)
    for _, t in ipairs { text, text .. "a" .. string.rep("b", 12), text .. "b" .. string.rep("a", 12) } do
      local want = t:sub(-13, -13) == "a"
      assert.equal(want, (within_budget(4e8, schema.validate, t, s)))
    end
  end)

  it("a 1 MB string value against a pattern", function ()
    local s = { type = "string", pattern = "^(\\w+\\s?)*$" }   -- (backtracking: exponential on a failure)
    local text = string.rep("word ", 200000) .. "!"
    assert.is_false(within_budget(2e8, schema.validate, text, s))
    assert.is_true(within_budget(2e8, schema.validate, string.rep("word ", 200000), s))
  end)
end)

describe("integers beyond what this Lua holds exactly", function ()
  local INT = { type = "object", properties = { n = { type = "integer" } } }
  local function parse (text, s) return schema.parse('{"n": ' .. text .. '}', s or INT) end
  local has_integers = math.type ~= nil

  it("an integer schema refuses a number read as a rounded float (it passed, rounded)", function ()
    -- 2^63 and beyond: a float on every Lua (5.4's integers stop at 2^63-1)
    for _, text in ipairs { "9223372036854775808", "-9223372036854775809", "18446744073709551616", "1e300" } do
      local v, err = parse(text)
      assert.is_nil(v, text)
      assert.equal("schema", err.kind)
      assert.matches("^expected integer, got .* %(beyond 2%^53: not an exact integer in this Lua%)$",
                     err.violations[1].message)
    end
    -- a number schema takes them, as floats
    assert.equal(2 ^ 63, assert(parse("9223372036854775808", { properties = { n = { type = "number" } } })).n)
  end)

  it("2^53+1, 2^63-1 and -2^63 are exact Lua integers on 5.3+; refused on the Luas of doubles", function ()
    local exact = { { "9007199254740993", "9007199254740993" }, { "9223372036854775807", "9223372036854775807" },
                    { "-9223372036854775808", "-9223372036854775808" } }
    for _, c in ipairs(exact) do
      local v, err = parse(c[1])
      if has_integers then
        assert(v, err)
        assert.equal("integer", math.type(v.n))
        assert.equal(c[2], string.format("%d", v.n))
      else
        assert.is_nil(v, c[1])
        assert.matches("beyond 2%^53", err.violations[1].message)
      end
    end
    -- 2^53-1: exact everywhere
    local v = assert(parse("9007199254740991"))
    assert.equal("9007199254740991", string.format("%.0f", v.n))
    if has_integers then
      assert.equal(math.maxinteger, assert(parse("9223372036854775807")).n)
      assert.equal(math.mininteger, assert(parse("-9223372036854775808")).n)
    end
  end)

  it("-0 is the integer 0; 1e400 does not decode (JSON has no infinity): a schema error", function ()
    for _, text in ipairs { "-0", "-0.0", "0" } do
      local v = assert(parse(text))
      assert.equal(0, v.n)
      if has_integers then assert.equal("integer", math.type(v.n)) end
    end
    for _, text in ipairs { "1e400", "-1e400" } do
      local v, err = parse(text, { properties = { n = { type = "number" } } })
      assert.is_nil(v)
      assert.equal("schema", err.kind)
      assert.matches("number out of range", err.violations[1].message, 1, true)
    end
  end)

  it("a tool's integer argument beyond 2^63 is refused, not passed on rounded", function ()
    local got
    local ts = aigc.tools { { name = "t", parameters = INT, fn = function (a) got = a.n; return "ran" end } }
    local res, err = scripted.tool_chat(ts, {
      scripted.chat { tool_calls = { scripted.call("c1", "t", '{"n": 18446744073709551616}') } },
      scripted.chat { content = "done" } })
    assert(res, err)
    assert.is_nil(got)
    assert.is_false(res.tool_calls_made[1].ok)
    assert.equal("$.n", res.tool_calls_made[1].violations[1].path)
  end)
end)
