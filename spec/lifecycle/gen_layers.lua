--- The lifecycle tester's second generator (`run.lua --layers`): random
-- sequences across the Lua layers above the core -- conversations (say,
-- say_async, streamed, through aigc.sentences), tools that call back into
-- the client, strategies, tasks and futures, the client's hooks (usage,
-- cache, log, error_handler), aigc.ratelimit, finalizers and close --
-- as plain data, run by spec/lifecycle/layers_child.lua. Same rules as
-- gen.lua: clients (slots 1..2) and conversations (slots 1..2) by slot,
-- futures by their number in the run (0: the one whose callback this is);
-- a reference to what does not exist is a no-op, so any subset of a
-- sequence is a sequence (shrinking).
--
-- Operations (field `op`):
--   new   c, cache?, prices?, handler=ACT?, log=ACT?   a client in slot c
--   conv  v, c                                  aigc.conversation on client c in slot v
--   say   v, async?, stream=ACT?, sent=ACT?, tool=ACT?, on_done=ACT?, on_error=ACT?, fault?
--   chat  c, async?, stream=ACT?, sent=ACT?, tool=ACT?, on_done=ACT?, on_error=ACT?, fault?, temp0?
--   strat c, kind, c2?, score=ACT?, fault?, resp?  best_of, vote, refine, fallback, race, route
--                                                (resp: Responses params, `input`)
--   spawn c, body={PRIM...}                     client:spawn
--   rl    c                                      ratelimit reserve, chat, observe
--   usage c                                      usage(), cache_stats(), reset_usage / set_prices
--   step  c, t      wait k, t?     cancel k     gc full     close c     drop c
--   arm   n, act=ACT                             n objects whose __gc runs ACT
--   resp  c, async?, stream=ACT?, tool=ACT?, schema?, on_done=ACT?, on_error=ACT?, fault?
--                                                client:respond / respond_async (the Responses API)
--   speech c, async?, sink=ACT, sse?, fault?     speech to a function sink (ACT runs in it;
--                                                sse: stream_format = "sse")
--   image c, async?, save=ACT?, fault?           images_generate (url), then res:save_async
--   iter  c, resp?, n, close?, fault?            client:stream / stream_response: n pulls,
--                                                then s:close() or abandoned to the collector
-- (new: cache = "mem" | "disk"; conv: api = "responses" | "server"; say, chat: schema?)
-- ACT is a list of primitives a callback runs (stream, sentence, tool,
-- on_done/on_error, score, log, error_handler, finalizer, task body),
-- `nth` on it: only at that invocation. A primitive is { a = NAME, ... }:
--   none | raise | yield | gc | cancel k | close c | chat c | async c | say v
--   | sayasync v | step c | wait k | strat c | respond c | speech c | image c | iter c
local gen = require "gen"

local M = {}

M.VERSION = 2

-- The faults drawn (those the server knows): quick ones, so that a
-- sequence stays a few seconds long.
local FAULTS = {
  "status=500", "status=429,retry-after=0", "status=400", "close-mid-body", "body=malformed",
  "delay=30", "drop-after=2", "error-event", "no-done", "schema=violate", "tool-calls=hostile",
}
-- The Responses API's own (drawn for resp and iter over it only: the
-- server's grammar has them, run.lua does not probe them).
local RESP_FAULTS = { "failed-mid", "truncate", "incomplete", "seq-gap", "seq-disorder", "refusal",
                      "error-event,failed-after-error" }

local function act_list (r, ctx, absent)
  if absent and r.chance(absent) then return nil end
  local w = { none = 10, raise = 5, yield = 2, gc = 3, cancel = 7, close = 2, chat = 4, async = 3,
              say = 3, sayasync = 3, step = 2, wait = 3, strat = 1, respond = 2, speech = 2, image = 1,
              iter = 2 }
  local list = {}
  for i = 1, r.chance(0.3) and 2 or 1 do
    local a = r.weighted(w)
    local p = { a = a }
    if a == "cancel" or a == "wait" then p.k = ctx.ref(true) end
    if a == "close" or a == "chat" or a == "async" or a == "step" or a == "strat" or a == "respond"
      or a == "speech" or a == "image" or a == "iter" then p.c = ctx.client() end
    if a == "say" or a == "sayasync" then p.v = r.int(1, 2) end
    list[i] = p
  end
  if r.chance(0.4) then list.nth = r.int(1, 4) end
  return list
end

--- Generates one sequence (opts: faults, max_ops, min_ops).
function M.sequence (seed, opts)
  opts = opts or {}
  local r = gen.rng(seed)
  local known = {}
  for _, f in ipairs(opts.faults or FAULTS) do known[f] = true end
  local faults = {}
  for _, f in ipairs(FAULTS) do if known[f] then faults[#faults + 1] = f end end
  local nops = r.int(opts.min_ops or 4, math.min(opts.max_ops or 30, 30))
  local nfut, open = 0, {}
  local ctx = {}
  function ctx.client ()
    if r.chance(0.85) then
      local list = {}
      for c = 1, 2 do if open[c] then list[#list + 1] = c end end
      if #list > 0 then return r.pick(list) end
    end
    return r.int(1, 2)
  end
  function ctx.ref (allow_self)
    if allow_self and r.chance(0.4) then return 0 end
    if nfut == 0 then return 1 end
    return math.max(1, nfut - r.int(0, 2))
  end
  local function fault (resp)
    if #faults == 0 or r.chance(0.6) then return nil end
    if resp and r.chance(0.5) then return r.pick(RESP_FAULTS) end
    return r.pick(faults)
  end
  local function new_client (c)
    open[c] = true
    local ops_new = { op = "new", c = c, cache = r.chance(0.4) and r.pick { "mem", "disk" } or nil,
             prices = r.chance(0.4) or nil,
             handler = r.chance(0.5) and act_list(r, ctx) or nil,
             log = r.chance(0.2) and act_list(r, ctx) or nil }
    -- (a log hook that calls at every line recurses for ever: its calls log)
    if ops_new.log then ops_new.log.nth = ops_new.log.nth or r.int(1, 4) end
    return ops_new
  end
  local function callbacks (op, async)
    if r.chance(0.35) then op.stream = act_list(r, ctx) end
    if not op.stream and op.op ~= "resp" and r.chance(0.3) then op.sent = act_list(r, ctx) end
    if r.chance(0.4) then op.tool = act_list(r, ctx) end
    if not op.tool and r.chance(0.2) then op.schema = true end
    if async then
      op.on_done = act_list(r, ctx, 0.3)
      op.on_error = act_list(r, ctx, 0.3)
      nfut = nfut + 1
    end
    op.fault = fault(op.op == "resp" or op.op == "say")
    return op
  end
  local function media (kind)
    local async = r.chance(0.5) or nil
    local op = { op = kind, c = ctx.client(), async = async, fault = fault() }
    if kind == "speech" then op.sink, op.sse = act_list(r, ctx), r.chance(0.3) or nil
    else op.save = act_list(r, ctx, 0.3) end
    if async or kind == "image" then nfut = nfut + 1 end
    return op
  end

  local ops = { new_client(r.int(1, 2)) }
  ops[2] = { op = "conv", v = 1, c = ops[1].c }
  local WEIGHTS = { new = 3, conv = 3, say = 14, chat = 14, strat = 6, spawn = 6, rl = 2, usage = 3,
                    step = 12, wait = 5, cancel = 6, gc = 4, arm = 3, close = 2, drop = 1,
                    resp = 10, speech = 3, image = 3, iter = 5 }
  for _ = 3, nops do
    local kind = r.weighted(WEIGHTS)
    local op
    if kind == "new" then
      op = new_client(r.int(1, 2))
    elseif kind == "conv" then
      op = { op = "conv", v = r.int(1, 2), c = ctx.client(),
             api = r.chance(0.4) and r.pick { "responses", "server" } or nil }
    elseif kind == "say" then
      local async = r.chance(0.5) or nil
      op = callbacks({ op = "say", v = r.int(1, 2), async = async }, async)
    elseif kind == "chat" then
      local async = r.chance(0.5) or nil
      op = callbacks({ op = "chat", c = ctx.client(), async = async, temp0 = r.chance(0.4) or nil }, async)
    elseif kind == "resp" then
      local async = r.chance(0.5) or nil
      op = callbacks({ op = "resp", c = ctx.client(), async = async, temp0 = r.chance(0.3) or nil }, async)
    elseif kind == "speech" or kind == "image" then
      op = media(kind)
    elseif kind == "iter" then
      local resp = r.chance(0.4) or nil
      op = { op = "iter", c = ctx.client(), resp = resp, n = r.pick { 0, 1, 2, 5, 100 }, close = r.chance(0.5) or nil,
             fault = fault(resp) }
    elseif kind == "strat" then
      op = { op = "strat", c = ctx.client(), c2 = ctx.client(),
             kind = r.pick { "best_of", "best_of", "vote", "refine", "fallback", "race", "route" },
             fault = fault() }
      if op.kind ~= "route" and r.chance(0.35) then op.resp, op.fault = true, fault(true) end
      if op.kind == "best_of" and r.chance(0.6) then op.score = act_list(r, ctx) end
    elseif kind == "spawn" then
      local body = {}
      for i = 1, r.int(1, 3) do body[i] = act_list(r, ctx)[1] end
      op = { op = "spawn", c = ctx.client(), body = body }
    elseif kind == "rl" or kind == "usage" or kind == "close" or kind == "drop" then
      op = { op = kind, c = ctx.client() }
      if kind == "close" or kind == "drop" then open[op.c] = nil end
    elseif kind == "step" then
      op = { op = "step", c = ctx.client(), t = r.pick { 0, 0, 0.01, 0.05 } }
    elseif kind == "wait" then
      op = { op = "wait", k = ctx.ref(false), t = r.chance(0.5) and r.pick { 0, 0.05, 0.3 } or nil }
    elseif kind == "cancel" then
      op = { op = "cancel", k = ctx.ref(false) }
    elseif kind == "gc" then
      op = { op = "gc", full = r.chance(0.5) }
    else
      op = { op = "arm", n = r.pick { 10, 50, 200 }, act = act_list(r, ctx) }
    end
    ops[#ops + 1] = op
  end
  return ops
end

M.serialize, M.describe, M.write, M.read = gen.serialize, gen.describe, gen.write, gen.read
M.rng, M.sequence_seed = gen.rng, gen.sequence_seed
M.BASE_FAULTS, M.NEW_FAULTS, M.SLOW_FAULTS = gen.BASE_FAULTS, gen.NEW_FAULTS, gen.SLOW_FAULTS

return M
