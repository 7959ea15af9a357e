-- aigc.template: {{variables}}, rendering into chat params, data files
-- (Lua tables evaluated with no globals, or JSON), and a directory of them.

local cli = require "cli"
local template = require "aigc.template"

describe("aigc.template", function ()
  it("substitutes {{name}} and {{ name }}, dotted names, numbers, booleans and tables", function ()
    assert.equal("Hello Ada!", template.render("Hello {{name}}!", { name = "Ada" }))
    assert.equal("a=1 b=2.5 c=true d=x", template.render("a={{ a }} b={{b}} c={{c}} d={{user.name}}",
      { a = 1, b = 2.5, c = true, user = { name = "x" } }))
    assert.equal("3", template.render("{{n}}", { n = 3.0 }))           -- integral floats without .0
    assert.equal('["x",1]', template.render("{{t}}", { t = { "x", 1 } }))
    assert.equal("{{ not a name }} {{}}", template.render("{{ not a name }} {{}}", {}))
    assert.equal("%1 $x", template.render("{{a}}", { a = "%1 $x" }))    -- values are not patterns
    assert.same({ "a", "b" }, template.variables("{{a}} {{ b }} {{a}}"))
  end)

  it("names every missing variable", function ()
    local s, err = template.render("{{a}} {{b}} {{c}} {{a}}", { b = "x" })
    assert.is_nil(s)
    assert.equal("template", err.kind)
    assert.same({ "a", "c" }, err.missing)
    assert.matches("missing template variables: a, c", err.message)
  end)

  it("renders a template into chat params: system, user, model, params, schema; extra params win", function ()
    local t = template.new { system = "You are a {{role}}.", prompt = "Capital of {{country}}?", model = "m1",
                             params = { temperature = 0, max_tokens = 9 }, defaults = { role = "geographer" },
                             schema = { type = "object" } }
    local p = assert(t:render({ country = "France" }, { temperature = 0.5, model = "m2" }))
    assert.same({ { role = "system", content = "You are a geographer." },
                  { role = "user", content = "Capital of France?" } }, p.messages)
    assert.equal("m2", p.model)
    assert.equal(0.5, p.temperature)
    assert.equal(9, p.max_tokens)
    assert.same({ type = "object" }, p.schema)
    assert.equal(0, t.params.temperature)                -- the template is not changed
    local none, err = t:render {}
    assert.is_nil(none)
    assert.same({ "country" }, err.missing)
    assert.same({ "country" }, t:variables())
    assert.same({ "role", "country" }, t:variables(true))
  end)

  it("refuses bad templates at construction", function ()
    assert.has_error(function () template.new { prompt = 1 } end,
      "bad argument #1 to 'new' (template field 'prompt' must be a string, got number)")
    assert.has_error(function () template.new { promt = "x" } end,
      "bad argument #1 to 'new' (unknown template field 'promt')")
    assert.has_error(function () template.new {} end,
      "bad argument #1 to 'new' (a template needs a prompt or a system prompt)")
  end)

  it("reads data files: Lua tables with no globals, with or without return, or JSON", function ()
    assert.equal(1, template.load_data("{ a = 1 }").a)
    assert.equal(2, template.load_data("-- comment\nreturn { a = 2 }").a)
    assert.equal(3, template.load_data('{"a": 3}').a)
    assert.same({ 1, 2 }, template.load_data("[1, 2]"))
    local none, err = template.load_data("{ a = os.exit() }", "evil.lua")
    assert.is_nil(none)
    assert.matches("evil.lua:1: attempt to index", err)   -- (5.4: "a nil value (global 'os')"; 5.1: "global 'os'")
    assert.matches("os", err)
    none, err = template.load_data("{ a = ", "cut.lua")
    assert.is_nil(none)
    assert.matches("cut.lua", err)
    none, err = template.load_data("42", "num.lua")
    assert.is_nil(none)
    assert.matches("must be a table", err)
    none = template.load_data(string.dump(function () return {} end), "bin")
    assert.is_nil(none)
    assert.is_nil((template.load_data("   ", "empty")))
  end)

  it("finds, loads and lists the templates of a directory", function ()
    local dir = cli.home() .. "/templates"
    cli.write(dir .. "/sum.lua", '{ description = "Summarise", prompt = "Summarise: {{input}}" }')
    cli.write(dir .. "/tr.json", '{"prompt": "Translate: {{input}}", "model": "m"}')
    cli.write(dir .. "/bad.lua", '{ prompt = 3 }')
    cli.write(dir .. "/notes.txt", 'not a template')
    local t = assert(template.find(dir, "sum"))
    assert.equal("sum", t.name)
    assert.equal(dir .. "/sum.lua", t.path)
    assert.equal("m", assert(template.find(dir, "tr")).model)
    local none, err = template.find(dir, "bad")
    assert.is_nil(none)
    assert.matches("template field 'prompt' must be a string", err.message)
    err = select(2, template.find(dir, "missing"))
    assert.matches("no template named 'missing'", err.message)
    err = select(2, template.find(dir, "../etc/passwd"))
    assert.matches("invalid template name", err.message)
    local list = template.list(dir)
    assert.equal(3, #list)
    assert.same({ "bad", "sum", "tr" }, { list[1].name, list[2].name, list[3].name })
    assert.is_string(list[1].error)
    assert.equal("Summarise", list[2].description)
    assert.same({}, template.list(dir .. "/nowhere"))
    cli.rmdir(dir:match("^(.*)/templates$"))
  end)
end)
