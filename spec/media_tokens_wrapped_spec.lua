-- Token estimates read an image's size (and a WAV's byte rate) from the
-- first bytes of its base64 data: base64 wrapped in lines (the `base64`
-- tool writes 76 columns) must give the same estimate as unwrapped. Its
-- first 65,536 characters held a quad cut in two by the newlines: the
-- header did not decode and the image was estimated as 1024 x 1024.
local tokens = require "aigc.tokens"
local b64 = require "b64"

local function be32 (n)
  local f = math.floor
  return string.char(f(n / 16777216) % 256, f(n / 65536) % 256, f(n / 256) % 256, n % 256)
end

-- A PNG's signature and IHDR (w x h), then `pad` bytes (the rest of a file).
local function png (w, h, pad)
  return "\137PNG\r\n\26\n" .. be32(13) .. "IHDR" .. be32(w) .. be32(h) .. "\8\6\0\0\0" .. be32(0)
         .. ("\0"):rep(pad)
end

local function wrap (s, cols)
  return (s:gsub("(" .. ("."):rep(cols) .. ")", "%1\n"))
end

local function image_message (data)
  return { role = "user", content = { { type = "image_url",
                                        image_url = { url = "data:image/png;base64," .. data, detail = "high" } } } }
end

describe("token estimates of base64 wrapped in lines", function ()
  it("an image's size is read from wrapped base64 as from unwrapped", function ()
    local text = b64(png(64, 64, 100000))
    local wrapped = wrap(text, 76)
    -- (the case that failed: the whitespace-free part of the first 65,536 characters ends mid-quad)
    assert.equal(1, #(wrapped:sub(1, 65536):gsub("%s", "")) % 4)
    for _, model in ipairs { "gpt-4.1-mini", "gpt-4o" } do
      local plain = tokens.estimate_message(image_message(text), nil, 0, model)
      assert.equal(plain, tokens.estimate_message(image_message(wrapped), nil, 0, model))
      -- (and it is the 64 x 64 image's, not the 1024 x 1024 default's)
      assert.is_true(plain < tokens.estimate_message(image_message(b64(png(1024, 1024, 10))), nil, 0, model))
    end
  end)

  it("a WAV's byte rate is read from wrapped base64", function ()
    local function le (n, k)
      local out = {}
      for i = 1, k do out[i] = string.char(math.floor(n / 256 ^ (i - 1)) % 256) end
      return table.concat(out)
    end
    -- 16,000 bytes a second (16 kHz, 8-bit mono), 5 s: 64 kbit/s's guess, when the header is not
    -- read, makes it 10 s
    local header = "RIFF" .. le(36 + 80000, 4) .. "WAVE" .. "fmt " .. le(16, 4) .. le(1, 2) .. le(1, 2)
                   .. le(16000, 4) .. le(16000, 4) .. le(1, 2) .. le(8, 2) .. "data" .. le(80000, 4)
    local text = b64(header .. ("\128"):rep(80000))
    for _, cols in ipairs { 76, 64 } do   -- (64, as PEM: its first 4,096 characters ended mid-quad)
      local msg = { role = "user", content = { { type = "input_audio",
                                                 input_audio = { data = wrap(text, cols), format = "wav" } } } }
      local n = tokens.estimate_message(msg, nil, 0)
      assert.is_true(n >= 50 and n <= 52, "5 s of audio: about 50 tokens, got " .. n .. " at " .. cols .. " columns")
    end
  end)
end)
