-- `aigc run`'s errors about what it was given, said once, up front:
-- - `-o temperature=abc` failed every case with "bad argument" (exit 1),
--   and with --batch it went in a batch the server refused line by line,
--   paid for: one usage error now (exit 2), nothing sent;
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

  for _, extra in ipairs { {}, { "--batch" }, { "--api", "responses" } } do
    it("-o temperature=abc " .. table.concat(extra, " ") .. ": one usage error, exit 2, nothing sent", function ()
      local args = { "run", cases(), "-q", "--no-log", "-m", "aigc-dev", "-o", "temperature=abc",
                     "--out", home .. "/r.jsonl" }
      for _, a in ipairs(extra) do args[#args + 1] = a end
      local r = aigc(args)
      assert.equal(2, r.code)
      assert.equal("aigc run: -o temperature: number expected, got string\n", r.stderr)
      assert.equal("", r.stdout)
      assert.same({}, srv:requests())
    end)
  end

  it("-o stop=[1]: the item named as typed", function ()
    local r = aigc { "run", cases(), "-q", "--no-log", "-m", "aigc-dev", "-o", "stop=[1]" }
    assert.equal(2, r.code)
    assert.equal("aigc run: -o stop[1]: string expected, got number\n", r.stderr)
    assert.same({}, srv:requests())
  end)

  it("good -o values still run", function ()
    local r = aigc { "run", cases(), "-q", "--no-log", "-m", "aigc-dev", "-o", "temperature=0.5", "-o", "seed=3" }
    assert.equal(0, r.code, r.stderr)
    assert.equal(2, #srv:requests())
  end)

  it("--out in a folder that is not there: its path once", function ()
    local out = home .. "/nowhere/r.jsonl"
    local r = aigc { "run", cases(), "-q", "--no-log", "-m", "aigc-dev", "--out", out }
    assert.equal(1, r.code)
    assert.equal("aigc run: cannot open " .. out .. ": No such file or directory\n", r.stderr)
    assert.same({}, srv:requests())
  end)
end)
