--- A LuaSocket server on two ports of 127.0.0.1 (two origins) that
-- redirects, for the redirect specs. No aigc on the server side. The path
-- says what to answer:
--   /r/CODE/TARGET[/...]  CODE (a 3xx) with Location: TARGET (%-encoded;
--                         what follows it is ignored: an API call's path)
--   /hops/N               a chain: a 302 to /hops/(N-1) (a relative
--                         Location), /hops/0 a 200
--   /loop                 a 302 to itself
--   /ok/TEXT              a 200 with body TEXT
--   /png/TEXT             a 200 with body TEXT as image/png (an image URL's)
--   /json/TEXT[/...]      a 200 with body TEXT (%-encoded), as JSON (an
--                         API call's answer: what follows is its path)
-- A redirect's body is "redirect-body" and it has "X-Hop: redirect"; a
-- 200's has "X-Hop: final". Every request is recorded: `srv.requests()`
-- gives them in order, each { port =, method =, path =, headers = {lower
-- name = value} }. `srv.stop()` ends the child.
--
-- @usage
-- local redirector = require "redirector"
-- local srv = redirector.start()
-- local a, b = srv.origin_a, srv.origin_b   -- "http://127.0.0.1:PORT"
-- c:download(a .. "/r/302/" .. redirector.encode(b .. "/ok/hi"))
-- srv.stop()

local M = {}

local SCRIPT = [[
  local socket = require "socket"
  local log_path = arg[1]
  local a = assert(socket.bind("127.0.0.1", 0))
  local b = assert(socket.bind("127.0.0.1", 0))
  local ports = { [a] = select(2, a:getsockname()), [b] = select(2, b:getsockname()) }
  io.write(ports[a], " ", ports[b], "\n")
  io.flush()
  local function decode (s)
    return (s:gsub("%%(%x%x)", function (h) return string.char(tonumber(h, 16)) end))
  end
  local function answer (c, status, headers, body, ctype)
    c:send("HTTP/1.1 " .. status .. " X\r\n" .. headers .. "Content-Type: " .. (ctype or "text/plain")
           .. "\r\nContent-Length: " .. #body .. "\r\nConnection: close\r\n\r\n" .. body)
  end
  while true do
    local ready = socket.select({ a, b }, nil, 60)   -- (idle: the spec is gone)
    if not ready or not ready[1] then break end
    local listener = ready[1]
    local c = listener:accept()
    if c then
      c:settimeout(5)
      local first = c:receive("*l") or ""
      local method, path = first:match("^(%u+) (%S+)")
      local rec, len = {}, 0
      while true do
        local line = c:receive("*l")
        if not line or line == "" then break end
        local name, value = line:match("^([^:]+):%s*(.-)%s*$")
        if name then
          rec[#rec + 1] = name:lower() .. "\1" .. value
          if name:lower() == "content-length" then len = tonumber(value) or 0 end
        end
      end
      if len > 0 then c:receive(len) end
      local log = assert(io.open(log_path, "ab"))
      log:write(ports[listener], "\2", method or "?", "\2", path or "?", "\2", table.concat(rec, "\3"), "\n")
      log:close()
      path = path or ""
      local code, target = path:match("^/r/(%d+)/([^/]+)")
      local n = tonumber(path:match("^/hops/(%d+)$"))
      if path == "/quit" then c:close(); break
      elseif code then answer(c, code, "Location: " .. decode(target) .. "\r\nX-Hop: redirect\r\n", "redirect-body")
      elseif n and n > 0 then answer(c, 302, "Location: " .. (n - 1) .. "\r\nX-Hop: redirect\r\n", "redirect-body")
      elseif path == "/loop" then answer(c, 302, "Location: /loop\r\nX-Hop: redirect\r\n", "redirect-body")
      elseif n == 0 then answer(c, 200, "X-Hop: final\r\n", "hops-done")
      elseif path:find("^/json/") then
        answer(c, 200, "", decode(path:match("^/json/([^/]*)")), "application/json")
      elseif path:find("^/ok/") then answer(c, 200, "X-Hop: final\r\n", decode(path:sub(5)))
      elseif path:find("^/png/") then answer(c, 200, "X-Hop: final\r\n", decode(path:sub(6)), "image/png")
      else answer(c, 404, "", "no such path") end
      c:close()
    end
  end
]]

--- `s` %-encoded whole (a URL as one path segment).
function M.encode (s)
  return (s:gsub("[^%w]", function (ch) return string.format("%%%02X", ch:byte()) end))
end

--- (spec) Starts the server; returns it (see the module's comment).
function M.start ()
  local luachild = require "luachild"
  local p = io.popen("mktemp /tmp/aigc-redirector-XXXXXX")
  local log_path = p:read("*l")
  p:close()
  local child = luachild.run(SCRIPT, { lua = os.getenv("LUA") or "lua5.4", args = { log_path }, background = true })
  local pa, pb
  for _ = 1, 500 do
    local f = io.open(child.stdout_path)
    if f then
      pa, pb = f:read("*a"):match("(%d+) (%d+)")
      f:close()
    end
    if pa then break end
    os.execute("sleep 0.01")
  end
  assert(pa, "the redirecting server printed no ports")
  local srv = { origin_a = "http://127.0.0.1:" .. pa, origin_b = "http://127.0.0.1:" .. pb,
                port_a = tonumber(pa), port_b = tonumber(pb) }
  function srv.requests ()
    local out = {}
    local f = io.open(log_path, "rb")
    for line in (f and f:read("*a") or ""):gmatch("[^\n]+") do
      local port, method, path, hs = line:match("^(%d+)\2([^\2]*)\2([^\2]*)\2(.*)$")
      local headers = {}
      for h in hs:gmatch("[^\3]+") do
        local name, value = h:match("^([^\1]*)\1(.*)$")
        headers[name] = value
      end
      out[#out + 1] = { port = tonumber(port), method = method, path = path, headers = headers }
    end
    if f then f:close() end
    return out
  end
  --- Forgets the requests recorded so far.
  function srv.reset ()
    local f = io.open(log_path, "wb")
    if f then f:close() end
  end
  function srv.stop ()
    local s = require("socket").connect("127.0.0.1", srv.port_a)
    if s then
      s:send("GET /quit HTTP/1.1\r\nHost: x\r\n\r\n")
      s:close()
    end
    child:wait(10)
    os.remove(log_path)
  end
  return srv
end

return M
