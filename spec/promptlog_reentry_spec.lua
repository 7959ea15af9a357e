-- The prompt log (client option `prompt_log`) re-entered (DESIGN.md's
-- re-entrancy rule), swept: a call made from inside a callback -- a stream's
-- on_delta, an on_done, an on_error, a tool, a finalizer, a task woken by
-- an end -- gets its row in a real SQLite log, as the call around it does;
-- and a log object of the user's (a table with `record_call`) whose writer
-- raises, yields outside aigc, makes a nested call, closes the client,
-- collects garbage or turns the loop, for a call of each form (blocking,
-- in a task of another client, in the user's own coroutine, streamed,
-- chat_async with and without callbacks): the call keeps its result, a
-- write that failed is reported once with kind "log", and the client (a
-- new one after close) goes on. Real HTTP to the bundled devserver.
--
-- Found by the sweep: a writer that yielded (its own coroutine.yield) from
-- a blocking call inside the user's coroutine yielded the writer's values
-- out of `client:chat` to the coroutine's resume -- the call never
-- returned --, and inside a task abandoned the task; elsewhere it was
-- already "attempt to yield from outside a coroutine", reported.
local aigc = require "aigc"
local devserver = require "devserver"
local portable = require "portable"
local forms = require "call_forms"

local PUC51 = portable.version == "5.1"

local function user (text) return { { role = "user", content = text } } end

describe("the prompt log re-entered", function ()
  local srv
  setup(function () srv = devserver.start { pause_ms = 0 } end)
  teardown(function () srv:stop() end)

  local function new_client (extra, reported)
    local o = { base_url = srv.base_url, max_retries = 0, model = "aigc-dev",
                error_handler = function (e) reported[#reported + 1] = e end }
    for k, v in pairs(extra) do o[k] = v end
    return aigc.client(o)
  end

  describe("a call made from inside a callback", function ()
    local WHERE = { "on_delta", "on_done", "on_error", "tool", "finalizer", "task" }
    for _, where in ipairs(WHERE) do
      it("is logged, as the call around it (" .. where .. ")", function ()
        local path = os.tmpname()
        local reported = {}
        local c = new_client({ prompt_log = path }, reported)
        local inner = {}
        local outer
        local function once ()
          if inner[1] == nil then inner[1] = assert(c:chat("inner " .. where)).text end
        end
        if where == "on_delta" then
          outer = c:chat { messages = user "outer", stream = function () once() end }
        elseif where == "on_done" or where == "on_error" then
          local req = c:chat_async { messages = user "outer", on_done = once, on_error = once,
                                     headers = where == "on_error" and { ["x-aigc-fault"] = "status=400" } or nil }
          while c:step(0.01) > 0 do end
          outer = req:result()
        elseif where == "tool" then
          outer = c:chat { messages = user "get_time",
                           tools = aigc.tools { { name = "get_time", fn = function () once(); return "noon" end } } }
        elseif where == "finalizer" then
          local req = c:chat_async { messages = user "outer" }
          for _ = 1, 5 do portable.finalized(once) end
          while c:step(0.01) > 0 do collectgarbage() end
          outer = req:result()
        else
          local req = c:chat_async { messages = user "outer" }
          c:spawn(function () req:wait(); once() end)
          while c:step(0.01) > 0 do end
          outer = req:result()
        end
        c:close()
        assert.truthy(inner[1])
        assert.same({}, reported)
        local log = assert(aigc.promptlog.open(path))
        local rows = log:list { n = 50 }
        log:close()
        os.remove(path)
        local got = {}
        for _, r in ipairs(rows) do got[r.prompt] = (got[r.prompt] or 0) + 1 end
        assert.equal(1, got["inner " .. where])
        if where == "tool" then
          assert.truthy(outer)
          assert.equal(2, got.get_time)   -- (the dialogue's two rounds)
          assert.equal(3, #rows)
        else
          assert.equal(1, got.outer)
          assert.equal(2, #rows)
          if where == "on_error" then assert.is_nil(outer) else assert.truthy(outer) end
        end
      end)
    end
  end)

  describe("a writer of the user's", function ()
    local FORMS = { "blocking", "task", "coro", "stream", "async_cb", "async_nocb" }
    local ACTS = { "raise", "yield", "nested", "close", "gc", "step" }

    -- One case: a chat of `form` whose log's first record_call does `act`.
    local function run_case (form, act)
      local o = { rows = {}, reported = {}, counts = { done = 0, err = 0 }, calls = 0 }
      local c
      local log = { record_call = function (_, params)
        o.calls = o.calls + 1
        if o.calls == 1 then
          if act == "raise" then error("log boom")
          elseif act == "yield" then coroutine.yield("the writer's own")
          elseif act == "nested" then assert(c:chat "nested from the writer")
          elseif act == "close" then c:close()
          elseif act == "gc" then collectgarbage(); collectgarbage()
          elseif act == "step" then c:step(0)
          end
        end
        o.rows[#o.rows + 1] = params.messages[1].content
        return #o.rows
      end }
      c = new_client({ prompt_log = log }, o.reported)
      o.client = c
      local stream = form == "stream" and function () end or nil
      local function blocking () o.res, o.err = c:chat { messages = user "main", stream = stream } end
      if form == "blocking" or form == "stream" then blocking()
      elseif form == "coro" then o.coro = forms.in_coroutine(blocking)
      elseif form == "task" then o.task_done = forms.in_task(new_client({}, o.reported), blocking)
      else
        local cb = form == "async_cb"
        local req = c:chat_async { messages = user "main",
                                   on_done = cb and function () o.counts.done = o.counts.done + 1 end or nil,
                                   on_error = cb and function () o.counts.err = o.counts.err + 1 end or nil }
        local guard = aigc.now() + forms.GUARD
        while aigc.now() < guard and c:step(0.01) > 0 do end
        o.res, o.err = req:result()
      end
      return o
    end

    for _, form in ipairs(FORMS) do
      for _, act in ipairs(ACTS) do
        it(form .. ": one that does " .. act .. " leaves the call whole", function ()
          local o = run_case(form, act)
          local c = o.client
          assert.is_nil(o.err)
          assert.truthy(o.res and o.res.text)
          if form == "coro" then assert.equal("dead", o.coro) end
          if form == "task" then assert.is_true(o.task_done) end
          if form == "async_cb" then assert.same({ done = 1, err = 0 }, o.counts) end
          -- (a writer that turns the loop inside a callback is refused: misuse, a failed write)
          local refused = act == "step" and (form == "task" or form == "async_cb")
          -- (PUC 5.1: a wait in a task cannot yield across the C calls above the writer, its documented limit)
          local across = PUC51 and act == "nested" and form == "task"
          if act == "raise" or act == "yield" or refused or across then
            assert.equal(1, #o.reported)
            assert.equal("log", o.reported[1].kind)
            local why = act == "raise" and "log boom" or act == "yield" and "yielded outside aigc"
                        or across and "attempt to yield across" or "called from inside an aigc callback"
            assert.matches(why, o.reported[1].message, 1, true)
            assert.same({}, o.rows)
          else
            assert.same({}, o.reported)
            assert.equal("main", o.rows[#o.rows])
          end
          if act == "close" then
            assert.has_error(function () c:chat "after" end)
            c = new_client({ prompt_log = { record_call = function () return 1 end } }, o.reported)
          end
          assert.truthy(assert(c:chat "after").text)
          if act ~= "close" then assert.equal("after", o.rows[#o.rows]) end
          c:close()
        end)
      end
    end
  end)

  -- An aigc.promptlog of the caller's, closed by a finalizer while a call
  -- is in flight: the failed write said "attempt to index a nil value
  -- (field 'con')" (the loop's write set the lock's wait on the closed
  -- connection first) where the log's own misuse is clear.
  describe("an aigc.promptlog of the caller's closed by a finalizer", function ()
    for _, when in ipairs { "between", "inside", "blocking" } do
      it("makes the call's write fail clearly, once (" .. when .. ")", function ()
        local path = os.tmpname()
        local log = assert(aigc.promptlog.open(path))
        local reported = {}
        local c = new_client({ prompt_log = log }, reported)
        local function plant () portable.finalized(function () log:close() end) end
        local res
        if when == "blocking" then
          res = c:chat { messages = user "main", stream = function () plant(); collectgarbage() end }
        else
          local req = c:chat_async { messages = user "main",
                                     stream = function () if when == "inside" then plant() end; collectgarbage() end }
          if when == "between" then plant(); collectgarbage(); collectgarbage() end
          while c:step(0.01) > 0 do end
          res = req:result()
        end
        assert.truthy(res and res.text)
        assert.equal(1, #reported)
        assert.equal("log", reported[1].kind)
        assert.equal("the prompt log did not record a call: calling 'record' on a closed aigc.promptlog",
                     reported[1].message)
        assert.truthy(assert(c:chat "after").text)
        assert.equal(1, #reported)   -- (reported again only after a write that worked)
        c:close()
        os.remove(path)
      end)
    end
  end)
end)
