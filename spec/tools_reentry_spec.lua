-- A toolset's tool that re-enters aigc (DESIGN.md's re-entrancy rule), swept
-- over every form a dialogue runs in: blocking (main chunk, inside a task of
-- another client, inside the user's own coroutine, streamed),
-- `chat_async` (plain and streamed), and the Responses API's `respond` and
-- `respond_async`. Each tool yields outside aigc, raises,
-- makes a nested blocking call, starts another request, cancels the call
-- it runs in, closes the client, collects garbage, turns the loop, waits for
-- another request, or is cut by a host's watchdog hook at its 1st..4th
-- instruction. Expected in every case: the call ends (no hang) with the
-- documented outcome, a chat_async gets exactly one of on_done/on_error,
-- the tool ran once, and the client (a new one after close) goes on. Real
-- HTTP to the bundled devserver on loopback.
--
-- Found by the sweep: a watchdog (Ctrl-C, a game's frame watchdog) that cut
-- a tool was swallowed as the tool's error -- sent to the model as
-- `{"error":"watchdog"}` while the script ran on, the call completed -- and,
-- in a chat_async, any interrupt raised in the dialogue's task became a
-- rejected future while step() returned as if nothing came. On 5.3+ (where
-- a hook's frame is named) it now goes on up out of the call or the step,
-- as from any callback; a chat_async's future then ends once, with kind
-- "callback". On 5.1, 5.2 and LuaJIT no frame names a hook: the cut stays
-- the tool's error (README: Ctrl-C, per version).
local aigc = require "aigc"
local devserver = require "devserver"
local watchdog = require "watchdog_cut"
local portable = require "portable"
local forms = require "call_forms"

local FRAMES_NAME_HOOKS = portable.version == "5.3" or portable.version == "5.4"

local function user (text) return { { role = "user", content = text } } end

local FORMS = { "blocking", "task", "coro", "stream", "async", "stream_async", "respond", "respond_async" }
local ACTS = { "yield", "raise", "nested", "nested_async", "cancel", "close", "gc", "step", "wait_other" }

describe("a tool re-entering aigc", function ()
  local srv, client
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { model = "aigc-dev" }, nil, { pause_ms = 0 })
  local jit = rawget(_G, "jit")
  before_each(function () if jit then jit.off() end end)   -- (count hooks do not run in compiled code)
  after_each(function () debug.sethook(); if jit then jit.on() end end)

  -- Runs one case: the chat of form `form` whose tool does `act`, under
  -- the watchdog when `cut` (the n-th instruction of the tool). Returns
  -- the outcome: res, err, raised (what the driver raised), ran, counts.
  local function run_case (form, act, cut)
    local c = client
    local o = { ran = 0, counts = { done = 0, err = 0 } }
    local ctx, in_tool = {}, false
    local ts = aigc.tools { { name = "get_time", fn = function ()
      o.ran = o.ran + 1
      in_tool = true
      if act == "yield" then coroutine.yield("not an aigc wait")
      elseif act == "raise" then error("boom")
      elseif act == "nested" then o.nested = assert(c:chat "nested").text
      elseif act == "nested_async" then ctx.other = c:chat_async { messages = user "other" }
      elseif act == "cancel" then if ctx.req then ctx.req:cancel() end
      elseif act == "close" then c:close()
      elseif act == "gc" then collectgarbage(); collectgarbage()
      elseif act == "step" then c:step(0)
      elseif act == "wait_other" then assert(c:chat_async { messages = user "other" }:wait(10))
      end
      local x = 0
      for i = 1, 20 do x = x + i end
      in_tool = false
      return "12:00 " .. x
    end } }
    local stream = (form == "stream" or form == "stream_async") and function () end or nil
    local responses = form == "respond" or form == "respond_async"
    local params = { tools = ts, messages = user "get_time", stream = stream }
    if responses then params = { tools = ts, input = "get_time" } end
    local function blocking ()
      if responses then o.res, o.err = c:respond(params) else o.res, o.err = c:chat(params) end
    end
    local function drive ()
      if form == "blocking" or form == "stream" or form == "respond" then blocking()
      elseif form == "coro" then o.coro_status = forms.in_coroutine(blocking)
      elseif form == "task" then
        o.task_done = forms.in_task(aigc.client { base_url = srv.base_url, max_retries = 0 }, blocking)
      else
        params.on_done = function () o.counts.done = o.counts.done + 1 end
        params.on_error = function () o.counts.err = o.counts.err + 1 end
        local req = responses and c:respond_async(params) or c:chat_async(params)
        ctx.req, o.req = req, req
        local guard = aigc.now() + forms.GUARD
        while aigc.now() < guard and c:step(0.01) > 0 do end
        o.res, o.err = req:result()
      end
    end
    local ok, e
    if cut then
      ok, e = watchdog.run(cut, {}, drive, function () return in_tool end, function () return true end)
    else
      ok, e = pcall(drive)
    end
    if not ok then o.raised = e end
    -- (a chat_async cut: its end, left to the next turn, runs there)
    if o.req then
      local guard = aigc.now() + forms.GUARD
      while aigc.now() < guard and pcall(c.step, c, 0.01) and c:active() > 0 do end
      o.status = o.req:status()
      o.res, o.err = o.req:result()
    end
    return o
  end

  -- The client goes on (a new one when the tool closed it).
  local function goes_on (closed)
    if closed then
      assert.has_error(function () client:chat "after" end)
      client = aigc.client { base_url = srv.base_url, max_retries = 0 }
    end
    assert.truthy(assert(client:chat "after").text)
  end

  local function ends_once (form, o)
    if o.req then
      assert.equal(1, o.counts.done + o.counts.err)
      assert.is_true(o.status == "done" or o.status == "failed" or o.status == "canceled")
    end
    if form == "coro" then assert.equal("dead", o.coro_status) end
    if form == "task" then assert.is_true(o.task_done) end
  end

  for _, form in ipairs(FORMS) do
    local async = form == "async" or form == "stream_async" or form == "respond_async"
    for _, act in ipairs(ACTS) do
      it(form .. ": a tool that does " .. act .. " ends the call as documented", function ()
        local o = run_case(form, act)
        assert.is_nil(o.raised)
        assert.equal(1, o.ran)
        ends_once(form, o)
        if act == "yield" then
          assert.is_nil(o.res)
          assert.equal("callback", o.err.kind)
          assert.matches("yielded outside aigc", o.err.message, 1, true)
        elseif act == "close" then
          assert.is_nil(o.res)
          assert.equal("canceled", o.err.kind)
        elseif act == "cancel" and async then
          assert.is_nil(o.res)
          assert.equal("canceled", o.err.kind)
          assert.equal(1, o.counts.err)
        elseif act == "raise" then
          assert.is_nil(o.err)
          assert.equal('Here is what I found: {"error":"boom"}', o.res.text)
        elseif act == "step" and (async or form == "task") then
          -- (step() inside a callback is refused: the tool's error, for the model)
          assert.is_nil(o.err)
          assert.matches("step() called from inside an aigc callback", o.res.text, 1, true)
        else
          assert.is_nil(o.err)
          assert.equal("Here is what I found: 12:00 210", o.res.text)
          if act == "nested" then assert.matches("nested", o.nested, 1, true) end
        end
        goes_on(act == "close")
      end)
    end

    it(form .. ": a tool cut by a watchdog at each of its first instructions", function ()
      for n = 1, 4 do
        local o = run_case(form, "none", n)
        assert.equal(1, o.ran)
        if o.req then
          assert.equal(1, o.counts.done + o.counts.err)
        end
        if FRAMES_NAME_HOOKS then
          -- the interrupt goes on up, unchanged; nothing went to the model
          assert.equal("watchdog", o.raised)
          assert.equal(1, #srv:requests())
          if o.req then
            assert.equal(1, o.counts.err)
            assert.equal("callback", o.err.kind)
            assert.matches("debug hook", o.err.message, 1, true)
          end
        else
          -- (no frame names a hook: the tool's error, for the model)
          assert.is_nil(o.raised)
          assert.equal('Here is what I found: {"error":"watchdog"}', o.res.text)
        end
        debug.sethook()
        goes_on(false)
        srv:reset()
      end
    end)
  end
end)
