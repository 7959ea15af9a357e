--- The child of `run.lua --layers`: runs one op list of
-- spec/lifecycle/gen_layers.lua against aigc's Lua layers and the bundled
-- server, three times (the later rounds measure the heap), and checks after
-- every operation and at the end of each round:
--   * no Lua error escapes an operation but documented misuse (a closed
--     client, step() in a callback, a busy conversation, a yield outside
--     aigc, a bad argument) or what a best_of `score` raised (it goes on);
--     no error reported to error_handler or by step() is other than what
--     a callback of ours raised or misuse ("internal-error");
--   * a call given on_done/on_error gets at most one of them, and exactly
--     one once everything was driven (its client open);
--   * close() (outside a finalizer) leaves none of its client's calls
--     pending ("in-flight-after-close");
--   * every open client drains (active() reaches 0) and then makes a fresh
--     call, and every conversation on it says a fresh turn;
--   * the Lua heap does not grow by more than LIMIT_KIB at every round
--     after the first (everything is closed and dropped after each; three
--     rounds).
-- Output as child.lua's: `op I ...`, `violation NAME op=I: ...`, `done ops=N`.
local args = {}
do
  local i = 1
  while arg[i] do
    local k = arg[i]:match("^%-%-(.+)$")
    if not k then error("layers_child.lua: unexpected argument " .. arg[i]) end
    args[k] = arg[i + 1]
    i = i + 2
  end
end
assert(args.ops and args["base-url"], "usage: layers_child.lua --ops FILE --base-url URL [--path P] [--cpath C]")
local here = (arg[0]:match("^(.*)/[^/]*$") or ".")
package.path = here .. "/?.lua;" .. here .. "/../support/?.lua;"
  .. (args.path and (args.path .. ";") or "") .. package.path
if args.cpath then package.cpath = args.cpath .. ";" .. package.cpath end
io.stdout:setvbuf("no")
-- (LuaJIT: the model's functions stay interpreted, as child.lua's: a compiled
-- pairs() loop exiting inside __gc loops for ever, LuaJIT #1045)
local luajit_engine = rawget(_G, "jit")
if luajit_engine and luajit_engine.off then luajit_engine.off(true, true) end

local gen = require "gen"
local aigc = require "aigc"
local sentences = require "aigc.sentences"
local strategy = require "aigc.strategy"
local ratelimit = require "aigc.ratelimit"

local BASE_URL = args["base-url"]
local TAG = "LAYERS-RAISE"
local LIMIT_KIB = 16
local PENDING = { queued = true, running = true }
local MISUSE = { "^bad argument", "^calling '", "^attempt to use a closed client", "^client:%a+%(%)", "^cannot ",
                 "^attempt to say", "attempt to yield", "yield across", "outside aigc", "^req:wait%(%)",
                 "^future:wait%(%)", "inside an aigc callback" }

local finalized = require("portable").finalized   -- (spec/support: a table's or a newproxy's __gc)

local S, OP   -- this round's state; the operation running
local DIR     -- the disk caches and saved images of this child: removed at its end
local function violation (name, msg)
  io.stdout:write(string.format("violation %s op=%s: %s\n", name, tostring(OP), msg))
  os.execute("rm -rf '" .. DIR .. "'")
  os.exit(3)
end

-- The text of an error value (aigc's error tables: their message).
local function text_of (e)
  if type(e) == "table" then
    local m = rawget(e, "message")
    if type(m) == "string" then return m, rawget(e, "kind") end
  end
  return tostring(e)
end

-- Whether an error is ours or documented misuse.
local function expected (e)
  local msg, kind = text_of(e)
  if msg:find(TAG, 1, true) then return true end
  if kind == "canceled" or kind == "limit" then return true end
  local bare = msg:gsub("^[^\n]-:%d+: ", "")
  for _, p in ipairs(MISUSE) do
    if bare:find(p) or msg:find(p) then return true end
  end
  return false
end

local function check_reported (e, where)
  if not expected(e) then
    local tb = type(e) == "table" and rawget(e, "traceback")
    violation("internal-error", (where .. ": " .. text_of(e)):sub(1, 600)
      .. (type(tb) == "string" and ("\n" .. tb:sub(1, 1500)) or ""))
  end
end

DIR = os.tmpname()
os.remove(DIR)
assert(os.execute("mkdir -p '" .. DIR .. "'"))
local SCHEMA = { type = "object", properties = { name = { type = "string" }, age = { type = "integer" } },
                 required = { "name", "age" }, additionalProperties = false }

local HI = { { role = "user", content = "Hi" } }
local TOOL_MSG = { { role = "user", content = "Please poke order A-1042" } }

local function conv_of (v) return S.convs[v] end
local function client_of (c) return S.clients[c] end
local function rec_of (k, ctx)
  if k == 0 then return ctx and ctx.self end
  return S.recs[k]
end

local run_act, register

-- One primitive of a callback; errors go on (they are the callback's),
-- after a look: an error that is neither ours nor misuse is a finding.
local PRIMS = {}
function PRIMS.none () end
function PRIMS.raise () error(TAG .. " raised by a callback", 0) end
function PRIMS.yield () coroutine.yield() end
-- (not inside a finalizer: on 5.1 and LuaJIT a full collection there runs
-- the other finalizers nested, each collecting again: a C stack overflow of
-- the test's own making)
function PRIMS.gc () if not S.in_gc then collectgarbage() end end
function PRIMS.cancel (p, ctx) local r = rec_of(p.k, ctx); if r and r.fut then r.fut:cancel() end end
function PRIMS.close (p)
  local c = client_of(p.c)
  if c then
    c:close()
    S.closed[c] = true
    if not S.in_gc then S.check_closed(c) end
  end
end
function PRIMS.chat (p) local c = client_of(p.c); if c then c:chat { messages = HI, timeout = 3 } end end
function PRIMS.async (p)
  local c = client_of(p.c)
  if c then register(c, true, function (params) return c:chat_async(params) end, {}) end
end
function PRIMS.say (p) local v = conv_of(p.v); if v then v.conv:say("Hi", { timeout = 3 }) end end
function PRIMS.sayasync (p)
  local v = conv_of(p.v)
  if v then register(v.c, true, function (params) return v.conv:say_async("Hi", params) end, {}) end
end
function PRIMS.step (p) local c = client_of(p.c); if c then c:step(0) end end
function PRIMS.wait (p, ctx) local r = rec_of(p.k, ctx); if r and r.fut then r.fut:wait(0.05) end end
function PRIMS.strat (p)
  local c = client_of(p.c)
  if c then strategy.best_of { client = c, n = 2, params = { messages = HI, timeout = 3 },
                               score = function (t) return #t end } end
end

function PRIMS.respond (p)
  local c = client_of(p.c)
  if c then c:respond { input = "Hi", timeout = 3 } end
end
function PRIMS.speech (p)
  local c = client_of(p.c)
  if c then c:speech { input = "Halt! Who goes there?", response_format = "pcm", timeout = 3, to = function () end } end
end
function PRIMS.image (p)
  local c = client_of(p.c)
  if not c then return end
  local res = c:images_generate { prompt = "a knight", size = "256x256", response_format = "url", timeout = 3 }
  if res then res:save_async(DIR .. "/prim-%d.png") end
end
-- A stream iterator pulled twice and left to the collector.
function PRIMS.iter (p)
  local c = client_of(p.c)
  if not c then return end
  local s = c:stream { messages = HI, timeout = 3 }
  for _ = 1, 2 do if not s() then break end end
end

local function run_prim (p, ctx)
  local ok, e = pcall(PRIMS[p.a], p, ctx)
  if not ok then
    check_reported(e, "a callback's " .. p.a)
    error(e, 0)
  end
end

function run_act (list, n, ctx)
  if not list or S.quiet or (list.nth and list.nth ~= n) then return end
  for _, p in ipairs(list) do run_prim(p, ctx) end
end

-- A call's params with the callbacks the op asks for.
local function params_for (op, ctx)
  local p = { messages = op.tool and TOOL_MSG or HI, timeout = 3 }
  if op.op == "resp" then p = { input = op.tool and TOOL_MSG[1].content or "Hi", timeout = 3 } end
  if op.schema then p.schema = SCHEMA end
  if op.fault then p.headers = { ["x-aigc-fault"] = op.fault } end
  if op.temp0 then p.temperature = 0 end
  if op.stream then
    local n = 0
    p.stream = function () n = n + 1; run_act(op.stream, n, ctx) end
  end
  if op.tool then
    local n = 0
    p.tools = aigc.tools { { name = "poke", description = "Pokes an order",
      parameters = { type = "object", properties = { order_id = { type = "string" } }, required = { "order_id" } },
      fn = function () n = n + 1; run_act(op.tool, n, ctx); return "poked" end } }
  end
  if op.sent then
    local n = 0
    p = sentences.stream(p, function () n = n + 1; run_act(op.sent, n, ctx) end)
  end
  return p
end

-- Registers an async call: `start(params)` gets params with counting
-- on_done/on_error (running op's acts) and returns the future.
function register (c, counted, start, op, after)
  local rec = { c = c, ends = 0, counted = counted }
  local ctx = { self = rec }
  local params = params_for(op, ctx)
  local function ended (what, list)
    return function (v)
      rec.ends = rec.ends + 1
      rec.how = what
      if rec.ends > 1 then violation("two-ends", "a call's " .. what .. " after its " .. tostring(rec.first)) end
      rec.first = rec.first or what
      -- (a failure is the server's; a callback's error is ours or misuse)
      if what == "on_error" and type(v) == "table" and v.kind == "callback" then
        check_reported(v, "on_error's err (kind callback)")
      end
      if after and what == "on_done" then after(v) end
      run_act(list, 1, ctx)
    end
  end
  params.on_done = ended("on_done", op.on_done)
  params.on_error = ended("on_error", op.on_error)
  rec.fut = start(params)
  S.recs[#S.recs + 1] = rec
  return rec
end

local OPS = {}
function OPS.new (op)
  local old = S.clients[op.c]
  if old then old:close(); S.closed[old] = true; S.check_closed(old) end
  local copts = { base_url = BASE_URL, model = "aigc-dev", max_retries = 0, timeout = 3,
                  cache = op.cache == "disk" and { dir = DIR .. "/cache" .. op.c } or op.cache and true or nil,
                  prices = op.prices and { ["aigc-dev"] = { input = 0.15, output = 0.6 } } or nil }
  local c = op.c
  copts.error_handler = function (e)
    check_reported(e, "error_handler's err")
    run_act(op.handler, 1, {})
  end
  if op.log then
    local n = 0
    copts.log = function () n = n + 1; run_act(op.log, n, {}) end
  end
  S.clients[c] = aigc.client(copts)
end
function OPS.conv (op)
  local c = client_of(op.c)
  if c and not S.closed[c] then
    S.convs[op.v] = { c = c, conv = aigc.conversation { client = c, system = "You are Sam.",
      max_context_tokens = op.api ~= "server" and 400 or nil, api = op.api and "responses" or nil,
      state = op.api == "server" and "server" or nil } }
  end
end
function OPS.say (op)
  local v = conv_of(op.v)
  if not v then return end
  if op.async then
    register(v.c, true, function (params) return v.conv:say_async("Hi there", params) end, op)
  else
    v.conv:say("Hi there", params_for(op, {}))
  end
end
-- A call by method name (chat, respond), blocking or its _async form.
local function call_op (method)
  return function (op)
    local c = client_of(op.c)
    if not c then return end
    if op.async then
      register(c, true, function (params) return c[method .. "_async"](c, params) end, op)
    else
      c[method](c, params_for(op, {}))
    end
  end
end
OPS.chat, OPS.resp = call_op("chat"), call_op("respond")
function OPS.strat (op)
  local c = client_of(op.c)
  if not c then return end
  local c2 = client_of(op.c2) or c
  local p = { messages = HI, timeout = 3, headers = op.fault and { ["x-aigc-fault"] = op.fault } or nil }
  if op.resp then p.messages, p.input = nil, "Hi" end
  local k = op.kind
  if k == "best_of" then
    local n = 0
    strategy.best_of { client = c, n = 2, params = p, judge = not op.score and { prompt = "Most vivid?" } or nil,
                       score = op.score and function (t) n = n + 1; run_act(op.score, n, {}); return #t end or nil }
  elseif k == "vote" then
    strategy.vote { client = c, n = 3, params = p }
  elseif k == "refine" then
    strategy.refine { client = c, params = p, rounds = 1 }
  elseif k == "fallback" then
    strategy.fallback { params = p, { client = c }, { client = c2 } }
  elseif k == "race" then
    strategy.race { params = p, { client = c }, { client = c2 } }
  else
    strategy.route { input = "Where is my order?", classify = { client = c }, client = c2, default = "other",
                     routes = { orders = { system = "You handle orders." }, other = { system = "You help." } } }
  end
end
function OPS.spawn (op)
  local c = client_of(op.c)
  if not c then return end
  c:spawn(function () for _, p in ipairs(op.body) do run_prim(p, {}) end end)
end
function OPS.rl (op)
  local c = client_of(op.c)
  if not c then return end
  S.limiters[op.c] = S.limiters[op.c] or ratelimit.new()
  local lim = S.limiters[op.c]
  local cost = ratelimit.estimate { messages = HI }
  if lim:reserve(cost, 1, op) then
    local ticket = lim:sent(cost, 1)
    local res, err = c:chat { messages = HI, timeout = 3 }
    lim:observe(ticket, res, err)
  end
  lim:state()
end
function OPS.usage (op)
  local c = client_of(op.c)
  if not c then return end
  local before = c:usage()
  if c.cache_stats then c:cache_stats() end
  aigc.usage.diff(c:usage(), before)
  if before.requests % 2 == 0 then c:reset_usage() else c:set_prices { ["aigc-dev"] = { input = 1, output = 2 } } end
end
function OPS.speech (op)
  local c = client_of(op.c)
  if not c then return end
  local n = 0
  local function sink () n = n + 1; run_act(op.sink, n, {}) end
  if op.async then
    register(c, true, function (params)
      params.messages, params.input, params.response_format, params.to = nil, "Rooms are free upstairs.", "pcm", sink
      params.stream_format = op.sse and "sse" or nil
      return c:speech_async(params)
    end, op)
  else
    c:speech { input = "Rooms are free upstairs.", response_format = "pcm", timeout = 3, to = sink,
               stream_format = op.sse and "sse" or nil, headers = op.fault and { ["x-aigc-fault"] = op.fault } or nil }
  end
end
-- The images' save_async is the counted call; with `async`, it starts in
-- the generation's on_done (its own ends counted there: at most one).
function OPS.image (op)
  local c = client_of(op.c)
  if not c then return end
  local gp = { prompt = "a knight", size = "256x256", response_format = "url", timeout = 3,
               headers = op.fault and { ["x-aigc-fault"] = op.fault } or nil }
  local target = DIR .. "/img" .. OP .. "-%d.png"
  if op.async then
    local saves = { ends = 0 }
    local function ended () saves.ends = saves.ends + 1
      if saves.ends > 1 then violation("two-ends", "an images save ended twice") end end
    gp.on_done, gp.on_error = nil, nil
    register(c, true, function (params)
      for k, v in pairs(gp) do params[k] = params[k] or v end
      params.messages = nil
      return c:images_generate_async(params)
    end, { on_done = op.save, on_error = op.save },
    function (res) res:save_async(target, { on_done = ended, on_error = ended }) end)
  else
    local res = c:images_generate(gp)
    if not res then return end
    register(c, true, function (params)
      return res:save_async(target, { on_done = params.on_done, on_error = params.on_error })
    end, { on_done = op.save, on_error = op.save })
  end
end
-- A stream iterator pulled `n` times, then closed or dropped for the
-- collector; its failures (the server's) are its result, not a finding.
function OPS.iter (op)
  local c = client_of(op.c)
  if not c then return end
  local p = { timeout = 3, headers = op.fault and { ["x-aigc-fault"] = op.fault } or nil }
  local s
  if op.resp then p.input = "Tell me a joke."; s = c:stream_response(p)
  else p.messages = HI; s = c:stream(p) end
  for _ = 1, op.n do
    local ok, d = pcall(s)
    if not ok then
      if type(d) ~= "table" or d.kind == "internal" then check_reported(d, "a stream iterator") end
      break
    end
    if d == nil then break end
  end
  if op.close then s:close() end
end
function OPS.step (op) local c = client_of(op.c); if c then c:step(op.t) end end
function OPS.wait (op) local r = S.recs[op.k]; if r then r.fut:wait(op.t) end end
function OPS.cancel (op) local r = S.recs[op.k]; if r then r.fut:cancel() end end
function OPS.gc (op) collectgarbage(op.full and "collect" or "step") end
function OPS.close (op) PRIMS.close(op) end
function OPS.drop (op)
  local c = S.clients[op.c]
  S.clients[op.c] = nil
  for _, r in ipairs(S.recs) do if r.c == c then r.dropped = true end end
  for v, cv in pairs(S.convs) do if cv.c == c then S.convs[v] = nil end end
end
-- (a blocking call runs in the first BLOCKING_FINALIZERS finalizers of an
-- arm only: 200 of them each pulling a stream took 26 s a sequence, near
-- the hang limit under ASan, and tell nothing more than 10 do)
local BLOCKING = { chat = true, say = true, strat = true, respond = true, speech = true, image = true, iter = true }
local BLOCKING_FINALIZERS = 10
function OPS.arm (op)
  local blocking = false
  for _, p in ipairs(op.act or {}) do blocking = blocking or BLOCKING[p.a] or false end
  for i = 1, op.n do
    local act = (blocking and i > BLOCKING_FINALIZERS) and {} or op.act
    finalized(function ()
      local was = S.in_gc
      S.in_gc = true
      -- (an error in __gc is only a warning: looked at here)
      local ok, e = pcall(run_act, act, 1, {})
      S.in_gc = was
      if not ok then check_reported(e, "a finalizer") end
    end)
  end
end

-- {======================================================
-- A round
-- =======================================================

local function new_state ()
  -- (clients by slot; `closed`, and what recs and convs name, by the client itself)
  local s = { clients = {}, convs = {}, recs = {}, closed = setmetatable({}, { __mode = "k" }), limiters = {} }
  function s.check_closed (c)
    for i, r in ipairs(s.recs) do
      if r.c == c and not r.dropped and r.fut and PENDING[r.fut:status()] then
        violation("in-flight-after-close", string.format("call %d of %s is %s after close()", i, tostring(c),
          r.fut:status()))
      end
    end
  end
  return s
end

local function score_in (op)
  if op.op == "strat" and op.score then return true end
  for _, k in ipairs { "stream", "sent", "tool", "on_done", "on_error", "act", "handler", "log" } do
    for _, p in ipairs(op[k] or {}) do if p.a == "strat" then return true end end
  end
  for _, p in ipairs(op.body or {}) do if p.a == "strat" then return true end end
  return false
end

local now = require("aigc.core").now
local function drain ()
  local t0 = now()
  while true do
    local busy = 0
    for _, client in pairs(S.clients) do
      if not S.closed[client] then
        local _, errs = client:step(0.02)
        for _, e in ipairs(errs or {}) do check_reported(e, "step()'s errors") end
      end
    end
    -- (counted after every client's step: a callback of one starts calls on another)
    for _, client in pairs(S.clients) do
      if not S.closed[client] then busy = busy + client:active() end
    end
    if busy == 0 then return end
    if now() - t0 > 30 then violation("drain", busy .. " still active after 30 s") end
  end
end

local function round (ops)
  S = new_state()
  for i, op in ipairs(ops) do
    OP = i
    io.stdout:write("op ", i, " ", gen.describe(op), "\n")
    local ok, e = pcall(OPS[op.op], op)
    if not ok and not (expected(e) and (score_in(op) or not text_of(e):find(TAG, 1, true))) then
      violation("escaped", "op " .. op.op .. " raised: " .. text_of(e):sub(1, 600))
    end
    if op.op == "close" and client_of(op.c) then S.check_closed(client_of(op.c)) end
  end
  OP = "end"
  -- (the finalizers `arm` left run now, not during the checks below)
  collectgarbage()
  collectgarbage()
  drain()
  for i, r in ipairs(S.recs) do
    if not r.dropped and not S.closed[r.c] then
      if PENDING[r.fut:status()] then violation("not-ended", "call " .. i .. " is " .. r.fut:status()) end
      if r.ends ~= 1 then
        violation("ends", "call " .. i .. " ended " .. r.ends .. " times (" .. r.fut:status() .. ")")
      end
    end
  end
  -- (the callbacks do nothing from here: a log hook would start says of its own)
  S.quiet = true
  for c, client in pairs(S.clients) do
    if not S.closed[client] then
      local res, err = client:chat { messages = HI, timeout = 5 }
      if not res then violation("unusable", "client " .. c .. ": a fresh chat failed: " .. tostring(err)) end
    end
  end
  for v, cv in pairs(S.convs) do
    if not S.closed[cv.c] then
      local ok, reply, err = pcall(cv.conv.say, cv.conv, "Hello again", { timeout = 5 })
      if not ok or not reply then
        violation("unusable", "conversation " .. v .. ": a fresh say failed: " .. text_of(ok and err or reply))
      end
    end
  end
  for _, client in pairs(S.clients) do
    client:close()
    S.check_closed(client)
  end
  S = new_state()
end

local function heap ()
  collectgarbage()
  collectgarbage()
  return collectgarbage("count")
end

-- A leak grows the heap at every round; the interned strings' table grows it
-- once by its doubling (32 KiB at 4,096 slots: seen under ASan, once in
-- hundreds of sequences, not again on replay). So the check is that some
-- round after the first grew it by less than LIMIT_KIB (--rounds N, N >= 3).
local ops = gen.read(args.ops)
round(ops)
local first = heap()
local last, least = first, math.huge
for _ = 2, math.max(3, tonumber(args.rounds or 3)) do
  round(ops)
  local h = heap()
  least = math.min(least, h - last)
  last = h
end
OP = "end"
if least > LIMIT_KIB then
  violation("memory", string.format("the heap grew by %.1f KiB at every round after the first (by %.1f KiB in all)",
    least, last - first))
end
os.execute("rm -rf '" .. DIR .. "'")
io.stdout:write(string.format("done ops=%d heap=%.1f+%.1f KiB\n", #ops, first, last - first))
