-- What real OpenAI-compatible servers send that OpenAI does not, and what
-- a user gets from it: the reply, or a clear error. Each answer comes byte
-- for byte from a one-off server (spec/support/oneshot.lua), chosen by the
-- request's model. (spec/backends_spec.lua holds the servers' error bodies.)
local aigc = require "aigc"
local oneshot = require "oneshot"

-- luacheck: push ignore 631 (the bodies, one a line as the servers send them)
local SERVER = [=[
  local oneshot = require "oneshot"
  local J, SSE = "application/json", "text/event-stream"
  local function data (t) return "data: " .. t .. "\n\n" end
  local function chunk (i, delta, finish)
    return data('{"id":"c1","object":"chat.completion.chunk","created":1,"model":"tgi","system_fingerprint":"2.0.4-native",'
      .. '"choices":[{"index":' .. i .. ',"delta":' .. delta .. ',"logprobs":null,"finish_reason":' .. (finish or "null") .. '}]}')
  end
  local function text (i, t, finish) return chunk(i, '{"role":"assistant","content":"' .. t .. '"}', finish) end
  local CASES = {
    -- Hugging Face TGI before 2.2 ends every stream with no [DONE] (huggingface/text-generation-inference#1896)
    ["tgi-whole"] = { 200, SSE, text(0, "Hel") .. text(0, "lo", '"eos_token"') },
    ["tgi-cut"] = { 200, SSE, text(0, "Hel") .. text(0, "lo") },
    -- a finish_reason "" as some servers send before the end ("not yet")
    ["tgi-empty-finish"] = { 200, SSE, text(0, "Hel") .. text(0, "lo", '""') },
    -- n = 2: both choices finished; only the first one came
    ["tgi-n2-whole"] = { 200, SSE, text(1, "B") .. text(0, "A", '"stop"') .. text(1, "b", '"stop"') },
    ["tgi-n2-one"] = { 200, SSE, text(0, "A", '"stop"') },
    -- a finish_reason, then the body ends inside the next event (the usage chunk, cut)
    ["tgi-cut-event"] = { 200, SSE, text(0, "Hello", '"stop"') .. 'data: {"id":"c1","object":"chat.completion.chunk","choices":[],"usage":{"prompt' },
    -- a finish_reason, then the connection breaks (fewer bytes than its Content-Length)
    ["tgi-broken"] = { 200, SSE, text(0, "Hello", '"stop"'), 64 },
    -- the legacy completions stream, TGI alike
    ["tgi-completion"] = { 200, SSE, data('{"id":"c1","object":"text_completion","created":1,"model":"tgi","choices":[{"index":0,"text":"Hel","logprobs":null,"finish_reason":null}]}')
      .. data('{"id":"c1","object":"text_completion","created":1,"model":"tgi","choices":[{"index":0,"text":"lo","logprobs":null,"finish_reason":"length"}]}') },
    -- two prompts with n = 2 ask for four choices: two came
    ["tgi-prompts"] = { 200, SSE, data('{"id":"c1","object":"text_completion","created":1,"model":"tgi","choices":[{"index":0,"text":"a","finish_reason":"stop"},{"index":1,"text":"b","finish_reason":"stop"}]}') },
    -- a server that streams whether asked or not (mini-sglang: sgl-project/mini-sglang#51), whole or cut;
    -- a JSON reply labelled as an event stream
    ["sglang"] = { 200, SSE, text(0, "Hel") .. text(0, "lo", '"stop"') .. "data: [DONE]\n\n" },
    ["sglang-cut"] = { 200, SSE, text(0, "Hel") },
    -- the same whose first bytes are a blank line, sent on their own (the events follow 0.3 s later)
    ["sglang-blank-first"] = { 200, SSE, text(0, "Hel") .. text(0, "lo", '"stop"') .. "data: [DONE]\n\n", nil, nil, "\n" },
    -- the media type in capitals, which is the same type (RFC 9110: case-insensitive)
    ["sglang-caps"] = { 200, "Text/Event-Stream;Charset=UTF-8", text(0, "Hel") .. text(0, "lo", '"stop"') .. "data: [DONE]\n\n" },
    ["caps-comments-only"] = { 200, "TEXT/EVENT-STREAM", ": keep-alive\n\n" },
    -- an event stream cut before its first byte (a proxy's, a crashed worker's)
    ["sse-empty"] = { 200, SSE, "" },
    -- a local server's stream: choices with no "index", the role in the first delta only, a first chunk
    -- of no choice (Azure's prompt_filter_results), reasoning_content (vLLM, llama.cpp) and reasoning
    -- (OpenRouter), the usage in a last chunk of no choice
    ["no-index"] = { 200, SSE, data('{"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"prompt_filter_results":[]}')
      .. data('{"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"delta":{"role":"assistant","reasoning_content":"th"}}]}')
      .. data('{"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"delta":{"reasoning":"ink","content":"He"}}]}')
      .. data('{"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"delta":{"content":"llo"},"finish_reason":"stop"}]}')
      .. data('{"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}')
      .. "data: [DONE]\n\n" },
    ["json-as-sse"] = { 200, SSE, '\n{"id":"j1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}]}' },
    -- a gateway's error (or a whole reply) as plain JSON under text/event-stream, to a stream
    ["sse-label-error"] = { 200, SSE, '{"error":{"message":"quota exceeded for this key","type":"insufficient_quota","code":"insufficient_quota"}}' },
    -- Azure OpenAI's 429: retry-after-ms beside retry-after; Azure's own x-ms-retry-after-ms alone
    ["azure-429"] = { 429, J, '{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded call rate limit."}}',
      nil, "retry-after: 2\r\nretry-after-ms: 1500\r\nx-ms-retry-after-ms: 1500\r\n" },
    ["azure-429-xms"] = { 429, J, '{"error":{"code":"429","message":"rate limit"}}', nil, "x-ms-retry-after-ms: 1500\r\n" },
    -- an "error" member in every reply, empty (servers that always fill the field): no error,
    -- as the SDKs take it (Python's truth); LocalAI's finish_reason "" before the end
    ["error-empty-stream"] = { 200, SSE, data('{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","error":"","choices":[{"index":0,"finish_reason":"","delta":{"content":"Hel"}}]}')
      .. data('{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","error":"","choices":[{"index":0,"finish_reason":"stop","delta":{"content":"lo"}}]}') .. "data: [DONE]\n\n" },
    ["error-empty-object"] = { 200, J, '{"id":"e1","object":"chat.completion","created":1,"model":"m","error":{},"choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}]}' },
    ["error-zero"] = { 200, J, '{"id":"e2","object":"chat.completion","created":1,"model":"m","error":0,"choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}]}' },
    -- Mistral's Magistral models: content as a list of parts, thinking then text (simonw/llm-mistral#39)
    ["magistral"] = { 200, J, '{"id":"m1","object":"chat.completion","created":1,"model":"magistral-medium-2509","choices":[{"index":0,"message":{"role":"assistant","tool_calls":null,"content":[{"type":"thinking","thinking":[{"type":"text","text":"A greeting."}]},{"type":"text","text":"Hello"},{"type":"text","text":" there!"}]},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"total_tokens":9,"completion_tokens":4}}' },
    ["magistral-thinking"] = { 200, J, '{"id":"m2","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":[{"type":"thinking","thinking":[{"type":"text","text":"Hm."}]}]},"finish_reason":"length"}]}' },
    ["parts-many"] = { 200, J, '{"id":"m3","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":['
      .. ('{"type":"text","text":"ab"},'):rep(20) .. 'null,{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"c"}]},"finish_reason":"stop"}]}' },
  }
  local server = oneshot.listen()
  while true do
    local c, body = oneshot.read_request(server)
    local model = body:match('"model":"([^"]*)"')
    if model == "quit" then c:close(); break end
    local case = CASES[model] or { 404, J, '{"error":{"message":"no such case"}}' }
    local head = "HTTP/1.1 " .. case[1] .. " X\r\nContent-Type: " .. case[2] .. "\r\nConnection: close\r\n"
      .. (case[5] or "") .. (case[4] and ("Content-Length: " .. (#case[3] + case[4]) .. "\r\n") or "") .. "\r\n"
    if case[6] then   -- (a first piece on its own: the client's first read holds only it)
      c:send(head .. case[6])
      require("socket").sleep(0.3)
      c:send(case[3])
    else
      c:send(head .. case[3])
    end
    c:close()
  end
]=]
-- luacheck: pop

describe("real servers' streams", function ()
  local srv, client

  setup(function () srv = oneshot.model_server(SERVER) end)
  teardown(function () srv.stop() end)
  before_each(function ()
    client = aigc.client { base_url = srv.base_url, api_key = "sk-quirks-0123456789",
                           max_retries = 0, timeout = 30 }
  end)
  after_each(function () client:close() end)

  -- A streamed chat of `model` (params on top): the result, the error, the
  -- deltas joined, and how many times on_stream_end ran.
  local function stream (model, params)
    local deltas, ended = {}, 0
    local p = { model = model, messages = { { role = "user", content = "Hi" } },
                stream = function (d) deltas[#deltas + 1] = d end,
                on_stream_end = function () ended = ended + 1 end }
    for k, v in pairs(params or {}) do p[k] = v end
    local res, err = client:chat(p)
    return res, err, table.concat(deltas), ended
  end

  it("that end with no [DONE] are reported by default, the reply whole in err.partial (never accepted silently)",
     function ()
    local res, err, text, ended = stream("tgi-whole")
    assert.is_nil(res)
    assert.same({ "stream", "the stream was incomplete: it ended before [DONE]" }, { err.kind, err.message })
    assert.same({ "Hello", "eos_token" }, { err.partial.choices[1].message.content,
                                            err.partial.choices[1].finish_reason })
    assert.equal("Hello", text)
    assert.equal(0, ended)
  end)

  it("whose choices have no index, the role in the first delta only, chunks of no choice: one whole reply",
     function ()
    local res, err, deltas = stream("no-index")
    assert.is_nil(err and tostring(err))
    local choice = res.choices[1]
    assert.same({ 1, 0, "assistant", "Hello", "Hello", "stop", "th", "ink", 5 },
                { #res.choices, choice.index, choice.message.role, deltas, res.text, choice.finish_reason,
                  choice.message.reasoning_content, choice.message.reasoning, res.usage.total_tokens })
  end)

  describe("that end with no [DONE] (Hugging Face TGI before 2.2), to a client with require_done = false", function ()
    before_each(function ()
      client:close()
      client = aigc.client { base_url = srv.base_url, api_key = "sk-quirks-0123456789",
                             max_retries = 0, timeout = 30, require_done = false }
    end)

    it("are whole when the body ended between events after every choice's finish_reason", function ()
      local res, err, text, ended = stream("tgi-whole")
      assert.is_nil(err)
      assert.equal("Hello", res.text)
      assert.equal("Hello", text)
      assert.same({ "assistant", "eos_token", "tgi" },
                  { res.choices[1].message.role, res.choices[1].finish_reason, res.model })
      assert.equal(1, ended)
    end)

    it("are whole with n = 2 once both choices finished", function ()
      local res, err = stream("tgi-n2-whole", { n = 2 })
      assert.is_nil(err)
      assert.same({ "A", "Bb" }, { res.choices[1].message.content, res.choices[2].message.content })
    end)

    it("as a legacy completions stream too", function ()
      local parts = {}
      local res, err = client:complete { model = "tgi-completion", prompt = "x",
                                         stream = function (d) parts[#parts + 1] = d end }
      assert.is_nil(err)
      assert.same({ "Hello", "length", "Hello" }, { res.text, res.choices[1].finish_reason, table.concat(parts) })
    end)

    it("stay incomplete when fewer choices came than n times a completion's prompts", function ()
      local function complete (prompt, n)
        return client:complete { model = "tgi-prompts", prompt = prompt, n = n, stream = function () end }
      end
      local _, err = complete({ "x", "y" }, 2)
      assert.equal("stream", err.kind)
      _, err = complete({ { 1, 2 }, { 3 }, { 4 } })
      assert.equal("stream", err.kind)
      local res = assert(complete({ "x", "y" }))   -- (n = 1: both came)
      assert.equal("a", res.text)
      res = assert(complete({ 1, 2, 3 }, 2))      -- (token ids: one prompt)
      assert.equal("b", res.choices[2].text)
    end)

    it("stay incomplete when a choice has no finish_reason (kind stream, the reply in err.partial)", function ()
      local res, err, text, ended = stream("tgi-cut")
      assert.is_nil(res)
      assert.same({ "stream", "the stream was incomplete: it ended before [DONE]" }, { err.kind, err.message })
      assert.equal("Hello", err.partial.choices[1].message.content)
      assert.equal("Hello", text)
      assert.equal(0, ended)
    end)

    it("stay incomplete when the finish_reason is \"\" (some servers' \"not yet\")", function ()
      local res, err = stream("tgi-empty-finish")
      assert.is_nil(res)
      assert.equal("stream", err.kind)
    end)

    it("stay incomplete when fewer choices came than n asked for", function ()
      local res, err = stream("tgi-n2-one", { n = 2 })
      assert.is_nil(res)
      assert.equal("stream", err.kind)
      assert.equal("A", err.partial.choices[1].message.content)
    end)

    it("stay incomplete when the body ends inside an event, after a finish_reason", function ()
      local res, err = stream("tgi-cut-event")
      assert.is_nil(res)
      assert.equal("stream", err.kind)
      assert.matches("incomplete", err.message)
    end)

    it("fail when the connection broke after a finish_reason", function ()
      local res, err = stream("tgi-broken")
      assert.is_nil(res)
      assert.same({ "stream", "the stream was interrupted: transfer closed with 64 bytes remaining to read" },
                  { err.kind, err.message })
      assert.equal("Hello", err.partial.choices[1].message.content)
    end)
  end)

  describe("whose reply's content is a list of parts (Mistral's Magistral)", function ()
    local function chat (model)
      return client:chat { model = model, messages = { { role = "user", content = "Hi" } } }
    end

    it("give res.text from its text parts, the parts kept as they came", function ()
      local res = assert(chat("magistral"))
      assert.equal("Hello there!", res.text)
      local content = res.choices[1].message.content
      assert.same({ "thinking", "A greeting.", "text" },
                  { content[1].type, content[1].thinking[1].text, content[2].type })
    end)

    it("no res.text when it has no text part", function ()
      local res = assert(chat("magistral-thinking"))
      assert.is_nil(res.text)
      assert.equal("thinking", res.choices[1].message.content[1].type)
    end)

    it("every text part, among other parts and nulls", function ()
      local res = assert(chat("parts-many"))
      assert.equal(("ab"):rep(20) .. "c", res.text)
    end)
  end)

  describe("answering a call that did not ask to stream with events", function ()
    local function chat (model)
      return client:chat { model = model, messages = { { role = "user", content = "Hi" } } }
    end

    it("give the reply the events make up", function ()
      local res, err = chat("sglang")
      assert.is_nil(err)
      assert.same({ "Hello", "stop", "chat.completion" }, { res.text, res.choices[1].finish_reason, res.object })
      -- (a completion's events with no [DONE]: a client that takes them whole)
      local lax = aigc.client { base_url = srv.base_url, max_retries = 0, timeout = 30,
                                require_done = false }
      res, err = lax:complete { model = "tgi-completion", prompt = "x" }
      lax:close()
      assert.is_nil(err)
      assert.equal("Hello", res.text)
    end)

    it("give the reply when their first bytes, read on their own, are a blank line", function ()
      local res, err = chat("sglang-blank-first")
      assert.is_nil(err)
      assert.equal("Hello", res.text)
    end)

    it("cut short: kind stream, with what came in err.partial", function ()
      local res, err = chat("sglang-cut")
      assert.is_nil(res)
      assert.equal("stream", err.kind)
      assert.equal("Hel", err.partial.choices[1].message.content)
    end)

    it("labelled in capitals (Text/Event-Stream), the same media type: the reply", function ()
      local res, err = chat("sglang-caps")
      assert.is_nil(err)
      assert.same({ "Hello", "stop" }, { res.text, res.choices[1].finish_reason })
    end)

    it("a JSON reply labelled text/event-stream stays the JSON reply", function ()
      local res = assert(chat("json-as-sse"))
      assert.same({ "Hi", "j1" }, { res.text, res.id })
    end)
  end)

  describe("an event stream that holds no event", function ()
    it("is an incomplete stream (kind stream, as a Responses stream with none): labelled in capitals "
       .. "(TEXT/EVENT-STREAM, not 'not text/event-stream'), or ended before its first byte (not an empty JSON body)",
       function ()
      for _, model in ipairs { "caps-comments-only", "sse-empty" } do
        local res, err, text = stream(model)
        assert.is_nil(res, model)
        assert.same({ "stream", 200, "", true }, { err.kind, err.status, text,
                                                   err.message:find("ended before [DONE]", 1, true) ~= nil })
      end
      local res, err = client:respond { model = "sse-empty", input = "Hi", stream = function () end }
      assert.is_nil(res)
      assert.equal("stream", err.kind)
    end)
  end)

  describe("answering a stream with plain JSON labelled text/event-stream", function ()
    it("a gateway's error: kind api with its message, not an incomplete stream", function ()
      local res, err = stream("sse-label-error")
      assert.is_nil(res)
      assert.same({ "api", "quota exceeded for this key", "insufficient_quota" }, { err.kind, err.message, err.code })
    end)

    it("a whole reply: the reply, its text the one delta", function ()
      local res, err, text, ended = stream("json-as-sse")
      assert.is_nil(err)
      assert.same({ "Hi", "Hi", 1 }, { res.text, text, ended })
    end)
  end)

  describe("Azure OpenAI's 429", function ()
    it("waits retry-after-ms; x-ms-retry-after-ms alone is not read (the SDKs' rule: the backoff)", function ()
      local _, err = client:chat { model = "azure-429", messages = { { role = "user", content = "Hi" } } }
      assert.same({ "http", 429, 1.5, true }, { err.kind, err.status, err.retry_after, err.retryable })
      _, err = client:chat { model = "azure-429-xms", messages = { { role = "user", content = "Hi" } } }
      assert.same({ "http", 429, true }, { err.kind, err.status, err.retryable })
      assert.is_nil(err.retry_after)
    end)
  end)

  describe("whose replies always hold an \"error\" member, empty", function ()
    it("give the reply: \"\", {} and 0 are no error (the SDKs' truth)", function ()
      local res, err, text = stream("error-empty-stream")
      assert.is_nil(err)
      assert.same({ "Hello", "Hello", "stop" }, { res.text, text, res.choices[1].finish_reason })
      for _, model in ipairs { "error-empty-object", "error-zero" } do
        res, err = client:chat { model = model, messages = { { role = "user", content = "Hi" } } }
        assert.is_nil(err)
        assert.equal("Hi", res.text)
      end
    end)
  end)
end)
