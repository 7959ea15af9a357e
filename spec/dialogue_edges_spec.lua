-- The dialogue layer (tools, structured output, conversations) against the
-- replies real models and real servers give: odd tool calls, histories
-- of the Responses API, scripted exact replies (spec/support/scripted.lua).
local aigc = require "aigc"
local devserver = require "devserver"
local scripted = require "scripted"

local json = aigc.json
local cjson_null = require("cjson").null
local function conversation_prompt () return require("aigc.conversation").SUMMARY_PROMPT end

local ORDER = { type = "object", properties = { order_id = { type = "string" } }, required = { "order_id" } }

local function kinds (msgs)
  local out = {}
  for i, m in ipairs(msgs) do out[i] = m.role or m.type end
  return table.concat(out, " ")
end

describe("the dialogue layer", function ()
  local srv, client

  devserver.fixture(_ENV, function (s, c) srv, client = s, c end)

  it("in a task, the on_done of a blocking say or dialogue may make a blocking call (it failed on 5.1)", function ()
    local got = {}
    client:spawn(function ()
      local conv = aigc.conversation { client = client }
      assert(conv:say("Hi", { on_done = function () got.say = client:chat "nested" end }))
      assert(client:chat { messages = { { role = "user", content = "Hi" } }, schema = { type = "object" },
                           on_done = function () got.dialogue = client:chat "nested" end })
      got.finished = true
    end)
    local errs = {}
    repeat
      local n, e = client:step(0.01)
      for _, x in ipairs(e or {}) do errs[#errs + 1] = tostring(x) end
    until n == 0
    assert.same({}, errs)
    assert.is_true(got.finished)
    assert.is_string(got.say.text)
    assert.is_string(got.dialogue.text)
  end)

  describe("a Responses conversation", function ()
    local ts = aigc.tools { { name = "track_order", parameters = ORDER,
                              fn = function (args) return "Order " .. args.order_id .. " ships." end } }

    it("with a tool call saves, loads and goes on (its history holds items without a role)", function ()
      local conv = aigc.conversation { client = client, system = "S", api = "responses", params = { tools = ts } }
      assert(conv:say "track order A-1042")
      assert.equal("system user function_call function_call_output assistant", kinds(conv.messages))
      local copy, err = aigc.conversation.load(conv:save(), client, { params = { tools = ts } })
      assert.is_nil(err)
      assert.same(json.decode(json.encode(conv.messages)), json.decode(json.encode(copy.messages)))
      srv:reset()
      assert.equal("Here is what I found: Order B-7 ships.", (copy:say "track order B-7"))
      local sent = srv:bodies("/v1/responses")[1].input   -- (the say's first request: the whole history)
      assert.equal("system user function_call function_call_output assistant user", kinds(sent))
      -- the same history starts a conversation, and an item is added as it is
      local again = aigc.conversation { client = client, api = "responses", messages = copy.messages }
      again:add { type = "function_call_output", call_id = "x", output = "late" }
      assert.equal("function_call_output", again.messages[#again.messages].type)
      -- a chat history still needs its roles
      assert.has_error(function () aigc.conversation { client = client, messages = copy.messages } end,
        "bad argument #1 to 'conversation' (opts.messages[3].role: string expected, got nil)")
    end)

    it("summarized, its tool calls and results reach the summary's transcript", function ()
      local conv = aigc.conversation { client = client, system = "S", api = "responses", params = { tools = ts },
                                       max_context_tokens = 30, keep_last = 1, calibrate = false, summarize = true }
      assert(conv:say "track order A-1042")
      assert(conv:say "track order B-1")
      local asked = srv:bodies("/v1/chat/completions")
      assert.equal(1, #asked)
      assert.equal(conversation_prompt(), asked[1].messages[1].content)
      assert.equal('user: track order A-1042\nassistant: [calls track_order({"order_id":"A-1042"})]\n'
                   .. "tool: Order A-1042 ships.\nassistant: Here is what I found: Order A-1042 ships.",
                   asked[1].messages[2].content)
      assert.equal(4, conv.last_context.dropped)
      assert.is_true(conv.last_context.summarized)
    end)
  end)

  describe("a Responses conversation with reasoning", function ()
    it("names a reasoning item by its type in a summary's transcript, not 'nil'", function ()
      local ts = aigc.tools { { name = "track_order", parameters = ORDER, fn = function () return "Shipped." end } }
      local conv = aigc.conversation { client = client, api = "responses", max_context_tokens = 30, keep_last = 1,
        calibrate = false, summarize = true, params = { tools = ts, reasoning = { summary = "auto" } } }
      assert(conv:say "track order A-1")
      assert.equal("user reasoning function_call function_call_output assistant", kinds(conv.messages))
      assert(conv:say "track order B-2")
      local transcript = srv:bodies("/v1/chat/completions")[1].messages[2].content
      assert.matches("\nreasoning: \n", transcript, 1, true)
      assert.is_nil(transcript:find("nil:", 1, true))
    end)
  end)

  it("a reasoning model's summary is what it writes after its leading <think> block", function ()
    -- (the summary's room, 30 tokens, kept the thinking's first words, and the summary was lost)
    local thinking = "<think>\n" .. ("They asked questions and got answers, let me see. "):rep(10) .. "\n</think>\n\n"
    local s = scripted.start { scripted.chat { content = thinking .. "Ada asked four questions." },
                               scripted.chat { content = "done" } }
    local c = aigc.client { base_url = s.base_url, api_key = "k", max_retries = 0 }
    local conv = aigc.conversation { client = c, max_context_tokens = 60, summarize = true, summary_tokens = 30 }
    for i = 1, 4 do
      conv:add { role = "user", content = ("question %02d "):format(i) .. string.rep("q", 28) }
      conv:add { role = "assistant", content = ("answer %02d "):format(i) .. string.rep("a", 30) }
    end
    local reply, res = conv:say "Echo: done"
    c:close()
    local sent = s.finish()
    assert.equal("done", reply, tostring(res))
    assert.equal("Ada asked four questions.", conv.summary.text)
    local prefix = require("aigc.conversation").SUMMARY_PREFIX
    assert.equal(prefix .. "Ada asked four questions.", sent[2].messages[1].content)
  end)

  describe("structured output", function ()
    local NUM = { type = "object", properties = { n = { type = "integer" } }, required = { "n" } }

    -- The result of a chat with NUM against a server giving `replies`.
    local function ask (replies, params)
      local s = scripted.start(replies)
      local c = aigc.client { base_url = s.base_url, api_key = "k", max_retries = 0 }
      local p = { messages = { { role = "user", content = "n?" } }, schema = NUM }
      for k, v in pairs(params or {}) do p[k] = v end
      local res, err = c:chat(p)
      c:close()
      s.finish()
      return res, err
    end

    it("a reply that is one fenced code block is read inside it (json_object mode's models write them)", function ()
      local res, err = ask({ scripted.chat { content = '```json\n{"n": 42}\n```\n' } }, { schema_mode = "json_object" })
      assert.is_nil(err)
      assert.same({ n = 42 }, res.parsed)
      assert.equal('```json\n{"n": 42}\n```\n', res.text)
      -- prose around it, or a fence left open, is still not JSON
      local _, err2 = ask { scripted.chat { content = 'Here it is:\n```json\n{"n": 42}\n```' } }
      assert.equal("schema", err2.kind)
      assert.equal('Here it is:\n```json\n{"n": 42}\n```', err2.text)
      local _, err3 = ask { scripted.chat { content = '```json\n{"n": 42}' } }
      assert.equal("schema", err3.kind)
    end)

    it("a reasoning model's leading <think> block is not part of the JSON: it is the message's reasoning_content",
       function ()
      local reply = '\n<think>\nThey want n. 42 will do.\n</think>\n\n{"n": 42}'
      local res, err = ask { scripted.chat { content = reply } }
      assert.is_nil(err)
      assert.same({ n = 42 }, res.parsed)
      assert.equal("They want n. 42 will do.", res.choices[1].message.reasoning_content)
      assert.equal(reply, res.text)   -- (the reply as it came)
      -- streamed (DeepSeek-R1 on Ollama), and with the JSON fenced after it
      local res2, err2 = ask({ scripted.sse({ { role = "assistant", content = "<think>hm" }, { content = "</think>" },
                                              { content = '```json\n{"n": 7}\n```' }, {} }, "stop") },
                             { stream = function () end })
      assert.is_nil(err2)
      assert.same({ n = 7 }, res2.parsed)
      assert.equal("hm", res2.choices[1].message.reasoning_content)
      -- a reasoning_content the server gave stays; a block left open, or not leading, is still not JSON
      local res3 = assert(ask { scripted.chat { content = "<think>a</think>{\"n\": 1}", reasoning_content = "b" } })
      assert.equal("b", res3.choices[1].message.reasoning_content)
      -- (Qwen3 with its thinking off writes an empty block: no reasoning_content then)
      local res5 = assert(ask { scripted.chat { content = '<think>\n\n</think>\n\n{"n": 5}' } })
      assert.same({ n = 5 }, res5.parsed)
      assert.is_nil(res5.choices[1].message.reasoning_content)
      local _, err4 = ask { scripted.chat { content = '<think>{"n": 1}' } }
      assert.equal("schema", err4.kind)
      local _, err5 = ask { scripted.chat { content = 'Sure. <think>x</think>{"n": 1}' } }
      assert.equal("schema", err5.kind)
      local _, err6 = ask { scripted.chat { content = '<think>x</think>{"n": "one"}' } }
      assert.equal("schema", err6.kind)
      assert.equal("$.n", err6.violations[1].path)
    end)

    it("a reply the content filter cut is kind incomplete and says so, streamed or not", function ()
      local _, err = ask { scripted.chat({ content = '{"n": 4' }, "content_filter") }
      assert.equal("incomplete", err.kind)
      assert.equal("content_filter", err.reason)
      assert.equal('{"n": 4', err.text)
      assert.equal('the structured reply was cut short (finish_reason "content_filter"): the content filter stopped it',
                   err.message)
      local _, err2 = ask({ scripted.sse({ { role = "assistant", content = "" }, { content = '{"n": ' }, {} },
                                         "content_filter") }, { stream = function () end })
      assert.equal("incomplete", err2.kind)
      assert.equal("content_filter", err2.reason)
      local _, err3 = ask { scripted.chat({ content = '{"n": 4' }, "length") }
      assert.equal("length", err3.reason)
      assert.equal('the structured reply was cut short (finish_reason "length"): raise max_tokens', err3.message)
    end)
  end)

  describe("tool calls", function ()
    local chat = scripted.tool_chat

    it("arguments \"null\" (a model's null arguments, serialized) are no arguments, as a JSON null is", function ()
      local got
      local ts = aigc.tools { { name = "now", fn = function (args) got = args; return "noon" end } }
      local res, err, sent = chat(ts, { scripted.chat { tool_calls = { scripted.call("c1", "now", "null") } },
                                        scripted.chat { content = "It is noon." } })
      assert.is_nil(err)
      assert.equal("It is noon.", res.text)
      assert.same({}, got)
      assert.is_true(res.tool_calls_made[1].ok)
      assert.same({ role = "tool", tool_call_id = "c1", content = "noon" }, sent[2].messages[3])
    end)

    it("a reply cut short in its tool calls (max_tokens) is kind incomplete at once, no tool run", function ()
      local ran = 0
      local ts = aigc.tools { { name = "weather", parameters = { type = "object", properties = { city = {} } },
                                fn = function () ran = ran + 1; return "sunny" end } }
      local cut = scripted.chat({ tool_calls = { scripted.call("c1", "weather", '{"city": "Os') } }, "length")
      -- (before: "not valid JSON" went back to the model, cut again each round until max_tool_rounds)
      local res, err, sent = chat(ts, { cut }, { max_tokens = 8, max_tool_rounds = 2 })
      assert.is_nil(res)
      assert.equal("incomplete", err.kind)
      assert.equal("length", err.reason)
      assert.equal('the reply was cut short in its tool calls (length): raise max_tokens', err.message)
      assert.equal("c1", err.response.choices[1].message.tool_calls[1].id)
      assert.equal(0, ran)
      assert.equal(1, #sent)
      -- the Responses API's incomplete response alike
      local s = scripted.start { "json " .. json.encode { id = "resp_1", object = "response", created_at = 1,
        status = "incomplete", incomplete_details = { reason = "max_output_tokens" }, model = "m",
        output = { { type = "function_call", id = "fc_1", call_id = "c1", name = "weather", arguments = '{"ci' } } } }
      local c = aigc.client { base_url = s.base_url, api_key = "k", max_retries = 0 }
      local _, rerr = c:respond { input = "Weather?", tools = ts, max_output_tokens = 16 }
      c:close()
      s.finish()
      assert.equal("incomplete", rerr.kind)
      assert.equal("max_output_tokens", rerr.reason)
      assert.equal(0, ran)
    end)

    -- The model calls each tool of `names` once, then answers: the result, and the messages of the second request.
    local function call_each (ts, names)
      local calls = {}
      for i, name in ipairs(names) do calls[i] = scripted.call(string.char(96 + i), name, "{}") end
      local res, err, sent = chat(ts, { scripted.chat { tool_calls = calls }, scripted.chat { content = "Done." } })
      assert.is_nil(err)
      return res, sent[2].messages
    end

    it("an error value with its own __tostring goes to the model as what it says (as a callback's does)", function ()
      local shown = setmetatable({ code = 7 }, { __tostring = function () return "the door is locked" end })
      local broken = setmetatable({}, { __tostring = function () error("no") end })
      local ts = aigc.tools {
        { name = "raises", fn = function () error(shown) end },
        { name = "returns", fn = function () return nil, shown end },
        { name = "broken", fn = function () error(broken) end },
      }
      local res, msgs = call_each(ts, { "raises", "returns", "broken" })
      assert.equal('{"error":"the door is locked"}', msgs[3].content)
      assert.equal('{"error":"the door is locked"}', msgs[4].content)
      -- (a __tostring that raises: as a callback's error says it, and the C core)
      assert.equal('{"error":"(a table value whose __tostring failed)"}', msgs[5].content)
      assert.equal(shown, res.tool_calls_made[1].error_value)
      assert.equal("the door is locked", res.tool_calls_made[2].error)
    end)

    -- An error class whose instances inherit a generic `message` through
    -- __index and describe themselves in __tostring: the model got the
    -- generic "an error" (read through __index before __tostring), where a
    -- callback's error says what __tostring says. Now the same order as
    -- every aigc callback error (util.value_text): __tostring (unless only
    -- an address), the table's own message, else what the value is.
    it("an error object's __tostring comes before a message inherited through __index", function ()
      local Err = { message = "an error" }
      Err.__index = Err
      Err.__tostring = function (e) return "no door at " .. e.where end
      local own = setmetatable({ message = "the door is locked" },
                               { __tostring = function () return "thing: 0x55d0c0ffee10" end })
      local ts = aigc.tools {
        { name = "raises", fn = function () error(setmetatable({ where = "the cellar" }, Err)) end },
        { name = "returns", fn = function () return nil, setmetatable({ where = "the attic" }, Err) end },
        { name = "addressed", fn = function () error(own) end },
      }
      local res, msgs = call_each(ts, { "raises", "returns", "addressed" })
      assert.equal('{"error":"no door at the cellar"}', msgs[3].content)
      assert.equal('{"error":"no door at the attic"}', msgs[4].content)
      assert.equal('{"error":"the door is locked"}', msgs[5].content)   -- (its __tostring is only an address)
      assert.equal("no door at the cellar", res.tool_calls_made[1].error)
      assert.matches("no door at the cellar", res.tool_calls_made[1].traceback, 1, true)
    end)
  end)

  describe("a conversation with many tools", function ()
    -- 20 tools: some 6,000 tokens of definitions, sent with every request.
    local function big_toolset ()
      local list = {}
      for i = 1, 20 do
        list[i] = { name = "tool" .. i, description = string.rep("Does a thing. ", 70), fn = function () return "x" end,
                    parameters = { type = "object", properties = { a = { type = "string",
                                                                         description = string.rep("The a. ", 20) } } } }
      end
      return aigc.tools(list)
    end

    -- Says "Question i ..." `n` times to a server that counts a prompt token
    -- per 4 bytes of each request (its tools too, as servers count them);
    -- returns the conversation, the messages each request sent and what
    -- the tool definitions are estimated at.
    local function talk (n, opts)
      local ts = big_toolset()
      local replies = {}
      for i = 1, n do replies[i] = scripted.chat({ content = string.rep("Reply sentence. ", 10) }, nil, "count") end
      local s = scripted.start(replies)
      local c = aigc.client { base_url = s.base_url, api_key = "k", max_retries = 0 }
      local o = { client = c, system = "You are Sam.", params = { tools = ts } }
      for k, v in pairs(opts) do o[k] = v end
      local conv = aigc.conversation(o)
      for i = 1, n do assert(conv:say("Question number " .. i .. " " .. string.rep("words ", 10))) end
      c:close()
      local sent = {}
      for i, b in ipairs(s.finish()) do sent[i] = b.messages end
      return conv, sent, aigc.conversation.estimate_text(json.encode(ts:definitions()))
    end

    it("keeps the history that fits beside the tools (calibration learns the ratio, not the tools)", function ()
      local conv, sent, defs = talk(4, { max_context_tokens = 8000 })
      assert.is_true(defs > 5000 and defs < 7000, defs)
      assert.equal(8, #sent[4])                      -- the system message, 3 turns, the input: nothing dropped
      assert.equal(0, conv.last_context.dropped)
      assert.is_true(conv.calibration > 0.9 and conv.calibration < 1.1, conv.calibration)
      assert.is_true(conv.last_context.tokens > defs, conv.last_context.tokens)   -- what was sent, tools too
    end)

    it("counts the tool definitions in the budget", function ()
      local _, _, defs = talk(1, {})
      local conv, sent = talk(3, { max_context_tokens = defs + 70, calibrate = false })
      assert.equal("You are Sam.", sent[3][1].content)
      assert.equal(2, #sent[3])                      -- the system message and the input only
      assert.equal(4, conv.last_context.dropped)
      assert.is_true(conv.last_context.tokens <= defs + 70, conv.last_context.tokens)
    end)
  end)

  describe("a chat conversation", function ()
    it("records a refusal (content null) as a message a request can send: content \"\", the refusal kept", function ()
      local s = scripted.start { scripted.chat { content = nil, refusal = "I can't help with that." },
                                 scripted.chat { content = nil }, scripted.chat { content = "Fine." } }
      local c = aigc.client { base_url = s.base_url, api_key = "k", max_retries = 0 }
      local conv = aigc.conversation { client = c }
      assert.equal("", (conv:say "Do the bad thing"))
      assert.equal("", (conv:say "Say nothing"))   -- (a reply without content: a reasoning model's, cut)
      assert.equal("Fine.", (conv:say "Something else, then"))
      c:close()
      local sent = s.finish()[3].messages
      -- (an assistant message needs content unless it has tool calls: OpenAI answers 400 to a null)
      assert.same({ role = "assistant", content = "", refusal = "I can't help with that." }, sent[2])
      assert.same({ role = "assistant", content = "" }, sent[4])
      assert.equal("I can't help with that.", conv.messages[2].refusal)
    end)
  end)

  describe("a thinking model's reasoning in a turn that calls tools", function ()
    -- DeepSeek's thinking mode (and Kimi) answer 400 to a request whose
    -- tool-calling turn lost its reasoning_content; OpenRouter needs
    -- reasoning_details to go on reasoning after a tool. A turn without
    -- tools goes back without it (deepseek-reasoner refuses it).
    it("goes back with the turn's messages, streamed or not; a turn without tools goes back without it", function ()
      local ts = aigc.tools { { name = "track_order", parameters = ORDER,
                                fn = function (args) return "Order " .. args.order_id .. " ships." end } }
      local details = { { type = "reasoning.text", text = "Look it up.", format = "anthropic-claude-v1", index = 0 } }
      local s = scripted.start {
        scripted.sse({ { role = "assistant", content = cjson_null, reasoning_content = "The user wants " },
                       { reasoning_content = "the order." },
                       { tool_calls = { { index = 0, id = "call_1", type = "function",
                                          ["function"] = { name = "track_order",
                                                           arguments = '{"order_id":"A-1"}' } } } } },
                     "tool_calls"),
        scripted.chat { content = "It ships.", reasoning_content = "Tell them." },
        scripted.chat { content = nil, reasoning_details = details,
                        tool_calls = { scripted.call("call_2", "track_order", '{"order_id":"B-2"}') } },
        scripted.chat { content = "B-2 ships too.", reasoning_content = "Done." },
        scripted.chat { content = "You're welcome.", reasoning_content = "Polite." },
        scripted.chat { content = "Bye." },
      }
      local c = aigc.client { base_url = s.base_url, api_key = "k", max_retries = 0 }
      local conv = aigc.conversation { client = c, params = { tools = ts } }
      local deltas = 0
      assert.equal("It ships.", (conv:say("Where is A-1?", { stream = function () deltas = deltas + 1 end })))
      assert.equal("B-2 ships too.", (conv:say "And B-2?"))
      assert.equal("You're welcome.", (conv:say "Thanks"))
      assert.equal("Bye.", (conv:say "Bye"))
      c:close()
      assert.is_true(deltas > 0)
      local sent = s.finish()
      -- the tool round of the first say: the streamed reply's reasoning, whole, with its call
      local first = sent[2].messages[2]
      assert.equal("call_1", first.tool_calls[1].id)
      assert.equal("The user wants the order.", first.reasoning_content)
      -- the last request: every message of a turn that called tools keeps its reasoning
      local h = sent[6].messages
      assert.equal("user assistant tool assistant user assistant tool assistant user assistant user", kinds(h))
      assert.equal("The user wants the order.", h[2].reasoning_content)
      assert.equal("Tell them.", h[4].reasoning_content)
      assert.same(details, h[6].reasoning_details)
      assert.equal("Done.", h[8].reasoning_content)
      -- the turn without tools: its reply as the API gave it, without the reasoning
      assert.same({ role = "assistant", content = "You're welcome." }, h[10])
      -- what goes back is counted in the context's estimate
      local estimate = aigc.conversation.estimate_message
      local reasoning = estimate { role = "x", content = "Tell them." } - estimate { role = "x", content = "" }
      assert.equal(estimate { role = "assistant", content = "It ships." } + reasoning, estimate(h[4]))
    end)
  end)

  describe("an LLM judge", function ()
    -- best_of with `judge` over `n` candidates that all say "Same." (so
    -- which request the server answers first does not matter), the judge
    -- replying `verdict` to each of its requests.
    local function judged (n, mode, verdict)
      local replies = {}
      for i = 1, n do replies[i] = scripted.chat { content = "Same." } end
      for i = n + 1, mode == "score" and 2 * n or n + 1 do replies[i] = scripted.chat { content = verdict } end
      local s = scripted.start(replies)
      local c = aigc.client { base_url = s.base_url, api_key = "k", max_retries = 0 }
      local best, cands = require("aigc.strategy").best_of { client = c, n = n, params = "Name a colour.",
                                                             judge = { prompt = "Best?", mode = mode } }
      c:close()
      s.finish()
      return best, cands
    end

    it("reads a score given with the scale the prompt named ('On a scale of 1 to 10, ... 8.')", function ()
      local best, cands = judged(2, "score", "On a scale of 1 to 10, I'd give it 8.")
      assert.equal(8, cands[1].score)
      assert.equal(8, cands[2].score)
      assert.equal(8, best.score)
      local _, cands2 = judged(1, "score", "Score (1-10): 7/10")
      assert.equal(7, cands2[1].score)
    end)

    it("takes the candidate a rank names, not a count before it", function ()
      local best = judged(3, "rank", "Of the 3 candidates, candidate 2 is the most vivid.")
      assert.equal(2, best.index)
      assert.equal(1, best.score)
    end)
  end)
  describe("a call that ends in the middle of a round", function ()
    -- err.tool_messages is the history the loop added: sent again, an
    -- assistant message whose calls are not all answered is refused (400).
    local function answered (msgs)
      local open = {}
      for _, m in ipairs(msgs) do
        for _, c in ipairs(m.tool_calls or {}) do open[c.id] = true end
        if m.role == "tool" then open[m.tool_call_id] = nil end
      end
      return next(open) == nil
    end

    it("answers the calls it did not run (tool_errors = fail, a cancel)", function ()
      local ts = aigc.tools {
        { name = "a", parameters = { type = "object" }, fn = function () error("a broke") end },
        { name = "b", parameters = { type = "object" }, fn = function () return "b ran" end },
      }
      local res, err = client:chat { messages = { { role = "user", content = "a({}) b({})" } },
                                     tools = ts, tool_errors = "fail" }
      assert.is_nil(res)
      assert.equal("tool", err.kind)
      assert.equal("assistant tool tool", kinds(err.tool_messages))
      assert.is_true(answered(err.tool_messages))
      assert.matches("not run", err.tool_messages[3].content)
      -- canceled by the first tool: the second is answered, not run
      local ran, fut = {}, nil
      local ts2 = aigc.tools {
        { name = "a", parameters = { type = "object" }, fn = function () ran.a = true; fut:cancel(); return "a" end },
        { name = "b", parameters = { type = "object" }, fn = function () ran.b = true; return "b" end },
      }
      fut = client:chat_async { messages = { { role = "user", content = "a({}) b({})" } }, tools = ts2 }
      while client:step(0.01) > 0 do end
      assert.equal("canceled", fut:status())
      assert.is_true(ran.a)
      assert.is_nil(ran.b)
    end)
  end)
end)
