-- `aigc run --batch --out OUT` sent SIGTERM while its batch is asked for
-- (the input file's upload or the create request held by the server): the
-- signal was noted, but heard only once the call ended, up to the client's
-- timeout (600 s) later. It ends now, as at the other waits, by the signal,
-- leaving the intent in OUT.batch: the next run resumes or sends the batch.

local cli = require "cli"
local proc = require "procutil"
local socket = require "socket"

describe("aigc run --batch stopped by SIGTERM while its batch is asked for", function ()
  local srv, home
  local aigc = cli.fixture(_ENV, function (s, h) srv, home = s, h end)

  -- Whether the server holds (a `hang` fault) a request of the run's on
  -- `path`: recorded as it came, with no status yet.
  local function held (path)
    for _, r in ipairs(srv:requests()) do
      if r.method == "POST" and r.path == path and type(r.status) ~= "number" then return true end
    end
    return false
  end

  for _, case in ipairs {
    { "the upload", "hang,times=1", "/v1/files" },
    { "the create request", "hang,skip=1,times=1", "/v1/batches" },
  } do
    it("held in " .. case[1] .. ": it ends by the signal, OUT.batch keeps the intent, a rerun takes the results",
       function ()
      cli.write(home .. "/config.lua", string.format('{ client = { headers = { ["x-aigc-fault"] = %q } } }', case[2]))
      local cases, out, err = home .. "/cases.jsonl", home .. "/r.jsonl", home .. "/err"
      cli.write(cases, '{"id":"c1","prompt":"Echo: one"}\n{"id":"c2","prompt":"Echo: two"}\n')
      local args = { "run", cases, "--batch", "-q", "-m", "aigc-dev", "--out", out }
      local job = cli.background(args, { home = home, base_url = srv.base_url, stderr = err,
                                         env = { AIGC_NO_LOG = "1" } })
      local deadline = socket.gettime() + 60   -- (a guard against a hang: held, the call never ends)
      cli.wait_until(function () return held(case[3]) end, case[1] .. " held", 60)
      assert.matches("^pending ", proc.read_file(out .. ".batch"))
      os.execute("kill -TERM " .. job.pid)
      assert.equal(143, job.wait_exit(deadline), proc.read_file(err))
      assert.equal("aigc run: stopped by SIGTERM as its batch was asked for: run it again (" .. out .. ".batch "
                   .. "keeps the request: the batch, if the server made it, is resumed)\n", proc.read_file(err))
      assert.matches("^pending ", proc.read_file(out .. ".batch"))
      assert.equal("", proc.read_file(out) or "")   -- (no result written)
      -- again, without the fault: one batch, every case answered
      cli.write(home .. "/config.lua", "{}")
      local r = aigc(args, { env = { AIGC_NO_LOG = "1" } })
      assert.equal(0, r.code, r.stderr)
      local rows = proc.json_lines(out)
      assert.equal(2, #rows)
      assert.is_true(rows[1].ok)
      assert.is_true(rows[2].ok)
      assert.equal(rows[1].batch_id, rows[2].batch_id)
      assert.is_nil(proc.read_file(out .. ".batch"))
    end)
  end
end)
