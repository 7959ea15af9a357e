--- Whether the LÖVE specs can run here, and why not: they run once, in
-- LuaJIT's busted run (LÖVE brings its own LuaJIT), with the tools given
-- installed and the module built for LuaJIT (LÖVE loads
-- build/jit/aigc/core.so).
-- @usage local reason = require("love_ready").why_not { "love", "xvfb-run", "xauth" }

local proc = require "procutil"

local M = {}

--- Whether `make test`'s suite named `suite` (AIGC_SUITE_NAME; nil or ""
-- outside `make test`) runs the LÖVE specs it holds. LuaJIT's busted run is
-- cut in parts, busted-partK-jit, each spec file in one of them: the part
-- holding a LÖVE spec runs it. (Matching only "busted-jit" left the LÖVE
-- specs pending in every suite once the run was cut, from a1509ad on, while
-- the README said they ran.)
-- @tparam string|nil suite
-- @treturn boolean
function M.runs_in (suite)
  return suite == nil or suite == "" or suite == "busted-jit" or suite:match("^busted%-part%d+%-jit$") ~= nil
end

--- nil when the LÖVE specs can run, else the reason (for `pending`).
-- @tparam table tools the commands needed
-- @treturn string|nil
function M.why_not (tools)
  if not M.runs_in(os.getenv("AIGC_SUITE_NAME")) then   -- (set by scripts/run-tests.sh)
    return "the LÖVE sessions run once, in LuaJIT's busted run (LÖVE brings its own LuaJIT)"
  end
  for _, tool in ipairs(tools) do
    if not proc.execute("command -v " .. tool .. " >/dev/null 2>&1") then
      return tool .. " is not installed (scripts/deps.sh test installs love, xvfb, xauth, imagemagick)"
    end
  end
  if not proc.exists(proc.root() .. "/build/jit/aigc/core.so") then
    return "no LuaJIT build of the module: run `make LUA_VERSION=jit` (LÖVE loads build/jit/aigc/core.so)"
  end
  return nil
end

--- The start of a command line that runs a game under `xvfb-run ARGS`
-- (the game's command follows), with TMPDIR left out of xvfb-run's
-- environment. Debian's xvfb-run passes Xvfb the auth file it makes in
-- $TMPDIR unquoted (`-auth $AUTHFILE`): under a TMPDIR with a space Xvfb
-- never started and xvfb-run failed, the game run or not. mktemp's
-- default, /tmp, then.
-- @usage proc.sh("timeout 60 " .. love_ready.xvfb_run("-a") .. "love " .. proc.quote(dir))
function M.xvfb_run (args)
  return "env -u TMPDIR xvfb-run " .. args .. " "
end

return M
