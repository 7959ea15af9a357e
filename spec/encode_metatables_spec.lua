-- Tables with metatables in requests (issue 10, defect 18): they were
-- encoded raw, so a message whose `content` came through __index was sent
-- without it and a proxy `messages` list was sent as `{}`. The rule now
-- (README, "Marshalling"): __len makes an array read through __index,
-- __pairs gives the entries, a chain of __index tables gives the table's
-- own fields plus the inherited ones that are not functions or "__" keys
-- (class instances, prototypes), a function __index without __pairs is
-- refused with the path, and so is a cycle in the chain; a metatable with
-- none of the three (a __tostring, the aigc.array mark) changes nothing.
local aigc = require "aigc"
local cjson = require "cjson"
local devserver = require "devserver"

local encode = aigc.json.encode

-- A read-only proxy over t: no raw fields, everything through metamethods.
local function proxy (t, with)
  local mt = { __index = t, __newindex = function () error("read-only") end }
  if with.len then mt.__len = function () return #t end end
  if with.pairs then mt.__pairs = function () return next, t, nil end end
  return setmetatable({}, mt)
end

describe("encoding tables with metatables", function ()
  it("__len: an array of #t items read through __index", function ()
    assert.equal('[1,"two",{"x":3}]', encode(proxy({ 1, "two", { x = 3 } }, { len = true })))
    assert.equal("[]", encode(proxy({}, { len = true })))
    -- a hole is refused as in a raw table
    local holey = setmetatable({}, { __len = function () return 2 end, __index = { [1] = 1 } })
    assert.has_error(function () encode(holey) end,
                     "bad argument #1 to 'encode' (value[2]: sparse array (a hole at this index; use aigc.null))")
  end)

  it("__pairs: what pairs gives, as an object or an array", function ()
    assert.same({ a = 1, b = { c = true } }, cjson.decode(encode(proxy({ a = 1, b = { c = true } }, { pairs = true }))))
    assert.equal("[10,20]", encode(proxy({ 10, 20 }, { pairs = true })))
    assert.equal("{}", encode(proxy({}, { pairs = true })))
  end)

  it("a chain of __index tables: own fields, then inherited ones that are not methods", function ()
    local base = { role = "user", content = "inherited" }
    local msg = setmetatable({ name = "n" }, { __index = base })
    assert.same({ messages = { { name = "n", role = "user", content = "inherited" } } },
                cjson.decode(encode({ messages = { msg } })))
    -- a class instance: methods and metamethods through __index are left out
    local Class = {}
    Class.__index = Class
    Class.__tostring = function () return "an instance" end
    Class.kind = "message"   -- a field of the class, not a method: inherited
    function Class.describe () end
    assert.same({ role = "user", kind = "message" }, cjson.decode(encode(setmetatable({ role = "user" }, Class))))
    -- two levels, the nearer one wins, the instance's own field wins over both
    local Base = { role = "system", content = "base", __secret = "x" }
    Base.__index = Base
    local Derived = setmetatable({ role = "assistant" }, Base)
    Derived.__index = Derived
    assert.same({ role = "assistant", content = "own" },
                cjson.decode(encode(setmetatable({ content = "own" }, Derived))))
    assert.same({ role = "assistant", content = "base" }, cjson.decode(encode(setmetatable({}, Derived))))
  end)

  -- aigc keeps one encoder per Lua state and marks it busy while in use: an
  -- encode run from a __pairs (nested), or after one that raised half-way
  -- (it never gave its encoder back), must get an encoder of its own.
  it("an encode inside __pairs, and encodes after one that raised, each write their own text", function ()
    local inner = {}
    local outer = setmetatable({}, { __pairs = function ()
      inner[#inner + 1] = encode({ deep = { 1, { 2 } } })
      return next, { a = "x", b = { c = 1 } }, nil
    end })
    local text = encode({ first = { 1, 2 }, o = outer, last = "z" })
    assert.same({ first = { 1, 2 }, o = { a = "x", b = { c = 1 } }, last = "z" }, cjson.decode(text))
    local raising = setmetatable({}, { __pairs = function () error("boom") end })
    for _ = 1, 3 do
      assert.is_false((pcall(encode, { x = { 1, raising } })))
      assert.equal('{"k":"v"}', encode({ k = "v" }))
      text = encode({ o = outer })
      assert.same({ o = { a = "x", b = { c = 1 } } }, cjson.decode(text))
    end
    assert.equal(4, #inner)
    for _, t in ipairs(inner) do assert.equal('{"deep":[1,[2]]}', t) end
  end)

  it("a function __index without __pairs, or a cycle in the chain, is refused with the path", function ()
    local msg = setmetatable({ role = "user" }, { __index = function (_, k) return k end })
    assert.has_error(function () encode({ messages = { msg } }) end,
      "bad argument #1 to 'encode' (value.messages[1]: cannot encode a table whose __index is a function "
      .. "and whose metatable has no __pairs (its fields cannot be listed: give the metatable __pairs, "
      .. "or pass a plain table))")
    -- a function deeper in the chain too
    local proto = setmetatable({ content = "x" }, { __index = function () return "?" end })
    assert.has_error(function () encode({ m = setmetatable({}, { __index = proto }) }) end,
      "bad argument #1 to 'encode' (value.m: cannot encode a table whose __index is a function "
      .. "and whose metatable has no __pairs (its fields cannot be listed: give the metatable __pairs, "
      .. "or pass a plain table))")
    local a, b = {}, {}
    setmetatable(a, { __index = b })
    setmetatable(b, { __index = a })
    local ok, e = pcall(encode, { x = { setmetatable({}, { __index = a }) } })
    assert.is_false(ok)
    assert.matches("value%.x%[1%]: its __index chain comes back to a table already in it %(a cycle%)", e)
    local self_mt = {}
    self_mt.__index = self_mt
    setmetatable(self_mt, self_mt)   -- an endless chain in Lua too (t.missing raises there)
    assert.has_error(function () encode(setmetatable({}, self_mt)) end)
  end)

  it("a metatable with none of the three changes nothing; the array mark still works", function ()
    local t = setmetatable({ a = 1 }, { __tostring = function () return "T" end, __name = "thing" })
    assert.equal('{"a":1}', encode(t))
    assert.equal("[]", encode(aigc.array {}))
    local decoded = aigc.json.decode('{"list":[],"x":[1,2]}')
    assert.equal('{"list":[]}', encode({ list = decoded.list }))
    assert.equal("[1,2]", encode(decoded.x))
  end)

  it("__len must give an integer >= 0; __pairs may raise", function ()
    assert.has_error(function () encode(setmetatable({}, { __len = function () return 1.5 end })) end)
    assert.has_error(function () encode(setmetatable({}, { __len = function () return -1 end })) end,
                     "bad argument #1 to 'encode' (value: its __len gave a negative length)")
    assert.has_error(function () encode(setmetatable({}, { __pairs = function () error("nope") end })) end)
  end)

  it("a proxy that contains itself is a cycle, not an endless recursion", function ()
    local inner = {}
    local p = proxy(inner, { pairs = true })
    inner.self = p
    assert.has_error(function () encode(p) end)
  end)
end)

describe("requests with metatables", function ()
  local srv, client
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end)

  local function sent () return cjson.decode(srv:last().body) end

  it("a proxy messages list is sent as its items, not as {}", function ()
    local msgs = proxy({ { role = "user", content = "Hi" } }, { len = true })
    assert(client:chat { model = "m", messages = msgs })
    assert.same({ { role = "user", content = "Hi" } }, sent().messages)
  end)

  it("a message whose content comes through __index is sent with it", function ()
    local msg = setmetatable({ role = "user" }, { __index = { content = "Hi" } })
    assert(client:chat { model = "m", messages = { msg } })
    assert.same({ { role = "user", content = "Hi" } }, sent().messages)
  end)

  it("a message with a function __index is refused, naming it, before anything is sent", function ()
    local msg = setmetatable({ role = "user" }, { __index = function () return "Hi" end })
    local before = srv:stats().requests_total
    local ok, e = pcall(client.chat, client, { model = "m", messages = { msg } })
    assert.is_false(ok)
    assert.matches("params%.messages%[1%]: cannot encode a table whose __index is a function", e)
    assert.equal(before, srv:stats().requests_total)
  end)

  it("the same message with __pairs is sent whole", function ()
    local fields = { role = "user", content = "Hi" }
    local msg = setmetatable({}, { __index = fields, __pairs = function () return next, fields, nil end })
    assert(client:chat { model = "m", messages = { msg } })
    assert.same({ { role = "user", content = "Hi" } }, sent().messages)
  end)

  it("params with __pairs: the body is what pairs gives; an __index table gives its defaults", function ()
    local fields = { model = "m", messages = { { role = "user", content = "Hi" } }, temperature = 0.5 }
    local params = setmetatable({}, { __index = fields, __pairs = function () return next, fields, nil end })
    assert(client:chat(params))
    local body = sent()
    assert.equal(0.5, body.temperature)
    assert.equal("m", body.model)
    local defaults = setmetatable({ messages = { { role = "user", content = "Hi" } } },
                                  { __index = { model = "m2", temperature = 0.25 } })
    assert(client:chat(defaults))
    body = sent()
    assert.equal(0.25, body.temperature)
    assert.equal("m2", body.model)
    local computed = setmetatable({ messages = { { role = "user", content = "Hi" } } },
                                  { __index = function () return 1 end })
    assert.has_error(function () client:chat(computed) end)
  end)
end)

-- The argument checks (aigc.check) judge what the encoder sends, read as
-- it reads it: a __len proxy's #t items and no more (they read up to the
-- first nil, so a proxy whose __index answers every key made client:chat
-- spin for ever), a __pairs table's entries (a __pairs-only message was
-- refused: "role: string expected, got nil"). Both metamethods are called
-- on every version, as the encoder calls them (5.1 and LuaJIT's # and
-- pairs() ignore them on tables). A regression raises after READS_MAX
-- reads instead of hanging.
describe("the argument checks read what the encoder sends", function ()
  local check = require "aigc.check"
  local adapter = require "aigc.adapter"
  local READS_MAX = 10000

  -- A list of n items whose __index answers every key with `item`.
  local function endless (n, item)
    local reads = { count = 0 }
    local t = setmetatable({}, {
      __len = function () return n end,
      __index = function (_, k)
        reads.count = reads.count + 1
        if reads.count > READS_MAX then error("read " .. reads.count .. " items (last key " .. tostring(k) .. ")") end
        return item
      end })
    return t, reads
  end

  local function only_pairs (fields)
    return setmetatable({}, { __pairs = function () return next, fields, nil end })
  end

  it("a __len proxy whose __index never says nil: #t items, each read once", function ()
    local msgs, reads = endless(3, { role = "user", content = "Hi" })
    assert.is_nil(check.call_problem(nil, "chat", { messages = msgs }))
    assert.equal(3, reads.count)
    local stop, stop_reads = endless(2, "END")
    assert.is_nil(check.call_problem(nil, "chat", { messages = { { role = "user", content = "Hi" } }, stop = stop }))
    assert.equal(2, stop_reads.count)
    local tools = endless(1, { type = "function", ["function"] = { name = "f" } })
    assert.is_nil(check.call_problem(nil, "chat", { messages = { { role = "user", content = "Hi" } }, tools = tools }))
    assert.is_nil(check.call_problem(nil, "responses", { input = (endless(2, { role = "user", content = "Hi" })) }))
    assert.is_nil(check.call_problem(nil, "completion", { prompt = (endless(2, "Hi")) }))
    -- an empty proxy is an empty list; a bad item is named by its index
    assert.is_nil(check.call_problem(nil, "chat", { messages = (endless(0, 1)) }))
    assert.equal("params.stop[1]: string expected, got number",
                 check.call_problem(nil, "chat", { messages = { { role = "user", content = "Hi" } },
                                                  stop = (endless(2, 1)) }))
  end)

  it("a list whose __index is a function and which has no __len: refused in the encoder's words", function ()
    local reads = 0
    local msgs = setmetatable({}, { __index = function ()
      reads = reads + 1
      if reads > READS_MAX then error("read " .. reads .. " items of a list that cannot be listed") end
      return { role = "user" }
    end })
    assert.equal("params.messages: cannot encode a table whose __index is a function and whose metatable "
                 .. "has no __pairs (its fields cannot be listed: give the metatable __pairs, or pass a plain table)",
                 check.call_problem(nil, "chat", { messages = msgs }))
    assert.equal("params.messages: its __len gave a negative length",
                 check.call_problem(nil, "chat", { messages = (endless(-1, 1)) }))
  end)

  it("a dialogue's copy of the history holds the proxy's #t items", function ()
    local msgs, reads = endless(2, { role = "user", content = "Hi" })
    local wire = {}
    adapter.chat.prepare({ messages = msgs }, wire)
    assert.equal(2, #wire.messages)
    assert.equal(2, reads.count)
    local input = endless(1, { role = "user", content = "Hi" })
    adapter.responses.prepare({ input = input }, wire)
    assert.equal(1, #wire.input)
  end)

  it("a __pairs-only message is judged by what pairs gives, on every version", function ()
    assert.is_nil(check.call_problem(nil, "chat", { messages = { only_pairs { role = "user", content = "Hi" } } }))
    assert.is_nil(check.call_problem(nil, "chat", { messages = only_pairs { { role = "user", content = "Hi" } } }))
    assert.is_nil(check.call_problem(nil, "chat", { messages = { { role = "user", content = "Hi" } },
                                                   stop = only_pairs { "a", "b" } }))
    -- its raw fields are not what is sent: a role there and none in pairs is refused
    local hidden = setmetatable({ role = "user" }, { __pairs = function () return next, { content = "Hi" }, nil end })
    assert.equal("params.messages[1].role: string expected, got nil",
                 check.call_problem(nil, "chat", { messages = { hidden } }))
    assert.equal("params.stop[2]: string expected, got number",
                 check.call_problem(nil, "chat", { messages = { { role = "user", content = "Hi" } },
                                                  stop = only_pairs { "a", 2 } }))
  end)
end)

describe("requests with metatables: what the checks let through is what is sent", function ()
  local srv, client
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end)

  local function sent () return cjson.decode(srv:last().body) end

  it("a __len proxy whose __index never says nil is sent as its #t items", function ()
    local reads = 0
    local msgs = setmetatable({}, { __len = function () return 1 end, __index = function ()
      reads = reads + 1
      if reads > 10000 then error("the proxy was read past its length") end
      return { role = "user", content = "via len" }
    end })
    local stop = setmetatable({}, { __len = function () return 2 end, __index = function ()
      reads = reads + 1
      if reads > 10000 then error("the proxy was read past its length") end
      return "END"
    end })
    assert(client:chat { model = "m", messages = msgs, stop = stop })
    local body = sent()
    assert.same({ { role = "user", content = "via len" } }, body.messages)
    assert.same({ "END", "END" }, body.stop)
  end)

  it("a message with only __pairs is sent as pairs gives it", function ()
    local msg = setmetatable({}, { __pairs = function () return next, { role = "user", content = "Hi" }, nil end })
    assert(client:chat { model = "m", messages = { msg } })
    assert.same({ { role = "user", content = "Hi" } }, sent().messages)
  end)
end)
