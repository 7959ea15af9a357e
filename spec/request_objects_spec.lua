-- A request is two Lua objects (src/request.c, "The request's two
-- objects"): what the caller holds (methods, callbacks, the result) and
-- its C state, the only one with a __gc. Issue 17: with the __gc on the
-- first, a dropped request kept its result for a collection cycle more
-- (a finalized object keeps everything it references for one more cycle):
-- ~6k instructions per request in marking. These cases hold the contract:
-- the result goes in the cycle the request goes, and a request that a
-- finalizer brings back still answers.
local devserver = require "devserver"

describe("a request's objects", function ()
  local engine
  devserver.engine_fixture(_ENV, function (_, e) engine = e end)

  local function ask () return devserver.params(nil, nil, "m") end

  -- (weak keys: an object kept for a finalizer leaves them only in the
  -- cycle after; Lua 5.1 and LuaJIT have no such rule to observe)
  local ephemerons = _VERSION ~= "Lua 5.1"

  it("a dropped request's result is collected in the same cycle", function ()
    if not ephemerons then pending("Lua 5.2+ (weak keys of finalized objects)") return end
    local req = engine:submit("chat", ask())
    assert(req:wait())
    local seen = setmetatable({}, { __mode = "k" })
    seen[req:result()] = true
    req = nil   -- luacheck: ignore
    collectgarbage("collect")
    assert.is_nil(next(seen))
  end)

  it("a request brought back by a finalizer still answers, canceled or done", function ()
    local got = {}
    local function keep (req)
      -- only this object holds req; its finalizer reads it
      local holder = { req = req }
      setmetatable(holder, { __gc = function (h)
        got[#got + 1] = { h.req:status(), (h.req:result()) ~= nil }
      end })
      if not ephemerons then   -- (tables have no __gc on 5.1/LuaJIT: a proxy carries it)
        local p = rawget(_G, "newproxy")(true)
        getmetatable(p).__gc = function () got[#got + 1] = { req:status(), (req:result()) ~= nil } end
        return p
      end
      return holder
    end
    local done = engine:submit("chat", ask())
    assert(done:wait())
    local kept = { keep(done), keep(engine:submit("chat", ask())) }
    assert.equal(2, #kept)
    done, kept = nil, nil   -- luacheck: ignore
    collectgarbage("collect")
    collectgarbage("collect")
    table.sort(got, function (a, b) return a[1] < b[1] end)
    assert.equal(2, #got)
    assert.same({ "done", true }, got[1])
    -- the pending one: as its core's __gc left it, or before that ran
    -- (finalizers run in an order Lua chooses), never a result
    assert.is_true(got[2][1] == "running" or got[2][1] == "canceled", got[2][1])
    assert.is_false(got[2][2])
    -- the engine is still whole
    assert(engine:submit("chat", ask()):wait())
  end)
end)
