-- Limits on decoded JSON (issue 10, item 5 / defect 8): a reply within
-- max_response_bytes could still hold tens of millions of tiny values (a
-- 63 MB `[],[],...` peaked at 2.4 GB). Decoding stops at max_json_values
-- values and max_json_containers arrays and objects (client option and
-- per call), with an error of kind "limit"; legitimate large replies pass
-- the defaults. The memory figures are in bench/json_flood.lua.
local aigc = require "aigc"
local devserver = require "devserver"

local function ask (fault, extra)
  local params = { model = "m", messages = { { role = "user", content = "Hi" } } }
  if fault then params.headers = { ["x-aigc-fault"] = fault } end
  for k, v in pairs(extra or {}) do params[k] = v end
  return params
end

describe("decoded JSON limits", function ()
  local srv, client
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end)

  it("a JSON value flood within max_response_bytes fails with kind limit (default limits)", function ()
    -- 4 MB of `[],`: 1.4 M arrays, past the default 1,048,576 containers
    local res, err = client:chat(ask("body=empty-arrays,size=4000000"))
    assert.is_nil(res and ("a reply with #x = " .. #res.x))   -- never print 1.3 M tables
    assert.equal("limit", err.kind)
    assert.equal("the response holds more than 1048576 arrays and objects (the limit is max_json_containers)",
                 err.message)
    assert.equal(200, err.status)
  end)

  it("the same flood passes when the caller raises the limit, per call", function ()
    local res = assert(client:chat(ask("body=empty-arrays,size=4000000", { max_json_containers = 2000000 })))
    assert.equal(1333333, #res.x)
  end)

  it("per call and per client: values and containers, checked on ordinary replies", function ()
    -- a plain chat reply: a handful of containers, a few dozen values
    assert(client:chat(ask(nil, { max_json_containers = 10, max_json_values = 100 })))
    local _, err = client:chat(ask(nil, { max_json_containers = 2 }))
    assert.equal("limit", err.kind)
    assert.matches("more than 2 arrays and objects", err.message)
    _, err = client:chat(ask(nil, { max_json_values = 5 }))
    assert.equal("limit", err.kind)
    assert.equal("the response holds more than 5 values (the limit is max_json_values)", err.message)
    local small = aigc.client { base_url = srv.base_url, max_retries = 0, max_json_values = 5 }
    _, err = small:chat(ask())
    assert.equal("limit", err.kind)
    -- a call may raise its client's limit
    assert(small:chat(ask(nil, { max_json_values = 1000 })))
    small:close()
  end)

  it("the options are not sent in the body (nor the core lane's deadline)", function ()
    assert(client:chat(ask(nil, { max_json_containers = 10, max_json_values = 100 })))
    local body = require("cjson").decode(srv:last().body)
    assert.is_nil(body.max_json_values)
    assert.is_nil(body.max_json_containers)
    -- `deadline` straight to the core (whatever the Lua layer does with it)
    local req = client._engine:submit("chat", ask(nil, { deadline = 30 }))
    assert(req:wait())
    assert.is_nil(require("cjson").decode(srv:last().body).deadline)
  end)

  it("streams: each event and the accumulated reply are bounded", function ()
    -- every event of a stream is small; what accumulates grows with the text
    local events = 0
    local res, err = client:chat(ask(nil, {
      messages = { { role = "user", content = "Tell me a story about a robot that learns to paint" } },
      logprobs = true, top_logprobs = 3, max_json_values = 300,
      stream = function () events = events + 1 end }))
    assert.is_nil(res and "a reply")
    assert.equal("limit", err.kind)
    assert.equal("the streamed reply holds more than 300 values (the limit is max_json_values)", err.message)
    assert.is_true(events > 3)
    assert.is_table(err.partial)   -- what came before the limit
    -- an event bigger than the limit on its own
    local _
    _, err = client:chat(ask(nil, { max_json_values = 8, stream = true }))
    assert.equal("limit", err.kind)
    assert.matches("^a stream event holds more than 8 values", err.message)
    -- and the same stream passes with the defaults
    res = assert(client:chat(ask(nil, {
      messages = { { role = "user", content = "Tell me a story about a robot that learns to paint" } },
      logprobs = true, top_logprobs = 3, stream = true })))
    assert.is_true(#res.choices[1].logprobs.content > 50)
  end)

  it("an HTTP error body past the limits is kept as text, not decoded", function ()
    local _, err = client:chat(ask("status=500", { max_json_values = 2 }))
    assert.equal("http", err.kind)
    assert.equal(500, err.status)
    assert.is_string(err.body)
  end)

  it("a large legitimate reply passes the defaults: 400 embeddings of 3072 dimensions", function ()
    local inputs = {}
    for i = 1, 400 do inputs[i] = "input " .. i end
    local res = assert(client:embeddings { model = "text-embedding-3-large", input = inputs })
    assert.equal(400, #res.data)
    assert.equal(3072, #res.data[400].embedding)   -- 1.2 M values, more than the container limit
  end)

  it("the options are checked", function ()
    assert.has_error(function () aigc.client { base_url = srv.base_url, max_json_values = 0 } end,
                     "bad argument #1 to 'client' (opts.max_json_values: "
                     .. "an integer in 1..1099511627776 expected, got 0)")
    assert.has_error(function () aigc.client { base_url = srv.base_url, max_json_containers = 1.5 } end,
                     "bad argument #1 to 'client' (opts.max_json_containers: "
                     .. "an integer in 1..1099511627776 expected, got 1.5)")
    assert.has_error(function () client:chat(ask(nil, { max_json_values = "5" })) end)
    assert.has_error(function () client:chat(ask(nil, { max_json_containers = 0 })) end)
  end)
end)
