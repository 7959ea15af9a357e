--- Internal: a client's options made into the engine's config. Where
-- requests go (the base URL, Azure's endpoint and api-version, the query),
-- the default headers, and the secrets every error and log is scrubbed of
-- (the keys, and what the URLs and the proxies carry). `aigc.client` makes
-- the engine and the client object from what `resolve` returns.
--
-- @module aigc.client_setup
-- @local

local core = require "aigc.core"
local compat = require "aigc.compat"
local util = require "aigc.util"
local credentials = require "aigc.credentials"
local check = require "aigc.check"
local hooks = require "aigc.hooks"

local ipairs, next, pairs, tonumber, tostring, type = ipairs, next, pairs, tonumber, tostring, type
local getenv = os.getenv
local string_format = string.format
local field_error = util.field_error
local encode_query = util.encode_query
local null = core.null

util.own_module()

local M = {}

local DEFAULT_BASE_URL = "https://api.openai.com/v1"
local USER_AGENT = string_format("aigc/%s %s libcurl/%s", core._VERSION,
                                 _VERSION:gsub(" ", "/"), core.curl_version)

--- An environment variable, with "" meaning unset.
local function env (name)
  local v = getenv(name)
  if v == "" then return nil end
  return v
end


--- A value sent in a header (or as Azure's api-version), refused with CR,
-- LF or NUL in it, named where it came from: a variable of a .env file
-- saved with CRLF line ends ends in a CR, and "opts.api_key" named an
-- option the user never gave (a variable's organization or project, or
-- Azure's token, named none; an api-version "2024-06-01\r" went as
-- "...%0D", and Azure answered every call 404 "Resource not found").
local function header_safe (value, from)
  if value ~= nil and value:find("[\r\n%z]") then field_error("client", 1, from, "contains CR, LF or NUL") end
  return value
end

-- Whether a secret is blank: not "", but only spaces and tabs ("        ",
-- "\t": a key field left blank, a variable set to a space).
local function blank (value)
  return type(value) == "string" and value ~= "" and not value:find("%S")
end

--- A secret (a key, a token), refused as header_safe refuses a value, and
-- blank: it authenticated nothing, and as a secret of 8 bytes or more it
-- redacted every run of as many spaces in every error and log line. The
-- message never holds the value.
local function secret_safe (value, from)
  header_safe(value, from)
  if blank(value) then field_error("client", 1, from, "is blank (only spaces or tabs)") end
  return value
end

local insecure_warned = false

-- A CA file or folder that is not there (a typo): libcurl failed every
-- https call with it, retried, as a connection error ("error setting
-- certificate file"), and OpenSSL passes over a missing ca_path in silence
-- (the default store verified alone: "self-signed certificate" named
-- nothing the user set). httpx refuses both as the SDK's client is made.
-- (A name too long for any file is libcurl's to refuse, at the call.)
local ENOENT, ENOTDIR = 2, 20
local function check_ca (opts)
  for _, o in ipairs { { "ca_file", "file", "a file" }, { "ca_path", "directory", "a folder" } } do
    local path = opts[o[1]]
    if path ~= nil then
      local kind, why, errno = core.file_kind(path)
      -- (a ca_file that is a pipe, "/dev/fd/63" of a shell's <(...), is read as a file is)
      if kind ~= nil and (kind == "directory") ~= (o[2] == "directory") then
        field_error("client", 1, "opts." .. o[1], string_format("%s expected, %s is a %s", o[3], path, kind))
      elseif errno == ENOENT or errno == ENOTDIR then
        field_error("client", 1, "opts." .. o[1], why)
      end
    end
  end
end

-- Whether an Azure base URL is its v1 API's (<endpoint>/openai/v1, as
-- openai-node#1692 and Azure's docs give it): plain OpenAI paths, the
-- model in the body, no api-version needed; the api-key header still.
function M.azure_v1 (base_url)
  return base_url:match("^[^?]*"):gsub("/+$", ""):find("/openai/v1$") ~= nil
end

--- The endpoints Azure OpenAI serves per deployment, at
-- /openai/deployments/<model><path> (the official SDKs' list); the others
-- (files, batches, responses, moderations, models...) stay at /openai<path>.
M.AZURE_DEPLOYMENT_PATHS = {
  ["/chat/completions"] = true, ["/completions"] = true, ["/embeddings"] = true,
  ["/audio/transcriptions"] = true, ["/audio/translations"] = true, ["/audio/speech"] = true,
  ["/images/generations"] = true, ["/images/edits"] = true,
}

-- Where requests go: (azure, base_url, api_key, query, ad_token, where base_url came from) from the
-- options and the environment.
local function endpoint_of (opts)
  local azure = opts.azure or opts.provider == "azure"
  local base_url, api_key, from = opts.base_url, secret_safe(opts.api_key, "opts.api_key"), "opts.base_url"
  local ad_token = azure and secret_safe(opts.azure_ad_token, "opts.azure_ad_token") or nil
  local provider = azure and opts.azure_ad_token_provider or nil
  if provider and (api_key ~= nil or ad_token ~= nil) then   -- (which one would be sent? openai-python refuses too)
    field_error("client", 1, "opts.azure_ad_token_provider", "give one of api_key, azure_ad_token and "
                .. "azure_ad_token_provider")
  end
  local query = {}
  if azure then
    local endpoint, endpoint_from = opts.endpoint, "opts.endpoint"
    if endpoint == nil then endpoint, endpoint_from = env("AZURE_OPENAI_ENDPOINT"), "$AZURE_OPENAI_ENDPOINT" end
    if base_url == nil then
      if endpoint == nil then
        field_error("client", 1, "opts.endpoint", "Azure needs endpoint (or $AZURE_OPENAI_ENDPOINT) or base_url")
      end
      local host_part, endpoint_query = endpoint:match("^([^?]*)(%?.*)$")   -- ("/openai" before any query)
      base_url, from = (host_part or endpoint):gsub("/+$", "") .. "/openai" .. (endpoint_query or ""), endpoint_from
    end
    -- no credential given: $AZURE_OPENAI_AD_TOKEN, else $AZURE_OPENAI_API_KEY (openai-python's order)
    if api_key == nil and ad_token == nil and provider == nil then
      ad_token = secret_safe(env("AZURE_OPENAI_AD_TOKEN"), "$AZURE_OPENAI_AD_TOKEN")
      if ad_token == nil then api_key = secret_safe(env("AZURE_OPENAI_API_KEY"), "$AZURE_OPENAI_API_KEY") end
    end
    -- opts.api_version, else the one the base_url names (the portal's URL:
    -- the user wrote it), else $OPENAI_API_VERSION; Azure's v1 API
    -- (<endpoint>/openai/v1) takes none (a dated one is refused there)
    local version = header_safe(opts.api_version, "opts.api_version")
    if version == nil and not M.azure_v1(base_url) and not base_url:find("[?&]api%-version=") then
      version = header_safe(env("OPENAI_API_VERSION"), "$OPENAI_API_VERSION")
      if version == nil then
        field_error("client", 1, "opts.api_version", "Azure needs api_version (or $OPENAI_API_VERSION)")
      end
    end
    query["api-version"] = version
  else
    if base_url == nil then base_url, from = env("OPENAI_BASE_URL"), "$OPENAI_BASE_URL" end
    base_url = base_url or DEFAULT_BASE_URL
    if api_key == nil then api_key = secret_safe(env("OPENAI_API_KEY"), "$OPENAI_API_KEY") end
  end
  if not base_url:lower():find("^https?://[^/]") then
    field_error("client", 1, from, "an http:// or https:// URL expected")
  end
  if base_url:find("[%c%s]") then
    field_error("client", 1, from, "contains a space or a control character (CR, LF, NUL...)")
  end
  if base_url:find("#", 1, true) then
    field_error("client", 1, from, "has a fragment (#...), which a request never sends")
  end
  -- A port past 65535, an IPv6 address without its "]", no host: libcurl
  -- refused such a URL only at each call, as a connection error, retried
  -- (the SDKs refuse it as their client is made: httpx.URL, new URL()).
  local why = core.url_problem(base_url)
  if why then field_error("client", 1, from, "not a URL libcurl can use: " .. why) end
  -- A query in the base URL ("https://host/openai?api-version=...", as
  -- some providers show it) goes after each request's path, with the
  -- other query parameters: appended as it was, the path landed inside it.
  local without_query, q = base_url:match("^([^?]*)%?(.*)$")
  if without_query then
    base_url = without_query
    for k, v in pairs(util.parse_query(q)) do
      if query[k] == nil then query[k] = v end   -- (opts.api_version, and opts.query later, win)
    end
  end
  return azure, (base_url:gsub("/+$", "")), api_key, query, ad_token, from
end

-- The client's secrets, scrubbed from errors and logs (with the
-- credentials of its Authorization, api-key and x-api-key headers, which
-- the engine finds itself): the keys, and what the base URL and the query
-- carry (a password in the URL's user info, a `key=` parameter...), and
-- the password of every proxy URL libcurl may take (it sends it as
-- Proxy-Authorization; its message of a bad one shows the URL whole).
-- Besides `proxy`, libcurl reads the proxy environment variables itself,
-- at each transfer: they are read here when the client is made ($HTTP_PROXY
-- too, which libcurl leaves alone for http but other tools take).
local PROXY_VARIABLES = { "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY" }

-- A proxy libcurl cannot use (a port past 65535, a scheme it has no
-- proxy for): every call failed as a connection error, retried. Checked
-- as libcurl reads the option (url.c: the scheme guessed, then one of its
-- proxy schemes); "" is no proxy. (One longer than any option libcurl
-- takes, 8 MB, is libcurl's to refuse, at the call, as a ca_file's.)
local PROXY_SCHEMES = { http = true, https = true, socks4 = true, socks4a = true, socks5 = true, socks5h = true }
local function check_proxy (proxy)
  if type(proxy) ~= "string" or proxy == "" or #proxy > 8000000 then return end
  local why = core.url_problem(proxy, true)
  local scheme = proxy:match("^(%a[%w+.%-]*)://")
  if not why and scheme and not PROXY_SCHEMES[scheme:lower()] then
    why = "libcurl has no proxy of the scheme " .. scheme
  end
  if why then field_error("client", 1, "opts.proxy", "not a proxy libcurl can use: " .. why) end
end

local function proxy_secrets (proxy, list)
  if not proxy:find("^%a[%w+.%-]*://") then proxy = "http://" .. proxy end   -- (libcurl's default scheme)
  credentials.url_secrets(proxy, list)
end

-- Whether `host` is exempt from proxies by a no_proxy list, as libcurl
-- 7.88 reads one (noproxy.c, checked against its curl): "*" alone, else
-- entries separated by commas or blanks. An IPv4 host (four decimal
-- numbers, no leading zero) matches an IPv4 entry or CIDR ("10.0.0.0/8";
-- "/0" or a bad width matches only the same address, past 32 nothing),
-- never a name. Any other host, an IPv6 literal too (libcurl 7.88 compares
-- it as a name: "::1" matches it, "[::1]" and "fd00::/8" do not), matches
-- an entry naming it or a domain it is in, case-insensitively, the
-- entry's one trailing and one leading dot ignored, the host's trailing dot too.
local function ipv4 (s)
  local parts = { s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$") }
  if not parts[4] then return nil end
  local n = 0
  for _, p in ipairs(parts) do
    if #p > 1 and p:sub(1, 1) == "0" or tonumber(p) > 255 then return nil end
    n = n * 256 + tonumber(p)
  end
  return n
end

local function cidr4_match (host_ip, entry)
  local ip, slash = entry:match("^([^/]*)(/?.*)$")
  local bits = tonumber(slash:match("^/(%d*)") or "") or 0   -- (atoi's: "/abc" is 0)
  if slash:find("^/%-") or bits > 32 or not ipv4(ip) then return false end
  local span = 2 ^ (32 - (bits == 0 and 32 or bits))
  return math.floor(host_ip / span) == math.floor(ipv4(ip) / span)
end

-- A host as libcurl's URL parser leaves it (urlapi.c's ipv4_normalize,
-- before $no_proxy is read): one to four numbers, each decimal, octal (a
-- leading 0) or hex (0x), the last one filling the bytes left, as
-- inet_aton reads them ("127.1", "0x7f.0.0.1", "2130706433", "0177.0.0.01")
-- are the IPv4 address they make, dotted; any other host stays as it was.
local function numeric_host (host)
  local parts = {}
  for part in (host .. "."):gmatch("([^.]*)%.") do
    local v = part:match("^0[xX](%x+)$") and tonumber(part:sub(3), 16)
      or part:match("^0[0-7]*$") and tonumber(part, 8) or part:match("^[1-9]%d*$") and tonumber(part)
    if not v or v > 4294967295 or #parts == 4 then return host end
    parts[#parts + 1] = v
  end
  local n, last = #parts, parts[#parts]
  if last > 256 ^ (5 - n) - 1 then return host end
  local bytes = {}
  for i = 1, n - 1 do
    if parts[i] > 255 then return host end
    bytes[i] = parts[i]
  end
  for i = 4, n, -1 do   -- (the last number's bytes, lowest last)
    bytes[i] = last % 256
    last = math.floor(last / 256)
  end
  return table.concat(bytes, ".")
end

local function no_proxy_for (host, list)
  if list == nil or list == "" then return false end
  if list == "*" then return true end
  host = host:lower()
  local host_ip = ipv4(host)
  if not host_ip then host = host:gsub("%.$", "") end
  for entry in list:lower():gmatch("[^, \t]+") do   -- (libcurl's blanks: space and tab)
    if host_ip then
      if cidr4_match(host_ip, entry) then return true end
    else
      entry = entry:gsub("%.$", ""):gsub("^%.", "")
      if host == entry or (#host > #entry and host:sub(-#entry - 1) == "." .. entry) then return true end
    end
  end
  return false
end

--- The proxy libcurl takes for `base_url`, shown in a connection error
-- ("through the proxy http://10.0.0.1:3128, from $https_proxy"): a proxy
-- variable left set in a shell otherwise gave "Failed to connect to
-- 10.0.0.1 port 3128", naming no proxy. As libcurl 7.88 chooses it
-- (url.c): $no_proxy ($NO_PROXY) exempts the host, from the option too;
-- then the `proxy` option ("" none), else $<scheme>_proxy (upper case too,
-- but never $HTTP_PROXY), else $all_proxy ($ALL_PROXY). Only the scheme,
-- host and port are shown (a password in it is a secret). Nil: none.
-- @tparam string base_url
-- @tparam[opt] string proxy the client's option
-- @treturn string|nil
function M.proxy_shown (base_url, proxy)
  local scheme, authority = base_url:lower():match("^(%a+)://([^/?#]*)")
  if not scheme then return nil end
  local host = authority:gsub("^.*@", "")
  -- (an IPv6 literal without its zone, as libcurl; a numeric IPv4 host as its URL parser makes it)
  host = host:match("^%[([^%%%]]*)") or numeric_host((host:gsub(":%d*$", "")))
  if no_proxy_for(host, getenv("no_proxy") or getenv("NO_PROXY")) then return nil end
  local value, from = proxy, "the proxy option"
  if value == nil then
    local names = { scheme .. "_proxy", scheme ~= "http" and scheme:upper() .. "_PROXY" or nil }
    names[#names + 1] = "all_proxy"
    names[#names + 1] = "ALL_PROXY"
    for _, name in ipairs(names) do
      value = getenv(name)
      if value then from = "$" .. name break end
    end
  end
  if value == nil or value == "" then return nil end
  local pscheme, rest = value:match("^(%a[%w+.%-]*)://(.*)$")
  if not pscheme then pscheme, rest = "http", value end   -- (libcurl's default scheme)
  local where = rest:match("^[^/?#]*"):gsub("^.*@", "")   -- (no user or password)
  if where == "" or #where > 200 then return nil end
  return string_format("%s://%s, from %s", pscheme:lower(), where, from)
end

-- Refuses a blank secret (secret_safe) among those list holds past its n-th,
-- naming where they came from.
local function no_blank (list, n, from)
  for i = n + 1, #list do
    if blank(list[i]) then field_error("client", 1, from, "holds a blank secret (only spaces or tabs)") end
  end
end

local function client_secrets (api_key, ad_token, base_url, base_from, query, opts)
  local list = {}
  if api_key ~= nil then list[#list + 1] = api_key end
  if ad_token ~= nil then list[#list + 1] = ad_token end
  for name, value in pairs(opts.headers or {}) do   -- (the engine takes the rest of a header's credential)
    if credentials.credential_header(name) then
      local why = credentials.blank_credential(name, value)
      if why then field_error("client", 1, "opts.headers", string_format("header %q %s", name, why)) end
      credentials.basic_secrets(value, list)
      no_blank(list, 0, "opts.headers")   -- (a Basic credential's blank password)
    end
  end
  local n = #list
  credentials.url_secrets(base_url, list)
  no_blank(list, n, base_from)
  n = #list
  if type(opts.proxy) == "string" then proxy_secrets(opts.proxy, list) end
  no_blank(list, n, "opts.proxy")
  for _, name in ipairs(PROXY_VARIABLES) do
    local value, at = env(name), #list
    if value then proxy_secrets(value, list) end
    no_blank(list, at, "$" .. name)
  end
  for k, values in pairs(query) do
    for _, v in ipairs(util.query_values(values)) do   -- (the base URL's "?key=a&key=b": both)
      if credentials.secret_param(k) and type(v) == "string" and v ~= "" then
        if blank(v) then
          local from = type(opts.query) == "table" and opts.query[k] ~= nil and "opts.query" or base_from
          field_error("client", 1, from, string_format("parameter %q is blank", k))
        end
        list[#list + 1] = v
        list[#list + 1] = util.urlencode(v)   -- (as sent: a server echoing the URL shows "%2B" for "+")
      end
    end
  end
  return list
end

-- A header's value as text: a number as a query writes it (a '.' under any
-- LC_NUMERIC: tostring gives "1,5" under de_DE; a whole float whole, `2.0`
-- as "2", as the README has it: Lua 5.3+'s JSON wrote "2.0"), else tostring's.
local number_text = util.number_text
function M.header_text (value)
  if type(value) == "number" then return number_text(value) end
  return tostring(value)
end

-- A request header's line: "Name: value", or "Name;" for an empty value
-- (libcurl drops a "Name:" line with nothing after it, and "Name;" is its
-- way to send the header empty, as the SDKs send `""`). But `Expect = ""`
-- sends no Expect at all, as the README has it (libcurl's own
-- "100-continue" off; an empty one would ask for nothing either).
function M.header_line (name, value)
  local text = M.header_text(value)
  if text:find("^[ \t]*$") and name:lower() ~= "expect" then return name .. ";" end
  return name .. ": " .. text
end

-- The default headers, in order: (names, lines) with lower-case names as
-- keys of lines ("Name: value"); names are merged case-insensitively.
--- The line that removes a header libcurl would otherwise add of its own
-- (lower-case name -> "Name:"): a header set to `aigc.null` sends this.
local REMOVED_LINE = { ["content-type"] = "Content-Type:", expect = "Expect:" }
M.REMOVED_LINE = REMOVED_LINE

local function default_headers (opts, azure, api_key, ad_token)
  local names, lines = {}, {}
  local function set (name, value)
    local key = name:lower()
    if lines[key] == nil then names[#names + 1] = key end
    lines[key] = M.header_line(name, value)
  end
  set("Accept", "application/json")
  set("Content-Type", "application/json")
  set("User-Agent", USER_AGENT)
  if ad_token then   -- (the token, not the key too: the SDKs send one of them)
    set("Authorization", "Bearer " .. ad_token)
  elseif api_key ~= nil and api_key ~= "" then   -- ("": no key, as for $OPENAI_API_KEY; it sent "Bearer ")
    if azure then set("api-key", api_key) else set("Authorization", "Bearer " .. api_key) end
  end
  local org = header_safe(opts.organization, "opts.organization")
    or (not azure and header_safe(env("OPENAI_ORG_ID"), "$OPENAI_ORG_ID")) or nil
  local project = header_safe(opts.project, "opts.project")
    or (not azure and header_safe(env("OPENAI_PROJECT_ID"), "$OPENAI_PROJECT_ID")) or nil
  if org then set("OpenAI-Organization", org) end
  if project then set("OpenAI-Project", project) end
  set("Expect", "")   -- no "Expect: 100-continue" round trip before large bodies
  lines.expect = "Expect:"
  for name, value in pairs(opts.headers or {}) do
    if value == null then lines[name:lower()] = nil else set(name, value) end
  end
  -- (Content-Type removed: "Content-Type:", libcurl's way to send none; with no line libcurl sent
  -- application/x-www-form-urlencoded with the JSON. A form's call removes the line: multipart's own.
  -- Expect removed: "Expect:" too, or libcurl sent its own 100-continue with a body over 1 MiB)
  for key, line in pairs(REMOVED_LINE) do
    if lines[key] == nil then lines[key] = line end
  end
  return names, lines
end

--- What a client's options give: `config` (for `core.engine`), `names`
-- and `lines` (the default headers), `query`, `azure_paths` (Azure's
-- deployment paths: `deployment`, the one the base URL named, else each
-- call's model), `ad_token_provider` (Azure's: a token per call), `old_azure` (an
-- api-version before stream_options).
-- @tparam table opts the client's options, checked
-- @param ext the hooks' part of the options (`hooks.split`)
-- @treturn table
function M.resolve (opts, ext)
  local azure, base_url, api_key, query, ad_token, base_from = endpoint_of(opts)
  -- A base_url that names a deployment, as Azure's portal shows it: the
  -- deployment endpoints go to it, the others (files, batches, responses,
  -- models...) to the /openai above it, where Azure serves them (it answers
  -- 404 at /deployments/<name>/files), as openai-python's azure_deployment
  -- (or the portal's Target URI, which names the endpoint too: a call's path went after it)
  local deployment
  if azure and not M.azure_v1(base_url) then
    local root, name, rest = base_url:match("^(.*)/deployments/([^/]+)(.*)$")
    if root and (rest == "" or M.AZURE_DEPLOYMENT_PATHS[rest]) then base_url, deployment = root, name end
  end
  local real_base_url = base_url   -- (a cassette may put its own server in between)
  base_url = hooks.base_url(ext, base_url)
  local names, lines = default_headers(opts, azure, api_key, ad_token)
  local header_list, stream_list = {}, {}
  for _, key in ipairs(names) do
    if lines[key] then
      header_list[#header_list + 1] = lines[key]
      stream_list[#stream_list + 1] = key == "accept" and "Accept: text/event-stream" or lines[key]
    end
  end
  for k, v in pairs(opts.query or {}) do query[k] = v ~= null and v or nil end
  -- Azure refuses stream_options before api-version 2024-09-01 ("Unknown parameter"): streams
  -- there go without the default one (and so without a usage chunk)
  local version = azure and query["api-version"]
  local old_azure = type(version) == "string" and version:find("^%d%d%d%d%-%d%d%-%d%d") and version < "2024-09-01"
  local secrets = client_secrets(api_key, ad_token, real_base_url, base_from, query, opts)
  check_ca(opts)
  check_proxy(opts.proxy)
  if opts.insecure and not insecure_warned then
    insecure_warned = true
    io.stderr:write("aigc: warning: insecure = true: TLS certificates and host names are NOT verified\n")
  end
  local config = {
    base_url = base_url, query = next(query) and encode_query(query) or nil, model = opts.model,
    secrets = secrets,   -- scrubbed from errors and logs
    headers = header_list, stream_headers = stream_list,
    ca_file = opts.ca_file, ca_path = opts.ca_path, proxy = opts.proxy,
    proxy_shown = M.proxy_shown(base_url, opts.proxy),   -- (in connection errors)
    insecure = opts.insecure, require_done = opts.require_done,
    log = opts.log, log_bodies = opts.log_bodies, error_handler = opts.error_handler,
    max_concurrency_by_priority = opts.max_concurrency_by_priority,
  }
  for name, rule in pairs(check.CLIENT_OPTIONS) do   -- the engine's own options, integers as integers
    if rule.type == "integer" then config[name] = compat.tointeger(opts[name])
    elseif rule.type == "seconds" then config[name] = opts[name] end
  end
  return {
    config = config, names = names, lines = lines, query = query, old_azure = old_azure,
    azure_paths = azure and not M.azure_v1(real_base_url) and { deployment = deployment } or nil,
    ad_token_provider = azure and opts.azure_ad_token_provider or nil,
  }
end

return M
