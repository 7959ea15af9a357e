-- Cassettes and the engine's retries: a call retried live (a 429, then the
-- reply) replays as it went, and the calls after it get their own
-- exchanges.

local aigc = require "aigc"
local devserver = require "devserver"
local cli = require "cli"

describe("a cassette replaying a call the engine retried", function ()
  local srv, dir
  setup(function () srv = devserver.start { pause_ms = 0 } end)
  teardown(function () srv:stop() end)
  before_each(function () dir = cli.home(); srv:reset() end)
  after_each(function () cli.rmdir(dir) end)

  local function ask (fault)
    return { messages = { { role = "user", content = "Echo: retried" } }, max_retries = 2,
             headers = { ["x-aigc-fault"] = fault } }
  end

  it("through the recording proxy: replays the retried call's reply, then the next call's", function ()
    local tape = dir .. "/proxy.jsonl"
    local fault = "status=429,retry-after-ms=10,times=1,key=proxy"
    local rec = aigc.client { base_url = srv.base_url, model = "aigc-dev", cassette = { path = tape } }
    local live1 = assert(rec:chat(ask(fault)))
    local live2 = assert(rec:chat(ask(fault)))
    rec:close()
    assert.equal(1, live1.retries)
    assert.equal(0, live2.retries)
    assert.are_not.equal(live1.request_id, live2.request_id)
    local rep = aigc.client { base_url = "http://127.0.0.1:9/v1", model = "aigc-dev", cassette = { path = tape } }
    local r1, e1 = rep:chat(ask(fault))
    local r2, e2 = rep:chat(ask(fault))
    rep:close()
    assert.is_nil(e1)
    assert.is_nil(e2)
    assert.equal(live1.text, r1.text)
    assert.equal(1, r1.retries)
    assert.equal(live1.request_id, r1.request_id)
    assert.equal(live2.request_id, r2.request_id)
  end)

  it("recorded in the client (proxy = false): a call that failed after its retries fails again, the next succeeds",
     function ()
    local tape = dir .. "/client.jsonl"
    local fault = "status=429,retry-after-ms=10,times=3,key=client"
    local rec = aigc.client { base_url = srv.base_url, model = "aigc-dev",
                              cassette = { path = tape, proxy = false } }
    local _, live_err = rec:chat(ask(fault))
    local live2 = assert(rec:chat(ask(fault)))
    rec:close()
    assert.equal(429, live_err.status)
    local rep = aigc.client { base_url = "http://127.0.0.1:9/v1", model = "aigc-dev", cassette = { path = tape } }
    local r1, e1 = rep:chat(ask(fault))
    local r2, e2 = rep:chat(ask(fault))
    rep:close()
    assert.is_nil(r1)
    assert.equal(429, e1.status)
    assert.is_nil(e2)
    assert.equal(live2.text, r2.text)
  end)

  it("recorded in the client: a failed call's retry-after, request id and rate-limit headers replay, "
     .. "its key echoed in them does not", function ()
    local tape = dir .. "/headers.jsonl"
    local key = "sk-hdr-k-5550777111"
    local fault = "status=429,retry-after-ms=40,times=3,key=hdr,echo-key"
    local rec = aigc.client { base_url = srv.base_url, model = "aigc-dev", api_key = key,
                              cassette = { path = tape, proxy = false } }
    local _, live_err = rec:chat(ask(fault))
    rec:close()
    assert.equal(429, live_err.status)
    -- (the waits the replay's retries took, as its log says them: a clock
    -- read around the call was a bound a loaded machine passed)
    local waits = {}
    local rep = aigc.client { base_url = "http://127.0.0.1:9/v1", model = "aigc-dev", api_key = key,
                              cassette = { path = tape },
                              log = function (_, msg)
                                local s = msg:match("^retrying in ([%d.]+) s")
                                if s then waits[#waits + 1] = s end
                              end }
    local r1, e1 = rep:chat(ask(fault))
    rep:close()
    assert.is_nil(r1)
    assert.equal(429, e1.status)
    -- (the server's 40 ms, not the default backoff's ~1.2 s over 2 retries)
    assert.same({ "0.040", "0.040" }, waits)
    assert.equal(0.04, e1.retry_after)
    assert.equal("40", e1.headers["retry-after-ms"])
    assert.is_string(live_err.headers["x-ratelimit-limit-requests"])
    assert.equal(live_err.headers["x-ratelimit-limit-requests"], e1.headers["x-ratelimit-limit-requests"])
    assert.equal(2, e1.retries)
    assert.is_string(e1.request_id)
    assert.equal(live_err.request_id, e1.request_id)
    -- (the key the server echoed in x-request-id: not on the tape; compared, not printed)
    assert.is_nil(cli.read(tape):find(key, 1, true), "the key is on the tape")
    assert.is_nil(e1.request_id:find(key, 1, true), "the key in the replay's request id")
  end)
end)
