--- The client's workflow options, kept out of client.lua: usage and cost
-- totals (`prices`, `client:usage()`), the automatic prompt log
-- (`prompt_log`) and cassettes (`cassette`).
--
-- client.lua calls this module at four points: `split` takes these options
-- out of the client's before the client checks its own, `base_url` lets a
-- replaying cassette redirect the engine, `attach` sets the client's hook,
-- and the client's `submit` runs every request through `before` (the one
-- place every call passes: blocking, streams, `chat_async`, tasks, the
-- dialogue layer). The end of each request is observed through its
-- `on_done`/`on_error`, so what is counted does not depend on who waits.
--
-- Internal: the options and methods are documented in `aigc.client`.
-- @module aigc.hooks
-- @local

local core = require "aigc.core"
local util = require "aigc.util"
local credentials = require "aigc.credentials"
local usage = require "aigc.usage"
local cassette = require "aigc.cassette"
local cache = require "aigc.cache"
local pending = require "aigc.promptlog_pending"
local task = require "aigc.task"

local error, getmetatable, next, pairs, pcall, setmetatable, tostring, type =
  error, getmetatable, next, pairs, pcall, setmetatable, tostring, type
local now = core.now
local pcall_passing_interrupts = util.pcall_passing_interrupts
-- (util.pcall_passing_interrupts' two lines, for the one call every
-- blocking request makes: where xpcall takes arguments, not PUC 5.1)
local xpcall_args = require("aigc.compat").version ~= "5.1" and xpcall
local keep_interrupt, is_interrupt = core.keep_interrupt, core.is_interrupt

util.own_module()

local M = {}

--- The options this module owns.
M.OPTIONS = { prices = true, prompt_log = true, cassette = true, usage = true, cache = true }

local function check_options (ext)
  if ext.prices ~= nil then
    local path, why = usage.prices_problem(ext.prices)
    if path then util.field_error("client", 1, "opts.prices" .. path, why) end
  end
  local log = ext.prompt_log
  if log ~= nil and log ~= false and log ~= true and type(log) ~= "string"
     and not (type(log) == "table" and type(log.record_call) == "function") then
    util.field_error("client", 1, "opts.prompt_log", util.expected("true, a file name or an aigc.promptlog", log))
  end
  if ext.usage ~= nil and type(ext.usage) ~= "boolean" then
    util.field_error("client", 1, "opts.usage", util.expected("boolean", ext.usage))
  end
  if ext.cassette ~= nil then cassette.check(ext.cassette) end
  if ext.cache ~= nil then cache.check(ext.cache) end
end

--- Takes this module's options out of the client's options.
-- @tparam table opts
-- @treturn table the other options (a copy when some were taken)
-- @treturn table|nil this module's
function M.split (opts)
  local ext
  for name in pairs(M.OPTIONS) do
    if opts[name] ~= nil then ext = ext or {}; ext[name] = opts[name] end
  end
  if ext == nil then return opts, nil end
  check_options(ext)
  local rest = {}
  for k, v in pairs(opts) do if not M.OPTIONS[k] then rest[k] = v end end
  return rest, ext
end

--- The base URL the engine must use: a replaying cassette's server, else
-- `base_url`. Opens the cassette (so after the client's own checks).
-- @tparam table|nil ext
-- @tparam string base_url
-- @treturn string
function M.base_url (ext, base_url)
  if ext and ext.cassette then
    ext.opened_cassette = cassette.open(ext.cassette, base_url)
    return ext.opened_cassette.base_url or base_url
  end
  return base_url
end

local function open_prompt_log (spec)
  if type(spec) == "table" then return spec end
  local promptlog = require "aigc.promptlog"
  if spec == true and promptlog.disabled() then return nil end
  local log, err = promptlog.open(spec ~= true and spec or nil)
  if not log then error(err, 0) end
  return log
end

--- Sets up a new client's hook.
-- @tparam aigc.client client
-- @tparam table|nil ext
function M.attach (client, ext)
  ext = ext or {}
  if ext.usage ~= false then client._usage = usage.new(ext.prices) end
  -- (each field a call reads is set, false when off: absent, it was looked up in the Client class
  -- through __index at every call)
  client._cassette, client._promptlog, client._cache = ext.opened_cassette or false, false, false
  -- (a log or a cache folder that cannot be opened raises: the cassette
  -- opened already is closed first -- its server stopped, its lock let go:
  -- kept until collected, the tape could not be opened again meanwhile)
  local ok, err = pcall(function ()
    if ext.prompt_log then
      client._promptlog = open_prompt_log(ext.prompt_log) or false
      client._owns_log = type(ext.prompt_log) ~= "table"   -- (a log the caller opened, the caller closes)
    end
    if ext.cache then client._cache = cache.new(ext.cache) end
  end)
  if not ok then
    if client._cassette then client._cassette:close() end
    error(err, 0)
  end
  client._hook = (client._usage or client._promptlog or client._cassette or client._cache) and M or false
  -- The default: totals and nothing else. A call then needs no state but
  -- its end (see `M.before`'s straight line).
  client._counts_only = client._usage ~= nil and not (client._promptlog or client._cassette or client._cache)
end

-- Calls f(...), dropping what it raises -- except an interrupt (an error
-- raised in a debug hook: lua.c's Ctrl-C, a host's watchdog), which must
-- reach the caller as it does everywhere in aigc (`util.pcall_passing_interrupts` raises it on).
local function quietly (f, ...)
  pcall_passing_interrupts(f, ...)
end

-- The client's secrets and the call's own (the credential of a header or
-- a query parameter of that call: `credentials.call_credentials`) scrubbed from
-- `v` (a string, or a table in place) as from the call's errors and logs
-- (`engine:scrub`): for what a cache or a cassette keeps. Raises when it
-- cannot scrub (then nothing is kept).
local function scrubber (client, call)
  local engine = rawget(client, "_engine")
  local secrets, lines = call.secrets, call.header_lines
  return function (v) return engine:scrub(v, secrets, lines) end
end

-- The client's credentials, for the cache's key (`Cache:call_key`, which
-- keeps only a keyed digest of them): its credential headers (the API
-- key's Authorization, api-key...), its query's keys and those of its
-- base URL `url`. Without them, two clients with two API keys and one
-- cache folder shared their entries. Made once per client.
--
-- And its other headers and query (the second list): an organization, a
-- project, an `api-version`, a header of the caller's change the reply
-- (a fine-tuned model only one organization may use); without them, two
-- clients that differ only there got each other's replies. Not the
-- headers every client sends (`User-Agent` names the Lua: a LuaJIT
-- process missed a 5.4 one's entries).
local SAME_FOR_ALL = { ["user-agent"] = true, ["content-type"] = true, accept = true, expect = true }
local function held_credentials (client, url)
  local held = rawget(client, "_held")
  if held then return held, client._held_own end
  held = {}
  local own = {}
  for name, line in pairs(client._hlines or {}) do
    if credentials.credential_header(name) then held[#held + 1] = line
    elseif not SAME_FOR_ALL[name] then own[#own + 1] = line end
  end
  for k, values in pairs(client._query or {}) do
    local into = credentials.secret_param(tostring(k)) and held or own
    for _, v in ipairs(util.query_values(values)) do
      into[#into + 1] = "?" .. tostring(k) .. "=" .. tostring(v)
    end
  end
  credentials.url_secrets(url, held)
  client._held, client._held_own = held, own
  return held, own
end

-- What became of a call's row in the client's prompt log (`why`: nil,
-- written; else why it was not). A write that fails (a read-only or full
-- disk, the lock held past the wait) was dropped without a word, every
-- call after it too: the first failure is reported (the client's
-- `error_handler`, else `step()`), and again after a write that worked.
local function log_outcome (client, why)
  if why and not client._log_failing then
    local e = type(why) == "table" and why.message or why
    quietly(util.report, client, core.error { kind = "log", message = "the prompt log did not record a call: "
                                                                     .. tostring(e) })
  end
  client._log_failing = why and true or nil
end

-- Writes a call's exchange on the client's recording cassette (`f`: its
-- `ended` or `hit`). A write that fails (a full disk) left the tape
-- without the exchange and said nothing (a replay then missed it): the
-- first failure is reported, kind "io" (the client's `error_handler`, else
-- `step()`), and again after a write that worked.
local function tape (client, f, ...)
  local ok, why = pcall_passing_interrupts(f, ...)   -- (an interrupt goes on up)
  why = ok and why or nil
  if why and not client._tape_failing then
    quietly(util.report, client, core.error { kind = "io", message = "the cassette did not record a call: "
                                                                    .. client._cassette.path .. ": " .. why })
  end
  client._tape_failing = why and true or nil
end

-- Records a chat call's end in the client's prompt log, if it has one
-- (`extra`: the entry's extra fields). `blocking`: the end of a blocking
-- call outside a task, which may wait for the database's lock as long as
-- the log says; from the loop (a step, a callback, a task) a write waits
-- a few ms at most, and a row the lock keeps out is written later
-- (aigc.promptlog_pending: a frame froze while another process held the lock).
local function log_call (client, call, res, err, extra, blocking)
  local log = client._promptlog
  if log and call.api == "chat" and type(call.user_params) == "table" then
    pending.log(client, log, call.user_params, res, err, {
      started = call.started, client = client, call_secrets = call.secrets, header_lines = call.header_lines,
      extra = extra }, not blocking and pending.LOOP_WAIT_MS or nil, log_outcome)
  end
end

-- A request has ended: counts it, logs it, records it. Nothing here may
-- raise into the engine's end (a failing log write is dropped).
local function ended (client, call, res, err, blocking)
  local c = client._cassette
  if client._usage then
    -- (a miss is the cassette's own 404, not a recorded exchange replayed)
    local replayed = c and c.mode == "replay" and not (err and type(err) == "table" and err.code == "cassette_miss")
    client._usage:record(res, err, replayed and "replay" or nil)
  end
  if res and call.cache_key and client._cache then
    quietly(client._cache.put, client._cache, call.cache_key, res, scrubber(client, call))
  end
  if c then tape(client, c.ended, c, call, res, err, scrubber(client, call)) end
  log_call(client, call, res, err, nil, blocking)
end

-- Whether a call's end can be heard through its own callbacks: only
-- when the caller gave `on_done` or `on_error` (they are wrapped). Adding
-- callbacks to a request that has none would change it: the engine then
-- holds it (a dropped request would no longer be canceled when
-- collected) and its end would still be pending after a cancel (in
-- `active()`). The others are watched weakly: a blocking call hears its
-- end when it returns (`await`), a non-blocking one at the next sweep.
local function has_callbacks (params)
  return params ~= nil and (params.on_done ~= nil or params.on_error ~= nil)
end

local TERMINAL = { done = true, failed = true, canceled = true }

--- The state of a counting-only call without callbacks: the caller's
-- params are submitted as they are (`as_is`: `client.submit` then reads
-- no `params`/`options` from the state), and its end is all there is to
-- hear. Shared by all such calls (a table per call cost ~1.6k
-- instructions): nothing writes to it.
M.PLAIN = { unheld = true, as_is = true }
local PLAIN = M.PLAIN

-- The state of a counting-only call with callbacks (`M.before`'s straight
-- line): the caller's params are submitted as they are, their `on_done`
-- and `on_error` with them, and `observe` goes to the engine in the
-- submit's opts: it hears the end first (the totals count it), then the
-- caller's callback runs, as `ended` and the general path's observer do.
-- The engine runs the two apart: a host's watchdog that cut the count (a
-- wrapper that called the caller's callback itself) lost that callback;
-- now the interrupt goes on up and the callback runs on the next turn.
-- One per client: it holds nothing of a call (the shared opts made for it
-- are kept in it: `client.plain_opts`).
local function counted_callbacks (client)
  local call = client._counted
  if call then return call end
  local totals = client._usage
  call = { as_is = true, observe = function (res, err)
    pcall_passing_interrupts(totals.record, totals, res, err)
  end }
  client._counted = call
  return call
end

-- The ends of requests without callbacks (see `has_callbacks`): a weak
-- table, `client._unheld`, swept at the end of each `step()`/`act()`
-- (where requests end), and when the client submits, reports usage or
-- closes. One the caller dropped before it ended is collected, canceled
-- and never counted.
--
-- A request nobody awaits is submitted with `watch = true`: when its end
-- has been delivered, the engine lists it, and the sweep takes that list
-- (`engine:take_ended()`), so it costs the ends since the last sweep, not
-- the requests in flight (a walk calling status() on each cost ~1,000
-- instructions per request in flight at every step, and at every submit
-- of a task that an end resumed: with 512 tasks each making blocking
-- calls, 1.06M instructions per request). A blocking call of the client
-- (`chat`, `complete`...) hears its own end (`await`): it is neither in
-- `_unheld` nor listed (its entry made `_unheld` a table of K live keys
-- churned at every request: at K = 512 each insert rehashed it). A wait
-- that never returns (an interrupt, an abandoned task) leaves its request
-- unheld by anyone: collected and canceled, never counted, as any request
-- dropped before its end (a weak entry did not keep it either).
-- `force` (usage reports, close), or an end the engine could not list (a
-- cancel nobody listened to, memory), walks them all: a report also
-- counts a request that ended but whose end the loop has not delivered.
local function sweep (client, force)
  local t = client._unheld
  local ended_reqs, lost
  if client._watching then   -- (the list holds its requests: taken even when `t` is empty)
    local engine = client._engine
    ended_reqs, lost = engine:take_ended()
  end
  if not t or next(t) == nil then return end
  if force or lost then
    -- The ended ones first, then their records: a record runs the user's
    -- log and may submit (adding keys to `t` during a pairs() walk is not
    -- allowed) or sweep again.
    ended_reqs = {}
    for req in pairs(t) do
      if TERMINAL[req:status()] then ended_reqs[#ended_reqs + 1] = req end
    end
  elseif not ended_reqs then
    return
  end
  for i = 1, #ended_reqs do
    local req = ended_reqs[i]
    local call = t[req]
    if call then   -- (not already heard by a nested sweep or `await`)
      t[req] = nil
      local res, err = req:result()
      quietly(ended, client, call, res, err)
    end
  end
end

--- After a step or an act: the ends of that turn (`sweep`), and the
-- prompt log's rows that the database's lock kept out, written if it is free.
function M.sweep (client, force)
  sweep(client, force)
  local log = client._promptlog
  if log and client._log_pending then pending.flush(client, log, pending.LOOP_WAIT_MS, log_outcome) end
end

--- Before a request is submitted: the call's state; `call.params` is what
-- to submit (a copy whose `on_done` and `on_error` also tell this module
-- when the caller gave callbacks), `call.options` the table whose
-- headers the call sends; `call.on_done`/`call.on_error`, when set, go to
-- the engine in the submit's opts (in place of the params' own). `PLAIN`:
-- submit the params as they are. `body`: the media calls' body options
-- (`sink`, `events`, `form`: aigc.media). `token`: the call's Azure token
-- (its client's azure_ad_token_provider's), or nil. `fit`: params that
-- passed the fast check, which admits no `cache` field and no metatable
-- (aigc.client's `FITS_PLAIN`): not asked again.
function M.before (client, api, params, path, body, token, fit)
  if client._watching or client._unheld then sweep(client) end   -- (else it has nothing to do: a call less)
  -- The common case, a straight line (~10k instructions per call less
  -- than the general one below): totals only, params without a `cache`
  -- mark nor a metatable. The end is all this call needs: the caller's
  -- params are submitted as they are (the engine reads them as it would
  -- the copy), with the counting observer in the opts when the caller
  -- gave callbacks.
  if client._counts_only and (params == nil or fit or (params.cache == nil and getmetatable(params) == nil)) then
    if params ~= nil and (params.on_done ~= nil or params.on_error ~= nil) then   -- (has_callbacks)
      return counted_callbacks(client)
    end
    return PLAIN
  end
  local p = {}
  for k, v in pairs(params or {}) do p[k] = v end
  -- The copy keeps the params' metatable: the encoder reads an `__index`
  -- table as defaults and refuses an `__index` function, as for the original.
  local mt = params and getmetatable(params)
  if type(mt) == "table" then setmetatable(p, mt) end
  local call = { api = api, started = now(), user_params = params, params = p, options = p, model = client.model,
                 method = body and body.method }
  call.secrets, call.header_lines = credentials.call_credentials(p)   -- (what the cache, the cassette keep: scrubbed)
  if token then
    -- (an Azure provider's token: the call's credential, as a fixed azure_ad_token's header is
    -- the client's -- in the cache's key, digested, and scrubbed from what is kept)
    call.header_lines = call.header_lines or {}
    table.insert(call.header_lines, 1, "Authorization: Bearer " .. token)
  end
  p.cache = nil   -- (the cache mark is never sent)
  if client._cache and cache.cacheable(api, params, body) then
    -- (the URL as shown: no password in a key that the disk cache's files repeat; the
    -- client's own, not a cassette's server's, whose port is new each run: the disk
    -- entries were never hit again while a cassette recorded through its proxy or replayed)
    local url = client._cassette and client._cassette.upstream or client.base_url
    -- (an Azure base URL's deployment, which requests add to it: two deployments never share a reply)
    local azure = rawget(client, "_azure")
    if azure and azure.deployment then url = url .. "/deployments/" .. azure.deployment end
    -- (scrubbed: a prompt holding the client's key -- "why is sk-... refused?" -- wrote it
    -- to the disk entry's key; a key that cannot be scrubbed is no key: not cached)
    local ok, key = pcall(scrubber(client, call),
                          credentials.shown_url(url) .. " " .. cassette.key(api, p, path, client.model))
    call.cache_key = ok and type(key) == "string"
      and client._cache:call_key(key, call.secrets, call.header_lines, p, held_credentials(client, url)) or nil
    call.hit = call.cache_key and client._cache:get(call.cache_key)
    if call.hit then
      -- (a tape being recorded keeps the hit too: a replay of it missed that call)
      local c = client._cassette
      if c then tape(client, c.hit, c, call, api, params, path, call.hit, scrubber(client, call)) end
      return call
    end
  end
  if has_callbacks(params) then
    -- (heard before the caller's callbacks, which the copy keeps: the
    -- engine runs them apart, see `counted_callbacks`)
    call.observe = function (res, err) quietly(ended, client, call, res, err) end
  else
    call.unheld = true
  end
  if client._cassette then client._cassette:before(call, api, params, path, scrubber(client, call)) end
  if params == nil and call.unheld then call.params = nil end   -- (a GET: options only)
  return call
end

--- After the request is submitted (not a blocking call's: `await` hears
-- those): a request without callbacks is watched weakly (`sweep`).
function M.after (client, req, call)
  if not call.unheld then return end
  client._unheld = client._unheld or setmetatable({}, { __mode = "k" })
  client._unheld[req] = call
end

--- A call answered from the cache: a future that is already done (its
-- `on_done` runs from the loop, as any request's).
function M.settled (client, call)
  if client._usage then client._usage:record(call.hit, nil, "cache") end
  -- (a bot's log shows every reply it gave, those the cache gave too)
  log_call(client, call, call.hit, nil, { cached = true })
  local params = call.user_params
  local f = require("aigc.future").new(client._loop, { label = "cached", on_done = params.on_done,
                                                       on_error = params.on_error })
  f:resolve(call.hit)
  return f
end

--- A blocking call's request returned `res` or `nil, err`: heard now.
-- `call` is its state from `M.before` (never in `_unheld`: see `sweep`);
-- nil for a cache hit's future (counted by `M.settled`). A call with
-- callbacks hears its end through them.
function M.await (client, req, call, res, err)   -- luacheck: ignore 212/req
  if call ~= nil and call.unheld then
    if call == PLAIN then   -- (a counting-only call: `ended` would only count it)
      local totals = client._usage
      -- (`quietly` and `pcall_passing_interrupts`, inline: two vararg Lua
      -- calls less on every blocking call)
      if xpcall_args then
        local ok, e = xpcall_args(totals.record, keep_interrupt, totals, res, err)
        if not ok and is_interrupt(e) then error(e, 0) end
      else
        pcall_passing_interrupts(totals.record, totals, res, err)
      end
    else
      quietly(ended, client, call, res, err, task.current_client() == nil)
    end
  end
  return res, err
end

--- A request submitted without a blocking wait (`chat_async`...) whose
-- end its caller has just heard through `await` (the dialogue layer's
-- rounds): heard now, as a blocking call's is, before the caller goes on
-- -- the dialogue then replaces the last reply's `usage` with the sum of
-- every round's, and a later sweep read that sum for the last request and
-- counted the earlier rounds twice. A request no longer watched (heard
-- already, or not ended) is left as it is.
function M.heard (client, req)
  local t = client._unheld   -- (false until a request is watched: a round from the cache never was)
  local call = t and t[req]
  if not call or not TERMINAL[req:status()] then return end
  t[req] = nil
  quietly(ended, client, call, req:result())
end

--- When the client closes: the replay server stops, the log closes (if
-- the client opened it).
function M.close (client)
  sweep(client, true)
  -- (the recording proxy's own appends: told only here, and by its answer
  -- to each later call)
  local failed = client._cassette and client._cassette:close()
  if failed then
    quietly(util.report, client, core.error { kind = "io", message = "the cassette did not record a call: "
                                                                    .. failed })
  end
  local log = client._promptlog
  -- (the rows the lock kept out: written now, waiting as long as the log says)
  if log then pending.flush(client, log, nil, log_outcome, true) end
  if log and type(log.close) == "function" and client._owns_log then pcall(log.close, log) end
  client._promptlog = nil
end

--- Installs the methods on the client class.
-- @tparam table Client
function M.install (Client)
  --- Usage and cost totals since the client was made (or `reset_usage`):
  -- `requests`, `errors`, `errors_by_kind`, `retries`, `cache_hits`,
  -- `replayed`, `prompt_tokens`, `completion_tokens`, `total_tokens`,
  -- `cost` (dollars; nil without a price for the models used) and `models`
  -- (`{ [model] = { requests, prompt_tokens, completion_tokens,
  -- total_tokens, cost } }`). A copy: keep it, compare it later
  -- (`aigc.usage.diff`). Requests are counted when they end.
  -- @treturn table|nil nil when made with `usage = false`
  -- @usage print(client:usage().total_tokens, client:usage().cost)
  function Client:usage ()
    sweep(self, true)
    return self._usage and self._usage:snapshot() or nil
  end

  --- The response cache's counts: `hits`, `misses`, `stores`,
  -- `evictions`, `entries`, `bytes` (see `aigc.cache`); nil without a cache.
  -- @treturn table|nil
  function Client:cache_stats ()
    return self._cache and self._cache:stats() or nil
  end

  --- Starts the totals afresh.
  function Client:reset_usage ()
    if self._usage then self._usage:reset() end
  end

  --- Sets the price table the cost comes from (`{ [model] = { input =,
  -- output =, cached_input = } }`, $ per 1M tokens); applies to requests
  -- that end from now on.
  -- @tparam table prices
  function Client:set_prices (prices)
    local path, why = usage.prices_problem(prices)
    if path then util.field_error("set_prices", 1, "prices" .. path, why) end
    if self._usage then self._usage:set_prices(prices) end
  end
end

return M
