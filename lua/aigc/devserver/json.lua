--- aigc devserver: a JSON writer with ordered objects (cjson's key order is
-- the hash order, and OpenAI's replies are compared byte for byte).
-- O(k1, v1, ...) is an object whose keys encode in that order; A{...} is an
-- array (also when empty); RAW(s) is spliced in verbatim; nil fields vanish.
-- cjson.null encodes as null. Part of the devserver package (Lua 5.4).

local cjson = require "cjson.safe"

local char, find, format, gsub = string.char, string.find, string.format, string.gsub
local concat, sort, tpack = table.concat, table.sort, table.pack
local huge, mtype, tointeger = math.huge, math.type, math.tointeger

local M = { NULL = cjson.null }

local KEYS = {}
local ARRAY = { __name = "json.array" }
local RAWMT = { __name = "json.raw" }

local function O (...)
  local a, t, keys = tpack(...), {}, {}
  for i = 1, a.n, 2 do
    local v = a[i + 1]
    if v ~= nil then keys[#keys + 1] = a[i]; t[a[i]] = v end
  end
  t[KEYS] = keys
  return t
end

local function oset (o, k, v)
  local keys = o[KEYS]
  local seen = false
  for i = 1, #keys do if keys[i] == k then seen = true; break end end
  if not seen then keys[#keys + 1] = k end
  o[k] = v
end

local function odel (o, k)
  local keys = o[KEYS]
  for i = #keys, 1, -1 do if keys[i] == k then table.remove(keys, i) end end
  o[k] = nil
end

local function A (t) return setmetatable(t or {}, ARRAY) end
local function RAW (s) return setmetatable({ s }, RAWMT) end

local ESC = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
              ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
for i = 0, 31 do ESC[char(i)] = ESC[char(i)] or format("\\u%04x", i) end

local function quote (s)
  if not find(s, '[%z\1-\31"\\]') then return '"' .. s .. '"' end
  return '"' .. gsub(s, '[%z\1-\31"\\]', ESC) .. '"'
end

local function num (v)
  if mtype(v) == "integer" then return tostring(v) end
  if v ~= v or v == huge or v == -huge then return "null" end
  local i = tointeger(v)
  if i and v >= -2^53 and v <= 2^53 then return tostring(i) end
  local s = format("%.14g", v)
  if tonumber(s) ~= v then s = format("%.17g", v) end
  return s
end

local function enc (v, buf)
  local tv = type(v)
  if tv == "string" then buf[#buf + 1] = quote(v)
  elseif tv == "number" then buf[#buf + 1] = num(v)
  elseif tv == "boolean" then buf[#buf + 1] = v and "true" or "false"
  elseif tv ~= "table" then buf[#buf + 1] = "null"
  else
    local mt, keys = getmetatable(v), v[KEYS]
    if mt == RAWMT then buf[#buf + 1] = v[1]
    elseif keys then
      buf[#buf + 1] = "{"
      local first = true
      for i = 1, #keys do
        local k = keys[i]
        local x = v[k]
        if x ~= nil then
          buf[#buf + 1] = first and quote(k) .. ":" or "," .. quote(k) .. ":"
          first = false
          enc(x, buf)
        end
      end
      buf[#buf + 1] = "}"
    else
      local n, count = #v, 0
      for _ in pairs(v) do count = count + 1 end
      if mt == ARRAY or (n > 0 and count == n) then
        buf[#buf + 1] = "["
        for i = 1, n do
          if i > 1 then buf[#buf + 1] = "," end
          enc(v[i], buf)
        end
        buf[#buf + 1] = "]"
      else
        local ks = {}
        for k in pairs(v) do ks[#ks + 1] = tostring(k) end
        sort(ks)
        buf[#buf + 1] = "{"
        for i, k in ipairs(ks) do
          local x = v[k]
          if x == nil then x = v[tonumber(k)] end
          buf[#buf + 1] = (i > 1 and "," or "") .. quote(k) .. ":"
          enc(x, buf)
        end
        buf[#buf + 1] = "}"
      end
    end
  end
end

function M.encode (v)
  local buf = {}
  enc(v, buf)
  return concat(buf)
end

M.O, M.A, M.RAW, M.oset, M.odel, M.quote, M.num = O, A, RAW, oset, odel, quote, num
M.KEYS, M.ARRAY = KEYS, ARRAY

--- Whether v is an array made by A.
function M.is_array (v) return type(v) == "table" and getmetatable(v) == ARRAY end

--- Whether v is an ordered object made by O.
function M.is_object (v) return type(v) == "table" and v[KEYS] ~= nil end

--- cjson's decoder (nil and a message on bad JSON).
M.decode = cjson.decode

return M
