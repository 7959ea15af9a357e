-- A host that drives aigc from a debug hook (a count hook calling
-- client:step(0) while its scripts run, so that the network moves during a
-- long computation): the NPC's say_async must still end with its reply.
-- It did not when the hook's step came inside the step that resumed the
-- say's task, between the resume and what follows it (resume_task ->
-- finish_resume): the inner step ran that end and cleared the resume's
-- outcome, the outer one then read the task as yielding `false` and
-- abandoned it ("a task yielded outside aigc ... it is abandoned", kind
-- "callback"): the reply was lost, though the server had sent it.
--
-- Deterministic: the reply is written whole by the server before the
-- hooked step, and the hook steps at the n-th instruction of that step,
-- for every n until the step ends before the hook fires.

local aigc = require "aigc"
local devserver = require "devserver"
local socket = require "socket"
local points = require "sweep_points"
-- (a pcall a task can yield across, on PUC 5.1 too)
local tpcall = require("aigc.task").pcall

local GUARD = 60   -- seconds: only against a hang, never a measure

describe("client:step() called from a host's debug hook", function ()
  local srv, client
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { max_retries = 0 })
  local jit = rawget(_G, "jit")
  before_each(function () if jit then jit.off() end end)   -- (count hooks are not called in compiled code)
  after_each(function () debug.sethook(); if jit then jit.on() end end)

  -- `start()` begins the work (its first request); once its reply has
  -- arrived, one step(0) runs in which a count hook calls client:step(0)
  -- at the step's n-th instruction; then the loop is driven to the end.
  -- Returns whether the hook fired, and what that step raised (or nil).
  -- `ended()`, when given, says the work is over: the loop stops driving
  -- then, and turns a few more times for what is left to deliver (the
  -- case checks what is left counted: a count left up for ever would keep
  -- `while client:step() > 0` turning).
  local function hooked_step (n, requests, start, ended)
    start()
    srv:wait_written(client, requests)   -- (this step delivers the reply)
    local k, fired = 0, false
    debug.sethook(function ()
      k = k + 1
      if k == n then
        fired = true
        debug.sethook()
        pcall(client.step, client, 0)   -- (inside a callback it is refused, a misuse: caught)
      end
    end, "", 1)
    local ok, e = pcall(client.step, client, 0)
    debug.sethook()
    local deadline = socket.gettime() + GUARD
    while not (ended and ended()) and client:step(0.01) > 0 do
      assert(socket.gettime() < deadline, "the work did not end")
    end
    for _ = 1, 20 do
      if client:step(0) == 0 then break end
    end
    return fired, not ok and tostring(e) or nil
  end

  -- Runs `case(n)` (which calls hooked_step) for every n until the hooked
  -- step ends before its hook fires; each returns its problems.
  local function sweep (case)
    local bad, n = {}, 0
    while true do
      n = points.after(n)   -- (every point, but under valgrind and ASan: sweep_points)
      local fired, problems = case(n)
      for _, p in ipairs(problems) do bad[#bad + 1] = ("n=%d: %s"):format(n, p) end
      if not fired or n == 20000 then break end
    end
    assert.is_true(n > 50 and n < 20000, "the hooked step ran " .. n .. " instructions")
    assert.same({}, bad)
  end

  it("ends an NPC's say_async with its reply, one on_done, wherever in the step the hook steps", function ()
    local requests = 0
    sweep(function (n)
      local conv = aigc.conversation { client = client, system = "You are Greta, the innkeeper." }
      local done, errors, f = 0, {}, nil
      requests = requests + 1
      local fired, raised = hooked_step(n, requests, function ()
        f = conv:say_async("Hello there", {
          on_done = function () done = done + 1 end,
          on_error = function (e) errors[#errors + 1] = tostring(e) end,
        })
      end)
      local problems = {}
      if raised then problems[#problems + 1] = "the step raised " .. raised end
      local res, err = f:result()
      if f:status() ~= "done" or not (res and res.text ~= "") then
        problems[#problems + 1] = ("the say %s: %s"):format(f:status(), tostring(err))
      end
      if done ~= 1 or #errors ~= 0 then
        problems[#problems + 1] = ("on_done %d times, on_error %d (%s)"):format(done, #errors,
                                                                                table.concat(errors, "; "))
      end
      if #conv.messages ~= 3 then problems[#problems + 1] = #conv.messages .. " messages in the history" end
      return fired, problems
    end)
  end)

  it("goes on with a task whose first call's reply that step delivers (its second call made)", function ()
    local requests = 0
    sweep(function (n)
      local texts, co = {}, nil
      local fired, raised = hooked_step(n, requests + 1, function ()
        co = client:spawn(function ()
          for i = 1, 2 do
            local res, err = client:chat { messages = { { role = "user", content = "Line " .. i } } }
            texts[i] = res and res.text or tostring(err)
          end
        end)
      end)
      requests = requests + 2
      local problems = {}
      if raised then problems[#problems + 1] = "the step raised " .. raised end
      if coroutine.status(co) ~= "dead" then problems[#problems + 1] = "the task is " .. coroutine.status(co) end
      if not (tostring(texts[1]):find('"Line 1"', 1, true) and tostring(texts[2]):find('"Line 2"', 1, true)) then
        problems[#problems + 1] = ("the task's calls gave %s | %s"):format(tostring(texts[1]), tostring(texts[2]))
      end
      return fired, problems
    end)
  end)

  -- A task whose first call's reply the hooked step delivers; then it
  -- waits on `second()` (its text goes in texts[2]), and ends. `requests`:
  -- the server's requests per run. Nothing stays counted once it ended.
  local function task_sweep (requests, second)
    local total = 0
    sweep(function (n)
      local texts, co = {}, nil
      local fired, raised = hooked_step(n, total + 1, function ()
        co = client:spawn(function ()
          local res, err = client:chat { messages = { { role = "user", content = "Line 1" } } }
          texts[1] = res and res.text or tostring(err)
          local _, text = tpcall(second)
          texts[2] = tostring(text)
        end)
      end, function () return coroutine.status(co) == "dead" end)
      total = total + requests
      local problems = {}
      if raised then problems[#problems + 1] = "the step raised " .. raised end
      if coroutine.status(co) ~= "dead" then problems[#problems + 1] = "the task is " .. coroutine.status(co) end
      if client:active() ~= 0 then problems[#problems + 1] = client:active() .. " still active, the task over" end
      if not (tostring(texts[1]):find('"Line 1"', 1, true) and tostring(texts[2]):find("Line 2", 1, true)) then
        problems[#problems + 1] = ("the task's waits gave %s | %s"):format(tostring(texts[1]), tostring(texts[2]))
      end
      return fired, problems
    end)
  end

  local LINE_2 = { { role = "user", content = "Line 2" } }
  local function text_of (res, err) return res and res.text or tostring(err) end

  -- The other client's loop is driven by this one's while its task waits
  -- there (a guest wait, counted in `client:active()`). A step in the
  -- middle of the bookkeeping of that wait (task.lua, core_wait_started;
  -- client_loop's counts) started it too: the outer one then counted the
  -- guest again, or stored its count over the inner's; one count was never
  -- released, and `while client:step() > 0 do end` never ended.
  describe("leaves nothing counted once a task ended, wherever in the step the hook steps: its wait on", function ()
    local other
    before_each(function () other = aigc.client { base_url = srv.base_url, max_retries = 0 } end)
    after_each(function () other:close() end)

    it("another client's request", function ()
      task_sweep(2, function () return text_of(other:chat { messages = LINE_2 }) end)
    end)

    it("its own client's request", function ()
      task_sweep(2, function () return text_of(client:chat { messages = LINE_2 }) end)
    end)

    it("another client's future (say_async)", function ()
      task_sweep(2, function () return text_of(aigc.conversation({ client = other }):say_async("Line 2"):wait()) end)
    end)

    -- (sleep(0): due in the step that puts it to sleep, whatever the load.
    -- The sleepers were a list: a step in the middle of its waking, which
    -- took one off, made it read past the end -- "attempt to index a nil
    -- value (local 's')" raised out of the host's step)
    it("client:sleep", function ()
      task_sweep(1, function ()
        local ok, e = tpcall(client.sleep, client, 0)
        if ok then return "Line 2: slept" end
        -- (LuaJIT turns debug hooks off everywhere while a hook runs: a task
        -- resumed by the step run inside one may not yield there -- util.c,
        -- aigc_may_yield -- and a sleep inside that step's callback is refused)
        if jit and tostring(e):find("from inside an aigc callback, outside a task", 1, true) then
          return "Line 2: refused inside the hook's step"
        end
        return e
      end)
    end)

    it("another client's stream, its iterator pulled by hand", function ()
      task_sweep(2, function ()
        local s, text = other:stream { messages = LINE_2 }, ""
        while true do
          local d = s()
          if d == nil then break end
          text = text .. d
        end
        local res, err = s:result()
        return res and text == res.text and res.text or tostring(err)
      end)
    end)
  end)
end)
