-- strategy.refine checked critic.params only when it built the first
-- critique: a wrong value (critic.params = "terse", temperature = "hot")
-- raised after the draft had been generated and paid for. Now it is
-- misuse named up front with the other arguments, nothing sent; best_of's
-- judge.params the same (checked for being a table only).
local strategy = require "aigc.strategy"
local devserver = require "devserver"

describe("strategy.refine's critic.params", function ()
  local srv, client
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end)

  local function refused (critic_params, want)
    local ok, e = pcall(strategy.refine, { client = client, params = "Say hi", critic = { params = critic_params } })
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'refine' (" .. want, tostring(e), 1, true)
    assert.equal(0, #srv:requests())   -- (no draft paid for)
  end

  it("not a table: misuse named up front, nothing sent", function ()
    refused("terse", "spec.critic.params: table expected, got string")
  end)

  it("a value a call refuses: misuse named up front, nothing sent", function ()
    refused({ temperature = "hot" }, "spec.critic.params.temperature: number expected, got string")
  end)

  it("good ones still go to every critique, and only there", function ()
    local final = assert(strategy.refine { client = client, params = "Say hi", rounds = 1,
                                           critic = { params = { temperature = 0.25 } } })
    assert.is_string(final.text)
    local reqs = srv:requests()
    assert.is_nil(reqs[1].body_json.temperature)
    assert.equal(0.25, reqs[2].body_json.temperature)
  end)

  it("best_of's judge.params alike: checked before the candidates are paid for", function ()
    local ok, e = pcall(strategy.best_of, { client = client, params = "Say hi", n = 2,
                                            judge = { params = { temperature = "hot" } } })
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'best_of' (spec.judge.params.temperature: number expected, got string)",
                   tostring(e), 1, true)
    assert.equal(0, #srv:requests())
  end)
end)
