--- The credentials a request carries, found by their names: which query
-- parameters, headers and body fields hold one (`secret_param`,
-- `credential_header`), the secrets of a URL (its user info, its
-- credential-like query values), of an HTTP Basic header and of one call's
-- params, and a URL or a text with them hidden. The client's secrets
-- (scrubbed from errors, logs, tapes, the prompt log) are made of these;
-- the engine's C (src/redact.c) and the recording proxy
-- (aigc/cassette_mask.lua) follow the same naming rule.
--
-- Internal: not part of the API (its functions may change).
-- @module aigc.credentials
-- @local

local core = require "aigc.core"
local util = require "aigc.util"

local ipairs, pairs, setmetatable, tostring, type = ipairs, pairs, setmetatable, tostring, type

local M = {}

-- Whether a query parameter's value is a credential, by its name: one
-- ending in `key` or `token` (`key`, `api-key`, `apikey`, `access_token`,
-- `subscription-key`), or with a word (between `-`, `_`, `.`) that is
-- `secret`, `password`, `passwd`, `auth`, `authorization`, `sig` or
-- `signature` (a signed URL's), `jwt` or `assertion` (a JWT: OAuth's
-- `client_assertion`, Cloudflare Access's `cf-access-jwt-assertion`), or named `code` (an Azure Functions
-- URL's function key, `?code=`; `lang_code` is no credential). Not `author`
-- nor `api-version`.
local SECRET_WORDS = { secret = true, password = true, passwd = true, auth = true, authorization = true,
                       sig = true, signature = true, credential = true, credentials = true, jwt = true,
                       assertion = true }
local function secret_param (name)
  name = string.lower(tostring(name))
  if string.find(name, "key$") or string.find(name, "token$") or name == "code" then return true end
  for word in string.gmatch(name, "[^%-_.]+") do
    if SECRET_WORDS[word] then return true end
  end
  return false
end
M.secret_param = secret_param

--- Whether a header's value is a credential, by its name (the engine's
-- rule, src/error.c `credential_name`): a credential-like name as for a
-- query parameter (`secret_param`: `api-key`, `x-goog-api-key`,
-- `Ocp-Apim-Subscription-Key`, `X-Auth-Token`, `Authorization`...), or
-- with a word `authentication`, `cookie`, `session` or `sessionid` (a
-- session's id authenticates as a cookie does; a header only: a body's
-- `session_id` may be a conversation's); not `Idempotency-Key` nor
-- aigc's own `x-aigc-*` (`x-aigc-cassette-key`: a request's description)
-- nor `code` (a credential only as a query parameter, Azure Functions').
-- @tparam string name
-- @treturn boolean
local HEADER_WORDS = { authentication = true, cookie = true, session = true, sessionid = true }
function M.credential_header (name)
  name = string.lower(tostring(name))
  if name == "idempotency-key" or name == "code" or string.find(name, "^x%-aigc%-") then return false end
  if secret_param(name) then return true end
  for word in string.gmatch(name, "[^%-_.]+") do
    if HEADER_WORDS[word] then return true end
  end
  return false
end

--- Why header `name` set to `value` sends no credential, or nil (not a
-- credential header, or one that holds one): its value empty ("is empty"),
-- only spaces and tabs ("is blank"), or an Authorization's scheme with
-- nothing after it ("Bearer " .. key, the key empty: it went out as
-- "Authorization: Bearer", which authenticates nothing).
-- @tparam string name
-- @param value
-- @treturn string|nil
local SCHEMES = { bearer = true, basic = true, token = true, key = true, apikey = true, digest = true }
function M.blank_credential (name, value)
  if type(value) ~= "string" or not M.credential_header(name) then return nil end
  if value == "" then return "is empty (aigc.null removes a header)" end
  if not string.find(value, "%S") then return "is blank (only spaces or tabs)" end
  local lower = string.lower(name)
  local scheme = (lower == "authorization" or lower == "proxy-authorization")
    and string.match(value, "^[ \t]*(%a+)[ \t]*$")
  if scheme and SCHEMES[string.lower(scheme)] then
    return string.format("holds no credential after %q", scheme)
  end
end

-- The user info of a URL ("user:password" in scheme://user:password@host/),
-- with the URL's parts before and after it; nil when it has none.
local function userinfo_of (url)
  return string.match(url, "^(%a[%w+.%-]*://)([^/?#]*)@(.*)$")
end

--- The credentials a URL carries, appended to `out` (for a client's
-- secrets, scrubbed from errors and logs): the password of its user info
-- (as written and decoded; a user name alone, "token@host", is taken for
-- one), the HTTP Basic credential libcurl makes of them, and the values
-- of credential-like query parameters (`secret_param`).
-- @tparam string url
-- @tparam table out
-- @treturn table out
function M.url_secrets (url, out)
  local _, userinfo = userinfo_of(url)
  if userinfo and userinfo ~= "" then
    local user, password = string.match(userinfo, "^([^:]*):(.*)$")
    if not user then user, password = "", userinfo end
    out[#out + 1] = password
    out[#out + 1] = util.percent_decode(password)
    out[#out + 1] = util.base64(util.percent_decode(user) .. ":" .. util.percent_decode(password))
  end
  local q = string.match(url, "%?([^#]*)")
  for k, v in pairs(q and util.parse_query(q) or {}) do
    for _, one in ipairs(util.query_values(v)) do
      if secret_param(k) and one ~= "" then out[#out + 1] = one end
    end
  end
  return out
end

--- Adds to `out` what an HTTP Basic credential in a header's value
-- ("Basic <base64 of user:password>") holds: "user:password" and the
-- password, which a server rejecting it may echo decoded (as the password
-- of a `base_url`'s user info is a secret decoded). The base64 itself the
-- engine takes as the header's credential.
-- @param value the header's value
-- @tparam table out
-- @treturn table out
function M.basic_secrets (value, out)
  local cred = type(value) == "string" and string.match(value, "^%s*[Bb][Aa][Ss][Ii][Cc]%s+(%S+)%s*$")
  local userpass = cred and core.media.b64decode(cred)
  if userpass and userpass ~= "" then
    out[#out + 1] = userpass
    local password = string.match(userpass, ":(.+)$")
    if password then out[#out + 1] = password end
  end
  return out
end

local CLIENT_KEY_OPTIONS = { "api_key", "azure_ad_token" }
M.CLIENT_KEY_OPTIONS = CLIENT_KEY_OPTIONS

-- Adds to `out` (or a new list) the strings of `v` (extra_body) under a
-- name like a credential's (`secret_param`), at any depth: a gateway's
-- per-user key sent in the body (LiteLLM's
-- `user_config.model_list[i].litellm_params.api_key`). Each table once.
-- Whether a string is a secret to search at all: not "" nor only spaces
-- and tabs (a blank key authenticates nothing, and searched it redacted
-- every run of as many spaces in the call's error text).
local function searched (v)
  return type(v) == "string" and v:find("%S") ~= nil
end

local function body_secrets (v, out, seen)
  if seen[v] then return out end
  seen[v] = true
  for k, x in pairs(v) do
    if type(x) == "table" then
      out = body_secrets(x, out, seen)
    elseif searched(x) and type(k) == "string" and secret_param(k) then
      out = out or {}
      out[#out + 1] = x
    end
  end
  return out
end

--- One call's own credentials, for its secrets (scrubbed from its
-- errors, logs and what a cache or a cassette keeps of it, as the
-- client's): the values of the credential-like parameters (`secret_param`)
-- of `params.query` and `params.extra_query` (as given and URL-encoded),
-- what a Basic credential of a credential header holds (`basic_secrets`),
-- the strings of `params.extra_body` under a credential's name, at any depth
-- (`api_key`, `access_token`...: a gateway's per-user key sent in the body),
-- and `params.headers`/`params.extra_headers` as "Name: value" lines (the
-- engine takes the credential of an Authorization, api-key, x-api-key or
-- Proxy-Authorization line, as for the client's headers).
-- @tparam table params
-- @treturn table|nil the query's and the Basic credentials' secrets
-- @treturn table|nil the header lines
function M.call_credentials (params)
  local secrets, lines
  -- a client's key options given to a call by mistake: not sent as
  -- credentials but in the body, where a server's "extra field" error
  -- (FastAPI's shows its input) would show them
  for _, k in ipairs(CLIENT_KEY_OPTIONS) do
    if searched(params[k]) then
      secrets = secrets or {}
      secrets[#secrets + 1] = params[k]
    end
  end
  if type(params.extra_body) == "table" then secrets = body_secrets(params.extra_body, secrets, {}) end
  for _, q in ipairs { params.query or false, params.extra_query or false } do
    if type(q) == "table" then
      for k, v in pairs(q) do
        local tv = type(v)
        -- (not "": no secret, and gsub's empty pattern put the mark between every two bytes of a
        -- cassette's or cache's key, which then changed with the parameter's presence)
        if (searched(v) or tv == "number") and secret_param(k) then
          secrets = secrets or {}
          secrets[#secrets + 1] = tostring(v)
          secrets[#secrets + 1] = util.urlencode(v)
        end
      end
    end
  end
  for _, h in ipairs { params.headers or false, params.extra_headers or false } do
    if type(h) == "table" then
      for name, value in pairs(h) do
        if type(name) == "string" and (type(value) == "string" or type(value) == "number") then
          lines = lines or {}
          lines[#lines + 1] = name .. ": " .. tostring(value)
          for _, v in ipairs(M.credential_header(name) and M.basic_secrets(value, {}) or {}) do
            if searched(v) then   -- (a Basic credential's blank password: none)
              secrets = secrets or {}
              secrets[#secrets + 1] = v
            end
          end
        end
      end
    end
  end
  return secrets, lines
end

-- A secret shorter than this is replaced only where it stands as a word
-- (no letter, digit or "_" beside it), as src/redact.c searches short
-- secrets: a Basic password "p" replaced inside every word made
-- "com[redacted]letions" of a cassette's or a cache's key, which then
-- missed for the same call made with another password.
local SHORT_SECRET = 8

local function replace_words (s, form, to)
  return (s:gsub("()" .. form:gsub("%p", "%%%0") .. "()", function (i, j)
    if not s:sub(i - 1, i - 1):find("^[%w_]") and not s:sub(j, j):find("^[%w_]") then return to end
  end))
end

--- `s` with each of `secrets` (as it is, and as a JSON string escapes it)
-- replaced by `shown(secret)`: for keys that a cache's or a cassette's
-- files repeat (a call's `api_key` param is in the canonical JSON of what
-- it sends).
-- @tparam string s
-- @tparam[opt] table secrets
-- @tparam function shown
-- @treturn string
function M.replace_secrets (s, secrets, shown)
  for _, secret in ipairs(secrets or {}) do
    local to = shown(secret)
    for _, form in ipairs { secret, core.json.encode(secret):sub(2, -2) } do
      if #secret < SHORT_SECRET then
        s = replace_words(s, form, to)
      else
        s = s:gsub(form:gsub("%p", "%%%0"), (to:gsub("%%", "%%%%")))
      end
    end
  end
  return s
end

--- `url` as it may be shown (tostring, a banner): the password of its user
-- info (or a lone user name) and the values of credential-like query
-- parameters replaced by `[redacted]`.
-- @tparam string url
-- @treturn string
function M.shown_url (url)
  local scheme, userinfo, rest = userinfo_of(url)
  if scheme then
    local user = string.match(userinfo, "^([^:]*):")
    url = scheme .. (user and (user .. ":[redacted]") or "[redacted]") .. "@" .. rest
  end
  return (string.gsub(url, "([?&])([^=&#]*)=([^&#]*)", function (sep, k, v)
    if secret_param(util.percent_decode(k)) and v ~= "" then return sep .. k .. "=[redacted]" end
  end))
end


-- The secrets of every live client of this Lua state, by engine: weak,
-- a collected client's go; `unlist_client` at close (as src/peers.c's
-- list of blocks, which the engine's own scrubs read). Read by a recording
-- cassette's proxy (aigc.cassette), a child process that knows only what
-- a request carries: another client's key a server echoed stayed on the tape.
local live = setmetatable({}, { __mode = "k" })

--- Lists a client's secrets (its engine, the list of strings).
function M.list_client (engine, secrets) live[engine] = secrets end

--- Unlists a closed client's secrets.
function M.unlist_client (engine) live[engine] = nil end

--- Every live client's secrets searched (8 bytes or more, or 4 to 7 with
-- a letter and a digit, as the engine's and the proxy's rule), each once.
-- @treturn table a list of strings
function M.live_secrets ()
  local out, seen = {}, {}
  for _, list in pairs(live) do
    for _, v in ipairs(list) do
      if type(v) == "string" and not seen[v] and (#v >= 8 or (#v >= 4 and v:find("%a") and v:find("%d"))) then
        seen[v] = true
        out[#out + 1] = v
      end
    end
  end
  return out
end

return M
