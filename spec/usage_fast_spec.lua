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

local function fault (spec, extra)
  local p = { messages = HI, headers = { ["x-aigc-fault"] = spec } }
  for k, v in pairs(extra or {}) do p[k] = v end
  return p
end

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
      c:chat_async { messages = HI, on_done = function (res)
        -- (the totals hear the end before the caller's callback, on both paths)
        events[#events + 1] = "done " .. c:usage().requests .. " " .. type(res)
      end }
      c:chat_async(fault("status=400", { on_error = function (err)
        events[#events + 1] = "error " .. c:usage().errors .. " " .. err.kind
      end }))
      c:chat_async(fault("status=401", { on_done = function () events[#events + 1] = "not this" end }))
      c:chat_async { messages = HI, on_error = function () events[#events + 1] = "not this" end }
      collectgarbage()
      drive(c, { polled })
      local u = c:usage()
      table.sort(events)
      seen[#seen + 1] = { usage = u, events = events }
      assert.equal(10, u.requests)
            assert.equal(4, u.errors)   -- (two 400s, a 401, the dropped request canceled when collected)
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
