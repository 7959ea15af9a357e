-- Which secrets are searched by their size, as README's secrets paragraph
-- says: 8 bytes or longer, whatever they hold (a number too); of 4 to 7
-- bytes only with a letter and a digit, as a word; none under 4 bytes.
local aigc = require "aigc"

local function scrubbed (key, text)
  local c = aigc.client { base_url = "http://127.0.0.1:9/v1", api_key = key }
  local s = c._engine:scrub(text)
  c:close()
  return s
end

describe("a secret's size", function ()
  it("8 bytes or longer, any bytes: searched", function ()
    for _, key in ipairs { "12345678", "abcdefgh", "ab-cd-ef" } do
      assert.equal("x [redacted] y", scrubbed(key, "x " .. key .. " y"), key)
    end
  end)

  it("4 to 7 bytes with a letter and a digit: searched, as a word", function ()
    for _, key in ipairs { "sk-1", "abc1", "hunter2" } do
      assert.equal("x [redacted] y", scrubbed(key, "x " .. key .. " y"), key)
      assert.equal("x a" .. key .. " y", scrubbed(key, "x a" .. key .. " y"), key)
    end
  end)

  it("4 to 7 bytes without both a letter and a digit, or under 4: not searched", function ()
    for _, key in ipairs { "sk-abc", "hunter", "EMPTY", "1234567", "a1", "x9z" } do
      assert.equal("x " .. key .. " y", scrubbed(key, "x " .. key .. " y"), key)
    end
  end)
end)
