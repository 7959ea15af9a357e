-- Small defects found by other helpers: CJK search in the prompt log,
-- loading without the `debug` library, the Batch API's error lines and
-- poll interval, a download's per-hop log lines.

local cli = require "cli"
local promptlog = require "aigc.promptlog"

-- "日本語のテキスト" (Japanese text), "日本語", "テキスト", "中文" in UTF-8,
-- as decimal escapes (the specs stay in the Lua 5.1 subset).
local NIHONGO_TEXT = "\230\151\165\230\156\172\232\170\158\227\129\174\227\131\134\227\130\173\227\130\185\227\131\136"
local NIHONGO = "\230\151\165\230\156\172\232\170\158"
local TEKISUTO = "\227\131\134\227\130\173\227\130\185\227\131\136"
local CHUUBUN = "\228\184\173\230\150\135"

describe("prompt log search of text without spaces (CJK)", function ()
  local dir, log
  before_each(function ()
    dir = cli.home()
    log = assert(promptlog.open(dir .. "/logs.db"))
  end)
  after_each(function ()
    log:close()
    cli.rmdir(dir)
  end)

  local function call (prompt, reply)
    return assert(log:record_call({ model = "m1", messages = { { role = "user", content = prompt } } },
      { text = reply, choices = { { finish_reason = "stop", message = { content = reply } } } }))
  end

  local function prompts (rows)
    local t = {}
    for i, r in ipairs(assert(rows)) do t[i] = r.prompt end
    return t
  end

  it("a CJK word inside a longer run of CJK text is found; ASCII words search as before", function ()
    call("Translate: " .. NIHONGO_TEXT, "OK, the capital")
    call("The capital of France?", "Paris.")
    assert.same({ "Translate: " .. NIHONGO_TEXT }, prompts(log:list { query = NIHONGO, n = 0 }))
    assert.same({ "Translate: " .. NIHONGO_TEXT }, prompts(log:list { query = TEKISUTO, n = 0 }))
    assert.same({ "Translate: " .. NIHONGO_TEXT }, prompts(log:list { query = NIHONGO_TEXT, n = 0 }))
    -- every word must match: ASCII words through FTS5, CJK ones as substrings
    assert.same({ "Translate: " .. NIHONGO_TEXT }, prompts(log:list { query = "capital " .. NIHONGO, n = 0 }))
    assert.same({}, prompts(log:list { query = "paris " .. NIHONGO, n = 0 }))
    assert.same({}, prompts(log:list { query = CHUUBUN, n = 0 }))
    -- ASCII: still whole words, case-folded (FTS5), not substrings
    assert.same({ "The capital of France?", "Translate: " .. NIHONGO_TEXT },
                prompts(log:list { query = "CAPITAL", n = 0 }))
    assert.same({}, prompts(log:list { query = "capit", n = 0 }))
    -- LIKE's wildcards in a non-ASCII word are plain text
    call("x" .. CHUUBUN .. "y", "z")
    assert.same({}, prompts(log:list { query = "%" .. CHUUBUN .. "_", n = 0 }))
    assert.same({ "x" .. CHUUBUN .. "y" }, prompts(log:list { query = "x" .. CHUUBUN .. "y", n = 0 }))
  end)

  it("`aigc logs -q` finds a CJK word in a logged prompt", function ()
    call(NIHONGO_TEXT .. " please", "done")
    call("other", "thing")
    log:close()
    local r = cli.run({ "logs", "-n", "0", "-q", NIHONGO }, { env = { AIGC_LOG_DB = dir .. "/logs.db" }, home = dir })
    assert.equal(0, r.code, r.stderr)
    assert.matches(NIHONGO_TEXT, r.stdout, 1, true)
    assert.not_matches("other", r.stdout, 1, true)
    log = assert(promptlog.open(dir .. "/logs.db"))
  end)
end)

-- README, "Defold and other LuaJIT engines": an engine may remove `debug`
-- from its scripts' Lua; aigc loaded reading it (debug.getinfo at load
-- time: "attempt to index global 'debug'").
describe("aigc in a Lua without the debug library", function ()
  local devserver = require "devserver"
  local luachild = require "luachild"
  local srv
  setup(function () srv = devserver.start {} end)
  teardown(function () srv:stop() end)

  it("loads, calls, and reports misuse, task and tool errors (without tracebacks)", function ()
    local r = luachild.run([[
      debug = nil
      package.loaded.debug = nil
      local aigc = require "aigc"
      local c = aigc.client { base_url = arg[1] }
      local res, err = c:chat "Hi"
      print("chat", res ~= nil and type(res.text), err)
      local ok, merr = pcall(c.chat, c, 42)
      print("misuse", ok, merr)
      c:spawn(function () error("boom in task", 0) end)
      for _ = 1, 50 do
        local _, errs = c:step(0.1)
        if errs then print("task", errs[1].kind, errs[1].message, errs[1].traceback) break end
      end
      local ts = aigc.tools { { name = "door", fn = function () error("the door is locked", 0) end } }
      local content, rec = ts:call { id = "c1", ["function"] = { name = "door", arguments = "{}" } }
      print("tool", content, rec.error, rec.traceback)
    ]], { args = { srv.base_url } })
    assert.equal(0, r.status, r.stderr)
    local lines = {}
    for l in r.stdout:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.equal("chat\tstring\tnil", lines[1], r.stdout)
    assert.equal("misuse\tfalse\tbad argument #1 to 'chat' (table or string expected, got number)", lines[2])
    assert.equal("task\tcallback\terror in a task started with client:spawn: boom in task\tboom in task", lines[3])
    assert.equal('tool\t{"error":"the door is locked"}\tthe door is locked\tthe door is locked', lines[4])
  end)
end)

describe("aigc.batch: error lines, poll interval, a custom_id on two lines", function ()
  local aigc = require "aigc"
  local batch = require "aigc.batch"
  local KEY = "sk-proj-LEFTOVERS0123456789abcdefXYZ"
  local client
  before_each(function () client = aigc.client { base_url = "http://127.0.0.1:9/v1", api_key = KEY } end)
  after_each(function () client:close() end)

  -- The client's files API answers with `files[id]` (no server).
  local function serve_files (files)
    client.files_content = function (_, id, opts)
      opts.to(assert(files[id], id))
      return {}
    end
  end
  local function line (id, status, body, err)
    local response = status and ('{"status_code":' .. status .. ',"request_id":"r-' .. id .. '","body":' .. body .. '}')
    return '{"custom_id":"' .. id .. '","response":' .. (response or "null") .. ',"error":' .. (err or "null") .. '}\n'
  end
  local OK = '{"choices":[{"index":0,"message":{"role":"assistant","content":"Paris"},"finish_reason":"stop"}]}'

  it("an error line's error and a failed line's body are scrubbed of the key", function ()
    serve_files {
      out = line("a", 200, OK) .. line("b", 401, '{"error":{"message":"Incorrect API key provided: ' .. KEY .. '"}}'),
      err = line("c", nil, nil, '{"code":"invalid_api_key","message":"bad key ' .. KEY .. '"}'),
    }
    local results = assert(batch.results(client, { id = "x", status = "completed",
                                                    output_file_id = "out", error_file_id = "err" }))
    assert.is_true(results.a.ok)
    assert.is_false(results.b.ok)
    assert.equal("Incorrect API key provided: [redacted]", results.b.body.error.message)
    assert.is_false(results.c.ok)
    assert.equal("bad key [redacted]", results.c.error.message)
    assert.equal("invalid_api_key", results.c.error.code)
  end)

  it("a custom_id in both files: the line that succeeded stays, else the first (the output file's)", function ()
    serve_files {
      out = line("a", 200, OK) .. line("b", 500, '{"error":{"message":"first"}}') .. line("c", 500, '{}'),
      err = line("a", nil, nil, '{"code":"x","message":"late error"}')
            .. line("b", nil, nil, '{"code":"y","message":"second"}')
            .. line("c", 200, OK),
    }
    local results = assert(batch.results(client, { id = "x", status = "completed",
                                                    output_file_id = "out", error_file_id = "err" }))
    assert.is_true(results.a.ok)
    assert.equal("Paris", results.a.body.choices[1].message.content)
    assert.is_nil(results.a.error)
    assert.is_false(results.b.ok)
    assert.equal("first", results.b.body.error.message)
    assert.is_true(results.c.ok)
  end)

  it("wait with interval = 0 pauses between polls (it polled in a loop with no pause)", function ()
    local polls, pauses = 0, {}
    client.request = function ()
      polls = polls + 1
      return { id = "b1", status = polls < 4 and "in_progress" or "completed" }
    end
    client.sleep = function (_, s) pauses[#pauses + 1] = s end
    local b = assert(batch.wait(client, "b1", { interval = 0 }))
    assert.equal("completed", b.status)
    assert.equal(3, #pauses)
    for _, s in ipairs(pauses) do assert.equal(batch.MIN_POLL_INTERVAL, s) end
    assert.is_true(batch.MIN_POLL_INTERVAL > 0)
  end)
end)

-- A download follows redirects hop by hop, each hop a request of its own;
-- the URLs' credentials (a signed URL's `sig=`) were scrubbed from the
-- download's error, but a hop's own log line ("warn: GET /signed -> http
-- error 403 ...: Signature ... has expired") was written with them whole.
describe("a download's per-hop log lines", function ()
  local aigc = require "aigc"
  local oneshot = require "oneshot"
  local SIG = "Qz7Wx9Lk2Rt5Yp8Mn4Bv6Cx1"
  -- /start: a 302 to /signed?sig=SIG; /signed: a 403 whose message echoes SIG
  local SERVER = [[
    local oneshot = require "oneshot"
    local sig = arg[1]
    local server = oneshot.listen()
    for i = 1, 2 do
      local c = oneshot.read_request(server)
      if i == 1 then
        c:send("HTTP/1.1 302 Found\r\nLocation: /signed?sig=" .. sig .. "\r\nContent-Length: 0\r\n"
               .. "Connection: close\r\n\r\n")
      else
        local body = '{"error":{"message":"Signature ' .. sig .. ' has expired"}}'
        c:send("HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: " .. #body
               .. "\r\nConnection: close\r\n\r\n" .. body)
      end
      c:close()
    end
  ]]

  it("a server echoing the signature of the URL it was redirected to: not in the hop's log line", function ()
    local port, child = oneshot.start(SERVER, { SIG })
    local lines = {}
    local c = aigc.client { base_url = "http://127.0.0.1:9/v1", max_retries = 0, timeout = 30,
                            log = function (level, msg) lines[#lines + 1] = level .. ": " .. msg end }
    local res, err = c:download("http://127.0.0.1:" .. port .. "/start")
    c:close()
    child:wait(10)
    assert.is_nil(res)
    assert.equal(403, err.status)
    assert.equal("Signature [redacted] has expired", err.message)
    local text = table.concat(lines, "\n")
    assert.matches("warn: GET /signed %-> http error 403 after [%d.]+ s: Signature %[redacted%] has expired", text)
    assert.is_nil(text:find(SIG, 1, true), text)
  end)
end)

describe("aigc.compat without the debug library", function ()
  it("getmetatable: a protected metatable that is not a table reads as none (check.lua indexes it)", function ()
    local luachild = require "luachild"
    local r = luachild.run([[
      debug = nil
      package.loaded.debug = nil
      require "aigc"
      local compat = require "aigc.compat"
      local t = setmetatable({}, { __metatable = false })
      print(compat.getmetatable(t), compat.getmetatable(setmetatable({}, { __metatable = "locked" })))
      local plain = setmetatable({ a = 1 }, { __index = {} })
      print(compat.getmetatable(plain) == getmetatable(plain))
    ]])
    assert.equal(0, r.status, r.stderr)
    assert.equal("nil\tnil\ntrue\n", r.stdout)
  end)
end)
