--- Saving a conversation to JSON and loading it back (`conv:save()`,
-- `aigc.conversation.load`): the history exactly, the summary, the options
-- and the params that survive JSON. A saved text may come from anywhere
-- (a game's save file), so `load` checks everything in it as a call would.
--
-- @module aigc.conversation_save

local core = require "aigc.core"
local compat = require "aigc.compat"
local util = require "aigc.util"
local credentials = require "aigc.credentials"
local check = require "aigc.check"
local dialogue = require "aigc.dialogue"
local conversation = require "aigc.conversation"
local planner = require "aigc.conversation_plan"

local null, array = core.null, core.array
local json_encode, json_decode = core.json.encode, core.json.decode
local getmetatable, ipairs, next, pairs, pcall, rawget, tostring, type =
  getmetatable, ipairs, next, pairs, pcall, rawget, tostring, type
local is_integer = compat.is_integer
local argerror, expected = util.argerror, util.expected

util.own_module()

local M = {}

local FORMAT = "aigc.conversation"

-- Per-call options never saved: they carry credentials (a per-user key in
-- a header or the query, or an api_key/azure_ad_token param) into a file
-- that may go anywhere (a game's save file); `load(text, client, { params
-- = ... })` gives them again.
local NOT_SAVED = { stream = true, on_done = true, on_error = true, headers = true, extra_headers = true,
                    query = true, extra_query = true, idempotency_key = true }
for _, k in ipairs(credentials.CLIENT_KEY_OPTIONS) do NOT_SAVED[k] = true end

-- Params that survive JSON (no functions, no toolsets, no stream), but NOT_SAVED.
local function saved_params (params)
  local out = {}
  for k, v in pairs(params) do
    if type(k) == "string" and not NOT_SAVED[k] and type(v) ~= "function" then
      local mt = getmetatable(v)
      if not (type(mt) == "table" and mt.__name == "aigc.toolset") then
        local ok = pcall(json_encode, v)
        if ok then out[k] = v end
      end
    end
  end
  return out
end

-- What the encoder refuses in a conversation (a message that is not
-- UTF-8, a function in the history...) is the caller's misuse of `save`:
-- named so, with the path in the conversation, not as the encoder's own
-- ("bad argument #1 to 'encode' (value.messages[2]...)").
local function encode_saved (t)
  local ok, s = pcall(json_encode, t)
  if ok then return s end
  local at = type(s) == "string" and s:match("bad argument #1 to 'encode' %(value(.*)%)$")
  if not at then error(s, 0) end   -- (out of memory)
  util.raise("calling 'save' on bad self (self" .. at .. ")")
end

--- The conversation `self` as a JSON string (`conv:save()`).
-- @tparam aigc.conversation self
-- @treturn string
function M.save (self)
  -- (a history pruned by hand: the responses' ends follow it, or load refused them)
  if self.response_ids[1] ~= nil then planner.response_end(self, self.messages, #self.messages) end
  -- (and a summary of turns pruned since is left out: load refused it, and a say makes it again)
  local summary = self.summary
  if summary and (summary.to > #self.messages or not planner.summary_holds(summary, self.messages)) then
    summary = nil
  end
  -- (the history as say sends it: a copy by ipairs stopped at a hole, and
  -- the messages after it were left out of the file without a word, where
  -- say refuses such a history; an empty one goes as [])
  local msgs = self.messages
  if next(msgs) == nil then msgs = array {} end
  local t = {
    format = FORMAT, version = 1,
    model = self.model, system = self.system,
    params = saved_params(self.params),
    max_context_tokens = self.max_context_tokens, keep_first = self.keep_first, keep_last = self.keep_last,
    message_overhead = self.message_overhead, summary_tokens = self.summary_tokens,
    summarize = self.summarize == true or nil,
    summary = summary,
    messages = msgs,
    api = self.api, state = self.state, calibration = self.calibration,
    response_ids = self.response_ids[1] and self.response_ids or nil,
    response_ends = self.response_ids[1] and self.response_ends or nil,
  }
  if self.calibrate == false then t.calibrate = false end   -- (only when off: the default is on)
  -- (the client's key in the history -- a server or a model echoing it,
  -- a user pasting it -- went into the file: scrubbed, as the prompt log,
  -- the cache and a cassette scrub what they keep)
  local engine = util.is_a(self.client, "aigc.client") and rawget(self.client, "_engine")
  local s = encode_saved(t)
  if engine then s = engine:scrub(s) end
  return s
end

local function parse_error (message)
  return core.error { kind = "parse", message = message }
end

-- The summary of a saved conversation, or nil and why it is not one.
local function saved_summary (s, nmsgs)
  if type(s) ~= "table" or type(s.text) ~= "string" or not is_integer(s.from) or not is_integer(s.to)
     or s.from < 1 or s.to < s.from or s.to > nmsgs then
    return nil, "the summary must be { text =, from =, to = } within the messages"
  end
  return s
end

-- The params of a save, as a new table: a JSON object (absent or null:
-- none) whose keys are strings and whose values a request can send; a null
-- model is no model, as a null top-level one. Or nil and why not.
local function loaded_params (p)
  if p == nil or p == null then return {} end
  if type(p) ~= "table" or core.is_array(p) then
    return nil, "params: an object expected, got " .. (type(p) == "table" and "a list" or util.describe(p))
  end
  local out = {}
  for k, v in pairs(p) do
    if not (k == "model" and v == null) then out[k] = v end
  end
  local why = conversation._params_problem(out, "params")
  if why then return nil, why end
  return out
end

-- A `system` given to `load` in place of the saved one: the history's
-- first message is what requests send (conv.system alone changes nothing),
-- so it is replaced there, or put first when the history had none.
local function set_system (conv, system)
  local msgs, first = conv.messages, { role = "system", content = system }
  if msgs[1] ~= nil and msgs[1].role == "system" then
    msgs[1] = first
    return
  end
  table.insert(msgs, 1, first)
  local s = conv.summary   -- (its indexes follow the messages, as the responses' ends do)
  if s then s.from, s.to = s.from + 1, s.to + 1 end
  for i, e in ipairs(conv.response_ends) do conv.response_ends[i] = e + 1 end
end

--- Restores a conversation saved with `save` (`aigc.conversation.load`).
-- @tparam string json
-- @tparam aigc.client client
-- @tparam[opt] table opts
-- @treturn[1] aigc.conversation
-- @treturn[2] nil
-- @treturn[2] aigc.error
function M.load (json, client, opts)
  if type(json) ~= "string" then argerror("load", 1, expected("string", json)) end
  if not util.is_a(client, "aigc.client") then argerror("load", 2, expected("aigc.client", client)) end
  if opts ~= nil and type(opts) ~= "table" then argerror("load", 3, expected("table", opts)) end
  if opts then conversation._check_options(opts, "load", 3) end
  local t, jerr = json_decode(json)
  if type(t) ~= "table" or t.format ~= FORMAT or type(t.messages) ~= "table" then
    return nil, parse_error("not a saved conversation: "
                            .. (t == nil and tostring(jerr) or "missing format or messages"))
  end
  if t.version ~= 1 then return nil, parse_error("unsupported saved conversation version " .. tostring(t.version)) end
  local o = { client = client }
  for _, k in ipairs { "model", "system", "max_context_tokens", "keep_first", "keep_last", "message_overhead",
                       "summary_tokens", "api", "state" } do
    if t[k] ~= nil and t[k] ~= null then o[k] = t[k] end
  end
  if t.summarize == true then o.summarize = true end
  if t.calibrate == false then o.calibrate = false end
  local params, perr = loaded_params(t.params)
  if not params then return nil, parse_error("not a valid saved conversation: " .. perr) end
  for k, v in pairs(opts or {}) do
    if k == "params" then
      for pk, pv in pairs(v) do params[pk] = pv end
    else
      o[k] = v
    end
  end
  -- (a model given to load wins over one saved in params, which requests
  -- prefer to conv.model: loaded into another model, it talked to the old one)
  if opts and opts.model ~= nil and not (opts.params and opts.params.model ~= nil) then params.model = nil end
  o.params = params
  -- Everything is checked as a call would check it: a saved file may come
  -- from anywhere, and what it holds must not make the next say() raise.
  local ok, conv = pcall(conversation._new, o, "load", 1)
  if not ok then   -- (what the misuse said, without "bad argument #1 to 'load' (...)")
    return nil, parse_error("not a valid saved conversation: " .. (tostring(conv):match("%((.*)%)$") or tostring(conv)))
  end
  local why = conversation._history_problem(conv.api, t.messages, "messages")
    or check.call_problem(client, conv.api, params) or dialogue.params_problem(params)
  if why then return nil, parse_error("not a valid saved conversation: " .. why) end
  local msgs = array {}
  for i, m in ipairs(t.messages) do msgs[i] = m end
  conv.messages = msgs
  -- (a save made before response_ends: each response counts as ending
  -- the history as saved, so undo drops it: the next say sends it whole)
  local ends = type(t.response_ends) == "table" and t.response_ends or {}
  for i, id in ipairs(type(t.response_ids) == "table" and t.response_ids or {}) do
    local e = ends[i] or #msgs
    if type(id) ~= "string" or not is_integer(e) or e < (ends[i - 1] or 0) or e > #msgs then
      return nil, parse_error("not a valid saved conversation: response_ids")
    end
    conv.response_ids[i], conv.response_ends[i] = id, e
  end
  local r = t.calibration
  if type(r) == "number" and r >= conversation.CALIBRATION_MIN and r <= conversation.CALIBRATION_MAX then
    conv.calibration = r
  end
  if t.summary ~= nil and t.summary ~= null then
    local s, serr = saved_summary(t.summary, #msgs)
    if not s then return nil, parse_error("not a valid saved conversation: " .. serr) end
    conv.summary = s
  end
  if opts and opts.system ~= nil then
    set_system(conv, opts.system)
    -- With the server keeping the history, the system message changed here
    -- is never sent again (each say sends only its input after the last
    -- response): the new prompt goes as `instructions`, which a request
    -- carries for itself (previous_response_id does not carry them over).
    if conv.response_ids[1] ~= nil and not (opts.params and opts.params.instructions ~= nil) then
      conv.params.instructions = opts.system
    end
  end
  return conv
end

return M
