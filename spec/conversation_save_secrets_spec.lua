-- aigc.conversation save files never hold the client's key, even when a
-- reply or a turn carried it.
local aigc = require "aigc"
local devserver = require "devserver"

describe("conversation save and secrets", function ()
  local srv
  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)

  it("scrubs the client's key that a reply echoed from the saved text; load still works", function ()
    local key = "sk-conv-save-secret-0123456789"
    local client = aigc.client { base_url = srv.base_url, model = "aigc-dev", api_key = key }
    local conv = aigc.conversation { client = client, system = "S" }
    local reply = assert(conv:say("Echo: hello", { headers = { ["x-aigc-fault"] = "echo-key" } }))
    assert.truthy(reply:find(key, 1, true))              -- (the server echoed it into the history)
    assert(conv:say("my key is " .. key))
    local saved = conv:save()
    assert.is_nil(saved:find("0123456789", 1, true))
    assert.truthy(saved:find("[redacted]", 1, true))
    local back = assert(aigc.conversation.load(saved, client))
    assert.equal(#conv.messages, #back.messages)
    assert.equal("my key is [redacted]", back.messages[4].content)
    assert(back:say "Echo: again")
    client:close()
  end)
end)
