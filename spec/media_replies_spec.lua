-- What a server (or the host of an image's url) may send back to the media
-- and files calls, and what they must do with it (aigc.media, aigc.files,
-- aigc.download, aigc.reply): credentials never sent to another origin,
-- errors built in Lua scrubbed of the key, cut or wrong streams failing
-- with their kind, replies of the wrong shape failing as "parse" naming
-- the field, JSON where audio was expected an error, usage counted under
-- the model asked for. The replies come from a one-off LuaSocket server:
-- each request carries its whole answer (hex, in `x-answer`); without
-- one, the server answers with the request's header lines (what another
-- origin received).
local aigc = require "aigc"
local oneshot = require "oneshot"

local KEY = "sk-proj-MEDIAKEY-0123456789abcdefXYZ"

local SERVER = [[
  local oneshot = require "oneshot"
  local server = oneshot.listen()
  server:settimeout(60)   -- (idle: the spec is gone)
  while true do
    local c = server:accept()
    if not c then break end
    c:settimeout(5)
    local lines, answer, len, path = {}, nil, 0, nil
    while true do
      local line = c:receive("*l")
      if not line or line == "" then break end
      path = path or line:match("^%u+ (%S+)")
      lines[#lines + 1] = line
      answer = line:match("^[Xx]%-[Aa]nswer: *(%x+)") or answer
      len = tonumber(line:match("^[Cc]ontent%-[Ll]ength: *(%d+)")) or len
    end
    if len > 0 then c:receive(len) end
    if path == "/quit" then c:close(); break end
    if answer then
      c:send((answer:gsub("%x%x", function (h) return string.char(tonumber(h, 16)) end)))
    else   -- what this origin received: the header lines, one a line (a .png path's as an image's)
      local body = table.concat(lines, "\n")
      local ctype = path and path:find("%.png$") and "image/png" or "text/plain"
      c:send("HTTP/1.1 200 OK\r\nContent-Type: " .. ctype .. "\r\nConnection: close\r\nContent-Length: "
             .. #body .. "\r\n\r\n" .. body)
    end
    c:close()
  end
]]

local function hex (s)
  return (s:gsub(".", function (ch) return string.format("%02x", ch:byte()) end))
end

-- The headers of a call whose answer is `raw` (a whole HTTP response).
local function answer (raw) return { ["x-answer"] = hex(raw) } end

-- A 200 (or `status`) reply with `body` of `ctype` (JSON by default).
local function reply (body, ctype, status)
  return answer(("HTTP/1.1 %d X\r\nContent-Type: %s\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s")
                :format(status or 200, ctype or "application/json", #body, body))
end

-- An SSE stream of the JSON texts `events`, ended by closing (no [DONE]).
local function sse (events)
  local t = {}
  for i, e in ipairs(events) do t[i] = "data: " .. e .. "\n\n" end
  return answer("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n" .. table.concat(t))
end

local texts = require "texts"
local contains, all_text = texts.contains, texts.all

describe("media replies", function ()
  local port, child, base, origin, dir

  setup(function ()
    port, child = oneshot.start(SERVER)
    origin = "http://127.0.0.1:" .. port
    base = origin .. "/v1"
    local p = io.popen("mktemp -d /tmp/aigc-replies-XXXXXX")
    dir = p:read("*l")
    p:close()
  end)
  teardown(function ()
    local c = aigc.client { base_url = base, max_retries = 0 }
    c:download(origin .. "/quit")
    c:close()
    child:wait(10)
    os.execute("rm -rf '" .. dir .. "'")
  end)

  local function client (opts)
    opts = opts or {}
    opts.base_url = opts.base_url or base
    opts.max_retries, opts.timeout = 0, 10
    opts.model = opts.model or "m"
    return aigc.client(opts)
  end

  describe("credentials go to the client's own origin only", function ()
    -- The client's origin is another port of the same host: a URL on the
    -- one-off server is another origin.
    local function elsewhere (opts)
      opts = opts or {}
      opts.base_url = "http://127.0.0.1:1/v1"
      return client(opts)
    end

    it("a client's x-api-key, api-key, Authorization, Proxy-Authorization, organization: none sent", function ()
      local c = elsewhere { api_key = KEY, organization = "org-SECRETORG12345",
                            headers = { ["x-api-key"] = "XAPIKEY-0123456789abcdef",
                                        ["Api-Key"] = "APIKEY-0123456789abcd",
                                        ["Proxy-Authorization"] = "Basic UFJPWFktMDEyMzQ1Njc4OQ==",
                                        ["X-Trace"] = "kept-trace-id" } }
      local got = assert(c:download(origin .. "/img.png")).body
      c:close()
      for _, s in ipairs { "MEDIAKEY", "XAPIKEY", "APIKEY-0123", "UFJPWFkt", "SECRETORG" } do
        assert.is_false(contains(got, s), s .. " reached another origin:\n" .. got)
      end
      assert.is_nil(got:lower():find("\nx%-api%-key:"))
      assert.is_true(contains(got, "X-Trace: kept-trace-id"))   -- (not a credential: sent)
    end)

    it("a header of the client's holding its key under another name is not sent either", function ()
      local c = elsewhere { api_key = KEY, headers = { ["X-Goog-Api-Key"] = KEY } }
      local got = assert(c:download(origin .. "/img.png")).body
      c:close()
      assert.is_false(contains(got, "MEDIAKEY"), got)
    end)

    it("the caller's own per-call credentials are not sent to another origin (any case), other headers are", function ()
      local c = elsewhere()
      local got = assert(c:download(origin .. "/private.png", {
        headers = { AUTHORIZATION = "Bearer CDN-TOKEN-0123456789", ["X-Want"] = "this one" },
        extra_headers = { ["X-Api-Key"] = "EXTRA-KEY-0123456789" } })).body
      c:close()
      assert.is_false(contains(got, "CDN-TOKEN"), got)
      assert.is_false(contains(got, "EXTRA-KEY"), got)
      assert.is_true(contains(got, "X-Want: this one"))
    end)

    it("res:save() of a url image (the server chooses the url) sends no credential there", function ()
      local c = client { headers = { ["x-api-key"] = "XAPIKEY-0123456789abcdef" } }
      -- the reply's url: another origin than the client's (localhost, not 127.0.0.1)
      local url = "http://localhost:" .. port .. "/img.png"
      local res = assert(c:images_generate { prompt = "x",
                                             headers = reply('{"data":[{"url":"' .. url .. '"}]}') })
      local paths = assert(res:save(dir .. "/saved-%d.png"))
      c:close()
      local f = assert(io.open(paths[1], "rb"))
      local got = f:read("*a")
      f:close()
      assert.is_true(contains(got, "GET /img.png"))
      assert.is_false(contains(got, "XAPIKEY"), got)
    end)

    it("the client's own origin gets them", function ()
      local c = client { headers = { ["x-api-key"] = "XAPIKEY-0123456789abcdef" } }
      local got = assert(c:download(origin .. "/mine.png")).body
      c:close()
      assert.is_true(contains(got, "XAPIKEY-0123456789abcdef"))
    end)

    it("every header the engine takes a secret from is one download keeps to the client's origin", function ()
      local is_credential = require("aigc.download").credential_header
      for _, name in ipairs { "authorization", "api-key", "x-api-key" } do   -- (the README's)
        assert.is_true(is_credential(name), name)
      end
      local value = "CANDIDATE-0123456789abcdef"
      for _, name in ipairs { "Authorization", "api-key", "x-api-key", "Proxy-Authorization", "Cookie",
                              "X-Goog-Api-Key", "Ocp-Apim-Subscription-Key", "X-Auth-Token", "apikey",
                              "X-Api-Token", "Authentication", "OpenAI-Organization", "Idempotency-Key", "X-Secret" } do
        local c = client { headers = { [name] = value } }
        local secret = c._engine:scrub(value) ~= value
        c:close()
        assert.equal(secret, is_credential(name), name .. ": the engine's rule and download's differ")
      end
    end)
  end)

  describe("errors built from server text are scrubbed of the key", function ()
    it("a cut image stream, a cut transcription stream: the last event's type is shown, the key not", function ()
      local c = client { api_key = KEY }
      local _, e1 = c:images_generate { prompt = "x", stream = true,
                                        headers = sse { '{"type":"image_generation.partial_image ' .. KEY .. '"}' } }
      local _, e2 = c:transcribe { file = { data = "x", filename = "a.wav" }, stream = true,
                                   headers = sse { '{"type":"x ' .. KEY .. '","delta":"x"}' } }
      local _, e3 = c:speech { input = "x", stream_format = "sse", to = function () end,
                               headers = sse { '{"type":"speech.audio.delta ' .. KEY .. '","audio":"AAAA"}' } }
      c:close()
      for _, e in ipairs { e1, e2, e3 } do
        assert.equal("stream", e.kind)
        assert.matches("%(last: ", e.message)
        assert.is_false(contains(all_text(e) .. tostring(e), "MEDIAKEY-0123"), tostring(e))
        assert.is_true(contains(tostring(e), "[redacted]"))
      end
    end)

    it("a key given to one call only (its own x-api-key), echoed in a cut stream", function ()
      local c = client()
      local _, err = c:images_generate { prompt = "x", stream = true, headers = {
        ["x-api-key"] = KEY, ["x-answer"] = sse({ '{"type":"partial ' .. KEY .. '"}' })["x-answer"] } }
      c:close()
      assert.equal("stream", err.kind)
      assert.is_false(contains(all_text(err) .. tostring(err), "MEDIAKEY-0123"), tostring(err))
    end)

    it("speech's JSON error with a 200 echoing the key", function ()
      local c = client { api_key = KEY }
      local _, err = c:speech { input = "x", headers = reply('{"error":{"message":"bad key ' .. KEY .. '"}}') }
      c:close()
      assert.equal("api", err.kind)
      assert.is_false(contains(all_text(err) .. tostring(err), "MEDIAKEY-0123"))
    end)
  end)

  describe("speech with stream_format = \"sse\"", function ()
    local function call (c, headers, to)
      local got = {}
      local res, err = c:speech { input = "x", stream_format = "sse", headers = headers,
                                  to = to or function (chunk) got[#got + 1] = chunk end }
      return res, err, table.concat(got)
    end

    it("a stream cut before speech.audio.done fails (kind stream), as image and transcription streams", function ()
      local c = client()
      local res, err, got = call(c, sse { '{"type":"speech.audio.delta","audio":"AAAAAAAA"}' })
      assert.is_nil(res)
      assert.equal("stream", err.kind)
      assert.matches("speech.audio.done", err.message)
      assert.equal(6, #got)   -- (what came was delivered)
      local ok = assert(call(c, sse { '{"type":"speech.audio.delta","audio":"AAAA"}',
                                      '{"type":"speech.audio.done","usage":{"total_tokens":3}}' }))
      assert.equal("speech.audio.done", ok.type)
      c:close()
    end)

    it("audio that does not decode, or is not text: kind parse, naming the event", function ()
      local c = client()
      local _, e1 = call(c, sse { '{"type":"speech.audio.delta","audio":"@@"}', '{"type":"speech.audio.done"}' })
      local _, e2 = call(c, sse { '{"type":"speech.audio.delta","audio":5}', '{"type":"speech.audio.done"}' })
      c:close()
      for _, e in ipairs { e1, e2 } do
        assert.equal("parse", e.kind)
        assert.matches("speech.audio.delta event's audio", e.message)
        assert.equal(200, e.status)
      end
    end)

    it("a server that ignores stream_format and answers audio (its Content-Type): to the function", function ()
      -- (bytes an SSE parser would misread: lines, "data:", NULs, high bytes)
      local parts = {}
      for i = 0, 20000 - 1 do parts[#parts + 1] = string.char((i * 7 + 13) % 256) end
      local audio = "ID3\0data: {}\n\n" .. table.concat(parts)
      local c = client()
      local res, err, got = call(c, reply(audio, "Audio/MPEG"))
      assert.is_table(res, tostring(err))
      assert.equal(audio, got)
      assert.equal(#audio, res.bytes)
      assert.equal("Audio/MPEG", res.content_type)
      assert.is_nil(res.body)
      -- none at all: the result, no chunk
      local empty, e0, none = call(c, reply("", "audio/wav"))
      assert.is_table(empty, tostring(e0))
      assert.equal("", none)
      assert.equal(0, empty.bytes)
      -- a function that raises: the call fails with its error, once
      local _, e1 = call(c, reply(audio, "audio/mpeg"), function () error("speaker broke") end)
      assert.equal("callback", e1.kind)
      assert.matches("speaker broke", e1.message)
      -- not audio (a proxy's page, or no type said): still no stream of events
      local _, e2 = call(c, reply("<html>busy</html>", "text/html"))
      assert.equal("parse", e2.kind)
      local _, e3 = call(c, reply(audio, "application/octet-stream"))
      assert.equal("parse", e3.kind)
      c:close()
    end)

    it("one JSON answer where a stream was asked: kind parse; a callback's own error stays kind callback", function ()
      local c = client()
      local _, e1 = call(c, reply('{"type":"speech.audio.done"}'))
      assert.equal("parse", e1.kind)
      assert.matches("not the stream of events", e1.message)
      local _, e2 = call(c, sse { '{"type":"speech.audio.delta","audio":"AAAA"}', '{"type":"speech.audio.done"}' },
                         function () error("player broke") end)
      assert.equal("callback", e2.kind)
      assert.matches("player broke", e2.message)
      c:close()
    end)
  end)

  describe("image streams", function ()
    it("a partial image whose b64_json does not decode: kind parse, no event without bytes", function ()
      local c = client()
      local seen = {}
      local res, err = c:images_generate { prompt = "x", stream = function (ev) seen[#seen + 1] = ev.bytes end,
        headers = sse { '{"type":"image_generation.partial_image","partial_image_index":0,"b64_json":"@@"}',
                        '{"type":"image_generation.completed","b64_json":"AAAA"}' } }
      c:close()
      assert.is_nil(res)
      assert.equal("parse", err.kind)
      assert.matches("b64_json", err.message)
      assert.equal(0, #seen)
    end)
  end)

  describe("JSON where audio was expected", function ()
    local BODY = '{"error":{"message":"quota exceeded","type":"insufficient_quota","code":"insufficient_quota"}}'

    it("a 200 JSON error body is an error (kind api, the server's message), whatever the sink", function ()
      local c = client()
      local _, e1 = c:speech { input = "x", headers = reply(BODY) }
      local chunks = 0
      local _, e2 = c:speech { input = "x", headers = reply(BODY), to = function () chunks = chunks + 1 end }
      local path = dir .. "/line.wav"
      local _, e3 = c:speech { input = "x", headers = reply(BODY), to = path }
      c:close()
      for _, e in ipairs { e1, e2, e3 } do
        assert.equal("api", e.kind)
        assert.equal("quota exceeded", e.message)
        assert.equal("insufficient_quota", e.code)
        assert.equal(200, e.status)
      end
      assert.is_nil(io.open(path))   -- (not left as if it were the audio)
      assert.equal(0, chunks)   -- (nor played as if it were: the function got none of it)
    end)

    it("a 200 JSON or text reply to a function: none of it reaches the function, the reply is in err.body", function ()
      local c = client()
      local got = {}
      local function to (chunk) got[#got + 1] = chunk end
      local _, e1 = c:speech { input = "x", to = to, headers = reply("<html>proxy</html>", "text/html") }
      local _, e2 = c:speech { input = "x", to = to, headers = reply('{"detail":"nope"}') }
      local ok = assert(c:speech { input = "x", to = to, headers = reply("RIFF new", "audio/wav") })
      c:close()
      assert.equal("parse", e1.kind)
      assert.equal("<html>proxy</html>", e1.body)
      assert.equal("parse", e2.kind)
      assert.matches("nope", e2.message)
      assert.same({ "RIFF new" }, got)   -- (audio still goes to the function)
      assert.equal(8, ok.bytes)
    end)

    it("a 200 JSON or text reply to a file: the file already there (the last good line) is left as it was", function ()
      local c = client()
      local path = dir .. "/cached.wav"
      local f = assert(io.open(path, "wb"))
      f:write("RIFF the line as it was")
      f:close()
      local _, e1 = c:speech { input = "x", headers = reply(BODY), to = path }
      local _, e2 = c:speech { input = "x", to = path,
                               headers = reply("<html>proxy</html>", "Text/HTML; charset=utf-8") }
      local _, e3 = c:speech { input = "x", to = path,
                               headers = reply('{"detail":"nope"}', "application/problem+json") }
      local got = assert(c:speech { input = "x", headers = reply("RIFF new", "audio/wav"), to = dir .. "/new.wav" })
      c:close()
      assert.equal("api", e1.kind)
      assert.equal("quota exceeded", e1.message)
      assert.equal("parse", e2.kind)
      assert.equal("<html>proxy</html>", e2.body)
      assert.equal("parse", e3.kind)
      assert.matches("nope", e3.message)
      f = assert(io.open(path, "rb"))
      assert.equal("RIFF the line as it was", f:read("*a"))
      f:close()
      assert.is_nil(io.open(path .. ".part"))
      assert.equal(dir .. "/new.wav", got.path)   -- (audio still goes to its file)
      assert.equal(8, got.bytes)
    end)

    it("other JSON: kind parse; audio of any type (or none said) is the result", function ()
      local c = client()
      local _, err = c:speech { input = "x", headers = reply('{"detail":"nope"}', "application/json; charset=utf-8") }
      assert.equal("parse", err.kind)
      assert.matches("not audio: nope", err.message)
      assert.equal("RIFF", assert(c:speech { input = "x", headers = reply("RIFF", "audio/wav") }).body)
      assert.equal("{}", assert(c:speech { input = "x", headers = reply("{}", "audio/mpeg") }).body)
      c:close()
    end)
  end)

  describe("replies of the wrong shape: kind parse, naming the field", function ()
    local function fails (pattern, res, err)
      assert.is_nil(res)
      assert.equal("parse", err.kind, tostring(err))
      assert.matches(pattern, err.message)
      assert.equal(200, err.status)
    end

    it("images: data null, not an array, an item that is not an object", function ()
      local c = client()
      local function img (body) return c:images_generate { prompt = "x", headers = reply(body) } end
      fails("the reply's data: an array expected, got null", img '{"data":null}')
      fails("the reply's data: an array expected, got a string", img '{"data":"x"}')
      fails("the reply's data%[2%]: an object expected, got a number", img '{"data":[{"b64_json":"aGk="},1]}')
      fails("the reply's data%[1%]: an object expected, got an array", img '{"data":[[]]}')
      assert.same({}, assert(img '{"created":1}'):save(dir))   -- (no data: the API's schema allows it)
      c:close()
    end)

    it("embeddings, moderation, files_list", function ()
      local c = client()
      fails("the reply's data: an array expected, got null",
            c:embeddings { input = "x", headers = reply '{"data":null}' })
      fails("the reply's data%[1%]: an object expected, got a number",
            c:embeddings { input = "x", headers = reply '{"data":[3]}' })
      fails("the reply's data: an array expected, got an object",
            c:embeddings { input = "x", encoding_format = "float", headers = reply '{"data":{"a":1}}' })
      -- (the base64 aigc asks for, not base64: media.f32's failure, never run before)
      fails("embedding 1: not base64: byte value 33 at byte 8",
            c:embeddings { input = "x", headers = reply '{"data":[{"index":0,"embedding":"AACAPw=!"}]}' })
      fails("the reply's results: an array expected, got null",
            c:moderate { input = "x", headers = reply '{"results":null}' })
      fails("the reply's results%[1%]%.categories: an object expected, got null",
            c:moderate { input = "x", headers = reply '{"results":[{"flagged":false,"categories":null}]}' })
      fails("the reply's results%[1%]%.categories: an object expected, got a string",
            c:moderate { input = "x", headers = reply '{"results":[{"flagged":true,"categories":"violence"}]}' })
      fails("the reply's data%[1%]: an object expected, got a number",
            c:files_list { headers = reply '{"data":[1],"has_more":true}' })
      fails("the reply's data%[1%]%.id %(the next page's cursor%): a string expected, got an object",
            c:files_list { headers = reply '{"data":[{"id":{"x":1}}],"has_more":true}' })
      local page = assert(c:files_list { headers = reply '{"data":[{"id":"file-1"}],"has_more":true}' })
      assert.equal("file-1", page.next_after)
      c:close()
    end)

    it("aigc.media.flags takes any table without raising", function ()
      assert.same({ false, {} }, { aigc.media.flags { results = aigc.null } })
      assert.same({ true, { "a" } },
                  { aigc.media.flags { results = { 1, { categories = "x" }, { categories = { a = true } } } } })
    end)
  end)

  describe("res:save() returns nil, err for what the server chose", function ()
    it("output_format null: png; one that is no plain extension: kind parse (no path outside the folder)", function ()
      local c = client()
      local function img (extra)
        return assert(c:images_generate { prompt = "x",
                                          headers = reply('{"data":[{"b64_json":"aGk="}]' .. extra .. '}') })
      end
      assert.same({ dir .. "/image-1.png" }, assert(img(',"output_format":null'):save(dir)))
      assert.same({ dir .. "/image-1.webp" }, assert(img(',"output_format":"webp"'):save(dir .. "/")))
      for _, bad in ipairs { '"../../x"', '"png/../x"', '{"a":1}', '5' } do
        local paths, err = img(',"output_format":' .. bad):save(dir)
        assert.is_nil(paths)
        assert.equal("parse", err.kind)
        assert.matches("output_format", err.message)
      end
      assert.same({ dir .. "/p-1.x" }, assert(img(',"output_format":"../x"'):save(dir .. "/p-%d.x")))   -- (unused)
      c:close()
    end)

    it("a url that is not http(s), or no image at all", function ()
      local c = client()
      for _, item in ipairs { '{"url":"ftp://cdn.example/x.png"}', '{"url":"file:///etc/passwd"}',
                              '{"url":7}', '{}' } do
        local res = assert(c:images_generate { prompt = "x", headers = reply('{"data":[' .. item .. ']}') })
        local paths, err = res:save(dir)
        assert.is_nil(paths)
        assert.equal("parse", err.kind)
        assert.matches("^image 1", err.message)
      end
      c:close()
    end)
  end)

  describe("usage: a reply that names no model is counted under the model asked for", function ()
    it("images and transcriptions", function ()
      local c = client { model = "default-model" }
      local usage = '"usage":{"input_tokens":3,"output_tokens":4,"total_tokens":7}'
      local res = assert(c:images_generate { prompt = "x", model = "img-model",
                                             headers = reply('{"data":[],' .. usage .. '}') })
      assert.equal("img-model", res.model)
      assert(c:transcribe { file = { data = "x", filename = "a.wav" },
                            headers = reply('{"text":"hi",' .. usage .. '}') })
      local named = assert(c:images_generate { prompt = "x",
                                               headers = reply('{"data":[],"model":"theirs",' .. usage .. '}') })
      assert.equal("theirs", named.model)   -- (the reply's own: kept)
      local models = c:usage().models
      c:close()
      assert.equal(1, models["img-model"].requests)
      assert.equal(7, models["img-model"].total_tokens)
      assert.equal(1, models["default-model"].requests)
      assert.equal(1, models.theirs.requests)
      assert.is_nil(models["?"])
    end)
  end)

  describe("transcription streams", function ()
    it("a plain JSON answer to a stream request: the result, the function sees its text as one delta", function ()
      local c = client()
      local seen = {}
      local res = assert(c:transcribe { file = { data = "x", filename = "a.wav" }, headers = reply '{"text":"plain"}',
                                        stream = function (ev) seen[#seen + 1] = ev end })
      c:close()
      assert.equal("plain", res.text)
      assert.same({ { type = "transcript.text.delta", delta = "plain" } }, seen)
    end)
  end)

  describe("transcriptions as text, srt or vtt", function ()
    it("a 200 JSON error body is an error (kind api), not the transcript; text like JSON stays text", function ()
      local c = client()
      local BODY = '{"error":{"message":"quota exceeded","code":"insufficient_quota"}}'
      local errs = {}
      for _, format in ipairs { "text", "srt", "vtt" } do
        local res, err = c:transcribe { file = { data = "x", filename = "a.wav" }, response_format = format,
                                        headers = reply(BODY) }
        assert.is_nil(res, format)
        errs[#errs + 1] = err
      end
      local _, e4 = c:transcribe { file = { data = "x", filename = "a.wav" }, response_format = "text",
                                   headers = reply('{"error":"overloaded"}', "text/plain") }
      local odd = assert(c:transcribe { file = { data = "x", filename = "a.wav" }, response_format = "text",
                                        headers = reply("{curly} said the narrator\n", "text/plain") })
      c:close()
      for _, e in ipairs(errs) do
        assert.equal("api", e.kind)
        assert.equal("quota exceeded", e.message)
        assert.equal("insufficient_quota", e.code)
      end
      assert.equal("api", e4.kind)
      assert.equal("overloaded", e4.message)
      assert.equal("{curly} said the narrator\n", odd.text)
    end)

    it("stream asked of a model that ignores it (whisper-1): the srt reply is the result, one delta", function ()
      local c = client()
      local SRT = "1\n00:00:00,000 --> 00:00:00,800\nHalt!\n"
      local seen = {}
      local res, err = c:transcribe { file = { data = "x", filename = "a.wav" }, model = "whisper-1",
                                      response_format = "srt", stream = function (ev) seen[#seen + 1] = ev end,
                                      headers = reply(SRT, "text/plain; charset=utf-8") }
      local vtt = c:transcribe { file = { data = "x", filename = "a.wav" }, response_format = "vtt", stream = true,
                                 headers = reply("WEBVTT\n", "text/vtt") }
      c:close()
      assert.is_nil(err)
      assert.equal(SRT, res.text)
      assert.same({ { type = "transcript.text.delta", delta = SRT } }, seen)
      assert.equal("WEBVTT\n", vtt and vtt.text)
    end)
  end)
end)
