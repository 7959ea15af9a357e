--- The finalizer sweep of spec/finalizer_kinds_spec.lua, run in a child
-- process (a crash or a hang is the parent's to see): `sweep.run(url,
-- kind)` runs one call of `kind` (M.KINDS) while `__gc` finalizers call
-- `close()`, `cancel()`, a new `chat_async`, a blocking `chat`, `step()`
-- or the call's `wait()` on its client, collected at each turn of `step()` in turn (before turn 1, 2,
-- ... M.TURNS, with `collectgarbage()` between the steps) and from inside
-- the call's own callbacks (each one forces a full collection). One line
-- "VIOLATION kind action when: what" per broken rule, then "CASES n".
-- `sweep.run_blocking(url)` does the same for the blocking forms in the
-- main chunk (spec/finalizer_blocking_spec.lua).
--
-- The rules: the call ends (a blocking call, run in a task of its client,
-- returns); a call with on_done/on_error gets exactly one of them; after a
-- close its outcome is done or kind "canceled", after a cancel too; each
-- chat_async a finalizer started (one the closed client refused raises a
-- misuse, which the finalizer keeps) ends once; a finalizer's blocking
-- chat, step or wait returns or raises only the documented misuse (a
-- closed client, a step inside a callback, a wait for a request from
-- inside its own callback); nothing is left active; the client (a new one after close)
-- makes a call.
local aigc = require "aigc"
local portable = require "portable"
local forms = require "call_forms"
-- (a pcall a task can yield across, on PUC 5.1 too)
local tpcall = require("aigc.task").pcall

local M = {}

M.TURNS = 6
M.ACTIONS = { "close", "cancel", "chat_async", "chat_blocking", "step", "wait" }
-- (step and wait, sampled: inside the callbacks and before the first 2 turns)
M.TURNS_OF = { step = 2, wait = 2 }
M.KINDS = { "chat", "completion", "stream", "chat_async", "embeddings", "images", "audio", "responses", "batch",
            "download" }

local HI = { { role = "user", content = "Hi" } }
local STORY = { { role = "user", content = "Generate a short story about a robot that learns to paint." } }

-- Misuse a finalizer may meet: the client closed (by this or another
-- finalizer), or the loop turned from inside a callback.
local MISUSE = { "closed", "called from inside an aigc callback",
                 "cannot wait for a request from inside its own callback" }
local function misuse (e)
  for _, p in ipairs(MISUSE) do if tostring(e):find(p, 1, true) then return true end end
  return false
end

-- Each kind: `start(E)` starts the call; async kinds return the request
-- (or future), blocking ones run in a task of the client (E.spawn).
local K = {}

local function async (E, req) E.req = req; return req end

function K.chat (E) E.spawn(function () return E.c:chat { messages = HI } end) end
function K.completion (E) E.spawn(function () return E.c:complete { prompt = "Say hi", max_tokens = 8 } end) end
function K.stream (E) E.spawn(function () return E.c:chat { messages = STORY, stream = E.cb } end) end
function K.batch (E)
  E.spawn(function ()
    return aigc.batch.run(E.c, { { custom_id = "a", body = { messages = HI } } },
                          { interval = 0.02, on_progress = E.cb })
  end)
end
function K.chat_async (E)
  return async(E, E.c:chat_async { messages = STORY, stream = E.cb, on_done = E.on_done, on_error = E.on_error })
end
function K.embeddings (E)
  return async(E, E.c:embeddings_async { input = "hello", on_done = E.on_done, on_error = E.on_error })
end
function K.images (E)
  return async(E, E.c:images_generate_async { prompt = "a cat", on_done = E.on_done, on_error = E.on_error })
end
function K.audio (E)
  return async(E, E.c:speech_async { input = "Hello there, a few words of speech.", to = E.cb,
                                     on_done = E.on_done, on_error = E.on_error })
end
function K.responses (E)
  return async(E, E.c:respond_async { input = STORY[1].content, stream = E.cb,
                                      on_done = E.on_done, on_error = E.on_error })
end
function K.download (E)
  local up = assert(E.c:files_upload { purpose = "batch",
                                       file = { data = string.rep("x", 200000), filename = "a.jsonl" } })
  return async(E, E.c:download_async(E.url .. "/files/" .. up.id .. "/content",
                                     { to = E.cb, on_done = E.on_done, on_error = E.on_error }))
end

local TERMINAL = { done = true, failed = true, canceled = true }

-- The end of a case: the client (a new one when it was closed) makes a
-- call; both closed; one line a violation (`case`: kind, action, when).
local function end_case (url, c, closed, violations, case, out)
  local after = closed and aigc.client { base_url = url, max_retries = 0, model = "aigc-dev" } or c
  local ok, res = pcall(after.chat, after, "after")
  if not (ok and res) then violations[#violations + 1] = "the client after: " .. tostring(res) end
  pcall(after.close, after)
  pcall(c.close, c)
  for _, v in ipairs(violations) do out(("VIOLATION %s: %s"):format(case, (tostring(v):gsub("\n.*", "")))) end
end

-- One case: `action` by finalizers collected before turn `when` (a
-- number) or inside the call's callbacks (`when` = "inside").
local function run_case (url, kind, action, when, out)
  local violations = {}
  local function violation (s) violations[#violations + 1] = s end
  local E = { url = url, counts = { done = 0, err = 0 }, started = {}, blocking = {} }
  local c = aigc.client { base_url = url, max_retries = 0, model = "aigc-dev", error_handler = function () end }
  E.c = c
  E.on_done = function () E.counts.done = E.counts.done + 1 end
  E.on_error = function () E.counts.err = E.counts.err + 1 end
  local armed = false
  local function fin ()
    if action == "close" then pcall(c.close, c)
    elseif action == "cancel" then
      if E.req then E.req:cancel() end
    elseif action == "chat_async" then
      local rec = { done = 0, err = 0 }
      local ok, r = pcall(c.chat_async, c, { messages = HI,
        on_done = function () rec.done = rec.done + 1 end, on_error = function () rec.err = rec.err + 1 end })
      if ok then rec.req = r; E.started[#E.started + 1] = rec
      elseif not misuse(r) then violation("a finalizer's chat_async raised " .. tostring(r)) end
    elseif action == "step" then
      local ok, e = pcall(c.step, c, 0)
      if not ok and not misuse(e) then violation("a finalizer's step raised " .. tostring(e)) end
    elseif action == "wait" then
      if E.req then
        local ok, e = pcall(E.req.wait, E.req, 5)
        if not ok and not misuse(e) then violation("a finalizer's wait raised " .. tostring(e)) end
      end
    else
      local ok, res, err = pcall(c.chat, c, "from a finalizer")
      if not ok and not misuse(res) then violation("a finalizer's chat raised " .. tostring(res)) end
      E.blocking[#E.blocking + 1] = ok and (res and "ok" or err and err.kind) or "misuse"
    end
  end
  local function plant () for _ = 1, 3 do portable.finalized(fin) end end
  E.cb = function ()
    if when == "inside" and not armed then armed = true; plant() end
    collectgarbage()
  end
  local on_done, on_error = E.on_done, E.on_error
  E.on_done = function (...) on_done(...); E.cb() end
  E.on_error = function (...) on_error(...); E.cb() end
  E.spawn = function (fn)
    c:spawn(function ()
      local ok, res, err = tpcall(fn)
      E.ended = { ok = ok, res = res, err = err }
    end)
  end
  local ok, e = pcall(K[kind], E)
  if not ok then violation("the call did not start: " .. tostring(e)) end
  -- The turns: a finalizer collected before turn `when`.
  local guard = aigc.now() + forms.GUARD   -- (a guard against a hang only)
  local turn = 0
  while aigc.now() < guard do
    turn = turn + 1
    if turn == when then plant(); collectgarbage(); collectgarbage() end
    local sok, n = pcall(c.step, c, 0.01)
    if not sok then
      if not misuse(n) then violation("step raised " .. tostring(n)) end
      break
    end
    collectgarbage()
    if n == 0 and (turn >= (tonumber(when) or 0)) then break end
  end
  -- The rules.
  local closed = not pcall(c.active, c)
  if E.req then
    local st = E.req:status()
    if not TERMINAL[st] then violation("the call never ended (" .. st .. ")") end
    if E.counts.done + E.counts.err ~= 1 then
      violation(("on_done %d times, on_error %d times (%s)"):format(E.counts.done, E.counts.err, st))
    end
    local res, err = E.req:result()
    if (action == "close" or action == "cancel") and res == nil and not (err and err.kind == "canceled") then
      violation("ended with " .. tostring(err))
    end
  elseif not E.ended then
    violation("the blocking call never returned")
  elseif not E.ended.ok and not misuse(E.ended.res) then
    violation("the blocking call raised " .. tostring(E.ended.res))
  elseif E.ended.ok and E.ended.res == nil and not (E.ended.err and (E.ended.err.kind == "canceled" or closed)) then
    violation("the blocking call ended with " .. tostring(E.ended.err))
  end
  for i, rec in ipairs(E.started) do
    if not TERMINAL[rec.req:status()] or rec.done + rec.err ~= 1 then
      violation(("a finalizer's chat_async %d: %s, on_done %d, on_error %d"):format(i, rec.req:status(), rec.done,
                                                                                  rec.err))
    end
  end
  if not closed and c:active() ~= 0 then violation(c:active() .. " left active") end
  end_case(url, c, closed, violations, ("%s %s %s"):format(kind, action, tostring(when)), out)
end

-- The cases of one kind: { action, when } each.
local function cases ()
  local list = {}
  for _, action in ipairs(M.ACTIONS) do
    list[#list + 1] = { action, "inside" }
    for t = 1, M.TURNS_OF[action] or M.TURNS do list[#list + 1] = { action, t } end
  end
  return list
end

--- How many cases `run` runs for one kind.
function M.cases () return #cases() end

--- Runs every case of `kind`: each action inside its callbacks, then at
-- each turn. Returns the cases run.
function M.run (url, kind, out)
  out = out or print
  local list = cases()
  for _, case in ipairs(list) do run_case(url, kind, case[1], case[2], out) end
  out("CASES " .. #list)
  return #list
end

--- Runs `code` (Lua, `arg[1]` the server's base URL) in a child process
-- (spec/support/luachild.lua): its exit status, stderr, the VIOLATION
-- lines it printed and its "CASES n" line.
function M.in_child (url, code)
  local r = require("luachild").run(code, { args = { url }, timeout = 300 })
  local violations = {}
  for line in r.stdout:gmatch("[^\n]+") do
    if line:find("^VIOLATION") then violations[#violations + 1] = line end
  end
  return { status = r.status, stderr = r.stderr, violations = violations, cases = r.stdout:match("CASES %d+") }
end

-- {======================================================
-- The blocking forms, in the main chunk
-- =======================================================

-- Each blocking call of a kind: `(c, cb, E)`, `cb` called from its
-- callbacks (a stream's deltas, a sink, on_progress, the iterator's loop).
local B = {
  chat = function (c) return c:chat { messages = HI } end,
  completion = function (c) return c:complete { prompt = "Say hi", max_tokens = 8 } end,
  stream = function (c, cb) return c:chat { messages = STORY, stream = cb } end,
  iterator = function (c, cb)
    for _ in c:stream { messages = STORY } do cb() end
    return true
  end,
  embeddings = function (c) return c:embeddings { input = "hello" } end,
  images = function (c) return c:images_generate { prompt = "a cat" } end,
  audio = function (c, cb) return c:speech { input = "Hello there, a few words of speech.", to = cb } end,
  responses = function (c, cb) return c:respond { input = STORY[1].content, stream = cb } end,
  batch = function (c, cb)
    return aigc.batch.run(c, { { custom_id = "a", body = { messages = HI } } }, { interval = 0.02, on_progress = cb })
  end,
  download = function (c, cb, E) return c:download(E.url .. "/files/" .. E.up.id .. "/content", { to = cb }) end,
}
M.BLOCKING = { "chat", "completion", "stream", "iterator", "embeddings", "images", "audio", "responses", "batch",
               "download" }
M.BLOCKING_ACTIONS = { "close", "chat_async", "chat_blocking", "step" }

-- One blocking call of `kind` in the main chunk, finalizers doing `action`
-- planted before it (collected at whatever allocation comes) or inside
-- its first callback (collected there): it returns its result, or kind
-- "canceled" after a close, or raises only the documented misuse.
local function run_blocking_case (url, kind, action, when, out)
  local violations = {}
  local function violation (s) violations[#violations + 1] = s end
  local c = aigc.client { base_url = url, max_retries = 0, model = "aigc-dev", error_handler = function () end }
  local function fin ()
    local ok, e
    if action == "close" then ok, e = pcall(c.close, c)
    elseif action == "chat_async" then ok, e = pcall(c.chat_async, c, { messages = HI })
    elseif action == "step" then ok, e = pcall(c.step, c, 0)
    else ok, e = pcall(c.chat, c, "from a finalizer") end
    if not ok and not misuse(e) then violation("a finalizer's " .. action .. " raised " .. tostring(e)) end
  end
  local armed = false
  local function plant () for _ = 1, 3 do portable.finalized(fin) end end
  local function cb ()
    if when == "inside" and not armed then armed = true; plant() end
    collectgarbage()
  end
  local E = { url = url }
  if kind == "download" then   -- (the file first, before any finalizer)
    E.up = assert(c:files_upload { purpose = "batch", file = { data = string.rep("x", 200000), filename = "a.jsonl" } })
  end
  if when == "before" then plant() end
  local ok, res, err = pcall(B[kind], c, cb, E)
  if not ok and not misuse(res) then violation("the call raised " .. tostring(res))
  elseif ok and res == nil and not (err and err.kind == "canceled") then violation("ended with " .. tostring(err)) end
  local closed = not pcall(c.active, c)
  local guard = aigc.now() + forms.GUARD   -- (a guard against a hang only)
  while not closed and aigc.now() < guard do
    local sok, n = pcall(c.step, c, 0.01)
    if not sok or n == 0 then break end
  end
  end_case(url, c, closed, violations, ("%s %s %s"):format(kind, action, when), out)
end

--- Runs every blocking kind with every action, planted before the call
-- and inside its callbacks. Returns the cases run.
function M.run_blocking (url, out)
  out = out or print
  local n = 0
  for _, kind in ipairs(M.BLOCKING) do
    for _, action in ipairs(M.BLOCKING_ACTIONS) do
      for _, when in ipairs { "before", "inside" } do
        run_blocking_case(url, kind, action, when, out)
        n = n + 1
      end
    end
  end
  out("CASES " .. n)
  return n
end

-- }======================================================

return M
