-- Long-running use of the Lua layers (a bot that runs for days): what a
-- round leaves behind must not pile up. Each test runs a scenario for a
-- warm-up, collects, then runs it ROUNDS more times and bounds the growth
-- of the Lua heap (collectgarbage "count", after two full collections)
-- well above noise (a few KiB) and well below what the leak it guards
-- against left (measured on the old code, per round). Not timed: the
-- rounds are few enough for valgrind (AIGC_VALGRIND: fewer still).
local aigc = require "aigc"
local devserver = require "devserver"
local proc = require "procutil"
local socket = require "socket"

local VALGRIND = os.getenv("AIGC_VALGRIND") ~= nil

local function heap_kib ()
  collectgarbage("collect")
  collectgarbage("collect")
  return collectgarbage("count")
end

-- The heap's growth (KiB) over `rounds` calls of `round(i)`, after `warmup`.
local function growth (warmup, rounds, round)
  for i = 1, warmup do round(i) end
  local before = heap_kib()
  for i = warmup + 1, warmup + rounds do round(i) end
  return heap_kib() - before
end

local left_after_collect = require("portable").left_after_collect

describe("long-running layers", function ()
  local srv
  setup(function () srv = devserver.start() end)
  teardown(function () if srv then srv:stop() end end)

  it("a blocking call answered by the response cache leaves nothing behind", function ()
    -- (each hit's end was posted to the client's loop, which only a step
    -- or a wait that blocks runs: a bot answering from the cache with
    -- blocking calls kept every hit's future and reply, ~2.3 KiB each)
    local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", cache = true }
    finally(function () c:close() end)
    local msgs = { { role = "user", content = "Echo: once" } }
    local rounds = VALGRIND and 150 or 400
    local grew = growth(20, rounds, function ()
      local res = assert(c:chat { messages = msgs, temperature = 0 })
      assert(res.text)
    end)
    assert.equal(rounds + 19, c:cache_stats().hits)
    assert.is_true(grew < 100, ("the heap grew by %.1f KiB over %d cache hits"):format(grew, rounds))
  end)

  it("clients (each with its own API key), their conversations and errors are collected once dropped", function ()
    -- (nothing module-wide -- the secrets' scrubbing, the loops by engine,
    -- the tasks -- may keep a client a bot made per customer)
    local gone = setmetatable({}, { __mode = "k" })
    local errors = {}
    for i = 1, 20 do
      local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", max_retries = 0,
                              api_key = "sk-customer-" .. i .. "-0123456789", cache = i % 2 == 0 }
      local conv = aigc.conversation { client = c, max_context_tokens = 200 }
      assert(conv:say("Hi " .. i))
      local req = c:chat_async { messages = { { role = "user", content = "Hi" } } }
      assert(req:wait())
      local _, err = c:chat { messages = { { role = "user", content = "Hi" } },
                              headers = { ["x-aigc-fault"] = "status=400" } }
      errors[i] = assert(err)   -- (kept: an error keeps no client)
      if i % 3 == 0 then c:close() end
      gone[c], gone[conv] = true, true
    end
    assert.equal(0, left_after_collect(gone))
    assert.equal(20, #errors)
  end)

  it("a sentences.stream callback that keeps its request does not keep the client once dropped", function ()
    -- (found by spec/lifecycle/run.lua --layers, seed 5, on Lua 5.1: the
    -- params' per-call maker, the value of a weak key, held the sentence
    -- callback, which led back to the key through the request's params;
    -- without ephemerons (5.1, LuaJIT) the client, its engine and all it
    -- held stayed for ever: ~8 KiB a call, ~24 KiB with tools)
    local gone = setmetatable({}, { __mode = "k" })
    local tools = aigc.tools { { name = "poke", parameters = { type = "object", properties = {} },
                                 fn = function () return "ok" end } }
    for i = 1, 6 do
      local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", max_retries = 0 }
      local npc = {}
      local p = { messages = { { role = "user", content = "Please poke order A-1042" } },
                  tools = i % 2 == 0 and tools or nil }
      npc.req = c:chat_async(aigc.sentences.stream(p, function (s) npc.last = s end))
      if i % 3 == 0 then assert(npc.req:wait()) end
      gone[c], gone[npc] = true, true
    end
    assert.equal(0, left_after_collect(gone))
  end)

  it("an images result kept by what its client's error_handler reaches does not keep them once dropped", function ()
    -- (the result's client was the value of a weak key, the result; Lua 5.1
    -- and LuaJIT have no ephemerons: a client leading back to the result --
    -- an app that keeps its last images and handles the client's errors --
    -- kept the app, the client and the images for ever)
    local gone = setmetatable({}, { __mode = "k" })
    for i = 1, 4 do
      local app = {}
      app.client = aigc.client { base_url = srv.base_url, model = "aigc-dev", max_retries = 0,
                                 error_handler = function (e) app.last_error = e end }
      app.last = assert(app.client:images_generate { prompt = "a knight " .. i, size = "16x16",
                                                     response_format = "b64_json" })
      assert.is_function(app.last.save)
      gone[app], gone[app.client], gone[app.last] = true, true, true
    end
    assert.equal(0, left_after_collect(gone))
  end)

  it("a conversation whose estimator reaches it, with a file part, is collected once dropped", function ()
    -- (a file part's estimate is remembered by the part, a weak key; the
    -- memo held the estimator, which on Lua 5.1 and LuaJIT (no ephemerons)
    -- kept the part, its conversation and client for ever when it led back
    -- to them: an NPC's estimator that counts through the NPC)
    local pdf = "%PDF-1.4\n1 0 obj << /Type /Page >> endobj\n%%EOF\n"
    local data = "data:application/pdf;base64," .. require("aigc.util").base64(pdf)
    local gone = setmetatable({}, { __mode = "k" })
    for i = 1, 4 do
      local npc = { estimated = 0 }
      npc.conv = aigc.conversation {
        client = aigc.client { base_url = srv.base_url, model = "aigc-dev" },
        estimate = function (text) npc.estimated = npc.estimated + 1; return math.ceil(#text / 4) end }
      local file = { type = "file", file = { filename = "a.pdf", file_data = data } }
      npc.conv.messages[1] = { role = "user", content = { { type = "text", text = "Read this " .. i }, file } }
      local n = npc.conv:tokens()
      assert.equal(n, npc.conv:tokens())   -- (the memo still answers)
      assert.is_true(n > 0 and npc.estimated > 0)
      gone[npc], gone[npc.conv], gone[npc.conv.client] = true, true, true
    end
    assert.equal(0, left_after_collect(gone))
  end)

  -- (the server runs outside valgrind: nothing of the module is under test
  -- in this process, and 4,000 requests would be slow there)
  local it_unless_valgrind = VALGRIND and pending or it

  it_unless_valgrind("the cassette replay server keeps no state for every call it served", function ()
    -- (it kept each call's attempts for as long as it ran, ~400 bytes a
    -- call: a suite replaying tapes for hours grew). Its own Lua heap is
    -- read through a wrapper that writes it to a file on SIGUSR1.
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. proc.quote(dir)))
    finally(function () os.execute("rm -rf " .. proc.quote(dir)) end)
    local tape, heap_file = dir .. "/tape.jsonl", dir .. "/heap"
    local f = assert(io.open(tape, "wb"))
    f:write('{"key":"k","status":200,"body":"{}"}\n')
    f:close()
    local wrapper = dir .. "/wrapper.lua"
    f = assert(io.open(wrapper, "wb"))
    f:write(([[
local uv = require "luv"
local sig = uv.new_signal()
sig:start("sigusr1", function ()
  collectgarbage("collect"); collectgarbage("collect")
  local out = assert(io.open(%q, "wb")); out:write(collectgarbage("count")); out:close()
  os.rename(%q, %q)
end)
arg = { [0] = "lua/aigc/cassette_server.lua", %q, "--parent-pid", %q }
dofile "lua/aigc/cassette_server.lua"
]]):format(heap_file .. ".tmp", heap_file .. ".tmp", heap_file, tape,
           proc.read_file("/proc/self/stat"):match("^(%d+)")))
    f:close()
    local pipe = assert(io.popen("exec lua5.4 " .. proc.quote(wrapper), "r"))
    local port, pid = (pipe:read("*l") or ""):match("^aigc cassette server (%d+) (%d+)$")
    assert(port, "the replay server did not start")
    finally(function () proc.stop(pid); pipe:close() end)
    local function call (i)
      local c = assert(socket.tcp())
      c:settimeout(30)   -- (a bound for a hung server, not a timing)
      assert(c:connect("127.0.0.1", tonumber(port)))
      assert(c:send("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nx-aigc-cassette: 1\r\n"
                    .. "x-aigc-cassette-call: " .. i .. "\r\nContent-Length: 0\r\n\r\n"))
      local reply = c:receive("*a")
      c:close()
      assert(reply and reply:find("^HTTP/1.1 200"), "no recorded reply")
    end
    local function server_heap ()
      os.remove(heap_file)
      os.execute("kill -USR1 " .. pid)
      local deadline = socket.gettime() + 60   -- (a bound, not a timing)
      while not proc.exists(heap_file) and socket.gettime() < deadline do socket.sleep(0.01) end
      return assert(tonumber(proc.read_file(heap_file)), "the server did not tell its heap")
    end
    -- (the warm-up: past twice the calls it keeps, its tables have their size)
    local warmup, rounds = 2600, 1500
    for i = 1, warmup do call(i) end
    local before = server_heap()
    for i = warmup + 1, warmup + rounds do call(i) end
    local grew = server_heap() - before
    assert.is_true(grew < 60, ("the replay server's heap grew by %.1f KiB over %d calls"):format(grew, rounds))
  end)
end)
