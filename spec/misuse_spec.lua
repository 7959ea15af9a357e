-- Every way to misuse the Lua layer raises one message format,
--   FILE:LINE: bad argument #N to 'FN' (PATH: MESSAGE)
-- located at the caller's line, whichever path the call takes: client
-- options, per-call options, known request fields, dialogue-layer options,
-- conversations, toolsets, strategies, the runner (issue 11 item 3). Each
-- case is called three ways -- from the test, from inside a task, from
-- inside a request's callback -- and must raise the same text, pointing at
-- the case's own line in this file.
--
-- A case's function is written on one line: the line where it is defined
-- is the line the error must name. (Not as `return f(x)`: a tail call leaves
-- no frame of its caller, in Lua's own messages as in these.)
local aigc = require "aigc"
local devserver = require "devserver"

local HERE = debug.getinfo(1, "S").short_src

local function pack (...) return { n = select("#", ...), ... } end

local function msgs (text) return { { role = "user", content = text or "Hi" } } end
local noop = function () end
local NPC = { type = "object", properties = { say = { type = "string" } }, required = { "say" } }

-- { function (ctx) ... end, FN, N, "PATH: MESSAGE" }: the call raises
-- `bad argument #N to 'FN' (PATH: MESSAGE)` at the function's line.
local CASES = {
  -- aigc.client(opts): the client's options
  { function () local _ = aigc.client(5) end, "client", 1, "table expected, got number" },
  { function () local _ = aigc.client { tiemout = 5 } end,
    "client", 1, "opts.tiemout: unknown option (did you mean timeout?)" },
  { function () local _ = aigc.client { [1] = "x" } end, "client", 1, "opts[1]: unknown option" },
  { function () local _ = aigc.client { timeout = "5" } end,
    "client", 1, "opts.timeout: a number of seconds > 0 expected, got string" },
  { function () local _ = aigc.client { timeout = 0 } end,
    "client", 1, "opts.timeout: a number of seconds > 0 expected, got 0" },
  { function () local _ = aigc.client { timeout = 1e300 } end,
    "client", 1, "opts.timeout: a number of seconds > 0 and at most 1e9 expected, got 1e+300" },
  { function () local _ = aigc.client { max_retries = 1.5 } end,
    "client", 1, "opts.max_retries: an integer in 0..100 expected, got 1.5" },
  { function () local _ = aigc.client { max_concurrency = -1 } end,
    "client", 1, "opts.max_concurrency: an integer in 0..1000000 expected, got -1" },
  { function () local _ = aigc.client { log = "stderr" } end, "client", 1, "opts.log: function expected, got string" },
  { function () local _ = aigc.client { base_url = "ftp://x/v1" } end,
    "client", 1, "opts.base_url: an http:// or https:// URL expected" },
  { function () local _ = aigc.client { base_url = "http://x/ v1" } end,
    "client", 1, "opts.base_url: contains a space or a control character (CR, LF, NUL...)" },
  { function () local _ = aigc.client { provider = "evil" } end,
    "client", 1, "opts.provider: 'openai' or 'azure' expected, got string" },
  { function () local _ = aigc.client { azure = true, api_version = "1" } end,
    "client", 1, "opts.endpoint: Azure needs endpoint (or $AZURE_OPENAI_ENDPOINT) or base_url" },
  { function () local _ = aigc.client { api_key = "k\r\nX: y" } end,
    "client", 1, "opts.api_key: contains CR, LF or NUL" },
  { function () local _ = aigc.client { headers = { ["X A"] = "1" } } end,
    "client", 1, "opts.headers: header \"X A\" has an invalid name (a token: letters, digits and !#$%&'*+-.^_`|~)" },
  -- (a whole "Name: value" line given as a credential header's name: its value is not shown)
  { function () local _ = aigc.client { headers = { ["Authorization: Bearer sk-Qz7Wx9Lk2Rt5Yp8Mn3"] = "" } } end,
    "client", 1, "opts.headers: header \"Authorization: [redacted]\" has an invalid name "
                 .. "(a token: letters, digits and !#$%&'*+-.^_`|~)" },
  { function () local _ = aigc.client { headers = { ["x-api-key sk-Qz7Wx9Lk2Rt5Yp8Mn3"] = true } } end,
    "client", 1, "opts.headers: header \"x-api-key [redacted]\": string, number or aigc.null expected, got boolean" },
  { function () local _ = aigc.client { query = { a = {} } } end,
    "client", 1, "opts.query.a: string, number, boolean or aigc.null expected, got table" },
  { function () local _ = aigc.client.new(true) end, "client", 1, "table expected, got boolean" },

  -- client methods: the call's params and arguments
  { function (ctx) local _ = ctx.client:chat(42) end, "chat", 1, "table or string expected, got number" },
  { function (ctx) local _ = ctx.client:chat {} end, "chat", 1, "params.messages: list of messages expected, got nil" },
  { function (ctx) local _ = ctx.client:chat { messages = { role = "user", content = "Hi" } } end,
    "chat", 1, "params.messages: a list of messages expected, got one message "
               .. "(write messages = { { role = ..., content = ... } })" },
  { function (ctx) local _ = ctx.client:chat { messages = { "Hi" } } end,
    "chat", 1, "params.messages[1]: message table expected, got string" },
  { function (ctx) local _ = ctx.client:chat { messages = { { content = "Hi" } } } end,
    "chat", 1, "params.messages[1].role: string expected, got nil" },
  { function (ctx) local _ = ctx.client:chat { messages = msgs(), temperature = "hot" } end,
    "chat", 1, "params.temperature: number expected, got string" },
  { function (ctx) local _ = ctx.client:chat { messages = msgs(), n = 1.5 } end,
    "chat", 1, "params.n: integer expected, got 1.5" },
  { function (ctx) local _ = ctx.client:chat { messages = msgs(), max_tokens = "10" } end,
    "chat", 1, "params.max_tokens: integer expected, got string" },
  { function (ctx) local _ = ctx.client:chat { messages = msgs(), stop = { 1 } } end,
    "chat", 1, "params.stop[1]: string expected, got number" },
  { function (ctx) local _ = ctx.client:chat { messages = msgs(), tools = "x" } end,
    "chat", 1, "params.tools: list of tool definitions or an aigc.toolset expected, got string" },
  { function (ctx) local _ = ctx.client:chat { messages = msgs(), model = 5 } end,
    "chat", 1, "params.model: string expected, got number" },
  { function (ctx) local _ = ctx.client:chat { messages = msgs(), timeout = -1 } end,
    "chat", 1, "params.timeout: a number of seconds > 0 expected, got -1" },
  { function (ctx) local _ = ctx.client:chat { messages = msgs(), timeout = 1e300 } end,
    "chat", 1, "params.timeout: a number of seconds > 0 and at most 1e9 expected, got 1e+300" },
  { function (ctx) local _ = ctx.client:chat { messages = msgs(), deadline = true } end,
    "chat", 1, "params.deadline: a number of seconds > 0 or false expected, got boolean" },
  { function (ctx) local _ = ctx.client:chat { messages = msgs(), max_retries = 101 } end,
    "chat", 1, "params.max_retries: an integer in 0..100 expected, got 101" },
  { function (ctx) local _ = ctx.client:chat { messages = msgs(), stream = 5 } end,
    "chat", 1, "params.stream: boolean or function expected, got number" },
  { function (ctx) local _ = ctx.client:chat { messages = msgs(), on_done = "x" } end,
    "chat", 1, "params.on_done: function expected, got string" },
  { function (ctx) local _ = ctx.client:chat { messages = msgs(), headers = { ["X:A"] = "1" } } end,
    "chat", 1, "params.headers: header \"X:A\" has an invalid name (a token: letters, digits and !#$%&'*+-.^_`|~)" },
  { function (ctx) local _ = ctx.client:chat { messages = msgs(), headers = { ["Api-Key:sk-Qz7Wx9Lk2Rt5"] = "1" } } end,
    "chat", 1, "params.headers: header \"Api-Key:[redacted]\" has an invalid name "
               .. "(a token: letters, digits and !#$%&'*+-.^_`|~)" },
  { function (ctx) local _ = ctx.client:chat { messages = msgs(), headers = { X = "a\nb" } } end,
    "chat", 1, "params.headers: header \"X\" contains CR, LF or NUL (refused: header injection)" },
  { function (ctx) local _ = ctx.client:chat { messages = msgs(), query = 5 } end,
    "chat", 1, "params.query: table expected, got number" },
  { function (ctx) local _ = ctx.client:chat { messages = msgs(), idempotency_key = 7 } end,
    "chat", 1, "params.idempotency_key: string expected, got number" },
  { function (ctx) local _ = ctx.client:chat { messages = { { role = "user", content = print } } } end,
    "chat", 1, "params.messages[1].content: cannot encode a function" },
  { function (ctx) local _ = ctx.client:chat_async { messages = msgs(), temperature = "hot" } end,
    "chat_async", 1, "params.temperature: number expected, got string" },
  { function (ctx) local _ = ctx.client:stream { messages = msgs(), top_p = {} } end,
    "stream", 1, "params.top_p: number expected, got table" },
  { function (ctx) local _ = ctx.client:complete { prompt = 5 } end,
    "complete", 1, "params.prompt: string or list expected, got number" },
  { function (ctx) local _ = ctx.client:complete_async { prompt = "x", echo = 1 } end,
    "complete_async", 1, "params.echo: boolean expected, got number" },
  -- (a string is the input)
  { function (ctx) local _ = ctx.client:embeddings(5) end, "embeddings", 1, "table expected, got number" },
  { function (ctx) local _ = ctx.client:embeddings { input = "x", timeout = "1" } end,
    "embeddings", 1, "params.timeout: a number of seconds > 0 expected, got string" },
  { function (ctx) local _ = ctx.client:request("PUT", "/x") end, "request", 1, "method must be 'GET' or 'POST'" },
  { function (ctx) local _ = ctx.client:request("GET", 5) end, "request", 2, "string expected, got number" },
  { function (ctx) local _ = ctx.client:request("POST", "/x", "body") end,
    "request", 3, "table (the body of a POST) expected, got string" },
  { function (ctx) local _ = ctx.client:spawn(5) end, "spawn", 1, "function expected, got number" },
  { function (ctx) local _ = ctx.client:sleep(-1) end, "sleep", 1, "a number of seconds >= 0 expected, got -1" },
  { function (ctx) local _ = ctx.client:step("soon") end, "step", 1, "a number of seconds >= 0 expected, got string" },
  { function (ctx) local _ = ctx.client:step(0, 1.5) end, "step", 2, "an integer >= 0 expected, got 1.5" },
  { function (ctx) local _ = ctx.client:watch(nil, noop) end, "watch", 1, "function expected, got nil" },
  { function (ctx) local _ = ctx.client:act("x") end,
    "act", 1, "a file descriptor (an integer >= 0) expected, got string" },

  -- the dialogue layer's options (client:chat with a toolset or a schema)
  { function (ctx) local _ = ctx.client:chat { messages = msgs(), schema = "x" } end,
    "chat", 1, "params.schema: table expected, got string" },
  { function (ctx) local _ = ctx.client:chat { messages = msgs(), schema = { minimum = "5" } } end,
    "chat", 1, "params.schema: #/minimum must be a number, got string" },
  { function (ctx) local _ = ctx.client:chat { messages = msgs(), schema = NPC, schema_name = "a b" } end,
    "chat", 1, "params.schema_name: 1 to 64 letters, digits, '_' or '-' expected" },
  { function (ctx) local _ = ctx.client:chat_async { messages = msgs(), schema = NPC, schema_mode = "xml" } end,
    "chat_async", 1, "params.schema_mode: 'json_schema', 'json_object' or 'auto' expected, got string" },
  { function (ctx) local _ = ctx.client:chat { messages = msgs(), schema_name = "npc" } end,
    "chat", 1, "params.schema_name: only with params.schema" },
  { function (ctx) local _ = ctx.client:chat { messages = msgs(), tools = ctx.tools, max_tool_rounds = -1 } end,
    "chat", 1, "params.max_tool_rounds: an integer >= 0 expected, got -1" },
  { function (ctx) local _ = ctx.client:chat { messages = msgs(), max_tool_rounds = 2 } end,
    "chat", 1, "params.max_tool_rounds: only with a toolset in params.tools" },
  { function (ctx) local _ = ctx.client:chat_async { messages = msgs(), tools = ctx.tools, tool_errors = "x" } end,
    "chat_async", 1, "params.tool_errors: 'report' or 'fail' expected, got string" },
  { function (ctx) local _ = ctx.client:chat { messages = msgs(), tools = ctx.tools, temperature = "hot" } end,
    "chat", 1, "params.temperature: number expected, got string" },
  { function (ctx) local _ = ctx.client:stream { messages = msgs(), tools = ctx.tools } end,
    "stream", 1, "a toolset or a schema needs client:chat { ..., stream = function (delta) end }" },

  -- toolsets
  { function () local _ = aigc.tools "x" end, "tools", 1, "table expected, got string" },
  { function () local _ = aigc.tools { { name = "a b", fn = noop } } end,
    "tools", 1, "tools[1].name: 1 to 64 letters, digits, '_' or '-' expected, got string" },
  { function () local _ = aigc.tools { { name = "a" } } end, "tools", 1, "tools[1].fn: function expected, got nil" },
  { function () local _ = aigc.tools.new({}, { validate = 1 }) end,
    "tools", 2, "opts.validate: boolean expected, got number" },
  { function (ctx) local _ = ctx.tools:add { name = "x", fn = 1 } end,
    "add", 1, "tool.fn: function expected, got number" },
  { function (ctx) local _ = ctx.tools:call(5) end, "call", 1, "tool call table expected, got number" },

  -- conversations
  { function () local _ = aigc.conversation "x" end, "conversation", 1, "table expected, got string" },
  { function () local _ = aigc.conversation {} end, "conversation", 1, "opts.client: aigc.client expected, got nil" },
  { function (ctx) local _ = aigc.conversation { client = ctx.client, keep_last = -1 } end,
    "conversation", 1, "opts.keep_last: an integer >= 0 expected, got -1" },
  { function (ctx) local _ = aigc.conversation { client = ctx.client, kep_last = 1 } end,
    "conversation", 1, "opts.kep_last: unknown option (did you mean keep_last?)" },
  { function (ctx) local _ = aigc.conversation { client = ctx.client, params = { temperature = "hot" } } end,
    "conversation", 1, "opts.params.temperature: number expected, got string" },
  { function (ctx) local _ = ctx.conv:say(42) end, "say", 1, "string, content parts or message expected, got number" },
  { function (ctx) local _ = ctx.conv:say("Hi", "x") end, "say", 2, "table expected, got string" },
  { function (ctx) local _ = ctx.conv:say("Hi", { temperature = "hot" }) end,
    "say", 2, "params.temperature: number expected, got string" },
  { function (ctx) local _ = ctx.conv:say_async("Hi", { on_error = 5 }) end,
    "say_async", 2, "params.on_error: function expected, got number" },
  { function (ctx) local _ = ctx.conv:say("Hi", { schema = { maximum = {} } }) end,
    "say", 2, "params.schema: #/maximum must be a number, got table" },
  { function (ctx) local _ = ctx.conv:add "x" end, "add", 1, "msg: message table expected, got string" },
  { function (ctx) local _ = aigc.conversation.load(5, ctx.client) end, "load", 1, "string expected, got number" },
  { function () local _ = aigc.conversation.load("{}", {}) end, "load", 2, "aigc.client expected, got table" },

  -- strategies
  { function () local _ = aigc.strategy.best_of { params = "x", judge = {} } end,
    "best_of", 1, "spec.client: aigc.client expected, got nil" },
  { function (ctx) local _ = aigc.strategy.best_of { client = ctx.client, params = "x", n = 0, judge = {} } end,
    "best_of", 1, "spec.n: an integer from 1 to 128 expected, got 0" },
  -- (n = 1e9 built a billion candidate requests, until memory ran out: at most 128, as a call's n)
  { function (ctx) local _ = aigc.strategy.best_of { client = ctx.client, params = "x", n = 129, judge = {} } end,
    "best_of", 1, "spec.n: an integer from 1 to 128 expected, got 129" },
  { function (ctx) local _ = aigc.strategy.vote { client = ctx.client, params = "x", n = 1e9 } end,
    "vote", 1, "spec.n: an integer from 1 to 128 expected, got 1000000000" },
  { function (ctx) local _ = aigc.strategy.best_of { client = ctx.client, params = ctx.hot, judge = {} } end,
    "best_of", 1, "spec.params.temperature: number expected, got string" },
  { function (ctx) local _ = aigc.strategy.vote { client = ctx.client, params = "x", extract = 5 } end,
    "vote", 1, "spec.extract: function expected, got number" },
  { function (ctx) local _ = aigc.strategy.refine { client = ctx.client, params = "x", rounds = -1 } end,
    "refine", 1, "spec.rounds: an integer >= 0 expected, got -1" },
  { function (ctx) local _ = aigc.strategy.fallback { params = "x", ctx.client, 42 } end,
    "fallback", 1, "spec[2]: aigc.client or table expected, got number" },
  { function (ctx) local _ = aigc.strategy.race { params = "x", { client = ctx.client, params = ctx.bad_n } } end,
    "race", 1, "spec[1].params.n: integer expected, got string" },
  { function () local _ = aigc.strategy.route { routes = { a = noop }, classify = noop } end,
    "route", 1, "spec.input: string expected, got nil" },
  { function () local _ = aigc.strategy.router { routes = { a = noop }, classify = noop, default = "b" } end,
    "router", 1, "spec.default: 'b' is not a route" },

  -- token estimates, judges (aigc.tokens, aigc.judge)
  { function () local _ = aigc.tokens.estimate_text(nil) end, "estimate_text", 1, "string expected, got nil" },
  { function () local _ = aigc.tokens.estimate_message(nil) end,
    "estimate_message", 1, "message table expected, got nil" },
  { function () local _ = aigc.conversation.estimate_message({}, "x") end,
    "estimate_message", 2, "function expected, got string" },
  { function () local _ = aigc.judge.score(nil) end, "score", 1, "table expected, got nil" },
  { function () local _ = aigc.judge.rank({}) end, "rank", 1, "judge.client: aigc.client expected, got nil" },
  { function (ctx) local _ = aigc.judge.score({ client = ctx.client }, nil, nil, {}) end,
    "score", 3, "string expected, got nil" },
  { function (ctx) local _ = aigc.judge.classify({ client = ctx.client }, "a", "x", "p") end,
    "classify", 2, "table expected, got string" },

  -- stored responses: a query value that is not a scalar (it was sent as "include=table: 0x...")
  { function (ctx) local _ = ctx.client:get_response("resp_1", { include = { {} } }) end,
    "get_response", 2, "opts.include[1]: string, number or boolean expected, got table" },
  { function (ctx) local _ = ctx.client:get_response("resp_1", { include = print }) end,
    "get_response", 2, "opts.include: string, number, boolean or a list of them expected, got function" },

  -- ids that are one path segment: a dot segment is resolved by curl and servers (".." reached /v1/content)
  { function (ctx) local _ = ctx.client:files_content("..") end,
    "files_content", 1, "a file id expected, got '..'" },
  { function (ctx) local _ = ctx.client:files_delete(".") end,
    "files_delete", 1, "a file id expected, got '.'" },
  { function (ctx) local _ = ctx.client:get_response("..") end,
    "get_response", 1, "a response id expected, got '..'" },
  { function (ctx) local _ = ctx.client:cancel_response("..") end,
    "cancel_response", 1, "a response id expected, got '..'" },

  -- schemas, the runner, futures
  { function () local _ = aigc.schema.validate(1, "x") end, "validate", 2, "table expected, got string" },
  { function (ctx) local _ = aigc.runner.run { client = ctx.client, cases = {}, concurency = 2 } end,
    "run", 1, "spec.concurency: unknown option (did you mean concurrency?)" },
  { function (ctx) local _ = aigc.runner.run { client = ctx.client, cases = 5 } end,
    "run", 1, "spec.cases: JSONL path or list of case tables expected, got number" },
  -- (best_of = "x" raised "runner.lua:329: attempt to add a 'string' with a 'number'"; vote = -1
  -- "bad argument #2 to 'estimate'"; best_of = 1e9 ran out of memory in each case)
  { function (ctx) local _ = aigc.runner.run { client = ctx.client, cases = {}, strategy = { best_of = "x" } } end,
    "run", 1, "spec.strategy.best_of: an integer from 1 to 128 expected, got string" },
  { function (ctx) local _ = aigc.runner.run { client = ctx.client, cases = {}, strategy = { vote = -1 } } end,
    "run", 1, "spec.strategy.vote: an integer from 1 to 128 expected, got -1" },
  { function (ctx) local _ = aigc.runner.run { client = ctx.client, cases = {}, strategy = { best_of = 1e9 } } end,
    "run", 1, "spec.strategy.best_of: an integer from 1 to 128 expected, got 1000000000" },
  -- (raised "bad argument #3 to 'wait'" once the batch was made and paid for)
  { function (ctx) local _ = aigc.runner.run { client = ctx.client, cases = {}, backend = "batch",
                                                batch_interval = -1 } end,
    "run", 1, "spec.batch_interval: number of seconds >= 0 expected, got -1" },
  -- (NaN was taken: on_progress then never came before the end)
  { function (ctx) local _ = aigc.runner.run { client = ctx.client, cases = {}, progress_interval = 0 / 0 } end,
    "run", 1, "spec.progress_interval: number of seconds >= 0 expected, got NaN" },
  { function (ctx) local _ = ctx.future:wait(-1) end, "wait", 1, "a number of seconds >= 0 expected, got -1" },
  { function (ctx) local _ = ctx.future:cancel(5) end, "cancel", 1, "string expected, got number" },
}

local function expected_message (c)
  local line = debug.getinfo(c[1], "S").linedefined
  return string.format("%s:%d: bad argument #%d to '%s' (%s)", HERE, line, c[3], c[2], c[4])
end

describe("misuse", function ()
  local srv, client
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end)

  local function context ()
    local ctx = { client = client, tools = aigc.tools { { name = "t", fn = noop } },
                  hot = { messages = msgs(), temperature = "hot" }, bad_n = { messages = msgs(), n = "2" } }
    ctx.conv = aigc.conversation { client = client }
    ctx.future = client:chat_async { messages = msgs(), tools = ctx.tools,
                                     headers = { ["x-aigc-fault"] = "delay=5000" } }
    return ctx
  end

  local function drive (done)
    for _ = 1, 500 do
      if done() then return end
      client:step(0.01)
    end
    error("timed out", 2)
  end

  describe("raises one format at the caller's line, whichever way it is called", function ()
    for _, c in ipairs(CASES) do
      local name = c[2] .. ": " .. c[4]
      it(name, function ()
        local ctx, want = context(), expected_message(c)
        local direct = pack(pcall(c[1], ctx))
        assert.is_false(direct[1], "accepted")
        assert.equal(want, direct[2])
        -- inside a task
        local in_task
        client:spawn(function () in_task = pack(pcall(c[1], ctx)) end)
        drive(function () return in_task ~= nil end)
        assert.is_false(in_task[1])
        assert.equal(want, in_task[2])
        -- inside a request's callback (the driving loop runs it)
        local in_callback
        client:chat_async { messages = msgs(), on_done = function () in_callback = pack(pcall(c[1], ctx)) end }
        drive(function () return in_callback ~= nil end)
        assert.is_false(in_callback[1])
        assert.equal(want, in_callback[2])
        ctx.future:cancel()
        assert(client:chat "still usable")
      end)
    end
  end)

  it("the state misuses say what is wrong, at the caller's line", function ()
    local conv = aigc.conversation { client = client }
    local req = conv:say_async("Hi", { headers = { ["x-aigc-fault"] = "delay=200" } })
    local line = debug.getinfo(1, "l").currentline + 1
    local ok, err = pcall(function () return conv:say "again" end)
    assert.is_false(ok)
    assert.equal(HERE .. ":" .. line .. ": attempt to say: the conversation is busy with another say "
                 .. "(wait for it, or fork)", err)
    assert(req:wait())
    local closed = aigc.client { base_url = srv.base_url }
    closed:close()
    line = debug.getinfo(1, "l").currentline + 1
    ok, err = pcall(function () return closed:chat "Hi" end)
    assert.is_false(ok)
    assert.equal(HERE .. ":" .. line .. ": attempt to use a closed client", err)
    line = debug.getinfo(1, "l").currentline + 1
    ok, err = pcall(function () return client.chat(5, "Hi") end)
    assert.is_false(ok)
    assert.equal(HERE .. ":" .. line .. ": calling 'chat' on bad self (aigc.client expected, got number)", err)
  end)

  it("a C core function called straight from pcall: '?' and #N counting self, on every Lua (README)", function ()
    local r = client:chat_async { messages = msgs() }
    local ok, err = pcall(r.wait, r, -1)
    assert.is_false(ok)
    assert.equal("bad argument #2 to '?' (timeout must be a number >= 0)", err)
    ok, err = pcall(aigc.json.decode, {})
    assert.is_false(ok)
    assert.equal("bad argument #1 to '?' (string expected, got table)", err)
    assert(r:wait())
  end)

  it("client:sleep inside a callback, outside a task, says so at the caller's line; in a task it sleeps", function ()
    local got, line
    client:chat_async { messages = msgs(), on_done = function ()
      line = debug.getinfo(1, "l").currentline + 1
      got = pack(pcall(function () client:sleep(0.01) end))
    end }
    drive(function () return got ~= nil end)
    assert.is_false(got[1])
    assert.equal(HERE .. ":" .. line .. ": client:sleep() called from inside an aigc callback, outside a task: "
                 .. "it would run the loop inside its own callback (sleep in a task, client:spawn, where it "
                 .. "yields; or block with aigc.sleep(s))", got[2])
    -- a stream callback too; and a task started there sleeps as it should
    local slept, req
    req = client:chat_async { messages = msgs(), stream = function ()
      if slept == nil then
        slept = false
        assert.has_error(function () client:sleep(0) end)
        client:spawn(function () client:sleep(0.01); slept = true end)
      end
    end }
    drive(function () return slept == true and req:status() == "done" end)
    assert(client:chat "still usable")
  end)
end)

-- An unknown top-level field one edit away from a known one is sent as it
-- is, and told once: through the client's log, else once on stderr.
describe("likely typos", function ()
  local srv
  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)

  it("are sent, and logged once through the client's log", function ()
    local lines = {}
    local function log (level, msg) lines[#lines + 1] = level .. " " .. msg end
    local c = aigc.client { base_url = srv.base_url, log = log }
    assert(c:chat { messages = msgs(), max_token = 5 })
    assert.equal(5, srv:last().body_json.max_token)
    assert(c:chat { messages = msgs(), max_token = 5, temprature = 1 })
    local typos = {}
    for _, l in ipairs(lines) do if l:find("not a known field", 1, true) then typos[#typos + 1] = l end end
    assert.same({ "warn params.max_token is not a known field (did you mean max_tokens?): sent as it is",
                  "warn params.temprature is not a known field (did you mean temperature?): sent as it is" }, typos)
    -- a field that is no known name's neighbour passes silently
    assert(c:chat { messages = msgs(), grammar = "root ::= x" })
    assert.equal(2, #typos)
    c:close()
  end)

  -- What fn writes to io.stderr (aigc writes there without a log: caught here).
  local function stderr_of (fn)
    local written = {}
    local real = io.stderr
    local function write (_, ...)
      for i = 1, select("#", ...) do written[#written + 1] = select(i, ...) end
    end
    io.stderr = { write = write }   -- luacheck: ignore 122
    local ok, err = pcall(fn)
    io.stderr = real   -- luacheck: ignore 122
    assert(ok, err)
    return table.concat(written)
  end

  it("are told once per process on stderr without a log", function ()
    local written = stderr_of(function ()
      local c = aigc.client { base_url = srv.base_url }
      assert(c:chat { messages = msgs(), presense_penalty = 0 })
      assert(c:chat { messages = msgs(), presense_penalty = 0 })
      c:close()
    end)
    assert.equal("aigc: warning: params.presense_penalty is not a known field (did you mean presence_penalty?): "
                 .. "sent as it is\n", written)
  end)

  -- (a key one edit from "model" holding ESC and a BEL: an OSC title sequence would
  -- reach the terminal raw; shown as Lua escapes, as error messages are)
  it("a key's control characters are escaped, on stderr and in the log", function ()
    local lines = {}
    local written = stderr_of(function ()
      local c = aigc.client { base_url = srv.base_url }
      assert(c:chat { messages = msgs(), ["mod\27l"] = 1 })
      c:close()
      c = aigc.client { base_url = srv.base_url, log = function (_, m) lines[#lines + 1] = m end }
      assert(c:chat { messages = msgs(), ["tem\7perature"] = 1 })
      c:close()
    end)
    assert.equal("aigc: warning: params[\"mod\\27l\"] is not a known field (did you mean model?): "
                 .. "sent as it is\n", written)
    local typo
    for _, l in ipairs(lines) do if l:find("not a known field", 1, true) then typo = l end end
    assert.equal("params[\"tem\\7perature\"] is not a known field (did you mean temperature?): sent as it is", typo)
  end)

  it("a log function that raises: its error is reported once, the call goes on", function ()
    local reported = {}
    local c = aigc.client { base_url = srv.base_url, log = function () error("log broke") end,
                            error_handler = function (e) reported[#reported + 1] = e end }
    assert(c:chat { messages = msgs(), seeed = 1 })
    assert.is_true(#reported >= 1)
    local found = false
    for _, e in ipairs(reported) do if tostring(e.message):find("log broke", 1, true) then found = true end end
    assert.is_true(found)
    c:close()
  end)
end)
