-- Small defects found by other helpers, each over real HTTP on loopback
-- against a raw server. Each test failed before its fix.

local aigc = require "aigc"
local cjson = require "cjson"
local cli = require "cli"
local routed = require "routed"


-- A chat completion of Mistral's Magistral models: each choice's content a
-- list of parts, the thinking first, then the answer in text parts.
local function magistral_choice (i, answer)
  return { index = i - 1, finish_reason = "stop", message = { role = "assistant", content = {
    { type = "thinking", thinking = { { type = "text", text = "Let me think about " .. i .. "." } } },
    { type = "text", text = answer:sub(1, 3) }, { type = "text", text = answer:sub(4) } } } }
end

-- Whether `s` is valid UTF-8 (aigc.json.encode refuses any other string).
local function utf8_ok (s)
  return (pcall(aigc.json.encode, s))
end

describe("small defects, against a raw server", function ()
  local srv, dir, client

  setup(function ()
    srv = routed.start()
    dir = srv.dir
  end)
  teardown(function () srv:stop() end)
  local function serve (routes) srv:serve(routes) end

  before_each(function ()
    client = aigc.client { base_url = srv.base_url, model = "m",
                           api_key = "sk-small-0123456789",
                           max_retries = 0, timeout = 10 }
  end)
  after_each(function () client:close() end)

  describe("a reply whose content is a list of parts (Magistral)", function ()
    local reply = { id = "c1", object = "chat.completion", created = 1, model = "m",
                    choices = { magistral_choice(1, "Paris."), magistral_choice(2, "Lyon!") } }

    it("gives best_of's use_n candidates the text parts joined, as res.text (they were \"\")", function ()
      serve { ["POST /v1/chat/completions"] = { body = cjson.encode(reply) } }
      local seen = {}
      local best, cands = aigc.strategy.best_of { client = client, n = 2, use_n = true, params = "Capital?",
        score = function (text) seen[#seen + 1] = text; return #text end }
      assert.truthy(best, cands)
      assert.equal("Paris.", cands[1].text)
      assert.equal("Lyon!", cands[2].text)
      assert.same({ "Paris.", "Lyon!" }, seen)
      assert.equal("Paris.", best.text)
      -- (the core's own rule for a direct call, the same)
      assert.equal("Paris.", assert(client:chat { messages = { { role = "user", content = "Capital?" } } }).text)
    end)

    it("gives vote's use_n candidates their answers (no vote for \"\")", function ()
      local two = { id = "c1", object = "chat.completion", created = 1, model = "m",
                    choices = { magistral_choice(1, "Paris"), magistral_choice(2, "Paris") } }
      serve { ["POST /v1/chat/completions"] = { body = cjson.encode(two) } }
      local win = assert(aigc.strategy.vote { client = client, n = 2, use_n = true, params = "Capital?" })
      assert.equal("paris", win.answer)   -- (normalized: lower case)
      assert.equal(2, win.count)
    end)

    it("gives conv:last_reply() the text parts joined (it gave the turn before's reply)", function ()
      local function reply_of (answer)
        return cjson.encode { id = "c1", object = "chat.completion", created = 1, model = "m",
                              choices = { answer and magistral_choice(1, answer)
                                          or { index = 0, finish_reason = "stop",
                                               message = { role = "assistant", content = "Hello there." } } } }
      end
      serve { ["POST /v1/chat/completions"] = { body = reply_of(nil) } }
      local conv = aigc.conversation { client = client }
      assert.equal("Hello there.", (conv:say "Hi"))
      serve { ["POST /v1/chat/completions"] = { body = reply_of("Paris.") } }
      assert.equal("Paris.", (conv:say "Capital?"))
      assert.equal("Paris.", conv:last_reply())
    end)

    it("gives a structured call the parts' JSON to decode (it failed: the reply 'has no text to decode')", function ()
      local body = cjson.encode { id = "c1", object = "chat.completion", created = 1, model = "m",
                                  choices = { magistral_choice(1, '{"city": "Paris"}') } }
      serve { ["POST /v1/chat/completions"] = { body = body } }
      local res, err = client:chat { messages = { { role = "user", content = "Capital?" } },
        schema = { type = "object", properties = { city = { type = "string" } }, required = { "city" } } }
      assert.is_nil(err and err.message)
      assert.same({ city = "Paris" }, res.parsed)
    end)

    it("judge.text_of reads the parts of a result without res.text", function ()
      local judge = require "aigc.judge"
      assert.equal("Paris.", judge.text_of { choices = { magistral_choice(1, "Paris.") } })
      local thinking = { { type = "thinking", thinking = {} } }
      assert.is_nil(judge.text_of { choices = { { message = { content = thinking } } } })
    end)

    it("gives a batch run's cases the text parts joined (they were answered \"\")", function ()
      -- (the line's custom_id: the case's id)
      local line = cjson.encode { id = "r1", custom_id = "only", response = { status_code = 200, request_id = "q",
        body = { id = "c1", object = "chat.completion", created = 1, model = "m",
                 choices = { magistral_choice(1, "Paris.") } } } }
      local done = cjson.encode { id = "batch_m", object = "batch", status = "completed", output_file_id = "file-out",
                                  request_counts = { total = 1, completed = 1, failed = 0 } }
      serve { ["POST /v1/files"] = { body = '{"id":"file-in","object":"file","purpose":"batch"}' },
              ["POST /v1/batches"] = { body = done }, ["GET /v1/batches/"] = { body = done },
              ["GET /v1/files/file-out/content"] = { body = line .. "\n", ctype = "application/jsonl" } }
      local summary = assert(require("aigc.runner").run { client = client, backend = "batch", batch_interval = 0.02,
        cases = { { id = "only", messages = { { role = "user", content = "Capital?" } } } } })
      local r = summary.results.only
      assert.is_true(r.ok, r.error and r.error.message)
      assert.equal("Paris.", r.text)
    end)
  end)
  describe("a server's long batch id", function ()
    -- 30 KB of CJK (the bound cuts inside a character unless it looks)
    local BIG = "batch_" .. string.rep(string.char(230, 151, 165), 10000)
    local function batch_of (status, extra)
      local b = { id = BIG, object = "batch", status = status,
                  request_counts = { total = 1, completed = 0, failed = 0 } }
      for k, v in pairs(extra or {}) do b[k] = v end
      return cjson.encode(b)
    end
    local function bounded (m)
      assert.is_string(m)
      assert.is_true(#m < 1200, #m)
      assert.is_true(utf8_ok(m), "not UTF-8")
      assert.truthy(m:find("batch_" .. string.char(230, 151, 165), 1, true), m)
    end
    local REQUESTS = { { custom_id = "a", body = { messages = { { role = "user", content = "x" } } } } }
    local CASES = { { id = "c1", prompt = "Hi" }, { id = "c2", prompt = "Ho" } }
    local FILE = { body = '{"id":"file-1","object":"file","purpose":"batch"}' }

    it("is quoted bounded when the batch failed (batch.run, and each case of a run)", function ()
      local failed = { body = batch_of("failed", { errors = { data = { { message = "bad line", line = 1 } } } }) }
      serve { ["POST /v1/files"] = FILE, ["POST /v1/batches"] = failed, ["GET /v1/batches/"] = failed }
      local res, err = require("aigc.batch").run(client, REQUESTS, { interval = 0.02 })
      assert.is_nil(res)
      bounded(err.message)
      assert.matches("failed %(input line 1: bad line%)$", err.message)
      assert.equal(BIG, err.batch.id)   -- (the batch: whole)
      local summary = assert(require("aigc.runner").run { client = client, backend = "batch", batch_interval = 0.02,
                                                           cases = CASES })
      for _, id in ipairs { "c1", "c2" } do
        local r = summary.results[id]
        assert.is_false(r.ok)
        bounded(r.error.message)
        assert.matches("ended failed without this case %(input line 1: bad line%)$", r.error.message)
      end
    end)

    it("is quoted bounded when the polls fail, err.batch_id whole (batch.run, a run)", function ()
      serve { ["POST /v1/files"] = FILE, ["POST /v1/batches"] = { body = batch_of("in_progress") },
              ["GET /v1/batches/"] = { status = 500, body = '{"error":{"message":"down"}}' } }
      local res, err = require("aigc.batch").run(client, REQUESTS, { interval = 0.02 })
      assert.is_nil(res)
      bounded(err.message)
      assert.matches(": down$", err.message)
      assert.equal(BIG, err.batch_id)
      local none, e = require("aigc.runner").run { client = client, backend = "batch", batch_interval = 0.02,
                                                    cases = CASES }
      assert.is_nil(none)
      bounded(e.message)
      assert.matches(": down$", e.message)
      assert.equal(BIG, e.batch_id)
    end)

    it("is quoted bounded by aigc run --batch --cancel and its progress line", function ()
      serve { ["POST /v1/batches/"] = { body = batch_of("cancelling") } }
      local r = cli.run({ "run", "cases.jsonl", "--batch", "--cancel", "--batch-id", "batch_1" },
                        { home = dir, base_url = srv.base_url })
      assert.equal(0, r.code, r.stderr:sub(1, 500))
      bounded(r.stderr)
      assert.matches(": cancelling\n$", r.stderr)
      local line = require("aigc.cli.run").progress_line { done = 1, total = 2, ok = 1, failed = 0, tokens = 3,
                                                           rate = 1,
                                                           batch = { id = BIG, status = "in_progress" } }
      bounded(line)
    end)
  end)

  describe("a 2xx reply whose error has an empty message", function ()
    it("fails with a message that says so, not \"aigc: \" and nothing after", function ()
      serve { ["POST /v1/chat/completions"] = { body = '{"error":{"message":"","type":"server_error"}}' } }
      local res, err = client:chat { messages = { { role = "user", content = "Hi" } } }
      assert.is_nil(res)
      assert.equal("api", err.kind)
      assert.equal("the server returned an error", err.message)
      assert.equal("server_error", err.type)
      assert.matches("the server returned an error", tostring(err))
    end)

    it("streamed, and as an HTTP error's body: the same", function ()
      serve { ["POST /v1/chat/completions"] = { ctype = "text/event-stream",
                                                body = 'data: {"error":{"message":""}}\n\ndata: [DONE]\n\n' } }
      local res, err = client:chat { messages = { { role = "user", content = "Hi" } }, stream = function () end }
      assert.is_nil(res)
      assert.equal("api", err.kind)
      assert.equal("the server sent an error in the stream", err.message)
      serve { ["POST /v1/chat/completions"] = { status = 400, body = '{"error":{"message":"","code":"x"}}' } }
      res, err = client:chat { messages = { { role = "user", content = "Hi" } } }
      assert.is_nil(res)
      assert.equal("http", err.kind)
      assert.equal("HTTP status 400", err.message)
    end)
  end)
end)
