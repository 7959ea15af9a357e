-- res.text of a plain (not streamed) reply, now kept from the decode
-- (src/response.c `text_node`) instead of read back from the tables: the
-- same value as the tables give, choices[1].message.content (content parts
-- joined), else choices[1].text when message is not a table, the last of
-- a repeated key, and nothing for other shapes. Real HTTP to a scripted
-- server sending exactly these bodies.
local aigc = require "aigc"
local scripted = require "scripted"

-- What res.text must be, read from the decoded tables as the SDKs' users would.
local function oracle (res)
  local c = type(res.choices) == "table" and res.choices[1]
  if type(c) ~= "table" then return nil end
  local m = c.message
  if type(m) ~= "table" then
    return type(c.text) == "string" and c.text or nil
  end
  local content = m.content
  if type(content) == "table" then
    local parts = {}
    for _, p in ipairs(content) do
      if type(p) == "table" and p.type == "text" and type(p.text) == "string" then parts[#parts + 1] = p.text end
    end
    if #parts == 0 then return nil end
    return table.concat(parts)
  end
  return type(content) == "string" and content or nil
end

local HEAD = '{"id":"c1","object":"chat.completion","model":"m","created":1,'
local function body (choices)
  return "json " .. HEAD .. '"choices":' .. choices .. ',"usage":{"prompt_tokens":1,"completion_tokens":1}}'
end

-- { the choices' JSON text, the text expected (nil: none) }
local CASES = {
  { '[{"index":0,"message":{"role":"assistant","content":"plain text"},"finish_reason":"stop"}]', "plain text" },
  { '[{"message":{"content":"first","content":"second"}}]', "second" },
  { '[{"message":{"content":"a"},"message":{"content":"b"}}]', "b" },
  { '[{"message":{"content":"x"}}],"choices":[{"message":{"content":"y"}}]', "y" },
  { '[{"message":{"content":[{"type":"thinking","thinking":"hm"},{"type":"text","text":"a"},'
    .. '{"type":"text","text":"b"}]}}]', "ab" },
  { '[{"message":{"content":null}}]', nil },
  { '[{"message":{"content":7}}]', nil },
  { '[{"message":{"content":{"text":"obj"}}}]', nil },
  { '[{"text":"from text"}]', "from text" },
  { '[{"message":null,"text":"t1"}]', "t1" },
  { '[{"message":"str","text":"t2"}]', "t2" },
  { '[{"message":[],"text":"t3"}]', nil },
  { '[{"message":{"role":"assistant"},"text":"t4"}]', nil },
  { '["not an object",{"message":{"content":"second choice"}}]', nil },
  { '[{"message":{}},{"message":{"content":"second choice"}}]', nil },
  { '[{"message":{"content":"assistant"}}]', "assistant" },
  { '[{"message":{"content":""}}]', "" },
  { '[{"message":{"content":"caf\\u00e9 \\"quoted\\" ' .. ("long "):rep(30) .. '"}}]',
    'caf\195\169 "quoted" ' .. ("long "):rep(30) },
}

describe("res.text of a plain reply", function ()
  it("is what the decoded tables hold, for every shape", function ()
    local replies = {}
    for i, case in ipairs(CASES) do replies[i] = body(case[1]) end
    -- and a completion's: choices[1].text
    replies[#replies + 1] = "json " .. '{"id":"t1","object":"text_completion","model":"m","created":1,'
      .. '"choices":[{"index":0,"text":"completed text","finish_reason":"stop"}]}'
    local srv = scripted.start(replies)
    local c = aigc.client { base_url = srv.base_url, api_key = "sk-test-text-77e0", max_retries = 0 }
    for i, case in ipairs(CASES) do
      local res, err = c:chat { model = "m", messages = { { role = "user", content = "Hi " .. i } } }
      assert.is_nil(err, "case " .. i)
      assert.equal(case[2], res.text, "case " .. i)
      assert.equal(oracle(res), res.text, "case " .. i)
    end
    local res = assert(c:complete { model = "m", prompt = "p" })
    assert.equal("completed text", res.text)
    assert.equal(oracle(res), res.text)
    c:close()
    srv:finish()
  end)
end)
