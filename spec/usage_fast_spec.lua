-- The usage hook's straight line (issue 17): a client that keeps totals
-- and nothing else (the default) submits the caller's params as they are
-- when they have no callbacks, and a copy with counting callbacks when
-- they have some; any other hook (a prompt log, a cache, a cassette), a
-- `cache` mark or a metatable on the params takes the general path. Both
-- must give the same totals, the same callbacks in the same order, and
-- send the same body. Each case runs the same calls through a
-- counting-only client and through one made to take the general path (a
-- prompt log that records nothing) and compares.
local aigc = require "aigc"
local devserver = require "devserver"

local HI = { { role = "user", content = "Hi" } }

local fault = devserver.params   -- (fault grammar, extra fields)

local NO_LOG = { record_call = function () end }

-- A client of each kind; `bodies` collects the request bodies they log.
local function clients (srv, extra)
  local made = {}
  for _, general in ipairs { false, true } do
    local bodies = {}
    local opts = { base_url = srv.base_url, model = "aigc-dev", max_retries = 2, log_bodies = true,
                   log = function (_, msg)
                     local body = msg:match("body: (.*)$")
                     if body then bodies[#bodies + 1] = body end
                   end,
                   prompt_log = general and NO_LOG or nil }
    for k, v in pairs(extra or {}) do opts[k] = v end
    local c = aigc.client(opts)
    made[#made + 1] = { client = c, bodies = bodies, general = general }
  end
  return made
end

local function drive (c, reqs, flag)
  local t0 = os.time()
  repeat c:step(0.01) until (flag == nil or flag()) and c:active() == 0 or os.time() - t0 > 20
  for _, req in ipairs(reqs or {}) do assert.is_not.equal("running", req:status()) end
end

describe("usage totals, the counting-only straight line against the general path", function ()
  local srv
  setup(function () srv = devserver.start { pause_ms = 0 } end)
  teardown(function () srv:stop() end)

  it("count the same: blocking, polled, dropped, callbacks of either kind, errors, retries, streams", function ()
    local seen = {}
    for _, k in ipairs(clients(srv, { prices = { ["aigc-dev"] = { input = 1, output = 2 } } })) do
      local c, events = k.client, {}
      assert(c:chat "blocking")
      assert.is_nil(c:chat(fault("status=400")))
      assert(c:chat(fault("status=503,times=1,key=fast-" .. tostring(k.general))))
      assert(c:chat { messages = HI, stream = function () end, stream_options = { include_usage = true } })
      local polled = c:chat_async "polled"
      local function drop () c:chat_async "dropped" end
      drop()
      c:chat_async(fault("status=401", { on_done = function () events[#events + 1] = "not this" end }))
      c:chat_async { messages = HI, on_error = function () events[#events + 1] = "not this" end }
      collectgarbage()
      drive(c, { polled })
      -- (the totals hear the end before the caller's callback, on both paths;
      -- each of these two alone in flight, so the count it sees is fixed)
      c:chat_async { messages = HI, on_done = function (res)
        events[#events + 1] = "done " .. c:usage().requests .. " " .. type(res)
      end }
      drive(c)
      c:chat_async(fault("status=400", { on_error = function (err)
        events[#events + 1] = "error " .. c:usage().errors .. " " .. err.kind
      end }))
      drive(c)
      local u = c:usage()
      assert.same({ "done 8 table", "error 3 http" }, events)
      seen[#seen + 1] = { usage = u, events = events }
      -- (10 calls; the dropped one is collected, canceled and never counted:
      -- nothing holds it, and the caller never heard of its end -- hooks.lua's sweep)
      assert.equal(9, u.requests)
      assert.equal(3, u.errors)   -- (two 400s, a 401)
      assert.is_true(u.retries >= 1)
      assert.is_number(u.cost)
      c:close()
    end
    assert.same(seen[1], seen[2])
  end)

  it("send the same body: no `cache` mark, a metatable's defaults, callbacks never sent", function ()
    local sent = {}
    for _, k in ipairs(clients(srv)) do
      local c = k.client
      assert(c:chat { messages = HI, cache = true, temperature = 0.5 })
      assert(c:chat(setmetatable({ messages = HI }, { __index = { temperature = 0.25 } })))
      local done = false
      c:chat_async { messages = HI, max_tokens = 7, on_done = function () done = true end }
      drive(c, nil, function () return done end)
      assert.equal(3, #k.bodies)
      for i, body in ipairs(k.bodies) do
        assert.is_nil(body:find('"cache"', 1, true), body)
        assert.is_nil(body:find("on_done", 1, true), body)
        k.bodies[i] = aigc.json.decode(body)   -- (the same keys and values; their order is the table's)
      end
      assert.equal(0.25, k.bodies[2].temperature)
      sent[#sent + 1] = k.bodies
      assert.equal(3, c:usage().requests)
      c:close()
    end
    assert.same(sent[1], sent[2])
  end)

  it("each request calls its own callbacks, when calls share some and not others, across collections", function ()
    local heard = {}
    for _, k in ipairs(clients(srv)) do
      local c, got = k.client, {}
      local shared_error = function (err) got[#got + 1] = "error " .. err.kind end
      local dones = {}
      for i = 1, 3 do dones[i] = function (res) got[#got + 1] = "done " .. i .. " " .. type(res) end end
      local order = { 1, 2, 1, 3, 3, 2, 1 }
      for n, i in ipairs(order) do
        c:chat_async { messages = HI, on_done = dones[i], on_error = shared_error }
        if n % 3 == 0 then collectgarbage() end
      end
      c:chat_async(fault("status=400", { on_error = shared_error }))
      c:chat_async(fault("status=400", { on_done = dones[1] }))   -- (its failure: counted, no callback)
      c:chat_async { messages = HI, on_done = dones[2] }
      drive(c)
      table.sort(got)
      assert.same({ "done 1 table", "done 1 table", "done 1 table", "done 2 table", "done 2 table", "done 2 table",
                    "done 3 table", "done 3 table", "error http" }, got)
      local u = c:usage()
      assert.equal(10, u.requests)
      assert.equal(2, u.errors)
      heard[#heard + 1] = got
      c:close()
    end
    assert.same(heard[1], heard[2])
  end)

  it("an error in the caller's callback is reported as before, and the request still counted", function ()
    local reported = {}
    for _, k in ipairs(clients(srv)) do
      local c = k.client
      local mine = {}
      c:chat_async { messages = HI, on_done = function () error("boom in on_done") end }
      local t0 = os.time()
      repeat
        local _, errs = c:step(0.01)
        for _, e in ipairs(errs or {}) do mine[#mine + 1] = tostring(e):match("boom in [%w_]+") end
      until c:active() == 0 or os.time() - t0 > 20
      assert.equal(1, c:usage().requests)
      reported[#reported + 1] = mine
      c:close()
    end
    assert.same({ "boom in on_done" }, reported[1])
    assert.same(reported[1], reported[2])
  end)
end)

describe("usage totals: record, read once per field (issue 17)", function ()
  local usage = require "aigc.usage"

  -- The rules of record before issue 17 (each field read through
  -- add_tokens, once per sum), kept as the oracle.
  local function oracle_record (self, res, err, how)
    self.requests = self.requests + 1
    if how == "cache" then self.cache_hits = self.cache_hits + 1
    elseif how == "replay" then self.replayed = self.replayed + 1 end
    local ended = res or err
    if type(ended) == "table" and tonumber(ended.retries) then self.retries = self.retries + ended.retries end
    if not res then
      self.errors = self.errors + 1
      local kind = type(err) == "table" and type(err.kind) == "string" and err.kind or "error"
      self.errors_by_kind[kind] = (self.errors_by_kind[kind] or 0) + 1
      return
    end
    if type(res) ~= "table" or type(res.usage) ~= "table" then return end
    -- (the cap on names, since: over 200 bytes, or past 256 of them, "?")
    local model = type(res.model) == "string" and #res.model <= 200 and res.model or "?"
    local m = self.models[model]
    if not m and self.model_count >= 256 then
      model = "?"
      m = self.models[model]
    end
    if not m then
      m = { requests = 0, prompt_tokens = 0, completion_tokens = 0, total_tokens = 0 }
      self.models[model] = m
      self.model_count = self.model_count + 1
    end
    m.requests = m.requests + 1
    usage.add_tokens(m, res.usage)
    usage.add_tokens(self, res.usage)
    if how == "cache" then   -- (a hit's tokens are also kept apart: they cost nothing)
      m.cache_hit_tokens = m.cache_hit_tokens or {}
      usage.add_tokens(m.cache_hit_tokens, res.usage)
    end
    local named = type(res.model) == "string" and res.model or model   -- (priced by its name)
    local cost = how ~= "cache" and usage.cost(res.usage, usage.price(self.prices, named)) or nil
    if cost then
      m.cost = (m.cost or 0) + cost
      self.cost = (self.cost or 0) + cost
    end
  end

  -- (negative, NaN, past 2^53: what `count` refuses, which record checks
  -- inline; strings tonumber converts, to an integer or a float; on 5.3+
  -- integers past 2^53 and floats that equal integers)
  local TOKENS = { 3, 0, 12.5, "7", "12", "12.0", " 5 ", "x", true, false, {}, -4, -0.0, 0 / 0, 1 / 0, -1 / 0,
                   1e308, 2 ^ 53, 2 ^ 60, "-2", 7.0 }
  if math.type then
    for _, v in ipairs { load("return math.maxinteger, 1 << 53, (1 << 53) + 1, -1")() } do
      TOKENS[#TOKENS + 1] = v
    end
  end
  local function pick (list) return list[math.random(#list + 1)] end   -- (one past the end: nil)
  local LONG = ("n"):rep(201)

  local function random_end ()
    local r = math.random(6)
    if r == 1 then return nil, { kind = pick { "http", "timeout", 3 }, retries = pick { 0, 2, "1", "z" } } end
    if r == 2 then return nil, "a string error" end
    if r == 3 then return "not a table" end
    local u = r == 4 and "no usage" or {
      prompt_tokens = pick(TOKENS), input_tokens = pick(TOKENS), completion_tokens = pick(TOKENS),
      output_tokens = pick(TOKENS), total_tokens = pick(TOKENS),
      prompt_tokens_details = pick { { cached_tokens = 2 }, { cached_tokens = "1" }, "x" },
    }
    -- (one end in 2 names a model of 1000: past 256 of them, "?")
    local model = math.random(2) == 1 and "x-" .. math.random(1000) or pick { "m-1", "m-2-mini", 42, LONG, "?" }
    return { usage = u, model = model, retries = pick { 0, 1, 2.0, "3", "no", {}, -1, 0.5 } }
  end

  -- The totals with each number's kind and value spelled out: `assert.same`
  -- holds 14 and 14.0 equal, and NaN unequal to itself.
  local function typed (v)
    if type(v) == "number" then
      return (math.type and math.type(v) or "number") .. " " .. (v ~= v and "nan" or string.format("%.17g", v))
    end
    if type(v) ~= "table" then return v end
    local t = {}
    for k, x in pairs(v) do t[k] = typed(x) end
    return t
  end

  it("gives the totals the old rules give, over random ends, prices or none", function ()
    math.randomseed(1717)
    for _, prices in ipairs { false, { ["m-1"] = { input = 1, output = 2, cached_input = 0.5 }, m = { input = 3 } } } do
      local new, old = usage.new(prices or nil), usage.new(prices or nil)
      for _ = 1, 2000 do
        local res, err = random_end()
        local how = pick { "cache", "replay" }
        new:record(res, err, how)
        oracle_record(old, res, err, how)
      end
      assert.same(typed(old:snapshot()), typed(new:snapshot()))
      assert.is_true(new.model_count == 256 and new.models["?"] ~= nil)   -- (the cap reached)
    end
  end)

  -- Each end alone, after a first reply of model "m" (the common end: a
  -- model counted before).
  local function each_alone (ends)
    for i, e in ipairs(ends) do
      local old, new = usage.new(), usage.new()
      for _, t in ipairs { old, new } do t:record { model = "m", usage = { prompt_tokens = 1 } } end
      oracle_record(old, e.res, nil)
      new:record(e.res, nil)
      if e.float_zero then   -- (see below)
        assert.equal(0, new.retries)
        assert.equal(math.type(0), math.type(new.retries))
        old.retries = 0
      end
      assert.same(typed(old:snapshot()), typed(new:snapshot()), "end " .. i)
    end
    return ends
  end

  it("counts each kind of number as the old rules do, integers as integers and floats as floats", function ()
    local ends = {}
    for _, v in ipairs(TOKENS) do
      ends[#ends + 1] = { res = { model = "m", usage = { prompt_tokens = v } } }
      ends[#ends + 1] = { res = { model = "m", usage = { input_tokens = v, output_tokens = v } } }
      ends[#ends + 1] = { res = { model = "m", usage = { prompt_tokens = false, input_tokens = v } } }
      ends[#ends + 1] = { res = { model = "m",
                                  usage = { prompt_tokens = 2, completion_tokens = 3, total_tokens = v } } }
      -- (a float zero: record adds no retries since issue 17's shortcut
      -- `retries ~= 0`, where the old rules made the integer total the
      -- float 0.0: the one difference, held here as it is)
      ends[#ends + 1] = { res = { model = "m", usage = {}, retries = v },
                          float_zero = v == 0 and math.type ~= nil and math.type(v) == "float" }
    end
    ends[#ends + 1] = { res = { model = "m", usage = { prompt_tokens = 2 }, retries = 0 / 0 } }
    ends[#ends + 1] = { res = { model = "new", usage = { prompt_tokens = 2 } } }   -- (a first reply)
    ends[#ends + 1] = { res = { usage = { prompt_tokens = 2 } } }                  -- (no model: "?")
    ends[#ends + 1] = { res = { model = LONG, usage = { prompt_tokens = 2 } } }
    ends[#ends + 1] = { res = { model = "m", usage = "none" } }
    each_alone(ends)
  end)

  it("reads a user's table through its __index", function ()
    local function watched (t, fields)
      return setmetatable(t, { __index = function (_, k) return fields[k] end })
    end
    local ends = each_alone {
      { res = watched({ model = "m" }, { usage = { prompt_tokens = 4 }, retries = 2 }) },
      { res = { model = "m", usage = watched({}, { prompt_tokens = 5, total_tokens = 9 }) } },
      { res = setmetatable({ model = "m", usage = { prompt_tokens = 6 } }, { __index = { retries = 1 } }) },
    }
    -- (what only the __index gave was counted: after the first reply's 1 token)
    local got = {}
    for _, e in ipairs(ends) do
      local t = usage.new()
      t:record { model = "m", usage = { prompt_tokens = 1 } }
      t:record(e.res)
      got[#got + 1] = { t.prompt_tokens, t.total_tokens, t.retries }
    end
    assert.same({ { 5, 5, 2 }, { 6, 10, 0 }, { 7, 7, 1 } }, got)
  end)

  it("counts a result from a server as the old rules do, and leaves its headers unmade", function ()
    local srv = devserver.start { pause_ms = 0 }
    local c = aigc.client { base_url = srv.base_url, model = "aigc-dev" }
    local ok, first, res = pcall(function () return assert(c:chat "hi"), assert(c:chat "hi") end)
    srv:stop()
    assert(ok, first)
    assert.is_not_nil(getmetatable(res))   -- (the lazy headers': headers.c)
    local t, old = usage.new(), usage.new()
    t:record(first)
    oracle_record(old, first)
    t:record(res)
    oracle_record(old, res)
    assert.is_nil(rawget(res, "headers"))
    assert.same(typed(old:snapshot()), typed(t:snapshot()))
    assert.same(typed(old:snapshot()), typed(c:usage()))
    c:close()
  end)
end)

