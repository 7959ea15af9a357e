--- The client: one connection pool (a libcurl multi engine) and its defaults.
--
-- Every call is "submit a request to the engine, then wait for it". Waiting
-- blocks, except inside a task started with `client:spawn`, where it yields
-- to the loop that calls `client:step()`; the same request object serves
-- `chat_async` users in a frame loop.
--
-- @classmod aigc.client

local core = require "aigc.core"

local engine_new = core.engine
local null = core.null
local now = core.now
local coroutine_create, coroutine_resume = coroutine.create, coroutine.resume
local coroutine_running, coroutine_status = coroutine.running, coroutine.status
local coroutine_yield = coroutine.yield
local error, getenv, pairs, ipairs, next = error, os.getenv, pairs, ipairs, next
local getmetatable, setmetatable, tostring, type = getmetatable, setmetatable, tostring, type
local string_format = string.format
local table_concat, table_remove, table_sort = table.concat, table.remove, table.sort

local M = {}

local Client = {}
Client.__index = Client
Client.__name = "aigc.client"

local DEFAULT_BASE_URL = "https://api.openai.com/v1"
local DEFAULT_PATH = { chat = "/chat/completions", completion = "/completions" }
local USER_AGENT = string_format("aigc/%s %s libcurl/%s", core._VERSION,
                                 _VERSION:gsub(" ", "/"), core.curl_version)

-- Options aigc.client accepts; anything else is a typo worth reporting.
local KNOWN_OPTIONS = {
  base_url = "string", api_key = "string", model = "string",
  organization = "string", project = "string",
  timeout = "number", connect_timeout = "number", deadline = "number", max_retries = "number",
  max_concurrency = "number", max_response_bytes = "number",
  headers = "table", query = "table", idempotency = "boolean",
  ca_file = "string", ca_path = "string", proxy = "string", insecure = "boolean",
  log = "function", log_bodies = "boolean", error_handler = "function",
  azure = "boolean", provider = "string", endpoint = "string",
  api_version = "string", azure_ad_token = "string",
}

local function is_error (v)
  return type(v) == "table" and getmetatable(v) == core.error_mt
end

local function argerror (fname, msg, level)
  error(string_format("bad argument #1 to '%s' (%s)", fname, msg), level + 1)
end

--- The type name of v for messages: its metatable's __name, else type(v).
local function typename (v)
  local mt = getmetatable(v)
  if type(mt) == "table" and type(rawget(mt, "__name")) == "string" then return mt.__name end
  return type(v)
end

--- Raises, as luaL_checkudata would, unless `self` is a client: a method
-- called with `.` instead of `:`, or on another object.
local function check_client (self, fname)
  if type(self) ~= "table" or type(rawget(self, "_engine")) ~= "userdata" then
    error(string_format("calling '%s' on bad self (aigc.client expected, got %s)", fname, typename(self)), 3)
  end
end

--- An environment variable, with "" meaning unset.
local function env (name)
  local v = getenv(name)
  if v == "" then return nil end
  return v
end

--- Refuses CR, LF and NUL in header names and values: no header injection.
local function check_header (name, value, fname)
  if type(name) ~= "string" or name == "" or name:find("[%c%s:\128-\255]") then
    argerror(fname, "invalid header name " .. (string_format("%q", tostring(name)):gsub("\\\n", "\\n")), 3)
  end
  if type(value) == "number" then value = tostring(value) end
  if type(value) ~= "string" then
    argerror(fname, "header '" .. name .. "' must be a string or aigc.null, got " .. type(value), 3)
  end
  if value:find("[\r\n%z]") then
    argerror(fname, "header '" .. name .. "' contains CR, LF or NUL (refused: header injection)", 3)
  end
  return value
end

local function urlencode (s)
  return (tostring(s):gsub("[^%w%-%._~]", function (c)
    return string_format("%%%02X", c:byte())
  end))
end

local function encode_query (map)
  local keys = {}
  for k in pairs(map) do keys[#keys + 1] = k end
  table_sort(keys)
  local parts = {}
  for i, k in ipairs(keys) do
    parts[i] = urlencode(k) .. "=" .. urlencode(map[k])
  end
  return table_concat(parts, "&")
end

local function check_query (q, fname)
  if type(q) ~= "table" then argerror(fname, "query must be a table", 3) end
  for k, v in pairs(q) do
    if type(k) ~= "string" then argerror(fname, "query keys must be strings", 3) end
    if v ~= null and type(v) ~= "string" and type(v) ~= "number" and type(v) ~= "boolean" then
      argerror(fname, "query value '" .. k .. "' must be a string, number, boolean or aigc.null", 3)
    end
  end
end

local function random_key ()
  return string_format("aigc-%08x%08x%08x%08x", math.random(0, 0x7fffffff), math.random(0, 0x7fffffff),
                       math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
end

local insecure_warned = false

--- Creates a client.
-- @tparam[opt] table opts every field optional:
--
--  - `base_url`: default `$OPENAI_BASE_URL`, else `https://api.openai.com/v1`
--  - `api_key`: default `$OPENAI_API_KEY` (none: no Authorization header)
--  - `model`: the model for calls that name none
--  - `organization`, `project`: default `$OPENAI_ORG_ID`, `$OPENAI_PROJECT_ID`
--  - `timeout` (600 s, per attempt: the whole attempt, or for a stream the
--    longest wait for the next byte), `connect_timeout` (5 s, per attempt),
--    `deadline` (none: seconds for the whole call, retries and waits included),
--    `max_retries` (2)
--  - `max_concurrency` (0: unlimited), `max_response_bytes` (64 MiB)
--  - `headers`, `query`: sent with every request (`aigc.null` removes a default)
--  - `idempotency`: send an `Idempotency-Key`, the same on every retry of a call
--  - `ca_file`, `ca_path`, `proxy`, `insecure` (no TLS verification; warns once)
--  - `log = function(level, message)`, `error_handler = function(err)`
--  - Azure OpenAI: `azure = true`, `endpoint` (`$AZURE_OPENAI_ENDPOINT`),
--    `api_version` (`$OPENAI_API_VERSION`), `api_key` (`$AZURE_OPENAI_API_KEY`)
--    or `azure_ad_token`; `model` names the deployment.
-- @treturn aigc.client
-- @usage
-- local client = aigc.client { base_url = "http://127.0.0.1:8089/v1", model = "aigc-dev" }
function M.new (opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    argerror("client", "table expected, got " .. type(opts), 3)
  end
  for k, v in pairs(opts) do
    local want = KNOWN_OPTIONS[k]
    if want == nil then
      argerror("client", "unknown option '" .. tostring(k) .. "'", 3)
    end
    if type(v) ~= want then
      argerror("client", string_format("option '%s' must be a %s, got %s", k, want, type(v)), 3)
    end
  end

  local azure = opts.azure or opts.provider == "azure"
  if opts.provider ~= nil and opts.provider ~= "azure" and opts.provider ~= "openai" then
    argerror("client", "provider must be 'openai' or 'azure'", 3)
  end
  local base_url, api_key = opts.base_url, opts.api_key
  local query = {}
  if azure then
    local endpoint = opts.endpoint or env("AZURE_OPENAI_ENDPOINT")
    if base_url == nil then
      if endpoint == nil then
        argerror("client", "Azure needs endpoint (or $AZURE_OPENAI_ENDPOINT) or base_url", 3)
      end
      base_url = endpoint:gsub("/+$", "") .. "/openai"
    end
    if api_key == nil then api_key = env("AZURE_OPENAI_API_KEY") end
    local version = opts.api_version or env("OPENAI_API_VERSION")
    if version == nil then
      argerror("client", "Azure needs api_version (or $OPENAI_API_VERSION)", 3)
    end
    query["api-version"] = version
  else
    base_url = base_url or env("OPENAI_BASE_URL") or DEFAULT_BASE_URL
    if api_key == nil then api_key = env("OPENAI_API_KEY") end
  end
  if not base_url:lower():find("^https?://[^/]") then
    argerror("client", "base_url must be an http:// or https:// URL", 3)
  end
  if base_url:find("[%c%s]") then
    argerror("client", "base_url contains a space or a control character (CR, LF, NUL...)", 3)
  end
  base_url = base_url:gsub("/+$", "")

  for _, field in ipairs { "timeout", "connect_timeout", "deadline" } do
    local v = opts[field]
    if v ~= nil and not (v > 0 and v < 1e9) then
      argerror("client", field .. " must be a number of seconds > 0", 3)
    end
  end
  for _, field in ipairs { "max_retries", "max_concurrency", "max_response_bytes" } do
    local v = opts[field]
    -- (1e300 and inf are floats with no integer value: refused, not defaulted)
    if v ~= nil and (math.tointeger(v) == nil or v < 0) then
      argerror("client", field .. " must be an integer >= 0", 3)
    end
  end
  if opts.max_response_bytes == 0 then
    argerror("client", "max_response_bytes must be > 0", 3)
  end

  -- Default headers, in order; names are merged case-insensitively.
  local names, lines = {}, {}
  local function set (name, value)
    value = check_header(name, value, "client")
    local key = name:lower()
    if lines[key] == nil then names[#names + 1] = key end
    lines[key] = name .. ": " .. value
  end
  set("Accept", "application/json")
  set("Content-Type", "application/json")
  set("User-Agent", USER_AGENT)
  if api_key ~= nil then
    if api_key:find("[\r\n%z]") then
      argerror("client", "api_key contains CR, LF or NUL", 3)
    end
    if azure then set("api-key", api_key) else set("Authorization", "Bearer " .. api_key) end
  end
  if azure and opts.azure_ad_token then set("Authorization", "Bearer " .. opts.azure_ad_token) end
  local org = opts.organization or (not azure and env("OPENAI_ORG_ID")) or nil
  local project = opts.project or (not azure and env("OPENAI_PROJECT_ID")) or nil
  if org then set("OpenAI-Organization", org) end
  if project then set("OpenAI-Project", project) end
  -- No "Expect: 100-continue" round trip before large bodies.
  lines.expect = "Expect:"
  names[#names + 1] = "expect"
  if opts.headers then
    for name, value in pairs(opts.headers) do
      if value == null then
        local key = tostring(name):lower()
        lines[key] = nil
      else
        set(name, value)
      end
    end
  end
  local header_list, stream_list = {}, {}
  for _, key in ipairs(names) do
    if lines[key] then
      header_list[#header_list + 1] = lines[key]
      stream_list[#stream_list + 1] = key == "accept" and "Accept: text/event-stream" or lines[key]
    end
  end
  if opts.query then
    check_query(opts.query, "client")
    for k, v in pairs(opts.query) do query[k] = v ~= null and v or nil end
  end

  if opts.insecure and not insecure_warned then
    insecure_warned = true
    io.stderr:write("aigc: warning: insecure = true: TLS certificates and host names are NOT verified\n")
  end

  local engine = engine_new {
    base_url = base_url,
    query = next(query) and encode_query(query) or nil,
    model = opts.model,
    secret = api_key or opts.azure_ad_token,
    headers = header_list,
    stream_headers = stream_list,
    timeout = opts.timeout,
    connect_timeout = opts.connect_timeout,
    deadline = opts.deadline,
    max_retries = opts.max_retries and math.tointeger(opts.max_retries),
    max_concurrency = opts.max_concurrency and math.tointeger(opts.max_concurrency),
    max_response_bytes = opts.max_response_bytes and math.tointeger(opts.max_response_bytes),
    ca_file = opts.ca_file, ca_path = opts.ca_path, proxy = opts.proxy,
    insecure = opts.insecure, log = opts.log, log_bodies = opts.log_bodies,
    error_handler = opts.error_handler,
  }

  return setmetatable({
    _engine = engine,
    _azure = azure or nil,
    _hnames = names,
    _hlines = lines,
    _query = query,
    _idempotency = opts.idempotency or nil,
    _sleepers = {},
    --- The base URL requests go to (read-only).
    base_url = base_url,
    --- The default model (read-only).
    model = opts.model,
  }, Client)
end


-- {======================================================
-- Submitting
-- =======================================================

--- The per-call options the C core cannot know: merged headers and query,
-- Azure's deployment paths.
local function call_opts (self, kind, params, path)
  local opts = { path = path }
  if self._azure and (kind == "chat" or kind == "completion" or path == "/embeddings") then
    local model = params.model or params.engine or self.model
    if type(model) ~= "string" then
      argerror(kind, "Azure OpenAI needs a model: the deployment name", 4)
    end
    opts.path = "/deployments/" .. urlencode(model) .. (path or DEFAULT_PATH[kind])
  end
  local h1, h2 = params.headers, params.extra_headers
  if h1 ~= nil or h2 ~= nil or params.idempotency_key ~= nil or self._idempotency then
    local lines, names = {}, self._hnames
    for k, v in pairs(self._hlines) do lines[k] = v end
    local extra = {}
    for _, h in ipairs { h1 or false, h2 or false } do
      if h then
        if type(h) ~= "table" then argerror(kind, "params.headers must be a table", 4) end
        for name, value in pairs(h) do
          local key = tostring(name):lower()
          if value == null then
            lines[key] = nil
          else
            if lines[key] == nil and self._hlines[key] == nil then extra[#extra + 1] = key end
            lines[key] = name .. ": " .. check_header(name, value, kind)
          end
        end
      end
    end
    local key = params.idempotency_key
    if key ~= nil or self._idempotency then
      if key ~= nil and type(key) ~= "string" then
        argerror(kind, "params.idempotency_key must be a string", 4)
      end
      if lines["idempotency-key"] == nil then extra[#extra + 1] = "idempotency-key" end
      lines["idempotency-key"] = "Idempotency-Key: " .. check_header("Idempotency-Key", key or random_key(), kind)
    end
    if params.stream and lines.accept == self._hlines.accept then
      lines.accept = "Accept: text/event-stream"
    end
    local list = {}
    for _, k in ipairs(names) do list[#list + 1] = lines[k] end
    for _, k in ipairs(extra) do list[#list + 1] = lines[k] end
    opts.headers = list
  end
  local q1, q2 = params.query, params.extra_query
  if q1 ~= nil or q2 ~= nil then
    local merged = {}
    for k, v in pairs(self._query) do merged[k] = v end
    for _, q in ipairs { q1 or false, q2 or false } do
      if q then
        check_query(q, kind)
        for k, v in pairs(q) do
          if v == null then merged[k] = nil else merged[k] = v end
        end
      end
    end
    opts.query = encode_query(merged)
  end
  return opts
end

local function submit (self, kind, params, path)
  local opts
  if self._azure or self._idempotency
     or (params ~= nil and (params.headers ~= nil or params.query ~= nil or params.extra_headers ~= nil
                            or params.extra_query ~= nil or params.idempotency_key ~= nil)) then
    opts = call_opts(self, kind, params or {}, path)
  elseif path ~= nil then
    opts = { path = path }
  end
  -- A per-call `deadline` goes to the core in opts, and not in the JSON
  -- body (until the encoder knows it as a control key: notes/requests.md).
  if params ~= nil and params.deadline ~= nil then
    local copy = {}
    for k, v in pairs(params) do copy[k] = v end
    opts = opts or {}
    opts.deadline, copy.deadline = params.deadline, nil
    params = copy
  end
  return self._engine:submit(kind, params, opts)
end

local function chat_params (params, fname)
  local t = type(params)
  if t == "string" then
    return { messages = { { role = "user", content = params } } }
  end
  if t ~= "table" then
    argerror(fname, "table or string expected, got " .. t, 3)
  end
  if type(params.messages) ~= "table" then
    argerror(fname, "params.messages must be a list of messages", 3)
  end
  return params
end

local function completion_params (params, fname)
  local t = type(params)
  if t == "string" then
    return { prompt = params }
  end
  if t ~= "table" then
    argerror(fname, "table or string expected, got " .. t, 3)
  end
  local pt = type(params.prompt)
  if pt ~= "string" and pt ~= "table" then
    argerror(fname, "params.prompt must be a string or a list, got " .. pt, 3)
  end
  return params
end

-- }======================================================


-- {======================================================
-- Tasks: coroutines in which waiting yields to the step() loop
-- =======================================================

-- coroutine -> the client that spawned it (weak keys: a task nobody can
-- resume any more is garbage).
local tasks = setmetatable({}, { __mode = "k" })
local AWAIT = setmetatable({}, { __name = "aigc.await" })   -- our yield token

local function task_error (co, err)
  if is_error(err) then return err end
  return core.error {
    kind = "callback",
    message = "error in a task started with client:spawn: " .. tostring(err),
    traceback = debug.traceback(co, tostring(err)),
  }
end

--- Resumes a task; reports its error if it fails. Never raises.
local function resume_task (self, co, ...)
  local ok, v = coroutine_resume(co, ...)
  if not ok then
    tasks[co] = nil
    self._engine:report(task_error(co, v))
  elseif coroutine_status(co) == "dead" then
    tasks[co] = nil
  elseif v ~= AWAIT then
    tasks[co] = nil
    self._engine:report(core.error {
      kind = "callback",
      message = "a task started with client:spawn yielded outside aigc (its own coroutine.yield); "
             .. "it is abandoned",
    })
  end
end

--- Waits for a request: yields inside a task of this client, blocks elsewhere.
-- `req` may be any object with the aigc.request interface that await uses:
-- status(), result(), wait() and _notify(fn) (the dialogue layer's requests
-- are such objects).
local function await (self, req)
  local co = coroutine_running()
  if tasks[co] ~= self then
    return req:wait()
  end
  local status = req:status()
  if status == "queued" or status == "running" then
    req:_notify(function () resume_task(self, co) end)
    coroutine_yield(AWAIT)
  end
  return req:result()
end

-- req:wait() inside a task yields too (the C wait blocks). With a timeout
-- it blocks, in a task as elsewhere: a task that must not block waits
-- without one (or polls req:status() between client:sleep calls).
local request_methods = core.request_methods
local c_wait = request_methods.wait
core.request_methods.wait = function (req, timeout)
  local mt = type(req) == "userdata" and getmetatable(req)
  if not mt or mt.__index ~= request_methods then
    error(string_format("calling 'wait' on bad self (aigc.request expected, got %s)", typename(req)), 2)
  end
  if timeout ~= nil then
    local t = tonumber(timeout)
    if t == nil then
      error(string_format("bad argument #1 to 'wait' (number expected, got %s)", typename(timeout)), 2)
    elseif t ~= t or t < 0 then   -- (NaN too)
      error("bad argument #1 to 'wait' (timeout must be a number >= 0)", 2)
    end
  end
  local co = coroutine_running()
  local client = tasks[co]
  if client == nil or timeout ~= nil or client._engine ~= req:_engine() then
    return c_wait(req, timeout)
  end
  local status = req:status()
  if status == "queued" or status == "running" then
    req:_notify(function () resume_task(client, co) end)
    coroutine_yield(AWAIT)
  end
  return req:result()
end

--- Runs `fn(...)` as a task: inside it, `client:chat`, `client:complete`,
-- `req:wait()` and `client:sleep` yield to the loop instead of blocking, and
-- `client:step()` resumes it when what it waits for is ready. It starts
-- running at once, until its first wait. An error in the task goes to the
-- client's `error_handler` (else stderr and `step()`'s second result).
-- @tparam function fn
-- @param ... arguments for fn
-- @treturn thread the task's coroutine
-- @usage
-- client:spawn(function ()
--   local a = client:chat "first"      -- yields
--   local b = client:chat "second"     -- runs after the first, without blocking the loop
-- end)
-- while client:step(0.01) > 0 do end
function Client:spawn (fn, ...)
  check_client(self, "spawn")
  if type(fn) ~= "function" then
    argerror("spawn", "function expected, got " .. type(fn), 2)
  end
  self._engine:active()   -- raises on a closed client
  local co = coroutine_create(fn)
  tasks[co] = self
  resume_task(self, co, ...)
  return co
end

--- Sleeps for `seconds`: inside a task it yields (other work goes on);
-- elsewhere it drives the engine meanwhile.
-- @tparam number seconds
-- @usage client:spawn(function () while true do npc:think(); client:sleep(2) end end)
function Client:sleep (seconds)
  check_client(self, "sleep")
  if type(seconds) ~= "number" or seconds ~= seconds or seconds < 0 then
    argerror("sleep", "seconds must be a number >= 0", 2)
  end
  self._engine:active()   -- raises on a closed client, as every method does
  local co = coroutine_running()
  if tasks[co] == self then
    local sleepers = self._sleepers
    sleepers[#sleepers + 1] = { at = now() + seconds, co = co }
    coroutine_yield(AWAIT)
    return
  end
  local deadline = now() + seconds
  local engine = self._engine
  while true do
    local left = deadline - now()
    if left <= 0 then return end
    engine:step(left)
  end
end

local function wake_sleepers (self)
  local sleepers, t = self._sleepers, now()
  local i = 1
  while i <= #sleepers do
    local s = sleepers[i]
    if s.at <= t then
      table_remove(sleepers, i)
      resume_task(self, s.co)
    else
      i = i + 1
    end
  end
end

-- }======================================================


-- {======================================================
-- Calls
-- =======================================================

-- Params that need the dialogue layer above a single request: a toolset
-- (the tool-call loop) or a schema (structured output, validated). That
-- layer (lua/aigc/dialogue.lua) loads only when first needed.
local function layered (params)
  if params.schema ~= nil then return true end
  local mt = getmetatable(params.tools)
  return mt ~= nil and type(mt) == "table" and mt.__name == "aigc.toolset"
end

--- Chat completion.
-- `params` is the request body as a table (unknown fields pass through),
-- plus per-call options that are not sent: `stream` (a function receiving
-- `(delta, chunk)`, or `true`), `on_done`, `on_error`, `timeout`,
-- `connect_timeout`, `deadline`, `max_retries`, `max_response_bytes`, `headers`, `query`,
-- `idempotency_key`, and `engine` (an old name for `model`).
-- A string is shorthand for one user message.
-- @tparam table|string params
-- @treturn[1] table the response, with `text` (the first choice's content),
-- `request_id`, `headers` and `retries` added
-- @treturn[2] nil
-- @treturn[2] aigc.error err
-- @usage
-- local res, err = client:chat { messages = { { role = "user", content = "Hi" } }, temperature = 0.7 }
-- if not res then print(err.kind, err.message) else print(res.text) end
function Client:chat (params)
  check_client(self, "chat")
  params = chat_params(params, "chat")
  if layered(params) then return require("aigc.dialogue").chat(self, params) end
  return await(self, submit(self, "chat", params))
end

--- Legacy text completion (`POST /completions`). A string is the prompt.
-- @tparam table|string params
-- @treturn[1] table the response (`res.choices[1].text`, `res.text`)
-- @treturn[2] nil
-- @treturn[2] aigc.error err
-- @usage
-- local res = client:complete { prompt = "What is the capital of France?", max_tokens = 10 }
-- print(res.choices[1].text)
function Client:complete (params)
  check_client(self, "complete")
  params = completion_params(params, "complete")
  return await(self, submit(self, "completion", params))
end

--- Starts a chat request without waiting: returns an `aigc.request`
-- (`status`, `result`, `wait`, `cancel`). Callbacks `stream`, `on_done(res)`
-- and `on_error(err)` run from `client:step()` (or any blocking call).
-- @tparam table|string params
-- @treturn aigc.request
-- @usage
-- local req = client:chat_async { messages = msgs, stream = function (d) io.write(d or "") end }
-- while req:status() == "running" or req:status() == "queued" do client:step(0.016) end
function Client:chat_async (params)
  check_client(self, "chat_async")
  params = chat_params(params, "chat_async")
  if layered(params) then return require("aigc.dialogue").chat_async(self, params) end
  return submit(self, "chat", params)
end

--- Starts a completion request without waiting; see `chat_async`.
-- @tparam table|string params
-- @treturn aigc.request
-- @usage local req = client:complete_async { prompt = "Once upon a time", max_tokens = 30 }
function Client:complete_async (params)
  check_client(self, "complete_async")
  params = completion_params(params, "complete_async")
  return submit(self, "completion", params)
end

--- Lists the models (`GET /models`).
-- @treturn[1] table the response (`res.data` is the list)
-- @treturn[2] nil
-- @treturn[2] aigc.error err
-- @usage for _, m in ipairs(assert(client:models()).data) do print(m.id) end
function Client:models ()
  check_client(self, "models")
  return await(self, submit(self, "get", nil, "/models"))
end

--- Embeddings (`POST /embeddings`).
-- @tparam table params `input`, `model`, ... as in the API
-- @treturn[1] table the response
-- @treturn[2] nil
-- @treturn[2] aigc.error err
-- @usage local res = client:embeddings { input = "hello", model = "text-embedding-3-small" }
function Client:embeddings (params)
  check_client(self, "embeddings")
  if type(params) ~= "table" then
    argerror("embeddings", "table expected, got " .. type(params), 2)
  end
  return await(self, submit(self, "json", params, "/embeddings"))
end

--- Any other endpoint: `client:request("POST", "/images/generations", body)`
-- or `client:request("GET", "/models/gpt-4o")`. The reply is the decoded JSON.
-- @tparam string method "GET" or "POST"
-- @tparam string path appended to base_url
-- @tparam[opt] table body for POST
-- @treturn[1] table the decoded response
-- @treturn[2] nil
-- @treturn[2] aigc.error err
-- @usage local img = assert(client:request("POST", "/images/generations", { prompt = "a robot painting" }))
function Client:request (method, path, body)
  check_client(self, "request")
  if method ~= "GET" and method ~= "POST" then
    argerror("request", "method must be 'GET' or 'POST'", 2)
  end
  if type(path) ~= "string" then
    error("bad argument #2 to 'request' (path must be a string)", 2)
  end
  if path:find("[%c%s]") then
    error("bad argument #2 to 'request' (path contains a space or a control character: percent-encode it)", 2)
  end
  if method == "GET" then
    return await(self, submit(self, "get", nil, path))
  end
  if type(body) ~= "table" then
    error("bad argument #3 to 'request' (table expected for POST)", 2)
  end
  return await(self, submit(self, "json", body, path))
end

-- }======================================================


-- {======================================================
-- The iterator form of streaming
-- =======================================================

local Stream = {}
Stream.__index = Stream
Stream.__name = "aigc.stream"

local function stream_wake (s)
  local co = s._waiting
  if co then
    s._waiting = nil
    resume_task(s._client, co)
  end
end

--- Streams a chat (or, with `prompt` and no `messages`, a completion) as an
-- iterator: `for delta, chunk in client:stream{...} do ... end`. Each step
-- gives the chunk's text delta ("" when a chunk carries no text) and the
-- decoded chunk. A failure raises the error object from the loop (as the
-- official SDKs' iterators do); breaking out of the loop cancels the request.
-- Keep the object to read the accumulated result after the loop.
-- @tparam table|string params
-- @treturn aigc.stream iterable; `s:result()` gives `res` or `nil, err` at the end
-- @usage
-- local s = client:stream { messages = msgs }
-- for delta in s do io.write(delta) end
-- print(s:result().usage.total_tokens)
function Client:stream (params)
  check_client(self, "stream")
  local kind = "chat"
  if type(params) == "table" and params.messages == nil and params.prompt ~= nil then
    kind = "completion"
    params = completion_params(params, "stream")
  else
    params = chat_params(params, "stream")
  end
  if layered(params) then
    -- The iterator streams one request; a toolset or a schema needs the
    -- dialogue layer's loop around several.
    argerror("stream", "a toolset or a schema needs client:chat { ..., stream = function (delta) end }", 2)
  end
  local s = setmetatable({ _client = self, _deltas = {}, _chunks = {}, _first = 1, _last = 0 }, Stream)
  local user_stream = params.stream
  if user_stream ~= nil and type(user_stream) ~= "function" and type(user_stream) ~= "boolean" then
    argerror("stream", "params.stream must be a function or a boolean", 2)
  end
  local p = {}
  for k, v in pairs(params) do p[k] = v end
  p.stream = function (delta, chunk)
    if type(user_stream) == "function" then user_stream(delta, chunk) end
    local last = s._last + 1
    s._deltas[last] = delta or ""
    s._chunks[last] = chunk
    s._last = last
    stream_wake(s)
  end
  s.request = submit(self, kind, p)
  s.request:_notify(function () stream_wake(s) end)
  return s, nil, nil, s
end

function Stream:__call ()
  local req = self.request
  while self._first > self._last do
    local status = req:status()
    if status == "done" then
      return nil
    elseif status == "failed" or status == "canceled" then
      local _, err = req:result()
      error(err, 0)
    end
    local co = coroutine_running()
    if tasks[co] == self._client then
      self._waiting = co
      coroutine_yield(AWAIT)
    else
      req:pump(1.0)
    end
  end
  local i = self._first
  local delta, chunk = self._deltas[i], self._chunks[i]
  self._deltas[i], self._chunks[i] = nil, nil
  self._first = i + 1
  return delta, chunk
end

--- The outcome once the loop ended: the accumulated response, or nil, err.
-- @treturn[1] table res
-- @treturn[2] nil
-- @treturn[2] aigc.error err
-- @usage for d in s do io.write(d) end; print(assert(s:result()).usage.total_tokens)
function Stream:result ()
  return self.request:result()
end

--- Cancels the stream.
-- @usage if player_left then s:cancel() end
function Stream:cancel ()
  return self.request:cancel()
end

function Stream:__close ()
  self.request:cancel("the stream was closed")
end

function Stream:__tostring ()
  return "aigc.stream (" .. self.request:status() .. ")"
end

-- }======================================================


-- {======================================================
-- Driving and lifecycle
-- =======================================================

--- Drives every request once: waits at most `timeout` seconds (default 0,
-- never blocks) for network activity, runs pending callbacks (at most
-- `budget` of them, default all) and resumes tasks whose wait is over.
-- @tparam[opt=0] number timeout seconds
-- @tparam[opt=0] integer budget the most callbacks to run (0: no limit)
-- @treturn integer what `active()` returns, after the step
-- @treturn[opt] table errors reported by callbacks and tasks during this step
-- @usage
-- function love.update(dt) client:step(0) end
function Client:step (timeout, budget)
  check_client(self, "step")
  local sleepers = self._sleepers
  local nsleep = #sleepers
  if nsleep > 0 and type(timeout) == "number" and timeout > 0 then
    local t, soonest = now(), math.huge
    for i = 1, nsleep do
      if sleepers[i].at < soonest then soonest = sleepers[i].at end
    end
    if soonest - t < timeout then timeout = soonest > t and soonest - t or 0 end
  end
  local n, errors = self._engine:step(timeout, budget)
  if #sleepers > 0 then   -- (tasks may have gone to sleep during the step)
    wake_sleepers(self)
    n = n + #sleepers
  end
  return n, errors
end

--- The number of requests queued or running, or ended with an `on_done`,
-- `on_error` or waiting task still to run, plus sleeping tasks: the count
-- `step()` and `act()` return too.
-- @treturn integer
-- @usage if client:active() == 0 then hide_spinner() end
function Client:active ()
  check_client(self, "active")
  return self._engine:active() + #self._sleepers
end

--- Closes the client: pending requests fail with kind "canceled", tasks
-- waiting on them are resumed, connections are closed. Idempotent.
-- @usage local client <close> = aigc.client()   -- or client:close() when done
function Client:close ()
  check_client(self, "close")
  self._engine:close()
end

Client.__close = Client.close

--- For an external event loop (luv, cqueues, a game engine's poller):
-- `socket_fn(fd, what)` hears each socket to watch (`what` is "in", "out",
-- "inout" or "remove") and `timer_fn(seconds)` when to call `client:act()`
-- next (nil: no timer). Then call `client:act(fd, events)` when a socket is
-- ready (`events` contains "r" and/or "w") and `client:act()` when the timer
-- fires. See examples/luv_loop.lua.
-- @tparam function socket_fn
-- @tparam function timer_fn
-- @usage client:watch(function (fd, what) watch_fd(fd, what) end, function (s) set_timer(s) end)
function Client:watch (socket_fn, timer_fn)
  check_client(self, "watch")
  return self._engine:watch(socket_fn, timer_fn)
end

--- See `watch`. Returns what `active()` returns.
-- @tparam[opt] integer fd
-- @tparam[opt] string events
-- @treturn integer
-- @usage poll:start("r", function (_, ev) client:act(fd, ev) end)
function Client:act (fd, events)
  check_client(self, "act")
  return self._engine:act(fd, events) + #self._sleepers
end

--- The sockets libcurl waits on now: `{ [fd] = "in" | "out" | "inout" }`.
-- @treturn table
-- @usage for fd, what in pairs(client:sockets()) do print(fd, what) end
function Client:sockets ()
  check_client(self, "sockets")
  return self._engine:sockets()
end

--- Seconds until the engine next needs `act()` (or `step()`), or nil.
-- @treturn number|nil
-- @usage local s = client:timeout(); if s then timer:start(math.ceil(s * 1000), 0, on_timer) end
function Client:timeout ()
  check_client(self, "timeout")
  return self._engine:timeout()
end

function Client:__tostring ()
  return string_format("aigc.client (%s%s)", self.base_url,
                       self.model and (", model " .. self.model) or "")
end

-- }======================================================

M.Client = Client
M.is_error = is_error
-- For the layers above (aigc.dialogue): submit without the layer check, and
-- wait the way the client waits (yield in tasks, block elsewhere).
M.submit = submit
M.await = await
M.is_task_of = function (client) return tasks[coroutine_running()] == client end

return M
