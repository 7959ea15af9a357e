-- luacheck: std +busted
-- The devserver's Batch API and rate limiter (issue 16): batches over an
-- uploaded JSONL file answered by the server's own endpoints with a delay,
-- partial failures, output and error files, cancel, list; 429s with the
-- x-ratelimit-* / retry-after headers OpenAI sends, counted in stats.
-- Raw sockets, never aigc.

local cjson = require "cjson"
local socket = require "socket"
local devserver = require "devserver"
local raw = require "rawhttp"
local portable = require "portable"

local null = cjson.null

local function chat_line (id, text, model)
  return cjson.encode { custom_id = id, method = "POST", url = "/v1/chat/completions",
    body = { model = model, messages = { { role = "user", content = text } } } }
end

describe("devserver batches", function ()
  local srv
  setup(function () srv = devserver.start { args = { "--batch-delay-ms", "5" } } end)
  teardown(function () srv:stop() end)
  before_each(function () srv:reset() end)

  local function call (method, path, body) return raw.call(srv.port, method, path, body) end

  local function upload (jsonl, purpose)
    local body, ctype = raw.multipart { { name = "purpose", value = purpose or "batch" },
      { name = "file", filename = "in.jsonl", content_type = "application/jsonl", value = jsonl } }
    local res = raw.call(srv.port, "POST", "/v1/files", body, { ["Content-Type"] = ctype })
    assert.equal(200, res.status, res.body)
    return res.json.id
  end

  local function create (file_id, extra)
    local body = { input_file_id = file_id, endpoint = "/v1/chat/completions", completion_window = "24h" }
    for k, v in pairs(extra or {}) do body[k] = v end
    return call("POST", "/v1/batches", body)
  end

  local function wait_status (id, want, seconds)
    return raw.wait_until(function ()
      local b = call("GET", "/v1/batches/" .. id).json
      return b.status == want and b
    end, seconds or 5)
  end

  local function lines_of (file_id)
    local out = {}
    for l in call("GET", "/v1/files/" .. file_id .. "/content").body:gmatch("[^\n]+") do
      out[#out + 1] = cjson.decode(l)
    end
    return out
  end

  it("runs every line through the endpoint: output and error files, counts, usage", function ()
    local fid = upload(table.concat({ chat_line("a", "What is the capital of France?"),
      chat_line("b", "Hi", "fault:status=500"), chat_line("c", "Echo: third") }, "\n") .. "\n")
    local res = create(fid, { metadata = { job = "nightly" } })
    assert.equal(200, res.status, res.body)
    local b = res.json
    assert.matches("^batch_", b.id)
    assert.same({ "batch", "/v1/chat/completions", fid, "24h", "validating" },
      { b.object, b.endpoint, b.input_file_id, b.completion_window, b.status })
    assert.equal(b.created_at + 86400, b.expires_at)
    assert.same({ total = 3, completed = 0, failed = 0 }, b.request_counts)
    assert.same({ job = "nightly" }, b.metadata)
    local done = wait_status(b.id, "completed")
    assert.truthy(done, "completed")
    assert.same({ total = 3, completed = 2, failed = 1 }, done.request_counts)
    for _, k in ipairs { "in_progress_at", "finalizing_at", "completed_at" } do assert.is_number(done[k], k) end
    local out = lines_of(done.output_file_id)
    assert.equal(2, #out)
    assert.equal("a", out[1].custom_id)
    assert.matches("^batch_req_", out[1].id)
    assert.equal(200, out[1].response.status_code)
    assert.matches("^req_", out[1].response.request_id)
    assert.equal("The capital of France is Paris.", out[1].response.body.choices[1].message.content)
    assert.equal(null, out[1].error)
    assert.equal("third", out[2].response.body.choices[1].message.content)
    local errs = lines_of(done.error_file_id)
    assert.equal(1, #errs)
    assert.equal("b", errs[1].custom_id)
    assert.equal(500, errs[1].response.status_code)
    assert.equal("server_error", errs[1].response.body.error.type)
    local usage = out[1].response.body.usage
    assert.equal(usage.prompt_tokens + out[2].response.body.usage.prompt_tokens, done.usage.input_tokens)
    local f = call("GET", "/v1/files/" .. done.output_file_id).json
    assert.equal("batch_output", f.purpose)
    assert.equal(b.id .. "_output.jsonl", f.filename)
    assert.is_true(#srv:requests() > 0)   -- (the calls above are: else the loop checks nothing)
    for _, r in ipairs(srv:requests()) do -- the lines are not HTTP requests: never recorded
      assert.not_equal("/v1/chat/completions", r.path)
    end
  end)

  it("waits --batch-delay-ms or metadata.aigc_delay_ms per line", function ()
    local lines = {}
    for i = 1, 6 do lines[i] = chat_line("n" .. i, "Hi") end
    local fid = upload(table.concat(lines, "\n"))
    local b = create(fid, { metadata = { aigc_delay_ms = "100" } }).json
    local mid = wait_status(b.id, "in_progress")
    assert.truthy(mid)
    socket.sleep(0.25)
    local partial = call("GET", "/v1/batches/" .. b.id).json
    assert.equal("in_progress", partial.status)
    assert.is_true(partial.request_counts.completed >= 1 and partial.request_counts.completed < 6,
      cjson.encode(partial.request_counts))
    assert.truthy(wait_status(b.id, "completed", 5))
    local t0 = socket.gettime()
    local quick = create(fid).json -- 5 ms per line
    assert.truthy(wait_status(quick.id, "completed", 5))
    assert.is_true(socket.gettime() - t0 < 2)
  end)

  it("cancels: cancelling, then cancelled with the lines done so far", function ()
    local lines = {}
    for i = 1, 20 do lines[i] = chat_line("c" .. i, "Echo: line " .. i) end
    local fid = upload(table.concat(lines, "\n"))
    local b = create(fid, { metadata = { aigc_delay_ms = "40" } }).json
    assert.truthy(wait_status(b.id, "in_progress"))
    socket.sleep(0.2)
    local c = call("POST", "/v1/batches/" .. b.id .. "/cancel")
    assert.equal(200, c.status)
    assert.equal("cancelling", c.json.status)
    assert.is_number(c.json.cancelling_at)
    local done = wait_status(b.id, "cancelled")
    assert.truthy(done)
    assert.is_number(done.cancelled_at)
    local n = done.request_counts.completed
    assert.is_true(n >= 1 and n < 20, "completed " .. n)
    assert.equal(n, #lines_of(done.output_file_id))
    assert.equal(200, call("POST", "/v1/batches/" .. b.id .. "/cancel").status) -- again: no change
    local fin = create(upload(chat_line("x", "Hi"))).json
    assert.truthy(wait_status(fin.id, "completed"))
    local late = call("POST", "/v1/batches/" .. fin.id .. "/cancel")
    assert.equal(409, late.status)
  end)

  it("fails a batch whose input is invalid, with line numbers; refuses bad requests", function ()
    local fid = upload(chat_line("a", "Hi") .. "\nnot json\n" .. chat_line("a", "dup") .. "\n"
      .. cjson.encode { custom_id = "u", method = "POST", url = "/v1/embeddings", body = {} } .. "\n")
    local b = create(fid).json
    assert.equal("failed", b.status)
    assert.is_number(b.failed_at)
    assert.equal("list", b.errors.object)
    local codes = {}
    for i, e in ipairs(b.errors.data) do codes[i] = e.code .. "@" .. portable.tointeger(e.line) end
    assert.same({ "invalid_json_line@2", "duplicate_custom_id@3", "mismatched_url@4" }, codes)
    assert.equal(404, create("file-nope").status)
    assert.equal("input_file_id", create(upload("{}", "user_data")).json.error.param)
    assert.equal("endpoint", call("POST", "/v1/batches", { input_file_id = fid, endpoint = "/v1/nope",
      completion_window = "24h" }).json.error.param)
    assert.equal("completion_window", call("POST", "/v1/batches", { input_file_id = fid,
      endpoint = "/v1/chat/completions", completion_window = "1h" }).json.error.param)
    assert.equal(404, call("GET", "/v1/batches/batch_nope").status)
  end)

  it("lists newest first with limit and after; serves other endpoints", function ()
    local emb = upload(cjson.encode { custom_id = "e1", method = "POST", url = "/v1/embeddings",
      body = { model = "text-embedding-3-small", input = "hello", dimensions = 4 } })
    local ids = {}
    for i = 1, 3 do
      ids[i] = call("POST", "/v1/batches", { input_file_id = emb, endpoint = "/v1/embeddings",
                                             completion_window = "24h" }).json.id
    end
    local page = call("GET", "/v1/batches?limit=2").json
    assert.equal("list", page.object)
    assert.same({ ids[3], ids[2] }, { page.data[1].id, page.data[2].id })
    assert.is_true(page.has_more)
    local rest = call("GET", "/v1/batches?limit=2&after=" .. page.last_id).json
    assert.same({ ids[1] }, { rest.data[1].id })
    assert.is_false(rest.has_more)
    local done = wait_status(ids[1], "completed")
    assert.equal("text-embedding-3-small", done.model)
    local out = lines_of(done.output_file_id)
    assert.equal(4, #out[1].response.body.data[1].embedding)
    local resp = upload(cjson.encode { custom_id = "r1", method = "POST", url = "/v1/responses",
      body = { input = "What is the capital of Japan?" } })
    local rb = call("POST", "/v1/batches", { input_file_id = resp, endpoint = "/v1/responses",
                                             completion_window = "24h" }).json
    local rdone = wait_status(rb.id, "completed")
    assert.equal("The capital of Japan is Tokyo.",
      lines_of(rdone.output_file_id)[1].response.body.output[1].content[1].text)
    srv:reset()
    assert.equal(404, call("GET", "/v1/batches/" .. rb.id).status)
  end)
end)

describe("devserver rate limiter", function ()
  local function hi (port, headers)
    return raw.call(port, "POST", "/v1/chat/completions", { messages = { { role = "user", content = "Hi" } } }, headers)
  end
  local function duration_ok (s)
    return s:match("^%d+ms$") or s:match("^%d+%.?%d*s$") or s:match("^%d+m%d+%.?%d*s$")
  end

  it("--rate-limit RPM answers 429 as OpenAI does, with its headers, and counts it", function ()
    local srv = devserver.start { args = { "--rate-limit", "3" } }
    local remaining = {}
    for i = 1, 3 do
      local r = hi(srv.port)
      assert.equal(200, r.status)
      assert.equal("3", r.headers["x-ratelimit-limit-requests"])
      remaining[i] = r.headers["x-ratelimit-remaining-requests"]
      assert.truthy(duration_ok(r.headers["x-ratelimit-reset-requests"]), r.headers["x-ratelimit-reset-requests"])
    end
    assert.same({ "2", "1", "0" }, remaining)
    local over = hi(srv.port)
    assert.equal(429, over.status)
    assert.same({ type = "requests", code = "rate_limit_exceeded", param = null }, { type = over.json.error.type,
      code = over.json.error.code, param = over.json.error.param })
    assert.matches("^Rate limit reached for aigc%-dev in organization org%-aigc%-dev on requests per min %(RPM%): "
      .. "Limit 3, Used 3, Requested 1%. Please try again in [%d%.]+s%.", over.json.error.message)
    local ra, ra_ms = tonumber(over.headers["retry-after"]), tonumber(over.headers["retry-after-ms"])
    assert.is_true(ra >= 1 and ra <= 20, "retry-after " .. ra)
    assert.is_true(ra_ms > 0 and ra_ms <= 20000 and math.ceil(ra_ms / 1000) == ra)
    assert.equal("0", over.headers["x-ratelimit-remaining-requests"])
    assert.equal(429, raw.call(srv.port, "GET", "/v1/models").status)
    local s = srv:stats()
    assert.equal(2, s.rate_limited_total)
    assert.equal(200, raw.call(srv.port, "GET", "/_aigc/stats").status) -- control requests are never limited
    srv:reset()
    assert.equal(0, srv:stats().rate_limited_total)
    assert.equal(200, hi(srv.port).status) -- full again
    srv:stop()
  end)

  it("TPM: a request whose tokens exceed what is left is a 429 of type tokens", function ()
    local srv = devserver.start { args = { "--rate-limit", "100,60" } }
    local r = raw.call(srv.port, "POST", "/v1/chat/completions", { messages = { { role = "user", content = "Hi" } },
      max_tokens = 20 })
    assert.equal(200, r.status)
    assert.equal("60", r.headers["x-ratelimit-limit-tokens"])
    local left = tonumber(r.headers["x-ratelimit-remaining-tokens"])
    assert.is_true(left < 60 and left > 0)
    local big = raw.call(srv.port, "POST", "/v1/chat/completions", { messages = { { role = "user", content = "Hi" } },
      max_tokens = 50 })
    assert.equal(429, big.status)
    assert.equal("tokens", big.json.error.type)
    assert.matches("on tokens per min %(TPM%): Limit 60", big.json.error.message)
    assert.truthy(duration_ok(big.headers["x-ratelimit-reset-tokens"]))
    srv:stop()
  end)

  it("the fault rate-limit=RPM[,key=K] limits only the requests that carry it, and refills", function ()
    local srv = devserver.start()
    -- a bucket of 3 requests (a minute's worth, as OpenAI's), refilled at 1 per 20 s: none comes
    -- back while the case counts (a loaded machine's seconds do not change the counts)
    local f = { ["x-aigc-fault"] = "rate-limit=3,key=k1" }
    local c = raw.connect(srv.port)
    local body = cjson.encode { messages = { { role = "user", content = "Hi" } } }
    local ok, first_429 = 0, nil
    for i = 1, 5 do
      assert(c:send(raw.request_bytes("POST", "/v1/chat/completions", body, f)))
      local r = raw.read_response(c)
      if r.status == 200 then ok = ok + 1 elseif not first_429 then first_429 = i end
    end
    c:close()
    assert.equal(3, ok)
    assert.equal(4, first_429)
    assert.equal(200, hi(srv.port).status) -- without the fault: no limit
    assert.equal(200, hi(srv.port, { ["x-aigc-fault"] = "rate-limit=600,key=k2" }).status) -- another key
    assert.equal(429, hi(srv.port, f).status)
    -- refills: a bucket of 60 refilled at 1 per second, emptied (asked until it says 429), is
    -- asked again until it admits (the wait only guards against a bucket that never refills)
    local g = { ["x-aigc-fault"] = "rate-limit=60,key=k3" }
    local status, sent = 200, 0
    c = raw.connect(srv.port)
    while status == 200 and sent < 1000 do
      assert(c:send(raw.request_bytes("POST", "/v1/chat/completions", body, g)))
      status, sent = raw.read_response(c).status, sent + 1
    end
    c:close()
    assert.equal(429, status)
    local deadline = socket.gettime() + 60
    repeat
      socket.sleep(0.05)
      status = hi(srv.port, g).status
    until status ~= 429 or socket.gettime() > deadline
    assert.equal(200, status) -- refilled
    assert.is_true(srv:stats().rate_limited_total >= 2)
    assert.equal(400, hi(srv.port, { ["x-aigc-fault"] = "rate-limit=0" }).status)
    local s = raw.stream(srv.port, "/v1/chat/completions", { messages = { { role = "user", content = "Hi" } } },
      { ["x-aigc-fault"] = "rate-limit=5,key=s" })
    assert.equal("4", s.headers["x-ratelimit-remaining-requests"])
    srv:stop()
  end)
end)
