-- aigc.schema: the validator behind structured output and tool arguments,
-- then structured output end to end against the bundled server (json_schema,
-- json_object fallback, violations with paths, cut replies).
local aigc = require "aigc"
local schema = require "aigc.schema"
local devserver = require "devserver"

warn("@on")

local json = aigc.json

local function violations (value, s)
  local ok, v = schema.validate(value, s)
  local out = {}
  for _, x in ipairs(v) do out[#out + 1] = x.path .. ": " .. x.message end
  return ok, out
end

local NPC = {
  type = "object",
  properties = {
    say = { type = "string" },
    action = { type = "string", enum = { "wave", "attack", "flee", "trade" } },
    mood = { type = "string", enum = { "calm", "angry", "afraid", "cheerful" } },
  },
  required = { "say", "action", "mood" },
  additionalProperties = false,
}

describe("aigc.schema", function ()
  describe("validate", function ()
    it("accepts a valid nested value and reports nothing", function ()
      local s = {
        type = "object",
        properties = {
          name = { type = "string", minLength = 1, maxLength = 5 },
          tags = { type = "array", items = { type = "string" }, minItems = 1, uniqueItems = true },
          pos = { type = "object", properties = { x = { type = "number" }, y = { type = "integer" } },
                  required = { "x", "y" }, additionalProperties = false },
          maybe = { type = { "string", "null" } },
        },
        required = { "name", "tags", "pos", "maybe" },
      }
      local v = json.decode('{"name":"Ada","tags":["a","b"],"pos":{"x":1.5,"y":2},"maybe":null}')
      local ok, list = schema.validate(v, s)
      assert.is_true(ok)
      assert.same({}, list)
    end)

    it("lists every violation with its JSONPath", function ()
      local v = json.decode('{"action":"dance","mood":42,"extra":true,"items":[{"n":1},{"n":"x"}]}')
      local s = {
        type = "object",
        properties = {
          say = { type = "string" }, action = NPC.properties.action, mood = NPC.properties.mood,
          items = { type = "array", items = { type = "object", properties = { n = { type = "integer" } } } },
        },
        required = { "say", "action", "mood" },
        additionalProperties = false,
      }
      local ok, list = violations(v, s)
      assert.is_false(ok)
      assert.same({
        '$.say: required property is missing',
        '$.action: expected one of "wave", "attack", "flee", "trade", got "dance"',
        '$.extra: property is not allowed (additionalProperties is false)',
        '$.items[1].n: expected integer, got string',
        '$.mood: expected string, got integer',
      }, list)
    end)

    it("checks types the JSON way: integers, arrays, objects, null", function ()
      assert.is_true(schema.validate(3, { type = "integer" }))
      assert.is_true(schema.validate(3.0, { type = "integer" }))
      assert.is_false(schema.validate(3.5, { type = "integer" }))
      assert.is_true(schema.validate(3, { type = "number" }))
      assert.is_true(schema.validate(aigc.null, { type = "null" }))
      assert.is_false(schema.validate(aigc.null, { type = "string" }))
      assert.is_true(schema.validate(json.decode("[]"), { type = "array" }))
      assert.is_false(schema.validate(json.decode("[]"), { type = "object" }))
      -- the decoder marks every array: an unmarked empty table is {}, an empty object (as encode sends it)
      local _, l0 = violations(json.decode("{}"), { type = "array" })
      assert.same({ "$: expected array, got an empty object (aigc.array {} is an empty array)" }, l0)
      assert.is_false(schema.validate(json.decode('{"a":1}'), { type = "array" }))
      assert.is_true(schema.validate(json.decode("{}"), { type = "object" }))
      assert.is_false(schema.validate({}, { type = "array" }))
      assert.is_true(schema.validate({}, { type = "object" }))
      assert.is_true(schema.validate(aigc.array {}, { type = "array" }))
      assert.is_true(schema.validate({ 1, 2 }, { type = "array" }))
      assert.is_false(schema.validate({ 1, 2 }, { type = "object" }))
      assert.is_false(schema.validate(print, { type = "string" }))
      local _, list = violations(print, {})
      assert.same({ "$: expected a JSON value, got function" }, list)
    end)

    it("checks multipleOf for tiny and huge values and divisors, as python-jsonschema", function ()
      local function multiple (v, m) return (schema.validate(v, { type = "number", multipleOf = m })) end
      -- 1e300 / 1e-300 is inf, and inf - floor(inf) (NaN) was never over the tolerance
      assert.is_false(multiple(1e300, 1e-300))
      assert.is_false(multiple(-1e300, 1e-300))
      assert.is_false(multiple(1e308, 1e-308))
      assert.is_true(multiple(2 ^ 1000, 2 ^ -70))   -- (inf too, but exactly a multiple)
      -- a quotient near 0 passed as 0
      assert.is_false(multiple(0.5, 1e308))
      assert.is_false(multiple(1e-10, 1))
      assert.is_true(multiple(0, 1e308))
      -- a big quotient's rounding was over the fixed 1e-9 (495880971118.99994)
      assert.is_true(multiple(4958809711.19, 0.01))
      assert.is_false(multiple(4958809711.195, 0.01))
      -- decimal divisors as users write them; tiny ones
      assert.is_true(multiple(0.3, 0.1))
      assert.is_true(multiple(19.99, 0.01))
      assert.is_false(multiple(0.35, 0.1))
      assert.is_true(multiple(3e-300, 1e-300))
      assert.is_false(multiple(3.5e-300, 1e-300))
      if math.type then   -- integers beyond 2^53 (5.4): 2^53 + 1 / 2 was the float 2^52
        assert.is_false(multiple(math.tointeger(2 ^ 53) + 1, 2))
        assert.is_true(multiple(math.tointeger(2 ^ 53) + 2, 2))
        assert.is_false(multiple(json.decode("9007199254740993"), 2))
      end
    end)

    it("checks numbers, strings (in characters), arrays and objects' sizes", function ()
      local _, list = violations(json.decode('[0, 11, 2.5, 10, 3]'), {
        type = "array", maxItems = 4,
        items = { type = "number", minimum = 1, maximum = 10, exclusiveMaximum = 10, multipleOf = 0.5 },
      })
      assert.same({
        "$[0]: 0 is less than the minimum 1",
        "$[1]: 11 is more than the maximum 10",
        "$[1]: 11 must be less than 10",
        "$[3]: 10 must be less than 10",
        "$: expected at most 4 items, got 5",
      }, list)
      assert.is_true(schema.validate("日本語", { type = "string", maxLength = 3 }))
      local _, l2 = violations("日本語です", { type = "string", maxLength = 3 })
      assert.same({ "$: expected at most 3 characters, got 5" }, l2)
      local _, l3 = violations(json.decode('{"a":1}'), { type = "object", minProperties = 2 })
      assert.same({ "$: expected at least 2 properties, got 1" }, l3)
      local _, l4 = violations(json.decode('[1, 2, 1]'), { type = "array", uniqueItems = true })
      assert.same({ "$[2]: duplicate of item 0 (uniqueItems)" }, l4)
      -- {} and [] are different values (they were duplicates), [1,2] and {"1":1,"2":2} too
      assert.is_true(schema.validate(json.decode('[{}, [], [1, 2], {"1": 1, "2": 2}]'), { uniqueItems = true }))
      local _, l5 = violations(json.decode('[[], {}, [], {}]'), { uniqueItems = true })
      assert.same({ "$[2]: duplicate of item 0 (uniqueItems)", "$[3]: duplicate of item 1 (uniqueItems)" }, l5)
      assert.is_false(schema.validate(json.decode("[]"), { const = {} }))   -- (an empty object)
      assert.is_true(schema.validate(json.decode("[]"), { const = aigc.array {} }))
      assert.is_false(schema.validate(json.decode("{}"), { enum = { aigc.array {} } }))
    end)

    it("patternProperties: a matched property is checked by its pattern's schema and is not additional",
       function ()
      local s = { type = "object", properties = { id = { type = "integer" } },
                  patternProperties = { ["^x-"] = { type = "string" }, ["^[a-z]+_\\d{2,3}$"] = { type = "integer" } },
                  additionalProperties = false }
      assert.is_true(schema.validate(json.decode('{"id": 1, "x-a": "s", "ab_12": 3, "c_123": 4}'), s))
      local _, list = violations(json.decode('{"x-a": 1, "ab_1": 2, "ab_1234": 3, "y": 4}'), s)
      assert.same({
        "$.ab_1: property is not allowed (additionalProperties is false)",
        "$.ab_1234: property is not allowed (additionalProperties is false)",
        '$["x-a"]: expected string, got integer',
        "$.y: property is not allowed (additionalProperties is false)",
      }, list)
      -- alternation and groups are matched too (any property matched them: none was additional)
      local alt = { patternProperties = { ["^(a|b)$"] = { type = "integer" } }, additionalProperties = false }
      assert.is_true(schema.validate(json.decode('{"a": 1, "b": 2}'), alt))
      local _, l2 = violations(json.decode('{"y": 1, "b": "s"}'), alt)
      assert.same({ "$.b: expected integer, got string",
                    "$.y: property is not allowed (additionalProperties is false)" }, l2)
    end)

    it("if/then/else, dependentRequired and dependentSchemas", function ()
      local s = { ["if"] = { properties = { kind = { const = "npc" } }, required = { "kind" } },
                  ["then"] = { required = { "name" } }, ["else"] = { required = { "id" } },
                  dependentRequired = { credit_card = { "billing_address" } },
                  dependentSchemas = { gold = { properties = { gold = { minimum = 0 } } } } }
      assert.is_true(schema.validate(json.decode('{"kind": "npc", "name": "Mara"}'), s))
      assert.is_true(schema.validate(json.decode('{"kind": "item", "id": 3}'), s))
      local _, l1 = violations(json.decode('{"kind": "npc"}'), s)
      assert.same({ "$.name: required property is missing" }, l1)
      local _, l2 = violations(json.decode('{"credit_card": 1, "gold": -5}'), s)
      assert.same({
        '$.billing_address: required property is missing (dependentRequired: "credit_card" is present)',
        "$.gold: -5 is less than the minimum 0",
        "$.id: required property is missing",
      }, l2)
    end)

    it("follows $ref, anyOf, oneOf, allOf, not, const and prefixItems", function ()
      local s = {
        ["$defs"] = { point = { type = "object", properties = { x = { type = "number" } }, required = { "x" } } },
        type = "object",
        properties = {
          p = { ["$ref"] = "#/$defs/point" },
          id = { anyOf = { { type = "string" }, { type = "integer" } } },
          one = { oneOf = { { type = "number" }, { type = "integer" } } },
          both = { allOf = { { type = "string" }, { minLength = 3 } } },
          never = { ["not"] = { type = "string" } },
          k = { const = "K" },
          pair = { type = "array", prefixItems = { { type = "string" }, { type = "integer" } } },
        },
      }
      local ok = schema.validate(json.decode('{"p":{"x":1},"id":"a","one":1.5,"both":"abc","never":1,"k":"K",'
                                             .. '"pair":["a",1]}'), s)
      assert.is_true(ok)
      local _, list = violations(json.decode('{"p":{},"id":true,"one":2,"both":"ab","never":"s","k":"J",'
                                             .. '"pair":[1,"a"]}'), s)
      assert.same({
        '$.both: expected at least 3 characters, got 2',
        '$.id: matches none of the 2 alternatives (anyOf): closest: $.id: expected string, got boolean',
        '$.k: expected "K", got "J"',
        "$.never: must not match the 'not' schema",
        "$.one: matches 2 of the oneOf alternatives, expected exactly one",
        "$.p.x: required property is missing",
        "$.pair[0]: expected string, got integer",
        "$.pair[1]: expected integer, got string",
      }, list)
    end)

    it("quotes odd keys in paths and raises on a schema that is not a table", function ()
      local _, list = violations(json.decode('{"a b":1}'), {
        properties = { ["a b"] = { type = "string" } } })
      assert.same({ '$["a b"]: expected string, got integer' }, list)
      assert.has_error(function () schema.validate(1, "string") end,
        "bad argument #2 to 'validate' (table expected, got string)")
    end)
  end)

  describe("check and parse", function ()
    it("parse decodes and validates; errors are kind schema with violations and the text", function ()
      assert.same({ say = "hi", action = "wave", mood = "calm" },
        schema.parse('{"say":"hi","action":"wave","mood":"calm"}', NPC))
      local v, err = schema.parse('{"say":1,"action":"wave"}', NPC)
      assert.is_nil(v)
      assert.is_true(aigc.is_error(err))
      assert.equal("schema", err.kind)
      assert.equal('{"say":1,"action":"wave"}', err.text)
      assert.equal(2, #err.violations)
      assert.equal("$.mood", err.violations[1].path)
      assert.equal("aigc: schema error: reply does not match the schema: $.mood: required property is missing; "
        .. "$.say: expected string, got integer", tostring(err))
      local v2, err2 = schema.parse("Sure! {", NPC)
      assert.is_nil(v2)
      assert.equal("schema", err2.kind)
      assert.equal("$", err2.violations[1].path)
      assert.matches("^not valid JSON", err2.violations[1].message)
      local _, err3 = schema.parse(aigc.null, NPC)
      assert.equal("no content (got null)", err3.violations[1].message)
    end)

    it("parse gives integers where the schema wants one: JSON's 3.0 (Lua 5.3+ decode a float, printed 3.0)", function ()
      local S = { type = "object", additionalProperties = { type = "integer" },
        ["$defs"] = { i = { type = "integer" } },
        properties = { n = { type = "integer" }, x = { type = "number" }, ref = { ["$ref"] = "#/$defs/i" },
          list = { type = "array", items = { type = "integer" } }, nullable = { type = { "integer", "null" } },
          any = { anyOf = { { type = "integer" }, { type = "string" } } }, big = { type = "integer" },
          all = { allOf = { { type = "integer" } } } } }
      local v = assert(schema.parse('{"n": 3.0, "x": 2.0, "ref": 6.0, "list": [1.0, 2, 3e0], "nullable": 5.0,'
                                    .. ' "any": 4.0, "all": 8.0, "extra": 7.0}', S))
      local function kind (x) return math.type and math.type(x) or "number" end
      local int = math.type and "integer" or "number"
      assert.same({ 3, int }, { v.n, kind(v.n) })
      assert.same({ 6, int }, { v.ref, kind(v.ref) })
      assert.same({ 5, int }, { v.nullable, kind(v.nullable) })
      assert.same({ 7, int }, { v.extra, kind(v.extra) })
      assert.same({ 8, int }, { v.all, kind(v.all) })
      assert.same({ int, int, int }, { kind(v.list[1]), kind(v.list[2]), kind(v.list[3]) })
      assert.equal("3", string.format("%s", v.n))
      assert.equal(int, kind(schema.parse("8.0", { type = "integer" })))
      -- a number stays as decoded; so does an anyOf branch (which matched is not kept). (1e300 is
      -- no integer here: spec/schema_regex_spec.lua, "integers beyond what this Lua holds exactly")
      local float = math.type and "float" or "number"
      assert.same({ float, float }, { kind(v.x), kind(v.any) })
      -- validate never changes its value
      local t = { n = 3.0 }
      assert.is_true((schema.validate(t, S)))
      assert.equal(float, kind(t.n))
    end)

    it("check returns the value or a schema error; describe caps the list", function ()
      assert.equal(5, schema.check(5, { type = "integer" }))
      local _, err = schema.check("x", { type = "integer" }, "arguments")
      assert.equal("arguments does not match the schema: $: expected integer, got string", err.message)
      local many = {}
      for i = 1, 12 do many[i] = { path = "$[" .. i .. "]", message = "m" } end
      assert.matches("; and 2 more$", schema.describe(many))
    end)
  end)

  -- Issue 10, defect 9: validation terminates quickly on any schema. Work is
  -- measured in Lua VM instructions (a count, not a time: it does not depend
  -- on the machine's load), against a budget far above what the linear
  -- algorithm needs and far below what the exponential/quadratic ones did.
  describe("bounded work", function ()
    local within_budget = require("workbudget").within_budget

    -- A tree of named nodes: kids are nodes again, through self-$refs.
    local function tree (combinator)
      return {
        type = "object",
        properties = { name = { type = "string" },
                       kids = { type = "array",
                                items = { [combinator] = { { ["$ref"] = "#" }, { ["$ref"] = "#" } } } } },
        required = { "name" },
      }
    end
    local function chain (levels, leaf)
      local v = leaf
      for i = levels, 1, -1 do v = { name = "n" .. i, kids = aigc.array { v } } end
      return v
    end

    it("anyOf/allOf of two self-$refs: linear in the data, valid or not", function ()
      for _, comb in ipairs { "anyOf", "allOf" } do
        local s = tree(comb)
        assert.is_true((within_budget(2e6, schema.validate, chain(40, { name = "leaf" }), s)))
        local ok, list = within_budget(2e6, schema.validate, chain(40, { kids = aigc.array {} }), s)
        assert.is_false(ok)
        assert.is_true(#list >= 1 and #list <= 40, comb .. ": " .. #list .. " violations")
      end
      -- the violation deep down is reported once, at its path
      local _, list = schema.validate(chain(3, { kids = aigc.array {} }), tree("allOf"))
      local paths = {}
      for _, v in ipairs(list) do paths[#paths + 1] = v.path .. ": " .. v.message end
      assert.same({ "$.kids[0].kids[0].kids[0].name: required property is missing" }, paths)
    end)

    it("accepts recursive data nested deeper than 63 levels ($ref hops are not depth)", function ()
      local s = { ["$defs"] = { node = { type = "object", properties = {
                    name = { type = "string" }, kids = { type = "array", items = { ["$ref"] = "#/$defs/node" } } } } },
                  ["$ref"] = "#/$defs/node" }
      assert.same({ true, {} }, { within_budget(2e6, schema.validate, chain(300, { name = "leaf" }), s) })
      assert.is_true((schema.validate(chain(300, { name = "leaf" }), tree("anyOf"))))
      -- as deep as JSON text can nest (the decoder stops at 200 levels: 99 * 2 + 1)
      local text = string.rep('{"name":"n","kids":[', 99) .. '{"name":"leaf"}' .. string.rep("]}", 99)
      assert.is_true((within_budget(2e6, schema.validate, json.decode(text), tree("anyOf"))))
      local bad = string.rep('{"name":"n","kids":[', 99) .. '{"name":1}' .. string.rep("]}", 99)
      local ok, list = schema.validate(json.decode(bad), s)
      assert.is_false(ok)
      assert.equal(1, #list)
      assert.equal("$" .. string.rep(".kids[0]", 99) .. ".name", list[1].path)
    end)

    it("uniqueItems is linear: 20,000 items, with JSON equality", function ()
      local items = {}
      for i = 1, 20000 do items[i] = "item " .. i end
      local s = { type = "array", uniqueItems = true }
      assert.is_true((within_budget(2e7, schema.validate, aigc.array(items), s)))
      items[20001] = "item 17"
      local ok, list = within_budget(2e7, schema.validate, aigc.array(items), s)
      assert.is_false(ok)
      assert.same({ { path = "$[20000]", message = "duplicate of item 16 (uniqueItems)" } }, list)
      -- JSON equality: 1 and 1.0 are equal, key order does not matter, "1" and 1 and true differ
      local v = json.decode('[1, "1", true, {"a":1,"b":[2,{"c":null}]}, 1.0, {"b":[2,{"c":null}],"a":1},'
                            .. ' [1], ["1"], null, {"a":1}, {"a":"1"}]')
      local _, l2 = violations(v, s)
      assert.same({ "$[4]: duplicate of item 0 (uniqueItems)", "$[5]: duplicate of item 3 (uniqueItems)" }, l2)
    end)

    it("anyOf stops at the first alternative that matches", function ()
      local big = {}
      for i = 1, 200000 do big[i] = i end
      local s = { anyOf = { { type = "string" }, { enum = big } } }
      assert.is_true((within_budget(1e5, schema.validate, "x", s)))
      -- the second alternative is tried when the first does not match
      assert.is_true((schema.validate(7, s)))
      local ok, list = violations(0, { enum = big })
      assert.is_false(ok)
      assert.same({ "$: expected one of 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 (and 199990 more), got 0" }, list)
    end)

    it("a $ref loop that never descends into the value is a misuse error, not a hang", function ()
      assert.has_error(function ()
        within_budget(2e6, schema.validate, 1, { anyOf = { { ["$ref"] = "#" }, { ["$ref"] = "#" } } })
      end, "bad argument #2 to 'validate' (schema: #/anyOf/0/$ref: \"#\" leads back to # without descending "
           .. "into the value: it would recurse forever)")
      assert.has_error(function ()
        within_budget(2e6, schema.validate, 1, { ["$defs"] = { a = { allOf = { { ["$ref"] = "#/$defs/b" } } },
                                                               b = { ["not"] = { ["$ref"] = "#/$defs/a" } } },
                                                  ["$ref"] = "#/$defs/a" })
      end, "bad argument #2 to 'validate' (schema: #/$defs/b/not/$ref: \"#/$defs/a\" leads back to #/$defs/a "
           .. "without descending into the value: it would recurse forever)")
      local s = {}
      s.allOf = { s }                               -- the same loop through Lua table identity
      assert.has_error(function () within_budget(2e6, schema.validate, 1, s) end,
        "bad argument #2 to 'validate' (schema: #/allOf/0 leads back to # without descending into the value: "
        .. "it would recurse forever)")
      local ok = within_budget(2e6, schema.validate, { 1, { 2, { 3 } } }, (function ()
        local t = { type = { "array", "integer" } }
        t.items = t                                 -- recursion through the value is fine
        return t
      end)())
      assert.is_true(ok)
    end)

    it("a keyword of the wrong type is a misuse error naming its schema path", function ()
      local function raises (s, msg)
        assert.has_error(function () schema.validate(5, s) end, "bad argument #2 to 'validate' (schema: " .. msg .. ")")
      end
      raises({ minimum = "5" }, "#/minimum must be a number, got string")
      raises({ type = "object", properties = { age = { type = "integer", minimum = "5" } } },
             "#/properties/age/minimum must be a number, got string")
      raises({ maximum = 0 / 0 }, "#/maximum must be a number, got NaN")
      raises({ type = "int" }, '#/type: unknown type "int" (null, boolean, object, array, number, string, integer)')
      raises({ type = { "string", 5 } }, "#/type/1 must be a type name, got number")
      raises({ required = "name" }, "#/required must be a list of property names, got string")
      raises({ required = { "a", 1 } }, "#/required/1 must be a string, got number")
      raises({ properties = { a = 5 } }, "#/properties/a must be a schema (a table or a boolean), got number")
      raises({ items = { { type = "string" }, "x" } }, "#/items/1 must be a schema (a table or a boolean), got string")
      -- (a list where a schema goes, as a JSON array is none, checked nothing: every value passed)
      raises({ { type = "string" } }, "# must be a schema (a table or a boolean), got a list")
      raises({ properties = { tags = { { type = "string" } } } },
             "#/properties/tags must be a schema (a table or a boolean), got a list")
      raises({ allOf = { { type = "string" } }, ["$ref"] = "#/allOf" },
             '#/$ref: "#/allOf" does not resolve to a schema')
      raises({ minLength = -1 }, "#/minLength must be an integer >= 0, got -1")
      raises({ maxItems = 1.5 }, "#/maxItems must be an integer >= 0, got 1.5")
      raises({ multipleOf = 0 }, "#/multipleOf must be a number > 0, got 0")
      raises({ uniqueItems = "yes" }, "#/uniqueItems must be a boolean, got string")
      raises({ enum = "a" }, "#/enum must be a list, got string")
      raises({ anyOf = {} }, "#/anyOf must be a non-empty list of schemas")
      raises({ ["not"] = "x" }, "#/not must be a schema (a table or a boolean), got string")
      raises({ additionalProperties = "no" },
             "#/additionalProperties must be a schema (a table or a boolean), got string")
      raises({ ["$ref"] = "#/$defs/nope" }, '#/$ref: "#/$defs/nope" does not resolve to a schema')
      raises({ ["$ref"] = "other.json#/a" },
             '#/$ref: "other.json#/a" is not supported (only "#" and "#/..." pointers into this schema)')
      raises({ properties = { x = { ["$ref"] = 5 } } }, "#/properties/x/$ref must be a string, got number")
      raises({ dependentRequired = { a = "b" } }, "#/dependentRequired/a must be a list of property names, got string")
      raises({ dependentRequired = { a = { 1 } } }, "#/dependentRequired/a/0 must be a string, got number")
      raises({ dependentSchemas = { a = 5 } },
             "#/dependentSchemas/a must be a schema (a table or a boolean), got number")
      raises({ patternProperties = { ["^a"] = "x" } },
             "#/patternProperties/^a must be a schema (a table or a boolean), got string")
      raises({ ["if"] = 5 }, "#/if must be a schema (a table or a boolean), got number")
      raises({ ["then"] = { ["$ref"] = "#" } }, "#/then/$ref: \"#\" leads back to # without descending into "
             .. "the value: it would recurse forever")
      -- draft 4's boolean exclusiveMinimum is understood, not refused
      assert.is_false((schema.validate(1, { minimum = 1, exclusiveMinimum = true })))
      assert.is_true((schema.validate(2, { minimum = 1, exclusiveMinimum = true })))
      -- pointers into arrays are 0-based, as in JSON
      assert.is_false((schema.validate("x", { anyOf = { { type = "integer" } }, properties = {
        a = { ["$ref"] = "#/anyOf/0" } } })))
      assert.is_false((schema.validate({ a = "x" }, { ["$defs"] = { l = { { type = "integer" } } },
        properties = { a = { ["$ref"] = "#/$defs/l/0" } } })))
    end)

    it("a $ref's percent-escapes and ~0 / ~1 are decoded (RFC 6901, a URI fragment)", function ()
      -- (%XX was taken as it is: "#/$defs/a%20b", which every JSON Schema tool resolves to
      -- "a b", was refused as not resolving)
      local function ref_checks (ref, defs)
        local s = { ["$defs"] = defs, properties = { a = { ["$ref"] = ref } } }
        return (schema.validate({ a = "x" }, s)), (schema.validate({ a = 1 }, s))
      end
      local str = { type = "string" }
      for ref, name in pairs { ["#/$defs/a%20b"] = "a b", ["#/$defs/x%25y"] = "x%y", ["#/$defs/a~1b"] = "a/b",
                               ["#/$defs/a~0b"] = "a~b", ["#/$defs/a~01"] = "a~1", ["#/$defs/a%7E1b"] = "a/b",
                               ["#/$defs/%7e0"] = "~", ["#/$defs/caf%C3%A9"] = "caf\195\169" } do
        local ok_str, ok_num = ref_checks(ref, { [name] = str })
        assert.is_true(ok_str, ref)
        assert.is_false(ok_num, ref)
      end
      local ok_str, ok_num = ref_checks("#/$defs/a%2Fb", { a = { b = str } })   -- (%2F is a "/" between segments)
      assert.is_true(ok_str)
      assert.is_false(ok_num)
      -- what cannot be decoded, or names nothing, stays misuse naming the $ref
      local function refused (ref, defs, why)
        assert.has_error(function ()
          schema.validate({ a = 1 }, { ["$defs"] = defs, properties = { a = { ["$ref"] = ref } } })
        end, "bad argument #2 to 'validate' (schema: #/properties/a/$ref: " .. ("%q"):format(ref) .. " " .. why .. ")")
      end
      local bad_pct = 'is not a valid URI fragment (a "%" not followed by two hex digits)'
      refused("#/$defs/a%zz", { ["a%zz"] = str }, bad_pct)
      refused("#/$defs/a%2", { ["a%2"] = str }, bad_pct)
      refused("#/$defs/a%", { ["a%"] = str }, bad_pct)
      refused("#/$defs/a~2", { ["a~2"] = str }, 'is not a valid JSON pointer (a "~" not followed by 0 or 1)')
      refused("#/$defs/a~", { ["a~"] = str }, 'is not a valid JSON pointer (a "~" not followed by 0 or 1)')
      refused("#/$defs/a%20b", { ab = str }, "does not resolve to a schema")
    end)
  end)

  describe("structured output", function ()
    local srv, client

    devserver.fixture(_ENV, function (s, c) srv, client = s, c end)

    local function ask (text, extra)
      local p = { messages = { { role = "user", content = text } }, schema = NPC, schema_name = "npc_turn" }
      for k, v in pairs(extra or {}) do p[k] = v end
      return client:chat(p)
    end

    it("sends a strict json_schema response_format and returns res.parsed", function ()
      local res = assert(ask "Hello, traveller! Will you trade with me?")
      assert.same({ say = "Hello! How can I help you today?", action = "trade", mood = "calm" }, res.parsed)
      assert.same(res.parsed, res.choices[1].parsed)
      assert.equal("json_schema", res.schema_mode)
      local body = srv:last().body_json
      assert.same({ type = "json_schema", json_schema = { name = "npc_turn", schema = NPC, strict = true } },
        body.response_format)
      assert.is_nil(body.schema)
      assert.is_nil(body.schema_name)
    end)

    it("schema_strict = false leaves strict out", function ()
      assert(ask("Hi", { schema_strict = false }))
      assert.is_nil(srv:last().body_json.response_format.json_schema.strict)
    end)

    it("reports a reply that breaks the schema, each violation with its path", function ()
      local res, err = ask("Hi", { headers = { ["x-aigc-fault"] = "schema=violate" } })
      assert.is_nil(res)
      assert.equal("schema", err.kind)
      local paths = {}
      for i, v in ipairs(err.violations) do paths[i] = v.path .. ": " .. v.message end
      assert.same({
        "$.say: required property is missing",
        "$.action: expected string, got integer",
        "$.mood: expected string, got integer",
        "$.unexpected: property is not allowed (additionalProperties is false)",
      }, paths)
      assert.matches("$.say: required property is missing", err.message, 1, true)
      assert.equal("chat.completion", err.response.object)
      assert.is_string(err.text)
    end)

    it("reports nested violations in arrays of objects", function ()
      local s = { type = "object", required = { "items" }, properties = {
        items = { type = "array", minItems = 2, items = { type = "object", required = { "id", "qty" },
          properties = { id = { type = "string" }, qty = { type = "integer" } } } } } }
      local _, err = client:chat { messages = { { role = "user", content = "list" } }, schema = s,
                                   headers = { ["x-aigc-fault"] = "schema=violate" } }
      assert.same({ { path = "$.items", message = "required property is missing" } }, err.violations)
      assert(client:chat { messages = { { role = "user", content = "list" } }, schema = s })
      local _, err2 = client:chat { messages = { { role = "user", content = "list" } }, schema = s.properties.items,
                                    headers = { ["x-aigc-fault"] = "schema=violate" } }
      local paths = {}
      for i, v in ipairs(err2.violations) do paths[i] = v.path .. ": " .. v.message end
      assert.same({ "$[0].id: required property is missing", "$[0].qty: expected integer, got string",
                    "$[1].id: required property is missing", "$[1].qty: expected integer, got string" }, paths)
    end)

    it("a reply that is not JSON is kind schema; a cut reply is kind incomplete", function ()
      local _, err = ask("Hi", { headers = { ["x-aigc-fault"] = "schema=not-json" } })
      assert.equal("schema", err.kind)
      assert.equal("Sure! Here is the JSON you asked for.", err.text)
      assert.matches("reply is not valid JSON", err.message, 1, true)
      local _, err2 = ask("Hi", { max_tokens = 2 })
      assert.equal("incomplete", err2.kind)
      assert.equal("length", err2.response.choices[1].finish_reason)
      assert.matches("finish_reason \"length\"", tostring(err2), 1, true)
    end)

    it("json_object mode puts the schema in a system message and validates the same", function ()
      local res = assert(client:chat {
        messages = { { role = "system", content = "You are a guard." }, { role = "user", content = "Hello. I flee!" } },
        schema = NPC, schema_mode = "json_object" })
      assert.same({ say = "Hello! How can I help you today?", action = "flee", mood = "calm" }, res.parsed)
      assert.equal("json_object", res.schema_mode)
      local body = srv:last().body_json
      assert.same({ type = "json_object" }, body.response_format)
      assert.equal("You are a guard.", body.messages[1].content)
      assert.equal("system", body.messages[2].role)
      assert.matches("JSON schema: {", body.messages[2].content, 1, true)
      assert.equal("Hello. I flee!", body.messages[3].content)
      local _, err = client:chat { messages = { { role = "user", content = "x" } }, schema = NPC,
        schema_mode = "json_object", headers = { ["x-aigc-fault"] = "schema=violate" } }
      assert.equal("schema", err.kind)
    end)

    it("auto mode falls back to json_object when the server refuses json_schema", function ()
      local res = assert(client:chat { messages = { { role = "user", content = "Hi" } }, schema = NPC,
        schema_mode = "auto", headers = { ["x-aigc-fault"] = "no-json-schema" } })
      assert.equal("json_object", res.schema_mode)
      assert.equal("Hello! How can I help you today?", res.parsed.say)
      local reqs = srv:requests()
      assert.equal(2, #reqs)
      assert.equal(400, reqs[1].status)
      assert.equal("json_schema", reqs[1].body_json.response_format.type)
      assert.equal("json_object", reqs[2].body_json.response_format.type)
      -- without auto, the refusal is the answer
      local _, err = client:chat { messages = { { role = "user", content = "Hi" } }, schema = NPC,
        headers = { ["x-aigc-fault"] = "no-json-schema" } }
      assert.equal(400, err.status)
      assert.equal("response_format", err.param)
    end)

    it("auto mode's refusal rule: a 400 or 422 naming the format parameter (or json_schema), nothing else", function ()
      local adapter = require "aigc.adapter"
      local chat, responses = adapter.chat.refuses_format, adapter.responses.refuses_format
      local cases = {
        { chat, { kind = "api", status = 400, param = "response_format", message = "x" }, true },
        { chat, { kind = "http", status = 400, message = "HTTP status 400: response_format is not supported" }, true },
        { chat, { kind = "http", status = 422, message = "HTTP 422: `json_schema` is unavailable now" }, true },
        { chat, { kind = "api", status = 422, message = "Input validation error: `inputs` too long" }, false },
        { chat, { kind = "api", status = 500, param = "response_format", message = "x" }, false },
        { chat, { kind = "api", status = 400, message = "This model's maximum context length is 8192 tokens" }, false },
        { chat, { kind = "api", message = "response_format is not supported" }, true },   -- (an error event: no status)
        { chat, { kind = "transport", message = "response_format" }, false },
        { responses, { kind = "api", status = 400, param = "text", message = "x" }, true },
        { responses, { kind = "api", status = 400, param = "text.format", message = "x" }, true },
        { responses, { kind = "api", status = 400, message = "Invalid value for 'text.format.type'" }, true },
        { responses, { kind = "api", status = 400, message = "Please shorten your text" }, false },
      }
      for i, c in ipairs(cases) do
        assert(c[1](c[2]) == c[3], ("case %d: %s"):format(i, c[2].message))
      end
    end)

    it("auto mode falls back on a plain-text 422 that names response_format, not on other 422s", function ()
      local res = assert(client:chat { messages = { { role = "user", content = "Hi" } }, schema = NPC,
        schema_mode = "auto", headers = { ["x-aigc-fault"] = "no-json-schema=422" } })
      assert.equal("json_object", res.schema_mode)
      assert.equal("Hello! How can I help you today?", res.parsed.say)
      local reqs = srv:requests()
      assert.equal(2, #reqs)
      assert.equal(422, reqs[1].status)
      assert.equal("json_schema", reqs[1].body_json.response_format.type)
      assert.equal("json_object", reqs[2].body_json.response_format.type)
      -- a 422 about something else is the answer, sent once
      srv:reset()
      local _, err = client:chat { messages = { { role = "user", content = "Hi" } }, schema = NPC,
        schema_mode = "auto", headers = { ["x-aigc-fault"] = "status=422" } }
      assert.equal(422, err.status)
      assert.equal(1, #srv:requests())
      -- without auto, the 422 is the answer
      srv:reset()
      _, err = client:chat { messages = { { role = "user", content = "Hi" } }, schema = NPC,
        headers = { ["x-aigc-fault"] = "no-json-schema=422" } }
      assert.equal(422, err.status)
      assert.matches("json_schema", err.message, 1, true)
      assert.equal(1, #srv:requests())
    end)

    it("parses every choice with n > 1; streaming gives the same parsed value", function ()
      local res = assert(ask("Hi", { n = 3, seed = 5 }))
      for i = 1, 3 do assert.is_table(res.choices[i].parsed) end
      local deltas = {}
      local sres = assert(ask("Hi", { stream = function (d) deltas[#deltas + 1] = d end }))
      assert.same(assert(ask "Hi").parsed, sres.parsed)
      assert.equal(sres.text, table.concat(deltas))
    end)

    it("works through chat_async and inside tasks", function ()
      local req = client:chat_async { messages = { { role = "user", content = "I attack!" } }, schema = NPC }
      local res = assert(req:wait())
      assert.equal("attack", res.parsed.action)
      local got
      client:spawn(function () got = client:chat { messages = { { role = "user", content = "Hi" } }, schema = NPC } end)
      while client:step(0.01) > 0 do end
      assert.equal("calm", got.parsed.mood)
    end)

    -- Issue 10, defect 12 (the Lua layer's part): errors this layer builds
    -- hold the reply (err.text, err.response); a server that echoes the key
    -- must not get it into them. The scrubbing itself is the C core's
    -- (engine:scrub); until that is in the build, this is pending.
    it("scrubs the key a server echoes out of the errors it builds (err.text, err.response)", function ()
      local key = "sk-aigc-test-0123456789abcdef"
      local c = aigc.client { base_url = srv.base_url, max_retries = 0, api_key = key }
      local res, err = c:chat { messages = { { role = "user", content = "Hi" } }, schema = NPC,
                                headers = { ["x-aigc-fault"] = "echo-key" } }
      c:close()
      assert.is_nil(res)
      assert.equal("schema", err.kind)
      local function walk (v, seen)
        seen = seen or {}
        if type(v) == "string" then assert.is_nil(v:find(key, 1, true), v) end
        if type(v) == "table" and not seen[v] then
          seen[v] = true
          for k, x in pairs(v) do walk(k, seen); walk(x, seen) end
        end
      end
      walk(err)
      assert.is_nil(tostring(err):find(key, 1, true))
      assert.matches("[redacted]", err.text, 1, true)
    end)

    it("raises on misuse, naming the argument", function ()
      assert.has_error(function () client:chat { messages = {}, schema = "x" } end,
        "bad argument #1 to 'chat' (params.schema: table expected, got string)")
      assert.has_error(function () client:chat { messages = {}, schema = NPC, schema_name = "a b" } end,
        "bad argument #1 to 'chat' (params.schema_name: 1 to 64 letters, digits, '_' or '-' expected)")
      assert.has_error(function () client:chat_async { messages = {}, schema = NPC, schema_mode = "xml" } end,
        "bad argument #1 to 'chat_async' (params.schema_mode: "
        .. "'json_schema', 'json_object' or 'auto' expected, got string)")
      assert.has_error(function ()
        client:chat { messages = {}, schema = NPC, response_format = { type = "json_object" } }
      end, "bad argument #1 to 'chat' (params.response_format: not with params.schema (the schema sets it))")
      -- a schema keyword of the wrong type: named with its path, before anything is sent
      assert.has_error(function ()
        client:chat { messages = {},
                      schema = { type = "object", properties = { hp = { type = "integer", minimum = "5" } } } }
      end, "bad argument #1 to 'chat' (params.schema: #/properties/hp/minimum must be a number, got string)")
      assert.equal(0, #srv:requests())
    end)
  end)
end)
