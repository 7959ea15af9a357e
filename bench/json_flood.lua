-- json_flood.lua — what a hostile JSON reply costs one client: peak RSS and
-- wall time of one client:chat whose reply is a JSON value flood (the
-- devserver's `body=empty-arrays`: `"x":[[],[],...]`), or any other fault.
--
--   lua5.4 bench/json_flood.lua [SIZE_BYTES [FAULT]]
--
-- Run it in a fresh process per figure (VmHWM is the process's peak). It
-- prints one line: size, outcome, seconds, peak RSS before and after the
-- call. Not a test: nothing fails on a number (bench/README.md).
package.path = "lua/?.lua;lua/?/init.lua;spec/support/?.lua;" .. package.path
package.cpath = "./?.so;" .. package.cpath
local aigc = require "aigc"
local devserver = require "devserver"

local size = tonumber(arg[1]) or 63000000
local fault = arg[2] or ("body=empty-arrays,size=" .. size)

local function peak_kib ()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmHWM:%s*(%d+)")), tonumber(s:match("VmRSS:%s*(%d+)"))
end

local srv = devserver.start()
local client = aigc.client { base_url = srv.base_url, max_retries = 0, timeout = 600 }
collectgarbage()
local before = peak_kib()
local t0 = aigc.now and aigc.now() or os.clock()
local res, err = client:chat { model = "fault:" .. fault, messages = { { role = "user", content = "hi" } } }
local t1 = aigc.now and aigc.now() or os.clock()
local after = peak_kib()
local outcome = res and ("ok, #x = " .. #(res.x or {})) or tostring(err)
client:close()
srv:stop()
print(string.format("flood %d bytes: %.2f s, peak RSS %.0f MiB (%.0f MiB before the call): %s",
  size, t1 - t0, after / 1024, before / 1024, outcome:sub(1, 160)))
