-- `aigc run --batch --out OUT` whose OUT.batch is removed while the run
-- waits for its batch (by hand, a cleaner of old files), then stopped by
-- Ctrl-C: the rerun found no batch kept and sent the cases as a second
-- batch, paid twice, nothing said. The run writes OUT.batch again (at each
-- poll, and when it stops before the results are written): the rerun
-- resumes the batch it sent.

local cli = require "cli"
local devserver = require "devserver"
local proc = require "procutil"
local socket = require "socket"

-- How many batches (and files) the server was asked to make.
local function made (srv)
  return devserver.count(srv, "POST", "/v1/batches"), devserver.count(srv, "POST", "/v1/files")
end

describe("aigc run --batch, OUT.batch removed during the wait, then Ctrl-C", function ()
  it("keeps the batch in OUT.batch again: the rerun resumes it, sends no second batch", function ()
    -- (a line takes 10 minutes: the batch is still running at the rerun, which gives up waiting)
    local srv = devserver.start { pause_ms = 0, batch_delay_ms = 600000 }
    finally(function () srv:stop() end)
    local home = cli.home()
    finally(function () cli.rmdir(home) end)
    cli.write(home .. "/cases.jsonl", '{"id":"a","prompt":"Echo: a"}\n{"id":"b","prompt":"Echo: b"}\n')
    local out = home .. "/out.jsonl"
    local args = { "run", home .. "/cases.jsonl", "--batch", "-q", "--no-log", "-m", "aigc-dev", "--out", out }
    local job = cli.background(args, { home = home, base_url = srv.base_url, stderr = home .. "/err" })
    local deadline = socket.gettime() + 60
    local id = devserver.batch_polled(srv, 2, deadline)   -- (the run waits for its batch)
    assert.is_true(proc.exists(out .. ".batch"))
    assert.is_true(os.remove(out .. ".batch"))
    os.execute("kill -INT " .. job.pid)
    assert.equal(130, job.wait_exit(deadline))
    assert.equal(1, (made(srv)))
    assert.is_true(proc.exists(out .. ".batch"))   -- (written again)
    -- The rerun: the same batch, polled; given up after a second (it is still running), no new one.
    args[#args + 1] = "--batch-timeout"
    args[#args + 1] = "1"
    local r = cli.run(args, { home = home, base_url = srv.base_url })
    assert.is_true(r.code ~= 0, r.stderr)
    local batches, files = made(srv)
    assert.equal(1, batches)
    assert.equal(1, files)
    assert.matches("batch " .. id .. " goes on at the server", r.stderr, 1, true)
    assert.equal(id, (proc.read_file(out .. ".batch") or ""):match("^[^\n]+"))
  end)
end)
