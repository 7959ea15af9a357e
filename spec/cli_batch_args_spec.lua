-- `aigc run --batch --batch-id ID` with an empty ID (`--batch-id "$ID"`,
-- ID unset in the user's script; `a,,b`): the empty id was no id, and the
-- run sent the cases as a new batch, paid twice, the batch meant to be
-- resumed left alone. It is a usage error now (exit 2), nothing sent.

local cli = require "cli"
local devserver = require "devserver"

describe("aigc run --batch --batch-id with an empty id", function ()
  local srv, home
  setup(function () srv = devserver.start { pause_ms = 0 } end)
  teardown(function () srv:stop() end)
  before_each(function () srv:reset(); home = cli.home() end)
  after_each(function () cli.rmdir(home) end)

  for _, id in ipairs { "", " ", ",", "a,,b", "a," } do
    it("'" .. id .. "': a usage error naming it, no batch sent", function ()
      cli.write(home .. "/cases.jsonl", '{"id":"a","prompt":"Echo: a"}\n')
      local r = cli.run({ "run", home .. "/cases.jsonl", "--batch", "--batch-id", id, "-q", "--no-log",
                          "-m", "aigc-dev", "--out", home .. "/out.jsonl" }, { home = home, base_url = srv.base_url })
      assert.equal(2, r.code, r.stderr)
      assert.matches("--batch-id: an empty batch id in '" .. id .. "' (IDs, comma-separated)", r.stderr, 1, true)
      assert.equal(0, #srv:requests())
    end)
  end
end)
