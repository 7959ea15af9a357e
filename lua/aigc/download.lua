--- `client:download(url)` (issue 15): any http(s) URL fetched through the
-- client's engine, and the rule of the credentials: they go to the
-- client's own origin only (scheme, host and port of `base_url`).
--
-- Internal: `aigc.media` installs the method and documents it.
--
-- @module aigc.download
-- @local

local core = require "aigc.core"
local media = require "aigc.media"
local util = require "aigc.util"

local ipairs, pairs, pcall, rawget, type = ipairs, pairs, pcall, rawget, type
local null = core.null

util.own_module()

local M = {}

local function origin (url)
  local o = url:match("^(%a+://[^/?#]+)")
  return o and o:lower()
end

--- The headers whose value is a credential (lower case), as the engine
-- reads them for a client's secrets and a call's (src/error.c,
-- `add_header_secret`; the README's list): `download` never sends them to
-- another origin than the client's, neither the client's nor the
-- caller's own (for a host that wants one: a client whose `base_url` is
-- on that host). `spec/media_replies_spec.lua` checks that every
-- header the engine takes a secret from is in it.
M.credential_headers = { "authorization", "api-key", "x-api-key", "proxy-authorization" }

-- Also for the client's origin only: who is paying (OpenAI's headers).
local STRIPPED = { "openai-organization", "openai-project" }
for _, name in ipairs(M.credential_headers) do STRIPPED[#STRIPPED + 1] = name end
local IS_STRIPPED = {}
for _, name in ipairs(STRIPPED) do IS_STRIPPED[name] = true end

-- Whether the engine finds one of the client's secrets in `value` (a
-- header carrying the client's key under another name).
local function carries_secret (self, value)
  if type(value) ~= "string" or #value < 8 then return false end
  local engine = rawget(self, "_engine")
  local ok, shown = pcall(engine.scrub, engine, value)
  return not ok or shown ~= value
end

-- The headers of a download from another origin: the caller's own
-- without credentials, and the client's credential and organization
-- headers removed (`aigc.null`), with any other header of the client's
-- whose value holds one of its secrets.
local function foreign_headers (self, opts)
  local h, given = {}, {}
  for _, src in ipairs { opts.headers or false, opts.extra_headers or false } do
    if type(src) == "table" then
      for k, v in pairs(src) do
        local lower = type(k) == "string" and k:lower()
        if lower and not IS_STRIPPED[lower] and not carries_secret(self, v) then
          h[k], given[lower] = v, true
        end
      end
    end
  end
  for _, name in ipairs(STRIPPED) do h[name] = null end
  for lower, line in pairs(rawget(self, "_hlines") or {}) do   -- (the client's header lines, by lower-case name)
    if not given[lower] and type(line) == "string" and carries_secret(self, line:match("^[^:]*:%s*(.*)$")) then
      h[lower] = null
    end
  end
  return h
end

--- The method (`aigc.media` installs it as `Client:download`).
-- @local
function M.download (self, submit, fname, url, opts, async)
  if not media.is_http_url(url) then util.argerror(fname, 1, util.expected("an http:// or https:// URL", url)) end
  opts = opts == nil and {} or media.params_of(self, fname, opts, nil, 2)
  local params = media.sendable(opts)
  if origin(url) ~= origin(self.base_url) then   -- another host: no credential, no organization
    params.headers, params.extra_headers = foreign_headers(self, opts), nil
  end
  return media.perform(self, submit, {
    fname = fname, async = async, api = "get", path = url, params = params,
    body = { absolute = true, sink = media.sink_of(fname, opts.to) },
    on_done = opts.on_done, on_error = opts.on_error,
  })
end

return M
