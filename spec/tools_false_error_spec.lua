-- A tool that fails the other Lua way, `return false, "why"`: the model
-- read "false" and the reason was dropped (only `nil, msg` was an error).
-- Real HTTP to a scripted server (spec/support/scripted.lua).
local aigc = require "aigc"
local cjson = require "cjson"
local scripted = require "scripted"

describe("a tool that returns false and a message", function ()
  it("goes to the model as an error with the message, as nil, msg does; false alone stays false", function ()
    local ts = aigc.tools {
      { name = "find_order", fn = function () return false, "order A-1042 not found" end },
      { name = "in_stock", fn = function () return false end },
      { name = "refund", fn = function () return nil, "refunds are closed" end },
    }
    local call = scripted.call
    local res, err, sent = scripted.tool_chat(ts, {
      scripted.chat { tool_calls = { call("a1", "find_order", "{}"), call("a2", "in_stock", "{}"),
                                     call("a3", "refund", "{}") } },
      scripted.chat { content = "Sorry." } })
    assert.is_nil(err)
    assert.equal("Sorry.", res.text)
    local msgs = sent[2].messages
    assert.equal(5, #msgs)
    assert.same({ error = "order A-1042 not found" }, cjson.decode(msgs[3].content))
    assert.equal("false", msgs[4].content)
    assert.same({ error = "refunds are closed" }, cjson.decode(msgs[5].content))
    local made = res.tool_calls_made
    assert.is_false(made[1].ok)
    assert.equal("order A-1042 not found", made[1].error)
    assert.is_true(made[2].ok)
    assert.is_false(made[2].result)
    assert.is_false(made[3].ok)
  end)

  it("ends the call with kind \"tool\" under tool_errors = \"fail\"", function ()
    local ts = aigc.tools { { name = "find_order", fn = function () return false, "order A-1042 not found" end } }
    local res, err = scripted.tool_chat(ts, {
      scripted.chat { tool_calls = { scripted.call("a1", "find_order", "{}") } } }, { tool_errors = "fail" })
    assert.is_nil(res)
    assert.equal("tool", err.kind)
    assert.equal("tool find_order failed: order A-1042 not found", err.message)
  end)
end)
