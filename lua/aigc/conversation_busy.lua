--- One say at a time: the mark a say holds on its conversation
-- (`conv._busy`, the say's token), taken and let go whatever ends the say
-- (an error, Lua out of memory, the task it runs in abandoned); and the
-- say's commit of its turn to the history, all of it or none.
--
-- Internal: `aigc.conversation`'s. Not part of the API.
--
-- @module aigc.conversation_busy
-- @local

local compat = require "aigc.compat"
local keep_interrupt = require("aigc.core").keep_interrupt
local task = require "aigc.task"
local util = require "aigc.util"

local error, pcall, setmetatable = error, pcall, setmetatable
local coroutine_status = coroutine.status

util.own_module()

local M = {}

--- Whether a say holds `conv`. A say_async whose future has ended (or was
-- canceled) lets go at once: its task, resumed on a later turn, changes
-- nothing (`_say` commits only what ended well, and `with` frees only its
-- own mark). A future that failed before its say started (Lua out of
-- memory in its task) left the conversation busy for ever.
-- @tparam table conv
-- @treturn boolean
function M.busy (conv)
  local token = conv._busy
  if token == nil then return false end
  if token.in_coroutine then   -- (see M.token)
    local co = token.owner
    if co == nil or coroutine_status(co) == "dead" then return false end
  end
  local fut = token.future
  if not fut then return true end
  local s = fut:status()
  return s == "running" or s == "queued"
end

local WEAK_OWNER = { __mode = "v" }

--- A blocking say's mark: it knows the coroutine the say runs in (weakly).
-- A say in a coroutine of the caller's own (not an aigc task, whose
-- abandon hook frees it) that yields to the caller's scheduler (a
-- function the say runs yielding: its `estimate`) and is never resumed
-- held the conversation for ever: every later say "busy". Once that
-- coroutine is collected (or dead: closed), the mark holds nothing.
-- @treturn table
function M.token ()
  local co, main = compat.running()
  if co == nil or main then return {} end
  return setmetatable({ in_coroutine = true, owner = co }, WEAK_OWNER)
end

local function let_go (conv, token, ...)
  if conv._busy == token then conv._busy = nil end
  return ...
end

-- (let go inside the protected call when fn returns: let go after it, a
-- host's watchdog cut between the two left the conversation busy for ever)
local function hold (conv, token, fn, ...)
  conv._busy = token
  return let_go(conv, token, fn(...))
end

--- Runs `fn(...)` with `conv` busy (`token`: this say's mark); not busy
-- after, whatever happens -- unless another say took the conversation
-- meanwhile (this one's future was canceled: see `busy`). The mark is
-- taken inside the pcall: taken before it (and before the hook that
-- frees it was registered), Lua out of memory between the two left the
-- conversation busy for ever ("attempt to say: the conversation is busy").
-- @tparam table conv
-- @tparam table token
-- @tparam function fn
-- @return what fn returns (what it raises is raised)
function M.with (conv, token, fn, ...)
  local function free () if conv._busy == token then conv._busy = nil end end
  local hook = task.on_abandon(free)
  -- (a host's watchdog is marked where it is raised, so that it stays an
  -- interrupt once raised on: future.run's catch passes it on)
  local ok, res, err = task.xpcall(hold, keep_interrupt, conv, token, fn, ...)
  free()
  task.forget_abandon(hook)
  if not ok then error(res, 0) end
  return res, err
end

local function append (list, n, items)
  for i = 1, #items do list[n + i] = items[i] end
end

--- Appends `items` to `list` (a say's turn to its history): all of them
-- or, whatever cuts it (a host's watchdog at any instruction, Lua out of
-- memory: raised on), none. A cut between a turn's appends kept its user
-- message without the reply: the next say sent two user turns in a row.
-- @tparam table list
-- @tparam table items
function M.append_all (list, items)
  local n = #list
  local ok, e = compat.xpcall(append, keep_interrupt, list, n, items)
  if not ok then
    for i = #list, n + 1, -1 do list[i] = nil end
    error(e, 0)
  end
end

--- say_async's: marks `conv` at once (a second say_async before the task
-- runs is refused) and returns `start(token)`'s future, kept in the token
-- (the key made with it: setting it allocates nothing). What start raises
-- lets go of the mark and is raised.
-- @tparam table conv
-- @tparam function start
-- @treturn aigc.future
function M.start (conv, start)
  local token = { future = false }
  conv._busy = token
  local ok, fut = pcall(start, token)
  if not ok then
    if conv._busy == token then conv._busy = nil end
    error(fut, 0)
  end
  token.future = fut
  return fut
end

return M
