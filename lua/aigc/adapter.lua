--- Where chat completions and the Responses API differ, for the dialogue
-- layer (`aigc.dialogue`) and conversations: one adapter per API, with the
-- same functions. Everything the two agree on (the tool-call loop, rounds,
-- usage sums, schema validation, futures, callbacks) is written once, in
-- dialogue.lua, against these.
--
--   adapter.send(client, p)          starts one request (a request object)
--   adapter.ask(p, text)             p with `text` as its one user message
--                                    (a judge's, critic's, classifier's)
--   adapter.prepare(params, wire)    copies the conversation into wire
--   adapter.history(wire)            the conversation list in wire
--   adapter.tool_definitions(ts)     the toolset in this API's tool format
--   adapter.set_format(wire, o, m)   structured output: json_schema or
--                                    json_object mode (the schema then
--                                    goes in an instruction message)
--   adapter.refuses_format(err)      a 400 saying json_schema is not served
--   adapter.tool_calls(res)          the reply's calls, each
--                                    `{ id =, name =, arguments = }`, or
--                                    nil; nil, err for a broken reply
--   adapter.add_calls(d, res)        the history gains the reply's calls
--   adapter.add_output(d, call, s)   ... and a tool's output
--   adapter.parse(res, o)            res.parsed, or nil, err (schema,
--                                    refusal, incomplete)
--   adapter.finish_error(res)        an error for a reply the dialogue
--                                    cannot use (Responses: incomplete)
--
-- `d` is the dialogue's state: `d.wire` (the next request's params),
-- `d.messages` (the history as sent), `d.added` (what the loop added).
--
-- @module aigc.adapter
-- @local

local core = require "aigc.core"
local check = require "aigc.check"
local util = require "aigc.util"
local schema_mod = require "aigc.schema"

local json_encode, json_decode, is_array = core.json.encode, core.json.decode, core.is_array
local null = core.null
local ipairs, pairs, tostring, type = ipairs, pairs, tostring, type
local string_format = string.format

util.own_module()

local M = {}

local function schema_instruction (o)
  return "Reply with a single JSON object and nothing else. It must conform to this JSON schema: "
    .. json_encode(o.wire_schema or o.schema)
end

-- A copy of list with item inserted after its leading system/developer messages.
local function with_instruction (list, item)
  local out, at = {}, 1
  for i, m in ipairs(list) do out[i] = m end
  while type(out[at]) == "table" and (out[at].role == "system" or out[at].role == "developer") do at = at + 1 end
  table.insert(out, at, item)
  return out
end

local function parse_error (fmt, ...)
  return core.error { kind = "parse", message = string_format(fmt, ...) }
end

-- A 400 or 422 that names the structured-output parameter (or json_schema).
-- OpenAI and most servers answer 400; servers whose request parsing
-- refuses an unknown `type` answer 422 with a plain-text body (DeepSeek:
-- "Failed to deserialize the JSON body into the target type:
-- response_format: response_format.type `json_schema` is unavailable now").
local REFUSAL_STATUS = { [400] = true, [422] = true }

-- `also_param`: another `err.param` that counts (never searched for in the
-- message: "text" is in too many).
local function refuses (err, param, also_param)
  if err.status == nil then
    if err.kind ~= "api" then return false end
  elseif not REFUSAL_STATUS[err.status] then
    return false
  end
  if err.param == param or (also_param ~= nil and err.param == also_param) then return true end
  local msg = tostring(err.message or ""):lower()
  return msg:find(param, 1, true) ~= nil or msg:find("json_schema", 1, true) ~= nil
end


-- {======================================================
-- Chat completions
-- =======================================================

local chat = { api = "chat", fname = "chat" }
M.chat = chat

function chat.send (client, p) return client:chat_async(p) end

function chat.ask (p, text)
  p.messages = { { role = "user", content = text } }
  return p
end

-- (The copies hold what the encoder would send of the caller's list:
-- a proxy's n items, a __pairs list's entries; check.list_copy.)
function chat.prepare (params, wire)
  local msgs = check.list_copy(params.messages)
  wire.messages = msgs
  return msgs
end

function chat.history (wire) return wire.messages end

function chat.tool_definitions (ts) return ts:definitions() end

function chat.set_format (wire, o, mode)
  if mode == "json_object" then
    wire.response_format = { type = "json_object" }
    wire.messages = with_instruction(wire.messages, { role = "system", content = schema_instruction(o) })
  else
    wire.response_format = { type = "json_schema", json_schema = {
      name = o.schema_name, schema = o.wire_schema or o.schema, strict = o.strict or nil,
    } }
  end
  o.current_mode = mode
  return wire.messages
end

function chat.refuses_format (err) return refuses(err, "response_format") end

function chat.tool_calls (res)
  local choices = res.choices
  local choice = type(choices) == "table" and choices[1] or nil
  local msg = type(choice) == "table" and choice.message or nil
  if type(msg) ~= "table" then return nil end
  local calls = msg.tool_calls
  if calls == nil or calls == null then return nil end
  if type(calls) ~= "table" then
    return nil, parse_error("the reply's tool_calls is not a list (got %s)", type(calls))
  end
  -- (one call's object, not a list: that call, as a stream's is (TGI up to
  -- 3.1 streamed them so); the message holds the list, for the history)
  if calls[1] == nil and type(calls["function"]) == "table" then
    calls = { calls }
    msg.tool_calls = calls
  end
  if calls[1] == nil then return nil end
  for i, call in ipairs(calls) do
    if type(call) ~= "table" then
      return nil, parse_error("the reply's tool call %d is not a tool call object (got %s)", i, type(call))
    end
    local f = call["function"]
    if type(f) ~= "table" or type(f.name) ~= "string" then
      return nil, parse_error("the reply's tool call %d has no function name", i)
    end
  end
  return calls
end

local function append (d, item)
  d.messages[#d.messages + 1] = item
  d.added[#d.added + 1] = item
end

-- The reasoning a thinking model gave with its tool calls, copied into the
-- message that goes back (a reply of a round with tool calls): DeepSeek's
-- thinking mode and Kimi refuse the next request without it (400),
-- OpenRouter needs `reasoning_details` to let Claude or Gemini reason on
-- after a tool, Qwen3's chat template reads it. A reply of a round without
-- tools does not carry it (deepseek-reasoner refuses it in a request).
function M.keep_reasoning (m, msg)
  if type(msg.reasoning_content) == "string" and msg.reasoning_content ~= "" then
    m.reasoning_content = msg.reasoning_content
  end
  if type(msg.reasoning_details) == "table" and next(msg.reasoning_details) ~= nil then
    m.reasoning_details = msg.reasoning_details
  end
  return m
end

-- The ids the history's assistant messages already gave their calls.
local function ids_in (messages)
  local seen = {}
  for _, m in ipairs(messages) do
    if type(m) == "table" and type(m.tool_calls) == "table" then
      for _, c in ipairs(m.tool_calls) do
        if type(c) == "table" and type(c.id) == "string" then seen[c.id] = true end
      end
    end
  end
  return seen
end

local id_counter = 0
local B36 = "0123456789abcdefghijklmnopqrstuvwxyz"

-- The next id a call may be given: call00001..call99999, then "call" and 5
-- letters and digits (base 36: 60 million, more than a history can hold;
-- a history that held the 99,999 of the first form left none to give, and
-- the search for a free one never ended).
local function next_id ()
  id_counter = id_counter % 60466175 + 1   -- (36^5 - 1)
  if id_counter <= 99999 then return string_format("call%05d", id_counter) end
  local n, s = id_counter, ""
  for _ = 1, 5 do
    local r = n % 36
    s = B36:sub(r + 1, r + 1) .. s
    n = (n - r) / 36
  end
  return "call" .. s
end

-- Gives each call without an id of its own one: Gemini's OpenAI-compatible
-- endpoint and LM Studio send `"id": ""`, some servers none at all (in
-- stream deltas: StepFun), and a server may give two calls of one reply
-- the same id. A tool message must name its call (OpenAI answers 400
-- "Missing parameter 'tool_call_id'"; others "tool_calls.id ...
-- required"), and two calls of one id cannot be told apart. The new id is
-- 9 letters and digits, which Mistral demands, and none the history holds;
-- the reply's call is changed in place, so the records and the tool
-- message carry the same id. (An id an earlier turn used is kept: its
-- calls are answered before the next turn, and some servers read their
-- ids, as Kimi's "functions.NAME:0".)
local function give_ids (d, calls)
  local taken, mine
  for _, call in ipairs(calls) do
    taken, mine = taken or ids_in(d.messages), mine or {}
    local id = call.id
    if type(id) ~= "string" or id == "" or mine[id] then
      repeat
        id = next_id()
      until not taken[id] and not mine[id]
      call.id = id
    end
    mine[id] = true
  end
end

local function is_object (v) return type(v) == "table" and not is_array(v) end

-- The arguments text the history can carry for a call: vLLM, llama-server
-- and SGLang decode every past call's arguments to render their chat
-- template, and answer 400 to text that is not a JSON object (cut JSON, an
-- array: vllm#43995, sglang#28035) in every later request, so a model's
-- malformed call, which the loop sends back as an error to recover from,
-- would end the dialogue and poison the conversation. Such text goes as
-- `{}` (the call is answered with its error), an object encoded twice as
-- the object's text (what the tool was given). No arguments at all (a
-- tool without parameters: some servers leave the field out or null) go
-- as `{}` too: Azure answers 400 "Missing required parameter ...arguments".
-- nil: the text as it is.
local function sendable_args (raw)
  if raw == nil or raw == null then return "{}" end
  if type(raw) ~= "string" then return nil end
  local v = json_decode(raw)
  if is_object(v) then return nil end
  if type(v) == "string" and is_object(json_decode(v)) then return v end
  return "{}"
end

-- The reply's calls as the history sends them: the same list, or a copy
-- where arguments changed (the reply and the records keep what came). A
-- call without its `type` (absent, "" or null: vLLM's streamed calls,
-- gateways that convert Claude's) goes with "function": OpenAI and Azure
-- answer 400 "Missing required parameter: 'messages[1].tool_calls[0].type'".
local function history_calls (calls)
  local out = calls
  for i, call in ipairs(calls) do
    local f = call["function"]
    local args = sendable_args(f.arguments)
    local untyped = call.type == nil or call.type == "" or call.type == null
    if args ~= nil or untyped then
      if out == calls then
        out = {}
        for j, c in ipairs(calls) do out[j] = c end
      end
      local cf = {}
      for k, v in pairs(f) do cf[k] = v end
      if args ~= nil then cf.arguments = args end
      local c = {}
      for k, v in pairs(call) do c[k] = v end
      c["function"] = cf
      if untyped then c.type = "function" end
      out[i] = c
    end
  end
  return out
end

function chat.add_calls (d, res)
  local msg = res.choices[1].message
  give_ids(d, msg.tool_calls)
  local m = { role = msg.role or "assistant", content = msg.content, tool_calls = history_calls(msg.tool_calls) }
  if m.content == nil then m.content = null end
  if msg.name ~= nil then m.name = msg.name end
  append(d, M.keep_reasoning(m, msg))
end

function chat.add_output (d, call, content)
  append(d, { role = "tool", tool_call_id = call.id, content = content })
end

function chat.parse (res, o)
  local first_err
  local choices = type(res.choices) == "table" and res.choices or {}
  for i, choice in ipairs(choices) do
    if type(choice) ~= "table" then choice = {} end
    local msg = type(choice.message) == "table" and choice.message or {}
    local err
    if type(msg.refusal) == "string" and msg.refusal ~= "" then
      err = core.error { kind = "refusal", message = "the model refused: " .. msg.refusal, refusal = msg.refusal }
    elseif choice.finish_reason == "length" or choice.finish_reason == "content_filter" then
      -- (a content filter cuts the reply as max_tokens does: say which,
      -- not "not valid JSON" about a fragment; as the Responses API's reason)
      local why = choice.finish_reason == "length" and "raise max_tokens" or "the content filter stopped it"
      err = core.error {
        kind = "incomplete", reason = choice.finish_reason,
        message = string_format("the structured reply was cut short (finish_reason %q): %s", choice.finish_reason, why),
        text = util.content_text(msg.content),
      }
    else
      -- (a Magistral reply's content is a list of parts: its text parts, as res.text)
      local text = util.content_text(msg.content) or msg.content
      local parsed, perr = schema_mod.parse(text, o.schema, "reply")
      if parsed ~= nil then choice.parsed = parsed else err = perr end
      -- (a leading <think> block, which parse skips, is the reasoning: kept where a server
      -- that splits it out, DeepSeek's or vLLM's reasoning parser, puts it)
      local thinking = schema_mod.split_think(text)
      if thinking and thinking ~= "" and msg.reasoning_content == nil then msg.reasoning_content = thinking end
    end
    if err then
      choice.violations = err.violations
      if i == 1 then first_err = err end
    end
  end
  if type(choices[1]) ~= "table" then
    first_err = core.error { kind = "schema", message = "the response has no choices",
                             violations = { { path = "$", message = "no choices" } } }
  end
  if first_err then
    first_err.response = res
    return nil, first_err
  end
  res.parsed = choices[1].parsed
  return res
end

function chat.finish_error () return nil end

-- }======================================================


-- {======================================================
-- The Responses API
-- =======================================================

local responses = { api = "responses", fname = "respond" }
M.responses = responses

function responses.send (client, p) return client:respond_async(p) end

function responses.ask (p, text)
  p.input = { { role = "user", content = text } }
  return p
end

-- The input as a list of items (a string is one user message).
local function input_list (input)
  if type(input) == "string" then return { { role = "user", content = input } } end
  if type(input) ~= "table" then return {} end
  return check.list_copy(input)
end

function responses.prepare (params, wire)
  wire.input = input_list(params.input)
  return wire.input
end

function responses.history (wire) return wire.input end

function responses.tool_definitions (ts)
  local defs = {}
  for i, t in ipairs(ts:definitions()) do
    local f = t["function"]
    -- (the Responses API's strict defaults to true: say what chat means)
    defs[i] = { type = "function", name = f.name, description = f.description, parameters = f.parameters,
                strict = f.strict == true }
  end
  return defs
end

function responses.set_format (wire, o, mode)
  local text = {}
  for k, v in pairs(type(wire.text) == "table" and wire.text or {}) do text[k] = v end
  if mode == "json_object" then
    text.format = { type = "json_object" }
    wire.input = with_instruction(input_list(wire.input), { role = "developer", content = schema_instruction(o) })
  else
    text.format = { type = "json_schema", name = o.schema_name, schema = o.wire_schema or o.schema,
                    strict = o.strict or nil }
  end
  wire.text = text
  o.current_mode = mode
  return wire.input
end

function responses.refuses_format (err) return refuses(err, "text.format", "text") end

function responses.tool_calls (res)
  local output = res.output
  if type(output) ~= "table" then
    return nil, parse_error("the response's output is not a list (got %s)", type(output))
  end
  local calls
  for i, item in ipairs(output) do
    if type(item) ~= "table" then
      return nil, parse_error("the response's output item %d is not an object (got %s)", i, type(item))
    end
    if item.type == "function_call" then
      if type(item.name) ~= "string" then
        return nil, parse_error("the response's function call (output item %d) has no name", i)
      end
      calls = calls or {}
      calls[#calls + 1] = { id = item.call_id, name = item.name, arguments = item.arguments }
    end
  end
  return calls
end

-- Whether the request names a conversation (`conversation = "conv_..."`
-- or `{ id = }`): the server adds each response's items to it.
local function in_conversation (d)
  local c = d.wire.conversation
  return c ~= nil and c ~= null
end

-- With the server keeping state (previous_response_id, `store` not false,
-- or a conversation) the next request sends only the tool outputs after
-- the response; else the whole history goes again, the response's output
-- items included.
local function server_side (d)
  return d.wire.store ~= false or in_conversation(d)
end

-- Whether an output item can go back in a later input. A reasoning item
-- goes back by its id, which only a stored response keeps, or with its
-- encrypted_content (`include = { "reasoning.encrypted_content" }`); with
-- `store = false` and neither, OpenAI answers 404 ("Item with id 'rs_...'
-- not found. Items are not persisted when `store` is set to false"), so it
-- stays out (the reasoning is lost, the loop goes on).
local function replayable (d, item)
  return not (item.type == "reasoning" and d.wire.store == false and type(item.encrypted_content) ~= "string")
end

function responses.add_calls (d, res)
  if server_side(d) then
    -- (a conversation already holds the response, and OpenAI refuses
    -- previous_response_id beside it: 400 "Mutually exclusive parameters")
    if not in_conversation(d) then d.wire.previous_response_id = res.id end
    d.wire.input = {}   -- (instructions stay in wire: a chain does not carry them over)
    d.messages = d.wire.input
  end
  for _, item in ipairs(res.output) do
    if replayable(d, item) then
      -- (the whole input goes again: vLLM decodes a past call's arguments
      -- there too, see sendable_args; the item is copied, the reply kept)
      local args = item.type == "function_call" and sendable_args(item.arguments) or nil
      if args ~= nil then
        local copy = {}
        for k, v in pairs(item) do copy[k] = v end
        copy.arguments = args
        item = copy
      end
      if not server_side(d) then d.wire.input[#d.wire.input + 1] = item end
      d.added[#d.added + 1] = item
    end
  end
end

function responses.add_output (d, call, content)
  local item = { type = "function_call_output", call_id = call.id, output = content }
  d.wire.input[#d.wire.input + 1] = item
  d.added[#d.added + 1] = item
end

-- The refusal part of a response's messages, or nil.
local function refusal_of (res)
  for _, item in ipairs(type(res.output) == "table" and res.output or {}) do
    if type(item) == "table" and item.type == "message" and type(item.content) == "table" then
      for _, part in ipairs(item.content) do
        if type(part) == "table" and part.type == "refusal" then return tostring(part.refusal) end
      end
    end
  end
  return nil
end

function responses.finish_error (res)
  if res.status ~= "incomplete" then return nil end
  local reason = type(res.incomplete_details) == "table" and res.incomplete_details.reason or nil
  -- (a content filter cuts the response as max_output_tokens does: say
  -- which, as chat's finish_reason "content_filter")
  local fix = reason == "content_filter" and "the content filter stopped it" or "raise max_output_tokens"
  return core.error {
    kind = "incomplete", reason = reason, text = res.text, response = res,
    message = "the response is incomplete (" .. tostring(reason or "no reason given") .. "): " .. fix,
  }
end

function responses.parse (res, o)
  local refusal = refusal_of(res)
  local parsed, err
  if refusal then
    err = core.error { kind = "refusal", message = "the model refused: " .. refusal, refusal = refusal }
  else
    parsed, err = schema_mod.parse(res.text, o.schema, "reply")
    if parsed ~= nil then
      res.parsed = parsed
      return res
    end
  end
  err.response = res
  return nil, err
end

-- }======================================================

--- The adapter of params `p`: Responses params have `input` and no `messages`.
function M.of (p)
  if p.messages == nil and p.input ~= nil then return responses end
  return chat
end

return M
