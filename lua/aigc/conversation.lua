--- Conversations: a dialogue's history, kept to a token budget.
--
-- A conversation records the user's inputs and the model's replies (the
-- system message first) and sends them with each new input. Before each
-- request it trims the history to `max_context_tokens` as estimated by a
-- pluggable token estimator: the system message, the first `keep_first`
-- and the last `keep_last` turns always stay; the turns between go oldest
-- first. A turn is a user message and everything after it up to the next
-- one (replies, tool calls and their results), so a tool call is never
-- separated from its result. What each request sends besides (the tool
-- definitions, the schema) counts in the budget, as servers count it. With `summarize`, the dropped turns are
-- condensed (by the model, or by a function) into a system message sent
-- in their place. `conv.messages` always keeps the whole history.
--
-- Params in `params` (and per call) go with every request: a toolset in
-- `tools` runs the tool loop and records its messages; a `schema` makes
-- every reply structured (`res.parsed`); `stream` streams.
--
-- Over the Responses API (`api = "responses"`) the history goes as the
-- `input` items; with `state = "server"` the server keeps it: each say
-- sends only the new input with `previous_response_id` (and `store`), and
-- nothing is trimmed here (`conv.messages` still records every turn).
--
-- Calibration: the estimates are rough (4 characters a token); with a
-- budget, each reply's reported prompt tokens (`usage.prompt_tokens`, or
-- `input_tokens`) over the estimate of what was sent teach the
-- conversation a ratio (`conv.calibration`), and later trims count with it,
-- so the prompts a server counts converge on `max_context_tokens`
-- (`calibrate = false` turns it off; a ratio outside 0.1..10 is ignored).
--
-- @classmod aigc.conversation
-- @usage
-- local conv = aigc.conversation { client = client, system = "You are a helpful tutor.",
--                                  max_context_tokens = 3000, keep_last = 4 }
-- print(assert(conv:say "What is a monad?"))
-- print(assert(conv:say("Shorter, please.", { stream = function (d) io.write(d or "") end })))

local core = require "aigc.core"
local util = require "aigc.util"
local check = require "aigc.check"
local check_history = require "aigc.check_history"
local task = require "aigc.task"
local future = require "aigc.future"
local dialogue = require "aigc.dialogue"
local A = require "aigc.adapter"
local split_think = require("aigc.schema").split_think
local tokens = require "aigc.tokens"
local planner = require "aigc.conversation_plan"
local busy_mod = require "aigc.conversation_busy"   -- (one say at a time)
local busy, busy_with = busy_mod.busy, busy_mod.with

local null, array = core.null, core.array
local getmetatable, ipairs, pairs, pcall, setmetatable, tostring, type =
  getmetatable, ipairs, pairs, pcall, setmetatable, tostring, type
local string_format = string.format
local await, argerror, expected, field_error = task.await, util.argerror, util.expected, util.field_error

util.own_module()

local M = {}

local Conversation = {}
Conversation.__index = Conversation
Conversation.__name = "aigc.conversation"

--- Default tokens added per message (role, separators), as OpenAI counts.
M.MESSAGE_OVERHEAD = 4
--- Default token budget for a summary of dropped turns.
M.SUMMARY_TOKENS = 200
--- The prompt the default summarizer sends as its system message.
M.SUMMARY_PROMPT = "Condense the conversation below into a short summary for your own memory. Keep names, "
  .. "facts, numbers, decisions and open questions; drop greetings and small talk. Reply with the summary only."
--- The smallest calibration ratio learned or loaded (one outside the bounds is ignored).
M.CALIBRATION_MIN = 0.1
--- The largest calibration ratio learned or loaded.
M.CALIBRATION_MAX = 10
--- The prefix of the system message that carries a summary.
M.SUMMARY_PREFIX = "Summary of the earlier conversation: "


-- {======================================================
-- Token estimates (aigc.tokens)
-- =======================================================

--- The default token estimate of a text (`aigc.tokens.estimate_text`).
-- @function estimate_text
M.estimate_text = tokens.estimate_text

local estimate_text = M.estimate_text

--- The estimated tokens of one message (or Responses item) with a text
-- estimator (`aigc.tokens.estimate_message`).
-- @tparam table msg
-- @tparam[opt] function est text -> tokens (default `estimate_text`)
-- @tparam[opt] integer overhead per message (default `MESSAGE_OVERHEAD`)
-- @tparam[opt] string model the model (images count by model)
-- @treturn integer
-- @usage conversation.estimate_message { role = "user", content = "Hi" } --> 5
function M.estimate_message (msg, est, overhead, model)
  return tokens.estimate_message(msg, est, overhead or M.MESSAGE_OVERHEAD, model)
end

-- }======================================================


-- {======================================================
-- Construction
-- =======================================================

local INT0 = { type = "integer", min = 0 }
local OPTIONS = {
  client = { type = "table" }, model = { type = "string" }, system = { type = "string" }, params = { type = "table" },
  messages = { type = "table" }, max_context_tokens = INT0, keep_first = INT0, keep_last = INT0,
  message_overhead = INT0, summary_tokens = INT0, estimate = { type = "function" }, summarize = true,
  api = { type = "string", one_of = { chat = true, responses = true } },
  state = { type = "string", one_of = { client = true, server = true } }, calibrate = { type = "boolean" },
}

local function deep_copy (v)
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = deep_copy(x) end
  return setmetatable(t, getmetatable(v))
end

-- What the request encoder would refuse in params beyond each field's
-- own rule (aigc.check judges those): a key that is not a string, a model
-- that is aigc.null (a request has no null model), a value that does not
-- encode (a mixed table, a function, nesting past the encoder's depth).
-- What is not sent (the call options, a stream function, a toolset) is
-- not judged. Why, or nil: a conversation's say sends params through
-- chat_async, whose misuse would name a function the user did not call.
local call_options, json_encode = core.call_options, core.json.encode

-- Why the encoder refuses `v` (found at `root`), or nil.
local function encode_problem (v, root)
  local ok, e = pcall(json_encode, v)
  if ok then return nil end
  -- (Lua out of memory says nothing of the value: raised as it is, not as a bad argument)
  util.reraise_memory(e)
  e = tostring(e)
  local at = e:match("%(value(.*)%)$")
  return at and root .. at or root .. ": " .. e
end

local function params_problem (params, root)
  local sent = {}
  for k, v in pairs(params) do
    if type(k) ~= "string" then return root .. ": keys must be strings, found a " .. type(k) .. " key" end
    if not (call_options[k] or k == "stream" or (k == "tools" and util.is_a(v, "aigc.toolset"))) then sent[k] = v end
  end
  if params.model == null then return root .. ".model: string expected, got aigc.null" end
  return encode_problem(sent, root)
end

-- Why a history breaks the API's rule, or nil: chat messages need a role;
-- Responses items may have none (`function_call`, `function_call_output`).
-- `earlier`: the history msgs follow (the tool calls a result answers).
local function history_problem (api, msgs, path, earlier)
  if api == "responses" then return check.RESPONSES_FIELDS.input(msgs, path) end
  return check_history.history_problem(msgs, path, earlier)
end

-- Checks a conversation's options (argument `argn` of `fname`).
local function check_options (opts, fname, argn)
  for k, v in pairs(opts) do
    local rule, path, why = OPTIONS[k], util.path("opts", k), nil
    if rule == nil then
      local known = check.likely_typo(k, OPTIONS)
      field_error(fname, argn, path, "unknown option" .. (known and " (did you mean " .. known .. "?)" or ""))
    elseif k == "client" then
      if not util.is_a(v, "aigc.client") then why = expected("aigc.client", v) end
    elseif k == "summarize" then
      if v ~= true and v ~= false and not check.is_callable(v) then why = expected("true, false or function", v) end
    else
      why = check.rule_problem(rule, v)
      if not why and rule.one_of and not rule.one_of[v] then why = "unknown value " .. util.describe(v) end
    end
    if why then field_error(fname, argn, path, why) end
  end
  if opts.state == "server" and opts.api ~= "responses" then
    field_error(fname, argn, "opts.state", "'server' needs api = 'responses'")
  end
  if opts.summarize and opts.summary_tokens == 0 then   -- (each summary asked max_tokens = 0: a 400, every say)
    field_error(fname, argn, "opts.summary_tokens", "0 leaves a summary no room: an integer >= 1 with summarize")
  end
  local why = opts.params and (check.call_problem(opts.client, opts.api or "chat", opts.params, "opts.params", true)
                               or params_problem(opts.params, "opts.params"))
    or opts.messages and (history_problem(opts.api, opts.messages, "opts.messages")
                          or encode_problem(opts.messages, "opts.messages"))   -- (a hole: ipairs dropped what followed)
  if why then argerror(fname, argn, why) end
end

local function new (opts, fname, argn)
  if type(opts) ~= "table" then argerror(fname, argn, expected("table", opts)) end
  check_options(opts, fname, argn)
  if opts.client == nil then field_error(fname, argn, "opts.client", expected("aigc.client", nil)) end
  local self = setmetatable({
    --- The client requests go to.
    client = opts.client,
    --- The model (nil: the client's default).
    model = opts.model,
    --- The system prompt (nil: none).
    system = opts.system,
    --- Params sent with every request (per-call params override them).
    params = opts.params or {},
    --- The whole history, the system message first.
    messages = array {},
    max_context_tokens = opts.max_context_tokens,
    keep_first = opts.keep_first or 0,
    keep_last = opts.keep_last or 1,
    message_overhead = opts.message_overhead or M.MESSAGE_OVERHEAD,
    estimate = opts.estimate or estimate_text,
    summarize = opts.summarize or nil,
    summary_tokens = opts.summary_tokens or M.SUMMARY_TOKENS,
    --- The summary of dropped turns: `{ text =, from =, to = }` (history indexes), or nil.
    summary = nil,
    --- What the last request sent: `{ tokens =, messages =, dropped =, summarized = }`.
    last_context = nil,
    --- "chat" or "responses"; `state`: "client" or "server" (Responses: the server keeps the history).
    api = opts.api or "chat", state = opts.state or "client",
    --- The ids of the responses of the turns, when the server keeps the state,
    -- and the length of the history each one ends (what `add` put after the
    -- last one goes with the next say; `undo` drops those it cut into).
    response_ids = array {}, response_ends = {},
    --- Reported prompt tokens over estimated ones (nil until a reply told), and whether to learn it.
    calibration = nil, calibrate = opts.calibrate ~= false,
  }, Conversation)
  if opts.messages then
    for i, m in ipairs(check.list_copy(opts.messages)) do self.messages[i] = m end
    -- (a `system` given too was conv.system but never sent: as `load` does)
    if self.system then
      local sys = { role = "system", content = self.system }
      if self.messages[1] and self.messages[1].role == "system" then self.messages[1] = sys
      else table.insert(self.messages, 1, sys) end
    end
  elseif self.system then
    self.messages[1] = { role = "system", content = self.system }
  end
  return self
end

--- Creates a conversation. Also `aigc.conversation { ... }`.
-- @tparam table opts
--
--  - `client` (required), `model`, `system` (the system prompt),
--  - `params`: sent with every request (`temperature`, `tools`, `schema`, ...),
--  - `messages`: a history to start from (`system` replaces its system message, or goes first),
--  - `max_context_tokens`: the prompt's token budget (nil: no trimming),
--  - `keep_first` (0), `keep_last` (1): turns never dropped; the new turn always stays,
--  - `estimate = function(text) -> tokens` (default `estimate_text`; it must
--    return a number >= 0, anything else raises from the call that estimates),
--    `message_overhead` (4 per message),
--  - `summarize`: `true` (the model condenses the dropped turns) or
--    `function(messages, previous_summary, conv) -> text | nil, err`;
--    `summary_tokens` (200): the room kept for it, and the model's max_tokens
--    (a longer summary is cut to the room the budget leaves, or to
--    `summary_tokens` when the turns kept leave none).
-- @treturn aigc.conversation
-- @usage
-- local conv = aigc.conversation { client = client, system = "Be brief.", max_context_tokens = 2000,
--                                  keep_first = 1, keep_last = 3, summarize = true }
function M.new (opts)
  return new(opts, "conversation", 1)   -- (a tail call: misuse is still located at the caller, see aigc.util)
end

-- }======================================================


-- {======================================================
-- Turns and trimming
-- =======================================================

local function user_message (input, fname)
  local t = type(input)
  if t == "string" then return { role = "user", content = input } end
  if t == "table" then
    if input.role ~= nil then
      if type(input.role) ~= "string" then field_error(fname, 1, "input.role", expected("string", input.role)) end
      return input
    end
    if input[1] ~= nil then return { role = "user", content = input } end   -- content parts
  end
  argerror(fname, 1, expected("string, content parts or message", input))
end

-- A message's cost is remembered (weakly, per message table) while its
-- text, the estimate and the overhead stay the same: every say plans over
-- the whole history, and estimating each text again made a say's cost grow
-- with the number of turns ever said (20 ms a say after 4,000 turns, with
-- the context sent kept at 22 messages). Only plain text messages: the
-- other fields (tool calls, content parts) are tables that may change.
local WEAK_K = { __mode = "k" }

function Conversation:_cost (msg)
  local text = msg.content
  if type(text) ~= "string" or msg.tool_calls ~= nil or msg.arguments ~= nil or msg.output ~= nil
     or msg.name ~= nil then
    -- (images count by the model they go to)
    local c, model = self.client, self.model or self.params.model
    if model == nil and type(c) == "table" then model = c.model end
    return M.estimate_message(msg, self.estimate, self.message_overhead, model)
  end
  local memo = self._costs
  if not memo or memo.estimate ~= self.estimate or memo.overhead ~= self.message_overhead then
    memo = { estimate = self.estimate, overhead = self.message_overhead, text = setmetatable({}, WEAK_K),
             n = setmetatable({}, WEAK_K) }
    self._costs = memo
  end
  if memo.text[msg] == text then return memo.n[msg] end
  local n = M.estimate_message(msg, self.estimate, self.message_overhead)
  memo.text[msg], memo.n[msg] = text, n
  return n
end

--- The estimated prompt tokens of a list of messages (default: the history).
-- @tparam[opt] table messages
-- @treturn integer
-- @usage print(conv:tokens())
function Conversation:tokens (messages)
  local n = 0
  for _, m in ipairs(messages or self.messages) do n = n + self:_cost(m) end
  return n
end

-- The estimated tokens a request with params `p` sends besides its
-- messages, that servers count in the prompt: tool definitions, schema,
-- instructions. (Left out, calibration took them for history: dropped it.)
function Conversation:_fixed (p)
  local tools = p.tools
  if util.is_a(tools, "aigc.toolset") then tools = tools:definitions() end
  local n = 0
  for _, v in ipairs { tools or 0, p.functions or 0, p.schema or 0, p.response_format or 0, p.instructions or 0 } do
    local ok, text = true, v
    if type(v) == "table" then ok, text = pcall(json_encode, v) end
    if ok and type(text) == "string" then n = n + tokens.estimate_message({ content = text }, self.estimate, 0) end
  end
  return n
end

-- The default summarizer: asks the model.
local function model_summary (self, msgs, from, to, previous, fut)
  local text = planner.transcript(msgs, from, to)
  if previous then text = "Earlier summary: " .. previous .. "\n\nThen:\n" .. text end
  local client = self.client
  local p = {
    model = self.model or self.params.model,
    messages = {
      { role = "system", content = M.SUMMARY_PROMPT },
      { role = "user", content = text },
    },
    max_tokens = self.summary_tokens,
  }
  local req = client:chat_async(p)
  if fut then fut:track(req) end
  local res, err = await(req)
  if not res then return nil, err end
  if type(res.text) ~= "string" then
    return nil, core.error { kind = "parse", message = "the summary reply has no text" }
  end
  -- (a reasoning model's leading <think> block is no summary: kept, the summary's
  -- room cut it to the thinking's first words, and the summary itself was lost)
  local _, summary = split_think(res.text)
  return summary
end

-- The summary text covering messages [from, to] of msgs, reusing the
-- cached summary when it covers a prefix of them.
local function summary_for (self, msgs, from, to, fut)
  local s = self.summary
  if s and not planner.summary_holds(s, msgs) then s = nil end   -- (a history pruned by hand)
  if s and s.from == from and s.to == to then return s.text end
  local previous, start = nil, from
  if s and s.from == from and s.to < to then previous, start = s.text, s.to + 1 end
  local text, err
  if type(self.summarize) == "function" then
    local part = {}
    for i = start, to do part[#part + 1] = msgs[i] end
    text, err = self.summarize(part, previous, self)
    if text ~= nil and type(text) ~= "string" then
      text, err = nil, core.error { kind = "callback", message = "summarize must return a string, got " .. type(text) }
    end
  else
    text, err = model_summary(self, msgs, start, to, previous, fut)
  end
  if text == nil then
    -- (a say's failure is an error object: a summarizer's `nil, "why"` too)
    if not util.is_error(err) then
      err = core.error { kind = "callback", message = err == nil and "summarize returned no text"
                                                      or "summarize failed: " .. util.value_text(err),
                         value = type(err) ~= "string" and err or nil }   -- (a table: kept, not "table: 0x...")
    end
    return nil, err
  end
  self.summary = planner.summary_made({ text = text, from = from, to = to }, msgs)
  return text
end

-- The summary message cut to the room the plan `p` leaves in the budget:
-- dropping more turns may not make room enough. When what must stay
-- leaves no room at all (the budget is broken without the summary), it is
-- cut to the room kept for it (`summary_tokens`): dropped turns are never
-- silently lost.
function Conversation:_fit_summary (msgs, p, summary_msg, fixed)
  local function cost (t)
    local msg = { role = "system", content = M.SUMMARY_PREFIX .. t }
    return M.estimate_message(msg, self.estimate, self.message_overhead)
  end
  local room = self.max_context_tokens / (self.calibration or 1) - fixed - self:tokens(planner.assemble(msgs, p))
  if room < cost("") then room = cost("") + self.summary_tokens end
  local text = planner.fit_text(summary_msg.content:sub(#M.SUMMARY_PREFIX + 1), room, cost)
  return { role = "system", content = M.SUMMARY_PREFIX .. text }
end

-- The messages to send for `msgs` (history plus the new turn) with
-- params `params`: trimmed, summarized. Returns the list and the info, or
-- nil, err.
function Conversation:_context (msgs, params, fut)
  local reserve = self.summarize and self.summary_tokens or 0
  local fixed = self:_fixed(params)
  local p = planner.plan(self, msgs, reserve, fixed)
  local summary_msg
  for round = 1, 4 do
    if not (p.drop_from and self.summarize) then break end
    local text, err = summary_for(self, msgs, p.drop_from, p.drop_to, fut)
    if not text then return nil, err end
    summary_msg = { role = "system", content = M.SUMMARY_PREFIX .. text }
    -- The summary may be longer than the room kept for it: drop more if
    -- so (three times at most; the fourth summary covers what the third
    -- plan drops, even if it is still too long: dropped turns are never
    -- sent without one).
    if round == 4 then break end
    local again = planner.plan(self, msgs, self:_cost(summary_msg), fixed)
    if (again.drop_to or 0) <= p.drop_to then break end
    p = again
    summary_msg = nil
  end
  if summary_msg and self.max_context_tokens then summary_msg = self:_fit_summary(msgs, p, summary_msg, fixed) end
  local out = planner.assemble(msgs, p, summary_msg)
  local info = {
    tokens = self:tokens(out) + fixed, messages = #out,
    dropped = p.drop_from and (p.drop_to - p.drop_from + 1) or 0,
    summarized = summary_msg ~= nil,
  }
  return out, info
end

--- The messages the next request would send (trimmed; summarized, which
-- may ask the model), with `input` as the new user turn.
-- @tparam[opt] string|table input
-- @treturn[1] table messages
-- @treturn[1] table info `{ tokens =, messages =, dropped =, summarized = }`
-- @treturn[2] nil
-- @treturn[2] aigc.error err (from the summarizer)
-- @usage local msgs, info = conv:context "next question"; print(info.tokens, info.dropped)
function Conversation:context (input)
  local msgs = {}
  for i, m in ipairs(self.messages) do msgs[i] = m end
  if input ~= nil then msgs[#msgs + 1] = user_message(input, "context") end
  return self:_context(msgs, self.params)
end

-- }======================================================


-- {======================================================
-- Saying
-- =======================================================

local function merged_params (self, params, msgs)
  local p = {}
  for k, v in pairs(self.params) do p[k] = v end
  if params then for k, v in pairs(params) do p[k] = v end end
  if p.model == nil then p.model = self.model end
  if self.api == "responses" then p.input = msgs else p.messages = msgs end
  p.on_done, p.on_error = nil, nil   -- (they hear the say's end: see check_say)
  return p
end

-- Checks a say's arguments as the call would check them (misuse raises
-- here, at the user's line, not inside the say's task). Returns the user
-- message and the say's on_done(res) / on_error(err) (per call, else the
-- conversation's): they hear the end of the say -- after the history
-- changed -- not the end of the request inside it.
local function check_say (self, input, params, fname)
  -- (say raised it from the call it makes; say_async must too, not hand back a failed future:
  -- also from the callbacks close() runs, while the client is closing)
  if future.client_closed(self.client._loop) then util.raise("attempt to use a closed client") end
  local user = user_message(input, fname)
  local bad = self.api == "chat" and history_problem("chat", { user }, "input", self.messages)
    or check.CHAT_FIELDS.messages({ user }, "input")
  if bad then argerror(fname, 1, (bad:gsub("^input%[1%]", "input"))) end
  bad = encode_problem(input, "input")
  if bad then argerror(fname, 1, bad) end
  if params ~= nil and type(params) ~= "table" then argerror(fname, 2, expected("table", params)) end
  if busy(self) then util.raise("attempt to say: the conversation is busy with another say (wait for it, or fork)") end
  local on_done, on_error = self.params.on_done, self.params.on_error
  if params and params.on_done ~= nil then on_done = params.on_done end
  if params and params.on_error ~= nil then on_error = params.on_error end
  local p = merged_params(self, params, nil)
  p.on_done, p.on_error = on_done, on_error
  local why = check.call_problem(self.client, self.api, p) or params_problem(p, "params") or dialogue.params_problem(p)
  if why then argerror(fname, 2, why) end
  -- (a history the request would refuse: set by hand, or an `add` of a
  -- message that is not UTF-8)
  why = encode_problem(self.messages, "self.messages")
  if why then util.raise(("calling '%s' on bad self (%s)"):format(fname, why)) end
  return user, on_done, on_error
end

local function assistant_message (res)
  if res.object == "response" then return { role = "assistant", content = res.text or "" } end
  local choice = res.choices and res.choices[1]
  local msg = choice and choice.message or {}
  local m = { role = type(msg.role) == "string" and msg.role or "assistant", content = msg.content }
  if type(msg.tool_calls) == "table" and msg.tool_calls[1] ~= nil then m.tool_calls = msg.tool_calls end
  -- (a request needs content without tool calls: a refusal has "", and its refusal)
  if m.content == nil or m.content == null then m.content = m.tool_calls and null or "" end
  if type(msg.refusal) == "string" then m.refusal = msg.refusal end
  -- (the reply closing a turn that called tools is part of that turn: DeepSeek
  -- wants all of its reasoning back, see adapter.keep_reasoning)
  if type(res.tool_messages) == "table" and res.tool_messages[1] ~= nil then A.keep_reasoning(m, msg) end
  return m
end

-- Learns the ratio of the prompt tokens the server counted for the
-- context sent (the first request of a tool loop's rounds) to their estimate.
function Conversation:_learn (info, res)
  if not (info and self.calibrate) then return end
  local u = type(res.usage_rounds) == "table" and res.usage_rounds[1] or res.usage
  local n = type(u) == "table" and (u.prompt_tokens or u.input_tokens) or nil
  if not (type(n) == "number" and n > 0 and info.tokens > 0) then return end
  -- (a ratio out of bounds is a server's odd count, not a tokenizer's: a
  -- long word counted as 1 token made it 0.005, and the next trims let
  -- 200 times the budget through)
  local r = n / info.tokens
  if r >= M.CALIBRATION_MIN and r <= M.CALIBRATION_MAX then self.calibration = r end
end

-- The request of one say: the context and its info, or nil, err. With the
-- server keeping the state, only the new input follows the last response:
-- the messages added since (`add`) and the user's.
function Conversation:_request (msgs, params, fut)
  local ids = self.response_ids
  local context, info
  if self.state == "server" and ids[1] ~= nil then
    context = {}
    local last = planner.response_end(self, msgs, #msgs - 1)
    for i = last + 1, #msgs do context[#context + 1] = msgs[i] end
  else
    context, info = self:_context(msgs, merged_params(self, params, nil), fut)
    if not context then return nil, info end
  end
  local p = merged_params(self, params, context)
  if self.state == "server" then p.store, p.previous_response_id = true, ids[#ids] end
  if self.api == "responses" then return self.client:respond_async(p), info end
  return self.client:chat_async(p), info
end

-- One exchange; commits it to the history only on success.
function Conversation:_say (user, params, fut)
  local hist = self.messages
  local msgs = {}
  for i, m in ipairs(hist) do msgs[i] = m end
  msgs[#msgs + 1] = user
  if fut and fut:canceled() then return fut:result() end
  local req, info = self:_request(msgs, params, fut)
  if not req then return nil, info end
  if fut and fut:canceled() then req:cancel(); return fut:result() end
  if fut then fut:track(req) end
  local res, err = await(req)
  if fut and fut:canceled() then return fut:result() end
  if not res then return nil, err end
  if self.messages ~= hist or #hist ~= #msgs - 1 then
    return nil, core.error { kind = "callback", message = "the history changed while say() waited for the reply" }
  end
  local turn = { user }
  if type(res.tool_messages) == "table" then
    for _, m in ipairs(res.tool_messages) do turn[#turn + 1] = m end
  end
  turn[#turn + 1] = assistant_message(res)
  busy_mod.append_all(hist, turn)   -- (all of the turn or none, whatever cuts it)
  self.last_context = info
  if self.state == "server" then
    local n = #self.response_ids + 1
    self.response_ids[n], self.response_ends[n] = res.id, #hist
    planner.response_made(self, res.id)
  end
  self:_learn(info, res)
  return res
end

--- Sends `input` as the next user turn and records the exchange.
-- @tparam string|table input text, a list of content parts, or a whole message
-- @tparam[opt] table params per-call params (override `conv.params`): `stream`, `temperature`, `tools`,
-- `schema`, `on_done`, `on_error`...
-- @treturn[1] string the reply's text (`""` when it has none)
-- @treturn[1] table res the response (`res.parsed` with a schema, `res.tool_calls_made` with tools)
-- @treturn[2] nil
-- @treturn[2] aigc.error err; the history is unchanged
-- @usage
-- local reply, res = conv:say("Where is my order A-1042?", { stream = function (d) io.write(d or "") end })
function Conversation:say (input, params)
  local user, on_done, on_error = check_say(self, input, params, "say")
  local res, err = busy_with(self, busy_mod.token(), self._say, self, user, params, nil)
  local cb, what = on_done, "on_done"
  if not res then cb, what = on_error, "on_error" end
  if cb then
    local ok, e = task.pcall(cb, res or err)   -- (a wait in it yields, in a task on 5.1 too)
    if not ok then util.report(self.client, util.callback_error(what, e)) end
  end
  if not res then return nil, err end
  return type(res.text) == "string" and res.text or "", res
end

--- Like `say`, without waiting: returns a future (`aigc.future`, the
-- interface of `aigc.request`) whose result is the response (`res.text`);
-- driven by `client:step()`. The history changes when it succeeds. One
-- say at a time per conversation.
-- @tparam string|table input
-- @tparam[opt] table params
-- @treturn aigc.future
-- @usage
-- local req = conv:say_async "Hello!"
-- while req:status() == "running" do client:step(0.016) end
-- print(req:result().text)
function Conversation:say_async (input, params)
  local user, on_done, on_error = check_say(self, input, params, "say_async")
  return busy_mod.start(self, function (token)
    return future.run(self.client._loop, function (f)
      return busy_with(self, token, self._say, self, user, params, f)
    end, { label = "say", on_done = on_done, on_error = on_error, what = "a conversation's say",
         cancel_waits = true })
  end)
end

--- Appends a message to the history as it is (an assistant greeting, a
-- note, a tool result). A message no request can carry is misuse here,
-- the history unchanged: one JSON cannot hold (a function, a table that
-- contains itself, invalid UTF-8) was taken, and every later say failed.
-- @tparam table msg
-- @treturn aigc.conversation self
-- @usage conv:add { role = "assistant", content = "Welcome back! How can I help?" }
function Conversation:add (msg)
  local why = history_problem(self.api, { msg }, "msg", self.messages)
  if why then argerror("add", 1, (why:gsub("^msg%[1%]", "msg"))) end
  why = encode_problem(msg, "msg")
  if why then argerror("add", 1, why) end
  self.messages[#self.messages + 1] = msg
  return self
end

--- The text of the last assistant message, or nil.
-- @treturn string|nil
-- @usage print(conv:last_reply())
function Conversation:last_reply ()
  local msgs = self.messages
  for i = #msgs, 1, -1 do
    -- (a Magistral reply's content is a list of parts: its text, as res.text)
    local text = msgs[i].role == "assistant" and util.content_text(msgs[i].content)
    if text then return text end
  end
  return nil
end

-- }======================================================


-- {======================================================
-- Branching and storage
-- =======================================================

--- An independent copy: same client and options, a deep copy of the
-- history, the summary and the params (but toolsets and other objects in
-- them). For "regenerate" and "what if".
-- @treturn aigc.conversation
-- @usage
-- local what_if = conv:fork()
-- what_if:say "And if I had said no?"   -- conv is unchanged
function Conversation:fork ()
  local c = setmetatable({}, Conversation)
  for k, v in pairs(self) do c[k] = v end
  c._busy, c._costs = nil, nil
  -- (the params' plain tables and arrays too: a fork's `params.metadata.branch
  -- = "b"` changed the original's; a toolset or other object stays shared)
  local p, array_mt = {}, getmetatable(array {})
  for k, v in pairs(self.params) do
    local mt = type(v) == "table" and getmetatable(v)
    p[k] = (mt == nil or mt == false or mt == array_mt) and deep_copy(v) or v
  end
  c.params = p
  c.messages = deep_copy(self.messages)
  c.summary = planner.forked(self, c)   -- (and the ends follow a history pruned by hand)
  c.response_ids = deep_copy(self.response_ids)
  c.response_ends = deep_copy(self.response_ends)
  c.last_context = deep_copy(self.last_context)
  return c
end

--- Removes the last turn (the last user message and all after it).
-- @treturn table|nil the removed messages, or nil when there is no turn
-- @usage conv:undo(); conv:say "Let me rephrase that."
function Conversation:undo ()
  local msgs = self.messages
  local h = planner.head_count(msgs)
  local u
  for i = #msgs, h + 1, -1 do
    if msgs[i].role == "user" then u = i; break end
  end
  if not u then return nil end
  if self.response_ids[1] ~= nil then planner.response_end(self, msgs, #msgs) end   -- (its ends follow a pruning)
  local removed = array {}
  for i = u, #msgs do removed[#removed + 1] = msgs[i] end
  for i = #msgs, u, -1 do msgs[i] = nil end
  if self.summary and self.summary.to >= u then self.summary = nil end
  -- (the responses that saw a removed message: not the last one when the
  -- turn undone was only `add`ed, or when messages were added after it)
  local ids, ends = self.response_ids, self.response_ends
  while ids[1] ~= nil do
    local e = ends[#ids]
    if e ~= nil and e < u then break end
    ids[#ids], ends[#ids] = nil, nil
  end
  return removed
end

--- Forgets everything but the system message.
-- @treturn aigc.conversation self
-- @usage conv:reset()
function Conversation:reset ()
  local msgs = array {}
  local h = planner.head_count(self.messages)
  for i = 1, h do msgs[i] = self.messages[i] end
  self.messages = msgs
  self.summary = nil
  self.last_context = nil
  self.response_ids, self.response_ends = array {}, {}
  return self
end

--- The conversation as a JSON string: history (exactly: tool calls,
-- content parts, `aigc.null`, empty arrays, integers and floats), summary,
-- system prompt, model, budget options and the JSON-able params. Functions
-- (stream, estimate, summarize, tool functions) are not saved: give them
-- again to `load`. (lua/aigc/conversation_save.lua)
-- @treturn string
-- @usage io.open("conv.json", "w"):write(conv:save())
function Conversation:save ()
  return require("aigc.conversation_save").save(self)
end

--- Restores a conversation saved with `save`. The text may come from
-- anywhere (a game's save file): everything in it is checked as a call
-- would check it (options, params, the summary), so that what loads cannot
-- make the next `say()` raise; what does not pass is `nil, err`. `params`
-- must be a JSON object whose values a request can send; a null model
-- there is no model.
-- (lua/aigc/conversation_save.lua)
-- @tparam string json
-- @tparam aigc.client client
-- @tparam[opt] table opts options that are not saved or that override
-- the saved ones (`params` are merged: `tools`, `stream`, `estimate`, `summarize`...; a `model`
-- given wins over one saved in `params`; a `system` given replaces the saved system
-- message, and with a server-kept chain also goes as `params.instructions`)
-- @treturn[1] aigc.conversation
-- @treturn[2] nil
-- @treturn[2] aigc.error err of kind "parse" when the text is not a valid saved conversation
-- @usage
-- local text = io.open("conv.json"):read("*a")
-- local conv = assert(aigc.conversation.load(text, client, { params = { tools = ts } }))
function M.load (json, client, opts)
  return require("aigc.conversation_save").load(json, client, opts)
end

-- (for aigc.conversation_save: a conversation made and its options checked
-- exactly as aigc.conversation does)
M._new, M._check_options, M._params_problem, M._history_problem = new, check_options, params_problem, history_problem

function Conversation:__tostring ()
  -- (%.0f: an `estimate` may give fractions, which 5.3+'s %d refuses)
  return string_format("aigc.conversation (%d messages, ~%.0f tokens)", #self.messages, self:tokens())
end

M.Conversation = Conversation

-- }======================================================

-- `aigc.conversation { ... }` calls M.new.
return setmetatable(M, { __call = function (_, opts) return new(opts, "conversation", 1) end })
