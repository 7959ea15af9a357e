--- JSON Schema's `format` for strings: the formats OpenAI's structured
-- outputs accept (date-time, date, time, duration, email, hostname, ipv4,
-- ipv6, uuid) and uri, each checked exactly by its RFC's grammar (RFC 3339,
-- 5321, 1123, 4291, 4122, 3986). Part of `aigc.schema`; other formats are
-- annotations, not checked (as JSON Schema says by default).
--
-- Internal: not part of the API.
--
-- @module aigc.schema_format
-- @local

local util = require "aigc.util"

local ipairs, tonumber = ipairs, tonumber
local string_find, string_match, string_sub = string.find, string.match, string.sub
util.own_module()

local M = {}

local function leap (y) return y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0) end
local DAYS = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

local function date (s)
  local y, m, d = string_match(s, "^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
  if y == nil then return false end
  y, m, d = tonumber(y), tonumber(m), tonumber(d)
  if m < 1 or m > 12 or d < 1 then return false end
  return d <= (m == 2 and leap(y) and 29 or DAYS[m])
end

-- RFC 3339 full-time: hh:mm:ss[.frac] then Z or +hh:mm / -hh:mm (a leap
-- second, :60, only at 23:59 UTC).
local function time (s)
  local h, mi, sec, frac, zone = string_match(s, "^(%d%d):(%d%d):(%d%d)(%.?%d*)(.*)$")
  if h == nil or (frac ~= "" and not string_match(frac, "^%.%d+$")) then return false end
  h, mi, sec = tonumber(h), tonumber(mi), tonumber(sec)
  if h > 23 or mi > 59 or sec > 60 then return false end
  local off = 0
  if zone ~= "Z" and zone ~= "z" then
    local sign, oh, om = string_match(zone, "^([+-])(%d%d):(%d%d)$")
    if sign == nil or tonumber(oh) > 23 or tonumber(om) > 59 then return false end
    off = (tonumber(oh) * 60 + tonumber(om)) * (sign == "+" and 1 or -1)
  end
  return sec < 60 or (h * 60 + mi - off) % 1440 == 23 * 60 + 59
end

local function date_time (s)
  local d, t = string_match(s, "^([^Tt]*)[Tt](.*)$")
  return d ~= nil and date(d) and time(t)
end

-- ISO 8601 durations as RFC 3339 appendix A has them: P then years,
-- months, days, then T and hours, minutes, seconds; or weeks alone. Each
-- part may only follow the one just before it (dur-year = 1*DIGIT "Y"
-- [dur-month]): P1Y2D and PT1H2S are not durations there.
local DATE_PARTS = { "^%d+D$", "^%d+M$", "^%d+M%d+D$", "^%d+Y$", "^%d+Y%d+M$", "^%d+Y%d+M%d+D$" }
local TIME_PARTS = { "^%d+S$", "^%d+M$", "^%d+M%d+S$", "^%d+H$", "^%d+H%d+M$", "^%d+H%d+M%d+S$" }

local function one_of (s, patterns)
  for _, p in ipairs(patterns) do
    if string_find(s, p) then return true end
  end
  return false
end

local function duration (s)
  if string_match(s, "^P%d+W$") then return true end
  local d, t = string_match(s, "^P([^T]*)(.*)$")
  if d == nil or (d == "" and t == "") then return false end
  if not (d == "" or one_of(d, DATE_PARTS)) then return false end
  if t == "" then return true end
  return one_of(string_sub(t, 2), TIME_PARTS)
end

local function ipv4 (s)
  local parts = { string_match(s, "^(%d+)%.(%d+)%.(%d+)%.(%d+)$") }
  if parts[1] == nil then return false end
  for _, p in ipairs(parts) do
    if #p > 3 or (#p > 1 and string_sub(p, 1, 1) == "0") or tonumber(p) > 255 then return false end
  end
  return true
end

-- RFC 4291: eight groups of 1 to 4 hex digits, one "::" for a run of zero
-- groups, the last two may be an IPv4 address.
local function ipv6 (s)
  if string_find(s, "[^%x:.]") then return false end
  local head, tail = s, nil
  local at = string_find(s, "::", 1, true)
  if at then
    head, tail = string_sub(s, 1, at - 1), string_sub(s, at + 2)
    if string_find(tail, "::", 1, true) then return false end
  end
  local groups = 0
  local function count (part, last)
    if part == "" then return true end
    local list = {}
    for g in (part .. ":"):gmatch("([^:]*):") do list[#list + 1] = g end
    for i, g in ipairs(list) do
      if last and i == #list and string_find(g, ".", 1, true) then
        if not ipv4(g) then return false end
        groups = groups + 2
      elseif not string_match(g, "^%x%x?%x?%x?$") then return false
      else groups = groups + 1 end
    end
    return true
  end
  if not count(head, tail == nil) or (tail and not count(tail, true)) then return false end
  if tail then return groups <= 7 end
  return groups == 8
end

local function hostname (s)
  if #s == 0 or #s > 254 or (#s == 254 and string_sub(s, -1) ~= ".") then return false end
  if string_sub(s, -1) == "." then s = string_sub(s, 1, -2) end
  for label in (s .. "."):gmatch("([^.]*)%.") do
    if #label == 0 or #label > 63 or string_find(label, "[^%w-]") or string_find(label, "^%-")
       or string_find(label, "%-$") then
      return false
    end
  end
  return true
end

local ATEXT = "[%w!#$%%&'*+/=?^_`{|}~-]"

-- RFC 5321 mailbox: a dot-atom or quoted local part, @, then a host name
-- or an address literal ([192.0.2.1], [IPv6:2001:db8::1]).
local function email (s)
  local loc, dom = string_match(s, "^(.*)@([^@]*)$")
  if loc == nil or #loc == 0 or #loc > 64 then return false end
  if string_sub(loc, 1, 1) == '"' then
    local inner = string_match(loc, '^"(.*)"$')
    if inner == nil or string_find((inner:gsub("\\[\32-\126]", "")), '[^\32\33\35-\91\93-\126]') then return false end
  elseif not string_match(loc, "^" .. ATEXT .. "+$") and
         not (string_find(loc, "^" .. ATEXT) and string_find(loc, ATEXT .. "$") and not string_find(loc, "%.%.")
              and not string_find((loc:gsub("%.", "")), "[^%w!#$%%&'*+/=?^_`{|}~-]")) then
    return false
  end
  local lit = string_match(dom, "^%[(.*)%]$")
  if lit then
    local v6 = string_match(lit, "^[Ii][Pp][Vv]6:(.*)$")
    if v6 then return ipv6(v6) end
    return ipv4(lit)
  end
  return hostname(dom) and string_sub(dom, -1) ~= "."
end

local function uuid (s)
  return string_match(s, "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$") ~= nil
end

-- RFC 3986 URI (absolute: a scheme): only the characters it allows, "%"
-- only before two hex digits, "[" "]" only around an IP literal host.
local function uri (s)
  local scheme, rest = string_match(s, "^(%a[%w+.-]*):(.*)$")
  if scheme == nil then return false end
  if string_find(rest, "[^%w%-._~:/?#%[%]@!$&'()*+,;=%%]") then return false end
  if string_find((rest:gsub("%%%x%x", "")), "%", 1, true) then return false end
  local auth, path = string_match(rest, "^//([^/?#]*)(.*)$")
  if auth == nil then return not string_find(rest, "[%[%]]") end
  local user, host = string_match(auth, "^(.*)@(.*)$")
  if user == nil then host = auth elseif string_find(user, "[%[%]@]") then return false end
  local ip, port = string_match(host, "^%[([^%]]*)%](.*)$")
  if ip then
    if not (ipv6(ip) or string_match(ip, "^[vV]%x+%..+$")) then return false end
  else
    local name
    name, port = string_match(host, "^([^:]*)(.*)$")
    if string_find(name, "[%[%]]") then return false end
  end
  return (port == "" or string_match(port, "^:%d*$") ~= nil) and not string_find(path, "[%[%]]")
end

--- The checks by format name: `(s) -> boolean`.
M.CHECKS = { ["date-time"] = date_time, date = date, time = time, duration = duration, email = email,
             hostname = hostname, ipv4 = ipv4, ipv6 = ipv6, uuid = uuid, uri = uri }

return M
