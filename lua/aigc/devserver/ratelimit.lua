--- aigc devserver: a rate limiter as OpenAI's -- two token buckets per
-- limiter (requests per minute, and tokens per minute when given), refilled
-- continuously; a request that finds a bucket short is answered 429
-- rate_limit_exceeded (type "requests" or "tokens") with retry-after,
-- retry-after-ms and the x-ratelimit-* headers OpenAI sends, durations
-- written as OpenAI writes them ("20ms", "1.5s", "6m0s"). Every response
-- of a limited server carries x-ratelimit-{limit,remaining,reset}-
-- {requests,tokens}. Limiters: the server's (--rate-limit RPM[,TPM]) and
-- per fault (rate-limit=RPM[,rate-limit-tpm=TPM][,key=K]; forgotten by
-- /_aigc/reset). stats.rate_limited_total counts the 429s.
-- Part of the devserver package.

local uv = require "luv"
local errors = require "aigc.devserver.errors"

local format, gsub = string.format, string.gsub

local M = {}

--- A duration in milliseconds as OpenAI (Go) writes it: 0s, 20ms, 1.5s, 6m0s, 1h2m3s.
function M.duration (ms)
  ms = math.max(0, math.ceil(ms))
  if ms == 0 then return "0s" end
  if ms < 1000 then return format("%dms", ms) end
  local h, m = ms // 3600000, ms // 60000 % 60
  local s = gsub(gsub(format("%.3f", ms % 60000 / 1000), "0+$", ""), "%.$", "") .. "s"
  if h > 0 then return format("%dh%dm%s", h, m, s) end
  if m > 0 then return format("%dm%s", m, s) end
  return s
end

--- A limiter of rpm requests (and tpm tokens, when given) per minute.
function M.new (rpm, tpm)
  local now = uv.now()
  return { rpm = rpm, tpm = tpm, requests = rpm, tokens = tpm, at = now }
end

local function refill (l, now)
  local dt = now - l.at
  l.at = now
  l.requests = math.min(l.rpm, l.requests + dt * l.rpm / 60000)
  if l.tpm then l.tokens = math.min(l.tpm, l.tokens + dt * l.tpm / 60000) end
end

-- The headers of a limiter's state.
local function headers (l)
  local h = {
    { "x-ratelimit-limit-requests", tostring(l.rpm) },
    { "x-ratelimit-remaining-requests", tostring(math.floor(l.requests)) },
    { "x-ratelimit-reset-requests", M.duration((l.rpm - l.requests) * 60000 / l.rpm) },
  }
  if l.tpm then
    h[#h + 1] = { "x-ratelimit-limit-tokens", tostring(l.tpm) }
    h[#h + 1] = { "x-ratelimit-remaining-tokens", tostring(math.floor(l.tokens)) }
    h[#h + 1] = { "x-ratelimit-reset-tokens", M.duration((l.tpm - l.tokens) * 60000 / l.tpm) }
  end
  return h
end

--- The tokens a request is expected to cost: its body's characters / 4
-- plus the output it may ask for (max_tokens & co., else 16).
function M.estimate (body_text, body)
  local out = 16
  if type(body) == "table" then
    out = math.tointeger(body.max_completion_tokens) or math.tointeger(body.max_tokens)
      or math.tointeger(body.max_output_tokens) or 16
  end
  return #body_text // 4 + out
end

--- Admit a request costing `cost` tokens. Returns the x-ratelimit headers,
-- and a 429 response when it exceeds the limiter.
function M.admit (l, cost, model)
  refill(l, uv.now())
  local kind, wait_ms, limit, used, requested
  if l.requests < 1 then
    kind, limit, used, requested = "requests", l.rpm, l.rpm - math.floor(l.requests), 1
    wait_ms = (1 - l.requests) * 60000 / l.rpm
  elseif l.tpm and l.tokens < cost then
    kind, limit, used, requested = "tokens", l.tpm, l.tpm - math.floor(l.tokens), cost
    wait_ms = cost > l.tpm and 60000 or (cost - l.tokens) * 60000 / l.tpm
  end
  if not kind then
    l.requests = l.requests - 1
    if l.tpm then l.tokens = l.tokens - cost end
    return headers(l)
  end
  local h = headers(l)
  h[#h + 1] = { "retry-after", tostring(math.max(1, math.ceil(wait_ms / 1000))) }
  h[#h + 1] = { "retry-after-ms", tostring(math.ceil(wait_ms)) }
  local per = kind == "requests" and "requests per min (RPM)" or "tokens per min (TPM)"
  local resp = errors.error_resp(429, format("Rate limit reached for %s in organization org-aigc-dev on %s: "
    .. "Limit %d, Used %d, Requested %d. Please try again in %s. Visit "
    .. "https://platform.openai.com/account/rate-limits to learn more.", model, per, limit, used, requested,
    M.duration(wait_ms)), kind, nil, "rate_limit_exceeded")
  resp.ratelimit = h
  return h, resp
end

--- The limiter a request answers to: the fault's (by key), else the server's.
function M.for_request (srv, fault)
  if fault["rate-limit"] then
    srv.fault_limiters = srv.fault_limiters or {}
    local key = fault.key or ("rate-limit=" .. fault["rate-limit"] .. "," .. tostring(fault["rate-limit-tpm"]))
    local l = srv.fault_limiters[key]
    if not l or l.rpm ~= fault["rate-limit"] or l.tpm ~= fault["rate-limit-tpm"] then
      l = M.new(fault["rate-limit"], fault["rate-limit-tpm"])
      srv.fault_limiters[key] = l
    end
    return l
  end
  return srv.limiter
end

return M
