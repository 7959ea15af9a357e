--- aigc devserver: building a Responses API response (POST /v1/responses)
-- from its request -- the input as chat-style messages (previous_response_id
-- chain first), the output items (reasoning, message with output_text or a
-- refusal, function calls), usage -- exactly in the shapes of
-- ../shared/openapi/openapi.yaml (Response, OutputItem, ResponseUsage).
-- The streamed form is made from the same items (aigc.devserver.responses_stream).
-- Part of the devserver package.

local json = require "aigc.devserver.json"
local util = require "aigc.devserver.util"
local errors = require "aigc.devserver.errors"
local replies = require "aigc.devserver.replies"
local schema = require "aigc.devserver.schema"
local tools = require "aigc.devserver.tools"
local tokens = require "aigc.devserver.tokens"
local chat = require "aigc.devserver.chat"

local find, format, lower = string.find, string.format, string.lower
local concat = table.concat
local O, A, NULL = json.O, json.A, json.NULL
local uid, content_text, words = util.uid, util.content_text, util.words
local bad_param, isnull, opt_int, opt_num = errors.bad_param, errors.isnull, errors.opt_int, errors.opt_num

local M = {}

M.REFUSAL = "I'm sorry, but I can't help with that."

-- The input as a list of items (a string is one user message).
local function input_items (input)
  if type(input) == "string" then return { { type = "message", role = "user", content = input } } end
  local items = {}
  for i, it in ipairs(input) do
    if type(it) ~= "table" then return nil, i end
    local t = it.type
    if t == nil and type(it.role) == "string" then t = "message" end
    if t ~= "message" and t ~= "function_call" and t ~= "function_call_output" and t ~= "reasoning"
      and t ~= "item_reference" then
      return nil, i
    end
    if t == "message" and (type(it.role) ~= "string" or (type(it.content) ~= "string" and type(it.content) ~= "table"))
    then return nil, i end
    items[i] = it
  end
  return items
end

--- The input items as chat-style messages (for the reply rules).
function M.messages_of (items)
  local msgs = {}
  for _, it in ipairs(items) do
    local t = it.type or "message"
    if t == "message" then msgs[#msgs + 1] = { role = it.role, content = it.content }
    elseif t == "function_call" then msgs[#msgs + 1] = { role = "assistant", content = "" }
    elseif t == "function_call_output" then
      -- (a string, or a list of input_text / input_image / input_file
      -- parts: their text, as a chat tool message's parts)
      local out = it.output
      local parts = type(out) == "table" and #out > 0
      msgs[#msgs + 1] = { role = "tool", content = (type(out) == "string" or parts) and out or json.encode(out) }
    end
  end
  return msgs
end

-- Function tools in the internal form {name =, parameters =}; other tool
-- types (web_search ...) are accepted and never called.
local function function_tools (list)
  if isnull(list) then return nil end
  if type(list) ~= "table" then
    return nil, bad_param("tools", "Invalid type for 'tools': expected an array.", "invalid_type")
  end
  local out = {}
  for i, t in ipairs(list) do
    if type(t) ~= "table" or type(t.type) ~= "string" then
      return nil, bad_param("tools", format("Invalid value for 'tools[%d]': expected an object with a 'type'.", i - 1),
        "invalid_value")
    end
    if t.type == "function" then
      if type(t.name) ~= "string" then
        return nil, bad_param(format("tools[%d].name", i - 1), "Missing required parameter: 'tools[" .. (i - 1)
          .. "].name'.", "missing_required_parameter")
      end
      out[#out + 1] = { name = t.name, parameters = type(t.parameters) == "table" and t.parameters or nil }
    end
  end
  return out
end

-- tool_choice of the Responses API in chat's form (for tools.plan_calls).
local function chat_tool_choice (tc)
  if type(tc) == "table" and tc.type == "function" and type(tc.name) == "string" then
    return { type = "function", ["function"] = { name = tc.name } }
  end
  return tc
end

-- Whether the response has a reasoning item, and its summary setting.
local function reasoning_of (body, model)
  local r = type(body.reasoning) == "table" and body.reasoning or nil
  local summary = r and r.summary
  if isnull(summary) then summary = r and r.generate_summary end
  if isnull(summary) then summary = nil end
  local reasons = find(lower(model), "reason", 1, true) ~= nil
  if not r and not reasons then return nil end
  if summary == nil and reasons then summary = "auto" end
  return { effort = r and not isnull(r.effort) and r.effort or (reasons and "medium" or NULL),
           summary = summary ~= "none" and summary or nil, given = r }
end

--- Validate a create request; returns the parameters or nil and an error response.
function M.params (body, srv)
  local p, e = {}, {}
  if isnull(body.input) and isnull(body.previous_response_id) then
    return nil, bad_param("input", "Missing required parameter: 'input'.", "missing_required_parameter")
  end
  if not isnull(body.input) then
    if type(body.input) ~= "string" and type(body.input) ~= "table" then
      return nil, bad_param("input", "Invalid type for 'input': expected a string or an array of input items.",
        "invalid_type")
    end
    local items, bad = input_items(body.input)
    if not items then
      return nil, bad_param(format("input[%d]", bad - 1), format("Invalid value for 'input[%d]': expected an input "
        .. "item (a message with a role and content, function_call, or function_call_output).", bad - 1),
        "invalid_value")
    end
    p.items = items
    -- (as OpenAI: a reasoning item is replayed by its id, which only a
    -- stored response keeps, or by its encrypted_content)
    local kept = srv.kept.responses
    for _, it in ipairs(items) do
      if it.type == "reasoning" and type(it.encrypted_content) ~= "string" and type(it.id) == "string"
        and not (kept and kept.items[it.id]) then
        return nil, errors.error_resp(404, format("Item with id '%s' not found. Items are not persisted when "
          .. "`store` is set to false. Try again with `store` set to true, or remove this item from your input.",
          it.id), "invalid_request_error", "input", NULL)
      end
    end
  else
    p.items = {}
  end
  p.max, e[1] = opt_int(body, "max_output_tokens")
  if p.max and p.max < 16 then   -- (the spec's minimum: OpenAI refuses less)
    e[1] = bad_param("max_output_tokens", format("Invalid 'max_output_tokens': integer below minimum value. "
      .. "Expected a value >= 16, but got %d instead.", p.max), "integer_below_min_value")
  end
  p.temperature, e[2] = opt_num(body, "temperature", 0, 2, 1)
  p.top_p, e[3] = opt_num(body, "top_p", 0, 1, 1)
  p.tools, e[4] = function_tools(body.tools)
  for i = 1, 4 do if e[i] then return nil, e[i] end end
  if not isnull(body.instructions) and type(body.instructions) ~= "string" then
    return nil, bad_param("instructions", "Invalid type for 'instructions': expected a string.", "invalid_type")
  end
  local prev = body.previous_response_id
  -- (the spec: previous_response_id "cannot be used in conjunction with conversation")
  if not isnull(prev) and not isnull(body.conversation) then
    return nil, bad_param("previous_response_id", "Mutually exclusive parameters: 'previous_response_id' "
      .. "cannot be used with 'conversation'.", "mutually_exclusive_parameters")
  end
  if not isnull(prev) then
    local kept = srv.kept.responses
    local stored = type(prev) == "string" and kept and kept.by_id[prev]
    if not stored then
      return nil, errors.error_resp(400, format("Previous response with id '%s' not found.", tostring(prev)),
        "invalid_request_error", "previous_response_id", "previous_response_not_found")
    end
    p.previous = stored
  end
  local text = type(body.text) == "table" and body.text or nil
  local fmt = text and type(text.format) == "table" and text.format or nil
  if fmt and fmt.type == "json_schema" then
    p.format = { type = "json_schema", schema = type(fmt.schema) == "table" and fmt.schema or { type = "object" } }
  elseif fmt and fmt.type == "json_object" then
    p.format = { type = "json_object" }
  end
  return p
end

-- Reasoning summary parts: deterministic text about the request.
local function summary_parts (ctx, setting)
  local q = ctx.last_text:gsub("%s+", " "):sub(1, 60)
  local parts = { format("**Understanding the request**\n\nThe user asks: \"%s\". I should answer directly and "
    .. "keep it short.", q) }
  if setting == "detailed" then
    parts[2] = "**Checking the answer**\n\nI compare the answer with what was asked and make sure nothing is missing."
  end
  return parts
end

--- The messages of the chain that ends with stored response `r` (nil:
-- none), oldest first: each response keeps its own turn (`turn`) and a
-- link to the one before (`previous`). Only a json_object reply reads
-- them (the schema a message gives); counted in `store.read`.
function M.history (r, store)
  local chain = {}
  while r do chain[#chain + 1] = r; r = r.previous end
  local msgs = {}
  for i = #chain, 1, -1 do
    for _, m in ipairs(chain[i].turn) do msgs[#msgs + 1] = m end
  end
  if store then store.read = store.read + #msgs end
  return msgs
end

--- What a chain's messages add up to -- `words` and `count` (for its
-- input tokens), `turn`, `last_text`, `images` (for the reply) -- from
-- `tally` (the turns before, nil: none) and `msgs`. A stored response keeps
-- its chain's (`tally`), so a turn counts its own messages only: each
-- counted the whole chain again, N turns N^2/2 messages.
function M.tally (tally, msgs)
  local t = { words = 0, count = 0, turn = 0, last_text = "", images = 0 }
  for k, v in pairs(tally or {}) do t[k] = v end
  for _, m in ipairs(msgs) do
    local text = content_text(m.content)
    t.words, t.count = t.words + words(text), t.count + 1
    if m.role == "user" then t.turn, t.last_text, t.images = t.turn + 1, text, util.count_images(m.content) end
  end
  return t
end

--- Plan the whole response: its output items with their pieces (for
-- streaming), usage, status. `p` from M.params; `fault` the request's fault.
function M.plan (req, p)
  local body, model, fault = req.body, req.model, req.fault
  local prev = p.previous and p.previous.tally   -- (its chain's counts, kept: nothing before is read)
  local msgs = M.messages_of(p.items)
  if type(body.instructions) == "string" then
    table.insert(msgs, 1, { role = "developer", content = body.instructions })
  end
  local ctx = replies.conversation(model, (prev or #msgs > 0) and msgs or { { role = "user", content = "" } },
    chat.seed(body), p.temperature, prev)
  local sum = M.tally(prev, msgs)
  local plan = { items = {}, status = "completed", input_tokens = tokens.prompt_counted(req.tokenizer, sum.words,
                 sum.count), msgs = msgs, reasoning = reasoning_of(body, model), count = 0, reasoning_count = 0 }
  if p.format and p.format.type == "json_object" and p.previous then   -- (a schema a message before gives)
    plan.msgs = M.history(p.previous, req.srv.kept.responses)
    if msgs[1] and msgs[1].role == "developer" then table.insert(plan.msgs, 1, msgs[1]) end
    for i = msgs[1] and msgs[1].role == "developer" and 2 or 1, #msgs do plan.msgs[#plan.msgs + 1] = msgs[i] end
  end
  if plan.reasoning then
    local parts = plan.reasoning.summary and summary_parts(ctx, plan.reasoning.summary) or {}
    plan.items[1] = { type = "reasoning", id = "rs_" .. uid(), summary = parts }
    for _, what in ipairs(type(body.include) == "table" and body.include or {}) do
      if what == "reasoning.encrypted_content" then plan.items[1].encrypted_content = "gAAAA" .. uid() end
    end
    for _, s in ipairs(parts) do plan.reasoning_count = plan.reasoning_count + words(s) end
    plan.reasoning_count = plan.reasoning_count + 8 -- the hidden reasoning itself
  end
  local calls = tools.plan_calls(ctx, { tool_choice = chat_tool_choice(body.tool_choice),
    parallel_tool_calls = body.parallel_tool_calls }, p.tools)
  if calls then
    for _, c in ipairs(calls) do
      plan.items[#plan.items + 1] = { type = "function_call", id = "fc_" .. uid(), call_id = c.id, name = c.name,
                                      arguments = c.arguments, pieces = c.pieces }
      plan.count = plan.count + 1 + #c.pieces
    end
  else
    M.plan_message(plan, ctx, p, fault)
  end
  local out_tokens = tokens.completion(req.tokenizer, plan.count + plan.reasoning_count)
  plan.usage = O("input_tokens", plan.input_tokens, "input_tokens_details", O("cached_tokens", 0,
      "cache_write_tokens", 0), "output_tokens", out_tokens,
    "output_tokens_details", O("reasoning_tokens", tokens.completion(req.tokenizer, plan.reasoning_count)),
    "total_tokens", plan.input_tokens + out_tokens)
  -- (the chain's messages, needed for planning only: a stored response kept
  -- them, and so the whole history again in each turn of a chain)
  plan.msgs = nil
  return plan
end

-- The message item: output_text cut by max_output_tokens (status
-- incomplete), or a refusal (fault `refusal`).
function M.plan_message (plan, ctx, p, fault)
  local item = { type = "message", id = "msg_" .. uid() }
  if fault.refusal then
    item.refusal = M.REFUSAL
    item.tokens = util.tokenize(M.REFUSAL)
  else
    local text = schema.reply_for(ctx, p.format, plan.msgs, fault)
    if fault["echo-key"] then text = text .. " Your API key is " .. fault.echo_value .. "." end
    local max = p.max
    if fault.incomplete then max = math.max(1, #util.tokenize(text) // 2) end
    local toks, finish = tokens.limit(text, nil, max)
    item.tokens, item.text = toks, concat(toks)
    if finish == "length" then
      plan.status, plan.incomplete = "incomplete", "max_output_tokens"
      item.status = "incomplete"
    end
  end
  plan.count = plan.count + #item.tokens
  plan.items[#plan.items + 1] = item
end

--- An output item as the API shows it; `state` "in_progress" gives the
-- empty shape of output_item.added.
function M.item_obj (it, state)
  local done = state ~= "in_progress"
  if it.type == "reasoning" then
    local summary = A()
    if done then for i, s in ipairs(it.summary) do summary[i] = O("type", "summary_text", "text", s) end end
    return O("id", it.id, "type", "reasoning", "summary", summary,
      "encrypted_content", done and it.encrypted_content or nil)
  elseif it.type == "function_call" then
    return O("id", it.id, "type", "function_call", "status", done and "completed" or "in_progress",
      "arguments", done and it.arguments or "", "call_id", it.call_id, "name", it.name)
  end
  local content = A()
  if done then content[1] = M.part_obj(it, true) end
  return O("id", it.id, "type", "message", "status", done and (it.status or "completed") or "in_progress",
    "content", content, "role", "assistant")
end

--- The content part of a message item (empty while streaming starts).
function M.part_obj (it, done)
  if it.refusal then return O("type", "refusal", "refusal", done and it.refusal or "") end
  return O("type", "output_text", "annotations", A(), "logprobs", A(), "text", done and it.text or "")
end

--- The Response object. `state`: nil (final), "in_progress", "queued", or a
-- status override ("failed", "cancelled"); `output` overrides the items.
function M.response_obj (r, state, output)
  local body, plan = r.body, r.plan
  local status = state or plan.status
  local final = status ~= "in_progress" and status ~= "queued"
  local out = A()
  if output then out = output
  elseif final then for i, it in ipairs(plan.items) do out[i] = M.item_obj(it) end end
  local reasoning = plan.reasoning and O("effort", plan.reasoning.effort, "summary", plan.reasoning.summary or NULL)
    or O("effort", NULL, "summary", NULL)
  return O("id", r.id, "object", "response", "created_at", r.created_at, "status", status,
    "background", body.background == true, "completed_at", status == "completed" and (r.completed_at or os.time())
      or NULL,
    "error", status == "failed" and r.error or NULL,   -- (a queued one fails later: no error yet)
    "incomplete_details", status == "incomplete" and O("reason", plan.incomplete or "max_output_tokens") or NULL,
    "instructions", body.instructions or NULL, "max_output_tokens", body.max_output_tokens or NULL,
    "model", r.model, "output", out, "parallel_tool_calls", body.parallel_tool_calls ~= false,
    "previous_response_id", body.previous_response_id or NULL, "reasoning", reasoning,
    "service_tier", "default", "store", body.store ~= false, "temperature", body.temperature or 1,
    "text", type(body.text) == "table" and body.text or O("format", O("type", "text")),
    "tool_choice", body.tool_choice or "auto", "tools", type(body.tools) == "table" and body.tools or A(),
    "top_p", body.top_p or 1, "truncation", body.truncation or "disabled",
    "usage", final and plan.usage or nil, "user", type(body.user) == "string" and body.user or nil,
    "metadata", type(body.metadata) == "table" and body.metadata or O())
end

return M
