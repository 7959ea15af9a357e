-- `aigc run --batch --out OUT` whose results cannot be written once the
-- batch is over (`--out /dev/full`, stdout a full disk): the error said
-- "cannot write ..." alone. The batch was made and paid for, its results
-- at the server, and with no OUT.batch beside a device its id was lost:
-- running the command again sent a second batch. The error names the
-- batch and how to take its results; so taken, nothing is sent again.

local cjson = require "cjson"
local cli = require "cli"
local devserver = require "devserver"
local proc = require "procutil"

local function made (srv) return devserver.count(srv, "POST", "/v1/batches") end

describe("aigc run --batch whose results cannot be written", function ()
  local srv, home
  setup(function () srv = devserver.start { pause_ms = 0 } end)
  teardown(function () srv:stop() end)
  before_each(function () srv:reset(); home = cli.home() end)
  after_each(function () cli.rmdir(home) end)

  it("--out /dev/full: the error names the batch and --batch-id; the rerun so takes its results", function ()
    cli.write(home .. "/cases.jsonl", '{"id":"a","prompt":"Echo: a"}\n{"id":"b","prompt":"Echo: b"}\n')
    local args = { "run", home .. "/cases.jsonl", "--batch", "-q", "--no-log", "-m", "aigc-dev", "--out", "/dev/full" }
    local r = cli.run(args, { home = home, base_url = srv.base_url })
    assert.equal(1, r.code, r.stderr)
    assert.equal(1, made(srv))
    local id = r.stderr:match("%-%-batch%-id (%S+) to take its results%)\n$")
    assert.is_string(id, r.stderr)
    assert.equal("aigc run: cannot write /dev/full: No space left on device (batch " .. id .. " was made, its "
                 .. "results are at the server: run it again with --batch-id " .. id .. " to take its results)\n",
                 r.stderr)
    args[#args] = home .. "/out.jsonl"
    args[#args + 1] = "--batch-id"
    args[#args + 1] = id
    r = cli.run(args, { home = home, base_url = srv.base_url })
    assert.equal(0, r.code, r.stderr)
    assert.equal(1, made(srv))   -- (no second batch)
    local got = {}
    for line in proc.read_file(home .. "/out.jsonl"):gmatch("[^\n]+") do
      local res = cjson.decode(line)
      assert.equal(id, res.batch_id)
      got[res.id] = res.text
    end
    assert.same({ a = "a", b = "b" }, got)
  end)

  it("a --batch-id whose server cannot be reached: its error alone (no batch said made)", function ()
    cli.write(home .. "/cases.jsonl", '{"id":"a","prompt":"Echo: a"}\n')
    local r = cli.run({ "run", home .. "/cases.jsonl", "--batch", "--batch-id", "batch_x", "-q", "--no-log",
                        "-m", "aigc-dev", "--out", home .. "/out.jsonl" },
                      { home = home, base_url = "http://127.0.0.1:" .. proc.free_port() .. "/v1" })
    assert.equal(1, r.code, r.stderr)
    assert.matches("^aigc run: [^\n]*connect", r.stderr)
    assert.is_nil(r.stderr:find("was made", 1, true), r.stderr)
  end)
end)
