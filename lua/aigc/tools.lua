--- Toolsets: Lua functions a model can call.
--
-- `aigc.tools { ... }` makes a toolset from tool definitions. Passed as
-- `tools` to `client:chat` (or `chat_async`, `stream` through a
-- conversation), it runs the tool-call loop (see `aigc.dialogue`): each
-- call the model makes runs as a Lua function with its decoded arguments,
-- the result goes back as a `role = "tool"` message, and the model is asked
-- again until it answers. A plain array of tool definitions is not a
-- toolset and passes through to the API untouched.
--
-- A tool function receives `(args, call)`: the decoded arguments (a table,
-- already validated against `parameters`) and the call
-- `{ id =, name =, arguments = <raw JSON text>, round =, client =, messages = }`
-- (`messages`: a copy of the history so far, made when the tool first reads
-- it, so `pairs(call)` lists it only after; changing it changes nothing).
-- It returns the result: a string goes to the model as it is, any other
-- value JSON-encoded (`nil` as `null`). Returning `nil, message` (or
-- `false, message`) or raising
-- an error sends `{"error": "<message>"}` to the model instead, so that it
-- can recover; so do arguments that are not JSON or do not match the
-- schema, and calls to tools that do not exist. A tool may call the client
-- itself: inside a task (and inside `chat_async`) those calls yield.
--
-- What goes to the model is a third party's to read: an error message goes
-- without the position Lua puts in front of it (`/home/ada/npc.lua:12: `:
-- the tool's chunk, one on the stack where it raised, a `.lua` file's in a
-- message the tool passes on; a `config.yaml:12: ` the tool wrote is kept)
-- and, in the tool loop, with the client's secrets redacted; bytes that
-- are not UTF-8 in an output or error are replaced by U+FFFD
-- (JSON text must be UTF-8; the call goes on). The call's record keeps
-- what the tool gave: the whole message, the traceback, the raw result.
-- A tool must not yield outside aigc (its own `coroutine.yield`): the
-- dialogue it runs in then fails with kind "callback", in every form
-- (blocking, in a task, in the user's own coroutine, `chat_async`); the
-- tool is stopped there, and nothing goes to the model.
--
-- @module aigc.tools
-- @usage
-- local tools = aigc.tools {
--   { name = "get_weather", description = "Current weather in a city",
--     parameters = { type = "object", properties = { city = { type = "string" } }, required = { "city" } },
--     fn = function (args) return { city = args.city, sky = "sunny", celsius = 21 } end },
-- }
-- local res = assert(client:chat { messages = msgs, tools = tools })
-- print(res.text, #res.tool_calls_made)

local core = require "aigc.core"
local check = require "aigc.check"
local compat = require "aigc.compat"
local util = require "aigc.util"
local task = require "aigc.task"
local schema = require "aigc.schema"

local json_encode, json_decode = core.json.encode, core.json.decode
local thread_interrupt = core.thread_interrupt
local getinfo = compat.getinfo   -- (these two degrade without a debug library: see compat.lua)
local table_concat = table.concat
local utf8_len, pack = compat.utf8_len, compat.pack
local array, is_array = core.array, core.is_array
local getmetatable, ipairs, next, pairs, pcall, setmetatable, tostring, type =
  getmetatable, ipairs, next, pairs, pcall, setmetatable, tostring, type
local string_format = string.format
local traceback = compat.traceback
local argerror, expected, field_error = util.argerror, util.expected, util.field_error

util.own_module()

local M = {}

local Toolset = {}
Toolset.__index = Toolset
Toolset.__name = "aigc.toolset"

local EMPTY_PARAMS = { type = "object", properties = {} }
-- (strict mode wants every object closed and its properties listed in
-- `required`: OpenAI answers 400 to a strict tool given EMPTY_PARAMS)
local EMPTY_STRICT = { type = "object", properties = {}, required = array {}, additionalProperties = false }

local unencodable   -- (defined with wire_schema, below)

-- Checks one tool definition (at `path` of argument #1 of `fname`);
-- returns the normalized tool.
local function check_tool (t, path, fname)
  if type(t) ~= "table" then field_error(fname, 1, path, expected("tool definition table", t)) end
  local name = t.name
  if type(name) ~= "string" or not name:find("^[%w_%-]+$") or #name > 64 then
    field_error(fname, 1, path .. ".name", "1 to 64 letters, digits, '_' or '-' expected, got " .. util.describe(name))
  end
  if not check.is_callable(t.fn) then field_error(fname, 1, path .. ".fn", expected("function", t.fn)) end
  for k, want in pairs { description = "string", parameters = "table", strict = "boolean" } do
    if t[k] ~= nil and type(t[k]) ~= want then field_error(fname, 1, path .. "." .. k, expected(want, t[k])) end
  end
  return {
    name = name, description = t.description, parameters = t.parameters, fn = t.fn, strict = t.strict,
  }
end

--- Makes a toolset. Also `aigc.tools(list, opts)`.
-- @tparam table list tool definitions `{ name =, description =, parameters =, fn =, strict = }`:
-- `name` (letters, digits, `_`, `-`), `fn` required; `parameters` a JSON
-- schema table (default: an object with no properties; for a `strict` tool a
-- closed one, `additionalProperties = false` and `required = []`, as strict mode wants)
-- @tparam[opt] table opts `validate = false` skips checking arguments
-- against `parameters`
-- @treturn aigc.toolset
-- @usage
-- local ts = aigc.tools {
--   { name = "add", parameters = { type = "object", properties = { a = { type = "number" },
--       b = { type = "number" } }, required = { "a", "b" } },
--     fn = function (args) return args.a + args.b end },
-- }
function M.new (list, opts)
  if type(list) ~= "table" then argerror("tools", 1, expected("table", list)) end
  if opts ~= nil and type(opts) ~= "table" then argerror("tools", 2, expected("table", opts)) end
  if opts and opts.validate ~= nil and type(opts.validate) ~= "boolean" then
    field_error("tools", 2, "opts.validate", expected("boolean", opts.validate))
  end
  local self = setmetatable({ _list = {}, _by_name = {}, _validate = not (opts and opts.validate == false) }, Toolset)
  for k in pairs(list) do
    if not compat.is_integer(k) then field_error("tools", 1, util.path("tools", k), "a list of tools expected") end
  end
  local hole = util.hole_problem(list)
  if hole then field_error("tools", 1, "tools", hole) end
  for i, t in ipairs(list) do self:_add(t, "tools[" .. i .. "]", "tools") end
  return self
end

function Toolset:_add (t, path, fname)
  local tool = check_tool(t, path, fname)
  if self._validate and tool.parameters then
    local ok, why = schema.check_schema(tool.parameters)
    if not ok then field_error(fname, 1, path .. ".parameters", why) end
  end
  local bad = tool.parameters and unencodable(M.wire_schema(tool.parameters))
  if bad then field_error(fname, 1, path .. ".parameters", bad) end
  if self._by_name[tool.name] then
    field_error(fname, 1, path .. ".name", "duplicate tool name '" .. tool.name .. "'")
  end
  self._list[#self._list + 1] = tool
  self._by_name[tool.name] = tool
  self._wire = nil
end

--- Adds a tool.
-- @tparam table tool `{ name =, description =, parameters =, fn = }`
-- @treturn aigc.toolset self
-- @usage ts:add { name = "now", fn = function () return os.date("!%H:%M") end }
function Toolset:add (tool)
  if getmetatable(self) ~= Toolset then util.bad_self("add", "aigc.toolset", self) end
  self:_add(tool, "tool", "add")
  return self
end

--- The tool named `name`, or nil.
-- @tparam string name
-- @treturn table|nil `{ name =, description =, parameters =, fn = }`
-- @usage assert(ts:get("add"))
function Toolset:get (name)
  return self._by_name[name]
end

--- The tools' names, in order.
-- @treturn table
-- @usage print(table.concat(ts:names(), ", "))
function Toolset:names ()
  local out = {}
  for i, t in ipairs(self._list) do out[i] = t.name end
  return out
end

-- The keywords of a schema node whose value is a schema (or, `items` in
-- old drafts, a list of them), a list of schemas, a map of schemas.
local SUBSCHEMA = { items = true, additionalItems = true, additionalProperties = true, ["not"] = true,
  ["if"] = true, ["then"] = true, ["else"] = true, contains = true, propertyNames = true,
  unevaluatedItems = true, unevaluatedProperties = true, anyOf = true, oneOf = true, allOf = true,
  prefixItems = true }
local SCHEMA_MAP = { properties = true, patternProperties = true, ["$defs"] = true, definitions = true,
  dependentSchemas = true }

local wire_schema

-- An empty table with t's metatable (an array mark), if it has one to give.
local function like (t)
  local mt = getmetatable(t)
  return type(mt) == "table" and setmetatable({}, mt) or {}
end

local function wire_map (map, seen, list)
  if type(map) ~= "table" then return map end
  local out = like(map)
  for k, v in pairs(map) do
    out[k] = (list and type(k) ~= "number") and v or wire_schema(v, seen)
  end
  return out
end

-- A copy of schema `s` as it goes on the wire: `required = {}` (what a Lua
-- table literal for "none required" is) encodes as the object `{}`, and
-- OpenAI refuses such a tool (400: the schema's `required` must be an
-- array); it goes as `[]`. A property named "required" is left alone.
function wire_schema (s, seen)
  if type(s) ~= "table" then return s end
  if seen[s] then return seen[s] end
  local out = like(s)
  seen[s] = out
  for k, v in pairs(s) do
    if k == "required" and type(v) == "table" and next(v) == nil and not is_array(v) then
      v = array {}
    elseif SUBSCHEMA[k] then
      v = (type(v) == "table" and v[1] ~= nil) and wire_map(v, seen, true) or wire_schema(v, seen)
    elseif SCHEMA_MAP[k] then
      v = wire_map(v, seen)
    end
    out[k] = v
  end
  return out
end

-- Why a schema (as wire_schema made it) cannot go in a request, or nil:
-- a function, a cycle, NaN in it. Said where the schema was given (the
-- toolset's line, `params.schema`), not as the request's encoding error,
-- which named 'chat_async' and a path the user never wrote.
function unencodable (s)
  local ok, e = pcall(json_encode, s)
  if ok then return nil end
  e = tostring(e)
  return "not JSON-encodable (" .. (e:match("bad argument #1 to 'encode' %((.*)%)$") or e) .. ")"
end
M.unencodable = unencodable

--- The tool definitions as the API wants them in `tools`.
-- @treturn table an array of `{ type = "function", ["function"] = { name, description, parameters, strict } }`
-- @usage client:chat { messages = msgs, tools = ts:definitions() }  -- no loop: plain definitions
function Toolset:definitions ()
  if self._wire == nil then
    local wire = array {}
    for i, t in ipairs(self._list) do
      wire[i] = { type = "function", ["function"] = {
        name = t.name, description = t.description, strict = t.strict,
        parameters = t.parameters and wire_schema(t.parameters, {}) or (t.strict and EMPTY_STRICT or EMPTY_PARAMS),
      } }
    end
    self._wire = wire
  end
  return self._wire
end

--- The number of tools (also `#ts` on Lua 5.2+; 5.1 and LuaJIT ignore
-- `__len` on tables).
-- @treturn integer
-- @usage print(ts:count())
function Toolset:count ()
  return #self._list
end

Toolset.__len = Toolset.count

function Toolset:__tostring ()
  return "aigc.toolset (" .. table.concat(self:names(), ", ") .. ")"
end

-- {======================================================
-- What goes back to the model
-- =======================================================

-- A tool's output and errors go to a third party and into the next
-- request's JSON: they must be valid UTF-8 (JSON text is), and an error
-- must not carry the user's file layout.

--- Replaces each byte that is not part of well-formed UTF-8 by U+FFFD (the
-- replacement character): the text still says what it said, and encodes.
-- @tparam string s
-- @treturn string
-- @usage tools.repair_utf8("caf\233") --> "caf\239\191\189"
local function repair_utf8 (s)
  if utf8_len(s) then return s end
  local out, i = {}, 1
  while true do
    local ok, bad = utf8_len(s, i)
    if ok then
      out[#out + 1] = s:sub(i)
      break
    end
    out[#out + 1] = s:sub(i, bad - 1)
    out[#out + 1] = "\239\191\189"   -- U+FFFD
    i = bad + 1
  end
  return table_concat(out)
end

-- Whether `prefix` (what comes before ":<line>: " in an error message) is
-- a chunk name: one of `sources` when they are given (Lua's own chunk
-- names), else a file path, a "[string ...]" chunk, a truncated source.
-- (Given sources, what only looked like a file was stripped too: a tool's
-- own 'error("config.yaml:12: bad key", 0)' reached the model as "bad key".)
local function looks_like_chunk (prefix, sources)
  if prefix:find("\n", 1, true) then return false end
  if sources and sources[prefix] then return true end
  if prefix:find("^%[string \".*\"%]$") then return true end
  -- (and a Lua file's position in a message of another chunk the tool ran
  -- and passes on, from its own pcall: the host's paths are not the model's
  -- to read. Anything else, 'config.yaml:12: ', is the tool's own text.)
  if sources then return prefix:find("%.lua$") ~= nil and not prefix:find(": ", 1, true) end
  if prefix:find(": ", 1, true) then return false end   -- (a sentence, not a file name)
  -- (a URL's port: "fetch http://host:8080: refused" lost all but "refused";
  -- a chunk named like a URL is still stripped when it is in `sources`)
  if prefix:find("://", 1, true) then return false end
  return prefix:find("^%.%.%.") ~= nil or prefix:find("[/\\]") ~= nil or prefix:find("%.%w+$") ~= nil
end

--- An error message without the position Lua puts in front of it
-- (`/home/ada/game/npc.lua:12: the door is locked` -> `the door is
-- locked`), nested positions included. Given `sources` (a set of chunk
-- names, as `debug.getinfo` gives them in `short_src`), only those and
-- "[string ...]" chunks are stripped, whatever they look like; without,
-- prefixes that look like a file or a chunk.
-- @tparam string message
-- @tparam[opt] table sources
-- @treturn string
-- @usage tools.strip_position("npc.lua:12: locked") --> "locked"
local function strip_position (message, sources)
  -- (by index, the message copied once: copying what is left after each
  -- prefix took time as the square of its length, and a message may quote
  -- the model's own text, `assert(io.open(args.path))`'s, prefixes and all)
  local i = 1
  while true do
    local prefix, after = message:match("^(.-):%d+: ()", i)
    if not prefix or not looks_like_chunk(prefix, sources) then return i == 1 and message or message:sub(i) end
    i = after
  end
end

-- The chunk names of the Lua functions on the stack, from `level` up (what
-- positions in an error raised there can name).
local function stack_sources (level, into, co)
  into = into or {}
  while true do
    local info
    if co then info = getinfo(co, level, "S") else info = getinfo(level + 1, "S") end
    if info == nil then return into end
    if info.what ~= "C" then into[info.short_src] = true end
    level = level + 1
  end
end

-- The chunk names a tool's error may start with: its function's (none
-- without a debug library), then those of the stack where it was raised.
local function sources_of (fn)
  local info = type(fn) == "function" and getinfo(fn, "S")
  return info and { [info.short_src] = true } or {}
end

local function error_content (message, sources)
  return json_encode { error = strip_position(repair_utf8(message), sources) }
end

-- The text of an error value a tool raised or returned: an aigc error's
-- message (a call the tool made failed); any other value as every aigc
-- callback error words it (util.value_text, the C core's words too): its
-- __tostring, unless only an address; its own `message`; else what it is.
-- Never tostring()'s "table: 0x55a9..." nor a file's "file (0x55a9...)",
-- an address that changes between runs and means nothing to the model;
-- no __index runs (a `message` an error class gave all its instances came
-- before the __tostring that described this one).
local function message_of (e)
  if util.is_error(e) then return e.message end
  return util.value_text(e)
end

-- }======================================================

-- Decodes a call's arguments into a table: nil and a message when they are
-- not a JSON object. OpenAI sends the object as JSON text; some compatible
-- servers (Hugging Face TGI, some llama.cpp builds) send the object itself,
-- already decoded with the reply: taken as it is (an array is refused alike).
local function decode_args (raw)
  if raw == nil or raw == core.null or (type(raw) == "string" and not raw:find("%S")) then
    return {}
  end
  if type(raw) == "table" then
    if is_array(raw) or getmetatable(raw) ~= nil then return nil, "arguments must be a JSON object" end
    -- (a copy: the object is also the history's, which goes in the next
    -- request; a tool that fills in defaults or keeps a handle in its
    -- arguments, as in a table of its own, must not change it)
    return json_decode(json_encode(raw))
  end
  if type(raw) ~= "string" then return nil, "arguments must be a JSON string, got " .. type(raw) end
  local v, err = json_decode(raw)
  if v == nil then return nil, "arguments are not valid JSON (" .. tostring(err) .. ")" end
  -- (`"null"`: what a server sends that serializes the null arguments a
  -- model wrote in its text (json.dumps(None)); no arguments, as a null is)
  if v == core.null then return {} end
  -- (the object encoded twice, JSON text of JSON text: vLLM's hermes parser
  -- with Granite 4, which writes its arguments as a string; vllm#54964)
  if type(v) == "string" and v:find("^%s*{") then
    local inner = json_decode(v)
    if type(inner) == "table" and not is_array(inner) then return inner end
  end
  if type(v) ~= "table" or is_array(v) then return nil, "arguments must be a JSON object" end
  return v
end

-- The content for the model of a tool's result that is not a string nor
-- nil: its JSON, else an error content (`rec` then says it failed).
-- (What is wrong and where, without the encoder's "bad argument #1 to
-- 'encode'"; what a result's __pairs or __len raised is worded as a tool's
-- error, its position stripped before the sentence is put around it: after
-- it, the sentence's "(" and a file's "/" looked like a chunk name.)
local function result_content (name, result, rec, sources)
  local ok, s = pcall(json_encode, result)
  if ok then return s, rec end
  rec.ok = false
  local why = type(s) == "string" and (s:match("bad argument #1 to 'encode' %((.*)%)$") or s) or message_of(s)
  local said = "the result of %s is not JSON-encodable (%s)"
  rec.error = string_format(said, name, why)
  return error_content(string_format(said, name, strip_position(repair_utf8(why), sources)), {}), rec
end

-- A key of `ctx` (the tool loop's): a function that makes the call's
-- `messages` when the tool first reads them. A copy of the history for
-- every call of a round took time as the square of the calls: a reply of
-- 10,000 calls cost 2.5 s of copying, one of 40,000 some 40 s.
local HISTORY = {}
M.HISTORY = HISTORY

-- The tool's `call` argument: the call's id, name and raw JSON text
-- (whichever form the server sent), and ctx's fields.
local function call_info (call, name, raw, ctx)
  local info = { id = call.id, name = name, arguments = type(raw) == "table" and json_encode(raw) or raw }
  if not ctx then return info end
  for k, v in pairs(ctx) do if info[k] == nil and k ~= HISTORY then info[k] = v end end
  local history = ctx[HISTORY]
  if history and info.messages == nil then
    setmetatable(info, { __index = function (t, k)
      if k ~= "messages" then return nil end
      local h = history()
      rawset(t, k, h)
      return h
    end })
  end
  return info
end

--- Runs one tool call the model made.
-- Never raises for the tool's own failures: they become an error result.
-- @tparam table call a tool call from a reply (`{ id =, type = "function", ["function"] = { name, arguments } }`)
-- @tparam[opt] table ctx extra fields for the tool's `call` argument (`round`, `client`, `messages`)
-- @treturn string|nil the content for the `role = "tool"` message; nil when the tool yielded
-- outside aigc (its own `coroutine.yield`: not an error of the tool, nothing for the model; the
-- record says so, `yielded = true`)
-- @treturn table the record: `{ id =, name =, arguments =, raw_arguments =, ok =, result =, error =,
-- traceback =, error_value =, yielded = }` (`error_value`: an error that was not a string, as given)
-- @usage
-- for _, call in ipairs(res.choices[1].message.tool_calls) do
--   local content = ts:call(call)
--   msgs[#msgs + 1] = { role = "tool", tool_call_id = call.id, content = content }
-- end
function Toolset:call (call, ctx)
  if getmetatable(self) ~= Toolset then util.bad_self("call", "aigc.toolset", self) end
  if type(call) ~= "table" then argerror("call", 1, expected("tool call table", call)) end
  if ctx ~= nil and type(ctx) ~= "table" then argerror("call", 2, expected("table", ctx)) end
  local f = type(call["function"]) == "table" and call["function"] or call
  local name, raw = f.name, f.arguments
  local rec = { id = call.id, name = name, raw_arguments = raw, ok = false }
  if ctx then rec.round = ctx.round end
  local tool = self._by_name[name]
  -- (models trained on transcripts where tools are namespaced call
  -- `functions.get_weather`: told "unknown tool", they repeat it)
  if tool == nil and type(name) == "string" then tool = self._by_name[name:match("^functions%.(.+)$") or ""] end
  if tool == nil then
    rec.error = string_format("unknown tool '%s' (available: %s)", tostring(name), table.concat(self:names(), ", "))
    return error_content(rec.error, {}), rec
  end
  local args, aerr = decode_args(raw)
  if args == nil then
    rec.error = string_format("invalid arguments for %s: %s", name, aerr)
    return error_content(rec.error, {}), rec
  end
  rec.arguments = args
  if self._validate and tool.parameters then
    local ok, violations = schema.validate(args, tool.parameters)
    if not ok then
      rec.violations = violations
      rec.error = string_format("invalid arguments for %s: %s", name, schema.describe(violations))
      return error_content(rec.error, {}), rec
    end
    -- (an integer written 3.0 comes as one, as structured output's do; not in a
    -- table the server sent as it is, which is the reply's own)
    if type(raw) == "string" then args = schema.integers(args, tool.parameters); rec.arguments = args end
  end
  local info = call_info(call, name, raw, ctx)
  -- The model gets error messages without positions; the record keeps
  -- them whole, with the traceback.
  local tb, cut
  local sources = sources_of(tool.fn)
  -- (task.guarded_xpcall: the tool runs in a coroutine of its own, so a
  -- yield outside aigc is seen, not taken for an error of the tool; inside
  -- a task its waits yield, on Lua 5.1 too; the handler gets the coroutine
  -- where the error was raised)
  local packed = pack(task.guarded_xpcall(tool.fn, function (e, co)
    -- (a host's debug hook -- Ctrl-C, a watchdog -- that cut the tool is
    -- no error of the tool, nothing for the model: it goes on up, as out
    -- of any callback; thread_interrupt marks it, so aigc passes it on)
    if thread_interrupt(co, e) then cut = true; return e end
    tb = traceback(co, message_of(e))
    stack_sources(0, sources, co)   -- (the coroutine's stack is still where the error was raised)
    return e
  end, args, info))
  if packed[1] == nil then
    rec.yielded = true
    rec.error = string_format("tool %s yielded outside aigc (its own coroutine.yield, not an aigc wait)", name)
    return nil, rec
  end
  if cut then error(packed[2], 0) end
  if not packed[1] then
    rec.error = message_of(packed[2])
    if type(packed[2]) ~= "string" then rec.error_value = packed[2] end   -- (what the tool raised)
    rec.traceback = tb
    return error_content(rec.error, sources), rec
  end
  local result, rerr = packed[2], packed[3]
  -- (`false, msg` too: Lua's other failure idiom; the message was dropped
  -- and the model read "false", not why the tool failed)
  if (result == nil or result == false) and packed.n >= 3 and rerr ~= nil then
    rec.error = message_of(rerr)
    if type(rerr) ~= "string" then rec.error_value = rerr end
    return error_content(rec.error, sources), rec
  end
  rec.ok = true
  rec.result = result
  if type(result) == "string" then return repair_utf8(result), rec end
  if result == nil then return "null", rec end
  return result_content(name, result, rec, sources)
end

--- Whether a value is a toolset.
-- @param v
-- @treturn boolean
-- @usage if tools.is_toolset(params.tools) then ... end
function M.is_toolset (v)
  local mt = getmetatable(v)
  return type(mt) == "table" and mt.__name == "aigc.toolset"
end

M.Toolset = Toolset
M.error_content = error_content
M.repair_utf8 = repair_utf8
M.wire_schema = function (s) return wire_schema(s, {}) end
M.strip_position = strip_position

-- `aigc.tools { ... }` calls M.new.
return setmetatable(M, { __call = function (_, list, opts)
  local ts = M.new(list, opts)
  return ts
end })
