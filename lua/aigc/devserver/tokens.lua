--- aigc devserver: tokens. A token is a word with its leading whitespace
-- (util.tokenize); `stop` and max_tokens cut on them; logprobs are
-- deterministic; usage is counted by a tokenizer: "words" (the default: a
-- token per word, 4 per message) or "words2" (2 per word, 3 per message: a
-- server whose counts differ from a 4-characters-per-token estimate, for
-- clients that calibrate). Part of the devserver package.

local json = require "aigc.devserver.json"
local util = require "aigc.devserver.util"

local byte, find, sub = string.byte, string.find, string.sub
local concat = table.concat
local floor, tointeger = math.floor, math.tointeger
local O, A, oset, NULL = json.O, json.A, json.oset, json.NULL
local fnv, tokenize, words = util.fnv, util.tokenize, util.words

local M = {}

-- Deterministic logprobs.
local ALTERNATIVES = { " the", " a", " and", " of", " to", ",", ".", " is", " in", " it", " that", " I" }

local function logprob (tok, pos) return -((fnv(tok .. "\0" .. pos) % 20000) / 10000) end

local function bytes_of (s)
  local t = A()
  for i = 1, #s do t[i] = byte(s, i) end
  return t
end

local function alternatives (tok, pos, k)
  local lp = logprob(tok, pos)
  local out = { { tok, lp } }
  local h, j = fnv(tok .. pos), 0
  while #out < k do
    local alt = ALTERNATIVES[(h + j) % #ALTERNATIVES + 1]
    j = j + 1
    if alt ~= tok then out[#out + 1] = { alt, floor((lp - 1.25 * #out) * 10000 + 0.5) / 10000 } end
  end
  return out
end

local function chat_logprob (tok, pos, k)
  local top = A()
  if k > 0 then
    for i, a in ipairs(alternatives(tok, pos, k)) do
      top[i] = O("token", a[1], "logprob", a[2], "bytes", bytes_of(a[1]))
    end
  end
  return O("token", tok, "logprob", logprob(tok, pos), "bytes", bytes_of(tok), "top_logprobs", top)
end

local function completion_logprobs (toks, first_pos, offset, k, nulls)
  local lp = O("tokens", A(), "token_logprobs", A(), "top_logprobs", k > 0 and A() or NULL, "text_offset", A())
  for i, tok in ipairs(toks) do
    local pos = first_pos + i - 1
    lp.tokens[i] = tok
    lp.text_offset[i] = offset
    offset = offset + #tok
    if nulls and i == 1 then
      lp.token_logprobs[i] = NULL
      if k > 0 then lp.top_logprobs[i] = NULL end
    else
      lp.token_logprobs[i] = logprob(tok, pos)
      if k > 0 then
        local o = O()
        for _, a in ipairs(alternatives(tok, pos, k)) do oset(o, a[1], a[2]) end
        lp.top_logprobs[i] = o
      end
    end
  end
  return lp
end

-- Apply `stop` then the token limit; returns the tokens and the finish reason.
local function limit (text, stops, max_tokens)
  local finish = "stop"
  if stops then
    local cut
    for _, s in ipairs(stops) do
      local p = s ~= "" and find(text, s, 1, true)
      if p and (not cut or p < cut) then cut = p end
    end
    if cut then text = sub(text, 1, cut - 1) end
  end
  local toks = tokenize(text)
  if max_tokens and #toks > max_tokens then
    for i = #toks, max_tokens + 1, -1 do toks[i] = nil end
    finish = "length"
  end
  return toks, finish
end

local VOCAB = { " the", " quick", " brown", " fox", " jumps", " over", " a", " lazy", " dog", " and", " runs", " away" }

local function detokenize (ids)
  local parts = {}
  for i, id in ipairs(ids) do parts[i] = VOCAB[(tointeger(id) or 0) % #VOCAB + 1] end
  return concat(parts)
end

local function is_int_array (t)
  if type(t) ~= "table" or #t == 0 then return false end
  for _, x in ipairs(t) do if type(x) ~= "number" or not tointeger(x) then return false end end
  return true
end

-- Tokenizers: per word and per message costs.
local TOKENIZERS = { words = { word = 1, message = 4 }, words2 = { word = 2, message = 3 } }

--- Whether `name` is a known tokenizer.
function M.known (name) return TOKENIZERS[name] ~= nil end

--- Prompt tokens of a list of texts, each a message (per-message cost added)
-- unless `bare` (completions' prompts, embeddings' inputs).
function M.prompt (tokenizer, texts, bare)
  local t = TOKENIZERS[tokenizer] or TOKENIZERS.words
  local n = 0
  for _, text in ipairs(texts) do n = n + t.word * words(text) + (bare and 0 or t.message) end
  return n
end

--- Prompt tokens of `n` messages of `nwords` words in all: `prompt` of
-- their texts, from counts kept (a Responses chain's, per turn).
function M.prompt_counted (tokenizer, nwords, n)
  local t = TOKENIZERS[tokenizer] or TOKENIZERS.words
  return t.word * nwords + t.message * n
end

--- A count of words (or of token ids) as this tokenizer counts them.
function M.scale (tokenizer, count)
  local t = TOKENIZERS[tokenizer] or TOKENIZERS.words
  return t.word * count
end

--- Completion tokens for `count` reply tokens (words).
function M.completion (tokenizer, count)
  local t = TOKENIZERS[tokenizer] or TOKENIZERS.words
  return t.word * count
end

M.chat_logprob, M.completion_logprobs, M.limit, M.detokenize, M.is_int_array = chat_logprob, completion_logprobs,
  limit, detokenize, is_int_array

return M
