-- A judge (best_of's rank and score judges, route's classifier, the
-- runner's judge assertions) asks with temperature = 0, for the same
-- verdict on the same candidates. OpenAI's reasoning models (o1, o3,
-- o4-mini, gpt-5) take only their default temperature and answer 400,
-- param "temperature": every judged strategy or run on such a model
-- failed. The judge now asks again without it, and leaves it out for that
-- model from then on; a temperature the user gave is theirs, never dropped.
-- (The bundled server's fault `default-temperature` refuses as OpenAI does.)
local strategy = require "aigc.strategy"
local runner = require "aigc.runner"
local devserver = require "devserver"

local FIXED = "fault:default-temperature"

describe("a judge on a model that takes only its default temperature", function ()
  local srv, client
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { model = "m" })

  -- The recorded requests to `model`: whether each sent a temperature, and its status.
  local function calls_to (model)
    local out = {}
    for _, r in ipairs(srv:requests()) do
      local body = r.body_json
      if type(body) == "table" and body.model == model then
        out[#out + 1] = { temperature = body.temperature, status = r.status }
      end
    end
    return out
  end

  it("best_of's rank judge asks again without it, then leaves it out for that model", function ()
    local judge = { params = { model = FIXED } }
    local best, cands = strategy.best_of { client = client, n = 2, params = "Name a colour.", judge = judge }
    assert.truthy(best, tostring(cands))
    local calls = calls_to(FIXED)
    assert.same({ { temperature = 0, status = 400 }, { status = 200 } }, calls)
    -- what it cost counts the refused call (client:usage() does)
    assert.equal(2 + 2, best.usage_total.requests)
    assert.equal(client:usage().requests, best.usage_total.requests)
    srv:reset()
    assert.truthy((strategy.best_of { client = client, n = 2, params = "Name a colour.", judge = judge }))
    assert.same({ { status = 200 } }, calls_to(FIXED))
    -- (another model of the same client still gets the judge's temperature)
    srv:reset()
    assert.truthy((strategy.best_of { client = client, n = 2, params = "Name a colour.",
                                      judge = { params = { model = "other" } } }))
    assert.same({ { temperature = 0, status = 200 } }, calls_to("other"))
  end)

  it("best_of's score judges, asked at once, each ask again", function ()
    local best, cands = strategy.best_of { client = client, n = 3, params = "Tell me a joke",
                                           judge = { mode = "score", params = { model = FIXED } } }
    assert.truthy(best, tostring(cands))
    for _, c in ipairs(cands) do assert.is_number(c.score) end
    local refused, answered = 0, 0
    for _, c in ipairs(calls_to(FIXED)) do
      if c.status == 400 then refused = refused + 1; assert.equal(0, c.temperature) end
      if c.status == 200 then answered = answered + 1; assert.is_nil(c.temperature) end
    end
    assert.equal(3, refused)
    assert.equal(3, answered)
    assert.equal(3 + 6, best.usage_total.requests)
    assert.equal(client:usage().requests, best.usage_total.requests)
  end)

  it("route's classifier asks again without it", function ()
    local out, info = strategy.route { input = "Where is my order?", client = client, default = "other",
      classify = { client = client, params = { model = FIXED } },
      routes = { orders = function () return "ORDERS" end, other = function () return "OTHER" end } }
    assert.truthy(out, tostring(info))
    assert.truthy(info.response)
    assert.same({ { temperature = 0, status = 400 }, { status = 200 } }, calls_to(FIXED))
    assert.equal(2, info.usage_total.requests)
  end)

  for _, api in ipairs { "chat", "responses" } do
    it("the runner's judge assertion asks again without it (" .. api .. ")", function ()
      local long = string.rep("word ", 65)   -- (the bundled server scores min(10, words // 10 + 1))
      local pass, results = runner.check({ { type = "judge", value = "Is it thorough?", threshold = 7 } }, long,
                                         { client = client, model = FIXED, api = api })
      assert.is_true(pass, results[1].reason)
      assert.equal(7, results[1].score)
      assert.same({ { temperature = 0, status = 400 }, { status = 200 } }, calls_to(FIXED))
    end)
  end

  it("a temperature the user gave the judge is theirs: sent, and the server's refusal is the result", function ()
    local none, err = strategy.best_of { client = client, n = 2, params = "Name a colour.",
                                         judge = { params = { model = FIXED, temperature = 0 } } }
    assert.is_nil(none)
    assert.equal(400, err.status)
    assert.equal("temperature", err.param)
    assert.same({ { temperature = 0, status = 400 } }, calls_to(FIXED))
  end)

  it("another 400 is not taken for a refused temperature: one call, its error", function ()
    local none, err = strategy.best_of { client = client, n = 2, params = "Name a colour.",
                                         judge = { params = { model = "fault:status=400" } } }
    assert.is_nil(none)
    assert.equal(400, err.status)
    assert.equal(1, #calls_to("fault:status=400"))
  end)
end)
