-- `aigc run --batch` stopped by Ctrl-C after its batch was created but
-- before the server answered its first poll: the Ctrl-C message named no
-- batch (the run knew of it only from a poll's progress report), so the
-- user could neither resume nor cancel the batch, which went on, billed.

local batch_interrupt = require "batch_interrupt"
local cli = require "cli"
local devserver = require "devserver"
local proc = require "procutil"
local socket = require "socket"

describe("aigc run --batch stopped by Ctrl-C before its first poll's answer", function ()
  it("names the batch it created, to resume or cancel", function ()
    local srv = devserver.start {}
    finally(function () srv:stop() end)
    local home = cli.home()
    finally(function () cli.rmdir(home) end)
    -- (in the command's own process: the first poll is held, as a slow
    -- server's, until Ctrl-C; the batch's id is written for the test first)
    local init, marker = home .. "/hold.lua", home .. "/waiting"
    batch_interrupt.hold_init(init, "wait", marker)
    cli.write(home .. "/cases.jsonl", '{"id":"c1","messages":[{"role":"user","content":"Echo: one"}]}\n')
    local args = { "run", home .. "/cases.jsonl", "--batch", "-q", "-m", "aigc-dev" }
    local job = cli.background(args, { home = home, base_url = srv.base_url, stderr = home .. "/err",
                                       env = { LUA_INIT = "@" .. init, AIGC_NO_LOG = "1" } })
    local deadline = socket.gettime() + 30
    cli.wait_until(function () return proc.read_file(marker) ~= nil and proc.read_file(marker) ~= "" end,
                   "the run's wait for its batch", 30)
    local id = proc.read_file(marker)
    os.execute("kill -INT " .. job.pid)
    -- (the wait runs in a task of the client: on Lua 5.1-5.4 the interpreter's Ctrl-C hook is
    -- the main thread's, and "interrupted!" is raised there once the hold lets the task yield)
    cli.write(marker .. ".go", "")
    local code = job.wait_exit(deadline)
    local said = proc.read_file(home .. "/err")
    -- (the batch was created, and never polled)
    local polls = 0
    for _, r in ipairs(srv:requests()) do if r.method == "GET" then polls = polls + 1 end end
    assert.equal(0, polls)
    assert.equal(batch_interrupt.message(id), said)
    assert.equal(130, code)
  end)
end)
