--- aigc devserver: the Conversations API -- POST /v1/conversations
-- (metadata, items), GET / POST (metadata) / DELETE /v1/conversations/{id},
-- GET (limit, order, after) / POST (items) /v1/conversations/{id}/items,
-- GET / DELETE /v1/conversations/{id}/items/{item_id}. A response made
-- with `conversation` (an id, or {id =}) adds its input and output items
-- to it (aigc.devserver.responses). Kept in memory (forgotten by
-- /_aigc/reset). Part of the devserver package.

local json = require "aigc.devserver.json"
local util = require "aigc.devserver.util"
local errors = require "aigc.devserver.errors"

local format = string.format
local O, A, NULL = json.O, json.A, json.NULL
local uid = util.uid
local error_resp, bad_param, isnull = errors.error_resp, errors.bad_param, errors.isnull

local M = {}

local function store_of (srv)
  return srv.keep("conversations", function () return { by_id = {} } end)
end

local function object_of (c)
  return O("id", c.id, "object", "conversation", "created_at", c.created_at, "metadata", c.metadata)
end

local function not_found (id)
  return error_resp(404, format("Conversation with id '%s' not found.", id), "invalid_request_error", NULL, NULL)
end

--- The conversation a request names (`conversation`: an id or {id =}),
-- or nil and the 404.
function M.find (srv, ref)
  local id = type(ref) == "table" and ref.id or ref
  local c = type(id) == "string" and store_of(srv).by_id[id]
  if not c then return nil, not_found(tostring(id)) end
  return c
end

-- Items as a conversation lists them: each with an id, a message's string
-- content as a part.
local function with_ids (items)
  local out = {}
  for i, it in ipairs(items) do
    local t = {}
    for k, v in pairs(it) do t[k] = v end
    t.type = t.type or "message"
    if t.type == "message" and type(t.content) == "string" then
      t.content = A { O("type", t.role == "assistant" and "output_text" or "input_text", "text", t.content) }
    end
    t.id = t.id or ((t.type == "message" and "msg_" or "item_") .. uid())
    out[i] = t
  end
  return out
end

--- Adds items (already with ids) to conversation c.
function M.append (c, items)
  for _, it in ipairs(items) do c.items[#c.items + 1] = it end
end

-- The body's `items`, or nil and the 400.
local function items_of (body, required)
  local items = body.items
  if isnull(items) and not required then return {} end
  if type(items) ~= "table" or (next(items) ~= nil and #items == 0) or (required and #items == 0) then
    return nil, bad_param("items", "Invalid 'items': expected a non-empty array of items.", "invalid_type")
  end
  for i, it in ipairs(items) do
    if type(it) ~= "table" then
      return nil, bad_param("items", format("Invalid 'items[%d]': expected an object.", i - 1), "invalid_type")
    end
  end
  return with_ids(items)
end

local function conversation (req)
  return M.find(req.srv, util.url_decode(req.captures[1]))
end

local function ok (object) return { status = 200, headers = {}, object = object } end

function M.create (req)
  local items, err = items_of(req.body or {}, false)
  if not items then return err end
  local c = { id = "conv_" .. uid(), created_at = os.time(), items = items,
              metadata = isnull((req.body or {}).metadata) and O() or req.body.metadata }
  store_of(req.srv).by_id[c.id] = c
  return ok(object_of(c))
end

function M.get (req)
  local c, err = conversation(req)
  return c and ok(object_of(c)) or err
end

function M.update (req)
  local c, err = conversation(req)
  if not c then return err end
  if isnull((req.body or {}).metadata) then
    return bad_param("metadata", "Missing required parameter: 'metadata'.", "missing_required_parameter")
  end
  c.metadata = req.body.metadata
  return ok(object_of(c))
end

function M.delete (req)
  local c, err = conversation(req)
  if not c then return err end
  store_of(req.srv).by_id[c.id] = nil
  return ok(O("id", c.id, "object", "conversation.deleted", "deleted", true))
end

-- A list page: {object, data, first_id, last_id, has_more}.
local function page (data, has_more)
  return O("object", "list", "data", data, "first_id", data[1] and data[1].id or NULL,
    "last_id", data[#data] and data[#data].id or NULL, "has_more", has_more)
end

--- A page of `items` (a conversation's, or a response's input items) as
-- GET ...?limit=&order=&after= lists them: the 200 response, or the 400 for a
-- bad `limit` or `order`, or an `after` not among them (`owner`:
-- "conversation" or "response", for that message).
function M.item_page (items, q, owner)
  local limit = math.tointeger(tonumber(q.limit or "20"))
  if not limit or limit < 1 or limit > 100 then
    return bad_param("limit", "Invalid 'limit': integer between 1 and 100 expected.", "integer_out_of_range")
  end
  local order = q.order or "desc"
  if order ~= "asc" and order ~= "desc" then
    return bad_param("order", "Invalid 'order': expected 'asc' or 'desc'.", "invalid_value")
  end
  local all = {}
  for i, it in ipairs(items) do all[order == "asc" and i or #items - i + 1] = it end
  local start = 1
  if not isnull(q.after) then
    start = nil
    for i, it in ipairs(all) do if it.id == q.after then start = i + 1 end end
    if not start then return bad_param("after", format("No item with id '%s' in this %s.", q.after, owner),
      "invalid_value") end
  end
  local data = A()
  for i = start, math.min(#all, start + limit - 1) do data[#data + 1] = all[i] end
  return ok(page(data, start + limit - 1 < #all))
end

function M.list_items (req)
  local c, err = conversation(req)
  if not c then return err end
  return M.item_page(c.items, req.query or {}, "conversation")
end

function M.add_items (req)
  local c, err = conversation(req)
  if not c then return err end
  local items, ierr = items_of(req.body or {}, true)
  if not items then return ierr end
  M.append(c, items)
  return ok(page(A(items), false))
end

local function find_item (req)
  local c, err = conversation(req)
  if not c then return nil, nil, err end
  local id = util.url_decode(req.captures[2])
  for i, it in ipairs(c.items) do if it.id == id then return c, i end end
  return nil, nil, error_resp(404, format("Item with id '%s' not found.", id), "invalid_request_error", NULL, NULL)
end

function M.get_item (req)
  local c, i, err = find_item(req)
  return c and ok(c.items[i]) or err
end

function M.delete_item (req)
  local c, i, err = find_item(req)
  if not c then return err end
  table.remove(c.items, i)
  return ok(object_of(c))
end

M.routes = {
  { "POST", "^/v1/conversations$", M.create },
  { "GET", "^/v1/conversations/([^/]+)$", M.get },
  { "POST", "^/v1/conversations/([^/]+)$", M.update },
  { "DELETE", "^/v1/conversations/([^/]+)$", M.delete },
  { "GET", "^/v1/conversations/([^/]+)/items$", M.list_items },
  { "POST", "^/v1/conversations/([^/]+)/items$", M.add_items },
  { "GET", "^/v1/conversations/([^/]+)/items/([^/]+)$", M.get_item },
  { "DELETE", "^/v1/conversations/([^/]+)/items/([^/]+)$", M.delete_item },
}

return M
