--- The random lifecycle tester's operation generator: a seed in, a list of
-- operations out, as plain data (tables of strings and numbers), so that a
-- sequence can be written to a file, replayed, printed and shrunk by
-- deleting operations. Nothing here touches aigc.
--
-- An operation refers to clients by slot (1..3) and to requests by their
-- number in the run (the k-th request submitted, 1-based; 0 means "the
-- request whose callback this is"). A reference to a slot or a request
-- that does not exist when the operation runs makes it a no-op, so any
-- subset of a sequence is itself a valid sequence (what shrinking needs).
--
-- Operations (field `op`), executed by spec/lifecycle/child.lua:
--   new     c, timeout, retries, conc, handler=ACT?, log=ACT?   create a client in slot c
--   close   c                          client:close()
--   drop    c                          forget the client (it is collected with what it holds)
--   async   c, api, fault?, tmo?, on_done=ACT?, on_error=ACT?, stream=ACT?, tool=ACT?
--                                      chat_async / complete_async / say_async (api:
--                                      chat, complete, stream_cb, tools, schema, say)
--   stream  c, fault?, tmo?            client:stream{...} kept for `iter` (not iterated yet)
--   iter    k?, c?, stop?, form?, body=ACT?   iterate stream k, or a fresh
--                                      `for d in client:stream{...}` when k is absent; form
--                                      "closing": `for d in s:deltas()` (`for d in s` where the
--                                      stream has no deltas()), "close_after": `for d in s`, then
--                                      s:close() (its __close where there is no close())
--   call    c, api, fault?, tmo?, stream=ACT?, tool=ACT?, score=ACT?, on_done=ACT?, on_error=ACT?
--                                      a blocking call (api: chat, complete, stream_cb, tools,
--                                      schema, say, best_of, race, models)
--   spawn   c, body={PRIM...}          client:spawn(task running the primitives in order)
--   step    c, t                       client:step(t)
--   act     c                          client:act()
--   wait    k, t?                      req:wait(t)
--   cancel  k                          req:cancel()
--   gc      full                       collectgarbage("collect") or ("step")
--   arm     n, chain, pause, act=ACT   n objects whose __gc runs ACT (and re-arms `chain` times)
--   npc     c, fault?, tmo?, on_done=ACT?, on_error=ACT?   a request held by an object whose
--                                      __gc cancels it; the object is dropped at once
--   burst   c, n, fault?               n chat_async requests at once (a flood)
--   pause   t                          aigc.sleep(t): time passes, nothing is driven
--
-- ACT is a list of primitives run by a callback (stream, on_done, on_error,
-- log hook, error_handler, tool function, best_of score, __gc finalizer,
-- iterator loop body); `nth` on the list runs it only at that invocation
-- (stream deltas, log lines). A primitive is { a = NAME, ... }:
--   none | raise | yield | gc | break (loop bodies only)
--   cancel k | close c | async c | call c | step c | wait k | iterate c
--
-- @usage
-- local gen = require "gen"   -- package.path with spec/lifecycle/?.lua
-- local ops = gen.sequence(gen.sequence_seed(42, 1), { faults = { "status=500" }, max_ops = 30 })
-- print(gen.describe(ops[1]))

local M = {}

--- The generator's version: a seed names the same sequence only with the
-- same version (bump it whenever a change draws differently). The runner
-- prints it; a replay line from another version needs that version's
-- tester (v1: lane/test ddea640..686477a; v2: up to max_bytes_per_step's
-- arrival, 5c31da9).
M.VERSION = 3

--- The PRNG and the per-sequence seeds live in spec/lifecycle/rng.lua:
-- 64-bit integer arithmetic, so Lua 5.3+ only (the runner, on 5.4, draws
-- the sequences). Everything else here runs on Lua 5.1-5.4 and LuaJIT,
-- where the child (spec/lifecycle/child.lua) reads and prints op lists.
function M.rng (seed)
  return require("rng").new(seed)
end

--- The seed of sequence `i` of a run started with `seed`.
function M.sequence_seed (seed, i)
  return require("rng").sequence_seed(seed, i)
end

-- Faults of the bundled server that every build has (lua/aigc/devserver.lua
-- header). Values are small so that a sequence stays a few seconds long.
M.BASE_FAULTS = {
  "delay=30", "delay=200", "status=500", "status=429,retry-after=0", "status=503,retry-after-ms=50",
  "status=400", "status=401", "close-mid-body", "reset", "garbage-status", "long-body",
  "body=malformed", "body=empty", "body=not-object", "body=no-choices", "body=invalid-utf8",
  "body=huge,size=50000", "body=huge,size=300000", "body=deep", "body=huge-number",
  "pause=5", "drop-after=2", "drop-after=20", "no-done", "error-event", "error-data", "malformed-chunk",
  "no-finish-reason", "crlf", "comments", "multiline", "byte-writes", "event-bytes=50000",
  "huge-line=70000", "repeat-ids", "content-filter", "hang", "drip=1",
  "schema=violate", "schema=not-json", "no-json-schema",
}
-- Faults added by the dev lane (see /work/notes/FAULTS-PLANNED.md); the
-- runner keeps those the server under test knows.
M.NEW_FAULTS = {
  "headers=3000", "echo-key", "body=empty-arrays,size=200000", "comment-drip=100",
  "raw-header=HTTP/1.1-x: 1", "bad-gzip", "tool-calls=hostile", "plain-for-stream", "dup-key",
}
-- Faults that keep a request open until a timeout (or a deadline) ends it.
M.SLOW_FAULTS = { hang = true, ["drip=1"] = true, ["comment-drip=100"] = true }

local ASYNC_APIS = { chat = 6, complete = 2, stream_cb = 6, tools = 3, schema = 2, say = 2 }
local CALL_APIS = { chat = 5, complete = 2, stream_cb = 5, tools = 3, schema = 2, say = 2,
                    best_of = 2, race = 2, models = 1 }

--- Generates one sequence.
-- @tparam integer seed
-- @tparam table opts `faults` (list of fault specs the server knows),
-- `max_ops` (default 40), `min_ops` (default 4), `deadline` (the client
-- knows `deadline`: slow faults may be drawn without a per-call timeout)
-- @treturn table list of operations
function M.sequence (seed, opts)
  opts = opts or {}
  local r = M.rng(seed)
  local faults = opts.faults or M.BASE_FAULTS
  local nops = r.int(opts.min_ops or 4, opts.max_ops or 40)
  local ops = {}
  local nreq = 0        -- requests the sequence has submitted so far (a guess for references)
  local open = {}       -- slots believed open (only to make references likely to hit)

  local function client_slot ()
    if r.chance(0.85) then
      local list = {}
      for c = 1, 3 do if open[c] then list[#list + 1] = c end end
      if #list > 0 then return r.pick(list) end
    end
    return r.int(1, 3)
  end
  local function req_ref (allow_self)
    if allow_self and r.chance(0.4) then return 0 end
    if nreq == 0 then return 1 end
    if r.chance(0.6) then return math.max(1, nreq - r.int(0, 2)) end
    return r.int(1, nreq + 1)
  end
  local function fault ()
    if r.chance(0.45) then return nil end
    local f = r.pick(faults)
    if f == "comment-drip=100" and not opts.deadline then return nil end
    return f
  end
  -- A per-call timeout (and, when the client knows it, a deadline): short
  -- for faults that hold a request open. `comment-drip` keeps resetting an
  -- idle timeout, so only a deadline ends it (the generator draws it only
  -- when the build has `deadline`).
  local function timing (f)
    if f and M.SLOW_FAULTS[f] then
      if opts.deadline and (f == "comment-drip=100" or r.chance(0.5)) then
        return nil, r.pick { 0.3, 0.6, 1.0 }
      end
      return r.pick { 0.3, 0.6, 1.0 }, nil
    end
    if r.chance(0.1) then return r.pick { 0.2, 0.5 }, nil end
    if opts.deadline and r.chance(0.1) then return nil, r.pick { 0.2, 0.5, 1.5 } end
    return nil, nil
  end
  local function with_fault (t)
    local f = fault()
    t.fault = f
    t.tmo, t.deadline = timing(f)
    return t
  end

  local PRIMS_CB = { none = 14, raise = 8, yield = 3, gc = 4, cancel = 9, close = 2,
                     async = 4, call = 2, step = 2, wait = 2, iterate = 1 }
  local function prim (allow_self, loop_body)
    local w = PRIMS_CB
    if loop_body then
      w = {}
      for k, v in pairs(PRIMS_CB) do w[k] = v end
      w["break"] = 6
    end
    local a = r.weighted(w)
    local p = { a = a }
    if a == "cancel" or a == "wait" then p.k = req_ref(allow_self) end
    if a == "close" or a == "async" or a == "call" or a == "step" or a == "iterate" then p.c = client_slot() end
    return p
  end
  -- A callback's action list, or nil (no callback) with probability `absent`.
  local function act (absent, allow_self, opts2)
    if absent and r.chance(absent) then return nil end
    local list = { prim(allow_self, opts2 and opts2.loop) }
    if r.chance(0.25) then list[2] = prim(allow_self, opts2 and opts2.loop) end
    if opts2 and opts2.nth then list.nth = r.int(1, opts2.nth) end
    return list
  end

  -- The first operation makes a client, so that most sequences do something.
  local function new_client (c)
    open[c] = true
    return {
      op = "new", c = c, timeout = r.pick { 1, 2, 3 }, retries = r.pick { 0, 0, 1 },
      conc = r.chance(0.2) and r.int(1, 3) or 0,
      starts = r.chance(0.25) and r.int(1, 3) or 0,   -- max_starts_per_step
      bytes = r.chance(0.3) and r.pick { 1, 64, 4096 } or 0,   -- max_bytes_per_step
      handler = r.chance(0.5) and act(nil, false) or nil,
      log = r.chance(0.25) and act(nil, false, { nth = 6 }) or nil,
    }
  end
  ops[1] = new_client(r.int(1, 3))

  local WEIGHTS = {
    new = 5, close = 3, drop = 1, async = 20, stream = 4, iter = 6, call = 10, spawn = 6,
    step = 22, act = 4, wait = 5, cancel = 8, gc = 4, arm = 4, npc = 3, burst = 2, pause = 2,
  }
  for _ = 2, nops do
    local kind = r.weighted(WEIGHTS)
    local op
    if kind == "new" then
      op = new_client(r.int(1, 3))
    elseif kind == "close" or kind == "drop" then
      local c = client_slot()
      if r.chance(0.7) then open[c] = nil end
      op = { op = kind, c = c }
    elseif kind == "async" then
      local api = r.weighted(ASYNC_APIS)
      op = with_fault { op = "async", c = client_slot(), api = api,
                        on_done = act(0.3, true), on_error = act(0.3, true) }
      if api == "stream_cb" or (api ~= "complete" and r.chance(0.15)) then
        op.stream = act(nil, true, { nth = 8 })
        if api ~= "stream_cb" then op.stream_too = true end
        -- on_stream_end: on a plain stream (a dialogue's rounds hear it each)
        if (api == "stream_cb" or api == "chat") and r.chance(0.35) then op.stream_end = act(nil, true) end
      end
      if api == "tools" then op.tool = act(nil, true) end
      nreq = nreq + 1
    elseif kind == "stream" then
      op = with_fault { op = "stream", c = client_slot() }
      nreq = nreq + 1
    elseif kind == "iter" then
      if r.chance(0.5) and nreq > 0 then
        op = { op = "iter", k = req_ref(false), form = r.pick { "closing", "close_after" } }
      else
        op = with_fault { op = "iter", c = client_slot() }
        nreq = nreq + 1
      end
      op.stop = r.chance(0.4) and r.int(1, 12) or nil
      op.body = act(0.5, false, { nth = 10, loop = true })
    elseif kind == "call" then
      local api = r.weighted(CALL_APIS)
      op = with_fault { op = "call", c = client_slot(), api = api,
                        on_done = act(0.6, false), on_error = act(0.6, false) }
      if api == "stream_cb" or ((api == "chat" or api == "tools" or api == "say") and r.chance(0.2)) then
        op.stream = act(nil, false, { nth = 8 })
      end
      if api == "tools" then op.tool = act(nil, false) end
      if api == "best_of" then op.score = act(0.3, false) end
      if api == "race" then op.c2 = client_slot() end
    elseif kind == "spawn" then
      local body = {}
      for i = 1, r.int(1, 4) do
        local p
        if r.chance(0.45) then
          p = with_fault { a = "call", c = client_slot() }
        else
          p = prim(false)
        end
        body[i] = p
      end
      op = { op = "spawn", c = client_slot(), body = body }
    elseif kind == "step" then
      op = { op = "step", c = client_slot(), t = r.pick { 0, 0, 0.01, 0.05, 0.2 } }
    elseif kind == "act" then
      op = { op = "act", c = client_slot() }
    elseif kind == "wait" then
      op = { op = "wait", k = req_ref(false), t = r.chance(0.5) and r.pick { 0, 0.05, 0.3 } or nil }
    elseif kind == "cancel" then
      op = { op = "cancel", k = req_ref(false) }
    elseif kind == "gc" then
      op = { op = "gc", full = r.chance(0.5) }
    elseif kind == "arm" then
      op = { op = "arm", n = r.pick { 50, 200, 1000 }, chain = r.int(0, 20), pause = r.pick { 0, 10, 50, 100 },
             act = act(nil, false) }
    elseif kind == "npc" then
      op = with_fault { op = "npc", c = client_slot(), on_done = act(0.5, true), on_error = act(0.5, true) }
      nreq = nreq + 1
    elseif kind == "burst" then
      local n = r.pick { 8, 20, 40 }
      op = with_fault { op = "burst", c = client_slot(), n = n }
      -- (forty requests that each hold the connection until a timeout, one at a
      -- time under max_concurrency, would outlast the child's time limit)
      if op.fault and M.SLOW_FAULTS[op.fault] then op.n = 8 end
      nreq = nreq + n
    else
      op = { op = "pause", t = r.pick { 0.01, 0.05, 0.2 } }
    end
    ops[#ops + 1] = op
  end
  return ops
end

-- {======================================================
-- Printing and files
-- =======================================================

local function is_list (t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  for i = 1, n do if t[i] == nil then return false end end
  return true
end

--- A Lua constructor for a value made of tables, strings, numbers and
-- booleans (keys sorted, `op` and `a` first): the op list's file format
-- and what a failing seed prints.
function M.serialize (v)
  local t = type(v)
  if t == "string" then return string.format("%q", v) end
  if t ~= "table" then return tostring(v) end
  local parts = {}
  if is_list(v) then
    for i = 1, #v do parts[i] = M.serialize(v[i]) end
    return "{" .. table.concat(parts, ", ") .. "}"
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function (a, b)
    local ra = (a == "op" or a == "a") and 0 or 1
    local rb = (b == "op" or b == "a") and 0 or 1
    if ra ~= rb then return ra < rb end
    return tostring(a) < tostring(b)
  end)
  for _, k in ipairs(keys) do
    local key = type(k) == "string" and k:match("^[%a_][%w_]*$") and k or ("[" .. M.serialize(k) .. "]")
    parts[#parts + 1] = key .. " = " .. M.serialize(v[k])
  end
  return "{ " .. table.concat(parts, ", ") .. " }"
end

--- One line describing an operation.
function M.describe (op)
  return M.serialize(op)
end

--- Writes an op list as a Lua file that returns it.
function M.write (path, ops)
  local f = assert(io.open(path, "w"))
  f:write("return {\n")
  for _, op in ipairs(ops) do f:write("  ", M.serialize(op), ",\n") end
  f:write("}\n")
  f:close()
end

--- Reads an op list written by `write`.
function M.read (path)
  local chunk = assert(loadfile(path, "t", {}))
  return chunk()
end

-- }======================================================

return M
