-- vLLM (and SGLang, FastChat) tell a failure after a stream's 200 with an
-- event holding their error object, {"object": "error", "message", "type",
-- "code"}, then [DONE]. It has no "error" member, and a chunk of another
-- object is skipped: the server's message was lost, the call failed as
-- "the stream was incomplete" (kind "stream"), or, with nothing before
-- it, "[DONE] came before any choice". Real HTTP from a child server
-- (spec/support/oneshot.lua).
local aigc = require "aigc"
local oneshot = require "oneshot"

local ERR = '{"object":"error","message":"This model\'s maximum context length is 4096 tokens",'
  .. '"type":"BadRequestError","param":null,"code":400}'
local CHUNK = '{"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
  .. '"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}'

local function sse_reply (events)
  local body = {}
  for i, e in ipairs(events) do body[i] = "data: " .. e .. "\n\n" end
  body = table.concat(body)
  return "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: " .. #body
    .. "\r\nConnection: close\r\n\r\n" .. body
end

local function is_vllm_error (err)
  assert.equal("api", err.kind)
  assert.equal(200, err.status)
  assert.equal("This model's maximum context length is 4096 tokens", err.message)
  assert.equal("BadRequestError", err.type)
  assert.equal(400, err.code)
end

describe("vLLM's error object in a stream", function ()
  it("fails the call with the server's message, whatever form reads the stream", function ()
    local mid = sse_reply { CHUNK, ERR, "[DONE]" }
    local base = oneshot.serve_raw({ mid, mid, mid, sse_reply { ERR, "[DONE]" } }, finally)
    local c = aigc.client { base_url = base, api_key = "sk-fake-0123456789", max_retries = 0 }
    finally(function () c:close() end)
    local msgs = { { role = "user", content = "hi" } }
    local deltas = {}
    -- the callback of one parameter (chunks merged from their bytes)
    local res, err = c:chat { model = "m", messages = msgs, stream = function (d) deltas[#deltas + 1] = d end }
    assert.is_nil(res)
    is_vllm_error(err)
    assert.same({ "Hel" }, deltas)
    assert.equal("Hel", err.partial.choices[1].message.content)
    -- the callback of two (each chunk decoded)
    res, err = c:chat { model = "m", messages = msgs, stream = function (_, chunk) assert(chunk) end }
    assert.is_nil(res)
    is_vllm_error(err)
    -- the iterator
    local s = c:stream { model = "m", messages = msgs }
    local ok, raised = pcall(function () for _ in s do end end)
    assert.is_false(ok)
    is_vllm_error(raised)
    -- before any chunk
    res, err = c:chat { model = "m", messages = msgs, stream = true }
    assert.is_nil(res)
    is_vllm_error(err)
  end)

  it("in a 200 body that is not streamed is an error of kind \"api\" too", function ()
    local base = oneshot.serve_raw({ oneshot.http_reply("200 OK", ERR) }, finally)
    local c = aigc.client { base_url = base, api_key = "sk-fake-0123456789", max_retries = 0 }
    finally(function () c:close() end)
    local res, err = c:chat { model = "m", messages = { { role = "user", content = "hi" } } }
    assert.is_nil(res)
    is_vllm_error(err)
  end)
end)
