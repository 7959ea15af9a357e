-- A future always ends: whatever raises in the task that runs its work,
-- the future fails (kind "callback"; "limit" for memory) and whoever
-- waits on it wakes.
--
-- future.run runs the work in a task; the task's own wrapper -- around the
-- work's pcall -- could raise too: util.callback_error's tostring of an
-- error object whose __tostring returns nil or raises (a common slip in
-- error classes), or Lua out of memory (a memory-capped host). The error
-- was reported, but the future stayed "running" and wait() blocked for
-- ever (conversation:say_async():wait(); images_generate and the other
-- media calls in the memory-capped host).

local aigc = require "aigc"
local devserver = require "devserver"
local Future = require("aigc.future").Future

local HI = { { role = "user", content = "Hi" } }

local function error_object (tostring_fn)
  return setmetatable({ code = 42 }, { __tostring = tostring_fn })
end

local BAD_TOSTRING = {
  { "returns nil", function (e) return e.msg end },
  { "returns a table", function () return {} end },
  { "raises", function () error("no text for you") end },
}

describe("a future's task", function ()
  local client, srv
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end)

  for _, case in ipairs(BAD_TOSTRING) do
    it("fails the future on an error object whose __tostring " .. case[1], function ()
      local conv = aigc.conversation { client = client, max_context_tokens = 100,
                                       estimate = function () error(error_object(case[2])) end }
      local res, err = conv:say_async("Hello"):wait(5)
      assert.is_nil(res)
      assert.is_table(err, "the future was still pending after 5 s")
      assert.equal("callback", err.kind)
      -- (worded as the core words it: spec/callback_value_wording_spec.lua)
      assert.equal("error in a conversation's say: (a table value whose __tostring failed)", err.message)
    end)
  end

  it("wakes a task waiting on it when its work raises such an error", function ()
    local conv = aigc.conversation { client = client, max_context_tokens = 100,
                                     estimate = function () error(error_object(BAD_TOSTRING[1][2])) end }
    local fut = conv:say_async "Hello"
    local got
    client:spawn(function () got = { fut:wait() } end)
    local deadline = aigc.now() + 5
    while got == nil and aigc.now() < deadline do client:step(0.01) end
    assert.is_table(got, "the waiting task was never resumed")
    assert.is_nil(got[1])
    assert.equal("callback", got[2].kind)
  end)

  it("fails the future when an error escapes its task outside the work", function ()
    -- (Future.resolve raises as the task's wrapper settles the future, after
    -- the work's pcall: where memory ran out in the capped host)
    local reported = {}
    local c = aigc.client { base_url = srv.base_url, max_retries = 0,
                            error_handler = function (e) reported[#reported + 1] = e end }
    local ts = aigc.tools { { name = "now", fn = function () return "12:00" end } }
    -- (Future.resolve raises, once: not from a debug hook, whose error is a
    -- host's interrupt -- raised on to the caller, future_cut_spec)
    local resolve, fired = Future.resolve, false
    Future.resolve = function ()
      Future.resolve = resolve
      fired = true
      error(error_object(function () return nil end))
    end
    local ok, fut = pcall(c.chat_async, c, { messages = HI, tools = ts })
    local res, err
    if ok then ok, res, err = pcall(fut.wait, fut, 5) end
    Future.resolve = resolve
    assert(ok, res)
    assert.is_true(fired, "the wrapper never settled the future (the case tested nothing)")
    assert.is_nil(res)
    assert.is_table(err, "the future was still pending after 5 s")
    assert.equal("callback", err.kind)
    assert.matches("(a table value whose __tostring failed)", err.message, 1, true)
    assert.equal(0, #reported, "the error went to the future: not reported as well")
    c:close()
  end)
end)

describe("a future's task out of memory", function ()
  local luachild = require "luachild"
  local srv
  devserver.fixture(_ENV, function (s) srv = s end)

  -- Each call below is a future (future.run); the host fails the n-th
  -- allocation after the call starts, and the `run` - 1 after it, for
  -- every n in a range: a raise, a failure or a result are all fine; a
  -- wait that never returns (stopped by a hook after 2 s) is not.
  -- The embeddings call is swept three times: on 5.1 a task whose resume
  -- failed lost its end when calling pcall for it raised too (its stack
  -- or CallInfo list grew there), and its future stayed running for ever;
  -- which n meets that depends on the heap, which the earlier sweeps
  -- leave as the later ones need (1 CI in ~10 saw it with one sweep).
  local SCRIPT = [[
    local aigc = require "aigc"
    local run, last = tonumber(arg[2]), tonumber(arg[3])
    local calls = {
      function (c) return c:images_generate { prompt = "x", response_format = "b64_json", size = "256x256" } end,
      function (c) return c:embeddings { input = { "a", "b" } } end,
      function (c) return c:moderate { input = "kill" } end,
    }
    local hung, runs, deadline = {}, 0, math.huge
    debug.sethook(function () if aigc.now() > deadline then error("hung", 0) end end, "", 1000)
    for k, call in ipairs(calls) do
      for n = k == 2 and 1 - 2 * last or 1, last do   -- (embeddings: swept three times)
        local c = aigc.client { base_url = arg[1], max_retries = 0, timeout = 5, error_handler = function () end }
        deadline = aigc.now() + 2
        aigc_host_failat((n - 1) % last + 1, run)
        local ok, e = pcall(call, c)
        aigc_host_failat(0)
        deadline = math.huge
        if not ok and e == "hung" then hung[#hung + 1] = k .. ":" .. (n - 1) % last + 1 end
        runs = runs + 1
        pcall(c.close, c)
      end
    end
    debug.sethook()
    print(runs .. " runs, hung: " .. table.concat(hung, " "))
  ]]

  for _, run in ipairs { 1, 4 } do
    it("ends, whichever allocation fails (runs of " .. run .. ")", function ()
      local host = luachild.host()
      if not host then pending("no C compiler to build spec/support/lua_host.c"); return end
      local r = luachild.run(SCRIPT, { lua = host, args = { srv.base_url, tostring(run), "260" }, timeout = 300 })
      assert.equal(0, r.status, r.stderr)
      assert.equal("1300 runs, hung: \n", r.stdout)
    end)
  end
end)

describe("util.callback_error", function ()
  local util = require "aigc.util"
  local values = {
    { "nil", nil, "error in X: a nil error value without a message" },   -- (as the core says it)
    { "a number", 7, "error in X: 7" },
    { "a table whose __tostring returns nil", error_object(function () return nil end),
      "error in X: (a table value whose __tostring failed)" },
    { "a table whose __tostring raises a table", error_object(function () error({}) end),
      "error in X: (a table value whose __tostring failed)" },
  }
  for _, v in ipairs(values) do
    it("makes an error object of " .. v[1], function ()
      local e = util.callback_error("X", v[2])
      assert.equal("callback", e.kind)
      assert.equal(v[3], e.message:sub(1, #v[3]))
    end)
  end
end)
