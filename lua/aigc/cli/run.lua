--- `aigc run CASES -t TEMPLATE`: the dataset runner on the command line,
-- with a progress bar and a pass-rate table.
--
-- @module aigc.cli.run

local argparse = require "argparse"
local check = require "aigc.check"
local common = require "aigc.cli.common"
local core = require "aigc.core"
local config_mod = require "aigc.cli.config"
local lineinput = require "aigc.cli.lineinput"
local runfile = require "aigc.runfile"
local runner = require "aigc.runner"
local template = require "aigc.template"
local util = require "aigc.util"

local json = require("aigc").json

-- A batch's id as the command's lines quote it: at most 200 bytes (a
-- server's megabyte-long id went whole into the progress line, rewritten
-- several times a second, and two or three times into a message).
-- With the client, scrubbed first: a line that only the command prints
-- (no error object scrubbed on the way) showed an id or status echoing the
-- key, and a cut inside the key leaves a piece no later scrub finds.
-- Failing closed: what could not be scrubbed (no memory for it) is not
-- shown, a table's strings withheld in place (no allocation).
local WITHHELD = "[text withheld: it could not be scrubbed of secrets]"
local function scrubbed (v, client)
  local engine = client and rawget(client, "_engine")
  if not engine then return v end
  local ok, s = pcall(engine.scrub, engine, v)   -- (a table: in place)
  if ok and type(s) == type(v) then return s end
  if type(v) ~= "table" then return WITHHELD end
  for k, x in pairs(v) do
    if type(x) == "string" then v[k] = WITHHELD end
  end
  return v
end

local function shown_id (id, client)
  return util.clip(scrubbed(tostring(id), client), 200)
end

-- The summary's batch id and abandoned batch (status, error: the server's
-- text) scrubbed in place: the report's lines are the command's, no error
-- object the engine scrubbed.
local function scrub_summary (summary, client)
  if type(summary) == "table" then
    summary.batch_id = summary.batch_id and scrubbed(summary.batch_id, client)
    summary.abandoned_batch = summary.abandoned_batch and scrubbed(summary.abandoned_batch, client)
  end
end

local function close_client (client, summary)
  scrub_summary(summary, client)
  client:close()
end

local M = {}

-- (internal, for its spec)
M.scrub_summary = scrub_summary

--- The parser of `aigc run`.
-- @treturn table argparse parser
function M.parser ()
  local p = argparse("aigc run", "Run a template over a JSONL file of cases; one result line per case.")
  p:help_max_width(100):help_description_margin(28)
  p:epilog([[Cases, one JSON object a line:
  {"id": "fr", "vars": {"country": "France"}, "assert": [{"type": "contains", "value": "Paris"}]}
Assertions: contains, icontains, not-contains, equals, starts-with, regex, pattern, is-json,
json-schema, judge (value: criteria; threshold, default 7). An existing --out file is resumed:
cases with an ok result there are skipped (failed ones run again).
Exit: 0 all passed, 1 some case failed, 3 some assertion failed, 130 Ctrl-C (a rerun resumes).
Example:
  aigc run cases.jsonl -t capital --out results.jsonl --concurrency 8]])
  p:argument("cases", "The cases (JSONL; - for stdin).")
  common.model_options(p)
  p:option("--out", "The results file (JSONL; resumed when it exists; - for stdout).")
  p:option("--concurrency", "The most cases in flight (adaptive below it).", "4", tonumber)
  p:option("--best-of", "Each case: N candidates, the best kept.", nil, tonumber)
  p:option("--judge", "The judge's instruction for --best-of.")
  p:option("--vote", "Each case: N answers, the majority kept.", nil, tonumber)
  p:option("--assert", "An assertion for every case: TYPE:VALUE (contains:Paris).")
    :count("*"):target("asserts")
  p:option("--max-attempts", "Attempts per case (429, 5xx, connection errors are retried).", nil, tonumber)
  p:flag("--no-pace", "Do not pace by the x-ratelimit headers (the concurrency and 429s still apply).")
  p:option("--api", "The API of the requests: chat (the default) or responses (/v1/responses, for "
    .. "Responses-only models).", nil):choices { "chat", "responses" }
  p:flag("--batch", "Through the Batch API: one asynchronous job (a rerun resumes it: see --out .batch).")
  p:option("--batch-id", "With --batch: resume (or with --cancel, cancel) this batch (several, comma-separated: "
    .. "in order).")
  p:option("--batch-timeout", "With --batch: give up waiting for a batch after SECONDS (it goes on at the "
    .. "server; a rerun resumes it).", nil, tonumber)
  p:flag("--cancel", "With --batch: cancel the run's batch (--batch-id, else the one --out's .batch file names).")
  p:flag("--json", "Print the summary as JSON (stdout).")
  p:flag("-q --quiet", "No progress display.")
  return p
end

local function human (n)
  if n >= 1e6 then return string.format("%.1fM", n / 1e6) end
  if n >= 1e4 then return string.format("%.1fk", n / 1e3) end
  return tostring(math.floor(n))
end

--- One progress line: bar, count, rate, ETA, tokens, cost.
-- @tparam table p the runner's progress table
-- @tparam[opt=24] integer width of the bar
-- @tparam[opt] table client the run's, to scrub the batch's id and status
-- (the server's text) of its key: this line is no error the engine scrubs
-- @treturn string
function M.progress_line (p, width, client)
  width = width or 24
  local frac = p.total > 0 and p.done / p.total or 1
  local filled = math.floor(frac * width + 0.5)
  local parts = {
    string.format("%d/%d", p.done, p.total),
    "[" .. string.rep("#", filled) .. string.rep("-", width - filled) .. "]",
    string.format("%3d%%", math.floor(frac * 100)),
    string.format("%.1f/s", p.rate or 0),
    "ETA " .. (p.eta and common.duration(p.eta) or "?"),
    "tok " .. human(p.tokens or 0),
  }
  if p.cost then parts[#parts + 1] = string.format("$%.4f", p.cost) end
  parts[#parts + 1] = "ok " .. p.ok
  if p.failed > 0 then parts[#parts + 1] = "failed " .. p.failed end
  if p.retries and p.retries > 0 then parts[#parts + 1] = "retries " .. p.retries end
  if p.batch then
    parts[#parts + 1] = "batch " .. shown_id(p.batch.id, client) .. " " .. shown_id(p.batch.status, client)
  else
    parts[#parts + 1] = "x" .. tostring(p.concurrency)
  end
  -- (the batch's status is the server's text: shown, not obeyed; the line
  -- goes to the terminal as it is, rewritten in place. The C1 controls too:
  -- U+009B is an 8-bit CSI to a terminal that takes them)
  return (table.concat(parts, "  "):gsub("[%z\1-\31\127]", "?"):gsub("\194[\128-\159]", "?"))
end

-- The report's lines of the cases that failed, with their errors (the
-- first few by id): the report said "failed 3" and not why -- a wrong
-- model or key fails every case, and without --out the errors were
-- nowhere. The server's text is shown, not obeyed (no control characters).
M.FAILURES_SHOWN = 5
local function by_id (a, b)   -- (ids: numbers, then strings)
  if type(a.id) == "number" and type(b.id) == "number" then return a.id < b.id end
  if type(a.id) ~= type(b.id) then return type(a.id) == "number" end
  return tostring(a.id) < tostring(b.id)
end

-- The failed results a run's report shows, kept as they come (the run
-- keeps no `results`: a million cases' lines held to the end): the first
-- few by id. Returns the on_result function and the list.
-- With `printed`, each result line is also written here (`--out -` at a
-- terminal): the runner wrote them to /dev/stdout itself, past the
-- command's output, and a reply's U+009B (an 8-bit CSI) or DEL reached
-- the terminal raw inside the JSON. Now as --json writes there.
local function failures_kept (printed)
  local kept = {}
  return function (r)
    if printed then
      if not pcall(json.encode, r) then r.parsed = nil end   -- (as the runner writes a line)
      common.print_json(r)
    end
    if r.ok ~= false then return end
    kept[#kept + 1] = r
    table.sort(kept, by_id)
    kept[M.FAILURES_SHOWN + 1] = nil
  end, kept
end

local function failure_lines (s)
  local failed = {}
  for _, r in pairs(type(s.results) == "table" and s.results or {}) do
    if type(r) == "table" and r.ok == false then failed[#failed + 1] = r end
  end
  table.sort(failed, by_id)
  local lines = {}
  for i = 1, math.min(#failed, M.FAILURES_SHOWN) do
    local e = failed[i].error
    local why = type(e) == "table"
      and (tostring(e.kind or "error") .. (e.status and (" " .. tostring(e.status)) or "") .. ": "
           .. tostring(e.message))
      or tostring(e)
    why = common.as_typed(why)   -- (an -o value the library refused: named as typed)
    if #why > 200 then why = why:sub(1, 197) .. "..." end
    lines[i] = ("case %s failed: %s"):format(tostring(failed[i].id), why):gsub("[%z\1-\31\127]", "?")
  end
  local more = math.max(#failed, tonumber(s.failed) or 0) - math.min(#failed, M.FAILURES_SHOWN)
  if more > 0 then lines[#lines + 1] = ("... and %d more failed cases"):format(more) end
  return lines
end

--- The final report: totals, the failed cases' errors and the pass-rate table.
-- @tparam table s the runner's summary
-- @treturn string
function M.report (s)
  local lines = {}
  local u = s.usage or {}
  lines[#lines + 1] = string.format("cases %d (%d from an earlier run): ok %d, failed %d; passed %d/%d (%.1f%%)",
    s.total, s.skipped, s.ok, s.failed, s.passed, s.total, 100 * (s.pass_rate or 0))
  lines[#lines + 1] = string.format("tokens %s (prompt %s, completion %s)%s; %s, %d requests, %d retries, "
    .. "%d rate-limited", human(u.total_tokens or 0), human(u.prompt_tokens or 0), human(u.completion_tokens or 0),
    -- (the requests sent, candidates and judges included, as the tokens
    -- beside them: summary.requests counts the cases' attempts)
    s.cost and string.format("; cost $%.4f", s.cost) or "", common.duration(s.elapsed or 0),
    type(s.totals) == "table" and tonumber(s.totals.requests) or s.requests,
    s.retries, s.rate_limited)
  if s.batch_id then lines[#lines + 1] = "through the Batch API: batch " .. shown_id(s.batch_id) end
  local ab = s.abandoned_batch   -- (the kept batch whose cases all changed since it was sent)
  if ab then
    local id = shown_id(ab.id)
    lines[#lines + 1] = "batch " .. id .. " (sent before every case's request changed) "
      .. (ab.error and "could not be cancelled: " .. ab.error .. " (--batch --cancel --batch-id " .. id .. ")"
          or "was cancelled (" .. tostring(ab.status) .. ")")
  end
  for _, line in ipairs(failure_lines(s)) do lines[#lines + 1] = line end
  if #s.assertions > 0 then
    local w = 9
    for _, a in ipairs(s.assertions) do if #a.name > w then w = math.min(#a.name, 48) end end
    lines[#lines + 1] = ""
    lines[#lines + 1] = string.format("%-" .. w .. "s  %7s  %6s  %6s", "assertion", "passed", "total", "rate")
    for _, a in ipairs(s.assertions) do
      lines[#lines + 1] = string.format("%-" .. w .. "s  %7d  %6d  %5.1f%%", a.name:sub(1, w), a.passed, a.total,
        a.total > 0 and 100 * a.passed / a.total or 0)
    end
  end
  return table.concat(lines, "\n") .. "\n"
end

-- The width of the terminal on stderr, or nil: the progress line is cut to
-- it (a longer one wrapped, and its "\r" rewrote only the last row: a
-- narrow terminal piled up stale progress lines).
local function stderr_columns ()
  local p = io.popen("stty size <&2 2>/dev/null")
  if not p then return nil end
  local out = p:read("*a") or ""
  p:close()
  local n = tonumber(out:match("^%d+%s+(%d+)"))
  return n and n > 1 and n or nil
end

-- The terminal's width, read again after each resize (SIGWINCH, heard by
-- the run's luv loop between its steps): read once, a terminal narrowed
-- mid-run wrapped every progress line, and its "\r" rewrote only the last
-- row, piling them up. Returns the width function and its stop.
local function width_watch (on)
  local columns, changed = stderr_columns(), false
  local has_uv, uv = pcall(require, "luv")
  local h = on and has_uv and uv.new_signal()
  if h then h:start("sigwinch", function () changed = true end) end
  return function ()
    if changed then changed, columns = false, stderr_columns() end
    return columns
  end, function () if h then h:stop(); h:close() end end
end

-- A run's Ctrl-C: whether it was pressed (asked between steps), and the
-- close of its handler. The handler is made at the first step, once the
-- cases are read: made before, it only noted Ctrl-C, and `aigc run -`
-- reading cases typed at a terminal went on reading (Ctrl-C did nothing
-- until Ctrl-D). Until then the interpreter's "interrupted!" stops the run.
-- SIGTERM and SIGHUP (the terminal closed) stop it so too, then it ends by
-- the signal (the close gives it): they killed it at once, and a piped
-- run's private copy of the cases (its prompts) stayed until the next piped
-- run, the results' last line perhaps cut.
-- A batch run catches SIGTERM and SIGHUP alone (`batch`): its Ctrl-C stays
-- the interpreter's, which stops it anywhere (a batch being asked for).
local function step_signals (batch)
  local signals
  return function ()
    if not signals then
      signals = lineinput.new { tty = false, sigint = not batch }
      signals:catch_term()
    end
    return signals:interrupted() or signals:terminated() ~= nil
  end, function ()
    local term = signals and signals:release_term()
    if signals then signals:close() end
    return term
  end
end

-- Ends the process by `term` ("sigterm", "sighup"), caught while the run
-- stopped, once `message` is said: as the signal would have (143, 129).
local function end_by (term, message)
  io.stderr:write(message, "\n")
  io.stderr:flush()
  io.stdout:flush()
  local uv = require "luv"
  uv.kill(uv.os_getpid(), term)
  os.exit(term == "sighup" and 129 or 143)
end

local function parse_assert (s)
  local ty, value = s:match("^([%w%-]+):(.*)$")
  ty = ty or s
  if not runner.ASSERTION_TYPES[ty] then common.usage("--assert: unknown assertion type '" .. ty .. "'") end
  -- (`contains:` with nothing after the colon passed on every reply, `not-contains:`
  -- failed on every one: only `equals:` means something with an empty value)
  if value == "" and ty ~= "equals" and ty ~= "is-json" then
    common.usage("--assert: " .. ty .. ": no value after the colon (" .. ty .. ":TEXT)")
  end
  if ty == "json-schema" then value = common.parse_schema(value) end
  local a = { type = ty, value = value }
  -- (a bad pattern, a schema that is not one: every case would fail the same way)
  local why = runner.assertion_problem(a)
  if why then common.usage("--assert: " .. why) end
  return a
end

--- `aigc run --batch --cancel`: cancels the run's batch.
-- @tparam aigc.client client
-- @tparam table args
-- @treturn integer exit code
function M.cancel (client, args)
  local id = args.batch_id
  if id and id:find(",", 1, true) then   -- (each of a run's batches; the running ones are canceled)
    local code = 0
    for one in id:gmatch("[^,]+") do
      args.batch_id = one
      if M.cancel_one(client, args, true) ~= 0 then code = 1 end
    end
    client:close()
    return code
  end
  return M.cancel_one(client, args)
end

-- Cancels one batch (`args.batch_id`, else the one --out's .batch file
-- names); `keep_open`: the client stays open, a failure is a note.
function M.cancel_one (client, args, keep_open)
  local id, from = args.batch_id, ""
  local kept = runfile.batch_file(args.out)
  if not id and kept then
    local kerr
    id, kerr = require("aigc.batch_backend").kept(client, kept)   -- (a run's intent: the batch it made, if it did)
    if kerr then common.fail("aigc run --cancel: " .. tostring(kerr.message or kerr)) end
    from = " (batch " .. shown_id(id, client) .. ", whose id " .. kept .. " keeps)"
  end
  if not id then common.usage("--cancel: no batch (give --batch-id, or --out of a run with a batch)") end
  local b, err = require("aigc.batch").cancel(client, id)
  local line = b and "batch " .. shown_id(b.id, client) .. ": " .. shown_id(b.status, client)   -- (before close)
  if keep_open and not b then common.note("aigc run --cancel: " .. tostring(err.message or err)); return 1 end
  if not keep_open then client:close() end
  if not b then common.fail("aigc run --cancel" .. from .. ": " .. tostring(err.message or err)) end
  common.note(line)
  return 0
end

-- Exits for a run that failed, or found no cases in its dataset (an empty
-- file, blank lines: nothing ran, and a report of 0 cases with status 0
-- read as a run that passed): a usage error, as cases to fix are.
local function check_outcome (summary, err, dataset)
  if not summary and err.code == "input" then common.usage("aigc run: " .. tostring(err.message)) end
  if not summary then common.fail("aigc run: " .. tostring(err.message or err)) end
  if summary.total == 0 then common.usage("aigc run: the dataset " .. dataset .. " has no cases") end
end

-- Checks the arguments before anything is made: the request params of -o.
local function check_args (args)
  -- ("-" is stdout, as for `aigc image -o -`: it made a file named "-")
  if args.out == "-" then args.out = "/dev/stdout" end
  -- (`--out "$OUT"` with OUT unset said "cannot open : No such file or directory", exit 1)
  if args.out == "" then common.usage("--out: an empty file name (a results file, or - for stdout)") end
  args.dataset = args.cases   -- (as given, for messages: "-", not /dev/stdin)
  if args.cases == "-" then args.cases = "/dev/stdin" end   -- (and the cases' "-" is stdin)
  if (args.batch_id or args.cancel or args.batch_timeout) and not args.batch then
    common.usage("--batch-id, --batch-timeout and --cancel go with --batch")
  end
  -- (an empty id -- `--batch-id "$ID"`, ID unset -- was no id: a new batch sent, paid twice)
  for part in ((args.batch_id or "x") .. ","):gmatch("([^,]*),") do
    if not part:find("%S") then
      common.usage("--batch-id: an empty batch id in '" .. args.batch_id .. "' (IDs, comma-separated)")
    end
  end
  local t = args.batch_timeout
  if t and not (t > 0 and t < math.huge) then common.usage("--batch-timeout must be a number of seconds > 0") end
  if args.api == "responses" and (args.best_of or args.vote) then
    common.usage("--best-of and --vote send chat requests: not with --api responses")
  end
  if args.batch and (args.best_of or args.vote) then
    common.usage("--batch runs one request per case: no --best-of/--vote")
  end
  -- (the checks of `aigc PROMPT`, for the same options)
  if args.best_of and args.vote then common.usage("--best-of and --vote exclude each other") end
  if args.judge and not args.best_of then common.usage("--judge goes with --best-of") end
  if #(args.params or {}) > 0 and not args.template then
    common.usage("-p sets template variables: it needs -t TEMPLATE")
  end
  for _, flag in ipairs { "concurrency", "max_attempts", "best_of", "vote" } do
    local n = args[flag]
    if n ~= nil and (n < 1 or n ~= math.floor(n)) then
      common.usage("--" .. flag:gsub("_", "-") .. " must be a whole number >= 1")
    end
    if n ~= nil and (flag == "best_of" or flag == "vote") and n > common.MAX_CANDIDATES then
      common.usage("--" .. flag:gsub("_", "-") .. ": at most " .. common.MAX_CANDIDATES)
    end
  end
  local params = common.options_table(args.options)
  if params.n ~= nil and (args.best_of or args.vote) then
    common.usage("-o n=N and --best-of/--vote exclude each other")
  end
  -- Text that goes into every request is checked here, once: not UTF-8,
  -- every case would fail with the same error.
  common.check_text(args.system, "-s")
  common.check_text(args.judge, "--judge")
  common.check_text(params, "-o")
  for _, s in ipairs(args.params or {}) do common.check_text(s, "-p") end
  return params
end

-- The request params (-o, the model) as the call checks them, before
-- anything is sent: a value it refuses, -o temperature=abc, failed every
-- case "bad argument" (exit 1), or went in a batch, paid for. One usage
-- error now (the messages and prompt come from the cases: not asked for;
-- a template's params under -o's, as the cases' calls get them).
local function check_params (client, args, params, tpl)
  local all = {}
  for k, v in pairs(tpl and tpl.params or {}) do all[k] = v end
  for k, v in pairs(params) do all[k] = v end
  local why = check.call_problem(client, args.api or "chat", all, "params", true)
  if why then client:close(); common.usage("aigc run: " .. common.as_typed(why)) end
end

-- The template of the run (-t with its -p defaults, -s), or nil.
local function run_template (args)
  local tpl
  if args.template then
    tpl = common.template(args.template)
    local vars = common.template_vars(tpl, args.template, args.params)
    if next(vars) then
      local spec = {}
      for k, v in pairs(tpl) do spec[k] = v end
      spec.defaults = {}
      for k, v in pairs(tpl.defaults) do spec.defaults[k] = v end
      for k, v in pairs(vars) do spec.defaults[k] = v end
      tpl = template.new(spec)
    end
    if args.system then tpl.system = args.system end
  elseif args.system then
    -- (a system prompt alone: each case's prompt or messages follow it; with
    -- prompt = "{{prompt}}" every case of messages failed, "missing variable: prompt")
    tpl = template.new { system = args.system }
  end
  return tpl
end

-- The batches of a run (`given`: --batch-id, one or several, comma-separated):
-- `resume` (for the runner: an id, a list, or nil), `ids` (every batch of the run,
-- in order: those it resumes, then those it made, as its progress names them)
-- and `last` (the one it is at).
local Batches = {}
Batches.__index = Batches

local function batch_runs (given)
  local self = setmetatable({ ids = {} }, Batches)
  for id in (given or ""):gmatch("[^,]+") do self.ids[#self.ids + 1], self.last = id, id end
  if self.ids[2] then   -- (a copy: the run's new batches join ids)
    self.resume = {}
    for i, id in ipairs(self.ids) do self.resume[i] = id end
  else
    self.resume = self.ids[1]
  end
  return self
end

function Batches:saw (id)
  self.seen = true   -- (a batch the server made or showed: not a --batch-id alone)
  if id == self.last then return end
  self.last = id
  if self.ids[#self.ids] ~= id then self.ids[#self.ids + 1] = id end
end

-- Ctrl-C: the batch goes on at the server (and is billed); "interrupted" alone left a
-- run without --out no way to its results, and running it again sent a second batch.
-- Without --out (or with --batch-id) every batch of the run is named, in order: only
-- the last was, and a run split over several, resumed with it, failed the others'
-- cases "without this case" (those of the batches after it never sent).
-- How to take the results of the run's batches: "run it again (OUT.batch
-- keeps its id)", or with --batch-id and their ids. `present`: OUT.batch
-- only if it is there (a full disk may have kept none).
function Batches:again (args, client, present)
  local kept = runfile.batch_file(args.out)   -- (no file beside /dev/stdout, a pipe)
  if present and kept and core.file_kind(kept) ~= "file" then kept = nil end
  local ids = {}
  for i, x in ipairs(self.ids) do ids[i] = shown_id(x, client) end
  ids = table.concat(ids, ",")
  return ((kept and not args.batch_id) and "run it again (" .. kept .. " keeps its id)"
    or ids == args.batch_id and "run it again" or "run it again with --batch-id " .. ids)
    .. (self.ids[2] and " to take the results" or " to take its results")
end

function Batches:going (args, client)
  local id = shown_id(self.last, client)
  return "batch " .. id .. " goes on at the server (" .. self:again(args, client)
    .. "; --batch --cancel --batch-id " .. id .. " cancels it)"
end

function Batches:interrupted (args, client)
  common.fail("aigc run: interrupted: " .. self:going(args, client), 130)
end

-- A batch run that failed once its batch was made, its results not written
-- (`--out /dev/full`, a full disk): the error named no batch, paid for, its
-- results at the server; without OUT.batch (a device, a pipe) its id was
-- lost, and running it again sent a second one. Named now, with the way back.
function Batches:failed (args, client, err)
  if not (self.seen and util.is_error(err)) or err.code == "input" or err.code == "interrupted" then return end
  local message = tostring(err.message)
  if message:find(shown_id(self.last, client), 1, true) then return end
  err.message = message .. " (batch " .. shown_id(self.last, client) .. " was made, its results are at the server: "
    .. self:again(args, client, true) .. ")"
end

-- A batch run stopped by Ctrl-C (the interpreter's "interrupted!"): the
-- batch it knows of, or the one it was asking for (OUT.batch keeps the
-- request: "aigc: interrupted" said nothing of it), named.
function Batches:stopped (args, client, tty)
  local asked = self:asked(args)
  if not (self.last or asked) then return end
  if tty then io.stderr:write("\n") end
  if self.last then self:interrupted(args, client) end
  common.fail("aigc run: interrupted" .. asked, 130)
end

-- " as its batch was asked for: ..." when the run knows no batch of its
-- own and OUT.batch keeps its request (its intent); else nil.
function Batches:asked (args)
  local kept = runfile.batch_file(args.out)
  if self.last or not (kept and core.file_kind(kept) == "file") then return nil end
  return " as its batch was asked for: run it again (" .. kept .. " keeps the request: the batch, if the server "
    .. "made it, is resumed)"
end

-- A run stopped between its steps (runner.run's "interrupted"): by Ctrl-C,
-- or by `term` ("sigterm", "sighup"), which then ends it. A batch run
-- (SIGTERM or SIGHUP while it waits for its batch) names the batch and how
-- to take its results: killed, it said nothing, and without --out (or with
-- -q) its id was lost, a rerun sent a second batch, paid twice.
local function stopped (args, client, batches, tty, term)
  if tty then io.stderr:write("\n") end
  local said = "aigc run: " .. (term and "stopped by " .. term:upper() or "interrupted")
  if args.batch and batches.last then said = said .. ": " .. batches:going(args, client)
  elseif args.batch and batches:asked(args) then said = said .. batches:asked(args)   -- (SIGTERM as it was asked for)
  elseif args.out then said = said .. " (the results so far are in " .. args.out .. ": run it again to resume)" end
  if term then end_by(term, said) end
  common.fail(said, 130)
end

--- Runs `aigc run`.
-- @tparam table args
-- @treturn integer exit code
function M.run (args)
  local params = check_args(args)
  local config = common.config()
  local client, _, endpoint = common.client(config, args.endpoint)
  if args.cancel then return M.cancel(client, args) end
  local tpl = run_template(args)
  params.model = config_mod.model(config, endpoint, args.model, tpl and tpl.model)
  check_params(client, args, params, tpl)
  local strategy
  if args.best_of then strategy = { best_of = math.floor(args.best_of), judge = args.judge }
  elseif args.vote then strategy = { vote = math.floor(args.vote) } end
  local asserts = {}
  for _, s in ipairs(args.asserts or {}) do asserts[#asserts + 1] = parse_assert(s) end
  local log = common.open_log(config, args)   -- (calls are scrubbed by the client's engine)

  -- (TERM=dumb, an editor's shell: no cursor control, "\27[K" showed as
  -- ^[[K; the plain lines a pipe gets instead)
  local tty = not args.quiet and common.isatty(io.stderr) and config_mod.env("TERM") ~= "dumb"
  local last_plain = 0
  -- Ctrl-C stops the run between steps (the interpreter's own SIGINT would
  -- raise "interrupted!" anywhere); the batch backend keeps that default.
  local interrupted, close_signals = step_signals(args.batch)
  local width, stop_width = function () return nil end, function () end
  if tty then width, stop_width = width_watch(not args.batch) end
  local batches = batch_runs(args.batch_id)
  local printed = args.out == "/dev/stdout" and common.isatty(io.stdout)
  local on_result, failed = failures_kept(printed)
  -- (a batch run only: a direct run's errors keep their own traceback)
  local ok, summary, err = (args.batch and pcall or function (f, ...) return true, f(...) end)(runner.run, {
    client = client, cases = args.cases, template = tpl, params = params, out = not printed and args.out or nil,
    concurrency = args.concurrency and math.floor(args.concurrency), strategy = strategy, assert = asserts,
    prices = config.prices, max_attempts = args.max_attempts, pace = not args.no_pace, log = log,
    backend = args.batch and "batch" or nil, batch_id = batches.resume, batch_timeout = args.batch_timeout,
    api = args.api,
    interrupted = interrupted, results = false, on_result = on_result,
    on_progress = (args.batch or not args.quiet) and function (p)
      if p.batch then batches:saw(p.batch.id) end
      if args.quiet then return end
      if tty then
        local line, columns = M.progress_line(p, nil, client), width()
        if columns and #line >= columns then line = line:sub(1, columns - 1) end
        io.stderr:write("\r\27[K", line)
        if p.final then io.stderr:write("\n") end
        io.stderr:flush()
      elseif p.final or p.elapsed - last_plain >= 5 then
        last_plain = p.elapsed
        common.note(M.progress_line(p, nil, client))
      end
    end or nil,
  })
  stop_width()
  local term = close_signals()
  if log then log:close() end
  close_client(client, ok and summary)
  if not ok and tostring(summary):find("interrupted!$") then batches:stopped(args, client, tty) end
  if not ok then error(summary, 0) end
  if not summary and err.code == "interrupted" then stopped(args, client, batches, tty, term) end
  if not summary and args.batch then batches:failed(args, client, err) end
  check_outcome(summary, err, args.dataset)
  summary.results = failed
  if args.json then
    summary.results = nil
    common.print_json(summary)
  else
    -- (as a note: the report holds a server's text, a batch's id, a case's
    -- error, which reached a terminal raw and could retitle the window)
    common.note((M.report(summary):gsub("\n$", "")))
  end
  -- (a signal after the run's last look for one -- its last line written, the report --
  -- was swallowed, exit 0: the run ends by it, its results whole)
  if term then end_by(term, "aigc run: " .. term:upper() .. " came as the run ended: every case has its result") end
  if summary.failed > 0 then return 1 end
  if summary.passed < summary.ok then return 3 end
  return 0
end

return M
