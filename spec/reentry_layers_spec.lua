-- The re-entrancy rule (docs/ARCHITECTURE.md: callbacks, finalizers and
-- hooks may call anything at any time) in the layers the random lifecycle
-- tester (spec/lifecycle) does not draw: sentences, the Responses API,
-- the runner and the Batch API, media uploads and downloads, the cache,
-- cassettes, the usage and prompt-log hooks, strategies, conversation
-- save, watch/act. Each user callback of those layers closes the client,
-- cancels its request and another, makes a nested blocking call, calls
-- step/act/wait, collects garbage, raises (twice, where it is called
-- more than once), yields, or drops the last references; in plain code
-- and inside a task of another client. Expected: a clear error or the
-- documented outcome, exactly one end per request with callbacks, no
-- crash, no hang, and the client (or a new one) usable after. The cases
-- run in child processes (a crash or a hang fails the case, not the run).
local aigc = require "aigc"
local devserver = require "devserver"
local luachild = require "luachild"

-- {======================================================
-- Defects found by the probe
-- =======================================================

-- A client with a cassette that is collected, or a script that exits,
-- without client:close(): the io.popen file of the cassette's server can
-- be finalized before the cassette (whose finalizer kills the server; on
-- LuaJIT a table has none), and its pclose waited for the server, which
-- waits for its parent: the process never ended.
local CASSETTE_CHILD = [[
local aigc = require "aigc"
local url, tape, mode, form = arg[1], arg[2], arg[3], arg[4]
local c = aigc.client { base_url = url, max_retries = 0, model = "aigc-dev",
                        cassette = { path = tape, mode = mode } }
local res, err = c:chat "Hi"
print("chat", res and res.text ~= nil, err and err.kind)
if form == "drop" then
  c = nil
  collectgarbage(); collectgarbage()
  print("collected")
end
print("end")
]]

-- runner.run drove its client with client:step(), which aigc refuses
-- inside the client's callbacks: in a task resumed from them (any wait the
-- task made before on that client, or one an on_progress/on_result
-- callback makes) the run failed with "client:step() called from inside an
-- aigc callback".
local function run_spec (client, extra)
  local spec = { client = client, concurrency = 2, template = aigc.template.new { prompt = "Say {{x}}" },
                 cases = { { id = "a", vars = { x = "1" } }, { id = "b", vars = { x = "2" } },
                           { id = "c", vars = { x = "3" } } } }
  for k, v in pairs(extra or {}) do spec[k] = v end
  return spec
end

-- Runs `fn` in a task of `owner` until it ends (10 s at most): its results.
-- (no pcall in the task: PUC 5.1 cannot yield across one; what the task
-- raises comes back from step(), and is given as the result's error)
local function in_task (owner, fn)
  local got, errs = nil, {}
  owner:spawn(function () got = { true, fn() } end)
  local deadline = aigc.now() + 10
  while not got and aigc.now() < deadline do
    local _, e = owner:step(0.01)
    for _, x in ipairs(e or {}) do errs[#errs + 1] = tostring(x) end
  end
  if not got and #errs > 0 then got = { false, table.concat(errs, "; ") } end
  return got
end

describe("re-entrancy in the layers the lifecycle tester does not draw", function ()
  local srv
  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)

  describe("a cassette's client never closed", function ()
    for _, form in ipairs { "exit", "drop" } do
      it("lets the process end (" .. form .. "), recording and replaying", function ()
        local tape = os.tmpname()
        os.remove(tape)
        for _, mode in ipairs { "record", "replay" } do
          local r = luachild.run(CASSETTE_CHILD, { args = { srv.base_url, tape, mode, form }, timeout = 30 })
          assert.equal(0, r.status, mode .. ": " .. r.stdout .. r.stderr)
          assert.matches("chat\ttrue", r.stdout)
          assert.matches("end\n$", r.stdout)
        end
        os.remove(tape)
      end)
    end
  end)

  describe("runner.run", function ()
    local client, host
    before_each(function ()
      client = aigc.client { base_url = srv.base_url, max_retries = 0, model = "aigc-dev" }
      host = aigc.client { base_url = srv.base_url, max_retries = 0, model = "aigc-dev" }
    end)
    after_each(function () client:close(); host:close() end)

    for _, owner in ipairs { "its client", "another client" } do
      it("in a task of " .. owner .. ", after a blocking call of the task", function ()
        local got = in_task(owner == "its client" and client or host, function ()
          assert(client:chat "first")
          return aigc.runner.run(run_spec(client))
        end)
        assert.truthy(got, "the task never ended")
        assert.is_true(got[1], tostring(got[2]))
        assert.equal(3, got[2].ok)
        assert.equal(3, got[2].total)
      end)

      it("in a task of " .. owner .. ", whose on_progress and on_result make blocking calls", function ()
        local from_progress, from_result = {}, {}
        local got = in_task(owner == "its client" and client or host, function ()
          return aigc.runner.run(run_spec(client, {
            progress_interval = 0,
            on_progress = function ()   -- (the list grows after the call: concurrent callbacks)
              if #from_progress < 2 then local t = client:chat("p").text; from_progress[#from_progress + 1] = t end
            end,
            on_result = function () local t = client:chat("r").text; from_result[#from_result + 1] = t end,
          }))
        end)
        assert.truthy(got, "the task never ended")
        assert.is_true(got[1], tostring(got[2]))
        assert.equal(3, got[2].ok)
        -- every on_result ran to its end before run returned
        assert.equal(3, #from_result)
        assert.equal(2, #from_progress)
        for _, text in ipairs(from_result) do assert.equal("string", type(text)) end
      end)
    end

    -- A job's task abandoned (its own coroutine.yield in a strategy
    -- function or on_result) never counted its case: the run waited for
    -- ever. In a child: the old code hangs.
    for _, where in ipairs { "strategy", "on_result" } do
      it("whose " .. where .. " yields outside aigc: ends with that error, once", function ()
        local r = luachild.run(([[
          local aigc = require "aigc"
          local reported = 0
          local c = aigc.client { base_url = arg[1], max_retries = 0, model = "aigc-dev",
                                  error_handler = function () reported = reported + 1 end }
          local n = 0
          local function yield_once () n = n + 1; if n == 1 then coroutine.yield() end end
          local spec = { client = c, concurrency = 2, template = aigc.template.new { prompt = "Say {{x}}" },
                         cases = { { id = "a", vars = { x = "1" } }, { id = "b", vars = { x = "2" } } } }
          if "%s" == "strategy" then
            spec.strategy = function (client, p) yield_once(); return client:chat(p) end
          else
            spec.on_result = yield_once
          end
          local ok, s, err = pcall(aigc.runner.run, spec)
          print(ok, s, err and err.kind, reported)
          print(c:chat("after").text ~= nil)
        ]]):format(where), { args = { srv.base_url }, timeout = 30 })
        assert.equal(0, r.status, r.stdout .. r.stderr)
        assert.equal("true\tnil\tcallback\t0\ntrue\n", r.stdout)
      end)
    end

    it("outside a task, whose on_result makes blocking calls: they end before run returns", function ()
      local n = 0
      local s = assert(aigc.runner.run(run_spec(client, {
        on_result = function () assert(client:chat "r"); n = n + 1 end })))
      assert.equal(3, s.ok)
      assert.equal(3, n)   -- (each ran to its end before run returned)
    end)
  end)

  describe("strategy.race", function ()
    local a, b
    local STORY = { { role = "user", content = "Generate a short story about a robot that learns to paint." } }
    before_each(function ()
      a = aigc.client { base_url = srv.base_url, max_retries = 0, model = "aigc-dev" }
      b = aigc.client { base_url = srv.base_url, max_retries = 0, model = "aigc-dev" }
    end)
    after_each(function () a:close(); b:close() end)

    -- The race's end was a future of the first entry's client: closing
    -- that client canceled it, and the race returned "canceled" at once
    -- while the other entries ran on (never canceled).
    local function closing_race ()
      local n = 0
      return aigc.strategy.race { params = { messages = STORY, stream = function ()
        n = n + 1
        if n == 1 then a:close() end
      end }, { client = a }, { client = b } }
    end

    it("whose first client a stream callback closes: the other entry wins", function ()
      local res, outcomes = closing_race()
      assert.truthy(res, tostring(outcomes))
      assert.equal("string", type(res.text))
      assert.equal(2, outcomes.winner)
      assert.equal(0, b:active())
    end)

    it("in a task of the client a stream callback closes: ends, leaving no entry running", function ()
      local got
      a:spawn(function () got = { closing_race() } end)
      local deadline = aigc.now() + 10
      while not got and aigc.now() < deadline and pcall(a.step, a, 0.01) do end
      assert.truthy(got, "the race never ended")
      assert.is_nil(got[1])
      assert.equal("canceled", got[2].kind)
      local outcomes = got[3]
      while b:step(0.01) > 0 and aigc.now() < deadline do end
      assert.equal(0, b:active())
      -- (the other entry, canceled by the race's end, whether its on_error
      -- or the end told it first: it was "failed" or "canceled" by timing)
      assert.equal("canceled", outcomes[2].status)
      assert.equal("canceled", outcomes[2].err.kind)
    end)
  end)

  -- The seeded probe (spec/support/reentry_probe.lua): two cases per
  -- layer, each a drawn sequence of actions in its callbacks. Another
  -- seed: AIGC_REENTRY_SEED=N (and AIGC_REENTRY_CASES=per layer).
  -- Found by `spec/lifecycle/run.lua --layers` (seed 2, sequence 45): an
  -- on_error that client:close() ran (the end of a call it canceled)
  -- started a conversation's say_async; its future failed with kind
  -- "callback", "error in a conversation's say: attempt to use a closed
  -- client", as if the callback had raised, where a plain chat_async there
  -- raises the misuse. chat_async with a toolset or a schema did the same,
  -- also on a client closed long before.
  describe("work started on a closed or closing client", function ()
    local TOOLS = aigc.tools { { name = "poke", parameters = { type = "object", properties = {} },
                                 fn = function () return "ok" end } }
    local starts = {
      say_async = function (_, conv) return conv:say_async("Hi") end,
      tools = function (c)
        return c:chat_async { messages = { { role = "user", content = "poke" } }, tools = TOOLS }
      end,
      schema = function (c) return c:chat_async { messages = { { role = "user", content = "Hi" } },
                                                  schema = { type = "object" } } end,
      chat = function (c) return c:chat_async { messages = { { role = "user", content = "Hi" } } } end,
    }
    for name, start in pairs(starts) do
      it("raises the misuse from an on_error that close() runs: " .. name, function ()
        local c = aigc.client { base_url = srv.base_url, max_retries = 0, model = "aigc-dev" }
        local conv = aigc.conversation { client = c }
        local seen = {}
        c:chat_async { messages = { { role = "user", content = "Hi" } }, on_error = function (e)
          seen.kind = e.kind
          seen.ok, seen.got = pcall(start, c, conv)
        end }
        c:close()
        assert.equal("canceled", seen.kind)
        assert.is_false(seen.ok, "it returned " .. tostring(seen.got))
        assert.matches("attempt to use a closed client", seen.got)
        assert.is_nil(conv._busy)   -- (the conversation was let go)
      end)

      it("raises the misuse on a closed client: " .. name, function ()
        local c = aigc.client { base_url = srv.base_url, max_retries = 0, model = "aigc-dev" }
        local conv = aigc.conversation { client = c }
        c:close()
        local ok, got = pcall(start, c, conv)
        assert.is_false(ok, "it returned " .. tostring(got))
        assert.matches("attempt to use a closed client", got)
      end)
    end
  end)

  describe("a seeded probe of every layer's callbacks", function ()
    local probe = require "reentry_probe"
    local seed = tonumber(os.getenv("AIGC_REENTRY_SEED") or "") or 20261205
    local per_layer = tonumber(os.getenv("AIGC_REENTRY_CASES") or "") or 2
    local groups = { {}, {}, {} }
    for i, name in ipairs(probe.LAYERS) do table.insert(groups[(i - 1) % 3 + 1], name) end
    local children = {}
    setup(function ()   -- (the children mostly wait for the server: side by side)
      for g, layers in ipairs(groups) do
        local names = {}
        for k, name in ipairs(layers) do names[k] = ("%q"):format(name) end
        children[g] = luachild.run(([[
          local probe = require "reentry_probe"
          probe.run(arg[1], { %s }, tonumber(arg[2]), tonumber(arg[3]))
        ]]):format(table.concat(names, ", ")),
          { args = { srv.base_url, tostring(seed + g), tostring(per_layer) }, background = true, timeout = 600 })
      end
    end)
    for g, layers in ipairs(groups) do
      it(("keeps the contract (seed %d): %s"):format(seed + g, table.concat(layers, ", ")), function ()
        local r = children[g]:wait(600)
        assert.equal(0, r.status, r.stdout .. r.stderr)
        assert.not_matches("Sanitizer", r.stderr)
        assert.not_matches("VIOLATION", r.stdout)
        assert.matches("CASES " .. #layers * per_layer .. "\n", r.stdout)
      end)
    end
  end)
end)
