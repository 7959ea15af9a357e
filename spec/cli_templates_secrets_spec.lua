-- `aigc templates edit` and the key variables: the editor runs with the
-- user's environment (a choice, as git's: it is the user's own program),
-- every variable aigc treats as a secret included (OPENAI_API_KEY,
-- AZURE_OPENAI_API_KEY, AZURE_OPENAI_AD_TOKEN, an endpoint's api_key_env),
-- and nothing aigc prints on any of edit's ends (saved, the editor failed,
-- a broken template, the file gone, a bad name) holds any of them.
local cli = require "cli"

local KEYS = {
  OPENAI_API_KEY = "sk-fake-openai-0123456789abcdef",
  AZURE_OPENAI_API_KEY = "az-fake-key-456789abcdef012345",
  AZURE_OPENAI_AD_TOKEN = "eyJfake.ad-token.89abcdef0123456",
  MY_ENDPOINT_KEY = "ep-fake-key-abcdef0123456789ab",
}

describe("aigc templates edit and the key variables", function ()
  local home
  local aigc = cli.fixture(_ENV, function (_, h) home = h end)

  local function env_with (editor)
    local env = { EDITOR = editor }
    for k, v in pairs(KEYS) do env[k] = v end
    return env
  end

  local function assert_no_key (r)
    local out = r.stdout .. r.stderr
    for name, key in pairs(KEYS) do
      for i = 1, #key - 11 do
        assert.is_nil(out:find(key:sub(i, i + 11), 1, true), name .. "'s value printed: " .. out)
      end
    end
  end

  it("gives the editor every key variable and prints none of them, on every end", function ()
    cli.write(home .. "/config.lua", [[
      { endpoints = { mine = { base_url = "http://127.0.0.1:9/v1", api_key_env = "MY_ENDPOINT_KEY" } },
        endpoint = "mine" }]])
    -- the editor checks it got each variable's value
    local saw = home .. "/editor-saw-keys"
    local checks = {}
    for k, v in pairs(KEYS) do checks[#checks + 1] = "[ \"$" .. k .. "\" = " .. v .. " ]" end
    local r = aigc({ "templates", "edit", "withkeys" },
                   { env = env_with("sh -c '" .. table.concat(checks, " && ") .. " && touch " .. saw .. "; exit 0'") })
    assert.equal(0, r.code, r.stderr)
    assert.matches("template 'withkeys' saved", r.stderr, 1, true)
    assert.is_not_nil(io.open(saw), "the editor did not see every key variable")
    assert_no_key(r)
    -- the editor fails
    r = aigc({ "templates", "edit", "never" }, { env = env_with("false") })
    assert.equal(1, r.code)
    assert_no_key(r)
    -- the editor leaves a broken template
    r = aigc({ "templates", "edit", "broken" }, { env = env_with("sh -c 'echo \"{ prompt = \" > \"$0\"'") })
    assert.equal(1, r.code)
    assert.matches("the file is kept", r.stderr, 1, true)
    assert_no_key(r)
    -- the editor removes the file
    r = aigc({ "templates", "edit", "gone" }, { env = env_with("rm") })
    assert.equal(1, r.code)
    assert_no_key(r)
    -- a bad name
    r = aigc({ "templates", "edit", "../x" }, { env = env_with("true") })
    assert.is_true(r.code ~= 0)
    assert_no_key(r)
  end)
end)
