-- What the `aigc` command writes (stdout, stderr) holds no form of the
-- API key, whatever the server sends back: a successful reply's headers
-- (`x-echo: sk-...`, `x-request-id: req_sk-...`, printed by --json), its
-- text, a tool call's arguments, a key streamed a few characters a time,
-- an error. The bundled server's `echo-key` fault echoes the request's
-- key; a scripted server sends exact replies. Every output is searched
-- for the key, its first and last 12 bytes, and its JSON-escaped and
-- percent-encoded forms.

local cjson = require "cjson"
local cli = require "cli"
local scripted = require "scripted"

-- (a "/" and a "+": the JSON-escaped and percent-encoded forms differ from the key)
local KEY = "sk-proj-Zx81/QwErTy7+uIoPaSdFgHjKl3ZxCvBnM0qWeRtYu"

local FORMS = {
  KEY, KEY:sub(1, 12), KEY:sub(-12),
  cjson.encode(KEY):sub(2, -2),                                          -- sk-proj-Zx81\/QwErTy7+...
  (KEY:gsub("[/+]", function (c) return ("%%%02X"):format(c:byte()) end)),   -- sk-proj-Zx81%2FQwErTy7%2B...
}

-- The forms of the key found in `text` (by their index in FORMS).
local function leaked (text)
  local found = {}
  for i, form in ipairs(FORMS) do
    if text:find(form, 1, true) then found[#found + 1] = i end
  end
  return found
end

local function outputs (r) return r.stdout .. "\n" .. r.stderr end

describe("the aigc command's outputs and a key the server echoes", function ()
  local srv, home
  local aigc = cli.fixture(_ENV, function (s, h) srv, home = s, h end)
  local env = { OPENAI_API_KEY = KEY }

  -- `aigc ARGS` exits 0, its stdout shows `want`, and no form of the key is in its outputs.
  local function shows_redacted (args, want)
    local r = aigc(args, { env = env })
    assert.equal(0, r.code, r.stderr)
    assert.matches(want, r.stdout, 1, true)
    assert.same({}, leaked(outputs(r)), table.concat(args, " "))
  end

  it("--json: a reply whose headers, request id and text echo the key prints none of it", function ()
    local r = aigc({ "--json", "-m", "fault:echo-key", "Hi" }, { env = env })
    assert.equal(0, r.code, r.stderr)
    local res = cjson.decode(r.stdout)
    assert.equal("req_[redacted]", res.request_id)
    assert.matches("[redacted]", res.headers["x-echo"], 1, true)
    assert.matches("Your API key is [redacted].", res.text, 1, true)
    assert.same({}, leaked(outputs(r)))
  end)

  it("--no-stream and -n 2: the reply's text that echoes the key prints none of it", function ()
    for _, args in ipairs {
      { "--no-stream", "-m", "fault:echo-key", "Hi" },
      { "-n", "2", "-m", "fault:echo-key", "Hi" },
    } do
      shows_redacted(args, "Your API key is [redacted].")
    end
  end)

  it("an error or a stream's error event that echoes the key: stderr shows none of it", function ()
    for _, model in ipairs { "fault:status=401,echo-key", "fault:echo-key" } do
      local r = aigc({ "-m", model, "Hi" }, { env = env })
      assert.equal(1, r.code, r.stderr)
      assert.matches("[redacted]", r.stderr, 1, true)
      assert.same({}, leaked(outputs(r)), model)
    end
  end)

  it("a key streamed a few characters a time, and in a tool call's arguments, is not printed", function ()
    local pieces = {}
    for i = 1, #KEY, 5 do pieces[#pieces + 1] = { content = KEY:sub(i, i + 4) } end
    table.insert(pieces, 1, { role = "assistant", content = "Your key is " })
    pieces[#pieces + 1] = { content = ". Bye" }
    local replies = scripted.start {
      scripted.sse(pieces, "stop"),
      scripted.sse(pieces, "stop"),
      scripted.chat { tool_calls = { scripted.call("c1", "lookup", '{"key":"' .. KEY .. '"}') } },
    }
    local streamed = aigc({ "--no-log", "-m", "m", "Hi" }, { env = env, base_url = replies.base_url })
    local chat = aigc({ "chat", "--no-log", "-m", "m" }, { env = env, base_url = replies.base_url, stdin = "Hi\n" })
    local called = aigc({ "--no-log", "--no-stream", "-m", "m", "-o",
                          'tools=[{"type":"function","function":{"name":"lookup","parameters":{}}}]', "Hi" },
                        { env = env, base_url = replies.base_url })
    replies.finish()
    assert.equal(0, streamed.code, streamed.stderr)
    assert.equal("Your key is [redacted]. Bye\n", streamed.stdout)
    assert.same({}, leaked(outputs(streamed)))
    assert.equal(0, chat.code, chat.stderr)
    assert.matches("Your key is [redacted]. Bye\n", chat.stdout, 1, true)
    assert.same({}, leaked(outputs(chat)))
    assert.equal(0, called.code, called.stderr)
    assert.equal('[tool call: lookup({"key":"[redacted]"})]\n', called.stdout)
    assert.same({}, leaked(outputs(called)))
  end)

  it("aigc logs show and logs --json of those calls show none of it", function ()
    assert.equal(0, aigc({ "--no-stream", "-m", "fault:echo-key", "Hi" }, { env = env }).code)
    for _, args in ipairs { { "logs", "show", "1" }, { "logs", "--json", "-n", "0" }, { "logs" } } do
      shows_redacted(args, "[redacted]")
    end
  end)

  it("aigc run's results file, report and --json, direct and --batch, show none of it", function ()
    local cases = home .. "/cases.jsonl"
    cli.write(cases, '{"id":"a","prompt":"Hi"}\n')
    for _, model in ipairs { "fault:echo-key", "fault:status=401,echo-key" } do
      local failed = model:find("status", 1, true) ~= nil
      for _, extra in ipairs { {}, { "--batch" }, { "--json" } } do
        local out = home .. "/out" .. #extra .. (extra[1] or "") .. (failed and "-failed" or "") .. ".jsonl"
        local args = { "run", cases, "-m", model, "--max-attempts", "1", "--out", out }
        for _, a in ipairs(extra) do args[#args + 1] = a end
        local r = aigc(args, { env = env })
        local what = model .. " " .. table.concat(extra, " ")
        assert.equal(failed and 1 or 0, r.code, what .. ": " .. r.stderr)
        local text = cli.read(out)
        if extra[1] ~= "--batch" then   -- (the bundled server's batches echo no key: their lines carry none)
          assert.matches(failed and "Incorrect API key provided: [redacted]" or "Your API key is [redacted].",
                         text, 1, true)
        end
        assert.same({}, leaked(text .. outputs(r)), what)
      end
    end
  end)

  ;(cli.has_tmux() and it or pending)("the REPL's screen and a saved conversation show none of it", function ()
    local saved = home .. "/saved.json"
    local term = cli.terminal({ "chat", "--no-stream", "-m", "fault:echo-key" },
                              { home = home, base_url = srv.base_url, env = env })
    finally(function () term:close() end)
    term:wait_prompt(30)
    term:type_at_prompt("Hi")
    term:keys("Enter")
    term:wait_for("Your API key is [redacted].", 30, true)
    term:wait_prompt(30)
    term:type_at_prompt("/save " .. saved)
    term:keys("Enter")
    term:wait_for("saved", 30, true)
    term:wait_prompt(30)
    term:type_at_prompt("/history")
    term:keys("Enter")
    local screen = term:wait_prompt(30)
    assert.same({}, leaked(screen), screen)
    local text = cli.read(saved)
    assert.matches("[redacted]", text, 1, true)
    assert.same({}, leaked(text))
  end)
end)
