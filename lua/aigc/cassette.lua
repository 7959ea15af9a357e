--- Cassettes: record a client's exchanges with a server, replay them offline.
--
-- `aigc.client { cassette = { path = "t/greeting.jsonl", mode = "auto" } }`:
--
--  - "record": every call goes to the server; each exchange that got an HTTP
--    answer is appended to the cassette (the file is started afresh).
--  - "replay": no call reaches the network: each is answered from the
--    cassette; a call it has no exchange for fails with an error of status
--    404, code "cassette_miss", whose message names the request.
--  - "auto": replay when the cassette file exists, else record (run once
--    against the server, then offline for ever; delete the file to re-record).
--
-- One client records a tape at a time (it holds `PATH.lock`): another
-- client opening it, in any mode, in any process, raises.
--
-- **The key** of an exchange is the API path and the call's params as
-- canonical JSON (keys sorted, numbers normalised, `stream` as a boolean),
-- without the per-call options that are never sent (`timeout`, `headers`,
-- `on_done`...): so no header, key or token is in it or in the cassette.
-- The same key recorded several times is replayed in the recorded order
-- (the last one again after that).
--
-- **What is stored** (one JSON object per line, with the key):
--
--  - from a plain-http server (the bundled one, llama.cpp, a local proxy):
--    the wire bytes of the response -- status line, headers, body framing,
--    SSE events -- with their offsets in ms from the request, as recorded
--    by the recording proxy the client then talks through (`raw = true`).
--    A replay sends exactly these bytes: byte-identical streams.
--  - from an https server (or with `proxy = false`): what the client
--    received, recorded in the client -- status, response headers, the body
--    (the reply as JSON) or, for a stream, the events written again as
--    `data: ...` lines with their offsets. The engine hands the Lua layer
--    decoded events, not the wire (and a proxy cannot see inside TLS), so
--    these match the server's event for event, not byte for byte; a replay
--    serves the cassette's bytes exactly, every time.
--
-- **Why a replay goes through a local server.** A replayed call must behave
-- as a live one for every way of calling: blocking, streaming (the
-- callback, the iterator), `chat_async` polled by `step()` in a frame loop,
-- tasks, the dialogue layer, timeouts and cancels. The one implementation
-- of all of that is the engine; so the engine is pointed at a tiny loopback
-- server (`aigc/cassette_server.lua`, Lua 5.4 + luv + lua-cjson, the bundled
-- devserver's needs) that plays the recorded bytes with their timing. The
-- client picks the exchange (the key is computed here only) and names it in
-- a header; the server is a dumb player. A C-level hook would have meant a
-- second transport inside the core for a testing feature; a file:// URL
-- carries no status, headers or streaming.
-- The server is started with the client and stopped by `client:close()`
-- (or when this process exits: it watches its parent).
--
-- @module aigc.cassette

local core = require "aigc.core"
local check = require "aigc.check"
local util = require "aigc.util"
local credentials = require "aigc.credentials"

util.own_module()

local json, null = core.json, core.null
local error, getmetatable, ipairs, next, pairs, pcall, rawget, setmetatable, tonumber, tostring, type =
  error, getmetatable, ipairs, next, pairs, pcall, rawget, setmetatable, tonumber, tostring, type
local string_format, table_concat, table_sort = string.format, table.concat, table.sort
local math_floor = math.floor
local function to_hex (c) return string_format("%02x", c:byte()) end
local newproxy = rawget(_G, "newproxy")   -- (Lua 5.1, LuaJIT)

local M = {}

local DEFAULT_PATH = { chat = "/chat/completions", completion = "/completions" }
-- What the core adds to a result (not part of the reply's body).
local ADDED = { text = true, request_id = true, headers = true, retries = true, cached = true }
-- Response headers never stored: the framing ones (the replay server
-- sets its own), and those that may carry a session or a credential
-- (PRIVATE: a session cookie written into a cassette or a cache entry was
-- on disk for anyone who got the file, and replayed into every run).
local UNSTORED = { ["content-length"] = true, ["transfer-encoding"] = true,
                   ["connection"] = true, ["keep-alive"] = true }
local PRIVATE = { ["set-cookie"] = true, ["set-cookie2"] = true, ["cookie"] = true, ["authorization"] = true,
                  ["proxy-authorization"] = true, ["api-key"] = true, ["x-api-key"] = true,
                  ["authentication-info"] = true, ["proxy-authentication-info"] = true }

--- Whether a response header may carry a session or a credential (a
-- cookie, an echoed or a new token): never kept on disk, by the cache nor
-- a cassette (aigc/cassette_server.lua has the same list).
-- @tparam string name
-- @treturn boolean
function M.private_header (name)
  return PRIVATE[name:lower()] == true
end

-- {======================================================
-- The key
-- =======================================================

local function is_array (t)
  local n = #t
  if n == 0 then return next(t) == nil end
  for k in pairs(t) do
    if type(k) ~= "number" or k < 1 or k > n or k ~= math_floor(k) then return false end
  end
  return true
end

-- Object keys as canonical_into writes them (`"name":`), for the few
-- names that come again and again (model, messages, role, content): a
-- resumed run's million digests encoded each of them anew. At most
-- KEYS_MAX kept: a body's keys of its own (a schema's) are not held.
local encoded_keys, n_keys, KEYS_MAX = {}, 0, 256
local function key_text (k)
  local e = encoded_keys[k]
  if e then return e end
  e = json.encode(k) .. ":"
  if n_keys < KEYS_MAX then encoded_keys[k], n_keys = e, n_keys + 1 end
  return e
end

-- (`path`: the tables being written; one met again inside itself, a cycle
-- the encoder then refuses naming it, is "<cycle>": followed, it overflowed
-- Lua's stack, an error naming no argument)
local function canonical_into (v, out, path)
  local t = type(v)
  if v == null or v == nil then out[#out + 1] = "null"
  elseif t == "boolean" then out[#out + 1] = tostring(v)
  elseif t == "number" then
    -- -0 is 0: PUC Lua 5.1 merges the constants 0 and -0.0 of one function,
    -- so a 5.4 script's `temperature = 0` can be -0 on 5.1 (a replay miss);
    -- '.' whatever the C locale, or a tape missed in another locale
    out[#out + 1] = v == 0 and "0" or util.g17(v)
  elseif t == "string" then out[#out + 1] = json.encode(v)   -- (%q differs between Lua versions)
  elseif t == "table" and path[v] then out[#out + 1] = "<cycle>"
  elseif t == "table" and is_array(v) then
    path[v] = true
    out[#out + 1] = "["
    for i = 1, #v do
      if i > 1 then out[#out + 1] = "," end
      canonical_into(v[i], out, path)
    end
    out[#out + 1] = "]"
    path[v] = nil
  elseif t == "table" then
    path[v] = true
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = tostring(k) end
    table_sort(keys)
    out[#out + 1] = "{"
    for i, k in ipairs(keys) do
      if i > 1 then out[#out + 1] = "," end
      local value = v[k]
      if value == nil then value = v[tonumber(k)] end
      out[#out + 1] = key_text(k)
      canonical_into(value, out, path)
    end
    out[#out + 1] = "}"
    path[v] = nil
  else
    out[#out + 1] = "<" .. t .. ">"
  end
end

--- A value as canonical text: object keys sorted, numbers as `%.17g`
-- (1 and 1.0 are one number, and 0 and -0). Equal values give equal text.
-- @param v
-- @treturn string
function M.canonical (v)
  local out = {}
  canonical_into(v, out, {})
  return table_concat(out)
end

--- The key of a call: `"POST /chat/completions {...}"` (the params without
-- the options that are never sent; `stream` as true or absent); a request
-- that sends no body is its method and path (`"GET /responses/ID?stream=true"`).
-- @tparam string api "chat", "completion", "json" or "get"
-- @tparam table|nil params
-- @tparam[opt] string path
-- @tparam[opt] string model the client's default model (for params that name none)
-- @tparam[opt] string method the request's method when the call names one (a resumed
-- stream's GET, whose params are options only: it was keyed as a POST of a body never sent)
-- @treturn string
function M.key (api, params, path, model, method)
  path = path or DEFAULT_PATH[api] or "?"
  if api == "delete" then method = "DELETE" end   -- (client:delete_response's: no method named)
  if method and method ~= "POST" then return method .. " " .. path end
  if api == "get" or params == nil then return "GET " .. path end
  local sent = {}
  local function add (k, v)
    if k == "stream" then
      if v then sent.stream = true end
    elseif core.call_options[k] == nil and k ~= "cache" and sent[k] == nil then
      sent[k] = v
    end
  end
  for k, v in pairs(params) do add(k, v) end
  -- an `__index` table gives defaults the encoder sends: they are in the key too
  local mt = getmetatable(params)
  local defaults = type(mt) == "table" and rawget(mt, "__index")
  if type(defaults) == "table" then for k, v in pairs(defaults) do add(k, v) end end
  -- extra_body's fields are sent as they are, over the params' (the encoder's rule)
  if type(params.extra_body) == "table" then for k, v in pairs(params.extra_body) do sent[k] = v end end
  if sent.model == nil then sent.model, sent.engine = params.engine or model, nil end
  return "POST " .. path .. " " .. M.canonical(sent)
end

-- }======================================================


-- {======================================================
-- The cassette file
-- =======================================================

local function file_exists (path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

-- Why an exchange cannot be played, or nil: its fields of the wrong type
-- or out of range (a hand-edited or damaged tape). Left to the replay
-- server, such a line killed it: that call failed as "Empty reply from
-- server", and every later call of the client as a refused connection.
local function unplayable (x)
  local status = x.status
  if status ~= nil and not (type(status) == "number" and status >= 100 and status <= 599 and status % 1 == 0) then
    return "status"
  end
  if x.headers ~= nil then
    if type(x.headers) ~= "table" then return "headers" end
    for name, v in pairs(x.headers) do
      if type(name) ~= "string" or name:find("[%c:]") or (type(v) ~= "string" and type(v) ~= "number")
         or tostring(v):find("[\r\n%z]") then
        return "headers"
      end
    end
  end
  for _, k in ipairs { "body", "body_b64" } do
    if x[k] ~= nil and type(x[k]) ~= "string" then return k end
  end
  if x.events ~= nil then
    if type(x.events) ~= "table" then return "events" end
    for _, ev in ipairs(x.events) do
      -- (a time, in ms from the answer's start, below 0 was never played: the call waited for its
      -- timeout; one of 2^53 or more, no integer to the server's timer, killed it)
      if type(ev) ~= "table" or (ev.t ~= nil and not (type(ev.t) == "number" and ev.t >= 0 and ev.t < 2 ^ 53))
         or (type(ev.data) ~= "string" and type(ev.b64) ~= "string") then
        return "events"
      end
    end
  end
  return nil
end

-- The exchanges of a cassette: key -> list of line numbers; and the
-- number of a torn last line. A recording killed while it wrote leaves its
-- last line without its end: that exchange is left out (a call for it is
-- a miss), the rest replays. A bad line elsewhere is an error.
local function read_index (path)
  local text, why = util.read_file(path)
  if not text then return nil, why end
  local index, n, torn = {}, 0, nil
  local raw = {}   -- (the lines the proxy recorded: one per attempt of a call)
  for line, eol in text:gmatch("([^\n]*)(\n?)") do
    if line == "" and eol == "" then break end   -- (the end of the text)
    n = n + 1
    if line:find("%S") then
      local x = json.decode(line)
      if (type(x) ~= "table" or type(x.key) ~= "string") and eol == "" then
        torn = n
      elseif type(x) ~= "table" or type(x.key) ~= "string" then
        return nil, string_format("%s:%d: not a cassette exchange", path, n)
      elseif unplayable(x) then
        return nil, string_format("%s:%d: not a cassette exchange (its %s)", path, n, unplayable(x))
      else
        local list = index[x.key]
        if not list then list = {}; index[x.key] = list end
        list[#list + 1] = n
        raw[n] = x.raw == true
      end
    end
  end
  return index, torn, raw
end

-- The pid of this process (Linux: /proc/self is the process that opens it).
local function own_pid ()
  local f = io.open("/proc/self/stat", "rb")
  if not f then return nil end
  local pid = f:read("*l"):match("^(%d+)")
  f:close()
  return pid
end

local function shell_quote (s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- Starts the replay server (with `upstream`: the recording proxy): its
-- base URL, its pid and the pipe to it.
local function start_server (path, timing, upstream)
  local script = require("aigc.compat").searchpath("aigc.cassette_server", package.path)
  if not script then error("aigc.cassette: aigc/cassette_server.lua is not on package.path", 0) end
  local lua = os.getenv("AIGC_CASSETTE_LUA") or "lua5.4"
  local ppid = own_pid()
  -- In the background: the shell io.popen waits for at pclose ends at
  -- once. The pipe's finalizer may run before the cassette's, which kills
  -- the server (at exit, with a dropped client; LuaJIT has no table __gc):
  -- a pclose waiting for the server itself waited for ever.
  local cmd = string_format("%s %s %s%s%s%s &", shell_quote(lua), shell_quote(script), shell_quote(path),
                            ppid and (" --parent-pid " .. ppid) or "", timing and "" or " --no-timing",
                            upstream and (" --record " .. shell_quote(upstream)) or "")
  local pipe = io.popen(cmd, "r")
  local line = pipe and pipe:read("*l")
  local port, pid = (line or ""):match("^aigc cassette server (%d+) (%d+)$")
  if not port then
    if pipe then pipe:close() end
    error("aigc.cassette: the replay server did not start (needs " .. lua .. " with luv and lua-cjson)", 0)
  end
  local prefix = upstream and upstream:match("^%a+://[^/]+(/.*)$") or "/v1"
  return "http://127.0.0.1:" .. port .. prefix, pid, pipe
end

-- }======================================================


-- {======================================================
-- A client's cassette
-- =======================================================

local Cassette = {}
Cassette.__index = Cassette

local PROXY_KEY_MAX = 64 * 1024

local MODES = { record = true, replay = true, auto = true }

--- Checks the client option `cassette` (misuse raises in the one format).
-- @tparam table spec
function M.check (spec)
  if type(spec) ~= "table" then util.field_error("client", 1, "opts.cassette", util.expected("table", spec)) end
  if type(spec.path) ~= "string" or spec.path == "" then
    util.field_error("client", 1, "opts.cassette.path", util.expected("file name", spec.path))
  end
  local mode = spec.mode or "auto"
  if not MODES[mode] then
    util.field_error("client", 1, "opts.cassette.mode", "'record', 'replay' or 'auto' expected, got "
                     .. util.describe(spec.mode))
  end
  for _, name in ipairs { "timing", "proxy" } do
    if spec[name] ~= nil and type(spec[name]) ~= "boolean" then
      util.field_error("client", 1, "opts.cassette." .. name, util.expected("boolean", spec[name]))
    end
  end
end

--- Opens a client's cassette (checked by `check`). In replay mode it
-- starts the replay server, and to record from a plain-http server the
-- recording proxy: `cassette.base_url` is then where the client must send
-- its requests.
-- @tparam table spec `path`, `mode` ("auto"), `timing` (true: streams
-- replay at their recorded pace), `proxy` (true: record a plain-http
-- server's wire bytes through the proxy; false: the decoded replies, as
-- for https)
-- @tparam string base_url the client's
-- @treturn table the cassette
function M.open (spec, base_url)
  local mode = spec.mode or "auto"
  local kind = core.file_kind(spec.path)
  if kind == "directory" then
    error("aigc.cassette: " .. spec.path .. " is a directory: the cassette is a file (a .jsonl to record into)", 0)
  elseif kind and kind ~= "file" then   -- (a FIFO's open, to record or to replay, waited for ever)
    error(string_format("aigc.cassette: %s is not a regular file (%s): the cassette is a file (a .jsonl to "
                        .. "record into)", spec.path, kind), 0)
  end
  -- One recorder at a time (`PATH.lock`, core.lockfile: the kernel drops
  -- it however its holder ends). Two processes recording one tape each
  -- started it afresh and appended their own: the exchanges of one were
  -- lost, silently. (Where no lock can be made -- a read-only folder --
  -- none is taken.) A replay only reads the lock's pid: a tape still being
  -- recorded would miss every call not yet on it, and replayers taking the
  -- lock in turn would refuse each other (tests run in parallel). The lock
  -- is beside the tape itself (util.real_path): two clients recording
  -- through two links to one tape took two locks, and the second emptied
  -- the first's recording.
  local lock, code, pid, _
  local lock_name = util.real_path(spec.path) .. ".lock"
  if mode == "auto" then mode = file_exists(spec.path) and "replay" or "record" end
  if mode == "record" then
    lock, _, code, pid = core.lockfile(lock_name)
  else
    pid = (util.read_file(lock_name) or ""):match("^(%d+)")
    code = pid and core.file_kind("/proc/" .. pid) == "directory" and "locked"
  end
  if code == "locked" then
    error(string_format("aigc.cassette: %s is being recorded by another client%s (its lock is %s): "
                        .. "wait for it to end, or give another path", spec.path,
                        pid and " (pid " .. pid .. ")" or "", lock_name), 0)
  end
  -- (`upstream`: the client's own base URL, which `base_url` replaces)
  local self = setmetatable({ path = spec.path, mode = mode, cursor = {}, upstream = base_url, lock = lock },
                            Cassette)
  local ok, err = pcall(function ()
    if mode == "record" then
      util.make_private(spec.path)   -- (a new tape: 0600, as a log; it holds the prompts and replies)
      local f, why = io.open(spec.path, "wb")
      if not f then error("aigc.cassette: cannot write " .. tostring(why), 0) end
      f:close()
      -- A plain-http server (the bundled one, llama.cpp...): the proxy keeps
      -- the wire bytes. An https one: the client keeps the decoded reply; so
      -- too for a URL with a user name or password (the proxy would have them
      -- on its command line, and does not send them on).
      if spec.proxy ~= false and base_url:lower():find("^http://") and not base_url:find("^http://[^/?#]*@") then
        self.proxy = true
        self.base_url, self.pid, self.pipe = start_server(spec.path, true, base_url)
      end
    else
      local index, why, raw = read_index(spec.path)
      if not index then error("aigc.cassette: cannot read " .. tostring(why), 0) end
      self.index, self.torn, self.raw, self.calls = index, why, raw, 0
      self.base_url, self.pid, self.pipe = start_server(spec.path, spec.timing ~= false)
    end
    -- Closed when collected (Cassette.__gc), on Lua 5.1 and LuaJIT too,
    -- whose tables have no finalizer: a userdata's. A client dropped
    -- without close() kept its server running until the program ended,
    -- and its lock, a userdata, went at the collection: a replay of the
    -- tape then opened it before the recording proxy, still running, had
    -- written the last exchange ("cassette miss"). Made last, so it is
    -- finalized before the lock and the pipe (5.1 and LuaJIT finalize in
    -- the reverse order of creation).
    if newproxy then
      local sentinel = newproxy(true)
      getmetatable(sentinel).__gc = function () self:close() end
      self._finalizer = sentinel
    end
  end)
  if not ok then self:close(); error(err, 0) end
  return self
end

-- A printable description of a key for the miss header (no control bytes).
local function describe_key (key)
  if #key > 300 then key = key:sub(1, 297) .. "..." end
  return (key:gsub("[^\32-\126]", "?"))
end

-- The key of a call (`call.params`: the copy, without the `cache` mark),
-- scrubbed by `scrub` (the client's secrets and the call's).
local function key_of (call, api, params, path, scrub)
  local key = M.key(api, params and call.params, path, call.model, call.method)
  -- (a call's api_key param, in the body, was written in the file's key;
  -- redacted, not hashed: a replay with another key still matches)
  key = credentials.replace_secrets(key, call.secrets, function () return "[redacted]" end)
  -- (the client's key in the params -- a prompt asking why it is refused --
  -- was on the tape in the proxy's key; recorded in the client, the line was
  -- scrubbed but the replay's key was not: a miss)
  if scrub then
    local ok, scrubbed = pcall(scrub, key)
    if ok and type(scrubbed) == "string" then key = scrubbed end
  end
  return key
end

--- Before a call is submitted: changes `call.params` (the copy the client
-- will submit): for a replay, the header naming the exchange; for a
-- recording, the stream callback that keeps the events.
-- @tparam table call the call's state (`params`: the copy; `options`)
-- @tparam string api
-- @tparam table|nil params the caller's
-- @tparam string|nil path
-- @tparam[opt] function scrub the key -> the key to keep (the client's and the call's secrets)
function Cassette:before (call, api, params, path, scrub)
  local p = call.params
  local key = key_of(call, api, params, path, scrub)
  call.key = key
  -- Recording through the proxy: it stores the exchange under this key,
  -- sent in a header. Not a key of more than 64 KiB (a long prompt): libcurl
  -- refuses a request head over 1 MB, and such a call failed only because it
  -- was recorded; it is recorded in the client (the proxy keeps no exchange
  -- it was given no key for), as from an https server.
  if self.proxy and #key <= PROXY_KEY_MAX then
    local headers = {}
    for k, v in pairs(type(p.headers) == "table" and p.headers or {}) do headers[k] = v end
    headers["x-aigc-cassette-key"] = key
    -- (and every live client's secrets, hex, ","-joined: the proxy masks a reply of
    -- them too; a header the proxy drops, named as a credential: scrubbed from errors and logs)
    local hex = {}
    for i, v in ipairs(credentials.live_secrets()) do hex[i] = (v:gsub(".", to_hex)) end
    if #hex > 0 then headers["x-aigc-cassette-secrets"] = table_concat(hex, ",") end
    p.headers = headers
    return
  end
  if self.mode == "replay" then
    local headers = {}
    for k, v in pairs(type(p.headers) == "table" and p.headers or {}) do headers[k] = v end
    local list = self.index[key]
    if list then
      local n = (self.cursor[key] or 0) + 1
      if n > #list then n = #list end
      self.cursor[key] = n
      -- The exchanges from this one on, and a name for the call: the
      -- proxy recorded each attempt of a call the engine retried (a 429,
      -- then the reply), and a retry sends the same headers again; the
      -- server plays the next of them for it (the one named again, for
      -- whole calls recorded in the client). Naming the first alone, a
      -- call that was retried once live failed on replay, retried on
      -- the recorded 429 until it gave up.
      local lines = {}
      for i = n, math.min(#list, n + 15) do lines[#lines + 1] = tostring(list[i]) end
      self.calls = self.calls + 1
      headers["x-aigc-cassette"] = table_concat(lines, " ")
      headers["x-aigc-cassette-call"] = tostring(self.calls)
      call.cassette_n = n
    else
      headers["x-aigc-cassette"] = "miss"
      headers["x-aigc-cassette-request"] = describe_key(key)
    end
    p.headers = headers
    return
  end
  call.in_client = true   -- (recorded here, at its end)
  if not p.stream then return end
  local events, t0, user = {}, core.now(), p.stream
  p.stream = function (delta, chunk, ...)
    events[#events + 1] = { t = math_floor((core.now() - t0) * 1000 + 0.5),
                            data = "data: " .. json.encode(chunk) .. "\n\n" }
    if check.is_callable(user) then return user(delta, chunk, ...) end
  end
  call.events, call.t0 = events, t0
end

local function stored_headers (h)
  local out = {}
  for name, value in pairs(type(h) == "table" and h or {}) do
    if type(name) == "string" and not UNSTORED[name:lower()] and not PRIVATE[name:lower()] then out[name] = value end
  end
  return out
end

-- The headers of an error response kept on a tape: those that say when to
-- retry, the request's id and the rate limits (scrubbed with the rest).
local function error_headers (h)
  local out = { ["content-type"] = "application/json" }
  for name, value in pairs(stored_headers(h)) do
    local n = name:lower()
    if n == "retry-after" or n == "retry-after-ms" or n == "x-request-id" or n == "x-should-retry"
       or n:find("^x%-ratelimit%-") or n:find("^ratelimit") then
      out[n] = value
    end
  end
  return out
end

-- The strings of a stream's chunk `v`, added to `groups` by the field
-- they are a piece of: its path (an array's element by its `index` when
-- it has one: a choice, a tool call), after `id` (a Responses event's
-- type and item). Each piece: the table holding it, its key, event `n`.
local function stream_fields (v, path, groups, n)
  for k, x in pairs(v) do
    local step = type(x) == "table" and type(k) == "number" and type(x.index) == "number" and "i" .. x.index or k
    local at = path .. "/" .. tostring(step)
    if type(x) == "string" then
      local g = groups[at]
      if not g then g = {}; groups[at] = g end
      g[#g + 1] = { t = v, k = k, n = n }
    elseif type(x) == "table" then
      stream_fields(x, at, groups, n)
    end
  end
end

-- A secret a stream's deltas carry in pieces (a model repeating the key
-- of a prompt, a few characters a chunk) is in no one event, where the
-- scrub looks: the pieces of each field (a choice's delta.content...) are
-- joined and scrubbed, and when that redacts something the field's whole
-- scrubbed text goes in its first event, "" in the others (a replay gives
-- the same text, cut less finely). Events rewritten: their data again.
local function scrub_split (events, scrub)
  local chunks, groups, changed = {}, {}, {}
  for n, ev in ipairs(events) do
    local ok, chunk = pcall(json.decode, ev.data:match("^data: (.*)\n\n$") or "")
    if ok and type(chunk) == "table" then
      chunks[n] = chunk
      local id = tostring(chunk.type) .. "|" .. tostring(chunk.item_id) .. "|" .. tostring(chunk.output_index)
        .. "|" .. tostring(chunk.content_index)
      stream_fields(chunk, id, groups, n)
    end
  end
  for _, g in pairs(groups) do
    local parts = {}
    for i, piece in ipairs(g) do parts[i] = piece.t[piece.k] end
    local joined = table_concat(parts)
    local clean = #g > 1 and scrub(joined)
    if clean and clean ~= joined then
      for i, piece in ipairs(g) do
        piece.t[piece.k] = i == 1 and clean or ""
        changed[piece.n] = true
      end
    end
  end
  for n in pairs(changed) do events[n].data = "data: " .. json.encode(chunks[n]) .. "\n\n" end
end

-- Appends an exchange recorded in the client.
local function record (self, call, res, err, scrub)
  local x = { key = call.key }
  if res then
    x.status = 200
    x.headers = stored_headers(res.headers)
    if res.content_type ~= nil and res.bytes ~= nil then
      -- A reply of bytes (speech's audio, a transcript as text or srt):
      -- its bytes as they came, not the Lua table made of them (speech was
      -- not recorded, its audio no JSON; a text transcript replayed as
      -- `{}`, a parse error). Those given to a function are not kept.
      local bytes = res.body
      if bytes == nil and type(res.path) == "string" then bytes = util.read_file(res.path) end
      if type(bytes) ~= "string" then return end
      if pcall(json.encode, bytes) then x.body = bytes else x.body_b64 = util.base64(bytes) end
    elseif call.events then
      local events = call.events
      if scrub then scrub_split(events, scrub) end
      events[#events + 1] = { t = math_floor((core.now() - call.t0) * 1000 + 0.5), data = "data: [DONE]\n\n" }
      x.events = events
      x.headers["content-type"] = "text/event-stream"
    else
      local body = {}
      -- (`text` is the core's for a chat or a Responses reply; a
      -- transcript's is the reply's own: left out, it replayed as an error)
      local made_text = res.choices ~= nil or res.output ~= nil
      for k, v in pairs(res) do if not ADDED[k] or (k == "text" and not made_text) then body[k] = v end end
      x.body = json.encode(body)
    end
  elseif type(err) == "table" and type(err.status) == "number" then
    -- (with the headers a retry or a caller acts on: without them the
    -- replay waited the default backoff, not the server's retry-after)
    x.status, x.headers = err.status, error_headers(err.headers)
    local b = err.body
    x.body = type(b) == "table" and json.encode(b) or type(b) == "string" and b
             or json.encode { error = { message = err.message, type = err.kind } }
  else
    return
  end
  if scrub then x = scrub(x) end
  local line = json.encode(x) .. "\n"
  local f, oerr = io.open(self.path, "ab")
  if not f then return oerr end
  -- (one write(2) for the line, unbuffered -- glibc ignores a buffer size
  -- without a buffer, and wrote a long line in 4 KiB blocks then the rest:
  -- the recording proxy appends to the same file, and its line could come
  -- between the two parts)
  f:setvbuf("no")
  local size = f:seek("end")
  local ok, werr = f:write(line)
  local closed, cerr = f:close()
  if not (ok and closed) then   -- (a full disk: the caller says so)
    -- The part of the line written is cut off again: left, the next line
    -- appended (space freed) went on after it, one line that is no JSON,
    -- and the whole tape failed to load. Only when what follows `size` has
    -- no newline: the proxy's whole line appended after it is kept.
    local g = size and io.open(self.path, "rb")
    local tail = g and g:seek("set", size) and g:read(#line)
    if g then g:close() end
    if tail and tail ~= "" and not tail:find("\n", 1, true) then core.truncate(self.path, size) end
    return tostring(werr or cerr)
  end
end

--- When a recorded call has ended: appends its exchange (calls that got no
-- HTTP answer -- a refused connection, a cancel -- are not stored),
-- scrubbed by `scrub` (the client's and the call's secrets: a key a server echoed in a
-- header or a body is not in the file).
-- @tparam table call from `before`
-- @param res
-- @param err
-- @tparam[opt] function scrub the exchange (a table, in place) -> it
-- @treturn string|nil why the exchange could not be written (a full disk)
function Cassette:ended (call, res, err, scrub)
  if self.mode == "replay" then
    -- (a replayed call's retries played the exchanges after its first:
    -- the next call of that key goes on after them)
    local n, ended = call.cassette_n, res or err
    local retries = type(ended) == "table" and tonumber(ended.retries) or 0
    local list = n and self.index[call.key]
    if list and retries > 0 and self.raw[list[n]] then
      self.cursor[call.key] = math.max(self.cursor[call.key] or 0, math.min(#list, n + retries))
    end
    return
  end
  if self.mode ~= "record" or not call.in_client then return end
  return record(self, call, res, err, scrub)
end

--- A call the response cache answered while recording: its exchange is
-- appended as the client received it (the proxy saw no request). Left
-- out, a replay of the tape missed that call.
-- @tparam table call the call's state (`params`, `secrets`, `model`)
-- @tparam string api
-- @tparam table|nil params the caller's
-- @tparam string|nil path
-- @tparam table res the reply the cache gave
-- @tparam[opt] function scrub as for `ended`
function Cassette:hit (call, api, params, path, res, scrub)
  if self.mode ~= "record" then return end
  call.key = key_of(call, api, params, path, scrub)
  return record(self, call, res, nil, scrub)
end

--- Stops the replay server. Idempotent.
-- @treturn string|nil why the recording proxy could not write exchanges to
-- the tape (a full disk; its first reason), which it told on its stdout
function Cassette:close ()
  local failed
  if self.pid then
    os.execute("kill " .. self.pid .. " 2>/dev/null")
    self.pid = nil
    -- (the server holds the pipe's other end until it exits: a recording
    -- proxy first writes the exchanges in flight)
    -- (collected with the cassette, the pipe's own finalizer may have closed it first:
    -- Lua 5.2 and 5.3 run them in either order)
    if self.pipe and io.type(self.pipe) == "file" then
      failed = (self.pipe:read("*a") or ""):match("aigc cassette server: ([^\n]*)")
      self.pipe:close()
    end
    self.pipe = nil
  end
  -- (after the proxy has written its last exchange)
  if self.lock then self.lock:close(); self.lock = nil end
  return failed
end

Cassette.__gc = Cassette.close

return M
