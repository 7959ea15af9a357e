-- The parity probes' canonical form of results (spec/support/parity_probe.lua,
-- parity_tape.lua): what each Lua prints the same when aigc behaves the same.
local aigc = require "aigc"

local M = {}

local VOLATILE = { id = true, created = true, created_at = true, completed_at = true, request_id = true,
                   ["x-request-id"] = true, ["openai-processing-ms"] = true, date = true,
                   system_fingerprint = true, headers = true, traceback = true }

local canon
-- %q differs between the Luas (5.1 leaves control bytes as they are).
local function quote (s)
  return '"' .. s:gsub('[%c"\\\127]', function (c) return "\\" .. c:byte() end) .. '"'
end
local function num (v)
  if v ~= v then return "nan" end
  if v == math.huge then return "inf" end
  if v == -math.huge then return "-inf" end
  if v == 0 and 1 / v < 0 then return "-0" end
  return ("%.17g"):format(v)
end

local function scrub (s)
  s = s:gsub('"created":%d+', '"created":T'):gsub("call_%x+", "call_X")
  s = s:gsub("req_%x+", "req_X"):gsub("resp_%x+", "resp_X"):gsub("chatcmpl%-%w+", "chatcmpl-X")
  s = s:gsub("127%.0%.0%.1:%d+", "127.0.0.1:PORT"):gsub("after %d+ ms", "after N ms")
  return s
end

-- JSON text with its objects' keys sorted, every other byte as it was (the
-- numbers' text kept exactly): key order is the hash order of the table that
-- was encoded, which no Lua promises (and no JSON reader reads).
local function sort_json (text)
  local pos = 1
  local value
  local function ws () pos = text:find("[^ \t\r\n]", pos) or #text + 1 end
  local function str ()
    local e = pos + 1
    while true do
      local c = text:sub(e, e)
      if c == "" then error("unterminated") end
      if c == "\\" then e = e + 2 elseif c == '"' then break else e = e + 1 end
    end
    local s = text:sub(pos, e); pos = e + 1
    return s
  end
  function value ()
    ws()
    local c = text:sub(pos, pos)
    if c == "{" or c == "[" then
      local close, items = c == "{" and "}" or "]", {}
      pos = pos + 1; ws()
      if text:sub(pos, pos) == close then pos = pos + 1; return c .. close end
      while true do
        ws()
        local item
        if c == "{" then
          local k = str(); ws()
          if text:sub(pos, pos) ~= ":" then error("colon") end
          pos = pos + 1
          item = k .. ":" .. value()
        else
          item = value()
        end
        items[#items + 1] = item
        ws()
        local d = text:sub(pos, pos); pos = pos + 1
        if d == close then break elseif d ~= "," then error("comma") end
      end
      if c == "{" then table.sort(items) end
      return c .. table.concat(items, ",") .. close
    elseif c == '"' then
      return str()
    end
    local s, e = text:find("^[^,%]}%s]+", pos)
    if not s then error("token") end
    pos = e + 1
    return text:sub(s, e)
  end
  local ok, out = pcall(value)
  if ok then ws() end
  if ok and pos > #text then return out end
  return text
end

function canon (v, depth, seen)
  depth = depth or 0
  local t = type(v)
  if v == aigc.null then return "null" end
  if t == "number" then return num(v) end
  if t == "string" then
    local at = v:find("[{%[]")
    if at then v = v:sub(1, at - 1) .. sort_json(v:sub(at)) end
    return quote(scrub(v))
  end
  if t ~= "table" then return t == "boolean" and tostring(v) or "<" .. t .. ">" end
  seen = seen or {}
  if seen[v] or depth > 20 then return "<cycle>" end
  seen[v] = true
  local keys = {}
  for k in pairs(v) do
    if not (type(k) == "string" and VOLATILE[k]) then keys[#keys + 1] = k end
  end
  table.sort(keys, function (a, b)
    if type(a) ~= type(b) then return type(a) < type(b) end
    return a < b
  end)
  local out = {}
  for _, k in ipairs(keys) do
    local ks = type(k) == "number" and ("#" .. num(k)) or tostring(k)
    out[#out + 1] = ks .. "=" .. canon(v[k], depth + 1, seen)
  end
  seen[v] = nil
  return (aigc.is_array(v) and "A{" or "{") .. table.concat(out, ",") .. "}"
end

local function strip_pos (msg)
  msg = tostring(msg)
  -- The chunk names differ: "spec/support/parity_probe.lua:12: " and "[string ...]:1: "
  msg = msg:gsub("^[^\n]-%.lua:%d+: ", ""):gsub("^%[string [^\n]-%]:%d+: ", "")
  return scrub(msg)
end

local function emit (name, v)
  io.write(name, "\t", v, "\n")
end

-- Runs f; emits its results, or `raise: message` when it raised.
local function case (name, f, ...)
  local function pack (...) return { n = select("#", ...), ... } end
  local r = pack(pcall(f, ...))
  if not r[1] then emit(name, "raise: " .. strip_pos(r[2])); return end
  local parts = {}
  for i = 2, math.max(r.n, 2) do
    local x = r[i]
    if aigc.is_error(x) then
      parts[#parts + 1] = "err" .. canon(x) .. " tostring=" .. quote(scrub(tostring(x)))
    else
      parts[#parts + 1] = canon(x)
    end
  end
  emit(name, table.concat(parts, " | "))
end


M.canon, M.case, M.emit, M.quote = canon, case, emit, quote
M.scrub, M.strip_pos, M.sort_json = scrub, strip_pos, sort_json
return M
