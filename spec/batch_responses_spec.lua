-- aigc.batch over the Responses endpoint: `endpoint = "/v1/responses"` (which
-- OpenAI's Batch API accepts) sends Responses bodies and gives their replies
-- back as response objects. (The dataset runner sends its lines there with
-- api = "responses": runner_responses_spec.)

local aigc = require "aigc"
local batch = require "aigc.batch"
local devserver = require "devserver"

describe("aigc.batch with endpoint /v1/responses", function ()
  local srv, client
  setup(function () srv = devserver.start { pause_ms = 0, batch_delay_ms = 5 } end)
  teardown(function () srv:stop() end)
  before_each(function ()
    srv:reset()
    client = aigc.client { base_url = srv.base_url, model = "aigc-dev" }
  end)
  after_each(function () client:close() end)

  it("sends Responses lines and reads their response objects", function ()
    local results, b = batch.run(client, {
      { custom_id = "fr", body = { input = "What is the capital of France?", instructions = "Be brief." } },
      { custom_id = "bad", body = { model = "fault:status=500", input = "Hi" } },
    }, { endpoint = "/v1/responses", interval = 0.02 })
    assert.is_table(results, tostring(b))
    assert.equal("/v1/responses", b.endpoint)
    assert.equal("completed", b.status)
    local fr = results.fr
    assert.is_true(fr.ok)
    assert.equal(200, fr.status_code)
    assert.equal("response", fr.body.object)
    assert.equal("aigc-dev", fr.body.model)   -- (the client's model, as a direct call's)
    assert.equal("Be brief.", fr.body.instructions)
    assert.equal("The capital of France is Paris.", require("aigc.responses").output_text(fr.body))
    assert.is_false(results.bad.ok)
    assert.equal(500, results.bad.status_code)
    -- the input file's lines named the endpoint
    local lines = batch.jsonl({ { custom_id = "x", body = { input = "Hi" } } }, "/v1/responses")
    assert.matches('"url":"/v1/responses"', lines, 1, true)
  end)
end)
