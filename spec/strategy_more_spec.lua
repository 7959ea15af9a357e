-- aigc.strategy: servers that do not do what the request asked (n ignored,
-- candidates cut short) and what the strategies make of it.
local strategy = require "aigc.strategy"
local devserver = require "devserver"
local portable = require "portable"

portable.warn_on()

local function fault (spec) return { ["x-aigc-fault"] = spec } end

describe("aigc.strategy against servers that fall short", function ()
  local srv, client

  devserver.fixture(_ENV, function (s, c) srv, client = s, c end)

  describe("use_n on a server that ignores n (one choice)", function ()
    it("vote asks for the missing candidates one by one", function ()
      local win, cands = strategy.vote { client = client, n = 5, use_n = true,
        params = { messages = { { role = "user", content = "What is 2 + 2?" } }, headers = fault "ignore-n" },
        extract = function (text) return text:match("(%d+)%.?$") end }
      assert.equal(5, #cands)
      for _, c in ipairs(cands) do assert.is_nil(c.err) end
      assert.equal(5, win.total)
      assert.equal(5, win.count)
      assert.equal(1, cands.use_n_short)
      local reqs = srv:requests()
      assert.equal(5, #reqs)
      assert.equal(5, reqs[1].body_json.n)
      local seeds = {}
      for i = 2, 5 do
        assert.is_nil(reqs[i].body_json.n)
        seeds[#seeds + 1] = reqs[i].body_json.seed
      end
      table.sort(seeds)
      assert.same({ 2, 3, 4, 5 }, seeds)
    end)

    it("best_of scores every candidate, not only the one choice", function ()
      local best, cands = strategy.best_of { client = client, n = 3, use_n = true,
        params = { messages = { { role = "user", content = "Tell me a joke" } }, headers = fault "ignore-n" },
        score = function (_, _, c) return c.index end }
      assert.equal(3, best.index)
      assert.same({ 1, 2, 3 }, { cands[1].score, cands[2].score, cands[3].score })
      -- a server that honours n is asked once
      srv:reset()
      local _, c2 = strategy.best_of { client = client, n = 3, use_n = true, params = "Tell me a joke",
        score = function () return 0 end }
      assert.equal(1, #srv:requests())
      assert.is_nil(c2.use_n_short)
    end)
  end)

  describe("vote with replies cut short", function ()
    it("a reply cut by max_tokens casts no vote and says why", function ()
      local win, cands = strategy.vote { client = client, n = 5,
        params = { messages = { { role = "user", content = "What is 17 + 25?" } } },
        vary = function (i, p) if i <= 3 then p.max_tokens = 4 end return p end,
        extract = function (text) return text:match("(%d+)%D*$") end }
      assert.equal("42", win.answer)
      assert.equal(2, win.total)
      assert.equal(2, win.count)
      for i = 1, 3 do
        assert.equal("length", cands[i].incomplete)
        assert.is_nil(cands[i].answer)
      end
      assert.is_nil(cands[4].incomplete)
      assert.equal("42", cands[5].answer)
    end)

    it("all replies cut: an error of kind incomplete", function ()
      local win, err, cands = strategy.vote { client = client, n = 2,
        params = { messages = { { role = "user", content = "What is 17 + 25?" } }, max_tokens = 2 } }
      assert.is_nil(win)
      assert.equal("incomplete", err.kind)
      assert.equal("length", err.reason)
      assert.equal(2, #cands)
    end)

    it("Responses params: an incomplete reply casts no vote", function ()
      local win, err = strategy.vote { client = client, n = 2,
        params = { input = "What is 17 + 25?", max_output_tokens = 16, headers = fault "incomplete" } }
      assert.is_nil(win)
      assert.equal("incomplete", err.kind)
    end)
  end)

  describe("use_n with a schema", function ()
    local REPLY = { type = "object", properties = { reply = { type = "string" } }, required = { "reply" },
                    additionalProperties = false }
    local function spec (seed, fn)
      return { client = client, n = 3, use_n = true, score = fn,
        params = { messages = { { role = "user", content = "Tell me a joke" } }, schema = REPLY, seed = seed,
                   max_tokens = 10 } }
    end

    it("a choice cut short is a failed candidate, not one without parsed", function ()
      -- (seed 1: choices 1 and 3 fit in 10 tokens, choice 2 is cut)
      local seen = {}
      local best, cands = strategy.best_of(spec(1, function (_, _, c)
        seen[#seen + 1] = c.index
        return #c.parsed.reply
      end))
      assert.same({ 1, 3 }, seen)
      assert.equal("incomplete", cands[2].err.kind)
      assert.equal("length", cands[2].err.reason)
      assert.is_nil(cands[1].err)
      assert.is_string(best.parsed.reply)
      assert.equal(1, #srv:requests())
    end)

    it("the first choice cut short does not fail the others", function ()
      -- (seed 9: choice 1 is cut, choices 2 and 3 fit)
      local best, cands = strategy.best_of(spec(9, function (_, _, c) return c.index end))
      assert.equal("incomplete", cands[1].err.kind)
      assert.is_nil(cands[2].err)
      assert.is_nil(cands[3].err)
      assert.equal(3, best.index)
      assert.is_string(best.parsed.reply)
    end)
  end)

  describe("the judge's score", function ()
    local judge = require "aigc.judge"

    it("a score on another scale is brought to 10, one off the scale is none", function ()
      assert.equal(8.5, judge.score_of("85/100"))
      assert.equal(8, judge.score_of("4 out of 5"))
      assert.equal(9, judge.score_of("9/10"))
      assert.equal(7, judge.score_of("Score: 7 (out of 10)"))
      assert.is_nil(judge.score_of("85"))
      assert.is_nil(judge.score_of("-3"))
      assert.is_nil(judge.score_of("1/0"))
      assert.equal(0, judge.score_of("0"))
      -- so a judge answering out of 100 does not beat one answering 9/10
      assert.is_true(judge.score_of("9/10") > judge.score_of("85/100"))
    end)
  end)

  describe("an error of the caller's vary", function ()
    it("leaves no candidate request running", function ()
      local ok, msg = pcall(strategy.best_of, { client = client, n = 4, params = "Tell me a joke",
        score = function () return 0 end,
        vary = function (i, p) if i == 3 then error("vary failed") end return p end })
      assert.is_false(ok)
      assert.matches("vary failed", msg)
      assert.equal(0, client:active())
    end)
  end)

  describe("best_of with replies cut short", function ()
    local STORY = "Tell me a story about a robot that learns to paint."

    it("a cut reply does not compete with whole ones, and says why", function ()
      local best, cands = strategy.best_of { client = client, n = 4, params = STORY,
        vary = function (i, p) if i <= 2 then p.max_tokens = 12 end return p end,
        score = function (text) return -#text end }   -- the shortest
      assert.equal("length", cands[1].incomplete)
      assert.equal("length", cands[2].incomplete)
      assert.is_nil(cands[1].score)
      assert.is_nil(cands[3].incomplete)
      assert.is_true(best.index == 3 or best.index == 4)
      assert.equal("stop", best.res.choices[1].finish_reason)
    end)

    it("when every reply was cut, the best of them still wins", function ()
      local best, cands = strategy.best_of { client = client, n = 2,
        params = { messages = { { role = "user", content = STORY } }, max_tokens = 12 },
        score = function (_, _, c) return c.index end }
      assert.equal(2, best.index)
      assert.equal("length", cands[1].incomplete)
      assert.equal("length", best.incomplete)
    end)
  end)

  describe("refine's default stop", function ()
    it("a critique that lists a problem before 'no issues' is revised", function ()
      local final, steps = strategy.refine { client = client, params = "Hello", rounds = 1,
        critique = function () return "Repeat after me: 1. The greeting is curt. Otherwise no issues." end }
      assert.equal(1, final.rounds)
      assert.equal("revision", steps[3].stage)
    end)

    it("a critique that opens with NO ISSUES (or LGTM) stops", function ()
      for _, said in ipairs { "**NO ISSUES**", "No issues found.", "LGTM" } do
        local final, steps = strategy.refine { client = client, params = "Hello", rounds = 2,
          critique = function () return "Repeat after me: " .. said end }
        assert.equal(0, final.rounds)
        assert.equal(2, #steps)
      end
    end)
  end)

  describe("best_of with one candidate left", function ()
    it("the rank judge is not asked: its failure does not lose the answer", function ()
      local best, cands = strategy.best_of { client = client, n = 2,
        params = { messages = { { role = "user", content = "Hello" } }, headers = fault "status=500,times=1" },
        judge = { params = { headers = fault "status=503" } } }
      assert.is_table(best)
      assert.is_nil(best.err)
      assert.equal(1, best.score)
      assert.is_nil(cands.judge)
      assert.equal(2, #srv:requests())
    end)
  end)

  describe("a structured candidate whose value is false", function ()
    it("keeps parsed = false", function ()
      local falses = 0
      local _, cands = strategy.best_of { client = client, n = 3,
        params = { messages = { { role = "user", content = "Is it false?" } }, schema = { enum = { false, true } } },
        score = function (text, _, c)
          assert.equal(text == "true", c.parsed)
          if text == "false" then falses = falses + 1 end
          return 0
        end }
      assert.equal(3, #cands)
      assert.is_true(falses > 0)   -- (the seeds pick false for some)
    end)
  end)
end)
