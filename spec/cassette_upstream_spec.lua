-- The recording proxy reaches every plain-http server the client does: an
-- IPv6 literal ("http://[::1]:8080", llama.cpp on an IPv6 host) and a
-- scheme in capitals made it exit, and the client raised that its server
-- "did not start (needs lua5.4 with luv and lua-cjson)".

local aigc = require "aigc"
local devserver = require "devserver"
local cli = require "cli"
local upstream = require "upstream"

-- Records `prompt` through the proxy from `base_url` into `path`, then
-- replays it offline: the reply, recorded.
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

describe("a cassette recording through its proxy", function ()
  local dir
  before_each(function () dir = cli.home() end)
  after_each(function () cli.rmdir(dir) end)

  it("from a server whose URL's scheme is in capitals", function ()
    local srv = devserver.start { pause_ms = 0 }
    finally(function () srv:stop() end)
    local live = record_and_replay(srv.base_url:gsub("^http:", "HTTP:"), dir .. "/caps.jsonl", "Echo: capitals")
    assert.equal("capitals", live.text)
  end)

  it("from a server at an IPv6 literal", function ()
    -- an upstream on [::1] (spec/support/upstream.lua) answering every request
    -- with one chat completion
    local up = upstream.start(dir .. "/v6.lua", '    reply(s, "over IPv6")\n', { host = "::1" })
    if not up then pending("no IPv6 loopback here") return end
    finally(up.stop)
    local live = record_and_replay("http://[::1]:" .. up.port .. "/v1", dir .. "/v6.jsonl", "hi")
    assert.equal("over IPv6", live.text)
  end)
end)
