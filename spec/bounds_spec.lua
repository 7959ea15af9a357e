-- Costs bounded by the input and hostile response headers (issue 10
-- defects 7, 15 and 18, the C parts): header work linear in the headers,
-- a header that looks like a status line, a body that cannot be decoded,
-- Retry-After values that are not waits.
local aigc = require "aigc"
local devserver = require "devserver"

local params = devserver.params   -- one "Hi" message, a fault header, extra fields

describe("response headers", function ()
  local srv, client

  devserver.fixture(_ENV, function (s, c) srv, client = s, c end)

  -- (Their cost is linear in their number; that is measured, not asserted
  -- here: a test asserts no time, and a ratio of CPU times failed on a
  -- loaded machine: 36x for 10x the headers, cache effects, not the 100x
  -- the quadratic join of defect 7 cost.)
  it("15,000 tiny headers are all kept (defect 7)", function ()
    local small_res = assert(client:chat(params "headers=1500"))
    local big_res = assert(client:chat(params "headers=15000"))
    assert.equal("a", small_res.headers["x-f-1500"])
    assert.equal("a", big_res.headers["x-f-15000"])
    assert.equal("a", big_res.headers["x-f-1"])
  end)

  it("beyond 200 KiB are a limit error, not a connection fault retried (50,000 headers)", function ()
    local c = aigc.client { base_url = srv.base_url, max_retries = 2 }
    local res, err = c:chat(params "headers=50000")
    assert.is_nil(res)
    assert.equal("limit", err.kind)
    assert.equal("the response headers are larger than 200 KiB", err.message)
    assert.equal(0, err.retries)
    assert.equal(1, srv:stats().requests_total)
    c:close()
  end)

  -- The devserver sends each name once: a server of a few lines (in a
  -- child, LuaSocket) repeats one name as many times as asked.
  local REPEATER = [[
    local oneshot = require "oneshot"
    local n = tonumber(arg[1])
    local server = oneshot.listen()
    for _ = 1, 3 do
      local c = oneshot.read_request(server)
      local body = '{"choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}'
      local h = { "HTTP/1.1 200 OK", "Content-Type: application/json", "Content-Length: " .. #body,
                  "Connection: close" }
      for i = 1, n do h[#h + 1] = "x-rep: v" .. i end
      c:send(table.concat(h, "\r\n") .. "\r\n\r\n" .. body)
      c:close()
      n = n * 10
    end
  ]]

  it("join a name repeated 10,000 times, every value kept in order", function ()
    local port, child = require("oneshot").start(REPEATER, { "100" })
    local c = aigc.client { base_url = "http://127.0.0.1:" .. port .. "/v1", max_retries = 0 }
    for _, n in ipairs { 100, 1000, 10000 } do
      local res = assert(c:chat(params()))
      local values = {}
      for k = 1, n do values[k] = "v" .. k end
      assert.equal(table.concat(values, ", "), res.headers["x-rep"])
    end
    c:close()
    child:wait(10)
  end)

  it("named like a status line in the middle of the headers do not reset them (defect 15)", function ()
    local res = assert(client:chat(params "raw-header=HTTP/1.1-x: 1"))
    assert.equal("application/json", res.headers["content-type"])
    assert.equal("1", res.headers["http/1.1-x"])
    assert.truthy(res.request_id)
  end)
end)

describe("a 2xx body that cannot be decoded (bad gzip, defect 15)", function ()
  local srv, client

  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { max_retries = 2 })

  it("is a parse error, and the POST is not sent again", function ()
    local res, err = client:chat(params "bad-gzip")
    assert.is_nil(res)
    assert.equal("parse", err.kind)
    assert.matches("could not be decoded %(Content%-Encoding: gzip%)", err.message)
    assert.equal(0, err.retries)
    assert.equal(1, srv:stats().requests_total)
  end)

  it("in a stream too", function ()
    local res, err = client:chat(params("bad-gzip", { stream = function () end }))
    assert.is_nil(res)
    assert.equal("parse", err.kind)
    assert.equal(1, srv:stats().requests_total)
  end)
end)

describe("err.retry_after (defect 18)", function ()
  local client

  devserver.fixture(_ENV, function (_, c) client = c end)

  local function retry_after (header)
    local _, err = client:chat(params("status=429,raw-header=" .. header))
    assert.equal(429, err.status)
    return err.retry_after
  end

  it("is never negative: a negative value is no wait, a past date is now", function ()
    assert.is_nil(retry_after "Retry-After-Ms: -5")
    assert.is_nil(retry_after "Retry-After: -3")
    assert.equal(0, retry_after "Retry-After: Wed%2C 21 Oct 2015 07:28:00 GMT")
    assert.equal(2, retry_after "Retry-After: 2")
    assert.equal(0.25, retry_after "Retry-After-Ms: 250")
  end)

  it("is read as both SDKs read a number (float(), parseFloat()): an exponent, a leading point or plus sign",
     function ()
    assert.equal(1.5, retry_after "Retry-After-Ms: 1.5e3")
    assert.equal(10, retry_after "Retry-After: 1E1")
    assert.equal(0.5, retry_after "Retry-After: .5")
    assert.equal(5, retry_after "Retry-After: 5.")
    assert.equal(2, retry_after "Retry-After: +2")
    assert.equal(0.002, retry_after "Retry-After-Ms: 2e-0")
    -- and still no wait: hex, infinity, a point alone, an exponent without digits, a number too large
    for _, v in ipairs { "0x2", "inf", "nan", ".", "1e", "2e+", "1e999" } do
      assert.is_nil(retry_after("Retry-After: " .. v), v)
    end
  end)

  it("a negative retry-after-ms falls back to retry-after", function ()
    local _, err = client:chat(params "status=429,retry-after=2,raw-header=Retry-After-Ms: -5")
    assert.equal(2, err.retry_after)
  end)
end)
