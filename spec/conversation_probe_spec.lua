-- Conversations as a chatbot author uses them: undo at the boundaries, a
-- say that fails mid-stream then its retry, two says at once, forks that
-- must not share what they change.
local aigc = require "aigc"
local devserver = require "devserver"

local function roles (msgs)
  local out = {}
  for i, m in ipairs(msgs) do out[i] = m.role end
  return table.concat(out, " ")
end

describe("conversations, a chatbot's edges", function ()
  local srv, client
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end)

  it("undo at the boundaries: nothing to undo, a greeting, twice in a row", function ()
    local conv = aigc.conversation { client = client }
    assert.is_nil(conv:undo())
    local sys = aigc.conversation { client = client, system = "S" }
    assert.is_nil(sys:undo())
    assert.equal("system", roles(sys.messages))
    sys:add { role = "assistant", content = "Welcome!" }
    assert.is_nil(sys:undo())   -- (a greeting is no user turn: it stays)
    assert(sys:say "Echo: one")
    assert(sys:say "Echo: two")
    assert.equal("Echo: two", sys:undo()[1].content)
    assert.equal("Echo: one", sys:undo()[1].content)
    assert.is_nil(sys:undo())
    assert.equal("system assistant", roles(sys.messages))
    assert(sys:say "Echo: three")
    assert.equal("system assistant user", roles(srv:last().body_json.messages))
    assert.equal("system assistant user assistant", roles(sys.messages))
  end)

  it("a say that fails mid-stream leaves the history as it was; its retry records one turn", function ()
    local conv = aigc.conversation { client = client, system = "S" }
    assert(conv:say "Echo: first")
    local before = #conv.messages
    local got = {}
    local reply, err = conv:say("Echo: a long enough reply to stream", {
      stream = function (d) got[#got + 1] = d end, headers = { ["x-aigc-fault"] = "drop-after=2" } })
    assert.is_nil(reply)
    assert.is_true(aigc.is_error(err))
    assert.is_true(#got >= 1, "some of the reply streamed before the failure")
    assert.equal(before, #conv.messages)
    local text = assert(conv:say "Echo: retried")   -- (not busy after the failure)
    assert.equal("retried", text)
    assert.equal("system user assistant user assistant", roles(conv.messages))
  end)

  it("two says at once on one conversation: the second is refused, the first records", function ()
    local conv = aigc.conversation { client = client }
    local req = conv:say_async "Echo: one"
    assert.error_matches(function () conv:say "Echo: two" end, "busy with another say")
    assert.error_matches(function () conv:say_async "Echo: two" end, "busy with another say")
    local res = assert(req:wait())
    assert.equal("one", res.text)
    assert.equal("user assistant", roles(conv.messages))
    assert(conv:say "Echo: two")   -- (free again)
    -- a say from the first one's on_done: the conversation is free by then
    local second
    local r = conv:say_async("Echo: three", { on_done = function () second = conv:say_async "Echo: four" end })
    assert(r:wait())
    assert(assert(second):wait())
    assert.equal(8, #conv.messages)
  end)

  it("a canceled say lets go at once; its reply, late, changes nothing; a fork while a say runs", function ()
    local conv = aigc.conversation { client = client, system = "S" }
    local req = conv:say_async("Echo: slow", { headers = { ["x-aigc-fault"] = "pause=50" }, stream = function () end })
    local f = conv:fork()   -- (while the say runs: the fork is free, without the pending turn)
    assert(f:say "Echo: in the fork")
    req:cancel()
    assert(conv:say "Echo: after")
    for _ = 1, 10 do client:step(0.02) end
    assert.equal("system user assistant", roles(conv.messages))
    assert.equal("Echo: after", conv.messages[2].content)
    assert.equal("Echo: in the fork", f.messages[2].content)
    assert.equal(3, #f.messages)
  end)

  it("forks share nothing they change: history, messages, params, summary, response ids", function ()
    local conv = aigc.conversation { client = client, system = "S", params = { stop = aigc.array { "x" } } }
    assert(conv:say "Echo: one")
    conv.summary = { text = "t", from = 2, to = 3 }
    local f = conv:fork()
    f.messages[2].content = "changed"
    f.messages[#f.messages + 1] = { role = "user", content = "extra" }
    f.params.temperature = 1
    f.summary.text = "other"
    f:undo()
    assert(f:say "Echo: fork")
    assert.equal("Echo: one", conv.messages[2].content)
    assert.equal(3, #conv.messages)
    assert.is_nil(conv.params.temperature)
    assert.equal("t", conv.summary.text)
    f.params.stop[1] = "y"
    assert.equal("x", conv.params.stop[1])
    -- and the original's changes do not reach the fork
    assert(conv:say "Echo: two")
    assert.equal(5, #f.messages)
  end)
end)
