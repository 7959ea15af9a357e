-- `aigc run --batch --out OUT` stopped by a signal (Ctrl-C, SIGTERM) after
-- the server made its batch and before the run kept the batch's id in
-- OUT.batch: the next run knew of no batch and made a second one; the
-- first went on at the server, billed, its results never taken.

local batch_interrupt = require "batch_interrupt"
local cli = require "cli"
local devserver = require "devserver"
local proc = require "procutil"
local socket = require "socket"

describe("aigc run --batch stopped between its batch made and its id kept", function ()
  local srv, home
  setup(function () srv = devserver.start {} end)
  teardown(function () srv:stop() end)
  before_each(function () srv:reset(); home = cli.home() end)
  after_each(function () cli.rmdir(home) end)

  local function creates ()
    local n = 0
    for _, r in ipairs(srv:requests()) do if r.method == "POST" and r.path == "/v1/batches" then n = n + 1 end end
    return n
  end

  for _, sig in ipairs { "INT", "TERM" } do
    it("the next run resumes the batch the stopped one made (SIG" .. sig .. ")", function ()
      -- (in the command's own process: once batch.create has returned, the
      -- run is held, in Lua code, until the signal; its batch's id is
      -- written for the test first)
      local init, marker = home .. "/hold.lua", home .. "/made"
      batch_interrupt.hold_init(init, "create", marker)
      local cases, out = home .. "/cases.jsonl", home .. "/r.jsonl"
      cli.write(cases, '{"id":"c1","prompt":"Echo: one"}\n{"id":"c2","prompt":"Echo: two"}\n')
      local args = { "run", cases, "--batch", "-q", "-m", "aigc-dev", "--out", out }
      local job = cli.background(args, { home = home, base_url = srv.base_url, stderr = home .. "/err",
                                         env = { LUA_INIT = "@" .. init, AIGC_NO_LOG = "1" } })
      local deadline = socket.gettime() + 30
      cli.wait_until(function () return (proc.read_file(marker) or "") ~= "" end, "the batch made", 30)
      local id = proc.read_file(marker)
      assert.matches("^batch_", id)
      os.execute("kill -" .. sig .. " " .. job.pid)
      cli.write(marker .. ".go", "")   -- (SIGTERM is noted: the run goes on from the hold, keeps the id, then stops)
      local code = job.wait_exit(deadline)
      assert.equal(sig == "INT" and 130 or 143, code, proc.read_file(home .. "/err"))
      if sig == "TERM" then   -- (the run went on to keep its id, then stopped naming the batch)
        assert.matches("^aigc run: stopped by SIGTERM: batch " .. id .. " goes on at the server",
                       proc.read_file(home .. "/err"))
      end
      if sig == "INT" then
        assert.equal("aigc run: interrupted as its batch was asked for: run it again (" .. out .. ".batch keeps the "
                     .. "request: the batch, if the server made it, is resumed)\n", proc.read_file(home .. "/err"))
      end
      assert.equal(1, creates())
      -- again, as it was: the batch made is the one taken, no second one
      local r = cli.run(args, { home = home, base_url = srv.base_url, env = { AIGC_NO_LOG = "1" } })
      assert.equal(0, r.code, r.stderr)
      assert.equal(1, creates())
      local rows = proc.json_lines(out)
      assert.equal(2, #rows)
      for _, row in ipairs(rows) do
        assert.is_true(row.ok)
        assert.equal(id, row.batch_id)
      end
      assert.is_nil(proc.read_file(out .. ".batch"))
    end)
  end

  it("a run stopped before its batch was asked for sends one: the intent kept finds none", function ()
    local cases, out = home .. "/cases.jsonl", home .. "/r.jsonl"
    cli.write(cases, '{"id":"c1","prompt":"Echo: one"}\n')
    cli.write(out .. ".batch", "pending 0123456789abcdef\n{}\n")   -- (as a run killed before its request leaves it)
    local r = cli.run({ "run", cases, "--batch", "-q", "-m", "aigc-dev", "--out", out },
                      { home = home, base_url = srv.base_url, env = { AIGC_NO_LOG = "1" } })
    assert.equal(0, r.code, r.stderr)
    assert.equal(1, creates())
    assert.is_true(proc.json_lines(out)[1].ok)
    assert.is_nil(proc.read_file(out .. ".batch"))
  end)
end)
