--[[
aigc devserver -- a local OpenAI-compatible HTTP/1.1 server (Lua 5.4, luv, lua-cjson).

It backs `make demo`, the module's transport tests and anyone's own scripts
or CI: deterministic replies, real sockets, keep-alive, streaming with real
pauses, and every transport fault a client must survive, on request.

USAGE
  lua5.4 lua/aigc/devserver.lua [--host 127.0.0.1] [--port 8089] [--port-file PATH]
      [--pause-ms N] [--api-key KEY] [--quiet] [--parent-pid PID] [--exit-after SECONDS]
      [--idle-timeout SECONDS]
  require("aigc.devserver").run{ host =, port =, port_file =, pause_ms =, api_key =, quiet =,
                                 idle_timeout = }

  --port 0 picks a free port. When ready, exactly one line goes to stdout:
  `aigc devserver listening on http://HOST:PORT/v1`, and PORT is written to
  --port-file (temp name, then rename: a reader never sees a partial file).
  One log line per request goes to stderr unless --quiet; no header values,
  no query strings, so no secrets. SIGTERM/SIGINT stop it at once, whatever is
  in flight (every connection is dropped; run() returns).
  --idle-timeout S (default 60; 0 = never): a keep-alive connection with no
  request in progress and no byte received for S seconds is closed.
  API requests start from an idle handle a few milliseconds' worth at a time,
  never inside a read callback, so a storm of requests cannot starve the loop:
  departures, control requests and signals are seen between them; a request
  whose client left before it started costs nothing. A client that goes
  takes its timers, coroutine and descriptor with it.
  --parent-pid PID: exit when that process is gone (polled every 0.5 s; a
  zombie counts as gone). --exit-after S: exit after S seconds whatever happens.
  The test helper (spec/support/devserver.lua) passes both, so a crashed test
  run never leaves a server behind.

ENDPOINTS (paths without /v1 are 404; wrong method 405; errors in OpenAI's wire format)
  POST /v1/chat/completions   POST /v1/completions   POST /v1/embeddings
  GET  /v1/models             GET  /v1/models/{id}
  POST /openai/deployments/{deployment}/{chat/completions|completions|embeddings}?api-version=...
       (Azure style: model = deployment; the key may come in `api-key`)
  --api-key KEY: API requests need `Authorization: Bearer KEY` or `api-key: KEY`,
  else 401 invalid_api_key with the key masked.
  Every response: x-request-id (req_<hex>), openai-version, openai-processing-ms,
  x-ratelimit-{limit,remaining,reset}-{requests,tokens}, Content-Type and, unless
  streamed, Content-Length. Keep-alive by default; `Connection: close` honoured.
  Requests: Content-Length or chunked bodies, pipelining, `Expect: 100-continue`,
  64 MiB limit (413). A client that closes (or half-closes) its side while its
  request is pending counts as gone: `client_closed` (like nginx's 499).

CONTROL (no auth; not counted, not recorded)
  GET  /_aigc/stats     {requests_total, open_now, max_open, connections_total,
                         connections_open, max_connections_open, client_closed_total,
                         idle_closed_total, timers_active, jobs_active, jobs_waiting}
                        (the last three: live connection timers, API responses in
                        progress, API requests read but not started)
  POST /_aigc/reset     zero the counters and high-water marks (to the current
                        gauges), forget recorded requests and `times` fault counters
  GET  /_aigc/requests  the last 200 API requests, oldest first:
                        {id, method, path, query, headers, body, body_json, status,
                         stream, client_closed, fault, writes, auth_header,
                         authorization_prefix, authorization_len, authorization_ok}
  GET  /_aigc/last      the last one (null if none)
  `writes` counts the socket writes of the response (byte-writes: one per byte).
  `body` is the raw body exactly as received (cjson cannot keep 64-bit integers;
  body_json is cjson's view). Header names are lower case; the values of
  `authorization` and `api-key` are replaced by "<redacted len=N>".
  auth_header: "authorization" | "api-key" | null; authorization_prefix: the
  scheme word ("Bearer"); authorization_len: length of the credential;
  authorization_ok: whether it equals --api-key (null when no key is configured).
  Open = from a request's last body byte to its last response byte (or the
  connection's end). A connection is counted once it carries an API request.

REPLIES (deterministic: same model, messages, seed, temperature, choice index -> same text)
  The last user message picks a rule: `Repeat after me: X` / `Echo: X` -> X
  exactly; capitals ("What is the capital of France?" -> "The capital of France
  is Paris."); a ~150-token story for "...story about a robot that learns to
  paint"; arithmetic ("What is 2 + 2?"); jokes, greetings, how-are-you, name,
  weather, thanks, goodbye; customer service (refund, order tracking, password,
  cancellation, shipping, damaged item, opening hours); else a generic sentence
  quoting the message, worded differently in later turns. Each rule has 3
  variants chosen by a hash of (model, seed, choice index, turn, message);
  temperature 0 always takes the first, so all choices agree; so does choice 0
  of a request without a seed (the canonical answers quoted here).
  Tokens are words with their leading whitespace (their concatenation is the
  text). max_tokens / max_completion_tokens cut with finish_reason "length"
  (completions default to 16, as OpenAI does); `stop` (string or <= 4) cuts
  before the first occurrence with "stop"; n = 1..128.
  usage.prompt_tokens = words in all messages + 4 per message.
  Judge contract (checked before the rules, ignores seed and temperature):
  * the last user message has lines `Candidate N:` (text runs to the next
    `Candidate M:` line or the end) and the words `best candidate` -> the reply is
    the number N of the candidate with the most words (ties: lowest N), e.g. "2";
  * it contains `Score the candidate` -> the reply is min(10, words // 10 + 1)
    counted in the text after `Candidate:` (else after the first `Candidate N:`).
  Classify contract (after the judge's): a line `Categories: a, b, c` -> the reply is
  the category named earliest in the text after `Input:` (else in the rest of the
  message), as a word, case-insensitive, `_` as a space, a final `s` optional;
  none named -> the last category.
  Tools: with `tools`, every `name(ARGS)` in the last user message is a call
  with arguments = ARGS verbatim (to the matching parenthesis, may be invalid
  JSON); a bare `name` -- or the name with `_`/`-` as spaces, any case ("track
  order" for track_order) -- is a call with a minimal valid instance of its
  parameters, derived from the message: string properties named *id, *number or
  *code take the first word of the message that has a digit ("A-1042"); enum
  values named in the message win (see below).
  tool_choice "none" -> no calls, "required" -> the first tool if none is named,
  {type="function", function={name=X}} -> X. parallel_tool_calls=false keeps one.
  If the last message is role "tool": "Here is what I found: <contents joined by '; '>".
  response_format json_schema -> compact JSON of a deterministic valid instance
  (all properties; strings named say/text/answer/reply/message/content carry the
  reply; an enum takes the first of its values named as a word in the last user
  message (`_` as a space), else with a seed one chosen by a hash of (seed,
  property, turn), else the first); json_object -> the instance of the schema that a message gives after the
  words `JSON schema:` (the rest of that message), else {"reply": "<reply>"}.
  logprobs: deterministic values.
  Embeddings: unit vectors from a hash of the input (1536 dims, 3072 for
  *-large, or `dimensions`), float32-exact; encoding_format "base64" gives
  little-endian float32.

STREAMING (stream: true): text/event-stream, chunked, `data: <json>\n\n` events,
  `data: [DONE]` last. Chat: per choice a role delta, one delta per token, a `{}`
  delta with finish_reason; n > 1 interleaves round robin; include_usage adds
  usage:null to every chunk and a final choices:[] usage chunk. Tool calls: a
  header delta per call, then argument pieces of <= 8 bytes. The accumulated
  stream equals the non-streamed response except id and created.
  --pause-ms N (or fault pause=MS) sleeps between events.

FAULTS -- header `x-aigc-fault: <spec>` or model `fault:<spec>` (both: merged, header
  last); <spec> = comma-separated `name` or `name=value` items, combinable.
  An unknown name or bad value is a 400 naming it. Recorded as `fault`.
  status=CODE            answer CODE with an OpenAI error body of the matching
                         type/code (400 invalid_request_error, 401 invalid_api_key,
                         403 permission_denied, 404 model_not_found, 409 conflict,
                         422 unprocessable_entity, 429 rate_limit_exceeded (type
                         "requests"), 5xx server_error); a 2xx/3xx CODE sends the
                         normal reply with that status
    retry-after=V        `Retry-After: V` verbatim; V = date+S -> HTTP-date S s from now
    retry-after-ms=MS    `retry-after-ms: MS`
    should-retry=B       `x-should-retry: true|false`
    body=text            HTML body, Content-Type text/html
    body=nokey           JSON object without `error`: {"detail": "..."}
  times=N[,key=K]        apply only to the first N requests carrying key K
                         (default key: the whole spec); later ones are normal
  delay=MS               wait before the status line
  hang                   never answer; keep the connection until the client goes
  drip=MS                the whole response one byte every MS ms (headers too)
  Headers (any response, errors included):
    headers=N            N extra headers `x-f-1: a` ... `x-f-N: a` (N <= 1000000)
    raw-header=TEXT      one extra header line TEXT verbatim, after the normal ones
                         (e.g. `raw-header=HTTP/1.1-x: 1`); `%2C` in TEXT is a comma;
                         repeatable
    bad-gzip             `Content-Encoding: gzip` on a body (JSON or SSE) that is not gzip
    echo-key             echo the request's credential (the Bearer value or `api-key`)
                         in `x-echo: KEY` and `x-request-id: req_KEY`; with status=CODE
                         the error body carries it in `message`, `error.details.key` and
                         `error.details.list` (2nd of 3); a 200 reply's text ends with
                         "Your API key is KEY."; a stream sends one chunk, then
                         `event: error` with that error JSON, then ends
  Bodies of a 200 reply (always non-streamed application/json):
    body=malformed       {"id":"x","choices":[         (truncated JSON)
    body=empty           Content-Length: 0
    body=not-object      [1,2,3]
    body=no-choices      the normal reply without `choices`
    body=choices-not-array   "choices": "oops"
    body=deep            100000 `[` then 100000 `]`
    body=huge-number     the normal reply with "created": 1e400
    body=invalid-utf8    the reply text followed by the raw bytes \xff\xfe
    body=huge,size=BYTES the text/content is BYTES long (default 1 MiB)
    body=empty-arrays[,size=BYTES]  the normal reply plus `"x":[[],[],...]`, the value
                         about BYTES long (default 1 MiB): a JSON value flood
    tool-calls=hostile   chat: the message has `"tool_calls":[1]`, content null,
                         finish_reason "tool_calls" (streamed: a `{"tool_calls":[1]}` delta)
    plain-for-stream     a stream request gets the one plain application/json reply
                         (as a server that ignores `stream` does)
  Connection:
    close-mid-body       promise the whole body, send half, close (FIN)
    long-body            send the body then extra garbage; the connection stays open
    reset                send half the body, then RST (luv tcp:close_reset)
    garbage-status       `HTXP/9.9 banana\r\n\r\n`, then close
  Streams (stream: true):
    pause=MS             sleep MS between events
    drop-after=N         close after N events: no [DONE], no terminating chunk
    no-done              every event but [DONE]; the response ends properly
    error-event          after 2 events `event: error` + an error JSON, then end
    error-data           after 2 events `data: {"error":{...}}`, then end
    crlf | cr            every line end is CRLF | CR
    comments             a `: keep-alive` line before every event
    no-space             `data:{...}`
    multiline            each JSON split into several data: lines after its commas
    byte-writes          every byte in its own write, TCP_NODELAY
    no-finish-reason     the final chunks keep finish_reason null
    malformed-chunk      the 2nd event's JSON is cut in half
    repeat-ids           tool-call deltas repeat id, type and name
    content-filter       an Azure prompt_filter_results chunk first
    huge-line=BYTES      after the first event, one BYTES-long `data: ` line with no
                         line end, then close
    event-bytes=BYTES    after the first event, one valid chunk whose content
                         (text) delta is BYTES long
    dup-key              chat: the 2nd content delta (the first token's; the role delta
                         is the 1st) is exactly `{"content":"a","content":"b"}`
    comment-drip=MS      (any request) headers of an SSE stream, then one comment line
                         `:` every MS ms forever, never data, until the client goes
  Structured output (chat with response_format json_schema / json_object):
    schema=violate       the instance breaks its schema, deterministically: in every
                         object the first required property is left out and, when
                         additionalProperties is false, "unexpected": true is added;
                         strings become 42, numbers "NaN", booleans "yes"
    schema=not-json      the reply is prose, not JSON: "Sure! Here is the JSON you asked for."
    no-json-schema       response_format json_schema is refused with a 400 (param
                         "response_format"), as servers without structured outputs do
]]

local uv = require "luv"
local cjson = require "cjson.safe"

local byte, char, find, format, gsub, lower, match, rep, sub =
  string.byte, string.char, string.find, string.format, string.gsub, string.lower,
  string.match, string.rep, string.sub
local spack, sunpack = string.pack, string.unpack
local concat, sort, tpack = table.concat, table.sort, table.pack
local floor, huge, mtype, tointeger = math.floor, math.huge, math.type, math.tointeger
local cyield, cresume, ccreate, cstatus = coroutine.yield, coroutine.resume, coroutine.create, coroutine.status
local NULL = cjson.null

local M = { _VERSION = "1.0" }

local MAX_BODY = 64 * 1024 * 1024
local MAX_HEAD = 64 * 1024
local MAX_RECORDS = 200
local FINGERPRINT = "fp_aigc_dev"
local DEFAULT_MODEL = "aigc-dev"
local CLOSED = setmetatable({}, { __tostring = function () return "connection closed" end })

-- ---------------------------------------------------------------------------
-- JSON encoding with ordered objects (cjson's key order is the hash order).
-- O(k1, v1, ...) is an object whose keys encode in that order; A{...} is an
-- array (also when empty); RAW(s) is spliced in verbatim; nil fields vanish.
-- ---------------------------------------------------------------------------

local KEYS = {}
local ARRAY = { __name = "json.array" }
local RAWMT = { __name = "json.raw" }

local function O (...)
  local a, t, keys = tpack(...), {}, {}
  for i = 1, a.n, 2 do
    local v = a[i + 1]
    if v ~= nil then keys[#keys + 1] = a[i]; t[a[i]] = v end
  end
  t[KEYS] = keys
  return t
end

local function oset (o, k, v)
  local keys = o[KEYS]
  local seen = false
  for i = 1, #keys do if keys[i] == k then seen = true; break end end
  if not seen then keys[#keys + 1] = k end
  o[k] = v
end

local function odel (o, k)
  local keys = o[KEYS]
  for i = #keys, 1, -1 do if keys[i] == k then table.remove(keys, i) end end
  o[k] = nil
end

local function A (t) return setmetatable(t or {}, ARRAY) end
local function RAW (s) return setmetatable({ s }, RAWMT) end

local ESC = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
              ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
for i = 0, 31 do ESC[char(i)] = ESC[char(i)] or format("\\u%04x", i) end

local function quote (s)
  if not find(s, '[%z\1-\31"\\]') then return '"' .. s .. '"' end
  return '"' .. gsub(s, '[%z\1-\31"\\]', ESC) .. '"'
end

local function num (v)
  if mtype(v) == "integer" then return tostring(v) end
  if v ~= v or v == huge or v == -huge then return "null" end
  local i = tointeger(v)
  if i and v >= -2^53 and v <= 2^53 then return tostring(i) end
  local s = format("%.14g", v)
  if tonumber(s) ~= v then s = format("%.17g", v) end
  return s
end

local function enc (v, buf)
  local tv = type(v)
  if tv == "string" then buf[#buf + 1] = quote(v)
  elseif tv == "number" then buf[#buf + 1] = num(v)
  elseif tv == "boolean" then buf[#buf + 1] = v and "true" or "false"
  elseif tv ~= "table" then buf[#buf + 1] = "null"
  else
    local mt, keys = getmetatable(v), v[KEYS]
    if mt == RAWMT then buf[#buf + 1] = v[1]
    elseif keys then
      buf[#buf + 1] = "{"
      local first = true
      for i = 1, #keys do
        local k = keys[i]
        local x = v[k]
        if x ~= nil then
          buf[#buf + 1] = first and quote(k) .. ":" or "," .. quote(k) .. ":"
          first = false
          enc(x, buf)
        end
      end
      buf[#buf + 1] = "}"
    else
      local n, count = #v, 0
      for _ in pairs(v) do count = count + 1 end
      if mt == ARRAY or (n > 0 and count == n) then
        buf[#buf + 1] = "["
        for i = 1, n do
          if i > 1 then buf[#buf + 1] = "," end
          enc(v[i], buf)
        end
        buf[#buf + 1] = "]"
      else
        local ks = {}
        for k in pairs(v) do ks[#ks + 1] = tostring(k) end
        sort(ks)
        buf[#buf + 1] = "{"
        for i, k in ipairs(ks) do
          local x = v[k]
          if x == nil then x = v[tonumber(k)] end
          buf[#buf + 1] = (i > 1 and "," or "") .. quote(k) .. ":"
          enc(x, buf)
        end
        buf[#buf + 1] = "}"
      end
    end
  end
end

local function json (v)
  local buf = {}
  enc(v, buf)
  return concat(buf)
end

-- ---------------------------------------------------------------------------
-- Small helpers
-- ---------------------------------------------------------------------------

-- FNV-1a over at most 8 KiB (head and tail) so a 64 MiB prompt stays cheap.
local function fnv (s)
  if #s > 8192 then s = sub(s, 1, 4096) .. #s .. sub(s, -4096) end
  local h = 2166136261
  for i = 1, #s do h = ((h ~ byte(s, i)) * 16777619) & 0xffffffff end
  return h
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64 (s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = byte(s, i, i + 2)
    local n = (a << 16) | ((b or 0) << 8) | (c or 0)
    out[#out + 1] = char(byte(B64, (n >> 18) + 1), byte(B64, ((n >> 12) & 63) + 1),
      b and byte(B64, ((n >> 6) & 63) + 1) or 61, c and byte(B64, (n & 63) + 1) or 61)
  end
  return concat(out)
end

local function http_date (t) return os.date("!%a, %d %b %Y %H:%M:%S GMT", t) end

local function words (s) return select(2, gsub(s, "%S+", "")) end

local function trim (s) return match(s, "^%s*(.-)%s*$") end

local function url_decode (s)
  return (gsub(gsub(s, "+", " "), "%%(%x%x)", function (h) return char(tonumber(h, 16)) end))
end

-- Unique ids: a random per-process prefix and a counter.
local id_prefix do
  local ok, rnd = pcall(uv.random, 6, {})
  if not ok or type(rnd) ~= "string" then rnd = spack("<I6", (uv.hrtime() ~ uv.os_getpid()) & 0xffffffffffff) end
  id_prefix = gsub(rnd, ".", function (c) return format("%02x", byte(c)) end)
end
local id_counter = 0
local function uid ()
  id_counter = id_counter + 1
  return format("%s%08x", id_prefix, id_counter)
end

-- Tokens: words with their leading whitespace; trailing whitespace is a last
-- token, so that concat(tokens) == text always.
local function tokenize (text)
  local toks, pos, n = {}, 1, #text
  while pos <= n do
    local s, e = find(text, "^%s*%S+", pos)
    if not s then toks[#toks + 1] = sub(text, pos); break end
    toks[#toks + 1] = sub(text, s, e)
    pos = e + 1
  end
  return toks
end

-- Split a string into pieces of at most `size` bytes, never inside a UTF-8 sequence.
local function pieces (s, size)
  local out, pos, n = {}, 1, #s
  while pos <= n do
    local e = pos + size - 1
    if e < n then
      local back = e
      while back > pos and (byte(s, back + 1) & 0xC0) == 0x80 do back = back - 1 end
      e = back
    end
    out[#out + 1] = sub(s, pos, e)
    pos = e + 1
  end
  return out
end

-- The last few big strings made, by key: a storm of `body=huge` requests
-- costs one string, not one each.
local big_cache, big_order = {}, {}
local function cached (key, make)
  local s = big_cache[key]
  if s then return s end
  s = make()
  big_order[#big_order + 1] = key
  big_cache[key] = s
  if #big_order > 6 then big_cache[table.remove(big_order, 1)] = nil end
  return s
end

-- n bytes of "lorem ipsum ": the body of the size faults.
local function filler (n)
  local unit = "lorem ipsum "
  if n < 4096 then return sub(rep(unit, n // #unit + 1), 1, n) end
  return cached(n, function () return sub(rep(unit, n // #unit + 1), 1, n) end)
end

-- The filler as a JSON string (it needs no escapes): skips scanning megabytes.
local function filler_json (n)
  return RAW(cached("json" .. n, function () return '"' .. filler(n) .. '"' end))
end

local function float32 (x) return (sunpack("<f", spack("<f", x))) end

-- ---------------------------------------------------------------------------
-- Replies: judge, rules, generic; structured output; tools; logprobs
-- ---------------------------------------------------------------------------

local function content_text (c)
  if type(c) == "string" then return c end
  if type(c) ~= "table" then return "" end
  local parts = {}
  for _, p in ipairs(c) do
    if type(p) == "string" then parts[#parts + 1] = p
    elseif type(p) == "table" and type(p.text) == "string" then parts[#parts + 1] = p.text end
  end
  return concat(parts, " ")
end

local function count_images (c)
  local n = 0
  if type(c) == "table" then
    for _, p in ipairs(c) do
      if type(p) == "table" and (p.type == "image_url" or p.image_url ~= nil) then n = n + 1 end
    end
  end
  return n
end

local function gmatch_lines (s) return string.gmatch(s .. "\n", "([^\n]-)\r?\n") end

-- `Candidate N:` judging; nil when the message is not a judge prompt.
local function judge (text)
  local lt = lower(text)
  if find(lt, "best candidate", 1, true) then
    local cands, cur = {}, nil
    for line in gmatch_lines(text) do
      local n, rest = match(line, "^%s*[Cc]andidate%s+(%d+)%s*:(.*)$")
      if n then
        cur = { n = tonumber(n), text = rest }
        cands[#cands + 1] = cur
      elseif cur then
        cur.text = cur.text .. "\n" .. line
      end
    end
    if #cands > 0 then
      local best
      for _, c in ipairs(cands) do
        local w = words(c.text)
        if not best or w > best.w or (w == best.w and c.n < best.n) then best = { n = c.n, w = w } end
      end
      return tostring(best.n)
    end
  end
  if find(lt, "score the candidate", 1, true) then
    local s = find(text, "Candidate:", 1, true)
    local rest
    if s then rest = sub(text, s + #"Candidate:")
    else
      local _, e = find(text, "[Cc]andidate%s*%d*%s*:")
      rest = e and sub(text, e + 1) or ""
    end
    return tostring(math.min(10, words(rest) // 10 + 1))
  end
  return nil
end

-- `Categories: a, b, c` classification; nil when the message is not one.
local function classify (text)
  local list
  for line in gmatch_lines(text) do
    local l = match(line, "^%s*[Cc]ategories%s*:%s*(.-)%s*$")
    if l then list = l end
  end
  if not list or list == "" then return nil end
  local cats = {}
  for c in string.gmatch(list, "[^,]+") do
    c = trim(c)
    if c ~= "" then cats[#cats + 1] = c end
  end
  if #cats == 0 then return nil end
  local input = match(text, "[Ii]nput%s*:%s*(.*)$")
  if not input then
    input = gsub(text, "[^\n]*[Cc]ategories%s*:[^\n]*", "")
  end
  input = lower(input)
  local best, at
  for _, c in ipairs(cats) do
    local stem = lower(gsub(c, "[_%-]", " "))
    local forms = { stem }
    if sub(stem, -1) == "s" and #stem > 1 then forms[2] = sub(stem, 1, -2) end
    for _, f in ipairs(forms) do
      local pos = find(input, "%f[%w]" .. gsub(f, "%p", "%%%0") .. "%f[%W]")
      if pos and (not at or pos < at) then best, at = c, pos end
    end
  end
  return best or cats[#cats]
end

local COUNTRIES = {
  france = { "France", "Paris" }, germany = { "Germany", "Berlin" }, italy = { "Italy", "Rome" },
  spain = { "Spain", "Madrid" }, japan = { "Japan", "Tokyo" }, portugal = { "Portugal", "Lisbon" },
  canada = { "Canada", "Ottawa" }, australia = { "Australia", "Canberra" }, england = { "England", "London" },
  china = { "China", "Beijing" }, india = { "India", "New Delhi" }, brazil = { "Brazil", "Brasília" },
  egypt = { "Egypt", "Cairo" }, mexico = { "Mexico", "Mexico City" }, norway = { "Norway", "Oslo" },
}

local STORY = "Once upon a time, in a quiet workshop at the edge of the city, there lived a robot named %s. "
  .. "%s had been built to sort screws and bolts, but every evening it watched the sunset through a dusty "
  .. "window and wondered how the sky could hold so many colors. One day it found an old box of paints left "
  .. "behind by the workshop's owner. Its first attempts were clumsy: straight lines, perfect circles, and "
  .. "nothing that felt alive. So %s began to study the world instead of measuring it. It noticed how "
  .. "shadows softened in the afternoon, how rain blurred the streetlights, and how people smiled at things "
  .. "that were not perfect at all. Slowly its brushstrokes loosened. Months later, %s painted the sunset it "
  .. "had watched for so long, and for the first time the owner stopped, smiled, and hung the painting by the "
  .. "window. %s had learned that art is not about precision, but about paying attention."

local function three (a, b, c) return { a, b, c } end

-- Each rule: function(text, lower_text) -> list of variants (or nil).
local RULES = {
  function (t)
    local x = match(t, "^%s*[Rr]epeat after me:%s*(.-)%s*$") or match(t, "^%s*[Ee]cho:%s*(.-)%s*$")
    if x then return { x } end
  end,
  function (_, l)
    local c = match(l, "capital of ([%a ]-)%s*[%?%.!]*%s*$") or match(l, "capital of (%a+)")
    if c then
      c = gsub(gsub(c, "^the ", ""), "%s+$", "")
      local e = COUNTRIES[c] or (c == "the united kingdom" or c == "united kingdom" or c == "uk")
        and { "the United Kingdom", "London" }
      if e then
        return three(format("The capital of %s is %s.", e[1], e[2]), format("%s is the capital of %s.", e[2], e[1]),
          format("%s's capital city is %s.", e[1], e[2]))
      end
      return three("I'm not sure about that capital, but an atlas or encyclopedia will have it.",
        "I don't know that one offhand; a quick look at an atlas would settle it.",
        "That capital isn't in my notes, I'm afraid.")
    end
  end,
  function (_, l)
    if find(l, "story", 1, true) and find(l, "robot", 1, true) then
      local out = {}
      for i, name in ipairs { "Pixel", "Rusty", "Nova" } do out[i] = format(STORY, name, name, name, name, name) end
      -- Three lengths, so that judges that count words have a choice.
      out[2] = out[2] .. " Rusty still paints every evening, and the little workshop has never looked so bright."
      out[3] = gsub(out[3], " It noticed how shadows.- at all%.", "")
      return out
    end
  end,
  function (_, l)
    local a, op, b = match(l, "(%-?%d+%.?%d*)%s*([%+%-%*/x])%s*(%-?%d+%.?%d*)")
    if a and (find(l, "what", 1, true) or find(l, "calculate", 1, true) or find(l, "^[%s%d%.%+%-%*/x=?]+$")) then
      local x, y = tonumber(a), tonumber(b)
      local r
      if op == "+" then r = x + y elseif op == "-" then r = x - y
      elseif op == "/" then r = y ~= 0 and x / y or nil else r = x * y end
      if not r then return { "Division by zero is undefined." } end
      local rs = num(r)
      return three(format("%s %s %s = %s.", a, op == "x" and "*" or op, b, rs), format("The answer is %s.", rs),
        format("That comes to %s.", rs))
    end
  end,
  function (_, l)
    if find(l, "joke", 1, true) then
      return three("Why did the robot go on vacation? It needed to recharge its batteries.",
        "I told my computer I needed a break, and it said: no problem, I'll go to sleep.",
        "Why do programmers prefer dark mode? Because light attracts bugs.")
    end
  end,
  function (_, l)
    if find(l, "how are you", 1, true) then
      return three("I'm doing well, thank you for asking! How can I help you today?",
        "All systems running smoothly, thanks! What can I do for you?",
        "I'm great, thanks. What would you like to talk about?")
    end
  end,
  function (_, l)
    if find(l, "your name", 1, true) or find(l, "who are you", 1, true) then
      return three("I'm aigc-dev, a local test model that speaks the OpenAI API.",
        "My name is aigc-dev; I run on your machine for demos and tests.",
        "I'm aigc-dev, a small deterministic assistant for development.")
    end
  end,
  function (_, l)
    if find(l, "weather", 1, true) then
      return three("I can't check live weather, but it's always sunny on localhost.",
        "No live data here, I'm afraid; a weather service will know better than me.",
        "I don't have weather data, but a light jacket is rarely a bad idea.")
    end
  end,
  function (_, l)
    if find(l, "refund", 1, true) then
      return three("I'm sorry about the trouble. Please share your order number and I'll start the refund; it "
          .. "usually arrives within 5 business days.",
        "I can help with that refund. Once I have your order number, the money goes back to your original "
          .. "payment method within 5 business days.",
        "Sorry to hear that. Refunds take up to 5 business days once approved; could you send me the order number?")
    end
  end,
  function (_, l)
    if find(l, "where is my", 1, true) or find(l, "track", 1, true) or find(l, "order status", 1, true) then
      return three("Your order has shipped and should arrive within 2 to 3 business days. You can follow it "
          .. "with the tracking link in your confirmation email.",
        "I checked: the package is on its way and the tracking link in your email shows its progress.",
        "Good news: the order left our warehouse. Delivery usually takes 2 to 3 business days.")
    end
  end,
  function (_, l)
    if find(l, "password", 1, true) or find(l, "log in", 1, true) or find(l, "login", 1, true) then
      return three("To reset your password, click \"Forgot password\" on the sign-in page and follow the link "
          .. "we email you.",
        "No problem: use \"Forgot password\" on the login page and you'll get a reset link by email within "
          .. "a few minutes.",
        "You can set a new password from the sign-in page; the reset link we send is valid for one hour.")
    end
  end,
  function (_, l)
    if find(l, "cancel", 1, true) or find(l, "unsubscribe", 1, true) then
      return three("I can cancel that for you. The cancellation takes effect at the end of the current billing "
          .. "period.",
        "Your subscription can be cancelled under Account, Billing; you keep access until the period ends.",
        "Done deal: once cancelled, you won't be charged again and your access lasts until the end of the "
          .. "period.")
    end
  end,
  function (_, l)
    if find(l, "shipping", 1, true) or find(l, "delivery", 1, true) then
      return three("Standard shipping takes 3 to 5 business days; express arrives in 1 to 2.",
        "We ship within 24 hours; standard delivery then takes 3 to 5 business days.",
        "Delivery usually takes 3 to 5 business days, or 1 to 2 with express shipping.")
    end
  end,
  function (_, l)
    if find(l, "broken", 1, true) or find(l, "damaged", 1, true) or find(l, "complain", 1, true) then
      return three("I'm really sorry about that. I'll send a replacement right away, free of charge.",
        "That shouldn't happen. Please send a photo of the item and we'll replace it or refund you.",
        "Apologies for the trouble! A replacement is on its way, and you can keep the damaged one.")
    end
  end,
  function (_, l)
    if find(l, "opening hours", 1, true) or find(l, "open on", 1, true) or find(l, "what time do you", 1, true) then
      return three("We're open Monday to Friday, 9am to 6pm, and Saturday 10am to 4pm.",
        "Our hours are 9am to 6pm on weekdays and 10am to 4pm on Saturdays.",
        "You can reach us weekdays from 9 to 6 and Saturdays from 10 to 4.")
    end
  end,
  function (_, l)
    if find(l, "thank", 1, true) then
      return three("You're welcome! Anything else I can help with?", "Happy to help!",
        "My pleasure. Let me know if there's anything else.")
    end
  end,
  function (_, l)
    if find(l, "^%s*bye") or find(l, "goodbye", 1, true) or find(l, "see you", 1, true) then
      return three("Goodbye! Have a great day.", "See you soon!", "Bye for now, take care!")
    end
  end,
  function (_, l)
    if find(l, "^%s*hello") or find(l, "^%s*hi%f[%W]") or find(l, "^%s*hey%f[%W]") or find(l, "^%s*good morning") then
      return three("Hello! How can I help you today?", "Hi there! What can I do for you?",
        "Hello! What would you like to talk about?")
    end
  end,
}

local function short_quote (text)
  local q = trim(gsub(text, "%s+", " "))
  if #q > 60 then
    local cut = match(sub(q, 1, 60), "^(.*%S)%s") or sub(q, 1, 60)
    q = cut .. "..."
  end
  return q
end

local function generic (ctx)
  local q = short_quote(ctx.last_text)
  if q == "" then
    return three("Hello! How can I help you today?", "Hi! What would you like to talk about?",
      "Hello! Ask me anything.")
  end
  if ctx.turn <= 1 then
    return three(
      format("You asked: \"%s\". Here is a short answer: it depends on the details, but I'm happy to help.", q),
      format("Thanks for your message about \"%s\". Let me think: I would start with the basics.", q),
      format("I understand you said \"%s\". That's an interesting point; could you tell me a bit more?", q))
  end
  return three(
    format("Following up on \"%s\" (turn %d): that builds nicely on what we discussed so far.", q, ctx.turn),
    format("Good point about \"%s\". At turn %d, I'd suggest we take it one step at a time.", q, ctx.turn),
    format("Noted: \"%s\". This is turn %d of our chat, and we can keep exploring it together.", q, ctx.turn))
end

local function pick (ctx, variants)
  if #variants == 1 or ctx.temperature == 0 or (ctx.seed == nil and ctx.index == 0) then return variants[1] end
  local key = concat({ ctx.model, tostring(ctx.seed), ctx.index, ctx.turn, ctx.last_text }, "\0")
  return variants[fnv(key) % #variants + 1]
end

-- The reply text for a conversation context (also used inside structured output).
local function reply_text (ctx)
  if ctx.tool_results then return "Here is what I found: " .. concat(ctx.tool_results, "; ") end
  local j = judge(ctx.last_text) or classify(ctx.last_text)
  if j then return j end
  local l = lower(ctx.last_text)
  local text
  for _, rule in ipairs(RULES) do
    local v = rule(ctx.last_text, l)
    if v then text = pick(ctx, v); break end
  end
  text = text or pick(ctx, generic(ctx))
  if ctx.images > 0 then
    text = text .. format(" (I received %d image%s.)", ctx.images, ctx.images == 1 and "" or "s")
  end
  return text
end

-- The context of a chat request: last user text, turn number, trailing tool results.
local function conversation (model, messages, seed, temperature)
  local ctx = { model = model, seed = seed, temperature = temperature, index = 0, turn = 0,
                last_text = "", images = 0 }
  for _, m in ipairs(messages) do
    if m.role == "user" then
      ctx.turn = ctx.turn + 1
      ctx.last_text = content_text(m.content)
      ctx.images = count_images(m.content)
    end
  end
  local last = messages[#messages]
  if last.role == "tool" then
    local results, i = {}, #messages
    while i >= 1 and messages[i].role == "tool" do
      table.insert(results, 1, content_text(messages[i].content)); i = i - 1
    end
    ctx.tool_results = results
  end
  return ctx
end

-- Deterministic valid instance of a JSON schema (see header for the rules).
local STRING_FORMATS = { ["date-time"] = "2024-01-01T00:00:00Z", date = "2024-01-01", time = "12:00:00",
  email = "user@example.com", uri = "https://example.com/", uuid = "00000000-0000-4000-8000-000000000000" }
local TEXT_NAMES = { say = true, text = true, answer = true, reply = true, message = true, content = true }
local NAMED = { city = "Paris", location = "Paris", name = "Ada", country = "France", language = "en" }

local function resolve (schema, root, depth)
  while type(schema) == "table" and type(schema["$ref"]) == "string" and depth < 32 do
    local ref = schema["$ref"]
    local node = root
    if ref ~= "#" then
      for part in string.gmatch(match(ref, "^#/(.*)$") or "", "[^/]+") do
        part = gsub(gsub(part, "~1", "/"), "~0", "~")
        node = type(node) == "table" and node[part] or nil
      end
    end
    schema = node
    depth = depth + 1
  end
  return schema
end

-- An enum value: the first named in the last user message, else one chosen
-- by the seed, else the first.
local function pick_enum (values, name, ctx)
  local text = ctx and lower(ctx.last_text or "") or ""
  for _, v in ipairs(values) do
    local words_of_v = type(v) == "string" and gsub(gsub(lower(v), "[_%-]+", " "), "%p", "%%%0") or ""
    if words_of_v ~= "" and find(text, "%f[%w]" .. gsub(words_of_v, " ", "[%%s_%%-]+") .. "%f[%W]") then
      return v
    end
  end
  if ctx and ctx.seed ~= nil then
    return values[fnv(concat({ tostring(ctx.seed), tostring(name), tostring(ctx.index), tostring(ctx.turn) }, "\0"))
      % #values + 1]
  end
  return values[1]
end

-- The first word of the message that has a digit, without punctuation around it.
local function id_word (text)
  for w in string.gmatch(text or "", "%S+") do
    if find(w, "%d") then
      w = gsub(gsub(w, "^[^%w]+", ""), "[^%w]+$", "")
      if w ~= "" then return w end
    end
  end
  return nil
end

local function instance (schema, root, name, ctx, depth)
  depth = depth or 0
  schema = resolve(schema, root, depth)
  if type(schema) ~= "table" or depth > 24 then return NULL end
  if schema.const ~= nil then return schema.const end
  if type(schema.enum) == "table" and schema.enum[1] ~= nil then return pick_enum(schema.enum, name, ctx) end
  local alt = schema.anyOf or schema.oneOf or schema.allOf
  if type(alt) == "table" and alt[1] ~= nil then return instance(alt[1], root, name, ctx, depth + 1) end
  local ty = schema.type
  if type(ty) == "table" then
    local first
    for _, t in ipairs(ty) do if t ~= "null" then first = t; break end end
    ty = first or "null"
  end
  if ty == nil then
    ty = schema.properties and "object" or schema.items and "array" or "string"
  end
  if ty == "object" then
    local obj = O()
    local props = type(schema.properties) == "table" and schema.properties or {}
    local order, seen = {}, {}
    if type(schema.required) == "table" then
      for _, k in ipairs(schema.required) do
        if type(k) == "string" and props[k] ~= nil and not seen[k] then order[#order + 1] = k; seen[k] = true end
      end
    end
    local rest = {}
    for k in pairs(props) do if not seen[k] then rest[#rest + 1] = k end end
    sort(rest)
    for _, k in ipairs(rest) do order[#order + 1] = k end
    for _, k in ipairs(order) do oset(obj, k, instance(props[k], root, k, ctx, depth + 1)) end
    if #order == 0 and type(schema.additionalProperties) == "table" then
      oset(obj, "key", instance(schema.additionalProperties, root, "key", ctx, depth + 1))
    end
    return obj
  elseif ty == "array" then
    local n = math.max(tointeger(schema.minItems) or 1, 1)
    if tointeger(schema.maxItems) then n = math.min(n, tointeger(schema.maxItems)) end
    local arr = A()
    for i = 1, n do arr[i] = instance(schema.items or {}, root, name, ctx, depth + 1) end
    return arr
  elseif ty == "string" then
    local s
    if name and TEXT_NAMES[lower(name)] then s = reply_text(ctx)
    elseif ctx and ctx.derive and name and (find(lower(name), "id$") or find(lower(name), "number$")
        or find(lower(name), "code$")) and id_word(ctx.last_text) then
      s = id_word(ctx.last_text)
    elseif STRING_FORMATS[schema.format] then s = STRING_FORMATS[schema.format]
    elseif name and NAMED[lower(name)] then s = NAMED[lower(name)]
    else s = "sample " .. (name or "text") end
    local minl, maxl = tointeger(schema.minLength), tointeger(schema.maxLength)
    if minl and #s < minl then s = s .. rep("x", minl - #s) end
    if maxl and #s > maxl then s = sub(s, 1, maxl) end
    return s
  elseif ty == "number" or ty == "integer" then
    local v = ty == "integer" and 1 or 0.5
    local lo, hi = tonumber(schema.minimum), tonumber(schema.maximum)
    local xlo, xhi = tonumber(schema.exclusiveMinimum), tonumber(schema.exclusiveMaximum)
    if lo and v < lo then v = lo end
    if xlo and v <= xlo then v = xlo + (ty == "integer" and 1 or 0.5) end
    if hi and v > hi then v = hi end
    if xhi and v >= xhi then v = xhi - (ty == "integer" and 1 or 0.5) end
    if ty == "integer" then v = tointeger(floor(v)) or 1 end
    return v
  elseif ty == "boolean" then return true
  end
  return NULL
end

-- The `schema=violate` fault: break an instance of `schema` (see the header).
local function violate (v, schema, root, depth)
  depth = depth or 0
  schema = resolve(schema, root, depth)
  if type(schema) ~= "table" or depth > 24 then schema = {} end
  local t = type(v)
  if t == "string" then return 42
  elseif t == "number" then return "NaN"
  elseif t == "boolean" then return "yes"
  elseif t == "table" and getmetatable(v) == ARRAY then
    for i = 1, #v do v[i] = violate(v[i], schema.items or {}, root, depth + 1) end
  elseif t == "table" and v[KEYS] then
    local props = type(schema.properties) == "table" and schema.properties or {}
    local keys = {}
    for i, k in ipairs(v[KEYS]) do keys[i] = k end
    for _, k in ipairs(keys) do v[k] = violate(v[k], props[k] or {}, root, depth + 1) end
    local first = type(schema.required) == "table" and schema.required[1]
    if first ~= nil and v[first] ~= nil then odel(v, first) end
    if schema.additionalProperties == false then oset(v, "unexpected", true) end
  end
  return v
end

-- The schema a message gives after the words `JSON schema:` (json_object mode).
local function schema_in_messages (msgs)
  local found
  for _, m in ipairs(msgs) do
    local text = content_text(m.content)
    local _, e = find(text, "JSON schema:", 1, true)
    if e then
      local open = find(text, "{", e + 1, true)
      local v = open and cjson.decode(sub(text, open))
      if type(v) == "table" then found = v end
    end
  end
  return found
end

-- Tool calls named in `text`: { {name =, arguments =} ... } in order of appearance.
local function matching_paren (text, open)
  local depth, i, n, instr = 0, open, #text, false
  while i <= n do
    local c = sub(text, i, i)
    if instr then
      if c == "\\" then i = i + 1 elseif c == '"' then instr = false end
    elseif c == '"' then instr = true
    elseif c == "(" then depth = depth + 1
    elseif c == ")" then depth = depth - 1; if depth == 0 then return i end
    end
    i = i + 1
  end
  depth = 0 -- unbalanced quotes: count parentheses only
  for k = open, n do
    local c = sub(text, k, k)
    if c == "(" then depth = depth + 1 elseif c == ")" then depth = depth - 1; if depth == 0 then return k end end
  end
  return n + 1
end

local function minimal_args (tool, ctx)
  if ctx then ctx.derive = true end
  local args = json(instance(tool.parameters or { type = "object" }, tool.parameters, nil, ctx))
  if ctx then ctx.derive = nil end
  return args
end

local function find_calls (text, tools)
  local found = {}
  local taken = {}
  for _, tool in ipairs(tools) do
    local pat = "%f[%w_%-]" .. gsub(tool.name, "%p", "%%%0") .. "%f[^%w_%-]"
    local pos = 1
    while true do
      local s, e = find(text, pat, pos)
      if not s then break end
      local args
      if sub(text, e + 1, e + 1) == "(" then
        local close = matching_paren(text, e + 1)
        args = sub(text, e + 2, close - 1)
        pos = close + 1
      else
        args = minimal_args(tool, tool.ctx)
        pos = e + 1
      end
      found[#found + 1] = { pos = s, name = tool.name, arguments = args }
      taken[#taken + 1] = { s, pos - 1 }
    end
  end
  -- Names written as words ("track order" for track_order), once per tool.
  local ltext = lower(text)
  for _, tool in ipairs(tools) do
    local words_of_name = trim(gsub(lower(tool.name), "[_%-]+", " "))
    if find(words_of_name, " ", 1, true) or words_of_name ~= lower(tool.name) then
      local pat = "%f[%w]" .. gsub(gsub(words_of_name, "%p", "%%%0"), " ", "[%%s_%%-]+") .. "%f[%W]"
      local s, e = find(ltext, pat)
      local overlaps = false
      for _, r in ipairs(taken) do if s and s <= r[2] and e >= r[1] then overlaps = true end end
      local already = false
      for _, f in ipairs(found) do if f.name == tool.name then already = true end end
      if s and not overlaps and not already then
        found[#found + 1] = { pos = s, name = tool.name, arguments = minimal_args(tool, tool.ctx) }
      end
    end
  end
  sort(found, function (a, b) return a.pos < b.pos end)
  return found
end

local function plan_calls (ctx, body, tools)
  if not tools or #tools == 0 or ctx.tool_results then return nil end
  local tc = body.tool_choice
  if tc == "none" then return nil end
  for _, t in ipairs(tools) do t.ctx = ctx end
  local calls = find_calls(ctx.last_text, tools)
  local forced = type(tc) == "table" and type(tc["function"]) == "table" and tc["function"].name
  local function minimal (t)
    return { name = t.name, arguments = minimal_args(t, ctx) }
  end
  if forced then
    local only = {}
    for _, c in ipairs(calls) do if c.name == forced then only[#only + 1] = c end end
    if #only == 0 then
      local tool
      for _, t in ipairs(tools) do if t.name == forced then tool = t end end
      only[1] = minimal(tool or { name = forced })
    end
    calls = only
  elseif tc == "required" and #calls == 0 then
    calls[1] = minimal(tools[1])
  end
  if #calls == 0 then return nil end
  if body.parallel_tool_calls == false then calls = { calls[1] } end
  for _, c in ipairs(calls) do c.id = "call_" .. uid(); c.pieces = pieces(c.arguments, 8) end
  return calls
end

-- Deterministic logprobs.
local ALTERNATIVES = { " the", " a", " and", " of", " to", ",", ".", " is", " in", " it", " that", " I" }

local function logprob (tok, pos) return -((fnv(tok .. "\0" .. pos) % 20000) / 10000) end

local function bytes_of (s)
  local t = A()
  for i = 1, #s do t[i] = byte(s, i) end
  return t
end

local function alternatives (tok, pos, k)
  local lp = logprob(tok, pos)
  local out = { { tok, lp } }
  local h, j = fnv(tok .. pos), 0
  while #out < k do
    local alt = ALTERNATIVES[(h + j) % #ALTERNATIVES + 1]
    j = j + 1
    if alt ~= tok then out[#out + 1] = { alt, floor((lp - 1.25 * #out) * 10000 + 0.5) / 10000 } end
  end
  return out
end

local function chat_logprob (tok, pos, k)
  local top = A()
  if k > 0 then
    for i, a in ipairs(alternatives(tok, pos, k)) do
      top[i] = O("token", a[1], "logprob", a[2], "bytes", bytes_of(a[1]))
    end
  end
  return O("token", tok, "logprob", logprob(tok, pos), "bytes", bytes_of(tok), "top_logprobs", top)
end

local function completion_logprobs (toks, first_pos, offset, k, nulls)
  local lp = O("tokens", A(), "token_logprobs", A(), "top_logprobs", k > 0 and A() or NULL, "text_offset", A())
  for i, tok in ipairs(toks) do
    local pos = first_pos + i - 1
    lp.tokens[i] = tok
    lp.text_offset[i] = offset
    offset = offset + #tok
    if nulls and i == 1 then
      lp.token_logprobs[i] = NULL
      if k > 0 then lp.top_logprobs[i] = NULL end
    else
      lp.token_logprobs[i] = logprob(tok, pos)
      if k > 0 then
        local o = O()
        for _, a in ipairs(alternatives(tok, pos, k)) do oset(o, a[1], a[2]) end
        lp.top_logprobs[i] = o
      end
    end
  end
  return lp
end

-- Apply `stop` then the token limit; returns the tokens and the finish reason.
local function limit (text, stops, max_tokens)
  local finish = "stop"
  if stops then
    local cut
    for _, s in ipairs(stops) do
      local p = s ~= "" and find(text, s, 1, true)
      if p and (not cut or p < cut) then cut = p end
    end
    if cut then text = sub(text, 1, cut - 1) end
  end
  local toks = tokenize(text)
  if max_tokens and #toks > max_tokens then
    for i = #toks, max_tokens + 1, -1 do toks[i] = nil end
    finish = "length"
  end
  return toks, finish
end

-- ---------------------------------------------------------------------------
-- Errors and validation
-- ---------------------------------------------------------------------------

local REASONS = {
  [100] = "Continue", [200] = "OK", [201] = "Created", [202] = "Accepted", [204] = "No Content",
  [301] = "Moved Permanently", [302] = "Found", [304] = "Not Modified", [307] = "Temporary Redirect",
  [400] = "Bad Request", [401] = "Unauthorized", [402] = "Payment Required", [403] = "Forbidden",
  [404] = "Not Found", [405] = "Method Not Allowed", [408] = "Request Timeout", [409] = "Conflict",
  [410] = "Gone", [413] = "Payload Too Large", [415] = "Unsupported Media Type",
  [422] = "Unprocessable Entity", [429] = "Too Many Requests", [431] = "Request Header Fields Too Large",
  [500] = "Internal Server Error", [501] = "Not Implemented", [502] = "Bad Gateway",
  [503] = "Service Unavailable", [504] = "Gateway Timeout", [505] = "HTTP Version Not Supported",
}

local STATUS_ERRORS = {
  [400] = { "invalid_request_error", NULL, "The request was malformed." },
  [401] = { "invalid_request_error", "invalid_api_key", "Incorrect API key provided." },
  [403] = { "invalid_request_error", "permission_denied", "You are not allowed to access this resource." },
  [404] = { "invalid_request_error", "model_not_found", "The model does not exist or you do not have access to it." },
  [408] = { "invalid_request_error", "request_timeout", "The request timed out." },
  [409] = { "invalid_request_error", "conflict", "The request conflicts with another request." },
  [413] = { "invalid_request_error", "request_too_large", "The request body is too large." },
  [422] = { "invalid_request_error", "unprocessable_entity", "The request could not be processed." },
  [429] = { "requests", "rate_limit_exceeded",
            "Rate limit reached for aigc-dev on requests per min (RPM): Limit 10000, Used 10000, Requested 1. "
            .. "Please try again in 1s." },
  [500] = { "server_error", NULL, "The server had an error while processing your request. Sorry about that!" },
  [502] = { "server_error", NULL, "Bad gateway." },
  [503] = { "server_error", NULL, "The engine is currently overloaded, please try again later." },
  [504] = { "server_error", NULL, "The server timed out while processing your request." },
}

local function error_resp (status, message, etype, param, code, extra)
  local r = {
    status = status, ctype = "application/json",
    body = json(O("error", O("message", message, "type", etype or "invalid_request_error",
      "param", param or NULL, "code", code or NULL))),
    headers = extra or {},
  }
  return r
end

local function status_error (status, extra)
  local e = STATUS_ERRORS[status] or { status >= 500 and "server_error" or "invalid_request_error", NULL,
    REASONS[status] or "Error" }
  return error_resp(status, e[3], e[1], nil, e[2], extra)
end

local function bad_param (param, message, code)
  return error_resp(400, message, "invalid_request_error", param, code)
end

local function isnull (v) return v == nil or v == NULL end

local function opt_int (body, key, lo, hi)
  local v = body[key]
  if isnull(v) then return nil end
  local i = type(v) == "number" and tointeger(v)
  if not i then
    return nil, bad_param(key, format("Invalid type for '%s': expected an integer.", key), "invalid_type")
  end
  if (lo and i < lo) or (hi and i > hi) then
    return nil, bad_param(key, format("Invalid '%s': integer out of range (%s..%s), got %d.", key,
      tostring(lo or "-inf"), tostring(hi or "inf"), i), "integer_out_of_range")
  end
  return i
end

local function opt_num (body, key, lo, hi, default)
  local v = body[key]
  if isnull(v) then return default end
  if type(v) ~= "number" or v ~= v then
    return nil, bad_param(key, format("Invalid type for '%s': expected a number.", key), "invalid_type")
  end
  if v < lo then
    return nil, bad_param(key, format("%.14g is less than the minimum of %s - '%s'", v, num(lo), key),
      "decimal_below_min_value")
  elseif v > hi then
    return nil, bad_param(key, format("%.14g is greater than the maximum of %s - '%s'", v, num(hi), key),
      "decimal_above_max_value")
  end
  return v
end

local function opt_stop (body)
  local s = body.stop
  if isnull(s) then return nil end
  if type(s) == "string" then return { s } end
  if type(s) == "table" and #s <= 4 then
    for _, x in ipairs(s) do if type(x) ~= "string" then s = nil; break end end
    if s then return s end
  end
  return nil, bad_param("stop", "Invalid 'stop': expected a string or an array of at most 4 strings.", "invalid_type")
end

local ROLES = { developer = true, system = true, user = true, assistant = true, tool = true, ["function"] = true }

local function check_messages (msgs)
  if isnull(msgs) then
    return bad_param("messages", "Missing required parameter: 'messages'.", "missing_required_parameter")
  end
  if type(msgs) ~= "table" or (#msgs == 0 and next(msgs) ~= nil) then
    return bad_param("messages", "Invalid type for 'messages': expected an array of objects.", "invalid_type")
  end
  if #msgs == 0 then
    return bad_param("messages", "Invalid 'messages': empty array. Expected an array with minimum length 1, "
      .. "but got an empty array instead.", "empty_array")
  end
  for i, m in ipairs(msgs) do
    if type(m) ~= "table" or type(m.role) ~= "string" or not ROLES[m.role] then
      return bad_param("messages", format("Invalid value for 'messages[%d]': expected an object with a valid "
        .. "'role' (developer, system, user, assistant, tool).", i - 1), "invalid_value")
    end
  end
end

local function check_tools (tools)
  if isnull(tools) then return nil end
  if type(tools) ~= "table" then
    return nil, bad_param("tools", "Invalid type for 'tools': expected an array.", "invalid_type")
  end
  local out = {}
  for i, t in ipairs(tools) do
    local f = type(t) == "table" and t["function"]
    if type(f) ~= "table" or type(f.name) ~= "string" then
      return nil, bad_param("tools", format("Invalid value for 'tools[%d]': expected a function tool with a name.",
        i - 1), "invalid_value")
    end
    out[#out + 1] = { name = f.name, parameters = type(f.parameters) == "table" and f.parameters or nil }
  end
  return out
end

-- ---------------------------------------------------------------------------
-- Endpoints: each returns a response {status, ctype, body | events, headers}
-- ---------------------------------------------------------------------------

local function usage_obj (p, c) return O("prompt_tokens", p, "completion_tokens", c, "total_tokens", p + c) end

local function stream_opts (body)
  local so = body.stream_options
  return { include_usage = type(so) == "table" and so.include_usage == true }
end

local function round_robin (per)
  local out, k, more = {}, 1, true
  while more do
    more = false
    for _, list in ipairs(per) do
      if list[k] then out[#out + 1] = list[k]; more = true end
    end
    k = k + 1
  end
  return out
end

local function chat (body, model, fault)
  local err = check_messages(body.messages)
  if err then return err end
  local n, e1 = opt_int(body, "n", 1, 128)
  local mt, e2 = opt_int(body, "max_completion_tokens", 1)
  local mt2, e3 = opt_int(body, "max_tokens", 1)
  local temperature, e4 = opt_num(body, "temperature", 0, 2, 1)
  local _, e5 = opt_num(body, "top_p", 0, 1, 1)
  local stops, e6 = opt_stop(body)
  local top, e7 = opt_int(body, "top_logprobs", 0, 20)
  local tools, e8 = check_tools(body.tools)
  err = e1 or e2 or e3 or e4 or e5 or e6 or e7 or e8
  if err then return err end
  n, mt = n or 1, mt or mt2
  local want_lp = body.logprobs == true
  top = top or 0
  local rf = type(body.response_format) == "table" and body.response_format or nil
  if rf and rf.type == "json_schema" and fault["no-json-schema"] then
    return error_resp(400, "Invalid parameter: 'response_format' of type 'json_schema' is not supported with "
      .. "this model.", "invalid_request_error", "response_format", "unsupported_value")
  end
  local seed = body.seed
  if type(seed) == "number" then seed = tointeger(seed) or seed else seed = nil end
  local msgs = body.messages
  local ctx = conversation(model, msgs, seed, temperature)

  local prompt_tokens = 0
  for _, m in ipairs(msgs) do prompt_tokens = prompt_tokens + words(content_text(m.content)) + 4 end
  local completion_tokens = 0
  local choices = {}
  for i = 0, n - 1 do
    ctx.index = i
    local ch = { index = i }
    ch.calls = plan_calls(ctx, body, tools)
    if ch.calls then
      ch.finish = "tool_calls"
      for _, c in ipairs(ch.calls) do completion_tokens = completion_tokens + 1 + #c.pieces end
    else
      local text
      local schema
      if rf and rf.type == "json_schema" then
        local js = type(rf.json_schema) == "table" and rf.json_schema or {}
        schema = type(js.schema) == "table" and js.schema or { type = "object" }
      elseif rf and rf.type == "json_object" then
        schema = schema_in_messages(msgs)
      end
      if rf and fault.schema == "not-json" and (rf.type == "json_schema" or rf.type == "json_object") then
        text = "Sure! Here is the JSON you asked for."
      elseif schema then
        local v = instance(schema, schema, nil, ctx)
        if fault.schema == "violate" then v = violate(v, schema, schema) end
        text = json(v)
      elseif rf and rf.type == "json_object" then
        local v = O("reply", reply_text(ctx))
        if fault.schema == "violate" then v = O("reply", 42) end
        text = json(v)
      else
        text = reply_text(ctx)
      end
      if fault["echo-key"] then text = text .. " Your API key is " .. fault.echo_value .. "." end
      ch.tokens, ch.finish = limit(text, stops, mt)
      ch.content = concat(ch.tokens)
      completion_tokens = completion_tokens + #ch.tokens
      if want_lp then
        ch.lp = {}
        for p, tok in ipairs(ch.tokens) do ch.lp[p] = chat_logprob(tok, p, top) end
      end
    end
    if fault["tool-calls"] then -- a hostile reply: tool_calls holds a number
      ch.calls, ch.tokens, ch.content, ch.lp, ch.hostile, ch.finish = nil, {}, nil, nil, true, "tool_calls"
    end
    choices[#choices + 1] = ch
  end
  local usage = usage_obj(prompt_tokens, completion_tokens)
  local id, created = "chatcmpl-" .. uid(), os.time()
  local resp = { status = 200, headers = {}, tokens = prompt_tokens + completion_tokens }

  if body.stream ~= true or fault.body or fault["plain-for-stream"] then
    local out = A()
    for i, ch in ipairs(choices) do
      local calls = ch.hostile and RAW("[1]") or nil
      if ch.calls then
        calls = A()
        for k, c in ipairs(ch.calls) do
          calls[k] = O("id", c.id, "type", "function", "function", O("name", c.name, "arguments", c.arguments))
        end
      end
      out[i] = O("index", ch.index,
        "message", O("role", "assistant", "content", ch.content or NULL, "tool_calls", calls, "refusal", NULL),
        "logprobs", ch.lp and O("content", A(ch.lp), "refusal", NULL) or NULL,
        "finish_reason", ch.finish)
    end
    resp.object = O("id", id, "object", "chat.completion", "created", created, "model", model,
      "system_fingerprint", FINGERPRINT, "choices", out, "usage", usage)
    resp.kind = "chat"
    return resp
  end

  local so = stream_opts(body)
  local function chunk (choice_list)
    return O("id", id, "object", "chat.completion.chunk", "created", created, "model", model,
      "system_fingerprint", FINGERPRINT, "choices", A(choice_list), "usage", so.include_usage and NULL or nil)
  end
  local function cobj (index, delta, lp, finish)
    return O("index", index, "delta", delta, "logprobs", lp or NULL, "finish_reason", finish or NULL)
  end
  local per = {}
  for ci, ch in ipairs(choices) do
    local list = {}
    if ch.calls then
      for k, c in ipairs(ch.calls) do
        local head = A { O("index", k - 1, "id", c.id, "type", "function",
          "function", O("name", c.name, "arguments", "")) }
        list[#list + 1] = cobj(ch.index, k == 1
          and O("role", "assistant", "content", NULL, "tool_calls", head, "refusal", NULL)
          or O("tool_calls", head))
        for _, piece in ipairs(c.pieces) do
          local tc = fault["repeat-ids"]
            and O("index", k - 1, "id", c.id, "type", "function", "function", O("name", c.name, "arguments", piece))
            or O("index", k - 1, "function", O("arguments", piece))
          list[#list + 1] = cobj(ch.index, O("tool_calls", A { tc }))
        end
      end
    elseif ch.hostile then
      list[1] = cobj(ch.index, O("role", "assistant", "content", NULL, "refusal", NULL))
      list[2] = cobj(ch.index, O("tool_calls", RAW("[1]")))
    else
      list[1] = cobj(ch.index, O("role", "assistant", "content", "", "refusal", NULL))
      for p, tok in ipairs(ch.tokens) do
        list[#list + 1] = cobj(ch.index, O("content", tok), ch.lp and O("content", A { ch.lp[p] }, "refusal", NULL))
      end
      if fault["dup-key"] and ci == 1 and list[2] then -- the 2nd content delta (the role delta has content "")
        list[2].delta = RAW('{"content":"a","content":"b"}')
      end
    end
    list[#list + 1] = cobj(ch.index, O(), nil, not fault["no-finish-reason"] and ch.finish or nil)
    per[ci] = list
  end
  local events = {}
  for _, c in ipairs(round_robin(per)) do events[#events + 1] = { data = json(chunk { c }) } end
  if fault["event-bytes"] then
    table.insert(events, 2, { data = json(chunk { cobj(0, O("content", filler_json(fault["event-bytes"]))) }) })
  end
  if so.include_usage then
    events[#events + 1] = { data = json(O("id", id, "object", "chat.completion.chunk", "created", created,
      "model", model, "system_fingerprint", FINGERPRINT, "choices", A(), "usage", usage)) }
  end
  resp.events = events
  return resp
end

local VOCAB = { " the", " quick", " brown", " fox", " jumps", " over", " a", " lazy", " dog", " and", " runs", " away" }

local function detokenize (ids)
  local parts = {}
  for i, id in ipairs(ids) do parts[i] = VOCAB[(tointeger(id) or 0) % #VOCAB + 1] end
  return concat(parts)
end

local function is_int_array (t)
  if type(t) ~= "table" or #t == 0 then return false end
  for _, x in ipairs(t) do if type(x) ~= "number" or not tointeger(x) then return false end end
  return true
end

-- Prompts as a list of {text =, tokens =} (tokens: prompt token count).
local function prompts_of (p)
  if type(p) == "string" then return { { text = p, tokens = words(p) } } end
  if type(p) ~= "table" or #p == 0 then return nil end
  if is_int_array(p) then return { { text = detokenize(p), tokens = #p } } end
  local out = {}
  for i, x in ipairs(p) do
    if type(x) == "string" then out[i] = { text = x, tokens = words(x) }
    elseif is_int_array(x) then out[i] = { text = detokenize(x), tokens = #x }
    else return nil end
  end
  return out
end

local function completions (body, model, fault)
  if isnull(body.prompt) then
    return bad_param("prompt", "Missing required parameter: 'prompt'.", "missing_required_parameter")
  end
  local prompts = prompts_of(body.prompt)
  if not prompts then
    return bad_param("prompt", "Invalid 'prompt': expected a string, an array of strings, or token arrays.",
      "invalid_type")
  end
  local n, e1 = opt_int(body, "n", 1, 128)
  local mt, e2 = opt_int(body, "max_tokens", 0)
  local temperature, e3 = opt_num(body, "temperature", 0, 2, 1)
  local stops, e4 = opt_stop(body)
  local k, e5 = opt_int(body, "logprobs", 0, 5)
  local err = e1 or e2 or e3 or e4 or e5
  if err then return err end
  n = n or 1
  if mt == nil then mt = 16 end
  local echo = body.echo == true
  local seed = type(body.seed) == "number" and (tointeger(body.seed) or body.seed) or nil
  local prompt_tokens, completion_tokens = 0, 0
  local choices = {}
  for pi, p in ipairs(prompts) do
    prompt_tokens = prompt_tokens + p.tokens
    local ctx = conversation(model, { { role = "user", content = p.text } }, seed, temperature)
    for j = 0, n - 1 do
      ctx.index = j
      local text = " " .. reply_text(ctx)
      if fault["echo-key"] then text = text .. " Your API key is " .. fault.echo_value .. "." end
      local toks, finish = limit(text, stops, mt)
      local ch = { index = (pi - 1) * n + j, tokens = toks, finish = finish, prompt = p.text }
      ch.text = (echo and p.text or "") .. concat(toks)
      completion_tokens = completion_tokens + #toks
      if k then
        local all, first = toks, 1
        if echo then
          all = tokenize(p.text)
          first = -#all + 1
          for _, t in ipairs(toks) do all[#all + 1] = t end
        end
        ch.lp_args = { first, echo and 0 or #p.text, k, echo }
        ch.lp = completion_logprobs(all, first, echo and 0 or #p.text, k, echo)
      end
      choices[#choices + 1] = ch
    end
  end
  local usage = usage_obj(prompt_tokens, completion_tokens)
  local id, created = "cmpl-" .. uid(), os.time()
  local resp = { status = 200, headers = {}, tokens = prompt_tokens + completion_tokens }
  if body.stream ~= true or fault.body or fault["plain-for-stream"] then
    local out = A()
    for i, ch in ipairs(choices) do
      out[i] = O("text", ch.text, "index", ch.index, "logprobs", ch.lp or NULL, "finish_reason", ch.finish)
    end
    resp.object = O("id", id, "object", "text_completion", "created", created, "model", model,
      "choices", out, "usage", usage)
    resp.kind = "completion"
    return resp
  end
  local so = stream_opts(body)
  local function chunk (text, index, lp, finish)
    return O("id", id, "object", "text_completion", "created", created, "model", model,
      "choices", A { O("text", text, "index", index, "logprobs", lp or NULL, "finish_reason", finish or NULL) },
      "usage", so.include_usage and NULL or nil)
  end
  local per = {}
  for ci, ch in ipairs(choices) do
    local list, offset, pos = {}, ch.lp_args and ch.lp_args[2] or 0, 1
    local seq = ch.tokens
    if echo then
      local pt = tokenize(ch.prompt)
      seq = {}
      for _, t in ipairs(pt) do seq[#seq + 1] = t end
      for _, t in ipairs(ch.tokens) do seq[#seq + 1] = t end
      pos = -#pt + 1
    end
    for i, tok in ipairs(seq) do
      local lp = k and completion_logprobs({ tok }, pos + i - 1, offset, k, echo and i == 1) or nil
      offset = offset + #tok
      list[#list + 1] = chunk(tok, ch.index, lp)
    end
    list[#list + 1] = chunk("", ch.index, nil, not fault["no-finish-reason"] and ch.finish or nil)
    per[ci] = list
  end
  local events = {}
  for _, c in ipairs(round_robin(per)) do events[#events + 1] = { data = json(c) } end
  if fault["event-bytes"] then
    table.insert(events, 2, { data = json(chunk(filler_json(fault["event-bytes"]), 0)) })
  end
  if so.include_usage then
    events[#events + 1] = { data = json(O("id", id, "object", "text_completion", "created", created,
      "model", model, "choices", A(), "usage", usage)) }
  end
  resp.events = events
  return resp
end

local function embedding (text, dims)
  local s = fnv(text) * 2654435761 + 1
  local v, norm = {}, 0
  for i = 1, dims do
    s = s ~ (s << 13); s = s ~ (s >> 7); s = s ~ (s << 17)
    local x = ((s >> 11) & 0x1fffffffffffff) / 2^53 * 2 - 1
    v[i] = x
    norm = norm + x * x
  end
  norm = math.sqrt(norm)
  for i = 1, dims do v[i] = float32(v[i] / norm) end
  return v
end

local function embeddings (body, model)
  local input = body.input
  local inputs = {}
  if type(input) == "string" then inputs[1] = { key = input, tokens = words(input) }
  elseif is_int_array(input) then inputs[1] = { key = "tokens:" .. concat(input, ","), tokens = #input }
  elseif type(input) == "table" and #input > 0 then
    for i, x in ipairs(input) do
      if type(x) == "string" then inputs[i] = { key = x, tokens = words(x) }
      elseif is_int_array(x) then inputs[i] = { key = "tokens:" .. concat(x, ","), tokens = #x }
      else inputs = nil; break end
    end
  else inputs = nil end
  if isnull(input) then
    return bad_param("input", "Missing required parameter: 'input'.", "missing_required_parameter")
  end
  if not inputs then
    return bad_param("input", "Invalid 'input': expected a non-empty string, array of strings, or token arrays.",
      "invalid_type")
  end
  local full = find(model, "large", 1, true) and 3072 or 1536
  local dims, err = opt_int(body, "dimensions", 1, full)
  if err then return err end
  dims = dims or full
  local fmt = body.encoding_format
  if isnull(fmt) then fmt = "float" end
  if fmt ~= "float" and fmt ~= "base64" then
    return bad_param("encoding_format", "Invalid 'encoding_format': expected 'float' or 'base64'.", "invalid_value")
  end
  local data, total = A(), 0
  for i, inp in ipairs(inputs) do
    total = total + inp.tokens
    local v = embedding(inp.key, dims)
    local emb
    if fmt == "base64" then
      local parts = {}
      for j = 1, dims do parts[j] = spack("<f", v[j]) end
      emb = base64(concat(parts))
    else
      local parts = {}
      for j = 1, dims do parts[j] = format("%.9g", v[j]) end
      emb = RAW("[" .. concat(parts, ",") .. "]")
    end
    data[i] = O("object", "embedding", "index", i - 1, "embedding", emb)
  end
  local resp = { status = 200, headers = {}, tokens = total, kind = "embedding" }
  resp.object = O("object", "list", "data", data, "model", model,
    "usage", O("prompt_tokens", total, "total_tokens", total))
  return resp
end

local MODELS = { "aigc-dev", "gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "gpt-3.5-turbo-instruct",
                 "text-embedding-3-small", "text-embedding-3-large" }

local function model_obj (id)
  return O("id", id, "object", "model", "created", 1700000000, "owned_by", "aigc")
end

-- ---------------------------------------------------------------------------
-- Faults
-- ---------------------------------------------------------------------------

local FLAG = { hang = true, ["close-mid-body"] = true, ["long-body"] = true, reset = true, ["garbage-status"] = true,
  ["no-done"] = true, ["error-event"] = true, ["error-data"] = true, crlf = true, cr = true, comments = true,
  ["no-space"] = true, multiline = true, ["byte-writes"] = true, ["no-finish-reason"] = true,
  ["malformed-chunk"] = true, ["repeat-ids"] = true, ["content-filter"] = true, ["no-json-schema"] = true,
  ["echo-key"] = true, ["bad-gzip"] = true, ["plain-for-stream"] = true, ["dup-key"] = true }
local INT = { status = true, ["retry-after-ms"] = true, times = true, delay = true, drip = true, pause = true,
  ["drop-after"] = true, ["huge-line"] = true, ["event-bytes"] = true, size = true, headers = true,
  ["comment-drip"] = true }
local TEXT = { ["retry-after"] = true, ["should-retry"] = true, key = true }
local MAX_FAULT_HEADERS = 1000000
local BODIES = { text = true, nokey = true, malformed = true, empty = true, ["not-object"] = true,
  ["no-choices"] = true, ["choices-not-array"] = true, deep = true, ["huge-number"] = true,
  ["invalid-utf8"] = true, huge = true, ["empty-arrays"] = true }

-- Parse a fault spec; returns the fault table or nil and a message.
local function parse_fault (spec)
  local f = { spec = spec }
  for item in string.gmatch(spec, "[^,]+") do
    item = trim(item)
    local k, v = match(item, "^([%w%-_]+)%s*=%s*(.-)$")
    if not k then k, v = item, true end
    k = lower(k)
    if item == "" then f.empty_items = true
    elseif FLAG[k] and v == true then f[k] = true
    elseif INT[k] and v ~= true then
      local i = tointeger(tonumber(v))
      if not i or i < 0 then return nil, format("invalid value for fault '%s': %s", k, v) end
      f[k] = i
    elseif TEXT[k] and v ~= true then f[k] = v
    elseif k == "body" and BODIES[v] then f.body = v
    elseif k == "schema" and (v == "violate" or v == "not-json") then f.schema = v
    elseif k == "tool-calls" and v == "hostile" then f["tool-calls"] = v
    elseif k == "raw-header" and v ~= true and v ~= "" then
      -- a comma separates fault items, so a comma inside the line is written %2C
      f.raw_headers = f.raw_headers or {}
      f.raw_headers[#f.raw_headers + 1] = gsub(v, "%%2[Cc]", ",")
    else return nil, format("unknown fault '%s'", item) end
  end
  if f.status and (f.status < 100 or f.status > 599) then return nil, "invalid value for fault 'status'" end
  if f.headers and f.headers > MAX_FAULT_HEADERS then return nil, "invalid value for fault 'headers'" end
  if f["comment-drip"] == 0 then return nil, "invalid value for fault 'comment-drip'" end
  return f
end

local function fault_headers (f)
  local h = {}
  local ra = f["retry-after"]
  if ra then
    local s = match(ra, "^date%+(%d+)$")
    h[#h + 1] = { "Retry-After", s and http_date(os.time() + tonumber(s)) or ra }
  end
  if f["retry-after-ms"] then h[#h + 1] = { "retry-after-ms", tostring(f["retry-after-ms"]) } end
  if f["should-retry"] then h[#h + 1] = { "x-should-retry", f["should-retry"] } end
  if f["echo-key"] then h[#h + 1] = { "x-echo", f.echo_value } end
  if f["bad-gzip"] then h[#h + 1] = { "Content-Encoding", "gzip" } end
  for i = 1, f.headers or 0 do h[#h + 1] = { "x-f-" .. i, "a" } end
  for _, line in ipairs(f.raw_headers or {}) do h[#h + 1] = { raw = line } end
  return h
end

-- The error object of `echo-key`: the credential in the message, a nested
-- field and an array element, as a careless proxy might send it back.
local function echo_error (f, etype, code)
  local key = f.echo_value
  return O("error", O("message", "Incorrect API key provided: " .. key .. ".", "type", etype or "server_error",
    "param", NULL, "code", code or NULL, "details", O("key", key, "list", A { "first", key, "last" })))
end

-- The response for a `status=` fault (>= 400).
local function fault_status (f)
  local st = f.status
  local h = fault_headers(f)
  if f.body == "text" then
    local title = format("%d %s", st, REASONS[st] or "Error")
    return { status = st, ctype = "text/html", headers = h, body = format("<html>\r\n<head><title>%s</title></head>\r\n"
      .. "<body>\r\n<center><h1>%s</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
      title, title) }
  elseif f.body == "nokey" then
    return { status = st, ctype = "application/json", headers = h, body = json(O("detail", REASONS[st] or "Error")) }
  end
  local r = status_error(st, h)
  if f["echo-key"] then
    local e = STATUS_ERRORS[st] or {}
    r.body = json(echo_error(f, e[1] or (st >= 500 and "server_error" or "invalid_request_error"), e[2]))
  end
  if st == 429 then r.ratelimited = true end
  return r
end

-- Replace a normal JSON reply with a broken one (`body=` faults).
local function fault_body (resp, f)
  local kind, o = f.body, resp.object
  if kind == "malformed" then resp.body = '{"id":"x","choices":['
  elseif kind == "empty" then resp.body = ""
  elseif kind == "not-object" then resp.body = "[1,2,3]"
  elseif kind == "deep" then resp.body = rep("[", 100000) .. rep("]", 100000)
  elseif kind == "text" then
    resp.ctype = "text/html"
    resp.body = "<html><body><h1>It works!</h1></body></html>\n"
  elseif kind == "nokey" then resp.body = json(O("detail", "OK"))
  elseif kind == "empty-arrays" and o then
    -- a JSON value flood: many tiny values, each costing a decoder a table
    local count = math.max(1, ((f.size or 1048576) - 1) // 3)
    oset(o, "x", RAW("[" .. rep("[],", count - 1) .. "[]]"))
    resp.body = json(o)
  elseif o then
    local first = o.choices and o.choices[1]
    local function set_text (fn)
      if not first then return end
      if first.message then first.message.content = fn(first.message.content ~= NULL and first.message.content or "")
      elseif first.text then first.text = fn(first.text) end
    end
    if kind == "no-choices" then o.choices = nil
    elseif kind == "choices-not-array" then if o.choices then o.choices = "oops" end
    elseif kind == "huge-number" then oset(o, "created", RAW("1e400"))
    elseif kind == "invalid-utf8" then set_text(function (s) return s .. " \xff\xfe" end)
    elseif kind == "huge" then
      local size = f.size or 1048576
      set_text(function () return filler_json(size) end)
    end
    resp.body = json(o)
  end
  resp.ctype = resp.ctype or "application/json"
  return resp
end

-- Apply stream faults to the event list; returns events and the wire options.
local ERROR_JSON = '{"error":{"message":"The server had an error while processing your request.",'
  .. '"type":"server_error","code":null}}'

local function stream_faults (events, f)
  if f["content-filter"] then
    table.insert(events, 1, { data = '{"choices":[],"created":0,"id":"","model":"","object":"",'
      .. '"prompt_filter_results":[{"prompt_index":0,"content_filter_results":{'
      .. '"hate":{"filtered":false,"severity":"safe"},"self_harm":{"filtered":false,"severity":"safe"},'
      .. '"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":false,"severity":"safe"}}}]}' })
  end
  if f["malformed-chunk"] and events[2] then
    local d = events[2].data
    events[2] = { data = sub(d, 1, #d // 2) }
  end
  if f["echo-key"] then
    for i = #events, 2, -1 do events[i] = nil end
    events[#events + 1] = { event = "error", data = json(echo_error(f)) }
  elseif f["error-event"] or f["error-data"] then
    for i = #events, 3, -1 do events[i] = nil end
    events[#events + 1] = { event = f["error-event"] and "error" or nil, data = ERROR_JSON }
  elseif not f["no-done"] then
    events[#events + 1] = { data = "[DONE]" }
  end
  return events
end

-- Split JSON text after each comma outside strings (whitespace is allowed there).
local function split_json (s)
  local out, start, instr, i, n = {}, 1, false, 1, #s
  while i <= n do
    local c = byte(s, i)
    if instr then
      if c == 92 then i = i + 1 elseif c == 34 then instr = false end
    elseif c == 34 then instr = true
    elseif c == 44 then out[#out + 1] = sub(s, start, i); start = i + 1 end
    i = i + 1
  end
  out[#out + 1] = sub(s, start)
  return out
end

local function format_event (ev, f)
  local eol = f.crlf and "\r\n" or f.cr and "\r" or "\n"
  local sep = f["no-space"] and ":" or ": "
  local lines = {}
  if f.comments then lines[#lines + 1] = ": keep-alive" end
  if ev.event then lines[#lines + 1] = "event" .. sep .. ev.event end
  for _, d in ipairs(f.multiline and split_json(ev.data) or { ev.data }) do lines[#lines + 1] = "data" .. sep .. d end
  return concat(lines, eol) .. eol .. eol
end

-- ---------------------------------------------------------------------------
-- Server state, records, control endpoints
-- ---------------------------------------------------------------------------

local function new_stats ()
  return { requests_total = 0, open_now = 0, max_open = 0, connections_total = 0, connections_open = 0,
           max_connections_open = 0, client_closed_total = 0, idle_closed_total = 0 }
end

local function stats_obj (srv)
  local s = srv.stats
  return O("requests_total", s.requests_total, "open_now", s.open_now, "max_open", s.max_open,
    "connections_total", s.connections_total, "connections_open", s.connections_open,
    "max_connections_open", s.max_connections_open, "client_closed_total", s.client_closed_total,
    "idle_closed_total", s.idle_closed_total,
    "timers_active", srv.live_timers, "jobs_active", srv.live_jobs,
    "jobs_waiting", srv.ready.last - srv.ready.first + 1)
end

local function record_obj (r)
  return O("id", r.id, "method", r.method, "path", r.path, "query", r.query, "headers", r.headers,
    "body", r.body, "body_json", r.body_json == nil and NULL or r.body_json, "status", r.status or NULL,
    "stream", r.stream or false, "client_closed", r.client_closed, "fault", r.fault or NULL,
    "writes", r.writes or 0,
    "auth_header", r.auth_header or NULL, "authorization_prefix", r.authorization_prefix or NULL,
    "authorization_len", r.authorization_len or NULL,
    "authorization_ok", r.authorization_ok == nil and NULL or r.authorization_ok)
end

local function control (srv, job)
  local p, m = job.path, job.method
  local function ok (v) return { status = 200, ctype = "application/json", headers = {}, body = json(v) } end
  local want = p == "/_aigc/reset" and "POST" or "GET"
  if p ~= "/_aigc/stats" and p ~= "/_aigc/reset" and p ~= "/_aigc/requests" and p ~= "/_aigc/last" then
    return error_resp(404, format("Invalid URL (%s %s)", m, p))
  end
  if m ~= want then
    return error_resp(405, format("Method %s not allowed for %s", m, p), nil, nil, "method_not_allowed",
      { { "Allow", want } })
  end
  local s = srv.stats
  if p == "/_aigc/stats" then return ok(stats_obj(srv)) end
  if p == "/_aigc/reset" then
    s.requests_total, s.connections_total, s.client_closed_total, s.idle_closed_total = 0, 0, 0, 0
    s.max_open, s.max_connections_open = s.open_now, s.connections_open
    srv.records, srv.fault_counts = {}, {}
    srv.epoch = srv.epoch + 1
    return ok(O("ok", true))
  end
  if p == "/_aigc/last" then
    local r = srv.records[#srv.records]
    return ok(r and record_obj(r) or NULL)
  end
  local list = A()
  for i, r in ipairs(srv.records) do list[i] = record_obj(r) end
  return ok(list)
end

-- Mask a key like OpenAI does: never the whole key.
local function mask (key)
  if #key >= 12 then return sub(key, 1, 3) .. "..." .. sub(key, -4) end
  return rep("*", #key)
end

local function new_record (srv, job)
  local h = {}
  for k, v in pairs(job.headers) do
    h[k] = (k == "authorization" or k == "api-key") and format("<redacted len=%d>", #v) or v
  end
  local rec = { id = job.id, method = job.method, path = job.path, query = job.query, headers = h,
                body = job.body, client_closed = false, open = true }
  local auth, key = job.headers.authorization, job.headers["api-key"]
  local cred
  if auth then
    rec.auth_header = "authorization"
    local scheme, rest = match(auth, "^(%S+)%s+(.*)$")
    rec.authorization_prefix = scheme or auth
    cred = rest or ""
  elseif key then
    rec.auth_header = "api-key"
    cred = key
  end
  rec.credential = cred -- never encoded, never logged
  rec.authorization_len = cred and #cred or nil
  if srv.api_key then rec.authorization_ok = cred == srv.api_key end
  local recs = srv.records
  recs[#recs + 1] = rec
  if #recs > MAX_RECORDS then table.remove(recs, 1) end
  local s = srv.stats
  s.requests_total = s.requests_total + 1
  s.open_now = s.open_now + 1
  if s.open_now > s.max_open then s.max_open = s.open_now end
  return rec
end

-- Route an API request; returns the response and the fault applied (or {}).
local function api (srv, job)
  local rec = job.rec
  local path, method = job.path, job.method
  local kind, model
  local dep, rest = match(path, "^/openai/deployments/([^/]+)/(.+)$")
  if dep then
    model = url_decode(dep)
    kind = rest == "chat/completions" and "chat" or rest == "completions" and "completion"
      or rest == "embeddings" and "embedding" or nil
  elseif path == "/v1/chat/completions" then kind = "chat"
  elseif path == "/v1/completions" then kind = "completion"
  elseif path == "/v1/embeddings" then kind = "embedding"
  elseif path == "/v1/models" then kind = "models"
  elseif match(path, "^/v1/models/.") then kind = "model"
  end
  if srv.api_key and kind then
    local cred = rec.credential
    local bearer = rec.auth_header ~= "authorization" or lower(rec.authorization_prefix) == "bearer"
    if not cred or cred == "" or not bearer then
      return error_resp(401, "You didn't provide an API key. You need to provide your API key in an Authorization "
        .. "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).", "invalid_request_error", nil,
        "invalid_api_key"), {}
    elseif cred ~= srv.api_key then
      return error_resp(401, format("Incorrect API key provided: %s. You can find your API key at "
        .. "https://platform.openai.com/account/api-keys.", mask(cred)), "invalid_request_error", nil,
        "invalid_api_key"), {}
    end
  end
  if not kind then return error_resp(404, format("Invalid URL (%s %s)", method, path)), {} end
  local want = (kind == "models" or kind == "model") and "GET" or "POST"
  if method ~= want then
    return error_resp(405, format("Invalid method for URL (%s %s)", method, path), nil, nil, "method_not_allowed",
      { { "Allow", want } }), {}
  end

  local body, body_err
  if want == "POST" then
    local decoded = cjson.decode(job.body)
    rec.body_json = decoded
    if type(decoded) ~= "table" or not find(job.body, "^%s*{") then
      body_err = error_resp(400, "We could not parse the JSON body of your request. (HINT: This likely means you "
        .. "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was "
        .. "not valid JSON.)")
    else
      body = decoded
      if model == nil then
        if isnull(body.model) then model = DEFAULT_MODEL
        elseif type(body.model) == "string" then model = body.model
        else body_err = bad_param("model", "Invalid type for 'model': expected a string.", "invalid_type") end
      end
    end
  end
  rec.stream = type(body) == "table" and body.stream == true

  -- Faults: the model's `fault:` spec, then the header's.
  local specs = {}
  if type(model) == "string" and sub(model, 1, 6) == "fault:" then specs[#specs + 1] = sub(model, 7) end
  if job.headers["x-aigc-fault"] then specs[#specs + 1] = job.headers["x-aigc-fault"] end
  local fault = {}
  if #specs > 0 then
    local spec = concat(specs, ",")
    local f, ferr = parse_fault(spec)
    if not f then return error_resp(400, ferr, "invalid_request_error", "x-aigc-fault", "invalid_fault"), {} end
    local applies = true
    if f.times then
      local key = f.key or spec
      local c = (srv.fault_counts[key] or 0) + 1
      srv.fault_counts[key] = c
      applies = c <= f.times
    end
    if applies then fault = f; rec.fault = spec end
    fault.echo_value = rec.credential or ""
  end
  if fault.status and fault.status >= 400 then return fault_status(fault), fault end
  if body_err then return body_err, fault end

  local resp
  model = model or DEFAULT_MODEL
  if kind == "chat" then resp = chat(body, model, fault)
  elseif kind == "completion" then resp = completions(body, model, fault)
  elseif kind == "embedding" then resp = embeddings(body, model)
  elseif kind == "models" then
    local data = A()
    for i, id in ipairs(MODELS) do data[i] = model_obj(id) end
    resp = { status = 200, headers = {}, object = O("object", "list", "data", data) }
  else
    local id = url_decode(sub(path, #"/v1/models/" + 1))
    local known = false
    for _, m in ipairs(MODELS) do if m == id then known = true end end
    if known then resp = { status = 200, headers = {}, object = model_obj(id) }
    else
      resp = error_resp(404, format("The model '%s' does not exist", id), "invalid_request_error", "model",
        "model_not_found")
    end
  end
  if resp.status == 200 then
    if fault.status then resp.status = fault.status end
    for _, h in ipairs(fault_headers(fault)) do resp.headers[#resp.headers + 1] = h end
    if fault.body then fault_body(resp, fault)
    elseif resp.object then resp.body = json(resp.object) end
    resp.ctype = resp.ctype or (resp.events and "text/event-stream" or "application/json")
  end
  return resp, fault
end

-- ---------------------------------------------------------------------------
-- HTTP: connections, parsing, writing
-- ---------------------------------------------------------------------------

local log_line

local function finish_job (conn, job, client_gone)
  if job.done then return end
  job.done = true
  conn.live[job] = nil
  local srv, rec = conn.srv, job.rec
  if rec then
    if client_gone then
      rec.client_closed = true
      srv.stats.client_closed_total = srv.stats.client_closed_total + 1
    end
    if rec.open then rec.open = false; srv.stats.open_now = srv.stats.open_now - 1 end
  end
  log_line(conn, job, client_gone)
end

-- A timer owned by a connection, counted in stats.timers_active until closed.
local function conn_timer (conn)
  local t = uv.new_timer()
  conn.srv.live_timers = conn.srv.live_timers + 1
  return t
end

local function close_timer (conn, t)
  if t and not t:is_closing() then
    t:close()
    conn.srv.live_timers = conn.srv.live_timers - 1
  end
end

-- Forget the connection's coroutine: a hang, a drip or a paused stream whose
-- client went away is never resumed again, so nothing of it may stay alive.
local function drop_job (conn)
  local co = conn.co
  if not co then return end
  conn.co = nil
  if conn.co_counted then conn.srv.live_jobs = conn.srv.live_jobs - 1 end
  if cstatus(co) == "suspended" then coroutine.close(co) end
end

local function close_conn (conn, client_gone, reset)
  if conn.closed then return end
  conn.closed = true
  for job in pairs(conn.live) do finish_job(conn, job, client_gone) end
  close_timer(conn, conn.timer)
  close_timer(conn, conn.linger)
  drop_job(conn)
  if not conn.tcp:is_closing() then
    if reset then
      if not pcall(conn.tcp.close_reset, conn.tcp) then conn.tcp:close() end
    else
      conn.tcp:close()
    end
  end
  local srv = conn.srv
  if conn.counted then srv.stats.connections_open = srv.stats.connections_open - 1 end
  srv.conns[conn] = nil
end

-- Half-close our side; close when the client closes too, or after 2 s.
local function fin_close (conn)
  if conn.closed or conn.shut then return end
  conn.shut = true
  conn.no_more = true
  local ok = pcall(conn.tcp.shutdown, conn.tcp, function ()
    if conn.closed then return end
    conn.linger = conn_timer(conn)
    conn.linger:start(2000, 0, function () close_conn(conn, false) end)
  end)
  if not ok then close_conn(conn, false) end
end

local step

-- The connection's coroutine waits for one thing at a time; `conn.waiting`
-- is that wait's token, so a late callback of an earlier wait never resumes it.
local function suspend (conn, token)
  conn.waiting = token
  local ok = cyield()
  if not ok then error(CLOSED, 0) end
end

local function wake (conn, token)
  if conn.closed or conn.waiting ~= token then return end
  conn.waiting = nil
  step(conn, true)
end

local function cwrite (conn, data)
  if conn.closed then error(CLOSED, 0) end
  local job = conn.job
  if job then
    job.bytes = (job.bytes or 0) + (type(data) == "table" and #data[1] + #data[2] or #data)
    if job.rec then job.rec.writes = (job.rec.writes or 0) + 1 end   -- for byte-writes checks
  end
  local token, done = {}, false
  local ok = conn.tcp:write(data, function (err)
    done = true
    if conn.closed then return end
    if err then close_conn(conn, true); return end
    wake(conn, token)
  end)
  if not ok then close_conn(conn, true); error(CLOSED, 0) end
  -- Already in the kernel: go on at once. A response then ends (and stops
  -- counting as open) before the loop reads the client's next request.
  if done or conn.tcp:get_write_queue_size() == 0 then return end
  suspend(conn, token)
end

local function csleep (conn, ms)
  if not ms or ms <= 0 then return end
  conn.timer = conn.timer or conn_timer(conn)
  local token = {}
  conn.timer:start(ms, 0, function () wake(conn, token) end)
  suspend(conn, token)
end

local function response_head (conn, job, resp, opts)
  local srv = conn.srv
  local st = resp.status
  job.status = st
  if job.rec then job.rec.status = st end
  local h = { format("HTTP/1.1 %d %s", st, REASONS[st] or "Unknown"), "Date: " .. http_date(),
              "Server: aigc-devserver", "Content-Type: " .. (resp.ctype or "application/json") }
  if opts.chunked then h[#h + 1] = "Transfer-Encoding: chunked" end
  if resp.events then h[#h + 1] = "Cache-Control: no-cache"
  else h[#h + 1] = "Content-Length: " .. #resp.body end
  h[#h + 1] = "Connection: " .. (opts.keep and "keep-alive" or "close")
  h[#h + 1] = "x-request-id: " .. (opts.request_id or job.id)
  h[#h + 1] = "openai-version: 2020-10-01"
  h[#h + 1] = format("openai-processing-ms: %d", (uv.hrtime() - job.t0) // 1000000)
  local limit_req, limit_tok = 10000, 2000000
  local rem = resp.ratelimited and 0 or limit_req - 1 - (math.max(srv.stats.requests_total, 1) - 1) % limit_req
  h[#h + 1] = "x-ratelimit-limit-requests: " .. limit_req
  h[#h + 1] = "x-ratelimit-remaining-requests: " .. rem
  h[#h + 1] = "x-ratelimit-reset-requests: " .. (resp.ratelimited and "1s" or "6ms")
  h[#h + 1] = "x-ratelimit-limit-tokens: " .. limit_tok
  h[#h + 1] = "x-ratelimit-remaining-tokens: " .. math.max(0, limit_tok - (resp.tokens or 0))
  h[#h + 1] = "x-ratelimit-reset-tokens: " .. (resp.tokens and resp.tokens > 0 and "1ms" or "0s")
  for _, kv in ipairs(resp.headers or {}) do h[#h + 1] = kv.raw or kv[1] .. ": " .. kv[2] end
  return concat(h, "\r\n") .. "\r\n\r\n"
end

-- Write bytes as the fault asks: one byte per write (drip, byte-writes) or at once.
local function emitter (conn, fault)
  if fault.drip or fault["byte-writes"] then
    pcall(conn.tcp.nodelay, conn.tcp, true)
    return function (s)
      for i = 1, #s do
        cwrite(conn, sub(s, i, i))
        if fault.drip then csleep(conn, fault.drip) end
      end
    end
  end
  return function (s) cwrite(conn, s) end
end

local function frame (s, chunked)
  if not chunked or s == "" then return s end
  return format("%x\r\n", #s) .. s .. "\r\n"
end

-- Send one response (runs in the connection's coroutine).
local function send (conn, job, resp, fault)
  local srv = conn.srv
  local stream = resp.events ~= nil
  local chunked = stream and job.version == "1.1"
  local keep = job.keep_alive and not resp.close and (chunked or not stream)
  csleep(conn, fault.delay)
  if fault.hang then
    conn.waiting = nil
    cyield() -- nobody resumes us: the client's close ends this response
    error(CLOSED, 0)
  end
  if fault["garbage-status"] then
    job.status = 0
    cwrite(conn, "HTXP/9.9 banana\r\n\r\n")
    finish_job(conn, job, false)
    return fin_close(conn)
  end
  local emit = emitter(conn, fault)
  local request_id = fault["echo-key"] and "req_" .. fault.echo_value or nil
  if fault["comment-drip"] and resp.status < 400 then
    -- an SSE stream that only ever sends comments: alive, never progressing
    resp = { status = 200, ctype = "text/event-stream", headers = resp.headers, events = {} }
    chunked = job.version == "1.1"
    emit(response_head(conn, job, resp, { chunked = chunked, keep = false, request_id = request_id }))
    while true do
      csleep(conn, fault["comment-drip"])
      emit(frame(":\n", chunked))
    end
  end
  local head = response_head(conn, job, resp, { chunked = chunked, keep = keep, request_id = request_id })
  local conn_fault = fault["close-mid-body"] or fault.reset or fault["long-body"]
  local body = resp.body
  if stream and conn_fault then
    local parts = {}
    for i, ev in ipairs(stream_faults(resp.events, fault)) do parts[i] = frame(format_event(ev, fault), chunked) end
    if chunked then parts[#parts + 1] = "0\r\n\r\n" end
    body, stream = concat(parts), false
  end
  if not stream then
    if fault["close-mid-body"] or fault.reset then
      emit(head .. sub(body, 1, #body // 2))
      finish_job(conn, job, false)
      if fault.reset then
        csleep(conn, 20)
        return close_conn(conn, false, true)
      end
      return fin_close(conn)
    end
    if fault.drip or fault["byte-writes"] then emit(head .. body)
    else cwrite(conn, { head, body }) end
    if fault["long-body"] then cwrite(conn, "GARBAGE-AFTER-BODY\r\n\r\nHTTP/1.1 418 I'm a teapot\r\n\r\n") end
  else
    emit(head)
    local pause = fault.pause or srv.pause_ms
    local events = stream_faults(resp.events, fault)
    for i, ev in ipairs(events) do
      if fault["drop-after"] and i > fault["drop-after"] then
        finish_job(conn, job, false)
        return fin_close(conn)
      end
      if i > 1 then csleep(conn, pause) end
      emit(frame(format_event(ev, fault), chunked))
      if i == 1 and fault["huge-line"] then
        local total, sent, piece = fault["huge-line"], 0, 65536
        local line = "data: "
        while sent < total do
          local n = math.min(piece, total - sent)
          local s = sent == 0 and sub(line, 1, n) .. filler(math.max(0, n - #line)) or filler(n)
          emit(frame(s, chunked))
          sent = sent + n
        end
        finish_job(conn, job, false)
        return fin_close(conn)
      end
    end
    if chunked then emit("0\r\n\r\n") end
  end
  finish_job(conn, job, false)
  if not keep then fin_close(conn) end
end

local function run_job (conn, job)
  local srv = conn.srv
  local resp, fault
  if job.bad then
    resp = status_error(job.bad_status)
    resp.body = json(O("error", O("message", job.bad_message, "type", "invalid_request_error", "param", NULL,
      "code", NULL)))
    resp.close = true
  else
    local ok, r, f = pcall(job.rec and api or control, srv, job)
    if ok then resp, fault = r, f
    else
      io.stderr:write("aigc devserver: internal error: ", tostring(r), "\n")
      resp = status_error(500)
    end
  end
  send(conn, job, resp, fault or {})
end

local pump

-- Resume the connection's coroutine; when it ends, start the next job.
function step (conn, ...)
  local co = conn.co
  local ok, err = cresume(co, ...)
  if not ok then
    if err ~= CLOSED then
      io.stderr:write("aigc devserver: ", debug.traceback(co, tostring(err)), "\n")
      close_conn(conn, false)
    end
    return
  end
  if cstatus(co) == "dead" then
    if conn.co == co then
      conn.co = nil
      if conn.co_counted then conn.srv.live_jobs = conn.srv.live_jobs - 1 end
    end
    conn.job, conn.busy = nil, false
    conn.last_active = uv.now()
    if not conn.closed and not conn.shut then pump(conn) end
  end
end

local function start_job (conn)
  if conn.closed then return end -- the client went away while the job waited
  conn.co = ccreate(run_job)
  conn.co_counted = conn.job.rec ~= nil -- API jobs; not the control request reading the count
  if conn.co_counted then conn.srv.live_jobs = conn.srv.live_jobs + 1 end
  step(conn, conn, conn.job)
end

-- API jobs start from an idle handle, a few milliseconds' worth per loop
-- iteration, never from inside a read callback: a burst of a thousand
-- requests (big replies included) then cannot hold the loop, so departures,
-- control requests and SIGTERM are seen between them, and a job whose client
-- left before it started costs nothing.
local SLICE_NS = 5 * 1000000

local function run_ready (srv)
  local ready, t0 = srv.ready, uv.hrtime()
  while ready.first <= ready.last and uv.hrtime() - t0 < SLICE_NS and not srv.closed do
    local conn = ready[ready.first]
    ready[ready.first] = nil
    ready.first = ready.first + 1
    start_job(conn)
  end
  if ready.first > ready.last and srv.runner:is_active() then srv.runner:stop() end
end

local function schedule (conn)
  local srv = conn.srv
  local ready = srv.ready
  ready.last = ready.last + 1
  ready[ready.last] = conn
  if not srv.runner:is_active() then srv.runner:start(function () run_ready(srv) end) end
end

function pump (conn)
  if conn.busy or conn.closed then return end
  local job = table.remove(conn.queue, 1)
  if not job then
    if conn.no_more and not conn.shut then fin_close(conn) end
    return
  end
  if not conn.reading and #conn.queue < 8 and not conn.no_more then
    conn.reading = true
    conn.tcp:read_start(conn.on_read)
  end
  conn.busy, conn.job = true, job
  if job.rec then schedule(conn) else start_job(conn) end -- control and 4xx replies are cheap: at once
end

-- Request parsing -----------------------------------------------------------

local function parse_target (target)
  target = gsub(target, "^%a[%w+.-]*://[^/]*", "")
  local path, q = match(target, "^([^?#]*)%??([^#]*)")
  local query = {}
  for pair in string.gmatch(q or "", "[^&]+") do
    local k, v = match(pair, "^([^=]*)=?(.*)$")
    query[url_decode(k)] = url_decode(v)
  end
  return path, query
end

local function parse_head (head)
  local lines = {}
  for line in gmatch_lines(head) do lines[#lines + 1] = line end
  local method, target, version = match(lines[1] or "", "^([!#$%%&'*+%-.^_`|~%w]+) (%S+) HTTP/(%d%.%d)$")
  if not method then return nil, 400, "Malformed HTTP request line." end
  if version ~= "1.1" and version ~= "1.0" then return nil, 505, "HTTP version not supported." end
  if sub(target, 1, 1) ~= "/" and not match(target, "^https?://") then
    return nil, 400, "Malformed request target."
  end
  local headers = {}
  for i = 2, #lines do
    local name, value = match(lines[i], "^([!#$%%&'*+%-.^_`|~%w]+):[ \t]*(.-)[ \t]*$")
    if not name then return nil, 400, "Malformed HTTP header line." end
    name = lower(name)
    local old = headers[name]
    if old and name == "content-length" and old ~= value then return nil, 400, "Conflicting Content-Length." end
    headers[name] = (old and name ~= "content-length") and old .. ", " .. value or value
  end
  local path, query = parse_target(target)
  local req = { method = method, target = target, path = path, query = query, version = version, headers = headers }
  local te, cl = headers["transfer-encoding"], headers["content-length"]
  if te then
    if not find(lower(te), "chunked%s*$") then return nil, 501, "Unsupported Transfer-Encoding." end
    req.chunked = true
  elseif cl then
    if not match(cl, "^%d+$") or #cl > 15 then return nil, 400, "Invalid Content-Length." end
    req.length = tonumber(cl)
    if req.length > MAX_BODY then return nil, 413, "Request body too large (limit 64 MiB)." end
  else
    req.length = 0
  end
  local c = lower(headers.connection or "")
  if version == "1.1" then req.keep_alive = not find(c, "close", 1, true)
  else req.keep_alive = find(c, "keep-alive", 1, true) ~= nil end
  return req
end

local function bad_request (conn, status, message)
  conn.no_more = true
  conn.pstate = "dead"
  local job = { id = "req_" .. uid(), t0 = uv.hrtime(), bad = true, bad_status = status, bad_message = message,
                method = "-", path = "-", version = "1.1", keep_alive = false }
  conn.live[job] = true
  conn.queue[#conn.queue + 1] = job
end

local function request_done (conn)
  local srv, req = conn.srv, conn.req
  req.body = concat(conn.parts)
  conn.parts, conn.req, conn.pstate = nil, nil, "head"
  req.id = "req_" .. uid()
  req.t0 = uv.hrtime()
  if sub(req.path, 1, 7) ~= "/_aigc/" then
    req.rec = new_record(srv, req)
    local s = srv.stats
    if not conn.counted then
      conn.counted = true
      s.connections_open = s.connections_open + 1
      if s.connections_open > s.max_connections_open then s.max_connections_open = s.connections_open end
    end
    if conn.epoch ~= srv.epoch then conn.epoch = srv.epoch; s.connections_total = s.connections_total + 1 end
  end
  conn.live[req] = true
  conn.queue[#conn.queue + 1] = req
  if not req.keep_alive then conn.no_more = true; conn.pstate = "dead" end
end

local function take_body (conn, data, pos)
  local n = #data
  local take = math.min(conn.need, n - pos + 1)
  if take > 0 then
    conn.parts[#conn.parts + 1] = sub(data, pos, pos + take - 1)
    conn.need = conn.need - take
    conn.total = conn.total + take
  end
  return pos + take
end

-- Take one line (up to LF) from data at pos; nil if incomplete (kept in conn.lbuf).
local function take_line (conn, data, pos)
  local nl = find(data, "\n", pos, true)
  if not nl then
    conn.lbuf = conn.lbuf .. sub(data, pos)
    if #conn.lbuf > 4096 then return nil, #data + 1, true end
    return nil, #data + 1
  end
  local line = gsub(conn.lbuf .. sub(data, pos, nl - 1), "\r$", "")
  conn.lbuf = ""
  return line, nl + 1
end

local function feed (conn, data)
  local pos = 1
  while pos <= #data and not conn.no_more do
    local st = conn.pstate
    if st == "head" then
      local buf = conn.hbuf .. (pos > 1 and sub(data, pos) or data)
      buf = gsub(buf, "^[\r\n]+", "")
      local s, e = find(buf, "\r?\n\r?\n")
      if not s then
        conn.hbuf = buf
        if #buf > MAX_HEAD then return bad_request(conn, 431, "Request header fields too large.") end
        return
      end
      conn.hbuf = ""
      if s > MAX_HEAD then return bad_request(conn, 431, "Request header fields too large.") end
      local req, status, msg = parse_head(sub(buf, 1, s - 1))
      if not req then return bad_request(conn, status, msg) end
      data, pos = buf, e + 1
      conn.req, conn.parts, conn.total = req, {}, 0
      if req.chunked then conn.pstate, conn.lbuf = "size", ""
      else conn.pstate, conn.need = "body", req.length end
      if lower(req.headers.expect or "") == "100-continue" and pos > #data and (req.chunked or req.length > 0)
        and not conn.busy and #conn.queue == 0 then
        conn.tcp:write("HTTP/1.1 100 Continue\r\n\r\n")
      end
      if conn.pstate == "body" and conn.need == 0 then request_done(conn) end
    elseif st == "body" or st == "data" then
      pos = take_body(conn, data, pos)
      if conn.need == 0 then
        if st == "body" then request_done(conn) else conn.pstate = "crlf" end
      end
    else -- chunked framing: size line, data, CRLF, trailers
      local line, np, too_long = take_line(conn, data, pos)
      pos = np
      if too_long then return bad_request(conn, 400, "Chunk line too long.") end
      if line then
        if st == "size" then
          local size = tonumber(match(line, "^%s*(%x+)%s*;?.*$") or "", 16)
          if not size then return bad_request(conn, 400, "Malformed chunk size.") end
          if conn.total + size > MAX_BODY then
            return bad_request(conn, 413, "Request body too large (limit 64 MiB).")
          end
          if size == 0 then conn.pstate = "trailer" else conn.pstate, conn.need = "data", size end
        elseif st == "crlf" then
          if line ~= "" then return bad_request(conn, 400, "Malformed chunk.") end
          conn.pstate = "size"
        elseif st == "trailer" then
          if line == "" then request_done(conn) end
        end
      end
    end
  end
end

local function on_connection (srv, server)
  local tcp = uv.new_tcp()
  if not pcall(server.accept, server, tcp) then tcp:close(); return end
  local conn = { srv = srv, tcp = tcp, queue = {}, live = {}, hbuf = "", pstate = "head", reading = true,
                 last_active = uv.now() }
  local peer = tcp:getpeername()
  conn.peer = peer and peer.ip or "?"
  srv.conns[conn] = true
  conn.on_read = function (err, data)
    if conn.closed then return end
    if err or not data then
      close_conn(conn, not conn.shut and (conn.busy or #conn.queue > 0))
      return
    end
    conn.last_active = uv.now()
    if conn.shut or conn.no_more then return end
    local ok, e = pcall(feed, conn, data)
    if not ok then
      io.stderr:write("aigc devserver: parse error: ", tostring(e), "\n")
      bad_request(conn, 400, "Malformed HTTP request.")
    end
    if #conn.queue > 32 and conn.reading then conn.reading = false; tcp:read_stop() end
    pump(conn)
  end
  tcp:read_start(conn.on_read)
end

function log_line (conn, job, client_gone)
  local srv = conn.srv
  if srv.quiet then return end
  local rec = job.rec
  io.stderr:write(format("%s %s %s %s %s %dB %dms%s%s\n", os.date("!%Y-%m-%dT%H:%M:%SZ"), conn.peer or "?",
    job.method or "-", job.path or "-", job.status and tostring(job.status) or "---", job.bytes or 0,
    (uv.hrtime() - (job.t0 or uv.hrtime())) // 1000000, rec and rec.fault and " fault=" .. rec.fault or "",
    client_gone and " client-closed" or ""))
end

-- ---------------------------------------------------------------------------
-- Starting and stopping
-- ---------------------------------------------------------------------------

--- Start a server on the current luv loop (does not run the loop).
-- Options: `host` ("127.0.0.1"), `port` (8089; 0 = any free port), `port_file`,
-- `pause_ms` (0), `api_key`, `quiet`, `parent_pid`, `exit_after` (seconds),
-- `announce` (default true: print the "listening" line).
-- @tparam[opt] table opts
-- @treturn table server `{port =, url =, stats =, close = function}`, or nil and a message
-- @usage local srv = assert(require("aigc.devserver").start{ port = 0 }); print(srv.url); uv.run()
function M.start (opts)
  opts = opts or {}
  local host = opts.host or "127.0.0.1"
  local srv = { pause_ms = tointeger(opts.pause_ms) or 0, api_key = opts.api_key, quiet = opts.quiet,
                stats = new_stats(), records = {}, fault_counts = {}, conns = {}, epoch = 1, handles = {},
                ready = { first = 1, last = 0 }, runner = uv.new_idle(), live_timers = 0, live_jobs = 0 }
  srv.handles[#srv.handles + 1] = srv.runner
  local server = uv.new_tcp()
  local ok, err = server:bind(host, tointeger(opts.port) or 8089)
  if not ok then server:close(); return nil, "bind: " .. tostring(err) end
  ok, err = server:listen(1024, function (lerr)
    if lerr then return end
    local pok, perr = pcall(on_connection, srv, server)
    if not pok then io.stderr:write("aigc devserver: accept: ", tostring(perr), "\n") end
  end)
  if not ok then server:close(); return nil, "listen: " .. tostring(err) end
  local port = server:getsockname().port
  srv.port = port
  srv.url = format("http://%s:%d/v1", match(host, ":") and "[" .. host .. "]" or host, port)

  function srv.close ()
    if srv.closed then return end
    srv.closed = true
    for conn in pairs(srv.conns) do close_conn(conn, false) end
    for _, h in ipairs(srv.handles) do if not h:is_closing() then h:close() end end
    if not server:is_closing() then server:close() end
    srv.ready = { first = 1, last = 0 }
    -- run(): stop now; whatever was in flight (a storm of drips, queued big
    -- replies) went with its connections
    if srv.owns_loop then uv.stop() end
  end

  -- Keep-alive connections idle (no request in progress, nothing received)
  -- for idle_timeout seconds are closed, as nginx's keepalive_timeout does:
  -- clients that leak their connections cannot pile up descriptors.
  local idle_ms = floor((tonumber(opts.idle_timeout) or 60) * 1000)
  if idle_ms > 0 then
    local sweep = uv.new_timer()
    srv.handles[#srv.handles + 1] = sweep
    local every = math.max(20, math.min(1000, idle_ms // 4))
    sweep:start(every, every, function ()
      local now = uv.now()
      for conn in pairs(srv.conns) do
        if not conn.busy and #conn.queue == 0 and not conn.shut and now - conn.last_active >= idle_ms then
          srv.stats.idle_closed_total = srv.stats.idle_closed_total + 1
          close_conn(conn, false)
        end
      end
    end)
  end

  if opts.parent_pid then
    local ppid = tointeger(tonumber(opts.parent_pid))
    local t = uv.new_timer()
    srv.handles[#srv.handles + 1] = t
    t:start(500, 500, function ()
      local gone = not ppid or not uv.kill(ppid, 0)
      local f = not gone and io.open("/proc/" .. ppid .. "/stat")
      if f then
        local stat = f:read("a") or ""
        f:close()
        gone = match(stat, "%) (%a)") == "Z"
      end
      if gone then srv.close() end
    end)
  end
  if tonumber(opts.exit_after) then
    local t = uv.new_timer()
    srv.handles[#srv.handles + 1] = t
    t:start(floor(tonumber(opts.exit_after) * 1000), 0, srv.close)
  end
  if opts.port_file then
    local tmp = opts.port_file .. ".tmp." .. uv.os_getpid()
    local f = assert(io.open(tmp, "w"))
    f:write(port, "\n")
    f:close()
    assert(os.rename(tmp, opts.port_file))
  end
  if opts.announce ~= false then
    io.stdout:write("aigc devserver listening on ", srv.url, "\n")
    io.stdout:flush()
  end
  return srv
end

--- Run a server until SIGINT/SIGTERM (or --parent-pid / --exit-after) stops it.
-- Takes the options of `start`; blocks while serving.
-- @tparam[opt] table opts
-- @treturn boolean true once stopped cleanly (raises if it cannot listen)
-- @usage require("aigc.devserver").run{ port = 8089, pause_ms = 20 }
function M.run (opts)
  local srv = assert(M.start(opts))
  srv.owns_loop = true
  for _, name in ipairs { "sigint", "sigterm" } do
    local sig = uv.new_signal()
    srv.handles[#srv.handles + 1] = sig
    sig:start(name, function () srv.close() end)
  end
  local pipe = uv.new_signal() -- a client gone mid-write must not kill us with SIGPIPE
  srv.handles[#srv.handles + 1] = pipe
  pipe:start("sigpipe", function () end)
  uv.run("default")
  return true
end

local USAGE = [[
usage: lua5.4 lua/aigc/devserver.lua [--host 127.0.0.1] [--port 8089] [--port-file PATH]
         [--pause-ms N] [--api-key KEY] [--quiet] [--parent-pid PID] [--exit-after SECONDS]
         [--idle-timeout SECONDS]
]]

--- Parse command-line arguments into `run` options.
-- @tparam table argv the script's arguments
-- @treturn table options, or nil and a message
-- @usage local opts = assert(require("aigc.devserver").parse_args{ "--port", "0" })
function M.parse_args (argv)
  local opts, i = {}, 1
  local names = { ["--host"] = "host", ["--port"] = "port", ["--port-file"] = "port_file",
    ["--pause-ms"] = "pause_ms", ["--api-key"] = "api_key", ["--parent-pid"] = "parent_pid",
    ["--exit-after"] = "exit_after", ["--idle-timeout"] = "idle_timeout" }
  local numeric = { port = true, pause_ms = true, parent_pid = true, exit_after = true, idle_timeout = true }
  while argv[i] do
    local a = argv[i]
    local k, v = match(a, "^(%-%-[%w%-]+)=(.*)$")
    k = k or a
    if k == "--quiet" then opts.quiet = true
    elseif k == "--help" or k == "-h" then return nil, USAGE
    elseif names[k] then
      if v == nil then i = i + 1; v = argv[i] end
      if v == nil then return nil, "missing value for " .. k .. "\n" .. USAGE end
      local key = names[k]
      if numeric[key] then
        v = tonumber(v)
        if not v then return nil, "invalid number for " .. k .. "\n" .. USAGE end
      end
      opts[key] = v
    else
      return nil, "unknown argument " .. a .. "\n" .. USAGE
    end
    i = i + 1
  end
  return opts
end

local function main (argv)
  local opts, err = M.parse_args(argv or {})
  if not opts then
    io.stderr:write(err)
    os.exit(err == USAGE and 0 or 2)
  end
  local ok, e = pcall(M.run, opts)
  if not ok then
    io.stderr:write("aigc devserver: ", tostring(e), "\n")
    os.exit(1)
  end
  os.exit(0)
end

if not pcall(debug.getlocal, 4, 1) then main(arg) end

return M
