--- JSON Schema validation for structured output and tool arguments.
--
-- A validator for the subset of JSON Schema that OpenAI's structured
-- outputs accept (and a little more): `type` (one or a list), `enum`,
-- `const`, `properties`, `required`, `additionalProperties`,
-- `minProperties`, `maxProperties`, `items`, `prefixItems`, `minItems`,
-- `maxItems`, `uniqueItems`, `minLength`, `maxLength` (in characters),
-- `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`,
-- `multipleOf`, `anyOf`, `oneOf`, `allOf`, `not`, `if`/`then`/`else`,
-- `dependentRequired`, `dependentSchemas`, `dependencies` (draft 7),
-- `contains`, `minContains`, `maxContains`, `propertyNames`,
-- `additionalItems` (beside a tuple `items`), `patternProperties`, and `$ref`
-- to `#`, `#/$defs/...` or `#/definitions/...`, `pattern` and `format`.
-- The regexes of `pattern` and `patternProperties` are ECMA-262's, matched
-- per character in time linear in the string's length (aigc.schema_regex:
-- alternation, groups, classes, repeats, anchors, `\b`); one using what it
-- cannot match exactly (lookaround, backreferences, `\p{...}`, too large)
-- is left unchecked (a `patternProperties` one may match any property,
-- which is then never "additional"); an invalid one makes the schema a misuse. `format`: date-time, date,
-- time, duration, email, hostname, ipv4, ipv6, uuid, uri (aigc.schema_format);
-- other formats are not checked. Integers: see `json_type`. A schema holding
-- `unevaluatedProperties`, `unevaluatedItems`, `$dynamicRef` or `$recursiveRef`
-- (but for true or {}) is refused: they are not checked.
--
-- Values are Lua values as `aigc.json.decode` gives them: `aigc.null` is
-- null, tables carrying the array mark are arrays (the decoder marks every
-- array, `[]` too). An unmarked table is an array when it is a non-empty
-- sequence, an object otherwise: an empty unmarked table is `{}`, an empty
-- object, as the decoder gives it and `aigc.json.encode` sends it (an
-- empty array is `aigc.array {}`).
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
local schema_compile = require "aigc.schema_compile"
local schema_regex = require "aigc.schema_regex"
local format_checks = require("aigc.schema_format").CHECKS
local schema_integers = require "aigc.schema_integers"

local null = core.null
local is_array = core.is_array
local json_decode = core.json.decode
local ipairs, next, pairs, select, tostring, type = ipairs, next, pairs, select, tostring, type
local math_floor, math_abs, math_fmod, math_max, huge = math.floor, math.abs, math.fmod, math.max, math.huge
local string_find, string_format, string_match, string_sub = string.find, string.format, string.match, string.sub
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
-- with no fraction, as JSON Schema counts them, that this Lua holds
-- exactly: see below), "number", "string", "array", "object" or nil.
--
-- A Lua integer (5.3+: the decoder gives every JSON integer within 64 bits
-- as one, -2^63 and 2^63-1 included) is an integer. A float is one only
-- below 2^53 in magnitude: beyond, floats are not every integer, so the
-- value may be a rounded one (2^53+1 on 5.1/LuaJIT, 2^64 on 5.4 are read as
-- the nearest float), which must not pass as the integer the text said.
local math_type = rawget(math, "type")
local function json_type (v)
  local t = type(v)
  if t == "string" then return "string"
  elseif t == "number" then
    if math_type and math_type(v) == "integer" then return "integer" end
    if v == math_floor(v) and v - v == 0 and v > -2 ^ 53 and v < 2 ^ 53 then return "integer" end
    return "number"
  elseif t == "boolean" then return "boolean"
  elseif v == null then return "null"
  elseif t == "table" then
    if is_array(v) then return "array" end
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
  return false
end

local show = schema_compile.show

local function type_name (jt, v)
  if jt == nil then return "a value JSON cannot hold" end
  if jt == "number" and v == math_floor(v) and v - v == 0 then
    return string_format("%.17g (beyond 2^53: not an exact integer in this Lua)", v)
  end
  if jt == "object" and next(v) == nil then return "an empty object (aigc.array {} is an empty array)" end
  return jt
end

local function child_path (path, key)
  if type(key) == "number" then return path .. "[" .. key .. "]" end
  if string_match(key, "^[%a_][%w_]*$") then return path .. "." .. key end
  return path .. "[" .. string_format("%q", key) .. "]"
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
-- nests at most 200 levels (the decoder's limit).
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

-- A count a schema gives (minLength...), as a message shows it: an integer
-- past what "%d" takes (1e300 is one: "%d" raised "number has no integer
-- representation" out of the call on 5.3+) in exponent form.
local function count_text (n)
  if n < 2 ^ 53 then return string_format("%d", n) end
  return string_format("%.15g", n)
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
  if type(a) ~= "table" or type(b) ~= "table" or json_type(a) ~= json_type(b) then return false end
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
  if json_type(v) == "array" then   -- (in order; an empty one is not the empty object)
    local parts = {}
    for i = 1, #v do parts[i] = canonical(v[i], depth + 1) end
    return "[" .. table_concat(parts, ",") .. "]"
  end
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

-- Checks property k against the patternProperties of s (its compiled
-- `patterns`): whether a pattern matched it, or may have (a regex left
-- unchecked: see aigc.schema_compile; its schema is not applied).
local function check_patterns (v, k, patterns, pos, r, c)
  local matched = false
  for _, p in ipairs(patterns) do
    if not p.match then
      matched = true
    else
      local hit = p.match(k, c.budget)
      if hit ~= false then matched = true end   -- (nil: too costly to check, as unchecked)
      if hit then include(r, check(v[k], p.schema, position(pos, k), c)) end
    end
  end
  return matched
end

-- dependentRequired, dependentSchemas (and the older `dependencies`, either
-- by its value): what a present property asks of the object.
local function check_dependents (v, s, pos, r, c)
  local dr, ds, old = s.dependentRequired, s.dependentSchemas, s.dependencies
  for _, k in ipairs(sorted_keys(v, pos)) do
    local names = dr and dr[k]
    local found = { names, ds and ds[k], old and old[k] }
    for j = 1, 3 do
      local d = found[j]
      if type(d) == "table" and d[1] ~= nil then
        for _, name in ipairs(d) do
          if v[name] == nil then
            add(r, position(pos, name), "required property is missing (%s: %s is present)",
                d == names and "dependentRequired" or "dependencies", show(k))
          end
        end
      elseif d ~= nil and d ~= names then
        include(r, check(v, d, pos, c))
      end
    end
  end
end

-- propertyNames: each key, as a string value, against its schema. (A key's
-- name is checked at a position of its own: the memo of the property's
-- position is for its value.)
local function check_names (v, s, pos, r, c)
  local names = pos.names
  if names == nil then names = {}; pos.names = names end
  for _, k in ipairs(sorted_keys(v, pos)) do
    if type(k) == "string" then
      local p = names[k]
      if p == nil then
        p = { parent = pos.parent, key = pos.key, memo = {}, depth = pos.depth + 1 }
        names[k] = p
      end
      local o = check(k, s.propertyNames, p, c)
      if o.n > 0 then
        local f = first_of(o)
        add(r, position(pos, k), "property name does not match propertyNames%s", f and (": " .. f.message) or "")
      end
    end
  end
end

-- Checks an object's keywords; v is a table treated as an object.
local function check_object (v, s, pos, r, c)
  local props = s.properties
  if s.required then
    for _, k in ipairs(s.required) do
      if v[k] == nil then add(r, position(pos, k), "required property is missing") end
    end
  end
  local extra, patterns = s.additionalProperties, c.patterns[s]
  for _, k in ipairs(sorted_keys(v, pos)) do
    local known = false
    if type(k) ~= "string" then
      add(r, pos, "object key %s is not a string", show(k))
      known = true
    else
      if props and props[k] ~= nil then
        include(r, check(v[k], props[k], position(pos, k), c))
        known = true
      end
      if patterns and check_patterns(v, k, patterns, pos, r, c) then known = true end
    end
    -- (a property matched by a pattern is not additional either)
    if not known and extra == false then
      add(r, position(pos, k), "property is not allowed (additionalProperties is false)")
    elseif not known and type(extra) == "table" then
      include(r, check(v[k], extra, position(pos, k), c))
    end
  end
  if s.dependentRequired or s.dependentSchemas or s.dependencies then check_dependents(v, s, pos, r, c) end
  if s.propertyNames ~= nil then check_names(v, s, pos, r, c) end
  if s.minProperties or s.maxProperties then
    local n = #sorted_keys(v, pos)
    if s.minProperties and n < s.minProperties then
      add(r, pos, "expected at least %s properties, got %d", count_text(s.minProperties), n)
    end
    if s.maxProperties and n > s.maxProperties then
      add(r, pos, "expected at most %s properties, got %d", count_text(s.maxProperties), n)
    end
  end
end

-- contains, minContains (default 1), maxContains: how many items match.
local function check_contains (v, s, pos, r, c)
  local count = 0
  for i = 1, #v do
    if check(v[i], s.contains, position(pos, i - 1), c).n == 0 then count = count + 1 end
  end
  local min, max = s.minContains or 1, s.maxContains
  if count < min then
    add(r, pos, "expected at least %s item%s matching contains, got %d", count_text(min), min == 1 and "" or "s", count)
  end
  if max and count > max then
    add(r, pos, "expected at most %s items matching contains, got %d", count_text(max), count)
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
    elseif tuple then
      sub = items[i]
      if sub == nil then sub = s.additionalItems end
    else sub = items end
    if sub == false then
      add(r, position(pos, i - 1), "no item is allowed here")
    elseif type(sub) == "table" then
      include(r, check(v[i], sub, position(pos, i - 1), c))
    end
  end
  if s.minItems and n < s.minItems then add(r, pos, "expected at least %s items, got %d", count_text(s.minItems), n) end
  if s.maxItems and n > s.maxItems then add(r, pos, "expected at most %s items, got %d", count_text(s.maxItems), n) end
  if s.contains ~= nil then check_contains(v, s, pos, r, c) end
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

-- Whether v is a multiple of m (> 0): v / m within rounding of a whole
-- number n, the tolerance growing with n (1e-9 up to a million, the
-- quotient's last digits beyond: 4958809711.19 of 0.01 is 495880971118.99994);
-- but n = 0 only for 0 itself (0.5 / 1e308 = 5e-309 and 1e-10 / 1 passed,
-- "near 0"). Integers are checked exactly; a quotient too big for a float
-- (1e300 / 1e-300: inf, and inf - inf, NaN, is never over the tolerance:
-- it passed) by the exact remainder, as python-jsonschema does.
local function multiple (v, m)
  if math_type and math_type(v) == "integer" and math_type(m) == "integer" then return v % m == 0 end
  local q = v / m
  if q == huge or q == -huge then return math_fmod(v, m) == 0 end
  local n = math_floor(q + 0.5)
  return (n ~= 0 or q == 0) and math_abs(q - n) <= math_max(1e-9, math_abs(n) * 1e-15)
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
  if m and not multiple(v, m) then add(r, pos, "%s is not a multiple of %s", show(v), show(m)) end
end

local function check_string (v, s, pos, r, c)
  if s.minLength or s.maxLength then
    local n = utf8_len(v) or #v
    if s.minLength and n < s.minLength then
      add(r, pos, "expected at least %s characters, got %d", count_text(s.minLength), n)
    end
    if s.maxLength and n > s.maxLength then
      add(r, pos, "expected at most %s characters, got %d", count_text(s.maxLength), n)
    end
  end
  local match = c.regexes[s]
  if match and match(v, c.budget) == false then   -- (nil: too costly to check, as unchecked)
    add(r, pos, "%s does not match the pattern %s", show(v), show(s.pattern))
  end
  local valid = format_checks[s.format]
  if valid and not valid(v) then add(r, pos, "%s is not a valid %s (format)", show(v), s.format) end
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
      -- (the closest alternative's innermost violation: one that is itself
      -- "matches none" would quote its own closest, and so on down a
      -- recursive schema, a message growing as the square of the depth)
      local f = first_of(best)
      if f and f.leaf then f = f.leaf end
      add(r, pos, "matches none of the %d alternatives (%s)%s", #alts, key,
          f and (": closest: " .. path_of(f.pos) .. ": " .. f.message) or "")
      r[#r].leaf = f
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
    if target == nil or c.beside[s] then break end
    s = target
  end
  if s == true then return VALID end
  local r = pos.memo[s]
  if r then return r end
  r = { n = 0 }
  if c.beside[s] then include(r, check(v, c.refs[s], pos, c)) end   -- (and the keywords beside it, below)
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
        add(r, pos, "expected %s, got %s", names, type_name(jt, v))
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
      if jt == "object" then
        check_object(v, s, pos, r, c)
      elseif jt == "array" then
        check_array(v, s, pos, r, c)
      elseif jt == "integer" or jt == "number" then
        check_number(v, s, pos, r)
      elseif jt == "string" then
        check_string(v, s, pos, r, c)
      end
      if s.allOf then
        for _, sub in ipairs(s.allOf) do include(r, check(v, sub, pos, c)) end
      end
      if s.anyOf then check_alternatives(v, s, "anyOf", pos, r, c) end
      if s.oneOf then check_alternatives(v, s, "oneOf", pos, r, c) end
      if s["not"] ~= nil and check(v, s["not"], pos, c).n == 0 then
        add(r, pos, "must not match the 'not' schema")
      end
      if s["if"] ~= nil then   -- (then or else, as the value matches if or not)
        local branch = s[check(v, s["if"], pos, c).n == 0 and "then" or "else"]
        if branch ~= nil then include(r, check(v, branch, pos, c)) end
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
  local c, msg = schema_compile.compile(schema)
  if c == nil then util.field_error(fname, argn, "schema", msg) end
  c.budget = { left = schema_regex.MAX_WORK }   -- (for all of this value's regex checks)
  local out = flatten(check(value, schema, position(nil), c))
  return #out == 0, out, c
end

-- Integral floats made integers where the validated value's schema wants
-- integers (aigc.schema_integers).
local function as_integers (v, schema, c)
  return schema_integers.convert(v, schema, c, json_type, M.MAX_DEPTH)
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
  local c, msg = schema_compile.compile(schema)
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

-- The inside of a text that is one fenced code block (```json ... ```), as
-- models asked for JSON in a message (json_object mode) often write it;
-- else the text. (Linear: no pattern here backtracks over the whole text.)
local function unfenced (text)
  local body = string_match(text, "^%s*```%w*(.*)$")
  local stop = body and string_find(body, "```%s*$")
  if not stop then return text end
  return string_sub(body, 1, stop - 1)
end

--- A reasoning model's leading `<think>...</think>` block (DeepSeek-R1 and
-- QwQ served by Ollama or vLLM without a reasoning parser write their
-- thoughts there, before the JSON): its inside (trimmed) and the text after
-- it (from its first non-blank); or nil and the text, when the text does not start (after white space)
-- with a whole block. Only a leading, closed block: one further in is the
-- reply's own text. (Linear: an anchored pattern and a plain find.)
-- @tparam string text
-- @treturn string|nil the thinking
-- @treturn string the rest
-- @usage local thinking, rest = schema.split_think("<think>hm</think>{}")   -- "hm", "{}"
function M.split_think (text)
  if type(text) ~= "string" then return nil, text end
  local _, open_end = string_find(text, "^%s*<think>")
  if not open_end then return nil, text end
  local close, close_end = string_find(text, "</think>", open_end + 1, true)
  if not close then return nil, text end
  local _, blank_end = string_find(text, "^%s*", close_end + 1)
  return util.trim(string_sub(text, open_end + 1, close - 1)), string_sub(text, blank_end + 1)
end

--- Decodes JSON text (or the inside of one fenced code block) and validates it.
-- A leading `<think>` block is not part of the JSON (see `split_think`).
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
  local _, rest = M.split_think(text)
  local v, jerr = json_decode(unfenced(rest))
  if v == nil then
    return nil, core.error {
      kind = "schema",
      message = string_format("%s is not valid JSON: %s", what, jerr),
      violations = { { path = "$", message = "not valid JSON: " .. tostring(jerr) } },
      text = text,
    }
  end
  local ok, violations, c = validate(v, schema, "parse", 2)
  if ok then
    c.budget = { left = schema_regex.MAX_WORK }   -- (validation's may be spent: integers get their own)
    return as_integers(v, schema, c)
  end
  return nil, mismatch(what, violations, text)
end

M.json_type = json_type
--- (internal) `as_integers` for a value that passed `schema` (tool
-- arguments, aigc.tools): the value, integral floats made integers.
function M.integers (value, schema)
  local c = schema_compile.compile(schema)
  if c == nil then return value end   -- (a broken schema: checked, and refused, before any value)
  c.budget = { left = schema_regex.MAX_WORK }
  return as_integers(value, schema, c)
end
M.equal = function (a, b) return equal(a, b) end

-- }======================================================

return M
