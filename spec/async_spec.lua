-- Non-blocking requests: chat_async + step, tasks, cancel from anywhere,
-- concurrency proven by the server's own count of open requests (never by
-- timing).
local aigc = require "aigc"
local devserver = require "devserver"
local portable = require "portable"

-- `local x <close> = obj` around `body(x)` on 5.4, the README's explicit form elsewhere.
local with_close = portable.with_close

warn("@on")

local params = devserver.params   -- one "Hi" message, a fault header, extra fields

-- The clock time `seconds` from now, times AIGC_TIMEOUT_SCALE (valgrind's
-- lanes: 4): every deadline below is a guard against a hang, which a slow
-- run must not trip (a 5 s wait_for under valgrind on a loaded CI machine).
local SCALE = tonumber(os.getenv("AIGC_TIMEOUT_SCALE")) or 1
local function guard_time (seconds) return os.time() + seconds * SCALE end

local function in_flight (req)
  local s = req:status()
  return s == "queued" or s == "running"
end

-- Steps until every request is over (bounded, so a bug cannot hang the suite).
local function run_all (client, reqs, seconds)
  local deadline = guard_time(seconds or 20)
  while os.time() < deadline do
    local any = false
    for _, r in ipairs(reqs) do any = any or in_flight(r) end
    if not any then return end
    client:step(0.05)
  end
  error("requests still pending after " .. (seconds or 20) * SCALE .. " s")
end

local function wait_for (cond, seconds)
  local deadline = guard_time(seconds or 5)
  while not cond() do
    assert(os.time() < deadline, "condition not met in time")
  end
end

describe("non-blocking requests", function ()
  local srv, client

  devserver.fixture(_ENV, function (s, c) srv, client = s, c end)

  it("runs 64 requests at once: the server saw 64 open", function ()
    local reqs = {}
    for i = 1, 64 do
      reqs[i] = client:chat_async(params("delay=400", { messages = { { role = "user", content = "Echo: n" .. i } } }))
    end
    run_all(client, reqs)
    for i, r in ipairs(reqs) do
      local res = assert(r:result())
      assert.equal("n" .. i, res.text)
    end
    assert.equal(64, srv:stats().max_open)
  end)

  it("returns from step(0) while the server still holds the reply", function ()
    local req = client:chat_async(params("delay=300"))
    -- (had a step waited for the reply, the request would be done)
    for _ = 1, 5 do client:step(0) end
    assert.equal("running", req:status())
    assert.is_nil(req:result())
    assert.is_nil(select(2, req:result()))
    assert.matches("^aigc.request %(running, chat%)", tostring(req))
    assert(req:wait())
    assert.equal("done", req:status())
    assert.matches("^aigc.request %(done, chat%)", tostring(req))
  end)

  it("step returns the number of requests still active", function ()
    local a = client:chat_async(params("delay=200"))
    local b = client:chat_async(params("delay=200"))
    assert.equal(2, client:step(0))
    assert.equal(2, client:active())
    run_all(client, { a, b })
    assert.equal(0, client:step(0))
  end)

  it("runs on_done and on_error from step", function ()
    local done, failed
    local a = client:chat_async(params(nil, { on_done = function (res) done = res end }))
    local b = client:chat_async(params("status=400", { on_error = function (err) failed = err end }))
    assert.is_nil(done)
    run_all(client, { a, b })
    assert.equal(a:result(), done)
    assert.equal("http", failed.kind)
    assert.equal(400, failed.status)
  end)

  it("hands over 300 replies that all came before one step: each once, to its own request", function ()
    -- (the step reads every transfer that ended in its turn before it lets
    -- libcurl forget any: loop.c collect_finished; bench/README, issue 17)
    local N, got, reqs = 300, {}, {}
    for i = 1, N do
      reqs[i] = client:chat_async(params("delay=1000", { messages = { { role = "user", content = "Echo: n" .. i } },
        on_done = function (res) got[#got + 1] = { i, res } end }))
    end
    while srv:stats().requests_total < N do client:step(0) end   -- all sent, none answered yet
    wait_for(function () return srv:stats().open_now == 0 end, 20)   -- all answered, none read yet
    assert.equal(0, #got)
    client:step(0)
    assert.equal(N, #got)
    local seen = {}
    for _, g in ipairs(got) do
      local i, res = g[1], g[2]
      assert.is_nil(seen[i])
      seen[i] = true
      assert.equal("n" .. i, res.text)
      assert.equal(res, (reqs[i]:result()))
    end
  end)

  it("keeps a request with callbacks alive when the script dropped it", function ()
    local done
    client:chat_async(params("delay=100", { on_done = function (res) done = res.text end }))
    collectgarbage()
    collectgarbage()
    local deadline = guard_time(10)
    while not done and os.time() < deadline do client:step(0.05) end
    assert.is_string(done)
  end)

  it("delivers at most `budget` callbacks per step", function ()
    local deltas = 0
    local req = client:chat_async(params(nil, { stream = function () deltas = deltas + 1 end }))
    local deadline = guard_time(10)
    while deltas == 0 and os.time() < deadline do client:step(0.05, 1) end
    assert.equal(1, deltas)
    client:step(0, 3)
    assert.truthy(deltas <= 4)
    run_all(client, { req })
    assert.truthy(deltas > 4)
  end)

  it("refuses step() from inside a callback", function ()
    local raised
    local req = client:chat_async(params(nil, { on_done = function ()
      raised = select(2, pcall(client.step, client))
    end }))
    run_all(client, { req })
    assert.matches("inside an aigc callback", raised)
  end)

  it("isolates an error in one request's callback from the others", function ()
    local errors = {}
    local c = aigc.client { base_url = srv.base_url, error_handler = function (e) errors[#errors + 1] = e end }
    local bad = c:chat_async(params(nil, { stream = function () error("bad callback") end }))
    local bad_done = c:chat_async(params(nil, { on_done = function () error("bad on_done") end }))
    local good = c:chat_async(params(nil, { stream = function () end }))
    run_all(c, { bad, bad_done, good })
    local _, err = bad:result()
    assert.equal("callback", err.kind)
    assert.truthy(bad_done:result())   -- on_done failing does not fail the request
    assert.truthy(good:result())
    assert.equal(1, #errors)
    assert.matches("bad on_done", tostring(errors[1].message or errors[1]))
    c:close()
  end)

  it("returns callback errors from step when there is no error_handler", function ()
    local req = client:chat_async(params(nil, { on_done = function () error("lost?") end }))
    local found
    local deadline = guard_time(10)
    while not found and os.time() < deadline do
      local _, errors = client:step(0.05)
      if errors then found = errors end
    end
    assert.truthy(found)
    assert.matches("lost%?", tostring(found[1]))
    assert.equal("done", req:status())
  end)

  describe("max_concurrency", function ()
    it("queues beyond the cap, first in first out", function ()
      local c = aigc.client { base_url = srv.base_url, max_concurrency = 2 }
      local order, reqs = {}, {}
      for i = 1, 6 do
        reqs[i] = c:chat_async(params("delay=100", { on_done = function () order[#order + 1] = i end }))
      end
      assert.equal("running", reqs[1]:status())
      assert.equal("running", reqs[2]:status())
      assert.equal("queued", reqs[3]:status())
      run_all(c, reqs)
      assert.equal(2, srv:stats().max_open)
      -- FIFO: request i starts before request i + 2 (pairs may finish in either order)
      local pos = {}
      for k, i in ipairs(order) do pos[i] = k end
      for i = 1, 4 do assert.truthy(pos[i] < pos[i + 2]) end
      c:close()
    end)
  end)

  describe("cancel", function ()
    it("cancels a queued request before it starts", function ()
      local c = aigc.client { base_url = srv.base_url, max_concurrency = 1 }
      local first = c:chat_async(params("delay=200"))
      local done, errors = 0, {}
      local second = c:chat_async(params(nil, { on_done = function () done = done + 1 end,
                                                on_error = function (e) errors[#errors + 1] = e end }))
      assert.equal("queued", second:status())
      assert.is_true(second:cancel())
      assert.equal("canceled", second:status())
      local res, err = second:result()
      assert.is_nil(res)
      assert.equal("canceled", err.kind)
      assert.equal(0, #errors)   -- not from inside cancel(): from the loop
      run_all(c, { first })
      c:step(0)
      assert.equal(0, done)
      assert.equal(1, #errors)   -- the lifecycle contract: on_error once, kind "canceled"
      assert.equal(err, errors[1])
      assert.equal(1, srv:stats().requests_total)
      assert.is_false(second:cancel())   -- already over
      c:close()
    end)

    it("cancels while connecting, before any step", function ()
      local req = client:chat_async(params())
      req:cancel()
      client:step(0.05)
      assert.equal("canceled", req:status())
      assert.equal(0, srv:stats().requests_total)
    end)

    it("cancels while the server holds the reply, closing the connection", function ()
      local req = client:chat_async(params("delay=500"))
      wait_for(function () client:step(0.01); return srv:stats().open_now == 1 end)
      req:cancel()
      wait_for(function () return srv:stats().client_closed_total == 1 end)
      assert.equal("canceled", select(2, req:result()).kind)
    end)

    it("cancels while streaming; nothing is delivered after", function ()
      local deltas, after = 0, 0
      local req
      req = client:chat_async(params("pause=20", { stream = function ()
        deltas = deltas + 1
        if req:status() == "canceled" then after = after + 1 end
      end }))
      wait_for(function () client:step(0.01); return deltas >= 2 end, 10)
      req:cancel()
      local seen = deltas
      for _ = 1, 20 do client:step(0.01) end
      assert.equal(seen, deltas)
      assert.equal(0, after)
      wait_for(function () return srv:stats().client_closed_total == 1 end)
    end)

    it("cancels inside its own stream callback", function ()
      local deltas, req = 0, nil
      local errors, done = {}, 0
      req = client:chat_async(params("pause=5", {
        stream = function () deltas = deltas + 1; if deltas == 2 then req:cancel() end end,
        on_done = function () done = done + 1 end,
        on_error = function (e) errors[#errors + 1] = e end,
      }))
      run_all(client, { req })
      for _ = 1, 5 do client:step(0.01) end
      assert.equal(2, deltas)
      assert.equal("canceled", req:status())
      assert.equal(0, done)
      assert.equal(1, #errors)   -- once, kind "canceled", and no callback error
      assert.equal("canceled", errors[1].kind)
    end)

    it("cancels one request inside another's callback", function ()
      local victim = client:chat_async(params("pause=20", { stream = function () end }))
      local killer = client:chat_async(params(nil, { on_done = function () victim:cancel() end }))
      run_all(client, { victim, killer })
      assert.equal("canceled", victim:status())
      assert.equal("done", killer:status())
    end)

    it("cancels when a <close> variable goes out of scope (Lua 5.4; req:cancel() elsewhere)", function ()
      local kept
      with_close(client:chat_async(params("delay=300")), "cancel", function (req)
        kept = req
        client:step(0)
      end)
      assert.equal("canceled", kept:status())
    end)

    it("cancels a dropped request when it is collected", function ()
      do
        local _ = client:chat_async(params("delay=500"))
      end
      wait_for(function () client:step(0.01); return srv:stats().open_now == 1 end)
      collectgarbage()
      collectgarbage()
      wait_for(function () client:step(0.01); return srv:stats().client_closed_total == 1 end)
      assert.equal(0, client:active())
    end)

    it("fails every pending request with kind canceled when the client closes", function ()
      local c = aigc.client { base_url = srv.base_url, max_concurrency = 2 }
      local reqs = {}
      for i = 1, 4 do reqs[i] = c:chat_async(params("delay=500")) end
      c:step(0)
      c:close()
      for _, r in ipairs(reqs) do
        assert.equal("canceled", r:status())
        assert.equal("canceled", select(2, r:result()).kind)
      end
      assert.has_error(function () c:step() end, "attempt to use a closed client")
    end)
  end)

  describe("tasks", function ()
    it("overlaps two tasks making three sequential calls each", function ()
      local results = { {}, {} }
      for t = 1, 2 do
        client:spawn(function ()
          for i = 1, 3 do
            local res = assert(client:chat(params("delay=150", {
              messages = { { role = "user", content = ("Echo: t%d-%d"):format(t, i) } } })))
            results[t][i] = res.text
          end
        end)
      end
      local deadline = guard_time(20)
      while client:step(0.05) > 0 and os.time() < deadline do end
      assert.same({ "t1-1", "t1-2", "t1-3" }, results[1])
      assert.same({ "t2-1", "t2-2", "t2-3" }, results[2])
      assert.equal(2, srv:stats().max_open)
      assert.equal(6, srv:stats().requests_total)
    end)

    it("blocks as before outside a task", function ()
      local res = assert(client:chat "Echo: plain")
      assert.equal("plain", res.text)
    end)

    it("yields in req:wait() and client:sleep() inside a task", function ()
      local log = {}
      client:spawn(function ()
        local req = client:chat_async(params("delay=100", { messages = { { role = "user", content = "Echo: w" } } }))
        log[#log + 1] = "waiting"
        local res = assert(req:wait())
        log[#log + 1] = res.text
        client:sleep(0.05)
        log[#log + 1] = "slept"
      end)
      assert.same({ "waiting" }, log)
      local deadline = guard_time(10)
      while client:step(0.02) > 0 and os.time() < deadline do end
      assert.same({ "waiting", "w", "slept" }, log)
    end)

    it("streams with the iterator inside a task without blocking the loop", function ()
      if portable.version == "5.1" then
        pending("needs Lua 5.2+ or LuaJIT: 5.1 cannot yield across the generic for's call of its iterator (README)")
        return
      end
      local parts, ticks = {}, 0
      client:spawn(function ()
        for delta in client:stream(params("pause=10")) do parts[#parts + 1] = delta end
      end)
      local deadline = guard_time(10)
      while client:step(0.005) > 0 and os.time() < deadline do ticks = ticks + 1 end
      assert.equal("Hello! How can I help you today?", table.concat(parts))
      -- The loop turned while the deltas came (10 ms apart): more turns than
      -- deltas, unless valgrind's slowdown makes one turn longer than that.
      assert.truthy(ticks > (os.getenv("AIGC_VALGRIND") and 1 or #parts))
    end)

    it("reports an error in a task", function ()
      local errors = {}
      local c = aigc.client { base_url = srv.base_url, error_handler = function (e) errors[#errors + 1] = e end }
      c:spawn(function ()
        assert(c:chat "Hi")
        error("task failed")
      end)
      local deadline = guard_time(10)
      while #errors == 0 and os.time() < deadline do c:step(0.02) end
      assert.equal(1, #errors)
      assert.equal("callback", errors[1].kind)
      assert.matches("task failed", errors[1].message)
      assert.matches("stack traceback", errors[1].traceback)
      c:close()
    end)

    it("resumes a waiting task with kind canceled when the client closes", function ()
      local c = aigc.client { base_url = srv.base_url }
      local got
      c:spawn(function ()
        local _, err = c:chat(params("delay=1000"))
        got = err
      end)
      c:step(0)
      c:close()
      assert.equal("canceled", got.kind)
    end)
  end)

  -- Issue 10: tasks that wait on what another client drives, several tasks
  -- waiting on one request, and tasks that yield outside aigc.
  describe("tasks and other clients", function ()
    it("a task waiting on another client's request yields; the task's loop drives that client", function ()
      local other = aigc.client { base_url = srv.base_url, max_retries = 0 }
      local got, frames = nil, 0
      client:spawn(function ()
        got = assert(other:chat(params("delay=200", { messages = { { role = "user", content = "Echo: other" } } })))
      end)
      assert.is_nil(got)   -- (spawn returned at the task's first wait: the loop was not blocked)
      local deadline = guard_time(10)
      while client:step(0.01) > 0 and os.time() < deadline do frames = frames + 1 end
      assert.equal("other", got.text)
      assert.is_true(frames > 1)
      -- req:wait() and the iterator on the other client yield too
      local log = {}
      client:spawn(function ()
        local r = other:chat_async(params("delay=100", { messages = { { role = "user", content = "Echo: w" } } }))
        log[#log + 1] = assert(r:wait()).text
        local s = other:stream(params("pause=5"))
        if portable.version == "5.1" then   -- (no yield across a for's iterator call: pulled by hand)
          for _ = 1, 1000 do
            local d = s()
            if d == nil then break end
            log[#log + 1] = d
          end
        else
          for d in s do log[#log + 1] = d end
        end
      end)
      assert.same({}, log)
      deadline = guard_time(10)
      while client:step(0.01) > 0 and os.time() < deadline do end
      assert.equal("w", log[1])
      assert.equal("Hello! How can I help you today?", table.concat(log, "", 2))
      other:close()
    end)

    it("a wait in code that cannot yield (called from C) inside a task blocks there, and wakes nothing later",
       function ()
      if portable.version == "5.1" or portable.version == "5.2" then
        -- No lua_isyieldable before 5.3 (LuaJIT 2.1 has it): the core
        -- yields, and the Lua VM refuses at the C boundary. The task fails with that error; the
        -- client goes on (README: what differs between the Lua versions).
        local errors = {}
        local c = aigc.client { base_url = srv.base_url, max_retries = 0,
                                error_handler = function (e) errors[#errors + 1] = e end }
        c:spawn(function ()
          string.gsub("x", "x", function () c:chat "Echo: in" end)
        end)
        local deadline = guard_time(10)
        while #errors == 0 and os.time() < deadline do c:step(0.01) end
        assert.equal(1, #errors)
        assert.matches("attempt to yield across", errors[1].message)
        assert.equal("after", assert(c:chat "Echo: after").text)
        for _ = 1, 20 do c:step(0.01) end
        assert.equal(1, #errors)   -- nothing later resumed the dead task
        c:close()
        return
      end
      local inner, outer
      client:spawn(function ()
        string.gsub("x", "x", function ()   -- (a C function calling Lua: no yield across it)
          inner = assert(client:chat(params(nil, { messages = { { role = "user", content = "Echo: inner" } } }))).text
        end)
        outer = assert(client:chat(params("delay=100", { messages = { { role = "user", content = "Echo: outer" } } })))
      end)
      assert.equal("inner", inner)   -- (it blocked: done before spawn returned)
      assert.is_nil(outer)
      local deadline = guard_time(10)
      while outer == nil and os.time() < deadline do client:step(0.01) end
      assert.equal("outer", outer.text)
    end)

    it("active(), step() and act() count the tasks still waiting, and agree", function ()
      local other = aigc.client { base_url = srv.base_url, max_retries = 0 }
      client:spawn(function () client:sleep(0.2) end)
      client:spawn(function () other:chat(params("delay=100")) end)
      assert.equal(2, client:active())       -- one asleep, one waiting on the other client
      assert.equal(2, client:act())          -- (a timer tick: nothing to act on)
      local n = client:step(0)
      assert.equal(client:active(), n)
      assert.equal(n, client:act())
      local deadline = guard_time(10)
      while client:step(0.01) > 0 and os.time() < deadline do end
      assert.equal(0, client:active())
      other:close()
      -- counted at the end of the step: a task it woke may have submitted a request
      local submitted
      client:spawn(function () client:sleep(0.02); submitted = client:chat_async(params("delay=200")) end)
      deadline = guard_time(10)
      while submitted == nil and os.time() < deadline do
        local k = client:step(0.01)
        assert.equal(client:active(), k)
      end
      assert.equal(1, client:active())
      submitted:cancel()
    end)

    it("two tasks waiting on the same request both wake", function ()
      local req = client:chat_async(params("delay=50", { messages = { { role = "user", content = "Echo: both" } } }))
      local a, b
      client:spawn(function () a = req:wait() end)
      client:spawn(function () b = req:wait() end)
      local deadline = guard_time(10)
      while (a == nil or b == nil) and os.time() < deadline do client:step(0.01) end
      assert.equal("both", a.text)
      assert.equal(a, b)
    end)
  end)

  describe("an external event loop", function ()
    it("reports sockets and a timer, and acts on readiness", function ()
      local uv = require "luv"
      -- luv is loaded once per busted process (spec/support/preload.lua) and
      -- its loop's clock is the time it last ran: after other specs (10 s and
      -- more, e.g. runner_spec first) the guard below, started from that stale
      -- time, fired at the loop's first turn and stopped it before any reply.
      uv.update_time()
      local polls, timer = {}, uv.new_timer()
      local c = aigc.client { base_url = srv.base_url }
      local function on_socket (fd, what)
        local p = polls[fd]
        if what == "remove" then
          if p then p:stop(); p:close(); polls[fd] = nil end
          return
        end
        if not p then p = uv.new_socket_poll(fd); polls[fd] = p end
        local events = what == "in" and "r" or what == "out" and "w" or "rw"
        p:start(events, function (_, ev) c:act(fd, ev) end)
      end
      local timer_calls = 0
      local function on_timer (seconds)
        timer_calls = timer_calls + 1
        timer:stop()
        if seconds then timer:start(math.ceil(seconds * 1000), 0, function () c:act() end) end
      end
      c:watch(on_socket, on_timer)
      local results = {}
      for i = 1, 4 do
        c:chat_async(params("delay=50", { messages = { { role = "user", content = "Echo: e" .. i } },
                                          on_done = function (res) results[#results + 1] = res.text end }))
      end
      c:act()   -- kick: the loop takes over from here
      local guard = uv.new_timer()
      guard:start(10000 * SCALE, 0, function () uv.stop() end)
      local check = uv.new_check()
      check:start(function () if #results == 4 then uv.stop() end end)
      uv.run()
      guard:close(); check:close(); timer:close()
      for _, p in pairs(polls) do p:close() end
      uv.run("nowait")
      table.sort(results)
      assert.same({ "e1", "e2", "e3", "e4" }, results)
      assert.truthy(timer_calls > 0)
      c:close()
    end)
  end)
end)
