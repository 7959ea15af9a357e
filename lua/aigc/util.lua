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

local debug_getinfo = require("aigc.compat").getinfo   -- (finds nothing without a debug library)
local compat_getmetatable = require("aigc.compat").getmetatable
local error, getmetatable, ipairs, pairs, rawget, select, tonumber, tostring, type =
  error, getmetatable, ipairs, pairs, rawget, select, tonumber, tostring, type
local string_format = string.format
local table_concat = table.concat

local M = {}

-- The chunk sources of aigc's Lua modules, and their file names.
local own_sources, own_files = {}, {}

local function own (info)
  if info == nil then return end   -- (no debug library: no source known)
  local source = info.source
  own_sources[source] = true
  if source:sub(1, 1) == "@" then own_files[#own_files + 1] = source:sub(2) end
end
own(debug_getinfo(1, "S"))

--- Registers the calling module's chunk as aigc's own: misuse errors are
-- never located in it.
function M.own_module ()
  own(debug_getinfo(2, "S"))
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
  if v == core.null then return "null" end   -- (a JSON null, as a file or a server wrote it)
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

--- Raises `e` as it is when it is Lua's out of memory (a check that
-- caught it with pcall must not report it as a bad argument: it says
-- nothing of the value); else returns.
-- @param e what the pcall caught
function M.reraise_memory (e)
  if type(e) == "string" and e:find("not enough memory", 1, true) then error(e, 0) end
end

local compat_xpcall = require("aigc.compat").xpcall
local keep_interrupt, is_interrupt = core.keep_interrupt, core.is_interrupt

local function passing_interrupts (ok, ...)
  if not ok and is_interrupt((...)) then error((...), 0) end
  return ok, ...
end

--- `pcall(f, ...)`, except that an error raised in a debug hook (a host's
-- watchdog, lua.c's Ctrl-C) is raised on, untouched, as the C core lets it
-- through: for the calls that drop or report what they catch (a log
-- write, the usage count). Through xpcall with a C message handler, so a
-- function that yields its task (a log object's, a cache's own) still can.
-- @tparam function f
-- @return pcall's results
function M.pcall_passing_interrupts (f, ...)
  return passing_interrupts(compat_xpcall(f, keep_interrupt, ...))
end
if require("aigc.compat").version == "5.1" then
  -- PUC 5.1's xpcall takes no arguments: compat's wrapper makes a table and
  -- a closure before the call is protected, and a memory error there
  -- escaped into the end of a request (a stream iterator then waited for
  -- ever: host_oom_spec). Nor can 5.1 yield across a pcall: the same call
  -- made in C, which makes nothing before it (the handler is kept).
  M.pcall_passing_interrupts = core.pcall_passing
end

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
  if type(key) == "string" then   -- (one line, controls as Lua escapes: 5.1's %q leaves them raw)
    return root .. (string_format("[%q]", key):gsub("\\\n", "\\n"):gsub("([%z\1-\31\127])(%d?)", function (c, d)
      return string_format(d ~= "" and "\\%03d" or "\\%d", c:byte()) .. d
    end))
  end
  return root .. "[" .. tostring(key) .. "]"
end

--- `tonumber(s)` with '.' as the decimal point whatever the C locale:
-- PUC Lua 5.1's tonumber follows it (a host that set LC_NUMERIC=de_DE got
-- nil for "8.5": a judge's score, a template's temperature), where 5.2+
-- and LuaJIT read a '.' always.
-- @param s
-- @treturn number|nil
-- @usage util.number("8.5") --> 8.5 (under any locale)
function M.number (s)
  local v = tonumber(s)
  if v == nil and type(s) == "string" and s:find(".", 1, true) then
    local point = string_format("%.1f", 0.5):sub(2, 2)   -- (the locale's)
    if point ~= "." then v = tonumber((s:gsub("%.", point))) end
  end
  return v
end

--- `string.format("%.17g", v)` with '.' as the decimal point whatever the C
-- locale: PUC Lua's string.format follows it ("0,69999999999999996" under
-- de_DE), LuaJIT's does not. For text that is kept or compared beyond this
-- process: a cassette's key, a SQL literal.
-- @tparam number v
-- @treturn string
-- @usage util.g17(0.5) --> "0.5" (under any locale)
function M.g17 (v)
  local s = string_format("%.17g", v)
  local point = string_format("%.1f", 0.5):sub(2, -2)   -- (the locale's; it may be several bytes)
  if point ~= "." then
    local i = s:find(point, 1, true)
    if i then s = s:sub(1, i - 1) .. "." .. s:sub(i + #point) end
  end
  return s
end

--- "T expected, got U" for a value `v`: U is its type, or the number
-- itself when a number of another range was expected, or "an empty
-- string" when a non-empty one was ("non-empty string expected, got
-- string" named the type it expected).
-- @tparam string what
-- @param v
-- @treturn string
function M.expected (what, v)
  if v == "" and what:find("non-empty", 1, true) then return what .. " expected, got an empty string" end
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

--- A reply message's content as text, by the core's rule for `res.text`:
-- a string as it is; a list of parts (Mistral's Magistral: thinking parts,
-- then text parts) its parts of type "text" joined with no separator; nil
-- when it holds no text.
function M.content_text (content)
  if type(content) == "string" then return content end
  if type(content) ~= "table" then return nil end
  local texts = {}
  for _, part in ipairs(content) do
    if type(part) == "table" and part.type == "text" and type(part.text) == "string" then
      texts[#texts + 1] = part.text
    end
  end
  if #texts == 0 then return nil end
  return table_concat(texts)
end

--- `s` as quoted in a message: at most `max` bytes of it, cut at a UTF-8
-- character's start, and "..." when cut (a server's megabyte-long id or
-- message went whole into every line that named it).
-- @tparam string s
-- @tparam number max
-- @treturn string
function M.clip (s, max)
  if #s <= max then return s end
  local n = max
  while n > 0 and s:byte(n + 1) >= 128 and s:byte(n + 1) < 192 do n = n - 1 end
  return s:sub(1, n) .. "..."
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

--- Any error value as text, never raising for it: `tostring(e)`, unless
-- that raises or gives no string (a `__tostring` that returns nil, or
-- raises itself): then a line that says so. (An allocation may still
-- fail: out of memory.)
-- @param e
-- @treturn string
function M.error_text (e)
  local ok, s = pcall(tostring, e)
  if ok and type(s) == "string" then return s end
  local why = "its __tostring gave a " .. type(s) .. ", not a string"
  if not ok then why = "tostring raised " .. (type(s) == "string" and s or "a " .. type(s)) end
  return "(" .. type(e) .. " error value: " .. why .. ")"
end
local error_text = M.error_text

-- Whether `s` is only an address as Lua shows one: "table: 0x55d0c...",
-- "file (0x55d0c...)" (an open io file's __tostring), as
-- src/error_report.c's only_address reads it.
local function only_address (s)
  return s:find("^[%w_%.%*]*[:%s%(]*0[xX]%x+%)?$") ~= nil
    or s:find("^[%w_%.%*]+[:%s%(]+%x%x%x%x%x%x%x%x+%)?$") ~= nil   -- (Windows: no "0x")
end

--- The text of an error value a callback raised, worded as the core words
-- it (src/error_report.c error_text: the same value, the same words from a
-- stream callback and from a task; they differed for a __tostring that
-- failed, or an address with a message behind __index): a string, number or
-- boolean as it is; its `__tostring`'s text unless only an address, or
-- "(a table value whose __tostring failed)" when it raises or gives no
-- string; a table's raw string `message`; else "a table error value
-- without a message". No __index runs; only memory may raise.
-- @param e
-- @treturn string
function M.value_text (e)
  local t = type(e)
  if t == "string" or t == "number" or t == "boolean" then return tostring(e) end
  local mt = compat_getmetatable(e)   -- (the real one, as luaL_getmetafield reads it)
  if type(mt) == "table" and rawget(mt, "__tostring") ~= nil then
    local ok, s = pcall(tostring, e)
    if not ok or type(s) ~= "string" then return string_format("(a %s value whose __tostring failed)", t) end
    if not only_address(s) then return s end
  end
  local m = t == "table" and rawget(e, "message")
  if type(m) == "string" then return m end
  return string_format("a %s error value without a message", t)
end
local value_text = M.value_text

--- `e` as an error object: `e` itself if it is one, else an error of kind
-- "callback" that says where it came from (`what`: "on_done", "a task"...),
-- with `e`'s text (`value_text`: never an address, "table: 0x55a9...",
-- which means nothing), the name of `what` by `error_text`, a value not a string kept whole
-- as `value` (a game's `error({ reason = "npc_left" })`).
-- Any value will do (nil, a table whose `__tostring` raises or returns
-- nil): only memory can make it fail.
-- @tparam string what
-- @param e
-- @tparam[opt] string traceback
-- @treturn aigc.error
function M.callback_error (what, e, traceback)
  if is_error(e) then return e end
  local value
  if type(e) ~= "string" then value = e end
  return core.error { kind = "callback", message = "error in " .. error_text(what) .. ": " .. value_text(e),
                      traceback = traceback, value = value }
end

--- The error with every string in it scrubbed of the client's secrets
-- (`engine:scrub`), and with `params` those of that call
-- (`aigc.credentials.call_credentials`): for errors built in Lua that may hold server text.
-- @tparam table client
-- @param err
-- @tparam[opt] table params the call's
-- @return err
function M.scrub (client, err, params)
  if not is_error(err) then return err end
  local engine = rawget(client, "_engine")
  local secrets, lines
  if type(params) == "table" then   -- (aigc.credentials requires this module: taken at the call)
    secrets, lines = require("aigc.credentials").call_credentials(params)
  end
  local ok, v = M.pcall_passing_interrupts(engine.scrub, engine, err, secrets, lines)
  if ok and v ~= nil then return v end
  -- Fails closed: an error that could not be scrubbed (no memory for it)
  -- keeps only what holds no server or user text.
  return core.error { kind = err.kind, status = err.status, retry_after = err.retry_after,
                      retryable = err.retryable, retries = err.retries,
                      message = "the error's text is withheld: it could not be scrubbed of secrets ("
                                .. (ok and "no result" or type(v) == "string" and v:match("^[%w ]+$") and v
                                    or "an error") .. ")" }
end

local WITHHELD = "[text withheld: it could not be scrubbed of secrets]"

--- A text with the client's secrets replaced (`engine:scrub`), failing
-- closed: a text that could not be scrubbed (no memory for it) is not
-- shown at all. An interrupt (a host's watchdog) is raised on.
-- @tparam table client
-- @tparam string text
-- @treturn string
function M.scrubbed_text (client, text)
  local engine = rawget(client, "_engine")
  if engine == nil then return text end
  local ok, v = M.pcall_passing_interrupts(engine.scrub, engine, text)
  if ok and type(v) == "string" then return v end
  return WITHHELD
end

--- Reports an error of Lua code the loop ran (a task, a delivery) the way
-- the engine reports callback errors: once, to the client's
-- `error_handler`, else kept for `step()`, else stderr. When the engine's
-- report itself failed (out of memory), its text goes to stderr scrubbed
-- as the engine's would be, failing closed: a text that could not be made
-- or scrubbed (no memory, no engine to scrub with) is not written, a fixed
-- line is.
-- @tparam table client
-- @param err
function M.report (client, err)
  local engine = rawget(client, "_engine")
  local ok = engine ~= nil and pcall(engine.report, engine, err)
  if ok then return end
  local made, text = pcall(value_text, err)
  text = made and engine ~= nil and M.scrubbed_text(client, text) or WITHHELD
  pcall(io.stderr.write, io.stderr, "aigc: ", text, "\n")
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

--- A number in a URL's query or a header's value: a whole float as a whole
-- number (Lua 5.3+ writes `4/2` as "2.0", which a server's integer
-- parameter, `limit`, may refuse), another as a JSON body writes it
-- (tostring gives "1,5" under a comma-decimal LC_NUMERIC: a C host's
-- setlocale(LC_ALL, "")); NaN and infinities as tostring writes them.
-- @tparam number v
-- @treturn string
local function query_number (v)
  if v == math.floor(v) and v >= -2^53 and v <= 2^53 then return string_format("%.0f", v + 0) end   -- (+ 0: -0.0 as 0)
  if v == v and v > -math.huge and v < math.huge then return core.json.encode(v) end
  return tostring(v)
end

M.number_text = query_number

--- Where a list has a hole that `ipairs` stops at (`{ a, nil, c }`): the
-- index of the first nil and the smallest integer key set past it, or nil
-- when `ipairs` reaches every positive integer key. (A list read with
-- ipairs dropped what came after a hole, where the encoder refuses it.)
-- @tparam table t
-- @treturn[1] integer the first nil index
-- @treturn[1] integer the first key set after it
function M.list_hole (t)
  local n = 0
  while t[n + 1] ~= nil do n = n + 1 end
  local past
  for k in pairs(t) do
    if type(k) == "number" and k > n and k == math.floor(k) and (past == nil or k < past) then past = k end
  end
  if past then return n + 1, past end
  return nil
end

-- "sparse array: [2] is nil, [3] is not" of a list with a hole, or nil.
function M.hole_problem (t)
  local hole, past = M.list_hole(t)
  if hole then return string_format("sparse array: [%d] is nil, [%d] is not", hole, past) end
  return nil
end

--- Percent-encodes everything but the unreserved characters (RFC 3986).
-- @param s a string (or a value tostring makes one of)
-- @treturn string
function M.urlencode (s)
  if type(s) == "number" then s = query_number(s) end
  return (string.gsub(tostring(s), "[^%w%-%._~]", function (c)
    return string.format("%%%02X", string.byte(c))
  end))
end

--- The most `read_file` reads of a file unless told less.
M.READ_MAX = 1024 * 1024 * 1024

-- "1 MiB", "1 GiB" or "N bytes".
local function size_text (n)
  if n % 1073741824 == 0 then return string_format("%d GiB", n / 1073741824) end
  if n % 1048576 == 0 then return string_format("%d MiB", n / 1048576) end
  return n .. " bytes"
end

--- The whole of a file, read in binary mode, at most `max` bytes (default
-- `READ_MAX`): the path may name a pipe or a device (`AIGC_CONFIG=<(...)`,
-- a mistaken /dev/zero), whose end no size tells; read whole, /dev/zero
-- took all memory.
-- @tparam string path
-- @tparam[opt] number max
-- @tparam[opt] string what the file, for the error past max ("a config file")
-- @treturn[1] string its bytes
-- @treturn[2] nil
-- @treturn[2] string "PATH: why" (a directory reads as "Is a directory"; past
-- max: "PATH: more than 1 MiB, the most a config file may be")
-- @treturn[2] the third result of `io.open`, or "limit" past max
-- @usage local text, err = util.read_file("config.lua", 1048576, "a config file")
function M.read_file (path, max, what)
  local f, err, code = io.open(path, "rb")
  if not f then return nil, err, code end
  max = max or M.READ_MAX
  local parts, n = {}, 0
  while n <= max do
    local s, rerr = f:read(65536)
    if not s then
      f:close()
      if rerr then return nil, path .. ": " .. tostring(rerr) end
      return table_concat(parts)
    end
    n = n + #s
    parts[#parts + 1] = s
  end
  f:close()
  return nil, path .. ": more than " .. size_text(max) .. ", the most " .. (what or "a file read whole") .. " may be",
    "limit"
end

--- Whether `id` can be one segment of a URL path once `urlencode`d: a
-- non-empty string, not a dot segment ("." and ".." are resolved by curl
-- and by servers, whatever the encoding: a server-chosen ".." would reach
-- another endpoint).
-- @param id any value
-- @treturn boolean
function M.is_path_segment (id)
  return type(id) == "string" and id ~= "" and id ~= "." and id ~= ".."
end

--- What a misuse message says of `v`, which is not a path segment
-- (`is_path_segment`): "WHAT expected, got '..'" (the value of a string).
-- @tparam string what
-- @param v
-- @treturn string
function M.not_path_segment (what, v)
  if v == core.null then return what .. " expected, got null" end   -- (a server's JSON null)
  if type(v) == "string" then return what .. " expected, got " .. (v == "" and "an empty string" or "'" .. v .. "'") end
  return M.expected(what, v)
end

--- A query string of a map of parameters, sorted by name ("a=1&b=x%20y").
-- @tparam table map
-- @treturn string
function M.encode_query (map)
  local keys = {}
  for k in pairs(map) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = map[k]
    for _, one in ipairs(type(v) == "table" and v or { v }) do   -- (a list: a name repeated, parse_query)
      parts[#parts + 1] = M.urlencode(k) .. "=" .. M.urlencode(one)
    end
  end
  return table.concat(parts, "&")
end

local function unescape (s)
  return (string.gsub(s, "%%(%x%x)", function (h) return string.char(tonumber(h, 16)) end))
end
--- `s` with its `%XX` escapes decoded (a query's parts).
M.percent_decode = unescape

--- The parameters of a query string ("a=1&b=x%20y") as a map, decoded
-- (`+` is a space, as in a form); a name without `=` has "" as its value; a
-- name given more than once ("a=1&a=2") the list of its values, in order
-- (all of them sent, as httpx sends them: `encode_query`).
-- @tparam string q
-- @treturn table
function M.parse_query (q)
  local map = {}
  for part in string.gmatch(q, "[^&]+") do
    local k, v = string.match(part, "^([^=]*)=(.*)$")
    if not k then k, v = part, "" end
    k, v = unescape((string.gsub(k, "%+", " "))), unescape((string.gsub(v, "%+", " ")))
    if k ~= "" then
      local had = map[k]
      if had == nil then map[k] = v
      elseif type(had) == "table" then had[#had + 1] = v
      else map[k] = { had, v } end
    end
  end
  return map
end

--- The values of a query map's entry (`parse_query`'s): a list of one
-- unless the name was repeated.
function M.query_values (v)
  return type(v) == "table" and v or { v }
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

-- Standard base64 with padding (what an HTTP Basic credential is).
local function base64 (s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = string.byte(s, i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local d1, d2 = math.floor(n / 262144) % 64, math.floor(n / 4096) % 64
    local d3, d4 = math.floor(n / 64) % 64, n % 64
    out[#out + 1] = string.sub(B64, d1 + 1, d1 + 1) .. string.sub(B64, d2 + 1, d2 + 1)
      .. (b and string.sub(B64, d3 + 1, d3 + 1) or "=") .. (c and string.sub(B64, d4 + 1, d4 + 1) or "=")
  end
  return table.concat(out)
end
M.base64 = base64


local function is_space (b) return b == 32 or (b >= 9 and b <= 13) end

--- `s` without its trailing bytes for which `tail(byte)` is true (default:
-- white space). A byte loop: `gsub("%s+$", "")` and a lazy `"(.-)%s*$"`
-- are quadratic in a run of spaces inside `s` (a piped prompt of 100 kB of
-- spaces, then text: 54 s before anything was sent).
-- @tparam string s
-- @tparam[opt] function tail
-- @treturn string
function M.trim_end (s, tail)
  local byte = s.byte
  local j = #s
  tail = tail or is_space
  while j >= 1 and tail(byte(s, j)) do j = j - 1 end
  return s:sub(1, j)
end

--- `s` without its leading white space, nor its trailing bytes for which
-- `tail(byte)` is true (default: white space), in byte loops (`trim_end`).
-- @tparam string s
-- @tparam[opt] function tail
-- @treturn string
function M.trim (s, tail)
  local byte = s.byte
  local i, n = 1, #s
  while i <= n and is_space(byte(s, i)) do i = i + 1 end
  return M.trim_end(s:sub(i), tail)
end

--- `n` bytes from /dev/urandom as 2n hex digits, or nil where there is
-- none. The random source of what must differ between processes and
-- between the lua_States of one (math.random starts from one seed on
-- LuaJIT and 5.1-5.3, and after a game's math.randomseed(42) on any Lua):
-- Idempotency-Keys, the cache's temporary names.
-- @tparam integer n
-- @treturn[opt] string
function M.random_hex (n)
  local f = io.open("/dev/urandom", "rb")
  local b = f and f:read(n)
  if f then f:close() end
  if not (b and #b == n) then return nil end
  return (b:gsub(".", function (c) return string_format("%02x", c:byte()) end))
end

-- Params whose callbacks belong to each call, not to the params table
-- (sentences.stream's, which keep a splitter): their stream callback ->
-- a function that makes a request's params anew (client.lua's submit).
-- Weak keys: the entry goes with the params' callback.
M.per_call = setmetatable({}, { __mode = "k" })

-- Params -> the list a request submitted with them goes into (a
-- strategy's `started`, which a cut cancels): engine:submit stores it
-- there itself (`into[req] = req`), so that no Lua instruction -- where a
-- host's watchdog may cut -- lies between the request's start and its
-- place in the list (client.lua's submit). Weak keys.
M.submit_into = setmetatable({}, { __mode = "k" })

--- Makes `path` an empty file 0600, whatever the umask, when nothing is
-- there (what is there is left as it is): for a file of private text (a
-- log, a tape), which the Lua's io.open made with the umask's mode (0644:
-- other users could read the prompts and replies).
-- @tparam string path
function M.make_private (path)
  if core.file_kind(path) ~= nil then return end
  core.create_private(path)   -- (no shell: a fork and exec each time before)
end

--- Whether `path` names an open descriptor (/dev/stdout, /dev/stderr,
-- /dev/fd/N, /proc/self/fd/N): what it leads to is the shell's, not a file
-- to replace or to put another beside.
-- @tparam string path
-- @treturn boolean
function M.names_descriptor (path)
  return path:find("^/dev/std[oe][ur][tr]$") ~= nil or path:find("^/dev/fd/%d+$") ~= nil
      or path:find("^/proc/self/fd/%d+$") ~= nil
end

--- `path` with its links resolved (a file to make: its folder's), for a
-- lock beside it (`PATH.lock`): taken on the name given, two links to one
-- file (or a link and the file) took two locks, and two writers wrote it
-- at once. A dangling link (to a file not yet made) is followed to its
-- target (realpath fails on it: the lock went beside the link). The path
-- as given where even its folder cannot be resolved.
-- @tparam string path
-- @treturn string
function M.real_path (path)
  local real = core.realpath(path)
  if real then return real end
  for _ = 1, 40 do   -- (the kernel's own bound on links in a row)
    local target = core.readlink(path)
    if not target then break end
    path = target:sub(1, 1) == "/" and target or (path:match("^(.*/)[^/]*$") or "") .. target
  end
  real = core.realpath(path)
  if real then return real end
  local dir, base = path:match("^(.*/)([^/]+)$")
  real = core.realpath(dir or ".")
  return real and real:gsub("/$", "") .. "/" .. (base or path) or path
end

return M
