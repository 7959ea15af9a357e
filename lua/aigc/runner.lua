--- The dataset runner: a template over a table of cases, concurrently,
-- inside the server's rate limits, with assertions and a results file
-- that a killed run resumes from.
--
-- Cases are JSON objects, one per line of a JSONL file (or Lua tables):
--
--     {"id": "fr", "vars": {"country": "France"}, "assert": [{"type": "contains", "value": "Paris"}]}
--
-- `id` (default: the line number; a string or a number, anything else is
-- refused) names the case in the results; `vars`
-- are the template's variables (without `vars`, every field but `id`,
-- `assert` and `messages` is a variable); a case may give `messages`
-- (or a `prompt` string) instead of using a template. Assertions, each
-- `{type =, value =}`:
--
--  - `contains`, `icontains` (any case), `not-contains`, `equals`, `starts-with`;
--  - `regex` (PCRE, with Debian's lua-rex-pcre2), `pattern` (a Lua pattern);
--  - `is-json`, `json-schema` (`value` a JSON schema; the reply parsed as JSON);
--  - `judge` (`value` the criteria; an LLM scores the reply 1 to 10 and it
--    passes at `threshold`, default 7).
--
-- Each case gives one line of the results file (JSONL), as it finishes:
--
--     {"id": "fr", "ok": true, "text": "...", "model": "...", "usage": {...}, "latency_ms": 412,
--      "attempts": 1, "cost": 0.00002, "pass": true, "assertions": [{"type": "contains", ...,
--      "pass": true}], "finished_at": "2026-..."}
--
-- (`ok = false` with `error = {kind, message, status}` when the call
-- failed after its attempts.) A results file that exists is resumed: cases
-- whose id has an `ok` line there are not run again (a partial last line
-- from a killed run is dropped) unless their request changed since (the
-- line's `digest`, `aigc.runner_digest`; a line without one counts as
-- done); failed cases run again. A file that is
-- not a results file (the cases, notes) is refused, never written to; a
-- file another run is writing (it holds `OUT.lock`) too. The runner paces
-- itself with `aigc.ratelimit` (x-ratelimit headers, 429s, adaptive
-- concurrency) and retries what can be retried (429, 408, 409, 5xx,
-- connection errors, timeouts) itself, honouring `retry-after`.
--
-- Backends: "direct" (requests from this process) and "batch" (the Batch
-- API: upload the JSONL of requests, create a batch, poll, map the output
-- back to the same result lines: `aigc.batch`).
--
-- @module aigc.runner
-- @usage
-- local runner = require "aigc.runner"
-- local summary = assert(runner.run {
--   client = client, cases = "cases.jsonl", out = "results.jsonl", concurrency = 8,
--   template = aigc.template.new { prompt = "What is the capital of {{country}}?" },
--   params = { model = "gpt-4o-mini", temperature = 0 },
-- })
-- print(summary.passed .. "/" .. summary.total .. " passed")

local core = require "aigc.core"
local util = require "aigc.util"
local client_loop = require "aigc.client_loop"
local task = require "aigc.task"
local ratelimit = require "aigc.ratelimit"
local template_mod = require "aigc.template"
local usage_mod = require "aigc.usage"
local assertions_mod = require "aigc.assertions"
local runfile = require "aigc.runfile"
local runner_input = require "aigc.runner_input"
local answer = require "aigc.runner_strategy"   -- (a case's call or strategy)
local repair_utf8 = require("aigc.tools").repair_utf8

local error_words = answer.error_words
local now = core.now
local error, getmetatable, ipairs, pairs, pcall, setmetatable, tonumber, tostring, type = error, getmetatable,
  ipairs, pairs, pcall, setmetatable, tonumber, tostring, type
local math_floor, math_max, math_min, math_random = math.floor, math.max, math.min, math.random
local table_remove, table_sort = table.remove, table.sort

util.own_module()

local M = {}

--- The backends there are.
M.BACKENDS = runner_input.BACKENDS

--- Attempts per case before its failure is final.
M.MAX_ATTEMPTS = 6

--- The judge's instruction for `judge` assertions (criteria and reply follow).
M.JUDGE_PROMPT = "You are grading an answer against criteria."

local run_error, id_key = runfile.run_error, runfile.id_key

-- Whether `e`, raised inside the run, is an aigc error (a results file it
-- cannot write), which run returns, rather than a callback's, which it raises.
local function runner_error (e)
  return type(e) == "table" and getmetatable(e) == getmetatable(run_error(""))
end

--- Reads a JSONL file of cases: `aigc.runfile.read_cases`.
-- @function read_cases
M.read_cases = runfile.read_cases

--- Reads a results file: `aigc.runfile.read_results`.
-- @function read_results
M.read_results = runfile.read_results



-- {======================================================
-- Assertions
-- =======================================================

--- The assertion types there are (name -> true).
M.ASSERTION_TYPES = assertions_mod.TYPES
--- What is wrong with an assertion's arguments (a bad pattern, a schema that is not one...), or nil:
-- `aigc.assertions.problem`. @function assertion_problem
M.assertion_problem = assertions_mod.problem
local describe_assertion = assertions_mod.describe

--- Checks a reply against assertions (a judge assertion calls the client,
-- so call this where a chat may run: a task, or plain code).
-- @tparam table assertions list of `{type =, value =}`
-- @tparam string text the reply
-- @tparam[opt] table ctx `client` and `model` (for judges), `parsed` (a structured reply)
-- @treturn boolean all pass
-- @treturn table results `{ type =, value =, pass =, reason = }` each
-- @usage local pass, results = runner.check({ { type = "contains", value = "Paris" } }, res.text)
function M.check (assertions, text, ctx)
  ctx = ctx or {}
  ctx.judge_prompt = ctx.judge_prompt or M.JUDGE_PROMPT
  return assertions_mod.check(assertions, text, ctx)
end

-- }======================================================


-- {======================================================
-- Cost
-- =======================================================

--- The cost of a usage at a price: `aigc.usage.cost` (kept here by its
-- old name). @function cost
M.cost = usage_mod.cost

--- The price of a model in a price table: `aigc.usage.price`. @function price
M.price = usage_mod.price

-- }======================================================


-- {======================================================
-- Running
-- =======================================================

local function retryable (err)
  if type(err) ~= "table" then return false end
  local k, s = err.kind, err.status
  if k == "connect" or k == "timeout" then return true end   -- (a call's deadline too: a new call has its own)
  -- The core's verdict when it gave one: x-should-retry wins over the status
  if type(err.retryable) == "boolean" then return err.retryable end
  return s == 408 or s == 409 or s == 429 or (type(s) == "number" and s >= 500)
end

-- (not os.date("!..."): Lua 5.1's and 5.2's gmtime shares one buffer between threads)
local iso_now = require("aigc.utc").iso

-- (a response's input_tokens and output_tokens count as a chat reply's)
local USAGE_ALIAS = { prompt_tokens = "input_tokens", completion_tokens = "output_tokens" }
local function add_usage (into, u)
  if type(u) ~= "table" then return end
  for _, k in ipairs { "prompt_tokens", "completion_tokens", "total_tokens" } do
    into[k] = (into[k] or 0) + (tonumber(u[k] or u[USAGE_ALIAS[k]]) or 0)
  end
end

-- Adds a response's usage to a line's `usage`, and to `billed[model]` (its
-- own model's, else `model`) unless the response cache answered it: a
-- cache hit counts its tokens, not its price.
local function add_res (usage, billed, r, model)
  if type(r) ~= "table" then return end
  add_usage(usage, r.usage)
  if r.cached then return end
  model = type(r.model) == "string" and r.model or model or ""
  billed[model] = billed[model] or {}
  add_usage(billed[model], r.usage)
end

-- The result line of a job whose call gave `res`: usage, assertions, cost.
local function result_of (run, job, res)
  local c = job.case
  local usage, billed = {}, {}
  for _, r in ipairs(res.usage_list or { res }) do add_res(usage, billed, r, job.params.model) end
  local text = type(res.text) == "string" and res.text or ""
  local ctx = { client = run.judge_client, model = job.params.model, parsed = res.parsed, judge_usage = {},
                api = run.api }
  local assertions = {}
  for _, a in ipairs(run.assertions) do assertions[#assertions + 1] = a end
  for _, a in ipairs(type(c.assert) == "table" and c.assert or {}) do assertions[#assertions + 1] = a end
  local pass, checked = M.check(assertions, text, ctx)
  for _, r in ipairs(ctx.judge_usage) do add_res(usage, billed, r, job.params.model) end
  job.judged = ctx.judge_usage   -- (the judges' replies: a batch run counts them)
  local model = type(res.model) == "string" and res.model or job.params.model
  -- Each model's tokens at its price, as the summary counts them: a judge on
  -- another model than the case's was priced as the case's model.
  local cost = M.price(run.prices, model) and 0 or nil   -- (0: a cache hit's)
  for name, u in pairs(billed) do
    local part = M.cost(u, M.price(run.prices, name))
    if part then cost = (cost or 0) + part end
  end
  job.result = {
    id = c.id, ok = true, text = text, parsed = res.parsed, model = model,
    usage = usage, latency_ms = job.latency and math_floor(job.latency * 1000 + 0.5), attempts = job.attempt,
    cost = cost,
    pass = pass, assertions = #checked > 0 and checked or nil, strategy = res.strategy,
    finished_at = iso_now(), digest = job.digest, checks = runner_input.checks_digest(run, c),
  }
end

local function attempt (run, job)
  local t0 = now()
  local res, err = answer.call(run, job.params, job.case)
  job.latency = now() - t0
  job.res, job.err = res, err
  if res then result_of(run, job, res) end
end

local function failure_result (job)
  local err = job.err
  return {
    id = job.case.id, ok = false, attempts = job.attempt, pass = false, finished_at = iso_now(),
    latency_ms = job.latency and math_floor(job.latency * 1000 + 0.5) or nil,
    -- (repaired: a server's error page need not be UTF-8 -- a proxy's Latin-1
    -- 502 -- and the line is JSON; it stopped the run with an encode error)
    error = { kind = type(err) == "table" and err.kind or "error", message = repair_utf8(tostring(error_words(err))),
              status = type(err) == "table" and err.status or nil },
  }
end

-- Tallies a result into the summary.
local function tally (summary, r)
  if r.ok then
    summary.ok = summary.ok + 1
    if r.pass == true then summary.passed = summary.passed + 1 end
    add_usage(summary.usage, r.usage)
    if type(r.cost) == "number" then summary.cost = (summary.cost or 0) + r.cost end
    for _, a in ipairs(type(r.assertions) == "table" and r.assertions or {}) do
      -- (a line of the results file, read back, may hold anything: an
      -- entry that is no assertion -- a number, a `type` that is not a
      -- string -- raised inside the run, or in the report, "internal error")
      local name = type(a) == "table" and type(a.type) == "string" and describe_assertion(a)
      local row = name and summary.by_assertion[name]
      if name and not row then
        row = { name = name, type = a.type, passed = 0, total = 0 }
        summary.by_assertion[name] = row
        summary.assertions[#summary.assertions + 1] = row
      end
      if row then
        row.total = row.total + 1
        if a.pass == true then row.passed = row.passed + 1 end
      end
    end
  else
    summary.failed = summary.failed + 1
  end
end

-- The spec and the cases, checked: aigc.runner_input.
local check_spec, load_cases = runner_input.check_spec, runner_input.load_cases
local case_params, request_digest, changed = runner_input.case_params, runner_input.request_digest,
  runner_input.changed

-- A run in progress: the spec, the queue of jobs (cases in order; a
-- retried job goes back with a time), the counts, the limiter.
local Run = {}
Run.__index = Run

local function new_run (spec, cases, tpl, out, done)
  local client, source = spec.client, getmetatable(cases) == runner_input.Source
  local r = setmetatable({
    spec = spec, out = out, client = client, judge_client = spec.judge_client or client, template = tpl,
    params = spec.params or {}, strategy = spec.strategy, api = spec.api or "chat", prices = spec.prices or {},
    assertions = assertions_mod.list(spec.assert),
    max_attempts = spec.max_attempts or M.MAX_ATTEMPTS,
    max_wait = spec.max_wait or ratelimit.MAX_WAIT,
    limiter = ratelimit.new { concurrency = spec.concurrency or 4, pace = spec.pace, rpm = spec.rpm, tpm = spec.tpm,
                              max_wait = spec.max_wait },
    summary = { total = source and cases.total or #cases, skipped = 0, ok = 0, failed = 0, passed = 0, usage = {},
                cost = nil, requests = 0, retries = 0, rate_limited = 0, assertions = {}, by_assertion = {},
                results = spec.results ~= false and {} or nil },
    started = now(), queue = {}, head = 1, retries = {}, running = 0, fatal = nil, strategy_requests = 1,
    in_flight = {},   -- job -> the task of its attempt, while it makes its requests
    global_judges = 0,
    last_progress = -1, interval = spec.progress_interval or 0.2,
  }, Run)
  r.done, r.remaining = done, 0
  r.usage_before = r:usage_snapshots()   -- (before a case judged again as it is read asks its judge)
  if source then   -- (a file's cases, read as the run needs them: Run:pull)
    local reader, err = cases.open()
    if not reader then return nil, err end
    r.source = reader
  else
    for _, c in ipairs(cases) do if r.fatal then break end r:take(c) end   -- (none after a stop: Run:pull)
  end
  if type(r.strategy) == "table" then
    r.strategy_requests = (r.strategy.best_of or r.strategy.vote) + (r.strategy.best_of and 1 or 0)
  end
  -- Judge assertions make requests too: the limiter counts them.
  for _, a in ipairs(r.assertions) do if a.type == "judge" then r.global_judges = r.global_judges + 1 end end
  return r
end

-- A case read: done by an earlier run (counted as such), or queued.
function Run:take (c)
  local key = id_key(c.id)
  local prev = self.done[key]
  if prev then prev = runfile.done_row(prev) end   -- (a run keeping no results keeps them short)
  local why = prev and changed(self, c, prev)
  if why == "checks" and self:judge_again(c, key, prev) then return false end
  if why then prev = nil end
  local summary = self.summary
  if prev then
    summary.skipped = summary.skipped + 1
    if summary.results then summary.results[key] = prev end
    tally(summary, prev)
    return false
  end
  self.queue[#self.queue + 1] = { case = c, attempt = 0, not_before = 0 }
  self.remaining = self.remaining + 1
  return true
end

-- A case done by an earlier run whose assertions changed since (its
-- `checks`): its kept answer is checked again, without a request (a judge
-- assertion asks its judge), and its new line written. False when the
-- answer is no longer in the results file: the case runs again.
function Run:judge_again (c, key, prev)
  local line = prev.text and prev or prev.at and runfile.line_at(self.spec.out, prev.at, key)
  if not line or type(line.text) ~= "string" then return false end
  local params = case_params(self, c)
  local job = { case = c, attempt = line.attempts, digest = line.digest, params = params }
  local ok, err = pcall(result_of, self, job, { text = line.text, parsed = line.parsed, model = line.model,
                                                usage_list = {} })
  if not ok then util.reraise_memory(err); return false end
  local r = job.result
  add_usage(r.usage, line.usage)   -- (the answer's, and the judges' now)
  if type(line.cost) == "number" then r.cost = (r.cost or 0) + line.cost end
  r.latency_ms, r.batch_id, r.strategy = line.latency_ms, line.batch_id, line.strategy
  self.summary.skipped, self.summary.judged_again = self.summary.skipped + 1, (self.summary.judged_again or 0) + 1
  self.remaining = self.remaining + 1
  -- (a results file it cannot write -- a full disk -- stops the run, nil, err, as
  -- when a case run now cannot be written: it raised out of run)
  local fok, ferr = task.pcall(self.finish, self, job, r)
  if not fok then
    if not runner_error(ferr) then error(ferr, 0) end   -- (on_result raised: so does run)
    self.fatal = self.fatal or ferr
  end
  return true
end

-- Reads the next cases of a file to run (a few: the queue is all of them
-- that is kept) into a new queue: whether it has any. At most SCANNED
-- lines a time: the cases done by an earlier run are passed over here, and
-- a resumed million of them held the run (its Ctrl-C, its progress) for a
-- minute in one step. At the file's end the source goes; a line that became bad since it was
-- checked stops the run (`fatal`), as a kept answer judged again that cannot be written does:
-- no line is read after (each was, and judged again -- a judge's request -- up to SCANNED).
local PULLED, SCANNED = 64, 2048
function Run:pull ()
  local source, n, scanned = self.source, 0, 0
  self.queue, self.head = {}, 1
  while source and n < PULLED and scanned < SCANNED and not self.fatal and not self.stopped do
    local c, err = source.next()
    scanned = scanned + 1
    if not c then
      self.source, source = nil, nil
      if err and not self.fatal then self.fatal = err end
    elseif self:take(c) then
      n = n + 1
    end
  end
  return n > 0
end

-- The usage totals of the run's clients now (the judge client's when it
-- is another client): nil for a client that keeps none.
function Run:usage_snapshots ()
  local function of (c) return type(c) == "table" and type(c.usage) == "function" and c:usage() or nil end
  return { of(self.client), self.judge_client ~= self.client and of(self.judge_client) or nil }
end

local TOTAL_FIELDS = { "requests", "errors", "retries", "cache_hits", "prompt_tokens", "completion_tokens",
                       "total_tokens" }

-- What the run's own requests used since it started, from its clients'
-- usage totals (failed attempts, strategy candidates and judges included;
-- cases done by an earlier run are not), the cost at the run's prices
-- (else the client's; cache hits cost nothing); nil when the client keeps
-- no totals.
function Run:totals ()
  local t, parts = { models = {} }, {}
  if self.batch_lines then
    -- A batch run: its lines and its judges, as the batch backend counted
    -- and priced them. (The client's own totals count the batch's calls --
    -- upload, create, and each poll's batch object with its usage so far.)
    parts[1], parts[2] = self.batch_lines:snapshot(), self.batch_judges:snapshot()
    parts[1].priced, parts[2].priced = true, true
  else
    local after, before = self:usage_snapshots(), self.usage_before
    if not (after[1] and before[1]) then return nil end
    for i = 1, 2 do
      if after[i] and before[i] then parts[#parts + 1] = usage_mod.diff(after[i], before[i]) end
    end
  end
  for _, k in ipairs(TOTAL_FIELDS) do t[k] = 0 end
  for _, d in ipairs(parts) do
    for _, k in ipairs(TOTAL_FIELDS) do t[k] = t[k] + d[k] end
    for name, m in pairs(d.models) do
      local cost = d.priced and m.cost
        or usage_mod.cost(usage_mod.billed(m), usage_mod.price(self.prices, name)) or m.cost
      local into = t.models[name] or { requests = 0, prompt_tokens = 0, completion_tokens = 0, total_tokens = 0 }
      t.models[name] = into
      into.requests = into.requests + m.requests
      usage_mod.add_tokens(into, m)
      if cost then into.cost, t.cost = (into.cost or 0) + cost, (t.cost or 0) + cost end
    end
  end
  return t
end

function Run:judges_of (c)
  local n = self.global_judges
  for _, a in ipairs(type(c.assert) == "table" and c.assert or {}) do if a.type == "judge" then n = n + 1 end end
  return n
end

-- A job is over: its result is written, counted and told.
function Run:finish (job, result)
  local summary, out = self.summary, self.out
  if summary.results then summary.results[id_key(job.case.id)] = result end
  tally(summary, result)
  if out then
    local wok, werr = out:write(runfile.result_line(self.client, result), "\n")   -- (scrubbed)
    if wok then wok, werr = runfile.flush_out(out, self.spec.out) end
    if not wok then error(run_error("cannot write " .. self.spec.out .. ": " .. tostring(werr)), 0) end
  end
  if self.spec.on_result then self.spec.on_result(result, job.case) end
  -- (counted last: an on_result that waits -- a blocking call yields the
  -- job's task -- was still running, or never ran to its end, when run returned)
  self.remaining = self.remaining - 1
end

-- An attempt ended: the job is finished, or goes back to the queue for a retry.
function Run:settle (job)
  self.running = self.running - 1
  self.limiter:observe(job.ticket, job.res, job.err)
  if self.spec.log then
    self.spec.log:record_call(job.log_params or job.params, job.res, job.err, { latency_ms = (job.latency or 0) * 1000,
      source = "run", client = self.client, extra = { case_id = job.case.id, attempt = job.attempt } })
  end
  if job.res and job.result then return self:finish(job, job.result) end
  if job.res and not job.result then   -- the assertions raised
    job.err = run_error("checking the assertions failed: " .. error_words(job.check_error))
    return self:finish(job, failure_result(job))
  end
  if not job.res and job.err == nil then   -- the call raised (params the library refuses): its message, not "nil"
    job.err = run_error("the call failed: " .. error_words(job.check_error):gsub("^[^\n]-:%d+: ", ""))
  end
  local summary = self.summary
  if type(job.err) == "table" and job.err.status == 429 then summary.rate_limited = summary.rate_limited + 1 end
  if retryable(job.err) and job.attempt < self.max_attempts then
    summary.retries = summary.retries + 1
    -- A server's retry-after, within [0, max_wait] (a hostile or broken
    -- one cannot pause the run for a day); else the backoff.
    local wait = tonumber(job.err.retry_after)
    if wait and wait == wait then wait = math_min(math.max(wait, 0), self.max_wait)
    else wait = math_min(0.5 * 2 ^ (job.attempt - 1), 8) * (1 - 0.25 * math_random()) end
    job.not_before = now() + wait
    job.res, job.err, job.result = nil, nil, nil
    self.retries[#self.retries + 1] = job
    return
  end
  return self:finish(job, failure_result(job))
end

-- Wakes the run loop waiting in a task (`pause`).
local function wake_loop (self)
  local wake = self.wake
  if wake then self.wake = nil; wake() end
end

-- Starts an attempt of a job, as a task of the client.
function Run:start (job)
  job.attempt = job.attempt + 1
  job.check_error = nil
  self.running = self.running + 1
  self.summary.requests = self.summary.requests + 1
  job.ticket = self.limiter:sent(job.cost, job.requests)
  local loop = self.client._loop
  if loop.closed then util.raise("attempt to use a closed client") end   -- (as client:spawn)
  -- A job's task that fails or is abandoned (a callback of it -- on_result,
  -- a strategy -- yielded outside aigc) never finishes its case: the run
  -- stops with that error, as when on_result raises, instead of waiting for
  -- ever. The hook is registered before the task runs: registered by the
  -- task itself, Lua out of memory before it was (or before the pcall
  -- below) ended the task with the case unsettled, and run waited for ever.
  task.spawn_guarded(loop, function ()
    self.in_flight[job] = coroutine.running()
    local ok, e = task.pcall(attempt, self, job)
    self.in_flight[job] = nil
    if not ok then job.check_error = e end
    -- A run that stopped (interrupted, or a callback raised) has returned:
    -- its cases still in flight end with no line, no on_result, no log
    -- (on_result ran after run had returned nil, "interrupted").
    if self.stopped then return end
    -- settle writes the result and runs on_result: if that fails (a full
    -- disk, a callback that raises) the run stops with the error, rather
    -- than waiting forever for a case that will not finish.
    local sok, serr = task.pcall(self.settle, self, job)
    if not sok and not self.fatal then self.fatal = serr end
    wake_loop(self)
  end, nil, function (err)
    if self.fatal then return false end
    self.fatal = err
    wake_loop(self)
    return true   -- (run raises it: not reported besides)
  end)
end

-- The run ends early (Ctrl-C, a callback that raised, `interrupted`):
-- the cases in flight are canceled -- their requests went on, paid for,
-- with no line to show for them -- and end with no line.
function Run:abandon ()
  self.stopped = true
  if self.source then self.source.close(); self.source = nil end
  for _, co in pairs(self.in_flight) do task.cancel_task(co, "the run was stopped") end
end

-- The run loop's wait, at most `wait` seconds, for a job to end. Plain
-- code steps the client. Inside a task it yields (woken by the job's end):
-- the task may run inside the client's own callbacks, resumed from them
-- (after any wait of its own, or of an on_result/on_progress callback),
-- where step() is refused.
function Run:pause (wait)
  local rec = task.in_task()
  if rec then
    task.wait_in_task(rec, function (wake) self.wake = wake end, { self.client._loop }, wait)
    self.wake = nil
  else
    -- A blocking wait, as client:chat's outside a task: the errors of
    -- other requests' callbacks stay for the user's own step() (a step()
    -- here returned them, and they were lost).
    local woken = false
    self.wake = function () woken = true end
    client_loop.block(function () return woken end, { self.client._loop }, now() + math_max(wait, 0.001))
    self.wake = nil
  end
end

function Run:progress (final)
  local spec, summary = self.spec, self.summary
  if not spec.on_progress then return end
  local t = now()
  if not final and t - self.last_progress < self.interval then return end
  self.last_progress = t
  local elapsed = t - self.started
  local finished = summary.ok + summary.failed - summary.skipped
  local rate = elapsed > 0 and finished / elapsed or 0
  local st = self.limiter:state()
  local totals = self:totals() or { total_tokens = summary.usage.total_tokens, cost = summary.cost }
  spec.on_progress {
    total = summary.total, done = summary.ok + summary.failed, skipped = summary.skipped,
    ok = summary.ok, failed = summary.failed, passed = summary.passed, running = self.running,
    rate = rate, eta = rate > 0 and (summary.total - summary.ok - summary.failed) / rate or nil, elapsed = elapsed,
    tokens = totals.total_tokens or 0, cost = totals.cost, retries = summary.retries,
    rate_limited = summary.rate_limited, concurrency = st.concurrency, final = final or false,
    batch = self.last_batch,   -- (a batch run's: its last state)
  }
end

-- Prepares a job for its first attempt (its params, what it costs the
-- limiter): true, or false when its case cannot be rendered (it is then
-- finished as failed).
function Run:prepare (job)
  if job.params then return true end
  local params, chat_or_err = case_params(self, job.case)
  if not params then
    job.attempt, job.err = 1, chat_or_err
    self:finish(job, failure_result(job))
    return false
  end
  job.params, job.log_params = params, chat_or_err
  job.digest = request_digest(self, params)
  job.requests = self.strategy_requests + self:judges_of(job.case)
  job.cost = ratelimit.estimate(params, job.requests)
  return true
end

-- Admits what the limiter lets go: the retries whose time has come, then
-- the cases in order. Returns how long the loop may wait. (The cases are
-- taken from `self.queue` at `self.head`, the retries kept apart, so that
-- admitting is not O(queue) per job: a 50,000-case run took minutes of
-- CPU shifting the list with table.remove.)
function Run:admit ()
  local wait, retries = 0.05, self.retries
  local i = 1
  while i <= #retries do
    local job = retries[i]
    local t = now()
    if job.not_before > t then
      wait = math_min(wait, job.not_before - t)
      i = i + 1
    else
      local ok, w = self.limiter:reserve(job.cost, job.requests)
      if not ok then return math_min(wait, w) end
      table_remove(retries, i)
      self:start(job)
    end
  end
  local queue = self.queue
  while not self.fatal do   -- (a run that stops starts no more cases)
    if self.head > #queue then
      if not (self.source and self:pull()) then
        if self.source then wait = 0 end   -- (more to read: the next step goes on at once)
        break
      end
      queue = self.queue
    end
    local job = queue[self.head]
    if not self:prepare(job) then
      queue[self.head], self.head = false, self.head + 1
    else
      local ok, w = self.limiter:reserve(job.cost, job.requests)
      if not ok then return math_min(wait, w) end
      queue[self.head], self.head = false, self.head + 1
      self:start(job)
    end
  end
  return wait
end

local INTERNAL, run_cases, run_spooled   -- (set below)


--- Runs the cases.
-- @tparam table spec
--
--  - `client` (required): the client requests go to
--  - `cases` (required): a JSONL path, or a list of case tables (a regular file, on the direct
--    backend, is checked whole first, then read as the run sends its cases: never held)
--  - `template`: an `aigc.template` (or a table for `aigc.template.new`); without
--    one, cases give `messages` or `prompt`
--  - `params`: request params over the template's (`model`, `temperature`...)
--  - `out`: the results file (JSONL, appended; resumed when it exists unless
--    `resume = false`, which refuses an existing file)
--  - `concurrency` (default 4): the most cases in flight
--  - `strategy`: `{ best_of = N, judge = "criteria" }`, `{ vote = N }`, or
--    `function(client, params, case) -> res | nil, err` (run inside a task)
--  - `assert`: assertions for every case (the cases' own are added)
--  - `prices`: `{ [model] = { input =, output = } }` in $ per 1M tokens
--  - `max_attempts` (default 6), `pace` (default true: follow the rate-limit
--    headers), `rpm`, `tpm` (known limits), `max_wait` (default 120,
--    `ratelimit.MAX_WAIT`: the longest pause a server's `retry-after` or
--    rate-limit headers can make)
--  - `on_result = function(result, case)`, `on_progress = function(progress)`
--    (about every `progress_interval` seconds, default 0.2, and at the end;
--    the batch backend: when a batch is made or resumed, and after each poll);
--    a callback that raises stops the run, and `run` raises its error
--  - `log`: an `aigc.promptlog` to log each call into (source "run")
--  - `interrupted`: a function asked between steps (batch: and while it waits); when it
--    returns true the run stops, its results so far written (a rerun resumes),
--    and `run` returns nil, an error of code "interrupted" (the cases still in
--    flight then end with no line and no callback)
--  - `results` (default true): false keeps no `summary.results` (a run of a
--    million cases held every result line until it ended; the done lines of
--    `out` are then kept without their `text`, `parsed` and `error`)
--  - `judge_client`: the client of judge assertions (default `client`)
--  - `backend`: "direct" (the default) or "batch": the Batch API (`aigc.batch`): the cases
--    that are not done go as one batch (as several past the API's limits), polled every
--    `batch_interval` s (default: `aigc.batch.wait`'s backoff), given up after `batch_timeout` s
--    (the batch goes on: a rerun resumes it),
--    mapped back to the same result lines (no `latency_ms`; `cost` at `batch_price_factor`
--    times the prices, default 0.5); with `out` (a regular file), the batch id is kept in `out .. ".batch"`
--    until its results are written, so a run that stops resumes the same batch (with each
--    request's digest: a case changed or added since goes as a new batch after it);
--    `batch_id` resumes a given one (a list: several, in order, the cases none of them has
--    going as new batches after them); `batch_metadata`, `batch_endpoint` (the `api`'s path:
--    "/v1/chat/completions" or "/v1/responses", the default; the other API's is refused)
--  - `api`: "chat" (the default: `client:chat`) or "responses" (`client:respond`, for models
--    that accept only the Responses API): the case's system messages are the `instructions`,
--    its other messages the `input`, a `schema` goes as `text.format`, the result line's
--    `text` is the output text and its `usage` counts input/output tokens as prompt/completion
-- @treturn[1] table summary: `total`, `skipped` (done before), `ok`, `failed`, `passed`,
-- `pass_rate`, `usage` and `cost` (this run's requests, from the client's totals: failed
-- attempts and judges included), `totals` (`requests`, `errors`, `retries`, `cache_hits`,
-- tokens, `models`: see `client:usage()`; for the batch backend, its lines and judges), `elapsed`,
-- `requests` (attempts), `retries`, `rate_limited`,
-- `assertions` (list of `{ name =, type =, passed =, total = }`), `results` (by id; none with
-- `results = false`), `judged_again` (done cases whose assertions changed since, judged again on
-- their kept answers; nil when none)
-- @treturn[2] nil
-- @treturn[2] aigc.error err (unreadable cases or results file; code "input": cases to fix, code
-- "locked": another run writes `out`, see `aigc.runfile`)
-- @usage local summary = assert(runner.run { client = c, cases = cases, template = t, out = "r.jsonl" })
function M.run (spec)
  check_spec(spec)
  local cases, cerr = load_cases(spec)
  if not cases then return nil, cerr end
  local spooled = getmetatable(cases) == runner_input.Source and cases.spooled   -- (a pipe's cases, kept)
  local ok, summary, err = task.pcall(run_spooled, spec, cases)   -- (yields in a task on 5.1 too)
  if spooled then os.remove(spooled) end
  if not ok then error(summary, 0) end
  return summary, err
end

-- M.run's part once its cases are read.
function run_spooled (spec, cases)
  -- (outside a task it drives the loop, which a callback of that loop,
  -- running inside it, cannot: it failed at its first wait, naming a
  -- client:step() the caller never made)
  if not task.in_task() and spec.client._loop.engine:in_callback() then
    util.raise("runner.run called from inside an aigc callback, outside a task: it would run the loop "
               .. "inside its own callback (run it in a task, client:spawn, or from the main loop)")
  end
  local lock, lerr = runfile.lock_out(spec.out)
  if lerr then return nil, lerr end
  -- (the lock goes whatever ends the run: an error, "interrupted!" from Ctrl-C)
  local hold = {}   -- (hold.run: the run, to stop if an error -- "interrupted!" -- ends it)
  local ok, summary, err = task.pcall(run_cases, spec, cases, hold)   -- (yields in a task on 5.1 too)
  if lock then lock:close() end
  if not ok then
    if hold.run then hold.run:abandon() end
    error(summary, 0)
  end
  return summary, err
end

function run_cases (spec, cases, hold)
  local tpl = spec.template
  if tpl ~= nil and getmetatable(tpl) ~= template_mod.Template then tpl = template_mod.new(tpl) end
  local out, done, oerr = runfile.open_out(spec)
  if oerr then return nil, oerr end
  local r, rerr = new_run(spec, cases, tpl, out, done)
  if not r then
    if out then out:close() end
    return nil, rerr
  end
  hold.run = r
  if (spec.backend or "direct") == "batch" then
    local ok, done_ok, berr = task.pcall(require("aigc.batch_backend").backend, r, INTERNAL)
    if not (ok and done_ok) then
      if out then out:close() end
      -- (a results file it cannot write -- a full disk -- is nil, err, as on the direct
      -- backend: it raised, and `aigc run --batch` said "internal error", exit 70)
      if not ok and not runner_error(done_ok) then error(done_ok, 0) end   -- an on_result callback raised
      return nil, ok and berr or done_ok
    end
  end
  while r.remaining > 0 or r.source do
    local wait = r:admit()
    r:progress(false)
    if r.remaining > 0 and not r.fatal then r:pause(wait > 0 and wait or 0) end
    if spec.interrupted and spec.interrupted() then   -- (the cases in flight: no line)
      r:abandon()
      if out then out:close() end
      return nil, run_error("interrupted", { code = "interrupted" })
    end
    if r.fatal then
      r:abandon()
      if out then out:close() end
      if runner_error(r.fatal) then return nil, r.fatal end
      error(r.fatal, 0)        -- an on_result or log callback raised: so does run
    end
  end
  if out then out:close() end
  local summary = r.summary
  summary.elapsed = now() - r.started
  summary.rate_limited = math.max(summary.rate_limited, r.limiter.rate_limited)
  summary.pass_rate = summary.total > 0 and summary.passed / summary.total or 0
  local totals = r:totals()
  if totals then   -- the clients' own counts (and a batch's lines): what the run really sent and used
    summary.totals, summary.cost = totals, totals.cost
    summary.usage = { prompt_tokens = totals.prompt_tokens, completion_tokens = totals.completion_tokens,
                      total_tokens = totals.total_tokens }
  end
  table_sort(summary.assertions, function (a, b) return a.name < b.name end)
  summary.by_assertion = nil
  r:progress(true)
  return summary
end

-- What the batch backend (aigc.batch_backend) shares with the direct one.
INTERNAL = { case_params = case_params, result_of = result_of, failure_result = failure_result,
             run_error = run_error, id_key = id_key }

-- }======================================================

return M
