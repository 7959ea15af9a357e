--- Process helpers shared by the test harnesses that start servers (the
-- bundled devserver, Steady, nginx): quoting, files, free ports, stopping a
-- process for sure, and the command that runs a child Lua under the
-- interpreter being tested. LuaSocket for time and sockets; no aigc.
-- Runs on Lua 5.1-5.4 and LuaJIT (the matrix of `make test`): no read("a")
-- (5.1/5.2 want "*a"), and exit statuses taken from the shell, since 5.1's
-- os.execute returns a number and its popen:close() always true.
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
  local s = f:read("*a")
  f:close()
  return s
end

--- The decoded JSON lines of a file (a results file, a batch's), a list; none when it is missing.
-- @usage assert.equal(5, #proc.json_lines(out))
function M.json_lines (path)
  local cjson = require "cjson"
  local list = {}
  for line in (M.read_file(path) or ""):gmatch("[^\n]+") do list[#list + 1] = cjson.decode(line) end
  return list
end

--- Whether a file exists.
-- @usage if proc.exists(bin) then ... end
function M.exists (path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

--- The first line a command prints (its stderr dropped), or nil: e.g. to
-- tell whether a tool is installed.
-- @usage local HAS_SOXI = proc.first_line("command -v soxi") ~= nil
function M.first_line (cmd)
  local p = assert(io.popen(cmd .. " 2>/dev/null"))
  local out = p:read("*l")
  p:close()
  return out
end

--- A path's permission bits as an octal string ("700"), by stat(1), or nil.
-- @usage assert.equal("600", proc.mode(dir .. "/.key"))
function M.mode (path)
  return M.first_line("stat -c %a " .. M.quote(path))
end

--- Runs a shell command: true or false, and what it printed (stdout and stderr).
-- @usage local ok, out = proc.sh("nginx -t")
function M.sh (cmd)
  local p = assert(io.popen("( " .. cmd .. "\n) 2>&1; echo \"aigc-exit-status:$?\""))
  local out = p:read("*a")
  p:close()
  local status
  out = out:gsub("aigc%-exit%-status:(%d+)\n$", function (n) status = tonumber(n); return "" end)
  return status == 0, out
end

--- Runs a shell command with os.execute and returns what 5.2+ returns, on
-- every Lua: true or nil, "exit" or "signal", and the code (5.1 and LuaJIT
-- return the raw wait status, a number).
-- @usage local ok, how, code = proc.execute3("exit 3")   -- nil, "exit", 3
function M.execute3 (cmd)
  local a, how, code = os.execute(cmd)
  if type(a) ~= "number" then return a, how, code end
  if a % 256 == 0 then
    code = math.floor(a / 256)
    return code == 0 or nil, "exit", code
  end
  return nil, "signal", a % 128
end

--- Runs a shell command with os.execute: true when it exited with status 0.
-- @usage if proc.execute("kill -0 " .. pid) then ... end
function M.execute (cmd)
  return M.execute3(cmd) == true
end

--- The root of this checkout: $AIGC_SPEC_ROOT (set by scripts/run-tests.sh),
-- else the current directory (busted runs from the root).
function M.root ()
  local r = os.getenv("AIGC_SPEC_ROOT")
  if r and r ~= "" then return r end
  return "."
end

--- The shell words that start a child Lua under the interpreter being
-- tested ($AIGC_LUA, default lua5.4) with package.path/cpath pointing at this
-- checkout's lua/ and the module built for that interpreter ($AIGC_CPATH,
-- default ./?.so), ready for a script name or `-e CODE` after them. The
-- bundled server is not run with it: it needs Lua 5.4 (spec/support/devserver.lua).
-- @usage local ok, out = proc.sh(proc.lua_command() .. " " .. proc.quote(script))
function M.lua_command ()
  local lua = os.getenv("AIGC_LUA")
  if not lua or lua == "" then lua = "lua5.4" end
  local cpath = os.getenv("AIGC_CPATH")
  if not cpath or cpath == "" then cpath = "./?.so" end
  local root = M.root()
  local function rooted (p) return p:sub(1, 1) == "/" and p or (root .. "/" .. p:gsub("^%./", "")) end
  local setup = ("package.path = %q .. package.path; package.cpath = %q .. package.cpath")
    :format(rooted("lua/?.lua") .. ";" .. rooted("lua/?/init.lua") .. ";", rooted(cpath) .. ";")
  return lua .. " -e " .. M.quote(setup)
end

-- The ports free_port handed out lately, oldest first, and as a set: never
-- handed out twice. The kernel may give the port it just gave again (bind
-- to port 0 of a port now closed): about 1 set of 4 in 1,500 held a repeat,
-- and security_spec's nginx then had its TLS server for another name and
-- its HTTP/2 server on one port, served the other name's certificate to
-- the HTTP/2 tests, and 4 of them failed "self-signed certificate" (CI of
-- stop 40). A window, not every port ever: a long run would exhaust the
-- kernel's range.
local RECENT_PORTS = 512
local recent_ports, recent_set = {}, {}

--- A TCP port free on 127.0.0.1 right now, and none of the last 512 this
-- process was given (so the ports of one server's configuration differ).
-- @usage local port = proc.free_port()
function M.free_port ()
  while true do
    local s = assert(socket.bind("127.0.0.1", 0))
    local _, port = s:getsockname()
    s:close()
    port = tonumber(port)
    if not recent_set[port] then
      recent_ports[#recent_ports + 1], recent_set[port] = port, true
      if #recent_ports > RECENT_PORTS then recent_set[table.remove(recent_ports, 1)] = nil end
      return port
    end
  end
end

--- A port of 127.0.0.1 where nothing listens, held so until `release()`:
-- a socket of this process bound there without SO_REUSEADDR and never
-- listening. A connection there is refused; no other process can bind it
-- (a server's SO_REUSEADDR does not pass a socket bound without it), and
-- the kernel gives it to no bind to port 0. A port bound and closed again
-- (free_port) is free for any process: a server of another suite of `make
-- test` could take it before the test connects, and the test expecting a
-- refused connection then talked to that server.
-- @usage local port, release = proc.closed_port(); finally(release)
function M.closed_port ()
  local s = assert(socket.tcp())   -- (socket.bind would set SO_REUSEADDR)
  assert(s:bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  return tonumber(port), function () s:close() end
end

--- Whether process `pid` is alive. A zombie counts as gone: the PID 1 of a
-- container does not always reap promptly, and `kill -0` still succeeds.
-- @usage while proc.alive(pid) do socket.sleep(0.02) end
function M.alive (pid)
  local stat = M.read_file("/proc/" .. pid .. "/stat")
  if stat then return stat:match("%) (%a)") ~= "Z" end
  return M.execute("kill -0 " .. pid .. " 2>/dev/null")
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
--- Starts the cassette server (lua/aigc/cassette_server.lua, Lua 5.4) on a
-- new empty tape, `args` after its path; stopped, its tape removed, when the
-- test ends (`finally`: busted's, which a module does not see): its port.
-- @usage local port = proc.cassette_server("--record " .. srv.url, finally)
function M.cassette_server (args, finally)
  local tape = os.tmpname()
  local pipe = assert(io.popen("exec lua5.4 lua/aigc/cassette_server.lua " .. M.quote(tape) .. " "
                               .. (args or "") .. " --parent-pid $PPID", "r"))
  local port, pid = (pipe:read("*l") or ""):match("^aigc cassette server (%d+) (%d+)$")
  assert(port, "the cassette server did not start")
  finally(function () M.stop(pid); pipe:close(); os.remove(tape) end)
  return tonumber(port)
end

--- A new folder for an nginx of a test's own (with the `tmp` folder
-- `nginx_conf` points its temporary files to) and in it, for each
-- `{ name, subject_alt_name }` of `certs`, a self-signed certificate
-- `NAME.pem` with its key `NAME.key`, made by openssl.
-- @usage local dir = proc.nginx_dir { { "good", "IP:127.0.0.1" } }
function M.nginx_dir (certs)
  local dir = os.tmpname()
  os.remove(dir)
  assert(M.sh("mkdir -p " .. M.quote(dir .. "/tmp")))
  for _, cert in ipairs(certs or {}) do
    local name, alt = cert[1], cert[2]
    local ok, out = M.sh(("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=%s "
      .. "-addext subjectAltName=%s -keyout %s/%s.key -out %s/%s.pem"):format(name, alt, dir, name, dir, name))
    assert(ok, out)
  end
  return dir
end

--- `template` with each of its words (a run of capital letters, digits and
-- `_` starting with a capital) that is a key of `values` replaced by that
-- value, in one pass: a value put in is never searched again. (Chained
-- gsubs were not: a temporary directory named /tmp/lua_EHBUH2, put in for
-- DIR, then had its "H2" replaced by a port, and nginx found no
-- certificate; 1 run in ~700 of a spec, 2 CIs in a row.) Other words, and
-- `%` in a value, are kept as they are.
-- @usage proc.fill("listen 127.0.0.1:PORT; root DIR;", { PORT = 8080, DIR = dir })
function M.fill (template, values)
  return (template:gsub("%u[%u%d_]*", function (word)
    local value = values[word]
    if value ~= nil then return tostring(value) end
  end))
end

--- The text of an nginx.conf for `start_nginx`: one process in the
-- foreground, its pid, error log and temporary files in `dir`, and `http`
-- (the http block's settings and servers) in its http block.
-- @usage proc.nginx_conf(dir, "access_log off; server { ... }")
function M.nginx_conf (dir, http)
  local head = [[
daemon off; master_process off; worker_processes 1;
pid DIR/nginx.pid; error_log DIR/error.log;
events { worker_connections 64; }
http {
  client_body_temp_path DIR/tmp; proxy_temp_path DIR/tmp; fastcgi_temp_path DIR/tmp;
  uwsgi_temp_path DIR/tmp; scgi_temp_path DIR/tmp;
]]
  return head:gsub("DIR", function () return dir end) .. http .. "\n}\n"
end

--- Starts nginx with the configuration `make_conf(owner)` returns, on
-- ports it picks itself with `free_port` (so they are fresh each try),
-- and makes sure the ports are its own: a port free_port found free may be
-- taken by another test process (the suites of `make test` run side by
-- side, some with an nginx of their own) before this nginx binds it, and
-- the test would then talk to the other server. The configuration must
-- hold a plain-HTTP server on `owner.port` with
-- `location = /_owner { return 200 'OWNER'; }` (`owner.token` in place of
-- OWNER): nginx serves it only once every listen of its configuration is
-- bound, so that answer says all its ports are this nginx's. Up to 3 tries.
-- Returns the pid and the `owner` table `make_conf` was given (with the
-- ports it chose, if it stored them there).
-- @usage local pid, conf = proc.start_nginx(dir, function (o) o.tls = proc.free_port(); return text end)
function M.start_nginx (dir, make_conf)
  local http = require "socket.http"
  for _ = 1, 3 do
    local owner = { port = M.free_port(), token = ("aigc-nginx-%d-%d"):format(M.free_port(), math.random(1, 1e9)) }
    local f = assert(io.open(dir .. "/nginx.conf", "w"))
    f:write((make_conf(owner)))   -- (one value: a gsub result ends with its count)
    f:close()
    local p = assert(io.popen("nginx -p " .. dir .. " -c " .. dir .. "/nginx.conf >/dev/null 2>&1 & echo $!"))
    local pid = tonumber(p:read("*a"):match("%d+"))
    p:close()
    local deadline, body = socket.gettime() + 10
    repeat   -- (refused until nginx serves; another answer: not ours)
      http.TIMEOUT = 1
      body = http.request("http://127.0.0.1:" .. owner.port .. "/_owner")
      if body == nil then socket.sleep(0.05) end
    until body ~= nil or not M.alive(pid) or socket.gettime() > deadline
    if body == owner.token then return pid, owner end
    M.stop(pid)   -- (another server answered, or nginx could not bind a port: new ports)
  end
  error("nginx did not start on ports of its own (see " .. dir .. "/error.log)", 2)
end

return M
