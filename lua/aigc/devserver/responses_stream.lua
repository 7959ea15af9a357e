--- aigc devserver: the Responses API stream -- the typed SSE events of
-- ../shared/openapi/openapi.yaml (ResponseStreamEvent), each with `event:`
-- and a `sequence_number`, made from the same plan as the blocking reply
-- (aigc.devserver.responses_build), so that accumulating the events gives
-- exactly the `response.completed` payload. Stream faults of this API:
-- seq-gap, seq-disorder, failed-mid, truncate (and incomplete, refusal in
-- the plan). Part of the devserver package.

local json = require "aigc.devserver.json"
local util = require "aigc.devserver.util"
local build = require "aigc.devserver.responses_build"

local O, A, NULL, oset = json.O, json.A, json.NULL, json.oset
local tokenize = util.tokenize

local M = {}

-- Events are collected as {type =, obj =} and numbered when encoded.
local function emitter ()
  local list = {}
  local function add (etype, ...)
    list[#list + 1] = { type = etype, obj = O("type", etype, "sequence_number", 0, ...), delta = etype:find("delta$") }
  end
  return list, add
end

local function reasoning_events (add, it, index)
  add("response.output_item.added", "output_index", index, "item", build.item_obj(it, "in_progress"))
  for j, s in ipairs(it.summary) do
    local si = j - 1
    add("response.reasoning_summary_part.added", "item_id", it.id, "output_index", index, "summary_index", si,
      "part", O("type", "summary_text", "text", ""))
    for _, tok in ipairs(tokenize(s)) do
      add("response.reasoning_summary_text.delta", "item_id", it.id, "output_index", index, "summary_index", si,
        "delta", tok)
    end
    add("response.reasoning_summary_text.done", "item_id", it.id, "output_index", index, "summary_index", si,
      "text", s)
    add("response.reasoning_summary_part.done", "item_id", it.id, "output_index", index, "summary_index", si,
      "part", O("type", "summary_text", "text", s))
  end
  add("response.output_item.done", "output_index", index, "item", build.item_obj(it))
end

local function message_events (add, it, index)
  add("response.output_item.added", "output_index", index, "item", build.item_obj(it, "in_progress"))
  add("response.content_part.added", "item_id", it.id, "output_index", index, "content_index", 0,
    "part", build.part_obj(it, false))
  if it.refusal then
    for _, tok in ipairs(it.tokens) do
      add("response.refusal.delta", "item_id", it.id, "output_index", index, "content_index", 0, "delta", tok)
    end
    add("response.refusal.done", "item_id", it.id, "output_index", index, "content_index", 0, "refusal", it.refusal)
  else
    for _, tok in ipairs(it.tokens) do
      add("response.output_text.delta", "item_id", it.id, "output_index", index, "content_index", 0, "delta", tok,
        "logprobs", A())
    end
    add("response.output_text.done", "item_id", it.id, "output_index", index, "content_index", 0, "text", it.text,
      "logprobs", A())
  end
  add("response.content_part.done", "item_id", it.id, "output_index", index, "content_index", 0,
    "part", build.part_obj(it, true))
  add("response.output_item.done", "output_index", index, "item", build.item_obj(it))
end

local function call_events (add, it, index)
  add("response.output_item.added", "output_index", index, "item", build.item_obj(it, "in_progress"))
  for _, piece in ipairs(it.pieces) do
    add("response.function_call_arguments.delta", "item_id", it.id, "output_index", index, "delta", piece)
  end
  add("response.function_call_arguments.done", "item_id", it.id, "name", it.name, "output_index", index,
    "arguments", it.arguments)
  add("response.output_item.done", "output_index", index, "item", build.item_obj(it))
end

-- `failed-mid`: after the 2nd delta, response.failed and the end.
local function fail_midway (list, r)
  local deltas = 0
  for i, ev in ipairs(list) do
    if ev.delta then deltas = deltas + 1 end
    if deltas == 2 then
      for k = #list, i + 1, -1 do list[k] = nil end
      r.error = O("code", "server_error", "message", "The server had an error while processing your request.")
      list[#list + 1] = { type = "response.failed", obj = O("type", "response.failed", "sequence_number", 0,
        "response", build.response_obj(r, "failed", A())) }
      return
    end
  end
end

-- Number the events (with seq-gap / seq-disorder) and encode them.
local function number (list, fault)
  for i, ev in ipairs(list) do
    local n = i - 1
    if fault["seq-gap"] and i > 4 then n = n + 1 end -- one number never sent, after the 4th event
    oset(ev.obj, "sequence_number", n)
  end
  if fault["seq-disorder"] and #list > 6 then list[5], list[6] = list[6], list[5] end
  local events = { done = false }
  for i, ev in ipairs(list) do events[i] = { event = ev.type, data = json.encode(ev.obj) } end
  return events
end

--- The SSE events of a planned response `r` ({id, body, plan, model, ...}).
function M.events (r, fault)
  local list, add = emitter()
  add("response.created", "response", build.response_obj(r, "in_progress"))
  add("response.in_progress", "response", build.response_obj(r, "in_progress"))
  for i, it in ipairs(r.plan.items) do
    if it.type == "reasoning" then reasoning_events(add, it, i - 1)
    elseif it.type == "function_call" then call_events(add, it, i - 1)
    else message_events(add, it, i - 1) end
  end
  local last = r.plan.status == "incomplete" and "response.incomplete" or "response.completed"
  add(last, "response", build.response_obj(r))
  if fault["failed-mid"] then fail_midway(list, r)
  elseif fault.truncate then list[#list] = nil end
  local events = number(list, fault)
  -- the error event of this API (error-event, error-data, echo-key)
  events.error_json = function (f, echo, position)
    local msg = echo and "Incorrect API key provided: " .. f.echo_value .. "."
      or "The server had an error while processing your request."
    return json.encode(O("type", "error", "code", echo and "invalid_api_key" or "server_error", "message", msg,
      "param", NULL, "sequence_number", position,
      "details", echo and O("key", f.echo_value, "list", A { "first", f.echo_value, "last" }) or nil))
  end
  -- failed-after-error: the response.failed that follows the error event
  -- (as OpenAI sends it), written 50 ms later: a read of its own
  if fault["failed-after-error"] then
    events.after_error = function (f, echo, position)
      local msg = echo and "Incorrect API key provided: " .. f.echo_value .. "."
        or "The response failed after the error."
      r.error = O("code", "server_error", "message", msg)
      return { event = "response.failed", pause = 50, data = json.encode(O("type", "response.failed",
        "sequence_number", position, "response", build.response_obj(r, "failed", A()))) }
    end
  end
  return events
end

return M
