--- aigc devserver: POST /v1/chat/completions -- the reply of each choice
-- (text, tool calls or structured output), plain or streamed as OpenAI
-- streams it (see the devserver header, REPLIES and STREAMING).
-- Part of the devserver package.

local json = require "aigc.devserver.json"
local util = require "aigc.devserver.util"
local errors = require "aigc.devserver.errors"
local replies = require "aigc.devserver.replies"
local schema = require "aigc.devserver.schema"
local tools = require "aigc.devserver.tools"
local tokens = require "aigc.devserver.tokens"

local concat = table.concat
local tointeger = math.tointeger
local O, A, RAW, NULL = json.O, json.A, json.RAW, json.NULL
local uid, content_text, filler_json = util.uid, util.content_text, util.filler_json
local error_resp, opt_int, opt_num, opt_stop = errors.error_resp, errors.opt_int, errors.opt_num, errors.opt_stop

local M = { FINGERPRINT = "fp_aigc_dev" }
local FINGERPRINT = M.FINGERPRINT

--- usage as chat and completions report it.
function M.usage (p, c) return O("prompt_tokens", p, "completion_tokens", c, "total_tokens", p + c) end

--- stream_options of a request.
function M.stream_opts (body)
  local so = body.stream_options
  return { include_usage = type(so) == "table" and so.include_usage == true }
end

--- Interleave per-choice event lists: one of each in turn.
function M.round_robin (per)
  local out, k, more = {}, 1, true
  while more do
    more = false
    for _, list in ipairs(per) do
      if list[k] then out[#out + 1] = list[k]; more = true end
    end
    k = k + 1
  end
  return out
end

--- The seed of a request body (an integer or a number), or nil.
function M.seed (body)
  local seed = body.seed
  if type(seed) == "number" then return tointeger(seed) or seed end
  return nil
end

-- Validate the fields chat reads; returns the parameters or nil and an error response.
local function params (body, fault)
  local err = errors.check_messages(body.messages)
  if err then return nil, err end
  err = errors.check_default_temperature(body, fault)
  if err then return nil, err end
  local p, e = {}, {}
  p.n, e[1] = opt_int(body, "n", 1, 128)
  p.max, e[2] = opt_int(body, "max_completion_tokens", 1)
  p.max_tokens, e[3] = opt_int(body, "max_tokens", 1)
  p.temperature, e[4] = opt_num(body, "temperature", 0, 2, 1)
  e[5] = select(2, opt_num(body, "top_p", 0, 1, 1))
  p.stops, e[6] = opt_stop(body)
  p.top, e[7] = opt_int(body, "top_logprobs", 0, 20)
  p.tools, e[8] = errors.check_tools(body.tools)
  for i = 1, 8 do if e[i] then return nil, e[i] end end
  p.n, p.max, p.top = p.n or 1, p.max or p.max_tokens, p.top or 0
  if fault["ignore-n"] then p.n = 1 end
  p.want_lp = body.logprobs == true
  local rf = type(body.response_format) == "table" and body.response_format or nil
  if rf and rf.type == "json_schema" and fault["no-json-schema"] == "422" then
    return nil, { status = 422, ctype = "text/plain; charset=utf-8", headers = {},
                  body = "Failed to deserialize the JSON body into the target type: response_format: "
                         .. "response_format.type `json_schema` is unavailable now at line 1 column 120" }
  end
  if rf and rf.type == "json_schema" and fault["no-json-schema"] then
    return nil, error_resp(400, "Invalid parameter: 'response_format' of type 'json_schema' is not supported with "
      .. "this model.", "invalid_request_error", "response_format", "unsupported_value")
  end
  if rf and rf.type == "json_schema" then
    local js = type(rf.json_schema) == "table" and rf.json_schema or {}
    p.format = { type = "json_schema", schema = type(js.schema) == "table" and js.schema or { type = "object" } }
  elseif rf and rf.type == "json_object" then
    p.format = { type = "json_object" }
  end
  return p
end

-- One choice: tool calls, or a text cut by stop / max tokens, with logprobs.
local function make_choice (ctx, body, p, fault)
  local ch = { index = ctx.index }
  ch.calls = tools.plan_calls(ctx, body, p.tools)
  if ch.calls then
    ch.finish, ch.count = "tool_calls", 0
    for _, c in ipairs(ch.calls) do ch.count = ch.count + 1 + #c.pieces end
  else
    local text = schema.reply_for(ctx, p.format, body.messages, fault)
    if fault["echo-key"] then text = text .. " Your API key is " .. fault.echo_value .. "." end
    ch.tokens, ch.finish = tokens.limit(text, p.stops, p.max)
    ch.content, ch.count = concat(ch.tokens), #ch.tokens
    if p.want_lp then
      ch.lp = {}
      for i, tok in ipairs(ch.tokens) do ch.lp[i] = tokens.chat_logprob(tok, i, p.top) end
    end
  end
  if fault["tool-calls"] then -- a hostile reply: tool_calls holds a number
    ch.calls, ch.tokens, ch.content, ch.lp, ch.hostile, ch.finish = nil, {}, nil, nil, true, "tool_calls"
  end
  return ch
end

local function plain_object (id, created, model, choices, usage)
  local out = A()
  for i, ch in ipairs(choices) do
    local calls = ch.hostile and RAW("[1]") or nil
    if ch.calls then
      calls = A()
      for k, c in ipairs(ch.calls) do
        calls[k] = O("id", c.id, "type", "function", "function", O("name", c.name, "arguments", c.arguments))
      end
    end
    out[i] = O("index", ch.index,
      "message", O("role", "assistant", "content", ch.content or NULL, "tool_calls", calls, "refusal", NULL),
      "logprobs", ch.lp and O("content", A(ch.lp), "refusal", NULL) or NULL,
      "finish_reason", ch.finish)
  end
  return O("id", id, "object", "chat.completion", "created", created, "model", model,
    "system_fingerprint", FINGERPRINT, "choices", out, "usage", usage)
end

local function cobj (index, delta, lp, finish)
  return O("index", index, "delta", delta, "logprobs", lp or NULL, "finish_reason", finish or NULL)
end

-- The deltas of one choice, in order.
local function choice_deltas (ch, first, fault)
  local list = {}
  if ch.calls then
    for k, c in ipairs(ch.calls) do
      local head = A { O("index", k - 1, "id", c.id, "type", "function",
        "function", O("name", c.name, "arguments", "")) }
      list[#list + 1] = cobj(ch.index, k == 1
        and O("role", "assistant", "content", NULL, "tool_calls", head, "refusal", NULL)
        or O("tool_calls", head))
      for _, piece in ipairs(c.pieces) do
        local tc = fault["repeat-ids"]
          and O("index", k - 1, "id", c.id, "type", "function", "function", O("name", c.name, "arguments", piece))
          or O("index", k - 1, "function", O("arguments", piece))
        list[#list + 1] = cobj(ch.index, O("tool_calls", A { tc }))
      end
    end
  elseif ch.hostile then
    list[1] = cobj(ch.index, O("role", "assistant", "content", NULL, "refusal", NULL))
    list[2] = cobj(ch.index, O("tool_calls", RAW("[1]")))
  else
    list[1] = cobj(ch.index, O("role", "assistant", "content", "", "refusal", NULL))
    for i, tok in ipairs(ch.tokens) do
      list[#list + 1] = cobj(ch.index, O("content", tok), ch.lp and O("content", A { ch.lp[i] }, "refusal", NULL))
    end
    if fault["dup-key"] and first and list[2] then -- the 2nd content delta (the role delta has content "")
      list[2].delta = RAW('{"content":"a","content":"b"}')
    end
  end
  list[#list + 1] = cobj(ch.index, O(), nil, not fault["no-finish-reason"] and ch.finish or nil)
  return list
end

local function stream_events (id, created, model, choices, usage, body, fault)
  local so = M.stream_opts(body)
  local function chunk (choice_list)
    return O("id", id, "object", "chat.completion.chunk", "created", created, "model", model,
      "system_fingerprint", FINGERPRINT, "choices", A(choice_list), "usage", so.include_usage and NULL or nil)
  end
  local per = {}
  for ci, ch in ipairs(choices) do per[ci] = choice_deltas(ch, ci == 1, fault) end
  local events = {}
  for _, c in ipairs(M.round_robin(per)) do events[#events + 1] = { data = json.encode(chunk { c }) } end
  if fault["event-bytes"] then
    table.insert(events, 2, { data = json.encode(chunk { cobj(0, O("content", filler_json(fault["event-bytes"]))) }) })
  end
  if so.include_usage then
    events[#events + 1] = { data = json.encode(O("id", id, "object", "chat.completion.chunk", "created", created,
      "model", model, "system_fingerprint", FINGERPRINT, "choices", A(), "usage", usage)) }
  end
  return events
end

--- POST /v1/chat/completions (and Azure's deployment path).
function M.chat (req)
  local body, model, fault = req.body, req.model, req.fault
  local p, err = params(body, fault)
  if not p then return err end
  local msgs = body.messages
  local ctx = replies.conversation(model, msgs, M.seed(body), p.temperature)
  local texts = {}
  for i, m in ipairs(msgs) do texts[i] = content_text(m.content) end
  local prompt_tokens, count = tokens.prompt(req.tokenizer, texts), 0
  local choices = {}
  for i = 0, p.n - 1 do
    ctx.index = i
    choices[i + 1] = make_choice(ctx, body, p, fault)
    count = count + choices[i + 1].count
  end
  local usage = M.usage(prompt_tokens, tokens.completion(req.tokenizer, count))
  local id, created = "chatcmpl-" .. uid(), os.time()
  local resp = { status = 200, headers = {}, tokens = usage.total_tokens }
  if body.stream ~= true or fault.body or fault["plain-for-stream"] then
    resp.object, resp.kind = plain_object(id, created, model, choices, usage), "chat"
  else
    resp.events = stream_events(id, created, model, choices, usage, body, fault)
  end
  return resp
end

return M
