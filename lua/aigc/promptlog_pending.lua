--- A client's prompt log (`prompt_log`) written from its loop without
-- waiting for the database's lock.
--
-- Each call's row was written with the log's busy timeout (10 s) where the
-- call ended: inside `client:step(0)`. While another process held the lock
-- (a second `aigc`, a backup), the write waited there, and a game's frame
-- froze as long (2.5 s for a lock held 3 s). A write from the loop now
-- waits at most `LOOP_WAIT_MS`; a row the lock kept out is kept in memory
-- (at most `MAX`, in order) and written at a later step, call or `close()`.
-- A blocking call outside a task waits for the lock as long as the log
-- says (its caller waits anyway), and so does `close()`.
--
-- @module aigc.promptlog_pending
-- @local

local store = require "aigc.promptlog_store"
local kept = require "aigc.promptlog_kept"
local pcall_passing_interrupts = require("aigc.util").pcall_passing_interrupts   -- (an interrupt goes on up)

local error, getmetatable, ipairs, pairs, pcall, setmetatable, tonumber, tostring, type =
  error, getmetatable, ipairs, pairs, pcall, setmetatable, tonumber, tostring, type
local newproxy = rawget(_G, "newproxy")   -- (Lua 5.1, LuaJIT)
local task = require "aigc.task"
local pack = require("aigc.compat").pack
local thread_interrupt = require("aigc.core").thread_interrupt
local record_other   -- (defined below)
local table_remove, table_insert = table.remove, table.insert

local M = {}

--- The most rows kept while the lock is held; a row beyond is dropped
-- (and reported).
M.MAX = 64

--- How long a write from the loop waits for the lock, in milliseconds.
M.LOOP_WAIT_MS = 2

-- Whether a write failed on the lock (SQLITE_BUSY: "database is locked";
-- SQLITE_LOCKED: "database table is locked").
local function locked (err)
  local s = type(err) == "table" and err.message or err
  return tostring(s):find("is locked", 1, true) ~= nil
end

-- A copy of `v` that the caller's later changes cannot reach (a game
-- appends to the messages it sent, the dialogue layer sums a reply's
-- usage): what is written later is what the call had.
local function copy (v, depth)
  if type(v) ~= "table" or depth > 200 then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = copy(x, depth + 1) end
  return setmetatable(t, getmetatable(v))
end

-- Writes one entry, waiting at most `wait_ms` for the lock (nil: the
-- log's own busy timeout, which is set back after). Returns the id, or
-- nil and the error.
-- (a log closed -- by its owner, by a finalizer that ran meanwhile -- has
-- no connection: Log:record says so, and nothing else touches it; the
-- PRAGMA failed first with "attempt to index a nil value (field 'con')")
local function write (log, item, wait_ms)
  local saved
  if wait_ms and log.con then
    local rows = store.query_rows(log, "PRAGMA busy_timeout")
    saved = rows and rows[1] and tonumber(rows[1].timeout)
    store.exec(log, "PRAGMA busy_timeout = " .. wait_ms)
  end
  local ok, id, err = pcall(log.record, log, item.entry, item.info)
  if saved and log.con then store.exec(log, "PRAGMA busy_timeout = " .. saved) end
  if not ok then error(id, 0) end
  return id, err
end

-- The text of a failure (a string or an aigc.error).
local function text (why)
  return type(why) == "table" and tostring(why.message) or tostring(why)
end

-- {======================================================
-- The rows kept when the program ends without close()
-- =======================================================

-- Each client's queue of rows is also listed in its log (`log._kept`), and
-- the log holds an object whose finalizer writes them: they were lost when
-- the program ended (or dropped the client) without `client:close()`.
-- That object is made after the log's database connection, so at exit
-- (or in the same collection) its finalizer runs first, the connection
-- still open. A table's __gc on Lua 5.2+; 5.1's and LuaJIT's tables have
-- none, a userdata's then.

-- The connection the finalizer writes through: the log's database opened
-- a second time, its busy timeout `FINAL_WAIT_MS`, made while the program
-- runs. Setting the timeout in the finalizer (a PRAGMA, which gives a
-- LuaSQL cursor) made a userdata there: at exit LuaJIT finalizes such a
-- one after it has unloaded LuaSQL, and the program ended in a
-- segmentation fault. A log in memory (no other process can lock it) is
-- its own.
local function final_log (log)
  if log.path == ":memory:" then return log end
  local ok, driver = pcall(require, "luasql.sqlite3")
  local env = ok and driver.sqlite3()
  local con = env and env:connect(log.path)
  if not con then
    if env then env:close() end
    return nil
  end
  local r = con:execute("PRAGMA busy_timeout = " .. kept.FINAL_WAIT_MS)
  if type(r) == "userdata" then r:close() end
  return setmetatable({ con = con, env = env, path = log.path }, getmetatable(log))
end

-- Writes the rows of every queue through `final_log`, waiting for the
-- lock `FINAL_WAIT_MS` at most (as long as the log said: a program
-- quitting, or dropping its client, while another process held the lock
-- froze 10 s, and lost the rows); from the first the lock keeps out, the
-- rows are kept on disk, scrubbed, for the log's next open
-- (aigc.promptlog_kept). Nothing here makes a userdata with a finalizer.
local function write_kept (log)
  local queues, target = log._kept, log._final_log
  log._kept, log._final_log = {}, nil
  if not log.con or not target then return end   -- (closed by its owner: nothing can be written)
  target.scrub_info = log.scrub_info
  local promptlog = require "aigc.promptlog"
  local left = {}
  for queue in pairs(queues) do
    for _, item in ipairs(queue) do
      local why
      if not left[1] then
        local ok, id, err = pcall(target.record, target, item.entry, item.info)
        why = not ok and id or id == nil and err
      end
      if left[1] or (why and locked(why)) then
        local ok, e = pcall(promptlog.scrubbed_entry, log, item.entry, item.info)
        if ok then left[#left + 1] = e end
      end
    end
  end
  if target ~= log then target:close() end
  if left[1] then kept.save(log, left) end
end

-- Lists `queue` in `log`, giving the log its finalizer the first time
-- (made after the finalizer's connection: it runs first).
local function keep_in (log, queue)
  if not log._kept then
    log._kept = {}
    log._final_log = final_log(log)
    local function finalize () pcall(write_kept, log) end   -- (a finalizer never raises)
    if newproxy then
      log._finalizer = newproxy(true)
      getmetatable(log._finalizer).__gc = finalize
    else
      log._finalizer = setmetatable({}, { __gc = finalize })
    end
  end
  log._kept[queue] = true
end

-- }======================================================

-- Writes the rows kept, oldest first, until one meets the lock (it stays
-- first). `outcome(client, why)` hears each row written (why nil) or lost.
-- `last` (close): nothing is kept after; the first row the lock keeps out
-- ends it, the others lost with it (each would wait as long).
local function flush (client, log, wait_ms, outcome, last)
  local queue = client._log_pending
  while queue[1] do
    local item = table_remove(queue, 1)
    local ok, id, err = pcall_passing_interrupts(write, log, item, wait_ms)
    local why = not ok and id or id == nil and err
    if why and locked(why) then
      if not last then table_insert(queue, 1, item); return end
      if queue[1] then why = text(why) .. "; " .. #queue .. " more calls were not recorded either" end
      outcome(client, why)
      break
    end
    outcome(client, why or nil)
  end
  client._log_pending = nil
  if log._kept then log._kept[queue] = nil end
end

-- Writes through another object's `record_call`; returns why it failed,
-- or nil. It runs in a coroutine of its own (task.guarded_xpcall): a
-- yield of its own (not an aigc wait) stops it there and is its failure.
-- It yielded out of the call it logged: a blocking call in the user's
-- coroutine yielded the writer's values to its resume and never returned,
-- one in a task abandoned the task. An interrupt (a host's debug hook)
-- goes on up, as from any callback.
-- (the run itself may raise: an aigc wait in it, in a task on PUC 5.1,
-- cannot yield across the C calls above it -- a failure too, not lost)
function record_other (log, params, res, err, info)
  local cut
  local r = pack(pcall_passing_interrupts(task.guarded_xpcall, log.record_call, function (e, co)
    cut = thread_interrupt(co, e)
    return e
  end, log, params, res, err, info))
  if cut then error(r[3], 0) end
  if not r[1] then return r[2] end
  if r[2] == nil then return "its record_call yielded outside aigc (its own coroutine.yield, not an aigc wait)" end
  if not r[2] then return r[3] end
  return r[3] == nil and r[4] or nil
end

--- Records a call's end in `log` (an `aigc.promptlog`, or a table with
-- `record_call`): `params`, `res`, `err` and `info` as `record_call`'s.
-- `wait_ms`: the longest wait for the lock (nil: the log's timeout).
-- `outcome(client, why)` hears each row written (why nil) or lost.
-- Raises only an interrupt.
function M.log (client, log, params, res, err, info, wait_ms, outcome)
  local promptlog = require "aigc.promptlog"
  if getmetatable(log) ~= promptlog.Log then   -- (another object with record_call: written now, as it will)
    return outcome(client, record_other(log, params, res, err, info))
  end
  local ok, entry = pcall_passing_interrupts(promptlog.call_entry, params, res, err, info)
  if not ok then return outcome(client, entry) end
  entry.created_at = store.now_iso()   -- (the time of the call's end, however late it is written)
  if client._log_pending then flush(client, log, wait_ms, outcome) end   -- (the older rows first)
  local queue = client._log_pending
  if queue == nil then   -- (none waits: this one is written now)
    local wok, id, werr = pcall_passing_interrupts(write, log, { entry = entry, info = info }, wait_ms)
    local why = not wok and id or id == nil and werr
    if not (why and locked(why)) then return outcome(client, why or nil) end
    queue = {}
    client._log_pending = queue
    keep_in(log, queue)
  elseif #queue >= M.MAX then
    return outcome(client, "the database stayed locked and " .. #queue .. " calls wait to be written already")
  end
  entry.params = promptlog.loggable_params(entry.params)   -- (its toolsets as names, before the copy)
  queue[#queue + 1] = { entry = copy(entry, 0), info = info }
end

--- Writes the rows kept (see `flush`).
-- @tparam table client
-- @tparam aigc.promptlog log
-- @tparam number|nil wait_ms
-- @tparam function outcome
-- @tparam[opt] boolean last
function M.flush (client, log, wait_ms, outcome, last)
  if client._log_pending then flush(client, log, wait_ms, outcome, last) end
end

return M
