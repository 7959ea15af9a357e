-- A conversation's messages are checked where they enter (conv:add,
-- aigc.conversation.load, aigc.conversation { messages = }, a say's whole
-- message): a message no request can carry -- content a number, a boolean
-- or an object, an unknown role, tool_calls that are not a list, a tool
-- result whose call no earlier assistant message made -- was kept, and the
-- mistake came back only as the server's 400 at the next say.
local aigc = require "aigc"
local devserver = require "devserver"
local json = aigc.json

local CALL = { id = "call_1", type = "function", ["function"] = { name = "get_time", arguments = "{}" } }

-- Messages no chat request can carry: { message, the field named, what is said }.
local BAD = {
  { { role = "user", content = 5 }, "content", "string or list of content parts expected, got number" },
  { { role = "user", content = true }, "content", "string or list of content parts expected, got boolean" },
  { { role = "user", content = { type = "text", text = "Hi" } }, "content",
    "string or list of content parts expected, got table" },
  { { role = "user", content = { 5 } }, "content[1]", "content part table expected, got number" },
  { { role = "user" }, "content", "string or list of content parts expected, got nil" },
  { { role = "usr", content = "Hi" }, "role",
    "'system', 'developer', 'user', 'assistant', 'tool' or 'function' expected, got 'usr'" },
  { { role = "assistant", content = "Hi", tool_calls = 5 }, "tool_calls", "list of tool calls expected, got number" },
  { { role = "tool", tool_call_id = "call_9", content = "noon" }, "tool_call_id",
    "no earlier assistant message made the tool call 'call_9'" },
  { { role = "tool", content = "noon" }, "tool_call_id", "string expected, got nil" },
}

describe("a conversation's messages", function ()
  local srv, client
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end)

  local function history ()
    local conv = aigc.conversation { client = client, system = "S" }
    conv:add { role = "user", content = "What time is it?" }
    conv:add { role = "assistant", content = aigc.null, tool_calls = aigc.array { CALL } }
    conv:add { role = "tool", tool_call_id = "call_1", content = "noon" }
    conv:add { role = "assistant", content = "It is noon." }
    return conv
  end

  it("add refuses a message no request can carry, at the caller's line, the history unchanged", function ()
    local conv = history()
    for _, case in ipairs(BAD) do
      local line = debug.getinfo(1, "l").currentline; local ok, e = pcall(conv.add, conv, case[1])
      assert.is_false(ok, case[2])
      assert.truthy(e:find("conversation_messages_spec.lua:" .. line .. ": bad argument #1 to 'add' (msg."
                           .. case[2] .. ": " .. case[3], 1, true), e)
      assert.equal(5, #conv.messages)
    end
    -- a result of a call made earlier, content parts, an assistant's null content with tool calls: kept
    conv:add { role = "user", content = { { type = "text", text = "And the date?" } } }
    conv:add { role = "assistant", content = aigc.null, tool_calls = { { id = "call_2", type = "function",
      ["function"] = { name = "get_date", arguments = "{}" } } } }
    conv:add { role = "tool", tool_call_id = "call_2", content = { { type = "text", text = "May 1" } } }
    conv:add { role = "tool", tool_call_id = "call_1", content = "still noon" }
    assert.equal(9, #conv.messages)
  end)

  it("say refuses a whole message no request can carry before anything is sent", function ()
    local conv = history()
    local line = debug.getinfo(1, "l").currentline; local ok, e = pcall(conv.say, conv, { role = "user", content = 5 })
    assert.is_false(ok)
    assert.truthy(e:find("conversation_messages_spec.lua:" .. line .. ": bad argument #1 to 'say' (input.content: "
                         .. "string or list of content parts expected, got number)", 1, true), e)
    assert.equal(0, #srv:requests())
  end)

  it("aigc.conversation { messages = } refuses them too", function ()
    for _, case in ipairs(BAD) do
      local ok, e = pcall(aigc.conversation, { client = client, messages = { case[1] } })
      assert.is_false(ok)
      assert.truthy(e:find("(opts.messages[1]." .. case[2] .. ": ", 1, true), e)
    end
  end)

  it("load answers nil, err of kind parse naming the message and the field", function ()
    local saved = json.decode(history():save())
    for _, case in ipairs(BAD) do
      local t = json.decode(json.encode(saved))
      t.messages[#t.messages + 1] = case[1]
      local conv, err = aigc.conversation.load(json.encode(t), client)
      assert.is_nil(conv, case[2])
      assert.equal("parse", err.kind)
      assert.truthy(err.message:find("messages[6]." .. case[2] .. ": " .. case[3], 1, true), err.message)
    end
    -- a tool result moved before its call is an orphan too
    local t = json.decode(json.encode(saved))
    t.messages[3], t.messages[4] = t.messages[4], t.messages[3]
    local conv, err = aigc.conversation.load(json.encode(t), client)
    assert.is_nil(conv)
    assert.truthy(err.message:find("messages[3].tool_call_id: no earlier assistant message made the tool call "
                                   .. "'call_1'", 1, true), err.message)
  end)

  it("a file saved by an earlier version (a tool turn, a refusal, a Responses history) loads and says", function ()
    local old = [[{"format":"aigc.conversation","version":1,"system":"S","keep_first":0,"keep_last":1,
      "message_overhead":4,"summary_tokens":200,"params":{"temperature":0.5},"messages":[
      {"role":"system","content":"S"},{"role":"user","content":"What time is it?"},
      {"role":"assistant","content":null,"refusal":null,"tool_calls":[{"id":"call_1","type":"function",
        "function":{"name":"get_time","arguments":"{}"}}]},
      {"role":"tool","tool_call_id":"call_1","content":"noon"},
      {"role":"assistant","content":"It is noon."},
      {"role":"user","content":[{"type":"text","text":"Say no."}]},
      {"role":"assistant","content":"","refusal":"I can't."}]}]]
    local conv = assert(aigc.conversation.load(old, client))
    assert.equal(7, #conv.messages)
    assert(conv:say "Echo: hi")
    assert.equal(8, #srv:last().body_json.messages)
    local items = [[{"format":"aigc.conversation","version":1,"api":"responses","messages":[
      {"role":"user","content":"time?"},{"type":"function_call","call_id":"c","name":"t","arguments":"{}"},
      {"type":"function_call_output","call_id":"c","output":"noon"},{"role":"assistant","content":"Noon."}]}]]
    assert(aigc.conversation.load(items, client))
  end)
end)
