--- The iterator form of streaming (`client:stream`): an `aigc.stream`.
--
-- The request's stream callback queues each chunk's delta; the iterator
-- takes them in order and, when the queue is empty, waits for the next
-- event — a chunk or the request's end — on a future (`aigc.task`): it
-- yields inside a task and drives the client elsewhere. See
-- `client:stream` for the use.
--
-- @classmod aigc.stream

local future = require "aigc.future"
local util = require "aigc.util"

local error, pairs, setmetatable, type = error, pairs, setmetatable, type

util.own_module()

local M = {}

local Stream = {}
Stream.__index = Stream
Stream.__name = "aigc.stream"

-- An event arrived (a chunk, or the end): the iterators waiting for it go on.
-- `_next` is the one future every waiting reader of the stream shares (a
-- task and the main thread may both read it, or a callback while a
-- blocking reader waits): a reader that put a future of its own there
-- replaced the others', which no event settled any more -- a task slept
-- for ever (its guest wait kept its client's active() above 0: lifecycle
-- seed 330894 seq 30), a blocking reader hung.
-- `_next` is cleared only once `f` is resolved: calling resolve may raise
-- (Lua out of memory growing the stack) before it settles anything, and
-- the request's end (its on_error, kind "callback") must then still find
-- `f` to wake the reader, which otherwise waited for ever. (A reader woken
-- by resolve may have put a future of its own there already: kept.)
local function event (s)
  local f = s._next
  if f then
    f:resolve(true)
    if s._next == f then s._next = nil end
  end
end

-- Whether the future `f` is still pending (not settled or canceled).
local function waiting (f)
  local st = f:status()
  return st == "running" or st == "queued"
end

--- A stream for `params` (checked): the stream object, and the params to
-- submit (a copy, whose callbacks feed the stream and call the user's).
-- @tparam table loop the client's loop
-- @tparam table params
-- @treturn aigc.stream
-- @treturn table
-- @local
function M.new (loop, params)
  local s = setmetatable({ _loop = loop, _deltas = {}, _chunks = {}, _first = 1, _last = 0 }, Stream)
  local user_stream, user_done, user_error = params.stream, params.on_done, params.on_error
  local p = {}
  for k, v in pairs(params) do p[k] = v end
  p.stream = function (delta, chunk)
    if type(user_stream) ~= "boolean" and user_stream ~= nil then user_stream(delta, chunk) end
    local last = s._last + 1
    s._deltas[last] = delta or ""
    s._chunks[last] = chunk
    s._last = last
    event(s)
  end
  -- The end is an event too (the contract gives every request with
  -- callbacks exactly one of them, cancel and close included).
  p.on_done = function (res)
    event(s)
    if user_done then user_done(res) end
  end
  p.on_error = function (err)
    event(s)
    if user_error then user_error(err) end
  end
  return s, p
end

--- The next delta and chunk, or nil at the end; raises the error object
-- if the stream failed or was canceled.
-- @treturn string|nil delta
-- @treturn table chunk
function Stream:__call ()
  local req = self.request
  while true do
    local status = req:status()
    if status == "canceled" then
      -- Nothing after cancel, not even what had arrived before it.
      self._deltas, self._chunks, self._first, self._last = {}, {}, 1, 0
      local _, err = req:result()
      error(err, 0)
    end
    if self._first <= self._last then break end
    if status == "done" then
      return nil
    elseif status == "failed" then
      local _, err = req:result()
      error(err, 0)
    end
    local f = self._next
    if f == nil or not waiting(f) then
      f = future.new(self._loop, { label = "stream event", request = req })
      -- (a finalizer run by that allocation may have started a wait of its
      -- own on this stream: share it)
      local other = self._next
      if other ~= nil and waiting(other) then f = other else self._next = f end
    end
    -- future.new allocates: a finalizer may have driven this client in
    -- between and delivered chunks or the end while no future was there to
    -- wake (the iterator then waited for ever). With `_next` set, later
    -- events wake `f`; what came before it is checked here. A reader that
    -- does not wait leaves `f` in place: another one may be waiting on it.
    if self._first > self._last and req:status() == status then f:wait() end
    if self._next == f and not waiting(f) then self._next = nil end
  end
  local i = self._first
  local delta, chunk = self._deltas[i], self._chunks[i]
  self._deltas[i], self._chunks[i] = nil, nil
  self._first = i + 1
  return delta, chunk
end

--- The iterator with the stream as the generic for's closing value: on Lua
-- 5.4, leaving the loop early (break, return, an error) cancels the
-- request. At the loop's normal end the request is already over and
-- nothing happens. (Lua 5.1-5.3, LuaJIT: call `s:close()` after a break.)
-- @treturn aigc.stream the iterator, nil, nil, and the closing value
-- @usage for delta in s:deltas() do io.write(delta); if done then break end end
function Stream:deltas ()
  return self, nil, nil, self
end

--- The outcome once the loop ended: the accumulated response, or nil, err.
-- @treturn[1] table res
-- @treturn[2] nil
-- @treturn[2] aigc.error err
-- @usage for d in s:deltas() do io.write(d) end; print(assert(s:result()).usage.total_tokens)
function Stream:result ()
  return self.request:result()
end

--- Cancels the stream (kind "canceled"); nothing is delivered after.
-- @tparam[opt] string why the error message
-- @treturn boolean whether it was still going
-- @usage if player_left then s:cancel() end
function Stream:cancel (why)
  return self.request:cancel(why)
end

--- Closes the stream: cancels it if it is still going (the explicit form of
-- leaving the loop; on Lua 5.4 `local s <close>` does it at the end of the scope).
-- @usage for d in s do if d == "" then break end end; s:close()
function Stream:close ()
  self.request:cancel("the stream was closed")
end

Stream.__close = Stream.close

function Stream:__tostring ()
  return "aigc.stream (" .. self.request:status() .. ")"
end

M.Stream = Stream

return M
