-- Probes of the Batch API and of batch runs (aigc.batch, aigc.batch_backend,
-- aigc.runner, `aigc run --batch`), second round: each test failed before
-- its fix.

local aigc = require "aigc"
local batch = require "aigc.batch"
local devserver = require "devserver"

local function ask (id, content)
  return { custom_id = id, body = { messages = { { role = "user", content = content or "Hi" } } } }
end

describe("the test helper devserver.start", function ()
  it("passes batch_delay_ms to the server (it was ignored: the batch ran at the default 20 ms a line)", function ()
    -- a minute a line: the batch is not over when a short wait times out
    local srv = devserver.start { pause_ms = 0, batch_delay_ms = 60000 }
    local client = aigc.client { base_url = srv.base_url, model = "aigc-dev", api_key = "k" }
    local b = assert(batch.create(client, { ask("a") }))
    local over, err = batch.wait(client, b.id, { interval = 0.05, timeout = 1 })
    client:close()
    srv:stop()
    assert.is_nil(over, "the batch was over: the delay did not reach the server")
    assert.equal("timeout", err.kind)
  end)
end)
