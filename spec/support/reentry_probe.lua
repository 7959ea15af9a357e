--- The layers' re-entrancy probe of spec/reentry_layers_spec.lua, run in a
-- child process: `probe.run(url, layers, seed, n)` runs `n` cases per
-- layer, each a fresh client whose user callbacks of that layer run a
-- sequence of actions drawn from `seed` (the k-th call of a callback runs
-- the k-th action; calls past the end do nothing), in plain code or in a
-- task of another client. After each case it checks the contract and
-- prints one line per violation ("VIOLATION layer seq form: what"), then
-- "CASES n". A crash or a hang is the parent's to see (exit status).
--
-- Actions: close (client:close()), cancel (this request and another),
-- nested (a blocking chat on the same client), step, act, wait (another
-- request's wait, then this one's), gc (a full collection), raise, yield
-- (coroutine.yield: outside any coroutine, or the task's own), drop (the
-- last references to the requests, then a collection), fin (objects whose
-- finalizers cancel the requests and start others, left to the collector:
-- they run at whatever allocation comes), finclose (the same, one of them
-- closing the client).
--
-- AIGC_REENTRY_TRACE=1 writes each case to stderr before it runs.
--
-- The contract checked: a case's own code raises only what the actions
-- explain (a raised error, a closed client, step/act refused, a yield
-- refused, a canceled call) and ends; a request with on_done/on_error
-- gets exactly one of them and ends; an error raised (or a yield) in an
-- on_done is reported exactly once (error_handler); the client, or a new
-- one when it was closed, then makes a call.
local aigc = require "aigc"
local sentences = require "aigc.sentences"
local portable = require "portable"
-- (a pcall a task can yield across, on PUC 5.1 too)
local tpcall = require("aigc.task").pcall

local M = {}

M.ACTIONS = { "close", "cancel", "nested", "step", "act", "wait", "gc", "raise", "yield", "drop", "fin", "finclose" }

local STORY = { { role = "user", content = "Generate a short story about a robot that learns to paint." } }
local HI = { { role = "user", content = "Hi" } }

-- Errors a case's own code may see, by the actions that explain them.
local EXPLAINED = {
  raise = { "boom" }, close = { "closed", "canceled" }, cancel = { "canceled" }, drop = { "canceled" },
  step = { "client:step() called from inside an aigc callback" },
  act = { "client:act() called from inside an aigc callback" },
  yield = { "yield" }, fin = { "canceled" }, finclose = { "closed", "canceled" },
}
-- (PUC 5.1 cannot yield across a C call -- a generic for's iterator,
-- runner.run's pcall -- in a task: its documented limit)
local PUC51 = _VERSION == "Lua 5.1" and rawget(_G, "jit") == nil
local function explained (e, seq)
  local s = tostring(e)
  if PUC51 and s:find("attempt to yield across", 1, true) then return true end
  for _, a in ipairs(seq) do
    for _, p in ipairs(EXPLAINED[a] or {}) do if s:find(p, 1, true) then return true end end
  end
  return false
end

-- {======================================================
-- The layers: each sets up its calls with E.act in every user callback
-- =======================================================

local L = {}

-- Drives `req` to its end; checks its callbacks ran once (`counts`).
local function drive (E, req, counts)
  local c = E.client
  local deadline = aigc.now() + 10
  if require("aigc.task").in_task() then   -- (a task: it waits; its client's loop drives this one)
    tpcall(req.wait, req, 10)
    while counts and counts.done + counts.err == 0 and aigc.now() < deadline do tpcall(c.sleep, c, 0.01) end
  else
    while aigc.now() < deadline do
      local ok, n = pcall(c.step, c, 0.01)
      if not ok then break end   -- (closed)
      if n == 0 then break end
    end
  end
  local st = req:status()
  if st == "running" or st == "queued" then E.violation("the request never ended (" .. st .. ")") end
  if counts and counts.done + counts.err ~= 1 then
    E.violation(("on_done %d times, on_error %d times (%s)"):format(counts.done, counts.err, st))
  end
end

-- on_done/on_error that count; `act_in` "done" makes on_done act too.
local function callbacks (E, counts, act_in)
  return function () counts.done = counts.done + 1; if act_in then E.act() end end,
         function () counts.err = counts.err + 1 end
end

-- Another request of the client (what cancel and wait reach): its on_done
-- acts too when the layer's on_done does (two callback errors in a row).
local function other (E, on_done)
  E.ctx.other = E.client:chat_async { messages = { { role = "user", content = "other" } }, on_done = on_done and E.act }
end

-- One async call of a layer, its drawn actions run from its callbacks (and
-- from on_done when `act_in_done`) and around it: `submit(on_done,
-- on_error)` makes the request; then it is driven to its one end.
local function async_case (E, act_in_done, submit)
  local counts = { done = 0, err = 0 }
  local on_done, on_error = callbacks(E, counts, act_in_done or nil)
  local req = submit(on_done, on_error)
  E.ctx.req = req; other(E, act_in_done or nil)
  drive(E, req, counts)
end

function L.sentences_async (E)
  async_case(E, false, function (on_done, on_error)
    return E.client:chat_async(sentences.stream({ messages = STORY, on_done = on_done, on_error = on_error },
                                                function () E.act() end))
  end)
end

function L.sentences_blocking (E)
  E.client:chat(sentences.stream({ messages = STORY }, function () E.act() end))
end

function L.sentences_iter (E)
  for _ in sentences.iter(E.client:stream { messages = STORY }) do E.act() end
end

function L.sentences_say (E)
  local conv = aigc.conversation { client = E.client }
  async_case(E, false, function (on_done, on_error)
    return conv:say_async(STORY[1].content, sentences.stream({ on_done = on_done, on_error = on_error },
                                                            function () E.act() end))
  end)
end

function L.responses_stream (E)
  async_case(E, false, function (on_done, on_error)
    return E.client:respond_async { input = STORY[1].content, on_done = on_done, on_error = on_error,
                                    stream = function () E.act() end }
  end)
end

function L.responses_done (E)
  E.ctx.expect_report = true
  async_case(E, true, function (on_done, on_error)
    return E.client:respond_async { input = "Hi", on_done = on_done, on_error = on_error }
  end)
end

-- The Responses API through the dialogue layer: a toolset's function and
-- a schema'd reply (the lifecycle tester draws them over chat only).
local function tools (E)
  return aigc.tools {
    { name = "track_order", description = "Order status by id",
      parameters = { type = "object", properties = { id = { type = "string" } }, required = { "id" } },
      fn = function () E.act(); return "Order A-1042 ships Thursday." end },
  }
end

function L.responses_tools (E)
  async_case(E, false, function (on_done, on_error)
    return E.client:respond_async { input = "Please track order A-1042", tools = tools(E),
                                    on_done = on_done, on_error = on_error }
  end)
end

function L.responses_schema (E)
  E.ctx.expect_report = true
  async_case(E, true, function (on_done, on_error)
    return E.client:respond_async { input = "What is the capital of France?", on_done = on_done, on_error = on_error,
 schema = { type = "object", properties = { answer = { type = "string" } }, required = { "answer" },
            additionalProperties = false } }
  end)
end

function L.responses_iter (E)
  for _ in E.client:stream_response { input = STORY[1].content } do E.act() end
end

function L.cache_hit (E)
  E.ctx.expect_report = true
  E.set_client(E.new_client { cache = true })
  assert(E.client:chat { messages = HI, temperature = 0 })
  async_case(E, true, function (on_done, on_error)
    return E.client:chat_async { messages = HI, temperature = 0, on_done = on_done, on_error = on_error }
  end)
end

function L.prompt_log (E)
  E.ctx.expect_report = true
  local path = os.tmpname()
  E.ctx.cleanup = function () os.remove(path) end
  E.set_client(E.new_client { prompt_log = path })
  async_case(E, true, function (on_done, on_error)
    return E.client:chat_async { messages = HI, on_done = on_done, on_error = on_error }
  end)
end

function L.log_hook (E)
  E.set_client(E.new_client { log = function () E.act() end })
  local req = E.client:chat_async { messages = HI }
  E.ctx.req = req; other(E)
  drive(E, req)
end

function L.cassette (E)
  E.ctx.expect_report = true
  local tape = os.tmpname()
  os.remove(tape)
  E.ctx.cleanup = function () os.remove(tape) end
  E.set_client(E.new_client { cassette = { path = tape, mode = "record" } })
  async_case(E, true, function (on_done, on_error)
    return E.client:chat_async { messages = HI, on_done = on_done, on_error = on_error }
  end)
end

function L.usage_error (E)
  E.ctx.expect_report = true
  local counts = { done = 0, err = 0 }
  local req = E.client:chat_async { messages = HI, headers = { ["x-aigc-fault"] = "status=400" },
    on_done = function () counts.done = counts.done + 1 end,
    on_error = function () counts.err = counts.err + 1; E.act() end }
  E.ctx.req = req; other(E, true)
  drive(E, req, counts)
  if E.client:active() >= 0 then E.client:usage() end   -- (a closed client raises: explained)
end

function L.runner (E)
  local cases = {}
  for i = 1, 3 do cases[i] = { id = "c" .. i, vars = { x = tostring(i) } } end
  aigc.runner.run { client = E.client, concurrency = 2, template = aigc.template.new { prompt = "Say {{x}}" },
                    cases = cases, progress_interval = 0,
                    on_result = function () E.act() end, on_progress = function () E.act() end }
end

function L.runner_batch (E)
  local cases = {}
  for i = 1, 3 do cases[i] = { id = "c" .. i, vars = { x = tostring(i) } } end
  aigc.runner.run { client = E.client, backend = "batch", batch_interval = 0.05,
                    template = aigc.template.new { prompt = "Say {{x}}" }, cases = cases, progress_interval = 0,
                    on_result = function () E.act() end, on_progress = function () E.act() end }
end

function L.runner_strategy (E)
  local cases = {}
  for i = 1, 3 do cases[i] = { id = "c" .. i, vars = { x = tostring(i) } } end
  aigc.runner.run { client = E.client, concurrency = 2, template = aigc.template.new { prompt = "Say {{x}}" },
                    cases = cases, interrupted = function () E.act(); return false end,
                    strategy = function (client, params) E.act(); return client:chat(params) end }
end

function L.batch (E)
  aigc.batch.run(E.client, { { custom_id = "fr", body = { messages = HI } } },
                 { interval = 0.05, on_progress = function () E.act() end })
end

function L.images (E)
  E.ctx.expect_report = true
  async_case(E, true, function (on_done, on_error)
    return E.client:images_generate_async { prompt = "a cat", on_done = on_done, on_error = on_error }
  end)
end

function L.speech_sink (E)
  E.client:speech { input = "Hello there, this is a long enough input to give several chunks of audio.",
                    to = function () E.act() end }
end

function L.upload_reader (E)
  local n = 0
  async_case(E, false, function (on_done, on_error)
    return E.client:files_upload_async { purpose = "batch", on_done = on_done, on_error = on_error,
 file = { filename = "a.jsonl", size = 3000, reader = function ()
   n = n + 1
   E.act()
   if n <= 3 then return string.rep("y", 1000) end
 end } }
  end)
end

function L.download_sink (E)
  local up = assert(E.client:files_upload { purpose = "batch",
                                            file = { data = string.rep("x", 100000), filename = "a.jsonl" } })
  async_case(E, false, function (on_done, on_error)
    return E.client:download_async(E.url .. "/files/" .. up.id .. "/content",
                                   { to = function () E.act() end, on_done = on_done, on_error = on_error })
  end)
end

function L.best_of (E)
  aigc.strategy.best_of { client = E.client, n = 3, params = { messages = HI },
                          score = function (t) E.act(); return #t end }
end

function L.race (E)
  local b = E.new_client()
  E.ctx.cleanup = function () b:close() end
  local res, _, outcomes = aigc.strategy.race { params = { messages = STORY, stream = function () E.act() end },
                                                { client = E.client }, { client = b } }
  while b:step(0.01) > 0 do end
  -- (nothing ran on after the race ended without a winner)
  for i, o in ipairs(res == nil and type(outcomes) == "table" and outcomes or {}) do
    if o.status == "won" or o.status == "done" then
      E.violation("entry " .. i .. " ended " .. o.status .. " after the race")
    end
  end
  if not b:chat "after the race" then E.violation("the race's other client is unusable") end
end

function L.conversation_save (E)
  E.ctx.expect_report = true
  local conv = aigc.conversation { client = E.client }
  local counts = { done = 0, err = 0 }
  local saved
  local req = conv:say_async("Hello", {
    on_done = function () counts.done = counts.done + 1; saved = conv:save(); E.act() end,
    on_error = function () counts.err = counts.err + 1 end })
  E.ctx.req = req; other(E, true)
  drive(E, req, counts)
  if saved and not aigc.conversation.load(saved, E.new_client()) then
    E.violation("the saved conversation does not load")
  end
end

function L.watch (E)
  E.ctx.expect_report = true   -- (a watch callback's error goes to the error_handler)
  local c = E.client
  c:watch(function () E.act() end, function () E.act() end)
  local req = c:chat_async { messages = HI }
  E.ctx.req = req; other(E)
  local deadline = aigc.now() + 10
  while req:status() == "running" or req:status() == "queued" do
    if aigc.now() > deadline then E.violation("watch: the request never ended"); break end
    if not pcall(c.act, c) then break end
    aigc.sleep(0.005)
  end
end

M.LAYERS = {}
for name in pairs(L) do M.LAYERS[#M.LAYERS + 1] = name end
table.sort(M.LAYERS)

-- }======================================================

-- A small PRNG (the same draws on every Lua: 5.1's math.random is libc's).
local function rng (seed)
  local x = seed % 2147483647
  if x <= 0 then x = x + 2147483646 end
  return function (n)
    x = (x * 16807) % 2147483647
    return x % n + 1
  end
end

-- One case: a fresh client, the layer's calls, then the checks.
local function run_case (url, layer, seq, form, out)
  local reported, violations = {}, {}
  local ctx = {}
  local E = { ctx = ctx, url = url }
  function E.violation (s) violations[#violations + 1] = s end
  function E.new_client (extra)
    local o = { base_url = url, max_retries = 0, model = "aigc-dev",
                error_handler = function (e) reported[#reported + 1] = tostring(e) end }
    for k, v in pairs(extra or {}) do o[k] = v end
    return aigc.client(o)
  end
  function E.set_client (c) E.client = c end
  E.client = E.new_client()
  local calls, expected_reports = 0, 0
  function E.act ()
    calls = calls + 1
    local a = seq[calls]
    local c = E.client
    if ctx.expect_report and (a == "raise" or a == "yield") then expected_reports = expected_reports + 1 end
    if a == "close" then c:close()
    elseif a == "cancel" then
      if ctx.req then ctx.req:cancel() end
      if ctx.other then ctx.other:cancel() end
    elseif a == "nested" then c:chat "nested"
    elseif a == "step" then c:step(0)
    elseif a == "act" then c:act()
    elseif a == "wait" then
      if ctx.other then ctx.other:wait(2) end
      if ctx.req then ctx.req:wait(0.05) end
    elseif a == "gc" then collectgarbage(); collectgarbage()
    elseif a == "raise" then error("boom " .. calls)
    elseif a == "yield" then coroutine.yield()
    elseif a == "drop" then ctx.req, ctx.other = nil, nil; collectgarbage(); collectgarbage()
    elseif a == "fin" or a == "finclose" then
      for k = 1, 30 do
        portable.finalized(function ()
          if ctx.req then ctx.req:cancel() end
          if ctx.other then ctx.other:cancel() end
          if a == "finclose" and k == 15 then c:close() end
          pcall(c.chat_async, c, { messages = HI })
        end)
      end
      collectgarbage("step")
    end
  end
  local result
  local function body () result = { tpcall(L[layer], E) } end
  local host
  if form == "task" then
    host = E.new_client()
    local co = host:spawn(body)
    -- (a task that yielded on its own is abandoned, its error reported:
    -- dead, or on LuaJIT, which cannot close a coroutine, left suspended)
    local function ended ()
      if result or coroutine.status(co) == "dead" then return true end
      for _, e in ipairs(reported) do if e:find("abandoned", 1, true) then return true end end
      return false
    end
    local deadline = aigc.now() + 20
    while not ended() and aigc.now() < deadline do host:step(0.01) end
    if not ended() then E.violation("the task never ended") end
  else
    body()
  end
  if result and not result[1] and not explained(result[2], seq) then
    E.violation("raised " .. tostring(result[2]))
  end
  -- What was raised or yielded in on_done is reported once.
  local c = E.client
  local deadline = aigc.now() + 5
  while aigc.now() < deadline do
    local ok, n = pcall(c.step, c, 0.01)
    if not ok or n == 0 then break end
  end
  if ctx.expect_report and #reported < expected_reports then
    E.violation(("%d errors raised in on_done, %d reported"):format(expected_reports, #reported))
  end
  -- The client, or a new one, goes on.
  local ok, res = pcall(c.chat, c, "after")
  if not (ok and res) then
    if ok or not tostring(res):find("closed", 1, true) then E.violation("the client after: " .. tostring(res)) end
    local fresh = E.new_client()
    if not fresh:chat "fresh" then E.violation("a new client does not work") end
    fresh:close()
  end
  pcall(c.close, c)
  if host then host:close() end
  if ctx.cleanup then ctx.cleanup() end
  for _, v in ipairs(violations) do
    out(("VIOLATION %s %s %s: %s"):format(layer, table.concat(seq, ","), form, (v:gsub("\n.*", ""))))
  end
end

--- Runs one case (to replay a VIOLATION line): `seq` a list of actions,
-- `form` "plain" or "task".
function M.case (url, layer, seq, form, out)
  run_case(url, layer, seq, form, out or print)
end

--- Runs `n` cases of each of `layers` (names; all when nil) from `seed`.
-- @treturn integer the cases run
function M.run (url, layers, seed, n, out)
  out = out or print
  local draw = rng(seed)
  local count = 0
  for _, layer in ipairs(layers or M.LAYERS) do
    for _ = 1, n do
      local seq = {}
      for k = 1, draw(3) do seq[k] = M.ACTIONS[draw(#M.ACTIONS)] end
      local form = draw(2) == 1 and "plain" or "task"
      if os.getenv("AIGC_REENTRY_TRACE") then io.stderr:write(layer, " ", table.concat(seq, ","), " ", form, "\n") end
      run_case(url, layer, seq, form, out)
      count = count + 1
    end
  end
  out("CASES " .. count)
  return count
end

return M
