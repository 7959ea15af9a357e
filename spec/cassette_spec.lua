-- Cassettes (issue 16 item 3): record against the bundled server, stop it,
-- replay offline -- blocking, streaming (callback and iterator) and
-- non-blocking calls, byte-identical streams, misses that name the request.

local aigc = require "aigc"
local cassette = require "aigc.cassette"
local devserver = require "devserver"
local cli = require "cli"
local upstream = require "upstream"
local socket = require "socket"
local proc = require "procutil"

local read = cli.read

-- The conversation a workflow's test would make: a blocking call, a stream
-- with a callback, a stream through the iterator, a non-blocking call
-- polled by step(), and an error the server sent.
local function workflow (c)
  local out = {}
  out.blocking = assert(c:chat { messages = { { role = "user", content = "Capital of France?" } }, temperature = 0 })
  local deltas, chunks = {}, {}
  out.streamed = assert(c:chat { messages = { { role = "user", content = "Tell me a short story" } },
    stream = function (delta, chunk) deltas[#deltas + 1] = delta or false; chunks[#chunks + 1] = chunk end })
  out.deltas, out.chunks = deltas, chunks
  local iter = {}
  local s = c:stream { messages = { { role = "user", content = "Count to five" } } }
  for d in s:deltas() do iter[#iter + 1] = d end
  out.iter = iter
  local req = c:chat_async { messages = { { role = "user", content = "Echo: async" } } }
  while req:status() == "queued" or req:status() == "running" do c:step(0.01) end
  out.async = assert(req:result())
  local adeltas = {}
  local sreq = c:chat_async { messages = { { role = "user", content = "Tell me about the sea" } },
                              stream = function (delta) adeltas[#adeltas + 1] = delta or false end }
  while sreq:status() == "queued" or sreq:status() == "running" do c:step(0.01) end
  out.async_stream, out.adeltas = assert(sreq:result()), adeltas
  out.failed = select(2, c:chat { model = "fault:status=400", messages = { { role = "user", content = "bad" } } })
  out.models = assert(c:models())
  return out
end

local function strip (res)   -- what differs per request whatever is served
  local t = {}
  for k, v in pairs(res) do if k ~= "headers" and k ~= "retries" then t[k] = v end end
  return t
end

describe("cassettes", function ()
  local dir
  before_each(function () dir = cli.home() end)
  after_each(function () cli.rmdir(dir) end)

  it("replays a recording with the server stopped: same replies, byte-identical streams", function ()
    local path = dir .. "/wf.jsonl"
    local srv = devserver.start { pause_ms = 1 }   -- (replies still streamed, event by event)
    local rec = aigc.client { base_url = srv.base_url, model = "aigc-dev", api_key = "sk-cassette-secret-77",
                              cassette = { path = path, mode = "record" } }
    local live = workflow(rec)
    rec:close()
    assert.is_true(#live.adeltas > 2 and #live.deltas > 2)   -- real streams
    local requests = #srv:requests()
    srv:stop()
    assert.equal(7, requests)
    local tape = read(path)
    assert.is_nil(tape:find("sk-cassette-secret-77", 1, true))   -- no key in the cassette
    assert.equal(7, select(2, tape:gsub("\n", "")))

    for _ = 1, 2 do
      local c = aigc.client { base_url = "http://127.0.0.1:9/v1", model = "aigc-dev",
                              cassette = { path = path, mode = "replay" } }
      local again = workflow(c)
      c:close()
      assert.same(strip(live.blocking), strip(again.blocking))
      assert.equal(live.blocking.request_id, again.blocking.request_id)
      assert.same(live.blocking.headers, again.blocking.headers)
      assert.same(live.deltas, again.deltas)
      assert.same(live.chunks, again.chunks)
      assert.same(strip(live.streamed), strip(again.streamed))
      assert.same(live.iter, again.iter)
      assert.same(strip(live.async), strip(again.async))
      assert.same(live.adeltas, again.adeltas)
      assert.same(strip(live.async_stream), strip(again.async_stream))
      assert.equal(live.failed.kind, again.failed.kind)
      assert.equal(live.failed.status, again.failed.status)
      assert.equal(live.failed.message, again.failed.message)
      assert.same(strip(live.models), strip(again.models))
    end
    -- The cassette holds the server's wire bytes (recorded by the proxy as
    -- they came: status line, headers, chunked framing, SSE): a replay
    -- serves exactly them, read here from a plain socket.
    local x = aigc.json.decode(select(2, tape:match("([^\n]*)\n([^\n]*)\n")))   -- line 2: the stream
    assert.is_true(x.raw)
    local recorded = {}
    for _, ev in ipairs(x.events) do recorded[#recorded + 1] = ev.data end
    recorded = table.concat(recorded)
    assert.matches("^HTTP/1.1 200", recorded)
    assert.matches("data: [DONE]", recorded, 1, true)
    local c = aigc.client { base_url = "http://127.0.0.1:9/v1", cassette = { path = path, mode = "replay" } }
    local port = tonumber(c._cassette.base_url:match(":(%d+)/"))
    local function fetch ()
      local sock = assert(socket.connect("127.0.0.1", port))
      sock:send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nx-aigc-cassette: 2\r\nContent-Length: 2\r\n\r\n{}")
      local got = sock:receive("*a")
      sock:close()
      return got
    end
    assert.equal(recorded, fetch())
    assert.equal(recorded, fetch())
    c:close()
  end)

  it("records in the client with proxy = false (as for https): replies and events replay the same", function ()
    local path = dir .. "/decoded.jsonl"
    local srv = devserver.start { pause_ms = 1 }   -- (replies still streamed, event by event)
    local rec = aigc.client { base_url = srv.base_url, model = "aigc-dev", api_key = "sk-cassette-secret-78",
                              cassette = { path = path, mode = "record", proxy = false } }
    local live = workflow(rec)
    rec:close()
    srv:stop()
    local tape = read(path)
    assert.is_nil(tape:find("sk-cassette-secret-78", 1, true))
    assert.is_nil(tape:find('"raw"', 1, true))
    local c = aigc.client { base_url = "http://127.0.0.1:9/v1", model = "aigc-dev",
                            cassette = { path = path, mode = "replay", timing = false } }
    local again = workflow(c)
    c:close()
    assert.same(strip(live.blocking), strip(again.blocking))
    assert.same(live.deltas, again.deltas)
    assert.same(live.chunks, again.chunks)
    assert.same(live.iter, again.iter)
    assert.same(strip(live.async), strip(again.async))
    assert.equal(live.failed.status, again.failed.status)
    assert.equal(live.failed.message, again.failed.message)
  end)

  it("a base_url with a password records in the client, not through the proxy; neither is on the tape", function ()
    local path = dir .. "/userinfo.jsonl"
    local srv = devserver.start()
    local password = "cassette-Pw-5Tq9Lm2Xz7"
    local rec = aigc.client { base_url = srv.base_url:gsub("^http://", "http://ann:" .. password .. "@"),
                              model = "aigc-dev", cassette = { path = path, mode = "record" } }
    local live = assert(rec:chat "Hi")
    rec:close()
    assert.equal("Basic", srv:last().authorization_prefix)   -- sent to the server itself, no proxy between
    srv:stop()
    local tape = read(path)
    assert.is_nil(tape:find(password, 1, true))
    assert.is_nil(tape:find('"raw"', 1, true))   -- the client's recording
    local c = aigc.client { base_url = "http://127.0.0.1:9/v1", model = "aigc-dev",
                            cassette = { path = path, mode = "replay", timing = false } }
    assert.equal(live.text, assert(c:chat "Hi").text)
    c:close()
  end)

  it("a call's own api_key param is on no tape (the key held it), and a replay with another key matches", function ()
    for _, proxy in ipairs { true, false } do   -- (through the recording proxy, and in the client)
      local path = dir .. "/body-key-" .. tostring(proxy) .. ".jsonl"
      local srv = devserver.start()
      local rec = aigc.client { base_url = srv.base_url, model = "aigc-dev",
                                cassette = { path = path, mode = "record", proxy = proxy or nil } }
      local live = assert(rec:chat { messages = { { role = "user", content = "Hi" } }, api_key = "sk-body-0815-rec" })
      rec:close()
      srv:stop()
      assert.is_nil(read(path):find("sk-body-0815", 1, true))
      local c = aigc.client { base_url = "http://127.0.0.1:9/v1", model = "aigc-dev",
                              cassette = { path = path, mode = "replay", timing = false } }
      local again = assert(c:chat { messages = { { role = "user", content = "Hi" } }, api_key = "sk-body-0815-ci" })
      assert.equal(live.text, again.text)
      c:close()
    end
  end)

  it("a session cookie (or a token) the server sets is on no tape, however recorded; the rest replays", function ()
    local srv = devserver.start()
    local fault = "raw-header=Set-Cookie: session=cassette-cookie-5521,raw-header=set-cookie2: b=cassette-cookie-5522,"
                  .. "raw-header=X-Api-Key: cassette-token-5523,informational=1"
    for _, proxy in ipairs { true, false } do
      local path = dir .. "/cookie-" .. tostring(proxy) .. ".jsonl"
      local rec = aigc.client { base_url = srv.base_url, model = "aigc-dev",
                                cassette = { path = path, mode = "record", proxy = proxy } }
      local live = assert(rec:chat { messages = { { role = "user", content = "Hi" } },
                                     headers = { ["x-aigc-fault"] = fault } })
      assert.equal("session=cassette-cookie-5521", live.headers["set-cookie"])   -- (the live reply is the caller's)
      rec:close()
      local tape = read(path)
      assert.equal(proxy, tape:find('"raw"', 1, true) ~= nil)
      assert.matches("x-ratelimit-limit-requests", tape, 1, true)   -- the other headers are kept
      assert.is_nil(tape:find("cassette-cookie", 1, true), "a cookie on the tape recorded " .. tostring(proxy))
      assert.is_nil(tape:find("cassette-token", 1, true), "a token on the tape recorded " .. tostring(proxy))
      local c = aigc.client { base_url = "http://127.0.0.1:9/v1", model = "aigc-dev",
                              cassette = { path = path, mode = "replay", timing = false } }
      local again = assert(c:chat { messages = { { role = "user", content = "Hi" } } })
      assert.equal(live.text, again.text)
      assert.is_nil(again.headers["set-cookie"])
      assert.equal(live.headers["x-ratelimit-limit-requests"], again.headers["x-ratelimit-limit-requests"])
      c:close()
    end
    srv:stop()
  end)

  it("a Set-Cookie folded on several lines (obs-fold) is on no tape recorded by the proxy", function ()
    local oneshot = require "oneshot"
    local port, child = oneshot.start([[
      local oneshot = require "oneshot"
      local server = oneshot.listen()
      local c = oneshot.read_request(server)
      local body = '{"id":"x","object":"chat.completion","model":"m","choices":[{"index":0,'
                   .. '"message":{"role":"assistant","content":"folded"},"finish_reason":"stop"}]}'
      c:send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nSet-Cookie: session=a;\r\n"
             .. " folded-cookie-6612\r\nX-Kept: yes\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body)
      c:close()
    ]])
    local path = dir .. "/folded.jsonl"
    local rec = aigc.client { base_url = "http://127.0.0.1:" .. port .. "/v1", model = "m", max_retries = 0,
                              cassette = { path = path, mode = "record" } }
    local live = assert(rec:chat "Hi")
    rec:close()
    child:wait(10)
    assert.equal("folded", live.text)
    local tape = read(path)
    assert.matches('"raw":true', tape, 1, true)
    assert.matches("X-Kept: yes", tape, 1, true)
    assert.is_nil(tape:find("folded-cookie", 1, true))
  end)

  it("a reply the response cache gave while recording is on the tape: the replay has it", function ()
    local srv = devserver.start()
    local function ask (c)
      return c:chat { messages = { { role = "user", content = "Echo: kept" } }, temperature = 0 }
    end
    -- the disk cache has the reply from an earlier run
    local warm = aigc.client { base_url = srv.base_url, model = "aigc-dev", cache = { dir = dir .. "/cache" } }
    local live = assert(ask(warm))
    warm:close()
    for _, proxy in ipairs { true, false } do
      local path = dir .. "/hit-" .. tostring(proxy) .. ".jsonl"
      local rec = aigc.client { base_url = srv.base_url, model = "aigc-dev", cache = { dir = dir .. "/cache" },
                                cassette = { path = path, mode = "record", proxy = proxy } }
      assert.is_true(assert(ask(rec)).cached)
      rec:close()
      assert.is_nil(read(path):find('"cached"', 1, true))
      local c = aigc.client { base_url = "http://127.0.0.1:9/v1", model = "aigc-dev",
                              cassette = { path = path, mode = "replay", timing = false } }
      local again, err = ask(c)
      c:close()
      assert.is_nil(err, "the tape recorded " .. (proxy and "through the proxy" or "in the client") .. " missed it")
      assert.equal(live.text, again.text)
      assert.is_nil(again.cached)
    end
    assert.equal(1, #srv:requests())
    srv:stop()
  end)

  it("a key the server echoes (headers, body, error body) is on no tape; the masked text replays", function ()
    local key = "sk-cassette-echo-9182"
    local srv = devserver.start()
    for _, proxy in ipairs { true, false } do
      local path = dir .. "/echo-" .. tostring(proxy) .. ".jsonl"
      local rec = aigc.client { base_url = srv.base_url, model = "aigc-dev", api_key = key,
                                cassette = { path = path, mode = "record", proxy = proxy } }
      local live = assert(rec:chat { model = "fault:echo-key", messages = { { role = "user", content = "Hi" } } })
      assert.matches(key, live.text, 1, true)
      local _, lerr = rec:chat { model = "fault:echo-key,status=401", messages = { { role = "user", content = "x" } } }
      assert.equal(401, lerr.status)
      rec:close()
      local tape = read(path)
      assert.equal(proxy, tape:find('"raw"', 1, true) ~= nil)
      assert.matches("x-echo", tape, 1, true)
      assert.is_nil(tape:find(key, 1, true), "the key is on the tape recorded " .. (proxy and "by the proxy"
                    or "in the client"))
      local c = aigc.client { base_url = "http://127.0.0.1:9/v1", model = "aigc-dev",
                              cassette = { path = path, mode = "replay", timing = false } }
      local again = assert(c:chat { model = "fault:echo-key", messages = { { role = "user", content = "Hi" } } })
      assert.matches("Your API key is %[redacted%]", again.text)
      assert.equal(#(proxy and live.text or ""), #(proxy and again.text or ""))   -- the proxy masks in place
      local _, err = c:chat { model = "fault:echo-key,status=401", messages = { { role = "user", content = "x" } } }
      assert.equal(401, err.status)
      assert.matches("Incorrect API key provided: %[redacted%]", err.message)
      c:close()
    end
    srv:stop()
  end)

  it("closing a recording client waits for the exchange the proxy is still writing", function ()
    -- An upstream that answers at once but closes the connection 0.3 s later:
    -- the client has its reply long before the proxy sees the end and writes it.
    local up = upstream.start(os.tmpname(), [=[
    local body = '{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,'
      .. '"message":{"role":"assistant","content":"lingered"},"finish_reason":"stop"}]}'
    s:write("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body)
    uv.new_timer():start(300, 0, function () s:close() end)
]=], { lifetime = 20000 })
    -- (in a finally: a failed check left it running, and the handle's
    -- close, at its __gc or at exit, then waited up to 20 s for it)
    finally(up.stop)
    local port = up.port
    local path = dir .. "/linger.jsonl"
    local rec = aigc.client { base_url = "http://127.0.0.1:" .. port .. "/v1", model = "m",
                              cassette = { path = path, mode = "record" } }
    assert.equal("lingered", assert(rec:chat "hi").text)
    rec:close()
    assert.equal(1, select(2, read(path):gsub("\n", "")))
  end)

  it("a replay miss is an error naming the request, for blocking, streaming and async calls", function ()
    local path = dir .. "/empty.jsonl"
    cli.write(path, "")
    local c = aigc.client { base_url = "http://127.0.0.1:9/v1", model = "aigc-dev",
                            cassette = { path = path, mode = "replay" } }
    finally(function () c:close() end)   -- (its replay server, also when an assertion fails)
    local res, err = c:chat "never recorded"
    assert.is_nil(res)
    assert.equal(404, err.status)
    assert.matches("cassette miss", err.message, 1, true)
    assert.matches("POST /chat/completions", err.message, 1, true)
    assert.matches("never recorded", err.message, 1, true)
    local ok, e = pcall(function ()
      for _ in c:stream { messages = { { role = "user", content = "nor this" } } } do end
    end)
    assert.is_false(ok)
    assert.matches("nor this", tostring(e.message or e), 1, true)
    local req = c:chat_async "async miss"
    local r2, e2 = req:wait()
    assert.is_nil(r2)
    assert.matches("async miss", e2.message, 1, true)
    -- a miss replays nothing: counted as an error, not as replayed
    local u = c:usage()
    assert.equal(3, u.requests)
    assert.equal(3, u.errors)
    assert.equal(0, u.replayed)
    c:close()
  end)

  it("auto records when the cassette is missing and replays when it exists", function ()
    local path = dir .. "/auto.jsonl"
    local srv = devserver.start { pause_ms = 0 }
    local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", cassette = { path = path } }
    local first = assert(c:chat "Echo: hello tape")
    c:close()
    srv:stop()
    local c2 = aigc.client { base_url = srv.base_url, model = "aigc-dev", cassette = { path = path } }
    local second = assert(c2:chat "Echo: hello tape")
    assert.equal(first.text, second.text)
    assert.equal(1, c2:usage().replayed)
    c2:close()
  end)

  it("a second recorder of one tape (another process) is refused; the first's exchanges are kept", function ()
    local luachild = require "luachild"
    local path = dir .. "/shared.jsonl"
    local srv = devserver.start { pause_ms = 0 }
    local rec = aigc.client { base_url = srv.base_url, model = "aigc-dev", cassette = { path = path, mode = "record" } }
    local first = assert(rec:chat "Echo: first recorder")
    -- while it records: another process, to record (or replay, or auto) the same tape
    local r = luachild.run([[
      local aigc = require "aigc"
      for _, mode in ipairs { "record", "auto", "replay" } do
        local ok, err = pcall(aigc.client, { base_url = arg[1], model = "aigc-dev",
                                             cassette = { path = arg[2], mode = mode } })
        if ok then assert(err:chat "Echo: second recorder"); err:close() end
        print(mode, ok, err)
      end
    ]], { args = { srv.base_url, path } })
    assert.equal(0, r.status, r.stderr)
    for _, mode in ipairs { "record", "auto", "replay" } do
      assert.matches(mode .. "\tfalse\taigc.cassette: " .. path .. " is being recorded by another client (pid ",
                     r.stdout, 1, true)
    end
    rec:close()
    srv:stop()
    assert.is_nil(io.open(path .. ".lock"))   -- (the lock goes with the recorder)
    local c = aigc.client { base_url = "http://127.0.0.1:9/v1", model = "aigc-dev",
                            cassette = { path = path, mode = "replay", timing = false } }
    assert.equal(first.text, assert(c:chat "Echo: first recorder").text)
    c:close()
  end)

  it("a recorder dropped without close() is closed when collected: its server stops, the tape replays", function ()
    -- (Lua 5.1 and LuaJIT have no table __gc: the recording proxy ran until
    -- the program ended, while the tape's lock went at the collection, and a
    -- replay opened the tape before the proxy wrote the last exchange)
    local path = dir .. "/dropped.jsonl"
    local srv = devserver.start { pause_ms = 0 }
    local function record ()   -- (its own frame: nothing of it stays on the stack)
      local rec = aigc.client { base_url = srv.base_url, model = "aigc-dev",
                                cassette = { path = path, mode = "record" } }
      return rec._cassette.pid, assert(rec:chat "Echo: dropped recorder").text
    end
    local pid, text = record()
    assert.is_true(proc.alive(pid))
    collectgarbage("collect")
    collectgarbage("collect")
    assert.is_false(proc.alive(pid))
    srv:stop()
    local c = aigc.client { base_url = "http://127.0.0.1:9/v1", model = "aigc-dev",
                            cassette = { path = path, mode = "replay", timing = false } }
    finally(function () c:close() end)
    assert.equal(text, assert(c:chat "Echo: dropped recorder").text)
  end)

  it("a client that cannot be made (a bad cache folder) lets its tape go: the next client records it", function ()
    local path = dir .. "/again.jsonl"
    cli.write(dir .. "/a-file", "x")
    local srv = devserver.start { pause_ms = 0 }
    local ok, err = pcall(aigc.client, { base_url = srv.base_url, model = "aigc-dev",
                                         cache = { dir = dir .. "/a-file" },
                                         cassette = { path = path, mode = "record" } })
    assert.is_false(ok)
    assert.matches("aigc.cache: cannot keep replies in the folder", err, 1, true)
    local rec = aigc.client { base_url = srv.base_url, model = "aigc-dev", cassette = { path = path, mode = "record" } }
    assert(rec:chat "Hi")
    rec:close()
    srv:stop()
  end)

  it("a torn last line (a recording killed while writing) is left out; the rest replays", function ()
    local path = dir .. "/torn.jsonl"
    local srv = devserver.start { pause_ms = 0 }
    local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", cassette = { path = path } }
    assert(c:chat "Echo: kept")
    assert(c:chat "Echo: torn")
    c:close()
    srv:stop()
    local text = read(path)
    local first, second = text:match("^([^\n]*\n)([^\n]*)\n$")
    assert.is_string(second)
    cli.write(path, first .. second:sub(1, 100))          -- the second exchange cut short
    local c2 = aigc.client { base_url = srv.base_url, model = "aigc-dev", cassette = { path = path } }
    finally(function () c2:close() end)
    assert.equal("kept", assert(c2:chat "Echo: kept").text)
    local none, err = c2:chat "Echo: torn"                 -- its exchange is not on the tape: a miss
    assert.is_nil(none)
    assert.equal("cassette_miss", err.code)
    assert.equal(2, c2._cassette.torn)
    c2:close()
    -- a bad line that is not the last is an error naming it
    cli.write(path, second:sub(1, 100) .. "\n" .. first)
    local ok, e = pcall(aigc.client, { cassette = { path = path } })
    assert.is_false(ok)
    assert.matches("aigc.cassette: cannot read .*torn.jsonl:1: not a cassette exchange", e)
  end)

  it("a cassette path that is a directory is one clear error", function ()
    for _, mode in ipairs { "auto", "record", "replay" } do
      assert.has_error(function () aigc.client { cassette = { path = dir, mode = mode } } end,
        "aigc.cassette: " .. dir .. " is a directory: the cassette is a file (a .jsonl to record into)")
    end
  end)

  it("keys: canonical JSON of what is sent, per-call options and callbacks left out", function ()
    local a = cassette.key("chat", { model = "m", temperature = 0, messages = { { content = "x", role = "user" } },
                                     timeout = 5, headers = { Authorization = "Bearer sk-1" }, on_done = print,
                                     stream = function () end })
    local b = cassette.key("chat", { messages = { { role = "user", content = "x" } }, temperature = 0.0, model = "m",
                                     stream = true })
    assert.equal(a, b)
    assert.is_nil(a:find("sk-1", 1, true))
    local unstreamed = { model = "m", temperature = 0, messages = { { role = "user", content = "x" } } }
    assert.not_equal(a, cassette.key("chat", unstreamed))
    assert.equal("GET /models", cassette.key("get", nil, "/models"))
  end)

  it("keys: -0 is 0 (Lua 5.1 merges the constants 0 and -0.0 in one function: a 5.4 tape must match)", function ()
    local negzero = tonumber("-0.0")   -- (read at run time: no constant to merge)
    assert.equal(-math.huge, 1 / negzero)
    assert.equal("0", cassette.canonical(negzero))
    assert.equal("[0,{\"t\":0}]", cassette.canonical({ negzero, { t = negzero } }))
    local msgs = { { role = "user", content = "x" } }
    assert.equal(cassette.key("chat", { model = "m", messages = msgs, temperature = 0 }),
                 cassette.key("chat", { model = "m", messages = msgs, temperature = negzero }))
  end)

  it("bad cassette options raise in the one format", function ()
    assert.error_matches(function () aigc.client { cassette = { path = dir .. "/x", mode = "play" } } end,
      "bad argument #1 to 'client' %(opts.cassette.mode: 'record', 'replay' or 'auto' expected")
    assert.error_matches(function () aigc.client { cassette = {} } end, "opts.cassette.path")
  end)
end)
