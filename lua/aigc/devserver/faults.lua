--- aigc devserver: the fault grammar and the faults applied to replies
-- (headers, bodies, streams). Header `x-aigc-fault: <spec>` or model
-- `fault:<spec>`; <spec> = comma-separated `name` or `name=value` items (the
-- devserver header lists them all). The wire faults (delay, hang, drip,
-- close-mid-body ...) are applied by the connection (aigc.devserver.conn).
-- Part of the devserver package.

local json = require "aigc.devserver.json"
local util = require "aigc.devserver.util"
local errors = require "aigc.devserver.errors"

local byte, format, gsub, lower, match, rep, sub = string.byte, string.format, string.gsub, string.lower,
  string.match, string.rep, string.sub
local concat = table.concat
local tointeger = math.tointeger
local O, A, RAW, oset, NULL = json.O, json.A, json.RAW, json.oset, json.NULL
local http_date, trim, filler_json = util.http_date, util.trim, util.filler_json
local REASONS, STATUS_ERRORS, status_error = errors.REASONS, errors.STATUS_ERRORS, errors.status_error

local M = {}

-- The grammar: each name is a flag (no value), "int" (an integer >= 0),
-- "text" (any value), or a set of allowed words.
local function words_set (...)
  local set = {}
  for _, w in ipairs { ... } do set[w] = true end
  return set
end

local GRAMMAR = {
  -- status and headers
  status = "int", ["retry-after"] = "text", ["retry-after-ms"] = "int", ["should-retry"] = "text",
  headers = "int", ["raw-header"] = "text", ["bad-gzip"] = "flag", ["echo-key"] = "flag",
  informational = "int", times = "int", skip = "int", key = "text",
  -- wire
  delay = "int", hang = "flag", drip = "int", ["close-mid-body"] = "flag", ["long-body"] = "flag",
  reset = "flag", ["garbage-status"] = "flag",
  -- bodies of a 200
  body = words_set("text", "nokey", "malformed", "empty", "not-object", "no-choices", "choices-not-array",
    "deep", "huge-number", "invalid-utf8", "huge", "empty-arrays"),
  size = "int", ["tool-calls"] = words_set("hostile"), ["plain-for-stream"] = "flag",
  ["ignore-n"] = "flag", ["default-temperature"] = "flag", ["url-page"] = "flag",
  -- streams
  pause = "int", ["drop-after"] = "int", ["no-done"] = "flag", ["error-event"] = "flag", ["error-data"] = "flag",
  crlf = "flag", cr = "flag", comments = "flag", ["no-space"] = "flag", multiline = "flag",
  ["byte-writes"] = "flag", ["no-finish-reason"] = "flag", ["malformed-chunk"] = "flag", ["repeat-ids"] = "flag",
  ["content-filter"] = "flag", ["huge-line"] = "int", ["event-bytes"] = "int", ["dup-key"] = "flag",
  ["comment-drip"] = "int",
  -- structured output
  schema = words_set("violate", "not-json"), ["no-json-schema"] = words_set(true, "422"),
  -- usage counts
  tokenizer = words_set("words", "words2"),
  -- the Responses API
  ["seq-gap"] = "flag", ["seq-disorder"] = "flag", ["failed-mid"] = "flag", truncate = "flag",
  incomplete = "flag", refusal = "flag", ["failed-after-error"] = "flag",
  -- rate limits (aigc.devserver.ratelimit)
  ["rate-limit"] = "int", ["rate-limit-tpm"] = "int",
}
local MAX_FAULT_HEADERS = 1000000

--- Add names to the grammar (the endpoint modules' own faults).
function M.extend (names)
  for k, v in pairs(names) do GRAMMAR[k] = v end
end

-- Checks after parsing: name -> function(value) returning an error message or nil.
local CHECKS = {
  status = function (v) if v < 100 or v > 599 then return "invalid value for fault 'status'" end end,
  headers = function (v) if v > MAX_FAULT_HEADERS then return "invalid value for fault 'headers'" end end,
  informational = function (v)
    if v > MAX_FAULT_HEADERS then return "invalid value for fault 'informational'" end
  end,
  ["comment-drip"] = function (v) if v == 0 then return "invalid value for fault 'comment-drip'" end end,
  ["rate-limit"] = function (v) if v == 0 then return "invalid value for fault 'rate-limit'" end end,
  ["rate-limit-tpm"] = function (v) if v == 0 then return "invalid value for fault 'rate-limit-tpm'" end end,
}

--- Parse a fault spec; returns the fault table or nil and a message.
function M.parse (spec)
  local f = { spec = spec }
  for item in string.gmatch(spec, "[^,]+") do
    item = trim(item)
    local k, v = match(item, "^([%w%-_]+)%s*=%s*(.-)$")
    if not k then k, v = item, true end
    k = lower(k)
    local kind = GRAMMAR[k]
    if item == "" then f.empty_items = true
    elseif kind == "flag" and v == true then f[k] = true
    elseif kind == "int" and v ~= true then
      local i = tointeger(tonumber(v))
      if not i or i < 0 then return nil, format("invalid value for fault '%s': %s", k, v) end
      f[k] = i
    elseif k == "raw-header" and v ~= true and v ~= "" then
      -- a comma separates fault items, so a comma inside the line is written %2C
      f.raw_headers = f.raw_headers or {}
      f.raw_headers[#f.raw_headers + 1] = gsub(v, "%%2[Cc]", ",")
    elseif kind == "text" and v ~= true then f[k] = v
    elseif type(kind) == "table" and kind[v] then f[k] = v
    else return nil, format("unknown fault '%s'", item) end
  end
  for k, check in pairs(CHECKS) do
    local msg = f[k] ~= nil and check(f[k])
    if msg then return nil, msg end
  end
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
    return { status = st, ctype = "application/json", headers = h,
      body = json.encode(O("detail", REASONS[st] or "Error")) }
  end
  local r = status_error(st, h)
  if f["echo-key"] then
    local e = STATUS_ERRORS[st] or {}
    r.body = json.encode(echo_error(f, e[1] or (st >= 500 and "server_error" or "invalid_request_error"), e[2]))
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
  elseif kind == "nokey" then resp.body = json.encode(O("detail", "OK"))
  elseif kind == "empty-arrays" and o then
    -- a JSON value flood: many tiny values, each costing a decoder a table
    local count = math.max(1, ((f.size or 1048576) - 1) // 3)
    oset(o, "x", RAW("[" .. rep("[],", count - 1) .. "[]]"))
    resp.body = json.encode(o)
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
    resp.body = json.encode(o)
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
  -- An endpoint may say how its error event reads (events.error_json(f,
  -- echo, position)) and that its stream has no [DONE] (events.done == false).
  local error_json = events.error_json
    or function (_, echo) return echo and json.encode(echo_error(f)) or ERROR_JSON end
  if f["echo-key"] then
    for i = #events, 2, -1 do events[i] = nil end
    events[#events + 1] = { event = "error", data = error_json(f, true, 1) }
    events[#events + 1] = events.after_error and events.after_error(f, true, 2)
  elseif f["error-event"] or f["error-data"] then
    for i = #events, 3, -1 do events[i] = nil end
    events[#events + 1] = { event = f["error-event"] and "error" or nil, data = error_json(f, false, 2) }
    events[#events + 1] = events.after_error and events.after_error(f, false, 3)
  elseif not f["no-done"] and events.done ~= false then
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

M.headers, M.echo_error, M.status, M.body, M.stream, M.format_event = fault_headers, echo_error, fault_status,
  fault_body, stream_faults, format_event
M.ERROR_JSON = ERROR_JSON

return M
