-- What the `aigc` command puts on a terminal of a server's text: shown,
-- never obeyed, and what is valid text left as it is. A pipe gets the
-- bytes as they came (README, "Prompt workflows").

local cjson = require "cjson"
local cli = require "cli"
local oneshot = require "oneshot"

local FFFD = "\239\191\189"

describe("aigc on a terminal (a server's text)", function ()
  local home
  before_each(function () home = cli.home() end)
  after_each(function () cli.rmdir(home) end)

  local function aigc (args, replies, tty)
    local base_url = oneshot.serve_raw(replies, finally)
    return cli.run(args, { home = home, base_url = base_url, env = tty and { AIGC_FORCE_TTY = "1" } or nil })
  end

  -- `aigc models --json` on a terminal showed an id holding DEL or U+009B
  -- as "^?" or U+FFFD inside the JSON: safe, but not the server's id (copied
  -- into -m, another model). JSON has an escape that shows the same value.
  it("--json shows DEL and the C1 controls as JSON escapes: the same values, nothing obeyed", function ()
    local ids = { "gpt\27]0;PWNED\7", "m\194\1552J", "z\127", "caf\195\169 \228\184\173 \240\159\152\128 e\204\129" }
    local models = oneshot.http_reply("200 OK", cjson.encode { object = "list", data = {
      { id = ids[1] }, { id = ids[2] }, { id = ids[3] }, { id = ids[4] } } })
    local r = aigc({ "models", "--json" }, { models }, true)
    assert.equal(0, r.code, r.stderr)
    assert.is_nil(r.stdout:find("[%z\1-\9\11-\31\127]"), r.stdout)
    assert.is_nil(r.stdout:find("\194[\128-\159]"), r.stdout)
    assert.is_nil(r.stdout:find(FFFD, 1, true), r.stdout)
    assert.matches('"m\\u009b2J"', r.stdout, 1, true)
    assert.matches('"z\\u007f"', r.stdout, 1, true)
    local got = {}
    for i, m in ipairs(cjson.decode(r.stdout).data) do got[i] = m.id end
    assert.same(ids, got)   -- (the text, CJK, emoji and a combining mark, as it came)
    -- a pipe: the bytes as they came
    r = aigc({ "models", "--json" }, { models })
    assert.equal(0, r.code, r.stderr)
    assert.matches("m\194\1552J", r.stdout, 1, true)
    assert.matches("z\127", r.stdout, 1, true)
  end)
end)
