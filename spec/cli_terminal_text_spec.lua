-- What the `aigc` command puts on a terminal of a server's text: shown,
-- never obeyed, and what is valid text left as it is. A pipe gets the
-- bytes as they came (README, "Prompt workflows").

local cjson = require "cjson"
local cli = require "cli"
local oneshot = require "oneshot"

local FFFD = "\239\191\189"

describe("aigc on a terminal (a server's text)", function ()
  local home
  before_each(function () home = cli.home() end)
  after_each(function () cli.rmdir(home) end)

  local function aigc (args, replies, tty)
    local base_url = oneshot.serve_raw(replies, finally)
    return cli.run(args, { home = home, base_url = base_url, env = tty and { AIGC_FORCE_TTY = "1" } or nil })
  end

  -- `aigc models --json` on a terminal showed an id holding DEL or U+009B
  -- as "^?" or U+FFFD inside the JSON: safe, but not the server's id (copied
  -- into -m, another model). JSON has an escape that shows the same value.
  it("--json shows DEL and the C1 controls as JSON escapes: the same values, nothing obeyed", function ()
    local ids = { "gpt\27]0;PWNED\7", "m\194\1552J", "z\127", "caf\195\169 \228\184\173 \240\159\152\128 e\204\129" }
    local models = oneshot.http_reply("200 OK", cjson.encode { object = "list", data = {
      { id = ids[1] }, { id = ids[2] }, { id = ids[3] }, { id = ids[4] } } })
    local r = aigc({ "models", "--json" }, { models }, true)
    assert.equal(0, r.code, r.stderr)
    assert.is_nil(r.stdout:find("[%z\1-\9\11-\31\127]"), r.stdout)
    assert.is_nil(r.stdout:find("\194[\128-\159]"), r.stdout)
    assert.is_nil(r.stdout:find(FFFD, 1, true), r.stdout)
    assert.matches('"m\\u009b2J"', r.stdout, 1, true)
    assert.matches('"z\\u007f"', r.stdout, 1, true)
    local got = {}
    for i, m in ipairs(cjson.decode(r.stdout).data) do got[i] = m.id end
    assert.same(ids, got)   -- (the text, CJK, emoji and a combining mark, as it came)
    -- a pipe: the bytes as they came
    r = aigc({ "models", "--json" }, { models })
    assert.equal(0, r.code, r.stderr)
    assert.matches("m\194\1552J", r.stdout, 1, true)
    assert.matches("z\127", r.stdout, 1, true)
  end)

  -- A proxy's error page that is not JSON (text/html, another encoding)
  -- holding a byte 0x9B, an 8-bit CSI, reached the terminal as it was, on
  -- stderr and in `aigc logs`: only U+009B in UTF-8 was shown as U+FFFD.
  it("a byte 0x80-0x9F outside a UTF-8 character is shown as U+FFFD, on stderr and in aigc logs", function ()
    local page = "<h1>Bad request</h1> \155[2J\155]0;PWNED\7 \194\155[31m caf\233 caf\195\169 \228\184\173 "
      .. "\226\128\156q\226\128\157 \240\159\152\128 e\204\129 \226\155"
    local reply = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\nContent-Length: " .. #page
      .. "\r\nConnection: close\r\n\r\n" .. page
    local r = aigc({ "Hi" }, { reply }, true)
    assert.equal(1, r.code, r.stderr)
    for _, out in ipairs { r.stderr, cli.run({ "logs" }, { home = home, env = { AIGC_FORCE_TTY = "1" } }).stdout } do
      -- (the message's BEL is dropped before, by the library)
      assert.matches(FFFD .. "[2J" .. FFFD .. "]0;PWNED " .. FFFD .. "[31m caf\233 caf\195\169 \228\184\173 "
                     .. "\226\128\156q\226\128\157 \240\159\152\128 e\204\129 \226" .. FFFD, out, 1, true)
    end
    -- a pipe: the bytes as they came
    r = aigc({ "--no-log", "Hi" }, { reply })
    assert.equal(1, r.code, r.stderr)
    assert.matches(" \155[2J\155]0;PWNED \194\155[31m caf\233 ", r.stderr, 1, true)
  end)

  -- `aigc run --out -` at a terminal: the runner wrote each result line to
  -- /dev/stdout itself, past the command's output, so a reply's U+009B (an
  -- 8-bit CSI) and DEL reached the terminal raw inside the JSON.
  it("aigc run --out - at a terminal writes the result lines as --json does; a pipe gets them as they are", function ()
    local text = "x \194\1552J \127 \27]0;PWNED\7 \228\184\173 y"
    local reply = oneshot.http_reply("200 OK", cjson.encode { id = "c", object = "chat.completion", created = 1,
      model = "m",
      choices = { { index = 0, message = { role = "assistant", content = text }, finish_reason = "stop" } },
      usage = { prompt_tokens = 1, completion_tokens = 1, total_tokens = 2 } })
    local cases = home .. "/cases.jsonl"
    cli.write(cases, '{"id":"a","prompt":"Hi"}\n')
    for _, tty in ipairs { true, false } do
      local r = aigc({ "run", cases, "--out", "-", "--no-log", "-q" }, { reply }, tty)
      assert.equal(0, r.code, r.stderr)
      local line = r.stdout:match("^([^\n]*)\n$")
      assert.is_string(line, r.stdout)
      local result = cjson.decode(line)
      assert.same({ "a", true, text }, { result.id, result.ok, result.text })
      if tty then
        assert.is_nil(line:find("[%z\1-\31\127]"), line)
        assert.is_nil(line:find("\194[\128-\159]"), line)
        assert.matches('"x \\u009b2J \\u007f \\u001b]0;PWNED\\u0007 \228\184\173 y"', line, 1, true)
      else
        assert.matches("x \194\1552J \127 ", line, 1, true)
      end
    end
  end)
end)

-- The tests above take a terminal's word from AIGC_FORCE_TTY; here a real
-- one (tmux) tells the command it is a terminal, and shows what it got.
local describe_tty = cli.has_tmux() and describe or pending

describe_tty("aigc in a real terminal (tmux)", function ()
  local srv, home, term
  cli.fixture(_ENV, function (s, h) srv, home = s, h end, {
    after_each = function () if term then term:close(); term = nil end end })

  it("a reply's escapes are shown, not obeyed: the title stays, the text is there; aigc logs alike", function ()
    local proc = require "procutil"
    local function title ()
      local _, t = proc.sh(cli.TMUX .. " display -p -t " .. term.name .. " '#{pane_title}'")
      return (tostring(t):gsub("%s+$", ""))
    end
    for _, args in ipairs { { "Repeat after me: copied\27]2;PWNED\7 \27]52;c;cm0gLXJmIH4=\7 up\rback \228\184\173" },
                            { "logs" } } do
      term = cli.terminal(args, { home = home, base_url = srv.base_url })
      cli.wait_until(function () return (term:dead()) end, "aigc to end", 20, term)
      local screen = term:screen()
      assert.matches("copied^[]2;PWNED^G ^[]52;c;cm0gLXJmIH4=^G up^Mback \228\184\173", screen, 1, true)
      assert.is_nil(title():find("PWNED", 1, true), title())
      term:close(); term = nil
    end
  end)
end)
