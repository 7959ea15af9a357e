-- Lua 5.1 to 5.3 hash a string of 32 bytes or more from a sample of its
-- bytes: keys that differ only in the others share one chain of a table,
-- and building an object of n of them costs n^2 / 2 steps. A reply holding
-- such an object is refused (hostile_server_probe_spec); a stream was not:
-- every event passed the check, one crafted key each, but the accumulated
-- reply gathered them into one object (20,000 events: 5 s on Lua 5.3,
-- quadratic; an endless stream: a frozen frame for ever). Lua 5.4 and
-- LuaJIT hash the whole key, seeded: there the reply is whole.
local aigc = require "aigc"
local hashflood = require "hashflood"
local oneshot = require "oneshot"

local SAMPLED, flood_key, honest_key = hashflood.SAMPLED, hashflood.flood_key, hashflood.honest_key

-- A server answering this test's requests with the raw replies given, in
-- order (spec/support/oneshot.lua): its base URL.
local function serve (replies) return oneshot.serve_raw(replies, finally) end

local function sse (events)
  local parts = {}
  for i, data in ipairs(events) do parts[i] = "data: " .. data .. "\n\n" end
  return "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
    .. table.concat(parts)
end

local count = hashflood.count

local N = 5000
local CHUNK = '{"id":"c1","object":"chat.completion.chunk",'

-- A chat stream: one new key an event in the message (done: a whole reply)
-- or at the top (done false: cut before [DONE], the partial holds them).
local function chat_stream (key, where, done)
  local events = {}
  for i = 1, N do
    events[i] = where == "message"
      and CHUNK .. '"choices":[{"index":0,"delta":{"' .. key(i) .. '":"x"}}]}'
      or CHUNK .. '"' .. key(i) .. '":1,"choices":[]}'
  end
  events[#events + 1] = CHUNK .. '"choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":"stop"}]}'
  if done then events[#events + 1] = "[DONE]" end
  return sse(events)
end

describe("a stream whose events add keys that flood Lua's string hash", function ()
  local function client_of (base_url)
    return aigc.client { base_url = base_url, api_key = "sk-hostile-0123456789", model = "m",
                         max_retries = 0, timeout = 60 }
  end
  local MESSAGE = "the streamed reply holds an object whose keys Lua hashes alike (a hash flood)"

  it("is a limit error there, and a whole reply elsewhere; honest keys are whole everywhere", function ()
    local client = client_of(serve { chat_stream(flood_key, "message", true),
                                     chat_stream(flood_key, "top", true),
                                     chat_stream(honest_key, "message", true) })
    for _, where in ipairs { "message", "top" } do
      local res, err = client:chat { messages = { { role = "user", content = "hi" } }, stream = true }
      if SAMPLED then
        assert.is_nil(res)
        assert.equal("limit", err.kind)
        assert.equal(MESSAGE, err.message)
        assert.is_nil(err.partial)
      else
        assert.is_table(res, tostring(err))
        local t = where == "message" and res.choices[1].message or res
        assert.equal(where == "message" and "x" or 1, t[flood_key(N)])
        assert.is_true(count(t) > N)   -- every key, and the reply's own
      end
    end
    local res, err = client:chat { messages = { { role = "user", content = "hi" } }, stream = true }
    assert.is_table(res, tostring(err))
    assert.equal("x", res.choices[1].message[honest_key(N)])
    assert.equal(N + 2, count(res.choices[1].message))   -- + role, content
    client:close()
  end)

  it("a stream cut short: is a limit error there too; a server's error keeps no partial there", function ()
    local cut = chat_stream(flood_key, "top", false)
    local failed = cut .. 'data: {"error":{"message":"the model broke"}}\n\n'
    local client = client_of(serve { cut, failed })
    local res, err = client:chat { messages = { { role = "user", content = "hi" } }, stream = true }
    assert.is_nil(res)
    assert.equal(SAMPLED and "limit" or "stream", err.kind)
    if SAMPLED then
      assert.equal(MESSAGE, err.message)
      assert.is_nil(err.partial)
    else
      assert.equal(1, err.partial[flood_key(N)])
    end
    res, err = client:chat { messages = { { role = "user", content = "hi" } }, stream = true }
    assert.is_nil(res)
    assert.equal("api", err.kind)
    assert.equal("the model broke", err.message)
    if SAMPLED then
      assert.is_nil(err.partial)
    else
      assert.equal(1, err.partial[flood_key(N)])
    end
    client:close()
  end)

  -- The Responses API's stream alike: every output_item.done merges its
  -- item's members into the item built so far. The accumulator's bound on
  -- the members of the objects it merges into (128: src/raccum.c, for its
  -- own linear look-ups) refuses such a stream on every Lua, long before
  -- the keys could flood a sampled hash: whole or cut, a limit error, and
  -- a partial of a bounded item.
  it("a Responses stream alike: refused by the accumulator's member bound on every Lua", function ()
    local n = 2000
    local function responses_stream (completed)
      local ev = { '{"type":"response.created","response":{"id":"r1","object":"response",'
                     .. '"status":"in_progress","output":[]}}',
                   '{"type":"response.output_item.added","output_index":0,"item":{"id":"m1",'
                     .. '"type":"message","role":"assistant","content":[]}}' }
      for i = 1, n do
        ev[#ev + 1] = '{"type":"response.output_item.done","output_index":0,"item":{"id":"m1",'
          .. '"type":"message","' .. flood_key(i) .. '":1}}'
      end
      if completed then
        ev[#ev + 1] = '{"type":"response.completed","response":{"id":"r1","object":"response",'
          .. '"status":"completed"}}'
      end
      return sse(ev)
    end
    local client = client_of(serve { responses_stream(true), responses_stream(false) })
    for _ = 1, 2 do
      local res, err = client:respond { input = "hi", stream = true }
      assert.is_nil(res)
      assert.equal("limit", err.kind)
      assert.equal("the streamed response holds an object of more than 128 members", err.message)
      assert.is_table(err.partial)
      assert.is_true(count(err.partial.output[1]) <= 2 * 128 + 16)
    end
    client:close()
  end)
end)
