-- `aigc run`'s errors about what it was given, said once, up front:
-- - a results file that cannot be opened named its path twice ("cannot
--   open X: X: No such file or directory").

local cli = require "cli"

describe("aigc run, errors up front", function ()
  local srv, home
  local aigc = cli.fixture(_ENV, function (s, h) srv, home = s, h end)

  local function cases ()
    local path = home .. "/cases.jsonl"
    cli.write(path, '{"id":"a","prompt":"Echo: one"}\n{"id":"b","prompt":"Echo: two"}\n')
    return path
  end

  it("--out in a folder that is not there: its path once", function ()
    local out = home .. "/nowhere/r.jsonl"
    local r = aigc { "run", cases(), "-q", "--no-log", "-m", "aigc-dev", "--out", out }
    assert.equal(1, r.code)
    assert.equal("aigc run: cannot open " .. out .. ": No such file or directory\n", r.stderr)
    assert.same({}, srv:requests())
  end)
end)
