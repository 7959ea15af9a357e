--- aigc devserver: POST /v1/images/generations (JSON), /v1/images/edits and
-- /v1/images/variations (multipart/form-data): real PNG files of the size
-- asked (aigc.devserver.png), as b64_json or as URLs this server serves
-- itself under /_aigc/files/, streamed with partial images on request.
-- Part of the devserver package.

local json = require "aigc.devserver.json"
local util = require "aigc.devserver.util"
local errors = require "aigc.devserver.errors"
local png = require "aigc.devserver.png"

local format, match = string.format, string.match
local O, A = json.O, json.A
local uid, base64, words, crc32 = util.uid, util.base64, util.words, util.crc32
local bad_param, isnull = errors.bad_param, errors.isnull

local M = {}

local MAX_SIDE, MAX_BLOBS = 4096, 64
-- The page a `url-page` fault's image URLs serve (with a 200).
local PAGE = "<!DOCTYPE html>\n<html><head><title>Link expired</title></head>"
  .. "<body><h1>This link has expired</h1></body></html>\n"
-- The sizes the image events and ImagesResponse may name (others: "auto" / left out).
local NAMED_SIZES = { ["1024x1024"] = true, ["1024x1536"] = true, ["1536x1024"] = true }
local QUALITIES = { low = "low", medium = "medium", high = "high", hd = "high", standard = "auto", auto = "auto" }

-- Blobs served at /_aigc/files/NAME: the last MAX_BLOBS made.
local function keep_blob (srv, bytes, ctype, ext)
  local blobs = srv.keep("blobs", function () return { order = {}, by_name = {} } end)
  local name = "img_" .. uid() .. "." .. ext
  blobs.by_name[name] = { bytes = bytes, ctype = ctype }
  blobs.order[#blobs.order + 1] = name
  if #blobs.order > MAX_BLOBS then blobs.by_name[table.remove(blobs.order, 1)] = nil end
  return name
end

--- GET /_aigc/files/NAME (no auth, not recorded): a blob an image URL names.
function M.serve_blob (srv, name)
  local b = srv.kept.blobs and srv.kept.blobs.by_name[name]
  if not b then return errors.error_resp(404, format("No file named '%s'.", name)) end
  return { status = 200, ctype = b.ctype, headers = {}, body = b.bytes }
end

-- Width and height from `size` ("WxH" or "auto" -> default); or nil and an error response.
local function parse_size (size, default)
  if isnull(size) or size == "auto" then return default[1], default[2] end
  local w, h = match(tostring(size), "^(%d+)x(%d+)$")
  w, h = tonumber(w), tonumber(h)
  if not w or w < 1 or h < 1 or w > MAX_SIDE or h > MAX_SIDE then
    return nil, bad_param("size", format("Invalid value for 'size': '%s'. Expected 'auto' or 'WIDTHxHEIGHT' with "
      .. "sides from 1 to %d.", tostring(size), MAX_SIDE), "invalid_value")
  end
  return w, h
end

local function int_field (body, key, lo, hi, default)
  local v = body[key]
  if isnull(v) then return default end
  local i = math.tointeger(tonumber(v))
  if not i or i < lo or i > hi then
    return nil, bad_param(key, format("Invalid '%s': integer between %d and %d expected, got %s.", key, lo, hi,
      tostring(v)), i and "integer_out_of_range" or "invalid_type")
  end
  return i
end

-- The options shared by the three endpoints; nil and an error response when invalid.
local function options (body, model, default_size)
  local o, err = { model = model }
  o.n, err = int_field(body, "n", 1, 10, 1)
  if err then return nil, err end
  o.width, o.height = parse_size(body.size, default_size)
  if not o.width then return nil, o.height end
  o.partials, err = int_field(body, "partial_images", 0, 3, 0)
  if err then return nil, err end
  local rf = body.response_format
  if isnull(rf) then rf = model:find("^gpt%-image") and "b64_json" or "url" end
  if rf ~= "url" and rf ~= "b64_json" then
    return nil, bad_param("response_format", "Invalid 'response_format': expected 'url' or 'b64_json'.",
      "invalid_value")
  end
  o.response_format = rf
  local of = body.output_format
  if not isnull(of) and of ~= "png" then
    return nil, bad_param("output_format", format("Unsupported 'output_format' '%s': the devserver encodes PNG only.",
      tostring(of)), "unsupported_value")
  end
  o.stream = body.stream == true or body.stream == "true"
  o.quality = QUALITIES[body.quality] or "auto"
  o.background = (body.background == "transparent" or body.background == "opaque") and body.background or "auto"
  o.size_name = NAMED_SIZES[o.width .. "x" .. o.height] and o.width .. "x" .. o.height or "auto"
  return o
end

local function usage_obj (prompt_words, image_tokens, n)
  local out = 272 * n
  return O("total_tokens", prompt_words + image_tokens + out, "input_tokens", prompt_words + image_tokens,
    "output_tokens", out, "input_tokens_details", O("text_tokens", prompt_words, "image_tokens", image_tokens))
end

-- Events of a stream: partial images, then one completed event per image.
local function stream_events (o, images, kind, usage)
  local events, created = { done = false }, os.time()
  local function ev (etype, b64, extra_k, extra_v)
    events[#events + 1] = { event = etype, data = json.encode(O("type", etype, "b64_json", b64, "created_at", created,
      "size", o.size_name, "quality", o.quality, "background", o.background, "output_format", "png",
      extra_k, extra_v)) }
  end
  for _, img in ipairs(images) do
    for k = 1, o.partials do
      ev(kind .. ".partial_image", base64(png.image(o.width, o.height, img.seed, k / (o.partials + 1),
        o.background == "transparent")), "partial_image_index", k - 1)
    end
    ev(kind .. ".completed", base64(img.bytes), "usage", usage)
  end
  return events
end

-- Make the n images for `seed` and answer (JSON or a stream).
local function answer (req, o, seed, prompt, kind, image_tokens)
  local images = {}
  for i = 1, o.n do
    local s = seed .. "\0" .. i
    images[i] = { seed = s, bytes = png.image(o.width, o.height, s, nil, o.background == "transparent") }
  end
  local usage = usage_obj(words(prompt or ""), image_tokens or 0, o.n)
  if o.stream then return { status = 200, headers = {}, events = stream_events(o, images, kind, usage) } end
  local data = A()
  for i, img in ipairs(images) do
    if o.response_format == "b64_json" then data[i] = O("b64_json", base64(img.bytes))
    else
      -- the address the client used (Host), with our port when it names none
      local host = req.job.headers.host or "127.0.0.1"
      if not host:find(":%d+$") then host = host .. ":" .. req.srv.port end
      local blob = req.fault["url-page"] and keep_blob(req.srv, PAGE, "text/html", "html")
        or keep_blob(req.srv, img.bytes, "image/png", "png")
      data[i] = O("url", "http://" .. host .. "/_aigc/files/" .. blob)
    end
    if o.model == "dall-e-3" and prompt then json.oset(data[i], "revised_prompt", "A picture of " .. prompt) end
  end
  local gpt = o.model:find("^gpt%-image") ~= nil
  return { status = 200, headers = {}, object = O("created", os.time(), "data", data,
    "background", gpt and o.background ~= "auto" and o.background or nil, "output_format", gpt and "png" or nil,
    "size", gpt and o.size_name ~= "auto" and o.size_name or nil, "quality", gpt and o.quality ~= "auto" and o.quality
      or nil, "usage", gpt and usage or nil) }
end

--- POST /v1/images/generations
function M.generations (req)
  local body = req.body
  local prompt, err = errors.need_string(body, "prompt")
  if not prompt then return err end
  local o
  o, err = options(body, req.model, { 1024, 1024 })
  if not o then return err end
  return answer(req, o, prompt, prompt, "image_generation")
end

-- The uploaded images of an edit: `image` or `image[]` parts.
local function uploaded (form)
  local list = {}
  for _, name in ipairs { "image", "image[]" } do
    for _, part in ipairs(form.fields[name] or {}) do list[#list + 1] = part end
  end
  return list
end

--- POST /v1/images/edits (multipart: image or image[] (<= 16), mask, prompt ...)
function M.edits (req)
  local body, form = req.body, req.form
  local prompt, err = errors.need_string(body, "prompt")
  if not prompt then return err end
  local images = uploaded(form)
  if #images == 0 then
    return bad_param("image", "Missing required parameter: 'image'.", "missing_required_parameter")
  end
  if #images > 16 then return bad_param("image", "Too many images: at most 16.", "invalid_value") end
  for i, part in ipairs(images) do
    if not png.is_image(part.data) then
      return bad_param("image", format("Invalid image %d: expected a PNG, JPEG, WebP or GIF file.", i),
        "invalid_image_format")
    end
    if part.data:sub(1, 8) == png.SIGNATURE and not png.size(part.data) then   -- (its size is read below)
      return bad_param("image", format("Invalid image %d: a PNG file without a valid IHDR header (cut short?).", i),
        "invalid_image_format")
    end
  end
  local w, h = png.size(images[1].data)
  -- (its size is the output's unless `size` says: a header claiming 100000 x 100000 would
  -- have the server encode 2.5 GB of pixels)
  if w and (w > MAX_SIDE or h > MAX_SIDE) then
    return bad_param("image", format("Invalid image 1: %dx%d; the devserver edits images of at most %d pixels a side.",
      w, h, MAX_SIDE), "invalid_value")
  end
  local mask = form.files.mask
  if mask then
    local mw, mh = png.size(mask.data)
    if not mw then
      return bad_param("mask", "Invalid mask: expected a PNG file (with a valid IHDR header).", "invalid_image_format")
    end
    if w and (mw ~= w or mh ~= h) then
      return bad_param("mask", format("Invalid mask: %dx%d, the image is %dx%d; they must have the same size.", mw, mh,
        w, h), "invalid_value")
    end
  end
  local o
  o, err = options(body, req.model, { w or 1024, h or 1024 })
  if not o then return err end
  local seed = prompt .. "\0" .. crc32(images[1].data) .. (mask and "\0" .. crc32(mask.data) or "")
  return answer(req, o, seed, prompt, "image_edit", 65 * #images)
end

--- POST /v1/images/variations (multipart: image, n, size, response_format)
function M.variations (req)
  local image = req.form.files.image
  if not image then return bad_param("image", "Missing required parameter: 'image'.", "missing_required_parameter") end
  if not png.is_image(image.data) then
    return bad_param("image", "Invalid image: expected a PNG file.", "invalid_image_format")
  end
  local o, err = options(req.body, req.model, { 1024, 1024 })
  if not o then return err end
  o.stream = false
  return answer(req, o, "variation\0" .. crc32(image.data), nil, "image_variation")
end

M.routes = {
  { "POST", "^/v1/images/generations$", M.generations },
  { "POST", "^/v1/images/edits$", M.edits, body = "multipart" },
  { "POST", "^/v1/images/variations$", M.variations, body = "multipart" },
}

return M
