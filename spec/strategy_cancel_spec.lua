-- Strategies and the tool loop when the user's own code cancels or closes
-- things under them: a dialogue canceled while its tool waits, a client
-- closed while a strategy runs, a refine step that returns nothing.
local aigc = require "aigc"
local strategy = require "aigc.strategy"
local devserver = require "devserver"
local scripted = require "scripted"

-- Chat params for a request the server never answers (`timeout`: a bound
-- for the old code, which let it run on until then).
local function hanging (text)
  return { messages = { { role = "user", content = text or "Hi" } }, headers = { ["x-aigc-fault"] = "hang" },
           timeout = 20 }
end

local function drain (client)
  local errs = {}
  repeat
    local n, e = client:step(0.01)
    for _, x in ipairs(e or {}) do errs[#errs + 1] = tostring(x) end
  until n == 0
  return errs
end

describe("strategies and tools canceled under them", function ()
  local srv, client

  devserver.fixture(_ENV, function (s, c) srv, client = s, c end)

  describe("canceling a dialogue's future", function ()
    it("cancels the request its tool waits for (it ran on, for nobody, until it ended)", function ()
      local inner, got
      local ts = aigc.tools { { name = "look", fn = function ()
        inner = client:chat_async(hanging())
        local _, err = inner:wait()
        got = err and err.kind or "answered"
        return "x"
      end } }
      local fut = client:chat_async { messages = { { role = "user", content = "look()" } }, tools = ts }
      while inner == nil do client:step(0.01) end
      assert.equal("running", inner:status())
      assert.is_true(fut:cancel())
      assert.equal("canceled", inner:status())
      assert.same({}, drain(client))
      assert.equal("canceled", fut:status())
      assert.equal("canceled", got)
      assert.equal(0, client:active())
    end)

    it("cancels the candidates of a best_of its tool runs, and what the tool starts after", function ()
      local cands, started, after
      local ts = aigc.tools { { name = "think", fn = function ()
        started = true
        local _, err
        _, err, cands = strategy.best_of { client = client, n = 3, params = hanging(),
                                           score = function () return 1 end }
        -- (a request the tool starts once canceled ends at once)
        local _, e2 = client:chat(hanging("again"))
        after = e2 and e2.kind
        return tostring(err)
      end } }
      local fut = client:chat_async { messages = { { role = "user", content = "think()" } }, tools = ts }
      while not started do client:step(0.01) end
      client:step(0.01)
      fut:cancel()
      assert.same({}, drain(client))
      assert.equal(3, #cands)
      for i = 1, 3 do assert.equal("canceled", cands[i].err.kind) end
      assert.equal("canceled", after)
      assert.equal(0, client:active())
    end)

    it("of a conversation's say cancels what its tool waits for", function ()
      local inner
      local ts = aigc.tools { { name = "look", fn = function ()
        inner = client:chat_async(hanging())
        inner:wait()
        return "x"
      end } }
      local conv = aigc.conversation { client = client, params = { tools = ts } }
      local fut = conv:say_async "look()"
      while inner == nil do client:step(0.01) end
      fut:cancel()
      assert.equal("canceled", inner:status())
      assert.same({}, drain(client))
      assert.equal(0, #conv.messages)
    end)
  end)

  it("a tool that closes the client leaves the round's other tools unrun, answered (they ran after the close)",
     function ()
    local ran = {}
    local ts = aigc.tools {
      { name = "a", parameters = { type = "object" }, fn = function () ran.a = true; client:close(); return "a" end },
      { name = "b", parameters = { type = "object" }, fn = function () ran.b = true; return "b" end },
    }
    local res, err = client:chat { messages = { { role = "user", content = "a({}) b({})" } }, tools = ts }
    assert.is_nil(res)
    assert.equal("canceled", err.kind)
    assert.is_true(ran.a)
    assert.is_nil(ran.b)
    assert.equal(3, #err.tool_messages)
    assert.equal('{"error":"not run: the client was closed"}', err.tool_messages[3].content)
  end)

  it("a tool's error object whose __index raises goes back to the model (the whole chat raised its error)",
     function ()
    local hostile = setmetatable({}, { __index = function () error("gotcha") end })
    for _, fn in ipairs { function () error(hostile) end, function () return nil, hostile end } do
      local res, err = client:chat { messages = { { role = "user", content = "t()" } },
                                     tools = aigc.tools { { name = "t", fn = fn } } }
      assert.is_nil(err)
      local rec = res.tool_calls_made[1]
      assert.is_false(rec.ok)
      assert.equal("a table error value without a message", rec.error)
      assert.equal(hostile, rec.error_value)
    end
  end)

  it("a tool that waits for its own dialogue's future raises, to the model (the future stayed running forever)",
     function ()
    local fut
    local ts = aigc.tools { { name = "t", fn = function () return fut:wait() end } }
    fut = client:chat_async { messages = { { role = "user", content = "t()" } }, tools = ts }
    local turns = 0
    while client:step(0.01) > 0 and turns < 1000 do turns = turns + 1 end
    assert.equal("done", fut:status())
    local rec = fut:result().tool_calls_made[1]
    assert.is_false(rec.ok)
    assert.matches("wait called from inside the work of the request it waits for", rec.error, 1, true)
  end)

  describe("a client closed while a strategy runs", function ()
    it("ends fallback's entries on it as canceled and goes on to the next (it raised 'closed client')", function ()
      local backup = aigc.client { base_url = srv.base_url, max_retries = 0 }
      local res, attempts = strategy.fallback {
        params = { messages = { { role = "user", content = "Hi" } } },
        -- (its on_error closes its own client: the next entry's is closed)
        { client = client, params = { messages = { { role = "user", content = "Hi" } },
          headers = { ["x-aigc-fault"] = "status=500" }, on_error = function () client:close() end } },
        { client = client },
        { client = backup, model = "backup" },
      }
      backup:close()
      assert.is_table(res)
      assert.equal(3, res.attempt)
      assert.equal("http", attempts[1].err.kind)
      assert.equal("canceled", attempts[2].err.kind)
      assert.equal("the client was closed", attempts[2].err.message)
      assert.is_true(attempts[3].ok)
    end)

    it("ends fallback as canceled when its primary is closed mid-request from outside (a task of another client)",
       function ()
      local home = aigc.client { base_url = srv.base_url, max_retries = 0 }
      local out
      home:spawn(function ()
        out = { strategy.fallback { params = hanging(), client, client } }
      end)
      while client:active() == 0 do home:step(0.01) end
      client:close()
      while out == nil and home:step(0.01) > 0 do end
      home:close()
      assert.is_table(out)
      assert.is_nil(out[1])
      assert.equal("canceled", out[2].kind)
      assert.equal(2, #out[3])
      assert.equal("canceled", out[3][2].err.kind)
    end)

    it("closed before the strategy is called: raises at once (a judge's raised once the candidates were paid for)",
       function ()
      local jc = aigc.client { base_url = srv.base_url, max_retries = 0 }
      jc:close()
      local ok, e = pcall(strategy.best_of, { client = client, n = 2, params = "Hi", judge = { client = jc } })
      assert.is_false(ok)
      assert.matches("attempt to use a closed client", tostring(e), 1, true)
      ok, e = pcall(strategy.fallback, { params = "Hi", client, jc })
      assert.is_false(ok)
      assert.matches("attempt to use a closed client", tostring(e), 1, true)
      assert.equal(0, #srv:requests())
    end)

    it("ends best_of with a score judge whose client closed while the candidates ran: nil, err (it raised)", function ()
      local jc = aigc.client { base_url = srv.base_url, max_retries = 0 }
      local best, err, cands = strategy.best_of { client = client, n = 2, judge = { client = jc, mode = "score" },
        params = { messages = { { role = "user", content = "Hi" } }, on_done = function () jc:close() end } }
      assert.is_nil(best)
      assert.equal("canceled", err.kind)
      assert.equal(2, cands.usage_total.requests)
    end)
  end)

  describe("what the caller's functions return", function ()
    it("a vary that returns no table raises naming spec.vary (a number raised deep in aigc; a string went alone)",
       function ()
      for _, bad in ipairs { 5, "Say hi", true } do
        local ok, e = pcall(strategy.best_of, { client = client, n = 2, params = "Hi",
          vary = function () return bad end, score = function () return 1 end })
        assert.is_false(ok)
        assert.matches("bad argument #1 to 'best_of' (spec.vary: returned", tostring(e), 1, true)
        ok, e = pcall(strategy.vote, { client = client, n = 2, params = "Hi", vary = function () return bad end })
        assert.is_false(ok)
        assert.matches("bad argument #1 to 'vote' (spec.vary: returned", tostring(e), 1, true)
      end
      assert.equal(0, #srv:requests())
      -- (nil keeps the params as they were)
      local win = strategy.vote { client = client, n = 2, params = "Hi", vary = function () end }
      assert.equal(2, win.total)
    end)

    it("a route function that returns nothing is nil, err of kind route (it was nil, info: info as the error)",
       function ()
      local out, err, info = strategy.route { input = "x", classify = function () return "a" end,
                                              routes = { a = function () end } }
      assert.is_nil(out)
      assert.equal("route", err.kind)
      assert.matches("the route 'a' returned nothing", err.message, 1, true)
      assert.equal("a", info.route)
      local e2 = select(2, strategy.route { input = "x", classify = function () return nil, "no idea" end,
                                            routes = { a = function () end } })
      assert.equal("no idea", e2)
    end)

    it("an input the model's classifier cannot read raises naming route or router (it named 'classify')", function ()
      local ok, e = pcall(strategy.route, { input = {}, client = client, classify = { client = client },
                                            routes = { a = {}, b = {} } })
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'route' (spec.input: string expected, got table)", tostring(e), 1, true)
      local handle = strategy.router { client = client, classify = { client = client }, routes = { a = {}, b = {} } }
      ok, e = pcall(handle, nil)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'router' (input: string expected, got nil)", tostring(e), 1, true)
      -- (a classify function takes any input)
      local out = strategy.route { input = { id = 7 }, classify = function (x) return x.id == 7 and "a" end,
                                   routes = { a = function () return "seven" end } }
      assert.equal("seven", out)
    end)

    it("a judge's or classifier's prompt that is no text raises at the call (it raised from judge.lua once paid for)",
       function ()
      for _, mode in ipairs { "rank", "score" } do
        local ok, e = pcall(strategy.best_of, { client = client, n = 2, params = "Hi",
                                                judge = { prompt = {}, mode = mode } })
        assert.is_false(ok)
        assert.matches("bad argument #1 to 'best_of' (spec.judge.prompt: string expected, got table)",
                       tostring(e), 1, true)
      end
      local ok, e = pcall(strategy.route, { input = "x", client = client, classify = { prompt = true },
                                            routes = { a = {} } })
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'route' (spec.classify.prompt: string expected, got boolean)",
                     tostring(e), 1, true)
      assert.equal(0, #srv:requests())
    end)

    it("a classify function that returns a table names no address in the error", function ()
      local out, err = strategy.route { input = "x", classify = function () return {} end,
                                        routes = { a = function () return 1 end } }
      assert.is_nil(out)
      assert.equal("route", err.kind)
      assert.matches("the classifier returned a table, not a route name", err.message, 1, true)
      assert.is_nil(err.message:find("0x", 1, true))
    end)
  end)

  it("use_n: a server's choice that is no object fails that candidate; the others compete (it raised)", function ()
    local cjson = require "cjson"
    local body = cjson.encode { id = "c", object = "chat.completion", model = "m", created = 1,
      choices = { { index = 0, message = { role = "assistant", content = "one" }, finish_reason = "stop" }, 5,
                  { index = 2, message = { role = "assistant", content = "three!" }, finish_reason = "stop" } },
      usage = { prompt_tokens = 1, completion_tokens = 3 } }
    local s = scripted.start { "json " .. body, "json " .. body }
    local c = aigc.client { base_url = s.base_url, api_key = "k", max_retries = 0 }
    local best, cands = strategy.best_of { client = c, n = 3, use_n = true, params = { model = "m",
      messages = { { role = "user", content = "x" } } }, score = function (t) return #t end }
    local win = strategy.vote { client = c, n = 3, use_n = true, params = { model = "m",
      messages = { { role = "user", content = "x" } } } }
    c:close()
    s:finish()
    assert.equal(3, best.index)
    assert.equal("parse", cands[2].err.kind)
    assert.matches("choices[2]: an object expected, got number", cands[2].err.message, 1, true)
    assert.equal(1, cands.usage_total.requests)
    assert.equal(4, cands.usage_total.total_tokens)
    assert.equal(2, win.total)
  end)

  describe("refine's functions", function ()
    it("a critique or revise function that returns nothing raises naming it (the model got the text 'nil')",
       function ()
      local ok, e = pcall(strategy.refine, { client = client, params = "Hi", rounds = 1,
                                             critique = function () end })
      assert.is_false(ok)
      assert.matches("spec.critique: the function returned nil", tostring(e), 1, true)
      ok, e = pcall(strategy.refine, { client = client, params = "Hi", rounds = 1, revise = function () end,
                                       done = function () return false end })
      assert.is_false(ok)
      assert.matches("spec.revise: the function returned nil", tostring(e), 1, true)
      local bodies = srv:bodies("/v1/chat/completions")
      assert.equal(3, #bodies)   -- (the two drafts and the critique)
      for _, b in ipairs(bodies) do
        assert.is_nil(b.messages[#b.messages].content:find("nil", 1, true))
      end
    end)

    it("a number a critique function returns goes as text", function ()
      local final, steps = strategy.refine { client = client, params = "Hi", rounds = 1,
        critique = function () return 42 end, done = function () return true end }
      assert.is_table(final)
      assert.equal("critique", steps[2].stage)
    end)
  end)
end)
