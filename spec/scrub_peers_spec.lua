-- The scrubbers that have no client at hand (the command's last-resort
-- error text, a prompt log written without `client`) searched only the
-- keys of the environment: the key of a live client given `api_key`
-- stayed in what they wrote. `core.scrub` scrubs with the secrets of
-- every live client of the Lua state (no engine needed), and they use it.
local aigc = require "aigc"
local core = require "aigc.core"
local redact = require "aigc.promptlog_redact"

local KEY_A = "sk-proj-" .. ("Cz93PlOkMiJnUhBy7gVtFcRdXe"):rep(2)
local KEY_B = "sk-proj-" .. ("Dw15QaZsXeDcRfVt8gByHnUjMi"):rep(2)
local URL = "http://127.0.0.1:9/v1"

local b64 = require("aigc.util").base64

describe("core.scrub", function ()
  it("replaces every live client's secrets, in any form the engines search; a closed one's stay", function ()
    local a = aigc.client { base_url = URL, api_key = KEY_A }
    local b = aigc.client { base_url = URL, api_key = KEY_B }
    local text = "a " .. KEY_A .. " b " .. KEY_B:upper() .. " c " .. b64("Bearer " .. KEY_B) .. " d"
    local r = core.scrub(text)
    assert.truthy(r:find("^a %[redacted%] b %[redacted%] c .*%[redacted%].* d$"), r)
    assert.is_nil(r:find(b64("Bearer " .. KEY_B), 1, true), r)
    local t = { msg = "x " .. KEY_B, deep = { KEY_A:sub(3, 20) } }
    assert.equal(t, core.scrub(t))   -- (a table in place)
    assert.same({ msg = "x [redacted]", deep = { "[redacted]" } }, t)
    b:close()
    assert.equal("a [redacted] b " .. KEY_B .. " c", core.scrub("a " .. KEY_A .. " b " .. KEY_B .. " c"))
    a:close()
    assert.equal("a " .. KEY_A .. "   b", core.scrub("a " .. KEY_A .. "   b"))
    assert.equal(42, core.scrub(42))
    assert.has_error(function () core.scrub() end)
  end)

  it("the command's last-resort scrubber (no client) scrubs a live client's key", function ()
    local c = aigc.client { base_url = URL, api_key = KEY_B }
    local clean = redact.scrubber(nil)
    assert.equal("aigc: internal error: bad [redacted] here", clean("aigc: internal error: bad " .. KEY_B .. " here"))
    c:close()
  end)

  it("a prompt log written without a client keeps no live client's key", function ()
    local path = os.tmpname()
    local log = assert(aigc.promptlog.open(path))
    local c = aigc.client { base_url = URL, api_key = KEY_A }
    local id = assert(log:record { prompt = "my key is " .. KEY_A, response = "ok " .. KEY_A:sub(5, 30),
                                    model = "m", status = "error", error = "401 for " .. KEY_A })
    local row = log:get(id)
    assert.equal("my key is [redacted]", row.prompt)
    assert.equal("ok [redacted]", row.response)
    assert.equal("401 for [redacted]", row.error)
    c:close()
    log:close()
    os.remove(path)
    for _, ext in ipairs { "-wal", "-shm", "-kept" } do os.remove(path .. ext) end
  end)
end)
