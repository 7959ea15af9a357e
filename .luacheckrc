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
files["spec/support"] = { std = "min+busted" }
files["spec/support/devserver.lua"] = { std = "lua54+busted" }   -- (not yet: package.searchpath)
files["spec/lifecycle/child.lua"] = { std = "min" }
files["spec/lifecycle/gen.lua"] = { std = "min" }
files["spec/soak.lua"] = { std = "min" }
files["bench/aigc_bench.lua"] = { std = "min", globals = { "arg" } }
files["scripts"] = { std = "min" }
