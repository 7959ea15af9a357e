-- A say abandoned by the caller's own scheduler lets go of the conversation.
--
-- A say called from a coroutine of the caller's (not an aigc task) that
-- yields to the caller's scheduler -- here its `estimate` function, which
-- runs in the say -- and is then never resumed held the conversation busy
-- for ever once that coroutine was collected: every later say failed with
-- "the conversation is busy with another say". The busy mark knows the
-- coroutine that holds it: collected (or dead), it holds nothing.

local aigc = require "aigc"
local devserver = require "devserver"

describe("a say abandoned in the caller's coroutine", function ()
  local client
  devserver.fixture(_ENV, function (_, c) client = c end)

  -- The first say's coroutine yields from its estimate (every Lua but PUC
  -- 5.1, which cannot yield across the say's pcall: the say raises that)
  -- and is dropped. Returns the conversation and how that coroutine stood.
  local function abandoned (drop)
    local yield_now = false
    local conv = aigc.conversation { client = client, model = "aigc-dev", max_context_tokens = 10000,
      estimate = function (text)
        if yield_now then yield_now = false; coroutine.yield("tick") end
        return math.floor(#text / 4) + 1
      end }
    local co = coroutine.create(function ()
      yield_now = true
      return conv:say("hello")
    end)
    local ok, what = coroutine.resume(co)
    local status = coroutine.status(co)
    drop(co)
    co = nil   -- luacheck: ignore 311 (the only reference: collected below)
    collectgarbage(); collectgarbage()
    return conv, ok, what, status
  end

  it("is usable again once that coroutine is collected", function ()
    local conv, ok, what, status = abandoned(function () end)
    if status == "suspended" then
      assert.same({ true, "tick" }, { ok, what })
    else   -- (PUC 5.1 only: the yield raised, through the say)
      assert.is_true(_VERSION == "Lua 5.1" and not rawget(_G, "jit"), status)
      assert.matches("attempt to yield across", tostring(what), 1, true)
    end
    local reply, res = conv:say("again")
    assert.is_string(reply, tostring(res))
    assert.equal(2, #conv.messages)   -- (the abandoned say committed nothing)
  end)

  it("is still busy while that coroutine lives", function ()
    local keep
    local conv, _, _, status = abandoned(function (co) keep = co end)
    if status ~= "suspended" then return end   -- (PUC 5.1: it could not yield)
    assert.has_error(function () conv:say("again") end,
      "attempt to say: the conversation is busy with another say (wait for it, or fork)")
    assert.equal("suspended", coroutine.status(keep))
  end)
end)
