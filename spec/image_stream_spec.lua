-- Image streams (`stream = true` or a function, `partial_images`) as a
-- hostile or unlucky server gives them: several images in one stream (a
-- completed event each), a stream cut after some of them, events that
-- come out of order. The bundled server and a scripted one (exact events).
local aigc = require "aigc"
local cjson = require "cjson"
local devserver = require "devserver"
local scripted = require "scripted"

local PNG = "\137PNG\r\n\26\n"

-- An image stream's body: the events (tables) as SSE, without [DONE]
-- (image streams have none), for the scripted server.
local function image_stream (events)
  local out = {}
  for i, ev in ipairs(events) do out[i] = "data: " .. cjson.encode(ev) .. "\n\n" end
  return "sse " .. table.concat(out)
end

local b64 = require "b64"

describe("image streams", function ()
  local client
  devserver.fixture(_ENV, function (_, c) client = c end, { api_key = "sk-test-SECRET-imgstream-1" })

  it("n = 2: both completed images are the result, not only the last", function ()
    local seen = {}
    local res = assert(client:images_generate { prompt = "two towers", size = "16x8", model = "gpt-image-1", n = 2,
                                                partial_images = 1, stream = function (ev) seen[#seen + 1] = ev end })
    local completed = {}
    for _, ev in ipairs(seen) do
      if ev.type == "image_generation.completed" then completed[#completed + 1] = ev end
    end
    assert.equal(2, #completed)
    assert.equal(2, #res.data)
    for i = 1, 2 do
      assert.equal(PNG, res.data[i].bytes:sub(1, 8))
      assert.equal(completed[i].bytes, res.data[i].bytes)
      assert.equal(completed[i].b64_json, res.data[i].b64_json)
    end
    assert.are_not.equal(res.data[1].bytes, res.data[2].bytes)   -- (two images, not one twice)
    assert.is_table(res.usage)
  end)

  it("n = 2 edits (image_edit events), saved as two files", function ()
    local src = assert(client:images_generate { prompt = "a door", size = "8x8", model = "gpt-image-1" })
    local res = assert(client:images_edit { image = { data = src.data[1].bytes, filename = "door.png" },
                                            prompt = "paint it red", model = "gpt-image-1", n = 2, stream = true })
    assert.equal("image_edit.completed", res.type)
    assert.equal(2, #res.data)
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir '" .. dir .. "'"))
    local paths = assert(res:save(dir))
    assert.equal(2, #paths)
    for i = 1, 2 do
      local f = assert(io.open(paths[i], "rb"))
      assert.equal(res.data[i].bytes, f:read("*a"))
      f:close()
    end
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("cut after the first of two images: err.partial has it, and the partial image after it", function ()
    local res, err = client:images_generate { prompt = "cut", size = "16x16", model = "gpt-image-1", n = 2,
      partial_images = 1, stream = true, headers = { ["x-aigc-fault"] = "drop-after=3" } }
    assert.is_nil(res)
    assert.equal("stream", err.kind)
    assert.is_table(err.partial)
    assert.equal(1, #err.partial.data)
    assert.equal(PNG, err.partial.data[1].bytes:sub(1, 8))
    assert.equal(PNG, err.partial.partial_image.bytes:sub(1, 8))
    assert.equal(0, err.partial.partial_image.partial_image_index)
  end)

  it("a failure before any image has no err.partial", function ()
    local res, err = client:images_generate { prompt = "x", size = "16x16", model = "gpt-image-1", stream = true,
                                              headers = { ["x-aigc-fault"] = "status=500" } }
    assert.is_nil(res)
    assert.is_nil(err.partial)
  end)

  describe("a scripted server", function ()
    -- (the client does not read the image: PNG-like bytes, every byte value in them)
    local bytes = {}
    for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
    local img = PNG .. table.concat(bytes)
    local usage = { input_tokens = 5, output_tokens = 272, total_tokens = 277 }

    local function run (events, params)
      local s = scripted.start { image_stream(events) }
      local c = aigc.client { base_url = s.base_url, api_key = "sk-test-SECRET-imgstream-2", max_retries = 0 }
      params.prompt, params.model = "p", "gpt-image-1"
      local res, err = c:images_generate(params)
      c:close()
      s.finish()
      return res, err
    end

    it("a partial image after the last completed one: an error (the stream was cut), both in err.partial", function ()
      local res, err = run({ { type = "image_generation.completed", b64_json = b64(img), usage = usage },
                             { type = "image_generation.partial_image", b64_json = b64(img .. "2"),
                               partial_image_index = 1 } }, { stream = true, n = 2 })
      assert.is_nil(res)
      assert.equal("stream", err.kind)
      assert.matches("ended before its completed event", err.message)
      assert.equal(img, err.partial.data[1].bytes)
      assert.equal(img .. "2", err.partial.partial_image.bytes)
      assert.equal(1, err.partial.partial_image.partial_image_index)
    end)

    it("an event whose b64_json is not base64: kind parse, the images before it in err.partial", function ()
      local res, err = run({ { type = "image_generation.completed", b64_json = b64(img), usage = usage },
                             { type = "image_generation.partial_image", b64_json = "!!!!" } },
                           { stream = function () end, n = 2 })
      assert.is_nil(res)
      assert.equal("parse", err.kind)
      assert.equal(img, err.partial.data[1].bytes)
      assert.is_nil(err.partial.partial_image)
    end)

    it("the completed event's usage is the result's, counted under the model asked for", function ()
      local res = assert(run({ { type = "image_generation.completed", b64_json = b64(img), usage = usage } },
                             { stream = true }))
      assert.equal(1, #res.data)
      assert.equal(img, res.data[1].bytes)
      assert.equal(277, res.usage.total_tokens)
      assert.equal("gpt-image-1", res.model)
    end)
  end)
end)
