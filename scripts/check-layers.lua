-- The C core's layers and size limits (issue 11, docs/ARCHITECTURE.md "The
-- layers of the C core"): fails on
--   - a cycle in who calls whom between src/ files: file A calls (or reads)
--     a symbol defined in file B while B, directly or through others, uses
--     one of A's. Read from the objects with nm: what each defines (T, D,
--     R, B) and what it needs (U); calls through function pointers (libcurl
--     callbacks) are not dependencies;
--   - a cycle in who includes whom (x.c and x.h are one module; a header
--     with no .c of its own, such as compat.h or accum_tree.h, is a leaf:
--     shared definitions, static inline helpers);
--   - a file whose calls go to a layer above its own (LAYERS below);
--   - a cross-file symbol without the prefix aigc_ (luaopen_aigc_core aside);
--   - dead code: a function a header declares and no file defines; a
--     function a Lua-facing file exports that no other file uses (make it
--     static; the plain-C files' APIs are their unit tests' too);
--   - a call of a C library function that answers from one static buffer
--     (strerror, gmtime...: not thread-safe; their _r forms);
--   - a file of src/ over 1,300 lines, a function over 80 lines (the JSON
--     parser's one switch over value kinds excepted).
--
--   lua5.4 scripts/check-layers.lua [OBJDIR]     (default build/obj; run `make` first)
--
-- Prints each finding, then the layers with what each file uses, and ends
-- with "layers: ok" or "layers: N problem(s)" (exit status 1).

local objdir = arg[1] or "build/obj"
local MAX_FILE_LINES, MAX_FUNCTION_LINES = 1300, 80
local LONG_FUNCTIONS_ALLOWED = { ["json.c:parse_value"] = "the parser's one switch over value kinds" }

-- Bottom first: a file may use only files of lower layers (and of its own
-- layer when listed on the same line, as long as there is no cycle).
local LAYERS = {
  { "buf", "base64", "vec", "sha256", "md5", "syserr", "body", "timers", "unescape" },
  { "sse", "json" },
  { "jsonout" },
  { "accum_keys" },
  { "accum", "raccum", "poller", "roster" },
  { "accum_shape", "accum_scan" },
  { "util" },
  { "home" },
  { "jsonlua", "headers", "form", "media", "lockfile", "dirfs", "peers" },
  { "redact" },
  { "error" },
  { "error_report" },
  { "transfer" },
  { "slots" },
  { "retry", "server_error" },
  { "response", "textrun" },
  { "request" },
  { "submit" },
  { "loop" },
  { "engine" },
  { "core" },
}

local problems = 0
local function problem (fmt, ...)
  problems = problems + 1
  print("layers: " .. fmt:format(...))
end

local function lines_of (path)
  local t = {}
  for line in io.lines(path) do t[#t + 1] = line end
  return t
end

local function sh (cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  return out
end

-- The src/ files.
local sources, modules, is_module = {}, {}, {}
for name in sh("ls src"):gmatch("[^\n]+") do
  if name:match("%.[ch]$") then sources[#sources + 1] = name end
  local base = name:match("^(.-)%.c$")
  if base then modules[#modules + 1] = base; is_module[base] = true end
end

-- Sizes: files and functions.
for _, name in ipairs(sources) do
  local t = lines_of("src/" .. name)
  if #t > MAX_FILE_LINES then problem("src/%s has %d lines (limit %d)", name, #t, MAX_FILE_LINES) end
  if name:match("%.c$") then
    local start, fname
    for i, line in ipairs(t) do
      if not start then
        local head = line:match("^[%a_][^=;#]-([%w_]+) %(")
        if head and not line:match(";%s*$") and not line:match("^typedef") and not line:match("^struct ")
           and not line:match("^enum") then
          start, fname = i, head
        end
      elseif line:match("^}") then
        local len = i - start + 1
        local key = name .. ":" .. fname
        if len > MAX_FUNCTION_LINES and not LONG_FUNCTIONS_ALLOWED[key] then
          problem("src/%s:%d: %s has %d lines (limit %d)", name, start, fname, len, MAX_FUNCTION_LINES)
        end
        start = nil
      end
    end
  end
end

-- Who includes whom (x.c and x.h are the module x).
local includes = {}
for _, name in ipairs(sources) do
  local from = name:match("^(.-)%.[ch]$")
  if is_module[from] then includes[from] = includes[from] or {} end
  for _, line in ipairs(lines_of("src/" .. name)) do
    local inc = line:match('^#include "([%w_%-]+)%.h"')
    if inc and inc ~= from and is_module[inc] and is_module[from] then
      includes[from][inc] = true
    end
  end
end

-- Who calls whom, from the objects.
local defined_in, needs = {}, {}
for _, m in ipairs(modules) do
  local obj = objdir .. "/" .. m .. ".o"
  if not io.open(obj) then
    problem("%s is missing (run make first)", obj)
  else
    needs[m] = {}
    for kind, sym in sh("nm " .. obj):gmatch("%s(%a) ([%w_%.]+)\n") do
      if kind:match("[TDRB]") then
        if defined_in[sym] and defined_in[sym] ~= m then
          problem("%s is defined in both %s.c and %s.c", sym, defined_in[sym], m)
        end
        defined_in[sym] = m
        if not sym:match("^aigc_") and sym ~= "luaopen_aigc_core" then
          problem("%s.c exports %s: cross-file symbols carry the prefix aigc_", m, sym)
        end
      elseif kind == "U" then
        needs[m][sym] = true
      end
    end
  end
end
-- C library functions that answer from one static buffer (not
-- thread-safe: lua_States on several threads share it): their _r forms.
local SHARED_BUFFER = { strerror = "aigc_strerror (syserr.h)", gmtime = "gmtime_r", localtime = "localtime_r",
                        ctime = "ctime_r", asctime = "asctime_r", strtok = "strtok_r", strsignal = "a table" }
for m, syms in pairs(needs) do
  for sym in pairs(syms) do
    if SHARED_BUFFER[sym] then
      problem("%s.c calls %s, whose result is in one buffer for all threads: use %s", m, sym, SHARED_BUFFER[sym])
    end
  end
end
local uses = {}   -- module -> module -> the symbols
for m, syms in pairs(needs) do
  uses[m] = {}
  for sym in pairs(syms) do
    local d = defined_in[sym]
    if d and d ~= m then
      uses[m][d] = uses[m][d] or {}
      table.insert(uses[m][d], sym)
    end
  end
end

-- Dead code.
local PLAIN_C = { buf = true, sse = true, json = true, jsonout = true, accum = true, accum_keys = true, raccum = true,
                  accum_shape = true, accum_scan = true, poller = true, roster = true,
                  timers = true }
local used_elsewhere = {}
for m, syms in pairs(needs) do
  for sym in pairs(syms) do
    if defined_in[sym] and defined_in[sym] ~= m then used_elsewhere[sym] = true end
  end
end
for sym, m in pairs(defined_in) do
  if not used_elsewhere[sym] and not PLAIN_C[m] and sym ~= "luaopen_aigc_core" then
    problem("%s.c exports %s, which no other file uses (make it static)", m, sym)
  end
end
for _, name in ipairs(sources) do
  if name:match("%.h$") then
    local t, i = lines_of("src/" .. name), 1
    while i <= #t do   -- a prototype: a declaration at column 0 ending in ");"
      local fname = t[i]:match("^[%a_][%w_ %*]-[ %*](aigc_[%w_]+) %(")
      if fname and not t[i]:match("^static") and not t[i]:match("^AIGC_COMPAT_FN") then
        local j = i
        while j < #t and not t[j]:match("[;{]") do j = j + 1 end
        if t[j]:match("%)[^{]-;%s*$") and not defined_in[fname] then
          problem("src/%s declares %s, which no file defines", name, fname)
        end
      end
      i = i + 1
    end
  end
end

-- Cycles (depth-first search; each cycle found is printed once).
local function find_cycles (graph, what)
  local state, stack = {}, {}
  local function visit (n)
    state[n] = "open"
    stack[#stack + 1] = n
    local next_nodes = {}
    for d in pairs(graph[n] or {}) do next_nodes[#next_nodes + 1] = d end
    table.sort(next_nodes)
    for _, d in ipairs(next_nodes) do
      if state[d] == "open" then
        local cycle, on = {}, false
        for _, s in ipairs(stack) do
          if s == d then on = true end
          if on then cycle[#cycle + 1] = s end
        end
        cycle[#cycle + 1] = d
        problem("a cycle in %s: %s", what, table.concat(cycle, " -> "))
      elseif not state[d] then
        visit(d)
      end
    end
    stack[#stack] = nil
    state[n] = "done"
  end
  local nodes = {}
  for n in pairs(graph) do nodes[#nodes + 1] = n end
  table.sort(nodes)
  for _, n in ipairs(nodes) do
    if not state[n] then visit(n) end
  end
end
find_cycles(uses, "who calls whom")
find_cycles(includes, "who includes whom")

-- The declared layers.
local layer_of = {}
for i, row in ipairs(LAYERS) do
  for _, m in ipairs(row) do layer_of[m] = i end
end
for _, m in ipairs(modules) do
  if not layer_of[m] then problem("src/%s.c is in no layer (add it to LAYERS in scripts/check-layers.lua)", m) end
end
for m, ds in pairs(uses) do
  for d, syms in pairs(ds) do
    if layer_of[m] and layer_of[d] and layer_of[d] > layer_of[m] then
      table.sort(syms)
      problem("%s.c (layer %d) uses %s.c (layer %d, above it): %s", m, layer_of[m], d, layer_of[d],
              table.concat(syms, ", "))
    end
  end
end
for m, ds in pairs(includes) do
  for d in pairs(ds) do
    if layer_of[m] and layer_of[d] and layer_of[d] > layer_of[m] then
      problem("%s includes %s.h, a layer above it", m, d)
    end
  end
end

-- The graph, top layer first.
for i = #LAYERS, 1, -1 do
  local row = {}
  for _, m in ipairs(LAYERS[i]) do
    if is_module[m] then
      local ds = {}
      for d in pairs(uses[m] or {}) do ds[#ds + 1] = d end
      table.sort(ds)
      row[#row + 1] = m .. (#ds > 0 and (" -> " .. table.concat(ds, " ")) or "")
    end
  end
  if #row > 0 then print(("  %2d  %s"):format(i, table.concat(row, "; "))) end
end
if problems == 0 then
  print("layers: ok")
else
  print(("layers: %d problem(s)"):format(problems))
  os.exit(1)
end
