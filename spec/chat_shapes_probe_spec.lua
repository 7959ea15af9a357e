-- Chat replies and stream chunks of unusual but real shapes, each from a
-- one-off server (spec/support/oneshot.lua) byte for byte, chosen by the
-- request's model: what a user gets from them.
local aigc = require "aigc"
local oneshot = require "oneshot"

-- luacheck: push ignore 631 (the bodies, one a line as the servers send them)
local SERVER = [=[
  local oneshot = require "oneshot"
  local J, SSE = "application/json", "text/event-stream"
  local DONE = "data: [DONE]\n\n"
  local function data (t) return "data: " .. t .. "\n\n" end
  local function chunk (delta, finish, extra)
    return data('{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",' .. (extra or "")
      .. '"choices":[{"index":0,"delta":' .. delta .. ',"finish_reason":' .. (finish or "null") .. '}]}')
  end
  local function think (t) return chunk('{"content":[{"type":"thinking","thinking":[{"type":"text","text":"' .. t .. '"}]}]}') end
  local CASES = {
    -- Mistral's Magistral models stream their thinking as lists of parts in delta.content,
    -- then the answer (BerriAI/litellm#16272; as text parts or strings)
    ["magistral"] = { 200, SSE, chunk('{"role":"assistant","content":""}') .. think("A greeting") .. think(", answer it.")
      .. chunk('{"content":[{"type":"text","text":"Hel"}]}') .. chunk('{"content":"lo"}')
      .. chunk('{"content":[{"type":"text","text":"!"}]}', '"stop"') .. DONE },
    -- a choice's index as a float or a string
    ["index-float"] = { 200, SSE, data('{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0.0,"delta":{"content":"Hi"},"finish_reason":"stop"}]}') .. DONE },
    ["index-string"] = { 200, SSE, data('{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":"0","delta":{"content":"Hi"},"finish_reason":"stop"}]}') .. DONE },
  }
  local server = oneshot.listen()
  while true do
    local c, body = oneshot.read_request(server)
    local model = body:match('"model":"([^"]*)"')
    if model == "quit" then c:close(); break end
    local case = CASES[model] or { 404, J, '{"error":{"message":"no such case"}}' }
    c:send("HTTP/1.1 " .. case[1] .. " X\r\nContent-Type: " .. case[2] .. "\r\nConnection: close\r\n\r\n" .. case[3])
    c:close()
  end
]=]
-- luacheck: pop

describe("chat replies of unusual shapes", function ()
  local port, child, client

  setup(function () port, child = oneshot.start(SERVER) end)
  teardown(function ()
    local c = aigc.client { base_url = "http://127.0.0.1:" .. port .. "/v1", max_retries = 0, timeout = 5 }
    c:chat { model = "quit", messages = { { role = "user", content = "x" } } }
    c:close()
    child:wait(10)
  end)
  before_each(function ()
    client = aigc.client { base_url = "http://127.0.0.1:" .. port .. "/v1", api_key = "sk-shapes-0123456789",
                           max_retries = 0, timeout = 30 }
  end)
  after_each(function () client:close() end)

  -- A streamed chat of `model`: the result, the error and the deltas (nil
  -- ones as false); `two`: the callback takes the chunk too.
  local function stream (model, two)
    local deltas = {}
    local cb = two and function (d, _) deltas[#deltas + 1] = d or false end
                    or function (d) deltas[#deltas + 1] = d or false end
    local res, err = client:chat { model = model, messages = { { role = "user", content = "Hi" } }, stream = cb }
    return res, err, deltas
  end

  describe("streamed by Mistral's Magistral models (content as lists of parts)", function ()
    for _, two in ipairs { false, true } do
      it("give the callback the text parts, res.text the answer and the content the parts merged"
         .. (two and " (two-parameter callback)" or ""), function ()
        local res, err, deltas = stream("magistral", two)
        assert.is_nil(err)
        assert.same({ "", false, false, "Hel", "lo", "!" }, deltas)
        assert.equal("Hello!", res.text)
        assert.same({ { type = "thinking", thinking = { { type = "text", text = "A greeting, answer it." } } },
                      { type = "text", text = "Hello!" } }, res.choices[1].message.content)
      end)
    end
  end)

  describe("streamed with a choice index that is not an integer", function ()
    for _, model in ipairs { "index-float", "index-string" } do
      it("say so (" .. model .. ")", function ()
        local res, err = stream(model)
        assert.is_nil(res)
        assert.equal("parse", err.kind)
        assert.matches("choice \"index\" is not an integer", err.message, 1, true)
      end)
    end
  end)
end)
