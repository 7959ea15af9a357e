--- aigc devserver: structured output -- a deterministic valid instance of a
-- JSON schema (see the devserver header, REPLIES), the `schema=violate`
-- breakage, and the schema a message gives after `JSON schema:`.
-- Part of the devserver package.

local json = require "aigc.devserver.json"
local util = require "aigc.devserver.util"
local replies = require "aigc.devserver.replies"

local find, gsub, lower, match, rep, sub = string.find, string.gsub, string.lower, string.match, string.rep,
  string.sub
local concat, sort = table.concat, table.sort
local floor, tointeger = math.floor, math.tointeger
local O, A, oset, odel, NULL, KEYS, ARRAY = json.O, json.A, json.oset, json.odel, json.NULL, json.KEYS, json.ARRAY
local fnv, content_text = util.fnv, util.content_text
local reply_text = replies.reply_text

local M = {}

-- Deterministic valid instance of a JSON schema (see header for the rules).
local STRING_FORMATS = { ["date-time"] = "2024-01-01T00:00:00Z", date = "2024-01-01", time = "12:00:00Z",
  email = "user@example.com", uri = "https://example.com/", uuid = "00000000-0000-4000-8000-000000000000" }
local TEXT_NAMES = { say = true, text = true, answer = true, reply = true, message = true, content = true }
local NAMED = { city = "Paris", location = "Paris", name = "Ada", country = "France", language = "en" }

local function resolve (schema, root, depth)
  while type(schema) == "table" and type(schema["$ref"]) == "string" and depth < 32 do
    local ref = schema["$ref"]
    local node = root
    if ref ~= "#" then
      for part in string.gmatch(match(ref, "^#/(.*)$") or "", "[^/]+") do
        part = gsub(gsub(part, "~1", "/"), "~0", "~")
        node = type(node) == "table" and node[part] or nil
      end
    end
    schema = node
    depth = depth + 1
  end
  return schema
end

-- An enum value: the first named in the last user message, else one chosen
-- by the seed, else the first.
local function pick_enum (values, name, ctx)
  local text = ctx and lower(ctx.last_text or "") or ""
  for _, v in ipairs(values) do
    local words_of_v = type(v) == "string" and gsub(gsub(lower(v), "[_%-]+", " "), "%p", "%%%0") or ""
    if words_of_v ~= "" and find(text, "%f[%w]" .. gsub(words_of_v, " ", "[%%s_%%-]+") .. "%f[%W]") then
      return v
    end
  end
  if ctx and ctx.seed ~= nil then
    return values[fnv(concat({ tostring(ctx.seed), tostring(name), tostring(ctx.index), tostring(ctx.turn) }, "\0"))
      % #values + 1]
  end
  return values[1]
end

-- The first word of the message that has a digit, without punctuation around it.
local function id_word (text)
  for w in string.gmatch(text or "", "%S+") do
    if find(w, "%d") then
      w = gsub(w, "^[^%w]+", "")
      local j = #w   -- (a byte loop: "[^%w]+$" read a run of marks from each of its bytes, quadratic)
      while j >= 1 and not find(w, "^%w", j) do j = j - 1 end
      w = sub(w, 1, j)
      if w ~= "" then return w end
    end
  end
  return nil
end

local function instance (schema, root, name, ctx, depth)
  depth = depth or 0
  schema = resolve(schema, root, depth)
  if type(schema) ~= "table" or depth > 24 then return NULL end
  if schema.const ~= nil then return schema.const end
  if type(schema.enum) == "table" and schema.enum[1] ~= nil then return pick_enum(schema.enum, name, ctx) end
  local alt = schema.anyOf or schema.oneOf or schema.allOf
  if type(alt) == "table" and alt[1] ~= nil then return instance(alt[1], root, name, ctx, depth + 1) end
  local ty = schema.type
  if type(ty) == "table" then
    local first
    for _, t in ipairs(ty) do if t ~= "null" then first = t; break end end
    ty = first or "null"
  end
  if ty == nil then
    ty = schema.properties and "object" or schema.items and "array" or "string"
  end
  if ty == "object" then
    local obj = O()
    local props = type(schema.properties) == "table" and schema.properties or {}
    local order, seen = {}, {}
    if type(schema.required) == "table" then
      for _, k in ipairs(schema.required) do
        if type(k) == "string" and props[k] ~= nil and not seen[k] then order[#order + 1] = k; seen[k] = true end
      end
    end
    local rest = {}
    for k in pairs(props) do if not seen[k] then rest[#rest + 1] = k end end
    sort(rest)
    for _, k in ipairs(rest) do order[#order + 1] = k end
    for _, k in ipairs(order) do oset(obj, k, instance(props[k], root, k, ctx, depth + 1)) end
    if #order == 0 and type(schema.additionalProperties) == "table" then
      oset(obj, "key", instance(schema.additionalProperties, root, "key", ctx, depth + 1))
    end
    return obj
  elseif ty == "array" then
    local n = math.max(tointeger(schema.minItems) or 1, 1)
    if tointeger(schema.maxItems) then n = math.min(n, tointeger(schema.maxItems)) end
    local arr = A()
    for i = 1, n do arr[i] = instance(schema.items or {}, root, name, ctx, depth + 1) end
    return arr
  elseif ty == "string" then
    local s
    if name and TEXT_NAMES[lower(name)] then s = reply_text(ctx)
    elseif ctx and ctx.derive and name and (find(lower(name), "id$") or find(lower(name), "number$")
        or find(lower(name), "code$")) and id_word(ctx.last_text) then
      s = id_word(ctx.last_text)
    elseif STRING_FORMATS[schema.format] then s = STRING_FORMATS[schema.format]
    elseif name and NAMED[lower(name)] then s = NAMED[lower(name)]
    else s = "sample " .. (name or "text") end
    local minl, maxl = tointeger(schema.minLength), tointeger(schema.maxLength)
    if minl and #s < minl then s = s .. rep("x", minl - #s) end
    if maxl and #s > maxl then s = sub(s, 1, maxl) end
    return s
  elseif ty == "number" or ty == "integer" then
    local v = ty == "integer" and 1 or 0.5
    local lo, hi = tonumber(schema.minimum), tonumber(schema.maximum)
    local xlo, xhi = tonumber(schema.exclusiveMinimum), tonumber(schema.exclusiveMaximum)
    if lo and v < lo then v = lo end
    if xlo and v <= xlo then v = xlo + (ty == "integer" and 1 or 0.5) end
    if hi and v > hi then v = hi end
    if xhi and v >= xhi then v = xhi - (ty == "integer" and 1 or 0.5) end
    if ty == "integer" then v = tointeger(floor(v)) or 1 end
    return v
  elseif ty == "boolean" then return true
  end
  return NULL
end

-- The `schema=violate` fault: break an instance of `schema` (see the header).
local function violate (v, schema, root, depth)
  depth = depth or 0
  schema = resolve(schema, root, depth)
  if type(schema) ~= "table" or depth > 24 then schema = {} end
  local t = type(v)
  if t == "string" then return 42
  elseif t == "number" then return "NaN"
  elseif t == "boolean" then return "yes"
  elseif t == "table" and getmetatable(v) == ARRAY then
    for i = 1, #v do v[i] = violate(v[i], schema.items or {}, root, depth + 1) end
  elseif t == "table" and v[KEYS] then
    local props = type(schema.properties) == "table" and schema.properties or {}
    local keys = {}
    for i, k in ipairs(v[KEYS]) do keys[i] = k end
    for _, k in ipairs(keys) do v[k] = violate(v[k], props[k] or {}, root, depth + 1) end
    local first = type(schema.required) == "table" and schema.required[1]
    if first ~= nil and v[first] ~= nil then odel(v, first) end
    if schema.additionalProperties == false then oset(v, "unexpected", true) end
  end
  return v
end

-- The schema a message gives after the words `JSON schema:` (json_object mode).
local function schema_in_messages (msgs)
  local found
  for _, m in ipairs(msgs) do
    local text = content_text(m.content)
    local _, e = find(text, "JSON schema:", 1, true)
    if e then
      local open = find(text, "{", e + 1, true)
      local v = open and json.decode(sub(text, open))
      if type(v) == "table" then found = v end
    end
  end
  return found
end

--- The reply text of a context under a response format: nil (prose), or
-- {type = "json_schema", schema = S} / {type = "json_object"} (the schema given
-- in `messages` after `JSON schema:`, else {"reply": ...}); with the
-- `schema=violate` / `schema=not-json` faults applied.
function M.reply_for (ctx, fmt, msgs, fault)
  if not fmt then return reply_text(ctx) end
  if fault.schema == "not-json" then return "Sure! Here is the JSON you asked for." end
  local s = fmt.schema
  if fmt.type == "json_object" then s = schema_in_messages(msgs or {}) end
  if s then
    local v = instance(s, s, nil, ctx)
    if fault.schema == "violate" then v = violate(v, s, s) end
    return json.encode(v)
  end
  local v = O("reply", reply_text(ctx))
  if fault.schema == "violate" then v = O("reply", 42) end
  return json.encode(v)
end

M.resolve, M.instance, M.violate, M.schema_in_messages = resolve, instance, violate, schema_in_messages

return M
