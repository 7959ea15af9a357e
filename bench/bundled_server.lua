-- The bundled server (lua/aigc/devserver.lua, Lua 5.4 with lua-luv and
-- lua-cjson) on a free port, for a bench script run from the repo root:
-- `--parent-pid` ends it with the script, `--exit-after` in any case.
--
--   local port, pid = require("bundled_server").start "--pause-ms 5 --exit-after 600"

local aigc = require "aigc"

local M = {}

--- Starts the server with `args` (extra command-line arguments); returns
-- its port and its pid (a string, for `kill`).
function M.start (args)
  local port_file = os.tmpname()
  local server = io.popen(("lua5.4 lua/aigc/devserver.lua --port 0 --port-file %s %s "
                           .. "--parent-pid $PPID >/dev/null 2>&1 & echo $!"):format(port_file, args or ""))
  local pid = server:read("l")
  server:close()
  local port
  for _ = 1, 200 do
    local f = io.open(port_file)
    port = f and tonumber(f:read("a"))
    if f then f:close() end
    if port then break end
    aigc.sleep(0.05)
  end
  os.remove(port_file)
  assert(port, "the bundled server did not start")
  return port, pid
end

return M
