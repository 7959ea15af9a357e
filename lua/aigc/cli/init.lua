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

local function version ()
  local ok, aigc = pcall(require, "aigc")
  return "aigc " .. (ok and tostring(aigc._VERSION) or "?") .. " (" .. _VERSION .. ")"
end

--- Runs the command line.
-- @tparam table argv the arguments (without the program name)
-- @treturn integer the exit code: 0 success, 1 a failed call, 2 a usage error
function M.main (argv)
  argv = argv or {}
  local first = argv[1]
  if first == "--version" then common.out(version() .. "\n"); return 0 end
  local name = "prompt"
  if first == "help" then
    local what = argv[2] and M.COMMANDS[argv[2]] and argv[2] or "prompt"
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
  local ran, code = compat.xpcall(mod.run, function (e)   -- (5.1's passes no arguments)
    if getmetatable(e) == common.Exit then return e end
    return debug.traceback("aigc: internal error: " .. tostring(e), 2)
  end, args)
  if ran then return code or 0 end
  if getmetatable(code) == common.Exit then
    if code.message then common.note(code.message) end
    return code.code
  end
  common.note(tostring(code))
  return 70
end

return M
