-- Long runs: what a bot that runs for days, or a game that runs for hours,
-- does many times over must not cost more (memory, work) with the number of
-- times it was done -- only with what is alive. The checks count work or
-- objects; none is timed.
local aigc = require "aigc"
local devserver = require "devserver"
local cli = require "cli"

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
  describe("a disk cache with a ttl", function ()
    local dir
    before_each(function () dir = cli.home() end)
    after_each(function () cli.rmdir(dir) end)

    local function files ()
      local p = io.popen("ls " .. dir .. "/c")
      local list = {}
      for name in p:lines() do list[#list + 1] = name end
      p:close()
      table.sort(list)
      return list
    end

    it("removes the files past the ttl that no request reads again", function ()
      local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", cache = { dir = dir .. "/c", ttl = 3600 } }
      assert(c:chat { messages = { { role = "user", content = "Echo: old" } }, temperature = 0 })
      c:close()
      local old = files()
      assert.equal(1, #old)
      -- that reply was written two hours ago (its stored time too)
      local path = dir .. "/c/" .. old[1]
      local f = assert(io.open(path, "rb"))
      local x = aigc.json.decode(f:read("*a"))
      f:close()
      x.time = x.time - 7200
      cli.write(path, aigc.json.encode(x))
      assert(os.execute("touch -d '2 hours ago' '" .. path .. "'"))
      -- a later run asks other questions only: the old reply goes all the same
      c = aigc.client { base_url = srv.base_url, model = "aigc-dev", cache = { dir = dir .. "/c", ttl = 3600 } }
      assert(c:chat { messages = { { role = "user", content = "Echo: new" } }, temperature = 0 })
      assert(c:chat { messages = { { role = "user", content = "Echo: newer" } }, temperature = 0 })
      c:close()
      local now = files()
      assert.equal(2, #now)
      for _, name in ipairs(now) do assert.not_equal(old[1], name) end
    end)
  end)
end)
