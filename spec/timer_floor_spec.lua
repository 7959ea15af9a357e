-- The requests' timers with many requests waiting (issue 17 item 3): a
-- step looks only at the requests whose timer (a deadline, a retry, a
-- stream's idle limit, the grace after [DONE]) is due (the roster's heap of
-- timers, src/timers.h; until 2026-12-06 a floor, then a walk of every
-- request), so a step with thousands waiting costs O(ready). These cases
-- pin that no timer is missed when it is set after later ones: each short
-- timer below is set while 20 requests hold timers minutes away. The
-- heap's own cases (the second half) pin what must not change: timers fire
-- in the order they fall due and exactly once, through cancels, closes and
-- new requests made from inside the callbacks they cause and from
-- finalizers, for requests ended before their timer came and for requests
-- Lua frees with no __gc. Each case runs in a child (a missed timer would
-- hang it: that must fail the case, not the run; under the ASan suite a
-- read of freed memory is its exit status) and asserts on what ended each
-- call, never on tight wall-clock bounds.
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

-- Runs `script` in a child on the server's URL: its output (under the ASan
-- suite a read of freed memory fails the case).
local function child (srv, script)
  local r = luachild.run(script, { args = { srv.base_url }, timeout = 60,
                                   env = { ASAN_OPTIONS = "detect_leaks=0:abort_on_error=0:exitcode=23" } })
  assert.is_nil(r.stderr:find("Sanitizer", 1, true), r.stderr)
  assert.equal(0, r.status, r.stderr)
  return r.stdout
end

local function run (srv, case)
  return child(srv, (CHILD:gsub("CASE", function () return case end)))
end

-- The heap's cases (the second half below): a client on arg[1], `call`
-- (a request that hangs, or has a fault), `drive` (steps until `done()`).
local PRELUDE = [[
local aigc = require "aigc"
local c = aigc.client { base_url = arg[1], max_retries = 0, timeout = 600 }
local HI = { { role = "user", content = "Hi" } }
local function call (fault, extra)
  local p = { messages = HI, headers = fault and { ["x-aigc-fault"] = fault } or nil }
  for k, v in pairs(extra or {}) do p[k] = v end
  return p
end
local function drive (client, done)   -- (30 s at most: a guard against a hang, the child's own is 60)
  local t0 = aigc.now()
  while not done() and aigc.now() - t0 < 30 do client:step(0.05) end
end
]]
local function heap (srv, script) return child(srv, PRELUDE .. script) end

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

  -- Timers that fell due while nobody stepped all fire in one step: the
  -- earliest first. (The walk of the engine's requests, newest first,
  -- delivered them in the reverse order of their submission.)
  it("fires the timers due in one step earliest first, each once", function ()
    assert.equal("1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 | once\n", heap(srv, [[
      local seen, count, n = {}, {}, 20
      local t0 = aigc.now()
      for i = 1, n do
        c:chat_async(call("hang", { deadline = 0.2 + i * 0.003, on_error = function (e)
          if e.kind == "timeout" then seen[#seen + 1] = i end
          count[i] = (count[i] or 0) + 1
        end }))
      end
      while aigc.now() - t0 < 0.2 + n * 0.003 + 0.02 do end   -- (every deadline passes unstepped)
      drive(c, function () return #seen == n end)
      for _ = 1, 3 do c:step(0) end
      local once = "once"
      for i = 1, n do if count[i] ~= 1 then once = i .. " ended " .. tostring(count[i]) .. " times" end end
      print(table.concat(seen, " ") .. " | " .. once)
    ]]))
  end)

  it("holds through cancel, close and new requests from inside the callbacks timers cause", function ()
    assert.equal("A timeout, G canceled, B canceled, D timeout, F canceled | closed true\n", heap(srv, [[
      local log = {}
      local function note (name) return function (e) log[#log + 1] = name .. " " .. e.kind end end
      local B, D, F, G
      local A
      A = c:chat_async(call("hang", { deadline = 0.2, on_error = function (e)
        note("A")(e)
        A:cancel()   -- (itself, ended: nothing)
        G:cancel()   -- timed out in the same step, its end not delivered yet
        B:cancel()   -- its timer still to come
        D = c:chat_async(call("hang", { deadline = 0.1, on_error = function (e2)
          note("D")(e2)
          c:close()   -- F's timer is far off: the close ends it
        end }))
      end }))
      G = c:chat_async(call("hang", { deadline = 0.21, on_error = note("G") }))
      B = c:chat_async(call("hang", { deadline = 0.3, on_error = note("B") }))
      F = c:chat_async(call("hang", { deadline = 60, on_error = note("F") }))
      local t0 = aigc.now()
      while aigc.now() - t0 < 0.25 do end   -- (A's and G's deadlines pass unstepped)
      drive(c, function () return #log >= 5 end)
      print(table.concat(log, ", ") .. " | closed " .. tostring(not pcall(c.step, c, 0)))
    ]]))
  end)

  it("fires nothing for a request that ended before its timer came", function ()
    assert.equal("plain done, stream done, retried done 1, hang timeout | 4 ends\n", heap(srv, [[
      local log, ends = {}, 0
      local function cbs (name)
        return { on_done = function (res) ends = ends + 1
                   log[#log + 1] = name .. " done" .. (name == "retried" and " " .. res.retries or "") end,
                 on_error = function (e) ends = ends + 1; log[#log + 1] = name .. " " .. e.kind end }
      end
      local function with (t, extra) for k, v in pairs(extra) do t[k] = v end return t end
      -- (timers far above a request's time even on a loaded machine: 0.3 s
      -- was not, the server of a CI runner busy with six lanes on two cores)
      c:chat_async(call(nil, with(cbs("plain"), { deadline = 3 })))
      drive(c, function () return #log == 1 end)
      c:chat_async(call(nil, with(cbs("stream"), { timeout = 3, deadline = 3, stream = function () end })))
      drive(c, function () return #log == 2 end)
      c:chat_async(call("status=503,retry-after-ms=50,times=1,key=heap-r1",
                        with(cbs("retried"), { max_retries = 1, deadline = 3.05 })))
      drive(c, function () return #log == 3 end)
      c:chat_async(call("hang", with(cbs("hang"), { deadline = 3.1 })))   -- (after every other timer)
      drive(c, function () return #log == 4 end)
      for _ = 1, 3 do c:step(0) end
      print(table.concat(log, ", ") .. " | " .. ends .. " ends")
    ]]))
  end)

  -- Requests with timers dropped (their __gc cancels them), freed by Lua
  -- with no __gc (their finalizer's metatable taken away), canceled and a
  -- second client closed by other objects' finalizers, all while timers
  -- are pending: the heap must never point at a request the engine let go.
  it("lets finalizers and unfinalized requests take requests with timers away", function ()
    assert.equal("kept 12 timeout, other client closed true, canceled by a finalizer 1\n", heap(srv, [[
      local mt = debug.getregistry()["aigc.request.core"]
      local function finalizer_of (req)
        local found
        if _VERSION == "Lua 5.4" then
          for n = 1, 16 do
            local v = debug.getuservalue(req, n)
            if type(v) == "userdata" and debug.getmetatable(v) == mt then found = v end
          end
        else
          for _, v in pairs((debug.getuservalue or debug.getfenv)(req) or {}) do
            if type(v) == "userdata" and debug.getmetatable(v) == mt then found = v end
          end
        end
        return assert(found, "no finalizer found")
      end
      local other = aigc.client { base_url = arg[1], max_retries = 0 }
      local timeouts, canceled = 0, 0
      local victim = c:chat_async(call("hang", { deadline = 30,
        on_error = function (e) if e.kind == "canceled" then canceled = canceled + 1 end end }))
      for i = 1, 36 do
        local mode = i % 3
        local r = c:chat_async(call("hang", { deadline = 0.05 + (i % 7) * 0.02,
          on_error = mode == 0 and function (e) if e.kind == "timeout" then timeouts = timeouts + 1 end end or nil }))
        if mode == 1 then debug.setmetatable(finalizer_of(r), nil) end   -- (freed with no __gc)
        other:chat_async(call("hang", { deadline = 0.05 + (i % 5) * 0.02 }))
      end
      local function on_gc (f) local u = newproxy and newproxy(true) or setmetatable({}, { __gc = f })
        if newproxy then getmetatable(u).__gc = f end
        return u
      end
      on_gc(function () victim:cancel() end)
      on_gc(function () other:close() end)
      for _ = 1, 3 do collectgarbage(); c:step(0); collectgarbage() end
      drive(c, function () return timeouts == 12 and canceled == 1 end)
      for _ = 1, 4 do collectgarbage(); c:step(0.02) end
      print(("kept %d timeout, other client closed %s, canceled by a finalizer %d"):format(timeouts,
        tostring(not pcall(other.active, other)), canceled))
    ]]))
  end)

  it("ends each of many requests with mixed timers exactly once", function ()
    assert.equal("ends 240, twice 0, timeouts 60, done 60, canceled 120\n", heap(srv, [[
      local ends, kinds, reqs = {}, {}, {}
      local function record (i) return
        function () ends[i] = (ends[i] or 0) + 1; kinds.done = (kinds.done or 0) + 1 end,
        function (e) ends[i] = (ends[i] or 0) + 1; kinds[e.kind] = (kinds[e.kind] or 0) + 1 end
      end
      local n = 240
      for i = 1, n do
        local on_done, on_error = record(i)
        local kind = i % 4
        local p = kind == 0 and call(nil, { deadline = 20 + (i % 9) * 0.01 })        -- done before its timer
               or kind == 1 and call("hang", { deadline = 0.05 + (i % 11) * 0.013 })  -- its timer ends it
               or kind == 2 and call("hang", { timeout = 30, stream = function () end,
                                               deadline = 30 })                       -- canceled below
               or call("hang", {})                                                    -- canceled below
        p.on_done, p.on_error = on_done, on_error
        reqs[i] = c:chat_async(p)
        if kind == 1 and i > 8 then reqs[i - 7]:cancel() end   -- a kind-2 request, with a timer
      end
      drive(c, function () return (kinds.timeout or 0) >= 60 and (kinds.done or 0) >= 60 end)
      for i = 1, n do if i % 4 >= 2 then reqs[i]:cancel() end end
      drive(c, function () return c:active() == 0 end)
      local total, twice = 0, 0
      for i = 1, n do total = total + (ends[i] and 1 or 0); if (ends[i] or 0) > 1 then twice = twice + 1 end end
      print(("ends %d, twice %d, timeouts %d, done %d, canceled %d"):format(total, twice, kinds.timeout or 0,
        kinds.done or 0, kinds.canceled or 0))
    ]]))
  end)
end)
