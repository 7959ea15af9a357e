-- Pure Lua, the way existing Lua clients talk to these servers: Debian's
-- lua-socket (socket.http, one connection per request: it sends
-- "Connection: close") and lua-cjson. The same work as floor.c.
--
--   lua5.4 bench/luasocket_bench.lua seq URL N EXPECT_FILE
--
-- Prints "ok n=... wall=... cpu=... rss_kb=..." (CPU: os.clock()).

local http = require "socket.http"
local ltn12 = require "ltn12"
local socket = require "socket"
local cjson = require "cjson"
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local params = require "request_params"   -- the request every client sends

local mode, url, n, expect_file = arg[1], arg[2], tonumber(arg[3]), arg[4]
assert(mode == "seq", "only seq")
local f = assert(io.open(expect_file, "rb"))
local expect = f:read("a")
f:close()

local function one (i)
  local body = cjson.encode(params(i))
  local out = {}
  local ok, code = http.request {
    url = url .. "/chat/completions",
    method = "POST",
    headers = {
      ["content-type"] = "application/json",
      ["accept"] = "application/json",
      ["authorization"] = "Bearer sk-bench",
      ["content-length"] = tostring(#body),
    },
    source = ltn12.source.string(body),
    sink = ltn12.sink.table(out),
  }
  if not ok or code ~= 200 then error("request failed: " .. tostring(code)) end
  local res = cjson.decode(table.concat(out))
  if res.choices[1].message.content ~= expect then error("unexpected response content") end
end

for i = 1, 20 do one(i) end
local t0, c0 = socket.gettime(), os.clock()
for i = 1, n do one(i) end
local wall, cpu = socket.gettime() - t0, os.clock() - c0
local st = assert(io.open("/proc/self/status"))
local hwm = st:read("a"):match("VmHWM:%s*(%d+)")
st:close()
print(("ok n=%d wall=%.6f cpu=%.6f rss_kb=%s"):format(n, wall, cpu, hwm))
