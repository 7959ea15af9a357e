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

  it("a dotted name with an empty part names nothing", function ()
    local vars = { a = { b = "x" }, secret = "s3cr3t" }
    for _, text in ipairs { "{{.}}", "{{a.}}", "{{.a}}", "{{a..b}}" } do
      local s, err = template.render(text, vars)
      assert.is_nil(s)
      assert.equal("template", err.kind)
    end
    assert.equal("x", template.render("{{a.b}}", vars))
  end)

  it("finding a template leaves no file open", function ()
    local stat = io.open("/proc/self/stat")
    if not stat then pending("no /proc here"); return end
    local pid = stat:read("*n")
    stat:close()
    local dir = os.tmpname()
    os.remove(dir)
    -- (the descriptors open on the templates' folder, not all of them: in a
    -- whole run, another spec's leftovers closing meanwhile failed the count)
    local function open_fds ()
      local p = io.popen("ls -l /proc/" .. pid .. "/fd | grep -cF -- " .. string.format("%q", dir .. "/"))
      local n = p:read("*n")
      p:close()
      return n
    end
    assert(os.execute("mkdir " .. dir) ~= false)
    for _, ext in ipairs { ".lua", ".json" } do
      local f = assert(io.open(dir .. "/t" .. ext, "w"))
      f:write(ext == ".lua" and '{ prompt = "Hi" }' or '{"prompt": "Hi"}')
      f:close()
    end
    collectgarbage("collect")
    collectgarbage("stop")
    local before = open_fds()
    for _ = 1, 20 do assert.equal(dir .. "/t.lua", template.path_of(dir, "t")) end
    local after = open_fds()
    collectgarbage("restart")
    os.remove(dir .. "/t.lua"); os.remove(dir .. "/t.json"); os.remove(dir)
    assert.equal(before, after)
  end)

  it("a data file that begins with a UTF-8 BOM reads as without it", function ()
    local bom = string.char(239, 187, 191)
    local j = assert(template.load_data(bom .. '{"prompt": "Hi {{x}}"}', "t.json"))
    assert.equal("Hi {{x}}", j.prompt)
    local l = assert(template.load_data(bom .. 'return { prompt = "Hi" }', "t.lua"))
    assert.equal("Hi", l.prompt)
    local _, err = template.load_data(bom, "t.json")
    assert.matches("empty file", err, 1, true)
  end)
end)
