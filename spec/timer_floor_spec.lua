-- The requests' timers with many requests waiting (issue 17 item 3): a
-- step looks only at the requests whose timer (a deadline, a retry, a
-- stream's idle limit, the grace after [DONE]) is due (the roster's heap of
-- timers, src/timers.h; until 2026-12-06 a floor, then a walk of every
-- request), so a step with thousands waiting costs O(ready). These cases
-- pin that no timer is missed when it is set after later ones: each short
-- timer below is set while 20 requests hold timers minutes away. Each case runs in a child
-- (a missed timer would hang it: that must fail the case, not the run) and
-- asserts on what ended each call, never on tight wall-clock bounds.
local devserver = require "devserver"
local luachild = require "luachild"

-- The child: 20 requests that hang with a deadline of 120 s (the floor),
-- a few steps so that a scan sets the floor there, then `case` (Lua code
-- that sees `c`, `fault`, `report`), driven until it reports.
local CHILD = [[
local aigc = require "aigc"
local c = aigc.client { base_url = arg[1], max_retries = 0, timeout = 600 }
local HI = { { role = "user", content = "Hi" } }
local function fault (spec, extra)
  local p = { messages = HI, headers = { ["x-aigc-fault"] = spec } }
  for k, v in pairs(extra or {}) do p[k] = v end
  return p
end
local waiting = {}
for i = 1, 20 do waiting[i] = c:chat_async(fault("hang", { deadline = 120 })) end
for _ = 1, 5 do c:step(0.01) end
local out
local function report (...) out = table.concat({ ... }, " ") end
CASE
local t0 = aigc.now()
while out == nil and aigc.now() - t0 < 20 do c:step(0.05) end
local running = 0
for _, r in ipairs(waiting) do if r:status() == "running" then running = running + 1 end end
print(out or "nothing ended", running)
c:close()
]]

local function run (srv, case)
  local r = luachild.run((CHILD:gsub("CASE", function () return case end)),
                         { args = { srv.base_url }, timeout = 60 })
  assert.equal(0, r.status, r.stderr)
  return r.stdout
end

describe("timers with many requests waiting", function ()
  local srv
  setup(function () srv = devserver.start { pause_ms = 0 } end)
  teardown(function () srv:stop() end)

  it("ends a call at its deadline, set after the floor", function ()
    assert.equal("timeout the call's deadline (0.3 s) passed\t20\n", run(srv, [[
      c:chat_async(fault("hang", { deadline = 0.3, on_error = function (e) report(e.kind, e.message) end }))
    ]]))
  end)

  it("takes a retry that is due before the floor", function ()
    assert.equal("done 1\t20\n", run(srv, [[
      c:chat_async(fault("status=503,retry-after-ms=100,times=1,key=r1", { max_retries = 1,
        on_done = function (res) report("done", res.retries) end,
        on_error = function (e) report(e.kind, e.message) end }))
    ]]))
  end)

  it("ends a silent stream at its idle limit", function ()
    assert.equal("timeout\t20\n", run(srv, [[
      c:chat_async(fault("hang", { timeout = 0.3, stream = function () end,
        on_error = function (e) report(e.kind) end }))
    ]]))
  end)
end)
