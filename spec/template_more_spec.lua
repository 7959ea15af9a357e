-- aigc.template: values that come from JSON datasets (cases.jsonl).
local aigc = require "aigc"
local template = require "aigc.template"

describe("aigc.template with JSON values", function ()
  it("a JSON null is no value: missing, or the default", function ()
    local vars = aigc.json.decode('{"country": null, "user": {"name": null}}')
    local s, err = template.render("{{country}} {{user.name}}", vars)
    assert.is_nil(s)
    assert.equal("template", err.kind)
    assert.same({ "country", "user.name" }, err.missing)

    local t = template.new { prompt = "What is the capital of {{country}}?", system = "You are a {{role}}.",
                             defaults = { role = "geographer" } }
    local p, perr = t:render(aigc.json.decode('{"country": "France", "role": null}'))
    assert.is_nil(perr)
    assert.equal("You are a geographer.", p.messages[1].content)
    assert.equal("What is the capital of France?", p.messages[2].content)
    local none, nerr = t:render(aigc.json.decode('{"country": null}'))
    assert.is_nil(none)
    assert.same({ "country" }, nerr.missing)
    -- (a null inside a table is JSON's null there)
    assert.equal('{"a":null}', template.render("{{t}}", { t = aigc.json.decode('{"a":null}') }))
  end)
end)
