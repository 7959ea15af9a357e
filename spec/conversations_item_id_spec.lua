-- An item's method given no item id sent the conversation's own path:
-- `client:delete_conversation_item(conv.id)` (the item id forgotten)
-- deleted the whole conversation, and `get_conversation_item(conv.id)`
-- returned the conversation as if it were an item. Both are misuse now
-- (bad argument #2), and nothing is sent.

local devserver = require "devserver"

describe("Conversations API: an item's method without the item id", function ()
  local srv, client
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { model = "aigc-dev" })

  it("raises bad argument #2 and sends nothing; the conversation stays", function ()
    local conv = assert(client:create_conversation { items = { { role = "user", content = "one" } } })
    local sent = #srv:requests()
    for _, name in ipairs { "delete_conversation_item", "get_conversation_item" } do
      local ok, err = pcall(client[name], client, conv.id)
      assert.is_false(ok)
      assert.matches("bad argument #2 to '" .. name .. "' (an item id expected, got nil)", err, 1, true)
    end
    assert.equal(sent, #srv:requests())
    local got = assert(client:get_conversation(conv.id))
    assert.equal(conv.id, got.id)
    assert.equal(1, #assert(client:conversation_items(conv.id)).data)
  end)
end)
