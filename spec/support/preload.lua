-- Loaded by busted before any spec (.busted: helper). busted insulates each
-- spec file and unloads the modules it required afterwards; luv does not
-- survive being unloaded and loaded again in one process (its default loop
-- is freed with the first instance), so it is loaded once, here, for all.
pcall(require, "luv")
-- Errors in __gc metamethods must show, not vanish (Lua 5.4's warnings;
-- 5.1-5.3 and LuaJIT have no warn() and print nothing for them).
local warn = rawget(_G, "warn")
if warn then warn("@on") end
