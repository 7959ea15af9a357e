-- A host's watchdog (a debug hook that raises once to stop a script that
-- ran too long, as Defold-style hosts and lua.c's Ctrl-C do) must reach
-- the caller wherever it fires inside aigc. Fired while the client counted
-- a call's usage, or wrote its prompt log row (the Lua layer's "drop what
-- this raises" calls), it was swallowed: the call returned its reply, the
-- hook had removed itself, and the script ran on past its watchdog. Only an
-- error whose message ends in "interrupted!" went through there; the C core
-- already let any error raised in a hook through (Lua 5.3 and 5.4 tell a
-- hook's frame; 5.1, 5.2 and LuaJIT only that message).

local aigc = require "aigc"
local compat = require "aigc.compat"
local devserver = require "devserver"

local HI = { { role = "user", content = "hi there" } }

-- A one-shot hook at the first call into a function of `file`: it removes
-- itself and raises `msg` (a watchdog's error). Returns a table whose
-- `fired` says whether it did.
local function watchdog_in (file, msg)
  local state = {}
  debug.sethook(function ()
    local info = debug.getinfo(2, "S")
    if info and info.source:find(file, 1, true) then
      debug.sethook()
      state.fired = true
      error(msg, 0)
    end
  end, "c")
  return state
end

-- f(...) under that watchdog: the hook fired, and f raised its error as it is.
local function raises_watchdog (file, msg, f, ...)
  local state = watchdog_in(file, msg)
  local ok, e = pcall(f, ...)
  debug.sethook()
  assert.is_true(state.fired)
  assert.is_false(ok)
  assert.equal(msg, e)
end

-- A watchdog that fires at the n-th instruction run inside `file` (a
-- count hook: the cut can land anywhere in it). Returns its state (`state`
-- when given: a cut may land before this returns).
local function watchdog_at (file, n, msg, state)
  local k = 0
  state = state or {}
  debug.sethook(function ()
    local info = debug.getinfo(2, "S")
    if info and info.source:find(file, 1, true) then
      k = k + 1
      if k == n then
        debug.sethook()
        state.fired = true
        error(msg, 0)
      end
    end
  end, "", 1)
  return state
end

-- (5.1, 5.2 and LuaJIT name no hook's frame: there an error raised in a
-- hook was told only by an "interrupted!" message, and a watchdog's own
-- message was swallowed -- 46 of 120 cuts on LuaJIT. It is told there by
-- the hooks: off where it is raised, on where it is caught.)
describe("a host's watchdog hook inside aigc's own bookkeeping", function ()
  local jit = rawget(_G, "jit")
  setup(function () if jit then jit.off() end end)   -- (count hooks are not called in compiled code)
  teardown(function () if jit then jit.on() end end)
  local srv, client
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { max_retries = 0 })
  after_each(function () debug.sethook() end)

  it("fired while a blocking call's usage is counted: the call raises it", function ()
    assert.truthy(client:chat { messages = HI })   -- (the client's modules loaded)
    raises_watchdog("aigc/usage.lua", "watchdog: too long", client.chat, client, { messages = HI })
    assert.truthy(client:chat { messages = HI })   -- (the client goes on)
  end)

  it("fired while an on_done's call is counted: step() raises it, the next step runs on_done", function ()
    local done = 0
    local req = client:chat_async { messages = HI, on_done = function () done = done + 1 end }
    while req:status() ~= "done" and req:status() ~= "failed" do
      local state = watchdog_in("aigc/usage.lua", "watchdog: frame too long")
      local ok, e = pcall(client.step, client, 0.05)
      debug.sethook()
      if state.fired then
        assert.is_false(ok)
        assert.equal("watchdog: frame too long", e)
        break
      end
    end
    assert.equal("done", req:status())
    assert.equal(0, done)   -- (cut before it: the watchdog stopped the frame, as Ctrl-C does)
    client:step(0)   -- (the next frame: the end goes on where it was cut; the on_done was lost)
    assert.equal(1, done)
    local r = client:chat { messages = HI }
    assert.truthy(r)
    assert.equal(1, done)
  end)

  it("cut at any instruction of the count: the call raises it, every time", function ()
    assert.truthy(client:chat { messages = HI })
    local cuts, raised, n = 0, {}, 0
    while true do
      n = n + 1
      local state = watchdog_at("aigc/usage.lua", n, "watchdog " .. n)
      local ok, e = pcall(client.chat, client, { messages = HI })
      debug.sethook()
      if not state.fired then
        assert.truthy(ok and e)   -- (past the count's last instruction: the call ends as usual)
        break
      end
      cuts = cuts + 1
      if not ok and e == "watchdog " .. n then raised[#raised + 1] = n end
    end
    assert.is_true(cuts > 10)
    assert.equal(cuts, #raised)
    assert.truthy(client:chat { messages = HI })
  end)

  it("fired inside a stream callback, with its own message: the call raises it, its request canceled", function ()
    local deltas, state = 0, nil
    local ok, e = pcall(client.chat, client, { messages = HI, stream = function ()
      deltas = deltas + 1
      if deltas == 2 then
        state = {}
        watchdog_at("watchdog_counting_spec", 3, "watchdog: in a callback", state)
      end
    end })
    debug.sethook()
    assert.equal(2, deltas, tostring(e))
    assert.is_true(state.fired)
    assert.is_false(ok)
    assert.equal("watchdog: in a callback", e)
    assert.truthy(client:chat { messages = HI })
  end)

  it("raised in a finalizer that runs a call whose count fails: not an interrupt", function ()
    -- (hooks are off in a finalizer on 5.1, 5.2 and LuaJIT, as in a hook:
    -- an error caught there stays what it was)
    client._usage.record = function () error("a broken count", 0) end
    local got
    local function run () got = { client:chat { messages = HI } } end
    local newproxy = rawget(_G, "newproxy")
    if newproxy then
      local p = newproxy(true)
      getmetatable(p).__gc = run
    else
      setmetatable({}, { __gc = run })
    end
    collectgarbage()
    collectgarbage()
    client._usage.record = nil
    assert.is_table(got)
    assert.truthy(got[1])
  end)

  it("fired while the prompt log writes a call's row: the call raises it", function ()
    local log = { rows = 0 }
    function log.record_call () log.rows = log.rows + 1; return 1 end
    local c = aigc.client { base_url = srv.base_url, max_retries = 0, prompt_log = log }
    assert.truthy(c:chat { messages = HI })
    raises_watchdog("aigc/promptlog_pending.lua", "watchdog: log", c.chat, c, { messages = HI })
    c:close()
  end)
end)

-- The calls that pass interrupts on (util.pcall_passing_interrupts) are
-- xpcall with a C message handler, not a pcall made in C: a C function's
-- lua_pcall cannot be yielded across, and a prompt log object's own
-- record_call (or a cache's put) may yield its task, as any blocking aigc
-- call in a task does.
describe("a prompt log object whose record_call makes a blocking call in a task", function ()
  local srv
  devserver.fixture(_ENV, function (s) srv = s end, { max_retries = 0 })

  it("yields its task (the loop goes on meanwhile) and writes the row", function ()
    if not compat.yield_across_pcall then
      pending("PUC Lua 5.1 cannot yield across pcall")
      return
    end
    local other = aigc.client { base_url = srv.base_url, max_retries = 0 }
    local rows, failures, inner_pending, steps_meanwhile = {}, {}, false, 0
    local log = {}
    function log.record_call ()
      inner_pending = true
      local r, err = other:chat { messages = HI }   -- (in the task: yields it, unless it cannot)
      inner_pending = false
      rows[#rows + 1] = r and r.text or tostring(err)
      return #rows
    end
    local c = aigc.client { base_url = srv.base_url, max_retries = 0, prompt_log = log,
                            error_handler = function (e) failures[#failures + 1] = tostring(e) end }
    local got
    c:spawn(function () got = assert(c:chat { messages = HI }).text end)
    local deadline = os.time() + 30
    while got == nil and os.time() < deadline do
      c:step(0.01)
      other:step(0)
      if inner_pending then steps_meanwhile = steps_meanwhile + 1 end
    end
    assert.same({}, failures)
    -- (a pcall made in C cannot be yielded across: the call inside then
    -- waited as a plain blocking call, the whole loop frozen until it ended)
    assert.is_true(steps_meanwhile > 0, "the loop never ran while record_call's call was in flight")
    assert.is_string(got)
    assert.equal(1, #rows)
    assert.is_string(rows[1])
    assert.not_matches("yield", rows[1])
    c:close()
    other:close()
  end)
end)
