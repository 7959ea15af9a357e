-- A stream whose chunks hold `{}` where a list goes: what a gateway that
-- re-encodes the chunks with cjson (OpenResty's: Kong's AI proxy, APISIX)
-- makes of an empty list `[]`, cjson's empty table being an object.
--  - `"tool_calls": {}` was taken as one call (TGI's object form of a
--    single call): the reply had a call `{}` that was never made, and with
--    a toolset the whole call failed ("the reply's tool call 1 has no
--    function name");
--  - `"choices": {}` (the usage chunk's empty list) failed the whole
--    stream, kind "parse" ("choices" is not an array), the reply and its
--    usage lost.
-- Each is none, as `[]` is. Real HTTP to a scripted server
-- (spec/support/scripted.lua).
local aigc = require "aigc"
local scripted = require "scripted"

local HEAD = '{"id":"s1","object":"chat.completion.chunk","created":1,"model":"m"'

local function chunk (delta, finish)
  return HEAD .. ',"choices":[{"index":0,"delta":' .. delta .. ',"finish_reason":'
    .. (finish and '"stop"' or "null") .. "}]}"
end

-- Reads `reply` (served three times) in each form: the callback of one
-- parameter (chunks merged from their bytes), of two (each decoded), the
-- iterator; `check(res, form)` for each result.
local function each_form (reply, check)
  local srv = scripted.start { reply, reply, reply }
  local c = aigc.client { base_url = srv.base_url, api_key = "sk-fake-0123456789", max_retries = 0 }
  finally(function () c:close(); srv.finish() end)
  local msgs = { { role = "user", content = "hi" } }
  local forms = {
    function () return c:chat { messages = msgs, stream = function (_) end } end,
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
    check(res, "form " .. i)
  end
end

describe("a stream whose deltas hold \"tool_calls\": {}", function ()
  local REPLY = scripted.sse { chunk '{"role":"assistant","content":"Hello","tool_calls":{}}',
                               chunk('{"content":" there","tool_calls":{}}', true) }

  it("has no tool call, in every form of reading it", function ()
    each_form(REPLY, function (res, form)
      local calls = res.choices[1].message.tool_calls
      assert.equal(0, #calls, form)
      assert.is_true(aigc.is_array(calls))
    end)
  end)

  it("with a toolset is the final answer, no tool run", function ()
    local ran = 0
    local ts = aigc.tools { { name = "now", fn = function () ran = ran + 1; return "noon" end } }
    local res, err = scripted.tool_chat(ts, { REPLY }, { stream = function () end })
    assert.is_nil(err)
    assert.equal("Hello there", res.text)
    assert.equal(0, res.tool_rounds)
    assert.equal(0, ran)
  end)
end)

describe("a stream chunk whose \"choices\" is {}", function ()
  it("adds no choice, and the reply and its usage come whole, in every form of reading it", function ()
    local reply = scripted.sse { HEAD .. ',"choices":{}}', chunk '{"role":"assistant","content":"Hello"}',
      chunk('{"content":" there"}', true),
      HEAD .. ',"choices":{},"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}' }
    each_form(reply, function (res, form)
      assert.equal(1, #res.choices, form)
      assert.equal("stop", res.choices[1].finish_reason)
      assert.same({ prompt_tokens = 3, completion_tokens = 2, total_tokens = 5 }, res.usage)
    end)
  end)
end)
