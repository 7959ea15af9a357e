-- The client's own fields that every call reads (lua/aigc/client.lua's
-- `M.new`): each is set on the client, `false` when its option is off, so
-- that a call finds it in the client itself. A field left absent is looked
-- up in the Client class through `__index` at every call (~0.2k
-- instructions a read on Lua 5.4, six of them a call: bench/README.md,
-- stop 45). What a call reads through the class is recorded here by
-- wrapping the class's `__index`; methods are the class's to give. Real
-- HTTP to the bundled server.
local devserver = require "devserver"

local KEY = "sk-test-clientfields-5c1d"

local function msgs ()
  return { { role = "user", content = "Hi" } }
end

-- Runs `f`, recording each field (not a method) a client reads through
-- the class; the class's `__index` is put back however `f` ends.
local function class_reads (client, f)
  local mt = getmetatable(client)
  local class = mt.__index
  local seen = {}
  mt.__index = function (_, k)
    local v = class[k]
    if type(v) ~= "function" then seen[#seen + 1] = tostring(k) end
    return v
  end
  local ok, err = pcall(f)
  mt.__index = class
  assert(ok, err)
  table.sort(seen)
  return seen
end

describe("the client's per-call fields", function ()
  local srv, client

  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { api_key = KEY, model = "aigc-dev" })

  it("a blocking chat reads none through the class", function ()
    assert(client:chat { model = "m", messages = msgs() })   -- (the first call's own setup)
    local reads = class_reads(client, function ()
      for _ = 1, 3 do
        local res, err = client:chat { model = "m", messages = msgs(), temperature = 0.5, max_tokens = 5 }
        assert.is_nil(err)
        assert.is_string(res.text)
      end
    end)
    assert.same({}, reads)
  end)

  it("a client without usage totals reads none either", function ()
    local c = require("aigc").client { base_url = srv.base_url, api_key = KEY, max_retries = 0, usage = false }
    local reads = class_reads(c, function ()
      for _ = 1, 2 do
        local res, err = c:chat { model = "m", messages = msgs() }
        assert.is_nil(err)
        assert.is_string(res.text)
      end
    end)
    c:close()
    assert.same({}, reads)
    assert.is_nil(c:usage())
  end)

  it("chat_async, a stream and a string prompt read none either", function ()
    assert(client:chat { model = "m", messages = msgs() })
    local reads = class_reads(client, function ()
      local req = client:chat_async { model = "m", messages = msgs() }
      local res, err = req:wait()
      assert.is_nil(err)
      assert.is_string(res.text)
      local got = {}
      res, err = client:chat { model = "m", messages = msgs(), stream = function (d) got[#got + 1] = d end }
      assert.is_nil(err)
      assert.is_table(res)
      assert.is_true(#got > 0)
      res, err = client:chat "Hi"
      assert.is_nil(err)
      assert.is_string(res.text)
    end)
    assert.same({}, reads)
  end)

  it("options that set those fields still take effect", function ()
    local c = require("aigc").client { base_url = srv.base_url, api_key = KEY, max_retries = 0, idempotency = true }
    local res, err = c:chat { model = "m", messages = msgs() }
    c:close()
    assert.is_nil(err)
    assert.is_table(res)
    assert.is_string(srv:last().headers["idempotency-key"])
    -- and a client without it sends none
    assert(client:chat { model = "m", messages = msgs() })
    assert.is_nil(srv:last().headers["idempotency-key"])
    -- the usage totals count through the hook's fields (`_unheld`, `_watching`)
    local req = client:chat_async { model = "m", messages = msgs() }
    assert(req:wait())
    assert.equal(2, client:usage().requests)
  end)

  -- (CI's lifecycle seed 473735 sequence 88, LuaJIT: `_unheld` false, not
  -- nil, and the dialogue's `heard` took false for a table: "attempt to
  -- index a boolean value (local 't')" when a fresh client's first round
  -- came from the response cache, submitted nowhere, watched by nobody)
  it("a fresh client's dialogue whose first round is a cache hit", function ()
    local aigc = require "aigc"
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p '" .. dir .. "'"))
    finally(function () os.execute("rm -rf '" .. dir .. "'") end)
    local tools = aigc.tools { { name = "poke", parameters = { type = "object", properties = {} },
                                 fn = function () return "poked" end } }
    local texts = {}
    for i = 1, 2 do
      local c = aigc.client { base_url = srv.base_url, api_key = KEY, max_retries = 0, cache = { dir = dir } }
      local f = c:chat_async { model = "m", temperature = 0, tools = tools,
                               messages = { { role = "user", content = "Please poke order A-1042" } } }
      local res, err = f:wait()
      c:close()
      assert.is_nil(err)
      texts[i] = res.text
      if i == 2 then assert.is_true(c:usage().cache_hits > 0) end
    end
    assert.is_string(texts[1])
    assert.equal(texts[1], texts[2])
  end)
end)
