-- aigc.conversation against the bundled server: history, trimming to a
-- token budget, summaries, fork/undo/reset, save/load, tools and schemas
-- inside conversations, the non-blocking form.
local aigc = require "aigc"
local conversation = require "aigc.conversation"
local devserver = require "devserver"

warn("@on")

local json = aigc.json
local portable = require "portable"
local math_type = portable.math_type   -- (5.1, 5.2, LuaJIT: "integer" for an integral double)

-- Structural equality that also checks array marks, aigc.null and number subtypes.
local function exact (a, b, path)
  path = path or "$"
  if type(a) ~= type(b) then return false, path .. ": " .. type(a) .. " vs " .. type(b) end
  if type(a) == "number" then
    if math_type(a) ~= math_type(b) or a ~= b then return false, path .. ": " .. a .. " vs " .. b end
    return true
  end
  if type(a) ~= "table" then
    if a ~= b then return false, path .. ": " .. tostring(a) .. " vs " .. tostring(b) end
    return true
  end
  -- JSON kinds: a marked table or a non-empty sequence is an array
  local function kind (t) return (aigc.is_array(t) or #t > 0) and "array" or "object" end
  if kind(a) ~= kind(b) then return false, path .. ": " .. kind(a) .. " vs " .. kind(b) end
  for k, v in pairs(a) do
    local ok, why = exact(v, b[k], path .. "." .. tostring(k))
    if not ok then return false, why end
  end
  for k in pairs(b) do
    if a[k] == nil then return false, path .. "." .. tostring(k) .. ": missing" end
  end
  return true
end

local function roles (msgs)
  local out = {}
  for i, m in ipairs(msgs) do out[i] = m.role end
  return table.concat(out, " ")
end

local function contents (msgs)
  local out = {}
  for i, m in ipairs(msgs) do out[i] = type(m.content) == "string" and m.content or json.encode(m.content) end
  return out
end

describe("aigc.conversation", function ()
  local srv, client

  devserver.fixture(_ENV, function (s, c) srv, client = s, c end)

  describe("saying", function ()
    it("records both turns after the system message and sends the whole history", function ()
      local conv = aigc.conversation { client = client, system = "You are terse.", model = "aigc-dev" }
      assert.equal("aigc.conversation", getmetatable(conv).__name)
      local reply, res = conv:say "Hello"
      assert.equal("Hello! How can I help you today?", reply)
      assert.equal(reply, res.text)
      local reply2 = assert(conv:say "What is the capital of France?")
      assert.equal("The capital of France is Paris.", reply2)
      assert.equal("system user assistant user assistant", roles(conv.messages))
      assert.equal("You are terse.", conv.messages[1].content)
      local body = srv:last().body_json
      assert.equal("aigc-dev", body.model)
      assert.same({ "You are terse.", "Hello", "Hello! How can I help you today?",
                    "What is the capital of France?" }, contents(body.messages))
      assert.equal(reply2, conv:last_reply())
      assert.matches("^aigc.conversation %(5 messages, ~%d+ tokens%)$", tostring(conv))
    end)

    it("leaves the history unchanged when a say fails", function ()
      local conv = aigc.conversation { client = client, system = "S" }
      assert(conv:say "Hello")
      local before = json.encode(conv.messages)
      local reply, err = conv:say("Are you there?", { headers = { ["x-aigc-fault"] = "status=503" } })
      assert.is_nil(reply)
      assert.equal(503, err.status)
      assert.equal(before, json.encode(conv.messages))
      assert.equal(3, #conv.messages)
      assert(conv:say "Hello again")
      assert.equal(5, #conv.messages)
    end)

    it("passes params (conversation-wide and per call) and streams", function ()
      local conv = aigc.conversation { client = client, params = { temperature = 0, max_tokens = 50 } }
      local deltas = {}
      local reply = assert(conv:say("Tell me a joke", { max_tokens = 5,
        stream = function (d) if d then deltas[#deltas + 1] = d end end }))
      assert.equal(reply, table.concat(deltas))
      local body = srv:last().body_json
      assert.equal(0, body.temperature)
      assert.equal(5, body.max_tokens)
      assert.is_true(body.stream)
      assert.equal("user assistant", roles(conv.messages))
    end)

    it("takes content parts and whole messages as input", function ()
      local conv = aigc.conversation { client = client }
      assert(conv:say { { type = "text", text = "Hello" },
                        { type = "image_url", image_url = { url = "data:image/png;base64,AAAA" } } })
      assert.matches("1 image", conv:last_reply(), 1, true)
      assert(conv:say { role = "user", name = "ada", content = "Echo: named" })
      assert.equal("ada", srv:last().body_json.messages[3].name)
      assert.equal("named", conv:last_reply())
    end)

    it("say_async returns a request; the history changes when it succeeds", function ()
      local conv = aigc.conversation { client = client }
      local req = conv:say_async "Hello"
      assert.equal(0, #conv.messages)
      assert.has_error(function () conv:say "again" end,
        "attempt to say: the conversation is busy with another say (wait for it, or fork)")
      local res = assert(req:wait())
      assert.equal("Hello! How can I help you today?", res.text)
      assert.equal(2, #conv.messages)
      local slow = conv:say_async("Hi", { headers = { ["x-aigc-fault"] = "delay=3000" } })
      for _ = 1, 3 do client:step(0.01) end
      slow:cancel()
      assert.equal("canceled", slow:status())
      for _ = 1, 3 do client:step(0.01) end
      assert.equal(2, #conv.messages)
      assert(conv:say "Goodbye")   -- not busy any more
      assert.equal(4, #conv.messages)
    end)

    it("a canceled say_async lets go of the conversation at once; its task, resumed later, changes nothing", function ()
      local conv = aigc.conversation { client = client, system = "You are Sam." }
      local slow = conv:say_async("Hi", { stream = function () end, headers = { ["x-aigc-fault"] = "pause=20" } })
      client:step(0.05)
      slow:cancel()
      assert.equal("canceled", slow:status())
      -- at once: no step in between (the canceled say's task is still suspended)
      local second = conv:say_async("Echo: second", { headers = { ["x-aigc-fault"] = "delay=100" } })
      assert.has_error(function () conv:say "third" end,
        "attempt to say: the conversation is busy with another say (wait for it, or fork)")
      client:step(0.01)   -- the canceled say's task ends here: it must not free the second's hold
      assert.has_error(function () conv:say_async "third" end,
        "attempt to say: the conversation is busy with another say (wait for it, or fork)")
      assert.equal("second", (assert(second:wait())).text)
      assert.equal("system user assistant", roles(conv.messages))
      assert.equal("third", (conv:say "Echo: third"))
      assert.equal("system user assistant user assistant", roles(conv.messages))
    end)

    it("works inside a task while a frame loop steps", function ()
      local conv = aigc.conversation { client = client }
      local replies = {}
      client:spawn(function ()
        replies[1] = conv:say "Hello"
        replies[2] = conv:say "Tell me a joke"
      end)
      local frames = 0
      while client:step(0) > 0 do frames = frames + 1 end
      assert.is_true(frames > 1)
      assert.equal(2, #replies)
      assert.equal(4, #conv.messages)
    end)

    it("raises on misuse, naming the argument", function ()
      assert.has_error(function () aigc.conversation "x" end,
        "bad argument #1 to 'conversation' (table expected, got string)")
      assert.has_error(function () aigc.conversation {} end,
        "bad argument #1 to 'conversation' (opts.client: aigc.client expected, got nil)")
      assert.has_error(function () aigc.conversation { client = {} } end,
        "bad argument #1 to 'conversation' (opts.client: aigc.client expected, got table)")
      assert.has_error(function () aigc.conversation { client = client, keep_last = -1 } end,
        "bad argument #1 to 'conversation' (opts.keep_last: an integer >= 0 expected, got -1)")
      assert.has_error(function () aigc.conversation { client = client, colour = 1 } end,
        "bad argument #1 to 'conversation' (opts.colour: unknown option)")
      assert.has_error(function () aigc.conversation { client = client, summarize = "yes" } end,
        "bad argument #1 to 'conversation' (opts.summarize: true, false or function expected, got string)")
      local conv = aigc.conversation { client = client }
      assert.has_error(function () conv:say(42) end,
        "bad argument #1 to 'say' (string, content parts or message expected, got number)")
      assert.has_error(function () conv:say("x", "y") end, "bad argument #2 to 'say' (table expected, got string)")
      assert.has_error(function () conv:add "x" end,
        "bad argument #1 to 'add' (msg: message table expected, got string)")
    end)
  end)

  describe("token estimates", function ()
    it("counts ~4 ASCII characters, 1 CJK character, 2 other characters per token", function ()
      assert.equal(0, conversation.estimate_text(""))
      assert.equal(3, conversation.estimate_text("Hello, world"))
      assert.equal(25, conversation.estimate_text(string.rep("word ", 20)))
      assert.equal(4, conversation.estimate_text("你好世界"))
      assert.equal(6, conversation.estimate_text("こんにちは、"))
      assert.equal(5, conversation.estimate_text("안녕하세요"))
      assert.equal(3, conversation.estimate_text("привет"))
      assert.equal(5, conversation.estimate_text("Hi 你好世界"))   -- 3 ASCII -> 1, plus 4
      assert.equal(1, conversation.estimate_text("\255\254"))
    end)

    it("counts messages with overhead, names, tool calls and images", function ()
      assert.equal(5, conversation.estimate_message { role = "user", content = "Hi" })
      assert.equal(4, conversation.estimate_message { role = "assistant", content = aigc.null })
      assert.equal(4 + 1 + 1 + 1, conversation.estimate_message { role = "user", content = "Hi", name = "ada" })
      local call = { id = "c", type = "function", ["function"] = { name = "get_time", arguments = '{"tz":1}' } }
      assert.equal(4 + 3 + 2 + 2,
        conversation.estimate_message { role = "assistant", content = aigc.null, tool_calls = { call } })
      assert.equal(4 + 1 + 85, conversation.estimate_message { role = "user", content = {
        { type = "text", text = "Hi" }, { type = "image_url", image_url = { url = "x" } } } })
      assert.equal(10 + 1, conversation.estimate_message({ role = "user", content = "Hi" }, nil, 10))
      -- a custom tool's call: its input counts as a function's arguments
      local custom = { id = "c", type = "custom", custom = { name = "get_time", input = "tz: 1, 2" } }
      assert.equal(4 + 3 + 2 + 2,
        conversation.estimate_message { role = "assistant", content = aigc.null, tool_calls = { custom } })
      assert.equal(4 + 2 + 1 + 3 + 2, conversation.estimate_message { type = "custom_tool_call", call_id = "c",
                                                                     name = "get_time", input = "tz: 1, 2" })
      -- a Responses function's output: a string, or content parts
      assert.equal(4 + 3, conversation.estimate_message { type = "function_call_output", call_id = "c",
                                                         output = "Hello, world" })
      assert.equal(4 + 3 + 85, conversation.estimate_message { type = "function_call_output", call_id = "c",
        output = { { type = "input_text", text = "Hello, world" },
                   { type = "input_image", image_url = "https://example.com/a.png", detail = "low" } } })
    end)

    local b64 = require "b64"   -- (spec/support: no bit operators, 5.1)

    it("counts a PDF by its pages, not by the length of its base64", function ()
      -- 3 pages and 200 KB of page content (images, fonts): ~67,000 tokens by its JSON
      local pdf = "%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
        .. "2 0 obj << /Type /Pages /Kids [3 0 R 4 0 R 5 0 R] /Count 3 >> endobj\n"
        .. "3 0 obj << /Type /Page /Parent 2 0 R >> endobj\n4 0 obj <</Type/Page/Parent 2 0 R>> endobj\n"
        .. "5 0 obj << /Type /Page\n/Parent 2 0 R >> endobj\n"
        .. "6 0 obj << /Length 200000 >> stream\n" .. string.rep("x", 200000) .. "\nendstream endobj\n%%EOF"
      local per_page = conversation.estimate_message { role = "user", content = { { type = "file",
        file = { filename = "a.pdf", file_data = "data:application/pdf;base64," .. b64(pdf:sub(1, 9)) } } } } - 4
      assert.equal(1, per_page / 1515)   -- no page object seen: one page for 9 bytes
      local msg = { role = "user", content = { { type = "text", text = "Hi" },
        { type = "file", file = { filename = "a.pdf", file_data = "data:application/pdf;base64," .. b64(pdf) } } } }
      assert.equal(4 + 1 + 3 * 1515, conversation.estimate_message(msg))
      -- a Responses input_file alike
      assert.equal(4 + 3 * 1515, conversation.estimate_message { role = "user", content = {
        { type = "input_file", filename = "a.pdf", file_data = "data:application/pdf;base64," .. b64(pdf) } } })
      -- a text file: its text
      assert.equal(4 + 3, conversation.estimate_message { role = "user", content = {
        { type = "file", file = { file_data = "data:text/plain;base64," .. b64("Hello, world") } } } })
      -- binary data that is not a PDF: 4 bytes a token, never given to a text estimator
      local seen = {}
      local function est (text) seen[#seen + 1] = text; return 1 end
      assert.equal(4 + 2, conversation.estimate_message({ role = "user", content = {
        { type = "file", file = { file_data = "data:application/zip;base64," .. b64("PK\3\4\255\254\0\0") } } } }, est))
      assert.same({}, seen)
      -- a part estimated is not kept alive by the estimate remembered
      local weak = setmetatable({}, { __mode = "v" })
      weak[1] = { type = "file", file = { file_data = "data:application/pdf;base64," .. b64(pdf) } }
      assert.equal(4 + 3 * 1515, conversation.estimate_message { role = "user", content = { weak[1] } })
      collectgarbage(); collectgarbage()
      assert.is_nil(weak[1])
      -- a budget keeps the history a PDF of 3 pages leaves room for
      local conv = aigc.conversation { client = client, max_context_tokens = 6000 }
      conv:add { role = "user", content = "earlier question" }
      conv:add { role = "assistant", content = "earlier answer" }
      conv:add(msg)
      local sent = assert(conv:context())
      assert.equal(3, #sent)
    end)

    it("counts an image as OpenAI does: 85 at low detail, else by its tiles when its size is known", function ()
      local function be32 (n) return string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
                                                 math.floor(n / 256) % 256, n % 256) end
      local function png (w, h)
        return string.char(137) .. "PNG\r\n" .. string.char(26) .. "\n" .. be32(13) .. "IHDR" .. be32(w) .. be32(h)
          .. string.char(8, 2, 0, 0, 0) .. string.rep("\0", 40)
      end
      local function gif (w, h)
        return "GIF89a" .. string.char(w % 256, math.floor(w / 256), h % 256, math.floor(h / 256))
      end
      local function jpeg (w, h)   -- SOI, an APP0 segment, SOF0
        return string.char(255, 216, 255, 224, 0, 16) .. "JFIF" .. string.rep("\0", 10)
          .. string.char(255, 192, 0, 17, 8, math.floor(h / 256), h % 256, math.floor(w / 256), w % 256, 3)
          .. string.rep("\0", 20)
      end
      local function cost (bytes, detail, responses)
        local url = "data:image/png;base64," .. b64(bytes)
        local part = responses and { type = "input_image", image_url = url, detail = detail }
                      or { type = "image_url", image_url = { url = url, detail = detail } }
        return conversation.estimate_message({ role = "user", content = { part } }, nil, 0)
      end
      assert.equal(765, cost(png(1024, 1024)))                 -- 2 x 2 tiles
      assert.equal(85 + 170 * 6, cost(png(2048, 4096), "high"))  -- 2048 x 4096 -> 1024 x 2048 -> 768 x 1536
      assert.equal(85 + 170 * 6, cost(png(2048, 4096), "auto", true))
      assert.equal(85, cost(png(2048, 4096), "low"))
      assert.equal(255, cost(gif(100, 100)))                    -- never scaled up: one tile
      assert.equal(85 + 170 * 2, cost(jpeg(600, 300)))
      assert.equal(765, cost(jpeg(4000, 3000)))                 -- -> 2048 x 1536 -> 1024 x 768
      local function le24 (n) return string.char(n % 256, math.floor(n / 256) % 256, math.floor(n / 65536)) end
      assert.equal(85 + 170 * 6, cost("RIFF" .. be32(0) .. "WEBPVP8X" .. be32(10) .. "\0\0\0\0"
                                      .. le24(1500 - 1) .. le24(700 - 1)))  -- 3 x 2 tiles
      -- VP8L: 14 bits of width - 1, 14 of height - 1: 1000 x 500
      local w1, h1 = 999, 499
      local bits = w1 + h1 * 16384
      local vp8l = string.char(0x2F, bits % 256, math.floor(bits / 256) % 256, math.floor(bits / 65536) % 256,
                               math.floor(bits / 16777216) % 256)
      assert.equal(85 + 170 * 2, cost("RIFF" .. be32(0) .. "WEBPVP8L" .. be32(5) .. vp8l .. string.rep("\0", 10)))
      -- a URL: its size is unknown; at high detail a 1024 x 1024 image
      assert.equal(765, conversation.estimate_message({ role = "user", content = {
        { type = "image_url", image_url = { url = "https://example.com/a.png", detail = "high" } } } }, nil, 0))
      assert.equal(85, cost("not an image"))
    end)

    it("is pluggable: estimate and message_overhead", function ()
      local seen = {}
      local conv = aigc.conversation { client = client, message_overhead = 1,
        estimate = function (text) seen[#seen + 1] = text; return 100 end }
      conv:add { role = "user", content = "a" }
      assert.equal(101, conv:tokens())
      assert.same({ "a" }, seen)
    end)
  end)

  describe("trimming", function ()
    -- Turn i: "question i" / "answer i", padded to 10 tokens each (40 chars).
    local function history (conv, n)
      for i = 1, n do
        conv:add { role = "user", content = ("question %02d "):format(i) .. string.rep("q", 28) }
        conv:add { role = "assistant", content = ("answer %02d "):format(i) .. string.rep("a", 30) }
      end
    end

    it("keeps the budget, the system message, the first and last turns; drops the oldest middle", function ()
      local conv = aigc.conversation { client = client, system = "System prompt.", max_context_tokens = 100,
                                       keep_first = 1, keep_last = 2 }
      history(conv, 10)
      assert.equal(8 + 10 * 28, conv:tokens())
      assert(conv:say "Echo: now")
      local sent = srv:last().body_json.messages
      local info = conv.last_context
      assert.is_true(info.tokens <= 100, "tokens " .. info.tokens)
      assert.equal(info.tokens, conv:tokens(sent))
      assert.equal(#sent, info.messages)
      assert.equal("System prompt.", sent[1].content)
      assert.matches("^question 01", sent[2].content)
      assert.matches("^answer 01", sent[3].content)
      assert.equal("Echo: now", sent[#sent].content)
      assert.matches("^question 10", sent[#sent - 2].content)
      assert.matches("^question 09", sent[#sent - 4].content)
      -- what is kept is contiguous from the end: the newest middle turns
      local firsts = {}
      for _, m in ipairs(sent) do
        local n = m.role == "user" and m.content:match("^question (%d+)")
        if n then firsts[#firsts + 1] = tonumber(n) end
      end
      assert.same({ 1, 9, 10 }, firsts)
      assert.equal(14, info.dropped)
      assert.is_false(info.summarized)
      -- the history itself keeps everything
      assert.equal(1 + 20 + 2, #conv.messages)
    end)

    it("sends everything when it fits, and required turns even when they alone exceed the budget", function ()
      local conv = aigc.conversation { client = client, max_context_tokens = 1000 }
      history(conv, 3)
      assert(conv:say "Hello")
      assert.equal(7, #srv:last().body_json.messages)
      assert.equal(0, conv.last_context.dropped)
      local tight = aigc.conversation { client = client, max_context_tokens = 5, keep_last = 2 }
      history(tight, 3)
      assert(tight:say "Hello")
      local sent = srv:last().body_json.messages
      assert.equal(3, #sent)
      assert.matches("^question 03", sent[1].content)
    end)

    it("never separates a tool call from its results", function ()
      local conv = aigc.conversation { client = client, max_context_tokens = 60 }
      conv:add { role = "user", content = "old question " .. string.rep("x", 60) }
      conv:add { role = "assistant", content = "old answer " .. string.rep("y", 60) }
      conv:add { role = "user", content = "check the weather" }
      conv:add { role = "assistant", content = aigc.null, tool_calls = aigc.array {
        { id = "call_a", type = "function", ["function"] = { name = "get_weather", arguments = '{"city":"Oslo"}' } },
        { id = "call_b", type = "function", ["function"] = { name = "get_time", arguments = "{}" } } } }
      conv:add { role = "tool", tool_call_id = "call_a", content = "sunny " .. string.rep("s", 40) }
      conv:add { role = "tool", tool_call_id = "call_b", content = "noon" }
      conv:add { role = "assistant", content = "Sunny at noon." }
      for budget = 20, 200, 5 do
        conv.max_context_tokens = budget
        local sent = conv:context "and tomorrow?"
        local pending = {}
        for _, m in ipairs(sent) do
          if m.tool_calls then
            for _, c in ipairs(m.tool_calls) do pending[c.id] = true end
          elseif m.role == "tool" then
            assert.is_true(pending[m.tool_call_id], "a result without its call at budget " .. budget)
            pending[m.tool_call_id] = nil
          end
        end
        assert.is_nil(next(pending), "a call without its result at budget " .. budget)
      end
      conv.max_context_tokens = 70
      local sent, info = conv:context "and tomorrow?"
      assert.equal("user assistant tool tool assistant user", roles(sent))
      assert.equal(2, info.dropped)
    end)

    it("summarizes the dropped turns with a function, incrementally", function ()
      local calls = {}
      -- (calibrate = false: the ranges below are the built-in estimate's,
      -- not scaled by what the server counts)
      local conv = aigc.conversation { client = client, system = "S", max_context_tokens = 90, keep_last = 1,
        summary_tokens = 20, calibrate = false,
        summarize = function (msgs, previous)
          calls[#calls + 1] = { n = #msgs, previous = previous, first = msgs[1].content }
          return (previous and previous .. " + " or "") .. #msgs .. " messages"
        end }
      history(conv, 6)
      assert(conv:say "Echo: one")
      local sent = srv:last().body_json.messages
      assert.equal("S", sent[1].content)
      assert.equal("system", sent[2].role)
      assert.equal(conversation.SUMMARY_PREFIX .. calls[1].n .. " messages", sent[2].content)
      assert.matches("^question 01", calls[1].first)
      assert.is_nil(calls[1].previous)
      assert.is_true(conv.last_context.summarized)
      assert.is_true(conv.last_context.tokens <= 90)
      -- the next say drops more: only the new turns go to the summarizer, with the old summary
      assert(conv:say("Echo: two " .. string.rep("z", 80)))
      assert.equal(2, #calls)
      assert.equal(calls[1].n .. " messages", calls[2].previous)
      assert.is_true(calls[2].n >= 2)
      assert.equal(conversation.SUMMARY_PREFIX .. calls[1].n .. " messages + " .. calls[2].n .. " messages",
        srv:last().body_json.messages[2].content)
      -- the same range again: the cached summary, no call
      conv:context "Echo: three"
      local n = #calls
      conv:context "Echo: three"
      assert.equal(n, #calls)
    end)

    it("summarize = true asks the model, and a failed summary fails the say", function ()
      local conv = aigc.conversation { client = client, max_context_tokens = 60, summarize = true,
                                       summary_tokens = 30 }
      history(conv, 4)
      assert(conv:say "Echo: done")
      local reqs = srv:requests()
      assert.equal(2, #reqs)
      local ask = reqs[1].body_json
      assert.equal(conversation.SUMMARY_PROMPT, ask.messages[1].content)
      assert.equal(30, ask.max_tokens)
      assert.matches("user: question 01", ask.messages[2].content, 1, true)
      local sent = reqs[2].body_json.messages
      assert.equal("system", sent[1].role)
      assert.matches("^" .. conversation.SUMMARY_PREFIX:gsub("%p", "%%%0"), sent[1].content)
      assert.equal("done", conv:last_reply())
      local fresh = aigc.conversation { client = client, max_context_tokens = 60, summarize = true,
                                        model = "fault:status=500" }
      history(fresh, 4)
      local before = #fresh.messages
      local reply, err = fresh:say "Echo: x"
      assert.is_nil(reply)
      assert.equal(500, err.status)
      assert.equal(before, #fresh.messages)
    end)

    it("a summarize function's nil, message fails the say: an error object of kind callback", function ()
      for _, why in ipairs { "summarizer quota exceeded", false } do
        local conv = aigc.conversation { client = client, max_context_tokens = 40, keep_last = 1,
          summarize = function () return nil, why or nil end }
        history(conv, 4)
        local before = #conv.messages
        local reply, err = conv:say "Echo: x"
        assert.is_nil(reply)
        assert.is_true(aigc.is_error(err), tostring(err))
        assert.equal("callback", err.kind)
        assert.equal(why and "summarize failed: " .. why or "summarize returned no text", err.message)
        assert.equal(before, #conv.messages)
      end
    end)

    it("never sends dropped turns without their summary, however much each summary grows", function ()
      -- Each summary is longer than the room kept for it, and grows with
      -- what it covers: every plan drops one more turn.
      local conv = aigc.conversation { client = client, max_context_tokens = 340, keep_last = 1, summary_tokens = 5,
        summarize = function (msgs, previous)
          local t = { previous }
          for _ = 1, #msgs do t[#t + 1] = string.rep("s", 50) end
          return table.concat(t, " ")
        end }
      for i = 1, 12 do
        conv:add { role = "user", content = ("question %d "):format(i) .. string.rep("q", 30) }
        conv:add { role = "assistant", content = ("answer %d "):format(i) .. string.rep("a", 30) }
      end
      local msgs, info = assert(conv:context("new"))
      assert.is_true(info.dropped > 0)
      assert.is_true(info.summarized)
      assert.equal(conversation.SUMMARY_PREFIX, msgs[1].content:sub(1, #conversation.SUMMARY_PREFIX))
      -- the summary covers exactly the turns not sent
      assert.same({ 1, info.dropped }, { conv.summary.from, conv.summary.to })
      assert.equal(("question %d"):format(info.dropped / 2 + 1), msgs[2].content:match("^question %d+"))
    end)
  end)

  describe("summaries over budget", function ()
    it("cuts a summarizer's over-long summary to the budget: never a request over max_context_tokens", function ()
      local conv = aigc.conversation { client = client, system = "S", max_context_tokens = 200, keep_last = 1,
        calibrate = false, summarize = function () return string.rep("word ", 250) end }
      for i = 1, 10 do
        conv:add { role = "user", content = ("question %d "):format(i) .. string.rep("q", 60) }
        conv:add { role = "assistant", content = ("answer %d "):format(i) .. string.rep("a", 60) }
      end
      assert(conv:say "Echo: new")
      local sent = srv:last().body_json.messages
      assert.is_true(conv.last_context.summarized)
      assert.is_true(conv:tokens(sent) <= 200, "sent " .. conv:tokens(sent))
      assert.is_true(conv.last_context.tokens <= 200)
      assert.equal("system", sent[2].role)
      assert.matches("^" .. conversation.SUMMARY_PREFIX:gsub("%p", "%%%0") .. "word word", sent[2].content)
      assert.equal("Echo: new", sent[#sent].content)
      -- when the turns kept fill the budget, the summary is cut to summary_tokens, never left out
      conv.max_context_tokens, conv.summary_tokens = 10, 20
      local msgs, info = assert(conv:context "new")
      assert.is_true(info.summarized)
      local n = conversation.estimate_message(msgs[2])
      local empty = conversation.estimate_message { content = conversation.SUMMARY_PREFIX }
      assert.is_true(n > empty and n <= empty + 20, n)
    end)
  end)

  describe("summaries' transcripts", function ()
    it("carry a custom tool's calls and a tool's output given as content parts", function ()
      local conv = aigc.conversation { client = client, api = "responses", max_context_tokens = 60, keep_last = 1,
                                       calibrate = false, summarize = true }
      conv:add { role = "user", content = "What is in the photo? Then fix the typo." }
      conv:add { type = "function_call", call_id = "a", name = "look", arguments = "{}" }
      conv:add { type = "function_call_output", call_id = "a",
                 output = { { type = "input_text", text = "a red car" } } }
      conv:add { type = "custom_tool_call", call_id = "b", name = "apply_patch", input = "*** Begin Patch" }
      conv:add { type = "custom_tool_call_output", call_id = "b", output = "applied" }
      conv:add { role = "assistant", content = "A red car; the typo is fixed." }
      local chat = aigc.conversation { client = client, max_context_tokens = 20, keep_last = 1, calibrate = false,
                                       summarize = true }
      chat:add { role = "user", content = "Fix the typo." }
      chat:add { role = "assistant", content = aigc.null, tool_calls = {
        { id = "c", type = "custom", custom = { name = "apply_patch", input = "*** Begin Patch" } } } }
      chat:add { role = "tool", tool_call_id = "c", content = { { type = "text", text = "applied" } } }
      chat:add { role = "assistant", content = "Fixed." }
      srv:reset()
      assert(conv:context("And now?"))
      assert(chat:context("And now?"))
      local asked = srv:bodies("/v1/chat/completions")
      assert.equal(2, #asked)
      assert.equal("user: What is in the photo? Then fix the typo.\nassistant: [calls look({})]\ntool: a red car\n"
                   .. "assistant: [calls apply_patch(*** Begin Patch)]\ntool: applied\n"
                   .. "assistant: A red car; the typo is fixed.", asked[1].messages[2].content)
      assert.equal("user: Fix the typo.\nassistant:  [calls apply_patch(*** Begin Patch)]\ntool: applied\n"
                   .. "assistant: Fixed.", asked[2].messages[2].content)
    end)
  end)

  describe("branching", function ()
    it("fork is independent of the original", function ()
      local conv = aigc.conversation { client = client, system = "S", params = { temperature = 0 } }
      assert(conv:say "Hello")
      local what_if = conv:fork()
      assert(what_if:say "Tell me a joke")
      assert.equal(3, #conv.messages)
      assert.equal(5, #what_if.messages)
      what_if.messages[2].content = "changed"
      what_if.params.temperature = 1
      assert.equal("Hello", conv.messages[2].content)
      assert.equal(0, conv.params.temperature)
      assert.equal(client, what_if.client)
      assert(conv:say "Goodbye")
      assert.equal("Goodbye", conv.messages[4].content)
      assert.equal("Tell me a joke", what_if.messages[4].content)
    end)

    it("undo removes the last turn with its tool messages; reset keeps the system message", function ()
      local conv = aigc.conversation { client = client, system = "S" }
      assert.is_nil(conv:undo())
      assert(conv:say "Hello")
      conv:add { role = "user", content = "get_time" }
      conv:add { role = "assistant", content = aigc.null, tool_calls = aigc.array {
        { id = "c1", type = "function", ["function"] = { name = "get_time", arguments = "{}" } } } }
      conv:add { role = "tool", tool_call_id = "c1", content = "noon" }
      conv:add { role = "assistant", content = "It is noon." }
      local removed = conv:undo()
      assert.equal("user assistant tool assistant", roles(removed))
      assert.equal("system user assistant", roles(conv.messages))
      assert.equal("user assistant", roles(conv:undo()))
      assert.equal("system", roles(conv.messages))
      assert(conv:say "Hello")
      conv:reset()
      assert.equal("system", roles(conv.messages))
      assert.equal("S", conv.messages[1].content)
    end)
  end)

  describe("save and load", function ()
    it("round-trips exactly: tool calls, content parts, nulls, empty arrays, floats", function ()
      local conv = aigc.conversation { client = client, system = "S", model = "aigc-dev",
        max_context_tokens = 500, keep_first = 1, keep_last = 3, calibrate = false,
        params = { temperature = 0.5, stop = aigc.array {},
          stream = function () end, tools = aigc.tools { { name = "t", fn = print } } } }
      conv:add { role = "user", content = { { type = "text", text = "look" },
        { type = "image_url", image_url = { url = "data:image/png;base64,AAAA", detail = "low" } } } }
      conv:add { role = "assistant", content = aigc.null, refusal = aigc.null, tool_calls = aigc.array {
        { id = "call_1", type = "function", ["function"] = { name = "get_weather", arguments = '{"city":"Oslo"}' } } } }
      conv:add { role = "tool", tool_call_id = "call_1", content = '{"t":21.0,"tags":[]}' }
      conv:add { role = "assistant", content = "It is 21 degrees.", annotations = aigc.array {},
                 meta = { score = 1.0, count = 3, big = 9007199254740993, none = aigc.null, list = { 1, 2.5 } } }
      assert(conv:say "Thanks!")
      conv.summary = { text = "earlier", from = 2, to = 3 }
      local saved = conv:save()
      assert.is_string(saved)
      local back = assert(conversation.load(saved, client))
      assert.is_true(exact(conv.messages, back.messages))
      local ok, why = exact(json.decode(saved), json.decode(back:save()))
      assert.is_true(ok, why)
      assert.equal(aigc.null, back.messages[3].content)
      assert.is_true(aigc.is_array(back.messages[5].annotations))
      if portable.has_integers then
        assert.equal("float", math.type(back.messages[5].meta.score))
        assert.equal(9007199254740993, back.messages[5].meta.big)
      end
      assert.equal("S", back.system)
      assert.equal("aigc-dev", back.model)
      assert.equal(500, back.max_context_tokens)
      assert.equal(1, back.keep_first)
      assert.equal(3, back.keep_last)
      assert.is_false(back.calibrate)   -- (turned on again, the budget counted with a ratio the user refused)
      assert.is_nil(back.calibration)
      assert.same({ text = "earlier", from = 2, to = 3 }, back.summary)
      assert.same({ temperature = 0.5, stop = {} }, back.params)   -- functions and toolsets are not saved
      assert.is_true(aigc.is_array(back.params.stop))
      assert.equal(client, back.client)
      -- and it carries on
      assert(back:say "Echo: again")
      assert.equal(#conv.messages + 2, #back.messages)
    end)

    it("a model given to load wins over the one saved in params", function ()
      local conv = aigc.conversation { client = client, params = { model = "old-model", temperature = 0.5 } }
      conv:add { role = "user", content = "hi" }
      conv:add { role = "assistant", content = "hello" }
      local back = assert(conversation.load(conv:save(), client, { model = "new-model" }))
      assert(back:say "Echo: x")
      assert.equal("new-model", srv:last().body_json.model)
      assert.equal(0.5, srv:last().body_json.temperature)
      -- a model in the params given to load is the user's choice too
      back = assert(conversation.load(conv:save(), client, { model = "new-model", params = { model = "p-model" } }))
      assert(back:say "Echo: y")
      assert.equal("p-model", srv:last().body_json.model)
      -- without one, the saved model stays
      back = assert(conversation.load(conv:save(), client))
      assert(back:say "Echo: z")
      assert.equal("old-model", srv:last().body_json.model)
    end)

    it("a system prompt given to load is the one sent, in place of the saved one (a bot's new prompt)", function ()
      local conv = aigc.conversation { client = client, system = "You are Sam v1." }
      conv:add { role = "user", content = "hi" }
      conv:add { role = "assistant", content = "hello" }
      local back = assert(conversation.load(conv:save(), client, { system = "You are Sam v2." }))
      assert.equal("You are Sam v2.", back.system)
      local sent = back:context "next"
      assert.same({ role = "system", content = "You are Sam v2." }, sent[1])
      assert.equal(4, #sent)
      assert.equal("You are Sam v1.", conv.messages[1].content)   -- (the saved conversation is not changed)
      -- a history saved without one gets it first; a summary's indexes follow
      local bare = aigc.conversation { client = client }
      bare:add { role = "user", content = "a" }
      bare:add { role = "assistant", content = "b" }
      bare.summary = { text = "a, b", from = 1, to = 2 }
      local back2 = assert(conversation.load(bare:save(), client, { system = "New." }))
      assert.same({ role = "system", content = "New." }, back2.messages[1])
      assert.equal("a", back2.messages[2].content)
      assert.same({ text = "a, b", from = 2, to = 3 }, back2.summary)
    end)

    it("load takes what is not saved again, and reports what is not a saved conversation", function ()
      local ts = aigc.tools { { name = "get_time", fn = function () return "noon" end } }
      local conv = aigc.conversation { client = client }
      assert(conv:say "Hello")
      local back = assert(conversation.load(conv:save(), client, { params = { tools = ts }, keep_last = 4 }))
      assert.equal(4, back.keep_last)
      local reply = assert(back:say "get_time")
      assert.equal("Here is what I found: noon", reply)
      local none, err = conversation.load("{nope", client)
      assert.is_nil(none)
      assert.equal("parse", err.kind)
      local _, err2 = conversation.load('{"messages":[]}', client)
      assert.matches("not a saved conversation", err2.message)
      local _, err3 = conversation.load('{"format":"aigc.conversation","version":9,"messages":[]}', client)
      assert.matches("version 9", err3.message)
      local _, err4 = conversation.load('{"format":"aigc.conversation","version":1,"messages":[],"keep_last":-2}',
                                        client)
      assert.equal("parse", err4.kind)
      assert.has_error(function () conversation.load(1, client) end,
        "bad argument #1 to 'load' (string expected, got number)")
      assert.has_error(function () conversation.load("{}", {}) end,
        "bad argument #2 to 'load' (aigc.client expected, got table)")
    end)
  end)

  -- Issue 10: what a tool, an estimator or a saved file can do to a
  -- conversation. Each case here raised from inside the module, left the
  -- conversation busy forever, or was accepted and broke the next say().
  describe("trust", function ()
    local function yielding_tools ()
      return aigc.tools { { name = "get_time", fn = function () coroutine.yield(); return "noon" end } }
    end

    it("a tool that yields in say_async fails the say (kind 'callback'); the conversation is free", function ()
      local conv = aigc.conversation { client = client, system = "S", params = { tools = yielding_tools() } }
      local req = conv:say_async "get_time"
      for _ = 1, 200 do
        if req:status() ~= "running" then break end
        client:step(0.01)
      end
      assert.equal("failed", req:status())
      local _, err = req:result()
      assert.equal("callback", err.kind)
      assert.matches("yielded outside aigc", err.message, 1, true)
      assert.equal("system", roles(conv.messages))   -- the history is unchanged
      conv.params = {}
      assert.equal("Hello! How can I help you today?", assert(conv:say "Hello"))
    end)

    it("a tool that yields in a blocking say inside a task: the say fails, the conversation is free", function ()
      local conv = aigc.conversation { client = client, params = { tools = yielding_tools() } }
      local reply, err
      client:spawn(function () reply, err = conv:say "get_time" end)
      for _ = 1, 100 do if client:step(0.01) == 0 then break end end
      assert.is_nil(reply)
      assert.equal("callback", err.kind)
      conv.params = {}
      assert(conv:say "Hello")
      assert.equal("user assistant", roles(conv.messages))
    end)

    it("a summarize function that yields: the say fails or its task is abandoned; never busy", function ()
      local function conv_with_yielding_summary (c)
        local conv = aigc.conversation { client = c, max_context_tokens = 30, keep_last = 1,
                                         summarize = function () coroutine.yield(); return "s" end }
        for i = 1, 4 do conv:add { role = "user", content = "question " .. i .. string.rep(" word", 20) } end
        return conv
      end
      local conv = conv_with_yielding_summary(client)
      local req = conv:say_async "Hello"
      for _ = 1, 100 do
        if req:status() ~= "running" then break end
        client:step(0.01)
      end
      assert.equal("failed", req:status())
      assert.equal("callback", select(2, req:result()).kind)
      assert.equal(4, #conv.messages)
      conv.summarize = nil
      assert(conv:say "Hello")
      -- the blocking form inside a task: the task is abandoned, reported once
      local reported = {}
      local c2 = aigc.client { base_url = srv.base_url, max_retries = 0,
                               error_handler = function (e) reported[#reported + 1] = e end }
      local conv2 = conv_with_yielding_summary(c2)
      c2:spawn(function () conv2:say "Hello" end)
      for _ = 1, 100 do if c2:step(0.01) == 0 then break end end
      assert.equal(1, #reported)
      assert.matches("yielded outside aigc", reported[1].message, 1, true)
      conv2.summarize = nil
      assert(conv2:say "Hello")
      c2:close()
    end)

    it("on_done/on_error hear the say's end (history changed), once; cancel after on_done is a no-op", function ()
      local conv = aigc.conversation { client = client }
      local seen, req = {}, nil
      req = conv:say_async("Hello", { on_done = function (res)
        seen[#seen + 1] = { status = req:status(), n = #conv.messages, canceled = req:cancel(), text = res.text }
      end })
      for _ = 1, 200 do
        if req:status() ~= "running" then break end
        client:step(0.01)
      end
      for _ = 1, 3 do client:step(0.01) end
      assert.equal(1, #seen)
      assert.same({ status = "done", n = 2, canceled = false, text = "Hello! How can I help you today?" }, seen[1])
      assert.equal("done", req:status())
      -- a failing say: on_error once, the history unchanged; the blocking form too
      local errs = {}
      local r2 = conv:say_async("Hi", { headers = { ["x-aigc-fault"] = "status=500" },
                                        on_error = function (e) errs[#errs + 1] = { e.status, #conv.messages } end })
      r2:wait()
      for _ = 1, 3 do client:step(0.01) end
      assert.same({ { 500, 2 } }, errs)
      local done_n
      assert(conv:say("Again", { on_done = function () done_n = #conv.messages end }))
      assert.equal(4, done_n)
      assert.has_error(function () conv:say("x", { on_done = 5 }) end,
        "bad argument #2 to 'say' (params.on_done: function expected, got number)")
    end)

    it("an estimate that returns nil, NaN, a negative number or a string is a clear error", function ()
      for _, case in ipairs {
        { function () return nil end, "nil" },
        { function () return 0 / 0 end, "NaN" },
        { function () return -1 end, "-1" },
        { function () return "3" end, "string" },
        { function () return math.huge end, "inf" },
      } do
        local conv = aigc.conversation { client = client, max_context_tokens = 100, estimate = case[1] }
        local msg = "conversation option 'estimate' must return a number of tokens >= 0, got " .. case[2]
        assert.has_error(function () conv:say "Hi" end, msg)
        assert.has_error(function () conv:context "Hi" end, msg)
        assert.has_error(function () conv:tokens { { role = "user", content = "Hi" } } end, msg)
        assert.equal(0, #conv.messages)
        assert.is_nil(conv._busy)
      end
      assert.equal(0, #srv:requests())
    end)

    it("load refuses hostile params and summaries with nil, err; what it accepts says without raising", function ()
      local conv = aigc.conversation { client = client, system = "S", max_context_tokens = 40, summarize = true }
      assert(conv:say "Hello")
      local saved = conv:save()
      local cases = {
        { "params.stream", function (t) t.params.stream = 5 end },
        { "params.on_done", function (t) t.params.on_done = "x" end },
        { "params.timeout", function (t) t.params.timeout = "x" end },
        { "params.max_retries", function (t) t.params.max_retries = -1 end },
        { "params.headers", function (t) t.params.headers = 5 end },
        { "header", function (t) t.params.headers = { ["X-Evil"] = "a\r\nb" } end },
        { "params.query.q", function (t) t.params.query = { q = { 1 } } end },
        { "params.schema", function (t) t.params.schema = 5 end },
        { "params.schema", function (t) t.params.schema = { type = "object", minimum = "5" } end },
        { "params.schema_mode", function (t) t.params.schema = { type = "object" }; t.params.schema_mode = "xml" end },
        { "params.idempotency_key", function (t) t.params.idempotency_key = 7 end },
        { "summary", function (t) t.summary = { text = "x", from = "a", to = {} } end },
        { "summary", function (t) t.summary = { text = "x", from = 2, to = 99 } end },
      }
      for _, case in ipairs(cases) do
        local t = json.decode(saved)
        case[2](t)
        local back, err = conversation.load(json.encode(t), client)
        assert.is_nil(back, case[1])
        assert.equal("parse", err.kind)
        assert.matches(case[1], err.message, 1, true)
      end
      -- a message no request can carry is refused where it enters (spec/conversation_messages_spec.lua);
      -- what passes and the model would still refuse is sent (the server says no: nil, err), never a raise
      local t = json.decode(saved)
      t.messages[#t.messages + 1] = { role = "assistant", content = 5, tool_calls = { 1, "x", { ["function"] = 2 } } }
      local back, err = conversation.load(json.encode(t), client)
      assert.is_nil(back)
      assert.equal("parse", err.kind)
      assert.matches("messages[" .. #t.messages .. "].content: ", err.message, 1, true)
      t.messages[#t.messages] = { role = "assistant", content = "x", tool_calls = { { ["function"] = 2 } } }
      t.messages[#t.messages + 1] = { role = "user", content = { { text = 2 } }, name = {} }
      for _ = 1, 4 do t.messages[#t.messages + 1] = { role = "user", content = string.rep("word ", 30) } end
      back = assert(conversation.load(json.encode(t), client))
      local ok, res
      ok, res, err = pcall(back.say, back, "Hello again")
      assert.is_true(ok, tostring(res))
      assert.is_true(res ~= nil or err ~= nil)
    end)
    it("load checks params as the encoder would: an object of string keys whose values encode", function ()
      local conv = aigc.conversation { client = client, system = "S" }
      assert(conv:say "Hello")
      local saved = conv:save()
      local deep = "1"
      for _ = 1, 250 do deep = "[" .. deep .. "]" end
      for _, case in ipairs {
        { '[1]', "params: an object expected, got a list" },
        { '[]', "params: an object expected, got a list" },
        { '"x"', "params: an object expected, got string" },
        { '7', "params: an object expected, got 7" },
      } do
        local text = saved:gsub('"params":%b{}', function () return '"params":' .. case[1] end)
        assert.matches('"params":' .. case[1], text, 1, true)
        local back, err = conversation.load(text, client)
        assert.is_nil(back, case[1])
        assert.equal("parse", err.kind)
        assert.matches("not a valid saved conversation: " .. case[2], err.message, 1, true)
      end
      -- nested deeper than a request may be: the decoder refuses it (its
      -- limit is the encoder's, so what decodes can be sent)
      local too_deep = saved:gsub('"params":%b{}', function () return '"params":{"metadata":' .. deep .. '}' end)
      local none, why = conversation.load(too_deep, client)
      assert.is_nil(none)
      assert.equal("parse", why.kind)
      assert.matches("not a saved conversation: invalid JSON at byte %d+: nesting deeper than 200", why.message)
      -- a null model is no model (as a null top-level one); null, absent or {} params: none
      for _, params in ipairs { '{"model":null,"temperature":0.5}', "null", "{}" } do
        local text = saved:gsub('"params":%b{}', function () return '"params":' .. params end)
        local back = assert(conversation.load(text, client))
        local ok, reply, res = pcall(back.say, back, "And then?")
        assert.is_true(ok, tostring(reply))
        assert.is_string(reply, tostring(res))
        assert.is_nil(back.params.model)
      end
      assert.is_nil(srv:last().body_json.model)              -- (none sent: the client names none)
      assert.equal(0.5, srv:requests()[#srv:requests() - 2].body_json.temperature)
    end)

    it("misuse in params names the conversation's call, not the chat_async inside it", function ()
      local deep = {}
      for _ = 1, 250 do deep = { deep } end
      for _, case in ipairs {
        { { 1 }, "params: keys must be strings, found a number key" },
        { { [true] = 1 }, "params: keys must be strings, found a boolean key" },
        { { model = aigc.null }, "params.model: string expected, got aigc.null" },
        { { metadata = { f = print } }, "params.metadata.f: cannot encode a function" },
        { { metadata = deep }, "params.metadata[1][1]" },
      } do
        local ok, e = pcall(aigc.conversation, { client = client, params = case[1] })
        assert.is_false(ok)
        assert.matches("^[^\n]*conversation_spec.lua:%d+: bad argument #1 to 'conversation' %(opts%.", e)
        assert.matches(case[2], e, 1, true)
        local conv = aigc.conversation { client = client }
        ok, e = pcall(conv.say, conv, "Hi", case[1])
        assert.is_false(ok)
        assert.matches("^[^\n]*conversation_spec.lua:%d+: bad argument #2 to 'say' %(", e)
        assert.matches(case[2], e, 1, true)
        ok, e = pcall(conv.say_async, conv, "Hi", case[1])
        assert.is_false(ok)
        assert.matches("bad argument #2 to 'say_async' (" .. case[2], e, 1, true)
      end
      assert.equal(0, #srv:requests())
    end)

    it("misuse in the input or the history names say/say_async/save, not chat_async or encode", function ()
      local here = "^[^\n]*conversation_spec.lua:%d+: "
      local conv = aigc.conversation { client = client }
      for _, case in ipairs {
        { "bad \255", "(input: invalid UTF-8 at byte 5 of a string)" },
        { { role = "user", content = "x\255" }, "(input.content: invalid UTF-8 at byte 2 of a string)" },
        { { { type = "text", text = "x\255" } }, "(input[1].text: invalid UTF-8 at byte 2 of a string)" },
        { { role = "user", content = "x", name = print }, "(input.name: " },
      } do
        for _, fname in ipairs { "say", "say_async" } do
          local ok, e = pcall(conv[fname], conv, case[1])
          assert.is_false(ok)
          assert.matches(here .. "bad argument #1 to '" .. fname .. "' %(", e)
          assert.matches(case[2], e, 1, true)
        end
      end
      assert.equal(0, #conv.messages)
      -- a history the request would refuse (a system prompt, a message added as it is)
      local bad = aigc.conversation { client = client, system = "s\255" }
      for _, fname in ipairs { "say", "say_async", "save" } do
        local ok, e = pcall(bad[fname], bad, fname ~= "save" and "Hi" or nil)
        assert.is_false(ok)
        -- (save may meet the system prompt first as self.system: the encoder's order is pairs')
        local at = fname == "save" and e:find("(self.system: ", 1, true) and "self%.system"
                   or "self%.messages%[1%]%.content"
        assert.matches(here .. "calling '" .. fname .. "' on bad self %(" .. at .. ": "
                       .. "invalid UTF%-8 at byte 2 of a string%)$", e)
      end
      assert.is_false(bad._busy ~= nil)   -- (nothing started)
      assert.equal(0, #srv:requests())
    end)

    it("add refuses a message JSON cannot carry, and the conversation goes on", function ()
      -- (it was taken, and every later say and save failed: 'calling 'save' on bad
      -- self (self.messages[1].extra.f: cannot encode a function)')
      local here = "^[^\n]*conversation_spec.lua:%d+: "
      local conv = aigc.conversation { client = client }
      conv:add { role = "user", content = "earlier" }
      local cycle = { role = "assistant", content = "x" }
      cycle.extra = cycle
      for _, case in ipairs {
        { { role = "user", content = "Hi", extra = { f = print } }, "(msg.extra.f: cannot encode a function)" },
        { { role = "assistant", content = "ok", meta = { "a\255" } },
          "(msg.meta[1]: invalid UTF-8 at byte 2 of a string)" },
        { cycle, "(msg.extra: cannot encode a table that contains itself (a cycle))" },
        { { role = "user", content = "ok", score = 0 / 0 }, "(msg.score: cannot encode NaN" },
      } do
        local ok, e = pcall(conv.add, conv, case[1])
        assert.is_false(ok)
        assert.matches(here .. "bad argument #1 to 'add' %(", e)
        assert.matches(case[2], e, 1, true)
      end
      assert.equal(1, #conv.messages)
      local reply = assert(conv:say "Hello")
      assert.equal("string", type(reply))
      assert.equal(3, #conv.messages)
      assert.equal(1, #srv:requests())
      assert.equal("earlier", srv:requests()[1].body_json.messages[1].content)
      assert.is_string(conv:save())
    end)
  end)

  describe("with tools and schemas", function ()
    it("records the tool loop's messages and sends them with the next turn", function ()
      local ts = aigc.tools { { name = "track_order",
        parameters = { type = "object", properties = { order_id = { type = "string" } }, required = { "order_id" } },
        fn = function (args) return "Order " .. args.order_id .. " left the warehouse." end } }
      local conv = aigc.conversation { client = client, system = "You help customers.", params = { tools = ts } }
      local reply, res = conv:say "Please track order B-77"
      assert.equal("Here is what I found: Order B-77 left the warehouse.", reply)
      assert.equal(1, #res.tool_calls_made)
      assert.equal("system user assistant tool assistant", roles(conv.messages))
      assert.equal("track_order", conv.messages[3].tool_calls[1]["function"].name)
      assert.equal(conv.messages[3].tool_calls[1].id, conv.messages[4].tool_call_id)
      assert(conv:say "Thanks")
      local sent = srv:last().body_json.messages
      assert.equal("system user assistant tool assistant user", roles(sent))
    end)

    it("gives structured replies with a schema", function ()
      local conv = aigc.conversation { client = client, params = { schema = { type = "object",
        properties = { say = { type = "string" }, mood = { type = "string", enum = { "calm", "angry" } } },
        required = { "say", "mood" }, additionalProperties = false } } }
      local reply, res = conv:say "Hello! Why so angry?"
      assert.same({ say = "Hello! How can I help you today?", mood = "angry" }, res.parsed)
      assert.same(res.parsed, json.decode(reply))
      assert.same(res.parsed, json.decode(conv:last_reply()))
    end)
  end)
end)
