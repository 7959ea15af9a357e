-- How a stream's body ends, as servers really end it (probe4 findings 10
-- and 11): a final "data: [DONE]" without its blank line is the end the
-- server meant; a body cut inside an event is still incomplete; a 2xx that
-- is no event stream at all (a captive portal's page) says what came.
-- The answers come from a one-off server (spec/support/oneshot.lua), one
-- per request model, byte for byte.
local aigc = require "aigc"
local oneshot = require "oneshot"

warn("@on")

local KEY = "sk-wire-SECRET-0123456789abcdef"

local SERVER = [=[
  local oneshot = require "oneshot"
  local KEY = ...
  local function chunk (text, finish)
    return '{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,'
      .. '"delta":{"content":"' .. text .. '"},"finish_reason":' .. (finish and '"stop"' or 'null') .. '}]}'
  end
  local SSE = "text/event-stream"
  local HTML = '<html>\n<head><title>Portal</title></head>\n<body>Log in to use the network</body>\n</html>\n'
  local CASES = {
    ["done-eof"] = { SSE, "data: " .. chunk("A", true) .. "\n\ndata: [DONE]" },
    ["done-eof-lf"] = { SSE, "data: " .. chunk("A", true) .. "\r\n\r\ndata: [DONE]\r\n" },
    ["done-eof-len"] = { SSE, "data: " .. chunk("A", true) .. "\n\ndata: [DONE]", true },
    ["cut-json"] = { SSE, "data: " .. chunk("A", false) .. "\n\ndata: " .. chunk("B", true):sub(1, 40) },
    ["cut-done"] = { SSE, "data: " .. chunk("A", true) .. "\n\ndata: [DO" },
    ["last-unended"] = { SSE, "data: " .. chunk("A", false) .. "\n\ndata: " .. chunk("B", true) },
    ["html"] = { "text/html; charset=utf-8", HTML },
    ["no-type"] = { nil, "Service temporarily unavailable\n" },
    ["bytes"] = { "text/plain", "<p>D\195\169sol\195\169\1\127</p>\n" },
    ["echo"] = { "text/html", "<p>bad key " .. KEY .. "</p>" .. string.rep("x", 300) },
    ["echo-cut"] = { "text/html", "<p>" .. string.rep("y", 106) .. KEY .. "</p>" },
    ["mislabelled"] = { "text/plain", "data: " .. chunk("A", true) .. "\n\ndata: [DONE]\n\n" },
  }
  local server = oneshot.listen()
  while true do
    local c, body = oneshot.read_request(server)
    local model = body:match('"model":"([^"]*)"')
    if model == "quit" then c:close(); break end
    local case = CASES[model] or { "text/plain", "no such case" }
    local h = { "HTTP/1.1 200 OK", "Connection: close" }
    if case[1] then h[#h + 1] = "Content-Type: " .. case[1] end
    if case[3] then h[#h + 1] = "Content-Length: " .. #case[2] end
    c:send(table.concat(h, "\r\n") .. "\r\n\r\n" .. case[2])
    c:close()
  end
]=]

describe("the end of a stream's body", function ()
  local srv, client

  setup(function () srv = oneshot.model_server(SERVER, { KEY }) end)
  teardown(function () srv.stop() end)
  before_each(function ()
    client = aigc.client { base_url = srv.base_url, api_key = KEY, max_retries = 2 }
  end)
  after_each(function () client:close() end)

  local function stream (model)
    local deltas = {}
    local res, err = client:chat { model = model, messages = { { role = "user", content = "Hi" } },
                                   stream = function (d) deltas[#deltas + 1] = d end }
    return res, err, table.concat(deltas)
  end

  describe("a final data: [DONE] without its blank line (finding 11)", function ()
    it("ends the stream well when the body ends right after it", function ()
      local res, err, text = stream("done-eof")
      assert.is_nil(err)
      assert.equal("A", res.choices[1].message.content)
      assert.equal("stop", res.choices[1].finish_reason)
      assert.equal("A", text)
    end)

    it("ends it well after one line end (CRLF), and with a Content-Length", function ()
      local res = assert(stream("done-eof-lf"))
      assert.equal("A", res.text)
      res = assert(stream("done-eof-len"))
      assert.equal("A", res.text)
    end)
  end)

  describe("a body cut inside an event is still incomplete", function ()
    it("cut inside a chunk's JSON: kind stream, the partial result kept", function ()
      local res, err = stream("cut-json")
      assert.is_nil(res)
      assert.equal("stream", err.kind)
      assert.matches("incomplete", err.message)
      assert.equal("A", err.partial.choices[1].message.content)
    end)

    it("cut inside [DONE]", function ()
      local _, err = stream("cut-done")
      assert.equal("stream", err.kind)
      assert.matches("ended before %[DONE%]", err.message)
    end)

    it("a last chunk without its blank line and no [DONE]", function ()
      local _, err = stream("last-unended")
      assert.equal("stream", err.kind)
      assert.matches("incomplete", err.message)
    end)
  end)

  describe("a 2xx that is no event stream (finding 10)", function ()
    it("says its content type and first bytes (kind parse), keeps them in err.body, is not retried", function ()
      local res, err = stream("html")
      assert.is_nil(res)
      assert.equal("parse", err.kind)
      assert.equal(0, err.retries)
      assert.equal("the server answered a stream with Content-Type text/html; charset=utf-8, not "
                   .. "text/event-stream: <html> <head><title>Portal</title></head> <body>Log in to use the network"
                   .. "</body> </html>", err.message)
      assert.matches("^<html>\n<head>", err.body)
      assert.matches("not text/event%-stream", tostring(err))
    end)

    it("with no content type", function ()
      local _, err = stream("no-type")
      assert.equal("parse", err.kind)
      assert.equal("the server answered a stream with no Content-Type and no event: Service temporarily "
                   .. "unavailable", err.message)
    end)

    it("shows control and non-ASCII bytes escaped", function ()
      local _, err = stream("bytes")
      assert.equal("the server answered a stream with Content-Type text/plain, not text/event-stream: "
                   .. "<p>D\\xC3\\xA9sol\\xC3\\xA9\\x01\\x7F</p>", err.message)
    end)

    it("shows at most 120 bytes, and never the API key (whole or cut by the bound)", function ()
      local _, err = stream("echo")
      assert.matches("%.%.%.$", err.message)
      assert.truthy(#err.message < 250, err.message)
      assert.matches("[redacted]", err.message, 1, true)
      assert.matches("[redacted]", err.body, 1, true)
      assert.is_nil(err.message:find("SECRET", 1, true))
      assert.is_nil(err.body:find("SECRET", 1, true))
      _, err = stream("echo-cut")
      assert.matches("[redacted]", err.message, 1, true)
      assert.is_nil(err.message:find("sk-wire", 1, true), err.message)
      assert.is_nil(err.body:find("SECRET", 1, true))
    end)

    it("a body of events under another content type is still read as a stream", function ()
      local res = assert(stream("mislabelled"))
      assert.equal("A", res.text)
    end)
  end)
end)
