-- Conversations over the Responses API (issue 14 items 3 and 6): state kept
-- by the server (previous_response_id + store) or by the client (the input
-- items), and token estimates calibrated by what the server reports --
-- against the bundled server with its words2 tokenizer (2 tokens a word and
-- 3 a message: unlike the built-in estimate of 4 characters a token).
local aigc = require "aigc"
local devserver = require "devserver"

describe("conversations over the Responses API", function ()
  local srv, client
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { model = "aigc-dev" })
  local function bodies () return srv:bodies("/v1/responses") end

  it("keeps the state on the server for 5 turns: each say sends only its input after the last response", function ()
    local conv = aigc.conversation { client = client, api = "responses", state = "server", system = "Be brief." }
    local ids = {}
    for turn = 1, 5 do
      local reply, res = conv:say("Repeat after me: turn " .. turn)
      assert.equal("turn " .. turn, reply)
      ids[turn] = res.id
    end
    local sent = bodies()
    assert.equal(5, #sent)
    assert.same({ { role = "system", content = "Be brief." }, { role = "user", content = "Repeat after me: turn 1" } },
                sent[1].input)
    assert.is_nil(sent[1].previous_response_id)
    for turn = 2, 5 do
      assert.equal(ids[turn - 1], sent[turn].previous_response_id)
      assert.same({ { role = "user", content = "Repeat after me: turn " .. turn } }, sent[turn].input)
      assert.is_true(sent[turn].store)
    end
    assert.same(ids, conv.response_ids)
    assert.equal(11, #conv.messages)   -- the system message and 5 turns, recorded here too
    -- The server saw the whole chain: the last response's input tokens count every turn.
    local last = assert(client:get_response(ids[5]))
    local first = assert(client:get_response(ids[1]))
    assert.truthy(last.usage.input_tokens > 4 * first.usage.input_tokens)
  end)

  it("loaded with a system prompt its history lacked, the next say sends only its input", function ()
    -- (the system message put first moved the history, not the responses'
    -- ends: the next say sent the last reply again, into the server's chain)
    local conv = aigc.conversation { client = client, api = "responses", state = "server" }
    local _, r1 = assert(conv:say "Repeat after me: one")
    local loaded = assert(aigc.conversation.load(conv:save(), client, { system = "Be brief." }))
    assert.equal("Be brief.", loaded.messages[1].content)
    assert(loaded:say "Repeat after me: two")
    local sent = bodies()
    assert.equal(r1.id, sent[2].previous_response_id)
    assert.same({ { role = "user", content = "Repeat after me: two" } }, sent[2].input)
    -- undo drops the turn said after the load, and only it
    assert.equal("Repeat after me: two", loaded:undo()[1].content)
    assert.same({ r1.id }, loaded.response_ids)
  end)

  it("a system prompt given to load reaches the server in state 'server', as instructions", function ()
    local conv = aigc.conversation { client = client, api = "responses", state = "server", system = "You are Sam v1." }
    local _, r1 = assert(conv:say "Repeat after me: one")
    local loaded = assert(aigc.conversation.load(conv:save(), client, { system = "You are Sam v2." }))
    assert(loaded:say "Repeat after me: two")
    assert(loaded:say "Repeat after me: three")
    local sent = bodies()
    assert.equal(r1.id, sent[2].previous_response_id)
    for i = 2, 3 do assert.equal("You are Sam v2.", sent[i].instructions) end
    assert.same({ { role = "user", content = "Repeat after me: two" } }, sent[2].input)
    -- and it stays so through save and load; instructions given to load win
    local again = assert(aigc.conversation.load(loaded:save(), client))
    assert.equal("You are Sam v2.", again.params.instructions)
    local own = assert(aigc.conversation.load(conv:save(), client,
      { system = "You are Sam v2.", params = { instructions = "Mine." } }))
    assert.equal("Mine.", own.params.instructions)
    -- no chain yet: the system message goes with the input, no instructions needed
    local fresh = aigc.conversation { client = client, api = "responses", state = "server", system = "v1" }
    assert.is_nil(assert(aigc.conversation.load(fresh:save(), client, { system = "v2" })).params.instructions)
  end)

  it("undo in server state chains the next say from the turn before", function ()
    local conv = aigc.conversation { client = client, api = "responses", state = "server" }
    local _, r1 = assert(conv:say "Repeat after me: one")
    assert(conv:say "Repeat after me: two")
    conv:undo()
    assert(conv:say "Repeat after me: three")
    assert.equal(r1.id, bodies()[3].previous_response_id)
    local fork = conv:fork()
    assert.same(conv.response_ids, fork.response_ids)
    assert.are_not.equal(conv.response_ids, fork.response_ids)
  end)

  it("undo of a turn that was only added keeps the last response: the next say chains from it", function ()
    -- (undo popped the last response id whatever it removed: the next say
    -- chained from the turn before, and the model forgot "two", which
    -- conv.messages still held)
    local conv = aigc.conversation { client = client, api = "responses", state = "server" }
    assert(conv:say "Repeat after me: one")
    local _, r2 = assert(conv:say "Repeat after me: two")
    conv:add { role = "user", content = "A note of mine, never sent." }
    assert.equal("A note of mine, never sent.", conv:undo()[1].content)
    assert.equal(r2.id, conv.response_ids[2])
    assert(conv:say "Repeat after me: three")
    local sent = bodies()[3]
    assert.equal(r2.id, sent.previous_response_id)
    assert.same({ { role = "user", content = "Repeat after me: three" } }, sent.input)
    -- undo now removes a turn that has its response: the chain goes back one
    conv:undo()
    assert(conv:say "Repeat after me: four")
    assert.equal(r2.id, bodies()[4].previous_response_id)
  end)

  it("a message added after a response goes to the server with the next say", function ()
    local conv = aigc.conversation { client = client, api = "responses", state = "server" }
    local _, r1 = assert(conv:say "Repeat after me: one")
    conv:add { role = "assistant", content = "By the way, the shop closes at six." }
    assert(conv:say "Repeat after me: two")
    local sent = bodies()[2]
    assert.equal(r1.id, sent.previous_response_id)
    assert.same({ { role = "assistant", content = "By the way, the shop closes at six." },
                  { role = "user", content = "Repeat after me: two" } }, sent.input)
    -- saved and loaded, the chain and where each response ends survive
    local loaded = assert(aigc.conversation.load(conv:save(), client))
    loaded:add { role = "user", content = "Another note." }
    loaded:undo()
    assert.same(conv.response_ids, loaded.response_ids)
    loaded:undo()
    assert.same({ r1.id }, loaded.response_ids)
    -- a history cut by hand, not by undo: the next say still sends its input
    conv.messages[#conv.messages], conv.messages[#conv.messages - 1] = nil, nil
    assert(conv:say "Repeat after me: three")
    assert.same({ { role = "user", content = "Repeat after me: three" } }, bodies()[3].input)
  end)

  it("save and load keep the API, the state, the response ids and the calibration", function ()
    local conv = aigc.conversation { client = client, api = "responses", state = "server" }
    local _, r1 = assert(conv:say "Repeat after me: one")
    conv.calibration = 1.25
    local loaded = assert(aigc.conversation.load(conv:save(), client))
    assert.equal("responses", loaded.api)
    assert.equal("server", loaded.state)
    assert.same({ r1.id }, loaded.response_ids)
    assert.equal(1.25, loaded.calibration)
    assert(loaded:say "Repeat after me: two")
    assert.equal(r1.id, bodies()[2].previous_response_id)
    local bad = conv:save():gsub('"response_ids":%["[^"]*"%]', '"response_ids":[7]')
    local none, err = aigc.conversation.load(bad, client)
    assert.is_nil(none)
    assert.matches("response_ids", err.message)
  end)

  it("keeps the state on the client: every say sends the history as input items", function ()
    local conv = aigc.conversation { client = client, api = "responses", system = "Be brief." }
    assert(conv:say "Repeat after me: one")
    assert(conv:say "Repeat after me: two")
    local second = bodies()[2]
    assert.is_nil(second.previous_response_id)
    assert.same({ "system", "user", "assistant", "user" },
                { second.input[1].role, second.input[2].role, second.input[3].role, second.input[4].role })
    assert.equal("one", second.input[3].content)
  end)

  it("runs a toolset's loop inside a say, and records its items", function ()
    local n = 0
    local conv = aigc.conversation { client = client, api = "responses", state = "server", params = {
      tools = aigc.tools { { name = "get_weather", parameters = { type = "object", properties = {
        city = { type = "string" } } }, fn = function () n = n + 1; return "sunny" end } } } }
    local reply = assert(conv:say 'Use get_weather({"city":"Paris"})')
    assert.equal(1, n)
    assert.matches("sunny", reply)
    assert.same({ "user", "function_call", "function_call_output", "assistant" },
                { conv.messages[1].role, conv.messages[2].type, conv.messages[3].type, conv.messages[4].role })
  end)

  it("state = 'server' needs api = 'responses'", function ()
    assert.error_matches(function () aigc.conversation { client = client, state = "server" } end,
      "bad argument #1 to 'conversation' %(opts.state: 'server' needs api = 'responses'%)")
    assert.error_matches(function () aigc.conversation { client = client, api = "soap" } end,
      "opts.api: unknown value")
  end)

  describe("calibration", function ()
    -- Turns of 10 short words, echoed back: words2 counts 2 tokens a word,
    -- the built-in estimate (4 characters a token) about 1, so a 100-token
    -- budget keeps ~3 turns by the estimate, which the server counts ~130.
    local WORDS = { "cat", "dog", "sun", "sky", "red", "hat", "map", "cup", "pen", "box", "owl", "fig" }
    local function line (turn)
      local words = {}
      for i = 1, 10 do words[i] = WORDS[(i + turn) % #WORDS + 1] end
      return "Repeat after me: " .. table.concat(words, " ")
    end

    -- The prompt tokens the server counted for each of `turns` says, with a
    -- 100-token budget.
    local function prompts (api, calibrate, turns)
      local conv = aigc.conversation { client = client, api = api, max_context_tokens = 100, keep_last = 1,
        calibrate = calibrate, params = { headers = { ["x-aigc-fault"] = "tokenizer=words2" } } }
      local counted = {}
      for turn = 1, turns do
        local _, res = assert(conv:say(line(turn)))
        counted[turn] = res.usage.prompt_tokens or res.usage.input_tokens
      end
      return counted, conv
    end

    it("learns no ratio out of bounds from an odd count, and loads none", function ()
      -- the server counts a 4,000-character word as 1 token: 0.005 of the estimate
      local conv = aigc.conversation { client = client, max_context_tokens = 100, keep_last = 1 }
      assert(conv:say("Echo: " .. string.rep("x", 4000)))
      assert.is_nil(conv.calibration)
      for i = 1, 10 do
        conv:add { role = "user", content = "question " .. i .. " " .. string.rep("q", 200) }
        conv:add { role = "assistant", content = "answer " .. i }
      end
      local _, info = assert(conv:context "next")
      assert.is_true(info.tokens <= 100, "estimated " .. info.tokens)
      conv.calibration = 2
      local saved = conv:save()
      assert.equal(2, assert(aigc.conversation.load(saved, client)).calibration)
      for _, r in ipairs { "0.01", "99", "0" } do
        local text, n = saved:gsub('"calibration":2', '"calibration":' .. r)
        assert.equal(1, n)
        assert.is_nil(assert(aigc.conversation.load(text, client)).calibration, r)
      end
    end)

    for _, api in ipairs { "chat", "responses" } do
      it("keeps the prompt within 10 % of the budget after the 2nd turn (" .. api .. ")", function ()
        local counted, conv = prompts(api, nil, 6)
        for turn = 3, 6 do
          assert.truthy(counted[turn] <= 110, ("turn %d: %d prompt tokens for a budget of 100 (%s)")
                        :format(turn, counted[turn], table.concat(counted, ", ")))
        end
        assert.truthy(conv.calibration > 1.1, "the ratio learned: " .. tostring(conv.calibration))
        -- without calibration the same conversation overshoots: the check above can fail
        local raw = prompts(api, false, 6)
        local worst = math.max(raw[3], raw[4], raw[5], raw[6])
        assert.truthy(worst > 110, "uncalibrated: " .. table.concat(raw, ", "))
      end)
    end
  end)
end)
