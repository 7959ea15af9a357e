-- After a structured reply passes its schema, Lua 5.3+ make its integral
-- floats integers where the schema wants integers (aigc.schema_integers). That
-- walk kept no record of the schema nodes it had applied: a schema whose
-- allOf names one node twice, level after level, was walked 2^depth times —
-- 23 nodes took 4 s after a validation of a millisecond, 41 nodes hung the
-- call (README: "Validation terminates quickly on any schema — its work is
-- bounded by the value's size times the schema's"). Work counted in VM
-- instructions (spec/support/workbudget.lua), not time.
local aigc = require "aigc"
local schema = require "aigc.schema"
local scripted = require "scripted"
local workbudget = require "workbudget"

local math_type = rawget(math, "type")

-- n0 = allOf { n1, n1 }, n1 = allOf { n2, n2 }, ... n40 = { type = "integer" }
local function doubling (depth)
  local defs = {}
  for i = 0, depth - 1 do
    defs["n" .. i] = { allOf = { { ["$ref"] = "#/$defs/n" .. (i + 1) }, { ["$ref"] = "#/$defs/n" .. (i + 1) } } }
  end
  defs["n" .. depth] = { type = "integer" }
  return { type = "object", properties = { a = { ["$ref"] = "#/$defs/n0" }, list = { type = "array",
           items = { ["$ref"] = "#/$defs/n0" } } }, ["$defs"] = defs }
end

describe("a structured reply whose schema names a node twice at each of 40 levels", function ()
  it("is decoded, its integers made, within a bounded work", function ()
    local srv = scripted.start { scripted.chat { content = '{"a": 5.0, "list": [1.0, 2, 3.0]}' } }
    local c = aigc.client { base_url = srv.base_url, api_key = "sk-fake-integers", max_retries = 0 }
    local res, err = workbudget.within_budget(20000000, function ()
      return c:chat { messages = { { role = "user", content = "go" } }, schema = doubling(40) }
    end)
    c:close()
    srv.finish()
    assert.is_nil(err)
    assert.equal(5, res.parsed.a)
    assert.same({ 1, 2, 3 }, { res.parsed.list[1], res.parsed.list[2], res.parsed.list[3] })
    if math_type then   -- (5.3+: the integer the schema asks for, through every allOf)
      assert.equal("integer", math_type(res.parsed.a))
      assert.equal("integer", math_type(res.parsed.list[1]))
      assert.equal("integer", math_type(res.parsed.list[3]))
    end
  end)

  it("through aigc.schema.integers too", function ()
    local v = workbudget.within_budget(20000000, schema.integers, { a = 7.0, list = { 8.0 } }, doubling(40))
    assert.equal(7, v.a)
    if math_type then
      assert.equal("integer", math_type(v.a))
      assert.equal("integer", math_type(v.list[1]))
    end
  end)
end)
