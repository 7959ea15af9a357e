-- aigc.template: {{variables}}, rendering into chat params, data files
-- (Lua tables of literal data, read and never run, or JSON), and a directory of them.

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

  it("reads data files: Lua tables of data, with or without return, or JSON", function ()
    assert.equal(1, template.load_data("{ a = 1 }").a)
    assert.equal(2, template.load_data("-- comment\nreturn { a = 2 }").a)
    assert.equal(3, template.load_data('{"a": 3}').a)
    assert.same({ 1, 2 }, template.load_data("[1, 2]"))
    local none, err = template.load_data("{ a = os.exit() }", "evil.lua")
    assert.is_nil(none)
    assert.equal("evil.lua:1: 'os' is not data (a data file holds tables, strings, numbers, booleans and nil only: "
                 .. "no names, calls or functions)", err)
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

  it("reads every literal form of Lua data, as the Lua running reads it", function ()
    local t = assert(template.load_data(table.concat({
      "--[==[ a long", "comment ]==] -- and a short one", "return {",
      "  a = 1, b = -3.5, c = 0x10, d = 1e-3, e = 2E+2; [\"k y\"] = true, [2] = 'two', f = false, g = nil,",
      "  h = { 1, 2, { 3 } }, s = \"a\\tb\\\"c\\65\", l = [[", "line1", "line2]], m = [==[ a ]] b ]==],",
      "  cat = 'a' .. 1 .. \"b\",",
      "}",
    }, "\n"), "all.lua"))
    assert.same({ a = 1, b = -3.5, c = 16, d = 1e-3, e = 200, ["k y"] = true, [2] = "two", f = false,
                  h = { 1, 2, { 3 } }, s = 'a\tb"cA', l = "line1\nline2", m = " a ]] b ", cat = "a1b" }, t)
    assert.matches("'return1' is not data", select(2, template.load_data("return1 { }", "r.lua")), 1, true)
  end)

  -- The README: a template is "a Lua table evaluated with no globals", data only. It is read, never run:
  -- string methods through the string metatable and loops are refused where they stand (they ran:
  -- ("z"):rep(1e6) made a megabyte, `while true do end` hung `template.load` and `aigc -t`).
  it("runs nothing in a data file: no string methods, no functions, no loops", function ()
    local string_index = getmetatable("").__index
    local called = false
    string_index.aigc_spec_probe = function () called = true; return "x" end
    local results = {}
    local co = coroutine.create(function ()
      for i, text in ipairs {
        "{ prompt = ('z'):aigc_spec_probe() }",
        "{ prompt = (\"z\"):rep(1000000) }",
        "return { prompt = (function () local n = 0 while true do n = n + 1 end end)() }",
        "{ prompt = 'a' .. ('b'):upper() }",
        "{ prompt = #'abc' }",
        "{ prompt = 1 + 2 }",
        "{ prompt = x }",
      } do
        results[i] = { template.load_data(text, "evil.lua") }
      end
    end)
    debug.sethook(co, function () error("still running after 1e7 instructions", 0) end, "", 10000000)
    local ok, err = coroutine.resume(co)
    debug.sethook(co)
    debug.sethook()   -- (LuaJIT's hooks are the whole VM's: left set, it fires in a later spec)
    string_index.aigc_spec_probe = nil
    assert.is_true(ok, err)
    assert.is_false(called)
    local want = {
      "evil.lua:1: unexpected '('", "evil.lua:1: unexpected '('", "evil.lua:1: unexpected '('",
      "evil.lua:1: unexpected '('", "evil.lua:1: unexpected '#'", "evil.lua:1: ',' or '}' expected near '+'",
      "evil.lua:1: 'x' is not data",
    }
    for i, w in ipairs(want) do
      assert.is_nil(results[i][1], i)
      assert.equal(w, results[i][2]:sub(1, #w))
    end
    -- template.load says the same, at once
    local dir = os.tmpname()
    local f = assert(io.open(dir, "w"))
    f:write("return { prompt = (function () while true do end end)() }\n")
    f:close()
    local t, lerr = template.load(dir)
    os.remove(dir)
    assert.is_nil(t)
    assert.equal("template", lerr.kind)
    assert.matches(":1: unexpected '%('", lerr.message)
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
