-- Adversarial probes of the code that landed on Dec 5 (since 2446db5):
-- secrets in new messages, server text quoted in them, callbacks that do
-- anything at any time, the cost of new functions. Each test failed before
-- its fix.

local aigc = require "aigc"
local cjson = require "cjson"
local cli = require "cli"
local devserver = require "devserver"
local texts = require "texts"
local routed = require "routed"


local KEY = "sk-proj-AUDITPROBE0123456789abcdefXYZ"

describe("audit probes against a raw server", function ()
  local srv, dir, client

  setup(function ()
    srv = routed.start()
    dir = srv.dir
  end)
  teardown(function () srv:stop() end)
  local function serve (routes) srv:serve(routes) end
  -- a valid UTF-8 message: aigc.json.encode (as a log in JSON) refuses any other
  local function encodable (s)
    local ok, why = pcall(aigc.json.encode, s)
    return ok, why
  end

  before_each(function ()
    client = aigc.client { base_url = srv.base_url, model = "aigc-dev", api_key = KEY,
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
    -- (the cancel got the same 500: the upload was not cancelled, and the error says so)
    assert.matches("^upload upload_%[redacted%] %(not cancelled at the server: parts are down%): ", err.message)
    assert.equal("upload_[redacted]", err.upload_id)
  end)

  it("files_upload_parts of a directory: an io error naming it, no request (not the server's 400 on bytes = 2^63-1)",
     function ()
    serve {}   -- (any request: 404 "no route")
    local res, err = client:files_upload_parts { purpose = "batch", file = dir }
    assert.is_nil(res)
    assert.equal("io", err.kind)
    assert.equal("params.file: " .. dir .. ": not a regular file", err.message)
  end)

  it("files_upload_parts with file.size = inf: misuse naming params.file (not a params.bytes the user never wrote)",
     function ()
    local ok, msg = pcall(client.files_upload_parts, client, { purpose = "batch", filename = "a.jsonl",
      file = { size = math.huge, reader = function () return nil end } })
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'files_upload_parts' (params.file: a path or {reader = fn, size = bytes} "
                   .. "expected", msg, 1, true)
  end)

  -- A reply's content as a list of parts (Mistral's Magistral): res.text is
  -- its text parts joined. The core concatenated the text so far with every
  -- 8 parts: the square of the parts in copies (6 s for 160,000 parts).
  -- With the collector stopped, the copies stay counted: ~70 MB here before
  -- the fix (the text itself is 248 KB).
  it("a reply of thousands of text parts: joined whole, in order, without copying the text again per part",
     function ()
    local n, parts, want = 4000, {}, {}
    for i = 1, n do
      local text = string.format("%05d", i) .. string.rep("x", 57)
      parts[#parts + 1] = cjson.encode { type = "text", text = text }
      want[#want + 1] = text
      if i % 3 == 0 then parts[#parts + 1] = '{"type":"thinking","thinking":[{"type":"text","text":"no"}]}' end
    end
    serve { ["POST /v1/chat/completions"] = { body = '{"choices":[{"index":0,"message":{"role":"assistant","content":['
                                                     .. table.concat(parts, ",") .. ']},"finish_reason":"stop"}]}' } }
    collectgarbage("collect")
    collectgarbage("stop")
    local before = collectgarbage("count")
    local ok, res, err = pcall(client.chat, client, { messages = { { role = "user", content = "x" } } })
    local grew = collectgarbage("count") - before
    collectgarbage("restart")
    assert.is_true(ok, res)
    assert(res, err)
    assert.equal(table.concat(want), res.text)
    assert.is_true(grew < 20 * 1024, "the call allocated " .. math.floor(grew) .. " KB")
  end)

  it("a failed batch's megabyte error message is quoted bounded in each case's error, cut at a character", function ()
    local big = "bad input " .. string.rep(string.char(230, 151, 165), 400000)   -- 1.2 MB
    local failed = { body = cjson.encode { id = "batch_f", status = "failed",
                                           errors = { data = { { message = big, line = 1 } } } } }
    serve { ["POST /v1/files"] = { body = '{"id":"file-1","object":"file","purpose":"batch"}' },
            ["POST /v1/batches"] = failed, ["GET /v1/batches/"] = failed }
    local cases = {}
    for i = 1, 3 do cases[i] = { id = "c" .. i, messages = { { role = "user", content = "Hi" } } } end
    local summary = assert(require("aigc.runner").run { client = client, backend = "batch", batch_interval = 0.02,
                                                         cases = cases })
    local n = 0
    for _, r in pairs(summary.results) do
      n = n + 1
      assert.is_false(r.ok)
      local m = r.error.message
      assert.matches("^batch batch_f ended failed without this case %(input line 1: bad input ", m)
      assert.is_true(#m < 1000, #m)
      assert.is_true(encodable(m))
    end
    assert.equal(3, n)
    local res, err = require("aigc.batch").run(client, { { custom_id = "a", body = {
      messages = { { role = "user", content = "x" } } } } }, { interval = 0.02 })
    assert.is_nil(res)
    assert.matches("^batch batch_f failed %(input line 1: bad input ", err.message)
    assert.is_true(#err.message < 1000, #err.message)
    assert.equal(big, err.errors.data[1].message)   -- (the batch's own list: whole)
  end)


  it("a stream event's type quoted in a message is cut at a character, not inside one (valid UTF-8)", function ()
    local cjk = string.rep(string.char(230, 151, 165), 40)   -- 日 x 40
    local function ev (t) return "data: " .. cjson.encode(t) .. "\n\n" end
    for pad = 0, 2 do
      local body = ev { type = "response.created", sequence_number = 0,
                        response = { id = "r", status = "in_progress", output = {} } }
                   .. ev { type = "response." .. string.rep("a", pad) .. cjk, sequence_number = 7 }
      serve { ["POST /v1/responses"] = { ctype = "text/event-stream", body = body } }
      local res, err = client:respond { input = "x", stream = function () end }
      assert.is_nil(res)
      assert.equal("stream", err.kind)
      assert.matches("events are missing", err.message)
      assert.is_true(encodable(err.message), pad)
      assert.is_true(encodable(tostring(err)), pad)
    end
  end)

  it("a stream event's type that echoes the key, or holds controls, is quoted scrubbed and escaped", function ()
    local function ev (t) return "data: " .. cjson.encode(t) .. "\n\n" end
    local body = ev { type = "response.created", sequence_number = 0,
                      response = { id = "r", status = "in_progress", output = {} } }
                 .. ev { type = "response." .. KEY .. string.char(27) .. "]0;x" .. string.char(7), sequence_number = 9 }
    serve { ["POST /v1/responses"] = { ctype = "text/event-stream", body = body } }
    local res, err = client:respond { input = "x", stream = function () end }
    assert.is_nil(res)
    assert.equal("stream", err.kind)
    assert.is_false(texts.contains(texts.all(err), KEY))
    assert.is_false(texts.contains(tostring(err), KEY))
    assert.is_nil(err.message:find("[%c]"))
    assert.matches("(response.[redacted]\\27]0;x\\7)", err.message, 1, true)
  end)

  it("a FastAPI validation message over 400 bytes is cut at a character, not inside one", function ()
    for pad = 0, 2 do
      local msg = string.rep("b", pad) .. string.rep(string.char(230, 151, 165), 200)
      local loc = string.rep(string.char(195, 169), 30)   -- e-acute x 30, over 40 bytes
      serve { ["POST /v1/chat/completions"] = { status = 422,
        body = cjson.encode { detail = { { msg = msg, loc = { "body", loc } } } } } }
      local res, err = client:chat { messages = { { role = "user", content = "x" } } }
      assert.is_nil(res)
      assert.equal(422, err.status)
      assert.truthy(err.message:find(string.char(230, 151, 165), 1, true))
      assert.is_true(encodable(err.message), pad)
    end
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

  it("files_upload_parts of a path that grows during the upload: says so (not a params.file.reader never given)",
     function ()
    local path = os.tmpname()
    cli.write(path, string.rep("a", 1000))
    local fut = client:files_upload_parts_async { purpose = "batch", file = path, filename = "g.jsonl",
                                                  part_size = 400 }
    local fh = assert(io.open(path, "ab"))
    fh:write(string.rep("b", 5000))   -- (past what a first read may have buffered)
    fh:close()
    local res, err = fut:wait()
    os.remove(path)
    assert.is_nil(res)
    assert.equal("io", err.kind)
    assert.matches("(cancelled): params.file: " .. path .. " grew during the upload (1000 bytes when it began)",
                   err.message, 1, true)
  end)

  it("files_upload_parts: a reader's big string is read on, not copied again at each piece (linear)", function ()
    local size = 4 * 1024 * 1024
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
    -- 1 MB piece copied 3 + 2 + 1 MB more (10 MB in all)
    assert.is_true(copied < 2 * size, "string.sub made " .. copied .. " bytes for " .. size)
  end)
end)

-- The Responses stream now gives its response.failed and "error" events to
-- the stream callback before it fails the call (request.c handle_event):
-- whatever that callback does there (close the client, cancel, raise,
-- collect the request, start another call), the call ends once, one way.
describe("audit: a Responses failure event delivered to a callback that does anything", function ()
  local srv, client

  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)
  before_each(function ()
    srv:reset()
    client = aigc.client { base_url = srv.base_url, api_key = KEY, model = "aigc-dev", max_retries = 0, timeout = 60 }
  end)
  after_each(function () client:close() end)

  local FAULTS = { "failed-mid", "error-event" }

  local function failing (ev)
    return type(ev) == "table" and (ev.type == "response.failed" or ev.type == "error")
  end

  -- respond with `fault`, `on_fail(req_ref)` run by the callback at the failure event
  local function run (fault, on_fail)
    local seen, errors = 0, 0
    client.error_handler = function () errors = errors + 1 end
    local res, err = client:respond { input = "Hi there friend", headers = { ["x-aigc-fault"] = fault },
      stream = function (_, ev)
        if failing(ev) then
          seen = seen + 1
          on_fail(ev)
        end
      end }
    return res, err, seen, errors
  end

  it("the callback raises: the call fails with its error, once; the key nowhere", function ()
    for _, fault in ipairs(FAULTS) do
      local res, err, seen = run(fault .. ",echo-key", function () error("mine", 0) end)
      assert.is_nil(res)
      assert.equal(1, seen)
      assert.equal("callback", err.kind, fault)
      assert.matches("mine", err.message)
      assert.is_false(texts.contains(texts.all(err), KEY))
    end
  end)

  it("the callback closes the client: the call ends closed, nothing after", function ()
    for _, fault in ipairs(FAULTS) do
      local res, err, seen = run(fault, function () client:close() end)
      assert.is_nil(res)
      assert.equal(1, seen)
      assert.equal("canceled", err.kind, fault)
      assert.equal("the client was closed", err.message)
      client = aigc.client { base_url = srv.base_url, api_key = KEY, model = "aigc-dev", max_retries = 0 }
    end
  end)

  it("the callback collects garbage and makes a blocking call (served): the call fails with the server's error",
     function ()
    for _, fault in ipairs(FAULTS) do
      local inner_ok
      local res, err, seen = run(fault, function ()
        collectgarbage("collect")
        inner_ok = pcall(client.respond, client, { input = "inner" })
        collectgarbage("collect")
      end)
      assert.is_nil(res)
      assert.equal(1, seen)
      assert.equal("api", err.kind, fault)
      assert.is_true(inner_ok)
      assert.is_table(err.partial)
    end
  end)

  it("the callback cancels its own call and drops the last reference to it: canceled, its reason", function ()
    for _, fault in ipairs(FAULTS) do
      local fut
      fut = client:respond_async { input = "Hi", headers = { ["x-aigc-fault"] = fault },
        stream = function (_, ev)
          if failing(ev) and fut then
            fut:cancel("enough")
            fut = nil
            collectgarbage("collect")
          end
        end }
      local mine = fut
      local res, err = mine:wait()
      assert.is_nil(res)
      assert.equal("canceled", err.kind, fault)
      assert.equal("enough", err.message)
    end
  end)

  it("in a task, the callback yields (refused) or the task is canceled: one end each", function ()
    for _, fault in ipairs(FAULTS) do
      local out = {}
      client:spawn(function ()
        local res, err = client:respond { input = "Hi", headers = { ["x-aigc-fault"] = fault },
          stream = function (_, ev) if failing(ev) then coroutine.yield() end end }
        out.res, out.err = res, err
        out.done = true
      end)
      local frames = 0
      while not out.done and frames < 2000 do client:step(0.01) frames = frames + 1 end
      assert.is_true(out.done, fault)
      assert.is_nil(out.res)
      assert.equal("callback", out.err.kind)
    end
  end)
end)

-- An upload fed by a function with a size holds its last byte back until
-- the reader says it ended (body.c): the reader is asked once more, from
-- the loop. Whatever it does on that extra ask, the call ends once.
describe("audit: the extra ask of a sized upload reader", function ()
  local srv, client

  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)
  before_each(function ()
    srv:reset()
    client = aigc.client { base_url = srv.base_url, api_key = KEY, max_retries = 0, timeout = 60 }
  end)
  after_each(function () client:close() end)

  -- files_upload_async of 4 bytes; at the reader's 2nd call `extra(req)`
  local function upload (extra)
    local calls, req = 0, nil
    req = client:files_upload_async { purpose = "batch", file = { filename = "x.jsonl", size = 4,
      reader = function ()
        calls = calls + 1
        if calls == 1 then return "abcd" end
        return extra(req)
      end } }
    local frames = 0
    while (req:status() == "queued" or req:status() == "running") and frames < 4000 do
      client:step(0.02)
      frames = frames + 1
    end
    local res, err = req:wait()
    return res, err, calls
  end

  it("raises: the call fails with its error (kind io or callback), the key nowhere", function ()
    local res, err, calls = upload(function () error("reader broke " .. KEY, 0) end)
    assert.is_nil(res)
    assert.equal(2, calls)
    assert.matches("reader broke", err.message)
    assert.is_false(texts.contains(texts.all(err), KEY))
  end)

  it("cancels its own request and collects garbage: canceled, its reason", function ()
    local res, err, calls = upload(function (req)
      req:cancel("no more")
      collectgarbage("collect")
      return nil
    end)
    assert.is_nil(res)
    assert.equal(2, calls)
    assert.equal("canceled", err.kind)
    assert.equal("no more", err.message)
  end)

  it("closes the client: canceled, closed", function ()
    local res, err, calls = upload(function () client:close() return nil end)
    assert.is_nil(res)
    assert.equal(2, calls)
    assert.equal("canceled", err.kind)
    assert.equal("the client was closed", err.message)
  end)

  it("ends (nil) after a garbage collection: the file is whole", function ()
    local res, err, calls = upload(function () collectgarbage("collect") return nil end)
    assert(res, err)
    assert.equal(2, calls)
    assert.equal(4, res.bytes)
    assert.equal("abcd", assert(client:files_content(res.id)).body)
  end)
end)
