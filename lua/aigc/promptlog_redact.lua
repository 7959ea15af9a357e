--- What the prompt log (`aigc.promptlog`) never writes: the secrets of a
-- call and of its client. Params whose name says key, token, secret or
-- password (at any depth of a param's table too) are replaced by
-- `"[redacted]"`, the per-call options that are
-- not sent (headers, query, callbacks...) are left out, and every string
-- of an entry goes through a scrubber: the client's own redaction (its
-- engine knows each of its secrets, and the call's), the secrets given,
-- and the keys a default client reads from the environment (`scrubbed`:
-- a copy of a value through one).
--
-- @module aigc.promptlog_redact
-- @local

local core = require "aigc.core"

local json_encode = core.json.encode
local scrub_peers = core.scrub
local getmetatable, ipairs, pairs, pcall, rawget, setmetatable, tostring, type =
  getmetatable, ipairs, pairs, pcall, rawget, setmetatable, tostring, type
local table_concat = table.concat

local M = {}

local function env (name)
  local v = os.getenv(name)
  if v == "" then return nil end
  return v
end

local SECRET_NAME = { "key", "token", "secret", "password", "authorization" }

local function secret_name (k)
  if type(k) ~= "string" then return false end
  local lk = k:lower()
  for _, w in ipairs(SECRET_NAME) do
    if lk:find(w, 1, true) and not lk:find("tokens", 1, true) then return true end
  end
  return false
end

-- Replaces each secret (8 bytes or more) in a string.
local function redact (v, secrets)
  for _, s in ipairs(secrets) do
    if #s >= 8 and v:find(s, 1, true) then
      local parts, i = {}, 1
      while true do
        local first, last = v:find(s, i, true)
        if not first then break end
        parts[#parts + 1] = v:sub(i, first - 1)
        parts[#parts + 1] = "[redacted]"
        i = last + 1
      end
      parts[#parts + 1] = v:sub(i)
      v = table_concat(parts)
    end
  end
  return v
end

-- The variables a client takes its key from when given none.
local ENV_KEYS = { "OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_AD_TOKEN" }

-- A function that scrubs one string (`M.scrubber`): through the client's engine (aigc's
-- own redaction, which knows every secret of the client, and with
-- `info.call_secrets` and `info.header_lines` the call's own: a per-call
-- key in a header or the query, as `aigc.credentials.call_credentials` names
-- them; with no client, `core.scrub`: every live client's secrets) and the
-- secrets given. Strings only: the caller's tables are never
-- changed.
local function scrubber (info)
  local client = info and info.client
  local engine = type(client) == "table" and rawget(client, "_engine") or nil
  local engine_scrub
  if engine then
    local ok, f = pcall(function () return engine.scrub end)
    if ok and type(f) == "function" then engine_scrub = f end
  end
  local secrets = {}
  for _, s in ipairs(info and info.secrets or {}) do
    if type(s) == "string" then secrets[#secrets + 1] = s end
  end
  if type(client) == "table" and type(rawget(client, "api_key")) == "string" then
    secrets[#secrets + 1] = client.api_key
  end
  for _, name in ipairs(ENV_KEYS) do   -- (the keys a default client reads: a string logged with no client)
    local v = env(name)
    if v then secrets[#secrets + 1] = v end
  end
  local call_secrets = info and type(info.call_secrets) == "table" and info.call_secrets or nil
  local header_lines = info and type(info.header_lines) == "table" and info.header_lines or nil
  if not engine_scrub then   -- (no engine: the call's query credentials whole, at least)
    for _, x in ipairs(call_secrets or {}) do
      if type(x) == "string" then secrets[#secrets + 1] = x end
    end
  end
  return function (s)
    local ok, r
    if engine_scrub then
      ok, r = pcall(engine_scrub, engine, s, call_secrets, header_lines)
    else   -- (no client: those of every live client of the Lua state, as an engine's scrub searches them too)
      ok, r = pcall(scrub_peers, s)
    end
    -- (failing closed: the secrets below are only some of the engine's, and none of the other clients')
    if not ok or type(r) ~= "string" then return "[text withheld: it could not be scrubbed of secrets]" end
    s = r
    if #secrets > 0 then s = redact(s, secrets) end
    return s
  end
end

-- Per-call options that are never sent, and so never logged.
local NOT_LOGGED = {
  messages = true, stream = true, on_done = true, on_error = true, headers = true, extra_headers = true,
  query = true, extra_query = true, idempotency_key = true, timeout = true, connect_timeout = true,
  max_retries = true, max_response_bytes = true, max_json_values = true, max_json_containers = true,
  deadline = true, api_key = true,
}

-- A copy of the table v with every string under a key-like name, at any
-- depth, as "[redacted]" (a per-user key in extra_body: LiteLLM's
-- `user_config.model_list[i].litellm_params.api_key`); a table met again
-- inside itself is "[cycle]". The caller's tables are not changed.
local function redacted_names (v, walk)
  if walk[v] then return "[cycle]" end
  walk[v] = true
  local t = {}
  for k, x in pairs(v) do
    if type(x) == "table" and getmetatable(x) == nil then x = redacted_names(x, walk)
    elseif type(x) == "string" and secret_name(k) then x = "[redacted]" end
    t[k] = x
  end
  walk[v] = nil
  return t
end

-- The params as they are logged (`aigc.promptlog.loggable_params`).
function M.loggable_params (params)
  local out = {}
  if type(params) ~= "table" then return out end
  for k, v in pairs(params) do
    if type(k) == "string" and not NOT_LOGGED[k] and type(v) ~= "function" then
      local mt = getmetatable(v)
      if type(mt) == "table" and mt.__name == "aigc.toolset" then
        local names = {}
        for _, t in ipairs(v) do
          local f = type(t) == "table" and t["function"]
          names[#names + 1] = type(f) == "table" and f.name or "?"
        end
        out[k] = { toolset = names }
      elseif secret_name(k) then
        out[k] = "[redacted]"
      else
        -- (a value JSON cannot carry is left out; one with text that is not
        -- UTF-8 is kept: the column's encoding repairs it, aigc.promptlog)
        local ok, err = pcall(json_encode, v)
        if ok or tostring(err):find("invalid UTF-8", 1, true) then
          out[k] = type(v) == "table" and getmetatable(v) == nil and redacted_names(v, {}) or v
        end
      end
    end
  end
  return out
end

-- A copy of v with every string scrubbed (keys too): scrubbing its JSON
-- missed a secret with a quote or a backslash, escaped there. A table met
-- again inside itself is "[cycle]", and past COPY_MAX tables the rest is
-- "[too large]": the copy is a tree, a table reached twice copied twice,
-- so a cycle reached through two fields (an object and its back
-- references) was copied 2^200 times (`record` never returned).
local COPY_MAX = 100000
local function scrubbed (v, clean, depth, walk)
  if type(v) == "string" then return clean(v) end
  if type(v) ~= "table" or depth > 200 then return v end
  walk = walk or { n = 0 }
  if walk[v] then return "[cycle]" end
  walk.n = walk.n + 1
  if walk.n > COPY_MAX then return "[too large]" end
  walk[v] = true
  local t = {}
  for k, x in pairs(v) do t[scrubbed(k, clean, depth + 1, walk)] = scrubbed(x, clean, depth + 1, walk) end
  walk[v] = nil
  return setmetatable(t, getmetatable(v))
end
M.scrubbed = scrubbed

M.scrubber = scrubber

return M
