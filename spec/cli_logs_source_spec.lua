-- `aigc logs --source NAME` for a source no entry came from (a mistyped
-- `--source rnu`): it printed nothing and exited 0, so a script took it for
-- a quiet log. Exit 1 naming the source and the sources the log has, as
-- `aigc logs show N` does for a missing entry; a known source with nothing
-- matching the rest of the filter still lists nothing, exit 0.
local cli = require "cli"

describe("aigc logs --source", function ()
  local home
  local aigc = cli.fixture(_ENV, function (_, h) home = h end)

  it("a source not in the log: exit 1 naming it and the log's sources, nothing on stdout (--json too)", function ()
    local db = home .. "/logs.db"
    local r = aigc { "-m", "aigc-dev", "--log-db", db, "Echo: one" }
    assert.equal(0, r.code, r.stderr)
    for _, extra in ipairs { {}, { "--json" }, { "-n", "0", "-q", "one" } } do
      local args = { "logs", "--source", "nope", "--log-db", db }
      for _, a in ipairs(extra) do args[#args + 1] = a end
      r = aigc(args)
      assert.equal(1, r.code, r.stderr)
      assert.equal("", r.stdout)
      assert.equal("aigc: no entries from source 'nope' in " .. db .. " (its sources: cli)\n", r.stderr)
    end
  end)

  it("a source the log has: its entries, exit 0; nothing matching the rest of the filter is still exit 0",
     function ()
    local db = home .. "/logs.db"
    assert.equal(0, aigc({ "-m", "aigc-dev", "--log-db", db, "Echo: one" }).code)
    local r = aigc { "logs", "--source", "cli", "--log-db", db }
    assert.equal(0, r.code, r.stderr)
    assert.matches("> Echo: one", r.stdout, 1, true)
    r = aigc { "logs", "--source", "cli", "-q", "zzzz", "--log-db", db }
    assert.equal(0, r.code, r.stderr)
    assert.equal("", r.stdout)
    assert.equal("aigc: no entries\n", r.stderr)
  end)

  it("no log at all: exit 1 naming the source and the log; a listing of no log still exits 0", function ()
    local db = home .. "/none.db"
    local r = aigc { "logs", "--source", "run", "--log-db", db }
    assert.equal(1, r.code, r.stderr)
    assert.equal("", r.stdout)
    assert.equal("aigc: no entries from source 'run': no log at " .. db .. "\n", r.stderr)
    assert.is_nil(io.open(db, "rb"))   -- (reading makes no log)
    r = aigc { "logs", "--log-db", db }
    assert.equal(0, r.code, r.stderr)
  end)
end)
