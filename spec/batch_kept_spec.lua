-- The runner's batch backend keeps its batch's id in OUT.batch so that a
-- stopped or killed run resumes that batch. When the file could not be
-- written (a full disk; here a file size limit, `ulimit -f`, which fails
-- the write as ENOSPC would) the run went on without a word, and a rerun
-- found no id (or a cut file) and made a new batch, paid twice. Now the run
-- keeps its intent there before it asks for the batch: when that cannot be
-- written the run stops before anything is sent. (Kept, and the batch's id
-- not: the run stops naming the batch and how to resume it.)

local cli = require "cli"
local devserver = require "devserver"
local proc = require "procutil"

local function batches_made (srv) return devserver.count(srv, "POST", "/v1/batches") end

describe("aigc run --batch whose OUT.batch cannot be written", function ()
  local srv, home
  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)
  before_each(function () srv:reset(); home = cli.home() end)
  after_each(function () cli.rmdir(home) end)

  it("stops before anything is sent (its intent cannot be kept); run again, one batch", function ()
    local lines = {}   -- (40 cases: OUT.batch, their digests, is past 512 bytes; the error is not)
    for i = 1, 40 do lines[i] = '{"id": "c' .. i .. '", "prompt": "Capital ' .. i .. '?"}' end
    cli.write(home .. "/cases.jsonl", table.concat(lines, "\n") .. "\n")
    local out, errfile = home .. "/r.jsonl", home .. "/stderr"
    local args = { "run", home .. "/cases.jsonl", "--batch", "-q", "--no-log", "--out", out }
    local opts = { home = home, base_url = srv.base_url }
    -- (SIGXFSZ ignored: past the limit a write fails, EFBIG, instead of killing the process)
    local ok = proc.execute("sh -c " .. proc.quote("trap '' XFSZ; ulimit -f 1; " .. cli.command(args, opts)
                                                    .. " </dev/null >/dev/null 2>" .. proc.quote(errfile)))
    assert.is_false(ok)
    -- (the intent -- OUT.batch written before the batch is asked for, so that a run stopped in
    -- between finds it again -- is what cannot be written: no batch was made, nothing is lost)
    assert.equal(0, batches_made(srv))
    assert.equal("aigc run: cannot keep the batch's intent in " .. out .. ".batch (File too large): nothing was "
                 .. "sent\n", proc.read_file(errfile))
    assert.is_nil(proc.read_file(out .. ".batch"))   -- (no cut file left)
    local r = cli.run(args, opts)
    assert.equal(0, r.code, r.stderr)
    assert.equal(1, batches_made(srv))
    local n = 0
    for _ in proc.read_file(out):gmatch('"ok":true') do n = n + 1 end
    assert.equal(40, n)
  end)

  -- --out /dev/fd/1 (or /dev/stdout) with stdout a file: OUT.batch went
  -- beside the name, in /dev/fd (could not be made: the run failed after the
  -- batch was sent) or in /dev itself (made there, as root). Beside the file.
  it("--out /dev/fd/1 with stdout a file: OUT.batch beside that file, the run whole", function ()
    cli.write(home .. "/cases.jsonl", '{"id": "c1", "prompt": "Capital?"}\n')
    local out, errfile = home .. "/r.jsonl", home .. "/stderr"
    local args = { "run", home .. "/cases.jsonl", "--batch", "-q", "--no-log", "--out", "/dev/fd/1" }
    local ok = proc.execute(cli.command(args, { home = home, base_url = srv.base_url }) .. " </dev/null >"
                            .. proc.quote(out) .. " 2>" .. proc.quote(errfile))
    assert.is_true(ok, proc.read_file(errfile))
    assert.equal(1, batches_made(srv))
    assert.matches('"ok":true', proc.read_file(out))
    assert.is_nil(proc.read_file(out .. ".batch"))   -- (removed once the batch is done)
  end)

  it("a symbolic link planted at OUT.batch is replaced, not written through (another file was made)", function ()
    cli.write(home .. "/cases.jsonl", '{"id": "c1", "prompt": "Capital?"}\n')
    local out, other = home .. "/r.jsonl", home .. "/other.txt"
    assert(proc.execute("ln -s " .. proc.quote(other) .. " " .. proc.quote(out .. ".batch")))
    local r = cli.run({ "run", home .. "/cases.jsonl", "--batch", "-q", "--no-log", "--out", out },
                      { home = home, base_url = srv.base_url })
    assert.equal(0, r.code, r.stderr)
    assert.is_nil(proc.read_file(other))
    assert.matches('"ok":true', proc.read_file(out), 1, true)
  end)
end)
