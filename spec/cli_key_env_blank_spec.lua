-- An endpoint's api_key_env variable that holds a key the client refuses
-- (blank, a CR from a .env file saved with CRLF): the message named
-- `opts.api_key`, an option the user never set, nor the config file's
-- key. It names the variable now, never its value.
local cli = require "cli"

describe("aigc -e NAME whose api_key_env holds a refused key", function ()
  local srv, home
  local aigc = cli.fixture(_ENV, function (s, h) srv, home = s, h end)

  it("names the variable, shows no byte of the key, sends nothing", function ()
    cli.write(home .. "/config.lua", string.format(
      '{ endpoints = { work = { base_url = %q, api_key_env = "AIGC_SPEC_WORK_KEY" } } }', srv.base_url))
    for _, case in ipairs {
      { "    \t   ", "is blank (only spaces or tabs)" },
      { "sk-work-key-0123456789\r", "contains CR, LF or NUL" },
    } do
      local r = aigc({ "-e", "work", "--no-log", "Hi" }, { env = { AIGC_SPEC_WORK_KEY = case[1] } })
      assert.equal(2, r.code, r.stderr)
      assert.equal("cannot make the client: $AIGC_SPEC_WORK_KEY: " .. case[2] .. "\n", r.stderr)
      assert.is_nil(r.stderr:find("sk-work", 1, true))
    end
    assert.equal(0, #srv:requests())
    -- (a good key in it: sent)
    local r = aigc({ "-e", "work", "--no-log", "Hi" }, { env = { AIGC_SPEC_WORK_KEY = "sk-work-key-0123456789" } })
    assert.equal(0, r.code, r.stderr)
    assert.equal(1, #srv:requests())
  end)
end)
