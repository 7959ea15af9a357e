--- The rows of a client's prompt log that the database's lock kept out
-- when the log was collected (the program ended, or dropped its client,
-- without `close()`), kept on disk beside the database until the next
-- `aigc.promptlog.open` of it writes them.
--
-- The log's finalizer wrote them waiting for the lock as long as the log
-- says: a game or a bot quitting (or dropping its client mid-run) while
-- another process held the lock froze for the whole busy timeout (10.02 s
-- measured), and the rows were lost all the same. The finalizer now waits
-- `FINAL_WAIT_MS` at most; the rows it could not write are appended, as
-- the log would write them (every string scrubbed: no secret), one JSON
-- object a line, to the database's path with "-kept" after it (created
-- 0600). `open` claims that file (a rename: two processes opening the log
-- do not both write its rows), writes its rows in one transaction if the
-- lock is free at once, and otherwise puts them back for a later open.
--
-- @module aigc.promptlog_kept
-- @local

local core = require "aigc.core"
local store = require "aigc.promptlog_store"
local util = require "aigc.util"

local json_encode, json_decode = core.json.encode, core.json.decode
local ipairs, pcall, tonumber, tostring, type = ipairs, pcall, tonumber, tostring, type
local table_concat = table.concat

local M = {}

--- How long the finalizer waits for the lock, in milliseconds, before it
-- keeps the rows on disk.
M.FINAL_WAIT_MS = 100

--- The file beside the database at `path` that holds the rows kept.
-- @tparam string path
-- @treturn string
function M.file (path)
  return path .. "-kept"
end

-- Appends `lines` (JSON texts) to the file at `name`, made 0600 if it is new.
local function append (name, lines)
  local kind = core.file_kind(name)
  if kind and kind ~= "file" then return false end   -- (a FIFO: its open waited for a reader for ever)
  util.make_private(name)
  local f = io.open(name, "ab")
  if not f then return false end
  local ok = f:write(table_concat(lines, "\n"), "\n")
  local closed = f:close()   -- (a full disk fails at the flush: a cut file, told as kept)
  return (ok and closed) and true or false
end

--- Keeps `entries` (tables as `record` takes them, scrubbed already) in
-- the file beside the log's database. A log in memory keeps nothing.
-- @tparam aigc.promptlog log
-- @tparam table entries
-- @treturn boolean whether they were kept
function M.save (log, entries)
  if log.path == ":memory:" or not entries[1] then return false end
  local lines = {}
  for _, e in ipairs(entries) do
    local ok, s = pcall(json_encode, e)
    if not ok then   -- (text that is not UTF-8, a function in `extra`: as the log's JSON columns keep them)
      ok, s = pcall(json_encode, require("aigc.promptlog").loggable(e))
    end
    if ok then lines[#lines + 1] = s end
  end
  return lines[1] ~= nil and append(M.file(log.path), lines)
end

--- Writes the rows kept beside the log's database, if there are any and
-- the lock is free within `wait_ms`; else they stay kept.
-- @tparam aigc.promptlog log (open)
-- @tparam integer wait_ms
-- @treturn integer|nil the number of rows written, or nil and the error
function M.adopt (log, wait_ms)
  local name = M.file(log.path)
  -- (only a regular file: a FIFO there -- a log in a shared /tmp -- made
  -- every open of the log, every aigc command, wait for a writer for ever)
  if core.file_kind(name) ~= "file" then return 0 end
  local claimed = name .. "." .. require("aigc.promptlog").new_id()
  if not os.rename(name, claimed) then return 0 end   -- (another process claimed them)
  local f = io.open(claimed, "rb")
  local text = f and f:read("*a") or ""
  if f then f:close() end
  local lines = {}
  for line in text:gmatch("[^\n]+") do lines[#lines + 1] = line end
  local rows = store.query_rows(log, "PRAGMA busy_timeout")
  local saved = rows and rows[1] and tonumber(rows[1].timeout) or 10000
  store.exec(log, "PRAGMA busy_timeout = " .. wait_ms)
  local began, err = store.exec(log, "BEGIN IMMEDIATE")
  store.exec(log, "PRAGMA busy_timeout = " .. saved)
  local n, failed = 0, not began
  if began then
    for _, line in ipairs(lines) do
      local ok, e = pcall(json_decode, line)
      if ok and type(e) == "table" then   -- (a line that is no JSON, cut by a full disk: never writable)
        local id, rerr
        ok, id, rerr = pcall(log.record, log, e)
        if not ok or not id then err, failed = ok and rerr or id, true; break end
        n = n + 1
      end
    end
    local done, cerr = store.exec(log, failed and "ROLLBACK" or "COMMIT")
    if not failed and not done then store.exec(log, "ROLLBACK"); err, failed = cerr, true end
  end
  if failed then   -- (not written: kept for a later open)
    -- (the claimed file goes back under its name when none was kept since:
    -- a rename needs no space; a copy on a full disk was cut, and the
    -- claimed file, the rows' last copy, removed all the same)
    if core.file_kind(name) ~= nil or not os.rename(claimed, name) then
      if append(name, lines) then os.remove(claimed) end   -- (else the rows stay in `claimed`)
    end
    return nil, type(err) == "table" and tostring(err.message) or tostring(err)
  end
  os.remove(claimed)
  return n
end

return M
