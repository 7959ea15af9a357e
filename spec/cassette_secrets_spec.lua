-- Cassettes meant for sharing hold no secret: what the recording proxy
-- keeps of a reply is masked of every credential the request carried --
-- any header the client takes for one by its name, and a call's own key
-- sent in the body -- not only Authorization, api-key and x-api-key.

local aigc = require "aigc"
local cli = require "cli"
local upstream = require "upstream"

local read = cli.read

-- An upstream (spec/support/upstream.lua) that echoes, in its reply's text,
-- the values of the request's X-Goog-Api-Key and Ocp-Apim-Subscription-Key
-- headers and of the body's api_key.
local ECHO = [=[
    local echoed = {}
    for name, v in buf:sub(1, h):gmatch("\r\n([^:\r\n]+):%s*([^\r\n]*)") do
      local n = name:lower()
      if n == "x-goog-api-key" or n == "ocp-apim-subscription-key" then echoed[#echoed + 1] = v end
    end
    echoed[#echoed + 1] = buf:sub(h + 4):match('"api_key":"([^"]*)"')
    reply(s, "keys: " .. table.concat(echoed, " "))
]=]

describe("a cassette's keys", function ()
  local devserver = require "devserver"
  local srv, dir
  setup(function () srv = devserver.start { pause_ms = 0 }; dir = cli.home() end)
  teardown(function () srv:stop(); cli.rmdir(dir) end)

  it("a prompt holding the client's key: not on the tape, and the tape replays", function ()
    -- (the proxy wrote it in the exchange's key; recorded in the client, the line was
    -- scrubbed but the replay's key was not, and the call missed)
    local key = "sk-prompt-key-5551234567"
    local p = { messages = { { role = "user", content = "Echo: why is " .. key .. " refused?" } } }
    for _, proxy in ipairs { true, false } do
      local path = dir .. "/prompt-" .. tostring(proxy) .. ".jsonl"
      local rec = aigc.client { base_url = srv.base_url, model = "aigc-dev", api_key = key,
                                cassette = { path = path, mode = "record", proxy = proxy } }
      assert(rec:chat(p))
      rec:close()
      local tape = read(path)
      assert.equal(proxy, tape:find('"raw"', 1, true) ~= nil)
      assert.is_nil(tape:find(key, 1, true), "the key is on the tape, proxy " .. tostring(proxy))
      local c = aigc.client { base_url = "http://127.0.0.1:9/v1", model = "aigc-dev", api_key = key,
                              cassette = { path = path, mode = "replay", timing = false } }
      local res, err = c:chat(p)
      c:close()
      assert.is_nil(err and err.message, "proxy " .. tostring(proxy))
      assert.matches("why is %[redacted%]", res.text)
    end
  end)

  -- (the recording proxy is a child process: its command line is anyone's to read
  -- in `ps`; it had the whole base_url, a `?api-key=` or `?code=` in it too)
  it("a key in base_url's query: not on the recording proxy's command line", function ()
    local key = "qk-Qz7Wx9Lk2Rt5Yp8-cmdline"
    local path = dir .. "/cmdline.jsonl"
    local rec = aigc.client { base_url = srv.base_url .. "?api-key=" .. key .. "&code=" .. key .. "x",
                              model = "aigc-dev", cassette = { path = path, mode = "record" } }
    local cas = rec._cassette or rec.cassette
    local pid = assert(cas and cas.pid, "the proxy's pid")
    local cmdline = read("/proc/" .. pid .. "/cmdline")
    local res, err = rec:chat { messages = { { role = "user", content = "Hi" } } }
    rec:close()
    assert.is_nil(err and err.message)
    assert.is_string(res.text)
    assert.is_truthy(cmdline:find("--record", 1, true))   -- (the proxy's own line: read)
    assert.is_nil(cmdline:find(key, 1, true), "the key is on the proxy's command line")
    assert.is_nil(read(path):find(key, 1, true), "the key is on the tape")
  end)
end)

describe("a cassette's secrets", function ()
  local dir, up, port
  setup(function ()
    dir = cli.home()
    up = upstream.start(dir .. "/echo.lua", ECHO)
    port = up.port
  end)
  teardown(function ()
    up.stop()
    cli.rmdir(dir)
  end)

  it("a key echoed from any credential header or from the body is masked, by the proxy and in the client", function ()
    local goog, apim, body_key = "goog-k-5550123456", "apim-k-5550654321", "sk-body-k-5550999888"
    for _, proxy in ipairs { true, false } do
      local path = dir .. "/keys-" .. tostring(proxy) .. ".jsonl"
      local rec = aigc.client { base_url = "http://127.0.0.1:" .. port .. "/v1", model = "m",
                                headers = { ["X-Goog-Api-Key"] = goog },
                                cassette = { path = path, mode = "record", proxy = proxy } }
      local live = assert(rec:chat { messages = { { role = "user", content = "hi" } }, api_key = body_key,
                                     headers = { ["Ocp-Apim-Subscription-Key"] = apim } })
      -- (the upstream did echo them: compared, not printed)
      assert.is_truthy(live.text:find(goog, 1, true) and live.text:find(apim, 1, true)
                       and live.text:find(body_key, 1, true))
      rec:close()
      local tape = read(path)
      assert.equal(proxy, tape:find('"raw"', 1, true) ~= nil)
      assert.matches("keys: ", tape, 1, true)
      -- (the messages name no key: no secret in test output)
      for i, key in ipairs { goog, apim, body_key } do
        assert.is_nil(tape:find(key, 1, true), "key " .. i .. " on the tape, proxy " .. tostring(proxy))
      end
    end
  end)

  -- A credential header of more than one word after its scheme: only the
  -- last word was masked, the key before it was on the tape.
  it("every word of a credential header's value is masked, but a known auth scheme in front", function ()
    local first, second = "goog-first-5550123456", "goog-second-5550654321"
    for _, proxy in ipairs { true, false } do
      local path = dir .. "/words-" .. tostring(proxy) .. ".jsonl"
      local rec = aigc.client { base_url = "http://127.0.0.1:" .. port .. "/v1", model = "m",
                                headers = { ["X-Goog-Api-Key"] = "Negotiate " .. first .. " " .. second },
                                cassette = { path = path, mode = "record", proxy = proxy } }
      local live = assert(rec:chat { messages = { { role = "user", content = "hi" } } })
      assert.is_truthy(live.text:find(first, 1, true) and live.text:find(second, 1, true))
      rec:close()
      local tape = read(path)
      assert.equal(proxy, tape:find('"raw"', 1, true) ~= nil)
      assert.matches("keys: Negotiate ", tape, 1, true)
      for i, key in ipairs { first, second } do
        assert.is_nil(tape:find(key, 1, true), "word " .. i .. " on the tape, proxy " .. tostring(proxy))
      end
    end
  end)
end)

-- A stream whose deltas carry the key a few characters at a time (a model
-- repeating the key of a prompt, "why is sk-... refused?", one token a
-- chunk): no one event held 12 bytes of it, so the tape recorded in the
-- client kept it whole, in pieces that a replay joins again.
describe("a key split over a stream's deltas", function ()
  local scripted = require "scripted"
  local KEY = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1w"
  local dir
  before_each(function () dir = cli.home() end)
  after_each(function () cli.rmdir(dir) end)

  -- The reply that streams the key 4 characters a chunk, then " is refused."
  local function split_reply ()
    local chunks = {}
    for i = 1, #KEY, 4 do chunks[#chunks + 1] = { content = KEY:sub(i, i + 3) } end
    chunks[#chunks + 1] = { content = " is refused." }
    return scripted.sse(chunks, "stop")
  end

  -- The calls `params` recorded (proxy or not) from a server giving `replies`,
  -- then replayed: the replies' texts, and the tape's bytes.
  local function record_replay (replies, params, proxy)
    local srv = scripted.start(replies)
    local tape = dir .. "/split.jsonl"
    local rec = aigc.client { base_url = srv.base_url, api_key = KEY, model = "m",
                              cassette = { path = tape, mode = "record", proxy = proxy } }
    for _, p in ipairs(params) do assert(rec:chat(p)) end
    rec:close()
    srv.finish()
    local c = aigc.client { base_url = "http://127.0.0.1:9/v1", api_key = KEY, model = "m",
                            cassette = { path = tape, mode = "replay", timing = false } }
    local texts = {}
    for i, p in ipairs(params) do texts[i] = assert(c:chat(p)).text end
    c:close()
    return texts, cli.read(tape)
  end

  local function params (content)
    return { messages = { { role = "user", content = content } }, stream = function () end }
  end

  it("is redacted from the tape; a stream with no secret replays as it came", function ()
    local plain = scripted.sse({ { content = "Hello" }, { content = ", world" } }, "stop")
    local texts, tape = record_replay({ split_reply(), plain }, { params "one", params "two" }, false)
    assert.is_true(texts[1] == "[redacted] is refused.")   -- (compared, not printed)
    assert.equal("Hello, world", texts[2])
    local pieces = {}
    for piece in tape:gmatch('content\\":\\"(.-)\\"') do pieces[#pieces + 1] = piece end
    assert.is_true(#pieces >= 3)
    assert.is_nil(table.concat(pieces):find(KEY:sub(9, 20), 1, true), "the key's pieces are on the tape")
  end)

  it("is masked on the recording proxy's tape, as many bytes", function ()
    local texts, tape = record_replay({ split_reply() }, { params "one" }, true)
    assert.matches('"raw":true', tape, 1, true)
    assert.is_true(texts[1] == ("*"):rep(#KEY) .. " is refused.")   -- (compared, not printed)
  end)
end)
