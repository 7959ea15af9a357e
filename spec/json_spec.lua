-- Marshalling between Lua values and JSON (aigc.json, the same code that
-- encodes request bodies and decodes replies).
local aigc = require "aigc"
local cjson = require "cjson"
local portable = require "portable"

local json = aigc.json

local function encode_error (value)
  local ok, err = pcall(json.encode, value)
  assert.is_false(ok, "expected an encoding error")
  return err
end

describe("aigc.json.encode", function ()
  it("writes scalars exactly", function ()
    assert.equal("true", json.encode(true))
    assert.equal("false", json.encode(false))
    assert.equal("null", json.encode(aigc.null))
    assert.equal("0", json.encode(0))
    assert.equal("-42", json.encode(-42))
    if portable.has_integers then   -- 64-bit integers, and floats that stay floats
      assert.equal("9007199254740993", json.encode(9007199254740993))
      assert.equal("9223372036854775807", json.encode(math.maxinteger))
      assert.equal("-9223372036854775808", json.encode(math.mininteger))
      assert.equal("2.0", json.encode(2.0))
      assert.equal("1e+300", json.encode(1e300))
    else                            -- doubles: exact to 2^53; an integral number is an integer
      assert.equal("9007199254740992", json.encode(2 ^ 53))
      assert.equal("-9007199254740992", json.encode(-2 ^ 53))
      assert.equal("2", json.encode(2.0))
      assert.matches("beyond 2^53", select(2, pcall(json.encode, 1e300)), 1, true)   -- integral: refused
    end
    assert.equal("0.7", json.encode(0.7))
    assert.equal("-0.5", json.encode(-0.5))
    assert.equal("0.1", json.encode(0.1))
    assert.equal(0.1 + 0.2, json.decode(json.encode(0.1 + 0.2)))
  end)

  it("escapes every character JSON requires and keeps UTF-8", function ()
    assert.equal([["a\"b\\c/d"]], json.encode('a"b\\c/d'))
    assert.equal([["\b\f\n\r\t"]], json.encode("\b\f\n\r\t"))
    assert.equal([["\u0000\u0001\u001f"]], json.encode("\0\1\31"))
    assert.equal('"héllo 世界 🎨"', json.encode("héllo 世界 🎨"))
    assert.equal('"\226\128\168"', json.encode("\226\128\168"))
  end)

  it("writes sequences as arrays and string-keyed tables as objects", function ()
    assert.equal("[1,2,3]", json.encode { 1, 2, 3 })
    assert.equal('{"a":1}', json.encode { a = 1 })
    assert.equal('[[1],{"b":[true,null]}]', json.encode { { 1 }, { b = { true, aigc.null } } })
    local decoded = cjson.decode(json.encode { model = "m", n = 3, nested = { x = { "y" } } })
    assert.same({ model = "m", n = 3, nested = { x = { "y" } } }, decoded)
  end)

  it("writes an empty table as {} and aigc.array{} as []", function ()
    assert.equal("{}", json.encode {})
    assert.equal("[]", json.encode(aigc.array {}))
    assert.equal("[]", json.encode(aigc.array()))
    local both = json.encode { stop = aigc.array {}, meta = {} }
    assert.truthy(both:find('"stop":[]', 1, true))
    assert.truthy(both:find('"meta":{}', 1, true))
    assert.equal("[1,2]", json.encode(aigc.array { 1, 2 }))
    assert.is_true(aigc.is_array(aigc.array {}))
    assert.is_false(aigc.is_array {})
  end)

  it("names the path of a function, userdata or thread", function ()
    local err = encode_error { messages = { { role = "user" }, { content = print } } }
    assert.matches("value.messages%[2%]%.content: cannot encode a function", err)
    assert.matches("value%[1%]: cannot encode a userdata", encode_error { io.stdout })
    assert.matches("value.co: cannot encode a thread", encode_error { co = coroutine.create(function () end) })
  end)

  it("refuses NaN and infinities, naming the path", function ()
    assert.matches("value.temperature: cannot encode NaN", encode_error { temperature = 0 / 0 })
    assert.matches("value%[1%]: cannot encode an infinite number", encode_error { math.huge })
    assert.matches("cannot encode an infinite number", encode_error(-math.huge))
  end)

  it("refuses cycles", function ()
    local t = { a = {} }
    t.a.back = t
    assert.matches("value.a.back: cannot encode a table that contains itself", encode_error(t))
    local shared = { 1 }
    assert.equal('[[1],[1]]', json.encode { shared, shared })   -- shared is not a cycle
  end)

  it("refuses sparse and mixed tables", function ()
    assert.matches("value: sparse array", encode_error { 1, nil, 3 })
    assert.matches("value.x: sparse array", encode_error { x = { [1] = 1, [5] = 5 } })
    assert.matches("mixed table", encode_error { 1, 2, name = "x" })
    assert.matches("keys must be strings", encode_error { [true] = 1 })
    -- (LuaJIT's length of {1, nil, 3} is 1: the message names the table there)
    assert.matches("value.stop[%[%]2]*: sparse array", encode_error { stop = aigc.array { 1, nil, 3 } })
    local marked = aigc.array {}
    marked[1], marked[3] = 1, 3   -- a key past the length: refused, not dropped (was "[1]")
    assert.matches("value: sparse array", encode_error(marked))
  end)

  it("refuses invalid UTF-8, naming the path", function ()
    assert.matches("value.content: invalid UTF%-8 at byte 2 ", encode_error { content = "a\255b" })
    assert.matches("invalid UTF%-8", encode_error { content = "\237\160\128" })   -- a surrogate
    assert.matches("invalid UTF%-8", encode_error { content = "\192\175" })       -- overlong "/"
    assert.matches("value: invalid UTF%-8", encode_error { ["k\255"] = 1 })
  end)

  it("refuses nil and light userdata other than null", function ()
    assert.matches("cannot encode nil", encode_error(nil))
  end)

  it("refuses nesting deeper than 208 levels (the decoder's 200 and a few)", function ()
    local t = {}
    local cur = t
    for _ = 1, 300 do
      cur[1] = {}
      cur = cur[1]
    end
    assert.matches("nesting too deep", encode_error(t))
  end)
end)

describe("aigc.json.decode", function ()
  it("keeps integers exact and floats as floats", function ()
    if not portable.has_integers then
      pending("needs Lua 5.3+: integer and float subtypes (doubles: spec/numbers_spec.lua)")
      return
    end
    local v = json.decode('[1, 1700000000, 9007199254740993, -9223372036854775808, 1.5, 1e2, 9223372036854775808]')
    assert.equal(math.type(v[1]), "integer")
    assert.equal(1700000000, v[2])
    assert.equal("integer", math.type(v[2]))
    assert.equal(9007199254740993, v[3])
    assert.equal(math.mininteger, v[4])
    assert.equal(1.5, v[5])
    assert.equal("float", math.type(v[6]))
    assert.equal("float", math.type(v[7]))   -- beyond int64: a float
  end)

  it("gives JSON null as aigc.null and keeps the key", function ()
    local v = json.decode('{"finish_reason": null, "a": [null]}')
    assert.equal(aigc.null, v.finish_reason)
    assert.equal(aigc.null, v.a[1])
    assert.equal(cjson.null, aigc.null)   -- the same value as lua-cjson's
  end)

  it("marks arrays so an empty one encodes back as []", function ()
    local v = json.decode('{"tool_calls": [], "meta": {}}')
    assert.is_true(aigc.is_array(v.tool_calls))
    assert.is_false(aigc.is_array(v.meta))
    assert.same(cjson.decode('{"tool_calls":[],"meta":{}}'), cjson.decode(json.encode(v)))
    assert.equal("[]", json.encode(v.tool_calls))
  end)

  it("decodes every escape, surrogate pairs and raw UTF-8", function ()
    assert.equal('a"b\\c/d\b\f\n\r\t', json.decode([["a\"b\\c\/d\b\f\n\r\t"]]))
    assert.equal("é世🎨", json.decode([["\u00e9\u4e16\ud83c\udfa8"]]))
    assert.equal("é世🎨", json.decode('"é世🎨"'))
    assert.equal("\239\191\189", json.decode([["\ud800"]]))   -- a lone surrogate: U+FFFD
  end)

  it("round-trips a realistic response through encode", function ()
    local text = '{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"m",' ..
      '"choices":[{"index":0,"message":{"role":"assistant","content":"Hi","refusal":null,' ..
      '"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}]},' ..
      '"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}'
    local v = json.decode(text)
    assert.same(json.decode(text), json.decode(json.encode(v)))
    assert.equal("Hi", v.choices[1].message.content)
  end)

  it("returns nil and a message with the offset for malformed text", function ()
    for _, bad in ipairs { "", "{", '{"a":}', "[1,]", "nul", '"\1"', "01", "1e400", "[1] x", "'a'", '"\255"' } do
      local v, err = json.decode(bad)
      assert.is_nil(v, bad)
      assert.matches("^invalid JSON at byte %d+: ", err)
    end
    -- beyond a double's range: refused, never a silent inf (README, Limits)
    assert.same({ nil, "invalid JSON at byte 2: number out of range" }, { json.decode("[1e400]") })
    assert.same({ nil, "invalid JSON at byte 1: number out of range" }, { json.decode("-1e400") })
  end)

  it("fails cleanly on 100,000 levels of nesting", function ()
    local v, err = json.decode(string.rep("[", 100000) .. string.rep("]", 100000))
    assert.is_nil(v)
    assert.matches("nest", err)
  end)

  it("raises for a non-string argument (misuse)", function ()
    assert.has_error(function () json.decode(nil) end)
    assert.has_error(function () json.decode {} end)
  end)
end)
