-- `aigc chat` driven through a real terminal: tmux runs it, the spec types
-- and reads the screen. Streaming shows incrementally, Ctrl-C cancels the
-- reply in progress and keeps the session, Ctrl-C at the prompt is harmless,
-- history recalls lines, slash commands work, and the turns land in
-- the log so that `aigc -c` continues them.

local cjson = require "cjson"
local cli = require "cli"
local socket = require "socket"

local has_tmux = cli.has_tmux()

local function body_of (req)
  return cjson.decode(req.body)
end

local describe_tty = has_tmux and describe or pending

describe_tty("aigc chat (in a terminal)", function ()
  local srv, home, term
  local _, logs = cli.fixture(_ENV, function (s, h) srv, home = s, h end, {
    after_each = function () if term then term:close(); term = nil end end })

  local function chat (args, env)
    local a = { "chat" }
    for _, x in ipairs(args or {}) do a[#a + 1] = x end
    term = cli.terminal(a, { home = home, base_url = srv.base_url, env = env })
    term:wait_for("Ctrl-D to quit.", 10, true)
    term:wait_prompt()
    return term
  end

  local function wait_until (fn, what)
    cli.wait_until(fn, what, 10, term)
  end

  it("streams a reply as it arrives, and Ctrl-C cancels it but not the session", function ()
    local t = chat { "-m", "fault:pause=30" }   -- (the story: 150 tokens, seconds to go at Ctrl-C)
    t:type("Tell me a story about a robot that learns to paint")
    t:keys("Enter")
    -- part of the story is on the screen while the server is still sending it
    local screen = t:wait_for("Once upon a time", 10, true)
    assert.equal(1, srv:stats().open_now)
    assert.is_nil(screen:find("paying attention", 1, true))
    t:keys("C-c")
    t:wait_for("[canceled]", 10, true)
    wait_until(function () return srv:stats().open_now == 0 end, "the canceled request to close")
    assert.is_false((t:dead()))
    -- the session goes on, and the canceled turn is not in its history
    t:type("What is the capital of France?")
    t:keys("Enter")
    t:wait_for("The capital of France is Paris.", 10, true)
    local msgs = body_of(srv:last()).messages
    assert.equal(1, #msgs)
    assert.equal("What is the capital of France?", msgs[1].content)
    t:wait_prompt()
    t:keys("C-d")
    wait_until(function () return (t:dead()) end, "aigc chat to end on Ctrl-D")
    -- the log has the canceled turn (with its partial reply) and the answered one
    local entries = logs()
    assert.equal(2, #entries)
    assert.equal("canceled", entries[1].status)
    assert.matches("^Once upon a time", entries[1].response)
    assert.equal("ok", entries[2].status)
    assert.is_nil(entries[2].parent_id)
  end)

  it("Ctrl-C at the prompt changes nothing (Ctrl-U clears); Up recalls history, also in the next session", function ()
    local t = chat()
    t:type("What is 2 + 2?")
    t:keys("Enter")
    t:wait_for("2 + 2 = 4.", 10, true)
    t:wait_prompt()
    t:type_at_prompt("half a line")
    t:keys("C-c")
    t:wait_for("> half a line%^C$", 10)       -- readline shows the ^C and keeps the line
    t:keys("C-u")
    t:wait_prompt()
    t:keys("Up")
    t:wait_for("> What is 2 %+ 2%?$", 10)
    t:keys("C-u")
    t:wait_prompt()
    t:type("/quit")
    t:keys("Enter")
    wait_until(function () return (t:dead()) end, "the end")
    t:close()
    assert.equal(1, #srv:requests())
    -- what was typed is private: the history file is made 0600, whatever the umask
    local p = io.popen("stat -c %a '" .. home .. "/history'")
    assert.equal("600", p:read("*l"))
    p:close()
    t = chat()
    t:keys("Up")
    t:wait_for("> /quit$", 10)
    t:keys("Up")
    t:wait_for("> What is 2 %+ 2%?$", 10)
  end)

  it("/system, /model, /undo, /retry, /history, multi-line input, /fork and /save /load", function ()
    local t = chat()
    -- each line is typed at a prompt (keys typed ahead of it go to the terminal's cooked mode)
    local function line (text, continued)
      if continued then t:wait_for("\n%.%.%.%s*$") else t:wait_prompt() end
      t:type(text)
      t:keys("Enter")
    end
    line("/system You are Sam.")
    t:wait_for("system prompt set", 10, true)
    line("/model other-model")
    t:wait_for("model other-model", 10, true)
    line("What is the capital of France?")
    t:wait_for("Paris.", 10, true)
    local body = body_of(srv:last())
    assert.equal("other-model", body.model)
    assert.same({ role = "system", content = "You are Sam." }, body.messages[1])

    line("What is 2 + 2?")
    t:wait_for("= 4.", 10, true)
    line("/undo")
    t:wait_for("undone: What is 2 + 2?", 10, true)
    line("/retry")
    wait_until(function () return #srv:requests() == 3 end, "the retry")
    body = body_of(srv:last())
    assert.equal(2, #body.messages)                     -- the system message and the retried question
    assert.equal("What is the capital of France?", body.messages[2].content)

    -- multi-line: a trailing backslash, then a """ block
    line("Repeat after me: one \\")
    line("two", true)
    wait_until(function () return #srv:requests() == 4 end, "the continued line")
    local msgs = body_of(srv:last()).messages
    assert.equal("Repeat after me: one \ntwo", msgs[#msgs].content)
    line('"""')
    line("Repeat after me: alpha", true)
    line("beta", true)
    line('"""', true)
    wait_until(function () return #srv:requests() == 5 end, "the block")
    msgs = body_of(srv:last()).messages
    assert.equal("Repeat after me: alpha\nbeta", msgs[#msgs].content)

    line("/history")
    t:wait_for("system: You are Sam.", 10, true)

    local saved = home .. "/conv.json"
    line("/save " .. saved)
    t:wait_for("saved to " .. saved, 10, true)
    line("/fork")
    t:wait_for("forked: conversation c%x+ %(from c%x+%)", 10)
    line("/load " .. saved)
    t:wait_for("loaded 7 messages", 10, true)
    line("And then?")
    wait_until(function () return #srv:requests() == 6 end, "the turn after /load")
    msgs = body_of(srv:last()).messages
    assert.equal(8, #msgs)
    line("/quit")
    wait_until(function () return (t:dead()) end, "/quit")

    -- aigc -c continues the last conversation (the loaded one) with its whole history
    local r = cli.run({ "-c", "One more." }, { home = home, base_url = srv.base_url })
    assert.equal(0, r.code, r.stderr)
    msgs = body_of(srv:last()).messages
    assert.equal(10, #msgs)
    assert.equal("You are Sam.", msgs[1].content)
    assert.equal("And then?", msgs[8].content)
    assert.equal("One more.", msgs[10].content)
  end)

  it("Ctrl-D inside a \"\"\" block sends the block, then ends the session", function ()
    local t = chat()
    t:type('"""'); t:keys("Enter")
    t:wait_for("\n%.%.%.%s*$")
    t:type("Repeat after me: unfinished block"); t:keys("Enter")
    t:wait_for("\n%.%.%.%s*$")
    t:keys("C-d")
    wait_until(function () return #srv:requests() == 1 end, "the block")
    assert.equal("Repeat after me: unfinished block", body_of(srv:last()).messages[1].content)
    wait_until(function () return (t:dead()) end, "the end of the session")
    assert.matches("unfinished block\n.*unfinished block", t:screen())   -- typed, then the reply
  end)

  it("Ctrl-C inside a \"\"\" block abandons it (once the line ends): nothing sent, the session goes on", function ()
    local t = chat()
    t:type('"""'); t:keys("Enter")
    t:wait_for("\n%.%.%.%s*$")
    t:type("Repeat after me: dropped"); t:keys("Enter")
    t:wait_for("\n%.%.%.%s*$")
    t:type("half a line")
    t:keys("C-c")
    socket.sleep(0.3)
    t:keys("Enter")
    t:wait_for("input abandoned (Ctrl-C): nothing sent", 10, true)
    t:wait_prompt()
    t:type("What is 2 + 2?"); t:keys("Enter")
    t:wait_for("= 4.", 10, true)
    assert.equal(1, #srv:requests())
    assert.same({ { role = "user", content = "What is 2 + 2?" } }, body_of(srv:last()).messages)
    assert.is_false((t:dead()))
  end)

  it("terminals back to back: one started as the tmux server exits with the last one still starts", function ()
    -- (the server exits with its last session; a session started in that
    -- moment failed with "server exited unexpectedly", a few starts in a
    -- hundred: spec/support/cli.lua starts it again)
    for _ = 1, 60 do
      local t = cli.terminal({ "--version" }, { home = home, base_url = srv.base_url })
      t:close()
    end
  end)

  it("aigc chat -c continues the conversation a one-shot prompt began", function ()
    local r = cli.run({ "-s", "You are terse.", "What is the capital of France?" },
                      { home = home, base_url = srv.base_url })
    assert.equal(0, r.code, r.stderr)
    local t = chat { "-c" }
    t:wait_for("(3 messages)", 10, true)
    t:type("What is 2 + 2?")
    t:keys("Enter")
    t:wait_for("= 4.", 10, true)
    local msgs = body_of(srv:last()).messages
    assert.equal(4, #msgs)
    assert.equal("You are terse.", msgs[1].content)
    assert.equal("The capital of France is Paris.", msgs[3].content)
  end)
end)

describe_tty("aigc one-shot (in a terminal)", function ()
  local srv, home, term
  cli.fixture(_ENV, function (s, h) srv, home = s, h end, {
    after_each = function () if term then term:close(); term = nil end end })

  it("Ctrl-C cancels the reply: what came stays, exit 130, logged as canceled", function ()
    term = cli.terminal({ "-m", "fault:pause=60", "Tell me a story about a robot that learns to paint" },
                        { home = home, base_url = srv.base_url })
    term:wait_for("Once upon a time", 10, true)
    assert.equal(1, srv:stats().open_now)
    term:keys("C-c")
    term:wait_for("aigc: canceled", 10, true)
    local deadline = socket.gettime() + 10
    while not term:dead() do
      assert.is_true(socket.gettime() < deadline, "aigc did not end")
      socket.sleep(0.02)
    end
    -- (tmux may take a while to tell the status; when it has, it is 130)
    local _, status = term:dead()
    if status then assert.equal(130, status) end
    assert.equal(0, srv:stats().open_now)
    local r = cli.run({ "logs", "--json" }, { home = home })
    local e = cjson.decode(r.stdout)[1]
    assert.equal("canceled", e.status)
    assert.matches("^Once upon a time", e.response)
  end)
end)

describe("aigc chat (stdin not a terminal)", function ()
  local srv, home
  cli.fixture(_ENV, function (s, h) srv, home = s, h end)

  it("makes the AIGC_HOME it creates 0700, whatever the umask (with --no-log too)", function ()
    local fresh = home .. "/fresh-home"
    local r = cli.run({ "chat", "--no-log" }, { home = fresh, base_url = srv.base_url, stdin = "Hi\n" })
    assert.equal(0, r.code, r.stderr)
    local p = io.popen("stat -c %a '" .. fresh .. "'")
    assert.equal("700", p:read("*l"))
    p:close()
  end)

  it("reads lines from a pipe, with no prompts, and ends at the end of input", function ()
    local r = cli.run({ "chat" }, { home = home, base_url = srv.base_url,
                                    stdin = "What is the capital of France?\n/undo\nWhat is 2 + 2?\n" })
    assert.equal(0, r.code, r.stderr)
    assert.equal("The capital of France is Paris.\nundone: What is the capital of France?\n2 + 2 = 4.\n", r.stdout)
    assert.equal(1, #body_of(srv:last()).messages)
  end)

  it("lines ending in CR LF (a file written on Windows) send what was typed, without the CR", function ()
    local r = cli.run({ "chat" }, { home = home, base_url = srv.base_url,
                                    stdin = "What is the capital of France?\r\n/undo\r\nWhat is 2 + 2?\r\n" })
    assert.equal(0, r.code, r.stderr)
    assert.equal("The capital of France is Paris.\nundone: What is the capital of France?\n2 + 2 = 4.\n", r.stdout)
    assert.same({ { role = "user", content = "What is 2 + 2?" } }, body_of(srv:last()).messages)
  end)

  it("the end of input inside a \"\"\" block or after a \\ sends what was typed", function ()
    local r = cli.run({ "chat" }, { home = home, base_url = srv.base_url,
                                    stdin = '"""\nRepeat after me: alpha\nbeta\n' })
    assert.equal(0, r.code, r.stderr)
    assert.equal("alpha\nbeta\n", r.stdout)
    assert.equal("Repeat after me: alpha\nbeta", body_of(srv:last()).messages[1].content)
    r = cli.run({ "chat" }, { home = home, base_url = srv.base_url, stdin = "Repeat after me: one \\\ntwo \\\n" })
    assert.equal(0, r.code, r.stderr)
    assert.equal("Repeat after me: one \ntwo ", body_of(srv:last()).messages[1].content)
    assert.equal(2, #srv:requests())
    r = cli.run({ "chat" }, { home = home, base_url = srv.base_url, stdin = '"""\n' })   -- nothing typed: nothing sent
    assert.equal(0, r.code, r.stderr)
    assert.equal(2, #srv:requests())
  end)

  it("-t: the template's system prompt with its variables from -p and its defaults, its params", function ()
    cli.write(home .. "/templates/guide.lua", [[
      return { system = "You are a {{role}} in {{town}}.", prompt = "Tell me about {{topic}}.",
               defaults = { role = "guide" }, params = { temperature = 0 } }
    ]])
    local r = cli.run({ "chat", "-t", "guide", "-p", "town=Oslo" }, { home = home, base_url = srv.base_url,
                                                                   stdin = "Hello there\n" })
    assert.equal(0, r.code, r.stderr)
    local body = body_of(srv:last())
    assert.same({ { role = "system", content = "You are a guide in Oslo." },
                  { role = "user", content = "Hello there" } }, body.messages)
    assert.equal(0, body.temperature)
    r = cli.run({ "chat", "-t", "guide", "-p", "role=pirate", "-p", "town=Bergen" },
                { home = home, base_url = srv.base_url, stdin = "Ahoy\n" })
    assert.equal(0, r.code, r.stderr)
    assert.equal("You are a pirate in Bergen.", body_of(srv:last()).messages[1].content)
    -- a variable without a value, and -p without -t: usage errors, nothing sent
    local sent = #srv:requests()
    r = cli.run({ "chat", "-t", "guide" }, { home = home, base_url = srv.base_url, stdin = "Hi\n" })
    assert.equal(2, r.code)
    assert.equal("template 'guide': missing variable: town (give it with -p NAME=VALUE)\n", r.stderr)
    r = cli.run({ "chat", "-p", "town=Oslo" }, { home = home, base_url = srv.base_url, stdin = "Hi\n" })
    assert.equal(2, r.code)
    assert.matches("-p sets template variables: it needs -t TEMPLATE", r.stderr, 1, true)
    assert.equal(sent, #srv:requests())
  end)

  it("a line or a command's text that is not UTF-8 is refused with one line; the session goes on", function ()
    local r = cli.run({ "chat" }, { home = home, base_url = srv.base_url, stdin =
      "What is the capital of France?\nbad \255 bytes\n/system bad \254\n/model x\255\n"
      .. '"""\nline\n\255\n"""\nWhat is 2 + 2?\n' })
    assert.equal(0, r.code, r.stderr)
    assert.equal("aigc: the input: invalid UTF-8 at byte 5: not sent\n"
                 .. "aigc: the input: invalid UTF-8 at byte 13: /system ignored\n"
                 .. "aigc: the input: invalid UTF-8 at byte 9: /model ignored\n"
                 .. "aigc: the input: invalid UTF-8 at byte 6: not sent\n", r.stderr)
    assert.equal("The capital of France is Paris.\n2 + 2 = 4.\n", r.stdout)
    assert.equal(2, #srv:requests())
    local body = body_of(srv:last())
    assert.equal(3, #body.messages)          -- no system prompt, the refused lines not in the history
    assert.equal("user", body.messages[1].role)
    assert.equal("What is 2 + 2?", body.messages[3].content)
    assert.not_equal("x\255", body.model)
    -- -s that is not UTF-8: a usage error, nothing sent
    r = cli.run({ "chat", "-s", "bad \255" }, { home = home, base_url = srv.base_url, stdin = "Hi\n" })
    assert.equal(2, r.code)
    assert.equal("aigc: the system prompt: invalid UTF-8 at byte 5\n", r.stderr)
    assert.equal(2, #srv:requests())
  end)

  it("/load: an error names the file; messages that are not text are refused; tools dropped; /reset", function ()
    local path = home .. "/bad.json"
    cli.write(path, "root:x:0:0\n")
    local tools = home .. "/tools.json"
    cli.write(tools, '{"format":"aigc.conversation","version":1,"model":"gpt-4o-mini","params":{"tools":'
      .. '[{"type":"function","function":{"name":"f"}}],"tool_choice":"required","temperature":0},'
      .. '"messages":[{"role":"user","content":"hi"}]}')
    local obj = home .. "/obj.json"
    cli.write(obj, '{"format":"aigc.conversation","version":1,"messages":[{"role":"user","content":{"a":1}}]}')
    local r = cli.run({ "chat" }, { home = home, base_url = srv.base_url, stdin = table.concat({
      "/load " .. path, "/load " .. obj, "What is the capital of France?", "/load " .. tools, "Hello there",
      "/reset", "What is 2 + 2?", "" }, "\n") })
    assert.equal(0, r.code, r.stderr)
    assert.equal("aigc: /load " .. path .. ": not a saved conversation: invalid JSON at byte 1: unexpected "
                 .. "character 'r'\n"
                 .. "aigc: /load " .. obj .. ": not a valid saved conversation: messages[1].content: string or "
                 .. "list of content parts expected, got table\n"
                 .. "aigc: /load " .. tools .. ": ignored what the chat cannot honour: params tools, tool_choice\n",
                 r.stderr)
    local reqs = srv:requests()
    assert.equal(3, #reqs)
    assert.equal(1, #body_of(reqs[1]).messages)   -- (the refused file changed nothing)
    local b = body_of(reqs[2])
    assert.is_nil(b.tools); assert.is_nil(b.tool_choice)
    assert.equal(0, b.temperature)               -- (what the chat can honour is kept)
    assert.equal(2, #b.messages)
    b = body_of(reqs[3])                         -- /reset: the session's own params
    assert.is_nil(b.tools); assert.is_nil(b.temperature)
    assert.same({ { role = "user", content = "What is 2 + 2?" } }, b.messages)
  end)

  it("/history shows tool calls, tool results and content parts of a loaded history", function ()
    local path = home .. "/calls.json"
    cli.write(path, '{"format":"aigc.conversation","version":1,"messages":['
      .. '{"role":"user","content":[{"type":"text","text":"Weather?"},{"type":"image_url","image_url":{"url":"x"}}]},'
      .. '{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",'
      .. '"function":{"name":"get_weather","arguments":"{\\"city\\":\\"Oslo\\"}"}}]},'
      .. '{"role":"tool","tool_call_id":"call_1","content":"12C"},'
      .. '{"role":"assistant","content":"It is 12C."}]}')
    local r = cli.run({ "chat" }, { home = home, base_url = srv.base_url,
                                    stdin = "/load " .. path .. "\n/history\n/save /dev/full\n" })
    assert.equal(0, r.code, r.stderr)
    assert.matches("^aigc: /save /dev/full: [^\n]+\n$", r.stderr)   -- (it said "saved to /dev/full")
    assert.matches("user: Weather%? %[image_url%]\n"
                   .. "assistant: %[tool call: get_weather%({\"city\":\"Oslo\"}%)%]\n"
                   .. "tool %(call_1%): 12C\nassistant: It is 12C.\n$", r.stdout)
  end)

  it("reports a failed reply and goes on, the history unchanged", function ()
    local r = cli.run({ "chat" }, { home = home, base_url = srv.base_url,
      stdin = "What is the capital of France?\n/model fault:status=500,should-retry=false\nHi\n/model m\nAnd?\n" })
    assert.equal(0, r.code, r.stderr)
    assert.matches("aigc: http error 500", r.stderr)
    local msgs = body_of(srv:last()).messages
    assert.equal(3, #msgs)                 -- the failed turn is not in the history
    assert.equal("And?", msgs[3].content)
  end)
end)
