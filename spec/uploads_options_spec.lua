-- files_upload_parts took none of the per-call options the other calls take
-- (`timeout`, `headers`, `deadline`, `extra_query`, `on_done`...): they were
-- ignored, a misspelt one not refused. And its create (`POST /uploads`) was
-- retried by the engine after a reply lost on the way back: the server had
-- made the upload, the retry made a second one, the first left pending at
-- the server for an hour with an id nobody knew.
local aigc = require "aigc"
local devserver = require "devserver"
local uploads = require "uploads"

local SECRET = "sk-test-SECRET-uploads-options"

describe("files_upload_parts call options", function ()
  local srv, client

  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { api_key = SECRET, max_retries = 0, timeout = 30 })

  local file_of = uploads.file_of
  local function paths () return uploads.paths(srv) end

  it("headers and extra_query go with the create, every part and the complete", function ()
    local up = assert(client:files_upload_parts { file = file_of(string.rep("a", 250)), filename = "h.jsonl",
      purpose = "batch", part_size = 100, headers = { ["X-Trace"] = "t1" }, extra_query = { trace = "q1" } })
    assert.equal("completed", up.status)
    local reqs = srv:requests()
    assert.equal(5, #reqs)   -- create, 3 parts, complete
    for _, r in ipairs(reqs) do
      assert.equal("t1", r.headers["x-trace"], r.path)
      assert.equal("q1", r.query.trace, r.path)
    end
  end)

  it("idempotency_key and extra_body go with the create only (given to every part, a part would be the first)",
     function ()
    local up = assert(client:files_upload_parts { file = file_of(string.rep("i", 150)), filename = "i.jsonl",
      purpose = "batch", part_size = 100, idempotency_key = "ik-uploads-1", extra_body = { note = "n1" } })
    local reqs = srv:requests()
    assert.equal("/v1/uploads", reqs[1].path)
    assert.equal("ik-uploads-1", reqs[1].headers["idempotency-key"])
    assert.equal("n1", srv:bodies("/v1/uploads")[1].note)
    for i = 2, #reqs do assert.is_nil(reqs[i].headers["idempotency-key"], reqs[i].path) end
    assert.is_nil(srv:bodies("/v1/uploads/" .. up.id .. "/complete")[1].note)
  end)

  it("timeout is per request: a create that never answers fails as a timeout", function ()
    local res, err = client:files_upload_parts { file = file_of("abc"), filename = "t.jsonl", purpose = "batch",
      timeout = 0.3, headers = { ["x-aigc-fault"] = "hang,times=1" } }
    assert.is_nil(res)
    assert.equal("timeout", err.kind)
    assert.matches("timeout: 0.3 s per attempt", err.message, 1, true)
  end)

  it("deadline is for the whole upload: five requests of 0.2 s each pass a deadline of 0.5 s", function ()
    local res, err = client:files_upload_parts { file = file_of(string.rep("d", 300)), filename = "d.jsonl",
      purpose = "batch", part_size = 100, deadline = 0.5, headers = { ["x-aigc-fault"] = "delay=200" } }
    assert.is_nil(res)
    assert.equal("timeout", err.kind)
    assert.is_nil(table.concat(paths(), " "):find("/complete", 1, true))
    -- the client's deadline is for the whole upload too
    srv:reset()
    local c = aigc.client { base_url = srv.base_url, api_key = SECRET, max_retries = 0, timeout = 30, deadline = 0.5 }
    res, err = c:files_upload_parts { file = file_of(string.rep("d", 300)), filename = "d.jsonl",
      purpose = "batch", part_size = 100, headers = { ["x-aigc-fault"] = "delay=200" } }
    c:close()
    assert.is_nil(res)
    assert.equal("timeout", err.kind)
    -- a deadline the upload keeps is no failure
    srv:reset()
    assert(client:files_upload_parts { file = file_of("ok"), filename = "k.jsonl", purpose = "batch", deadline = 60 })
  end)

  it("a bad call option is misuse, as in the other calls", function ()
    local ok, msg = pcall(client.files_upload_parts, client, { file = file_of("x"), filename = "x.jsonl",
                                                               purpose = "batch", timeout = "soon" })
    assert.is_false(ok)
    assert.matches("timeout", tostring(msg), 1, true)
    assert.equal(0, #srv:requests())
  end)

  it("on_done runs with the upload, for the blocking call and the _async form", function ()
    local got = {}
    local up = assert(client:files_upload_parts { file = file_of("abc"), filename = "o.jsonl", purpose = "batch",
      on_done = function (res) got[#got + 1] = res.status end })
    assert.equal("completed", up.status)
    local fut = client:files_upload_parts_async { file = file_of("def"), filename = "p.jsonl", purpose = "batch",
      on_done = function (res) got[#got + 1] = res.file.bytes end }
    assert(fut:wait())
    assert.same({ "completed", 3 }, got)
  end)
end)

describe("files_upload_parts' create and its retries", function ()
  local srv, client

  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { api_key = SECRET, max_retries = 2, timeout = 30 })

  local function creates () return uploads.count(srv, "/v1/uploads") end

  it("a create whose reply is lost (the server made it) is not sent again: no second, orphan upload", function ()
    local res, err = client:files_upload_parts { file = "/etc/hostname", purpose = "batch",
                                                 headers = { ["x-aigc-fault"] = "reset,times=1" } }
    assert.is_nil(res)
    assert.equal("connect", err.kind)
    assert.matches("not created again", err.message, 1, true)
    assert.equal(1, creates())
    assert.is_nil(tostring(err):find(SECRET, 1, true))
  end)

  it("a create the server refused (5xx, 429) is retried as the engine would, up to max_retries", function ()
    local up = assert(client:files_upload_parts { file = "/etc/hostname", purpose = "batch",
                                                  headers = { ["x-aigc-fault"] = "status=500,times=1" } })
    assert.equal("completed", up.status)
    assert.equal(2, creates())
    srv:reset()
    local res, err = client:files_upload_parts { file = "/etc/hostname", purpose = "batch", max_retries = 0,
                                                 headers = { ["x-aigc-fault"] = "status=429,retry-after=0.1,times=1" } }
    assert.is_nil(res)
    assert.equal(429, err.status)
    assert.equal(1, creates())
    srv:reset()
    up = assert(client:files_upload_parts { file = "/etc/hostname", purpose = "batch",
                                            headers = { ["x-aigc-fault"] = "status=429,retry-after=0.1,times=2" } })
    assert.equal("completed", up.status)
    assert.equal(3, creates())
    -- a retry-after over 120 s: not retried (as the engine does)
    srv:reset()
    res, err = client:files_upload_parts { file = "/etc/hostname", purpose = "batch",
                                           headers = { ["x-aigc-fault"] = "status=429,retry-after=600,times=1" } }
    assert.is_nil(res)
    assert.equal(429, err.status)
    assert.equal(1, creates())
  end)

  it("a connection never made is retried (nothing was sent); on_error gets the error", function ()
    local c = aigc.client { base_url = "http://127.0.0.1:1/v1", api_key = SECRET, max_retries = 1, timeout = 30 }
    local seen
    local res, err = c:files_upload_parts { file = "/etc/hostname", purpose = "batch",
                                            on_error = function (e) seen = e end }
    c:close()
    assert.is_nil(res)
    assert.equal("connect", err.kind)
    assert.equal(1, err.retries)
    assert.equal(err, seen)
  end)
end)

-- What goes wrong mid-upload: the error says what happened to the upload.
describe("files_upload_parts midway", function ()
  local srv

  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)
  before_each(function () srv:reset() end)

  local function paths () return uploads.paths(srv) end

  it("a reader that closes the client: the error says the upload was not cancelled (the cancel could not go)",
     function ()
    local c = aigc.client { base_url = srv.base_url, api_key = SECRET, max_retries = 0, timeout = 30 }
    local n = 0
    local res, err = c:files_upload_parts { filename = "c.jsonl", purpose = "batch", part_size = 100,
      file = { size = 300, reader = function ()
        n = n + 1
        if n == 2 then c:close() end
        return string.rep("a", 100)
      end } }
    assert.is_nil(res)
    assert.equal("canceled", err.kind)
    assert.is_string(err.upload_id)
    assert.matches("(not cancelled at the server: ", err.message, 1, true)
    assert.is_nil(err.message:find("(cancelled)", 1, true))
    local p = paths()
    assert.is_nil(p[#p]:find("/cancel$"))
  end)

  it("a path that shrinks during the upload: says so (not a reader never given), cancelled", function ()
    local c = aigc.client { base_url = srv.base_url, api_key = SECRET, max_retries = 0, timeout = 30 }
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write(string.rep("c", 3 * 8192))   -- (parts past stdio's buffer: the cut is seen)
    f:close()
    local fut = c:files_upload_parts_async { file = path, filename = "s.jsonl", purpose = "batch", part_size = 8192 }
    local frames = 0
    repeat
      c:step(0.01)
      frames = frames + 1
      local p = paths()
    until (p[#p] or ""):find("/parts$") or frames > 2000
    assert(io.open(path, "wb")):close()
    local res, err = fut:wait()
    c:close()
    os.remove(path)
    assert.is_nil(res)
    assert.equal("io", err.kind)
    assert.matches(path .. " shrank during the upload (24576 bytes when it began)", err.message, 1, true)
    local p = paths()
    assert.matches("/cancel$", p[#p])
  end)

  it("a size that is an exact multiple of part_size: that many parts, no empty one", function ()
    local c = aigc.client { base_url = srv.base_url, api_key = SECRET, max_retries = 0, timeout = 30 }
    local given = 0
    local up = assert(c:files_upload_parts { filename = "b.jsonl", purpose = "batch", part_size = 100,
      file = { size = 200, reader = function ()
        given = given + 1
        if given <= 2 then return string.rep("b", 100) end
      end } })
    c:close()
    assert.equal(200, up.file.bytes)
    local p = paths()
    assert.equal(4, #p)   -- create, 2 parts, complete
    assert.matches("/complete$", p[4])
  end)
end)

-- md5 = true was sent as JSON true (the server's 400, or a check of nothing):
-- it is now the MD5 of the bytes sent, computed as they go (src/md5.c).
describe("files_upload_parts md5 = true", function ()
  local srv, client
  local core = require "aigc.core"

  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { api_key = SECRET, max_retries = 0, timeout = 30 })

  local function sent_md5 (up)
    return srv:bodies("/v1/uploads/" .. up.id .. "/complete")[1].md5
  end

  it("core.md5 gives RFC 1321's digests, in one step or many", function ()
    local function md5 (s) return core.md5(core.md5(nil, s)) end
    assert.equal("d41d8cd98f00b204e9800998ecf8427e", md5(""))
    assert.equal("0cc175b9c0f1b6a831c399e269772661", md5("a"))
    assert.equal("900150983cd24fb0d6963f7d28e17f72", md5("abc"))
    assert.equal("f96b697d7cb7938d525a2f31aaf161d0", md5("message digest"))
    assert.equal("57edf4a22be3c955ac49da2e2107b67a", md5(string.rep("1234567890", 8)))
    local big, st = string.rep("abcdefg", 30001), nil
    for i = 1, #big, 61 do st = core.md5(st, big:sub(i, i + 60)) end   -- (pieces across the 64-byte blocks)
    assert.equal(md5(big), core.md5(st))
    assert.has_error(function () core.md5("not a state") end)
  end)

  it("a reader's bytes in parts: the MD5 of all of them goes with the complete", function ()
    local pieces, n = { "me", "ssage ", "digest" }, 0
    local up = assert(client:files_upload_parts { filename = "m.txt", purpose = "batch", part_size = 5, md5 = true,
      file = { size = 14, reader = function () n = n + 1 return pieces[n] end } })
    assert.equal("f96b697d7cb7938d525a2f31aaf161d0", sent_md5(up))
  end)

  it("a path, and an empty file", function ()
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write("abc")
    f:close()
    local up = assert(client:files_upload_parts { file = path, filename = "a.txt", purpose = "batch", md5 = true })
    assert.equal("900150983cd24fb0d6963f7d28e17f72", sent_md5(up))
    assert(io.open(path, "wb")):close()
    up = assert(client:files_upload_parts { file = path, filename = "e.txt", purpose = "batch", md5 = true })
    os.remove(path)
    assert.equal("d41d8cd98f00b204e9800998ecf8427e", sent_md5(up))
  end)
end)

-- concurrency = n: parts of a path in flight together (openai-python sends
-- them one after another: 1, the default), their ids completed in order.
describe("files_upload_parts concurrency", function ()
  local srv, client

  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { api_key = SECRET, max_retries = 0, timeout = 30 })

  local bytes = uploads.bytes

  local function write (s)
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write(s)
    f:close()
    return path
  end

  it("parts go side by side (several open at the server at once); the file is whole and in order", function ()
    local want = bytes(450)
    local path = write(want)
    local up = assert(client:files_upload_parts { file = path, filename = "c.jsonl", purpose = "batch",
      part_size = 100, concurrency = 3, headers = { ["x-aigc-fault"] = "delay=300" } })
    os.remove(path)
    assert.is_true(srv:stats().max_open >= 2)   -- (one at a time: 1)
    local parts = 0
    for _, r in ipairs(srv:requests()) do if r.path:find("/parts$") then parts = parts + 1 end end
    assert.equal(5, parts)
    assert.equal(want, assert(client:files_content(up.file.id)).body)
  end)

  it("one at a time by default", function ()
    local path = write(bytes(300))
    assert(client:files_upload_parts { file = path, filename = "o.jsonl", purpose = "batch", part_size = 100,
                                       headers = { ["x-aigc-fault"] = "delay=100" } })
    os.remove(path)
    assert.equal(1, srv:stats().max_open)
  end)

  it("a file that grew or shrank: said so, the upload cancelled", function ()
    local path = write(bytes(300))
    local fut = client:files_upload_parts_async { file = path, filename = "g.jsonl", purpose = "batch",
                                                  part_size = 100, concurrency = 2 }
    local f = assert(io.open(path, "ab"))
    f:write("more")
    f:close()
    local res, err = fut:wait()
    assert.is_nil(res)
    assert.matches("grew during the upload", err.message, 1, true)
    srv:reset()
    path = write(bytes(30000))
    fut = client:files_upload_parts_async { file = path, filename = "s.jsonl", purpose = "batch",
                                            part_size = 10000, concurrency = 2 }
    client:step(0)   -- (the create sent: the file's size taken)
    assert(io.open(path, "wb")):close()
    res, err = fut:wait()
    os.remove(path)
    assert.is_nil(res)
    assert.equal("io", err.kind)
    assert.matches("shrank during the upload", err.message, 1, true)
    local paths = {}
    for _, r in ipairs(srv:requests()) do paths[#paths + 1] = r.path end
    assert.matches("/cancel$", paths[#paths])
  end)

  -- Each part side by side read the path through a handle of its own, all
  -- kept open to the end: a 2 GB file in 1 MB parts held 2,048 open, and
  -- past the process's limit of open files a part's connection could not
  -- be made ("Couldn't connect to server"), the upload cancelled. Here a
  -- child limited to 48 open files sends 150 parts (the server keeps the
  -- last 200 requests).
  it("many parts side by side: no file handle held a part (150 parts under a limit of 48 open files)", function ()
    local luachild = require "luachild"
    local proc = require "procutil"
    local want = bytes(150)
    local path = write(want)
    local wrapper = os.tmpname()
    local f = assert(io.open(wrapper, "w"))
    f:write("#!/bin/sh\nulimit -n 48\nexec ", proc.quote(luachild.interpreter()), ' "$@"\n')
    f:close()
    assert(proc.execute("chmod +x " .. proc.quote(wrapper)))
    local r = luachild.run([[
      local c = require("aigc").client { base_url = arg[1], api_key = "sk-x", max_retries = 0 }
      local up, err = c:files_upload_parts { file = arg[2], filename = "m.jsonl", purpose = "batch",
                                             part_size = 1, concurrency = 2 }
      c:close()
      io.write(up and (up.status .. " " .. up.file.id) or (err.kind .. ": " .. err.message))
    ]], { lua = wrapper, args = { srv.base_url, path }, timeout = 60 })
    os.remove(wrapper)
    os.remove(path)
    assert.equal(0, r.status, r.stderr)
    local id = r.stdout:match("^completed (%S+)$")
    assert.truthy(id, r.stdout)
    local parts = 0
    for _, rec in ipairs(srv:requests()) do if rec.path:find("/parts$") then parts = parts + 1 end end
    assert.equal(150, parts)
    assert.equal(want, assert(client:files_content(id)).body)
  end)

  -- Each part side by side opened the path by name as it began: a new
  -- recording renamed into place (as the README advises) while the first
  -- parts were on their way went as the rest of the old one, and the mix of
  -- two files completed as one. Parts one after another send the file as it
  -- was when the upload began; side by side now too.
  it("a file renamed over the path mid-upload: the parts are all the file as it began, not a mix", function ()
    local old = string.rep("a", 30000)
    local path = write(old)
    local fut = client:files_upload_parts_async { file = path, filename = "r.jsonl", purpose = "batch",
      part_size = 10000, concurrency = 2, headers = { ["x-aigc-fault"] = "delay=200" } }
    local function parts_seen ()
      local n = 0
      for _, r in ipairs(srv:requests()) do if r.path:find("/parts$") then n = n + 1 end end
      return n
    end
    while parts_seen() == 0 and fut:status() ~= "failed" do client:step(0.02) end
    local renamed = path .. ".new"
    local f = assert(io.open(renamed, "wb"))
    f:write(string.rep("b", 30000))
    f:close()
    assert(os.rename(renamed, path))
    local up = assert(fut:wait())
    os.remove(path)
    -- (the file as runs of one byte: "a x 30000", not 30,000 bytes in a failure's message)
    local body = assert(client:files_content(up.file.id)).body
    local runs = body:gsub("a+", function (run) return "a x " .. #run .. " " end)
    runs = runs:gsub("b+", function (run) return "b x " .. #run .. " " end)
    assert.equal("a x 30000 ", runs)
  end)

  it("misuse: a reader or md5 = true with concurrency > 1, or a concurrency out of range", function ()
    local function call (p)
      local ok, msg = pcall(client.files_upload_parts, client, p)
      assert.is_false(ok)
      assert.matches("params.concurrency", tostring(msg), 1, true)
    end
    call { file = { size = 1, reader = function () end }, filename = "x", purpose = "batch", concurrency = 2 }
    call { file = "/etc/hostname", purpose = "batch", concurrency = 2, md5 = true }
    call { file = "/etc/hostname", purpose = "batch", concurrency = 0 }
    call { file = "/etc/hostname", purpose = "batch", concurrency = 1.5 }
  end)
end)
