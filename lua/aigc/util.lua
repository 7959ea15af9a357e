--- Helpers the Lua layer's modules share: misuse errors in the one format,
-- error objects, type tests.
--
-- Internal: not part of the API (its functions may change).
--
-- **Misuse** raises `bad argument #N to 'FN' (PATH: MESSAGE)`, located at
-- the caller's line: the first frame, going up the stack, that is Lua code
-- outside aigc's own modules (each module registers its chunk with
-- `own_module`). So a check deep in the library, or in a path the call
-- takes through several modules, still points at the user's line, and no
-- function has to count stack levels.
--
-- @module aigc.util
-- @local

local core = require "aigc.core"

local debug_getinfo = debug.getinfo
local error, getmetatable, ipairs, pairs, rawget, select, tostring, type =
  error, getmetatable, ipairs, pairs, rawget, select, tostring, type
local string_format = string.format

local M = {}

-- The chunk sources of aigc's Lua modules, and their file names.
local own_sources, own_files = {}, {}

local function own (source)
  own_sources[source] = true
  if source:sub(1, 1) == "@" then own_files[#own_files + 1] = source:sub(2) end
end
own(debug_getinfo(1, "S").source)

--- Registers the calling module's chunk as aigc's own: misuse errors are
-- never located in it.
function M.own_module ()
  own(debug_getinfo(2, "S").source)
end

--- `msg` without the position Lua put in front of it when that position
-- is in aigc's own modules (where a misuse must not be located); else nil.
-- @tparam string msg
-- @treturn string|nil
function M.strip_own_position (msg)
  local file, rest = msg:match("^([^\n]-):%d+: (.*)$")
  if file == nil then return nil end
  local tail = file:match("^%.%.%.(.*)$")
  for _, f in ipairs(own_files) do
    if f == file or (tail and f:sub(-#tail) == tail) then return rest end
  end
  return nil
end


-- The stack level, counted from the function that calls user_level's
-- caller... precisely: from `raise` below, of the first frame that is
-- neither aigc's own Lua code nor a C function (pcall, a metamethod call)
-- nor a 5.1 tail-call marker: the user's code. 0 (no position) when there
-- is none.
local function user_level ()
  local level = 3   -- (1: user_level, 2: raise)
  while true do
    local info = debug_getinfo(level, "S")
    if info == nil then return 0 end
    if not (own_sources[info.source] or info.what == "C" or info.what == "tail") then
      return level - 1   -- (as error() counts from raise)
    end
    level = level + 1
  end
end

--- Raises `msg` located at the user's line.
-- @tparam string msg
function M.raise (msg)
  error(msg, user_level())
end
local raise = M.raise

--- The type of `v` for a message: its metatable's `__name` (an aigc
-- object), else `type(v)`.
-- @param v
-- @treturn string
function M.typename (v)
  local mt = getmetatable(v)
  if type(mt) == "table" then
    local name = rawget(mt, "__name")
    if type(name) == "string" then return name end
  end
  return type(v)
end
local typename = M.typename

--- What a message says of a value it got: the type, or for a number the
-- number itself (a range error is about the value).
-- @param v
-- @treturn string
function M.describe (v)
  if type(v) == "number" then
    if v ~= v then return "NaN" end
    return string_format("%.14g", v)
  end
  return typename(v)
end
local describe = M.describe

--- Raises `bad argument #argn to 'fname' (msg)` at the user's line.
-- @tparam string fname
-- @tparam integer argn
-- @tparam string msg
function M.argerror (fname, argn, msg)
  raise(string_format("bad argument #%d to '%s' (%s)", argn, fname, msg))
end
local argerror = M.argerror

--- Raises for the value at `path` of argument `argn`:
-- `bad argument #1 to 'chat' (params.temperature: number expected, got string)`.
-- @tparam string fname
-- @tparam integer argn
-- @tparam string path
-- @tparam string msg
function M.field_error (fname, argn, path, msg)
  argerror(fname, argn, path .. ": " .. msg)
end

--- The path of field `key` in `root`: `root.key` for a name, else `root[key]`.
-- @tparam string root
-- @param key
-- @treturn string
function M.path (root, key)
  if type(key) == "string" and key:find("^[%a_][%w_]*$") then return root .. "." .. key end
  if type(key) == "string" then return root .. string_format("[%q]", key) end
  return root .. "[" .. tostring(key) .. "]"
end

--- "T expected, got U" for a value `v`: U is its type, or the number
-- itself when a number of another range was expected.
-- @tparam string what
-- @param v
-- @treturn string
function M.expected (what, v)
  local numeric = type(v) == "number" and (what:find("number", 1, true) or what:find("integer", 1, true))
  return what .. " expected, got " .. (numeric and describe(v) or typename(v))
end

--- Raises as `luaL_checkudata` does for a method called on something else
-- (with `.` instead of `:`, or on another object).
-- @tparam string fname
-- @tparam string class
-- @param v
function M.bad_self (fname, class, v)
  raise(string_format("calling '%s' on bad self (%s expected, got %s)", fname, class, typename(v)))
end

--- Whether `v` is a number of seconds >= 0 (NaN is not).
-- @param v
-- @treturn boolean
function M.is_duration (v)
  return type(v) == "number" and v >= 0
end

--- Whether `v`'s metatable is named `class` (`aigc.client`, `aigc.toolset`...).
-- @param v
-- @tparam string class
-- @treturn boolean
function M.is_a (v, class)
  local mt = getmetatable(v)
  return type(mt) == "table" and rawget(mt, "__name") == class
end

--- Whether `v` is an aigc error object.
-- @param v
-- @treturn boolean
function M.is_error (v)
  return type(v) == "table" and getmetatable(v) == core.error_mt
end
local is_error = M.is_error

--- A new error object: `fields` must hold `kind` and `message`; every
-- other field is kept (`response`, `violations`...).
-- @tparam table fields
-- @treturn aigc.error
function M.new_error (fields)
  return core.error(fields)
end

--- `e` as an error object: `e` itself if it is one, else an error of kind
-- "callback" that says where it came from (`what`: "on_done", "a task"...).
-- @tparam string what
-- @param e
-- @tparam[opt] string traceback
-- @treturn aigc.error
function M.callback_error (what, e, traceback)
  if is_error(e) then return e end
  return core.error { kind = "callback", message = "error in " .. what .. ": " .. tostring(e), traceback = traceback }
end

--- The error with every string in it scrubbed of the client's secrets
-- (`engine:scrub`): for errors built in Lua that may hold server text.
-- @tparam table client
-- @param err
-- @return err
function M.scrub (client, err)
  if not is_error(err) then return err end
  local engine = rawget(client, "_engine")
  local ok, v = pcall(engine.scrub, engine, err)
  if ok and v ~= nil then return v end
  return err
end

--- Reports an error of Lua code the loop ran (a task, a delivery) the way
-- the engine reports callback errors: once, to the client's
-- `error_handler`, else kept for `step()`, else stderr.
-- @tparam table client
-- @param err
function M.report (client, err)
  local engine = rawget(client, "_engine")
  local ok = engine ~= nil and pcall(engine.report, engine, err)
  if not ok then io.stderr:write("aigc: ", tostring(err), "\n") end
end

--- A shallow copy of the tables given, later ones overriding (nil skipped).
-- @treturn table
function M.merge (...)
  local out = {}
  for i = 1, select("#", ...) do
    local t = select(i, ...)
    if t then for k, v in pairs(t) do out[k] = v end end
  end
  return out
end

return M
