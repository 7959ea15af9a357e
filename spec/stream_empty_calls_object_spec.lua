-- A stream whose deltas say `"tool_calls": {}`: what a gateway that
-- re-encodes the chunks with cjson (OpenResty's: Kong's AI proxy, APISIX)
-- makes of the empty list `[]`, cjson's empty table being an object. The
-- object was taken as one call (TGI's object form of a single call), so
-- the reply had a call `{}` that was never made, and with a toolset the
-- whole call failed ("the reply's tool call 1 has no function name"). It
-- is no call, as `[]` and a non-streamed reply's `{}` are. Real HTTP to a
-- scripted server (spec/support/scripted.lua).
local aigc = require "aigc"
local scripted = require "scripted"

local function chunk (delta, finish)
  return '{"id":"s1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":'
    .. delta .. ',"finish_reason":' .. (finish and '"stop"' or "null") .. "}]}"
end

local REPLY = scripted.sse { chunk '{"role":"assistant","content":"Hello","tool_calls":{}}',
                             chunk('{"content":" there","tool_calls":{}}', true) }

describe("a stream whose deltas hold \"tool_calls\": {}", function ()
  it("has no tool call, in every form of reading it", function ()
    local srv = scripted.start { REPLY, REPLY, REPLY }
    local c = aigc.client { base_url = srv.base_url, api_key = "sk-fake-0123456789", max_retries = 0 }
    finally(function () c:close(); srv.finish() end)
    local msgs = { { role = "user", content = "hi" } }
    local forms = {
      function () return c:chat { messages = msgs, stream = function (d) assert(d) end } end,
      function () return c:chat { messages = msgs, stream = function (_, ch) assert(ch) end } end,
      function ()
        local s = c:stream { messages = msgs }
        for _ in s do end
        return s:result()
      end,
    }
    for i, form in ipairs(forms) do
      local res, err = form()
      assert.is_nil(err, "form " .. i)
      assert.equal("Hello there", res.text)
      local calls = res.choices[1].message.tool_calls
      assert.equal(0, #calls, "form " .. i)
      assert.is_true(aigc.is_array(calls))
    end
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
