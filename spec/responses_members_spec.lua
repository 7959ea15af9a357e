-- A Responses stream whose objects keep gaining keys (a hostile or broken
-- server): the accumulator (src/raccum.c) searches the keys of the
-- response, its items and parts linearly, so before the bound on their
-- members merging was quadratic: one output_item.done of n keys cost
-- n^2 / 2 comparisons, an item of 100,000 keys made every later delta
-- search them all, an output_item.done per new key did both. The client
-- runs in a child process under a timeout far above what the bounded merge
-- needs (even under valgrind) and far below what the quadratic one did.
local oneshot = require "oneshot"
local luachild = require "luachild"

-- (child) Answers one request with the body in the file arg[1].
local SERVER = [[
  local oneshot = require "oneshot"
  local body = assert(io.open(arg[1], "rb")):read("*a")
  local c = oneshot.read_request(oneshot.listen())
  c:send("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n" .. body)
  c:close()
]]

-- (child) Streams a response from arg[1]; writes the error's kind and message.
local CLIENT = [[
  local aigc = require "aigc"
  local c = aigc.client { base_url = arg[1], model = "m", max_retries = 0, timeout = 600 }
  local res, err = c:respond { input = "x", stream = function () end }
  local text = (err and err.partial or res or {}).output
  text = text and text[1] and text[1].content and text[1].content[1] and text[1].content[1].text
  io.write(err and err.kind or "ok", "\n", err and err.message or "", "\n", tostring(text), "\n")
  c:close()
]]

local HEAD = 'data: {"type":"response.created","response":{"id":"r1","object":"response",'
             .. '"status":"in_progress","output":[]}}\n\n'
             .. 'data: {"type":"response.output_item.added","output_index":0,"item":{"type":"message",'
             .. '"content":[{"type":"output_text","text":"Hi"}]}}\n\n'

-- `n` members "kI":1, comma-separated.
local function members (n)
  local t = {}
  for i = 1, n do t[i] = '"k' .. i .. '":1' end
  return table.concat(t, ",")
end

-- Serves `body` to a client in a child: its kind, message and text.
local function stream (body)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(body)
  f:close()
  local port, server = oneshot.start(SERVER, { path })
  -- (unbounded: 40 s natively for the first case, minutes for the others)
  local r = luachild.run(CLIENT, { args = { "http://127.0.0.1:" .. port .. "/v1" }, timeout = 20 })
  server:wait(10)
  os.remove(path)
  assert.equal(0, r.status, "the client did not end in time: " .. tostring(r.stderr))
  return r.stdout:match("^(.-)\n(.-)\n(.-)\n$")
end

describe("Responses stream: objects gaining keys without bound", function ()
  it("an output_item.done per new key is refused once the item has 128 members: kind 'limit'", function ()
    local t = { HEAD }
    for i = 1, 150000 do
      t[#t + 1] = 'data: {"type":"response.output_item.done","output_index":0,"item":{"k' .. i .. '":1}}\n\n'
    end
    local kind, message, text = stream(table.concat(t))
    assert.equal("limit", kind)
    assert.equal("the streamed response holds an object of more than 128 members", message)
    assert.equal("Hi", text)   -- (err.partial: what came before)
  end)

  it("an item of 100,000 keys is refused, not searched by each delta after it", function ()
    local t = { HEAD, 'data: {"type":"response.output_item.added","output_index":1,"item":{"type":"message",'
                      .. '"content":[{"type":"output_text","text":""}],' .. members(100000) .. '}}\n\n' }
    for _ = 1, 100000 do
      t[#t + 1] = 'data: {"type":"response.output_text.delta","output_index":1,"content_index":0,"delta":"a"}\n\n'
    end
    local kind, message = stream(table.concat(t))
    assert.equal("limit", kind)
    assert.equal("the streamed response holds an object of more than 128 members", message)
  end)

  it("one output_item.done or snapshot of 300,000 keys is refused before any is merged", function ()
    for _, ev in ipairs {
      '{"type":"response.output_item.done","output_index":0,"item":{' .. members(300000) .. '}}',
      '{"type":"response.in_progress","response":{' .. members(300000) .. '}}',
    } do
      local kind, message, text = stream(HEAD .. "data: " .. ev .. "\n\n")
      assert.equal("limit", kind)
      assert.equal("the streamed response holds an object of more than 128 members", message)
      assert.equal("Hi", text)
    end
  end)

  it("objects of real sizes are merged as before", function ()
    local kind, message, text = stream(HEAD
      .. 'data: {"type":"response.output_item.done","output_index":0,"item":{' .. members(100) .. '}}\n\n'
      .. 'data: {"type":"response.output_text.delta","output_index":0,"content_index":0,"delta":"!"}\n\n'
      .. 'data: {"type":"response.completed","response":{"id":"r1","object":"response","status":"completed",'
      .. members(120) .. '}}\n\n')
    assert.equal("ok", kind, message)
    assert.equal("Hi!", text)
  end)
end)
