--- The Conversations API (`/conversations`): thin client methods, as the
-- stored responses' (aigc.responses): `create_conversation`,
-- `get_conversation`, `update_conversation`, `delete_conversation`,
-- `conversation_items`, `create_conversation_items`,
-- `get_conversation_item` and `delete_conversation_item`, installed on the
-- client class by client.lua. A response joins a conversation with
-- `client:respond { conversation = id, ... }` (the field passes through).
--
-- @module aigc.conversations

local check = require "aigc.check"
local task = require "aigc.task"
local util = require "aigc.util"
local responses = require "aigc.responses"

local pairs, type = pairs, type
local argerror, expected, urlencode = util.argerror, util.expected, util.urlencode

util.own_module()

local M = {}

-- client.lua's private helpers, given to `install`.
local check_self, submit

-- "/conversations/<id>[/items[/<item_id>]]" (`items`: "items" or "item");
-- ids checked as path segments. (An item's method given no item id sent
-- the conversation's path: delete_conversation_item(id) deleted the
-- whole conversation.)
local function path_of (fname, id, items, item_id)
  if not util.is_path_segment(id) then argerror(fname, 1, util.not_path_segment("a conversation id", id)) end
  local path = "/conversations/" .. urlencode(id)
  if items == "item" then
    if not util.is_path_segment(item_id) then argerror(fname, 2, util.not_path_segment("an item id", item_id)) end
    return path .. "/items/" .. urlencode(item_id)
  end
  return items and path .. "/items" or path
end

-- A POST's body (a copy of `params`: nil is {}), checked as every call's.
local function body_of (self, fname, argn, params)
  if params == nil then return {} end
  if type(params) ~= "table" then argerror(fname, argn, expected("table", params)) end
  local body = {}
  for k, v in pairs(params) do body[k] = v end
  check.call(self, fname, argn, "json", body)
  return body
end

local function call (self, api, body, path, fname, argn)
  return task.await(submit(self, api, body, path, fname, argn))
end

-- A method without a body: a GET or DELETE of the path the ids name, with
-- `query` (argument `query_argn`) when the method takes one.
local function without_body (self, api, fname, id, items, item_id, query_argn, query)
  check_self(self, fname)
  local path = path_of(fname, id, items, item_id)
  if query_argn then path = path .. responses.query_of(fname, query_argn, query) end
  return call(self, api, nil, path, fname)
end

-- The methods `install` puts on the client class.
local Client = {}

--- A conversation (`POST /conversations`): `metadata`, `items` (at most 20).
-- @tparam[opt] table params
-- @treturn[1] table `{ id =, object = "conversation", created_at =, metadata = }`
-- @treturn[2] nil
-- @treturn[2] aigc.error err
-- @usage local conv = assert(client:create_conversation { items = { { role = "user", content = "Hi" } } })
function Client:create_conversation (params)
  check_self(self, "create_conversation")
  return call(self, "json", body_of(self, "create_conversation", 1, params), "/conversations",
              "create_conversation", 1)
end

--- A conversation (`GET /conversations/{id}`).
-- @tparam string id
-- @treturn[1] table the conversation
-- @treturn[2] nil
-- @treturn[2] aigc.error err
function Client:get_conversation (id)
  return without_body(self, "get", "get_conversation", id)
end

--- Updates a conversation's `metadata` (`POST /conversations/{id}`).
-- @tparam string id
-- @tparam table params `{ metadata = {...} }`
-- @treturn[1] table the conversation
-- @treturn[2] nil
-- @treturn[2] aigc.error err
function Client:update_conversation (id, params)
  check_self(self, "update_conversation")
  local path = path_of("update_conversation", id)
  if type(params) ~= "table" then argerror("update_conversation", 2, expected("table", params)) end
  return call(self, "json", body_of(self, "update_conversation", 2, params), path, "update_conversation", 2)
end

--- Deletes a conversation (`DELETE /conversations/{id}`).
-- @tparam string id
-- @treturn[1] table `{ id =, object = "conversation.deleted", deleted = true }`
-- @treturn[2] nil
-- @treturn[2] aigc.error err
function Client:delete_conversation (id)
  return without_body(self, "delete", "delete_conversation", id)
end

--- A page of a conversation's items (`GET /conversations/{id}/items`).
-- @tparam string id
-- @tparam[opt] table query `limit`, `order`, `after`, `include` (as `response_input_items`')
-- @treturn[1] table `{ object = "list", data =, first_id =, last_id =, has_more = }`
-- @treturn[2] nil
-- @treturn[2] aigc.error err
function Client:conversation_items (id, query)
  return without_body(self, "get", "conversation_items", id, "items", nil, 2, query)
end

--- Adds items to a conversation (`POST /conversations/{id}/items`).
-- @tparam string id
-- @tparam table items a list of items (at most 20)
-- @tparam[opt] table query `include`
-- @treturn[1] table `{ object = "list", data = (the items added) ... }`
-- @treturn[2] nil
-- @treturn[2] aigc.error err
function Client:create_conversation_items (id, items, query)
  check_self(self, "create_conversation_items")
  local path = path_of("create_conversation_items", id, "items")
    .. responses.query_of("create_conversation_items", 3, query)
  if type(items) ~= "table" then
    argerror("create_conversation_items", 2, expected("table (a list of items)", items))
  end
  return call(self, "json", { items = items }, path, "create_conversation_items", 2)
end

--- One item of a conversation (`GET /conversations/{id}/items/{item_id}`).
-- @tparam string id
-- @tparam string item_id
-- @tparam[opt] table query `include`
-- @treturn[1] table the item
-- @treturn[2] nil
-- @treturn[2] aigc.error err
function Client:get_conversation_item (id, item_id, query)
  return without_body(self, "get", "get_conversation_item", id, "item", item_id, 3, query)
end

--- Deletes an item of a conversation (`DELETE /conversations/{id}/items/{item_id}`).
-- @tparam string id
-- @tparam string item_id
-- @treturn[1] table the conversation
-- @treturn[2] nil
-- @treturn[2] aigc.error err
function Client:delete_conversation_item (id, item_id)
  return without_body(self, "delete", "delete_conversation_item", id, "item", item_id)
end

-- Installs the methods on the client class (client.lua calls it), as aigc.responses' install.
M.install = responses.installer(Client, function (h) check_self, submit = h.check_self, h.submit end)

return M
