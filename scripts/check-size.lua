--- Issue 11's size limits, checked on the sources (run by `make test` as the
-- suite "size", one result):
--   no file in src/ over 1,300 lines, none in lua/ over 800 (the devserver
--   package included), and no function over 80 lines, C or Lua -- except the
--   functions named in EXCEPTIONS below (the JSON parser's one switch over
--   value kinds), each with its reason.
--
--   lua5.4 scripts/check-size.lua [--verbose] [FILE...]
--
-- With no FILE it checks src/*.c, src/*.h and every .lua under lua/. A
-- function's length counts from the line of its name (C) or of `function`
-- (Lua) to the line of its closing `}` / `end`, both included; nested
-- functions count inside their parent too. Comments and strings are skipped
-- by small lexers here (no compiler or luacheck needed), so a `}` or an
-- `end` in a string or a comment changes nothing. Before the sources, the
-- checker runs on made-up ones with known answers and stops (exit 2) if it
-- gets one wrong: a checker that cannot see a long function would pass
-- everything. Exit status 0 when all is within the limits, 1 otherwise.
-- Runs on Lua 5.1-5.4 and LuaJIT.

local LIMITS = {
  src_file = 1300,   -- lines per file in src/
  lua_file = 800,    -- lines per file in lua/
  func = 80,         -- lines per function, C and Lua
}

-- "file:function" -> why it may be longer than LIMITS.func.
local EXCEPTIONS = {
  ["src/json.c:parse_value"] = "the JSON parser's one switch over value kinds (issue 11 allows it by name)",
}

local verbose = false
local files = {}
for _, a in ipairs(arg) do
  if a == "--verbose" then verbose = true else files[#files + 1] = a end
end

local function read_file (path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s = f:read("*a")
  f:close()
  return s
end

local function count_lines (text)
  local _, n = text:gsub("\n", "")
  if #text > 0 and text:sub(-1) ~= "\n" then n = n + 1 end
  return n
end

-- {======================================================
-- C: tokens, skipping comments, strings, characters and preprocessor lines
-- =======================================================

-- The significant tokens of C source `text`: { {t = text, line = n} ... }.
local function c_tokens (text)
  local toks, i, line, n = {}, 1, 1, #text
  local at_line_start = true
  while i <= n do
    local c = text:sub(i, i)
    if c == "\n" then
      line = line + 1; i = i + 1; at_line_start = true
    elseif c:match("%s") then
      i = i + 1
    elseif at_line_start and c == "#" then
      -- a directive, with its backslash-continued lines
      repeat
        local e = text:find("\n", i, true) or n + 1
        local cont = text:sub(e - 1, e - 1) == "\\"
        if e <= n then line = line + 1 end
        i = e + 1
      until not cont or i > n
    elseif text:sub(i, i + 1) == "//" then
      i = (text:find("\n", i, true) or n + 1)
    elseif text:sub(i, i + 1) == "/*" then
      local e = text:find("*/", i + 2, true) or n - 1
      local _, nl = text:sub(i, e + 1):gsub("\n", "")
      line = line + nl; i = e + 2
      at_line_start = false
    elseif c == '"' or c == "'" then
      local j = i + 1
      while j <= n do
        local d = text:sub(j, j)
        if d == "\\" then
          if text:sub(j + 1, j + 1) == "\n" then line = line + 1 end
          j = j + 2
        elseif d == c or d == "\n" then break
        else j = j + 1 end
      end
      toks[#toks + 1] = { t = "literal", line = line }
      i = j + 1; at_line_start = false
    elseif c:match("[%a_]") then
      local w = text:match("^[%w_]+", i)
      toks[#toks + 1] = { t = w, line = line, ident = true }
      i = i + #w; at_line_start = false
    else
      toks[#toks + 1] = { t = c, line = line }
      i = i + 1; at_line_start = false
    end
  end
  return toks
end

-- The function definitions of C source `text`: { {name =, first =, last =} ... }.
-- A definition is a `{` at file level whose previous token is `)`; its name
-- is the identifier before the `(` matching that `)` (skipping
-- __attribute__((...)) between the declarator and the body).
local function c_functions (text)
  local toks, found, depth = c_tokens(text), {}, 0
  local open
  for k, tok in ipairs(toks) do
    if tok.t == "{" then
      if depth == 0 and toks[k - 1] and toks[k - 1].t == ")" then
        local j, name = k - 1, nil
        while j > 0 and not name do
          local level = 0
          repeat   -- back to the `(` matching toks[j]
            if toks[j].t == ")" then level = level + 1 elseif toks[j].t == "(" then level = level - 1 end
            j = j - 1
          until level == 0 or j == 0
          local before = toks[j]
          if before and before.ident and before.t ~= "__attribute__" then
            name = before
          elseif before and before.t == "__attribute__" and toks[j - 1] and toks[j - 1].t == ")" then
            j = j - 1
          else
            break
          end
        end
        open = { name = name and name.t or "?", first = name and name.line or tok.line }
      end
      depth = depth + 1
    elseif tok.t == "}" then
      depth = depth - 1
      if depth == 0 and open then
        open.last = tok.line
        found[#found + 1] = open
        open = nil
      end
    end
  end
  return found
end

-- }======================================================


-- {======================================================
-- Lua: tokens, skipping comments and strings; blocks matched by keyword
-- =======================================================

-- The position after the long bracket that opens at i (`[[`, `[==[`), and
-- its closing text; nil when there is none at i.
local function long_bracket (text, i)
  local eq = text:match("^%[(=*)%[", i)
  if not eq then return nil end
  return i + #eq + 2, "]" .. eq .. "]"
end

-- The significant tokens of Lua source `text`: { {t = word or symbol, line = n} ... }.
local function lua_tokens (text)
  local toks, i, line, n = {}, 1, 1, #text
  if text:sub(1, 2) == "#!" then i = text:find("\n", 1, true) or n + 1 end
  local function skip_to (j)   -- advance to j, counting newlines
    local _, nl = text:sub(i, j - 1):gsub("\n", "")
    line = line + nl; i = j
  end
  while i <= n do
    local c = text:sub(i, i)
    if c == "\n" then
      line = line + 1; i = i + 1
    elseif c:match("%s") then
      i = i + 1
    elseif text:sub(i, i + 1) == "--" then
      local after, close = long_bracket(text, i + 2)
      if after then
        local _, e = text:find(close, after, true)
        skip_to((e or n) + 1)
      else
        i = text:find("\n", i, true) or n + 1
      end
    elseif c == "[" and long_bracket(text, i) then
      local after, close = long_bracket(text, i)
      local _, e = text:find(close, after, true)
      toks[#toks + 1] = { t = "literal", line = line }
      skip_to((e or n) + 1)
    elseif c == '"' or c == "'" then
      local j = i + 1
      while j <= n do
        local d = text:sub(j, j)
        if d == "\\" then j = j + 2
        elseif d == c or d == "\n" then break
        else j = j + 1 end
      end
      toks[#toks + 1] = { t = "literal", line = line }
      skip_to(j + 1)
    elseif c:match("[%a_]") then
      local w = text:match("^[%w_]+", i)
      toks[#toks + 1] = { t = w, line = line, ident = true }
      i = i + #w
    elseif c:match("%d") or (c == "." and text:sub(i + 1, i + 1):match("%d")) then
      local num = text:match("^0[xX][%x%.]*[pP][%+%-]?%d+", i) or text:match("^0[xX][%x%.]*", i)
        or text:match("^[%d%.]+[eE][%+%-]?%d+", i) or text:match("^[%d%.]+", i)
      toks[#toks + 1] = { t = "literal", line = line }
      i = i + #num
    elseif c == "." and text:sub(i, i + 1) == ".." then
      -- `..` and `...` are tokens of their own: `return ...` then `end` is
      -- not the field access `x.end`
      local dots = text:sub(i, i + 2) == "..." and "..." or ".."
      toks[#toks + 1] = { t = dots, line = line }
      i = i + #dots
    else
      toks[#toks + 1] = { t = c, line = line }
      i = i + 1
    end
  end
  return toks
end

-- The name of the function whose `function` keyword is toks[k]: the name
-- after it (`function a.b:c`), else what it is assigned to (`x = function`,
-- `local x = function`, `{ x = function`), else "(anonymous)".
local function lua_function_name (toks, k)
  local parts, j = {}, k + 1
  while toks[j] and toks[j].ident do
    parts[#parts + 1] = toks[j].t
    if toks[j + 1] and (toks[j + 1].t == "." or toks[j + 1].t == ":") then
      parts[#parts + 1] = toks[j + 1].t; j = j + 2
    else break end
  end
  if #parts > 0 then return table.concat(parts) end
  local prev, name = toks[k - 1], toks[k - 2]
  if prev and prev.t == "=" and name and name.ident then
    local chain, m = { name.t }, k - 3
    while toks[m] and toks[m].t == "." and toks[m - 1] and toks[m - 1].ident do
      table.insert(chain, 1, toks[m - 1].t .. "."); m = m - 2
    end
    return table.concat(chain)
  end
  return "(anonymous)"
end

local LUA_OPENS = { ["function"] = true, ["if"] = true, ["do"] = true, ["repeat"] = true }

-- The functions of Lua source `text`: { {name =, first =, last =} ... };
-- raises on unbalanced blocks (a lexer mistake, or a file that does not parse).
local function lua_functions (text)
  local toks, found, stack = lua_tokens(text), {}, {}
  for k, tok in ipairs(toks) do
    local w = tok.ident and tok.t
    if w and LUA_OPENS[w] and not (toks[k - 1] and toks[k - 1].t == ".") then
      stack[#stack + 1] = { kind = w, first = tok.line,
                            name = w == "function" and lua_function_name(toks, k) or nil }
    elseif (w == "end" or w == "until") and not (toks[k - 1] and toks[k - 1].t == ".") then
      local top = table.remove(stack)
      if not top or (w == "until") ~= (top.kind == "repeat") then
        error(("unbalanced `%s` at line %d"):format(w, tok.line), 0)
      end
      if top.kind == "function" then
        found[#found + 1] = { name = top.name, first = top.first, last = tok.line }
      end
    end
  end
  if #stack > 0 then error(("`%s` at line %d is never closed"):format(stack[#stack].kind, stack[#stack].first), 0) end
  return found
end

-- }======================================================


-- {======================================================
-- The checker's own test: made-up sources with known answers
-- =======================================================

local function self_test ()
  local problems = {}
  local function expect (what, got, want)
    if got ~= want then
      problems[#problems + 1] = ("%s: got %s, want %s"):format(what, tostring(got), tostring(want))
    end
  end
  local body77, body78 = {}, {}
  for i = 1, 77 do body77[i] = "  x = x + 1;" end
  for i = 1, 78 do body78[i] = "  x = x + 1;" end
  -- C: a tricky prelude (braces in strings, comments and macros), a function
  -- of 81 lines with the brace on its own line, one of 80, an attribute.
  local c_src = table.concat({
    '#define BLOCK(x) do { \\', '  x; } while (0)',
    'static const char *s = "}{ {";  /* } */ // {',
    'static const int table[] = { 1, 2, 3 };',
    'struct point { int x, y; };',
    'static int',
    'long_one (int x)',                          -- line 7: 81 lines, to the `}` at 87
    '{',
    table.concat(body77, "\n"),
    '  if (x) { return \'}\'; }',
    '}',
    'int short_one (int x) __attribute__((unused)) {',   -- 1 + 78 + 1 = 80 lines
    table.concat(body78, "\n"),
    '  return x; }',
  }, "\n") .. "\n"
  local fns = c_functions(c_src)
  expect("C functions found", #fns, 2)
  local function length (f) return f and f.last - f.first + 1 end
  expect("C first name", fns[1] and fns[1].name, "long_one")
  expect("C first length", length(fns[1]), 81)
  expect("C second name", fns[2] and fns[2].name, "short_one")
  expect("C second length", length(fns[2]), 80)
  -- Lua: `end` inside strings, comments and long strings; a repeat/until; a
  -- nested function; an anonymous one in a table.
  local lua_body = {}
  for i = 1, 77 do lua_body[i] = "  x = x + 1" end
  local lua_src = table.concat({
    '#!/usr/bin/env lua',
    'local s = "end end" .. \'end\' .. [==[ end ]] end ]==]  -- end end',
    '--[[ function f() end',
    ']]',
    'local M = {}',
    'function M.big (x)',                     -- line 6 .. 86: 81 lines
    '  local t = { go = function () return "end" end }',
    '  repeat x = x - 1 until x < 0',
    table.concat(lua_body, "\n"),
    'end',
    'M.other = function () if true then do end end end',
    'return M',
  }, "\n") .. "\n"
  local ok, lfns = pcall(lua_functions, lua_src)
  if not ok then problems[#problems + 1] = "Lua lexer: " .. tostring(lfns); lfns = {} end
  local byname = {}
  for _, f in ipairs(lfns) do byname[f.name] = f end
  expect("Lua functions found", #lfns, 3)
  expect("Lua M.big length", byname["M.big"] and byname["M.big"].last - byname["M.big"].first + 1, 81)
  expect("Lua table function name", byname["go"] and byname["go"].first, 7)
  expect("Lua M.other one line", byname["M.other"] and byname["M.other"].last - byname["M.other"].first + 1, 1)
  expect("Lua unbalanced source raises", (pcall(lua_functions, "function f() if x then end\n")), false)
  return problems
end

-- }======================================================


local problems = self_test()
if #problems > 0 then
  io.stderr:write("check-size: the checker's own test failed; nothing was checked:\n  ",
                  table.concat(problems, "\n  "), "\n")
  os.exit(2)
end

if #files == 0 then
  local p = assert(io.popen("ls src/*.c src/*.h 2>/dev/null; find lua -name '*.lua' 2>/dev/null | sort"))
  for f in p:lines() do files[#files + 1] = f end
  p:close()
end

local over, nfunctions, used_exceptions = {}, 0, {}
for _, path in ipairs(files) do
  local text, err = read_file(path)
  if not text then
    over[#over + 1] = path .. ": cannot read (" .. tostring(err) .. ")"
  else
    local lines = count_lines(text)
    local limit = path:match("^src/") and LIMITS.src_file or path:match("^lua/") and LIMITS.lua_file
    if limit and lines > limit then
      over[#over + 1] = ("%s: %d lines (limit %d)"):format(path, lines, limit)
    end
    local is_lua = path:match("%.lua$") ~= nil
    local ok, fns = pcall(is_lua and lua_functions or c_functions, text)
    if not ok then
      over[#over + 1] = ("%s: cannot find its functions: %s"):format(path, tostring(fns))
      fns = {}
    end
    for _, f in ipairs(fns) do
      nfunctions = nfunctions + 1
      local length = f.last - f.first + 1
      local key = path .. ":" .. f.name
      if length > LIMITS.func then
        if EXCEPTIONS[key] then
          used_exceptions[key] = length
        else
          over[#over + 1] = ("%s:%d: function %s: %d lines (limit %d)")
            :format(path, f.first, f.name, length, LIMITS.func)
        end
      end
      if verbose then print(("%5d  %s:%d %s"):format(length, path, f.first, f.name)) end
    end
  end
end

for key, length in pairs(used_exceptions) do
  print(("size: %s: %d lines, allowed: %s"):format(key, length, EXCEPTIONS[key]))
end
for _, line in ipairs(over) do print("size: " .. line) end
print(("size: %d files, %d functions, %d over the limits (files: src/ %d, lua/ %d lines; functions: %d lines)")
  :format(#files, nfunctions, #over, LIMITS.src_file, LIMITS.lua_file, LIMITS.func))
os.exit(#over == 0 and 0 or 1)
