-- Soak: 20,000 mixed requests through one client, 64 at a time --
-- successes, API errors, streams, cancels and timeouts -- after a warm-up
-- of 10,000 more, and the process's resident memory must grow by less than
-- 1 MiB over the 20,000.
--
-- The warm-up is what it takes the allocator and Lua's GC pacing to reach
-- their steady state (measured: RSS rises ~0.8 MiB over the first ~8,000
-- requests of this mix, then stays flat to 100,000); a leak keeps growing.
--
--   lua5.4 spec/soak.lua [requests [warmup]]   (run by `make test`; prints "soak: ok")
--   AIGC_CPATH='build/jit/?.so' luajit spec/soak.lua   another interpreter and its build
package.path = "lua/?.lua;lua/?/init.lua;spec/support/?.lua;" .. package.path
local cpath = os.getenv("AIGC_CPATH")
package.cpath = ((cpath and cpath ~= "") and cpath or "./?.so") .. ";" .. package.cpath

local aigc = require "aigc"
local devserver = require "devserver"

local WARMUP = tonumber(arg[2]) or 10000
local TOTAL = (tonumber(arg[1]) or 20000) + WARMUP
local IN_FLIGHT = 64
local LIMIT_KIB = 1024

local function rss_kib ()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("*a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

local srv = devserver.start()
local client = aigc.client { base_url = srv.base_url, max_retries = 0, model = "aigc-dev" }

local HI = { { role = "user", content = "Hi" } }
local kinds = { ok = 0, stream = 0, api_error = 0, canceled = 0, timeout = 0 }
local unexpected = {}

-- The mix, by request number: mostly successes, then each failure class.
local function submit (i)
  local m = i % 20
  if m == 0 then
    return "api_error", client:chat_async { messages = HI, headers = { ["x-aigc-fault"] = "status=400" } }
  elseif m == 1 then
    local chars = 0
    return "stream", client:chat_async { messages = HI, stream = function (d) chars = chars + #(d or "") end }
  elseif m == 2 then
    local req = client:chat_async { messages = HI, headers = { ["x-aigc-fault"] = "delay=50" } }
    return "canceled", req
  elseif m == 3 then
    return "timeout", client:chat_async { messages = HI, timeout = 0.05, headers = { ["x-aigc-fault"] = "hang" } }
  else
    return "ok", client:chat_async { messages = HI }
  end
end

local function check (expect, req)
  local res, err = req:result()
  local got
  if res then
    got = (expect == "stream" and res.text) and "stream" or (res.text and "ok")
  elseif err then
    got = (err.kind == "http" and err.status == 400 and "api_error") or err.kind
  end
  if got ~= expect then
    unexpected[#unexpected + 1] = ("request expected %s, got %s"):format(expect, tostring(err or got))
  else
    kinds[got] = kinds[got] + 1
  end
end

local slots, started, finished = {}, 0, 0
local rss_after_warmup
local t0 = aigc.now()
while finished < TOTAL do
  while started < TOTAL and #slots < IN_FLIGHT do
    started = started + 1
    local expect, req = submit(started)
    if expect == "canceled" then req:cancel() end
    slots[#slots + 1] = { expect = expect, req = req }
  end
  client:step(0.01)
  local i = 1
  while i <= #slots do
    local s = slots[i]
    local st = s.req:status()
    if st ~= "queued" and st ~= "running" then
      check(s.expect, s.req)
      slots[i] = slots[#slots]
      slots[#slots] = nil
      finished = finished + 1
      if finished == WARMUP then
        collectgarbage()
        collectgarbage()
        rss_after_warmup = rss_kib()
      end
    else
      i = i + 1
    end
  end
end
collectgarbage()
collectgarbage()
local rss_end = rss_kib()
local elapsed = aigc.now() - t0
client:close()
srv:stop()

local growth = rss_end - rss_after_warmup
print(("soak: %d requests in %.1f s (%d ok, %d streams, %d API errors, %d canceled, %d timeouts)")
      :format(TOTAL, elapsed, kinds.ok, kinds.stream, kinds.api_error, kinds.canceled, kinds.timeout))
print(("soak: RSS %d KiB after the %d warm-up requests, %d KiB after %d more: growth %d KiB (limit %d KiB)")
      :format(rss_after_warmup, WARMUP, rss_end, TOTAL - WARMUP, growth, LIMIT_KIB))
for k = 1, math.min(#unexpected, 10) do print("soak: " .. unexpected[k]) end
if #unexpected == 0 and growth < LIMIT_KIB then
  print("soak: ok")
else
  print(("soak: FAILED (%d unexpected outcomes, growth %d KiB)"):format(#unexpected, growth))
  os.exit(1)
end
