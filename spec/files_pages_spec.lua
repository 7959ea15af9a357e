-- files_list page loops against servers whose cursors do not move on: the
-- README's `while page.next_after do` loop must end. The scripted server
-- (spec/support/scripted.lua) answers with the exact pages below.
local aigc = require "aigc"
local scripted = require "scripted"
local cjson = require "cjson"

local function page (has_more, ...)
  local data = {}
  for i, id in ipairs { ... } do data[i] = { object = "file", id = id } end
  return "json " .. cjson.encode { object = "list", has_more = has_more, data = data }
end

local function client_of (srv)
  return aigc.client { base_url = srv.base_url, api_key = "sk-pages-SECRET", max_retries = 0, model = "m" }
end

-- The README's loop, bounded at `max` pages: the pages read, the last result and error.
local function walk (c, max, params)
  local res, err = c:files_list(params)
  local pages = 1
  while res and res.next_after and pages < max do
    local p = { after = res.next_after }
    for k, v in pairs(params) do p[k] = v end
    res, err = c:files_list(p)
    pages = pages + 1
  end
  return pages, res, err
end

describe("files_list page loops", function ()
  it("a server whose cursors go round (A, B, A) is an error: the loop ends", function ()
    local srv = scripted.start { page(true, "file-0", "file-A"), page(true, "file-1", "file-B"),
                                 page(true, "file-2", "file-A") }
    local c = client_of(srv)
    local pages, res, err = walk(c, 4, { limit = 2 })
    assert.equal(3, pages)
    assert.is_nil(res)
    assert.equal("parse", err.kind)
    assert.matches("file%-A", err.message)
    assert.matches("cycle", err.message)
    assert.not_matches("SECRET", tostring(err))
    c:close()
    local sent = srv.finish()
    assert.equal(3, #sent)
  end)

  it("two walks of the same files, one after the other or interleaved, are no cycle", function ()
    local srv = scripted.start { page(true, "a", "b"), page(false, "c"),
                                 page(true, "a", "b"), page(true, "a", "b"), page(false, "c"), page(false, "c") }
    local c = client_of(srv)
    local pages, res = walk(c, 5, { limit = 2 })
    assert.equal(2, pages)
    assert.is_nil(res.next_after)
    -- interleaved: two loops over the same listing, as two tasks would run them
    local p1 = assert(c:files_list { limit = 2 })
    local p2 = assert(c:files_list { limit = 2 })
    assert.equal("b", p1.next_after)
    local last1 = assert(c:files_list { limit = 2, after = p1.next_after })
    local last2 = assert(c:files_list { limit = 2, after = p2.next_after })
    assert.is_nil(last1.next_after)
    assert.is_nil(last2.next_after)
    c:close()
    assert.equal(6, #srv.finish())
  end)
end)
