-- What a game embedding aigc meets with voice and images (a C host or a
-- LuaJIT engine): a disk that fills up while portraits are saved, replies
-- to speech that are not audio, transcriptions whose text is not text.
-- Each case is a defect found by probing as such a host would; each must
-- end in a clear error with nothing lost, never a file that looks whole
-- and is not.
local aigc = require "aigc"
local devserver = require "devserver"
local luachild = require "luachild"
local proc = require "procutil"

local function tmpdir ()
  local p = io.popen("mktemp -d /tmp/aigc-hostprobe-XXXXXX")
  local d = p:read("*l")
  p:close()
  return d
end

describe("a game's media on a host", function ()
  local srv, client, dir

  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { model = "aigc-dev" })
  setup(function () dir = tmpdir() end)
  teardown(function () os.execute("rm -rf '" .. dir .. "'") end)

  describe("res:save() on a full disk", function ()
    -- /dev/full takes every open and write, and fails the flush: a small
    -- image sits in stdio's buffer, so only close() says ENOSPC. Both the
    -- file and a temporary one beside it lead there, whichever is written.
    it("a small image whose bytes only fail at close: kind io, not a path to an empty file", function ()
      local res = assert(client:images_generate { prompt = "a mouse", size = "8x8", response_format = "b64_json" })
      assert.is_true(#res.data[1].bytes < 1024)
      local target = dir .. "/full-1.png"
      assert.is_true(proc.execute("ln -s /dev/full '" .. target .. "' && ln -s /dev/full '" .. target .. ".part'"))
      local paths, err = res:save(dir .. "/full-%d.png")
      assert.is_nil(paths)
      assert.equal("io", err.kind)
      assert.matches("could not write " .. target:gsub("%p", "%%%0") .. ": .*[Ss]pace", err.message)
    end)

    -- A file size limit (RLIMIT_FSIZE, SIGXFSZ ignored: writes past it fail
    -- with EFBIG) in a child: the disk fills in the middle of the image.
    it("an image cut by the disk filling up: kind io, and no cut PNG left under its name", function ()
      local res = assert(client:images_generate { prompt = "a knight", size = "256x256", response_format = "b64_json" })
      local png = res.data[1].bytes
      assert.is_true(#png > 12000)
      local wrapper = dir .. "/limited.sh"
      local f = assert(io.open(wrapper, "w"))
      -- (ulimit -f counts 512-byte blocks in dash and 1024-byte ones in bash: 8 or 16 KiB)
      f:write("#!/bin/sh\ntrap '' XFSZ\nulimit -f 16\nexec " .. luachild.interpreter() .. ' "$@"\n')
      f:close()
      assert.is_true(proc.execute("chmod +x '" .. wrapper .. "'"))
      local r = luachild.run([[
        local aigc = require "aigc"
        local c = aigc.client { base_url = arg[1], max_retries = 0, model = "aigc-dev" }
        local res = assert(c:images_generate { prompt = "a knight", size = "256x256", response_format = "b64_json" })
        local paths, err = res:save(arg[2] .. "/knight-%d.png")
        c:close()
        print(paths and "saved" or (err.kind .. ": " .. err.message))
      ]], { lua = wrapper, args = { srv.base_url, dir } })
      assert.equal(0, r.status, r.stderr)
      assert.matches("^io: could not write .*knight%-1%.png: .*[Ll]arge", r.stdout)
      assert.is_false(proc.exists(dir .. "/knight-1.png"))
      assert.is_false(proc.exists(dir .. "/knight-1.png.part"))
    end)

    it("saving over an existing image: the new bytes replace it whole", function ()
      local res = assert(client:images_generate { prompt = "a cat", size = "16x16", response_format = "b64_json" })
      local path = dir .. "/cat-1.png"
      local f = assert(io.open(path, "wb"))
      f:write(string.rep("old", 10000))
      f:close()
      assert.same({ path }, assert(res:save(dir .. "/cat-%d.png")))
      assert.equal(res.data[1].bytes, proc.read_file(path))
      assert.is_false(proc.exists(path .. ".part"))
    end)
  end)
end)
