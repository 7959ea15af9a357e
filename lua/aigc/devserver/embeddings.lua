--- aigc devserver: POST /v1/embeddings (unit vectors from a hash of the
-- input, float32-exact; base64 = little-endian float32) and the model list
-- (GET /v1/models, GET /v1/models/{id}). Part of the devserver package.

local json = require "aigc.devserver.json"
local util = require "aigc.devserver.util"
local errors = require "aigc.devserver.errors"
local tokens = require "aigc.devserver.tokens"

local find, format = string.find, string.format
local spack = string.pack
local concat = table.concat
local O, A, RAW = json.O, json.A, json.RAW
local fnv, base64, words, float32, url_decode = util.fnv, util.base64, util.words, util.float32, util.url_decode
local bad_param, isnull, opt_int, error_resp = errors.bad_param, errors.isnull, errors.opt_int, errors.error_resp
local is_int_array = tokens.is_int_array

local M = {}

local function embedding (text, dims)
  local s = fnv(text) * 2654435761 + 1
  local v, norm = {}, 0
  for i = 1, dims do
    s = s ~ (s << 13); s = s ~ (s >> 7); s = s ~ (s << 17)
    local x = ((s >> 11) & 0x1fffffffffffff) / 2^53 * 2 - 1
    v[i] = x
    norm = norm + x * x
  end
  norm = math.sqrt(norm)
  for i = 1, dims do v[i] = float32(v[i] / norm) end
  return v
end

--- POST /v1/embeddings (and Azure's deployment path).
function M.embeddings (req)
  local body, model = req.body, req.model
  local input = body.input
  local inputs = {}
  if type(input) == "string" then inputs[1] = { key = input, tokens = words(input) }
  elseif is_int_array(input) then inputs[1] = { key = "tokens:" .. concat(input, ","), tokens = #input }
  elseif type(input) == "table" and #input > 0 then
    for i, x in ipairs(input) do
      if type(x) == "string" then inputs[i] = { key = x, tokens = words(x) }
      elseif is_int_array(x) then inputs[i] = { key = "tokens:" .. concat(x, ","), tokens = #x }
      else inputs = nil; break end
    end
  else inputs = nil end
  if isnull(input) then
    return bad_param("input", "Missing required parameter: 'input'.", "missing_required_parameter")
  end
  if not inputs then
    return bad_param("input", "Invalid 'input': expected a non-empty string, array of strings, or token arrays.",
      "invalid_type")
  end
  -- (the API's limits: at most 2048 inputs a request, none an empty string;
  -- a client that passes here must not fail there)
  if #inputs > 2048 then
    return bad_param("input", format("Invalid 'input': at most 2048 inputs expected, got %d.", #inputs),
      "invalid_value")
  end
  for i, inp in ipairs(inputs) do
    if inp.key == "" then
      local name = type(input) == "string" and "input" or format("input[%d]", i - 1)
      return bad_param("input", format("Invalid '%s': an input cannot be an empty string.", name), "invalid_value")
    end
  end
  local full = find(model, "large", 1, true) and 3072 or 1536
  local dims, err = opt_int(body, "dimensions", 1, full)
  if err then return err end
  dims = dims or full
  local fmt = body.encoding_format
  if isnull(fmt) then fmt = "float" end
  if fmt ~= "float" and fmt ~= "base64" then
    return bad_param("encoding_format", "Invalid 'encoding_format': expected 'float' or 'base64'.", "invalid_value")
  end
  local data, total = A(), 0
  for i, inp in ipairs(inputs) do
    total = total + inp.tokens
    local v = embedding(inp.key, dims)
    local emb
    if fmt == "base64" then
      local parts = {}
      for j = 1, dims do parts[j] = spack("<f", v[j]) end
      emb = base64(concat(parts))
    else
      local parts = {}
      for j = 1, dims do parts[j] = format("%.9g", v[j]) end
      emb = RAW("[" .. concat(parts, ",") .. "]")
    end
    data[i] = O("object", "embedding", "index", i - 1, "embedding", emb)
  end
  total = tokens.scale(req.tokenizer, total)
  local resp = { status = 200, headers = {}, tokens = total, kind = "embedding" }
  resp.object = O("object", "list", "data", data, "model", model,
    "usage", O("prompt_tokens", total, "total_tokens", total))
  return resp
end

local MODELS = { "aigc-dev", "gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "gpt-3.5-turbo-instruct",
                 "text-embedding-3-small", "text-embedding-3-large" }

local function model_obj (id)
  return O("id", id, "object", "model", "created", 1700000000, "owned_by", "aigc")
end

--- GET /v1/models
function M.models ()
  local data = A()
  for i, id in ipairs(MODELS) do data[i] = model_obj(id) end
  return { status = 200, headers = {}, object = O("object", "list", "data", data) }
end

--- GET /v1/models/{id}
function M.model (req)
  local id = url_decode(req.captures[1])
  for _, m in ipairs(MODELS) do
    if m == id then return { status = 200, headers = {}, object = model_obj(id) } end
  end
  return error_resp(404, format("The model '%s' does not exist", id), "invalid_request_error", "model",
    "model_not_found")
end

M.MODELS, M.embedding = MODELS, embedding

return M
