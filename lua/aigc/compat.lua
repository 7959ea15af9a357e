--- What differs between Lua 5.1, 5.2, 5.3, 5.4 and LuaJIT 2.1, in one place.
--
-- Internal: the library's other modules are written in the subset of the
-- language every version shares and reach version-specific functions only
-- through here (`.luacheckrc` checks them with `std = "min"`, this file
-- with `std = "max"`). Each entry is the native function where the running
-- Lua has it, else a small equivalent with the same results for the uses
-- aigc makes of it.
--
-- Numbers: on 5.1, 5.2 and LuaJIT every number is a double, so "an
-- integer" means a number with an integer value (`is_integer`), as it does
-- for the C core's option readers on every version.
--
-- @module aigc.compat
-- @local

local math_floor, math_huge = math.floor, math.huge
local getmetatable, pcall, select, type = getmetatable, pcall, select, type
local string_byte, string_char = string.byte, string.char
local coroutine_running = coroutine.running

local M = {}

-- The `debug` library. An engine may remove it from its scripts' Lua (a
-- sandbox): aigc still loads, and only what needs it degrades: a misuse
-- error carries no position, a failed task or tool no traceback, and a
-- tool's error goes to the model with its positions (they are stripped
-- only from the chunks `getinfo` names).
local debug_lib = rawget(_G, "debug") or {}

--- `debug.getinfo`, else a function that finds nothing (nil, as past the
-- top of the stack).
M.getinfo = debug_lib.getinfo or function () return nil end

--- `debug.getmetatable`, else `getmetatable` when that gives a table (a
-- `__metatable` field then hides the real one: nil for a value that is not
-- a table, which callers would index).
M.getmetatable = debug_lib.getmetatable or function (v)
  local mt = getmetatable(v)
  return type(mt) == "table" and mt or nil
end

--- `debug.traceback`, else the message alone (a non-string one as it is).
M.traceback = debug_lib.traceback or function (...)
  local msg = ...
  if type(msg) == "thread" then msg = select(2, ...) end
  if msg == nil then return "(no traceback: this Lua has no debug library)" end
  return msg
end

--- The running Lua: "5.1", "5.2", "5.3", "5.4" or "jit" (LuaJIT).
M.version = rawget(_G, "jit") and "jit" or _VERSION:match("%d+%.%d+")

--- Whether the language has to-be-closed variables (`local x <close>`),
-- so that `__close` metamethods run (5.4 only).
M.has_close = M.version == "5.4"

--- `table.unpack` (5.2+), `unpack` (5.1, LuaJIT).
M.unpack = rawget(table, "unpack") or rawget(_G, "unpack")

--- `table.pack`: the arguments in a table with `n`.
M.pack = rawget(table, "pack") or function (...)
  return { n = select("#", ...), ... }
end

local math_type = rawget(math, "type")

--- Whether `v` is a number with an integer value (not NaN, not infinite).
-- @param v
-- @treturn boolean
function M.is_integer (v)
  if math_type then
    local t = math_type(v)
    if t == "integer" then return true end
    if t == nil then return false end
  elseif type(v) ~= "number" then
    return false
  end
  return v == math_floor(v) and v > -math_huge and v < math_huge
end

--- `math.tointeger`: the integer value of `v` (a number with one), else nil.
-- @param v
-- @treturn number|nil
M.tointeger = rawget(math, "tointeger") or function (v)
  if type(v) == "number" and v == math_floor(v) and v > -math_huge and v < math_huge then return v end
  return nil
end

-- {======================================================
-- UTF-8 (strict, as Lua 5.4's utf8.len: no overlong forms, no surrogates,
-- nothing above U+10FFFF)
-- =======================================================

-- Decodes the character at byte i: its code point and the next position,
-- or nil when the bytes there are not well-formed UTF-8.
local function decode_at (s, i)
  local c = string_byte(s, i)
  if c < 0x80 then return c, i + 1 end
  local n, cp, min
  if c >= 0xF0 and c <= 0xF4 then n, cp, min = 3, c - 0xF0, 0x10000
  elseif c >= 0xE0 and c <= 0xEF then n, cp, min = 2, c - 0xE0, 0x800
  elseif c >= 0xC2 and c <= 0xDF then n, cp, min = 1, c - 0xC0, 0x80
  else return nil end
  for k = i + 1, i + n do
    local b = string_byte(s, k)
    if b == nil or b < 0x80 or b > 0xBF then return nil end
    cp = cp * 64 + (b - 0x80)
  end
  if cp < min or cp > 0x10FFFF or (cp >= 0xD800 and cp <= 0xDFFF) then return nil end
  return cp, i + n + 1
end

local native_utf8 = M.version == "5.4" and rawget(_G, "utf8") or nil

--- `utf8.len(s[, i])` with 5.4's strict rule on every version: the number
-- of characters from byte `i` (default 1), or nil and the position of the
-- first byte that is not well-formed UTF-8.
-- @tparam string s
-- @tparam[opt=1] integer i
-- @treturn integer|nil
-- @treturn[opt] integer
function M.utf8_len (s, i)
  if native_utf8 then return native_utf8.len(s, i or 1) end
  local n = 0
  i = i or 1
  local last = #s
  while i <= last do
    local cp, nxt = decode_at(s, i)
    if cp == nil then return nil, i end
    n, i = n + 1, nxt
  end
  return n
end

--- The code points of a well-formed UTF-8 string, as `utf8.codes` gives
-- them: `for pos, cp in compat.utf8_codes(s)`. (Check the string with
-- `utf8_len` first: a malformed character raises.)
-- @tparam string s
function M.utf8_codes (s)
  if native_utf8 then return native_utf8.codes(s) end
  local i = 1
  return function ()
    if i > #s then return nil end
    local at = i
    local cp, nxt = decode_at(s, i)
    if cp == nil then error("invalid UTF-8 code", 2) end
    i = nxt
    return at, cp
  end
end

--- `utf8.char` for one code point.
-- @tparam integer cp
-- @treturn string
function M.utf8_char (cp)
  if cp < 0x80 then return string_char(cp) end
  if cp < 0x800 then return string_char(0xC0 + math_floor(cp / 64), 0x80 + cp % 64) end
  if cp < 0x10000 then
    return string_char(0xE0 + math_floor(cp / 4096), 0x80 + math_floor(cp / 64) % 64, 0x80 + cp % 64)
  end
  return string_char(0xF0 + math_floor(cp / 262144), 0x80 + math_floor(cp / 4096) % 64,
                     0x80 + math_floor(cp / 64) % 64, 0x80 + cp % 64)
end

-- }======================================================

-- {======================================================
-- Coroutines
-- =======================================================

--- `coroutine.running()` as 5.2+ gives it: the running coroutine and
-- whether it is the main one (5.1 gives nil in the main thread).
-- @treturn thread|nil
-- @treturn boolean
function M.running ()
  local co, main = coroutine_running()
  if co == nil then return nil, true end
  return co, main == true
end

local isyieldable = rawget(coroutine, "isyieldable")

--- Whether the running code may yield. 5.3, 5.4 and LuaJIT know; on 5.1
-- and 5.2 this says only whether it runs in a coroutine (5.1 cannot yield
-- across a pcall or a C function: see `task.pcall`).
-- @treturn boolean
function M.isyieldable ()
  if isyieldable then return isyieldable() end
  local _, main = M.running()
  return not main
end

--- `coroutine.close` (5.4) where it exists, else nothing: a coroutine
-- nobody resumes is collected with its stack.
--- package.searchpath (5.2+), or the same walk of `path` on 5.1/LuaJIT:
-- the first file `name` (dots as folders) names there that opens, or nil.
M.searchpath = rawget(package, "searchpath") or function (name, path)
  local file = name:gsub("%.", "/")
  for template in path:gmatch("[^;]+") do
    local candidate = template:gsub("%?", file)
    local f = io.open(candidate, "r")
    if f then f:close(); return candidate end
  end
  return nil
end

M.close_coroutine = rawget(coroutine, "close") or function () return true end

--- Whether `pcall` and `xpcall` can be yielded across (every version but
-- PUC Lua 5.1).
M.yield_across_pcall = M.version ~= "5.1"

local native_xpcall = xpcall

--- `xpcall(f, handler, ...)` with arguments on every version (5.1's xpcall
-- takes none).
-- @function xpcall
if M.version == "5.1" then
  M.xpcall = function (f, handler, ...)
    local n, args = select("#", ...), { ... }
    return native_xpcall(function () return f(M.unpack(args, 1, n)) end, handler)
  end
else
  M.xpcall = native_xpcall
end

-- }======================================================

--- Loads Lua text as a chunk with `env` as its globals (5.1 and LuaJIT:
-- `loadstring` and `setfenv`; text only).
-- @tparam string text
-- @tparam string chunkname
-- @tparam table env
-- @treturn function|nil
-- @treturn[opt] string the syntax error
function M.load_text (text, chunkname, env)
  local setfenv, loadstring = rawget(_G, "setfenv"), rawget(_G, "loadstring")
  if setfenv and loadstring then
    if string_byte(text, 1) == 27 then return nil, "binary chunks are not accepted" end
    local f, err = loadstring(text, chunkname)
    if f then setfenv(f, env) end
    return f, err
  end
  return load(text, chunkname, "t", env)
end

--- LuaJIT: keeps aigc's Lua layer off the JIT (its C core is not affected;
-- the user's own code keeps the JIT). LuaJIT 2.1 before commit 119fd1fa
-- (Aug 2023, LuaJIT #1045; e.g. Debian 12's 2.1.0~beta3+git20220320) can
-- spin for ever in a compiled pairs() loop whose trace exits at its first
-- guard inside a __gc metamethod: the exit lands on the loop's JLOOP, which
-- re-enters the trace, and nothing is recorded during __gc to break the
-- cycle (spec/lifecycle/luajit-itern-gc.lua). A finalizer may call any aigc
-- function (a request, a stream loop, step, close), so the lifecycle tester
-- hung in hooks.before's parameter copy. jit.* is refused inside __gc, hence
-- at load time: the module chunk that loads first calls `M.jit_off(true,
-- true)` (itself and its functions), then this: every aigc.* module loaded
-- later through the Lua file searcher.
local jit_kept_off = false
local SEARCHER_KEY = "aigc.jit_off_searcher"   -- (the registry's: see below)

--- LuaJIT's `jit.off` itself (called as `jit_off(true, true)` from a chunk,
-- it turns off the JIT for that chunk and its functions: LuaJIT looks at
-- the frame that called it, so this must stay the C function, no wrapper);
-- a no-op on the other Luas. (It replaces `debug.getinfo(1, "f").func`: an
-- engine may remove `debug`.)
M.jit_off = rawget(_G, "jit") and rawget(_G, "jit").off or function () end
function M.keep_aigc_off_jit ()
  local jit = rawget(_G, "jit")
  if not jit or not jit.off then return end
  if jit_kept_off then return end
  jit_kept_off = true
  for _, f in pairs(M) do
    if type(f) == "function" then pcall(jit.off, f, true) end   -- (a C function is refused: left as it is)
  end
  local searchers = rawget(package, "loaders") or rawget(package, "searchers")
  local lua_searcher = searchers and searchers[2]
  if type(lua_searcher) ~= "function" then return end
  -- A hot reload (every aigc.* module dropped from package.loaded and
  -- required again) loads this module afresh: its wrapper, kept in the
  -- registry, is not wrapped again (one more layer per reload, for ever).
  local registry = debug_lib.getregistry and debug_lib.getregistry()
  if type(registry) == "table" and registry[SEARCHER_KEY] == lua_searcher then return end
  searchers[2] = function (name, ...)
    local loader, extra = lua_searcher(name, ...)
    if type(loader) == "function" and type(name) == "string" and name:sub(1, 5) == "aigc." then
      jit.off(loader, true)
    end
    return loader, extra
  end
  if type(registry) == "table" then registry[SEARCHER_KEY] = searchers[2] end
end

return M
