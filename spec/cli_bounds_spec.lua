-- The `aigc` command at its bounds: a prompt log holding huge texts, a
-- multi-line input in the REPL's history, datasets and inputs that are not
-- what the command expects.

local cjson = require "cjson"
local cli = require "cli"
local proc = require "procutil"
local socket = require "socket"

local it_tty = cli.has_tmux() and it or pending
local unpack = table.unpack or rawget(_G, "unpack")

describe("aigc at its bounds", function ()
  local srv, home
  local term
  local aigc = cli.fixture(_ENV, function (s, h) srv, home = s, h end, {
    after_each = function () if term then term:close(); term = nil end end })

  local function wait_until (fn, what)
    cli.wait_until(fn, what, 30, term)   -- (generous: CI runs under valgrind too)
  end

  local function chat ()
    term = cli.terminal({ "chat" }, { home = home, base_url = srv.base_url })
    term:wait_for("Ctrl-D to quit.", 10, true)
    term:wait_prompt()
    return term
  end

  it_tty("aigc chat: a pasted text, a \"\"\" block and a \\-continued input are one history entry each", function ()
    -- a history written before: one entry a line, more than the 1000 kept
    local old = {}
    for i = 1, 1005 do old[i] = "old " .. i end
    cli.write(home .. "/history", table.concat(old, "\n") .. "\n")
    local t = chat()
    -- a paste as a terminal makes it (bracketed: readline takes its newlines as text)
    assert(proc.sh(cli.TMUX .. " set-buffer -b cli2paste " .. proc.quote("What is 2 + 2?\nAnswer in words.")
                   .. " && " .. cli.TMUX .. " paste-buffer -p -d -b cli2paste -t " .. t.name))
    t:wait_for("Answer in words.$", 10)
    t:keys("Enter")
    t:wait_for("2 + 2 = 4.", 10, true)
    t:wait_prompt()
    for i, l in ipairs { '"""', "block one", "\\block two", '"""' } do
      t:type(l)
      t:keys("Enter")
      if i < 4 then t:wait_for("\n%.%.%.%s*$") end
    end
    wait_until(function () return #srv:requests() == 2 end, "the block's turn")
    t:wait_prompt()
    t:type_at_prompt("one \\")
    t:keys("Enter")
    t:wait_for("\n%.%.%.%s*$")
    t:type("two")
    t:keys("Enter")
    wait_until(function () return #srv:requests() == 3 end, "the continued turn")
    t:wait_prompt()
    t:type_at_prompt("/quit")
    t:keys("Enter")
    wait_until(function () return (t:dead()) end, "/quit")
    t:close(); term = nil
    -- the next session recalls each input whole, the last first
    t = chat()
    -- (each line's end may be spaces: readline under LANG=C clears what a
    -- longer entry showed with spaces, which tmux's capture keeps)
    t:keys("Up", "Up")
    t:wait_for("\n> one%s*\ntwo%s*$", 10)
    t:keys("Up")
    t:wait_for("\n> block one%s*\n\\block two%s*$", 10)
    t:keys("Up")
    t:wait_for("\n> What is 2 %+ 2%?%s*\nAnswer in words%.%s*$", 10)
    local lineinput = require "aigc.cli.lineinput"
    local entries = {}
    for line in proc.read_file(home .. "/history"):gmatch("[^\n]+") do
      entries[#entries + 1] = lineinput.decode_history(line)
    end
    -- (the last session began with 1004 and kept the last 1000)
    assert.equal(1000, #entries)
    assert.equal("old 10", entries[1])
    assert.equal("old 1005", entries[996])
    assert.same({ "What is 2 + 2?\nAnswer in words.", "block one\n\\block two", "one \ntwo", "/quit" },
                { unpack(entries, 997) })
  end)


  it_tty("aigc chat: a terminal narrowed while a reply comes: the next line is edited at the new width", function ()
    term = cli.terminal({ "chat", "-m", "fault:delay=500" }, { home = home, base_url = srv.base_url })
    local t = term
    t:wait_for("Ctrl-D to quit.", 10, true)
    t:wait_prompt()
    t:type_at_prompt("What is 2 + 2?")
    t:keys("Enter")
    wait_until(function () return #srv:requests() == 1 end, "the request")
    assert(proc.sh(cli.TMUX .. " resize-window -t " .. t.name .. " -x 40 -y 40"))
    t:wait_for("2 + 2 = 4.", 30, true)
    t:wait_prompt()
    -- a line longer than the new width, then Ctrl-A and a key: drawn at the start of the line
    local long = string.rep("0123456789", 5) .. "abcdefgh"
    t:type(long)
    t:wait_for("abcdefgh$", 10)
    t:keys("C-a")
    t:type("X")
    local _, screen = proc.sh(cli.TMUX .. " capture-pane -p -t " .. t.name)
    local deadline = socket.gettime() + 10
    while not screen:find("\n> X0123", 1, true) and socket.gettime() < deadline do
      socket.sleep(0.05)
      _, screen = proc.sh(cli.TMUX .. " capture-pane -p -t " .. t.name)
    end
    -- (at the old width, 120, the X was drawn 40 columns on: "> 0123...\n789X0123...")
    assert.matches("\n> X0123456789012345678901234567890123456\n", screen, 1, true)
  end)

  it("aigc logs: a listing shortens a huge prompt and reply; show ID, --full and --json give them whole", function ()
    local promptlog = require "aigc.promptlog"
    local path = home .. "/logs.db"
    local log = assert(promptlog.open(path))
    -- 2 MB each: one long line of a 2-byte character (cut at a whole one), and many short lines
    local prompt = string.rep(string.char(195, 169), 1000000)
    local reply = string.rep("a line of the reply\n", 100000)
    local big = assert(log:record { prompt = prompt, response = reply, model = "m", status = "ok" })
    assert(log:record { prompt = "small one", response = "small reply", model = "m", status = "ok" })
    log:close()
    local r = aigc { "logs" }
    assert.equal(0, r.code, r.stderr)
    assert.is_true(#r.stdout < 5000, "the listing is " .. #r.stdout .. " bytes")
    assert.matches("> small one\n\nsmall reply\n", r.stdout, 1, true)
    assert.matches("[... 1999000 more bytes: aigc logs show " .. big .. "]", r.stdout, 1, true)
    assert.matches("\na line of the reply\n[... ", r.stdout, 1, true)
    assert.equal(12, select(2, r.stdout:gsub("a line of the reply", "")))
    assert.is_nil(r.stdout:find(string.char(195) .. "\n"), "cut inside a character")
    -- the same with -q
    r = aigc { "logs", "-q", "line" }
    assert.equal(0, r.code, r.stderr)
    assert.is_true(#r.stdout < 5000, "the search's listing is " .. #r.stdout .. " bytes")
    -- whole: show ID, --full, --json
    for _, args in ipairs { { "logs", "show", tostring(big) }, { "logs", "--full", "-n", "2" } } do
      r = aigc(args)
      assert.equal(0, r.code, r.stderr)
      assert.matches("> " .. prompt .. "\n\n" .. reply, r.stdout, 1, true)
      assert.is_nil(r.stdout:find("more bytes", 1, true))
    end
    r = aigc { "logs", "show", tostring(big) }
    assert.is_nil(r.stdout:find("small one", 1, true))
    r = aigc { "logs", "--json" }
    assert.equal(0, r.code, r.stderr)
    local entries = cjson.decode(r.stdout)
    assert.equal(prompt, entries[1].prompt)
    assert.equal(reply, entries[1].response)
    -- show without an id, or of one that is not there: said, not a blank
    r = aigc { "logs", "show" }
    assert.equal(2, r.code)
    assert.matches("give the entry's id", r.stderr, 1, true)
    r = aigc { "logs", "show", "999" }
    assert.equal(1, r.code)
    assert.matches("no entry #999", r.stderr, 1, true)
  end)
end)
