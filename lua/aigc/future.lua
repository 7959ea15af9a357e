--- Futures: the Lua implementation of the request interface.
--
-- A future stands for work that is not one C request: a dialogue (the
-- tool-call loop, structured output: `client:chat_async` with a toolset or
-- a schema), a conversation's `say_async`, a race, the stream iterator's
-- next event. It has the interface and the lifecycle of `aigc.request`:
-- `status`, `result`, `wait`, `cancel`, `<close>` (Lua 5.4; `cancel()`
-- everywhere), `__tostring`. Exactly one of its `on_done`/`on_error` runs
-- when it ends, as a task of its client, from the client's loop (never
-- from inside `cancel()`); its waiters (`wait()`) wake when that task has
-- ended, as a request's wait returns after its on_done; `cancel` and `client:close()` give `on_error`
-- an error of kind "canceled", and nothing else is delivered after.
-- Whoever makes one settles it with `resolve(res)` or `reject(err)`; its
-- end is delivered from its client's loop, never from inside them.
--
-- @classmod aigc.future

local core = require "aigc.core"
local compat = require "aigc.compat"
local client_loop = require "aigc.client_loop"
local task = require "aigc.task"
local util = require "aigc.util"

local error, pcall, setmetatable, type = error, pcall, setmetatable, type
local string_format = string.format
local debug_getinfo = compat.getinfo   -- (a sandbox may have no debug library: finds nothing)
local now = core.now
local keep_interrupt, is_interrupt = core.keep_interrupt, core.is_interrupt
-- (the loop's calls that catch what they run pass a host's watchdog on:
-- an error raised in a debug hook goes on up to whoever turned the loop)
local pcall_passing = util.pcall_passing_interrupts

util.own_module()

local M = {}

local Future = {}
Future.__index = Future
Future.__name = "aigc.future"
M.Future = Future

local function pending_state (s) return s == "running" end

local run_end   -- (defined below)

--- A new pending future.
-- @tparam table loop the loop its end is delivered from
-- @tparam[opt] table opts `label` (for tostring: "chat", "say", "race"...),
-- `on_done`, `on_error` (one of them runs, as a task, when it ends), `drivers`
-- (the loops a blocking wait turns; default `{ loop }`), `request` (a C
-- request whose events settle it: a blocking wait pumps it), `what` (names
-- the work in the error it raises, for `run`: "a dialogue task"), `unowned`
-- (not canceled when the loop's client closes: a race's end, which waits
-- for the entries of other clients too), `cancel_waits` (for `run`: a
-- cancel also cancels what the work's task waits for, and will)
-- @treturn aigc.future
-- @local
function M.new (loop, opts)
  opts = opts or {}
  -- (every field settle() sets exists from here on, false when empty:
  -- setting it then allocates nothing -- see settle)
  local f = setmetatable({
    _loop = loop, _state = "running", _label = opts.label or "future",
    _on_done = opts.on_done, _on_error = opts.on_error, _waiters = {},
    _drivers = opts.drivers or { loop }, _request = opts.request,
    _res = false, _err = false, _inner = false, _deliver = false, _in_callback = false, _task = false,
    _cancel_waits = opts.cancel_waits or false, _next_run = false, _cb_ran = false, _cb_entered = false,
  }, Future)
  f._run_end = function () run_end(f) end
  if not opts.unowned then loop.futures[f] = true end
  return f
end

local function report_error (client, what, e)
  util.report(client, util.callback_error(what, e))
end

-- The tasks that run an on_done/on_error (weak keys). Those are callbacks:
-- `client:step()` or `act()` there is misuse, as inside the core's own
-- callbacks (README, "Errors"); it ran a nested turn of the loop.
local callback_tasks = setmetatable({}, { __mode = "k" })

--- Raises (at the caller's caller) when the running task is a future's
-- on_done/on_error: `name` ("client:step()") is refused there.
-- @tparam string name
-- @local
function M.refuse_in_callback (name)
  local co = compat.running()
  if co and callback_tasks[co] then
    error(name .. " called from inside an aigc callback (start requests with chat_async there; "
          .. "they run on the next step)", 3)
  end
end

-- The futures whose waiters are being run, linked through `_next_run` (a
-- key each has from the start: listing one allocates nothing); LAST ends
-- the list. A future is listed before its waiters run and leaves the list
-- when they all have: on Lua 5.1 calling pcall may itself raise out of
-- memory (it grows the stack or CallInfo list) before it protects
-- anything, and the waiter it was to run -- a waker of a task waiting on
-- this future -- was lost, the task asleep for ever. The next turn of a
-- loop runs the ones left (M.finish_waiters). Membership is whether the
-- list reaches it (walked, inline: a call may raise): a host's debug hook
-- may cut between any two stores, and a future marked but off the list
-- is then listed again, not skipped.
local LAST = {}
local waking = LAST

-- Runs f's waiters (the ones added meanwhile too). Each is protected: an
-- error in one is reported and the others still run. One is taken once
-- its pcall returned, unless it ran out of memory: then (a waker whose
-- call to wake raised, on 5.1) it stays, f stays listed, and the next turn
-- runs it again. So waiters tolerate running more than once (a waker
-- does: `wake` checks the wait). Returns whether one stays.
local function run_waiters (f)
  local r = waking
  while r ~= LAST and r ~= f do r = r._next_run end
  if r == LAST then f._next_run = waking; waking = f end   -- (listed: see LAST)
  local client = f._loop.client
  local list, i, left = f._waiters, 1, false
  while list[i] ~= nil do
    local fn = list[i]
    if fn then
      local ok, e = pcall_passing(fn, f)   -- (an interrupt: raised on, the waiter kept for the next turn)
      if ok or not (type(e) == "string" and e:find("not enough memory", 1, true)) then
        list[i] = false
        if not ok then pcall_passing(report_error, client, "a waiter", e) end
      else
        left = true
      end
    end
    i = i + 1
  end
  if left then return true end
  for j = i - 1, 1, -1 do
    if list[j] == false then list[j] = nil end
  end
  if waking == f then waking = f._next_run or LAST; f._next_run = false end
  return false
end

--- Runs the waiters left by a run that raised out or ran out of memory
-- (see LAST), for the loops' turns (SCHED.finish_waiters). What is left
-- again waits for the next turn.
-- @local
function M.finish_waiters ()
  while waking ~= LAST do
    local f = waking
    if pending_state(f._state) and f._deliver then   -- (a settle cut before it ended f: ended now)
      f._state = f._deliver
      f._inner = nil
      f._loop.futures[f] = nil
    end
    if pending_state(f._state) then   -- (cut before its end was recorded: unlisted)
      f._deliver = false
    elseif f._deliver then   -- (neither posted nor run: see settle; or cut)
      run_end(f)
      if f._deliver and not f._in_callback then return end   -- (its callback starts again: next turn)
    -- (not while its on_done/on_error runs: its end runs them)
    elseif not f._in_callback and run_waiters(f) then return end
    if waking == f then waking = f._next_run or LAST; f._next_run = false end
  end
end
task.SCHED.finish_waiters = M.finish_waiters

--- How many futures of `loop` still have their end (or waiters) to run
-- on a next turn (see LAST), for its `active()` count. Allocates nothing.
-- @tparam table loop
-- @treturn integer
-- @local
function M.ends_left (loop)
  local n, f = 0, waking
  while f ~= LAST do
    if f._loop == loop then n = n + 1 end
    f = f._next_run
  end
  return n
end
task.SCHED.ends_left = M.ends_left

-- Takes f off the list while its on_done/on_error task waits (a blocking
-- call in it yielded): the list is the module's, and a future left on it
-- kept its callback, its client and the client's sockets alive after the
-- user dropped them, until some loop turned again (lifecycle seed 637013
-- sequence 12). The task's end lists f again (callback_ended), also when
-- the task is abandoned (spawn_guarded's guard). One store unlinks it: a
-- cut leaves f listed or not, and a listed one whose callback waits is
-- only passed over (finish_waiters).
local function unlist (f)
  if waking == f then waking = f._next_run or LAST; f._next_run = false; return end
  local r = waking
  while r ~= LAST do
    local after = r._next_run
    if after == f then r._next_run = f._next_run or LAST; f._next_run = false; return end
    r = after
  end
end

-- The end of f's on_done/on_error task (however it ended: its last line,
-- an error, abandoned, cut): the rest of f's end -- its waiters -- runs
-- now if that task had to wait (a blocking call in it yielded), from the
-- loop. f is listed first (see LAST): a cut in the post leaves it to the
-- next turn.
local function callback_ended (f)
  local yielded = f._in_callback == "yielded"
  local r = waking
  while r ~= LAST and r ~= f do r = r._next_run end
  if r == LAST then f._next_run = waking; waking = f end
  f._in_callback = false
  if yielded and not pcall_passing(client_loop.post, f._loop, f._run_end) then run_end(f) end
end

-- The call of f's on_done/on_error: marks it entered (`_cb_entered`),
-- then tail-calls cb, which takes this frame's place. So while this frame
-- is on the task's stack cb was not called yet; once it is gone, cb was
-- (see cb_started). No line information: stripped bytecode (`luac -s`,
-- `string.dump(f, true)`, as a game may ship aigc) has none.
local function enter_callback (f, cb, value)
  f._cb_entered = true
  return cb(value)
end

-- The task of f's on_done/on_error. `_cb_ran` is set once cb returned.
-- Nothing when another turn has run cb or runs it now: a turn nested in
-- the run_end that started this task (client:step() from a host's debug
-- hook, or a finalizer's, before this task was marked a callback's: see
-- refuse_in_callback) ran f's end whole, and cb had run twice.
local function callback_task (f, cb, value)
  local co = compat.running()
  if co then callback_tasks[co] = true end
  if f._in_callback or f._cb_ran then return end
  f._in_callback = true
  enter_callback(f, cb, value)
  f._cb_ran = true
  callback_ended(f)
end

-- Whether the dead task `co` of f's callback `cb` had called it: cb is on
-- its stack (the task stopped inside it), or the task stopped in
-- callback_task after enter_callback had marked it and tail-called cb
-- (cb returned: a cut just before `_cb_ran` was set). A task stopped in
-- enter_callback (before its tail call), or before it (`_cb_entered`
-- unset: run_end clears it before each start) had not: the next turn
-- starts it again. (A frame that cannot be read counts as called: never
-- twice.)
local function cb_started (f, co, cb)
  if f._cb_ran then return true end
  for level = 0, 200 do
    local ok, info = pcall(debug_getinfo, co, level, "f")
    -- (no stack at all: closed, an abandoned task -- cb yielded outside aigc)
    if not ok or (info == nil and level == 0) then return true end
    if info == nil then return false end
    local fn = info.func
    if fn == cb then return true end
    if fn == enter_callback then return false end
    if fn == callback_task then return f._cb_entered end
  end
  return true
end

-- Runs f's end: on_done/on_error as a task, then the waiters -- when that
-- task has ended: a blocking call in on_done yields its task, and whoever
-- waits for f (wait(), a task) hears of the end after on_done's, as with
-- a request's on_done, which the loop runs to its end. Restartable: a
-- host's watchdog may cut it at any instruction (the interrupt goes on
-- up); f stays listed (see LAST) and `_deliver` set until its waiters
-- run, so the next turn goes on where it was cut. The callback counts as
-- run once it was called (`_cb_ran`, cb_started): never twice, never zero
-- times.
function run_end (f)
  if not f._deliver or f._in_callback or pending_state(f._state) then return end
  local r = waking   -- (listed first: the call to run_waiters may raise; see LAST)
  while r ~= LAST and r ~= f do r = r._next_run end
  if r == LAST then f._next_run = waking; waking = f end
  local cb, value, what = f._on_done, f._res, "on_done"
  if f._state ~= "done" then cb, value, what = f._on_error, f._err, "on_error" end
  if cb and not f._cb_ran then
    f._cb_entered = false   -- (not started yet: see cb_started)
    local ok, e = pcall_passing(task.spawn_guarded, f._loop, callback_task, what, function (_, co)
      if not cb_started(f, co, cb) then
        f._in_callback = false
        return true   -- (started again by the next turn; not reported)
      end
      f._cb_ran = true
      callback_ended(f)
      return false
    end, f, cb, value)
    if not ok then
      f._in_callback, f._cb_ran = false, true
      pcall_passing(report_error, f._loop.client, what, e)
    end
    if f._in_callback then   -- (its task waits: it runs the waiters when it ends)
      f._in_callback = "yielded"
      unlist(f)
      return
    end
    if not f._cb_ran then   -- (its task was cut before it called cb: the next turn starts it)
      pcall_passing(client_loop.post, f._loop, f._run_end)
      return
    end
  end
  f._on_done, f._on_error = nil, nil
  f._deliver = false
  run_waiters(f)
end

-- Whether f's on_done/on_error still runs, for a wait that is not itself
-- inside such a callback (a callback waiting for another's end could wait
-- for ever: each for the other's).
local function callback_pending (f)
  if not f._in_callback then return false end
  local co = compat.running()
  return not (co and callback_tasks[co])
end

-- Ends f (once). Its end -- on_done/on_error as a task, then the waiters --
-- is posted to the loop; wait() runs it earlier if it comes first. Nothing
-- allocates until f is ended, and its end runs at once if it cannot be
-- posted (out of memory): a future always ends, and its waiters wake.
-- Listed first, its end recorded (`_deliver`: the state it ends in),
-- then ended by one store (`_state`): a host's watchdog that cut between
-- the stores ended it "done" with its end neither posted nor listed -- no
-- on_done, its waiters asleep for ever (future_cut_work_spec). Cut before
-- that store, it is still pending: the next turn ends it as recorded
-- (finish_waiters; a request's on_done that resolved it is not run again).
local function settle (f, state, res, err)
  if not pending_state(f._state) then return false end
  local r = waking   -- (listed until posted: the call to pcall may raise; see LAST)
  while r ~= LAST and r ~= f do r = r._next_run end
  if r == LAST then f._next_run = waking; waking = f end
  f._res, f._err = res, err   -- (not read while pending)
  f._deliver = state
  f._state = state
  f._inner = nil
  f._loop.futures[f] = nil
  if not pcall_passing(client_loop.post, f._loop, f._run_end) then run_end(f) end
  if waking == f and f._deliver then waking = f._next_run or LAST; f._next_run = false end
  return true
end

--- Settles the future with a result (done). Returns whether it was pending.
-- @param res
-- @treturn boolean
function Future:resolve (res)
  return settle(self, "done", res, nil)
end

--- Settles the future with an error (failed). Returns whether it was pending.
-- @param err
-- @treturn boolean
function Future:reject (err)
  return settle(self, "failed", nil, err)
end

--- Records the request the future's work waits for now, so that `cancel`
-- reaches it (and `status` says "queued" while it is). Returns it.
-- @param inner an `aigc.request` or a future
-- @return inner
function Future:track (inner)
  self._inner = inner
  if self._state == "canceled" then inner:cancel(self._err.message) end
  return inner
end

--- Whether the future was canceled (for its work to stop early).
-- @treturn boolean
function Future:canceled ()
  return self._state == "canceled"
end

--- "queued", "running", "done", "failed" or "canceled"; "queued" while the
-- request its work waits for is queued (a client's `max_concurrency`).
-- @treturn string
function Future:status ()
  local s = self._state
  if s == "running" and self._inner and self._inner:status() == "queued" then return "queued" end
  return s
end

--- The outcome: `res`, or `nil, err`; `nil, nil` while pending.
-- @return res
-- @return err
function Future:result ()
  local s = self._state
  if s == "done" then return self._res end
  if pending_state(s) then return nil, nil end
  return nil, self._err
end

--- Waits until the future is over: yields inside a task (of any client:
-- the task's client then drives this future's clients meanwhile), else
-- turns its clients' loops. Then runs its end if the loop has not yet,
-- and waits for its on_done/on_error to end (unless called from inside
-- such a callback: two callbacks could each wait for the other).
-- @tparam[opt] number timeout seconds; then `nil, nil` if still pending
-- (the result, if the future ended but its on_done had not yet)
-- @return res
-- @return err
function Future:wait (timeout)
  if timeout ~= nil and not util.is_duration(timeout) then
    util.argerror("wait", 1, util.expected("a number of seconds >= 0", timeout))
  end
  local rec, deadline = task.in_task(), timeout and now() + timeout
  -- (a tool waiting for its own dialogue's future: the task would wait for
  -- its own end, the future stay "running" forever and client:step() say
  -- 0 active; misuse, raised: the tool's error goes to the model)
  if timeout == nil and rec and rec.co == self._task and pending_state(self._state) then
    util.raise("wait called from inside the work of the request it waits for (it would wait forever)")
  end
  -- (the list is read when the waker is handed over, not before: an
  -- allocation in between may run a finalizer that drives the loop until
  -- the future ended and its waiters ran; then it wakes at once)
  local function register (wake)
    if pending_state(self._state) or self._deliver or callback_pending(self) then
      local waiters = self._waiters
      waiters[#waiters + 1] = wake
    else
      wake()
    end
  end
  if pending_state(self._state) then
    if rec then
      task.wait_in_task(rec, register, self._drivers, timeout)
    else
      client_loop.block(function () return not pending_state(self._state) end, self._drivers,
            deadline, self._request or self._inner)
    end
  end
  -- (run here, then withdrawn: withdrawn first, a raise at the call to
  -- run_end (5.1, out of memory) lost the end)
  local posted = self._deliver
  run_end(self)
  if posted then client_loop.unpost(self._loop, self._run_end) end
  -- Its on_done/on_error's task yielded (a blocking call there): wait
  -- for its end too, as a request's wait returns after its on_done.
  if callback_pending(self) and not (deadline and now() >= deadline) then
    if rec then
      task.wait_in_task(rec, register, self._drivers, deadline and deadline - now())
    else
      client_loop.block(function () return not self._in_callback end, self._drivers, deadline)
    end
  end
  return self:result()
end

--- Cancels: the future becomes "canceled" at once, with an error of kind
-- "canceled", and the request its work waits for is canceled. `on_error`
-- gets that error once, from the loop, never from inside `cancel()`.
-- @tparam[opt] string why the error message
-- @treturn boolean whether it was pending
function Future:cancel (why)
  if not pending_state(self._state) then return false end
  if why ~= nil and type(why) ~= "string" then util.argerror("cancel", 1, util.expected("string", why)) end
  local inner = self._inner
  settle(self, "canceled", nil, core.error { kind = "canceled", message = why or "the request was canceled" })
  if inner then inner:cancel(why) end
  -- (`cancel_waits`: the work's task may wait for requests of its own --
  -- a tool's client:chat, a strategy's candidates --: they end now, and
  -- those it starts from here on, instead of running on, billed, for
  -- nobody; not an upload's, which must still cancel it at the server)
  if self._cancel_waits and self._task then task.cancel_task(self._task, why or "the request was canceled") end
  return true
end

--- Lua 5.4's `local f <close>`: cancels the future if it is still pending.
function Future:__close ()
  self:cancel("the request was closed")
end

function Future:__tostring ()
  return string_format("aigc.future (%s, %s)", self:status(), self._label)
end

--- Runs `fn(f)` as a task of `loop`'s client and returns the future `f`
-- that stands for it: `fn` returns `res` or `nil, err`; an error it raises
-- rejects `f` (kind "callback"), and so does the task being abandoned.
--- Whether `loop`'s client is closed or closing: `loop.closed` is set once
-- the engine's close has returned, but the callbacks that close runs (the
-- ends of what it cancels) come before, when only the engine knows (its
-- methods raise from the start of its close).
-- @tparam table loop
-- @treturn boolean
-- @local
function M.client_closed (loop)
  return loop.closed or not pcall(loop.engine.active, loop.engine)
end

-- Inside `fn`, `f:track(inner)` each request it waits for, and check
-- `f:canceled()` after each wait.
-- @tparam table loop
-- @tparam function fn
-- @tparam[opt] table opts as `new`
-- @treturn aigc.future
-- @local
function M.run (loop, fn, opts)
  local f = M.new(loop, opts)
  local what = opts and opts.what or "a task"
  -- The task's hook is there before it runs: whatever raises in the task
  -- outside fn's pcall (memory; an error value that no tostring takes),
  -- or its being abandoned, still ends f, and wakes its waiters.
  task.spawn_guarded(loop, function ()
    f._task = compat.running()   -- (for cancel and wait)
    -- (an error a host's debug hook raised in fn -- Ctrl-C, a watchdog, one
    -- a tool of the dialogue passed on -- is no error of the work: it goes
    -- on up, out of the turn that resumed the task, and the task's hook
    -- ends f; keep_interrupt marks it where it is raised, on 5.3+)
    local ok, res, err = task.xpcall(fn, keep_interrupt, f)
    if not ok and is_interrupt(res) then error(res, 0) end
    if not ok and type(res) == "string" and res:find("not enough memory", 1, true) then
      -- (Lua out of memory is kind "limit", as in any task: not the "callback" of a raise)
      res, err = nil, core.error { kind = "limit", message = "not enough memory (Lua) in " .. what }
    elseif not ok then
      res, err = nil, util.callback_error(what, res)
    end
    if res ~= nil then f:resolve(res)
    else
      f:reject(err or core.error { kind = "callback", message = what .. " returned neither a result nor an error" })
    end
  end, what, function (err)
    local inner = f._inner
    if inner then pcall(inner.cancel, inner, "the task that waited for it ended") end
    return f:reject(err)
  end)
  return f
end

return M
