-- Token estimates of images and audio by the model they go to: OpenAI's
-- patch rule (gpt-4.1-mini, gpt-4.1-nano, o4-mini...), its tile rule per
-- model (gpt-4o, gpt-4o-mini...), and audio by its length.
local aigc = require "aigc"
local conversation = require "aigc.conversation"

-- (never called: the estimates need no server)
local function client (model)
  return aigc.client { model = model, base_url = "http://127.0.0.1:9/v1", api_key = "sk-unused" }
end

local b64 = require "b64"   -- (spec/support: no bit operators, 5.1)

local function be32 (n) return string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
                                           math.floor(n / 256) % 256, n % 256) end
local function le32 (n) return string.char(n % 256, math.floor(n / 256) % 256, math.floor(n / 65536) % 256,
                                           math.floor(n / 16777216) % 256) end
local function le16 (n) return string.char(n % 256, math.floor(n / 256) % 256) end

local function png (w, h)
  return string.char(137) .. "PNG\r\n" .. string.char(26) .. "\n" .. be32(13) .. "IHDR" .. be32(w) .. be32(h)
    .. string.char(8, 2, 0, 0, 0) .. string.rep("\0", 40)
end

local function image (w, h, detail)
  return { role = "user", content = { { type = "image_url",
    image_url = { url = "data:image/png;base64," .. b64(png(w, h)), detail = detail } } } }
end

local function cost (msg, model) return conversation.estimate_message(msg, nil, 0, model) end

describe("image and audio token estimates", function ()
  it("count images by 32-pixel patches times the model's factor for gpt-4.1-mini, gpt-4.1-nano, o4-mini", function ()
    -- 1024 x 1024: 32 x 32 patches
    assert.equal(math.ceil(1024 * 1.62), cost(image(1024, 1024), "gpt-4.1-mini"))
    assert.equal(math.ceil(1024 * 2.46), cost(image(1024, 1024), "gpt-4.1-nano"))
    assert.equal(math.ceil(1024 * 1.72), cost(image(1024, 1024), "o4-mini"))
    -- 1800 x 2400: 57 x 75 patches, over 1,536: scaled to 1056 x 1408, 33 x 44 (the vision guide's example)
    assert.equal(math.ceil(1452 * 1.62), cost(image(1800, 2400), "gpt-4.1-mini"))
    -- never more than 1,536 patches
    assert.is_true(cost(image(8000, 8000), "gpt-4.1-nano") <= math.ceil(1536 * 2.46))
    -- a strip whose short side scales under a patch: one row of 1,536 (was 0 tokens)
    assert.equal(math.ceil(1536 * 1.62), cost(image(100000, 1), "gpt-4.1-mini"))
    assert.equal(math.ceil(1536 * 1.62), cost(image(40, 100000), "gpt-4.1-mini"))
    assert.equal(math.ceil(1536 * 1.62), cost(image(100000, 40), "gpt-4.1-mini"))
    -- detail does not change them; a dated name, a router's prefix
    assert.equal(math.ceil(1024 * 1.62), cost(image(1024, 1024, "low"), "gpt-4.1-mini-2025-04-14"))
    assert.equal(math.ceil(1024 * 1.72), cost(image(1024, 1024), "openai/o4-mini"))
    -- a small image: its patches (not the 85 of a tile model's low detail)
    assert.equal(math.ceil(4 * 1.62), cost(image(64, 64), "gpt-4.1-mini"))
    -- a URL (size unknown): a 1024 x 1024 image
    assert.equal(math.ceil(1024 * 1.62), cost({ role = "user", content = { { type = "input_image",
      image_url = "https://example.com/a.png" } } }, "gpt-4.1-mini"))
  end)

  it("count images by the model's tiles: gpt-4o-mini's are not gpt-4o's", function ()
    assert.equal(85 + 4 * 170, cost(image(1024, 1024), "gpt-4o"))
    assert.equal(85 + 4 * 170, cost(image(1024, 1024)))            -- no model: as before
    assert.equal(85 + 4 * 170, cost(image(1024, 1024), "gpt-4.1"))
    assert.equal(2833 + 4 * 5667, cost(image(1024, 1024), "gpt-4o-mini"))
    assert.equal(2833, cost(image(1024, 1024, "low"), "gpt-4o-mini-2024-07-18"))
    assert.equal(75 + 4 * 150, cost(image(1024, 1024), "o3"))
    assert.equal(85, cost(image(1024, 1024, "low"), "some-local-model"))
  end)

  it("count a Responses input_image given by file_id as an image of unknown size, not as its JSON", function ()
    local function by_id (detail) return { role = "user", content = { { type = "input_image", file_id = "file-abc123",
                                                                         detail = detail } } } end
    assert.equal(85 + 4 * 170, cost(by_id "high", "gpt-4o"))
    assert.equal(85, cost(by_id "auto", "gpt-4o"))
    assert.equal(math.ceil(1024 * 1.62), cost(by_id "high", "gpt-4.1-mini"))
  end)

  it("count a conversation's images by its model", function ()
    local conv = conversation.new { client = client(), model = "gpt-4.1-nano", message_overhead = 0 }
    conv:add(image(1024, 1024))
    assert.equal(math.ceil(1024 * 2.46), conv:tokens())
    -- the model in its params, else the client's
    conv = conversation.new { client = client("gpt-4o-mini"), message_overhead = 0 }
    conv:add(image(1024, 1024))
    assert.equal(2833 + 4 * 5667, conv:tokens())
    conv = conversation.new { client = client("gpt-4o-mini"), params = { model = "o4-mini" }, message_overhead = 0 }
    conv:add(image(1024, 1024))
    assert.equal(math.ceil(1024 * 1.72), conv:tokens())
  end)

  it("count audio by its length: 10 tokens a second", function ()
    -- a WAV of 60 s at 8,000 bytes a second (8 kHz, 8-bit mono)
    local header = "RIFF" .. le32(36 + 480000) .. "WAVE" .. "fmt " .. le32(16) .. le16(1) .. le16(1)
      .. le32(8000) .. le32(8000) .. le16(1) .. le16(8) .. "data" .. le32(480000)
    assert.equal(44, #header)
    local data = b64(header .. "\0\0\0\0") .. string.rep("AAAA", 160000)   -- 480,048 bytes
    local n = cost({ role = "user", content = { { type = "input_audio",
      input_audio = { data = data, format = "wav" } } } })
    assert.is_true(n >= 600 and n <= 601, tostring(n))
    -- the same bytes at 16 kHz 16-bit: 15 s
    header = header:sub(1, 24) .. le32(16000) .. le32(32000) .. header:sub(33)
    data = b64(header .. "\0\0\0\0") .. string.rep("AAAA", 160000)
    n = cost({ role = "user", content = { { type = "input_audio", input_audio = { data = data, format = "wav" } } } })
    assert.is_true(n >= 150 and n <= 151, tostring(n))
    -- an mp3 of 750 KB: taken at 64 kbit/s, 93.75 s
    n = cost({ role = "user", content = { { type = "input_audio",
      input_audio = { data = string.rep("AAAA", 250000), format = "mp3" } } } })
    assert.equal(938, n)
  end)
end)
