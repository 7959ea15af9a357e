--- A client's loop: its engine, the tasks asleep in it, the deliveries
-- posted to it, the other clients it drives for its tasks (its guests).
--
-- Internal: the client's `step`, `act`, `active` and `close` are built on
-- it, and a blocking wait turns it. Not part of the API. The tasks
-- themselves (coroutines, their waits and wakes) are `aigc.task`'s: a loop
-- only keeps the records of what its tasks wait for (its sleepers, its
-- guests) and wakes a sleeper through the scheduler it was made with
-- (`sched.wake`).
--
-- `step` is the user's turn of a loop; `turn` is one turn for a blocking
-- wait (usable inside callbacks); `block` is the one place where the Lua
-- layer blocks: it turns the loops a wait needs until the wait is over.
--
-- @module aigc.client_loop
-- @local

local core = require "aigc.core"
local util = require "aigc.util"

local error, ipairs, next, pairs, pcall, setmetatable, type =
  error, ipairs, next, pairs, pcall, setmetatable, type
local math_huge, math_min = math.huge, math.min
local table_remove, table_sort = table.remove, table.sort
local now = core.now
-- (a host's watchdog -- an error raised in a debug hook -- goes on up
-- through the loop to step()'s caller, as through the C core's calls)
local pcall_passing = util.pcall_passing_interrupts

util.own_module()

local M = {}

-- engine -> its client's loop (weak values too: no cycle through the key).
local loop_of_engine = setmetatable({}, { __mode = "kv" })

--- The loop of `engine`'s client, or nil.
-- @param engine
-- @treturn table|nil
function M.of_engine (engine)
  return loop_of_engine[engine]
end

-- {======================================================
-- What the loop's tasks wait for
-- =======================================================

-- A task's wait on other clients (its guests, which the loop drives
-- meanwhile) is ONE entry of `loop.guest_ws`, keyed by the wait (the C
-- request of a core wait, the table of another), its value the array of
-- those clients' loops with the task's record (`gs.rec`). An entry counts
-- while the task waits on it (`gs.rec.waiting == key`). So every change is
-- one store, and a turn run in the middle of the bookkeeping (a host's
-- debug hook or a finalizer that steps) can neither lose its own change
-- nor be overwritten: the counts were `(n or 0) + 1` read-modify-writes,
-- and a nested turn between the read and the write left a guest counted
-- for ever (`while client:step() > 0 do end` never ended). An entry left
-- over by an interleaving (its wait over before it was stored) is not
-- counted, and the next turn that drives the guests drops it.

--- Registers the wait `key` of the task `gs.rec` of `loop` on the loops
-- of `gs` (one store; a new key may allocate).
-- @tparam table loop
-- @param key the wait
-- @tparam table gs the other clients' loops, `gs.rec` the task's record
function M.add_guests (loop, key, gs)
  loop.guest_ws[key] = gs
  loop.gen = loop.gen + 1   -- (a count in progress retries: see scanned)
end

--- Undoes `add_guests` for `key` (any number of times). Allocates nothing.
-- @tparam table loop
-- @param key the wait
function M.remove_guests (loop, key)
  local ws = loop.guest_ws
  if ws[key] == nil then return end
  ws[key] = nil
  loop.gen = loop.gen + 1
end

-- The guests of the waits that count (see above), each added to `seen`
-- once and appended to `list` when given; the entries that no longer
-- count are dropped then. Returns how many (wait, guest) there are.
local function scan_guests (ws, seen, list)
  local n = 0
  for key, gs in next, ws do
    if gs.rec.waiting == key then
      n = n + #gs
      for i = 1, list and #gs or 0 do
        local g = gs[i]
        if not seen[g] then seen[g] = true; list[#list + 1] = g end
      end
    elseif list then
      ws[key] = nil   -- (clearing a field is allowed while traversing)
    end
  end
  return n
end

-- `fn(set, arg)`, a traversal of one of the loop's sets (its guest
-- waits, its sleepers), again when a turn run in the middle (a host's debug
-- hook, a finalizer) changed them: the traversal may then have missed an
-- entry, or raised "invalid key to 'next'". After a few tries, `fallback`.
local function scanned (loop, fn, set, arg, fallback)
  for _ = 1, 8 do
    local gen = loop.gen
    local ok, r = pcall_passing(fn, set, arg)
    if ok and loop.gen == gen then return r end
  end
  return fallback
end

local function count_guests (ws) return scan_guests(ws, nil, nil) end
local function list_guests (ws)
  local list = {}
  scan_guests(ws, {}, list)
  return list
end

-- How many (wait, guest) the loop's tasks wait on (never 0 while an entry
-- is left, when no scan could complete: the loop turns once more).
local function guest_waits (loop)
  local ws = loop.guest_ws
  if next(ws) == nil then return 0 end
  return scanned(loop, count_guests, ws, nil, 1)
end

--- Takes the sleeper `s` (from `add_sleeper`) off the loop's set, any
-- number of times. Allocates nothing (a wake calls it before it resumes
-- the task).
-- @tparam table loop
-- @tparam table s
function M.remove_sleeper (loop, s)
  local set = loop.sleepers
  if set[s] == nil then return end
  set[s] = nil
  loop.gen = loop.gen + 1
end
local remove_sleeper = M.remove_sleeper

-- }======================================================


-- {======================================================
-- Turns
-- =======================================================

--- A client's loop, for its engine; `sched` is the scheduler of the
-- tasks (`aigc.task`'s SCHED), given to the engine too.
-- @tparam table client
-- @param engine its `aigc.core` engine
-- @tparam table sched
-- @treturn table the loop
function M.new (client, engine, sched)
  local loop = {
    client = client, engine = engine, sched = sched,
    sleepers = {},     -- tasks asleep: a set of { at =, rec =, w =, seq = } (see add_sleeper)
    sleep_seq = 0,     -- the order in which they were put to sleep
    posted = {},       -- functions the next turn runs (deliveries "from the loop")
    running_posted = false,   -- the ones a turn runs now (see run_posted)
    guest_ws = {},     -- its tasks' waits on other clients: wait -> their loops (see add_guests)
    gen = 0,           -- changes with guest_ws and sleepers (see scanned)
    futures = setmetatable({}, { __mode = "k" }),   -- pending futures close() cancels
    closed = false,
  }
  loop_of_engine[engine] = loop
  engine:set_scheduler(sched)
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
    local ok, e = pcall_passing(fn)
    if not ok then pcall_passing(report_delivery_error, loop, e) end
    return
  end
  local posted = loop.posted
  posted[#posted + 1] = fn
  tell_wake(loop, now())
end

--- Withdraws `fn` if it is still posted: a future whose end a wait ran
-- first (one over already, a cache hit's), whose delivery would only find
-- it delivered. A blocking call never turns the loop when what it waits
-- for is over, so a bot that never steps kept every cache hit's future and
-- reply in the list, for ever. (Most often the last one posted.)
-- @tparam table loop
-- @tparam function fn
function M.unpost (loop, fn)
  local list = loop.posted
  for i = #list, 1, -1 do
    if list[i] == fn then table_remove(list, i); return end
  end
end

-- Runs the deliveries of `list` not run yet; each is taken once its
-- pcall returned, unless it ran out of memory (calling it, or pcall, may
-- raise so before its body ran): then it stays, and the rest with it, for
-- the next turn. So deliveries tolerate running twice (the Lua layer's
-- do: a future's end, its waiters). Returns whether some stay. A host's
-- watchdog (an error raised in a debug hook) goes on up, at once: the
-- delivery it cut stays too, and the next turn runs it again.
local function run_list (loop, list)
  for i = 1, #list do
    local fn = list[i]
    if fn then
      local ok, e = pcall_passing(fn)
      if not ok and type(e) == "string" and e:find("not enough memory", 1, true) then return true end
      list[i] = false
      if not ok then pcall_passing(report_delivery_error, loop, e) end   -- (the next ones run still)
    end
  end
  return false
end

-- Runs what was posted before this turn (what is posted meanwhile runs
-- on the next). The list being run stays reachable (`running_posted`)
-- until it has run: out of memory at the call of a delivery (or of its
-- pcall), the deliveries not run yet were lost with the list (a future's
-- end: a task waiting on it asleep for ever). The next turn runs the rest
-- first.
local function run_posted (loop)
  local left = loop.running_posted
  if left then
    if run_list(loop, left) then return end
    if loop.running_posted == left then loop.running_posted = false end
  end
  local list = loop.posted
  if #list == 0 then return end
  local fresh = {}
  loop.running_posted = list
  loop.posted = fresh
  if run_list(loop, list) then return end
  if loop.running_posted == list then loop.running_posted = false end
end

--- Puts the task `rec` to sleep in `loop` until `at` (on `now()`'s clock)
-- for its wait `w` (a table), which a wake ends (see `remove_sleeper`).
-- `w` is registered already: the allocation here may end the wait (a
-- finalizer drove the loop), and then there is no sleeper. The sleepers
-- are a set, each put in and taken out by one store, as the guest waits
-- (above): a list's `list[#list + 1] = s`, and its removal by index, torn
-- by a turn run in the middle (a host's debug hook that steps), lost a
-- sleeper or took off another, and its waking read past the list's end.
-- @tparam table loop
-- @tparam number at
-- @tparam table rec
-- @tparam table w
function M.add_sleeper (loop, at, rec, w)
  local s = { at = at, rec = rec, w = w, seq = loop.sleep_seq }
  loop.sleep_seq = loop.sleep_seq + 1
  if rec.waiting ~= w then return end
  w.sleeper = s
  loop.sleepers[s] = true
  loop.gen = loop.gen + 1
  if rec.waiting ~= w then remove_sleeper(loop, s); return end   -- (woken meanwhile)
  local told = loop.told_wake
  if told == nil or at < told then tell_wake(loop, at) end
end

-- How many sleepers and when the first sleep ends, kept for the loop's
-- generation (`gen`, which every change of the set moves): a turn with no
-- change answers without walking the set. Walked two or three times a
-- turn (the count, the wait's bound, the next wake), step(0) with 4,096
-- tasks asleep took 2.0 ms instead of 0.3. The facts are stored before the
-- generation they hold for, taken when the walk began: a cut or a turn run
-- between the stores (a host's debug hook) leaves a generation that is not
-- the loop's, and the next ask walks again.
local function scan_sleepers (set, loop)
  local gen, n, soonest = loop.gen, 0, math_huge
  for s in next, set do
    n = n + 1
    if s.at < soonest then soonest = s.at end
  end
  loop.sleep_n, loop.sleep_soonest = n, soonest
  loop.sleep_gen = gen
  return true
end

-- The sleepers' count and the soonest end (math.huge: none); 1 and now
-- when the set cannot be read (a turn then comes soon).
local function sleep_facts (loop)
  if loop.sleep_gen ~= loop.gen and not scanned(loop, scan_sleepers, loop.sleepers, loop, false) then
    return 1, now()
  end
  return loop.sleep_n, loop.sleep_soonest
end

local function by_seq (a, b) return a.seq < b.seq end

-- The sleepers whose time `t` has come, in the order they were put to sleep.
local function due_at (set, t)
  local list = {}
  for s in next, set do
    if s.at <= t then list[#list + 1] = s end
  end
  table_sort(list, by_seq)
  return list
end

-- Every sleep ends now (close).
local function wake_all (set, loop)
  for s in next, set do s.at = -1 end
  loop.gen = loop.gen + 1   -- (the soonest changed: see sleep_facts)
end

-- When the first sleep ends (math.huge: none; now when the set cannot be
-- read: a turn then comes soon).
local function soonest_sleep (loop)
  if next(loop.sleepers) == nil then return math_huge end
  local _, soonest = sleep_facts(loop)
  return soonest
end

-- (A sleeper stays in the set until the wake took it off, allocation-free
-- (release_wait): on Lua 5.1 the call to wake may itself raise out of
-- memory, and a sleeper taken off before it was lost, its task asleep for
-- ever. The next turn wakes it then.)
local function wake_sleepers (loop)
  local set, t = loop.sleepers, now()
  if soonest_sleep(loop) > t then return end   -- (none due: no walk)
  local list = scanned(loop, due_at, set, t, {})
  for i = 1, #list do
    local s = list[i]
    if set[s] then
      loop.sched.wake(s.rec, s.w)
      if set[s] then   -- (a stale one: its wait is over)
        remove_sleeper(loop, s)
        if s.w.sleeper == s then s.w.sleeper = nil end
      end
    end
  end
end

-- What raised out of a past turn, first (the scheduler's pending ends,
-- the futures' waiters not run).
local function finish (loop)
  local sched = loop.sched
  sched.finish_ends()
  if sched.finish_waiters then sched.finish_waiters() end
end

--- What the loop has to do besides its engine's requests: tasks asleep
-- or waiting on another client, deliveries to run, and the ends that a
-- raise (a host's watchdog) left to the next turn (`sched.ends_left`: a
-- future's on_done whose task was cut before it called it is listed
-- there alone, and `while client:active() > 0 do client:step() end` then
-- stopped before it ran).
-- @tparam table loop
-- @treturn integer
function M.pending (loop)
  local left = loop.sched.ends_left
  local sleepers = next(loop.sleepers) == nil and 0 or sleep_facts(loop)
  return sleepers + #loop.posted + guest_waits(loop) + (loop.running_posted and 1 or 0)
         + (left and left(loop) or 0)
end
local pending = M.pending

-- The longest a turn waits on its own sockets while tasks wait on another
-- client (whose sockets are not in this wait).
local GUEST_SLICE = 0.005

-- `timeout`, shortened to the soonest sleeper and, with guests, to
-- GUEST_SLICE; 0 when deliveries are posted: the turn runs them after its
-- wait, and one may end what a blocking wait is for (a future's end, which
-- wakes the task that works for the waited one): a blocking wait spent a
-- whole slice (50 ms) on its sockets before running it.
local function wait_bound (loop, timeout)
  if type(timeout) ~= "number" or timeout <= 0 then return timeout end
  if #loop.posted > 0 or loop.running_posted then return 0 end
  local t, soonest = now(), soonest_sleep(loop)
  if soonest - t < timeout then timeout = soonest > t and soonest - t or 0 end
  if next(loop.guest_ws) ~= nil and timeout > GUEST_SLICE then timeout = GUEST_SLICE end
  return timeout
end

-- A guest that cannot be driven now (closed, or busy in a callback of its
-- own further up the stack) is left for the next turn.
local function refused (e)
  return type(e) == "string" and (e:find("closed client", 1, true) or e:find("inside an aigc callback", 1, true)
                                  or e:find("already running", 1, true))
end

local step_in   -- (M.step, below, for a guest)

-- Drives the loops this one's tasks wait on. No recursion: a guest does
-- not drive back a loop that is driving it, further up the stack: `chain`
-- ({ loop =, up = }, or nil), passed down the calls. (A flag on the loop,
-- set for the drive and cleared after it, stayed set when a host's
-- watchdog cut in between, an error raised in a debug hook: that loop's
-- guests were never driven again, and its task waiting on another
-- client's request slept for ever.) A guest's callback errors stay the
-- guest's (its error_handler ran; without one, its step() returned them
-- and they are given back to it, for the user's next step() of that
-- client): the host's step() never returns them.
local function drive_guests (loop, chain)
  if next(loop.guest_ws) == nil then return end
  local list = scanned(loop, list_guests, loop.guest_ws, nil, nil)
  if list == nil then return end
  local here = { loop = loop, up = chain }
  for _, g in ipairs(list) do
    local up = here
    while up and up.loop ~= g do up = up.up end
    if up == nil and not g.closed then
      local ok, _, gerrors = pcall(step_in, g, 0, nil, here)
      if not ok and not refused(_) then error(_, 0) end
      for _, e in ipairs(ok and gerrors or {}) do g.engine:report(e) end
    end
  end
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
  if #loop.posted > 0 or loop.running_posted then return now() end
  local soonest = soonest_sleep(loop)
  if soonest == math_huge then soonest = nil end
  if next(loop.guest_ws) ~= nil then
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
  return step_in(loop, timeout, budget, nil)
end

-- (`chain`: the loops that drive this one, see drive_guests)
function step_in (loop, timeout, budget, chain)
  finish(loop)
  local _, errors = loop.engine:step(wait_bound(loop, timeout), budget)
  drive_guests(loop, chain)
  run_posted(loop)
  if next(loop.sleepers) ~= nil then wake_sleepers(loop) end
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
  finish(loop)
  drive_guests(loop)
  run_posted(loop)
  if next(loop.sleepers) ~= nil then wake_sleepers(loop) end
  tell_wake(loop, wake_at(loop))
end

-- One turn for a blocking wait: like step, but usable inside callbacks
-- (with the core's nested drive), and callback errors stay with the
-- engine for the user's next step(). `request`: a C request the wait is
-- for, pumped if pending (its own turn checks that it can ever start).
local function turn (loop, timeout, request)
  finish(loop)
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
  if next(loop.sleepers) ~= nil then wake_sleepers(loop) end
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
  -- (its tasks asleep in client:sleep wake now: nothing else would ever
  -- wake them -- a batch.run or a retry pause in a task of a client a
  -- finalizer closed never returned; awake, their next call meets the
  -- closed client)
  scanned(loop, wake_all, loop.sleepers, loop)
  if next(loop.sleepers) ~= nil then wake_sleepers(loop) end
end

-- }======================================================

return M
