-- README promises and examples added on 2026-12-05 that no spec held to
-- the letter: each test here checks one sentence (quoted above it) or runs
-- one README example as written, over real HTTP on loopback (the bundled
-- server, or a raw routed server for what the bundled one does not send).

local aigc = require "aigc"
local cjson = require "cjson"
local cli = require "cli"
local devserver = require "devserver"
local routed = require "routed"

describe("README examples of today's features, as written, against the bundled server", function ()
  local srv, client
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { model = "aigc-dev" })

  -- README (The Conversations API): the example, as written.
  it("the Conversations API example runs as written", function ()
    local conv = assert(client:create_conversation { metadata = { topic = "demo" },
                                                     items = { { role = "user", content = "Hi" } } })
    local res = assert(client:respond { input = "And now?", conversation = conv.id })   -- joins it
    local page = assert(client:conversation_items(conv.id, { order = "asc", limit = 20 }))
    -- (the created item, then the response's input and output: "joins it")
    assert.equal(3, #page.data)
    assert.equal("Hi", page.data[1].content[1].text)
    assert.equal("And now?", page.data[2].content[1].text)
    assert.equal(res.text, page.data[3].content[1].text)
    assert.same({ order = "asc", limit = "20" }, srv:last().query)
    assert.equal("demo", assert(client:get_conversation(conv.id)).metadata.topic)
  end)

  -- README (Responses): "-- every page (has_more, after = last_id; at most
  -- max_pages = 100, else kind "limit"; ...)
  -- local all = assert(client:response_input_items_all(res.id, { order = "asc" })).data"
  it("response_input_items_all: the example as written, and max_pages = 100 by default", function ()
    local res = assert(client:respond { input = "What is the capital of France?" })
    local all = assert(client:response_input_items_all(res.id, { order = "asc" })).data
    assert.equal(1, #all)
    assert.equal("What is the capital of France?", all[1].content[1].text)
    -- 101 input items one a page: 100 pages are read, then kind "limit"
    local input = {}
    for i = 1, 101 do input[i] = { role = "user", content = "m" .. i } end
    local many = assert(client:respond { input = input })
    local got, err = client:response_input_items_all(many.id, { order = "asc", limit = 1 })
    assert.is_nil(got)
    assert.equal("limit", err.kind)
    assert.matches("more than 100 pages", err.message, 1, true)
    assert.equal(100, #err.data)
    assert.equal("m100", err.data[100].content[1].text)
  end)

  -- README (Tools): "canceling a `chat_async`'s future cancels the requests
  -- its tools wait for (a tool's `client:chat` then returns kind
  -- "canceled")". The spec's tool waited with chat_async + wait.
  it("a chat_async canceled: its tool's blocking client:chat returns kind canceled", function ()
    local started, got = false, nil
    local ts = aigc.tools { { name = "look", fn = function ()
      started = true
      local res, err = client:chat { messages = { { role = "user", content = "Hi" } },
                                     headers = { ["x-aigc-fault"] = "hang" }, timeout = 20 }
      got = res and "answered" or err.kind
      return "x"
    end } }
    local fut = client:chat_async { messages = { { role = "user", content = "look()" } }, tools = ts }
    while not started do client:step(0.01) end
    client:step(0.05)   -- (the tool's request sent; never answered: on its own it ends at its timeout, "timeout")
    assert.is_true(fut:cancel())
    while got == nil do client:step(0.01) end
    assert.equal("canceled", got)
    assert.equal("canceled", fut:status())
    while client:active() > 0 do client:step(0.01) end
  end)

  -- README (Files): "The create is retried only when it surely made nothing
  -- (an error status, a connection never made): after a timeout or a
  -- connection lost once it went, it is not sent again (...); the error says
  -- so." The spec ran the lost connection, and the timeout without retries.
  it("files_upload_parts: a create that timed out is not sent again, with retries left; the error says so", function ()
    local c = aigc.client { base_url = srv.base_url, max_retries = 2, timeout = 30 }
    local given = false
    local res, err = c:files_upload_parts { filename = "t.jsonl", purpose = "batch", timeout = 0.5,
      headers = { ["x-aigc-fault"] = "hang,times=1" },
      file = { size = 3, reader = function () if given then return nil end given = true return "abc" end } }
    c:close()
    assert.is_nil(res)
    assert.equal("timeout", err.kind)
    assert.matches("not created again", err.message, 1, true)
    local creates = 0
    for _, r in ipairs(srv:requests()) do if r.path == "/v1/uploads" then creates = creates + 1 end end
    assert.equal(1, creates)
  end)

  -- README (Files): "`md5` (sent as given; `true`: the MD5 of the bytes
  -- sent, computed as they go)" and "`concurrency = n`, up to 16, sends n
  -- side by side, for a path, `md5` not `true`: misuse otherwise". Only
  -- `true`, and concurrency 0 or 1.5, were checked.
  it("files_upload_parts: an md5 string is sent as given, with concurrency 16; 17 is misuse", function ()
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write(string.rep("abcdefghij", 20))
    f:close()
    local given = "0123456789abcdef0123456789abcdef"   -- (not the bytes' MD5: sent as given all the same)
    local up = assert(client:files_upload_parts { file = path, filename = "m.txt", purpose = "batch",
                                                  part_size = 10, md5 = given, concurrency = 16 })
    assert.equal(given, srv:bodies("/v1/uploads/" .. up.id .. "/complete")[1].md5)
    assert.equal(20, #srv:bodies("/v1/uploads/" .. up.id .. "/complete")[1].part_ids)
    assert.equal(string.rep("abcdefghij", 20), assert(client:files_content(up.file.id)).body)
    local ok, msg = pcall(client.files_upload_parts, client, { file = path, purpose = "batch", concurrency = 17 })
    os.remove(path)
    assert.is_false(ok)
    assert.matches("params.concurrency: a whole number from 1 to 16 expected", tostring(msg), 1, true)
  end)
end)

describe("README promises against raw servers", function ()
  local srv, client

  setup(function () srv = routed.start() end)
  teardown(function () srv:stop() end)
  before_each(function ()
    srv:forget()
    client = aigc.client { base_url = srv.base_url, model = "m", api_key = "sk-today-0123456789abcdefXYZ",
                           max_retries = 0, timeout = 20 }
  end)
  after_each(function () client:close() end)

  -- README (Usage): "`no_usage` (chat, completions and Responses replies
  -- that came without a usage — a stream sent with `include_usage = false`,
  -- a server that sends none: their tokens are not in the totals)". Only a
  -- chat stream was checked.
  it("usage().no_usage counts a chat, a completion and a response from a server that sends no usage", function ()
    srv:serve {
      ["POST /v1/chat/completions"] = { body = '{"id":"c1","object":"chat.completion","model":"m","choices":'
        .. '[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}' },
      ["POST /v1/completions"] = { body = '{"id":"t1","object":"text_completion","model":"m","choices":'
        .. '[{"index":0,"text":"hi","finish_reason":"stop"}]}' },
      ["POST /v1/responses"] = { body = '{"id":"resp_1","object":"response","model":"m","status":"completed",'
        .. '"output":[{"type":"message","id":"msg_1","role":"assistant","status":"completed",'
        .. '"content":[{"type":"output_text","text":"hi","annotations":[]}]}]}' },
      ["GET /v1/models"] = { body = '{"object":"list","data":[]}' } }
    assert(client:chat { messages = { { role = "user", content = "Hi" } } })
    assert(client:complete "Hi")
    assert(client:respond { input = "Hi" })
    assert(client:models())   -- (no tokens to report: not counted)
    local u = client:usage()
    assert.equal(4, u.requests)
    assert.equal(3, u.no_usage)
    assert.equal(0, u.total_tokens)
  end)

  -- The same sentence, of a server that sends neither a usage nor an
  -- `object` (the replies' shapes alone say what they are): such replies
  -- were not counted, the totals falling short without a sign.
  it("usage().no_usage counts replies without a usage and without an object, by their shape", function ()
    srv:serve {
      ["POST /v1/chat/completions"] = { body = '{"id":"c1","model":"m","choices":'
        .. '[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}' },
      ["POST /v1/completions"] = { body = '{"id":"t1","model":"m","choices":[{"index":0,"text":"hi"}]}' },
      ["POST /v1/responses"] = { body = '{"id":"resp_1","status":"completed","output":[{"type":"message",'
        .. '"role":"assistant","content":[{"type":"output_text","text":"hi","annotations":[]}]}]}' },
      ["GET /v1/models"] = { body = '{"data":[]}' } }
    assert.equal("hi", assert(client:chat { messages = { { role = "user", content = "Hi" } } }).text)
    assert.equal("hi", assert(client:complete "Hi").text)
    assert.equal("hi", assert(client:respond { input = "Hi" }).text)
    assert(client:models())   -- (no tokens to report: not counted)
    assert.equal(3, client:usage().no_usage)
  end)
end)

-- README (Making requests): "`res.request_id` (`x-request-id`, else Azure
-- API Management's `apim-request-id`)". Only an error's was checked.
describe("README: res.request_id of a reply", function ()
  it("is apim-request-id when the reply has no x-request-id, x-request-id when it has both", function ()
    local oneshot = require "oneshot"
    local body = '{"id":"c1","object":"chat.completion","model":"m","choices":[{"index":0,'
      .. '"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}'
    local client = aigc.client { base_url = oneshot.apim_server("200 OK", body, finally), api_key = "k",
                                 max_retries = 0 }
    local res = assert(client:chat { model = "m", messages = { { role = "user", content = "Hi" } } })
    assert.equal("6f1c2a9e-apim", res.request_id)
    res = assert(client:chat { model = "m", messages = { { role = "user", content = "Hi" } } })
    assert.equal("req_openai", res.request_id)
    client:close()
  end)
end)

-- README (The aigc command, config): "a password or a credential-like
-- query parameter in their `base_url`, `azure_endpoint`, `proxy` or
-- `query` (`https://user:pass@host/`, `?api-key=`, `?key=`), is refused"
-- (a usage error, exit 2, naming the file and the setting). The spec ran
-- base_url and an endpoint's query.key; not azure_endpoint, proxy, nor a
-- client's query.
describe("README: aigc's config refuses a credential in a URL or a query", function ()
  local home
  before_each(function () home = cli.home() end)
  after_each(function () cli.rmdir(home) end)

  local SAID = " holds a credential (a password or a key in the URL), which a config file may not hold "
    .. "(a key: name its environment variable with api_key_env)\n"
  local IN_FILE = " is a secret, which a config file may not hold (a key: name its environment variable "
    .. "with api_key_env)\n"

  local function refused (text, want)
    local config = home .. "/config.lua"
    cli.write(config, text)
    local r = cli.run({ "Hi" }, { home = home })
    assert.equal(2, r.code, r.stderr)
    assert.equal(config .. ": " .. want, r.stderr)
    assert.is_nil(r.stderr:find("s3cr3t", 1, true))   -- (the value is never shown)
  end

  it("in base_url, azure_endpoint, proxy and query, of an endpoint or of client", function ()
    refused('{ endpoint = "w", endpoints = { w = { base_url = "https://user:s3cr3t-pass@llm.example.com/v1" } } }',
            "endpoints.w.base_url" .. SAID)
    refused('{ endpoint = "w", endpoints = { w = { base_url = "https://llm.example.com/v1?api-key=s3cr3t-0123" } } }',
            "endpoints.w.base_url" .. SAID)
    refused('{ endpoints = { az = { azure_endpoint = "https://x.openai.azure.com/?key=s3cr3t-0123" } } }',
            "endpoints.az.azure_endpoint" .. SAID)
    refused('{ client = { proxy = "http://user:s3cr3t-pass@proxy.example.com:3128" } }', "client.proxy" .. SAID)
    refused('{ endpoints = { w = { query = { ["api-key"] = "s3cr3t-0123" } } } }',
            'endpoints.w.query["api-key"]' .. IN_FILE)
    refused('{ client = { query = { key = "s3cr3t-0123" } } }', "client.query.key" .. IN_FILE)
  end)
end)

-- README (Structured outputs): "`integer` refuses what this Lua cannot
-- hold exactly: beyond 2^63-1 (or below -2^63) on 5.3+, beyond ±(2^53-1)
-- on 5.1/5.2/LuaJIT, and a float of 2^53 or more". The specs held floats
-- of 2^63 and more only.
describe("README: a structured reply's integer this Lua cannot hold exactly", function ()
  local scripted = require "scripted"
  local S = { type = "object", properties = { n = { type = "integer" } }, required = { "n" } }

  local function parsed (text)
    local srv = scripted.start { scripted.chat { content = '{"n": ' .. text .. '}' } }
    local c = aigc.client { base_url = srv.base_url, api_key = "k", max_retries = 0 }
    local res, err = c:chat { messages = { { role = "user", content = "n?" } }, schema = S }
    c:close()
    srv.finish()
    return res, err
  end

  it("a float of 2^53 or more is refused; 2^53 written as an integer only where integers are exact", function ()
    for _, text in ipairs { "1e16", "9007199254740992.0", "-9007199254740992.0" } do
      local res, err = parsed(text)
      assert.is_nil(res, text)
      assert.equal("schema", err.kind)
      assert.matches("not an exact integer in this Lua", err.violations[1].message, 1, true)
    end
    local res, err = parsed("9007199254740992")
    if math.type then
      assert(res, err)
      assert.equal("integer", math.type(res.parsed.n))
      assert.equal("9007199254740992", string.format("%d", res.parsed.n))
    else
      assert.is_nil(res)
      assert.equal("schema", err.kind)
    end
    assert.equal(9007199254740991, assert(parsed("9007199254740991")).parsed.n)   -- (2^53-1: exact everywhere)
    assert.equal(-9007199254740991, assert(parsed("-9007199254740991")).parsed.n)
  end)
end)

-- README (aigc logs): "A listing shows each text (system prompt, prompt,
-- reply, error) up to 12 lines and 1,000 bytes, then how much it left
-- out; `show ID`, `--full` and `--json` give the texts whole." The specs
-- shortened a prompt and a reply only.
describe("README: aigc logs shortens each text of a listing", function ()
  local home
  before_each(function () home = cli.home() end)
  after_each(function () cli.rmdir(home) end)

  local function lines (n, word)
    local t = {}
    for i = 1, n do t[i] = word .. " " .. i end
    return table.concat(t, "\n")
  end

  it("the system prompt and the error too; a text of 12 lines ending in a newline is whole", function ()
    local promptlog = require "aigc.promptlog"
    local log = assert(promptlog.open(home .. "/logs.db"))
    local system, err_text = lines(30, "sys"), string.rep("e", 3000)
    local id = assert(log:record { system = system, prompt = lines(12, "p") .. "\n", response = "r",
                                   model = "m", status = "http", error = err_text })
    log:close()
    local r = cli.run({ "logs" }, { home = home })
    assert.equal(0, r.code, r.stderr)
    assert.is_nil(r.stdout:find("sys 13", 1, true))
    assert.matches("sys 12\n", r.stdout, 1, true)
    assert.matches("[... " .. (#system - #lines(12, "sys")) .. " more bytes: aigc logs show " .. id .. "]",
                   r.stdout, 1, true)
    assert.matches("[http] " .. string.rep("e", 1000) .. "\n[... 2000 more bytes: aigc logs show " .. id .. "]",
                   r.stdout, 1, true)
    -- (the prompt's 12 lines are all there, and nothing was left out of it)
    assert.matches("> p 12\n", r.stdout, 1, true)
    assert.equal(2, select(2, r.stdout:gsub("more bytes", "")))
    r = cli.run({ "logs", "show", tostring(id) }, { home = home })
    assert.equal(0, r.code, r.stderr)
    assert.matches("sys 30", r.stdout, 1, true)
    assert.matches(err_text, r.stdout, 1, true)
    assert.is_nil(r.stdout:find("more bytes", 1, true))
  end)
end)

-- README (Images): "the completed events (one per image: `n = 2` gives
-- two) are the result, shaped as above (`res.data[i].bytes`, `res:save`;
-- the last event's `usage`)". The specs gave every event the same usage.
describe("README: an image stream of two images", function ()
  local scripted = require "scripted"
  local b64 = require "b64"

  it("gives both images, and the last completed event's usage", function ()
    local events = {}
    for i, img in ipairs { "\137PNG\r\n\26\nfirst", "\137PNG\r\n\26\nsecond" } do
      events[i] = "data: " .. cjson.encode { type = "image_generation.completed", b64_json = b64(img),
        usage = { input_tokens = 5, output_tokens = 100 * i, total_tokens = 5 + 100 * i } } .. "\n\n"
    end
    local srv = scripted.start { "sse " .. table.concat(events) }
    local c = aigc.client { base_url = srv.base_url, api_key = "k", max_retries = 0 }
    local res, err = c:images_generate { prompt = "p", model = "gpt-image-1", n = 2, stream = true }
    c:close()
    srv.finish()
    assert(res, err)
    assert.equal(2, #res.data)
    assert.equal("\137PNG\r\n\26\nfirst", res.data[1].bytes)
    assert.equal("\137PNG\r\n\26\nsecond", res.data[2].bytes)
    assert.equal(205, res.usage.total_tokens)
    assert.equal(200, res.usage.output_tokens)
    local dir = cli.home()
    local paths = assert(res:save(dir .. "/img-%d.png"))
    assert.equal(2, #paths)
    for i, p in ipairs(paths) do
      assert.equal(dir .. "/img-" .. i .. ".png", p)
      local f = assert(io.open(p, "rb"))
      assert.equal(res.data[i].bytes, f:read("*a"))
      f:close()
    end
    cli.rmdir(dir)
  end)
end)

-- README (Images, audio... downloads): "`max_response_bytes` (64 MiB by
-- default) applies to downloads too, whatever their sink: ... (a 2xx reply
-- whose Content-Length is over it, uncompressed, fails with kind `"limit"`
-- at its headers, before any of its body is read)". The specs wrote to a
-- path and to a string from a server that then closed; here the sink is a
-- function and the server stalls after 1,000 bytes of its body.
describe("README: a download announcing more than max_response_bytes", function ()
  it("fails at its headers into a function sink too: the function gets none of it", function ()
    local oneshot = require "oneshot"
    -- (stalls after 1,000 bytes: the rest never comes; ends when the client hangs up)
    local port, child = oneshot.announced("audio/wav", 10737418240, 1000, "stall")
    local client = aigc.client { base_url = "http://127.0.0.1:9/v1", api_key = "k", max_retries = 0, timeout = 25 }
    local got = 0
    local res, err = client:download("http://127.0.0.1:" .. port .. "/big.wav",
                                     { to = function (chunk) got = got + #chunk end })
    client:close()
    child:wait(40)
    assert.is_nil(res)
    assert.equal("limit", err.kind)   -- (read on, it would have stalled to the timeout: kind "timeout")
    assert.matches("larger than max_response_bytes (67108864 bytes)", err.message, 1, true)
    assert.equal(0, got)
  end)
end)

-- README (Cassettes): "from an https server (or with `proxy = false`, or
-- for a call whose key passes 64 KiB: a long prompt) what the client
-- received". The spec's long prompt was over a megabyte; here one of
-- 80 KB is recorded by the client, one of 30 KB by the proxy (wire bytes).
describe("README: a cassette's call whose key passes 64 KiB", function ()
  local srv, dir
  setup(function () srv = devserver.start { pause_ms = 0 }; dir = cli.home() end)
  teardown(function () srv:stop(); cli.rmdir(dir) end)

  it("is recorded as the client received it; a shorter one through the proxy", function ()
    local path = dir .. "/tape.jsonl"
    local rec = aigc.client { base_url = srv.base_url, model = "aigc-dev", cassette = { path = path, mode = "record" },
                              timeout = 60 }
    for _, kb in ipairs { 80, 30 } do
      assert(rec:chat { messages = { { role = "user", content = "Echo: " .. string.rep("abcd ", kb * 1024 / 5) } } })
    end
    rec:close()
    local tape = {}
    for line in require("procutil").read_file(path):gmatch("[^\n]+") do tape[#tape + 1] = cjson.decode(line) end
    assert.equal(2, #tape)
    assert.is_not_true(tape[1].raw)   -- (80 KB: the client's record)
    assert.is_true(tape[2].raw)       -- (30 KB: the proxy's wire bytes)
  end)
end)

-- README (Conversations): "an image by the conversation's model as OpenAI
-- counts it: gpt-4.1-mini, gpt-4.1-nano and o4-mini (and gpt-5-mini/nano)
-- by 32-pixel patches (at most 1,536) times 1.62, 2.46 or 1.72". The spec
-- did not name gpt-5-mini nor gpt-5-nano (their factors: gpt-4.1-mini's and
-- gpt-4.1-nano's, as OpenAI's vision guide gives them).
describe("README: image estimates of gpt-5-mini and gpt-5-nano", function ()
  local conversation = require "aigc.conversation"
  local b64 = require "b64"
  local function be32 (n)
    return string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
  end
  local function image (w, h)
    local png = string.char(137) .. "PNG\r\n" .. string.char(26) .. "\n" .. be32(13) .. "IHDR" .. be32(w) .. be32(h)
      .. string.char(8, 2, 0, 0, 0) .. string.rep("\0", 40)
    local url = "data:image/png;base64," .. b64(png)
    return { role = "user", content = { { type = "image_url", image_url = { url = url } } } }
  end

  it("are by patches, times 1.62 and 2.46, at most 1,536 patches", function ()
    local function cost (msg, model) return conversation.estimate_message(msg, nil, 0, model) end
    assert.equal(math.ceil(1024 * 1.62), cost(image(1024, 1024), "gpt-5-mini"))
    assert.equal(math.ceil(1024 * 2.46), cost(image(1024, 1024), "gpt-5-nano-2025-08-07"))
    assert.is_true(cost(image(8000, 8000), "gpt-5-mini") <= math.ceil(1536 * 1.62))
    assert.equal(math.ceil(4 * 1.62), cost(image(64, 64), "gpt-5-mini"))   -- (not a tile model's 70 + 140)
  end)
end)

-- README (Prompt log): "A write that fails (...) never fails the call: its
-- first failure is reported as an error of kind "log" (the client's
-- `error_handler`, else `step()`), again after a write worked". The spec
-- ran the error_handler only.
describe("README: a prompt_log write that fails, without an error_handler", function ()
  local dir, srv
  before_each(function () dir = cli.home(); srv = devserver.start() end)
  after_each(function () srv:stop(); cli.rmdir(dir) end)

  it("is the next step()'s second result, once; the call is not failed", function ()
    local promptlog = require "aigc.promptlog"
    local path = dir .. "/logs.db"
    local client = aigc.client { base_url = srv.base_url, model = "aigc-dev", prompt_log = path }
    assert(client:chat "Echo: logged")
    local other = assert(promptlog.open(path))
    -- (a failing write, as a full disk's: root ignores file modes)
    assert(other.con:execute("CREATE TRIGGER full BEFORE INSERT ON responses "
                             .. "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"))
    assert.equal("lost one", assert(client:chat "Echo: lost one").text)
    assert(client:chat "Echo: lost two")
    local _, errs = client:step(0)
    assert.is_table(errs)
    assert.equal(1, #errs)
    assert.equal("log", errs[1].kind)
    assert.matches("the prompt log did not record a call: .*disk is full", errs[1].message)
    local _, again = client:step(0)
    assert.is_true(again == nil or #again == 0)
    client:close()
    assert.equal(1, other:count())
    other:close()
  end)
end)

-- README (The response cache): "The key is the base URL and the cassette
-- key, with a hash of the client's headers and query (an `organization`,
-- a `project`, an `api-version`; not `User-Agent`) ...". The specs held
-- the ones that partition; not User-Agent, which does not (it names the
-- Lua: a LuaJIT process would miss a 5.4 one's entries).
describe("README: the cache key leaves out the client's User-Agent", function ()
  local srv, dir
  setup(function () srv = devserver.start { pause_ms = 0 } end)
  teardown(function () srv:stop() end)
  before_each(function () dir = cli.home() end)
  after_each(function () cli.rmdir(dir) end)

  it("a client sending another User-Agent hits the entry another client made", function ()
    local function cached (headers)
      local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", cache = { dir = dir .. "/c" },
                              headers = headers }
      local res = assert(c:chat { messages = { { role = "user", content = "Echo: agent" } }, temperature = 0 })
      c:close()
      return res.cached == true
    end
    assert.is_false(cached(nil))
    assert.is_true(cached { ["User-Agent"] = "my-bot/2.0" })
    assert.is_false(cached { ["X-Tenant"] = "t1" })   -- (another header of the client: its own entry)
  end)
end)
