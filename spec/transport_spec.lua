-- The transport under the calls, against real servers over loopback: what
-- the connections do when the host starts other processes, and TLS to an
-- https:// proxy (nginx with a certificate made here by openssl).
local aigc = require "aigc"
local oneshot = require "oneshot"
local proc = require "procutil"

local REPLY = [[{"id":"x","object":"chat.completion","created":1,"model":"m",]]
  .. [["choices":[{"index":0,"message":{"role":"assistant","content":"through the TLS proxy"},]]
  .. [["finish_reason":"stop"}]}]]

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

-- The reply names nginx's connection serial number: which requests shared one.
local CONN_REPLY = REPLY:gsub("through the TLS proxy", "connection $connection over $server_protocol")

-- nginx with a self-signed certificate for 127.0.0.1, answering REPLY to
-- whatever it is sent (as an https:// proxy, to a request for any URL),
-- and over HTTP/2, CONN_REPLY.
local function start_nginx ()
  local dir = proc.nginx_dir { { "proxy", "IP:127.0.0.1" } }
  local tls, h2
  local pid = proc.start_nginx(dir, function (owner)
    tls, h2 = proc.free_port(), proc.free_port()
    return proc.nginx_conf(dir, proc.fill([[
  access_log off;
  server { listen 127.0.0.1:TLS ssl; ssl_certificate DIR/proxy.pem; ssl_certificate_key DIR/proxy.key;
           location / { default_type application/json; return 200 'REPLY'; } }
  server { listen 127.0.0.1:H2 ssl http2; ssl_certificate DIR/proxy.pem; ssl_certificate_key DIR/proxy.key;
           location / { default_type application/json; return 200 'CONNREPLY'; } }
  server { listen 127.0.0.1:OWNERPORT; location = /_owner { return 200 'OWNER'; } }]],
      { DIR = dir, TLS = tls, H2 = h2, OWNERPORT = owner.port, OWNER = owner.token,
        CONNREPLY = CONN_REPLY, REPLY = REPLY }))
  end)
  return { dir = dir, tls = tls, h2 = h2, stop = function () proc.stop(pid); os.execute("rm -rf " .. dir) end }
end

-- (child) Answers a first request on a kept-alive connection; a second one
-- sent on that connection it reads and closes the connection unanswered (a
-- server whose idle timeout ended as the request went), then answers a
-- second one on a new connection. Writes where the second one came.
local CLOSE_AS_REUSED = [[
  local socket = require "socket"
  local oneshot = require "oneshot"
  local REPLY = '{"id":"x","object":"file","bytes":1,"created_at":1,"filename":"a","purpose":"batch"}'
  local server = oneshot.listen()
  local c = oneshot.read_request(server)
  c:send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " .. #REPLY .. "\r\n\r\n" .. REPLY)
  local ready = socket.select({ c, server }, nil, 20)
  local came = "new"
  if ready[c] then
    came = "reused"
    pcall(oneshot.read_request, { accept = function () return c end })
    c:close()
  end
  server:settimeout(20)
  local ok, c2 = pcall(oneshot.read_request, server)
  if ok then
    c2:send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: "
      .. #REPLY .. "\r\n\r\n" .. REPLY)
    c2:close()
  end
  io.write(came, "\n")
]]

describe("transport", function ()
  it("an upload fed by a reader goes on a new connection, which the server cannot have closed", function ()
    -- (on a kept-alive connection the server closed as it was sent, libcurl
    -- sent the request again on a new one and could not: the reader's bytes
    -- were gone, and the call failed: "Cannot rewind mime/post data")
    local port, child = oneshot.start(CLOSE_AS_REUSED)
    local c = aigc.client { base_url = "http://127.0.0.1:" .. port .. "/v1", max_retries = 0 }
    assert(c:files_upload { purpose = "batch", file = { filename = "first.jsonl", data = "{}\n" } })
    local data, given = string.rep("x", 5000), false
    local res, err = c:files_upload { purpose = "batch", file = { filename = "a.jsonl", size = #data,
      reader = function ()
        if given then return nil end
        given = true
        return data
      end } }
    local r = child:wait(60)
    c:close()
    assert.is_nil(err)
    assert.equal("file", res.object)
    assert.equal("new", r.stdout:match("(%a+)%s*$"))
  end)

  describe("over TLS", function ()
    local nginx
    setup(function () nginx = start_nginx() end)
    teardown(function () if nginx then nginx.stop() end end)

    it("multiplexes concurrent requests on one HTTP/2 connection with a base_url written HTTPS://", function ()
      -- (the scheme was compared case-sensitively: requests started together
      -- each opened a TLS connection of their own)
      local c = aigc.client { base_url = "HTTPS://127.0.0.1:" .. nginx.h2 .. "/v1",
                              ca_file = nginx.dir .. "/proxy.pem", max_retries = 0 }
      local reqs, seen, n = {}, {}, 0
      for i = 1, 8 do reqs[i] = c:chat_async "Hi" end
      for i = 1, 8 do
        local res = assert(reqs[i]:wait(20))
        local conn, proto = res.text:match("^connection (%d+) over (%S+)$")
        assert.equal("HTTP/2.0", proto)
        if not seen[conn] then n = n + 1 end
        seen[conn] = true
      end
      c:close()
      assert.equal(1, n)
    end)

    it("an https:// proxy is verified: a self-signed proxy certificate is refused", function ()
      local c = aigc.client { base_url = "http://aigc-nowhere.invalid/v1", max_retries = 0,
                              proxy = "https://127.0.0.1:" .. nginx.tls }
      local res, err = c:chat "Hi"
      c:close()
      assert.is_nil(res)
      assert.equal("connect", err.kind)
      assert.matches("certificate", err.message:lower())
    end)

    it("an https:// proxy is not verified with insecure = true, as the server is not", function ()
      -- (insecure turned off the server's verification only: a proxy with
      -- a self-signed certificate still failed every call)
      local c = aigc.client { base_url = "http://aigc-nowhere.invalid/v1", max_retries = 0, insecure = true,
                              proxy = "https://127.0.0.1:" .. nginx.tls }
      local res, err = c:chat "Hi"
      c:close()
      assert.is_nil(err)
      assert.equal("through the TLS proxy", res.text)
    end)
  end)

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
