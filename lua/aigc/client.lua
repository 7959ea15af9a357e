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
local coroutine_yield, coroutine_close = coroutine.yield, coroutine.close
local coroutine_isyieldable = coroutine.isyieldable
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
  max_json_values = "number", max_json_containers = "number",
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

-- engine -> its client (weak keys: an ephemeron, the client lives as long
-- as its engine), to find who drives a request that only knows its engine.
local client_of_engine = setmetatable({}, { __mode = "k" })
local set_scheduler   -- (c2 lane bridge, defined with the tasks)

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
  for _, field in ipairs { "max_retries", "max_concurrency", "max_response_bytes",
                           "max_json_values", "max_json_containers" } do
    local v = opts[field]
    -- (1e300 and inf are floats with no integer value: refused, not defaulted)
    if v ~= nil and (math.tointeger(v) == nil or v < 0) then
      argerror("client", field .. " must be an integer >= 0", 3)
    end
  end
  for _, field in ipairs { "max_response_bytes", "max_json_values", "max_json_containers" } do
    if opts[field] == 0 then argerror("client", field .. " must be > 0", 3) end
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
    secrets = { api_key, opts.azure_ad_token },   -- scrubbed from errors and logs
    max_json_values = opts.max_json_values and math.tointeger(opts.max_json_values),
    max_json_containers = opts.max_json_containers and math.tointeger(opts.max_json_containers),
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

  local client = setmetatable({
    _engine = engine,
    _azure = azure or nil,
    _hnames = names,
    _hlines = lines,
    _query = query,
    _idempotency = opts.idempotency or nil,
    _sleepers = {},      -- tasks in client:sleep: { at =, co = }
    _posted = {},        -- functions the next step() runs (deliveries "from the loop")
    _guests = {},        -- other clients this one's step() drives: client -> tasks waiting on them
    _guest_waits = 0,    -- tasks of this client waiting on another client's request
    _closables = setmetatable({}, { __mode = "k" }),   -- Lua-level requests canceled by close()
    --- The base URL requests go to (read-only).
    base_url = base_url,
    --- The default model (read-only).
    model = opts.model,
  }, Client)
  client_of_engine[engine] = client
  set_scheduler(engine)
  return client
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

-- coroutine -> functions to run if the task is abandoned (see on_abandon).
local abandon_hooks = setmetatable({}, { __mode = "k" })

local resume_task_ref   -- (resume_task, defined below)
local drive             -- (defined with the client's methods)

-- coroutine -> what it waits for now (a fresh table per wait): a waker
-- resumes the task only if it still waits for that, so that a waker that
-- outlived its wait can never resume the task in the middle of another.
local waiting_for = setmetatable({}, { __mode = "k" })

--- The client whose task is running, when the running code can yield to
-- that task's loop; nil elsewhere -- outside tasks, and also inside a task
-- in code called from C that cannot yield (a callback the engine runs, a
-- log hook): there, waits block as they do outside tasks.
local function current_owner ()
  local co, main = coroutine_running()
  if main then return nil end
  local owner = tasks[co]
  if owner == nil or (coroutine_isyieldable and not coroutine_isyieldable()) then return nil end
  return owner, co
end

--- Suspends the running task until `wake` (returned by `prepare_wait`)
-- is called; `prepare_wait` must come before whatever may call it.
local function prepare_wait (owner, co, on_wake)
  local token = {}
  waiting_for[co] = token
  return function ()
    if waiting_for[co] ~= token then return end
    waiting_for[co] = nil
    if on_wake then on_wake() end
    resume_task_ref(owner, co)
  end
end

local function task_error (co, err, what)
  if is_error(err) then return err end
  return core.error {
    kind = "callback",
    message = "error in " .. (what or "a task started with client:spawn") .. ": " .. tostring(err),
    traceback = debug.traceback(co, tostring(err)),
  }
end

-- A task that yields outside aigc (its own coroutine.yield) cannot be
-- resumed by anyone who knows what it waits for: it is abandoned, and
-- whatever it was doing must end. The hooks registered for it run (last
-- first): a dialogue request fails with the error (the hook returns true:
-- the error is delivered, not reported again), a conversation stops being
-- busy. Then the error is reported unless a hook delivered it.
local function abandon (self, co)
  tasks[co] = nil
  local err = core.error {
    kind = "callback",
    message = "a task yielded outside aigc (its own coroutine.yield, not an aigc wait): it is abandoned",
    traceback = debug.traceback(co),
  }
  local hooks = abandon_hooks[co]
  abandon_hooks[co] = nil
  if coroutine_close then coroutine_close(co) end   -- (5.4: nobody resumes it half-way later)
  local delivered = false
  for i = #(hooks or {}), 1, -1 do
    local ok, took = pcall(hooks[i], err)
    if not ok then self._engine:report(task_error(co, took, "a hook of an abandoned task"))
    elseif took then delivered = true end
  end
  if not delivered then self._engine:report(err) end
end

-- While a task of `owner` waits on a request of `guest` (another client),
-- owner's step() drives guest too: the task yields instead of blocking the
-- loop, and the loop that drives the task drives what it waits for.
local function add_guest (owner, guest)
  owner._guests[guest] = (owner._guests[guest] or 0) + 1
  owner._guest_waits = owner._guest_waits + 1
end

local function remove_guest (owner, guest)
  local n = owner._guests[guest]
  if n == nil then return end
  owner._guests[guest] = n > 1 and n - 1 or nil
  owner._guest_waits = owner._guest_waits - 1
end

-- c2 lane bridge (until lane/lua2's scheduler): the C req:wait() in a task
-- yields AWAIT and the request, and the engine calls resume_waiting(co,
-- req) from its loop when the request ends. coroutine -> the request it
-- waits on in C.
local waiting_c = setmetatable({}, { __mode = "k" })

--- Resumes a task; reports its error if it fails. Never raises.
local function resume_task (self, co, ...)
  local ok, v, req = coroutine_resume(co, ...)
  if ok and v == AWAIT and req ~= nil then   -- a C wait: drive its client too
    waiting_c[co] = req
    local guest = client_of_engine[req:_engine()]
    if guest and guest ~= self then add_guest(self, guest) end
  end
  if not ok then
    tasks[co], abandon_hooks[co] = nil, nil
    self._engine:report(task_error(co, v, self._task_names and self._task_names[co]))
  elseif coroutine_status(co) == "dead" then
    tasks[co], abandon_hooks[co] = nil, nil
  elseif v ~= AWAIT then
    abandon(self, co)
  end
end

function resume_task_ref (self, co) return resume_task(self, co) end

local function resume_waiting (co, req)
  local owner = tasks[co]
  if owner == nil or waiting_c[co] ~= req then return end   -- no longer waiting on it
  waiting_c[co] = nil
  local guest = client_of_engine[req:_engine()]
  if guest and guest ~= owner then remove_guest(owner, guest) end
  resume_task(owner, co, req:result())
end

function set_scheduler (engine)
  engine:set_scheduler { tasks = tasks, token = AWAIT, resume = resume_waiting }
end

--- Starts `fn(...)` as a task of `self` at once (runs until its first wait).
-- `what` names it in the error an uncaught error becomes.
local function start_task (self, fn, what, ...)
  local co = coroutine_create(fn)
  tasks[co] = self
  if what then
    self._task_names = self._task_names or setmetatable({}, { __mode = "k" })
    self._task_names[co] = what
  end
  resume_task(self, co, ...)
  return co
end

--- Runs `fn` from the loop: at the end of the next `client:step()` (at
-- once when the client is closed: no step will come). For deliveries that
-- must not happen inside the call that causes them (cancel) or inside a
-- finalizer. An error in fn is reported.
local function delivery_error (e)
  return core.error { kind = "callback", message = "error in a delivery: " .. tostring(e) }
end

local function post (self, fn)
  if self._closed then
    local ok, e = pcall(fn)
    if not ok then self._engine:report(delivery_error(e)) end
    return
  end
  local posted = self._posted
  posted[#posted + 1] = fn
end

local function run_posted (self)
  local list = self._posted
  if #list == 0 then return end
  self._posted = {}
  for _, fn in ipairs(list) do
    local ok, e = pcall(fn)
    if not ok then self._engine:report(delivery_error(e)) end
  end
end

-- request -> the functions waiting for it to end. A C request has one
-- notify slot; this lets several tasks wait on the same request.
local waiters = setmetatable({}, { __mode = "k" })

--- Calls fn(req) once when `req` is over (from the loop). `req` is an
-- aigc.request or any object with `_notify(fn)` that calls each fn given
-- to it once (the dialogue layer's requests).
local function when_over (req, fn)
  if type(req) ~= "userdata" then return req:_notify(fn) end
  local list = waiters[req]
  if list then
    list[#list + 1] = fn
    return
  end
  list = { fn }
  waiters[req] = list
  req:_notify(function (r)
    waiters[req] = nil
    for _, f in ipairs(list) do f(r) end
  end)
end

--- Waits for a request: yields inside a task, blocks elsewhere.
-- `self` is the client that drives `req`; `drivers` (optional) lists every
-- client whose loop the request needs (default: `self`). Inside a task of
-- another client, those clients are driven by the task's client meanwhile.
-- `req` may be any object with the aigc.request interface that await uses:
-- status(), result(), wait() and _notify(fn) (the dialogue layer's requests
-- are such objects).
local function await (self, req, drivers)
  local owner, co = current_owner()
  if owner == nil then
    return req:wait()
  end
  local status = req:status()
  if status == "queued" or status == "running" then
    local guests = {}
    for _, c in ipairs(drivers or { self }) do
      if c ~= owner then guests[#guests + 1] = c; add_guest(owner, c) end
    end
    when_over(req, prepare_wait(owner, co, function ()
      for _, c in ipairs(guests) do remove_guest(owner, c) end
    end))
    coroutine_yield(AWAIT)
  end
  return req:result()
end

--- Runs `fn(...)` as a task: inside it, `client:chat`, `client:complete`,
-- `req:wait()`, the stream iterator and `client:sleep` yield to the loop
-- instead of blocking, and `client:step()` resumes it when what it waits
-- for is ready. It starts running at once, until its first wait. Waiting on
-- another client's request yields too: this client's `step()` then drives
-- that client as well (and counts the wait in its result). An error in the
-- task goes to the client's `error_handler` (else stderr and `step()`'s
-- second result). A task must not yield outside aigc (its own
-- `coroutine.yield`): it is then abandoned, with an error of kind
-- "callback" (reported, or given to the dialogue request it ran).
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
  return start_task(self, fn, nil, ...)
end

--- One step of `client` for a loop inside aigc (a blocking wait, a
-- race): the callback errors the step returns are the user's, for the
-- user's next step(): they are reported again (to the list the next step()
-- returns), never dropped here.
function drive (client, timeout)
  local n, errors = client:step(timeout)
  if errors then
    for _, e in ipairs(errors) do client._engine:report(e) end
  end
  return n
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
  local owner, co = current_owner()
  if owner then   -- (a task of another client sleeps in its own client's loop)
    local sleepers = owner._sleepers
    sleepers[#sleepers + 1] = { at = now() + seconds, wake = prepare_wait(owner, co) }
    coroutine_yield(AWAIT)
    return
  end
  local deadline = now() + seconds
  while true do
    local left = deadline - now()
    if left <= 0 then return end
    drive(self, left)
  end
end

local function wake_sleepers (self)
  local sleepers, t = self._sleepers, now()
  local i = 1
  while i <= #sleepers do
    local s = sleepers[i]
    if s.at <= t then
      table_remove(sleepers, i)
      s.wake()
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
  local wake = s._wake
  if wake then
    s._wake = nil
    wake()
  end
end

--- Streams a chat (or, with `prompt` and no `messages`, a completion) as an
-- iterator. Each step gives the chunk's text delta ("" when a chunk carries
-- no text) and the decoded chunk. A failure raises the error object from
-- the loop (as the official SDKs' iterators do).
--
-- Leaving the loop early must cancel the request, or it downloads to the
-- end. Lua 5.4 closes the generic for's fourth value when the loop is left
-- (break, return, error): `s:deltas()` and `client:stream{...}` itself put
-- the stream there, so
-- `for delta, chunk in s:deltas() do ... break end` and
-- `for delta in client:stream{...} do ... break end` cancel on break.
-- `for delta in s do` iterates too but has no closing value: after a break
-- call `s:close()` (Lua 5.1 to 5.3 and LuaJIT have no closing values: there,
-- always close explicitly).
-- Keep the object to read the accumulated result after the loop.
-- @tparam table|string params
-- @treturn aigc.stream iterable; `s:result()` gives `res` or `nil, err` at the end
-- @usage
-- local s = client:stream { messages = msgs }
-- for delta in s:deltas() do io.write(delta) end
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
  when_over(s.request, function () stream_wake(s) end)
  return s, nil, nil, s
end

function Stream:__call ()
  local req = self.request
  while true do
    local status = req:status()
    if status == "canceled" then
      -- Nothing after cancel, not even what had arrived before it.
      self._deltas, self._chunks, self._first, self._last = {}, {}, 1, 0
      local _, err = req:result()
      error(err, 0)
    end
    if self._first <= self._last then break end
    if status == "done" then
      return nil
    elseif status == "failed" then
      local _, err = req:result()
      error(err, 0)
    end
    local owner, co = current_owner()
    if owner then
      local client = self._client
      if owner ~= client then add_guest(owner, client) end
      self._wake = prepare_wait(owner, co, function ()
        if owner ~= client then remove_guest(owner, client) end
      end)
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

--- The iterator with the stream as the generic for's closing value: on Lua
-- 5.4, leaving the loop early (break, return, an error) cancels the
-- request. At the loop's normal end the request is already over and
-- nothing happens.
-- @treturn aigc.stream the iterator, nil, nil, and the closing value
-- @usage for delta in s:deltas() do io.write(delta); if done then break end end
function Stream:deltas ()
  return self, nil, nil, self
end

--- The outcome once the loop ended: the accumulated response, or nil, err.
-- @treturn[1] table res
-- @treturn[2] nil
-- @treturn[2] aigc.error err
-- @usage for d in s:deltas() do io.write(d) end; print(assert(s:result()).usage.total_tokens)
function Stream:result ()
  return self.request:result()
end

--- Cancels the stream (kind "canceled"); nothing is delivered after.
-- @tparam[opt] string why the error message
-- @treturn boolean whether it was still going
-- @usage if player_left then s:cancel() end
function Stream:cancel (why)
  return self.request:cancel(why)
end

--- Closes the stream: cancels it if it is still going (the explicit form of
-- leaving the loop; `local s <close>` does it at the end of the scope).
-- @usage for d in s do if d == "" then break end end; s:close()
function Stream:close ()
  self.request:cancel("the stream was closed")
end

Stream.__close = Stream.close

function Stream:__tostring ()
  return "aigc.stream (" .. self.request:status() .. ")"
end

-- }======================================================


-- {======================================================
-- Driving and lifecycle
-- =======================================================

-- The longest step() waits on its own sockets while tasks wait on another
-- client's requests (that client is then stepped without waiting).
local GUEST_SLICE = 0.005

-- What this client's loop still has to do besides its requests: tasks
-- asleep or waiting on another client's requests, deliveries to run. step(),
-- act() and active() count it, so that `while client:step() > 0` runs
-- until every task of the client is over, and the three always agree.
local function lua_pending (self)
  return #self._sleepers + #self._posted + self._guest_waits
end

-- The count step() and act() return, taken at their very end: what they
-- ran (deliveries, woken tasks) may have submitted requests meanwhile.
local function pending_count (self)
  if self._closed then return 0 end
  local ok, n = pcall(self._engine.active, self._engine)   -- (raises once closed)
  if not ok then return 0 end
  return n + lua_pending(self)
end

--- Drives every request once: waits at most `timeout` seconds (default 0,
-- never blocks) for network activity, runs pending callbacks (at most
-- `budget` of them, default all), drives the clients that tasks of this one
-- wait on, and resumes tasks whose wait is over.
-- @tparam[opt=0] number timeout seconds
-- @tparam[opt=0] integer budget the most callbacks to run (0: no limit)
-- @treturn integer what `active()` counts after the step
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
  local guests = self._guests
  if next(guests) ~= nil and type(timeout) == "number" and timeout > GUEST_SLICE then
    timeout = GUEST_SLICE   -- (the guests' sockets are not in this wait)
  end
  local _, errors = self._engine:step(timeout, budget)
  if next(guests) ~= nil and not self._driving_guests then
    -- Drive the clients that tasks of this one wait on. A guest does not
    -- drive back a client that is driving it (no recursion); one that
    -- cannot be stepped (closed, or inside its own callback) is left.
    self._driving_guests = true
    local list = {}
    for g in pairs(guests) do list[#list + 1] = g end
    for _, g in ipairs(list) do
      if not g._driving_guests then
        local ok, _, gerrors = pcall(Client.step, g, 0)
        if ok and gerrors then
          errors = errors or {}
          for _, e in ipairs(gerrors) do errors[#errors + 1] = e end
        end
      end
    end
    self._driving_guests = nil
  end
  run_posted(self)
  if #sleepers > 0 then   -- (tasks may have gone to sleep during the step)
    wake_sleepers(self)
  end
  return pending_count(self), errors
end

--- The number of requests queued or running, plus the tasks of this
-- client still waiting (asleep, or on another client's request) and the
-- deliveries its loop has still to run: 0 when the client has nothing
-- left to do.
-- @treturn integer
-- @usage if client:active() == 0 then hide_spinner() end
function Client:active ()
  check_client(self, "active")
  return self._engine:active() + lua_pending(self)
end

--- Closes the client: pending requests fail with kind "canceled", tasks
-- waiting on them are resumed, connections are closed. Idempotent.
-- @usage local client <close> = aigc.client()   -- or client:close() when done
function Client:close ()
  check_client(self, "close")
  if not self._closed then
    -- The Lua-level requests (dialogue requests) are canceled first, so that
    -- their tasks, resumed by the engine's close, see it and stop.
    local list = {}
    for r in pairs(self._closables) do list[#list + 1] = r end
    for _, r in ipairs(list) do pcall(r.cancel, r, "the client was closed") end
  end
  self._engine:close()
  if self._closed then return end
  self._closed = true
  run_posted(self)   -- (what was posted for the next step: no step will come)
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

--- See `watch`. Returns what `active()` counts.
-- @tparam[opt] integer fd
-- @tparam[opt] string events
-- @treturn integer
-- @usage poll:start("r", function (_, ev) client:act(fd, ev) end)
function Client:act (fd, events)
  check_client(self, "act")
  self._engine:act(fd, events)
  -- The external loop is this client's loop: deliveries and sleeping
  -- tasks are its work too.
  run_posted(self)
  if #self._sleepers > 0 then wake_sleepers(self) end
  return pending_count(self)
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
M.is_task_of = function (client) return current_owner() == client end
--- The client whose task is running and can yield (nil elsewhere).
M.task_owner = function () return (current_owner()) end
M.post = post
M.run_posted = run_posted
M.drive = function (client, timeout) return drive(client, timeout) end
M.start_task = start_task
M.when_over = when_over
M.add_guest, M.remove_guest = add_guest, remove_guest

--- For the layers above: `fn(err)` runs if the running task is abandoned
-- (it yielded outside aigc); it returns true when it delivered the error
-- (failed a request with it), which then is not reported again. Returns a
-- handle for `forget_abandon`, or nil outside tasks.
M.on_abandon = function (fn)
  local co = coroutine_running()
  if tasks[co] == nil then return nil end
  local list = abandon_hooks[co]
  if list == nil then list = {}; abandon_hooks[co] = list end
  list[#list + 1] = fn
  return fn
end

M.forget_abandon = function (fn)
  local list = fn and abandon_hooks[coroutine_running()]
  if not list then return end
  for i = #list, 1, -1 do
    if list[i] == fn then table_remove(list, i); return end
  end
end

-- Per-call options the C core reads, with what it accepts (request.c).
local SECONDS_OPTIONS = { "timeout", "connect_timeout", "deadline" }
local INTEGER_OPTIONS = { { "max_retries", 0, 100 }, { "max_response_bytes", 1, 1099511627776 } }   -- (2^40)

--- Checks the per-call options of chat params as a call would, without
-- calling (for params that come from outside the program, e.g. a saved
-- conversation): `true`, or `nil` and a message naming the option.
M.check_params = function (client, kind, params)
  for _, k in ipairs(SECONDS_OPTIONS) do
    local v = params[k]
    if v ~= nil and not (type(v) == "number" and v > 0 and v <= 1e9) then
      return nil, string_format("params.%s must be a number of seconds > 0", k)
    end
  end
  for _, o in ipairs(INTEGER_OPTIONS) do
    local v = params[o[1]]
    if v ~= nil and not (math.type(v) == "integer" and v >= o[2] and v <= o[3]) then
      return nil, string_format("params.%s must be an integer in %d..%d", o[1], o[2], o[3])
    end
  end
  local st = params.stream
  if st ~= nil and type(st) ~= "boolean" and type(st) ~= "function" then
    return nil, "params.stream must be a boolean or a function, got " .. type(st)
  end
  for _, k in ipairs { "on_done", "on_error" } do
    if params[k] ~= nil and type(params[k]) ~= "function" then
      return nil, string_format("params.%s must be a function, got %s", k, type(params[k]))
    end
  end
  local ok, e = pcall(call_opts, client, kind, params)
  if not ok then return nil, tostring(e):match("%((.*)%)$") or tostring(e) end
  return true
end

--- An error the Lua layer built, with every string in it scrubbed of the
-- client's secrets (a server may echo the key in a reply that ends up in
-- err.response, err.text, a violation...), when the engine can scrub
-- (`engine:scrub`, from the C core); else the error as it is.
M.scrub = function (client, err)
  local engine = client._engine
  local scrub = engine.scrub
  if scrub == nil or not is_error(err) then return err end
  local ok, v = pcall(scrub, engine, err)
  if ok and v ~= nil then return v end
  return err
end

--- Registers a Lua-level request (with `cancel(why)`) that `client:close()`
-- cancels if it is still pending.
M.closable = function (client, r) client._closables[r] = true end

return M
