--- The rockspec against the tree (run by `make test` as the suite
-- "rockspec-files", one result):
--   * `aigc.core` is built from exactly the C files in src/ (a file added by
--     a split and not listed would be missing from the rock: undefined
--     symbols at `require`, on the user's machine, not here);
--   * every .lua file under lua/aigc is a module of the rock under its
--     require name, and every module the rock lists exists; every file of
--     bin/ is a command the rock installs;
--   * the rock says it runs on Lua 5.1 to 5.4 (issue 12): `lua >= 5.1, < 5.5`;
--   * its version is the module's (src/aigc.h's AIGC_VERSION), with "-1".
--
--   lua5.4 scripts/check-rockspec.lua rockspec/aigc-VERSION-1.rockspec
--
-- Exit status 0 when they agree, 1 otherwise. Runs on Lua 5.1-5.4 and LuaJIT.

local path = arg[1]
if not path then io.stderr:write("usage: check-rockspec.lua ROCKSPEC\n"); os.exit(2) end

local problems = {}
local function report (fmt, ...) problems[#problems + 1] = fmt:format(...) end

local function lines_of (cmd)
  local list = {}
  local p = assert(io.popen(cmd))
  for l in p:lines() do list[#list + 1] = l end
  p:close()
  return list
end

-- The rockspec is Lua that sets globals: run it in an empty environment.
local spec = {}
do
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  local chunk, err
  local setfenv, loadstring = rawget(_G, "setfenv"), rawget(_G, "loadstring")   -- 5.1, LuaJIT
  if setfenv then
    chunk, err = loadstring(text, "@" .. path)
    if chunk then setfenv(chunk, spec) end
  else
    chunk, err = load(text, "@" .. path, "t", spec)
  end
  if not chunk then io.stderr:write("check-rockspec: ", err, "\n"); os.exit(1) end
  chunk()
end

-- The version: the file's name, its `version`, and src/aigc.h agree.
local h = io.open("src/aigc.h", "rb")
local header = h and h:read("*a") or ""
if h then h:close() end
local aigc_version = header:match('#define AIGC_VERSION "([^"]+)"')
if not aigc_version then report("src/aigc.h defines no AIGC_VERSION") end
if aigc_version and spec.version ~= aigc_version .. "-1" then
  report("version is %s, src/aigc.h says %s (want %s-1)", tostring(spec.version), aigc_version, aigc_version)
end
if spec.version and not path:find("aigc%-" .. spec.version:gsub("%p", "%%%0") .. "%.rockspec$") then
  report("the file name %s does not carry its version %s", path, spec.version)
end

-- Lua 5.1 to 5.4.
local lua_dep
for _, d in ipairs(spec.dependencies or {}) do
  if d:match("^lua[%s>=<~]") or d == "lua" then lua_dep = d end
end
if lua_dep ~= "lua >= 5.1, < 5.5" then
  report("the lua dependency is %q; Lua 5.1 to 5.4 and LuaJIT need \"lua >= 5.1, < 5.5\"", tostring(lua_dep))
end

local modules = spec.build and spec.build.modules or {}

-- aigc.core: exactly src/*.c.
local core = modules["aigc.core"]
local listed = {}
if type(core) ~= "table" or type(core.sources) ~= "table" then
  report("build.modules[\"aigc.core\"] has no sources list")
else
  for _, s in ipairs(core.sources) do listed[s] = true end
end
local c_files = lines_of("ls src/*.c 2>/dev/null")
if #c_files == 0 then report("no src/*.c here: run from the checkout's root") end
local on_disk = {}
for _, f in ipairs(c_files) do
  on_disk[f] = true
  if not listed[f] then report("%s is not among aigc.core's sources", f) end
end
for s in pairs(listed) do
  if not on_disk[s] then report("aigc.core's source %s does not exist", s) end
end

-- Every Lua file a module, every module a file.
local lua_files = lines_of("find lua/aigc -name '*.lua' 2>/dev/null | sort")
local by_file = {}
for name, m in pairs(modules) do
  if type(m) == "string" then
    if by_file[m] then report("%s is listed twice (%s, %s)", m, by_file[m], name) end
    by_file[m] = name
    local f = io.open(m, "rb")
    if f then f:close() else report("module %s: %s does not exist", name, m) end
  end
end
for _, f in ipairs(lua_files) do
  local want = f:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
  if not by_file[f] then report("%s is not in the rock (want [\"%s\"] = \"%s\")", f, want, f)
  elseif by_file[f] ~= want then report("%s is listed as %s, but require finds it as %s", f, by_file[f], want) end
end

-- Every command in bin/ installed.
local bins = {}
for _, f in pairs(spec.build and spec.build.install and spec.build.install.bin or {}) do bins[f] = true end
for _, f in ipairs(lines_of("ls bin/* 2>/dev/null")) do
  if not bins[f] then report("%s is not in build.install.bin", f) end
end

for _, p in ipairs(problems) do print("rockspec-files: " .. p) end
print(("rockspec-files: %s: %d C sources, %d Lua modules, %d problems"):format(path, #c_files, #lua_files, #problems))
os.exit(#problems == 0 and 0 or 1)
