-- Loaded by busted before any spec (.busted: helper). busted insulates each
-- spec file and unloads the modules it required afterwards; luv does not
-- survive being unloaded and loaded again in one process (its default loop
-- is freed with the first instance), so it is loaded once, here, for all.
pcall(require, "luv")
-- Errors in __gc metamethods must show, not vanish (Lua 5.4's warnings;
-- 5.1-5.3 and LuaJIT have no warn() and print nothing for them).
local warn = rawget(_G, "warn")
if warn then warn("@on") end

-- busted keeps ONE `finally` per test: a second call replaces the first, so
-- a test whose helper registers its own cleanup (a client's close) silently
-- dropped the test's (a server's kill). A server left running that way was
-- waited for by the popen handle's __gc, 56 s later, inside whatever test the
-- collector ran in (CI's longest test was one such wait, in every cell).
-- Every `finally` now runs, the last registered first (as defers do); an
-- error in one does not skip the others, and the first error is the test's.
local busted = require "busted"
busted.subscribe({ "test", "start" }, function (element)
  local env = element.env
  local set_only = env and env.finally
  if not set_only then return nil, true end
  local cleanups = {}
  set_only(function ()
    local first_error
    for i = #cleanups, 1, -1 do
      local ok, err = pcall(cleanups[i])
      if not ok and first_error == nil then first_error = err end
    end
    if first_error ~= nil then error(first_error, 0) end
  end)
  env.finally = function (fn) cleanups[#cleanups + 1] = fn end
  return nil, true
end)
