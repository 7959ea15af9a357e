-- Files the command reads whole may be pipes or devices: `AIGC_CONFIG=<(printf
-- ...) aigc ...` is a real use (a pipe must work), but a config of /dev/zero,
-- or a pipe that never ends, was read until memory ran out. A config file is
-- at most 1 MiB, a template or a --schema file 16 MiB: past it, an error that
-- names the file and the bound (exit 2 for the config, as its other errors).
-- A log database that is a FIFO (--log-db) blocked `aigc logs` and every
-- logged prompt for ever: only a regular file is opened as one. So did the
-- REPL's /load and /save of a FIFO.
local cli = require "cli"
local devserver = require "devserver"
local proc = require "procutil"

local quote = proc.quote

-- Runs the shell line `line` with bash (process substitution), to its end.
local function bash (line)
  local out, err = os.tmpname(), os.tmpname()
  local _, how, code = proc.execute3("bash -c " .. quote(line) .. " </dev/null >" .. out .. " 2>" .. err)
  local r = { code = how == "signal" and 128 + code or code, stdout = cli.read(out), stderr = cli.read(err) }
  os.remove(out); os.remove(err)
  return r
end

describe("files the command reads whole: pipes and devices", function ()
  local srv, home
  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)
  before_each(function ()
    srv:reset()
    home = cli.home()
  end)
  after_each(function () cli.rmdir(home) end)

  it("AIGC_CONFIG=<(printf ...): the pipe's config is read and used", function ()
    local cmd = cli.command({ "--no-log", "Hi" }, { home = home, base_url = srv.base_url,
                                                    env = { AIGC_CONFIG = "PIPE" } })
    local r = bash((cmd:gsub("AIGC_CONFIG='PIPE'", "AIGC_CONFIG=<(printf 'return { model = \"piped-model\" }')", 1)))
    assert.equal(0, r.code, r.stderr)
    assert.equal("piped-model", srv:last().body_json.model)
  end)

  it("a config of more than 1 MiB through a pipe: exit 2, the file and the bound named, nothing sent", function ()
    local cmd = cli.command({ "--no-log", "Hi" }, { home = home, base_url = srv.base_url,
                                                    env = { AIGC_CONFIG = "PIPE" } })
    local r = bash((cmd:gsub("AIGC_CONFIG='PIPE'", "AIGC_CONFIG=<(head -c 1100000 /dev/zero | tr '\\0' ' '; "
                                                  .. "printf 'return { model = \"big-model\" }')", 1)))
    assert.equal(2, r.code, r.stderr)
    assert.matches("^/dev/fd/%d+: more than 1 MiB, the most a config file may be", r.stderr)
    assert.equal(0, #srv:requests())
  end)

  it("AIGC_CONFIG=/dev/zero ends at once with that error (it read until memory ran out)", function ()
    -- (a memory bound, so that the old code fails rather than fills the machine)
    local cmd = cli.command({ "--no-log", "Hi" }, { home = home, base_url = srv.base_url,
                                                    env = { AIGC_CONFIG = "/dev/zero" } })
    local r = bash("ulimit -v 1000000; " .. cmd)
    assert.equal(2, r.code, r.stderr)
    assert.matches("/dev/zero: more than 1 MiB, the most a config file may be", r.stderr, 1, true)
  end)

  it("a template or a --schema file that is /dev/zero: the error names it and the bound", function ()
    assert(proc.execute("ln -s /dev/zero " .. quote(home .. "/templates/zero.lua")))
    local r = bash("ulimit -v 1000000; " .. cli.command({ "--no-log", "-t", "zero", "Hi" },
                                                        { home = home, base_url = srv.base_url }))
    assert.is_true(r.code ~= 0)
    assert.matches("/templates/zero.lua: more than 16 MiB, the most a template may be", r.stderr, 1, true)
    r = bash("ulimit -v 1000000; " .. cli.command({ "templates", "show", "zero" }, { home = home }))
    assert.is_true(r.code ~= 0)
    assert.matches("/templates/zero.lua: more than 16 MiB, the most a template may be", r.stderr, 1, true)
    r = bash("ulimit -v 1000000; " .. cli.command({ "--no-log", "--schema", "/dev/zero", "Hi" },
                                                  { home = home, base_url = srv.base_url }))
    assert.equal(2, r.code, r.stderr)
    assert.matches("--schema: /dev/zero: more than 16 MiB, the most a schema file may be", r.stderr, 1, true)
    assert.equal(0, #srv:requests())
  end)

  it("a log database that is a FIFO: `aigc logs` and a logged prompt end at once, saying so (they waited for ever)",
     function ()
    local fifo = home .. "/log.fifo"
    assert(proc.execute("mkfifo " .. quote(fifo)))
    -- (timeout: the old code waits for a writer that never comes)
    local r = bash("timeout 20 " .. cli.command({ "logs", "--log-db", fifo }, { home = home }))
    assert.equal(1, r.code, r.stderr)
    assert.equal("aigc: cannot open the log database " .. fifo .. ": not a regular file (fifo)\n", r.stderr)
    r = bash("timeout 20 " .. cli.command({ "--log-db", fifo, "Hi" }, { home = home, base_url = srv.base_url }))
    assert.equal(0, r.code, r.stderr)
    assert.matches("not logging: cannot open the log database " .. fifo:gsub("%p", "%%%0")
                   .. ": not a regular file %(fifo%)", r.stderr)
    assert.equal(1, #srv:requests())
  end)

  it("the REPL's /load and /save of a FIFO, /load of a device: refused at once, the chat goes on (it hung for ever, "
     .. "Ctrl-C unheard)", function ()
    local fifo = home .. "/chat.fifo"
    assert(proc.execute("mkfifo " .. quote(fifo)))
    local input = home .. "/input"
    cli.write(input, "/load " .. fifo .. "\n/save " .. fifo .. "\n/load /dev/zero\n/save /dev/null\n"
                     .. "Repeat after me: still here\n")
    -- (timeout: the old code waits for a writer that never comes)
    local r = bash("timeout 20 " .. cli.command({ "chat", "--no-log" }, { home = home, base_url = srv.base_url })
                   .. " <" .. quote(input))
    assert.equal(0, r.code, r.stderr)
    assert.equal("aigc: /load " .. fifo .. ": not a regular file (a FIFO)\n"
                 .. "aigc: /save " .. fifo .. ": not a regular file (a FIFO)\n"
                 .. "aigc: /load /dev/zero: not a regular file (a character device)\n", r.stderr)
    assert.equal("saved to /dev/null\nstill here\n", r.stdout)
  end)

  it("/save over an earlier save that fails (a file size limit, as a full disk): the earlier save stays whole (it "
     .. "was truncated, the conversation it held lost); a save through a symlink keeps the link, and the file's mode",
     function ()
    local saved, link = home .. "/saved.json", home .. "/link.json"
    cli.write(saved, '{"earlier": "save"}')
    assert(proc.execute("chmod 600 " .. quote(saved) .. " && ln -s saved.json " .. quote(link)))
    local input = home .. "/input"
    cli.write(input, "Repeat after me: " .. ("a"):rep(3000) .. "\n/save " .. saved .. "\n")
    -- (XFSZ ignored: a write past `ulimit -f` fails with EFBIG instead of killing)
    local cmd = cli.command({ "chat", "--no-log" }, { home = home, base_url = srv.base_url })
    local r = bash("trap '' XFSZ; ulimit -f 1; " .. cmd .. " <" .. quote(input) .. " >/dev/null")
    assert.equal(0, r.code, r.stderr)
    assert.equal("aigc: /save " .. saved .. ": File too large\n", r.stderr)
    assert.equal('{"earlier": "save"}', cli.read(saved))
    assert.is_nil(io.open(saved .. ".part", "rb"))
    cli.write(input, "Repeat after me: short\n/save " .. link .. "\n")
    r = bash(cmd .. " <" .. quote(input))
    assert.equal(0, r.code, r.stderr)
    assert.equal("short\nsaved to " .. link .. "\n", r.stdout)
    assert.matches('"content":"short"', cli.read(saved))
    local ok, out = proc.sh("stat -c '%F %a' " .. quote(link) .. " " .. quote(saved))
    assert(ok, out)
    assert.equal("symbolic link 777\nregular file 600", (out:gsub("\n$", "")))
  end)

  it("/save: a link or a FIFO planted at PATH.part is not written through nor waited on; a new save is 0600 "
     .. "whatever the umask (another file was overwritten with the conversation; the REPL hung; the save was 644)",
     function ()
    local victim, saved, other = home .. "/victim.txt", home .. "/saved.json", home .. "/other.json"
    cli.write(victim, "another file\n")
    assert(proc.execute("ln -s victim.txt " .. quote(saved .. ".part") .. " && mkfifo " .. quote(other .. ".part")))
    local input = home .. "/input"
    cli.write(input, "Repeat after me: private\n/save " .. saved .. "\n/save " .. other .. "\n")
    -- (KILL: the old code, blocked in open() of the FIFO, outlived a TERM for ever)
    local cmd = cli.command({ "chat", "--no-log" }, { home = home, base_url = srv.base_url })
    local r = bash("umask 022; timeout -s KILL 20 " .. cmd .. " <" .. quote(input))
    assert.equal(0, r.code, r.stderr)
    assert.equal("private\nsaved to " .. saved .. "\nsaved to " .. other .. "\n", r.stdout)
    assert.equal("another file\n", cli.read(victim))
    local ok, out = proc.sh("stat -c '%F %a' " .. quote(saved) .. " " .. quote(other))
    assert(ok, out)
    assert.equal("regular file 600\nregular file 600", (out:gsub("\n$", "")))
    for _, path in ipairs { saved, other } do assert.matches('"content":"private"', cli.read(path)) end
    assert.is_nil(io.open(saved .. ".part", "rb"))
  end)

  it("AIGC_CONFIG naming a directory: exit 2 naming it (it was taken as no config at all)", function ()
    local r = bash(cli.command({ "--no-log", "Hi" }, { home = home, base_url = srv.base_url,
                                                       env = { AIGC_CONFIG = home } }))
    assert.equal(2, r.code, r.stderr)
    assert.matches("cannot read the config file " .. home .. ": Is a directory", r.stderr, 1, true)
    assert.equal(0, #srv:requests())
  end)

  it("a piped prompt of 300 kB of spaces, then text: sent at once (its trailing trim was quadratic)", function ()
    -- (gsub("%s+$", "") tried each space of the run to its end: 54 s for 100 kB, minutes
    -- for 300; the 60 s bound is a hang's, the work now a few milliseconds)
    local cmd = cli.command({ "--no-log", "--no-stream" }, { home = home, base_url = srv.base_url })
    local r = bash("(head -c 300000 /dev/zero | tr '\\0' ' '; printf 'Repeat after me: piped  \\n\\n')"
                   .. " | timeout 60 " .. cmd)
    assert.equal(0, r.code, r.stderr)
    local sent = srv:last().body_json.messages
    assert.equal(300000 + #"Repeat after me: piped", #sent[#sent].content)
    assert.matches("Repeat after me: piped$", sent[#sent].content)
  end)

  it("a --schema of fields with 120 kB of spaces inside one: its error at once (its trim was quadratic)", function ()
    -- ("^%s*(.-)%s*$" tried the rest of the run at each space: over a minute; 60 s is a hang's bound)
    local r = bash("timeout 60 " .. cli.command({ "--no-log", "--schema", "name" .. string.rep(" ", 120000) .. "x",
                                                  "Hi" }, { home = home, base_url = srv.base_url }))
    assert.equal(2, r.code, r.stderr)
    assert.matches("--schema: unknown type 'x'", r.stderr, 1, true)
    assert.equal(0, #srv:requests())
  end)
end)
