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
  local function think (t) return chunk('{"content":[{"type":"thinking","thinking":[{"type":"text","text":"' .. t .. '"}],"closed":true}]}') end
  local CASES = {
    -- Mistral's Magistral models stream their thinking as lists of parts in delta.content,
    -- then the answer (BerriAI/litellm#16272, open-webui/open-webui#30089; as text parts or strings)
    ["magistral"] = { 200, SSE, chunk('{"role":"assistant","content":""}') .. think("A greeting") .. think(", answer it.")
      .. chunk('{"content":[{"type":"text","text":"Hel"}]}') .. chunk('{"content":"lo"}')
      .. chunk('{"content":[{"type":"text","text":"!"}]}', '"stop"') .. DONE },
    -- logprobs of content, then of a refusal (null until then)
    ["logprobs"] = { 200, SSE, data('{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]}')
      .. data('{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":{"content":[{"token":"Hi","logprob":-0.5,"bytes":[72,105],"top_logprobs":[]}],"refusal":null},"finish_reason":null}]}')
      .. data('{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"!"},"logprobs":{"content":[{"token":"!","logprob":-1,"bytes":[33],"top_logprobs":[]}],"refusal":null},"finish_reason":null}]}')
      .. data('{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"refusal":"No"},"logprobs":{"content":null,"refusal":[{"token":"No","logprob":-2,"bytes":[78,111],"top_logprobs":[]}]},"finish_reason":null}]}')
      .. data('{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"refusal":"pe"},"logprobs":{"content":null,"refusal":[{"token":"pe","logprob":-3,"bytes":[112,101],"top_logprobs":[]}]},"finish_reason":"stop"}]}') .. DONE },
    -- audio output (gpt-4o-audio-preview): id and expires_at first, then data and transcript in pieces
    ["audio"] = { 200, SSE, chunk('{"role":"assistant","content":null,"refusal":null,"audio":{"id":"audio_1","transcript":"He"}}')
      .. chunk('{"audio":{"transcript":"llo"}}') .. chunk('{"audio":{"data":"UklG"}}') .. chunk('{"audio":{"data":"RiQA"}}')
      .. chunk('{"audio":{"expires_at":1729234747}}') .. chunk('{}', '"stop"') .. DONE },
    -- search models' annotations, in a chunk of their own; a service_tier, a system_fingerprint that changes
    ["annotations"] = { 200, SSE, chunk('{"role":"assistant","content":"See "}', nil, '"service_tier":"default","system_fingerprint":"fp_a",')
      .. chunk('{"content":"it."}', nil, '"service_tier":"default","system_fingerprint":"fp_b",')
      .. chunk('{"annotations":[{"type":"url_citation","url_citation":{"end_index":7,"start_index":0,"title":"T","url":"https://e.x/"}}]}', nil, '"service_tier":"default","system_fingerprint":"fp_b",')
      .. chunk('{}', '"stop"', '"service_tier":"default","system_fingerprint":"fp_b",') .. DONE },
    -- reasoning_content (DeepSeek, vLLM), reasoning (OpenRouter), the content null until the answer
    ["reasoning"] = { 200, SSE, chunk('{"role":"assistant","content":null,"reasoning_content":""}')
      .. chunk('{"content":null,"reasoning_content":"Hm,"}') .. chunk('{"content":null,"reasoning_content":" hi."}')
      .. chunk('{"content":"Hi","reasoning_content":null}') .. chunk('{"content":"!","reasoning_content":null}', '"stop"') .. DONE },
    ["openrouter"] = { 200, SSE, chunk('{"role":"assistant","content":"","reasoning":"Hm"}') .. chunk('{"content":"","reasoning":"."}')
      .. chunk('{"content":"Hi","reasoning":null}', '"stop"') .. DONE },
    -- n = 2, each choice calling a tool
    ["n2-tools"] = { 200, SSE,
      data('{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"f","arguments":""}}]},"finish_reason":null},{"index":1,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_b","type":"function","function":{"name":"g","arguments":""}}]},"finish_reason":null}]}')
      .. data('{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":1,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]},"finish_reason":null}]}')
      .. data('{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\\"x\\":1}"}}]},"finish_reason":"tool_calls"}]}')
      .. data('{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":1,"delta":{},"finish_reason":"tool_calls"}]}') .. DONE },
    -- non-streamed: no choice (a filtered prompt); a JSON reply and a [DONE] after it (a gateway)
    ["no-choices"] = { 200, J, '{"id":"e1","object":"chat.completion","created":1,"model":"m","choices":[],"prompt_filter_results":[{"prompt_index":0,"content_filter_results":{}}]}' },
    ["json-done"] = { 200, J, '{"id":"j1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n' },
    -- a choice's index as a float or a string
    ["index-float"] = { 200, SSE, data('{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0.0,"delta":{"content":"Hi"},"finish_reason":"stop"}]}') .. DONE },
    ["index-string"] = { 200, SSE, data('{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":"0","delta":{"content":"Hi"},"finish_reason":"stop"}]}') .. DONE },
    -- a tool call's index as a float or a string, the same in each of its pieces (each piece was a call)
    ["call-index-1e300"] = { 200, SSE, chunk('{"role":"assistant","tool_calls":[{"index":1e300,"id":"c","type":"function","function":{"name":"f","arguments":""}}]}')
      .. chunk('{"tool_calls":[{"index":1e300,"function":{"arguments":"{}"}}]}', '"tool_calls"') .. DONE },
    ["call-index-0.5"] = { 200, SSE, chunk('{"role":"assistant","tool_calls":[{"index":0.5,"id":"c","type":"function","function":{"name":"f","arguments":""}}]}')
      .. chunk('{"tool_calls":[{"index":0.5,"function":{"arguments":"{}"}}]}', '"tool_calls"') .. DONE },
    ["call-index-string"] = { 200, SSE, chunk('{"role":"assistant","tool_calls":[{"index":"3","id":"c","type":"function","function":{"name":"f","arguments":""}}]}')
      .. chunk('{"tool_calls":[{"index":"3","function":{"arguments":"{}"}}]}', '"tool_calls"') .. DONE },
    -- the first piece well indexed, the next one not
    ["call-index-late"] = { 200, SSE, chunk('{"role":"assistant","tool_calls":[{"index":0,"id":"c","type":"function","function":{"name":"f","arguments":""}}]}')
      .. chunk('{"tool_calls":[{"index":0.0,"function":{"arguments":"{}"}}]}', '"tool_calls"') .. DONE },
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
  local srv, client

  setup(function () srv = oneshot.model_server(SERVER) end)
  teardown(function () srv.stop() end)
  before_each(function ()
    client = aigc.client { base_url = srv.base_url, api_key = "sk-shapes-0123456789",
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
        assert.same({ { type = "thinking", closed = true,
                        thinking = { { type = "text", text = "A greeting, answer it." } } },
                      { type = "text", text = "Hello!" } }, res.choices[1].message.content)
      end)
    end
  end)

  describe("not streamed", function ()
    local function chat (model)
      return client:chat { model = model, messages = { { role = "user", content = "Hi" } } }
    end

    it("with an empty list of choices are an error, the reply in err.partial (not a result without text)",
       function ()
      local res, err = chat("no-choices")
      assert.is_nil(res)
      assert.same({ "parse", "the response has no choices (an empty list: a content filter may have dropped them)" },
                  { err.kind, err.message })
      assert.same({ "e1", 0 }, { err.partial.id, #err.partial.choices })
      assert.equal(0, err.partial.prompt_filter_results[1].prompt_index)
    end)

    it("followed by a [DONE] as a gateway sends it are not valid JSON, as to the SDKs (the body kept)", function ()
      local res, err = chat("json-done")
      assert.is_nil(res)
      assert.equal("parse", err.kind)
      assert.matches("trailing characters", err.message, 1, true)
      assert.truthy(err.body:find("data: [DONE]", 1, true))
    end)
  end)

  describe("streamed with other members (merged as a non-streamed reply has them)", function ()
    it("logprobs of the content and of a refusal", function ()
      local res, err, deltas = stream("logprobs")
      assert.is_nil(err)
      assert.same({ "", "Hi", "!", false, false }, deltas)
      local c = res.choices[1]
      assert.same({ "Hi!", "Nope" }, { c.message.content, c.message.refusal })
      assert.same({ "Hi", "!" }, { c.logprobs.content[1].token, c.logprobs.content[2].token })
      assert.same({ "No", "pe" }, { c.logprobs.refusal[1].token, c.logprobs.refusal[2].token })
      assert.same({ 72, 105 }, c.logprobs.content[1].bytes)
    end)

    it("audio: its data and transcript joined, its id and expires_at kept", function ()
      local res, err = stream("audio")
      assert.is_nil(err)
      assert.same({ id = "audio_1", transcript = "Hello", data = "UklGRiQA", expires_at = 1729234747 },
                  res.choices[1].message.audio)
      assert.is_nil(res.text)
    end)

    it("annotations, service_tier and the last system_fingerprint", function ()
      local res, err = stream("annotations")
      assert.is_nil(err)
      assert.equal("See it.", res.text)
      local a = res.choices[1].message.annotations
      assert.same({ 1, "url_citation", "https://e.x/", 7 },
                  { #a, a[1].type, a[1].url_citation.url, a[1].url_citation.end_index })
      assert.same({ "default", "fp_b" }, { res.service_tier, res.system_fingerprint })
    end)

    it("reasoning_content (DeepSeek, vLLM) and reasoning (OpenRouter) beside the content", function ()
      local res, err, deltas = stream("reasoning")
      assert.is_nil(err)
      assert.same({ false, false, false, "Hi", "!" }, deltas)
      assert.same({ "Hi!", "Hm, hi." }, { res.text, res.choices[1].message.reasoning_content })
      res, err = stream("openrouter")
      assert.is_nil(err)
      assert.same({ "Hi", "Hm." }, { res.text, res.choices[1].message.reasoning })
    end)

    it("n = 2, each choice with its tool call", function ()
      local res, err = stream("n2-tools")
      assert.is_nil(err)
      local a, b = res.choices[1], res.choices[2]
      assert.same({ 0, "call_a", "f", '{"x":1}', "tool_calls" },
                  { a.index, a.message.tool_calls[1].id, a.message.tool_calls[1]["function"].name,
                    a.message.tool_calls[1]["function"].arguments, a.finish_reason })
      assert.same({ 1, 1, "call_b", "{}" }, { b.index, #b.message.tool_calls, b.message.tool_calls[1].id,
                                              b.message.tool_calls[1]["function"].arguments })
      assert.is_nil(a.message.tool_calls[1].index)
    end)
  end)

  describe("streamed with a choice index that is not an integer", function ()
    for _, model in ipairs { "index-float", "index-string" } do
      it("say so (" .. model .. ")", function ()
        local res, err = stream(model)
        assert.is_nil(res)
        assert.equal("parse", err.kind)
        assert.matches("choice \"index\" " .. (model == "index-float" and "0.0" or '"0"')
                       .. " is not an integer in 0..127", err.message, 1, true)
      end)
    end
  end)

  describe("streamed with a tool call index that is not an integer", function ()
    -- Each piece of such a call was taken as a new call (1e300, 0.5, "3"): a
    -- reply of two calls, one named with no arguments and one with no name;
    -- openai-python refuses it (TypeError: the index is not an integer).
    for _, case in ipairs { { "call-index-1e300", "1e+300" }, { "call-index-0.5", "0.5" },
                            { "call-index-string", '"3"' }, { "call-index-late", "0.0" } } do
      it("say so, naming it (" .. case[1] .. ")", function ()
        local res, err = stream(case[1])
        assert.is_nil(res)
        assert.equal("parse", err.kind)
        assert.matches('array item "index" ' .. case[2] .. " is not an integer in 0..127", err.message, 1, true)
      end)
    end
  end)
end)
