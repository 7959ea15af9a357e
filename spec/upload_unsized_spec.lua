-- Uploads from a path whose size the system does not tell: a /proc or /sys
-- file (and some FUSE ones) is a regular file that stat says is 0 bytes long,
-- yet it reads bytes. files_upload { file = "/proc/self/status" } sent an
-- empty file and reported success (the size taken from stat). Such a file is
-- now sent as Python's requests sends it (curl 7.88's -F sends it empty): what it reads, to its end
-- (chunked: no Content-Length is known), at most 512 MiB (/files' own bound:
-- past it the call fails, kind "io"). files_upload_parts, which must give the
-- Uploads API the size before any byte, refuses it before anything is sent.
-- What the server received is read back from its own record of the parts.
local devserver = require "devserver"
local proc = require "procutil"
local uploads = require "uploads"
local has_util, util = pcall(require, "aigc.devserver.util")

local function slurp (path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local part_of, header = uploads.part_of, uploads.header

-- The stat size of path (the premise of every case here).
local function stat_size (path)
  local ok, out = proc.sh("stat -c %s " .. proc.quote(path))
  assert(ok, out)
  return tonumber(out:match("%d+"))
end

describe("uploads of a file whose size the system does not tell", function ()
  local srv, client, dir
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { timeout = 10 })
  uploads.folder_fixture(_ENV, function (d) dir = d end)

  it("a /proc file (stat: 0 bytes) is sent whole, as it reads, not as an empty file", function ()
    -- (not /proc/self/cmdline: valgrind serves it from a regular file of its own, with a size)
    for _, path in ipairs { "/proc/version", "/proc/filesystems" } do
      assert.equal(0, stat_size(path))
      local want = slurp(path)   -- (both stay the same from one read to the next)
      assert.is_true(#want > 0)
      local res, err = client:files_upload { purpose = "batch", file = path }
      assert.is_nil(err)
      assert.equal(#want, res.bytes, path)
      local rec = srv:last()
      local p = part_of(rec, "file")
      assert.equal(#want, p.size, path)
      if has_util then assert.equal(util.crc32(want), p.crc32, path) end
      assert.matches("chunked", header(rec, "transfer-encoding") or "")
      assert.equal(want, assert(client:files_content(res.id)).body)
    end
  end)

  it("a file that is really empty is still sent empty, with its Content-Length", function ()
    local path = dir .. "/empty.jsonl"
    assert(io.open(path, "wb")):close()
    local res = assert(client:files_upload { purpose = "batch", file = path })
    assert.equal(0, res.bytes)
    local rec = srv:last()
    assert.equal(0, part_of(rec, "file").size)
    assert.is_nil(header(rec, "transfer-encoding"))
    assert.is_not_nil(header(rec, "content-length"))
  end)

  it("files_upload_parts refuses it before anything is sent (the Uploads API needs the size first)", function ()
    local res, err = client:files_upload_parts { purpose = "batch", file = "/proc/version" }
    assert.is_nil(res)
    assert.equal("io", err.kind)
    assert.matches("params.file: /proc/version: no size known before it is read", err.message, 1, true)
    assert.matches("reader = fn, size = bytes", err.message, 1, true)
    assert.equal(0, #srv:requests())   -- no upload was created
  end)
end)
