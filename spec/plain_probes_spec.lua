-- The usual call's shortcut (lua/aigc/client.lua, `FITS_PLAIN`): params
-- that passed the fast check (`check.FAST`) are not asked again for the
-- per-call fields the plain path probes (headers, query, credentials,
-- extra_body, cache, schema, tools), as the fast check admits none of them.
-- Each such field still takes effect beside plain fields, and a field added
-- to the fast check's table turns the shortcut off for its api. Real HTTP
-- to the bundled server; what it received is read back from it.
local devserver = require "devserver"

local KEY = "sk-test-plainprobe-0b7e"

local function msgs ()
  return { { role = "user", content = "Hi" } }
end

describe("plain call probes", function ()
  local srv, client

  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { api_key = KEY, model = "aigc-dev" })

  it("a per-call field beside the fast check's fields takes effect", function ()
    assert(client:chat { model = "m", messages = msgs(), temperature = 0.5, headers = { ["X-Probe"] = "h" } })
    assert.equal("h", srv:last().headers["x-probe"])
    assert(client:chat { model = "m", messages = msgs(), max_tokens = 5, extra_headers = { ["X-Extra"] = "e" } })
    assert.equal("e", srv:last().headers["x-extra"])
    assert(client:chat { model = "m", messages = msgs(), temperature = 0.5, query = { q1 = "a" } })
    assert.equal("a", srv:last().query.q1)
    assert(client:chat { model = "m", messages = msgs(), n = 1, extra_query = { q2 = "b" } })
    assert.equal("b", srv:last().query.q2)
    assert(client:chat { model = "m", messages = msgs(), seed = 3, idempotency_key = "idem-1" })
    assert.equal("idem-1", srv:last().headers["idempotency-key"])
    assert(client:chat { model = "m", messages = msgs(), temperature = 0.5, extra_body = { probe_field = 7 } })
    assert.equal(7, srv:last().body_json.probe_field)
    -- and the same client's plain calls between them are plain
    assert(client:chat { model = "m", messages = msgs(), temperature = 0.5 })
    local last = srv:last()
    assert.is_nil(last.headers["x-probe"])
    assert.is_nil(last.query.q1)
    assert.equal(#KEY, last.authorization_len)   -- (the server shows a credential's length only)
  end)

  it("is off for an api whose fast check admits a probed field", function ()
    local check = require "aigc.check"
    local loaded = package.loaded["aigc.client"]
    local fast = check.FAST.chat
    fast.headers, fast.query = "table", "table"
    local ok, err = pcall(function ()
      package.loaded["aigc.client"] = nil
      local fresh = require "aigc.client"
      local c = fresh { base_url = srv.base_url, api_key = KEY, max_retries = 0 }
      -- (the fast check now passes these params, headers and query included)
      local fits, keys = require("aigc.core").fields_fit({ messages = msgs(), headers = {}, query = {} }, fast)
      assert.is_true(fits)
      assert.is_number(keys)
      local res, e = c:chat { model = "m", messages = msgs(), headers = { ["X-Probe"] = "on" }, query = { q = "1" } }
      c:close()
      assert.is_nil(e)
      assert.is_table(res)
      assert.equal("on", srv:last().headers["x-probe"])
      assert.equal("1", srv:last().query.q)
    end)
    fast.headers, fast.query = nil, nil
    package.loaded["aigc.client"] = loaded
    assert(ok, err)
  end)
end)
