-- Security and the network around the client: TLS verification on by
-- default (against a real nginx with certificates made here by openssl),
-- `insecure` warning once, redirects never followed, proxies honoured,
-- header injection refused.
local aigc = require "aigc"
local devserver = require "devserver"
local socket = require "socket"

warn("@on")

local proc = require "procutil"
local sh, free_port = proc.sh, proc.free_port

local REPLY = [[{"id":"x","object":"chat.completion","created":1,"model":"m",]]
  .. [["choices":[{"index":0,"message":{"role":"assistant","content":"over TLS"},"finish_reason":"stop"}]}]]

-- The reply names nginx's connection serial number: which requests shared one.
local CONN_REPLY = REPLY:gsub("over TLS", "connection $connection over $server_protocol")

-- nginx with four servers: TLS with a certificate for 127.0.0.1, TLS with one
-- for another name, TLS over HTTP/2 naming its connection, and plain HTTP
-- that redirects or forwards (a proxy).
local function start_nginx (dev_port)
  local dir = proc.nginx_dir { { "good", "IP:127.0.0.1,DNS:localhost" }, { "wrong", "DNS:wrong.example" } }
  local ports
  local pid = proc.start_nginx(dir, function (owner)
    ports = { tls = free_port(), wrong = free_port(), plain = owner.port, h2 = free_port() }
    return proc.nginx_conf(dir, proc.fill([[
  access_log off;
  server { listen 127.0.0.1:TLS ssl; ssl_certificate DIR/good.pem; ssl_certificate_key DIR/good.key;
           location / { default_type application/json; return 200 'REPLY'; } }
  server { listen 127.0.0.1:WRONG ssl; ssl_certificate DIR/wrong.pem; ssl_certificate_key DIR/wrong.key;
           location / { default_type application/json; return 200 'REPLY'; } }
  server { listen 127.0.0.1:H2 ssl http2; ssl_certificate DIR/good.pem; ssl_certificate_key DIR/good.key;
           location / { default_type application/json; return 200 'CONNREPLY'; }
           location /proxied/ { proxy_pass http://127.0.0.1:DEV/; proxy_buffering off;
                                proxy_set_header X-Client-Protocol $server_protocol; } }
  server { listen 127.0.0.1:PLAIN;
           location = /_owner { return 200 'OWNER'; }
           location /redirect/ { return 307 http://127.0.0.1:DEV/v1/chat/completions; }
           location / { proxy_pass http://127.0.0.1:DEV; proxy_set_header X-Via-Proxy yes; } }]],
      { DIR = dir, TLS = ports.tls, WRONG = ports.wrong, PLAIN = ports.plain, H2 = ports.h2,
        DEV = dev_port, CONNREPLY = CONN_REPLY, REPLY = REPLY, OWNER = owner.token }))
  end)
  return { dir = dir, pid = pid, ports = ports, stop = function ()
    os.execute("kill " .. pid .. " 2>/dev/null; sleep 0.1; rm -rf " .. dir)
  end }
end

describe("security", function ()
  local srv, nginx

  setup(function ()
    srv = devserver.start()
    nginx = start_nginx(srv.port)
  end)
  teardown(function ()
    if nginx then nginx.stop() end
    srv:stop()
  end)
  before_each(function () srv:reset() end)

  describe("TLS", function ()
    it("verifies the peer by default: a self-signed certificate is refused", function ()
      local c = aigc.client { base_url = "https://127.0.0.1:" .. nginx.ports.tls .. "/v1", max_retries = 0 }
      local res, err = c:chat "Hi"
      c:close()
      assert.is_nil(res)
      assert.equal("connect", err.kind)
      assert.matches("certificate", err.message:lower())
    end)

    it("trusts a certificate given with ca_file", function ()
      local c = aigc.client { base_url = "https://127.0.0.1:" .. nginx.ports.tls .. "/v1",
                              ca_file = nginx.dir .. "/good.pem", max_retries = 0 }
      local res = assert(c:chat "Hi")
      c:close()
      assert.equal("over TLS", res.text)
    end)

    it("verifies the host name: a trusted certificate for another name is refused", function ()
      local c = aigc.client { base_url = "https://127.0.0.1:" .. nginx.ports.wrong .. "/v1",
                              ca_file = nginx.dir .. "/wrong.pem", max_retries = 0 }
      local res, err = c:chat "Hi"
      c:close()
      assert.is_nil(res)
      assert.equal("connect", err.kind)
      assert.matches("127%.0%.0%.1", err.message)
    end)

    it("connects without verification only with insecure = true, warning once", function ()
      local script = os.tmpname()
      local f = assert(io.open(script, "w"))
      f:write(([[
        package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
        package.cpath = "./?.so;" .. package.cpath
        local aigc = require "aigc"
        for _ = 1, 2 do
          local c = aigc.client { base_url = "https://127.0.0.1:%d/v1", insecure = true, max_retries = 0 }
          print(assert(c:chat "Hi").text)
          c:close()
        end]]):format(nginx.ports.tls))
      f:close()
      local ok, out = sh("lua5.4 " .. script)
      os.remove(script)
      assert(ok, out)
      local _, warnings = out:gsub("insecure = true", "")
      assert.equal(1, warnings)
      local _, replies = out:gsub("over TLS", "")
      assert.equal(2, replies)
    end)
  end)

  it("multiplexes concurrent requests over one HTTP/2 connection where the server offers it", function ()
    local c = aigc.client { base_url = "https://127.0.0.1:" .. nginx.ports.h2 .. "/v1",
                            ca_file = nginx.dir .. "/good.pem", max_retries = 0 }
    local reqs = {}
    for i = 1, 8 do reqs[i] = c:chat_async "Hi" end
    local seen = {}
    for i = 1, 8 do
      local res = assert(reqs[i]:wait(10))
      local conn, proto = res.text:match("^connection (%d+) over (%S+)$")
      assert.equal("HTTP/2.0", proto)
      seen[conn] = true
    end
    c:close()
    local n = 0
    for _ in pairs(seen) do n = n + 1 end
    assert.equal(1, n)
  end)

  -- max_bytes_per_step pauses a transfer (CURL_WRITEFUNC_PAUSE); over
  -- HTTP/2 that is one stream of a shared connection, which must not stall
  -- the others nor lose bytes when it resumes.
  it("max_bytes_per_step holds and resumes streams multiplexed over one HTTP/2 connection", function ()
    local c = aigc.client { base_url = "https://127.0.0.1:" .. nginx.ports.h2 .. "/proxied/v1",
                            ca_file = nginx.dir .. "/good.pem", max_retries = 0, max_bytes_per_step = 4096 }
    local words = {}
    for i = 1, 2000 do words[i] = "word" .. i end
    local text, reqs = table.concat(words, " "), {}
    for i = 1, 4 do
      reqs[i] = c:chat_async { model = "m", messages = { { role = "user", content = "Echo: " .. text } },
                               stream = function () end }
    end
    local deadline = socket.gettime() + 120
    while c:step(0.01) > 0 do assert(socket.gettime() < deadline, "the streams did not end") end
    for i = 1, 4 do
      local res, err = reqs[i]:result()
      assert.is_nil(err, err and tostring(err))
      assert.equal(text, res.text)
    end
    c:close()
    local protocols = {}
    for _, r in ipairs(srv:requests()) do protocols[#protocols + 1] = r.headers["x-client-protocol"] end
    assert.same({ "HTTP/2.0", "HTTP/2.0", "HTTP/2.0", "HTTP/2.0" }, protocols)
  end)

  -- nginx answers these requests on their HEADERS without reading the body,
  -- then ends the stream with RST_STREAM(NO_ERROR): the answer is the
  -- request's (RFC 9113 8.1). libcurl 7.88.1 fails the transfer when it
  -- sends the rest of the body after that ("stream 1 closed", CURLE_HTTP2_STREAM)
  -- and, when another transfer on the connection had read the answer, drops
  -- it: the case above failed about once in 100 runs (transfer.c
  -- h2_early_answer). Here a reader that makes a blocking call on the same
  -- client holds the upload back while the loop reads the answer and the
  -- reset: every run takes that path (30 of 30 failed before the fix, with
  -- the answer dropped in most, kept in the others). Under load the answer's
  -- status and headers sometimes reached the upload without its body (4 in
  -- 250 runs with three CPU hogs beside it: "Stream error in the HTTP/2
  -- framing layer", CI of 609d773): resent too. Five rounds a run, so the
  -- rarer outcomes come up more often.
  it("keeps an HTTP/2 answer the server sent before it read the request body", function ()
    for _ = 1, 5 do
      local c = aigc.client { base_url = "https://127.0.0.1:" .. nginx.ports.h2 .. "/v1",
                              ca_file = nginx.dir .. "/good.pem", max_retries = 0 }
      local inner, calls = nil, 0
      local res, err = c:files_upload { purpose = "batch", headers = { expect = "" }, file = { filename = "a.jsonl",
        reader = function ()
          calls = calls + 1
          if calls == 1 then inner = assert(c:chat "Hi") end   -- the loop runs while the upload waits
          return nil
        end } }
      c:close()
      assert(res, err and err.message)
      local conn = inner.text:match("^connection (%d+) over HTTP/2%.0$")
      assert.truthy(conn)
      assert.equal("connection " .. conn .. " over HTTP/2.0", res.choices[1].message.content)
    end
  end)

  -- The same early answer to a body bigger than nginx's 64 KiB stream window:
  -- libcurl 7.88.1 received the whole answer and then went on uploading to
  -- the closed stream until the attempt's timeout ("Operation timed out ...
  -- with 178 out of 178 bytes received"), the answer lost (transfer.c
  -- watch_h2_early_answer). The connection stays usable.
  it("ends with an HTTP/2 answer the server sent before it read a body bigger than its window", function ()
    local c = aigc.client { base_url = "https://127.0.0.1:" .. nginx.ports.h2 .. "/v1",
                            ca_file = nginx.dir .. "/good.pem", max_retries = 0, timeout = 10 }
    local res, err = c:chat { messages = { { role = "user", content = ("x"):rep(100000) } } }
    assert(res, err and err.message)
    local conn = res.text:match("^connection (%d+) over HTTP/2%.0$")
    assert.truthy(conn)
    assert.equal("connection " .. conn .. " over HTTP/2.0", assert(c:chat "Hi").text)
    local up = assert(c:files_upload { purpose = "batch",
                                       file = { filename = "big.jsonl", data = ("{}\n"):rep(40000) } })
    assert.equal("connection " .. conn .. " over HTTP/2.0", up.choices[1].message.content)
    c:close()
  end)

  it("never follows a redirect (no POST replayed, no key sent elsewhere)", function ()
    local c = aigc.client { base_url = "http://127.0.0.1:" .. nginx.ports.plain .. "/redirect",
                            api_key = "sk-never-forwarded-123", max_retries = 0 }
    local res, err = c:chat "Hi"
    c:close()
    assert.is_nil(res)
    assert.equal("http", err.kind)
    assert.equal(307, err.status)
    assert.equal(0, srv:stats().requests_total)
  end)

  it("goes through the proxy given with `proxy`", function ()
    -- The host does not resolve: only the proxy can reach the server.
    local c = aigc.client { base_url = "http://aigc-nowhere.invalid/v1",
                            proxy = "http://127.0.0.1:" .. nginx.ports.plain, max_retries = 0 }
    local res = assert(c:chat "Echo: proxied")
    c:close()
    assert.equal("proxied", res.text)
    assert.equal("yes", srv:last().headers["x-via-proxy"])
  end)

  it("ends with kind 'connect' when the proxy cannot be reached, its password not in the error", function ()
    local c = aigc.client { base_url = "http://aigc-nowhere.invalid/v1", max_retries = 0,
                            proxy = "http://bob:proxy-pass-0123456789@127.0.0.1:1" }
    local res, err = c:chat "Hi"
    c:close()
    assert.is_nil(res)
    assert.equal("connect", err.kind)
    assert.is_nil(tostring(err):find("proxy-pass", 1, true))
    assert.is_nil(err.message:find("proxy-pass", 1, true))
  end)

  it("honours libcurl's proxy environment variables", function ()
    local ok, out = sh(("http_proxy=http://127.0.0.1:%d lua5.4 -e '"
      .. "package.path=\"lua/?.lua;lua/?/init.lua;\"..package.path; package.cpath=\"./?.so;\"..package.cpath;"
      .. "local c = require(\"aigc\").client { base_url = \"http://aigc-nowhere.invalid/v1\", max_retries = 0 };"
      .. "print(assert(c:chat \"Echo: via env\").text)'"):format(nginx.ports.plain))
    assert(ok, out)
    assert.matches("via env", out)
    assert.equal("yes", srv:last().headers["x-via-proxy"])
  end)

  describe("header injection", function ()
    it("refuses CR, LF or NUL in header names and values", function ()
      for _, h in ipairs {
        { ["X-A"] = "v\r\nX-Injected: 1" }, { ["X-A"] = "v\nx" }, { ["X-A"] = "v\0x" },
        { ["X-A\r\nB"] = "v" }, { ["X A"] = "v" }, { [""] = "v" },
      } do
        assert.has_error(function () aigc.client { base_url = srv.base_url, headers = h } end)
        local c = aigc.client { base_url = srv.base_url }
        local ok, err = pcall(c.chat, c, { messages = { { role = "user", content = "x" } }, headers = h })
        assert.is_false(ok)
        assert.matches("header", err)
        c:close()
      end
      assert.equal(0, srv:stats().requests_total)
    end)

    it("refuses an API key with CR or LF", function ()
      assert.has_error(function () aigc.client { base_url = srv.base_url, api_key = "sk-x\r\nX-Evil: 1" } end,
                       "bad argument #1 to 'client' (opts.api_key: contains CR, LF or NUL)")
    end)

    it("sends a model name with CR/LF inside the JSON body, escaped", function ()
      local c = aigc.client { base_url = srv.base_url }
      assert(c:chat { model = "m\r\nX-Evil: 1", messages = { { role = "user", content = "x" } } })
      c:close()
      local last = srv:last()
      assert.is_nil(last.headers["x-evil"])
      assert.equal("m\r\nX-Evil: 1", last.body_json.model)
    end)

    it("escapes an Azure deployment name in the URL path", function ()
      local c = aigc.client { azure = true, endpoint = srv.url, api_version = "2024-06-01", api_key = "az-key-123456" }
      assert(c:chat { model = "dep/../x y", messages = { { role = "user", content = "x" } } })
      c:close()
      local last = srv:last()
      assert.equal("/openai/deployments/dep%2F..%2Fx%20y/chat/completions", last.path)
    end)
  end)

  it("accepts only http and https base URLs", function ()
    for _, url in ipairs { "ftp://x/v1", "file:///etc/passwd", "javascript:alert(1)", "127.0.0.1:8089/v1", "" } do
      assert.has_error(function () aigc.client { base_url = url } end,
                       "bad argument #1 to 'client' (opts.base_url: an http:// or https:// URL expected)")
    end
    assert.truthy(aigc.client { base_url = "HTTPS://Example.com/v1" })
  end)
end)
