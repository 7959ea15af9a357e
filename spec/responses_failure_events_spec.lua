-- A Responses stream's failure events: the response.failed a server sends
-- after an "error" event reaches the callback too (the SDKs' iterators
-- yield both before they raise) while the call fails with the error's
-- message; and a failure event that echoes the API key reaches the
-- callback scrubbed.
local aigc = require "aigc"
local devserver = require "devserver"

local FRANCE = "What is the capital of France?"
local ERROR_MESSAGE = "The server had an error while processing your request."

local sse = require("sse").body

describe("Responses failure events", function ()
  local srv, client
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { model = "aigc-dev" })
  local _ = srv

  local function fault (spec, params) return devserver.fault_params(spec, params or { input = FRANCE }) end

  it("error then response.failed (a later write): both reach the callback, the error's message fails the call",
     function ()
    local types = {}
    local res, err = client:respond(fault("error-event,failed-after-error", { input = FRANCE,
      stream = function (_, event) types[#types + 1] = event.type end }))
    assert.is_nil(res)
    assert.equal("api", err.kind)
    assert.equal(ERROR_MESSAGE, err.message)
    assert.equal("server_error", err.code)
    assert.same({ "response.created", "response.in_progress", "error", "response.failed" }, types)
    assert.equal("failed", err.partial.status)   -- (the failed event's snapshot merged)
  end)

  it("the iterator yields both events before it raises the error", function ()
    local s = client:stream_response(fault("error-event,failed-after-error"))
    local types = {}
    local ok, err = pcall(function ()
      for _, event in s do types[#types + 1] = event.type end
    end)
    assert.is_false(ok)
    assert.equal("api", err.kind)
    assert.equal(ERROR_MESSAGE, err.message)
    assert.same({ "response.created", "response.in_progress", "error", "response.failed" }, types)
  end)

  -- luacheck: push ignore 631 (the events, one a line as a server sends them)
  local oneshot = require "oneshot"
  local created = '{"type":"response.created","sequence_number":0,"response":{"id":"r","object":"response","status":"in_progress","output":[]}}'
  local error_ev = '{"type":"error","sequence_number":1,"code":"server_error","message":"boom","param":null}'
  it("another server: error and response.failed in one write; another event after the error is not delivered",
     function ()
    local failed = '{"type":"response.failed","sequence_number":2,"response":{"id":"r","object":"response","status":"failed","error":{"code":"server_error","message":"other words"},"output":[]}}'
    local delta = '{"type":"response.output_text.delta","sequence_number":2,"output_index":0,"content_index":0,"delta":"late"}'
    for _, case in ipairs {
      { events = { { "response.created", created }, { "error", error_ev }, { "response.failed", failed } },
        want = { "response.created", "error", "response.failed" } },
      { events = { { "response.created", created }, { "error", error_ev }, { nil, delta }, { "response.failed", failed } },
        want = { "response.created", "error" } },
      { events = { { "response.created", created }, { "error", error_ev } },
        want = { "response.created", "error" } },
    } do
      local c, done = oneshot.sse_client(aigc, sse(case.events))
      local types = {}
      local res, err = c:respond { input = "x", stream = function (_, event) types[#types + 1] = event.type end }
      done()
      assert.is_nil(res)
      assert.equal("api", err.kind)
      assert.equal("boom", err.message)
      assert.equal("server_error", err.code)
      assert.same(case.want, types)
    end
  end)

  it("a server that keeps the response open after the error, saying nothing: the error ends the call", function ()
    -- (it has 2 s to send what follows, as after response.completed; the
    -- child keeps the response open 20 s, the call's timeout is longer)
    local c, done = oneshot.sse_client(aigc, sse { { "response.created", created }, { "error", error_ev } }, 20)
    local types = {}
    local res, err = c:respond { input = "x", timeout = 60,
                                 stream = function (_, event) types[#types + 1] = event.type end }
    done()
    assert.is_nil(res)
    assert.equal("api", err.kind)
    assert.equal("boom", err.message)
    assert.same({ "response.created", "error" }, types)
  end)
  -- luacheck: pop

  it("failure events echoing the API key reach the callback scrubbed, the rest as sent", function ()
    local secret = "sk-resp-secret-0123456789"
    local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", max_retries = 0, api_key = secret }
    local events = {}
    local res, err = c:respond(fault("echo-key,failed-after-error", { input = FRANCE,
      stream = function (_, event) events[#events + 1] = event end }))
    c:close()
    assert.is_nil(res)
    assert.equal("api", err.kind)
    local function walk (v, seen)
      if type(v) == "string" then
        assert.is_nil(v:find(secret, 1, true), "the key reached the callback: " .. v)
      elseif type(v) == "table" and not seen[v] then
        seen[v] = true
        for k, x in pairs(v) do walk(k, seen); walk(x, seen) end
      end
    end
    walk(events, {})
    local error_event, failed_event = events[#events - 1], events[#events]
    assert.equal("error", error_event.type)
    assert.equal("Incorrect API key provided: [redacted].", error_event.message)
    assert.equal("invalid_api_key", error_event.code)
    assert.same({ "first", "[redacted]", "last" }, error_event.details.list)
    assert.equal("response.failed", failed_event.type)
    assert.equal("Incorrect API key provided: [redacted].", failed_event.response.error.message)
    assert.equal("server_error", failed_event.response.error.code)
    assert.equal("failed", failed_event.response.status)
  end)
end)
