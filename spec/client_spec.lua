-- The client end to end: real HTTP over loopback to the bundled server,
-- real libcurl. What the server received is read back from the server
-- itself (through LuaSocket), never from the module under test.
local aigc = require "aigc"
local cjson = require "cjson"
local devserver = require "devserver"
local portable = require "portable"

-- `local x <close> = obj` around `body(x)` on 5.4, the README's explicit form elsewhere.
local with_close = portable.with_close

warn("@on")   -- a failing __gc must show

local SECRET = "sk-test-SECRET-4f1c9e2a7b"

describe("client", function ()
  local srv, client

  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { api_key = SECRET, model = "aigc-dev" })

  describe("chat", function ()
    it("returns the decoded response with text and request_id", function ()
      local res, err = client:chat { model = "m", messages = { { role = "user", content = "Hi" } } }
      assert.is_nil(err)
      assert.equal("chat.completion", res.object)
      assert.equal("m", res.model)
      assert.equal(1, #res.choices)
      assert.equal("assistant", res.choices[1].message.role)
      assert.equal(res.choices[1].message.content, res.text)
      assert.is_string(res.text)
      assert.truthy(#res.text > 0)
      assert.matches("^req_%x+$", res.request_id)
      assert.equal(srv:last().id, res.request_id)
      -- (integers on 5.3+; integral doubles elsewhere)
      assert.equal("integer", portable.math_type(res.created))
      assert.equal("integer", portable.math_type(res.usage.total_tokens))
      assert.equal(res.usage.prompt_tokens + res.usage.completion_tokens, res.usage.total_tokens)
      assert.equal(0, res.retries)
      assert.equal(res.request_id, res.headers["x-request-id"])
      assert.truthy(res.headers["x-ratelimit-remaining-requests"])
    end)

    it("gives n = 3 choices with indexes 0..2", function ()
      local res = assert(client:chat { messages = { { role = "user", content = "Tell me a joke" } }, n = 3, seed = 7 })
      assert.equal(3, #res.choices)
      for i, choice in ipairs(res.choices) do
        assert.equal(i - 1, choice.index)
        assert.is_string(choice.message.content)
        assert.equal("stop", choice.finish_reason)
      end
      assert.equal(res.choices[1].message.content, res.text)
    end)

    it("accepts a string as one user message", function ()
      local res = assert(client:chat "What is the capital of France?")
      assert.equal("The capital of France is Paris.", res.text)
      local body = srv:last().body_json
      assert.same({ { role = "user", content = "What is the capital of France?" } }, body.messages)
      assert.equal("aigc-dev", body.model)   -- the client's default model
    end)

    it("sends the params table as the body, unknown fields included", function ()
      assert(client:chat {
        model = "gpt-test",
        messages = { { role = "system", content = "Be brief." }, { role = "user", content = "héllo \"quoted\"\n世界" } },
        temperature = 0.7, top_p = 1, max_tokens = 20, stop = { "\n\n", "END" },
        grammar = "root ::= .*",                    -- llama.cpp's extra
        repetition_penalty = 1.1,                   -- vLLM's extra
        logit_bias = { ["50256"] = -100 },
        metadata = { tags = { "a", "b" }, nested = { deep = true } },
      })
      local body = srv:last().body_json
      assert.equal("gpt-test", body.model)
      assert.equal("héllo \"quoted\"\n世界", body.messages[2].content)
      assert.equal(0.7, body.temperature)
      assert.same({ "\n\n", "END" }, body.stop)
      assert.equal("root ::= .*", body.grammar)
      assert.equal(1.1, body.repetition_penalty)
      assert.equal(-100, body.logit_bias["50256"])
      assert.same({ tags = { "a", "b" }, nested = { deep = true } }, body.metadata)
      assert.is_nil(body.stream)            -- absent fields are not sent
      assert.is_nil(body.stream_options)
    end)

    it("sends an empty array, a null and a 64-bit integer exactly", function ()
      -- (doubles: the largest exact integer, 2^53; numbers_spec has the rest)
      local seed = portable.has_integers and "9007199254740993" or "9007199254740992"
      assert(client:chat {
        messages = { { role = "user", content = "Hi" } },
        seed = assert(tonumber(seed)),
        tools = aigc.array {},
        user = aigc.null,
        logit_bias = {},
      })
      local raw = srv:last().body
      assert.truthy(raw:find('"seed":' .. seed, 1, true), raw)
      assert.truthy(raw:find('"tools":[]', 1, true), raw)
      assert.truthy(raw:find('"user":null', 1, true), raw)
      assert.truthy(raw:find('"logit_bias":{}', 1, true), raw)
      local body = cjson.decode(raw)
      assert.equal(cjson.null, body.user)
      assert.same({}, body.tools)
    end)

    it("does not send its own options (timeout, headers, callbacks...)", function ()
      assert(client:chat {
        messages = { { role = "user", content = "Hi" } },
        timeout = 30, connect_timeout = 3, max_retries = 1, max_response_bytes = 2 ^ 20,
        headers = { ["X-Trace"] = "t1" }, query = { debug = "1" },
        on_done = function () end, on_error = function () end,
      })
      local last = srv:last()
      local keys = {}
      for k in pairs(last.body_json) do keys[#keys + 1] = k end
      table.sort(keys)
      assert.same({ "messages", "model" }, keys)
      assert.equal("t1", last.headers["x-trace"])
      assert.equal("1", last.query.debug)
    end)

    it("accepts `engine` as the old name of `model`", function ()
      assert(client:complete { engine = "davinci-old", prompt = "x", max_tokens = 2 })
      assert.equal("davinci-old", srv:last().body_json.model)
      assert.is_nil(srv:last().body_json.engine)
    end)
  end)

  describe("complete", function ()
    it("runs the document's first example", function ()
      local res = assert(client:complete {
        model = "gpt-3.5-turbo-instruct", prompt = "What is the capital of France?",
        max_tokens = 10, n = 1, stop = nil, temperature = 0.7,
      })
      assert.equal("text_completion", res.object)
      assert.is_string(res.choices[1].text)
      assert.matches("Paris", res.choices[1].text)
      assert.equal(res.choices[1].text, res.text)
      assert.truthy(res.usage.completion_tokens <= 10)
      local body = srv:last().body_json
      assert.equal(10, body.max_tokens)
      assert.equal(0.7, body.temperature)
      assert.is_nil(body.stop)
    end)

    it("runs the document's second example", function ()
      local res = assert(client:complete {
        model = "gpt-3.5-turbo-instruct",
        prompt = "Generate a short story about a robot that learns to paint.",
        max_tokens = 150, n = 1, temperature = 0.8,
      })
      assert.matches("robot", res.text:lower())
      assert.truthy(res.usage.completion_tokens > 20 and res.usage.completion_tokens <= 150)
      assert.truthy(res.choices[1].finish_reason == "stop" or res.choices[1].finish_reason == "length")
    end)

    it("gives n = 3 choices and honours max_tokens", function ()
      local res = assert(client:complete { prompt = "Once upon a time", n = 3, max_tokens = 3, seed = 1 })
      assert.equal(3, #res.choices)
      for i, c in ipairs(res.choices) do
        assert.equal(i - 1, c.index)
        assert.equal("length", c.finish_reason)
      end
      assert.equal(9, res.usage.completion_tokens)
    end)

    it("accepts a string as the prompt", function ()
      local res = assert(client:complete "What is the capital of France?")
      assert.matches("Paris", res.text)
      assert.equal("What is the capital of France?", srv:last().body_json.prompt)
    end)
  end)

  describe("models", function ()
    it("lists the models with GET /models", function ()
      local res = assert(client:models())
      assert.equal("list", res.object)
      assert.truthy(#res.data > 0)
      assert.is_string(res.data[1].id)
      assert.equal("GET", srv:last().method)
      assert.equal("/v1/models", srv:last().path)
    end)
  end)

  describe("headers", function ()
    it("sends auth, content type, accept, user agent and a length", function ()
      assert(client:chat "Hi")
      local last = srv:last()
      assert.equal("authorization", last.auth_header)
      assert.equal("Bearer", last.authorization_prefix)
      assert.equal(#SECRET, last.authorization_len)
      assert.equal("application/json", last.headers["content-type"])
      assert.equal("application/json", last.headers["accept"])
      local lua = _VERSION:gsub(" ", "/"):gsub("%.", "%%.")   -- Lua/5.4 (LuaJIT: Lua/5.1)
      local ua = "^aigc/" .. aigc._VERSION:gsub("%.", "%%.") .. " " .. lua .. " libcurl/"
      assert.matches(ua, last.headers["user-agent"])
      assert.equal(tostring(#last.body), last.headers["content-length"])
      assert.is_nil(last.headers["transfer-encoding"])
      assert.is_nil(last.headers["expect"])
    end)

    it("sends the key the server expects", function ()
      local locked = devserver.start { api_key = SECRET }
      local ok_client = aigc.client { base_url = locked.base_url, api_key = SECRET, max_retries = 0 }
      local bad_client = aigc.client { base_url = locked.base_url, api_key = "sk-wrong-0000000000", max_retries = 0 }
      local res = ok_client:chat "Hi"
      local res2, err = bad_client:chat "Hi"
      ok_client:close(); bad_client:close()
      locked:stop()
      assert.truthy(res)
      assert.is_nil(res2)
      assert.equal(401, err.status)
      assert.equal("invalid_api_key", err.code)
    end)

    it("sends no Authorization without a key", function ()
      local c = aigc.client { base_url = srv.base_url, api_key = false and "" or nil }
      -- OPENAI_API_KEY may be set in the environment; force none:
      c:close()
      c = aigc.client { base_url = srv.base_url, headers = { Authorization = aigc.null } }
      assert(c:chat "Hi")
      c:close()
      assert.is_nil(srv:last().headers.authorization)
    end)

    it("sends organization, project, default headers and query; per-call values win", function ()
      local c = aigc.client {
        base_url = srv.base_url, organization = "org-1", project = "proj-1",
        headers = { ["X-App"] = "demo", ["X-Gone"] = "x" }, query = { tenant = "t 1" },
      }
      assert(c:chat { messages = { { role = "user", content = "Hi" } },
                      headers = { ["X-App"] = "override", ["X-Gone"] = aigc.null, ["X-New"] = "n" },
                      query = { extra = "1" } })
      local last = srv:last()
      assert.equal("org-1", last.headers["openai-organization"])
      assert.equal("proj-1", last.headers["openai-project"])
      assert.equal("override", last.headers["x-app"])
      assert.is_nil(last.headers["x-gone"])
      assert.equal("n", last.headers["x-new"])
      assert.equal("t 1", last.query.tenant)
      assert.equal("1", last.query.extra)
      assert(c:chat "again")
      last = srv:last()
      assert.equal("demo", last.headers["x-app"])
      assert.equal("x", last.headers["x-gone"])
      assert.is_nil(last.query.extra)
      c:close()
    end)

    it("sends a query written in base_url after each request's path, with the other parameters", function ()
      -- (appended as it was, the path landed inside the query: POST /v1?api-version=...chat/completions)
      local c = aigc.client { base_url = srv.base_url .. "/?api-version=2024-10-21&tenant=a+b&gone=1",
                              query = { tenant = "from opts", gone = aigc.null, extra = "x" } }
      assert.equal(srv.base_url, c.base_url)   -- (the query is not part of it)
      assert(c:chat "Hi")
      local last = srv:last()
      assert.equal("/v1/chat/completions", last.path)
      assert.equal("2024-10-21", last.query["api-version"])
      assert.equal("from opts", last.query.tenant)   -- opts.query wins, aigc.null removes
      assert.is_nil(last.query.gone)
      assert.equal("x", last.query.extra)
      assert(c:chat { messages = { { role = "user", content = "Hi" } }, query = { call = "1" } })
      last = srv:last()
      assert.equal("2024-10-21", last.query["api-version"])
      assert.equal("1", last.query.call)
      c:close()
      local d = aigc.client { base_url = srv.base_url .. "?tenant=a+b%26c" }
      assert(d:chat "Hi")
      assert.equal("a b&c", srv:last().query.tenant)   -- decoded, then sent encoded again
      d:close()
      local az = aigc.client { provider = "azure", endpoint = srv.url .. "/?tenant=t1", api_version = "2024-06-01",
                               api_key = "azure-key-0123456789", model = "dep" }
      assert(az:chat "Hi")
      last = srv:last()
      assert.equal("/openai/deployments/dep/chat/completions", last.path)   -- ("/openai" before the query)
      assert.equal("t1", last.query.tenant)
      assert.equal("2024-06-01", last.query["api-version"])
      az:close()
    end)

    it("sends Azure's deployment endpoints (the SDKs' list) to /deployments/<model>, the others not", function ()
      local az = aigc.client { provider = "azure", endpoint = srv.url, api_version = "2024-06-01",
                               api_key = "azure-key-0123456789", model = "dep", max_retries = 0 }
      local dep = "/openai/deployments/dep"
      local cases = {
        { dep .. "/chat/completions", function () return az:chat "Hi" end },
        { dep .. "/completions", function () return az:complete "Hi" end },
        { dep .. "/embeddings", function () return az:embeddings { input = "x" } end },
        { dep .. "/images/generations", function () return az:images_generate { prompt = "a cat" } end },
        { dep .. "/images/edits", function ()
          return az:images_edit { prompt = "a hat", image = { data = "png", filename = "a.png" } } end },
        { dep .. "/audio/speech", function () return az:speech { input = "Hello" } end },
        { dep .. "/audio/transcriptions", function ()
          return az:transcribe { file = { data = "wav", filename = "a.wav" } } end },
        { dep .. "/audio/translations", function ()
          return az:translate { file = { data = "wav", filename = "a.wav" } } end },
        -- a multipart call's own model names its deployment, as a JSON call's does
        { "/openai/deployments/whisper-2/audio/transcriptions", function ()
          return az:transcribe { model = "whisper-2", file = { data = "wav", filename = "a.wav" } } end },
        { "/openai/deployments/img%2F2/images/generations", function ()
          return az:images_generate { model = "img/2", prompt = "a cat" } end },
        -- not per deployment: Azure serves these at /openai/<path>
        { "/openai/images/variations", function ()
          return az:images_variation { image = { data = "png", filename = "a.png" } } end },
        { "/openai/moderations", function () return az:moderate "x" end },
        { "/openai/files", function () return az:files_list {} end },
        { "/openai/responses", function () return az:respond { input = "x" } end },
      }
      for _, case in ipairs(cases) do
        case[2]()   -- (the server may answer 404 where it serves no such route: only the path counts)
        local last = srv:last()
        assert.equal(case[1], last.path)
        assert.equal("2024-06-01", last.query["api-version"])
      end
      -- a deployment endpoint without a model is misuse, as for chat
      local none = aigc.client { provider = "azure", endpoint = srv.url, api_version = "2024-06-01", api_key = "k" }
      local ok, e = pcall(none.speech, none, { input = "Hello" })
      assert.is_false(ok)
      assert.matches("Azure OpenAI needs a model", tostring(e), 1, true)
      none:close()
      az:close()
    end)

    it("refuses a base_url with a fragment, which no request would send", function ()
      local ok, e = pcall(aigc.client, { base_url = srv.base_url .. "#section" })
      assert.is_false(ok)
      assert.matches("opts.base_url", tostring(e), 1, true)
      assert.matches("fragment", tostring(e), 1, true)
    end)

    it("refuses a base_url libcurl cannot parse (a port past 65535, an IPv6 address without its ']', "
       .. "no host) as the client is made, naming it: each call failed as a connection error, retried", function ()
      for _, case in ipairs {
        { "http://127.0.0.1:65536/v1", "Port number" }, { "http://127.0.0.1:80x/v1", "Port number" },
        { "http://[::1/v1", "IPv6" }, { "http://:8080/v1", "No host" }, { "http://user:pw@/v1", "No host" },
      } do
        local ok, e = pcall(aigc.client, { base_url = case[1], max_retries = 2 })
        assert.is_false(ok, case[1])
        assert.matches("bad argument #1 to 'client' (opts.base_url: not a URL libcurl can use: ", tostring(e), 1, true)
        assert.matches(case[2], tostring(e), 1, true)
        assert.is_nil(tostring(e):find("pw", 1, true))   -- (the URL is not shown: it may hold a password)
      end
      -- Azure's endpoint, named where it came from
      local ok, e = pcall(aigc.client, { azure = true, endpoint = "https://[fe80::1", api_version = "2024-06-01" })
      assert.is_false(ok)
      assert.matches("opts.endpoint: not a URL libcurl can use: Bad IPv6 address", tostring(e), 1, true)
      -- what libcurl takes is taken as before: port 0 (refused by the server), an IPv6 literal, a bare "host:"
      for _, url in ipairs { "http://127.0.0.1:0/v1", "http://[::1]:1/v1", "http://127.0.0.1:/v1" } do
        aigc.client({ base_url = url }):close()
      end
    end)

    it("refuses a ca_file or ca_path that is not there as the client is made (OpenSSL passed over a missing "
       .. "ca_path in silence), and never retries a ca_file that holds no certificate", function ()
      for _, case in ipairs {
        { { ca_file = "/nonexistent/ca.pem" }, "opts.ca_file: /nonexistent/ca.pem: No such file or directory" },
        { { ca_path = "/nonexistent/certs" }, "opts.ca_path: /nonexistent/certs: No such file or directory" },
        { { ca_file = "/" }, "opts.ca_file: a file expected, / is a directory" },
      } do
        case[1].base_url = "https://127.0.0.1:1/v1"
        local ok, e = pcall(aigc.client, case[1])
        assert.is_false(ok)
        assert.matches("bad argument #1 to 'client' (" .. case[2] .. ")", tostring(e), 1, true)
      end
      -- a pipe or a device is read as a file is (a shell's <(...) gives /dev/fd/63)
      aigc.client({ base_url = "https://127.0.0.1:1/v1", ca_file = "/dev/null" }):close()
      local path = os.tmpname()   -- (there, and no certificate in it)
      local host_port = srv.base_url:match("^http://([^/]+)")
      local c = aigc.client { base_url = "https://" .. host_port .. "/v1", ca_file = path, max_retries = 2 }
      local res, err = c:chat "Hi"
      c:close()
      os.remove(path)
      assert.is_nil(res)
      assert.equal("connect", err.kind)
      assert.matches("certificate", err.message, 1, true)
      assert.is_false(err.retryable)
      assert.equal(0, err.retries)
    end)

    it("reuses one connection for sequential calls (keep-alive)", function ()
      for _ = 1, 5 do assert(client:chat "Hi") end
      local stats = srv:stats()
      assert.equal(5, stats.requests_total)
      assert.equal(1, stats.connections_total)
    end)
  end)

  describe("environment", function ()
    local function run_with_env (env, code)
      local script = os.tmpname()
      local f = assert(io.open(script, "w"))
      f:write(code)
      f:close()
      local cmd = env .. " lua5.4 -e 'package.path=\"lua/?.lua;lua/?/init.lua;\"..package.path;"
        .. "package.cpath=\"./?.so;\"..package.cpath' " .. script .. " 2>&1"
      local p = assert(io.popen(cmd))
      local out = p:read("*a")
      p:close()
      os.remove(script)
      return out
    end

    it("takes OPENAI_BASE_URL, OPENAI_API_KEY, OPENAI_ORG_ID, OPENAI_PROJECT_ID", function ()
      local out = run_with_env(
        ("OPENAI_BASE_URL=%s OPENAI_API_KEY=%s OPENAI_ORG_ID=org-env OPENAI_PROJECT_ID=proj-env")
          :format(srv.base_url, SECRET),
        [[local aigc = require "aigc"
          local c = aigc.client()
          local res = assert(c:chat "Hi")
          print(c.base_url, res.text ~= nil)]])
      assert.matches(srv.base_url:gsub("%p", "%%%0") .. "\ttrue", out)
      local last = srv:last()
      assert.equal(#SECRET, last.authorization_len)
      assert.equal("org-env", last.headers["openai-organization"])
      assert.equal("proj-env", last.headers["openai-project"])
    end)

    it("a malformed $OPENAI_BASE_URL or $AZURE_OPENAI_ENDPOINT is refused naming the variable", function ()
      local out = run_with_env("OPENAI_BASE_URL=http://127.0.0.1:70000/v1",
        [[print(pcall(require("aigc").client))]])
      assert.matches("($OPENAI_BASE_URL: not a URL libcurl can use: Port number", out, 1, true)
      out = run_with_env("AZURE_OPENAI_ENDPOINT=https://x.openai.azure.com:443443",
        [[print(pcall(require("aigc").client, { azure = true, api_version = "2024-06-01" }))]])
      assert.matches("($AZURE_OPENAI_ENDPOINT: not a URL libcurl can use: Port number", out, 1, true)
    end)

    it("a variable ending in CR (a .env file with CRLF line ends) is refused naming that variable", function ()
      local code = [[local ok, e = pcall(require("aigc").client, %s) print(e)]]
      for _, case in ipairs {
        { "OPENAI_API_KEY", "{ base_url = 'http://127.0.0.1:1/v1' }" },
        { "OPENAI_ORG_ID", "{ base_url = 'http://127.0.0.1:1/v1' }" },
        { "OPENAI_PROJECT_ID", "{ base_url = 'http://127.0.0.1:1/v1' }" },
        { "AZURE_OPENAI_API_KEY", "{ azure = true, endpoint = 'http://127.0.0.1:1', api_version = 'v' }" },
        { "AZURE_OPENAI_AD_TOKEN", "{ azure = true, endpoint = 'http://127.0.0.1:1', api_version = 'v' }" },
        { "OPENAI_API_VERSION", "{ azure = true, endpoint = 'http://127.0.0.1:1', api_key = 'k' }" },
      } do
        local out = run_with_env(case[1] .. [[="$(printf 'dotenv-Value-0123456789\r')"]], code:format(case[2]))
        assert.matches("bad argument #1 to 'client' ($" .. case[1] .. ": contains CR, LF or NUL)", out, 1, true)
        assert.is_nil(out:find("dotenv-Value", 1, true))
      end
      -- given as options, the options are named
      for _, name in ipairs { "organization", "project", "azure_ad_token", "api_version" } do
        local opts = { azure = name:find("^a") ~= nil, endpoint = "http://127.0.0.1:1", api_version = "v" }
        opts[name] = "value\r\nX-Injected: 1"
        local ok, e = pcall(aigc.client, opts)
        assert.is_false(ok)
        assert.matches("bad argument #1 to 'client' (opts." .. name .. ": contains CR, LF or NUL)", e, 1, true)
      end
    end)

    it("defaults to https://api.openai.com/v1", function ()
      local out = run_with_env("OPENAI_BASE_URL=", [[print(require("aigc").client().base_url)]])
      assert.equal("https://api.openai.com/v1\n", out)
    end)
  end)

  describe("errors", function ()
    local function fail_with (status)
      local res, err = client:chat { messages = { { role = "user", content = "Hi" } },
                                     headers = { ["x-aigc-fault"] = "status=" .. status } }
      assert.is_nil(res)
      assert.truthy(aigc.is_error(err))
      return err
    end

    for _, case in ipairs {
      { 400, "invalid_request_error" }, { 401, "invalid_request_error" }, { 404, "invalid_request_error" },
      { 429, "requests" }, { 500, "server_error" },
    } do
      it("returns nil, err for HTTP " .. case[1] .. " with the API's fields", function ()
        local err = fail_with(case[1])
        assert.equal("http", err.kind)
        assert.equal(case[1], err.status)
        assert.equal(case[2], err.type)
        assert.is_string(err.message)
        local code = err.body.error.code   -- a string, or JSON null (then absent)
        if code == aigc.null then assert.is_nil(err.code) else assert.equal(code, err.code) end
        assert.matches("^req_%x+$", err.request_id)
        assert.equal(srv:last().id, err.request_id)
        assert.is_table(err.body)
        assert.equal(err.message, err.body.error.message)
        assert.equal(0, err.retries)
        local line = tostring(err)
        assert.matches("^aigc: http error " .. case[1] .. ": ", line)
        assert.matches("%[request " .. err.request_id .. "%]$", line)
        assert.is_nil(line:find("\n"))
        -- the client still works
        assert(client:chat "Hi")
      end)
    end

    it("keeps a non-JSON error body as text", function ()
      local res, err = client:chat { messages = { { role = "user", content = "Hi" } },
                                     headers = { ["x-aigc-fault"] = "status=502,body=text" } }
      assert.is_nil(res)
      assert.equal(502, err.status)
      assert.is_string(err.body)
      assert.matches("<html", err.body)
      assert.matches("^HTTP status 502: ", err.message)
    end)

    it("keeps a JSON error body without an error key whole", function ()
      local _, err = client:chat { messages = { { role = "user", content = "Hi" } },
                                   headers = { ["x-aigc-fault"] = "status=422,body=nokey" } }
      assert.equal(422, err.status)
      assert.is_table(err.body)
      assert.is_string(err.body.detail)
      assert.equal(err.body.detail, err.message)
    end)

    it("reports a refused connection as kind connect", function ()
      local c = aigc.client { base_url = "http://127.0.0.1:9/v1", max_retries = 0 }
      local res, err = c:chat "Hi"
      assert.is_nil(res)
      assert.equal("connect", err.kind)
      assert.matches("connect", err.message:lower())
      assert.is_nil(err.status)
      assert.matches("^aigc: connect error: ", tostring(err))
      c:close()
    end)

    it("reports a malformed response as kind parse", function ()
      local res, err = client:chat { messages = { { role = "user", content = "Hi" } },
                                     headers = { ["x-aigc-fault"] = "body=malformed" } }
      assert.is_nil(res)
      assert.equal("parse", err.kind)
      assert.equal(200, err.status)
      assert.matches("not valid JSON", err.message)
      -- (bytes counted from 1, as in every message: the 21-byte body ends where byte 22 would be)
      assert.matches("(at byte 22: ", err.message, 1, true)
      assert.is_string(err.body)
      assert(client:chat "Hi")
    end)

    it("makes assert() raise the one-line message", function ()
      local ok, msg = pcall(function ()
        return assert(client:chat { messages = { { role = "user", content = "Hi" } },
                                    headers = { ["x-aigc-fault"] = "status=404" } })
      end)
      assert.is_false(ok)
      assert.is_table(msg)   -- assert raises the error object itself
      assert.matches("^aigc: http error 404: ", tostring(msg))
    end)

    it("never shows the API key", function ()
      local shown = {}
      local c = aigc.client { base_url = srv.base_url, api_key = SECRET, max_retries = 0,
                              log = function (level, message) shown[#shown + 1] = level .. message end }
      local _, err = c:chat { messages = { { role = "user", content = "Hi" } },
                              headers = { ["x-aigc-fault"] = "status=401" } }
      shown[#shown + 1] = tostring(err)
      shown[#shown + 1] = tostring(c)
      shown[#shown + 1] = cjson.encode(err.body)
      shown[#shown + 1] = err.message
      for k, v in pairs(c) do shown[#shown + 1] = tostring(k) .. "=" .. tostring(v) end
      local _, err2 = aigc.client { base_url = "http://127.0.0.1:9/v1", api_key = SECRET, max_retries = 0 }:chat "x"
      shown[#shown + 1] = tostring(err2)
      c:close()
      for _, s in ipairs(shown) do
        assert.is_nil(s:find(SECRET, 1, true), s)
      end
    end)

    it("raises for misuse, naming the argument", function ()
      assert.has_error(function () client:chat(42) end,
                       "bad argument #1 to 'chat' (table or string expected, got number)")
      assert.has_error(function () client:chat {} end,
                       "bad argument #1 to 'chat' (params.messages: list of messages expected, got nil)")
      assert.has_error(function () client:complete {} end)
      assert.has_error(function () aigc.client { base_url = "ftp://x" } end)
      assert.has_error(function () aigc.client { bogus = 1 } end,
                       "bad argument #1 to 'client' (opts.bogus: unknown option)")
      local ok, err = pcall(client.chat, client, { messages = { { role = "user", content = print } } })
      assert.is_false(ok)
      assert.matches("params.messages%[1%]%.content: cannot encode a function", err)
      assert.matches("client_spec.lua:%d+:", err)   -- the caller's line
      assert(client:chat "still usable")
    end)
  end)

  describe("lifecycle", function ()
    it("closes idempotently and refuses use after close", function ()
      local c = aigc.client { base_url = srv.base_url }
      assert(c:chat "Hi")
      c:close()
      c:close()
      assert.has_error(function () c:chat "Hi" end, "attempt to use a closed client")
    end)

    it("closes with a <close> variable (Lua 5.4; client:close() elsewhere)", function ()
      local c
      with_close(aigc.client { base_url = srv.base_url }, "close", function (scoped)
        c = scoped
        assert(scoped:chat "Hi")
      end)
      assert.has_error(function () c:chat "Hi" end, "attempt to use a closed client")
    end)

    it("lets a client, its engine and its results be collected", function ()
      local weak = setmetatable({}, { __mode = "v" })
      do
        local c = aigc.client { base_url = srv.base_url }
        local res = assert(c:chat "Hi")
        local req = c:chat_async "Hi"
        weak.client, weak.engine, weak.res, weak.req = c, c._engine, res, req
      end
      collectgarbage()
      collectgarbage()
      assert.is_nil(weak.client)
      assert.is_nil(weak.engine)
      assert.is_nil(weak.res)
      assert.is_nil(weak.req)
    end)

    it("survives many clients created and dropped", function ()
      for _ = 1, 50 do
        local c = aigc.client { base_url = srv.base_url }
        assert(c:chat "Hi")
      end
      collectgarbage()
      assert(client:chat "Hi")
    end)
  end)
end)
