-- engine:submit reads a call's options (params) and the Lua layer's opts
-- with one walk over each table, then only the keys it found (issue 17:
-- ~25 lua_getfield calls per request cost ~6k instructions). A table
-- with a metatable is read key by key as before: an option that comes
-- through __index must count exactly as a raw one. These cases compare
-- the two ways for every kind of option the core reads.
--
-- The client's calls hand engine:submit what their checks found instead
-- (its 5th and 6th arguments: the option keys params holds, from
-- core.fields_fit, and opts', from core.opts_keys), and it does not walk
-- the tables again; a hint for a table with a metatable is not taken.
local devserver = require "devserver"
local core = require "aigc.core"
local check = require "aigc.check"

local HERE = "spec/submit_keys_spec%.lua:%d+: "

-- The same fields, raw or behind __index (no raw field at all).
local function raw (t) return t end
local function inherited (t) return setmetatable({}, { __index = t }) end

describe("engine:submit's per-call options, raw or through a metatable", function ()
  local srv, engine
  devserver.engine_fixture(_ENV, function (s, e) srv, engine = s, e end)

  local function ask (extra) return devserver.params(nil, extra, "m") end

  -- engine:submit as the client calls it: with the checks' hints (params'
  -- when they fit the fast check, as the client's), or with hints that
  -- name no key at all (for tables with a metatable: not taken).
  local hinted = 0
  local function plain (kind, params, opts) return engine:submit(kind, params, opts) end
  local function with_hints (kind, params, opts)
    local fits, keys = core.fields_fit(params, check.FAST[kind])
    if fits then hinted = hinted + 1 end
    return engine:submit(kind, params, opts, keys, opts and core.opts_keys(opts))
  end
  local function with_empty_hints (kind, params, opts)
    local opts_hint = opts and getmetatable(opts) and 0 or nil
    return engine:submit(kind, params, opts, getmetatable(params) and 0 or nil, opts_hint)
  end

  for _, way in ipairs { { "raw", raw, plain }, { "through __index", inherited, plain },
                         { "raw, with the checks' hints", raw, with_hints },
                         { "through __index, with hints of no key", inherited, with_empty_hints } } do
    local name, wrap, submit = way[1], way[2], way[3]
    describe(name, function ()
      it("on_done and on_error are called", function ()
        local done, failed, kinds = 0, 0, {}
        submit("chat", wrap(ask { on_done = function () done = done + 1 end }))
        local function on_error (e)   -- (an assertion failing here is only kept for step(): checked after)
          failed = failed + 1
          kinds[#kinds + 1] = e.kind
        end
        submit("chat", wrap(ask { max_response_bytes = 10, on_error = on_error }))
        local n = 0
        while engine:step(0.05) > 0 do n = n + 1; assert(n < 400) end
        assert.equal(1, done)
        assert.equal(1, failed)
        assert.same({ "limit" }, kinds)
      end)

      it("the limits and the retries count", function ()
        local res, err = submit("chat", wrap(ask { max_response_bytes = 10 })):wait()
        assert.is_nil(res)
        assert.equal("limit", err.kind)
        res, err = submit("chat", wrap(ask { max_json_values = 2 })):wait()
        assert.is_nil(res)
        assert.equal("limit", err.kind)
        srv:reset()
        local opts = { headers = { "x-aigc-fault: status=503,retry-after-ms=5" } }
        res, err = submit("chat", wrap(ask { max_retries = 2 }), opts):wait()
        assert.is_nil(res)
        assert.equal(503, err.status)
        assert.equal(3, #srv:requests())
      end)

      it("a stream callback streams", function ()
        local deltas = 0
        local res = assert(submit("chat", wrap(ask { stream = function () deltas = deltas + 1 end })):wait())
        assert.is_true(deltas > 0)
        assert.is_string(res.choices[1].message.content)
      end)

      it("a wrong option raises, at the caller's line", function ()
        for field, value in pairs { timeout = -1, connect_timeout = "5", deadline = "soon", max_retries = 1.5,
                                    priority = "urgent", on_done = 5, stream = 5 } do
          local ok, e = pcall(function () return submit("chat", wrap(ask { [field] = value })) end)
          assert.is_false(ok, field)
          assert.matches("params%." .. field, e)
        end
      end)

      it("opts: the caller's name and the path", function ()
        local ok, e = pcall(function ()
          return submit("chat", ask { timeout = -1 }, wrap { fname = "mine", arg = 3 })
        end)
        assert.is_false(ok)
        assert.matches("^" .. HERE .. "bad argument #3 to 'mine' %(params%.timeout", e)
        assert(submit("chat", ask(), wrap { path = "/chat/completions" }):wait())
        assert.equal("/v1/chat/completions", srv:last().path)
      end)
    end)
  end

  it("the hints were given (params that fit the check), and are taken as they are", function ()
    assert.is_true(hinted >= 3)
    -- (a hint is trusted: one that names no key leaves a raw table's option unread)
    local deltas = 0
    local p = ask { stream = function () deltas = deltas + 1 end }
    local fits, keys = core.fields_fit(p, check.FAST.chat)
    assert.is_true(fits)
    assert(engine:submit("chat", p, nil, 0):wait())
    assert.equal(0, deltas)
    assert(engine:submit("chat", p, nil, keys):wait())
    assert.is_true(deltas > 0)
  end)
end)
