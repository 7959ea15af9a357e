-- Strategies over the Responses API (issue 14 item 3): best_of, vote,
-- refine, fallback and race take Responses params (`input`, no `messages`)
-- and send them to POST /responses, their judges and critics too (unless
-- `api = "chat"`); route's classifier with `api = "responses"` -- against
-- the bundled server, whose request records show the endpoint of each call.
local aigc = require "aigc"
local devserver = require "devserver"

local strategy = aigc.strategy

describe("strategies over the Responses API", function ()
  local srv, client
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { model = "aigc-dev" })

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
    assert.equal(6, paths()["/v1/responses"])   -- 3 candidates, 3 scores by the judge
    assert.is_nil(paths()["/v1/chat/completions"])
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
    local sent = srv:bodies("/v1/responses")
    local revision = sent[#sent]
    assert.same({ "user", "assistant", "user" },
                { revision.input[1].role, revision.input[2].role, revision.input[3].role })
    assert.equal("Repeat after me: draft", revision.input[1].content)
    assert.equal("draft", revision.input[2].content)
    assert.equal(3, paths()["/v1/responses"])   -- the critic's too
    assert.is_nil(paths()["/v1/chat/completions"])
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

  local function bodies (path) return srv:bodies(path) end

  it("best_of's rank judge asks over /responses when the task is Responses params", function ()
    local best, cands = strategy.best_of { client = client, n = 3, params = { input = "Tell me a joke" },
                                           judge = { prompt = "Which joke is the funniest?" } }
    assert(best, tostring(cands))
    assert.equal("response", cands.judge.res.object)
    assert.equal(tostring(best.index), cands.judge.text)
    local sent = bodies("/v1/responses")
    assert.equal(4, #sent)                                   -- 3 candidates, then the judge
    assert.is_nil(paths()["/v1/chat/completions"])
    local judged = sent[4]
    assert.is_nil(judged.messages)
    assert.equal(0, judged.temperature)
    assert.equal("user", judged.input[1].role)
    assert.matches("Which joke is the funniest?", judged.input[1].content, 1, true)
    assert.matches("Candidate 3:", judged.input[1].content, 1, true)
    -- the server's judge contract: the candidate with the most words wins
    local longest = cands[1]
    for _, c in ipairs(cands) do
      if select(2, c.text:gsub("%S+", "")) > select(2, longest.text:gsub("%S+", "")) then longest = c end
    end
    assert.equal(longest.index, best.index)
  end)

  it("best_of's score judge scores every candidate over /responses", function ()
    local best, cands = strategy.best_of { client = client, n = 2, params = { input = "Tell me a story" },
                                           judge = { mode = "score" } }
    assert(best, tostring(cands))
    for _, c in ipairs(cands) do
      assert.equal("response", c.judge.res.object)
      assert.equal(tostring(c.score), c.judge.text)
    end
    local sent = bodies("/v1/responses")
    assert.equal(4, #sent)
    assert.matches("Score the candidate", sent[3].input[1].content, 1, true)
    assert.is_nil(paths()["/v1/chat/completions"])
  end)

  it("judge.api and critic.api choose the judge's and the critic's API either way", function ()
    local best, cands = strategy.best_of { client = client, n = 2, params = { input = "Tell me a joke" },
                                           judge = { api = "chat" } }
    assert(best, tostring(cands))
    assert.equal("chat.completion", cands.judge.res.object)
    assert.same({ ["/v1/responses"] = 2, ["/v1/chat/completions"] = 1 }, paths())
    srv:reset()
    best, cands = strategy.best_of { client = client, n = 2, params = "Tell me a joke",
                                     judge = { api = "responses", params = { max_output_tokens = 16 } } }
    assert(best, tostring(cands))
    assert.equal("response", cands.judge.res.object)
    assert.same({ ["/v1/chat/completions"] = 2, ["/v1/responses"] = 1 }, paths())
    assert.equal(16, bodies("/v1/responses")[1].max_output_tokens)
    srv:reset()
    local final, steps = strategy.refine { client = client, params = { input = "Repeat after me: draft" }, rounds = 1,
                                           critic = { api = "chat" }, done = function () return true end }
    assert(final, tostring(steps))
    assert.equal("chat.completion", steps[2].res.object)
    assert.same({ ["/v1/responses"] = 1, ["/v1/chat/completions"] = 1 }, paths())
  end)

  it("refine's critic, given as a function of a string, asks over /responses", function ()
    local final, steps = strategy.refine { client = client, params = { input = "Repeat after me: draft" }, rounds = 1,
      critique = function (_, draft) return "Echo: NO ISSUES with " .. draft end }
    assert(final, tostring(steps))
    assert.equal(0, final.rounds)
    assert.equal("NO ISSUES with draft", steps[2].text)
    assert.equal("response", steps[2].res.object)
    local sent = bodies("/v1/responses")
    assert.equal(2, #sent)
    assert.equal("Echo: NO ISSUES with draft", sent[2].input[1].content)
  end)

  it("route's classifier asks over /responses with classify.api", function ()
    local routes = { orders = function (input) return "orders: " .. input end,
                     jokes = function (input) return "jokes: " .. input end }
    local out, info = strategy.route { client = client, input = "Please track my orders, A-17 is late",
                                       routes = routes, classify = { api = "responses" } }
    assert.equal("orders: Please track my orders, A-17 is late", out)
    assert.equal("orders", info.route)
    assert.equal("orders", info.label)
    assert.equal("response", info.response.object)
    local sent = bodies("/v1/responses")
    assert.equal(1, #sent)
    assert.equal(0, sent[1].temperature)
    assert.matches("Categories: jokes, orders\nInput: Please track my orders", sent[1].input[1].content, 1, true)
    assert.is_nil(paths()["/v1/chat/completions"])
    -- a server's failure is nil, err from the classifier's request
    local handle = strategy.router { client = client, routes = routes, classify = { api = "responses",
                                     params = { headers = { ["x-aigc-fault"] = "status=500" } } } }
    local none, err = handle "I want a joke"
    assert.is_nil(none)
    assert.equal(500, err.status)
    assert.equal("/v1/responses", srv:requests()[#srv:requests()].path)
  end)

  it("route hands the input to a route of Responses params as their last input item", function ()
    local routes = {
      orders = { api = "responses", system = "You handle orders.", instructions = "Be brief." },
      jokes = { input = { { role = "user", content = "Hi" } }, model = "aigc-reason" },
      chat = { system = "You are helpful." },
    }
    local res, info = strategy.route { client = client, input = "Repeat after me: where is A-17", routes = routes,
                                       classify = function () return "orders" end }
    assert.equal("orders", info.route)
    assert.equal("response", res.object)
    assert.equal("where is A-17", res.text)
    local sent = bodies("/v1/responses")[1]
    assert.is_nil(sent.api)
    assert.is_nil(sent.system)
    assert.equal("Be brief.", sent.instructions)
    assert.same({ { role = "system", content = "You handle orders." },
                  { role = "user", content = "Repeat after me: where is A-17" } }, sent.input)
    srv:reset()
    res = strategy.route { client = client, input = "Echo: ha", routes = routes,
                           classify = function () return "jokes" end }
    assert.equal("ha", res.text)
    assert.same({ "Hi", "Echo: ha" }, { bodies("/v1/responses")[1].input[1].content,
                                        bodies("/v1/responses")[1].input[2].content })
    assert.equal(1, #routes.jokes.input)   -- (the route's own list is left alone)
    srv:reset()
    res = strategy.route { client = client, input = "Echo: hey", routes = routes,
                           classify = function () return "chat" end }
    assert.equal("chat.completion", res.object)
    assert.same({ ["/v1/chat/completions"] = 1 }, paths())
  end)

  it("an api that is neither chat nor responses is misuse", function ()
    assert.error_matches(function ()
      strategy.best_of { client = client, params = { input = "x" }, judge = { api = "completions" } }
    end, "bad argument #1 to 'best_of' %(spec.judge.api: 'chat' or 'responses' expected, got string")
    assert.error_matches(function ()
      strategy.refine { client = client, params = "x", critic = { api = 1 } }
    end, "bad argument #1 to 'refine' %(spec.critic.api: 'chat' or 'responses' expected, got 1")
    assert.error_matches(function ()
      strategy.route { client = client, input = "x", routes = { a = function () end }, classify = { api = true } }
    end, "bad argument #1 to 'route' %(spec.classify.api: 'chat' or 'responses' expected, got boolean")
    assert.error_matches(function ()
      strategy.route { client = client, input = "x", routes = { a = { api = "completion" } },
                       classify = function () end }
    end, "bad argument #1 to 'route' %(spec.routes.a.api: 'chat' or 'responses' expected, got string")
  end)

  it("use_n with Responses params is misuse: the API has no n", function ()
    assert.error_matches(function ()
      strategy.best_of { client = client, n = 2, use_n = true, params = { input = "x" }, judge = {} }
    end, "bad argument #1 to 'best_of' %(spec.use_n: the Responses API has no n")
  end)
end)
