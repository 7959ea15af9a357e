--- Usage and cost totals of a client: requests, errors, retries, tokens by
-- model, cache hits and replays, and the cost from a price table.
--
-- Every request a client submits is counted when it ends, whatever waited
-- for it (a blocking call, a stream, `chat_async`, a task, the dialogue
-- layer's rounds): the client's hook (`aigc.hooks`) registers an end
-- notification on each request, so nothing depends on who reads the result.
--
-- Prices are the runner's format: `{ [model] = { input =, output =,
-- cached_input = } }` in dollars per million tokens; a model takes the
-- exact entry, else the longest entry that is a prefix of its name
-- (`gpt-4o-mini` prices `gpt-4o-mini-2024-07-18`).
--
-- @module aigc.usage

local util = require "aigc.util"
util.own_module()   -- (a misuse error is located at the caller's line, not here)

local ipairs, pairs, setmetatable, tonumber, type = ipairs, pairs, setmetatable, tonumber, type

local M = {}

local TOKEN_FIELDS = { "prompt_tokens", "completion_tokens", "total_tokens" }

-- A token count as a server reported it: a number from 0 to 2^53, else
-- `default` (0). Trusted as sent, a hostile reply's -5 lowered the totals
-- and the cost (a budget check fooled) and its 1e308 made them inf (a
-- usage() saved as JSON then raised).
local MAX_COUNT = 2 ^ 53
local function count (v, default)
  v = tonumber(v)
  if v == nil or v ~= v or v < 0 or v > MAX_COUNT then return default or 0 end
  return v
end

--- The cost of a usage at a price (`{ input =, output = }` in $ per 1M
-- tokens; `cached_input` for cached prompt tokens if the usage has them).
-- @tparam table usage
-- @tparam table|nil price
-- @treturn number|nil dollars (nil without a price)
-- @usage usage.cost({ prompt_tokens = 1000, completion_tokens = 500 }, { input = 0.15, output = 0.6 })
function M.cost (usage, price)
  if type(price) ~= "table" or type(usage) ~= "table" then return nil end
  local p = count(usage.prompt_tokens or usage.input_tokens)
  local c = count(usage.completion_tokens or usage.output_tokens)
  local cached = 0
  local d = usage.prompt_tokens_details or usage.input_tokens_details
  if type(d) == "table" and price.cached_input then cached = math.min(count(d.cached_tokens), p) end
  return ((p - cached) * (tonumber(price.input) or 0) + cached * (tonumber(price.cached_input) or 0)
          + c * (tonumber(price.output) or 0)) / 1e6
end

local PRICE_FIELDS = { input = true, output = true, cached_input = true }

--- What is wrong with a price table, or nil: each entry is `[model] =
-- { input =, output =, cached_input = }`, each field absent or a finite
-- number >= 0 (a price of "x" counted as 0, or a negative one, gave a
-- cost that was wrong without a word).
-- @param prices
-- @treturn[1] nil when the table is right
-- @treturn[2] string the path of what is wrong, from the table (`["gpt-4o"].input`)
-- @treturn[2] string the message ("a number >= 0 expected, got string")
-- @return[2] the wrong value
-- @usage local path, why = usage.prices_problem { ["gpt-4o"] = { input = -1 } }   -- '["gpt-4o"].input', ...
function M.prices_problem (prices)
  if type(prices) ~= "table" then
    return "", util.expected("table ({ [model] = { input =, output = } })", prices), prices
  end
  for model, p in pairs(prices) do
    if type(model) ~= "string" then
      return util.path("", model), "a model name (a string) expected as the key, got " .. type(model), model
    end
    local at = util.path("", model)
    if type(p) ~= "table" then return at, util.expected("table ({ input =, output =, cached_input = })", p), p end
    for k, v in pairs(p) do
      if not PRICE_FIELDS[k] then return util.path(at, k), "unknown field (input, output, cached_input)", k end
      if type(v) ~= "number" or v ~= v or v < 0 or v == math.huge then   -- (NaN too)
        return at .. "." .. k, util.expected(v == math.huge and "a finite number >= 0" or "a number >= 0", v), v
      end
    end
  end
  return nil
end

--- The price of a model in a price table (exact name, else the longest
-- name that is a prefix of the model).
-- @tparam table prices
-- @tparam string model
-- @treturn table|nil
-- @usage local price = usage.price(prices, "gpt-4o-mini-2024-07-18")
function M.price (prices, model)
  if type(prices) ~= "table" or type(model) ~= "string" then return nil end
  if prices[model] then return prices[model] end
  local best, len = nil, 0
  for name, p in pairs(prices) do
    if type(name) == "string" and #name > len and model:sub(1, #name) == name then best, len = p, #name end
  end
  return best
end

--- Adds the token counts of `u` (a response's usage; Responses API names
-- too) into `into`.
-- @tparam table into
-- @tparam table|nil u
function M.add_tokens (into, u)
  if type(u) ~= "table" then return end
  local p = count(u.prompt_tokens or u.input_tokens)
  local c = count(u.completion_tokens or u.output_tokens)
  into.prompt_tokens = (into.prompt_tokens or 0) + p
  into.completion_tokens = (into.completion_tokens or 0) + c
  into.total_tokens = (into.total_tokens or 0) + count(u.total_tokens, p + c)
end

-- A copy of a model's cache-hit tokens (less `minus`'s), or nil.
local function copy_tokens (h, minus)
  if not h then return nil end
  minus = minus or {}
  local t = {}
  for _, k in ipairs(TOKEN_FIELDS) do t[k] = h[k] - (minus[k] or 0) end
  return t
end

--- The tokens of a model's totals that were charged for: its tokens less
-- those of its cache hits (`cache_hit_tokens`), which cost nothing.
-- @tparam table m an entry of `usage().models`
-- @treturn table `prompt_tokens`, `completion_tokens`, `total_tokens`
-- @usage local cost = usage.cost(usage.billed(u.models["gpt-4o-mini"]), price)
function M.billed (m)
  local h, t = m.cache_hit_tokens or {}, {}
  for _, k in ipairs(TOKEN_FIELDS) do t[k] = (m[k] or 0) - (h[k] or 0) end
  return t
end

local Totals = {}
Totals.__index = Totals

--- New, empty totals.
-- @tparam[opt] table prices
-- @treturn table totals (`record`, `snapshot`, `reset`, `set_prices`)
function M.new (prices)
  -- (prices = 5 was taken: the first priced reply raised inside the count)
  if prices ~= nil then
    local path, why = M.prices_problem(prices)
    if path then util.field_error("new", 1, "prices" .. path, why) end
  end
  local t = setmetatable({ prices = prices }, Totals)
  t:reset()
  return t
end

-- The model names counted apart: a name is a reply's to choose, and a
-- server naming a new one in each reply grew `models` for as long as the
-- client lived (a bot's memory). Past MAX_MODELS names, or for a name over
-- MAX_NAME bytes, a reply counts as model "?".
local MAX_MODELS, MAX_NAME = 256, 200

function Totals:reset ()
  self.requests, self.errors, self.retries, self.cache_hits, self.replayed, self.no_usage = 0, 0, 0, 0, 0, 0
  self.errors_by_kind, self.models, self.cost, self.model_count = {}, {}, nil, 0
  for _, k in ipairs(TOKEN_FIELDS) do self[k] = 0 end
end

function Totals:set_prices (prices)
  self.prices = prices
end

-- The objects of the replies that cost tokens: chat, completions, Responses.
local GENERATIONS = { ["chat.completion"] = true, text_completion = true, response = true }

--- Counts one ended request: `res` or `nil, err`; `how` is nil, "cache"
-- (answered from the response cache: no request sent) or "replay".
function Totals:record (res, err, how)
  self.requests = self.requests + 1
  if how == "cache" then self.cache_hits = self.cache_hits + 1
  elseif how == "replay" then self.replayed = self.replayed + 1 end
  -- (Runs once per request: each C call here -- type, tonumber -- costs
  -- ~300 instructions on Lua 5.4, so each is made once, and none for
  -- what is absent: no retries, no price table.)
  local ended = res or err
  local ended_is_table = type(ended) == "table"
  if ended_is_table then
    local retries = ended.retries
    if retries ~= 0 and retries ~= nil and tonumber(retries) then self.retries = self.retries + retries end
  end
  if not res then
    self.errors = self.errors + 1
    local kind = type(err) == "table" and type(err.kind) == "string" and err.kind or "error"
    self.errors_by_kind[kind] = (self.errors_by_kind[kind] or 0) + 1
    return
  end
  local u = ended_is_table and res.usage   -- (res is `ended` here)
  if type(u) ~= "table" then
    -- (a stream sent with include_usage = false, a server that sends no
    -- usage: its tokens were missing from the totals and the cost without
    -- a sign; counted, a budget check can tell the totals fall short)
    -- A reply without an `object` (a server that sends neither) is known by
    -- its shape: `choices` (chat, completions) or `output` (Responses).
    local object = ended_is_table and res.object
    if ended_is_table and (GENERATIONS[object] or (object == nil and (res.choices ~= nil or res.output ~= nil))) then
      self.no_usage = self.no_usage + 1
    end
    return
  end
  local model = res.model
  if type(model) ~= "string" or #model > MAX_NAME then model = "?" end
  local m = self.models[model]
  if not m and self.model_count >= MAX_MODELS then
    model = "?"
    m = self.models[model]
  end
  if not m then
    m = { requests = 0, prompt_tokens = 0, completion_tokens = 0, total_tokens = 0 }
    self.models[model] = m
    self.model_count = self.model_count + 1
  end
  m.requests = m.requests + 1
  -- (M.add_tokens, read once for both sums; `count` inline: a Lua call
  -- less for each, ~200 instructions on Lua 5.4)
  local p = tonumber(u.prompt_tokens or u.input_tokens)
  if p == nil or p ~= p or p < 0 or p > MAX_COUNT then p = 0 end
  local c = tonumber(u.completion_tokens or u.output_tokens)
  if c == nil or c ~= c or c < 0 or c > MAX_COUNT then c = 0 end
  local t = tonumber(u.total_tokens)
  if t == nil or t ~= t or t < 0 or t > MAX_COUNT then t = p + c end
  m.prompt_tokens, m.completion_tokens, m.total_tokens = m.prompt_tokens + p, m.completion_tokens + c,
                                                         m.total_tokens + t
  self.prompt_tokens, self.completion_tokens, self.total_tokens = self.prompt_tokens + p,
                                                                  self.completion_tokens + c, self.total_tokens + t
  -- a cache hit costs nothing: its tokens are counted (and kept apart, so
  -- that a run pricing the totals again charges them nothing), not its price
  if how == "cache" then
    local h = m.cache_hit_tokens
    if not h then
      h = { prompt_tokens = 0, completion_tokens = 0, total_tokens = 0 }
      m.cache_hit_tokens = h
    end
    h.prompt_tokens, h.completion_tokens, h.total_tokens = h.prompt_tokens + p, h.completion_tokens + c,
                                                           h.total_tokens + t
    return
  end
  if self.prices == nil then return end
  local named = type(res.model) == "string" and res.model or model   -- (priced by its name, counted as "?")
  local cost = M.cost(u, M.price(self.prices, named))
  if cost then
    m.cost = (m.cost or 0) + cost
    self.cost = (self.cost or 0) + cost
  end
end

--- A plain copy of the totals (the caller may keep or change it).
-- @treturn table
function Totals:snapshot ()
  local s = { requests = self.requests, errors = self.errors, retries = self.retries,
              cache_hits = self.cache_hits, replayed = self.replayed, no_usage = self.no_usage, cost = self.cost,
              errors_by_kind = {}, models = {} }
  for _, k in ipairs(TOKEN_FIELDS) do s[k] = self[k] end
  for k, n in pairs(self.errors_by_kind) do s.errors_by_kind[k] = n end
  for name, m in pairs(self.models) do
    s.models[name] = { requests = m.requests, prompt_tokens = m.prompt_tokens,
                       completion_tokens = m.completion_tokens, total_tokens = m.total_tokens, cost = m.cost,
                       cache_hit_tokens = copy_tokens(m.cache_hit_tokens) }
  end
  return s
end

--- The difference `after - before` of two snapshots (what happened in
-- between: a run's own share of a shared client).
-- @tparam table after
-- @tparam table before
-- @treturn table
function M.diff (after, before)
  -- (a snapshot left out, `diff(c:usage())`: "attempt to index a nil value" from inside)
  if type(after) ~= "table" then util.argerror("diff", 1, util.expected("table (a client:usage() snapshot)", after)) end
  if type(before) ~= "table" then
    util.argerror("diff", 2, util.expected("table (a client:usage() snapshot)", before))
  end
  local d = { errors_by_kind = {}, models = {} }
  for _, k in ipairs { "requests", "errors", "retries", "cache_hits", "replayed", "no_usage", "prompt_tokens",
                       "completion_tokens", "total_tokens" } do
    d[k] = (after[k] or 0) - (before[k] or 0)
  end
  if after.cost then d.cost = after.cost - (before.cost or 0) end
  for k, n in pairs(after.errors_by_kind or {}) do
    local delta = n - ((before.errors_by_kind or {})[k] or 0)
    if delta > 0 then d.errors_by_kind[k] = delta end
  end
  for name, m in pairs(after.models or {}) do
    local b = (before.models or {})[name] or {}
    if m.requests > (b.requests or 0) then
      d.models[name] = { requests = m.requests - (b.requests or 0),
                         prompt_tokens = m.prompt_tokens - (b.prompt_tokens or 0),
                         completion_tokens = m.completion_tokens - (b.completion_tokens or 0),
                         total_tokens = m.total_tokens - (b.total_tokens or 0),
                         cost = m.cost and m.cost - (b.cost or 0) or nil,
                         cache_hit_tokens = copy_tokens(m.cache_hit_tokens, b.cache_hit_tokens) }
    end
  end
  return d
end

return M
