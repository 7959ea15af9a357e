-- A prompt workflow probed as a person prototyping one would use it, then
-- attacked: candidates, strategies, structured output, dataset runs, the
-- Batch API. Each test here is a defect found by probing (it failed before
-- its fix).
local devserver = require "devserver"
local runner = require "aigc.runner"

describe("a dataset run", function ()
  local client
  devserver.fixture(_ENV, function (_, c) client = c end)

  -- A strategy function that returned no table (42) reached the rate
  -- limiter's `res.headers`: the whole run stopped with "attempt to index a
  -- number value (local 'res')" from ratelimit.lua, no line for any case; one
  -- that returned nothing failed its case with "the call failed: nil".
  it("fails only the case whose strategy function returns no result table, naming what it returned", function ()
    local cases = {}
    for i, id in ipairs { "good", "number", "nothing", "also_good" } do
      cases[i] = { id = id, prompt = "Repeat after me: fine" }
    end
    local summary = assert(runner.run {
      client = client, cases = cases, concurrency = 1,
      strategy = function (c, params, case)
        if case.id == "number" then return 42 end
        if case.id == "nothing" then return end
        return c:chat(params)
      end,
    })
    assert.equal(4, summary.total)
    assert.equal(2, summary.ok)
    assert.equal("fine", summary.results.good.text)
    assert.equal("fine", summary.results.also_good.text)
    assert.is_false(summary.results.number.ok)
    assert.equal("the strategy returned 42; a result table, or nil and an error, expected",
                 summary.results.number.error.message)
    assert.equal("the strategy returned nil and no error", summary.results.nothing.error.message)
    assert.equal(1, summary.results.number.attempts)   -- (not retried: it is the script's, not the server's)
  end)
end)
