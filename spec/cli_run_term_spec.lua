-- `aigc run -` fed by a pipe, stopped by SIGTERM (a supervisor, `kill`,
-- `timeout`) or SIGHUP (its terminal closed): the signal killed it at once,
-- and its private copy of the cases (every prompt) stayed in $TMPDIR until
-- the next piped run. It stops as at Ctrl-C now -- the copy removed, the
-- lines so far whole -- and then ends by the signal (143, 129).

local cjson = require "cjson"
local cli = require "cli"
local devserver = require "devserver"
local proc = require "procutil"
local socket = require "socket"

describe("aigc run - stopped by a signal that ends it", function ()
  local srv, home
  setup(function () srv = devserver.start { pause_ms = 20 } end)
  teardown(function () srv:stop() end)
  before_each(function () srv:reset(); home = cli.home() end)
  after_each(function () cli.rmdir(home) end)

  local function stopped_by (signal, code)
    local tmpdir, fifo, out = home .. "/tmp", home .. "/cases.fifo", home .. "/out.jsonl"
    assert.is_true(proc.execute("mkdir " .. proc.quote(tmpdir) .. " && mkfifo " .. proc.quote(fifo)))
    local lines = {}
    for i = 1, 400 do lines[i] = ('{"id":"c%d","prompt":"Echo: case %d"}'):format(i, i) end
    cli.write(home .. "/cases.jsonl", table.concat(lines, "\n") .. "\n")
    assert.is_true(proc.execute("(cat " .. proc.quote(home .. "/cases.jsonl") .. " > " .. proc.quote(fifo) .. ") &"))
    local job = cli.background({ "run", "-", "-q", "--no-log", "-m", "aigc-dev", "--out", out, "--concurrency", "1" },
      { home = home, base_url = srv.base_url, stdin_path = fifo, stderr = home .. "/err", env = { TMPDIR = tmpdir } })
    local deadline = socket.gettime() + 60
    -- (two lines written: the run is past its first step, where it starts to hear the signals)
    while select(2, (proc.read_file(out) or ""):gsub("\n", "")) < 2 do
      assert(socket.gettime() < deadline, "the run wrote no two lines")
      socket.sleep(0.02)
    end
    os.execute("kill -" .. signal .. " " .. job.pid)
    assert.equal(code, job.wait_exit(deadline))
    local left = {}
    for name in io.popen("ls -A " .. proc.quote(tmpdir)):lines() do left[#left + 1] = name end
    assert.same({}, left)   -- (the copy of the cases: removed)
    local n = 0
    for line in proc.read_file(out):gmatch("([^\n]*)\n") do   -- (every line whole)
      n = n + 1
      assert.is_true(cjson.decode(line).ok, line)
    end
    assert.is_true(n >= 2 and n < 400, n)
    assert.equal("aigc run: stopped by SIG" .. signal .. " (the results so far are in " .. out
                 .. ": run it again to resume)\n", proc.read_file(home .. "/err"))
  end

  it("SIGTERM: the copy of the cases removed, the lines whole, exit 143", function ()
    stopped_by("TERM", 143)
  end)

  it("SIGHUP: so too, exit 129", function ()
    stopped_by("HUP", 129)
  end)
end)
