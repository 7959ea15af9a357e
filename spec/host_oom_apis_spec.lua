-- host_oom_spec's sweep over the rest of the API: whichever allocation of
-- a call fails (the n-th after it starts, and the run - 1 after it), the
-- call ends with a memory error (raised, or nil, err saying so) and the
-- state stays usable: a new client's chat then succeeds. The calls: the
-- Responses API (plain, streamed with a tool, the iterator), a streamed
-- chat with a tool, images saved to files, speech to a file, a
-- transcription, a file's upload and download (to a file), a batch run,
-- a conversation that summarises its history, aigc.json over a big value,
-- a vector index, close() from a stream callback and from on_done, and
-- the finalizers of dropped requests, clients, streams, conversations,
-- indexes and JSON values called while allocations fail (made garbage
-- before, collected after the failures start).
--
-- n runs 1..$AIGC_OOM_LAST (default 8: CI is time-bound; 300 is the
-- whole sweep, run by hand under the ASan hosts).
--
-- A batch's requests were checked by encoding them with pcall, and Lua
-- out of memory there was reported as misuse: "bad argument #2 to 'run'
-- (requests[1]: not enough memory)".

local devserver = require "devserver"
local luachild = require "luachild"

-- Runs `script` in the test host (spec/support/lua_host.c) with `args`;
-- returns its output, or nil (pending) when no host can be built.
local function in_host (script, args)
  local host = luachild.host()
  if not host then pending("no C compiler to build spec/support/lua_host.c"); return nil end
  local r = luachild.run(script, { lua = host, args = args, timeout = 600 })
  assert.equal(0, r.status, r.stderr)
  return r.stdout
end

-- JIT_OFF: the children turn LuaJIT's compiler off. A compiled loop whose
-- allocation fails crashes LuaJIT 2.1.0-beta3 itself (SIGSEGV in trace code, with
-- no aigc in the loop: `for j = 1, 16 do r[j] = math.sin(i * j) end;
-- os.clock()` under aigc_host_failat), which is not what these look for.

describe("a call of the wider API whose allocation fails", function ()
  local srv
  devserver.fixture(_ENV, function (s) srv = s end)

  local SCRIPT = [[
    if jit then jit.off() end   -- (see JIT_OFF above)
    local aigc = require "aigc"
    for _, m in ipairs { "aigc.dialogue", "aigc.conversation", "aigc.batch", "aigc.vec", "aigc.responses",
                         "aigc.download", "aigc.media", "aigc.files" } do require(m) end
    local url, run, last = arg[1], tonumber(arg[2]), tonumber(arg[3])
    local dir = os.tmpname(); os.remove(dir); assert(os.execute("mkdir -p " .. dir))
    local HI = { { role = "user", content = "hi there" } }
    local tools = aigc.tools { { name = "roll", parameters = { type = "object", properties = {} },
                                 fn = function () return "four" end } }
    local big = {}
    for i = 1, 200 do big[i] = { id = i, name = "n" .. i, v = { i, i * 0.5, true, "x\0y\195\169" } } end
    local bigjson = aigc.json.encode(big)
    local function churn (c)   -- (runs the finalizers of what was dropped before)
      collectgarbage()
      local t = {}
      for i = 1, 3000 do t[i] = { i } end
      c:step(0.01)
      return "ok"
    end
    local fid
    local calls = {
      { "respond", function (c) return c:respond { input = "hi" } end },
      { "a streamed respond with a tool", function (c)
        return c:respond { input = "roll()", tools = tools, stream = function () end }
      end },
      { "stream_response", function (c)
        local t = {}
        for d in c:stream_response { input = "hi" } do t[#t + 1] = d end
        return table.concat(t)
      end },
      { "a streamed chat with a tool", function (c)
        return c:chat { messages = { { role = "user", content = "roll()" } }, tools = tools, stream = function () end }
      end },
      { "images saved", function (c)
        local r, e = c:images_generate { prompt = "a red square", response_format = "b64_json" }
        if not r then return r, e end
        return r:save(dir)
      end },
      { "speech to a file", function (c) return c:speech { input = "Into a file", to = dir .. "/s.mp3" } end },
      { "transcribe", function (c) return c:transcribe { file = { data = "RIFF audio", filename = "a.wav" } } end },
      { "files_upload", function (c)
        return c:files_upload { file = { data = "{}\n", filename = "a.jsonl" }, purpose = "batch" }
      end },
      { "download to a file", function (c)
        return c:download(url .. "/files/" .. fid .. "/content", { to = dir .. "/d.bin" })
      end },
      { "batch.run", function (c)
        return aigc.batch.run(c, { { custom_id = "a", body = { messages = HI } } }, { interval = 0.02 })
      end },
      { "a conversation that summarises", function (c)
        local conv = aigc.conversation { client = c, max_context_tokens = 60, summarize = true }
        for i = 1, 4 do
          conv:add { role = "user", content = "turn " .. i .. " some words here" }
          conv:add { role = "assistant", content = "reply " .. i .. " more words here" }
        end
        return conv:say("hello again")
      end },
      { "aigc.json", function () return aigc.json.encode(aigc.json.decode(bigjson)) end },
      { "a vector index", function ()
        local x, q = aigc.vec.index(), {}
        for i = 1, 50 do
          local r = {}
          for j = 1, 16 do r[j] = math.sin(i * j) end
          x:add(r)
        end
        for j = 1, 16 do q[j] = j end
        return x:topk(q, 3)
      end },
      { "close() in a stream callback", function (c)
        local req = c:chat_async { messages = HI, stream = function () c:close() end, on_error = function () end }
        for _ = 1, 200 do if c:step(0.01) == 0 then break end end
        return req:status()
      end },
      { "close() in on_done", function (c)
        c:chat_async { messages = HI, on_done = function () c:close() end, on_error = function () c:close() end }
        for _ = 1, 200 do if c:step(0.01) == 0 then break end end
        return "ok"
      end },
      { "dropped requests collected", pre = function (c)
        for _ = 1, 3 do c:chat_async { messages = HI, stream = function () end } end
        c:step(0.01)
        return churn
      end },
      { "a dropped client collected", pre = function ()
        local d = aigc.client { base_url = url, model = "m" }
        for _ = 1, 2 do d:chat_async { messages = HI, stream = function () end } end
        d:step(0.01)
        return churn
      end },
      { "dropped streams, a conversation, an index, a JSON value collected", pre = function (c)
        c:stream({ messages = HI })()
        c:stream_response { input = "hi" }
        aigc.conversation({ client = c }):say_async("hello")
        aigc.vec.index():add { 1, 2, 3 }
        aigc.json.decode(bigjson)
        return churn
      end },
    }
    do
      local c = aigc.client { base_url = url, model = "m" }
      fid = assert(c:files_upload { file = { data = "hello there\n", filename = "a.jsonl" }, purpose = "batch" }).id
      c:close()
    end
    local sweep = require "oom_sweep"
    -- (a batch made before the failure: its error names it, to wait for it again)
    local function batch_named (why) return why:find("^batch %S+ goes on at the server .*: not enough memory$") end
    local runs, bad = sweep.run { url = url, run = run, last = last, seconds = 3, calls = calls, also = batch_named }
    os.execute("rm -rf " .. dir)
    print(sweep.report(runs, bad))
  ]]

  local last = tonumber(os.getenv("AIGC_OOM_LAST")) or 8
  for _, run in ipairs { 1, 2 } do
    it("ends with a memory error and leaves the state usable (runs of " .. run .. ")", function ()
      local out = in_host(SCRIPT, { srv.base_url, tostring(run), tostring(last) })
      if out then assert.equal((18 * last) .. " runs; 0 bad\n", out) end
    end)
  end
end)

describe("aigc.batch's check of its requests out of memory", function ()

  it("raises the memory error, not a bad argument", function ()
    local out = in_host([[
      if jit then jit.off() end   -- (see JIT_OFF above)
      local batch = require "aigc.batch"
      local reqs = { { custom_id = "a", body = { messages = { { role = "user", content = "hi" } } } } }
      local failed, bad = 0, {}
      for run = 1, 2 do
        for n = 1, 60 do
          aigc_host_failat(n, run)
          local ok, e = pcall(batch.jsonl, reqs)
          aigc_host_failat(0)
          if not ok then failed = failed + 1 end
          if not ok and e ~= "not enough memory" then bad[#bad + 1] = run .. "/" .. n .. ": " .. tostring(e) end
        end
      end
      print((failed > 0 and "some failed" or "none failed") .. "; " .. #bad .. " bad"
            .. (bad[1] and (": " .. table.concat(bad, "\n")) or ""))
    ]])
    if out then assert.equal("some failed; 0 bad\n", out) end
  end)
end)

-- runner.run out of memory:
-- - a case's task registered its abandon hook itself, in its first lines:
--   Lua out of memory there (or before its pcall) ended the task with the
--   case never settled, and run waited for ever (`remaining` never 0);
-- - a case id was checked by encoding it under pcall, and out of memory
--   there was reported as a bad id: "runner: case 1: id cannot be written
--   in the results (JSON): not enough memory".
describe("runner.run whose allocation fails", function ()
  local srv
  devserver.fixture(_ENV, function (s) srv = s end)

  local SCRIPT = [[
    if jit then jit.off() end   -- (see JIT_OFF above)
    local aigc = require "aigc"
    local runner = require "aigc.runner"
    require "aigc.batch_backend"
    local url, last = arg[1], tonumber(arg[2])
    local LAST = { direct = last, batch = math.min(last, 50) }   -- (a batch's polls take time)
    local bad, failed, deadline = {}, 0, math.huge
    debug.sethook(function () if aigc.now() > deadline then error("hung", 0) end end, "", 1000)
    for _, backend in ipairs { "direct", "batch" } do
      for run = 1, 2 do
        for n = 1, LAST[backend] do
          local cases = {}
          for i = 1, 3 do cases[i] = { id = "c" .. i, messages = { { role = "user", content = "Hi" } } } end
          local c = aigc.client { base_url = url, max_retries = 0, timeout = 5, model = "m",
                                  error_handler = function () end }
          local spec = { client = c, cases = cases, backend = backend, batch_interval = 0.02 }
          deadline = aigc.now() + 3
          aigc_host_failat(n, run)
          local ok, s, err = pcall(runner.run, spec)
          aigc_host_failat(0)
          deadline = math.huge
          local whys = {}
          if not ok then whys[1] = s elseif not s then whys[1] = err else
            for id, r in pairs(s.results) do if r.error then whys[#whys + 1] = r.error end end
          end
          for _, why in ipairs(whys) do
            failed = failed + 1
            why = type(why) == "table" and tostring(why.message) or tostring(why)
            if not why:find("not enough memory", 1, true) or why:find("id cannot", 1, true) then
              bad[#bad + 1] = backend .. " " .. run .. "/" .. n .. ": " .. why
            end
          end
          pcall(c.close, c)
          if bad[1] and bad[#bad]:find("hung") then break end   -- (each hang costs its 3 s)
        end
      end
    end
    debug.sethook()
    print((failed > 0 and "some failed" or "none failed") .. "; " .. #bad .. " bad"
          .. (bad[1] and (": " .. table.concat(bad, "\n")) or ""))
  ]]

  it("ends, with memory errors only, whichever allocation fails", function ()
    local out = in_host(SCRIPT, { srv.base_url, os.getenv("AIGC_OOM_LAST") or "160" })
    if out then assert.equal("some failed; 0 bad\n", out) end
  end)
end)

-- A conversation's say out of memory left it busy for ever ("attempt to
-- say: the conversation is busy with another say"): the mark was taken
-- before the hook that lets go of it was registered, and before the pcall
-- (say), and a say_async whose task failed before its say started kept
-- it (only a canceled future let go).
--
-- On 5.1 and LuaJIT, step() out of memory as it began running the
-- callbacks (a C function pushed is an allocation there) left the client
-- stepping for ever: every later step() raised "client:step() is already
-- running".
describe("a conversation's say, and step(), whose allocation fails", function ()
  local srv
  devserver.fixture(_ENV, function (s) srv = s end)

  local SCRIPT = [[
    if jit then jit.off() end   -- (see JIT_OFF above)
    local aigc = require "aigc"
    require "aigc.conversation"; require "aigc.dialogue"
    local url, last = arg[1], tonumber(arg[2])
    local bad, failed = {}, 0
    local function drain (c) for _ = 1, 200 do if c:step(0.01) == 0 then break end end end
    for _, mode in ipairs { "say", "say_async", "step", "a task's wait" } do
      for run = 1, 2 do
        for n = 1, last do
          local c = aigc.client { base_url = url, max_retries = 0, timeout = 5, model = "m",
                                  error_handler = function () end }
          local conv = aigc.conversation { client = c, max_context_tokens = 60, summarize = true }
          conv:add { role = "user", content = "turn one some words here" }
          local f, after
          if mode == "say" then f = function () return conv:say("hello") end
          elseif mode == "say_async" then f = function () return conv:say_async("hello"):wait() end
          elseif mode == "step" then
            c:chat_async { messages = { { role = "user", content = "hi" } }, stream = function () end }
            f = function () drain(c); return "ok" end
          else
            local co = c:spawn(function () c:chat { messages = { { role = "user", content = "hi" } } } end)
            f = function () drain(c); return coroutine.status(co) == "dead" and "ok" or nil end
            after = function () if coroutine.status(co) ~= "dead" then return "the task still waits" end end
          end
          aigc_host_failat(n, run)
          local ok, res, err = pcall(f)
          aigc_host_failat(0)
          if not ok or res == nil then failed = failed + 1 end
          local sok, serr = pcall(drain, c)
          if not sok then bad[#bad + 1] = mode .. " " .. run .. "/" .. n .. ", then step(): " .. tostring(serr) end
          local still = after and after()
          if still then bad[#bad + 1] = mode .. " " .. run .. "/" .. n .. ": " .. still end
          local ok2, r2, e2 = pcall(conv.say, conv, "again")
          if not (ok2 and r2) then
            bad[#bad + 1] = mode .. " " .. run .. "/" .. n .. ", then a say: " .. tostring(ok2 and e2 or r2)
          end
          c:close()
        end
      end
    end
    print((failed > 0 and "some failed" or "none failed") .. "; " .. #bad .. " bad"
          .. (bad[1] and (": " .. table.concat(bad, "\n")) or ""))
  ]]

  it("leaves the conversation free and the client steppable", function ()
    local out = in_host(SCRIPT, { srv.base_url, os.getenv("AIGC_OOM_LAST") or "60" })
    if out then assert.equal("some failed; 0 bad\n", out) end
  end)
end)
