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

  it("a data file's '..' chain is joined in work linear in its length", function ()
    -- (each join copied all before it: a prompt of n pieces allocated n^2 / 2 of them.
    -- Counted as bytes allocated with the collector stopped: 4 times the pieces
    -- cost 4 times, not 16)
    local piece = string.rep("x", 60)
    local function per_piece (n)
      local parts = {}
      for i = 1, n do parts[i] = '"' .. piece .. '"' end
      local text = "return { prompt = " .. table.concat(parts, " .. ") .. " .. 4 .. 2.5 }"
      collectgarbage(); collectgarbage("stop")
      local before = collectgarbage("count")
      local data = assert(template.load_data(text, "t.lua"))
      local kb = collectgarbage("count") - before
      collectgarbage("restart")
      assert.equal(string.rep(piece, n) .. "42.5", data.prompt)
      return kb * 1024 / n
    end
    local small, large = per_piece(500), per_piece(2000)
    assert.is_true(large < 2 * small, ("%.0f bytes a piece, %.0f at 4 times the pieces"):format(small, large))
    assert.equal(7, template.load_data("{ n = 7 }").n)   -- (a value with no '..' keeps its type)
    local _, err = template.load_data('{ p = "a" .. "b" .. true }', "t.lua")
    assert.matches("t.lua:1: '..' joins strings and numbers only", err, 1, true)
  end)
end)
