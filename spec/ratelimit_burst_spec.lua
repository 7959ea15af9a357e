-- aigc.ratelimit under a burst, on a simulated clock (counted, not timed):
-- the buckets follow the server's own count, up as well as down; and the
-- runner's refusals of bad limits and its stop with cases in flight.

local aigc = require "aigc"
local core = require "aigc.core"
local devserver = require "devserver"
local runner = require "aigc.runner"

-- A fresh aigc.ratelimit whose clock is `clock()` (the module takes
-- core.now when it loads).
local function limiter_module (clock)
  local saved, real = package.loaded["aigc.ratelimit"], core.now
  package.loaded["aigc.ratelimit"], core.now = nil, clock
  local ok, m = pcall(require, "aigc.ratelimit")
  package.loaded["aigc.ratelimit"], core.now = saved, real
  assert(ok, m)
  return m
end

-- A server's limiter as OpenAI's (and the bundled server's): two buckets
-- refilled continuously; a request finding one short is a 429.
local function server (rpm, tpm, clock)
  local s = { requests = rpm, tokens = tpm, at = clock(), admitted = 0, rejected = 0 }
  function s.admit (cost)
    local t = clock()
    s.requests = math.min(rpm, s.requests + (t - s.at) * rpm / 60)
    s.tokens = math.min(tpm, s.tokens + (t - s.at) * tpm / 60)
    s.at = t
    local ok = s.requests >= 1 and s.tokens >= cost
    if ok then
      s.requests, s.tokens, s.admitted = s.requests - 1, s.tokens - cost, s.admitted + 1
    else
      s.rejected = s.rejected + 1
    end
    return ok, {
      ["x-ratelimit-limit-requests"] = tostring(rpm),
      ["x-ratelimit-remaining-requests"] = tostring(math.floor(s.requests)),
      ["x-ratelimit-reset-requests"] = string.format("%.3fs", (rpm - s.requests) * 60 / rpm),
      ["x-ratelimit-limit-tokens"] = tostring(tpm),
      ["x-ratelimit-remaining-tokens"] = tostring(math.floor(s.tokens)),
      ["x-ratelimit-reset-tokens"] = string.format("%.3fs", (tpm - s.tokens) * 60 / tpm),
    }
  end
  return s
end

-- Sends n requests as fast as the limiter lets them go (each answered
-- `latency` s later), the limiter estimating `estimate` tokens for each
-- and the server counting `counted`. Returns the simulated seconds from
-- the first request to the last answer, and the server.
local function burst (n, rpm, tpm, estimate, counted, latency)
  local t = 0
  local function clock () return t end
  local ratelimit = limiter_module(clock)
  local l = ratelimit.new { concurrency = 64 }
  local srv = server(rpm, tpm, clock)
  local flight, pending, answered = {}, n, 0
  while answered < n do
    table.sort(flight, function (a, b) return a.at < b.at end)
    while flight[1] and flight[1].at <= t do
      local r = table.remove(flight, 1)
      if r.ok then
        l:observe(r.ticket, { headers = r.headers })
        answered = answered + 1
      else
        l:observe(r.ticket, nil, { status = 429, headers = r.headers, retry_after = 1, type = "tokens" })
        pending = pending + 1
      end
    end
    local wait = 1
    while pending > 0 do
      local ok, w = l:reserve(estimate)
      if not ok then wait = w; break end
      local ticket = l:sent(estimate)
      local admitted, headers = srv.admit(counted)
      flight[#flight + 1] = { at = t + latency, ticket = ticket, ok = admitted, headers = headers }
      pending = pending - 1
    end
    local next_t = t + math.max(wait, 1e-3)
    for _, r in ipairs(flight) do next_t = math.min(next_t, r.at) end
    t = next_t
    assert(t < 36000, "the burst did not end")
  end
  return t, srv
end

describe("aigc.ratelimit under a burst (a simulated clock)", function ()
  it("500 requests: none refused by the server, done about when the limits allow", function ()
    -- 300 requests a minute: 300 at once, then 5 a second: the last at 40 s
    local t, srv = burst(500, 300, 1000000, 30, 30, 0.5)
    assert.equal(0, srv.rejected)
    assert.equal(500, srv.admitted)
    assert.is_true(t >= 40 and t < 40 * 1.1 + 0.5, tostring(t))
    -- 6,000 tokens a minute at 30 a request: 200 at once, then 100 tokens a second
    t, srv = burst(500, 100000, 6000, 30, 30, 0.5)
    assert.equal(0, srv.rejected)
    assert.is_true(t >= 90 and t < 90 * 1.1 + 0.5, tostring(t))
  end)

  it("follows the server's count of tokens when its own estimate is higher (corrected from the headers)", function ()
    -- estimated 60, counted 30: the server allows the same 90 s (before:
    -- the copy was only ever lowered by the headers, so the run went at
    -- the estimates' pace, 60 tokens a request: 242 s)
    local t, srv = burst(500, 100000, 6000, 60, 30, 0.5)
    assert.equal(0, srv.rejected)
    assert.is_true(t >= 90 and t < 90 * 1.1 + 0.5, tostring(t))
  end)

  it("the newest answer sets the buckets, an older one or one before a 429 only lowers them", function ()
    local t = 0
    local ratelimit = limiter_module(function () return t end)
    local function headers (remaining)
      return { ["x-ratelimit-limit-tokens"] = "6000", ["x-ratelimit-remaining-tokens"] = tostring(remaining),
               ["x-ratelimit-reset-tokens"] = "1s" }
    end
    local l = ratelimit.new { concurrency = 8 }
    l:observe(l:sent(1000), { headers = headers(5900) })      -- the server counted 100
    assert.equal(5900, l:state().tokens)
    l:observe(l:sent(1000), { headers = headers(5800) })      -- the newest count sets it: up from 4,900
    assert.equal(5800, l:state().tokens)
    local a, b = l:sent(1000), l:sent(1000)
    assert.equal(3800, l:state().tokens)
    -- b's count, a (sent before it, still in flight) perhaps not in it yet
    l:observe(b, { headers = headers(5600) })
    assert.equal(4600, l:state().tokens)
    l:observe(a, { headers = headers(5700) })                  -- older (b perhaps not in it): only lowers
    assert.equal(4600, l:state().tokens)
    local c, d = l:sent(100), l:sent(100)
    l:observe(d, nil, { status = 429, retry_after = 1, type = "tokens", headers = headers(150) })
    assert.equal(0, l:state().tokens)                          -- (150 less c's 100 perhaps not counted: 0 at most)
    l:observe(c, { headers = headers(5000) })                  -- sent before the 429: no higher
    assert.equal(0, l:state().tokens)
  end)
end)

describe("aigc.runner's limits and stops", function ()
  local srv, client
  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)
  before_each(function () client = aigc.client { base_url = srv.base_url } end)
  after_each(function () client:close() end)

  it("refuses a bad rpm, tpm, max_wait or max_attempts as misuse of run, before the results file is made", function ()
    -- (before: rpm = 0 raised "bad argument #1 to 'new'" from runner.lua
    -- after creating `out`; max_attempts = 0 or 1.5 ran as 1 or 2 attempts)
    local out = os.tmpname()
    os.remove(out)
    local bad = { rpm = { 0, -1, 1 / 0 }, tpm = { 0, -5 }, max_wait = { 0, 1 / 0 }, max_attempts = { 0, -1, 1.5 } }
    for k, list in pairs(bad) do
      for _, v in ipairs(list) do
        local ok, e = pcall(runner.run, { client = client, cases = { { id = 1, prompt = "Hi" } }, out = out, [k] = v })
        assert.is_false(ok)
        assert.matches("bad argument #1 to 'run' %(spec%." .. k .. ": .* expected, got ", e)
        assert.is_nil(io.open(out))
      end
    end
  end)

  it("a stopped run's cases still in flight call nothing back after run returned", function ()
    local cases = {}
    for i = 1, 8 do cases[i] = { id = i, prompt = "Hi" } end
    local results, late = 0, 0
    local returned = false
    local s, err = runner.run { client = client, cases = cases, concurrency = 4, pace = false,
      strategy = function (c, params, case)   -- (the others answer 2 s after the first)
        if case.id ~= 1 then params.model = "fault:delay=2000" end
        return c:chat(params)
      end,
      on_result = function () results = results + 1; if returned then late = late + 1 end end,
      interrupted = function () return results >= 1 end }
    returned = true
    assert.is_nil(s)
    assert.equal("interrupted", err.code)
    assert.is_true(client:active() > 0)       -- (the others were still in flight)
    while client:step(0.05) > 0 do end
    assert.equal(0, late)                     -- (before: on_result ran for each of them)
    assert.equal(1, results)
  end)
end)
