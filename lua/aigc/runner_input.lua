--- The dataset runner's input, checked (aigc.runner's part): `run`'s
-- spec (a misuse raises, naming the option) and its cases (a fault of the
-- cases is nil, err of code "input", naming the case and its line); a
-- case's request (its params, their digest).
-- Internal: `aigc.runner.run` calls them.
--
-- @module aigc.runner_input

local assertions_mod = require "aigc.assertions"
local cache = require "aigc.cache"
local cassette = require "aigc.cassette"
local check_mod = require "aigc.check"
local compat = require "aigc.compat"
local core = require "aigc.core"
local runfile = require "aigc.runfile"
local runner_digest = require "aigc.runner_digest"
local runner_responses = require "aigc.runner_responses"
local strategy_shared = require "aigc.strategy_shared"
local template_mod = require "aigc.template"
local usage_mod = require "aigc.usage"
local util = require "aigc.util"

local getmetatable, ipairs, pairs, pcall, setmetatable, tostring, type = getmetatable, ipairs, pairs, pcall,
  setmetatable, tostring, type
local math_floor = math.floor
local input_error, id_problem, id_key = runfile.input_error, runfile.id_problem, runfile.id_key
local run_error = runfile.run_error

util.own_module()

local M = {}

--- The backends there are (aigc.runner's BACKENDS).
local BACKENDS = { direct = true, batch = true }
M.BACKENDS = BACKENDS

local OPTIONS = {
  client = "table", cases = true, template = true, params = "table", out = "string", concurrency = "number",
  strategy = true, prices = "table", max_attempts = "number", pace = "boolean", on_result = "function",
  on_progress = "function", log = "table", backend = "string", assert = "table", judge_client = "table",
  resume = "boolean", rpm = "number", tpm = "number", progress_interval = "number",
  batch_id = true, batch_interval = "number", batch_timeout = "number", batch_metadata = "table",
  batch_endpoint = "string",
  batch_price_factor = "number", interrupted = "function", max_wait = "number", api = "string",
  results = "boolean",
}

-- Misuse of run: `bad argument #1 to 'run' (spec.X: ...)`.
local function spec_error (path, msg)
  util.field_error("run", 1, "spec." .. path, msg)
end

-- A run's strategy: a function, or best_of or vote with a count (1 to
-- strategy_shared.MAX_CANDIDATES, as strategy.best_of's n).
local function check_strategy (s)
  if s ~= nil and not check_mod.is_callable(s) and (type(s) ~= "table" or (s.best_of == nil and s.vote == nil)) then
    spec_error("strategy", "a function, { best_of = N [, judge = ...] } or { vote = N } expected")
  end
  if type(s) == "table" then   -- (best_of = "x" raised "attempt to add a 'string' with a 'number'" from runner.lua)
    local k = s.best_of ~= nil and "best_of" or "vote"
    local v, max = s[k], strategy_shared.MAX_CANDIDATES
    if not compat.is_integer(v) or v < 1 or v > max then
      spec_error("strategy." .. k, util.expected("an integer from 1 to " .. max, v))
    end
    -- (each case failed "bad argument #1 to 'best_of' (spec.judge.prompt: ...)" for a
    -- judge as strategy.best_of takes it, { prompt = }; one of vote, or both counts,
    -- was dropped unseen)
    if s.best_of ~= nil and s.vote ~= nil then spec_error("strategy", "best_of and vote exclude each other") end
    if s.judge ~= nil and (k ~= "best_of" or type(s.judge) ~= "string") then
      spec_error("strategy.judge", k ~= "best_of" and "goes with best_of"
                                   or util.expected("a string (the judge's criteria)", s.judge))
    end
  end
end

function M.check_spec (spec)
  if type(spec) ~= "table" then util.argerror("run", 1, util.expected("table", spec)) end
  for k, v in pairs(spec) do
    local want = OPTIONS[k]
    if want == nil then
      local known = check_mod.likely_typo(k, OPTIONS)
      spec_error(tostring(k), "unknown option" .. (known and " (did you mean " .. known .. "?)" or ""))
    end
    if want ~= true and type(v) ~= want then spec_error(k, util.expected(want, v)) end
  end
  for _, k in ipairs { "client", "judge_client" } do
    if (k == "client" or spec[k] ~= nil) and not util.is_a(spec[k], "aigc.client") then
      spec_error(k, util.expected("aigc.client", spec[k]))
    end
  end
  local backend = spec.backend or "direct"
  if backend == "batch" and spec.strategy ~= nil then
    spec_error("strategy", "strategies run on the direct backend only (a batch line is one request)")
  end
  if not BACKENDS[backend] then spec_error("backend", "unknown backend '" .. backend .. "'") end
  local api = spec.api or "chat"
  if not runner_responses.APIS[api] then
    spec_error("api", "unknown API '" .. api .. "' (\"chat\" or \"responses\")")
  end
  -- (best_of and vote send chat requests: a Responses-only model refuses them)
  if api == "responses" and type(spec.strategy) == "table" then
    spec_error("strategy", "best_of and vote send chat requests: with api = \"responses\", give a function")
  end
  local n = spec.concurrency
  if n ~= nil and (n < 1 or n ~= math_floor(n)) then spec_error("concurrency", util.expected("an integer >= 1", n)) end
  -- (max_attempts = 0 or 1.5 ran silently as 1 or 2; rpm = 0 was refused
  -- by aigc.ratelimit naming 'new' in runner.lua, after `out` was created)
  n = spec.max_attempts
  if n ~= nil and (n < 1 or n ~= math_floor(n)) then spec_error("max_attempts", util.expected("an integer >= 1", n)) end
  for _, k in ipairs { "rpm", "tpm", "max_wait" } do
    n = spec[k]
    if n ~= nil and not (n > 0 and n < math.huge) then spec_error(k, util.expected("a finite number > 0", n)) end
  end
  check_strategy(spec.strategy)
  if spec.prices ~= nil then   -- (a price of "x" or -1 gave a wrong cost, not an error)
    local path, why = usage_mod.prices_problem(spec.prices)
    if path then spec_error("prices" .. path, why) end
  end
  local ids = spec.batch_id   -- (a list: the batches of a run split over several, resumed in order)
  if ids ~= nil and type(ids) ~= "string" then
    if type(ids) ~= "table" or ids[1] == nil then
      spec_error("batch_id", util.expected("string or list of strings", ids))
    end
    for i, id in ipairs(ids) do
      if type(id) ~= "string" then spec_error("batch_id[" .. i .. "]", util.expected("string", id)) end
    end
  end
  -- (-1 or NaN: batch_interval's raised "bad argument #3 to 'wait'" once the batch was made; progress_interval's
  -- was taken, and on_progress then never came until the end)
  for _, k in ipairs { "batch_interval", "progress_interval" } do
    local v = spec[k]
    if v ~= nil and not util.is_duration(v) then spec_error(k, util.expected("number of seconds >= 0", v)) end
  end
  local factor = spec.batch_price_factor
  if factor ~= nil and not (factor >= 0 and factor < math.huge) then
    spec_error("batch_price_factor", util.expected("a finite number >= 0", factor))
  end
  -- The runner's batch lines are of its `api`, read as such: to the
  -- other API's endpoint they went in the wrong shape, and every answered
  -- case's text was read as "" from a reply without `choices`.
  local endpoint = spec.batch_endpoint
  local suffix = api == "responses" and "/responses" or "/chat/completions"
  if endpoint ~= nil and endpoint:sub(-#suffix) ~= suffix then
    spec_error("batch_endpoint", "the runner's batch lines are " .. (api == "responses" and "Responses requests"
      or "chat completions") .. " (api = \"" .. api .. "\"): '" .. endpoint .. "' is not (give \""
      .. runner_responses.BATCH_ENDPOINT[api] .. "\", the default" .. (api == "chat"
      and ", or api = \"responses\" for /v1/responses" or "") .. ")")
  end
  local list, why, i = assertions_mod.list(spec.assert)
  if not list then spec_error("assert" .. (i and "[" .. i .. "]" or ""), why) end
  local tpl = spec.template
  if tpl ~= nil and getmetatable(tpl) ~= template_mod.Template and type(tpl) ~= "table" then
    spec_error("template", util.expected("aigc.template or table", tpl))
  end
end

-- Checks case `i` (of line `line` of the file `path`, when it is one's)
-- and completes it (its id, its assertions as a list): nil, or err.
-- `seen`: the line (or index) of each id so far, by key.
local function check_case (spec, c, i, path, line, seen)
  -- (a case of a file is named by its line too: PATH:LINE: case ID: ...)
  local function at (key)
    return (line and path .. ":" .. line .. ": " or "") .. "case " .. key .. ": "
  end
  if type(c) ~= "table" then return input_error("case " .. i .. " is not a table") end
  if c.id == nil then c.id = i end
  local why = id_problem(c.id)
  if why then return input_error("case " .. i .. ": " .. why) end
  local key = id_key(c.id)
  if seen[key] then   -- (of a file: both lines, to find them in 10,000)
    return input_error((line and path .. ":" .. line .. ": " or "") .. "two cases have the id "
      .. key .. (line and " (lines " .. seen[key] .. " and " .. line .. ")" or "")
      .. ": ids must be unique")
  end
  seen[key] = line or i
  -- (one assertion object is a one-item list; a string or any other
  -- shape is refused: ignored, its case would pass unchecked; so is an
  -- assertion whose arguments are wrong: each case would fail the same way)
  local list
  list, why = assertions_mod.list(c.assert)
  if not list then return input_error(at(key) .. "assert: " .. why) end
  c.assert = c.assert ~= nil and list or nil
  -- without a template, `messages` or `prompt` is the request: of the wrong type, refused
  -- here (each case would fail with a message that it has none)
  if spec.template == nil and c.messages ~= nil and type(c.messages) ~= "table" then
    return input_error(at(key) .. "messages must be a list of messages, got " .. util.typename(c.messages))
  elseif spec.template == nil and c.messages == nil and c.prompt ~= nil and type(c.prompt) ~= "string" then
    return input_error(at(key) .. "prompt must be a string, got " .. util.describe(c.prompt))
  end
end

local Source = {}   -- (the metatable of these: a list of the user's may have any field)
M.Source = Source

--- A direct run's cases of a regular file, checked line by line, none
-- kept: `{ path =, total = }`, read again as the run needs them
-- (`open`: a `runfile.case_reader` whose cases are checked as these were;
-- a run of a million lines held them all, 0.9 GB). Every line is checked
-- before anything is sent, as when they were all read: a bad line 900,000
-- is refused before 899,999 calls are paid for. The ids' keys are kept
-- while the check runs (two cases with one id are refused).
-- @treturn[1] table
-- @treturn[2] nil
-- @treturn[2] aigc.error err
local function scan_cases (spec, path, name)
  local reader, err = runfile.case_reader(path, name)
  if not reader then return nil, err end
  name = name or path
  local seen, total = {}, 0
  while true do
    local c, line_or_err = reader.next()
    if not c then
      if line_or_err then return nil, line_or_err end
      break
    end
    total = total + 1
    err = check_case(spec, c, total, name, line_or_err, seen)
    if err then reader.close(); return nil, err end
  end
  local source = setmetatable({ path = path, total = total }, Source)
  function source.open ()
    local r, rerr = runfile.case_reader(path, name)
    if not r then return nil, rerr end
    local i = 0
    return { close = r.close, next = function ()
      -- (the cases checked, no more: lines a writer appends while the run
      -- goes, never checked -- an id twice -- are not taken)
      if i >= total then r.close(); return nil end
      local c, line_or_err = r.next()
      -- (a file cut short since its check -- rewritten in place -- ended
      -- the run as if its last cases were not there: "passed 500/1000", exit 0)
      local cerr
      if c then
        i = i + 1
        cerr = check_case(spec, c, i, name, line_or_err, {})
        if not cerr then return c end
        r.close()
      end
      local why = cerr or line_or_err
      why = why and why.message or "it ends after " .. i .. " cases, " .. total .. " were checked"
      return nil, input_error(name .. " changed while the run read it: " .. why .. " (run it again to resume)")
    end }
  end
  return source
end

-- {======================================================
-- A case's request
-- =======================================================

local function case_vars (c)
  if type(c.vars) == "table" then return c.vars end
  local vars = {}
  for k, v in pairs(c) do
    if k ~= "id" and k ~= "assert" and k ~= "messages" then vars[k] = v end
  end
  return vars
end

-- The params of a case, or nil, err; for a Responses run, the chat params
-- they were made from second (the prompt log reads messages, not input).
function M.case_params (run, c)
  local params, err
  if run.template then
    params, err = run.template:render(case_vars(c), run.params)
    if not params then return nil, err end
    -- A template of a system prompt alone: the case's own messages or
    -- prompt go after it (they were dropped: the system prompt went alone).
    if run.template.prompt == nil then
      local msgs = params.messages
      if type(c.messages) == "table" then
        for _, m in ipairs(c.messages) do msgs[#msgs + 1] = m end
      elseif type(c.prompt) == "string" then msgs[#msgs + 1] = { role = "user", content = c.prompt }
      else
        return nil, run_error("case " .. tostring(c.id) .. " has no messages or prompt, and the template has no prompt")
      end
    end
  else
    params = {}
    for k, v in pairs(run.params) do params[k] = v end
    if type(c.messages) == "table" then params.messages = c.messages
    elseif type(c.prompt) == "string" then params.messages = { { role = "user", content = c.prompt } }
    else return nil, run_error("case " .. tostring(c.id) .. " has no messages or prompt, and there is no template") end
  end
  params.max_retries = 0    -- the runner retries, paced by its limiter
  if run.api == "responses" then return runner_responses.params(params), params end
  return params, params
end

-- The digest of a case's request (aigc.runner_digest), or nil when it has
-- none (a string JSON cannot carry: the call fails it, as before).
-- A run's strategy is part of it: `best_of`, `vote` or a judge's prompt
-- changed (or a strategy given or dropped) since a line was written asked
-- another request; a function counts as "function" (its code is not read).
function M.request_digest (run, params)
  local s = run.strategy
  if type(s) == "table" then s = { best_of = s.best_of, vote = s.vote, judge = s.judge }
  elseif s ~= nil then s = "function" end
  local ok, d = pcall(runner_digest.of_params, params, run.client, run.api, s)
  if ok then return d end
  util.reraise_memory(d)
end

-- How a case is judged, as a value: its assertions (the run's, then its
-- own), and the judges' model when an assertion is a judge.
local function judging (run, c)
  local list, judge = {}, false
  for _, a in ipairs(run.assertions) do list[#list + 1] = a; judge = judge or a.type == "judge" end
  for _, a in ipairs(type(c.assert) == "table" and c.assert or {}) do
    list[#list + 1] = a; judge = judge or a.type == "judge"
  end
  local model = judge and run.judge_client and run.judge_client.model
  return { assert = list, judge_model = type(model) == "string" and model or nil }
end

--- The digest of how a case is judged (a result line's `checks`): an edited
-- assertion, a run's `assert` or the judges' model changed since a line
-- was written no longer matches it. The run's alone (a case without
-- assertions of its own) is worked out once.
-- @tparam table run
-- @tparam table c the case
-- @treturn string|nil
function M.checks_digest (run, c)
  local own = type(c.assert) == "table" and c.assert[1] ~= nil
  if not own and run.checks_digest then return run.checks_digest end
  local ok, d = pcall(function () return cache.hash(cassette.canonical(judging(run, c))) end)
  if not ok then util.reraise_memory(d); return nil end
  if not own then run.checks_digest = d end
  return d
end

-- Whether a case done by an earlier run was asked another request then
-- (its prompt, vars, template or params edited since): resumed by its id
-- alone, the old answer was kept silently. A result line without a digest
-- (of an older version) counts as done. So is, for its judging, a line
-- without `checks` (a version before them); a line whose `checks` differ
-- (its assertions or the strategy changed since) had the old assertions'
-- verdict: they are checked again on the kept answer, without a request.
-- (A strategy is part of the request: `request_digest`.)
-- Gives "request" (the case runs again), "checks" (its answer stands: it
-- is judged again) or false.
function M.changed (run, c, prev)
  if type(prev.digest) ~= "string" then return false end
  local params = M.case_params(run, c)
  if not params or M.request_digest(run, params) ~= prev.digest then return "request" end
  return type(prev.checks) == "string" and prev.checks ~= M.checks_digest(run, c) and "checks"
end

-- }======================================================

-- Reads and checks the cases: a list, or a source (`scan_cases`: a direct
-- run's regular file), or nil, err.
function M.load_cases (spec)
  local cases, lines = spec.cases, nil
  if type(cases) == "string" then
    local kind = core.file_kind(cases)
    if (spec.backend or "direct") == "direct" and kind == "file" then
      return scan_cases(spec, cases)
    end
    if (spec.backend or "direct") == "direct" and kind == "fifo" then
      -- A pipe (stdin) is read once: its cases are kept in a temporary file,
      -- then checked and read as a regular file's (`spooled`: runner.run removes it).
      local tmp, serr, hold = runfile.spool(cases)
      if not tmp then return nil, serr end
      local source, err = scan_cases(spec, tmp, cases)
      if not source then os.remove(tmp); return nil, err end
      source.spooled, source.spool_hold = tmp, hold   -- (its lock: the next piped run leaves it)
      return source
    end
    local list, lines_or_err = runfile.read_cases(cases)
    if not list then return nil, lines_or_err end
    cases, lines = list, lines_or_err
  elseif type(cases) ~= "table" then
    spec_error("cases", util.expected("JSONL path or list of case tables", cases))
  end
  local seen, hole = {}, not lines and util.hole_problem(cases)
  if hole then spec_error("cases", hole) end
  for i, c in ipairs(cases) do
    local err = check_case(spec, c, i, spec.cases, lines and lines[i], seen)
    if err then return nil, err end
  end
  return cases
end

return M
