-- A task's wait that could not yield must not stay registered.
--
-- On PUC Lua 5.1 a wait under a pcall or a C iterator cannot yield: the
-- yield raises "attempt to yield across metamethod/C-call boundary" and
-- that error goes on through the task (README: on 5.1 use `task.pcall`
-- around waits). The scheduler (lua/aigc/task.lua) had already registered
-- the wait: for a wait on another client's stream, the task's client
-- counted it as a task waiting on a guest. Nothing took it back when the
-- task then waited on something else or ended, so `client:active()` never
-- came back to 0 (a game's "is this NPC done?" stayed true for ever) and
-- the loop kept driving the other client. Found by the lifecycle tester on
-- 5.1 (seed 3726924, sequence 206).
--
-- On the other versions the same code yields across the pcall and the
-- cases pass as they are: the checks are the same everywhere.

local aigc = require "aigc"
local devserver = require "devserver"

local HI = { { role = "user", content = "Hi" } }

-- Steps both clients until neither has anything left, or `seconds` pass.
local function drain (a, b, seconds)
  local deadline = aigc.now() + seconds
  while (a:active() > 0 or b:active() > 0) and aigc.now() < deadline do
    a:step(0.01)
    b:step(0.01)
  end
end

describe("a task's wait it could not yield for", function ()
  local srv, client, other
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end)
  before_each(function () other = aigc.client { base_url = srv.base_url, max_retries = 0 } end)
  after_each(function () other:close() end)

  -- The task reads `other`'s stream under a plain pcall (on 5.1 its first
  -- wait cannot yield), then `after(task_client)`; returns what the task saw.
  local function run_task (after)
    local seen = {}
    client:spawn(function ()
      local ok, err = pcall(function ()
        for _ in other:stream { messages = HI } do end
      end)
      seen.pcall_ok, seen.pcall_err = ok, err
      seen.after = { after() }
      seen.finished = true
    end)
    drain(client, other, 10)
    return seen
  end

  it("is dropped when the task then makes a blocking call of its own client", function ()
    local seen = run_task(function () return client:chat { messages = HI } end)
    assert.is_true(seen.finished, "the task did not finish")
    assert.are.equal("table", type(seen.after[1]), "the task's own call failed: " .. tostring(seen.after[2]))
    assert.are.equal(0, other:active())
    assert.are.equal(0, client:active(), "the failed wait still counts as a task waiting on another client")
  end)

  it("is dropped when the task then waits on another future", function ()
    local seen = run_task(function () return client:chat_async({ messages = HI }):wait() end)
    assert.is_true(seen.finished, "the task did not finish")
    assert.are.equal("table", type(seen.after[1]))
    assert.are.equal(0, other:active())
    assert.are.equal(0, client:active(), "the failed wait still counts as a task waiting on another client")
  end)

  it("is dropped when the task ends, while what it waited on still runs", function ()
    local finished = false
    client:spawn(function ()
      pcall(function ()
        for _ in other:stream { messages = HI } do end
      end)
      finished = true
    end)
    if finished then
      -- (5.1: the wait failed at once and the task ended inside spawn;
      -- `other`'s stream, not stepped yet, still runs)
      assert.is_true(other:active() > 0)
      assert.are.equal(0, client:active(), "the ended task's wait still counts as a task waiting on another client")
    end
    drain(client, other, 10)
    assert.is_true(finished, "the task did not finish")
    assert.are.equal(0, client:active())
    assert.are.equal(0, other:active())
    -- (a client whose tasks wait on another one steps that one too: with
    -- nothing left, a new request of `other` is not driven by `client`)
    local req = other:chat_async { messages = HI }
    for _ = 1, 20 do client:step(0.01) end
    assert.are.equal("running", req:status(), "client:step still drives the other client")
    req:cancel()
    drain(client, other, 5)
  end)

  if _VERSION == "Lua 5.1" and not rawget(_G, "jit") then
    it("(5.1: the wait really could not yield under the pcall, as the cases above need)", function ()
      local seen = run_task(function () return true end)
      assert.is_false(seen.pcall_ok)
      assert.matches("yield across", tostring(seen.pcall_err))
    end)
  end
end)
