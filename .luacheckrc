-- luacheck configuration (Debian's lua-check): `luacheck lua spec examples bench`.
std = "lua54"
max_line_length = 120
codes = true

files["spec"] = { std = "+busted" }
files["bench"] = { globals = { "arg" } }
