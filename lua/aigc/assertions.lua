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

local function parse_json_reply (text)
  local s = text:match("^%s*```%w*%s*\n(.-)\n%s*```%s*$") or text
  local v = json_decode(s)
  return v
end

-- Checks one assertion: pass, reason. Judges chat (inside the case's task).
local function check (a, text, ctx)
  local ty, v = a.type, a.value
  if ty == "contains" then return text:find(tostring(v), 1, true) ~= nil
  elseif ty == "icontains" then return text:lower():find(tostring(v):lower(), 1, true) ~= nil
  elseif ty == "not-contains" then return text:find(tostring(v), 1, true) == nil
  elseif ty == "equals" then return text:match("^%s*(.-)%s*$") == tostring(v)
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
    local p = { messages = { { role = "user", content = content } }, temperature = 0, max_retries = 2 }
    p.model = a.model or ctx.model
    local res, err = ctx.client:chat(p)
    if not res then return false, "judge failed: " .. tostring(err) end
    ctx.judge_usage[#ctx.judge_usage + 1] = res
    local score = tonumber(tostring(res.text or ""):match("%-?%d+%.?%d*"))
    if not score then return false, "the judge gave no score: " .. tostring(res.text):sub(1, 60) end
    return score >= threshold, "score " .. score .. (score >= threshold and " >= " or " < ") .. threshold, score
  end
  return false, "unknown assertion type '" .. tostring(ty) .. "'"
end

--- The assertion types there are (name -> true).
M.TYPES = {
  contains = true, icontains = true, ["not-contains"] = true, equals = true, ["starts-with"] = true,
  pattern = true, regex = true, ["is-json"] = true, ["json-schema"] = true, judge = true,
}
--- An `assert` value as a list of assertions: a list as it is, one
-- assertion object as a one-item list, nil as none.
-- @param v
-- @treturn[1] table the list
-- @treturn[2] nil
-- @treturn[2] string what is wrong (a string, a table that is neither, an item of unknown type)
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
      return nil, "unknown assertion " .. tostring(type(a) == "table" and a.type or a), i
    end
  end
  return v
end

--- Checks a reply against assertions (a judge assertion calls the client,
-- so call this where a chat may run: a task, or plain code).
-- @tparam table assertions list of `{type =, value =}`
-- @tparam string text the reply
-- @tparam[opt] table ctx `client` and `model` (for judges), `judge_prompt`, `parsed` (a structured reply)
-- @treturn boolean all pass
-- @treturn table results `{ type =, value =, pass =, reason = }` each
-- @usage local pass, results = assertions.check({ { type = "contains", value = "Paris" } }, res.text)
function M.check (assertions, text, ctx)
  ctx = ctx or {}
  ctx.judge_usage = ctx.judge_usage or {}
  local all, out = true, {}
  for i, a in ipairs(assertions or {}) do
    local pass, reason, score = check(a, text or "", ctx)
    pass = pass and true or false
    out[i] = { type = a.type, value = a.value, pass = pass, reason = (not pass or score) and reason or nil,
               score = score }
    if not pass then all = false end
  end
  return all, out
end

return M
