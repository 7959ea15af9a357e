--- Issue 12: the code that must run on every Lua of the matrix parses on it.
-- luacheck reads 5.4 syntax whatever its std, so `//`, bitwise operators,
-- `<close>`, `goto` (5.1), "\u{...}" (5.1/5.2) in the library would pass
-- lint and fail only when that interpreter loads the file. Run by
-- `make test` (suite "subset", one result) under each interpreter:
--
--   lua5.1 scripts/check-subset.lua      (and lua5.2, lua5.3, luajit)
--
-- Files: lua/aigc/**.lua except the devserver (Lua 5.4 only, run as its own
-- process), spec/support/*.lua (the harness every cell loads), the lifecycle
-- tester's child side and the soak, and examples/*.lua except those whose
-- first lines say "-- needs: Lua 5.4". Prints one line per file that does
-- not parse; exit status 0 when all parse.

local function lines_of (cmd)
  local list = {}
  local p = assert(io.popen(cmd))
  for l in p:lines() do list[#list + 1] = l end
  p:close()
  return list
end

local files = lines_of("find lua/aigc -name '*.lua' ! -path 'lua/aigc/devserver*' 2>/dev/null | sort")
for _, f in ipairs(lines_of("ls spec/support/*.lua examples/*.lua spec/soak.lua "
                            .. "spec/lifecycle/child.lua spec/lifecycle/gen.lua 2>/dev/null")) do
  local needs54 = false
  if f:match("^examples/") then
    local n = 0
    for line in io.lines(f) do
      n = n + 1
      if line:match("^%-%- *needs: *Lua 5%.4") then needs54 = true end
      if n >= 20 then break end
    end
  end
  if not needs54 then files[#files + 1] = f end
end

local jit = rawget(_G, "jit")
local who = _VERSION .. (jit and (" (" .. jit.version .. ")") or "")
-- PUC Lua 5.1 does not refuse an unknown escape: "\u{FFFD}" parses, as the
-- 7 characters u{FFFD}. Look for it in the text (outside `--` comments).
local silent_u = _VERSION == "Lua 5.1" and not jit
local bad = 0
for _, f in ipairs(files) do
  local ok, err = loadfile(f)
  if not ok then
    bad = bad + 1
    print(("subset: %s: %s"):format(who, tostring(err)))
  elseif silent_u then
    local n = 0
    for line in io.lines(f) do
      n = n + 1
      local code = line:gsub("%-%-.*$", "")
      if code:find("\\u{", 1, true) then
        bad = bad + 1
        print(("subset: %s: %s:%d: \\u{...} reads as the text u{...} here (write the UTF-8 bytes, e.g. "
          .. "\\239\\191\\189)"):format(who, f, n))
      end
    end
  end
end
print(("subset: %s: %d files, %d problems"):format(who, #files, bad))
os.exit(bad == 0 and #files > 0 and 0 or 1)
