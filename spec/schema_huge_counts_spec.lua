-- A schema's counts (minLength, minItems, minProperties, minContains and
-- their max) are any integer >= 0, as JSON Schema's nonNegativeInteger, and
-- the schema check takes 1e300 or 2^64. Their violation's message wrote them
-- with "%d", which on Lua 5.3+ raised "bad argument #2 to 'string_format'
-- (number has no integer representation)" out of schema.lua: a structured
-- chat raised an internal error instead of returning kind "schema", and a
-- run's `json-schema` assertion failed its case with that line.
local aigc = require "aigc"
local devserver = require "devserver"
local scripted = require "scripted"
local runner = require "aigc.runner"

local HUGE = 1e300

describe("a schema whose counts are beyond what %d formats", function ()
  it("answers kind 'schema' with each violation worded, the count in exponent form", function ()
    if not math.type then
      -- (Lua 5.1, 5.2, LuaJIT: such a count cannot be sent, a misuse naming it; the run's
      -- assertion below, which sends no schema, covers the message there)
      local c = aigc.client { base_url = "http://127.0.0.1:9/v1", api_key = "sk-fake-counts", max_retries = 0 }
      local ok, e = pcall(c.chat, c, { messages = { { role = "user", content = "go" } },
                                       schema = { type = "string", minLength = HUGE } })
      c:close()
      assert.is_false(ok)
      assert.matches("params.schema: not JSON-encodable (value.minLength: the integer", e, 1, true)
      return
    end
    local srv = scripted.start { scripted.chat { content = '{"s": "x", "l": [1], "o": {}}' } }
    local c = aigc.client { base_url = srv.base_url, api_key = "sk-fake-counts", max_retries = 0 }
    local res, err = c:chat {
      messages = { { role = "user", content = "go" } },
      schema = { type = "object", properties = {
        s = { type = "string", minLength = HUGE },
        l = { type = "array", minItems = 2 ^ 64, contains = { type = "integer" }, minContains = HUGE },
        o = { type = "object", minProperties = HUGE },
      } },
    }
    c:close()
    srv.finish()
    assert.is_nil(res)
    assert.equal("schema", err.kind)
    local messages = {}
    for _, v in ipairs(err.violations) do messages[v.path] = (messages[v.path] or "") .. v.message .. ";" end
    assert.equal("expected at least 1e+300 characters, got 1;", messages["$.s"])
    assert.equal("expected at least 1.84467440737096e+19 items, got 1;"
                 .. "expected at least 1e+300 items matching contains, got 1;", messages["$.l"])
    assert.equal("expected at least 1e+300 properties, got 0;", messages["$.o"])
    -- (a count that "%d" takes is worded as before)
    local srv2 = scripted.start { scripted.chat { content = '{"s": "x"}' } }
    local c2 = aigc.client { base_url = srv2.base_url, api_key = "sk-fake-counts", max_retries = 0 }
    local _, err2 = c2:chat { messages = { { role = "user", content = "go" } },
                              schema = { type = "object", properties = { s = { type = "string", minLength = 3 } } } }
    c2:close()
    srv2.finish()
    assert.equal("expected at least 3 characters, got 1", err2.violations[1].message)
  end)
end)

describe("a run's json-schema assertion with a count beyond what %d formats", function ()
  local client
  devserver.fixture(_ENV, function (_, c) client = c end)

  it("fails the assertion, not the case", function ()
    local summary = assert(runner.run {
      client = client, concurrency = 1,
      cases = { { id = "a", prompt = 'Repeat after me: {"x": "y"}',
                  assert = { { type = "json-schema", value = { type = "object",
                    properties = { x = { type = "string", maxLength = 0, minLength = HUGE } } } } } } },
    })
    local r = summary.results.a
    assert.is_true(r.ok)
    assert.is_false(r.pass)
    assert.equal(1, #r.assertions)
    assert.is_false(r.assertions[1].pass)
    assert.matches("expected at least 1e+300 characters, got 1", r.assertions[1].reason, 1, true)
  end)
end)
