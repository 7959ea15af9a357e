--- The response cache: replies kept in memory (LRU) and optionally on
-- disk, keyed like cassettes, so a repeated deterministic request costs
-- nothing.
--
-- `aigc.client { cache = true }` or `cache = { ttl =, max_entries =,
-- max_bytes =, dir = }`. Only requests that can repeat their reply are
-- cached: those marked `cache = true` in their params, and those with
-- `temperature = 0` or a `seed` (unless marked `cache = false`). Never a
-- stream (`stream` set) nor a GET. The `cache` param is never sent.
--
-- The key is the client's base URL and the request's cassette key (the API
-- path and the canonical JSON of what is sent: `aigc.cassette.key`), with
-- a hash of the call's own headers and query and a keyed digest of the
-- credentials (`Cache:call_key`; an Azure client's azure_ad_token_provider's
-- token for the call among them: two identities never share an entry, a
-- new token makes new ones), so no header, key or token is in it. A hit returns a copy of the stored reply
-- (with `cached = true`, `retries = 0`): blocking calls return it at once;
-- `chat_async` returns a future that is already done (its `on_done` runs
-- from the next `step()`, as for any request). Hits and misses are counted
-- (`client:cache_stats()`; hits also in `client:usage().cache_hits`, at no
-- cost).
--
-- Memory: least recently used entries go first past `max_entries` (1000)
-- or `max_bytes` (32 MiB of keys and stored JSON). Disk (`dir`, made if need be: a
-- folder that cannot be made or written in raises when the cache is made,
-- as the client is, not at a write, whose failure no caller hears): one file per entry
-- (named by a hash of the key, which the file repeats and a read checks),
-- written atomically (temporary name, then rename), read on a memory miss;
-- an expired file is removed when read, and every expired file after a
-- write, at most once per `ttl`. `ttl` (seconds; default none) applies to
-- both. `max_disk_bytes` (default none) caps the folder: when a write may
-- take it past the cap (its size counted from the last listing of the folder, in C,
-- made at least once a minute), the oldest files go until it holds
-- no more.
--
-- @module aigc.cache

local core = require "aigc.core"
local util = require "aigc.util"
local credentials = require "aigc.credentials"
local cassette = require "aigc.cassette"

util.own_module()

local json = core.json
local ipairs, pairs, pcall, setmetatable, tonumber, tostring, type =
  ipairs, pairs, pcall, setmetatable, tonumber, tostring, type
local string_format = string.format
local os_time = os.time

local M = {}

local DEFAULTS = { max_entries = 1000, max_bytes = 32 * 1024 * 1024 }

--- Checks the client option `cache` (misuse raises in the one format).
-- @param spec true or a table
function M.check (spec)
  if spec == true or spec == false then return end
  if type(spec) ~= "table" then util.field_error("client", 1, "opts.cache", util.expected("true or table", spec)) end
  for _, name in ipairs { "ttl", "max_entries", "max_bytes", "max_disk_bytes" } do
    local v = spec[name]
    if v ~= nil and not (type(v) == "number" and v > 0) then
      util.field_error("client", 1, "opts.cache." .. name, util.expected("a number > 0", v))
    end
  end
  if spec.dir ~= nil and (type(spec.dir) ~= "string" or spec.dir == "") then
    util.field_error("client", 1, "opts.cache.dir", util.expected("folder name", spec.dir))
  end
end

--- Whether a call's reply may be cached (see the module's rules).
-- @tparam string api
-- @tparam table|nil params
-- @tparam[opt] table body a media call's body options (`sink`, `events`, `form`)
-- @treturn boolean
function M.cacheable (api, params, body)
  if api == "get" or type(params) ~= "table" or params.stream then return false end
  -- A reply written to a file or a function as it comes (speech's `to`),
  -- or told as events (an image stream), is a stream: a hit wrote no file
  -- and called no function. An upload's parts are not in the key.
  if body and ((body.sink ~= nil and body.sink ~= "bytes") or body.events ~= nil or body.form ~= nil) then
    return false
  end
  if params.cache ~= nil then return params.cache == true end
  -- What is sent: extra_body's fields go over the params' (the encoder's
  -- rule), and a null is no value. (A temperature 0 that extra_body sent
  -- as 1 was cached: one random reply given for ever after.)
  local temperature, seed = params.temperature, params.seed
  local extra = params.extra_body
  if type(extra) == "table" then
    if extra.temperature ~= nil then temperature = extra.temperature end
    if extra.seed ~= nil then seed = extra.seed end
  end
  return temperature == 0 or (seed ~= nil and seed ~= core.null)
end

-- A 64-bit hash of a string as 16 hex digits (file names; collisions are
-- caught by the key stored in the file): core.hash64 (djb2 and a
-- multiplicative hash, each modulo 2^32; it was this arithmetic in Lua).
local hash = core.hash64
M.hash = hash

-- A temporary name's suffix no other writer uses: the pid (Linux:
-- /proc/self is the process that opens it), a count, and 64 random bits
-- from /dev/urandom (util.random_hex, as the Idempotency-Key's).
-- math.random alone gave two processes one name (LuaJIT and Lua 5.1 start
-- every process from one seed, a script may seed it for reproducible
-- runs), and with the pid and count two lua_States of one process (a C
-- host's, each counting from 1): both wrote into one file, a torn entry or
-- one renamed away under the other. Without /dev/urandom: math.random and
-- a table's address, which differs between live states.
local pid, written = nil, 0
local function tmp_suffix ()
  if not pid then
    local f = io.open("/proc/self/stat", "rb")
    pid = f and (f:read("*l") or ""):match("^(%d+)")
    if f then f:close() end
    pid = pid or (tostring({}):match("0x(%x+)") or "") .. "-" .. tostring(os.clock()):gsub("%.", "")
  end
  written = written + 1
  return pid .. "." .. written .. "." .. (util.random_hex(8)
    or string_format("%x%s", math.random(0, 0x7fffffff), tostring({}):match("0x(%x+)") or ""))
end

-- Makes the folder `dir` (0700: it holds the replies, private text, as a
-- prompt log does; every folder core.make_dir makes is 0700) and
-- checks that a file can be written in it: true, or nil and why not. A
-- folder that could not be made (under a file, no permission) was
-- ignored: every write failed quietly, the user believed the replies were
-- kept. (In C, no shell: `mkdir -p` ran /bin/sh at every open.)
local function usable_dir (dir)
  local kind = core.file_kind(dir)
  if kind and kind ~= "directory" then return nil, "it is a " .. kind .. ", not a folder" end
  if not kind then
    local ok, why = core.make_dir(dir)
    if not ok then return nil, "cannot make it (" .. tostring(why) .. ")" end
  end
  local probe = dir .. "/.probe.tmp" .. tmp_suffix()
  local f, why = io.open(probe, "wb")
  if not f then return nil, "cannot write in it (" .. tostring(why):gsub("^.*: ", "") .. ")" end
  f:close()
  os.remove(probe)
  return true
end

-- Removes the temporary files of writes that never ended (a process
-- killed between its write and its rename): left, they stayed for ever,
-- outside `max_disk_bytes` (only `*.json` files are counted). Only ours
-- (our names) and only stale: an hour old and their writer gone (the pid
-- in the name; a name without one, by age alone), never the file another
-- process is writing. Once, when a cache opens the folder.
local function drop_stale_tmp (dir)
  local now = os_time()
  for _, e in ipairs(core.list_dir(dir) or {}) do
    local name = e.name
    local writer = name:match("^%x+%.json%.tmp(%d+)%.%d+%.%x+$") or name:match("^%.probe%.tmp(%d+)%.%d+%.%x+$")
      or name:match("^%.key%.tmp(%d+)%.%d+%.%x+$")
    local ours = writer or name:match("^%x+%.json%.tmp%x*%-%d*%.%d+%.%x+$")
    local alive = writer and core.file_kind("/proc/" .. writer) == "directory"
    if ours and not alive and now - e.mtime > 3600 then
      os.remove(dir .. "/" .. name)
    end
  end
end

-- (defined below, with the listing of the entries)
local drop_old_format

local Cache = {}
Cache.__index = Cache

--- A new cache.
-- @param spec true or `{ ttl =, max_entries =, max_bytes =, dir = }`
-- @treturn table
function M.new (spec)
  if spec == true then spec = {} end
  local dir = spec.dir
  -- (a relative folder whose name starts with "-" is "./-...": the shell commands read it as an
  -- option -- `find -delete ...` removed every file of the current directory)
  if dir and dir:sub(1, 1) == "-" then dir = "./" .. dir end
  local self = setmetatable({
    ttl = spec.ttl, max_entries = spec.max_entries or DEFAULTS.max_entries,
    max_bytes = spec.max_bytes or DEFAULTS.max_bytes, dir = dir, max_disk_bytes = spec.max_disk_bytes,
    entries = {}, count = 0, bytes = 0, head = nil, tail = nil,
    hits = 0, misses = 0, stores = 0, evictions = 0, digests = {}, ndigests = 0,
  }, Cache)
  if self.dir then
    local ok, why = usable_dir(self.dir)
    if not ok then error("aigc.cache: cannot keep replies in the folder " .. self.dir .. ": " .. why, 0) end
    drop_stale_tmp(self.dir)
    drop_old_format(self.dir)
  end
  return self
end

-- The key of the credentials' digests (`Cache:call_key`): 32 random
-- bytes. A folder's is its file `.key` (0600), made by the first process
-- that needs it: written under a temporary name, then linked (`ln` fails
-- when another process made it first, whose key every process then
-- reads), so one API key hits across processes. A memory cache's is its
-- own. nil when it cannot be had.
local KEY_BYTES = 32
local function random_key ()
  local f = io.open("/dev/urandom", "rb")
  local s = f and f:read(KEY_BYTES)
  if f then f:close() end
  return s
end

local function folder_key (dir)
  local path = dir .. "/.key"
  -- (a regular file only: a FIFO there blocked every call with a credential for ever)
  local kind = core.file_kind(path)
  if kind and kind ~= "file" then return nil end
  local s = kind and util.read_file(path)
  if not s then
    -- (no shell: `head -c ... > tmp && ln tmp .key` ran one; core.link fails when .key is there)
    local tmp, k = path .. ".tmp" .. tmp_suffix(), random_key()
    if k and #k == KEY_BYTES and core.create_private(tmp, true) then
      local f = io.open(tmp, "wb")
      local ok = f and f:write(k)
      ok = f and f:close() and ok
      if ok then core.link(tmp, path) end
      os.remove(tmp)
    end
    s = core.file_kind(path) == "file" and util.read_file(path) or nil
  end
  return s
end

--- A keyed digest of `text` (the credentials of a call), 32 hex digits:
-- HMAC-SHA-256 of `text` under the cache's random key (the core's), which
-- no one without the key can try keys against. Kept per text; nil when
-- the cache has no key (no /dev/urandom, a folder where `.key` cannot be
-- made).
-- @tparam string text
-- @treturn string|nil
function Cache:digest (text)
  local d = self.digests[text]
  if d then return d end
  -- (a key that could not be had -- a full disk, the folder briefly unwritable -- is asked for
  -- again a minute on: kept as "none", no call with a credential was cached again in the
  -- process's life)
  if not self.salt and os_time() - (self.salt_tried or -60) >= 60 then
    local k
    if self.dir then k = folder_key(self.dir) else k = random_key() end
    self.salt = k ~= nil and #k == KEY_BYTES and k or false
    self.salt_tried = os_time()
  end
  d = self.salt and core.hmac_sha256(self.salt, text)
  if d then
    d = d:sub(1, 32)
    if self.ndigests >= 256 then self.digests, self.ndigests = {}, 0 end
    self.digests[text], self.ndigests = d, self.ndigests + 1
    return d
  end
  return nil
end

-- Headers whose value is new for every request and changes no reply (a
-- trace's, a request's id, an idempotency key): in the key, no call that
-- sent them was ever a hit.
local PER_REQUEST = { traceparent = true, tracestate = true, baggage = true, ["x-request-id"] = true,
                      ["x-client-request-id"] = true, ["x-correlation-id"] = true, ["idempotency-key"] = true }

--- A call's key: `key` (the base URL and the cassette key) with the
-- call's own secrets (`api_key` given in its params, sent in the body)
-- replaced by "[secret]", a hash of its own headers and query that are no
-- credentials, and a keyed digest of every credential of the call
-- (`held`: the client's; its own `secrets`, credential headers and
-- query keys): two API keys never share an entry (a bot serving several
-- customers with one folder gave one customer's replies to another), and
-- the folder holds nothing a key could be guessed back from (the digest's
-- key is the folder's random `.key`: a plain hash of a short key was
-- found again by trying keys). nil when no digest can be made (the call
-- is then not cached).
-- @tparam string key
-- @tparam[opt] table secrets the call's (`credentials.call_credentials`)
-- @tparam[opt] table header_lines its own headers, "Name: value"
-- @tparam table params its params (`query`, `extra_query`)
-- @tparam[opt] table held the client's credentials (strings)
-- @tparam[opt] table held_own the client's other headers and query that change a reply (strings)
-- @treturn string|nil
function Cache:call_key (key, secrets, header_lines, params, held, held_own)
  key = credentials.replace_secrets(key, secrets, function () return "[secret]" end)
  local own, creds = {}, {}
  for _, s in ipairs(held_own or {}) do own[#own + 1] = s end
  for _, s in ipairs(held or {}) do creds[#creds + 1] = s end
  for _, s in ipairs(secrets or {}) do creds[#creds + 1] = s end
  for _, line in ipairs(header_lines or {}) do
    local name = line:match("^[^:]*")
    local into = credentials.credential_header(name) and creds or own
    if not PER_REQUEST[name:lower()] then into[#into + 1] = line end
  end
  for _, q in ipairs { params.query or false, params.extra_query or false } do
    if type(q) == "table" then
      for k, v in pairs(q) do
        local into = credentials.secret_param(tostring(k)) and creds or own
        into[#into + 1] = "?" .. tostring(k) .. "=" .. tostring(v)
      end
    end
  end
  table.sort(own)
  table.sort(creds)
  if #own > 0 then key = key .. " own " .. hash(table.concat(own, "\n")) end
  if #creds == 0 then return key end
  local digest = self:digest(table.concat(creds, "\n"))
  return digest and key .. " creds " .. digest
end

-- The doubly linked list, most recently used first.
local function unlink (self, e)
  if e.prev then e.prev.next = e.next else self.head = e.next end
  if e.next then e.next.prev = e.prev else self.tail = e.prev end
  e.prev, e.next = nil, nil
end

local function push_front (self, e)
  e.next = self.head
  if self.head then self.head.prev = e end
  self.head = e
  if not self.tail then self.tail = e end
end

local function forget (self, e)
  unlink(self, e)
  self.entries[e.key] = nil
  self.count, self.bytes = self.count - 1, self.bytes - #e.key - #e.value
end

-- A time ahead of now by more than the clocks of two hosts sharing a folder
-- differ (60 s, or the ttl when shorter) is no time this cache wrote: its
-- age unknown, expired (an entry dated next year was served for ever).
local function expired (self, time)
  if self.ttl == nil then return false end
  local age = os_time() - time
  return age > self.ttl or -age > math.min(self.ttl, 60)
end

local function file_of (self, key)
  return self.dir .. "/" .. hash(key) .. ".json"
end

local function read_disk (self, key)
  if not self.dir then return nil end
  local path = file_of(self, key)
  -- (only a regular file is an entry: one replaced by a FIFO blocked the call for ever,
  -- by a link to /dev/zero read until memory ran out; a miss, the reply is stored over it)
  if core.file_kind(path) ~= "file" then return nil end
  -- (no larger than an entry written here: a file of a gigabyte put under an entry's name was read whole)
  local text = util.read_file(path, self.max_disk_bytes or 4 * self.max_bytes)
  if not text then return nil end
  local x = json.decode(text)
  if type(x) ~= "table" or x.key ~= key then return nil end   -- (another key's: a collision of the hash)
  -- (a time that is no number -- "soon", a table -- was read as 0: served for ever without a ttl)
  if type(x.value) ~= "string" or type(x.time) ~= "number" or x.time ~= x.time or expired(self, x.time) then
    os.remove(path)
    return nil
  end
  return x.value, tonumber(x.time)
end

local function write_disk (self, key, value, time)
  if not self.dir then return end
  local path = file_of(self, key)
  local text = json.encode { key = key, time = time, value = value }
  -- (an entry over the cap is not kept, as memory keeps none over max_bytes: written, the
  -- size cap's sweep removed every other entry of the folder, oldest first, then it)
  if #text > (self.max_disk_bytes or 4 * self.max_bytes) then   -- (nor one read_disk would not read)
    os.remove(path)
    return
  end
  local tmp = path .. ".tmp" .. tmp_suffix()
  -- Made 0600 (exclusive: a new name) before it is opened: "wb" keeps the
  -- mode of a file that exists, and one the Lua made has the user's umask
  -- (0644: a folder the user gave, other users could read the replies).
  -- In C: a shell did it, a fork and exec per write (1.3 ms, bench/).
  if not core.create_private(tmp, true) then return end
  local f = io.open(tmp, "wb")
  if not f then return end
  -- (a full disk fails at the flush, in close: the torn file was renamed
  -- over the entry it replaced)
  local ok = f:write(text)
  ok = f:close() and ok
  -- (a rename that fails -- a folder at the entry's name -- left the temporary file, one a write)
  if ok then ok = os.rename(tmp, path) end
  if not ok then os.remove(tmp) end
  -- The folder's size is counted from its last scan on: it is scanned
  -- again (core.list_dir, no process) when a write may take it past the cap, or
  -- a minute on (other processes may write there too), not after every
  -- write. (An overwrite counts twice: a scan comes early.)
  if ok and self.max_disk_bytes then
    if self.disk_bytes and self.disk_bytes + #text <= self.max_disk_bytes and time - self.scanned_at < 60 then
      self.disk_bytes = self.disk_bytes + #text
    else
      self:prune_disk()
    end
  end
  if ok and self.ttl then self:drop_expired(time) end
end

-- The disk entries, oldest first: { { path =, size =, t = } } (core.list_dir, in C:
-- `find` ran a shell once per ttl and once a minute under max_disk_bytes).
local OURS = "^" .. ("%x"):rep(16) .. "%.json$"

local function disk_entries (dir)
  local list = {}
  for _, e in ipairs(core.list_dir(dir) or {}) do
    -- (only our files, named by a key's hash: the folder may be one the
    -- user keeps other JSON in, and the TTL sweep and the size cap removed
    -- every *.json in it -- a config.json an hour old was gone)
    if e.kind ~= "directory" and e.name:find(OURS) then
      list[#list + 1] = { t = e.mtime, size = e.size, path = dir .. "/" .. e.name }
    end
  end
  table.sort(list, function (a, b) return a.t < b.t end)
  return list
end

-- The format of the keys (a file in the folder names it): entries made
-- under another key format are never read again (their names are hashes of
-- keys no call makes now), and without a `ttl` nor `max_disk_bytes` stayed
-- for ever -- those of the first format with the unsalted hashes of the
-- calls' keys ("[secret HASH]"), which a short key was found again from.
-- The first cache of this format to open a folder without its file removes
-- the entries in it (ours only) older than FORMAT-began, which the first of
-- them makes (exclusive: its time is when this format first came); then
-- makes the file. (Every entry was removed: two processes opening a fresh
-- folder at once, the later one removed the entries the other had written
-- since, of this format.) A cache killed in between: the next one does it
-- again, from the same time. Bump the name when the key changes again.
local FORMAT = ".format2"

-- A file's modification time as disk_entries reads its entries' (nil: none).
local function file_time (dir, name)
  for _, e in ipairs(core.list_dir(dir) or {}) do
    if e.name == name then return e.mtime end
  end
  return nil
end

function drop_old_format (dir)
  if core.file_kind(dir .. "/" .. FORMAT) then return end
  core.create_private(dir .. "/" .. FORMAT .. "-began", true)   -- (there already: kept as it is)
  local began = file_time(dir, FORMAT .. "-began")
  if not began then return end
  -- (not newer: a file's time is the kernel's tick, and an old entry written in the tick
  -- FORMAT-began was made stays else; a new one then is a miss, at worst)
  for _, e in ipairs(disk_entries(dir)) do
    if e.t and e.t <= began then os.remove(e.path) end
  end
  core.create_private(dir .. "/" .. FORMAT)
end

--- Removes the oldest disk entries while they hold more than
-- `max_disk_bytes`.
function Cache:prune_disk ()
  local list, total = disk_entries(self.dir), 0
  for _, e in ipairs(list) do total = total + e.size end
  local i = 1
  while total > self.max_disk_bytes and list[i] do
    os.remove(list[i].path)
    total, i = total - list[i].size, i + 1
  end
  self.disk_bytes, self.scanned_at = total, os_time()
end

--- Removes the disk entries older than `ttl` (by their files' times). A
-- write calls it at most once per `ttl`: an expired file was removed only
-- when read, so the replies no request asked for again stayed forever (a
-- bot caching its answers for an hour filled its disk over the weeks).
-- @tparam[opt] number time now (`os.time()`)
function Cache:drop_expired (time)
  time = time or os_time()
  if self.swept_at and time - self.swept_at < self.ttl then return end
  self.swept_at = time
  for _, e in ipairs(disk_entries(self.dir)) do
    if expired(self, e.t) then os.remove(e.path) end
  end
end

local function remember (self, key, value, time)
  local e = self.entries[key]
  if e then forget(self, e) end
  -- (the key counts too: it holds the whole request -- a prompt of a
  -- megabyte and a reply of a line, 1,000 of them kept a gigabyte under a
  -- 32 MiB cap)
  if #key + #value > self.max_bytes then return end
  e = { key = key, value = value, time = time }
  self.entries[key] = e
  push_front(self, e)
  self.count, self.bytes = self.count + 1, self.bytes + #key + #value
  while self.count > self.max_entries or self.bytes > self.max_bytes do
    forget(self, self.tail)
    self.evictions = self.evictions + 1
  end
end

-- Whether a stored reply has the shape of one: a table with fields; for
-- the chat and completion APIs (the key's path tells), a list of choices;
-- for the Responses API, an output list; for speech, its bytes. Its
-- common fields of the types a reply's have (an entry edited by hand or by
-- another tool: a `message` that was a string, a `usage` of text or of
-- 1e300 tokens, `headers` that were no table, a `body_b64` that was no
-- base64 were served as hits, to code reading `res.usage.total_tokens`).
local function count_ok (v)
  return v == nil or (type(v) == "number" and v >= 0 and v < 2 ^ 53 and v == math.floor(v))
end

local TOKENS = { "prompt_tokens", "completion_tokens", "total_tokens", "input_tokens", "output_tokens" }

local function fields_ok (res)
  for _, name in ipairs { "id", "object", "model", "text", "body" } do
    if res[name] ~= nil and res[name] ~= core.null and type(res[name]) ~= "string" then return false end
  end
  if res.status ~= nil and not (count_ok(res.status) and res.status >= 100 and res.status <= 599) then return false end
  local u = res.usage
  if u ~= nil and u ~= core.null then
    if type(u) ~= "table" then return false end
    for _, name in ipairs(TOKENS) do if not count_ok(u[name]) then return false end end
  end
  local h = res.headers
  if h ~= nil then
    if type(h) ~= "table" then return false end
    for k, v in pairs(h) do if type(k) ~= "string" or type(v) ~= "string" then return false end end
  end
  local b = res.body_b64
  return b == nil or (type(b) == "string" and core.media.b64decode(b) ~= nil)
end

local function choices_ok (choices)
  if type(choices) ~= "table" or type(choices[1]) ~= "table" then return false end
  for _, c in ipairs(choices) do
    if type(c) ~= "table" then return false end
    local m = c.message
    if m ~= nil and (type(m) ~= "table" or (m.content ~= nil and m.content ~= core.null
                     and type(m.content) ~= "string" and type(m.content) ~= "table")) then
      return false
    end
    if c.text ~= nil and type(c.text) ~= "string" then return false end
  end
  return true
end

local function reply_shaped (res, key)
  if type(res) ~= "table" or next(res) == nil or not fields_ok(res) then return false end
  local path = key:match(" POST (/[^ ]*) ")
  if path and path:find("/completions$") then
    return choices_ok(res.choices)
  elseif path and path:find("/responses$") then
    return type(res.output) == "table"
  elseif path and path:find("/audio/speech$") then
    return type(res.body) == "string" or type(res.body_b64) == "string"
  end
  return true
end

--- The stored reply for `key` (a fresh copy, `cached = true`), or nil;
-- counts a hit or a miss.
-- @tparam string key
-- @treturn table|nil
function Cache:get (key)
  local e = self.entries[key]
  local value
  if e and expired(self, e.time) then forget(self, e); e = nil end
  if e then
    unlink(self, e)
    push_front(self, e)
    value = e.value
  else
    local time
    value, time = read_disk(self, key)
    if value then remember(self, key, value, time) end
  end
  local res = value and json.decode(value)
  if not reply_shaped(res, key) then
    -- (a damaged or hand-edited entry: a miss, and the reply that comes
    -- in its place is stored over it, on disk too)
    if self.entries[key] then forget(self, self.entries[key]) end
    self.misses = self.misses + 1
    return nil
  end
  if res.body == nil and type(res.body_b64) == "string" then
    res.body, res.body_b64 = core.media.b64decode(res.body_b64), nil
  end
  self.hits = self.hits + 1
  res.cached, res.retries = true, 0
  return res
end

--- Stores a reply (the fields the core adds per request -- `retries` --
-- are left out), scrubbed by `scrub` (the client's and the call's secrets: a key a server
-- echoed is never kept, in memory or on disk).
-- @tparam string key
-- @tparam table res
-- @tparam[opt] function scrub the stored JSON text -> the text to keep
function Cache:put (key, res, scrub)
  local copy = {}
  for k, v in pairs(res) do if k ~= "retries" and k ~= "cached" then copy[k] = v end end
  -- (`res.headers` is made when first read: `pairs` shows it through
  -- `__pairs`, which Lua 5.1 and LuaJIT do not have; a hit has it on all)
  if copy.headers == nil then copy.headers = res.headers end
  -- (no cookie nor token a server set: a session kept on disk, and handed
  -- to every later hit, is one anyone reading the folder could use)
  if type(copy.headers) == "table" then
    local kept = {}
    for name, v in pairs(copy.headers) do
      if type(name) ~= "string" or not cassette.private_header(name) then kept[name] = v end
    end
    copy.headers = kept
  end
  local ok, value = pcall(json.encode, copy)
  if not ok and type(copy.body) == "string" then
    -- A reply of bytes that are no text (speech's audio): kept as base64.
    -- A JSON string holds UTF-8 text only: the encoding failed, nothing was
    -- stored, and every repeat of the call was sent (and paid) again.
    copy.body, copy.body_b64 = nil, util.base64(copy.body)
    ok, value = pcall(json.encode, copy)
  end
  if not ok then return end
  if scrub then value = scrub(value) end
  local time = os_time()
  remember(self, key, value, time)
  write_disk(self, key, value, time)
  self.stores = self.stores + 1
end

--- Counts: `hits`, `misses`, `stores`, `evictions` (memory), `entries`
-- and `bytes` in memory.
-- @treturn table
function Cache:stats ()
  return { hits = self.hits, misses = self.misses, stores = self.stores, evictions = self.evictions,
           entries = self.count, bytes = self.bytes }
end

--- Empties the memory part (the disk files stay).
function Cache:clear ()
  self.entries, self.head, self.tail, self.count, self.bytes = {}, nil, nil, 0, 0
end

return M
