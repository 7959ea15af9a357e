-- aigc.schema: schemas at the edges of size.
local schema = require "aigc.schema"

local function nested (levels)
  local s = { type = "string" }
  for _ = 1, levels do s = { type = "object", properties = { a = s } } end
  return s
end

describe("aigc.schema nesting", function ()
  it("a schema nested deeper than MAX_NESTING levels is refused, with a short message", function ()
    local ok, why = schema.check_schema(nested(5000))
    assert.is_false(ok)
    assert.matches("nests deeper than 1000 levels", why, 1, true)
    assert.is_true(#why < 200)
    local pok, perr = pcall(schema.parse, "{}", nested(5000))
    assert.is_false(pok)
    assert.matches("nests deeper than 1000 levels", perr, 1, true)
  end)

  it("one just under the bound still validates", function ()
    assert.is_true(schema.check_schema(nested(999)))
    local v, err = schema.parse('{"a":{"a":1}}', nested(999))
    assert.is_nil(v)
    assert.equal("$.a.a: expected object, got integer", err.violations[1].path .. ": " .. err.violations[1].message)
  end)
end)
