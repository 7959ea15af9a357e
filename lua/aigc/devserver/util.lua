--- aigc devserver: small helpers shared by the package -- hashing, base64,
-- ids, words and tokens, big filler strings. Part of the devserver package.

local uv = require "luv"
local json = require "aigc.devserver.json"

local byte, char, find, format, gsub, rep, sub =
  string.byte, string.char, string.find, string.format, string.gsub, string.rep, string.sub
local spack, sunpack = string.pack, string.unpack
local concat = table.concat
local RAW = json.RAW

local M = {}

-- FNV-1a over at most 8 KiB (head and tail) so a 64 MiB prompt stays cheap.
local function fnv (s)
  if #s > 8192 then s = sub(s, 1, 4096) .. #s .. sub(s, -4096) end
  local h = 2166136261
  for i = 1, #s do h = ((h ~ byte(s, i)) * 16777619) & 0xffffffff end
  return h
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64 (s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = byte(s, i, i + 2)
    local n = (a << 16) | ((b or 0) << 8) | (c or 0)
    out[#out + 1] = char(byte(B64, (n >> 18) + 1), byte(B64, ((n >> 12) & 63) + 1),
      b and byte(B64, ((n >> 6) & 63) + 1) or 61, c and byte(B64, (n & 63) + 1) or 61)
  end
  return concat(out)
end

local function http_date (t) return os.date("!%a, %d %b %Y %H:%M:%S GMT", t) end

local function words (s) return select(2, gsub(s, "%S+", "")) end

-- White space as %s reads it (no locale): tab, newline, vertical tab, form
-- feed, carriage return, space.
local function space (b) return b == 32 or (b >= 9 and b <= 13) end

-- `s` without its trailing white space (the bytes for which `tail(byte)`
-- is true, if given), in a byte loop: "%s+$" tried each space of an inner
-- run to its end, quadratic in the run.
local function trim_end (s, tail)
  local j = #s
  tail = tail or space
  while j >= 1 and tail(byte(s, j)) do j = j - 1 end
  return sub(s, 1, j)
end

-- `s` without its white space at either end, in byte loops: "^%s*(.-)%s*$"
-- tried "%s*$" over the rest of a run at each of its spaces (a message with
-- 100 kB of spaces inside took a minute).
local function trim (s)
  local i, n = 1, #s
  while i <= n and space(byte(s, i)) do i = i + 1 end
  return trim_end(sub(s, i))
end

local function url_decode (s)
  return (gsub(gsub(s, "+", " "), "%%(%x%x)", function (h) return char(tonumber(h, 16)) end))
end

-- Unique ids: a random per-process prefix and a counter.
local id_prefix do
  local ok, rnd = pcall(uv.random, 6, {})
  if not ok or type(rnd) ~= "string" then rnd = spack("<I6", (uv.hrtime() ~ uv.os_getpid()) & 0xffffffffffff) end
  id_prefix = gsub(rnd, ".", function (c) return format("%02x", byte(c)) end)
end
local id_counter = 0
local function uid ()
  id_counter = id_counter + 1
  return format("%s%08x", id_prefix, id_counter)
end

-- Tokens: words with their leading whitespace; trailing whitespace is a last
-- token, so that concat(tokens) == text always.
local function tokenize (text)
  local toks, pos, n = {}, 1, #text
  while pos <= n do
    local s, e = find(text, "^%s*%S+", pos)
    if not s then toks[#toks + 1] = sub(text, pos); break end
    toks[#toks + 1] = sub(text, s, e)
    pos = e + 1
  end
  return toks
end

-- Split a string into pieces of at most `size` bytes, never inside a UTF-8 sequence.
local function pieces (s, size)
  local out, pos, n = {}, 1, #s
  while pos <= n do
    local e = pos + size - 1
    if e < n then
      local back = e
      while back > pos and (byte(s, back + 1) & 0xC0) == 0x80 do back = back - 1 end
      e = back
    end
    out[#out + 1] = sub(s, pos, e)
    pos = e + 1
  end
  return out
end

-- The last few big strings made, by key: a storm of `body=huge` requests
-- costs one string, not one each.
local big_cache, big_order = {}, {}
local function cached (key, make)
  local s = big_cache[key]
  if s then return s end
  s = make()
  big_order[#big_order + 1] = key
  big_cache[key] = s
  if #big_order > 6 then big_cache[table.remove(big_order, 1)] = nil end
  return s
end

-- n bytes of "lorem ipsum ": the body of the size faults.
local function filler (n)
  local unit = "lorem ipsum "
  if n < 4096 then return sub(rep(unit, n // #unit + 1), 1, n) end
  return cached(n, function () return sub(rep(unit, n // #unit + 1), 1, n) end)
end

-- The filler as a JSON string (it needs no escapes): skips scanning megabytes.
local function filler_json (n)
  return RAW(cached("json" .. n, function () return '"' .. filler(n) .. '"' end))
end

local function float32 (x) return (sunpack("<f", spack("<f", x))) end

local function content_text (c)
  if type(c) == "string" then return c end
  if type(c) ~= "table" then return "" end
  local parts = {}
  for _, p in ipairs(c) do
    if type(p) == "string" then parts[#parts + 1] = p
    elseif type(p) == "table" and type(p.text) == "string" then parts[#parts + 1] = p.text end
  end
  return concat(parts, " ")
end

local function count_images (c)
  local n = 0
  if type(c) == "table" then
    for _, p in ipairs(c) do
      if type(p) == "table" and (p.type == "image_url" or p.image_url ~= nil) then n = n + 1 end
    end
  end
  return n
end

local function gmatch_lines (s) return string.gmatch(s .. "\n", "([^\n]-)\r?\n") end

-- Decode base64 (standard or URL alphabet, padding optional); nil if invalid.
local B64_VALUE = {}
for i = 1, 64 do B64_VALUE[byte(B64, i)] = i - 1 end
B64_VALUE[byte("-")], B64_VALUE[byte("_")] = 62, 63
local function unbase64 (s)
  s = gsub(s, "[%s=]", "")
  if find(s, "[^%w%+/%-_]") or #s % 4 == 1 then return nil end
  local out, n = {}, #s
  for i = 1, n, 4 do
    local a, b, c, d = byte(s, i, i + 3)
    local v = (B64_VALUE[a] << 18) | (B64_VALUE[b] << 12) | ((c and B64_VALUE[c] or 0) << 6) | (d and B64_VALUE[d] or 0)
    out[#out + 1] = char(v >> 16, (v >> 8) & 255, v & 255)
    if not c then out[#out] = char(v >> 16) elseif not d then out[#out] = char(v >> 16, (v >> 8) & 255) end
  end
  return concat(out)
end

-- CRC-32 (IEEE, as zlib, PNG and gzip use it) and Adler-32 (zlib).
local CRC_TABLE = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do c = (c & 1) ~= 0 and (0xEDB88320 ~ (c >> 1)) or (c >> 1) end
  CRC_TABLE[i] = c
end
local function crc32 (s, crc)
  crc = (crc or 0) ~ 0xFFFFFFFF
  local n = #s
  for i = 1, n - 7, 8 do
    local a, b, c, d, e, f, g, h = byte(s, i, i + 7)
    crc = CRC_TABLE[(crc ~ a) & 255] ~ (crc >> 8)
    crc = CRC_TABLE[(crc ~ b) & 255] ~ (crc >> 8)
    crc = CRC_TABLE[(crc ~ c) & 255] ~ (crc >> 8)
    crc = CRC_TABLE[(crc ~ d) & 255] ~ (crc >> 8)
    crc = CRC_TABLE[(crc ~ e) & 255] ~ (crc >> 8)
    crc = CRC_TABLE[(crc ~ f) & 255] ~ (crc >> 8)
    crc = CRC_TABLE[(crc ~ g) & 255] ~ (crc >> 8)
    crc = CRC_TABLE[(crc ~ h) & 255] ~ (crc >> 8)
  end
  for i = n - n % 8 + 1, n do crc = CRC_TABLE[(crc ~ byte(s, i)) & 255] ~ (crc >> 8) end
  return crc ~ 0xFFFFFFFF
end

local function adler32 (s)
  local a, b, n = 1, 0, #s
  local i = 1
  while i <= n do -- sums stay far below 2^63 over 4 KiB blocks: reduce once per block
    local last = math.min(n, i + 4095)
    for k = i, last do a = a + byte(s, k); b = b + a end
    a, b = a % 65521, b % 65521
    i = last + 1
  end
  return (b << 16) | a
end

M.crc32, M.adler32 = crc32, adler32
M.fnv, M.base64, M.unbase64, M.http_date, M.words, M.trim, M.url_decode = fnv, base64, unbase64, http_date, words,
  trim, url_decode
M.trim_end = trim_end
M.uid, M.tokenize, M.pieces, M.cached, M.filler, M.filler_json, M.float32 = uid, tokenize, pieces, cached, filler,
  filler_json, float32
M.content_text, M.count_images, M.gmatch_lines = content_text, count_images, gmatch_lines

return M
