-- aigc.schema: the applicators of JSON Schema that a Structured Outputs
-- schema may hold beside the common ones (contains, propertyNames, the
-- older additionalItems and dependencies), and the keywords it refuses
-- rather than let a value breaking them pass unseen. The expected results
-- are python-jsonschema 4.26's (Draft202012Validator; Draft7Validator for
-- additionalItems and dependencies), checked by hand.
local aigc = require "aigc"
local schema = require "aigc.schema"

local function first (json, s)
  local ok, violations = schema.validate(aigc.json.decode(json), s)
  return ok, violations[1] and (violations[1].path .. ": " .. violations[1].message)
end

local CASES = {
  -- { schema, value, valid, first violation (when not valid) }
  { { contains = { type = "string" } }, '[1, 2]', false, "$: expected at least 1 item matching contains, got 0" },
  { { contains = { type = "string" } }, '[]', false, "$: expected at least 1 item matching contains, got 0" },
  { { contains = { type = "string" } }, '[1, "a"]', true },
  { { contains = { type = "string" }, minContains = 2 }, '["a", 1]', false,
    "$: expected at least 2 items matching contains, got 1" },
  { { contains = { type = "string" }, minContains = 0 }, '[1]', true },
  { { contains = { type = "string" }, maxContains = 1 }, '["a", "b"]', false,
    "$: expected at most 1 items matching contains, got 2" },
  { { contains = { type = "string" }, maxContains = 1 }, '["a", 2]', true },
  { { contains = { type = "string" } }, '{"a": 1}', true },                     -- (not an array)
  { { minContains = 3 }, '[1]', true },                                         -- (no contains: ignored)
  { { propertyNames = { maxLength = 3 } }, '{"abc": 1, "abcd": 2}', false,
    "$.abcd: property name does not match propertyNames: expected at most 3 characters, got 4" },
  { { propertyNames = { pattern = "^[a-z]+$" } }, '{"ok": 1}', true },
  { { properties = { m = { propertyNames = { enum = { "x" } } } } }, '{"m": {"y": 1}}', false,
    '$.m.y: property name does not match propertyNames: expected one of "x", got "y"' },
  { { propertyNames = false }, '{}', true },
  { { propertyNames = false }, '{"a": 1}', false, "$.a: property name does not match propertyNames: no value is "
    .. "allowed here" },
  -- (a name and its property's value at one schema node: each checked as itself)
  { { propertyNames = { ["$ref"] = "#/$defs/s" }, additionalProperties = { ["$ref"] = "#/$defs/s" },
      ["$defs"] = { s = { type = "string" } } }, '{"a": 1}', false, "$.a: expected string, got integer" },
  { { items = { { type = "integer" } }, additionalItems = false }, '[1, 2]', false, "$[1]: no item is allowed here" },
  { { items = { { type = "integer" } }, additionalItems = { type = "string" } }, '[1, "a", 2]', false,
    "$[2]: expected string, got integer" },
  { { items = { { type = "integer" } }, additionalItems = false }, '[1]', true },
  { { dependencies = { a = { "b" } } }, '{"a": 1}', false,
    '$.b: required property is missing (dependencies: "a" is present)' },
  { { dependencies = { a = { required = { "c" } } } }, '{"a": 1}', false, "$.c: required property is missing" },
  { { dependencies = { a = { required = { "c" } } } }, '{"a": 1, "c": 2}', true },
  { { dependencies = { a = { "b" } } }, '{"b": 1}', true },
}

describe("aigc.schema applicators", function ()
  it("contains, minContains, maxContains, propertyNames, additionalItems and dependencies are checked", function ()
    for i, case in ipairs(CASES) do
      local ok, msg = first(case[2], case[1])
      assert.equal(case[3], ok, "case " .. i .. ": " .. case[2] .. " " .. tostring(msg))
      if not case[3] then assert.equal(case[4], msg, "case " .. i) end
    end
  end)

  it("the keywords beside a $ref apply too (draft 2020-12), annotations change nothing", function ()
    local defs = { n = { type = "integer" }, o = { type = "object", properties = { a = { type = "integer" } } } }
    for i, case in ipairs {
      { { ["$defs"] = defs, ["$ref"] = "#/$defs/n", minimum = 5 }, '3', false, "$: 3 is less than the minimum 5" },
      { { ["$defs"] = defs, ["$ref"] = "#/$defs/n", minimum = 5 }, '7', true },
      { { ["$defs"] = defs, ["$ref"] = "#/$defs/n", minimum = 5 }, '"x"', false, "$: expected integer, got string" },
      { { ["$defs"] = defs, properties = { p = { ["$ref"] = "#/$defs/o", required = { "b" } } } }, '{"p": {"a": 1}}',
        false, "$.p.b: required property is missing" },
      { { ["$defs"] = defs, properties = { p = { ["$ref"] = "#/$defs/o", description = "d", title = "t" } } },
        '{"p": {"a": 1}}', true },
    } do
      local ok, msg = first(case[2], case[1])
      assert.equal(case[3], ok, "case " .. i .. ": " .. tostring(msg))
      if not case[3] then assert.equal(case[4], msg, "case " .. i) end
    end
    -- (a loop through what is beside a $ref is one too)
    local x = { ["$ref"] = "#/$defs/y", allOf = { { ["$ref"] = "#/$defs/x" } } }
    local ok, why = schema.check_schema { ["$defs"] = { x = x, y = {} }, ["$ref"] = "#/$defs/x" }
    assert.is_false(ok)
    assert.matches("leads back to", why, 1, true)
    -- (integers where the schema beside a $ref says so, on 5.3+)
    local o = { properties = { p = { type = "integer" } } }
    local s = { ["$defs"] = { o = o }, ["$ref"] = "#/$defs/o", properties = { q = { type = "integer" } } }
    local v = assert(schema.parse('{"p": 3.0, "q": 4.0}', s))
    if math.type then
      assert.equal("integer", math.type(v.p))
      assert.equal("integer", math.type(v.q))
    end
  end)

  it("a schema holding a keyword aigc does not check is refused, naming its place", function ()
    for _, k in ipairs { "unevaluatedProperties", "unevaluatedItems", "$dynamicRef", "$recursiveRef" } do
      local s = { type = "object", properties = { a = { [k] = k:match("Ref$") and "#" or false } } }
      local ok, why = schema.check_schema(s)
      assert.is_false(ok, k)
      assert.matches("#/properties/a/" .. k:gsub("%$", "%%$") .. " is not supported", why)
      local pok, perr = pcall(schema.parse, '{"a": {"b": 1}}', s)
      assert.is_false(pok)
      assert.matches("is not supported", perr, 1, true)
    end
    -- (their no-op values change nothing: true, {})
    assert.is_true(schema.check_schema { unevaluatedProperties = true, unevaluatedItems = {} })
  end)

  it("a call whose schema holds one is refused before anything is sent (the README's promise)", function ()
    local srv = require("devserver").start()
    finally(function () srv:stop() end)
    local c = aigc.client { base_url = srv.base_url, max_retries = 0, timeout = 30 }
    finally(function () c:close() end)
    local messages = { { role = "user", content = "Hi" } }
    for _, call in ipairs { "chat", "chat_async" } do
      local ok, err = pcall(c[call], c, { model = "m", messages = messages,
                                          schema = { type = "object", unevaluatedProperties = false } })
      assert.is_false(ok, call)
      assert.matches("bad argument #1 to '" .. call .. "' (params.schema: #/unevaluatedProperties is not supported",
                     err, 1, true)
    end
    assert.equal(0, #srv:requests())
    -- (its no-op value is sent)
    assert(c:chat { model = "m", messages = messages, schema = { type = "object", unevaluatedProperties = true } })
    assert.equal(1, #srv:requests())
  end)

  it("the counts and schemas of these keywords are checked as the others are", function ()
    for _, case in ipairs {
      { { contains = { type = "string" }, minContains = -1 }, "#/minContains must be an integer >= 0, got -1" },
      { { maxContains = 1.5 }, "#/maxContains must be an integer >= 0, got 1.5" },
      { { propertyNames = "x" }, "#/propertyNames must be a schema" },
      { { contains = { { type = "string" } } }, "#/contains must be a schema (a table or a boolean), got a list" },
      { { dependencies = { a = { 1 } } }, "#/dependencies/a/0 must be a string, got number" },
      { { dependencies = { a = "b" } }, "#/dependencies/a must be a schema" },
      { { ["$defs"] = { x = { dependencies = { a = { ["$ref"] = "#/$defs/x" } } } }, ["$ref"] = "#/$defs/x" },
        "leads back to" },
    } do
      local ok, why = schema.check_schema(case[1])
      assert.is_false(ok)
      assert.matches(case[2], why, 1, true)
    end
  end)
end)
