--- The cut sweeps' points (watchdog_cut.sweep, future_sweep.each_cut,
-- end_cut_spec, say_cut_spec: a run per instruction n = 1, 2, ... until
-- a cut no longer fires; task_ends_oom_spec's failed allocation n = 1 ...
-- 60, in its child). Everywhere but under valgrind and ASan they
-- visit every point. There, where the point is memory errors on the C
-- paths and one point costs 20-50 times as much, scripts/run-tests.sh
-- sets AIGC_SWEEP_STRIDE (e.g. 5) and AIGC_SWEEP_OFFSET (0 ... stride - 1,
-- another one per runner): a sweep visits n = offset + 1, offset + 1 +
-- stride, ... only (each point visited is checked as before: a bad one
-- still fails the spec), and the plain busted runs under the five
-- interpreters keep the full sweep.
-- @module sweep_points
local M = {}

local function int_env (name, default, low)
  local s = os.getenv(name)
  if s == nil or s == "" then return default end
  local v = tonumber(s)
  if not v or v ~= math.floor(v) or v < low then
    error(name .. " must be an integer >= " .. low .. ", not " .. ("%q"):format(s), 0)
  end
  return v
end

--- Every `stride`-th point is visited (1: every point); AIGC_SWEEP_STRIDE.
M.stride = int_env("AIGC_SWEEP_STRIDE", 1, 1)
--- The first point visited is offset + 1; AIGC_SWEEP_OFFSET, modulo the stride.
M.offset = int_env("AIGC_SWEEP_OFFSET", 0, 0) % M.stride

--- Whether point `n` (1, 2, ...) is visited.
function M.visits (n) return (n - 1) % M.stride == M.offset end

--- The first point after `n` (0 before the first) that is visited.
function M.after (n)
  local k = n + 1
  return k + (M.offset - (k - 1)) % M.stride
end

return M
