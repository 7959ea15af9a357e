-- `summary_tokens = 0` with `summarize = true` was taken: once the budget was
-- reached, every say asked its summary with max_tokens = 0 and failed with the
-- server's 400 ("Invalid 'max_tokens': integer out of range"), a parameter
-- the user never set: the conversation was stuck. Misuse now, at creation and
-- in a save that load reads.
local aigc = require "aigc"
local devserver = require "devserver"

describe("a summarized conversation's summary_tokens", function ()
  local client
  devserver.fixture(_ENV, function (_, c) client = c end, { api_key = "sk-fake-summary" })

  local function conv (opts)
    opts.client, opts.system, opts.max_context_tokens = client, "You are Sam.", 30
    return aigc.conversation(opts)
  end

  it("is refused at 0 where a summary is made, naming it", function ()
    for _, summarize in ipairs { true, function () return "s" end } do
      assert.has_error(function () conv { summarize = summarize, summary_tokens = 0 } end,
        "bad argument #1 to 'conversation' (opts.summary_tokens: 0 leaves a summary no room: "
        .. "an integer >= 1 with summarize)")
    end
    local saved = conv({ summarize = true }):save():gsub('"summary_tokens":%d+', '"summary_tokens":0')
    local loaded, err = aigc.conversation.load(saved, client)
    assert.is_nil(loaded)
    assert.equal("parse", err.kind)
    assert.matches("opts.summary_tokens: 0 leaves a summary no room", err.message, 1, true)
  end)

  it("still takes 0 without summarize, and 1 with it, past the budget", function ()
    for _, opts in ipairs { { summary_tokens = 0 }, { summarize = true, summary_tokens = 1 } } do
      local c = conv(opts)
      for i = 1, 4 do
        assert.equal("turn " .. i .. " with some words", c:say("Repeat after me: turn " .. i .. " with some words"))
      end
    end
  end)
end)
