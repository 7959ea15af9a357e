--- Integers where a JSON schema says so: part of `aigc.schema`, for a value
-- that passed its schema.
--
-- Internal: not part of the API.
--
-- @module aigc.schema_integers
-- @local

local core = require "aigc.core"
local util = require "aigc.util"

local null = core.null
local ipairs, pairs, rawget, type = ipairs, pairs, rawget, type
util.own_module()

local M = {}

-- JSON's 3.0 is an integer to JSON Schema, but Lua 5.3+ decode it as the
-- float 3.0, which prints "3.0" ("You have 3.0 apples") and goes back to a
-- server as 3.0. After a value passed its schema, an integral float where
-- the schema wants an integer (and not a number) becomes a Lua integer:
-- through properties, additionalProperties, items, prefixItems and allOf
-- (a value matches each of those); anyOf/oneOf/if branches are left alone
-- (which one matched is not kept). Lua 5.1, 5.2 and LuaJIT have one number
-- type: nothing to do.
local tointeger = rawget(math, "tointeger")
local as_integers   -- forward
local json_type, max_depth, visited   -- (the ones of the call: aigc.schema's, and `place`'s)

-- The schema nodes already applied at each place of the value: `at[s]`, `at`
-- the set of place (container, key). Without it a schema whose allOf named
-- one node twice, level after level (`allOf = { {$ref = "#/$defs/n1"}, {$ref
-- = "#/$defs/n1"} }` ...), was walked twice per level: 2^22 walks (4 s) for a
-- schema of 23 nodes that validation checked in a millisecond, 2^30 a hang.
-- A node applied to a place once has converted it: again changes nothing.
local function place (container, key)
  local slots = visited[container]
  if slots == nil then slots = {}; visited[container] = slots end
  local at = slots[key]
  if at == nil then at = {}; slots[key] = at end
  return at
end

-- The schema node s stands for and v, converted by the target of a `$ref`
-- that has keywords beside it (s is then that node, for those).
local function resolved (v, s, c, depth, at)
  while type(s) == "table" and c.refs[s] ~= nil do
    if c.beside[s] then return as_integers(v, c.refs[s], c, depth, at), s end
    s = c.refs[s]
  end
  return v, s
end

local function wants_integer (s)
  local t = s.type
  if t == "integer" then return true end
  if type(t) ~= "table" then return false end
  local integer = false
  for _, w in ipairs(t) do
    if w == "number" then return false end
    if w == "integer" then integer = true end
  end
  return integer
end

function as_integers (v, s, c, depth, at)
  if depth > max_depth then return v end
  v, s = resolved(v, s, c, depth, at)
  if tointeger == nil or type(s) ~= "table" or at[s] then return v end
  at[s] = true
  if s.allOf then
    for _, sub in ipairs(s.allOf) do v = as_integers(v, sub, c, depth, at) end
  end
  if type(v) == "number" then
    return wants_integer(s) and tointeger(v) or v
  elseif type(v) ~= "table" or v == null then
    return v
  end
  local props, items, prefix = s.properties, s.items, s.prefixItems
  local patterns, extra = c.patterns[s], s.additionalProperties
  if json_type(v) == "array" then
    local tuple = type(items) == "table" and items[1] ~= nil
    for i = 1, #v do
      local sub = prefix and prefix[i] or (tuple and (items[i] or s.additionalItems)) or (not tuple and items) or nil
      if type(sub) == "table" then v[i] = as_integers(v[i], sub, c, depth + 1, place(v, i)) end
    end
  elseif props or patterns or type(extra) == "table" then
    for k, x in pairs(v) do   -- (as check_object: properties and every matching pattern, else extra)
      local sub = props and props[k]
      local known = sub ~= nil
      local here = place(v, k)
      if type(sub) == "table" then x = as_integers(x, sub, c, depth + 1, here) end
      for _, p in ipairs(type(k) == "string" and patterns or {}) do
        if not p.match then known = true   -- (unchecked: it may have taken the key)
        else
          local hit = p.match(k, c.budget)
          if hit ~= false then known = true end
          if hit then x = as_integers(x, p.schema, c, depth + 1, here) end
        end
      end
      if not known and type(extra) == "table" then x = as_integers(x, extra, c, depth + 1, here) end
      v[k] = x
    end
  end
  return v
end


--- The value (converted in place) with its integral floats made integers
-- where `schema` wants integers.
-- @param v a value that passed schema
-- @param schema
-- @tparam table c its compiled form (aigc.schema_compile), with a regex `budget`
-- @tparam function jt aigc.schema's json_type
-- @tparam integer depth_limit aigc.schema's MAX_DEPTH
-- @return v
function M.convert (v, schema, c, jt, depth_limit)
  json_type, max_depth = jt, depth_limit
  visited = {}
  local out = as_integers(v, schema, c, 0, {})
  visited = nil
  return out
end

return M
