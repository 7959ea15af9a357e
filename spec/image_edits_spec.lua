-- Image edits as multipart uploads, probed as a hostile user would: several
-- images, a mask of another size or cut short, a filename made to inject
-- lines into the part's headers, non-ASCII names. What the bundled server
-- received is read back from it (its record of the parts).
local devserver = require "devserver"

describe("image edits (multipart)", function ()
  local srv, client
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { api_key = "sk-test-SECRET-edits-1" })

  local function png (size)
    return assert(client:images_generate { prompt = "a plate", size = size, model = "gpt-image-1" }).data[1].bytes
  end

  it("a PNG cut inside its IHDR header (image or mask): a 400 saying so, not the server's 500", function ()
    local whole = png("16x16")
    local cut = whole:sub(1, 20)   -- (signature, the IHDR's length and type, half its width)
    local res, err = client:images_edit { image = { data = cut, filename = "cut.png" }, prompt = "p" }
    assert.is_nil(res)
    assert.equal(400, err.status)
    assert.matches("Invalid image 1: a PNG file without a valid IHDR header", err.message, 1, true)
    res, err = client:images_edit { image = { data = whole, filename = "a.png" },
                                    mask = { data = cut, filename = "m.png" }, prompt = "p" }
    assert.is_nil(res)
    assert.equal(400, err.status)
    assert.matches("Invalid mask: expected a PNG file", err.message, 1, true)
  end)

  it("an image whose header claims more than 4096 pixels a side: a 400, not an output that large", function ()
    -- (only the header: 100000 x 100000 had the server encode 2.5 GB; 5000 x 1 shows the bound)
    local function header (w, h)
      local function be32 (n)
        local f = math.floor
        return string.char(f(n / 16777216) % 256, f(n / 65536) % 256, f(n / 256) % 256, n % 256)
      end
      return "\137PNG\r\n\26\n" .. be32(13) .. "IHDR" .. be32(w) .. be32(h) .. "\8\2\0\0\0" .. be32(0)
    end
    local res, err = client:images_edit { image = { data = header(5000, 1), filename = "wide.png" }, prompt = "p" }
    assert.is_nil(res)
    assert.equal(400, err.status)
    assert.matches("Invalid image 1: 5000x1; the devserver edits images of at most 4096 pixels a side",
                   err.message, 1, true)
    assert(client:images_edit { image = { data = header(4096, 1), filename = "edge.png" }, prompt = "p",
                                response_format = "b64_json" })
  end)

  it("a mask of another size: a 400 naming both sizes", function ()
    local res, err = client:images_edit { image = { data = png("16x16"), filename = "a.png" },
                                          mask = { data = png("8x8"), filename = "m.png" }, prompt = "p" }
    assert.is_nil(res)
    assert.equal(400, err.status)
    assert.matches("Invalid mask: 8x8, the image is 16x16", err.message, 1, true)
  end)

  it("several images go as image[], in order; a filename's quotes and CR/LF cannot add header lines", function ()
    local img = png("8x8")
    local evil = 'a"b\r\nContent-Type: text/evil\r\n\r\nX.png'
    assert(client:images_edit { image = { { data = img, filename = evil },
                                          { data = img, filename = "\195\169t\195\169.png" } },   -- été.png
                                prompt = "p", model = "gpt-image-1" })
    local parts = srv:last().parts
    local images = {}
    for _, p in ipairs(parts) do
      if p.name == "image[]" then images[#images + 1] = p end
      assert.is_nil(p.name:find("[\r\n]"))
    end
    assert.equal(2, #images)
    assert.equal("image/png", images[1].content_type)   -- (not the injected text/evil)
    assert.is_nil(images[1].filename:find('[\r\n"]'))
    assert.equal("\195\169t\195\169.png", images[2].filename)
  end)

  it("a path that does not exist, or a folder: raised at the call, naming the field", function ()
    assert.has_error(function () client:images_edit { image = "/nonexistent/x.png", prompt = "p" } end,
                     "bad argument #1 to 'images_edit' (params.image: /nonexistent/x.png: No such file or directory)")
    assert.has_error(function () client:images_edit { image = { "/tmp" }, prompt = "p" } end,
                     "bad argument #1 to 'images_edit' (params.image[1]: /tmp is a directory "
                     .. "(only a regular file can be uploaded))")
  end)
end)
