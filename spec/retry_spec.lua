-- Retries, exactly as REFERENCE.md says the official SDKs do them: what is
-- retried, how long to wait, what the server may say about it.
local aigc = require "aigc"
local core = require "aigc.core"
local devserver = require "devserver"

warn("@on")

local HI = { { role = "user", content = "Hi" } }
local counter = 0

-- A fault that applies to the first `times` attempts of this call only.
local function flaky (spec, times, extra)
  counter = counter + 1
  local p = { messages = HI, headers = { ["x-aigc-fault"] = ("%s,times=%d,key=k%d"):format(spec, times, counter) } }
  for k, v in pairs(extra or {}) do p[k] = v end
  return p
end

describe("retries", function ()
  local srv, client, logs

  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)
  before_each(function ()
    srv:reset()
    logs = {}
    client = aigc.client { base_url = srv.base_url, api_key = "sk-retry-secret-0000",
                           log = function (level, msg) logs[#logs + 1] = level .. ": " .. msg end }
  end)
  after_each(function () client:close() end)

  local function attempts () return srv:stats().requests_total end

  it("retries 500 twice by default, then succeeds (res.retries = 2)", function ()
    local res = assert(client:chat(flaky("status=500,retry-after-ms=10", 2)))
    assert.equal(2, res.retries)
    assert.equal(3, attempts())
    local retried = 0
    for _, line in ipairs(logs) do
      if line:find("^warn: retrying") then retried = retried + 1 end
      assert.is_nil(line:find("sk-retry-secret", 1, true))
    end
    assert.equal(2, retried)
  end)

  it("names the status in the log lines of a retry and of the end (a 429 and a 503 read alike)", function ()
    local _, err = client:chat(flaky("status=503,retry-after-ms=5", 5, { max_retries = 1 }))
    assert.equal(503, err.status)
    local retry_line, end_line
    for _, line in ipairs(logs) do
      if line:find("^warn: retrying in") then retry_line = line end
      if line:find(" -> ", 1, true) then end_line = line end
    end
    assert.matches("after http error 503: The engine is currently overloaded", retry_line, 1, true)
    assert.matches("/v1/chat/completions -> http error 503 after ", end_line, 1, true)
  end)

  it("says in err.retryable whether the failure is one max_retries retries (x-should-retry too)", function ()
    -- (before: no such field; code retrying calls itself, the runner, had to guess)
    local cases = {
      { "status=400", {}, false }, { "status=400,should-retry=true", {}, true },
      { "status=500,should-retry=false", {}, false }, { "status=429", {}, true },
      { "status=503", {}, true }, { "body=malformed", {}, false },
      { "drop-after=0", { stream = true }, true }, { "drop-after=2", { stream = true }, false },
      { "hang", { timeout = 0.3 }, true }, { "hang", { deadline = 0.3 }, false },
    }
    for _, case in ipairs(cases) do
      local extra = case[2]
      extra.max_retries = 0
      local _, err = client:chat(flaky(case[1], 1, extra))
      assert.equal(case[3], err.retryable, case[1])
    end
    local _, err = client:chat(flaky("status=200", 1, { stream = function () error("mine") end }))
    assert.equal("callback", err.kind)
    assert.is_nil(err.retryable)
  end)

  it("gives up after max_retries with err.retries", function ()
    local _, err = client:chat(flaky("status=503,retry-after-ms=10", 5))
    assert.equal("http", err.kind)
    assert.equal(503, err.status)
    assert.equal(2, err.retries)
    assert.equal(3, attempts())
  end)

  for _, status in ipairs { 408, 409, 429, 500, 502, 504 } do
    it("retries HTTP " .. status, function ()
      local res = assert(client:chat(flaky("status=" .. status .. ",retry-after-ms=5", 1)))
      assert.equal(1, res.retries)
      assert.equal(2, attempts())
    end)
  end

  for _, status in ipairs { 400, 401, 403, 404, 422 } do
    it("never retries HTTP " .. status, function ()
      local _, err = client:chat(flaky("status=" .. status .. ",retry-after-ms=5", 1))
      assert.equal(status, err.status)
      assert.equal(0, err.retries)
      assert.equal(1, attempts())
    end)
  end

  -- An answer whose status line and headers came whole, and whose body
  -- then broke: the status decides, not the broken body (a 401 is not a
  -- connection fault, and sending the POST again gets the same 401).
  local function broken (spec)
    srv:reset()
    local res, err = client:chat { messages = HI, headers = { ["x-aigc-fault"] = spec } }
    assert.is_nil(res)
    return err, attempts()
  end

  for _, status in ipairs { 400, 401, 404 } do
    it("never re-sends HTTP " .. status .. " whose body is not the gzip it says", function ()
      local err, hits = broken("status=" .. status .. ",bad-gzip")
      assert.equal("http", err.kind)
      assert.equal(status, err.status)
      assert.matches("^HTTP status " .. status .. "; the body could not be decoded %(Content%-Encoding: gzip%): ",
                     err.message)
      assert.equal("gzip", err.headers["content-encoding"])
      assert.truthy(err.request_id)
      assert.equal(0, err.retries)
      assert.equal(1, hits)
    end)

    it("never re-sends HTTP " .. status .. " whose body was cut short or reset", function ()
      for _, wire in ipairs { "close-mid-body", "reset" } do
        local err, hits = broken("status=" .. status .. "," .. wire)
        assert.equal("http", err.kind, wire)
        assert.equal(status, err.status, wire)
        assert.matches("; the body could not be read whole: ", err.message, 1, true)
        assert.equal(0, err.retries, wire)
        assert.equal(1, hits, wire)
      end
    end)
  end

  it("retries a 429 or 500 whose body broke as its status allows, and says it broke", function ()
    for _, spec in ipairs { "status=429,bad-gzip", "status=500,bad-gzip", "status=503,close-mid-body" } do
      local err, hits = broken(spec .. ",retry-after-ms=5")
      assert.equal("http", err.kind, spec)
      assert.equal(tonumber(spec:match "%d+"), err.status, spec)
      assert.matches("; the body could not be", err.message, 1, true)
      assert.equal(2, err.retries, spec)
      assert.equal(3, hits, spec)
    end
    local err, hits = broken "status=500,bad-gzip,should-retry=false"
    assert.equal("http", err.kind)
    assert.equal(0, err.retries)
    assert.equal(1, hits)
  end)

  it("obeys x-should-retry: false over the status", function ()
    local _, err = client:chat(flaky("status=500,should-retry=false", 1))
    assert.equal(0, err.retries)
    assert.equal(1, attempts())
  end)

  it("obeys x-should-retry: true over the status", function ()
    local res = assert(client:chat(flaky("status=400,should-retry=true,retry-after-ms=5", 1)))
    assert.equal(1, res.retries)
  end)

  it("honours max_retries per call and 0 disables", function ()
    local _, err = client:chat(flaky("status=500,retry-after-ms=5", 3, { max_retries = 0 }))
    assert.equal(0, err.retries)
    assert.equal(1, attempts())
    srv:reset()
    local res = assert(client:chat(flaky("status=500,retry-after-ms=5", 3, { max_retries = 3 })))
    assert.equal(3, res.retries)
    local c = aigc.client { base_url = srv.base_url, max_retries = 1 }
    srv:reset()
    local _, err2 = c:chat(flaky("status=500,retry-after-ms=5", 3))
    assert.equal(1, err2.retries)
    assert.equal(2, attempts())
    c:close()
  end)

  it("waits the SDKs' backoff when the server gives no delay", function ()
    local t0 = core.now()
    local res = assert(client:chat(flaky("status=500", 2)))
    local elapsed = core.now() - t0
    assert.equal(2, res.retries)
    -- 0.5 s then 1 s, each shortened by at most 25% jitter
    assert.truthy(elapsed >= 0.375 + 0.75, "waited only " .. elapsed)
  end)

  it("waits retry-after-ms, then retry-after seconds", function ()
    local t0 = core.now()
    assert(client:chat(flaky("status=429,retry-after-ms=300", 1)))
    assert.truthy(core.now() - t0 >= 0.3)
    t0 = core.now()
    assert(client:chat(flaky("status=429,retry-after=1", 1)))
    assert.truthy(core.now() - t0 >= 1)
  end)

  it("reads retry-after as an HTTP date", function ()
    local _, err = client:chat(flaky("status=429,retry-after=date+30", 1, { max_retries = 0 }))
    assert.truthy(err.retry_after > 25 and err.retry_after <= 31, tostring(err.retry_after))
  end)

  it("does not retry when the server asks for more than 120 s", function ()
    local _, err = client:chat(flaky("status=429,retry-after=121", 1))
    assert.equal(429, err.status)
    assert.equal(0, err.retries)
    assert.equal(121, err.retry_after)
    assert.equal(1, attempts())
  end)

  it("says in the log why it did not retry a server that asks for more than 120 s", function ()
    -- (before: no word at all, a 429 came back with retries = 0 while max_retries was 2)
    local _, err = client:chat(flaky("status=429,retry-after-ms=150000", 1))
    assert.equal(0, err.retries)
    local said
    for _, line in ipairs(logs) do
      if line:find("not retrying", 1, true) then said = line end
    end
    assert.equal("warn: not retrying: the server asked to wait 150 s, more than 120 s", said)
  end)

  it("falls back to the backoff for retry-after 0, negative or malformed", function ()
    -- (the three side by side, each with its own fault: each waits its own backoff)
    local reqs, took, t0 = {}, {}, core.now()
    for _, value in ipairs { "0", "-5", "soon" } do
      local p = flaky("status=503,retry-after=" .. value, 1)
      p.on_done = function () took[value] = core.now() - t0 end
      reqs[value] = client:chat_async(p)
    end
    for _, value in ipairs { "0", "-5", "soon" } do
      local res = assert(reqs[value]:wait())
      assert.equal(1, res.retries)
      assert.truthy(took[value] >= 0.375, value)
    end
  end)

  it("reads retry-after(-ms) as numbers both SDKs read: hex, a minus sign, other text are malformed (finding 9)",
     function ()
    -- What the server said, as err.retry_after (max_retries = 0: no wait).
    local function said (header, value)
      local spec = header == "retry-after" and "status=429,retry-after=" .. value
        or "status=429,raw-header=retry-after-ms: " .. value
      local _, err = client:chat(flaky(spec, 1, { max_retries = 0 }))
      assert.equal(429, err.status)
      return err.retry_after
    end
    assert.equal(2, said("retry-after", "2"))
    assert.equal(1.5, said("retry-after", "1.5"))
    assert.equal(0.3, said("retry-after", "0.3"))
    assert.equal(2, said("retry-after", "0002"))
    assert.equal(1.5, said("retry-after-ms", "1500"))
    assert.equal(0.25, said("retry-after-ms", "250.0"))
    for _, v in ipairs { "0x2", "-0", "Infinity", "nan", "2abc", "e3", "." } do
      assert.is_nil(said("retry-after", v), v)
    end
    for _, v in ipairs { "0x7D0", "-0", "2000abc" } do
      assert.is_nil(said("retry-after-ms", v), "ms " .. v)
    end
    -- (what Python's float() and Node's parseFloat() both read: bounds_spec)
    assert.equal(2.5, said("retry-after", "2.5e0"))
    assert.equal(2, said("retry-after-ms", "+2000"))
  end)

  it("waits the backoff, not 2 s, for retry-after-ms: 0x7D0 (finding 9)", function ()
    local t0 = core.now()
    local res = assert(client:chat(flaky("status=429,raw-header=retry-after-ms: 0x7D0", 1)))
    assert.equal(1, res.retries)
    local waited = core.now() - t0
    assert.truthy(waited >= 0.375 and waited < 1.9, "waited " .. waited)
  end)

  it("retries a refused connection, then reports kind connect", function ()
    local c = aigc.client { base_url = "http://127.0.0.1:9/v1", max_retries = 1 }
    local t0 = core.now()
    local _, err = c:chat "Hi"
    assert.equal("connect", err.kind)
    assert.equal(1, err.retries)
    assert.truthy(core.now() - t0 >= 0.375)
    c:close()
  end)

  it("retries a timeout, then reports kind timeout", function ()
    local _, err = client:chat(flaky("hang", 5, { timeout = 0.2, max_retries = 1 }))
    assert.equal("timeout", err.kind)
    assert.equal(1, err.retries)
    assert.equal(2, attempts())
  end)

  it("names the option that ended a timed-out attempt (before: libcurl's milliseconds only)", function ()
    assert(client:chat { messages = HI })   -- (the next call reuses the connection)
    local _, err = client:chat(flaky("hang", 1, { timeout = 0.3, max_retries = 0 }))
    assert.equal("timeout", err.kind)
    assert.matches("(timeout: 0.3 s per attempt)", err.message, 1, true)
    local c = aigc.client { base_url = srv.base_url, max_retries = 0 }   -- a new connection
    _, err = c:chat(flaky("hang", 1, { timeout = 0.3 }))
    c:close()
    assert.matches("(timeout: 0.3 s per attempt)", err.message, 1, true)
  end)

  it("never retries once a 2xx stream has started", function ()
    local _, err = client:chat(flaky("drop-after=3", 5, { stream = true }))
    assert.equal("stream", err.kind)
    assert.equal(0, err.retries)
    assert.equal(1, attempts())
  end)

  it("retries a 2xx stream cut before its first event, and delivers each delta once", function ()
    -- (README, max_retries: the SDKs never retry a 2xx stream; nothing came, nothing is seen twice)
    local got = {}
    local res = assert(client:chat(flaky("drop-after=0", 1, { stream = function (d) got[#got + 1] = d end })))
    assert.equal(1, res.retries)
    assert.equal(2, attempts())
    assert.equal(res.text, table.concat(got))
    assert.truthy(#res.text > 0)
  end)

  it("retries a stream that failed before it started", function ()
    local res = assert(client:chat(flaky("status=500,retry-after-ms=5", 1, { stream = true })))
    assert.equal(1, res.retries)
    assert.is_string(res.text)
  end)

  it("sends one Idempotency-Key per logical call, the same on its retries", function ()
    local c = aigc.client { base_url = srv.base_url, idempotency = true }
    assert(c:chat(flaky("status=500,retry-after-ms=5", 2)))
    assert(c:chat "again")
    local reqs = srv:requests()
    assert.equal(4, #reqs)
    local k1 = reqs[1].headers["idempotency-key"]
    assert.is_string(k1)
    assert.equal(k1, reqs[2].headers["idempotency-key"])
    assert.equal(k1, reqs[3].headers["idempotency-key"])
    assert.are_not.equal(k1, reqs[4].headers["idempotency-key"])
    c:close()
  end)

  -- The keys came from math.random: the same in every process on LuaJIT and
  -- 5.1-5.3 (one seed at start) and after a game's math.randomseed(42) on
  -- any Lua, so a server honouring them answered one player's call with
  -- another's reply.
  it("sends keys no other process or seeded generator repeats", function ()
    local c = aigc.client { base_url = srv.base_url, idempotency = true }
    local keys = {}
    for i = 1, 2 do
      math.randomseed(42)   -- (a game's, for its reproducible levels)
      assert(c:chat "Hi")
      keys[i] = srv:last().headers["idempotency-key"]
    end
    math.randomseed(os.time())
    c:close()
    -- two processes that never seed: their first call each
    local luachild = require "luachild"
    for i = 3, 4 do
      local r = luachild.run([[
        local aigc = require "aigc"
        local c = aigc.client { base_url = arg[1], idempotency = true, max_retries = 0 }
        assert(c:chat "Hi")
        print("ok")
      ]], { args = { srv.base_url } })
      assert.equal("ok\n", r.stdout, r.stderr)
      keys[i] = srv:last().headers["idempotency-key"]
    end
    for i = 1, 4 do
      assert.matches("^aigc%-%x+$", keys[i])
      assert.is_true(#keys[i] >= 5 + 32, keys[i])
      for j = i + 1, 4 do assert.are_not.equal(keys[i], keys[j]) end
    end
  end)

  it("takes an idempotency key per call", function ()
    assert(client:chat { messages = HI, idempotency_key = "my-key-1" })
    assert.equal("my-key-1", srv:last().headers["idempotency-key"])
  end)

  it("waits between attempts on the engine's timer: step(0) never sleeps", function ()
    local req = client:chat_async(flaky("status=500,retry-after-ms=300", 1))
    local deadline = core.now() + 5
    while attempts() < 1 and core.now() < deadline do client:step(0.01) end
    assert.equal(1, attempts())
    -- Twenty steps that do not sleep end long before the 0.3 s wait is over,
    -- so the second attempt cannot have happened yet.
    for _ = 1, 20 do client:step(0) end
    assert.equal("running", req:status())
    assert.equal(1, attempts())
    local res = assert(req:wait())
    assert.equal(1, res.retries)
    assert.equal(2, attempts())
  end)
end)
