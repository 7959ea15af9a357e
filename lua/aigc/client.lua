--- The client: one connection pool (a libcurl multi engine) and its defaults.
--
-- Every call is "submit a request to the engine, then wait for it". Waiting
-- blocks, except inside a task started with `client:spawn`, where it yields
-- to the loop that calls `client:step()`; the same request object serves
-- `chat_async` users in a frame loop.
--
-- Images, audio, moderation and downloads: the `Client:` methods listed in
-- `aigc.media`; files and embeddings: in `aigc.files`.
--
-- @classmod aigc.client

local core = require "aigc.core"
local compat = require "aigc.compat"
compat.jit_off(true, true)     -- LuaJIT #1045: see compat.lua (also when required without aigc.init)
compat.keep_aigc_off_jit()
local util = require "aigc.util"
local credentials = require "aigc.credentials"
local PER_CALL, SUBMIT_INTO = util.per_call, util.submit_into
local check = require "aigc.check"
local client_loop = require "aigc.client_loop"
local task = require "aigc.task"
local stream_mod = require "aigc.stream"
local hooks = require "aigc.hooks"   -- usage totals, prompt_log, cassette (lua/aigc/hooks.lua)
local setup = require "aigc.client_setup"   -- the options into the engine's config
local refuse_in_callback = require("aigc.future").refuse_in_callback

local null = core.null
local error, getmetatable, ipairs, pairs, pcall, setmetatable, type =
  error, getmetatable, ipairs, pairs, pcall, setmetatable, type
local string_format = string.format
local argerror, expected, field_error = util.argerror, util.expected, util.field_error

util.own_module()

local M = {}

local Client = {}
Client.__index = Client
Client.__name = "aigc.client"

local DEFAULT_PATH = { chat = "/chat/completions", completion = "/completions" }

-- The fields the usual call's path asks params for (`plain_opts`,
-- `layered`, aigc.hooks' straight line). Params that passed the fast
-- check (`check.call` returned their keys) hold only fields of
-- `check.FAST[api]` and have no metatable: for an api whose FAST has none
-- of these, they are nil, and those probes are skipped (~1.5k
-- instructions a call on Lua 5.4: a missing field is ~117, `getmetatable`
-- ~470). Made from FAST itself, so a field added to it turns this off.
local PROBED = { "headers", "extra_headers", "idempotency_key", "query", "extra_query", "api_key",
                 "azure_ad_token", "extra_body", "cache", "schema", "tools" }
local FITS_PLAIN = {}
for api, fast in pairs(check.FAST) do
  local fits = true
  for _, k in ipairs(PROBED) do
    if fast[k] ~= nil then fits = false end
  end
  FITS_PLAIN[api] = fits
end

-- Raises as luaL_checkudata would unless `self` is a client: a method
-- called with `.` instead of `:`, or on another object.
local function check_self (self, fname)
  if getmetatable(self) ~= Client then util.bad_self(fname, "aigc.client", self) end
end

-- The core's messages for misuse (anything else -- an interrupt, out of
-- memory -- is not one).
local MISUSE = { "^bad argument", "^calling '", "^attempt to use a closed client", "^client:%a+%(%)", "^cannot " }

-- Relays what a call into the engine returned; an error it raised is
-- misuse (a bad argument, a closed client: raised again at the caller's
-- line, in the one format) or anything else (an interrupt, out of memory:
-- raised again as it is). `fname` names the call for argument errors.
local function relay (fname, ok, ...)
  if ok then return ... end
  local e = ...
  if type(e) ~= "string" then error(e, 0) end
  local rest = e:match("^[^\n]-:%d+: (.*)$")
  -- An encoder error names the value's path: misuse of the call's params
  -- (the core located it at the caller already; the format is the one).
  local msg = rest or e
  if msg:find("^params[%.%[:]") then argerror(fname, 1, msg) end
  -- (called through pcall, the core cannot name the method nor skip self)
  msg = msg:gsub("^bad argument #(%d+) to '%?'", function (n)
    return string_format("bad argument #%d to '%s'", n - 1, fname)
  end)
  -- Other misuse is relocated when the core put no position, or one in
  -- aigc's own code (its luaL_error called from it).
  if rest == nil or util.strip_own_position(e) then
    for _, misuse in ipairs(MISUSE) do
      if msg:find(misuse) then util.raise(msg) end
    end
  end
  error(e, 0)
end

-- Calls `engine:method(...)`, misuse relayed to the caller.
local function engine_call (self, fname, method, ...)
  local engine = self._engine
  return relay(fname, pcall(engine[method], engine, ...))
end

local urlencode, encode_query = util.urlencode, util.encode_query

-- An Idempotency-Key: 128 bits from /dev/urandom. math.random's gave every
-- process (and every lua_State of a C host) the same keys on LuaJIT and Lua
-- 5.1-5.3, whose generators start from one seed, and on any Lua after a
-- game's math.randomseed(42): a server that honours the key answered one
-- process's call with another's reply. Without /dev/urandom: math.random
-- mixed with what differs between states and calls.
local keys_made = 0
local function random_key ()
  local hex = util.random_hex(16)
  if hex then return "aigc-" .. hex end
  keys_made = keys_made + 1
  return string_format("aigc-%08x%08x-%s-%x-%x", math.random(0, 0x7fffffff), math.random(0, 0x7fffffff),
                       tostring({}):match("0x(%x+)") or "", math.floor(os.clock() * 1e6), keys_made)
end


-- {======================================================
-- Construction
-- =======================================================

--- Creates a client. Also `aigc.client(opts)`.
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
--  - `max_concurrency` (0: unlimited), `max_concurrency_by_priority` (caps per
--    priority class, e.g. `{ background = 2 }`), `max_response_bytes` (64 MiB),
--    `max_json_values`, `max_json_containers`
--  - `max_starts_per_step`, `max_bytes_per_step` (0: none): what one turn of
--    the loop may start, and read, for a frame loop (the README's Game engines)
--  - `headers`, `query`: sent with every request (`aigc.null` removes a default)
--  - `idempotency`: send an `Idempotency-Key`, the same on every retry of a call
--  - `ca_file`, `ca_path`, `proxy`, `insecure` (no TLS verification; warns once)
--  - `require_done = false`: a chat or completion stream that ends without
--    `[DONE]` is whole when its body ended well after every choice's
--    `finish_reason` (Hugging Face TGI before 2.2); by default it is kind "stream"
--  - `log = function(level, message)`, `log_bodies`, `error_handler = function(err)`
--  - `prices` (`{ [model] = { input =, output = } }`, $ per 1M tokens) for `client:usage()`'s cost;
--    `usage = false`: keep no totals
--  - `prompt_log = true | path | aigc.promptlog`: log every chat call (`aigc logs` shows them)
--  - `cassette = { path =, mode = "record" | "replay" | "auto" }`: see `aigc.cassette`
--  - Azure OpenAI: `azure = true`, `endpoint` (`$AZURE_OPENAI_ENDPOINT`),
--    `api_version` (`$OPENAI_API_VERSION`), `api_key` (`$AZURE_OPENAI_API_KEY`)
--    or `azure_ad_token` (`$AZURE_OPENAI_AD_TOKEN`, first), or `azure_ad_token_provider`
--    (a function giving a token, called for each request); `model` names the deployment (of chat, completions,
--    embeddings, images generations and edits, audio: the SDKs' list).
-- @treturn aigc.client
-- @usage
-- local client = aigc.client { base_url = "http://127.0.0.1:8089/v1", model = "aigc-dev" }
function M.new (opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then argerror("client", 1, expected("table", opts)) end
  local ext
  opts, ext = hooks.split(opts)
  check.client_options(opts)
  local s = setup.resolve(opts, ext)   -- where requests go, the headers, the secrets (aigc.client_setup)
  local engine = core.engine(s.config)
  credentials.list_client(engine, s.config.secrets)   -- (a recording cassette's proxy reads them: aigc.cassette)
  -- (the fields every call reads are set, false when off: a field absent
  -- here is looked up in Client through __index, ~0.2k instructions a read)
  local client = setmetatable({
    _azure = s.azure_paths or false, _engine = engine, _hnames = s.names, _hlines = s.lines, _query = s.query,
    _ad_token_provider = s.ad_token_provider or false, _no_stream_usage = s.old_azure or false,
    _idempotency = opts.idempotency or false, _watching = false, _unheld = false, _log = opts.log, _typos = {},
    _max_retries = opts.max_retries, _deadline = opts.deadline,   -- (files_upload_parts: its create, its whole)
    --- The base URL requests go to (read-only).
    base_url = s.config.base_url,
    --- The default model (read-only).
    model = opts.model,
  }, Client)
  client._loop = task.new_loop(client, engine)
  hooks.attach(client, ext)
  return client
end

-- }======================================================


-- {======================================================
-- Submitting
-- =======================================================

-- The headers of one call: the client's, merged with params.headers and
-- params.extra_headers (aigc.null removes one), the Idempotency-Key, and
-- the stream's Accept; `token`: an Azure token for this call (the call's
-- own Authorization wins). nil when they are the client's.
local function call_headers (self, params, token, form, fname, argn)
  local h1, h2, key = params.headers, params.extra_headers, params.idempotency_key
  if h1 == nil and h2 == nil and key == nil and not self._idempotency and token == nil then return nil end
  local lines, names, extra = {}, self._hnames, {}
  for k, v in pairs(self._hlines) do lines[k] = v end
  if token then
    extra[1], lines.authorization = "authorization", "Authorization: Bearer " .. token
  end
  for i, h in ipairs { h1 or false, h2 or false } do
    for name, value in pairs(h or {}) do
      local lower, why = name:lower(), credentials.blank_credential(name, value)
      if why then   -- (sent, it authenticated nothing: refused as the client's own are)
        field_error(fname, argn, i == 1 and "params.headers" or "params.extra_headers",
                    string_format("header %q %s", name, why))
      end
      if value == null then
        -- (a JSON body's Content-Type removed: "Content-Type:", libcurl's way to send none -- with no
        -- line it sent its own x-www-form-urlencoded; a form's: no line, libcurl's multipart one.
        -- Expect: "Expect:", or libcurl sent its own 100-continue with a body over 1 MiB)
        lines[lower] = not (form and lower == "content-type") and setup.REMOVED_LINE[lower] or nil
        if lines[lower] and self._hlines[lower] == nil then extra[#extra + 1] = lower end
      else
        if lines[lower] == nil and self._hlines[lower] == nil then extra[#extra + 1] = lower end
        lines[lower] = setup.header_line(name, value)
      end
    end
  end
  if key ~= nil or self._idempotency then
    if lines["idempotency-key"] == nil then extra[#extra + 1] = "idempotency-key" end
    lines["idempotency-key"] = "Idempotency-Key: " .. (key or random_key())
  end
  if params.stream and lines.accept == self._hlines.accept then lines.accept = "Accept: text/event-stream" end
  local list = {}
  for _, k in ipairs(names) do list[#list + 1] = lines[k] end
  for _, k in ipairs(extra) do list[#list + 1] = lines[k] end
  return list
end

-- The endpoints Azure OpenAI serves per deployment (aigc.client_setup).
local AZURE_DEPLOYMENT_PATHS = setup.AZURE_DEPLOYMENT_PATHS

-- The deployment of an Azure call: the params' model, or the model part of
-- a multipart form (its params are then only the call options), or the
-- client's.
local function deployment_of (self, params, body_opts)
  if params.model ~= nil then return params.model, "params.model" end
  if params.engine ~= nil then return params.engine, "params.engine" end
  local model
  if body_opts and type(body_opts.form) == "table" then
    for _, part in ipairs(body_opts.form) do
      if part.name == "model" then model = part.value end
    end
  end
  if model ~= nil then return model, "params.model" end
  return self.model, "opts.model"
end

-- An Azure client's token for a call, from its azure_ad_token_provider,
-- called for each request as openai-python does (an Entra ID token lasts
-- about an hour: a long run, a batch polled for a day, outlives one token).
local function ad_token (self, fname)
  local token = self._ad_token_provider()
  if type(token) ~= "string" or token == "" or token:find("[\r\n%z]") then
    util.raise(string_format("%s: opts.azure_ad_token_provider gave %s, not a token (a non-empty string "
                             .. "without CR, LF or NUL)", fname, type(token) == "string" and "a bad string"
                             or util.describe(token)))
  end
  return token
end

-- The per-call options the C core cannot know: merged headers and query,
-- Azure's deployment paths; the name of the user's call. `token`: the
-- call's Azure token (from its azure_ad_token_provider), or nil.
local function call_opts (self, api, params, path, fname, argn, body_opts, token)
  local opts = { path = path, fname = fname, arg = argn }   -- (the core's misuse errors name the user's call)
  local azure = self._azure
  if azure and (api == "chat" or api == "completion" or AZURE_DEPLOYMENT_PATHS[path]) then
    local deployment = azure.deployment   -- (the base URL's, as written there, whatever the call's model)
    if deployment == nil then
      local model, from = deployment_of(self, params, body_opts)
      if type(model) ~= "string" then
        field_error(fname, 1, "params.model", "Azure OpenAI needs a model: the deployment name")
      elseif model == "" then   -- (not "/deployments//chat/completions", a 404 naming nothing)
        field_error(fname, 1, from, "empty: Azure OpenAI needs a model, the deployment name")
      end
      deployment = urlencode(model)
    end
    opts.path = "/deployments/" .. deployment .. (path or DEFAULT_PATH[api])
  end
  if self._no_stream_usage then opts.stream_usage = false end
  if params.headers ~= nil or params.extra_headers ~= nil or params.idempotency_key ~= nil or self._idempotency
     or token then
    -- (most calls have none: no call; a token in a call's header is one of its secrets: the engine
    -- scrubs its errors and logs of it)
    opts.headers = call_headers(self, params, token, body_opts ~= nil and body_opts.form ~= nil, fname, argn)
  end
  local q1, q2 = params.query, params.extra_query
  if q1 ~= nil or q2 ~= nil then
    local merged = {}
    for k, v in pairs(self._query) do merged[k] = v end
    for _, q in ipairs { q1 or false, q2 or false } do
      for k, v in pairs(q or {}) do
        if v == null then merged[k] = nil else merged[k] = v end
      end
    end
    opts.query = encode_query(merged)
  end
  if q1 ~= nil or q2 ~= nil or params.api_key ~= nil or params.azure_ad_token ~= nil
     or params.headers ~= nil or params.extra_headers ~= nil or params.extra_body ~= nil then
    -- (a per-call key in the query, api_key or a key in extra_body in the body, a Basic credential's password)
    opts.secrets = credentials.call_credentials(params)
  end
  return opts
end

-- The opts of a call that needs none of `call_opts`' per-call work (no
-- Azure path, headers, query, extra_body nor credentials of its own: the usual call):
-- made once per call name and callbacks, then shared, as the engine only
-- reads them (a table made per call cost ~1k instructions, its collection
-- more). `call`: the hook's state (false or nil without one; the usage
-- totals' observer of calls with callbacks is the client's, the same for
-- every call: aigc.hooks). nil when the call needs `call_opts`.
-- `fit`: params that passed the fast check (`FITS_PLAIN`): none of the
-- fields probed here is among them (extra_body: for `call_credentials`).
local PLAIN_OPTS, WATCHED_OPTS = {}, {}
local function plain_opts (self, call, params, fname, awaited, token, fit)
  if params == nil or token or self._azure or self._no_stream_usage or self._idempotency or (call and not call.as_is)
     or not fit and (params.headers ~= nil or params.extra_headers ~= nil or params.idempotency_key ~= nil
                     or params.query ~= nil or params.extra_query ~= nil or params.api_key ~= nil
                     or params.azure_ad_token ~= nil or params.extra_body ~= nil) then
    return nil
  end
  local shared, watch = PLAIN_OPTS, nil
  if call and call.observe then
    shared = call.opts
    if shared == nil then shared = {}; call.opts = shared end
  elseif call and call.unheld and not awaited then   -- (its end is listed for the hook: aigc.hooks sweep)
    shared, watch = WATCHED_OPTS, true
    self._watching = true
  end
  local opts = shared[fname]
  if opts == nil then
    opts = { fname = fname, arg = 1, watch = watch }
    if shared ~= PLAIN_OPTS and not watch then opts.observe = call.observe end
    opts._keys = core.opts_keys(opts)   -- (engine:submit's hint: it reads these without a walk)
    shared[fname] = opts
  end
  return opts
end

-- Submits a request ("chat", "completion", "json" or "get" api) whose
-- params were checked; `fname` and `argn` name the user's call and its
-- params in errors. `awaited`: a blocking call that `await`s it: the hook
-- hears its end there, so it is neither watched nor listed (aigc.hooks
-- sweep), and its call state is returned after it, for `await`. `awaited`
-- "now" (a blocking call's): submitted and waited for in one C call
-- (engine:call: a watchdog that cut between the two left it running
-- unwaited, its callbacks run after the interrupt), its result returned
-- after the call state.
-- `keys`: the option keys params holds, from its check (`check.call`), or
-- nil; engine:submit takes them for the params it is given, the caller's.
local function submit (self, api, params, path, fname, argn, body_opts, awaited, keys)
  -- (params given to several calls at once whose callbacks keep state,
  -- sentences.stream's, get callbacks of the request's own: util.per_call)
  local given = params   -- (the caller's: a strategy's, listed in util.submit_into)
  local per_call = params and PER_CALL[params.stream]
  if per_call then params = per_call(params) end
  local hook = self._hook   -- usage totals, prompt_log, cassette (aigc.hooks: what to submit)
  -- (an Azure provider's token, asked first: it is the call's credential, which the response
  -- cache's key and what the hooks keep need too -- two identities shared cached replies;
  -- the provider is the caller's code, run after the check: no `fit` then)
  local token = self._ad_token_provider and ad_token(self, fname) or nil   -- (nil without one: call_headers)
  local fit = keys ~= nil and not per_call and not token and FITS_PLAIN[api]
  local call = hook and hook.before(self, api, params, path, body_opts, token, fit)
  if call and not call.as_is then   -- (as_is: the params are submitted as they are)
    if call.hit then return hook.settled(self, call) end   -- the response cache answered
    params, keys, fit = call.params, nil, nil
  end
  local opts = body_opts == nil and path == nil and argn == nil
               and plain_opts(self, call, params, fname, awaited, token, fit)
  if not opts then
    opts = call_opts(self, api, call and call.options or params or {}, path, fname, argn or 1, body_opts, token)
    if body_opts then for k, v in pairs(body_opts) do opts[k] = v end end   -- form, sink, method (aigc.media)
    -- (the usage hook's observer of the end, before the params' callbacks: aigc.hooks)
    if call then
      if call.observe then opts.observe = call.observe
      elseif call.unheld and not awaited then   -- (its end is listed for the hook: aigc.hooks sweep)
        opts.watch = true
        self._watching = true
      end
    end
  end
  local engine = self._engine   -- (engine_call, inline: two vararg calls less per request)
  if awaited == "now" then
    local req, waited, res, err = engine.call(engine, api, params, opts, keys, opts._keys)
    if not req then relay(fname, false, waited) end
    return req, call, waited, res, err
  end
  local into = given and SUBMIT_INTO[given]   -- (a strategy's list of what it started: engine:submit stores it)
  local ok, req = pcall(engine.submit, engine, api, params, opts, keys, opts._keys, into)
  if not ok then relay(fname, ok, req) end
  if call and not awaited then hook.after(self, req, call) end
  if awaited then return req, call end
  return req
end

-- Waits for a blocking call's request (yields in a task) unless `submit`
-- did (`waited`: its result follows); the hook hears its end at once
-- (`call`: what `submit` returned after the request).
local function await (self, req, call, waited, res, err)
  -- (task.await's own line, `req:wait()`, inline: a Lua call less per call)
  if not waited then res, err = req:wait() end
  if self._hook then return self._hook.await(self, req, call, res, err) end
  return res, err
end

-- A call's params (a string: one user message, or the prompt), checked.
local function call_params (self, api, params, fname)
  local t = type(params)
  if t == "string" then
    if api == "completion" then return { prompt = params } end
    return { messages = { { role = "user", content = params } } }
  end
  if t ~= "table" then argerror(fname, 1, expected("table or string", params)) end
  if api == "chat" and params.messages == nil then
    field_error(fname, 1, "params.messages", expected("list of messages", nil))
  elseif api == "completion" and params.prompt == nil then
    field_error(fname, 1, "params.prompt", expected("string or list", nil))
  end
  return params, check.call(self, fname, 1, api, params)   -- (and the option keys params holds, or nil)
end

-- Params that need the dialogue layer above a single request: a toolset
-- (the tool-call loop) or a schema (structured output, validated).
local function layered (params)
  return params.schema ~= nil or (params.tools ~= nil and util.is_a(params.tools, "aigc.toolset"))
end

-- The dialogue layer (lua/aigc/dialogue.lua) loads when first needed.
local function dialogue ()
  return require "aigc.dialogue"
end

-- }======================================================


-- {======================================================
-- Calls
-- =======================================================

--- Chat completion.
-- `params` is the request body as a table (unknown fields pass through),
-- plus per-call options that are not sent: `stream` (a function receiving
-- `(delta, chunk)`, or `true`), `on_done`, `on_error`, `timeout`,
-- `connect_timeout`, `deadline`, `max_retries`, `max_response_bytes`,
-- `max_json_values`, `max_json_containers`, `headers`, `query`,
-- `idempotency_key`; `engine` is an old name for `model`. A toolset in
-- `tools` or a `schema` runs the dialogue layer (`aigc.dialogue`).
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
  check_self(self, "chat")
  local p, keys = call_params(self, "chat", params, "chat")
  if (keys == nil or not FITS_PLAIN.chat) and layered(p) then return dialogue().chat(self, p, "chat") end
  return await(self, submit(self, "chat", p, nil, "chat", nil, nil, "now", keys))
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
  check_self(self, "complete")
  local p, keys = call_params(self, "completion", params, "complete")
  return await(self, submit(self, "completion", p, nil, "complete", nil, nil, "now", keys))
end

--- Starts a chat request without waiting: returns an `aigc.request`
-- (`status`, `result`, `wait`, `cancel`), or with a toolset or a schema
-- a future with the same interface. Callbacks `stream`, `on_done(res)`
-- and `on_error(err)` run from `client:step()` (or any blocking call).
-- @tparam table|string params
-- @treturn aigc.request
-- @usage
-- local req = client:chat_async { messages = msgs, stream = function (d) io.write(d or "") end }
-- while req:status() == "running" or req:status() == "queued" do client:step(0.016) end
function Client:chat_async (params)
  check_self(self, "chat_async")
  local p, keys = call_params(self, "chat", params, "chat_async")
  if (keys == nil or not FITS_PLAIN.chat) and layered(p) then return dialogue().chat_async(self, p, "chat_async") end
  return submit(self, "chat", p, nil, "chat_async", nil, nil, nil, keys)
end

--- Starts a completion request without waiting; see `chat_async`.
-- @tparam table|string params
-- @treturn aigc.request
-- @usage local req = client:complete_async { prompt = "Once upon a time", max_tokens = 30 }
function Client:complete_async (params)
  check_self(self, "complete_async")
  local p, keys = call_params(self, "completion", params, "complete_async")
  return submit(self, "completion", p, nil, "complete_async", nil, nil, nil, keys)
end

--- Lists the models (`GET /models`).
-- @treturn[1] table the response (`res.data` is the list)
-- @treturn[2] nil
-- @treturn[2] aigc.error err
-- @usage for _, m in ipairs(assert(client:models()).data) do print(m.id) end
function Client:models ()
  check_self(self, "models")
  return await(self, submit(self, "get", nil, "/models", "models", nil, nil, "now"))
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
  check_self(self, "request")
  if method ~= "GET" and method ~= "POST" then argerror("request", 1, "method must be 'GET' or 'POST'") end
  if type(path) ~= "string" then argerror("request", 2, expected("string", path)) end
  if path:find("[%c%s]") then
    argerror("request", 2, "path contains a space or a control character: percent-encode it")
  end
  if method == "GET" then return await(self, submit(self, "get", nil, path, "request", nil, nil, "now")) end
  if type(body) ~= "table" then argerror("request", 3, expected("table (the body of a POST)", body)) end
  check.call(self, "request", 3, "json", body)
  return await(self, submit(self, "json", body, path, "request", 3, nil, "now"))
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
  check_self(self, "stream")
  local api = "chat"
  if type(params) == "table" and params.messages == nil and params.prompt ~= nil then api = "completion" end
  params = call_params(self, api, params, "stream")
  if layered(params) then
    -- The iterator streams one request; a toolset or a schema needs the
    -- dialogue layer's loop around several.
    argerror("stream", 1, "a toolset or a schema needs client:chat { ..., stream = function (delta) end }")
  end
  local s, p = stream_mod.new(self._loop, params)
  s.request = submit(self, api, p, nil, "stream")
  return s, nil, nil, s
end

-- }======================================================


-- {======================================================
-- Tasks, driving and lifecycle
-- =======================================================

local function check_open (self)
  if self._loop.closed then util.raise("attempt to use a closed client") end
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
  check_self(self, "spawn")
  if not check.is_callable(fn) then argerror("spawn", 1, expected("function", fn)) end
  check_open(self)
  return task.spawn(self._loop, fn, nil, ...)
end

--- Sleeps for `seconds`: inside a task it yields (other work goes on);
-- elsewhere it drives the engine meanwhile.
-- @tparam number seconds
-- @usage client:spawn(function () while true do npc:think(); client:sleep(2) end end)
function Client:sleep (seconds)
  check_self(self, "sleep")
  if not util.is_duration(seconds) then
    argerror("sleep", 1, expected("a number of seconds >= 0", seconds))
  end
  check_open(self)
  -- (outside a task it drives the loop, which a callback of that loop,
  -- running inside it, cannot: said here, at the caller's line)
  if not task.in_task() and self._loop.engine:in_callback() then
    util.raise("client:sleep() called from inside an aigc callback, outside a task: it would run "
               .. "the loop inside its own callback (sleep in a task, client:spawn, where it yields; "
               .. "or block with aigc.sleep(s))")
  end
  task.sleep(self._loop, seconds)
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
  check_self(self, "step")
  refuse_in_callback("client:step()")   -- (a dialogue's on_done, say: the core refuses its own)
  if timeout ~= nil and not util.is_duration(timeout) then
    argerror("step", 1, expected("a number of seconds >= 0", timeout))
  end
  if budget ~= nil and not (compat.is_integer(budget) and budget >= 0) then
    argerror("step", 2, expected("an integer >= 0", budget))
  end
  -- (the core counts in a C int: beyond, 5.3+ raised "no integer representation", 5.1 cast it)
  if budget ~= nil and budget > 2147483647 then budget = 2147483647 end
  local n, errors = relay("step", pcall(client_loop.step, self._loop, timeout, budget))
  if self._hook then self._hook.sweep(self) end   -- (requests that ended in this step: counted before dropped)
  return n, errors
end

--- The number of requests queued or running, plus the tasks of this
-- client still waiting (asleep, or on another client's request) and the
-- deliveries its loop has still to run: 0 when the client has nothing
-- left to do.
-- @treturn integer
-- @usage if client:active() == 0 then hide_spinner() end
function Client:active ()
  check_self(self, "active")
  return engine_call(self, "active", "active") + client_loop.pending(self._loop)
end

--- Closes the client: pending requests fail with kind "canceled", tasks
-- waiting on them are resumed, connections are closed. Idempotent.
-- @usage local client <close> = aigc.client()   -- (Lua 5.4) or client:close() when done
function Client:close ()
  check_self(self, "close")
  client_loop.close(self._loop)
  hooks.close(self)
  credentials.unlist_client(self._engine)
end

Client.__close = Client.close

--- For an external event loop (luv, cqueues, a game engine's poller):
-- `socket_fn(fd, what)` hears each socket to watch (`what` is "in", "out",
-- "inout" or "remove") and `timer_fn(seconds)` when to call `client:act()`
-- next (nil: no timer; the tasks' sleeps count, and a new request sets it
-- to 0). Then call `client:act(fd, events)` when a socket is ready
-- (`events` contains "r" and/or "w") and `client:act()` when the timer
-- fires (each such act() sets it again). `close()` reports "remove" for
-- every socket still watched and `timer_fn(nil)`. See examples/luv_loop.lua.
-- @tparam function socket_fn
-- @tparam function timer_fn
-- @usage client:watch(function (fd, what) watch_fd(fd, what) end, function (s) set_timer(s) end)
function Client:watch (socket_fn, timer_fn)
  check_self(self, "watch")
  return engine_call(self, "watch", "watch", socket_fn, timer_fn)
end

--- See `watch`. Returns what `active()` counts and, as `step()` does, the
-- callback errors reported since the last `step()` or `act()` (or nil).
-- On a closed client it does nothing and returns 0.
-- @tparam[opt] integer fd
-- @tparam[opt] string events
-- @treturn integer
-- @treturn[opt] table errors reported by callbacks and tasks
-- @usage poll:start("r", function (_, ev) client:act(fd, ev) end)
function Client:act (fd, events)
  check_self(self, "act")
  refuse_in_callback("client:act()")
  if fd ~= nil and not (compat.is_integer(fd) and fd >= 0 and fd < 2 ^ 31) then
    argerror("act", 1, expected("a file descriptor (an integer >= 0)", fd))
  end
  if events ~= nil and type(events) ~= "string" then argerror("act", 2, expected("string", events)) end
  if self._loop.closed then return 0 end   -- (an external loop's event left over from before close)
  local _, errors = engine_call(self, "act", "act", fd, events)
  -- The external loop is this client's loop: deliveries and sleeping
  -- tasks are its work too.
  client_loop.after_act(self._loop)
  if self._hook then self._hook.sweep(self) end
  return client_loop.count(self._loop), self._engine:take_errors(errors)   -- (and those raised since: client_loop.step)
end

--- The sockets libcurl waits on now: `{ [fd] = "in" | "out" | "inout" }`.
-- @treturn table
-- @usage for fd, what in pairs(client:sockets()) do print(fd, what) end
function Client:sockets ()
  check_self(self, "sockets")
  return engine_call(self, "sockets", "sockets")
end

--- Seconds until the engine next needs `act()` (or `step()`), or nil.
-- @treturn number|nil
-- @usage local s = client:timeout(); if s then timer:start(math.ceil(s * 1000), 0, on_timer) end
function Client:timeout ()
  check_self(self, "timeout")
  return engine_call(self, "timeout", "timeout")
end

function Client:__tostring ()
  return string_format("aigc.client (%s%s)", credentials.shown_url(self.base_url),   -- (no password shown)
                       self.model and (", model " .. self.model) or "")
end

-- }======================================================

-- Images, audio, moderations (aigc.media); files, embeddings (aigc.files);
-- usage totals, cache and cassette methods (aigc.hooks).
require("aigc.media").install(Client, submit, check_self)
require("aigc.files").install(Client, submit, check_self)
hooks.install(Client)
-- The Responses API's methods (lua/aigc/responses.lua).
require("aigc.responses").install(Client, { check_self = check_self, submit = submit, await = await })
require("aigc.conversations").install(Client, { check_self = check_self, submit = submit })

M.Client = Client

-- `aigc.client(opts)` calls M.new.
return setmetatable(M, { __call = function (_, opts)
  local client = M.new(opts)
  return client
end })
