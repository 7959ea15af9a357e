--- The dialogue layer above single requests: the tool-call loop and
-- structured output.
--
-- `client:chat` and `client:chat_async` come here when their params hold a
-- toolset (`tools = aigc.tools {...}`) or a `schema`; nothing else does.
--
-- **Tools.** The loop sends the toolset's definitions, runs every call in
-- the reply (parallel calls in the order given) as a Lua function, appends
-- the assistant's tool-call message and one `role = "tool"` message per
-- call, and asks again, until a reply has no tool calls. After
-- `max_tool_rounds` rounds of calls (default 10) the next request goes with
-- `tool_choice = "none"`, so the model must answer; a reply that still
-- calls tools is then an error of kind "tool". A `tool_choice` in params
-- applies to the first request only (a forced call would repeat forever).
-- The result gains `res.tool_calls_made` (one record per call, see
-- `aigc.tools`), `res.tool_messages` (the messages the loop added, in
-- order, for a history to keep), `res.tool_rounds`, and `res.usage_rounds`
-- (each reply's usage, `aigc.null` when it had none); `res.usage` is their
-- sum (errors after some rounds carry both too). A failing tool goes back
-- to the model as an error message; with `tool_errors = "fail"` it ends
-- the call with `nil, err` (kind "tool"). A reply whose `tool_calls` holds
-- something that is not a tool call is `nil, err` of kind "parse".
--
-- **Structured output.** `schema = <JSON schema table>` sends
-- `response_format = { type = "json_schema", json_schema = { name =
-- schema_name or "response", schema = schema, strict = true } }`
-- (`schema_strict = false` drops strict) and returns `res.parsed`, the
-- reply decoded and validated (see `aigc.schema`). Failures return
-- `nil, err`: kind "schema" when the reply is not JSON or breaks the
-- schema (`err.violations` lists `{path, message}`; `err.text` is the
-- reply), kind "incomplete" when the reply was cut (`finish_reason` "length"),
-- kind "refusal" when the model refused (`err.refusal`). `err.response`
-- holds the response in each case.
--
-- For servers without json_schema: `schema_mode = "json_object"` sends
-- `response_format = { type = "json_object" }` and puts the schema in a
-- system message instead; `schema_mode = "auto"` tries json_schema and, when
-- the server answers 400 about `response_format`, repeats the request in
-- json_object mode. The reply is validated the same way in every mode.
--
-- Both work with `stream` (deltas of every round reach the function),
-- `n` (each choice gets `parsed`; the first decides success), inside tasks
-- (waits yield) and through `chat_async`, which returns an
-- `aigc.dialogue_request` with the interface of `aigc.request` and its
-- lifecycle: exactly one of `on_done`/`on_error` runs, from the loop;
-- cancel and `client:close()` give `on_error` an error of kind "canceled"
-- (from the loop, never from inside `cancel()`), and nothing is delivered
-- after; an error in a callback is reported once (the client's
-- `error_handler`, else `step()`'s second result and stderr); a task that
-- yields outside aigc (a tool's own `coroutine.yield`) fails the request
-- with kind "callback"; `wait()` returns once the request is over.
--
-- @module aigc.dialogue
-- @usage
-- local res = assert(client:chat {
--   messages = { { role = "user", content = "Where is order A-1042?" } },
--   tools = aigc.tools { { name = "track_order", parameters = order_schema, fn = track } },
--   schema = { type = "object", properties = { answer = { type = "string" } }, required = { "answer" },
--              additionalProperties = false },
-- })
-- print(res.parsed.answer, #res.tool_calls_made)

local core = require "aigc.core"
local client_mod = require "aigc.client"
local schema_mod = require "aigc.schema"
local tools_mod = require "aigc.tools"

local json_encode = core.json.encode
local null, array, now = core.null, core.array, core.now
local error, ipairs, pairs, pcall, setmetatable, tostring, type =
  error, ipairs, pairs, pcall, setmetatable, tostring, type
local math_type, string_format = math.type, string.format
local submit, await, task_owner = client_mod.submit, client_mod.await, client_mod.task_owner
local post, start_task = client_mod.post, client_mod.start_task

local M = {}

--- Default for `max_tool_rounds`.
M.MAX_TOOL_ROUNDS = 10

-- Params this layer consumes; they are never sent.
local OWN = {
  schema = true, schema_name = true, schema_mode = true, schema_strict = true,
  max_tool_rounds = true, tool_errors = true, on_done = true, on_error = true,
}

local function argerror (fname, msg, level)
  error(string_format("bad argument #1 to '%s' (%s)", fname, msg), level + 1)
end

local function is_error (v)
  return type(v) == "table" and getmetatable(v) == core.error_mt
end

-- Reports an error from a callback the way the engine does (error_handler,
-- else step()'s second result and stderr): once.
local function report (client, err)
  local ok = pcall(client._engine.report, client._engine, err)
  if not ok then io.stderr:write("aigc: ", tostring(err), "\n") end
end

local function callback_error (what, e)
  if is_error(e) then return e end
  return core.error { kind = "callback", message = "error in " .. what .. ": " .. tostring(e) }
end


-- {======================================================
-- Dialogue requests: the aigc.request interface over a task
-- =======================================================

local Request = {}
Request.__index = Request
Request.__name = "aigc.dialogue_request"

local function pending (state) return state == "running" end

-- Runs a request's on_done/on_error as a task of its own: it may wait
-- (its waits yield), and whatever it does -- raise, yield outside aigc --
-- is reported once and cannot stall the request's own task.
local function run_callback (client, cb, value, what)
  start_task(client, cb, what, value)
end

--- Runs `fn(req)` as a task of `client` and returns the request object
-- that stands for it: `status`, `result`, `wait`, `cancel` and `__close`
-- as on `aigc.request`. `fn` returns `res` or `nil, err`; an error it
-- raises fails the request (kind "callback"). Inside `fn`, call
-- `req:track(inner)` with each request it submits, so that `cancel`
-- reaches it, and check `req:canceled()` after its own waits.
-- `opts.on_done(res)` / `opts.on_error(err)`: exactly one runs when it ends,
-- as a task of the client (cancel and close included: on_error gets the
-- "canceled" error from the loop).
-- @tparam aigc.client client
-- @tparam function fn
-- @tparam[opt] table opts `kind` (shown by tostring), `on_done`, `on_error`
-- @treturn aigc.dialogue_request
-- @usage
-- local req = dialogue.spawn(client, function (req)
--   local r = req:track(client_mod.submit(client, "chat", params))
--   return client_mod.await(client, r)
-- end)
-- while req:status() == "running" do client:step(0.01) end
function M.spawn (client, fn, opts)
  opts = opts or {}
  local req = setmetatable({
    _client = client, _state = "running", _kind = opts.kind or "task",
    _on_done = opts.on_done, _on_error = opts.on_error, _waiters = {},
  }, Request)
  client_mod.closable(client, req)
  client:spawn(function ()
    -- If the task is abandoned (something in it yielded outside aigc), the
    -- request fails with that error instead of staying "running" forever.
    client_mod.on_abandon(function (err)
      local inner = req._inner
      if inner then pcall(inner.cancel, inner, "the dialogue task was abandoned") end
      return req:_finish(nil, err)
    end)
    local ok, res, err = pcall(fn, req)
    if not ok then res, err = nil, callback_error("a dialogue task", res) end
    if res == nil and err == nil then
      err = core.error { kind = "callback", message = "a dialogue task returned neither a result nor an error" }
    end
    req:_finish(res, err)
  end)
  return req
end

-- Tells every waiter (tasks in client_mod.await) that the request is over.
local function fire (req)
  local list = req._waiters
  req._waiters = {}
  for _, fn in ipairs(list) do
    local ok, e = pcall(fn, req)
    if not ok then report(req._client, callback_error("a waiter", e)) end
  end
end

-- Ends the request (once): done with res, or failed with err. Returns
-- whether it did (false when it had already ended, canceled included).
function Request:_finish (res, err)
  if not pending(self._state) then return false end
  self._inner = nil
  self._client._closables[self] = nil
  local cb, val, what
  if res ~= nil then
    self._state, self._res, cb, val, what = "done", res, self._on_done, res, "on_done"
  else
    self._state, self._err, cb, val, what = "failed", err, self._on_error, err, "on_error"
  end
  self._on_done, self._on_error = nil, nil
  if cb then run_callback(self._client, cb, val, what) end
  fire(self)
  return true
end

--- Records the request the task is waiting for now (for `cancel`).
-- @tparam aigc.request inner
-- @treturn aigc.request inner
-- @usage local r = req:track(client:chat_async(p)); local res, err = client_mod.await(client, r)
function Request:track (inner)
  self._inner = inner
  if self._state == "canceled" then inner:cancel(self._err.message) end
  return inner
end

--- Whether the request was canceled (for the task to stop early).
-- @treturn boolean
-- @usage if req:canceled() then return nil, "stopped" end
function Request:canceled ()
  return self._state == "canceled"
end

--- "queued", "running", "done", "failed" or "canceled". "queued" while the
-- request the task waits for is queued (a client's `max_concurrency`).
-- @treturn string
-- @usage if req:status() == "done" then print(req:result().text) end
function Request:status ()
  local s = self._state
  if s == "running" and self._inner and self._inner:status() == "queued" then return "queued" end
  return s
end

--- The outcome: `res`, or `nil, err`; `nil, nil` while pending.
-- @treturn[1] table res
-- @treturn[2] nil
-- @treturn[2] aigc.error err
-- @usage local res, err = req:result(); if res then print(res.text) elseif err then print(err) end
function Request:result ()
  if self._state == "done" then return self._res end
  if pending(self._state) then return nil, nil end
  return nil, self._err
end

--- Waits until the request is over: yields inside a task (of any client:
-- the task's client then drives this request's client meanwhile), else
-- drives the client (`client:step`) meanwhile.
-- @tparam[opt] number timeout seconds; then `nil, nil` if still pending
-- @treturn[1] table res
-- @treturn[2] nil
-- @treturn[2] aigc.error|nil err
-- @usage local res, err = client:chat_async { messages = m, tools = ts }:wait()
function Request:wait (timeout)
  if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout or timeout < 0) then
    error("bad argument #1 to 'wait' (timeout must be a number >= 0)", 2)
  end
  local client = self._client
  local owner = task_owner()
  if pending(self._state) and owner then
    if timeout == nil then return await(client, self) end
    local deadline = now() + timeout
    if owner ~= client then client_mod.add_guest(owner, client) end
    while pending(self._state) and now() < deadline do owner:sleep(math.min(0.01, deadline - now())) end
    if owner ~= client then client_mod.remove_guest(owner, client) end
    return self:result()
  end
  local deadline = timeout and now() + timeout
  while pending(self._state) and not client._closed do
    local slice = 0.05
    if deadline then
      local left = deadline - now()
      if left <= 0 then break end
      if left < slice then slice = left end
    end
    client_mod.drive(client, slice)
  end
  -- wait() drives the loop: a canceled request's on_error, posted for the
  -- next step, is delivered before wait() returns.
  if self._end_posted then client_mod.run_posted(client) end
  return self:result()
end

--- Cancels: the request becomes "canceled" at once, with an error of kind
-- "canceled"; the request in flight is canceled and the loop stops.
-- `on_error` gets that error once, from the loop (the next `client:step()`
-- or wait), never from inside `cancel()`; nothing else is delivered after.
-- Safe anywhere, like `aigc.request:cancel`.
-- @tparam[opt] string why the error message
-- @treturn boolean whether it was pending
-- @usage if player_left then req:cancel("the player walked away") end
function Request:cancel (why)
  if not pending(self._state) then return false end
  local client = self._client
  self._state = "canceled"
  self._err = core.error { kind = "canceled", message = why or "the request was canceled" }
  client._closables[self] = nil
  local on_error = self._on_error
  self._on_done, self._on_error = nil, nil
  local inner = self._inner
  self._inner = nil
  if inner then inner:cancel(why) end
  self._end_posted = true
  post(client, function ()
    self._end_posted = nil
    if on_error then run_callback(client, on_error, self._err, "on_error") end
    fire(self)
  end)
  return true
end

-- client_mod.await's hook: fn(self) is called once when the request is
-- over (from the loop); several waiters may wait.
function Request:_notify (fn)
  if pending(self._state) then
    local w = self._waiters
    w[#w + 1] = fn
  else
    post(self._client, function () fn(self) end)
  end
end

function Request:__close ()
  self:cancel("the request was closed")
end

function Request:__tostring ()
  return string_format("aigc.dialogue_request (%s, %s)", self:status(), self._kind)
end

M.Request = Request

--- Whether a value is a dialogue request.
-- @param v
-- @treturn boolean
-- @usage if dialogue.is_request(r) then r:cancel() end
function M.is_request (v)
  return getmetatable(v) == Request
end

-- }======================================================


-- {======================================================
-- Options
-- =======================================================

local MODES = { json_schema = true, json_object = true, auto = true }

-- Checks the layer's options (misuse raises) and splits params into the
-- wire params and the options.
local function prepare (params, fname, level)
  local o = {}
  local s = params.schema
  if s ~= nil then
    if type(s) ~= "table" then argerror(fname, "params.schema must be a JSON schema table, got " .. type(s), level) end
    local ok, why = schema_mod.check_schema(s)
    if not ok then argerror(fname, "params.schema: " .. why, level) end
    o.schema = s
    local name = params.schema_name
    if name == nil then name = "response" end
    if type(name) ~= "string" or not name:find("^[%w_%-]+$") or #name > 64 then
      argerror(fname, "params.schema_name must be 1 to 64 letters, digits, '_' or '-'", level)
    end
    o.schema_name = name
    local mode = params.schema_mode or "json_schema"
    if not MODES[mode] then
      argerror(fname, "params.schema_mode must be 'json_schema', 'json_object' or 'auto'", level)
    end
    o.mode = mode
    if params.schema_strict ~= nil and type(params.schema_strict) ~= "boolean" then
      argerror(fname, "params.schema_strict must be a boolean", level)
    end
    o.strict = params.schema_strict ~= false
    if params.response_format ~= nil then
      argerror(fname, "params.schema and params.response_format exclude each other", level)
    end
  end
  if tools_mod.is_toolset(params.tools) then
    o.toolset = params.tools
    local max = params.max_tool_rounds
    if max == nil then max = M.MAX_TOOL_ROUNDS end
    if math_type(max) ~= "integer" or max < 0 then
      argerror(fname, "params.max_tool_rounds must be an integer >= 0", level)
    end
    o.max_rounds = max
    local te = params.tool_errors or "report"
    if te ~= "report" and te ~= "fail" then
      argerror(fname, "params.tool_errors must be 'report' or 'fail'", level)
    end
    o.tool_errors = te
  end
  for _, k in ipairs { "on_done", "on_error" } do
    if params[k] ~= nil and type(params[k]) ~= "function" then
      argerror(fname, "params." .. k .. " must be a function", level)
    end
  end
  if params.stream ~= nil and type(params.stream) ~= "function" and type(params.stream) ~= "boolean" then
    argerror(fname, "params.stream must be a function or a boolean", level)
  end
  local wire = {}
  for k, v in pairs(params) do
    if not OWN[k] then wire[k] = v end
  end
  o.on_done, o.on_error = params.on_done, params.on_error
  local msgs = {}
  for i, m in ipairs(params.messages) do msgs[i] = m end
  wire.messages = msgs
  if o.toolset then wire.tools = o.toolset:definitions() end
  return wire, o
end

--- Checks the dialogue layer's options in params as a call would, without
-- calling (for params from outside the program): `true`, or `nil` and the
-- message.
-- @tparam table params
-- @treturn boolean|nil
-- @treturn[opt] string
-- @usage local ok, why = dialogue.check_params(saved.params)
function M.check_params (params)
  local p = {}
  for k, v in pairs(params) do p[k] = v end
  p.messages = {}
  local ok, e = pcall(prepare, p, "check", 1)
  if ok then return true end
  return nil, tostring(e):match("%((.*)%)$") or tostring(e)
end

-- The system message that carries the schema in json_object mode.
local function schema_instruction (o)
  return {
    role = "system",
    content = "Reply with a single JSON object and nothing else. It must conform to this JSON schema: "
      .. json_encode(o.schema),
  }
end

local function set_mode (wire, o, mode)
  if mode == "json_object" then
    wire.response_format = { type = "json_object" }
    local msgs, at = {}, 1
    for i, m in ipairs(wire.messages) do msgs[i] = m end
    while msgs[at] and (msgs[at].role == "system" or msgs[at].role == "developer") do at = at + 1 end
    table.insert(msgs, at, schema_instruction(o))
    wire.messages = msgs
  else
    wire.response_format = { type = "json_schema", json_schema = {
      name = o.schema_name, schema = o.schema, strict = o.strict or nil,
    } }
  end
  o.current_mode = mode
end

-- A 400 that says the server does not take json_schema.
local function refuses_json_schema (err)
  if err.status ~= 400 and err.kind ~= "api" then return false end
  if err.status ~= nil and err.status ~= 400 then return false end
  if err.param == "response_format" then return true end
  local msg = tostring(err.message or ""):lower()
  return msg:find("response_format", 1, true) ~= nil or msg:find("json_schema", 1, true) ~= nil
end

-- }======================================================


-- {======================================================
-- The loop
-- =======================================================

local function copy_message (msg)
  local m = { role = msg.role or "assistant" }
  m.content = msg.content
  if m.content == nil then m.content = null end
  m.tool_calls = msg.tool_calls
  if msg.name ~= nil then m.name = msg.name end
  return m
end

local function parse_choices (res, o)
  local first_err
  local choices = type(res.choices) == "table" and res.choices or {}
  for i, choice in ipairs(choices) do
    if type(choice) ~= "table" then choice = {} end
    local msg = type(choice.message) == "table" and choice.message or {}
    local err
    if type(msg.refusal) == "string" and msg.refusal ~= "" then
      err = core.error { kind = "refusal", message = "the model refused: " .. msg.refusal, refusal = msg.refusal }
    elseif choice.finish_reason == "length" then
      err = core.error {
        kind = "incomplete",
        message = "the structured reply was cut short (finish_reason \"length\"): raise max_tokens",
        text = type(msg.content) == "string" and msg.content or nil,
      }
    else
      local parsed, perr = schema_mod.parse(msg.content, o.schema, "reply")
      if parsed ~= nil then choice.parsed = parsed else err = perr end
    end
    if err then
      choice.violations = err.violations
      if i == 1 then first_err = err end
    end
  end
  if type(choices[1]) ~= "table" then
    first_err = core.error { kind = "schema", message = "the response has no choices",
                             violations = { { path = "$", message = "no choices" } } }
  end
  if first_err then
    first_err.response = res
    return nil, first_err
  end
  res.parsed = choices[1].parsed
  return res
end

local function tool_error (message, fields)
  local t = { kind = "tool", message = message }
  for k, v in pairs(fields or {}) do t[k] = v end
  return core.error(t)
end

-- Runs the dialogue for `params` (already checked): returns res or nil, err.
-- `job` is the dialogue request when run by chat_async.
local function parse_error (fmt, ...)
  return core.error { kind = "parse", message = string_format(fmt, ...) }
end

-- The tool calls of a reply's first choice: the list and the message, nil
-- when there are none, or nil, nil and an error when the reply holds
-- something that is not a tool call (a hostile or broken server).
local function reply_tool_calls (res)
  local choices = res.choices
  local choice = type(choices) == "table" and choices[1] or nil
  local msg = type(choice) == "table" and choice.message or nil
  if type(msg) ~= "table" then return nil end
  local calls = msg.tool_calls
  if calls == nil or calls == null then return nil end
  if type(calls) ~= "table" then
    return nil, nil, parse_error("the reply's tool_calls is not a list (got %s)", type(calls))
  end
  if calls[1] == nil then return nil end
  for i, call in ipairs(calls) do
    if type(call) ~= "table" then
      return nil, nil, parse_error("the reply's tool call %d is not a tool call object (got %s)", i, type(call))
    end
    local f = call["function"]
    if type(f) ~= "table" or type(f.name) ~= "string" then
      return nil, nil, parse_error("the reply's tool call %d has no function name", i)
    end
  end
  return calls, msg
end

-- Adds usage u into sum (numbers added, nested details too; other fields
-- kept from the first round that has them). sum is a fresh table.
local function add_usage (sum, u)
  for k, v in pairs(u) do
    if type(v) == "number" then
      sum[k] = (type(sum[k]) == "number" and sum[k] or 0) + v
    elseif type(v) == "table" then
      sum[k] = add_usage(type(sum[k]) == "table" and sum[k] or {}, v)
    elseif sum[k] == nil then
      sum[k] = v
    end
  end
  return sum
end

-- The usage of every round summed, or nil when no round reported any.
local function total_usage (rounds)
  local sum
  for _, u in ipairs(rounds) do
    if type(u) == "table" then sum = add_usage(sum or {}, u) end
  end
  return sum
end

local function run (client, wire, o, job)
  local toolset = o.toolset
  if o.schema then set_mode(wire, o, o.mode == "json_object" and "json_object" or "json_schema") end
  local messages = wire.messages   -- (json_object mode has its own copy, with the schema)
  local made, added = array {}, array {}
  local usage_rounds = array {}   -- each successful reply's usage (aigc.null when it had none)
  local rounds = 0
  local first_choice = wire.tool_choice

  local function fail (err)
    if toolset and is_error(err) and err.tool_calls_made == nil then
      err.tool_calls_made, err.tool_messages = made, added
      if usage_rounds[1] ~= nil then
        err.usage_rounds, err.usage = usage_rounds, total_usage(usage_rounds)
      end
    end
    -- (it may hold the reply: err.response, err.text, tool arguments)
    return nil, client_mod.scrub(client, err)
  end

  while true do
    if job and job:canceled() then return nil, job._err end
    local p = {}
    for k, v in pairs(wire) do p[k] = v end
    if toolset then
      p.tool_choice = rounds == 0 and first_choice or nil
      if rounds >= o.max_rounds then p.tool_choice = "none" end
    end
    local req = submit(client, "chat", p)
    if job then job:track(req) end
    local res, err = await(client, req)
    if job and job:canceled() then return nil, job._err end
    if res == nil then
      if o.schema and o.mode == "auto" and o.current_mode == "json_schema" and refuses_json_schema(err) then
        set_mode(wire, o, "json_object")
        messages = wire.messages
      else
        return fail(err)
      end
    else
      usage_rounds[#usage_rounds + 1] = res.usage ~= nil and res.usage or null
      local calls, msg, bad
      if toolset then calls, msg, bad = reply_tool_calls(res) end
      if bad then
        bad.response = res
        return fail(bad)
      elseif calls then
        if rounds >= o.max_rounds then
          return fail(tool_error(string_format("the model still calls tools after max_tool_rounds (%d)",
                                               o.max_rounds), { response = res }))
        end
        rounds = rounds + 1
        local am = copy_message(msg)
        messages[#messages + 1] = am
        added[#added + 1] = am
        for _, call in ipairs(calls) do
          local content, rec = toolset:call(call, { round = rounds, client = client, messages = messages })
          rec.round = rounds
          made[#made + 1] = rec
          local tm = { role = "tool", tool_call_id = call.id, content = content }
          messages[#messages + 1] = tm
          added[#added + 1] = tm
          if not rec.ok and o.tool_errors == "fail" then
            return fail(tool_error(string_format("tool %s failed: %s", tostring(rec.name), rec.error),
                                   { tool = rec.name, call = rec, traceback = rec.traceback }))
          end
          if job and job:canceled() then return nil, job._err end
        end
      else
        if toolset then
          res.tool_calls_made, res.tool_messages, res.tool_rounds = made, added, rounds
          -- Every round cost tokens: res.usage is their sum, each round's is kept.
          res.usage_rounds = usage_rounds
          res.usage = total_usage(usage_rounds) or res.usage
        end
        if o.schema then
          res.schema_mode = o.current_mode
          local ok, perr = parse_choices(res, o)
          if not ok then return fail(perr) end
        end
        return res
      end
    end
  end
end

local function run_callbacks (client, o, res, err)
  local cb, val = o.on_done, res
  if res == nil then cb, val = o.on_error, err end
  if cb then
    local ok, e = pcall(cb, val)
    if not ok then report(client, callback_error(res and "on_done" or "on_error", e)) end
  end
end

--- The blocking form (`client:chat` with a toolset or a schema). Inside a
-- task of the client its waits yield.
-- @tparam aigc.client client
-- @tparam table params chat params with `tools = <toolset>` and/or `schema`
-- @treturn[1] table res with `parsed`, `tool_calls_made`, `tool_messages`, `tool_rounds` as they apply
-- @treturn[2] nil
-- @treturn[2] aigc.error err
-- @usage local res, err = dialogue.chat(client, { messages = msgs, schema = s })
function M.chat (client, params)
  local wire, o = prepare(params, "chat", 3)
  local res, err = run(client, wire, o, nil)
  run_callbacks(client, o, res, err)
  return res, err
end

--- The non-blocking form (`client:chat_async` with a toolset or a schema):
-- returns at once with an `aigc.dialogue_request`; the loop runs as a task
-- of the client, driven by `client:step()` (or any wait).
-- @tparam aigc.client client
-- @tparam table params
-- @treturn aigc.dialogue_request
-- @usage
-- local req = client:chat_async { messages = msgs, tools = ts }
-- while req:status() ~= "done" and req:status() ~= "failed" do client:step(0.016) end
function M.chat_async (client, params)
  local wire, o = prepare(params, "chat_async", 3)
  local req = M.spawn(client, function (job)
    return run(client, wire, o, job)
  end, { kind = "chat", on_done = o.on_done, on_error = o.on_error })
  return req
end

-- }======================================================

return M
