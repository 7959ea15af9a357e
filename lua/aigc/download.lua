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
local media_call = require "aigc.media_call"
local future = require "aigc.future"
local util = require "aigc.util"
local credentials = require "aigc.credentials"
local reply = require "aigc.reply"

local ipairs, pairs, pcall, rawget, tostring, type = ipairs, pairs, pcall, rawget, tostring, type
local null = core.null

util.own_module()

local M = {}

local function origin (url)
  local o = url:match("^(%a+://[^/?#]+)")
  return o and o:lower()
end

-- The headers whose value is a credential, by name (`credentials.credential_header`,
-- the engine's rule for a client's secrets and a call's: src/error.c,
-- `credential_name`; the README's list): `download` never sends them to
-- another origin than the client's, neither the client's nor the
-- caller's own (for a host that wants one: a client whose `base_url` is
-- on that host). `spec/media_replies_spec.lua` checks that every
-- header the engine takes a secret from is one of them.
M.credential_header = credentials.credential_header

-- Also for the client's origin only: who is paying (OpenAI's headers).
local IS_STRIPPED = { ["openai-organization"] = true, ["openai-project"] = true }
local function stripped (lower)
  return IS_STRIPPED[lower] or credentials.credential_header(lower)
end

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
        if lower and not stripped(lower) and not carries_secret(self, v) then
          h[k], given[lower] = v, true
        end
      end
    end
  end
  for name in pairs(IS_STRIPPED) do h[name] = null end
  for _, name in ipairs { "authorization", "api-key", "x-api-key", "proxy-authorization" } do h[name] = null end
  for lower, line in pairs(rawget(self, "_hlines") or {}) do   -- (the client's header lines, by lower-case name)
    if not given[lower] and type(line) == "string"
       and (credentials.credential_header(lower) or carries_secret(self, line:match("^[^:]*:%s*(.*)$"))) then
      h[lower] = null
    end
  end
  return h
end

-- {======================================================
-- Redirects
-- =======================================================

-- Why here, hop by hop, and not libcurl's CURLOPT_FOLLOWLOCATION: libcurl
-- drops only Authorization and Cookie on a redirect to another host, not
-- api-key, x-api-key or a header holding a secret under another name, so
-- a download from the client's own origin that redirects to a CDN would
-- carry the key there. Each hop is a request of its own, whose headers
-- are chosen for its URL's origin by the same rule as the first's (and an
-- API call's handle never follows: src/transfer.c). The sink is only
-- written by a 2xx answer (src/transfer.c, on_write), so a redirect's
-- body reaches none; the result, its headers included, is the last hop's.
-- Timeouts and retries are each hop's.

local MAX_REDIRECTS = 5
local FOLLOWED = { [301] = true, [302] = true, [303] = true, [307] = true, [308] = true }

-- `loc` (a Location header) resolved against `base` (the URL that
-- answered it); the fragment dropped (never sent).
local function resolve (base, loc)
  loc = loc:gsub("#.*$", "")
  if loc:find("^%a[%w+.-]*:") then return loc end
  if loc:find("^//") then return base:match("^(%a+:)") .. loc end
  local root, path = base:match("^(%a+://[^/?#]+)([^?#]*)")
  if loc:find("^/") then return root .. loc end
  if loc:find("^%?") then return root .. path .. loc end
  return root .. (path:match("^(.*/)") or "/") .. loc
end

-- The error `err` scrubbed of the credentials the URLs carry (a signed
-- URL's `sig=` or `X-Amz-Signature=`, a password in the user info: as a
-- call's own query key is) and of the client's secrets. (Not given to the
-- requests themselves: a hop's error would then hold its redirect's
-- Location redacted, and an http URL redirected to its https form, the
-- same signature, could not be followed. Their log lines, though, are
-- written at once: `hop` gives them as `log_secrets`.)
local function scrubbed (self, err, urls)
  if type(err) ~= "table" then return err end
  local list = {}
  for _, u in ipairs(urls) do credentials.url_secrets(u, list) end
  local engine = rawget(self, "_engine")
  local ok, shown = pcall(engine.scrub, engine, err, list)
  if ok then return shown end
  return core.error { kind = err.kind, message = "a download failed (its error could not be scrubbed)" }
end

-- The URL a download's error redirects to, or nil (not a redirect: the
-- error stands), or nil and the error to give instead.
local function redirect_of (self, url, err, seen, hops)
  local status = type(err) == "table" and err.kind == "http" and err.status
  local loc = FOLLOWED[status] and type(err.headers) == "table" and err.headers.location
  if type(loc) ~= "string" or loc == "" then return nil end
  local to = resolve(url, loc)
  local function fail (why)   -- (the URLs scrubbed of the client's secrets and their own)
    err.message = why
    return nil, scrubbed(self, err, { url, to })
  end
  if not media.is_http_url(to) then
    local scheme = to:match("^(%a[%w+.-]*):")
    -- ("http:host/x", a space or a control character: an http(s) URL, but not a valid one)
    if scheme and scheme:lower():find("^https?$") then scheme = nil end
    return fail(("HTTP status %d: a redirect to %s, which a download does not follow (http and https only)")
                :format(status, scheme and "a " .. scheme .. ": URL" or "an invalid URL"))
  end
  if seen[to] then
    return fail(("HTTP status %d: a redirect loop (%s redirects back to %s)"):format(status, url, to))
  end
  if hops >= MAX_REDIRECTS then
    return fail(("HTTP status %d: more than %d redirects (the next one to %s)"):format(status, MAX_REDIRECTS, to))
  end
  return to
end

-- }======================================================

-- One request of a download: `url` with the headers of its origin, and
-- none of the credentials when `left` (an earlier hop left the client's
-- origin: a host that redirects back to the API must not make the client
-- send its key to a URL that host chose). Its log lines are scrubbed of
-- the credentials of `urls` (those visited, `url` last): a server echoing
-- a signature in its error message put it whole in the hop's "warn" line.
local function hop (self, submit, fname, url, opts, sink, left, urls)
  local params = media_call.sendable(opts)
  params.overwrite, params[media.AN_IMAGE] = nil, nil   -- (the sink's: never sent)
  if left or origin(url) ~= origin(self.base_url) then   -- another host: no credential, no organization
    params.headers, params.extra_headers = foreign_headers(self, opts), nil
  end
  local log_secrets = {}
  for _, u in ipairs(urls) do credentials.url_secrets(u, log_secrets) end
  return media_call.perform(self, submit, {
    fname = fname, async = true, api = "get", path = url, params = params,
    body = { absolute = true, sink = sink, log_secrets = log_secrets[1] and log_secrets or nil,
             audio = opts[media.AN_IMAGE] ~= nil },   -- (a function sink's: see download)
  })
end

--- The method (`aigc.media` installs it as `Client:download`).
-- @local
function M.download (self, submit, fname, url, opts, async)
  if not media.is_http_url(url) then util.argerror(fname, 1, util.expected("an http:// or https:// URL", url)) end
  opts = opts == nil and {} or media_call.params_of(self, fname, opts, nil, 2)
  local sink = media_call.sink_of(fname, opts.to)
  -- overwrite = false (res:save's for a url image): the file linked into place, never over one
  -- made there meanwhile (a rename replaced it; src/body.c)
  if opts.overwrite ~= nil and type(opts.overwrite) ~= "boolean" then
    util.field_error(fname, 2, "opts.overwrite", util.expected("boolean", opts.overwrite))
  end
  if opts.overwrite == false and type(sink) == "table" then sink.no_replace = true end
  -- a url image (res:save, aigc image): a 2xx JSON or text/* reply (a portal's page, a "link
  -- expired" one) is kept in memory (src/body.c), never written as the image (nor given to a
  -- function), and is the error
  local image = opts[media.AN_IMAGE]
  if image and type(sink) == "table" then sink.audio = true end
  -- (a misuse raises here, at the caller's line)
  local first = hop(self, submit, fname, url, opts, sink, false, { url })
  local f = future.run(self._loop, function (f)
    local req, seen, left, hops = first, { [url:gsub("#.*$", "")] = true }, false, 0
    local visited = { url }
    while true do   -- (redirect_of ends it at the sixth redirect)
      f:track(req)
      local res, err = req:wait()
      if res ~= nil and image and reply.is_not_audio_type(res.content_type) then
        local what = "an image (image " .. image .. ")"
        return nil, scrubbed(self, reply.not_audio(self, {}, res, res.body, what), visited)
      end
      if res ~= nil or f:canceled() then return res, err and scrubbed(self, err, visited) end
      local to, instead = redirect_of(self, url, err, seen, hops)
      if not to then return nil, instead or scrubbed(self, err, visited) end
      visited[#visited + 1] = to
      left = left or origin(url) ~= origin(self.base_url)
      seen[to], url = true, to
      local ok, nreq = pcall(hop, self, submit, fname, url, opts, sink, left, visited)
      if not ok then   -- (the client closed meanwhile)
        return nil, core.error { kind = "canceled", message = tostring(nreq) }
      end
      req, hops = nreq, hops + 1
    end
  end, { label = fname, on_done = opts.on_done, on_error = opts.on_error })
  if async then return f end
  return f:wait()
end

return M
