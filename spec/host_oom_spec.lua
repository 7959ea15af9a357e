-- A host whose allocator fails (a game's capped arena): whichever
-- allocation of a call fails, the call ends -- it raises "not enough
-- memory" or returns nil, err saying so -- and the state stays usable: a
-- new client's chat then succeeds. No wait may hang.
--
-- Lua out of memory was kind "callback", not "limit" as in the rest of a
-- delivery, in two places: a call made in a task (embeddings, images,
-- moderation, a conversation's say: future.run; "error in a task: not
-- enough memory"), and a stream callback (also aigc's own: the stream
-- iterator's queue).
--
-- A conversation's say_async called a memory error in its check of the
-- input or params misuse: "bad argument #1 to 'say_async' (input: not
-- enough memory)".
--
-- The stream iterator hung: its stream callback cleared the stream's
-- pending future before resolving it, and resolving it ran out of memory
-- (growing the Lua stack) before it settled anything; the request then
-- failed (kind "callback") but its end found no future to wake, and
-- `for delta in s:deltas()` waited for ever.

local devserver = require "devserver"

describe("a call whose allocation fails", function ()
  local luachild = require "luachild"
  local srv
  devserver.fixture(_ENV, function (s) srv = s end)

  -- For each call and each n in 1..last, the host fails the n-th growth
  -- after the call starts and the run - 1 after it. A hook stops a call
  -- still going after 2 s ("hung").
  local SCRIPT = [[
    local aigc = require "aigc"
    require "aigc.dialogue"   -- (loaded before the failures: the tools' call loop, conversations)
    require "aigc.conversation"
    local url, run, last = arg[1], tonumber(arg[2]), tonumber(arg[3])
    local HI = { { role = "user", content = "hi there" } }
    local tools = aigc.tools { { name = "roll", parameters = { type = "object", properties = {} },
                                 fn = function () return "four" end } }
    local calls = {
      { "the stream iterator", function (c)
        local t = {}
        for d in c:stream({ messages = HI }):deltas() do t[#t + 1] = d end
        return table.concat(t)
      end },
      { "chat", function (c) return c:chat { messages = HI } end },
      { "a streamed chat", function (c) return c:chat { messages = HI, stream = function () end } end },
      { "a tool call", function (c)
        return c:chat { messages = { { role = "user", content = "roll()" } }, tools = tools }
      end },
      { "wait", function (c) return c:chat_async({ messages = HI, stream = function () end }):wait() end },
      { "embeddings", function (c) return c:embeddings { input = { "a", "b" } } end },
      { "a conversation's say", function (c) return aigc.conversation({ client = c }):say_async("hello"):wait() end },
      { "close", function (c)
        c:chat_async { messages = HI, stream = function () end, on_error = function () end }
        c:step(0.01)
        c:close()
        return "closed"
      end },
    }
    local sweep = require "oom_sweep"
    print(sweep.report(sweep.run { url = url, run = run, last = last, seconds = 2, calls = calls }))
  ]]

  for _, run in ipairs { 1, 2 } do
    it("ends with a memory error and leaves the state usable (runs of " .. run .. ")", function ()
      local host = luachild.host()
      if not host then pending("no C compiler to build spec/support/lua_host.c"); return end
      local r = luachild.run(SCRIPT, { lua = host, args = { srv.base_url, tostring(run), "300" }, timeout = 300 })
      assert.equal(0, r.status, r.stderr)
      assert.equal("2400 runs; 0 bad\n", r.stdout)
    end)
  end
end)

-- A request nobody holds (no callback) is canceled when collected. Lua out
-- of memory runs an emergency collection, which finds such a request dead
-- (its entry in the engine's weak table goes) but runs no finalizer; the
-- loop then dropped it from its ready list, "its __gc unlinks it", and it
-- kept its slot and counted in active() until some later collection ran
-- that finalizer -- never, in a quiet loop (a game that steps its GC at
-- chosen times): `while client:step() > 0 do end` spun for ever, and
-- behind `max_concurrency` the queued requests never started.
describe("a dropped request found dead by an emergency collection", function ()
  local luachild = require "luachild"
  local srv
  devserver.fixture(_ENV, function (s) srv = s end)

  local SCRIPT = [[
    local aigc = require "aigc"
    local c = aigc.client { base_url = arg[1], max_retries = 0, model = "m" }
    c:chat_async { messages = { { role = "user", content = "hi" } } }   -- (dropped: nothing holds it)
    aigc_host_failat(1, 2)   -- (the growth fails, and its try after the emergency collection)
    local ok, e = pcall(string.rep, "x", 4096)
    aigc_host_failat(0)
    assert(not ok and e:find("not enough memory", 1, true), tostring(e))
    collectgarbage("stop")   -- (no collection runs its finalizer meanwhile)
    local steps = 0
    while c:step(0.05) > 0 and steps < 100 do steps = steps + 1 end
    collectgarbage("restart")
    print("active " .. c:active())
  ]]

  it("is canceled by the loop: active() reaches 0", function ()
    local host = luachild.host()
    if not host then pending("no C compiler to build spec/support/lua_host.c"); return end
    local r = luachild.run(SCRIPT, { lua = host, args = { srv.base_url }, timeout = 120 })
    assert.equal(0, r.status, r.stderr)
    assert.equal("active 0\n", r.stdout)
  end)
end)

-- close() out of memory while it canceled the requests in flight (a
-- request's end is recorded in Lua tables; on LuaJIT even pushing the
-- function that delivers the ends allocates) left the engine "closing"
-- for ever, not closed: a second close() returned at once, the client
-- still took requests, and its __gc skipped it, so libcurl's handles, the
-- sockets and the config leaked (CI's LuaJIT ASan lane saw the leak).
-- Now such a close() still ends closed, then raises the memory error.
--
-- The same run found the JSON encoder's box leaking its buffer on LuaJIT:
-- its metatable was registered first and given __gc after, and a memory
-- error between the two left every later box without a finalizer. The
-- metatables of aigc's boxes must all have their __gc.
describe("close() that runs out of memory", function ()
  local luachild = require "luachild"
  local srv
  devserver.fixture(_ENV, function (s) srv = s end)

  local SCRIPT = [[
    local aigc = require "aigc"
    local url, last = arg[1], tonumber(arg[2])
    local HI = { { role = "user", content = "hi" } }
    local bad, failed = {}, 0
    for n = 1, last do
      local c = aigc.client { base_url = url, max_retries = 0, timeout = 5, model = "m",
                              error_handler = function () end }
      local reqs = {}
      for i = 1, 3 do
        reqs[i] = c:chat_async { messages = HI, stream = function () end, on_error = function () end }
      end
      c:step(0.01)
      aigc_host_failat(n, 2)   -- (and its try after the emergency collection)
      local ok, e = pcall(c.close, c)
      aigc_host_failat(0)
      if not ok then
        failed = failed + 1
        if not tostring(e):find("not enough memory", 1, true) then bad[#bad + 1] = n .. ": " .. tostring(e) end
      end
      pcall(c.close, c)
      -- (the engine itself: a client closed in Lua refuses calls anyway,
      -- but an engine left open keeps its handles and sockets)
      if not tostring(c._engine):find("(closed)", 1, true) then bad[#bad + 1] = n .. ": the engine is still open" end
      local took = pcall(c.chat, c, { messages = HI })
      if took then bad[#bad + 1] = n .. ": a closed client took a chat" end
      for i = 1, 3 do
        if reqs[i]:status() ~= "canceled" then bad[#bad + 1] = n .. ": request " .. i .. " " .. reqs[i]:status() end
      end
    end
    aigc.json.encode({ a = { "b" } })   -- (a box made after all those failures)
    for _, name in ipairs { "aigc.jsonbox", "aigc.secretsbox" } do
      local mt = debug.getregistry()[name]
      if mt ~= nil and type(mt.__gc) ~= "function" then bad[#bad + 1] = name .. " has no __gc" end
    end
    print((failed > 0 and "some closes failed" or "no close failed") .. "; " .. #bad .. " bad"
          .. (bad[1] and (": " .. table.concat(bad, "\n")) or ""))
  ]]

  it("still ends closed: requests canceled, the client refusing calls, nothing leaked", function ()
    local host = luachild.host()
    if not host then pending("no C compiler to build spec/support/lua_host.c"); return end
    local r = luachild.run(SCRIPT, { lua = host, args = { srv.base_url, "150" }, timeout = 300 })
    assert.equal(0, r.status, r.stderr)
    assert.equal("some closes failed; 0 bad\n", r.stdout)
  end)

  it("a box's metatable gets its __gc whichever allocation fails while it is made", function ()
    local host = luachild.host()
    if not host then pending("no C compiler to build spec/support/lua_host.c"); return end
    local r = luachild.run([[
      local aigc = require "aigc"
      local bad = {}
      for n = 1, 40 do
        debug.getregistry()["aigc.jsonbox"] = nil   -- (as in a fresh state: made on first use)
        local value = { a = { "b" } }
        pcall(function () aigc_host_failat(n, 2); return aigc.json.encode(value) end)
        aigc_host_failat(0)
        local mt = debug.getregistry()["aigc.jsonbox"]
        if mt ~= nil and type(mt.__gc) ~= "function" then bad[#bad + 1] = n end
      end
      print(#bad .. " bad" .. (bad[1] and (": at " .. table.concat(bad, ", ")) or ""))
    ]], { lua = host, timeout = 120 })
    assert.equal(0, r.status, r.stderr)
    assert.equal("0 bad\n", r.stdout)
  end)
end)
