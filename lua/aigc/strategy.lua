--- Dialogue strategies: generate, evaluate, select.
--
-- Each strategy is a function of one table that returns its result and the
-- evidence behind it (the candidates, the votes, the steps, the attempts),
-- or `nil, err` and whatever evidence there is. They block like
-- `client:chat`; inside a task (`client:spawn`) their waits yield, so a
-- frame loop keeps running. Requests that can go together go together:
-- `best_of` and `vote` send their candidates at once (n non-blocking
-- requests, or one request with `n =` when `use_n = true`), `race` starts
-- every entry and cancels the losers.
--
-- `params` are chat params (a string is one user message) and may hold a
-- toolset or a schema: the candidates then run the tool loop or come back
-- structured. Responses API params (`input`, no `messages`) work in
-- `best_of` (without `use_n`), `vote`, `refine`, `fallback` and `race`;
-- judges and critics then ask over the Responses API too, unless their
-- `api = "chat"` says otherwise (`route`'s classifier: `api = "responses"`).
--
-- What a whole strategy cost is its `usage_total`, `{ requests =,
-- prompt_tokens =, completion_tokens =, total_tokens =, cache_hits = }`
-- summed over every call it made (candidates, the missing ones `use_n`
-- asked again, failed ones, judges, critiques, fallbacks, a race's losers;
-- a reply that failed its schema was billed too): on the evidence (the
-- candidates, steps, attempts, outcomes, `route`'s info), also when the
-- strategy failed, and on the result (`best_of`'s winner, `vote`'s,
-- `refine`'s final, the response of `fallback` and `race`). A `route`
-- handler that is a function counts its own calls.
--
-- @module aigc.strategy
-- @usage
-- local strategy = aigc.strategy
-- local best, candidates = strategy.best_of {
--   client = client, n = 4, params = "Write a haiku about autumn.",
--   judge = { prompt = "Which haiku is the most vivid?" },
-- }
-- print(best.text, best.score)

local util = require "aigc.util"
local scheduler = require "aigc.task"
local future = require "aigc.future"
local judge_mod = require "aigc.judge"
local shared = require "aigc.strategy_shared"

local ipairs, next, pairs, tostring, type = ipairs, next, pairs, tostring, type
local string_lower = string.lower
local table_concat, table_sort = table.concat, table.sort
local merge, is_a, expected = util.merge, util.is_a, util.expected

local spec_error, check_spec, need_client, need_function, chat_params, api_option, count_of, generate, first_error =
  shared.spec_error, shared.check_spec, shared.need_client, shared.need_function, shared.chat_params,
  shared.api_option, shared.count_of, shared.generate, shared.first_error
local answer_key, default_answer, meter = shared.answer_key, shared.default_answer, shared.meter
local chat, answer_of, task_of, strategy_error = judge_mod.chat, shared.answer_of, judge_mod.task_of, judge_mod.error

util.own_module()

local M = {}

--- The judge's instruction when ranking (the candidates follow it).
M.RANK_PROMPT = "You are judging candidate answers to a task. Pick the best candidate: the most helpful, "
  .. "accurate, complete and well written."
--- The judge's instruction when scoring one candidate.
M.SCORE_PROMPT = "You are judging an answer to a task for helpfulness, accuracy, completeness and style."
--- The critic's instruction in `refine`.
M.CRITIQUE_PROMPT = "Review the answer below for errors, omissions and unclear wording. List each problem "
  .. "briefly, or reply exactly NO ISSUES if it needs no change."
--- The instruction that asks for a revision in `refine`.
M.REVISE_PROMPT = "Revise your answer to address this critique. Reply with the revised answer only."
--- The classifier's instruction in `route` (the labels follow it).
M.CLASSIFY_PROMPT = "Classify the input into exactly one of the categories. Reply with the category name only."




-- {======================================================
-- best_of
-- =======================================================

-- Scores each candidate of `ok` with the caller's `score`. A score that
-- cannot be compared (NaN compares false with anything, so the first
-- candidate would win) ranks last: no score, and why.
local function score_each (score, ok)
  for _, c in ipairs(ok) do
    local v = score(c.text, c.res, c)
    if v ~= nil and type(v) ~= "number" then
      c.score_error = "the score is a " .. type(v) .. ", not a number"
    elseif v ~= v then
      c.score_error = "the score is NaN"
    else
      c.score = v
    end
  end
end

--- Generates `n` candidates at once and keeps the best.
-- @tparam table spec
--
--  - `client` (required), `n` (default 4), `params` (chat params or a string),
--  - `score = function(text, res, candidate) -> number`: scores each candidate, or
--  - `judge = { client =, prompt =, params =, mode = "rank" | "score", api = }`: an LLM
--    judge (client defaults to `client`, api "chat" or "responses" to the
--    API of `params`); "rank" (default) asks once for the
--    best candidate (score 1, the others 0: the number the reply leads with, alone or said
--    to be the best -- "2 is the best, candidate 1 is too short" --, else the one its last
--    verdict word gives, else the one it names first: rules in aigc.judge), "score" asks for a 1-10 score per
--    candidate, all at once,
--  - `use_n = true`: one request with `n =` instead of n requests (a server
--    that returns fewer choices gets the missing candidates asked one by
--    one, as without use_n, and `candidates.use_n_short` is the count it gave);
--    otherwise candidate i gets `seed = (params.seed or 0) + i`,
--    and `vary = function(i, params) -> params` can change more.
-- @treturn[1] table best: the winning candidate `{ index =, text =, score =, res = }`
-- (ties go to the lowest index)
-- @treturn[1] table candidates: all of them, each with `score` (or `err`); one
-- cut short (`incomplete` = "length", "content_filter"...) competes only when all were;
-- a score function's result that is not a number, or NaN, ranks last: the
-- candidate has no `score` and `score_error` says why;
-- `candidates.judge` holds the rank judge's reply (none when one candidate was left to rank)
-- @treturn[2] nil
-- @treturn[2] aigc.error err
-- @treturn[2] table candidates
-- @usage
-- local best, all = strategy.best_of { client = client, n = 3, params = "Name a color.",
--   score = function (text) return -#text end }   -- the shortest
-- for _, c in ipairs(all) do print(c.index, c.score, c.text) end
function M.best_of (spec)
  check_spec(spec, "best_of")
  local client = need_client(spec.client, "best_of", "client")
  local params = chat_params(spec.params, "best_of", "params", client)
  local n = count_of(spec.n, 4, 1, "best_of", "n", shared.MAX_CANDIDATES)
  local score, judge = need_function(spec.score, "best_of", "score"), spec.judge
  if score == nil and judge == nil then
    spec_error("best_of", "score", "a function (or spec.judge) expected, got nil")
  end
  if judge ~= nil then
    if type(judge) ~= "table" then spec_error("best_of", "judge", expected("table", judge)) end
    judge = merge(judge)
    judge.client = need_client(judge.client or client, "best_of", "judge.client")
    if judge.mode ~= nil and judge.mode ~= "rank" and judge.mode ~= "score" then
      spec_error("best_of", "judge.mode", "'rank' or 'score' expected, got " .. util.describe(judge.mode))
    end
    judge.api = api_option(judge.api, judge_mod.api_of(params), "best_of", "judge.api")
    shared.extra_params(judge.params, "best_of", "judge.params", judge.client, judge.api)
    shared.need_string(judge.prompt, "best_of", "judge.prompt")
  end
  need_function(spec.vary, "best_of", "vary")

  if spec.use_n and judge_mod.is_responses(params) then
    spec_error("best_of", "use_n", "the Responses API has no n (leave use_n out: n requests go at once)")
  end
  local cands = generate(client, params, n, spec.use_n, spec.vary, "best_of")
  -- Replies cut short (max_tokens, a content filter) compete only when no
  -- other did: a story cut mid-sentence is no best story, nor the shortest.
  local ok, cut = {}, {}
  for _, c in ipairs(cands) do
    c.incomplete = not c.err and judge_mod.cut_reason(c) or nil
    if not c.err then local list = c.incomplete and cut or ok; list[#list + 1] = c end
  end
  if #ok == 0 then ok = cut end
  -- What the whole strategy cost: the candidates, their score judges, the rank judge.
  -- (`refused`: the rank judge's call refused for its temperature, asked again)
  local function over (best, err, judged, refused)
    cands.usage_total = meter():add_candidates(cands):add(judged):add(refused).total
    if not best then return nil, err, cands end
    best.usage_total = cands.usage_total
    return best, cands
  end
  if #ok == 0 then return over(nil, first_error(cands)) end

  if score then
    score_each(score, ok)
  elseif judge.mode == "score" then
    local done, err = judge_mod.score(judge, params.model, task_of(params), ok, M.SCORE_PROMPT)
    if not done then return over(nil, err) end
  elseif #ok == 1 then   -- (nothing to rank: a judge's failure would lose the one answer)
    ok[1].score = 1
  else
    local verdict, err = judge_mod.rank(judge, params.model, task_of(params), ok, M.RANK_PROMPT)
    if not verdict then return over(nil, err, err) end
    cands.judge = verdict
  end
  local best
  for _, c in ipairs(ok) do
    if c.score ~= nil and (best == nil or c.score > best.score) then best = c end
  end
  if not best then return over(nil, strategy_error("parse", "no candidate got a score")) end
  return over(best, nil, cands.judge and cands.judge.res, cands.judge and cands.judge.refused)
end

-- }======================================================


-- {======================================================
-- vote
-- =======================================================

local trim = judge_mod.trim
local function dot_or_bang (b) return b == 46 or b == 33 end

--- The default answer of a candidate for `vote`: its last non-empty line,
-- trimmed, lower-cased, without a final period.
-- @tparam string text
-- @treturn string|nil
-- @usage strategy.default_extract("Let me think.\nThe answer is 4.") --> "the answer is 4"
function M.default_extract (text)
  local last
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    if line:find("%S") then last = line end
  end
  if not last then return nil end
  -- (trimmed by judge.trim's loops: "^%s*(.-)%s*$" and "[%.!]+$" are
  -- quadratic in a long run of spaces or dots inside the line)
  return judge_mod.trim(string_lower(trim(last)), dot_or_bang)
end


--- Self-consistency: asks `n` times at once and takes the majority answer.
-- @tparam table spec `client`, `n` (default 5), `params`, `extract =
-- function(text, res) -> answer | nil` (nil or NaN abstains: NaN sets the
-- candidate's `answer_error`; default: a structured reply's `parsed` value,
-- a reply that is a JSON object or array as a whole decoded, else
-- `default_extract`, after a leading `<think>` block), `use_n`, `vary` as in `best_of`. Answers are compared
-- by value: tables whatever the order of their keys, 1 and 1.0 alike
-- @treturn[1] table the winner `{ answer =, count =, total =, share =, text =, index =, tally = }`:
-- `total` counts the votes cast, `tally` lists `{ answer =, count = }` most votes first
-- (ties: the answer seen first wins)
-- @treturn[1] table candidates, each with its `answer`; a reply cut short
-- (finish_reason "length" or "content_filter", a Responses reply "incomplete")
-- casts no vote, its `incomplete` says why (all cut: an error of kind "incomplete")
-- @treturn[2] nil
-- @treturn[2] aigc.error err
-- @treturn[2] table candidates
-- @usage
-- local win = strategy.vote { client = client, n = 5, params = "What is 17 * 3? End with the number.",
--   extract = function (text) return text:match("(%d+)%D*$") end }
-- print(win.answer, win.count .. "/" .. win.total)
function M.vote (spec)
  check_spec(spec, "vote")
  local client = need_client(spec.client, "vote", "client")
  local params = chat_params(spec.params, "vote", "params", client)
  local n = count_of(spec.n, 5, 1, "vote", "n", shared.MAX_CANDIDATES)
  local extract = need_function(spec.extract, "vote", "extract")
  need_function(spec.vary, "vote", "vary")
  if spec.use_n and judge_mod.is_responses(params) then
    spec_error("vote", "use_n", "the Responses API has no n (leave use_n out: n requests go at once)")
  end
  local cands = generate(client, params, n, spec.use_n, spec.vary, "vote")
  local tally, order, total = {}, {}, 0
  local cut
  for _, c in ipairs(cands) do
    -- A reply cut short (max_tokens, a content filter) casts no vote: its
    -- last line is not its answer ("17 + 25 =" would vote 25).
    c.incomplete = not c.err and judge_mod.cut_reason(c) or nil
    cut = cut or c.incomplete
    if not c.err and not c.incomplete then
      local a
      if extract then a = extract(c.text, c.res) else a = default_answer(c, M.default_extract) end
      -- NaN is no answer (it equals nothing, not even itself): it abstains.
      if a ~= a then c.answer_error, a = "the answer is NaN", nil end
      if a ~= nil then
        c.answer = a
        total = total + 1
        local key = answer_key(a)
        local entry = tally[key]
        if not entry then
          entry = { answer = a, count = 0, first = c }
          tally[key] = entry
          order[#order + 1] = entry
        end
        entry.count = entry.count + 1
      end
    end
  end
  cands.usage_total = meter():add_candidates(cands).total
  if total == 0 then
    local answered = false
    for _, c in ipairs(cands) do if not c.err and not c.incomplete then answered = true end end
    local err = answered and strategy_error("parse", "no candidate gave an answer")
      or cut and strategy_error("incomplete", "every reply was cut short (" .. cut .. ")", { reason = cut })
      or first_error(cands)
    return nil, err, cands
  end
  local list = {}
  for i, e in ipairs(order) do list[i] = { answer = e.answer, count = e.count, rank = i } end
  table_sort(list, function (a, b)
    if a.count ~= b.count then return a.count > b.count end
    return a.rank < b.rank
  end)
  for _, e in ipairs(list) do e.rank = nil end
  local top = tally[answer_key(list[1].answer)]
  return {
    answer = top.answer, count = top.count, total = total, share = top.count / total,
    text = top.first.text, index = top.first.index, tally = list, usage_total = cands.usage_total,
  }, cands
end

-- }======================================================


-- {======================================================
-- refine
-- =======================================================

-- The critique opens with NO ISSUES or LGTM (markup before it aside; after a reasoning
-- model's leading <think> block): not "no issues" anywhere ("1. The date is wrong. Otherwise no issues." is work).
local function default_done (critique)
  local l = string_lower(judge_mod.verdict_of(critique)):gsub("^[%s%p]+", "")
  return l:find("^no issues") ~= nil or l:find("^lgtm") ~= nil
end

-- The task's params continued: the draft as the assistant's answer, then
-- `text` (Responses params: in their input items).
local function follow_up (params, draft, text)
  local p = merge(params)
  local key = judge_mod.is_responses(params) and "input" or "messages"
  local msgs, prior = {}, params[key]
  if type(prior) == "string" then prior = { { role = "user", content = prior } } end
  for i, m in ipairs(prior) do msgs[i] = m end
  msgs[#msgs + 1] = { role = "assistant", content = draft }
  msgs[#msgs + 1] = { role = "user", content = text }
  p[key] = msgs
  return p
end

-- What a `critique` or `revise` function returned: chat params, or the
-- text to send. Anything else (nil: a branch that forgot its return) is
-- misuse: it went to the model as the text "nil".
local function made_text (v, path)
  if type(v) == "table" or type(v) == "string" then return v end
  if type(v) == "number" then return tostring(v) end
  spec_error("refine", path, "the function returned " .. util.describe(v) .. "; a string or chat params expected")
end

--- Draft, critique, revise: up to `rounds` critique/revision rounds, until
-- the critic finds nothing to change.
-- @tparam table spec
--
--  - `client` (required), `params` (the task, as chat params or a string),
--  - `rounds` (default 2),
--  - `critique`: the critic's instruction (a string, default `CRITIQUE_PROMPT`), or
--    `function(task, draft) -> string | params`,
--  - `revise`: the revision instruction (a string, default `REVISE_PROMPT`), or
--    `function(task, draft, critique) -> string | params` (a function that returns
--    anything else, nil too, raises),
--  - `critic = { client =, params =, api = }` another model for the critique
--    (api "chat" or "responses", default the API of `params`),
--  - `done = function(critique_text) -> boolean` (default: it begins "no issues" or "LGTM", after a `<think>` block).
-- @treturn[1] table final `{ text =, res =, rounds =, incomplete = }` (rounds: revisions made;
-- incomplete: "length", "content_filter"... when the final text was cut short; texts: after a `<think>` block)
-- @treturn[1] table steps `{ {stage = "draft" | "critique" | "revision", text =, res =, thinking = }, ... }`
-- @treturn[2] nil
-- @treturn[2] aigc.error err
-- @treturn[2] table steps so far
-- @usage
-- local final, steps = strategy.refine { client = client, params = "Explain TCP slow start in 3 sentences.",
--                                        rounds = 2 }
-- print(final.text, #steps)
function M.refine (spec)
  check_spec(spec, "refine")
  local client = need_client(spec.client, "refine", "client")
  local params = chat_params(spec.params, "refine", "params", client)
  local rounds = count_of(spec.rounds, 2, 0, "refine", "rounds")
  local critique, revise = spec.critique or M.CRITIQUE_PROMPT, spec.revise or M.REVISE_PROMPT
  for path, v in pairs { critique = critique, revise = revise } do
    if type(v) ~= "string" and type(v) ~= "function" then
      spec_error("refine", path, expected("string or function", v))
    end
  end
  local done = need_function(spec.done, "refine", "done") or default_done
  local critic = spec.critic or {}
  if type(critic) ~= "table" then spec_error("refine", "critic", expected("table", critic)) end
  local critic_client = need_client(critic.client or client, "refine", "critic.client")
  local critic_api = api_option(critic.api, judge_mod.api_of(params), "refine", "critic.api")
  shared.extra_params(critic.params, "refine", "critic.params", critic_client, critic_api)

  local steps, spent = {}, meter()
  steps.usage_total = spent.total   -- (summed as each call ends: also when one fails)
  local task = task_of(params)
  local res, err = chat(client, params)
  spent:add(res or err)
  if not res then return nil, err, steps end
  local draft, thinking = answer_of(res)
  steps[1] = { stage = "draft", text = draft, res = res, thinking = thinking }
  local made = 0
  for _ = 1, rounds do
    local cp
    if type(critique) == "function" then
      local v = made_text(critique(task, draft), "critique")
      cp = type(v) == "table" and chat_params(v, "refine", "critique", critic_client)
        or judge_mod.ask(critic_api, nil, v)
    else
      cp = judge_mod.ask(critic_api, nil, table_concat({ critique, "", "Task:", task, "", "Answer:", draft }, "\n"))
    end
    cp = merge({ model = params.model }, critic.params, cp)
    local cres, cerr = chat(critic_client, cp)
    spent:add(cres or cerr)
    if not cres then return nil, cerr, steps end
    local ctext, cthinking = answer_of(cres)
    steps[#steps + 1] = { stage = "critique", text = ctext, res = cres, thinking = cthinking }
    if done(ctext) then break end
    local rp
    if type(revise) == "function" then
      local v = made_text(revise(task, draft, ctext), "revise")
      rp = type(v) == "table" and merge(params, chat_params(v, "refine", "revise", client))
        or follow_up(params, draft, v)
    else
      rp = follow_up(params, draft, revise .. "\n\nCritique:\n" .. ctext)
    end
    local rres, rerr = chat(client, rp)
    spent:add(rres or rerr)
    if not rres then return nil, rerr, steps end
    draft, thinking = answer_of(rres)
    res, made = rres, made + 1
    steps[#steps + 1] = { stage = "revision", text = draft, res = rres, thinking = thinking }
  end
  -- (a last text cut short by max_tokens or a filter came back as any other)
  return { text = draft, res = res, rounds = made, usage_total = spent.total,
           incomplete = judge_mod.cut_reason { res = res } }, steps
end

-- }======================================================


-- {======================================================
-- fallback and race
-- =======================================================

-- The entries of a fallback/race spec: { client =, params = } each.
local function entries_of (spec, fname)
  local common = spec.params ~= nil and chat_params(spec.params, fname, "params", spec.client) or nil
  local list, hole = {}, util.hole_problem(spec)
  if hole then util.field_error(fname, 1, "spec", hole) end
  for i, e in ipairs(spec) do
    local entry, path = nil, "[" .. i .. "]"
    if is_a(e, "aigc.client") then
      entry = { client = e }
    elseif type(e) == "table" then
      entry = { client = e.client or spec.client, model = e.model, params = e.params, name = e.name }
    else
      spec_error(fname, path, expected("aigc.client or table", e))
    end
    need_client(entry.client, fname, path .. ".client")
    local own = entry.params ~= nil and chat_params(entry.params, fname, path .. ".params", entry.client) or nil
    local p = merge(common, own)
    if entry.model then p.model = entry.model end
    if p.messages == nil and p.input == nil then
      spec_error(fname, path .. ".params.messages", expected("list of messages (or spec.params)", nil))
    end
    entry.params, entry.index = p, i
    list[i] = entry
  end
  if #list == 0 then util.argerror(fname, 1, "at least one entry (a client or { client =, params = }) expected") end
  return list
end

--- Tries each entry in order until one succeeds: clients, models or
-- providers as fallbacks for each other.
-- @tparam table spec a list of entries (each an `aigc.client` or
-- `{ client =, model =, params = }`), plus `params` (common to all),
-- `client` (for entries that name none) and `should_fallback = function(err, entry) -> boolean`
-- (default: always; return false to stop at errors such as a bad request)
-- @treturn[1] table res the first success (`res.attempt` is its entry's index)
-- @treturn[1] table attempts `{ {index =, ok =, err =, model =}, ... }` in order
-- @treturn[2] nil
-- @treturn[2] aigc.error the last error
-- @treturn[2] table attempts
-- @usage
-- local res, attempts = strategy.fallback {
--   params = { messages = msgs },
--   { client = primary, model = "gpt-4o" },
--   { client = backup, model = "llama-3.1-8b" },
-- }
function M.fallback (spec)
  check_spec(spec, "fallback")
  local list = entries_of(spec, "fallback")
  local should = need_function(spec.should_fallback, "fallback", "should_fallback")
  local attempts, spent = {}, meter()
  attempts.usage_total = spent.total
  local last_err
  for i, e in ipairs(list) do
    local res, err = chat(e.client, e.params)
    spent:add(res or err)
    attempts[i] = { index = i, ok = res ~= nil, err = err, model = e.params.model, name = e.name }
    if res then
      res.attempt, res.usage_total = i, spent.total
      return res, attempts
    end
    last_err = err
    if should and not should(err, e) then break end
  end
  return nil, last_err, attempts
end

-- Inside an aigc callback of one of its clients (outside a task), the race
-- is waited for on its entries' requests, each in turn for a moment: a
-- request's wait drives its client from inside a callback, where waiting on
-- the race's future (no request of its own to drive: a step of the loop)
-- raised "client:step() called from inside an aigc callback" -- vote,
-- best_of... worked there, race did not. An entry is waited for until its
-- callback has told how it ended (a request done may still have to deliver).
local function in_callback (loops)
  for _, loop in ipairs(loops) do
    if not loop.closed and loop.engine:in_callback() then return true end
  end
  return false
end

local function wait_entries (over, reqs, outcomes)
  local idle = 0   -- (passes over requests all ended whose callbacks did not come: give up)
  while over:status() == "running" and idle < 3 do
    local waited, live = false, false
    for i, r in ipairs(reqs) do
      if outcomes[i].status == "running" then
        local st = r:status()
        waited, live = true, live or st == "queued" or st == "running"
        r:wait(0.02)
        if over:status() ~= "running" then return end
      end
    end
    if not waited then return end
    idle = live and 0 or idle + 1
  end
end

--- Starts every entry at once; the first success wins and the others are
-- canceled. Failures do not win: the race goes on until an entry succeeds
-- or all have failed.
-- @tparam table spec entries and `params`, `client` as in `fallback`
-- @treturn[1] table res the winner's response (`res.attempt` is its index)
-- @treturn[1] table outcomes `{ {index =, status = "won" | "canceled" | "failed" | "done", err =}, ... }`,
-- `outcomes.winner` the winner's index
-- @treturn[2] nil
-- @treturn[2] aigc.error the last error
-- @treturn[2] table outcomes
-- @usage
-- local res, outcomes = strategy.race { params = "Hi", { client = a }, { client = b } }
-- print(res.text, "from entry", outcomes.winner)
function M.race (spec)
  check_spec(spec, "race")
  local list = entries_of(spec, "race")
  local outcomes, reqs, loops, seen = {}, {}, {}, {}
  for i, e in ipairs(list) do
    outcomes[i] = { index = i, status = "running", model = e.params.model, name = e.name }
    if not seen[e.client] then seen[e.client] = true; loops[#loops + 1] = e.client._loop end
  end
  -- Settled by the entries' callbacks; waited for in the loop of the task
  -- this runs in (which drives every client of the race meanwhile), else
  -- by turning every client's loop.
  -- Closing an entry's client (in a callback, a finalizer) ends that
  -- entry, not the race: outside a task `over` is no client's to cancel.
  local owner = scheduler.current_client()
  local home = owner or list[1].client
  local over = future.new(home._loop, { label = "race", drivers = loops, unowned = owner == nil })
  local left, winner, last_err = #list, nil, nil
  -- An interrupt or a hook's error while the entries run cancels them all
  -- (and the race's future), then propagates: see cancel_on_error.
  local started = { over }
  scheduler.cancel_on_error(started, function ()
    for i, e in ipairs(list) do
      local p = merge(e.params)
      local user_done, user_error = p.on_done, p.on_error
      p.on_done = function (res)
        if winner == nil then
          -- (the race's end first: a watchdog that cuts the rest still ends it; see race_end)
          over:resolve(i)
          winner = i
          outcomes[i].status, outcomes.winner, res.attempt = "won", i, i
          for j, r in ipairs(reqs) do
            if j ~= i and r:cancel("lost the race") then outcomes[j].status = "canceled" end
          end
        elseif outcomes[i].status == "running" then
          outcomes[i].status = "done"
        end
        if user_done then user_done(res) end
      end
      p.on_error = function (err)
        if outcomes[i].status == "running" then
          -- (a loser canceled by the winner's on_done cut before it said so,
          -- or by the race's end: "canceled" whichever of the two tells it)
          local lost = (winner ~= nil or over:status() ~= "running") and type(err) == "table"
                       and err.kind == "canceled"
          outcomes[i].status, outcomes[i].err, last_err = lost and "canceled" or "failed", err, err
          left = left - 1
          if left == 0 and winner == nil then over:reject(err) end
        end
        if user_error then user_error(err) end
      end
      reqs[i] = judge_mod.send(e.client, shared.guarded(started, p))
      started[i + 1] = reqs[i]
    end
    if not owner and in_callback(loops) then wait_entries(over, reqs, outcomes)
    else shared.race_wait(over, reqs, outcomes, function (i) winner = winner or i; over:resolve(i) end) end
  end)
  over:cancel()   -- (pending only if every client was closed meanwhile)
  -- (the winner's on_done cut after it ended the race: the rest is done here)
  local res, failed = shared.race_end(reqs, outcomes, winner or over:result())
  if res then return res, outcomes end
  return nil, last_err or failed or strategy_error("canceled", "every client of the race was closed"), outcomes
end

-- }======================================================


-- {======================================================
-- route
-- =======================================================

-- Checks a router's spec: returns its routes' labels (in the order shown
-- to the model) and the classifier.
local function check_router (spec, fname)
  check_spec(spec, fname)
  local routes = spec.routes
  if type(routes) ~= "table" or next(routes) == nil then
    spec_error(fname, "routes", expected("non-empty table", routes))
  end
  local labels = {}
  if spec.labels ~= nil then
    if type(spec.labels) ~= "table" then spec_error(fname, "labels", expected("list", spec.labels)) end
    for i, l in ipairs(spec.labels) do
      if routes[l] == nil then spec_error(fname, "labels[" .. i .. "]", "'" .. tostring(l) .. "' has no route") end
      labels[i] = l
    end
  else
    for k in pairs(routes) do
      if type(k) ~= "string" then
        spec_error(fname, "routes", "route names must be strings, got " .. util.describe(k))
      end
      labels[#labels + 1] = k
    end
    table_sort(labels)
  end
  local classify = spec.classify
  if type(classify) == "table" then
    classify = merge(classify)
    classify.client = need_client(classify.client or spec.client, fname, "classify.client")
    classify.api = api_option(classify.api, "chat", fname, "classify.api")
    shared.need_string(classify.prompt, fname, "classify.prompt")
  elseif type(classify) ~= "function" then
    spec_error(fname, "classify", expected("function or { client =, prompt =, params = }", classify))
  end
  if spec.default ~= nil and routes[spec.default] == nil then
    spec_error(fname, "default", "'" .. tostring(spec.default) .. "' is not a route")
  end
  for name, h in pairs(routes) do
    local path = "routes." .. tostring(name)
    if type(h) ~= "function" and type(h) ~= "table" then
      spec_error(fname, path, expected("function, conversation or chat params", h))
    end
    if type(h) == "table" and not is_a(h, "aigc.conversation") then
      need_client(h.client or spec.client, fname, h.client and path .. ".client" or "client")
      api_option(h.api, nil, fname, path .. ".api")
    end
  end
  return labels, classify
end

-- Hands `input` to the route `h`: returns its result and info, or nil, err, info.
local function run_route (spec, h, input, info, spent)
  if type(h) == "function" then
    local out, herr = h(input, info)
    -- (nil and no error came back as `nil, info`: the info table where a
    -- caller's `local res, err = ...` reads the error)
    if out == nil then
      return nil, herr or strategy_error("route", "the route '" .. tostring(info.route) .. "' returned nothing"), info
    end
    return out, info
  elseif is_a(h, "aigc.conversation") then
    local text, res = h:say(input)
    spent:add(res)
    if not text then return nil, res, info end
    info.res = res
    return text, info
  end
  local p = merge(h)
  local c = p.client or spec.client
  -- Responses params (`input` items, or `api = "responses"`) get the input
  -- as their last input item, chat params as their last message.
  local key = (p.api or judge_mod.api_of(p)) == "responses" and "input" or "messages"
  p.client, p.api = nil, nil
  local prior, msgs = p[key], {}
  if type(prior) == "string" then prior = { { role = "user", content = prior } } end
  for i, m in ipairs(prior or {}) do msgs[i] = m end
  if p.system then table.insert(msgs, 1, { role = "system", content = p.system }); p.system = nil end
  msgs[#msgs + 1] = { role = "user", content = input }
  p[key] = msgs
  local res, rerr = chat(c, p)
  spent:add(res or rerr)
  if not res then return nil, rerr, info end
  return res, info
end

-- The error when nothing routes the input and there is no default: what
-- the classifier said (its reply, shortened and scrubbed of the client's
-- secrets, or the label it returned) and the routes there are.
local function no_route (spec, classify, label, reply)
  local client = type(classify) == "table" and classify.client or spec.client
  local names = {}
  for k in pairs(spec.routes) do names[#names + 1] = tostring(k) end
  table_sort(names)
  local said
  if reply ~= nil then said = "the classifier's reply " .. judge_mod.quote(reply, nil, client) .. " names no route"
  elseif label == nil then said = "the classifier named no route"
  elseif type(label) ~= "string" and type(label) ~= "number" then   -- (not its address: "table: 0x55...")
    said = "the classifier returned a " .. type(label) .. ", not a route name"
  else said = "no route for " .. judge_mod.quote(tostring(label)) end
  local routes = judge_mod.shorten(table_concat(names, ", "), 200)
  local err = strategy_error("route", said .. " (routes: " .. routes .. ")")
  return is_a(client, "aigc.client") and util.scrub(client, err) or err
end

local function make_router (spec, fname)
  local labels, classify = check_router(spec, fname)
  local routes = spec.routes
  return function (input)
    local info, spent = {}, meter()
    info.usage_total = spent.total   -- (the classifier's and the route's calls; a function's are its own)
    -- (the model's classifier reads text: misuse named 'classify', a
    -- function the caller never called; a classify function takes anything)
    if type(classify) == "table" and type(input) ~= "string" and type(input) ~= "number" then
      util.field_error(fname, 1, fname == "route" and "spec.input" or "input", expected("string", input))
    end
    local label, err
    if type(classify) == "function" then
      label, err = classify(input)
      if label == nil and err ~= nil then return nil, err, info end
    else
      local reply, res, refused
      label, reply, res, refused = judge_mod.classify(classify, labels, input, M.CLASSIFY_PROMPT)
      spent:add(res or reply):add(refused)
      if label == nil and res == nil then return nil, reply, info end
      info.label, info.response = reply, res
    end
    local name = label
    if name == nil or routes[name] == nil then name = spec.default end
    if name == nil then return nil, no_route(spec, classify, label, info.label), info end
    info.route = name
    return run_route(spec, routes[name], input, info, spent)
  end
end

--- Classifies the input and hands it to the matching route.
-- @tparam table spec
--
--  - `input` (required for `route`),
--  - `classify = function(input) -> route_name | nil, err`, or
--    `classify = { client =, prompt =, params =, api = }`: the model picks one of the
--    route names (the reply's exact label, else the first label it mentions),
--    asked over `api` "chat" (default) or "responses",
--  - `routes = { name = handler, ... }`: a handler is
--    `function(input, info) -> result | nil, err` (nil alone is an error of
--    kind "route"), a conversation (`conv:say(input)`,
--    the result is the reply text), or chat params `{ client =, system =,
--    messages =, ... }` (the input is appended as the user message; the
--    result is the response) or Responses params (`input =` items, or
--    `api = "responses"`: the input is appended as the last input item),
--  - `default`: the route when the label matches none, `labels`: the order
--    of the labels shown to the model, `client`: for handlers that name none.
-- @return[1] the handler's result
-- @treturn[1] table info `{ route =, label = (the classifier's reply), response = }`
-- @treturn[2] nil
-- @treturn[2] aigc.error err (kind "route" when no route matches and there is no default)
-- @treturn[2] table info
-- @usage
-- local res, info = strategy.route {
--   input = "My parcel never arrived", client = client,
--   classify = { client = client },
--   routes = { orders = { system = "You handle orders." }, other = { system = "You are helpful." } },
--   default = "other",
-- }
-- print(info.route, res.text)
function M.route (spec)
  check_spec(spec, "route")
  if spec.input == nil then spec_error("route", "input", expected("string", nil)) end
  local router = make_router(spec, "route")
  return router(spec.input)
end

--- A reusable `route`: returns `function(input) -> result, info`.
-- @tparam table spec as `route`, without `input`
-- @treturn function
-- @usage
-- local handle = strategy.router { classify = classify, routes = routes, default = "other" }
-- local out, info = handle "How do I reset my password?"
function M.router (spec)
  local router = make_router(spec, "router")
  return router
end

-- }======================================================

return M
