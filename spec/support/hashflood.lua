--- Keys that flood Lua's string hash, for the specs of the hash-flood
-- check (hostile_server_probe_spec, hashflood_stream_spec). Lua 5.1 to 5.3
-- hash a string of 32 bytes or more from a sample of its bytes (a key of
-- 64 bytes: every third byte from its end, 63, 60... 3): keys that differ
-- only in the others share one chain of a table, and building an object of
-- n of them costs n^2 / 2 steps. Lua 5.4 and LuaJIT hash the whole key,
-- seeded: nothing to refuse there.

local portable = require "portable"

local M = {}

--- True where the hash samples the key's bytes (Lua 5.1 to 5.3).
M.SAMPLED = portable.version == "5.1" or portable.version == "5.2" or portable.version == "5.3"

local DIGITS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

--- The i-th flooding key of 64 bytes: i in base 62 in bytes 1, 2, 4, 5
-- (0-based), which Lua 5.1-5.3 do not hash.
function M.flood_key (i)
  local bytes = {}
  for p = 1, 64 do bytes[p] = "x" end
  for _, p in ipairs { 1, 2, 4, 5 } do
    local d = i % 62
    i = (i - d) / 62
    bytes[p + 1] = DIGITS:sub(d + 1, d + 1)
  end
  return table.concat(bytes)
end

--- The i-th key that only looks alike (no flood, on any Lua).
function M.honest_key (i)
  return ("https://example.com/item/%d#k"):format(i * 7919)
end

--- The number of members of a table (keys of any kind).
function M.count (t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

return M
