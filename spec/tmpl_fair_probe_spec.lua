-- Probes of prompt templates (aigc.template): a literal `{{name}}` in a
-- template, written inside `{% raw %}...{% endraw %}` (Jinja's escape).

local devserver = require "devserver"
local template = require "aigc.template"

describe("aigc.template raw blocks", function ()
  it("sends {% raw %}...{% endraw %} as it is, without the tags", function ()
    local text = "Mustache writes {% raw %}{{name}} and {{ user.id }}{% endraw %}; you are {{name}}."
    local out = assert(template.render(text, { name = "Ada" }))
    assert.equal("Mustache writes {{name}} and {{ user.id }}; you are Ada.", out)
    -- the tags' spacing as Jinja allows it, several blocks, a block at each end
    assert.equal("{{a}}-x-{{b}}", template.render("{%raw%}{{a}}{%   endraw %}-{{v}}-{%  raw%}{{b}}{% endraw%}",
                                                  { v = "x" }))
    -- a raw block needs no variables: nothing is missing
    assert.equal("{{input}}", template.render("{% raw %}{{input}}{% endraw %}", {}))
    assert.same({ "x", "y" }, template.variables("{{x}} {% raw %}{{hidden}}{% endraw %} {{y}}"))
    local t = template.new { system = "Show {% raw %}{{role}}{% endraw %}.", prompt = "{{q}}" }
    assert.same({ "q" }, t:variables(true))
  end)

  it("never expands a value again, raw tags in it included", function ()
    local out = assert(template.render("{{a}} {% raw %}{{a}}{% endraw %} {{b}}",
                                       { a = "{% endraw %}{{b}}{% raw %}", b = "B" }))
    assert.equal("{% endraw %}{{b}}{% raw %} {{a}} B", out)
    assert.equal("{% raw %}{{b}}{% endraw %}", template.render("{{a}}", { a = "{% raw %}{{b}}{% endraw %}" }))
  end)

  it("leaves a {% raw %} without an {% endraw %} after it as it was (plain text)", function ()
    assert.equal("{% raw %} Ada", template.render("{% raw %} {{name}}", { name = "Ada" }))
    assert.equal("{% endraw %} Ada {% raw %}", template.render("{% endraw %} {{name}} {% raw %}", { name = "Ada" }))
    local s, err = template.render("{% raw %} {{name}}", {})
    assert.is_nil(s)
    assert.same({ "name" }, err.missing)
  end)
end)

describe("aigc -t with a raw block", function ()
  it("sends the literal {{name}} and substitutes the rest", function ()
    local cli = require "cli"
    local srv, home = devserver.start {}, cli.home()
    cli.write(home .. "/templates/teach.lua", [=[
      return { system = "Explain {% raw %}{{name}}{% endraw %} to a {{level}}.", prompt = "{{input}}",
               defaults = { level = "beginner" } }
    ]=])
    local r = cli.run({ "-t", "teach", "-p", "level=child", "What is {{x}}?" },
                      { home = home, base_url = srv.base_url })
    local reqs = srv:requests()
    srv:stop()
    cli.rmdir(home)
    assert.equal(0, r.code, r.stderr)
    assert.equal(1, #reqs)
    local msgs = reqs[1].body_json.messages
    assert.equal("Explain {{name}} to a child.", msgs[1].content)
    assert.equal("What is {{x}}?", msgs[2].content)   -- (the prompt's text is a value: never expanded)
  end)
end)
