--- Line input for the REPL: GNU Readline (line editing, history), with
-- Ctrl-C caught by a luv signal handler for the whole session, so that
-- Ctrl-C cancels a reply in progress instead of ending the process.
--
-- Why luv: Lua 5.4 has no signal API (luaposix is not built for it on
-- Debian 12), and the standalone interpreter's own SIGINT handler raises
-- "interrupted!" once and then restores the default (the next Ctrl-C
-- kills). libuv's handler only notes the signal; the REPL asks
-- `interrupted()` between steps of its request. Without a terminal (stdin
-- a pipe or a file) lines are read plainly. Without luv, Ctrl-C keeps the
-- interpreter's behaviour (the reply fails with "interrupted!", and a
-- second Ctrl-C ends the process).
--
-- @module aigc.cli.lineinput

local M = {}

local Reader = {}
Reader.__index = Reader

--- How many entries the history file keeps.
M.KEEP_LINES = 1000

-- An entry as a line of the history file: one holding a newline, or
-- beginning with a backslash, is written escaped after a backslash (\n a
-- newline, \\ a backslash); any other is written as it is (a file
-- written before holds such lines: each is an entry, as it was).
local function encode (text)
  if not (text:find("\n", 1, true) or text:sub(1, 1) == "\\") then return text end
  return "\\" .. text:gsub("\\", "\\\\"):gsub("\n", "\\n")
end

-- A line of a file written before that begins with a backslash (a LaTeX
-- \frac{1}{2}, a \\server\share path) is read as it is: an escaped line
-- holds an escape (its text had a newline or began with a backslash) and
-- no backslash that is not one.
local function decode (line)
  if line:sub(1, 1) ~= "\\" then return line end
  local rest = line:sub(2)
  local bare, escapes = rest:gsub("\\[n\\]", "")
  if escapes == 0 or bare:find("\\", 1, true) then return line end
  return (rest:gsub("\\(.?)", function (c) return c == "n" and "\n" or c end))
end
M.encode_history, M.decode_history = encode, decode

--- Makes a reader.
-- @tparam table opts `tty` (use readline), `histfile` (the history file),
-- `sigint` (false: Ctrl-C is not caught, the interpreter's stays)
-- @treturn table reader
function M.new (opts)
  local self = setmetatable({ tty = opts.tty, pending_interrupt = false, histfile = opts.histfile }, Reader)
  local ok_uv, uv = pcall(require, "luv")
  if ok_uv then self.uv = uv end
  if ok_uv and opts.sigint ~= false then
    self.signal = uv.new_signal()
    self.signal:start("sigint", function () self.pending_interrupt = true end)
  end
  if self.tty then
    local ok_rl, readline = pcall(require, "readline")
    if ok_rl then
      self.rl = readline
      -- The history holds what was typed (private): a new file is made 0600
      -- before readline writes it (an existing one keeps its mode).
      if opts.histfile then
        local fd = ok_uv and uv.fs_open(opts.histfile, "a", 384)   -- (384 = 0600)
        if fd then uv.fs_close(fd)
        else os.execute("(umask 077 && : >> '" .. opts.histfile:gsub("'", "'\\''") .. "') 2>/dev/null") end
        -- (a file that cannot be written is not saved line by line: readline's
        -- warning once at the end, not at every line)
        local f = io.open(opts.histfile, "a")
        if f then f:close() else self.histfile = nil end
      end
      -- (completion off: lua-readline's readline() then strips a trailing space.)
      -- The history file is this module's (`load_history`, `remember`):
      -- readline writes an entry holding newlines (a pasted text, a """
      -- block) as one entry per line, and the next session recalled its lines
      -- one by one.
      readline.set_options { histfile = "", keeplines = M.KEEP_LINES, auto_add = false, completion = false }
      self:load_history()
      -- (the terminal's size, for `follow_resize`; libuv opens its own file description of it)
      if ok_uv and uv.guess_handle(1) == "tty" then self.out_tty = uv.new_tty(1, false) end
    end
  end
  return self
end

--- Whether Ctrl-C was pressed since the last call (drives luv's loop once
-- without blocking to hear it).
-- @treturn boolean
function Reader:interrupted ()
  if self.uv then self.uv.run("nowait") end
  local v = self.pending_interrupt
  self.pending_interrupt = false
  return v
end

-- Whether SIGHUP is ignored (`nohup aigc chat <script`), or that cannot be
-- told (no /proc): then it is left as it is.
local function hup_ignored ()
  local f = io.open("/proc/self/status", "rb")
  local status = f and f:read("*a")
  if f then f:close() end
  local mask = status and status:match("\nSigIgn:%s*(%x+)")
  return not mask or tonumber(mask:sub(-1), 16) % 2 == 1   -- (bit 0: signal 1, SIGHUP)
end

--- Catches SIGTERM and SIGHUP (the terminal closed) until `release_term`:
-- while a reply comes, the signal is noted (`terminated()`), so that the
-- REPL cancels the turn, logs it and then ends by the signal. Only then: at
-- the prompt Readline would take the signal and read on (the session would
-- not end). Without luv, they kill; an ignored SIGHUP stays ignored.
function Reader:catch_term ()
  if not self.uv or self.term then return end
  self.term = {}
  for _, name in ipairs { "sigterm", not hup_ignored() and "sighup" or nil } do
    local h = self.uv.new_signal()
    h:start(name, function () self.term_got = self.term_got or name end)
    self.term[#self.term + 1] = h
  end
end

--- The signal ("sigterm", "sighup") that came while caught, or nil (drives
-- luv's loop once to hear it).
-- @treturn string|nil
function Reader:terminated ()
  if self.uv then self.uv.run("nowait") end
  return self.term_got
end

--- Stops catching them (their default action is back): the one that came, or nil.
-- @treturn string|nil
function Reader:release_term ()
  local got = self:terminated()
  if self.term then
    for _, h in ipairs(self.term) do h:stop(); h:close() end
    self.term = nil
    self.uv.run("nowait")
  end
  return got
end

--- Reads a line: the line (without its newline), or nil at the end of
-- input (Ctrl-D on an empty line); and whether Ctrl-C was pressed while
-- it was read.
--
-- GNU Readline's own blocking call reads it: Readline catches SIGINT
-- while it reads, cleans its line state, hands the signal on to libuv's
-- handler (which only notes it) and goes on reading. So Ctrl-C at the
-- prompt changes nothing and never ends the session (a Ctrl-C meant for
-- a reply that just ended costs nothing); Ctrl-U clears the line.
-- (Readline's callback interface would let Ctrl-C abandon the line, but
-- through lua-readline it cannot free the line's state — rl_free_line_state
-- is not exposed — and history navigation then crashes.)
-- The caller decides what that Ctrl-C means (the REPL abandons a
-- multi-line input with it, once Readline returns).
-- @tparam string prompt
-- @treturn string|nil
-- @treturn boolean
function Reader:read (prompt)
  local line
  if self.rl then
    self:follow_resize()
    line = self.rl.readline(prompt)
    self.rl_started = true
  else
    if self.tty then io.stdout:write(prompt); io.stdout:flush() end
    line = io.stdin:read("*l")
    -- (a file written on Windows: its lines end in CR LF, and the CR is no part of what was typed)
    if line and not self.tty then line = line:gsub("\r$", "") end
  end
  local hit = self:interrupted()   -- (a Ctrl-C at the prompt is not for the next reply)
  return line, hit
end

-- What a thread does for `follow_resize`: sends SIGWINCH until Readline
-- has taken the width `want` (it sets COLUMNS then), 3 s at most.
local function winch_until (pid, want)
  local uv = require "luv"
  for _ = 1, 100 do
    uv.kill(pid, "sigwinch")
    uv.sleep(30)
    if os.getenv("COLUMNS") == want then return end
  end
end

--- Tells Readline of a resize made while it did not read (a reply
-- streamed): it hears only the SIGWINCH that comes while it reads, and
-- kept the old width (lines drawn wrong once longer than it).
-- lua-readline exposes no rl_resize_terminal: a thread sends SIGWINCH
-- until Readline, reading by then, has taken the new width. (Readline
-- keeps COLUMNS at its width; a SIGWINCH outside it is ignored.)
function Reader:follow_resize ()
  if not (self.out_tty and self.rl_started) then return end
  local width = self.out_tty:get_winsize()
  if not width or tostring(width) == os.getenv("COLUMNS") then return end
  if self.winch then self.winch:join() end
  local ok, thread = pcall(self.uv.new_thread, winch_until, self.uv.os_getpid(), tostring(width))
  self.winch = ok and thread or nil
end

--- Reads the history file into Readline's history, keeping its last
-- `M.KEEP_LINES` entries (the file is rewritten when it holds more).
function Reader:load_history ()
  local f = self.histfile and io.open(self.histfile, "rb")
  if not f then return end
  local entries = {}
  for line in f:lines() do entries[#entries + 1] = decode(line) end
  f:close()
  local first = math.max(1, #entries - M.KEEP_LINES + 1)
  for i = first, #entries do self.rl.add_history(entries[i]) end
  if first > 1 then
    local lines = {}
    for i = first, #entries do lines[#lines + 1] = encode(entries[i]) .. "\n" end
    -- A new file renamed into place, with the old one's mode (0600 stays
    -- private): cut in place, a full disk (or a write error) left it
    -- empty or torn, every entry lost. (A link, or no luv to tell: in place.)
    local st = self.uv and self.uv.fs_lstat(self.histfile)
    if st and st.type == "file" then
      require("aigc.core").media.save(self.histfile, table.concat(lines), st.mode % 4096)
      return
    end
    local w = io.open(self.histfile, "wb")   -- (in place: the file keeps its mode)
    if w then
      w:write(table.concat(lines))
      w:close()
    end
  end
end

--- Adds one input (what was typed on one or more lines) to the history as
-- one entry, and writes it to the history file at once: a session that
-- ends by a signal at the prompt (the terminal closed: SIGHUP, or SIGTERM)
-- never reaches `close`, and every line it had read was lost.
-- @tparam string text
function Reader:remember (text)
  if not (self.rl and text:find("%S")) then return end
  self.rl.add_history(text)
  local f = self.histfile and io.open(self.histfile, "ab")
  if f then f:write(encode(text), "\n"); f:close() end
end

--- Releases the signal handler, the tty handle and the resize thread (the
-- history is written as each input is entered: `remember`).
function Reader:close ()
  if self.winch then self.winch:join(); self.winch = nil end
  if self.out_tty then self.out_tty:close(); self.out_tty = nil end
  if self.signal then
    self.signal:stop()
    self.signal:close()
    self.signal = nil
    self.uv.run("nowait")
  end
end

return M
