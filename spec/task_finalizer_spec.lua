-- A blocking call made from a `__gc` finalizer never yields: it blocks
-- (drives the loop), as on Lua 5.4, whatever coroutine the collector runs
-- the finalizer on -- and the task around it goes on unaffected.
--
-- The core's wait in a task yields when the running code may yield
-- (src/util.c, aigc_may_yield). Before 5.3 that meant "not the main
-- thread": on 5.1 a finalizer run inside a task (collectgarbage() there)
-- had its blocking call try to yield, which raised "attempt to yield
-- across metamethod/C-call boundary" into the task and killed it; on
-- LuaJIT the same ("attempt to yield across C-call boundary"), and a task
-- that a finalizer's blocking call resumed yielded as a hook does, with no
-- values: it was abandoned ("a task yielded outside aigc"), its code after
-- the wait never ran, and the finalizer's call was lost.

local aigc = require "aigc"
local devserver = require "devserver"

local newproxy = rawget(_G, "newproxy")   -- (5.1 and LuaJIT: no __gc on tables)

local function with_finalizer (fn)
  if newproxy then
    local p = newproxy(true)
    getmetatable(p).__gc = fn
    return p
  end
  return setmetatable({}, { __gc = fn })
end

local function step_until (client, cond, seconds)
  local deadline = aigc.now() + seconds
  while not cond() and aigc.now() < deadline do client:step(0.01) end
  return cond()
end

describe("a finalizer's blocking call", function ()
  local client, reported
  devserver.fixture(_ENV, function (_, c) client, reported = c, {} end,
                    { error_handler = function (e) reported[#reported + 1] = tostring(e) end })

  it("inside a task (collectgarbage there) blocks; the task goes on", function ()
    local after, fin_text, fin_yieldable = false, nil, nil
    client:spawn(function ()
      with_finalizer(function ()
        fin_yieldable = require("aigc.core").yieldable()
        local r = client:chat "Echo: from a finalizer"
        fin_text = r and r.text
      end)
      collectgarbage()
      collectgarbage()
      after = true
    end)
    assert.is_true(step_until(client, function () return after end, 5), "the task stopped at the collection")
    assert.equal("from a finalizer", fin_text)
    assert.is_false(fin_yieldable)
    assert.same({}, reported)
    assert.equal(0, client:active())
  end)

  it("that resumes a task (whose request it ended): the task runs to its end", function ()
    -- Finalizers call client:chat (blocking) while the collector runs in
    -- the main thread's steps; their loop resumes the task, whose next
    -- chat must then block, not yield.
    local finished, steps = false, 0
    client:spawn(function ()
      for k = 1, 3 do
        for _ = 1, 30 do with_finalizer(function () pcall(client.chat, client, "Echo: fin") end) end
        assert(client:chat("Echo: in task " .. k))
        steps = k
      end
      finished = true
    end)
    local deadline = aigc.now() + 10
    while not finished and aigc.now() < deadline do
      collectgarbage()
      client:step(0.005)
    end
    assert.is_true(finished, "the task stopped after wait " .. steps .. ": " .. tostring(reported[1]))
    assert.same({}, reported)
  end)

  it("is not a wait that may yield, in a task's finalizer; a task's own code may", function ()
    local core = require "aigc.core"
    local in_task, in_fin
    client:spawn(function ()
      in_task = core.yieldable()
      with_finalizer(function () in_fin = core.yieldable() end)
      collectgarbage()
      collectgarbage()
    end)
    assert.is_true(in_task)
    assert.is_false(in_fin)
  end)
end)
