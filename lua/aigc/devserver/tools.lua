--- aigc devserver: tool calls. With `tools`, every `name(ARGS)` in the last
-- user message is a call with ARGS verbatim; a bare name (or its words) is a
-- call with a minimal valid instance of its parameters; tool_choice and
-- parallel_tool_calls as OpenAI defines them (see the devserver header).
-- Part of the devserver package.

local json = require "aigc.devserver.json"
local util = require "aigc.devserver.util"
local schema = require "aigc.devserver.schema"

local find, gsub, lower, sub = string.find, string.gsub, string.lower, string.sub
local sort = table.sort
local uid, pieces, trim = util.uid, util.pieces, util.trim
local instance = schema.instance

local M = {}

-- Tool calls named in `text`: { {name =, arguments =} ... } in order of appearance.
local function matching_paren (text, open)
  local depth, i, n, instr = 0, open, #text, false
  while i <= n do
    local c = sub(text, i, i)
    if instr then
      if c == "\\" then i = i + 1 elseif c == '"' then instr = false end
    elseif c == '"' then instr = true
    elseif c == "(" then depth = depth + 1
    elseif c == ")" then depth = depth - 1; if depth == 0 then return i end
    end
    i = i + 1
  end
  depth = 0 -- unbalanced quotes: count parentheses only
  for k = open, n do
    local c = sub(text, k, k)
    if c == "(" then depth = depth + 1 elseif c == ")" then depth = depth - 1; if depth == 0 then return k end end
  end
  return n + 1
end

local function minimal_args (tool, ctx)
  if ctx then ctx.derive = true end
  local args = json.encode(instance(tool.parameters or { type = "object" }, tool.parameters, nil, ctx))
  if ctx then ctx.derive = nil end
  return args
end

local function find_calls (text, tools)
  local found = {}
  local taken = {}
  for _, tool in ipairs(tools) do
    local pat = "%f[%w_%-]" .. gsub(tool.name, "%p", "%%%0") .. "%f[^%w_%-]"
    local pos = 1
    while true do
      local s, e = find(text, pat, pos)
      if not s then break end
      local args
      if sub(text, e + 1, e + 1) == "(" then
        local close = matching_paren(text, e + 1)
        args = sub(text, e + 2, close - 1)
        pos = close + 1
      else
        args = minimal_args(tool, tool.ctx)
        pos = e + 1
      end
      found[#found + 1] = { pos = s, name = tool.name, arguments = args }
      taken[#taken + 1] = { s, pos - 1 }
    end
  end
  -- Names written as words ("track order" for track_order), once per tool.
  local ltext = lower(text)
  for _, tool in ipairs(tools) do
    local words_of_name = trim(gsub(lower(tool.name), "[_%-]+", " "))
    if find(words_of_name, " ", 1, true) or words_of_name ~= lower(tool.name) then
      local pat = "%f[%w]" .. gsub(gsub(words_of_name, "%p", "%%%0"), " ", "[%%s_%%-]+") .. "%f[%W]"
      local s, e = find(ltext, pat)
      local overlaps = false
      for _, r in ipairs(taken) do if s and s <= r[2] and e >= r[1] then overlaps = true end end
      local already = false
      for _, f in ipairs(found) do if f.name == tool.name then already = true end end
      if s and not overlaps and not already then
        found[#found + 1] = { pos = s, name = tool.name, arguments = minimal_args(tool, tool.ctx) }
      end
    end
  end
  sort(found, function (a, b) return a.pos < b.pos end)
  return found
end

local function plan_calls (ctx, body, tools)
  if not tools or #tools == 0 or ctx.tool_results then return nil end
  local tc = body.tool_choice
  if tc == "none" then return nil end
  for _, t in ipairs(tools) do t.ctx = ctx end
  local calls = find_calls(ctx.last_text, tools)
  local forced = type(tc) == "table" and type(tc["function"]) == "table" and tc["function"].name
  local function minimal (t)
    return { name = t.name, arguments = minimal_args(t, ctx) }
  end
  if forced then
    local only = {}
    for _, c in ipairs(calls) do if c.name == forced then only[#only + 1] = c end end
    if #only == 0 then
      local tool
      for _, t in ipairs(tools) do if t.name == forced then tool = t end end
      only[1] = minimal(tool or { name = forced })
    end
    calls = only
  elseif tc == "required" and #calls == 0 then
    calls[1] = minimal(tools[1])
  end
  if #calls == 0 then return nil end
  if body.parallel_tool_calls == false then calls = { calls[1] } end
  for _, c in ipairs(calls) do c.id = "call_" .. uid(); c.pieces = pieces(c.arguments, 8) end
  return calls
end

M.plan_calls = plan_calls

return M
