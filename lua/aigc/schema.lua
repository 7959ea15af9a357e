--- JSON Schema validation for structured output and tool arguments.
--
-- A validator for the subset of JSON Schema that OpenAI's structured
-- outputs accept (and a little more): `type` (one or a list), `enum`,
-- `const`, `properties`, `required`, `additionalProperties`,
-- `minProperties`, `maxProperties`, `items`, `prefixItems`, `minItems`,
-- `maxItems`, `uniqueItems`, `minLength`, `maxLength` (in characters),
-- `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`,
-- `multipleOf`, `anyOf`, `oneOf`, `allOf`, `not`, and `$ref` to `#`,
-- `#/$defs/...` or `#/definitions/...`. Not checked: `pattern` and `format`
-- (Lua patterns are not regular expressions: a wrong check is worse than none).
--
-- Values are Lua values as `aigc.json.decode` gives them: `aigc.null` is
-- null, tables carrying the array mark are arrays. An unmarked table is an
-- array when it is a non-empty sequence, an object otherwise; an empty
-- unmarked table passes as either.
--
-- Paths name where a violation is, JSONPath style with 0-based indexes
-- as in the JSON text: `$`, `$.items[0].name`, `$["odd key"]`.
--
-- A schema is checked before it is used: a keyword of the wrong type
-- (`minimum = "5"`), a `$ref` that does not resolve, or a loop of `$ref`,
-- `allOf`, `anyOf`, `oneOf` or `not` that never descends into the value
-- raises, naming its place (`#/properties/age/minimum`). Validation then
-- terminates on any schema and value: each place in the value is checked
-- against each schema node at most once (work bounded by value size times
-- schema size), `anyOf` stops at the first match, `uniqueItems` hashes.
-- Recursive schemas take data as deep as JSON nests (`MAX_DEPTH` levels).
--
-- @module aigc.schema
-- @usage
-- local schema = require "aigc.schema"
-- local ok, violations = schema.validate({ mood = "grumpy" },
--   { type = "object", properties = { mood = { enum = { "happy", "sad" } } } })
-- -- ok == false; violations[1].path == "$.mood"

local core = require "aigc.core"
local compat = require "aigc.compat"
local util = require "aigc.util"

local null = core.null
local is_array = core.is_array
local json_decode = core.json.decode
local error, getmetatable, ipairs, next, pairs, pcall, select, setmetatable, tonumber, tostring, type =
  error, getmetatable, ipairs, next, pairs, pcall, select, setmetatable, tonumber, tostring, type
local math_floor, math_abs = math.floor, math.abs
local string_format, string_match = string.format, string.match
local table_concat, table_sort = table.concat, table.sort
local utf8_len = compat.utf8_len
util.own_module()

local M = {}

--- The most violations an error message lists (all are in `err.violations`).
M.MAX_LISTED = 10

-- {======================================================
-- Values
-- =======================================================

-- The JSON type of a Lua value: "null", "boolean", "integer" (a number
-- with no fraction, as JSON Schema counts them), "number", "string",
-- "array", "object", "empty" (an unmarked empty table) or nil.
local function json_type (v)
  local t = type(v)
  if t == "string" then return "string"
  elseif t == "number" then
    if v == math_floor(v) and v - v == 0 then return "integer" end
    return "number"
  elseif t == "boolean" then return "boolean"
  elseif v == null then return "null"
  elseif t == "table" then
    if is_array(v) then return "array" end
    if next(v) == nil then return "empty" end
    local n = #v
    if n > 0 then
      local count = 0
      for _ in pairs(v) do count = count + 1 end
      if count == n then return "array" end
    end
    return "object"
  end
  return nil
end

local function matches_type (jt, want)
  if want == jt then return true end
  if want == "number" then return jt == "integer" end
  if jt == "empty" then return want == "array" or want == "object" end
  return false
end

local function show (v)
  local t = type(v)
  if t == "string" then
    if #v > 40 then v = v:sub(1, 37) .. "..." end
    return string_format("%q", v):gsub("\\\n", "\\n")
  elseif v == null then return "null"
  elseif t == "table" then
    local ok, s = pcall(core.json.encode, v)
    if ok then
      if #s > 40 then s = s:sub(1, 37) .. "..." end
      return s
    end
  end
  return tostring(v)
end

local function type_name (jt)
  if jt == "empty" then return "an empty table" end
  if jt == nil then return "a value JSON cannot hold" end
  return jt
end

local function child_path (path, key)
  if type(key) == "number" then return path .. "[" .. key .. "]" end
  if string_match(key, "^[%a_][%w_]*$") then return path .. "." .. key end
  return path .. "[" .. string_format("%q", key) .. "]"
end

-- }======================================================


-- {======================================================
-- Checking the schema itself (misuse raises)
-- =======================================================

-- Walked once per validation, before any value is looked at: every keyword
-- this module reads must have the type it reads it as (so that a schema
-- mistake is an error naming its place, never an error from in here), every
-- `$ref` must resolve, and no chain of in-place applicators (`$ref`,
-- `allOf`, `anyOf`, `oneOf`, `not`) may lead back to where it started
-- without descending into the value: such a loop would recurse forever on
-- some values, whatever the depth of the data.

local TYPE_NAMES = { null = true, boolean = true, object = true, array = true, number = true, string = true,
                     integer = true }

local SchemaError = {}   -- the error value the walk raises, caught in `compile`

local function bad (where, fmt, ...)
  error(setmetatable({ message = where .. " " .. string_format(fmt, ...) }, SchemaError), 0)
end

local function value_name (v)
  if v ~= v then return "NaN" end
  if type(v) == "number" then return tostring(v) end
  return type(v)
end

local function pointer_part (k)
  return (tostring(k):gsub("~", "~0"):gsub("/", "~1"))
end

local function is_schema (x) return type(x) == "table" or type(x) == "boolean" end

-- The schema a JSON pointer ("#" or "#/a/b/0") names inside root, or nil
-- and why not. Segments that index an array are 0-based, as in JSON.
local function resolve_pointer (root, ref)
  if ref == "#" then return root end
  local rest = string_match(ref, "^#/(.*)$")
  if not rest then return nil, 'is not supported (only "#" and "#/..." pointers into this schema)' end
  local target = root
  for part in (rest .. "/"):gmatch("([^/]*)/") do
    part = part:gsub("~1", "/"):gsub("~0", "~")
    if type(target) ~= "table" then return nil, "does not resolve to a schema" end
    local v = target[part]
    if v == nil and string_match(part, "^%d+$") then v = target[tonumber(part) + 1] end
    target = v
  end
  if not is_schema(target) then return nil, "does not resolve to a schema" end
  return target
end

local walk   -- forward

local function walk_schema (c, sub, where)
  if not is_schema(sub) then bad(where, "must be a schema (a table or a boolean), got %s", type(sub)) end
  walk(c, sub, where)
end

local function walk_list (c, list, where, edges)
  if type(list) ~= "table" or list[1] == nil then bad(where, "must be a non-empty list of schemas") end
  for i, sub in ipairs(list) do
    local w = where .. "/" .. (i - 1)
    walk_schema(c, sub, w)
    if edges then edges[#edges + 1] = { sub, w } end
  end
end

local function check_number_keyword (s, where, k)
  local v = s[k]
  if v ~= nil and (type(v) ~= "number" or v ~= v) then
    bad(where .. "/" .. k, "must be a number, got %s", value_name(v))
  end
end

local function check_count_keyword (s, where, k)
  local v = s[k]
  if v ~= nil and not compat.is_integer(v) or (v or 0) < 0 then
    bad(where .. "/" .. k, "must be an integer >= 0, got %s", value_name(v))
  end
end

-- Checks the keywords of node s that hold values, not schemas.
local function check_keywords (s, where)
  local t = s.type
  if type(t) == "string" then
    if not TYPE_NAMES[t] then
      bad(where .. "/type:", "unknown type %s (null, boolean, object, array, number, string, integer)", show(t))
    end
  elseif type(t) == "table" then
    for i, name in ipairs(t) do
      if type(name) ~= "string" then bad(where .. "/type/" .. (i - 1), "must be a type name, got %s", type(name)) end
      if not TYPE_NAMES[name] then
        bad(where .. "/type/" .. (i - 1) .. ":", "unknown type %s (null, boolean, object, array, number, string, "
            .. "integer)", show(name))
      end
    end
  elseif t ~= nil then
    bad(where .. "/type", "must be a type name or a list of them, got %s", type(t))
  end
  if s.enum ~= nil and type(s.enum) ~= "table" then bad(where .. "/enum", "must be a list, got %s", type(s.enum)) end
  check_number_keyword(s, where, "minimum")
  check_number_keyword(s, where, "maximum")
  for _, k in ipairs { "exclusiveMinimum", "exclusiveMaximum" } do
    local v = s[k]
    if v ~= nil and type(v) ~= "boolean" then check_number_keyword(s, where, k) end
  end
  local m = s.multipleOf
  if m ~= nil and not (type(m) == "number" and m > 0 and m < math.huge) then
    bad(where .. "/multipleOf", "must be a number > 0, got %s", value_name(m))
  end
  for _, k in ipairs { "minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties" } do
    check_count_keyword(s, where, k)
  end
  if s.uniqueItems ~= nil and type(s.uniqueItems) ~= "boolean" then
    bad(where .. "/uniqueItems", "must be a boolean, got %s", type(s.uniqueItems))
  end
  local req = s.required
  if req ~= nil then
    if type(req) ~= "table" then bad(where .. "/required", "must be a list of property names, got %s", type(req)) end
    for i, k in ipairs(req) do
      if type(k) ~= "string" then bad(where .. "/required/" .. (i - 1), "must be a string, got %s", type(k)) end
    end
  end
end

-- Checks node s (a table) found at `where`; records its in-place edges.
function walk (c, s, where)
  if type(s) ~= "table" or c.seen[s] then return end
  c.seen[s] = where
  c.order[#c.order + 1] = s
  local edges = {}
  c.edges[s] = edges

  local ref = s["$ref"]
  if ref ~= nil then
    if type(ref) ~= "string" then bad(where .. "/$ref", "must be a string, got %s", type(ref)) end
    local target, why = resolve_pointer(c.root, ref)
    if target == nil then bad(where .. "/$ref:", "%s %s", show(ref), why) end
    c.refs[s] = target
    -- (the keywords beside a $ref are not applied: the node stands for its target)
    edges[1] = { target, where .. "/$ref", ref }
    walk(c, target, ref)
  end

  check_keywords(s, where)

  local props = s.properties
  if props ~= nil then
    if type(props) ~= "table" then bad(where .. "/properties", "must be a table of schemas, got %s", type(props)) end
    for k, sub in pairs(props) do walk_schema(c, sub, where .. "/properties/" .. pointer_part(k)) end
  end
  if s.additionalProperties ~= nil then walk_schema(c, s.additionalProperties, where .. "/additionalProperties") end
  local items = s.items
  if type(items) == "table" and items[1] ~= nil then   -- the old tuple form: a schema per position
    for i, sub in ipairs(items) do walk_schema(c, sub, where .. "/items/" .. (i - 1)) end
  elseif items ~= nil then
    walk_schema(c, items, where .. "/items")
  end
  if s.prefixItems ~= nil then walk_list(c, s.prefixItems, where .. "/prefixItems") end
  for _, k in ipairs { "$defs", "definitions" } do
    local defs = s[k]
    if defs ~= nil then
      if type(defs) ~= "table" then bad(where .. "/" .. k, "must be a table of schemas, got %s", type(defs)) end
      for name, sub in pairs(defs) do walk_schema(c, sub, where .. "/" .. k .. "/" .. pointer_part(name)) end
    end
  end
  local in_place = ref == nil and edges or nil
  for _, k in ipairs { "allOf", "anyOf", "oneOf" } do
    if s[k] ~= nil then walk_list(c, s[k], where .. "/" .. k, in_place) end
  end
  local n = s["not"]
  if n ~= nil then
    walk_schema(c, n, where .. "/not")
    if in_place then in_place[#in_place + 1] = { n, where .. "/not" } end
  end
end

-- Finds an in-place loop (depth first, in the order the nodes were found,
-- so that the one reported does not depend on table traversal order).
local function find_loop (c)
  local state = {}   -- node -> 1 (on the current path) or 2 (done)
  local function visit (s)
    state[s] = 1
    for _, e in ipairs(c.edges[s]) do
      local sub, where, ref = e[1], e[2], e[3]
      if type(sub) == "table" then
        if state[sub] == 1 then
          bad(where .. (ref and ":" or ""), "%sleads back to %s without descending into the value: it would recurse "
              .. "forever", ref and (show(ref) .. " ") or "", c.seen[sub])
        elseif state[sub] == nil then
          visit(sub)
        end
      end
    end
    state[s] = 2
  end
  for _, s in ipairs(c.order) do
    if state[s] == nil then visit(s) end
  end
end

-- Checks a schema; returns what validation needs (the resolved $refs), or
-- nil and the message naming the misuse.
local function compile (schema)
  if type(schema) == "boolean" then return { refs = {} } end
  local c = { root = schema, seen = {}, order = {}, edges = {}, refs = {} }
  local ok, e = pcall(function ()
    walk(c, schema, "#")
    find_loop(c)
  end)
  if ok then return c end
  if getmetatable(e) == SchemaError then return nil, e.message end
  error(e, 0)
end

-- }======================================================


-- {======================================================
-- Validation
-- =======================================================

-- Each place in the value (a "position": the root, a property, an item)
-- is checked against each schema node at most once: results are memoized
-- per position and node, so that allOf/anyOf of self-references cost the
-- size of the value times the size of the schema, not an exponential.
-- A result is a list of violations and of the sub-results it includes
-- (shared, never copied), with `n`, the number of violations in it; it is
-- flattened once at the end.

local VALID = { n = 0 }   -- the result of a check that found nothing

--- How deep a value may nest (a Lua value may also be cyclic). JSON text
-- nests at most 512 levels (the decoder's limit).
M.MAX_DEPTH = 1000
--- The most `enum` values an error message lists.
M.MAX_ENUM_LISTED = 10

local function position (parent, key)
  if parent == nil then return { memo = {}, depth = 0 } end
  local kids = parent.kids
  if kids == nil then kids = {}; parent.kids = kids end
  local p = kids[key]
  if p == nil then
    p = { parent = parent, key = key, memo = {}, depth = parent.depth + 1 }
    kids[key] = p
  end
  return p
end

local function path_of (pos)
  if pos.path then return pos.path end
  local keys, p = {}, pos
  while p.parent and not p.parent.path do keys[#keys + 1] = p.key; p = p.parent end
  local path = p.parent and p.parent.path or "$"
  if p.parent then keys[#keys + 1] = p.key end
  for i = #keys, 1, -1 do path = child_path(path, keys[i]) end
  pos.path = path
  return path
end

local function add (r, pos, fmt, ...)
  r[#r + 1] = { pos = pos, message = select("#", ...) > 0 and string_format(fmt, ...) or fmt }
  r.n = r.n + 1
end

local function include (r, sub)
  if sub.n > 0 then
    r[#r + 1] = sub
    r.n = r.n + sub.n
  end
end

-- The first violation of a result, depth first.
local function first_of (r)
  for _, x in ipairs(r) do
    if x.message then return x end
    local f = first_of(x)
    if f then return f end
  end
  return nil
end

-- JSON equality: numbers by value, tables structurally.
local function equal (a, b, depth)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  depth = (depth or 0) + 1
  if depth > M.MAX_DEPTH then return false end
  for k, v in pairs(a) do
    if not equal(v, b[k], depth) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

-- A string that is the same for two values exactly when `equal` says so
-- (for values JSON can hold): numbers by value (1 and 1.0 alike), strings
-- length-prefixed, table keys sorted. For uniqueItems in linear time.
local function canonical (v, depth)
  local t = type(v)
  if t == "string" then return "s" .. #v .. ":" .. v end
  if t == "number" then
    if v == math_floor(v) and v >= -2 ^ 63 and v < 2 ^ 63 then return string_format("n%d", v) end
    return string_format("n%.17g", v)
  end
  if t == "boolean" then return v and "T" or "F" end
  if v == null then return "Z" end
  if t ~= "table" or depth > M.MAX_DEPTH then return "?" .. tostring(v) end   -- by identity
  local parts = {}
  for k, x in pairs(v) do parts[#parts + 1] = canonical(k, depth + 1) .. "=" .. canonical(x, depth + 1) end
  table_sort(parts)
  return "{" .. table_concat(parts, ",") .. "}"
end

local check   -- forward

-- The keys of the object at pos, sorted (computed once per position).
local function sorted_keys (v, pos)
  local keys = pos.keys
  if keys then return keys end
  keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  local name = {}
  for _, k in ipairs(keys) do name[k] = tostring(k) end
  table_sort(keys, function (a, b) return name[a] < name[b] end)
  pos.keys = keys
  return keys
end

-- Checks an object's keywords; v is a table treated as an object.
local function check_object (v, s, pos, r, c)
  local props = s.properties
  if s.required then
    for _, k in ipairs(s.required) do
      if v[k] == nil then add(r, position(pos, k), "required property is missing") end
    end
  end
  local extra = s.additionalProperties
  for _, k in ipairs(sorted_keys(v, pos)) do
    if type(k) ~= "string" then
      add(r, pos, "object key %s is not a string", show(k))
    elseif props and props[k] ~= nil then
      include(r, check(v[k], props[k], position(pos, k), c))
    elseif extra == false then
      add(r, position(pos, k), "property is not allowed (additionalProperties is false)")
    elseif type(extra) == "table" then
      include(r, check(v[k], extra, position(pos, k), c))
    end
  end
  if s.minProperties or s.maxProperties then
    local n = #sorted_keys(v, pos)
    if s.minProperties and n < s.minProperties then
      add(r, pos, "expected at least %d properties, got %d", s.minProperties, n)
    end
    if s.maxProperties and n > s.maxProperties then
      add(r, pos, "expected at most %d properties, got %d", s.maxProperties, n)
    end
  end
end

local function check_array (v, s, pos, r, c)
  local n = #v
  local prefix = s.prefixItems
  local items = s.items
  local tuple = type(items) == "table" and items[1] ~= nil
  for i = 1, n do
    local sub
    if prefix and prefix[i] ~= nil then sub = prefix[i]
    elseif tuple then sub = items[i]
    else sub = items end
    if sub == false then
      add(r, position(pos, i - 1), "no item is allowed here")
    elseif type(sub) == "table" then
      include(r, check(v[i], sub, position(pos, i - 1), c))
    end
  end
  if s.minItems and n < s.minItems then add(r, pos, "expected at least %d items, got %d", s.minItems, n) end
  if s.maxItems and n > s.maxItems then add(r, pos, "expected at most %d items, got %d", s.maxItems, n) end
  if s.uniqueItems == true then
    local first = {}
    for i = 1, n do
      local key = canonical(v[i], pos.depth + 1)
      local j = first[key]
      if j then
        add(r, position(pos, i - 1), "duplicate of item %d (uniqueItems)", j - 1)
      else
        first[key] = i
      end
    end
  end
end

local function check_number (v, s, pos, r)
  local min, max, xmin, xmax = s.minimum, s.maximum, s.exclusiveMinimum, s.exclusiveMaximum
  if min and v < min then add(r, pos, "%s is less than the minimum %s", show(v), show(min)) end
  if max and v > max then add(r, pos, "%s is more than the maximum %s", show(v), show(max)) end
  -- (draft 4: a boolean exclusiveMinimum makes minimum exclusive)
  if xmin == true then xmin = min elseif xmin == false then xmin = nil end
  if xmax == true then xmax = max elseif xmax == false then xmax = nil end
  if xmin and v <= xmin then add(r, pos, "%s must be more than %s", show(v), show(xmin)) end
  if xmax and v >= xmax then add(r, pos, "%s must be less than %s", show(v), show(xmax)) end
  local m = s.multipleOf
  if m then
    local q = v / m
    if math_abs(q - math_floor(q + 0.5)) > 1e-9 then add(r, pos, "%s is not a multiple of %s", show(v), show(m)) end
  end
end

local function check_string (v, s, pos, r)
  if s.minLength or s.maxLength then
    local n = utf8_len(v) or #v
    if s.minLength and n < s.minLength then
      add(r, pos, "expected at least %d characters, got %d", s.minLength, n)
    end
    if s.maxLength and n > s.maxLength then
      add(r, pos, "expected at most %d characters, got %d", s.maxLength, n)
    end
  end
end

local function check_enum (v, s, pos, r)
  local list = s.enum
  for _, e in ipairs(list) do
    if equal(v, e) then return end
  end
  local shown = {}
  for i, e in ipairs(list) do
    if i > M.MAX_ENUM_LISTED then
      shown[#shown] = shown[#shown] .. string_format(" (and %d more)", #list - M.MAX_ENUM_LISTED)
      break
    end
    shown[i] = show(e)
  end
  add(r, pos, "expected one of %s, got %s", table_concat(shown, ", "), show(v))
end

-- Tries the alternatives of anyOf (up to the first that matches) or oneOf
-- (all: the message says how many matched; memoized, so no dearer).
local function check_alternatives (v, s, key, pos, r, c)
  local alts = s[key]
  local matched, best = 0, nil
  for _, sub in ipairs(alts) do
    local o = check(v, sub, pos, c)
    if o.n == 0 then
      matched = matched + 1
      if key == "anyOf" then break end
    elseif best == nil or o.n < best.n then
      best = o
    end
  end
  if matched == 0 then
    if #alts == 1 then
      include(r, best)
    else
      local f = first_of(best)
      add(r, pos, "matches none of the %d alternatives (%s)%s", #alts, key,
          f and (": closest: " .. path_of(f.pos) .. ": " .. f.message) or "")
    end
  elseif key == "oneOf" and matched > 1 then
    add(r, pos, "matches %d of the oneOf alternatives, expected exactly one", matched)
  end
end

local function json_type_at (v, pos)
  local jt = pos.jt
  if jt == nil then
    jt = json_type(v) or false
    pos.jt = jt
  end
  return jt or nil
end

-- Checks v (at pos) against schema node s; returns the result.
function check (v, s, pos, c)
  while type(s) == "table" do   -- follow $refs (compile proved the chain ends)
    local target = c.refs[s]
    if target == nil then break end
    s = target
  end
  if s == true then return VALID end
  local r = pos.memo[s]
  if r then return r end
  r = { n = 0 }
  if s == false then
    add(r, pos, "no value is allowed here")
  elseif pos.depth > M.MAX_DEPTH then
    add(r, pos, "value nested deeper than %d levels", M.MAX_DEPTH)
  else
    local jt = json_type_at(v, pos)
    local want = s.type
    local type_ok = true
    if want ~= nil then
      type_ok = false
      if type(want) == "table" then
        for _, w in ipairs(want) do if matches_type(jt, w) then type_ok = true; break end end
      else
        type_ok = matches_type(jt, want)
      end
      if not type_ok then
        local names = type(want) == "table" and table_concat(want, " or ") or want
        add(r, pos, "expected %s, got %s", names, type_name(jt))
      end
    elseif jt == nil then
      add(r, pos, "expected a JSON value, got %s", type(v))
      type_ok = false
    end
    if type_ok then
      if s.const ~= nil and not equal(v, s.const) then
        add(r, pos, "expected %s, got %s", show(s.const), show(v))
      end
      if s.enum ~= nil then check_enum(v, s, pos, r) end
      local as_object = jt == "empty" and s.type ~= "array" and (s.properties or s.required or s.minProperties)
      if jt == "object" or as_object then
        check_object(v, s, pos, r, c)
      elseif jt == "array" then
        check_array(v, s, pos, r, c)
      elseif jt == "integer" or jt == "number" then
        check_number(v, s, pos, r)
      elseif jt == "string" then
        check_string(v, s, pos, r)
      end
      if s.allOf then
        for _, sub in ipairs(s.allOf) do include(r, check(v, sub, pos, c)) end
      end
      if s.anyOf then check_alternatives(v, s, "anyOf", pos, r, c) end
      if s.oneOf then check_alternatives(v, s, "oneOf", pos, r, c) end
      if s["not"] ~= nil and check(v, s["not"], pos, c).n == 0 then
        add(r, pos, "must not match the 'not' schema")
      end
    end
  end
  if r.n == 0 then r = VALID end
  pos.memo[s] = r
  return r
end

-- The violations of a result as a flat list `{ {path =, message =}, ... }`,
-- each once, in the order they were found.
local function flatten (r)
  local out, seen = {}, {}
  local function walk_result (x)
    if seen[x] then return end
    seen[x] = true
    for _, e in ipairs(x) do
      if e.message then out[#out + 1] = { path = path_of(e.pos), message = e.message }
      else walk_result(e) end
    end
  end
  walk_result(r)
  return out
end

-- Validates; raises a misuse error (`bad argument #argn to 'fname'`) for a
-- broken schema.
local function validate (value, schema, fname, argn)
  if type(schema) ~= "table" and type(schema) ~= "boolean" then
    util.argerror(fname, argn, util.expected("table", schema))
  end
  local c, msg = compile(schema)
  if c == nil then util.field_error(fname, argn, "schema", msg) end
  local out = flatten(check(value, schema, position(nil), c))
  return #out == 0, out
end

--- Validates a value against a JSON schema.
-- A schema that is itself wrong (a keyword of the wrong type, a `$ref` that
-- does not resolve, a `$ref` loop that never descends into the value)
-- raises an error naming its place, e.g. `#/properties/age/minimum`.
-- Work is bounded by the size of the value times the size of the schema.
-- @param value a Lua value as `aigc.json.decode` gives it
-- @tparam table schema a JSON schema (a Lua table)
-- @treturn boolean whether the value is valid
-- @treturn table the violations, `{ {path =, message =}, ... }` (empty when valid)
-- @usage
-- local ok, v = schema.validate(aigc.json.decode('{"n": "x"}'),
--   { type = "object", properties = { n = { type = "integer" } }, required = { "n", "m" } })
-- for _, x in ipairs(v) do print(x.path, x.message) end
-- -- $.m   required property is missing
-- -- $.n   expected integer, got string
function M.validate (value, schema)
  return validate(value, schema, "validate", 2)
end

--- Checks a schema without validating anything: `true`, or `false` and
-- the message naming what is wrong (`#/properties/age/minimum must be a
-- number, got string`). For layers that take a schema and must refuse a
-- broken one before using it.
-- @tparam table schema
-- @treturn boolean
-- @treturn[opt] string
-- @usage local ok, why = schema.check_schema(params.schema); if not ok then error(why) end
function M.check_schema (schema)
  if type(schema) ~= "table" and type(schema) ~= "boolean" then
    return false, "must be a table, got " .. type(schema)
  end
  local c, msg = compile(schema)
  if c == nil then return false, msg end
  return true
end

--- One line listing violations: `"$.a: ...; $.b: ..."` (at most MAX_LISTED,
-- then "and N more").
-- @tparam table violations as `validate` returns them
-- @treturn string
-- @usage print(schema.describe(violations))
function M.describe (violations)
  local parts = {}
  for i, v in ipairs(violations) do
    if i > M.MAX_LISTED then
      parts[#parts + 1] = string_format("and %d more", #violations - M.MAX_LISTED)
      break
    end
    parts[i] = v.path .. ": " .. v.message
  end
  return table_concat(parts, "; ")
end

-- The error of kind "schema" for a value (`what`) that breaks the schema.
local function mismatch (what, violations, text)
  return core.error { kind = "schema", violations = violations, text = text,
                      message = string_format("%s does not match the schema: %s", what, M.describe(violations)) }
end

--- Validates, returning the value or an aigc error of kind "schema".
-- @param value
-- @tparam table schema
-- @tparam[opt="value"] string what names the value in the error message
-- @return[1] value
-- @treturn[2] nil
-- @treturn[2] aigc.error err with `err.violations`
-- @usage local v = assert(schema.check(args, tool.parameters, "arguments"))
function M.check (value, schema, what)
  local ok, violations = validate(value, schema, "check", 2)
  if ok then return value end
  return nil, mismatch(what or "value", violations)
end

--- Decodes JSON text and validates it.
-- @tparam string text
-- @tparam table schema
-- @tparam[opt="reply"] string what names the text in error messages
-- @return[1] the decoded value
-- @treturn[2] nil
-- @treturn[2] aigc.error err of kind "schema": `err.violations` (a single
-- violation at `$` when the text is not JSON), `err.text`
-- @usage local v, err = schema.parse('{"say": "hi"}', npc_schema)
function M.parse (text, schema, what)
  what = what or "reply"
  if type(text) ~= "string" then
    return nil, core.error {
      kind = "schema", message = what .. " has no text to decode",
      violations = { { path = "$", message = "no content (got " .. (text == null and "null" or type(text)) .. ")" } },
    }
  end
  local v, jerr = json_decode(text)
  if v == nil then
    return nil, core.error {
      kind = "schema",
      message = string_format("%s is not valid JSON: %s", what, jerr),
      violations = { { path = "$", message = "not valid JSON: " .. tostring(jerr) } },
      text = text,
    }
  end
  local ok, violations = validate(v, schema, "parse", 2)
  if ok then return v end
  return nil, mismatch(what, violations, text)
end

M.json_type = json_type
M.equal = function (a, b) return equal(a, b) end

-- }======================================================

return M
