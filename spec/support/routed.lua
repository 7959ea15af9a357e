--- A raw HTTP server over loopback that answers as the test says, as a
-- hostile or odd server would (any status, any body, any Content-Type):
-- each request gets the route of a JSON table the test writes whose
-- "METHOD /prefix" key is the longest prefix of the request's target; no
-- route is a 404. Each request's "METHOD target" is appended to a log the
-- test can read. A refusal (4xx, 5xx) of a request that waits for
-- `100 Continue` is sent before its body, as a server that refuses does.
--
-- One copy of what five specs each carried (batch_faults, batch_probe,
-- audit_probe, server_text_probe, small_probe, readme_promises_probe).
-- Runs in a LuaSocket child (spec/support/oneshot); no aigc in the child.
--
-- @usage
-- local srv = routed.start()
-- srv:serve { ["GET /v1/batches/b"] = { status = 200, body = '{"id":"b"}' } }
-- local client = aigc.client { base_url = srv.base_url, ... }
-- ... srv:requests() -- { "GET /v1/batches/b" }
-- srv:stop()

local cjson = require "cjson"
local cli = require "cli"
local oneshot = require "oneshot"

local SCRIPT = [[
local oneshot = require "oneshot"
local cjson = require "cjson"
local routes_path, log_path = arg[1], arg[2]
local server = oneshot.listen()
server:settimeout(60)
while true do
  local c = server:accept()
  if not c then break end
  c:settimeout(5)
  local line, len, expect = c:receive("*l"), 0, false
  repeat
    local h = c:receive("*l")
    len = tonumber(h and h:match("^[Cc]ontent%-[Ll]ength: *(%d+)")) or len
    if h and h:lower():match("^expect: *100%-continue") then expect = true end
  until h == nil or h == ""
  local method, target = (line or ""):match("^(%S+) (%S+)")
  if target == "/_quit" then c:close(); break end
  local log = io.open(log_path, "ab")
  log:write(tostring(method), " ", tostring(target), "\n")
  log:close()
  local f = io.open(routes_path, "rb")
  local routes = cjson.decode(f:read("*a"))
  f:close()
  local best, blen = nil, -1
  for k, v in pairs(routes) do
    local m, prefix = k:match("^(%S+) (.*)$")
    if m == method and target and target:sub(1, #prefix) == prefix and #prefix > blen then best, blen = v, #prefix end
  end
  best = best or { status = 404, body = '{"error":{"message":"no route"}}' }
  local status = best.status or 200
  if len > 0 and not (expect and status >= 400) then
    if expect then c:send("HTTP/1.1 100 Continue\r\n\r\n") end
    c:receive(len)
  end
  local body = best.body or "{}"
  c:send(("HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n")
         :format(status, best.ctype or "application/json", #body) .. body)
  c:close()
end
]]

local Server = {}
Server.__index = Server

local M = {}

--- Starts the server in a folder of its own (`srv.dir`, removed by `stop`).
-- @treturn table the server: `port`, `base_url` ("http://127.0.0.1:PORT/v1"), `dir`
function M.start ()
  local dir = cli.home()
  local srv = setmetatable({ dir = dir, routes_path = dir .. "/routes.json", log_path = dir .. "/requests.log" },
                           Server)
  cli.write(srv.routes_path, "{}")
  cli.write(srv.log_path, "")
  srv.port, srv.child = oneshot.start(SCRIPT, { srv.routes_path, srv.log_path })
  srv.base_url = "http://127.0.0.1:" .. srv.port .. "/v1"
  return srv
end

--- Answers from now on by `routes`: { ["METHOD /prefix"] = { status =, body =, ctype = } }.
function Server:serve (routes)
  cli.write(self.routes_path, cjson.encode(routes))
end

--- Empties the log of requests.
function Server:forget ()
  cli.write(self.log_path, "")
end

--- The requests received since the start or the last `forget`.
-- @treturn {string,...} "METHOD target" of each, in order
function Server:requests ()
  local list = {}
  local f = io.open(self.log_path, "rb")
  if not f then return list end
  for line in f:read("*a"):gmatch("[^\n]+") do list[#list + 1] = line end
  f:close()
  return list
end

--- Stops the child and removes the folder.
function Server:stop ()
  local socket = require "socket"
  local c = socket.tcp()
  if c:connect("127.0.0.1", self.port) then c:send("GET /_quit HTTP/1.1\r\n\r\n"); c:close() end
  self.child:wait(10)
  cli.rmdir(self.dir)
end

return M
