-- A key repeated inside one streamed delta (issue 10, defect 15): the
-- stream callback decodes the chunk as any JSON decoder does, the last
-- value winning; the accumulated result must agree with what the callback
-- was given, not concatenate both values. (The devserver's `dup-key`
-- fault sends the first token's delta as {"content":"a","content":"b"}.)
local devserver = require "devserver"

describe("a duplicate key in a streamed delta", function ()
  local client
  devserver.fixture(_ENV, function (_, c) client = c end)

  local function ask (extra)
    local params = { model = "m", messages = { { role = "user", content = "Hi" } },
                     headers = { ["x-aigc-fault"] = "dup-key" } }
    for k, v in pairs(extra) do params[k] = v end
    return params
  end

  it("counts once, with its last value, in the result as in the callback", function ()
    local deltas, chunks = {}, {}
    local res = assert(client:chat(ask { stream = function (delta, chunk)
      deltas[#deltas + 1] = delta or ""
      chunks[#chunks + 1] = chunk
    end }))
    local seen = table.concat(deltas)
    assert.truthy(seen:find("b", 1, true))
    local dup = 0
    for _, c in ipairs(chunks) do
      if c.choices[1] and c.choices[1].delta.content == "b" then dup = dup + 1 end
    end
    assert.equal(1, dup)                    -- the chunk with the duplicate: "b"
    assert.equal(seen, res.text)            -- "a" is in neither
    assert.equal(seen, res.choices[1].message.content)
  end)

  it("the same with the iterator form and a one-parameter callback", function ()
    local parts = {}
    local res = assert(client:chat(ask { stream = function (delta) parts[#parts + 1] = delta end }))
    assert.equal(table.concat(parts), res.text)
    local s = client:stream(ask {})
    local got = {}
    for delta in s do got[#got + 1] = delta end
    assert.equal(table.concat(got), assert(s:result()).text)
    assert.equal(table.concat(parts), table.concat(got))
  end)
end)
