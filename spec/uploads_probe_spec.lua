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
local uploads = require "uploads"

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
  local client

  devserver.fixture(_ENV, function (_, c) client = c end, { api_key = SECRET, max_retries = 0, timeout = 20 })

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

-- client:files_upload_parts: a file of any size through the Uploads API
-- (POST /uploads, its parts of at most 64 MB, complete), cancelled at the
-- server when it fails; against the bundled server's emulation over HTTP.
describe("files_upload_parts", function ()
  local srv, client, dir

  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { api_key = SECRET, max_retries = 0, timeout = 20 })
  uploads.folder_fixture(_ENV, function (d) dir = d end)

  local bytes = uploads.bytes

  -- The server's requests: their paths, and the parts' sizes.
  local function seen ()
    local paths, sizes = {}, {}
    for _, r in ipairs(srv:requests()) do
      paths[#paths + 1] = r.path
      if r.path:find("/parts$") then
        for _, p in ipairs(r.parts or {}) do if p.name == "data" then sizes[#sizes + 1] = p.size end end
      end
    end
    return paths, sizes
  end

  it("a file in parts of part_size: one file of the same bytes, the parts completed in order", function ()
    local path = dir .. "/big.jsonl"
    local want = bytes(3500)
    local f = assert(io.open(path, "wb"))
    f:write(want)
    f:close()
    local up = assert(client:files_upload_parts { file = path, purpose = "batch", part_size = 1000 })
    assert.equal("completed", up.status)
    assert.equal("big.jsonl", up.filename)
    assert.equal(3500, up.file.bytes)
    assert.equal(want, assert(client:files_content(up.file.id)).body)
    local paths, sizes = seen()
    assert.same({ 1000, 1000, 1000, 500 }, sizes)
    assert.equal("/v1/uploads", paths[1])
    assert.equal("/v1/uploads/" .. up.id .. "/complete", paths[6])
    assert.equal(64 * 1024 * 1024, aigc.files.PART_MAX)
  end)

  it("a reader's pieces cut at the parts' edges; non-blocking with _async", function ()
    local want = bytes(2500)
    local at = 0
    local function reader ()
      if at >= #want then return nil end
      local s = want:sub(at + 1, at + 333)
      at = at + #s
      return s
    end
    local fut = client:files_upload_parts_async { file = { reader = reader, size = #want }, filename = "r.jsonl",
                                                  purpose = "batch", part_size = 1024 }
    local up = assert(fut:wait())
    assert.equal(want, assert(client:files_content(up.file.id)).body)
    local _, sizes = seen()
    assert.same({ 1024, 1024, 452 }, sizes)
  end)

  it("a reader with fewer or more bytes than its size: kind io, the upload cancelled at the server", function ()
    for _, n in ipairs { 1500, 2600 } do
      srv:reset()
      local data = bytes(n)
      local given = false
      local res, err = client:files_upload_parts { purpose = "batch", filename = "s.jsonl", part_size = 1000,
        file = { size = 2000, reader = function () if given then return nil end given = true return data end } }
      assert.is_nil(res)
      assert.equal("io", err.kind)
      assert.is_string(err.upload_id)
      assert.matches("(cancelled)", err.message, 1, true)
      local paths = seen()
      assert.equal("/v1/uploads/" .. err.upload_id .. "/cancel", paths[#paths])
      assert.is_nil(paths[#paths - 1]:find("/complete$"))
    end
  end)

  -- Steps the client until the server saw a cancel (it is sent from the
  -- loop), at most 400 turns; the paths the server saw.
  local function steps_until_cancel_sent ()
    for _ = 1, 400 do
      local paths = seen()
      if (paths[#paths] or ""):find("/cancel$") then break end
      client:step(0.05)
    end
    return (seen())
  end

  it("an _async upload canceled midway is cancelled at the server too", function ()
    local fut
    local calls = 0
    fut = client:files_upload_parts_async { purpose = "batch", filename = "c.jsonl", part_size = 100,
      file = { size = 1000, reader = function ()
        calls = calls + 1
        if calls == 3 then fut:cancel("enough") end
        return string.rep("x", 50)
      end } }
    local _, err = fut:wait()
    assert.equal("canceled", err.kind)
    local paths = steps_until_cancel_sent()
    assert.matches("^/v1/uploads/upload_[^/]+/cancel$", paths[#paths])
  end)

  -- (the create's request was the future's: a cancel while it went canceled
  -- it too, its reply -- the upload's id -- was never read, and the upload
  -- waited at the server for its hour, cancelled by nobody)
  it("an _async upload canceled while its create goes: its reply names the upload, cancelled there", function ()
    local fut = client:files_upload_parts_async { purpose = "batch", filename = "early.jsonl", part_size = 100,
      file = { size = 300, reader = function () return string.rep("x", 100) end } }
    assert.equal("running", fut:status())   -- (its create submitted, its reply not read)
    assert.is_true(fut:cancel("the player left"))
    local _, err = fut:result()
    assert.equal("canceled", err.kind)
    local paths = steps_until_cancel_sent()
    assert.equal("/v1/uploads", paths[1])
    assert.matches("^/v1/uploads/upload_[^/]+/cancel$", paths[#paths])
    for _, path in ipairs(paths) do assert.is_nil(path:find("/parts$"), path) end   -- (no part was sent)
    for _ = 1, 400 do   -- (the cancel's reply, read: nothing left)
      if client:active() == 0 then break end
      client:step(0.05)
    end
    assert.equal(0, client:active())
  end)

  it("in a task it yields: spawn returns before the upload is done, the loop finishes it", function ()
    local want = bytes(3000)
    local up, order, reads = nil, {}, 0
    client:spawn(function ()
      up = assert(client:files_upload_parts { file = { size = #want, reader = function ()
        reads = reads + 1
        if reads > 1 then return nil end
        return want
      end }, filename = "t.jsonl", purpose = "batch", part_size = 1000 })
      order[#order + 1] = "done"
    end)
    order[#order + 1] = "spawned"   -- (spawn returned before the upload was done)
    local frames = 0
    while up == nil and frames < 400 do
      client:step(0.05)
      frames = frames + 1
    end
    assert.equal("spawned", order[1])
    assert.equal("done", order[#order])
    assert.equal(want, assert(client:files_content(up.file.id)).body)
  end)

  it("an empty file: no part, complete with part_ids [] (not {})", function ()
    local path = dir .. "/empty.jsonl"
    assert(io.open(path, "wb")):close()
    local up = assert(client:files_upload_parts { file = path, purpose = "batch" })
    assert.equal(0, up.file.bytes)
    local paths = seen()
    assert.same({ "/v1/uploads", "/v1/uploads/" .. up.id .. "/complete" }, paths)
  end)

  -- A FIFO's open blocked the call (and the host) for ever; /dev/zero was
  -- taken as a file of 0 bytes. Both are the io error a directory is.
  it("a path that is not a regular file (/dev/zero, a FIFO): kind io naming it, nothing sent", function ()
    srv:reset()
    local res, err = client:files_upload_parts { file = "/dev/zero", purpose = "batch", filename = "z.jsonl" }
    assert.is_nil(res)
    assert.equal("io", err.kind)
    assert.equal("params.file: /dev/zero: not a regular file (a character device)", err.message)
    assert.same({}, (seen()))
    local fifo = dir .. "/fifo"
    assert(require("procutil").execute("mkfifo '" .. fifo .. "'"))
    local r = require("luachild").run([[
      local c = require("aigc").client { base_url = arg[1], max_retries = 0 }
      local res, err = c:files_upload_parts { file = arg[2], purpose = "batch", filename = "f.jsonl" }
      print(res, err.kind, err.message)
    ]], { args = { srv.base_url, fifo }, timeout = 10 })
    assert.equal(0, r.status, r.stderr)
    assert.equal("nil\tio\tparams.file: " .. fifo .. ": not a regular file (a FIFO)\n", r.stdout)
    assert.same({}, (seen()))
  end)

  it("mime_type (else from the name), expires_after and md5 go to the server as given", function ()
    local path = dir .. "/m.jsonl"
    local f = assert(io.open(path, "wb"))
    f:write("{}\n")
    f:close()
    local up = assert(client:files_upload_parts { file = path, purpose = "batch", md5 = "0123abcd",
                                                  expires_after = { anchor = "created_at", seconds = 7200 } })
    local create = srv:bodies("/v1/uploads")[1]
    assert.equal("text/jsonl", create.mime_type)
    assert.equal(3, create.bytes)
    assert.equal(7200, create.expires_after.seconds)
    assert.equal("0123abcd", srv:bodies("/v1/uploads/" .. up.id .. "/complete")[1].md5)
    assert(client:files_upload_parts { file = path, filename = "x.bin", mime_type = "text/plain", purpose = "batch" })
    assert.equal("text/plain", srv:bodies("/v1/uploads")[2].mime_type)
  end)

  it("misuse raises: no file, a part over the API's 64 MB", function ()
    assert.has_error(function () client:files_upload_parts { purpose = "batch" } end)
    assert.has_error(function ()
      client:files_upload_parts { file = "/etc/hostname", purpose = "batch", part_size = 64 * 1024 * 1024 + 1 }
    end)
  end)
end)

-- Ctrl-C (a real SIGINT to a real interpreter) while a part is sent: the
-- interrupt goes on out of the call, after the upload is cancelled at the
-- server (else its parts wait there for an hour).
describe("files_upload_parts and Ctrl-C", function ()
  local luachild = require "luachild"
  local socket = require "socket"
  local CHILD = [[
local aigc = require "aigc"
local c = aigc.client { base_url = arg[1], max_retries = 0 }
local calls = 0
local function reader ()
  calls = calls + 1
  if calls == 2 then   -- the first part's bytes: works (Lua code) until the signal comes, 10 s at most
    io.write("READY\n"); io.flush()
    local stop, x = os.clock() + 10, 0
    while os.clock() < stop do for i = 1, 1e4 do x = x + i end end
  end
  return string.rep("y", 100)
end
if rawget(_G, "jit") then jit.off(reader) end
local ok, err = pcall(c.files_upload_parts, c, { purpose = "batch", filename = "i.jsonl", part_size = 100,
                                                 file = { size = 1000, reader = reader } })
print("RESULT", ok, tostring(err):match("interrupted!") and "interrupted!" or tostring(err))
]]

  it("cancels the upload at the server, then the interrupt propagates", function ()
    local srv = devserver.start()
    local child = luachild.run(CHILD, { args = { srv.base_url }, background = true })
    assert.truthy(child.pid, "the child did not start")
    child:until_printed("READY")
    socket.sleep(0.4)   -- now inside the reader's work
    os.execute("kill -INT " .. child.pid)
    local r = child:wait(60)
    local paths = {}
    for _, q in ipairs(srv:requests()) do paths[#paths + 1] = q.path end
    srv:stop()
    assert.equal(0, r.status, r.stderr .. r.stdout)
    assert.matches("RESULT\tfalse\tinterrupted!\n", r.stdout, 1, true)
    assert.matches("^/v1/uploads/upload_[^/]+/cancel$", paths[#paths])
    assert.is_nil(table.concat(paths, " "):find("/complete", 1, true))
  end)
end)
