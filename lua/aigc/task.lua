--- Tasks, the scheduler and futures: how the Lua layer waits.
--
-- Internal: the client's `spawn`, `sleep`, `step`, `act`, `active` and
-- `close` are built on it, and futures wait through it. Not part of the API.
--
-- **Tasks.** A task is a coroutine the scheduler runs for a client
-- (`client:spawn`). A wait inside a task — an `aigc.request`'s `wait()`,
-- a future's `wait()`, `client:sleep` — yields `TOKEN` to the scheduler
-- instead of blocking; the loop of the task's client resumes it when what
-- it waits for is over. The C core takes part through
-- `engine:set_scheduler(SCHED)`: its `req:wait()` inside a task registers
-- the task and yields `TOKEN, req`; when the request ends, the core calls
-- `SCHED.resume(co, req)` from its loop and the task resumes with
-- `req:result()`. Every client has the same scheduler, so a task may wait
-- on another client's request or future: its client's loop then drives
-- that client too (a "guest" of the loop) while the task waits. A task
-- that yields anything else (its own `coroutine.yield`) is abandoned: its
-- abandon hooks run, and the error (kind "callback") is reported.
--
-- **Loops.** Each client has a loop: its engine, the tasks asleep in it,
-- the deliveries posted to it, its guests. `step` is the user's turn of
-- it; `turn` is one turn for a blocking wait (usable inside callbacks);
-- `block` is the one place where the Lua layer blocks: it turns the loops
-- a wait needs until the wait is over.
--
-- Futures (`aigc.future`) wait through `in_task`, `wait_in_task` and
-- `block`.
--
-- @module aigc.task
-- @local

local core = require "aigc.core"
local compat = require "aigc.compat"
local util = require "aigc.util"

local coroutine_create, coroutine_resume = coroutine.create, coroutine.resume
local coroutine_status, coroutine_yield = coroutine.status, coroutine.yield
local error, ipairs, next, pairs, pcall, setmetatable, type =
  error, ipairs, next, pairs, pcall, setmetatable, type
local math_huge, math_min = math.huge, math.min
local table_remove = table.remove
local now = core.now
local pack, unpack = compat.pack, compat.unpack

util.own_module()

local M = {}

-- {======================================================
-- The scheduler
-- =======================================================

--- What a task yields to the scheduler when it waits.
M.TOKEN = setmetatable({}, { __name = "aigc.task.token", __tostring = function () return "aigc.task.token" end })
local TOKEN = M.TOKEN

-- coroutine -> its task's record { co =, loop =, name =, waiting =, hooks = }.
-- `co` is the task's own coroutine; on Lua 5.1 the coroutines `M.pcall`
-- runs inside a task map to the same record.
local tasks = setmetatable({}, { __mode = "kv" })   -- (see M.spawn)

-- engine -> its client's loop (weak values too: no cycle through the key).
local loop_of_engine = setmetatable({}, { __mode = "kv" })

-- Whether a wait here may yield: the C core's rule when it has one (it
-- knows when it runs a callback), else the language's.
local yieldable = core.yieldable or compat.isyieldable

-- The running task's record, when the running code may yield to it.
local function current ()
  local co, main = compat.running()
  if main then return nil end
  local rec = tasks[co]
  if rec == nil or not yieldable() then return nil end
  return rec
end

--- The client whose task is running, when the running code can yield to
-- it (nil elsewhere, and inside a callback the core runs in a task).
-- @treturn table|nil
function M.current_client ()
  local rec = current()
  return rec and rec.loop.client
end

local function add_guest (loop, guest)
  loop.guests[guest] = (loop.guests[guest] or 0) + 1
  loop.guest_waits = loop.guest_waits + 1
end

local function remove_guest (loop, guest)
  local n = loop.guests[guest]
  if n == nil then return end
  loop.guests[guest] = n > 1 and n - 1 or nil
  loop.guest_waits = loop.guest_waits - 1
end

local resume_task   -- (defined below)

-- A wait is registered (`rec.waiting = w`) BEFORE anything that may
-- allocate between it and the task's yield: any allocation may run a
-- finalizer, and a finalizer may call anything in aigc -- a blocking call
-- drives the loop, which may end what the task waits for and wake it
-- right there. A wake that found no registration was lost and the task
-- slept for ever (the lifecycle tester's LuaJIT hang, seed 310013
-- sequence 19: a finalizer's blocking call ended the request of a task
-- whose core wait was not registered yet). `w` is what the task waits for
-- now: a fresh table per wait (a waker of an older wait can never resume
-- it in the middle of another), or the C request of a core wait.

-- Suspends the task until wake(rec, w), w being registered: returns at
-- once when it was woken already (before it could yield). Returns what
-- the waker passed.
local function suspend (rec, w)
  if rec.waiting ~= w then return end
  return coroutine_yield(TOKEN)
end

-- (Nothing allocates from the check to the resume: a wake that raised
-- after taking the wait, out of memory, would leave the task asleep for
-- ever.)
local function wake (rec, w, ...)
  if rec.waiting ~= w then return end
  rec.waiting = false
  if type(w) == "table" then   -- (once: a wake that failed may come again)
    local gs = w.guests
    if gs then
      w.guests = nil
      for i = 1, #gs do remove_guest(rec.loop, gs[i]) end
    end
    local s = w.sleeper
    if s then
      w.sleeper = nil
      local list = rec.loop.sleepers
      for i = #list, 1, -1 do
        if list[i] == s then table_remove(list, i); break end
      end
    end
  end
  -- (PUC 5.1: a wait under a C call -- pcall, a generic for's iterator --
  -- cannot yield; its error went on through the task, which may have ended
  -- since: nobody to resume. And a task woken before it yielded -- running,
  -- or "normal" under a coroutine of its own -- is not resumed: suspend()
  -- sees the wait is over and goes on.)
  if coroutine_status(rec.co) ~= "suspended" then return end
  resume_task(rec, ...)
end

-- A waker for `w` (a function of no arguments).
local function waker (rec, w)
  return function () wake(rec, w) end
end

-- A wait the C core started (`req:wait()` yielded TOKEN, req; resume_task
-- registered `req` itself as the wait before anything could allocate): the
-- task's loop drives the request's client meanwhile if it is another one.
-- The request may end, and the task be resumed, during the allocations
-- here: then there is nothing left to do.
local function core_wait_started (rec, req)
  if rec.waiting ~= req then return end
  local ok, engine = pcall(req._engine, req)
  local guest = ok and loop_of_engine[engine] or nil
  if guest == nil or guest == rec.loop then return end
  local w = { request = req, guests = { guest } }
  if rec.waiting ~= req then return end
  add_guest(rec.loop, guest)   -- (no allocation from here to the assignment)
  rec.waiting = w
end

-- Errors made in advance, for when no other can be made (out of memory):
-- a task that failed or was abandoned must still end what it was doing.
local NO_MEMORY = core.error { kind = "limit", message = "not enough memory (Lua) in a task" }
local UNREPORTABLE = core.error {
  kind = "callback", message = "error in a task (it could not be made into an error object)" }

-- Whether `e` is Lua's out-of-memory error (find allocates nothing).
local function is_memory (e)
  return type(e) == "string" and e:find("not enough memory", 1, true) ~= nil
end

-- SCHED.resume: the core's request ended; resume the task that waits on it.
-- An error before the resume (out of memory, a host's debug hook) leaves the
-- task waiting and is raised: the core keeps this waiter for its next turn.
local function resume_from_core (co, req)
  local rec = tasks[co]
  local w = rec and rec.waiting
  if not w or (w ~= req and (type(w) ~= "table" or w.request ~= req)) then return end
  local ok, res, err = pcall(req.result, req)
  if not ok then res, err = nil, is_memory(res) and NO_MEMORY or UNREPORTABLE end
  local woke, e = pcall(wake, rec, w, res, err)   -- (a hook may raise before wake took the wait, or after)
  if not woke and (rec.waiting == false or rec.waiting == w) and tasks[co] == rec
     and coroutine_status(co) == "suspended" then
    rec.waiting = w   -- (not resumed: the key exists, this allocates nothing)
    error(e, 0)   -- (request.c, run_waiters: kept; reported unless memory)
  end
end

--- The scheduler the C core is given (`engine:set_scheduler`).
M.SCHED = { tasks = tasks, token = TOKEN, resume = resume_from_core }

local function make_task_error (co, err, what)
  what = what or "a task started with client:spawn"
  local traceback = debug.traceback(co, util.error_text(err))
  if is_memory(err) then
    return core.error { kind = "limit", message = "not enough memory (Lua) in " .. what, traceback = traceback }
  end
  return util.callback_error(what, err, traceback)
end

-- The error object a task's error `err` becomes (kind "callback", "limit"
-- for memory). Never raises.
local function task_error (co, err, what)
  local ok, e = pcall(make_task_error, co, err, what)
  if ok then return e end
  return (is_memory(err) or is_memory(e)) and NO_MEMORY or UNREPORTABLE
end

local function report (rec, err)
  pcall(util.report, rec.loop.client, err)
end

-- A task failed (an error escaped it) or was abandoned, with `err` (an
-- error object): what it was doing must end. Its hooks run (last first),
-- each once (taken off the list first: this may run again, see
-- resume_task; a hook that ran out of memory is tried again, so hooks
-- must be idempotent); one that returns true delivered the error (it
-- failed a future with it), which is then not reported again.
local function end_task (rec, err)
  tasks[rec.co] = nil
  local hooks = rec.hooks
  while hooks and #hooks > 0 do
    local hook = hooks[#hooks]
    hooks[#hooks] = nil
    local ok, took = pcall(hook, err)
    for _ = 1, 8 do   -- (out of memory: tried again, the next try may find some)
      if ok or not is_memory(took) then break end
      ok, took = pcall(hook, err)
    end
    if not ok then report(rec, task_error(rec.co, took, "a hook of a task that ended"))
    elseif took then rec.delivered = true end
  end
  if not rec.delivered then
    rec.delivered = true
    report(rec, err)
  end
end

local function abandoned_error (co)
  return core.error {
    kind = "callback",
    message = "a task yielded outside aigc (its own coroutine.yield, not an aigc wait): it is abandoned",
    traceback = debug.traceback(co),
  }
end

-- A task that yields outside aigc cannot be resumed by anyone who knows
-- what it waits for: it is abandoned.
local function abandon (rec)
  tasks[rec.co] = nil
  local ok, err = pcall(abandoned_error, rec.co)
  if not ok then err = task_error(rec.co, err, "an abandoned task") end
  pcall(compat.close_coroutine, rec.co)
  end_task(rec, err)
end

-- What follows a task's resume (its results ok, a, b).
local function after_resume (rec, ok, a, b)
  local co = rec.co
  if not ok then
    tasks[co] = nil
    end_task(rec, task_error(co, a, rec.name))
  elseif coroutine_status(co) == "dead" then
    tasks[co] = nil
  elseif a ~= TOKEN then
    abandon(rec)
  elseif b ~= nil then
    -- (out of memory, the wait stays the request's alone: it still ends)
    pcall(core_wait_started, rec, b)
  end
end

-- Resumes a task; ends it (end_task) if it fails. What follows the resume
-- is tried again when it raises (out of memory: a call, an error object;
-- the next try may find memory): a failed task whose end was lost would
-- leave the future it works for pending for ever.
function resume_task (rec, ...)
  local ok, a, b = coroutine_resume(rec.co, ...)
  -- a core wait is registered first (see suspend above); nothing before
  -- this assignment allocates (the key exists: see M.spawn)
  if ok and a == TOKEN and b ~= nil then rec.waiting = b end
  for _ = 1, 8 do
    if pcall(after_resume, rec, ok, a, b) then return end
  end
  after_resume(rec, ok, a, b)
end

-- Passes on what the task's body returned (its first argument is the
-- record, kept on the task's frame until then).
local function keep (_, ...)
  return ...
end

-- (see M.spawn; `hook`: a first abandon hook, or nil)
local function start (loop, fn, name, hook, ...)
  -- The task's own frame holds its record (`rec` is an upvalue of the body,
  -- whose frame stays under fn's: no tail call), so the record lives as
  -- long as the coroutine and `tasks` is weak in both keys and values. A
  -- weak-keyed table whose value refers to its key keeps both forever on
  -- Lua 5.1 and LuaJIT (no ephemerons): a task nobody can resume any more
  -- (its client dropped) kept its client, its engine and its sockets.
  -- (`waiting` is false, not nil, when it waits for nothing: the key
  -- exists from the start, so registering a wait never allocates)
  local rec = { loop = loop, name = name, waiting = false, delivered = false, hooks = hook and { hook } or false }
  local co = coroutine_create(function (...)
    return keep(rec, fn(...))
  end)
  rec.co = co
  tasks[co] = rec
  resume_task(rec, ...)
  return co
end

--- Starts `fn(...)` as a task of `loop`'s client, at once (it runs until
-- its first wait). `name` says what it is in the error an uncaught error
-- becomes ("a task started with client:spawn" by default).
-- @tparam table loop
-- @tparam function fn
-- @tparam[opt] string name
-- @treturn thread the task's coroutine
function M.spawn (loop, fn, name, ...)
  return start(loop, fn, name, nil, ...)
end

--- `spawn`, with `hook(err)` registered before the task runs: it runs if
-- the task fails (an error escapes it, whatever raised it: memory, an
-- error value no `tostring` takes) or is abandoned, and returns true when
-- it delivered the error (it failed a future with it: then the error is
-- not reported). For work whose end someone waits for (`future.run`).
-- @tparam table loop
-- @tparam function fn
-- @tparam string name
-- @tparam function hook
-- @treturn thread the task's coroutine
function M.spawn_guarded (loop, fn, name, hook, ...)
  return start(loop, fn, name, hook, ...)
end

--- Registers `fn(err)` to run if the running task is abandoned or fails
-- (an error escapes it); it returns true when it delivered the error. Returns a handle for
-- `forget_abandon`, or nil outside tasks.
-- @tparam function fn
-- @return handle
function M.on_abandon (fn)
  local co = compat.running()
  local rec = co and tasks[co]
  if rec == nil then return nil end
  if not rec.hooks then rec.hooks = {} end
  rec.hooks[#rec.hooks + 1] = fn
  return fn
end

--- Removes a hook `on_abandon` registered.
-- @param handle
function M.forget_abandon (handle)
  local co = compat.running()
  local rec = handle and co and tasks[co]
  local list = rec and rec.hooks
  if not list then return end
  for i = #list, 1, -1 do
    if list[i] == handle then table_remove(list, i); return end
  end
end

--- `pcall` that a wait inside it may yield across. Every Lua but PUC 5.1
-- yields across pcall; there, inside a task, `f` runs in a coroutine of
-- its own that counts as the task, and its yields pass through.
-- @function pcall
--- `xpcall(f, handler, ...)` likewise; on 5.1 the handler gets the
-- coroutine where the error was raised as a second argument (the stack
-- is there, not under the handler).
-- @function xpcall
-- What a coroutine's resume returned, after the wait the task `rec` is in
-- now (rec.waiting, read before anything allocates; a core wait is
-- registered here as resume_task does). No task: nothing to register.
local function with_wait (rec, ok, a, b, ...)
  if rec == nil then return nil, ok, a, b, ... end
  if ok and a == TOKEN and b ~= nil then rec.waiting = b end
  return rec.waiting, ok, a, b, ...
end

-- Runs `f(...)` in a coroutine of its own that counts as the task `rec`
-- (when given): its aigc waits pass through to the task's scheduler and
-- its results come back. Returns as xpcall does (the handler gets the
-- coroutine where the error was raised as a second argument); `guard`:
-- a yield that is not an aigc wait (anything but TOKEN, or any yield
-- outside a task) stops it there (closed, never resumed) and returns nil,
-- then what it yielded. Without `guard` such a yield passes on up.
local function run_in (rec, guard, f, handler, ...)
  -- (its frame holds the record, which holds the task: a waiter holding
  -- this coroutine keeps them, `tasks` being weak; see M.spawn)
  local inner = coroutine_create(function (...)
    return keep(rec, f(...))
  end)
  if rec ~= nil then tasks[inner] = rec end   -- its waits are the task's
  local r = pack(with_wait(rec, coroutine_resume(inner, ...)))
  while true do
    if not r[2] then
      tasks[inner] = nil
      if handler then return false, handler(r[3], inner) end
      return false, r[3]
    end
    if coroutine_status(inner) == "dead" then
      tasks[inner] = nil
      return true, unpack(r, 3, r.n)
    end
    if guard and (rec == nil or r[3] ~= TOKEN) then
      tasks[inner] = nil
      compat.close_coroutine(inner)
      return nil, unpack(r, 3, r.n)
    end
    local w = r[1]
    if r[3] == TOKEN and w and rec.waiting ~= w then
      -- its wait ended while pack() allocated (a finalizer drove the
      -- loop; see suspend): it goes on at once, a core wait with its result
      if type(w) == "table" then r = pack(with_wait(rec, coroutine_resume(inner)))
      else r = pack(with_wait(rec, coroutine_resume(inner, w:result()))) end
    else
      r = pack(with_wait(rec, coroutine_resume(inner, coroutine_yield(unpack(r, 3, r.n)))))
    end
  end
end

if compat.yield_across_pcall then
  M.pcall, M.xpcall = pcall, compat.xpcall
else
  local function run (f, handler, ...)
    -- (not in a finalizer that runs on the task: its waits block)
    local rec = current()
    if rec == nil then
      if handler then return compat.xpcall(f, handler, ...) end
      return pcall(f, ...)
    end
    return run_in(rec, false, f, handler, ...)
  end
  M.pcall = function (f, ...) return run(f, nil, ...) end
  M.xpcall = function (f, handler, ...) return run(f, handler, ...) end
end

--- `xpcall(f, handler, ...)` for code the user gives aigc to run (a tool)
-- that must not yield outside aigc: `f` runs in a coroutine of its own.
-- Inside a task its aigc waits yield to the loop (on every Lua, across
-- pcall on 5.1 too); elsewhere they block. Returns true and f's results;
-- false and what `handler(err, co)` returned (`co`: the coroutine where
-- the error was raised); or nil when f yielded outside aigc (its own
-- `coroutine.yield`): it is then stopped, never resumed.
-- @tparam function f
-- @tparam function handler
-- @return ok (true, false, or nil for a yield), then results
function M.guarded_xpcall (f, handler, ...)
  return run_in(current(), true, f, handler, ...)
end

-- }======================================================


-- {======================================================
-- Loops
-- =======================================================

--- A client's loop.
-- @tparam table client
-- @param engine its `aigc.core` engine
-- @treturn table the loop
function M.new_loop (client, engine)
  local loop = {
    client = client, engine = engine,
    sleepers = {},     -- tasks asleep: { at =, rec =, w = }
    posted = {},       -- functions the next turn runs (deliveries "from the loop")
    guests = {},       -- loops this one drives for its tasks: loop -> tasks waiting there
    guest_waits = 0,   -- tasks of this client waiting on another client
    futures = setmetatable({}, { __mode = "k" }),   -- pending futures close() cancels
    closed = false,
  }
  loop_of_engine[engine] = loop
  engine:set_scheduler(M.SCHED)
  return loop
end

-- Tells the engine when the loop's tasks next need a turn (`at`, on
-- `now()`'s clock, or nil), for an external loop's timer (client:watch):
-- its watcher hears it at once, or at the end of the turn running now.
-- What is told may be earlier than needed (a sleeper woken otherwise): the
-- external loop then calls act() once for nothing, which tells it again.
local function tell_wake (loop, at)
  if loop.closed or loop.told_wake == at then return end
  loop.told_wake = at
  loop.engine:set_task_deadline(at)
end

local function report_delivery_error (loop, e)
  util.report(loop.client, util.callback_error("a delivery", e))
end

--- Runs `fn` from the loop: at the end of its next turn (at once when the
-- client is closed: no turn will come). For deliveries that must not
-- happen inside the call that causes them (cancel) or in a finalizer.
-- An error in fn is reported.
-- @tparam table loop
-- @tparam function fn
function M.post (loop, fn)
  if loop.closed then
    local ok, e = pcall(fn)
    if not ok then pcall(report_delivery_error, loop, e) end
    return
  end
  local posted = loop.posted
  posted[#posted + 1] = fn
  tell_wake(loop, now())
end

local function run_posted (loop)
  local list = loop.posted
  if #list == 0 then return end
  loop.posted = {}
  for _, fn in ipairs(list) do
    local ok, e = pcall(fn)
    if not ok then pcall(report_delivery_error, loop, e) end   -- (the next ones run still)
  end
end

-- (w is registered already; the allocation may end the wait: then no sleeper)
local function add_sleeper (loop, at, rec, w)
  local s = { at = at, rec = rec, w = w }
  if rec.waiting ~= w then return end
  w.sleeper = s
  local list = loop.sleepers
  list[#list + 1] = s
  local told = loop.told_wake
  if told == nil or at < told then tell_wake(loop, at) end
end

local function wake_sleepers (loop)
  local list, t = loop.sleepers, now()
  local i = 1
  while i <= #list do
    local s = list[i]
    if s.at <= t then
      table_remove(list, i)
      s.w.sleeper = nil
      wake(s.rec, s.w)
    else
      i = i + 1
    end
  end
end

--- What the loop has to do besides its engine's requests: tasks asleep
-- or waiting on another client, deliveries to run.
-- @tparam table loop
-- @treturn integer
function M.pending (loop)
  return #loop.sleepers + #loop.posted + loop.guest_waits
end
local pending = M.pending

-- The longest a turn waits on its own sockets while tasks wait on another
-- client (whose sockets are not in this wait).
local GUEST_SLICE = 0.005

-- `timeout`, shortened to the soonest sleeper and, with guests, to GUEST_SLICE.
local function wait_bound (loop, timeout)
  if type(timeout) ~= "number" or timeout <= 0 then return timeout end
  local t, soonest = now(), math_huge
  for _, s in ipairs(loop.sleepers) do
    if s.at < soonest then soonest = s.at end
  end
  if soonest - t < timeout then timeout = soonest > t and soonest - t or 0 end
  if next(loop.guests) ~= nil and timeout > GUEST_SLICE then timeout = GUEST_SLICE end
  return timeout
end

-- A guest that cannot be driven now (closed, or busy in a callback of its
-- own further up the stack) is left for the next turn.
local function refused (e)
  return type(e) == "string" and (e:find("closed client", 1, true) or e:find("inside an aigc callback", 1, true)
                                  or e:find("already running", 1, true))
end

-- Drives the loops this one's tasks wait on (no recursion: a guest does
-- not drive back a loop that is driving it). A guest's callback errors
-- stay the guest's (its error_handler ran; without one, its step()
-- returned them and they are given back to it, for the user's next
-- step() of that client): the host's step() never returns them.
local function drive_guests (loop)
  if next(loop.guests) == nil or loop.driving_guests then return end
  loop.driving_guests = true
  local list = {}
  for g in pairs(loop.guests) do list[#list + 1] = g end
  for _, g in ipairs(list) do
    if not g.driving_guests and not g.closed then
      local ok, _, gerrors = pcall(M.step, g, 0)
      if not ok and not refused(_) then
        loop.driving_guests = nil
        error(_, 0)
      end
      for _, e in ipairs(ok and gerrors or {}) do g.engine:report(e) end
    end
  end
  loop.driving_guests = nil
end

--- The count `step()`, `act()` and `active()` agree on: the engine's
-- requests (queued, running, ends to deliver) plus `pending`.
-- @tparam table loop
-- @treturn integer
function M.count (loop)
  if loop.closed then return 0 end
  local ok, n = pcall(loop.engine.active, loop.engine)   -- (raises once closed)
  if not ok then return 0 end
  return n + pending(loop)
end

-- When the loop's tasks next need a turn: now when deliveries are posted,
-- soon when tasks wait on another client (GUEST_SLICE, as a step's wait),
-- else when the first sleep ends; nil: never.
local function wake_at (loop)
  if #loop.posted > 0 then return now() end
  local soonest
  for _, s in ipairs(loop.sleepers) do
    if soonest == nil or s.at < soonest then soonest = s.at end
  end
  if next(loop.guests) ~= nil then
    local g = now() + GUEST_SLICE
    if soonest == nil or g < soonest then soonest = g end
  end
  return soonest
end

--- The user's turn of the loop (`client:step`): waits at most `timeout`
-- for the network, runs callbacks (at most `budget`), drives the guests,
-- runs what was posted and wakes the tasks whose sleep is over.
-- @tparam table loop
-- @tparam[opt] number timeout
-- @tparam[opt] integer budget
-- @treturn integer what `count` counts after the turn
-- @treturn[opt] table the callback errors reported meanwhile
function M.step (loop, timeout, budget)
  local _, errors = loop.engine:step(wait_bound(loop, timeout), budget)
  drive_guests(loop)
  run_posted(loop)
  if #loop.sleepers > 0 then wake_sleepers(loop) end
  tell_wake(loop, wake_at(loop))
  -- (with the errors the Lua part raised: a future's on_done's, say)
  return M.count(loop), loop.engine:take_errors(errors)
end

--- The Lua part of a turn, after the engine acted on its own (an external
-- loop's `client:act()`): as in `step`, the guests are driven, what was
-- posted runs, the tasks whose sleep is over wake; then the external loop
-- hears when the tasks next need a turn.
-- @tparam table loop
function M.after_act (loop)
  drive_guests(loop)
  run_posted(loop)
  if #loop.sleepers > 0 then wake_sleepers(loop) end
  tell_wake(loop, wake_at(loop))
end

-- One turn for a blocking wait: like step, but usable inside callbacks
-- (with the core's nested drive), and callback errors stay with the
-- engine for the user's next step(). `request`: a C request the wait is
-- for, pumped if pending (its own turn checks that it can ever start).
local function turn (loop, timeout, request)
  timeout = wait_bound(loop, timeout)
  local engine = loop.engine
  local status = type(request) == "userdata" and request:status()
  if status == "queued" or status == "running" then
    request:pump(timeout)
  elseif engine.drive then
    engine:drive(timeout)
  else   -- (until lane/c2's engine:drive: step, and give its errors back)
    local _, errors = engine:step(timeout)
    for _, e in ipairs(errors or {}) do engine:report(e) end
  end
  drive_guests(loop)
  run_posted(loop)
  if #loop.sleepers > 0 then wake_sleepers(loop) end
end

--- Blocks until `done()` or the deadline, turning `loops` meanwhile: the
-- one loop in which the Lua layer blocks. Returns whether `done()`.
-- @tparam function done
-- @tparam table loops
-- @tparam[opt] number deadline on `aigc.now()`'s clock
-- @param[opt] request a C request the wait is for
-- @treturn boolean
function M.block (done, loops, deadline, request)
  local slice = #loops > 1 and GUEST_SLICE or 0.05
  while not done() do
    local left = deadline and deadline - now()
    if left and left <= 0 then return false end
    local open = 0
    for _, loop in ipairs(loops) do
      if not loop.closed then
        open = open + 1
        turn(loop, left and math_min(slice, left) or slice, request)
        if done() then return true end
      end
    end
    if open == 0 then return done() end
  end
  return true
end
local block = M.block

--- Sleeps `seconds`: inside a task it yields (the task's own client's
-- loop wakes it); elsewhere it turns `loop` meanwhile.
-- @tparam table loop
-- @tparam number seconds
function M.sleep (loop, seconds)
  local rec = current()
  if rec then
    local w = {}
    rec.waiting = w
    add_sleeper(rec.loop, now() + seconds, rec, w)
    suspend(rec, w)
    return
  end
  local deadline = now() + seconds
  block(function () return now() >= deadline end, { loop }, deadline)
end

--- Closes the loop's client: its pending futures are canceled, then the
-- engine is closed (its requests end, kind "canceled"; their waiters are
-- resumed); what was posted runs. Idempotent.
-- @tparam table loop
function M.close (loop)
  if not loop.closed then
    local list = {}
    for f in pairs(loop.futures) do list[#list + 1] = f end
    for _, f in ipairs(list) do pcall(f.cancel, f, "the client was closed") end
  end
  loop.engine:close()
  if loop.closed then return end
  loop.closed = true
  run_posted(loop)
end

-- }======================================================


-- {======================================================
-- Waiting
-- =======================================================

--- The running task's record when the running code may yield to it
-- (else nil): for `wait_in_task`.
-- @treturn table|nil
M.in_task = current

--- Waits in the task of `rec` (from `in_task`) until `register`'s waker
-- is called or `timeout` seconds pass: `register(wake)` must arrange for
-- `wake()` to be called (from the loop) when the wait is over. Meanwhile
-- the task's loop drives `loops` (the loops what it waits for needs) that
-- are not its own.
-- @tparam table rec
-- @tparam function register
-- @tparam table loops
-- @tparam[opt] number timeout
function M.wait_in_task (rec, register, loops, timeout)
  local w = { guests = {} }
  local wake_me = waker(rec, w)
  rec.waiting = w   -- (registered first: see suspend)
  for _, loop in ipairs(loops) do
    if loop ~= rec.loop and rec.waiting == w then
      add_guest(rec.loop, loop)
      w.guests[#w.guests + 1] = loop
    end
  end
  register(wake_me)
  if timeout then add_sleeper(rec.loop, now() + timeout, rec, w) end
  suspend(rec, w)
end

--- Waits for `x` (an `aigc.request` or a future) as `x:wait()` does:
-- yields inside a task, blocks elsewhere.
-- @param x
-- @return res
-- @return err
function M.await (x)
  return x:wait()
end

-- }======================================================

return M
