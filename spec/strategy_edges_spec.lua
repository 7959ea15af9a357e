-- aigc.strategy at its edges: answers that compare badly (key order, NaN),
-- judges that talk, what a whole strategy cost, strategies that fail or
-- are canceled part way.
local aigc = require "aigc"
local strategy = require "aigc.strategy"
local devserver = require "devserver"
local scripted = require "scripted"
local portable = require "portable"

portable.warn_on()

local function fault (spec) return { ["x-aigc-fault"] = spec } end

-- vary for candidate i asking the server to say says[i] (cycled).
local function saying (says)
  return function (i, p)
    p.messages = { { role = "user", content = "Repeat after me: " .. says[(i - 1) % #says + 1] } }
    return p
  end
end

describe("aigc.strategy at its edges", function ()
  local srv, client

  devserver.fixture(_ENV, function (s, c) srv, client = s, c end)

  describe("vote compares answers by value", function ()
    it("a JSON reply votes the same whatever the order of its keys", function ()
      local win, cands = strategy.vote { client = client, n = 3, params = "Answer in JSON.",
        vary = saying { '{"a": 1, "b": 2}', '{"b": 2, "a": 1}', '{"a":1,"b":2.0}' } }
      assert.equal(3, win.count)
      assert.equal(3, win.total)
      assert.equal(1, #win.tally)
      assert.equal(1, win.answer.a)
      assert.equal(2, cands[2].answer.b)
    end)

    it("a reasoning model's JSON reply votes by its value after its leading <think> block", function ()
      -- (read as text, the last line of each: "}" won, two votes of three)
      local win, cands = strategy.vote { client = client, n = 3, params = "Answer in JSON.",
        vary = saying { '<think>\nKeys a, b.\n</think>\n{\n  "a": 1,\n  "b": 2\n}',
                        '<think>b, a</think>{"b": 2, "a": 1}', '<think>\nJust a.\n</think>\n\n{\n  "a": 3\n}' } }
      assert.equal(2, win.count)
      assert.equal(3, win.total)
      assert.same({ a = 1, b = 2 }, win.answer)
      assert.same({ a = 3 }, cands[3].answer)
      -- a plain answer after the block is its last line, as without one
      local win2 = strategy.vote { client = client, n = 2, params = "Hello",
        vary = saying { "<think>\n5? No.\n</think>\nThe answer is 4.", "The answer is 4" } }
      assert.equal(2, win2.count)
      assert.equal("the answer is 4", win2.answer)
    end)

    it("a table an extract returns votes the same whatever the order its keys were set in", function ()
      local keys, calls = { "k1", "k2", "k3" }, 0
      local win = strategy.vote { client = client, n = 2, params = "Hello",
        extract = function ()
          -- (the keys set in another order: Lua's iteration order, and so
          -- JSON text encoded from it, follows the order for these keys)
          calls = calls + 1
          local t = {}
          if calls == 1 then for i = 1, 3 do t[keys[i]] = i end else for i = 3, 1, -1 do t[keys[i]] = i + 0.0 end end
          return t
        end }
      assert.equal(2, win.count)
      assert.same({ k1 = 1, k2 = 2, k3 = 3 }, win.answer)
    end)

    it("large integers stay apart (2^60 and 2^60 + 1 are two answers; before Lua 5.3, 2^52 and 2^52 + 1)", function ()
      local tointeger = math.tointeger   -- luacheck: ignore 143
      local calls, big = 0, tointeger and tointeger(2 ^ 60) or 2 ^ 52
      local win = strategy.vote { client = client, n = 3, params = "Hello",
        extract = function () calls = calls + 1; return calls == 2 and big or big + 1 end }
      assert.equal(big + 1, win.answer)
      assert.equal(2, win.count)
      assert.equal(2, #win.tally)
    end)

    it("a table that holds itself is an answer too (no endless walk)", function ()
      local loop = { name = "loop" }
      loop.a, loop.b, loop.c = loop, loop, loop
      local win = strategy.vote { client = client, n = 2, params = "Hello", extract = function () return loop end }
      assert.equal(2, win.count)
      assert.equal(loop, win.answer)
    end)

    it("a structured reply votes by its parsed value, not its text's key order", function ()
      local s = scripted.start {
        scripted.chat { content = '{"city": "Paris", "country": "France"}' },
        scripted.chat { content = '{"country": "France", "city": "Paris"}' },
        scripted.chat { content = '{"country":"France","city":"Paris"}' },
      }
      local c = aigc.client { base_url = s.base_url, api_key = "k", max_retries = 0 }
      local win, cands = strategy.vote { client = c, n = 3, params = { messages = { { role = "user",
        content = "Where?" } }, schema = { type = "object", properties = { city = { type = "string" },
        country = { type = "string" } } } } }
      c:close()
      s.finish()
      assert.equal(3, #cands)
      assert.equal(3, win.count)
      assert.equal("Paris", win.answer.city)
    end)

    it("a NaN answer casts no vote and says why", function ()
      local nan = 0 / 0
      local win, cands = strategy.vote { client = client, n = 3, params = "Hello",
        vary = saying { "x", "y", "4" },
        extract = function (text) if text == "4" then return 4 end return nan end }
      assert.equal(4, win.answer)
      assert.equal(1, win.count)
      assert.equal(1, win.total)
      assert.equal(1, #win.tally)
      assert.equal("the answer is NaN", cands[1].answer_error)
      assert.is_nil(cands[1].answer)
      assert.is_nil(cands[3].answer_error)
      -- every answer NaN: no answer at all
      local none, err = strategy.vote { client = client, n = 2, params = "Hello",
        extract = function () return nan end }
      assert.is_nil(none)
      assert.equal("parse", err.kind)
    end)
  end)

  describe("the rank judge's reply", function ()
    -- best_of over n candidates that all say "Same.", the judge replying `verdict`.
    local function judged (n, verdict)
      local replies = {}
      for i = 1, n do replies[i] = scripted.chat { content = "Same." } end
      replies[n + 1] = scripted.chat { content = verdict }
      local s = scripted.start(replies)
      local c = aigc.client { base_url = s.base_url, api_key = "k", max_retries = 0 }
      local best, err = strategy.best_of { client = c, n = n, params = "Name a colour.", judge = { prompt = "Best?" } }
      c:close()
      s.finish()
      return best, err
    end

    it("is the candidate named after its verdict, not the first it mentions", function ()
      assert.equal(2, judged(3, "Candidates 1 and 2 are fine, I prefer 2.").index)
      assert.equal(3, judged(3, "Candidate 1 is good, but the best is candidate 3.").index)
      assert.equal(2, judged(3, "Candidate 1: terse.\nCandidate 2: vivid.\nCandidate 3: dull.\nAnswer: 2").index)
      assert.equal(2, judged(3, "Best candidate: 2 (candidate 1 is close)").index)
      assert.equal(2, judged(3, "Answer: 2 (candidate 1 has a typo)").index)
      assert.equal(2, judged(3, "I prefer 2 over candidate 1.").index)
      -- a reply without a verdict word: the candidate it names first, as before
      assert.equal(2, judged(3, "Of the 3 candidates, candidate 2 is the most vivid.").index)
      assert.equal(3, judged(3, "3").index)
      local none, err = judged(2, "Answer: 7")
      assert.is_nil(none)
      assert.equal("parse", err.kind)
    end)

    it("of a reasoning model is read after its leading <think> block (the verdict, not the weighing)", function ()
      local verdict = "<think>\nCandidate 1 is too short. I prefer 2 at first, but 3 is more vivid.\n</think>\n\n3"
      assert.equal(3, judged(3, verdict).index)
      assert.equal(1, judged(2, "<think>Candidate 2 is the best? No.</think>\n1").index)
      -- scores: "Maybe 6/10" is the judge thinking, 8 its answer
      local s = scripted.start { scripted.chat { content = "Red." }, scripted.chat { content = "Blue." },
        scripted.chat { content = "<think>\nShort. Maybe 6/10? It is right, though.\n</think>\n8/10" },
        scripted.chat { content = "<think>2/10 at most... no, it is fine.</think> 7" },
        -- route's classifier: the label after the block
        scripted.chat { content = "<think>Not about billing: orders.</think>\norders" } }
      local c = aigc.client { base_url = s.base_url, api_key = "k", max_retries = 0 }
      local win, cands = strategy.best_of { client = c, n = 2, params = "Name a colour.", judge = { mode = "score" } }
      local routes = { orders = function () return "o" end, billing = function () return "b" end }
      local out = strategy.route { client = c, input = "Where is my parcel?", classify = { client = c },
                                   routes = routes }
      c:close()
      s.finish()
      assert.equal(8, cands[1].score)
      assert.equal("<think>\nShort. Maybe 6/10? It is right, though.\n</think>\n8/10", cands[1].judge.text)
      assert.equal(7, cands[2].score)
      assert.equal(1, win.index)
      assert.equal("o", out)
      -- (the runner's judge assertions read a score as these judges do)
      assert.equal(9, require("aigc.judge").score_of("<think>6/10? 4/10?</think>\n9/10"))
    end)
    it("refine's critic that is a reasoning model says NO ISSUES after its <think> block: done", function ()
      -- (read from the block's start, the critique asked for a revision every round)
      local s = scripted.start { scripted.chat { content = "Paris." },
                                 scripted.chat { content = "<think>\nIs it right? Yes.\n</think>\n\nNO ISSUES" } }
      local c = aigc.client { base_url = s.base_url, api_key = "k", max_retries = 0 }
      local final, steps = strategy.refine { client = c, params = "Capital of France?" }
      c:close()
      s.finish()
      assert.is_table(final, tostring(steps))
      assert.equal("Paris.", final.text)
      assert.equal(0, final.rounds)
      assert.equal(2, #steps)
    end)

    it("refine with a reasoning model: the critic, the revision's turn and the text get the answer, not the thinking",
       function ()
      -- (the draft's <think> block went to the critic as the answer, came back as the assistant's
      -- turn, and was final.text: a critique of the thinking, the thinking shown as the answer)
      local s = scripted.start {
        scripted.chat { content = "<think>\nLyon? No, Paris.\n</think>\n\nParis." },
        scripted.chat { content = "<think>Short.</think>\nSay it in a sentence." },
        scripted.chat { content = "<think>A sentence, then.</think>The capital of France is Paris." },
        scripted.chat { content = "NO ISSUES" } }
      local c = aigc.client { base_url = s.base_url, api_key = "k", max_retries = 0 }
      local final, steps = strategy.refine { client = c, params = "Capital of France?" }
      c:close()
      local bodies = s.finish()
      assert.is_table(final, tostring(steps))
      assert.equal("The capital of France is Paris.", final.text)
      assert.equal(1, final.rounds)
      assert.same({ "Paris.", "Say it in a sentence.", "The capital of France is Paris.", "NO ISSUES" },
                  { steps[1].text, steps[2].text, steps[3].text, steps[4].text })
      assert.same({ "Lyon? No, Paris.", "Short.", "A sentence, then." },
                  { steps[1].thinking, steps[2].thinking, steps[3].thinking })
      assert.matches("<think>", steps[1].res.text, 1, true)   -- (the reply as it came)
      local critic_prompt = bodies[2].messages[#bodies[2].messages].content
      assert.matches("Answer:\nParis.", critic_prompt, 1, true)
      assert.is_nil(critic_prompt:find("Lyon", 1, true))
      local turns = bodies[3].messages
      assert.equal("Paris.", turns[#turns - 1].content)
      assert.matches("Critique:\nSay it in a sentence.$", turns[#turns].content)
      assert.is_nil(bodies[4].messages[#bodies[4].messages].content:find("A sentence, then", 1, true))
    end)
  end)

  describe("usage_total: what the whole strategy cost", function ()
    -- The strategy's usage_total against the client's own totals (the
    -- client made no other call).
    local function same_as_client (t, requests)
      local u = client:usage()
      assert.equal(requests, t.requests)
      assert.equal(u.requests, t.requests)
      assert.is_true(t.total_tokens > 0)
      assert.equal(u.prompt_tokens, t.prompt_tokens)
      assert.equal(u.completion_tokens, t.completion_tokens)
      assert.equal(u.total_tokens, t.total_tokens)
    end

    it("best_of: the candidates and the rank judge", function ()
      local best, cands = strategy.best_of { client = client, n = 3, params = "Tell me a joke", judge = {} }
      same_as_client(best.usage_total, 4)
      assert.equal(best.usage_total, cands.usage_total)
      local own = 0
      for _, c in ipairs(cands) do own = own + c.res.usage.total_tokens end
      assert.equal(own + cands.judge.res.usage.total_tokens, best.usage_total.total_tokens)
    end)

    it("best_of: the candidates and a score judge per candidate", function ()
      local best = strategy.best_of { client = client, n = 3, params = "Tell me a joke", judge = { mode = "score" } }
      same_as_client(best.usage_total, 6)
    end)

    it("best_of that fails: the candidates, and the judge whose reply named none", function ()
      local none, err, cands = strategy.best_of { client = client, n = 2, params = "Hello",
        judge = { params = { stop = { "1", "2" } } } }
      assert.is_nil(none)
      assert.equal("parse", err.kind)
      same_as_client(cands.usage_total, 3)
      local _, _, failed = strategy.best_of { client = client, n = 2, judge = {},
        params = { messages = { { role = "user", content = "Hello" } }, headers = fault "status=503" } }
      assert.equal(2, failed.usage_total.requests)
      assert.equal(0, failed.usage_total.total_tokens)
    end)

    it("vote with use_n on a server that ignores n: one request, then the missing ones", function ()
      local win, cands = strategy.vote { client = client, n = 4, use_n = true,
        params = { messages = { { role = "user", content = "What is 2 + 2?" } }, headers = fault "ignore-n" } }
      assert.equal(1, cands.use_n_short)
      same_as_client(win.usage_total, 4)
      local shared = strategy.vote { client = client, n = 3, use_n = true, params = "What is 2 + 2?" }
      assert.equal(1, shared.usage_total.requests)   -- (one reply with three choices, counted once)
    end)

    it("refine: the draft, every critique and revision", function ()
      local final, steps = strategy.refine { client = client, params = "Hello", rounds = 1,
        critique = function () return "Repeat after me: 1. Too curt." end }
      same_as_client(final.usage_total, 3)
      assert.equal(final.usage_total, steps.usage_total)
    end)

    it("fallback: the failed attempts and the success", function ()
      local res, attempts = strategy.fallback { client = client, params = "Hello",
        { model = "fault:status=500" }, { model = "aigc-dev" } }
      assert.equal(2, res.attempt)
      same_as_client(res.usage_total, 2)
      assert.equal(res.usage_total, attempts.usage_total)
    end)

    it("race: every entry started, the canceled ones too", function ()
      local res, outcomes = strategy.race { client = client, params = "Hello",
        { model = "fault:delay=3000" }, { model = "aigc-dev" } }
      assert.equal(2, res.attempt)
      assert.equal(2, res.usage_total.requests)
      assert.equal(res.usage.total_tokens, res.usage_total.total_tokens)
      assert.equal(res.usage_total, outcomes.usage_total)
    end)

    it("a response cache hit: its tokens count, and it is a cache hit", function ()
      local cached = aigc.client { base_url = srv.base_url, max_retries = 0, cache = true }
      local first = strategy.vote { client = cached, n = 2, params = "What is 2 + 2?" }
      local again = strategy.vote { client = cached, n = 2, params = "What is 2 + 2?" }
      cached:close()
      assert.equal(0, first.usage_total.cache_hits)
      assert.equal(2, again.usage_total.cache_hits)
      assert.equal(2, again.usage_total.requests)
      assert.equal(first.usage_total.total_tokens, again.usage_total.total_tokens)
      assert.is_true(again.usage_total.total_tokens > 0)
    end)

    it("route: the classifier and the route's call", function ()
      local _, info = strategy.route { client = client, input = "Track my orders", classify = { client = client },
        routes = { orders = { system = "You handle orders." }, other = { system = "Hi." } } }
      assert.equal("orders", info.route)
      same_as_client(info.usage_total, 2)
    end)
  end)

  describe("inside an aigc callback, outside a task", function ()
    -- `fn` run from a chat_async's on_done; what it returned (or raised).
    local function in_on_done (fn)
      local got
      client:chat_async { messages = { { role = "user", content = "Hi" } }, on_done = function ()
        got = table.pack and table.pack(pcall(fn)) or { pcall(fn) }
      end }
      while client:step(0.05) > 0 do end
      return got
    end

    it("race runs, as vote and best_of do there", function ()
      local got = in_on_done(function ()
        return strategy.race { client = client, params = "Hello",
                               { model = "fault:delay=3000" }, { model = "aigc-dev" } }
      end)
      assert.is_true(got[1], tostring(got[2]))
      assert.equal(2, got[2].attempt)
      assert.equal("Hello! How can I help you today?", got[2].text)
      assert.same({ "canceled", "won" }, { got[3][1].status, got[3][2].status })
      local voted = in_on_done(function ()
        return strategy.vote { client = client, n = 2, params = "What is 2 + 2?" }
      end)
      assert.is_true(voted[1], tostring(voted[2]))
      assert.equal(0, client:active())
    end)

    it("race across two clients, every entry failing but one", function ()
      local other = aigc.client { base_url = srv.base_url, max_retries = 0 }
      local got = in_on_done(function ()
        return strategy.race { params = "Hello", { client = client, model = "fault:status=500" },
                               { client = other, model = "fault:delay=200" } }
      end)
      other:close()
      assert.is_true(got[1], tostring(got[2]))
      assert.equal(2, got[2].attempt)
      assert.equal("failed", got[3][1].status)
      assert.equal(500, got[3][1].err.status)
      local all = in_on_done(function ()
        return strategy.race { client = client, params = "Hello",
                               { model = "fault:status=500" }, { model = "fault:status=503" } }
      end)
      assert.is_true(all[1], tostring(all[2]))
      assert.is_nil(all[2])
      assert.equal("http", all[3].kind)
    end)
  end)

  describe("replies with long runs of spaces or dots (a model's degenerate output)", function ()
    -- (the lazy patterns these were read with took time quadratic in the
    -- run: about 50 s for 100 kB, hours for these)
    local SPACES, DOTS = string.rep(" ", 200000), string.rep(".", 200000)

    it("vote's default_extract reads the last line", function ()
      assert.equal("4 " .. SPACES .. "x", strategy.default_extract("Thinking.\n  4 " .. SPACES .. "x!  "))
      assert.equal("4" .. DOTS .. "x", strategy.default_extract("4" .. DOTS .. "x..."))
      assert.equal("the answer is 4", strategy.default_extract("Let me think.\nThe answer is 4."))
    end)

    it("a judge's score and rank are read from a reply of many digits or verdict words", function ()
      local judge = require "aigc.judge"
      assert.equal(8, judge.score_of(string.rep("9", 5000) .. " Score: 8/10"))
      assert.is_nil(judge.score_of(string.rep("7", 5000)))
      assert.equal(9, judge.score_of("9"))
      local ok = { { index = 1 }, { index = 2 } }
      assert.equal(2, judge.choice_of(string.rep("best ", 20000) .. "2", ok).index)
      assert.equal(1, judge.choice_of(string.rep("1", 20000) .. " Answer: 1", ok).index)
    end)

    it("a judge's choice is read from a reply with a long run after 'candidate'", function ()
      -- (its "Candidate N" pattern backtracked its two runs of white space against each other:
      -- 7 s for 20 kB, minutes for this; a child with a hang's bound, milliseconds now)
      local r = require("luachild").run([[
        local ok = { { index = 1 }, { index = 2 } }
        local choice_of = require("aigc.judge").choice_of
        io.write(choice_of("Candidate" .. string.rep(" ", 300000) .. "x. So: 2", ok).index, " ",
                 choice_of("candidate" .. string.rep(" ", 300000) .. "# 1", ok).index)
      ]], { timeout = 60 })
      assert.equal(0, r.status, r.stderr)
      assert.equal("2 1", r.stdout)
    end)

    it("a judge's score is read from a reply of many 20-digit numbers", function ()
      -- (its "N/D" pattern once backtracked over each run of digits from each of
      -- its digits: 5 s a MB. The cost is measured in bench/judge_bench.lua, a
      -- ratio against a reply of words: a test asserts no time)
      local judge = require "aigc.judge"
      assert.equal(8, judge.score_of(string.rep("12345678901234567890 ", 2000) .. "8/10"))
      assert.equal(7.5, judge.score_of("1.5.7.5/10"))   -- (as the pattern read it: the last 7.5)
      assert.equal(4, judge.score_of("about 2 out 4 out of 10"))
      assert.equal(3, judge.score_of("12345678901234567890123 3 out of 10"))
    end)

    it("route's model classifier reads the label", function ()
      local s = scripted.start { scripted.chat { content = "orders" .. SPACES .. "please" },
                                 scripted.chat { content = "  Orders.!  " } }
      local c = aigc.client { base_url = s.base_url, api_key = "k", max_retries = 0 }
      local routes = { orders = function () return "o" end, other = function () return "x" end }
      local out, info = strategy.route { client = c, input = "Where is my parcel?", classify = { client = c },
                                         routes = routes }
      local out2 = strategy.route { client = c, input = "Where is my parcel?", classify = { client = c },
                                    routes = routes }
      c:close()
      s.finish()
      assert.equal("o", out)
      assert.equal("orders", info.route)
      assert.equal("o", out2)
    end)
  end)
end)
