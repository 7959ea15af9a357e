--- UTC timestamps without `os.date("!...")`: Lua 5.1's and 5.2's os.date
-- call gmtime(3), whose result is one static buffer for the whole process;
-- with lua_States on several threads (a host's workers, each logging or
-- running cases) one state's time could be read in the middle of
-- another's. The fields are computed here from `os.time()` (seconds since
-- 1970-01-01 UTC on POSIX) by arithmetic alone, on every Lua.
--
-- @module aigc.utc
-- @local

local math_floor, os_time, string_format = math.floor, os.time, string.format

local M = {}

--- Year, month, day, hour, minute, second (UTC) of `t`, seconds since the
-- epoch (H. Hinnant's days-to-civil; any year of the proleptic Gregorian
-- calendar).
-- @tparam number t
function M.fields (t)
  t = math_floor(t)
  local days = math_floor(t / 86400)
  local secs = t - days * 86400
  local z = days + 719468
  local era = math_floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math_floor((doe - math_floor(doe / 1460) + math_floor(doe / 36524) - math_floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math_floor(yoe / 4) - math_floor(yoe / 100))
  local mp = math_floor((5 * doy + 2) / 153)
  local day = doy - math_floor((153 * mp + 2) / 5) + 1
  local month = mp < 10 and mp + 3 or mp - 9
  local year = yoe + era * 400 + (month <= 2 and 1 or 0)
  return year, month, day, math_floor(secs / 3600), math_floor(secs % 3600 / 60), secs % 60
end

--- `t` (default now) as ISO 8601 UTC, "2026-12-06T18:47:00Z": what
-- `os.date("!%Y-%m-%dT%H:%M:%SZ", t)` gives.
-- @tparam[opt] number t
-- @treturn string
function M.iso (t)
  return string_format("%04d-%02d-%02dT%02d:%02d:%02dZ", M.fields(t or os_time()))
end

return M
