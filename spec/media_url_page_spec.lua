-- A `url` image whose link answers 200 with a page (a captive portal's, a
-- CDN's "link expired" HTML, a JSON error with a 200) is not an image:
-- res:save and res:save_async fail with kind "parse" and leave the file
-- at the path as it was, instead
-- of writing the page under image-1.png and calling it saved. Over real
-- HTTP on loopback against the bundled server's `url-page` fault.
local devserver = require "devserver"
local proc = require "procutil"

local SECRET = "sk-test-SECRET-urlpage-41"
local PAGE = { ["x-aigc-fault"] = "url-page" }

describe("a url image that answers with a page", function ()
  local srv, client, dir

  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { api_key = SECRET })
  before_each(function () dir = assert(proc.first_line("mktemp -d /tmp/aigc-urlpage-XXXXXX")) end)
  after_each(function () os.execute("rm -rf '" .. dir .. "'") end)

  local function page_result (n)
    local res = assert(client:images_generate { prompt = "a knight", size = "16x16", n = n, headers = PAGE })
    assert.matches("%.html$", res.data[1].url)   -- (the fault applied: the link is a page)
    return res
  end

  it("save: kind parse naming the image, the old file kept, no page written, no .part left", function ()
    local res = page_result(2)
    local old = assert(io.open(dir .. "/image-1.png", "wb"))
    old:write("OLD")
    old:close()
    local paths, err = res:save(dir)
    assert.is_nil(paths)
    assert.equal("parse", err.kind)
    assert.matches("not an image (image 1)", err.message, 1, true)
    assert.matches("text/html", err.message, 1, true)
    assert.matches("Link expired", err.body, 1, true)        -- the page itself, to read
    assert.equal("OLD", proc.read_file(dir .. "/image-1.png"))
    assert.is_false(proc.exists(dir .. "/image-1.png.part"))
    assert.is_false(proc.exists(dir .. "/image-2.png"))
    assert.is_nil(tostring(err):find(SECRET, 1, true))
  end)

  it("save_async in a frame loop: the same error, on_error called once, nothing written", function ()
    local res = page_result(1)
    local errs, done = {}, 0
    local f = res:save_async(dir .. "/frame-%d.png", {
      on_done = function () done = done + 1 end,
      on_error = function (e) errs[#errs + 1] = e end })
    assert.equal("running", f:status())   -- (the download runs as the loop turns)
    while client:step(0.05) > 0 do end
    local paths, err = f:result()
    assert.is_nil(paths)
    assert.equal("parse", err.kind)
    assert.equal(0, done)
    assert.equal(1, #errs)
    assert.is_false(proc.exists(dir .. "/frame-1.png"))
    assert.is_false(proc.exists(dir .. "/frame-1.png.part"))
  end)

  it("the client stays usable and a real url image still saves (the check is on pages only)", function ()
    local _, err = page_result(1):save(dir .. "/a-%d.png")
    assert.equal("parse", err.kind)
    local res = assert(client:images_generate { prompt = "a knight", size = "16x16" })
    assert.same({ dir .. "/b-1.png" }, assert(res:save(dir .. "/b-%d.png")))
    assert.equal("\137PNG", proc.read_file(dir .. "/b-1.png"):sub(1, 4))
    -- a plain download of the page is what download promises: any URL, its bytes
    local got = assert(client:download(page_result(1).data[1].url, { to = dir .. "/page.html" }))
    assert.equal("text/html", got.content_type)
    assert.matches("Link expired", proc.read_file(dir .. "/page.html"), 1, true)
    assert.is_true(srv:stats().requests_total > 0)
  end)
end)
