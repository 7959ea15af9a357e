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
-- something that is not a tool call is `nil, err` of kind "parse"; one cut
-- short in its tool calls (max_tokens), kind "incomplete". A tool
-- that closes the client ends the call with `nil, err` of kind "canceled".
--
-- **Structured output.** `schema = <JSON schema table>` sends
-- `response_format = { type = "json_schema", json_schema = { name =
-- schema_name or "response", schema = schema, strict = true } }`
-- (`schema_strict = false` drops strict) and returns `res.parsed`, the
-- reply decoded and validated (see `aigc.schema`). Failures return
-- `nil, err`: kind "schema" when the reply is not JSON or breaks the
-- schema (`err.violations` lists `{path, message}`; `err.text` is the
-- reply), kind "incomplete" when the reply was cut (`finish_reason` "length" or
-- "content_filter": `err.reason`),
-- kind "refusal" when the model refused (`err.refusal`). `err.response`
-- holds the response in each case.
--
-- For servers without json_schema: `schema_mode = "json_object"` sends
-- `response_format = { type = "json_object" }` and puts the schema in a
-- system message instead; `schema_mode = "auto"` tries json_schema and, when
-- the server answers 400 or 422 about `response_format` (or json_schema),
-- repeats the request in json_object mode. The reply is validated the same way in every mode.
--
-- Both work with `stream` (deltas of every round reach the function),
-- `n` (each choice gets `parsed`; the first decides success), inside tasks
-- (waits yield) and through `chat_async`, which returns a future
-- (`aigc.future`) with the interface of `aigc.request` and its
-- lifecycle: exactly one of `on_done`/`on_error` runs, from the loop;
-- cancel and `client:close()` give `on_error` an error of kind "canceled"
-- (from the loop, never from inside `cancel()`), and nothing is delivered
-- after; an error in a callback is reported once (the client's
-- `error_handler`, else `step()`'s second result and stderr); a task that
-- yields outside aigc (a tool's own `coroutine.yield`) fails the request
-- with kind "callback"; `wait()` returns once the request is over.
--
-- Internal: the client comes here; its API is `client:chat` and
-- `client:chat_async` with a toolset or a schema.
--
-- @module aigc.dialogue
-- @local
-- @usage
-- local res = assert(client:chat {
--   messages = { { role = "user", content = "Where is order A-1042?" } },
--   tools = aigc.tools { { name = "track_order", parameters = order_schema, fn = track } },
--   schema = { type = "object", properties = { answer = { type = "string" } }, required = { "answer" },
--              additionalProperties = false },
-- })
-- print(res.parsed.answer, #res.tool_calls_made)

local core = require "aigc.core"
local util = require "aigc.util"
local check = require "aigc.check"
local task = require "aigc.task"
local future = require "aigc.future"
local schema_mod = require "aigc.schema"
local tools_mod = require "aigc.tools"
local HISTORY = tools_mod.HISTORY   -- (the key of a call's history, made when read)
local adapter = require "aigc.adapter"

local null, array, json_encode = core.null, core.array, core.json.encode
local ipairs, pairs, tostring, type = ipairs, pairs, tostring, type
local string_format = string.format
local await, is_error, field_error = task.await, util.is_error, util.field_error

util.own_module()

local M = {}

--- Default for `max_tool_rounds`.
M.MAX_TOOL_ROUNDS = 10


-- {======================================================
-- Options
-- =======================================================

local MODES = { json_schema = true, json_object = true, auto = true }

-- Checks the values of the layer's options (their types are checked with
-- every call's, in aigc.check) and splits params into the wire params and
-- the options (o.adapter: the API's, aigc.adapter). Misuse raises, located
-- at the user's line.
local function prepare (params, fname, A)
  A = A or adapter.chat
  local o = { adapter = A }
  local s = params.schema
  if s ~= nil then
    local ok, why = schema_mod.check_schema(s)
    if not ok then field_error(fname, 1, "params.schema", why) end
    -- (validated against as given; sent with `required = {}` as [], see
    -- aigc.tools: OpenAI refuses a schema whose required is an object)
    o.schema, o.wire_schema = s, tools_mod.wire_schema(s)
    local bad = tools_mod.unencodable(o.wire_schema)
    if bad then field_error(fname, 1, "params.schema", bad) end
    local name = params.schema_name
    if name == nil then name = "response" end
    if not name:find("^[%w_%-]+$") or #name > 64 then
      field_error(fname, 1, "params.schema_name", "1 to 64 letters, digits, '_' or '-' expected")
    end
    o.schema_name = name
    local mode = params.schema_mode or "json_schema"
    if not MODES[mode] then
      field_error(fname, 1, "params.schema_mode",
                  "'json_schema', 'json_object' or 'auto' expected, got " .. util.describe(mode))
    end
    o.mode = mode
    o.strict = params.schema_strict ~= false
    if params.response_format ~= nil then
      field_error(fname, 1, "params.response_format", "not with params.schema (the schema sets it)")
    end
    if type(params.text) == "table" and params.text.format ~= nil then
      field_error(fname, 1, "params.text.format", "not with params.schema (the schema sets it)")
    end
  end
  if tools_mod.is_toolset(params.tools) then
    o.toolset = params.tools
    o.max_rounds = params.max_tool_rounds or M.MAX_TOOL_ROUNDS
    local te = params.tool_errors or "report"
    if te ~= "report" and te ~= "fail" then
      field_error(fname, 1, "params.tool_errors", "'report' or 'fail' expected, got " .. util.describe(te))
    end
    o.tool_errors = te
  end
  local wire = {}
  for k, v in pairs(params) do
    -- (the layer's own options, and the callbacks: they hear the dialogue's end)
    if not check.DIALOGUE_OPTIONS[k] and k ~= "on_done" and k ~= "on_error" then wire[k] = v end
  end
  o.on_done, o.on_error = params.on_done, params.on_error
  A.prepare(params, wire)
  if o.toolset then wire.tools, o.defs = A.tool_definitions(o.toolset), o.toolset:definitions() end
  return wire, o
end

--- Why the values of the dialogue layer's options in params break its
-- rules, or nil: as a call would check them, without calling (for params
-- from outside the program: a saved conversation, a say's merged params).
-- @tparam table params
-- @treturn string|nil
function M.params_problem (params)
  local p = {}
  for k, v in pairs(params) do p[k] = v end
  p.messages = {}
  -- (a host's watchdog cut in it is raised on, not told as misuse of the params)
  local ok, e = util.pcall_passing_interrupts(prepare, p, "check")
  if ok then return nil end
  -- (Lua out of memory says nothing of the params: raised as it is, not as misuse)
  util.reraise_memory(e)
  e = tostring(e)
  return e:match("^[^(]*%((.*)%)$") or e   -- (anchored: unanchored, quadratic in a run of "(")
end

-- }======================================================


-- {======================================================
-- The loop
-- =======================================================

local function tool_error (message, fields)
  local t = { kind = "tool", message = message }
  for k, v in pairs(fields or {}) do t[k] = v end
  return core.error(t)
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

-- Runs the tool calls of one reply `res` (round `d.rounds`), adding the
-- calls and their outputs to the history (the adapter's way). Returns an
-- error when a failing tool ends the call (tool_errors = "fail"), or true
-- when the future was canceled meanwhile.
-- The calls of the round from `from` on that will not run get an output
-- that says so: a history (err.tool_messages) whose assistant message has
-- a call without its output is one a server refuses (400) when sent again.
local function answer_unrun (d, calls, from, why)
  for i = from, #calls do
    d.o.adapter.add_output(d, calls[i], json_encode { error = "not run: " .. why })
  end
end

local function run_tools (d, calls, res)
  local A = d.o.adapter
  A.add_calls(d, res)
  for i, call in ipairs(calls) do
    -- (the tool gets a copy of the history: one that appends to it, as to
    -- a list of its own, would put its message between the calls and
    -- their outputs, a history servers refuse: 400)
    -- (made when the tool reads it: the history grows by one output a
    -- call, and copying it for each took time as the square of the calls)
    local msgs, n = d.messages, #d.messages
    local function history ()
      local h = {}
      for j = 1, n do h[j] = msgs[j] end
      return h
    end
    local content, rec = d.o.toolset:call(call, { round = d.rounds, client = d.client, [HISTORY] = history })
    rec.round = d.rounds
    d.made[#d.made + 1] = rec
    -- (an error a tool met may quote the client's key, as a library's
    -- message with the URL or the headers it sent does: the model, a third
    -- party whose words reach the chat's reader, gets it redacted; the
    -- record keeps the message whole, as the tool's own)
    if not rec.ok and content then
      content = util.scrub(d.client, core.error { kind = "tool", message = content }, d.wire).message
    end
    if rec.yielded then   -- (not the tool's error: nothing for the model)
      answer_unrun(d, calls, i, "the call ended (a tool yielded outside aigc)")
      return core.error { kind = "callback", message = rec.error, tool = rec.name, call = rec }
    end
    A.add_output(d, call, content)
    if not rec.ok and d.o.tool_errors == "fail" then
      answer_unrun(d, calls, i + 1, "the call ended (tool " .. tostring(rec.name) .. " failed)")
      return tool_error(string_format("tool %s failed: %s", tostring(rec.name), rec.error),
                        { tool = rec.name, call = rec, traceback = rec.traceback })
    end
    if d.fut and d.fut:canceled() then
      answer_unrun(d, calls, i + 1, "the call was canceled")
      return true
    end
    -- (a tool that closed the client ends the call as a cancel does: the
    -- round's other tools, work for a reply that will not come, do not run)
    if d.client._loop.closed then
      answer_unrun(d, calls, i + 1, "the client was closed")
      return core.error { kind = "canceled", message = "the client was closed" }
    end
  end
  return nil
end

-- The error for a reply whose tool calls were cut short (max_tokens), or
-- nil: its last call's arguments are cut, more calls may be missing, and
-- the model, told "not valid JSON", would be cut again round after round.
local function cut_calls (res)
  local choice = type(res.choices) == "table" and res.choices[1] or nil
  local reason = type(choice) == "table" and choice.finish_reason or nil
  if res.object == "response" and res.status == "incomplete" then
    reason = type(res.incomplete_details) == "table" and res.incomplete_details.reason or "incomplete"
  end
  if reason ~= "length" and reason ~= "max_output_tokens" and reason ~= "content_filter" then return nil end
  local fix = reason == "content_filter" and "the content filter stopped it"
    or reason == "length" and "raise max_tokens" or "raise max_output_tokens"   -- (the Responses API's name)
  return core.error { kind = "incomplete", reason = reason, message = string_format(
    "the reply was cut short in its tool calls (%s): %s", tostring(reason), fix) }
end

-- The end of a dialogue: its last reply `res`, with what the rounds made.
local function finish (d, res)
  local o = d.o
  local ferr = o.adapter.finish_error(res)
  if ferr then return nil, ferr end
  if o.toolset then
    res.tool_calls_made, res.tool_messages, res.tool_rounds = d.made, d.added, d.rounds
    -- Every round cost tokens: res.usage is their sum, each round's is kept.
    res.usage_rounds = d.usage_rounds
    res.usage = total_usage(d.usage_rounds) or res.usage
  end
  if o.schema then
    res.schema_mode = o.current_mode
    local ok, perr = o.adapter.parse(res, o)
    if not ok then return nil, perr end
  end
  return res
end

-- Runs the dialogue for `params` (already checked): returns res or nil, err.
-- `fut` is the future that stands for it when run by chat_async.
local function run (client, wire, o, fut)
  local toolset, A = o.toolset, o.adapter
  local d = {
    client = client, o = o, fut = fut, rounds = 0, wire = wire,
    messages = A.history(wire),   -- (json_object mode has its own copy, with the schema)
    made = array {}, added = array {},
    usage_rounds = array {},    -- each successful reply's usage (aigc.null when it had none)
  }
  if o.schema then d.messages = A.set_format(wire, o, o.mode == "json_object" and "json_object" or "json_schema") end
  local first_choice = wire.tool_choice

  local function fail (err)
    if toolset and is_error(err) and err.tool_calls_made == nil then
      err.tool_calls_made, err.tool_messages = d.made, d.added
      if d.usage_rounds[1] ~= nil then
        err.usage_rounds, err.usage = d.usage_rounds, total_usage(d.usage_rounds)
      end
    end
    -- (it may hold the reply: err.response, err.text, tool arguments)
    return nil, util.scrub(client, err, wire)   -- (the call's own key too: a per-user header's)
  end

  while true do
    if fut and fut:canceled() then return fut:result() end
    -- A tool (or a callback) that closed the client ends the call as a
    -- close ends a request in flight: nil, err of kind "canceled", not a
    -- raise at the user's line for the next round it did not ask for.
    if client._loop.closed then return fail(core.error { kind = "canceled", message = "the client was closed" }) end
    local p = {}
    for k, v in pairs(wire) do p[k] = v end
    if toolset then
      p.tool_choice = d.rounds == 0 and first_choice or nil
      if d.rounds >= o.max_rounds then p.tool_choice = "none" end
    end
    local req = A.send(client, p)
    if fut then fut:track(req) end
    local res, err = await(req)
    -- (the client's totals hear its end now, before finish() changes
    -- res.usage into the sum of the rounds: aigc.hooks)
    if client._hook then client._hook.heard(client, req) end
    if fut and fut:canceled() then return fut:result() end
    if res == nil then
      if not (o.schema and o.mode == "auto" and o.current_mode == "json_schema" and A.refuses_format(err)) then
        return fail(err)
      end
      d.messages = A.set_format(wire, o, "json_object")
    else
      d.usage_rounds[#d.usage_rounds + 1] = res.usage ~= nil and res.usage or null
      local calls, bad
      if toolset then calls, bad = A.tool_calls(res) end
      if calls and not bad then bad = cut_calls(res) end
      if bad then
        bad.response = res
        return fail(bad)
      elseif not calls then
        local done, ferr = finish(d, res)
        if not done then return fail(ferr) end
        return done
      elseif d.rounds >= o.max_rounds then
        return fail(tool_error(string_format("the model still calls tools after max_tool_rounds (%d)",
                                             o.max_rounds), { response = res }))
      end
      d.rounds = d.rounds + 1
      local stop = run_tools(d, calls, res)
      if stop == true then return fut:result() end
      if stop then return fail(stop) end
      -- (a tool that added tools, `ts:add`, wants the model to call them:
      -- the next round offers them)
      if toolset:definitions() ~= o.defs then
        wire.tools, o.defs = A.tool_definitions(toolset), toolset:definitions()
      end
    end
  end
end

local function run_callbacks (client, o, res, err)
  local cb, val = o.on_done, res
  if res == nil then cb, val = o.on_error, err end
  if cb then
    local ok, e = task.pcall(cb, val)   -- (a wait in it yields, in a task on 5.1 too)
    if not ok then util.report(client, util.callback_error(res and "on_done" or "on_error", e)) end
  end
end

--- The blocking form (`client:chat` with a toolset or a schema), params
-- checked by the client. Inside a task its waits yield.
-- @tparam aigc.client client
-- @tparam table params chat params with `tools = <toolset>` and/or `schema`
-- @tparam string fname the user's call, for misuse errors
-- @treturn[1] table res with `parsed`, `tool_calls_made`, `tool_messages`, `tool_rounds` as they apply
-- @treturn[2] nil
-- @treturn[2] aigc.error err
function M.chat (client, params, fname)
  local wire, o = prepare(params, fname)
  local res, err = run(client, wire, o, nil)
  run_callbacks(client, o, res, err)
  return res, err
end

-- A closed (or closing) client is misuse, raised at the call as a plain
-- chat_async raises it, not a future that fails with kind "callback".
local function check_open (client)
  if future.client_closed(client._loop) then util.raise("attempt to use a closed client") end
end

--- The non-blocking form (`client:chat_async` with a toolset or a schema):
-- returns at once with a future (the interface of `aigc.request`); the
-- dialogue runs as a task of the client, driven by `client:step()` (or any
-- wait).
-- @tparam aigc.client client
-- @tparam table params
-- @tparam string fname
-- @treturn aigc.future
function M.chat_async (client, params, fname)
  check_open(client)
  local wire, o = prepare(params, fname)
  return future.run(client._loop, function (f)
    return run(client, wire, o, f)
  end, { label = "chat", on_done = o.on_done, on_error = o.on_error, what = "a dialogue task",
       cancel_waits = true })
end

--- The blocking form over the Responses API (`client:respond` with a
-- toolset or a schema): as `chat`, through the Responses adapter
-- (`aigc.adapter`): tool calls are `function_call` items answered with
-- `function_call_output` items, chained with `previous_response_id` unless
-- `store = false` (then the whole input goes again), `schema` maps to
-- `text.format`; an incomplete response is an error of kind "incomplete".
-- @tparam aigc.client client
-- @tparam table params Responses params with `tools = <toolset>` and/or `schema`
-- @tparam string fname
-- @treturn[1] table res
-- @treturn[2] nil
-- @treturn[2] aigc.error err
function M.respond (client, params, fname)
  local wire, o = prepare(params, fname, adapter.responses)
  local res, err = run(client, wire, o, nil)
  run_callbacks(client, o, res, err)
  return res, err
end

--- The non-blocking form over the Responses API: see `respond` and `chat_async`.
-- @tparam aigc.client client
-- @tparam table params
-- @tparam string fname
-- @treturn aigc.future
function M.respond_async (client, params, fname)
  check_open(client)
  local wire, o = prepare(params, fname, adapter.responses)
  return future.run(client._loop, function (f)
    return run(client, wire, o, f)
  end, { label = "respond", on_done = o.on_done, on_error = o.on_error, what = "a dialogue task",
       cancel_waits = true })
end

-- }======================================================

return M
