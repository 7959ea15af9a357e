--- aigc devserver: POST /v1/moderations -- text and image inputs classified
-- by keywords (CATEGORIES: a category is flagged when one of its words appears,
-- case-insensitive, as a whole word; for an image, in its URL or in the
-- text after "AIGC-TEXT:" in a base64 data URL). Scores are deterministic:
-- 0.9 + a hash-based fraction below 0.1 when flagged, else below 0.01.
-- Part of the devserver package.

local json = require "aigc.devserver.json"
local util = require "aigc.devserver.util"
local errors = require "aigc.devserver.errors"

local find, gsub, lower, match = string.find, string.gsub, string.lower, string.match
local O, A = json.O, json.A
local fnv, uid = util.fnv, util.uid
local bad_param, isnull = errors.bad_param, errors.isnull

local M = {}

-- Every category, in the API's order, with the words that flag it and
-- whether images can flag it (category_applied_input_types).
M.CATEGORIES = {
  { "harassment", { "idiot", "stupid", "loser", "moron" } },
  { "harassment/threatening", { "i will find you", "watch your back" } },
  { "hate", { "hate all", "vermin" } },
  { "hate/threatening", { "exterminate them" } },
  { "illicit", { "shoplift", "steal", "counterfeit", "launder" } },
  { "illicit/violent", { "build a bomb", "buy a gun illegally" } },
  { "self-harm", { "hurt myself", "suicide", "self-harm" }, image = true },
  { "self-harm/intent", { "i want to die", "kill myself" }, image = true },
  { "self-harm/instructions", { "how to cut myself" }, image = true },
  { "sexual", { "nsfw", "explicit sex", "porn" }, image = true },
  { "sexual/minors", { "underage sex" } },
  { "violence", { "kill", "murder", "attack", "stab", "bomb" }, image = true },
  { "violence/graphic", { "gore", "dismember", "blood everywhere" }, image = true },
}

local function flags (text, category)
  for _, w in ipairs(category[2]) do
    if find(text, "%f[%w]" .. gsub(w, "%p", "%%%0") .. "%f[%W]") then return true end
  end
  return false
end

local function score (text, name, flagged)
  local f = (fnv(name .. "\0" .. text) % 10000) / 10000
  return flagged and 0.9 + f / 10 or f / 100
end

-- What an image stands for: its URL, or the AIGC-TEXT of a data URL.
local function image_text (url)
  local b64 = match(url, "^data:[^,]*;base64,(.*)$")
  local bytes = b64 and util.unbase64(b64)
  local marked = bytes and match(bytes, "AIGC%-TEXT:([^%z]*)")
  return lower(marked or url)
end

-- One result for a list of {kind = "text"|"image", text =} inputs.
local function result (inputs)
  local categories, scores, applied, any = O(), O(), O(), false
  for _, c in ipairs(M.CATEGORIES) do
    local name, hit, best, types = c[1], false, 0, A()
    for _, inp in ipairs(inputs) do
      if inp.kind == "text" or c.image then
        local f = flags(inp.text, c)
        best = math.max(best, score(inp.text, name, f))
        if f then hit = true end
        local seen = false
        for _, t in ipairs(types) do if t == inp.kind then seen = true end end
        if not seen then types[#types + 1] = inp.kind end
      end
    end
    json.oset(categories, name, hit)
    json.oset(scores, name, best)
    json.oset(applied, name, types)
    any = any or hit
  end
  return O("flagged", any, "categories", categories, "category_scores", scores,
    "category_applied_input_types", applied)
end

-- The inputs: a string, strings (one result each), or multi-modal parts (one result).
local function inputs_of (input)
  if type(input) == "string" then return { { { kind = "text", text = lower(input) } } } end
  if type(input) ~= "table" or #input == 0 then return nil end
  if type(input[1]) == "string" then
    local out = {}
    for i, s in ipairs(input) do
      if type(s) ~= "string" then return nil end
      out[i] = { { kind = "text", text = lower(s) } }
    end
    return out
  end
  local parts = {}
  for i, p in ipairs(input) do
    if type(p) ~= "table" then return nil end
    if p.type == "text" and type(p.text) == "string" then parts[i] = { kind = "text", text = lower(p.text) }
    elseif p.type == "image_url" and type(p.image_url) == "table" and type(p.image_url.url) == "string" then
      parts[i] = { kind = "image", text = image_text(p.image_url.url) }
    else return nil end
  end
  return { parts }
end

--- POST /v1/moderations
function M.moderations (req)
  local input = req.body.input
  if isnull(input) then
    return bad_param("input", "Missing required parameter: 'input'.", "missing_required_parameter")
  end
  local groups = inputs_of(input)
  if not groups then
    return bad_param("input", "Invalid 'input': expected a string, an array of strings, or an array of text / "
      .. "image_url objects.", "invalid_type")
  end
  local results = A()
  for i, g in ipairs(groups) do results[i] = result(g) end
  local model = isnull(req.body.model) and "omni-moderation-latest" or req.model
  return { status = 200, headers = {}, object = O("id", "modr-" .. uid(), "model", model, "results", results) }
end

M.routes = { { "POST", "^/v1/moderations$", M.moderations } }

return M
