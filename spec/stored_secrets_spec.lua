-- A call's own credentials (a per-user key in its Authorization or
-- api-key header, or in its query: `key=`, `api-key=`...) are that call's
-- secrets: not only its error and log lines but what the response cache
-- (memory and disk) and a cassette (the client's record, the recording
-- proxy's wire bytes) keep of it are scrubbed of them, whole, cut and
-- base64'd. A server here echoes every credential of each request it gets
-- (a LuaSocket child, no aigc: the oracle is independent).
local aigc = require "aigc"
local cli = require "cli"
local oneshot = require "oneshot"
local luachild = require "luachild"

local CLIENT_KEY = "sk-client-" .. ("Qm4Xw8Ry2Tz6"):rep(3)
local PER_CALL = "sk-percall-" .. ("Zq7Lp3Vn9Kd5"):rep(3)
local QUERY_KEY = "qk-percall-" .. ("Hy6Fj2Gb8Nc4"):rep(3)
local PROXY_PASS = "pp-Wd5Ts9Qe3Rc7Vb1Xn8"
local SECRETS = { CLIENT_KEY, PER_CALL, QUERY_KEY, PROXY_PASS }

-- The echo server: answers every request with a chat completion whose
-- text (and an x-echo header) holds each credential the request carries
-- (the last word of Authorization, api-key, x-api-key,
-- Proxy-Authorization; the value of a query parameter named key, api-key,
-- access_token, sig), whole, with 3 bytes cut at each end, and in base64
-- ("Bearer " before it). `x-status: N` answers N with the text as an
-- error message instead. Serves until killed.
local ECHO = [[
  local oneshot = require "oneshot"
  local server = oneshot.listen()
  local base64 = require "b64"
  local CRED_HEADERS = { authorization = true, ["api-key"] = true, ["x-api-key"] = true,
                         ["proxy-authorization"] = true }
  local CRED_PARAMS = { key = true, ["api-key"] = true, access_token = true, sig = true }
  while true do
    local c = assert(server:accept())
    c:settimeout(5)
    local first = assert(c:receive("*l"))
    local creds, len, status = {}, 0, 200
    local query = first:match("^%S+ [^?%s]*%?(%S*)") or ""
    for k, v in query:gmatch("([^&=]+)=([^&]*)") do
      v = v:gsub("%%(%x%x)", function (h) return string.char(tonumber(h, 16)) end)
      if CRED_PARAMS[k:lower()] then creds[#creds + 1] = v end
    end
    repeat
      local line = assert(c:receive("*l"))
      local name, value = line:match("^([^:]+):%s*(.-)%s*$")
      if name then
        name = name:lower()
        if CRED_HEADERS[name] then creds[#creds + 1] = value:match("(%S+)$") end
        if name == "content-length" then len = tonumber(value) end
        if name == "x-status" then status = tonumber(value) end
      end
    until line == ""
    if len > 0 then c:receive(len) end
    local parts = {}
    for _, x in ipairs(creds) do
      parts[#parts + 1] = "whole " .. x .. " cut " .. x:sub(4, -4) .. " b64 " .. base64("Bearer " .. x)
    end
    local text = table.concat(parts, "; ")
    local body
    if status == 200 then
      body = '{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,'
        .. '"message":{"role":"assistant","content":"' .. text .. '"},"finish_reason":"stop"}],'
        .. '"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}'
    else
      body = '{"error":{"message":"' .. text .. '","type":"invalid_request_error","code":"k"}}'
    end
    c:send(("HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            .. "x-echo: %s\r\nConnection: close\r\n\r\n%s"):format(status, #body, text:sub(1, 2000), body))
    c:close()
  end
]]

-- Standard base64 with padding (no aigc: the oracle is independent).
local base64 = require "b64"

-- Each run of 12 bytes of a secret, or of 12 characters of its base64
-- forms (the three alignments), -> the secret's first bytes (for the
-- failure message: not even a test prints a secret).
local RUN = 12
local PIECES = {}
for _, secret in ipairs(SECRETS) do
  for _, form in ipairs { secret, base64(secret), base64("Bearer " .. secret), base64("ab" .. secret) } do
    local inner = form == secret and form or form:sub(4, -4)   -- (the characters the secret alone decides)
    for i = 1, #inner - RUN + 1 do PIECES[inner:sub(i, i + RUN - 1)] = secret:sub(1, 10) end
  end
end

local function leak_in (s)
  for i = 1, #s - RUN + 1 do
    local which = PIECES[s:sub(i, i + RUN - 1)]
    if which then return which end
  end
end

local function strings_of (v, out, seen)
  out, seen = out or {}, seen or {}
  if type(v) == "string" then
    out[#out + 1] = v
  elseif type(v) == "table" and not seen[v] then
    seen[v] = true
    for k, x in next, v do
      strings_of(k, out, seen)
      strings_of(x, out, seen)
    end
  end
  return out
end

local function assert_clean (v, what)
  for _, s in ipairs(strings_of(v)) do
    local which = leak_in(s)
    if which then error(("%s leaks the secret %s...: %d bytes"):format(what, which, #s), 2) end
  end
end

local read = cli.read

-- Every file under dir, read whole.
local function files_of (dir)
  local out = {}
  local p = io.popen("find " .. dir .. " -type f")
  for path in p:lines() do out[#out + 1] = read(path) end
  p:close()
  return out
end

describe("a call's own credentials in what is stored", function ()
  local port, child, base, dir
  setup(function ()
    port, child = oneshot.start(ECHO)
    base = "http://127.0.0.1:" .. port .. "/v1"
  end)
  teardown(function ()
    os.execute("kill " .. child.pid .. " 2>/dev/null")
    child:wait(5)
  end)
  before_each(function () dir = cli.home() end)
  after_each(function () cli.rmdir(dir) end)

  local function ask (content, extra)
    local p = { messages = { { role = "user", content = content } }, temperature = 0 }
    for k, v in pairs(extra or {}) do p[k] = v end
    return p
  end

  -- The server did echo what it was sent (else the checks prove nothing).
  local function echoed (res, secret)
    assert.truthy(res.text:find("whole " .. secret, 1, true) or res.text:find("[redacted]", 1, true))
  end

  it("the disk and memory cache: a per-call header's and query's key, whole, cut and base64'd", function ()
    local c = aigc.client { base_url = base, api_key = CLIENT_KEY, model = "m", max_retries = 0,
                            cache = { dir = dir } }
    local calls = {
      ask("header", { headers = { Authorization = "Bearer " .. PER_CALL } }),
      ask("api-key", { headers = { ["api-key"] = PER_CALL } }),
      ask("query", { query = { key = QUERY_KEY } }),
      ask("extra_query", { extra_query = { ["api-key"] = QUERY_KEY } }),
    }
    for i, p in ipairs(calls) do
      local res = assert(c:chat(p))
      echoed(res, i <= 2 and PER_CALL or QUERY_KEY)   -- (the reply itself is the caller's, unaltered)
      local hit = assert(c:chat(p))
      assert.is_true(hit.cached)
      assert_clean(hit, "a cache hit")
      assert.truthy(hit.text:find("[redacted]", 1, true))
    end
    local files = files_of(dir)
    assert.is_true(#files >= 4)
    assert_clean(files, "a cache file")
    c:close()
  end)

  for _, proxy in ipairs { false, true } do
    it("a cassette's file (" .. (proxy and "the recording proxy" or "proxy = false") .. ")", function ()
      local tape = dir .. "/tape.jsonl"
      local c = aigc.client { base_url = base, api_key = CLIENT_KEY, model = "m", max_retries = 0,
                              cassette = { path = tape, mode = "record", proxy = proxy } }
      assert(c:chat(ask("header", { headers = { Authorization = "Bearer " .. PER_CALL } })))
      assert(c:chat(ask("query", { query = { access_token = QUERY_KEY } })))
      assert.is_nil(c:chat(ask("an error", { headers = { ["x-status"] = "401", ["x-api-key"] = PER_CALL } })))
      c:close()
      local text = read(tape)
      assert.truthy(text:find("redacted", 1, true))
      assert_clean(text, "the cassette")
    end)
  end

  it("the prompt log (prompt_log = path): the call's own key, whole, cut and base64'd", function ()
    local db = dir .. "/logs.db"
    local c = aigc.client { base_url = base, api_key = CLIENT_KEY, model = "m", max_retries = 0, prompt_log = db }
    assert(c:chat(ask("header", { headers = { ["x-api-key"] = PER_CALL } })))
    assert(c:chat(ask("query", { extra_query = { key = QUERY_KEY } })))
    assert.is_nil(c:chat(ask("error", { headers = { Authorization = "Bearer " .. PER_CALL, ["x-status"] = "400" } })))
    c:close()
    local log = assert(require("aigc.promptlog").open(db))
    local rows = log:list { n = 10 }
    assert.equal(3, #rows)
    local seen = 0
    for _, row in ipairs(rows) do
      if tostring(row.response):find("whole [redacted]", 1, true)
         or tostring(row.error):find("whole [redacted]", 1, true) then seen = seen + 1 end
    end
    assert.equal(3, seen)   -- (each was echoed, and redacted)
    log:close()
    assert_clean(files_of(dir), "the prompt log's file")
  end)

  it("log_bodies: a request's debug line is scrubbed of the call's own key too", function ()
    local lines = {}
    local c = aigc.client { base_url = base, api_key = CLIENT_KEY, model = "m", max_retries = 0, log_bodies = true,
                            log = function (level, msg) lines[#lines + 1] = level .. ": " .. msg end }
    assert(c:chat(ask("my key is " .. PER_CALL, { headers = { Authorization = "Bearer " .. PER_CALL } })))
    assert(c:chat(ask("my key is " .. QUERY_KEY, { query = { key = QUERY_KEY } })))
    local body_lines = 0
    for _, l in ipairs(lines) do if l:find("body:", 1, true) then body_lines = body_lines + 1 end end
    assert.equal(2, body_lines)
    assert_clean(lines, "a log line")
    c:close()
  end)

  it("the password of the proxy URL is a secret (a proxy may echo its Proxy-Authorization)", function ()
    local lines = {}
    local c = aigc.client { base_url = "http://aigc-target.invalid/v1", api_key = CLIENT_KEY, model = "m",
                            max_retries = 1, proxy = "http://bob:" .. PROXY_PASS .. "@127.0.0.1:" .. port,
                            log = function (level, msg) lines[#lines + 1] = level .. ": " .. msg end }
    local res, err = c:chat(ask("via the proxy", { headers = { ["x-status"] = "500" } }))
    assert.is_nil(res)
    assert.equal(500, err.status)
    assert.truthy(err.message:find("whole [redacted]", 1, true))   -- (it was there: Basic bob:<password>)
    assert_clean({ err, tostring(err), lines }, "the error or a log line")
    assert.equal("x [redacted] y", c._engine:scrub("x " .. PROXY_PASS .. " y"))
    c:close()
  end)

  it("a download from another origin sends no credential header, whatever its case", function ()
    local c = aigc.client { base_url = "http://127.0.0.1:1/v1", api_key = CLIENT_KEY, max_retries = 0,
                            headers = { ["x-api-key"] = CLIENT_KEY } }
    for _ = 1, 4 do   -- (pairs() order: a lower-case name beside the null one must not win)
      local res = assert(c:download(base .. "/files/x", { headers = { authorization = "Bearer " .. PER_CALL,
                                                                       ["X-API-KEY"] = PER_CALL } }))
      assert.equal("", res.body:match('"content":"([^"]*)"'))   -- the server saw no credential at all
    end
    c:close()
  end)

  it("a per-call query key: scrubbed from that call's error and log lines", function ()
    local lines = {}
    local c = aigc.client { base_url = base, api_key = CLIENT_KEY, model = "m", max_retries = 1,
                            log = function (level, msg) lines[#lines + 1] = level .. ": " .. msg end }
    for _, q in ipairs { { query = { key = QUERY_KEY } }, { extra_query = { sig = QUERY_KEY } } } do
      q.headers = { ["x-status"] = "500" }
      local res, err = c:chat(ask("error", q))
      assert.is_nil(res)
      assert.equal(500, err.status)
      assert.truthy(tostring(err):find("[redacted]", 1, true))
      assert_clean({ err, tostring(err), lines }, "the error or a log line")
    end
    assert.is_true(#lines > 0)
    c:close()
  end)

  it("the bundled server's records keep no credential header's value (x-api-key, Proxy-Authorization too)", function ()
    local srv = require("devserver").start()
    local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", max_retries = 0,
                            headers = { ["x-api-key"] = PER_CALL } }
    assert(c:chat(ask("Hi", { headers = { ["Proxy-Authorization"] = "Basic " .. base64("bob:" .. PROXY_PASS) } })))
    c:close()
    local last = srv:last()
    srv:stop()
    assert.equal("<redacted len=" .. #PER_CALL .. ">", last.headers["x-api-key"])
    assert.matches("^<redacted len=%d+>$", last.headers["proxy-authorization"])
    assert_clean(last, "a devserver record")
  end)

  it("conv:save() keeps no params header or query (a per-user key in a save file)", function ()
    local c = aigc.client { base_url = base, api_key = CLIENT_KEY, model = "m", max_retries = 0 }
    local conv = aigc.conversation { client = c, system = "You are Sam.",
      params = { temperature = 0.5, headers = { Authorization = "Bearer " .. PER_CALL },
                 extra_headers = { ["api-key"] = PER_CALL }, query = { key = QUERY_KEY },
                 extra_query = { sig = QUERY_KEY } } }
    assert(conv:say("Hi"))
    local saved = conv:save()
    -- (the history keeps the reply as it came -- this server echoed the keys
    -- into it, the caller's data -- but no param carries one)
    local t = require("aigc.core").json.decode(saved)
    assert.equal(0.5, t.params.temperature)
    assert_clean(t.params, "a saved conversation's params")
    t.messages = nil
    assert_clean(t, "a saved conversation but its history")
    local again = { params = { headers = { Authorization = "Bearer " .. PER_CALL } } }
    local copy = assert(aigc.conversation.load(saved, c, again))
    assert.equal(0.5, copy.params.temperature)
    assert.equal("Bearer " .. PER_CALL, copy.params.headers.Authorization)
    assert.equal(#conv.messages, #copy.messages)
    c:close()
  end)

  it("a dialogue error (schema) holding the reply: scrubbed of the call's own key", function ()
    local c = aigc.client { base_url = base, api_key = CLIENT_KEY, model = "m", max_retries = 0 }
    local calls = { { headers = { Authorization = "Bearer " .. PER_CALL } }, { query = { key = QUERY_KEY } } }
    for _, extra in ipairs(calls) do
      extra.schema = { type = "object", properties = { a = { type = "string" } }, required = { "a" } }
      extra.max_retries = 0
      local res, err = c:chat(ask("not JSON", extra))
      assert.is_nil(res)
      assert.is_table(err)
      assert_clean({ err, tostring(err) }, "a dialogue error")
      assert.truthy(require("aigc.core").json.encode(err.body or err.text or err.response or err.message)
                      :find("[redacted]", 1, true) or tostring(err):find("[redacted]", 1, true))
    end
    c:close()
  end)
end)

-- A client made in a child process with the environment the parent gives
-- (libcurl reads the proxy variables itself): its call, and everything its
-- caller could see of it -- the error's strings, tostring(err), the log
-- lines, what the engine scrubs of the password -- on stdout.
local CHILD = [[
  local aigc = require "aigc"
  local base, pass, proxy, status = arg[1], arg[2], arg[3], arg[4]
  local lines = {}
  local c = aigc.client { base_url = base, api_key = "sk-child-key-0123456789", model = "m", max_retries = 1,
                          proxy = proxy ~= "" and proxy or nil, connect_timeout = 5,
                          log = function (level, msg) lines[#lines + 1] = level .. ": " .. msg end }
  local res, err = c:chat { messages = { { role = "user", content = "via the proxy" } },
                            headers = { ["x-status"] = status } }
  local out = { "scrub: " .. c._engine:scrub("x " .. pass .. " y") }
  c:close()
  if res then out[#out + 1] = "text: " .. res.text end
  local function walk (v, seen)
    if type(v) == "string" then out[#out + 1] = "field: " .. v
    elseif type(v) == "table" and not seen[v] then
      seen[v] = true
      for k, x in next, v do walk(k, seen); walk(x, seen) end
    end
  end
  if err then
    out[#out + 1] = "kind: " .. tostring(err.kind)
    out[#out + 1] = "message: " .. tostring(err.message)
    out[#out + 1] = "tostring: " .. tostring(err)
    walk(err, {})
  end
  for _, l in ipairs(lines) do out[#out + 1] = "log: " .. l end
  io.write(table.concat(out, "\n"), "\n")
]]

local PROXY_VARIABLES = { "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                          "no_proxy", "NO_PROXY" }

-- Runs CHILD with the proxy variables `vars` (the others set empty: the
-- runner's own do not count); returns its report as { key = { lines } }
-- and its whole stdout.
-- The child started in the background; its report comes from report_of.
local function child_started (vars, base, opts)
  local env = {}
  for _, name in ipairs(PROXY_VARIABLES) do env[name] = vars[name] or "" end
  opts = opts or {}
  return luachild.run(CHILD, { env = env, args = { base, PROXY_PASS, opts.proxy or "", opts.status or "500" },
                               background = true, timeout = 60 })
end

local function report_of (child)
  local r = child:wait(60)
  assert.equal(0, r.status, r.stderr)
  local report = {}
  for line in r.stdout:gmatch("[^\n]+") do
    local key, value = line:match("^(%w+): (.*)$")
    if key then
      report[key] = report[key] or {}
      table.insert(report[key], value)
    end
  end
  return report, r.stdout
end

local function child_with (vars, base, opts) return report_of(child_started(vars, base, opts)) end

describe("proxies", function ()
  local port, child
  setup(function () port, child = oneshot.start(ECHO) end)
  teardown(function ()
    os.execute("kill " .. child.pid .. " 2>/dev/null")
    child:wait(5)
  end)

  it("the password of a proxy from the environment is a secret, as `proxy`'s is", function ()
    local gopher = "gopher://bob:" .. PROXY_PASS .. "@127.0.0.1:1"   -- (libcurl's message shows the URL whole)
    local cases = {
      { "http_proxy", "http://127.0.0.1:1/v1" }, { "all_proxy", "http://127.0.0.1:1/v1" },
      { "ALL_PROXY", "http://127.0.0.1:1/v1" }, { "https_proxy", "https://127.0.0.1:1/v1" },
      { "HTTPS_PROXY", "https://127.0.0.1:1/v1" },
    }
    -- (the children side by side: each waits out its retry's backoff)
    for _, case in ipairs(cases) do case.child = child_started({ [case[1]] = gopher }, case[2]) end
    local upper = child_started({ HTTP_PROXY = gopher }, "http://127.0.0.1:1/v1")
    for _, case in ipairs(cases) do
      local report, out = report_of(case.child)
      assert.equal("connect", report.kind[1], case[1])
      assert.truthy(report.message[1]:find("Unsupported proxy scheme for 'gopher://bob:[redacted]@127.0.0.1:1'",
                                           1, true), case[1])
      assert.equal("x [redacted] y", report.scrub[1], case[1])
      assert_clean(out, "the error or a log line (" .. case[1] .. ")")
    end
    -- $HTTP_PROXY, which libcurl leaves alone for http, is a secret as well
    local report = report_of(upper)
    assert.equal("x [redacted] y", report.scrub[1])
  end)

  it("a proxy from the environment echoing its Proxy-Authorization: whole, cut and base64'd, scrubbed", function ()
    for _, proxy in ipairs { "http://bob:" .. PROXY_PASS .. "@127.0.0.1:" .. port,
                             "bob:" .. PROXY_PASS .. "@127.0.0.1:" .. port } do   -- (no scheme: libcurl's http)
      local report, out = child_with({ http_proxy = proxy }, "http://aigc-target.invalid/v1")
      assert.equal("http", report.kind[1])
      assert.truthy(report.message[1]:find("whole [redacted]", 1, true))   -- (it was there: Basic bob:<password>)
      assert_clean(out, "the error or a log line")
    end
    -- the same without a scheme, given as `proxy`
    local report, out = child_with({}, "http://aigc-target.invalid/v1",
                                   { proxy = "bob:" .. PROXY_PASS .. "@127.0.0.1:" .. port })
    assert.truthy(report.message[1]:find("whole [redacted]", 1, true))
    assert_clean(out, "the error or a log line")
  end)

  it("$no_proxy / $NO_PROXY still send a request past the proxy of the environment", function ()
    for _, name in ipairs { "no_proxy", "NO_PROXY" } do
      local report = child_with({ http_proxy = "http://bob:" .. PROXY_PASS .. "@127.0.0.1:1", [name] = "127.0.0.1" },
                                "http://127.0.0.1:" .. port .. "/v1", { status = "200" })
      assert.is_nil(report.kind, name)
      assert.truthy(report.text[1]:find("whole sk-child-key-0123456789", 1, true), name)   -- (the server, directly)
      assert.equal("x [redacted] y", report.scrub[1])
    end
  end)
end)
