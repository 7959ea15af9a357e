--- Test helper, the child process of future_cut_stripped_spec: the sweep
-- of future_cut_spec (future_sweep) with aigc's Lua modules loaded stripped
-- of their debug information, as a game may ship them (`luac -s`,
-- `string.dump(f, true)`). In a child of its own: the stripped copies, and
-- the marks they leave in aigc.core, die with it (run inside busted, on
-- LuaJIT a later watchdog_counting_spec of the same run failed 4 of 7).
--
-- `dofile` returns `main(base_url, name...)`: for the devserver at
-- `base_url`, sweeps each surface `name` and prints one line each, then
-- one per run that went wrong:
--   stripped <whether aigc.future, aigc.task, aigc.client_loop loaded stripped>
--   line <the line a hook saw in future.finish_waiters: -1, 0 on 5.1>
--   sweep <name> <runs> <whether the call after it succeeded> <step(0) after it>
--   bad <name>: <what went wrong>
--
-- @usage luachild.run('dofile("spec/support/stripped_sweep.lua")(...)', { args = { url, "say_async" } })

local searchers = rawget(package, "searchers") or rawget(package, "loaders")   -- (5.1, LuaJIT)
local load_binary = rawget(_G, "loadstring") or load

local function find (name)
  local file = name:gsub("%.", "/")
  for template in package.path:gmatch("[^;]+") do
    local path = template:gsub("%?", file)
    local h = io.open(path, "rb")
    if h then h:close(); return path end
  end
end

local stripped = {}
local function stripped_searcher (name)
  if name ~= "aigc" and name:sub(1, 5) ~= "aigc." then return nil end
  local path = find(name)
  if not path then return "\n\tno stripped aigc module '" .. name .. "'" end
  local binary
  local puc = not rawget(_G, "jit") and _VERSION:match("^Lua (5%.[12])$")
  if puc then
    -- (PUC 5.1's and 5.2's string.dump do not strip: their luac does)
    local tmp = os.tmpname()
    local status = os.execute("luac" .. puc .. " -s -o " .. tmp .. " " .. path)
    assert(status == 0 or status == true)
    local h = assert(io.open(tmp, "rb"))
    binary = h:read("*a")
    h:close()
    os.remove(tmp)
  else
    binary = string.dump(assert(loadfile(path)), true)
  end
  local code = assert(load_binary(binary))
  stripped[name] = true
  return code, path
end

-- The line a hook sees in the stripped future.finish_waiters.
local function hook_line (future)
  local line
  debug.sethook(function ()
    local info = debug.getinfo(2, "fl")
    if info.func == future.finish_waiters then line = line or info.currentline end
  end, "", 1)
  future.finish_waiters()
  debug.sethook()
  return line
end

return function (base_url, ...)
  -- (installed before anything requires aigc: its modules load stripped)
  table.insert(searchers, 2, stripped_searcher)
  local sweep = require "future_sweep"
  local future = require "aigc.future"
  local srv = { base_url = base_url }
  local surfaces = sweep.surfaces(srv)
  io.write("stripped ", tostring(stripped["aigc.future"] and stripped["aigc.task"]
                                 and stripped["aigc.client_loop"] or false), "\n")
  io.write("line ", tostring(hook_line(future)), "\n")
  for _, name in ipairs { ... } do
    sweep.jit_off()
    local bad, n, after, left = sweep.each_cut(srv, surfaces[name], true)
    sweep.unhook()
    io.write(("sweep %s %d %s %s\n"):format(name, n, tostring(not not after), tostring(left)))
    for _, line in ipairs(bad) do io.write("bad ", name, ": ", line, "\n") end
    io.flush()
  end
end
