-- `aigc run` stopped by SIGTERM or SIGHUP at moments the signal was lost:
-- - a `--batch` run waiting for its batch (its sleep between polls lasts
--   up to a minute) was killed at once, its batch's id unsaid without
--   --out (the progress line alone showed it, and not with -q): a rerun
--   sent a second batch, paid twice. It stops now, naming the batch and
--   how to take its results, then ends by the signal;
-- - a signal that came after the run's last look for one (its last line
--   written) was swallowed, exit 0: the run ends by it now.

local cli = require "cli"
local devserver = require "devserver"
local proc = require "procutil"
local socket = require "socket"

describe("aigc run --batch stopped by a signal while it waits", function ()
  local srv, home
  -- (a line every 100 s: the batch is still running when the signal comes)
  setup(function () srv = devserver.start { batch_delay_ms = 100000 } end)
  teardown(function () srv:stop() end)
  before_each(function () srv:reset(); home = cli.home() end)
  after_each(function () cli.rmdir(home) end)

  local function stopped (signal, extra)
    cli.write(home .. "/cases.jsonl", '{"id":"a","prompt":"Echo: one"}\n{"id":"b","prompt":"Echo: two"}\n')
    local args = { "run", home .. "/cases.jsonl", "--batch", "-q", "--no-log", "-m", "aigc-dev" }
    for _, a in ipairs(extra) do args[#args + 1] = a end
    local job = cli.background(args, { home = home, base_url = srv.base_url, stderr = home .. "/err" })
    local deadline = socket.gettime() + 120
    -- (two polls: the run sleeps between polls, 2 s and more as the batch does not move)
    local id = devserver.batch_polled(srv, 2, deadline)
    os.execute("kill -" .. signal .. " " .. job.pid)
    return job.wait_exit(deadline), proc.read_file(home .. "/err"), id
  end

  it("SIGTERM without --out: the batch named, and how to take its results; exit 143", function ()
    local code, err, id = stopped("TERM", {})
    assert.equal(143, code, err)
    assert.equal("aigc run: stopped by SIGTERM: batch " .. id .. " goes on at the server (run it again with "
                 .. "--batch-id " .. id .. " to take its results; --batch --cancel --batch-id " .. id
                 .. " cancels it)\n", err)
    assert.equal(1, devserver.count(srv, "POST", "/v1/batches"))
  end)

  it("SIGHUP with --out: OUT.batch keeps its id; exit 129", function ()
    local out = home .. "/r.jsonl"
    local code, err, id = stopped("HUP", { "--out", out })
    assert.equal(129, code, err)
    assert.equal("aigc run: stopped by SIGHUP: batch " .. id .. " goes on at the server (run it again ("
                 .. out .. ".batch keeps its id) to take its results; --batch --cancel --batch-id " .. id
                 .. " cancels it)\n", err)
    assert.equal(id, (proc.read_file(out .. ".batch") or ""):match("^[^\n]*"))
  end)
end)

-- (a LUA_INIT script: once runner.run has returned -- the run's last look
-- for a signal made --, MARKER is written and the run held until GO is there)
local HOLD = [[
local require0 = require
function require (name)
  local m = require0(name)
  if name == "aigc.runner" and not m.held then
    m.held = true
    local run, uv = m.run, require0("luv")
    m.run = function (...)
      local a, b = run(...)
      local f = assert(io.open(%q, "w")); f:close()
      local deadline = os.time() + 60
      while os.time() < deadline and not io.open(%q) do uv.sleep(10) end
      return a, b
    end
  end
  return m
end
]]

describe("aigc run, a signal after its last look for one", function ()
  local srv, home
  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)
  before_each(function () srv:reset(); home = cli.home() end)
  after_each(function () cli.rmdir(home) end)

  for _, case in ipairs { { "TERM", 143 }, { "HUP", 129 } } do
    it("SIG" .. case[1] .. ": the report, then the run ends by it (" .. case[2] .. ", not 0)", function ()
      local marker, go, init = home .. "/ran", home .. "/go", home .. "/hold.lua"
      cli.write(init, HOLD:format(marker, go))
      cli.write(home .. "/cases.jsonl", '{"id":"a","prompt":"Echo: one"}\n')
      local out = home .. "/r.jsonl"
      local job = cli.background({ "run", home .. "/cases.jsonl", "-q", "--no-log", "-m", "aigc-dev", "--out", out },
        { home = home, base_url = srv.base_url, stderr = home .. "/err", env = { LUA_INIT = "@" .. init } })
      local deadline = socket.gettime() + 60
      cli.wait_until(function () return proc.exists(marker) end, "the run's end", 60)
      os.execute("kill -" .. case[1] .. " " .. job.pid)
      cli.write(go, "")
      local code = job.wait_exit(deadline)
      local err = proc.read_file(home .. "/err")
      assert.equal(case[2], code, err)
      assert.matches("^cases 1 %(0 from an earlier run%): ok 1", err)
      assert.matches("\naigc run: SIG" .. case[1] .. " came as the run ended: every case has its result\n$", err)
      assert.is_true(proc.json_lines(out)[1].ok)
    end)
  end
end)
