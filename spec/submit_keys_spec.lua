-- engine:submit reads a call's options (params) and the Lua layer's opts
-- with one walk over each table, then only the keys it found (issue 17:
-- ~25 lua_getfield calls per request cost ~6k instructions). A table
-- with a metatable is read key by key as before: an option that comes
-- through __index must count exactly as a raw one. These cases compare
-- the two ways for every kind of option the core reads.
local devserver = require "devserver"

local HERE = "spec/submit_keys_spec%.lua:%d+: "

-- The same fields, raw or behind __index (no raw field at all).
local function raw (t) return t end
local function inherited (t) return setmetatable({}, { __index = t }) end

describe("engine:submit's per-call options, raw or through a metatable", function ()
  local srv, engine
  devserver.engine_fixture(_ENV, function (s, e) srv, engine = s, e end)

  local function ask (extra) return devserver.params(nil, extra, "m") end

  for _, way in ipairs { { "raw", raw }, { "through __index", inherited } } do
    local name, wrap = way[1], way[2]
    describe(name, function ()
      it("on_done and on_error are called", function ()
        local done, failed, kinds = 0, 0, {}
        engine:submit("chat", wrap(ask { on_done = function () done = done + 1 end }))
        local function on_error (e)   -- (an assertion failing here is only kept for step(): checked after)
          failed = failed + 1
          kinds[#kinds + 1] = e.kind
        end
        engine:submit("chat", wrap(ask { max_response_bytes = 10, on_error = on_error }))
        local n = 0
        while engine:step(0.05) > 0 do n = n + 1; assert(n < 400) end
        assert.equal(1, done)
        assert.equal(1, failed)
        assert.same({ "limit" }, kinds)
      end)

      it("the limits and the retries count", function ()
        local res, err = engine:submit("chat", wrap(ask { max_response_bytes = 10 })):wait()
        assert.is_nil(res)
        assert.equal("limit", err.kind)
        res, err = engine:submit("chat", wrap(ask { max_json_values = 2 })):wait()
        assert.is_nil(res)
        assert.equal("limit", err.kind)
        srv:reset()
        local opts = { headers = { "x-aigc-fault: status=503,retry-after-ms=5" } }
        res, err = engine:submit("chat", wrap(ask { max_retries = 2 }), opts):wait()
        assert.is_nil(res)
        assert.equal(503, err.status)
        assert.equal(3, #srv:requests())
      end)

      it("a stream callback streams", function ()
        local deltas = 0
        local res = assert(engine:submit("chat", wrap(ask { stream = function () deltas = deltas + 1 end })):wait())
        assert.is_true(deltas > 0)
        assert.is_string(res.choices[1].message.content)
      end)

      it("a wrong option raises, at the caller's line", function ()
        for field, value in pairs { timeout = -1, connect_timeout = "5", deadline = "soon", max_retries = 1.5,
                                    priority = "urgent", on_done = 5, stream = 5 } do
          local ok, e = pcall(function () return engine:submit("chat", wrap(ask { [field] = value })) end)
          assert.is_false(ok, field)
          assert.matches("params%." .. field, e)
        end
      end)

      it("opts: the caller's name and the path", function ()
        local ok, e = pcall(function ()
          return engine:submit("chat", ask { timeout = -1 }, wrap { fname = "mine", arg = 3 })
        end)
        assert.is_false(ok)
        assert.matches("^" .. HERE .. "bad argument #3 to 'mine' %(params%.timeout", e)
        assert(engine:submit("chat", ask(), wrap { path = "/chat/completions" }):wait())
        assert.equal("/v1/chat/completions", srv:last().path)
      end)
    end)
  end
end)
