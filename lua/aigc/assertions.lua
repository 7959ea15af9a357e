--- The assertions of dataset runs (`aigc.runner`): a reply checked
-- against `{ type =, value = }` items.
--
-- Internal: `aigc.runner` exports `check` and `ASSERTION_TYPES`. Not part
-- of the API.
--
-- @module aigc.assertions
-- @local

local core = require "aigc.core"
local util = require "aigc.util"

local json_decode = core.json.decode
local ipairs, pairs, pcall, tonumber, tostring, type = ipairs, pairs, pcall, tonumber, tostring, type
local table_concat = table.concat

util.own_module()

local M = {}

--- The judge's instruction for `judge` assertions (criteria and reply
-- follow), unless `ctx.judge_prompt` gives another.
M.JUDGE_PROMPT = "You are grading an answer against criteria."

local rex_ok, rex = pcall(require, "rex_pcre2")

--- A short name of an assertion, for the pass-rate table: its type and
-- value ("contains Paris").
-- @tparam table a
-- @treturn string
function M.describe (a)
  local v = a.value
  if type(v) == "table" then v = "…" end
  if v == nil then return a.type end
  v = tostring(v)
  if #v > 40 then v = v:sub(1, 37) .. "..." end
  return a.type .. " " .. v
end

local function parse_json_reply (text)   -- (text: after the <think> block already, M.check)
  -- (found by plain steps: a lazy pattern anchored at both ends took time
  -- cubic in a run of blank lines inside the fence, 15 s for 2,000 -- a
  -- model's degenerate reply held the run for hours)
  local s, from = text, text:match("^%s*```%w*[ \t]*\n()")
  if from then
    local stop = #text
    while stop > 0 and text:find("^%s", stop) do stop = stop - 1 end
    if stop - 2 >= from and text:sub(stop - 2, stop) == "```" then s = text:sub(from, stop - 3) end
  end
  return (json_decode(s))
end

-- Checks one assertion: pass, reason. Judges chat (inside the case's task).
local function check (a, text, ctx)
  local ty, v = a.type, a.value
  if ty == "contains" then return text:find(tostring(v), 1, true) ~= nil
  elseif ty == "icontains" then return text:lower():find(tostring(v):lower(), 1, true) ~= nil
  elseif ty == "not-contains" then return text:find(tostring(v), 1, true) == nil
  elseif ty == "equals" then   -- (trimmed by judge.trim's loops: "^%s*(.-)%s*$" is quadratic in a run of spaces)
    return require("aigc.judge").trim(text) == tostring(v)
  elseif ty == "starts-with" then return text:sub(1, #tostring(v)) == tostring(v)
  elseif ty == "pattern" then
    local ok, r = pcall(string.find, text, tostring(v))
    if not ok then return false, "bad pattern: " .. tostring(r) end
    return r ~= nil
  elseif ty == "regex" then
    if not rex_ok then return false, "regex needs lua-rex-pcre2 (apt-get install lua-rex-pcre2)" end
    local ok, r = pcall(rex.find, text, tostring(v))
    if not ok then return false, "bad regex: " .. tostring(r) end
    return r ~= nil
  elseif ty == "is-json" then
    return parse_json_reply(text) ~= nil, "the reply is not JSON"
  elseif ty == "json-schema" then
    local value = ctx.parsed
    if value == nil then value = parse_json_reply(text) end
    if value == nil then return false, "the reply is not JSON" end
    local ok, violations = require("aigc.schema").validate(value, v)
    if ok then return true end
    local first = violations and violations[1]
    return false, first and (first.path .. ": " .. first.message) or "invalid"
  elseif ty == "judge" then
    local threshold = tonumber(a.threshold) or 7
    local content = table_concat({ (ctx.judge_prompt or M.JUDGE_PROMPT), "", "Criteria:", tostring(v), "",
      "Score the candidate from 1 to 10. Reply with the number only.", "", "Candidate:", text }, "\n")
    local judge = require "aigc.judge"
    -- (a run of a Responses-only model: its judge too)
    local p = judge.ask(ctx.api == "responses" and "responses" or "chat", { max_retries = 2 }, content)
    p.model = a.model or ctx.model
    local res, err = judge.judge_chat(ctx.client, judge.steady(ctx.client, p))
    if not res then return false, "judge failed: " .. tostring(err) end
    ctx.judge_usage[#ctx.judge_usage + 1] = res
    -- (as the strategies' judge reads it: the first number of "On a scale of
    -- 1 to 10, I'd give it 9" is 1, and the case failed)
    local score = require("aigc.judge").score_of(tostring(res.text or ""))
    -- (quoted whole characters: 60 bytes cut a judge's non-ASCII reply inside one, and the
    -- result line, invalid UTF-8, raised from the encoder and stopped the run)
    if not score then
      return false, "the judge gave no score: " .. judge.quote(tostring(res.text or ""), 60, ctx.client)
    end
    return score >= threshold, "score " .. score .. (score >= threshold and " >= " or " < ") .. threshold, score
  end
  return false, "unknown assertion type '" .. tostring(ty) .. "'"
end

--- The assertion types there are (name -> true).
M.TYPES = {
  contains = true, icontains = true, ["not-contains"] = true, equals = true, ["starts-with"] = true,
  pattern = true, regex = true, ["is-json"] = true, ["json-schema"] = true, judge = true,
}
-- {======================================================
-- The assertions' arguments, checked before a run
-- =======================================================

-- The end of the class `[...]` whose `[` is at i - 1 (lstrlib's classEnd), or nil.
local function class_end (p, i)
  if p:sub(i, i) == "^" then i = i + 1 end
  repeat   -- (the first character is in the class, `]` too)
    if i > #p then return nil end
    local c = p:sub(i, i)
    i = i + 1
    if c == "%" and i <= #p then i = i + 1 end
  until p:sub(i, i) == "]"
  return i + 1
end

-- What is wrong with a Lua pattern, or nil, as string.find would raise it
-- on some subject (a try on one subject misses "x[": the match fails at
-- x before it reads the class): lstrlib's syntax, walked.
local function pattern_problem (p)
  if not p:find("[%^%$%*%+%?%.%(%[%%%-]") then return nil end   -- (string.find's plain search: ")" is text)
  local i, open, level = p:sub(1, 1) == "^" and 2 or 1, {}, 0
  while i <= #p do
    local c = p:sub(i, i)
    if c == "(" then
      level = level + 1
      if level > 32 then return "too many captures" end
      if p:sub(i + 1, i + 1) == ")" then i = i + 2 else open[#open + 1] = level; i = i + 1 end
    elseif c == ")" then
      if #open == 0 then return "invalid pattern capture" end
      open[#open] = nil
      i = i + 1
    elseif c == "%" and p:sub(i + 1, i + 1) == "b" then
      if i + 3 > #p then return "malformed pattern (missing arguments to '%b')" end
      i = i + 4
    elseif c == "%" and p:sub(i + 1, i + 1) == "f" then
      if p:sub(i + 2, i + 2) ~= "[" then return "missing '[' after '%f' in pattern" end
      i = class_end(p, i + 3)
      if not i then return "malformed pattern (missing ']')" end
    elseif c == "%" and p:sub(i + 1, i + 1):find("^%d$") then
      local n = tonumber(p:sub(i + 1, i + 1))
      for _, k in ipairs(open) do if k == n then n = 0 end end   -- (a capture still open)
      if n < 1 or n > level then return "invalid capture index %" .. p:sub(i + 1, i + 1) end
      i = i + 2
    else
      if c == "%" then
        if i == #p then return "malformed pattern (ends with '%')" end
        i = i + 2
      elseif c == "[" then
        i = class_end(p, i + 1)
        if not i then return "malformed pattern (missing ']')" end
      else
        i = i + 1
      end
      if p:sub(i, i):find("^[%*%+%-%?]$") then i = i + 1 end
    end
  end
  if #open > 0 then return "unfinished capture" end
  local ok, err = pcall(string.find, "", p)   -- (and what this walk may not know)
  if not ok then return tostring(err) end
  return nil
end

local function text_value (v)
  return type(v) == "string" or type(v) == "number"
end

--- What is wrong with an assertion's arguments, or nil: a value of the
-- wrong type, a Lua pattern or a regex that does not compile, a schema
-- that is not one, a judge's threshold that is not a number. Checked
-- before a run, for each case would fail the same way ("bad pattern",
-- or "the reply is not JSON" for a schema that is a string).
-- @tparam table a `{ type =, value = }` of a known type
-- @treturn string|nil the message, naming the assertion (`pattern '[': malformed pattern (missing ']')`)
-- @usage assert(assertions.problem { type = "pattern", value = "%d+" } == nil)
function M.problem (a)
  local ty, v = a.type, a.value
  local shown = text_value(v) and tostring(v) or ""
  local named = ty .. " '" .. (#shown > 40 and shown:sub(1, 37) .. "..." or shown) .. "'"
  if ty == "is-json" then return nil end
  if ty == "json-schema" then
    if type(v) ~= "table" then
      return "json-schema: the value must be a JSON schema (an object), got " .. util.typename(v)
    end
    local ok, why = require("aigc.schema").check_schema(v)
    if not ok then return "json-schema: not a valid schema: " .. tostring(why) end
    return nil
  end
  if not text_value(v) then return ty .. ": the value must be a string, got " .. util.typename(v) end
  -- (an empty `contains` passed on every reply, `not-contains` failed on every
  -- one, a judge had no criteria: only `equals` means something with "")
  if tostring(v) == "" and ty ~= "equals" then
    return ty .. ": an empty value (it would decide every reply the same way)"
  end
  if ty == "pattern" then
    local why = pattern_problem(tostring(v))
    if why then return named .. ": " .. why end
  elseif ty == "regex" then
    if not rex_ok then return named .. ": regex needs lua-rex-pcre2 (apt-get install lua-rex-pcre2)" end
    local ok, why = pcall(rex.new, tostring(v))
    if not ok then return named .. ": " .. tostring(why) end
  elseif ty == "judge" then
    if a.threshold ~= nil and type(a.threshold) ~= "number" then
      return "judge: threshold must be a number, got " .. util.typename(a.threshold)
    end
    if a.model ~= nil and type(a.model) ~= "string" then
      return "judge: model must be a string, got " .. util.typename(a.model)
    end
  end
  return nil
end

-- }======================================================

--- An `assert` value as a list of assertions: a list as it is, one
-- assertion object as a one-item list, nil as none.
-- @param v
-- @treturn[1] table the list
-- @treturn[2] nil
-- @treturn[2] string what is wrong (a string, a table that is neither, an item of unknown type or
-- whose arguments are wrong: `problem`)
-- @treturn[2] integer|nil the index of the bad item
-- @usage local list = assertions.list { type = "contains", value = "Paris" }   -- { { ... } }
function M.list (v)
  if v == nil then return {} end
  if type(v) == "table" and v.type ~= nil then v = { v } end
  local n = 0
  if type(v) == "table" then for _ in pairs(v) do n = n + 1 end end
  if type(v) ~= "table" or n ~= #v then
    return nil, "a list of assertion objects (each with a type and a value), or one, expected, got "
      .. (type(v) == "table" and "a table of other fields" or type(v))
  end
  for i, a in ipairs(v) do
    if type(a) ~= "table" or not M.TYPES[a.type] then
      -- (a name as it is; else what it is: a JSON null's type read "userdata: (nil)")
      local t = type(a) == "table" and a.type or a
      return nil, "unknown assertion " .. (type(t) == "string" and t or util.describe(t)), i
    end
    local why = M.problem(a)
    if why then return nil, why, i end
  end
  return v
end

--- Checks a reply against assertions (a judge assertion calls the client,
-- so call this where a chat may run: a task, or plain code).
-- @tparam table assertions list of `{type =, value =}`
-- @tparam string text the reply
-- @tparam[opt] table ctx `client` and `model` (for judges), `api` ("responses": judges call `client:respond`),
-- `judge_prompt`, `parsed` (a structured reply)
-- @treturn boolean all pass
-- @treturn table results `{ type =, value =, pass =, reason = }` each
-- @usage local pass, results = assertions.check({ { type = "contains", value = "Paris" } }, res.text)
function M.check (assertions, text, ctx)
  ctx = ctx or {}
  ctx.judge_usage = ctx.judge_usage or {}
  local all, out = true, {}
  -- (a reasoning model's reply: its answer, after its leading <think> block, as a structured
  -- reply, a judge's verdict and the strategies read it; the result line keeps the whole text)
  local _, answer = require("aigc.schema").split_think(text or "")
  for i, a in ipairs(assertions or {}) do
    local pass, reason, score = check(a, answer, ctx)
    pass = pass and true or false
    out[i] = { type = a.type, value = a.value, pass = pass, reason = (not pass or score) and reason or nil,
               score = score }
    if not pass then all = false end
  end
  return all, out
end

return M
