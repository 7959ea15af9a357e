--- The random lifecycle tester's child: runs one operation list (written by
-- spec/lifecycle/gen.lua) against aigc and the bundled server, checking the
-- lifecycle contract against a small reference model after every operation.
-- It runs in its own process (started by spec/lifecycle/run.lua), so that a
-- crash, a sanitizer report or a hang is a finding and not the end of the
-- run.
--
--   LUA spec/lifecycle/child.lua --ops FILE --base-url URL [--path P] [--cpath C]
--       [--ignore name,name] [--drain SECONDS]
--
-- Output (stdout, unbuffered), one line each:
--   op I <operation>                  before operation I runs
--   violation NAME op=I: MESSAGE      a broken invariant (the process exits 3)
--   known NAME op=I: MESSAGE          the same, for a name in --ignore (goes on)
--   unreported TAG CLASS              a callback error no channel reported (the
--                                     runner looks for it on stderr)
--   done ops=N requests=M             the end, every check passed
--
-- The contract checked (DESIGN.md, issue 10 "What to build" 2):
--   * a request's status is one of the five; once terminal it never changes;
--     result() agrees with it (done: a table; failed/canceled: nil, err;
--     canceled: err.kind "canceled"; pending: nil, nil);
--   * a request given on_done/on_error gets exactly one of them, from the
--     driving loop: at most one ever, and the right one once it ended and
--     the client was stepped (at the latest after the drain, which also
--     steps closed clients); cancel and close give on_error with kind
--     "canceled", never from inside cancel(); when on_done/on_error runs,
--     status() already says the request ended;
--   * nothing (stream delta, on_done) is delivered after a cancel() that
--     returned true or a close() while the request was pending, and no
--     delta after the request ended;
--   * a cancel() that returns true leaves the request "canceled" at once;
--     leaving an iterator loop early cancels its stream;
--   * step()'s count = active() right after it; act()'s count = active();
--     active() is 0 once everything ended and every callback ran;
--   * every error raised by on_done, on_error or a task body is reported
--     exactly once: to error_handler, else in the second result of the
--     first step() (or act()) that starts after it (else, the client
--     closed, stderr);
--     a stream callback's error fails its request with kind "callback";
--   * calls return what they document (res, or nil and an error object)
--     and do not raise unless misused (a closed client);
--   * every request ends: the drain fails when nothing progresses for the
--     longest a request may take (its timeouts and retries) plus 6 s;
--   * no secret in an error, its fields or a log line;
--   * no descriptor growth: after every client is closed and collected the
--     process holds what it held before the first one.
-- Leaks and memory errors are the sanitizers' (the runner reads stderr).

local gen   -- set below, after package.path

local args = {}
do
  local i = 1
  while arg[i] do
    local k = arg[i]:match("^%-%-(.+)$")
    if not k then error("child.lua: unexpected argument " .. arg[i]) end
    args[k] = arg[i + 1]
    i = i + 2
  end
end
assert(args.ops and args["base-url"], "usage: child.lua --ops FILE --base-url URL [--path P] [--cpath C]")
local here = (arg[0]:match("^(.*)/[^/]*$") or ".")
package.path = here .. "/?.lua;" .. (args.path and (args.path .. ";") or "") .. package.path
if args.cpath then package.cpath = args.cpath .. ";" .. package.cpath end
gen = require "gen"

io.stdout:setvbuf("no")
-- An error in a __gc metamethod shows on stderr (Lua 5.4's warnings; 5.1-5.3
-- and LuaJIT have no warn() and drop such errors silently).
local warn = rawget(_G, "warn")
if warn then warn("@on") end

-- LuaJIT: the model's own functions run interpreted (aigc's modules stay
-- compiled). LuaJIT 2.1 before commit 119fd1fa (Aug 2023, LuaJIT #1045;
-- Debian 12 ships 2.1.0~beta3+git20220320) loops for ever in a pairs()
-- loop compiled as a trace when that trace exits at its first guard inside
-- a __gc metamethod: the exit lands on the loop's JLOOP, which re-enters the
-- trace, and no side trace may be recorded during __gc to break the cycle
-- (spec/lifecycle/luajit-itern-gc.lua reproduces it without aigc). `arm`'s
-- finalizers run the model's checks (scan_secret's pairs loop, in an
-- on_error reached from a stream loop in the finalizer): seed 12004 seq 67
-- hung in 2 of 3 replays. jit.* is refused inside __gc, so the model's
-- functions are kept off the JIT from the start.
local luajit_engine = rawget(_G, "jit")
if luajit_engine and luajit_engine.off then luajit_engine.off(true, true) end

-- {======================================================
-- What differs between the Lua versions the child runs under (5.4, LuaJIT,
-- 5.1-5.3): the runner is always 5.4, the child the interpreter under test.
-- =======================================================

-- A generic `for` closes its 4th value when the loop is left (break, error,
-- end) only on 5.4 (to-be-closed variables); elsewhere the loop's owner calls
-- the documented explicit equivalent, close_value, right after the loop.
local FOR_CLOSES = _VERSION == "Lua 5.4"

local function close_value (v)
  if v == nil then return end
  local mt = getmetatable(v)
  local close = type(v) == "table" and type(rawget(v, "close")) == "function" and rawget(v, "close")
    or type(mt) == "table" and type(mt.__index) == "table" and rawget(mt.__index, "close")
    or type(mt) == "table" and (rawget(mt, "close") or rawget(mt, "__close"))
  if close then close(v) end
end

local pack = rawget(table, "pack") or function (...) return { n = select("#", ...), ... } end

-- collectgarbage's incremental mode with `pause` and `stepmul`.
local function gc_incremental (pause, stepmul)
  if _VERSION == "Lua 5.4" then
    collectgarbage("incremental", pause, stepmul)
  else
    collectgarbage("setpause", pause)
    collectgarbage("setstepmul", stepmul)
  end
end

-- An object whose finalizer runs fin(data) when it is collected: a table
-- with __gc on 5.2+, a newproxy userdata on 5.1 and LuaJIT (whose tables
-- have no finalizers).
local newproxy = rawget(_G, "newproxy")
local function finalized (data, fin)
  if newproxy then
    local u = newproxy(true)
    getmetatable(u).__gc = function () fin(data) end
    return u
  end
  return setmetatable(data, { __gc = fin })
end

-- }======================================================

local aigc = require "aigc"
local core = require "aigc.core"
local BASE_URL = args["base-url"]
local IGNORE = {}
for name in (args.ignore or ""):gmatch("[^,%s]+") do IGNORE[name] = true end

local SECRET = "sk-lifecycle-SECRET-7f3a9c"

-- {======================================================
-- The model's state
-- =======================================================

local S = {
  ev = 0,            -- event counter: every callback, cancel, close, step start...
  opi = 0,           -- the operation running
  crecs = {},        -- slot -> client record (current client of that slot)
  reqs = {},         -- k -> request record (or a tombstone once its client was dropped)
  tags = {},         -- id -> record of an error a callback raised on purpose
  ntag = 0,
  in_cancel = 0,     -- depth of cancel() calls in progress (no callback may run inside)
  disarmed = false,  -- set before the drain: `arm`'s finalizers act no more (they would
                     -- submit requests behind the drain's back, after it saw none)
  known_seen = {},
  gc_acts = 0,       -- finalizers that ran an action (`arm`, `npc`): they may step or cancel
                     -- between a step() returning its count and active() being read
}

local function tick () S.ev = S.ev + 1; return S.ev end

local function violation (name, msg)
  local line = string.format("%s op=%s: %s", name, tostring(S.opi), msg)
  if IGNORE[name] then
    if not S.known_seen[name] then
      S.known_seen[name] = true
      io.stdout:write("known ", line, "\n")
    end
    return
  end
  io.stdout:write("violation ", line, "\n")
  io.stdout:flush()
  os.exit(3, false)
end

local PENDING = { queued = true, running = true }
local TERMINAL = { done = true, failed = true, canceled = true }

local function is_error (v)
  return type(v) == "table" and getmetatable(v) == core.error_mt
end

-- Tags found in an error value (what a callback raised, wrapped or not).
local function tags_in (err)
  local text
  if type(err) == "table" then
    text = tostring(rawget(err, "message") or "")
  else
    text = tostring(err)
  end
  local found, seen = {}, {}
  for id in text:gmatch("LCTAG#(%d+)#") do
    id = tonumber(id)
    if not seen[id] then seen[id] = true; found[#found + 1] = id end
  end
  return found
end

-- Every string reachable from v (bounded), checked for the API key.
local function scan_secret (v, where, depth, seen)
  depth, seen = depth or 0, seen or {}
  if type(v) == "string" then
    if v:find(SECRET, 1, true) or v:find("SECRET-7f3a9c", 1, true) then
      violation("secret-leak", where .. " holds the API key: " .. v:sub(1, 200))
    end
  elseif type(v) == "table" and depth < 12 and not seen[v] then
    seen[v] = true
    for k, x in pairs(v) do
      scan_secret(k, where, depth + 1, seen)
      scan_secret(x, where .. "." .. tostring(k), depth + 1, seen)
    end
  end
end

-- Error objects already scanned whole: result()'s err is checked again after
-- every operation, and a walk of one with thousands of headers (fault
-- headers=N) costs ~1 s of CPU once `arm` has set the collector's pause
-- <= 100 (it never rests then: every allocation pays for a collection); 40
-- such operations passed the child's 60 s and were reported as a hang
-- (seed 771003 sequence 85 under ASan). An error object does not change
-- once made: one walk is enough.
local scanned_errors = setmetatable({}, { __mode = "k" })

local function check_error_secret (err, where)
  if err == nil or scanned_errors[err] then return end
  scan_secret(err, where)
  if type(err) == "table" then scanned_errors[err] = true end
  local ok, s = pcall(tostring, err)
  if ok then scan_secret(s, "tostring(" .. where .. ")") end
end

-- }======================================================


-- {======================================================
-- Requests in the model
-- =======================================================

local function rec_status (rec)
  local ok, st = pcall(rec.req.status, rec.req)
  if not ok then violation("status-raises", "request " .. rec.id .. ": status() raised: " .. tostring(st)) end
  return st
end

local function new_rec (crec, api, kind)
  local rec = {
    id = #S.reqs + 1, crec = crec, api = api, kind = kind or "c",
    done_calls = 0, error_calls = 0, deltas = 0, stream_tags = {},
    op = S.opi,
  }
  S.reqs[rec.id] = rec
  crec.reqs[#crec.reqs + 1] = rec
  return rec
end

-- What k names when an operation runs: nil when absent or abandoned.
local function ref_req (k, ctx)
  local rec
  if k == 0 then rec = ctx and ctx.rec else rec = S.reqs[k] end
  if rec == nil or rec.abandoned or rec.req == nil then return nil end
  return rec
end

-- }======================================================


-- {======================================================
-- Callback actions
-- =======================================================

-- Which channel must report an error raised by each kind of callback:
--   report  on_done, on_error, task bodies: error_handler / step() / stderr
--   request a stream callback: its request fails with kind "callback"
--   any     log hook, error_handler: somewhere (stderr at least)
--   none    tool functions (the model sees the error), finalizers, loop bodies, score
local CLASS = { on_done = "report", on_error = "report", task = "report", stream = "request",
                log = "any", handler = "any", tool = "none", gc = "none", loop = "none", score = "none" }

local function raise_tag (ctx, why)
  S.ntag = S.ntag + 1
  local id = S.ntag
  local tag = { id = id, class = CLASS[ctx.kind] or "none", kind = ctx.kind, crec = ctx.crec,
                ev = tick(), reports = 0, op = S.opi, allowed = 1 }
  S.tags[id] = tag
  if ctx.kind == "stream" then
    local owner = ctx.rec or ctx.call
    if owner then owner.stream_tags[#owner.stream_tags + 1] = id end
  end
  if ctx.kind == "handler" and ctx.handling then
    -- The handler failed on these: the engine may fall back to step()/stderr.
    for _, t in ipairs(ctx.handling) do if S.tags[t] then S.tags[t].allowed = 2 end end
  end
  local msg = string.format("LCTAG#%d# raised on purpose by a %s callback%s", id, ctx.kind,
                            why and (" (" .. why .. ")") or "")
  -- (a loop body notes its request's status as late as it can: what came
  -- before may have driven the engine and ended the request on its own)
  if ctx.on_leave then ctx.on_leave() end
  error(msg, 0)
end

-- Counts the reports of tagged errors in a list of errors (step()'s second result).
local function count_reports (errs, where)
  if type(errs) ~= "table" then return end
  for _, e in ipairs(errs) do
    check_error_secret(e, where)
    for _, id in ipairs(tags_in(e)) do
      local tag = S.tags[id]
      if tag then
        tag.reports = tag.reports + 1
        if tag.reports > tag.allowed then
          violation("error-reported-twice", string.format(
            "LCTAG#%d (raised by a %s callback at op %d) reported %d times (%s)",
            id, tag.kind, tag.op, tag.reports, where))
        end
      end
    end
  end
end

local do_cancel, do_close, run_act, submit_async, blocking_call, iterate

local function client_of (c)
  local crec = S.crecs[c]
  if crec and crec.client then return crec, crec.client end
  return nil
end

-- Runs one primitive; returns "break" for a loop body's break.
local function run_prim (p, ctx)
  local a = p.a
  if a == "none" then return end
  if a == "raise" then raise_tag(ctx) end
  if a == "yield" then
    local ok, e = pcall(coroutine.yield, "lifecycle: a foreign yield")
    if not ok then raise_tag(ctx, "yield refused: " .. tostring(e)) end
    return
  end
  if a == "break" then return "break" end
  if a == "gc" then collectgarbage("collect"); return end
  if a == "cancel" then
    local rec = ref_req(p.k, ctx)
    if rec then do_cancel(rec) end
    return
  end
  if a == "close" then
    local crec = client_of(p.c)
    if crec then do_close(crec) end
    return
  end
  if a == "async" then
    local crec = client_of(p.c)
    if crec then pcall(submit_async, crec, { api = "chat" }) end
    return
  end
  if a == "call" then
    local crec = client_of(p.c)
    if crec then blocking_call(crec, { api = "chat", fault = p.fault, tmo = p.tmo, deadline = p.deadline }, true) end
    return
  end
  if a == "iterate" then
    local crec = client_of(p.c)
    if crec then iterate({ c = p.c, stop = 3 }, true) end
    return
  end
  if a == "step" then
    local crec, client = client_of(p.c)
    if crec then
      local saved = S.in_cancel
      S.in_cancel = 0
      local ok, _, errs = pcall(client.step, client, 0)
      S.in_cancel = saved
      if ok then count_reports(errs, "a nested step()") end
    end
    return
  end
  if a == "wait" then
    local rec = ref_req(p.k, ctx)
    if rec then
      local saved = S.in_cancel
      S.in_cancel = 0
      pcall(rec.req.wait, rec.req, 0.1)
      S.in_cancel = saved
    end
    return
  end
  error("lifecycle: unknown primitive " .. tostring(a))
end

--- Runs an action list for the n-th invocation of a callback.
function run_act (list, n, ctx)
  if list == nil then return end
  if list.nth and list.nth ~= n then return end
  for _, p in ipairs(list) do
    if run_prim(p, ctx) == "break" then return "break" end
  end
end

-- }======================================================


-- {======================================================
-- Cancel and close, as the model sees them
-- =======================================================

function do_cancel (rec)
  local before = rec_status(rec)
  local marked = false
  if PENDING[before] and not rec.cancel_ev and not rec.close_ev then
    rec.cancel_ev = tick()
    marked = true
  end
  S.in_cancel = S.in_cancel + 1
  local ok, r = pcall(rec.cancel_obj.cancel, rec.cancel_obj)
  S.in_cancel = S.in_cancel - 1
  if not ok then
    if marked then rec.cancel_ev = nil end
    violation("unexpected-raise", "request " .. rec.id .. ": cancel() raised: " .. tostring(r))
    return
  end
  if marked then
    if r ~= true then
      violation("cancel-ignored", string.format("request %s (%s) was %s, cancel() returned %s",
        rec.id, rec.api, before, tostring(r)))
    end
    local st = rec_status(rec)
    if st ~= "canceled" then
      violation("cancel-not-canceled", string.format("request %s (%s): status %s right after cancel() returned true",
        rec.id, rec.api, st))
    end
  end
end

function do_close (crec)
  local client = crec.client
  if not client then return end
  local marked = {}
  if not crec.closed then
    for _, rec in ipairs(crec.reqs) do
      if not rec.abandoned and rec.req and not rec.cancel_ev and not rec.close_ev and PENDING[rec_status(rec)] then
        rec.close_ev = tick()
        marked[#marked + 1] = rec
      end
    end
  end
  crec.closing = (crec.closing or 0) + 1
  local ok, e = pcall(client.close, client)
  crec.closing = crec.closing - 1
  if not ok then
    for _, rec in ipairs(marked) do rec.close_ev = nil end
    violation("unexpected-raise", "client:close() raised: " .. tostring(e))
    return
  end
  if not crec.closed then
    crec.closed = true
    crec.close_ev = tick()
  end
  for _, rec in ipairs(marked) do
    if rec.kind ~= "d" then
      local st = rec_status(rec)
      if st ~= "canceled" then
        violation("close-not-canceled", string.format("request %s (%s): status %s right after client:close()",
          rec.id, rec.api, st))
      end
    end
  end
end

-- }======================================================


-- {======================================================
-- Callback wrappers
-- =======================================================

local function check_delivery (rec, what)
  if rec.cancel_ev or rec.close_ev then
    violation("delivery-after-cancel", string.format("request %s (%s): %s after %s", rec.id, rec.api, what,
      rec.cancel_ev and "cancel() returned true" or "client:close()"))
  end
  if S.in_cancel > 0 then
    violation("callback-inside-cancel", string.format("request %s (%s): %s ran inside cancel()", rec.id, rec.api, what))
  end
end

local function wrap_stream (rec, list, call)
  local n = 0
  return function (delta, chunk)
    n = n + 1
    if rec then
      rec.deltas = rec.deltas + 1
      check_delivery(rec, "a stream delta")
      local st = rec_status(rec)
      if TERMINAL[st] then
        violation("delivery-after-end", string.format("request %s (%s): a stream delta while %s", rec.id, rec.api, st))
      end
    end
    if chunk ~= nil and type(chunk) ~= "table" then
      violation("bad-callback-args", "a stream callback's chunk is a " .. type(chunk))
    end
    if delta ~= nil and type(delta) ~= "string" then
      violation("bad-callback-args", "a stream callback's delta is a " .. type(delta))
    end
    return run_act(list, n, { kind = "stream", rec = rec, call = call, crec = (rec or call).crec })
  end
end

-- on_stream_end: once, while its request still runs, never after a
-- cancel; what it raises fails the request as the stream callback's does.
local function wrap_stream_end (rec, list)
  local n = 0
  return function (res)
    n = n + 1
    check_delivery(rec, "on_stream_end")
    if n > 1 then
      violation("callback-twice", string.format("request %s (%s): on_stream_end ran %d times", rec.id, rec.api, n))
    end
    local st = rec_status(rec)
    if st ~= "running" then
      violation("delivery-after-end", string.format("request %s (%s): on_stream_end while %s", rec.id, rec.api, st))
    end
    if type(res) ~= "table" then violation("bad-callback-args", "on_stream_end got a " .. type(res)) end
    return run_act(list, 1, { kind = "stream", rec = rec, crec = rec.crec })
  end
end

local function wrap_done (rec, list)
  return function (res)
    rec.done_calls = rec.done_calls + 1
    rec.done_ev = tick()
    check_delivery(rec, "on_done")
    if rec.done_calls + rec.error_calls > 1 then
      violation("callback-twice", string.format("request %s (%s): on_done after %d on_done and %d on_error",
        rec.id, rec.api, rec.done_calls - 1, rec.error_calls))
    end
    if type(res) ~= "table" then violation("bad-callback-args", "on_done got a " .. type(res)) end
    if rec.req then
      -- The request has ended when its on_done runs: status() says so, and
      -- cancel() or close() from inside on_done change nothing.
      local st = rec_status(rec)
      if st ~= "done" then
        violation("callback-before-end", string.format("request %s (%s): status %s while its on_done runs",
          rec.id, rec.api, st))
      end
    end
    rec.res_arg = res
    return run_act(list, 1, { kind = "on_done", rec = rec, crec = rec.crec })
  end
end

local function wrap_error (rec, list)
  return function (err)
    rec.error_calls = rec.error_calls + 1
    rec.error_ev = tick()
    if S.in_cancel > 0 then
      violation("callback-inside-cancel", string.format("request %s (%s): on_error ran inside cancel()",
        rec.id, rec.api))
    end
    if rec.done_calls + rec.error_calls > 1 then
      violation("callback-twice", string.format("request %s (%s): on_error after %d on_done and %d on_error",
        rec.id, rec.api, rec.done_calls, rec.error_calls - 1))
    end
    if not is_error(err) then
      violation("bad-callback-args", "on_error got " .. type(err) .. ": " .. tostring(err))
    end
    check_error_secret(err, "on_error's err")
    if rec.req then
      local st = rec_status(rec)
      if not TERMINAL[st] or st == "done" then
        violation("callback-before-end", string.format("request %s (%s): status %s while its on_error runs",
          rec.id, rec.api, st))
      end
    end
    if (rec.cancel_ev or rec.close_ev) and is_error(err) and err.kind ~= "canceled" then
      violation("wrong-kind-after-cancel", string.format("request %s (%s): on_error with kind %s after %s",
        rec.id, rec.api, tostring(err.kind), rec.cancel_ev and "cancel()" or "close()"))
    end
    rec.err_arg = err
    return run_act(list, 1, { kind = "on_error", rec = rec, crec = rec.crec })
  end
end

local function wrap_handler (crec, list)
  return function (err)
    check_error_secret(err, "error_handler's err")
    local ids = tags_in(err)
    for _, id in ipairs(ids) do
      local tag = S.tags[id]
      if tag then
        tag.reports = tag.reports + 1
        if tag.reports > tag.allowed then
          violation("error-reported-twice", string.format(
            "LCTAG#%d (raised by a %s callback at op %d) reported %d times",
            id, tag.kind, tag.op, tag.reports))
        end
      end
    end
    return run_act(list, 1, { kind = "handler", crec = crec, handling = ids })
  end
end

local function wrap_log (crec, list)
  local n = 0
  return function (level, message)
    n = n + 1
    if type(level) ~= "string" or type(message) ~= "string" then
      violation("bad-callback-args", "log(" .. type(level) .. ", " .. type(message) .. ")")
    end
    scan_secret(message, "a log line")
    return run_act(list, n, { kind = "log", crec = crec })
  end
end

local TOOL_PARAMS = { type = "object", properties = { order_id = { type = "string" } }, required = { "order_id" } }
local SCHEMA = { type = "object", properties = { answer = { type = "string" } }, required = { "answer" },
                 additionalProperties = false }
local MSG_SHORT = "What is the capital of France?"
local MSG_LONG = "Tell me a story about a robot that learns to paint"
local MSG_TOOL = "Please track order A-1042"

local function toolset (list, ctx)
  local n = 0
  return aigc.tools {
    { name = "track_order", description = "Order status by id", parameters = TOOL_PARAMS,
      fn = function (args_)
        n = n + 1
        if type(args_) ~= "table" then violation("bad-callback-args", "a tool got " .. type(args_)) end
        run_act(list, n, { kind = "tool", rec = ctx.rec, crec = ctx.crec })
        return "Order A-1042 ships Thursday."
      end },
  }
end

-- }======================================================


-- {======================================================
-- Submitting and calling
-- =======================================================

-- A stream dripped byte by byte (its `timeout` is an idle limit) takes as
-- long as it is long: such requests get the short question.
local function base_params (op, content)
  if op.fault and op.fault:find("drip", 1, true) then content = MSG_SHORT end
  local p = { messages = { { role = "user", content = content } } }
  if op.fault then p.headers = { ["x-aigc-fault"] = op.fault } end
  if op.tmo then p.timeout = op.tmo end
  if op.deadline then p.deadline = op.deadline end
  return p
end

local function conversation (crec)
  if not crec.conv then crec.conv = aigc.conversation { client = crec.client } end
  return crec.conv
end

-- chat_async & co.: returns the record (its `req` set once submitted).
function submit_async (crec, op)
  local client = crec.client
  local api = op.api
  local rec = new_rec(crec, api, "c")
  local content = (api == "stream_cb" or op.stream) and MSG_LONG or (api == "tools" and MSG_TOOL or MSG_SHORT)
  local p = base_params(op, content)
  if op.on_done then p.on_done = wrap_done(rec, op.on_done); rec.has_done = true end
  if op.on_error then p.on_error = wrap_error(rec, op.on_error); rec.has_error = true end
  if op.stream or api == "stream_cb" then p.stream = wrap_stream(rec, op.stream) end
  if op.stream_end then p.on_stream_end = wrap_stream_end(rec, op.stream_end) end
  local obj
  if api == "complete" then
    p.messages = nil
    p.prompt = "Once upon a time"
    p.max_tokens = 20
    obj = client:complete_async(p)
  elseif api == "tools" then
    p.tools = toolset(op.tool, { rec = rec, crec = crec })
    obj = client:chat_async(p)
  elseif api == "schema" then
    p.schema = SCHEMA
    obj = client:chat_async(p)
  elseif api == "say" then
    obj = conversation(crec):say_async(MSG_SHORT, p)
  else
    obj = client:chat_async(p)
  end
  rec.obj, rec.req, rec.cancel_obj = obj, obj, obj
  rec.kind = type(obj) == "userdata" and "c" or "d"
  return rec
end

-- The shapes of what each blocking call returns.
local function check_return (what, ok, a, b, c2)
  if not ok then return end
  if what == "say" then
    if not ((type(a) == "string" and type(b) == "table") or (a == nil and is_error(b))) then
      violation("bad-return", string.format("conv:say returned %s, %s", type(a), type(b)))
    end
  elseif what == "best_of" or what == "race" then
    if not ((type(a) == "table" and type(b) == "table") or (a == nil and is_error(b))) then
      violation("bad-return", string.format("strategy.%s returned %s, %s, %s", what, type(a), type(b), type(c2)))
    end
  elseif not ((type(a) == "table" and b == nil) or (a == nil and is_error(b))) then
    violation("bad-return", string.format("a blocking %s returned %s, %s", what, type(a), tostring(b)))
  end
  if a == nil then check_error_secret(b, "a returned err") end
end

-- A raise from a call that was not misuse: the client closed before or
-- during the call is misuse (and says so); anything else is a finding.
local function check_raise (crec, what, e, close_before, other)
  local text = tostring(e)
  local function closed (c)
    return c and (c.closed or (c.close_ev and c.close_ev > close_before))
  end
  if (closed(crec) or closed(other)) and text:find("closed", 1, true) then return end
  -- A conversation takes one say at a time: documented misuse.
  if text:find("the conversation is busy", 1, true) then return end
  -- A function the call runs synchronously (best_of's score) raises through it, as
  -- table.sort's comparator does; errors of callbacks run by the loop must not.
  for id in text:gmatch("LCTAG#(%d+)#") do
    local tag = S.tags[tonumber(id)]
    if tag and tag.kind == "score" then return end
  end
  violation("unexpected-raise", string.format("%s raised: %s", what, text:sub(1, 400)))
end

--- A blocking call; `nested` when a callback or a task makes it.
function blocking_call (crec, op, nested)
  local client = crec.client
  local api = op.api
  local call = { id = "call", api = api, crec = crec, stream_tags = {}, done_calls = 0, error_calls = 0,
                 deltas = 0, cancel_ev = nil, req = nil }
  local content = (api == "stream_cb" or op.stream) and MSG_LONG or (api == "tools" and MSG_TOOL or MSG_SHORT)
  local p = base_params(op, content)
  if op.on_done then p.on_done = wrap_done(call, op.on_done); call.has_done = true end
  if op.on_error then p.on_error = wrap_error(call, op.on_error); call.has_error = true end
  if op.stream or api == "stream_cb" then p.stream = wrap_stream(nil, op.stream, call) end
  local start_ev = tick()
  local saved = S.in_cancel
  S.in_cancel = 0
  local ok, a, b, c3
  if api == "complete" then
    p.messages, p.prompt, p.max_tokens = nil, "Once upon a time", 20
    ok, a, b = pcall(client.complete, client, p)
  elseif api == "tools" then
    p.tools = toolset(op.tool, { crec = crec })
    ok, a, b = pcall(client.chat, client, p)
  elseif api == "schema" then
    p.schema = SCHEMA
    ok, a, b = pcall(client.chat, client, p)
  elseif api == "say" then
    ok, a, b = pcall(function () return conversation(crec):say(MSG_SHORT, p) end)
  elseif api == "best_of" then
    local n = 0
    p.on_done, p.on_error, p.stream = nil, nil, nil
    call.has_done, call.has_error = nil, nil
    ok, a, b, c3 = pcall(aigc.strategy.best_of, {
      client = client, n = 2, params = p,
      score = function (text)
        n = n + 1
        run_act(op.score, n, { kind = "score", crec = crec })
        return #text
      end })
  elseif api == "race" then
    local _, other = client_of(op.c2 or 0)
    p.on_done, p.on_error, p.stream = nil, nil, nil
    call.has_done, call.has_error = nil, nil
    ok, a, b, c3 = pcall(aigc.strategy.race, { params = p, { client = client }, { client = other or client } })
  elseif api == "models" then
    ok, a, b = pcall(client.models, client)
  else
    ok, a, b = pcall(client.chat, client, p)
  end
  S.in_cancel = saved
  if not ok then
    -- (race's second entry may be another client, closed before or during it)
    if not nested then check_raise(crec, "a blocking " .. api, a, start_ev, op.c2 and S.crecs[op.c2]) end
    return
  end
  check_return(api, ok, a, b, c3)
  if nested then return end
  -- A stream callback's error is the call's error (unless the call was canceled first).
  if #call.stream_tags > 0 then
    local err = b
    local id = call.stream_tags[1]
    local canceled = is_error(err) and err.kind == "canceled"
    if a ~= nil then
      violation("stream-error-lost", string.format(
        "a blocking %s whose stream callback raised LCTAG#%d returned a result",
        api, id))
    elseif not canceled and not (is_error(err) and err.kind == "callback"
                                 and tostring(err.message):find("LCTAG#" .. id .. "#", 1, true)) then
      violation("stream-error-lost", string.format("a blocking %s whose stream callback raised LCTAG#%d returned %s",
        api, id, tostring(err)))
    end
  end
  -- Per-call on_done / on_error of a blocking chat or completion: exactly one, before it returns.
  if api == "chat" or api == "complete" or api == "stream_cb" then
    if a ~= nil and call.has_done and call.done_calls ~= 1 then
      violation("callback-missing", string.format("a blocking %s returned a result; on_done ran %d times",
        api, call.done_calls))
    elseif a == nil and call.has_error and call.error_calls ~= 1 then
      violation("callback-missing", string.format("a blocking %s returned nil, err (%s); on_error ran %d times",
        api, is_error(b) and b.kind or "?", call.error_calls))
    end
  end
end

--- The iterator form: a stream record's `for d in s`, or a fresh
-- `for d in client:stream{...}`.
function iterate (op, nested)
  local rec, s, fresh
  if op.k then
    rec = ref_req(op.k)
    if not rec or rec.kind ~= "s" then return end
    s = rec.obj
  else
    local crec = client_of(op.c)
    if not crec then return end
    rec = new_rec(crec, "stream_iter", "s")
    fresh = true
  end
  local n, how, last_status = 0, "end", nil
  local start_ev = tick()
  local ok, e = pcall(function ()
    local function body (delta, chunk)
      n = n + 1
      if type(delta) ~= "string" then
        violation("iterator-inconsistent", "the iterator gave a " .. type(delta)
          .. " delta (a string expected, \"\" without text)")
      end
      if chunk ~= nil and type(chunk) ~= "table" then
        violation("iterator-inconsistent", "the iterator gave a " .. type(chunk) .. " chunk")
      end
      -- The status when the body leaves the loop (break or raise), not when
      -- it starts: its act may drive the engine (a nested loop, a blocking
      -- call) and the stream may end on its own before the body leaves.
      local function note () last_status = rec.req and rec_status(rec) end
      note()
      if op.stop and n >= op.stop then return "break" end
      local r = run_act(op.body, n, { kind = "loop", rec = rec, crec = rec.crec, on_leave = note })
      note()
      return r
    end
    if fresh then
      -- The README's direct form, `for d in client:stream{...} do`: the
      -- call's values (the stream is the 4th, closed when the loop is left)
      -- exactly as the generic for receives them.
      local v = pack(rec.crec.client:stream(base_params(op, MSG_LONG)))
      rec.obj, rec.cancel_obj = v[1], v[1]
      rec.req = type(v[1]) == "table" and rawget(v[1], "request") or v[1]
      local ok_, e_ = pcall(function ()
        for delta, chunk in v[1], v[2], v[3], v[4] do
          if body(delta, chunk) == "break" then how = "break"; break end
        end
      end)
      if not FOR_CLOSES then close_value(v[4]) end
      if not ok_ then error(e_, 0) end
    elseif op.form == "close_after" then
      -- The plain form has no closing value: the loop's owner closes the stream.
      local ok_, e_ = pcall(function ()
        for delta, chunk in s do
          if body(delta, chunk) == "break" then how = "break"; break end
        end
      end)
      local close = rawget(getmetatable(s) or {}, "close") or rawget(getmetatable(s) or {}, "__close")
      if close then close(s) end
      if not ok_ then error(e_, 0) end
    else
      -- The form the README documents as canceling when the loop is left.
      local iter = type(s.deltas) == "function" and pack(s:deltas()) or { s }
      local ok_, e_ = pcall(function ()
        for delta, chunk in iter[1], iter[2], iter[3], iter[4] do
          if body(delta, chunk) == "break" then how = "break"; break end
        end
      end)
      if not FOR_CLOSES then close_value(iter[4]) end
      if not ok_ then error(e_, 0) end
    end
  end)
  if not ok then
    if type(e) == "string" and e:find("LCTAG#", 1, true) then how = "body-error"
    elseif is_error(e) then how = "error"
    else
      if not nested then check_raise(rec.crec, "a stream iterator", e, start_ev) end
      return
    end
  end
  if not rec.req then return end   -- client:stream raised
  local st = rec_status(rec)
  if how == "end" and st ~= "done" then
    violation("iterator-inconsistent", string.format("request %s: the loop ended normally, status %s", rec.id, st))
  elseif how == "error" then
    local _, err = rec.req:result()
    if not TERMINAL[st] or st == "done" then
      violation("iterator-inconsistent", string.format("request %s: the iterator raised %s, status %s",
        rec.id, tostring(e), st))
    elseif is_error(err) and err.kind ~= e.kind then
      violation("iterator-inconsistent", string.format("request %s: the iterator raised kind %s, result() says %s",
        rec.id, tostring(e.kind), tostring(err.kind)))
    end
  elseif (how == "break" or how == "body-error") and PENDING[last_status or "done"] then
    if st ~= "canceled" then
      violation("stream-break-not-canceled", string.format(
        "request %s: left the loop early (%s) while %s; status now %s",
        rec.id, how, tostring(last_status), st))
    elseif not rec.cancel_ev and not rec.close_ev then
      rec.cancel_ev = tick()
    end
  end
end

-- }======================================================


-- {======================================================
-- Checks after every operation
-- =======================================================

-- status() and result() as one consistent pair: each call allocates, and an
-- allocation may run a finalizer (an `npc`'s) that cancels the request in
-- between, so result() can truthfully describe a later state than the
-- status read before it. Read the status again after result(); on a change,
-- take both again (a few times: finalizers run out). Nil when they never agree.
local function status_and_result (rec)
  local st = rec_status(rec)
  for _ = 1, 4 do
    local ok, res, err = pcall(rec.req.result, rec.req)
    if not ok then
      violation("result-raises", string.format("request %s: result() raised %s", rec.id, tostring(res)))
    end
    local again = rec_status(rec)
    if again == st then return st, res, err end
    if TERMINAL[st] then   -- (an end is final: no finalizer may change it)
      violation("state-changed-after-end", string.format("request %s (%s): %s, then %s", rec.id, rec.api, st, again))
    end
    st = again
  end
end

local function check_rec (rec, final)
  if rec.abandoned or not rec.req then return end
  -- Judged against what the model knew BEFORE status(): its string's
  -- allocation may run a finalizer that cancels or steps after the state was
  -- taken (asan-jit seed 420005 seq 2257). The next check sees that.
  local cancel_ev, close_ev, done_calls, error_calls = rec.cancel_ev, rec.close_ev, rec.done_calls, rec.error_calls
  local st, res, err = status_and_result(rec)
  if st == nil then return end   -- still changing under finalizers: the next check sees it settled
  if not (PENDING[st] or TERMINAL[st]) then
    violation("state-invalid", string.format("request %s (%s): status %s", rec.id, rec.api, tostring(st)))
  end
  if rec.last_st and TERMINAL[rec.last_st] and st ~= rec.last_st then
    violation("state-changed-after-end", string.format("request %s (%s): %s, then %s",
      rec.id, rec.api, rec.last_st, st))
  end
  rec.last_st = st
  if TERMINAL[st] and not rec.term_ev then
    rec.term_ev = S.ev
    rec.term_steps = rec.crec.steps
  end
  if st == "done" then
    if type(res) ~= "table" or err ~= nil then
      violation("result-inconsistent", string.format("request %s (%s): done, result() = %s, %s", rec.id, rec.api,
        type(res), tostring(err)))
    end
  elseif TERMINAL[st] then
    if res ~= nil or not is_error(err) then
      violation("result-inconsistent", string.format("request %s (%s): %s, result() = %s, %s", rec.id, rec.api, st,
        type(res), type(err)))
    elseif st == "canceled" and err.kind ~= "canceled" then
      violation("result-inconsistent", string.format("request %s (%s): canceled with kind %s",
        rec.id, rec.api, tostring(err.kind)))
    end
    check_error_secret(err, "result()'s err")
  elseif res ~= nil or err ~= nil then
    violation("result-inconsistent", string.format("request %s (%s): %s, result() = %s, %s", rec.id, rec.api, st,
      type(res), type(err)))
  end
  if cancel_ev or close_ev then
    if rec.kind ~= "d" or final then
      local canceled = st == "canceled"
        or (rec.kind == "d" and TERMINAL[st] and is_error(err) and err.kind == "canceled")
      if not canceled then
        violation(cancel_ev and "cancel-not-canceled" or "close-not-canceled", string.format(
          "request %s (%s): %s after %s (kind %s)", rec.id, rec.api, st,
          cancel_ev and "cancel() returned true" or "client:close()", is_error(err) and err.kind or "-"))
      end
    end
  end
  if done_calls == 1 and st ~= "done" then
    violation("callback-wrong", string.format("request %s (%s): on_done ran, status %s", rec.id, rec.api, st))
  end
  if error_calls == 1 and not (TERMINAL[st] and st ~= "done") then
    violation("callback-wrong", string.format("request %s (%s): on_error ran, status %s", rec.id, rec.api, st))
  end
  -- Delivery: once it ended and its client was stepped after that (or at the end).
  local due = TERMINAL[st] and (final or (rec.term_steps and rec.crec.steps > rec.term_steps))
  if due then
    if st == "done" and rec.has_done and rec.done_calls == 0 then
      violation("callback-missing", string.format("request %s (%s): done, on_done never ran%s", rec.id, rec.api,
        final and " (end of sequence)" or " (the client was stepped since)"))
    elseif st ~= "done" and rec.has_error and rec.error_calls == 0 then
      violation("callback-missing", string.format("request %s (%s): %s (kind %s), on_error never ran%s%s", rec.id,
        rec.api, st, is_error(err) and err.kind or "-", rec.close_ev and " after client:close()" or
        (rec.cancel_ev and " after cancel()" or ""),
        final and " (end of sequence)" or " (the client was stepped since)"))
    end
  end
  -- A stream callback's error fails its request with kind "callback".
  if TERMINAL[st] and #rec.stream_tags > 0 and not rec.cancel_ev and not rec.close_ev then
    local id = rec.stream_tags[1]
    local canceled_first = is_error(err) and err.kind == "canceled"
    if not canceled_first and not (st == "failed" and is_error(err) and err.kind == "callback"
                                   and tostring(err.message):find("LCTAG#" .. id .. "#", 1, true)) then
      violation("stream-error-lost", string.format(
        "request %s (%s): its stream callback raised LCTAG#%d; it ended %s (%s)",
        rec.id, rec.api, id, st, is_error(err) and (err.kind .. ": " .. tostring(err.message):sub(1, 120)) or "-"))
    end
  end
  if final and PENDING[st] then
    violation("request-never-ends", string.format("request %s (%s, op %d) still %s after the drain", rec.id, rec.api,
      rec.op, st))
  end
end

local function check_all (final)
  local n = #S.reqs
  for k = 1, n do
    local rec = S.reqs[k]
    if rec then check_rec(rec, final) end
  end
end

-- Errors raised (and not reported) before a step on the same client that returned.
local function check_reports_after_step (crec, step_ev)
  for id, tag in pairs(S.tags) do
    if tag.class == "report" and tag.crec == crec and tag.ev < step_ev and tag.reports == 0 and not tag.lost then
      tag.lost = true
      violation("error-lost", string.format("LCTAG#%d (raised by a %s callback at op %d) was not reported: no "
        .. "error_handler call, not in the second result of the step() after it", id, tag.kind, tag.op))
    end
  end
end

-- `gc_before` is S.gc_acts read before the call that returned `n`: a
-- finalizer that acted since (a step, a cancel, a new request from inside a
-- collection) truthfully changed the count in between, so no verdict then.
local function check_counts (crec, what, n, gc_before)
  local client = crec.client
  local ok, a = pcall(client.active, client)
  if not ok then return end
  if S.gc_acts ~= gc_before then return end
  if n ~= a then
    local sleepers = type(rawget(client, "_sleepers")) == "table" and #client._sleepers or "?"
    violation("count-mismatch", string.format("%s returned %s, active() = %s (sleeping tasks: %s)", what,
      tostring(n), tostring(a), tostring(sleepers)))
  end
end

-- }======================================================


-- {======================================================
-- Descriptors
-- =======================================================

local PID = io.open("/proc/self/stat"):read("*l"):match("^(%d+)")

-- (Listed by a shell into a file, not through io.popen: a pipe of our own
-- would be in the list, and popen's two ends race with the listing.)
local FD_FILE = os.tmpname()
local function fd_list ()
  os.execute("ls -l /proc/" .. PID .. "/fd > " .. FD_FILE .. " 2>/dev/null")
  local list = {}
  local f = io.open(FD_FILE, "r")
  if not f then return list end
  local text = f:read("*a")
  f:close()
  for line in text:gmatch("[^\n]+") do
    local fd, target = line:match("(%d+) %-> (.*)$")
    -- (the listing's own file, open in this process while it reads it, is not counted)
    if fd and target ~= FD_FILE then list[#list + 1] = fd .. " -> " .. target end
  end
  return list
end

-- }======================================================


-- {======================================================
-- Operations
-- =======================================================

local OPS = {}

function OPS.new (op)
  local old = S.crecs[op.c]
  if old then old.client, old.conv = nil, nil; old.replaced = true end
  local crec = { slot = op.c, reqs = {}, steps = 0, timeout = op.timeout, retries = op.retries }
  local opts = {
    base_url = BASE_URL, api_key = SECRET, timeout = op.timeout, max_retries = op.retries,
    max_concurrency = op.conc, max_starts_per_step = op.starts, max_bytes_per_step = op.bytes,
  }
  if op.handler then opts.error_handler = wrap_handler(crec, op.handler); crec.handler = true end
  if op.log then opts.log = wrap_log(crec, op.log) end
  crec.client = aigc.client(opts)
  S.crecs[op.c] = crec
end

function OPS.close (op)
  local crec = client_of(op.c)
  if crec then do_close(crec) end
end

function OPS.drop (op)
  local crec = S.crecs[op.c]
  if not crec then return end
  S.crecs[op.c] = nil
  crec.client, crec.conv = nil, nil
  -- Its requests go with it: the model lets go of them so that the whole
  -- client can be collected (nothing can drive them any more).
  for _, rec in ipairs(crec.reqs) do
    rec.abandoned = true
    S.reqs[rec.id] = { abandoned = true }
    rec.obj, rec.req, rec.cancel_obj = nil, nil, nil
  end
  crec.reqs = {}
end

function OPS.async (op)
  local crec = client_of(op.c)
  if not crec then return end
  local start_ev = tick()
  local ok, e = pcall(submit_async, crec, op)
  if not ok then
    -- the record stays, without a request
    check_raise(crec, "an async " .. op.api, e, start_ev)
  end
end

function OPS.stream (op)
  local crec = client_of(op.c)
  if not crec then return end
  local start_ev = tick()
  local rec = new_rec(crec, "stream_obj", "s")
  local ok, s = pcall(crec.client.stream, crec.client, base_params(op, MSG_LONG))
  if not ok then return check_raise(crec, "client:stream", s, start_ev) end
  local inner = rawget(s, "request") or s
  rec.obj, rec.req, rec.cancel_obj = s, inner, s
end

function OPS.iter (op) iterate(op, false) end

function OPS.call (op)
  local crec = client_of(op.c)
  if crec then blocking_call(crec, op, false) end
end

function OPS.spawn (op)
  local crec = client_of(op.c)
  if not crec then return end
  local start_ev = tick()
  local ok, e = pcall(crec.client.spawn, crec.client, function ()
    for _, p in ipairs(op.body) do
      if p.a == "call" then
        local c2 = client_of(p.c)
        if c2 then blocking_call(c2, { api = "chat", fault = p.fault, tmo = p.tmo, deadline = p.deadline }, true) end
      else
        run_prim(p, { kind = "task", crec = crec })
      end
    end
  end)
  if not ok then check_raise(crec, "client:spawn", e, start_ev) end
end

function OPS.step (op)
  local crec = client_of(op.c)
  if not crec then return end
  local client = crec.client
  local step_ev = tick()
  local gc_before = S.gc_acts
  local ok, n, errs = pcall(client.step, client, op.t)
  if not ok then return check_raise(crec, "client:step", n, step_ev) end
  -- (a closed client with callbacks still to run accepts step(): its errors count)
  count_reports(errs, "step()'s second result")
  if crec.closed then return end
  check_counts(crec, "step()", n, gc_before)
  crec.steps = crec.steps + 1
  check_reports_after_step(crec, step_ev)
end

function OPS.act (op)
  local crec = client_of(op.c)
  if not crec then return end
  local start_ev = tick()
  local gc_before = S.gc_acts
  local ok, n, errs = pcall(crec.client.act, crec.client)
  if not ok then return check_raise(crec, "client:act", n, start_ev) end
  count_reports(errs, "act()'s second result")   -- (act() returns them as step() does)
  if crec.closed then return end
  check_counts(crec, "act()", n, gc_before)
end

function OPS.wait (op)
  local rec = ref_req(op.k)
  if not rec then return end
  local start_ev = tick()
  local ok, res, err = pcall(rec.req.wait, rec.req, op.t)
  if not ok then return check_raise(rec.crec, "req:wait", res, start_ev) end
  local st = rec_status(rec)
  if res ~= nil then
    if type(res) ~= "table" or st ~= "done" then
      violation("wait-inconsistent", string.format("request %s (%s): wait() returned a %s, status %s", rec.id, rec.api,
        type(res), st))
    end
  elseif err ~= nil then
    if not is_error(err) or not TERMINAL[st] or st == "done" then
      violation("wait-inconsistent", string.format("request %s (%s): wait() returned nil, %s; status %s", rec.id,
        rec.api, tostring(err), st))
    end
  elseif op.t == nil or TERMINAL[st] then
    violation("wait-inconsistent", string.format("request %s (%s): wait(%s) returned nil, nil; status %s", rec.id,
      rec.api, tostring(op.t), st))
  end
end

function OPS.cancel (op)
  local rec = ref_req(op.k)
  if rec then do_cancel(rec) end
end

function OPS.gc (op)
  if op.full then collectgarbage("collect") else collectgarbage("step", 0) end
end

function OPS.arm (op)
  gc_incremental(op.pause, 100)
  local act = op.act
  local fin
  fin = function (o)
    if S.disarmed then return end
    if o.acts then
      S.gc_acts = S.gc_acts + 1
      -- (an error raised here is Lua's warning, not aigc's: swallowed)
      pcall(run_act, act, 1, { kind = "gc" })
    end
    if o.left > 0 then finalized({ left = o.left - 1, acts = o.acts }, fin) end
  end
  for i = 1, op.n do
    finalized({ left = op.chain, acts = i <= 4 }, fin)
  end
end

function OPS.npc (op)
  local crec = client_of(op.c)
  if not crec then return end
  local start_ev = tick()
  local ok, rec = pcall(submit_async, crec, { api = "chat", fault = op.fault, tmo = op.tmo, deadline = op.deadline,
                                              on_done = op.on_done, on_error = op.on_error })
  if not ok then return check_raise(crec, "chat_async", rec, start_ev) end
  -- The game's pattern: the NPC cancels its pending request when collected.
  finalized({ rec = rec }, function (npc)
    if not npc.rec.abandoned and npc.rec.req then
      S.gc_acts = S.gc_acts + 1
      do_cancel(npc.rec)
    end
  end)
end

function OPS.burst (op)
  local crec = client_of(op.c)
  if not crec then return end
  local start_ev = tick()
  for _ = 1, op.n do
    local ok, e = pcall(submit_async, crec, { api = "chat", fault = op.fault, tmo = op.tmo, deadline = op.deadline })
    if not ok then return check_raise(crec, "chat_async", e, start_ev) end
  end
end

function OPS.pause (op) aigc.sleep(op.t) end

-- }======================================================


-- {======================================================
-- The sequence
-- =======================================================

local ops = gen.read(args.ops)

-- Warm-up, so that what libcurl and the resolver open once per process is
-- in the baseline: one request through a client that is then closed.
do
  local c = aigc.client { base_url = BASE_URL, max_retries = 0, timeout = 10 }
  assert(c:chat { messages = { { role = "user", content = "Hi" } } })
  c:close()
  c = nil   -- luacheck: ignore
  collectgarbage("collect")
  collectgarbage("collect")
end
local baseline = fd_list()

-- The drain bound: the longest a request can take (every attempt's
-- timeout, a retry's wait) and some slack for a loaded machine.
local drain = tonumber(args.drain) or 0
if drain == 0 then
  local longest = 1
  for _, op in ipairs(ops) do
    if op.op == "new" then longest = math.max(longest, op.timeout * (op.retries + 1) + op.retries * 1.5) end
  end
  drain = longest + 6
end

for i, op in ipairs(ops) do
  S.opi = i
  io.stdout:write("op ", i, " ", gen.describe(op), "\n")
  local fn = OPS[op.op]
  if not fn then error("lifecycle: unknown operation " .. tostring(op.op)) end
  local ok, e = xpcall(function () return fn(op) end, debug.traceback)   -- (5.1's xpcall passes no arguments)
  if not ok then
    violation("harness", "the operation raised through the harness: " .. tostring(e))
  end
  check_all(false)
end

-- Drain: drive every client until every request has ended and every end
-- (on_done / on_error) has run. A canceled or closed request's on_error runs
-- from the next driving call, so the drain goes on while a request still
-- owes its callback or a client's active() is above 0 (it counts requests
-- whose end is still to run); closed clients are stepped too (a closed
-- client with ends to run accepts step()), and a request of a replaced or
-- closed client is driven by its own wait().
S.opi = "end"
S.disarmed = true
io.stdout:write("op ", #ops + 1, " (drain)\n")

-- Requests not over: still running, or over with their callback still owed.
local function owed (rec)
  local st = rec_status(rec)
  if PENDING[st] then return true end
  if rec.done_calls + rec.error_calls > 0 then return false end
  return (st == "done" and rec.has_done) or (st ~= "done" and rec.has_error) or false
end

local function all_crecs ()
  local list, seen = {}, {}
  for k = 1, #S.reqs do
    local rec = S.reqs[k]
    if rec and not rec.abandoned and rec.crec and rec.crec.client and not seen[rec.crec] then
      seen[rec.crec] = true
      list[#list + 1] = rec.crec
    end
  end
  for c = 1, 3 do
    local crec = S.crecs[c]
    if crec and crec.client and not seen[crec] then seen[crec] = true; list[#list + 1] = crec end
  end
  return list
end

-- The bound is on time without progress: a queue (max_concurrency) of
-- slow requests may take longer in all, but one must end every `drain` s.
-- The deadline is judged after counting what the last iteration achieved:
-- one iteration can take longer than the bound on a loaded machine (a
-- wait(0.02) that decodes 40 finished 200 KB replies with the collector's
-- pause at 0), and ending the drain right after it, without stepping the
-- clients again, would report a request whose timeout nobody had a chance
-- to see as never ending.
--
-- A stream still delivering is progress too: under heavy load (ASan, 5.1,
-- the machine shared) a long streamed reply (the server pauses 2 ms between
-- events) took longer than the bound while its deltas kept coming, and was
-- reported as never ending (seed 5100383 sequence 394, request 13: run.lua's
-- `--drain 0.3` shows it on an idle machine). A stream that stops
-- delivering still fails after `drain` s; one that never ends is a hang.
--
-- A client with nothing to do (active() = 0) is stepped at 0, not 0.02: a
-- max_bytes_per_step client's replies move a turn at a time, not with time
-- (README: held, no timeout runs), and 20 ms slept in an idle client per
-- turn made its 40 replies of 300 KB (760 turns of one 16 KiB read, taken
-- in turn from each) end all together after 15 s, past the 9.5 s bound: a
-- request "never ending" that aigc ends in 0.2 s when stepped alone (seed
-- 638477 sequence 82 --keep 1,8,22,24, LuaJIT and 5.4 alike).
local deadline = core.now() + drain
local last_pending, last_deltas = math.huge, -1
while true do
  local pending, deltas = 0, 0
  for k = 1, #S.reqs do
    local rec = S.reqs[k]
    if rec then deltas = deltas + (rec.deltas or 0) end   -- (every request's: a sum that only grows)
    if rec and not rec.abandoned and rec.req and owed(rec) then pending = pending + 1 end
  end
  local crecs = all_crecs()
  local idle, busy = {}, false
  for _, crec in ipairs(crecs) do
    local ok, n = pcall(crec.client.active, crec.client)
    if ok and type(n) == "number" then pending = pending + n end
    idle[crec] = ok and n == 0
    busy = busy or not idle[crec]
  end
  if pending == 0 then break end
  if pending < last_pending or deltas > last_deltas then
    last_pending, last_deltas = math.min(pending, last_pending), deltas
    deadline = core.now() + drain
  elseif core.now() >= deadline then
    break
  end
  for i, crec in ipairs(crecs) do
    local step_ev = tick()
    local gc_before = S.gc_acts
    local t = (idle[crec] and (busy or i > 1)) and 0 or 0.02   -- (all idle: the first waits, no spin)
    local ok, n, errs = pcall(crec.client.step, crec.client, t)
    if ok then
      count_reports(errs, "step()'s second result (drain)")
      if not crec.closed then
        check_counts(crec, "step() (drain)", n, gc_before)
        crec.steps = crec.steps + 1
        check_reports_after_step(crec, step_ev)
      end
    end
  end
  for k = 1, #S.reqs do
    local rec = S.reqs[k]
    if rec and not rec.abandoned and rec.req and (rec.crec.replaced or rec.crec.closed) and owed(rec) then
      pcall(rec.req.wait, rec.req, 0.02)
    end
  end
end
check_all(true)
for _, crec in ipairs(all_crecs()) do
  local ok, n = pcall(crec.client.active, crec.client)
  if ok and n ~= 0 and not crec.closed then
    violation("active-after-drain", string.format("every request has ended, yet client %d's active() = %s",
      crec.slot, tostring(n)))
  end
end

for id, tag in pairs(S.tags) do
  if (tag.class == "report" or tag.class == "any") and tag.reports == 0 then
    io.stdout:write("unreported LCTAG#", id, "# ", tag.class, " ", tag.kind, "\n")
  end
end

-- Close every client; let go of everything; count descriptors.
for c = 1, 3 do
  local crec = S.crecs[c]
  if crec and crec.client then do_close(crec) end
end
local nreqs = #S.reqs
S.reqs, S.crecs, S.tags = {}, {}, {}
-- LuaJIT: a compiled trace keeps the objects it has as constants alive (a
-- client's hook closure, through it the client and its sockets) until the
-- trace is flushed; that is LuaJIT's, not a leak of aigc (with -joff the
-- same sequences keep no descriptor).
local luajit = rawget(_G, "jit")
if luajit and luajit.flush then luajit.flush() end
gc_incremental(200, 100)
for _ = 1, 4 do collectgarbage("collect") end
local after = fd_list()
if #after > #baseline then
  local was = {}
  for _, l in ipairs(baseline) do was[l] = true end
  local extra = {}
  for _, l in ipairs(after) do if not was[l] then extra[#extra + 1] = l end end
  violation("fd-growth", string.format("%d descriptors before the first client, %d after closing and collecting "
    .. "every one: %s", #baseline, #after, table.concat(extra, ", ")))
end

os.remove(FD_FILE)
io.stdout:write(string.format("done ops=%d requests=%d\n", #ops, nreqs))
os.exit(0, true)
