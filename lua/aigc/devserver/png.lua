--- aigc devserver: a minimal PNG encoder for the image endpoints -- real,
-- valid, decodable files of the requested size: 4-colour palette images
-- (bit depth 2) whose zlib stream is made of stored (uncompressed) deflate
-- blocks, with the CRC-32 of each chunk and the Adler-32 of the stream.
-- The picture: 32-pixel blocks in a pattern and palette chosen by a seed;
-- a partial image leaves the rows below its progress plain.
-- Part of the devserver package.

local util = require "aigc.devserver.util"

local char, rep, sub = string.char, string.rep, string.sub
local spack, sunpack = string.pack, string.unpack
local concat = table.concat
local crc32, adler32, fnv = util.crc32, util.adler32, util.fnv

local M = {}

M.SIGNATURE = "\137PNG\r\n\26\n"

local function chunk (ctype, data)
  return spack(">I4", #data) .. ctype .. data .. spack(">I4", crc32(ctype .. data))
end

-- zlib: header, stored blocks of at most 65535 bytes, Adler-32.
local function zlib_stored (data)
  local out, n, pos = { "\x78\x01" }, #data, 1
  if n == 0 then out[2] = "\1\0\0\255\255" end
  while pos <= n do
    local len = math.min(65535, n - pos + 1)
    local final = pos + len > n and 1 or 0
    out[#out + 1] = char(final) .. spack("<I2I2", len, len ~ 0xFFFF) .. sub(data, pos, pos + len - 1)
    pos = pos + len
  end
  out[#out + 1] = spack(">I4", adler32(data))
  return concat(out)
end

-- Four palette colours from a seed: distinct, never too dark.
local function palette (seed)
  local out = {}
  for i = 0, 3 do
    local h = fnv(seed .. "\0" .. i)
    out[#out + 1] = char(64 + h % 192, 64 + (h >> 8) % 192, 64 + (h >> 16) % 192)
  end
  return concat(out)
end

-- The filtered scanlines: blocks of 32x32 pixels, colour (bx + by + k) % 4
-- (k from the seed); rows at or below `plain_from` use colour 0.
local function scanlines (width, height, seed, plain_from)
  local k = fnv(seed) % 4
  local row_bytes = (width * 2 + 7) // 8
  local plain = "\0" .. rep("\0", row_bytes)
  local rows, by_block = {}, {}
  for y = 0, height - 1 do
    if plain_from and y >= plain_from then rows[#rows + 1] = plain
    else
      local by = y // 32
      local line = by_block[by]
      if not line then
        local parts = {}
        for bx = 0, (width - 1) // 32 do parts[#parts + 1] = rep(char(((bx + by + k) % 4) * 0x55), 8) end
        line = "\0" .. sub(concat(parts), 1, row_bytes)
        by_block[by] = line
      end
      rows[#rows + 1] = line
    end
  end
  return concat(rows)
end

--- Encode a width x height picture for `seed` (a string); `progress` in
-- (0, 1) makes a partial image; `transparent` makes colour 0 transparent.
-- @usage local bytes = png.image(256, 256, "a robot painting")
function M.image (width, height, seed, progress, transparent)
  local key = ("png %d %d %s %s %s"):format(width, height, fnv(seed), tostring(progress), tostring(transparent))
  return util.cached(key, function ()
    local plain_from = progress and math.floor(height * progress) or nil
    local parts = { M.SIGNATURE,
      chunk("IHDR", spack(">I4I4BBBBB", width, height, 2, 3, 0, 0, 0)),
      chunk("PLTE", palette(seed)) }
    if transparent then parts[#parts + 1] = chunk("tRNS", "\0\255\255\255") end
    parts[#parts + 1] = chunk("IDAT", zlib_stored(scanlines(width, height, seed, plain_from)))
    parts[#parts + 1] = chunk("IEND", "")
    return concat(parts)
  end)
end

--- Width and height of PNG bytes, or nil when they are not a PNG (or one
-- cut short in its IHDR chunk, or of width or height 0: no image).
function M.size (bytes)
  if type(bytes) ~= "string" or #bytes < 24 or sub(bytes, 1, 8) ~= M.SIGNATURE or sub(bytes, 13, 16) ~= "IHDR" then
    return nil
  end
  local w, h = sunpack(">I4I4", bytes, 17)
  if w == 0 or h == 0 then return nil end
  return w, h
end

--- Whether bytes start like an image OpenAI accepts (PNG, JPEG, WebP, GIF).
function M.is_image (bytes)
  if type(bytes) ~= "string" then return false end
  return sub(bytes, 1, 8) == M.SIGNATURE or sub(bytes, 1, 3) == "\255\216\255"
    or (sub(bytes, 1, 4) == "RIFF" and sub(bytes, 9, 12) == "WEBP") or sub(bytes, 1, 4) == "GIF8"
end

return M
