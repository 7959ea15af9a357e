-- The Lua-version parity probe (spec/parity_spec.lua runs it): the same
-- program, against the same bundled server, under each Lua. It prints one
-- line per case, `name<TAB>canonical value`, that the spec compares between
-- interpreters. Run: LUA spec/support/parity_probe.lua BASE_URL SEED
-- (with LUA_PATH / LUA_CPATH set to this checkout's lua/ and its build).
--
-- Canonical values: tables with their keys sorted (each key shown with its
-- type), numbers as %.17g (so 2 and 2.0 read the same: the integer subtype
-- is the language's difference, not aigc's), -0, inf and nan by name, the
-- array mark shown, aigc.null as `null`, errors as their fields, raised
-- messages with their `file:line:` position removed. What varies from run
-- to run (ids, times, request ids) is replaced by a placeholder.
local aigc = require "aigc"

local base_url, seed = arg[1], tonumber(arg[2] or "1")
local json = aigc.json

-- A portable PRNG (math.random differs between the Luas): Park-Miller,
-- exact in doubles and in integers.
local state = seed % 2147483646 + 1
local function rand (n)
  state = state * 16807 % 2147483647
  return state % n + 1
end

package.path = arg[0]:gsub("[^/]*$", "") .. "?.lua;" .. package.path   -- (parity_canon beside it)
local pc = require "parity_canon"
local case, quote, strip_pos = pc.case, pc.quote, pc.strip_pos

----------------------------------------------------------------------------
-- JSON: decode, the re-encoding of what decodes, and encodes of Lua values.
local texts = {
  "9007199254740993", "-9007199254740993", "9223372036854775807", "-9223372036854775808",
  "9223372036854775808", "18446744073709551616", "1e300", "-1e300", "1e400", "-0", "-0.0",
  "0.0", "2.0", "1.5", "0.1", "5e-324", "1E2", "1e-7", "123456789012345678901234567890",
  "2.5e15", "4503599627370496.5", "NaN", "Infinity", "[]", "{}", "[[],{}]", "[{},[]]",
  '{"1":"a","2":"b"}', '{"1":"a"}', '{"01":1,"1e2":2,"-1":3,"1.5":4,"0":5}',
  '"\\ud83d\\ude00"', '"\\ud800"', '"\\udc00x"', '"\\u0000"', '"\\u00e9\\u20ac"', "null",
  '[null,null]', '{"a":null}', '{"a":1,"a":2}', "[1,2,3", '"\255"', '"' .. string.char(0xC0, 0x80) .. '"',
  '"' .. string.char(0xED, 0xA0, 0x80) .. '"', '"' .. string.char(0xF4, 0x90, 0x80, 0x80) .. '"',
  '"' .. string.char(0xEF, 0xBB, 0xBF) .. '"', " 1 ", "1 2", "true", "[true,false]", "",
  '{"n":[9007199254740993,-0,1e300,2.0,9007199254740992]}', "[1e2,1E+2,100]", "-9223372036854775809",
  "1e-400", "-1e-400", "0e0", "-0e0", "1.0e+2", "00", "01", "-", "1.", ".5", "+1", "1e", "0x10",
  "1.7976931348623157e308", "1.7976931348623159e308", "4.9e-324", "2.2250738585072014e-308",
  "9007199254740992.0", "9007199254740993.0", "123456789012345678", "-123456789012345678",
  "1e15", "1e16", "1e17", "[0.1,0.2,0.30000000000000004]", '"\\\\/\\b\\f\\n\\r\\t"',
  '"\\u00"', '"\\uD83D"', '"\\uDE00\\uD83D"', '{"":1}', '{"a":{"b":{"c":[[[[]]]]}}}',
}
for i, text in ipairs(texts) do
  case("json.decode#" .. i .. " " .. quote(text), function ()
    local v, err = json.decode(text)
    if v == nil and err then return nil, "decode failed" end
    local ok, enc = pcall(json.encode, v)
    return v, ok and enc or ("encode raised: " .. strip_pos(enc))
  end)
end

local big = 9007199254740993              -- rounds to 2^53 where numbers are doubles
local values = {
  { "empty table", {} }, { "array{}", aigc.array {} }, { "list", { 1, 2, 3 } },
  { "holes", { [1] = 1, [3] = 3 } }, { "string keys like numbers", { ["1"] = "a", ["2"] = "b" } },
  { "mixed", { 1, x = 2 } }, { "float key", { [1.5] = 1 } }, { "negative key", { [-1] = 1 } },
  { "zero key", { [0] = "z" } }, { "nan", 0 / 0 }, { "inf", math.huge }, { "-inf", -math.huge },
  { "-0", -0.0 }, { "2^53", 2 ^ 53 }, { "2^53 literal + 1", big }, { "2^53+1 computed", 2 ^ 53 + 1 },
  { "1e300", 1e300 }, { "2.0", 2.0 }, { "3", 3 }, { "0.1", 0.1 }, { "1/3", 1 / 3 }, { "5e-324", 5e-324 },
  { "-2^63", -2 ^ 63 }, { "2^63", 2 ^ 63 }, { "2^31", 2 ^ 31 }, { "1e15+0.5", 1e15 + 0.5 },
  { "null", aigc.null }, { "nested nulls", { a = aigc.null, b = { aigc.null } } },
  { "invalid utf8", "\255" }, { "nul byte", "a\0b" }, { "overlong", string.char(0xC0, 0x80) },
  { "surrogate utf8", string.char(0xED, 0xA0, 0x80) }, { "control chars", "\1\8\9\10\13\31\127" },
  { "slash quote", "a/b\"c\\d" }, { "u2028", string.char(0xE2, 0x80, 0xA8) },
  { "emoji", string.char(0xF0, 0x9F, 0x98, 0x80) }, { "function", function () end },
  { "bool key", { [true] = 1 } }, { "booleans", { true, false } }, { "deep", { { { { { {} } } } } } },
  { "sparse big", { [1] = 1, [1000] = 2 } }, { "key 2^53", { [2 ^ 53] = 1 } },
  { "userdata", io.stdout }, { "string number", "1e400" },
  { "__index table", setmetatable({ own = 1 }, { __index = { inherited = 2, fn = print } }) },
  { "__pairs", setmetatable({}, { __pairs = function () return next, { k = "v" }, nil end }) },
  { "__len proxy", setmetatable({}, { __len = function () return 2 end,
                                      __index = function (_, i) return i * 10 end }) },
  { "__tostring only", setmetatable({ a = 1 }, { __tostring = function () return "x" end }) },
}
for _, nv in ipairs(values) do
  case("json.encode " .. nv[1], function () return json.encode(nv[2]) end)
end
-- Round trips of what decodes.
case("json round trip big", function () return json.encode(json.decode('{"seed":9007199254740993}')) end)
case("json.decode non-string", function () return json.decode(42) end)
case("json.decode nil", function () return json.decode(nil) end)
case("json.encode no arg", function () return json.encode() end)
case("is_array", function () return aigc.is_array(json.decode("[]")), aigc.is_array(json.decode("{}")) end)

----------------------------------------------------------------------------
-- Calls against the bundled server.
local client = aigc.client { base_url = base_url, api_key = "sk-parity-probe-secret", model = "aigc-dev",
                             max_retries = 0, timeout = 30 }
local control = aigc.client { base_url = base_url:gsub("/v1$", ""), max_retries = 0, usage = false }
local function last_body ()
  local r = assert(control:request("GET", "/_aigc/last"))
  return r.body
end

local prompts = { "What is the capital of France?", "Repeat after me: héllo wörld ☃ 😀",
  "Tell me a joke", "What is 2 + 2?", "Echo: " .. string.char(0xE2, 0x80, 0xA8) .. " line sep",
  "Hello", "How are you?", "What's the weather like?", "Echo: {\"1\": 2, \"01\": 3}", "Thanks!" }

for i = 1, 12 do
  local p = prompts[rand(#prompts)]
  local params = { messages = { { role = "user", content = p } }, seed = rand(1000), temperature = rand(3) - 1,
                   max_tokens = rand(40) + 2 }
  case("chat#" .. i, function () return client:chat(params) end)
  local deltas = {}
  params.stream = function (d) deltas[#deltas + 1] = d or "<nil>" end
  case("stream#" .. i, function ()
    local res, err = client:chat(params)
    return res, err, deltas
  end)
  params.stream = nil
  case("async#" .. i, function ()
    local req = client:chat_async(params)
    local status0 = req:status()
    local n = 0
    while req:status() == "queued" or req:status() == "running" do client:step(0.01); n = n + 1 end
    local res, err = req:result()
    return status0, req:status(), res, err
  end)
end

-- What was sent: integers, floats, nulls, empty tables, keys that look like numbers.
local sends = {
  { "seed 2^53+1", { seed = big } }, { "seed 2^53", { seed = 9007199254740992 } },
  { "float 2.0", { temperature = 2.0 } }, { "1e300", { x_big = 1e300 } }, { "-0", { x_zero = -0.0 } },
  { "nan", { x_nan = 0 / 0 } }, { "inf", { x_inf = math.huge } }, { "null", { x_null = aigc.null } },
  { "empty", { x_empty = {} } }, { "array", { x_arr = aigc.array {} } }, { "stop empty", { stop = {} } },
  { "numeric keys", { x_map = { ["1"] = "a", ["01"] = "b", ["-1"] = "c" } } },
  { "int keys", { x_map = { [1] = "a", [2] = "b" } } }, { "logit_bias", { logit_bias = { ["50256"] = -100 } } },
  { "0.1", { temperature = 0.1 } }, { "1/3", { top_p = 1 / 3 } }, { "2^63", { x_i = 2 ^ 63 } },
  { "-2^63", { x_i = -2 ^ 63 } }, { "max int", { x_i = 9223372036854775807 } },
  { "invalid utf8 content", { x_s = "\255" } }, { "nul in content", { x_s = "a\0b" } },
}
for _, s in ipairs(sends) do
  local params = { messages = { { role = "user", content = "Hi" } } }
  for k, v in pairs(s[2]) do params[k] = v end
  case("send " .. s[1], function ()
    local res, err = client:chat(params)
    if not res then return nil, err end
    local body = last_body():gsub('"messages":%[.-%]', ""):gsub(",,", ","):gsub("{,", "{"):gsub(",}", "}")
    return body
  end)
end

-- Tools: arguments decoded from what the server sends verbatim.
local seen_args = {}
local tools = aigc.tools {
  { name = "probe", description = "records its arguments",
    parameters = { type = "object", properties = { n = { type = "integer" }, f = { type = "number" },
                   s = { type = "string" }, l = { type = "array" }, o = { type = "object" } } },
    fn = function (args) seen_args[#seen_args + 1] = args; return { got = args } end },
}
local tool_args = {
  '{"n":9007199254740993,"f":1e300,"s":"x","l":[],"o":{}}', '{"n":3.0,"f":-0}',
  '{"n":-9223372036854775808}', '{"f":2.5,"l":[null],"o":{"1":1}}', '{"n":"x"}', "not json",
  '{"s":"\\ud83d\\ude00 \\u0000"}', '{"n":1e2}', '{}', '[]',
}
for i, a in ipairs(tool_args) do
  seen_args = {}
  case("tools#" .. i, function ()
    local res, err = client:chat { messages = { { role = "user", content = "probe(" .. a .. ")" } }, tools = tools }
    return res and res.text, err, seen_args, res and res.tool_messages
  end)
end

-- Structured output.
local schema = { type = "object", properties = {
  answer = { type = "string" }, count = { type = "integer" }, score = { type = "number" },
  tags = { type = "array", items = { type = "string" } }, mood = { enum = { "happy", "sad" } },
  meta = { type = "object", properties = {} } }, required = { "answer", "count" }, additionalProperties = false }
for i = 1, 4 do
  case("schema#" .. i, function ()
    return client:chat { messages = { { role = "user", content = prompts[rand(#prompts)] } }, schema = schema,
                         schema_name = "probe", seed = i }
  end)
end
case("schema violate", function ()
  return client:chat { messages = { { role = "user", content = "Hi" } }, schema = schema, schema_name = "probe",
                       model = "fault:schema=violate" }
end)
case("schema not-json", function ()
  return client:chat { messages = { { role = "user", content = "Hi" } }, schema = schema,
                       model = "fault:schema=not-json" }
end)
case("schema bad keyword", function () return client:chat { messages = { { role = "user", content = "Hi" } },
  schema = { type = "object", properties = { a = { type = "integer", minimum = "5" } } } } end)

-- Conversations: say, save, load, say again.
case("conversation", function ()
  local conv = aigc.conversation { client = client, system = "You are Sam." }
  local r1 = conv:say "Hello"
  local r2 = conv:say "Repeat after me: 9007199254740993 ☃"
  local saved = conv:save()
  local copy = assert(aigc.conversation.load(saved, client))
  local r3 = copy:say "What is 2 + 2?"
  return r1, r2, r3, saved, copy.messages
end)
case("conversation load bad", function ()
  return aigc.conversation.load('{"messages":[{"role":"user","content":1}]}', client)
end)
case("conversation load numbers", function ()
  local c2, err = aigc.conversation.load('{"format":"aigc.conversation","version":1,"messages":[],'
    .. '"params":{"seed":9007199254740993,"temperature":2.0,"x":-0.0}}', client)
  return c2 and c2:save(), err
end)

-- Embeddings and vectors.
case("embeddings", function ()
  local res, err = client:embeddings { input = { "the inn", "the smithy" }, model = "text-embedding-3-small",
                                       dimensions = 8 }
  if not res then return nil, err end
  local index = aigc.vec.index()
  for _, d in ipairs(res.data) do index:add(d.embedding) end
  local best, scores = index:topk(res.data[2].embedding, 2)
  return res, best, scores, aigc.vec.cosine(res.data[1].embedding, res.data[2].embedding)
end)
case("vec nan", function () return aigc.vec.cosine({ 0 / 0, 1 }, { 1, 1 }) end)
case("vec inf", function () local ix = aigc.vec.index(); ix:add({ math.huge, 1 }) end)
case("vec big", function () local ix = aigc.vec.index(); ix:add({ 1e39, 1 }) end)
case("vec k", function () local ix = aigc.vec.index(); ix:add({ 1, 1 }); return ix:topk({ 1, 1 }, 1.5) end)
case("vec k 0", function () local ix = aigc.vec.index(); ix:add({ 1, 1 }); return ix:topk({ 1, 1 }, 0) end)
case("vec -0", function () return aigc.vec.cosine({ -0.0, 1 }, { 0, 1 }) end)

-- Errors: kinds, fields, tostring.
local faults = { "status=400", "status=401", "status=404", "status=429,retry-after=2", "status=500",
  "status=503,retry-after-ms=1500", "body=malformed", "body=empty", "body=not-object", "body=no-choices",
  "body=huge-number", "body=invalid-utf8", "body=nokey,status=422", "body=text,status=502",
  "status=429,retry-after=1e3", "status=429,retry-after=-1", "status=429,retry-after=0x10" }
for _, f in ipairs(faults) do
  case("error " .. f, function () return client:chat { messages = { { role = "user", content = "Hi" } },
                                                       model = "fault:" .. f } end)
end
for _, f in ipairs { "drop-after=3", "no-done", "error-event", "error-data", "malformed-chunk", "no-finish-reason",
                     "dup-key", "content-filter", "repeat-ids" } do
  case("stream error " .. f, function ()
    local got = {}
    local res, err = client:chat { messages = { { role = "user", content = "Tell me a joke" } }, model = "fault:" .. f,
                                   stream = function (d) got[#got + 1] = d or "<nil>" end }
    return res, err, got
  end)
end
case("connect refused", function ()
  local c = aigc.client { base_url = "http://127.0.0.1:1/v1", max_retries = 0 }
  return c:chat "Hi"
end)
case("canceled", function ()
  local req = client:chat_async { messages = { { role = "user", content = "Hi" } } }
  req:cancel()
  return req:status(), req:result()
end)
case("misuse chat 42", function () return client:chat(42) end)
case("misuse messages", function () return client:chat { messages = 42 } end)
case("misuse content fn", function () return client:chat { messages = { { role = "user", content = print } } } end)
case("misuse bad utf8 key", function () return client:chat { messages = { { role = "user", content = "x" } },
                                                               ["\255"] = 1 } end)
case("misuse timeout", function ()
  return client:chat { messages = { { role = "user", content = "x" } }, timeout = -1 }
end)
case("misuse step", function () return client:step("x") end)
case("tostring client", function () return (tostring(client):gsub("0x%x+", "ADDR"):gsub(": %x+", ": ADDR")) end)
case("tostring response", function ()
  local res = client:chat "Hello"
  return (tostring(res):gsub("0x%x+", "ADDR"):gsub(": %x+", ": ADDR"))
end)
case("res pairs", function ()
  local res = client:chat "Hello"
  local keys = {}
  for k in pairs(res) do keys[#keys + 1] = k end
  table.sort(keys)
  return table.concat(keys, ","), type(res.headers)
end)
case("res encode", function ()
  local res = client:chat "Hello"
  local t = json.decode(json.encode(res))
  return type(t.headers), t.text
end)

-- The dialogue layer and the utilities on top.
local sentences = aigc.sentences
local texts_for_split = { "Well, Dr. Watson paid 3.14 gold. Then he left! Did he? Yes...",
  "你好。我是小明！「本当？」と彼は言った。", "J. R. R. Tolkien wrote 1. First e.g. this. Next",
  "Ünïcödé sentence one. 😀 Two! Three? " .. string.char(0xE2, 0x80, 0xA6) .. " four", "\n\nA.\nB.\n", "" }
for i, t in ipairs(texts_for_split) do
  case("sentences.split#" .. i, function () return sentences.split(t), sentences.split(t, { clauses = true }) end)
  case("tokens#" .. i, function () return aigc.tokens.estimate_text(t) end)
end
case("sentences.stream", function ()
  local got = {}
  local story = "Tell me your story about a robot that learns to paint."
  local res, err = client:chat(sentences.stream({ messages = { { role = "user", content = story } }, max_tokens = 60 },
                                                function (sen, whole) got[#got + 1] = { sen, whole } end))
  return res and res.text, err, got
end)
case("client:stream iterator", function ()
  local it, got = client:stream { messages = { { role = "user", content = "What is 2 + 2?" } } }, {}
  while true do
    local d = it()
    if d == nil then break end
    got[#got + 1] = d
  end
  return got, it:result()
end)
case("respond", function ()
  return client:respond { input = "What is the capital of France?", instructions = "Be brief." }
end)
case("respond stream", function ()
  local got = {}
  local res, err = client:respond { input = "Tell me a joke",
                                    stream = function (d, ev) got[#got + 1] = { d or "<nil>", ev.type } end }
  return res, err, got
end)
case("respond tools", function ()
  return client:respond { input = "probe({\"n\":9007199254740993})", tools = { { type = "function", name = "probe",
    parameters = { type = "object", properties = { n = { type = "integer" } } } } } }
end)
case("spawn task", function ()
  local results = {}
  client:spawn(function ()
    local a = client:chat "Hello"
    client:sleep(0.01)
    local b = client:chat "What is 2 + 2?"
    results[1], results[2] = a and a.text, b and b.text
    -- the stream iterator in a task, pulled by hand (5.1 cannot yield in a for)
    local it = client:stream { messages = { { role = "user", content = "Tell me a joke" } } }
    local n = 0
    while it() ~= nil do n = n + 1 end
    results[3] = n
  end)
  local turns = 0
  while client:step(0.01) > 0 do turns = turns + 1 end
  return results
end)
case("strategy best_of", function ()
  local story = "Tell me your story about a robot that learns to paint."
  local best, cands = aigc.strategy.best_of { client = client, n = 3, judge = { prompt = "Most vivid?" },
    params = { messages = { { role = "user", content = story } }, max_tokens = 20 } }
  local got = {}
  for i, c in ipairs(cands or {}) do got[i] = type(c) == "table" and (c.text or c) or c end
  return type(best) == "table" and best.text or best, got
end)
case("template", function ()
  return aigc.template.render("Hi {{name}}, {{n}} {{ missing }}", { name = "Zoë", n = 9007199254740993 })
end)
case("media f32", function ()
  return aigc.media.f32(aigc.media.b64decode("AACAPwAAAMAAAAAAAACAfw=="))
end)
case("media b64 bad", function () return aigc.media.b64decode("@@@") end)
case("error tostring cut", function ()
  local long = ("é"):rep(300) .. "\nsecond line"
  return client:chat { messages = { { role = "user", content = "Hi" } }, model = "fault:status=400",
                       headers = { ["x-aigc-fault"] = "status=400" }, x_long = long }
end)
case("usage.diff", function ()
  local a = client:usage()
  client:chat "Hello"
  return aigc.usage.diff(client:usage(), a)
end)

-- Usage: everything above on this client.
case("usage", function () return client:usage() end)
case("completion", function () return client:complete { prompt = "What is the capital of France?", max_tokens = 5 } end)
case("models", function () return client:models() end)
client:close()
case("closed", function () return client:chat "Hi" end)
io.write("END\n")
