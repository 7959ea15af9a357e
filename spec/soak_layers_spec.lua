-- Long-running use of the Lua layers (a bot that runs for days): what a
-- round leaves behind must not pile up. Each test runs a scenario for a
-- warm-up, collects, then runs it ROUNDS more times and bounds the growth
-- of the Lua heap (collectgarbage "count", after two full collections)
-- well above noise (a few KiB) and well below what the leak it guards
-- against left (measured on the old code, per round). Not timed: the
-- rounds are few enough for valgrind (AIGC_VALGRIND: fewer still).
local aigc = require "aigc"
local devserver = require "devserver"

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
    collectgarbage("collect")
    collectgarbage("collect")
    local left = 0
    for _ in pairs(gone) do left = left + 1 end
    assert.equal(0, left)
    assert.equal(20, #errors)
  end)
end)
