--- The dataset runner's input, checked (aigc.runner's part): `run`'s
-- spec (a misuse raises, naming the option) and its cases (a fault of the
-- cases is nil, err of code "input", naming the case and its line).
-- Internal: `aigc.runner.run` calls them.
--
-- @module aigc.runner_input

local assertions_mod = require "aigc.assertions"
local check_mod = require "aigc.check"
local compat = require "aigc.compat"
local runfile = require "aigc.runfile"
local runner_responses = require "aigc.runner_responses"
local strategy_shared = require "aigc.strategy_shared"
local template_mod = require "aigc.template"
local usage_mod = require "aigc.usage"
local util = require "aigc.util"

local getmetatable, ipairs, pairs, tostring, type = getmetatable, ipairs, pairs, tostring, type
local math_floor = math.floor
local input_error, id_problem, id_key = runfile.input_error, runfile.id_problem, runfile.id_key

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
  batch_id = true, batch_interval = "number", batch_metadata = "table", batch_endpoint = "string",
  batch_price_factor = "number", interrupted = "function", max_wait = "number", api = "string",
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

-- Reads and checks the cases: list, or nil, err.
function M.load_cases (spec)
  local cases, lines = spec.cases, nil
  if type(cases) == "string" then
    local list, lines_or_err = runfile.read_cases(cases)
    if not list then return nil, lines_or_err end
    cases, lines = list, lines_or_err
  elseif type(cases) ~= "table" then
    spec_error("cases", util.expected("JSONL path or list of case tables", cases))
  end
  -- (a case of a file is named by its line too: PATH:LINE: case ID: ...)
  local function at (i, key)
    return (lines and spec.cases .. ":" .. lines[i] .. ": " or "") .. "case " .. key .. ": "
  end
  local seen = {}
  for i, c in ipairs(cases) do
    if type(c) ~= "table" then return nil, input_error("case " .. i .. " is not a table") end
    if c.id == nil then c.id = i end
    local why = id_problem(c.id)
    if why then return nil, input_error("case " .. i .. ": " .. why) end
    local key = id_key(c.id)
    if seen[key] then   -- (of a file: both lines, to find them in 10,000)
      return nil, input_error((lines and spec.cases .. ":" .. lines[i] .. ": " or "") .. "two cases have the id "
        .. key .. (lines and " (lines " .. lines[seen[key]] .. " and " .. lines[i] .. ")" or "")
        .. ": ids must be unique")
    end
    seen[key] = i
    -- (one assertion object is a one-item list; a string or any other
    -- shape is refused: ignored, its case would pass unchecked; so is an
    -- assertion whose arguments are wrong: each case would fail the same way)
    local list
    list, why = assertions_mod.list(c.assert)
    if not list then return nil, input_error(at(i, key) .. "assert: " .. why) end
    c.assert = c.assert ~= nil and list or nil
    -- without a template, `messages` or `prompt` is the request: of the wrong type, refused
    -- here (each case would fail with a message that it has none)
    if spec.template == nil and c.messages ~= nil and type(c.messages) ~= "table" then
      return nil, input_error(at(i, key) .. "messages must be a list of messages, got " .. type(c.messages))
    elseif spec.template == nil and c.messages == nil and c.prompt ~= nil and type(c.prompt) ~= "string" then
      return nil, input_error(at(i, key) .. "prompt must be a string, got " .. util.describe(c.prompt))
    end
  end
  return cases
end

return M
