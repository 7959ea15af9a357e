-- The tool-call loop against a hostile model: replies built to exhaust what
-- the loop does per call (scripted exact replies, spec/support/scripted.lua),
-- under a budget of VM instructions (spec/support/workbudget.lua), a count,
-- not a time: a loop that never ends, or one quadratic in the calls,
-- exceeds it by orders of magnitude.
local aigc = require "aigc"
local scripted = require "scripted"
local workbudget = require "workbudget"

describe("the tool loop against a hostile model", function ()
  it("gives a call an id when every id of its first form is taken (it looped for ever)", function ()
    -- The ids the loop gives a call without one are 9 letters and digits
    -- (Mistral's rule); a history that holds all 99,999 of the form
    -- call00001..call99999 left no id to give, and the search never ended.
    local taken = {}
    for i = 1, 99999 do taken[i] = { id = string.format("call%05d", i), type = "function",
                                     ["function"] = { name = "now", arguments = "{}" } } end
    local msgs = { { role = "user", content = "go" }, { role = "assistant", content = aigc.null, tool_calls = taken } }
    local ran = 0
    local ts = aigc.tools { { name = "now", fn = function () ran = ran + 1; return "noon" end } }
    local out = workbudget.within_budget(2e7, function ()
      return { scripted.tool_chat(ts, { scripted.chat { tool_calls = { scripted.call("", "now", "{}") } },
                                        scripted.chat { content = "It is noon." } }, { messages = msgs }) }
    end)
    local res, err, sent = out[1], out[2], out[3]
    assert.is_nil(err)
    assert.equal("It is noon.", res.text)
    assert.equal(1, ran)
    local given = res.tool_calls_made[1].id
    assert.matches("^%w+$", given)
    assert.equal(9, #given)
    local last = sent[2].messages
    assert.equal(given, last[#last].tool_call_id)
    for i = 1, 99999 do assert.not_equal(taken[i].id, given) end
  end)

  it("runs a reply of 10,000 calls in time linear in the calls (each call copied the history: quadratic)", function ()
    local N = 10000
    local calls = {}
    for i = 1, N do calls[i] = scripted.call("c" .. i, "now", "{}") end
    local seen = {}   -- (the history some calls were given: what it holds is unchanged)
    local ts = aigc.tools { { name = "now", fn = function (_, call)
      local i = tonumber(call.id:sub(2))
      if i <= 2 or i == N then
        local h = call.messages
        seen[i] = { n = #h, last = h[#h].role, id = h[#h].tool_call_id }
        h[#h + 1] = { role = "user", content = "a tool's own message" }   -- (changes nothing sent)
      end
      return "noon"
    end } }
    local out = workbudget.within_budget(3e7, function ()
      return { scripted.tool_chat(ts, { scripted.chat { tool_calls = calls }, scripted.chat { content = "done" } }) }
    end)
    local res, err, sent = out[1], out[2], out[3]
    assert.is_nil(err)
    assert.equal("done", res.text)
    assert.equal(N, #res.tool_calls_made)
    assert.same({ n = 2, last = "assistant" }, seen[1])
    assert.same({ n = 3, last = "tool", id = "c1" }, seen[2])
    assert.same({ n = N + 1, last = "tool", id = "c" .. (N - 1) }, seen[N])
    local msgs = sent[2].messages
    assert.equal(N + 2, #msgs)
    for i = 3, N + 2 do assert.equal("c" .. (i - 2), msgs[i].tool_call_id) end
  end)
end)
