--- The `aigc` command's configuration: where its files live, the config
-- file, named endpoints, and the client an invocation talks to.
--
-- Files live in `$AIGC_HOME` (default `${XDG_CONFIG_HOME:-~/.config}/aigc`):
-- `config.lua` (or `$AIGC_CONFIG`), `templates/`, `history` (the REPL's);
-- the log database is `aigc.promptlog.default_path()`.
--
-- config.lua is a Lua table (data only: no globals) or a JSON object:
--
--     {
--       model = "gpt-4o-mini",             -- the default model
--       endpoint = "openai",               -- the default endpoint (else $OPENAI_* decide)
--       endpoints = {
--         ["local"] = { base_url = "http://127.0.0.1:8089/v1", model = "aigc-dev" },
--         ollama = { base_url = "http://127.0.0.1:11434/v1", model = "llama3.2" },
--         work = { base_url = "https://llm.example.com/v1", api_key_env = "WORK_KEY" },
--       },
--       prices = { ["gpt-4o-mini"] = { input = 0.15, output = 0.60 } },   -- $ per 1M tokens
--       log = true,                        -- false: no prompt logs
--       client = { timeout = 120 },        -- any aigc.client option but secrets
--     }
--
-- An endpoint holds `aigc.client` options (`base_url`, `model`, `headers`,
-- `timeout`, Azure's...) and `api_key_env`, the variable that holds its key
-- (keys belong in the environment, not in files). `local` is built in: the
-- bundled server on its default port, sent no key.
--
-- @module aigc.cli.config

local aigc = require "aigc"
local template = require "aigc.template"
local usage = require "aigc.usage"
local util = require "aigc.util"
local credentials = require "aigc.credentials"

local M = {}

local ENOENT = 2   -- (io.open's code for a path with no file)

--- The built-in endpoints (a config file's endpoints override them).
M.BUILTIN_ENDPOINTS = {
  ["local"] = { base_url = "http://127.0.0.1:8089/v1", model = "aigc-dev", no_key = true },
  openai = { base_url = "https://api.openai.com/v1", api_key_env = "OPENAI_API_KEY" },
}

--- The model when nothing names one.
M.DEFAULT_MODEL = "gpt-4o-mini"

local function env (name)
  local v = os.getenv(name)
  if v == "" then return nil end
  return v
end
M.env = env

--- The directory of the command's files.
-- @treturn string
function M.home ()
  local h = env("AIGC_HOME")
  if h then return h end
  local base = env("XDG_CONFIG_HOME") or ((env("HOME") or ".") .. "/.config")
  return base .. "/aigc"
end

--- The directory of templates: `$AIGC_TEMPLATES`, else `HOME/templates`.
-- @treturn string
function M.templates_dir ()
  return env("AIGC_TEMPLATES") or (M.home() .. "/templates")
end

--- The config file's path.
-- @treturn string
function M.path ()
  return env("AIGC_CONFIG") or (M.home() .. "/config.lua")
end

--- mkdir -p.
-- @tparam string dir
function M.mkdir (dir)
  -- 0700 (the last one): it holds prompts, replies and the REPL's history
  -- (umask 077: every directory it makes is 0700; `mkdir -p -m 700` made
  -- only the last one so, an $AIGC_HOME made on the way stayed 0755)
  os.execute("(umask 077 && mkdir -p '" .. dir:gsub("'", "'\\''") .. "') 2>/dev/null")
end

local CONFIG_FIELDS = {
  model = "string", endpoint = "string", endpoints = "table", prices = "table", log = "boolean",
  client = "table", log_db = "string",
}
-- (`params` was taken and never used: a default temperature there changed nothing)
local UNKNOWN_HINTS = { params = " (request params go in a template's params, or -o KEY=VALUE)" }

-- `msg` ("... expected, got string") saying the value itself when it is a
-- string where a number, an integer or a boolean belongs (`got "abc"`); a string
-- where a table or a string belongs is never shown: it may be a key.
local function with_value (msg, v)
  local what = msg:match("^(.*) expected, got string$")
  if type(v) ~= "string" or not what or what:find("string", 1, true) or what:find("table", 1, true)
     or not (what:find("number", 1, true) or what:find("integer", 1, true) or what:find("boolean", 1, true)) then
    return msg
  end
  local text = #v > 40 and v:sub(1, 37) .. "..." or v
  return what .. " expected, got " .. string.format("%q", text):gsub("\\\n", "\\n")
end

-- The credential header a `headers` table of the file holds (its name as
-- written), or nil: a key there is a secret in the file, as an api_key is.
local function credential_header (headers)
  if type(headers) ~= "table" then return nil end   -- (the client says what is wrong)
  for name, v in pairs(headers) do
    if type(name) == "string" and credentials.credential_header(name) and type(v) == "string" then return name end
  end
end

local function secret_in_file (at)
  return at .. " is a secret, which a config file may not hold (a key: name its environment variable "
    .. "with api_key_env)"
end

-- The setting of the client options `o` (at `at`) that holds a credential
-- in a URL or a query: a password in base_url's user info
-- ("https://user:pass@host/"), a `?api-key=` or `?key=` in it (or in
-- azure_endpoint, proxy), a credential-like `query` parameter. The file
-- would hold the key, and logs, errors and the run's output showed it.
local URL_OPTIONS = { "base_url", "azure_endpoint", "proxy" }
local function url_secret (o, at)
  if type(o) ~= "table" then return nil end
  for _, k in ipairs(URL_OPTIONS) do
    if type(o[k]) == "string" and #credentials.url_secrets(o[k], {}) > 0 then
      return at .. "." .. k .. " holds a credential (a password or a key in the URL), which a config "
        .. "file may not hold (a key: name its environment variable with api_key_env)"
    end
  end
  for name, v in pairs(type(o.query) == "table" and o.query or {}) do
    if credentials.secret_param(name) and v ~= "" then return secret_in_file(util.path(at .. ".query", name)) end
  end
end

-- What is wrong with the settings' values, or nil (the settings' types are checked).
local function config_problem (t)
  local client_header = credential_header(type(t.client) == "table" and t.client.headers)
  if client_header then return secret_in_file(util.path(util.path("client", "headers"), client_header)) end
  local in_url = url_secret(t.client, "client")
  if in_url then return in_url end
  for name, e in pairs(t.endpoints or {}) do
    local at = util.path("endpoints", name)
    -- (a list, `endpoints = { { base_url = ... } }`, was taken; `-e NAME` then
    -- sorted the names for its message and stopped with an internal error)
    if type(name) ~= "string" then
      return at .. ": an endpoint name (a string) expected as the key, got " .. type(name)
    end
    -- ([""] was taken: `-e ""` and `endpoint = ""` then used it, silently)
    if name == "" then return at .. ": an endpoint name expected as the key, got an empty string" end
    if type(e) ~= "table" then return "endpoint '" .. tostring(name) .. "' must be a table" end
    local header = credential_header(e.headers)
    if header then return secret_in_file(util.path(util.path(at, "headers"), header)) end
    in_url = url_secret(e, at)
    if in_url then return in_url end
    if e.api_key ~= nil then
      return "endpoint '" .. tostring(name) .. "' has an api_key: put the key in the "
        .. "environment and name the variable with api_key_env"
    end
    if e.azure_ad_token ~= nil then return secret_in_file(at .. ".azure_ad_token") end
    if e.api_key_env ~= nil and type(e.api_key_env) ~= "string" then
      return at .. ".api_key_env: " .. util.expected("the name of an environment variable (a string)", e.api_key_env)
    end
    -- (the model goes into every request: 5 was "invalid input: params.model", naming no setting, and "" was sent)
    if e.model ~= nil and (type(e.model) ~= "string" or e.model == "") then
      return at .. ".model: " .. (e.model == "" and "a model name expected, got an empty string"
                                  or util.expected("a model name (a string)", e.model))
    end
    if e.no_key ~= nil and type(e.no_key) ~= "boolean" then
      return at .. ".no_key: " .. with_value(util.expected("boolean", e.no_key), e.no_key)
    end
  end
  local at, why, v = usage.prices_problem(t.prices or {})
  if at then return "prices" .. at .. ": " .. with_value(why, v) end
end

--- The most a config file may be (it may be a pipe: `AIGC_CONFIG=<(...)`).
M.MAX_BYTES = 1024 * 1024

--- Loads the config file (none is an empty config).
-- @treturn[1] table config
-- @treturn[2] nil
-- @treturn[2] string message
function M.load ()
  local path = M.path()
  local text, rerr, code = template.read_file(path, M.MAX_BYTES, "a config file")
  if code == "limit" then return nil, rerr end
  -- (no file there: no config. Anything else that cannot be read -- a
  -- directory, no permission -- is the user's to know: it was taken silently)
  if text == nil and code ~= ENOENT then return nil, "cannot read the config file " .. tostring(rerr) end
  -- (a mistyped $AIGC_CONFIG was taken as no config, the settings it meant left out without a word)
  if text == nil and env("AIGC_CONFIG") then return nil, "no config file " .. path .. " (named by $AIGC_CONFIG)" end
  if text == nil then return { path = path, endpoints = {}, prices = {} } end
  local t, err = template.load_data(text, path)
  if not t then return nil, "bad config file " .. err end
  for k, v in pairs(t) do
    local want = CONFIG_FIELDS[k]
    if want == nil then return nil, path .. ": unknown setting '" .. tostring(k) .. "'" .. (UNKNOWN_HINTS[k] or "") end
    if type(v) ~= want then return nil, path .. ": '" .. k .. "' must be a " .. want .. ", got " .. type(v) end
  end
  if t.model == "" then return nil, path .. ": 'model' is empty: a model name expected" end
  if t.endpoint == "" then return nil, path .. ": 'endpoint' is empty: an endpoint name expected" end
  local why = config_problem(t)
  if why then return nil, path .. ": " .. why end
  t.path = path
  t.endpoints = t.endpoints or {}
  t.prices = t.prices or {}
  return t
end

--- The endpoint named `name` (config first, then built in), or nil, message.
-- @tparam table config
-- @tparam string name
-- @treturn table|nil
-- @treturn[opt] string
function M.endpoint (config, name)
  local e = config.endpoints[name] or M.BUILTIN_ENDPOINTS[name]
  if not e then
    local names = {}
    for n in pairs(M.BUILTIN_ENDPOINTS) do names[#names + 1] = n end
    for n in pairs(config.endpoints) do if not M.BUILTIN_ENDPOINTS[n] then names[#names + 1] = n end end
    table.sort(names)
    return nil, "no endpoint named '" .. name .. "' (known: " .. table.concat(names, ", ") .. ")"
  end
  return e
end

--- The client options of an invocation: the config's `client` settings,
-- the endpoint's (`-e NAME`, else the config's `endpoint`, else the
-- environment's OPENAI_* as aigc.client reads them), and the secrets to
-- scrub from logs.
-- @tparam table config
-- @tparam[opt] string endpoint_name
-- @treturn[1] table opts for aigc.client
-- @treturn[1] table secrets
-- @treturn[1] table|nil the endpoint
-- @treturn[1] table where each option comes from, for messages (`client.timeout`, `endpoints.work.timeout`)
-- @treturn[2] nil
-- @treturn[2] string message
function M.client_options (config, endpoint_name)
  local opts, secrets, from = {}, {}, {}
  for k, v in pairs(config.client or {}) do
    if k == "api_key" or k == "azure_ad_token" then
      return nil, config.path .. ": client." .. k .. " is a secret: put it in the environment"
    end
    opts[k], from[k] = v, util.path("client", k)
  end
  local name = endpoint_name or env("AIGC_ENDPOINT") or config.endpoint
  local e
  if name then
    local err
    e, err = M.endpoint(config, name)
    if not e then return nil, err end
    for k, v in pairs(e) do
      if k ~= "api_key_env" and k ~= "no_key" and k ~= "model" then
        opts[k], from[k] = v, util.path(util.path("endpoints", name), k)
      end
    end
    -- An endpoint that names its key's variable gets that key or none: with
    -- the variable unset, the client's default ($OPENAI_API_KEY, Azure's)
    -- went to the endpoint's server, a key of another provider.
    local key = e.api_key_env and env(e.api_key_env)
    -- (refused -- blank, a CR -- the message named opts.api_key, an option the user never set)
    if key then opts.api_key, from.api_key = key, "$" .. e.api_key_env
    elseif (e.no_key or e.api_key_env) and (opts.headers == nil or type(opts.headers) == "table") then
      local h = {}   -- (else the client says what is wrong)
      for k, v in pairs(opts.headers or {}) do h[k] = v end
      h.Authorization, h["api-key"] = aigc.null, aigc.null
      opts.headers = h
    end
  end
  local key = opts.api_key or env("OPENAI_API_KEY")
  if key and not (e and e.no_key) then secrets[#secrets + 1] = key end
  for _, v in ipairs { "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_AD_TOKEN" } do
    if env(v) then secrets[#secrets + 1] = env(v) end
  end
  return opts, secrets, e, from
end

--- The message of a client the options of `client_options` did not make:
-- a misuse the client refused (`opts.timeout: ...`) names the config
-- file and the setting it came from, with no Lua source position
-- (`config.lua: client.timeout: a number of seconds > 0 expected, got "abc"`).
-- @tparam table config
-- @param err the error aigc.client raised
-- @tparam table opts the options
-- @tparam table from where each came from (`client_options`'s)
-- @treturn string
function M.client_error (config, err, opts, from)
  local msg = tostring(err)
  msg = msg:match("^[^\n]-:%d+: (bad argument .*)$") or msg
  local inner = msg:match("^bad argument #1 to 'client' %((.*)%)$")
  if not inner then return "cannot make the client: " .. msg end
  for k, where in pairs(from) do
    local p = util.path("opts", k)
    local tail = inner:sub(#p + 1)
    if inner:sub(1, #p) == p and tail:find("^[:%.%[]") then
      if where:sub(1, 1) == "$" then return "cannot make the client: " .. where .. tail end   -- (a key: not shown)
      if tail:sub(1, 2) == ": " then tail = ": " .. with_value(tail:sub(3), opts[k]) end
      return config.path .. ": " .. where .. tail
    end
  end
  return "cannot make the client: " .. inner   -- ($OPENAI_BASE_URL...: not the config's)
end

--- The model of an invocation: `-m`, else the template's, else the
-- endpoint's, else the config's (`model`, else `client.model`: an
-- aigc.client option there was taken and never sent), else $AIGC_MODEL,
-- else DEFAULT_MODEL.
-- @treturn string
function M.model (config, endpoint, explicit, template_model)
  local client_model = type(config.client) == "table" and config.client.model or nil
  return explicit or template_model or (endpoint and endpoint.model) or config.model or client_model
    or env("AIGC_MODEL") or M.DEFAULT_MODEL
end

--- The price of a model: `{ input =, output = }` in $ per 1M tokens, or nil.
-- A price named by a prefix of the model applies too ("gpt-4o" for "gpt-4o-2024-08-06").
-- @tparam table prices
-- @tparam string model
-- @treturn table|nil
function M.price (prices, model)
  if type(model) ~= "string" then return nil end
  if prices[model] then return prices[model] end
  local best, best_len = nil, 0
  for name, p in pairs(prices) do
    if type(name) == "string" and model:sub(1, #name) == name and #name > best_len then best, best_len = p, #name end
  end
  return best
end

return M
