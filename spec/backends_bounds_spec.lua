-- What a server sends too much of: an error message of megabytes, and
-- bytes after a stream's [DONE]. The user gets a bounded error that says
-- it was cut (the whole text in err.body), and the reply as of [DONE]:
-- never a flood in a log line, an error made of what came after the end,
-- or a connection reused with the rest of a reply still on it.
local aigc = require "aigc"
local oneshot = require "oneshot"

-- luacheck: push ignore 631 (the replies, one a line)
local CHUNK = 'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}\n\n'
local LAST = 'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
local MORE = 'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":" after"},"finish_reason":null}]}\n\n'
local SECOND = '{"id":"c2","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"%s"},"finish_reason":"stop"}]}'
-- luacheck: pop
local MSGS = { { role = "user", content = "Hi" } }
local KEY = "sk-fake-bounds-0123456789"

local function client (base_url)
  return aigc.client { base_url = base_url, api_key = KEY, max_retries = 0, timeout = 60 }
end

-- One chat (streamed when `stream`) to a server answering `reply`: the
-- result, the error and the deltas given.
local function chat_to (reply, stream)
  local c = client(oneshot.serve_raw({ reply }, finally))
  local deltas = {}
  local res, err = c:chat { model = "m", messages = MSGS,
                            stream = stream and function (d) deltas[#deltas + 1] = d end or nil }
  c:close()
  return res, err, table.concat(deltas)
end

local function sse_reply (body)
  return "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n" .. body
end

describe("a server's error message of 3 MB", function ()
  local BIG = 3 * 1024 * 1024
  local KEPT = 64 * 1024

  -- The error's message: its first 64 KiB, then what says how much more
  -- there was; tostring one short line; the whole text in err.body.
  local function bounded (err, letter, whole)
    assert.equal(KEPT, #err.message:match("^(" .. letter .. "+)"))
    assert.equal("\226\128\166 (" .. (BIG - KEPT) .. " bytes more)", err.message:sub(KEPT + 1))
    assert.truthy(#tostring(err) < 600, #tostring(err))
    assert.equal(BIG, #whole(err.body))
  end

  it("as OpenAI's error object: err.message is cut and says so, err.body whole", function ()
    local _, err = chat_to(oneshot.http_reply("400 Bad Request",
      '{"error":{"message":"' .. ("a"):rep(BIG) .. '","type":"invalid_request_error","code":"c1"}}'))
    assert.same({ "http", 400, "invalid_request_error", "c1" }, { err.kind, err.status, err.type, err.code })
    bounded(err, "a", function (body) return body.error.message end)
  end)

  it("as Ollama's and LM Studio's error string, and a FastAPI detail string", function ()
    local _, err = chat_to(oneshot.http_reply("500 Internal Server Error", '{"error":"' .. ("b"):rep(BIG) .. '"}'))
    assert.same({ "http", 500 }, { err.kind, err.status })
    bounded(err, "b", function (body) return body.error end)
    _, err = chat_to(oneshot.http_reply("422 Unprocessable Entity", '{"detail":"' .. ("d"):rep(BIG) .. '"}'))
    assert.same({ "http", 422 }, { err.kind, err.status })
    bounded(err, "d", function (body) return body.detail end)
    assert.equal(err.message, err.detail)
  end)

  it("in a stream's error event: kind api, cut the same way, the text before it kept", function ()
    local _, err, deltas = chat_to(sse_reply(CHUNK .. 'data: {"error":{"message":"' .. ("c"):rep(BIG)
                                             .. '","code":"overloaded"}}\n\n'), true)
    assert.same({ "api", "overloaded", "Hi" }, { err.kind, err.code, deltas })
    bounded(err, "c", function (body) return body.error.message end)
  end)

  it("in a Responses stream's response.failed, and a response that failed: kind api, cut the same way", function ()
    local failed = '{"id":"r1","object":"response","status":"failed","output":[],"error":{"code":"server_error",'
      .. '"message":"' .. ("g"):rep(BIG) .. '"}}'
    local c = client(oneshot.serve_raw({ sse_reply('event: response.failed\ndata: {"type":"response.failed",'
      .. '"sequence_number":0,"response":' .. failed .. '}\n\n'), oneshot.http_reply("200 OK", failed) }, finally))
    finally(function () c:close() end)
    local _, err = c:respond { model = "m", input = "Hi", stream = function () end }
    assert.same({ "api", "server_error" }, { err.kind, err.code })
    bounded(err, "g", function (body) return body.error.message end)   -- (the response)
    _, err = c:respond { model = "m", input = "Hi" }
    assert.same({ "api", "server_error" }, { err.kind, err.code })
    assert.equal(KEPT, #err.message:match("^(g+)"))
    assert.equal("\226\128\166 (" .. (BIG - KEPT) .. " bytes more)", err.message:sub(KEPT + 1))
  end)

  it("cut inside a character, and never showing the key it echoes at the cut", function ()
    -- 65,535 bytes then a 3-byte character: the cut keeps whole characters
    local msg = ("e"):rep(KEPT - 1) .. "\226\130\172" .. ("e"):rep(100)
    local _, err = chat_to(oneshot.http_reply("400 Bad Request", '{"error":{"message":"' .. msg .. '"}}'))
    assert.equal(("e"):rep(KEPT - 1) .. "\226\128\166 (103 bytes more)", err.message)
    -- the key echoed across the cut: its start before the cut is not shown
    msg = ("f"):rep(KEPT - 10) .. KEY .. ("f"):rep(100)
    _, err = chat_to(oneshot.http_reply("401 Unauthorized", '{"error":{"message":"' .. msg .. '"}}'))
    assert.is_nil(err.message:find(KEY:sub(1, 8), 1, true))
    assert.truthy(err.message:find("bytes more)", 1, true))
    assert.is_nil(tostring(err):find("sk-fake", 1, true))
  end)
end)

describe("bytes after a stream's [DONE]", function ()
  it("chunks, an error event, broken JSON: the reply as of [DONE], no delta after it", function ()
    local res, err, deltas = chat_to(sse_reply(CHUNK .. LAST .. "data: [DONE]\n\n" .. MORE
      .. 'data: {"error":{"message":"late"}}\n\nevent: error\ndata: {"message":"late too"}\n\ndata: {"choi\n\n'), true)
    assert.is_nil(err and tostring(err))
    assert.same({ "Hi", "Hi", "stop" }, { deltas, res.text, res.choices[1].finish_reason })
  end)

  it("a server that goes on sending and never ends the response: the reply, and a new connection next", function ()
    -- The child: the first connection gets a chunked keep-alive stream whose
    -- chunks go on after [DONE] and never end; if the client sent its next
    -- request on it, that is answered "reused", else the next connection's
    -- is answered "fresh".
    local port, child = oneshot.start([[
      local oneshot = require "oneshot"
      local server = oneshot.listen()
      server:settimeout(60)
      local c = oneshot.read_request(server)
      local function chunk (s) return string.format("%x\r\n", #s) .. s .. "\r\n" end
      c:send("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
             .. chunk(arg[1]) .. chunk(arg[2]) .. chunk("data: [DONE]\n\n") .. chunk(arg[3]))
      c:settimeout(60)
      local line = c:receive("*l")
      local answer = line and "reused" or "fresh"
      if not line then c:close(); c = oneshot.read_request(server) end
      local body = arg[4]:format(answer)
      c:send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " .. #body
             .. "\r\nConnection: close\r\n\r\n" .. body)
      c:close()
    ]], { CHUNK, LAST, MORE, SECOND })
    local c = client("http://127.0.0.1:" .. port .. "/v1")
    finally(function () c:close(); child:wait(70) end)
    local deltas = {}
    local res, err = c:chat { model = "m", messages = MSGS, stream = function (d) deltas[#deltas + 1] = d end }
    assert.is_nil(err and tostring(err))
    assert.same({ "Hi", "Hi" }, { table.concat(deltas), res.text })
    res, err = c:chat { model = "m", messages = MSGS }
    assert.is_nil(err and tostring(err))
    assert.equal("fresh", res.text)
  end)
end)
