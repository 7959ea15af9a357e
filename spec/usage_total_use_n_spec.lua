-- A strategy's usage_total counts requests, as the README says ("summed
-- over every call it made"): one request with n = 3 (use_n) is 1 request,
-- whatever its choices. With a reply that carried no usage (llama.cpp,
-- some proxies) and a choice that was no object, each failed candidate's
-- error counted as a request of its own: 3 choices, 1 request, and
-- usage_total.requests said 2 (3 with two bad choices).
local aigc = require "aigc"
local strategy = require "aigc.strategy"
local scripted = require "scripted"
local cjson = require "cjson"

local function reply (usage)
  local ok = function (i, text)
    return { index = i, message = { role = "assistant", content = text }, finish_reason = "stop" }
  end
  return "json " .. cjson.encode { id = "c", object = "chat.completion", model = "m", created = 1,
    choices = { ok(0, "one"), 5, cjson.null, ok(3, "four!") }, usage = usage }
end

local PARAMS = { model = "m", messages = { { role = "user", content = "x" } } }

describe("a strategy's usage_total with use_n", function ()
  local CASES = { { "without usage", nil, 0 }, { "with usage", { prompt_tokens = 1, completion_tokens = 3 }, 4 } }
  for _, case in ipairs(CASES) do
    it("one request whose reply came " .. case[1] .. " and had choices that were no object: 1 request", function ()
      local s = scripted.start { reply(case[2]), reply(case[2]) }
      local c = aigc.client { base_url = s.base_url, api_key = "k", max_retries = 0 }
      local best, cands = strategy.best_of { client = c, n = 4, use_n = true, params = PARAMS,
                                             score = function (t) return #t end }
      local win, votes = strategy.vote { client = c, n = 4, use_n = true, params = PARAMS }
      c:close()
      assert.equal(2, #s:finish())   -- (one request each)
      assert.equal(4, best.index)
      assert.equal("parse", cands[2].err.kind)
      assert.equal("parse", cands[3].err.kind)
      assert.equal(1, cands.usage_total.requests)
      assert.equal(1, best.usage_total.requests)
      assert.equal(case[3], cands.usage_total.total_tokens)
      assert.is_table(win)
      assert.equal(1, votes.usage_total.requests)
    end)
  end
end)
