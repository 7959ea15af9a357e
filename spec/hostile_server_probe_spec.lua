-- A hostile server (or a broken proxy) on the other end, and a careless
-- caller: what such a peer sends must never crash, hang or leak, nor leave
-- the client or a conversation unusable. Each test here is a defect found by
-- probing (it failed before its fix). The servers are LuaSocket children
-- (spec/support/oneshot.lua) that answer each connection with one scripted
-- reply: no aigc on their side.
local aigc = require "aigc"
local oneshot = require "oneshot"
local hashflood = require "hashflood"

-- A server answering this test's requests with the raw replies given, in
-- order (spec/support/oneshot.lua): its base URL.
local function serve (replies) return oneshot.serve_raw(replies, finally) end

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

    it("whatever a reply decodes to can be encoded again, a few levels deeper too", function ()
      local at_limit = assert(aigc.json.decode(nested(200)))
      assert.equal(nested(200), aigc.json.encode(at_limit))
      local function wrapped (v, n)
        for _ = 1, n do v = { v } end
        return v
      end
      assert.equal(nested(208), aigc.json.encode(wrapped(at_limit, 8)))
      local v, err = aigc.json.decode(nested(201))
      assert.is_nil(v)
      assert.matches("nesting deeper than 200", err, 1, true)
      local ok, e = pcall(aigc.json.encode, wrapped(at_limit, 9))
      assert.is_false(ok)
      assert.matches("nesting too deep (more than 208 levels)", e, 1, true)
    end)

    -- A streamed Responses item comes at event.item (level 2) and goes back
    -- at params.input[i] (level 3) when the tool loop sends the whole input
    -- again (store = false): an item that decoded at the limit could not be
    -- sent, and respond() raised "bad argument #1 to 'respond_async'
    -- (params.input[2].x[1]...: nesting too deep)" -- a crash from a reply.
    it("a streamed Responses tool loop sends again the items it got (store = false)", function ()
      local function sse (events)
        return "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n" .. table.concat(events)
      end
      local item = '{"type":"function_call","id":"fc1","call_id":"c1","name":"f","arguments":"{}",'
        .. '"status":"completed","x":' .. nested(198) .. '}'   -- (the event: 200 levels)
      local base_url = serve {
        sse { 'event: response.output_item.done\ndata: {"type":"response.output_item.done","output_index":0,"item":'
                .. item .. '}\n\n',
              'event: response.completed\ndata: {"type":"response.completed","response":{"id":"r1",'
                .. '"object":"response","status":"completed"}}\n\n' },
        sse { 'event: response.completed\ndata: {"type":"response.completed","response":{"id":"r2","object":"response",'
                .. '"status":"completed","output":[{"type":"message","id":"m","role":"assistant",'
                .. '"content":[{"type":"output_text","text":"done"}]}]}}\n\n' } }
      local client = aigc.client { base_url = base_url, api_key = "sk-hostile-0123456789", model = "m",
                                   max_retries = 0, timeout = 30 }
      local ran = 0
      local tools = aigc.tools { { name = "f", description = "d", parameters = { type = "object", properties = {} },
                                   fn = function () ran = ran + 1; return "ok" end } }
      local ok, res, err = pcall(client.respond, client, { input = "hi", tools = tools, store = false,
                                                          stream = function () end })
      assert.is_true(ok, tostring(res))
      assert.is_table(res, tostring(err))
      assert.equal("done", res.text)
      assert.equal(1, ran)
      client:close()
    end)
  end)

  describe("an object whose keys flood Lua's string hash", function ()
    -- Lua 5.1 to 5.3 hash a key of 64 bytes from every third byte (from its
    -- end: 63, 60... 3): keys that differ only in the others all share one
    -- chain, and building the object costs n^2 / 2 steps (40,000 keys,
    -- 2.7 MB: 9 s on Lua 5.1; 64 MiB: hours). Lua 5.4 and LuaJIT hash
    -- the whole key, seeded: nothing to refuse there.
    local SAMPLED, flood_key, count = hashflood.SAMPLED, hashflood.flood_key, hashflood.count

    local function object_of (n, key)
      local members = {}
      for i = 1, n do members[i] = '"' .. key(i) .. '":' .. i end
      return "{" .. table.concat(members, ",") .. "}"
    end

    local N = 5000
    local FLOOD = object_of(N, flood_key)
    local HONEST = object_of(N, hashflood.honest_key)

    it("a reply holding one is a limit error there, and decodes whole elsewhere", function ()
      local function reply (metadata)
        return http_reply('{"id":"c1","object":"chat.completion","metadata":' .. metadata .. ',"choices":[{"index":0,'
          .. '"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}')
      end
      local base_url = serve { reply(FLOOD), reply(HONEST) }
      local client = aigc.client { base_url = base_url, api_key = "sk-hostile-0123456789", model = "m",
                                   max_retries = 0, timeout = 60 }
      local res, err = client:chat { messages = { { role = "user", content = "hi" } } }
      if SAMPLED then
        assert.is_nil(res)
        assert.equal("limit", err.kind)
        assert.equal("the response holds an object whose keys Lua hashes alike (a hash flood)", err.message)
      else
        assert.is_table(res, tostring(err))
        assert.equal(N, count(res.metadata))
      end
      -- keys that only look alike are no flood, on any Lua
      res, err = client:chat { messages = { { role = "user", content = "hi" } } }
      assert.is_table(res, tostring(err))
      assert.equal(N, count(res.metadata))
      client:close()
    end)

    -- Every string is interned in one table of the state (5.1: all; 5.2,
    -- 5.3: up to 40 bytes): the same keys as values, in an array or in
    -- objects of a few keys each, flood that one (20,000 of them: 1.2 s on
    -- Lua 5.1, quadratic).
    it("strings alike anywhere, values or keys of small objects: refused there too", function ()
      local values, objects = {}, {}
      for i = 1, N do
        values[i] = '"' .. flood_key(i) .. '"'
        objects[i] = '{"' .. flood_key(i) .. '":1}'
      end
      for _, text in ipairs { "[" .. table.concat(values, ",") .. "]", "[" .. table.concat(objects, ",") .. "]" } do
        local v, err = aigc.json.decode(text)
        if SAMPLED then
          assert.is_nil(v)
          assert.matches("strings that Lua hashes alike %(a hash flood%)$", err)
        else
          assert.equal(N, #v)
        end
      end
      local honest = {}
      for i = 1, N do honest[i] = ('"https://example.com/item/%d#k"'):format(i * 7919) end
      assert.equal(N, #assert(aigc.json.decode("[" .. table.concat(honest, ",") .. "]")))
    end)

    it("aigc.json.decode (a model's JSON output) alike", function ()
      local v, err = aigc.json.decode(FLOOD)
      if SAMPLED then
        assert.is_nil(v)
        assert.matches("an object whose keys Lua hashes alike %(a hash flood%)$", err)
      else
        assert.equal(N, count(v))
      end
      assert.equal(N, count(assert(aigc.json.decode(HONEST))))
    end)
  end)

  describe("token counts", function ()
    -- usage() trusted what a reply said it used: -5 tokens lowered the
    -- totals and the cost (a bot's budget check fooled), 1e308 made them
    -- inf (aigc.json.encode(client:usage()), a bot saving its spending,
    -- raised "cannot encode an infinite number").
    it("a count that is no count (negative, huge, not a number) counts nothing", function ()
      local function reply (usage)
        return http_reply('{"id":"c1","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,'
          .. '"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":' .. usage .. '}')
      end
      local base_url = serve {
        reply '{"prompt_tokens":-5000000,"completion_tokens":-7,"total_tokens":-5000007}',
        reply '{"prompt_tokens":1e308,"completion_tokens":1e308,"total_tokens":1e308}',
        reply '{"prompt_tokens":"many","completion_tokens":{},"total_tokens":[1]}',
        reply('{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,'
              .. '"prompt_tokens_details":{"cached_tokens":50}}') }
      local client = aigc.client { base_url = base_url, model = "gpt-4o", max_retries = 0, timeout = 30,
                                   prices = { ["gpt-4o"] = { input = 2, output = 10, cached_input = 1 } } }
      for _ = 1, 4 do assert(client:chat { messages = { { role = "user", content = "hi" } } }) end
      local u = client:usage()
      assert.equal(4, u.requests)
      assert.same({ 10, 5, 15 }, { u.prompt_tokens, u.completion_tokens, u.total_tokens })
      -- the last: its 10 prompt tokens all cached (not 50: -40 at the input price), 5 out
      assert.near((10 * 1 + 5 * 10) / 1e6, u.cost, 1e-12)
      assert.is_string(aigc.json.encode(u))
      client:close()
    end)

    -- usage().models is keyed by the name each reply gives: a server naming
    -- a new model in every reply grew it for the client's whole life (a
    -- long-running bot's memory, and every usage() copied it all).
    it("model names counted apart are bounded; the rest count as \"?\", still priced by name", function ()
      local totals = require("aigc.usage").new { gpt = { input = 1e6, output = 0 } }
      for i = 1, 5000 do
        totals:record({ model = "gpt-" .. i, usage = { prompt_tokens = 1, completion_tokens = 0 } })
      end
      totals:record({ model = ("x"):rep(1000), usage = { prompt_tokens = 1, completion_tokens = 0 } })
      local u = totals:snapshot()
      local names = 0
      for _ in pairs(u.models) do names = names + 1 end
      assert.equal(257, names)   -- (256 names, and "?")
      assert.equal(5001, u.requests)
      assert.equal(5001, u.prompt_tokens)
      assert.equal(5001 - 256, u.models["?"].prompt_tokens)
      assert.equal(5000, u.cost)   -- (every "gpt-" one at $1 a token; the 1000 x's at no price)
      assert.equal(1, u.models["gpt-256"].requests)
      assert.is_nil(u.models["gpt-257"])
    end)
  end)

  describe("a careless caller", function ()
    -- `api_key` is a client option: given to a call, it goes in the body as
    -- it is (a per-user key belongs in headers). A server that refuses the
    -- extra field and shows its input (FastAPI / pydantic's
    -- "extra_forbidden") put the key in err.message, tostring(err) and the
    -- log lines; with log_bodies the request's debug line showed it too.
    it("a call's api_key param is that call's secret: a server's echo of it is scrubbed", function ()
      local KEY = "sk-peruser-" .. ("Tq4Wm8Zr2Xv6"):rep(2)
      local body = '{"object":"error","message":"[{\'type\': \'extra_forbidden\', \'loc\': (\'body\', \'api_key\'), '
        .. '\'input\': \'' .. KEY .. '\'}]","type":"BadRequestError","code":400}'
      local base_url = serve { "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: " .. #body
                                 .. "\r\nConnection: close\r\n\r\n" .. body }
      local lines = {}
      local client = aigc.client { base_url = base_url, model = "m", max_retries = 0, timeout = 30, log_bodies = true,
                                   log = function (_, line) lines[#lines + 1] = line end }
      local res, err = client:chat { messages = { { role = "user", content = "hi" } }, api_key = KEY }
      assert.is_nil(res)
      assert.equal(400, err.status)
      assert.matches("'input': '[redacted]'", err.message, 1, true)
      for _, text in ipairs { err.message, tostring(err), table.concat(lines, "\n") } do
        assert.is_nil(text:find(KEY:sub(1, 12), 1, true), text)
      end
      assert.equal(2, #lines)   -- (the request with its body, and its end)
      client:close()
    end)
  end)
end)
