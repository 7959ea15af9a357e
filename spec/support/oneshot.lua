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

return M
