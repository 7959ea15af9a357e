-- Probes of the tool loop and structured output against odd replies, over
-- real HTTP on loopback (scripted exact replies, spec/support/scripted.lua):
-- what a tool may return or raise, the argument shapes a server sends, the
-- replies a `schema` must decode or refuse, and schemas and replies whose
-- checking must not blow up.
local aigc = require "aigc"
local scripted = require "scripted"
local luachild = require "luachild"
local cjson = require "cjson"

local function user () return { { role = "user", content = "go" } } end

-- A structured-output chat against `replies`: res, err, the bodies sent.
local function schema_chat (schema, replies, params)
  local s = scripted.start(replies)
  local c = aigc.client { base_url = s.base_url, api_key = "k", max_retries = 0 }
  local p = { messages = user(), schema = schema }
  for k, v in pairs(params or {}) do p[k] = v end
  local res, err = c:chat(p)
  c:close()
  return res, err, s.finish()
end

-- The `role = "tool"` contents of a request body, in order.
local function tool_contents (body)
  local out = {}
  for _, m in ipairs(body.messages) do
    if m.role == "tool" then out[#out + 1] = { id = m.tool_call_id, content = m.content } end
  end
  return out
end

local function count (s, sub)
  local n, i = 0, 1
  while true do
    local j = s:find(sub, i, true)
    if not j then return n end
    n, i = n + 1, j + 1
  end
end

describe("tools and structured output, probed", function ()
  local call, final = scripted.call, scripted.chat { content = "done" }

  -- Tools t1, t2... running `outs`' functions, all called in one round,
  -- then a final reply: res, err, the bodies sent.
  local function run_tools (outs)
    local defs, calls = {}, {}
    for i, fn in ipairs(outs) do
      defs[i] = { name = "t" .. i, fn = fn }
      calls[i] = call("c" .. i, "t" .. i, "{}")
    end
    return scripted.tool_chat(aigc.tools(defs), { scripted.chat { tool_calls = calls }, final })
  end

  it("answers parallel calls in the order given, each under its own id", function ()
    local ts = aigc.tools { { name = "a", fn = function () return "A" end },
                            { name = "b", fn = function () return "B" end } }
    local res, err, sent = scripted.tool_chat(ts, {
      scripted.chat { tool_calls = { call("x9", "b", "{}"), call("x1", "a", "{}"), call("x5", "b", "{}") } },
      final })
    assert.is_nil(err)
    assert.same({ { id = "x9", content = "B" }, { id = "x1", content = "A" }, { id = "x5", content = "B" } },
                tool_contents(sent[2]))
    assert.equal("x1", res.tool_calls_made[2].id)
  end)

  it("sends what a tool returns or raises as the model can read it, and goes on", function ()
    local cyc = {}
    cyc.self = cyc
    local outs = { function () return nil end, function () return 3.5 end, function () return 0 / 0 end,
                   function () return cyc end, function () return "a" .. string.char(0, 255) .. "b" end,
                   function () error({ code = 5 }) end, function () error({ message = "boom" }) end,
                   function () return nil, "not found" end }
    local res, err, sent = run_tools(outs)
    assert.is_nil(err)
    assert.equal("done", res.text)
    local got = tool_contents(sent[2])
    assert.equal(8, #got)
    assert.equal("null", got[1].content)
    assert.equal("3.5", got[2].content)
    -- (what is wrong and where, not the encoder's "bad argument #1 to 'encode'")
    assert.equal("the result of t3 is not JSON-encodable (value: cannot encode NaN (JSON has no NaN))",
                 cjson.decode(got[3].content).error)
    assert.equal("the result of t4 is not JSON-encodable (value.self: cannot encode a table that contains itself "
                 .. "(a cycle))", cjson.decode(got[4].content).error)
    assert.equal("a" .. string.char(0) .. "\239\191\189b", got[5].content)   -- (U+FFFD for the bad byte)
    assert.equal("a table error value without a message", cjson.decode(got[6].content).error)
    assert.equal("boom", cjson.decode(got[7].content).error)
    assert.equal("not found", cjson.decode(got[8].content).error)
    assert.is_false(res.tool_calls_made[7].ok)
    assert.same({ message = "boom" }, res.tool_calls_made[7].error_value)
  end)

  -- (the encoder calls a result's __pairs and __len, README "Errors"; what
  -- they raise came to the model as "pairs failed)": the position's
  -- stripping took the sentence in front of it, whose "(" and the file's
  -- "/" made it look like a chunk name; a table raised came as "table: 0x...")
  it("a result whose __pairs or __len raises: the model reads why, without the position", function ()
    local outs = {
      function () return setmetatable({}, { __pairs = function () error("pairs failed") end }) end,
      function () return setmetatable({}, { __len = function () error("len failed") end }) end,
      function () return setmetatable({}, { __pairs = function () error({ message = "no list" }) end }) end,
    }
    local res, err, sent = run_tools(outs)
    assert.is_nil(err)
    local got = tool_contents(sent[2])
    assert.equal(3, #got)
    assert.equal("the result of t1 is not JSON-encodable (pairs failed)", cjson.decode(got[1].content).error)
    assert.equal("the result of t2 is not JSON-encodable (len failed)", cjson.decode(got[2].content).error)
    assert.equal("the result of t3 is not JSON-encodable (no list)", cjson.decode(got[3].content).error)
    -- (the record keeps the position)
    assert.matches("^the result of t1 is not JSON%-encodable %(.-tools_schema_probe_spec%.lua:%d+: pairs failed%)$",
                   res.tool_calls_made[1].error)
    assert.is_false(res.tool_calls_made[3].ok)
  end)

  it("takes empty or null arguments as {}, and answers broken ones and unknown tools with an error", function ()
    local seen = {}
    local ts = aigc.tools { { name = "t", fn = function (args) seen[#seen + 1] = next(args) == nil; return "ok" end },
                            { name = "end", fn = function () return "keyword" end } }
    local res, err, sent = scripted.tool_chat(ts, {
      scripted.chat { tool_calls = { call("c1", "t", ""), call("c2", "t", "null"), call("c3", "t", '{"a":'),
                                     call("c4", "t", "[1]"), call("c5", "t", "5"), call("c6", "nope", "{}"),
                                     call("c7", "end", "{}") } },
      final })
    assert.is_nil(err)
    assert.equal("done", res.text)
    assert.same({ true, true }, seen)
    local got = tool_contents(sent[2])
    assert.equal("ok", got[1].content)
    assert.equal("ok", got[2].content)
    assert.matches("not valid JSON", cjson.decode(got[3].content).error, 1, true)
    assert.matches("must be a JSON object", cjson.decode(got[4].content).error, 1, true)
    assert.matches("must be a JSON object", cjson.decode(got[5].content).error, 1, true)
    assert.matches("unknown tool 'nope'", cjson.decode(got[6].content).error, 1, true)
    assert.equal("keyword", got[7].content)
  end)

  it("runs no tool of a reply cut by max_tokens, and ends with max_tool_rounds", function ()
    local ran = 0
    local ts = aigc.tools { { name = "t", fn = function () ran = ran + 1; return "x" end } }
    local _, err = scripted.tool_chat(ts, {
      scripted.chat({ tool_calls = { call("c1", "t", "{}"), call("c2", "t", '{"a": "x') } }, "length") })
    assert.equal("incomplete", err.kind)
    assert.equal("length", err.reason)
    assert.equal(0, ran)
    local one = scripted.chat { tool_calls = { call("c1", "t", "{}") } }
    local _, err2, sent = scripted.tool_chat(ts, { one, one }, { max_tool_rounds = 1 })
    assert.equal("tool", err2.kind)
    assert.equal("none", sent[2].tool_choice)
    assert.equal(1, ran)
  end)

  it("joins streamed calls whose arguments come in pieces, the calls' indexes interleaved", function ()
    local got = {}
    local ts = aigc.tools {
      { name = "a", parameters = { type = "object", properties = { x = { type = "string" } }, required = { "x" } },
        fn = function (args, c) got[#got + 1] = c.id .. "=" .. args.x; return "A" end },
      { name = "b", parameters = { type = "object", properties = { y = { type = "integer" } }, required = { "y" } },
        fn = function (args, c) got[#got + 1] = c.id .. "=" .. args.y; return "B" end } }
    local function piece (index, args, id, name)
      local f = { arguments = args, name = name }
      return { tool_calls = { { index = index, id = id, type = id and "function" or nil, ["function"] = f } } }
    end
    local s = scripted.start {
      scripted.sse({ { role = "assistant", content = cjson.null },
                     piece(1, "", "call_B", "b"), piece(0, "", "call_A", "a"),
                     piece(1, '{"y"'), piece(0, '{"x": "he'), piece(1, ": 4"), piece(0, 'llo"'), piece(1, "2}"),
                     piece(0, "}") }, "tool_calls"),
      scripted.sse({ { content = "fi" }, { content = "ne" } }, "stop") }
    local c = aigc.client { base_url = s.base_url, api_key = "k", max_retries = 0 }
    local res, err = c:chat { messages = user(), tools = ts, stream = function () end }
    c:close()
    local sent = s.finish()
    assert.is_nil(err)
    assert.equal("fine", res.text)
    assert.same({ "call_A=hello", "call_B=42" }, got)
    local calls = sent[2].messages[2].tool_calls
    assert.equal('{"x": "hello"}', calls[1]["function"].arguments)
    assert.equal('{"y": 42}', calls[2]["function"].arguments)
    assert.same({ { id = "call_A", content = "A" }, { id = "call_B", content = "B" } }, tool_contents(sent[2]))
  end)

  it("runs tools on the Responses API, outputs under their call_id, with a schema and strict tools", function ()
    local function response (id, output)
      return "json " .. aigc.json.encode { id = id, object = "response", status = "completed", model = "m",
                                           output = output, usage = { input_tokens = 5, output_tokens = 2 } }
    end
    local params = { type = "object", properties = { tz = { type = "string" } }, required = { "tz" },
                     additionalProperties = false }
    local ts = aigc.tools { { name = "now", strict = true, parameters = params,
                              fn = function (a) return "noon " .. a.tz end } }
    local s = scripted.start {
      response("r1", { { type = "function_call", id = "f1", call_id = "c2", name = "now", arguments = '{"tz":"B"}' },
                       { type = "function_call", id = "f2", call_id = "c1", name = "now", arguments = '{"tz":"A"}' } }),
      response("r2", { { type = "message", id = "m1", role = "assistant",
                         content = { { type = "output_text", text = '{"n": 1}' } } } }) }
    local c = aigc.client { base_url = s.base_url, api_key = "k", max_retries = 0 }
    local res, err = c:respond { input = "go", tools = ts,
      schema = { type = "object", properties = { n = { type = "integer" } }, required = { "n" },
                 additionalProperties = false } }
    c:close()
    local sent = s.finish()
    assert.is_nil(err)
    assert.equal(1, res.parsed.n)
    assert.is_true(sent[1].tools[1].strict)
    assert.equal("json_schema", sent[1].text.format.type)
    assert.is_true(sent[1].text.format.strict)
    assert.same({ { type = "function_call_output", call_id = "c2", output = "noon B" },
                  { type = "function_call_output", call_id = "c1", output = "noon A" } }, sent[2].input)
  end)

  it("refuses a schema JSON cannot hold where it is given, not as 'chat_async' and a wire path", function ()
    -- (a cycle, a function: the request's encoding raised "bad argument #1
    -- to 'chat_async' (params.response_format.json_schema.schema...)")
    local node = { type = "object", properties = {} }
    node.properties.next = node
    local ok, e = pcall(aigc.tools, { { name = "t", parameters = node, fn = print } }, { validate = false })
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'tools' (tools[1].parameters: not JSON-encodable "
                   .. "(value.properties.next: cannot encode a table that contains itself", tostring(e), 1, true)
    local s = scripted.start { scripted.chat { content = "{}" } }
    local c = aigc.client { base_url = s.base_url, api_key = "k", max_retries = 0 }
    local bad = { type = "object", properties = { x = { type = "string", default = print } } }
    local ok2, e2 = pcall(c.chat, c, { messages = user(), schema = bad })
    assert.is_false(ok2)
    assert.matches("bad argument #1 to 'chat' (params.schema: not JSON-encodable "
                   .. "(value.properties.x.default: cannot encode a function))", tostring(e2), 1, true)
    assert.matches("tools_schema_probe_spec.lua:", tostring(e2), 1, true)   -- (the user's line)
    local res = assert(c:chat { messages = user(), schema = { type = "object" } })
    assert.same({}, res.parsed)
    c:close()
    assert.equal(1, #s.finish())   -- (nothing sent for the refused schema)
  end)

  it("gives a strict tool without parameters a closed empty object, as strict mode wants", function ()
    local ts = aigc.tools { { name = "now", strict = true, fn = function () return "noon" end },
                            { name = "today", fn = function () return "Sat" end } }
    local res, err, sent = scripted.tool_chat(ts, {
      scripted.chat { tool_calls = { call("c1", "now", "{}"), call("c2", "today", "") } }, final })
    assert.is_nil(err)
    assert.equal("done", res.text)
    local strict, plain = sent[1].tools[1]["function"], sent[1].tools[2]["function"]
    assert.is_true(strict.strict)
    assert.same({ type = "object", properties = {}, required = {}, additionalProperties = false }, strict.parameters)
    assert.matches('"required":[]', aigc.json.encode(ts:definitions()[1]["function"].parameters), 1, true)
    assert.same({ type = "object", properties = {} }, plain.parameters)
    assert.is_nil(plain.strict)
  end)

  describe("a structured reply", function ()
    local obj = { type = "object", properties = { a = { type = "integer" } }, required = { "a" },
                  additionalProperties = false }

    it("goes as given with strict, and decodes fenced JSON; integers written 3.0 come as integers", function ()
      local res, err, sent = schema_chat(obj, { scripted.chat { content = '```json\n{"a": 3.0}\n```' } })
      assert.is_nil(err)
      assert.equal(3, res.parsed.a)
      if math.type then assert.equal("integer", math.type(res.parsed.a)) end
      local rf = sent[1].response_format
      assert.same({ type = "json_schema", json_schema = { name = "response", strict = true,
        schema = { type = "object", properties = { a = { type = "integer" } }, required = { "a" },
                   additionalProperties = false } } }, rf)
    end)

    it("that refuses, is cut, is filtered, trails text or breaks the schema is an error saying which", function ()
      local _, e1 = schema_chat(obj, { scripted.chat { content = cjson.null, refusal = "I can't" } })
      assert.equal("refusal", e1.kind)
      assert.equal("I can't", e1.refusal)
      local _, e2 = schema_chat(obj, { scripted.chat({ content = '{"a": ' }, "length") })
      assert.equal("incomplete", e2.kind)
      assert.equal("length", e2.reason)
      local _, e3 = schema_chat(obj, { scripted.chat({ content = '{"a": 1}' }, "content_filter") })
      assert.equal("incomplete", e3.kind)
      assert.equal("content_filter", e3.reason)
      local _, e4 = schema_chat(obj, { scripted.chat { content = '{"a": 1} Hope this helps!' } })
      assert.equal("schema", e4.kind)
      assert.matches("not valid JSON", e4.message, 1, true)
      local nested = { type = "object", properties = { items = { type = "array", items = obj } } }
      local _, e5 = schema_chat(nested, { scripted.chat { content = '{"items": [{"a": 1}, {"a": 1.5, "b": 2}]}' } })
      assert.equal("schema", e5.kind)
      assert.same({ { path = "$.items[1].a", message = "expected integer, got number" },
                    { path = "$.items[1].b", message = "property is not allowed (additionalProperties is false)" } },
                  e5.violations)
    end)

    it("takes nullable types and enums with null", function ()
      local s = { type = "object", additionalProperties = false, required = { "a", "b" },
                  properties = { a = { type = { "string", "null" } }, b = { enum = { "x", aigc.null } } } }
      local res, err = schema_chat(s, { scripted.chat { content = '{"a": null, "b": null}' } })
      assert.is_nil(err)
      assert.equal(aigc.null, res.parsed.a)
      local _, e2 = schema_chat(s, { scripted.chat { content = '{"a": 1, "b": "y"}' } })
      assert.same({ { path = "$.a", message = "expected string or null, got integer" },
                    { path = "$.b", message = 'expected one of "x", null, got "y"' } }, e2.violations)
    end)

    it("that breaks a recursive schema deep down names the innermost violation once, not the whole chain", function ()
      -- (each level quoted the next level's message: a message of 100 kB
      -- for a list 190 deep, sent as is to a model in a tool loop)
      local node = { type = "object", additionalProperties = false, required = { "v", "next" },
                     properties = { v = { type = "integer" },
                                    next = { anyOf = { { ["$ref"] = "#/$defs/node" }, { type = "null" } } } } }
      local s = { ["$defs"] = { node = node }, ["$ref"] = "#/$defs/node" }
      local depth = 150
      local text = string.rep('{"v":1,"next":', depth) .. '{"v":"x","next":null}' .. string.rep("}", depth)
      local _, err = schema_chat(s, { scripted.chat { content = text } })
      assert.equal("schema", err.kind)
      assert.equal(1, #err.violations)
      assert.equal("$.next", err.violations[1].path)
      assert.equal(1, count(err.message, "closest:"))
      local leaf = "closest: $" .. string.rep(".next", depth) .. ".v: expected integer, got string"
      assert.matches(leaf, err.message, 1, true)
      local ok, good = schema_chat(s, { scripted.chat { content = string.rep('{"v":1,"next":', depth) .. "null"
                                                                 .. string.rep("}", depth) } })
      assert.is_nil(good)
      assert.equal(1, ok.parsed.next.v)
    end)
  end)

  it("sends a tool's error quoting the model's text at once, however many position-like prefixes it has", function ()
    -- Stripping `file:line: ` prefixes copied the rest of the message
    -- after each one: time as the square of its length, minutes for an
    -- error quoting a path of 1.4 MB the model wrote (io.open's message
    -- starts with the path). Run in a child: the old code is killed.
    local r = luachild.run([[
      local aigc = require "aigc"
      local scripted = require "scripted"
      local path = string.rep("a.b:1: ", 200000)
      local ts = aigc.tools { { name = "read",
        parameters = { type = "object", properties = { path = { type = "string" } }, required = { "path" } },
        fn = function (args) local f = assert(io.open(args.path)); f:close(); return "read" end } }
      local res, err, sent = scripted.tool_chat(ts, {
        scripted.chat { tool_calls = { scripted.call("c1", "read", aigc.json.encode { path = path }) } },
        scripted.chat { content = "done" } })
      assert(res, err)
      -- (the path is the model's text, no position Lua put: it goes back whole)
      print(res.text, sent[2].messages[3].content == aigc.json.encode { error = path .. ": File name too long" })
      print(res.tool_calls_made[1].error:find(path .. ": File name too long", 1, true) ~= nil)   -- (kept whole)
    ]], { timeout = 120 })
    assert.equal(0, r.status, r.stderr)
    assert.equal('done\ttrue\ntrue\n', r.stdout)
  end)

  it("checks a long property name against a bounded-repeat patternProperties at once (Lua's matcher hung)", function ()
    -- `^[a-z_]{1,40}$` became the Lua pattern [a-z_] then 39 x [a-z_]?,
    -- which backtracks through 2^39 ways on a name of 41 letters: the
    -- call hung in the validator (structured output and tool arguments
    -- alike). Run in a child: the old code is killed by the timeout.
    local r = luachild.run([[
      local aigc = require "aigc"
      local scripted = require "scripted"
      local schema = { type = "object", additionalProperties = false,
                       patternProperties = { ["^[a-z_]{1,40}$"] = { type = "integer" },
                                             ["^x{0,50}y$"] = { type = "string" } } }
      local long = string.rep("a", 41)
      local s = scripted.start {
        scripted.chat { content = '{"' .. long .. '": 1}' },
        scripted.chat { content = '{"' .. string.rep("a", 40) .. '": 1, "' .. string.rep("x", 50) .. 'y": "z"}' },
        scripted.chat { tool_calls = { scripted.call("c1", "t", '{"' .. string.rep("x", 60) .. 'z": 1}') } },
        scripted.chat { content = "done" } }
      local c = aigc.client { base_url = s.base_url, api_key = "k", max_retries = 0 }
      local msgs = { { role = "user", content = "go" } }
      local _, err = c:chat { messages = msgs, schema = schema }
      print(err.kind, err.violations[1].path, err.violations[1].message)
      local res = assert(c:chat { messages = msgs, schema = schema })
      print("ok", res.parsed[string.rep("a", 40)])
      local ts = aigc.tools { { name = "t", parameters = schema, fn = function () return "ran" end } }
      local r2 = assert(c:chat { messages = msgs, tools = ts })
      print(r2.tool_calls_made[1].ok, r2.tool_calls_made[1].violations[1].message)
      c:close()
      s.finish()
    ]], { timeout = 120 })
    assert.equal(0, r.status, r.stderr)
    assert.equal("schema\t$." .. string.rep("a", 41) .. "\tproperty is not allowed (additionalProperties is false)\n"
                 .. "ok\t1\n"
                 .. "false\tproperty is not allowed (additionalProperties is false)\n", r.stdout)
  end)

  it("matches patternProperties as the regex would, bounded repeats and searches included", function ()
    local schema = require "aigc.schema"
    local function allowed (re, key)
      return (schema.validate({ [key] = 1 }, { type = "object", additionalProperties = false,
                                              patternProperties = { [re] = true } }))
    end
    assert.is_true(allowed("^[a-z_]{1,3}$", "ab_"))
    assert.is_false(allowed("^[a-z_]{1,3}$", "abcd"))
    assert.is_false(allowed("^[a-z_]{1,3}$", ""))
    assert.is_true(allowed("\\d{2,3}$", "x123"))
    assert.is_false(allowed("\\d{2,3}$", "x1"))
    assert.is_true(allowed("^x-", "x-y"))
    assert.is_false(allowed("^x-", "yx-"))
    assert.is_true(allowed("a*b", "ccb"))   -- (unanchored: a search)
    assert.is_true(allowed("^a?b?c$", "ac"))
    assert.is_false(allowed("^a?b?c$", "abbc"))
    assert.is_true(allowed("^.*\\.json$", "caf\195\169.json"))
    assert.is_false(allowed("^.*\\.json$", "a.jsonx"))
    assert.is_true(allowed("^$", ""))
  end)
end)
