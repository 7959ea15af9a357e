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

--- Whether `s` holds 12 bytes in a row of any of `forms` (a secret and
-- its other forms), ignoring ASCII case: what the redaction promises
-- never to show.
-- @treturn boolean
function M.holds_run (s, forms)
  s = s:lower()
  for _, form in ipairs(forms) do
    form = form:lower()
    for i = 1, #form - 11 do
      if s:find(form:sub(i, i + 11), 1, true) then return true end
    end
  end
  return false
end

return M
