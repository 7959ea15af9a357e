--- The SQL side of the prompt log (`aigc.promptlog`): values as SQL
-- literals, the schema, and running statements through LuaSQL.
--
-- @module aigc.promptlog_store
-- @local

local core = require "aigc.core"
local g17 = require("aigc.util").g17

local null = core.null
local json_decode = core.json.decode
local math_floor = math.floor
local string_format = string.format
local getmetatable, pairs, setmetatable, tonumber, tostring, type =
  getmetatable, pairs, setmetatable, tonumber, tostring, type

local M = {}

-- {======================================================
-- SQL values
-- =======================================================

-- A string as an SQL literal. LuaSQL passes SQL as a C string, so text
-- with NUL bytes goes in as a hex blob cast to text.
local function sql_string (s)
  if s:find("\0", 1, true) then
    return "CAST(X'" .. s:gsub(".", function (c) return string_format("%02x", c:byte()) end) .. "' AS TEXT)"
  end
  return "'" .. s:gsub("'", "''") .. "'"
end

local function sql (v)
  if v == nil or v == null then return "NULL" end
  local t = type(v)
  if t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return "NULL" end
    if v == math_floor(v) and v > -2^53 and v < 2^53 then return string_format("%d", v) end
    return g17(v)   -- (not string.format's "%.17g": under a comma locale 1,5 was two values)
  end
  if t == "boolean" then return v and "1" or "0" end
  return sql_string(tostring(v))
end

-- (not os.date("!..."): Lua 5.1's and 5.2's gmtime shares one buffer between threads)
local now_iso = require("aigc.utc").iso

local function to_int (v)
  v = tonumber(v)
  if v == nil then return nil end
  return math_floor(v)
end

-- }======================================================


-- {======================================================
-- Schema and statements
-- =======================================================

local SCHEMA = {
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
  -- (version 2: a large string of the JSON columns is kept once, here, by its key)
  [[CREATE TABLE IF NOT EXISTS blobs (key TEXT PRIMARY KEY, data BLOB NOT NULL)]],
}

-- Runs a statement; a cursor it returns (PRAGMA journal_mode gives one) is
-- closed at once, since LuaSQL refuses to close a connection with one open.
local function exec (self, q)
  local r, err = self.con:execute(q)
  if r == nil then return nil, err end
  if type(r) ~= "number" then r:close(); return 0 end
  return r
end

local function query_rows (self, q)
  local cur, err = self.con:execute(q)
  if not cur then return nil, err end
  local rows = {}
  while true do
    local row = cur:fetch({}, "a")
    if not row then break end
    rows[#rows + 1] = row
  end
  cur:close()
  return rows
end

-- }======================================================


-- {======================================================
-- Blobs
-- =======================================================

-- A client's prompt log writes the whole context at every call: an image
-- (a base64 data URL) in a conversation was written again at each turn (a
-- 400 KB image over 11 turns made a 4 MB log; a bot running for days grew
-- by gigabytes). A string of the JSON columns from BLOB_MIN bytes on is
-- kept once in `blobs`, and the JSON holds BLOB_PREFIX .. its key instead.
-- A string that starts with BLOB_PREFIX is kept there whatever its size,
-- so in what this version writes the prefix always means a reference.
local BLOB_MIN = 4096
local BLOB_PREFIX = "aigc-blob:"
M.BLOB_MIN, M.BLOB_PREFIX = BLOB_MIN, BLOB_PREFIX

-- A 64-bit hash of a string as 16 hex digits (two 32-bit ones): the
-- cache's, core.hash64 (it was the same arithmetic in Lua here: the blobs
-- stored keep their names). Not collision-resistant: `put_blob` compares
-- the bytes.
local hash = core.hash64

-- Keeps `s` once and gives its key: its length and hash, with "-2", "-3"...
-- after a different string with the same ones. Another process may write
-- the same blob at the same time: INSERT OR IGNORE, then the bytes read back
-- say whose it is.
local function put_blob (self, s)
  local base = #s .. "-" .. hash(s)
  for n = 1, 16 do
    local key = n == 1 and base or (base .. "-" .. n)
    local q = "SELECT data FROM blobs WHERE key = " .. sql(key)
    local rows, err = query_rows(self, q)
    if rows and not rows[1] then
      local ok, ierr = exec(self, "INSERT OR IGNORE INTO blobs (key, data) VALUES ("
                            .. sql(key) .. ", " .. sql(s) .. ")")
      if not ok then return nil, ierr end
      rows, err = query_rows(self, q)
    end
    if not rows then return nil, err end
    if rows[1] and rows[1].data == s then return key end
  end
  return nil, "too many blobs with the same hash"
end

-- A copy of `v` (a table to be written as JSON) with its large strings kept
-- as blobs (keys are left as they are); a failure is noted in `state.err`.
local function stow (self, v, state, depth)
  if type(v) == "string" then
    if #v < BLOB_MIN and v:sub(1, #BLOB_PREFIX) ~= BLOB_PREFIX then return v end
    local key, err = put_blob(self, v)
    if not key then state.err = state.err or err; return v end
    return BLOB_PREFIX .. key
  end
  if type(v) ~= "table" or depth > 200 then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = stow(self, x, state, depth + 1) end
  return setmetatable(t, getmetatable(v))
end

--- `v` with its large strings kept as blobs, or nil and the error.
function M.stow (self, v)
  local state = {}
  local r = stow(self, v, state, 0)
  if state.err then return nil, state.err end
  return r
end

-- Puts back in place (in `v`, a table decoded from JSON) the strings kept
-- as blobs; `cache` (key -> data) spares reading one blob twice. A
-- reference to no blob (a database copied without its blobs) stays as it is.
local function resolve (self, v, cache, depth)
  if type(v) ~= "table" or depth > 200 then return end
  for k, x in pairs(v) do
    if type(x) == "string" and x:sub(1, #BLOB_PREFIX) == BLOB_PREFIX then
      local key = x:sub(#BLOB_PREFIX + 1)
      local data = cache[key]
      if data == nil then
        local rows = query_rows(self, "SELECT data FROM blobs WHERE key = " .. sql(key))
        data = rows and rows[1] and rows[1].data or false
        cache[key] = data
      end
      if data then v[k] = data end
    else
      resolve(self, x, cache, depth + 1)
    end
  end
end

--- Decodes a JSON column's text, its blobs put back.
function M.decode (self, s, cache)
  local v = json_decode(s)
  if s:find(BLOB_PREFIX, 1, true) then resolve(self, v, cache or {}, 0) end
  return v
end

-- }======================================================

M.sql, M.now_iso, M.to_int = sql, now_iso, to_int
M.SCHEMA, M.exec, M.query_rows = SCHEMA, exec, query_rows

return M
