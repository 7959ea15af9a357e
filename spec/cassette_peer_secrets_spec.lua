-- A tape recorded through the recording proxy (a child process) was masked
-- only of the credentials the recording client's requests carried: another
-- live client's key, echoed by the server, stayed on the tape. The client
-- now tells the proxy every live client's secrets (in a header it drops),
-- never on its command line nor in its environment.
local aigc = require "aigc"
local cli = require "cli"

local read = cli.read
local KEY_B = "sk-proj-other-" .. ("Ev27RbTnYmUi8oPlKj"):rep(2)
local PASS_B = "pw-other-proxy-Qx81Lm"

describe("a recording cassette's proxy", function ()
  local devserver = require "devserver"
  local srv, dir
  setup(function () srv = devserver.start { pause_ms = 0 }; dir = cli.home() end)
  teardown(function () srv:stop(); cli.rmdir(dir) end)

  it("masks another live client's secrets a server echoed; a closed client's it is not told", function ()
    local b = aigc.client { base_url = "http://127.0.0.1:9/v1", api_key = KEY_B,
                            proxy = "http://user:" .. PASS_B .. "@127.0.0.1:9" }
    local path = dir .. "/peers.jsonl"
    local rec = aigc.client { base_url = srv.base_url, model = "aigc-dev", api_key = "sk-rec-0123456789abcd",
                              cassette = { path = path, mode = "record" } }
    local pid = assert(rec._cassette and rec._cassette.pid, "the proxy's pid")
    local res, err = rec:chat { messages = { { role = "user", content = "Echo: " .. KEY_B .. " and " .. PASS_B } } }
    assert.is_nil(err and err.message)
    assert.truthy(res.text:find(KEY_B, 1, true), "the reply as it came: the call is the user's")
    local cmdline, environ = read("/proc/" .. pid .. "/cmdline"), read("/proc/" .. pid .. "/environ") or ""
    assert.is_nil(cmdline:find(KEY_B, 1, true), "the key is on the proxy's command line")
    assert.is_nil(environ:find(KEY_B, 1, true), "the key is in the proxy's environment")
    b:close()
    local res2 = assert(rec:chat { messages = { { role = "user", content = "Echo: closed " .. KEY_B } } })
    assert.truthy(res2.text:find(KEY_B, 1, true))
    rec:close()
    local tape = read(path)
    assert.truthy(tape:find('"raw"', 1, true), "recorded by the proxy")
    local first, second = tape:match("^([^\n]*)\n([^\n]*)\n$")
    assert.is_string(first, tape)
    assert.is_nil(first:find(KEY_B, 1, true), "another client's key is on the tape")
    assert.is_nil(first:find(PASS_B, 1, true), "another client's proxy password is on the tape")
    assert.truthy(first:find("[redacted]", 1, true), first)
    -- (closed before that call: its key is no secret of a live client, as the engine's scrubs)
    assert.truthy(second:find(KEY_B, 1, true), second)
  end)
end)
