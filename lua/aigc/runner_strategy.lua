--- How the dataset runner (`aigc.runner`) answers a case: the plain call
-- (chat or Responses), a strategy function (what it gives checked: a
-- script's, not a server's, so anything may come back), or a built-in
-- strategy (`{ best_of = N, judge = }`, `{ vote = N }`); and the words of
-- an error that is not the library's. Internal: the runner calls it.
--
-- @module aigc.runner_strategy

local core = require "aigc.core"
local util = require "aigc.util"
local runfile = require "aigc.runfile"

local ipairs, pcall, tostring, type = ipairs, pcall, tostring, type
local json_encode = core.json.encode
local run_error = runfile.run_error

util.own_module()

local M = {}

--- The text of an error a strategy or a check raised or returned: an aigc
-- error's message; any other value as every aigc callback error words it
-- (`util.value_text`: its __tostring, its own message, or what it is; no
-- __index runs). Never tostring()'s "table: 0x55a9...", which a result
-- line showed.
-- @param err
-- @treturn string
function M.error_words (err)
  if util.is_error(err) then return err.message end
  return util.value_text(err)
end

-- A field of a strategy's own error value, read under pcall: nil when its
-- __index raises (it stopped the whole run) or gives another type.
local function field (err, k, want)
  local ok, v = pcall(function () return err[k] end)
  return ok and type(v) == want and v or nil
end

-- A strategy's error that is neither a string nor an aigc error (a table
-- of its own, a number): an aigc error with its words (`error_words`), its
-- `kind`, `status`, `retry_after` and `retryable` when it has them (a 503
-- of its own is retried as a server's), the value kept as `value`. Read
-- as it was by the rate limiter, the retry and the result line, an error
-- whose __index raised stopped the whole run.
local function strategy_error (err)
  if err == nil or type(err) == "string" or util.is_error(err) then return err end
  return core.error { kind = field(err, "kind", "string") or "error", message = M.error_words(err),
                      status = field(err, "status", "number"), retry_after = field(err, "retry_after", "number"),
                      retryable = field(err, "retryable", "boolean"), value = err }
end

-- What a strategy function gave, as a call's `res, err`. A result that is
-- no table (42) reached the rate limiter's `res.headers` and stopped the
-- whole run with "attempt to index a number value"; nothing at all failed
-- the case with "the call failed: nil"; a text that is not UTF-8 (a reply
-- never is: the decoder refuses it) stopped the run from the result line's
-- encoder. Each fails its case now.
local function strategy_result (res, err)
  if res ~= nil and type(res) ~= "table" then
    return nil, run_error("the strategy returned " .. util.describe(res)
                          .. "; a result table, or nil and an error, expected")
  elseif res == nil and err == nil then
    return nil, run_error("the strategy returned nil and no error")
  end
  local ok, why = true, nil
  if res and type(res.text) == "string" then ok, why = pcall(json_encode, res.text) end
  if not ok then
    why = tostring(why)
    return nil, run_error("the strategy returned a text JSON cannot hold ("
                          .. (why:match("invalid UTF%-8[^)]*") or why) .. ")")
  end
  if res == nil then return nil, strategy_error(err) end
  return res, err
end

--- Runs a case's request (or strategy): a res-like table, or nil, err.
-- @tparam table run the runner's run (`strategy`, `client`, `api`)
-- @tparam table params the case's request params
-- @tparam table c the case
function M.call (run, params, c)
  local s = run.strategy
  if s == nil then
    if run.api == "responses" then return run.client:respond(params) end
    return run.client:chat(params)
  end
  if type(s) == "function" then return strategy_result(s(run.client, params, c)) end
  local strategy = require "aigc.strategy"
  if s.best_of then
    local best, cands = strategy.best_of { client = run.client, n = s.best_of, params = params,
                                           judge = { prompt = s.judge } }
    if not best then return nil, cands end
    local list = {}
    for _, x in ipairs(cands) do list[#list + 1] = x.res; if x.judge then list[#list + 1] = x.judge.res end end
    if cands.judge then list[#list + 1] = cands.judge.res end
    return { text = best.text, model = best.res and best.res.model, usage_list = list,
             headers = best.res and best.res.headers, strategy = { chosen = best.index, score = best.score } }
  end
  local win, cands = strategy.vote { client = run.client, n = s.vote, params = params }
  if not win then return nil, cands end
  local list = {}
  for _, x in ipairs(cands) do list[#list + 1] = x.res end
  return { text = win.text, usage_list = list, headers = cands[1] and cands[1].res and cands[1].res.headers,
           strategy = { answer = win.answer, count = win.count, total = win.total } }
end

return M
