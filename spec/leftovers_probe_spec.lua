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
