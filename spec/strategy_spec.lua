-- aigc.strategy against the bundled server. Concurrency is proven by the
-- server's own count of open requests (max_open) and cancellation by its
-- count of clients that went away (client_closed_total), never by timing.
local aigc = require "aigc"
local strategy = require "aigc.strategy"
local devserver = require "devserver"
local portable = require "portable"

portable.warn_on()

local STORY = "Tell me a story about a robot that learns to paint."

local function words (s) return select(2, s:gsub("%S+", "")) end

local function fault (spec) return { ["x-aigc-fault"] = spec } end

local function wait_for (cond, seconds)
  local deadline = aigc.now() + (seconds or 5)
  while not cond() do
    if aigc.now() > deadline then return false end
    aigc.sleep(0.01)
  end
  return true
end

describe("aigc.strategy", function ()
  local srv, client

  devserver.fixture(_ENV, function (s, c) srv, client = s, c end)

  describe("best_of", function ()
    it("generates the candidates concurrently and an LLM judge picks the best", function ()
      local best, cands = strategy.best_of { client = client, n = 4,
        params = { messages = { { role = "user", content = STORY } }, headers = fault "delay=300" },
        judge = { prompt = "Which story is the richest?" } }
      assert.equal(4, srv:stats().max_open)     -- all four were open at once
      assert.equal(4, #cands)
      local longest = 1
      for i, c in ipairs(cands) do
        assert.is_nil(c.err)
        assert.equal(i, c.index)
        assert.matches("robot", c.text)
        if words(c.text) > words(cands[longest].text) then longest = i end
        assert.equal(c == best and 1 or 0, c.score)
      end
      assert.equal(longest, best.index)
      assert.equal(tostring(best.index), cands.judge.text)
      local reqs = srv:requests()
      assert.equal(5, #reqs)
      local seeds = {}
      for i = 1, 4 do seeds[#seeds + 1] = reqs[i].body_json.seed end
      table.sort(seeds)
      assert.same({ 1, 2, 3, 4 }, seeds)
      local judged = reqs[5].body_json
      assert.equal(0, judged.temperature)
      local prompt = judged.messages[1].content
      assert.matches("^Which story is the richest%?", prompt)
      for i = 1, 4 do assert.matches("Candidate " .. i .. ":\n" .. cands[i].text:sub(1, 20), prompt, 1, true) end
      assert.matches("Task:\n" .. STORY, prompt, 1, true)
    end)

    it("scores with a function; ties go to the lowest index", function ()
      local best, cands = strategy.best_of { client = client, n = 3, params = "Tell me a joke",
        score = function (text, res, cand)
          assert.equal(cand.text, text)
          assert.equal("chat.completion", res.object)
          return 1
        end }
      assert.equal(1, best.index)
      assert.same({ 1, 1, 1 }, { cands[1].score, cands[2].score, cands[3].score })
      local short, sc = strategy.best_of { client = client, n = 6, params = STORY,
        score = function (text) return -words(text) end }
      for _, c in ipairs(sc) do assert.is_true(words(short.text) <= words(c.text)) end
      assert.equal(-words(short.text), short.score)
    end)

    it("judge mode 'score' asks for a score per candidate, all at once", function ()
      local best, cands = strategy.best_of { client = client, n = 3,
        params = { messages = { { role = "user", content = "Tell me a joke" } }, seed = 10 },
        judge = { mode = "score", params = { headers = fault "delay=300" } } }
      assert.equal(3, srv:stats().max_open)
      for _, c in ipairs(cands) do
        assert.equal(math.min(10, portable.idiv(words(c.text), 10) + 1), c.score)
        assert.equal(tostring(c.score), c.judge.text)
      end
      for _, c in ipairs(cands) do assert.is_true(best.score >= c.score) end
      local reqs = srv:requests()
      assert.equal(6, #reqs)
      assert.matches("Score the candidate", reqs[6].body_json.messages[1].content, 1, true)
      assert.same({ 11, 12, 13 }, { reqs[1].body_json.seed, reqs[2].body_json.seed, reqs[3].body_json.seed })
    end)

    it("use_n = true asks once with n; vary changes each candidate's params", function ()
      local _, cands = strategy.best_of { client = client, n = 3, params = "Hello", use_n = true,
        score = function (text) return #text end }
      assert.equal(1, #srv:requests())
      assert.equal(3, srv:last().body_json.n)
      assert.equal(3, #cands)
      srv:reset()
      local _, c2 = strategy.best_of { client = client, n = 2, params = "Hello",
        vary = function (i, p) p.temperature = i / 10; return p end, score = function () return 0 end }
      assert.equal(2, #c2)
      local temps = {}
      for _, r in ipairs(srv:requests()) do temps[#temps + 1] = r.body_json.temperature end
      table.sort(temps)
      assert.same({ 0.1, 0.2 }, temps)
    end)

    it("takes params with a schema: candidates come back parsed, and are still concurrent", function ()
      local mood = { type = "object", properties = { mood = { type = "string", enum = { "calm", "angry", "sad" } } },
                     required = { "mood" }, additionalProperties = false }
      local best, cands = strategy.best_of { client = client, n = 3,
        params = { messages = { { role = "user", content = "How do you feel?" } }, schema = mood,
                   headers = fault "delay=200" },
        score = function (_, _, c) return c.parsed.mood == "angry" and 1 or 0 end }
      assert.equal(3, srv:stats().max_open)
      for _, c in ipairs(cands) do assert.same(c.parsed, aigc.json.decode(c.text)) end
      assert.equal(best.parsed.mood == "angry" and 1 or 0, best.score)
    end)

    it("keeps going when some candidates fail; fails when all do or the judge says nothing", function ()
      local best, cands = strategy.best_of { client = client, n = 3,
        params = { messages = { { role = "user", content = "Hello" } }, headers = fault "status=500,times=1" },
        score = function (text) return #text end }
      local failed = 0
      for _, c in ipairs(cands) do
        if c.err then failed = failed + 1; assert.equal(500, c.err.status); assert.is_nil(c.score) end
      end
      assert.equal(1, failed)
      assert.is_nil(best.err)
      local none, err, all = strategy.best_of { client = client, n = 2,
        params = { messages = { { role = "user", content = "Hello" } }, headers = fault "status=503" },
        judge = {} }
      assert.is_nil(none)
      assert.equal(503, err.status)
      assert.equal(2, #all)
      local mute, jerr = strategy.best_of { client = client, n = 2, params = "Hello",
        judge = { params = { stop = { "1", "2" } } } }
      assert.is_nil(mute)
      assert.equal("parse", jerr.kind)
      assert.matches("names no candidate", jerr.message, 1, true)
    end)

    it("runs inside a task without blocking the frame loop, still concurrently", function ()
      local best
      client:spawn(function ()
        best = strategy.best_of { client = client, n = 4, judge = {},
          params = { messages = { { role = "user", content = STORY } }, headers = fault "delay=200" } }
      end)
      local frames = 0
      while client:step(0) > 0 do frames = frames + 1 end
      assert.is_true(frames > 1)
      assert.is_string(best.text)
      assert.equal(4, srv:stats().max_open)
    end)

    it("raises on misuse", function ()
      assert.has_error(function () strategy.best_of { n = 2, params = "x", judge = {} } end,
        "bad argument #1 to 'best_of' (spec.client: aigc.client expected, got nil)")
      assert.has_error(function () strategy.best_of { client = client, params = "x" } end,
        "bad argument #1 to 'best_of' (spec.score: a function (or spec.judge) expected, got nil)")
      assert.has_error(function () strategy.best_of { client = client, n = 0, params = "x", judge = {} } end,
        "bad argument #1 to 'best_of' (spec.n: an integer from 1 to 128 expected, got 0)")
      assert.has_error(function () strategy.best_of { client = client, params = {}, judge = {} } end,
        "bad argument #1 to 'best_of' (spec.params.messages: list of messages expected, got nil)")
      assert.has_error(function () strategy.best_of { client = client, params = "x", judge = { mode = "x" } } end,
        "bad argument #1 to 'best_of' (spec.judge.mode: 'rank' or 'score' expected, got string)")
    end)
  end)

  describe("vote", function ()
    it("asks n times at once and returns the majority answer with its count", function ()
      local win, cands = strategy.vote { client = client, n = 5,
        params = { messages = { { role = "user", content = "What is 2 + 2?" } }, headers = fault "delay=200" },
        extract = function (text) return text:match("(%d+)%.?$") end }
      assert.equal(5, srv:stats().max_open)
      assert.equal("4", win.answer)
      assert.equal(5, win.count)
      assert.equal(5, win.total)
      assert.equal(1, win.share)
      assert.same({ { answer = "4", count = 5 } }, win.tally)
      local distinct = {}
      for _, c in ipairs(cands) do distinct[c.text] = true; assert.equal("4", c.answer) end
      assert.is_not_nil(next(distinct, next(distinct)))   -- worded differently, same answer
    end)

    it("tallies different answers, most votes first; ties go to the answer seen first", function ()
      local win, cands = strategy.vote { client = client, n = 7, params = "Tell me a joke" }
      local sum = 0
      for i, t in ipairs(win.tally) do
        sum = sum + t.count
        if i > 1 then assert.is_true(win.tally[i - 1].count >= t.count) end
      end
      assert.equal(7, sum)
      assert.equal(7, win.total)
      assert.is_true(win.count >= 3)   -- 7 votes over at most 3 variants
      assert.equal(win.tally[1].answer, win.answer)
      assert.equal(strategy.default_extract(cands[win.index].text), win.answer)
      for _, c in ipairs(cands) do
        if c.index < win.index then assert.not_equal(win.answer, c.answer) end
      end
      assert.equal("the answer is 4", strategy.default_extract("Let me think.\n\n  The answer is 4.  \n"))
    end)

    it("fails when nobody answers", function ()
      local win, err, cands = strategy.vote { client = client, n = 2, params = "Hello",
        extract = function () return nil end }
      assert.is_nil(win)
      assert.equal("parse", err.kind)
      assert.equal("no candidate gave an answer", err.message)
      assert.equal(2, #cands)
      local _, nerr = strategy.vote { client = client, n = 2,
        params = { messages = { { role = "user", content = "Hi" } }, headers = fault "status=502" } }
      assert.equal(502, nerr.status)
    end)
  end)

  describe("refine", function ()
    it("drafts, critiques and revises for the given rounds, keeping every step", function ()
      local final, steps = strategy.refine { client = client, rounds = 2,
        params = { messages = { { role = "system", content = "Be brief." },
                                { role = "user", content = "Explain tides." } } } }
      local stages = {}
      for i, s in ipairs(steps) do stages[i] = s.stage; assert.is_string(s.text) end
      assert.same({ "draft", "critique", "revision", "critique", "revision" }, stages)
      assert.equal(2, final.rounds)
      assert.equal(steps[5].text, final.text)
      local reqs = srv:requests()
      assert.equal(5, #reqs)
      local crit = reqs[2].body_json.messages
      assert.equal(1, #crit)
      assert.matches(strategy.CRITIQUE_PROMPT, crit[1].content, 1, true)
      assert.matches("Answer:\n" .. steps[1].text, crit[1].content, 1, true)
      local rev = reqs[3].body_json.messages
      assert.equal("system user assistant user", table.concat({ rev[1].role, rev[2].role, rev[3].role, rev[4].role },
                                                             " "))
      assert.equal(steps[1].text, rev[3].content)
      assert.matches("Critique:\n" .. steps[2].text, rev[4].content, 1, true)
    end)

    it("stops when the critic is satisfied; critique and revise can be functions", function ()
      local final, steps = strategy.refine { client = client, params = "Hello", rounds = 3,
        critique = function (task, draft) return "Repeat after me: NO ISSUES with " .. task .. " / " .. #draft end }
      assert.equal(2, #steps)
      assert.equal("NO ISSUES with Hello / 32", steps[2].text)
      assert.equal(0, final.rounds)
      assert.equal(steps[1].text, final.text)
      local revised = {}
      local f2 = strategy.refine { client = client, params = "Hello", rounds = 1,
        critique = "Repeat after me: too long",
        revise = function (task, draft, critique)
          revised[1] = { task, draft, critique }
          return "Echo: short"
        end }
      assert.equal("short", f2.text)
      assert.same({ "Hello", "Hello! How can I help you today?" }, { revised[1][1], revised[1][2] })
      assert.matches("^too long\n\nTask:\nHello\n\nAnswer:\nHello! How can I help you today%?$", revised[1][3])
    end)
  end)

  describe("fallback and race", function ()
    it("fallback skips a failing client and says what failed", function ()
      local down = aigc.client { base_url = "http://127.0.0.1:9/v1", max_retries = 0, connect_timeout = 2 }
      local res, attempts = strategy.fallback { params = "Hello", down,
        { client = client, model = "fault:status=500" }, { client = client, model = "backup" } }
      assert.equal("Hello! How can I help you today?", res.text)
      assert.equal(3, res.attempt)
      assert.equal(3, #attempts)
      assert.equal("connect", attempts[1].err.kind)
      assert.equal(500, attempts[2].err.status)
      assert.is_true(attempts[3].ok)
      assert.equal("backup", srv:last().body_json.model)
      assert.equal(2, #srv:requests())
      local none, err, tried = strategy.fallback { params = "Hello",
        should_fallback = function (e) return e.status ~= 400 end,
        { client = client, model = "fault:status=400" }, { client = client } }
      assert.is_nil(none)
      assert.equal(400, err.status)
      assert.equal(1, #tried)
      down:close()
    end)

    it("race: the first to finish wins and the others are canceled", function ()
      local res, outcomes = strategy.race { client = client, params = "Hello",
        { model = "fault:delay=3000" }, { model = "fault:delay=100" }, { model = "fault:delay=3000" } }
      assert.equal("Hello! How can I help you today?", res.text)
      assert.equal(2, res.attempt)
      assert.equal(2, outcomes.winner)
      assert.same({ "canceled", "won", "canceled" }, { outcomes[1].status, outcomes[2].status, outcomes[3].status })
      assert.equal(3, srv:stats().max_open)
      assert.is_true(wait_for(function () return srv:stats().client_closed_total == 2 end))
      assert.equal(2, srv:stats().client_closed_total)
    end)

    it("race: failures do not win; all failing is an error", function ()
      local res, outcomes = strategy.race { client = client, params = "Hello",
        { model = "fault:status=500" }, { model = "fault:delay=200" } }
      assert.equal(2, res.attempt)
      assert.equal("failed", outcomes[1].status)
      assert.equal(500, outcomes[1].err.status)
      local none, err, outs = strategy.race { client = client, params = "Hello",
        { model = "fault:status=500" }, { model = "fault:status=502" } }
      assert.is_nil(none)
      assert.is_true(err.status == 500 or err.status == 502)
      assert.equal("failed", outs[1].status)
      assert.equal("failed", outs[2].status)
    end)

    it("race inside a task yields to the frame loop and still cancels the losers", function ()
      local res
      client:spawn(function ()
        res = strategy.race { params = "Hello", { client = client, model = "fault:delay=50" },
                              { client = client, model = "fault:hang" } }
      end)
      local frames = 0
      while res == nil and frames < 100000 do client:step(0.001); frames = frames + 1 end
      assert.equal(1, res.attempt)
      assert.is_true(frames > 1)
      assert.is_true(wait_for(function () return srv:stats().client_closed_total == 1 end))
    end)

    it("race across two clients drives both", function ()
      local other = aigc.client { base_url = srv.base_url, max_retries = 0 }
      local res, outcomes = strategy.race { params = "Hello", { client = client, model = "fault:delay=2000" },
                                            { client = other, model = "fault:delay=50" } }
      assert.equal(2, res.attempt)
      assert.equal("canceled", outcomes[1].status)
      other:close()
    end)

    it("raise on misuse", function ()
      assert.has_error(function () strategy.race { params = "x" } end,
        "bad argument #1 to 'race' (at least one entry (a client or { client =, params = }) expected)")
      assert.has_error(function () strategy.fallback { params = "x", { model = "m" } } end,
        "bad argument #1 to 'fallback' (spec[1].client: aigc.client expected, got nil)")
      assert.has_error(function () strategy.fallback { params = "x", client, 42 } end,
        "bad argument #1 to 'fallback' (spec[2]: aigc.client or table expected, got number)")
      assert.has_error(function () strategy.fallback { client } end,
        "bad argument #1 to 'fallback' (spec[1].params.messages: list of messages (or spec.params) expected, got nil)")
    end)
  end)

  -- Issue 10: scores that cannot rank, and strategies in a task that wait
  -- on another client.
  describe("trust", function ()
    it("best_of: NaN and non-number scores rank last and are reported on the candidate", function ()
      local scores = { 0 / 0, 2, "high", 1 }
      local best, cands = strategy.best_of { client = client, n = 4, params = "Tell me a joke",
        score = function (_, _, c) return scores[c.index] end }
      assert.equal(2, best.index)
      assert.equal(2, best.score)
      assert.is_nil(cands[1].score)
      assert.equal("the score is NaN", cands[1].score_error)
      assert.is_nil(cands[3].score)
      assert.equal("the score is a string, not a number", cands[3].score_error)
      assert.equal(1, cands[4].score)
      local none, err = strategy.best_of { client = client, n = 2, params = "Hi",
                                           score = function () return 0 / 0 end }
      assert.is_nil(none)
      assert.equal("parse", err.kind)
      assert.equal("no candidate got a score", err.message)
      assert.has_error(function ()
        strategy.best_of { client = client, n = 2, params = "Hi", score = function () error("scorer bug", 0) end }
      end, "scorer bug")
      assert(client:chat "still usable")
    end)

    it("best_of in a task with a judge on another client: the loop keeps running", function ()
      local judge_client = aigc.client { base_url = srv.base_url, max_retries = 0 }
      local best
      client:spawn(function ()
        best = strategy.best_of { client = client, n = 2, params = STORY,
          judge = { client = judge_client, params = { headers = fault "delay=200" } } }
      end)
      local frames = 0
      local deadline = aigc.now() + 20
      while best == nil and aigc.now() < deadline do client:step(0.005); frames = frames + 1 end
      assert.is_string(best.text)
      assert.is_true(frames > 10)
      judge_client:close()
    end)

    it("race: a client closed by a callback during the race fails its entries, it does not raise", function ()
      local other = aigc.client { base_url = srv.base_url, max_retries = 0 }
      local ok, res, err, outcomes = pcall(strategy.race, { params = "Hello",
        { client = client, params = { messages = { { role = "user", content = "Hello" } },
                                      on_error = function () other:close() end }, model = "fault:status=500" },
        { client = other, model = "fault:hang" } })
      assert.is_true(ok, tostring(res))
      assert.is_nil(res)
      assert.is_table(err)
      assert.equal("failed", outcomes[1].status)
      assert.equal("failed", outcomes[2].status)
      assert.equal("canceled", outcomes[2].err.kind)
    end)

    it("race across two clients inside a task yields to the loop", function ()
      local other = aigc.client { base_url = srv.base_url, max_retries = 0 }
      local res, outcomes
      client:spawn(function ()
        res, outcomes = strategy.race { params = "Hello", { client = client, model = "fault:hang" },
                                        { client = other, model = "fault:delay=200" } }
      end)
      assert.is_nil(res)   -- (spawn returned at the task's first wait)
      local deadline = aigc.now() + 20
      while res == nil and aigc.now() < deadline do client:step(0.005) end
      assert.equal(2, res.attempt)
      assert.equal("canceled", outcomes[1].status)
      assert.is_true(wait_for(function () return srv:stats().client_closed_total == 1 end))
      other:close()
    end)
  end)

  describe("route", function ()
    local routes

    before_each(function ()
      routes = {
        orders = { system = "You handle orders." },
        jokes = function (input, info) return "joke route got: " .. input .. " via " .. info.route end,
        chat = aigc.conversation { client = client, system = "Small talk." },
      }
    end)

    it("hands the input to the route a function picks", function ()
      local out, info = strategy.route { client = client, input = "Where is my order A-1?", routes = routes,
        classify = function (input) return input:find("order") and "orders" or "jokes" end }
      assert.equal("orders", info.route)
      assert.matches("order has shipped", out.text)
      local sent = srv:last().body_json.messages
      assert.same({ { role = "system", content = "You handle orders." },
                    { role = "user", content = "Where is my order A-1?" } }, sent)
      local out2, info2 = strategy.route { client = client, input = "ha", routes = routes,
        classify = function () return "jokes" end }
      assert.equal("joke route got: ha via jokes", out2)
      assert.equal("jokes", info2.route)
      local reply, info3 = strategy.route { client = client, input = "Hello", routes = routes,
        classify = function () return "chat" end }
      assert.equal("Hello! How can I help you today?", reply)
      assert.equal("chat", info3.route)
      assert.equal(3, #routes.chat.messages)
    end)

    it("lets the model classify among the route names", function ()
      local handle = strategy.router { client = client, routes = routes, classify = { client = client },
                                       default = "chat" }
      local out, info = handle "Please track my orders, A-17 is late"
      assert.equal("orders", info.route)
      assert.equal("orders", info.label)
      assert.equal("chat.completion", info.response.object)
      local asked = srv:requests()[1].body_json
      assert.equal(0, asked.temperature)
      assert.matches("Categories: chat, jokes, orders\nInput: Please track my orders", asked.messages[1].content,
        1, true)
      assert.is_string(out.text)
      local _, info2 = handle "I want a joke"
      assert.equal("jokes", info2.route)
      local _, info3 = handle "Good morning!"    -- names no label: the model says the last one
      assert.equal("orders", info3.label)
    end)

    it("takes the default when the label is unknown, else fails with kind 'route'", function ()
      local _, info = strategy.route { client = client, input = "x", routes = routes, default = "jokes",
        classify = function () return "weather" end }
      assert.equal("jokes", info.route)
      local none, err = strategy.route { client = client, input = "x", routes = routes,
        classify = function () return "weather" end }
      assert.is_nil(none)
      assert.equal("route", err.kind)
      assert.equal('no route for "weather" (routes: chat, jokes, orders)', err.message)
      local _, nerr = strategy.route { client = client, input = "x", routes = routes, classify = function () end }
      assert.equal("the classifier named no route (routes: chat, jokes, orders)", nerr.message)
      local _, cerr = strategy.route { client = client, input = "x", routes = routes,
        classify = function () return nil, "classifier down" end }
      assert.equal("classifier down", cerr)
    end)

    it("says what the model classifier replied when it names no route, shortened and scrubbed", function ()
      -- The devserver answers one of the "Categories:" it is shown, split at
      -- commas: "right" here, which is no route's name; echo-key adds the
      -- API key to the reply.
      local keyed = aigc.client { base_url = srv.base_url, api_key = "sk-route-secret-123", max_retries = 0 }
      local none, err, info = strategy.route { input = "Where is my parcel?", routes = { ["left,right"] = print },
        classify = { client = keyed, params = { headers = fault "echo-key" } } }
      assert.is_nil(none)
      assert.equal("route", err.kind)
      assert.matches("sk-route-secret-123", info.label, 1, true)    -- (the reply itself, in info)
      assert.equal('the classifier\'s reply "right Your API key is [redacted]." names no route (routes: left,right)',
        err.message)
      assert.not_matches("sk-route-secret", tostring(err), 1, true)
      local _, long = strategy.route { input = "x", classify = function () return ("word\n "):rep(40) end,
        routes = { a = print } }
      assert.equal('no route for "' .. ("word "):rep(16) .. '"... (routes: a)', long.message)
      keyed:close()
    end)

    it("raises on misuse", function ()
      assert.has_error(function () strategy.route { routes = routes, classify = print } end,
        "bad argument #1 to 'route' (spec.input: string expected, got nil)")
      assert.has_error(function () strategy.router { routes = {}, classify = print } end,
        "bad argument #1 to 'router' (spec.routes: non-empty table expected, got table)")
      assert.has_error(function () strategy.router { routes = routes, classify = "x" } end,
        "bad argument #1 to 'router' (spec.classify: "
        .. "function or { client =, prompt =, params = } expected, got string)")
      assert.has_error(function () strategy.router { routes = routes, classify = print, default = "nope" } end,
        "bad argument #1 to 'router' (spec.default: 'nope' is not a route)")
      assert.has_error(function () strategy.router { routes = { a = 1 }, classify = print } end,
        "bad argument #1 to 'router' (spec.routes.a: function, conversation or chat params expected, got number)")
    end)
  end)
end)
