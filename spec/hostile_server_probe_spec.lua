-- A hostile server (or a broken proxy) on the other end, and a careless
-- caller: what such a peer sends must never crash, hang or leak, nor leave
-- the client or a conversation unusable. Each test here is a defect found by
-- probing (it failed before its fix). The servers are LuaSocket children
-- (spec/support/oneshot.lua) that answer each connection with one scripted
-- reply: no aigc on their side.
local aigc = require "aigc"
local oneshot = require "oneshot"

-- A server answering its connections, in order, with the raw replies given
-- (one a connection, then closed).
local SCRIPTED = [[
  local oneshot = require "oneshot"
  local server = oneshot.listen()
  for i = 1, #arg do
    local f = assert(io.open(arg[i], "rb"))
    local reply = f:read("*a")
    f:close()
    local c = oneshot.read_request(server)
    c:send(reply)
    c:close()
  end
]]

-- Starts the scripted server for this test (stopped at its end, killed
-- when a failure left it waiting): returns its base URL.
local function serve (replies)
  local files = {}
  for i, reply in ipairs(replies) do
    files[i] = os.tmpname()
    local f = assert(io.open(files[i], "wb"))
    f:write(reply)
    f:close()
  end
  local port, child = oneshot.start(SCRIPTED, files)
  finally(function ()
    child:wait(10)
    for _, path in ipairs(files) do os.remove(path) end
  end)
  return "http://127.0.0.1:" .. port .. "/v1"
end

local function http_reply (body)
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " .. #body
    .. "\r\nConnection: close\r\n\r\n" .. body
end

local function chat_reply (message)
  return http_reply('{"id":"c1","object":"chat.completion","choices":[{"index":0,"message":'
    .. message .. ',"finish_reason":"stop"}]}')
end

local function nested (n)
  return string.rep("[", n) .. string.rep("]", n)
end

describe("a hostile server", function ()
  describe("a reply nested deeper than a request may be", function ()
    -- The decoder took 512 levels and the encoder 200: a reply 201 to 512
    -- levels deep decoded, and what a conversation keeps of it (the tool
    -- calls, whole) could never be sent again: every later say() raised
    -- "calling 'say' on bad self (self.messages[2].tool_calls[1].x[1]...:
    -- nesting too deep)", the conversation lost for good (a bot's channel).
    it("fails that call (kind parse) and leaves the conversation usable", function ()
      local deep_tool_call = '{"role":"assistant","content":"hi","tool_calls":[{"id":"t1","type":"function",'
        .. '"function":{"name":"f","arguments":"{}"},"x":' .. nested(250) .. '}]}'
      local base_url = serve { chat_reply(deep_tool_call),
                                             chat_reply('{"role":"assistant","content":"ok"}') }
      local client = aigc.client { base_url = base_url, api_key = "sk-hostile-0123456789", model = "m",
                                   max_retries = 0, timeout = 30 }
      local conv = aigc.conversation { client = client }
      local reply, err = conv:say "hello"
      assert.is_nil(reply)
      assert.equal("parse", err.kind)
      assert.matches("nesting deeper than 200", err.message, 1, true)
      assert.equal(0, #conv.messages)   -- (nothing of the failed exchange kept)
      local ok, again = pcall(conv.say, conv, "again")
      assert.is_true(ok, tostring(again))
      assert.equal("ok", again)
      client:close()
    end)

    it("whatever a reply decodes to can be encoded again: the two limits are one", function ()
      local at_limit = assert(aigc.json.decode(nested(200)))
      assert.equal(nested(200), aigc.json.encode(at_limit))
      local v, err = aigc.json.decode(nested(201))
      assert.is_nil(v)
      assert.matches("nesting deeper than 200", err, 1, true)
    end)
  end)
end)
