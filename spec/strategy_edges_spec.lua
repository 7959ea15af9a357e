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
      -- a reply without a verdict word: the candidate it names first, as before
      assert.equal(2, judged(3, "Of the 3 candidates, candidate 2 is the most vivid.").index)
      assert.equal(3, judged(3, "3").index)
      local none, err = judged(2, "Answer: 7")
      assert.is_nil(none)
      assert.equal("parse", err.kind)
    end)
  end)
end)
