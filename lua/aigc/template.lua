--- Prompt templates: a prompt with `{{variables}}`, a system prompt, a
-- default model and params, kept in a file and rendered into chat params.
--
-- A template file is a Lua table of literal data (read, never run: no
-- names, calls or functions, so it can call nothing) or a JSON object,
-- with the fields:
--
--  - `prompt` (string): the user message, with `{{name}}` placeholders;
--  - `system` (string, optional): the system prompt, placeholders allowed;
--  - `model` (string, optional): the default model;
--  - `params` (table, optional): request params (`temperature`, `max_tokens`, ...);
--  - `defaults` (table, optional): default values of variables;
--  - `schema` (table, optional): a JSON schema for structured output;
--  - `description` (string, optional): one line for `aigc templates list`.
--
-- A placeholder is `{{name}}` or `{{ name }}`; `name` is letters, digits,
-- `_` and `-`, and dots walk into tables (`{{user.name}}`). Strings are
-- inserted as they are, booleans as `true`/`false`, numbers as JSON writes
-- them (integers without `.0`), tables as JSON; any other value (a
-- function, a table JSON cannot hold) is an error naming the variable. A
-- value is inserted once, never read for placeholders again. Text between `{{` and `}}` that
-- is not a name is left alone. Text between `{% raw %}` and `{% endraw %}`
-- (Jinja's escape) is sent as it is, without the two tags: a literal
-- `{{name}}` (a prompt that shows template code); a `{% raw %}` with no
-- `{% endraw %}` after it is plain text, as before. A variable with no value is an error that
-- names every missing variable — never an empty string sent by surprise
-- (JSON null, `aigc.null`, counts as no value: the default, else missing).
--
-- @module aigc.template
-- @usage
-- local template = require "aigc.template"
-- local t = template.new { system = "You are terse.", prompt = "Summarise: {{input}}",
--                          model = "gpt-4o-mini", params = { temperature = 0 } }
-- local params = assert(t:render { input = "a long text" })
-- local res = client:chat(params)

local core = require "aigc.core"
local util = require "aigc.util"
util.own_module()

local json_encode, json_decode, null = core.json.encode, core.json.decode, core.null
local error, getmetatable, ipairs, pairs, pcall, setmetatable, tonumber, tostring, type = error, getmetatable,
  ipairs, pairs, pcall, setmetatable, tonumber, tostring, type
local math_floor = math.floor
local string_format = string.format
local table_concat, table_sort = table.concat, table.sort

local M = {}

local Template = {}
Template.__index = Template
Template.__name = "aigc.template"

local PLACEHOLDER = "{{%s*([%w_%-%.]+)%s*}}"
local RAW_OPEN, RAW_CLOSE = "{%%%s*raw%s*%%}", "{%%%s*endraw%s*%%}"

-- The text in pieces: odd ones are template text, even ones the text of a
-- `{% raw %}...{% endraw %}` block, to send as it is. A `{% raw %}` without
-- an `{% endraw %}` after it stays template text (it was plain text
-- before the escape existed: such a template means what it meant).
local function pieces (text)
  local list, pos = {}, 1
  while true do
    local s, e = text:find(RAW_OPEN, pos)
    local cs, ce
    if s then cs, ce = text:find(RAW_CLOSE, e + 1) end
    if not cs then list[#list + 1] = text:sub(pos); return list end
    list[#list + 1] = text:sub(pos, s - 1)
    list[#list + 1] = text:sub(e + 1, cs - 1)
    pos = ce + 1
  end
end

-- (a misuse raised at a fixed stack level pointed nowhere, or inside aigc,
-- when the call came through pcall or a tail call: util's raise finds the
-- user's line, as everywhere else in the API)
local function argerror (fname, msg, argn)
  util.argerror(fname, argn or 1, msg)
end

local function template_error (message, fields)
  local t = { kind = "template", message = message }
  for k, v in pairs(fields or {}) do t[k] = v end
  return core.error(t)
end

-- A value as template text: strings as they are, integral numbers without
-- ".0" (on every Lua), other numbers as a JSON body writes them (the
-- shortest text that reads back, with a '.' whatever the C locale:
-- tostring's 14 digits sent 1234567.1234568 for 1234567.123456789), tables
-- as JSON. nil for what has no text: a function, a userdata, a table JSON
-- cannot hold (tostring sent its address, "function: 0x55...", to the model),
-- and why.
local function as_text (v)
  local t = type(v)
  if t == "string" then return v end
  if t == "boolean" then return tostring(v) end
  if t == "number" then
    if v == math_floor(v) and v > -2^53 and v < 2^53 then return string_format("%d", v) end
    local ok, s = pcall(json_encode, v)
    if ok and not s:find("%.0$") then return s end
    return string_format("%.17g", v)   -- (integral beyond 2^53, which LuaJIT's encoder refuses; NaN, inf)
  end
  if t == "table" then
    local ok, s = pcall(json_encode, v)
    if ok then return s end
    return nil, "a table JSON cannot hold (" .. (tostring(s):match("%((value.*)%)$") or tostring(s)) .. ")"
  end
  return nil, "a " .. t .. " has no text (a string, number, boolean or table expected)"
end

-- The value of a dotted name in vars, or nil.
local function lookup (vars, name)
  local v = vars[name]
  if v ~= nil or not name:find(".", 1, true) then return v end
  -- (an empty part names nothing: `{{.}}` was every variable, as JSON)
  if name:find("^%.") or name:find("%.$") or name:find("..", 1, true) then return nil end
  v = vars
  for part in name:gmatch("[^%.]+") do
    if type(v) ~= "table" then return nil end
    v = v[part]
  end
  return v
end

--- The names of the variables a text uses, in order of first use.
-- @tparam string text
-- @treturn table list of names
-- @usage template.variables("{{a}} and {{ b }} and {{a}}") --> { "a", "b" }
function M.variables (text)
  if type(text) ~= "string" then argerror("variables", "string expected, got " .. type(text)) end
  local seen, list = {}, {}
  for i, piece in ipairs(pieces(text)) do
    if i % 2 == 1 then   -- (a raw block's text has no variables)
      for name in piece:gmatch(PLACEHOLDER) do
        if not seen[name] then seen[name] = true; list[#list + 1] = name end
      end
    end
  end
  return list
end

--- Substitutes `{{name}}` placeholders.
-- @tparam string text
-- @tparam table vars name -> value
-- @treturn[1] string the text with every placeholder replaced
-- @treturn[2] nil
-- @treturn[2] aigc.error err of kind "template" with `missing` (the names without a value)
-- @usage template.render("Hello {{name}}!", { name = "Ada" }) --> "Hello Ada!"
function M.render (text, vars)
  if type(text) ~= "string" then argerror("render", "string expected, got " .. type(text)) end
  if vars ~= nil and type(vars) ~= "table" then
    argerror("render", "table expected, got " .. type(vars), 2)
  end
  vars = vars or {}
  local missing, seen, bad = {}, {}, nil
  local function value (name)
    local v = lookup(vars, name)
    -- (JSON null, from a dataset's case, is no value either: not "userdata: (nil)")
    if v == nil or v == null then
      if not seen[name] then seen[name] = true; missing[#missing + 1] = name end
      return nil
    end
    local s, why = as_text(v)
    if s == nil and bad == nil then bad = { name = name, why = why } end
    return s
  end
  -- (each piece substituted once and joined: a value is never read again)
  local out = pieces(text)
  for i = 1, #out, 2 do out[i] = out[i]:gsub(PLACEHOLDER, value) end
  out = table_concat(out)
  if #missing > 0 then
    return nil, template_error("missing template variable" .. (#missing > 1 and "s" or "") .. ": "
                               .. table_concat(missing, ", "), { missing = missing })
  end
  if bad then
    return nil, template_error(string_format("template variable '%s': %s", bad.name, bad.why),
                               { missing = {}, variable = bad.name })
  end
  return out
end


-- {======================================================
-- Data files (templates and configuration)
-- =======================================================

-- Compiles text as a chunk with the given environment, on 5.1 and later
-- (5.1 and LuaJIT have setfenv and a load that takes no mode).
local setfenv, loadstring = rawget(_G, "setfenv"), rawget(_G, "loadstring")
local function load_in (text, chunkname, env)
  if setfenv then
    local f, err = loadstring(text, chunkname)
    if f then setfenv(f, env) end
    return f, err
  end
  return load(text, chunkname, "t", env)
end

-- A data file is read, never run: this reader takes the Lua syntax of
-- literal data only -- table constructors, strings, numbers (with a unary
-- minus), true, false, nil, `..` between strings and numbers, comments --
-- and refuses anything else (a name, a call, a function, an operator) where
-- it stands. So a file cannot call a string method through the string
-- metatable (`("z"):rep(1e9)`), loop forever, or read anything: it is
-- data by construction, not by a sandbox. Each string literal's own text
-- is handed to Lua's compiler (`return "..."`), so escapes mean exactly
-- what they mean in Lua on the version running.

local DataError = {}   -- the error value the reader raises, caught in `read_data`
local MAX_NESTING = 200

local function data_error (r, fmt, ...)
  error(setmetatable({ message = string_format("%s:%d: " .. fmt, r.name, r.line, ...) }, DataError), 0)
end

-- Advances r.pos over `n` bytes, counting the lines they hold.
local function advance (r, n)
  local chunk = r.text:sub(r.pos, r.pos + n - 1)
  for _ in chunk:gmatch("\n") do r.line = r.line + 1 end
  r.pos = r.pos + n
end

-- The long bracket `[==[` at r.pos: the length of the whole `[==[ ... ]==]`,
-- or nil when there is no long bracket there.
local function long_bracket (r, at)
  local eq = r.text:match("^%[(=*)%[", at)
  if eq == nil then return nil end
  local _, e = r.text:find("]" .. eq .. "]", at + #eq + 2, true)
  if e == nil then data_error(r, "unfinished long string or comment") end
  return e - at + 1
end

-- Skips white space and comments.
local function skip (r)
  while true do
    local ws = r.text:match("^%s+", r.pos)
    if ws then advance(r, #ws) end
    if r.text:sub(r.pos, r.pos + 1) ~= "--" then return end
    local n = long_bracket(r, r.pos + 2)
    if n then advance(r, 2 + n)
    else advance(r, #r.text:match("^[^\n]*", r.pos)) end
  end
end

-- A literal's text compiled and run as `return <literal>`: a string or a
-- long string, whose extent the reader found (so nothing else is in it).
local function literal (r, n)
  local token = r.text:sub(r.pos, r.pos + n - 1)
  local f = load_in("return " .. token, "=" .. r.name, {})
  local ok, v = false, nil
  if f then ok, v = pcall(f) end
  if not ok or type(v) ~= "string" then data_error(r, "malformed string") end
  advance(r, n)
  return v
end

-- The short string at r.pos (quote q): its length, quotes included.
local function short_string (r, q)
  local text, i = r.text, r.pos + 1
  while true do
    local c = text:sub(i, i)
    if c == q then return i - r.pos + 1 end
    if c == "" or c == "\n" or c == "\r" then data_error(r, "unfinished string") end
    if c == "\\" then
      local nx = text:sub(i + 1, i + 2)
      i = i + ((nx == "\r\n" or nx == "\n\r") and 3 or 2)
    else
      i = i + 1
    end
  end
end

-- What is at r.pos, for a message.
local function near (r)
  local s = r.text:match("^[%w_]+", r.pos) or r.text:match("^%S", r.pos)
  if s == nil then return "end of file" end
  if not s:find("^[%w%p]") then return "byte " .. s:byte() end
  return "'" .. s .. "'"
end

local ONLY_DATA = "(a data file holds tables, strings, numbers, booleans and nil only: no names, calls or functions)"

local read_value   -- forward

-- A table constructor at r.pos (`{`).
local function read_table (r, depth)
  if depth > MAX_NESTING then data_error(r, "tables nested deeper than %d levels", MAX_NESTING) end
  advance(r, 1)
  local t, n = {}, 0
  while true do
    skip(r)
    local text, pos = r.text, r.pos
    if text:sub(pos, pos) == "}" then advance(r, 1); return t end
    local name = text:match("^([%a_][%w_]*)%s*=[^=]", pos)
    local k
    if name then
      advance(r, #text:match("^[%a_][%w_]*%s*=", pos))
      k = name
    elseif text:sub(pos, pos) == "[" and not long_bracket(r, pos) then
      advance(r, 1)
      skip(r)
      k = read_value(r, depth + 1)
      skip(r)
      if text:sub(r.pos, r.pos) ~= "]" then data_error(r, "']' expected") end
      advance(r, 1)
      skip(r)
      if text:sub(r.pos, r.pos) ~= "=" then data_error(r, "'=' expected") end
      advance(r, 1)
      if k == nil then data_error(r, "a table key is nil") end
    else
      n = n + 1
      k = n
    end
    skip(r)
    t[k] = read_value(r, depth + 1)
    skip(r)
    local sep = text:sub(r.pos, r.pos)
    if sep == "," or sep == ";" then advance(r, 1)
    elseif sep ~= "}" then data_error(r, "',' or '}' expected near %s", near(r)) end
  end
end

-- One value without `..`: a table, string, number, true, false or nil.
local function read_primary (r, depth)
  local text, pos = r.text, r.pos
  local c = text:sub(pos, pos)
  if c == "{" then return read_table(r, depth) end
  if c == '"' or c == "'" then return literal(r, short_string(r, c)) end
  if c == "[" then
    local n = long_bracket(r, pos)
    if n then return literal(r, n) end
  end
  if c == "-" then
    advance(r, 1)
    skip(r)
    local v = read_primary(r, depth)
    if type(v) ~= "number" then data_error(r, "'-' goes before a number only") end
    return -v
  end
  local num = text:match("^%.?%d[%w%.]*", pos)
  if num then
    local hex = num:find("^0[xX]")
    local exp = num:match(hex and "[pP]$" or "[eE]$") and text:match("^[%+%-]%d+", pos + #num)
    num = num .. (exp or "")
    local v = util.number(num)   -- ("0.5" under any locale)
    if v == nil then data_error(r, "malformed number '%s'", num) end
    advance(r, #num)
    return v
  end
  local word = text:match("^[%a_][%w_]*", pos)
  if word == "true" or word == "false" or word == "nil" then
    advance(r, #word)
    if word == "nil" then return nil end
    return word == "true"
  end
  if word then data_error(r, "'%s' is not data %s", word, ONLY_DATA) end
  data_error(r, "unexpected %s %s", near(r), ONLY_DATA)
end

-- A value, with `..` between strings and numbers. A chain's pieces are
-- joined once at its end (joined one by one, each join copied all before
-- it: a chain of n pieces cost n^2 / 2 of them).
function read_value (r, depth)
  local v = read_primary(r, depth)
  local chain
  while true do
    skip(r)
    if r.text:sub(r.pos, r.pos + 1) ~= ".." or r.text:sub(r.pos + 2, r.pos + 2) == "." then break end
    advance(r, 2)
    skip(r)
    local w = read_primary(r, depth)
    local tv, tw = type(v), type(w)
    if (tv ~= "string" and tv ~= "number") or (tw ~= "string" and tw ~= "number") then
      data_error(r, "'..' joins strings and numbers only")
    end
    chain = chain or { v }
    chain[#chain + 1] = w
  end
  if chain then return table_concat(chain) end   -- (numbers as `..` writes them)
  return v
end

-- The value of a data file's Lua text (an optional `return`, one value),
-- or nil and the message naming the line.
local function read_data (text, name)
  local r = { text = text, pos = 1, line = 1, name = name }
  local ok, v = pcall(function ()
    skip(r)
    if text:find("^return%f[^%w_]", r.pos) then advance(r, 6); skip(r) end
    local value = read_value(r, 0)
    skip(r)
    if text:sub(r.pos, r.pos) == ";" then advance(r, 1); skip(r) end
    if r.pos <= #text then data_error(r, "unexpected %s after the value", near(r)) end
    return value
  end)
  if ok then return v, nil end
  if getmetatable(v) == DataError then return nil, v.message end
  error(v, 0)
end

--- Parses the text of a data file: a Lua table constructor (with or
-- without a leading `return`) of literal data only -- tables, strings,
-- numbers, booleans, nil, `..` between strings, comments; no names, calls,
-- functions or other operators, so it runs nothing -- or a JSON object.
-- @tparam string text
-- @tparam[opt="data"] string name for error messages
-- @treturn[1] table
-- @treturn[2] nil
-- @treturn[2] string message
-- @usage local t = assert(template.load_data('{ prompt = "Hi {{name}}" }'))
function M.load_data (text, name)
  if type(text) ~= "string" then argerror("load_data", "string expected, got " .. type(text)) end
  name = name or "data"
  -- A UTF-8 BOM (a file saved by Notepad) is no data: Lua's own loader skips it too.
  if text:sub(1, 3) == "\239\187\191" then text = text:sub(4) end
  local first = text:match("^%s*(.)")
  if first == nil then return nil, name .. ": empty file" end
  if first == "{" or first == "[" then
    -- JSON first: a JSON object is not always a valid Lua table constructor.
    local t, jerr = json_decode(text)
    if type(t) == "table" then return t end
    -- A .json file is JSON: its error at its line, not the Lua reader's
    -- (which stops at the first ':' on line 1, wherever the mistake is).
    -- So is a file that begins as only JSON does, `{"name":` (a JSON
    -- config.lua, which the README allows).
    local json_like = name:find("%.json$") or text:find('^%s*{%s*"[^"\n]*"%s*:')
    local at = json_like and tostring(jerr):match("^invalid JSON at byte (%d+): (.*)$")
    if at then
      local _, lines = text:sub(1, tonumber(at) - 1):gsub("\n", "")   -- (the lines before the byte)
      local why = tostring(jerr):gsub("^invalid JSON at byte %d+: ", "invalid JSON: ")
      return nil, name .. ":" .. (lines + 1) .. ": " .. why
    end
  end
  local v, err = read_data(text, name)
  if err then return nil, err end
  if type(v) ~= "table" then return nil, name .. ": must be a table, got " .. type(v) end
  return v
end

local read_file = util.read_file
M.read_file = read_file

--- The most a template file may be (its path may name a pipe or a device).
M.MAX_BYTES = 16 * 1024 * 1024

-- }======================================================


-- {======================================================
-- Templates
-- =======================================================

local FIELDS = {
  name = "string", prompt = "string", system = "string", model = "string", params = "table",
  defaults = "table", schema = "table", description = "string", path = "string",
}

--- Makes a template from a table (see the module's fields).
-- @tparam table spec
-- @treturn aigc.template
-- @usage local t = template.new { prompt = "Translate to French: {{input}}" }
function M.new (spec)
  if type(spec) ~= "table" then argerror("new", "table expected, got " .. type(spec)) end
  for k, v in pairs(spec) do
    local want = FIELDS[k]
    if want == nil then argerror("new", "unknown template field '" .. tostring(k) .. "'") end
    if type(v) ~= want then
      argerror("new", string_format("template field '%s' must be a %s, got %s", k, want, type(v)))
    end
  end
  if spec.prompt == nil and spec.system == nil then
    argerror("new", "a template needs a prompt or a system prompt")
  end
  -- (a key that is not a name, `params = { [1] = 2 }` or a list, reached the
  -- call: `aigc -t NAME` stopped with an internal error naming no file)
  for k in pairs(spec.params or {}) do
    if type(k) ~= "string" then
      argerror("new", string_format("template field 'params': keys must be strings, got %s", type(k)))
    end
  end
  local t = {}
  for k, v in pairs(spec) do t[k] = v end
  t.params, t.defaults = t.params or {}, t.defaults or {}
  return setmetatable(t, Template)
end

--- The variables the template uses (system prompt first), without those
-- that have defaults unless `all` is true.
-- @tparam[opt] boolean all
-- @treturn table names
-- @usage for _, v in ipairs(t:variables()) do print(v) end
function Template:variables (all)
  local seen, list = {}, {}
  for _, text in ipairs { self.system or "", self.prompt or "" } do
    for _, name in ipairs(M.variables(text)) do
      if not seen[name] and (all or self.defaults[name] == nil) then
        seen[name] = true
        list[#list + 1] = name
      end
    end
  end
  return list
end

--- Renders the template into chat params: `messages` (system, then user),
-- the model, the params, and `schema` when the template has one. Params in
-- `extra` override the template's (a `model` there too).
-- @tparam[opt] table vars variable values (over the template's `defaults`)
-- @tparam[opt] table extra params
-- @treturn[1] table chat params for `client:chat`
-- @treturn[2] nil
-- @treturn[2] aigc.error err of kind "template" (`err.missing` lists the variables without a value)
-- @usage local params = assert(t:render({ input = text }, { temperature = 0.2 }))
function Template:render (vars, extra)
  if vars ~= nil and type(vars) ~= "table" then argerror("render", "table expected, got " .. type(vars)) end
  if extra ~= nil and type(extra) ~= "table" then
    argerror("render", "table expected, got " .. type(extra), 2)
  end
  local all = {}
  for k, v in pairs(self.defaults) do all[k] = v end
  for k, v in pairs(vars or {}) do if v ~= null then all[k] = v end end   -- (null: the default, if any)
  local messages, missing, seen, errs = {}, {}, {}, nil
  for _, part in ipairs { { "system", self.system }, { "user", self.prompt } } do
    if part[2] then
      local text, err = M.render(part[2], all)
      if text then
        messages[#messages + 1] = { role = part[1], content = text }
      elseif #err.missing == 0 then   -- (a value with no text)
        if self.name then err.message = "template '" .. self.name .. "': " .. err.message end
        return nil, err
      else
        errs = err
        -- (a set: a scan of the list per name was quadratic, 11 s for 32,000 names)
        for _, name in ipairs(err.missing) do
          if not seen[name] then seen[name] = true; missing[#missing + 1] = name end
        end
      end
    end
  end
  if errs then
    return nil, template_error((self.name and ("template '" .. self.name .. "': ") or "")
      .. "missing variable" .. (#missing > 1 and "s" or "") .. ": " .. table_concat(missing, ", "),
      { missing = missing })
  end
  local params = {}
  for k, v in pairs(self.params) do params[k] = v end
  params.model = self.model
  if self.schema then params.schema = self.schema end
  for k, v in pairs(extra or {}) do params[k] = v end
  params.messages = messages
  return params
end

function Template:__tostring ()
  return "aigc.template (" .. (self.name or "unnamed") .. ")"
end

--- Loads a template file (`.lua` table or `.json` object).
-- @tparam string path
-- @treturn[1] aigc.template
-- @treturn[2] nil
-- @treturn[2] aigc.error err of kind "template"
-- @usage local t = assert(template.load("templates/summary.lua"))
function M.load (path)
  if type(path) ~= "string" then argerror("load", "string expected, got " .. type(path)) end
  local text, rerr = read_file(path, M.MAX_BYTES, "a template")
  if not text then return nil, template_error("cannot read template: " .. tostring(rerr)) end
  local data, derr = M.load_data(text, path)
  if not data then return nil, template_error("bad template " .. derr) end
  data.name = data.name or path:match("([^/\\]+)%.%w+$") or path
  data.path = path
  local ok, t = pcall(M.new, data)
  if not ok then
    local why = tostring(t):gsub("^.-bad argument #1 to 'new' %((.*)%)$", "%1")
    return nil, template_error("bad template " .. path .. ": " .. why)
  end
  return t
end

-- A template name is a file name: no directories, no dots first.
local function valid_name (name)
  return type(name) == "string" and name:find("^[%w_][%w_%-%.]*$") ~= nil
end
M.valid_name = valid_name

--- The path of a template by name in a directory: `DIR/NAME.lua`, else
-- `DIR/NAME.json` if that exists.
-- @tparam string dir
-- @tparam string name
-- @treturn string|nil path (nil for an invalid name)
-- @usage print(template.path_of(dir, "summary"))
function M.path_of (dir, name)
  if not valid_name(name) then return nil end
  local lua_path = dir .. "/" .. name .. ".lua"
  local json_path = dir .. "/" .. name .. ".json"
  local f = io.open(json_path, "rb")
  if not f then return lua_path end
  f:close()
  local g = io.open(lua_path, "rb")   -- (closed: a handle left to the GC leaked until it ran)
  if not g then return json_path end
  g:close()
  return lua_path
end

--- Finds and loads a template by name in a directory.
-- @tparam string dir
-- @tparam string name
-- @treturn[1] aigc.template
-- @treturn[2] nil
-- @treturn[2] aigc.error err
-- @usage local t = assert(template.find(os.getenv("HOME") .. "/.config/aigc/templates", "summary"))
function M.find (dir, name)
  if not valid_name(name) then
    return nil, template_error("invalid template name '" .. tostring(name) .. "' (letters, digits, _ - .)")
  end
  local path = M.path_of(dir, name)
  local f = io.open(path, "rb")
  if not f then return nil, template_error("no template named '" .. name .. "' in " .. dir) end
  f:close()
  local t, err = M.load(path)
  if t then t.name = name end
  return t, err
end

--- The templates of a directory, sorted by name: `{ name =, path =,
-- description = }` (a file that does not load has `error` instead).
-- @tparam string dir
-- @treturn table
-- @usage for _, t in ipairs(template.list(dir)) do print(t.name, t.description) end
function M.list (dir)
  local names = {}
  local p = io.popen("ls -1 " .. string_format("'%s'", dir:gsub("'", "'\\''")) .. " 2>/dev/null")
  if p then
    for line in p:lines() do
      local name = line:match("^(.+)%.lua$") or line:match("^(.+)%.json$")
      if name and valid_name(name) then names[name] = true end
    end
    p:close()
  end
  local list = {}
  for name in pairs(names) do
    local t, err = M.find(dir, name)
    list[#list + 1] = t and { name = name, path = t.path, description = t.description }
                      or { name = name, error = tostring(err) }
  end
  table_sort(list, function (a, b) return a.name < b.name end)
  return list
end

-- }======================================================

M.Template = Template

return M
