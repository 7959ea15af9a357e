--- Prompt logs in SQLite: every prompt, reply, model, params, usage,
-- latency, conversation and error, searchable with full-text search.
--
-- The `aigc` command logs every call here (unless `--no-log` or
-- `AIGC_NO_LOG=1`); scripts can log into the same database, so the command
-- and scripts share one history (`aigc logs`). Needs LuaSQL's SQLite driver
-- (Debian's `lua-sql-sqlite3`) and an SQLite with FTS5 (Debian's has it).
--
-- Nothing secret is written: per-call options that are not sent (`headers`,
-- `query`, `stream`, callbacks...) are left out, params whose name says
-- key, token, secret or password are replaced by `"[redacted]"`, and every
-- string of an entry goes through the client's scrubber when the client is
-- given (`info.client`), or through the secrets given in `info.secrets`.
--
-- **Schema** (version 2; `PRAGMA user_version` holds it; a version 1
-- database, which had no `blobs`, gets it when opened):
--
--     conversations(id TEXT PRIMARY KEY,   -- "c" and 16 hex digits
--                   name TEXT,             -- the first prompt, cut to 60 characters
--                   model TEXT,
--                   created_at TEXT, updated_at TEXT,  -- ISO 8601, UTC
--                   leaf_id INTEGER)       -- the reply the conversation continues from
--     responses(id INTEGER PRIMARY KEY,    -- grows: the newest has the largest
--               conversation_id TEXT,      -- NULL for a call outside a conversation
--               parent_id INTEGER,         -- the reply this turn continued (NULL: first turn)
--               created_at TEXT,           -- ISO 8601, UTC
--               source TEXT,               -- "cli", "chat", "run", "script"...
--               model TEXT, system TEXT, prompt TEXT, response TEXT,
--               context_json TEXT,         -- messages before this turn that parent_id cannot give
--               params_json TEXT,          -- the request params but messages (JSON object)
--               extra_json TEXT,           -- anything else (strategy evidence, case id, `choices`...)
--               prompt_tokens INTEGER, completion_tokens INTEGER, total_tokens INTEGER,
--               latency_ms INTEGER,
--               status TEXT,               -- "ok", or the error's kind ("http", "canceled"...)
--               error TEXT,                -- tostring(err)
--               request_id TEXT, finish_reason TEXT, template TEXT)
--     responses_fts                        -- FTS5 over system, prompt, response
--     blobs(key TEXT PRIMARY KEY,          -- the length, "-", a 64-bit hash in hex (then "-2"... on a collision)
--           data BLOB)                     -- a string of the JSON columns, kept once
--
-- A string of `context_json`, `params_json` or `extra_json` of 4 KiB or
-- more (an image's base64 data URL, an audio or file part, a long
-- document), or one starting with "aigc-blob:", is kept once in `blobs`,
-- and the JSON holds "aigc-blob:" and its key instead: a client's log
-- writes the whole context at every call, and an image in it was written
-- again at each turn. `get`, `list` and `conversation` put them back
-- (`context`, `params`, `extra`; the `*_json` columns are as stored).
--
-- Text that is not UTF-8 is stored as it is in the text columns; JSON
-- cannot carry it, so in the `*_json` columns its bad bytes are U+FFFD
-- (the rest of the value is kept: a script's whole `extra` was dropped);
-- a value JSON has no place for (a function, a userdata) is a string
-- naming its type there ("[function]").
--
-- A reply with several choices (`n`) has the first one's text in
-- `response` (a conversation goes on from it) and every choice, in order,
-- in `extra.choices` (`{ text =, finish_reason =, tool_calls = }` each):
-- only the first was logged, and the other candidates were lost.
--
-- A call the engine retried has how many times in `extra.retries`.
--
-- A conversation's history is the chain of replies from its leaf up the
-- `parent_id` links: undoing a turn moves the leaf back, retrying makes a
-- sibling, forking starts a new conversation whose first turn's parent is
-- in the old one. Failed and canceled calls are logged with their error and
-- never become a leaf.
--
-- The client's automatic logging (a later client option) is meant to be one
-- line after each call: `log:record_call(params, res, err, { started = t0, client = self })`.
--
-- @module aigc.promptlog
-- @usage
-- local promptlog = require "aigc.promptlog"
-- local log = assert(promptlog.open())            -- the command's database
-- local t0 = aigc.now()
-- local res, err = client:chat(params)
-- log:record_call(params, res, err, { started = t0, client = client, source = "my-script" })
-- for _, row in ipairs(log:list { query = "capital", n = 5 }) do print(row.id, row.prompt, row.response) end

local core = require "aigc.core"
local store = require "aigc.promptlog_store"   -- SQL literals, the schema, statements
local redact = require "aigc.promptlog_redact" -- what is never written: secrets, per-call options
local repair_utf8 = require("aigc.tools").repair_utf8
local kept = require "aigc.promptlog_kept"     -- rows a collected client's log could not write, on disk
local util = require "aigc.util"
util.own_module()

local json_encode = core.json.encode
local sql, now_iso, to_int = store.sql, store.now_iso, store.to_int
local SCHEMA, exec, query_rows = store.SCHEMA, store.exec, store.query_rows
local error, getmetatable, ipairs, next, pairs, pcall, setmetatable, tonumber, tostring, type =
  error, getmetatable, ipairs, next, pairs, pcall, setmetatable, tonumber, tostring, type
local math_floor, math_random = math.floor, math.random
local string_format = string.format
local table_concat = table.concat

local scrubber, scrubbed = redact.scrubber, redact.scrubbed

local M = {}

--- The params of a call as they are logged: JSON-able fields but messages
-- and the per-call options, secret-looking names redacted, a toolset as
-- its tools' names.
-- @function loggable_params
-- @tparam table params
-- @treturn table
-- @usage print(aigc.json.encode(promptlog.loggable_params(params)))
M.loggable_params = redact.loggable_params

--- The schema version this module writes.
M.SCHEMA_VERSION = 2

local Log = {}
Log.__index = Log
Log.__name = "aigc.promptlog"

-- (at the user's line, through pcall or a tail call too: see aigc.util)
local function argerror (fname, msg)
  util.argerror(fname, 1, msg)
end

local function env (name)
  local v = os.getenv(name)
  if v == "" then return nil end
  return v
end

--- Whether logging is turned off by the environment: `AIGC_NO_LOG` set to
-- anything but "" or "0".
-- @treturn boolean
-- @usage if not promptlog.disabled() then log = promptlog.open() end
function M.disabled ()
  local v = env("AIGC_NO_LOG")
  return v ~= nil and v ~= "0"
end

--- The database the command uses: `$AIGC_LOG_DB`, else `logs.db` in
-- `$AIGC_HOME`, else in `${XDG_DATA_HOME:-~/.local/share}/aigc`.
-- @treturn string
-- @usage print(promptlog.default_path())
function M.default_path ()
  local p = env("AIGC_LOG_DB")
  if p then return p end
  local home = env("AIGC_HOME")
  if home then return home .. "/logs.db" end
  local data = env("XDG_DATA_HOME") or ((env("HOME") or ".") .. "/.local/share")
  return data .. "/aigc/logs.db"
end


-- {======================================================
-- Opening
-- =======================================================

local function log_error (message)
  return core.error { kind = "log", message = message }
end

-- mkdir -p of the database's directory (no lfs needed).
local function ensure_dir (path)
  local dir = path:match("^(.*)/[^/]*$")
  if not dir or dir == "" then return end
  local f = io.open(dir .. "/.", "rb")
  if f then f:close(); return end
  -- (0700: the log holds prompts and replies; umask 077: every directory it makes is 0700; `mkdir -p -m 700` made
  -- only the last one so, an $AIGC_HOME made on the way stayed 0755)
  os.execute("(umask 077 && mkdir -p '" .. dir:gsub("'", "'\\''") .. "') 2>/dev/null")
end

-- Creates a missing database file 0600, whatever the umask, before SQLite
-- opens it (SQLite makes its -wal and -shm files with the database's mode).
local ensure_private_file = util.make_private

--- Opens (and creates, with its directory and schema) a log database.
-- @tparam[opt] string path default `default_path()`; ":memory:" for a scratch log
-- @treturn[1] aigc.promptlog
-- @treturn[2] nil
-- @treturn[2] aigc.error err of kind "log"
-- @usage local log = assert(promptlog.open "/tmp/test-logs.db")
function M.open (path)
  if path ~= nil and type(path) ~= "string" then argerror("open", "string expected, got " .. type(path)) end
  path = path or M.default_path()
  local ok, driver = pcall(require, "luasql.sqlite3")
  if not ok then
    return nil, log_error("prompt logs need LuaSQL's SQLite driver (Debian: apt-get install lua-sql-sqlite3)")
  end
  local kind = path ~= ":memory:" and core.file_kind(path)   -- (a FIFO: opening it waited for a writer for ever)
  if kind and kind ~= "file" then
    return nil, log_error("cannot open the log database " .. path .. ": not a regular file (" .. kind .. ")")
  end
  if path ~= ":memory:" then ensure_dir(path); ensure_private_file(path) end
  local sqlenv = driver.sqlite3()
  local con, cerr = sqlenv:connect(path)
  if not con then
    sqlenv:close()
    return nil, log_error("cannot open the log database " .. path .. ": " .. tostring(cerr))
  end
  local self = setmetatable({ con = con, env = sqlenv, path = path }, Log)
  exec(self, "PRAGMA busy_timeout = 10000")
  if path ~= ":memory:" then exec(self, "PRAGMA journal_mode = WAL") end
  local rows = query_rows(self, "PRAGMA user_version")
  local version = rows and rows[1] and to_int(rows[1].user_version) or 0
  if version > M.SCHEMA_VERSION then
    self:close()
    return nil, log_error(path .. " has log schema version " .. version .. "; this aigc knows "
                          .. M.SCHEMA_VERSION .. " (upgrade aigc)")
  end
  if version < M.SCHEMA_VERSION then
    for _, q in ipairs(SCHEMA) do
      local r, err = exec(self, q)
      if not r then
        self:close()
        local hint = tostring(err):find("fts5") and " (this SQLite has no FTS5)" or ""
        return nil, log_error("cannot create the log schema in " .. path .. ": " .. tostring(err) .. hint)
      end
    end
    exec(self, "PRAGMA user_version = " .. M.SCHEMA_VERSION)
  end
  if path ~= ":memory:" then kept.adopt(self, 0) end   -- (if the lock is free at once; else a later open)
  return self
end

--- Closes the database. Idempotent.
-- @usage log:close()
function Log:close ()
  local final = rawget(self, "_final_log")   -- (aigc.promptlog_pending's second connection)
  if final and final ~= self then self._final_log = nil; final:close() end
  if self.con then
    self.con:close()
    self.env:close()
    self.con, self.env = nil, nil
  end
end

local function check_open (self, fname)
  if getmetatable(self) ~= Log then
    error(string_format("calling '%s' on bad self (aigc.promptlog expected)", fname), 3)
  end
  if not self.con then error(string_format("calling '%s' on a closed aigc.promptlog", fname), 3) end
end

-- }======================================================



-- {======================================================
-- Writing
-- =======================================================

-- A copy of v JSON can carry. Its strings that are not UTF-8 (a script's
-- Latin-1 note in `extra`) have their bad bytes as U+FFFD; a value of a
-- type JSON has no place for (a function, a userdata, a thread: a script's
-- callback or file handle in `extra`) is a string naming its type
-- ("[function]"); the rest as it is. Either made the whole column be
-- dropped, silently.
local function loggable (v, depth)
  local t = type(v)
  if t == "string" then return repair_utf8(v) end
  if t == "table" and depth <= 200 then
    local out = {}
    for k, x in pairs(v) do out[loggable(k, depth + 1)] = loggable(x, depth + 1) end
    return setmetatable(out, getmetatable(v))
  end
  if (t == "function" or t == "userdata" or t == "thread") and v ~= core.null then return "[" .. t .. "]" end
  return v
end

--- A copy of `v` JSON can carry (as `loggable`).
-- @local
function M.loggable (v) return loggable(v, 0) end

-- The JSON of a column's value; one JSON cannot carry as it is, `loggable`'s
-- copy (as `aigc logs --json` shows the top-level text, which is stored as
-- it is). (Copied only when the encoding fails: checking every string
-- costs a scan in Lua on 5.1 and LuaJIT.)
local function encode_or_nil (v)
  if v == nil then return nil end
  if type(v) == "table" and next(v) == nil then return nil end
  local ok, s = pcall(json_encode, v)
  if not ok then ok, s = pcall(json_encode, loggable(v, 0)) end
  if ok then return s end
  return nil
end

local id_counter = 0

-- 16 random bits: from /dev/urandom where there is one, since an unseeded
-- 5.1 generator gives every process the same first numbers (two ids made
-- in the same second by two `aigc` runs then shared their first 13
-- characters, the prefix `--cid` takes).
local function random16 ()
  local f = io.open("/dev/urandom", "rb")
  local b = f and f:read(2)
  if f then f:close() end
  if b and #b == 2 then return b:byte(1) * 256 + b:byte(2) end
  return math_random(0, 0xffff)
end

--- A new conversation id: "c" and 16 hex digits (the time first, so ids
-- sort roughly by creation). Lua 5.1's generator starts unseeded in every
-- process, so a table's address, the CPU clock and a counter are mixed in
-- (the caller's math.randomseed is left alone).
-- @treturn string
-- @usage local cid = promptlog.new_id()
function M.new_id ()
  id_counter = id_counter + 1
  local addr = tonumber((tostring({}):match("0x(%x+)") or "0"):sub(-6), 16) or 0
  local mix = (addr + math_floor(os.clock() * 1e6) + id_counter * 7919) % 0x10000
  return string_format("c%08x%04x%04x", os.time() % 0x100000000, random16(), mix)
end

-- The scrubber of a write: `info`'s, else that of the last entry recorded
-- with one (a conversation started before its first turn, a /fork...);
-- with neither, the keys of the environment.
local function write_scrubber (self, info)
  if type(info) ~= "table" then return scrubber(self.scrub_info) end
  local known = self.scrub_info
  if info.client ~= nil or info.secrets ~= nil or not known then return scrubber(info) end
  return scrubber { client = known.client, secrets = known.secrets,
                    call_secrets = info.call_secrets, header_lines = info.header_lines }
end

--- `entry` with every string as `record` would write it (through the
-- scrubber of `info`, else of the log): what may be kept outside the database.
-- @local
function M.scrubbed_entry (log, entry, info) return scrubbed(entry, write_scrubber(log, info), 0) end

--- Creates (or touches) a conversation. Its name and model are set when
-- they are still unset (a conversation started before its first turn gets
-- them from that turn).
-- @tparam[opt] table fields `id` (default a new one), `name`, `model`
-- @tparam[opt] table info `client` and/or `secrets` for redaction, as `record`'s
-- @treturn[1] string the conversation id
-- @treturn[2] nil
-- @treturn[2] aigc.error err
-- @usage local cid = log:conversation_start { name = "planning", model = "gpt-4o-mini" }
function Log:conversation_start (fields, info)
  check_open(self, "conversation_start")
  fields = fields or {}
  local clean = write_scrubber(self, info)
  local function text (v) if type(v) == "string" then return clean(v) end return v end
  local id = text(fields.id) or M.new_id()
  local t = now_iso()
  local ok, err = exec(self, string_format(
    "INSERT INTO conversations (id, name, model, created_at, updated_at) VALUES (%s, %s, %s, %s, %s) "
    .. "ON CONFLICT (id) DO UPDATE SET updated_at = excluded.updated_at, "
    .. "name = COALESCE(conversations.name, excluded.name), model = COALESCE(conversations.model, excluded.model)",
    sql(id), sql(text(fields.name)), sql(text(fields.model)), sql(t), sql(t)))
  if not ok then return nil, log_error("log: " .. tostring(err)) end
  return id
end

--- Moves a conversation's leaf (after an undo, a retry or a new turn).
-- @tparam string cid
-- @tparam integer|nil leaf_id the reply to continue from (nil: the start)
-- @tparam[opt] table info `client` and/or `secrets`, as `conversation_start`'s
-- @treturn boolean|nil true, or nil, err
-- @usage log:set_leaf(cid, row.parent_id)   -- undo
function Log:set_leaf (cid, leaf_id, info)
  check_open(self, "set_leaf")
  if type(cid) == "string" then cid = write_scrubber(self, info)(cid) end   -- (as conversation_start wrote it)
  local ok, err = exec(self, string_format("UPDATE conversations SET leaf_id = %s, updated_at = %s WHERE id = %s",
                                           sql(to_int(leaf_id)), sql(now_iso()), sql(cid)))
  if not ok then return nil, log_error("log: " .. tostring(err)) end
  return true
end

local ENTRY_FIELDS = {
  "conversation_id", "parent_id", "source", "model", "system", "prompt", "response",
  "prompt_tokens", "completion_tokens", "total_tokens", "latency_ms", "status", "error",
  "request_id", "finish_reason", "template",
}

local record   -- (below: Log:record runs it in a transaction)

--- Records one entry. Fields: `conversation_id`, `parent_id`, `source`,
-- `model`, `system`, `prompt`, `response`, `context` (messages before this
-- turn, when `parent_id` cannot give them), `params` (logged as
-- `loggable_params` gives them), `extra` (a JSON-able table), `usage`
-- (`prompt_tokens`, `completion_tokens`, `total_tokens`), `latency_ms`,
-- `status` ("ok" or an error kind), `error` (text), `request_id`,
-- `finish_reason`, `template`, `created_at` (default now). With `leaf = true` and a
-- conversation, the entry becomes the conversation's leaf (creating it if needed).
-- @tparam table entry
-- @tparam[opt] table info `client` and/or `secrets` for redaction
-- @treturn[1] integer the entry's id
-- @treturn[2] nil
-- @treturn[2] aigc.error err of kind "log"
-- @usage local id = log:record { prompt = "Hi", response = "Hello!", model = "m", status = "ok" }
function Log:record (entry, info)
  check_open(self, "record")
  if type(entry) ~= "table" then argerror("record", "table expected, got " .. type(entry)) end
  -- One transaction: a write that failed half way (a full disk, the lock
  -- held past the timeout) left a new conversation without its entry --
  -- the last one, that `aigc -c` continued -- and blobs no entry held.
  -- (In the caller's own transaction, the caller's.)
  local began, berr = exec(self, "BEGIN IMMEDIATE")
  if not began and not tostring(berr):find("within a transaction", 1, true) then
    return nil, log_error("log: " .. tostring(berr))
  end
  local ok, id, err = pcall(record, self, entry, info)
  if began then
    local done, cerr = exec(self, ok and id and "COMMIT" or "ROLLBACK")
    if not done and ok and id then exec(self, "ROLLBACK"); id, err = nil, log_error("log: " .. tostring(cerr)) end
  end
  if not ok then error(id, 0) end
  return id, err
end

function record (self, entry, info)
  local e = {}
  for k, v in pairs(entry) do e[k] = v end
  e.params = M.loggable_params(entry.params)
  local usage = type(e.usage) == "table" and e.usage or {}
  e.prompt_tokens = e.prompt_tokens or to_int(usage.prompt_tokens or usage.input_tokens)
  e.completion_tokens = e.completion_tokens or to_int(usage.completion_tokens or usage.output_tokens)
  e.total_tokens = e.total_tokens or to_int(usage.total_tokens)
  e.usage = nil
  if type(info) == "table" and (info.client ~= nil or info.secrets ~= nil) then self.scrub_info = info end
  local clean = write_scrubber(self, info)
  local cols, vals = {}, {}
  for _, f in ipairs(ENTRY_FIELDS) do
    local v = e[f]
    if f == "latency_ms" or f == "parent_id" then v = to_int(v) end
    if type(v) == "string" then v = clean(v) end
    if v ~= nil then cols[#cols + 1] = f; vals[#vals + 1] = sql(v) end
  end
  cols[#cols + 1] = "created_at"; vals[#vals + 1] = sql(e.created_at or now_iso())
  local extra = { { "context_json", e.context }, { "params_json", e.params }, { "extra_json", e.extra } }
  for _, x in ipairs(extra) do
    -- (scrubbed first: what a blob keeps is scrubbed too)
    local v, berr = store.stow(self, scrubbed(x[2], clean, 0))
    if berr then return nil, log_error("log: " .. tostring(berr)) end
    local s = encode_or_nil(v)
    if s then cols[#cols + 1] = x[1]; vals[#vals + 1] = sql(clean(s)) end
  end
  if e.leaf and e.conversation_id then
    local name = type(e.prompt) == "string" and clean(e.prompt):sub(1, 60) or nil
    local ok, err = self:conversation_start({ id = e.conversation_id, name = name, model = e.model }, info)
    if not ok then return nil, err end
  end
  local ok, err = exec(self, "INSERT INTO responses (" .. table_concat(cols, ", ") .. ") VALUES ("
                       .. table_concat(vals, ", ") .. ")")
  if not ok then return nil, log_error("log: " .. tostring(err)) end
  local id = to_int(self.con:getlastautoid())
  if e.leaf and e.conversation_id then
    local lok, lerr = self:set_leaf(e.conversation_id, id, info)
    if not lok then return nil, lerr end
  end
  return id
end

-- The text of a message's content (parts joined).
local function content_text (c)
  if type(c) == "string" then return c end
  if type(c) ~= "table" then return nil end
  local parts = {}
  for _, p in ipairs(c) do
    if type(p) == "table" and type(p.text) == "string" then parts[#parts + 1] = p.text
    elseif type(p) == "string" then parts[#parts + 1] = p end
  end
  return table_concat(parts, "\n")
end

--- Records a chat call from what the caller has after it: the params sent,
-- and the result or the error. The prompt is the last user message, the
-- system prompt the first system message, the messages between them the
-- context (unless `info.parent_id` links the turn to an earlier entry).
-- A prompt with parts other than text (an image...) keeps them all in
-- `extra.prompt_content` (`conversation` gives them back).
-- @tparam table params the chat params (a string: one user message)
-- @tparam table|nil res the response
-- @tparam[opt] aigc.error err the error when `res` is nil
-- @tparam[opt] table info `started` (an `aigc.now()` from before the call) or
-- `latency_ms`; `conversation_id`, `parent_id`, `leaf`, `source` (default
-- "script"), `template`, `extra`, `partial` (text received before a failure);
-- `client` or `secrets` for redaction
-- @treturn[1] integer the entry's id
-- @treturn[2] nil
-- @treturn[2] aigc.error err
-- @usage log:record_call(params, res, err, { started = t0, client = client })
function Log:record_call (params, res, err, info)
  check_open(self, "record_call")
  if type(params) == "string" then params = { messages = { { role = "user", content = params } } } end
  if type(params) ~= "table" then argerror("record_call", "table or string expected, got " .. type(params)) end
  info = info or {}
  return self:record(M.call_entry(params, res, err, info), info)
end

-- Every choice of a reply with more than one (`n`), in order: the text,
-- finish reason and tool calls of each; nil for one choice or none.
local function choices_of (res)
  local list = type(res) == "table" and type(res.choices) == "table" and res.choices or nil
  if not list or #list < 2 then return nil end
  local out = {}
  for i, c in ipairs(list) do
    local m = type(c) == "table" and type(c.message) == "table" and c.message or nil
    local text = m and content_text(m.content) or (type(c) == "table" and type(c.text) == "string" and c.text)
    out[i] = { text = text or "", finish_reason = type(c) == "table" and type(c.finish_reason) == "string"
                 and c.finish_reason or nil, tool_calls = m and type(m.tool_calls) == "table" and m.tool_calls or nil }
  end
  return out
end

-- `extra` (the caller's, never changed) with `k` set to `v`: a copy.
local function extra_with (extra, k, v)
  local t = {}
  for x, y in pairs(extra or {}) do t[x] = y end
  t[k] = v
  return t
end

-- The entry `record_call` records (`params`: a table; `info`: a table).
-- Apart, for a client's log that writes it later (aigc.promptlog_pending).
function M.call_entry (params, res, err, info)
  local msgs = type(params.messages) == "table" and params.messages or {}
  local system, prompt, first, last_user = nil, nil, 1, nil
  if msgs[1] and msgs[1].role == "system" then system = content_text(msgs[1].content); first = 2 end
  for i = #msgs, first, -1 do
    if type(msgs[i]) == "table" and msgs[i].role == "user" then last_user = i; break end
  end
  local extra = info.extra
  if last_user then
    local content = msgs[last_user].content
    prompt = content_text(content)
    -- (the prompt column holds its text: an image, audio or file the turn
    -- sent was in no row but in later rows' context, and the last turn's
    -- nowhere; `extra.prompt_content` keeps the parts, blobs keep big data)
    if type(content) == "table" and (extra == nil or type(extra) == "table") then
      for _, part in ipairs(content) do
        if type(part) == "table" and type(part.text) ~= "string" then
          extra = extra_with(extra, "prompt_content", content)
          break
        end
      end
    end
  end
  if prompt == nil and type(params.prompt) == "string" then prompt = params.prompt end   -- completions
  local context
  if info.parent_id == nil and last_user and last_user > first then
    context = {}
    for i = first, last_user - 1 do context[#context + 1] = msgs[i] end
  end
  local latency = info.latency_ms
  if latency == nil and type(info.started) == "number" then latency = (core.now() - info.started) * 1000 end
  local entry = {
    conversation_id = info.conversation_id, parent_id = info.parent_id, leaf = info.leaf and res ~= nil,
    source = info.source or "script", template = info.template, extra = extra,
    model = params.model, system = system, prompt = prompt, context = context, params = params,
    latency_ms = latency,
  }
  local choices   -- (every one of several: `extra.choices`)
  if res then
    local choice = type(res.choices) == "table" and res.choices[1] or nil
    entry.response = type(res.text) == "string" and res.text
      or (choice and choice.message and content_text(choice.message.content))
      or (choice and type(choice.text) == "string" and choice.text) or nil
    entry.model = type(res.model) == "string" and res.model or entry.model
    entry.usage = res.usage
    entry.request_id = res.request_id
    entry.finish_reason = choice and type(choice.finish_reason) == "string" and choice.finish_reason or nil
    entry.status = "ok"
    choices = choices_of(res)
  else
    entry.status = type(err) == "table" and type(err.kind) == "string" and err.kind or "error"
    entry.error = err ~= nil and tostring(err) or "unknown error"
    entry.request_id = type(err) == "table" and type(err.request_id) == "string" and err.request_id or nil
    -- (a failed stream's text, which its caller saw: `err.partial`, the
    -- response so far, when the caller gives no `info.partial` -- a
    -- client's prompt_log logged none)
    local partial, p = info.partial, type(err) == "table" and err.partial
    if partial == nil and type(p) == "table" then
      local choice = type(p.choices) == "table" and p.choices[1]
      partial = type(p.text) == "string" and p.text
        or (type(choice) == "table" and type(choice.message) == "table" and content_text(choice.message.content))
        or nil
      if partial == "" then partial = nil end
    end
    entry.response = partial
    if type(p) == "table" then choices = choices_of(p) end
  end
  if choices and (extra == nil or type(extra) == "table") then entry.extra = extra_with(extra, "choices", choices) end
  -- (the engine's retries of the call, which the client knows: a row said
  -- nothing of the 429s and 503s behind a slow reply)
  local retries = type(res) == "table" and res.retries or type(err) == "table" and err.retries
  if type(retries) == "number" and retries > 0 and (entry.extra == nil or type(entry.extra) == "table") then
    entry.extra = extra_with(entry.extra, "retries", retries)
  end
  return entry
end

-- }======================================================


-- {======================================================
-- Reading
-- =======================================================

local function decode_row (self, row, blobs)
  for _, k in ipairs { "id", "parent_id", "prompt_tokens", "completion_tokens", "total_tokens", "latency_ms" } do
    if row[k] ~= nil then row[k] = to_int(row[k]) end
  end
  for _, k in ipairs { "context", "params", "extra" } do
    local s = row[k .. "_json"]
    if type(s) == "string" then row[k] = store.decode(self, s, blobs) end
  end
  return row
end

--- One entry by id.
-- @tparam integer id
-- @treturn table|nil the row (`params`, `context`, `extra` decoded)
-- @usage local row = log:get(42)
function Log:get (id)
  check_open(self, "get")
  local rows = query_rows(self, "SELECT * FROM responses WHERE id = " .. sql(to_int(id)))
  return rows and rows[1] and decode_row(self, rows[1], {}) or nil
end

-- An FTS5 query matching every word of a user's text: each word a quoted
-- phrase, so punctuation and FTS operators in it are plain text.
local function fts_query (text)
  local terms = {}
  for word in text:gmatch("%S+") do terms[#terms + 1] = '"' .. word:gsub('"', '""') .. '"' end
  return table_concat(terms, " ")
end
M.fts_query = fts_query

-- The texts a row keeps in `extra` besides its reply: every choice of a
-- call with several (`extra.choices`), every candidate of best-of or vote
-- (`extra.candidates`), as SQL rows `t` (a text kept as a blob read back;
-- a row whose extra is not JSON, or holds something else there, gives none).
local function texts_of (list)
  return "SELECT CASE WHEN c.type = 'object' AND json_type(c.value, '$.text') = 'text' "
    .. "THEN json_extract(c.value, '$.text') END AS t "
    .. "FROM json_each(CASE WHEN json_valid(responses.extra_json) THEN responses.extra_json END, "
    .. "'$." .. list .. "') AS c"
end
local EXTRA_TEXTS = "SELECT CASE WHEN substr(t, 1, 10) = 'aigc-blob:' "
  .. "THEN COALESCE((SELECT data FROM blobs WHERE key = substr(t, 11)), t) ELSE t END AS t "
  .. "FROM (" .. texts_of("choices") .. " UNION ALL " .. texts_of("candidates") .. ")"

-- The WHERE term of a search's word: in the FTS5 index of the system
-- prompt, prompt and reply, or inside one of the texts of `extra`: the
-- other choices of an `n = 3` call and the candidates of best-of or vote
-- were kept, but a search found only the first choice. (A LIKE, as the
-- CJK words: case aside for ASCII, `%` and `_` plain text; the stored
-- JSON is looked at first when it holds the word as it is, unescaped.)
-- FTS5's tokenizer splits text at spaces and punctuation only: Chinese or
-- Japanese text, written without spaces, is one long token, and a word of
-- it ("日本語" in "日本語のテキスト") matched nothing. A word with non-ASCII
-- bytes also matches as a substring of those columns (LIKE: a scan of the
-- log, no schema change).
local function search_term (word)
  local pat = sql("%" .. word:gsub("[\\%%_]", "\\%0") .. "%") .. " ESCAPE '\\'"
  local term = { "responses.id IN (SELECT rowid FROM responses_fts WHERE responses_fts MATCH "
                 .. sql(fts_query(word)) .. ")" }
  if word:find("[\128-\255]") then
    term[#term + 1] = "responses.system LIKE " .. pat .. " OR responses.prompt LIKE " .. pat
      .. " OR responses.response LIKE " .. pat
  end
  local inside = "EXISTS (SELECT 1 FROM (" .. EXTRA_TEXTS .. ") WHERE t LIKE " .. pat .. ")"
  if not word:find('[%c"\\]') then   -- (as JSON writes it: the rows that cannot hold it are passed at once)
    inside = "(responses.extra_json LIKE " .. pat .. " OR responses.extra_json LIKE '%aigc-blob:%') AND " .. inside
  end
  term[#term + 1] = "(responses.extra_json IS NOT NULL AND " .. inside .. ")"
  return "(" .. table_concat(term, " OR ") .. ")"
end

--- Entries, newest first.
-- @tparam[opt] table opts `n` (default 3; 0: all), `query` (full-text search:
-- every word must appear in the prompt, reply or system prompt, or inside
-- the text of one of `extra.choices` or `extra.candidates`; a word with
-- non-ASCII letters also matches inside a longer one, as in CJK text),
-- `conversation_id` (every entry logged under that id: undone turns, retried
-- replies, failed calls), `ids` (only these entries: e.g. a conversation's
-- `chain`), `source`, `status`
-- @treturn[1] table rows, newest first
-- @treturn[2] nil
-- @treturn[2] aigc.error err
-- @usage for _, r in ipairs(log:list { n = 10, query = "refund" }) do print(r.id, r.prompt) end
function Log:list (opts)
  check_open(self, "list")
  opts = opts or {}
  local where = {}
  if type(opts.query) == "string" then
    for word in opts.query:gmatch("%S+") do where[#where + 1] = search_term(word) end
  end
  if opts.conversation_id then where[#where + 1] = "responses.conversation_id = " .. sql(opts.conversation_id) end
  if type(opts.ids) == "table" then
    local ids = {}
    for i, id in ipairs(opts.ids) do ids[i] = sql(to_int(id)) end
    where[#where + 1] = "responses.id IN (" .. table_concat(ids, ", ") .. ")"
  end
  if opts.source then where[#where + 1] = "responses.source = " .. sql(opts.source) end
  if opts.status then where[#where + 1] = "responses.status = " .. sql(opts.status) end
  local n = to_int(opts.n or 3)
  if n >= 2 ^ 53 then n = 0 end   -- (more than a log holds: all; `LIMIT 1e+300` was "datatype mismatch")
  local q = "SELECT responses.* FROM responses"
    .. (#where > 0 and (" WHERE " .. table_concat(where, " AND ")) or "")
    .. " ORDER BY responses.id DESC" .. (n > 0 and (" LIMIT " .. n) or "")
  local rows, err = query_rows(self, q)
  if not rows then return nil, log_error("log: " .. tostring(err)) end
  local blobs = {}   -- (a blob in every row is read once)
  for _, r in ipairs(rows) do decode_row(self, r, blobs) end
  return rows
end

--- The number of entries.
-- @treturn integer
-- @usage print(log:count())
function Log:count ()
  check_open(self, "count")
  local rows = query_rows(self, "SELECT count(*) AS n FROM responses")
  return rows and to_int(rows[1].n) or 0
end

--- The sources the entries came from ("cli", "chat", "run", "script"...), sorted.
-- @treturn {string,...}
function Log:sources ()
  check_open(self, "sources")
  local list = {}
  for i, r in ipairs(query_rows(self, "SELECT DISTINCT source FROM responses WHERE source IS NOT NULL ORDER BY source")
                     or {}) do list[i] = r.source end
  return list
end

--- The most recently used conversation's id, or nil.
-- @treturn string|nil
-- @usage local cid = log:last_conversation()
function Log:last_conversation ()
  check_open(self, "last_conversation")
  local rows = query_rows(self, "SELECT id FROM conversations ORDER BY updated_at DESC, rowid DESC LIMIT 1")
  return rows and rows[1] and rows[1].id or nil
end

--- A conversation: its row (`id`, `name`, `model`, `leaf_id`...) with
-- `messages` (system first, then the turns from the first to the leaf),
-- `system`, and `chain`: its entries from the leaf up `parent_id` (newest
-- first; after a fork, the turns before it have the old conversation's id).
-- @tparam string cid a conversation id (or a unique prefix of one)
-- @treturn[1] table
-- @treturn[2] nil
-- @treturn[2] aigc.error err (no such conversation)
-- @usage local conv = assert(log:conversation(log:last_conversation()))
function Log:conversation (cid)
  check_open(self, "conversation")
  if type(cid) ~= "string" then argerror("conversation", "string expected, got " .. type(cid)) end
  local rows = query_rows(self, "SELECT * FROM conversations WHERE id = " .. sql(cid))
  if rows and not rows[1] and cid:find("^[%w]+$") then
    rows = query_rows(self, "SELECT * FROM conversations WHERE id LIKE " .. sql(cid .. "%") .. " LIMIT 2")
    if rows and rows[2] then return nil, log_error("conversation id prefix '" .. cid .. "' is ambiguous") end
  end
  local conv = rows and rows[1]
  if not conv then return nil, log_error("no conversation '" .. cid .. "' in " .. self.path) end
  conv.leaf_id = to_int(conv.leaf_id)
  -- (a parent_id loop, in a database edited by hand, ends where it closes:
  -- it made 100,000 turns of the same two, in 8 s)
  local chain, id, seen = {}, conv.leaf_id, {}
  while id and not seen[id] do
    local row = self:get(id)
    if not row then break end
    chain[#chain + 1], seen[id] = row, true
    id = row.parent_id
  end
  local messages, system = {}, nil
  local leaf = chain[1]
  if leaf then system = leaf.system end
  if system then messages[1] = { role = "system", content = system } end
  local root = chain[#chain]
  if root and type(root.context) == "table" then
    for _, m in ipairs(root.context) do messages[#messages + 1] = m end
  end
  for i = #chain, 1, -1 do
    local row = chain[i]
    local parts = type(row.extra) == "table" and row.extra.prompt_content
    if type(parts) == "table" and type(parts[1]) == "table" then   -- (a list of parts; else its text)
      messages[#messages + 1] = { role = "user", content = parts }
    elseif row.prompt then messages[#messages + 1] = { role = "user", content = row.prompt } end
    messages[#messages + 1] = { role = "assistant", content = row.response or "" }
  end
  conv.messages, conv.system, conv.turns, conv.chain = messages, system, #chain, chain
  conv.model = (leaf and leaf.model) or conv.model
  return conv
end

function Log:__tostring ()
  return "aigc.promptlog (" .. tostring(self.path) .. (self.con and "" or ", closed") .. ")"
end

-- }======================================================

M.Log = Log

return M
