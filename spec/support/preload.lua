-- Loaded by busted before any spec (.busted: helper). busted insulates each
-- spec file and unloads the modules it required afterwards; luv does not
-- survive being unloaded and loaded again in one process (its default loop
-- is freed with the first instance), so it is loaded once, here, for all.
pcall(require, "luv")
warn("@on")   -- errors in __gc metamethods must show, not vanish
