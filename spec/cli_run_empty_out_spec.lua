-- `aigc run cases.jsonl --out "$OUT"` with OUT unset or empty gave
-- `aigc run: cannot open : No such file or directory`, exit 1 (a failed
-- call's status). A usage error now, naming the option: exit 2, no request.

local cli = require "cli"

describe("aigc run --out ''", function ()
  local srv, home
  local aigc = cli.fixture(_ENV, function (s, h) srv, home = s, h end)

  it("is a usage error naming --out, nothing sent, direct or --batch", function ()
    local cases = home .. "/cases.jsonl"
    cli.write(cases, '{"id": "a", "prompt": "Echo: hi"}\n')
    for _, extra in ipairs { {}, { "--batch" } } do
      local args = { "run", cases, "--no-log", "-q", "--out", "" }
      for _, a in ipairs(extra) do args[#args + 1] = a end
      local r = aigc(args)
      assert.equal(2, r.code, r.stderr)
      assert.equal("--out: an empty file name (a results file, or - for stdout)\n", r.stderr)
      assert.equal("", r.stdout)
    end
    assert.equal(0, #srv:requests())
    -- (a results file still takes the run, as before)
    local r = aigc { "run", cases, "--no-log", "-q", "--out", home .. "/out.jsonl" }
    assert.equal(0, r.code, r.stderr)
    assert.matches('"id":"a"', cli.read(home .. "/out.jsonl") or "", 1, true)
  end)
end)
