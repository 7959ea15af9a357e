-- The response cache's keys and credentials: two API keys never share an
-- entry (one cache folder, several customers' keys), one key hits across
-- processes, and the folder holds nothing a key could be found from by
-- trying keys (no key, nor an unsalted hash of one).

local aigc = require "aigc"
local cache = require "aigc.cache"
local devserver = require "devserver"
local cli = require "cli"
local luachild = require "luachild"

local mode = require("procutil").mode

-- The text of every file in `dir`, dot files too.
local function stored (dir)
  local p = assert(io.popen("cat '" .. dir .. "'/* '" .. dir .. "'/.[!.]* 2>/dev/null"))
  local text = p:read("*a")
  p:close()
  return text
end

describe("the response cache's keys", function ()
  local srv, dir
  setup(function () srv = devserver.start { pause_ms = 0 } end)
  teardown(function () srv:stop() end)
  before_each(function () dir = cli.home(); srv:reset() end)
  after_each(function () cli.rmdir(dir) end)

  local function ask (content, extra)
    local p = { messages = { { role = "user", content = content } }, temperature = 0 }
    for k, v in pairs(extra or {}) do p[k] = v end
    return p
  end

  it("clients with other API keys and one folder share no entry; one key hits, in another process too", function ()
    local function client (key, opts)
      local o = { base_url = srv.base_url, model = "aigc-dev", api_key = key, cache = { dir = dir .. "/c" } }
      for k, v in pairs(opts or {}) do o[k] = v end
      return aigc.client(o)
    end
    local function cached (key, opts)
      local c = client(key, opts)
      local res = assert(c:chat(ask("Echo: shared folder")))
      c:close()
      return res.cached == true
    end
    assert.is_false(cached "sk-customer-a")
    assert.is_false(cached "sk-customer-b")      -- (was customer a's reply)
    assert.is_true(cached "sk-customer-a")
    assert.is_true(cached "sk-customer-b")
    assert.is_false(cached(nil))                  -- no key: an entry of its own too
    -- a key in the client's query (opts.query), and in its base URL
    assert.is_false(cached(nil, { query = { ["api-key"] = "q-one" } }))
    assert.is_false(cached(nil, { query = { ["api-key"] = "q-two" } }))
    assert.is_true(cached(nil, { query = { ["api-key"] = "q-one" } }))
    assert.is_false(cached(nil, { base_url = srv.base_url .. "?key=u-one" }))
    assert.is_true(cached(nil, { base_url = srv.base_url .. "?key=u-one" }))
    assert.equal(6, #srv:requests())
    -- another process: the same key hits (the folder keeps the digests' key), another misses
    local script = [[
      local aigc = require "aigc"
      local c = aigc.client { base_url = arg[1], model = "aigc-dev", api_key = arg[3], cache = { dir = arg[2] } }
      local res = assert(c:chat { messages = { { role = "user", content = "Echo: shared folder" } }, temperature = 0 })
      print(res.cached and "hit" or "miss")
      c:close()
    ]]
    for key, want in pairs { ["sk-customer-a"] = "hit", ["sk-customer-b"] = "hit", ["sk-customer-c"] = "miss" } do
      local r = luachild.run(script, { args = { srv.base_url, dir .. "/c", key } })
      assert.equal(0, r.status, r.stderr)
      assert.equal(want, r.stdout:match("%a+"), key)
    end
    assert.equal(7, #srv:requests())
    assert.equal("600", mode(dir .. "/c/.key"))
  end)

  it("clients whose organization, project, headers or query differ share no entry", function ()
    -- (a fine-tuned model one organization may use, an api-version that shapes the reply:
    -- a second client that differed only there was given the first one's reply)
    local function cached (opts)
      local o = { base_url = srv.base_url, model = "aigc-dev", cache = { dir = dir .. "/o" } }
      for k, v in pairs(opts) do o[k] = v end
      local c = aigc.client(o)
      local res = assert(c:chat(ask("Echo: scoped")))
      c:close()
      return res.cached == true
    end
    assert.is_false(cached { organization = "org-a" })
    assert.is_false(cached { organization = "org-b" })
    assert.is_false(cached { organization = "org-a", project = "proj-b" })
    assert.is_false(cached { headers = { ["X-Tenant"] = "t1" } })
    assert.is_false(cached { query = { ["api-version"] = "2024-01-01" } })
    assert.is_false(cached { base_url = srv.base_url .. "?api-version=2025-01-01" })
    assert.equal(6, #srv:requests())
    -- each hits its own entry again
    assert.is_true(cached { organization = "org-b" })
    assert.is_true(cached { base_url = srv.base_url .. "?api-version=2025-01-01" })
    assert.equal(6, #srv:requests())
  end)

  it("a header new for every request (a trace's, a request id) does not make every call a miss", function ()
    local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", cache = true }
    local function cached (i, tenant)
      return assert(c:chat(ask("Echo: traced", { headers = { traceparent = "00-trace" .. i .. "-span-01",
        tracestate = "a=" .. i, ["X-Request-Id"] = "req-" .. i, ["Idempotency-Key"] = "idem-" .. i,
        ["X-Tenant"] = tenant } }))).cached == true
    end
    assert.is_false(cached(1, "t1"))
    assert.is_true(cached(2, "t1"))
    assert.is_false(cached(3, "t2"))   -- (another header that is no request's own: still its entry)
    c:close()
    assert.equal(2, #srv:requests())
  end)

  it("per-call keys partition too, and an in-memory cache's", function ()
    for _, spec in ipairs { true, { dir = dir .. "/m" } } do
      local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", cache = spec }
      local function cached (extra)
        return assert(c:chat(ask("Echo: per call", extra))).cached == true
      end
      assert.is_false(cached { api_key = "sk-call-a" })
      assert.is_false(cached { api_key = "sk-call-b" })
      assert.is_true(cached { api_key = "sk-call-a" })
      assert.is_false(cached { query = { key = "k-a" } })
      assert.is_false(cached { query = { key = "k-b" } })
      assert.is_true(cached { query = { key = "k-a" } })
      assert.is_false(cached { headers = { ["X-Api-Key"] = "h-a" } })
      assert.is_true(cached { headers = { ["X-Api-Key"] = "h-a" } })
      c:close()
    end
  end)

  it("a call with credentials is not cached where no random key can be had (and works)", function ()
    local open = io.open
    io.open = function (path, how)   -- luacheck: ignore 122
      if path == "/dev/urandom" then return nil, "/dev/urandom: No such file or directory" end
      return open(path, how)
    end
    local ok, err = pcall(function ()
      local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", cache = true }
      for _ = 1, 2 do
        local res = assert(c:chat(ask("Echo: no digest", { api_key = "sk-no-digest" })))
        assert.equal("no digest", res.text)
        assert.is_nil(res.cached)
      end
      c:close()
    end)
    io.open = open   -- luacheck: ignore 122
    assert(ok, err)
    assert.equal(2, #srv:requests())
  end)

  it("a folder's key that could not be had is asked for again a minute on (none was cached again)", function ()
    -- (a full disk or a folder briefly unwritable at the first call: kept as "no key", no call
    -- with a credential was cached for the rest of the process's life)
    local folder = dir .. "/keyed"
    local c = cache.new { dir = folder }
    os.execute("mkdir '" .. folder .. "/.key'")   -- (a folder in its place: no key read, none made)
    assert.is_nil(c:digest("sk-first"))
    os.execute("rm -rf '" .. folder .. "/.key'")
    assert.is_nil(c:digest("sk-first"))   -- (not again at once: a shell per call while it fails)
    c.salt_tried = (c.salt_tried or os.time()) - 60
    local d = c:digest("sk-first")
    assert.is_string(d)
    assert.equal(d, cache.new({ dir = folder }):digest("sk-first"))   -- (the folder's key, made now)
  end)

  it("a prompt holding the client's key: not in the disk entry's key, and hit", function ()
    local key = "sk-prompt-in-cache-5557654321"
    local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", api_key = key, cache = { dir = dir .. "/p" } }
    local p = ask("Echo: why is " .. key .. " refused?")
    assert(c:chat(p))
    assert.is_true(assert(c:chat(p)).cached)
    c:close()
    local text = stored(dir .. "/p")
    assert.matches("why is", text, 1, true)
    assert.is_nil(text:find(key, 1, true), "the key is in a cache file")
    -- another client with that key hits the entry from the disk
    local again = aigc.client { base_url = srv.base_url, model = "aigc-dev", api_key = key,
                                cache = { dir = dir .. "/p" } }
    assert.is_true(assert(again:chat(p)).cached)
    again:close()
    assert.equal(1, #srv:requests())
  end)

  -- An Azure client's azure_ad_token_provider gives its token per call, not
  -- in the client's headers: two clients of two identities (two providers)
  -- and one folder were each answered from the other's entries.
  it("Azure clients whose token providers give other tokens share no entry; the token is never stored", function ()
    local function cached (token, prompt)
      local c = aigc.client { azure = true, endpoint = srv.url, api_version = "2024-10-21", model = "dep",
                              max_retries = 0, cache = { dir = dir .. "/t" },
                              azure_ad_token_provider = function () return token end }
      local res = assert(c:chat(ask(prompt or "Echo: shared folder")))
      c:close()
      return res.cached == true
    end
    local alice, bob = "entra-token-alice-0123456789", "entra-token-bob-0123456789"
    assert.is_false(cached(alice))
    assert.is_false(cached(bob))                  -- (was alice's reply)
    assert.is_true(cached(alice))
    assert.is_true(cached(bob))
    -- the token of a provider is the credential, as a fixed azure_ad_token's: the same token hits
    local fixed = aigc.client { azure = true, endpoint = srv.url, api_version = "2024-10-21", model = "dep",
                                max_retries = 0, cache = { dir = dir .. "/t" }, azure_ad_token = alice }
    assert.is_true(assert(fixed:chat(ask("Echo: shared folder"))).cached)
    fixed:close()
    -- a prompt holding the token: not in the entry's key (nor the token anywhere in the folder), and hit
    assert.is_false(cached(alice, "Echo: is " .. alice .. " still valid?"))
    assert.is_true(cached(alice, "Echo: is " .. alice .. " still valid?"))
    assert.equal(3, #srv:requests())
    local text = stored(dir .. "/t")
    assert.matches("still valid", text, 1, true)
    assert.is_nil(text:find("entra-token-", 1, true))
  end)

  it("keeps neither a key nor an unsalted hash of one on disk", function ()
    -- (short keys: an unsalted 64-bit hash of one was found again by trying keys)
    local client_key, body_key, header_key, query_key = "sk-c1", "sk-b1", "sk-h1", "sk-q1"
    local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", api_key = client_key,
                            cache = { dir = dir .. "/d" } }
    local p = ask("Echo: private", { api_key = body_key, headers = { Authorization = "Bearer " .. header_key },
                                     query = { ["api-key"] = query_key } })
    assert(c:chat(p))
    assert.is_true(assert(c:chat(p)).cached)
    c:close()
    local text = stored(dir .. "/d")
    assert.matches("Echo: private", text, 1, true)
    assert.equal("600", mode(dir .. "/d/.key"))
    -- (the messages name no key: no secret in test output)
    for i, key in ipairs { client_key, body_key, header_key, query_key } do
      assert.is_nil(text:find(key, 1, true), "key " .. i)
      -- (the hashes the key had: "[secret HASH]", and of the headers and query "own HASH")
      for j, form in ipairs { key, "Bearer " .. key, "Authorization: Bearer " .. key, "?api-key=" .. key,
                              "Authorization: Bearer " .. header_key .. "\n?api-key=" .. query_key } do
        assert.is_nil(text:find(cache.hash(form), 1, true), "a hash of key " .. i .. ", form " .. j)
      end
    end
  end)
end)
