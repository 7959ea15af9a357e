-- The recording proxy reaches every plain-http server the client does: an
-- IPv6 literal ("http://[::1]:8080", llama.cpp on an IPv6 host) and a
-- scheme in capitals made it exit, and the client raised that its server
-- "did not start (needs lua5.4 with luv and lua-cjson)".

local aigc = require "aigc"
local devserver = require "devserver"
local cli = require "cli"

-- An upstream on [::1] answering every request with one chat completion.
local V6 = [=[
local uv = require "luv"
local srv = uv.new_tcp()
if srv:bind("::1", 0) ~= 0 then print("none") os.exit(0) end
srv:listen(8, function ()
  local s = uv.new_tcp()
  srv:accept(s)
  local buf = ""
  s:read_start(function (_, d)
    if not d then return end
    buf = buf .. d
    local h = buf:find("\r\n\r\n", 1, true)
    if not h or #buf < h + 3 + (tonumber(buf:match("[Cc]ontent%-[Ll]ength:%s*(%d+)")) or 0) then return end
    s:read_stop()
    local body = '{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,'
      .. '"message":{"role":"assistant","content":"over IPv6"},"finish_reason":"stop"}]}'
    s:write("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " .. #body
            .. "\r\nConnection: close\r\n\r\n" .. body, function () s:shutdown(function () s:close() end) end)
  end)
end)
io.stdout:write(srv:getsockname().port, " ", uv.os_getpid(), "\n")
io.stdout:flush()
uv.new_timer():start(60000, 0, function () os.exit(0) end)
uv.run()
]=]

describe("a cassette recording through its proxy", function ()
  local dir
  before_each(function () dir = cli.home() end)
  after_each(function () cli.rmdir(dir) end)

  local function record_and_replay (base_url, path, prompt)
    local rec = aigc.client { base_url = base_url, model = "aigc-dev", cassette = { path = path, mode = "record" } }
    local live = assert(rec:chat(prompt))
    rec:close()
    assert.is_truthy(require("procutil").read_file(path):find('"raw":true', 1, true))   -- (the proxy's)
    local c = aigc.client { base_url = "http://127.0.0.1:9/v1", model = "aigc-dev",
                            cassette = { path = path, mode = "replay", timing = false } }
    finally(function () c:close() end)
    assert.equal(live.text, assert(c:chat(prompt)).text)
    return live
  end

  it("from a server whose URL's scheme is in capitals", function ()
    local srv = devserver.start { pause_ms = 0 }
    finally(function () srv:stop() end)
    local live = record_and_replay(srv.base_url:gsub("^http:", "HTTP:"), dir .. "/caps.jsonl", "Echo: capitals")
    assert.equal("capitals", live.text)
  end)

  it("from a server at an IPv6 literal", function ()
    local script = dir .. "/v6.lua"
    cli.write(script, V6)
    local up = io.popen("exec lua5.4 " .. script)
    local line = up:read("*l")
    if line == "none" then up:close(); pending("no IPv6 loopback here") return end
    local port, pid = line:match("^(%d+) (%d+)$")
    finally(function () os.execute("kill " .. pid); up:close() end)
    local live = record_and_replay("http://[::1]:" .. port .. "/v1", dir .. "/v6.jsonl", "hi")
    assert.equal("over IPv6", live.text)
  end)
end)
