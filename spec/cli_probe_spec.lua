-- The `aigc` command used as someone prototyping prompts uses it, mistakes
-- included: strategies given a value the library refuses, a run whose
-- calls raise, --schema files that are no schema, a JSON template with a
-- syntax error, the run's report of what it sent.

local cjson = require "cjson"
local cli = require "cli"
local proc = require "procutil"
local socket = require "socket"

local function lines_of (text)
  local t = {}
  for line in text:gmatch("[^\n]+") do t[#t + 1] = cjson.decode(line) end
  return t
end

describe("aigc (probed as a user would)", function ()
  local srv, home
  local aigc = cli.fixture(_ENV, function (s, h) srv, home = s, h end)

  it("--best-of / --vote: a value the library refuses is one usage line and exit 2, as for a plain prompt", function ()
    local bad_utf8 = "x" .. string.char(255)
    for _, args in ipairs {
      { "--vote", "2", "-o", "temperature=hot", "Hi" },
      { "--best-of", "2", "-o", "temperature=hot", "Hi" },
      { "--best-of", "2", bad_utf8 },
      { "--vote", "2", bad_utf8 },
      { "--best-of", "2", "--judge", bad_utf8, "Hi" },
    } do
      local r = aigc(args)
      local what = table.concat(args, " ")
      assert.equal(2, r.code, what .. ": " .. r.stderr)
      assert.matches("^aigc: invalid input: [^\n]+\n$", r.stderr, 1, what)
      if args[3] == "-o" then   -- (named as typed: it was "spec.params.temperature")
        assert.equal("aigc: invalid input: -o temperature: number expected, got string\n", r.stderr)
      end
      -- (not "callback error: error in the strategy: /path/prompt.lua:105: ...")
      assert.is_nil(r.stderr:find("strategy", 1, true), r.stderr)
      assert.is_nil(r.stderr:find(".lua:", 1, true), r.stderr)
    end
    -- the plain prompt says the same of the same value
    local plain = aigc { "-o", "temperature=hot", "Hi" }
    assert.equal(2, plain.code)
    assert.matches("-o temperature: number expected, got string", plain.stderr, 1, true)
  end)

  -- A value the library refuses once said "nil" in each case's result line; since
  -- then `aigc run` refuses it before any case is sent (one usage line, exit 2),
  -- with or without a strategy. A program calling aigc.runner with such params
  -- still gets each case's line saying why.
  it("aigc run: a value the library refuses is one usage line before anything is sent; runner says why", function ()
    local cases, out = home .. "/cases.jsonl", home .. "/out.jsonl"
    cli.write(cases, '{"id": "a", "prompt": "Hi"}\n{"id": "b", "prompt": "Hello"}\n')
    for _, strategy in ipairs { {}, { "--vote", "2" } } do
      os.remove(out)
      local args = { "run", cases, "-q", "--out", out, "-o", "temperature=hot" }
      for _, a in ipairs(strategy) do args[#args + 1] = a end
      local r = aigc(args)
      assert.equal(2, r.code, r.stderr)
      assert.equal("aigc run: -o temperature: number expected, got string\n", r.stderr)
      assert.is_nil(proc.read_file(out))
      assert.equal(0, #srv:requests())
    end
    local aigc_lib = require "aigc"
    local client = aigc_lib.client { base_url = srv.url .. "/v1", api_key = "sk-test", max_retries = 0 }
    local summary = assert(aigc_lib.runner.run { client = client, out = out, params = { temperature = "hot" },
      cases = { { id = "a", prompt = "Hi" }, { id = "b", prompt = "Hello" } } })
    client:close()
    assert.equal(2, summary.failed)
    local results = lines_of(proc.read_file(out))
    assert.equal(2, #results)
    for _, res in ipairs(results) do
      assert.is_false(res.ok)
      assert.matches("temperature: number expected, got string", res.error.message, 1, true)
      assert.is_nil(res.error.message:find(".lua:", 1, true), res.error.message)
    end
    assert.equal(0, #srv:requests())
  end)

  it("aigc run --judge with text that is not UTF-8: a usage error naming --judge, nothing sent", function ()
    local cases = home .. "/cases.jsonl"
    cli.write(cases, '{"id": "a", "prompt": "Hi"}\n')
    local r = aigc { "run", cases, "-q", "--best-of", "2", "--judge", "bad " .. string.char(255) }
    assert.equal(2, r.code, r.stderr)
    assert.matches("^%-%-judge: invalid UTF%-8 at byte %d+ of", r.stderr)
    assert.equal(0, #srv:requests())
  end)

  it("--schema: a list is no schema (it was sent, and any reply passed); a file it cannot read is named", function ()
    cli.write(home .. "/list.json", "[1, 2]\n")
    cli.write(home .. "/empty-list.json", "[]\n")
    for _, s in ipairs { home .. "/list.json", home .. "/empty-list.json" } do
      local r = aigc { "--schema", s, "Invent a person." }
      assert.equal(2, r.code, r.stderr)
      assert.equal("--schema: " .. s .. ": a schema is an object, not a list\n", r.stderr)
    end
    for _, s in ipairs { "[1]", "[]" } do
      local r = aigc { "--schema", s, "Invent a person." }
      assert.equal(2, r.code, r.stderr)
      assert.equal("--schema: not a JSON object: " .. s .. "\n", r.stderr)
    end
    -- a missing file, a directory: the file's error, not "cannot read the field '/x/y.json'"
    local r = aigc { "--schema", home .. "/nope.json", "Invent a person." }
    assert.equal(2, r.code, r.stderr)
    assert.equal("--schema: cannot read " .. home .. "/nope.json: No such file or directory\n", r.stderr)
    r = aigc { "--schema", home .. "/templates", "Invent a person." }
    assert.equal(2, r.code, r.stderr)
    assert.matches("^%-%-schema: cannot read [^\n]*templates: Is a directory\n$", r.stderr)
    assert.equal(0, #srv:requests())
    -- the concise form and a schema file still work
    cli.write(home .. "/person.json", '{"type": "object", "properties": {"name": {"type": "string"}}}')
    r = aigc { "--schema", home .. "/person.json", "Invent a person." }
    assert.equal(0, r.code, r.stderr)
    assert.equal("string", type(cjson.decode(r.stdout).name))
    r = aigc { "--schema", "name, bio: see http://example.com/a.b", "Invent a person." }
    assert.equal(0, r.code, r.stderr)
    assert.equal("string", type(cjson.decode(r.stdout).bio))
  end)

  it("a .json template (or --schema file) with a syntax error names its line and JSON's error", function ()
    cli.write(home .. "/templates/bad.json", '{"prompt": "Hi {{name}}",\n "params": {"temperature": }\n}\n')
    local r = aigc { "-t", "bad", "-p", "name=Ada" }
    assert.equal(2, r.code, r.stderr)
    assert.equal("bad template " .. home .. "/templates/bad.json:2: invalid JSON: unexpected character '}'\n",
                 r.stderr)
    cli.write(home .. "/templates/trailing.json", '{"prompt": "Hi"}\n\n}\n')
    r = aigc { "templates", "list" }
    assert.equal(0, r.code, r.stderr)
    assert.matches("trailing.json:3: invalid JSON: trailing characters after JSON value", r.stdout, 1, true)
    cli.write(home .. "/schema.json", '{"type": "object",\n "properties": {"a": {"type": "string"},}}\n')
    r = aigc { "--schema", home .. "/schema.json", "Hi" }
    assert.equal(2, r.code, r.stderr)
    assert.matches("^%-%-schema: [^\n]*schema%.json:2: invalid JSON: ", r.stderr)
    -- a .lua template keeps the Lua reader's message and line
    cli.write(home .. "/templates/badlua.lua", 'return {\n  prompt = "Hi",\n  params = { temperature = 0\n}\n')
    r = aigc { "-t", "badlua" }
    assert.equal(2, r.code, r.stderr)
    assert.matches("badlua.lua:5: ',' or '}' expected", r.stderr, 1, true)
    assert.equal(0, #srv:requests())
  end)

  it("aigc run's report counts the requests it sent (candidates and judges), as its tokens do", function ()
    local cases = home .. "/cases.jsonl"
    cli.write(cases, '{"id": "a", "prompt": "Hi"}\n{"id": "b", "prompt": "Hello"}\n')
    local r = aigc { "run", cases, "-q", "--no-log", "--best-of", "2" }
    assert.equal(0, r.code, r.stderr)
    local sent = #srv:requests()
    assert.is_true(sent > 2)   -- (2 cases: 2 candidates and a judge each)
    assert.matches("; [^;\n]*, " .. sent .. " requests, 0 retries", r.stderr)
  end)

  it("image / speak: -o in no directory, or a directory, is refused before the request (made, then lost)", function ()
    for _, case in ipairs {
      { "image", "a cat", "-o", home .. "/nope/cat.png", "no directory " .. home .. "/nope" },
      { "image", "a cat", "-o", home .. "/templates", "is a directory: give a file name" },
      { "speak", "Halt!", "-o", home .. "/", "is a directory: give a file name" },
      { "speak", "Halt!", "-o", home .. "/nope/line.wav", "no directory " .. home .. "/nope" },
    } do
      local want = table.remove(case)
      local r = aigc(case)
      assert.equal(2, r.code, r.stderr)
      assert.equal("aigc " .. case[1] .. ": -o " .. case[4] .. (want:find("^no") and ": " or " ") .. want .. "\n",
                   r.stderr)
    end
    assert.equal(0, #srv:requests())
    -- a file in an existing directory is written
    local r = aigc { "image", "a cat", "-o", home .. "/cat.png" }
    assert.equal(0, r.code, r.stderr)
    assert.equal(home .. "/cat.png\n", r.stdout)
  end)

  -- `aigc ARGS >/dev/full`: every write fails with ENOSPC, as on a full disk.
  local function to_full_disk (args)
    local err = os.tmpname()
    local cmd = cli.command(args, { home = home, base_url = srv.base_url }) .. " </dev/null >/dev/full 2>" .. err
    local _, how, code = proc.execute3(cmd)
    local stderr = proc.read_file(err) or ""
    os.remove(err)
    return how == "signal" and 128 + code or code, stderr
  end

  local dev_full = io.open("/dev/full", "wb")
  if dev_full then dev_full:close() end
  local it_full = dev_full and it or pending

  it("a reply's terminal escapes reach a terminal as text (^[ ...), a pipe as they are", function ()
    local nasty = "Repeat after me: copied\27]52;c;cm0gLXJmIH4=\7 \27[2J\27[1Aup\rback\194\155x"
    local shown = "copied^[]52;c;cm0gLXJmIH4=^G ^[[2J^[[1Aup^Mback\239\191\189x\n"
    for _, args in ipairs { { nasty }, { "--no-stream", nasty } } do
      local r = aigc(args, { env = { AIGC_FORCE_TTY = "1" } })
      assert.equal(0, r.code, r.stderr)
      assert.equal(shown, r.stdout)
    end
    local r = aigc { nasty }
    assert.equal("copied\27]52;c;cm0gLXJmIH4=\7 \27[2J\27[1Aup\rback\194\155x\n", r.stdout)
  end)

  it("a standard output the parent closed (aigc Hi >&-): exit 1 and one line, the reply not sent elsewhere", function ()
    for _, args in ipairs { { "Hi" }, { "--json", "Hi" } } do
      local err = os.tmpname()
      local cmd = cli.command(args, { home = home, base_url = srv.base_url }) .. " </dev/null >&- 2>" .. err
      local _, how, code = proc.execute3(cmd)
      local stderr = proc.read_file(err) or ""
      os.remove(err)
      assert.same({ "exit", 1 }, { how, code }, table.concat(args, " ") .. ": " .. stderr)
      assert.equal("aigc: cannot write the output: Bad file descriptor\n", stderr)
    end
  end)

  it_full("output that cannot be written (a full disk) fails: exit 1 and one line, not 0 and nothing", function ()
    assert.equal(0, (aigc { "Hi" }).code)   -- (a log entry for `aigc logs`)
    for _, args in ipairs {
      { "Hi" }, { "--json", "Hi" }, { "--no-stream", "Hi" }, { "logs" }, { "logs", "--json" }, { "models" },
      { "--version" }, { "speak", "Halt!", "-o", "-", "-f", "wav" }, { "image", "a cat", "-o", "-" },
    } do
      local code, stderr = to_full_disk(args)
      assert.equal(1, code, table.concat(args, " ") .. ": " .. stderr)
      assert.equal("aigc: cannot write the output: No space left on device\n", stderr)
    end
    -- a usage error keeps its own code and message
    local code, stderr = to_full_disk { "-o", "novalue", "Hi" }
    assert.equal(2, code)
    assert.matches("^%-o expects KEY=VALUE", stderr)
  end)

  it_full("a streamed reply on a full disk: the call is canceled at the first failed write, logged as such (the "
          .. "whole reply was generated, paid for and waited for)", function ()
    local story = "Tell me a story about a robot that learns to paint"
    -- (100 ms between events: the whole story takes 15 s, the old code's wait)
    local code, stderr = to_full_disk { "-m", "fault:pause=100", story }
    assert.equal(1, code, stderr)
    assert.equal("aigc: cannot write the output: No space left on device\n", stderr)
    assert.is_true(srv:last().client_closed)
    local r = aigc { "logs", "--json", "-n", "1" }
    local entry = cjson.decode(r.stdout)[1]
    assert.equal("canceled", entry.status)
    assert.equal(story, entry.prompt)
    local whole = aigc { "--no-log", "--no-stream", story }.stdout
    assert.is_true(#entry.response < #whole - 1, entry.response)
    assert.equal(whole:sub(1, #entry.response), entry.response)
  end)

  it_full("aigc chat on a full disk: the session ends at the first lost output, its streamed reply canceled (each "
          .. "question was sent and its reply streamed whole, to the input's end)", function ()
    local story = "Tell me a story about a robot that learns to paint"
    local input = home .. "/input"
    cli.write(input, story .. "\nRepeat after me: two\n")
    local err = os.tmpname()
    local cmd = cli.command({ "chat", "-m", "fault:pause=100" }, { home = home, base_url = srv.base_url })
    local _, how, code = proc.execute3(cmd .. " <" .. proc.quote(input) .. " >/dev/full 2>" .. err)
    local stderr = proc.read_file(err) or ""
    os.remove(err)
    assert.same({ "exit", 1 }, { how, code }, stderr)
    assert.equal("aigc: cannot write the output: No space left on device\n", stderr)
    assert.equal(1, #srv:requests())   -- (the second question not sent)
    assert.is_true(srv:last().client_closed)
    local entries = cjson.decode(aigc({ "logs", "--json", "-n", "0" }).stdout)
    assert.equal(1, #entries)
    assert.equal("canceled", entries[1].status)
  end)

  it("aigc run: a cases line that is a JSON list is refused naming its line (it ran as a case)", function ()
    local cases = home .. "/cases.jsonl"
    for _, list in ipairs { '[{"id": "a", "prompt": "Hi"}]', "[]" } do
      cli.write(cases, '{"id": "a", "prompt": "Hi"}\n' .. list .. "\n")
      local r = aigc { "run", cases, "-q" }
      assert.equal(2, r.code, r.stderr)
      assert.equal("aigc run: " .. cases .. ":2: not a JSON object (a list)\n", r.stderr)
    end
    cli.write(cases, '{"id": "a", "prompt": "Hi"}\nnull\n')   -- (it said "(userdata)": the decoder's null)
    local r = aigc { "run", cases, "-q" }
    assert.equal(2, r.code, r.stderr)
    assert.equal("aigc run: " .. cases .. ":2: not a JSON object (null)\n", r.stderr)
    assert.equal(0, #srv:requests())
    cli.write(cases, '{"id": "a", "prompt": "Hi"}\n{}\n')   -- (an empty object is a case: it fails, it runs)
    assert.equal(1, (aigc { "run", cases, "-q" }).code)
  end)

  it("a prompt that begins with the word help is sent (it printed the usage); aigc help [CMD]: help", function ()
    local r = aigc { "help", "me", "name", "a", "cat" }
    assert.equal(0, r.code, r.stderr)
    assert.equal(1, #srv:requests())
    assert.equal("help me name a cat", cjson.decode(srv:last().body).messages[1].content)
    r = aigc { "help" }
    assert.equal(0, r.code, r.stderr)
    assert.matches("^Usage: aigc %[", r.stdout)
    r = aigc { "help", "run" }
    assert.equal(0, r.code, r.stderr)
    assert.matches("^Usage: aigc run ", r.stdout)
    assert.equal(1, #srv:requests())
  end)

  it("--schema with -n N prints each choice's parsed reply, a JSON line each (it printed the first only)", function ()
    local r = aigc { "--schema", "name, age int", "-n", "3", "Invent a person." }
    assert.equal(0, r.code, r.stderr)
    local n = 0
    for line in r.stdout:gmatch("[^\n]+") do
      n = n + 1
      local p = cjson.decode(line)
      assert.equal("string", type(p.name))
      assert.equal("number", type(p.age))
    end
    assert.equal(3, n)
    assert.equal(3, cjson.decode(srv:last().body).n)
  end)

  it("aigc templates edit where no template can be made (AIGC_HOME a file): one line, exit 1, no traceback", function ()
    local file = home .. "/not-a-dir"
    cli.write(file, "x")
    local r = aigc({ "templates", "edit", "foo" }, { home = file, env = { EDITOR = "true" } })
    assert.equal(1, r.code, r.stderr)
    assert.equal("aigc: cannot make the template: " .. file .. "/templates/foo.lua: Not a directory\n", r.stderr)
  end)

  it("the help says what the commands do: the log's default place, which results a run skips", function ()
    -- with AIGC_HOME set the log is there (the help named only $AIGC_LOG_DB and ~/.local/share)
    local r = aigc { "logs", "path" }
    assert.equal(home .. "/logs.db\n", r.stdout)
    r = aigc { "--help" }
    assert.matches("$AIGC_HOME/logs.db", r.stdout:gsub("%s+", " "), 1, true)
    -- a failed case runs again on resume (the help said every case with a result was skipped)
    local cases, out = home .. "/cases.jsonl", home .. "/out.jsonl"
    cli.write(cases, '{"id": "a", "prompt": "Hi"}\n{"id": "b", "prompt": "Hi"}\n')
    cli.write(out, '{"id": "a", "ok": true, "text": "Hello", "pass": true}\n'
                   .. '{"id": "b", "ok": false, "error": {"message": "x"}, "pass": false}\n')
    assert.equal(0, (aigc { "run", cases, "-q", "--out", out, "--no-log" }).code)
    assert.equal(1, #srv:requests())   -- (b again, not a)
    r = aigc { "run", "--help" }
    assert.matches("cases with an ok result there are skipped (failed ones run again)", r.stdout:gsub("%s+", " "), 1,
                   true)
  end)

  it("--schema's concise form: a field given twice is refused (it replaced the first)", function ()
    local r = aigc { "--schema", "age int, name, age str", "Invent a person." }
    assert.equal(2, r.code, r.stderr)
    assert.equal("--schema: the field 'age' is given twice\n", r.stderr)
    assert.equal(0, #srv:requests())
  end)

  it("aigc logs on a log that is not there (a mistyped --log-db) says so and makes no file", function ()
    local typo = home .. "/lgos.db"
    local r = aigc { "logs", "--log-db", typo }
    assert.equal(0, r.code, r.stderr)
    assert.equal("", r.stdout)
    assert.equal("aigc: no log at " .. typo .. " (nothing logged there yet)\n", r.stderr)
    r = aigc { "logs", "--log-db", typo, "--json" }
    assert.equal(0, r.code, r.stderr)
    assert.same({}, cjson.decode(r.stdout))
    r = aigc { "logs", "--log-db", typo, "-c" }
    assert.equal(1, r.code, r.stderr)
    assert.equal("aigc: no conversation: no log at " .. typo .. "\n", r.stderr)
    assert.is_nil(io.open(typo, "rb"))
    -- a log that is there is read as before
    assert.equal(0, (aigc { "--log-db", typo, "Hi" }).code)
    r = aigc { "logs", "--log-db", typo, "--json" }
    assert.equal(1, #cjson.decode(r.stdout))
    assert.equal("", r.stderr)
  end)

  local it_tty = cli.has_tmux() and it or pending

  it_tty("aigc run's progress line on a narrow terminal stays one row (it wrapped: stale rows piled up)", function ()
    local cases, out = home .. "/cases.jsonl", home .. "/out.jsonl"
    local lines = {}
    for i = 1, 5 do lines[i] = '{"id": ' .. i .. ', "prompt": "Hi"}' end
    cli.write(cases, table.concat(lines, "\n") .. "\n")
    local name = cli.session_name("probe")
    local cmd = cli.command({ "run", cases, "--out", out, "--no-log" }, { home = home, base_url = srv.base_url })
    local tmux = cli.TMUX .. " "
    assert(cli.new_session("-d -s " .. name .. " -x 50 -y 20 " .. proc.quote(cmd .. "; echo EXIT=$?; sleep 60")))
    local deadline, screen = socket.gettime() + 30, ""
    while not screen:find("EXIT=", 1, true) do
      assert(socket.gettime() < deadline, "the run never ended; the terminal shows:\n" .. screen)
      socket.sleep(0.1)
      local _, s = proc.sh(tmux .. "capture-pane -p -t " .. name)
      screen = s
    end
    proc.sh(tmux .. "kill-session -t " .. name)
    assert.matches("EXIT=0", screen, 1, true)
    -- one row of progress, above the report, within the 50 columns
    local progress = {}
    for row in screen:gmatch("[^\n]+") do
      if row:find("^cases ") then break end
      progress[#progress + 1] = row
    end
    assert.equal(1, #progress, screen)
    assert.matches("^5/5 ", progress[1])
    assert.is_true(#progress[1] < 50, progress[1])
  end)

  -- Runs `aigc ARGS` against a proxy that answers every request 502 with an
  -- ISO-8859-1 page (bytes that are not UTF-8); returns the exit code.
  local function behind_latin1_proxy (args)
    local server = assert(socket.bind("127.0.0.1", 0))
    local _, port = server:getsockname()
    server:settimeout(30)
    local job = cli.background(args, { home = home, base_url = "http://127.0.0.1:" .. port .. "/v1" })
    local c = assert(server:accept())
    c:settimeout(30)
    local len = 0
    while true do
      local line = assert(c:receive("*l"))
      if line == "" then break end
      len = tonumber(line:match("^[Cc]ontent%-[Ll]ength:%s*(%d+)")) or len
    end
    if len > 0 then assert(c:receive(len)) end
    local page = "<html>Erreur: passerelle d" .. string.char(233) .. "faillante</html>"
    c:send("HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html; charset=iso-8859-1\r\nContent-Length: " .. #page
           .. "\r\nConnection: close\r\n\r\n" .. page)
    c:close()
    server:close()
    return job.wait_exit(socket.gettime() + 30)
  end
  local REPAIRED = "passerelle d" .. string.char(239, 191, 189) .. "faillante"

  it("aigc logs --json on a log holding a proxy's Latin-1 error page: U+FFFD there, not a traceback", function ()
    assert.equal(1, behind_latin1_proxy { "-o", "max_retries=0", "Hi" })
    for _, extra in ipairs { {}, { "-q", "Hi" }, { "--source", "cli", "-n", "0" } } do
      local args = { "logs", "--json" }
      for _, a in ipairs(extra) do args[#args + 1] = a end
      local r = aigc(args)
      assert.equal(0, r.code, r.stderr)
      local entries = cjson.decode(r.stdout)
      assert.equal(1, #entries)
      assert.matches(REPAIRED, entries[1].error, 1, true)
    end
  end)

  it("aigc run behind a proxy whose error page is not UTF-8: the case fails with it (it stopped the run)", function ()
    local cases, out = home .. "/cases.jsonl", home .. "/out.jsonl"
    cli.write(cases, '{"id": "a", "prompt": "Hi"}\n')
    assert.equal(1, behind_latin1_proxy { "run", cases, "-q", "--out", out, "--max-attempts", "1", "--no-log" })
    local results = lines_of(proc.read_file(out))
    assert.equal(1, #results)
    assert.is_false(results[1].ok)
    assert.equal(502, results[1].error.status)
    assert.matches(REPAIRED, results[1].error.message, 1, true)
  end)

  it_tty("aigc chat: SIGTERM or SIGHUP during a reply logs the turn as canceled, then ends by it", function ()
    for i, sig in ipairs { { "TERM", 143 }, { "HUP", 129 } } do
      local term = cli.terminal({ "chat", "-m", "fault:pause=30" }, { home = home, base_url = srv.base_url })
      finally(function () term:close() end)
      term:wait_for("Ctrl-D to quit.", 10, true)
      term:wait_prompt()
      term:type_at_prompt("Tell me a story about a robot that learns to paint")
      term:keys("Enter")
      term:wait_for("Once upon a time", 10, true)
      assert.is_true(proc.execute("kill -" .. sig[1] .. " " .. term.pid))
      local deadline = socket.gettime() + 10
      while not term:dead() do
        assert(socket.gettime() < deadline, "aigc chat did not end; the terminal shows:\n" .. term:screen())
        socket.sleep(0.05)
      end
      local _, status = term:dead()
      if status then assert.equal(sig[2], status) end   -- (tmux may take a while to tell it)
      local entries = cjson.decode(aigc({ "logs", "--json", "-n", "0" }).stdout)
      assert.equal(i, #entries)
      assert.equal("canceled", entries[i].status)
      assert.matches("^Once upon a time", entries[i].response)
    end
  end)

  it("aigc chat run with SIGHUP ignored (nohup, stdin a script): a SIGHUP changes nothing", function ()
    local input, out, pidfile = home .. "/in.txt", home .. "/out.txt", home .. "/pid"
    -- (a reply of 23 words, a token each 50 ms apart: about a second to send)
    cli.write(input, "Repeat after me: Once upon a time, a robot in a quiet workshop learned to paint the sunset"
                     .. " it had watched for so long.\n")
    local cmd = cli.command({ "chat", "-m", "fault:pause=50" }, { home = home, base_url = srv.base_url })
    assert(proc.execute("sh -c " .. proc.quote("trap '' HUP; exec " .. cmd .. " <" .. proc.quote(input) .. " >"
                        .. proc.quote(out) .. " 2>&1") .. " >/dev/null 2>&1 & echo $! >" .. proc.quote(pidfile)))
    local deadline = socket.gettime() + 10
    while not (proc.read_file(out) or ""):find("Once upon", 1, true) do
      assert(socket.gettime() < deadline, "no reply")
      socket.sleep(0.02)
    end
    local pid = tonumber(proc.read_file(pidfile))
    assert.is_true(proc.execute("kill -HUP " .. pid))
    assert.equal(1, srv:stats().open_now)   -- (the SIGHUP came while the reply was being sent)
    while proc.alive(pid) do
      assert(socket.gettime() < deadline + 20, "aigc chat did not end")
      socket.sleep(0.05)
    end
    local entries = cjson.decode(aigc({ "logs", "--json" }).stdout)
    assert.equal(1, #entries)
    assert.equal("ok", entries[1].status)   -- (the whole reply: the SIGHUP was ignored)
  end)

  it("-t NAME.lua (the file's name typed) says which name is meant", function ()
    cli.write(home .. "/templates/capital.lua", 'return { prompt = "What is the capital of {{country}}?" }')
    for _, args in ipairs { { "-t", "capital.lua", "-p", "country=France" }, { "templates", "show", "capital.lua" } } do
      local r = aigc(args)
      assert.equal(2, r.code, r.stderr)
      assert.equal("no template named 'capital.lua' in " .. home .. "/templates (its name is 'capital')\n", r.stderr)
    end
    local r = aigc { "-t", "nope.lua" }
    assert.equal("no template named 'nope.lua' in " .. home .. "/templates\n", r.stderr)
    assert.equal(0, #srv:requests())
  end)

  it("'-' is stdin's place in the prompt (it was sent to the model as the word '-', after the text)", function ()
    local r = aigc({ "-" }, { stdin = "Repeat after me: a piped line\n" })
    assert.equal(0, r.code, r.stderr)
    assert.equal("Repeat after me: a piped line", cjson.decode(srv:last().body).messages[1].content)
    r = aigc({ "Summarise", "-", "briefly." }, { stdin = "A document.\n" })
    assert.equal(0, r.code, r.stderr)
    assert.equal("Summarise A document. briefly.", cjson.decode(srv:last().body).messages[1].content)
    r = aigc({ "-" }, { stdin = "" })
    assert.equal(2, r.code, r.stderr)
    assert.matches("no prompt", r.stderr, 1, true)
  end)

  it_tty("aigc - at a terminal reads what is typed up to Ctrl-D (it sent '-' at once)", function ()
    local term = cli.terminal({ "-" }, { home = home, base_url = srv.base_url })
    finally(function () term:close() end)
    local before = #srv:requests()
    term:type("Repeat after me: typed text")
    term:keys("Enter")
    -- (nothing is sent while the terminal is still open for typing)
    local deadline = socket.gettime() + 0.5
    while socket.gettime() < deadline do socket.sleep(0.05) end
    assert.equal(before, #srv:requests())
    term:keys("C-d")
    term:wait_for("\ntyped text", 10, true)
    assert.equal("Repeat after me: typed text", cjson.decode(srv:last().body).messages[1].content)
  end)

  it("aigc ... | head: the reader gone mid-reply cancels the call and logs it, then exit 141 as before", function ()
    local err = os.tmpname()
    finally(function () os.remove(err) end)
    local cmd = cli.command({ "-m", "fault:pause=40", "Tell me a story about a robot that learns to paint" },
                            { home = home, base_url = srv.base_url })
    -- (bash: the status of aigc itself, not of head)
    local status = proc.first_line("bash -c " .. proc.quote(cmd .. " </dev/null 2>" .. err
                                  .. " | head -c 20 >/dev/null; echo ${PIPESTATUS[0]}"))
    assert.equal("141", status:match("%d+"))
    assert.equal("", proc.read_file(err))
    local e = cjson.decode(aigc({ "logs", "--json" }).stdout)[1]
    assert.is_table(e, "the call was not logged")
    assert.equal("canceled", e.status)
    assert.matches("^Once upon a time", e.response)
  end)
end)
