--- The `aigc` command: prompts, a chat REPL, prompt logs, templates and a
-- dataset runner on top of the aigc library (bin/aigc calls `main`).
--
-- `aigc [options] PROMPT` sends one prompt; `aigc COMMAND ...` runs one of
-- the commands below. A first word that is not a command is the prompt
-- (`aigc prompt chat` sends the word "chat").
--
-- @module aigc.cli

local common = require "aigc.cli.common"
local compat = require "aigc.compat"

local M = {}

--- The commands: name -> module (each has `parser()` and `run(args)`).
M.COMMANDS = {
  prompt = "aigc.cli.prompt",
  chat = "aigc.cli.chat",
  models = "aigc.cli.models",
  logs = "aigc.cli.logs",
  templates = "aigc.cli.templates",
  run = "aigc.cli.run",
  image = "aigc.cli.image",
  speak = "aigc.cli.speak",
}

-- What the library's misuse error says of a value the user gave (an -o
-- option, a template's params, the prompt's text, a run's flag): the
-- part in parentheses of "bad argument #1 to 'chat_async' (params.X: ...)",
-- for the call's params, spec or opts; nil for any other error (a bug:
-- reported with its traceback).
local function user_value_error (e)
  if type(e) ~= "string" then return nil end
  local what = e:match("^bad argument #%d+ to '[^']*' %((.*)%)$")
    or e:match("^[^\n]-:%d+: bad argument #%d+ to '[^']*' %((.*)%)$")
  if what and (what:find("^params[%.%[]") or what:find("^spec%.") or what:find("^opts%.")) then return what end
  return nil
end

local function version ()
  local ok, aigc = pcall(require, "aigc")
  return "aigc " .. (ok and tostring(aigc._VERSION) or "?") .. " (" .. _VERSION .. ")"
end

-- The exit code of a command that ended with `code`: the output lost (a
-- full disk, a closed stdout, a reader gone while SIGPIPE is ignored) is a
-- failure, not success.
local function finish (code)
  if common.out_error and code == 0 then
    common.note("aigc: cannot write the output: " .. common.out_error)
    return 1
  end
  return code
end

--- Runs the command line.
-- @tparam table argv the arguments (without the program name)
-- @treturn integer the exit code: 0 success, 1 a failed call, 2 a usage error (a value the
-- library refuses as misuse -- `-o temperature=hot`, text that is not UTF-8 -- is one too)
-- The standard descriptors a parent closed (`aigc Hi >&-`), each taken by
-- /dev/null opened read-only, kept for the process's life. Left free, the
-- first descriptor opened later took the number (the event loop's internal
-- socket pair), and the reply went into it; taken read-only, a write to it
-- fails (EBADF) and says so (common.out), a read gets end of file.
local plugs = {}
local function plug_closed_std_fds ()
  local proc = io.open("/proc/self/stat", "rb")
  if not proc then return end   -- (no /proc: it cannot be told)
  proc:close()
  for fd = 0, 2 do
    -- (fdinfo: a proc file of the descriptor's own, opened without touching what it is)
    local info = io.open("/proc/self/fdinfo/" .. fd, "rb")
    if info then info:close()
    else plugs[#plugs + 1] = io.open("/dev/null", "rb") end   -- (the lowest free number: this one)
  end
end

-- $HOME unset (cron, a service, `env -i`): the config, templates, history
-- and log were under the current directory (./.config/aigc, ./.local/share:
-- a config planted in a project was read, the private log left there). The
-- user's home from the password database instead, as libuv (and Python) find it.
local function ensure_home ()
  local h = os.getenv("HOME")
  if h and h ~= "" then return end
  local ok, uv = pcall(require, "luv")
  local home = ok and uv.os_homedir and uv.os_homedir()
  if home and home ~= "" then uv.os_setenv("HOME", home) end
end

function M.main (argv)
  argv = argv or {}
  plug_closed_std_fds()
  ensure_home()
  local first = argv[1]
  if first == "--version" then common.out(version() .. "\n"); return finish(0) end
  local name = "prompt"
  -- `aigc help` and `aigc help COMMAND`; any other words after "help" are a
  -- prompt (`aigc help me name a cat` printed the usage and sent nothing)
  if first == "help" and (argv[2] == nil or (M.COMMANDS[argv[2]] and argv[3] == nil)) then
    local what = argv[2] or "prompt"
    argv = { what, "--help" }
    first = what
  end
  if M.COMMANDS[first] then
    name = first
    local rest = {}
    for i = 2, #argv do rest[#rest + 1] = argv[i] end
    argv = rest
  end
  local mod = require(M.COMMANDS[name])
  local parser = mod.parser()
  local ok, args = parser:pparse(argv)
  if not ok then
    common.note(parser:get_usage() .. "\n\nError: " .. tostring(args))
    return 2
  end
  if args.version then common.out(version() .. "\n"); return finish(0) end   -- (`aigc -m x --version`)
  local ran, code = compat.xpcall(mod.run, function (e)   -- (5.1's passes no arguments)
    if getmetatable(e) == common.Exit then return e end
    -- Ctrl-C where no luv handler caught it (the interpreter's SIGINT hook
    -- raises "interrupted!" wherever Lua runs: aigc run --batch, no luv)
    if type(e) == "string" and e:find("interrupted!$") then
      return setmetatable({ message = "aigc: interrupted", code = 130 }, common.Exit)
    end
    local what = user_value_error(e)   -- the user's input, refused: a usage error
    if what then
      return setmetatable({ message = "aigc: invalid input: " .. common.as_typed(what), code = 2 }, common.Exit)
    end
    -- (a bug: in words, `util.value_text` -- a table raised showed "table: 0x55d0..." --
    -- and without the environment's keys, as the log scrubs them: there is no client here)
    local clean = require("aigc.promptlog_redact").scrubber(nil)
    return debug.traceback("aigc: internal error: " .. clean(require("aigc.util").value_text(e)), 2)
  end, args)
  if ran then code = code or 0 end
  if getmetatable(code) == common.Exit then
    if code.message then common.note(code.message) end
    code = code.code
  end
  if type(code) == "number" then return finish(code) end
  common.note(tostring(code))
  return 70
end

return M
