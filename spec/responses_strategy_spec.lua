-- Strategies over the Responses API (issue 14 item 3): best_of, vote,
-- fallback and race take Responses params (`input`, no `messages`) and send
-- them to POST /responses -- against the bundled server.
local aigc = require "aigc"
local devserver = require "devserver"

local strategy = aigc.strategy

describe("strategies over the Responses API", function ()
  local srv, client

  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)
  before_each(function ()
    srv:reset()
    client = aigc.client { base_url = srv.base_url, model = "aigc-dev", max_retries = 0 }
  end)
  after_each(function () client:close() end)

  local function paths ()
    local out = {}
    for _, r in ipairs(srv:requests()) do out[r.path] = (out[r.path] or 0) + 1 end
    return out
  end

  it("best_of sends its candidates as responses and judges their text", function ()
    local best, cands = strategy.best_of { client = client, n = 3, params = { input = "Tell me a joke" },
                                           judge = { mode = "score" } }
    assert(best, tostring(cands))
    assert.equal(3, #cands)
    for _, c in ipairs(cands) do
      assert.equal("response", c.res.object)
      assert.is_string(c.text)
      assert.truthy(#c.text > 0)
    end
    assert.equal(3, paths()["/v1/responses"])
  end)

  it("vote takes the majority of the responses' texts", function ()
    local win = assert(strategy.vote { client = client, n = 3, params = { input = "What is 2 + 2?" },
                                       extract = function (text) return text:match("(%d+)%D*$") end })
    assert.equal("4", win.answer)
    assert.equal(3, win.count)
  end)

  it("refine drafts and revises as responses, the history in the input items", function ()
    local final, steps = strategy.refine { client = client, params = { input = "Repeat after me: draft" }, rounds = 1,
                                           done = function () return false end }
    assert(final, tostring(steps))
    assert.equal(1, final.rounds)
    assert.same({ "draft", "critique", "revision" }, { steps[1].stage, steps[2].stage, steps[3].stage })
    assert.equal("response", steps[3].res.object)
    local revision
    for _, r in ipairs(srv:requests()) do
      if r.path == "/v1/responses" then revision = r.body_json end
    end
    assert.same({ "user", "assistant", "user" },
                { revision.input[1].role, revision.input[2].role, revision.input[3].role })
    assert.equal("Repeat after me: draft", revision.input[1].content)
    assert.equal("draft", revision.input[2].content)
    assert.equal(1, paths()["/v1/chat/completions"])   -- the critic
  end)

  it("fallback and race take Responses params", function ()
    local dead = aigc.client { base_url = "http://127.0.0.1:9/v1", model = "aigc-dev", max_retries = 0 }
    local res, attempts = strategy.fallback { params = { input = "Repeat after me: saved" }, dead, client }
    assert.equal("saved", res.text)
    assert.equal(2, res.attempt)
    assert.is_false(attempts[1].ok)
    local won = assert(strategy.race { params = { input = "Repeat after me: won" }, { client = client },
                                       { client = client, model = "aigc-reason" } })
    assert.equal("won", won.text)
    dead:close()
    assert.equal(3, paths()["/v1/responses"])
  end)

  it("use_n with Responses params is misuse: the API has no n", function ()
    assert.error_matches(function ()
      strategy.best_of { client = client, n = 2, use_n = true, params = { input = "x" }, judge = {} }
    end, "bad argument #1 to 'best_of' %(spec.use_n: the Responses API has no n")
  end)
end)
