-- json_flood.lua — what a hostile JSON reply costs one client: peak RSS and
-- wall time. Not a test: nothing fails on a number (bench/README.md).
--
--   lua5.4 bench/json_flood.lua http [SIZE_BYTES [FAULT]]
--       one client:chat against the devserver, whose reply is a JSON value
--       flood (`body=empty-arrays,size=SIZE`: `"x":[[],[],...]`) or FAULT
--   lua5.4 bench/json_flood.lua decode SHAPE
--       aigc.json.decode of a generated document at the default limits
--       (the same parser and the same table building as a reply):
--         arrays   [[],[],...]       as many arrays as max_json_containers allows
--         zeros    [0,0,...]         as many values as max_json_values allows
--         mixed    the containers limit in [] and the rest of the values as 0
--         members  {"k1":"v1",...}   distinct keys and strings, within 64 MiB
--         strings  ["s1","s2",...]   distinct strings, up to the values limit
--
-- Run one figure per process (VmHWM is the process's peak). It prints one
-- line: the shape, its size, the outcome, seconds, the peak RSS the call
-- added, and that peak as a multiple of the document's size.
package.path = "lua/?.lua;lua/?/init.lua;spec/support/?.lua;" .. package.path
package.cpath = "./?.so;" .. package.cpath
local aigc = require "aigc"
local core = require "aigc.core"

local MAX_VALUES, MAX_CONTAINERS = 8388608, 1048576

local function peak_kib ()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmHWM:%s*(%d+)"))
end

-- Documents at the limits: as big as the default limits let through.
local SHAPES = {
  arrays = function () return "[" .. ("[],"):rep(MAX_CONTAINERS - 2) .. "[]]" end,
  zeros = function () return "[" .. ("0,"):rep(MAX_VALUES - 2) .. "0]" end,
  mixed = function ()
    return "[" .. ("[],"):rep(MAX_CONTAINERS - 1) .. ("0,"):rep(MAX_VALUES - 2 * MAX_CONTAINERS) .. "0]"
  end,
  members = function ()
    local parts, n, size = {}, 0, 0
    while size < 63 * 1024 * 1024 and n < MAX_VALUES - 1 do
      n = n + 1
      local p = ('"k%d":"v%d"'):format(n, n)
      parts[n] = p
      size = size + #p + 1
    end
    return "{" .. table.concat(parts, ",") .. "}"
  end,
  strings = function ()
    local parts, n, size = {}, 0, 0
    while size < 63 * 1024 * 1024 and n < MAX_VALUES - 1 do
      n = n + 1
      local p = ('"s%d"'):format(n)
      parts[n] = p
      size = size + #p + 1
    end
    return "[" .. table.concat(parts, ",") .. "]"
  end,
}

local mode = arg[1] or "http"
if mode == "decode" then
  local shape = arg[2] or "mixed"
  local text = assert(SHAPES[shape], "unknown shape")()
  collectgarbage()
  collectgarbage()
  local before = peak_kib()
  local t0 = core.now()
  local ok, v = pcall(aigc.json.decode, text)
  local t1 = core.now()
  local after = peak_kib()
  local n = ok and type(v) == "table" and #v or 0
  print(string.format("decode %-8s %6.1f MB: %s, %.2f s, peak RSS +%.0f MiB (%.1f x the text)",
    shape, #text / 1e6, ok and ("ok, " .. n .. " items") or tostring(v), t1 - t0,
    (after - before) / 1024, (after - before) * 1024 / #text))
else
  local devserver = require "devserver"
  local size = tonumber(arg[2]) or 63000000
  local fault = arg[3] or ("body=empty-arrays,size=" .. size)
  local srv = devserver.start()
  local client = aigc.client { base_url = srv.base_url, max_retries = 0, timeout = 600 }
  collectgarbage()
  local before = peak_kib()
  local t0 = core.now()
  local res, err = client:chat { model = "fault:" .. fault, messages = { { role = "user", content = "hi" } } }
  local t1 = core.now()
  local after = peak_kib()
  local outcome = res and ("ok, #x = " .. #(res.x or {})) or tostring(err)
  client:close()
  srv:stop()
  print(string.format("http %d bytes: %.2f s, peak RSS %.0f MiB (%.0f MiB before the call): %s",
    size, t1 - t0, after / 1024, before / 1024, outcome:sub(1, 160)))
end
