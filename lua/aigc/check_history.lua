--- What a chat history kept to be sent again (a conversation's) must be,
-- beyond a call's messages check (`aigc.check`): what the server would
-- refuse of a message at the next request, found where the message enters
-- (`conv:add`, `aigc.conversation.load`, a say's input) rather than as the
-- server's 400 at the next say.
--
-- Internal: not part of the API.
--
-- @module aigc.check_history
-- @local

local core = require "aigc.core"
local util = require "aigc.util"
local check = require "aigc.check"

local ipairs, next, rawget, setmetatable, type = ipairs, next, rawget, setmetatable, type
local huge = math.huge
local string_format = string.format
local expected = util.expected
local null = core.null
local as_sent, items_problem, messages_problem = check.as_sent, check.items_problem, check.CHAT_FIELDS.messages

util.own_module()

local M = {}

-- A list read as the encoder reads it: `items, n`, or false when `v` is
-- not one (check.lua's rule).
local function as_list (v)
  if type(v) ~= "table" then return false end
  local items, n = as_sent(v)
  if items == nil or (n == nil and items[1] == nil and next(items) ~= nil and not core.is_array(items)) then
    return false
  end
  return items, n
end

-- The roles a chat request takes ("function": the legacy tool result).
local CHAT_ROLES = { system = true, developer = true, user = true, assistant = true, tool = true,
                     ["function"] = true }

-- Adds to `ids` the ids of the tool calls the message `m` (as sent) makes.
local function add_call_ids (ids, m)
  local calls, n = as_list(m.role == "assistant" and m.tool_calls)
  if not calls then return end
  for j = 1, n or huge do
    local c = calls[j]
    if c == nil and not n then return end
    if type(c) == "table" and type(c.id) == "string" then ids[c.id] = true end
  end
end

-- Why the chat message `m` (as sent, found at `at_i`) cannot be sent, or
-- nil; `ids`: the ids of the tool calls made before it.
local function chat_message_problem (m, at_i, ids)
  local role, c = m.role, m.content
  if not CHAT_ROLES[role] then
    return at_i .. ".role: 'system', 'developer', 'user', 'assistant', 'tool' or 'function' expected, got '"
      .. role .. "'"
  end
  if c == nil or c == null then
    if role ~= "assistant" then return at_i .. ".content: " .. expected("string or list of content parts", c) end
  elseif type(c) ~= "string" then
    local why = items_problem(c, at_i, "content", "table", "content part table", "string or list of content parts")
    if why then return why end
  end
  if m.tool_calls ~= nil and m.tool_calls ~= null then
    local why = items_problem(m.tool_calls, at_i, "tool_calls", "table", "tool call table", "list of tool calls")
    if why then return why end
  end
  if role == "tool" then
    local id = m.tool_call_id
    if type(id) ~= "string" then return at_i .. ".tool_call_id: " .. expected("string", id) end
    -- (OpenAI answers 400 for a result whose call no assistant message made)
    if not ids[id] then
      return at_i .. ".tool_call_id: no earlier assistant message made the tool call '" .. id .. "'"
    end
  end
  return nil
end

--- Why a chat history cannot be sent, or nil: a call's messages check
-- (`CHAT_FIELDS.messages`), and, for a history kept to be sent again (a
-- conversation's), what the server would refuse of each message at the
-- next request: an unknown role, a content neither a string nor a list of
-- parts (nor, for an assistant, null), tool calls that are not a list, a
-- tool result whose call no earlier assistant message made.
-- @tparam table msgs
-- @tparam string path its name in messages
-- @tparam[opt] table earlier the history `msgs` follows (its tool calls)
-- @treturn string|nil
function M.history_problem (msgs, path, earlier)
  local why = messages_problem(msgs, path)
  if why then return why end
  -- (the earlier history's calls are read only for a tool result: a say
  -- checks its input against the whole history, which may be long)
  local ids = setmetatable({}, { __index = function (t, id)
    setmetatable(t, nil)
    for _, m in ipairs(earlier or {}) do
      if type(m) == "table" then add_call_ids(t, m) end
    end
    return rawget(t, id)
  end })
  local items, n = as_sent(msgs)
  for i = 1, n or huge do
    local m = items[i]
    if m == nil and not n then return nil end
    m = as_sent(m)   -- (passed messages_problem: a table with a string role, as sent)
    why = chat_message_problem(m, string_format("%s[%d]", path, i), ids)
    if why then return why end
    add_call_ids(ids, m)
  end
  return nil
end

return M
