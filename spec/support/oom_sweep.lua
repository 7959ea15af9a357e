--- The allocation-failure sweep that the host OOM specs' children run in
-- the test host (spec/support/lua_host.c, `aigc_host_failat`): for each
-- call and each n in 1..last, the host fails the n-th growth after the call
-- starts and the run - 1 after it. The call must end with a memory error
-- (raised, or nil and an error saying so), and a new client's chat must then
-- succeed: the state stays usable. A hook stops a call still going after
-- `seconds` ("hung").
-- @module oom_sweep
local aigc = require "aigc"

local M = {}

local HI = { { role = "user", content = "hi there" } }

-- Lua 5.1 and 5.2 word a stack growth that ran out of memory inside
-- luaL_checkstack as "stack overflow ()" (5.2's table.sort asks for 40
-- slots so: a failed growth there, in aigc.schema's sort, read so at one n).
local STACK_GROWTH_FAILED = _VERSION == "Lua 5.1" or _VERSION == "Lua 5.2"

-- Whether `why` (nil: no error) is a memory error, or one `also` accepts.
local function acceptable (why, also)
  if not why then return true end
  why = tostring(why)
  return why == "not enough memory" or why:find("^limit: not enough memory") ~= nil
         or (STACK_GROWTH_FAILED and why:find(": stack overflow %(%)$") ~= nil)
         or (also ~= nil and also(why))
end

--- Runs the sweep. `opts`: `url`, `run`, `last`, `seconds`, `calls` (a list
-- of `{ name, fn(client) }`, or `{ name, pre = fn(client) -> fn(client) }`,
-- whose `pre` runs after a full collection and before the failures), and
-- `also`, a function(message) for the other errors a call may end with.
-- Returns the runs and the list of what went wrong.
-- @usage local runs, bad = sweep.run { url = u, run = 2, last = 300, seconds = 2, calls = calls }
function M.run (opts)
  local bad, runs, deadline = {}, 0, math.huge
  debug.sethook(function () if aigc.now() > deadline then error("hung", 0) end end, "", 1000)
  for _, call in ipairs(opts.calls) do
    for n = 1, opts.last do
      local c = aigc.client { base_url = opts.url, max_retries = 0, timeout = 5, model = "m",
                              error_handler = function () end }
      local fn = call[2]
      if call.pre then collectgarbage(); fn = call.pre(c) end
      deadline = aigc.now() + opts.seconds
      aigc_host_failat(n, opts.run)   -- luacheck: ignore 113 (the test host's)
      local ok, res, err = pcall(fn, c)
      aigc_host_failat(0)   -- luacheck: ignore 113
      deadline = math.huge
      local why = not ok and res or res == nil and err
      if type(why) == "table" then why = tostring(why.kind) .. ": " .. tostring(why.message) end
      -- (not a misuse: "bad argument #1 to 'say_async' (input: not enough memory)")
      if not acceptable(why, opts.also) then
        bad[#bad + 1] = call[1] .. " at " .. n .. ": " .. tostring(why)
      end
      pcall(c.close, c)
      local c2 = aigc.client { base_url = opts.url, max_retries = 0, timeout = 5, model = "m" }
      local ok2, res2, err2 = pcall(c2.chat, c2, { messages = HI })
      if not (ok2 and res2 and res2.text) then
        bad[#bad + 1] = call[1] .. " at " .. n .. ", then a chat: " .. tostring(err2 or res2)
      end
      c2:close()
      runs = runs + 1
    end
  end
  debug.sethook()
  return runs, bad
end

--- "N runs; M bad[: what]", as the specs compare it.
function M.report (runs, bad)
  return runs .. " runs; " .. #bad .. " bad" .. (bad[1] and (": " .. table.concat(bad, "\n")) or "")
end

return M
