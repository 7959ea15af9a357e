-- `aigc run -` fed by a pipe keeps the cases in a private file (0600,
-- O_EXCL, locked) in $TMPDIR. Where it could not make one (a $TMPDIR it
-- cannot write) or had no random name (no /dev/urandom), it fell back to
-- os.tmpname's: a file in /tmp whatever $TMPDIR said, opened again by
-- name, unlocked (a killed run's copy of the prompts never removed). Now
-- the name is made exclusive anyway, and a folder it cannot write is a
-- clear error, nothing sent.

local cli = require "cli"
local devserver = require "devserver"
local proc = require "procutil"

local CASES = '{"id":"a","prompt":"Echo: a"}\n{"id":"b","prompt":"Echo: b"}\n'

describe("aigc run - (cases from a pipe) and its private copy", function ()
  local srv, home
  setup(function () srv = devserver.start { pause_ms = 0 } end)
  teardown(function () srv:stop() end)
  before_each(function () srv:reset(); home = cli.home() end)
  after_each(function () cli.rmdir(home) end)

  -- Runs `aigc run - ARGS` with the cases piped in: code, stderr.
  local function piped (args, env)
    local all = { "run", "-", "-q", "--no-log", "-m", "aigc-dev" }
    for _, a in ipairs(args) do all[#all + 1] = a end
    cli.write(home .. "/cases.jsonl", CASES)
    local err = home .. "/err"
    local cmd = "cat " .. proc.quote(home .. "/cases.jsonl") .. " | "
      .. cli.command(all, { home = home, base_url = srv.base_url, env = env }) .. " >/dev/null 2>" .. proc.quote(err)
    local _, how, code = proc.execute3(cmd)
    if how == "signal" then code = 128 + code end
    return code, proc.read_file(err) or ""
  end

  it("a TMPDIR where no file can be made: a clear error, nothing sent", function ()
    -- (a folder whose files' names are too long for the system: made, listed, but no file in it)
    local dir = home
    while #dir < 4070 do
      dir = dir .. "/" .. string.rep("d", math.min(200, 4075 - #dir - 1))
    end
    assert.is_true(proc.execute("mkdir -p " .. proc.quote(dir)))
    local code, stderr = piped({ "--out", home .. "/out.jsonl" }, { TMPDIR = dir })
    assert.is_true(code ~= 0, stderr)
    assert.matches("cannot keep the cases of /dev/stdin: cannot make a private file in " .. dir, stderr, 1, true)
    assert.matches("set TMPDIR to a folder you can write", stderr, 1, true)
    assert.equal(0, #srv:requests())
  end)

  it("no random name (no /dev/urandom): still a private, locked file in TMPDIR, named as aigc's", function ()
    local tmpdir = home .. "/tmp"
    assert.is_true(proc.execute("mkdir " .. proc.quote(tmpdir)))
    -- (in the command's own process: util.random_hex fails; runfile.spool says the file it made, and its mode)
    local init = home .. "/init.lua"
    cli.write(init, [[
local require0 = require
function require (name)
  local m = require0(name)
  if name == "aigc.util" then m.random_hex = function () return nil end end
  if name == "aigc.runfile" and not m.watched then
    m.watched = true
    local spool = m.spool
    m.spool = function (...)
      local tmp, a, b = spool(...)
      local _, _, code = require0("aigc.core").lockfile(tostring(tmp), "file")   -- (held by the run: "locked")
      local p = io.popen("stat -c %a '" .. tostring(tmp) .. "'")
      io.stderr:write("spooled ", tostring(tmp), " ", tostring(code), " ", p:read("*a"))
      p:close()
      return tmp, a, b
    end
  end
  return m
end
]])
    local code, stderr = piped({ "--out", home .. "/out.jsonl" }, { TMPDIR = tmpdir, LUA_INIT = "@" .. init })
    assert.equal(0, code, stderr)
    local path, lock, mode = stderr:match("spooled (%S+) (%S+) (%d+)\n")
    assert.equal("locked", lock)
    assert.matches("^" .. tmpdir:gsub("%p", "%%%0") .. "/aigc%-cases%.%d+%.%x+$", path)
    assert.equal("600", mode)
    assert.is_false(proc.exists(path))   -- (removed at the run's end)
    assert.equal(2, select(2, proc.read_file(home .. "/out.jsonl"):gsub("\n", "")))
  end)
end)
