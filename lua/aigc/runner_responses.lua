--- The dataset runner's Responses mode (`aigc.runner.run { api =
-- "responses" }`): a case's request, built as chat params (the template's
-- render, the case's `messages` or `prompt`), sent as a Responses request
-- instead, for models that accept only `/v1/responses` (o3-pro, codex,
-- computer-use). Internal: the runner and its batch backend call it.
--
-- @module aigc.runner_responses

local util = require "aigc.util"

local ipairs, pairs, type = ipairs, pairs, type
local table_concat = table.concat

util.own_module()

local M = {}

--- The APIs a run's requests go to (`spec.api`).
M.APIS = { chat = true, responses = true }

--- The Batch API's endpoint of each API (the runner's default `batch_endpoint`).
M.BATCH_ENDPOINT = { chat = "/v1/chat/completions", responses = "/v1/responses" }

--- The API of a batch's endpoint ("chat" or "responses"), or nil (another).
-- @tparam string endpoint e.g. "/v1/responses"
-- @treturn string|nil
function M.api_of (endpoint)
  if endpoint:find("/responses$") then return "responses" end
  if endpoint:find("/chat/completions$") then return "chat" end
  return nil
end

-- A chat content part as a Responses one: text is input_text (an
-- assistant's, output_text), an image_url is an input_image; another
-- type goes as it is.
local function part_of (part, role)
  if type(part) ~= "table" then return part end
  if part.type == "text" then
    return { type = role == "assistant" and "output_text" or "input_text", text = part.text }
  elseif part.type == "image_url" then
    local img = part.image_url
    return { type = "input_image", image_url = type(img) == "table" and img.url or img,
             detail = type(img) == "table" and img.detail or nil }
  end
  return part
end

-- A tool message's content as a function_call_output's output: its text
-- (parts of text joined).
local function output_of (content)
  if type(content) ~= "table" then return content end
  local texts = {}
  for _, part in ipairs(content) do
    if type(part) == "table" and type(part.text) == "string" then texts[#texts + 1] = part.text end
  end
  return table_concat(texts)
end

-- A chat message as Responses input items, appended to `input`: a
-- message item (role and content); a tool's reply (`role = "tool"`) as a
-- function_call_output; an assistant's tool_calls as function_call items
-- after its text, if any. (Sent as chat messages, the server refused
-- them: Responses has no "tool" role nor tool_calls.)
local function add_items (input, m)
  if type(m) ~= "table" then input[#input + 1] = m; return end
  if m.role == "tool" then
    input[#input + 1] = { type = "function_call_output", call_id = m.tool_call_id, output = output_of(m.content) }
    return
  end
  local item = {}
  for k, v in pairs(m) do item[k] = v end
  item.tool_calls = nil
  if type(m.content) == "table" then
    local content = {}
    for i, part in ipairs(m.content) do content[i] = part_of(part, m.role) end
    item.content = content
  end
  local c = item.content   -- (an assistant's tool calls often come with null or "" as text)
  if type(m.tool_calls) ~= "table" or (type(c) == "string" and c ~= "") or (type(c) == "table" and #c > 0) then
    input[#input + 1] = item
  end
  for _, call in ipairs(type(m.tool_calls) == "table" and m.tool_calls or {}) do
    local fn = type(call) == "table" and type(call["function"]) == "table" and call["function"] or {}
    input[#input + 1] = { type = "function_call", call_id = call.id, name = fn.name, arguments = fn.arguments }
  end
end

--- Chat params as Responses params: the leading system (or developer)
-- messages of text are the `instructions`, the other messages the `input`
-- items (a tool's reply a function_call_output, an assistant's tool calls
-- function_call items); `max_tokens` (`max_completion_tokens`) is `max_output_tokens`, a
-- `response_format` of a JSON schema or object is `text.format`. The rest
-- (`model`, `temperature`, `schema`, the call options...) stays: a
-- `schema` goes as `text.format`, as `client:respond` sends it.
-- @tparam table params chat params (not changed)
-- @treturn table
function M.params (params)
  local p, instructions, input = {}, {}, {}
  for k, v in pairs(params) do p[k] = v end
  p.messages, p.max_tokens, p.max_completion_tokens, p.response_format = nil, nil, nil, nil
  for _, m in ipairs(type(params.messages) == "table" and params.messages or {}) do
    if #input == 0 and type(m) == "table" and (m.role == "system" or m.role == "developer")
       and type(m.content) == "string" then
      instructions[#instructions + 1] = m.content
    else
      add_items(input, m)
    end
  end
  p.input = input
  if #instructions > 0 then p.instructions = table_concat(instructions, "\n\n") end
  p.max_output_tokens = params.max_output_tokens or params.max_completion_tokens or params.max_tokens
  local rf = params.response_format
  if type(rf) == "table" and (rf.type == "json_object" or rf.type == "json_schema") then
    local text = {}
    for k, v in pairs(type(p.text) == "table" and p.text or {}) do text[k] = v end
    local js = type(rf.json_schema) == "table" and rf.json_schema or {}
    text.format = rf.type == "json_object" and { type = "json_object" }
      or { type = "json_schema", name = js.name or "response", schema = js.schema, strict = js.strict }
    p.text = text
  elseif rf ~= nil then
    p.response_format = rf   -- (another: the server says what it makes of it)
  end
  return p
end

return M
