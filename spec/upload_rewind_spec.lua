-- A file upload sent on a kept-alive connection that the server closes
-- without an answer: libcurl sends the request again on a new connection
-- by itself, rewinding the file part (body.c file_seek). The server must get
-- the same bytes again, whole. A one-shot server over real HTTP on loopback
-- (spec/support/oneshot.lua).
local aigc = require "aigc"
local oneshot = require "oneshot"

-- (child) Answers a first request on a connection it keeps, reads the
-- second one on it and closes it unanswered, then answers a third on a new
-- connection; writes to arg[1] whether the third's bytes were the second's
-- and how many the payload's marker shows in it.
local SERVER = [[
  local oneshot = require "oneshot"
  local server = oneshot.listen()
  local function read_on (c)
    local len = 0
    repeat
      local line = assert(c:receive("*l"))
      len = tonumber(line:match("^[Cc]ontent%-[Ll]ength: *(%d+)")) or len
    until line == ""
    return len > 0 and assert(c:receive(len)) or ""
  end
  local reply = 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{"text":"ok"}'
  local c = oneshot.read_request(server)
  c:send(reply)
  local second = read_on(c)
  c:close()
  local c3, third = oneshot.read_request(server)
  c3:send(reply)
  c3:close()
  local _, marks = third:gsub("PAYLOAD%-0123456789", "")
  local f = assert(io.open(arg[1], "wb"))
  f:write(tostring(second == third), " ", marks, " ", #third)
  f:close()
]]

describe("a file upload on a kept-alive connection the server closed unanswered", function ()
  it("is sent again whole on a new connection", function ()
    local out, path = os.tmpname(), os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write(("PAYLOAD-0123456789"):rep(200))
    f:close()
    local port, child = oneshot.start(SERVER, { out })
    local c = aigc.client { base_url = "http://127.0.0.1:" .. port .. "/v1", max_retries = 0, timeout = 20 }
    local r1, e1 = c:transcribe { model = "m", file = path }
    local r2, e2 = c:transcribe { model = "m", file = path }
    c:close()
    child:wait(10)
    local seen = assert(io.open(out, "rb")):read("*a")
    os.remove(out)
    os.remove(path)
    assert.are.equal("ok", r1 and r1.text, tostring(e1))
    assert.are.equal("ok", r2 and r2.text, tostring(e2))
    local same, marks = seen:match("^(%a+) (%d+) ")
    assert.are.equal("true", same, seen)
    assert.are.equal("200", marks, seen)
  end)
end)
