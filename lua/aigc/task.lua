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
-- **Loops.** Each client has a loop (`aigc.client_loop`): its engine,
-- the tasks asleep in it, the deliveries posted to it, its guests. A loop
-- wakes its sleepers through `SCHED.wake`; the tasks' waits register
-- there what they wait for.
--
-- Futures (`aigc.future`) wait through `in_task`, `wait_in_task` and
-- `client_loop.block`.
--
-- @module aigc.task
-- @local

local core = require "aigc.core"
local compat = require "aigc.compat"
local client_loop = require "aigc.client_loop"
local util = require "aigc.util"

local coroutine_create, coroutine_resume = coroutine.create, coroutine.resume
local coroutine_status, coroutine_yield = coroutine.status, coroutine.yield
local error, ipairs, pairs, pcall, setmetatable, type = error, ipairs, pairs, pcall, setmetatable, type
local table_remove = table.remove
local add_guests, remove_guests = client_loop.add_guests, client_loop.remove_guests
local add_sleeper, remove_sleeper = client_loop.add_sleeper, client_loop.remove_sleeper
local now = core.now
local pack, unpack = compat.pack, compat.unpack
local compat_xpcall, keep_interrupt, is_interrupt = compat.xpcall, core.keep_interrupt, core.is_interrupt
local thread_interrupt = core.thread_interrupt
-- (what runs a task's end passes a host's watchdog on, at once: the end
-- stays pending, and the next turn goes on with it)
local pcall_passing = util.pcall_passing_interrupts
-- (the same in C, for the calls of every resume, which never yield: a
-- Lua xpcall and its vararg pass cost ~1.9k instructions per request
-- there, bench/README "A watchdog's catches")
local pcall_passing_c = core.pcall_passing

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

local resume_task, finish_resume   -- (defined below)

-- The tasks whose wake or end is pending (see finish_ends), linked through
-- their records (`next_end`, a key each has from the start: listing one
-- allocates nothing); LAST ends the list.
local LAST = {}
local ends = LAST

-- Listing a record and taking the head off are written inline, one store
-- per statement, in this order:
--   list:   local r = ends; while r ~= LAST and r ~= rec do r = r.next_end end
--           if r == LAST then rec.next_end = ends; ends = rec end
--   unlist: if ends == rec then ends = rec.next_end or LAST; rec.next_end = false end
-- Inline: calling a function can itself raise out of memory (a new
-- CallInfo), and a wake that raised there had lost its sleeper. One store
-- per statement: a host's debug hook may raise between any two
-- instructions (a watchdog that cuts a frame: host_media_probe_spec), and
-- `ends` must never be anything but a record or LAST. The multiple
-- assignment this was stored `next_end = false` first and was cut there:
-- `ends` led to a record whose successor was false, and the next turn
-- indexed a boolean. Whether a record is listed is whether the list
-- reaches it (it is short: the resumes in progress, and what raised out),
-- not whether its `next_end` is set: a raise between the two stores left
-- the record marked but off the list, and it was never listed again; its
-- end, when that then raised out too, was lost (the task dead, its future
-- running for ever: task_cut_spec).

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

-- Takes the sleeper of the wait `w` of the task `rec` off its loop. Any
-- number of times: a wake that failed may come again. Allocates nothing.
local function release_sleeper (rec, w)
  if type(w) ~= "table" then return end
  local s = w.sleeper
  if s then
    w.sleeper = nil
    remove_sleeper(rec.loop, s)
  end
end

-- Takes the wait `w` of the task `rec` off its loop: the other clients it
-- drove for it (its entry in the loop's guest waits) and its sleeper.
-- Allocates nothing.
local function release_wait (rec, w)
  remove_guests(rec.loop, w)
  release_sleeper(rec, w)
end

-- A wait the task registered and then could not yield for: on PUC 5.1 a
-- wait under a pcall or a C iterator raises "attempt to yield across a
-- C-call boundary", and that error goes on through the task, whose wait
-- stays registered. Its waker may never run (the stream it waited on
-- canceled), or run once the task waits on something else, and then find
-- another wait and do nothing: the loop's count of guest waits stayed
-- up, and `client:active()` never came back to 0 (the lifecycle tester on
-- 5.1, seed 3726924 sequence 206). The task is running, so `rec.waiting`
-- is stale: called when the task waits again, ends or is abandoned.
-- Allocates nothing.
local function drop_stale_wait (rec)
  local w = rec.waiting
  if w == false then return end
  rec.waiting = false
  release_wait(rec, w)
end

-- (Nothing allocates from the check to the resume: a wake that raised
-- after taking the wait, out of memory, would leave the task asleep for
-- ever.)
-- It is listed first (see finish_ends: on Lua 5.1 each call below may
-- raise, growing the stack, out of memory): a wake that took the wait and
-- raised before the resume left the task asleep for ever.
local function wake (rec, w, ...)
  if rec.waiting ~= w then return end
  rec.woke = w
  local r = ends   -- (list it unless the list reaches it: see LAST)
  while r ~= LAST and r ~= rec do r = r.next_end end
  if r == LAST then rec.next_end = ends; ends = rec end
  rec.waiting = false
  -- (its entry in the loop's guest waits no longer counts, and the next
  -- drive of the guests drops it: a wake cut before the resume, by a
  -- host's watchdog, puts a core wait back -- resume_from_core -- and the
  -- entry counts again, its client driven, where the core kept the wake)
  release_sleeper(rec, w)
  -- (PUC 5.1: a wait under a C call -- pcall, a generic for's iterator --
  -- cannot yield; its error went on through the task, which may have ended
  -- since: nobody to resume. And a task woken before it yielded -- running,
  -- or "normal" under a coroutine of its own -- is not resumed: suspend()
  -- sees the wait is over and goes on.)
  if coroutine_status(rec.co) ~= "suspended" then
    rec.woke = false
    if not rec.ending and ends == rec then ends = rec.next_end or LAST; rec.next_end = false end
    return
  end
  resume_task(rec, ...)
end

-- A waker for `w` (a function of no arguments).
local function waker (rec, w)
  return function () wake(rec, w) end
end

-- Cancels what the task `rec` waits for and what its cancel_on_error
-- sets started (M.cancel_task).
local function cancel_started (rec)
  local why, w = rec.canceled, rec.waiting
  if type(w) == "table" then w = nil end   -- (a core wait is its request)
  if w then pcall(w.cancel, w, why) end
  for set in pairs(rec.scopes or {}) do
    for _, x in pairs(set) do pcall(x.cancel, x, why) end
  end
end

-- A wait the C core started (`req:wait()` yielded TOKEN, req; resume_task
-- registered `req` itself as the wait before anything could allocate): the
-- task's loop drives the request's client meanwhile if it is another one.
-- The request may end, and the task be resumed, during the allocations
-- here, or a turn run meanwhile (a host's debug hook, a finalizer) run
-- this too: the wait stays `req` (`rec.waiting`, which only the resume and
-- the wait's end store), its guest one entry keyed by it (client_loop,
-- add_guests), stored any number of times and dropped again when the
-- wait is found over after the store. Cut by a host's watchdog, it raises
-- the interrupt on and runs again (finish_resume).
local function core_wait_started (rec, req)
  local loop = rec.loop
  if rec.waiting ~= req then remove_guests(loop, req); return end   -- (over: a store cut before its check)
  if rec.canceled then cancel_started(rec) end   -- (see M.cancel_task)
  local ok, engine = pcall_passing_c(req._engine, req)
  local guest = ok and client_loop.of_engine(engine) or nil
  if guest == nil or guest == loop then return end
  local gs = { guest, rec = rec }
  if rec.waiting ~= req then return end
  add_guests(loop, req, gs)
  if rec.waiting ~= req then remove_guests(loop, req) end
end

-- Errors made in advance, for when no other can be made (out of memory):
-- a task that failed or was abandoned must still end what it was doing.
local NO_MEMORY = core.error { kind = "limit", message = "not enough memory (Lua) in a task" }
local CUT = core.error {
  kind = "callback", message = "a task ended, and its end was cut by an error raised meanwhile (a debug hook)" }
local UNREPORTABLE = core.error {
  kind = "callback", message = "error in a task (it could not be made into an error object)" }
-- (what a task's hooks get when a host's debug hook cut it: the interrupt
-- itself goes on up, to whoever turned the loop)
local INTERRUPTED = core.error {
  kind = "callback", message = "a task was stopped by an error raised in a debug hook (a host's watchdog)" }
M.INTERRUPTED = INTERRUPTED

-- Whether `e` is Lua's out-of-memory error (find allocates nothing).
local function is_memory (e)
  return type(e) == "string" and e:find("not enough memory", 1, true) ~= nil
end

-- SCHED.resume: the core's request ended; resume the task that waits on it.
-- An error before the resume (out of memory, a host's debug hook) leaves the
-- task waiting and is raised: the core keeps this waiter for its next turn.
local function resume_from_core (co, req)
  local rec = tasks[co]
  if rec and rec.ending then finish_resume(rec) end   -- (its last resume's end raised out)
  local w = rec and rec.waiting
  if not w or w ~= req then return end
  local ok, res, err = pcall(req.result, req)
  if not ok then res, err = nil, is_memory(res) and NO_MEMORY or UNREPORTABLE end
  -- (a hook may raise before wake took the wait, or after: marked by the
  -- handler, so that the core raises it on, as an interrupt)
  local woke, e = compat_xpcall(wake, keep_interrupt, rec, w, res, err)
  local cut = not woke and is_interrupt(e)   -- (confirmed where it is caught: 5.1, 5.2, LuaJIT)
  if not woke and tasks[co] == rec and rec.ending then
    error(e, 0)   -- (resumed, its end not run: kept, the next call runs it)
  end
  if not woke and (rec.waiting == false or rec.waiting == w) and tasks[co] == rec
     and coroutine_status(co) == "suspended" then
    rec.waiting = w   -- (not resumed: the key exists, this allocates nothing)
    error(e, 0)   -- (request.c, run_waiters: kept; reported unless memory)
  end
  if cut then error(e, 0) end   -- (the task was cut: its end ran; see finish_resume)
end

--- The scheduler the C core is given (`engine:set_scheduler`).
-- (`wake` is for the loops: they wake their sleepers through it)
-- (and `finish_ends`, below: every turn of a loop calls it first)
M.SCHED = { tasks = tasks, token = TOKEN, resume = resume_from_core, wake = wake }

local function make_task_error (co, err, what)
  what = what or "a task started with client:spawn"
  local traceback = compat.traceback(co, util.value_text(err))
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
  pcall_passing(util.report, rec.loop.client, err)
end

-- A task failed (an error escaped it) or was abandoned, with `err` (an
-- error object): what it was doing must end. Its hooks run (last first),
-- each taken off the list once it ran (this may run again, see
-- resume_task; a hook that raised -- out of memory, cut by a host's
-- debug hook -- is tried again, so hooks must be idempotent); one that
-- returns true delivered the error (it failed a future with it), which is
-- then not reported again. (`quiet`: the task was cut by an interrupt,
-- which goes on up instead: nothing is reported.) A hook gets the task's
-- coroutine too, dead, its stack left where it stopped.
local function end_task (rec, err, quiet)
  tasks[rec.co] = nil
  local hooks = rec.hooks
  while hooks and #hooks > 0 do
    local hook = hooks[#hooks]
    local ok, took = pcall_passing(hook, err, rec.co)
    -- (tried again when it raised: out of memory, the next try may find
    -- some; a host's debug hook that cut it, a watchdog, goes on up, the
    -- hook left for the next try: finish_resume)
    for _ = 1, 8 do
      if ok then break end
      ok, took = pcall_passing(hook, err, rec.co)
    end
    -- (taken off once it ran: calling pcall may raise, on 5.1, before it
    -- runs; taken off first, the retry of this end found it gone)
    if hooks[#hooks] == hook then hooks[#hooks] = nil end
    if not ok then report(rec, task_error(rec.co, took, "a hook of a task that ended"))
    elseif took then rec.delivered = true end
  end
  if not rec.delivered then
    rec.delivered = true
    if not quiet then report(rec, err) end
  end
end

local function abandoned_error (co)
  return core.error {
    kind = "callback",
    message = "a task yielded outside aigc (its own coroutine.yield, not an aigc wait): it is abandoned",
    traceback = compat.traceback(co),
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

-- What follows a task's resume (its results ok, a, b). Nothing when a turn
-- run meanwhile (a host's debug hook or a finalizer that steps, between the
-- resume and here) has run it already: its outcome is cleared then, and a
-- task read as yielding `false` was abandoned.
local function after_resume (rec, ok, a, b)
  if not rec.ending then return end
  local co = rec.co
  -- (ended or abandoned: a wait it could not yield for is still registered)
  if not ok or a ~= TOKEN or coroutine_status(co) == "dead" then drop_stale_wait(rec) end
  if not ok and thread_interrupt(co, a) then
    -- (cut by a host's debug hook: its end runs, and finish_resume raises
    -- the interrupt on, marked, to whoever resumed it and up to the caller)
    tasks[co] = nil
    rec.cut = a
    end_task(rec, INTERRUPTED, true)
  elseif not ok then
    tasks[co] = nil
    end_task(rec, task_error(co, a, rec.name))
  elseif coroutine_status(co) == "dead" then
    tasks[co] = nil
  elseif a ~= TOKEN then
    abandon(rec)
  elseif b ~= nil then
    -- (out of memory, the wait stays the request's alone: it still ends;
    -- an interrupt goes on up, and the next turn's finish_resume runs this again)
    pcall_passing_c(core_wait_started, rec, b)
  end
end

-- Resumes a task; ends it (end_task) if it fails. What follows the resume
-- is tried again when it raises (out of memory: a call, an error object;
-- the next try may find memory): a failed task whose end was lost would
-- leave the future it works for pending for ever.
--
-- The resume's outcome is kept on the record (slots that exist: nothing
-- allocates) with `ending` set until what follows it has run: calling
-- pcall can itself raise out of memory before its protection is set up
-- (Lua 5.1 grows its stack or CallInfo list there), and the failed task's
-- end, its hooks included, was then lost (future_settles_spec, 5.1, runs
-- of 4 failed allocations: the task dead, its future running for ever).
-- The raise goes on to whoever resumed the task; resume_from_core then
-- raises again, the core keeps the waiter, and its next call ends it
-- (finish_resume).
function finish_resume (rec)
  local o, done = rec.outcome, false
  for _ = 1, 8 do
    done = pcall_passing_c(after_resume, rec, o[1], o[2], o[3])   -- (an interrupt: `ending` stays, for the next turn)
    if done then break end
  end
  if not done then after_resume(rec, o[1], o[2], o[3]) end
  rec.ending = false
  o[2], o[3] = false, false   -- (what it returned or raised is not kept alive)
  local cut = rec.cut
  if cut then
    rec.cut = false
    error(cut, 0)
  end
end

-- Only resume_from_core retries a resume whose end raised out; a sleeper's
-- wake (client:sleep), a waker (a task waiting on a future), a spawn's
-- first resume have nobody to: the task's end stayed pending, its future
-- running for ever. So the record is listed before it is resumed, and
-- leaves the list when its end has run; one raised out stays there, and
-- the next turn of any loop ends it (finish_ends). (Listed before the
-- resume: a host's debug hook that cut between the resume and `ending`
-- lost its outcome, and a dead task's end with it; finish_ends ends a
-- listed task found dead and not ended, with the error CUT.)
function resume_task (rec, ...)
  if rec.ending then finish_resume(rec) end   -- (the last resume's end first)
  local r = ends   -- (list it unless the list reaches it: see LAST)
  while r ~= LAST and r ~= rec do r = r.next_end end
  if r == LAST then rec.next_end = ends; ends = rec end
  local ok, a, b = coroutine_resume(rec.co, ...)
  -- a core wait is registered first (see suspend above); nothing before
  -- this assignment allocates (the key exists: see M.spawn)
  if ok and a == TOKEN and b ~= nil then
    if rec.waiting ~= false then drop_stale_wait(rec) end   -- (the core registers nothing in Lua)
    rec.waiting = b
  end
  rec.woke = false   -- (resumed: see wake)
  local o = rec.outcome   -- (its array part: no allocation)
  o[1], o[2], o[3] = ok, a, b
  rec.ending = true
  finish_resume(rec)
  if ends == rec then ends = rec.next_end or LAST; rec.next_end = false end
end

-- Resumes the tasks whose wake raised before their resume (see wake) and
-- ends those whose end raised out of it (above), for the loops' turns
-- (SCHED.finish_ends). A raise here leaves the rest listed, for the next
-- turn. (One in progress further up the stack -- a finalizer that turns a
-- loop -- may be met here too: what follows a resume tolerates running
-- twice, as resume_from_core's retry needs; a task resumed since, or
-- waiting again, is not resumed. A core wait's wake is retried by the
-- core: resume_from_core puts the wait back.)
local function finish_ends ()
  while ends ~= LAST do
    local rec = ends
    if not rec.ending and tasks[rec.co] == rec and coroutine_status(rec.co) == "dead" then
      local o = rec.outcome   -- (its resume was cut before its outcome was kept: ended so)
      o[1], o[2], o[3] = false, CUT, false
      rec.ending = true
    end
    if rec.ending then finish_resume(rec) end
    local w = rec.woke
    if w and rec.waiting == false and type(w) == "table"
       and coroutine_status(rec.co) == "suspended" then
      resume_task(rec)
    end
    rec.woke = false
    if ends == rec then ends = rec.next_end or LAST; rec.next_end = false end
  end
end

M.SCHED.finish_ends = finish_ends

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
  local rec = { loop = loop, name = name, waiting = false, delivered = false, hooks = hook and { hook } or false,
                ending = false, outcome = { false, false, false }, next_end = false, woke = false,
                cut = false }
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
  if ok and a == TOKEN and b ~= nil then
    if rec.waiting ~= false then drop_stale_wait(rec) end   -- (the core registers nothing in Lua)
    rec.waiting = b
  end
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

--- Runs `f(...)`, which starts requests (or futures) into the list
-- `started` and waits for them, so that an error raised meanwhile -- Ctrl-C's
-- "interrupted!" from a debug hook, a hook's own error, memory -- cancels
-- every one started before it propagates, unchanged (the error value
-- itself: an interrupt stays an interrupt). Without it, the requests
-- not being waited for at that moment went on, paid for, until the GC.
-- Yields across on 5.1 too (`M.pcall`). Returns f's results.
-- @tparam table started requests and futures (any keys), filled by f
-- @tparam function f
-- Inside a task, `started` is the task's meanwhile: `cancel_task` cancels
-- it too.
function M.cancel_on_error (started, f, ...)
  local rec = current()
  if rec then
    rec.scopes = rec.scopes or {}
    rec.scopes[started] = true
  end
  local r = pack(M.pcall(f, ...))
  if rec then rec.scopes[started] = nil end
  if r[1] then return unpack(r, 2, r.n) end
  for _, x in pairs(started) do pcall(x.cancel, x) end
  error(r[2], 0)
end

--- Cancels the requests the task `co` (from `spawn`) waits for now: the
-- request of its wait, and those a `cancel_on_error` of it started; and
-- every request it waits for from then on (its next judge call...). For
-- work abandoned from outside the task (a dataset run stopped by Ctrl-C):
-- the task goes on to its end, with those requests ended "canceled", as
-- its loop turns.
-- @tparam thread co
-- @param why the cancel's reason
function M.cancel_task (co, why)
  local rec = tasks[co]
  if rec == nil then return end
  rec.canceled = why or "canceled"
  cancel_started(rec)
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

--- A client's loop (`aigc.client_loop`), whose tasks run in this scheduler.
-- @tparam table client
-- @param engine its `aigc.core` engine
-- @treturn table the loop
function M.new_loop (client, engine)
  return client_loop.new(client, engine, M.SCHED)
end

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
  client_loop.block(function () return now() >= deadline end, { loop }, deadline)
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
  drop_stale_wait(rec)   -- (the task runs: a wait still registered is one it could not yield for)
  local w, gs = {}, { rec = rec }
  local wake_me = waker(rec, w)
  rec.waiting = w   -- (registered first: see suspend)
  for _, loop in ipairs(loops) do
    if loop ~= rec.loop then gs[#gs + 1] = loop end
  end
  -- (one store; stored after the wait ended, dropped again: see core_wait_started)
  if gs[1] and rec.waiting == w then
    add_guests(rec.loop, w, gs)
    if rec.waiting ~= w then remove_guests(rec.loop, w) end
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
