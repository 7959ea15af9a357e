-- `aigc templates list` and `path`, `aigc logs path`: an argument they do not
-- take was ignored without a word (`aigc templates list summary` listed
-- every template; `aigc logs path 7` printed the path), and an empty
-- template folder listed as a blank. A usage error (exit 2) naming what to
-- type instead; an empty listing says so on stderr, exit 0.
local cli = require "cli"

describe("aigc templates / logs: arguments they do not take, and an empty listing", function ()
  local home

  before_each(function () home = cli.home() end)
  after_each(function () cli.rmdir(home) end)

  local function aigc (args) return cli.run(args, { home = home }) end

  it("templates list with no template: says so on stderr, exit 0", function ()
    local r = aigc { "templates", "list" }
    assert.equal(0, r.code, r.stderr)
    assert.equal("", r.stdout)
    assert.equal("aigc: no templates in " .. home .. "/templates (aigc templates edit NAME makes one)\n", r.stderr)
    cli.write(home .. "/templates/greet.lua", '{ prompt = "Hi {{name}}", description = "a greeting" }')
    r = aigc { "templates" }
    assert.equal(0, r.code, r.stderr)
    assert.equal("greet  a greeting\n", r.stdout)
    assert.equal("", r.stderr)
  end)

  it("templates list NAME, templates path NAME: a usage error pointing at show", function ()
    cli.write(home .. "/templates/greet.lua", '{ prompt = "Hi" }')
    for _, action in ipairs { "list", "path" } do
      local r = aigc { "templates", action, "greet" }
      assert.equal(2, r.code, r.stderr)
      assert.equal("", r.stdout)
      assert.equal("aigc templates " .. action .. " takes no NAME (aigc templates show greet)\n", r.stderr)
    end
  end)

  it("logs path ID: a usage error, as logs list ID is", function ()
    for _, action in ipairs { "path", "list" } do
      local r = aigc { "logs", action, "7" }
      assert.equal(2, r.code, r.stderr)
      assert.equal("", r.stdout)
      assert.equal("aigc logs: unexpected argument '7'\n", r.stderr)
    end
    local r = aigc { "logs", "path" }
    assert.equal(0, r.code, r.stderr)
    assert.equal(home .. "/logs.db\n", r.stdout)
  end)
end)
