-- The hostile caller: every public function and method called with wrong
-- receivers, wrong types and absurd values. DESIGN.md "Errors": misuse
-- raises, with a one-line message that names the argument or the option,
-- and never crashes (a crash kills busted, so this file runs whole or not
-- at all; the one crash found so far is checked in a child process); the
-- client stays usable afterwards. No secret ever appears in a message.
-- Odd values that are valid (a finished request, step(inf), bad JSON text)
-- get sane answers, checked at the end.
local aigc = require "aigc"
local devserver = require "devserver"
local portable = require "portable"
local proc = require "procutil"

portable.warn_on()

-- Integers of 5.3/5.4 where they exist (a double elsewhere, same value).
local int = portable.tointeger
local MININTEGER = rawget(math, "mininteger") or -2 ^ 63
local MAXINTEGER = rawget(math, "maxinteger") or 2 ^ 53
local unpack, pack = portable.unpack, require("aigc.compat").pack

local SECRET = "sk-hostile-SECRET-9d2e41"
local NAN = 0 / 0
local INF = math.huge
local HI = { { role = "user", content = "Hi" } }
local function NOP () end

-- A params table with messages and the given extra fields.
local function P (extra)
  local p = { messages = HI }
  for k, v in pairs(extra or {}) do p[k] = v end
  return p
end

local function callable (fn) return setmetatable({}, { __call = fn }) end

-- What a case may use: a live client, a closed one, a finished request, a
-- failed call's error, other objects of every type.
local function context (srv)
  local ctx = { srv = srv }
  ctx.client = aigc.client { base_url = srv.base_url, api_key = SECRET, model = "aigc-dev", max_retries = 0 }
  ctx.closed = aigc.client { base_url = srv.base_url, max_retries = 0 }
  ctx.closed:close()
  ctx.done = ctx.client:chat_async "Hi"
  assert(ctx.done:wait())
  local _, err = ctx.client:chat(P { headers = { ["x-aigc-fault"] = "status=400" } })
  ctx.err = assert(err)
  return ctx
end

-- {======================================================
-- The cases: { name, call(ctx), patterns every message must match }
-- =======================================================

local CASES = {}
local function raises (name, patterns, call)
  if type(patterns) == "string" then patterns = { patterns } end
  CASES[#CASES + 1] = { name = name, patterns = patterns, call = call }
end

-- Values of every type, for receivers.
local function bad_values (ctx, expect_type)
  local v = {
    { "nil", nil }, { "a number", 5 }, { "NaN", NAN }, { "a string", "aigc" }, { "an empty table", {} },
    { "a function", print }, { "a coroutine", coroutine.create(NOP) }, { "io.stdout", io.stdout },
  }
  if expect_type ~= "client" then v[#v + 1] = { "a client", ctx.client } end
  if expect_type ~= "request" then v[#v + 1] = { "a request", ctx.done } end
  v[#v + 1] = { "client._engine", ctx.client._engine }
  return v
end

-- Every client method, with valid arguments.
local CLIENT_METHODS = {
  { "chat", function () return "Hi" end },
  { "complete", function () return "Hi" end },
  { "chat_async", function () return "Hi" end },
  { "complete_async", function () return "Hi" end },
  { "stream", function () return "Hi" end },
  { "models", function () end },
  { "embeddings", function () return { input = "Hi" } end },
  { "request", function () return "GET", "/models" end },
  { "step", function () return 0 end },
  { "spawn", function () return function () end end },
  { "sleep", function () return 0.001 end },
  { "active", function () end },
  { "close", function () end },
  { "watch", function () return function () end, function () end end },
  { "act", function () end },
  { "sockets", function () end },
  { "timeout", function () end },
}
local RECEIVER_NAMES = { "nil", "a number", "NaN", "a string", "an empty table", "a function", "a coroutine",
                         "io.stdout", "a request", "client._engine" }

for _, m in ipairs(CLIENT_METHODS) do
  local method, args = m[1], m[2]
  for i, rname in ipairs(RECEIVER_NAMES) do
    raises(("client:%s on %s"):format(method, rname), { "aigc%.client expected", method }, function (ctx)
      local recv = bad_values(ctx, "client")
      for _, v in ipairs(recv) do
        if v[1] == RECEIVER_NAMES[i] then
          return ctx.client[method](v[2], args())
        end
      end
      error("no receiver " .. rname)
    end)
  end
end

local REQUEST_METHODS = { { "status" }, { "result" }, { "wait", 0 }, { "cancel" }, { "pump", 0 } }
local REQ_RECEIVERS = { "nil", "a number", "NaN", "a string", "an empty table", "a function", "a coroutine",
                        "io.stdout", "a client", "client._engine" }
for _, m in ipairs(REQUEST_METHODS) do
  for _, rname in ipairs(REQ_RECEIVERS) do
    raises(("request:%s on %s"):format(m[1], rname), "aigc%.request expected", function (ctx)
      for _, v in ipairs(bad_values(ctx, "request")) do
        if v[1] == rname then return ctx.done[m[1]](v[2], m[2]) end
      end
      error("no receiver " .. rname)
    end)
  end
end

for _, v in ipairs { { "nil", nil }, { "a number", 5 }, { "a string", "x" }, { "a function", print },
                     { "io.stdout", io.stdout } } do
  raises("error __tostring on " .. v[1], "table expected", function (ctx)
    return getmetatable(ctx.err).__tostring(v[2])
  end)
end

-- aigc.client options ---------------------------------------------------

local function client_with (opts)
  return function (ctx)
    local o = { base_url = ctx.srv.base_url }
    for k, v in pairs(opts) do o[k] = v end
    return aigc.client(o)
  end
end

for _, v in ipairs { { "a number", 5 }, { "a string", "http://127.0.0.1:1/v1" }, { "true", true },
                     { "a function", print }, { "a coroutine", coroutine.create(NOP) },
                     { "io.stdout", io.stdout }, { "NaN", NAN } } do
  raises("aigc.client(" .. v[1] .. ")", { "bad argument #1 to 'client'", "table expected" }, function ()
    return aigc.client(v[2])
  end)
end
raises("aigc.client with an unknown option", "%(opts.bogus: unknown option%)", client_with { bogus = 1 })
raises("aigc.client with an array part", "%(opts%[1%]: unknown option%)", client_with { [1] = "x" })

for _, field in ipairs { "timeout", "connect_timeout" } do
  for _, v in ipairs { { "-1", -1 }, { "0", 0 }, { "NaN", NAN }, { "inf", INF }, { "-inf", -INF },
                       { "1e300", 1e300 }, { "a string", "1" }, { "a table", {} } } do
    raises(("aigc.client{%s = %s}"):format(field, v[1]), field, client_with { [field] = v[2] })
  end
end
for _, field in ipairs { "max_retries", "max_concurrency", "max_response_bytes" } do
  for _, v in ipairs { { "-1", -1 }, { "1.5", 1.5 }, { "NaN", NAN }, { "inf", INF }, { "-inf", -INF },
                       { "1e300", 1e300 }, { "2^62", int(2 ^ 62) }, { "math.mininteger", MININTEGER },
                       { "a string", "2" }, { "io.stdout", io.stdout } } do
    raises(("aigc.client{%s = %s}"):format(field, v[1]), field, client_with { [field] = v[2] })
  end
end
raises("aigc.client{max_retries = 101}", "max_retries", client_with { max_retries = 101 })
raises("aigc.client{max_response_bytes = 0}", "max_response_bytes", client_with { max_response_bytes = 0 })

for _, v in ipairs { { "ftp://", "ftp://127.0.0.1/v1" }, { "file:///", "file:///etc/passwd" },
                     { "javascript:", "javascript:alert(1)" }, { "empty", "" }, { "no host", "http://" },
                     { "no scheme", "127.0.0.1:8080/v1" }, { "CR/LF", "http://127.0.0.1:1/v1\r\nX-Evil: 1" },
                     { "a NUL", "http://127.0.0.1:1\0/v1" }, { "a space", "http://127.0.0.1:1 /v1" },
                     { "a number", 5 } } do
  raises("aigc.client{base_url = " .. v[1] .. "}", "base_url", function ()
    return aigc.client { base_url = v[2] }
  end)
end

for _, v in ipairs { { "CR/LF", SECRET .. "\r\nX-Evil: 1" }, { "LF", SECRET .. "\n" }, { "NUL", SECRET .. "\0" },
                     { "a number", 5 }, { "a table", {} } } do
  raises("aigc.client{api_key with " .. v[1] .. "}", "api_key", client_with { api_key = v[2] })
end
raises("aigc.client{organization with CR/LF}", "[Oo]rganization", client_with { organization = "o\r\nX: y" })
raises("aigc.client{project with LF}", "[Pp]roject", client_with { project = "p\nX: y" })
raises("aigc.client{model with a NUL}", "model", client_with { model = "m\0x" })
raises("aigc.client{model = 5}", "model", client_with { model = 5 })
raises("aigc.client{proxy with a NUL}", "proxy", client_with { proxy = "http://p\0x" })
raises("aigc.client{ca_file = true}", "ca_file", client_with { ca_file = true })
raises("aigc.client{insecure = 'yes'}", "insecure", client_with { insecure = "yes" })
raises("aigc.client{log = 'stderr'}", "log", client_with { log = "stderr" })
raises("aigc.client{error_handler = 5}", "error_handler", client_with { error_handler = 5 })
raises("aigc.client{provider = 'evil'}", "provider", client_with { provider = "evil" })
raises("aigc.client{azure_ad_token with CR/LF}", "opts%.azure_ad_token: contains CR, LF or NUL", function ()
  return aigc.client { azure = true, endpoint = "http://127.0.0.1:1", api_version = "2024-06-01",
                       azure_ad_token = "t\r\nX-Evil: 1" }
end)
raises("aigc.client{query = 'a=b'}", "query", client_with { query = "a=b" })
raises("aigc.client{query with a number key}", "query", client_with { query = { [1] = "x" } })
raises("aigc.client{query with a table value}", "query", client_with { query = { a = {} } })
raises("aigc.client{headers = 'X: y'}", "headers", client_with { headers = "X: y" })

local BAD_HEADERS = {
  { "CR/LF in a value", { ["X-A"] = "a\r\nX-Evil: 1" } },
  { "LF in a value", { ["X-A"] = "a\nb" } },
  { "NUL in a value", { ["X-A"] = "a\0b" } },
  { "CR/LF in a name", { ["X-A\r\nX-Evil"] = "1" } },
  { "NUL in a name", { ["X\0A"] = "1" } },
  { "a colon in a name", { ["X:A"] = "1" } },
  { "a space in a name", { ["X A"] = "1" } },
  { "an empty name", { [""] = "1" } },
  { "a number name", { [5] = "1" } },
  { "a table value", { ["X-A"] = {} } },
  { "a boolean value", { ["X-A"] = true } },
  { "a function value", { ["X-A"] = print } },
}
for _, h in ipairs(BAD_HEADERS) do
  raises("aigc.client{headers with " .. h[1] .. "}", "header", client_with { headers = h[2] })
  raises("client:chat{headers with " .. h[1] .. "}", "header", function (ctx)
    return ctx.client:chat(P { headers = h[2] })
  end)
end
raises("client:chat{extra_headers with CR/LF}", "header", function (ctx)
  return ctx.client:chat(P { extra_headers = { ["X-A"] = "a\r\nX-Evil: 1" } })
end)
raises("client:chat_async{headers with CR/LF}", "header", function (ctx)
  return ctx.client:chat_async(P { headers = { ["X-A"] = "a\r\nX-Evil: 1" } })
end)

-- aigc.array, aigc.json ----------------------------------------------------

for _, v in ipairs { { "a number", 5 }, { "a string", "x" }, { "true", true }, { "a function", print },
                     { "a coroutine", coroutine.create(NOP) }, { "io.stdout", io.stdout } } do
  raises("aigc.array(" .. v[1] .. ")", { "bad argument #1 to 'array'", "table expected" }, function ()
    return aigc.array(v[2])
  end)
end
raises("aigc.array on a table with a protected metatable", "metatable", function ()
  return aigc.array(setmetatable({}, { __metatable = "locked" }))
end)
raises("aigc.array on a table that has another metatable", "metatable", function ()
  return aigc.array(setmetatable({}, { __index = function () return 1 end }))
end)

raises("aigc.json.encode()", "bad argument #1 to 'encode'", function () return aigc.json.encode() end)
local cycle = {}
cycle.self = cycle
local deep = {}
for _ = 1, 100000 do deep = { deep } end
for _, v in ipairs {
  { "a function", print, "function" }, { "a coroutine inside", { a = { coroutine.create(NOP) } }, "value%.a%[1%]" },
  { "io.stdout", io.stdout, "userdata" }, { "NaN", NAN, "NaN" }, { "inf", INF, "infinite" },
  { "-inf", -INF, "infinite" }, { "a cycle", cycle, "cycle" }, { "a boolean key", { [true] = 1 }, "key" },
  { "a float key", { [1.5] = 1 }, "key" }, { "a sparse array", { 1, nil, 3 }, "sparse" },
  { "invalid UTF-8", { s = "a\255" }, "UTF%-8" }, { "100,000 levels of nesting", deep, "nesting" },
} do
  raises("aigc.json.encode(" .. v[1] .. ")", { "value", v[3] }, function () return aigc.json.encode(v[2]) end)
end
raises("aigc.json.encode(a client)", "value", function (ctx) return aigc.json.encode(ctx.client) end)
raises("aigc.json.encode(client._engine)", "value", function (ctx) return aigc.json.encode(ctx.client._engine) end)
raises("aigc.json.encode(a request)", "value", function (ctx) return aigc.json.encode(ctx.done) end)
for _, v in ipairs { { "nothing" }, { "nil", nil, true }, { "a table", {} }, { "a function", print },
                     { "io.stdout", io.stdout }, { "a coroutine", coroutine.create(NOP) } } do
  raises("aigc.json.decode(" .. v[1] .. ")", "bad argument #1 to 'decode'", function ()
    if v[1] == "nothing" then return aigc.json.decode() end
    return aigc.json.decode(v[2])
  end)
end

-- Call parameters -------------------------------------------------------

for _, fn in ipairs { "chat", "chat_async", "stream" } do
  for _, v in ipairs { { "nil", nil }, { "a number", 5 }, { "true", true }, { "a function", print },
                       { "a coroutine", coroutine.create(NOP) }, { "io.stdout", io.stdout } } do
    raises(("client:%s(%s)"):format(fn, v[1]), { "bad argument #1 to '" .. fn .. "'", "expected" }, function (ctx)
      return ctx.client[fn](ctx.client, v[2])
    end)
  end
  for _, v in ipairs { { "{}", {} }, { "messages = 'Hi'", { messages = "Hi" } },
                       { "messages = 5", { messages = 5 } } } do
    raises(("client:%s{%s}"):format(fn, v[1]), "params%.messages", function (ctx)
      return ctx.client[fn](ctx.client, v[2])
    end)
  end
end
for _, fn in ipairs { "complete", "complete_async" } do
  for _, v in ipairs { { "nil", nil }, { "a number", 5 }, { "a function", print }, { "io.stdout", io.stdout } } do
    raises(("client:%s(%s)"):format(fn, v[1]), { "bad argument #1 to '" .. fn .. "'", "expected" }, function (ctx)
      return ctx.client[fn](ctx.client, v[2])
    end)
  end
  for _, v in ipairs { { "{}", {} }, { "prompt = 5", { prompt = 5 } }, { "prompt = true", { prompt = true } } } do
    raises(("client:%s{%s}"):format(fn, v[1]), "params%.prompt", function (ctx)
      return ctx.client[fn](ctx.client, v[2])
    end)
  end
end

-- Per-call options, through every call that takes them.
local CALL_OPTIONS = {
  { "stream", { 5, "yes", {}, io.stdout, coroutine.create(NOP) } },
  { "on_done", { 5, "f", {}, io.stdout } },
  { "on_error", { 5, "f", {}, io.stdout } },
  { "timeout", { -1, 0, NAN, INF, -INF, 1e300, "soon", {} } },
  { "connect_timeout", { -1, 0, NAN, INF, "x" } },
  { "max_retries", { -1, 1.5, NAN, INF, 1e300, 101, "x" } },
  { "max_response_bytes", { 0, -1, NAN, INF, int(2 ^ 41), "x" } },
  { "headers", { "X-A: 1", 5 } },
  { "query", { "a=b", { a = {} }, { [1] = "x" } } },
  { "idempotency_key", { 5, {}, "k\r\nX-Evil: 1" } },
}
local function show (v)
  if type(v) == "string" then return string.format("%q", v):gsub("\\\n", "\\n") end
  if v ~= v then return "NaN" end
  return tostring(v):gsub(": 0x%x+", "")
end
for _, opt in ipairs(CALL_OPTIONS) do
  local name, values = opt[1], opt[2]
  local pattern = (name == "headers" or name == "query") and name
                  or name == "idempotency_key" and "[Ii]dempotency"
                  or "params%." .. name
  for _, v in ipairs(values) do
    raises(("client:chat{%s = %s}"):format(name, show(v)), pattern, function (ctx)
      return ctx.client:chat(P { [name] = v })
    end)
  end
  raises(("client:chat_async{%s = %s}"):format(name, show(values[1])), pattern, function (ctx)
    return ctx.client:chat_async(P { [name] = values[1] })
  end)
  raises(("client:complete{%s = %s}"):format(name, show(values[1])), pattern, function (ctx)
    return ctx.client:complete { prompt = "x", [name] = values[1] }
  end)
end
raises("client:stream{stream = 5}", "params%.stream", function (ctx) return ctx.client:stream(P { stream = 5 }) end)
raises("client:embeddings{timeout = -1}", "params%.timeout", function (ctx)
  return ctx.client:embeddings { input = "x", timeout = -1 }
end)

-- Values the JSON body cannot carry, named by their path.
for _, v in ipairs {
  { "a function as content", P { messages = { { role = "user", content = print } } },
    "params%.messages%[1%]%.content" },
  { "NaN temperature", P { temperature = NAN }, "params%.temperature" },
  { "inf max_tokens", P { max_tokens = INF }, "params%.max_tokens" },
  { "invalid UTF-8 content", P { messages = { { role = "user", content = "a\255b" } } }, "params%.messages%[1%]" },
  { "io.stdout as user", P { user = io.stdout }, "params%.user" },
  { "a coroutine in metadata", P { metadata = { co = coroutine.create(NOP) } }, "params%.metadata%.co" },
  { "a cycle", P { metadata = cycle }, "cycle" },
  { "a client as a field", nil, "params%.extra" },
} do
  raises("client:chat with " .. v[1], v[3], function (ctx)
    return ctx.client:chat(v[2] or P { extra = ctx.client })
  end)
end

for _, v in ipairs { { "nil", nil }, { "a number", 5 }, { "io.stdout", io.stdout } } do   -- (a string is the input)
  raises("client:embeddings(" .. v[1] .. ")", { "bad argument #1 to 'embeddings'", "table expected" }, function (ctx)
    return ctx.client:embeddings(v[2])
  end)
end

for _, v in ipairs {
  { "(nil, '/models')", { nil, "/models" }, "method" },
  { "('DELETE', '/models')", { "DELETE", "/models" }, "method" },
  { "('get', '/models')", { "get", "/models" }, "method" },
  { "(5)", { 5 }, "method" },
  { "('GET', nil)", { "GET", nil }, "bad argument #2 to 'request' %(string expected, got nil%)" },
  { "('GET', 5)", { "GET", 5 }, "bad argument #2 to 'request' %(string expected, got number%)" },
  { "('GET', {})", { "GET", {} }, "bad argument #2 to 'request' %(string expected, got table%)" },
  { "('POST', '/x', 'body')", { "POST", "/embeddings", "body" }, "bad argument #3" },
  { "('POST', '/x')", { "POST", "/embeddings" }, "bad argument #3" },
  { "('GET', path with CR/LF)", { "GET", "/models\r\nX-Evil: 1" }, "path" },
  { "('GET', path with a NUL)", { "GET", "/models\0/../../admin" }, "path" },
} do
  raises("client:request" .. v[1], v[3], function (ctx)
    return ctx.client:request(unpack(v[2], 1, 3))
  end)
end

for _, v in ipairs {
  { "('soon')", { "soon" }, "bad argument #1 to 'step'" },
  { "({})", { {} }, "bad argument #1 to 'step'" },
  { "(-1)", { -1 }, "bad argument #1 to 'step' %(a number of seconds >= 0 expected, got %-1%)" },
  { "(NaN)", { NAN }, "bad argument #1 to 'step' %(a number of seconds >= 0 expected, got NaN%)" },
  { "(-inf)", { -INF }, "bad argument #1 to 'step' %(a number of seconds >= 0 expected, got %-inf%)" },
  { "(0, -1)", { 0, -1 }, "bad argument #2 to 'step' %(an integer >= 0 expected, got %-1%)" },
  { "(0, 1.5)", { 0, 1.5 }, "bad argument #2 to 'step'" },
  { "(0, NaN)", { 0, NAN }, "bad argument #2 to 'step'" },
  { "(0, inf)", { 0, INF }, "bad argument #2 to 'step'" },
  { "(0, 'all')", { 0, "all" }, "bad argument #2 to 'step'" },
} do
  raises("client:step" .. v[1], v[3], function (ctx) return ctx.client:step(v[2][1], v[2][2]) end)
end

for _, v in ipairs { { "nil", nil }, { "a number", 5 }, { "a string", "f" }, { "a table", {} },
                     { "a coroutine", coroutine.create(NOP) }, { "io.stdout", io.stdout } } do
  raises("client:spawn(" .. v[1] .. ")", { "bad argument #1 to 'spawn'", "function expected" }, function (ctx)
    return ctx.client:spawn(v[2])
  end)
end
for _, v in ipairs { { "nil", nil }, { "-1", -1 }, { "NaN", NAN }, { "-inf", -INF }, { "a string", "1" },
                     { "a table", {} } } do
  raises("client:sleep(" .. v[1] .. ")", { "bad argument #1 to 'sleep'", "seconds" }, function (ctx)
    return ctx.client:sleep(v[2])
  end)
end
for _, v in ipairs { { "(nil, fn)", { nil, print } }, { "(fn, nil)", { print, nil } }, { "(5, fn)", { 5, print } },
                     { "(fn, 'x')", { print, "x" } }, { "(io.stdout, fn)", { io.stdout, print } } } do
  raises("client:watch" .. v[1], { "bad argument #%d to 'watch'", "function expected" }, function (ctx)
    return ctx.client:watch(v[2][1], v[2][2])
  end)
end
for _, v in ipairs {
  { "('x')", { "x" }, "bad argument #1 to 'act'" }, { "(-1)", { -1 }, "file descriptor" },
  { "(1.5)", { 1.5 }, "bad argument #1 to 'act'" }, { "(NaN)", { NAN }, "bad argument #1 to 'act'" },
  { "(inf)", { INF }, "bad argument #1 to 'act'" }, { "(2^40)", { int(2 ^ 40) }, "file descriptor" },
  { "(0, {})", { 0, {} }, "bad argument #2 to 'act'" }, { "(0, print)", { 0, print }, "bad argument #2 to 'act'" },
} do
  raises("client:act" .. v[1], v[3], function (ctx) return ctx.client:act(v[2][1], v[2][2]) end)
end

-- Request methods' arguments, on a pending request and a finished one.
for _, which in ipairs { "pending", "finished" } do
  local function req_of (ctx)
    if which == "finished" then return ctx.done end
    return ctx.client:chat_async(P { headers = { ["x-aigc-fault"] = "delay=50" } })
  end
  for _, v in ipairs { { "-1", -1 }, { "NaN", NAN }, { "-inf", -INF }, { "a string", "soon" }, { "a table", {} } } do
    raises(("%s request:wait(%s)"):format(which, v[1]), "bad argument #1 to 'wait'", function (ctx)
      return req_of(ctx):wait(v[2])
    end)
    raises(("%s request:pump(%s)"):format(which, v[1]), "bad argument #1 to 'pump'", function (ctx)
      return req_of(ctx):pump(v[2])
    end)
  end
  raises(which .. " request:cancel({})", "bad argument #1 to 'cancel'", function (ctx)
    return req_of(ctx):cancel {}
  end)
end

-- Everything on a closed client raises (close itself is idempotent; act()
-- does nothing and returns 0: an external loop may still hold events for
-- it, see watch_spec).
for _, m in ipairs(CLIENT_METHODS) do
  local method, args = m[1], m[2]
  if method ~= "close" and method ~= "act" then
    raises("client:" .. method .. " on a closed client", "closed client", function (ctx)
      local a = pack(args())
      if method == "sleep" then a[1] = 0.01 end
      return ctx.closed[method](ctx.closed, unpack(a, 1, a.n))
    end)
  end
end

-- A conversation on a closed client: say raised (from its call), say_async
-- handed back a failed future; both raise, as chat and chat_async do.
for _, method in ipairs { "say", "say_async" } do
  raises("conversation:" .. method .. " on a closed client", "attempt to use a closed client", function (ctx)
    local conv = aigc.conversation { client = ctx.closed }
    return conv[method](conv, "Hi")
  end)
end

-- req:wait() is wrapped in Lua (inside a task it yields): the wrapper
-- must check its receiver and argument as the C method does.
for _, v in ipairs { { "a number", 5 }, { "a client", "client" }, { "a table", {} } } do
  raises("request:wait on " .. v[1] .. " inside a task", "aigc%.request expected", function (ctx)
    local out
    ctx.client:spawn(function ()
      local recv = v[2] == "client" and ctx.client or v[2]
      out = pack(pcall(ctx.done.wait, recv))
    end)
    assert(out, "the task did not run")
    assert(not out[1], "accepted")
    error(out[2], 0)
  end)
end
raises("request:wait(-1) inside a task", "bad argument #1 to 'wait'", function (ctx)
  local out
  ctx.client:spawn(function ()
    local r = ctx.client:chat_async "Hi"
    out = pack(pcall(function () return r:wait(-1) end))
  end)
  assert(out and not out[1], "accepted")
  error(out[2], 0)
end)

-- Re-entrant calls from inside callbacks.
raises("client:step() inside a stream callback", "step", function (ctx)
  local _, err = ctx.client:chat(P { stream = function () ctx.client:step() end })
  error(err)   -- the callback's error fails the request: kind "callback"
end)
raises("req:wait() inside its own stream callback", "cannot wait", function (ctx)
  local req
  req = ctx.client:chat_async(P { stream = function () req:wait() end })
  local _, err = req:wait()
  assert(err.kind == "callback", "kind " .. tostring(err.kind))
  error(err.message)
end)

-- }======================================================


describe("a hostile caller", function ()
  local srv, ctx

  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)
  before_each(function () ctx = context(srv) end)
  after_each(function () ctx.client:close() end)

  -- A valid call on this client, and on a fresh one, still works.
  local function still_usable (client, n)
    local want = "usable " .. n
    local res, err = client:chat("Repeat after me: " .. want)
    assert.is_nil(err, err and tostring(err))
    assert.equal(want, res.text)
    portable.with_close(aigc.client { base_url = srv.base_url, max_retries = 0 }, "close", function (fresh)
      assert.equal(want, assert(fresh:chat("Repeat after me: " .. want)).text)
    end)
  end

  -- LuaJIT names a C function reached by a tail call (these cases' `return
  -- f(...)`) after what its caller called ('?' under pcall), and so cannot
  -- shift #N for a method: for the C core's own argument checks the
  -- message there is "bad argument #N to '<the caller's name>' (...)"
  -- (README: what differs between the Lua versions). The rest is checked.
  local TAIL_NAMED = portable.version == "jit"
    and { "^aigc%.array%(", "^aigc%.json%.decode%(", "^aigc%.json%.encode%(%)$", "request:cancel%(",
          "request:pump%(", "request:wait%(" } or {}
  local function tail_named (name)
    for _, p in ipairs(TAIL_NAMED) do if name:find(p) then return true end end
    return false
  end

  describe("misuse raises, naming the argument", function ()
    for i, c in ipairs(CASES) do
      it(c.name, function ()
        local ok, msg = pcall(c.call, ctx)
        assert.is_false(ok, "accepted: " .. c.name .. " (returned " .. tostring(msg) .. ")")
        if type(msg) ~= "string" then msg = tostring(msg) end
        for _, pattern in ipairs(c.patterns) do
          if tail_named(c.name) then
            pattern = pattern:gsub("^bad argument #%d to '[%w_]+'", "bad argument #%%d to '[^']*'")
          end
          assert.matches(pattern, msg)
        end
        assert.is_nil(msg:find(SECRET, 1, true), "the message shows the API key")
        assert.is_nil(msg:find("[\r\n]"), "the message is not one line: " .. show(msg))
        still_usable(ctx.client, i)
      end)
    end
  end)

  describe("odd but valid values", function ()
    it("a finished request answers every method without raising", function ()
      local r = ctx.done
      local res = r:result()
      assert.equal("done", r:status())
      assert.is_true(rawequal(res, (r:wait())))
      assert.is_true(rawequal(res, (r:wait(0))))
      assert.is_true(rawequal(res, (r:wait(INF))))
      assert.equal("done", r:pump(0))
      assert.equal("done", r:pump(INF))
      assert.is_false(r:cancel())
      assert.is_false(r:cancel("again"))
      assert.equal("done", r:status())
      assert.matches("^aigc%.request %(done, chat%)", tostring(r))
    end)

    it("a canceled request stays canceled", function ()
      local r = ctx.client:chat_async(P { headers = { ["x-aigc-fault"] = "delay=200" } })
      assert.is_true(r:cancel(123))   -- a number is a string to Lua
      assert.is_false(r:cancel())
      local res, err = r:wait(INF)
      assert.is_nil(res)
      assert.equal("canceled", err.kind)
      assert.equal("123", err.message)
      assert.equal("canceled", r:pump(0))
      still_usable(ctx.client, "canceled")
    end)

    it("a request of a closed client is canceled and never blocks", function ()
      local c = aigc.client { base_url = srv.base_url, max_retries = 0 }
      local r = c:chat_async(P { headers = { ["x-aigc-fault"] = "hang" } })
      c:close()
      c:close()   -- idempotent
      assert.equal("canceled", r:status())
      local res, err = r:wait()
      assert.is_nil(res)
      assert.equal("canceled", err.kind)
      assert.equal("canceled", r:pump(INF))
      assert.is_false(r:cancel())
    end)

    it("step(inf) with a request in flight returns once it is over", function ()
      local r = ctx.client:chat_async "Hi"
      local turns = 0
      while r:status() ~= "done" do
        ctx.client:step(INF, MAXINTEGER)
        turns = turns + 1
        assert.truthy(turns < 100)
      end
      assert(r:result())
    end)

    it("json.decode returns nil and a message for bad text, never raises", function ()
      for _, s in ipairs { "", "{", ("["):rep(100000) .. ("]"):rep(100000), "1e400", '"\255"', "\0" } do
        local v, msg = aigc.json.decode(s)
        assert.is_nil(v)
        assert.matches("^invalid JSON at byte %d+", msg)
      end
    end)

    it("aigc.is_error is false for anything but an error, never raises", function ()
      for _, v in ipairs { 5, "aigc: error", {}, io.stdout, print, coroutine.create(NOP), ctx.client,
                           ctx.done, ctx.client._engine, aigc.null, setmetatable({}, { __index = error }) } do
        assert.is_false(aigc.is_error(v))
      end
      assert.is_false(aigc.is_error(nil))
      assert.is_true(aigc.is_error(ctx.err))
    end)

    it("tostring(err) stays one line whatever its fields hold", function ()
      local mutations = {
        { message = "a\rb" }, { message = "first line\r\nsecond line" }, { message = "a\nb" },
        { message = {} }, { message = false }, { message = 42 }, { message = ("x"):rep(200) },
        { kind = {} }, { kind = "x\r\ny" }, { status = NAN }, { status = "4\r\n00" }, { status = {} },
        { code = "c\r\nX-Evil: 1" }, { request_id = "req\n1" }, { request_id = print },
      }
      local bad = {}
      for _, m in ipairs(mutations) do
        local e = setmetatable({}, getmetatable(ctx.err))
        for k, v in pairs(ctx.err) do e[k] = v end
        local key, value = next(m)
        e[key] = value
        local line = tostring(e)
        if not line:find("^aigc: ") or line:find("[\r\n]") then
          bad[#bad + 1] = key .. " = " .. show(value) .. " -> " .. show(line)
        end
      end
      assert.same({}, bad)
    end)

    -- In a child process: if this crashes, it must not take busted down.
    it("tostring(err) of an error with fields over 1 kB does not crash", function ()
      local script = [[
        local core = require "aigc.core"
        for _, n in ipairs { 1000, 2000, 65536, 2 ^ 20 } do
          local big = ("x"):rep(n)
          local e = core.error { kind = "api", message = big, code = big, request_id = big, status = big }
          local line = tostring(e)   -- bounded since issue 10: fields cut with "…"
          assert(#line > 600 and #line < 1000, "not bounded: " .. #line)
          collectgarbage()
        end
        io.write("ok")
      ]]
      local ok, out = proc.sh(proc.lua_command() .. " -e " .. proc.quote(script))
      assert.equal("ok", out)
      assert.is_true(ok, "the child process failed")
    end)

    it("a callable table as the stream callback is called, or refused", function ()
      local calls = 0
      local ok, res = pcall(ctx.client.chat, ctx.client, P { stream = callable(function () calls = calls + 1 end) })
      if ok then
        assert.equal("Hello! How can I help you today?", res.text)
        assert.truthy(calls > 0, "accepted, then never called")
      else
        assert.matches("params%.stream", res)
      end
    end)

    it("a callable table as on_done / on_error is called, or refused", function ()
      for _, slot in ipairs { "on_done", "on_error" } do
        local calls = 0
        local p = P { [slot] = callable(function () calls = calls + 1 end) }
        if slot == "on_error" then p.headers = { ["x-aigc-fault"] = "status=400" } end
        local ok, req = pcall(ctx.client.chat_async, ctx.client, p)
        if ok then
          req:wait()
          assert.equal(1, calls, slot .. " accepted, then never called")
        else
          assert.matches("params%." .. slot, req)
        end
      end
    end)

    it("an unknown fd given to act() does not crash and changes nothing", function ()
      assert.equal(0, ctx.client:act(1, "r"))
      assert.equal(0, ctx.client:act(0, "rwe"))
      assert.equal(0, ctx.client:act())
      still_usable(ctx.client, "act")
    end)
  end)
end)
