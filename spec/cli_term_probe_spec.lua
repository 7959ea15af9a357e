-- `aigc` used as a person uses it in a terminal, and as a script's tool:
-- Ctrl-C, line input with and without lua-readline, what a reply may put
-- on the screen. Terminal tests run in tmux (skipped without it).

local cli = require "cli"
local proc = require "procutil"
local socket = require "socket"

local function wait_until (fn, what, seconds)
  local deadline = socket.gettime() + (seconds or 20)
  while not fn() do
    assert(socket.gettime() < deadline, "timed out waiting for " .. what)
    socket.sleep(0.02)
  end
end

describe("aigc (in scripts, on terminals)", function ()
  local srv, home
  local aigc, logs = cli.fixture(_ENV, function (s, h) srv, home = s, h end)

  it("stdin a script: Ctrl-C cancels the reply and ends the session, 130 (it went on to the next line)", function ()
    local script = home .. "/questions.txt"
    cli.write(script, "Tell me a story about a robot that learns to paint\n"
                      .. "Tell me a story about a dragon\nWhat is 2 + 2?\n")
    local out = home .. "/out.txt"
    local job = cli.background({ "chat", "-m", "fault:pause=200" },
      { home = home, base_url = srv.base_url, stdin_path = script, stdout = out })
    -- (the reply streams: the signal handler is in place)
    wait_until(function () return (proc.read_file(out) or ""):find("Once upon", 1, true) end, "the reply to stream")
    assert(proc.sh("kill -INT " .. job.pid))
    assert.equal(130, job.wait_exit(socket.gettime() + 30))
    assert.matches("\n%[canceled%]\n$", proc.read_file(out))
    assert.equal(1, srv:stats().requests_total)   -- (the next questions were not sent)
    local entries = logs()
    assert.equal(1, #entries)
    assert.equal("canceled", entries[1].status)
  end)

  it("aigc run on TERM=dumb (an editor's shell): progress as plain lines, no ESC [K (shown there as ^[[K)", function ()
    local cases = home .. "/cases.jsonl"
    cli.write(cases, '{"prompt":"What is 2 + 2?"}\n{"prompt":"Hi"}\n')
    local r = aigc({ "run", cases }, { env = { AIGC_FORCE_TTY = "1", TERM = "dumb" } })
    assert.equal(0, r.code, r.stderr)
    assert.is_nil(r.stderr:find("[\r\27]"), r.stderr)
    assert.matches("2/2%s+%[#+%]%s+100%%", r.stderr)   -- (the final progress line, whole)
    assert.matches("\ncases 2 ", r.stderr)
    -- a terminal that takes escapes still has the bar rewritten in place
    r = aigc({ "run", cases, "--out", home .. "/again.jsonl" }, { env = { AIGC_FORCE_TTY = "1", TERM = "xterm" } })
    assert.equal(0, r.code, r.stderr)
    assert.matches("^\r\27%[K", r.stderr)
  end)

  it("a server's text on stderr reaches a terminal as text too: a batch's status could retitle the window", function ()
    local oneshot = require "oneshot"
    local port, child = oneshot.start([[
      local oneshot = require "oneshot"
      local c = oneshot.read_request(oneshot.listen())
      local body = '{"id":"batch_1","object":"batch","status":"cancelling\\u001b]2;PWNED\\u0007\\u001b[2J"}'
      c:send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " .. #body
             .. "\r\nConnection: close\r\n\r\n" .. body)
      c:close()
    ]])
    local r = aigc({ "run", "cases.jsonl", "--batch", "--cancel", "--batch-id", "batch_1" },
      { base_url = "http://127.0.0.1:" .. port .. "/v1", env = { AIGC_FORCE_TTY = "1" } })
    child:wait(10)
    assert.equal(0, r.code, r.stderr)
    assert.equal("batch batch_1: cancelling^[]2;PWNED^G^[[2J\n", r.stderr)
  end)

  it("aigc run's progress line shows a batch's status as text (the line goes to the terminal as it is)", function ()
    local run = require "aigc.cli.run"
    local line = run.progress_line { done = 1, total = 2, ok = 1, failed = 0, tokens = 3, rate = 1,
                                     batch = { id = "batch_1", status = "in_progress\27]2;PWNED\7\27[2J" } }
    assert.matches("batch batch_1 in_progress%?]2;PWNED%?%?%[2J$", line)
  end)

  it("a streamed reply of CR LF lines cut between CR and LF shows its lines, not ^M at each end", function ()
    local function event (delta)
      return 'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,'
             .. '"delta":' .. delta .. ',"finish_reason":' .. (delta == "{}" and '"stop"' or "null") .. '}]}\n\n'
    end
    local sse = event('{"content":"line one\\r"}') .. event('{"content":"\\nline two\\r"}')
                .. event('{"content":"\\n"}') .. event("{}") .. "data: [DONE]\n\n"
    local file = home .. "/reply.sse"
    cli.write(file, sse)
    local oneshot = require "oneshot"
    local port, child = oneshot.start([[
      local oneshot = require "oneshot"
      local body = assert(io.open(arg[1], "rb")):read("*a")
      local c = oneshot.read_request(oneshot.listen())
      c:send("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n" .. body)
      c:close()
    ]], { file })
    local r = aigc({ "Hi" }, { base_url = "http://127.0.0.1:" .. port .. "/v1", env = { AIGC_FORCE_TTY = "1" } })
    child:wait(10)
    assert.equal(0, r.code, r.stderr)
    assert.equal("line one\nline two\n", r.stdout)
  end)

  it("aigc logs that lists nothing says so on stderr (a conversation of failed turns showed a blank)", function ()
    -- (a 500 not retried: the failed turn at once)
    local r = aigc({ "chat", "-m", "fault:status=500,should-retry=false" }, { stdin = "Hi\n" })
    assert.equal(0, r.code, r.stderr)
    r = aigc { "logs", "-c" }
    assert.equal(0, r.code)
    assert.equal("", r.stdout)
    assert.matches("^aigc: conversation %x+ has no turns %(a failed or canceled call is none: "
                   .. "%-%-all shows them%)\n$", r.stderr)
    assert.matches("\n%[%a+%] [^\n]*500", aigc({ "logs", "-c", "--all" }).stdout)
    r = aigc { "logs", "-q", "zebra" }
    assert.equal("", r.stdout)
    assert.equal("aigc: no entries\n", r.stderr)
    r = aigc { "logs", "-q", "zebra", "--json" }   -- (JSON: the empty list says it)
    assert.same({ "[]\n", "" }, { r.stdout, r.stderr })
  end)
end)

describe("aigc without $HOME (cron, a service, env -i)", function ()
  it("keeps its files in the user's home, not in the current directory (a config planted there was read)", function ()
    local dir = cli.home()
    local uv = require "luv"
    local pw = uv.os_get_passwd()
    if not (pw and pw.homedir) then cli.rmdir(dir); pending("no password database entry for this user"); return end
    local home = pw.homedir
    -- (only paths printed: nothing is written in the user's home)
    local function path_of (args)
      local cmd = cli.command(args, {}):gsub("^env ", "env -u HOME ", 1):gsub(" %./bin/aigc ", ' "$R"/bin/aigc ', 1)
      cmd = "R=$(pwd) && cd " .. proc.quote(dir) .. " && " .. cmd
      local ok, out = proc.sh(cmd .. " 2>&1")
      assert(ok, out)
      return (out:gsub("\n$", ""))
    end
    assert.equal(home .. "/.local/share/aigc/logs.db", path_of { "logs", "path" })
    assert.equal(home .. "/.config/aigc/templates", path_of { "templates", "path" })
    cli.rmdir(dir)
  end)
end)

local describe_tty = cli.has_tmux() and describe or pending

describe_tty("aigc chat without lua-readline (in a terminal)", function ()
  local srv, home, term
  cli.fixture(_ENV, function (s, h) srv, home = s, h end, {
    after_each = function () if term then term:close(); term = nil end end })

  -- (LUA_INIT runs before bin/aigc: `require "readline"` fails there as where it is not installed)
  local NO_READLINE = 'package.preload.readline = function () error("module readline not found") end'

  it("Ctrl-C cancels a reply and the session goes on; Ctrl-D at the prompt quits, 0", function ()
    -- (50 ms a token: the story has some 150, seconds left to cancel it in)
    term = cli.terminal({ "chat", "-m", "fault:pause=50" },
      { home = home, base_url = srv.base_url, env = { LUA_INIT = NO_READLINE } })
    term:wait_for("Ctrl-D to quit.", 10, true)
    term:wait_prompt()
    term:type("Tell me a story about a robot that learns to paint")
    term:keys("Enter")
    term:wait_for("Once upon a time", 10, true)
    term:keys("C-c")
    term:wait_for("[canceled]", 10, true)
    wait_until(function () return srv:stats().open_now == 0 end, "the canceled request to close")
    term:wait_prompt()
    term:type("What is the capital of France?")
    term:keys("Enter")
    term:wait_for("The capital of France is Paris.", 20, true)
    term:wait_prompt()
    term:keys("C-d")
    wait_until(function () return (term:dead()) end, "aigc chat to end on Ctrl-D")
    local _, code = term:dead()
    assert.is_true(code == nil or code == 0, tostring(code))
    assert.equal(2, srv:stats().requests_total)
  end)
end)
