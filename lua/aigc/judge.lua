--- Asking a model to judge: rank or score candidates, classify an input.
--
-- Internal: the LLM calls the strategies (`aigc.strategy`) make, and the
-- helpers they share. Not part of the API.
--
-- @module aigc.judge
-- @local

local core = require "aigc.core"
local util = require "aigc.util"
local scheduler = require "aigc.task"
local adapter = require "aigc.adapter"
local split_think = require("aigc.schema").split_think

local ipairs, pairs, pcall, tonumber, type = ipairs, pairs, pcall, tonumber, type
local string_format, string_lower = string.format, string.lower
local table_concat = table.concat
local await, merge = scheduler.await, util.merge
local argerror, expected, is_a = util.argerror, util.expected, util.is_a

util.own_module()

local M = {}

-- The text of a message's content (parts joined).
local function content_text (c)
  if type(c) == "string" then return c end
  if type(c) ~= "table" then return "" end
  local parts = {}
  for _, p in ipairs(c) do
    if type(p) == "table" and type(p.text) == "string" then parts[#parts + 1] = p.text
    elseif type(p) == "string" then parts[#parts + 1] = p end
  end
  return table_concat(parts, " ")
end

--- Whether params are the Responses API's (`input`, no `messages`).
function M.is_responses (params)
  return adapter.of(params) == adapter.responses
end

--- The API of params: "responses" or "chat".
function M.api_of (params)
  return adapter.of(params).api
end

--- Params of `api` ("chat" or "responses") asking `text` as one user
-- message: `base` (copied) without its own messages or input, `text` instead.
function M.ask (api, base, text)
  local p = merge(base)
  p.messages, p.input = nil, nil
  return adapter[api].ask(p, text)
end

--- The task the params ask for: the last user message's text (Responses:
-- the input string, or its last user item).
function M.task_of (params)
  local msgs = params.messages or params.input
  if type(msgs) == "string" then return msgs end
  for i = #msgs, 1, -1 do
    if msgs[i].role == "user" then return content_text(msgs[i].content) end
  end
  return ""
end

--- The text of a response's first choice, or nil.
function M.text_of (res)
  if type(res) ~= "table" then return nil end
  if type(res.text) == "string" then return res.text end
  local c = res.choices and res.choices[1]
  if type(c) == "table" and type(c.message) == "table" then return util.content_text(c.message.content) end
  return nil
end

-- The part of a judge's reply its verdict is read from: after a leading
-- `<think>...</think>` block, where a reasoning model (DeepSeek-R1, QwQ on
-- Ollama or vLLM without a reasoning parser) weighs scores and candidates
-- before it answers ("Maybe 6/10? ... </think> 8/10" scored 6).
local function verdict_of (reply)
  local _, rest = split_think(reply)
  return rest
end

M.verdict_of = verdict_of

-- `text` on one line (runs of white space become one space), at most
-- `max` bytes of it cut at a UTF-8 character's start; and whether it was cut.
local function one_line (text, max)
  local s = text:gsub("%s+", " ")
  if #s <= max then return s, false end
  local cut = max
  while cut > 0 and (s:byte(cut + 1) or 0) >= 0x80 and (s:byte(cut + 1) or 0) < 0xC0 do cut = cut - 1 end
  return s:sub(1, cut), true
end

--- `text` for a message: on one line, at most `max` bytes (default 80),
-- with "..." when it was cut.
-- @tparam string text
-- @tparam[opt] integer max
-- @treturn string
function M.shorten (text, max)
  local s, cut = one_line(text, max or 80)
  return cut and s .. "..." or s
end

--- `text` quoted (`%q`) for a message, shortened as `shorten` does; with
-- `client`, scrubbed of its secrets before the cut (a key the cut splits,
-- the closing quote after it, kept a piece of 8 to 11 bytes no later scrub
-- of the message finds).
-- @tparam string text
-- @tparam[opt] integer max
-- @tparam[opt] aigc.client client
-- @treturn string
function M.quote (text, max, client)
  if client then text = util.scrubbed_text(client, text) end
  local s, cut = one_line(text, max or 80)
  return string_format("%q", s) .. (cut and "..." or "")
end

--- An error of kind `kind` with `message` and `fields`.
function M.error (kind, message, fields)
  local t = { kind = kind, message = message }
  for k, v in pairs(fields or {}) do t[k] = v end
  return core.error(t)
end
local strategy_error = M.error

--- Starts one request: a chat, or a response for Responses params.
function M.send (client, p)
  return adapter.of(p).send(client, p)
end

--- The error of choice `i` of a structured chat reply `res` (a refusal,
-- cut short, not valid for `schema`), its `response` `res`.
function M.choice_error (res, i, schema)
  local _, err = adapter.chat.parse({ choices = { res.choices[i] } }, { schema = schema })
  if err then err.response = res end
  return err
end

--- Why a candidate's reply (`c.choice`, else `c.res`'s first) was cut short
-- ("length", "content_filter", a Responses reason), or nil.
function M.cut_reason (c)
  local res = c.res
  local choice = c.choice or (type(res.choices) == "table" and res.choices[1])
  local why = type(choice) == "table" and choice.finish_reason
  if why == "length" or why == "content_filter" then return why end
  if res.status == "incomplete" then   -- (the Responses API)
    local d = res.incomplete_details
    return type(d) == "table" and type(d.reason) == "string" and d.reason or "incomplete"
  end
  return nil
end

--- The error for a call on a client closed while a strategy ran (by a
-- callback, a finalizer, another task), or nil: that call ends as a close
-- ends a request in flight, `nil, err` of kind "canceled", and the
-- strategy with it (fallback goes on to its next entry) -- not a raise of
-- misuse at the strategy's line, which called a client open at the time.
function M.closed (client)
  local loop = rawget(client, "_loop")
  -- (`loop.closed` is set once the engine's close has returned; a task
  -- waiting on one of its requests resumes inside it, when only the
  -- engine knows: its methods raise once it is closed)
  if loop and (loop.closed or not pcall(loop.engine.active, loop.engine)) then
    return strategy_error("canceled", "the client was closed")
  end
  return nil
end

--- One blocking chat or response (yields inside a task).
function M.chat (client, p)
  local closed = M.closed(client)
  if closed then return nil, closed end
  return await(M.send(client, p))
end

-- A judge asks with `temperature = 0` (the same verdict for the same
-- candidates), which OpenAI's reasoning models refuse: 400, param
-- "temperature", "Unsupported value: 'temperature' does not support 0 with
-- this model. Only the default (1) value is supported." The models whose
-- server refused it, per client, so that a judge leaves it out from then on.
local default_temperature_only = setmetatable({}, { __mode = "k" })
-- The params whose temperature 0 is the judge's own (not the user's).
local own_temperature = setmetatable({}, { __mode = "k" })

local function refuses_temperature (err)
  if type(err) ~= "table" or (err.status ~= 400 and err.status ~= 422) then return false end
  return err.param == "temperature" or string_lower(tostring(err.message or "")):find("temperature", 1, true) ~= nil
end

--- Params `p` of a judge's call for `client`, given `temperature = 0`
-- unless `p` has one of the user's, or the client's server refused it for
-- `p.model`. Returns `p`.
function M.steady (client, p)
  local refused = default_temperature_only[client]
  if p.temperature == nil and not (refused and refused[tostring(p.model)]) then
    p.temperature, own_temperature[p] = 0, true
  end
  return p
end

--- Whether a judge's call of `p` (made by `steady`) failed with `err`
-- because the server takes no temperature 0 for its model: then it is
-- remembered for the client, `p` loses it, and the caller sends `p` again.
function M.refused_steady (client, p, err)
  if not (own_temperature[p] and p.temperature == 0 and refuses_temperature(err)) then return false end
  local refused = default_temperature_only[client] or {}
  default_temperature_only[client] = refused
  refused[tostring(p.model)] = true
  p.temperature, own_temperature[p] = nil, nil
  return true
end

--- A judge's blocking call (`steady` params): again without the
-- temperature when the server refused it. Returns res (or nil, err) and
-- the refused call's error, if any (a call made: a strategy counts it).
function M.judge_chat (client, p)
  local res, err = M.chat(client, p)
  if res or not M.refused_steady(client, p, err) then return res, err end
  local refused = err
  res, err = M.chat(client, p)
  return res, err, refused
end

-- The judge's params: its own, with the task's model unless it names one,
-- over its API (`judge.api`, default chat).
local function judge_params (judge, model, content)
  local p = M.ask(judge.api or "chat", merge({}, judge.params), content)
  if p.model == nil then p.model = model end
  return M.steady(judge.client, p)
end

-- Checks the arguments rank, score and classify share: the judge (or
-- classifier) `j`, `{ client = aigc.client, ... }`, argument 1; a list
-- (candidates, labels) argument `list_at`; the task (or input) a string,
-- argument `text_at`; the prompt a string unless `j` has its own.
local function check_args (fname, j, list, list_at, text, text_at, prompt, prompt_at)
  if type(j) ~= "table" then argerror(fname, 1, expected("table", j)) end
  if not is_a(j.client, "aigc.client") then
    util.field_error(fname, 1, fname == "classify" and "classifier.client" or "judge.client",
                     expected("aigc.client", j.client))
  end
  if type(list) ~= "table" then argerror(fname, list_at, expected("table", list)) end
  if type(text) ~= "string" and type(text) ~= "number" then   -- (a number joins the prompt too)
    argerror(fname, text_at, expected("string", text))
  end
  if type(j.prompt) ~= "string" and type(prompt) ~= "string" then
    argerror(fname, prompt_at, expected("string", prompt))
  end
end

-- The candidate of `ok` numbered `num` (a string of digits), or nil.
local function numbered (num, ok)
  local n = tonumber(num)
  for _, c in ipairs(ok) do if c.index == n then return c end end
  return nil
end

-- The candidate of `ok` that `text` names first: after "Candidate N"
-- ("Of the 3 candidates, candidate 2 is best" names 2, not 3), else its
-- first number that is a candidate's index.
-- The N of the first "Candidate N" (also "candidate: #N"), as
-- text:match("[Cc]andidate%s*[#:]?%s*#?(%d+)") reads it, step by step: that
-- pattern backtracked its two runs of white space against each other,
-- quadratic in a long run after "candidate" (a judge's reply of 20 kB of
-- spaces took 7 s). No shorter run can succeed where the longest fails.
local function candidate_number (text)
  local pos = 1
  while true do
    local _, e = text:find("[Cc]andidate", pos)
    if not e then return nil end
    local p = text:match("^%s*()", e + 1)
    p = text:match("^[#:]?()", p)
    p = text:match("^%s*()", p)
    local num = text:match("^#?(%d+)", p)
    if num then return num end
    pos = e + 1
  end
end

local function named (text, ok)
  for num in (candidate_number(text) or text):gmatch("%d+") do
    local c = numbered(num, ok)
    if c then return c end
  end
  return nil
end

-- The candidate a verdict's sentence names: the number right after the
-- word ("Answer: 2 (candidate 1 has a typo)", "I prefer 2 over candidate
-- 1", "The best is 3"), else as `named`.
local function named_after (sentence, ok)
  local num = sentence:match("^[%s:=%-]*#?(%d+)") or sentence:match("^%s+is%s+#?(%d+)")
  return num and numbered(num, ok) or named(sentence, ok)
end

-- Words that give a verdict: the candidate named after one of them, in its
-- sentence, is the judge's choice.
local VERDICT = { "answer", "best", "winner", "choice", "choose", "chose", "pick", "prefer", "select", "verdict" }

-- Whether `words` (after "N is") call N the answer: a verdict word or
-- "better" ("is the best", "is my pick", "is better"), not negated ("is
-- not the best").
local function declares (words)
  words = string_lower(words)
  if words:find("%f[%a]not%f[%A]") or words:find("n't", 1, true) then return false end
  if words:find("%f[%a]better%f[%A]") then return true end
  for _, w in ipairs(VERDICT) do if words:find("%f[%a]" .. w) then return true end end
  return false
end

-- The candidate a verdict word's clause names as its subject, before the
-- word: "2 is the best", "candidate 2 was my pick" (`rclause`: the clause
-- up to the word, reversed). The reasons after the word name others
-- ("Candidate 2 is the best, candidate 1 is too short" chose 1, the one
-- turned down). (Read reversed, its spaces made one: anchored patterns,
-- linear time; unanchored ones were quadratic in a run of digits and spaces.)
local function subject (rclause, ok)
  local r = rclause:gsub("%s+", " ")
  local words, num = r:match("^([%a ']-) si [%*_`\"']*(%d+)")
  if not num then words, num = r:match("^([%a ']-) saw [%*_`\"']*(%d+)") end
  if not num or words:find("%f[%a]ton%f[%A]") or words:find("t'n", 1, true) then return nil end
  return numbered(num:reverse(), ok)
end

-- The candidate a reply leads with, and how: "alone" (the first line is
-- its number and nothing else: "2", "**2**", "2."), "declared" (the words
-- after it say it is the answer: "2 is the best, candidate 1 is too
-- short"), "reasons" (a separator then words: "2: candidate 1 is too
-- short", "2 - ...", "2, because ...", "2 (...)"); nil when the reply does
-- not lead with a candidate's number. (The line is taken first: two runs of
-- spaces side by side in one pattern were read in time quadratic in their
-- length.)
local function leading (reply, ok)
  local line = reply:match("^%s*([^\n]*)")
  local num, rest = line:match("^[%*_#`\"']*#?(%d+)[%*_`\"']*(.*)$")
  local c = num and numbered(num, ok)
  if not c then return nil end
  if rest:find("^[%.!]?[%*_`\"']*%s*$") then return c, "alone" end
  local words = rest:match("^%s+is%s+([^,.;!?]*)") or rest:match("^%s+was%s+([^,.;!?]*)")
  if words and declares(words) then return c, "declared" end
  if rest:find("^%s*[:,%(%-]") or rest:find("^%s*\226\128[\147\148]") then return c, "reasons" end
  return nil
end

-- The candidate a rank judge's reply chooses. The rules, first that
-- applies:
--  1. a reply that leads with a candidate's number alone on its line, or
--     with words saying it is the answer ("2 is the best, candidate 1 is
--     too short"): that number. The judge is asked for the number only;
--     the reasons after it name the others ("2\n\nCandidate 1 is too
--     short." and "2 is the best, candidate 1 is too short" chose 1, the
--     candidate the judge turned down);
--  2. the candidate its last verdict word ("answer", "best", "prefer"...)
--     gives: the subject of that clause ("candidate 3 is the best"), else
--     the one named after the word ("Answer: 2", "I prefer 2", "the best
--     is candidate 3"). A judge that talks before it answers names other
--     candidates too: "Candidates 1 and 2 are fine, I prefer 2" chose 1;
--  3. a number it leads with before a separator and its reasons ("2:
--     candidate 1 is too short", "2 - ..."): weaker than a verdict word, as
--     a list leads so too ("1: too short. 2: vivid. Best: 2");
--  4. the candidate it names first (`named`).
local function choice_of (reply, ok)
  reply = verdict_of(reply)
  local lead, how = leading(reply, ok)
  if lead and how ~= "reasons" then return lead end
  local low = string_lower(reply)
  local chosen, at = nil, 0
  for _, w in ipairs(VERDICT) do
    local from = 1
    while true do
      local s, e = low:find("%f[%a]" .. w .. "%a*", from)
      if not s then break end
      from = e + 1
      -- (its sentence, of 200 bytes at most each way: a reply of many
      -- verdict words would be read again from each, quadratic)
      local c = s > at and (subject(low:sub(s > 200 and s - 200 or 1, s - 1):reverse():match("^[^\n.!?;,]*"), ok)
                            or named_after(low:sub(e + 1, e + 200):match("^[^\n.!?;]*"), ok))
      if c then chosen, at = c, s end
    end
  end
  return chosen or lead or named(reply, ok)
end
M.choice_of = choice_of

--- Asks one judge to name the best candidate among `ok` for `task`; sets
-- their scores 1 (chosen) / 0. Returns the verdict, or nil, err.
function M.rank (judge, model, task, ok, prompt)
  check_args("rank", judge, ok, 4, task, 3, prompt, 5)
  local lines = { judge.prompt or prompt,
                  "Reply with the number of the best candidate only.", "", "Task:", task, "" }
  for _, c in ipairs(ok) do
    lines[#lines + 1] = "Candidate " .. c.index .. ":"
    lines[#lines + 1] = c.text
    lines[#lines + 1] = ""
  end
  local res, err, refused = M.judge_chat(judge.client, judge_params(judge, model, table_concat(lines, "\n")))
  if not res then return nil, err end
  local reply = M.text_of(res) or ""
  local chosen = choice_of(reply, ok)
  if not chosen then
    return nil, util.scrub(judge.client, strategy_error("parse", "the judge's reply names no candidate: "
                               .. M.quote(reply, 80, judge.client), { response = res }))
  end
  for _, c in ipairs(ok) do c.score = c == chosen and 1 or 0 end
  return { text = reply, res = res, refused = refused }
end

-- The scale, as judges write it: 1-10, 1 (en or em dash) 10 -- the first
-- number of "On a scale of 1<en dash>10, 8" was 1 --, 1 to 10, between 1 and 10.
local SCALES = { "%f[%w]1%s*%-%s*10%f[%D]", "%f[%w]1%s*\226\128[\147\148]%s*10%f[%D]", "%f[%w]1%s+to%s+10%f[%D]",
                 "%f[%w]1%s+and%s+10%f[%D]" }

-- The score a judge's reply gives (after a leading <think> block: `verdict_of`,
-- as for the choice of a rank judge and a classifier's label): "8/10" or "8 out of 10" first, else its
-- first number -- not the scale the prompt gave ("On a scale of 1 to 10,
-- I'd give it 8" is 8, not 1), or nil. A score on another scale ("85/100",
-- "4 out of 5") is brought to 10 (as given, 85 beat every 9/10); a number
-- outside 0-10 is no score.
-- The first "N SEP D" of r (as r:match("(%-?%d+%.?%d*)%s*/%s*(%d+)%f[%D]")
-- finds it for SEP "/"): N and D, or nil. That pattern, tried at every
-- byte, read each run of digits again from each of its digits and
-- backtracked over its "%d+%.?%d*" (cubic in the run: a reply of 20-digit
-- numbers took 5 s a MB). Here each separator is found once and N read
-- backwards from it, greedily, in the reversed text (`rev`: the same
-- shape reversed, "%d*%.?%d+%-?"), so every byte is read a bounded number of times.
local function given_over (r, sep, after, spaces)
  local rev, from = nil, 1
  while true do
    local at = r:find(sep, from, true)
    if not at then return nil end
    from = at + 1
    local d = r:match(after, at)
    if d then
      rev = rev or r:reverse()
      local q = #r - at + 2   -- (the byte before `at`, in rev)
      local sp = rev:match(spaces .. "()", q)
      local n = sp and rev:match("^%d*%.?%d+%-?", sp)
      if n then return n:reverse(), d end
    end
  end
end

local function score_of (reply)
  reply = verdict_of(reply)
  -- A run of over 20 digits is no score: it becomes one "#" first, as the
  -- patterns below (digits, an optional fraction, a "/") took time cubic in
  -- such a run: 13 s for 1,200 digits, a model's degenerate reply.
  local r = reply:gsub("%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d+", "#")
  for _, scale in ipairs(SCALES) do r = r:gsub(scale, " ") end
  local n, d = given_over(r, "/", "^/%s*(%d+)%f[%D]", "^%s*")
  if not n then n, d = given_over(r, "out", "^out%s+of%s+(%d+)%f[%D]", "^%s+") end
  n = n or r:match("%-?%d+%.?%d*")
  local v = util.number(n and (n:gsub("%.$", "")))   -- ("8." ends a sentence: 8; "8.5" under any locale)
  if v and d and d ~= "10" then v = v * 10 / tonumber(d) end
  if v == nil or not (v >= 0 and v <= 10) then return nil end
  return v
end
--- The score a judge's reply gives ("8/10", "8 out of 10", "On a scale of
-- 1 to 10, 8" are 8), or nil: the runner's judge assertions read it so too.
-- @function score_of
M.score_of = score_of

-- Starts the judge's requests into `reqs`, waits for them all; returns
-- how many scored, and the last error.
local function score_all (reqs, judge, model, task, ok, prompt)
  local closed = M.closed(judge.client)   -- (the judge's own client, closed while the candidates ran)
  if closed then return 0, closed end
  local params = {}
  for i, c in ipairs(ok) do
    local content = table_concat({ judge.prompt or prompt, "", "Task:", task, "",
      "Score the candidate from 1 to 10. Reply with the number only.", "", "Candidate:", c.text }, "\n")
    params[i] = judge_params(judge, model, content)
    reqs[i] = M.send(judge.client, params[i])
  end
  local scored = 0
  local last_err
  for i, c in ipairs(ok) do
    local res, err = await(reqs[i])
    local refused
    if not res and M.refused_steady(judge.client, params[i], err) then
      refused, reqs[i] = err, M.send(judge.client, params[i])
      res, err = await(reqs[i])
    end
    if res then
      local reply = M.text_of(res) or ""
      c.judge = { text = reply, res = res, refused = refused }
      c.score = score_of(reply)
      if c.score then scored = scored + 1
      else
        last_err = util.scrub(judge.client, strategy_error("parse", "the judge's reply gives no score from 0 to 10: "
                                  .. M.quote(reply, 80, judge.client)))
      end
    else
      c.judge = { err = err, refused = refused }
      last_err = err
    end
  end
  return scored, last_err
end

--- Asks the judge to score every candidate of `ok`, all at once. Returns
-- true, or nil, err when none got a score.
function M.score (judge, model, task, ok, prompt)
  check_args("score", judge, ok, 4, task, 3, prompt, 5)
  -- (an interrupt or a hook's error while they run cancels them all)
  local reqs = {}
  local scored, last_err = scheduler.cancel_on_error(reqs, score_all, reqs, judge, model, task, ok, prompt)
  if scored == 0 then return nil, last_err end
  return true
end

local function escape (s) return (s:gsub("%p", "%%%0")) end

local function is_space (b) return b == 32 or (b >= 9 and b <= 13) end

--- `s` without its leading white space, nor its trailing bytes for which
-- `tail(byte)` is true (default: white space): `util.trim` (byte loops: a
-- lazy `"^%s*(.-)%s*$"` took 49 s for a degenerate reply line of 100 kB).
-- @function trim
M.trim = util.trim

-- White space, "." and "!": what ends a classifier's label.
local function label_end (b) return b == 46 or b == 33 or is_space(b) end

-- The label a classifier reply names: the exact reply, else the first label
-- that occurs in it as a word.
local function find_label (reply, labels)
  reply = verdict_of(reply)
  local r = string_lower(M.trim(reply, label_end))
  for _, l in ipairs(labels) do if string_lower(l) == r then return l end end
  local best, at
  for _, l in ipairs(labels) do
    local s = string_lower(reply):find("%f[%w_]" .. escape(string_lower(l)) .. "%f[^%w_]")
    if s and (at == nil or s < at) then best, at = l, s end
  end
  return best
end

--- Asks the classifier `c` (`{ client =, prompt =, params =, api = }`) which of
-- `labels` the input is: the label (or nil), the reply and the response;
-- or nil, err.
function M.classify (c, labels, input, prompt)
  check_args("classify", c, labels, 2, input, 3, prompt, 4)
  local content = table_concat({ c.prompt or prompt,
    "Categories: " .. table_concat(labels, ", "), "Input: " .. input }, "\n")
  local p = M.ask(c.api or "chat", merge({}, c.params), content)
  local res, err, refused = M.judge_chat(c.client, M.steady(c.client, p))
  if not res then return nil, err, nil, refused end
  local reply = M.text_of(res) or ""
  return find_label(reply, labels), reply, res, refused
end

return M
