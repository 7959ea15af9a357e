--- Issue 11: nothing in lua/ patches a C method table. Run by `make test`
-- as the suite "patching" (one result):
--
--   lua5.4 scripts/check-patching.lua [--cpath './?.so'] [--path 'lua/?.lua;lua/?/init.lua']
--
-- Two looks, both must be clean:
-- 1. the sources: no line of lua/aigc (the devserver package and the
--    cassette replay server aside: scripts run as their own 5.4 processes,
--    they never load aigc) names `request_methods`, reaches the registry
--    (`debug.getregistry`, `debug.setmetatable`) or assigns through a
--    `getmetatable(...)` result (but for the fresh metatable of a
--    `newproxy(true)` made on the line before: 5.1's finalizer idiom);
-- 2. the running module: every table the C module hands out -- aigc.core
--    and its table fields, each metatable it registered (registry keys
--    "aigc..."), their __index tables -- is copied, then every Lua module of
--    lua/aigc is loaded and a client runs a request (to a closed port, so no
--    server is needed); any key added, removed or replaced in those tables
--    is a patch, whatever alias the Lua code reached it through.
-- The comparison first proves on itself that it sees a planted patch.
-- Exit status 0 when clean, 1 otherwise, 2 when the module does not load.

local opts = { cpath = "./?.so", path = "lua/?.lua;lua/?/init.lua" }
do
  local i = 1
  while arg[i] do
    local k = arg[i]:match("^%-%-(%a+)$")
    if not k or not arg[i + 1] then
      io.stderr:write("usage: check-patching.lua [--cpath P] [--path P]\n")
      os.exit(2)
    end
    opts[k] = arg[i + 1]
    i = i + 2
  end
end
package.path = opts.path .. ";" .. package.path
package.cpath = opts.cpath .. ";" .. package.cpath

local problems = {}
local function report (fmt, ...) problems[#problems + 1] = fmt:format(...) end

-- {======================================================
-- 1. The sources
-- =======================================================

local SOURCE_RULES = {
  { pattern = "request_methods", why = "core.request_methods is gone (issue 11): the C request keeps its C methods" },
  { pattern = "debug%.getregistry", why = "the registry holds the C metatables" },
  { pattern = "debug%.setmetatable", why = "replaces a metatable of a C object" },
  { pattern = "getmetatable%b()%s*%.[%w_]+%s*=[^=]", why = "assigns into a metatable" },
  { pattern = "getmetatable%b()%s*%[[^%]]*%]%s*=[^=]", why = "assigns into a metatable" },
  { pattern = "getmetatable%b()%.__index%.[%w_]+%s*=[^=]", why = "assigns into a method table" },
  { pattern = "rawset%s*%(%s*getmetatable", why = "assigns into a metatable" },
}

local function library_files ()
  local list = {}
  local p = assert(io.popen("find lua/aigc -name '*.lua' ! -path 'lua/aigc/devserver*'"
                            .. " ! -name 'cassette_server.lua' 2>/dev/null | sort"))
  for f in p:lines() do list[#list + 1] = f end
  p:close()
  return list
end

local files = library_files()
if #files == 0 then report("no Lua files under lua/aigc: run from the checkout's root") end
-- A userdata made by `newproxy(true)` on the line before (Lua 5.1's and
-- LuaJIT's only object with a finalizer: their tables have no __gc) comes
-- with a fresh metatable of its own, no C table: setting its __gc there is
-- no patch. `proxy` is the name (a local or a field) it was assigned to.
local function own_proxy_metatable (code, proxy)
  return proxy ~= nil and code:find("getmetatable(" .. proxy .. ")", 1, true) ~= nil
end

for _, path in ipairs(files) do
  local n, proxy = 0, nil
  for line in io.lines(path) do
    n = n + 1
    local code = line:gsub("%-%-.*$", "")   -- a comment may name them
    if not own_proxy_metatable(code, proxy) then
      for _, rule in ipairs(SOURCE_RULES) do
        if code:find(rule.pattern) then
          report("%s:%d: %s (%s)", path, n, line:gsub("^%s+", ""), rule.why)
        end
      end
    end
    proxy = code:match("^%s*local%s+([%w_]+)%s*=%s*newproxy%(%s*true%s*%)%s*$")
      or code:match("^%s*([%w_][%w_.]*)%s*=%s*newproxy%(%s*true%s*%)%s*$")
  end
end

-- }======================================================


-- {======================================================
-- 2. The running module
-- =======================================================

local ok, core = pcall(require, "aigc.core")
if not ok then
  io.stderr:write("check-patching: aigc.core does not load (", tostring(core), ")\n")
  os.exit(2)
end

-- name -> table: what the C module hands out.
local function c_tables ()
  local found = { ["aigc.core"] = core }
  for k, v in pairs(core) do
    if type(v) == "table" then found["aigc.core." .. tostring(k)] = v end
  end
  for k, v in pairs(debug.getregistry()) do
    if type(k) == "string" and k:match("^aigc") and type(v) == "table" then
      found["registry[" .. k .. "]"] = v
      if type(rawget(v, "__index")) == "table" then found["registry[" .. k .. "].__index"] = rawget(v, "__index") end
    end
  end
  return found
end

local function snapshot (tables)
  local copy = {}
  for name, t in pairs(tables) do
    local c = {}
    for k, v in pairs(t) do c[k] = v end
    copy[name] = { t = t, fields = c }
  end
  return copy
end

-- The differences between a snapshot and the tables now: { "NAME.KEY: what" ... }.
local function changes (snap)
  local out = {}
  for name, s in pairs(snap) do
    for k, v in pairs(s.t) do
      if s.fields[k] == nil then out[#out + 1] = ("%s.%s: added (%s)"):format(name, tostring(k), type(v))
      elseif s.fields[k] ~= v then out[#out + 1] = ("%s.%s: replaced"):format(name, tostring(k)) end
    end
    for k in pairs(s.fields) do
      if rawget(s.t, k) == nil then out[#out + 1] = ("%s.%s: removed"):format(name, tostring(k)) end
    end
  end
  table.sort(out)
  return out
end

local tables = c_tables()
local ntables = 0
for _ in pairs(tables) do ntables = ntables + 1 end
if ntables < 2 then report("found only %d table(s) of the C module: the check would see nothing", ntables) end

-- The comparison sees a planted patch (and forgets it again).
do
  local snap = snapshot(tables)
  local victim = tables["aigc.core"]
  rawset(victim, "__check_patching_plant", true)
  local seen = changes(snap)
  rawset(victim, "__check_patching_plant", nil)
  if #seen ~= 1 or not seen[1]:find("__check_patching_plant", 1, true) then
    io.stderr:write("check-patching: the comparison did not see a planted patch; nothing was checked\n")
    os.exit(2)
  end
end

local before = snapshot(tables)
local loaded = {}
for _, path in ipairs(files) do
  local mod = path:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
  local lok, err = pcall(require, mod)
  if lok then loaded[#loaded + 1] = mod else report("%s does not load: %s", mod, tostring(err)) end
end

-- A client's life: created, a request to a closed port (refused at once),
-- waited for, the client closed. Each step may fail on an API change: the
-- point is only to run the code that could patch lazily.
local aok, aigc = pcall(require, "aigc")
if aok and type(aigc) == "table" and aigc.client then
  local cok, client = pcall(aigc.client, { base_url = "http://127.0.0.1:9/v1", max_retries = 0, timeout = 5 })
  if cok and client then
    local params = { model = "m", messages = { { role = "user", content = "hi" } } }
    pcall(function () return client:chat(params) end)
    pcall(function ()
      local req = client:chat_async(params)
      if req and req.wait then req:wait(5) end
    end)
    pcall(function () return client:close() end)
  end
end
collectgarbage("collect")

for _, c in ipairs(changes(before)) do report("a C table was patched from Lua: %s", c) end

-- }======================================================

for _, p in ipairs(problems) do print("patching: " .. p) end
print(("patching: %d library files read, %d modules loaded, %d C tables compared, %d problems")
  :format(#files, #loaded, ntables, #problems))
os.exit(#problems == 0 and 0 or 1)
