-- Adversarial probes of the code that landed on Dec 5 (since 2446db5):
-- secrets in new messages, server text quoted in them, callbacks that do
-- anything at any time, the cost of new functions. Each test failed before
-- its fix.

local aigc = require "aigc"
local cjson = require "cjson"
local cli = require "cli"
local devserver = require "devserver"
local texts = require "texts"

-- A raw server answering each request by the longest "METHOD /prefix" route
-- of a JSON file the test writes (as spec/batch_probe_spec.lua's).
local ROUTED = [[
local oneshot = require "oneshot"
local cjson = require "cjson"
local routes_path = arg[1]
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

local KEY = "sk-proj-AUDITPROBE0123456789abcdefXYZ"

describe("audit probes against a raw server", function ()
  local port, child, dir, routes_path, client

  setup(function ()
    dir = cli.home()
    routes_path = dir .. "/routes.json"
    cli.write(routes_path, "{}")
    port, child = require("oneshot").start(ROUTED, { routes_path })
  end)
  teardown(function ()
    local socket = require "socket"
    local c = socket.tcp()
    if c:connect("127.0.0.1", port) then c:send("GET /_quit HTTP/1.1\r\n\r\n"); c:close() end
    child:wait(10)
    cli.rmdir(dir)
  end)
  local function serve (routes) cli.write(routes_path, cjson.encode(routes)) end

  before_each(function ()
    client = aigc.client { base_url = "http://127.0.0.1:" .. port .. "/v1", model = "aigc-dev", api_key = KEY,
                           max_retries = 0, timeout = 10 }
  end)
  after_each(function () client:close() end)

  it("files_upload_parts: an upload id that echoes the key is scrubbed from the error and its upload_id", function ()
    serve { ["POST /v1/uploads"] = { body = '{"id":"upload_' .. KEY .. '","object":"upload","status":"pending"}' },
            ["POST /v1/uploads/"] = { status = 500, body = '{"error":{"message":"parts are down"}}' } }
    local res, err = client:files_upload_parts { purpose = "batch", filename = "a.jsonl",
      file = { size = 3, reader = function () return nil end } }
    assert.is_nil(res)
    assert.is_table(err)
    assert.is_false(texts.contains(texts.all(err), KEY))
    assert.is_false(texts.contains(tostring(err), KEY))
    assert.matches("^upload upload_%[redacted%] %(cancelled%): ", err.message)
    assert.equal("upload_[redacted]", err.upload_id)
  end)
end)

describe("audit probes against the bundled server", function ()
  local srv, client

  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)
  before_each(function ()
    srv:reset()
    client = aigc.client { base_url = srv.base_url, api_key = KEY, max_retries = 0, timeout = 60 }
  end)
  after_each(function () client:close() end)

  it("files_upload_parts: a reader's big string is read on, not copied again at each piece (linear)", function ()
    local size = 8 * 1024 * 1024
    local data = string.rep("x", size)
    local given, copied = false, 0
    local sub = string.sub
    string.sub = function (...)   -- luacheck: ignore 122
      local s = sub(...)
      copied = copied + #s
      return s
    end
    local ok, res, err = pcall(client.files_upload_parts, client, { purpose = "batch", filename = "big.jsonl",
      file = { size = size, reader = function () if given then return nil end given = true return data end } })
    string.sub = sub   -- luacheck: ignore 122
    assert.is_true(ok, res)
    assert(res, err)
    assert.equal("completed", res.status)
    -- the pieces themselves are `size` bytes; cutting the rest off at each
    -- 1 MB piece copied 7 + 6 + ... + 1 MB more (36 MB in all)
    assert.is_true(copied < 2 * size, "string.sub made " .. copied .. " bytes for " .. size)
  end)
end)
