-- A client closed while aigc.batch waits for a batch (by its on_progress
-- callback; a finalizer or another task does the same)
-- ends the call with `nil, err` of kind "canceled", as any call's: the
-- next poll (or the results' download) raised "attempt to use a closed
-- client", a misuse error the caller never made. The batch, which goes on
-- at the server, is named, and another client still reaches it. Real HTTP
-- to the bundled server on loopback.
local aigc = require "aigc"
local devserver = require "devserver"

local SECRET = "sk-test-SECRET-batchclosed-5"

local REQS = {
  { custom_id = "inn", body = { messages = { { role = "user", content = "Where is the inn?" } } } },
  { custom_id = "smith", body = { messages = { { role = "user", content = "Where is the smith?" } } } },
}

describe("a batch whose client is closed meanwhile", function ()
  local srv, client

  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { api_key = SECRET, model = "aigc-dev" })

  local function other ()
    return aigc.client { base_url = srv.base_url, api_key = SECRET, max_retries = 0, model = "aigc-dev" }
  end

  it("run: on_progress closes the client: nil, err canceled naming the batch, which another client cancels",
     function ()
    local polls = 0
    local res, err = aigc.batch.run(client, REQS, {
      interval = 0.01, metadata = { aigc_delay_ms = "600000" },   -- (never over while this runs)
      on_progress = function () polls = polls + 1; client:close() end })
    assert.is_nil(res)
    assert.equal("canceled", err.kind)
    assert.equal(1, polls)
    assert.is_string(err.batch_id)
    assert.matches(err.batch_id, err.message, 1, true)
    assert.matches("the client was closed", err.message, 1, true)
    assert.is_nil(tostring(err):find(SECRET, 1, true))
    local c2 = other()
    local b = assert(aigc.batch.cancel(c2, err.batch_id))
    c2:close()
    assert.equal(err.batch_id, b.id)
  end)

  it("wait: the same, on a batch made before", function ()
    local b = assert(aigc.batch.create(client, REQS, { metadata = { aigc_delay_ms = "600000" } }))
    local res, err = aigc.batch.wait(client, b.id, { interval = 0.01, on_progress = function () client:close() end })
    assert.is_nil(res)
    assert.equal("canceled", err.kind)
    local c2 = other()
    assert.is_nil(aigc.batch.TERMINAL[assert(aigc.batch.retrieve(c2, b.id)).status])   -- (it goes on)
    assert(aigc.batch.cancel(c2, b.id))
    c2:close()
  end)

  it("run: on_progress closes the client on the batch over: nil, err canceled; another client reads its results",
     function ()
    local res, err = aigc.batch.run(client, REQS, { interval = 0.01, on_progress = function (b)
      if aigc.batch.TERMINAL[b.status] then client:close() end
    end })
    assert.is_nil(res)
    assert.equal("canceled", err.kind)
    assert.matches("aigc.batch.results reads it again", err.message, 1, true)
    local c2 = other()
    local b = assert(aigc.batch.retrieve(c2, err.batch_id))
    local results = assert(aigc.batch.results(c2, b))
    c2:close()
    assert.is_true(results.inn.ok)
    assert.is_true(results.smith.ok)
  end)

  it("a client closed before the call is still the caller's misuse (raises), as for every call", function ()
    client:close()
    assert.has_error(function () aigc.batch.wait(client, "batch_x") end, "attempt to use a closed client")
  end)
end)
