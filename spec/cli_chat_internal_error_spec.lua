-- An error that is neither the user's nor a misuse the library words is a
-- bug, said as "aigc: internal error: ...": inside an `aigc chat` turn in
-- one line, the session going on; around every command with a traceback,
-- exit 70. Both were `tostring(e)`: an error value that is a table showed
-- as "table: 0x55d0...", and the text went out as it was, a key in it
-- included. A fault is put in the command's own process (LUA_INIT): the
-- conversation's say, or `aigc models`, raises the value the test names.

local cli = require "cli"
local devserver = require "devserver"

local KEY = "sk-chat-internal-0123456789abcdef"

local INJECT = [[
local require0 = require
function require (name)
  local m = require0(name)
  if name == "aigc.conversation" and not m._faulted then
    m._faulted = true
    local say = m.Conversation.say_async
    m.Conversation.say_async = function (self, text, ...)
      if text == "table" then error({ message = "the fault's own words", code = 7 }) end
      if text == "key" then error("a fault quoting the key " .. os.getenv("OPENAI_API_KEY") .. " here", 0) end
      return say(self, text, ...)
    end
  end
  return m
end
]]

describe("aigc: an internal error", function ()
  it("inside a chat turn: worded (a table's message, not its address), no key; the session goes on", function ()
    local srv = devserver.start()
    finally(function () srv:stop() end)
    local home = cli.home()
    finally(function () cli.rmdir(home) end)
    cli.write(home .. "/inject.lua", INJECT)
    local r = cli.run({ "chat", "--no-log" }, { home = home, base_url = srv.base_url,
      env = { LUA_INIT = "@" .. home .. "/inject.lua", OPENAI_API_KEY = KEY },
      stdin = "table\nkey\nEcho: still here\n" })
    assert.equal(0, r.code, r.stderr)
    assert.matches("aigc: internal error: the fault's own words (the session goes on)", r.stderr, 1, true)
    assert.is_nil(r.stderr:find("table: 0x", 1, true))
    assert.matches("aigc: internal error: a fault quoting the key [redacted] here (the session goes on)",
                   r.stderr, 1, true)
    assert.is_nil((r.stdout .. r.stderr):find(KEY, 1, true))
    assert.matches("still here", r.stdout, 1, true)
  end)

  -- (the command's own last handler, around every command, had the same tostring(e))
  it("of any command, outside a turn: worded, no key, exit 70 with a traceback", function ()
    local home = cli.home()
    finally(function () cli.rmdir(home) end)
    cli.write(home .. "/inject.lua", [[
local require0 = require
function require (name)
  local m = require0(name)
  if name == "aigc.cli.models" then
    m.run = function (args)
      if args.json then error({ message = "the fault's own words" }) end
      error("a fault quoting the key " .. os.getenv("OPENAI_API_KEY") .. " here", 0)
    end
  end
  return m
end
]])
    for _, case in ipairs { { { "models", "--json" }, "aigc: internal error: the fault's own words\n" },
                            { { "models" }, "aigc: internal error: a fault quoting the key [redacted] here\n" } } do
      local r = cli.run(case[1], { home = home,
                                   env = { LUA_INIT = "@" .. home .. "/inject.lua", OPENAI_API_KEY = KEY } })
      assert.equal(70, r.code, r.stderr)
      assert.is_truthy(r.stderr:find(case[2], 1, true), r.stderr)
      assert.matches("stack traceback:", r.stderr, 1, true)
      assert.is_nil(r.stderr:find("table: 0x", 1, true))
      assert.is_nil((r.stdout .. r.stderr):find(KEY, 1, true))
    end
  end)
end)
