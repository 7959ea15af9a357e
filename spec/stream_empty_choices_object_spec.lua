-- A stream chunk whose "choices" is `{}`: what a gateway that re-encodes
-- the chunks with cjson (OpenResty's) makes of the usage chunk's empty
-- list, `"choices": []` (cjson's empty table is an object). The stream
-- failed whole, kind "parse" ("choices" is not an array), the reply and
-- its usage lost. It is no choice, as `[]` is. Real HTTP to a scripted
-- server (spec/support/scripted.lua).
local aigc = require "aigc"
local scripted = require "scripted"

local function chunk (delta, finish)
  return '{"id":"s1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":'
    .. delta .. ',"finish_reason":' .. (finish and '"stop"' or "null") .. "}]}"
end
local EMPTY = '{"id":"s1","object":"chat.completion.chunk","created":1,"model":"m","choices":{}'

local REPLY = scripted.sse { EMPTY .. "}", chunk '{"role":"assistant","content":"Hello"}',
  chunk('{"content":" there"}', true),
  EMPTY .. ',"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}' }

describe("a stream chunk whose \"choices\" is {}", function ()
  it("adds no choice, and the reply and its usage come whole, in every form of reading it", function ()
    local srv = scripted.start { REPLY, REPLY, REPLY }
    local c = aigc.client { base_url = srv.base_url, api_key = "sk-fake-0123456789", max_retries = 0 }
    finally(function () c:close(); srv.finish() end)
    local msgs = { { role = "user", content = "hi" } }
    local forms = {
      function () return c:chat { messages = msgs, stream = function () end } end,
      function () return c:chat { messages = msgs, stream = function (_, ch) assert(ch) end } end,
      function ()
        local s = c:stream { messages = msgs }
        local text = {}
        for d in s do text[#text + 1] = d end
        assert.equal("Hello there", table.concat(text))
        return s:result()
      end,
    }
    for i, form in ipairs(forms) do
      local res, err = form()
      assert.is_nil(err, "form " .. i)
      assert.equal("Hello there", res.text)
      assert.equal(1, #res.choices)
      assert.equal("stop", res.choices[1].finish_reason)
      assert.same({ prompt_tokens = 3, completion_tokens = 2, total_tokens = 5 }, res.usage)
    end
  end)
end)
