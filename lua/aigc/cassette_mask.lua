--- aigc.cassette_mask: what the recording proxy (aigc/cassette_server.lua)
-- masks or drops of a response before it is stored on a tape: the
-- credentials a request carries (and their base64, hex, percent-encoded
-- and JSON-escaped forms), the private header lines. Loaded by that
-- process, which runs without aigc's other modules (Lua 5.4, luv and
-- lua-cjson): it needs nothing of aigc.
-- @module aigc.cassette_mask
-- @local

local cjson = require "cjson"

local M = {}

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
-- (aigc.credentials.credential_header: `x-goog-api-key`, `Ocp-Apim-Subscription-Key`,
-- `X-Auth-Token`...), and a call's `api_key` or `azure_ad_token` param,
-- which goes in the body, as does any string under a credential's name
-- there (a gateway's per-user key in extra_body: aigc.credentials.call_credentials):
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
    if #secret < 8 then   -- (a short one: as a word only; its hex and base64 ones, and "Bearer <it>"'s, too)
      local hex = secret:gsub(".", function (c) return string.format("%02x", c:byte()) end)
      for _, f in ipairs { secret, hex, base64(secret), base64("Bearer " .. secret) } do
        whole[#whole + 1] = { f:lower() }
        whole[#whole + 1] = { (f:gsub("=+$", "")):lower() }
      end
    end
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

local LEVELS = 3   -- (as src/unescape.h's AIGC_LEVELS)
local function mask (s, pieces, whole)
  local runs = {}   -- [from, to] pairs, in order, possibly overlapping
  runs_in(s:lower(), nil, pieces, whole, runs)
  local decoded, map = unescaped(s)
  for _ = 1, LEVELS do   -- (escapes nested: "%25252F", "&amp;#x73;": each level decoded from the one before)
    if not decoded then break end
    runs_in(decoded:lower(), map, pieces, whole, runs)
    local deeper, back = unescaped(decoded)
    if deeper then
      for j = 1, #back do back[j] = map[back[j]] end
    end
    decoded, map = deeper, back
  end
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

M.B64, M.base64, M.credentials, M.pieces_of, M.mask, M.mask_split, M.utf8_text, M.drop_private_headers =
  B64, base64, credentials, pieces_of, mask, mask_split, utf8_text, drop_private_headers

return M
