--- Misuse checks for specs: a call that must raise aigc's one misuse
-- format (`bad argument #N to 'fn' (params.X: ...)`) at the caller's line.
-- @module misuse
local M = {}

--- `fn` raises an error matching `pattern`, positioned in the spec file
-- that calls this (its `file.lua:LINE:` prefix: the misuse is reported
-- where the user's code made the call, not inside aigc).
-- @tparam string pattern a Lua pattern the message must match
-- @tparam function fn the misuse
function M.raises (pattern, fn)
  local ok, e = pcall(fn)
  assert(not ok, "expected an error matching " .. pattern)
  e = tostring(e)
  assert(e:match(pattern), ("%q does not match %q"):format(e, pattern))
  local src = debug.getinfo(2, "S").short_src
  local spec_file = src:match("([^/]+%.lua)$") or src
  assert(e:find(spec_file .. ":%d+:"), ("%q is not positioned in %s"):format(e, spec_file))
end

return M
