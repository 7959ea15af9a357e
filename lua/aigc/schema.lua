--- JSON Schema validation for structured output and tool arguments.
--
-- A validator for the subset of JSON Schema that OpenAI's structured
-- outputs accept (and a little more): `type` (one or a list), `enum`,
-- `const`, `properties`, `required`, `additionalProperties`,
-- `minProperties`, `maxProperties`, `items`, `prefixItems`, `minItems`,
-- `maxItems`, `uniqueItems`, `minLength`, `maxLength` (in characters),
-- `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`,
-- `multipleOf`, `anyOf`, `oneOf`, `allOf`, `not`, and `$ref` to `#`,
-- `#/$defs/...` or `#/definitions/...`. Not checked: `pattern` and
-- `format` (Lua patterns are not regular expressions; a wrong check would
-- be worse than none).
--
-- Values are Lua values as `aigc.json.decode` gives them: `aigc.null` is
-- null, tables carrying the array mark are arrays. An unmarked table is an
-- array when it is a non-empty sequence, an object otherwise; an empty
-- unmarked table passes as either.
--
-- Paths name where a violation is, JSONPath style with 0-based indexes
-- as in the JSON text: `$`, `$.items[0].name`, `$["odd key"]`.
--
-- @module aigc.schema
-- @usage
-- local schema = require "aigc.schema"
-- local ok, violations = schema.validate({ mood = "grumpy" },
--   { type = "object", properties = { mood = { enum = { "happy", "sad" } } } })
-- -- ok == false; violations[1].path == "$.mood"

local core = require "aigc.core"

local null = core.null
local is_array = core.is_array
local json_decode = core.json.decode
local error, ipairs, next, pairs, select, tostring, type = error, ipairs, next, pairs, select, tostring, type
local math_type, math_floor, math_abs = math.type, math.floor, math.abs
local string_format, string_match = string.format, string.match
local table_concat, table_sort = table.concat, table.sort
local utf8_len = utf8.len

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
    if math_type(v) == "integer" or (v == math_floor(v) and v - v == 0) then return "integer" end
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

-- JSON equality: numbers by value, tables structurally.
local function equal (a, b)
  if a == b then return true end
  local ta, tb = type(a), type(b)
  if ta ~= "table" or tb ~= "table" then return false end
  for k, v in pairs(a) do
    if not equal(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
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
-- Validation
-- =======================================================

local function resolve (node, root, depth)
  local hops = 0
  while type(node) == "table" and type(node["$ref"]) == "string" do
    local ref = node["$ref"]
    local target = root
    if ref ~= "#" then
      local rest = string_match(ref, "^#/(.*)$")
      if not rest then return nil, "unsupported $ref " .. show(ref) end
      for part in rest:gmatch("[^/]+") do
        part = part:gsub("~1", "/"):gsub("~0", "~")
        target = type(target) == "table" and target[part] or nil
      end
    end
    if type(target) ~= "table" and type(target) ~= "boolean" then
      return nil, "unresolvable $ref " .. show(ref)
    end
    node = target
    hops = hops + 1
    if hops + depth > 64 then return nil, "$ref chain too deep" end
  end
  return node
end

local check   -- forward

local function add (out, path, fmt, ...)
  out[#out + 1] = { path = path, message = select("#", ...) > 0 and string_format(fmt, ...) or fmt }
end

local function count_props (v)
  local n = 0
  for _ in pairs(v) do n = n + 1 end
  return n
end

-- Checks an object's keywords; v is a table treated as an object.
local function check_object (v, s, root, path, out, depth)
  local props = type(s.properties) == "table" and s.properties or nil
  if type(s.required) == "table" then
    for _, k in ipairs(s.required) do
      if v[k] == nil then add(out, child_path(path, k), "required property is missing") end
    end
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table_sort(keys, function (a, b) return tostring(a) < tostring(b) end)
  local extra = s.additionalProperties
  for _, k in ipairs(keys) do
    if type(k) ~= "string" then
      add(out, path, "object key %s is not a string", show(k))
    elseif props and props[k] ~= nil then
      check(v[k], props[k], root, child_path(path, k), out, depth + 1)
    elseif extra == false then
      add(out, child_path(path, k), "property is not allowed (additionalProperties is false)")
    elseif type(extra) == "table" then
      check(v[k], extra, root, child_path(path, k), out, depth + 1)
    end
  end
  local n = (s.minProperties or s.maxProperties) and count_props(v)
  if s.minProperties and n < s.minProperties then
    add(out, path, "expected at least %d properties, got %d", s.minProperties, n)
  end
  if s.maxProperties and n > s.maxProperties then
    add(out, path, "expected at most %d properties, got %d", s.maxProperties, n)
  end
end

local function check_array (v, s, root, path, out, depth)
  local n = #v
  local prefix = type(s.prefixItems) == "table" and s.prefixItems or nil
  local items = s.items
  for i = 1, n do
    local sub
    if prefix and prefix[i] ~= nil then sub = prefix[i]
    elseif type(items) == "table" and items[1] ~= nil and not items.type then sub = items[i]  -- old tuple form
    else sub = items end
    if sub == false then
      add(out, child_path(path, i - 1), "no item is allowed here")
    elseif type(sub) == "table" then
      check(v[i], sub, root, child_path(path, i - 1), out, depth + 1)
    end
  end
  if s.minItems and n < s.minItems then add(out, path, "expected at least %d items, got %d", s.minItems, n) end
  if s.maxItems and n > s.maxItems then add(out, path, "expected at most %d items, got %d", s.maxItems, n) end
  if s.uniqueItems == true then
    for i = 2, n do
      for j = 1, i - 1 do
        if equal(v[i], v[j]) then
          add(out, child_path(path, i - 1), "duplicate of item %d (uniqueItems)", j - 1)
          break
        end
      end
    end
  end
end

local function check_number (v, s, path, out)
  if s.minimum and v < s.minimum then add(out, path, "%s is less than the minimum %s", show(v), show(s.minimum)) end
  if s.maximum and v > s.maximum then add(out, path, "%s is more than the maximum %s", show(v), show(s.maximum)) end
  local xmin, xmax = s.exclusiveMinimum, s.exclusiveMaximum
  if type(xmin) == "number" and v <= xmin then add(out, path, "%s must be more than %s", show(v), show(xmin)) end
  if type(xmax) == "number" and v >= xmax then add(out, path, "%s must be less than %s", show(v), show(xmax)) end
  local m = s.multipleOf
  if type(m) == "number" and m > 0 then
    local q = v / m
    if math_abs(q - math_floor(q + 0.5)) > 1e-9 then add(out, path, "%s is not a multiple of %s", show(v), show(m)) end
  end
end

local function check_string (v, s, path, out)
  if s.minLength or s.maxLength then
    local n = utf8_len(v) or #v
    if s.minLength and n < s.minLength then
      add(out, path, "expected at least %d characters, got %d", s.minLength, n)
    end
    if s.maxLength and n > s.maxLength then
      add(out, path, "expected at most %d characters, got %d", s.maxLength, n)
    end
  end
end

function check (v, s, root, path, out, depth)
  if depth > 200 then add(out, path, "value nested too deeply"); return end
  local err
  s, err = resolve(s, root, depth)
  if s == nil then add(out, path, "%s", err); return end
  if s == true then return end
  if s == false then add(out, path, "no value is allowed here"); return end
  local jt = json_type(v)

  local want = s.type
  if want ~= nil then
    local ok = false
    if type(want) == "table" then
      for _, w in ipairs(want) do if matches_type(jt, w) then ok = true; break end end
    else
      ok = matches_type(jt, want)
    end
    if not ok then
      local names = type(want) == "table" and table_concat(want, " or ") or tostring(want)
      add(out, path, "expected %s, got %s", names, type_name(jt))
      return
    end
  elseif jt == nil then
    add(out, path, "expected a JSON value, got %s", type(v))
    return
  end

  if s.const ~= nil and not equal(v, s.const) then
    add(out, path, "expected %s, got %s", show(s.const), show(v))
  end
  if type(s.enum) == "table" then
    local found = false
    for _, e in ipairs(s.enum) do if equal(v, e) then found = true; break end end
    if not found then
      local list = {}
      for i, e in ipairs(s.enum) do list[i] = show(e) end
      add(out, path, "expected one of %s, got %s", table_concat(list, ", "), show(v))
    end
  end

  if jt == "object" or (jt == "empty" and s.type ~= "array" and (s.properties or s.required or s.minProperties)) then
    check_object(v, s, root, path, out, depth)
  elseif jt == "array" then
    check_array(v, s, root, path, out, depth)
  elseif jt == "integer" or jt == "number" then
    check_number(v, s, path, out)
  elseif jt == "string" then
    check_string(v, s, path, out)
  end

  if type(s.allOf) == "table" then
    for _, sub in ipairs(s.allOf) do check(v, sub, root, path, out, depth + 1) end
  end
  for _, key in ipairs { "anyOf", "oneOf" } do
    local alts = s[key]
    if type(alts) == "table" then
      local matched, best = 0, nil
      for _, sub in ipairs(alts) do
        local o = {}
        check(v, sub, root, path, o, depth + 1)
        if #o == 0 then matched = matched + 1
        elseif best == nil or #o < #best then best = o end
      end
      if matched == 0 then
        if best and #alts == 1 then
          for _, x in ipairs(best) do out[#out + 1] = x end
        else
          add(out, path, "matches none of the %d alternatives (%s)%s", #alts, key,
              best and best[1] and (": closest: " .. best[1].path .. ": " .. best[1].message) or "")
        end
      elseif key == "oneOf" and matched > 1 then
        add(out, path, "matches %d of the oneOf alternatives, expected exactly one", matched)
      end
    end
  end
  if type(s["not"]) == "table" then
    local o = {}
    check(v, s["not"], root, path, o, depth + 1)
    if #o == 0 then add(out, path, "must not match the 'not' schema") end
  end
end

--- Validates a value against a JSON schema.
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
  if type(schema) ~= "table" and type(schema) ~= "boolean" then
    error("bad argument #2 to 'validate' (schema must be a table, got " .. type(schema) .. ")", 2)
  end
  local out = {}
  check(value, schema, schema, "$", out, 0)
  return #out == 0, out
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

--- Validates, returning the value or an aigc error of kind "schema".
-- @param value
-- @tparam table schema
-- @tparam[opt="value"] string what names the value in the error message
-- @return[1] value
-- @treturn[2] nil
-- @treturn[2] aigc.error err with `err.violations`
-- @usage local v = assert(schema.check(args, tool.parameters, "arguments"))
function M.check (value, schema, what)
  local ok, violations = M.validate(value, schema)
  if ok then return value end
  return nil, core.error {
    kind = "schema",
    message = string_format("%s does not match the schema: %s", what or "value", M.describe(violations)),
    violations = violations,
  }
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
  local ok, violations = M.validate(v, schema)
  if ok then return v end
  return nil, core.error {
    kind = "schema",
    message = string_format("%s does not match the schema: %s", what, M.describe(violations)),
    violations = violations,
    text = text,
  }
end

M.json_type = json_type
M.equal = equal

-- }======================================================

return M
