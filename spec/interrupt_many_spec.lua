-- Ctrl-C (or a debug hook's error) while an operation that started several
-- requests waits for them: every request it started is canceled, and the
-- interrupt propagates unchanged ("interrupted!"). Before, only the
-- request being waited for at that moment was canceled (the C wait cancels
-- its own); the others went on, paid for, until the garbage collector.
-- A real interpreter gets a real SIGINT, as in interrupt_spec.lua; the
-- server hangs every request ("x-aigc-fault: hang"), so they are all in
-- flight when the signal comes.
local devserver = require "devserver"
local luachild = require "luachild"
local socket = require "socket"
-- (seconds: a guard against a hang only, scaled under valgrind by AIGC_TIMEOUT_SCALE;
-- a run stopped by it fails: the fast case of a run under valgrind must end first)
local GUARD = require("call_forms").GUARD

-- arg[1] the server, arg[2] the operation.
local CHILD = [[
local aigc = require "aigc"
local strategy = require "aigc.strategy"
local hang = { ["x-aigc-fault"] = "hang" }
local c = aigc.client { base_url = arg[1], max_retries = 0 }
local slow = aigc.client { base_url = arg[1], max_retries = 0, headers = hang }
local mode = arg[2]
local p = { messages = { { role = "user", content = "Hi" } } }
local function score () return 1 end
local ops = {
  best_of = function () return strategy.best_of { client = slow, n = 3, params = p, score = score } end,
  vote = function () return strategy.vote { client = slow, n = 3, params = p } end,
  -- the candidates answer; the score judge's three requests hang
  judge = function ()
    return strategy.best_of { client = c, n = 3, params = p, judge = { client = slow, mode = "score" } }
  end,
  race = function () return strategy.race { params = p, { client = slow }, { client = slow }, { client = slow } } end,
  -- a dataset run: its cases' tasks wait for their requests; a line or an
  -- on_result after the run raised would be wrong too
  runner = function ()
    local cases = { { id = "a", prompt = "1" }, { id = "b", prompt = "2" }, { id = "c", prompt = "3" } }
    return require("aigc.runner").run { client = slow, cases = cases, concurrency = 3,
      on_result = function () print("ON_RESULT") end }
  end,
  -- the case's reply comes; its first judge hangs: canceled, the case
  -- must not go on to start its second judge
  runner_judges = function ()
    local judge = { type = "judge", value = "Is it polite?" }
    return require("aigc.runner").run { client = c, judge_client = slow, cases = { { id = "a", prompt = "1" } },
      assert = { judge, judge }, on_result = function () print("ON_RESULT") end }
  end,
  -- the batch backend: the lines come; their judges (side by side) hang
  runner_batch = function ()
    local cases = { { id = "a", prompt = "1" }, { id = "b", prompt = "2" } }
    return require("aigc.runner").run { client = c, judge_client = slow, cases = cases, backend = "batch",
      batch_interval = 0.02, params = { model = "m" }, assert = { { type = "judge", value = "Is it polite?" } },
      on_result = function () print("ON_RESULT") end }
  end,
}
local call = ops[mode]
io.write("READY\n"); io.flush()
local ok, err = pcall(call)
print("RESULT", ok, tostring(err):match("interrupted!") and "interrupted!" or tostring(err))
-- (a canceled request's on_error is delivered by the next turn of the
-- loop: a race's entries have one; a request still in flight stays)
for _ = 1, 5 do c:step(0); slow:step(0) end
print("ACTIVE", c:active() + slow:active())
local res = c:chat(p)
print("AFTER", res ~= nil)
]]

local function now () return socket.gettime() end

describe("Ctrl-C while an operation waits for several requests", function ()
  local srv

  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)

  -- The requests that hang at the server now (a hang never answers).
  local function hanging ()
    local n = 0
    for _, r in ipairs(srv:requests()) do
      if r.headers["x-aigc-fault"] == "hang" and not r.client_closed then n = n + 1 end
    end
    return n
  end

  local function interrupt (mode)
    local child = luachild.run(CHILD, { args = { srv.base_url, mode }, background = true })
    assert.truthy(child.pid, "the child did not start")
    child:until_printed("READY")
    local deadline = now() + GUARD
    -- Until the hanging requests reach the server (its records, not a
    -- timing claim).
    -- (a run starts with one case: its limiter learns the server's pace)
    while hanging() < (mode:match("^runner") and 1 or 3) do
      assert(now() < deadline, "the requests never came")
      socket.sleep(0.05)
    end
    socket.sleep(0.2)
    os.execute("kill -INT " .. child.pid)
    return child:wait(30)
  end

  for _, mode in ipairs { "best_of", "vote", "judge", "race", "runner", "runner_judges", "runner_batch" } do
    it(mode .. " cancels every request it started, and the interrupt propagates", function ()
      srv:reset()
      local r = interrupt(mode)
      assert.equal(0, r.status, r.stderr .. r.stdout)
      assert.matches("RESULT\tfalse\tinterrupted!\n", r.stdout, 1, true)
      assert.matches("ACTIVE\t0\n", r.stdout, 1, true)
      assert.matches("AFTER\ttrue\n", r.stdout, 1, true)
      assert.not_matches("ON_RESULT", r.stdout, 1, true)
    end)
  end
end)

describe("a dataset run stopped by spec.interrupted", function ()
  local srv

  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)

  it("cancels its cases in flight (before: they went on, with no line)", function ()
    local aigc = require "aigc"
    local slow = aigc.client { base_url = srv.base_url, max_retries = 0, headers = { ["x-aigc-fault"] = "hang" } }
    local cases = { { id = "a", prompt = "1" }, { id = "b", prompt = "2" } }
    local results = 0
    local deadline = now() + GUARD
    local s, err = require("aigc.runner").run { client = slow, cases = cases, concurrency = 2,
      on_result = function () results = results + 1 end,
      -- (stops once a case's request reached the server)
      interrupted = function () return srv:stats().open_now >= 1 or now() > deadline end }
    assert.is_nil(s)
    assert.equal("interrupted", err.code)
    for _ = 1, 5 do slow:step(0) end
    assert.equal(0, slow:active())
    assert.equal(0, results)
    slow:close()
  end)
end)

describe("a dataset run whose on_result raises", function ()
  local srv

  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)

  it("cancels its other cases in flight, then raises", function ()
    local aigc = require "aigc"
    local c = aigc.client { base_url = srv.base_url, max_retries = 0 }
    local deadline = now() + GUARD
    local ok, err = pcall(require("aigc.runner").run, { client = c, concurrency = 2, pace = false,
      cases = { { id = "slow", prompt = "1" }, { id = "fast", prompt = "2" } },
      strategy = function (client, params, case)   -- (the case "slow" hangs)
        if case.id == "slow" then params.headers = { ["x-aigc-fault"] = "hang" } end
        return client:chat(params)
      end,
      on_result = function () error("boom", 0) end,
      interrupted = function () return now() > deadline end })
    assert.is_false(ok)
    assert.equal("boom", err)
    for _ = 1, 5 do c:step(0) end
    assert.equal(0, c:active())
    c:close()
  end)
end)
