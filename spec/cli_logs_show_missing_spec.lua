-- `aigc logs show N` for an entry that is not there: with a log that lacks
-- it, exit 1 naming it; with no log at all it said "nothing logged there
-- yet" and exited 0 (with --json printing [], not an entry), so a script
-- took a missing entry for a found one. Exit 1 there too, naming it; and
-- with --json for a log that lacks it (it printed [] and exited 0).
local cli = require "cli"

describe("aigc logs show N, N not logged", function ()
  local home
  local aigc = cli.fixture(_ENV, function (_, h) home = h end)

  it("no log at all: exit 1 naming the entry and the log, nothing on stdout (--json too)", function ()
    local db = home .. "/none.db"
    for _, extra in ipairs { {}, { "--json" } } do
      local args = { "logs", "show", "7", "--log-db", db }
      for _, a in ipairs(extra) do args[#args + 1] = a end
      local r = aigc(args)
      assert.equal(1, r.code, r.stderr)
      assert.equal("", r.stdout)
      assert.equal("aigc: no entry #7: no log at " .. db .. "\n", r.stderr)
    end
    assert.is_nil(io.open(db, "rb"))   -- (reading makes no log)
  end)

  it("a log without it: exit 1 as before; a listing of no log still exits 0", function ()
    local db = home .. "/logs.db"
    local r = aigc { "-m", "aigc-dev", "--log-db", db, "Echo: one" }
    assert.equal(0, r.code, r.stderr)
    r = aigc { "logs", "show", "7", "--log-db", db }
    assert.equal(1, r.code, r.stderr)
    assert.equal("aigc: no entry #7 in " .. db .. "\n", r.stderr)
    -- (--json printed [] and exited 0 here)
    r = aigc { "logs", "show", "7", "--json", "--log-db", db }
    assert.equal(1, r.code, r.stderr)
    assert.equal("", r.stdout)
    assert.equal("aigc: no entry #7 in " .. db .. "\n", r.stderr)
    r = aigc { "logs", "show", "1", "--json", "--log-db", db }
    assert.equal(0, r.code, r.stderr)
    assert.equal(1, #require("cjson").decode(r.stdout))
    r = aigc { "logs", "--log-db", home .. "/other.db" }
    assert.equal(0, r.code, r.stderr)
  end)
end)
