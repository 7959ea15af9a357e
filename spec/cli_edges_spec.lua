-- The `aigc` command probed at its edges as someone prototyping prompts
-- meets them: endpoints and their keys, config files with mistakes, the
-- REPL's commands given wrong arguments.

local cjson = require "cjson"
local cli = require "cli"
local proc = require "procutil"
local socket = require "socket"

describe("aigc (edges)", function ()
  local srv, home
  local aigc = cli.fixture(_ENV, function (s, h) srv, home = s, h end)

  it("an endpoint whose api_key_env is unset sends no key: never $OPENAI_API_KEY, another provider's", function ()
    cli.write(home .. "/config.lua", string.format(
      '{ endpoints = { work = { base_url = %q, api_key_env = "AIGC_SPEC_WORK_KEY" } } }', srv.base_url))
    local env = { OPENAI_API_KEY = "sk-openai-not-for-work-0123", AZURE_OPENAI_API_KEY = "az-not-for-work-0123" }
    local r = aigc({ "-e", "work", "--no-log", "Hi" }, { env = env })
    assert.equal(0, r.code, r.stderr)
    local h = srv:last().headers
    assert.is_nil(h.authorization)
    assert.is_nil(h["api-key"])
    -- its own variable set: that key
    env.AIGC_SPEC_WORK_KEY = "sk-work-key-0123"
    r = aigc({ "-e", "work", "--no-log", "Hi" }, { env = env })
    assert.equal(0, r.code, r.stderr)
    assert.equal("<redacted len=" .. #"Bearer sk-work-key-0123" .. ">", srv:last().headers.authorization)
    -- (no endpoint: $OPENAI_API_KEY, as before)
    r = aigc({ "--no-log", "Hi" }, { env = { OPENAI_API_KEY = "sk-openai-0123" } })
    assert.equal(0, r.code, r.stderr)
    assert.equal("<redacted len=" .. #"Bearer sk-openai-0123" .. ">", srv:last().headers.authorization)
  end)

  -- (blank, or with a CR from a .env file saved with CRLF: the message named
  -- `opts.api_key`, an option the user never set; the variable now, never its value)
  it("an endpoint whose api_key_env holds a refused key: named by the variable, nothing sent", function ()
    cli.write(home .. "/config.lua", string.format(
      '{ endpoints = { work = { base_url = %q, api_key_env = "AIGC_SPEC_WORK_KEY" } } }', srv.base_url))
    for _, case in ipairs {
      { "    \t   ", "is blank (only spaces or tabs)" },
      { "sk-work-key-0123456789\r", "contains CR, LF or NUL" },
    } do
      local r = aigc({ "-e", "work", "--no-log", "Hi" }, { env = { AIGC_SPEC_WORK_KEY = case[1] } })
      assert.equal(2, r.code, r.stderr)
      assert.equal("cannot make the client: $AIGC_SPEC_WORK_KEY: " .. case[2] .. "\n", r.stderr)
      assert.is_nil(r.stderr:find("sk-work", 1, true))
    end
    assert.equal(0, #srv:requests())
  end)

  it("a JSON config.lua with a mistake: JSON's error at its line, not the Lua reader's at line 1", function ()
    local config = home .. "/config.lua"
    cli.write(config, '{"model": "gpt-4o",\n "log": fals}\n')
    local r = aigc { "Hi" }
    assert.equal(2, r.code)
    assert.equal("bad config file " .. config .. ":2: invalid JSON: invalid literal\n", r.stderr)
    cli.write(config, '{"model": "gpt-4o",\n "log": false,\n}\n')
    r = aigc { "Hi" }
    assert.equal(2, r.code)
    assert.equal("bad config file " .. config .. ":3: invalid JSON: unexpected character '}'\n", r.stderr)
    -- (a Lua table still gets the Lua reader's error)
    cli.write(config, '{ model = "x"\n log = false }\n')
    r = aigc { "Hi" }
    assert.equal(2, r.code)
    assert.equal("bad config file " .. config .. ":2: ',' or '}' expected near 'log'\n", r.stderr)
    assert.equal(0, #srv:requests())
  end)

  it("--judge without --best-of is a usage error (it was ignored: one answer, no judge), nothing sent", function ()
    cli.write(home .. "/cases.jsonl", '{"id": "a", "prompt": "Hi"}\n')
    for _, args in ipairs { { "--judge", "Which is the most vivid?", "Tell me a joke" },
                            { "--vote", "3", "--judge", "Which?", "Hi" },
                            { "run", home .. "/cases.jsonl", "-q", "--judge", "Which is the most vivid?" } } do
      local r = aigc(args)
      assert.equal(2, r.code, r.stderr)
      assert.equal("--judge goes with --best-of\n", r.stderr)
    end
    assert.equal(0, #srv:requests())
  end)

  it("/retry after a failed turn asks that question again, not the answered one before it", function ()
    local r = aigc({ "chat" }, { stdin = table.concat({ "What is 2 + 2?", "/model fault:status=500,should-retry=false",
      "What is the capital of France?", "/model gpt-4o-mini", "/retry", "/retry", "" }, "\n") })
    assert.equal(0, r.code, r.stderr)
    assert.matches("^aigc: http error 500", r.stderr)
    -- (it undid "What is 2 + 2?" and asked it again: its answer was lost)
    assert.equal("2 + 2 = 4.\nmodel fault:status=500,should-retry=false\nmodel gpt-4o-mini\n"
                 .. "The capital of France is Paris.\nThe capital of France is Paris.\n", r.stdout)
    local msgs = cjson.decode(srv:last().body).messages   -- (the second /retry: the answered turn again)
    assert.equal(3, #msgs)
    assert.equal("What is 2 + 2?", msgs[1].content)
    assert.equal("What is the capital of France?", msgs[3].content)
    -- /undo forgets the failed question too (and the turn before it, as ever): nothing to retry
    local sent = #srv:requests()
    r = aigc({ "chat", "--no-log" }, { stdin = table.concat({ "What is 2 + 2?",
      "/model fault:status=500,should-retry=false", "What is the capital of France?", "/model gpt-4o-mini", "/undo",
      "/retry", "" }, "\n") })
    assert.equal(0, r.code, r.stderr)
    assert.matches("undone: What is 2 %+ 2%?\nnothing to retry\n$", r.stdout)
    assert.equal(sent + 2, #srv:requests())
  end)

  it("aigc chat -o n=3, -o tools=...: refused (n=3 was sent: three replies paid, one shown); -t drops them", function ()
    for _, o in ipairs { "n=3", 'tools=[{"type":"function","function":{"name":"f"}}]', "tool_choice=required" } do
      local r = aigc({ "chat", "-o", o }, { stdin = "What is 2 + 2?\n" })
      assert.equal(2, r.code, r.stderr)
      assert.equal("aigc chat: -o " .. o:match("^[^=]+") .. ": not for the chat (it runs no tools, shows one choice, "
                   .. "streams unless --no-stream)\n", r.stderr)
    end
    assert.equal(0, #srv:requests())
    cli.write(home .. "/templates/multi.lua",
              'return { system = "You are terse.", params = { n = 2, temperature = 0 } }')
    local r = aigc({ "chat", "-t", "multi" }, { stdin = "What is 2 + 2?\n" })
    assert.equal(0, r.code, r.stderr)
    assert.equal("2 + 2 = 4.\n", r.stdout)
    assert.equal("aigc: template 'multi': ignored what the chat cannot honour: params n\n", r.stderr)
    local body = cjson.decode(srv:last().body)
    assert.is_nil(body.n)
    assert.equal(0, body.temperature)
  end)

  it("aigc run's report says why cases failed (it said \"failed 3\" and no more; without --out, nowhere)", function ()
    local cases = {}
    for i = 1, 12 do cases[#cases + 1] = '{"id": ' .. i .. ', "prompt": "Hi"}' end
    cases[#cases + 1] = '{"id": "zz"}'
    cli.write(home .. "/cases.jsonl", table.concat(cases, "\n") .. "\n")
    local r = aigc { "run", home .. "/cases.jsonl", "-q", "--no-log", "-m", "fault:status=404" }
    assert.equal(1, r.code, r.stderr)
    local want = {}
    for i = 1, 5 do
      want[i] = "case " .. i .. " failed: http 404: The model does not exist or you do not have access to it.\n"
    end
    assert.matches("\n" .. table.concat(want):gsub("%p", "%%%0") .. "%.%.%. and 8 more failed cases\n$", r.stderr)
    cli.write(home .. "/cases.jsonl", '{"id": "a", "prompt": "Hi"}\n{"id": "b"}\n')
    r = aigc { "run", home .. "/cases.jsonl", "-q", "--no-log" }
    assert.equal(1, r.code, r.stderr)
    assert.matches("\ncase b failed: [^\n]*no messages or prompt[^\n]*\n$", r.stderr)
    assert.is_nil(r.stderr:find("case a", 1, true))
  end)

  it("aigc -o tools=...: a reply that calls a tool prints the call (it printed an empty line)", function ()
    local tools = 'tools=[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object",'
      .. '"properties":{"city":{"type":"string"}}}}}]'
    for _, extra in ipairs { {}, { "--no-stream" } } do
      local args = { "-o", tools, "--no-log", "get_weather(Oslo) please" }
      for _, a in ipairs(extra) do table.insert(args, 1, a) end
      local r = aigc(args)
      assert.equal(0, r.code, r.stderr)
      assert.equal("[tool call: get_weather(Oslo)]\n", r.stdout)
      assert.equal("get_weather", cjson.decode(srv:last().body).tools[1]["function"].name)
    end
    local r = aigc { "-n", "2", "-o", tools, "--no-log", "get_weather(Oslo) please" }
    assert.equal(0, r.code, r.stderr)
    assert.equal("[tool call: get_weather(Oslo)]\n---\n[tool call: get_weather(Oslo)]\n", r.stdout)
    r = aigc { "-o", tools, "--no-log", "What is 2 + 2?" }   -- (text: as before)
    assert.equal("2 + 2 = 4.\n", r.stdout)
  end)

  it("-t: text for a template without {{input}} is an error, not dropped (a while-read loop's stdin too)", function ()
    cli.write(home .. "/templates/capital.lua", 'return { prompt = "What is the capital of {{country}}?" }')
    local want = "template 'capital' has no {{input}}: the prompt's text (arguments or stdin) would be ignored "
      .. "(variables go with -p NAME=VALUE; stdin: </dev/null)\n"
    local r = aigc { "-t", "capital", "-p", "country=France", "and", "of", "Spain?" }
    assert.equal(2, r.code, r.stderr)
    assert.equal(want, r.stderr)
    r = aigc({ "-t", "capital", "-p", "country=France" }, { stdin = "Spain\nItaly\n" })
    assert.equal(2, r.code, r.stderr)
    assert.equal(want, r.stderr)
    assert.equal(0, #srv:requests())
    r = aigc { "-t", "capital", "-p", "country=France" }                      -- (no text: as before)
    assert.equal(0, r.code, r.stderr)
    assert.equal("The capital of France is Paris.\n", r.stdout)
    -- {{input}} given twice: -p input= and the text
    cli.write(home .. "/templates/echo.lua", 'return { prompt = "Repeat after me: {{input}}" }')
    r = aigc({ "-t", "echo", "-p", "input=one" }, { stdin = "two\n" })
    assert.equal(2, r.code, r.stderr)
    assert.equal("-p input=... and the prompt's text (arguments or stdin) both give {{input}}\n", r.stderr)
    r = aigc({ "-t", "echo" }, { stdin = "two\n" })
    assert.equal("two\n", r.stdout)
    assert.equal(2, #srv:requests())
  end)

  it("aigc chat: /save and /load take ~/ as $HOME (it looked for a directory named ~)", function ()
    local r = aigc({ "chat", "--no-log" }, { env = { HOME = home }, stdin = table.concat({ "What is 2 + 2?",
      "/save ~/saved.json", "/reset", "/load ~/saved.json", "/history", "" }, "\n") })
    assert.equal(0, r.code, r.stderr)
    assert.equal("", r.stderr)
    assert.matches("\nsaved to " .. home:gsub("%p", "%%%0") .. "/saved%.json\n", r.stdout)
    assert.matches("\nuser: What is 2 %+ 2%?\nassistant: 2 %+ 2 = 4%.\n$", r.stdout)
    assert.is_not_nil(proc.read_file(home .. "/saved.json"))
  end)

  it("a config's params setting is refused: it was taken and never used (a temperature there did nothing)", function ()
    local config = home .. "/config.lua"
    cli.write(config, "{ params = { temperature = 0 } }\n")
    local r = aigc { "Hi" }
    assert.equal(2, r.code, r.stderr)
    assert.equal(config .. ": unknown setting 'params' (request params go in a template's params, or -o KEY=VALUE)\n",
                 r.stderr)
    assert.equal(0, #srv:requests())
  end)

  it("a config's client.model is the model (it was taken and never sent: gpt-4o-mini went)", function ()
    cli.write(home .. "/config.lua", '{ client = { model = "my-default-model" } }\n')
    local r = aigc { "--no-log", "Hi" }
    assert.equal(0, r.code, r.stderr)
    assert.equal("my-default-model", cjson.decode(srv:last().body).model)
    r = aigc({ "chat", "--no-log" }, { stdin = "Hi\n" })
    assert.equal(0, r.code, r.stderr)
    assert.equal("my-default-model", cjson.decode(srv:last().body).model)
    cli.write(home .. "/config.lua", '{ model = "top", client = { model = "my-default-model" } }\n')
    r = aigc { "--no-log", "Hi" }                                   -- (model = wins)
    assert.equal(0, r.code, r.stderr)
    assert.equal("top", cjson.decode(srv:last().body).model)
  end)

  it("aigc templates show NAME shows a broken template's file, then its error (it showed nothing)", function ()
    local path = home .. "/templates/greet.lua"
    cli.write(path, 'return { prompt = "Hi {{name}}", promt = "typo" }\n')
    local r = aigc { "templates", "show", "greet" }
    assert.equal(1, r.code, r.stderr)
    assert.equal('return { prompt = "Hi {{name}}", promt = "typo" }\n', r.stdout)
    assert.equal("aigc: bad template " .. path .. ": unknown template field 'promt'\n", r.stderr)
    cli.write(path, 'return { prompt = "Hi {{name}}" }\n')
    r = aigc { "templates", "show", "greet" }
    assert.equal(0, r.code, r.stderr)
    assert.equal('return { prompt = "Hi {{name}}" }\n', r.stdout)
    r = aigc { "templates", "show", "nope" }
    assert.equal(2, r.code)
    assert.equal("no template named 'nope' in " .. home .. "/templates\n", r.stderr)
  end)

  it("a template whose params have a key that is not a name: a usage error naming its file (it was exit 70)",
     function ()
    local path = home .. "/templates/listy.lua"
    cli.write(path, 'return { prompt = "Say {{input}}", params = { [1] = 2 } }\n')
    local want = "bad template " .. path .. ": template field 'params': keys must be strings, got number\n"
    local n = #srv:requests()
    for _, r in ipairs { aigc { "--no-log", "-t", "listy", "Hi" },
                         aigc({ "chat", "--no-log", "-t", "listy" }, { stdin = "Hi\n" }) } do
      assert.equal(2, r.code, r.stderr)
      assert.equal(want, r.stderr)   -- (no "internal error", no traceback)
    end
    assert.equal(n, #srv:requests())
  end)

  it("aigc chat: a \"\"\" block is text even when it begins with / (it ran as a command: /quit quit)", function ()
    local r = aigc({ "chat", "--no-log" }, { stdin = table.concat({ '"""', "/etc/hosts: what is this file?",
      "It maps names.", '"""', '"""', "/quit", '"""', "What is 2 + 2?", "" }, "\n") })
    assert.equal(0, r.code, r.stderr)
    assert.equal("", r.stderr)
    local reqs = srv:requests()
    assert.equal(3, #reqs)
    assert.equal("/etc/hosts: what is this file?\nIt maps names.", cjson.decode(reqs[1].body).messages[1].content)
    assert.equal("/quit", cjson.decode(reqs[2].body).messages[3].content)
    assert.equal("What is 2 + 2?", cjson.decode(reqs[3].body).messages[5].content)
  end)

  it("aigc run --out - writes the results to stdout (it made a file named -)", function ()
    assert.is_nil(proc.read_file("-"))   -- (the run's directory is this one)
    finally(function () os.remove("-") end)
    cli.write(home .. "/cases.jsonl", '{"id": "a", "prompt": "What is 2 + 2?"}\n')
    local r = aigc { "run", home .. "/cases.jsonl", "-q", "--no-log", "--out", "-" }
    assert.equal(0, r.code, r.stderr)
    assert.is_nil(proc.read_file("-"))
    local line = cjson.decode(r.stdout:match("^([^\n]+)\n$") or "null")
    assert.equal("a", line and line.id)
    assert.equal("2 + 2 = 4.", line.text)
  end)

  it("aigc run - reads the cases from stdin (No such file or directory: -)", function ()
    local r = aigc({ "run", "-", "-q", "--no-log", "--json" }, { stdin = '{"id": "a", "prompt": "What is 2 + 2?"}\n' })
    assert.equal(0, r.code, r.stderr)
    assert.equal(1, cjson.decode(r.stdout).ok)
    assert.equal(1, #srv:requests())
  end)

  it("a config's endpoint model that is not a model name: a usage error naming the setting, nothing sent", function ()
    local config = home .. "/config.lua"
    local function refused (text, want)
      cli.write(config, text)
      local r = aigc { "--no-log", "Hi" }
      assert.equal(2, r.code, r.stderr)
      assert.equal(config .. ": " .. want .. "\n", r.stderr)
    end
    -- (5 said "aigc: invalid input: params.model: string expected, got number"; "" was sent)
    refused(string.format('{ endpoint = "w", endpoints = { w = { base_url = %q, model = 5 } } }', srv.base_url),
            "endpoints.w.model: a model name (a string) expected, got number")
    refused('{ endpoints = { w = { model = "" } } }', "endpoints.w.model: a model name expected, got an empty string")
    refused('{ model = "" }', "'model' is empty: a model name expected")
    assert.equal(0, #srv:requests())
  end)

  it("-m \"\" (an unset $MODEL) is a usage error in every command that takes -m; it sent the model \"\"", function ()
    cli.write(home .. "/cases.jsonl", '{"id": "a", "prompt": "Hi"}\n')
    for _, args in ipairs { { "-m", "", "Hi" }, { "chat", "-m", "" }, { "run", home .. "/cases.jsonl", "-q", "-m", "" },
                            { "image", "-m", "", "-o", home .. "/x.png", "a cat" },
                            { "speak", "-m", "", "-o", home .. "/x.mp3", "Hi" } } do
      local r = aigc(args, { stdin = "Hi\n" })
      assert.equal(2, r.code, r.stderr)
      assert.matches("\n\nError: %-m: an empty model name\n$", r.stderr)
    end
    assert.equal(0, #srv:requests())
  end)

  it("-t NAME TEXT, a template of a system prompt alone: TEXT is the user message (only the system went)", function ()
    cli.write(home .. "/templates/pirate.lua", 'return { system = "You are a pirate.", params = { temperature = 0 } }')
    local r = aigc { "--no-log", "-t", "pirate", "What is 2 + 2?" }
    assert.equal(0, r.code, r.stderr)
    assert.equal("2 + 2 = 4.\n", r.stdout)
    local body = cjson.decode(srv:last().body)
    assert.same({ { role = "system", content = "You are a pirate." }, { role = "user", content = "What is 2 + 2?" } },
                body.messages)
    assert.equal(0, body.temperature)
    -- no text: a usage error, nothing sent
    r = aigc { "--no-log", "-t", "pirate" }
    assert.equal(2, r.code)
    assert.equal("no prompt: template 'pirate' has no prompt: give one as an argument or on stdin\n", r.stderr)
    assert.equal(1, #srv:requests())
  end)

  it("aigc run -t NAME, a template of a system prompt alone: each case's prompt or messages follow it", function ()
    -- (they were dropped: the system prompt went alone, and every case "passed" on the reply to it)
    cli.write(home .. "/templates/pirate.lua", 'return { system = "You are a pirate." }')
    cli.write(home .. "/cases.jsonl", '{"id": "p", "prompt": "What is 2 + 2?", "assert": {"type": "contains", '
      .. '"value": "4"}}\n{"id": "m", "messages": [{"role": "user", "content": "What is the capital of France?"}]}\n'
      .. '{"id": "none", "country": "Spain"}\n')
    local r = aigc { "run", home .. "/cases.jsonl", "-t", "pirate", "-q", "--no-log", "--out", "-" }
    assert.equal(1, r.code, r.stderr)
    local bodies = {}
    for _, req in ipairs(srv:requests()) do bodies[#bodies + 1] = cjson.decode(req.body).messages end
    table.sort(bodies, function (a, b) return a[2].content < b[2].content end)
    assert.same({ { { role = "system", content = "You are a pirate." }, { role = "user", content = "What is 2 + 2?" } },
                  { { role = "system", content = "You are a pirate." },
                    { role = "user", content = "What is the capital of France?" } } }, bodies)
    assert.matches("\ncase none failed: [^\n]*case none has no messages or prompt, and the template has no prompt\n",
                   r.stderr)
  end)

  it("aigc run -s TEXT, no template: cases of messages run too (each failed: missing variable prompt)", function ()
    cli.write(home .. "/cases.jsonl", '{"id": "p", "prompt": "What is 2 + 2?"}\n'
      .. '{"id": "m", "messages": [{"role": "user", "content": "What is the capital of France?"}]}\n')
    local r = aigc { "run", home .. "/cases.jsonl", "-s", "Be brief.", "-q", "--no-log", "--json" }
    assert.equal(0, r.code, r.stderr)
    assert.equal(2, cjson.decode(r.stdout).ok)
    for _, req in ipairs(srv:requests()) do
      local msgs = cjson.decode(req.body).messages
      assert.same({ role = "system", content = "Be brief." }, msgs[1])
      assert.equal(2, #msgs)
    end
    assert.equal(2, #srv:requests())
  end)

  it("an $AIGC_HOME made on the way to templates/ or to the log's directory is 0700 (it was 0755)", function ()
    local mode = proc.mode
    local fresh = home .. "/fresh"
    local r = aigc({ "templates", "edit", "x" }, { home = fresh, env = { EDITOR = "true" } })
    assert.equal(0, r.code, r.stderr)
    assert.equal("700", mode(fresh))
    assert.equal("700", mode(fresh .. "/templates"))
    local other = home .. "/other"
    r = aigc({ "Hi" }, { home = other, env = { AIGC_LOG_DB = other .. "/logs/logs.db" } })
    assert.equal(0, r.code, r.stderr)
    assert.equal("700", mode(other))
    assert.equal("700", mode(other .. "/logs"))
  end)

  it("aigc chat left without a turn (Ctrl-D at once, /reset, /fork) leaves aigc -c the conversation before", function ()
    -- (the empty session was the log's last conversation: -c continued nothing)
    local r = aigc { "What is the capital of France?" }
    assert.equal(0, r.code, r.stderr)
    for _, input in ipairs { "", "/reset\n", "/fork\n", "/load " .. home .. "/none.json\n" } do
      r = aigc({ "chat" }, { stdin = input })
      assert.equal(0, r.code, r.stderr)
    end
    r = aigc { "-c", "And of Spain?" }
    assert.equal(0, r.code, r.stderr)
    local msgs = cjson.decode(srv:last().body).messages
    assert.equal(3, #msgs)
    assert.equal("What is the capital of France?", msgs[1].content)
  end)
end)

local describe_tty = cli.has_tmux() and describe or pending

describe_tty("aigc (edges, in a terminal)", function ()
  local srv, home, term
  cli.fixture(_ENV, function (s, h) srv, home = s, h end, {
    after_each = function () if term then term:close(); term = nil end end })

  local function wait_until (fn, what)
    local deadline = socket.gettime() + 30   -- (generous: CI runs under valgrind too)
    while not fn() do
      assert(socket.gettime() < deadline, "timed out waiting for " .. what)
      socket.sleep(0.02)
    end
  end

  it("keeps the lines typed in the history when the terminal closes at the prompt (SIGHUP)", function ()
    term = cli.terminal({ "chat" }, { home = home, base_url = srv.base_url })
    term:wait_for("Ctrl-D to quit.", 10, true)
    term:wait_prompt()
    term:type_at_prompt("What is 2 + 2?")
    term:keys("Enter")
    term:wait_for("2 + 2 = 4.", 10, true)
    term:wait_prompt()
    term:type_at_prompt("/cid")
    term:keys("Enter")
    term:wait_for("\nc%x+\n>%s*$")
    local pid = term.pid
    term:close(); term = nil                  -- (the terminal goes: SIGHUP)
    wait_until(function () return not proc.alive(pid) end, "the session to end")
    -- (it was empty: the history was written only when the session ended by Ctrl-D or /quit)
    assert.equal("What is 2 + 2?\n/cid\n", proc.read_file(home .. "/history"))
    -- the next session recalls them, and adds its own lines once
    term = cli.terminal({ "chat" }, { home = home, base_url = srv.base_url })
    term:wait_for("Ctrl-D to quit.", 10, true)
    term:wait_prompt()
    term:keys("Up")
    term:wait_for("> /cid$", 10)
    term:keys("Enter")
    term:wait_for("\nc%x+\n>%s*$")
    term:type_at_prompt("/quit")
    term:keys("Enter")
    wait_until(function () return (term:dead()) end, "/quit")
    assert.equal("What is 2 + 2?\n/cid\n/cid\n/quit\n", proc.read_file(home .. "/history"))
  end)

  it("aigc run's progress line follows a terminal narrowed mid-run (wrapped, its lines piled up)", function ()
    local cases = {}
    for i = 1, 30 do cases[i] = '{"id": ' .. i .. ', "prompt": "Hi"}' end
    cli.write(home .. "/cases.jsonl", table.concat(cases, "\n") .. "\n")
    term = cli.terminal({ "run", home .. "/cases.jsonl", "-m", "fault:delay=150", "--concurrency", "1", "--no-log" },
                        { home = home, base_url = srv.base_url })
    local function done ()
      local n = 0
      for k in term:screen():gmatch("(%d+)/30 ") do n = math.max(n, tonumber(k)) end
      return n
    end
    wait_until(function () return done() >= 1 end, "the first case")
    assert(proc.sh(cli.TMUX .. " resize-window -t " .. term.name .. " -x 50 -y 40"))
    local n0 = done()
    wait_until(function () return done() >= n0 + 4 end, "four more cases")
    local _, screen = proc.sh(cli.TMUX .. " capture-pane -p -t " .. term.name)
    local rows = 0
    for _ in ("\n" .. screen):gmatch("\n%d+/30 ") do rows = rows + 1 end
    assert.is_true(rows <= 2, "progress rows on the screen: " .. rows .. "\n" .. screen)
  end)
end)
