--- The forms a blocking call is made in, for the re-entrancy sweeps
-- (spec/tools_reentry_spec.lua, spec/promptlog_reentry_spec.lua): inside
-- the user's own coroutine, and inside a task of another client.
local aigc = require "aigc"

local M = {}

--- Seconds a sweep's loop may turn before it gives up: a guard against a
-- hang only, never a time asserted (AIGC_TIMEOUT_SCALE: valgrind's slack).
M.GUARD = 20 * (tonumber(os.getenv("AIGC_TIMEOUT_SCALE")) or 1)

--- Runs `fn` in a coroutine of the user's own (not aigc's): raises what
-- it raised; returns the coroutine's status after ("dead": fn returned;
-- "suspended": something yielded out of it).
function M.in_coroutine (fn)
  local co = coroutine.create(fn)
  local ok, e = coroutine.resume(co)
  if not ok then error(e, 0) end
  return coroutine.status(co)
end

--- Runs `fn` in a task of `host` (a client, closed after), turning its
-- loop until fn returns (M.GUARD s at most: a guard against a hang only);
-- raises what a step raised. Returns whether fn returned.
function M.in_task (host, fn)
  local done = false
  host:spawn(function () fn(); done = true end)
  local guard = aigc.now() + M.GUARD
  local ok, e = pcall(function ()
    while not done and aigc.now() < guard do host:step(0.01) end
  end)
  host:close()
  if not ok then error(e, 0) end
  return done
end

return M
