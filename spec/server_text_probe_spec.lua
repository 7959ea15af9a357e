-- Server text quoted in aigc's own messages (server_text probes): no piece
-- of a secret that a cut leaves, bounded, valid UTF-8. Each test failed
-- before its fix.

local aigc = require "aigc"
local cjson = require "cjson"
local cli = require "cli"
local texts = require "texts"
local routed = require "routed"


local KEY = "sk-proj-SERVERTEXT0123456789abcdefXYZ"
local PIECE = KEY:sub(1, 10)   -- what a cut 10 bytes into the key leaves

describe("server text against a raw server", function ()
  local srv, client

  setup(function ()
    srv = routed.start()
  end)
  teardown(function () srv:stop() end)
  local function serve (routes) srv:serve(routes) end

  before_each(function ()
    client = aigc.client { base_url = srv.base_url, model = "aigc-dev", api_key = KEY,
                           max_retries = 0, timeout = 10 }
  end)
  after_each(function () client:close() end)

  -- The cut at 400 (msg) and 40 (each loc part) fell 10 bytes into the key,
  -- and text followed: the scrub (pieces of 12 bytes, or a cut start ending
  -- the string) left "sk-proj-SE" in err.message.
  it("a FastAPI validation msg and loc cut inside the key: no piece of it in the message", function ()
    serve { ["POST /v1/chat/completions"] = { status = 422, body = cjson.encode { detail = { {
      msg = string.rep("m", 390) .. KEY, loc = { "body", string.rep("l", 30) .. KEY } } } } } }
    local res, err = client:chat { messages = { { role = "user", content = "x" } } }
    assert.is_nil(res)
    assert.equal(422, err.status)
    assert.matches("^" .. string.rep("m", 390) .. " %(body%." .. string.rep("l", 30) .. "%)$", err.message)
    assert.is_false(texts.contains(texts.all(err), PIECE))
    assert.is_false(texts.contains(tostring(err), PIECE))
  end)

  -- A 10 MB error message went whole into err.message (and type, code).
  it("a 10 MB error message, type and code are kept bounded, with no piece of a key the cut splits", function ()
    local big = string.rep("m", 65536 - 10) .. KEY .. string.rep("m", 10000000)
    serve { ["POST /v1/chat/completions"] = { status = 400, body = cjson.encode { error = {
      message = big, type = string.rep("t", 3000000), code = string.rep("c", 3000000) } } } }
    local res, err = client:chat { messages = { { role = "user", content = "x" } } }
    assert.is_nil(res)
    assert.equal(400, err.status)
    -- (the kept 64 KiB, then how much was cut: README, Errors)
    local kept, more = err.message:match("^(.-)… %((%d+) bytes more%)$")
    assert.truthy(kept, err.message:sub(-60))
    assert.is_true(#kept <= 65536, #kept)
    assert.is_true(tonumber(more) >= #big - 65536, more)
    assert.is_true(#err.type <= 65536 and #err.code <= 65536, #err.type)
    assert.equal(string.rep("m", 65536 - 10), err.message:sub(1, 65536 - 10))
    assert.is_false(texts.contains(err.message, PIECE))
    assert.is_true(#tostring(err) < 1000)
  end)

  -- The judge's reply quoted at 80 bytes, then the closing quote: a key
  -- the cut split kept its first 10 bytes in the error. (A key without
  -- digits: the judge's reply must name no candidate.)
  it("a judge's reply cut inside the key: no piece of it in the error", function ()
    local jkey = "sk-proj-JUDGEPROBEabcdefghijklmnopXYZ"
    local judged = aigc.client { base_url = srv.base_url, model = "aigc-dev",
                                 api_key = jkey, max_retries = 0, timeout = 10 }
    serve { ["POST /v1/chat/completions"] = { body = cjson.encode { id = "c", object = "chat.completion",
      choices = { { index = 0, finish_reason = "stop",
                    message = { role = "assistant", content = string.rep("x", 70) .. jkey } } } } } }
    local best, err = require("aigc.strategy").best_of { client = judged, n = 2, params = "Hello", judge = {} }
    judged:close()
    assert.is_nil(best)
    assert.equal("parse", err.kind)
    assert.matches("names no candidate", err.message, 1, true)
    assert.is_false(texts.contains(err.message, jkey:sub(1, 10)), err.message)
    assert.is_false(texts.contains(tostring(err), jkey:sub(1, 10)))
  end)

  it("a Responses stream event's type cut inside the key: no piece of it in the message", function ()
    local function ev (t) return "data: " .. cjson.encode(t) .. "\n\n" end
    local body = ev { type = "response.created", sequence_number = 0,
                      response = { id = "r", status = "in_progress", output = {} } }
                 .. ev { type = "response." .. string.rep("a", 61) .. KEY, sequence_number = 7 }
    serve { ["POST /v1/responses"] = { ctype = "text/event-stream", body = body } }
    local res, err = client:respond { input = "x", stream = function () end }
    assert.is_nil(res)
    assert.equal("stream", err.kind)
    assert.truthy(err.message:find("(response." .. string.rep("a", 61) .. ")", 1, true), err.message)
    assert.is_false(texts.contains(texts.all(err), PIECE))
    assert.is_false(texts.contains(tostring(err), PIECE))
  end)
end)

describe("server text in batch messages", function ()
  local srv, client
  local batch = require "aigc.batch"

  setup(function ()
    srv = routed.start()
  end)
  teardown(function () srv:stop() end)
  local function serve (routes) srv:serve(routes) end

  before_each(function ()
    client = aigc.client { base_url = srv.base_url, model = "aigc-dev", api_key = KEY,
                           max_retries = 0, timeout = 10 }
  end)
  after_each(function () client:close() end)

  -- A line's custom_id went whole into its parse error (a megabyte here);
  -- cut at 200 bytes, it must not keep the 10 bytes of the key the cut left.
  it("a results line's long custom_id is quoted bounded, with no piece of a key the cut splits", function ()
    local id = string.rep("c", 190) .. KEY .. string.rep("c", 1000000)
    serve { ["GET /v1/files/out/content"] = { ctype = "application/jsonl",
                                              body = cjson.encode { custom_id = id, response = {} } .. "\n" } }
    local r = assert(batch.results(client, { id = "b", status = "completed", output_file_id = "out" }))
    local e = r[id].error
    assert.equal("parse", e.kind)
    assert.truthy(e.message:find("line of custom_id '" .. string.rep("c", 190), 1, true), e.message)
    assert.is_true(#e.message < 1000, #e.message)
    assert.is_false(texts.contains(e.message, PIECE))
    assert.is_false(texts.contains(tostring(e), PIECE))
  end)

  -- A failed batch's first error message, quoted at 400 bytes and then ")":
  -- a key the cut split kept its first 10 bytes in the message.
  it("a failed batch's error message cut inside the key: no piece of it in the message", function ()
    local failed = { body = cjson.encode { id = "batch_f", status = "failed", errors = { data = { {
      message = string.rep("e", 390) .. KEY .. string.rep("e", 1000), line = 1 } } } } }
    serve { ["POST /v1/files"] = { body = '{"id":"file-1","object":"file","purpose":"batch"}' },
            ["POST /v1/batches"] = failed, ["GET /v1/batches/"] = failed }
    local res, err = batch.run(client, { { custom_id = "a", body = {
      messages = { { role = "user", content = "x" } } } } }, { interval = 0.02 })
    assert.is_nil(res)
    assert.matches("^batch batch_f failed %(input line 1: " .. string.rep("e", 390), err.message)
    assert.is_false(texts.contains(err.message, PIECE), err.message)
    assert.is_false(texts.contains(tostring(err), PIECE))
  end)

  -- `aigc run --batch --cancel` printed the server's batch id and status
  -- whole on stderr, unscrubbed (no error object on the way).
  it("aigc run --cancel: the batch's id and status echoing the key, a megabyte long: scrubbed, bounded", function ()
    serve { ["POST /v1/batches/"] = { body = cjson.encode { id = "batch_" .. KEY,
      status = string.rep("s", 190) .. KEY .. string.rep("s", 1000000) } } }
    local home = cli.home()
    cli.write(home .. "/cases.jsonl", '{"id": "a", "prompt": "Hi"}\n')
    local r = cli.run({ "run", home .. "/cases.jsonl", "--batch", "--cancel", "--batch-id", "b1" },
                      { home = home, base_url = srv.base_url,
                        env = { OPENAI_API_KEY = KEY } })
    cli.rmdir(home)
    assert.equal(0, r.code, r.stderr)
    assert.matches("^batch batch_%[redacted%]: " .. string.rep("s", 190), r.stderr)
    assert.is_true(#r.stderr < 1000, #r.stderr)
    assert.is_false(texts.contains(r.stderr, PIECE), r.stderr)
  end)

  -- A batch's status, never terminal, went whole into wait's timeout error.
  it("wait's timeout quotes a long status bounded", function ()
    local status = string.rep("s", 190) .. KEY .. string.rep("s", 1000000)
    serve { ["GET /v1/batches/b"] = { body = cjson.encode { id = "b", status = status } } }
    local res, err = batch.wait(client, "b", { timeout = 0, interval = 1 })
    assert.is_nil(res)
    assert.equal("timeout", err.kind)
    assert.matches("^batch b still " .. string.rep("s", 190), err.message)
    assert.is_true(#err.message < 1000, #err.message)
    assert.is_false(texts.contains(err.message, PIECE))
  end)
end)

describe("server text in aigc run's batch messages", function ()
  local devserver = require "devserver"
  local srv, home

  setup(function ()
    srv = devserver.start()
    home = cli.home()
  end)
  teardown(function ()
    srv:stop()
    cli.rmdir(home)
  end)

  -- The batch id kept in OUT.batch, cut at 200 bytes inside the key, then
  -- ", whose id ... keeps": stderr showed the key's first 10 bytes.
  it("a kept batch id cut inside the key: no piece of it on stderr", function ()
    cli.write(home .. "/cases.jsonl", '{"id": "a", "prompt": "Hi"}\n')
    local out = home .. "/r.jsonl"
    cli.write(out .. ".batch", string.rep("c", 190) .. KEY .. string.rep("c", 300) .. "\n")
    local r = cli.run({ "run", home .. "/cases.jsonl", "--out", out, "--batch", "-q", "--no-log" },
                      { home = home, base_url = srv.base_url, env = { OPENAI_API_KEY = KEY } })
    assert.equal(1, r.code, r.stderr)
    assert.matches("^aigc run: cannot resume batch " .. string.rep("c", 190), r.stderr)
    assert.is_false(texts.contains(r.stderr, PIECE), r.stderr)
  end)
end)
