-- The re-entrancy rule (docs/ARCHITECTURE.md, issue 10 item 1): any Lua
-- allocation may run a __gc finalizer that calls any aigc function. Each
-- case makes finalizers fire inside aigc's own allocations — while a reply
-- becomes Lua tables, while chat_async makes its request — or makes Lua
-- run out of memory there, and checks that nothing is freed under the
-- code, the request ends once, and the client stays usable. They run in a
-- child process: before the fixes they crashed (or, under ASan, reported a
-- heap-use-after-free), which must fail the case, not end the test run.
local devserver = require "devserver"
local luachild = require "luachild"

-- The child side of "finalizers during delivery": arg[1] the server,
-- arg[2] plain | stream | chunk, arg[3] cancel | close | chat (the
-- finalizer's action). The game pattern: an NPC object that cancels its
-- pending request in __gc, collected while the reply is being delivered.
-- How the finalizers are made to fire there: the reply (50 KB, in the
-- socket buffer already: the server answers after 0.2 s, the client
-- looks again after 0.45 s) is turned into Lua values in one step, and the
-- collector is generational with the smallest minor step (1 % of the heap,
-- counted from the explicit step), so the first big allocation of the
-- delivery runs a minor collection, which calls the finalizers of the
-- young garbage made just before.
--   Elsewhere (5.1-5.3, LuaJIT: no generational mode, no table __gc on
-- 5.1/LuaJIT) the NPCs are portable.finalized objects and the collector
-- has no pause and a huge step multiplier: a step is a whole cycle, so
-- the finalizers run at the first allocations of the step() that
-- delivers the reply (in the delivery or just before it: less precise
-- than 5.4's, the same contract checked).
local DELIVERY = [[
local aigc = require "aigc"
local portable = require "portable"
local pack = require("aigc.compat").pack
local url, mode, action = arg[1], arg[2], arg[3]
local HI = { { role = "user", content = "Hi" } }
local fired, violations, canceled = 0, {}, 0
local function violation (round, what) violations[#violations + 1] = round .. ": " .. what end
for round = 1, 6 do
  local c = aigc.client { base_url = url, max_retries = 0 }
  local req, armed
  local done, errs, after, nested = 0, {}, 0, nil
  -- Lua 5.2 may collect on entry to a Lua function: a finalizer can run
  -- inside the stream callback aigc called while the request ran, before
  -- its first line. That one call sees the request ended and is not a
  -- delta "after" (aigc could not know); any later one is.
  local stream_fn, pardon = nil, false
  local function npc_gc ()
    if armed and req and req:status() == "running" then
      armed = false
      fired = fired + 1
      local caller = debug.getinfo(2, "f")
      pardon = caller ~= nil and stream_fn ~= nil and caller.func == stream_fn
      if action == "cancel" then req:cancel("the NPC was collected")
      elseif action == "close" then c:close()
      else nested = pack(pcall(c.chat, c, "nested")) end
    end
  end
  local p = { messages = HI, on_done = function () done = done + 1 end,
              on_error = function (e) errs[#errs + 1] = e.kind end }
  if mode == "plain" then
    p.headers = { ["x-aigc-fault"] = "delay=200,body=huge,size=50000" }
  else
    p.headers = { ["x-aigc-fault"] = "delay=200,event-bytes=50000" }
    local function late ()
      if pardon then pardon = false; return false end
      return true
    end
    if mode == "stream" then
      p.stream = function () if req:status() ~= "running" and late() then after = after + 1 end end
    else
      p.stream = function (_, chunk)
        if type(chunk) ~= "table" or req:status() ~= "running" and late() then after = after + 1 end
      end
    end
    stream_fn = p.stream
  end
  req = c:chat_async(p)
  local t0 = aigc.now()
  while aigc.now() - t0 < 0.05 do c:step(0.01) end   -- connected, sent; the server waits 0.2 s
  aigc.sleep(0.4)                                      -- then the reply waits in the socket buffer
  if portable.version == "5.4" then
    collectgarbage("generational", 1, 100)
    collectgarbage()
    collectgarbage("step", 0)   -- a minor collection: the next after 1 % of the heap more
  else
    portable.gc_incremental(0, 100000)   -- (before: the full collection sets the next threshold)
    collectgarbage()
  end
  armed = true
  for _ = 1, 4 do portable.finalized(npc_gc) end
  local deadline = aigc.now() + 10
  while aigc.now() < deadline do
    local ok, n = pcall(c.step, c, 0.01)
    if not ok or n == 0 then break end
  end
  armed = false
  if portable.version == "5.4" then collectgarbage("incremental") else portable.gc_incremental(200, 200) end
  local st = req:status()
  if st == "canceled" then
    canceled = canceled + 1
    if done ~= 0 then violation(round, "on_done ran for a canceled request") end
    if #errs ~= 1 or errs[1] ~= "canceled" then
      violation(round, "on_error " .. #errs .. " times: " .. table.concat(errs, ","))
    end
  elseif st == "done" then
    if done ~= 1 or #errs ~= 0 then violation(round, "done, but on_done " .. done .. ", on_error " .. #errs) end
  else
    violation(round, "status " .. st)
  end
  if after ~= 0 then violation(round, after .. " deltas after the request ended") end
  if nested and not nested[1] then violation(round, "a chat in a finalizer raised: " .. tostring(nested[2])) end
  c:close()
end
print(("fired=%d canceled=%d"):format(fired, canceled))
for _, v in ipairs(violations) do print("VIOLATION " .. v) end
]]

-- These cases time finalizers with Lua 5.4's collector controls (the
-- generational mode's minor step, the incremental mode's step size);
-- other versions have none of them. (The lifecycle tester's finalizers run
-- on LuaJIT too: make test's lifecycle-jit.)
local NEEDS_54 = "needs Lua 5.4's collector controls to time the finalizers"

describe("the re-entrancy rule", function ()
  local srv

  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)

  describe("a finalizer run while a 50 KB reply becomes Lua values (defect 2)", function ()
    -- The nine children mostly wait for the server: they run side by side.
    local children = {}
    setup(function ()
      if _VERSION ~= "Lua 5.4" then return end
      for _, mode in ipairs { "plain", "stream", "chunk" } do
        for _, action in ipairs { "cancel", "close", "chat" } do
          children[mode .. " " .. action] = luachild.run(DELIVERY, { args = { srv.base_url, mode, action },
                                                                      background = true })
        end
      end
    end)
    for _, mode in ipairs { "plain", "stream", "chunk" } do
      for _, action in ipairs { "cancel", "close", "chat" } do
        it(("%s reply, the finalizer calls %s"):format(mode, action), function ()
          if not children[mode .. " " .. action] then return pending(NEEDS_54) end
          local r = children[mode .. " " .. action]:wait(120)
          assert.equal(0, r.status, r.stderr)
          assert.not_matches("Sanitizer", r.stderr)
          local fired, canceled = r.stdout:match("fired=(%d+) canceled=(%d+)")
          assert.truthy(fired, r.stdout .. r.stderr)
          -- The finalizers did fire during the deliveries (the case tests
          -- something), and every round kept the contract.
          assert.truthy(tonumber(fired) >= 3, r.stdout)
          if action ~= "chat" then assert.truthy(tonumber(canceled) >= 3, r.stdout) end
          assert.not_matches("VIOLATION", r.stdout)
        end)
      end
    end
  end)

  -- The finalizers are made to run at the first allocation of submit: the
  -- collector is stopped right when it starts calling the finalizers of
  -- many dead objects, and restarted just before the call.
  it("a finalizer that closes the client while chat_async makes its request (defect 3)", function ()
    if _VERSION ~= "Lua 5.4" then return pending(NEEDS_54) end
    local r = luachild.run([[
      local aigc = require "aigc"
      local portable = require "portable"
      local results = {}
      local armed, fired, victim = false, 0, nil
      local function gc ()
        fired = fired + 1
        if armed then armed = false; victim() end
      end
      for round = 1, 20 do
        local c = aigc.client { base_url = "http://127.0.0.1:9/v1", max_retries = 0,
                                query = { a = "b" }, model = "m" }
        local p = { messages = { { role = "user", content = "Hi" } } }
        local e = c._engine
        -- (5.4: the smallest step; elsewhere the step size is fixed)
        if portable.version == "5.4" then collectgarbage("incremental", 100, 100, 0)
        else portable.gc_incremental(100, 100) end
        collectgarbage()
        collectgarbage("stop")
        for _ = 1, 2000 do portable.finalized(gc) end
        fired = 0
        while fired == 0 do collectgarbage("step", 0) end
        victim, armed = function () c:close() end, true
        collectgarbage("restart")
        local ok, req = pcall(e.submit, e, "chat", p)
        local what = armed and "not fired"
          or ok and ("returned " .. req:status())
          or ("raised " .. tostring(req):gsub("^.-: ", ""))
        armed = false
        results[what] = (results[what] or 0) + 1
        c:close()
        if portable.version == "5.4" then collectgarbage("incremental", 200, 100, 13)
        else portable.gc_incremental(200, 200) end
      end
      for k, v in pairs(results) do print(v, k) end
    ]])
    assert.equal(0, r.status, r.stderr)
    assert.equal("20\traised attempt to use a closed client (it was closed while the request was made)\n",
                 r.stdout)
  end)

  it("Lua out of memory while a reply is delivered: the request fails, the client goes on (defect 5)", function ()
    local host = luachild.host()
    if not host then pending("no C compiler to build spec/support/lua_host.c"); return end
    local r = luachild.run([[
      local aigc = require "aigc"
      local c = aigc.client { base_url = arg[1], max_retries = 0 }
      local errs, done = {}, 0
      local req = c:chat_async { messages = { { role = "user", content = "Hi" } },
        headers = { ["x-aigc-fault"] = "body=huge,size=4000000" },
        on_done = function () done = done + 1 end,
        on_error = function (e) errs[#errs + 1] = e.kind end }
      collectgarbage()
      collectgarbage()
      -- Lua may grow by 1 MB: not enough for the 4 MB text of the reply.
      aigc_host_memlimit(aigc_host_memlimit(0) + 1000000)
      local raised
      for _ = 1, 500 do
        local ok, e = pcall(c.step, c, 0.02)
        if not ok then raised = e; break end
        if req:status() ~= "running" then break end
      end
      aigc_host_memlimit(0)
      print("raised: " .. tostring(raised))
      print("status: " .. req:status())
      local ok, e = pcall(function () for _ = 1, 5 do c:step(0.01) end end)
      print("later steps: " .. tostring(ok) .. " " .. tostring(e))
      print(("on_done %d, on_error %d %s"):format(done, #errs, table.concat(errs, ",")))
      local res = c:chat "Hi"
      print("next chat: " .. tostring(res and res.text ~= nil))
    ]], { lua = host, args = { srv.base_url } })
    assert.equal(0, r.status, r.stderr)
    assert.equal(table.concat({
      "raised: not enough memory",
      "status: failed",
      "later steps: true nil",
      "on_done 0, on_error 1 limit",
      "next chat: true",
    }, "\n") .. "\n", r.stdout)
  end)
end)
