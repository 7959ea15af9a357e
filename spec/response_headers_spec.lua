-- res.headers: every response header, names lower-cased, a repeated
-- header's values joined by ", " in the order they came (the table is
-- built in C, repeats found before any lookup: this pins that down).
local aigc = require "aigc"
local socket = require "socket"

-- A one-shot HTTP server in a child process: skips connections that send
-- nothing (the readiness probe), answers the first request with the given
-- header lines, then exits (after 10 s at most).
local function one_shot (header_lines)
  local probe = assert(socket.bind("127.0.0.1", 0))
  local _, port = probe:getsockname()
  probe:close()
  local body = '{"id":"x","object":"chat.completion","created":1,"model":"m",'
    .. '"choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}'
  local response = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " .. #body
    .. "\r\n" .. table.concat(header_lines, "\r\n") .. "\r\nConnection: close\r\n\r\n" .. body
  local code = ([[
    local socket = require "socket"
    local srv = assert(socket.bind("127.0.0.1", %d))
    srv:settimeout(10)
    while true do
      local c = srv:accept()
      if not c then return end
      c:settimeout(5)
      local line = c:receive("*l")
      if line then
        local len = 0
        while line ~= "" do
          local n = line:lower():match("^content%%-length:%%s*(%%d+)")
          if n then len = tonumber(n) end
          line = assert(c:receive("*l"))
        end
        if len > 0 then c:receive(len) end
        c:send(%q)
        c:close()
        return
      end
      c:close()
    end
  ]]):format(port, response)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(code)
  f:close()
  os.execute("(lua5.4 " .. path .. "; rm -f " .. path .. ") >/dev/null 2>&1 &")
  for _ = 1, 500 do
    local c = socket.tcp()
    c:settimeout(0.05)
    local ok = c:connect("127.0.0.1", port)
    c:close()
    if ok then return port end
    socket.sleep(0.01)
  end
  error("the one-shot server did not start")
end

describe("response headers", function ()
  it("keeps every header, lower-cases names, joins repeats in order", function ()
    local port = one_shot {
      "Set-Cookie: a=1", "X-Request-Id: req_1", "set-cookie: b=2", "X-Empty:",
      "Vary: Accept", "SET-COOKIE: c=3", "x-ratelimit-remaining-requests: 9",
    }
    local client = aigc.client { base_url = "http://127.0.0.1:" .. port .. "/v1", max_retries = 0 }
    local res = assert(client:chat "hello")
    client:close()
    assert.equal("hi", res.text)
    assert.equal("req_1", res.request_id)
    assert.equal("a=1, b=2, c=3", res.headers["set-cookie"])
    assert.equal("", res.headers["x-empty"])
    assert.equal("Accept", res.headers.vary)
    assert.equal("9", res.headers["x-ratelimit-remaining-requests"])
    assert.equal("application/json", res.headers["content-type"])
    assert.is_nil(res.headers["Set-Cookie"])
  end)
end)
