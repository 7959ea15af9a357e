-- aigc.promptlog: a large data part (an image's base64 data URL) that
-- every turn's context carries is kept once, read back whole, in old
-- databases too, by two processes at once, and never with a secret.

local aigc = require "aigc"
local cli = require "cli"
local devserver = require "devserver"
local logdb = require "logdb"
local proc = require "procutil"
local promptlog = require "aigc.promptlog"

-- A base64 data URL of n bytes that looks like an image's (no repeats).
local function data_url (n, seed)
  local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  local head = "data:image/png;base64,"
  local t, x = {}, seed or 12345
  for i = 1, n - #head do
    x = (x * 1103515245 + 12345) % 2147483648
    local j = math.floor(x / 65536) % 64 + 1
    t[i] = alphabet:sub(j, j)
  end
  return head .. table.concat(t)
end

local image_message = logdb.image_message

-- The bytes the database takes (its pages, the WAL's included).
local function db_bytes (log)
  local function pragma (name)
    local cur = assert(log.con:execute("PRAGMA " .. name))
    local row = cur:fetch({}, "n")
    cur:close()
    return tonumber(row[1])
  end
  return pragma("page_count") * pragma("page_size")
end

-- What a client's prompt_log records at each turn of a conversation: the
-- whole history as the context (aigc.hooks' log_call).
local function say_n (log, n, messages, info)
  for i = 1, n do
    messages[#messages + 1] = { role = "user", content = "question " .. i }
    local params = { model = "m", messages = messages }
    assert(log:record_call(params, { text = "answer " .. i }, nil, info))
    messages[#messages + 1] = { role = "assistant", content = "answer " .. i }
  end
end

describe("aigc.promptlog blobs", function ()
  local dir, path, log
  before_each(function () dir, path, log = logdb.open() end)
  after_each(function () logdb.close(dir, log) end)

  it("keeps an image the context carries at every turn once: 11 turns grow the log by one copy, not 11", function ()
    local url = data_url(400 * 1024)
    local messages = { image_message("What is in this picture?", url), { role = "assistant", content = "A cat." } }
    local before = db_bytes(log)
    say_n(log, 11, messages)                 -- (the old code wrote the image at each: 4.5 MB)
    local grown = db_bytes(log) - before
    assert.is_true(grown > #url / 2, "the image is not in the log: " .. grown .. " bytes")
    assert.is_true(grown < 2.5 * #url, "the log grew by " .. grown .. " bytes for one image of " .. #url)
    -- and every turn gives back exactly what was sent
    local rows = assert(log:list { n = 0 })
    assert.equal(11, #rows)
    for _, row in ipairs(rows) do
      assert.equal(url, row.context[1].content[2].image_url.url)
      assert.equal("What is in this picture?", row.context[1].content[1].text)
    end
    assert.equal(url, log:get(rows[1].id).context[1].content[2].image_url.url)
  end)

  it("a client's prompt_log: a conversation with an image, 11 says, keeps about one copy of it", function ()
    log:close(); log = nil
    local srv = devserver.start()
    local client = aigc.client { base_url = srv.base_url, model = "aigc-dev", prompt_log = path }
    local url = data_url(400 * 1024, 99)
    local conv = aigc.conversation { client = client }
    assert(conv:say(image_message("What is it?", url)))
    for i = 1, 10 do assert(conv:say("and " .. i)) end
    client:close()
    srv:stop()
    log = assert(promptlog.open(path))
    local bytes = db_bytes(log)              -- (the old code: 4.2 MB)
    assert.is_true(bytes > #url / 2 and bytes < 2.5 * #url, "the log has " .. bytes .. " bytes for one image")
    local rows = assert(log:list { n = 0 })
    assert.equal(11, #rows)
    for i = 1, 10 do assert.equal(url, rows[i].context[1].content[2].image_url.url) end
  end)

  it("gives back exactly what was sent: context, params, extra; log:conversation; aigc logs --json", function ()
    local url = data_url(20000, 7)
    local doc = string.rep("a long pasted document\0with NUL, 'quotes' and \"escapes\" \\ ", 200)
    local tricky = "aigc-blob:12-0123456789abcdef"   -- (what a reference looks like: kept as a blob too)
    local small = data_url(300, 3)
    local params = { model = "m", prediction = { type = "content", content = doc }, messages = {
      { role = "system", content = "S" }, image_message("look", url), { role = "assistant", content = tricky },
      { role = "user", content = small }, { role = "assistant", content = "ok" },
      { role = "user", content = "more" } } }
    local id = assert(log:record_call(params, { text = "done" }, nil,
                                      { conversation_id = "cblob", leaf = true, extra = { doc = doc, t = tricky } }))
    local row = assert(log:get(id))
    local sent = { params.messages[2], params.messages[3], params.messages[4], params.messages[5] }
    assert.same(sent, row.context)
    assert.same({ type = "content", content = doc }, row.params.prediction)
    assert.same({ doc = doc, t = tricky }, row.extra)
    local conv = assert(log:conversation("cblob"))
    assert.same({ { role = "system", content = "S" }, sent[1], sent[2], sent[3], sent[4],
                  { role = "user", content = "more" }, { role = "assistant", content = "done" } }, conv.messages)
    -- kept once each: the image, the document (in params and extra), the string that looks like a reference
    local cur = assert(log.con:execute("SELECT length(CAST(data AS BLOB)) FROM blobs ORDER BY 1"))
    local lengths = {}
    while true do local r = cur:fetch({}, "n"); if not r then break end lengths[#lengths + 1] = tonumber(r[1]) end
    cur:close()
    assert.same({ #tricky, #doc, #url }, lengths)
    -- from 4 KiB on (the 300-byte data URL stayed in the JSON)
    local edge = assert(log:record_call({ messages = { { role = "user", content = string.rep("x", 4095) },
      { role = "user", content = string.rep("y", 4096) }, { role = "user", content = "z" } } }, { text = "ok" }))
    assert.matches(string.rep("x", 4095), log:get(edge).context_json, 1, true)
    assert.is_nil(log:get(edge).context_json:find("yyyy", 1, true))
    assert.equal(string.rep("y", 4096), log:get(edge).context[2].content)
    log:close(); log = nil
    local r = cli.run({ "logs", "--json", "-n", "0", "--log-db", path }, { home = dir })
    assert.equal(0, r.code, r.stderr)
    local listed = aigc.json.decode(r.stdout)
    assert.equal(url, listed[1].context[1].content[2].image_url.url)
    assert.equal(tricky, listed[1].context[2].content)
    assert.equal(small, listed[1].context[3].content)
  end)

  it("tells apart two strings whose keys are the same (a hash collision): the bytes are compared", function ()
    local url = data_url(8000, 11)
    local params = { messages = { image_message("a", url), { role = "user", content = "b" } } }
    assert(log:record_call(params, { text = "c" }))
    local cur = assert(log.con:execute("SELECT key FROM blobs"))
    local key = cur:fetch({}, "a").key
    cur:close()
    -- another database where that key already holds other bytes
    log:close()
    log = assert(promptlog.open(dir .. "/other.db"))
    local forged = url:gsub("A", "B")
    assert(log.con:execute("INSERT INTO blobs (key, data) VALUES ('" .. key .. "', '" .. forged .. "')"))
    local id = assert(log:record_call({ messages = { image_message("a", url), { role = "user", content = "b" } } },
                                      { text = "c" }))
    assert.equal(url, log:get(id).context[1].content[2].image_url.url)
    cur = assert(log.con:execute("SELECT count(*) FROM blobs"))
    assert.equal(2, tonumber(cur:fetch({}, "n")[1]))
    cur:close()
  end)

  it("opens and reads a database the old code made (schema 1, no blobs), then keeps blobs in it", function ()
    log:close()
    local old = dir .. "/old.db"
    local driver = require("luasql.sqlite3").sqlite3()
    local con = assert(driver:connect(old))
    -- (the schema version 1 wrote, as it wrote it)
    for _, q in ipairs {
      [[CREATE TABLE IF NOT EXISTS conversations (
          id TEXT PRIMARY KEY, name TEXT, model TEXT,
          created_at TEXT NOT NULL, updated_at TEXT NOT NULL, leaf_id INTEGER)]],
      [[CREATE TABLE IF NOT EXISTS responses (
          id INTEGER PRIMARY KEY, conversation_id TEXT, parent_id INTEGER,
          created_at TEXT NOT NULL, source TEXT,
          model TEXT, system TEXT, prompt TEXT, response TEXT,
          context_json TEXT, params_json TEXT, extra_json TEXT,
          prompt_tokens INTEGER, completion_tokens INTEGER, total_tokens INTEGER,
          latency_ms INTEGER, status TEXT, error TEXT,
          request_id TEXT, finish_reason TEXT, template TEXT)]],
      [[CREATE INDEX IF NOT EXISTS responses_conversation ON responses (conversation_id, id)]],
      [[CREATE INDEX IF NOT EXISTS conversations_updated ON conversations (updated_at)]],
      [[CREATE VIRTUAL TABLE IF NOT EXISTS responses_fts USING fts5 (
          system, prompt, response, content = 'responses', content_rowid = 'id')]],
      [[CREATE TRIGGER IF NOT EXISTS responses_ai AFTER INSERT ON responses BEGIN
          INSERT INTO responses_fts (rowid, system, prompt, response)
            VALUES (new.id, new.system, new.prompt, new.response);
        END]],
      [[CREATE TRIGGER IF NOT EXISTS responses_ad AFTER DELETE ON responses BEGIN
          INSERT INTO responses_fts (responses_fts, rowid, system, prompt, response)
            VALUES ('delete', old.id, old.system, old.prompt, old.response);
        END]],
      "PRAGMA user_version = 1",
      -- an entry as the old code logged it: the image whole in context_json
      [[INSERT INTO conversations (id, name, model, created_at, updated_at, leaf_id)
          VALUES ('cold', 'old one', 'm', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', 1)]],
      [[INSERT INTO responses (id, conversation_id, created_at, source, model, prompt, response, context_json,
          params_json, status) VALUES (1, 'cold', '2026-01-01T00:00:00Z', 'script', 'm', 'and now?', 'still a cat',
          '[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,QUJD"}}]},'
          || '{"role":"assistant","content":"a cat"}]', '{"model":"m"}', 'ok')]],
    } do assert(con:execute(q), q) end
    con:close(); driver:close()
    log = assert(promptlog.open(old))
    local conv = assert(log:conversation("cold"))
    assert.equal("data:image/png;base64,QUJD", conv.messages[1].content[1].image_url.url)
    assert.same({ "a cat", "and now?", "still a cat" },
                { conv.messages[2].content, conv.messages[3].content, conv.messages[4].content })
    assert.equal(1, #log:list { query = "cat" })
    -- it is version 2 now, and keeps a large part as a blob
    local url = data_url(9000, 5)
    local id = assert(log:record_call({ messages = { image_message("x", url), { role = "user", content = "y" } } },
                                      { text = "z" }))
    assert.equal(url, log:get(id).context[1].content[2].image_url.url)
    local cur = assert(log.con:execute("PRAGMA user_version"))
    assert.equal(2, tonumber(cur:fetch({}, "n")[1]))
    cur:close()
    cur = assert(log.con:execute("SELECT count(*) FROM blobs"))
    assert.equal(1, tonumber(cur:fetch({}, "n")[1]))
    cur:close()
  end)

  it("two processes writing the same blob at once both succeed, and it is kept once", function ()
    log:close(); log = nil
    local script = [[
      local promptlog = require "aigc.promptlog"
      local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
      local t = {}
      for i = 1, 50000 do local j = (i * 7919) % 64 + 1; t[i] = alphabet:sub(j, j) end
      local url = "data:image/png;base64," .. table.concat(t)
      local log = assert(promptlog.open(arg[1]))
      for i = 1, 15 do
        assert(log:record_call({ messages = { { role = "user", content = { { type = "image_url",
          image_url = { url = url } } } }, { role = "user", content = "q" .. i } } }, { text = "a" }))
      end
      log:close()
      print("wrote 15")
    ]]
    local file = dir .. "/writer.lua"
    cli.write(file, script)
    local cmd = proc.lua_command() .. " " .. proc.quote(file) .. " " .. proc.quote(path) .. " 2>&1"
    local a, b = assert(io.popen(cmd)), assert(io.popen(cmd))
    local out_a, out_b = a:read("*a"), b:read("*a")
    a:close(); b:close()
    assert.equal("wrote 15\n", out_a)
    assert.equal("wrote 15\n", out_b)
    log = assert(promptlog.open(path))
    assert.equal(30, log:count())
    local cur = assert(log.con:execute("SELECT count(*) FROM blobs"))
    assert.equal(1, tonumber(cur:fetch({}, "n")[1]))
    cur:close()
    local rows = log:list { n = 0 }
    assert.equal(30, #rows)
    for _, row in ipairs(rows) do assert.equal(50022, #row.context[1].content[1].image_url.url) end
  end)

  it("never writes a secret inside a large part: the blob is scrubbed too", function ()
    local secret = "sk-blob-secret-0123456789"
    local doc = string.rep("filler text ", 1000) .. " the key is " .. secret .. " " .. string.rep("more ", 500)
    local messages = { { role = "user", content = doc }, { role = "assistant", content = "noted" } }
    say_n(log, 2, messages, { secrets = { secret } })
    local row = log:list({ n = 1 })[1]
    local at = doc:find(secret, 1, true)
    assert.equal(doc:sub(1, at - 1) .. "[redacted]" .. doc:sub(at + #secret), row.context[1].content)
    log:close(); log = nil
    for _, suffix in ipairs { "", "-wal", "-shm" } do
      local bytes = proc.read_file(path .. suffix) or ""
      assert.is_nil(bytes:find("0123456789", 1, true))
    end
  end)
end)
