-- A call whose key is long (a prompt of over a megabyte) is recorded
-- through the recording proxy's server too: the proxy was given the key in
-- a request header, which libcurl refuses over 1 MB, and the call failed
-- only because it was recorded.

local aigc = require "aigc"
local devserver = require "devserver"
local cli = require "cli"

describe("a cassette and a long prompt", function ()
  local srv, dir
  setup(function () srv = devserver.start { pause_ms = 0 }; dir = cli.home() end)
  teardown(function () srv:stop(); cli.rmdir(dir) end)

  it("is recorded from a plain-http server and replays, beside a short one the proxy recorded", function ()
    local path = dir .. "/long.jsonl"
    local long = { messages = { { role = "user", content = "Echo: " .. string.rep("long ", 220 * 1024) } } }
    local short = { messages = { { role = "user", content = "Echo: short" } } }
    local rec = aigc.client { base_url = srv.base_url, model = "aigc-dev", cassette = { path = path, mode = "record" },
                              timeout = 120 }
    local live, err = rec:chat(long)
    assert.is_nil(err and err.message)
    local live_short = assert(rec:chat(short))
    rec:close()
    local tape = require("procutil").read_file(path)
    assert.equal(2, select(2, tape:gsub("\n", "")))
    assert.is_truthy(tape:find('"raw":true', 1, true))   -- (the short one: the proxy's wire bytes)
    local c = aigc.client { base_url = "http://127.0.0.1:9/v1", model = "aigc-dev", timeout = 120,
                            cassette = { path = path, mode = "replay", timing = false } }
    finally(function () c:close() end)
    local again, rerr = c:chat(long)
    assert.is_nil(rerr and rerr.message)
    assert.equal(live.text, again.text)
    assert.equal(live_short.text, assert(c:chat(short)).text)
  end)
end)
