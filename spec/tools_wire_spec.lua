-- The tool-call loop against the tool-call shapes OpenAI-compatible servers
-- really send (scripted exact replies, spec/support/scripted.lua), and what
-- a tool may do to the loop it runs in.
local aigc = require "aigc"
local scripted = require "scripted"

describe("the tool loop", function ()
  local chat = scripted.tool_chat

  it("gives a call without an id, or with an empty or repeated one, an id its tool message names", function ()
    -- Gemini's OpenAI-compatible endpoint and LM Studio send "id": "", others none, or one twice.
    local n = 0
    local ts = aigc.tools { { name = "now", fn = function () n = n + 1; return "noon " .. n end } }
    local res, err, sent = chat(ts, {
      scripted.chat { tool_calls = { scripted.call("", "now", "{}"), scripted.call(nil, "now", "{}"),
                                     scripted.call("c1", "now", "{}"), scripted.call("c1", "now", "{}") } },
      scripted.chat { tool_calls = { scripted.call("c1", "now", "{}") } },
      scripted.chat { content = "It is noon." } })
    assert.is_nil(err)
    assert.equal("It is noon.", res.text)
    local msgs = sent[3].messages
    local ids = {}
    for _, m in ipairs(msgs) do
      local seen = {}
      for _, c in ipairs(m.tool_calls or {}) do
        assert.is_string(c.id)
        assert.matches("^%w+$", c.id)
        assert.is_nil(seen[c.id])   -- (unique in its message)
        seen[c.id] = true
        ids[#ids + 1] = c.id
      end
    end
    assert.equal(5, #ids)
    assert.equal("c1", ids[3])   -- (an id of its own is kept)
    assert.equal("c1", ids[5])   -- (also when an earlier round used it: its call was answered)
    for i = 1, 2 do assert.not_equal("c1", ids[i]) end
    local outputs = {}
    for _, m in ipairs(msgs) do
      if m.role == "tool" then outputs[#outputs + 1] = m.tool_call_id end
    end
    assert.same(ids, outputs)
    for i, rec in ipairs(res.tool_calls_made) do assert.equal(ids[i], rec.id) end
    assert.equal(5, n)
  end)

  it("a tool that changes the history it was given (call.messages) changes nothing sent", function ()
    -- What it appended went between the calls and their outputs: a history servers refuse (400).
    local seen
    local ts = aigc.tools { { name = "now", fn = function (_, call)
      seen = #call.messages
      call.messages[#call.messages + 1] = { role = "user", content = "injected" }
      return "noon"
    end } }
    local res, err, sent = chat(ts, { scripted.chat { tool_calls = { scripted.call("c1", "now", "{}") } },
                                      scripted.chat { content = "It is noon." } })
    assert.is_nil(err)
    assert.equal("It is noon.", res.text)
    assert.equal(2, seen)   -- (the user's message and the call)
    local roles = {}
    for i, m in ipairs(sent[2].messages) do roles[i] = m.role end
    assert.same({ "user", "assistant", "tool" }, roles)
    assert.equal(2, #res.tool_messages)
  end)

  it("a tool added by a tool (ts:add) is offered to the model in the next round", function ()
    local ts
    ts = aigc.tools { { name = "load_skill", fn = function ()
      ts:add { name = "roll_dice", fn = function () return "4" end }
      return "loaded"
    end } }
    local res, err, sent = chat(ts, { scripted.chat { tool_calls = { scripted.call("c1", "load_skill", "{}") } },
                                      scripted.chat { tool_calls = { scripted.call("c2", "roll_dice", "{}") } },
                                      scripted.chat { content = "You rolled 4." } })
    assert.is_nil(err)
    assert.equal("You rolled 4.", res.text)
    local function names (body)
      local out = {}
      for i, t in ipairs(body.tools) do out[i] = t["function"].name end
      return out
    end
    assert.same({ "load_skill" }, names(sent[1]))
    assert.same({ "load_skill", "roll_dice" }, names(sent[2]))
    assert.same({ "load_skill", "roll_dice" }, names(sent[3]))
    assert.is_true(res.tool_calls_made[2].ok)
  end)

  it("takes arguments encoded twice (JSON text of the JSON text: vLLM's hermes parser, Granite 4)", function ()
    local got
    local ts = aigc.tools { { name = "get_db_config",
      parameters = { type = "object", properties = { param = { type = "string" } }, required = { "param" } },
      fn = function (args) got = args; return "100" end } }
    local twice = aigc.json.encode(aigc.json.encode { param = "max_connections" })
    local res, err = chat(ts, { scripted.chat { tool_calls = { scripted.call("c1", "get_db_config", twice) } },
                                scripted.chat { content = "100 connections." } })
    assert.is_nil(err)
    assert.equal("100 connections.", res.text)
    assert.same({ param = "max_connections" }, got)
    assert.is_true(res.tool_calls_made[1].ok)
    -- a string that is not an object is still refused
    local content, rec = ts:call(scripted.call("c2", "get_db_config", aigc.json.encode("max_connections")))
    assert.is_false(rec.ok)
    assert.matches("must be a JSON object", content, 1, true)
  end)

  it("sends a call's arguments that are no JSON object back as one (vLLM, llama-server, SGLang answer 400)", function ()
    -- They decode every past call's arguments; the model is told of its error and recovers.
    local ts = aigc.tools { { name = "now", fn = function () return "noon" end } }
    local cut, twice = '{"city": "Os', aigc.json.encode('{"city":"Oslo"}')
    local res, err, sent = chat(ts, {
      scripted.chat { tool_calls = { scripted.call("c1", "now", cut), scripted.call("c2", "now", "[1]"),
                                     scripted.call("c3", "now", twice), scripted.call("c4", "now", '{"a":1}') } },
      scripted.chat { content = "It is noon." } })
    assert.is_nil(err)
    assert.equal("It is noon.", res.text)
    local args = {}
    for i, c in ipairs(sent[2].messages[2].tool_calls) do args[i] = c["function"].arguments end
    assert.same({ "{}", "{}", '{"city":"Oslo"}', '{"a":1}' }, args)
    -- the records, and the reply, keep what the model wrote
    assert.equal(cut, res.tool_calls_made[1].raw_arguments)
    assert.equal(twice, res.tool_calls_made[3].raw_arguments)
    assert.is_false(res.tool_calls_made[1].ok)
    assert.matches("not valid JSON", sent[2].messages[3].content, 1, true)
    assert.equal("{}", res.tool_messages[1].tool_calls[1]["function"].arguments)
  end)

  it("over the Responses API with store = false, sends a function call's broken arguments back as {}", function ()
    local function response (id, output)
      return "json " .. aigc.json.encode { id = id, object = "response", status = "completed", model = "m",
                                           output = output, usage = { input_tokens = 5, output_tokens = 2 } }
    end
    local ts = aigc.tools { { name = "now", fn = function () return "noon" end } }
    local s = scripted.start {
      response("resp_1", { { type = "function_call", id = "fc_1", call_id = "c1", name = "now",
                             arguments = '{"tz": ' } }),
      response("resp_2", { { type = "message", id = "m_1", role = "assistant",
                             content = { { type = "output_text", text = "It is noon." } } } }) }
    local c = aigc.client { base_url = s.base_url, api_key = "k", max_retries = 0 }
    local res, err = c:respond { input = "go", tools = ts, store = false }
    c:close()
    local sent = s.finish()
    assert.is_nil(err)
    assert.equal("It is noon.", res.text)
    local call = sent[2].input[2]
    assert.equal("function_call", call.type)
    assert.equal("{}", call.arguments)
    assert.equal("function_call_output", sent[2].input[3].type)
    assert.equal('{"tz": ', res.tool_calls_made[1].raw_arguments)
  end)

  it("runs a call to functions.NAME (a namespaced name some models write) as the tool NAME", function ()
    local got
    local ts = aigc.tools { { name = "get_time", fn = function (args) got = args; return "12:00" end } }
    local content, rec = ts:call(scripted.call("c1", "functions.get_time", '{"tz":"UTC"}'))
    assert.equal("12:00", content)
    assert.is_true(rec.ok)
    assert.same({ tz = "UTC" }, got)
    assert.equal("functions.get_time", rec.name)   -- (what the model called)
    -- other prefixes are unknown
    content, rec = ts:call(scripted.call("c3", "tools.get_time", "{}"))
    assert.is_false(rec.ok)
    assert.matches("unknown tool 'tools.get_time'", content, 1, true)
  end)

  it("sends a schema's required = {} (none required, as a Lua table) as [], which OpenAI demands", function ()
    local enc = aigc.json.encode
    local params = {
      type = "object", required = {},
      properties = {
        filter = { type = "object", properties = { tag = { type = "string" } }, required = {} },
        required = {},   -- (a property of that name, of any value: its schema {} stays an object)
        pick = { anyOf = { { ["$ref"] = "#/$defs/Item" }, { type = "null" } } },
      },
      ["$defs"] = { Item = { type = "object", properties = {}, required = {} } },
    }
    local ts = aigc.tools { { name = "find", parameters = params, fn = function () return "x" end } }
    local p = ts:definitions()[1]["function"].parameters
    assert.equal("[]", enc(p.required))
    assert.equal("[]", enc(p.properties.filter.required))
    assert.equal("{}", enc(p.properties.required))
    assert.equal("[]", enc(p["$defs"].Item.required))
    assert.equal("{}", enc(p["$defs"].Item.properties))
    assert.equal('{"$ref":"#/$defs/Item"}', enc(p.properties.pick.anyOf[1]))
    -- the user's table is not changed, and the loop sends the same
    assert.equal("{}", enc(params.required))
    -- a node with a metatable of its own, even a protected one, is copied as a plain table
    local locked = setmetatable({ type = "string" }, { __metatable = "locked" })
    local ts2 = aigc.tools({ { name = "f", fn = function () end,
      parameters = { type = "object", properties = { a = locked }, required = {} } } }, { validate = false })
    assert.equal('{"type":"string"}', enc(ts2:definitions()[1]["function"].parameters.properties.a))
    local _, err, sent = chat(ts, { scripted.chat { content = "ok" } })
    assert.is_nil(err)
    assert.equal("string", sent[1].tools[1]["function"].parameters.properties.filter.properties.tag.type)
  end)

  it("a tool that changes arguments the server sent as an object (TGI) leaves the history's unchanged", function ()
    local ts = aigc.tools { { name = "get_weather", fn = function (args)
      args.days = args.days or 3          -- a default filled in
      args.log = function () end          -- a handle kept (no JSON)
      return "sunny"
    end } }
    local call = scripted.call("c1", "get_weather", { city = "Oslo" })
    local res, err, sent = chat(ts, { scripted.chat { tool_calls = { call } }, scripted.chat { content = "Sunny." } })
    assert.is_nil(err)
    assert.equal("Sunny.", res.text)
    assert.same({ city = "Oslo" }, sent[2].messages[2].tool_calls[1]["function"].arguments)
  end)

  it("sends a call that came without arguments, or with null ones, back with {} (Azure answers 400)", function ()
    local ts = aigc.tools { { name = "now", fn = function () return "noon" end } }
    local null = require("cjson").null
    local res, err, sent = chat(ts, {
      scripted.chat { tool_calls = { scripted.call("c1", "now", nil), scripted.call("c2", "now", null) } },
      scripted.chat { content = "It is noon." } })
    assert.is_nil(err)
    assert.equal("It is noon.", res.text)
    local calls = sent[2].messages[2].tool_calls
    assert.equal("{}", calls[1]["function"].arguments)
    assert.equal("{}", calls[2]["function"].arguments)
    assert.is_true(res.tool_calls_made[1].ok and res.tool_calls_made[2].ok)
  end)

  it("sends a call that came without its type (streamed by vLLM, or \"\") back with type function", function ()
    local ts = aigc.tools { { name = "now", fn = function () return "noon" end } }
    local function untyped (id, t)
      return { index = 0, id = id, type = t, ["function"] = { name = "now", arguments = "{}" } }
    end
    local res, err, sent = chat(ts, {
      scripted.sse({ { role = "assistant", tool_calls = { untyped("c1", nil) } } }, "tool_calls"),
      scripted.sse({ { role = "assistant", tool_calls = { untyped("c2", "") } } }, "tool_calls"),
      scripted.sse({ { content = "It is noon." } }, "stop") }, { stream = function () end })
    assert.is_nil(err)
    assert.equal("It is noon.", res.text)
    local msgs = sent[3].messages
    assert.equal("function", msgs[2].tool_calls[1].type)
    assert.equal("function", msgs[4].tool_calls[1].type)
    assert.equal("c2", msgs[4].tool_calls[1].id)
  end)

  it("a structured output schema's required = {} goes as [] too, in json_schema and json_object mode", function ()
    local npc = { type = "object", properties = { mood = { type = "string" } }, required = {} }
    local s = scripted.start { scripted.chat { content = '{"mood":"calm"}' }, scripted.chat { content = "{}" } }
    local c = aigc.client { base_url = s.base_url, api_key = "k", max_retries = 0 }
    local res = assert(c:chat { messages = { { role = "user", content = "go" } }, schema = npc })
    assert.equal("calm", res.parsed.mood)
    assert(c:chat { messages = { { role = "user", content = "go" } }, schema = npc, schema_mode = "json_object" })
    c:close()
    local sent = s.finish()
    assert.equal("object", sent[1].response_format.json_schema.schema.type)
    -- (cjson decodes [] and {} alike: the instruction's text tells them apart)
    assert.matches('"required":[]', sent[2].messages[1].content, 1, true)
    assert.equal("{}", aigc.json.encode(npc.required))   -- (the user's table unchanged)
  end)

  it("an error that quotes the client's key goes to the model with the key redacted", function ()
    local key = "sk-test-0000-not-a-real-key"
    local ts = aigc.tools { { name = "fetch", fn = function ()
      error("GET https://api.example.com/v1/x failed (Authorization: Bearer " .. key .. ")", 0)
    end } }
    local s = scripted.start { scripted.chat { tool_calls = { scripted.call("c1", "fetch", "{}") } },
                               scripted.chat { content = "It failed." } }
    local c = aigc.client { base_url = s.base_url, api_key = key, max_retries = 0 }
    local res, err = c:chat { messages = { { role = "user", content = "go" } }, tools = ts }
    c:close()
    local sent = s.finish()
    assert.is_nil(err)
    assert.equal("It failed.", res.text)
    local content = sent[2].messages[3].content
    assert.is_nil(content:find(key, 1, true))
    assert.matches("failed (Authorization: Bearer [redacted])", content, 1, true)
    assert.is_truthy(res.tool_calls_made[1].error:find(key, 1, true))   -- (the record: the tool's own message)
  end)

  it("runs a reply's tool_calls sent as one call's object, not a list, as that call (as a stream's)", function ()
    -- It was taken for a reply without calls: no tool ran, and res.text was nil, with no error.
    local n = 0
    local ts = aigc.tools { { name = "now", fn = function () n = n + 1; return "noon" end } }
    local one = { id = "c1", type = "function", ["function"] = { name = "now", arguments = "{}" } }
    local res, err, sent = chat(ts, { scripted.chat { tool_calls = one }, scripted.chat { content = "It is noon." } })
    assert.is_nil(err)
    assert.equal("It is noon.", res.text)
    assert.equal(1, n)
    local calls = sent[2].messages[2].tool_calls
    assert.equal(1, #calls)
    assert.equal("c1", calls[1].id)
    assert.same({ role = "tool", tool_call_id = "c1", content = "noon" }, sent[2].messages[3])
  end)
end)
