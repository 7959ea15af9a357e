-- conv:save() left out the params that carry a credential in a header or
-- the query, but kept an `api_key` or `azure_ad_token` given in the
-- conversation's params: the key went whole into the save file (a game's
-- save, which may go anywhere).
local aigc = require "aigc"

describe("a conversation's save", function ()
  it("keeps no api_key or azure_ad_token of its params; the other params stay", function ()
    local key, token = "sk-user-Qz7Wx9Lk2Rt5Yp8Mn4", "eyJ0-Qz7Wx9Lk2Rt5Yp8Mn4Bv6"
    local c = aigc.client { base_url = "http://127.0.0.1:1/v1", model = "m" }
    local conv = aigc.conversation { client = c, params = { api_key = key, azure_ad_token = token, temperature = 0.5 } }
    conv:add { role = "user", content = "hi" }
    local text = conv:save()
    c:close()
    assert.is_nil(text:find(key, 1, true))
    assert.is_nil(text:find(token, 1, true))
    local saved = aigc.json.decode(text)
    assert.equal(0.5, saved.params.temperature)
    assert.is_nil(saved.params.api_key)
    assert.is_nil(saved.params.azure_ad_token)
  end)
end)
