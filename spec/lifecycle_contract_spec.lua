-- The lifecycle contract (docs/ARCHITECTURE.md, issue 10 item 2): every
-- request ends once; on_done/on_error exactly once, cancel and close
-- included (kind "canceled", from the loop, never from inside cancel());
-- nothing delivered after cancel; step()'s count = active() = act()'s;
-- every callback error reported exactly once. Each case is a defect of
-- issue 10 that failed before (the number is the issue's).
local aigc = require "aigc"
local devserver = require "devserver"
local luachild = require "luachild"
local portable = require "portable"

local params = devserver.params   -- one "Hi" message, a fault header, extra fields

local function pending (req)
  local s = req:status()
  return s == "queued" or s == "running"
end

-- Steps until `cond()` (bounded: a bug fails the test, it does not hang it).
local function step_until (client, cond, seconds)
  local deadline = aigc.now() + (seconds or 10)
  while not cond() do
    assert(aigc.now() < deadline, "condition not met in time")
    client:step(0.02)
  end
end

-- Steps until nothing is left to deliver: step()'s count counts ends too.
local function drain (client)
  local errors = {}
  local deadline = aigc.now() + 10
  repeat
    assert(aigc.now() < deadline, "the client still has work after 10 s")
    local n, errs = client:step(0.02)
    for _, e in ipairs(errs or {}) do errors[#errors + 1] = e end
  until n == 0
  return errors
end

describe("the lifecycle contract", function ()
  local srv, client

  devserver.fixture(_ENV, function (s, c) srv, client = s, c end)

  describe("callback errors are reported exactly once (defect 1)", function ()
    -- Run in a child: before the fix the second error crashed the process.
    it("an error after step() returned one, raised in wait(), a blocking call or spawn, is not lost", function ()
      local r = luachild.run([[
        local aigc = require "aigc"
        local c = aigc.client { base_url = arg[1], max_retries = 0 }
        local HI = { { role = "user", content = "Hi" } }
        local function tail (errs)
          local out = {}
          for i, e in ipairs(errs or {}) do
            local line = tostring(e.message or e):match("^[^\n]*")
            out[i] = line:match(".*error (%a+)")
          end
          return table.concat(out, ",")
        end
        local req = c:chat_async { messages = HI, on_done = function () error("error one", 0) end }
        local errs
        repeat local _, e = c:step(0.05); errs = errs or e until req:status() == "done"
        print("step 1: " .. tail(errs))   -- (one, two ... below: the words after "error")
        local r2 = c:chat_async { messages = HI, on_done = function () error("error two", 0) end }
        assert(r2:wait())
        local r3 = c:chat_async { messages = HI, headers = { ["x-aigc-fault"] = "status=500" },
                                  on_error = function () error("error three", 0) end }
        r3:wait()
        c:spawn(function () error("error four", 0) end)
        local n, e = c:step(0)
        print("step 2: " .. tail(e) .. " n=" .. n)
        print("step 3: " .. tail(select(2, c:step(0))))
      ]], { args = { srv.base_url } })
      assert.equal(0, r.status, r.stderr)
      assert.equal("step 1: one\nstep 2: two,three,four n=0\nstep 3: \n", r.stdout)
      assert.equal("", r.stderr)   -- kept for step(), not also printed
    end)

    it("goes to the error_handler when there is one, and nowhere else", function ()
      local got = {}
      local c = aigc.client { base_url = srv.base_url, max_retries = 0,
                              error_handler = function (e) got[#got + 1] = e end }
      local req = c:chat_async(params(nil, { on_done = function () error("in on_done", 0) end }))
      assert(req:wait())
      local n, errs = c:step(0)
      assert.equal(0, n)
      assert.is_nil(errs)
      assert.equal(1, #got)
      assert.matches("in on_done", tostring(got[1]))
      c:close()
    end)

    it("writes what no step() collected to stderr when the client closes", function ()
      local r = luachild.run([[
        local aigc = require "aigc"
        local c = aigc.client { base_url = arg[1], max_retries = 0 }
        local req = c:chat_async { messages = { { role = "user", content = "Hi" } },
                                   on_done = function () error("never stepped", 0) end }
        req:wait()
        c:close()
        print("closed")
      ]], { args = { srv.base_url } })
      assert.equal(0, r.status, r.stderr)
      assert.equal("closed\n", r.stdout)
      local _, count = r.stderr:gsub("never stepped", "")
      assert.equal(1, count)
    end)

    it("on stderr, an error value that is not a string shows its message, or what it is (not 'table: 0x...')",
       function ()
      local r = luachild.run([[
        local aigc = require "aigc"
        local c = aigc.client { base_url = arg[1], max_retries = 0 }
        for _, v in ipairs {
          { code = "E43", message = "a table with its message" },
          setmetatable({}, { __tostring = function () return "shown by __tostring" end }),
          { code = "E44" }, print, false,
        } do
          assert(c:chat { messages = { { role = "user", content = "Hi" } }, on_done = function () error(v) end })
        end
        c:close()
        print("closed")
      ]], { args = { srv.base_url } })
      assert.equal(0, r.status, r.stderr)
      assert.equal("closed\n", r.stdout)
      local lines = {}
      for line in r.stderr:gmatch("[^\n]+") do
        lines[#lines + 1] = line:match("^aigc: error in a callback %(no step%(%) collected it before the client "
                                       .. "closed%): (.*)$")
      end
      assert.same({ "a table with its message", "shown by __tostring", "a table error value without a message",
                    "a function error value without a message", "false" }, lines)
    end)
  end)

  describe("cancel", function ()
    it("gives on_error once, kind canceled, from the next step, never inside cancel()", function ()
      local calls, inside = {}, false
      local req = client:chat_async(params("delay=300", {
        on_done = function () calls[#calls + 1] = "done" end,
        on_error = function (e) calls[#calls + 1] = inside and "inside" or e.kind end,
      }))
      client:step(0)
      inside = true
      assert.is_true(req:cancel())
      inside = false
      assert.equal("canceled", req:status())
      assert.same({}, calls)
      local _, err = req:result()
      assert.equal("canceled", err.kind)
      assert.equal(1, client:active())   -- its end is still to run
      drain(client)
      assert.same({ "canceled" }, calls)
      assert.is_false(req:cancel())
      drain(client)
      assert.same({ "canceled" }, calls)
    end)

    it("wait() on a canceled request runs its on_error", function ()
      local calls = 0
      local req = client:chat_async(params("delay=300", { on_error = function () calls = calls + 1 end }))
      req:cancel("no longer needed")
      local res, err = req:wait()
      assert.is_nil(res)
      assert.equal("no longer needed", err.message)
      assert.equal(1, calls)
      drain(client)
      assert.equal(1, calls)
    end)

    it("delivers no delta and no on_done after cancel, from anywhere", function ()
      local victim, after = nil, 0
      local done = 0
      victim = client:chat_async(params("pause=20", {
        stream = function () if victim:status() == "canceled" then after = after + 1 end end,
        on_done = function () done = done + 1 end,
      }))
      local killer = client:chat_async(params(nil, { stream = function () victim:cancel() end }))
      step_until(client, function () return not pending(killer) end)
      drain(client)
      assert.equal("canceled", victim:status())
      assert.equal(0, after)
      assert.equal(0, done)
    end)
  end)

  describe("close", function ()
    it("gives every pending request on_error once, kind canceled, before close() returns", function ()
      local c = aigc.client { base_url = srv.base_url, max_concurrency = 1 }
      local kinds, reqs = {}, {}
      for i = 1, 3 do
        reqs[i] = c:chat_async(params("delay=300", {
          on_error = function (e) kinds[#kinds + 1] = e.kind end,
          on_done = function () kinds[#kinds + 1] = "done" end,
        }))
      end
      c:step(0)
      c:close()
      assert.same({ "canceled", "canceled", "canceled" }, kinds)
      for _, r in ipairs(reqs) do assert.equal("canceled", r:status()) end
      assert.has_error(function () c:step() end, "attempt to use a closed client")
    end)

    -- Only 5.3 and 5.4 name __gc frames (debug info): elsewhere close()
    -- cannot tell it runs in a finalizer and runs the ends right there,
    -- leaving no end for a step() (README's table).
    it("called in a finalizer, leaves the ends to the next step() (5.3+; in close() elsewhere), "
       .. "which a closed client accepts", function ()
      local c = aigc.client { base_url = srv.base_url }
      local kinds = {}
      local req = c:chat_async(params("delay=300", { on_error = function (e) kinds[#kinds + 1] = e.kind end }))
      c:step(0)
      do
        portable.finalized(function () c:close() end)
      end
      collectgarbage()
      collectgarbage()
      assert.equal("canceled", req:status())
      if portable.version ~= "5.4" and portable.version ~= "5.3" then
        assert.same({ "canceled" }, kinds)   -- from close(), inside the finalizer
        assert.has_error(function () c:step(0) end, "attempt to use a closed client")
        return
      end
      assert.same({}, kinds)   -- not from the finalizer
      local n = c:step(0)
      assert.equal(0, n)
      assert.same({ "canceled" }, kinds)
      assert.has_error(function () c:step() end, "attempt to use a closed client")
    end)

    it("in the log hook during submission cancels the request for good (defect 6)", function ()
      local c
      local kinds = {}
      c = aigc.client { base_url = srv.base_url, max_retries = 0,
                        log = function (level) if level == "debug" then c:close() end end }
      local req = c:chat_async(params(nil, { on_error = function (e) kinds[#kinds + 1] = e.kind end,
                                             on_done = function () kinds[#kinds + 1] = "done" end }))
      assert.equal("canceled", req:status())
      assert.same({ "canceled" }, kinds)
      local res, err = req:wait()
      assert.is_nil(res)
      assert.equal("canceled", err.kind)
      assert.equal("canceled", req:status())
    end)

    -- Runs start_and_drop (which makes a client and lets it go), then
    -- collects until the server saw its connection closed (5 s at most).
    local function collect_until_closed (start_and_drop)
      start_and_drop()
      local deadline = aigc.now() + 5
      while srv:stats().client_closed_total < 1 and aigc.now() < deadline do
        collectgarbage()
        aigc.sleep(0.01)
      end
      assert.equal(1, srv:stats().client_closed_total)
    end

    it("of a whole client collected with requests pending: canceled without callbacks", function ()
      local called = 0
      local function start_and_drop ()   -- (a function: no dead local left on our stack)
        local c = aigc.client { base_url = srv.base_url }
        c:chat_async(params("delay=1000", { on_error = function () called = called + 1 end,
                                            on_done = function () called = called + 1 end }))
        step_until(c, function () return srv:stats().open_now == 1 end)
      end
      collect_until_closed(start_and_drop)
      assert.equal(0, called)
    end)

    -- The same with a task waiting on it: the task, which nobody can resume
    -- any more, must not keep its client (LuaJIT kept it, its engine and
    -- its socket: a weak-keyed table of tasks whose values pointed at their
    -- keys, which only Lua 5.2+'s ephemerons collect).
    it("of a whole client collected with a task waiting on its request: the task does not keep it", function ()
      local resumed = false
      local function start_and_drop ()
        local c = aigc.client { base_url = srv.base_url }
        c:spawn(function () c:chat(params("delay=1000")); resumed = true end)
        step_until(c, function () return srv:stats().open_now == 1 end)
      end
      collect_until_closed(start_and_drop)
      assert.is_false(resumed)
    end)
  end)

  describe("counts", function ()
    it("step(), active() and act() agree, a queue included (defect 15)", function ()
      local c = aigc.client { base_url = srv.base_url, max_concurrency = 2 }
      local reqs = {}
      for i = 1, 6 do reqs[i] = c:chat_async(params("delay=200")) end
      assert.equal(6, c:active())
      assert.equal(6, c:act())
      local n = c:step(0)
      assert.equal(6, n)
      assert.equal(6, c:active())
      reqs[6]:cancel()   -- canceled, and its end not yet run: still counted
      assert.equal(5, c:active())   -- (no on_error, no waiter: nothing to run)
      local counts = {}
      while true do
        local k = c:step(0.05)
        counts[#counts + 1] = k == c:active()
        local a = c:act()   -- (act() drives too: compared with active() after it)
        counts[#counts + 1] = a == c:active()
        if k == 0 then break end
      end
      for _, same in ipairs(counts) do assert.is_true(same) end
      c:close()
    end)
  end)

  describe("stream callbacks", function ()
    it("cancel or close inside one, answered by a plain reply, ends the request canceled (defect 14)", function ()
      for _, how in ipairs { "cancel", "close" } do
        local c = aigc.client { base_url = srv.base_url, max_retries = 0 }
        local req, kinds = nil, {}
        req = c:chat_async(params("plain-for-stream", {
          stream = function () if how == "cancel" then req:cancel() else c:close() end end,
          on_done = function () kinds[#kinds + 1] = "done" end,
          on_error = function (e) kinds[#kinds + 1] = e.kind end,
        }))
        local deadline = aigc.now() + 10
        while pending(req) and aigc.now() < deadline do c:step(0.02) end
        pcall(c.step, c, 0)
        assert.equal("canceled", req:status(), how)
        assert.same({ "canceled" }, kinds, how)
        c:close()
      end
    end)

    it("chunks given to a callback carry no usage = null (defect 18)", function ()
      local chunks = {}
      local res = assert(client:chat(params(nil, { stream = function (_, chunk) chunks[#chunks + 1] = chunk end })))
      assert.truthy(#chunks > 2)
      for i = 1, #chunks - 1 do
        assert.is_nil(chunks[i].usage, "chunk " .. i)
      end
      assert.equal(res.usage.total_tokens, chunks[#chunks].usage.total_tokens)
    end)

    it("with n = 2, a one-parameter callback gets choice 0's text only (defect 18)", function ()
      local p = params(nil, { n = 2, seed = 3, temperature = 1,
                              messages = { { role = "user", content = "Tell me a joke" } } })
      local whole = assert(client:chat(p))
      local got = {}
      p.stream = function (delta) got[#got + 1] = delta or "" end
      local res = assert(client:chat(p))
      assert.equal(whole.choices[1].message.content, table.concat(got))
      assert.equal(whole.choices[1].message.content, res.choices[1].message.content)
      assert.equal(whole.choices[2].message.content, res.choices[2].message.content)
    end)

    it("step() inside a callback raises there: a stream's request fails with kind callback", function ()
      local res, err = client:chat(params(nil, { stream = function () client:step() end }))
      assert.is_nil(res)
      assert.equal("callback", err.kind)
      assert.matches("client:step%(%) called from inside an aigc callback", err.message)
      local req = client:chat_async(params(nil, { on_done = function () client:step() end }))
      local errs = drain(client)
      assert.equal("done", req:status())
      assert.equal(1, #errs)
      assert.matches("called from inside an aigc callback", tostring(errs[1]))
    end)

    it("an error a dialogue's on_done raises is returned by the step() in which it ran (by none: the loop ended)",
       function ()
      local f = client:chat_async(params(nil, { schema = { type = "object" },
                                                on_done = function () error("bad on_done", 0) end }))
      local errs = drain(client)   -- (until step() returns 0)
      assert.equal("done", f:status())
      assert.equal(1, #errs)
      assert.matches("bad on_done", tostring(errs[1]), 1, true)
      -- act(), an external loop's turn, alike
      f = client:chat_async(params(nil, { schema = { type = "object" },
                                          on_done = function () error("bad on_done 2", 0) end }))
      errs = {}
      local deadline = aigc.now() + 10
      repeat
        assert(aigc.now() < deadline, "not delivered in time")
        require("socket").sleep(0.01)
        local n, e = client:act()
        for _, x in ipairs(e or {}) do errs[#errs + 1] = x end
      until n == 0
      assert.equal("done", f:status())
      assert.equal(1, #errs)
      assert.matches("bad on_done 2", tostring(errs[1]), 1, true)
    end)

    it("step() or act() inside a dialogue's or a say's on_done raises there too (they ran a nested turn)", function ()
      local makers = {
        dialogue = function (cb)
          return client:chat_async(params(nil, { schema = { type = "object" }, on_done = cb, on_error = cb }))
        end,
        say = function (cb)
          return aigc.conversation { client = client }:say_async("Hi", { on_done = cb, on_error = cb })
        end,
      }
      for _, name in ipairs { "dialogue", "say" } do
        for _, call in ipairs { "step", "act" } do
          local ran = false
          local f = makers[name](function () ran = true; client[call](client) end)
          local errs = drain(client)
          assert.is_true(ran, name)
          assert.equal("done", f:status(), name)
          assert.equal(1, #errs, name .. " " .. call)
          assert.matches("client:" .. call .. "%(%) called from inside an aigc callback", tostring(errs[1]))
        end
      end
      -- (a task of the user's own may still turn the loop)
      local turned
      client:spawn(function () turned = client:step(0) end)
      drain(client)
      assert.equal(0, turned)
    end)

    -- In a child: before the fix this waited forever (lifecycle finding L7).
    it("a blocking call inside one that can never get a slot fails at once (max_concurrency)", function ()
      local r = luachild.run([[
        local aigc = require "aigc"
        local c = aigc.client { base_url = arg[1], max_retries = 0, max_concurrency = 1 }
        local inner
        local res = c:chat { messages = { { role = "user", content = "Hi" } }, stream = function ()
          if not inner then inner = require("aigc.compat").pack(c:chat "nested") end
        end }
        print(res ~= nil, inner[1], inner[2] and inner[2].kind)
      ]], { args = { srv.base_url }, timeout = 20 })
      assert.equal(0, r.status, r.stderr)
      assert.equal("true\tnil\tlimit\n", r.stdout)
    end)
  end)
end)
