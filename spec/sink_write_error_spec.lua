-- A reply written to a file (`to = path`) on a disk that refuses the
-- bytes part way (full, or over a quota): the write's error ends the call
-- (kind "io", naming the file), and neither the file nor its part file is
-- left behind. The disk is a child process's file size limit (`ulimit -f`,
-- SIGXFSZ ignored: the write fails with EFBIG), the reply real HTTP over
-- loopback (a one-shot server, spec/support/oneshot.lua). (Coverage: the
-- part file's failing write, body.c, was never run.)
local luachild = require "luachild"
local oneshot = require "oneshot"
local proc = require "procutil"

local CHILD = [[
  local aigc = require "aigc"
  local c = aigc.client { base_url = arg[1], max_retries = 0 }
  local res, err = c:speech { model = "m", input = "Halt!", to = arg[2] }
  c:close()
  io.write(tostring(res and res.bytes), "|", err and err.kind or "", "|", err and err.message or "", "\n")
]]

describe("a reply to a file the disk refuses part way", function ()
  it("fails with an io error naming the file, and leaves no file", function ()
    local audio = ("RIFF"):rep(16384)   -- (64 KiB: past the 4 KiB limit, whatever stdio buffers)
    local base = oneshot.serve_raw({ "HTTP/1.1 200 OK\r\nContent-Type: audio/wav\r\nContent-Length: " .. #audio
                                     .. "\r\nConnection: close\r\n\r\n" .. audio }, finally)
    local wrapper, path = os.tmpname(), os.tmpname()
    os.remove(path)
    local f = assert(io.open(wrapper, "w"))
    f:write("#!/bin/sh\nulimit -f 8\ntrap '' XFSZ\nexec ", proc.quote(luachild.interpreter()), ' "$@"\n')
    f:close()
    assert(proc.execute("chmod +x " .. proc.quote(wrapper)))
    local r = luachild.run(CHILD, { lua = wrapper, args = { base, path }, timeout = 30 })
    os.remove(wrapper)
    local exists, part = proc.exists(path), proc.exists(path .. ".part")
    os.remove(path)
    os.remove(path .. ".part")
    assert.are.equal(0, r.status, r.stderr)
    local bytes, kind, message = r.stdout:match("^(.-)|(.-)|(.-)\n$")
    assert.are.equal("nil", bytes, r.stdout)
    assert.are.equal("io", kind, r.stdout)
    assert.truthy(message:find("could not write " .. path .. ".part: File too large", 1, true), message)
    assert.is_false(exists)
    assert.is_false(part)
  end)
end)
