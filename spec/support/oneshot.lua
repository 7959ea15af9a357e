--- One-off HTTP servers of a few lines, for answers the bundled server does
-- not give (a header name repeated 10,000 times, another server's SSE
-- events): a script run by LuaSocket in a background child. The child side
-- listens and reads each request; the spec side starts the child and reads
-- its port. Runs on Lua 5.1-5.4 and LuaJIT; no aigc.
--
-- @usage
-- -- the child's script:
-- local oneshot = require "oneshot"
-- local server = oneshot.listen()
-- local c = oneshot.read_request(server)
-- c:send("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"); c:close()
-- -- the spec:
-- local port, child = oneshot.start(SCRIPT, { "arg1" })
-- ...; child:wait(10)

local M = {}

--- (child) Listens on a free port of 127.0.0.1 and prints the port on stdout.
-- @return the LuaSocket server
function M.listen ()
  local socket = require "socket"
  local server = assert(socket.bind("127.0.0.1", 0))
  io.write(select(2, server:getsockname()), "\n")
  io.flush()
  return server
end

--- (child) Accepts one connection and reads one request from it (the
-- headers, then a body of its Content-Length), with a 5 s bound.
-- @return the connection, to answer on
-- @treturn string the request's body
function M.read_request (server)
  local c = assert(server:accept())
  c:settimeout(5)
  local len = 0
  repeat
    local line = assert(c:receive("*l"))
    len = tonumber(line:match("^[Cc]ontent%-[Ll]ength: *(%d+)")) or len
  until line == ""
  local body = len > 0 and c:receive(len) or ""
  return c, body
end

--- (spec) Runs `script` with `args` in a background child (lua5.4, or $LUA)
-- and waits until it printed its port.
-- @treturn number the port
-- @treturn table the child (luachild.run's; `child:wait(10)` when done)
function M.start (script, args)
  local luachild = require "luachild"
  local child = luachild.run(script, { lua = os.getenv("LUA") or "lua5.4", args = args, background = true })
  local port
  for _ = 1, 500 do
    local f = io.open(child.stdout_path)
    port = f and tonumber(f:read("*a"):match("%d+"))
    if f then f:close() end
    if port then break end
    os.execute("sleep 0.01")
  end
  return assert(port, "the one-shot server printed no port"), child
end

-- (child) Answers its connections, in order, with the raw replies in the
-- files arg[1], arg[2]... (one a connection, then closed).
local RAW_REPLIES = [[
  local oneshot = require "oneshot"
  local server = oneshot.listen()
  for i = 1, #arg do
    local f = assert(io.open(arg[i], "rb"))
    local reply = f:read("*a")
    f:close()
    local c = oneshot.read_request(server)
    c:send(reply)
    c:close()
  end
]]

--- (spec) A whole HTTP/1.1 response with a JSON `body`, for `serve_raw`:
-- `status` its status line's end ("200 OK"), `headers` more header lines
-- ("Name: value\r\n" each), if any.
function M.http_reply (status, body, headers)
  return "HTTP/1.1 " .. status .. "\r\nContent-Type: application/json\r\n" .. (headers or "")
    .. "Content-Length: " .. #body .. "\r\nConnection: close\r\n\r\n" .. body
end

--- (spec) Starts a child that answers its connections, in order, with the
-- raw replies given (whole HTTP responses, one a connection, then closed),
-- stopped at the test's end (killed when a failure left it waiting).
-- @tparam {string,...} replies
-- @tparam function finally the spec's `finally` (a module cannot see the test's)
-- @treturn string its base URL ("http://127.0.0.1:PORT/v1")
function M.serve_raw (replies, finally)
  local files = {}
  for i, reply in ipairs(replies) do
    files[i] = os.tmpname()
    local f = assert(io.open(files[i], "wb"))
    f:write(reply)
    f:close()
  end
  local port, child = M.start(RAW_REPLIES, files)
  finally(function ()
    child:wait(10)
    for _, path in ipairs(files) do os.remove(path) end
  end)
  return "http://127.0.0.1:" .. port .. "/v1"
end

--- (spec) `serve_raw` of two replies as from behind Azure API Management:
-- both carry `apim-request-id: 6f1c2a9e-apim`, the second `x-request-id:
-- req_openai` too (which is the request id when both are there).
-- @treturn string the base URL
function M.apim_server (status, body, finally)
  local apim = "apim-request-id: 6f1c2a9e-apim\r\n"
  return M.serve_raw({ M.http_reply(status, body, apim),
                       M.http_reply(status, body, apim .. "x-request-id: req_openai\r\n") }, finally)
end

-- (child) Answers one request with a 200 of type arg[1] announcing arg[2]
-- bytes and sending arg[3] of them; then closes, or with arg[4] "stall"
-- waits (30 s at most) until the client hangs up.
local ANNOUNCED = [[
  local oneshot = require "oneshot"
  local server = oneshot.listen()
  server:settimeout(30)
  local c = oneshot.read_request(server)
  c:send("HTTP/1.1 200 OK\r\nContent-Type: " .. arg[1] .. "\r\nContent-Length: " .. arg[2] .. "\r\n\r\n"
         .. ("x"):rep(tonumber(arg[3])))
  if arg[4] == "stall" then
    c:settimeout(30)
    c:receive("*a")   -- (the rest never comes)
  end
  c:close()
]]

--- (spec) A child that answers one request (a download's) with a 200 of
-- `content_type` whose Content-Length says `length` and whose body is `sent`
-- bytes of "x"; then it closes the connection (the transfer cut short), or
-- with `stall` keeps it open until the client hangs up.
-- @treturn number the port
-- @treturn table the child (`child:wait(30)` when done)
function M.announced (content_type, length, sent, stall)
  return M.start(ANNOUNCED, { content_type, tostring(length), tostring(sent), stall and "stall" or "" })
end

-- (child) Answers one request with the SSE body in the file arg[1]; keeps
-- the response open arg[2] seconds more (until the client goes) unless "".
local CANNED_SSE = [[
  local oneshot = require "oneshot"
  local body = assert(io.open(arg[1], "rb")):read("*a")
  local c = oneshot.read_request(oneshot.listen())
  c:send("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n" .. body)
  if arg[2] ~= "" then
    c:settimeout(tonumber(arg[2]))
    c:receive("*a")
  end
  c:close()
]]

--- (spec) A child that answers one request with `sse_body` (200, an event
-- stream: another server's events), and an `aigc` client to it
-- (`max_retries = 0`, with `client_opts` on top).
-- @param aigc the module
-- @tparam string sse_body
-- @tparam[opt] number linger seconds the child keeps the response open after the body
-- @tparam[opt] table client_opts
-- @return the client
-- @treturn function done: closes the client, waits for the child, removes its file
function M.sse_client (aigc, sse_body, linger, client_opts)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(sse_body)
  f:close()
  local port, child = M.start(CANNED_SSE, { path, linger and tostring(linger) or "" })
  local opts = { base_url = "http://127.0.0.1:" .. port .. "/v1", max_retries = 0 }
  for k, v in pairs(client_opts or {}) do opts[k] = v end
  local c = aigc.client(opts)
  return c, function () c:close(); child:wait((linger or 0) + 10); os.remove(path) end
end

--- (spec) Starts `script` (with `args`): a child that answers chat requests
-- by their "model" and ends when asked for the model "quit" (the servers of
-- backends_spec and its kin).
-- @treturn table the server: `base_url` ("http://127.0.0.1:PORT/v1"), and
-- `stop()`, which asks for "quit" through an aigc client and waits for the child
function M.model_server (script, args)
  local port, child = M.start(script, args)
  local srv = { base_url = "http://127.0.0.1:" .. port .. "/v1" }
  function srv.stop ()
    local c = require("aigc").client { base_url = srv.base_url, max_retries = 0, timeout = 5 }
    c:chat { model = "quit", messages = { { role = "user", content = "x" } } }
    c:close()
    child:wait(10)
  end
  return srv
end

return M
