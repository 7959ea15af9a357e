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

--- The incremental collector with this pause and step multiplier (5.4:
-- collectgarbage("incremental", ...); 5.1-5.3, LuaJIT: setpause and
-- setstepmul, their step size being fixed).
function M.gc_incremental (pause, stepmul)
  if M.version == "5.4" then
    collectgarbage("incremental", pause, stepmul)
  else
    collectgarbage("setpause", pause)
    collectgarbage("setstepmul", stepmul)
  end
end

--- Turns warnings on where the version has them (5.4): an error in a
-- `__gc` must show. (5.1-5.3 and LuaJIT raise it from the allocation
-- that ran the collection instead.)
function M.warn_on ()
  local warn = rawget(_G, "warn")
  if warn then warn("@on") end
end

return M
