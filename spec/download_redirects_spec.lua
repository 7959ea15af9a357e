-- Redirects: `client:download` follows them (up to 5, http and https
-- only), its credentials going to the client's own origin only at every
-- hop; an API call never follows one, and its error says where it led.
-- The server (spec/support/redirector.lua) listens on two ports of
-- 127.0.0.1, two origins, and records the headers each request carried.
local aigc = require "aigc"
local redirector = require "redirector"

local KEY = "sk-proj-REDIRKEY-0123456789abcdefXYZ"
local enc = redirector.encode

describe("redirects", function ()
  local srv, a, b, dir

  setup(function ()
    srv = redirector.start()
    a, b = srv.origin_a, srv.origin_b
    local p = io.popen("mktemp -d /tmp/aigc-redirects-XXXXXX")
    dir = p:read("*l")
    p:close()
  end)
  teardown(function ()
    srv.stop()
    os.execute("rm -rf '" .. dir .. "'")
  end)
  before_each(function () srv.reset() end)

  local function client (opts)
    opts = opts or {}
    opts.base_url = opts.base_url or "http://127.0.0.1:1/v1"   -- (another origin than a and b)
    opts.max_retries, opts.timeout, opts.model = 0, 20, "m"
    return aigc.client(opts)
  end

  -- A client with every kind of credential, its origin `base`'s.
  local function keyed (base)
    return client { base_url = base .. "/v1", api_key = KEY, organization = "org-REDIRORG12345",
                    headers = { ["x-api-key"] = "XAPIKEY-0123456789abcdef",
                                ["Api-Key"] = "APIKEY-0123456789abcd",
                                ["Proxy-Authorization"] = "Basic UFJPWFktMDEyMzQ1Njc4OQ==",
                                ["X-Mine"] = "token " .. KEY,
                                ["X-Trace"] = "kept-trace-id" } }
  end
  local CREDENTIALS = { "authorization", "x-api-key", "api-key", "proxy-authorization", "openai-organization",
                        "x-mine" }

  describe("a download", function ()
    for _, code in ipairs { 301, 302, 303, 307, 308 } do
      it("follows a " .. code .. " from a foreign origin to another", function ()
        local c = client()
        local res, err = c:download(a .. "/r/" .. code .. "/" .. enc(b .. "/ok/final-" .. code))
        c:close()
        assert.is_nil(err)
        assert.are.equal("final-" .. code, res.body)
        local got = srv.requests()
        assert.are.equal(2, #got)
        assert.are.same({ srv.port_a, "GET" }, { got[1].port, got[1].method })
        assert.are.same({ srv.port_b, "GET", "/ok/final-" .. code }, { got[2].port, got[2].method, got[2].path })
      end)
    end

    it("from the client's origin to another carries none of its credentials there", function ()
      local c = keyed(a)
      local res, err = c:download(a .. "/r/302/" .. enc(b .. "/ok/cdn"))
      c:close()
      assert.is_nil(err)
      assert.are.equal("cdn", res.body)
      local got = srv.requests()
      assert.are.equal(2, #got)
      -- (the client's own origin got them: the check below can fail)
      assert.are.equal("Bearer " .. KEY, got[1].headers.authorization)
      assert.are.equal("XAPIKEY-0123456789abcdef", got[1].headers["x-api-key"])
      assert.are.equal(srv.port_b, got[2].port)
      for _, name in ipairs(CREDENTIALS) do assert.is_nil(got[2].headers[name], name) end
      assert.are.equal("kept-trace-id", got[2].headers["x-trace"])
    end)

    it("back to the client's origin after another one carries none either", function ()
      local c = keyed(b)
      local res = assert(c:download(a .. "/r/307/" .. enc(b .. "/ok/back")))
      c:close()
      assert.are.equal("back", res.body)
      local got = srv.requests()
      assert.are.equal(2, #got)
      assert.are.equal(srv.port_b, got[2].port)
      for _, name in ipairs(CREDENTIALS) do assert.is_nil(got[2].headers[name], name) end
    end)

    it("follows 5 redirects (relative Locations), not 6", function ()
      local c = client()
      local res = assert(c:download(a .. "/hops/5"))
      assert.are.equal("hops-done", res.body)
      assert.are.equal(6, #srv.requests())
      local none, err = c:download(a .. "/hops/6")
      c:close()
      assert.is_nil(none)
      assert.are.equal("http", err.kind)
      assert.are.equal(302, err.status)
      assert.matches("more than 5 redirects", err.message, 1, true)
    end)

    it("fails on a redirect loop, saying so", function ()
      local c = client()
      local none, err = c:download(a .. "/loop")
      c:close()
      assert.is_nil(none)
      assert.are.equal(302, err.status)
      assert.matches("a redirect loop", err.message, 1, true)
      assert.are.equal(1, #srv.requests())   -- (it redirects to itself)
    end)

    for _, target in ipairs { "file:///etc/passwd", "ftp://127.0.0.1/x" } do
      it("does not follow a redirect to " .. target:match("^%a+"), function ()
        local c = client()
        local none, err = c:download(a .. "/r/302/" .. enc(target))
        c:close()
        assert.is_nil(none)
        assert.are.equal(302, err.status)
        assert.matches("which a download does not follow (http and https only)", err.message, 1, true)
        assert.matches("a " .. target:match("^%a+") .. ": URL", err.message, 1, true)
        assert.are.equal(1, #srv.requests())
      end)
    end

    -- (an http(s) URL but not a valid one: the message said "a redirect to a http: URL, which a
    -- download does not follow (http and https only)", contradicting itself)
    for _, target in ipairs { "http:evil.example/x", "HTTP://127.0.0.1/a b" } do
      it("calls a redirect to " .. target .. " one to an invalid URL", function ()
        local c = client()
        local none, err = c:download(a .. "/r/302/" .. enc(target))
        c:close()
        assert.is_nil(none)
        assert.are.equal(302, err.status)
        assert.matches("a redirect to an invalid URL, which a download does not follow", err.message, 1, true)
        assert.are.equal(1, #srv.requests())
      end)
    end

    it("writes only the last answer's body to a file or a function; its headers are the last's", function ()
      local c = client()
      local path = dir .. "/img.png"
      local res = assert(c:download(a .. "/r/302/" .. enc(a .. "/r/308/" .. enc(b .. "/ok/the-image")), { to = path }))
      assert.are.equal("final", res.headers["x-hop"])
      local f = assert(io.open(path, "rb"))
      assert.are.equal("the-image", f:read("*a"))
      f:close()
      assert.is_nil(io.open(path .. ".part", "rb"))
      local chunks = {}
      res = assert(c:download(a .. "/r/301/" .. enc(b .. "/ok/chunked"),
                              { to = function (chunk) chunks[#chunks + 1] = chunk end }))
      c:close()
      assert.are.equal("final", res.headers["x-hop"])
      assert.are.equal("chunked", table.concat(chunks))
    end)

    it("of an image result's url (res:save) follows, to the final body", function ()
      local url = a .. "/r/302/" .. enc(b .. "/png/png-bytes")
      local c = client { base_url = a .. "/json/" .. enc('{"created":1,"data":[{"url":"' .. url .. '"}]}') }
      local res = assert(c:images_generate { prompt = "a knight" })
      local paths = assert(res:save(dir .. "/knight-%d.png"))
      c:close()
      local f = assert(io.open(paths[1], "rb"))
      assert.are.equal("png-bytes", f:read("*a"))
      f:close()
    end)

    it("download_async follows too, and its callbacks run once", function ()
      local c = client()
      local done = 0
      local f = c:download_async(a .. "/r/303/" .. enc(b .. "/ok/later"), { on_done = function () done = done + 1 end })
      local res = assert(f:wait())
      c:close()
      assert.are.equal("later", res.body)
      assert.are.equal(1, done)
    end)
  end)

  describe("an API call", function ()
    it("that gets a 307 to its POST does not send it again, there or anywhere", function ()
      local c = client { base_url = a .. "/r/307/" .. enc(b .. "/ok/elsewhere") .. "/v1", api_key = KEY }
      local res, err = c:chat { messages = { { role = "user", content = "hi" } } }
      c:close()
      assert.is_nil(res)
      assert.are.equal("http", err.kind)
      assert.are.equal(307, err.status)
      local got = srv.requests()
      assert.are.equal(1, #got)
      assert.are.same({ srv.port_a, "POST" }, { got[1].port, got[1].method })
      assert.are.equal("HTTP status 307: a redirect to " .. b .. "/ok/elsewhere, which API calls never follow",
                       err.message)
    end)

    it("that gets a 302 says where to, the client's key scrubbed from the Location", function ()
      local c = client { base_url = a .. "/r/302/" .. enc(b .. "/ok/x?key=" .. KEY) .. "/v1", api_key = KEY }
      local res, err = c:embeddings { input = "hi" }
      c:close()
      assert.is_nil(res)
      assert.are.equal(302, err.status)
      assert.matches("HTTP status 302: a redirect to " .. b .. "/ok/x?...,", err.message, 1, true)
      assert.matches("which API calls never follow", err.message, 1, true)
      assert.is_nil(tostring(err):find("REDIRKEY", 1, true))
      assert.are.equal(1, #srv.requests())
    end)
  end)
end)
