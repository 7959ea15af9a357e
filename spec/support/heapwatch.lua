--- A dataset run's heap, watched: `runner.run(spec)` stopped after its
-- third result, the heap's growth over what the process held before (in
-- the whole suite, other specs' live data is in the same heap) taken after
-- each result, a full collection first.
-- @usage local grown, none, err = require("heapwatch").run(runner, { client = c, cases = path })

local M = {}

--- Runs it (its `on_result` and `interrupted` are this module's).
-- @treturn table the growth after each result, in KB
-- @return what `runner.run` returned
function M.run (runner, spec)
  collectgarbage()
  collectgarbage()
  local before = collectgarbage("count")
  local grown, n = {}, 0
  spec.on_result = function ()
    n = n + 1
    collectgarbage()
    collectgarbage()
    grown[#grown + 1] = collectgarbage("count") - before
  end
  spec.interrupted = function () return n >= 3 end
  return grown, runner.run(spec)
end

return M
