-- A prompt workflow probed as a person prototyping one would use it, then
-- attacked: candidates, strategies, structured output, dataset runs, the
-- Batch API. Each test here is a defect found by probing (it failed before
-- its fix).
local aigc = require "aigc"
local devserver = require "devserver"
local oneshot = require "oneshot"
local runner = require "aigc.runner"

describe("a dataset run", function ()
  local client
  devserver.fixture(_ENV, function (_, c) client = c end)

  -- A strategy function that returned no table (42) reached the rate
  -- limiter's `res.headers`: the whole run stopped with "attempt to index a
  -- number value (local 'res')" from ratelimit.lua, no line for any case; one
  -- that returned nothing failed its case with "the call failed: nil"; a text
  -- that is not UTF-8 stopped the run from the result line's encoder.
  it("fails only the case whose strategy function returns no result table, naming what it returned", function ()
    local cases = {}
    for i, id in ipairs { "good", "number", "nothing", "latin1", "also_good" } do
      cases[i] = { id = id, prompt = "Repeat after me: fine" }
    end
    local out = os.tmpname()
    os.remove(out)
    finally(function () os.remove(out) end)
    local summary = assert(runner.run {
      client = client, cases = cases, concurrency = 1, out = out,
      strategy = function (c, params, case)
        if case.id == "number" then return 42 end
        if case.id == "nothing" then return end
        if case.id == "latin1" then return { text = "caf" .. string.char(233) } end
        return c:chat(params)
      end,
    })
    assert.equal(5, summary.total)
    assert.equal(2, summary.ok)
    assert.equal("fine", summary.results.good.text)
    assert.equal("fine", summary.results.also_good.text)
    assert.is_false(summary.results.number.ok)
    assert.equal("the strategy returned 42; a result table, or nil and an error, expected",
                 summary.results.number.error.message)
    assert.equal("the strategy returned nil and no error", summary.results.nothing.error.message)
    assert.equal("the strategy returned a text JSON cannot hold (invalid UTF-8 at byte 4 of a string)",
                 summary.results.latin1.error.message)
    assert.equal(1, summary.results.number.attempts)   -- (not retried: it is the script's, not the server's)
    local lines = 0
    for _ in io.lines(out) do lines = lines + 1 end
    assert.equal(5, lines)
  end)
end)

describe("a dataset run whose strategy raises or returns an error that is not a string", function ()
  local client
  devserver.fixture(_ENV, function (_, c) client = c end)

  -- A strategy that raised a table showed "the call failed: table: 0x55...";
  -- one that returned nil and a table without a message, "table: 0x55...".
  -- Worded now as every aigc callback error is (util.value_text).
  it("words it as aigc words a callback's error value, never an address", function ()
    local shown = setmetatable({}, { __tostring = function () return "the npc left" end,
                                     __index = { message = "an error" } })
    local values = {
      raised_message = function () error({ message = "the door is locked" }) end,
      raised_tostring = function () error(shown) end,
      raised_bare = function () error({ code = 5 }) end,
      returned_bare = function () return nil, { code = 5 } end,
      returned_tostring = function () return nil, shown end,
      raised_string = function () error("no way") end,
    }
    local cases = {}
    for id in pairs(values) do cases[#cases + 1] = { id = id, prompt = "hi" } end
    table.sort(cases, function (a, b) return a.id < b.id end)
    local summary = assert(runner.run { client = client, cases = cases,
      strategy = function (_, _, case) return values[case.id]() end })
    local want = {
      raised_message = "the call failed: the door is locked", raised_tostring = "the call failed: the npc left",
      raised_bare = "the call failed: a table error value without a message",
      returned_bare = "a table error value without a message", returned_tostring = "the npc left",
      raised_string = "the call failed: no way",
    }
    for id, message in pairs(want) do
      assert.is_false(summary.results[id].ok, id)
      assert.equal(message, summary.results[id].error.message, id)
    end
  end)

  -- An error value whose __index raises, returned by a strategy, was read
  -- by the rate limiter and the retry: runner.run raised "gotcha", the
  -- whole run stopped, no line written. It fails its case alone now; an
  -- error table of the script's own keeps its kind and status (a 503 is
  -- retried, as a server's).
  it("fails only its case when that value's __index raises; its own status still retries", function ()
    local hostile = setmetatable({}, { __index = function () error("gotcha") end })
    local tries = 0
    local summary = assert(runner.run { client = client, max_attempts = 2, concurrency = 1,
      cases = { { id = "hostile", prompt = "hi" }, { id = "busy", prompt = "hi" }, { id = "fine", prompt = "hi" } },
      strategy = function (c, params, case)
        if case.id == "hostile" then return nil, hostile end
        if case.id == "busy" then
          tries = tries + 1
          return nil, { kind = "http", status = 503, retry_after = 0, message = "busy" }
        end
        return c:chat(params)
      end })
    assert.equal(1, summary.ok)
    assert.equal("a table error value without a message", summary.results.hostile.error.message)
    assert.equal("error", summary.results.hostile.error.kind)
    assert.equal(1, summary.results.hostile.attempts)
    assert.same({ kind = "http", status = 503, message = "busy" }, summary.results.busy.error)
    assert.equal(2, tries)
  end)
end)

describe("refine", function ()
  local client
  devserver.fixture(_ENV, function (_, c) client = c end)

  -- A revision cut short by max_tokens came back as the final text like any
  -- other, nothing saying so (best_of and vote mark such a reply `incomplete`).
  it("says when its final text was cut short", function ()
    local story = "Tell me a story about a robot that learns to paint"
    local final = assert(aigc.strategy.refine { client = client, rounds = 1,
      params = { messages = { { role = "user", content = story } }, max_tokens = 5 } })
    assert.equal("length", final.incomplete)
    assert.equal(1, final.rounds)
    final = assert(aigc.strategy.refine { client = client, rounds = 1, params = "Repeat after me: done" })
    assert.is_nil(final.incomplete)
  end)
end)

describe("best_of's rank judge", function ()
  -- The judge is asked for "the number of the best candidate only"; one that
  -- answers so on its first line and then gives its reasons, naming the
  -- others, had the candidate named in the reasons chosen: "2\n\nCandidate 1
  -- is too short." made candidate 1, the one it turned down, the winner.
  local function reply (...)
    local choices = {}
    for i, content in ipairs { ... } do
      choices[i] = '{"index":' .. (i - 1) .. ',"message":{"role":"assistant","content":' .. aigc.json.encode(content)
        .. '},"finish_reason":"stop"}'
    end
    return oneshot.http_reply("200 OK", '{"id":"c1","object":"chat.completion","model":"m","choices":['
      .. table.concat(choices, ",") .. ']}')
  end
  local function client (url)
    return aigc.client { base_url = url, api_key = "sk-judge-0123456789", model = "m", max_retries = 0, timeout = 30 }
  end

  -- best_of of two candidates (the second the longer) whose judge replies `verdict`.
  local function best_of_two (verdict)
    local judge = client(oneshot.serve_raw({ reply(verdict) }, finally))
    local c = client(oneshot.serve_raw({ reply("A short one.", "A longer, more vivid one.") }, finally))
    finally(function () judge:close(); c:close() end)
    local best, cands = aigc.strategy.best_of { client = c, n = 2, use_n = true, judge = { client = judge },
                                                params = { messages = { { role = "user", content = "A tale" } } } }
    assert.is_table(best, tostring(cands))
    return best, cands
  end

  it("takes a first line that is the number alone as the answer", function ()
    local best, cands = best_of_two "2\n\nCandidate 1 is too short."
    assert.equal(2, best.index)
    assert.equal("A longer, more vivid one.", best.text)
    assert.equal(1, cands[2].score)
    assert.equal(0, cands[1].score)
  end)

  it("reads the answer in the replies judges give", function ()
    local judge = require "aigc.judge"
    local ok = { { index = 1 }, { index = 2 }, { index = 3 } }
    local cases = {
      ["2\n\nCandidate 1 is too short."] = 2, ["**2**\nCandidate 3 lacks detail"] = 2, ["2.\r\nCandidate 1: no"] = 2,
      ["  3  "] = 3, ["Candidate 2.\nCandidate 1 is too short."] = 2, ["Of the 3 candidates, candidate 2 is best"] = 2,
      ["7\nCandidate 2 is best"] = 2,   -- (no candidate 7: the reasons are read)
      ["1) Candidate 1 is short. 2) Candidate 2 is long. Best: 2"] = 2,
      -- (a degenerate reply, read in linear time)
      [string.rep(" ", 200000) .. "2" .. string.rep(" ", 200000) .. "x"] = 2,
    }
    for text, want in pairs(cases) do
      local c = judge.choice_of(text, ok)
      assert.equal(want, c and c.index, text:sub(1, 80))
    end
  end)

  -- A reply that leads with its answer on the same line as its reasons had
  -- the candidate named in the reasons chosen: "2 is the best, candidate 1
  -- is too short" chose 1, the one the judge turned down.
  it("takes a number the reply leads with as the answer, when its words say so or a verdict word does not", function ()
    local judge = require "aigc.judge"
    local ok = { { index = 1 }, { index = 2 }, { index = 3 } }
    local cases = {
      ["2 is the best, candidate 1 is too short"] = 2, ["**2** is my pick; candidate 3 is close"] = 2,
      ["Candidate 2 is the best, candidate 1 is too short"] = 2, ["3 candidates; 2 was the best"] = 2,
      ["2: candidate 1 is too short"] = 2, ["2 - candidate 1 rambles"] = 2, ["2 (candidate 1 is too short)"] = 2,
      ["2 is better, candidate 1 is too short"] = 2,
      -- a leading number that is not the answer: a list, a negation
      ["1: too short. 2: vivid. Best: 2"] = 2, ["1 is short. 2 is long. Best: 2"] = 2, ["2 is not the best, 1 is"] = 1,
      -- (degenerate replies, read in linear time)
      [string.rep("1 2 3 4 5 6 7 8 9 best ", 50000) .. "3 is best"] = 3,
      [string.rep(string.rep(" ", 199) .. "1" .. string.rep(" ", 199) .. "is best", 1000)] = 1,
    }
    for text, want in pairs(cases) do
      local c = judge.choice_of(text, ok)
      assert.equal(want, c and c.index, text:sub(1, 80))
    end
    -- best_of with such a judge
    local best, cands = best_of_two "2 is the best, candidate 1 is too short"
    assert.equal(2, best.index)
    assert.same({ 0, 1 }, { cands[1].score, cands[2].score })
  end)
end)

-- Runs CODE (with `assertions` = aigc.assertions) in a child Lua, killed if
-- it hangs (the cases below hung for hours on the old code); its stdout.
local function assertions_in_child (code)
  local r = require("luachild").run('local assertions = require "aigc.assertions"\n' .. code, { timeout = 300 })
  assert.equal(0, r.status, r.stderr)
  return r.stdout
end

describe("the is-json and json-schema assertions", function ()
  -- A reply read inside its ```json fence by a lazy pattern anchored at both
  -- ends: a run of blank lines inside the fence (a model's degenerate reply)
  -- took time cubic in its length, 15 s for 2,000 lines, hours for 100,000:
  -- `aigc run` stood still on that case. (In a child, killed if it hangs.)
  it("read a fenced reply of 100,000 blank lines at once, and fenced JSON as before", function ()
    local out = assertions_in_child([[
      local function check (text, a)
        local pass, out = assertions.check({ a or { type = "is-json" } }, text, {})
        return tostring(pass) .. (out[1].reason and ":" .. out[1].reason or "")
      end
      print(check("```json\n" .. string.rep("\n", 100000) .. "x"))
      print(check("```\n" .. string.rep("\n", 100000) .. "```"))
      print(check('```json\n{"a": 1}\n```\n'), check('```JSON \n[1]```'), check('{"a": 1}'), check("```json\n{}"))
      local schema = { properties = { a = { type = "integer" } } }
      print(check('```json\n{"a": "x"}\n```', { type = "json-schema", value = schema }))
    ]])
    assert.equal("false:the reply is not JSON\nfalse:the reply is not JSON\n"
                 .. "true\ttrue\ttrue\tfalse:the reply is not JSON\n"
                 .. "false:$.a: expected integer, got string\n", out)
  end)
end)

describe("the equals assertion", function ()
  -- The reply was trimmed with "^%s*(.-)%s*$", quadratic in a run of spaces
  -- inside it: 8 s for 40,000, over an hour for a reply of 1 MB of them (a
  -- model's degenerate reply), and `aigc run` stood still on that case.
  it("compares a reply holding a run of 1,000,000 spaces at once, trimmed as before", function ()
    local out = assertions_in_child([[
      local function equals (text, v) return (assertions.check({ { type = "equals", value = v } }, text, {})) end
      print(equals("a" .. string.rep(" ", 1000000) .. "b", "x"), equals(" \t Paris.\n\n", "Paris."),
            equals("Paris", "Paris "), equals("", ""), equals(" \n ", ""))
    ]])
    assert.equal("false\ttrue\tfalse\ttrue\ttrue\n", out)
  end)
end)

describe("a judge assertion", function ()
  -- A judge's reply with no score was quoted in the assertion's reason cut
  -- at 60 bytes, inside a character of a non-ASCII reply: the result line was
  -- not UTF-8 and runner.run raised "bad argument #1 to 'encode'
  -- (value.assertions[1].reason: invalid UTF-8 ...)", the whole run stopped.
  it("whose judge answers with no score, in words of more than one byte, fails only its case", function ()
    local words = "a" .. string.rep("\195\169", 40)   -- ("a" then 40 e-acute: byte 60 is inside one)
    local body = '{"id":"c1","object":"chat.completion","model":"m","choices":[{"index":0,"message":'
      .. '{"role":"assistant","content":"' .. words .. '"},"finish_reason":"stop"}]}'
    local url = oneshot.serve_raw({ oneshot.http_reply("200 OK", body), oneshot.http_reply("200 OK", body) }, finally)
    local c = aigc.client { base_url = url, api_key = "sk-judge-0123456789", model = "m", max_retries = 0,
                            timeout = 30 }
    local out = os.tmpname()
    finally(function () c:close(); os.remove(out) end)
    os.remove(out)
    local summary = assert(runner.run { client = c, out = out, cases = {
      { id = "a", prompt = "hi", assert = { { type = "judge", value = "polite" } } } } })
    assert.equal(1, summary.ok)
    assert.equal(0, summary.passed)
    local reason = summary.results.a.assertions[1].reason
    assert.equal('the judge gave no score: "a' .. string.rep("\195\169", 29) .. '"...', reason)
    local f = assert(io.open(out, "rb"))
    local line = f:read("*l")
    f:close()
    assert.equal(reason, aigc.json.decode(line).assertions[1].reason)
  end)
end)
