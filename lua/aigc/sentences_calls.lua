--- The stream callbacks of `aigc.sentences` (`sentences.callback`,
-- `sentences.stream`): deltas in, whole sentences out, through a splitter
-- that belongs to one call. Kept apart from the splitter itself
-- (sentences.lua), which gives them the function that makes splitters.
--
-- One params table may serve several calls at once (two NPCs sharing a
-- config table, two tasks, a retry while the first call still ends): the
-- params' callbacks kept one splitter, so their deltas were mixed into
-- each other's sentences. The stream callback of `stream`'s params is
-- registered in `util.per_call`, and the client makes each request's
-- callbacks anew from it, around a splitter of its own (client.lua's submit).

local check = require "aigc.check"
local util = require "aigc.util"

util.own_module()   -- (a misuse here was located at this file: `sentences.callback(5)`)

local ipairs, pairs, setmetatable, type = ipairs, pairs, setmetatable, type

local M = {}

local function check_fn (fn, fname, argn)
  if not check.is_callable(fn) then util.argerror(fname, argn, util.expected("function", fn)) end
end
M.check_fn = check_fn

-- Calls each piece of `list` with on_piece(piece, ends_sentence, is_code).
local function give (sp, list, on_piece)
  local ends, code = sp.ends, sp.code
  for k = 1, #list do on_piece(list[k], ends[k], code[k]) end
end

-- on_delta, flush and drop around a new splitter (`make()`).
local function callbacks (make, on_sentence)
  local sp = make()
  local function on_delta (delta)
    if delta then give(sp, sp:push(delta), on_sentence) end
  end
  local function flush ()
    give(sp, sp:finish(), on_sentence)
  end
  return on_delta, flush, function () sp:finish() end
end

--- `sentences.callback`, for a function `make` that makes checked splitters.
function M.callback (make, on_sentence)
  return callbacks(make, on_sentence)
end

-- One call's params callbacks around a splitter of its own; `u` holds the
-- caller's (checked): run first, as before.
local function call_callbacks (make, on_sentence, u)
  local on_delta, flush, drop = callbacks(make, on_sentence)
  local c = { stream = on_delta, on_stream_end = flush }
  local user_stream, user_end, user_done, user_error = u.stream, u.on_stream_end, u.on_done, u.on_error
  if user_stream ~= nil then
    -- (vararg: the chunk is passed on when the user's callback wants it)
    c.stream = function (delta, ...) user_stream(delta, ...); on_delta(delta) end
  end
  if user_end ~= nil then c.on_stream_end = function (res) user_end(res); flush() end end
  -- What a stream's end did not flush (a dialogue's rounds end in its
  -- task, after the last request's own end): nothing, once it did.
  c.on_done = function (...)
    flush()
    if user_done then return user_done(...) end
  end
  -- (kept, the rest began the first sentence of the next call given these
  -- params: a retry, strategy.fallback's next entry -- 'You asked: "tell meYou asked: ...')
  c.on_error = function (...)
    drop()
    if user_error then return user_error(...) end
  end
  return c
end

local KEYS = { "stream", "on_stream_end", "on_done", "on_error" }

--- `sentences.stream`, for a function `make` that makes checked splitters.
function M.stream (make, params, on_sentence)
  local u = {}
  if params.stream ~= nil and type(params.stream) ~= "boolean" then
    check_fn(params.stream, "stream", 1)
    u.stream = params.stream
  end
  for _, k in ipairs { "on_stream_end", "on_done", "on_error" } do
    if params[k] ~= nil then check_fn(params[k], "stream", 1) end
    u[k] = params[k]
  end
  local p = {}
  for k, v in pairs(params) do p[k] = v end
  local shared = call_callbacks(make, on_sentence, u)
  -- Each request: a copy of its params whose callbacks that are these
  -- (a layer above may have put its own in some places: a conversation's
  -- on_done, a strategy's wrapper) are new ones, around a new splitter.
  -- This function is the value of a weak key, the params' stream callback,
  -- and Lua 5.1 and LuaJIT have no ephemerons: what it holds strongly must
  -- not lead back to that key, and the user's callbacks may (a sentence
  -- callback that keeps its request, which keeps its params: the client and
  -- everything it held were never collected, ~8 KiB a call, ~24 with
  -- tools). So it holds `shared`, `make` and the user's callbacks weakly;
  -- the key holds them (`anchor`), as long as the entry matters.
  local anchor = { make = make, on_sentence = on_sentence, u = u }
  local stream = shared.stream
  shared.stream = function (...) if anchor then return stream(...) end end
  for _, k in ipairs(KEYS) do p[k] = shared[k] end
  local weak = setmetatable({ anchor = anchor }, { __mode = "v" })
  for _, k in ipairs(KEYS) do weak[k] = shared[k] end
  util.per_call[shared.stream] = function (q)
    local a = weak.anchor
    local own, copy = call_callbacks(a.make, a.on_sentence, a.u), {}
    for k, v in pairs(q) do copy[k] = v end
    for _, k in ipairs(KEYS) do
      if q[k] ~= nil and q[k] == weak[k] then copy[k] = own[k] end
    end
    return copy
  end
  return p
end

return M
