--- aigc devserver: the Responses API -- POST /v1/responses (blocking,
-- streamed, or `background`), GET / DELETE /v1/responses/{id},
-- POST /v1/responses/{id}/cancel, GET /v1/responses/{id}/input_items;
-- `conversation` adds the input and output items to that conversation.
-- A background response keeps its stream's events: GET
-- /v1/responses/{id}?stream=true&starting_after=N replays those after N
-- (paced as a live stream; a cancel ends it, and a cancelled response has
-- no stream any more: 400).
-- Responses with `store` (the default) are kept in memory for
-- previous_response_id chains and retrieval (forgotten by /_aigc/reset).
-- Part of the devserver package.

local uv = require "luv"
local json = require "aigc.devserver.json"
local util = require "aigc.devserver.util"
local errors = require "aigc.devserver.errors"
local build = require "aigc.devserver.responses_build"
local stream = require "aigc.devserver.responses_stream"
local conversations = require "aigc.devserver.conversations"

local format = string.format
local O, A, NULL = json.O, json.A, json.NULL
local uid = util.uid
local error_resp, bad_param, isnull = errors.error_resp, errors.bad_param, errors.isnull

local M = {}

-- Stored responses by id; `timers` the background ones' (closed by reset and close).
local function store_of (srv)
  -- (`items`: the ids of the stored responses' output items, which a later input may name)
  -- (`messages`: how many the stored responses keep for chains, /_aigc/stats' responses_messages_kept)
  return srv.keep("responses", function () return { by_id = {}, timers = {}, items = {}, messages = 0, read = 0 } end,
                  function (s)
    for t in pairs(s.timers) do if not t:is_closing() then t:close() end end
  end)
end

-- The input items as input_items lists them (each with an id).
local function listed_items (items)
  local out = {}
  for i, it in ipairs(items) do
    local t = it.type or "message"
    if t == "message" then
      local content = it.content
      if type(content) == "string" then
        content = A { O("type", it.role == "assistant" and "output_text" or "input_text", "text", content) }
      end
      out[i] = O("id", it.id or "msg_" .. uid(), "type", "message", "role", it.role, "content", content,
        "status", "completed")
    elseif t == "function_call_output" then
      out[i] = O("id", it.id or "fco_" .. uid(), "type", t, "call_id", it.call_id or NULL, "output", it.output,
        "status", "completed")
    elseif t == "function_call" then
      out[i] = O("id", it.id or "fc_" .. uid(), "type", t, "call_id", it.call_id or NULL, "name", it.name or NULL,
        "arguments", it.arguments or "", "status", "completed")
    else
      out[i] = it
    end
  end
  return out
end

-- What r adds to its chain: its input and its output, as messages. A
-- response chained to r sees the turns of r's chain, oldest first
-- (`build.history`, up the `previous` links). Each response kept a copy of
-- its whole history instead: a chain of N turns kept N^2 messages (10,000
-- turns: 100 million), each turn copying all those before it.
local function turn_of (r, p)
  local h = build.messages_of(p.items)
  local text = {}
  for _, it in ipairs(r.plan.items) do
    if it.type == "message" then text[#text + 1] = it.text or it.refusal or "" end
  end
  h[#h + 1] = { role = "assistant", content = table.concat(text, " ") }
  return h
end

-- A background response: queued, in progress after 10 ms, done after
-- (pause=MS or --pause-ms, at least 20) ms per event of its stream.
local function run_background (srv, r, fault)
  r.state = "queued"
  local per = math.max(20, fault.pause or srv.pause_ms or 0)
  local total = per * #r.events
  local t = uv.new_timer()
  local timers = store_of(srv).timers
  timers[t] = true
  local steps = { { 10, "in_progress" }, { total, r.error and "failed" or nil } }   -- (failed-mid: failed)
  local k = 0
  local function next_step ()
    k = k + 1
    local s = steps[k]
    if not s then timers[t] = nil; t:close(); return end
    t:start(s[1], 0, function ()
      if r.state == "cancelled" then timers[t] = nil; t:close(); return end
      r.state = s[2]
      if not s[2] then r.completed_at = os.time() end
      next_step()
    end)
  end
  next_step()
  r.timer = t
end

--- POST /v1/responses
function M.create (req)
  local body, srv, fault = req.body, req.srv, req.fault
  local store = store_of(srv).by_id
  local p, err = build.params(body, srv)
  err = err or errors.check_default_temperature(body, fault)
  if err then return err end
  if body.background == true and body.store == false then
    return bad_param("background", "Background mode requires store=true.", "invalid_value")
  end
  local conv, cerr
  if not isnull(body.conversation) then   -- (its items: this response's input and output are added)
    conv, cerr = conversations.find(srv, body.conversation)
    if not conv then return cerr end
  end
  local r = { id = "resp_" .. uid(), body = body, model = req.model, created_at = os.time() }
  r.plan = build.plan(req, p)
  r.completed_at = os.time()
  if fault["failed-mid"] and body.stream ~= true then
    r.error = O("code", "server_error", "message", "The server had an error while processing your request.")
    r.state = "failed"
  end
  r.items = listed_items(p.items)
  r.turn, r.previous = turn_of(r, p), p.previous
  r.tally = build.tally(p.previous and p.previous.tally, r.turn)   -- (what a turn after it starts from)
  if conv then
    conversations.append(conv, r.items)
    for _, it in ipairs(r.plan.items) do conversations.append(conv, { build.item_obj(it) }) end
  end
  if body.store ~= false then
    store[r.id] = r
    store_of(srv).messages = store_of(srv).messages + #r.turn
    for _, it in ipairs(r.plan.items) do if it.id then store_of(srv).items[it.id] = true end end
  end
  local resp = { status = 200, headers = {}, tokens = r.plan.usage.total_tokens }
  local events = (body.background == true or body.stream == true) and stream.events(r, fault)
  -- (failed-mid set r.error in the stream: the stored response failed too)
  if r.error then r.state = "failed" end
  if body.background == true then   -- (kept for the streams that resume it: a copy, the faults edit theirs)
    r.events = {}
    for i, ev in ipairs(events) do r.events[i] = ev end
    events.stopped = function () return r.state == "cancelled" end
    run_background(srv, r, fault)
  end
  if body.background == true and body.stream ~= true then
    resp.object = build.response_obj(r, "queued")
  elseif body.stream == true and not fault.body and not fault["plain-for-stream"] then
    resp.events = events
  else
    resp.object = build.response_obj(r, r.state, r.state == "failed" and A() or nil)
  end
  return resp
end

local function find_response (req)
  local id = util.url_decode(req.captures[1])
  local r = store_of(req.srv).by_id[id]
  if not r then
    return nil, error_resp(404, format("Response with id '%s' not found.", id), "invalid_request_error", NULL, NULL)
  end
  return r
end

local function current (r)
  if r.state == "queued" or r.state == "in_progress" or r.state == "cancelled" then
    return build.response_obj(r, r.state, A())
  end
  return build.response_obj(r, r.state, r.state == "failed" and A() or nil)
end

-- GET /v1/responses/{id}?stream=true[&starting_after=N]: the events after N.
local function resume (req, r)
  local after = req.query.starting_after
  local n = after == nil and -1 or math.tointeger(tonumber(after))
  if not n or n < -1 then
    return bad_param("starting_after", "Invalid 'starting_after': a sequence number expected.", "invalid_value")
  end
  if r.body.background ~= true then
    return bad_param("stream", "Only responses created with background=true can be streamed.", "invalid_value")
  elseif r.state == "cancelled" then
    return bad_param("stream", "Cannot stream a cancelled response.", "invalid_value")
  end
  local events = stream.events(r, {})   -- (for its error_json and done)
  for i = #events, 1, -1 do events[i] = nil end
  for _, ev in ipairs(r.events) do
    if json.decode(ev.data).sequence_number > n then events[#events + 1] = ev end
  end
  events.stopped = function () return r.state == "cancelled" end
  return { status = 200, headers = {}, events = events }
end

--- GET /v1/responses/{id}
function M.get (req)
  local r, err = find_response(req)
  if not r then return err end
  if req.query and req.query.stream == "true" then return resume(req, r) end
  return { status = 200, headers = {}, object = current(r) }
end

--- DELETE /v1/responses/{id}
function M.delete (req)
  local r, err = find_response(req)
  if not r then return err end
  local s = store_of(req.srv)
  s.by_id[r.id] = nil
  s.messages = s.messages - #r.turn
  if r.timer and not r.timer:is_closing() then s.timers[r.timer] = nil; r.timer:close() end
  return { status = 200, headers = {}, object = O("id", r.id, "object", "response", "deleted", true) }
end

--- POST /v1/responses/{id}/cancel (background responses only)
function M.cancel (req)
  local r, err = find_response(req)
  if not r then return err end
  if r.body.background ~= true then
    return bad_param(NULL, "Only responses created with background=true can be cancelled.", "invalid_value")
  end
  if r.state == "queued" or r.state == "in_progress" then
    r.state = "cancelled"
  elseif r.state ~= "cancelled" then
    return bad_param(NULL, format("Cannot cancel a response with status '%s'.", r.state or r.plan.status),
      "invalid_value")
  end
  return { status = 200, headers = {}, object = current(r) }
end

--- GET /v1/responses/{id}/input_items?limit=&order=&after=
function M.input_items (req)
  local r, err = find_response(req)
  if not r then return err end
  return conversations.item_page(r.items, req.query or {}, "response")
end

M.routes = {
  { "POST", "^/v1/responses$", M.create },
  { "GET", "^/v1/responses/([^/]+)$", M.get },
  { "DELETE", "^/v1/responses/([^/]+)$", M.delete },
  { "POST", "^/v1/responses/([^/]+)/cancel$", M.cancel, body = "none" },
  { "GET", "^/v1/responses/([^/]+)/input_items$", M.input_items },
}

return M
