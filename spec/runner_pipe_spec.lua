-- aigc.runner's cases from a pipe (`aigc run -` fed by another program):
-- they were read whole into memory (a million piped cases, 0.9 GB). Now
-- they are kept in a private temporary file and read as a regular file's:
-- every line checked before anything is sent, then read as the run sends
-- them; the file is removed when the run ends.

local cli = require "cli"
local core = require "aigc.core"
local devserver = require "devserver"
local heapwatch = require "heapwatch"
local luachild = require "luachild"
local proc = require "procutil"
local runfile = require "aigc.runfile"
local runner = require "aigc.runner"

describe("aigc.runner's cases from a pipe", function ()
  local srv, client, dir
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end)
  before_each(function () dir = cli.home() end)
  after_each(function () cli.rmdir(dir) end)

  -- A FIFO at dir/cases.fifo that a child process writes `n` cases into
  -- (then `last`, a line of its own).
  local function piped (n, last)
    local fifo, gen = dir .. "/cases.fifo", dir .. "/gen.lua"
    cli.write(gen, ([[
local out = io.stdout
for i = 1, %d do out:write('{"id":"c', i, '","prompt":"Echo: hello ', i, '"}\n') end
%s
]]):format(n, last and ("out:write(%q, '\\n')"):format(last) or ""))
    assert(proc.execute("mkfifo " .. proc.quote(fifo)))
    assert(proc.execute("(lua5.4 " .. proc.quote(gen) .. " > " .. proc.quote(fifo) .. ") &"))
    return fifo
  end

  -- runfile.spool, watched: the temporary files it made.
  local function watch_spool ()
    local made, spool = {}, runfile.spool
    runfile.spool = function (...)
      local tmp, err = spool(...)
      made[#made + 1] = tmp
      return tmp, err
    end
    finally(function () runfile.spool = spool end)
    return made
  end

  it("are read as the run needs them: the heap does not hold 100,000 piped cases; the kept file goes", function ()
    local made = watch_spool()
    local fifo = piped(100000)
    local grown, none, err = heapwatch.run(runner, { client = client, cases = fifo, out = dir .. "/r.jsonl",
                                                      concurrency = 2 })
    assert.is_nil(none)
    assert.equal("interrupted", err.code)
    assert.is_true(#grown >= 3)
    for _, kb in ipairs(grown) do assert.is_true(kb < 12 * 1024, kb .. " KB more") end
    assert.equal(1, #made)
    assert.is_nil(proc.read_file(made[1]))                     -- (removed)
  end)

  it("are all checked before anything is sent: a bad last line is refused, named by the pipe's line", function ()
    local made = watch_spool()
    local fifo = piped(500, '{"id":"c1","prompt":"Echo: twice"}')
    local none, err = runner.run { client = client, cases = fifo, out = dir .. "/r.jsonl" }
    assert.is_nil(none)
    assert.equal("input", err.code)
    assert.matches("^" .. fifo:gsub("%p", "%%%0") .. ":501: ", err.message)
    assert.matches("c1", err.message)
    assert.equal(0, #srv:requests())
    assert.is_nil(proc.read_file(made[1]))
  end)

  it("run whole, as a file's", function ()
    local fifo = piped(40)
    local s = assert(runner.run { client = client, cases = fifo, out = dir .. "/r.jsonl", concurrency = 4 })
    assert.same({ 40, 40, 40 }, { s.total, s.ok, #srv:requests() })
    assert.equal(40, #proc.json_lines(dir .. "/r.jsonl"))
  end)

  -- A run killed (SIGKILL) while it kept a pipe's cases left their copy
  -- (os.tmpname's /tmp/lua_XXXXXX, 0600) for ever: now named so in $TMPDIR
  -- and locked while its run lasts; the next piped run removes those no
  -- run holds.
  it("the copy a killed run left is removed by the next piped run; a live run's and other files stay", function ()
    local tmp = dir .. "/tmp"
    assert(proc.execute("mkdir " .. proc.quote(tmp)))
    cli.write(tmp .. "/aigc-cases.999999999.00ff", "a dead run's\n")
    cli.write(tmp .. "/aigc-cases.999999998.00ee", "a live run's\n")   -- (held: another pid namespace's run)
    local live = assert(core.lockfile(tmp .. "/aigc-cases.999999998.00ee", "file"))
    finally(function () live:close() end)
    cli.write(tmp .. "/lua_AbCdEf", "not ours\n")
    local script = [[
      local aigc, runner = require "aigc", require "aigc.runner"
      local c = aigc.client { base_url = arg[1], max_retries = 0 }
      print("started")
      io.stdout:flush()
      local s, err = runner.run { client = c, cases = arg[2], out = arg[3] }
      print(s and s.ok, err)
    ]]
    local fifo, held, holder = dir .. "/held.fifo", dir .. "/hold.sh", dir .. "/hold.pid"
    assert(proc.execute("mkfifo " .. proc.quote(fifo)))
    -- (a writer that sends one case and keeps the pipe open: the run keeps copying, then is killed)
    cli.write(held, "#!/bin/sh\necho $$ > \"$2\"\nexec > \"$1\"\necho '{\"id\":\"c1\",\"prompt\":\"Echo: x\"}'\n"
                    .. "exec sleep 30\n")
    assert(proc.execute("(sh " .. proc.quote(held) .. " " .. proc.quote(fifo) .. " " .. proc.quote(holder)
                        .. " &) >/dev/null 2>&1"))
    finally(function ()
      local pid = (proc.read_file(holder) or ""):match("%d+")
      if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
    end)
    local child = luachild.run(script, { args = { srv.base_url, fifo, dir .. "/r1.jsonl" }, env = { TMPDIR = tmp },
                                         background = true, timeout = 60 })
    child:until_printed("started")
    local left
    for _ = 1, 250 do   -- (the copy made: named by the child's pid; os.tmpname's before, elsewhere)
      for _, e in ipairs(core.list_dir(tmp)) do
        if e.name:find("^aigc%-cases%." .. child.pid .. "%.") then left = e.name end
      end
      if left then break end
      os.execute("sleep 0.02")
    end
    os.execute("kill -KILL " .. child.pid)
    child:wait(20)
    if left then assert.equal("600", proc.mode(tmp .. "/" .. left)) end
    local r = luachild.run(script, { args = { srv.base_url, piped(3), dir .. "/r2.jsonl" }, env = { TMPDIR = tmp } })
    assert.equal(0, r.status, r.stderr)
    assert.equal("started\n3\tnil\n", r.stdout)
    local names = {}
    for _, e in ipairs(core.list_dir(tmp)) do names[#names + 1] = e.name end
    table.sort(names)
    assert.same({ "aigc-cases.999999998.00ee", "lua_AbCdEf" }, names)
  end)
end)
