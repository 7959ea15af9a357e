--- Process helpers shared by the test harnesses that start servers (the
-- bundled devserver, Steady, nginx): quoting, files, free ports, and
-- stopping a process for sure. LuaSocket for time and sockets; no aigc.
--
-- @usage
-- local proc = require "procutil"
-- local ok, out = proc.sh("openssl version")
-- proc.stop(pid)   -- TERM, then KILL after 5 s; returns when it is gone

local socket = require "socket"

local M = {}

--- Quotes s for /bin/sh.
-- @usage os.execute("rm -f " .. proc.quote(path))
function M.quote (s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- The whole content of a file, or nil.
-- @usage local port = proc.read_file(port_file)
function M.read_file (path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

--- Whether a file exists.
-- @usage if proc.exists(bin) then ... end
function M.exists (path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

--- Runs a shell command: true or false, and what it printed (stdout and stderr).
-- @usage local ok, out = proc.sh("nginx -t")
function M.sh (cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  return ok == true, out
end

--- A TCP port free on 127.0.0.1 right now.
-- @usage local port = proc.free_port()
function M.free_port ()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

--- Whether process `pid` is alive. A zombie counts as gone: the PID 1 of a
-- container does not always reap promptly, and `kill -0` still succeeds.
-- @usage while proc.alive(pid) do socket.sleep(0.02) end
function M.alive (pid)
  local stat = M.read_file("/proc/" .. pid .. "/stat")
  if stat then return stat:match("%) (%a)") ~= "Z" end
  return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true
end

--- Stops process `pid`: SIGTERM, then SIGKILL after `grace` seconds (5);
-- returns once it is gone.
-- @usage proc.stop(srv.pid)
function M.stop (pid, grace)
  os.execute("kill -TERM " .. pid .. " 2>/dev/null")
  local deadline = socket.gettime() + (grace or 5)
  while M.alive(pid) and socket.gettime() < deadline do socket.sleep(0.02) end
  if M.alive(pid) then
    os.execute("kill -KILL " .. pid .. " 2>/dev/null")
    while M.alive(pid) do socket.sleep(0.02) end
  end
end

return M
