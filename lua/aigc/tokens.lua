--- Token estimates of texts and messages, for budgets (conversations
-- trim their history with them): a text estimator and a message
-- estimator that takes any text estimator. `aigc.conversation` re-exports
-- them (`conversation.estimate_text`, `conversation.estimate_message`).
--
-- @module aigc.tokens

local core = require "aigc.core"
local compat = require "aigc.compat"
local util = require "aigc.util"
local check = require "aigc.check"

local json_encode = core.json.encode
local error, ipairs, pcall, tonumber, tostring, type = error, ipairs, pcall, tonumber, tostring, type
local argerror, expected, is_callable = util.argerror, util.expected, check.is_callable
local math_ceil, math_floor, math_max = math.ceil, math.floor, math.max
local b64decode = core.media.b64decode
local utf8_codes, utf8_len = compat.utf8_codes, compat.utf8_len

util.own_module()

local M = {}

--- Default tokens added per message (role, separators), as OpenAI counts.
M.MESSAGE_OVERHEAD = 4

-- Scripts written without spaces between words, where tokenizers give
-- about one token per character: CJK ideographs, kana, Hangul, and
-- full-width forms.
local function is_cjk (c)
  return (c >= 0x2E80 and c <= 0x9FFF) or (c >= 0xAC00 and c <= 0xD7AF) or (c >= 0x1100 and c <= 0x11FF)
      or (c >= 0xF900 and c <= 0xFAFF) or (c >= 0xFF00 and c <= 0xFFEF) or (c >= 0x20000 and c <= 0x3FFFF)
end

--- The default token estimate of a text: about 4 characters per token for
-- ASCII (English, code), 1 token per CJK character, 2 characters per token
-- for other scripts (accented Latin, Cyrillic, Greek, Arabic...), rounded up.
-- Bytes that are not UTF-8 count as 4 per token.
-- @tparam string text
-- @treturn integer
-- @usage conversation.estimate_text("Hello, world") --> 3
-- conversation.estimate_text("你好世界") --> 4
function M.estimate_text (text)
  if type(text) ~= "string" then argerror("estimate_text", 1, expected("string", text)) end
  if text == "" then return 0 end
  if not utf8_len(text) then return math_ceil(#text / 4) end
  local ascii, wide, other = 0, 0, 0
  for _, c in utf8_codes(text) do
    if c < 0x80 then ascii = ascii + 1
    elseif is_cjk(c) then wide = wide + 1
    else other = other + 1 end
  end
  return math_ceil(ascii / 4 + other / 2) + wide
end

local estimate_text = M.estimate_text

-- est(text), checked: an estimate that is not a finite number >= 0 would
-- raise from the arithmetic below or, NaN, silently disable trimming.
local function tokens_of (est, text)
  local n = est(text)
  if type(n) ~= "number" or not (n >= 0 and n < math.huge) then
    local got = type(n) ~= "number" and type(n) or n ~= n and "NaN" or n == math.huge and "inf" or tostring(n)
    error("conversation option 'estimate' must return a number of tokens >= 0, got " .. got, 0)
  end
  return n
end

-- {======================================================
-- Files
-- =======================================================

-- OpenAI puts a PDF into the context as "the extracted text and an image
-- of each page" (the file inputs guide), so a PDF costs per page, not per
-- byte of its base64 (a 1 MB PDF of 10 pages was estimated at 330,000
-- tokens, dropping all the history before it). A page's image: a portrait
-- page scaled to 768 pixels wide at high detail is 2 x 2 tiles of 170
-- tokens plus 85 (the vision guide); its text: a full page, about 3,000
-- characters at 4 a token.
M.PDF_PAGE_TOKENS = 85 + 4 * 170 + 750
-- When no page object can be seen (a PDF that packs its objects into
-- compressed object streams, not linearized), a page per 20 KB: on the
-- high side for text documents, as budgets want.
local PDF_BYTES_PER_PAGE = 20000

-- The number of pages of a PDF (its bytes): the page objects
-- ("/Type /Page", not "/Pages"), else the page count of a linearized
-- file's first dictionary, else one page per PDF_BYTES_PER_PAGE.
local function pdf_pages (pdf)
  local n = 0
  for c in (pdf .. " "):gmatch("/Type%s*/Page(.)") do
    if c ~= "s" then n = n + 1 end
  end
  if n > 0 then return n end
  local lin = pdf:sub(1, 1024):match("/Linearized.-/N%s+(%d+)")
  if lin and tonumber(lin) > 0 then return tonumber(lin) end
  return math_max(1, math_ceil(#pdf / PDF_BYTES_PER_PAGE))
end

-- The bytes of a file part's data (a data URL or bare base64), or nil.
local function file_bytes (data)
  local b64 = data:match("^data:[^,]-;base64,(.*)$") or data
  local bytes = b64decode(b64)
  return bytes
end

-- Files' estimates, by the part that holds them (weak keys: forgotten
-- with it, never keeping a file's data alive): a conversation estimates
-- every message again at each say, and decoding a large PDF each time
-- is slow. A memo holds its estimator weakly: it is the value of a weak
-- key, Lua 5.1 and LuaJIT have no ephemerons, and an estimator that led
-- back to the part (a closure over the NPC whose conversation holds the
-- message) kept the part, the conversation and its client for ever.
local file_memo = setmetatable({}, { __mode = "k" })
local WEAK_V = { __mode = "v" }

-- Tokens of the file data of `part`: per page for a PDF, as text
-- otherwise (4 bytes a token when it is not UTF-8); nil when it is not
-- base64 (then estimated as the part's JSON, as before).
local function file_tokens (part, data, est)
  local memo = file_memo[part]
  if memo and memo.data == data and memo.est == est then return memo.n end
  local bytes = file_bytes(data)
  if not bytes then return nil end
  local n
  if bytes:sub(1, 5) == "%PDF-" then n = pdf_pages(bytes) * M.PDF_PAGE_TOKENS
  elseif utf8_len(bytes) then n = tokens_of(est, bytes)
  else n = math_ceil(#bytes / 4) end   -- (binary: not for a text estimator, which may refuse it)
  file_memo[part] = setmetatable({ data = data, est = est, n = n }, WEAK_V)
  return n
end

-- The file data of a part: a chat `file` part's `file.file_data`, a
-- Responses `input_file` part's `file_data`.
local function file_data_of (part)
  local f = part.type == "file" and part.file or part
  local data = type(f) == "table" and f.file_data
  if type(data) == "string" and (part.type == "file" or part.type == "input_file") then return data end
  return nil
end

-- }======================================================


-- {======================================================
-- Images
-- =======================================================

-- The width and height of an image (its first bytes): PNG, GIF, JPEG,
-- WebP; or nil.
local function be16 (b, i) local x, y = b:byte(i, i + 1); return x * 256 + y end
local function le16 (b, i) local x, y = b:byte(i, i + 1); return y * 256 + x end
local function le24 (b, i) local x, y, z = b:byte(i, i + 2); return (z * 256 + y) * 256 + x end

local function jpeg_size (b)
  local i = 3
  while i + 8 <= #b do
    if b:byte(i) ~= 0xFF then return nil end
    local m = b:byte(i + 1)
    -- SOF0..SOF15 but DHT (C4), JPG (C8) and DAC (CC): height, then width
    if m >= 0xC0 and m <= 0xCF and m ~= 0xC4 and m ~= 0xC8 and m ~= 0xCC then
      return be16(b, i + 7), be16(b, i + 5)
    end
    i = i + 2 + be16(b, i + 2)
  end
  return nil
end

-- The first bytes of base64 text, from about its first n characters:
-- whitespace dropped (base64 wrapped in lines, as the `base64` tool
-- writes it) and the prefix cut to whole quads (one cut in two does not
-- decode: the header was not read, and the estimate fell to the default).
local function b64_head (text, n)
  local s = text:sub(1, n):gsub("%s+", "")
  return b64decode(s:sub(1, #s - #s % 4))
end

local function image_size (b)
  if b:sub(1, 8) == "\137PNG\r\n\26\n" and #b >= 24 then
    return be16(b, 17) * 65536 + be16(b, 19), be16(b, 21) * 65536 + be16(b, 23)
  elseif b:sub(1, 3) == "GIF" and #b >= 10 then return le16(b, 7), le16(b, 9)
  elseif b:sub(1, 2) == "\255\216" then return jpeg_size(b)
  elseif b:sub(1, 4) == "RIFF" and b:sub(9, 12) == "WEBP" and #b >= 30 then
    local kind = b:sub(13, 16)
    if kind == "VP8X" then return le24(b, 25) + 1, le24(b, 28) + 1
    elseif kind == "VP8 " then return le16(b, 27) % 16384, le16(b, 29) % 16384
    elseif kind == "VP8L" then
      local x1, x2, x3, x4 = b:byte(22, 25)
      return 1 + x1 + (x2 % 64) * 256, 1 + math_floor(x2 / 64) + x3 * 4 + (x4 % 16) * 1024
    end
  end
  return nil
end

-- OpenAI counts an image's tokens by one of two rules, by model (the
-- vision guide). Patches: the models named here cover the image with 32 x
-- 32 pixel patches (scaled down to at most 1,536 of them) and multiply the
-- patches by their factor; `detail` does not change it. Tiles: the other
-- models scale the image to fit 2048 x 2048, then its shortest side to 768,
-- and count `tile` per 512-pixel tile plus `base` (`base` alone at low
-- detail). Without a model, or with an unknown one, GPT-4o's tiles. (A
-- gpt-4.1-mini image was estimated 765 tokens where the API counted 1,659,
-- a gpt-4o-mini one 765 where it counted 25,501.)
local PATCH_MODELS = {   -- (a longer prefix before a shorter one that starts it)
  { "gpt-4.1-mini", 1.62 }, { "gpt-4.1-nano", 2.46 }, { "gpt-5-mini", 1.62 }, { "gpt-5-nano", 2.46 },
  { "o4-mini", 1.72 },
}
local TILE_MODELS = {
  { "gpt-4o-mini", 2833, 5667 }, { "o1", 75, 150 }, { "o3", 75, 150 }, { "computer-use-preview", 65, 129 },
  { "gpt-5", 70, 140 },
}
local MAX_PATCHES = 1536

-- The image rule of `model`: "patch", factor; or "tile", base, tile.
local function image_rule (model)
  if type(model) == "string" then
    -- (a router's "openai/gpt-4.1-mini"; anchored: "[^/]*$" was tried from
    -- each byte to the next "/", quadratic in a long name before one)
    local name = model:match("^.*/(.*)$") or model
    for _, r in ipairs(PATCH_MODELS) do
      if name:sub(1, #r[1]) == r[1] then return "patch", r[2] end
    end
    for _, r in ipairs(TILE_MODELS) do
      local rest = name:sub(#r[1] + 1, #r[1] + 1)   -- ("o1" but not "o10")
      if name:sub(1, #r[1]) == r[1] and not rest:find("^[%w.]") then return "tile", r[2], r[3] end
    end
  end
  return "tile", 85, 170
end

-- The patches of a w x h image: 32-pixel patches, the image scaled down
-- (keeping its aspect) to whole patches when they are more than 1,536. A
-- side under a patch once scaled (a 100000 x 1 strip) stays one row of
-- them, as long as the budget, 1,536: the guide's formula floored it to 0
-- patches, and the image was estimated at 0 tokens.
local function patches (w, h)
  local n = math_ceil(w / 32) * math_ceil(h / 32)
  if n <= MAX_PATCHES then return n end
  local f = math.sqrt(32 * 32 * MAX_PATCHES / (w * h))
  if math.min(w, h) * f < 32 then return MAX_PATCHES end
  f = f * math.min(math_floor(w * f / 32) / (w * f / 32), math_floor(h * f / 32) / (h * f / 32))
  return math.min(MAX_PATCHES, math_ceil(w * f / 32) * math_ceil(h * f / 32))
end

-- The tiles of a w x h image at high detail.
local function tiles (w, h)
  local f = math.min(1, 2048 / math_max(w, h))
  w, h = w * f, h * f
  f = math.min(1, 768 / math.min(w, h))
  w, h = w * f, h * f
  return math_ceil(w / 512) * math_ceil(h / 512)
end

--- Tokens of an image whose size is not known at high detail: a 1024 x
-- 1024 image (2 x 2 tiles) with GPT-4o's tiles. A low-detail image is 85.
M.IMAGE_TOKENS = 765

-- Tokens of an image part (chat `image_url`, Responses `input_image`) for
-- `model`. By the image's size when its data is in the part; else (an
-- image URL) a 1024 x 1024 image for the patch models; for the tile
-- models, `base` at low or auto detail, 2 x 2 tiles at high.
local function image_tokens (part, model)
  local img = part.image_url
  local url, detail = img, part.detail
  if type(img) == "table" then url, detail = img.url, img.detail end
  local rule, base, tile = image_rule(model)
  if rule == "tile" and detail == "low" then return base end
  local w, h
  if type(url) == "string" then
    -- (the header is in the first bytes: decode only a prefix, whole quads)
    local b64 = url:match("^data:[^,]-;base64,(.*)$")
    local bytes = b64 and b64_head(b64, 65536)
    if bytes then w, h = image_size(bytes) end
  end
  local known = w and h and w > 0 and h > 0
  if rule == "patch" then
    if not known then w, h = 1024, 1024 end
    return math_ceil(patches(w, h) * base)
  end
  if known then return base + tile * tiles(w, h) end
  return detail == "high" and base + 4 * tile or base
end

-- Audio input: 10 tokens a second (OpenAI: a token per 100 ms of audio
-- in). The length is read from a WAV header; other formats (mp3...) are
-- taken at 64 kbit/s, on the high side for budgets. (Every clip was
-- estimated 100 tokens: a 10-minute recording, 6,000, dropped no history.)
M.AUDIO_TOKENS_PER_SECOND = 10
local AUDIO_BYTES_PER_SECOND = 8000

local function le32 (b, i) local x, y, z, w = b:byte(i, i + 3); return ((w * 256 + z) * 256 + y) * 256 + x end

local function audio_tokens (part)
  local a = part.input_audio
  local data = type(a) == "table" and a.data
  if type(data) ~= "string" then return 100 end
  data = data:match("^data:[^,]-;base64,(.*)$") or data
  local nbytes = math_floor(#data * 3 / 4)
  local head = b64_head(data, 4096)
  local seconds = nbytes / AUDIO_BYTES_PER_SECOND
  if head and #head >= 44 and head:sub(1, 4) == "RIFF" and head:sub(9, 12) == "WAVE" then
    -- (the "fmt " chunk's byte rate; the data is the whole file but its header)
    local i = 13
    while i + 8 <= #head do
      local id, size = head:sub(i, i + 3), le32(head, i + 4)
      if id == "fmt " and size >= 16 and i + 19 <= #head then
        local rate = le32(head, i + 16)
        if rate > 0 then seconds = (nbytes - 44) / rate end
        break
      end
      i = i + 8 + size + size % 2
    end
  end
  return math_max(1, math_ceil(seconds * M.AUDIO_TOKENS_PER_SECOND))
end

-- }======================================================


-- Tokens of a content value (a string, a list of parts, or null).
local function content_tokens (content, est, model)
  if type(content) == "string" then return tokens_of(est, content) end
  if type(content) ~= "table" then return 0 end
  local n = 0
  for _, part in ipairs(content) do
    if type(part) == "string" then n = n + tokens_of(est, part)
    elseif type(part) == "table" then
      if type(part.text) == "string" then n = n + tokens_of(est, part.text)
      elseif part.type == "image_url" or part.type == "input_image" or part.image_url ~= nil then
        n = n + image_tokens(part, model)   -- (an input_image may give a file_id, no URL)
      elseif part.type == "input_audio" then n = n + audio_tokens(part)
      else
        local data = file_data_of(part)
        local f = data and file_tokens(part, data, est)
        if f then n = n + f
        else
          local ok, s = pcall(json_encode, part)
          if ok then n = n + tokens_of(est, s) end
        end
      end
    end
  end
  return n
end

--- The estimated tokens of one message with a text estimator.
-- @tparam table msg
-- @tparam[opt] function est text -> tokens (default `estimate_text`)
-- @tparam[opt] integer overhead per message (default `MESSAGE_OVERHEAD`)
-- @tparam[opt] string model the model its images go to (they count by model)
-- @treturn integer
-- @usage conversation.estimate_message { role = "user", content = "Hi" } --> 5
function M.estimate_message (msg, est, overhead, model)
  if type(msg) ~= "table" then argerror("estimate_message", 1, expected("message table", msg)) end
  if est ~= nil and not is_callable(est) then argerror("estimate_message", 2, expected("function", est)) end
  if overhead ~= nil and not (type(overhead) == "number" and overhead >= 0 and overhead < math.huge) then
    argerror("estimate_message", 3, expected("a number >= 0", overhead))
  end
  est = est or estimate_text
  local n = (overhead or M.MESSAGE_OVERHEAD) + content_tokens(msg.content, est, model)
  -- (the reasoning a tool-calling turn carries back: adapter.keep_reasoning)
  if type(msg.reasoning_content) == "string" then n = n + tokens_of(est, msg.reasoning_content) end
  -- Responses API items: a function call, a tool's output.
  if type(msg.arguments) == "string" then n = n + 3 + tokens_of(est, msg.arguments) end
  -- (a custom tool's call: its free-form input, a patch, a query)
  if msg.type == "custom_tool_call" and type(msg.input) == "string" then n = n + 3 + tokens_of(est, msg.input) end
  if type(msg.output) == "string" then n = n + tokens_of(est, msg.output)
  -- (a function's output may be content parts: text, an image, a file)
  elseif type(msg.output) == "table" then n = n + content_tokens(msg.output, est, model) end
  if type(msg.name) == "string" then n = n + tokens_of(est, msg.name) + 1 end
  if type(msg.tool_calls) == "table" then
    for _, call in ipairs(msg.tool_calls) do
      -- (a function's call, or a custom tool's: its input in place of arguments)
      local f = type(call) == "table" and (call["function"] or call.custom) or nil
      if type(f) == "table" then
        local args = f.arguments
        if args == nil then args = f.input end
        n = n + 3 + (type(f.name) == "string" and tokens_of(est, f.name) or 0)
          + (type(args) == "string" and tokens_of(est, args) or 0)
      end
    end
  end
  return n
end

return M
