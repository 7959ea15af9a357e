--- The dataset runner's "batch" backend (`aigc.runner.run { backend =
-- "batch" }`): the run's pending cases as one batch of the Batch API
-- (`aigc.batch`), polled, and its lines mapped back to the same result
-- lines as the direct backend's. Internal: the runner calls `backend`.
--
-- @module aigc.batch_backend

local adapter = require "aigc.adapter"
local batch = require "aigc.batch"
local core = require "aigc.core"
local runfile = require "aigc.runfile"
local task = require "aigc.task"
local usage_mod = require "aigc.usage"
local util = require "aigc.util"

local json = core.json
local output_text = require("aigc.responses").output_text
local runner_digest = require "aigc.runner_digest"
local runner_responses = require "aigc.runner_responses"
local ipairs, pairs, pcall, tonumber, tostring, type = ipairs, pairs, pcall, tonumber, tostring, type

util.own_module()

local M = {}

-- {======================================================
-- The dataset runner's backend
-- =======================================================

local wire_body, schema_of = runner_digest.wire_body, runner_digest.schema_of

-- The reply's text, as the core gives `res.text` for a direct call (a
-- response's: its output text).
local function reply_text (body, api)
  if api == "responses" then return type(body) == "table" and output_text(body) or "" end
  local choice = type(body) == "table" and type(body.choices) == "table" and body.choices[1]
  if type(choice) ~= "table" then return "" end
  if type(choice.message) == "table" then return util.content_text(choice.message.content) or "" end
  return type(choice.text) == "string" and choice.text or ""
end

local digest = runner_digest.digest

-- What OUT.batch keeps: the batch's id (trimmed), and the digest of each
-- line's request by custom_id (nil when the file, of an older version,
-- has none); nil when it cannot be read.
-- Only a regular file is read or written: a FIFO there blocked the run for ever.
local function read_kept (path)
  local s = path and core.file_kind(path) == "file" and util.read_file(path)
  if not s then return nil end
  -- (the first line, trimmed in byte loops: "^%s*([^\n]-)%s*\n" tried the
  -- rest of a run of blanks in it at each of them, minutes for 300 kB)
  s = util.trim(s)
  local nl = s:find("\n", 1, true)
  local sent = nl and json.decode(s:sub(nl + 1))
  return nl and util.trim_end(s:sub(1, nl - 1)) or s, type(sent) == "table" and sent or nil
end

-- Keeps the batch's id and its lines' digests in OUT.batch: true, or nil
-- and why not (a full disk). Only a regular file (or none) is written: a
-- FIFO or a device there keeps nothing, and the run goes on (true).
-- Written as OUT.batch.part renamed into place (core.media.save): opened
-- by name, a symbolic link planted at OUT.batch (an --out in a shared
-- /tmp) was written through, another file made or overwritten.
local function write_kept (path, id, sent)
  local kind = core.file_kind(path)
  if kind ~= nil and kind ~= "file" then return true end
  local ok, err = core.media.save(path, id .. "\n" .. (sent and json.encode(sent) .. "\n" or ""))
  if ok then return true end
  os.remove(path)   -- (an earlier batch's id is no kept id of this one)
  return nil, runfile.io_why("could not write " .. path, err)
end

-- OUT.batch written again when it no longer names the batch the run waits
-- for (`keep`: its file, the batch's id, its lines' digests): removed during
-- the wait (by hand, a cleaner of old files), then Ctrl-C, the rerun found
-- no batch kept and sent a second one, paid twice, nothing said. Called at
-- each poll and when the run stops before the batch's results are written.
local function keep_again (keep)
  if keep and read_kept(keep.file) ~= keep.id then write_kept(keep.file, keep.id, keep.sent) end
end

-- The digests of the lines of a batch resumed by its id, from its input
-- file (`params`: the pending cases' params by custom_id, for their
-- secrets), or nil when the file cannot be read. Without them every
-- pending case was taken as the batch's: resumed with the id `aigc run`
-- printed at Ctrl-C, a run split over several batches failed the cases of
-- the others "without this case" (the next batch's never sent).
local function sent_of (client, b, params)
  local fid = b and b.input_file_id
  if type(fid) ~= "string" then return nil end
  local ok, text = pcall(batch.download, client, fid)
  if not ok or type(text) ~= "string" then return nil end
  local sent = {}
  for line in text:gmatch("[^\n]+") do
    local dok, l = pcall(json.decode, line)
    if not (dok and type(l) == "table" and type(l.custom_id) == "string" and type(l.body) == "table") then
      return nil
    end
    local p = params[l.custom_id]
    if p then sent[l.custom_id] = digest(l.body, p) end
  end
  return sent
end

-- How many of a server's newest batches are looked through for the one a
-- run meant to make (`intended`): pages of 100, until the batches listed
-- are older than the intent (by INTENT_SLACK s: clocks differ), at most
-- INTENT_PAGES a run. (It looked at the newest 1,000 only, and a batch made
-- before 1,000 others was taken for none: a second one made, paid twice.)
-- Past them, OUT.batch keeps where the look stopped, and the next run goes
-- on from there (an intent behind 10,000 newer batches was an error every
-- run, that running again could not end).
local INTENT_PAGES, INTENT_SLACK = 100, 3600

-- The batch whose metadata carries `token` (`aigc_run`): the one a run
-- asked for (at `since`, os.time(); nil for an intent kept without it)
-- before it was stopped, or killed, before it kept its id, looked for in
-- the batches older than batch `after` (nil: from the newest); nil when the
-- server has none (the request never reached it), or nil, err when they
-- cannot be listed or INTENT_PAGES end before the batches older than `since`
-- (`err.after`: the last batch looked at).
local function intended (client, token, since, after)
  for _ = 1, INTENT_PAGES do
    local page, err = client:request("GET", "/batches?limit=100"
                                     .. (after and "&after=" .. util.urlencode(after) or ""))
    if not page then return nil, err end
    local data = type(page) == "table" and type(page.data) == "table" and page.data or {}
    for _, b in ipairs(data) do
      if type(b) == "table" and type(b.metadata) == "table" and b.metadata.aigc_run == token
         and type(b.id) == "string" then
        return b
      end
    end
    local last = data[#data]
    if page.has_more ~= true or type(last) ~= "table" or type(last.id) ~= "string" then return nil end
    if since and type(last.created_at) == "number" and last.created_at < since - INTENT_SLACK then return nil end
    after = last.id
  end
  return nil, runfile.run_error(string.format("not among the %d batches newer than it looked through (up to "
    .. "batch %s)", INTENT_PAGES * 100, batch.shown_id(after, client)), { after = after })
end

-- The id OUT.batch keeps, its intent resolved: a run writes "pending
-- TOKEN TIME" there before it asks for a batch (the token in the batch's
-- metadata, `aigc_run`), and its id once made. Stopped (Ctrl-C, SIGTERM,
-- killed) between the server's answer and the id kept, the next run made
-- a second batch and never took the first's results, paid for. Now it
-- looks for the batch by its token: found, it is resumed (and its id
-- kept); not found, nothing was made, and a new one goes. A look cut short
-- by INTENT_PAGES adds where it stopped: "pending TOKEN TIME AFTER".
local function kept_id (client, id_file, id, sent)
  local token, since, from = (id or ""):match("^pending (%x+) ?(%d*) ?(%S*)$")
  if not token then return id, sent end
  local b, err = intended(client, token, tonumber(since), from ~= "" and from or nil)
  if err then
    if type(err) == "table" then
      -- (a server with no GET /batches: running again tells no more)
      local never = err.status == 404 or err.status == 405 or err.status == 501
      local again = "run it again; or "
      if type(err.after) == "string" and not err.after:find("%s")
         and write_kept(id_file, string.format("pending %s %s %s", token, since, err.after), sent) then
        again = string.format("run it again to look through the next %d (%s keeps where this look stopped); or ",
                              INTENT_PAGES * 100, id_file)
      end
      err.message = string.format("cannot tell whether the batch %s was about to ask for was made: %s (%s"
        .. "remove %s to send the cases as a new batch -- a batch made then goes on, paid for; "
        .. "aigc run --batch-id ID resumes one you know: its metadata aigc_run is %s)", id_file,
        tostring(err.message), never and "the server does not list its batches: " or again, id_file, token)
    end
    return nil, nil, err
  end
  if not b then os.remove(id_file); return nil, nil end
  -- (an intent of an older version, without digests, keeps none: an empty
  -- table there said the batch had none of the cases, and a stopped rerun
  -- sent every case as a new batch, paid twice)
  write_kept(id_file, b.id, sent)
  return b.id, sent
end

--- The id of the batch that OUT.batch (`id_file`) keeps, its intent
-- resolved (`aigc run --batch --cancel`): nil when it names none; nil, err
-- when the server's batches cannot be listed.
-- @tparam aigc.client client
-- @tparam string id_file
-- @treturn string|nil
function M.kept (client, id_file)
  local id, sent = read_kept(id_file)
  local got, _, err = kept_id(client, id_file, id, sent)
  return got, err
end

-- The run stopped by its `interrupted` (SIGTERM for `aigc run`): an error
-- of code "interrupted", as the direct backend's; else nil.
local function interrupted (run)
  local asked = run.spec.interrupted
  if asked and asked() then return runfile.run_error("interrupted", { code = "interrupted" }) end
end

-- fn(a, b, c) (batch.wait, batch.create), the run's `interrupted` asked at
-- each turn of the loop meanwhile (0.05 s): the sleeps between polls last
-- up to a minute (MAX_POLL_INTERVAL), and SIGTERM killed `aigc run --batch`
-- at once, its batch's id unsaid without --out (or with -q): a rerun sent a
-- second batch, paid twice. A slow upload or create (a large input file, a
-- server that holds the request) heard SIGTERM only once it ended, up to
-- `timeout` later. The call is a task of the client, canceled if stopped.
local function interruptible (run, fn, a, b, c)
  if not run.spec.interrupted then return fn(a, b, c) end
  local over, ok, x, err, co, key = false, nil, nil, nil, nil, {}
  local function ended (...)
    over, ok, x, err = true, ...
    run.in_flight[key] = nil
    local wake = run.wake   -- (the run waiting: Run:pause)
    if wake then run.wake = nil; wake() end
  end
  run.client:spawn(function ()
    -- (abandoned -- on_progress yielded outside aigc -- it never ends: the run stops with that error)
    task.on_abandon(function (e) ended(false, e); return true end)
    co = coroutine.running()
    run.in_flight[key] = co   -- (an error out of the run -- Ctrl-C's "interrupted!" -- cancels it: Run:abandon)
    ended(task.pcall(fn, a, b, c))
  end)
  while not over do
    local stop = interrupted(run)
    if stop then
      if co then task.cancel_task(co, "the run was stopped") end
      return nil, stop
    end
    run:pause(0.05)
  end
  if not ok then error(x, 0) end
  return x, err
end

-- The batch of a run: the one it resumes (`id`: a batch_id given, else the
-- id kept next to the results file: that file's name is the third value)
-- or a new one; the fourth value, the digests of its lines' requests by
-- custom_id (nil when they are not known: an id kept without them, an
-- input file that cannot be read). `fresh`: a new one, whatever is kept.
-- `params`: the pending cases' params by custom_id.
local function run_batch (run, requests, digests, fresh, id, params)
  local spec, client = run.spec, run.client
  local id_file = runfile.batch_file(spec.out)
  local given, sent = id, nil
  if fresh then id = nil elseif not id then
    local kerr
    id, sent, kerr = kept_id(client, id_file, read_kept(id_file))
    if kerr then return nil, kerr end
  end
  if id and id ~= "" then
    local b, err = batch.retrieve(client, id)
    if not b and not given and type(err) == "table" then
      -- an id kept by an earlier run: the message names the file, and how to start afresh
      err.message = string.format("cannot resume batch %s, whose id %s keeps: %s%s", batch.shown_id(id, client),
        id_file,
        tostring(err.message), (err.status == 404 or err.status == 400)
        and " (remove " .. id_file .. " to send the cases as a new batch)" or "")
    end
    -- A batch of the other API (a Responses run resumed without api = "responses"): its
    -- replies were read as the run's, every text "", and the cases written as answered.
    local other = b and type(b.endpoint) == "string" and runner_responses.api_of(b.endpoint)
    if other and other ~= run.api then
      return nil, runfile.run_error(string.format("batch %s was sent to %s: its lines are not of this run's API "
        .. "(api = \"%s\"): resume it with api = \"%s\" (aigc run --api %s)", batch.shown_id(id, client),
        b.endpoint, run.api, other, other))
    end
    if b and given then sent = sent_of(client, b, params) end
    return b, err, not given and id_file or nil, sent
  end
  -- The intent first (see kept_id): kept after the batch is made, its id
  -- was lost to a stop in between. Not kept (a full disk), nothing is sent.
  local metadata = spec.batch_metadata
  local stop = interrupted(run)   -- (stopped while its requests were made: nothing sent)
  if stop then return nil, stop end
  if id_file then
    local token = util.random_hex(8) or string.format("%x%x", os.time(), math.random(0, 0x7fffffff))
    local ok, why = write_kept(id_file, "pending " .. token .. " " .. os.time(), digests)
    if not ok then
      return nil, runfile.run_error(string.format("cannot keep the batch's intent in %s (%s): nothing was sent",
                                                  id_file, tostring(why)))
    end
    metadata = util.merge(metadata or {}, { aigc_run = token })
  end
  -- (stopped while it is asked for: its intent stays, the next run resumes what the server made)
  local b, err = interruptible(run, batch.create, client, requests, { metadata = metadata,
    endpoint = spec.batch_endpoint or runner_responses.BATCH_ENDPOINT[run.api] })
  -- (refused: nothing was made; a lost connection may have made one: its intent stays)
  if not b and id_file and type(err) == "table" and err.kind == "http" then os.remove(id_file) end
  if b and id_file then
    -- Not kept (a full disk), a stopped or killed run made a new batch on its rerun, paid twice,
    -- nothing said: the run stops here, naming the batch, which goes on at the server.
    local ok, why = write_kept(id_file, b.id, digests)
    if not ok then
      local shown = batch.shown_id(b.id, client)
      return nil, util.scrub(client, runfile.run_error(string.format("batch %s goes on at the server, but its id "
        .. "cannot be kept in %s (%s): resume it with batch_id = \"%s\" (aigc run --batch-id %s)",
        shown, id_file, tostring(why), shown, shown), { batch_id = b.id }))
    end
  end
  return b, err, nil, digests
end

local function progress (run, b)
  local on = run.spec.on_progress
  if not on then return end
  local s, counts = run.summary, {}
  for _, k in ipairs { "total", "completed", "failed" } do   -- (numbers, whatever the server sent)
    counts[k] = type(b.request_counts) == "table" and tonumber(b.request_counts[k]) or nil
  end
  local elapsed = core.now() - run.started
  -- (kept: the run's final progress names the batch too -- it showed the direct backend's "x4")
  run.last_batch = { id = b.id, status = b.status, completed = counts.completed, failed = counts.failed,
                     total = counts.total }
  -- (done: the cases with a line -- done before, failed unsent, of an
  -- earlier batch of this run -- and the batch's; it was `skipped` and the
  -- batch's, and went back to 0 when a run's second batch began)
  on { total = s.total, done = s.ok + s.failed + (counts.completed or 0) + (counts.failed or 0), skipped = s.skipped,
       ok = s.ok + (counts.completed or 0), failed = s.failed + (counts.failed or 0), passed = s.passed,
       running = (counts.total or 0) - (counts.completed or 0) - (counts.failed or 0), elapsed = elapsed,
       rate = elapsed > 0 and ((counts.completed or 0) + (counts.failed or 0)) / elapsed or 0,
       tokens = 0, retries = 0, rate_limited = 0, final = false,
       batch = run.last_batch }
end

-- The words of a result line's error as the server sent it: an object's
-- message (else its code), or a plain string (a proxy's, a gateway's: the
-- line was "status 200", the server's words lost); nil when it says nothing.
local function server_words (e)
  if type(e) == "string" then return e ~= "" and e or nil end
  if type(e) ~= "table" then return nil end
  if type(e.message) == "string" and e.message ~= "" then return e.message end
  return type(e.code) == "string" and e.code ~= "" and e.code or nil
end

-- Why a case's line `r` of batch `b` failed (its result line's error), or
-- nil when it is answered as it should be: a line the server sent
-- malformed (kind "parse"), a reply that breaks the case's schema `o` (as
-- a direct call's: kind "schema", "refusal", "incomplete"), the line's own
-- failure, or no line (the batch ended without it).
local function line_error (client, b, r, o, api)
  if r and util.is_error(r.error) then return r.error end
  if r and r.ok then
    if not o then return nil end
    r.body.text = reply_text(r.body, api)   -- (a response's schema is read from its text)
    local parsed, perr = adapter[api].parse(r.body, o)   -- (sets r.body.parsed)
    return not parsed and util.scrub(client, perr) or nil
  end
  return util.scrub(client, util.new_error { kind = r and "http" or "batch", status = r and r.status_code,
    message = r and (server_words(r.error) or type(r.body) == "table" and server_words(r.body.error)
                     or "status " .. tostring(r.status_code))
              or "batch " .. batch.shown_id(b.id, client) .. " ended " .. batch.shown_id(b.status, client)
                 .. " without this case" .. batch.why_over(b, client) })
end

-- The batch's requests for the run's pending cases, and their jobs; a
-- case that cannot be sent is finished as failed.
local function batch_requests (run, internal)
  local client, requests, jobs = run.client, {}, {}
  for _, job in ipairs(run.queue) do
    job.attempt = 1
    local params, perr = internal.case_params(run, job.case)   -- (perr: the chat params, when it is made)
    -- (the id as the runner keys it: tostring made 0.1 and "0.1", two cases, one custom_id, and the
    -- run raised "duplicate")
    local line = params and { custom_id = internal.id_key(job.case.id), body = wire_body(params, client, run.api) }
    -- A line JSON cannot carry (a string that is not UTF-8) fails its case, as a direct
    -- call's does: in the batch's file, it raised from the encoder and stopped the run.
    local ok, why = pcall(json.encode, line)
    if not ok then
      why = tostring(why)
      params, perr = nil, internal.run_error("the case cannot be sent: " .. (why:match("%((.*)%)$") or why)
        :gsub("^value%.body", "params"):gsub("^value%.custom_id", "id"))
    end
    if params then
      job.params, job.log_params, job.digest = params, perr, digest(line.body, params)
      requests[#requests + 1] = line
      jobs[#jobs + 1] = job
    else
      job.err = perr
      run:finish(job, internal.failure_result(job))
    end
  end
  return requests, jobs
end

-- Runs `settle(job)` for every job, `spec.concurrency` (4) at a time as
-- tasks of the client: a judge assertion's call yields there, so a batch's
-- judges go side by side as a direct run's do (one after another, 10,000
-- judged lines took hours once the batch was over). What `settle` raises
-- (an on_result callback, a results file it cannot write) is raised here.
local function settle_all (run, jobs, settle)
  local n, nxt, active, failure = run.spec.concurrency or 4, 1, 0, nil
  local function over (e)   -- a task's end: its failure, if any, ends the run
    if e ~= nil and failure == nil then failure = e end
    local wake = run.wake   -- (the run waiting in a task: Run:pause)
    if wake then run.wake = nil; wake() end
  end
  local function launch ()
    while failure == nil and active < n and jobs[nxt] do
      local job = jobs[nxt]
      nxt, active = nxt + 1, active + 1
      run.client:spawn(function ()
        -- (abandoned -- on_result yielded outside aigc -- it never ends: the run stops with that error)
        task.on_abandon(function (err) over(err); return true end)
        run.in_flight[job] = coroutine.running()   -- (a run stopped cancels its judges: Run:abandon)
        local ok, e = task.pcall(settle, job)
        run.in_flight[job] = nil
        active = active - 1
        over(not ok and e or nil)
      end)
    end
  end
  launch()
  while failure == nil and (active > 0 or jobs[nxt]) do
    run:pause(0.05)
    launch()
  end
  if failure ~= nil then error(failure, 0) end
end

-- The lines' totals, at the batch's prices, for the run's summary (as a
-- direct run's); its judges' calls, direct, at the full prices.
local function batch_usage (run)
  local factor = run.spec.batch_price_factor or 0.5
  local scaled = {}
  for name, p in pairs(run.prices) do
    if type(p) == "table" then
      scaled[name] = { input = (tonumber(p.input) or 0) * factor, output = (tonumber(p.output) or 0) * factor,
                       cached_input = tonumber(p.cached_input) and p.cached_input * factor }
    end
  end
  run.batch_lines, run.batch_judges = usage_mod.new(scaled), usage_mod.new(run.prices)
end

-- Waits for batch `b` and gives each of `jobs` its result line: true, or
-- nil, err. `kept`: the file whose id resumed it.
local function settle_batch (run, internal, b, jobs, kept, keep)
  local client, spec = run.client, run.spec
  local err
  local id = b.id
  b, err = interruptible(run, batch.wait, client, id, { interval = spec.batch_interval,
    timeout = spec.batch_timeout, on_progress = function (x) keep_again(keep); progress(run, x) end })
  if not b then
    -- (polls that failed for good, the key revoked: the batch goes on, billed; without OUT.batch
    -- the message was the poll's alone, and the batch's id was lost)
    if util.is_error(err) then
      err.batch_id = id
      local shown = batch.shown_id(id, client)
      err.message = string.format("batch %s goes on at the server (batch_id = \"%s\", aigc run --batch-id %s, "
        .. "takes its results): %s", shown, shown, shown, tostring(err.message))
      err = util.scrub(client, err)
    end
    return nil, err
  end
  local results, rerr = batch.results(client, b)
  if not results then
    if type(rerr) == "table" and rerr.status == 404 then
      -- (a resumed batch whose files the server no longer has -- deleted, expired: every
      -- rerun failed on the same download, saying nothing of the way out)
      rerr.message = string.format("cannot read the results of batch %s: %s (its results are gone from the "
        .. "server%s)", batch.shown_id(b.id, client), tostring(rerr.message),
        kept and ": remove " .. kept .. " to send the cases as a new batch" or "")
    end
    return nil, rerr
  end
  local factor = spec.batch_price_factor or 0.5
  local function log (job, res, e)   -- into the prompt log like the direct backend's calls, source "batch"
    if spec.log then
      pcall(spec.log.record_call, spec.log, job.log_params, res, e, { latency_ms = 0, source = "batch", client = client,
            extra = { case_id = job.case.id, batch_id = b.id } })
    end
  end
  settle_all(run, jobs, function (job)
    if run.stopped then return end   -- (Ctrl-C, an on_result that raised: no more lines)
    local r = results[internal.id_key(job.case.id)]
    job.err = line_error(client, b, r, schema_of(job.params), run.api)
    if job.err then
      -- (a reply that breaks the schema was answered: its tokens count, as a direct call's)
      if r and r.ok then run.batch_lines:record(r.body, nil) else run.batch_lines:record(nil, job.err) end
      log(job, nil, job.err)
      run:finish(job, internal.failure_result(job))
    else
      local res = r.body
      res.text = reply_text(res, run.api)
      internal.result_of(run, job, res)
      if run.stopped then return end   -- (its judges canceled by the run's end: no line)
      local cost = job.result.cost
      if cost then   -- the line at the batch's prices; its judges' calls went direct, at the full ones
        local u = type(res.usage) == "table" and res.usage or {}
        local line = usage_mod.cost({ prompt_tokens = u.prompt_tokens or u.input_tokens,
                                      completion_tokens = u.completion_tokens or u.output_tokens },
                                    usage_mod.price(run.prices, job.result.model)) or 0
        job.result.cost = cost - line + line * factor
      end
      job.result.batch_id = b.id
      run.batch_lines:record(res, nil)
      for _, judge in ipairs(job.judged or {}) do run.batch_judges:record(judge, nil) end
      log(job, res, nil)
      run:finish(job, job.result)
    end
  end)
  return true
end

-- A kept batch none of the run's cases waits for (every one changed since
-- it was sent): left running, it went on at the server, billed for replies
-- no one reads, and nothing said so. Cancelled, best effort; the summary's
-- `abandoned_batch` says which and how it went (`aigc run` reports it).
local function cancel_abandoned (run, b)
  local c, err = batch.cancel(run.client, b.id)
  run.summary.abandoned_batch = { id = b.id, status = c and c.status or b.status,
                                  error = not c and tostring(type(err) == "table" and err.message or err) or nil }
end

-- How many of `requests`, from the first, one batch takes: the Batch
-- API's limits (batch.MAX_REQUESTS lines, batch.MAX_BYTES of JSONL); at
-- least one (a line too large alone is batch.create's error).
local function batch_size (requests, endpoint)
  local bytes = 0
  for i, r in ipairs(requests) do
    bytes = bytes + #batch.jsonl({ r }, endpoint)
    if i > 1 and (i > batch.MAX_REQUESTS or bytes > batch.MAX_BYTES) then return i - 1 end
  end
  return #requests
end

--- The runner's "batch" backend (`aigc.runner.run { backend = "batch" }`):
-- the run's pending cases as one batch; every case gets its result line
-- as with the direct backend. Internal.
-- @tparam table run the runner's run
-- @tparam table internal the runner's helpers
-- @treturn[1] true
-- @treturn[2] nil
-- @treturn[2] aigc.error err
function M.backend (run, internal)
  run.batch = true
  local spec = run.spec
  local id_file = runfile.batch_file(spec.out)
  local stop = interrupted(run)   -- (asked first here: `aigc run` hears its signals from now on)
  if stop then return nil, stop end
  if id_file and run.queue[1] == nil then
    -- Every case is done (a run stopped after its last result line, before
    -- it forgot its batch): the kept id is spent. Left, the next run with a
    -- new case resumed that batch, and the case failed "without this case".
    os.remove(id_file)
  end
  local requests, jobs = batch_requests(run, internal)
  run.queue = {}
  if #jobs == 0 then return true end
  batch_usage(run)
  run.summary.requests = 0
  local round = 0
  local endpoint = spec.batch_endpoint or runner_responses.BATCH_ENDPOINT[run.api]
  -- (the batches to resume, in order: `batch_id`, one or a list -- a run
  -- split over several batches, stopped, resumes them all)
  local resume = type(spec.batch_id) == "table" and spec.batch_id or { spec.batch_id }
  while jobs[1] do
    -- A new batch takes the first cases the API's limits allow; the others,
    -- not in its digests, go as the next. (Past them every run failed "send
    -- them as several batches", which `aigc run --batch` cannot do.)
    local n = batch_size(requests, endpoint)
    local digests, head, params = {}, {}, {}
    for i = 1, n do digests[requests[i].custom_id], head[i] = jobs[i].digest, requests[i] end
    for i, job in ipairs(jobs) do params[requests[i].custom_id] = job.params end
    round = round + 1   -- (after the first, a new batch: an OUT.batch it cannot remove is not resumed again)
    local given = resume[round]
    local b, err, kept, sent = run_batch(run, head, digests, round > 1 and not given, given, params)
    if not b then return nil, err end
    -- (reported as soon as it is made or found: known from a poll's report
    -- alone, a Ctrl-C before the first poll's answer named no batch, and the
    -- user could neither resume nor cancel it)
    progress(run, b)
    -- The cases the batch has: a resumed batch's, those whose request is
    -- the one it was sent. The others -- changed or added since (the cases
    -- file edited, a line inserted before cases numbered by their line) --
    -- go as the next batch: they got the answer to their old request, or
    -- failed "without this case".
    local mine, later, later_requests = {}, {}, {}
    for i, job in ipairs(jobs) do
      if sent == nil or sent[requests[i].custom_id] == job.digest then mine[#mine + 1] = job
      else later[#later + 1], later_requests[#later_requests + 1] = job, requests[i] end
    end
    if mine[1] then
      run.summary.batch_id, run.summary.requests = b.id, run.summary.requests + #mine
      -- (stopped before its results are written -- Ctrl-C, a timeout --, OUT.batch keeps the batch)
      local keep = id_file and not given and { file = id_file, id = b.id, sent = sent } or nil
      local pok, ok, serr = task.pcall(settle_batch, run, internal, b, mine, kept, keep)
      if not (pok and ok) then keep_again(keep) end
      if not pok then error(ok, 0) end
      if not ok then return nil, serr end
    elseif kept and not batch.TERMINAL[b.status] then
      cancel_abandoned(run, b)
    end
    if id_file then os.remove(id_file) end
    jobs, requests = later, later_requests
  end
  return true
end

-- }======================================================

return M
