-- aigc.conversation { system =, messages = }: the system prompt is sent,
-- not only kept in conv.system.
local aigc = require "aigc"
local devserver = require "devserver"

describe("a conversation made with both system and messages", function ()
  local srv, client
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end)

  it("sends the system prompt: first, or in place of the history's own system message", function ()
    local conv = aigc.conversation { client = client, system = "Be brief.",
      messages = { { role = "user", content = "Hi" }, { role = "assistant", content = "Hello" } } }
    assert(conv:say "Echo: next")
    local sent = srv:last().body_json.messages
    assert.same({ role = "system", content = "Be brief." }, sent[1])
    assert.equal(4, #sent)
    local old = { { role = "system", content = "Old prompt." }, { role = "user", content = "Hi" } }
    conv = aigc.conversation { client = client, system = "New prompt.", messages = old }
    assert(conv:say "Echo: again")
    sent = srv:last().body_json.messages
    assert.equal("New prompt.", sent[1].content)
    assert.equal("user", sent[2].role)
    assert.equal(3, #sent)
    assert.equal("Old prompt.", old[1].content)     -- (the caller's list is left as it was)
  end)
end)
