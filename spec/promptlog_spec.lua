-- aigc.promptlog: the SQLite schema, recording calls, full-text search,
-- conversations as chains of replies, and no secret ever written.

local aigc = require "aigc"
local cli = require "cli"
local devserver = require "devserver"
local proc = require "procutil"
local promptlog = require "aigc.promptlog"

describe("aigc.promptlog", function ()
  local dir, log
  before_each(function ()
    dir = cli.home()
    log = assert(promptlog.open(dir .. "/sub/dir/logs.db"))   -- directories are made
  end)
  after_each(function ()
    log:close()
    cli.rmdir(dir)
  end)

  local function call (prompt, reply, info, extra_params)
    local params = { model = "m1", messages = { { role = "user", content = prompt } } }
    for k, v in pairs(extra_params or {}) do params[k] = v end
    return assert(log:record_call(params, { text = reply, model = "m1-2024", request_id = "req_1",
      usage = { prompt_tokens = 3, completion_tokens = 5, total_tokens = 8 },
      choices = { { finish_reason = "stop", message = { content = reply } } } }, nil, info))
  end

  it("creates the documented schema, version 2, with FTS5 and the blobs", function ()
    if not proc.sh("command -v sqlite3 >/dev/null") then pending("no sqlite3 command") return end
    local ok, out = proc.sh("sqlite3 " .. proc.quote(dir .. "/sub/dir/logs.db") .. " 'PRAGMA user_version' '.tables'")
    assert.is_true(ok, out)
    assert.matches("^2\n", out)
    for _, t in ipairs { "conversations", "responses", "responses_fts", "blobs" } do assert.matches(t, out) end
  end)

  it("records a call: prompt, system, reply, model, params, usage, latency, status", function ()
    local t0 = aigc.now()
    local params = { model = "m1", temperature = 0, max_tokens = 9, stream = function () end,
                     headers = { Authorization = "Bearer sk-never-logged-123" }, on_done = print,
                     messages = { { role = "system", content = "Be brief." }, { role = "user", content = "Hi" } } }
    local id = assert(log:record_call(params, { text = "Hello!", model = "m1-x", usage = { prompt_tokens = 3,
      completion_tokens = 2, total_tokens = 5 }, choices = { { finish_reason = "stop" } }, request_id = "req_9" },
      nil, { started = t0, source = "test", template = "greet", extra = { case = 7 } }))
    local row = log:get(id)
    assert.equal("Hi", row.prompt)
    assert.equal("Be brief.", row.system)
    assert.equal("Hello!", row.response)
    assert.equal("m1-x", row.model)
    assert.same({ model = "m1", temperature = 0, max_tokens = 9 }, row.params)
    assert.equal(3, row.prompt_tokens)
    assert.equal(2, row.completion_tokens)
    assert.equal(5, row.total_tokens)
    assert.is_true(row.latency_ms >= 0)
    assert.equal("ok", row.status)
    assert.equal("stop", row.finish_reason)
    assert.equal("req_9", row.request_id)
    assert.equal("test", row.source)
    assert.equal("greet", row.template)
    assert.same({ case = 7 }, row.extra)
    assert.is_nil(row.context)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", row.created_at)
  end)

  -- (a per-user key in extra_body -- LiteLLM's client-side credentials --
  -- was written to the file by a record_call with no client's scrub of the
  -- call: only a top-level key-like param was redacted)
  it("redacts key-like params at any depth of a param's table", function ()
    local user_key = "sk-user-Vb7Nm3Qw9Er5Ty1Ui8Op2As"
    local params = { model = "m1", messages = { { role = "user", content = "Hi" } },
                     extra_body = { user_config = { model_list = { { litellm_params = { api_key = user_key,
                                                                                       api_base = "http://x" } } } },
                                    max_tokens = 7 } }
    local id = assert(log:record_call(params, { text = "Hello!" }, nil, {}))
    local row = log:get(id)
    local lp = row.params.extra_body.user_config.model_list[1].litellm_params
    assert.is_true(lp.api_key == "[redacted]")   -- (compared, not printed)
    assert.equal("http://x", lp.api_base)
    assert.equal(7, row.params.extra_body.max_tokens)
    assert.is_true(params.extra_body.user_config.model_list[1].litellm_params.api_key == user_key)   -- (not changed)
    log:close()
    local f = assert(io.open(dir .. "/sub/dir/logs.db", "rb"))
    local bytes = f:read("*a")
    f:close()
    assert.is_nil(bytes:find(user_key:sub(3, 14), 1, true))
    log = assert(promptlog.open(dir .. "/sub/dir/logs.db"))
  end)

  it("records a failure with its kind, message and partial text", function ()
    local res, e = aigc.client({ base_url = "http://127.0.0.1:1/v1", max_retries = 0 }):chat "Hi"
    assert.is_nil(res)
    local id = assert(log:record_call("Hi", nil, e, { partial = "Hel" }))
    local row = log:get(id)
    assert.equal("connect", row.status)
    assert.matches("connect error", row.error)
    assert.equal("Hel", row.response)
  end)

  it("lists newest first, searches with FTS5 (every word; punctuation is text)", function ()
    call("What is the capital of France?", "Paris.")
    call("What is 2 + 2?", "4.")
    call("Quote: \"don't\" (panic) OR NOT", "Fine.")
    local rows = log:list { n = 0 }
    assert.equal(3, #rows)
    assert.is_true(rows[1].id > rows[2].id)
    assert.equal(2, #log:list { n = 2 })
    assert.equal(3, #log:list())                          -- default 3
    assert.equal("What is the capital of France?", log:list({ query = "capital" })[1].prompt)
    assert.equal(1, #log:list { query = "france paris" })
    assert.equal(0, #log:list { query = "france madrid" })
    assert.equal(1, #log:list { query = "\"don't\" (panic) OR NOT" })
    assert.equal(3, log:count())
  end)

  it("keeps conversations as chains: leaf, undo, fork, context", function ()
    local cid = "cabc123"
    local a = call("one", "1", { conversation_id = cid, leaf = true })
    local b = call("two", "2", { conversation_id = cid, parent_id = a, leaf = true })
    local conv = assert(log:conversation("cabc"))          -- a unique prefix
    assert.equal(cid, conv.id)
    assert.equal(b, conv.leaf_id)
    assert.equal(2, conv.turns)
    assert.same({ "one", "1", "two", "2" }, { conv.messages[1].content, conv.messages[2].content,
                                               conv.messages[3].content, conv.messages[4].content })
    assert.equal("one", conv.name)
    -- undo: the leaf goes back; a retry is a sibling
    assert(log:set_leaf(cid, a))
    local b2 = call("two again", "2!", { conversation_id = cid, parent_id = a, leaf = true })
    conv = log:conversation(cid)
    assert.equal(b2, conv.leaf_id)
    assert.equal("two again", conv.messages[3].content)
    assert.equal(4, #conv.messages)
    -- a failed call never becomes the leaf
    local failure = require("aigc.core").error { kind = "http", status = 500, message = "boom" }
    assert(log:record_call("three", nil, failure, { conversation_id = cid, parent_id = b2, leaf = true }))
    assert.equal(b2, log:conversation(cid).leaf_id)
    -- a first turn after a loaded history keeps that history as its context
    local params = { model = "m", messages = { { role = "system", content = "S" }, { role = "user", content = "u1" },
                     { role = "assistant", content = "a1" }, { role = "user", content = "u2" } } }
    local c = assert(log:record_call(params, { text = "a2" }, nil, { conversation_id = "cother", leaf = true }))
    conv = log:conversation("cother")
    assert.equal(c, conv.leaf_id)
    assert.same({ "S", "u1", "a1", "u2", "a2" }, { conv.messages[1].content, conv.messages[2].content,
      conv.messages[3].content, conv.messages[4].content, conv.messages[5].content })
    assert.equal("cother", log:last_conversation())
    local none, err = log:conversation("czzz")
    assert.is_nil(none)
    assert.matches("no conversation 'czzz'", err.message)
    call("x", "y", { conversation_id = "cab999", leaf = true })
    none, err = log:conversation("cab")
    assert.is_nil(none)
    assert.matches("ambiguous", err.message)
  end)

  it("stores any bytes: quotes, NUL, invalid UTF-8", function ()
    local s = "it's a \"test\"\0with NUL and \255\254 bytes; DROP TABLE responses; --"
    local id = call(s, s)
    local row = log:get(id)
    assert.equal(s, row.prompt)
    assert.equal(s, row.response)
  end)

  it("keeps an extra with a string that is not UTF-8: its bad bytes as U+FFFD, the rest as given", function ()
    -- (JSON cannot carry the bytes: the whole extra was dropped, silently, for one Latin-1 byte)
    local id = assert(log:record { prompt = "p", response = "r", status = "ok",
      extra = { npc = "Jos\233", mood = "calm", ["k\255"] = { 1, 2 }, n = 3 } })
    local row = log:get(id)
    assert.same({ npc = "Jos\239\191\189", mood = "calm", ["k\239\191\189"] = { 1, 2 }, n = 3 }, row.extra)
    -- (a call's context and params alike: a failed call's messages, logged)
    id = assert(log:record_call({ model = "m", user = "caf\233",
      messages = { { role = "user", content = "old\233" }, { role = "assistant", content = "a" },
                   { role = "user", content = "now" } } },
      nil, require("aigc.core").error { kind = "parse", message = "x" }))
    row = log:get(id)
    assert.equal("caf\239\191\189", row.params.user)
    assert.equal("old\239\191\189", row.context[1].content)
  end)

  it("keeps an extra holding a value JSON cannot carry: that value as a string naming its type, the rest as given",
     function ()
    -- (a function or a userdata anywhere in it dropped the whole extra, silently)
    local id = assert(log:record { prompt = "p", response = "r", status = "ok",
      extra = { mood = "calm", on_done = print, file = io.stdout,
                deep = { n = 3, co = coroutine.create(function () end) },
                npc = "Jos\233", none = require("aigc.core").null } })
    local row = log:get(id)
    assert.same({ mood = "calm", on_done = "[function]", file = "[userdata]", deep = { n = 3, co = "[thread]" },
                  npc = "Jos\239\191\189", none = require("aigc.core").null }, row.extra)
  end)

  it("keeps an extra holding a cycle (an object and its back references) at once: the cycle named", function ()
    -- (each table reached was copied again: a cycle reached through two
    -- fields took 2^200 copies, record never returned; bounded here by
    -- instructions, not time: the old code raises "still running")
    local npc = { name = "Ada" }
    npc.self, npc.world = npc, { npcs = { npc, npc } }
    local co = coroutine.create(function ()
      return log:record { prompt = "p", response = "r", status = "ok", extra = { npc = npc, mood = "calm" } }
    end)
    debug.sethook(co, function () error("still running after 1e8 instructions", 0) end, "", 100000000)
    local ok, id = coroutine.resume(co)
    debug.sethook(co)
    debug.sethook()   -- (LuaJIT's hooks are the whole VM's)
    assert.is_true(ok, id)
    local cycle = "[cycle]"
    assert.same({ mood = "calm", npc = { name = "Ada", self = cycle, world = { npcs = { cycle, cycle } } } },
                log:get(id).extra)
  end)

  it("a row the lock kept out beside the database, its extra holding a function: kept, that value named", function ()
    -- (the kept file's line is JSON too: the whole row was dropped)
    local kept = require "aigc.promptlog_kept"
    assert.is_true(kept.save(log, { { prompt = "kept p", response = "r", status = "ok",
                                      extra = { mood = "calm", on_done = print, npc = "Jos\233" } } }))
    assert.equal(1, kept.adopt(log, 0))
    local rows = log:list { limit = 5 }
    assert.equal(1, #rows)
    assert.equal("kept p", rows[1].prompt)
    assert.same({ mood = "calm", on_done = "[function]", npc = "Jos\239\191\189" }, log:get(rows[1].id).extra)
  end)

  it("never writes a secret: the client's (scrubbed by its engine) or given ones, key-like params", function ()
    local key = "sk-promptlog-secret-0123456789"
    local client = aigc.client { base_url = "http://127.0.0.1:1/v1", api_key = key }
    local params = { model = "m", messages = { { role = "user", content = "my key is " .. key } },
                     api_key = key, user_token = "tok-abcdefgh-12345678", max_tokens = 5 }
    local id = assert(log:record_call(params, { text = "it is " .. key }, nil,
                                      { client = client, conversation_id = "c1", leaf = true }))
    local other = "sk-another-secret-987654321"
    local id2 = assert(log:record_call("Say " .. other, { text = other }, nil, { secrets = { other } }))
    client:close()
    local row, row2 = log:get(id), log:get(id2)
    assert.equal("my key is [redacted]", row.prompt)
    assert.equal("it is [redacted]", row.response)
    assert.same({ model = "m", max_tokens = 5, user_token = "[redacted]" }, row.params)
    assert.equal("Say [redacted]", row2.prompt)
    assert.equal("[redacted]", row2.response)
    log:close()
    for _, suffix in ipairs { "", "-wal", "-shm" } do
      local bytes = proc.read_file(dir .. "/sub/dir/logs.db" .. suffix) or ""
      assert.is_nil(bytes:find(key, 1, true))
      assert.is_nil(bytes:find(other, 1, true))
      assert.is_nil(bytes:find("tok-abcdefgh-12345678", 1, true))
    end
    log = assert(promptlog.open(dir .. "/sub/dir/logs.db"))
  end)

  it("never writes a secret that JSON escapes (a quote, a backslash) in the context, params or extra", function ()
    local secret = 'pass"word\\with-0123456789'
    local params = { model = "m", user = "id " .. secret, messages = {
      { role = "user", content = "my password is " .. secret }, { role = "assistant", content = "ok " .. secret },
      { role = "user", content = "again" } } }
    local id = assert(log:record_call(params, { text = "fine" }, nil,
                                      { secrets = { secret }, extra = { note = secret } }))
    local row = log:get(id)
    assert.equal("my password is [redacted]", row.context[1].content)
    assert.equal("ok [redacted]", row.context[2].content)
    assert.equal("id [redacted]", row.params.user)
    assert.equal("[redacted]", row.extra.note)
    log:close()
    for _, suffix in ipairs { "", "-wal", "-shm" } do
      local bytes = proc.read_file(dir .. "/sub/dir/logs.db" .. suffix) or ""
      assert.is_nil(bytes:find("0123456789", 1, true))
    end
    log = assert(promptlog.open(dir .. "/sub/dir/logs.db"))
  end)

  it("logs what a real call gives, as a script would", function ()
    local srv = devserver.start()
    local client = aigc.client { base_url = srv.base_url }
    local params = { model = "gpt-4o-mini", messages = { { role = "user", content = "What is 2 + 2?" } } }
    local t0 = aigc.now()
    local res, err = client:chat(params)
    local id = assert(log:record_call(params, res, err, { started = t0, client = client }))
    local row = log:get(id)
    assert.equal("2 + 2 = 4.", row.response)
    assert.equal(res.usage.total_tokens, row.total_tokens)
    assert.equal(res.request_id, row.request_id)
    assert.equal("script", row.source)
    client:close()
    srv:stop()
  end)

  it("a client's prompt_log records the replies its cache gave too, marked cached (a bot's every answer)", function ()
    local srv = devserver.start()
    local client = aigc.client { base_url = srv.base_url, model = "aigc-dev", prompt_log = log, cache = true }
    local function ask ()
      return { messages = { { role = "user", content = "Echo: cached once" } }, temperature = 0 }
    end
    local first = assert(client:chat(ask()))
    local again = assert(client:chat(ask()))                  -- blocking, from the cache
    assert.is_true(again.cached)
    local req = client:chat_async(ask())                      -- non-blocking, from the cache
    local third = assert(req:wait())
    assert.is_true(third.cached)
    client:close()
    srv:stop()
    local rows = log:list { n = 0 }
    assert.equal(3, #rows)
    table.sort(rows, function (a, b) return a.id < b.id end)
    for i, row in ipairs(rows) do
      assert.equal("Echo: cached once", row.prompt)
      assert.equal(first.text, row.response)
      assert.equal("ok", row.status)
      if i == 1 then assert.is_nil(row.extra) else assert.same({ cached = true }, row.extra) end
    end
  end)

  it("records every choice of a reply with several (n), in order; the caller's extra is left as it was", function ()
    local srv = devserver.start()
    local client = aigc.client { base_url = srv.base_url, model = "aigc-dev", prompt_log = log }
    local res = assert(client:chat { messages = { { role = "user", content = "Tell me a joke" } }, n = 3 })
    local extra = { case_id = 7 }
    local id = assert(log:record_call({ messages = { { role = "user", content = "Tell me a joke" } }, n = 3 }, res,
                                      nil, { extra = extra }))
    client:close()
    srv:stop()
    assert.equal(3, #res.choices)
    assert.same({ case_id = 7 }, extra)
    local rows = log:list { n = 0 }
    assert.equal(2, #rows)                                 -- the client's own log, then record_call's
    for _, row in ipairs(rows) do
      assert.equal(res.choices[1].message.content, row.response)
      assert.is_table(row.extra and row.extra.choices, "no choices logged")
      assert.equal(3, #row.extra.choices)
      for i, c in ipairs(res.choices) do
        assert.equal(c.message.content, row.extra.choices[i].text)
        assert.equal(c.finish_reason, row.extra.choices[i].finish_reason)
      end
    end
    assert.equal(7, log:get(id).extra.case_id)
    -- one choice: no list
    assert.is_nil(log:get(call("Hi", "Hello")).extra)
  end)

  it("a retried call is one row: a chat the engine retried; a batch's creation (no prompt) is none", function ()
    -- (the engine's retries are part of a call: one row for a chat, none for the file and batch a
    -- batch's creation makes, retried or not; the client's usage counts both retries alike)
    local srv = devserver.start()
    local function client ()
      return aigc.client { base_url = srv.base_url, model = "aigc-dev", prompt_log = log,
                           headers = { ["x-aigc-fault"] = "status=500,times=1" } }
    end
    local c1 = client()
    local res = assert(c1:chat { messages = { { role = "user", content = "Hi" } } })
    assert.equal(1, res.retries)
    assert.equal(1, c1:usage().retries)
    c1:close()
    srv:reset()
    local c2 = client()
    assert(aigc.batch.create(c2, { { custom_id = "a", body = { messages = { { role = "user", content = "Hi" } } } } }))
    assert.equal(3, #srv:requests())                       -- the upload twice (a 500, then 200), the batch
    assert.equal(1, c2:usage().retries)
    c2:close()
    srv:stop()
    local rows = log:list { n = 0 }
    assert.equal(1, #rows)
    assert.equal("Hi", rows[1].prompt)
    assert.equal("ok", rows[1].status)
    assert.equal(1, rows[1].extra.retries)   -- (how many, as res.retries said)
  end)

  it("fails clearly: unwritable path, a newer schema, misuse, a closed log", function ()
    local none, err = promptlog.open("/proc/no/such/dir/logs.db")
    assert.is_nil(none)
    assert.equal("log", err.kind)
    assert.matches("cannot open the log database", err.message)
    local path = dir .. "/new.db"
    local l2 = assert(promptlog.open(path))
    l2.con:execute("PRAGMA user_version = 99")
    l2:close()
    none, err = promptlog.open(path)
    assert.is_nil(none)
    assert.matches("schema version 99", err.message)
    assert.has_error(function () log:record_call(42) end,
      "bad argument #1 to 'record_call' (table or string expected, got number)")
    assert.has_error(function () log.record({}, {}) end, "calling 'record' on bad self (aigc.promptlog expected)")
    local l3 = assert(promptlog.open(":memory:"))
    l3:close()
    l3:close()                                            -- idempotent
    assert.has_error(function () l3:list() end, "calling 'list' on a closed aigc.promptlog")
    assert.matches("closed", tostring(l3))
  end)

  it("a conversation's chain: leaf up parent_id across a fork; list{ids} shows it; conversation_id: all", function ()
    local a = call("one", "1", { conversation_id = "cA", leaf = true })
    local b = call("two", "2", { conversation_id = "cA", parent_id = a, leaf = true })
    assert(log:set_leaf("cA", a))                                          -- /undo
    local c = call("three", "3", { conversation_id = "cA", parent_id = a, leaf = true })
    assert(log:set_leaf("cA", a))                                          -- /retry: a sibling
    local c2 = call("three", "3!", { conversation_id = "cA", parent_id = a, leaf = true })
    assert(log:conversation_start { id = "cB" })                          -- /fork
    assert(log:set_leaf("cB", c2))
    local d = call("four", "4", { conversation_id = "cB", parent_id = c2, leaf = true })
    local function ids (rows) local t = {} for i, r in ipairs(rows) do t[i] = r.id end return t end
    local conv = assert(log:conversation("cA"))
    assert.same({ c2, a }, ids(conv.chain))                               -- newest first
    assert.same({ c2, a }, ids(assert(log:list { ids = ids(conv.chain), n = 0 })))
    assert.same({ c2, c, b, a }, ids(assert(log:list { conversation_id = "cA", n = 0 })))
    conv = assert(log:conversation("cB"))
    assert.same({ d, c2, a }, ids(conv.chain))
    assert.same({ d, c2 }, ids(assert(log:list { ids = ids(conv.chain), n = 2 })))
    assert.same({ d }, ids(assert(log:list { ids = ids(conv.chain), n = 0, query = "four" })))
    assert.same({}, ids(assert(log:list { ids = {}, n = 0 })))
  end)

  it("a parent_id loop in a database edited by hand ends the chain where it closes", function ()
    local a = call("one", "1", { conversation_id = "cL", leaf = true })
    local b = call("two", "2", { conversation_id = "cL", parent_id = a, leaf = true })
    assert(log.con:execute("UPDATE responses SET parent_id = " .. b .. " WHERE id = " .. a))
    local conv = assert(log:conversation("cL"))
    assert.equal(2, #conv.chain)
    assert.same({ "user", "assistant", "user", "assistant" },
                { conv.messages[1].role, conv.messages[2].role, conv.messages[3].role, conv.messages[4].role })
    assert.equal(4, #conv.messages)
  end)

  it("conversation rows: id, name and model go through the scrubber, as responses do", function ()
    local key = "sk-convrow-SECRET-0123456789"
    local function no_key (what)
      for _, suffix in ipairs { "", "-wal", "-shm" } do
        local bytes = proc.read_file(dir .. "/sub/dir/logs.db" .. suffix) or ""
        for i = 1, #key - 11 do
          assert.is_nil(bytes:find(key:sub(i, i + 11), 1, true), what .. ": a part of the key is in logs.db" .. suffix)
        end
      end
    end
    -- given the secrets
    assert(log:conversation_start({ id = "c1", name = "n " .. key, model = key }, { secrets = { key } }))
    local conv = assert(log:conversation("c1"))
    assert.equal("n [redacted]", conv.name)
    assert.equal("[redacted]", conv.model)
    -- a turn recorded with a model that is the key, in a conversation it creates
    -- (the row's model; log:conversation gives the leaf's, the server's name for it: the bytes below tell)
    call("hi", "hello", { conversation_id = "c2", leaf = true, secrets = { key } }, { model = key })
    -- later writes with no secrets given (a REPL's /fork, /model): those of the last entry
    local cid = assert(log:conversation_start { id = "c3 " .. key, model = key })
    assert.equal("c3 [redacted]", cid)
    assert.equal("[redacted]", assert(log:conversation("c3 [redacted]")).model)
    assert(log:set_leaf("c3 " .. key, 1))
    assert.equal(1, assert(log:conversation("c3 [redacted]")).leaf_id)
    -- a conversation started before its first turn gets that turn's name
    assert(log:conversation_start { id = "c4" })
    call("the first prompt", "ok", { conversation_id = "c4", leaf = true })
    assert.equal("the first prompt", log:conversation("c4").name)
    log:close()
    no_key("after the writes")
    log = assert(promptlog.open(dir .. "/sub/dir/logs.db"))
  end)

  it("creates the database 0600 and its directory 0700, whatever the umask", function ()
    local sub = dir .. "/fresh/home"
    local code = "assert(require('aigc.promptlog').open(" .. string.format("%q", sub .. "/logs.db") .. ")):close()"
    local ok, out = proc.sh("umask 022 && " .. proc.lua_command() .. " -e " .. proc.quote(code))
    assert.is_true(ok, out)
    local _, modes = proc.sh("stat -c %a " .. proc.quote(sub .. "/logs.db") .. " " .. proc.quote(sub))
    assert.equal("600\n700\n", modes)
    -- an existing file keeps the mode its owner gave it
    assert(proc.execute("chmod 640 " .. proc.quote(sub .. "/logs.db")))
    assert(proc.sh("umask 022 && " .. proc.lua_command() .. " -e " .. proc.quote(code)))
    _, modes = proc.sh("stat -c %a " .. proc.quote(sub .. "/logs.db"))
    assert.equal("640\n", modes)
  end)

  it("is off when AIGC_NO_LOG says so; its default path follows AIGC_LOG_DB / AIGC_HOME / XDG", function ()
    assert.is_boolean(promptlog.disabled())
    assert.is_string(promptlog.default_path())
    assert.matches("logs%.db$", promptlog.default_path())
  end)
end)
