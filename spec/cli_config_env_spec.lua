-- `$AIGC_CONFIG` naming no file (a typo, a file moved) was taken as no
-- config at all: the endpoint, model and settings it was meant to give were
-- left out without a word. Exit 2 naming it, nothing sent; the default path
-- with no file there is still no config.
local cli = require "cli"

describe("aigc with $AIGC_CONFIG naming no file", function ()
  local srv, home
  local aigc = cli.fixture(_ENV, function (s, h) srv, home = s, h end)

  it("exit 2 naming the file and the variable, nothing sent (a prompt, logs path)", function ()
    local path = home .. "/no-such-config.lua"
    for _, args in ipairs { { "-m", "aigc-dev", "Hi" }, { "logs", "path" } } do
      local r = aigc(args, { env = { AIGC_CONFIG = path } })
      assert.equal(2, r.code, r.stderr)
      assert.equal("", r.stdout)
      assert.equal("no config file " .. path .. " (named by $AIGC_CONFIG)\n", r.stderr)
    end
    assert.equal(0, #srv:requests())
  end)

  it("the file there: its settings go; no $AIGC_CONFIG and no config.lua: no config", function ()
    local path = home .. "/my-config.lua"
    cli.write(path, '{ model = "from-my-config" }')
    local r = aigc({ "--json", "Hi" }, { env = { AIGC_CONFIG = path } })
    assert.equal(0, r.code, r.stderr)
    assert.equal("from-my-config", srv:bodies("/v1/chat/completions")[1].model)
    r = aigc { "-m", "aigc-dev", "Hi" }
    assert.equal(0, r.code, r.stderr)
  end)
end)
