-- `aigc run` on a dataset with no cases (an empty file, only blank lines,
-- an empty stdin) ran nothing, printed a report of 0 cases and exited 0,
-- as a run that passed. It is an input error now: a message naming the
-- dataset, exit 2 (the command's status for bad input), no request.

local cli = require "cli"

describe("aigc run on a dataset with no cases", function ()
  local srv, home
  local aigc = cli.fixture(_ENV, function (s, h) srv, home = s, h end)

  it("says the dataset has no cases and exits 2, direct or --batch, from a file or stdin", function ()
    local cases = home .. "/cases.jsonl"
    for _, text in ipairs { "", "\n  \n\n" } do
      cli.write(cases, text)
      for _, extra in ipairs { {}, { "--json" }, { "--batch" } } do
        local args = { "run", cases, "--no-log", "-q" }
        for _, a in ipairs(extra) do args[#args + 1] = a end
        local r = aigc(args)
        assert.equal(2, r.code, r.stderr)
        assert.equal("aigc run: the dataset " .. cases .. " has no cases\n", r.stderr)
        assert.equal("", r.stdout)
      end
    end
    local r = aigc({ "run", "-", "--no-log", "-q" }, { stdin = "" })
    assert.equal(2, r.code, r.stderr)
    assert.equal("aigc run: the dataset - has no cases\n", r.stderr)
    assert.equal(0, #srv:requests())
    -- (one case still runs, as before)
    cli.write(cases, '{"id": "a", "prompt": "Echo: hi"}\n')
    r = aigc { "run", cases, "--no-log", "-q", "--json" }
    assert.equal(0, r.code, r.stderr)
  end)
end)
