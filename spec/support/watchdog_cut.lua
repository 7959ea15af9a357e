--- Test helper: a host's watchdog, as a one-shot count hook that raises
-- "watchdog" at the n-th instruction counted (over calls) while it is set
-- (the method of end_cut_spec and future_cut_spec: cut a turn of the loop
-- at every instruction, one run per n).
local M = {}

--- Runs `fn()` under the hook; `state.k` counts the instructions met so
-- far (give the same table to every call of one run). When it fires it
-- records in `state`: `fired`, `where` (the function it cut), `co` (the
-- coroutine it cut, or nil on the main thread). `counts(co)` (optional)
-- says whether an instruction of coroutine `co` (nil: main) is counted.
-- Returns pcall's results for fn.
function M.run (n, state, fn, counts)
  state.k = state.k or 0
  local ok, e = pcall(function ()
    debug.sethook(function ()
      local co, main = coroutine.running()
      if main then co = nil end
      if counts and not counts(co) then return end
      state.k = state.k + 1
      if state.k == n then
        state.where = debug.getinfo(2, "f").func
        state.co = co
        debug.sethook(); state.fired = true; error("watchdog", 0)
      end
    end, "", 1)
    fn()
    debug.sethook()
  end)
  debug.sethook()
  return ok, e
end

return M
