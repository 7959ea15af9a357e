-- Every live client's secrets are scrubbed from every client's errors and
-- log lines, not only the client's own: one server serving two accounts (a
-- shared proxy, a gateway, a local server) may echo client B's key in an
-- error of client A, which kept it readable in err.message, err.body,
-- tostring(err) and A's log lines. A client's secrets stop being searched
-- once it is closed (or collected unclosed: the list keeps no client alive).
local aigc = require "aigc"
local cjson = require "cjson"
local scripted = require "scripted"
local texts = require "texts"

local KEY_A = "sk-proj-" .. ("Ap81QwErTy7uIoPaSdFgHjKl3Zx"):rep(2)
local KEY_B = "sk-proj-" .. ("Bq42MnBvCxZlKjHgFdSaPoIuYt9"):rep(2)
local HI = { { role = "user", content = "Hi" } }

-- Fails when a string of v holds 12 bytes in a row of `secret` (in any case).
local function assert_clean (v, secret, what)
  local text = texts.all(v)
  assert(not texts.holds_run(text, { secret }), what .. " holds a piece of the key: " .. text)
end

describe("another client's secrets", function ()
  for _, own in ipairs { "a key of its own", "no key (a local server)" } do
    it("are scrubbed from a client's error and log lines (client with " .. own .. ")", function ()
      local body = cjson.encode { error = { message = "Invalid key " .. KEY_B .. " for this account",
                                            type = "invalid_request_error", details = { seen = KEY_B:upper() } } }
      local srv = scripted.start { "e400 " .. body }
      local b = aigc.client { base_url = srv.base_url, api_key = KEY_B, max_retries = 0 }
      local lines = {}
      local a = aigc.client { base_url = srv.base_url, api_key = own:find("^a key") and KEY_A or nil,
                              max_retries = 0, log = function (_, msg) lines[#lines + 1] = msg end,
                              log_bodies = true }
      local res, err = a:chat { model = "m", messages = HI }
      assert.is_nil(res)
      assert.equal(400, err.status)
      assert.equal("Invalid key [redacted] for this account", err.message)
      assert.equal("[redacted]", err.body.error.details.seen)
      assert_clean(err, KEY_B, "err")
      assert_clean(tostring(err), KEY_B, "tostring(err)")
      assert.is_true(#lines > 0)
      assert_clean(lines, KEY_B, "a log line")
      -- (and what the Lua layer scrubs: cache, cassette, its own errors)
      assert.equal("seen [redacted] here", a._engine:scrub("seen " .. KEY_B .. " here"))
      a:close()
      b:close()
      srv.finish()
    end)
  end

  it("stop being searched once their client is closed, or collected unclosed (kept alive by none)", function ()
    local a = aigc.client { base_url = "http://127.0.0.1:9/v1", api_key = KEY_A }
    local b = aigc.client { base_url = "http://127.0.0.1:9/v1", api_key = KEY_B }
    assert.equal("x [redacted]", a._engine:scrub("x " .. KEY_B))
    b:close()
    assert.equal("x " .. KEY_B, a._engine:scrub("x " .. KEY_B))
    assert.equal("x [redacted]", b._engine:scrub("x " .. KEY_B))   -- (its own: still)
    local gone = setmetatable({}, { __mode = "k" })
    do
      local c = aigc.client { base_url = "http://127.0.0.1:9/v1", api_key = KEY_B }
      assert.equal("x [redacted]", a._engine:scrub("x " .. KEY_B))
      gone[c._engine] = true
    end
    collectgarbage(); collectgarbage()
    assert.is_nil(next(gone))
    assert.equal("x " .. KEY_B, a._engine:scrub("x " .. KEY_B))
    a:close()
  end)
end)
