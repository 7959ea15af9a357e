-- A library never changes what the caller passed in: params, messages, each
-- message, content parts, tools and their schemas, headers, query,
-- extra fields, metadata, response_format, stream options, batch inputs,
-- the client's options. Each row builds its arguments from nested tables
-- (aigc.null, functions, metatables included), snapshots every table they
-- reach (its raw fields, the identity of each nested table, its metatable),
-- calls the API against the bundled server -- success and error paths (a
-- 400 fault, a retried 500, a cancelled stream) -- and checks that every
-- table is exactly as it was: no field changed, none added or removed, no
-- nested table replaced, no metatable set or changed; plus assert.same
-- against a deep copy taken before, for a readable diff.
local aigc = require "aigc"
local devserver = require "devserver"

local SECRET = "sk-test-SECRET-nomutate-3"

-- Every table reachable from `root` (keys and values), each once. A toolset
-- is the library's own object (it caches its wire form): not walked; the
-- definitions it was made from are (the rows pass them too).
local function reach (root, seen, list)
  seen, list = seen or {}, list or {}
  if type(root) ~= "table" or seen[root] or aigc.tools.is_toolset(root) then return list end
  seen[root] = true
  list[#list + 1] = root
  for k, v in next, root do
    reach(k, seen, list)
    reach(v, seen, list)
  end
  return list
end

-- A snapshot of each reachable table: its raw fields (values kept by
-- identity) and its metatable.
local function snapshot (root)
  local shots = {}
  for _, t in ipairs(reach(root)) do
    local fields = {}
    for k, v in next, t do fields[k] = v end
    shots[#shots + 1] = { t = t, fields = fields, mt = debug.getmetatable(t) }
  end
  return shots
end

-- A deep copy that keeps aigc.null, functions and userdata as they are
-- (and metatables, by reference).
local function deep_copy (v, seen)
  if type(v) ~= "table" or aigc.tools.is_toolset(v) then return v end
  seen = seen or {}
  if seen[v] then return seen[v] end
  local c = {}
  seen[v] = c
  for k, x in next, v do c[deep_copy(k, seen)] = deep_copy(x, seen) end
  return setmetatable(c, debug.getmetatable(v))
end

-- Where the table's raw fields differ from the snapshot, or nil.
local function changed (shot)
  if debug.getmetatable(shot.t) ~= shot.mt then return "its metatable" end
  for k, v in next, shot.t do
    if not rawequal(shot.fields[k], v) then return ("field %s (%s, was %s)"):format(tostring(k), tostring(v),
                                                                                 tostring(shot.fields[k])) end
  end
  for k in next, shot.fields do
    if rawget(shot.t, k) == nil then return ("field %s removed"):format(tostring(k)) end
  end
end

local function assert_untouched (name, args, shots, copy)
  for _, shot in ipairs(shots) do
    local what = changed(shot)
    assert(not what, name .. ": the caller's table changed: " .. tostring(what))
  end
  assert.same(copy, args)
end

local function fault (spec) return { ["x-aigc-fault"] = spec } end

-- A message class with __index (encoded by its own fields and inherited ones).
local Message = {}
Message.__index = Message
Message.__name = "spec.Message"

local function messages (text)
  return {
    { role = "system", content = "Be brief." },
    setmetatable({ role = "user", content = { { type = "text", text = text } } }, Message),
  }
end

local function tool_defs ()
  return { {
    name = "track_order", description = "Order status by id",
    parameters = { type = "object", properties = { order_id = { type = "string" } }, required = { "order_id" } },
    fn = function (args) return "Order " .. args.order_id .. " ships Thursday." end,
  } }
end

local function npc_schema ()
  return { type = "object", properties = { say = { type = "string" }, mood = { enum = { "calm", "angry" } } },
           required = { "say", "mood" }, additionalProperties = false }
end

local function chat_params (text, extra)
  local p = {
    messages = messages(text), temperature = 0, metadata = { tag = "x", nested = { 1, 2 } },
    headers = { ["X-Trace"] = "t-1", ["X-Gone"] = aigc.null }, query = { ["api-version"] = "v1" },
    stop = { "\n\n" }, logit_bias = { ["50256"] = -100 }, user = aigc.null,
    extra_headers = { ["X-More"] = "1" }, extra_query = { e = "2" },
  }
  for k, v in pairs(extra or {}) do p[k] = v end
  return p
end

local function reader_of (s)
  local done = false
  return function ()
    if done then return nil end
    done = true
    return s
  end
end

local function voice_note (text) return "RIFF\0\0\0\0WAVE" .. "AIGC-TEXT:" .. text end

-- Each row: name, args() giving the list of arguments, call(client, args).
-- `ok` says whether the call should succeed (nil: either).
local ROWS = {
  { "chat", function () return { chat_params "Hi" } end,
    function (c, a) return c:chat(a[1]) end, true },
  { "chat, 400 fault", function () return { chat_params("Hi", { headers = fault "status=400" }) } end,
    function (c, a) return c:chat(a[1]) end, false },
  { "chat, a retried 500", function ()
      return { chat_params("Hi", { max_retries = 2, headers = fault "status=500,times=1" }) } end,
    function (c, a) return c:chat(a[1]) end, true },
  { "chat, streamed (callback)", function ()
      return { chat_params("Tell me a story about a robot that learns to paint",
                           { stream = function () end, stream_options = { include_usage = true } }) } end,
    function (c, a) return c:chat(a[1]) end, true },
  { "chat, streamed without stream_options", function ()
      return { chat_params("Hi", { stream = function () end }) } end,
    function (c, a) return c:chat(a[1]) end, true },
  { "chat_async", function () return { chat_params("Hi", { on_done = function () end }) } end,
    function (c, a) return c:chat_async(a[1]):wait() end, true },
  { "complete", function ()
      return { { prompt = { "What is the capital of France?" }, max_tokens = 10, headers = { ["X-A"] = "b" } } } end,
    function (c, a) return c:complete(a[1]) end, true },
  { "stream iterator, cancelled", function ()
      return { chat_params("Tell me a story about a robot that learns to paint", { headers = fault "pause=5" }) } end,
    function (c, a)
      local s = c:stream(a[1])
      for _ in s do break end -- luacheck: ignore 512
      s:close()
      return true
    end, nil },
  { "stream iterator, whole", function () return { chat_params "Hi" } end,
    function (c, a)
      local s = c:stream(a[1])
      for _ in s do end -- luacheck: ignore 512
      return s:result()
    end, true },
  { "embeddings", function ()
      return { { input = { "hello", "world" }, model = "text-embedding-3-small", headers = { ["X-A"] = "b" } } } end,
    function (c, a) return c:embeddings(a[1]) end, true },
  { "respond", function ()
      return { { input = { { role = "user", content = { { type = "input_text", text = "Hi" } } } },
                 instructions = "Be brief.", metadata = { k = "v" }, text = { verbosity = "low" },
                 headers = { ["X-A"] = "b" } } } end,
    function (c, a) return c:respond(a[1]) end, true },
  { "respond, streamed", function ()
      return { { input = "What is 2 + 2?", reasoning = { effort = "low", summary = "auto" },
                 stream = function () end } } end,
    function (c, a) return c:respond(a[1]) end, true },
  { "aigc.tools construction", function () return { tool_defs() } end,
    function (_, a) return aigc.tools(a[1]) end, true },
  { "respond with tools", function ()
      local defs = tool_defs()
      return { { input = "track_order for A-1042", tools = aigc.tools(defs) }, defs } end,
    function (c, a) return c:respond(a[1]) end, true },
  { "respond with a schema", function ()
      return { { input = "Say hello calmly", schema = npc_schema(), schema_name = "npc" } } end,
    function (c, a) return c:respond(a[1]) end, true },
  { "get_response with a query", function () return { { order = "asc", limit = 5 } } end,
    function (c, a)
      local r = assert(c:respond { input = "Hi" })
      assert(c:response_input_items(r.id, a[1]))
      return c:get_response(r.id, a[1])
    end, nil },
  { "moderate", function () return { { input = { "I will kill it", "fine" }, headers = { ["X-A"] = "b" } } } end,
    function (c, a) return c:moderate(a[1]) end, true },
  { "images_generate", function ()
      return { { prompt = "a knight", size = "16x16", n = 1, response_format = "b64_json", model = "dall-e-2",
                 headers = { ["X-A"] = "b" }, query = { q = "1" } } } end,
    function (c, a) return c:images_generate(a[1]) end, true },
  { "images_edit (bytes)", function ()
      local png = assert(aigc.media.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg=="))
      return { { prompt = "a hat", image = { { data = png, filename = "a.png", type = "image/png" } },
                 response_format = "b64_json", model = "dall-e-2", headers = { ["X-A"] = "b" } } } end,
    function (c, a) return c:images_edit(a[1]) end, nil },
  { "speech", function ()
      return { { input = "Hello", voice = "alloy", response_format = "wav", headers = { ["X-A"] = "b" } } } end,
    function (c, a) return c:speech(a[1]) end, true },
  { "transcribe (bytes)", function ()
      return { { file = { data = voice_note "hello there", filename = "n.wav", type = "audio/wav" },
                 timestamp_granularities = { "word" }, response_format = "verbose_json",
                 headers = { ["X-A"] = "b", Expect = "" } } } end,
    function (c, a) return c:transcribe(a[1]) end, true },
  { "translate (reader)", function ()
      return { { file = { reader = reader_of(voice_note "bonjour"), filename = "n.wav", type = "audio/wav" },
                 headers = { ["X-A"] = "b" } } } end,
    function (c, a) return c:translate(a[1]) end, true },
  { "files_upload (reader), list", function ()
      return { { purpose = "batch", file = { reader = reader_of '{"a":1}\n', filename = "b.jsonl" },
                 expires_after = { anchor = "created_at", seconds = 3600 }, headers = { ["X-A"] = "b" } },
               { purpose = "batch", order = "asc", headers = { ["X-A"] = "b" } } } end,
    function (c, a)
      assert(c:files_upload(a[1]))
      return c:files_list(a[2])
    end, true },
  { "models", function () return {} end, function (c) return c:models() end, true },
  { "request", function () return { { prompt = "a robot", size = "16x16", response_format = "b64_json" } } end,
    function (c, a) return c:request("POST", "/images/generations", a[1]) end, true },
  { "the tools loop", function ()
      local defs = tool_defs()
      return { chat_params("track_order for A-1042", { tools = aigc.tools(defs) }), defs } end,
    function (c, a) return c:chat(a[1]) end, true },
  { "the tools loop, async", function ()
      local defs = tool_defs()
      return { chat_params("track_order for A-1042", { tools = aigc.tools(defs) }), defs } end,
    function (c, a) return c:chat_async(a[1]):wait() end, true },
  { "a plain array of tool definitions", function ()
      return { chat_params("Hi", { tools = { { type = "function", ["function"] = { name = "f",
        parameters = { type = "object", properties = {} } } } } }) } end,
    function (c, a) return c:chat(a[1]) end, true },
  { "structured output", function ()
      return { chat_params("Say hello calmly", { schema = npc_schema(), schema_name = "npc" }) } end,
    function (c, a) return c:chat(a[1]) end, true },
  { "structured output, json_object mode", function ()
      return { chat_params("Say hello calmly", { schema = npc_schema(), schema_mode = "json_object" }) } end,
    function (c, a) return c:chat(a[1]) end, true },
  { "response_format given", function ()
      return { chat_params("Say hello", { response_format = { type = "json_schema", json_schema = {
        name = "npc", schema = npc_schema(), strict = true } } }) } end,
    function (c, a) return c:chat(a[1]) end, true },
  { "conversation", function ()
      return { { system = "You are Sam.", params = chat_params("unused", { messages = aigc.null }) },
               { stream = function () end, headers = { ["X-A"] = "b" } } } end,
    function (c, a)
      local opts = {}
      for k, v in pairs(a[1]) do opts[k] = v end
      opts.client = c
      opts.params = { metadata = a[1].params.metadata, headers = a[1].params.headers }
      local conv = aigc.conversation(opts)
      assert(conv:say("Hello!", a[2]))
      return conv:say("Thanks!", a[2])
    end, true },
  { "strategy.best_of", function ()
      return { { n = 2, params = chat_params "Tell me a joke", judge = { prompt = "Most vivid?" } } } end,
    function (c, a)
      local o = {}
      for k, v in pairs(a[1]) do o[k] = v end
      o.client = c
      return aigc.strategy.best_of(o)
    end, true },
  { "strategy.vote", function () return { { n = 3, params = chat_params "What is 2 + 2?" } } end,
    function (c, a)
      local o = {}
      for k, v in pairs(a[1]) do o[k] = v end
      o.client = c
      return aigc.strategy.vote(o)
    end, true },
  { "strategy.refine", function () return { { rounds = 1, params = chat_params "Tell me a joke" } } end,
    function (c, a)
      local o = {}
      for k, v in pairs(a[1]) do o[k] = v end
      o.client = c
      return aigc.strategy.refine(o)
    end, true },
  { "strategy.fallback", function ()
      return { { params = chat_params("Hi", { headers = fault "status=400" }) },
               { params = chat_params "Hi" } } end,
    function (c, a)
      return aigc.strategy.fallback { params = a[2].params, { client = c, headers = a[1].params.headers },
                                      { client = c } }
    end, true },
  { "batch.run", function ()
      return { { { custom_id = "fr", body = { messages = { { role = "user", content = "Capital of France?" } } } },
                 { custom_id = "es", body = { messages = messages "Capital of Spain?" } } },
               { interval = 0.05, metadata = { k = "v" } } } end,
    function (c, a) return aigc.batch.run(c, a[1], a[2]) end, true },
}

local function with_client (c, o)
  local x = {}
  for k, v in pairs(o) do x[k] = v end
  x.client = c
  return x
end

-- Error paths and the rest of the dialogue layer.
local MORE = {
  { "the tools loop, a 400", function ()
      local defs = tool_defs()
      return { chat_params("track_order for A-1042", { tools = aigc.tools(defs), headers = fault "status=400" }),
               defs } end,
    function (c, a) return c:chat(a[1]) end, nil },
  { "the tools loop, a tool that raises, tool_errors = fail", function ()
      local defs = tool_defs()
      defs[1].fn = function () error({ deep = { 1 } }) end
      return { chat_params("track_order for A-1042", { tools = aigc.tools(defs), tool_errors = "fail" }), defs } end,
    function (c, a) return c:chat(a[1]) end, false },
  { "the tools loop, streamed", function ()
      local defs = tool_defs()
      local p = chat_params("track_order for A-1042", { tools = aigc.tools(defs), stream = function () end })
      return { p, defs } end,
    function (c, a) return c:chat(a[1]) end, true },
  { "a schema without required / additionalProperties, with $ref", function ()
      return { chat_params("Say hello", { schema = { type = "object", ["$defs"] = { s = { type = "string" } },
        properties = { say = { ["$ref"] = "#/$defs/s" }, n = { type = "integer", minimum = 0 } } } }) } end,
    function (c, a) return c:chat(a[1]) end, nil },
  { "schema_mode auto, 400 falls back", function ()
      return { chat_params("Say hello calmly", { schema = npc_schema(), schema_mode = "auto",
                                                 headers = fault "status=400,times=1" }) } end,
    function (c, a) return c:chat(a[1]) end, nil },
  { "the tools loop over a history with tool calls", function ()
      local defs = tool_defs()
      local msgs = {
        { role = "user", content = "track_order for A-1041" },
        { role = "assistant", content = aigc.null, tool_calls = { { id = "call_1", type = "function",
          ["function"] = { name = "track_order", arguments = '{"order_id":"A-1041"}' } } } },
        { role = "tool", tool_call_id = "call_1", content = "Order A-1041 shipped." },
        { role = "assistant", content = "It shipped." },
        { role = "user", content = "track_order for A-1042" },
      }
      return { chat_params("x", { messages = msgs, tools = aigc.tools(defs), max_tool_rounds = 3 }), defs } end,
    function (c, a) return c:chat(a[1]) end, true },
  { "conversation:say with a message and content parts", function ()
      return { setmetatable({ role = "user", content = { { type = "text", text = "Hello" } } }, Message),
               { { type = "text", text = "Thanks!" } } } end,
    function (c, a)
      local conv = aigc.conversation { client = c, system = "S" }
      assert(conv:say(a[1]))
      assert(conv:say(a[2]))
      conv:undo()
      return conv:say_async(a[2]):wait()
    end, true },
  { "schema, async", function ()
      return { chat_params("Say hello calmly", { schema = npc_schema() }) } end,
    function (c, a) return c:chat_async(a[1]):wait() end, true },
  { "chat stream cancelled from its callback", function ()
      local p = chat_params("Tell me a story about a robot that learns to paint")
      return { p } end,
    function (c, a)
      local req
      local p = {}
      for k, v in pairs(a[1]) do p[k] = v end
      p.stream = function () req:cancel() end
      req = c:chat_async(p)
      return req:wait()
    end, false },
  { "respond, 400 fault", function ()
      return { { input = { { role = "user", content = "Hi" } }, headers = fault "status=400" } } end,
    function (c, a) return c:respond(a[1]) end, false },
  { "conversation over responses, server state", function ()
      return { { api = "responses", state = "server", system = "You are Sam." },
               { headers = { ["X-A"] = "b" } } } end,
    function (c, a)
      local conv = aigc.conversation(with_client(c, a[1]))
      assert(conv:say("Hello!", a[2]))
      return conv:say("What did I just say?", a[2])
    end, true },
  { "conversation over responses, client state, tools", function ()
      local defs = tool_defs()
      return { { api = "responses", system = "You are Sam.", params = { tools = aigc.tools(defs) } }, defs } end,
    function (c, a)
      local conv = aigc.conversation(with_client(c, a[1]))
      return conv:say("track_order for A-1042")
    end, true },
  { "conversation with a budget and summarize", function ()
      return { { system = "You are Sam.", max_context_tokens = 40, keep_last = 1, summarize = true,
                 params = { temperature = 0 } } } end,
    function (c, a)
      local conv = aigc.conversation(with_client(c, a[1]))
      for _, t in ipairs { "Hello there, how are you today?", "Tell me a joke", "What is 2 + 2?" } do
        assert(conv:say(t))
      end
      return conv:say "Thanks!"
    end, true },
  { "conversation with given messages, a budget, fork and undo", function ()
      local msgs = messages "Hello there, how are you today?"
      msgs[3] = { role = "assistant", content = "Fine, thanks. What can I do for you?" }
      return { { messages = msgs, max_context_tokens = 30, keep_first = 1, keep_last = 1, summarize = true,
                 params = { temperature = 0, metadata = { k = "v" } } } } end,
    function (c, a)
      local conv = aigc.conversation(with_client(c, a[1]))
      assert(conv:say "Tell me a joke")
      local other = conv:fork()
      assert(other:say "What is 2 + 2?")
      conv:undo()
      return conv:say "Thanks!"
    end, true },
  { "conversation.load", function ()
      return { { params = { temperature = 0 } } } end,
    function (c, a)
      local conv = aigc.conversation { client = c, system = "S" }
      assert(conv:say "Hi")
      local copy = assert(aigc.conversation.load(conv:save(), c, a[1]))
      return copy:say "Thanks!"
    end, true },
  { "strategy.race", function ()
      return { { params = chat_params "Hi" } } end,
    function (c, a) return aigc.strategy.race { params = a[1].params, { client = c }, { client = c } } end, true },
  { "strategy.route", function ()
      return { { input = "Where is my order A-1042?", default = "other", params = chat_params "unused",
                 routes = { orders = { system = "You handle orders." }, other = { system = "Be helpful." } } } } end,
    function (c, a)
      local o = with_client(c, a[1])
      o.classify = { client = c }
      return aigc.strategy.route(o)
    end, true },
  { "strategy.best_of over responses", function ()
      return { { n = 2, params = { input = { { role = "user", content = "Tell me a joke" } } },
                 judge = { prompt = "Most vivid?" } } } end,
    function (c, a) return aigc.strategy.best_of(with_client(c, a[1])) end, true },
  { "sentences.stream", function () return { chat_params "Tell me a story about a robot that learns to paint" } end,
    function (c, a) return c:chat(aigc.sentences.stream(a[1], function () end)) end, true },
  { "template render", function ()
      return { { prompt = "What is the capital of {{country}}?", params = { temperature = 0, metadata = { k = "v" } } },
               { country = "France" } } end,
    function (c, a)
      local t = aigc.template.new(a[1])
      return c:chat(assert(t:render(a[2])))
    end, true },
  { "runner.run", function ()
      return { { concurrency = 2, params = { temperature = 0, metadata = { k = "v" } },
                 cases = { { id = "fr", messages = messages "What is the capital of France?",
                             assert = { { type = "contains", value = "Paris" } } },
                           { id = "es", prompt = "What is the capital of Spain?" } } } } end,
    function (c, a) return aigc.runner.run(with_client(c, a[1])) end, true },
  { "batch.run, a failed line", function ()
      return { { { custom_id = "a", body = { messages = messages "Hi", model = "fault:status=500" } } },
               { interval = 0.05 } } end,
    function (c, a) return aigc.batch.run(c, a[1], a[2]) end, nil },
  { "download", function () return { { headers = { ["X-A"] = "b" } } } end,
    function (c, a)
      local img = assert(c:images_generate { prompt = "a knight", size = "16x16", model = "dall-e-2" })
      return c:download(img.data[1].url, a[1])
    end, true },
}
for _, row in ipairs(MORE) do ROWS[#ROWS + 1] = row end

-- Fields the library fills in or renames on the way (engine, idempotency,
-- stream_options, a schema turned into text.format, store = false chains).
local FILLED = {
  { "engine as the model's old name", function () return { { engine = "aigc-dev", prompt = "Hi", max_tokens = 3 } } end,
    function (c, a) return c:complete(a[1]) end, true },
  { "idempotency_key, a retried 500", function ()
      return { chat_params("Hi", { idempotency_key = "k-1", max_retries = 1,
                                   headers = fault "status=500,times=1" }) } end,
    function (c, a) return c:chat(a[1]) end, true },
  { "stream_options given without include_usage", function ()
      return { chat_params("Hi", { stream = function () end, stream_options = {} }) } end,
    function (c, a) return c:chat(a[1]) end, nil },
  { "respond: schema with a text table", function ()
      return { { input = "Say hello calmly", schema = npc_schema(), text = { verbosity = "low" } } } end,
    function (c, a) return c:respond(a[1]) end, nil },
  { "respond: schema, json_object mode", function ()
      return { { input = { { role = "user", content = "Say hello calmly" } }, schema = npc_schema(),
                 schema_mode = "json_object" } } end,
    function (c, a) return c:respond(a[1]) end, true },
  { "respond: tools with store = false (the whole input again)", function ()
      local defs = tool_defs()
      return { { input = { { role = "user", content = { { type = "input_text", text = "track_order for A-1042" } } } },
                 store = false, tools = aigc.tools(defs) }, defs } end,
    function (c, a) return c:respond(a[1]) end, true },
  { "stream_response iterator", function ()
      return { { input = { { role = "user", content = "Tell me a joke." } }, metadata = { k = "v" } } } end,
    function (c, a)
      for _ in c:stream_response(a[1]) do end -- luacheck: ignore 512
      return true
    end, true },
  { "json_object mode with a system message already", function ()
      return { chat_params("Say hello calmly", { schema = npc_schema(), schema_mode = "json_object" }) } end,
    function (c, a) return c:chat(a[1]) end, true },
  { "images_generate streamed", function ()
      return { { prompt = "a knight", size = "16x16", model = "gpt-image-1", stream = function () end,
                 partial_images = 1 } } end,
    function (c, a) return c:images_generate(a[1]) end, nil },
  { "embeddings, encoding_format given", function ()
      return { { input = { "a" }, encoding_format = "float", dimensions = 4 } } end,
    function (c, a) return c:embeddings(a[1]) end, true },
}
for _, row in ipairs(FILLED) do ROWS[#ROWS + 1] = row end

-- Misuse raises; what was checked before the bad field stays as it was.
local function raises (fn) return function (c, a)
  local ok, e = pcall(fn, c, a)
  assert(not ok and tostring(e):find("bad argument", 1, true), tostring(e))
  return true
end end
local MISUSE = {
  { "misuse: chat with a bad field after tools and a schema", function ()
      local defs = tool_defs()
      local p = chat_params("Hi", { tools = aigc.tools(defs), schema = npc_schema(), max_tool_rounds = "x" })
      return { p, defs } end,
    raises(function (c, a) return c:chat(a[1]) end), true },
  { "misuse: an upload with a bad field", function ()
      return { { file = { data = "x", filename = "n.wav" }, headers = { ["X-A"] = "b" }, timeout = "soon" } } end,
    raises(function (c, a) return c:transcribe(a[1]) end), true },
  { "misuse: respond with a bad text.format next to a schema", function ()
      return { { input = "Hi", schema = npc_schema(), text = { format = { type = "json_object" } } } } end,
    raises(function (c, a) return c:respond(a[1]) end), true },
  { "respond_async with tools", function ()
      local defs = tool_defs()
      return { { input = "track_order for A-1042", tools = aigc.tools(defs), on_done = function () end }, defs } end,
    function (c, a) return c:respond_async(a[1]):wait() end, true },
  { "strategy.vote over responses", function ()
      return { { n = 3, params = { input = { { role = "user", content = "What is 2 + 2?" } } } } } end,
    function (c, a) return aigc.strategy.vote(with_client(c, a[1])) end, true },
  { "files_content to a function", function ()
      return { { purpose = "user_data", file = { data = "abc", filename = "a.txt" } }, { to = function () end } } end,
    function (c, a)
      local up = assert(c:files_upload(a[1]))
      return c:files_content(up.id, a[2])
    end, true },
}
for _, row in ipairs(MISUSE) do ROWS[#ROWS + 1] = row end

describe("no mutation of the caller's tables", function ()
  local srv, client
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { api_key = SECRET, model = "aigc-dev" })

  for _, row in ipairs(ROWS) do
    local name, make, call, ok = row[1], row[2], row[3], row[4]
    it(name, function ()
      local args = make()
      local shots, copy = snapshot(args), deep_copy(args)
      local res, err = call(client, args)
      if ok == true then assert(res, name .. ": " .. tostring(err))
      elseif ok == false then assert.is_nil(res); assert.is_table(err) end
      assert_untouched(name, args, shots, copy)
    end)
  end

  it("aigc.client options (headers, query, prices, cassette)", function ()
    local tape = os.tmpname()
    os.remove(tape)
    local opts = { base_url = srv.base_url, api_key = SECRET, model = "aigc-dev", max_retries = 0,
                   headers = { ["X-A"] = "b", ["User-Agent"] = aigc.null }, query = { q = "1" },
                   prices = { ["aigc-dev"] = { input = 1, output = 2 } },
                   max_concurrency_by_priority = { background = 2 },
                   cassette = { path = tape, mode = "record" }, log = function () end }
    local shots, copy = snapshot(opts), deep_copy(opts)
    local c = aigc.client(opts)
    assert(c:chat(chat_params "Hi"))
    c:close()
    os.remove(tape)
    assert_untouched("aigc.client", opts, shots, copy)
  end)

  it("cache option, a hit", function ()
    local opts = { base_url = srv.base_url, model = "aigc-dev", max_retries = 0, cache = { ttl = 60, max_entries = 8 } }
    local p = chat_params "Hi"
    local shots, copy = snapshot { opts, p }, deep_copy { opts, p }
    local c = aigc.client(opts)
    assert(c:chat(p))
    local res, err = c:chat(p)
    c:close()
    assert(res, tostring(err))
    assert_untouched("cache", { opts, p }, shots, copy)
  end)

  it("prompt_log option", function ()
    local db = os.tmpname()
    local opts = { base_url = srv.base_url, model = "aigc-dev", max_retries = 0, prompt_log = db }
    local p = chat_params "Hi"
    local shots, copy = snapshot { opts, p }, deep_copy { opts, p }
    local c = aigc.client(opts)
    local res, err = c:chat(p)
    c:close()
    os.remove(db)
    assert(res, tostring(err))
    assert_untouched("prompt_log", { opts, p }, shots, copy)
  end)
end)

-- The C core's submit, below the Lua layer: the params table it encodes,
-- the opts it reads (headers: the engine takes them from opts, not from
-- params, where the encoder skips them), callbacks and stream options stay
-- as given.
describe("no mutation of the caller's tables by the C engine", function ()
  local engine
  devserver.engine_fixture(_ENV, function (_, e) engine = e end)

  local function opts (spec, extra)   -- (the engine's headers: a list of lines)
    local o = { fname = "chat", headers = { "X-A: b" } }
    if spec then o.headers[2] = "x-aigc-fault: " .. spec end
    for k, v in pairs(extra or {}) do o[k] = v end
    return o
  end
  local CORE = {
    { "submit chat", function () return { chat_params("Hi", { model = "m" }), opts() } end, true },
    { "submit chat, streamed, on_done", function ()
        return { chat_params("Hi", { model = "m", stream = function () end, on_done = function () end,
                                     stream_options = { include_usage = true } }), opts() } end, true },
    { "submit chat, 400", function () return { chat_params("Hi", { model = "m" }), opts "status=400" } end, false },
    { "submit chat, a retried 503", function ()
        return { chat_params("Hi", { model = "m", max_retries = 1 }), opts "status=503,times=1" } end, true },
  }
  for _, row in ipairs(CORE) do
    local name, make, ok = row[1], row[2], row[3]
    it(name, function ()
      local args = make()
      local shots, copy = snapshot(args), deep_copy(args)
      local res, err = engine:submit("chat", args[1], args[2]):wait()
      if ok then assert(res, name .. ": " .. tostring(err)) else assert.is_nil(res); assert.is_table(err) end
      assert_untouched(name, args, shots, copy)
    end)
  end
end)
