-- Azure OpenAI as a client meets it: where each call goes (deployment
-- paths or not, a base URL that names a deployment), which credential is
-- sent (the key, an Entra ID token, from the options or the environment as
-- openai-python reads them), and that no credential shows in an error.
-- The requests are seen by a raw one-off server (spec/support/oneshot.lua)
-- that records each request line and its headers: no aigc on its side.
local aigc = require "aigc"
local oneshot = require "oneshot"
local luachild = require "luachild"

-- The server: answers `arg[2]` requests, each by its path, and appends
-- "<request line>\t<header>\t<header>..." to the file arg[1]. A path with
-- "echo401" is answered 401 with the request's headers in the message (as
-- some gateways echo them): what a client's error must not repeat.
local SERVER = [=[
  local oneshot = require "oneshot"
  local out_path, n = arg[1], tonumber(arg[2])
  local server = oneshot.listen()
  server:settimeout(30)
  local CHAT = '{"id":"c1","object":"chat.completion","created":1,"model":"dep","choices":[{"index":0,'
    .. '"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}'
  local function reply (line, heads)
    if line:find("echo401") then
      return "401 Unauthorized", '{"error":{"code":"401","message":"Access denied: '
        .. table.concat(heads, " "):gsub('[\\"]', "") .. '"}}'
    elseif line:find("^POST [^ ]*/files") then
      return "200 OK", '{"id":"file-1","object":"file","bytes":10,"created_at":1,"filename":"b.jsonl",'
        .. '"purpose":"batch","status":"processed"}'
    elseif line:find("/batches") then
      return "200 OK", '{"id":"batch_1","object":"batch","endpoint":"/chat/completions","input_file_id":"file-1",'
        .. '"completion_window":"24h","status":"in_progress","created_at":1,'
        .. '"request_counts":{"total":1,"completed":0,"failed":0}}'
    elseif line:find("/embeddings") then
      return "200 OK", '{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5]}],"model":"dep"}'
    elseif line:find("/files") or line:find("/models") then
      return "200 OK", '{"object":"list","data":[],"has_more":false}'
    elseif line:find("/responses") then
      return "200 OK", '{"id":"resp_1","object":"response","created_at":1,"status":"completed","model":"dep",'
        .. '"output":[]}'
    end
    return "200 OK", CHAT
  end
  for _ = 1, n do
    local c = assert(server:accept())
    c:settimeout(10)
    local first = assert(c:receive("*l"))
    local heads, len = {}, 0
    while true do
      local l = assert(c:receive("*l"))
      if l == "" then break end
      heads[#heads + 1] = l
      len = tonumber(l:match("^[Cc]ontent%-[Ll]ength: *(%d+)")) or len
    end
    local body = len > 0 and c:receive(len) or ""
    local f = assert(io.open(out_path, "ab"))
    -- (a JSON body as the last field: "body=...", on one line)
    local json = body:sub(1, 1) == "{" and body:find("^[^\r\n\t]*$") and "\tbody=" .. body or ""
    f:write(first, "\t", table.concat(heads, "\t"), json, "\n")
    f:close()
    local status, body = reply(first, heads)
    c:send("HTTP/1.1 " .. status .. "\r\nContent-Type: application/json\r\nContent-Length: " .. #body
           .. "\r\nConnection: close\r\n\r\n" .. body)
    c:close()
  end
]=]

-- Starts the server for `n` requests: its URL, and a function that waits
-- for it and gives what it received ({ line =, headers = { lower name = value }, body = a JSON
-- body's text } each).
local function capture (n)
  local out = os.tmpname()
  local port, child = oneshot.start(SERVER, { out, tostring(n) })
  local function finish ()
    child:wait(40)
    local seen = {}
    local f = io.open(out, "rb")
    for l in (f and f:lines() or function () end) do
      local fields = {}
      for field in l:gmatch("[^\t]+") do fields[#fields + 1] = field end
      local h, body = {}, nil
      for i = 2, #fields do
        local k, v = fields[i]:match("^([^:]+):%s*(.-)%s*$")
        if fields[i]:find("^body=") then body = fields[i]:sub(6)
        elseif k then h[k:lower()] = v end
      end
      seen[#seen + 1] = { line = fields[1], headers = h, body = body }
    end
    if f then f:close() end
    os.remove(out)
    return seen
  end
  return "http://127.0.0.1:" .. port, finish
end

-- The request lines of what the server saw, without " HTTP/1.1".
local function lines_of (seen)
  local t = {}
  for i, s in ipairs(seen) do t[i] = s.line:gsub(" HTTP/1%.1$", "") end
  return t
end

describe("Azure OpenAI, as the server sees it", function ()
  it("a base_url naming a deployment: its deployment calls go there, files, batches, responses and models "
     .. "to the /openai above it (at /deployments/<name>/files Azure answers 404)", function ()
    local url, finish = capture(7)
    local c = aigc.client { azure = true, base_url = url .. "/openai/deployments/dep?api-version=2024-10-21",
                            api_key = "azure-key-0123456789", max_retries = 0 }
    assert(c:chat "Hi")
    assert(c:embeddings { input = "x" })
    assert(c:chat { model = "other", messages = { { role = "user", content = "Hi" } } })   -- (the URL's wins)
    assert(c:files_list {})
    assert(c:models())
    assert(c:respond { model = "dep", input = "Hi" })
    assert(aigc.batch.retrieve(c, "batch_1"))
    c:close()
    local q = "?api-version=2024-10-21"
    assert.same({
      "POST /openai/deployments/dep/chat/completions" .. q,
      "POST /openai/deployments/dep/embeddings" .. q,
      "POST /openai/deployments/dep/chat/completions" .. q,
      "GET /openai/files" .. q,
      "GET /openai/models" .. q,
      "POST /openai/responses" .. q,
      "GET /openai/batches/batch_1" .. q,
    }, lines_of(finish()))
  end)

  it("a base_url that is the portal's Target URI (the deployment and its endpoint): the deployment's, "
     .. "not /chat/completions/deployments/...", function ()
    local url, finish = capture(3)
    local target = url .. "/openai/deployments/gpt-4o/chat/completions?api-version=2025-01-01-preview"
    local c = aigc.client { azure = true, api_key = "azure-key-0123456789", max_retries = 0, base_url = target }
    assert(c:chat "Hi")   -- (no model needed: the URL names the deployment)
    assert(c:embeddings { input = "x" })
    assert(c:files_list {})
    c:close()
    local q = "?api-version=2025-01-01-preview"
    assert.same({ "POST /openai/deployments/gpt-4o/chat/completions" .. q,
                  "POST /openai/deployments/gpt-4o/embeddings" .. q, "GET /openai/files" .. q }, lines_of(finish()))
  end)

  it("the response cache keeps the deployments of two base URLs apart (one's reply never answers the other)",
     function ()
    local url, finish = capture(2)
    local dir = os.tmpname()
    os.remove(dir)
    local function ask (deployment)
      local c = aigc.client { azure = true, api_key = "azure-key-0123456789", max_retries = 0, cache = { dir = dir },
                              base_url = url .. "/openai/deployments/" .. deployment .. "?api-version=2024-10-21" }
      local res = assert(c:chat { messages = { { role = "user", content = "Hi" } }, temperature = 0 })
      c:close()
      return res.cached
    end
    ask("dep-a")
    assert.is_true(ask("dep-a"))   -- (the cache works: a hit)
    assert.is_falsy(ask("dep-b"))
    local q = "?api-version=2024-10-21"
    assert.same({ "POST /openai/deployments/dep-a/chat/completions" .. q,
                  "POST /openai/deployments/dep-b/chat/completions" .. q }, lines_of(finish()))
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("$AZURE_OPENAI_AD_TOKEN, with no credential given, is sent as a Bearer token (before "
     .. "$AZURE_OPENAI_API_KEY, as openai-python), and no error shows it", function ()
    local url, finish = capture(3)
    local r = luachild.run([[
      local aigc = require "aigc"
      local c = aigc.client { azure = true, endpoint = arg[1], api_version = "2024-10-21", model = "dep",
                              max_retries = 0 }
      assert(c:chat "Hi")
      local _, err = c:request("GET", "/echo401")
      io.write(tostring(err), "\n", tostring(c), "\n")
      -- a key given wins over the variables (and is sent alone)
      local k = aigc.client { azure = true, endpoint = arg[1], api_version = "2024-10-21", model = "dep",
                              api_key = "given-key-0123456789", max_retries = 0 }
      assert(k:chat "Hi")
    ]], { args = { url }, env = { AZURE_OPENAI_AD_TOKEN = "entra-token-0123456789",
                                  AZURE_OPENAI_API_KEY = "env-key-0123456789" } })
    local seen = finish()
    assert.equal(0, r.status, r.stderr)
    assert.equal(3, #seen)
    assert.equal("Bearer entra-token-0123456789", seen[1].headers.authorization)
    assert.is_nil(seen[1].headers["api-key"])
    assert.equal("Bearer entra-token-0123456789", seen[2].headers.authorization)   -- (the echo)
    assert.matches("401", r.stdout, 1, true)   -- (the error came)
    assert.is_nil(r.stdout:find("entra-token-0123456789", 1, true))
    assert.equal("given-key-0123456789", seen[3].headers["api-key"])
    assert.is_nil(seen[3].headers.authorization)
  end)
end)

describe("Azure's azure_ad_token_provider (openai-python's: a token per request)", function ()
  it("is called for each request, its token sent as Bearer, never the key of $AZURE_OPENAI_API_KEY too, "
     .. "and no error shows it", function ()
    local url, finish = capture(5)
    local r = luachild.run([[
      local aigc = require "aigc"
      local n = 0
      local c = aigc.client { azure = true, endpoint = arg[1], api_version = "2024-10-21", model = "dep",
                              max_retries = 0,
                              azure_ad_token_provider = function () n = n + 1 return "entra-token-000" .. n end }
      assert(c:chat "Hi")
      assert(c:files_list {})
      assert(aigc.batch.retrieve(c, "batch_1"))   -- (a batch's poll)
      local _, err = c:request("GET", "/echo401")
      io.write(tostring(err), "\n", tostring(c), "\n")
      -- the call's own Authorization wins (and the provider is still asked: the same rule for every call)
      assert(c:chat { messages = { { role = "user", content = "Hi" } }, headers = { Authorization = "Bearer mine" } })
      io.write("calls ", n, "\n")
    ]], { args = { url }, env = { AZURE_OPENAI_API_KEY = "env-key-0123456789" } })
    local seen = finish()
    assert.equal(0, r.status, r.stderr)
    assert.equal(5, #seen)
    for i = 1, 4 do
      assert.equal("Bearer entra-token-000" .. i, seen[i].headers.authorization)
      assert.is_nil(seen[i].headers["api-key"])
    end
    assert.equal("GET /openai/batches/batch_1?api-version=2024-10-21 HTTP/1.1", seen[3].line)
    assert.equal("Bearer mine", seen[5].headers.authorization)
    assert.matches("401", r.stdout, 1, true)
    assert.is_nil(r.stdout:find("entra-token-0004", 1, true))   -- (the echo's token: scrubbed)
    assert.matches("calls 5", r.stdout, 1, true)
  end)

  it("its token never goes to another origin (a download of an image's URL)", function ()
    local url, finish = capture(1)
    local other, finish_other = capture(1)
    local c = aigc.client { azure = true, endpoint = url, api_version = "2024-10-21", model = "dep", max_retries = 0,
                            azure_ad_token_provider = function () return "entra-token-0123456789" end }
    assert(c:download(other:gsub("127%.0%.0%.1", "localhost") .. "/blob/img.png"))
    assert(c:download(url .. "/openai/files/file-1/content"))
    c:close()
    local foreign, own = finish_other(), finish()
    assert.equal("GET /blob/img.png HTTP/1.1", foreign[1].line)
    assert.is_nil(foreign[1].headers.authorization)
    assert.equal("Bearer entra-token-0123456789", own[1].headers.authorization)
  end)

  it("a provider that gives no token, or one given with a key: misuse, named", function ()
    local c = aigc.client { azure = true, endpoint = "http://127.0.0.1:9", api_version = "2024-10-21", model = "dep",
                            max_retries = 0, azure_ad_token_provider = function () return nil end }
    local ok, e = pcall(c.chat, c, "Hi")
    assert.is_false(ok)
    assert.matches("chat: opts.azure_ad_token_provider gave nil, not a token", tostring(e), 1, true)
    c:close()
    ok, e = pcall(aigc.client, { azure = true, endpoint = "http://127.0.0.1:9", api_version = "2024-10-21",
                                 api_key = "k", azure_ad_token_provider = function () return "t" end })
    assert.is_false(ok)
    assert.matches("opts.azure_ad_token_provider: give one of api_key, azure_ad_token and azure_ad_token_provider",
                   tostring(e), 1, true)
  end)
end)

describe("Azure's Batch API", function ()
  it("aigc.batch.create sends output_expires_after (Azure's and OpenAI's: how long the output files stay)",
     function ()
    local url, finish = capture(2)
    local c = aigc.client { azure = true, endpoint = url, api_version = "2025-04-01-preview", api_key = "k",
                            model = "batch-dep", max_retries = 0 }
    local requests = { { custom_id = "a", body = { messages = { { role = "user", content = "Hi" } } } } }
    local b = assert(aigc.batch.create(c, requests,
                                       { output_expires_after = { anchor = "created_at", seconds = 1209600 } }))
    assert.equal("batch_1", b.id)
    c:close()
    local seen = finish()
    assert.equal("POST /openai/files?api-version=2025-04-01-preview HTTP/1.1", seen[1].line)
    assert.equal("POST /openai/batches?api-version=2025-04-01-preview HTTP/1.1", seen[2].line)
    local sent = require("cjson").decode(seen[2].body)
    assert.same({ anchor = "created_at", seconds = 1209600 }, sent.output_expires_after)
    assert.equal("file-1", sent.input_file_id)
    -- not a table: misuse, named
    local ok, e = pcall(aigc.batch.create, c, { { custom_id = "a", body = {} } }, { output_expires_after = 3600 })
    assert.is_false(ok)
    assert.matches("opts.output_expires_after: table expected, got number", tostring(e), 1, true)
  end)
end)
