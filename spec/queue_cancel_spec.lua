-- The queue behind max_concurrency (issue 17 item 3): a queued request
-- leaves its priority class's queue in O(1) (cancel, close, a deadline),
-- from the head, the middle or the tail, from a callback or a finalizer,
-- and the rest keep their order; a request canceled from the queue never
-- reaches the server and ends exactly once. And a blocking call queued
-- while every slot is taken fails "limit" only when every slot is held by
-- a request being delivered further up the stack (a callback waiting for
-- it), whatever was canceled or ended while delivered before. The order
-- is read from the bundled server's records, never from timings.
local aigc = require "aigc"
local devserver = require "devserver"

-- An object whose finalizer runs fn (tables have no __gc on 5.1/LuaJIT).
local newproxy = rawget(_G, "newproxy")
local function gc_object (fn)
  if newproxy then
    local p = newproxy(true)
    getmetatable(p).__gc = fn
    return p
  end
  return setmetatable({}, { __gc = fn })
end

local function arrivals (srv)
  local names = {}
  for _, r in ipairs(srv:requests()) do names[#names + 1] = r.body_json.messages[1].content end
  return names
end

local function drain (client)
  local n = 0
  while client:step(0.05) > 0 do
    n = n + 1
    assert(n < 4000, "the client never drained")
  end
end

describe("the queue behind max_concurrency", function ()
  local srv

  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)
  before_each(function () srv:reset() end)

  -- Submits `name` and counts how each request ended (ends[name] = list).
  local function submitter (client, reqs, ends)
    return function (name, priority, extra)
      local p = { messages = { { role = "user", content = name } }, priority = priority }
      for k, v in pairs(extra or {}) do p[k] = v end
      local function ended (how)
        ends[name] = ends[name] or {}
        table.insert(ends[name], how)
      end
      p.on_done = p.on_done or function () ended("done") end
      p.on_error = function (err) ended(err.kind) end
      reqs[name] = client:chat_async(p)
      return reqs[name]
    end
  end

  it("keeps each class's order across cancels of its head, middle and tail", function ()
    local client = aigc.client { base_url = srv.base_url, max_concurrency = 1, max_retries = 0 }
    local reqs, ends = {}, {}
    local submit = submitter(client, reqs, ends)
    submit("first")
    for i = 1, 8 do submit("n" .. i) end
    for i = 1, 4 do submit("b" .. i, "background") end
    for i = 1, 3 do submit("i" .. i, "interactive") end
    -- Head, tail and middle of each class; one canceled twice.
    for _, name in ipairs { "n1", "n8", "n4", "n5", "b1", "b4", "b3", "i3", "i1", "n4" } do
      reqs[name]:cancel("gone")
    end
    for _, name in ipairs { "n1", "n8", "n4", "n5", "b1", "b4", "b3", "i3", "i1" } do
      assert.equal("canceled", reqs[name]:status())
    end
    -- A request queued after the cancels goes to its class's tail.
    submit("n9")
    submit("i4", "interactive")
    drain(client)
    assert.same({ "first", "i2", "i4", "n2", "n3", "n6", "n7", "n9", "b2" }, arrivals(srv))
    for name in pairs(reqs) do
      local canceled = ({ n1 = 1, n8 = 1, n4 = 1, n5 = 1, b1 = 1, b4 = 1, b3 = 1, i3 = 1, i1 = 1 })[name]
      assert.same({ canceled and "canceled" or "done" }, ends[name], name)
    end
    assert.equal(0, client:active())
    client:close()
  end)

  it("empties a class newest first and oldest first, and queues behind it afterwards", function ()
    local client = aigc.client { base_url = srv.base_url, max_concurrency = 1, max_retries = 0 }
    local reqs, ends = {}, {}
    local submit = submitter(client, reqs, ends)
    submit("first")
    for i = 1, 64 do submit("q" .. i) end
    assert.equal(65, client:active())
    assert.equal("running", reqs.first:status())
    for i = 64, 33, -1 do reqs["q" .. i]:cancel() end   -- the tail, each time
    for i = 1, 31 do reqs["q" .. i]:cancel() end        -- the head, each time
    assert.equal("queued", reqs.q32:status())
    reqs.q32:cancel()                                   -- the last one: the queue is empty
    submit("after1")
    submit("after2")
    drain(client)
    assert.same({ "first", "after1", "after2" }, arrivals(srv))
    for i = 1, 64 do assert.same({ "canceled" }, ends["q" .. i]) end
    client:close()
  end)

  it("keeps the order when stream callbacks and finalizers cancel queued requests", function ()
    local client = aigc.client { base_url = srv.base_url, max_concurrency = 1, max_retries = 0 }
    local reqs, ends = {}, {}
    local submit = submitter(client, reqs, ends)
    local npcs
    submit("first", nil, { stream = function ()
      if reqs.n3:status() == "queued" then
        reqs.n3:cancel()   -- the middle, from the callback
        reqs.n1:cancel()   -- the head
        npcs = nil         -- their finalizers cancel the tail and one more
        collectgarbage(); collectgarbage()
      end
    end })
    submit("n1")
    -- n2 cancels one queued two places behind it, and a finalizer another,
    -- from its on_done (n4 has taken the slot n2 gave back).
    submit("n2", nil, { on_done = function ()
      ends.n2 = { "done" }
      reqs.n5:cancel()
      gc_object(function () reqs.b3:cancel() end)   -- garbage at once
      collectgarbage(); collectgarbage()
    end })
    for i = 3, 6 do submit("n" .. i) end
    for i = 1, 3 do submit("b" .. i, "background") end
    npcs = { gc_object(function () reqs.n6:cancel("the NPC left") end),
             gc_object(function () reqs.b2:cancel("the NPC left") end) }
    drain(client)
    assert.is_nil(npcs)
    assert.same({ "first", "n2", "n4", "b1" }, arrivals(srv))
    for _, name in ipairs { "n1", "n3", "n5", "n6", "b2", "b3" } do
      assert.same({ "canceled" }, ends[name], name)
    end
    for _, name in ipairs { "first", "n2", "n4", "b1" } do assert.same({ "done" }, ends[name], name) end
    assert.equal(0, client:active())
    client:close()
  end)

  it("cancels a queue of every class on close(): none starts, each ends once", function ()
    local client = aigc.client { base_url = srv.base_url, max_concurrency = 2, max_retries = 0 }
    local reqs, ends = {}, {}
    local submit = submitter(client, reqs, ends)
    submit("r1", nil, { headers = { ["x-aigc-fault"] = "delay=200" } })
    submit("r2", nil, { headers = { ["x-aigc-fault"] = "delay=200" } })
    local classes = { "interactive", "normal", "background" }
    for i = 1, 30 do submit("q" .. i, classes[i % 3 + 1]) end
    -- One of them cancels others from its on_error, while close() cancels.
    reqs.q7 = nil
    submit("q7x", "normal", { on_error = function (err)
      ends.q7x = { err.kind }
      for i = 8, 12 do reqs["q" .. i]:cancel() end
    end })
    for i = 1, 3 do reqs["q" .. i]:cancel() end
    client:close()
    for name, r in pairs(reqs) do
      assert.equal("canceled", r:status(), name)
      assert.same({ "canceled" }, ends[name], name)
    end
    local seen = arrivals(srv)
    for _, name in ipairs(seen) do assert.truthy(name == "r1" or name == "r2", name) end
  end)

  it("fails a blocking call only while every slot is held by a callback waiting for it", function ()
    local client = aigc.client { base_url = srv.base_url, max_concurrency = 2, max_retries = 0 }
    local seen = {}
    -- A request canceled inside its own callback (it gives its slot back
    -- while delivered), then one whose callback waits for a blocking call.
    local victim
    victim = client:chat_async { messages = { { role = "user", content = "victim" } },
                                 stream = function () victim:cancel() end, on_error = function () end }
    drain(client)
    assert.equal("canceled", victim:status())
    -- Slot 1: a slow request nobody delivers; slot 2: a stream whose
    -- callback makes a blocking call: it must wait for slot 1, not fail.
    client:chat_async { messages = { { role = "user", content = "slow" } },
                        headers = { ["x-aigc-fault"] = "delay=100" }, on_error = function () end }
    local inner_ok, inner_err
    client:chat_async { messages = { { role = "user", content = "outer" } }, stream = function ()
      if inner_ok == nil and inner_err == nil then
        local res, err = client:chat { messages = { { role = "user", content = "inner" } } }
        inner_ok, inner_err = res ~= nil, err and err.kind or false
      end
    end, on_error = function (err) seen[#seen + 1] = err.kind end }
    drain(client)
    assert.same({ true, false }, { inner_ok, inner_err })
    -- Both slots held by callbacks waiting: the inner call cannot start.
    local results = {}
    local function nested (name, depth)
      return { messages = { { role = "user", content = name } }, stream = function ()
        if results[name] == nil then
          results[name] = "waiting"
          if depth == 1 then
            client:chat_async(nested("b", 2))
            local res = client:chat { messages = { { role = "user", content = "after-b" } } }
            results[name] = res and "ok" or "failed"
          else
            local res, err = client:chat { messages = { { role = "user", content = "never" } } }
            results[name] = res and "ok" or err.kind
          end
        end
      end, on_error = function (err) seen[#seen + 1] = err.kind end }
    end
    client:chat_async(nested("a", 1))
    drain(client)
    assert.same({ a = "ok", b = "limit" }, results)
    assert.same({}, seen)
    client:close()
  end)
end)
