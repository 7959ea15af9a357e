-- A conversation's summary of its dropped turns was kept by history indexes
-- alone ({ from =, to = }). A bot that runs for days prunes `conv.messages`
-- (README: "prunes it or calls reset()"): the indexes then named other turns,
-- and the summary was extended from past them (the turns moved into its
-- range were never summarized: lost from the context, silently) or taken as
-- theirs (the turns pruned stayed in what was sent). The summary now keeps
-- which messages it covers, and one whose messages moved is made again.
local aigc = require "aigc"
local devserver = require "devserver"

describe("a summarized conversation whose history is pruned by hand", function ()
  local client
  devserver.fixture(_ENV, function (_, c) client = c end, { api_key = "sk-fake-pruned" })

  -- Each summary is "S<n>"; `calls` records what each summarizer call was given. A
  -- token a byte, the summary's own text only: the budget holds t1..t4 summarized.
  local function estimate (t) return #(t:gsub("^" .. aigc.conversation.SUMMARY_PREFIX, "")) end

  local function conversation (calls)
    return aigc.conversation {
      client = client, system = "S", max_context_tokens = 35, keep_last = 1, summary_tokens = 10,
      estimate = estimate, message_overhead = 0, calibrate = false,
      summarize = function (part, previous)
        local texts = {}
        for _, m in ipairs(part) do texts[#texts + 1] = m.content end
        calls[#calls + 1] = { previous = previous, texts = table.concat(texts, ",") }
        return "S" .. #calls
      end,
    }
  end

  -- Six turns said, then the context of `input` planned (its summary made): the
  -- conversation and its summarizer calls.
  local function six_turns (input)
    local calls = {}
    local conv = conversation(calls)
    for i = 1, 6 do assert(conv:say("Echo: t" .. i)) end
    assert(conv:context(input))
    return conv, calls
  end

  it("summarizes the turns moved into the summary's range, and not the ones pruned", function ()
    local conv, calls = six_turns "Echo: t7"
    assert.same({ 2, 11 }, { conv.summary.from, conv.summary.to })   -- (turns t1..t5)
    table.remove(conv.messages, 2)                                    -- (t1 pruned)
    table.remove(conv.messages, 2)
    conv:add { role = "user", content = "Echo: a6" }
    conv:add { role = "assistant", content = "a6" }
    local before = #calls
    assert.equal("t7", conv:say "Echo: t7")
    -- (the range 2..11, now t2..t6, took S4 of t1..t5 as it was: t6 in no summary, t1 sent)
    assert.equal(before + 1, #calls)
    assert.is_nil(calls[before + 1].previous)
    assert.equal("Echo: t2,t2,Echo: t3,t3,Echo: t4,t4,Echo: t5,t5,Echo: t6,t6", calls[before + 1].texts)
  end)

  it("makes the summary again when the history is replaced, its indexes the same", function ()
    local conv, calls = six_turns "Echo: next"
    local n = #calls
    -- (the same history, t1's turn rewritten: a bot redacting it)
    local msgs = {}
    for i, m in ipairs(conv.messages) do msgs[i] = { role = m.role, content = m.content } end
    msgs[2].content, msgs[3].content = "Echo: xx", "xx"
    conv.messages = msgs
    local out = assert(conv:context "Echo: next")
    -- (the summary of t1..t5 went as it was: "S4", t1 in it)
    assert.equal(n + 1, #calls)
    assert.is_nil(calls[n + 1].previous)
    assert.equal("Echo: xx,xx,Echo: t2,t2,Echo: t3,t3,Echo: t4,t4,Echo: t5,t5", calls[n + 1].texts)
    assert.equal(aigc.conversation.SUMMARY_PREFIX .. "S" .. #calls, out[2].content)
  end)

  it("gives a fork the summary made again, not the original's", function ()
    local conv, calls = six_turns "Echo: t7"
    table.remove(conv.messages, 2)
    table.remove(conv.messages, 2)
    conv:add { role = "user", content = "Echo: a6" }
    conv:add { role = "assistant", content = "a6" }
    local n = #calls
    local out = assert(conv:fork():context "Echo: t7")
    -- (the fork sent S4, of t1..t5, for t2..t6)
    assert.equal(n + 1, #calls)
    assert.equal("Echo: t2,t2,Echo: t3,t3,Echo: t4,t4,Echo: t5,t5,Echo: t6,t6", calls[n + 1].texts)
    assert.equal(aigc.conversation.SUMMARY_PREFIX .. "S" .. #calls, out[2].content)
  end)

  it("saves in a form load takes, the summary of pruned turns left out", function ()
    local conv, calls = six_turns "Echo: t7"
    for _ = 1, 8 do table.remove(conv.messages, 2) end   -- (t1..t4: the summary's turns)
    -- (load refused the save: "the summary must be { text =, from =, to = } within the messages")
    local copy = assert(aigc.conversation.load(conv:save(), client, {
      estimate = estimate, summarize = function () calls[#calls + 1] = { loaded = true }; return "L" end }))
    assert.is_nil(copy.summary)
    assert.same({ "S", "Echo: t5", "t5", "Echo: t6", "t6" }, (function ()
      local texts = {}
      for i, m in ipairs(copy.messages) do texts[i] = m.content end
      return texts
    end)())
    assert.equal("t7", copy:say "Echo: t7")
  end)

  it("still reuses the summary when nothing moved, and after load and fork", function ()
    local conv, calls = six_turns "Echo: t7"
    local n = #calls
    assert(conv:context "Echo: t7")        -- (the same range: the same summary)
    assert.equal(n, #calls)
    local copy = assert(aigc.conversation.load(conv:save(), client, {
      estimate = estimate,
      summarize = function () calls[#calls + 1] = { loaded = true }; return "L" end }))
    assert.equal(aigc.conversation.SUMMARY_PREFIX .. "S" .. n, assert(copy:context "Echo: t7")[2].content)
    assert.equal(aigc.conversation.SUMMARY_PREFIX .. "S" .. n, assert(conv:fork():context "Echo: t7")[2].content)
    assert.equal(n, #calls)
  end)
end)

-- The same of a chain the server keeps (`state = "server"`): each response's
-- end was its history index alone. Pruned by hand, the messages `add`ed after
-- were taken as sent already (each say sends only what follows the last
-- response: they were lost), and `undo` kept the wrong responses (its next
-- say went on from the first one: the turns between were lost at the server).
describe("a server-kept conversation whose history is pruned by hand", function ()
  local srv, client
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { api_key = "sk-fake-pruned" })

  -- (`probe` weakly holds t1's reply, pruned: what records where a response ended
  -- must not keep it, or pruning would free nothing)
  local function chain (probe)
    local conv = aigc.conversation { client = client, api = "responses", state = "server", system = "S" }
    for i = 1, 4 do assert(conv:say("Echo: t" .. i)) end
    if probe then probe[1] = conv.messages[3] end
    for _ = 1, 4 do table.remove(conv.messages, 2) end   -- (t1 and t2)
    return conv
  end

  it("sends the messages added since the last response, a fork's too", function ()
    local probe = setmetatable({}, { __mode = "v" })
    for _, forked in ipairs { false, true } do
      local conv = chain(probe)
      collectgarbage()
      collectgarbage()
      assert.is_nil(probe[1])
      if forked then conv = conv:fork() end
      local last_id = conv.response_ids[4]
      conv:add { role = "user", content = "Note: my name is Bob" }
      conv:add { role = "assistant", content = "Noted, Bob." }
      assert(conv:say "What is my name?")
      local body = srv:last().body_json
      assert.equal(last_id, body.previous_response_id)
      assert.same({ "Note: my name is Bob", "Noted, Bob.", "What is my name?" },
                  { body.input[1] and body.input[1].content, body.input[2] and body.input[2].content,
                    body.input[3] and body.input[3].content })
    end
  end)

  it("saves a chain that loads and goes on, pruned before or after a say", function ()
    for _, say_first in ipairs { false, true } do
      local conv = chain()
      if say_first then assert(conv:say "Echo: t5") end
      local last = conv.response_ids[#conv.response_ids]
      -- (load refused the save: "not a valid saved conversation: response_ids")
      local copy = assert(aigc.conversation.load(conv:save(), client))
      copy:add { role = "user", content = "Note: my name is Bob" }
      copy:add { role = "assistant", content = "Noted, Bob." }
      assert(copy:say "What is my name?")
      local body = srv:last().body_json
      assert.equal(last, body.previous_response_id)
      assert.equal(3, #body.input)
    end
  end)

  it("undoes the last turn back to the response before it", function ()
    local conv = chain()
    local third = conv.response_ids[3]
    assert.equal("Echo: t4", conv:undo()[1].content)
    assert.same({ conv.response_ids[1], conv.response_ids[2], third }, conv.response_ids)
    assert.equal("t5", conv:say "Echo: t5")
    assert.equal(third, srv:last().body_json.previous_response_id)
    -- (and a say after another pruning and an undo still follows the chain)
    table.remove(conv.messages, 2)
    table.remove(conv.messages, 2)
    local ids = conv.response_ids
    local before = ids[#ids - 1]
    assert(conv:undo())
    assert(conv:say "Echo: t6")
    assert.equal(before, srv:last().body_json.previous_response_id)
  end)
end)
