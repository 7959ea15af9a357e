--- How a conversation's history is planned into what a request sends:
-- its turns, which of them fit the budget, the messages that go, and the
-- text a summarizer reads for the turns dropped.
--
-- Internal: `aigc.conversation`'s. Not part of the API.
--
-- @module aigc.conversation_plan
-- @local

local core = require "aigc.core"
local util = require "aigc.util"

local ipairs, setmetatable, tostring, type = ipairs, setmetatable, tostring, type
local math_max, string_format, table_concat = math.max, string.format, table.concat
local array = core.array

util.own_module()

local M = {}

-- The number of leading system/developer messages.
function M.head_count (msgs)
  local h = 0
  while msgs[h + 1] and (msgs[h + 1].role == "system" or msgs[h + 1].role == "developer") do h = h + 1 end
  return h
end

-- Turns after the head: the message index each starts at (a turn ends
-- before the next one's start, the last one at #msgs; one list, not a
-- table per turn: every say plans over the whole history). A turn starts
-- at each user message; what comes before the first one is a turn of its own.
local function turns_of (msgs, h)
  local starts, n = {}, 0
  for i = h + 1, #msgs do
    if n == 0 or msgs[i].role == "user" then n = n + 1; starts[n] = i end
  end
  return starts
end

-- The plan for `msgs` within the budget of the conversation `self`: which turns stay. `reserve` is
-- room kept for a summary message, `fixed` the tokens sent besides the
-- messages (see _fixed).
function M.plan (self, msgs, reserve, fixed)
  local h = M.head_count(msgs)
  local p = { h = h, keep_from = 1, drop_to = 0 }
  local budget = self.max_context_tokens
  if budget == nil then return p end
  if self.calibration then budget = budget / self.calibration end
  local cost = {}
  local total = fixed
  for i, m in ipairs(msgs) do
    cost[i] = self:_cost(m)
    total = total + cost[i]
  end
  local starts = turns_of(msgs, h)
  local nt = #starts
  if total <= budget or nt == 0 then return p end
  local function turn_cost (t)
    local n = 0
    for i = starts[t], (starts[t + 1] or #msgs + 1) - 1 do n = n + cost[i] end
    return n
  end
  local kf = math.min(self.keep_first, nt - 1)
  local kl = math.max(1, math.min(self.keep_last, nt - kf))
  local required = fixed
  for i = 1, h do required = required + cost[i] end
  for t = 1, kf do required = required + turn_cost(t) end
  for t = nt - kl + 1, nt do required = required + turn_cost(t) end
  local avail = budget - required - (reserve or 0)
  local keep_from = nt - kl + 1
  for t = nt - kl, kf + 1, -1 do
    local c = turn_cost(t)
    if c > avail then break end
    avail = avail - c
    keep_from = t
  end
  p.kf, p.keep_from = kf, keep_from
  if keep_from > kf + 1 then
    p.drop_from, p.drop_to = starts[kf + 1], starts[keep_from] - 1
  end
  return p
end

-- The messages a plan sends, with the summary message (if any) in place of
-- the dropped turns.
function M.assemble (msgs, p, summary_msg)
  local out = array {}
  if not p.drop_from then
    for i, m in ipairs(msgs) do out[i] = m end
    return out
  end
  for i = 1, p.drop_from - 1 do out[#out + 1] = msgs[i] end
  if summary_msg then out[#out + 1] = summary_msg end
  for i = p.drop_to + 1, #msgs do out[#out + 1] = msgs[i] end
  return out
end

-- The longest prefix of `text` (cut between UTF-8 characters) whose cost
-- `cost(prefix)` is at most `room` ("" when none does). A
-- summarizer's text may be longer than asked: sent whole, it put the
-- request over the user's max_context_tokens (326 tokens against 200).
function M.fit_text (text, room, cost)
  if cost(text) <= room then return text end
  if cost("") > room then return "" end
  local lo, hi = 0, #text   -- (cost(text:sub(1, lo)) fits, cost(text) does not)
  while hi - lo > 1 do
    local mid = math.floor((lo + hi) / 2)
    if cost(text:sub(1, mid)) <= room then lo = mid else hi = mid end
  end
  -- (not in the middle of a character: back to the start of the one cut)
  while lo > 0 and lo < #text and text:byte(lo + 1) >= 0x80 and text:byte(lo + 1) < 0xC0 do lo = lo - 1 end
  return text:sub(1, lo)
end

-- The text of a content value (a string, parts, or anything else: "").
local function text_of (content)
  if type(content) == "string" then return content end
  if type(content) ~= "table" then return "" end
  local parts = {}
  for _, part in ipairs(content) do
    if type(part) == "table" and type(part.text) == "string" then parts[#parts + 1] = part.text end
  end
  return table_concat(parts, " ")
end

-- " [calls name(arguments)]": a function's call, or a custom tool's (its input).
local function call_text (name, args)
  return string_format("[calls %s(%s)]", type(name) == "string" and name or "?", type(args) == "string" and args or "")
end

-- The text of messages [from, to] as a summarizer reads it, one line each.
function M.transcript (msgs, from, to)
  local lines = {}
  for i = from, to do
    local m = msgs[i]
    local text = text_of(m.content)
    if type(m.tool_calls) == "table" then   -- (a loaded history may hold anything here)
      for _, call in ipairs(m.tool_calls) do
        local f = type(call) == "table" and (call["function"] or call.custom) or nil
        f = type(f) == "table" and f or {}
        local args = f.arguments
        if args == nil then args = f.input end
        text = text .. " " .. call_text(f.name, args)
      end
    end
    local role = m.role
    -- (a Responses history's tool loop: items without a role; an output
    -- may be content parts)
    if m.type == "function_call" or m.type == "custom_tool_call" then
      role, text = "assistant", call_text(m.name, m.type == "function_call" and m.arguments or m.input)
    elseif m.type == "function_call_output" or m.type == "custom_tool_call_output" then
      role, text = "tool", text_of(m.output)
    end
    lines[#lines + 1] = tostring(role or m.type) .. ": " .. text
  end
  return table_concat(lines, "\n")
end

-- The messages a conversation's summary (`{ text =, from =, to = }`) was
-- made of, by the summary table (weak: never saved, never copied; a summary
-- loaded or forked has none). Its indexes alone named them: a history pruned
-- or replaced by hand (`table.remove(conv.messages, 2)`, as a bot that runs
-- for days does) put other turns at them, and the summary was taken as theirs
-- (the turns pruned stayed in it) or extended from past them (the turns moved
-- into its range were never summarized: lost from the context).
local covered = setmetatable({}, { __mode = "k" })
local WEAK_VALUES = { __mode = "v" }

--- Whether summary `s` still covers messages `from`..`s.to` of `msgs` (as
-- when made; one with no record, loaded or forked, is taken by its indexes).
function M.summary_holds (s, msgs)
  local kept = covered[s]
  if kept == nil then return true end
  for i = s.from, s.to do
    if msgs[i] ~= kept[i - s.from + 1] then return false end
  end
  return true
end

--- Records the messages summary `s` covers: `msgs[s.from .. s.to]` (weakly:
-- one pruned and collected is no longer the one at its place).
function M.summary_made (s, msgs)
  local kept = setmetatable({}, WEAK_VALUES)
  for i = s.from, s.to do kept[#kept + 1] = msgs[i] end
  covered[s] = kept
  return s
end

-- The message that ended each response of a server-kept chain, by
-- conversation, by response id (weak: never saved, never copied; a message
-- pruned from the history is not held for it).
local ended = setmetatable({}, { __mode = "k" })

--- Records that response `id` of `conv` ended at message `msg` (by default
-- its history's last).
function M.response_made (conv, id, msg)
  if id == nil then return end
  local by_id = ended[conv]
  if by_id == nil then by_id = setmetatable({}, WEAK_VALUES); ended[conv] = by_id end
  by_id[id] = msg or conv.messages[#conv.messages]
end

--- The index in `msgs` (up to `n`, the history's length) of the message
-- the last response of `conv` ended at: what follows it goes with the next
-- say. Its recorded index (`response_ends`) alone named it: a history pruned
-- by hand put another message there, the messages `add`ed since were not
-- sent (lost), `undo` kept the wrong responses, and `load` refused the save
-- (its ends out of order); when it moved, the indexes of every response
-- follow it (0 for one whose end was pruned: before any message).
function M.response_end (conv, msgs, n)
  local ids, ends = conv.response_ids, conv.response_ends
  local e = ends[#ids] or n
  local m = ended[conv] and ended[conv][ids[#ids]]
  if m ~= nil and msgs[e] ~= m then
    for i = n, 1, -1 do
      if msgs[i] == m then
        for k, x in ipairs(ends) do ends[k] = math_max(x + i - e, 0) end
        return i
      end
    end
  end
  if e > n then e = n end   -- (a history cut by hand: the user's input at least)
  return e
end

--- The summary of fork `c` of `self` (its messages copied already), and the
-- records of both for `c`'s messages: after a history pruned by hand, a
-- fork took the original's summary and ends by index, as they were.
function M.forked (self, c)
  local ids = self.response_ids
  if ids[1] ~= nil then
    local e = M.response_end(self, self.messages, #self.messages)   -- (the original's ends follow first)
    if c.messages[e] ~= nil then M.response_made(c, ids[#ids], c.messages[e]) end
  end
  local s = self.summary
  if s == nil or s.to > #self.messages or not M.summary_holds(s, self.messages) then return nil end
  return M.summary_made({ text = s.text, from = s.from, to = s.to }, c.messages)
end

return M
