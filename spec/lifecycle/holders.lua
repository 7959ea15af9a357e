--- Who keeps an object alive: the path from the Lua registry to it,
-- through tables (keys and values, weak halves skipped), functions'
-- upvalues, userdata's user values, metatables and threads' stacks (a
-- coroutine's locals and functions). For the lifecycle tester's reports: a
-- client the user dropped whose sockets stay open is held by something,
-- and the path names it ("REG._LOADED.aigc.future...^waking._on_error.^client"
-- found the defect fixed in 5584f6c at once, where the report said only
-- "codec (buf.c)").
local M = {}

local getupvalue, getuservalue, getmetatable = debug.getupvalue, debug.getuservalue, debug.getmetatable
local getinfo, getlocal = debug.getinfo, debug.getlocal

local function weak_halves (t)
  local mt = getmetatable(t)
  local mode = mt and type(mt.__mode) == "string" and mt.__mode or ""
  return mode:find("k", 1, true) ~= nil, mode:find("v", 1, true) ~= nil
end

--- The path to `target` from the registry, or nil. `skip`: objects not to
-- walk through (the caller's own tables). The running thread and the main
-- one are not walked: the caller's stack holds `target` (an argument).
-- @param target
-- @tparam table skip a set
-- @treturn string|nil
function M.path (target, skip)
  local seen, queue, head = {}, {}, 1
  for o in pairs(skip) do seen[o] = false end
  local function push (o, path)
    local t = type(o)
    if (t == "table" or t == "function" or t == "userdata" or t == "thread") and seen[o] == nil then
      seen[o] = path
      queue[#queue + 1] = o
    end
  end
  seen[seen], seen[queue] = false, false
  local running, main = coroutine.running(), debug.getregistry()[1]
  if running then seen[running] = false end
  if type(main) == "thread" then seen[main] = false end
  push(debug.getregistry(), "REG")
  while head <= #queue do
    local o = queue[head]
    queue[head] = false
    head = head + 1
    local p = seen[o]
    if o == target then return p end
    local t = type(o)
    local mt = getmetatable(o)
    if mt then push(mt, p .. ".<mt>") end
    if t == "table" then
      local wk, wv = weak_halves(o)
      for k, v in next, o do
        if not wk then push(k, p .. ".<key " .. tostring(k) .. ">") end
        if not wv then push(v, p .. "." .. tostring(k)) end
      end
    elseif t == "function" then
      for i = 1, 255 do
        local name, v = getupvalue(o, i)
        if not name then break end
        push(v, p .. ".^" .. name)
      end
    elseif t == "userdata" and getuservalue then
      for i = 1, 4 do
        local v, more = getuservalue(o, i)
        push(v, p .. ".<uv" .. i .. ">")
        if more == false then break end
      end
    elseif t == "thread" then
      for level = 0, 100 do
        local info = getinfo(o, level, "f")
        if not info then break end
        push(info.func, p .. ".<frame " .. level .. ">")
        for i = 1, 200 do
          local name, v = getlocal(o, level, i)
          if not name then break end
          push(v, p .. ".<frame " .. level .. " " .. name .. ">")
        end
      end
    end
  end
  return nil
end

return M
