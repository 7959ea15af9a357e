-- The OpenAI-compatible servers the README names (Azure OpenAI, Ollama,
-- llama.cpp's llama-server, vLLM, Hugging Face TGI, LM Studio, OpenRouter),
-- as their wire really is: their error bodies, their stream quirks. Each
-- answer comes byte for byte from a one-off server (spec/support/oneshot.lua),
-- chosen by the request's model.
local aigc = require "aigc"
local devserver = require "devserver"
local oneshot = require "oneshot"

-- luacheck: push ignore 631 (the bodies, one a line as the servers send them)
local SERVER = [=[
  local oneshot = require "oneshot"
  local J, SSE = "application/json", "text/event-stream"
  local function data (t) return "data: " .. t .. "\n\n" end
  local function chunk (delta, finish, extra)
    return data('{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",' .. (extra or "")
      .. '"choices":[{"index":0,"delta":' .. delta .. ',"finish_reason":' .. (finish and ('"' .. finish .. '"') or "null") .. '}]}')
  end
  local CASES = {
    -- vLLM (its ErrorResponse, at the top of the body)
    ["vllm-400"] = { 400, J, '{"object":"error","message":"This model\'s maximum context length is 4096 tokens.","type":"BadRequestError","param":null,"code":400}' },
    -- FastAPI's own validation error (servers on FastAPI that keep it: text-generation-webui...)
    ["fastapi-422"] = { 422, J, '{"detail":[{"loc":["body","messages",0,"role"],"msg":"field required","type":"value_error.missing"},{"loc":["body","model"],"msg":"str type expected","type":"type_error.str"}]}' },
    -- Cloudflare's API envelope: Workers AI's OpenAI-compatible endpoint, AI Gateway
    -- (anomalyco/opencode#18552, cloudflare/cloudflare-docs#15116)
    ["cloudflare-404"] = { 404, J, '{"result":null,"success":false,"errors":[{"code":7003,"message":"Could not route to /client/v4/accounts/x/ai/v1/chat/completions, perhaps your object identifier is invalid?"}],"messages":[]}' },
    ["cloudflare-gateway-503"] = { 503, J, '{"result":null,"success":false,"errors":[{"code":7009,"message":"Upstream service unavailable"}],"messages":[]}' },
    -- Mistral's validation error: FastAPI's list inside the message (editor-code-assistant/eca#231)
    ["mistral-422"] = { 422, J, '{"object":"error","message":{"detail":[{"type":"extra_forbidden","loc":["body","max_completion_tokens"],"msg":"Extra inputs are not permitted","input":32000}]},"type":"invalid_request_error","param":null,"code":null}' },
    -- KoboldCpp's 503 while it serves another caller, on every endpoint
    ["koboldcpp-503"] = { 503, J, '{"detail": {"msg": "Server is busy; please try again later.", "type": "service_unavailable"}}' },
    -- Hugging Face TGI
    ["tgi-422"] = { 422, J, '{"error":"Input validation error: `inputs` must not be empty","error_type":"validation"}' },
    ["tgi-stream-error"] = { 200, SSE, chunk('{"role":"assistant","content":"Hi"}')
      .. 'data: {"error":"Request failed during generation: Server error: CUDA out of memory","error_type":"generation"}\n\n' },
    -- TGI 1.4 to 2.0's chat stream (huggingface/text-generation-inference#2089, #1896): chunks
    -- whose object is "text_completion", an empty id, its finish reasons, no [DONE] at the end
    ["tgi-2.0-stream"] = { 200, SSE, data('{"id":"","object":"text_completion","created":1718000000,"model":"tgi","system_fingerprint":"2.0.4-native","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"logprobs":null,"finish_reason":null}]}')
      .. data('{"id":"","object":"text_completion","created":1718000000,"model":"tgi","system_fingerprint":"2.0.4-native","choices":[{"index":0,"delta":{"role":"assistant","content":"lo"},"logprobs":null,"finish_reason":"eos_token"}]}') },
    -- Azure AI Foundry: a reply its filter blocked is a 400 whose body is the chat completion
    -- (experientiallabs/experiential#967), with the filter's error or only the finish_reason
    ["foundry-filter-400"] = { 400, J, '{"id":"chatcmpl-8","model":"","choices":[{"index":0,"message":{"role":"assistant","content":""},"finish_reason":"content_filter","content_filter_results":{"error":{"code":"content_filter","message":"Response content blocked by label \'MultiSeverity_ViolenceScore\'."}}}],"usage":{"prompt_tokens":55,"total_tokens":55},"created":1789466192,"object":"chat.completion","prompt_filter_results":null}' },
    ["foundry-finish-400"] = { 400, J, '{"id":"chatcmpl-9","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":""},"finish_reason":"content_filter"}]}' },
    -- Gemini's OpenAI layer: the error inside a list (FuzzAnything/PromptFuzz#42)
    ["gemini-400"] = { 400, J, '[{"error":{"code":400,"message":"Invalid JSON payload received. Unknown name \\"web_search_options\\": Cannot find field.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.BadRequest"}]}}]' },
    -- "[DONE]" with a blank after it, as some servers end (mistralai/mistral-vibe#770); also
    -- as the body's last line, with no line end
    ["done-blank"] = { 200, SSE, chunk('{"role":"assistant","content":"Hi"}', "stop") .. "data: [DONE] \n\n" },
    ["done-blank-last"] = { 200, SSE, chunk('{"role":"assistant","content":"Hi"}', "stop") .. "data: [DONE]\t " },
    -- keep-alives of empty or blank data, plain or named (openai/openai-go#651, netease-lcap/wave-agent#1326)
    ["keepalive-data"] = { 200, SSE, "data: \n\n" .. chunk('{"role":"assistant","content":"Hi"}') .. "event: ping\ndata:\n\n"
      .. "data:  \t\n\n" .. chunk('{"content":" there"}', "stop") .. "data: [DONE]\n\n" },
    -- Ollama's native error (a string) and its /v1 one; llama.cpp's; Azure's content filter; OpenRouter's
    ["ollama-404"] = { 404, J, '{"error":"model \'llama9\' not found"}' },
    ["ollama-v1-404"] = { 404, J, '{"error":{"message":"model \\"llama9\\" not found, try pulling it first","type":"api_error","param":null,"code":null}}' },
    ["llamacpp-400"] = { 400, J, '{"error":{"code":400,"message":"the request exceeds the available context size","type":"exceed_context_size_error","n_prompt_tokens":5000,"n_ctx":4096}}' },
    ["azure-filter-400"] = { 400, J, '{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI\'s content management policy.","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{"hate":{"filtered":true,"severity":"high"}}}}}' },
    ["azure-filter-200"] = { 200, J, '{"id":"c1","object":"chat.completion","created":1,"model":"gpt-4o","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{}}],"choices":[{"index":0,"finish_reason":"content_filter","message":{"role":"assistant","content":null},"content_filter_results":{"hate":{"filtered":true,"severity":"high"}}}]}' },
    ["openrouter-402"] = { 402, J, '{"error":{"code":402,"message":"Insufficient credits","metadata":{"provider_name":null}}}' },
    ["openrouter-mid-error"] = { 200, SSE, ": OPENROUTER PROCESSING\n\n" .. chunk('{"role":"assistant","content":"Hel"}')
      .. data('{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","error":{"code":502,"message":"Provider disconnected"},"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}')
      .. "data: [DONE]\n\n" },
    -- OpenRouter's finish_reason "error" with no error object (its docs: "error if the model
    -- finishes the request with an error"), streamed and whole; and one with the error in the choice
    ["openrouter-finish-error"] = { 200, SSE, ": OPENROUTER PROCESSING\n\n" .. chunk('{"role":"assistant","content":"Hel"}')
      .. chunk('{"content":"lo"}', "error", '"provider":"P",') .. "data: [DONE]\n\n" },
    ["openrouter-finish-error-whole"] = { 200, J, '{"id":"gen-1","object":"chat.completion","created":1,"model":"m","provider":"P","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"error","native_finish_reason":"error"}]}' },
    ["openrouter-choice-error"] = { 200, J, '{"id":"gen-2","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":""},"finish_reason":"error","error":{"code":502,"message":"Upstream error from P: overloaded"}}]}' },
    -- Azure's content filter results, in every chunk of a choice (langchain4j#2385, brainlid/langchain#28)
    ["azure-stream-filter"] = { 200, SSE, data('{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null,"content_filter_results":{}}]}')
      .. data('{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"},"protected_material_code":{"filtered":false,"detected":true,"citation":{"URL":"https://x/a","license":"MIT"}}}}]}')
      .. data('{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":null,"content_filter_results":{"hate":{"filtered":false,"severity":"low"},"protected_material_code":{"filtered":false,"detected":true,"citation":{"URL":"https://x/a","license":"MIT"}}}}]}')
      .. data('{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop","content_filter_results":{}}]}')
      .. "data: [DONE]\n\n" },
    -- Azure's asynchronous filter cutting a reply, as its docs show it (content-filter.md, "Sample
    -- response stream (blocking)"): annotations with "object": "", the last one's finish_reason
    -- content_filter (openai/openai-node#1982, microsoft/autogen#6465)
    ["azure-async-blocked"] = { 200, SSE, data('{"id":"","object":"","created":0,"model":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}}}],"choices":[],"usage":null}')
      .. chunk('{"role":"assistant"}') .. chunk('{"content":"Hey"}') .. chunk('{"content":" Jude"}')
      .. data('{"id":"","object":"","created":0,"model":"","choices":[{"index":0,"finish_reason":null,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}},"content_filter_offsets":{"check_offset":65,"start_offset":65,"end_offset":1056}}],"usage":null}')
      .. data('{"id":"","object":"","created":0,"model":"","choices":[{"index":0,"finish_reason":"content_filter","content_filter_results":{"protected_material_text":{"detected":true,"filtered":true}},"content_filter_offsets":{"check_offset":65,"start_offset":65,"end_offset":1056}}],"usage":null}')
      .. "data: [DONE]\n\n" },
    -- stream quirks: reasoning fields, llama.cpp's timings, OpenRouter's comments, chunks without choices or ids
    ["reasoning"] = { 200, SSE, ": OPENROUTER PROCESSING\n\n" .. data('{"choices":[]}')
      .. data('{"choices":[{"index":0,"delta":{"role":"assistant","content":null,"reasoning_content":"Two and","reasoning":"2+"}}]}')
      .. data('{"choices":[{"index":0,"delta":{"reasoning_content":" two","reasoning":"2"}}]}')
      .. data('{"choices":[{"index":0,"delta":{"content":"4"},"finish_reason":"stop"}]}')
      .. data('{"id":"x","usage":{"prompt_tokens":2,"completion_tokens":1,"total_tokens":3},"timings":{"prompt_n":2,"predicted_n":1}}')
      .. "data: [DONE]\n\n" },
    -- OpenRouter's reasoning_details, as it streams them: every piece repeats "format" and "index"
    ["openrouter-reasoning"] = { 200, SSE, chunk('{"role":"assistant","content":"","reasoning":null,"reasoning_details":[]}')
      .. chunk('{"role":"assistant","content":"","reasoning":null,"reasoning_details":[{"type":"reasoning.text","text":"","signature":"","format":"anthropic-claude-v1","index":0}]}')
      .. chunk('{"role":"assistant","content":"","reasoning":"The user","reasoning_details":[{"type":"reasoning.text","text":"The user","format":"anthropic-claude-v1","index":0}]}')
      .. chunk('{"role":"assistant","content":"","reasoning":" asks","reasoning_details":[{"type":"reasoning.text","text":" asks","format":"anthropic-claude-v1","index":0}]}')
      .. chunk('{"role":"assistant","content":"","reasoning":null,"reasoning_details":[{"type":"reasoning.text","signature":"EqcDCkgICBAC","format":"anthropic-claude-v1","index":0}]}')
      .. chunk('{"role":"assistant","content":"Hi"}', "stop") .. "data: [DONE]\n\n" },
    -- llama.cpp's server until late 2024: an "error:" field line, then the end (no [DONE])
    ["llamacpp-stream-error"] = { 200, SSE, chunk('{"role":"assistant","content":"Hi"}')
      .. 'error: {"code":500,"message":"Input prompt is too big compared to KV size.","type":"server_error"}\n\n' },
    -- tool call deltas without "index": a call's argument pieces (Gemini's
    -- OpenAI layer, proxies), whole calls one a chunk (Ollama before 0.5)
    ["tools-pieces"] = { 200, SSE, chunk('{"role":"assistant","tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\\"city\\""}}]}')
      .. chunk('{"tool_calls":[{"function":{"arguments":":\\"Paris\\"}"}}]}') .. chunk("{}", "tool_calls") .. "data: [DONE]\n\n" },
    ["tools-whole"] = { 200, SSE, chunk('{"role":"assistant","content":"","tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\\"city\\":\\"Paris\\"}"}}]}')
      .. chunk('{"role":"assistant","content":"","tool_calls":[{"id":"call_2","type":"function","function":{"name":"get_time","arguments":"{}"}}]}')
      .. chunk('{"role":"assistant","content":""}', "tool_calls") .. "data: [DONE]\n\n" },
    ["tools-no-ids"] = { 200, SSE, chunk('{"role":"assistant","tool_calls":[{"id":"","type":"function","function":{"name":"get_weather","arguments":"{}"}}]}')
      .. chunk('{"tool_calls":[{"id":"","type":"function","function":{"name":"get_time","arguments":"{}"}}]}') .. chunk("{}", "tool_calls")
      .. "data: [DONE]\n\n" },
    -- continuation pieces with "id":"" and "name":"" (DeepSeek, Qwen, GLM behind OpenAI-compatible servers)
    ["tools-empty-ids"] = { 200, SSE, chunk('{"role":"assistant","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]}', nil, '"system_fingerprint":"",')
      .. chunk('{"tool_calls":[{"index":0,"id":"","type":"function","function":{"name":"","arguments":"{\\"city\\":"}}]}')
      .. chunk('{"tool_calls":[{"index":0,"id":"","type":"function","function":{"name":"","arguments":"\\"Paris\\"}"}}]}')
      .. chunk("{}", "tool_calls") .. "data: [DONE]\n\n" },
    -- TGI up to 3.1 (fixed by its PR #3075): tool_calls an object, not a list, its name null after the first
    -- piece, an empty id and the role on every piece, the last "}" of the grammar's JSON left out
    ["tools-tgi-object"] = { 200, SSE, chunk('{"role":"assistant","tool_calls":{"index":0,"id":"","type":"function","function":{"name":"get_weather","arguments":"{"}}}', nil, '"system_fingerprint":"3.1.0-native",')
      .. chunk('{"role":"assistant","tool_calls":{"index":0,"id":"","type":"function","function":{"name":null,"arguments":"\\"city\\":"}}}')
      .. chunk('{"role":"assistant","tool_calls":{"index":0,"id":"","type":"function","function":{"name":null,"arguments":" \\"Paris\\"}"}}}', "eos_token")
      .. "data: [DONE]\n\n" },
    -- every parallel call at index 0, told apart by its id (Ollama since 0.4.7, LiteLLM's Responses bridge):
    -- whole calls (Ollama), and a start piece with the id then argument pieces without (the bridges)
    ["tools-index0-whole"] = { 200, SSE, chunk('{"role":"assistant","content":"","tool_calls":[{"id":"call_1","index":0,"type":"function","function":{"name":"get_weather","arguments":"{\\"city\\":\\"Paris\\"}"}}]}')
      .. chunk('{"role":"assistant","content":"","tool_calls":[{"id":"call_2","index":0,"type":"function","function":{"name":"get_time","arguments":"{}"}}]}')
      .. chunk('{"role":"assistant","content":""}', "tool_calls") .. "data: [DONE]\n\n" },
    ["tools-index0-pieces"] = { 200, SSE, chunk('{"role":"assistant","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]}')
      .. chunk('{"tool_calls":[{"index":0,"function":{"arguments":"{\\"city\\":"}}]}')
      .. chunk('{"tool_calls":[{"index":0,"function":{"arguments":"\\"Paris\\"}"}}]}')
      .. chunk('{"tool_calls":[{"index":0,"id":"call_2","type":"function","function":{"name":"get_time","arguments":""}}]}')
      .. chunk('{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]}')
      .. chunk("{}", "tool_calls") .. "data: [DONE]\n\n" },
    -- The Responses API (vLLM, LM Studio): response.completed ends the body
    -- without the blank line after it
    ["responses-unended"] = { 200, SSE, 'event: response.created\ndata: {"type":"response.created","sequence_number":0,"response":{"id":"r","object":"response","status":"in_progress","output":[]}}\n\n'
      .. 'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":1,"output_index":0,"content_index":0,"delta":"Hi"}\n\n'
      .. 'event: response.completed\ndata: {"type":"response.completed","sequence_number":2,"response":{"id":"r","object":"response","status":"completed","output":[{"type":"message","content":[{"type":"output_text","text":"Hi"}]}]}}\n' },
    ["responses-unended-nolf"] = { 200, SSE, 'data: {"type":"response.created","sequence_number":0,"response":{"id":"r","object":"response","status":"in_progress","output":[]}}\n\n'
      .. 'data: {"type":"response.completed","sequence_number":1,"response":{"id":"r","object":"response","status":"completed","output":[{"type":"message","content":[{"type":"output_text","text":"whole"}]}]}}' },
    ["responses-cut"] = { 200, SSE, 'event: response.created\ndata: {"type":"response.created","sequence_number":0,"response":{"id":"r","object":"response","status":"in_progress","output":[]}}\n\n'
      .. 'event: response.completed\ndata: {"type":"response.completed","sequence_number":1,"response":{"id":"r","obj' },
  }
  local REASONS = { [200] = "OK", [400] = "Bad Request", [402] = "Payment Required", [404] = "Not Found",
                    [422] = "Unprocessable Entity", [429] = "Too Many Requests", [503] = "Service Unavailable" }
  local server = oneshot.listen()
  while true do
    local c, body = oneshot.read_request(server)
    local model = body:match('"model":"([^"]*)"')
    if model == "quit" then c:close(); break end
    local case = CASES[model] or { 404, "text/plain", "no such case" }
    -- a server that refuses fields it does not know (vLLM before 0.5, Fireworks)
    if model == "strict" and body:find("stream_options", 1, true) then
      case = { 400, J, '{"object":"error","message":"[{\'type\': \'extra_forbidden\', \'loc\': (\'body\', '
        .. '\'stream_options\'), \'msg\': \'Extra inputs are not permitted\', \'input\': {\'include_usage\': True}}]",'
        .. '"type":"BadRequestError","param":null,"code":400}' }
    elseif model == "strict" then
      case = { 200, SSE, chunk('{"role":"assistant","content":"Hel"}') .. chunk('{"content":"lo"}', "stop")
        .. "data: [DONE]\n\n" }
    end
    c:send("HTTP/1.1 " .. case[1] .. " " .. REASONS[case[1]] .. "\r\nConnection: close\r\nContent-Type: "
           .. case[2] .. "\r\nContent-Length: " .. #case[3] .. "\r\n\r\n" .. case[3])
    c:close()
  end
]=]
-- luacheck: pop

describe("the OpenAI-compatible servers the README names", function ()
  local server, client

  setup(function () server = oneshot.model_server(SERVER) end)
  teardown(function () server.stop() end)
  before_each(function ()
    client = aigc.client { base_url = server.base_url, max_retries = 0 }
  end)
  after_each(function () client:close() end)

  local function chat (model, stream)
    local deltas = {}
    local res, err = client:chat { model = model, messages = { { role = "user", content = "Hi" } },
                                   stream = stream and function (d) deltas[#deltas + 1] = d end or nil }
    return res, err, table.concat(deltas)
  end

  describe("error bodies", function ()
    it("vLLM's error at the top of the body: message, type and code kept", function ()
      local res, err = chat("vllm-400")
      assert.is_nil(res)
      assert.equal("http", err.kind)
      assert.equal(400, err.status)
      assert.equal("This model's maximum context length is 4096 tokens.", err.message)
      assert.equal("BadRequestError", err.type)
      assert.equal(400, err.code)
      assert.equal("error", err.body.object)
    end)

    it("FastAPI's validation error: its first item is the message, where it is in the request", function ()
      local _, err = chat("fastapi-422")
      assert.equal("http", err.kind)
      assert.equal(422, err.status)
      assert.equal("field required (body.messages.0.role)", err.message)
      assert.equal("str type expected", err.body.detail[2].msg)
    end)

    it("Cloudflare's errors list (Workers AI, AI Gateway): its first error's message and code", function ()
      local _, err = chat("cloudflare-404")
      assert.same({ "http", 404, 7003 }, { err.kind, err.status, err.code })
      assert.equal("Could not route to /client/v4/accounts/x/ai/v1/chat/completions, perhaps your object "
                   .. "identifier is invalid?", err.message)
      assert.is_false(err.body.success)
      _, err = chat("cloudflare-gateway-503")
      assert.same({ 503, "Upstream service unavailable", 7009 }, { err.status, err.message, err.code })
    end)

    it("Mistral's validation error: the first item of the list inside its message, and its type", function ()
      local _, err = chat("mistral-422")
      assert.same({ "http", 422, "Extra inputs are not permitted (body.max_completion_tokens)",
                    "invalid_request_error" }, { err.kind, err.status, err.message, err.type })
      assert.equal(32000, err.body.message.detail[1].input)
    end)

    it("KoboldCpp's busy server: the msg and type of its detail object", function ()
      local _, err = chat("koboldcpp-503")
      assert.same({ "http", 503, "Server is busy; please try again later.", "service_unavailable" },
                  { err.kind, err.status, err.message, err.type })
    end)

    it("TGI's error string and its error_type (as err.type)", function ()
      local _, err = chat("tgi-422")
      assert.equal("http", err.kind)
      assert.equal(422, err.status)
      assert.equal("Input validation error: `inputs` must not be empty", err.message)
      assert.equal("validation", err.type)
      assert.equal("validation", err.body.error_type)
    end)

    it("TGI's error in a stream (an event of data only, then the end): kind api, message, type, partial", function ()
      local _, err = chat("tgi-stream-error", true)
      assert.equal("api", err.kind)
      assert.equal("Request failed during generation: Server error: CUDA out of memory", err.message)
      assert.equal("generation", err.type)
      assert.equal("Hi", err.partial.choices[1].message.content)
      assert.equal("Hi", err.partial.text)   -- (as res.text: the words that came)
    end)
  end)

  describe("TGI 1.4 to 2.0's chat stream (chunks of object text_completion, no [DONE])", function ()
    it("gives its text to the callback, and the reply whole in err.partial (kind stream: no [DONE])", function ()
      local res, err, text = chat("tgi-2.0-stream", true)
      assert.is_nil(res)
      assert.equal("Hello", text)
      assert.equal("stream", err.kind)
      assert.matches("ended before %[DONE%]", err.message)
      local partial = err.partial
      assert.same({ "Hello", "assistant", "eos_token" }, { partial.choices[1].message.content,
                  partial.choices[1].message.role, partial.choices[1].finish_reason })
      assert.same({ "tgi", "chat.completion" }, { partial.model, partial.object })
      assert.equal("Hello", partial.text)
    end)
  end)

  describe("Azure AI Foundry's 400 whose body is the blocked chat completion", function ()
    it("is an http error whose message and code are the filter's, else its finish_reason", function ()
      local _, err = chat("foundry-filter-400")
      assert.same({ "http", 400, "Response content blocked by label 'MultiSeverity_ViolenceScore'.", "content_filter" },
                  { err.kind, err.status, err.message, err.code })
      assert.equal("content_filter", err.body.choices[1].finish_reason)
      _, err = chat("foundry-finish-400")
      assert.same({ "http", 400, "the reply ended with finish_reason content_filter", "content_filter" },
                  { err.kind, err.status, err.message, err.code })
      assert.equal("aigc: http error 400: the reply ended with finish_reason content_filter (code content_filter)",
                   tostring(err))
    end)
  end)

  describe("Gemini's OpenAI layer: its error inside a list", function ()
    it("gives the message and code; err.body is the list as sent", function ()
      local _, err = chat("gemini-400")
      assert.same({ "http", 400, 400 }, { err.kind, err.status, err.code })
      assert.equal('Invalid JSON payload received. Unknown name "web_search_options": Cannot find field.', err.message)
      assert.equal("INVALID_ARGUMENT", err.body[1].error.status)
    end)
  end)

  describe("a stream that ends with \"data: [DONE] \" (blanks after the marker)", function ()
    it("has ended well, as the SDKs take it, with a blank line after it or as the last line", function ()
      for _, model in ipairs { "done-blank", "done-blank-last" } do
        local res, err, text = chat(model, true)
        assert.is_nil(err, model)
        assert.same({ "Hi", "Hi", "stop" }, { text, res.text, res.choices[1].finish_reason })
      end
    end)
  end)

  describe("keep-alive events of empty or blank data (proxies)", function ()
    it("are skipped, as the SSE standard does not dispatch them: the reply is whole", function ()
      local res, err, text = chat("keepalive-data", true)
      assert.is_nil(err)
      assert.same({ "Hi there", "Hi there", "stop" }, { text, res.text, res.choices[1].finish_reason })
    end)
  end)

  describe("error bodies the module already read right", function ()
    it("Ollama's string error (native and /v1 shapes), llama.cpp's object: message, type, code", function ()
      local _, err = chat("ollama-404")
      assert.same({ "http", 404, "model 'llama9' not found" }, { err.kind, err.status, err.message })
      _, err = chat("ollama-v1-404")
      assert.same({ 404, 'model "llama9" not found, try pulling it first', "api_error" },
                  { err.status, err.message, err.type })
      _, err = chat("llamacpp-400")
      assert.same({ 400, "the request exceeds the available context size", "exceed_context_size_error", 400 },
                  { err.status, err.message, err.type, err.code })
      assert.equal(4096, err.body.error.n_ctx)
    end)

    it("Azure's content filter: a 400 with code, param and innererror; a 200 whose finish_reason says it", function ()
      local _, err = chat("azure-filter-400")
      assert.same({ "http", 400, "content_filter", "prompt" }, { err.kind, err.status, err.code, err.param })
      assert.equal("ResponsibleAIPolicyViolation", err.body.error.innererror.code)
      local res = assert(chat("azure-filter-200"))
      assert.equal("content_filter", res.choices[1].finish_reason)
      assert.is_true(res.choices[1].content_filter_results.hate.filtered)
      assert.is_nil(res.text)
    end)

    it("OpenRouter: a 402 with its metadata; an error inside a 200 stream, after its comment lines", function ()
      local _, err = chat("openrouter-402")
      assert.same({ "http", 402, "Insufficient credits", 402 }, { err.kind, err.status, err.message, err.code })
      assert.is_table(err.body.error.metadata)
      _, err = chat("openrouter-mid-error", true)
      assert.same({ "api", 200, "Provider disconnected", 502 }, { err.kind, err.status, err.message, err.code })
      assert.equal("Hel", err.partial.choices[1].message.content)
    end)

    it("OpenRouter: finish_reason 'error' with no error object is an error, streamed or not, the text kept", function ()
      local res, err, text = chat("openrouter-finish-error", true)
      assert.is_nil(res)
      assert.same({ "api", 200 }, { err.kind, err.status })
      assert.matches('finish_reason "error"', err.message, 1, true)
      assert.equal("Hello", err.partial.choices[1].message.content)
      assert.equal("Hello", text)
      res, err = chat("openrouter-finish-error-whole")
      assert.is_nil(res)
      assert.same({ "api", 200 }, { err.kind, err.status })
      assert.equal("Hello", err.partial.choices[1].message.content)
      res, err = chat("openrouter-choice-error")   -- the choice's error object, when it has one
      assert.is_nil(res)
      assert.same({ "api", 200, "Upstream error from P: overloaded", 502 },
                  { err.kind, err.status, err.message, err.code })
    end)
  end)

  describe("stream quirks", function ()
    it("reasoning_content (vLLM, llama.cpp) and reasoning (OpenRouter) are kept whole; timings, usage too", function ()
      local res, err, text = chat("reasoning", true)
      assert.is_nil(err)
      local msg = res.choices[1].message
      assert.same({ "4", "Two and two", "2+2" }, { msg.content, msg.reasoning_content, msg.reasoning })
      assert.equal("4", text)   -- (the deltas are the content's)
      assert.equal(3, res.usage.total_tokens)
      assert.equal(1, res.timings.predicted_n)
    end)
  end)

  describe("Azure's content_filter_results in a stream (each chunk says them again)", function ()
    it("are the last ones said, not every chunk's strings end to end; the text is whole", function ()
      local res, err, text = chat("azure-stream-filter", true)
      assert.is_nil(err)
      assert.equal("Hello", text)
      assert.equal("Hello", res.choices[1].message.content)
      assert.same({ hate = { filtered = false, severity = "low" },
                    protected_material_code = { filtered = false, detected = true,
                                                citation = { URL = "https://x/a", license = "MIT" } } },
                  res.choices[1].content_filter_results)
    end)
  end)

  describe("Azure's asynchronous content filter cutting a streamed reply", function ()
    it("is a reply whose finish_reason says content_filter, with the annotations; not a cut stream", function ()
      local chunks = {}
      local c = aigc.client { base_url = server.base_url, max_retries = 0 }
      local res, err = c:chat { model = "azure-async-blocked", messages = { { role = "user", content = "Hi" } },
                                stream = function (_, ch) chunks[#chunks + 1] = ch.id end }
      c:close()
      assert.is_nil(err)
      local choice = res.choices[1]
      assert.equal("content_filter", choice.finish_reason)
      assert.equal("Hey Jude", choice.message.content)
      assert.is_true(choice.content_filter_results.protected_material_text.filtered)
      assert.equal("safe", choice.content_filter_results.hate.severity)
      assert.equal(1056, choice.content_filter_offsets.end_offset)
      assert.equal("safe", res.prompt_filter_results[1].content_filter_results.hate.severity)
      assert.same({ "c1", "m", 1 }, { res.id, res.model, res.created })   -- (not the annotations' "", 0)
      assert.same({ "c1", "c1", "c1" }, chunks)   -- (the callback gets the reply's chunks)
      -- the dialogue layer then says why (kind incomplete, reason content_filter)
      local _, err2 = client:chat { model = "azure-async-blocked", messages = { { role = "user", content = "Hi" } },
                                    schema = { type = "object" }, stream = function () end }
      assert.same({ "incomplete", "content_filter" }, { err2.kind, err2.reason })
    end)
  end)

  describe("OpenRouter's reasoning_details in a stream", function ()
    it("merge into one item as a reply not streamed has it: the format once, text and signature whole", function ()
      local res, err = chat("openrouter-reasoning", true)
      assert.is_nil(err)
      local msg = res.choices[1].message
      assert.equal("The user asks", msg.reasoning)
      assert.same({ { type = "reasoning.text", text = "The user asks", signature = "EqcDCkgICBAC",
                      format = "anthropic-claude-v1", index = 0 } }, msg.reasoning_details)
    end)
  end)

  describe("llama.cpp's error line in a stream (\"error: {...}\", no [DONE] after it)", function ()
    it("is the request's error, kind api, with its message, code and type, and the partial reply", function ()
      local res, err = chat("llamacpp-stream-error", true)
      assert.is_nil(res)
      assert.equal("api", err.kind)
      assert.equal("Input prompt is too big compared to KV size.", err.message)
      assert.equal(500, err.code)
      assert.equal("server_error", err.type)
      assert.equal("Hi", err.partial.choices[1].message.content)
    end)
  end)

  describe("tool call deltas as servers send them", function ()
    it("a call's argument pieces make one call (Gemini's OpenAI layer, proxies)", function ()
      local res, err = chat("tools-pieces", true)
      assert.is_nil(err)
      assert.equal("tool_calls", res.choices[1].finish_reason)
      assert.same({ { id = "call_1", type = "function",
                      ["function"] = { name = "get_weather", arguments = '{"city":"Paris"}' } } },
                  res.choices[1].message.tool_calls)
    end)

    it("whole calls one a chunk, each with its id, stay apart (Ollama before 0.5)", function ()
      local res, err = chat("tools-whole", true)
      assert.is_nil(err)
      local calls = res.choices[1].message.tool_calls
      assert.equal(2, #calls)
      assert.same({ "call_1", "get_weather", '{"city":"Paris"}' }, { calls[1].id, calls[1]["function"].name,
                                                                    calls[1]["function"].arguments })
      assert.same({ "call_2", "get_time", "{}" }, { calls[2].id, calls[2]["function"].name,
                                                   calls[2]["function"].arguments })
    end)

    it("continuation pieces with an empty id and name keep the call's id and name", function ()
      local res, err = chat("tools-empty-ids", true)
      assert.is_nil(err)
      assert.same({ { id = "call_1", type = "function",
                      ["function"] = { name = "get_weather", arguments = '{"city":"Paris"}' } } },
                  res.choices[1].message.tool_calls)
    end)

    it("TGI up to 3.1: tool_calls an object with name null on its continuation pieces, one whole call", function ()
      local res, err = chat("tools-tgi-object", true)
      assert.is_nil(err)
      assert.same({ { id = "", type = "function",
                      ["function"] = { name = "get_weather", arguments = '{"city": "Paris"}' } } },
                  res.choices[1].message.tool_calls)
    end)

    it("every call at index 0, each with its own id, stays apart (Ollama since 0.4.7, LiteLLM's bridge)", function ()
      for _, model in ipairs { "tools-index0-whole", "tools-index0-pieces" } do
        local res, err = chat(model, true)
        assert.is_nil(err)
        local calls = res.choices[1].message.tool_calls
        assert.equal(2, #calls, model)
        assert.same({ "call_1", "get_weather", '{"city":"Paris"}' }, { calls[1].id, calls[1]["function"].name,
                                                                      calls[1]["function"].arguments })
        assert.same({ "call_2", "get_time", "{}" }, { calls[2].id, calls[2]["function"].name,
                                                     calls[2]["function"].arguments })
      end
    end)

    it("whole calls with an empty id: each function name starts a call (Gemini's OpenAI layer)", function ()
      local res, err = chat("tools-no-ids", true)
      assert.is_nil(err)
      local calls = res.choices[1].message.tool_calls
      assert.same({ "get_weather", "get_time" }, { calls[1]["function"].name, calls[2]["function"].name })
      assert.same({ "{}", "{}" }, { calls[1]["function"].arguments, calls[2]["function"].arguments })
    end)
  end)

  describe("a server that refuses stream_options (vLLM before 0.5, Fireworks, Databricks' gateway)", function ()
    it("gets the stream again without it, once, and the client sends it no more", function ()
      local lines = {}
      local c = aigc.client { base_url = server.base_url, max_retries = 0,
                              log = function (level, msg) lines[#lines + 1] = level .. " " .. msg end }
      local text = {}
      local res, err = c:chat { model = "strict", messages = { { role = "user", content = "Hi" } },
                                stream = function (d) text[#text + 1] = d end }
      assert.is_nil(err)
      assert.equal("Hello", res.choices[1].message.content)
      assert.equal("Hello", table.concat(text))
      assert.equal(0, res.retries)
      local said = table.concat(lines, "\n")
      assert.matches("refused stream_options %(HTTP 400%): sending again without it", said)
      -- later streams go without it at once (no warning), in every form
      lines = {}
      local s = c:stream { model = "strict", messages = { { role = "user", content = "Hi" } } }
      local parts = {}
      for d in s:deltas() do parts[#parts + 1] = d end
      assert.equal("Hello", table.concat(parts))
      assert.is_nil(table.concat(lines, "\n"):find("stream_options", 1, true))
      c:close()
      -- a caller's own stream_options is theirs: the server's 400 is the call's error
      local c2 = aigc.client { base_url = server.base_url, max_retries = 0 }
      local _, err2 = c2:chat { model = "strict", messages = { { role = "user", content = "Hi" } },
                                stream_options = { include_usage = true }, stream = function () end }
      assert.equal(400, err2.status)
      assert.matches("Extra inputs are not permitted", err2.message)
      c2:close()
    end)
  end)

  describe("a Responses stream whose response.completed ends the body without its blank line", function ()
    local function respond (model)
      local deltas = {}
      local res, err = client:respond { model = model, input = "x",
                                        stream = function (d) deltas[#deltas + 1] = d end }
      return res, err, table.concat(deltas)
    end

    it("is a finished reply (after one line end, or none)", function ()
      local res, err, text = respond("responses-unended")
      assert.is_nil(err)
      assert.equal("completed", res.status)
      assert.equal("Hi", res.text)
      assert.equal("Hi", text)
      res, err = respond("responses-unended-nolf")
      assert.is_nil(err)
      assert.equal("whole", res.text)
    end)

    it("cut inside that event's data: still incomplete, kind stream", function ()
      local res, err = respond("responses-cut")
      assert.is_nil(res)
      assert.equal("stream", err.kind)
      assert.matches("ended before response.completed", err.message)
    end)
  end)

  describe("Azure OpenAI", function ()
    local srv
    setup(function () srv = devserver.start() end)
    teardown(function () srv:stop() end)

    local function chat_via (opts)
      opts.max_retries, opts.api_key = 0, "azure-key-0123456789"
      local c = aigc.client(opts)
      local res, err = c:chat "Hi"
      c:close()
      return res, err, srv:last()
    end

    it("a base_url that names the deployment and its api-version, as the portal shows it: used as it is", function ()
      local url = srv.url .. "/openai/deployments/dep?api-version=2024-10-21"
      local res, err, last = chat_via { azure = true, base_url = url }
      assert.is_nil(err)
      assert.equal("dep", res.model)
      assert.equal("/openai/deployments/dep/chat/completions", last.path)   -- (no second deployment)
      assert.equal("2024-10-21", last.query["api-version"])
      assert.equal("<redacted len=20>", last.headers["api-key"])   -- (the server's record hides it)
      assert.is_nil(last.headers.authorization)
      -- with a model and api_version too (which wins), or a trailing slash
      res, err, last = chat_via { azure = true, base_url = srv.url .. "/openai/deployments/dep/", model = "other",
                                  api_version = "2024-06-01" }
      assert.is_nil(err)
      assert.equal("dep", res.model)   -- (the bundled server answers as the deployment in the path)
      assert.equal("/openai/deployments/dep/chat/completions", last.path)
      assert.equal("2024-06-01", last.query["api-version"])
    end)

    it("the api-version a base_url names wins over $OPENAI_API_VERSION (api_version over both)", function ()
      srv:reset()
      local r = require("luachild").run([[
        local aigc = require "aigc"
        for _, opts in ipairs { { base_url = arg[1] .. "/openai/deployments/dep?api-version=2024-10-21" },
                                { base_url = arg[1] .. "/openai/deployments/dep?api-version=2024-10-21",
                                  api_version = "2025-01-01-preview" },
                                { base_url = arg[1] .. "/openai/deployments/dep" } } do
          opts.azure, opts.api_key, opts.max_retries = true, "k", 0
          local c = aigc.client(opts)
          assert(c:chat "Hi")
          c:close()
        end]], { args = { srv.url }, env = { OPENAI_API_VERSION = "2023-05-15" } })
      assert.equal(0, r.status, r.stderr)
      local versions = {}
      for _, q in ipairs(srv:requests()) do versions[#versions + 1] = q.query["api-version"] end
      assert.same({ "2024-10-21", "2025-01-01-preview", "2023-05-15" }, versions)
    end)

    it("streams without the default stream_options before api-version 2024-09-01, which refuse it", function ()
      local function body_sent (version, params)
        local c = aigc.client { azure = true, endpoint = srv.url, api_version = version, api_key = "k", model = "dep",
                                max_retries = 0 }
        params = params or {}
        params.messages, params.stream = { { role = "user", content = "Hi" } }, function () end
        local res, err = c:chat(params)
        c:close()
        assert.is_nil(err)
        assert.equal("stop", res.choices[1].finish_reason)
        return srv:last().body_json
      end
      assert.is_nil(body_sent("2024-06-01").stream_options)   -- (the version the README shows)
      assert.is_nil(body_sent("2024-08-01-preview").stream_options)
      assert.same({ include_usage = true }, body_sent("2024-10-21").stream_options)
      assert.same({ include_usage = true }, body_sent("2024-09-01-preview").stream_options)
      assert.same({ include_usage = true }, body_sent("preview").stream_options)
      -- the caller's own is sent as given
      assert.same({ include_usage = true }, body_sent("2024-06-01", { stream_options = { include_usage = true } })
                                            .stream_options)
    end)

    it("Azure's v1 API (base_url <endpoint>/openai/v1): plain paths, the model in the body, no api-version", function ()
      -- (the bundled server has no /openai/v1 routes: what matters is the request it recorded)
      srv:reset()
      local r = require("luachild").run([[
        local aigc = require "aigc"
        for _, opts in ipairs { { base_url = arg[1] .. "/openai/v1" }, { base_url = arg[1] .. "/openai/v1/" },
                                { base_url = arg[1] .. "/openai/v1", api_version = "preview" } } do
          opts.azure, opts.api_key, opts.max_retries, opts.model = true, "azure-key-0123456789", 0, "gpt-4o"
          local c = aigc.client(opts)
          c:chat "Hi"
          c:respond { input = "Hi" }
          c:close()
        end]], { args = { srv.url }, env = { OPENAI_API_VERSION = "2024-06-01" } })
      assert.equal(0, r.status, r.stderr)
      local seen = {}
      for _, q in ipairs(srv:requests()) do
        seen[#seen + 1] = table.concat({ q.path, q.query["api-version"] or "-", q.body:match('"model":"([^"]*)"'),
                                         q.headers["api-key"], tostring(q.headers.authorization) }, " ")
      end
      local cp, rp = "/openai/v1/chat/completions", "/openai/v1/responses"
      local key = " gpt-4o <redacted len=20> nil"
      assert.same({ cp .. " -" .. key, rp .. " -" .. key, cp .. " -" .. key, rp .. " -" .. key,
                    cp .. " preview" .. key, rp .. " preview" .. key }, seen)
    end)

    it("an endpoint with a trailing slash, an AD token: /openai/deployments/<model>, Bearer token", function ()
      local res, err, last = chat_via { azure = true, endpoint = srv.url .. "/", api_version = "2024-06-01",
                                        model = "dep", azure_ad_token = "ad-token-0123456789" }
      assert.is_nil(err)
      assert.equal("dep", res.model)
      assert.equal("/openai/deployments/dep/chat/completions", last.path)
      assert.equal("<redacted len=26>", last.headers.authorization)   -- "Bearer ad-token-0123456789"
      -- the token alone, as the SDKs send it: not the key too (here api_key, as $AZURE_OPENAI_API_KEY
      -- would give it), which Azure would check instead
      assert.is_nil(last.headers["api-key"])
    end)
  end)
end)
