--- Server-sent-event bodies written by hand, for the specs that feed the
-- client another server's streams (responses_spec and its kin, through
-- oneshot.sse_client): the text of the events given, nothing added.

local M = {}

--- The SSE body of `events`, each `{ name, data }`: an "event: name" line
-- when name is not nil, then "data: " .. data.
function M.body (events)
  local t = {}
  for _, e in ipairs(events) do
    t[#t + 1] = (e[1] and ("event: " .. e[1] .. "\n") or "") .. "data: " .. e[2] .. "\n\n"
  end
  return table.concat(t)
end

--- The SSE body of a list of Responses events (each a table with its
-- `type`), numbered from 0 (each one's `sequence_number` is set) and
-- encoded by aigc.json, each with its "event:" line.
function M.numbered (events)
  local encode = require("aigc").json.encode
  local t = {}
  for i, e in ipairs(events) do
    e.sequence_number = i - 1
    t[#t + 1] = "event: " .. e.type .. "\ndata: " .. encode(e) .. "\n\n"
  end
  return table.concat(t)
end

return M
