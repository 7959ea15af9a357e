-- aigc.ratelimit: durations as OpenAI writes them, the token estimate,
-- the buckets mirrored from x-ratelimit headers (with the in-flight
-- correction), the probe, 429s, and a server's real headers.

local aigc = require "aigc"
local devserver = require "devserver"
local ratelimit = require "aigc.ratelimit"

local function headers (limit, remaining, reset, tlimit, tremaining, treset)
  return {
    ["x-ratelimit-limit-requests"] = tostring(limit), ["x-ratelimit-remaining-requests"] = tostring(remaining),
    ["x-ratelimit-reset-requests"] = reset,
    ["x-ratelimit-limit-tokens"] = tlimit and tostring(tlimit), ["x-ratelimit-remaining-tokens"] = tremaining
      and tostring(tremaining), ["x-ratelimit-reset-tokens"] = treset,
  }
end

describe("aigc.ratelimit", function ()
  it("a ticket dropped without observe gives its place back once collected (it stayed taken)", function ()
    local limiter = ratelimit.new { concurrency = 2, pace = false }
    limiter:sent(10)            -- dropped: a task given up, an error path that forgot it
    local kept = limiter:sent(10)
    assert.is_false((limiter:reserve(10)))   -- two in flight: full
    collectgarbage(); collectgarbage()
    assert.is_true((limiter:reserve(10)))    -- the dropped one's place is free
    assert.equal(1, limiter:state().in_flight)
    limiter:observe(kept)
    assert.equal(0, limiter:state().in_flight)
    -- pacing, before its first response: one request at a time, and a dropped one ends its turn too
    limiter = ratelimit.new { concurrency = 2 }
    limiter:sent(10)
    assert.is_false((limiter:reserve(10)))
    collectgarbage(); collectgarbage()
    assert.is_true((limiter:reserve(10)))
  end)

  it("reads durations as OpenAI writes them", function ()
    assert.equal(0, ratelimit.duration("0s"))
    assert.equal(0.02, ratelimit.duration("20ms"))
    assert.equal(1.5, ratelimit.duration("1.5s"))
    assert.equal(360, ratelimit.duration("6m0s"))
    assert.equal(3723, ratelimit.duration("1h2m3s"))
    assert.equal(7, ratelimit.duration("7"))
    assert.is_nil(ratelimit.duration("soon"))
    assert.is_nil(ratelimit.duration("5x"))
    assert.is_nil(ratelimit.duration(nil))
  end)

  it("reads a reset header of 100 kB of digits at once (its pattern backtracked over them: minutes)", function ()
    -- (a child with a hang's bound: the backtracking runs inside string.match,
    -- where no hook sees it; the work is now linear, milliseconds)
    local r = require("luachild").run([[
      local ratelimit = require "aigc.ratelimit"
      io.write(tostring(ratelimit.duration(string.rep("1", 100000) .. "-")), " ",
               tostring(ratelimit.duration(string.rep("1s", 50000)) == 50000), " ",
               tostring(ratelimit.duration(string.rep("1", 100000) .. "ms")))
    ]], { timeout = 60 })
    assert.equal(0, r.status, r.stderr)
    assert.equal("nil true nil", r.stdout)
  end)

  it("estimates at least what a server counts (body / 4 + the output asked for)", function ()
    local params = { model = "m", messages = { { role = "user", content = string.rep("x", 400) } } }
    local body = aigc.json.encode(params)
    assert.is_true(ratelimit.estimate(params) >= math.floor(#body / 4) + 16)
    params.max_tokens = 100
    assert.is_true(ratelimit.estimate(params) >= math.floor(#aigc.json.encode(params) / 4) + 100)
    params.stream = function () end                       -- functions are not in the body
    assert.is_true(ratelimit.estimate(params) < ratelimit.estimate(params, 2))
  end)

  it("sends one request until the first answer tells the limits (a probe)", function ()
    local l = ratelimit.new { concurrency = 4 }
    assert.is_true((l:reserve(10)))
    local t = l:sent(10)
    assert.is_false((l:reserve(10)))
    l:observe(t, { headers = headers(100, 99, "600ms") })
    assert.is_true((l:reserve(10)))
  end)

  it("mirrors the request bucket, subtracting what was sent since", function ()
    local l = ratelimit.new { concurrency = 100 }
    local first = l:sent(1)
    for _ = 1, 3 do l:sent(1) end                         -- three more went before the first answer
    -- the server had 5 left after the first request: maybe 2 after the others
    l:observe(first, { headers = headers(600, 5, "6s") })
    assert.equal(2, l:state().requests)
    assert.is_true((l:reserve(1)))
    l:sent(1); l:sent(1)
    local ok, wait = l:reserve(1)
    assert.is_false(ok)
    -- refilled at 600 a minute (the reset says 595 in 6 s: the slower rate wins, 10 a second)
    assert.is_true(wait > 0 and wait <= 0.1 + 1e-9, tostring(wait))
  end)

  it("mirrors the token bucket and waits for enough tokens", function ()
    local l = ratelimit.new { concurrency = 100 }
    local t = l:sent(100)
    l:observe(t, { headers = headers(1000, 900, "6s", 6000, 500, "5.5s") })
    assert.equal(500, l:state().tokens)
    assert.is_true((l:reserve(400)))
    local ok, wait = l:reserve(600)
    assert.is_false(ok)
    assert.is_true(wait > 0)
  end)

  it("halves the concurrency and pauses on a 429, grows back on successes", function ()
    local l = ratelimit.new { concurrency = 8, pace = false }
    local tickets = {}
    for i = 1, 8 do assert.is_true((l:reserve(1))); tickets[i] = l:sent(1) end
    assert.is_false((l:reserve(1)))                       -- 8 in flight
    l:observe(tickets[1], nil, { status = 429, retry_after = 0.2, type = "requests" })
    assert.equal(4, l:state().concurrency)
    assert.equal(1, l:state().rate_limited)
    for i = 2, 8 do l:observe(tickets[i], { headers = {} }) end
    local ok, wait = l:reserve(1)
    assert.is_false(ok)                                   -- paused for the retry-after
    assert.is_true(wait > 0 and wait <= 0.2)
    assert.is_true(l:state().concurrency >= 5)           -- 7 successes added about 1.5
  end)

  it("does not pace a server that sends no rate-limit headers", function ()
    local l = ratelimit.new { concurrency = 3 }
    l:observe(l:sent(1), { headers = { ["content-type"] = "application/json" } })
    for _ = 1, 3 do assert.is_true((l:reserve(1))); l:sent(1) end
    assert.is_false((l:reserve(1)))
  end)

  it("learns from the bundled server's limiter", function ()
    local srv = devserver.start { args = { "--rate-limit", "60,6000" } }
    local client = aigc.client { base_url = srv.base_url }
    local l = ratelimit.new { concurrency = 2 }
    local t = l:sent(ratelimit.estimate { messages = { { role = "user", content = "Hi" } } })
    local res = assert(client:chat "Hi")
    l:observe(t, res)
    local s = l:state()
    assert.equal(59, s.requests)
    assert.is_true(s.tokens > 5900 and s.tokens < 6000)
    client:close()
    srv:stop()
  end)

  -- A server sending nonsense or huge waits, one reply per connection, in
  -- this order (the bundled server adds its own x-ratelimit headers).
  local HOSTILE = [[
    local oneshot = require "oneshot"
    local server = oneshot.listen()
    server:settimeout(60)   -- (gone a minute after a spec that stopped asking)
    local ok = '{"choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}'
    local slow = '{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}'
    local replies = {
      { 200, "x-ratelimit-limit-requests: 10", "x-ratelimit-remaining-requests: 0",
        "x-ratelimit-reset-requests: 1000h" },
      { 200, "x-ratelimit-limit-requests: 10", "x-ratelimit-remaining-requests: -1000000",
        "x-ratelimit-reset-requests: 1s" },
      { 200, "x-ratelimit-limit-tokens: 1e999", "x-ratelimit-remaining-tokens: 5", "x-ratelimit-reset-tokens: 1s" },
      { 200, "x-ratelimit-limit-requests: 10", "x-ratelimit-remaining-requests: 1000000000",
        "x-ratelimit-reset-requests: soon", "x-ratelimit-limit-tokens: 1", "x-ratelimit-remaining-tokens: 1",
        "x-ratelimit-reset-tokens: -5s" },
      { 429, "retry-after: 86400" },
      { 429, "retry-after: -5" },
      { 200, "x-ratelimit-limit-requests: 10", "x-ratelimit-remaining-requests: 0",
        "x-ratelimit-reset-requests: 1000h" },
      { 429, "retry-after: 86400" },
    }
    for _, r in ipairs(replies) do
      local c = oneshot.read_request(server)
      local body = r[1] == 200 and ok or slow
      local h = { "HTTP/1.1 " .. r[1] .. (r[1] == 200 and " OK" or " Too Many Requests"),
                  "Content-Type: application/json", "Content-Length: " .. #body, "Connection: close" }
      for i = 2, #r do h[#h + 1] = r[i] end
      c:send(table.concat(h, "\r\n") .. "\r\n\r\n" .. body)
      c:close()
    end
  ]]

  it("caps what a hostile server's headers teach at max_wait (120 s), and ignores nonsense", function ()
    local port, child = require("oneshot").start(HOSTILE)
    local client = aigc.client { base_url = "http://127.0.0.1:" .. port .. "/v1", max_retries = 0 }
    local function ask (l, cost)
      local t = l:sent(cost or 1)
      local res, err = client:chat "Hi"
      l:observe(t, res, err)
      return res, err
    end
    local cap = 120                                        -- (ratelimit.MAX_WAIT: checked below)
    -- a reset of 1000 hours with nothing left: the bucket refills within the cap
    local l = ratelimit.new()
    assert(ask(l))
    local ok, wait = l:reserve(1)
    assert.is_false(ok)
    assert.is_true(wait > 0 and wait <= cap / 10 + 1e-9, tostring(wait))   -- (10 requests in 120 s)
    -- a negative remaining, an infinite limit: ignored (not paced)
    l = ratelimit.new()
    assert(ask(l))
    assert.is_nil(l:state().requests)
    assert.is_true((l:reserve(1)))
    l = ratelimit.new()
    assert(ask(l))
    assert.is_nil(l:state().tokens)
    -- a remaining above the limit is the limit; an unreadable or negative reset is
    -- ignored; a bucket of 1 token against a request of 5,000 waits the cap, not 83 hours
    l = ratelimit.new()
    assert(ask(l))
    assert.equal(10, l:state().requests)
    assert.equal(1, l:state().tokens)
    l:sent(5000)
    ok, wait = l:reserve(5000)
    assert.is_false(ok)
    assert.is_true(wait > 0 and wait <= cap, tostring(wait))
    -- a 429 asking for a day pauses for the cap; a negative retry-after is left out (1 s)
    l = ratelimit.new()
    local _, err = ask(l)
    assert.equal(86400, err.retry_after)
    ok, wait = l:reserve(1)
    assert.is_false(ok)
    assert.is_true(wait > cap - 30 and wait <= cap, tostring(wait))
    l = ratelimit.new()
    _, err = ask(l)
    assert.equal(429, err.status)
    ok, wait = l:reserve(1)
    assert.is_false(ok)
    assert.is_true(wait > 0 and wait <= 1, tostring(wait))
    -- the same with max_wait = 0.3: the next request goes within it
    for _ = 1, 2 do
      l = ratelimit.new { max_wait = 0.3 }
      ask(l)
      -- (the waits it tells add up to max_wait at most: a sleep that overran only shortens the next)
      local told = 0
      for _ = 1, 100 do
        ok, wait = l:reserve(1)
        if ok then break end
        assert.is_true(wait <= 0.3, tostring(wait))
        told = told + wait
        aigc.sleep(wait)
      end
      assert.is_true(ok)
      assert.is_true(told <= 0.3 + 1e-6, tostring(told))
    end
    client:close()
    child:wait(10)
    assert.equal(cap, ratelimit.MAX_WAIT)
  end)

  it("estimate and new refuse bad arguments at the caller's line", function ()
    local ok, e = pcall(function () local n = ratelimit.estimate(nil); return n end)
    assert.is_false(ok)
    assert.matches("^[^\n]*ratelimit_spec.lua:%d+: bad argument #1 to 'estimate' %(table expected, got nil%)$", e)
    assert.has_error(function () ratelimit.estimate({}, "x") end,
      "bad argument #2 to 'estimate' (number >= 0 expected, got string)")
    for _, k in ipairs { "rpm", "tpm", "max_wait" } do
      for _, v in ipairs { 0, -1, 1 / 0, "x" } do
        assert.has_error(function () ratelimit.new { [k] = v } end,
          "bad argument #1 to 'new' (" .. k .. " must be a number > 0)")
      end
    end
  end)

  it("refuses bad arguments", function ()
    assert.has_error(function () ratelimit.new { concurrency = 0 } end,
      "bad argument #1 to 'new' (concurrency must be an integer >= 1)")
    assert.has_error(function () ratelimit.Limiter.reserve({}, 1) end,
      "calling 'reserve' on bad self (aigc.ratelimit expected)")
  end)
end)
