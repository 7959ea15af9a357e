--- The SQL side of the prompt log (`aigc.promptlog`): values as SQL
-- literals, the schema, and running statements through LuaSQL.
--
-- @module aigc.promptlog_store
-- @local

local core = require "aigc.core"

local null = core.null
local math_floor = math.floor
local string_format = string.format
local tonumber, tostring, type = tonumber, tostring, type

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
    return string_format("%.17g", v)
  end
  if t == "boolean" then return v and "1" or "0" end
  return sql_string(tostring(v))
end

local function now_iso ()
  return os.date("!%Y-%m-%dT%H:%M:%SZ")
end

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

M.sql, M.now_iso, M.to_int = sql, now_iso, to_int
M.SCHEMA, M.exec, M.query_rows = SCHEMA, exec, query_rows

return M
