--- Test helper for spec/contract_spec.lua: install, start and stop Steady
-- (`@stdy/cli` from npm, pinned in spec/contract/package-lock.json), the
-- spec-validating mock server the official OpenAI SDKs test against.
--
-- Steady runs as a separate process on a free 127.0.0.1 port. The shell runs
-- the server binary directly, so the pid we hold is the server itself; `stop` kills that pid
-- (TERM, then KILL after 5 s) and waits until it is gone. A small shell
-- watchdog beside it kills the server if the Lua process running the tests
-- disappears without reaching `stop` (a crash, a kill), so no run leaves a
-- server behind; `stop` ends the watchdog too, by its pid.
--
-- Readiness is checked over HTTP with LuaSocket, not with aigc, so that a
-- broken aigc cannot make the harness believe the server is up.
--
-- @usage
-- local steady = dofile("spec/contract/steady.lua")
-- local srv = steady.start { root = ".", spec = "../shared/openapi/openapi.yaml" }
-- -- point a client at srv.base_url ...
-- srv:stop()

local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"

local M = {}

local proc = require "procutil"
local shell_quote, read_file, exists, alive = proc.quote, proc.read_file, proc.exists, proc.alive

--- The last `n` lines of a text, for error messages.
local function tail (text, n)
  local lines = {}
  for line in (text or ""):gmatch("[^\n]*") do lines[#lines + 1] = line end
  local first = math.max(1, #lines - n + 1)
  return table.concat(lines, "\n", first)
end
M.tail = tail

--- Runs a shell command; returns true, or false and its output.
local function run (cmd)
  local log = os.tmpname()
  local ok = proc.execute(cmd .. " >" .. shell_quote(log) .. " 2>&1 </dev/null")   -- (5.1: a number)
  local out = read_file(log) or ""
  os.remove(log)
  return ok, out
end

--- The version of @stdy/cli pinned in package.json (nil if unreadable).
-- @tparam string dir spec/contract
-- @treturn string|nil
function M.pinned_version (dir)
  local pkg = read_file(dir .. "/package.json")
  return pkg and pkg:match('"@stdy/cli"%s*:%s*"([^"]+)"')
end

--- The Steady executable under `dir`/node_modules: the platform binary that
-- npm installed as an optional dependency (so that our pid is the server's),
-- else npm's `.bin/steady` wrapper (which forwards signals to it).
local function find_binary (dir)
  local p = assert(io.popen("for f in " .. shell_quote(dir) .. "/node_modules/@stdy/cli-*/bin/steady; do "
                            .. "[ -x \"$f\" ] && echo \"$f\" && break; done", "r"))
  local bin = p:read("*l")
  p:close()
  if bin and bin ~= "" then return bin end
  local wrapper = dir .. "/node_modules/.bin/steady"
  if exists(wrapper) then return wrapper end
  return nil
end

--- npm's cache for `npm ci`: $npm_config_cache when set, else
-- <root>/build/npm-cache beside the build (`dir` is <root>/spec/contract).
-- npm's default, ~/.npm, failed with EPERM where HOME is read-only (a CI
-- runner, a sandbox) before node_modules was ever installed.
-- @tparam string dir
-- @treturn string
function M.npm_cache (dir)
  for _, name in ipairs { "npm_config_cache", "NPM_CONFIG_CACHE" } do
    local set = os.getenv(name)
    if set and set ~= "" then return set end
  end
  return dir .. "/../../build/npm-cache"
end

--- Makes sure Steady is installed in `dir` (spec/contract): runs
-- `npm ci --prefix <dir> --no-audit --no-fund` (with `npm_cache`'s cache)
-- when node_modules is missing or holds no Steady binary. Raises with npm's
-- output on failure.
-- @tparam string dir
-- @treturn string the executable
function M.install (dir)
  local bin = find_binary(dir)
  if bin then return bin end
  local ok, out = run("npm_config_cache=" .. shell_quote(M.npm_cache(dir)) .. " npm ci --prefix " .. shell_quote(dir)
                      .. " --no-audit --no-fund")
  if not ok then
    error("contract: `npm ci --prefix " .. dir .. " --no-audit --no-fund` failed (Node 20 and npm needed; its cache: "
          .. M.npm_cache(dir) .. "):\n" .. tail(out, 30), 2)
  end
  bin = find_binary(dir)
  if not bin then
    error("contract: npm ci succeeded but no Steady binary is in " .. dir .. "/node_modules:\n" .. tail(out, 30), 2)
  end
  return bin
end

local free_port = proc.free_port

--- A plain HTTP GET with LuaSocket: status and lower-case headers, or nil.
local function probe (url)
  local saved = http.TIMEOUT
  http.TIMEOUT = 2
  local ok, status, headers = http.request { url = url, method = "GET", sink = ltn12.sink.null() }
  http.TIMEOUT = saved
  if not ok then return nil end
  return status, headers
end

local Server = {}
Server.__index = Server

--- The server's output so far (its request log).
-- @treturn string
function Server:log ()
  return read_file(self.log_file) or ""
end

--- Stops the server by its pid (TERM, then KILL after 5 s), waits until it is
-- gone, ends the watchdog and removes the log file. Idempotent.
function Server:stop ()
  if self.stopped then return end
  self.stopped = true
  proc.stop(self.pid)
  if self.watchdog then os.execute("kill -TERM " .. self.watchdog .. " 2>/dev/null") end
  os.remove(self.log_file)
end

Server.__close = Server.stop
Server.__gc = Server.stop

-- A token no other run has (math.random's first number is the same in every
-- process of Lua 5.1-5.3 and LuaJIT): 8 bytes of /dev/urandom, in hex.
local function token ()
  local f = assert(io.open("/dev/urandom", "rb"))
  local bytes = f:read(8)
  f:close()
  return "aigc-owner-" .. bytes:gsub(".", function (c) return ("%02x"):format(c:byte()) end)
end

-- Whether the Steady answering on the server's port is this one: a port
-- free_port found free may be bound by another run's server (the suites of
-- `make test` run side by side, each with a Steady) before this one binds
-- it. A request for the model named by a fresh token (a valid path of the
-- spec) is answered; only our Steady's log then names the token. Ours
-- exits ("Address already in use") when the port is another's; `deadline`
-- only guards against a hang.
local function owns_port (self, deadline)
  local name = token()
  local status = probe(self.url .. "/models/" .. name)
  if status ~= 200 then return false end
  while alive(self.pid) and socket.gettime() < deadline do
    if self:log():find("/models/" .. name, 1, true) then return true end
    socket.sleep(0.02)
  end
  return false
end

-- One attempt: start Steady on `port`, wait until it answers. Returns the
-- server, or nil and a reason when the port was taken meanwhile; raises on
-- any other failure, with the end of Steady's log.
local function try_start (bin, spec, port, timeout, extra)
  local log_file = os.tmpname()
  -- `--log-format text`: with CI set in the environment (as on CI machines)
  -- Steady picks its "ci" format, which logs no requests, and the ownership
  -- check below reads the request log.
  local argv = { bin, "--host", "127.0.0.1", "--port", tostring(port), "--no-color", "--log-format", "text",
                 "--log-bodies" }
  for _, a in ipairs(extra or {}) do argv[#argv + 1] = a end
  argv[#argv + 1] = spec
  local quoted = {}
  for i, a in ipairs(argv) do quoted[i] = shell_quote(a) end
  -- $PPID in this shell is the Lua process running the tests: the watchdog
  -- ends the server once that process is gone (or a zombie), and ends itself
  -- once the server is gone.
  local cmd = "lp=$PPID\n"
    .. table.concat(quoted, " ") .. " </dev/null >" .. shell_quote(log_file) .. " 2>&1 &\n"
    .. "sp=$!; echo $sp\n"
    .. "( gone () { ! kill -0 \"$1\" 2>/dev/null || grep -q ') Z' \"/proc/$1/stat\" 2>/dev/null; }\n"
    .. "  while ! gone $sp; do if gone $lp; then kill -TERM $sp 2>/dev/null; exit 0; fi; sleep 1; done"
    .. " ) </dev/null >/dev/null 2>&1 &\n"
    .. "echo $!\n"
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("*a")
  p:close()
  local pid, watchdog = out:match("^(%d+)\n(%d+)")
  if not pid then
    os.remove(log_file)
    error("contract: could not start Steady: " .. out, 3)
  end
  local self = setmetatable({ pid = tonumber(pid), watchdog = tonumber(watchdog), port = port,
                              log_file = log_file, bin = bin, spec = spec }, Server)
  self.url = "http://127.0.0.1:" .. port
  local started = socket.gettime()
  local deadline = started + timeout
  while true do
    if not alive(self.pid) then
      local log = self:log()
      self:stop()
      local why = "Steady exited during start-up:\n" .. tail(log, 30)
      if log:find("Address already in use", 1, true) then return nil, why end
      error("contract: " .. why, 3)
    end
    local status, headers = probe(self.url .. "/models")
    if status then
      if status == 200 and headers["x-steady-matched-path"] == "/models" then
        if not owns_port(self, deadline) then
          local log = self:log()
          self:stop()
          return nil, ("port %d answered by another Steady:\n%s"):format(port, tail(log, 30))
        end
        self.startup_seconds = socket.gettime() - started
        return self
      end
      local log = self:log()
      self:stop()
      error(("contract: port %d answers, but not as Steady serving the spec (GET /models: HTTP %s)\n%s")
            :format(port, tostring(status), tail(log, 30)), 3)
    end
    if socket.gettime() > deadline then
      local log = self:log()
      self:stop()
      error(("contract: Steady did not answer on %s within %d s; its log:\n%s")
            :format(self.url, timeout, tail(log, 30)), 3)
    end
    socket.sleep(0.05)
  end
end

--- Installs (if needed) and starts Steady on a free 127.0.0.1 port, serving
-- the OpenAPI file `opts.spec`; returns once it answers.
-- Options: `dir` (spec/contract), `spec`, `timeout` (seconds to wait, 60),
-- `args` (extra command-line arguments).
-- @tparam table opts
-- @treturn table server with `url`, `port`, `pid`, `startup_seconds`, `log`, `stop`
function M.start (opts)
  local bin = M.install(opts.dir)
  local reasons = {}
  for _ = 1, 3 do   -- a port taken between our probe and Steady's bind: try another
    local srv, why = try_start(bin, opts.spec, free_port(), opts.timeout or 60, opts.args)
    if srv then return srv end
    reasons[#reasons + 1] = why
  end
  error("contract: Steady did not start:\n" .. table.concat(reasons, "\n---\n"), 2)
end

return M
