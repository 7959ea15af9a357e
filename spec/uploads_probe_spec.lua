-- Function-fed uploads with a declared `size`: libcurl asks for that many
-- bytes and no more, so a reader with more to give was cut short unseen
-- (`{ reader = pieces{"abcd", "ef"}, size = 4 }` uploaded "abcd" and the call
-- succeeded; with `size = 0` the reader was never called): the user who got
-- `size` wrong uploaded a corrupt file and was told it succeeded. The last
-- byte of the size is now held back until the reader says it ended; one
-- that gives more fails the call (kind "io", naming both sizes) before the
-- server has the whole body.
local aigc = require "aigc"
local devserver = require "devserver"

local SECRET = "sk-test-SECRET-uploads-probe"

-- A reader giving the strings of `list` in turn, then nil; `st.calls` counts its calls.
local function pieces (list)
  local st = { calls = 0 }
  function st.reader ()
    st.calls = st.calls + 1
    return list[st.calls]
  end
  return st
end

describe("uploads fed by a function with a size", function ()
  local srv, client

  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)

  before_each(function ()
    srv:reset()
    client = aigc.client { base_url = srv.base_url, api_key = SECRET, max_retries = 0, timeout = 20 }
  end)
  after_each(function () client:close() end)

  local function stored_files ()
    return #assert(client:files_list { purpose = "batch" }).data
  end

  it("a reader with more bytes than its size fails the call (io, both sizes), and the server keeps no file",
     function ()
    local feed = pieces { "abcd", "ef" }
    local res, err = client:files_upload { purpose = "batch",
                                           file = { reader = feed.reader, filename = "a.jsonl", size = 4 } }
    assert.is_nil(res)
    assert.equal("io", err.kind)
    assert.matches("more bytes than its size", err.message)
    assert.matches("size 4, it gave 6", err.message, 1, true)
    assert.equal(2, feed.calls)
    assert.is_nil(tostring(err):find(SECRET, 1, true))
    assert.equal(0, stored_files())   -- the last byte was held back: no whole body reached it
  end)

  it("size 0 with a reader that gives bytes fails the call; one that gives nothing uploads an empty file",
     function ()
    local feed = pieces { "x" }
    local res, err = client:files_upload { purpose = "batch",
                                           file = { reader = feed.reader, filename = "z.jsonl", size = 0 } }
    assert.is_nil(res)
    assert.equal("io", err.kind)
    assert.matches("size 0, it gave 1", err.message, 1, true)
    assert.equal(1, feed.calls)
    local empty = pieces {}
    res = assert(client:files_upload { purpose = "batch",
                                       file = { reader = empty.reader, filename = "e.jsonl", size = 0 } })
    assert.equal(0, res.bytes)
    assert.equal(1, empty.calls)
  end)

  it("exactly its size: the bytes arrive whole, the reader is asked once more for its end, never after", function ()
    for _, list in ipairs { { "abcd" }, { "ab", "cd" }, { "a", "b", "c", "d" } } do
      local feed = pieces(list)
      local res = assert(client:files_upload { purpose = "batch",
                                               file = { reader = feed.reader, filename = "x.jsonl", size = 4 } })
      assert.equal(4, res.bytes)
      assert.equal(#list + 1, feed.calls)
      assert.equal("abcd", assert(client:files_content(res.id)).body)
    end
  end)

  it("too few bytes still fails the call, naming both sizes", function ()
    local res, err = client:files_upload { purpose = "batch",
                                           file = { reader = pieces { "abc" }.reader, filename = "s.jsonl", size = 4 } }
    assert.is_nil(res)
    assert.equal("io", err.kind)
    assert.matches("ended before its size (size 4, it gave 3)", err.message, 1, true)
  end)

  it("non-blocking: the extra ask comes from step, and a reader calling the client there is served", function ()
    local in_step, outside, nested = false, 0, nil
    local list = { "abcd" }
    local calls = 0
    local req = client:files_upload_async { purpose = "batch", file = { filename = "n.jsonl", size = 4,
      reader = function ()
        if not in_step then outside = outside + 1 end
        calls = calls + 1
        if calls == 2 then   -- the extra ask: a blocking call on the same client from inside it
          nested = assert(client:files_list { purpose = "batch" })
          return "more"
        end
        return list[calls]
      end } }
    local frames = 0
    while req:status() == "queued" or req:status() == "running" do
      in_step = true
      client:step(0.05)
      in_step = false
      frames = frames + 1
      assert.is_true(frames < 2000)
    end
    local res, err = req:wait()
    assert.is_nil(res)
    assert.equal("io", err.kind)
    assert.matches("size 4, it gave 8", err.message, 1, true)
    assert.equal(0, outside)
    assert.equal(2, calls)
    assert.is_table(nested)
  end)
end)
