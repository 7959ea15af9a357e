-- The Conversations API's client methods against the bundled server, and
-- a response joining a conversation (`conversation = id`).
local aigc = require "aigc"
local devserver = require "devserver"

describe("Conversations API", function ()
  local srv, client
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { model = "aigc-dev" })

  it("create, get, update, delete", function ()
    local conv = assert(client:create_conversation { metadata = { topic = "demo" },
                                                     items = { { role = "user", content = "Hello" } } })
    assert.equal("conversation", conv.object)
    assert.matches("^conv_", conv.id)
    assert.equal("POST", srv:last().method)
    assert.equal("/v1/conversations", srv:last().path)
    assert.same({ topic = "demo" }, srv:last().body_json.metadata)
    local got = assert(client:get_conversation(conv.id))
    assert.equal(conv.id, got.id)
    assert.equal("demo", got.metadata.topic)
    local upd = assert(client:update_conversation(conv.id, { metadata = { topic = "other" } }))
    assert.equal("other", upd.metadata.topic)
    assert.equal("/v1/conversations/" .. conv.id, srv:last().path)
    local del = assert(client:delete_conversation(conv.id))
    assert.is_true(del.deleted)
    assert.equal("DELETE", srv:last().method)
    local gone, err = client:get_conversation(conv.id)
    assert.is_nil(gone)
    assert.equal(404, err.status)
  end)

  it("items: list, add, get, delete", function ()
    local conv = assert(client:create_conversation { items = { { role = "user", content = "one" } } })
    local added = assert(client:create_conversation_items(conv.id, {
      { role = "assistant", content = "two" }, { role = "user", content = "three" } }, { include = { "a" } }))
    assert.equal(2, #added.data)
    assert.equal("a", srv:last().query["include[]"])
    local page = assert(client:conversation_items(conv.id, { order = "asc", limit = 2 }))
    assert.equal(2, #page.data)
    assert.is_true(page.has_more)
    assert.equal("one", page.data[1].content[1].text)
    assert.same({ order = "asc", limit = "2" }, srv:last().query)
    local item = assert(client:get_conversation_item(conv.id, added.data[1].id))
    assert.equal("two", item.content[1].text)
    assert(client:delete_conversation_item(conv.id, added.data[1].id))
    assert.equal("DELETE", srv:last().method)
    local all = assert(client:conversation_items(conv.id, { order = "asc" }))
    assert.equal(2, #all.data)
    assert.equal("three", all.data[2].content[1].text)
  end)

  it("a response with conversation = id: sent as is, its input and output join the conversation", function ()
    local conv = assert(client:create_conversation())
    local res = assert(client:respond { input = "What is the capital of France?", conversation = conv.id })
    assert.equal(conv.id, srv:last().body_json.conversation)
    local items = assert(client:conversation_items(conv.id, { order = "asc" })).data
    assert.equal(2, #items)
    assert.equal("What is the capital of France?", items[1].content[1].text)
    assert.equal(res.text, items[2].content[1].text)
    local _, err = client:respond { input = "x", conversation = "conv_none" }
    assert.equal(404, err.status)
  end)

  it("misuse raises at the caller's line", function ()
    assert.error_matches(function () client:get_conversation(nil) end,
      "bad argument #1 to 'get_conversation' %(a conversation id")
    assert.error_matches(function () client:get_conversation_item("conv_1", "..") end,
      "bad argument #2 to 'get_conversation_item' %(an item id")
    assert.error_matches(function () client:create_conversation_items("conv_1", "hi") end,
      "bad argument #2 to 'create_conversation_items' %(table %(a list of items%) expected, got string%)")
    assert.error_matches(function () client:update_conversation("conv_1") end,
      "bad argument #2 to 'update_conversation' %(table expected, got nil%)")
    assert.error_matches(function () client:conversation_items("conv_1", { include = { {} } }) end,
      "bad argument #2 to 'conversation_items' %(opts.include%[1%]")
  end)
  local _ = aigc
end)
