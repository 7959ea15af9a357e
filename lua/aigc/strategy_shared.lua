--- What the dialogue strategies share: checking a strategy's spec table
-- (misuse names the field: `bad argument #1 to 'best_of' (spec.n: ...)`)
-- and generating candidates (n requests at once, or one request with
-- `n =` whose missing choices are asked one by one).
--
-- @module aigc.strategy_shared
-- @local

local core = require "aigc.core"
local compat = require "aigc.compat"
local util = require "aigc.util"
local check = require "aigc.check"
local scheduler = require "aigc.task"
local judge_mod = require "aigc.judge"
local split_think = require("aigc.schema").split_think
local usage = require "aigc.usage"

local ipairs, pairs, setmetatable, tostring, type = ipairs, pairs, setmetatable, tostring, type
local math_floor, string_format, table_concat, table_sort = math.floor, string.format, table.concat, table.sort
local await, merge, is_a, is_integer = scheduler.await, util.merge, util.is_a, compat.is_integer
local expected, field_error = util.expected, util.field_error
local json_decode, pcall = core.json.decode, pcall

util.own_module()

local M = {}

-- The path of `path` in the spec: "spec.n", "spec[1].client".
local function spec_path (path)
  return "spec" .. (path:sub(1, 1) == "[" and "" or ".") .. path
end

-- Misuse of a strategy: `bad argument #1 to 'best_of' (spec.n: ...)`.
function M.spec_error (fname, path, msg)
  field_error(fname, 1, spec_path(path), msg)
end

function M.check_spec (spec, fname)
  if type(spec) ~= "table" then util.argerror(fname, 1, expected("table", spec)) end
end

function M.need_client (c, fname, path)
  if not is_a(c, "aigc.client") then M.spec_error(fname, path, expected("aigc.client", c)) end
  -- (closed already: misuse, raised now -- a judge's raised only once the
  -- candidates were paid for; one closed while the strategy runs ends its
  -- calls as canceled, see judge.closed)
  if judge_mod.closed(c) then util.raise("attempt to use a closed client") end
  return c
end

function M.need_function (v, fname, path)
  if v ~= nil and not check.is_callable(v) then M.spec_error(fname, path, expected("function", v)) end
  return v
end

-- (a judge's prompt that is no text raised "invalid value in table for
-- 'concat'" from aigc.judge, once the candidates were paid for)
function M.need_string (v, fname, path)
  if v ~= nil and type(v) ~= "string" and type(v) ~= "number" then M.spec_error(fname, path, expected("string", v)) end
  return v
end

-- Chat params from a string or a table (copied, one level), checked as a
-- call checks them.
function M.chat_params (p, fname, path, client)
  if type(p) == "string" then return { messages = { { role = "user", content = p } } } end
  if type(p) ~= "table" then M.spec_error(fname, path, expected("string or chat params", p)) end
  local api = judge_mod.is_responses(p) and "responses" or "chat"
  if api == "chat" and p.messages == nil then
    M.spec_error(fname, path .. ".messages", expected("list of messages", nil))
  end
  local why = check.call_problem(client, api, p, spec_path(path))
  if why then util.argerror(fname, 1, why) end
  return merge(p)
end

-- Params merged later into a call the strategy makes (a critic's, a
-- judge's), checked now as that call will check them: a wrong one raised
-- only once the draft or the candidates had been paid for.
function M.extra_params (v, fname, path, client, api)
  if v == nil then return nil end
  if type(v) ~= "table" then M.spec_error(fname, path, expected("table", v)) end
  local why = check.call_problem(client, api, v, spec_path(path), true)
  if why then util.argerror(fname, 1, why) end
  return v
end

-- An `api` option: "chat", "responses", or nil (then `default`).
function M.api_option (v, default, fname, path)
  if v ~= nil and v ~= "chat" and v ~= "responses" then
    M.spec_error(fname, path, "'chat' or 'responses' expected, got " .. util.describe(v))
  end
  return v or default
end

--- The most candidates of best_of and vote (and of a run's strategy): each
-- is a request, all built before any is sent (n = 1e9 ran until memory ran
-- out), as one call asks at most 128 choices (the API's `n`).
M.MAX_CANDIDATES = 128

-- A count from `min` (to `max`, when given), or misuse naming the field.
function M.count_of (v, default, min, fname, path, max)
  if v == nil then return default end
  if not is_integer(v) or v < min or (max and v > max) then
    M.spec_error(fname, path, expected(max and "an integer from " .. min .. " to " .. max
                                       or "an integer >= " .. min, v))
  end
  return v
end

local chat, text_of, strategy_error = judge_mod.chat, judge_mod.text_of, judge_mod.error

--- A strategy's request params `p` to send into `started` (the list of a
-- scheduler.cancel_on_error), with a stream callback that is no longer
-- called once an error (a host's watchdog) cut the run: cut between the
-- request's submit and its place in `started`, the request was not
-- canceled, and its stream callback, the caller's code, ran after the
-- interrupt. The list's mark (`started.cut`, canceled with the list's
-- requests) says so. The params returned are the strategy's own copy,
-- which engine:submit puts the request into `started` for
-- (util.submit_into): a cut between the submit and the caller's store
-- still cancels it (it ran on, billed).
function M.guarded (started, p)
  local mark = started.cut
  if mark == nil then
    mark = { cancel = function (m) m.cut = true end }
    started.cut = mark
  end
  local make = util.per_call[p.stream]   -- (callbacks of a call's own: sentences.stream's)
  if make then p = make(p) end
  local stream = p.stream
  if stream == nil or stream == true or not check.is_callable(stream) then p = merge(p)
  else p = merge(p, { stream = function (...) if not mark.cut then return stream(...) end end }) end
  util.submit_into[p] = started
  return p
end

-- Starts requests for the candidates `from`..`n` at once and waits for them all.
local function generate_each (client, params, from, n, vary, cands, fname)
  local reqs = {}
  local base_seed = is_integer(params.seed) and params.seed or 0
  for i = from, n do   -- (every vary first: one that raises leaves no request running)
    reqs[i] = merge(params, { seed = base_seed + i })
    if vary then
      local v = vary(i, reqs[i])
      -- (a number raised "attempt to index a number value" deep in aigc; a
      -- string went as the whole request, a bare prompt without the params)
      if v ~= nil and type(v) ~= "table" then
        util.argerror(fname, 1, "spec.vary: returned " .. util.describe(v)
                      .. " for candidate " .. i .. "; chat params or nil expected")
      end
      reqs[i] = v or reqs[i]
    end
  end
  -- (an interrupt or a hook's error while they run cancels them all: see cancel_on_error)
  local started = {}
  return scheduler.cancel_on_error(started, function ()
    for i = from, n do started[i] = judge_mod.send(client, M.guarded(started, reqs[i])) end
    for i = from, n do
      local res, err = await(started[i])
      cands[i] = { index = i, res = res, err = err, text = res and (text_of(res) or "") or nil,
                   parsed = res and res.parsed }
    end
    return cands
  end)
end

-- Starts n candidate requests at once and waits for them all.
-- Returns the candidates { index =, text =, res =, err = }. `fname`: the
-- strategy's name, for misuse of vary.
function M.generate (client, params, n, use_n, vary, fname)
  local cands = {}
  if not use_n then return generate_each(client, params, 1, n, vary, cands, fname) end
  local res, err = chat(client, merge(params, { n = n }))
  -- A structured reply fails with its first choice: the others may be good.
  local whole = not res and params.schema ~= nil and type(err.response) == "table" and err.response
  if whole and type(whole.choices) == "table" and type(whole.choices[1]) == "table" then res = whole end
  if not res then
    for i = 1, n do cands[i] = { index = i, err = err } end
    return cands
  end
  local got = 0
  local choices = type(res.choices) == "table" and res.choices or {}
  for i = 1, n do
    local choice = choices[i]
    if choice == nil then break end
    got = i
    if type(choice) ~= "table" then
      -- (a server's choice that is no object -- `5`, null -- raised "attempt to
      -- index" here: that candidate fails, the others compete)
      local got_what = choice == core.null and "null" or type(choice)
      cands[i] = { index = i, err = strategy_error("parse", "the reply's choices[" .. i .. "]: an object expected, got "
                                                   .. got_what, { response = res }) }
    else
      cands[i] = { index = i, res = res, choice = choice, parsed = choice.parsed,
                   text = type(choice.message) == "table" and util.content_text(choice.message.content) or "" }
    end
    if cands[i].res and params.schema ~= nil and choice.parsed == nil then   -- (a bad choice of a structured reply)
      cands[i].err = judge_mod.choice_error(res, i, params.schema)
    end
  end
  -- A server that ignores `n` (llama.cpp, Ollama: one choice) gets the
  -- missing candidates as requests of their own, as without use_n.
  if got < n then
    cands.use_n_short = got
    generate_each(client, params, got + 1, n, vary, cands, fname)
  end
  return cands
end

-- The canonical text of an answer, the key `vote` tallies it by: equal
-- answers get equal keys whatever the order of a table's keys (JSON text
-- encoded from Lua's iteration order made {"a":1,"b":2} and {"b":2,"a":1}
-- two answers) or a number's subtype (1 and 1.0 are one answer); NaN, in a
-- table, is "nan". Types stay apart ("4" is not 4). A table met again
-- inside itself (a cycle: `path` holds the tables being written) is itself.
local function canonical (v, path)
  local t = type(v)
  if t == "number" then
    if v ~= v then return "nan" end
    if v == math_floor(v) and v >= -2 ^ 63 and v < 2 ^ 63 then return string_format("%d", v) end
    return string_format("%.17g", v)
  elseif t == "string" then
    return string_format("%q", v)
  elseif t ~= "table" or path[v] then
    return t .. ":" .. tostring(v)
  end
  path[v] = true
  local items = {}
  for k, x in pairs(v) do items[#items + 1] = canonical(k, path) .. "=" .. canonical(x, path) end
  path[v] = nil
  table_sort(items)
  return "{" .. table_concat(items, ",") .. "}"
end

--- The key `vote` tallies an answer by (see canonical above).
function M.answer_key (v)
  return canonical(v, {})
end

--- What `refine` reads from a reply: its text after a reasoning model's
-- leading `<think>` block (the answer, which goes to the critic, back as
-- the assistant's turn and out as the text: the thinking was critiqued as
-- the answer before), and the thinking (nil without a block). `res.text`
-- stays the reply as it came.
-- @treturn string the answer ("" when the reply has no text)
-- @treturn string|nil the thinking
function M.answer_of (res)
  local thinking, rest = split_think(text_of(res) or "")
  return rest, thinking
end

--- The answer `vote` reads from candidate `c` by default: a structured
-- reply's parsed value, a reply that is JSON as a whole (an object or an
-- array) decoded, else `default_extract` of its text; both after a
-- reasoning model's leading `<think>` block (its last line was a
-- pretty-printed JSON reply's "}", every candidate's vote).
function M.default_answer (c, default_extract)
  if c.parsed ~= nil then return c.parsed end
  c = { text = judge_mod.verdict_of(c.text) }
  -- (trimmed by find: a lazy "^%s*(.-)%s*$" is quadratic in a reply of spaces)
  local from, to = c.text:find("^%s*[%[{]"), c.text:find("%S%s*$")
  local body = from and to and c.text:sub(from, to)
  if body then
    local ok, v = pcall(json_decode, body)
    if ok and type(v) == "table" then return v end
  end
  return default_extract(c.text)
end

-- {======================================================
-- What a strategy's calls cost together
-- =======================================================

-- The response whose usage an ended call `x` (a response, or an error) was
-- billed for: the response, or the one an error carries (a structured
-- reply that failed its schema was billed all the same); else nil.
local function billed (x)
  if type(x.usage) == "table" then return x end
  if type(x.response) == "table" and type(x.response.usage) == "table" then return x.response end
  return nil
end

local Meter = {}
Meter.__index = Meter

--- A meter of the calls a strategy made: `meter:add(res_or_err)` for each
-- call as it ends (nil is nothing: a call never made); `meter.total` is
-- `{ requests =, prompt_tokens =, completion_tokens =, total_tokens =, cache_hits = }`,
-- the strategy's `usage_total`. One response shared by several candidates
-- (`use_n`) is one request, counted once.
function M.meter ()
  return setmetatable({ seen = {}, total = { requests = 0, prompt_tokens = 0, completion_tokens = 0,
                                             total_tokens = 0, cache_hits = 0 } }, Meter)
end

function Meter:add (x)
  if type(x) ~= "table" then return self end
  local res = billed(x)
  -- (the response an error carries is the request too: a reply without usage
  -- whose use_n choices failed counted one request per failed choice)
  local key = res or (type(x.response) == "table" and x.response) or x
  if self.seen[key] then return self end
  self.seen[key] = true
  local t = self.total
  t.requests = t.requests + 1
  if res then
    usage.add_tokens(t, res.usage)
    if res.cached == true then t.cache_hits = t.cache_hits + 1 end
  end
  return self
end

--- Adds every candidate's call (and its score judge's) to the meter.
function Meter:add_candidates (cands)
  for _, c in ipairs(cands) do
    self:add(c.res or c.err)
    if type(c.judge) == "table" then self:add(c.judge.res or c.judge.err):add(c.judge.refused) end
  end
  return self
end

--- How often a race's wait looks at its entries (seconds; see race_wait).
M.RACE_LOOK = 0.1

--- The wait of a race (`strategy.race`; yields in a task, else blocks)
-- until its future `over` ends, looking at its entries every RACE_LOOK
-- seconds: an entry whose request is done while `over` still runs had its
-- on_done cut by a host's watchdog before it ended the race (the core
-- does not run a cut callback again; the race waited for ever, its other
-- entries billed to their end): it wins now, `win(i)`. All ended and none
-- done (an on_error cut before it counted): `over` is canceled.
function M.race_wait (over, reqs, outcomes, win)
  while over:status() == "running" do
    over:wait(M.RACE_LOOK)
    if over:status() ~= "running" then return end
    local live = false
    for i, r in ipairs(reqs) do
      local st = r:status()
      if st == "done" and outcomes[i].status == "running" then return win(i) end
      live = live or st == "queued" or st == "running"
    end
    if not live then over:cancel() end
  end
end

--- The end of a race (`strategy.race`, after its wait): every entry's
-- request still running is canceled, its outcome "canceled" -- also when
-- a host's watchdog cut the winner's on_done after it ended the race,
-- before it canceled them (they ran on, billed, for nobody) --, the
-- winner (its index, or nil) marked, what they all cost summed. An entry
-- that ended while its callback was cut (a watchdog in its on_error or
-- on_done: the core does not run it again) is told here: "failed" with its
-- error, or "done" -- it was left "running", and a race whose entries all
-- failed so gave "every client of the race was closed". Returns the
-- winner's response, or nil and the last such error.
function M.race_end (reqs, outcomes, winner)
  local spent, failed = M.meter(), nil
  for j, r in ipairs(reqs) do
    local canceled = r:cancel(winner and "lost the race" or "the race was canceled")
    local res, err = r:result()
    local o = outcomes[j]
    if o.status == "running" and (canceled or err) then
      o.status, o.err = canceled and "canceled" or "failed", err   -- (its on_error, later, finds it told)
      if not canceled then failed = err end
    elseif o.status == "running" and res and j ~= winner then
      o.status = "done"
    end
    spent:add(res or err)   -- (a loser that ended before its cancel was billed too)
  end
  outcomes.usage_total = spent.total
  if not winner then return nil, failed end
  local res = reqs[winner]:result()
  outcomes[winner].status, outcomes.winner, res.attempt = "won", winner, winner
  res.usage_total = spent.total
  return res
end

-- }======================================================

function M.first_error (cands)
  for _, c in ipairs(cands) do if c.err then return c.err end end
  return strategy_error("parse", "no candidate")
end

return M
