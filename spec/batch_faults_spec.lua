-- aigc.batch against a server that sends what the Batch API does not
-- describe, or echoes the key, and against misuse: what a server sends is
-- `nil, err` (kind "parse", naming the field; per line for output lines),
-- never a raise; every error built from server data is scrubbed of the
-- client's secrets; misuse raises `bad argument #N to 'fn'` at the
-- caller's line; ids go into paths percent-encoded.
--
-- The server: a small LuaSocket child (spec/support/oneshot) answering
-- each request by the longest "METHOD /prefix" route of a table the test
-- writes (as hostile servers do: any body, any status), logging each
-- request line.

local aigc = require "aigc"
local batch = require "aigc.batch"
local cjson = require "cjson"
local cli = require "cli"
local misuse = require "misuse"
local proc = require "procutil"

local ROUTED = [[
local oneshot = require "oneshot"
local cjson = require "cjson"
local routes_path, log_path = arg[1], arg[2]
local server = oneshot.listen()
server:settimeout(60)
while true do
  local c = server:accept()
  if not c then break end
  c:settimeout(5)
  local line, len = c:receive("*l"), 0
  repeat
    local h = c:receive("*l")
    len = tonumber(h and h:match("^[Cc]ontent%-[Ll]ength: *(%d+)")) or len
  until h == nil or h == ""
  if len > 0 then c:receive(len) end
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
  local body = best.body or "{}"
  c:send(("HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n")
         :format(best.status or 200, best.ctype or "application/json", #body) .. body)
  c:close()
end
]]

local KEY = "sk-proj-BATCHSECRET0123456789abcdefXYZ"
local FILE = { body = '{"id":"file-1","object":"file","purpose":"batch"}' }
local function ask (id, content)
  return { custom_id = id, body = { messages = { { role = "user", content = content } } } }
end
local REQS = { ask("fr", "Capital of France?") }

describe("aigc.batch against a hostile server", function ()
  local port, child, dir, routes_path, log_path, client

  setup(function ()
    dir = cli.home()
    routes_path, log_path = dir .. "/routes.json", dir .. "/requests.log"
    cli.write(routes_path, "{}")
    port, child = require("oneshot").start(ROUTED, { routes_path, log_path })
  end)
  teardown(function ()
    local socket = require "socket"
    local c = socket.tcp()
    if c:connect("127.0.0.1", port) then c:send("GET /_quit HTTP/1.1\r\n\r\n"); c:close() end
    child:wait(10)
    cli.rmdir(dir)
  end)

  local function serve (routes)
    cli.write(routes_path, cjson.encode(routes))
    os.remove(log_path)
  end
  local function requests ()
    local list = {}
    for line in (proc.read_file(log_path) or ""):gmatch("[^\n]+") do list[#list + 1] = line end
    return list
  end

  before_each(function ()
    client = aigc.client { base_url = "http://127.0.0.1:" .. port .. "/v1", model = "aigc-dev", api_key = KEY,
                           max_retries = 0, timeout = 10 }
  end)
  after_each(function () client:close() end)

  describe("ids go into paths percent-encoded", function ()
    it("retrieve, cancel and wait with an id holding / ? = and ..", function ()
      local b = { body = '{"id":"../files?x=","status":"completed"}' }
      serve { ["GET /v1/batches/"] = b, ["POST /v1/batches/"] = b, ["GET /v1/files"] = { status = 500 } }
      assert(batch.retrieve(client, "../files?x="))
      assert(batch.cancel(client, "../files?x="))
      assert(batch.wait(client, "../files?x=", { interval = 0.02 }))
      assert.same({ "GET /v1/batches/..%2Ffiles%3Fx%3D", "POST /v1/batches/..%2Ffiles%3Fx%3D/cancel",
                    "GET /v1/batches/..%2Ffiles%3Fx%3D" }, requests())
    end)

    it("a server-chosen id reaches no other endpoint", function ()
      local made = { body = '{"id":"../files?x=","status":"validating"}' }
      serve { ["POST /v1/files"] = FILE, ["POST /v1/batches"] = made,
              ["GET /v1/batches/"] = { body = '{"id":"../files?x=","status":"completed"}' },
              ["GET /v1/files"] = { body = '{"id":"x","status":"completed","output_file_id":"o"}' } }
      local results = assert(batch.run(client, REQS, { interval = 0.02 }))
      assert.same({}, results)
      for _, r in ipairs(requests()) do assert.is_nil(r:find("?x=", 1, true), r) end
    end)
  end)
end)

describe("aigc.batch misuse", function ()
  local client
  before_each(function () client = aigc.client { base_url = "http://127.0.0.1:9/v1", max_retries = 0 } end)
  after_each(function () client:close() end)

  it("raises bad argument #N to the function called, at the caller's line", function ()
    misuse.raises("bad argument #1 to 'run' %(aigc%.client expected, got nil%)",
                  function () batch.run(nil, REQS) end)
    misuse.raises("bad argument #1 to 'retrieve' %(aigc%.client expected, got the aigc%.batch module: "
                  .. "call aigc%.batch%.retrieve%(client, %.%.%.%) with '%.', not ':'%)",
                  function () batch:retrieve("x") end)
    misuse.raises("bad argument #2 to 'results' %(batch %(table%) expected, got nil%)",
                  function () batch.results(client, nil) end)
    misuse.raises("bad argument #1 to 'jsonl' %(non%-empty list of { custom_id =, body = } expected, got nil%)",
                  function () batch.jsonl(nil) end)
    misuse.raises("bad argument #1 to 'jsonl' %(requests%[2%]%.custom_id: duplicate 'fr'%)",
                  function () batch.jsonl { ask("fr", "a"), ask("fr", "b") } end)
    misuse.raises("bad argument #2 to 'jsonl' %(string expected, got number%)",
                  function () batch.jsonl(REQS, 5) end)
    misuse.raises("bad argument #2 to 'run' %(requests%[1%]: table expected, got string%)",
                  function () batch.run(client, { "x" }) end)
    misuse.raises("bad argument #3 to 'run' %(table expected, got string%)",
                  function () batch.run(client, REQS, "fast") end)
    misuse.raises("bad argument #3 to 'create' %(opts%.metadata: table expected, got string%)",
                  function () batch.create(client, REQS, { metadata = "m" }) end)
    misuse.raises("bad argument #3 to 'wait' %(opts%.interval: number of seconds >= 0 expected, got %-1%)",
                  function () batch.wait(client, "b", { interval = -1 }) end)
    misuse.raises("bad argument #3 to 'wait' %(opts%.on_progress: function expected, got string%)",
                  function () batch.wait(client, "b", { on_progress = "print" }) end)
    misuse.raises("bad argument #2 to 'wait' %(batch id expected, got nil%)", function () batch.wait(client) end)
    misuse.raises("bad argument #2 to 'cancel' %(batch id expected, got an empty string%)",
                  function () batch.cancel(client, "") end)
    misuse.raises("bad argument #2 to 'retrieve' %(batch id expected, got '%.%.'%)",
                  function () batch.retrieve(client, "..") end)
    misuse.raises("bad argument #1 to 'cancel' %(aigc%.client expected, got string%)",
                  function () batch.cancel("b") end)
    misuse.raises("bad argument #2 to 'download' %(file id expected, got nil%)",
                  function () batch.download(client) end)
    misuse.raises("bad argument #2 to 'upload' %(string expected, got nil%)", function () batch.upload(client) end)
  end)
end)
