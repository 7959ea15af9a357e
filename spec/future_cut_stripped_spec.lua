-- A future's end cut by a host's watchdog hook (future_cut_spec), with
-- aigc's Lua modules loaded stripped of their debug information, as a game
-- may ship them (`luac -s`, `string.dump(f, true)`): still exactly one
-- on_done/on_error by the next step, the waiting task woken.
--
-- Stripped, the end lost its callback: run_end told whether a cut task
-- had called it by the line its frame stood at (debug.getinfo's
-- currentline), which is -1 there -- counted as called, so a cut before the
-- call ran neither on_done nor on_error.

-- On LuaJIT the stripped copies' marks in aigc.core outlive this file (a
-- later watchdog_counting_spec in the same busted run failed 4 of 7):
-- this file runs on PUC Lua 5.1-5.4 only, where it proves the same code.
if rawget(_G, "jit") then
  describe("a future's end cut by a watchdog hook, aigc loaded stripped", function ()
    it("runs on PUC Lua", function () pending("LuaJIT: the stripped copies would skew later specs of this run") end)
  end)
  return
end

-- (installed before anything requires aigc: its modules load stripped)
local searchers = package.searchers or rawget(package, "loaders")   -- (5.1, LuaJIT)
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
-- (all of it in setup, not at the file's top: busted's insulation takes
-- its picture of package.loaded after a file's top level ran, and put the
-- stripped modules back after this file for the specs after it --
-- task_cut_spec reads upvalue names, which stripped code has not)
local sweep, future
local loaded_before, set_aside = {}, {}

describe("a future's end cut by a watchdog hook, aigc loaded stripped", function ()
  local srv, surfaces
  setup(function ()
    -- (what was loaded before: what this file loads is dropped at its end;
    -- aigc's Lua modules an earlier spec loaded, with the sweep's helper
    -- that holds one, are set aside so that they load stripped here, and
    -- put back at the end. aigc.core, C, is the same either way.)
    for name, module in pairs(package.loaded) do
      loaded_before[name] = true
      if (name == "aigc" or name:sub(1, 5) == "aigc." or name == "future_sweep") and name ~= "aigc.core" then
        set_aside[name] = module
      end
    end
    for name in pairs(set_aside) do package.loaded[name] = nil end
    table.insert(searchers, 2, stripped_searcher)
    sweep = require "future_sweep"
    future = require "aigc.future"
    srv, surfaces = sweep.start()
  end)
  teardown(function ()
    srv:stop()
    for i, s in ipairs(searchers) do
      if s == stripped_searcher then table.remove(searchers, i); break end
    end
    for name in pairs(package.loaded) do
      if not loaded_before[name] or set_aside[name] then package.loaded[name] = nil end
    end
    for name, module in pairs(set_aside) do package.loaded[name] = module end
  end)
  before_each(function () sweep.jit_off() end)
  after_each(function () sweep.unhook() end)

  it("the modules are stripped (no line information)", function ()
    assert.is_true(stripped["aigc.future"] and stripped["aigc.task"] and stripped["aigc.client_loop"])
    local line
    debug.sethook(function ()
      local info = debug.getinfo(2, "fl")
      if info.func == future.finish_waiters then line = line or info.currentline end
    end, "", 1)
    future.finish_waiters()
    debug.sethook()
    assert.is_true(line ~= nil and line <= 0, "line " .. tostring(line))   -- (-1; 0 on 5.1)
  end)

  for _, name in ipairs { "say_async", "chat_async_toolset" } do
    it(name .. ": one on_done, the task wakes, cut at every point", function ()
      if sweep.PENDING_53 then return pending(sweep.PENDING_53) end
      local bad, n, after, left = sweep.each_cut(srv, surfaces[name], true)
      assert.truthy(after)
      assert.equal(0, left)
      assert.is_true(n > 20)
      assert.same({}, bad)
    end)
  end
end)
