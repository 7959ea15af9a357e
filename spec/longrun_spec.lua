-- Long runs: what a bot that runs for days, or a game that runs for hours,
-- does many times over must not cost more (memory, work) with the number of
-- times it was done -- only with what is alive. The checks count work or
-- objects; none is timed.
local aigc = require "aigc"
local devserver = require "devserver"

describe("long runs", function ()
  local srv, client

  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { model = "aigc-dev" })

  describe("a conversation that lives long", function ()
    -- An estimate that counts its calls (4 characters a token).
    local calls
    local function estimate (text)
      calls = calls + 1
      return math.ceil(#text / 4)
    end

    it("estimates each message once, not the whole history again at every say", function ()
      calls = 0
      local conv = aigc.conversation { client = client, system = "You are Sam.", max_context_tokens = 80,
                                       keep_last = 2, estimate = estimate }
      for i = 1, 60 do assert(conv:say("Hello there, how is the weather today? " .. i)) end
      assert.equal(121, #conv.messages)
      calls = 0
      assert(conv:say "One more time.")
      -- The new user message, and the reply's when the next say plans:
      -- a handful, whatever the length of the history (it was 130 here,
      -- every message of the history and of the context sent).
      assert.is_true(calls <= 4, "estimate called " .. calls .. " times for one say")
      assert.is_true(conv.last_context.dropped > 100)
    end)

    it("estimates a message again when its text, the estimate or the overhead change", function ()
      calls = 0
      local conv = aigc.conversation { client = client, estimate = estimate, message_overhead = 0 }
      conv:add { role = "user", content = "abcd" }
      assert.equal(1, conv:tokens())
      assert.equal(1, conv:tokens())
      assert.equal(1, calls)
      conv.messages[1].content = "abcdefgh"
      assert.equal(2, conv:tokens())
      conv.message_overhead = 10
      assert.equal(12, conv:tokens())
      conv.estimate = function () return 7 end
      assert.equal(17, conv:tokens())
      -- a message with tool calls is not remembered: its tables may change in place
      local call = { id = "c1", type = "function", ["function"] = { name = "f", arguments = "{}" } }
      conv.messages[1] = { role = "assistant", content = "abcd", tool_calls = { call } }
      local before = conv:tokens()
      call["function"].arguments = '{"x": 1}'
      assert.equal(before, conv:tokens())   -- (the constant estimate: 7 for each text)
      conv.estimate = estimate
      local n1 = conv:tokens()
      call["function"].arguments = string.rep("x", 40)
      assert.equal(n1 - 2 + 10, conv:tokens())   -- ({"x": 1}: 2 tokens; 40 characters: 10)
    end)
  end)
end)
