-- Voice for chatbots and NPCs, probed over real HTTP on loopback: speech,
-- transcription and the bundled server's answers where they must match the
-- API's (limits counted as the API counts them, models that ignore
-- `stream`), and sentence streaming's edge cases.
local devserver = require "devserver"
local sentences = require "aigc.sentences"

local SECRET = "sk-test-SECRET-voice-31"

-- A WAV-looking upload whose transcription the bundled server gives back as `text`.
local function voice_note (text)
  return { data = "RIFF\0\0\0\0WAVE" .. "AIGC-TEXT:" .. text, filename = "line.wav" }
end

describe("voice probe", function ()
  local client

  devserver.fixture(_ENV, function (_, c) client = c end, { api_key = SECRET, model = "aigc-dev" },
                    nil, { api_key = SECRET })

  describe("speech (bundled server)", function ()
    it("the 4096 limit of input and instructions counts characters, not bytes (2,000 Chinese ones pass)", function ()
      local zh = string.rep("\228\189\160", 2000)   -- 2,000 x U+4F60: 6,000 bytes of UTF-8
      local res, err = client:speech { input = zh, model = "gpt-4o-mini-tts", response_format = "pcm",
                                       instructions = string.rep("\195\169", 3000) }   -- 3,000 x e-acute
      assert.is_nil(err)
      assert.equal("audio/pcm", res.content_type)
      assert.is_true(#res.body > 0)
      -- one character over: refused, naming the field
      local _, e1 = client:speech { input = string.rep("a", 4097), response_format = "pcm" }
      assert.equal(400, e1 and e1.status)
      assert.equal("input", e1.param)
      assert.equal("string_above_max_length", e1.code)
      local _, e2 = client:speech { input = "Halt.", response_format = "pcm", model = "gpt-4o-mini-tts",
                                    instructions = string.rep("\228\189\160", 4097) }
      assert.equal(400, e2 and e2.status)
      assert.equal("instructions", e2.param)
    end)
  end)

  describe("transcription (bundled server)", function ()
    it("stream asked of whisper-1 (which ignores it): one JSON answer, the function gets its text once", function ()
      local seen = {}
      local res, err = client:transcribe { file = voice_note("Halt! Who goes there?"), model = "whisper-1",
                                           stream = function (ev) seen[#seen + 1] = ev end }
      assert.is_nil(err)
      assert.equal("Halt! Who goes there?", res.text)
      assert.is_nil(res.type)                                   -- not a transcript.text.done event
      assert.same({ { type = "transcript.text.delta", delta = "Halt! Who goes there?" } }, seen)
      -- a model that streams still does
      local n = 0
      local done = assert(client:transcribe { file = voice_note("Halt! Who goes there?"), model = "gpt-4o-transcribe",
                                              stream = function () n = n + 1 end })
      assert.equal("transcript.text.done", done.type)
      assert.is_true(n > 1)
    end)

    it("an upload over the API's 25 MiB is refused with its 413; one just under it is not", function ()
      local limit = 25 * 1024 * 1024
      local pad = string.rep("\0", limit)
      local _, err = client:transcribe { file = { data = pad, filename = "long.wav" }, model = "whisper-1" }
      assert.equal(413, err and err.status)
      assert.matches("Maximum content size limit (26214400) exceeded", err.message, 1, true)
      local small = "RIFF\0\0\0\0WAVE" .. string.rep("\0", limit - 4096)
      local res = assert(client:transcribe { file = { data = small, filename = "long.wav" }, model = "whisper-1" })
      assert.equal("string", type(res.text))
    end)
  end)

  describe("sentences", function ()
    -- The pieces of `text` fed in `step`-byte deltas.
    local function feed (mod, text, step)
      local sp, out = mod.new(), {}
      for i = 1, #text, step do
        for _, p in ipairs(sp:push(text:sub(i, i + step - 1))) do out[#out + 1] = p end
      end
      for _, p in ipairs(sp:finish()) do out[#out + 1] = p end
      return out
    end

    -- The work of splitting `text` fed in 2-byte deltas, counted, not timed:
    -- the calls to the string functions a fresh copy of the module makes,
    -- plus the bytes of the text each search (find, match, gsub) is given.
    local function work (text)
      local strings = string   -- (patched for the count, then restored: rawset)
      local names, saved, count = { "byte", "sub", "find", "match", "gsub" }, {}, 0
      for _, name in ipairs(names) do
        local f = strings[name]
        saved[name] = f
        rawset(strings, name, function (s, ...)
          count = count + 1 + ((name == "gsub" or name == "find" or name == "match") and #s or 0)
          return f(s, ...)
        end)
      end
      local loaded = package.loaded["aigc.sentences"]
      package.loaded["aigc.sentences"] = nil
      local ok, err = pcall(function ()
        local fresh = require "aigc.sentences"    -- (its locals: the counting functions)
        count = 0
        feed(fresh, text, 2)
      end)
      for _, name in ipairs(names) do rawset(strings, name, saved[name]) end
      package.loaded["aigc.sentences"] = loaded
      assert(ok, err)
      return count
    end

    -- Whether the work grows linearly: twice the text, about twice the work (a quadratic cost: four times).
    local function linear (make)
      local w1, w2 = work(make(2000)), work(make(4000))
      assert.is_true(w2 < 3 * w1, string.format("work %d for n = 2000, %d for n = 4000", w1, w2))
    end

    it("a stop followed by a long run (dots, closers, white space): linear work, split as fed whole", function ()
      local makers = {
        function (n) return "Hmm" .. string.rep(".", n) .. " Then he left." end,              -- a model gone astray
        function (n) return "Done!" .. string.rep(" ", n) .. "next thing." end,
        function (n) return "Yes." .. string.rep(")", n) .. " And so." end,
        function (n) return "Hi" .. string.rep("\226\128\166", n) .. " there." end,         -- U+2026 ...
        function (n) return "Oui." .. string.rep("\194\160", n) .. "Puis." end,             -- no-break spaces
      }
      for _, make in ipairs(makers) do
        linear(make)
        local text = make(300)
        assert.same(sentences.split(text), feed(sentences, text, 1))
      end
    end)

    it("a piece with a long run of white space at its ends is trimmed in linear work", function ()
      linear(function (n) return "\227\128\128" .. string.rep("\227\128\128 ", n) .. "Konnichiwa"
                                  .. string.rep("\227\128\128", n) end)       -- ideographic spaces
      linear(function (n) return "Bonjour" .. string.rep("\194\160", n) end)
      assert.same({ "Konnichiwa" }, sentences.split("\227\128\128 \194\160Konnichiwa \227\128\128\t"))
      assert.same({ "a \194\160 b" }, sentences.split("\194\160a \194\160 b\226\128\175"))
    end)

    it("a long run of backticks or tildes at a fence: linear work, split as fed whole", function ()
      local R = string.rep
      local makers = {
        function (n) return "Hi.\n" .. R("`", n) .. "\nx = 1\n" .. R("`", n) .. "\nDone. Ok" end,
        function (n) return "Hi.\n  " .. R("~", n) .. "\ncode\n" .. R("~", n) .. "  \nDone. Ok" end,
        function (n) return "```\ncode\n" .. R("`", n) .. "   \nafter. B" end,        -- it closes the block
      }
      for _, make in ipairs(makers) do
        linear(make)
        local text = make(1500)
        assert.same(sentences.split(text), feed(sentences, text, 1))
        assert.same(sentences.split(text), feed(sentences, text, 7))
      end
      assert.same({ "Hi.", "~~~~\ncode\n~~~~", "Done.", "Ok" },
                  sentences.split("Hi.\n~~~~\ncode\n~~~~\nDone. Ok"))
    end)

    it("past 64 characters of white space after a stop the sentence ends, whatever the next word", function ()
      local gap = string.rep(" ", 65)
      assert.same({ "Done!", "next thing." }, sentences.split("Done!" .. gap .. "next thing."))
      local near = "Done!" .. string.rep(" ", 64) .. "next thing."
      assert.same({ near }, sentences.split(near))
    end)
  end)

  describe("sentences over a chat stream", function ()
    it("max_length: a reply with no stop is spoken in bounded pieces as it streams, not all at its end", function ()
      local words = {}
      for i = 1, 60 do words[i] = (i % 2 == 0) and "and the knight rode on" or "through the night" end
      local line = table.concat(words, " ")                     -- 1,200 bytes, no stop
      local pieces, ends, at_end = {}, {}, nil
      local res = assert(client:chat(sentences.stream({ messages = { { role = "user", content = "Echo: " .. line } },
        on_stream_end = function () at_end = #pieces end },
        function (s, e) pieces[#pieces + 1], ends[#ends + 1] = s, e end, { max_length = 100 })))
      assert.equal(line, res.text)
      assert.equal(line, table.concat(pieces, " "))              -- cut at white space only: nothing lost
      assert.is_true(#pieces >= 10)
      assert.equal(#pieces - 1, at_end)                          -- all but the rest came while it streamed
      for k, s in ipairs(pieces) do
        assert.is_true(#s <= 100 + #"through", s)
        if k < #pieces then assert.is_true(#s >= 99, s); assert.is_false(ends[k]) end   -- (99: space trimmed)
      end
      -- a sentence that ends before the bound is given whole, as without it
      assert.same({ "Halt!", "Who goes there?" }, sentences.split("Halt! Who goes there?", { max_length = 100 }))
      -- text with no white space at all: cut at twice the bound, on a character's edge
      local zh = sentences.split(string.rep("\228\189\160", 100), { max_length = 30 })
      assert.same({ string.rep("\228\189\160", 20), string.rep("\228\189\160", 20) }, { zh[1], zh[2] })
      assert.has_error(function () sentences.new { max_length = 0 } end)
    end)
  end)

  describe("the NPC pipeline: deltas -> sentences -> speech per sentence, non-blocking", function ()
    local function busy (req) return req:status() == "queued" or req:status() == "running" end

    it("each sentence's audio goes to its own line, in the sentences' order, whatever order they finish in", function ()
      local lines, audio, reqs = {}, {}, {}
      local chat = client:chat_async(sentences.stream({ messages = { { role = "user",
        content = "Echo: Halt! Who goes there? Friend or foe. State your business." } } },
        function (s)
          local k = #lines + 1
          lines[k], audio[k] = s, {}
          reqs[k] = client:speech_async { input = s, response_format = "pcm", voice = "onyx",
                                          to = function (chunk) audio[k][#audio[k] + 1] = chunk end }
        end))
      for _ = 1, 10000 do
        local any = busy(chat)
        for _, r in ipairs(reqs) do any = any or busy(r) end
        if not any then break end
        client:step(0.05)
      end
      assert(chat:result())
      assert.same({ "Halt!", "Who goes there?", "Friend or foe.", "State your business." }, lines)
      for k, s in ipairs(lines) do
        assert(reqs[k]:result())
        local alone = assert(client:speech { input = s, response_format = "pcm", voice = "onyx" })
        assert.equal(alone.body, table.concat(audio[k]))         -- its own audio, whole, in order
      end
    end)

    it("walking away from the NPC cancels its line and its voice: nothing more is said or played", function ()
      local lines, played, reqs, errs = {}, 0, {}, {}
      local chat
      chat = client:chat_async(sentences.stream({ messages = { { role = "user",
        content = "Echo: Halt! Who goes there? Friend or foe. State your business." } },
        on_error = function (e) errs[#errs + 1] = e.kind end },
        function (s)
          lines[#lines + 1] = s
          reqs[#reqs + 1] = client:speech_async { input = s, response_format = "pcm",
                                                  to = function (chunk) played = played + #chunk end }
          chat:cancel()                                           -- (the player walks away)
          for _, r in ipairs(reqs) do r:cancel() end
        end))
      for _ = 1, 10000 do
        if not busy(chat) then break end
        client:step(0.05)
      end
      for _ = 1, 20 do client:step(0.01) end
      assert.same({ "Halt!" }, lines)
      assert.same({ "canceled" }, errs)
      assert.equal("canceled", reqs[1]:status())
      assert.equal(0, played)
      local _, err = reqs[1]:result()
      assert.equal("canceled", err and err.kind)
    end)
  end)
end)
