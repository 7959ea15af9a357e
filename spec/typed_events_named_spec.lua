-- Typed event streams (opts.events: a transcription's, a speech's) and a
-- chat stream's "error" events, as another server sends them over real HTTP
-- on loopback (a one-shot server, spec/support/oneshot.lua): events named
-- only by their "event:" line, error events of every shape, a secret in them.
local aigc = require "aigc"
local oneshot = require "oneshot"
local texts = require "texts"

local KEY = "sk-typed-SECRET-4242"

-- A file to upload (its bytes do not matter to a canned server).
local function audio_file ()
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write("RIFF....WAVE")
  f:close()
  return path
end

-- Runs a transcription stream against `body`: the result, the error, and
-- the events' types and deltas the stream function saw.
local function transcribe (body, client_opts)
  local opts = { api_key = KEY }
  for k, v in pairs(client_opts or {}) do opts[k] = v end
  local c, done = oneshot.sse_client(aigc, body, nil, opts)
  local path, seen = audio_file(), {}
  local res, err = c:transcribe { model = "m", file = path, stream = function (ev)
    seen[#seen + 1] = tostring(ev.type) .. ":" .. tostring(ev.delta)
  end }
  done()
  os.remove(path)
  return res, err, seen
end

local function chat (body)
  local c, done = oneshot.sse_client(aigc, body, nil, { api_key = KEY })
  local res, err = c:chat { model = "m", messages = { { role = "user", content = "Hi" } }, stream = function () end }
  done()
  return res, err
end

describe("typed event streams", function ()
  -- The stream function saw each event's type from its "event:" line; the
  -- result (the last event) said "type" nil, so the call failed as a stream
  -- that "ended before transcript.text.done (last: nil)".
  it("an event named only by its event: line is the result under that name", function ()
    local res, err, seen = transcribe('event: transcript.text.delta\ndata: {"delta":"Hel"}\n\n'
                                      .. 'event: transcript.text.delta\ndata: {"delta":"lo"}\n\n'
                                      .. 'event: transcript.text.done\ndata: {"text":"Hello"}\n\n')
    assert.is_nil(err)
    assert.are.same({ "transcript.text.delta:Hel", "transcript.text.delta:lo", "transcript.text.done:nil" }, seen)
    assert.are.equal("transcript.text.done", res.type)
    assert.are.equal("Hello", res.text)
    -- (one named by its data keeps its own type, whatever its event: line says)
    local own = assert(transcribe('event: message\ndata: {"type":"transcript.text.done","text":"ok"}\n\n'))
    assert.are.same({ "transcript.text.done", "ok" }, { own.type, own.text })
  end)

  it("the name taken as its type counts nothing against max_json_values", function ()
    -- ({"text": "hi"} is 2 values: the object and its string)
    local body = 'event: transcript.text.done\ndata: {"text":"hi"}\n\n'
    local res, err = transcribe(body, { max_json_values = 2 })
    assert.is_nil(err)
    assert.are.equal("transcript.text.done", res.type)
    assert.are.equal("hi", res.text)
    local _, err2 = transcribe(body, { max_json_values = 1 })
    assert.are.equal("limit", err2.kind)
  end)

  it("a speech stream named by event: lines ends on its speech.audio.done", function ()
    local c, done = oneshot.sse_client(aigc, 'event: speech.audio.delta\ndata: {"audio":"aGk="}\n\n'
                                       .. 'event: speech.audio.done\ndata: {"usage":{"total_tokens":3}}\n\n')
    local got = {}
    local res, err = c:speech { model = "m", input = "hi", stream_format = "sse",
                                to = function (chunk) got[#got + 1] = chunk end }
    done()
    assert.is_nil(err)
    assert.are.same({ "hi" }, got)
    assert.are.equal("speech.audio.done", res.type)
    assert.are.equal(3, res.usage.total_tokens)
  end)

  it("an event stream of comments and events without data only ends before any event", function ()
    local res, err = transcribe(": keep-alive\n\nevent: transcript.text.delta\n\n")
    assert.is_nil(res)
    assert.are.equal("stream", err.kind)
    assert.are.equal("the stream ended before any event", err.message)
  end)

  it("an error event of text, data that is no object, an {\"error\"} event: errors without the key", function ()
    local _, err = transcribe("event: error\ndata: the key " .. KEY .. " was refused\n\n")
    assert.are.equal("stream", err.kind)
    assert.are.equal("the key [redacted] was refused", err.message)
    assert.is_false(texts.contains(texts.all(err), KEY))
    _, err = transcribe('data: ["' .. KEY .. '"]\n\n')
    assert.are.equal("parse", err.kind)
    assert.are.equal("a stream event is not a JSON object", err.message)
    assert.is_false(texts.contains(texts.all(err), KEY))
    _, err = transcribe('data: {"error":{"message":"proxy: key ' .. KEY .. '","code":"denied"}}\n\n')
    assert.are.equal("api", err.kind)
    assert.are.equal("denied", err.code)
    assert.are.equal("proxy: key [redacted]", err.message)
    assert.is_false(texts.contains(texts.all(err), KEY))
  end)
end)

describe("a chat stream's error event", function ()
  it("of text is a stream error with that text, scrubbed", function ()
    local res, err = chat("event: error\ndata: upstream: key " .. KEY .. " refused\n\n")
    assert.is_nil(res)
    assert.are.equal("stream", err.kind)
    assert.are.equal("upstream: key [redacted] refused", err.message)
    assert.is_false(texts.contains(texts.all(err), KEY))
  end)

  -- (coverage: a named chunk merged by the scanner, response.c, was never run)
  it("is only the one named error: chunks in events named message are chunks", function ()
    local chunk = '{"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"%s"}%s}]}'
    -- (the second chunk has the first's shape: the scanner takes it)
    local c, done = oneshot.sse_client(aigc, "event: message\ndata: " .. chunk:format("Hel", "") .. "\n\n"
                                       .. "event: message\ndata: " .. chunk:format("l", "") .. "\n\n"
                                       .. "event: message\ndata: " .. chunk:format("o", ',"finish_reason":"stop"')
                                       .. "\n\ndata: [DONE]\n\n")
    local deltas = {}
    local res, err = c:chat { model = "m", messages = { { role = "user", content = "Hi" } },
                              stream = function (d) deltas[#deltas + 1] = d end }
    done()
    assert.is_nil(err)
    assert.are.same({ "Hel", "l", "o" }, deltas)
    assert.are.equal("Hello", res.text)
    assert.are.equal("stop", res.choices[1].finish_reason)
  end)

  it("with no data says the server sent an error event", function ()
    local _, err = chat("event: error\ndata:\n\n")
    assert.are.equal("stream", err.kind)
    assert.are.equal("the server sent an error event", err.message)
  end)
end)
