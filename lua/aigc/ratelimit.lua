--- A client-side rate limiter that keeps a client inside the server's
-- limits: token buckets mirrored from the `x-ratelimit-*` headers, and an
-- adaptive concurrency that halves on a 429 (or a 503) and grows back by
-- one per round of successes.
--
-- OpenAI-style servers send, with every response, the limit, what remains
-- and the time until the bucket is full again, for requests and for
-- tokens: `x-ratelimit-limit-requests`, `x-ratelimit-remaining-requests`,
-- `x-ratelimit-reset-requests` (a duration: "20ms", "1.5s", "6m0s") and
-- the same with `-tokens`. The limiter keeps a local copy of both buckets,
-- refilled at the rate those headers imply, and deducts each request it
-- admits (one request, and an estimate of its tokens computed as the
-- servers do: the body's characters / 4 plus the output it asks for).
-- A response's `remaining` is the server's count when it admitted that
-- request; requests sent after it may or may not be counted yet, so the
-- limiter subtracts them all: its copy never holds more than the server's
-- bucket, and a client alone on a key gets no 429. The newest response
-- sets the copy, up or down: an estimate above what the server counts is
-- corrected (an older response, or one sent before a 429, only lowers it).
--
-- Until the first response tells the limits, one request at a time goes
-- (a probe); a server that sends no such headers is not paced at all (only
-- the concurrency cap and 429s apply).
--
-- What a server says is capped, as the core caps its own retry waits: no
-- request waits longer than `max_wait` seconds (default 120) for what the
-- headers told. A longer `retry-after` or reset time counts as `max_wait`;
-- a bucket's deficit deeper than `max_wait` of refill is forgotten (a tiny
-- limit against a big request); a negative, infinite or unreadable limit,
-- remaining count or reset is ignored (a remaining above the limit is the
-- limit). A hostile or broken server cannot make it wait for hours.
--
-- @module aigc.ratelimit
-- @usage
-- local ratelimit = require "aigc.ratelimit"
-- local limiter = ratelimit.new { concurrency = 8 }
-- local cost = ratelimit.estimate(params)
-- if limiter:reserve(cost) then
--   local ticket = limiter:sent(cost)
--   local res, err = client:chat(params)
--   limiter:observe(ticket, res, err)
-- end

local core = require "aigc.core"
local util = require "aigc.util"
util.own_module()

local json_encode = core.json.encode
local now = core.now
local error, ipairs, pairs, pcall, setmetatable, tonumber, type = error, ipairs, pairs, pcall, setmetatable,
  tonumber, type
local math_ceil, math_floor, math_huge, math_max, math_min = math.ceil, math.floor, math.huge, math.max, math.min
local string_match = string.match
local table_remove = table.remove

local M = {}

local Limiter = {}

-- A named caller of `reserve` is held weakly: a task given up while it
-- waited for its turn (a bot per customer, its client and conversation)
-- was kept by a long-lived limiter until a later caller found it lapsed,
-- for ever when none came. `place` is weak-keyed and its entries hold the
-- caller in a weak field: an entry referring to its key strongly would
-- keep both on Lua 5.1 and LuaJIT (no ephemerons).
local WEAK_K, WEAK_V = { __mode = "k" }, { __mode = "v" }
Limiter.__index = Limiter
Limiter.__name = "aigc.ratelimit"

--- The default of `new`'s `max_wait`: the longest wait, in seconds, that
-- what a server says may impose (the core's cap on a server's delay).
M.MAX_WAIT = 120

-- A finite number >= 0, else nil.
local function finite (n)
  if type(n) == "number" and n >= 0 and n < math_huge then return n end
  return nil
end

-- A decimal "12", "1.5", ".5" as a number, or nil. Not tonumber: on Lua
-- 5.1 it follows the C locale's decimal point (nil for "1.5" when a host set
-- LC_NUMERIC=de_DE), on 5.4 it takes "1,5" then; a string of digits reads
-- the same everywhere. m / 10^k is correctly rounded (10^k exact to k = 22).
local function decimal (s)
  local int, frac = string_match(s, "^(%d*)%.(%d+)$")
  if not int then int, frac = string_match(s, "^%d+$"), "" end
  if not int or #frac > 22 then return nil end
  return tonumber(int .. frac) / 10 ^ #frac
end

--- Seconds of a duration as OpenAI writes them: "20ms", "1.5s", "6m0s",
-- "1h2m3s", or a bare number of seconds. Negative, infinite or NaN: nil.
-- @tparam string s
-- @treturn number|nil seconds
-- @usage ratelimit.duration("6m0.5s") --> 360.5
function M.duration (s)
  if type(s) == "number" then return finite(s) end
  if type(s) ~= "string" then return nil end
  local n = decimal(s)
  if n then return finite(n) end
  local total, matched = 0, false
  -- (a number and its unit read from a position: "^(%d*%.?%d+)(%a+)(.*)$"
  -- backtracked over a run of digits, quadratic in it, and copied the rest
  -- at each unit; decimal() refuses what "%d*%.?%d+" did not take)
  local rest, at = s:gsub("%s", ""), 1
  while at <= #rest do
    local num, unit, tail = rest:match("^([%d%.]+)(%a+)()", at)
    if not num then return nil end
    local v = decimal(num)
    if not v then return nil end
    if unit == "ms" then v = v / 1000
    elseif unit == "s" then v = v * 1
    elseif unit == "m" then v = v * 60
    elseif unit == "h" then v = v * 3600
    elseif unit == "d" then v = v * 86400
    else return nil end
    total, matched, at = total + v, true, tail
  end
  return matched and finite(total) or nil
end

--- The tokens a request is expected to cost, as rate limiters count them:
-- the JSON body's bytes / 4 (plus a margin) and the output it may ask for
-- (`max_completion_tokens`, `max_tokens`, `max_output_tokens`, else 16).
-- @tparam table params the request params
-- @tparam[opt=1] integer n requests of these params (a strategy's candidates)
-- @treturn integer
-- @usage local cost = ratelimit.estimate { messages = msgs, max_tokens = 100 }
function M.estimate (params, n)
  if type(params) ~= "table" then
    error("bad argument #1 to 'estimate' (table expected, got " .. type(params) .. ")", 2)
  end
  if n ~= nil and not finite(n) then
    error("bad argument #2 to 'estimate' (number >= 0 expected, got " .. (type(n) == "number" and tostring(n)
          or type(n)) .. ")", 2)
  end
  local body = {}
  for k, v in pairs(params) do
    if type(v) ~= "function" then body[k] = v end
  end
  -- As the body goes on the wire: a schema in its response_format (86 bytes
  -- more), a stream with its stream_options (53). Without them a small
  -- request was estimated ~20 tokens under the server's count, and requests
  -- in flight near the limit, each short, added up to a 429.
  if params.schema ~= nil then
    body.schema, body.schema_name, body.schema_mode, body.schema_strict = nil, nil, nil, nil
    body.response_format = { type = "json_schema", json_schema = {
      name = type(params.schema_name) == "string" and params.schema_name or "response", strict = true,
      schema = params.schema } }
  end
  if params.stream then
    body.stream = true
    if body.stream_options == nil then body.stream_options = { include_usage = true } end
  end
  local ok, text = pcall(json_encode, body)
  local bytes = ok and #text or 1000
  -- (a count the server will refuse -- negative, NaN -- counts as none:
  -- reserve and sent take a finite cost >= 0 only)
  local function count (v) return finite(tonumber(v)) end
  local out = count(params.max_completion_tokens) or count(params.max_tokens)
    or count(params.max_output_tokens) or 16
  local choices = count(params.n) or 1
  -- 10 % and 16 bytes of margin: the encoder of the core may write the
  -- body a little longer (added fields, number formats).
  local cost = (math_ceil((bytes * 1.1 + 16) / 4) + out * choices) * (n or 1)
  return cost < 2^53 and cost or 2^53
end

local NEW_OPTIONS = { concurrency = true, pace = true, rpm = true, tpm = true, max_wait = true }

--- Makes a limiter.
-- @tparam[opt] table opts
--
--  - `concurrency` (default 8): the most requests in flight; the adaptive
--    concurrency moves between 1 and this
--  - `pace` (default true): follow the x-ratelimit headers; false: only
--    the concurrency (and 429s) limit
--  - `rpm`, `tpm`: known limits to start with (else learned from the headers)
--  - `max_wait` (default `MAX_WAIT`, 120): the longest wait in seconds that
--    the server's headers may impose (retry-after, reset times, limits)
-- @treturn aigc.ratelimit
-- @usage local limiter = ratelimit.new { concurrency = 16 }
function M.new (opts)
  opts = opts or {}
  -- (at the user's line, through pcall too; a mistyped option, `concurency`,
  -- was ignored without a word and the limiter ran with the default)
  if type(opts) ~= "table" then util.argerror("new", 1, util.expected("table", opts)) end
  for k in pairs(opts) do
    if not NEW_OPTIONS[k] then
      util.field_error("new", 1, util.path("opts", k), "unknown option (concurrency, pace, rpm, tpm, max_wait)")
    end
  end
  if opts.pace ~= nil and type(opts.pace) ~= "boolean" then   -- (pace = "no" paced)
    util.field_error("new", 1, "opts.pace", util.expected("boolean", opts.pace))
  end
  local max = opts.concurrency or 8
  if type(max) ~= "number" or max < 1 or max ~= math_floor(max) then
    util.argerror("new", 1, "concurrency must be an integer >= 1")
  end
  for _, k in ipairs { "rpm", "tpm", "max_wait" } do
    local v = opts[k]
    if v ~= nil and not (finite(v) and v > 0) then
      util.argerror("new", 1, k .. " must be a number > 0")
    end
  end
  local self = setmetatable({
    max_concurrency = max,
    concurrency = max,              -- the adaptive limit (a float; floor it)
    in_flight = 0,
    pace = opts.pace ~= false,
    sent_requests = 0, sent_tokens = 0,   -- running totals, for the in-flight correction
    sent_count = 0,                 -- `sent` calls: a ticket's place (newer responses set the buckets)
    open = setmetatable({}, { __mode = "k" }),   -- tickets not observed yet (a dropped one goes)
    paused_until = 0,
    max_wait = opts.max_wait or M.MAX_WAIT,
    rate_limited = 0,               -- 429s seen
    known = false,                  -- limits learned (or given)
    probing = opts.pace ~= false,   -- one request until the first response
    buckets = {},
    waiting = {},                   -- named callers of reserve refused, first first: { who =, asked =, wait = }
    place = setmetatable({}, WEAK_K),   -- who -> its entry in waiting (both hold `who` weakly: see reserve)
  }, Limiter)
  if opts.rpm then self:_set_bucket("requests", opts.rpm, opts.rpm, opts.rpm / 60) end
  if opts.tpm then self:_set_bucket("tokens", opts.tpm, opts.tpm, opts.tpm / 60) end
  if opts.rpm or opts.tpm then self.known, self.probing = true, false end
  return self
end

-- Sets a bucket (made when new). It refills whole within max_wait at
-- least: what the server says cannot keep a request waiting longer.
function Limiter:_set_bucket (name, capacity, level, rate, seq)
  rate = math_max(rate, capacity / self.max_wait)
  local b = self.buckets[name]
  local t = now()
  if not b then
    b = { capacity = capacity, level = level, rate = rate, at = t, seq = seq or 0 }
    self.buckets[name] = b
    return b
  end
  self:_refill(b, t)
  b.capacity, b.rate = capacity, rate
  -- The count of a request sent after the one that last set the level is
  -- newer: it sets it (it was only lowered, and a run whose estimates
  -- exceeded the server's count went at the estimates' pace, half the
  -- server's limit for estimates twice its count); an older one lowers it.
  if seq and seq > b.seq then b.level, b.seq = level, seq
  elseif level < b.level then b.level = level end
  return b
end

function Limiter:_refill (b, t)
  t = t or now()
  local dt = t - b.at
  if dt > 0 then
    b.level = math_min(b.capacity, b.level + dt * b.rate)
    b.at = t
  end
  -- A deficit deeper than max_wait of refill (a request bigger than the
  -- bucket, many sent since) is forgotten: a full bucket is never further
  -- away than that (see wait_for).
  local floor = b.capacity - b.rate * self.max_wait
  if b.level < floor then b.level = floor end
end

-- The seconds until bucket b holds `need` (refilled: at most max_wait,
-- since need <= capacity and the level is at least capacity - rate * max_wait).
local function wait_for (b, need)
  if b.level >= need then return 0 end
  if need > b.capacity then need = b.capacity end   -- a request bigger than the bucket waits for a full one
  if b.rate <= 0 then return math_huge end
  return (need - b.level) / b.rate
end

-- A cost or a count given to reserve or sent: a finite number >= 0. NaN
-- made the bucket's level NaN, which the next refill turned into a full
-- bucket (what was sent before was forgotten: a 429); a negative one added
-- tokens; a string raised "attempt to compare string with number".
local function amount (fname, argn, v, default)
  if v == nil then return default end
  if not finite(v) then
    error(string.format("bad argument #%d to '%s' (number >= 0 expected, got %s)", argn, fname,
          type(v) == "number" and tostring(v) or type(v)), 3)
  end
  return v
end

-- Whether a request may go now, for any caller: true, 0 or false and the
-- seconds to wait.
-- A ticket dropped without `observe` (a task given up, an error path that
-- forgot it) left `in_flight` raised for good: the limiter's concurrency
-- shrank by one each time, down to every caller waiting for ever. The weak
-- `open` set loses such a ticket at a collection; a full limiter recounts
-- from it before it refuses.
local function recount_in_flight (self)
  local n = 0
  for _ in pairs(self.open) do n = n + 1 end
  if n < self.in_flight then self.in_flight = n end
end

function Limiter:_may_go (cost, requests, t)
  local limit = math_max(1, math_floor(self.concurrency))
  if self.in_flight >= limit then recount_in_flight(self) end
  if self.in_flight >= limit then return false, 0.05 end
  if t < self.paused_until then return false, self.paused_until - t end
  if not self.pace then return true, 0 end
  if self.probing then
    if self.in_flight > 0 then recount_in_flight(self) end
    if self.in_flight > 0 then return false, 0.05 end
    return true, 0
  end
  local wait = 0
  local rb, tb = self.buckets.requests, self.buckets.tokens
  if rb then self:_refill(rb, t); wait = math_max(wait, wait_for(rb, requests)) end
  if tb then self:_refill(tb, t); wait = math_max(wait, wait_for(tb, cost)) end
  if wait > 0 then return false, math_min(wait, self.max_wait) end   -- (a rounding's excess)
  return true, 0
end

--- How long (seconds) past the wait it was told a named caller of
-- `reserve` keeps its place without asking again.
M.LAPSE = 5

--- Whether a request of `cost` tokens may go now. When it may, nothing is
-- deducted yet: call `sent` when it goes.
--
-- Tasks that share one limiter name themselves with `who` (any value: the
-- task, its coroutine) to be served first come, first served: once a named
-- caller is refused, every later one (named or not) is refused too until
-- it is let go, so small requests cannot keep taking the bucket while a
-- big one waits forever. It never blocks: a refused caller asks again
-- after the wait it is told. A named caller that does not ask again within
-- `LAPSE` seconds past that wait loses its place (a task given up), and
-- one collected loses it at once: the limiter holds its callers weakly.
-- @tparam[opt=0] number cost estimated tokens (see `estimate`)
-- @tparam[opt=1] number requests how many requests it makes
-- @param[opt] who the caller, for first come, first served
-- @treturn boolean may go
-- @treturn number seconds to wait before asking again (0 when it may go)
-- @usage local ok, wait = limiter:reserve(cost, 1, task)
function Limiter:reserve (cost, requests, who)
  cost, requests = amount("reserve", 1, cost, 0), amount("reserve", 2, requests, 1)
  if who ~= who then error("bad argument #3 to 'reserve' (NaN cannot name a caller)", 2) end
  local t = now()
  local q, ok, wait = self.waiting, self:_may_go(cost, requests, t)
  -- (the waiters that stopped asking go, and the ones collected; the others keep their place)
  while q[1] and (q[1].who == nil or (q[1].who ~= who and t > q[1].asked + q[1].wait + M.LAPSE)) do
    if q[1].who ~= nil then self.place[q[1].who] = nil end
    table_remove(q, 1)
  end
  if q[1] and q[1].who == who then
    if ok then self.place[who] = nil; table_remove(q, 1) end
  elseif q[1] and ok then
    ok, wait = false, 0.05   -- (a caller came first: its turn)
  end
  if not ok and who ~= nil then
    local entry = self.place[who]
    if entry == nil then entry = setmetatable({ who = who }, WEAK_V); self.place[who] = entry; q[#q + 1] = entry end
    entry.asked, entry.wait = t, wait
  end
  return ok, wait
end

--- Records that a request went: deducts it from the buckets and returns
-- the ticket to give `observe` with its outcome.
-- @tparam[opt=0] number cost
-- @tparam[opt=1] number requests
-- @treturn table ticket
-- @usage local ticket = limiter:sent(cost)
function Limiter:sent (cost, requests)
  cost, requests = amount("sent", 1, cost, 0), amount("sent", 2, requests, 1)
  self.in_flight = self.in_flight + 1
  self.sent_requests = self.sent_requests + requests
  self.sent_tokens = self.sent_tokens + cost
  self.sent_count = self.sent_count + 1
  local rb, tb = self.buckets.requests, self.buckets.tokens
  if rb then self:_refill(rb); rb.level = rb.level - requests end
  if tb then self:_refill(tb); tb.level = tb.level - cost end
  local ticket = { requests = self.sent_requests, tokens = self.sent_tokens, cost = cost, count = requests,
                   seq = self.sent_count }
  self.open[ticket] = true
  return ticket
end

local function header (h, name)
  if type(h) ~= "table" then return nil end
  return h[name]
end

-- Mirrors one bucket from a response's headers. Nonsense is ignored (a
-- limit below 1, a negative, infinite or unreadable count or reset), and a
-- reset is at most max_wait (with a limit >= 1 the rate is then > 0).
function Limiter:_learn (h, kind, ticket, before)
  local limit = finite(tonumber(header(h, "x-ratelimit-limit-" .. kind)))
  local remaining = finite(tonumber(header(h, "x-ratelimit-remaining-" .. kind)))
  if not limit or not remaining or limit < 1 then return false end
  if remaining > limit then remaining = limit end
  local reset = M.duration(header(h, "x-ratelimit-reset-" .. kind))
  if reset and reset > self.max_wait then reset = self.max_wait end
  local rate = limit / 60                       -- limits are per minute
  if reset and reset > 0 and limit > remaining then rate = math_min(rate, (limit - remaining) / reset) end
  -- Requests sent after this one may not be counted in `remaining` yet,
  -- nor those sent before it still in flight (a server may admit them
  -- later: its connection was slower), nor the ticket's others (a
  -- strategy's judge goes after the answer whose headers these are).
  local count = math_max(1, tonumber(ticket.count) or 1)
  local since = kind == "requests" and (self.sent_requests - ticket.requests + count - 1 + before.requests)
    or (self.sent_tokens - ticket.tokens + (ticket.cost or 0) * (count - 1) / count + before.tokens)
  self:_set_bucket(kind, limit, remaining - since, rate, ticket.seq)
  return true
end

--- Records a request's outcome: learns the limits from its headers, and
-- adapts the concurrency (a 429 or 503 halves it and pauses every request
-- for the `retry-after` the server gave, at most `max_wait`; a success adds
-- 1/concurrency).
-- @tparam table ticket from `sent` (a ticket observed again is ignored)
-- @tparam[opt] table res the response (its `headers`)
-- @tparam[opt] table err the error (its `status`, `headers`, `retry_after`)
-- @usage limiter:observe(ticket, res, err)
function Limiter:observe (ticket, res, err)
  -- A ticket observed again (an error callback and the code after the
  -- call both reporting it) counts once: it let one more request fly than
  -- the concurrency, and a 429 halved the concurrency twice.
  if type(ticket) == "table" then
    if ticket.observed then return end
    ticket.observed = true
    self.open[ticket] = nil
  end
  self.in_flight = math_max(0, self.in_flight - 1)
  local h = (res and res.headers) or (err and type(err) == "table" and err.headers) or nil
  if self.pace and h then
    local before = { requests = 0, tokens = 0 }   -- (the requests sent before it, still in flight)
    for t in pairs(self.open) do
      if (t.seq or 0) < (ticket.seq or 0) then
        before.requests, before.tokens = before.requests + t.count, before.tokens + t.cost
      end
    end
    local learned = self:_learn(h, "requests", ticket, before)
    learned = self:_learn(h, "tokens", ticket, before) or learned
    if learned then self.known = true end
  end
  if self.probing and (res or (err and err.status)) then self.probing = false end
  local status = err and type(err) == "table" and err.status
  if status == 429 or status == 503 then
    if status == 429 then self.rate_limited = self.rate_limited + 1 end
    self.concurrency = math_max(1, self.concurrency / 2)
    -- (the server's wait, up to max_wait; none or nonsense: 1 s)
    local wait = finite(tonumber(err.retry_after)) or 1
    if wait > self.max_wait then wait = self.max_wait end
    self.paused_until = math_max(self.paused_until, now() + wait)
    -- The bucket the server found short is empty, whatever the copy says.
    local which = type(err.type) == "string" and err.type or "requests"
    local b = self.buckets[which]
    if b then
      self:_refill(b); b.level = math_min(b.level, 0)
      -- (a response older than the 429 cannot raise it again)
      b.seq = math_max(b.seq, type(ticket) == "table" and tonumber(ticket.seq) or 0)
    end
  elseif res then
    self.concurrency = math_min(self.max_concurrency, self.concurrency + 1 / math_max(1, self.concurrency))
  end
end

--- The limiter's state for a progress line.
-- @treturn table `{ concurrency =, in_flight =, requests =, tokens =, rate_limited = }`
-- (`requests`/`tokens`: the local buckets' levels, nil when unknown)
-- @usage local s = limiter:state(); print(s.concurrency, s.requests)
function Limiter:state ()
  local rb, tb = self.buckets.requests, self.buckets.tokens
  if rb then self:_refill(rb) end
  if tb then self:_refill(tb) end
  return {
    concurrency = math_floor(self.concurrency), in_flight = self.in_flight,
    requests = rb and math_floor(rb.level), tokens = tb and math_floor(tb.level),
    rate_limited = self.rate_limited,
  }
end

for _, f in ipairs { "reserve", "sent", "observe", "state" } do
  local fn = Limiter[f]
  Limiter[f] = function (self, ...)
    if type(self) ~= "table" or self.buckets == nil then
      error("calling '" .. f .. "' on bad self (aigc.ratelimit expected)", 2)
    end
    return fn(self, ...)
  end
end

M.Limiter = Limiter

return M
