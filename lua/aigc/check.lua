--- The one place that knows what a call may hold, and the rules misuse
-- is judged by.
--
-- Internal: not part of the API. Every public function of the Lua layer
-- checks its arguments here before anything happens, so a misuse raises
-- `bad argument #N to 'FN' (PATH: MESSAGE)` at the caller's line
-- (`aigc.util`), whichever path the call takes (blocking, `chat_async`,
-- the stream iterator, a conversation, a strategy).
--
-- What a chat or completion call holds, top level:
--
-- - **per-call options** (`call_options`): configure the call, never sent.
--   The list and each option's rule are the C core's (`core.call_options`):
--   the encoder leaves out exactly these names;
-- - **dialogue options** (`DIALOGUE_OPTIONS`): consumed by the dialogue
--   layer (`schema`, `max_tool_rounds`...), never sent;
-- - **known request fields** (`CHAT_FIELDS`, `COMPLETION_FIELDS`): sent,
--   their types checked (`temperature = "hot"` raises; `messages` must be
--   a list of messages, each a table with a string `role`); `aigc.null`
--   passes for any of them (it sends JSON null);
-- - anything else: sent as it is (new API fields, a server's extras). One
--   edit away from a known name (`max_token`), it is logged once as a
--   likely typo: through the client's `log` (level "warn"), else once per
--   process on stderr.
--
-- @module aigc.check
-- @local

local core = require "aigc.core"
local compat = require "aigc.compat"
local util = require "aigc.util"
local credentials = require "aigc.credentials"

local getmetatable, ipairs, next, pairs, rawget, select, tonumber, tostring, type =
  getmetatable, ipairs, next, pairs, rawget, select, tonumber, tostring, type
local floor, huge = math.floor, math.huge
local string_format = string.format
local is_integer = compat.is_integer
local expected, field_error = util.expected, util.field_error
local null = core.null

util.own_module()

local M = {}

-- {======================================================
-- Rules: what a value must be, as data (the C core exports its options
-- in this shape)
-- =======================================================

-- A rule is { type = T[, min =, max =, false_ok = true, oneof = {...}] } with T one of
-- "seconds", "integer", "number", "string", "boolean", "table", "function"
-- (anything callable), "stream" (a boolean or a callable).

--- Whether `v` can be called: a function, or a value whose metatable has `__call`.
-- @param v
-- @treturn boolean
function M.is_callable (v)
  if type(v) == "function" then return true end
  local mt = getmetatable(v)
  return type(mt) == "table" and mt.__call ~= nil
end
local is_callable = M.is_callable

local function range (rule)
  return string_format("%.14g..%.14g", rule.min, rule.max)
end

--- Why `v` breaks `rule`, or nil when it does not.
-- @tparam table rule
-- @param v
-- @treturn string|nil
function M.rule_problem (rule, v)
  local t = rule.type
  if t == "seconds" then
    if v == false and rule.false_ok then return nil end
    if type(v) ~= "number" or not (v > 0 and v <= 1e9) then
      local what = type(v) == "number" and v > 1e9 and "a number of seconds > 0 and at most 1e9"
        or "a number of seconds > 0"
      return expected(rule.false_ok and what .. " or false" or what, v)
    end
  elseif t == "integer" then
    if not is_integer(v) or (rule.min and v < rule.min) or (rule.max and v > rule.max) then
      local what = "an integer"
      if rule.max then what = "an integer in " .. range(rule)
      elseif rule.min then what = string_format("an integer >= %.14g", rule.min) end
      return expected(what, v)
    end
  elseif t == "function" then
    if not is_callable(v) then return expected("function", v) end
  elseif t == "stream" then
    if type(v) ~= "boolean" and not is_callable(v) then return expected("boolean or function", v) end
  elseif type(v) ~= t then
    return expected(t, v)
  elseif rule.oneof and not rule.oneof[v] then
    return rule.oneof_text .. " expected, got '" .. tostring(v) .. "'"
  end
  return nil
end
local rule_problem = M.rule_problem

--- The priority classes of the max_concurrency queue (the C core's, roster.h),
-- first served first: a call's `priority`, the keys of the client's
-- `max_concurrency_by_priority`.
M.PRIORITIES = { "interactive", "normal", "background" }
local PRIORITY_RULE = { type = "string", oneof = {}, oneof_text = "'interactive', 'normal' or 'background'" }
for _, name in ipairs(M.PRIORITIES) do PRIORITY_RULE.oneof[name] = true end

-- The value rules of the options the C core reads, in the core's terms
-- (request.c / engine.c read them with the same bounds; spec/check_spec.lua
-- holds the two to each other).
local BYTES = { type = "integer", min = 1, max = 2 ^ 40 }
local ENGINE_RULES = {
  timeout = { type = "seconds" }, connect_timeout = { type = "seconds" },
  deadline = { type = "seconds", false_ok = true },
  max_retries = { type = "integer", min = 0, max = 100 },
  max_concurrency = { type = "integer", min = 0, max = 1000000 },
  max_starts_per_step = { type = "integer", min = 0, max = 1000000 },
  max_bytes_per_step = { type = "integer", min = 0, max = 2 ^ 40 },
  max_response_bytes = BYTES, max_json_values = BYTES, max_json_containers = BYTES,
  on_done = { type = "function" }, on_error = { type = "function" },
  on_stream_end = { type = "function" }, priority = PRIORITY_RULE,
}
local CLIENT_RULES = {   -- (per-call options the Lua layer reads)
  headers = { type = "table" }, extra_headers = { type = "table" },
  query = { type = "table" }, extra_query = { type = "table" },
  idempotency_key = { type = "string" },
}
local ENCODER_RULES = { extra_body = { type = "table" } }   -- (its fields are sent as they are)

--- The options the dialogue layer consumes (never sent), with the params
-- field each one needs: a schema or a toolset.
M.DIALOGUE_OPTIONS = {
  schema = { type = "table" }, schema_name = { type = "string", needs = "schema" },
  schema_mode = { type = "string", needs = "schema" }, schema_strict = { type = "boolean", needs = "schema" },
  max_tool_rounds = { type = "integer", min = 0, needs = "tools" },
  tool_errors = { type = "string", needs = "tools" },
}
local DIALOGUE_OPTIONS = M.DIALOGUE_OPTIONS

--- The per-call options, never sent in the body: name -> rule. The list
-- is the C core's (`core.call_options`: the encoder leaves out exactly
-- these names, and `stream`); each option's rule is its reader's.
M.call_options = { stream = { type = "stream" } }
for name, reader in pairs(core.call_options) do
  local rule = (reader == "engine" and ENGINE_RULES or reader == "client" and CLIENT_RULES
                or reader == "encoder" and ENCODER_RULES or DIALOGUE_OPTIONS)[name]
  if rule == nil then error("aigc.check: no rule for the per-call option " .. name .. " (" .. reader .. ")") end
  if reader ~= "dialogue" then M.call_options[name] = rule end
end
for name in pairs(DIALOGUE_OPTIONS) do
  if core.call_options[name] ~= "dialogue" then error("aigc.check: the core sends the dialogue option " .. name) end
end
local call_options = M.call_options

-- The client's options: name -> rule. The engine's own (timeouts,
-- limits) are the core's; the rest are the Lua layer's.
local CLIENT_OPTIONS = {
  base_url = { type = "string" }, api_key = { type = "string" }, model = { type = "string" },
  organization = { type = "string" }, project = { type = "string" },
  headers = { type = "table" }, query = { type = "table" }, idempotency = { type = "boolean" },
  ca_file = { type = "string" }, ca_path = { type = "string" }, proxy = { type = "string" },
  insecure = { type = "boolean" }, require_done = { type = "boolean" },
  log = { type = "function" }, log_bodies = { type = "boolean" },
  error_handler = { type = "function" },
  azure = { type = "boolean" }, provider = { type = "string" }, endpoint = { type = "string" },
  api_version = { type = "string" }, azure_ad_token = { type = "string" },
  azure_ad_token_provider = { type = "function" },
}
for _, name in ipairs { "timeout", "connect_timeout", "max_retries", "max_concurrency", "max_starts_per_step",
                       "max_bytes_per_step", "max_response_bytes", "max_json_values", "max_json_containers" } do
  CLIENT_OPTIONS[name] = ENGINE_RULES[name]
end
CLIENT_OPTIONS.deadline = { type = "seconds" }   -- (false only turns a client's default off in a call)
CLIENT_OPTIONS.max_concurrency_by_priority = { type = "table" }   -- (its fields: client_options)
M.CLIENT_OPTIONS = CLIENT_OPTIONS


-- }======================================================


-- {======================================================
-- What the encoder sends of a table
-- =======================================================

-- The checks judge a table as the encoder (src/jsonlua.c) will send it,
-- read the way it reads it (the README's "Marshalling tables with
-- metatables"): never more items (a proxy's __index may answer every key,
-- so reading up to the first nil may never end) and never other fields (a
-- __pairs table's fields are what pairs gives). Like the encoder, this
-- calls __len and __pairs itself, so the rules are the same on every Lua
-- (5.1 and LuaJIT's # and pairs() do not call them on tables), and reads
-- the real metatable (a __metatable field hides nothing from the encoder).
local debug_getmetatable = compat.getmetatable
local ARRAY_MT = core.array_mt
local PAIRS_MAX = 2 ^ 24   -- (the encoder's PAIRS_MAX and CHAIN_MAX)
local CHAIN_MAX = 100
local NO_LIST = "cannot encode a table whose __index is a function and whose metatable has no __pairs "
  .. "(its fields cannot be listed: give the metatable __pairs, or pass a plain table)"

-- What pairs(t) gives, through its metatable's __pairs (jsonlua.c's
-- push_pairs_snapshot): a plain table, or nil and why.
local function pairs_snapshot (t, p)
  if not is_callable(p) then return nil, "its __pairs is not callable" end
  local f, s, c = p(t)
  local snap, count = {}, 0
  while true do
    local k, v = f(s, c)
    if k == nil then return snap end
    count = count + 1
    if count > PAIRS_MAX then return nil, "its __pairs gave more than 16777216 entries" end
    c = k
    if v ~= nil and k == k then snap[k] = v end   -- (a nil value is no entry, a NaN key none either)
  end
end

-- t's own fields, then those it inherits through its chain of __index
-- tables that it does not override, neither functions nor "__" keys
-- (jsonlua.c's push_chain_snapshot): a plain table, or nil and why.
local function chain_snapshot (t)
  local snap, seen, level, at_level = {}, {}, 0, t
  for k, v in next, t do snap[k] = v end
  while true do
    local mt = debug_getmetatable(at_level)
    local index = mt and rawget(mt, "__index")
    if index == nil then return snap end
    if type(index) ~= "table" then return nil, NO_LIST end
    level = level + 1
    if seen[index] or index == t or level > CHAIN_MAX then
      return nil, "its __index chain comes back to a table already in it (a cycle), or is longer than 100 tables"
    end
    seen[index] = true
    for k, v in next, index do
      if type(v) ~= "function" and not (type(k) == "string" and k:sub(1, 2) == "__") and snap[k] == nil then
        snap[k] = v
      end
    end
    at_level = index
  end
end

--- How the encoder reads the table `t`: `items, n` where `items` is a
-- table to read `items[i]` and `items.field` from, and `n` the number of
-- list items (a `__len` proxy: `n` items, each `t[i]`) or nil (the items
-- run up to the first nil). `t` itself when it has no metatable, the
-- aigc.array mark, or none of `__len`, `__pairs`, `__index`; a snapshot
-- for `__pairs` (what pairs gives) and for a chain of `__index` tables.
-- `nil, why` when the encoder refuses `t` (a function `__index` without
-- `__pairs`, a cycle, a bad `__len`): `why` is the encoder's own words.
-- @tparam table t
-- @treturn[1] table items
-- @treturn[1] integer|nil n
-- @treturn[2] nil
-- @treturn[2] string why
function M.as_sent (t)
  local mt = debug_getmetatable(t)
  if mt == nil or mt == ARRAY_MT then return t end
  local len = rawget(mt, "__len")
  if len ~= nil then
    if not is_callable(len) then return nil, "its __len is not callable" end
    local n = tonumber((len(t)))
    if n == nil or n ~= floor(n) then return nil, "object length is not an integer" end
    if n < 0 then return nil, "its __len gave a negative length" end
    return t, n
  end
  local p = rawget(mt, "__pairs")
  if p ~= nil then return pairs_snapshot(t, p) end
  if rawget(mt, "__index") ~= nil then return chain_snapshot(t) end
  return t
end
local as_sent = M.as_sent

--- The items of the list `v`, as the encoder sends them, in a new plain
-- table (for a copy the library extends: a dialogue's history). `v` has
-- passed the checks.
-- @tparam table v
-- @treturn table
function M.list_copy (v)
  local items, n = as_sent(v)
  local copy = {}
  if items == nil then return copy end
  for i = 1, n or huge do
    local x = items[i]
    if x == nil and not n then break end
    copy[i] = x
  end
  return copy
end

-- }======================================================


-- {======================================================
-- Request fields
-- =======================================================

local function is_list (v)   -- (a table whose first item is set, or an empty one)
  return type(v) == "table" and (v[1] ~= nil or next(v) == nil or core.is_array(v))
end

-- Field rules: a type name, or a function (v, path[, key]) -> problem | nil,
-- the field being `path.key` (or `path` without a key). The name is made
-- only for a problem: checks run on every call, and making a path string
-- per field and per message cost more than the rest of the checks.
local function at (path, key)
  if key == nil then return path end
  return path .. "." .. tostring(key)
end

-- A list read as the encoder reads it (`as_sent`): `items, n`, or false
-- when `v` is not a list, or `nil, why` when the encoder refuses it.
local function as_list (v)
  if type(v) ~= "table" then return false end
  local items, n = as_sent(v)
  if items == nil then return nil, n end
  if n == nil and not is_list(items) then return false end
  return items, n
end

-- Why the items of a list break `rule` (a type name; `what` names it), or
-- nil. Walks exactly what the encoder sends: `n` items when `n` is given,
-- else up to the first nil (a raw table's sequence).
local function items_problem (v, path, key, rule, what, list_what)
  if type(v) == "string" and rule == "string" then return nil end
  local items, n = as_list(v)
  if items == false then return at(path, key) .. ": " .. expected(list_what, v) end
  if items == nil then return at(path, key) .. ": " .. n end
  for i = 1, n or huge do
    local x = items[i]
    if x == nil and not n then return nil end
    if type(x) ~= rule then return string_format("%s[%d]: %s", at(path, key), i, expected(what, x)) end
  end
  return nil
end

M.items_problem = items_problem   -- (for aigc.check_history)

local function list_of_strings (v, path, key)
  return items_problem(v, path, key, "string", "string", "string or list of strings")
end

-- A message, path[i]: a table with a string role, as the encoder sends it.
-- (What it holds besides is the server's to judge: a history may hold
-- whatever a server sent.)
local function message_problem (m, path, i)
  if type(m) ~= "table" then return path .. "[" .. i .. "]: " .. expected("message table", m) end
  local fields, n = as_sent(m)
  if fields == nil then return path .. "[" .. i .. "]: " .. n end
  local role = nil
  if n == nil then role = fields.role end   -- (with __len it is sent as an array: no role)
  if type(role) ~= "string" then return path .. "[" .. i .. "].role: " .. expected("string", role) end
  return nil
end

-- `messages`: a list of tables with a string role. A single message given
-- as the list (`messages = { role = "user", content = "Hi" }`) says so.
local function messages_problem (v, path, key)
  if type(v) ~= "table" then return at(path, key) .. ": " .. expected("list of messages", v) end
  local items, n = as_sent(v)
  if items == nil then return at(path, key) .. ": " .. n end
  if n == nil and items[1] == nil then
    path = at(path, key)
    if items.role ~= nil then
      return path .. ": a list of messages expected, got one message"
        .. " (write messages = { { role = ..., content = ... } })"
    end
    if not is_list(items) then
      return path .. ": a list of messages expected, got a table with key '" .. tostring(next(items)) .. "'"
    end
    return nil
  end
  for i = 1, n or huge do
    local m = items[i]
    if m == nil and not n then return nil end
    -- (The usual message, a plain table with a string role, is judged
    -- without a call or a name.)
    if type(m) ~= "table" or debug_getmetatable(m) ~= nil or type(m.role) ~= "string" then
      local why = message_problem(m, at(path, key), i)
      if why then return why end
    end
  end
  return nil
end

local function prompt_problem (v, path, key)
  if type(v) == "string" then return nil end
  local items, why = as_list(v)
  if items == false then return at(path, key) .. ": " .. expected("string or list", v) end
  if items == nil then return at(path, key) .. ": " .. why end
  return nil
end

local function tools_problem (v, path, key)
  if util.is_a(v, "aigc.toolset") then return nil end
  return items_problem(v, path, key, "table", "tool definition table",
                       "list of tool definitions or an aigc.toolset")
end

local function string_or_table (v, path, key)
  if type(v) == "string" or type(v) == "table" then return nil end
  return at(path, key) .. ": " .. expected("string or table", v)
end

local SAMPLING = {
  model = "string", engine = "string", temperature = "number", top_p = "number", n = "integer", max_tokens = "integer",
  presence_penalty = "number", frequency_penalty = "number", stop = list_of_strings, logit_bias = "table",
  user = "string", seed = "integer", stream_options = "table",
}

--- The known fields of a chat completion request: name -> rule.
M.CHAT_FIELDS = util.merge(SAMPLING, {
  messages = messages_problem, max_completion_tokens = "integer", logprobs = "boolean",
  top_logprobs = "integer", tools = tools_problem, tool_choice = string_or_table,
  parallel_tool_calls = "boolean", response_format = "table", service_tier = "string", store = "boolean",
  metadata = "table", reasoning_effort = "string", modalities = list_of_strings, audio = "table",
  prediction = "table", web_search_options = "table", functions = "table", function_call = string_or_table,
  verbosity = "string", prompt_cache_key = "string", safety_identifier = "string",
})

--- The known fields of a (legacy) completion request: name -> rule.
M.COMPLETION_FIELDS = util.merge(SAMPLING, {
  prompt = prompt_problem, suffix = "string", logprobs = "integer", echo = "boolean", best_of = "integer",
})

-- `input` (Responses API): a string, or a list of items (tables).
local function input_problem (v, path)
  if type(v) == "string" then return nil end
  return items_problem(v, path, nil, "table", "input item table", "string or list of input items")
end

--- The known fields of a Responses API request (`POST /responses`): name -> rule.
M.RESPONSES_FIELDS = {
  model = "string", input = input_problem, instructions = "string", tools = tools_problem,
  tool_choice = string_or_table, parallel_tool_calls = "boolean", text = "table", previous_response_id = "string",
  store = "boolean", reasoning = "table", max_output_tokens = "integer", max_tool_calls = "integer",
  temperature = "number", top_p = "number", top_logprobs = "integer", metadata = "table", truncation = "string",
  user = "string", safety_identifier = "string", prompt_cache_key = "string", include = list_of_strings,
  background = "boolean", service_tier = "string", stream_options = "table", conversation = string_or_table,
  prompt = "table", prompt_cache_retention = "string",
}

local FIELDS = { chat = M.CHAT_FIELDS, completion = M.COMPLETION_FIELDS, responses = M.RESPONSES_FIELDS }

-- The rules above take (v, path, key); a rule function added elsewhere
-- takes (v, path) with the field's whole name.
local LAZY_RULES = { [list_of_strings] = true, [messages_problem] = true, [prompt_problem] = true,
                     [tools_problem] = true, [string_or_table] = true }
local TYPE_NAMES = { string = true, boolean = true, table = true, ["function"] = true, userdata = true,
                     thread = true, ["nil"] = true }

-- (Runs for every field of every call: the type names are compared as
-- strings first, so a field costs one C call -- type() or math.type, ~300
-- instructions each on Lua 5.4 -- not two.)
local function field_problem (rule, v, path, key)
  if v == null then return nil end
  if rule == "integer" then
    if not is_integer(v) then return at(path, key) .. ": " .. expected("integer", v) end
  elseif rule == "number" then
    if type(v) ~= "number" or v ~= v then return at(path, key) .. ": " .. expected("number", v) end
  elseif LAZY_RULES[rule] then
    return rule(v, path, key)
  elseif TYPE_NAMES[rule] then
    if type(v) ~= rule then return at(path, key) .. ": " .. expected(rule, v) end
  else
    return rule(v, at(path, key))
  end
  return nil
end

-- }======================================================


-- {======================================================
-- Headers and query strings
-- =======================================================

--- Why a header is refused, or nil: the C core's rule (`core.header_problem`:
-- the name an HTTP token, no CR, LF or NUL), for a value that is a string,
-- a number or `aigc.null` (which removes a default).
-- @param name
-- @param value
-- @treturn string|nil
function M.header_problem (name, value)
  if type(name) ~= "string" then return "header names must be strings, got " .. util.describe(name) end
  -- (a whole "Authorization: Bearer KEY" line given as a name: shown without what follows a
  -- credential header's name, the key)
  local head, sep = string.match(name, "^([^:%s]+)([:%s]+)%S")
  local shown = head and credentials.credential_header(head) and head .. sep .. "[redacted]" or name
  shown = (string_format("%q", shown):gsub("\\\n", "\\n"))   -- (one line, whatever the name holds)
  if value == null then value = "" end
  if type(value) ~= "string" and type(value) ~= "number" then
    return "header " .. shown .. ": " .. expected("string, number or aigc.null", value)
  end
  local why = core.header_problem(name, tostring(value))
  if why then return "header " .. shown .. " " .. why end
  return nil
end
local header_problem = M.header_problem

local function headers_problem (h, path)
  if type(h) ~= "table" then return path .. ": " .. expected("table", h) end
  for name, value in pairs(h) do
    local why = header_problem(name, value)
    if why then return path .. ": " .. why end
  end
  return nil
end
M.headers_problem = headers_problem

local function query_problem (q, path)
  if type(q) ~= "table" then return path .. ": " .. expected("table", q) end
  for k, v in pairs(q) do
    if type(k) ~= "string" then return path .. ": keys must be strings, got " .. util.describe(k) end
    local tv = type(v)
    if v ~= null and tv ~= "string" and tv ~= "number" and tv ~= "boolean" then
      return path .. "." .. k .. ": " .. expected("string, number, boolean or aigc.null", v)
    end
  end
  return nil
end
M.query_problem = query_problem

-- }======================================================


-- {======================================================
-- Likely typos
-- =======================================================

-- Whether a and b are one edit apart: one character inserted, deleted,
-- replaced, or two neighbours swapped.
local function one_edit (a, b)
  local la, lb = #a, #b
  if la > lb then a, b, la, lb = b, a, lb, la end
  if lb - la > 1 or a == b then return false end
  local i = 1
  while i <= la and a:byte(i) == b:byte(i) do i = i + 1 end
  if la == lb then
    if a:sub(i + 1) == b:sub(i + 1) then return true end   -- replaced
    return a:sub(i, i) == b:sub(i + 1, i + 1) and a:sub(i + 1, i + 1) == b:sub(i, i)
       and a:sub(i + 2) == b:sub(i + 2)                     -- swapped
  end
  return a:sub(i) == b:sub(i + 1)                           -- inserted
end
M.one_edit = one_edit

--- The known name `key` is one edit away from, or nil. Names of fewer
-- than 4 characters are never taken for typos (`n`, `top`...).
-- @tparam string key
-- @tparam table ... sets of known names
-- @treturn string|nil
function M.likely_typo (key, ...)
  if type(key) ~= "string" or #key < 4 then return nil end
  for i = 1, select("#", ...) do
    for name in pairs((select(i, ...))) do
      if one_edit(key, name) then return name end
    end
  end
  return nil
end
local likely_typo = M.likely_typo

local warned_on_stderr = {}

-- Tells once that `key` looks like a typo of `known`.
local function warn_typo (client, path, key, known)
  local msg = string_format("%s is not a known field (did you mean %s?): sent as it is", path, known)
  local log = client and client._log
  if log then
    local warned = client._typos
    if warned[key] then return end
    warned[key] = true
    local ok, e = pcall(log, "warn", msg)
    if not ok then util.report(client, util.callback_error("the log function", e)) end
  elseif not warned_on_stderr[key] then
    warned_on_stderr[key] = true
    io.stderr:write("aigc: warning: ", msg, "\n")
  end
end

-- }======================================================


-- {======================================================
-- Checks
-- =======================================================

-- The walk of `call_problem` (below), field by field.
local HEADER_FIELDS, QUERY_FIELDS = { "headers", "extra_headers" }, { "query", "extra_query" }
local function walk_call (client, api, params, root, partial)
  root = root or "params"
  local fields = FIELDS[api]
  for key, v in pairs(params) do
    local rule = call_options[key]
    local why
    if rule then
      why = rule_problem(rule, v)
      if why then why = root .. "." .. tostring(key) .. ": " .. why
      elseif key == "extra_body" and getmetatable(v) ~= nil then   -- (sent raw, as the cache's key reads it)
        why = root .. ".extra_body: a plain table (no metatable) expected"
      elseif key == "extra_body" and (rawget(v, "model") ~= nil or rawget(v, "stream") ~= nil) then
        why = root .. ".extra_body." .. (rawget(v, "model") ~= nil and "model" or "stream")
              .. ": aigc's own field: set it in the params"
      end
    elseif DIALOGUE_OPTIONS[key] and (api == "chat" or api == "responses") then
      local d = DIALOGUE_OPTIONS[key]
      why = rule_problem(d, v)
      if why then why = root .. "." .. key .. ": " .. why
      elseif d.needs == "schema" and not partial and params.schema == nil then
        why = root .. "." .. key .. ": only with " .. root .. ".schema"
      elseif d.needs == "tools" and not partial and not util.is_a(params.tools, "aigc.toolset") then
        why = root .. "." .. key .. ": only with a toolset in " .. root .. ".tools"
      end
    elseif fields and fields[key] then
      why = field_problem(fields[key], v, root, key)
    elseif fields and key ~= "engine" then
      local dialogue_options = (api == "chat" or api == "responses") and DIALOGUE_OPTIONS or {}
      local known = likely_typo(key, fields, call_options, dialogue_options)
      if known then warn_typo(client, util.path(root, key), key, known) end
    end
    if why then return why end
  end
  -- (Most calls have none of these: four field reads, no loop. A loop
  -- with ipairs cost ~4k instructions per call on Lua 5.4.)
  if params.headers == nil and params.extra_headers == nil and params.query == nil
    and params.extra_query == nil then
    return nil
  end
  for _, k in ipairs(HEADER_FIELDS) do
    if params[k] ~= nil then
      local why = headers_problem(params[k], root .. "." .. k)
      if why then return why end
    end
  end
  for _, k in ipairs(QUERY_FIELDS) do
    if params[k] ~= nil then
      local why = query_problem(params[k], root .. "." .. k)
      if why then return why end
    end
  end
  return nil
end

M.walk_call = walk_call   -- (the full walk, for spec/check_fast_spec.lua)

-- The fields whose whole check the C core can make (`core.fields_fit`),
-- per api: a field name -> its rule, for rules that are a type name or
-- the messages list. A call whose every field is one of these and fits
-- needs no walk: ~2k instructions in C instead of ~12k in Lua for the
-- usual call (issue 17). Anything else -- an unknown field (a typo to
-- warn of), a header table, aigc.null, a metatable -- walks as before.
local FAST = {}
for api, fields in pairs(FIELDS) do
  local fast = {}
  for key, rule in pairs(fields) do
    if call_options[key] == nil and DIALOGUE_OPTIONS[key] == nil then
      if rule == messages_problem then fast[key] = "messages"
      elseif TYPE_NAMES[rule] or rule == "number" or rule == "integer" then fast[key] = rule end
    end
  end
  fast.on_done, fast.on_error, fast.on_stream_end, fast.stream = "function", "function", "function", "stream"
  FAST[api] = fast
end
M.FAST = FAST
local fields_fit = core.fields_fit

--- Why a call's params break a rule, or nil: per-call options, dialogue
-- options, known request fields of `api` ("chat", "completion"; others
-- check options only), headers and query. Also warns of likely typos
-- (through `client`'s log, else stderr).
-- @tparam table|nil client
-- @tparam string api
-- @tparam table params
-- @tparam[opt="params"] string root the name of params in messages
-- @tparam[opt] boolean partial params that will be merged with others
-- before the call (a conversation's): a dialogue option's field may come
-- from the others
-- @treturn string|nil
function M.call_problem (client, api, params, root, partial)
  local fast = FAST[api]
  if fast ~= nil and fields_fit(params, fast) then return nil end
  return walk_call(client, api, params, root, partial)
end

--- Checks a call's params (see `call_problem`); raises
-- `bad argument #argn to 'fname' (params.X: ...)` at the caller's line.
-- Returns, when the fast check answered, the option keys params holds
-- (`core.fields_fit`'s: engine:submit's hint, which spares it a walk of
-- params), else nil.
-- @tparam table|nil client
-- @tparam string fname
-- @tparam integer argn
-- @tparam string api
-- @tparam table params
-- @treturn integer|nil
function M.call (client, fname, argn, api, params)
  local fast = FAST[api]   -- (call_problem's first step, inline: every call passes here)
  if fast ~= nil then
    local fits, keys = fields_fit(params, fast)
    if fits then return keys end
  end
  local why = M.call_problem(client, api, params)
  if why then util.argerror(fname, argn, why) end
end

-- opts.max_concurrency_by_priority: { class = slots }, classes by name.
local function check_priority_caps (caps)
  for k, v in pairs(caps) do
    local path = util.path("opts.max_concurrency_by_priority", k)
    if not PRIORITY_RULE.oneof[k] then
      field_error("client", 1, path, "not a priority (" .. PRIORITY_RULE.oneof_text .. ")")
    end
    local why = rule_problem(ENGINE_RULES.max_concurrency, v)
    if why then field_error("client", 1, path, why) end
  end
end

--- Checks the client's options; raises `bad argument #1 to 'client'
-- (opts.X: ...)` at the caller's line. Returns the integer options as
-- integers (the C core reads them so on every version).
-- @tparam table opts
function M.client_options (opts)
  for k, v in pairs(opts) do
    local rule = CLIENT_OPTIONS[k]
    if rule == nil then
      local known = likely_typo(k, CLIENT_OPTIONS)
      field_error("client", 1, util.path("opts", k),
                  "unknown option" .. (known and " (did you mean " .. known .. "?)" or ""))
    end
    local why = rule_problem(rule, v)
    if why then field_error("client", 1, "opts." .. k, why) end
  end
  if opts.provider ~= nil and opts.provider ~= "azure" and opts.provider ~= "openai" then
    field_error("client", 1, "opts.provider", "'openai' or 'azure' expected, got " .. util.describe(opts.provider))
  end
  if opts.max_concurrency_by_priority ~= nil then check_priority_caps(opts.max_concurrency_by_priority) end
  if opts.headers ~= nil then
    local why = headers_problem(opts.headers, "opts.headers")
    if why then util.argerror("client", 1, why) end
  end
  if opts.query ~= nil then
    local why = query_problem(opts.query, "opts.query")
    if why then util.argerror("client", 1, why) end
  end
end

-- }======================================================

return M
