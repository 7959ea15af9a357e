--- Checking a JSON schema before it is used, and compiling what
-- validation needs: the targets of `$ref`, the matchers of `pattern` and
-- `patternProperties`. Part of `aigc.schema` (its validator is there).
--
-- Internal: not part of the API.
--
-- @module aigc.schema_compile
-- @local

local compat = require "aigc.compat"
local core = require "aigc.core"
local util = require "aigc.util"
local schema_regex = require "aigc.schema_regex"

local typename = util.typename   -- (a JSON null is "null", not "userdata")

local null = core.null
local error, getmetatable, ipairs, next, pairs, pcall, rawget, setmetatable, tonumber, tostring, type =
  error, getmetatable, ipairs, next, pairs, pcall, rawget, setmetatable, tonumber, tostring, type
local string_format, string_match = string.format, string.match
local table_concat, table_sort = table.concat, table.sort
util.own_module()

local M = {}

--- A value for a message: strings quoted (cut at 40 bytes), null, tables
-- as JSON (cut too), anything else as tostring writes it.
-- @param v
-- @treturn string
function M.show (v)
  local t = type(v)
  if t == "string" then
    if #v > 40 then v = v:sub(1, 37) .. "..." end
    return (string_format("%q", v):gsub("\\\n", "\\n"))
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
local show = M.show

-- {======================================================
-- Checking the schema itself (misuse raises)
-- =======================================================

-- Walked once per schema (see `compile`), before any value is looked at: every keyword
-- this module reads must have the type it reads it as (so that a schema
-- mistake is an error naming its place, never an error from in here), every
-- `$ref` must resolve, and no chain of in-place applicators (`$ref`,
-- `allOf`, `anyOf`, `oneOf`, `not`) may lead back to where it started
-- without descending into the value: such a loop would recurse forever on
-- some values, whatever the depth of the data.

--- The deepest a schema nests (schema nodes inside each other, as `aigc.schema`'s
-- MAX_DEPTH bounds values); deeper is a misuse.
M.MAX_NESTING = 1000

local TYPE_NAMES = { null = true, boolean = true, object = true, array = true, number = true, string = true,
                     integer = true }

local SchemaError = {}   -- the error value the walk raises, caught in `compile`

local function bad (where, fmt, ...)
  error(setmetatable({ message = where .. " " .. string_format(fmt, ...) }, SchemaError), 0)
end

local function value_name (v)
  if v ~= v then return "NaN" end
  if type(v) == "number" then return tostring(v) end
  return typename(v)
end

local function pointer_part (k)
  return (tostring(k):gsub("~", "~0"):gsub("/", "~1"))
end

-- (a list is no schema, as a JSON array is none: `properties = { tags = { { type = "string" } } }`,
-- or `schema = { ... }` holding a list, checked nothing: every value passed. `items`' tuple form is read apart.)
local function is_schema (x) return type(x) == "table" and x[1] == nil or type(x) == "boolean" end

-- The schema a JSON pointer ("#" or "#/a/b/0") names inside root, or nil
-- and why not. Segments that index an array are 0-based, as in JSON. The
-- pointer is a URI fragment: its %XX escapes are decoded first (`#/$defs/a%20b`
-- names "a b", as JSON Schema says), then each segment's ~1 and ~0 (RFC 6901).
local function resolve_pointer (root, ref)
  if ref == "#" then return root end
  local rest = string_match(ref, "^#/(.*)$")
  if not rest then return nil, 'is not supported (only "#" and "#/..." pointers into this schema)' end
  if (rest:gsub("%%%x%x", "")):find("%", 1, true) then
    return nil, 'is not a valid URI fragment (a "%" not followed by two hex digits)'
  end
  rest = rest:gsub("%%(%x%x)", function (h) return string.char(tonumber(h, 16)) end)
  if rest:find("~[^01]") or rest:find("~$") then
    return nil, 'is not a valid JSON pointer (a "~" not followed by 0 or 1)'
  end
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

-- The matcher of the regex re found at `where`, or false: a valid regex
-- the matcher cannot check exactly (lookaround, `\p{...}`, too large) is
-- left unchecked, as a server with the whole of ECMA's regexes takes it;
-- an invalid one is a misuse (the server refuses the schema too).
local function regex (re, where)
  local match, why, unchecked = schema_regex.compile(re)
  if match then return match end
  if unchecked then return false end
  bad(where .. ":", "%s %s", show(re), why)
end

local walk   -- forward

-- Keywords that check nothing (beside a `$ref`, the node stands for its target alone).
local ANNOTATIONS = { title = true, description = true, default = true, examples = true, ["$comment"] = true,
  ["$schema"] = true, ["$id"] = true, ["$anchor"] = true, ["$defs"] = true, definitions = true, deprecated = true,
  readOnly = true, writeOnly = true }

local function walk_schema (c, sub, where)
  if not is_schema(sub) then
    bad(where, "must be a schema (a table or a boolean), got %s", type(sub) == "table" and "a list" or typename(sub))
  end
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

local function check_names (list, where)
  if list == nil then return end
  if type(list) ~= "table" then bad(where, "must be a list of property names, got %s", typename(list)) end
  for i, k in ipairs(list) do
    if type(k) ~= "string" then bad(where .. "/" .. (i - 1), "must be a string, got %s", typename(k)) end
  end
end

-- Keywords of JSON Schema that assert something this validator does not
-- check: a schema holding one is refused (a value breaking it would pass
-- unseen), but for their no-op values (true, {}).
local UNSUPPORTED = { "unevaluatedProperties", "unevaluatedItems", "$dynamicRef", "$recursiveRef",
  unevaluatedProperties = "additionalProperties is", unevaluatedItems = "items is",
  ["$dynamicRef"] = '"$ref" to "#/..." is', ["$recursiveRef"] = '"$ref" to "#/..." is' }
for _, k in ipairs(UNSUPPORTED) do UNSUPPORTED[k] = UNSUPPORTED[k] .. " checked" end

-- Checks the keywords of node s that hold values, not schemas.
local function check_keywords (s, where)
  local t = s.type
  if type(t) == "string" then
    if not TYPE_NAMES[t] then
      bad(where .. "/type:", "unknown type %s (null, boolean, object, array, number, string, integer)", show(t))
    end
  elseif type(t) == "table" then
    for i, name in ipairs(t) do
      if type(name) ~= "string" then
        bad(where .. "/type/" .. (i - 1), "must be a type name, got %s", typename(name))
      end
      if not TYPE_NAMES[name] then
        bad(where .. "/type/" .. (i - 1) .. ":", "unknown type %s (null, boolean, object, array, number, string, "
            .. "integer)", show(name))
      end
    end
  elseif t ~= nil then
    bad(where .. "/type", "must be a type name or a list of them, got %s", typename(t))
  end
  if s.enum ~= nil and type(s.enum) ~= "table" then
    bad(where .. "/enum", "must be a list, got %s", typename(s.enum))
  end
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
    bad(where .. "/uniqueItems", "must be a boolean, got %s", typename(s.uniqueItems))
  end
  check_names(s.required, where .. "/required")
  if s.format ~= nil and type(s.format) ~= "string" then
    bad(where .. "/format", "must be a string, got %s", typename(s.format))
  end
  check_count_keyword(s, where, "minContains")
  check_count_keyword(s, where, "maxContains")
  for _, k in ipairs(UNSUPPORTED) do
    local v = s[k]
    if v ~= nil and v ~= true and not (type(v) == "table" and next(v) == nil) then
      bad(where .. "/" .. k, "is not supported (aigc does not check it; %s)", UNSUPPORTED[k])
    end
  end
  local dr = s.dependentRequired
  if dr ~= nil then
    if type(dr) ~= "table" then bad(where .. "/dependentRequired", "must be a table of lists, got %s", typename(dr)) end
    for k, names in pairs(dr) do check_names(names, where .. "/dependentRequired/" .. pointer_part(k)) end
  end
end

-- Walks a table of schemas (`patternProperties`, `dependentSchemas`),
-- recording them as in-place edges when `in_place` is given.
local function walk_map (c, map, where, in_place)
  if map == nil then return end
  if type(map) ~= "table" then bad(where, "must be a table of schemas, got %s", typename(map)) end
  for k, sub in pairs(map) do
    local w = where .. "/" .. pointer_part(k)
    walk_schema(c, sub, w)
    if in_place then in_place[#in_place + 1] = { sub, w } end
  end
end

-- `dependencies` (drafts 4 to 7): per property, a list of names (as
-- dependentRequired) or a schema (as dependentSchemas).
local function walk_dependencies (c, map, where, in_place)
  if map == nil then return end
  if type(map) ~= "table" then bad(where, "must be a table of lists or schemas, got %s", typename(map)) end
  for k, sub in pairs(map) do
    local w = where .. "/" .. pointer_part(k)
    if type(sub) == "table" and sub[1] ~= nil then check_names(sub, w)
    else
      walk_schema(c, sub, w)
      if in_place then in_place[#in_place + 1] = { sub, w } end
    end
  end
end

-- Walks the keywords of node s that apply to parts of the value (its
-- properties, their names, its items; its pattern): no in-place edges.
local function walk_value_keywords (c, s, where)
  local props = s.properties
  if props ~= nil then
    if type(props) ~= "table" then
      bad(where .. "/properties", "must be a table of schemas, got %s", typename(props))
    end
    for k, sub in pairs(props) do walk_schema(c, sub, where .. "/properties/" .. pointer_part(k)) end
  end
  if s.pattern ~= nil then
    if type(s.pattern) ~= "string" then
      bad(where .. "/pattern", "must be a regex (a string), got %s", typename(s.pattern))
    end
    c.regexes[s] = regex(s.pattern, where .. "/pattern")
  end
  local pp = s.patternProperties
  if pp ~= nil then
    walk_map(c, pp, where .. "/patternProperties")
    local list = {}
    for re, sub in pairs(pp) do
      if type(re) ~= "string" then bad(where .. "/patternProperties", "keys must be regexes (strings)") end
      list[#list + 1] = { re = re, match = regex(re, where .. "/patternProperties/" .. pointer_part(re)), schema = sub }
    end
    table_sort(list, function (a, b) return a.re < b.re end)
    c.patterns[s] = list
  end
  for _, k in ipairs { "additionalProperties", "propertyNames", "contains", "additionalItems" } do
    if s[k] ~= nil then walk_schema(c, s[k], where .. "/" .. k) end
  end
  local items = s.items
  if type(items) == "table" and items[1] ~= nil then   -- the old tuple form: a schema per position
    for i, sub in ipairs(items) do walk_schema(c, sub, where .. "/items/" .. (i - 1)) end
  elseif items ~= nil then
    walk_schema(c, items, where .. "/items")
  end
  if s.prefixItems ~= nil then walk_list(c, s.prefixItems, where .. "/prefixItems") end
end

-- Checks node s (a table) found at `where`; records its in-place edges.
-- (Nesting is bounded: each node keeps its path, so a schema 10,000 levels
-- deep built 650 MB of paths and took seconds; 100,000, minutes.)
function walk (c, s, where)
  if type(s) ~= "table" or c.seen[s] then return end
  if c.depth >= M.MAX_NESTING then
    bad(#where > 120 and where:sub(1, 60) .. "..." .. where:sub(-40) or where, "nests deeper than %d levels",
        M.MAX_NESTING)
  end
  c.depth = c.depth + 1
  c.seen[s] = where
  c.order[#c.order + 1] = s
  local edges = {}
  c.edges[s] = edges

  local ref = s["$ref"]
  if ref ~= nil then
    if type(ref) ~= "string" then bad(where .. "/$ref", "must be a string, got %s", typename(ref)) end
    local target, why = resolve_pointer(c.root, ref)
    if target == nil then bad(where .. "/$ref:", "%s %s", show(ref), why) end
    c.refs[s] = target
    -- (the keywords beside a $ref apply too, as in draft 2019-09 and 2020-12: drafts 4
    -- to 7 ignored them, and `{ "$ref": ..., "minimum": 5 }` let 3 pass)
    for k in pairs(s) do
      if k ~= "$ref" and not ANNOTATIONS[k] then c.beside[s] = true end
    end
    edges[1] = { target, where .. "/$ref", ref }
    walk(c, target, ref)
  end

  check_keywords(s, where)

  walk_value_keywords(c, s, where)
  for _, k in ipairs { "$defs", "definitions" } do
    local defs = s[k]
    if defs ~= nil then
      if type(defs) ~= "table" then bad(where .. "/" .. k, "must be a table of schemas, got %s", typename(defs)) end
      for name, sub in pairs(defs) do
        local w = where .. "/" .. k .. "/" .. pointer_part(name)
        -- (a list of schemas kept there, reached by "#/$defs/NAME/0": each is one)
        if type(sub) == "table" and sub[1] ~= nil then walk_list(c, sub, w) else walk_schema(c, sub, w) end
      end
    end
  end
  local in_place = edges
  walk_map(c, s.dependentSchemas, where .. "/dependentSchemas", in_place)
  walk_dependencies(c, s.dependencies, where .. "/dependencies", in_place)
  for _, k in ipairs { "allOf", "anyOf", "oneOf" } do
    if s[k] ~= nil then walk_list(c, s[k], where .. "/" .. k, in_place) end
  end
  for _, k in ipairs { "not", "if", "then", "else" } do
    local sub = s[k]
    if sub ~= nil then
      walk_schema(c, sub, where .. "/" .. k)
      if in_place then in_place[#in_place + 1] = { sub, where .. "/" .. k } end
    end
  end
  c.depth = c.depth - 1
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

-- {======================================================
-- The compiled forms, kept per schema table
-- =======================================================

-- A schema is compiled at its first use and kept (regexes are the costly
-- part: a 1,000-alternative one takes milliseconds). A schema may still be
-- changed between calls: the compiled form is reused only while the
-- schema's content is the same, down to which tables it holds (the
-- compiled form is keyed by them), as `fingerprint` writes it down.
-- Weak keys: a schema dropped is collected with its compiled form. Lua
-- 5.1 and LuaJIT have no ephemerons (the compiled form holds its schema):
-- weak values there too, the cache lasting until the next collection.
local cache = setmetatable({}, { __mode = rawget(_G, "jit") == nil and _VERSION ~= "Lua 5.1" and "k" or "kv" })
local ids = setmetatable({}, { __mode = "k" })   -- table (or userdata) -> a number never given twice
local next_id = 0
local math_type = rawget(math, "type")

-- Keywords whose values are data, not schemas: compile does not look
-- inside them (validation reads them as they are then), nor does
-- `fingerprint` (a 200,000-value enum is not read at every call).
local DATA = { enum = true, const = true, default = true, examples = true }
-- Keywords whose values are maps: their keys are names, not keywords.
local MAPS = { properties = true, patternProperties = true, dependentSchemas = true, dependentRequired = true,
               dependencies = true, ["$defs"] = true, definitions = true }

-- The content of schema that compile reads, as a string, or nil when it
-- nests deeper than a compiled schema may (not kept then: compile says why
-- each time).
local function fingerprint (schema)
  local out, visited = {}, {}
  local function put (v, depth, map)
    local t = type(v)
    if t == "string" then out[#out + 1] = "s" .. #v .. ":" .. v
    elseif t == "number" then
      out[#out + 1] = math_type and math_type(v) == "integer" and "i" .. tostring(v) or string_format("n%.17g", v)
    elseif t == "boolean" then out[#out + 1] = v and "T" or "F"
    else
      local id = ids[v]
      if id == nil then next_id = next_id + 1; id = next_id; ids[v] = id end
      out[#out + 1] = "@" .. id
      if t ~= "table" or visited[v] or depth < 0 then return true end
      if depth > 2 * M.MAX_NESTING + 10 then return false end
      visited[v] = true
      out[#out + 1] = "{"
      for k, x in pairs(v) do
        local sub = depth + 1
        if not map and DATA[k] then sub = -1 end   -- (its identity only)
        if not (put(k, depth + 1) and put(x, sub, not map and MAPS[k])) then return false end
      end
      out[#out + 1] = "}"
    end
    return true
  end
  if not put(schema, 0) then return nil end
  return table_concat(out, ",")
end

--- Checks a schema; returns what validation needs (`refs`: the target of
-- each `$ref` node; `patterns`: each `patternProperties` node's list of
-- `{ re =, match = (false: unchecked), schema = }`; `regexes`: each
-- `pattern` node's matcher or false, see aigc.schema_regex), or nil and the
-- message naming the misuse.
-- @param schema
-- @treturn table|nil
-- @treturn[opt] string
function M.compile (schema)
  if type(schema) == "boolean" then return { refs = {}, beside = {}, patterns = {}, regexes = {} } end
  local key = fingerprint(schema)
  local hit = cache[schema]
  if hit and hit.key == key then return hit end
  local c, msg = M.compile_now(schema)
  if c and key then c.key = key; cache[schema] = c end
  return c, msg
end

--- (internal) `compile` without the cache.
-- @param schema
-- @treturn table|nil
-- @treturn[opt] string
function M.compile_now (schema)
  local c = { root = schema, seen = {}, order = {}, edges = {}, refs = {}, beside = {}, patterns = {}, regexes = {},
              depth = 0 }
  local ok, e = pcall(function ()
    walk_schema(c, schema, "#")
    find_loop(c)
  end)
  if ok then return c end
  if getmetatable(e) == SchemaError then return nil, e.message end
  error(e, 0)
end

-- }======================================================


return M
