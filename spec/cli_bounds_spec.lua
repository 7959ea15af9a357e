-- The `aigc` command at its bounds: a prompt log holding huge texts, a
-- multi-line input in the REPL's history, datasets and inputs that are not
-- what the command expects.

local cjson = require "cjson"
local cli = require "cli"
local proc = require "procutil"

describe("aigc at its bounds", function ()
  local srv, home
  local aigc = cli.fixture(_ENV, function (s, h) srv, home = s, h end)

  it("aigc logs: a listing shortens a huge prompt and reply; show ID, --full and --json give them whole", function ()
    local promptlog = require "aigc.promptlog"
    local path = home .. "/logs.db"
    local log = assert(promptlog.open(path))
    -- 2 MB each: one long line of a 2-byte character (cut at a whole one), and many short lines
    local prompt = string.rep(string.char(195, 169), 1000000)
    local reply = string.rep("a line of the reply\n", 100000)
    local big = assert(log:record { prompt = prompt, response = reply, model = "m", status = "ok" })
    assert(log:record { prompt = "small one", response = "small reply", model = "m", status = "ok" })
    log:close()
    local r = aigc { "logs" }
    assert.equal(0, r.code, r.stderr)
    assert.is_true(#r.stdout < 5000, "the listing is " .. #r.stdout .. " bytes")
    assert.matches("> small one\n\nsmall reply\n", r.stdout, 1, true)
    assert.matches("[... 1999000 more bytes: aigc logs show " .. big .. "]", r.stdout, 1, true)
    assert.matches("\na line of the reply\n[... ", r.stdout, 1, true)
    assert.equal(12, select(2, r.stdout:gsub("a line of the reply", "")))
    assert.is_nil(r.stdout:find(string.char(195) .. "\n"), "cut inside a character")
    -- the same with -q
    r = aigc { "logs", "-q", "line" }
    assert.equal(0, r.code, r.stderr)
    assert.is_true(#r.stdout < 5000, "the search's listing is " .. #r.stdout .. " bytes")
    -- whole: show ID, --full, --json
    for _, args in ipairs { { "logs", "show", tostring(big) }, { "logs", "--full", "-n", "2" } } do
      r = aigc(args)
      assert.equal(0, r.code, r.stderr)
      assert.matches("> " .. prompt .. "\n\n" .. reply, r.stdout, 1, true)
      assert.is_nil(r.stdout:find("more bytes", 1, true))
    end
    r = aigc { "logs", "show", tostring(big) }
    assert.is_nil(r.stdout:find("small one", 1, true))
    r = aigc { "logs", "--json" }
    assert.equal(0, r.code, r.stderr)
    local entries = cjson.decode(r.stdout)
    assert.equal(prompt, entries[1].prompt)
    assert.equal(reply, entries[1].response)
    -- show without an id, or of one that is not there: said, not a blank
    r = aigc { "logs", "show" }
    assert.equal(2, r.code)
    assert.matches("give the entry's id", r.stderr, 1, true)
    r = aigc { "logs", "show", "999" }
    assert.equal(1, r.code)
    assert.matches("no entry #999", r.stderr, 1, true)
  end)
end)
