-- `aigc run - < FIFO`: a named pipe given as stdin, its writer done before
-- the run read it (a producer faster than the run's start). The run opened
-- /dev/stdin again by name -- a new open of the FIFO, which waits for a
-- writer -- and hung for ever before reading a case (with --batch too). It
-- reads its standard input as it is now.

local cjson = require "cjson"
local cli = require "cli"
local devserver = require "devserver"
local proc = require "procutil"
local socket = require "socket"

describe("aigc run - with a named pipe as stdin whose writer is done", function ()
  local srv, home
  setup(function () srv = devserver.start { pause_ms = 0 } end)
  teardown(function () srv:stop() end)
  before_each(function () srv:reset(); home = cli.home() end)
  after_each(function () cli.rmdir(home) end)

  for _, extra in ipairs { {}, { "--batch" } } do
    it("reads the cases and runs them " .. (extra[1] or "(direct)"), function ()
      local fifo, out = home .. "/cases.fifo", home .. "/out.jsonl"
      assert.is_true(proc.execute("mkfifo " .. proc.quote(fifo)))
      cli.write(home .. "/cases.jsonl", '{"id":"a","prompt":"Echo: a"}\n{"id":"b","prompt":"Echo: b"}\n')
      -- (the writer: done as soon as the run's shell opens the pipe, long before the run reads it)
      assert.is_true(proc.execute("(cat " .. proc.quote(home .. "/cases.jsonl") .. " > " .. proc.quote(fifo) .. ") &"))
      local args = { "run", "-", "-q", "--no-log", "-m", "aigc-dev", "--out", out }
      for _, a in ipairs(extra) do args[#args + 1] = a end
      local job = cli.background(args, { home = home, base_url = srv.base_url, stdin_path = fifo,
                                         stderr = home .. "/err" })
      local ended = false
      finally(function () if not ended then os.execute("kill " .. job.pid) end end)   -- (hung: not left behind)
      local code = job.wait_exit(socket.gettime() + 60)
      ended = true
      assert.equal(0, code, proc.read_file(home .. "/err"))
      local got = {}
      for line in proc.read_file(out):gmatch("[^\n]+") do
        local r = cjson.decode(line)
        got[r.id] = r.text
      end
      assert.same({ a = "a", b = "b" }, got)
    end)
  end

  it("a cases file that is not there is still an error naming it (exit 2), nothing sent", function ()
    local r = cli.run({ "run", home .. "/nope.jsonl", "-q", "--no-log", "-m", "aigc-dev" },
                      { home = home, base_url = srv.base_url })
    assert.equal(2, r.code, r.stderr)
    assert.equal("aigc run: cannot read the cases: " .. home .. "/nope.jsonl: No such file or directory\n", r.stderr)
    assert.equal(0, #srv:requests())
  end)
end)
