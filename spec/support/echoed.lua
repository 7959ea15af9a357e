--- Test helper: a key a server echoes in some form, checked where aigc may
-- show it: the error of a call (every string of it, `tostring(err)`), the
-- client's log lines, a cassette's tape. Each check returns the list of
-- what leaked (by the caller's `leaks(text)`), empty when nothing did: the
-- spec asserts it is empty (nothing of the key is printed).
--
-- @usage
-- assert.same({}, echoed.server_errors(KEY, { { "hex", "Invalid key 736b..." } }, leaks))
local aigc = require "aigc"
local cjson = require "cjson"
local scripted = require "scripted"
local texts = require "texts"
local upstream = require "upstream"

local M = {}

--- The keys of `t`, sorted.
-- @treturn table
function M.names (t)
  local list = {}
  for name in pairs(t) do list[#list + 1] = name end
  table.sort(list)
  return list
end

--- Each `{ name, body }` of `cases` sent as a 400's body to a client with
-- `key`: what leaked (`leaks(s)` true) in its error, `tostring(err)`, the
-- log lines, or went otherwise than a 400 error.
-- @treturn table the problems, by name
function M.server_errors (key, cases, leaks)
  local replies, problems, lines = {}, {}, {}
  for i, case in ipairs(cases) do replies[i] = "e400 " .. case[2] end
  local srv = scripted.start(replies)
  local client = aigc.client { base_url = srv.base_url, api_key = key, max_retries = 0,
                               log = function (level, msg) lines[#lines + 1] = level .. ": " .. msg end }
  for _, case in ipairs(cases) do
    local res, err = client:chat { model = "m", messages = { { role = "user", content = "Hi" } } }
    if res ~= nil or type(err) ~= "table" or err.status ~= 400 then problems[#problems + 1] = case[1] .. ": no 400"
    elseif leaks(texts.all(err)) then problems[#problems + 1] = case[1] .. ": err"
    elseif leaks(tostring(err)) then problems[#problems + 1] = case[1] .. ": tostring(err)" end
  end
  client:close()
  srv.finish()
  if #lines == 0 then problems[#problems + 1] = "no log line" end
  if leaks(table.concat(lines, "\n")) then problems[#problems + 1] = "a log line" end
  return problems
end

--- An upstream replying `echoed` (a list of texts, in a JSON string) to a
-- call with `key` through the recording proxy: what leaked on the tape,
-- or "not echoed" when the reply did not hold the key (`leaks` false).
-- @treturn table the problems
function M.on_tape (key, echoed, leaks, finally)
  local content = cjson.encode("keys: " .. table.concat(echoed, " ")):sub(2, -2)
  local live, err, tape = upstream.recorded(string.format("reply(s, %q)", content),
    { model = "m", api_key = key }, { messages = { { role = "user", content = "hi" } } }, finally)
  if err then return { "the call failed: " .. tostring(err.message) } end
  local problems = {}
  if not leaks(live.text) then problems[#problems + 1] = "not echoed" end
  if not tape:find("keys: ", 1, true) then problems[#problems + 1] = "no reply on the tape" end
  if leaks(tape) then problems[#problems + 1] = "a form of the key is on the tape" end
  return problems
end

return M
