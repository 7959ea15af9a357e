-- A portrait generator: a character sheet in, PNG portraits out. The
-- images come as base64 (b64_json), decoded in C, and `res:save` writes
-- them (a folder, or a pattern with %d).
--
--   lua5.4 examples/portraits.lua [out_dir]     (default: a temp folder)
--
-- Uses OPENAI_BASE_URL / OPENAI_API_KEY; AIGC_IMAGE_MODEL picks the model
-- (default dall-e-2).
local aigc = require "aigc"

local out_dir = arg[1] or os.getenv("TMPDIR") or "/tmp"
local client = aigc.client()
local model = os.getenv("AIGC_IMAGE_MODEL") or "dall-e-2"

local CAST = {
  { name = "berta", look = "a cheerful innkeeper with flour on her apron" },
  { name = "rook", look = "a hooded rogue with a silver ring" },
}

-- All portraits requested at once; the loop turns until each is saved.
local pending = {}
for _, who in ipairs(CAST) do
  pending[#pending + 1] = { who = who, req = client:images_generate_async {
    prompt = "A fantasy RPG portrait of " .. who.look, model = model, n = 2,
    size = "256x256", response_format = "b64_json",
  } }
end
while client:step(0.05) > 0 do end

for _, p in ipairs(pending) do
  local res, err = p.req:result()
  if not res then error(p.who.name .. ": " .. tostring(err)) end
  local paths = assert(res:save(out_dir .. "/portrait-" .. p.who.name .. "-%d.png"))
  for i, path in ipairs(paths) do
    print(("%s #%d: %s (%d bytes of PNG)"):format(p.who.name, i, path, #res.data[i].bytes))
  end
end
client:close()
