-- res.headers: every response header, names lower-cased, a repeated
-- header's values joined by ", " in the order they came (the table is
-- built in C, repeats found before any lookup: this pins that down).
-- A result's headers are made when first read (issue 17): the result holds
-- a copy of the raw header store in its metatable until then.
local aigc = require "aigc"
local devserver = require "devserver"
local oneshot = require "oneshot"

local CHAT_BODY = '{"id":"x","object":"chat.completion","created":1,"model":"m",'
  .. '"choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}'

-- A one-shot HTTP server in a child process, answering its first request
-- with the given header lines; its base URL. (The child binds a port of its
-- own, port 0: a port found free here and bound by the child later could be
-- taken meanwhile by a server of another suite running beside.)
local function one_shot (header_lines)
  return oneshot.serve_raw({ oneshot.http_reply("200 OK", CHAT_BODY, table.concat(header_lines, "\r\n") .. "\r\n") },
                           finally)
end

describe("response headers", function ()
  it("keeps every header, lower-cases names, joins repeats in order", function ()
    local url = one_shot {
      "Set-Cookie: a=1", "X-Request-Id: req_1", "set-cookie: b=2", "X-Empty:",
      "Vary: Accept", "SET-COOKIE: c=3", "x-ratelimit-remaining-requests: 9",
    }
    local client = aigc.client { base_url = url, max_retries = 0 }
    local res = assert(client:chat "hello")
    client:close()
    assert.equal("hi", res.text)
    assert.equal("req_1", res.request_id)
    assert.equal("a=1, b=2, c=3", res.headers["set-cookie"])
    assert.equal("", res.headers["x-empty"])
    assert.equal("Accept", res.headers.vary)
    assert.equal("9", res.headers["x-ratelimit-remaining-requests"])
    assert.equal("application/json", res.headers["content-type"])
    assert.is_nil(res.headers["Set-Cookie"])
  end)

  -- The names are lower-cased 8 bytes at a time (issue 17): names of
  -- every length from 1 to 40 (whole words, a tail, both), made of the
  -- bytes around 'A'..'Z' ('@', '[', '`', '{'), digits, a UTF-8 letter and
  -- bytes >= 0x80 before upper case and the bounds; each must come out as Lua's own
  -- lower() (the C locale: A-Z only) makes it. (A NUL, which the store
  -- makes a space, never comes: libcurl refuses the line, "Nul byte in
  -- header".)
  it("lower-cases names of every length as string.lower does", function ()
    local ALPHABET = { "A", "z", "@", "[", "Z", "`", "a", "{", "M", "\195\137", "0", "-", "\200", "Q", "_",
                       "\200@", "\233Z", "\255[" }   -- (a high byte before a bound: no carry over)
    local lines, want, k = {}, {}, 0
    for len = 1, 40 do
      local name = ("%02d"):format(len):sub(1, len)
      while #name < len do
        k = k + 1
        name = (name .. ALPHABET[k % #ALPHABET + 1]):sub(1, len)
      end
      lines[#lines + 1] = name .. ": v" .. len
      want[name:lower()] = "v" .. len
    end
    local url = oneshot.serve_raw({ oneshot.http_reply("200 OK", CHAT_BODY, table.concat(lines, "\r\n") .. "\r\n") },
                                  finally)
    local client = aigc.client { base_url = url, max_retries = 0 }
    local res, err = client:chat "hello"
    client:close()
    assert(res, tostring(err))
    local got = {}
    for name, v in pairs(res.headers) do got[name] = v end
    for name, v in pairs(want) do assert.equal(v, got[name], name) end
  end)

  describe("made on first read", function ()
    local srv, client
    setup(function ()
      srv = devserver.start { pause_ms = 0 }
      client = aigc.client { base_url = srv.base_url, api_key = "sk-test", max_retries = 0 }
    end)
    teardown(function ()
      client:close()
      srv:stop()
    end)
    -- 40 extra headers: more than the 32 the repeat scan handles, so the
    -- table-lookup path is taken as well.
    local MANY = { ["x-aigc-fault"] = "headers=40" }
    local HI = { { role = "user", content = "hello" } }

    it("is absent from the result until read, then a plain field", function ()
      local res = assert(client:chat { messages = HI, headers = MANY })
      assert.is_nil(rawget(res, "headers"))
      local h = res.headers
      assert.is_table(h)
      assert.equal("a", h["x-f-1"])
      assert.equal("a", h["x-f-40"])
      assert.equal(res.request_id, h["x-request-id"])
      assert.equal(h, rawget(res, "headers"))
      assert.equal(h, res.headers)
      assert.is_nil(res.no_such_field)
      assert.is_nil(res[1])
    end)

    it("is listed by the JSON encoder and by pairs (5.2+), and can be replaced", function ()
      local res = assert(client:chat { messages = HI, headers = MANY })
      local back = aigc.json.decode(aigc.json.encode(res))
      assert.equal("a", back.headers["x-f-7"])
      assert.equal(res.text, back.text)
      local res2 = assert(client:chat "hello")
      if _VERSION ~= "Lua 5.1" then
        local listed = {}
        for k, v in pairs(res2) do listed[k] = v end
        assert.is_table(listed.headers)
        assert.equal(res2.request_id, listed.headers["x-request-id"])
      end
      res2.headers = "mine"
      assert.equal("mine", res2.headers)
    end)

    it("stays right when finalizers read it while it is being made", function ()
      local res = assert(client:chat { messages = HI, headers = MANY })
      local fired, wrong = 0, 0
      local mt = { __gc = function ()
        fired = fired + 1
        local h = res.headers
        if type(h) ~= "table" or h["x-f-40"] ~= "a" then wrong = wrong + 1 end
      end }
      local newproxy = rawget(_G, "newproxy")   -- 5.1: no __gc on tables
      local make = newproxy and _VERSION == "Lua 5.1" and function ()
        local u = newproxy(true)
        getmetatable(u).__gc = mt.__gc
      end or function () setmetatable({}, mt) end
      -- Finalizers pending, and a collector that runs at every allocation.
      local pause = collectgarbage("setpause", 0)
      for _ = 1, 200 do make() end
      local h = res.headers
      for _ = 1, 10 do collectgarbage() end
      collectgarbage("setpause", pause)
      assert.is_true(fired > 0)
      assert.equal(0, wrong)
      assert.equal(h, res.headers)
      assert.equal("a", h["x-f-1"])
    end)

    it("is made for a streamed result too", function ()
      local res = assert(client:chat { messages = HI, stream = function () end })
      assert.is_nil(rawget(res, "headers"))
      assert.equal("text/event-stream", (res.headers["content-type"] or ""):match("^[^;]+"))
    end)
  end)

  -- Header sections too large, where aigc's own 200 KiB count must see them
  -- (libcurl's errors for them look like a broken connection, retried, or
  -- like running out of memory).
  describe("too large", function ()
    local srv
    setup(function () srv = devserver.start { pause_ms = 0 } end)
    teardown(function () srv:stop() end)
    before_each(function () srv:reset() end)

    local function chat (client, fault)
      return client:chat { messages = { { role = "user", content = "hello" } },
                           headers = { ["x-aigc-fault"] = fault } }
    end

    it("count every 1xx response: 20,000 `100 Continue` are a limit error, sent once", function ()
      local client = aigc.client { base_url = srv.base_url, max_retries = 2 }
      local res, err = chat(client, "informational=20000")
      client:close()
      assert.is_nil(res)
      assert.equal("limit", err.kind)
      assert.equal("the response headers are larger than 200 KiB", err.message)
      assert.equal(0, err.retries)
      assert.equal(1, srv:stats().requests_total)
    end)

    it("do not count a few 1xx responses against the answer's own headers", function ()
      local client = aigc.client { base_url = srv.base_url, max_retries = 0 }
      local res = assert(chat(client, "informational=3,headers=5"))
      client:close()
      assert.equal("a", res.headers["x-f-5"])
      assert.equal("application/json", res.headers["content-type"])
    end)

    it("one header line over libcurl's 100 KB is a limit error about the headers, not out of memory", function ()
      local url = one_shot { "X-Long: " .. ("a"):rep(1048576) }
      local client = aigc.client { base_url = url, max_retries = 2 }
      local res, err = client:chat "hello"
      client:close()
      assert.is_nil(res)
      assert.equal("limit", err.kind)
      assert.matches("^the response headers are too large", err.message)
      assert.is_nil(err.message:find("out of memory while", 1, true))
      -- (libcurl 7.x's code for it is CURLE_OUT_OF_MEMORY: its text, "Out of memory", ended the message)
      assert.is_nil(err.message:lower():find("out of memory", 1, true), err.message)
      assert.equal(0, err.retries)
    end)
  end)
end)
