--- Bounded work for the schema specs (schema_spec, schema_regex_spec,
-- schema_regex_work_spec): runs a function under a budget of Lua VM
-- instructions -- a count, not a time, so it does not depend on the
-- machine's load: an exponential or quadratic matcher exceeds a budget far
-- above what the linear one needs by orders of magnitude.

local M = {}

--- Runs `fn(...)` and returns its first two results; raises "work budget
-- exceeded: more than BUDGET VM instructions" once it has run more than
-- `budget` instructions (counted by the thousand), and fn's own errors as
-- they are. The hook is removed on every path (under LuaJIT hooks are the
-- whole VM's: left set, it would fire in a later spec).
function M.within_budget (budget, fn, ...)
  local count = 0
  debug.sethook(function ()
    count = count + 1000
    if count > budget then
      debug.sethook()
      error("work budget exceeded: more than " .. budget .. " VM instructions", 0)
    end
  end, "", 1000)
  local ok, a, b = pcall(fn, ...)
  debug.sethook()
  if not ok then error(a, 0) end
  return a, b
end

return M
