-- A callback that raises a value that is not a string (a game's
-- error({ reason = "npc_left" }), an object with __tostring, a userdata):
-- the error of kind "callback" keeps that value as err.value, and its
-- message is the value's text, never an address ("table: 0x55a9...") and
-- never a new error. Before the fix the message was tostring()'s
-- "table: 0x..." and the value was lost.
local aigc = require "aigc"
local devserver = require "devserver"
local luachild = require "luachild"

warn("@on")

local USER = { { role = "user", content = "Generate a short story about a robot that learns to paint." } }

local function no_address (s)
  assert.is_string(s)
  assert.is_nil(s:find("0x", 1, true), s)
end

describe("a callback's error that is not a string", function ()
  local srv, client

  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { model = "aigc-dev" })

  -- The error of a blocking streamed chat whose callback `where` raises v.
  local function raised (where, v)
    local p = { messages = USER, stream = function () end }
    p[where] = function () error(v) end
    local ok, res, err = pcall(client.chat, client, p)
    assert.is_true(ok, tostring(res))
    assert.is_nil(res)
    assert.equal("callback", err.kind)
    return err
  end

  for _, where in ipairs { "stream", "on_stream_end" } do
    describe("raised by " .. where, function ()
      it("is kept whole as err.value, unchanged", function ()
        local npc = { name = "Ada" }
        local reason = { reason = "npc_left", npc = npc, note = "the guard saw it" }
        local err = raised(where, reason)
        assert.equal(reason, err.value)   -- (the same table: the game reads its fields)
        assert.equal("npc_left", err.value.reason)
        assert.equal(npc, err.value.npc)
        assert.equal("the guard saw it", err.value.note)
        assert.equal("a table error value without a message", err.message)
        no_address(tostring(err))
      end)

      it("gives its message the table's message field or its __tostring", function ()
        local err = raised(where, { message = "the door is locked" })
        assert.equal("the door is locked", err.message)
        local shown = setmetatable({}, { __tostring = function () return "npc left the scene" end })
        err = raised(where, shown)
        assert.equal("npc left the scene", err.message)
        assert.equal(shown, err.value)
      end)

      it("never shows an address, nor raises, whatever the value's metatable does", function ()
        local addressed = setmetatable({}, { __tostring = function () return "thing: 0x55d0c0ffee10" end })
        local err = raised(where, addressed)
        assert.equal("a table error value without a message", err.message)
        assert.equal(addressed, err.value)
        local hostile = setmetatable({}, { __index = function () error("no fields for you") end,
                                           __tostring = function () error("no text for you") end })
        err = raised(where, hostile)
        assert.equal(hostile, err.value)
        assert.equal("(a table value whose __tostring failed)", err.message)
        err = raised(where, io.stdout)   -- (a userdata whose own __tostring is "file (0x...)")
        assert.equal(io.stdout, err.value)
        assert.equal("a userdata error value without a message", err.message)
        local closed = io.tmpfile()
        closed:close()
        err = raised(where, closed)   -- (its __tostring holds no address: kept)
        assert.equal("file (closed)", err.message)
        err = raised(where, false)
        assert.equal(false, err.value)
        assert.equal("false", err.message)
      end)
    end)
  end

  it("a __tostring that closes the client or cancels the request: that end wins (re-entrancy)", function ()
    for _, where in ipairs { "stream", "on_stream_end" } do
      local c = aigc.client { base_url = srv.base_url }
      local closing = setmetatable({}, { __tostring = function () c:close(); return "closed it" end })
      local p = { messages = USER, stream = function () end }
      p[where] = function () error(closing) end
      local res, err = c:chat(p)
      assert.is_nil(res)
      assert.equal("canceled", err.kind)
      local req
      local canceling = setmetatable({}, { __tostring = function () req:cancel(); return "canceled it" end })
      p[where] = function () error(canceling) end
      req = client:chat_async(p)
      res, err = req:wait()
      assert.is_nil(res)
      assert.equal("canceled", err.kind)
    end
    assert(client:chat "still usable")
  end)

  it("on stderr, an on_done that raised an open file is shown without its address", function ()
    local r = luachild.run([[
      local aigc = require "aigc"
      local c = aigc.client { base_url = arg[1], max_retries = 0 }
      assert(c:chat { messages = { { role = "user", content = "Hi" } }, on_done = function () error(io.stdout) end })
      c:close()
      print("closed")
    ]], { args = { srv.base_url } })
    assert.equal(0, r.status, r.stderr)
    assert.equal("closed\n", r.stdout)
    assert.matches("no step() collected it before the client closed): a userdata error value without a message\n",
                   r.stderr, 1, true)
    no_address(r.stderr)
  end)

  -- (the value is the script's own object, kept as it is; but the text aigc writes of
  -- it to stderr is aigc's: its __tostring put the client's key there whole)
  it("on stderr, a value's text is scrubbed of the client's key: at close, at collection, a failing handler",
     function ()
    local KEY = "sk-Qz7Wx9Lk2Rt5Yp8-stderr-key"
    local r = luachild.run([[
      local aigc = require "aigc"
      local key = arg[2]
      local npc = setmetatable({}, { __tostring = function () return "npc holding " .. key end })
      local p = { messages = { { role = "user", content = "Hi" } }, on_done = function () error(npc) end }
      local c = aigc.client { base_url = arg[1], api_key = key, max_retries = 0 }
      assert(c:chat(p))
      c:close()
      c = aigc.client { base_url = arg[1], api_key = key, max_retries = 0 }
      assert(c:chat(p))
      c = nil
      collectgarbage()
      collectgarbage()
      c = aigc.client { base_url = arg[1], api_key = key, max_retries = 0,
                        error_handler = function () error(npc) end }
      assert(c:chat(p))
      c:close()
      print("closed")
    ]], { args = { srv.base_url, KEY } })
    assert.equal(0, r.status, r.stderr)
    assert.equal("closed\n", r.stdout)
    local _, n = r.stderr:gsub("npc holding %[redacted%]", "")
    -- (close, collection, the handler's and the one it was given; shown without the key)
    assert.equal(4, n, (r.stderr:gsub(KEY:gsub("%p", "%%%0"), "KEY")))
    assert.is_nil(r.stderr:find(KEY, 1, true), "the key on stderr")
  end)

  -- (the report scrubbed the value in place: the game's object lost its fields' text)
  it("an object on_done raises is handed back unchanged, by step() and to the error_handler", function ()
    local KEY = "sk-Qz7Wx9Lk2Rt5Yp8-object-key"
    local seen = {}
    for _, handler in ipairs { false, true } do
      local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", api_key = KEY, max_retries = 0,
                              error_handler = handler and function (e) seen[#seen + 1] = e end or nil }
      local npc = { message = "npc " .. KEY, stats = { secret = KEY } }
      local req = c:chat_async { messages = USER, on_done = function () error(npc) end }
      req:wait()
      local _, errs = c:step(0)
      c:close()
      local got = handler and seen[#seen] or errs and errs[1]
      assert.is_true(got == npc, "the same object")
      assert.is_true(npc.message == "npc " .. KEY and npc.stats.secret == KEY, "the object was changed")
    end
  end)

  it("a string keeps its traceback and has no value", function ()
    local err = raised("stream", "boom in my callback")
    assert.matches("boom in my callback", err.message, 1, true)
    assert.matches("stack traceback", err.traceback, 1, true)
    assert.is_nil(err.value)
  end)

  it("the value survives collections while the error is kept", function ()
    local err = raised("stream", { reason = "npc_left" })
    collectgarbage()
    collectgarbage()
    assert.equal("npc_left", err.value.reason)
  end)

  it("is the script's own object: the redaction changes the message, never the value", function ()
    local key = "sk-cberr-0123456789abcdefghij"
    local c = aigc.client { base_url = srv.base_url, api_key = key }
    local raised_value = { message = "rejected " .. key, deep = { key } }
    local res, err = c:chat { messages = USER, stream = function () error(raised_value) end }
    c:close()
    assert.is_nil(res)
    assert.equal(raised_value, err.value)
    assert.equal("rejected " .. key, raised_value.message)   -- (left as the script made it)
    assert.equal(key, raised_value.deep[1])
    assert.is_nil(err.message:find(key, 1, true))   -- (no secret in the message)
    assert.matches("[redacted]", err.message, 1, true)
  end)

  it("a task's error keeps it too (the Lua layer's callback errors)", function ()
    local errors = {}
    local c = aigc.client { base_url = srv.base_url, error_handler = function (e) errors[#errors + 1] = e end }
    local reason = { reason = "npc_left" }
    c:spawn(function ()
      assert(c:chat "Hi")
      error(reason)
    end)
    c:spawn(function () error(io.stdout) end)
    local deadline = os.time() + 30
    while #errors < 2 and os.time() < deadline do c:step(0.05) end
    c:close()
    assert.equal(2, #errors)
    table.sort(errors, function (a, b) return type(a.value) < type(b.value) end)
    assert.equal("callback", errors[1].kind)
    assert.equal(reason, errors[1].value)
    assert.matches("a table error value without a message", errors[1].message, 1, true)
    assert.equal(io.stdout, errors[2].value)
    assert.matches("a userdata error value without a message", errors[2].message, 1, true)
    for _, e in ipairs(errors) do
      no_address(e.message)
      no_address(e.traceback)
    end
  end)

  it("a conversation's summarize that returns nil and a table: kept as err.value", function ()
    local why = { reason = "quota" }
    local conv = aigc.conversation { client = client, max_context_tokens = 40, keep_last = 1,
      summarize = function () return nil, why end }
    for i = 1, 4 do
      conv:add { role = "user", content = ("question %02d "):format(i) .. string.rep("q", 28) }
      conv:add { role = "assistant", content = ("answer %02d "):format(i) .. string.rep("a", 30) }
    end
    local reply, err = conv:say "Echo: x"
    assert.is_nil(reply)
    assert.equal("callback", err.kind)
    assert.equal(why, err.value)
    assert.equal("summarize failed: a table error value without a message", err.message)
  end)

  it("a tool raising an open file sends the model no address", function ()
    local ts = aigc.tools {
      { name = "raises_file", fn = function () error(io.stdout) end },
      { name = "raises_named", fn = function ()
          error(setmetatable({}, { __tostring = function () return "the spell fizzled" end })) end },
    }
    local asked = { { role = "user", content = "raises_file and raises_named" } }
    local res = assert(client:chat { tools = ts, messages = asked })
    local sent = srv:requests()[#srv:requests()].body_json.messages
    assert.equal('{"error":"a userdata error value without a message"}', sent[3].content)
    assert.equal('{"error":"the spell fizzled"}', sent[4].content)
    assert.equal(io.stdout, res.tool_calls_made[1].error_value)
  end)
end)
