--[[
aigc cassette replay server -- serves a cassette's recorded exchanges over
loopback HTTP so that a client in replay mode runs through the real engine.

Run by aigc.cassette (never by hand, though it can be):
  lua5.4 lua/aigc/cassette_server.lua CASSETTE [--parent-pid PID] [--no-timing]
  lua5.4 lua/aigc/cassette_server.lua CASSETTE --record http://HOST:PORT [--parent-pid PID]
It needs Lua 5.4, luv and lua-cjson (what the bundled devserver needs),
whatever Lua the client runs on. When ready it prints one line to stdout:
  `aigc cassette server PORT PID` (PORT on 127.0.0.1, PID its own).

The client chooses the exchange (the canonical request key is computed in
one place, aigc.cassette) and names it in the header `x-aigc-cassette: N`
(the exchange on line N of the cassette). This server only plays bytes:
an exchange it recorded itself (`raw`) is the upstream's whole response,
status line, headers and body framing included, played back as it came;
one the client recorded (an https upstream, see aigc.cassette) is
the recorded status, headers and body, or for a stream the recorded SSE
event bytes at their recorded offsets (unless --no-timing), the body ended
by closing the connection (`Connection: close`: HTTP/1.1 allows a body
delimited by the close when it has no length). `x-aigc-cassette: miss`
with `x-aigc-cassette-request: DESCRIPTION` answers 404 with an OpenAI
error body (code "cassette_miss") naming the request, so a miss is one
error whatever kind of call made it. A request is read whole (its body by
Content-Length or chunks) before it is answered; a head over 1 MiB is
answered 431, a body over 1 GiB 413 (no client sends either).
RECORDING (--record URL: a plain-http upstream such as the bundled server):
a proxy. Each request is sent on to the upstream as it came, minus the
x-aigc-cassette-* headers, with `Connection: close`; the response goes
back to the client byte for byte as it arrives and is appended to the
cassette as one line `{key, raw = true, events = [{t, data}]}`: the bytes
cut after each newline (so no UTF-8 character is split), t in ms from the
request. The key comes from the client in `x-aigc-cassette-key`. Nothing
of the request (its Authorization header) is stored, and the credentials
it carries are masked in what is stored of the response (a server may
echo the key in a header or a body), as the engine scrubs errors: any run
of 12 bytes or more of one or of its base64, hex or percent-encoded
forms, in any case, as it is or in a JSON string with any character
escaped ("\/", Gson's "\u003d"), becomes `[redacted]***`, as many bytes;
one a stream's deltas carry a few characters at a time, `*` each.
It exits when its parent is gone
(polled every 0.5 s) or on SIGTERM; a
recording proxy's SIGTERM first lets the exchanges in flight finish and be
written (at most 5 s).
]]

local uv = require "luv"
local cjson = require "cjson"

local path, parent, timing, upstream = nil, nil, true, nil
do
  local i = 1
  while arg[i] do
    if arg[i] == "--parent-pid" then parent = tonumber(arg[i + 1]); i = i + 1
    elseif arg[i] == "--record" then upstream = arg[i + 1]; i = i + 1
    elseif arg[i] == "--no-timing" then timing = false
    else path = arg[i] end
    i = i + 1
  end
end
if not path then
  io.stderr:write("usage: cassette_server.lua CASSETTE [--parent-pid PID] [--no-timing]\n")
  os.exit(2)
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function base64 (s)
  return (s:gsub("..?.?", function (g)
    local a, b, c = g:byte(1, 3)
    local n, out = a * 65536 + (b or 0) * 256 + (c or 0), {}
    for i = 1, 4 do
      local d = math.floor(n / 64 ^ (4 - i)) % 64   -- (no bit operators: Lua 5.1 and LuaJIT run this too)
      out[i] = B64:sub(d + 1, d + 1)
    end
    return table.concat(out):sub(1, #g + 1) .. ("="):rep(3 - #g)
  end))
end

local function unbase64 (s)
  local bits = s:gsub("[^%w+/]", ""):gsub(".", function (ch)
    local v = B64:find(ch, 1, true) - 1
    local out = {}
    for i = 6, 1, -1 do out[#out + 1] = math.floor(v / 2 ^ (i - 1)) % 2 end
    return table.concat(out)
  end)
  return (bits:gsub("%d%d%d%d%d%d%d%d", function (byte) return string.char(tonumber(byte, 2)) end)
              :gsub("[01]+$", ""))
end

-- (the decoder of what is played: unbase64's string of bits took seconds
-- for a megabyte of audio)
local B64_VALUE = {}
for i = 1, 64 do B64_VALUE[B64:byte(i)] = i - 1 end

local function decode64 (s)
  return ((s:gsub("[^%w+/]", ""):gsub("..?.?.?", function (g)
    local n = 0
    for i = 1, 4 do n = n * 64 + (B64_VALUE[g:byte(i) or 0] or 0) end
    local bytes = string.char(math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
    return bytes:sub(1, #g - 1)   -- (4 characters: 3 bytes; 3: 2; 2: 1)
  end)))
end

-- The exchanges, by line number (blank lines keep their number).
local exchanges = {}
if not upstream then
  local f = assert(io.open(path, "rb"))
  local n = 0
  for line in f:lines() do
    n = n + 1
    -- (a line that does not decode is a torn last one, which the client
    -- names no request with: the client refuses any other)
    if line:find("%S") then
      local ok, x = pcall(cjson.decode, line)
      if ok then
        exchanges[n] = x
        if type(x) == "table" and x.body == nil and type(x.body_b64) == "string" then x.body = decode64(x.body_b64) end
        for _, ev in ipairs(type(x) == "table" and type(x.events) == "table" and x.events or {}) do
          if type(ev) == "table" and ev.data == nil and type(ev.b64) == "string" then ev.data = decode64(ev.b64) end
        end
      end
    end
  end
  f:close()
end

local REASONS = { [200] = "OK", [400] = "Bad Request", [401] = "Unauthorized", [404] = "Not Found",
                  [413] = "Payload Too Large", [429] = "Too Many Requests",
                  [431] = "Request Header Fields Too Large", [500] = "Internal Server Error",
                  [507] = "Insufficient Storage" }
-- Hop-by-hop and length headers: this server sets its own.
local SKIP = { ["content-length"] = true, ["transfer-encoding"] = true, ["connection"] = true,
               ["keep-alive"] = true }

local function head (status, headers, content_length)
  local lines = { ("HTTP/1.1 %d %s"):format(status, REASONS[status] or "Status") }
  for name, value in pairs(headers or {}) do
    if not SKIP[name:lower()] then lines[#lines + 1] = name .. ": " .. tostring(value) end
  end
  if content_length then lines[#lines + 1] = "Content-Length: " .. content_length end
  lines[#lines + 1] = "Connection: close"
  return table.concat(lines, "\r\n") .. "\r\n\r\n"
end

-- Answers `status` with an OpenAI error body, then closes; `linger`: once
-- the client closes too, at most 2 s later (the caller drops what it still
-- reads: closed with bytes unread, the socket sends a reset, which can
-- take the answer with it).
local function refuse (sock, status, message, code, linger)
  local body = cjson.encode { error = { message = message, type = "invalid_request_error", code = code,
                                        param = cjson.null } }
  sock:write(head(status, { ["content-type"] = "application/json" }, #body) .. body)
  if not linger then return sock:shutdown(function () sock:close() end) end
  sock:shutdown()
  local t = uv.new_timer()
  t:start(2000, 0, function () t:close(); if not sock:is_closing() then sock:close() end end)
end

local MAX_HEAD = 1024 * 1024
local MAX_BODY = 1024 * 1024 * 1024   -- (more than an upload takes: OpenAI's files are at most 512 MB)

-- Plays exchange `x` on `sock`, then closes it.
local function play (sock, x)
  local function finish () if not sock:is_closing() then sock:shutdown(function () sock:close() end) end end
  if not x.events then
    local body = x.body or ""
    sock:write(head(x.status or 200, x.headers, #body) .. body)
    return finish()
  end
  if not x.raw then sock:write(head(x.status or 200, x.headers)) end
  local i, timer, t0 = 0, uv.new_timer(), uv.now()
  local function next_event ()
    i = i + 1
    local ev = x.events[i]
    if ev == nil or sock:is_closing() then timer:close(); return finish() end
    sock:write(ev.data)
    local nxt = x.events[i + 1]
    local wait = (timing and nxt) and math.max(0, math.floor((nxt.t or 0) - (uv.now() - t0))) or 0
    timer:start(wait, 0, next_event)
  end
  timer:start(timing and math.floor(x.events[1] and x.events[1].t or 0) or 0, 0, next_event)
end

-- The upstream of a recording: host, port, address.
local up_host, up_port, up_addr
if upstream then
  -- (an IPv6 literal too, "http://[::1]:8080", and a scheme in capitals:
  -- both made the proxy exit, and the client raised that its server "did
  -- not start (needs lua5.4 with luv...)")
  local rest = upstream:match("^[Hh][Tt][Tt][Pp]://(.*)$") or ""
  local literal, port6 = rest:match("^%[([%x:.]+)%]:?(%d*)")
  if literal then up_host, up_port = "[" .. literal .. "]", port6
  else up_host, up_port = rest:match("^([^/:?]+):?(%d*)") end
  if not up_host then io.stderr:write("--record needs an http:// URL\n") os.exit(2) end
  up_port = tonumber(up_port) or 80
  -- IPv4 first (a "localhost" server listening on 127.0.0.1 alone), else any
  local ai = not literal and uv.getaddrinfo(up_host, nil, { socktype = "stream", family = "inet" })
  ai = ai or assert(uv.getaddrinfo(literal or up_host, nil, { socktype = "stream" }))
  up_addr = ai[1].addr
end

-- Credential-like query parameter names (aigc.util's secret_param: this
-- process runs without aigc's modules).
local SECRET_WORDS = { secret = true, password = true, passwd = true, auth = true, authorization = true,
                       sig = true, signature = true, credential = true, credentials = true, jwt = true,
                       assertion = true }
local function secret_param (name)
  name = name:lower()
  if name:find("key$") or name:find("token$") or name == "code" then return true end
  for word in name:gmatch("[^%-_.]+") do if SECRET_WORDS[word] then return true end end
  return false
end

-- The credentials a request carries: the values of its Authorization,
-- api-key, x-api-key and Proxy-Authorization headers (each word of them:
-- X of "Bearer X", KEY and ORG of "KEY ORG";
-- of "Basic X", the password and "user:password" X encodes) and of its
-- credential-like query parameters. They are what the client's engine
-- scrubs from errors and logs (its key, token, header credentials, URL
-- secrets, a call's own); a server may echo them back, and none may be
-- stored. Shorter than 8 bytes: only one of 4-7 with a letter and a digit,
-- as a word (as the engine's rule).
-- Every header the client takes for a credential by its name
-- (util.credential_header: `x-goog-api-key`, `Ocp-Apim-Subscription-Key`,
-- `X-Auth-Token`...), and a call's `api_key` or `azure_ad_token` param,
-- which goes in the body, as does any string under a credential's name
-- there (a gateway's per-user key in extra_body: util.call_credentials):
-- with the four names alone, such a key echoed by the server was written
-- to the tape as it is (the client's own recording, for https, masked it).
local HEADER_WORDS = { authentication = true, cookie = true, session = true, sessionid = true }
local function credential_header (name)
  if name == "idempotency-key" or name == "code" or name:find("^x%-aigc%-") then return false end
  if secret_param(name) then return true end
  for word in name:gmatch("[^%-_.]+") do if HEADER_WORDS[word] then return true end end
  return false
end

-- The names of HTTP auth schemes, not secrets in front of one (src/redact.c).
local AUTH_SCHEMES = {}
for w in ("bearer basic token digest negotiate ntlm apikey api-key key sharedkey sharedkeylite "
          .. "aws4-hmac-sha256 hoba mutual oauth dpop ssws bot jwt"):gmatch("%S+") do AUTH_SCHEMES[w] = true end

local function credentials (request_head, body)
  local list = {}
  local function add (v)   -- (4-7 bytes: with a letter and a digit, searched as a word, as the engine's short ones)
    if v and (#v >= 8 or (#v >= 4 and v:find("%a") and v:find("%d"))) then list[#list + 1] = v end
  end
  local ok, sent = pcall(cjson.decode, body or "")
  local seen = {}
  local function walk (t)   -- (a call's api_key, azure_ad_token, a key in its extra_body: any depth)
    if seen[t] then return end
    seen[t] = true
    for k, v in pairs(t) do
      if type(v) == "table" then walk(v)
      elseif type(v) == "string" and type(k) == "string" and secret_param(k) then add(v) end
    end
  end
  if ok and type(sent) == "table" then walk(sent) end
  for name, value in request_head:gmatch("\r\n([^:\r\n]+):[ \t]*([^\r\n]*)") do
    name = name:lower()
    if credential_header(name) then
      local scheme, cred = value:match("^(%S+)%s+(%S+)%s*$")
      local first = value:match("^%s*(%S+)%s+%S")   -- (a first word with more after it)
      for word in value:gmatch("%S+") do   -- (each word but a scheme in front, as the engine takes them)
        if not (first and AUTH_SCHEMES[first:lower()]) then add(word) end
        first = nil
      end
      if scheme and scheme:lower() == "basic" and cred then
        local userpass = unbase64(cred)
        add(userpass)
        add(userpass:match(":(.*)$"))
      end
    end
  end
  local query = request_head:match("^%S+ [^?%s]*%?(%S*)") or ""
  for k, v in query:gmatch("([^&=]+)=([^&]*)") do
    if secret_param(k) then
      add(v)
      add((v:gsub("%%(%x%x)", function (h) return string.char(tonumber(h, 16)) end)))
    end
  end
  return list
end

-- What is searched for each credential, as the engine's scrub: the
-- credential and the characters of its base64 forms that it alone decides
-- (base64(X .. secret .. Y) for X of 0, 1 or 2 bytes mod 3: an echoed
-- "Bearer <key>" or Basic credential; and of the secret upper- or
-- lower-cased), its hex and percent-encoded forms (reserved bytes, or every
-- byte: "%73%6B..."), all in any ASCII case (kept lower-cased, and
-- matched against the text lower-cased), in the text and in the text
-- unescaped (`unescaped`). Each run of 12 bytes of one -> true. A short
-- one (4-7 bytes, a letter and a digit: a local server's "sk-1") only
-- whole, as a word, as the engine's.
local RUN = 12

-- The forms of one secret of 8 bytes or more (above).
local function forms_of (secret)
  local forms = { secret, (secret:gsub(".", function (c) return string.format("%02x", c:byte()) end)),
                  (secret:gsub("[^%w%-%._~]", function (c) return string.format("%%%02x", c:byte()) end)),
                  (secret:gsub(".", function (c) return string.format("%%%02x", c:byte()) end)) }   -- (every byte)
  local n = #secret
  for r = 0, 2 do   -- (of the secret as it is, upper- and lower-cased: a gateway folding a header's case)
    local c0, c1 = math.floor((8 * r + 5) / 6), math.floor(8 * (r + n) / 6)
    for _, cased in ipairs { secret, secret:upper(), secret:lower() } do
      local b = base64(("\0"):rep(r) .. cased):sub(c0 + 1, c1)
      forms[#forms + 1], forms[#forms + 2] = b, (b:gsub("[+/]", { ["+"] = "-", ["/"] = "_" }))   -- (and base64url)
    end
  end
  return forms
end

local function pieces_of (secrets)
  local pieces, whole = {}, {}
  for _, secret in ipairs(secrets) do
    if #secret < 8 then whole[#whole + 1] = { secret:lower() } end   -- (a short one: as a word only)
    for _, f in ipairs(#secret < 8 and {} or forms_of(secret)) do
      f = f:lower()
      if #f < RUN then whole[#whole + 1] = f end
      for i = 1, #f - RUN + 1 do pieces[f:sub(i, i + RUN - 1)] = true end
    end
  end
  return pieces, whole
end

-- `s` with each run of 12 bytes or more of a credential or of its base64
-- forms (a shorter one: whole) masked by as many bytes ("[redacted]***"):
-- the recorded bytes keep their lengths, so Content-Length and chunk
-- sizes stay right, and a replay plays the masked text as it was recorded.
-- A text's JSON escapes decoded ("\u003d" -> "=", "\/" -> "/"; a code
-- past ASCII stays as it is: secrets are ASCII), their backslash doubled
-- by each JSON string they were wrapped in too ("\\u003d": a gateway's
-- string around an upstream's JSON text), and a backslash before other
-- punctuation ("\="), HTML references ("&#x73;", "&amp;"), a percent-
-- encoded byte ("%2F": "%252F" -> "%2F"), as src/redact.c decodes them;
-- and at[j], where decoded byte j comes from in s: a key with any
-- character escaped (Gson's '=', a gateway's every one) is searched for
-- there too. nil: no escape.
local SHORT_ESCAPES = { ['"'] = '"', ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }
local HTML_NAMES = { ["&amp;"] = "&", ["&lt;"] = "<", ["&gt;"] = ">", ["&quot;"] = '"', ["&apos;"] = "'" }
local function unescaped (s)
  if not s:find("[\\&%%]") then return nil end
  local out, at, i = {}, {}, 1
  while i <= #s do
    local d, e = s:sub(i, i), 1
    if d == "\\" then
      local j = i + #s:match("^\\+", i)   -- (past the run of backslashes)
      local code = tonumber(s:match("^u(%x%x%x%x)", j) or "", 16)
      if code and code < 128 then d, e = string.char(code), j + 5 - i
      elseif SHORT_ESCAPES[s:sub(j, j)] then d, e = SHORT_ESCAPES[s:sub(j, j)], j + 1 - i
      elseif s:find("^%p", j) then d, e = s:sub(j, j), j + 1 - i
      else e = j - i end   -- (backslashes escaping nothing: one)
    elseif d == "&" or d == "%" then
      local ref = s:match("^&#[xX]%x+;", i) or s:match("^&#%d+;", i) or s:match("^&%a+;", i) or s:match("^%%%x%x", i)
      local code = ref and (d == "%" and tonumber(ref:sub(2), 16) or tonumber(ref:sub(3, -2))
                            or tonumber(ref:sub(4, -2), 16))
      if ref and (HTML_NAMES[ref] or (code and code < 128)) then d, e = HTML_NAMES[ref] or string.char(code), #ref end
    end
    out[#out + 1], at[#out + 1], i = d, i, i + e
  end
  at[#out + 1] = #s + 1
  return table.concat(out), at
end

-- Adds to runs the runs of `text` (lower-cased), mapped by at (nil: as they are).
local function runs_in (text, at, pieces, whole, runs)
  local function add (a, b) runs[#runs + 1] = at and { at[a], at[b + 1] - 1 } or { a, b } end
  for i = 1, #text - RUN + 1 do
    if pieces[text:sub(i, i + RUN - 1)] then add(i, i + RUN - 1) end
  end
  for _, w in ipairs(whole) do
    local i, word = 1, type(w) == "table"
    w = word and w[1] or w
    while true do
      local a, b = text:find(w, i, true)
      if not a then break end
      if not (word and ((a > 1 and text:find("^%w", a - 1)) or text:find("^%w", b + 1))) then add(a, b) end
      i = word and a + 1 or b + 1
    end
  end
end

local function mask (s, pieces, whole)
  local runs = {}   -- [from, to] pairs, in order, possibly overlapping
  runs_in(s:lower(), nil, pieces, whole, runs)
  local decoded, map = unescaped(s)
  if decoded then runs_in(decoded:lower(), map, pieces, whole, runs) end
  if #runs == 0 then return s end
  table.sort(runs, function (x, y) return x[1] < y[1] end)
  local out, at, k = {}, 1, 1
  while k <= #runs do
    local a, b = runs[k][1], runs[k][2]
    k = k + 1
    while k <= #runs and runs[k][1] <= b + 1 do
      if runs[k][2] > b then b = runs[k][2] end
      k = k + 1
    end
    out[#out + 1] = s:sub(at, a - 1)
    out[#out + 1] = ("[redacted]" .. ("*"):rep(b - a + 1)):sub(1, b - a + 1)
    at = b + 1
  end
  out[#out + 1] = s:sub(at)
  return table.concat(out)
end

-- A key a stream's deltas carry a few characters at a time (a model
-- repeating the key of a prompt, one token a chunk) is in no one event:
-- the short JSON string values of each name ("content": "sk-p", "roj-"...),
-- unescaped and joined in order over the exchange's events, are searched
-- too, and each byte of a run that spans two of them or more is masked
-- as "*" where it came from (as many bytes: the framing holds).
local PIECE_MAX, LINE_MAX = 64, 16384   -- (a stream's chunk is a short line; a long one is searched whole)
-- Adds to by_name the string values of one line (at byte `base` of event n).
local function line_values (line, n, base, by_name)
  local i = 1
  while true do
    local _, b, name = line:find('"([%w_]+)"%s*:%s*"', i)
    if not b then return end
    local j = b + 1
    repeat   -- (to its end quote, past escapes)
      local q = line:find('["\\]', j)
      j = q and (line:byte(q) == 92 and q + 2 or q) or #line + 1
    until not q or line:byte(q) == 34
    local raw = line:sub(b + 1, j - 1)
    if #raw <= PIECE_MAX then
      local g = by_name[name]
      if not g then g = { text = {}, ev = {}, lo = {}, hi = {}, piece = {}, pieces = 0 }; by_name[name] = g end
      local decoded, at = unescaped(raw)
      g.pieces = g.pieces + 1
      g.text[#g.text + 1] = decoded or raw
      for k = 1, #(decoded or raw) do
        local m = #g.ev + 1
        g.ev[m], g.piece[m] = n, g.pieces
        g.lo[m], g.hi[m] = base + b + (at and at[k] or k), base + b + (at and at[k + 1] - 1 or k)
      end
    end
    i = j + 1
  end
end

-- name -> its values' bytes, decoded, over the events: text (the pieces),
-- and per byte its event, where it came from there (lo, hi), its piece.
local function split_values (events)
  local by_name = {}
  for n, ev in ipairs(events) do
    local base = 0
    for line in ev.data:gmatch("[^\n]*\n?") do
      if #line <= LINE_MAX then line_values(line, n, base, by_name) end
      base = base + #line
    end
  end
  return by_name
end

local function mask_split (events, pieces, whole)
  local stars = {}   -- event -> { [byte] = true }
  for _, g in pairs(split_values(events)) do
    local runs = {}
    if g.pieces > 1 then runs_in(table.concat(g.text):lower(), nil, pieces, whole, runs) end
    for _, r in ipairs(runs) do
      if g.piece[r[1]] ~= g.piece[r[2]] then
        for k = r[1], r[2] do
          local set = stars[g.ev[k]] or {}
          stars[g.ev[k]] = set
          for x = g.lo[k], g.hi[k] do set[x] = true end
        end
      end
    end
  end
  for n, set in pairs(stars) do
    local xs, s, out, from = {}, events[n].data, {}, 1
    for x in pairs(set) do xs[#xs + 1] = x end
    table.sort(xs)
    for _, x in ipairs(xs) do
      out[#out + 1] = s:sub(from, x - 1) .. "*"
      from = x + 1
    end
    out[#out + 1] = s:sub(from)
    events[n].data = table.concat(out)
  end
end

-- Whether `s` is valid UTF-8 (what a JSON string may hold: the client's
-- decoder refuses anything else). Without the utf8 library (Lua 5.1,
-- LuaJIT): ASCII only.
local function utf8_text (s)
  local utf8_lib = rawget(_G, "utf8")
  if utf8_lib and utf8_lib.len then return utf8_lib.len(s) ~= nil end
  return not s:find("[\128-\255]")
end

-- Response headers that may carry a session or a credential, never
-- stored (aigc.cassette's private_header: this process runs without
-- aigc's modules). A session cookie in a tape was on disk for anyone who
-- got the file (tapes are committed with the tests).
local PRIVATE = { ["set-cookie"] = true, ["set-cookie2"] = true, ["cookie"] = true, ["authorization"] = true,
                  ["proxy-authorization"] = true, ["api-key"] = true, ["x-api-key"] = true,
                  ["authentication-info"] = true, ["proxy-authentication-info"] = true }

-- The recorded events without the PRIVATE header lines of the response's
-- head (and of the interim 1xx heads before it). The events are cut after
-- newlines, so a header line is never split between two; the body is
-- left as it came (its framing does not count the head).
local function drop_private_headers (events)
  local interim, dropping = false, false
  for _, ev in ipairs(events) do
    local kept, at = {}, 1
    while at <= #ev.data do
      local line = ev.data:match("^[^\n]*\n?", at)
      at = at + #line
      if line == "\r\n" or line == "\n" then
        kept[#kept + 1] = line
        if not interim then   -- (the head has ended: the rest is the body's)
          kept[#kept + 1] = ev.data:sub(at)
          ev.data = table.concat(kept)
          return
        end
        interim = false
      elseif line:find("^[ \t]") then   -- (a folded line: goes with its header)
        if not dropping then kept[#kept + 1] = line end
      else
        if line:find("^HTTP/%S+%s+1%d%d") then interim = true end
        local name = line:match("^([^:\r\n]+):")
        dropping = name ~= nil and PRIVATE[name:lower()] == true
        if not dropping then kept[#kept + 1] = line end
      end
    end
    ev.data = table.concat(kept)
  end
end

-- A failed append (a full disk) lost the exchange unsaid: the first one's
-- reason is kept, told on stdout (the client reads it as it closes the
-- cassette and reports it, kind "io") and to every later request, which is
-- not forwarded (a call made and paid for, then lost from the tape).
local tape_failed, lost = nil, 0
local function tape_fail (why)
  lost = lost + 1
  tape_failed = tape_failed or ("could not write " .. path .. ": " .. tostring(why))
  io.stdout:write(("aigc cassette server: %s (%d exchange(s) not on the tape)\n"):format(tape_failed, lost))
  io.stdout:flush()
end

local function append_exchange (key, events, secrets)
  local fd, oerr = uv.fs_open(path, "a", tonumber("600", 8))
  if not fd then return tape_fail(oerr) end
  drop_private_headers(events)
  local pieces, whole = pieces_of(secrets)
  mask_split(events, pieces, whole)
  for _, ev in ipairs(events) do
    ev.data = mask(ev.data, pieces, whole)
    -- Bytes that are no text (audio, an image, a gzip body) as base64:
    -- written as they came, the line was no JSON the client could read,
    -- and the whole cassette failed to open ("not a cassette exchange").
    if not utf8_text(ev.data) then ev.b64, ev.data = base64(ev.data), nil end
  end
  -- (one write(2) for the line, unbuffered: a long line went out in 4 KiB
  -- blocks then the rest, and the client appends to the same file -- a
  -- reply the response cache gave -- which could come between the parts)
  local line = cjson.encode { key = key, raw = true, events = events } .. "\n"
  -- (the disk full inside the line: what went is cut off again, when
  -- nothing was appended after it since; the rest tried, for its errno)
  local done, werr = 0, nil
  while done < #line and not werr do
    local n, e = uv.fs_write(fd, done == 0 and line or line:sub(done + 1))
    if n and n > 0 then done = done + n else werr = e or "nothing written" end
  end
  local st = werr and done > 0 and uv.fs_fstat(fd)
  if st then uv.fs_ftruncate(fd, st.size - done) end
  local closed, cerr = uv.fs_close(fd)
  if werr or not closed then tape_fail(werr or cerr) end
end

-- The request as the upstream gets it: no x-aigc-cassette-* header, its
-- own Host, Connection: close (the response then ends with the connection).
local function upstream_request (request_head, body)
  local lines = { request_head:match("^[^\r\n]*") }
  for line in request_head:gmatch("\r\n([^\r\n]+)") do
    local name = (line:match("^([^:]*):") or ""):lower()
    if not (name:find("^x%-aigc%-cassette") or name == "connection" or name == "host") then
      lines[#lines + 1] = line
    end
  end
  lines[#lines + 1] = "Host: " .. up_host .. ":" .. up_port
  lines[#lines + 1] = "Connection: close"
  return table.concat(lines, "\r\n") .. "\r\n\r\n" .. body
end

-- Exchanges being recorded; a SIGTERM waits for them (the client may have
-- its whole response before this process has seen the upstream close and
-- written the line), at most DRAIN_MS.
local recording, draining, DRAIN_MS = 0, false, 5000

-- Forwards one request, relays and records the response.
local function proxy (sock, request_head, body, key)
  -- (`pending`: the pieces of the line not yet ended, joined once it ends:
  -- joining them at each piece copied a long line -- a reply of several MB
  -- on one line -- once per piece, quadratic)
  if tape_failed then   -- (x-should-retry: the engine would ask again and again)
    local msg = cjson.encode { error = { message = "cassette recording: " .. tape_failed .. "; " .. lost
      .. " exchange(s) not on the tape", type = "server_error", code = "cassette_tape" } }
    sock:write(head(507, { ["content-type"] = "application/json", ["x-should-retry"] = "false" }, #msg) .. msg)
    return sock:shutdown(function () sock:close() end)
  end
  local up, t0, events, pending = uv.new_tcp(), uv.now(), {}, {}
  local secrets = credentials(request_head, body)
  recording = recording + 1
  local function finish ()
    recording = recording - 1
    if draining and recording == 0 then uv.stop() end
    if not sock:is_closing() then sock:shutdown(function () sock:close() end) end
  end
  up:connect(up_addr, up_port, function (cerr)
    if cerr then
      up:close()
      local msg = cjson.encode { error = { message = "cassette recording: upstream " .. upstream .. ": " .. cerr,
                                           type = "server_error", code = "cassette_upstream" } }
      sock:write(head(502, { ["content-type"] = "application/json" }, #msg) .. msg)
      return finish()
    end
    up:write(upstream_request(request_head, body))
    up:read_start(function (rerr, data)
      if data then
        if not sock:is_closing() then sock:write(data) end
        -- (only the new piece is searched; anchored: unanchored, a piece
        -- with no newline -- a long line of base64, an image stream's --
        -- was searched from each of its bytes)
        local cut = data:match("^.*\n()")
        if cut then
          pending[#pending + 1] = data:sub(1, cut - 1)
          events[#events + 1] = { t = uv.now() - t0, data = table.concat(pending) }
          pending = { data:sub(cut) }
        else
          pending[#pending + 1] = data
        end
        return
      end
      local rest = table.concat(pending)
      if rest ~= "" then events[#events + 1] = { t = uv.now() - t0, data = rest } end
      up:close()
      if not rerr and key and #events > 0 then append_exchange(key, events, secrets) end
      finish()
    end)
  end)
end

-- The line to play: the first the client named ("12 14 19": the
-- exchanges of its key from the one its call is at), and for each further
-- attempt of the same call (the engine retrying a 429 or a 5xx) the next
-- one when the last was recorded by the proxy, which recorded every
-- attempt; a whole call recorded in the client is played again.
-- The attempts of the last KEEP_CALLS calls only are kept (a call's
-- attempts come while it is in flight): the server kept them for every
-- call it served, as long as it ran (~400 bytes a call: 8 MiB over 20,000
-- calls of one replaying client).
local KEEP_CALLS = 1024
local attempts = {}   -- call name -> { lines, index }
local names, count = {}, 0   -- the names kept: a ring of KEEP_CALLS

local function remember (call, a)
  if attempts[call] == nil then
    count = count + 1
    local slot = (count - 1) % KEEP_CALLS + 1
    if names[slot] ~= nil then attempts[names[slot]] = nil end
    names[slot] = call
  end
  attempts[call] = a
end

local function pick (which, call)
  local lines = {}
  for n in (which or ""):gmatch("%d+") do lines[#lines + 1] = tonumber(n) end
  if #lines == 0 then return nil end
  local a = call and attempts[call]
  if not a or a.which ~= which then
    a = { which = which, i = 1 }
    if call then remember(call, a) end
  elseif exchanges[lines[a.i]] and exchanges[lines[a.i]].raw and a.i < #lines then
    a.i = a.i + 1
  end
  return lines[a.i]
end

-- Where a chunked body ends: feeds `data` to `st` (its framing so far);
-- the bytes of data up to the end, or nil (not yet), or false and the status
-- to refuse it with. (Such a body -- an upload of a file of no known size,
-- a pipe's -- was taken as none: the proxy sent the head alone and the
-- upstream waited for the chunks, the call for an answer.)
local function chunked_end (st, data)
  local i = 1
  while i <= #data do
    if st.left > 0 then
      local take = math.min(st.left, #data - i + 1)
      st.left, i = st.left - take, i + take
    else
      local nl = data:find("\n", i, true)
      st.line = st.line .. data:sub(i, (nl or #data + 1) - 1)
      if #st.line > 4096 then return false, 400 end
      if not nl then return nil end
      local line = st.line:gsub("\r$", "")
      st.line, i = "", nl + 1
      if st.trailer then
        if line == "" then return i - 1 end
      elseif st.crlf then   -- (after a chunk's data)
        if line ~= "" then return false, 400 end
        st.crlf = false
      else
        local digits = (line:match("^[ \t]*(%x+)") or ""):gsub("^0+(%x)", "%1")
        if digits == "" then return false, 400 end
        st.total = st.total + (#digits <= 15 and tonumber(digits, 16) or MAX_BODY + 1)
        if st.total > MAX_BODY then return false, 413 end
        if digits == "0" then st.trailer = true else st.left, st.crlf = tonumber(digits, 16), true end
      end
    end
  end
  return nil
end

-- Reads one request (head, then its body: Content-Length bytes or chunks)
-- and answers it.
local function on_connection (server)
  local sock = uv.new_tcp()
  server:accept(sock)
  -- The pieces read, joined once the request is whole (joining them at each
  -- piece copied a body of several MB once per piece, quadratic); until the
  -- head has ended, only the new bytes (and the 3 before them) are searched
  -- for its end (a head sent a byte at a time was joined and searched whole
  -- at each byte, quadratic). A head over MAX_HEAD (more than a client
  -- sends: libcurl's limit) is refused: it was kept whatever its size.
  local parts, size, buf, hend, headers, need, tail, refused, chunks = {}, 0, "", nil, nil, nil, "", false, nil
  sock:read_start(function (err, data)
    if err or not data then if not sock:is_closing() then sock:close() end return end
    if refused then return end
    parts[#parts + 1], size = data, size + #data
    if not hend then
      local at = (tail .. data):find("\r\n\r\n", 1, true)
      if at then hend = size - #data - #tail + at end
      if (hend or size) > MAX_HEAD then
        refused, parts = true, nil
        return refuse(sock, 431, "request head over " .. MAX_HEAD .. " bytes", nil, true)
      end
      if not hend then tail = (tail .. data):sub(-3); return end
      buf = table.concat(parts)
      parts = { buf }
      -- (each line matched anchored: "([^:\r\n]+):" unanchored was tried
      -- from each byte of a line without a colon to its end, quadratic)
      headers = {}
      for line in buf:sub(1, hend):gmatch("[^\r\n]+") do
        local name, value = line:match("^([^:]+):[ \t]*(.*)$")
        if name then headers[name:lower()] = value end
      end
      -- (a body's length as it came was waited for: a client's 10 GB, all
      -- of it held; a length that is none is refused too)
      local length = (headers["content-length"] or "0"):match("^(%d+)[ \t]*$")
      if (headers["transfer-encoding"] or ""):lower():find("chunked", 1, true) then
        chunks, data = { left = 0, line = "", total = 0 }, buf:sub(hend + 4)
      elseif not length or #length > 15 or tonumber(length) > MAX_BODY then
        refused, parts = true, nil
        if not length then return refuse(sock, 400, "invalid Content-Length", nil, true) end
        return refuse(sock, 413, "request body over " .. MAX_BODY .. " bytes", nil, true)
      else
        need = hend + 3 + tonumber(length)
      end
    end
    if not need then
      local k, status = chunked_end(chunks, data)
      if k == false then
        refused, parts = true, nil
        return refuse(sock, status, "malformed chunked body, or over " .. MAX_BODY .. " bytes", nil, true)
      end
      if not k then return end
      need = size - #data + k
    end
    if size < need then return end
    buf = table.concat(parts)
    sock:read_stop()
    if upstream then
      return proxy(sock, buf:sub(1, hend - 1), buf:sub(hend + 4, need), headers["x-aigc-cassette-key"])
    end
    local x = exchanges[pick(headers["x-aigc-cassette"], headers["x-aigc-cassette-call"])]
    if x then return play(sock, x) end
    refuse(sock, 404, "cassette miss: no exchange recorded for "
      .. (headers["x-aigc-cassette-request"] or "this request") .. " in " .. path, "cassette_miss")
  end)
end

local server = uv.new_tcp()
assert(server:bind("127.0.0.1", 0))
assert(server:listen(64, function () on_connection(server) end))
io.stdout:write(("aigc cassette server %d %d\n"):format(server:getsockname().port, uv.os_getpid()))
io.stdout:flush()

local function stop () uv.stop() end
local sigterm = uv.new_signal()
sigterm:start("sigterm", function ()
  if recording == 0 then return stop() end
  draining = true
  server:close()
  uv.new_timer():start(DRAIN_MS, 0, stop)
end)
if parent then   -- (started in the background: its parent is init, the client is gone when it is a zombie)
  local poll = uv.new_timer()
  poll:start(500, 500, function ()
    local gone = not uv.kill(parent, 0)
    local f = not gone and io.open("/proc/" .. parent .. "/stat")
    if f then
      gone = (f:read("*a") or ""):match("%) (%a)") == "Z"
      f:close()
    end
    if gone then stop() end
  end)
end
uv.run()
os.exit(0)
