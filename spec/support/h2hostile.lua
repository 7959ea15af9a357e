--- Starts and stops spec/support/h2hostile.js, a hostile HTTP/2 server on
-- Node's built-in http2 (see that file for its modes), with a self-signed
-- certificate for 127.0.0.1 made by openssl. Runs on Lua 5.1-5.4 and
-- LuaJIT; no aigc.
--
-- @usage
-- local h2hostile = require "h2hostile"
-- local srv, why = h2hostile.start()          -- nil and why when node cannot run it
-- local c = aigc.client { base_url = srv.url("rst_cancel", "t1"), ca_file = srv.ca_file }
-- srv.count("t1")                             -- requests the server received for "t1"
-- srv.stop()

local socket = require "socket"
local proc = require "procutil"

local M = {}

--- Starts the server: a table with `url(mode, token)` (a base_url),
-- `conc1_url` (the server allowing one stream at a time), `unknown_url` and
-- `ping_url` (raw HTTP/2: frames of unknown types, a PING flood), `ca_file`,
-- `count(token)` and `stop()`; or nil and why it could not start (no node,
-- no http2 in it, no openssl).
function M.start ()
  if not proc.first_line("command -v node") then return nil, "node is not installed" end
  local dir = proc.nginx_dir { { "h2", "IP:127.0.0.1" } }
  local script = proc.root() .. "/spec/support/h2hostile.js"
  local pipe = assert(io.popen(("echo $$ > %s/pid; exec node %s %s/h2.pem %s/h2.key > %s/ports 2> %s/err")
    :format(dir, proc.quote(script), dir, dir, dir, dir), "w"))
  -- (a bound for a loaded machine: there 10 s were once too few for node to
  -- start, and every test of the spec went pending)
  local deadline, line, pid = socket.gettime() + 60
  repeat
    pid = pid or tonumber(proc.read_file(dir .. "/pid") or "")
    line = (proc.read_file(dir .. "/ports") or ""):match("^(%d+ %d+ %d+ %d+ %d+)\n")
    if not line then socket.sleep(0.02) end
  until line or (pid and not proc.alive(pid)) or socket.gettime() > deadline
  local function stop ()
    if pid then proc.stop(pid) end
    pipe:close()   -- (its stdin closing ends it too)
    os.execute("rm -rf " .. proc.quote(dir))
  end
  if not line then
    local why = proc.read_file(dir .. "/err") or ""
    stop()
    return nil, "node's http2 server did not start: " .. why:sub(1, 300)
  end
  local h2, conc1, counter, unknown, ping = line:match("(%d+) (%d+) (%d+) (%d+) (%d+)")
  local http = require "socket.http"
  return {
    ca_file = dir .. "/h2.pem",
    url = function (mode, token) return ("https://127.0.0.1:%s/%s/%s/v1"):format(h2, mode, token) end,
    conc1_url = ("https://127.0.0.1:%s/conc1/x/v1"):format(conc1),
    unknown_url = ("https://127.0.0.1:%s/v1"):format(unknown),   -- (counted as "raw_unknown")
    ping_url = ("https://127.0.0.1:%s/v1"):format(ping),         -- (counted as "raw_ping")
    count = function (token)
      http.TIMEOUT = 5
      return tonumber((http.request(("http://127.0.0.1:%s/%s"):format(counter, token))))
    end,
    stop = stop,
  }
end

return M
