--- aigc devserver: POST /v1/completions -- prompts as strings or token
-- arrays, n per prompt, echo, logprobs, 16 tokens by default as OpenAI does.
-- Part of the devserver package.

local json = require "aigc.devserver.json"
local util = require "aigc.devserver.util"
local errors = require "aigc.devserver.errors"
local replies = require "aigc.devserver.replies"
local tokens = require "aigc.devserver.tokens"
local chat = require "aigc.devserver.chat"

local concat = table.concat
local tointeger = math.tointeger
local O, A, NULL = json.O, json.A, json.NULL
local uid, words, tokenize, filler_json = util.uid, util.words, util.tokenize, util.filler_json
local bad_param, isnull, opt_int, opt_num, opt_stop = errors.bad_param, errors.isnull, errors.opt_int, errors.opt_num,
  errors.opt_stop
local detokenize, is_int_array, limit, completion_logprobs = tokens.detokenize, tokens.is_int_array, tokens.limit,
  tokens.completion_logprobs
local usage_obj, stream_opts, round_robin = chat.usage, chat.stream_opts, chat.round_robin
local conversation, reply_text = replies.conversation, replies.reply_text

local M = {}

-- Prompts as a list of {text =, tokens =} (tokens: prompt token count).
local function prompts_of (p)
  if type(p) == "string" then return { { text = p, tokens = words(p) } } end
  if type(p) ~= "table" or #p == 0 then return nil end
  if is_int_array(p) then return { { text = detokenize(p), tokens = #p } } end
  local out = {}
  for i, x in ipairs(p) do
    if type(x) == "string" then out[i] = { text = x, tokens = words(x) }
    elseif is_int_array(x) then out[i] = { text = detokenize(x), tokens = #x }
    else return nil end
  end
  return out
end

-- Validate the fields completions read; returns the parameters or nil and an error response.
local function params (body)
  if isnull(body.prompt) then
    return nil, bad_param("prompt", "Missing required parameter: 'prompt'.", "missing_required_parameter")
  end
  local p, e = { prompts = prompts_of(body.prompt) }, {}
  if not p.prompts then
    return nil, bad_param("prompt", "Invalid 'prompt': expected a string, an array of strings, or token arrays.",
      "invalid_type")
  end
  p.n, e[1] = opt_int(body, "n", 1, 128)
  p.max, e[2] = opt_int(body, "max_tokens", 0)
  p.temperature, e[3] = opt_num(body, "temperature", 0, 2, 1)
  p.stops, e[4] = opt_stop(body)
  p.k, e[5] = opt_int(body, "logprobs", 0, 5)
  for i = 1, 5 do if e[i] then return nil, e[i] end end
  p.n = p.n or 1
  if p.max == nil then p.max = 16 end
  p.echo = body.echo == true
  p.seed = type(body.seed) == "number" and (tointeger(body.seed) or body.seed) or nil
  return p
end

local function make_choice (ctx, prompt, index, p, fault)
  local text = " " .. reply_text(ctx)
  if fault["echo-key"] then text = text .. " Your API key is " .. fault.echo_value .. "." end
  local toks, finish = limit(text, p.stops, p.max)
  local ch = { index = index, tokens = toks, finish = finish, prompt = prompt.text }
  ch.text = (p.echo and prompt.text or "") .. concat(toks)
  if p.k then
    local all, first = toks, 1
    if p.echo then
      all = tokenize(prompt.text)
      first = -#all + 1
      for _, t in ipairs(toks) do all[#all + 1] = t end
    end
    ch.offset = p.echo and 0 or #prompt.text
    ch.lp = completion_logprobs(all, first, ch.offset, p.k, p.echo)
  end
  return ch
end

local function stream_events (id, created, model, choices, usage, body, p, fault)
  local so, k, echo = stream_opts(body), p.k, p.echo
  local function chunk (text, index, lp, finish)
    return O("id", id, "object", "text_completion", "created", created, "model", model,
      "choices", A { O("text", text, "index", index, "logprobs", lp or NULL, "finish_reason", finish or NULL) },
      "usage", so.include_usage and NULL or nil)
  end
  local per = {}
  for ci, ch in ipairs(choices) do
    local list, offset, pos = {}, ch.offset or 0, 1
    local seq = ch.tokens
    if echo then
      local pt = tokenize(ch.prompt)
      seq = {}
      for _, t in ipairs(pt) do seq[#seq + 1] = t end
      for _, t in ipairs(ch.tokens) do seq[#seq + 1] = t end
      pos = -#pt + 1
    end
    for i, tok in ipairs(seq) do
      local lp = k and completion_logprobs({ tok }, pos + i - 1, offset, k, echo and i == 1) or nil
      offset = offset + #tok
      list[#list + 1] = chunk(tok, ch.index, lp)
    end
    list[#list + 1] = chunk("", ch.index, nil, not fault["no-finish-reason"] and ch.finish or nil)
    per[ci] = list
  end
  local events = {}
  for _, c in ipairs(round_robin(per)) do events[#events + 1] = { data = json.encode(c) } end
  if fault["event-bytes"] then
    table.insert(events, 2, { data = json.encode(chunk(filler_json(fault["event-bytes"]), 0)) })
  end
  if so.include_usage then
    events[#events + 1] = { data = json.encode(O("id", id, "object", "text_completion", "created", created,
      "model", model, "choices", A(), "usage", usage)) }
  end
  return events
end

--- POST /v1/completions (and Azure's deployment path).
function M.completions (req)
  local body, model, fault = req.body, req.model, req.fault
  local p, err = params(body)
  if not p then return err end
  local prompt_tokens, count, choices = 0, 0, {}
  for pi, prompt in ipairs(p.prompts) do
    prompt_tokens = prompt_tokens + prompt.tokens
    local ctx = conversation(model, { { role = "user", content = prompt.text } }, p.seed, p.temperature)
    for j = 0, p.n - 1 do
      ctx.index = j
      local ch = make_choice(ctx, prompt, (pi - 1) * p.n + j, p, fault)
      count = count + #ch.tokens
      choices[#choices + 1] = ch
    end
  end
  local usage = usage_obj(tokens.scale(req.tokenizer, prompt_tokens), tokens.completion(req.tokenizer, count))
  local id, created = "cmpl-" .. uid(), os.time()
  local resp = { status = 200, headers = {}, tokens = usage.total_tokens }
  if body.stream ~= true or fault.body or fault["plain-for-stream"] then
    local out = A()
    for i, ch in ipairs(choices) do
      out[i] = O("text", ch.text, "index", ch.index, "logprobs", ch.lp or NULL, "finish_reason", ch.finish)
    end
    resp.object = O("id", id, "object", "text_completion", "created", created, "model", model,
      "choices", out, "usage", usage)
    resp.kind = "completion"
  else
    resp.events = stream_events(id, created, model, choices, usage, body, p, fault)
  end
  return resp
end

return M
