--- Test helper: start the bundled devserver (lua/aigc/devserver.lua) as a
-- separate process and talk to its control endpoints.
--
-- The server runs in its own process so that the module under test and the
-- server never share a luv loop or a Lua state, and the control endpoints are
-- fetched with LuaSocket rather than with aigc, so the server's view of what
-- was sent is independent of the code being tested.
--
-- No orphans: the server is started with `--parent-pid <this process>` (it
-- exits within 0.5 s of that process disappearing, zombie included) and with
-- `--exit-after` (default 3600 s) as a backstop, so a crashed or killed test
-- run never leaves a server behind.
--
-- @usage
-- local devserver = require "devserver"
-- local srv = devserver.start { pause_ms = 0 }
-- -- point the client at srv.base_url ...
-- local last = srv:last()          -- what the server received
-- srv:stop()

local http = require "socket.http"
local ltn12 = require "ltn12"
local socket = require "socket"
local cjson = require "cjson"

local M = {}

local proc = require "procutil"
local shell_quote, read_file, alive = proc.quote, proc.read_file, proc.alive

--- Plain HTTP request with LuaSocket (never through aigc).
-- @tparam string method
-- @tparam string url
-- @tparam[opt] string body
-- @tparam[opt] table headers
-- @treturn string body
-- @treturn number status
-- @treturn table response headers (lower-case names)
-- @usage local body, status = devserver.http("GET", srv.url .. "/_aigc/stats")
function M.http (method, url, body, headers)
  local out = {}
  local h = {}
  for k, v in pairs(headers or {}) do h[k:lower()] = v end
  if body or method == "POST" then
    body = body or ""
    h["content-length"] = tostring(#body)
    h["content-type"] = h["content-type"] or "application/json"
  end
  local saved = http.TIMEOUT
  http.TIMEOUT = 10
  local ok, status, rh = http.request {
    url = url, method = method, headers = h, sink = ltn12.sink.table(out),
    source = body and ltn12.source.string(body) or nil,
  }
  http.TIMEOUT = saved
  if not ok then error("devserver http " .. method .. " " .. url .. ": " .. tostring(status), 2) end
  return table.concat(out), status, rh
end

local Server = {}
Server.__index = Server

local function control (self, method, path)
  local body, status = M.http(method, self.url .. path)
  if status ~= 200 then error(("devserver %s %s: HTTP %s: %s"):format(method, path, status, body), 3) end
  return cjson.decode(body)
end

--- Counters: requests_total, open_now, max_open, connections_total,
-- connections_open, max_connections_open, client_closed_total,
-- idle_closed_total, rate_limited_total, timers_active, jobs_active,
-- jobs_waiting (see the devserver header, CONTROL).
-- @treturn table
-- @usage assert.equal(1, srv:stats().connections_total)
function Server:stats () return control(self, "GET", "/_aigc/stats") end

--- Zero the counters, forget recorded requests and `times` fault counters.
-- @usage srv:reset()
function Server:reset () return control(self, "POST", "/_aigc/reset") end

--- The last 200 API requests, oldest first (see the devserver header for the fields).
-- @treturn table
-- @usage for _, r in ipairs(srv:requests()) do print(r.path) end
function Server:requests () return control(self, "GET", "/_aigc/requests") end

--- The JSON bodies of the recorded requests to `path`, oldest first.
-- @tparam string path e.g. "/v1/responses"
-- @treturn table
-- @usage local sent = srv:bodies("/v1/responses"); assert.is_nil(sent[1].previous_response_id)
function Server:bodies (path)
  local out = {}
  for _, r in ipairs(self:requests()) do
    if r.path == path then out[#out + 1] = r.body_json end
  end
  return out
end

--- The last API request (or cjson.null when there is none).
-- @treturn table
-- @usage assert.equal("Bearer", srv:last().authorization_prefix)
function Server:last () return control(self, "GET", "/_aigc/last") end

--- Turns `client`'s loop until the server has read `count` requests since
-- its last reset, then waits (without turning it) until it has written
-- every response whole: the replies are in the sockets, and the client's
-- next step may take them all in. Raises after 60 s (a guard, not a measure).
-- @tparam table client an aigc client (or anything with `step`)
-- @tparam integer count
-- @usage srv:wait_written(client, 1); client:step(0)   -- this step delivers the reply
function Server:wait_written (client, count)
  local deadline = socket.gettime() + 60
  while self:stats().requests_total < count do
    client:step(0.01)
    assert(socket.gettime() < deadline, "the server did not get the requests")
  end
  while self:stats().open_now > 0 do
    socket.sleep(0.01)
    assert(socket.gettime() < deadline, "the server did not write its responses")
  end
end

--- The server's stderr so far (its log when started with `quiet = false`).
-- @treturn string
-- @usage print(srv:log())
function Server:log () return self.err_file and read_file(self.err_file) or "" end

--- Stop the server (SIGTERM, then SIGKILL after 5 s) and wait until it is gone.
-- Idempotent; a no-op for servers attached with `connect`.
-- @usage srv:stop()
function Server:stop ()
  if self.stopped or not self.pid then self.stopped = true; return end
  self.stopped = true
  proc.stop(self.pid)
  if self.port_file then os.remove(self.port_file) end
  if self.err_file then os.remove(self.err_file) end
  if self.key_file then os.remove(self.key_file) end
end

Server.__close = Server.stop
Server.__gc = Server.stop

-- package.searchpath (Lua 5.1 has none; LuaJIT and 5.2+ do).
local function searchpath (name, path)
  local native = rawget(package, "searchpath")
  if native then return native(name, path) end
  local file = name:gsub("%.", "/")
  for template in path:gmatch("[^;]+") do
    local candidate = template:gsub("%?", file)
    local f = io.open(candidate, "r")
    if f then f:close(); return candidate end
  end
  return nil
end

--- Start a server in a separate process on a free port.
-- Options: `pause_ms`, `api_key`, `batch_delay_ms` (a batch's time per line, --batch-delay-ms),
-- `quiet` (default true), `args` (extra
-- command-line arguments: `{ "--rate-limit", "60", "--tokenizer", "words2" }`...),
-- `exit_after` (seconds, default 3600), `lua`
-- (interpreter, default $LUA or "lua5.4"), `timeout` (seconds to wait, 10).
-- @tparam[opt] table opts
-- @treturn table server with `port`, `base_url`, `url`, `pid`, `stop`, `stats`,
-- `reset`, `requests`, `last`, `log`
-- @usage local srv = devserver.start { pause_ms = 5 }; ...; srv:stop()
function M.start (opts)
  opts = opts or {}
  local script = searchpath("aigc.devserver", package.path)
    or assert(io.open("lua/aigc/devserver.lua") and "lua/aigc/devserver.lua", "devserver.lua not found")
  local port_file = os.tmpname()
  local err_file = os.tmpname()
  os.remove(port_file)
  local argv = { opts.lua or os.getenv("LUA") or "lua5.4", script, "--port", "0", "--port-file", port_file,
                 "--exit-after", opts.exit_after or 3600 }
  if opts.quiet ~= false then argv[#argv + 1] = "--quiet" end
  if opts.pause_ms then argv[#argv + 1] = "--pause-ms"; argv[#argv + 1] = opts.pause_ms end
  -- (the key in a file, not on the command line, where any `ps` shows it;
  -- os.tmpname makes the file 0600; removed once the server has read it)
  local key_file
  if opts.api_key then
    key_file = os.tmpname()
    local f = assert(io.open(key_file, "wb"))
    f:write(opts.api_key, "\n")
    f:close()
    argv[#argv + 1] = "--api-key-file"; argv[#argv + 1] = key_file
  end
  -- (ignored, a spec passing it ran its batches at the server's default pace)
  if opts.batch_delay_ms then argv[#argv + 1] = "--batch-delay-ms"; argv[#argv + 1] = opts.batch_delay_ms end
  for _, a in ipairs(opts.args or {}) do argv[#argv + 1] = a end
  local quoted = {}
  for i, a in ipairs(argv) do quoted[i] = shell_quote(a) end
  -- $PPID in this shell is the Lua process running the tests.
  local cmd = table.concat(quoted, " ") .. " --parent-pid $PPID </dev/null >/dev/null 2>" .. shell_quote(err_file)
    .. " & echo $!"
  local p = assert(io.popen(cmd, "r"))
  local pid = tonumber(p:read("*a"):match("%d+"))
  p:close()
  if not pid then error("devserver: could not start: " .. cmd) end
  local self = setmetatable({ pid = pid, port_file = port_file, err_file = err_file, key_file = key_file }, Server)
  local deadline = socket.gettime() + (opts.timeout or 10)
  while true do
    local s = read_file(port_file)
    local port = s and tonumber(s:match("^(%d+)\n"))
    if port then
      self.port = port
      if key_file then os.remove(key_file); self.key_file = nil end
      break
    end
    if not alive(pid) or socket.gettime() > deadline then
      local log = read_file(err_file) or ""
      self:stop()
      error("devserver did not start (" .. (alive(pid) and "timeout" or "exited") .. "): " .. log, 2)
    end
    socket.sleep(0.01)
  end
  self.url = "http://127.0.0.1:" .. self.port
  self.base_url = self.url .. "/v1"
  return self
end

--- How many requests the server `srv` got for `method` `path` (exactly:
-- "POST", "/v1/batches": the batches it was asked to make).
-- @treturn integer
function M.count (srv, method, path)
  local n = 0
  for _, r in ipairs(srv:requests()) do
    if r.method == method and r.path == path then n = n + 1 end
  end
  return n
end

--- Waits until the server has answered `n` polls of one batch (GET
-- /v1/batches/ID) and returns its ID: the batch's first answer, with the
-- id, has reached the client (a run to stop with Ctrl-C, say). Raises past
-- `deadline` (socket.gettime()'s clock).
-- @usage local id = devserver.batch_polled(srv, 2, socket.gettime() + 30)
function M.batch_polled (srv, n, deadline)
  while true do
    local id, polls = nil, 0
    for _, r in ipairs(srv:requests()) do
      local got = r.method == "GET" and r.path:match("^/v1/batches/([^/]+)$")
      if got then id, polls = got, polls + 1 end
    end
    if polls >= n then return id end
    assert(socket.gettime() < deadline, "the batch was polled " .. polls .. " times, not " .. n)
    socket.sleep(0.05)
  end
end

--- Registers the usual busted fixture in the enclosing `describe`: one
-- server for the block (started in setup, stopped in teardown), and before
-- each test the server's counters reset and a fresh client (closed after
-- it). `assign(srv, client)` receives both, to keep them in the spec's locals.
-- busted's block functions live in the spec file's environment, so the
-- spec passes it (`_ENV`).
-- @tparam table env the spec's _ENV (setup, teardown, before_each, after_each); nil on Lua 5.1
-- @tparam function assign
-- @tparam[opt] table client_opts merged over `{ base_url = srv.base_url, max_retries = 0 }`
-- @tparam[opt] function make what to make of those options (default `aigc.client`)
-- @tparam[opt] table server_opts the server's (`M.start`'s options)
-- @usage
-- local srv, client
-- devserver.fixture(_ENV, function (s, c) srv, client = s, c end)
function M.fixture (env, assign, client_opts, make, server_opts)
  -- (Lua 5.1 has no _ENV: the spec passes nil, and its environment is the caller's)
  env = env or rawget(_G, "getfenv")(2)
  make = make or require("aigc").client
  local setup, teardown, before_each, after_each = env.setup, env.teardown, env.before_each, env.after_each
  local srv, client
  setup(function ()
    srv = M.start(server_opts)
    assign(srv, nil)
  end)
  teardown(function () srv:stop() end)
  before_each(function ()
    srv:reset()
    local opts = { base_url = srv.base_url, max_retries = 0 }
    for k, v in pairs(client_opts or {}) do opts[k] = v end
    client = make(opts)
    assign(srv, client)
  end)
  after_each(function () client:close() end)
end

--- The same fixture with the C core's engine in place of a client (the
-- specs of `engine:submit` and the request object): `assign(srv, engine)`.
-- @usage devserver.engine_fixture(_ENV, function (s, e) srv, engine = s, e end)
function M.engine_fixture (env, assign, engine_opts)
  env = env or rawget(_G, "getfenv")(2)
  M.fixture(env, assign, engine_opts, require("aigc.core").engine)
end

--- Chat params of one user message "Hi": `fault` (the server's fault
-- grammar, lua/aigc/devserver.lua) in the x-aigc-fault header, `extra`'s
-- fields merged in; `model` set when given (the engine has no default).
-- @usage client:chat_async(devserver.params("delay=300", { on_done = f }))
function M.params (fault, extra, model)
  local p = { model = model, messages = { { role = "user", content = "Hi" } } }
  if fault then p.headers = { ["x-aigc-fault"] = fault } end
  for k, v in pairs(extra or {}) do p[k] = v end
  return p
end

--- `params` with `spec` (the server's fault grammar) in its x-aigc-fault
-- header (a table of headers replaced); `params` returned.
-- @usage client:respond(devserver.fault_params("error-event", { input = "Hi" }))
function M.fault_params (spec, params)
  params.headers = { ["x-aigc-fault"] = spec }
  return params
end

--- Attach to a server that is already running (e.g. `make server`).
-- @tparam string base_url like "http://127.0.0.1:8089/v1"
-- @treturn table the same object as `start` returns; `stop` does nothing
-- @usage local srv = devserver.connect(devserver.running_url())
function M.connect (base_url)
  local root = base_url:gsub("/+$", ""):gsub("/v1$", "")
  return setmetatable({ url = root, base_url = root .. "/v1", port = tonumber(root:match(":(%d+)$")) }, Server)
end

--- The base URL of an externally started server, from $AIGC_TEST_BASE_URL.
-- @treturn string|nil
-- @usage local url = devserver.running_url() or devserver.start().base_url
function M.running_url ()
  local u = os.getenv("AIGC_TEST_BASE_URL")
  if u and u ~= "" then return u end
  return nil
end

return M
