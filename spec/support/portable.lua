-- What the specs need to run under every Lua of `make test`'s matrix (5.1,
-- 5.2, 5.3, 5.4, LuaJIT 2.1) while keeping 5.4's own forms tested on 5.4.
-- Spec files must parse everywhere: a 5.4-only construct (`<close>`, `//`,
-- bitwise operators, "\u{...}") is either written portably with the
-- helpers here or compiled only on 5.4 through `lua54` (load() of a string).
-- A case that cannot run on a version calls `pending("needs Lua 5.x: why")`
-- itself (busted's pending is the spec's, not this module's): it is never
-- silently passed.
local compat = require "aigc.compat"

local M = {}

--- "5.1", "5.2", "5.3", "5.4" or "jit".
M.version = compat.version

--- Whether `local x <close>` exists (5.4).
M.has_close = compat.has_close

--- Whether numbers have an integer subtype (5.3, 5.4): 64-bit integers exact.
M.has_integers = rawget(math, "type") ~= nil

--- Whether table finalizers (`__gc` on a table's metatable) run (5.2+ PUC;
-- 5.1 and LuaJIT run `__gc` on userdata only).
M.table_gc = M.version ~= "5.1" and M.version ~= "jit"

--- Whether `#t` honours a table's `__len` (5.2+; not 5.1 nor LuaJIT).
M.table_len = M.table_gc

--- `load` of a string with a chunk name (5.1's load wants a function).
M.load = rawget(_G, "loadstring") or load

M.unpack = compat.unpack

--- table.pack (5.2+) or its equivalent.
M.pack = compat.pack
M.utf8_len = compat.utf8_len
M.utf8_char = compat.utf8_char
M.tointeger = compat.tointeger

--- `math.type` where it exists; elsewhere "float" for a non-integral
-- number, "integer" for an integral one (a double: what 5.1 calls one).
M.math_type = rawget(math, "type") or function (v)
  if type(v) ~= "number" then return nil end
  return compat.is_integer(v) and "integer" or "float"
end

--- a // b for numbers (floor division; 5.3+ only as an operator).
function M.idiv (a, b) return math.floor(a / b) end

--- Compiles Lua 5.4 source `code` (e.g. a `<close>` scope) and returns the
-- function; only call it where M.has_close / M.version == "5.4" holds.
function M.lua54 (code, name)
  return assert(load(code, "=" .. (name or "<5.4 chunk>")))
end

--- Lua 5.4's `local x <close> = obj` around `body(x)`, compiled only on
-- 5.4; elsewhere the explicit equivalent the README gives,
-- obj[explicit](obj), at the end of the scope (also when body raises).
function M.with_close (obj, explicit, body)
  if M.has_close then
    return M.lua54("local obj, body = ...; do local x <close> = obj; body(x) end", "<close> scope")(obj, body)
  end
  local ok, err = pcall(body, obj)
  obj[explicit](obj)
  if not ok then error(err, 0) end
end

--- A list of objects a test closes after itself (where a 5.4 test would
-- have written `local client <close> = ...`): `local keep = scope.keep`
-- in a file, `scope.close_all()` in its after_each.
function M.scope ()
  local objs = {}
  local s = {}
  function s.keep (obj)
    objs[#objs + 1] = obj
    return obj
  end
  function s.close_all ()
    for i = #objs, 1, -1 do
      local obj = objs[i]
      objs[i] = nil
      obj:close()
    end
  end
  return s
end

--- An object whose collection calls `gc(obj)`: a table with `__gc` where
-- tables have finalizers (5.2+), else a `newproxy` userdata (5.1, LuaJIT).
function M.finalized (gc)
  if M.table_gc then return setmetatable({}, { __gc = gc }) end
  local p = newproxy(true)   -- luacheck: ignore 113 (5.1/LuaJIT only)
  getmetatable(p).__gc = gc
  return p
end

--- How many keys of the weak-keyed table `gone` are still there after
-- three full collections: on Lua 5.3 a client whose requests were still
-- pending when dropped goes only at the third (its finalizers run in
-- turns); a leak stays whatever the count.
function M.left_after_collect (gone)
  for _ = 1, 3 do collectgarbage("collect") end
  local left = 0
  for _ in pairs(gone) do left = left + 1 end
  return left
end

--- The incremental collector with this pause and step multiplier (5.4:
-- collectgarbage("incremental", ...); 5.1-5.3, LuaJIT: setpause and
-- setstepmul, their step size being fixed). On 5.4 also the step size
-- (log2 of bytes; default 13, Lua's own): a step there does stepmul times
-- its size of work, so "a whole cycle at every allocation check" needs a
-- large one (20) as well as a large stepmul: with 13 a cycle took several
-- checks, and a finalizer meant to run at a call's first allocation did not.
function M.gc_incremental (pause, stepmul, stepsize_log2)
  if M.version == "5.4" then
    collectgarbage("incremental", pause, stepmul, stepsize_log2 or 13)
  else
    collectgarbage("setpause", pause)
    collectgarbage("setstepmul", stepmul)
  end
end

--- The little-endian IEEE 754 single at byte `pos` of `s`, as a number
-- (string.unpack("<f") where there is none: before 5.3).
function M.float32_le (s, pos)
  local b1, b2, b3, b4 = s:byte(pos, pos + 3)
  local sign = b4 >= 128 and -1 or 1
  local exp = (b4 % 128) * 2 + math.floor(b3 / 128)
  local mant = ((b3 % 128) * 256 + b2) * 256 + b1
  if exp == 0 then return sign * mant * 2 ^ -149 end
  if exp == 255 then return mant == 0 and sign * math.huge or 0 / 0 end
  return sign * (1 + mant / 2 ^ 23) * 2 ^ (exp - 127)
end

--- Base64 (standard alphabet, padding optional) to bytes, by arithmetic
-- (no bitwise operators: they are 5.3+).
function M.b64decode (s)
  local map, A = {}, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  for i = 1, 64 do map[A:byte(i)] = i - 1 end
  local out = {}
  s = s:gsub("=", "")
  for i = 1, #s, 4 do
    local a, b, c, d = s:byte(i, i + 3)
    local n = map[a] * 262144 + map[b] * 4096 + (c and map[c] or 0) * 64 + (d and map[d] or 0)
    out[#out + 1] = string.char(math.floor(n / 65536), math.floor(n / 256) % 256, n % 256)
      :sub(1, d and 3 or c and 2 or 1)
  end
  return table.concat(out)
end

--- Turns warnings on where the version has them (5.4): an error in a
-- `__gc` must show. (5.1-5.3 and LuaJIT raise it from the allocation
-- that ran the collection instead.)
function M.warn_on ()
  local warn = rawget(_G, "warn")
  if warn then warn("@on") end
end

return M
