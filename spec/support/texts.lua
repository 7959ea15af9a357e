--- Test helper: searching what a call left (an error, a result, log
-- lines) for a string that must not be there, such as a secret.
--
-- @usage
-- local texts = require "texts"
-- assert.is_false(texts.contains(texts.all(err), KEY))

local M = {}

--- Whether `s` is a string holding `x` (plain search).
-- @treturn boolean
function M.contains (s, x)
  return type(s) == "string" and s:find(x, 1, true) ~= nil
end

--- Every string reachable from `v` (table keys too, cycles once), joined
-- by newlines.
-- @treturn string
function M.all (v, out, seen)
  out, seen = out or {}, seen or {}
  if type(v) == "string" then out[#out + 1] = v
  elseif type(v) == "table" and not seen[v] then
    seen[v] = true
    for k, x in pairs(v) do M.all(k, out, seen); M.all(x, out, seen) end
  end
  return table.concat(out, "\n")
end

return M
