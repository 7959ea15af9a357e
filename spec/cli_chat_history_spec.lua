-- `aigc chat -c` continues a conversation from the prompt log; a history a
-- request cannot carry (written there by a program's own log:record: an
-- orphan tool result, an unknown role) is refused by conv:add since
-- aigc.check_history: said in one line, never "aigc: internal error" and a
-- traceback.
local cli = require "cli"
local promptlog = require "aigc.promptlog"

describe("aigc chat -c with a logged history a request cannot carry", function ()
  local srv, home
  local aigc = cli.fixture(_ENV, function (s, h) srv, home = s, h end)

  it("is one usage line naming the message, exit 2, nothing sent", function ()
    local db = home .. "/bad.db"
    local log = assert(promptlog.open(db))
    assert(log:record { conversation_id = "c1", leaf = true, model = "m", prompt = "And now?", response = "Noon.",
                        status = "ok", context = { { role = "user", content = "time?" },
                                                   { role = "tool", tool_call_id = "call_9", content = "noon" } } })
    log:close()
    local r = aigc({ "chat", "-c", "--log-db", db }, { stdin = "Hello\n" })
    assert.equal(2, r.code, r.stderr)
    assert.equal("aigc: the continued conversation cannot be sent: message 2: tool_call_id: no earlier assistant "
                 .. "message made the tool call 'call_9'\n", r.stderr)
    assert.equal(0, #srv:requests())
  end)
end)
