--- Line input for the REPL: GNU Readline (line editing, history) through
-- lua-readline's callback interface, with Ctrl-C caught by a luv signal
-- handler, so that Ctrl-C can cancel a reply in progress instead of
-- ending the process.
--
-- Why the callback interface and luv: the blocking `readline()` leaves
-- Ctrl-C to the process's SIGINT disposition, and Lua 5.4 has no signal
-- API (luaposix is not built for it on Debian 12). libuv's handler only
-- notes the signal; the REPL asks `interrupted()` between steps of its
-- request and between keys. Without a terminal (stdin a pipe or a file),
-- lines are read plainly and Ctrl-C keeps its default.
--
-- @module aigc.cli.lineinput

local M = {}

local Reader = {}
Reader.__index = Reader

--- Makes a reader.
-- @tparam table opts `tty` (use readline and the signal handler),
-- `histfile` (the history file), `completions` (words Tab completes)
-- @treturn table reader
function M.new (opts)
  local self = setmetatable({ tty = opts.tty, pending_interrupt = false }, Reader)
  local ok_uv, uv = pcall(require, "luv")
  if ok_uv then
    self.uv = uv
    self.signal = uv.new_signal()
    self.signal:start("sigint", function () self.pending_interrupt = true end)
  end
  if self.tty then
    local ok_rl, readline = pcall(require, "readline")
    if ok_rl and ok_uv then
      self.rl = readline
      readline.set_options { histfile = opts.histfile or "", keeplines = 1000, auto_add = false,
                             completion = opts.completions ~= nil }
      if opts.completions then readline.set_complete_list(opts.completions) end
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

--- Reads a line: the line (without its newline), nil at end of input
-- (Ctrl-D), or false when Ctrl-C abandoned it.
-- @tparam string prompt
-- @treturn string|nil|false
function Reader:read (prompt)
  self:interrupted()            -- a Ctrl-C from before the prompt is stale
  if not self.rl then
    if self.tty then io.stdout:write(prompt); io.stdout:flush() end
    return io.stdin:read("*l")
  end
  local rl, uv = self.rl, self.uv
  local line, finished = nil, false
  rl.handler_install(prompt, function (l)
    line, finished = l, true
    rl.handler_remove()
  end)
  local poll = uv.new_poll(0)
  poll:start("r", function () rl.read_char() end)
  while not finished do
    uv.run("once")
    if self.pending_interrupt then
      self.pending_interrupt = false
      if rl.sigcleanup then rl.sigcleanup() end
      rl.handler_remove()
      io.stdout:write("^C\n")
      io.stdout:flush()
      line, finished = false, true
    end
  end
  poll:stop()
  poll:close()
  if type(line) == "string" and line:find("%S") then rl.add_history(line) end
  return line
end

--- Saves the history and releases the signal handler.
function Reader:close ()
  if self.rl then pcall(self.rl.save_history) end
  if self.signal then
    self.signal:stop()
    self.signal:close()
    self.signal = nil
    self.uv.run("nowait")
  end
end

return M
