-- A run's `strategy = { best_of = N, judge = "criteria" }`: the judge given as
-- strategy.best_of takes it (`judge = { prompt = "..." }`) was not checked,
-- and every case failed at run time with "the call failed: bad argument #1 to
-- 'best_of' (spec.judge.prompt: string expected, got table)"; a judge beside
-- `vote`, or `best_of` and `vote` both, was dropped unseen (one count ran).
-- Misuse of run now, raised before anything is sent.
local devserver = require "devserver"
local runner = require "aigc.runner"

describe("a run's strategy table", function ()
  local srv, client
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { api_key = "sk-fake-judge" })

  local function run (strategy)
    return runner.run { client = client, strategy = strategy,
                        cases = { { id = "a", prompt = "A one-line story" }, { id = "b", prompt = "Another" } } }
  end

  it("refuses a judge that is not the criteria's text, or one without best_of, naming it", function ()
    assert.has_error(function () run { best_of = 2, judge = { prompt = "Most vivid?" } } end,
      "bad argument #1 to 'run' (spec.strategy.judge: a string (the judge's criteria) expected, got table)")
    assert.has_error(function () run { vote = 3, judge = "Most vivid?" } end,
      "bad argument #1 to 'run' (spec.strategy.judge: goes with best_of)")
    assert.has_error(function () run { best_of = 2, vote = 3 } end,
      "bad argument #1 to 'run' (spec.strategy: best_of and vote exclude each other)")
    assert.equal(0, srv:stats().requests_total)
  end)

  it("runs a judge given as its criteria", function ()
    local summary = assert(run { best_of = 2, judge = "Which is the most vivid?" })
    assert.equal(2, summary.ok)
    local asked = false
    for _, r in ipairs(srv:requests()) do
      local m = r.body_json and r.body_json.messages
      if m and m[#m].content:find("Which is the most vivid?", 1, true) then asked = true end
    end
    assert.is_true(asked)
  end)
end)
