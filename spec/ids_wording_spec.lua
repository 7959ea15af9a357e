-- Messages that named no value the user gave: an empty batch `custom_id`
-- said "non-empty string expected, got string" (the type it asked for).
-- The empty string is named as one.

local aigc = require "aigc"
local batch = require "aigc.batch"

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
end)
