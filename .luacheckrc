-- luacheck configuration (Debian's lua-check): `luacheck lua spec examples bench`.
std = "lua54"
max_line_length = 120
codes = true

files["spec"] = { std = "+busted" }
files["bench"] = { globals = { "arg" } }

-- What runs under every Lua of the matrix (5.1-5.4, LuaJIT) keeps to the
-- globals they all have ("min"); a version-specific one is reached through
-- rawget(_G, ...) and tested before use. (luacheck parses 5.4 syntax
-- whatever the std: scripts/check-subset.lua checks the syntax.)
-- The library (issue 12): lua/aigc and its `aigc` command; compat.lua is the
-- one place that touches version-specific globals (math.type, utf8,
-- table.pack...); the bundled server is a Lua 5.4 program (its own process).
files["lua/aigc"] = { std = "min" }
files["lua/aigc/compat.lua"] = { std = "max" }
files["lua/aigc/devserver.lua"] = { std = "lua54" }
files["lua/aigc/devserver"] = { std = "lua54" }
files["spec/support"] = { std = "min+busted" }
files["spec/support/devserver.lua"] = { std = "lua54+busted" }   -- (not yet: package.searchpath)
files["spec/lifecycle/child.lua"] = { std = "min" }
files["spec/lifecycle/gen.lua"] = { std = "min" }
files["spec/soak.lua"] = { std = "min" }
files["bench/aigc_bench.lua"] = { std = "min", globals = { "arg" } }
files["scripts"] = { std = "min" }
