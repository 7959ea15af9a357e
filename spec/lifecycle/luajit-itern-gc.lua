-- LuaJIT 2.1 before commit 119fd1fa ("Ensure forward progress on trace exit
-- to BC_ITERN", Aug 2023, LuaJIT #1000 #1045), e.g. Debian 12's
-- 2.1.0~beta3+git20220320: a pairs() loop compiled as a trace spins for ever
-- inside a __gc metamethod when the trace exits at its first guard. The exit
-- returns to the loop's JLOOP, which re-enters the trace; outside __gc the
-- hot exit soon gets a side trace (and recording unpatches the JLOOP), but
-- during __gc LuaJIT records nothing, so nothing breaks the cycle.
-- No aigc involved. It is why spec/lifecycle/child.lua keeps the model's
-- own functions off the JIT (its `arm` finalizers run the model's checks).
--
--   timeout 10 luajit spec/lifecycle/luajit-itern-gc.lua
--     an affected LuaJIT: killed by the timeout (status 124), 100% CPU;
--     a fixed one (or lua5.1): prints "finalizer ran: true", status 0.
local function count (t)
  local n = 0
  for _, v in pairs(t) do
    if type(v) == "number" then n = n + v else n = n + 1 end
  end
  return n
end
-- Compile the loop for tables of numbers...
for _ = 1, 2000 do count({ a = 1, b = 2, c = 3, d = 4 }) end
-- ...then run it in a finalizer on a table whose values fail the trace's guard.
local ran = false
local u = newproxy(true)   -- luacheck: ignore (5.1 and LuaJIT's global)
getmetatable(u).__gc = function ()
  count({ a = "x", b = {}, c = true, d = 4 })
  ran = true
end
u = nil   -- luacheck: ignore
collectgarbage("collect")
print("finalizer ran: " .. tostring(ran))
os.exit(ran and 0 or 1)
