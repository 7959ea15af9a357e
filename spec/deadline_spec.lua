-- The whole-call `deadline` (issue 10 item 4, defect 11): seconds for the
-- whole call — queue, attempts, waits between retries, the whole stream.
-- `timeout` stays per attempt (and an idle limit for streams), as the
-- README says. The cases assert on what ended the call (kind, message,
-- retries taken, what the server saw), never on tight wall-clock bounds;
-- the generous bounds only tell "ended by the deadline" from "sat out a
-- timeout or a server that never ends".
local aigc = require "aigc"
local devserver = require "devserver"
local luachild = require "luachild"

local params = devserver.params   -- one "Hi" message, a fault header, extra fields

describe("the call's deadline", function ()
  local srv, client

  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { max_retries = 2 })

  -- In a child: before the fix this call never ended (each comment byte
  -- resets the idle timeout), which must fail the case, not hang the run.
  it("ends a stream that drips comments forever (no byte of data, never idle)", function ()
    local r = luachild.run([[
      local aigc = require "aigc"
      local c = aigc.client { base_url = arg[1], max_retries = 2, timeout = 5 }
      local deltas = 0
      local res, err = c:chat { messages = { { role = "user", content = "Hi" } }, deadline = 0.5,
                                headers = { ["x-aigc-fault"] = "comment-drip=100" },
                                stream = function () deltas = deltas + 1 end }
      print(res, err.kind, err.message, err.retries, deltas)
    ]], { args = { srv.base_url }, timeout = 30 })
    assert.equal(0, r.status, r.stderr)
    assert.equal("nil\ttimeout\tthe call's deadline (0.5 s) passed\t0\t0\n", r.stdout)
  end)

  it("does not take a retry whose wait would pass it (Retry-After: 100, deadline 30)", function ()
    -- (a wait of 100 s against a bound of 60: no load makes up the difference; the 30 s
    -- deadline only has to outlast the first attempt)
    local t0 = aigc.now()
    local res, err = client:chat(params("status=429,retry-after=100", { deadline = 30 }))
    assert.is_nil(res)
    assert.equal("http", err.kind)
    assert.equal(429, err.status)
    assert.equal(0, err.retries)
    assert.equal(1, srv:stats().requests_total)
    assert.truthy(aigc.now() - t0 < 60)
    -- Without a deadline the same call waits and retries (timeout is per attempt).
    srv:reset()
    local _, err2 = client:chat(params("status=429,retry-after=0.3", { max_retries = 1 }))
    assert.equal(1, err2.retries)
    assert.equal(2, srv:stats().requests_total)
  end)

  it("bounds a server that never answers, whatever timeout and max_retries say", function ()
    local c = aigc.client { base_url = srv.base_url, timeout = 600, max_retries = 5, deadline = 0.5 }
    local res, err = c:chat(params "hang")
    assert.is_nil(res)
    assert.equal("timeout", err.kind)
    assert.matches("deadline %(0.5 s%)", err.message)
    assert.equal(0, err.retries)
    c:close()
  end)

  it("counts the time in the queue (max_concurrency)", function ()
    local c = aigc.client { base_url = srv.base_url, max_concurrency = 1, max_retries = 0 }
    local first = c:chat_async(params "hang")
    local second = c:chat_async(params(nil, { deadline = 0.3 }))
    assert.equal("queued", second:status())
    local res, err = second:wait(10)   -- (a bound, for the code before the fix)
    assert.is_nil(res)
    assert.equal("timeout", err.kind)
    assert.equal("running", first:status())
    assert.equal(1, srv:stats().requests_total)   -- the second was never sent
    c:close()
  end)

  it("keeps a stream's partial result", function ()
    local res, err = client:chat(params("pause=50", { deadline = 0.5, stream = function () end,
                                                        messages = { { role = "user", content =
                                                          "Tell me a story about a robot that learns to paint" } } }))
    assert.is_nil(res)
    assert.equal("timeout", err.kind)
    assert.is_table(err.partial)
    assert.truthy(#err.partial.choices[1].message.content > 0)
  end)

  it("is a client default that a call can change or turn off (false)", function ()
    local c = aigc.client { base_url = srv.base_url, deadline = 0.1, max_retries = 0 }
    local _, err = c:chat(params "delay=300")
    assert.equal("timeout", err.kind)
    assert.truthy(c:chat(params("delay=300", { deadline = false })))
    assert.truthy(c:chat(params("delay=300", { deadline = 5 })))
    c:close()
  end)

  it("is not sent to the server", function ()
    assert.truthy(client:chat(params(nil, { deadline = 5 })))
    assert.is_table(srv:last().body_json)
    assert.is_nil(srv:last().body_json.deadline)
    assert.not_matches("deadline", srv:last().body)
  end)

  it("refuses what is not a number of seconds > 0", function ()
    assert.has_error(function () aigc.client { deadline = 0 } end)
    assert.has_error(function () aigc.client { deadline = "5" } end)
    assert.has_error(function () client:chat(params(nil, { deadline = -1 })) end)
    assert.has_error(function () client:chat(params(nil, { deadline = "1" })) end)
  end)
end)
