-- The transport under the calls, against real servers over loopback: what
-- the connections do when the host starts other processes.
local aigc = require "aigc"
local oneshot = require "oneshot"

-- (child) Answers one stream request with one event, then reads the
-- connection until the client's side of it closes, or 20 s pass (a bound
-- for a loaded machine, not a timing), and writes which of the two it saw.
local WATCH_CLOSE = [[
  local oneshot = require "oneshot"
  local c = oneshot.read_request(oneshot.listen())
  c:send("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"
    .. 'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
    .. '"choices":[{"index":0,"delta":{"content":"one"},"finish_reason":null}]}\n\n')
  c:settimeout(20)
  local all, err = c:receive("*a")
  io.write(all and "closed" or err, "\n")
  c:close()
]]

describe("transport", function ()
  it("a canceled stream's connection closes even while a process the host started runs", function ()
    -- A host that starts a process (a tool, a helper, io.popen) while a
    -- stream runs: the process inherited the connection, so the server
    -- never saw the cancel (a server that stops generating when its
    -- client goes kept on) until that process ended.
    local port, child = oneshot.start(WATCH_CLOSE)
    local c = aigc.client { base_url = "http://127.0.0.1:" .. port .. "/v1", max_retries = 0, model = "m" }
    local got = 0
    local req = c:chat_async { messages = { { role = "user", content = "Hi" } },
                               stream = function () got = got + 1 end }
    for _ = 1, 1000 do
      if got > 0 then break end
      c:step(0.05)
    end
    assert.equal(1, got)
    local holder = assert(io.popen("cat", "w"))   -- runs until its stdin closes
    req:cancel()
    c:step(0)
    local r = child:wait(40)
    holder:close()
    c:close()
    assert.equal(0, r.status, r.stderr)
    assert.equal("closed", r.stdout:match("(%a+)%s*$"))
  end)
end)
