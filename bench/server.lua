-- The canned server: one nginx worker (no master, so the pid we start is
-- the process that serves, and taskset pins exactly it) on 127.0.0.1, with
-- its own config and prefix folder under build/bench/nginx.
--
--   POST /v1/chat/completions      the ~600-byte chat.completion
--   POST /sse/v1/chat/completions  the 200-chunk SSE stream, then [DONE]
--   POST /sse-openai/v1/chat/completions  the same with OpenAI's "obfuscation"
--
-- The chat body is inline (`return 200 '...'`); the stream is too long for
-- one nginx config token (4 KiB), so it is a file, served for a POST by
-- turning the static module's 405 into an internal GET of that file.

local socket = require "socket"
local fixtures = require "fixtures"

local M = {}

-- Headers an OpenAI answer carries (besides nginx's own five): the
-- clients that build res.headers pay for them, as they would for real.
local HEADERS = {
  { "openai-organization", "user-bench" },
  { "openai-processing-ms", "412" },
  { "openai-version", "2020-10-01" },
  { "x-ratelimit-limit-requests", "10000" },
  { "x-ratelimit-remaining-requests", "9999" },
  { "x-ratelimit-reset-requests", "6ms" },
  { "x-request-id", "req_5f3ac1d3b9c24e7f8e1d2b6a9c0f4e21" },
}

local function free_port ()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

local function write (path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

-- `template` with each word (capitals, digits, `_`) that is a key of
-- `values` replaced, in one pass: a value put in (a directory, the reply's
-- JSON) is never searched again for another word, nor read for `%`.
local function fill (template, values)
  return (template:gsub("%u[%u%d_]*", function (word)
    local value = values[word]
    if value ~= nil then return tostring(value) end
  end))
end

local function sh (cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  return out
end

--- Starts nginx pinned to `cpu` (a taskset CPU list). Returns the server.
function M.start (dir, cpu)
  if dir:sub(1, 1) ~= "/" then dir = sh("pwd"):gsub("%s+$", "") .. "/" .. dir end
  os.execute("rm -rf " .. dir .. " && mkdir -p " .. dir .. "/tmp " .. dir .. "/www")
  write(dir .. "/www/stream.sse", fixtures.stream)
  write(dir .. "/www/stream_openai.sse", fixtures.stream_openai)
  local port, tls2_port, tls1_port = free_port(), free_port(), free_port()
  -- TLS (for HTTP/2 next to HTTP/1.1): a self-signed certificate for
  -- 127.0.0.1, made here; without openssl those ports are left out.
  local tls = os.execute(("openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=127.0.0.1 "
    .. "-addext subjectAltName=IP:127.0.0.1 -keyout %s/key.pem -out %s/cert.pem >/dev/null 2>&1"):format(dir, dir))
  local add = {}
  for _, h in ipairs(HEADERS) do add[#add + 1] = ("add_header %s %s always;"):format(h[1], h[2]) end
  local conf = ([[
daemon off; master_process off; worker_processes 1;
pid DIR/nginx.pid; error_log DIR/error.log warn;
worker_rlimit_nofile 16384;
events { worker_connections 10240; }
http {
  access_log off; server_tokens off;
  keepalive_requests 100000000; keepalive_timeout 600s;
  client_body_temp_path DIR/tmp; proxy_temp_path DIR/tmp; fastcgi_temp_path DIR/tmp;
  uwsgi_temp_path DIR/tmp; scgi_temp_path DIR/tmp;
  http2_max_concurrent_streams 1024;
  server {
    listen 127.0.0.1:PORT backlog=4096;
    TLS_LISTEN
    ADD_HEADERS
    location = /v1/chat/completions { default_type application/json; return 200 'CHAT'; }
    location = /sse/v1/chat/completions { error_page 405 =200 /stream.sse; return 405; }
    location = /stream.sse { internal; root DIR/www; types { } default_type text/event-stream; }
    location = /sse-openai/v1/chat/completions { error_page 405 =200 /stream_openai.sse; return 405; }
    location = /stream_openai.sse { internal; root DIR/www; types { } default_type text/event-stream; }
  }
}
]]):gsub("TLS_LISTEN", tls and ("listen 127.0.0.1:TLS2PORT ssl http2 backlog=4096; "
      .. "listen 127.0.0.1:TLS1PORT ssl backlog=4096; ssl_certificate DIR/cert.pem; ssl_certificate_key DIR/key.pem;")
      or "")
  conf = fill(conf, { TLS2PORT = tls2_port, TLS1PORT = tls1_port, ADD_HEADERS = table.concat(add, "\n    "),
                      DIR = dir, PORT = port, CHAT = fixtures.chat })
  write(dir .. "/nginx.conf", conf)
  local pid = tonumber(sh(("taskset -c %s nginx -p %s -c %s/nginx.conf >%s/stdout.log 2>&1 & echo $!")
    :format(cpu, dir, dir, dir)):match("%d+"))
  local deadline = socket.gettime() + 10
  while true do
    local c = socket.tcp()
    c:settimeout(0.2)
    local ok = c:connect("127.0.0.1", port)
    c:close()
    if ok then break end
    if socket.gettime() > deadline or not os.execute("kill -0 " .. pid .. " 2>/dev/null") then
      os.execute("kill " .. pid .. " 2>/dev/null")
      error("nginx did not start: " .. sh("cat " .. dir .. "/error.log " .. dir .. "/stdout.log"))
    end
    socket.sleep(0.02)
  end
  local server = { dir = dir, pid = pid, port = port,
                   url = "http://127.0.0.1:" .. port .. "/v1",
                   sse_url = "http://127.0.0.1:" .. port .. "/sse/v1",
                   sse_openai_url = "http://127.0.0.1:" .. port .. "/sse-openai/v1" }
  if tls then   -- the same answers over TLS: HTTP/2 (ALPN) on one port, HTTP/1.1 only on the other
    server.h2_url = "https://127.0.0.1:" .. tls2_port .. "/v1"
    server.h1_tls_url = "https://127.0.0.1:" .. tls1_port .. "/v1"
    server.ca_file = dir .. "/cert.pem"
  end
  function server.stop ()
    os.execute("kill " .. pid .. " 2>/dev/null")
    -- The worker exits once its connections are closed; wait a little.
    for _ = 1, 50 do
      if not os.execute("kill -0 " .. pid .. " 2>/dev/null") then return end
      socket.sleep(0.02)
    end
    os.execute("kill -9 " .. pid .. " 2>/dev/null")
  end
  return server
end

return M
