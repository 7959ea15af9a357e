-- Two messages that named no value the user gave: an empty batch
-- `custom_id` said "non-empty string expected, got string" (the type it
-- asked for), and `aigc logs show 99999999999999999999` looked for entry
-- "#1e+20". The empty string is named as one; an id past what every Lua
-- holds exactly (2^53 - 1) is a usage error naming it as typed.

local aigc = require "aigc"
local batch = require "aigc.batch"
local cli = require "cli"

describe("ids in messages", function ()
  it("an empty batch custom_id is named as empty (jsonl, create)", function ()
    local want = "requests[2].custom_id: non-empty string expected, got an empty string"
    local requests = { { custom_id = "a", body = {} }, { custom_id = "", body = {} } }
    local ok, e = pcall(batch.jsonl, requests)
    assert.is_false(ok)
    assert.matches(want, e, 1, true)
    local client = aigc.client { base_url = "http://127.0.0.1:9/v1", api_key = "sk-fake-wording-1234", max_retries = 0 }
    ok, e = pcall(batch.create, client, requests)
    client:close()
    assert.is_false(ok)
    assert.matches("bad argument #2 to 'create' (" .. want .. ")", e, 1, true)
  end)

  describe("aigc logs show ID", function ()
    local home
    local run = cli.fixture(_ENV, function (_, h) home = h end)

    it("past 2^53 - 1: exit 2 naming the id as typed, out of range; 2^53 - 1 is looked for", function ()
      local db = home .. "/none.db"
      for _, id in ipairs { "99999999999999999999", "9007199254740992", "1e300" } do
        local r = run { "logs", "show", id, "--log-db", db }
        assert.equal(2, r.code, r.stderr)
        assert.equal("", r.stdout)
        assert.equal("aigc logs show: the id '" .. id .. "' is out of range (at most 9007199254740991)\n", r.stderr)
      end
      local r = run { "logs", "show", "9007199254740991", "--log-db", db }
      assert.equal(1, r.code, r.stderr)
      assert.equal("aigc: no entry #9007199254740991: no log at " .. db .. "\n", r.stderr)
    end)
  end)
end)
