--- What the Lua running the specs can do, for specs that run under every
-- interpreter of `make test`'s matrix (5.1, 5.2, 5.3, 5.4, LuaJIT) and
-- assert what differs between them (README, "What differs between the Lua
-- versions"). Runs on all of them.
local M = {}

local math_type, floor = rawget(math, "type"), math.floor

--- "5.1", "5.2", "5.3", "5.4" or "jit".
M.version = rawget(_G, "jit") and "jit" or _VERSION:match("5%.%d")
--- The number in _VERSION ("5.1" for LuaJIT): what the User-Agent names.
M.abi = _VERSION:match("5%.%d")
--- 64-bit integers (5.3, 5.4); elsewhere numbers are doubles, integers exact to 2^53.
M.int64 = math_type ~= nil
--- `local x <close>` (5.4 only).
M.has_close = M.version == "5.4"
--- `__gc` on tables (5.2+; 5.1 and LuaJIT: userdata only, `newproxy`).
M.table_gc = M.version ~= "5.1" and M.version ~= "jit"
--- `__len` on tables (5.2+).
M.table_len = M.table_gc
--- "\u{...}" escapes in strings (5.3+; LuaJIT reads them too).
M.u_escape = M.version == "5.3" or M.version == "5.4" or M.version == "jit"

M.pack = rawget(table, "pack") or function (...) return { n = select("#", ...), ... } end
M.unpack = rawget(table, "unpack") or rawget(_G, "unpack")

--- math.type everywhere: on doubles-only Lua, "integer" for an
-- integer-valued number within 2^53 (what aigc gives for JSON integers).
function M.number_type (v)
  if math_type then return math_type(v) end
  if type(v) ~= "number" then return nil end
  if v == floor(v) and v >= -2 ^ 53 and v <= 2 ^ 53 then return "integer" end
  return "float"
end

--- load(text, name, "t", env) on every version (5.1: loadstring + setfenv).
function M.load (text, name, env)
  local setfenv, loadstring = rawget(_G, "setfenv"), rawget(_G, "loadstring")
  if setfenv then
    local f, err = loadstring(text, name)
    if f and env then setfenv(f, env) end
    return f, err
  end
  if env == nil then return load(text, name, "t") end   -- (an explicit nil env would be _ENV = nil)
  return load(text, name, "t", env)
end

--- An object whose __gc runs `fin(data)`: a table on 5.2+, a newproxy on
-- 5.1 / LuaJIT (their tables have no __gc). Keep the result to keep it alive.
function M.finalized (data, fin)
  if not M.table_gc then
    local u = rawget(_G, "newproxy")(true)
    getmetatable(u).__gc = function () fin(data) end
    return u
  end
  return setmetatable(data, { __gc = fin })
end

--- The incremental collector with `pause` and `stepmul` (5.4's
-- collectgarbage("incremental", pause, stepmul); before 5.4 the same
-- through "setpause" / "setstepmul", the incremental mode being the only one).
function M.gc_incremental (pause, stepmul)
  if M.version == "5.4" then return collectgarbage("incremental", pause, stepmul) end
  collectgarbage("setpause", pause)
  collectgarbage("setstepmul", stepmul)
end

--- `local x <close> = obj` around body(x) on 5.4 (compiled there only);
-- elsewhere the explicit equivalent the README gives, obj[explicit](obj),
-- at the end of the scope.
function M.with_close (obj, explicit, body)
  if M.has_close then
    return assert(load("local obj, body = ...; do local x <close> = obj; body(x) end", "=<close> scope"))(obj, body)
  end
  local ok, err = pcall(body, obj)
  obj[explicit](obj)
  if not ok then error(err, 0) end
end

return M
