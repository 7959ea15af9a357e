-- The response cache (issue 16 item 4): memory LRU and disk, keyed like
-- cassettes, TTL, size caps, only cacheable requests, hit/miss counts.

local aigc = require "aigc"
local cache = require "aigc.cache"
local devserver = require "devserver"
local cli = require "cli"

describe("the response cache", function ()
  local srv, dir
  setup(function () srv = devserver.start { pause_ms = 0 } end)
  teardown(function () srv:stop() end)
  before_each(function () dir = cli.home(); srv:reset() end)
  after_each(function () cli.rmdir(dir) end)

  local function ask (content, extra)
    local p = { messages = { { role = "user", content = content } } }
    for k, v in pairs(extra or {}) do p[k] = v end
    return p
  end

  it("answers a repeated temperature = 0 / seed / cache = true request without the network", function ()
    local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", cache = true }
    local a = assert(c:chat(ask("Echo: one", { temperature = 0 })))
    local b = assert(c:chat(ask("Echo: one", { temperature = 0.0 })))
    assert.equal(1, #srv:requests())
    assert.equal(a.text, b.text)
    assert.is_true(b.cached)
    assert.is_nil(a.cached)
    assert(c:chat(ask("Echo: two", { seed = 7 })))
    assert(c:chat(ask("Echo: two", { seed = 7 })))
    assert(c:chat(ask("Echo: three", { cache = true })))
    assert(c:chat(ask("Echo: three", { cache = true })))
    assert.equal(3, #srv:requests())
    assert.is_nil(srv:requests()[3].body_json.cache)   -- the mark is never sent
    local s = c:cache_stats()
    assert.equal(3, s.hits)
    assert.equal(3, s.misses)
    assert.equal(3, s.stores)
    local u = c:usage()
    assert.equal(3, u.cache_hits)
    assert.equal(6, u.requests)
    c:close()
  end)

  it("a hit has the reply's headers on every Lua version (they are made when first read)", function ()
    local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", cache = true }
    local a = assert(c:chat(ask("Echo: headers", { temperature = 0 })))
    local b = assert(c:chat(ask("Echo: headers", { temperature = 0 })))
    assert.is_true(b.cached)
    assert.is_table(b.headers)
    assert.equal(a.headers["content-type"], b.headers["content-type"])
    assert.equal(a.request_id, b.request_id)
    c:close()
  end)

  it("never caches what may differ: no temperature 0 or seed, cache = false, streams", function ()
    local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", cache = true }
    for _ = 1, 2 do
      assert(c:chat(ask("Echo: x")))
      assert(c:chat(ask("Echo: y", { temperature = 0, cache = false })))
      assert(c:chat(ask("Echo: z", { temperature = 0, stream = function () end })))
    end
    assert.equal(6, #srv:requests())
    assert.equal(0, c:cache_stats().hits)
    c:close()
  end)

  it("decides what may be cached from what is sent: extra_body's temperature and seed, a null seed", function ()
    local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", cache = true }
    local function twice (extra)
      local before = #srv:requests()
      assert(c:chat(ask("Echo: sent", extra)))
      local again = assert(c:chat(ask("Echo: sent", extra)))
      return #srv:requests() - before, again.cached
    end
    -- sent with temperature 1, or with a null seed: may differ each time
    assert.same({ 2 }, { twice { temperature = 0, extra_body = { temperature = 1 } } })
    assert.same({ 2 }, { twice { seed = aigc.null } })
    assert.same({ 2 }, { twice { extra_body = { seed = aigc.null }, seed = 3 } })
    -- sent with temperature 0 or a seed: kept
    assert.same({ 1, true }, { twice { temperature = 1, extra_body = { temperature = 0 } } })
    assert.same({ 1, true }, { twice { extra_body = { seed = 5 } } })
    c:close()
  end)

  it("a hit through chat_async is a request already done; its on_done runs from step()", function ()
    local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", cache = true }
    assert(c:chat(ask("Echo: async", { temperature = 0 })))
    local got
    local req = c:chat_async(ask("Echo: async", { temperature = 0, on_done = function (res) got = res end }))
    assert.equal("done", req:status())
    assert.is_nil(got)
    c:step(0)
    assert.equal("async", got.text)
    assert.equal(1, #srv:requests())
    c:close()
  end)

  it("keeps replies on disk across clients; TTL expires them", function ()
    local c1 = aigc.client { base_url = srv.base_url, model = "aigc-dev", cache = { dir = dir .. "/c" } }
    assert(c1:chat(ask("Echo: disk", { temperature = 0 })))
    c1:close()
    local c2 = aigc.client { base_url = srv.base_url, model = "aigc-dev", cache = { dir = dir .. "/c" } }
    local r = assert(c2:chat(ask("Echo: disk", { temperature = 0 })))
    assert.is_true(r.cached)
    assert.equal(1, #srv:requests())
    c2:close()
    -- an entry older than the TTL is a miss (its file is rewritten by the new reply)
    local c3 = aigc.client { base_url = srv.base_url, model = "aigc-dev", cache = { dir = dir .. "/c", ttl = 1 } }
    local f = io.popen("ls " .. dir .. "/c")
    local name = f:read("*l")
    f:close()
    local path = dir .. "/c/" .. name
    local text = io.open(path, "rb"):read("*a")
    local x = aigc.json.decode(text)
    x.time = x.time - 10
    local w = io.open(path, "wb"); w:write(aigc.json.encode(x)); w:close()
    local r3 = assert(c3:chat(ask("Echo: disk", { temperature = 0 })))
    assert.is_nil(r3.cached)
    assert.equal(2, #srv:requests())
    c3:close()
  end)

  -- The path of the one entry in the folder dir/c.
  local function entry ()
    local f = io.popen("ls " .. dir .. "/c")
    local name = f:read("*l")
    f:close()
    return dir .. "/c/" .. name
  end

  it("a disk entry that is not a reply ({}, choices not a list) is a miss, and overwritten", function ()
    local c1 = aigc.client { base_url = srv.base_url, model = "aigc-dev", cache = { dir = dir .. "/c" } }
    assert(c1:chat(ask("Echo: shaped", { temperature = 0 })))
    c1:close()
    local path = entry()
    for i, bad in ipairs { "{}", '{"text":"INJECTED","choices":"nope"}', "[1]" } do
      local x = aigc.json.decode(io.open(path, "rb"):read("*a"))
      x.value = bad
      local w = io.open(path, "wb"); w:write(aigc.json.encode(x)); w:close()
      local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", cache = { dir = dir .. "/c" } }
      local r = assert(c:chat(ask("Echo: shaped", { temperature = 0 })))
      assert.is_nil(r.cached)                                  -- not served: asked again
      assert.equal("shaped", r.text)
      assert.equal(1 + i, #srv:requests())
      assert.equal(1, c:cache_stats().misses)
      c:close()
      local again = aigc.json.decode(io.open(path, "rb"):read("*a"))
      assert.equal("shaped", aigc.json.decode(again.value).text)   -- the new reply is stored over it
    end
  end)

  -- A disk entry edited by hand or torn by another tool: each odd field is a
  -- miss (the call sent, its reply stored over it), never an error out of
  -- `chat`, never served.
  it("a disk entry with fields of the wrong type is a miss, and the reply asked again stored over it", function ()
    local c1 = aigc.client { base_url = srv.base_url, model = "aigc-dev", cache = { dir = dir .. "/c", ttl = 3600 } }
    assert(c1:chat(ask("Echo: kept", { temperature = 0 })))
    c1:close()
    local path = entry()
    local good = aigc.json.decode(io.open(path, "rb"):read("*a"))
    local reply = aigc.json.decode(good.value)
    local function with (field, v)   -- (v a string starting "=": that JSON text as it is)
      local r = aigc.json.decode(good.value)
      r[field] = v
      local text = aigc.json.encode(r)
      if type(v) == "string" and v:sub(1, 1) == "=" then
        text = text:gsub(aigc.json.encode(v):gsub("%p", "%%%0"), (v:sub(2):gsub("%%", "%%%%")))
      end
      return text
    end
    local bads = {
      { time = "soon" }, { time = {} }, { time = -1e15 }, { key = 5 }, { value = 5 }, { value = {} },
      { value = with("choices", { { message = "text" } }) },
      { value = with("choices", { { message = { content = 5 } } }) },
      { value = with("choices", { { message = { role = "assistant", content = true } } }) },
      { value = with("choices", { "one" }) },
      { value = with("usage", "many") },
      { value = with("usage", { prompt_tokens = "x", total_tokens = {} }) },
      { value = with("usage", '={"prompt_tokens":1e300,"completion_tokens":2,"total_tokens":3}') },
      { value = with("usage", { prompt_tokens = 2.5, completion_tokens = -5 }) },
      { value = with("headers", "none") },
      { value = with("headers", { ["x-a"] = { 1 } }) },
      { value = with("status", "ok") },
      { value = with("body_b64", 5) },
      { value = with("body_b64", "!!not base64!!") },
      { value = with("model", {}) },
      { value = with("id", 5) },
    }
    for i, bad in ipairs(bads) do
      local x = {}
      for k, v in pairs(good) do x[k] = v end
      for k, v in pairs(bad) do x[k] = v end
      local w = io.open(path, "wb"); w:write(aigc.json.encode(x)); w:close()
      local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", usage = true,
                              cache = { dir = dir .. "/c", ttl = 3600 } }
      local ok, r, err = pcall(c.chat, c, ask("Echo: kept", { temperature = 0 }))
      assert.is_true(ok, "case " .. i .. ": " .. tostring(r))
      assert.is_nil(err, "case " .. i)
      assert.is_nil(r.cached, "case " .. i .. ": served")
      assert.equal(reply.choices[1].message.content, r.text, "case " .. i)
      assert.equal(1 + i, #srv:requests(), "case " .. i)
      assert.equal(1, c:cache_stats().misses, "case " .. i)
      assert.is_table(c:usage())
      c:close()
      local again = aigc.json.decode(io.open(path, "rb"):read("*a"))
      assert.same(reply.choices, aigc.json.decode(again.value).choices, "case " .. i .. ": not stored over")
      assert.equal("number", type(again.time), "case " .. i)
    end
  end)

  it("a disk speech entry without its bytes (no body, no body_b64) is a miss, and the audio asked again", function ()
    local function speak ()   -- (a new client each time: its memory cache empty, the disk read)
      local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", cache = { dir = dir .. "/c" } }
      local res = assert(c:speech { input = "Say it once", cache = true })
      c:close()
      return res
    end
    local first = speak()
    local path = entry()
    local x = aigc.json.decode(io.open(path, "rb"):read("*a"))
    local r = aigc.json.decode(x.value)
    assert.is_string(r.body_b64 or r.body)
    r.body, r.body_b64 = nil, nil
    x.value = aigc.json.encode(r)
    local w = io.open(path, "wb"); w:write(aigc.json.encode(x)); w:close()
    local again = speak()
    assert.same({ false, first.body, 2 }, { again.cached == true, again.body, #srv:requests() })
  end)

  it("keeps no secret a server echoed: the entry is scrubbed as errors are, and a hit gives it so", function ()
    local key = "sk-cache-secret-4711"
    local c = aigc.client { base_url = srv.base_url, model = "fault:echo-key", api_key = key,
                            cache = { dir = dir .. "/c" } }
    local live = assert(c:chat(ask("Echo: hi", { temperature = 0 })))
    assert.matches(key, live.text, 1, true)               -- (the live reply is the caller's)
    local f = io.popen("cat " .. dir .. "/c/*")
    local stored = f:read("*a")
    f:close()
    assert.matches("x-echo", stored, 1, true)
    assert.is_nil(stored:find(key, 1, true))
    local hit = assert(c:chat(ask("Echo: hi", { temperature = 0 })))
    assert.is_true(hit.cached)
    assert.is_nil(hit.text:find(key, 1, true))
    assert.matches("Your API key is [redacted].", hit.text, 1, true)
    assert.equal("[redacted]", hit.headers["x-echo"])
    assert.is_nil(tostring(hit.request_id):find(key, 1, true))
    c:close()
  end)

  it("keeps no session cookie nor token a server set, in memory or on disk", function ()
    local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", cache = { dir = dir .. "/cookie" } }
    local fault = "raw-header=Set-Cookie: session=cache-cookie-7731,raw-header=set-cookie2: b=cache-cookie-7732,"
                  .. "raw-header=Authorization: Bearer cache-token-7733"
    local p = ask("Echo: cookie", { temperature = 0, headers = { ["x-aigc-fault"] = fault } })
    local live = assert(c:chat(p))
    assert.equal("session=cache-cookie-7731", live.headers["set-cookie"])   -- (the live reply is the caller's)
    local f = io.popen("cat " .. dir .. "/cookie/*")
    local stored = f:read("*a")
    f:close()
    assert.matches("Echo: cookie", stored, 1, true)
    assert.is_nil(stored:find("cache-cookie", 1, true))
    assert.is_nil(stored:find("cache-token", 1, true))
    local hit = assert(c:chat(p))
    assert.is_true(hit.cached)
    assert.is_nil(hit.headers["set-cookie"])
    assert.is_nil(hit.headers["set-cookie2"])
    assert.is_nil(hit.headers["authorization"])
    assert.equal(live.headers["content-type"], hit.headers["content-type"])
    c:close()
  end)

  it("a call's own api_key is not written in a disk entry (its key held it), and other credentials are another entry",
     function ()
    local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", cache = { dir = dir .. "/own" } }
    local body_key = "sk-body-key-0815"
    assert(c:chat(ask("Echo: hi", { temperature = 0, api_key = body_key })))
    assert.is_true(assert(c:chat(ask("Echo: hi", { temperature = 0, api_key = body_key }))).cached)
    local f = io.popen("cat " .. dir .. "/own/*")
    local stored = f:read("*a")
    f:close()
    assert.matches("Echo: hi", stored, 1, true)
    assert.is_nil(stored:find(body_key, 1, true))
    -- another tenant's key (a per-call header) is a miss, then its own hit
    local function as (tenant)
      return c:chat(ask("Echo: tenants", { temperature = 0, headers = { Authorization = "Bearer sk-" .. tenant } }))
    end
    assert.is_nil(assert(as "tenant-a").cached)
    assert.is_nil(assert(as "tenant-b").cached)
    assert.is_true(assert(as "tenant-b").cached)
    -- and another query (an api-version) too
    assert.is_nil(assert(c:chat(ask("Echo: tenants", { temperature = 0, query = { ["api-version"] = "2" } }))).cached)
    c:close()
  end)

  it("a disk entry is hit by a client recording or replaying a cassette (the key has the client's URL)", function ()
    local p = ask("Echo: taped", { temperature = 0 })
    local warm = aigc.client { base_url = srv.base_url, model = "aigc-dev", cache = { dir = dir .. "/c" } }
    local live = assert(warm:chat(p))
    warm:close()
    local tape = dir .. "/t.jsonl"
    -- recording through the proxy (whose port is new each run), then replaying
    for _, mode in ipairs { "record", "replay" } do
      local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", cache = { dir = dir .. "/c" },
                              cassette = { path = tape, mode = mode } }
      local res = assert(c:chat(p))
      c:close()
      assert.is_true(res.cached, mode)
      assert.equal(live.text, res.text)
    end
    assert.equal(1, #srv:requests())
  end)

  it("evicts the least recently used past max_entries / max_bytes", function ()
    local cc = cache.new { max_entries = 2 }
    cc:put("a", { text = "A" }); cc:put("b", { text = "B" })
    assert.equal("A", cc:get("a").text)   -- a is now the most recent
    cc:put("c", { text = "C" })           -- b goes
    assert.is_nil(cc:get("b"))
    assert.equal("A", cc:get("a").text)
    assert.equal("C", cc:get("c").text)
    assert.equal(1, cc:stats().evictions)
    local small = cache.new { max_bytes = 40 }
    small:put("x", { text = string.rep("x", 20) })
    small:put("y", { text = string.rep("y", 20) })
    assert.is_nil(small:get("x"))
    assert.truthy(small:get("y"))
    assert.is_true(small:stats().bytes <= 40)
  end)

  it("max_bytes counts the keys too (a long prompt with a short reply)", function ()
    local cc = cache.new { max_bytes = 1000 }
    local long = string.rep("p", 600)   -- (a key holds the whole request)
    cc:put(long .. "1", { text = "a" })
    cc:put(long .. "2", { text = "b" })
    local s = cc:stats()
    assert.equal(1, s.entries)
    assert.equal(1, s.evictions)
    assert.is_true(s.bytes > 600 and s.bytes <= 1000)
    assert.equal("b", cc:get(long .. "2").text)
    cc:put(string.rep("q", 1001), { text = "c" })   -- (alone past the cap: not kept in memory)
    assert.equal(1, cc:stats().entries)
  end)

  it("max_disk_bytes: the oldest files go", function ()
    local cc = cache.new { dir = dir .. "/d", max_disk_bytes = 400 }
    for i = 1, 10 do
      cc:put("k" .. i, { text = string.rep("z", 60) .. i })
      os.execute("sleep 0.01")
    end
    local p = io.popen("du -cb " .. dir .. "/d/*.json | tail -1")
    local total = tonumber(p:read("*l"):match("^(%d+)"))
    p:close()
    assert.is_true(total <= 400, total)
    cc:clear()                                  -- memory emptied: what remains is on disk
    assert.equal(string.rep("z", 60) .. 10, cc:get("k10").text)
    assert.is_nil(cc:get("k1"))
  end)

  it("max_disk_bytes does not list the folder after every write", function ()
    local cc = cache.new { dir = dir .. "/scan", max_disk_bytes = 1000000 }
    local core = require "aigc.core"
    local list_dir, scans = core.list_dir, 0
    core.list_dir = function (...) scans = scans + 1 return list_dir(...) end
    local ok, err = pcall(function ()
      for i = 1, 50 do cc:put("k" .. i, { text = "reply " .. i }) end
    end)
    core.list_dir = list_dir
    assert(ok, err)
    assert.equal(1, scans)   -- (the first write's; 50 before)
    assert.equal("reply 50", cc:get("k50").text)
  end)

  it("bad cache options raise in the one format", function ()
    assert.error_matches(function () aigc.client { cache = { ttl = -1 } } end,
      "bad argument #1 to 'client' %(opts.cache.ttl: a number > 0 expected")
    assert.error_matches(function () aigc.client { cache = "yes" } end, "opts.cache")
  end)

  -- (the key's canonical text followed the cycle until Lua's stack
  -- overflowed: "cassette.lua:96: stack overflow", naming no argument)
  it("a param holding a cycle raises the encoder's error, naming it, as without a cache or a cassette", function ()
    local loop = {}
    loop.self = loop
    local want = "bad argument #1 to 'chat' (params.metadata.self: cannot encode a table that contains itself "
      .. "(a cycle))"
    local tape = { path = dir .. "/tape.jsonl", mode = "record" }
    for _, opts in ipairs { { cache = true }, { cassette = tape } } do
      local c = aigc.client { base_url = srv.base_url, model = "aigc-dev",
                              cache = opts.cache, cassette = opts.cassette }
      local ok, err = pcall(c.chat, c, ask("Hi", { temperature = 0, metadata = loop }))
      c:close()
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find(want, 1, true), tostring(err))
    end
    assert.equal(0, #srv:requests())
  end)
end)

describe("the response cache's keys", function ()
  it("include the defaults an __index table gives (the encoder sends them)", function ()
    local cassette = require "aigc.cassette"
    local msgs = { { role = "user", content = "x" } }
    local a = setmetatable({ messages = msgs }, { __index = { model = "m1", temperature = 0 } })
    local b = setmetatable({ messages = msgs }, { __index = { model = "m2", temperature = 0 } })
    assert.not_equal(cassette.key("chat", a), cassette.key("chat", b))
    assert.equal(cassette.key("chat", a), cassette.key("chat", { messages = msgs, model = "m1", temperature = 0 }))
  end)
end)
