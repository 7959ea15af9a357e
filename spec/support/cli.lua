--- Test helper: run the `aigc` command (bin/aigc) as a process, and drive
-- it through a real terminal (tmux) for the REPL.
--
-- Every run gets its own AIGC_HOME (config, templates, history, log) unless
-- the test passes one, and an environment without the caller's OPENAI_*
-- and AIGC_* variables, so a developer's key or config never leaks in.
--
-- @usage
-- local cli = require "cli"
-- local home = cli.home()
-- local r = cli.run({ "What is 2 + 2?" }, { home = home, base_url = srv.base_url })
-- assert.equal(0, r.code); assert.matches("4", r.stdout)

local proc = require "procutil"
local socket = require "socket"

local quote, read_file = proc.quote, proc.read_file

local M = {}

--- The interpreter that runs bin/aigc: the one under test in `make test`'s
-- matrix ($AIGC_LUA), else $LUA, else lua5.4.
M.LUA = (os.getenv("AIGC_LUA") ~= "" and os.getenv("AIGC_LUA")) or (os.getenv("LUA") ~= "" and os.getenv("LUA"))
  or "lua5.4"

local ROOT = (function ()
  local f = io.open("bin/aigc", "rb")
  if f then f:close(); return "." end
  error("run the specs from the repository's root (bin/aigc not found)")
end)()

--- A fresh AIGC_HOME directory.
-- @treturn string
function M.home ()
  local dir = os.tmpname()
  os.remove(dir)
  assert(proc.execute("mkdir -p " .. quote(dir .. "/templates")))
  return dir
end

--- Removes a directory made by `home`.
function M.rmdir (dir)
  if dir and dir:find("^/tmp/") then os.execute("rm -rf " .. quote(dir)) end
end

--- Writes a file.
function M.write (path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

--- Reads a file whole.
function M.read (path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local CLEARED = { "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "AIGC_HOME",
                  "AIGC_LOG_DB", "AIGC_NO_LOG", "AIGC_MODEL", "AIGC_ENDPOINT", "AIGC_CONFIG", "AIGC_TEMPLATES",
                  "AZURE_OPENAI_API_KEY", "XDG_CONFIG_HOME", "XDG_DATA_HOME" }

--- The `env ...` prefix of a command: cleared variables, then `vars`.
-- @tparam table opts `home`, `base_url`, `env` (more variables)
-- @treturn string
function M.env_prefix (opts)
  local parts = { "env" }
  for _, v in ipairs(CLEARED) do parts[#parts + 1] = "-u " .. v end
  if opts.home then parts[#parts + 1] = "AIGC_HOME=" .. quote(opts.home) end
  if opts.base_url then parts[#parts + 1] = "OPENAI_BASE_URL=" .. quote(opts.base_url) end
  local keys = {}
  for k in pairs(opts.env or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. quote(opts.env[k]) end
  return table.concat(parts, " ")
end

--- The shell command line of `aigc ARGS`.
-- @tparam table args
-- @tparam table opts as `env_prefix`
-- @treturn string
function M.command (args, opts)
  local q = {}
  for i, a in ipairs(args) do q[i] = quote(a) end
  return M.env_prefix(opts) .. " " .. M.LUA .. " " .. ROOT .. "/bin/aigc " .. table.concat(q, " ")
end

--- Runs `aigc ARGS` to the end.
-- @tparam table args
-- @tparam[opt] table opts `home`, `base_url`, `env`, `stdin` (text; default: none, /dev/null)
-- @treturn table `{ code =, stdout =, stderr = }`
function M.run (args, opts)
  opts = opts or {}
  local out, err, inp = os.tmpname(), os.tmpname(), os.tmpname()
  M.write(inp, opts.stdin or "")
  local cmd = M.command(args, opts) .. " <" .. quote(inp) .. " >" .. quote(out) .. " 2>" .. quote(err)
  local _, how, code = proc.execute3(cmd)
  if how == "signal" then code = 128 + code end
  local r = { code = code, stdout = read_file(out) or "", stderr = read_file(err) or "", cmd = cmd }
  os.remove(out); os.remove(err); os.remove(inp)
  return r
end

--- Starts `aigc ARGS` with its stdout as a pipe to read as it comes.
-- @treturn file the pipe (read it; close it to wait for the end)
function M.spawn (args, opts)
  return assert(io.popen(M.command(args, opts) .. " </dev/null 2>/dev/null", "r"))
end

--- Reads a file a shell `echo ... >FILE` writes, once the line is whole: the
-- shell creates (truncates) the file before echo writes, so a reader polling
-- in between sees "" (a CI run read '' for an exit code that way).
-- @treturn string|nil the line without its newline, nil while not whole
local function whole_line (path)
  return (read_file(path) or ""):match("^(.-)\n")
end

--- Starts `aigc ARGS` in the background, as a shell job would run it (stdin
-- `opts.stdin_path` or /dev/null, stdout to `opts.stdout`, stderr to
-- `opts.stderr`, or dropped).
-- @treturn table `pid` (the aigc process: signal it), `wait_exit(deadline)`
-- (its exit code as a number, once it ended; raises at `deadline`, a
-- socket.gettime() value)
function M.background (args, opts)
  local pidfile, codefile = os.tmpname(), os.tmpname()
  os.remove(pidfile); os.remove(codefile)
  local out = opts.stdout and quote(opts.stdout) or "/dev/null"
  local errout = opts.stderr and quote(opts.stderr) or "/dev/null"
  local inp = opts.stdin_path and quote(opts.stdin_path) or "/dev/null"
  os.execute("sh -c " .. quote(M.command(args, opts) .. " <" .. inp .. " >" .. out .. " 2>" .. errout .. " & echo $! >"
                               .. pidfile .. "; wait $!; echo $? >" .. codefile) .. " &")
  local job = {}
  local function wait (deadline, what, fn)
    local v = fn()
    while v == nil do
      assert(socket.gettime() < deadline, "timed out: " .. what)
      socket.sleep(0.02)
      v = fn()
    end
    return v
  end
  job.pid = wait(socket.gettime() + 10, "the job's pid", function () return tonumber(whole_line(pidfile)) end)
  function job.wait_exit (deadline)
    local code = wait(deadline, "the exit", function () return tonumber(whole_line(codefile)) end)
    os.remove(pidfile); os.remove(codefile)
    return code
  end
  return job
end

--- Registers the CLI specs' fixture in the enclosing `describe`: one bundled
-- server for the block (started in setup, stopped in teardown) and, before
-- each test, its counters reset and a fresh AIGC_HOME (removed after the
-- test, once `hooks.after_each`, if given, has run: e.g. closing a terminal
-- that still writes there). `assign(srv, home)` keeps both in the spec's
-- locals. busted's block functions live in the spec file's environment, so
-- the spec passes it (`_ENV`; nil on Lua 5.1).
-- Returns two functions: `aigc(args, opts)`, `run` with the current home and
-- server unless `opts` names others; `logs(extra)`, the log entries as
-- `aigc logs --json -n 0 EXTRA...` prints them (asserting it exits 0).
-- @usage
-- local srv, home
-- local aigc, logs = cli.fixture(_ENV, function (s, h) srv, home = s, h end)
function M.fixture (env, assign, hooks)
  -- (Lua 5.1 has no _ENV: the spec passes nil, and its environment is the caller's)
  env = env or rawget(_G, "getfenv")(2)
  hooks = hooks or {}
  local srv, home
  env.setup(function ()
    srv = require("devserver").start()
    assign(srv, nil)
  end)
  env.teardown(function () srv:stop() end)
  env.before_each(function ()
    srv:reset()
    home = M.home()
    assign(srv, home)
  end)
  env.after_each(function ()
    if hooks.after_each then hooks.after_each() end
    M.rmdir(home)
  end)
  local function aigc (args, opts)
    opts = opts or {}
    opts.home = opts.home or home
    opts.base_url = opts.base_url or srv.base_url
    return M.run(args, opts)
  end
  local function logs (extra)
    local args = { "logs", "--json", "-n", "0" }
    for _, a in ipairs(extra or {}) do args[#args + 1] = a end
    local r = aigc(args)
    assert(r.code == 0, "aigc logs exited " .. tostring(r.code) .. ": " .. r.stderr)
    return require("cjson").decode(r.stdout)
  end
  return aigc, logs
end

-- {======================================================
-- A real terminal: tmux
-- =======================================================

local Term = {}
Term.__index = Term

-- This process's part of the session names and of its tmux server's name.
local RUN_ID = (function ()
  local f = io.open("/dev/urandom", "rb")
  local b = f and f:read(4)
  if f then f:close() end
  if not b or #b < 4 then return tostring(os.time()) .. tostring(math.random(1e6)) end
  return ("%02x%02x%02x%02x"):format(b:byte(1, 4))
end)()

--- `tmux` with this run's own server: `cli.TMUX .. " capture-pane ..."`.
-- A pane gets its server's environment, the one of the process that
-- started it: one server for every busted run on the machine (the
-- matrix's cells, the ASan lane, other checkouts) gave a run's terminals
-- the locale, HOME, TMPDIR, CI and sanitizer variables of whichever run
-- came first. Started by this run, the server has this run's environment.
M.TMUX = "tmux -L aigc-spec-" .. RUN_ID

local function tmux (args)
  local ok, out = proc.sh(M.TMUX .. " " .. args)
  return ok, out
end

-- `tmux new-session ARGS`, again when it met the server on its way out: the
-- server exits with its last session, and a session started in that moment
-- fails with "server exited unexpectedly" (this run's own last close; seen
-- when the server was shared with the busted runs beside, in a cli_chat_spec
-- run beside another). In a loop of new/kill-session,
-- 12 of 300 starts failed, none with the retry.
local function new_session (args)
  local ok, out
  for _ = 1, 5 do
    ok, out = tmux("new-session " .. args)
    if ok or not tostring(out):find("server exited unexpectedly", 1, true) then break end
    socket.sleep(0.05)
  end
  return ok, out
end

--- Waits until `fn()` is true, polling every 20 ms, for `timeout` seconds;
-- then raises "timed out waiting for WHAT", with the screen of `term` (a
-- terminal, or nil) -- reported at the caller of the spec's own
-- `wait_until` wrapper, which calls this.
function M.wait_until (fn, what, timeout, term)
  local deadline = socket.gettime() + timeout
  while not fn() do
    if socket.gettime() > deadline then
      error("timed out waiting for " .. what .. (term and ("; the terminal shows:\n" .. term:screen()) or ""), 3)
    end
    socket.sleep(0.02)
  end
end

--- Whether tmux is installed.
function M.has_tmux ()
  return proc.sh("command -v tmux >/dev/null")
end

local term_count = 0

-- A run killed before its tests closed their terminals (a CI timeout, a
-- kill, Ctrl-C) left their sessions for ever: remain-on-exit keeps a
-- session (its aigc chat still running), and any session keeps the tmux
-- server. A watcher, started with this process's first terminal, ends this
-- run's server (its sessions) once the process is gone (or a zombie), and
-- the socket tmux leaves; its $PPID is this Lua process.
local watching = false
local function watch_sessions ()
  if watching then return end
  watching = true
  os.execute(("(p=$PPID; while kill -0 $p 2>/dev/null && ! grep -qs ') Z ' /proc/$p/stat; do sleep 1; done; "
    .. "%s kill-server; rm -f \"${TMUX_TMPDIR:-/tmp}/tmux-$(id -u)/aigc-spec-%s\") </dev/null >/dev/null 2>&1 &")
    :format(M.TMUX, RUN_ID))
end

--- A name for a new session of this run's tmux server (`cli.TMUX`) that
-- no other busted run's session has either (this run's random part, a
-- count, the second), its session ended by the watcher if this run is killed.
-- @usage local name = cli.session_name("probe"); cli.new_session("-d -s " .. name .. " ...")
function M.session_name (prefix)
  watch_sessions()
  term_count = term_count + 1
  return prefix .. term_count .. "_" .. RUN_ID .. "_" .. tostring(os.time())
end

--- `cli.TMUX .. " new-session ARGS"`, again if it met the server on its
-- way out: true, or false and what tmux said.
M.new_session = new_session

--- Starts `aigc ARGS` in a new tmux session of its own server
-- (`cli.TMUX`), 120 columns by 40 rows; the pane stays after the
-- command ends, so its exit status can be read.
-- @treturn table terminal with `send`, `keys`, `screen`, `wait_for`, `dead`, `close`
function M.terminal (args, opts)
  local name = M.session_name("t")
  local self = setmetatable({ name = name }, Term)
  -- remain-on-exit is set in the same tmux command as the session's start,
  -- as its option: set after, a command that ended at once took its
  -- session (and, the last one, the server) with it.
  local ok, out = new_session("-d -s " .. name .. " -x 120 -y 40 " .. quote(M.command(args, opts))
                              .. " \\; set-option -t " .. name .. " remain-on-exit on")
  assert(ok, "tmux new-session: " .. tostring(out))
  -- The pane's pid, or a clear failure: "%d+" of an error such as "no
  -- server running on /tmp/tmux-0/aigc-spec-..." was 0, and a test's
  -- `kill -TERM 0` then killed its own process group (busted, the CI lane).
  local shown, pid = tmux("display -p -t " .. name .. " '#{pane_pid}'")
  self.pid = shown and tonumber(tostring(pid):match("^%s*(%d+)%s*$"))
  assert(self.pid and self.pid > 1, "tmux gave no pane pid for " .. name .. ": " .. tostring(pid))
  return self
end

--- Types text (literally; no Enter).
function Term:type (text)
  assert(tmux("send-keys -t " .. self.name .. " -l " .. quote(text)))
end

--- Presses keys by tmux name: "Enter", "C-c", "C-d", "Up"...
function Term:keys (...)
  local names = {}
  for i = 1, select("#", ...) do names[i] = select(i, ...) end
  assert(tmux("send-keys -t " .. self.name .. " " .. table.concat(names, " ")))
end

--- What the screen shows (with the scroll-back), lines joined, without
-- the empty lines below the cursor, each line without its trailing blanks.
-- @treturn string
function Term:screen ()
  local _, out = tmux("capture-pane -p -J -S -200 -t " .. self.name)
  -- (-J keeps a line's trailing blanks, and readline sometimes clears what it
  -- drew before (a longer history entry) with blanks rather than an erase:
  -- invisible on the terminal, so dropped here (a pattern ending in `two$`
  -- missed "two" followed by blanks, once in a full run))
  return (out:gsub("[ \t]+\n", "\n"):gsub("[ \t]*\n*$", ""))
end

--- Waits until the last line is the REPL's empty prompt: readline reads
-- keys from then on (a key sent before may be taken by the terminal's
-- cooked mode: a Ctrl-D there is lost).
-- @treturn string the screen
function Term:wait_prompt (timeout)
  return self:wait_for("\n>%s*$", timeout)
end

--- Types `text` at the prompt and waits until the prompt line shows it.
-- Keys typed while readline is still setting up the terminal after
-- printing its prompt can be lost under load (seen on busy machines):
-- then the line is cleared (Ctrl-U) and typed again, three times at most.
-- @treturn string the screen
function Term:type_at_prompt (text)
  local want = "\n> " .. text:gsub("%p", "%%%0") .. "$"
  for _ = 1, 2 do
    self:type(text)
    local ok, s = pcall(self.wait_for, self, want, 3)
    if ok then return s end
    self:keys("C-u")
  end
  self:type(text)
  return self:wait_for(want, 10)
end

--- Waits until the screen shows `pattern` (a Lua pattern), or `timeout`
-- seconds (default 10) pass. Returns the screen, or raises with it.
-- @treturn string
function Term:wait_for (pattern, timeout, plain)
  local deadline = socket.gettime() + (timeout or 10)
  while true do
    local s = self:screen()
    if s:find(pattern, 1, plain) then return s end
    if socket.gettime() > deadline then
      error("the terminal never showed " .. pattern .. "; it shows:\n" .. s, 2)
    end
    socket.sleep(0.05)
  end
end

--- Whether the command ended (its process is gone: tmux itself may take
-- a while to mark the pane dead), and its exit status when tmux tells it
-- ("Pane is dead (status N, ...)"; a signal N gives 128 + N).
-- @treturn boolean
-- @treturn number|nil
function Term:dead ()
  if not self.pid then
    local _, out = tmux("display -p -t " .. self.name .. " '#{pane_pid}'")
    self.pid = tonumber(out:match("%d+"))
  end
  local s = self:screen()
  local how, n = s:match("Pane is dead %((%a+) (%d+)")
  if how then return true, how == "signal" and 128 + tonumber(n) or tonumber(n) end
  return not (self.pid and proc.alive(self.pid)), nil
end

--- Ends the session.
function Term:close ()
  tmux("kill-session -t " .. self.name)
end

-- }======================================================

return M
