--- A server that answers with exact replies, in order, and records what it
-- received: for replies the bundled server does not give (a model's odd
-- tool calls, fenced JSON, deltas split at odd places). A LuaSocket child
-- (spec/support/oneshot.lua); no aigc on the server side.
--
-- @usage
-- local scripted = require "scripted"
-- local srv = scripted.start { scripted.chat { content = "hi" } }
-- local c = aigc.client { base_url = srv.base_url, api_key = "k", max_retries = 0 }
-- ... ; c:close(); local bodies = srv:finish()   -- the request bodies, decoded

local cjson = require "cjson"

local M = {}

local SCRIPT = [[
  local oneshot = require "oneshot"
  local replies_path, sent_path = arg[1], arg[2]
  local f = assert(io.open(replies_path, "rb"))
  local replies = {}
  while true do
    local kind, len = (f:read("*l") or ""):match("^(%w+) (%d+)$")
    if not kind then break end
    replies[#replies + 1] = { kind, f:read(tonumber(len)) }
  end
  f:close()
  local server = oneshot.listen()
  server:settimeout(30)
  for _, r in ipairs(replies) do
    local kind, body = r[1], r[2]
    local c, sent = oneshot.read_request(server)
    local out = assert(io.open(sent_path, "ab"))
    out:write((sent:gsub("\n", " ")), "\n")
    out:close()
    -- (a usage counted from the request: a token per 4 bytes of all it sent)
    body = body:gsub('"__PT__"', tostring(math.floor(#sent / 4)))
    local ctype = kind == "sse" and "text/event-stream" or "application/json"
    c:send("HTTP/1.1 " .. (kind == "e400" and "400 Bad Request" or "200 OK") .. "\r\nContent-Type: " .. ctype
           .. "\r\nContent-Length: " .. #body .. "\r\nConnection: close\r\n\r\n" .. body)
    c:close()
  end
]]

--- A chat completion's JSON text with one choice holding `msg` (role
-- assistant added), `finish` its finish_reason (default "stop", or
-- "tool_calls" when msg has some), `prompt_tokens` its usage's (10;
-- "count": a token per 4 bytes of the request's body).
function M.chat (msg, finish, prompt_tokens)
  local m = { role = "assistant" }
  for k, v in pairs(msg) do m[k] = v end
  if m.content == nil then m.content = cjson.null end
  finish = finish or (m.tool_calls and "tool_calls" or "stop")
  return "json " .. cjson.encode { id = "c1", object = "chat.completion", model = "m", created = 1,
    choices = { { index = 0, message = m, finish_reason = finish } },
    usage = { prompt_tokens = prompt_tokens == "count" and "__PT__" or prompt_tokens or 10, completion_tokens = 2 } }
end

--- A tool call object; `args` a string as it goes (JSON text, or not).
function M.call (id, name, args)
  return { id = id, type = "function", ["function"] = { name = name, arguments = args } }
end

--- A streamed reply: each element of `chunks` is the delta table of one
-- chunk (or a string: the raw data of one event); `finish` in the last.
function M.sse (chunks, finish)
  local ev = {}
  for i, d in ipairs(chunks) do
    local data = d
    if type(d) == "table" then
      data = cjson.encode { id = "s1", object = "chat.completion.chunk", model = "m", created = 1,
        choices = { { index = 0, delta = d, finish_reason = i == #chunks and finish or cjson.null } } }
    end
    ev[#ev + 1] = "data: " .. data .. "\n\n"
  end
  ev[#ev + 1] = "data: [DONE]\n\n"
  return "sse " .. table.concat(ev)
end

--- Starts the server with `replies` (M.chat / M.sse strings, or "e400 <body>").
function M.start (replies)
  local rpath, spath = os.tmpname(), os.tmpname()
  local f = assert(io.open(rpath, "wb"))
  for _, r in ipairs(replies) do
    local kind, body = r:match("^(%w+) (.*)$")
    f:write(kind, " ", #body, "\n", body)
  end
  f:close()
  local port, child = require("oneshot").start(SCRIPT, { rpath, spath })
  local srv = { base_url = "http://127.0.0.1:" .. port .. "/v1", port = port }
  --- Waits for the child (it ends after its last reply, or 30 s without a
  -- request) and returns the bodies it received, decoded.
  function srv.finish ()
    child:wait(40)
    local bodies = {}
    local sf = io.open(spath, "rb")
    if sf then
      for line in sf:lines() do bodies[#bodies + 1] = line ~= "" and cjson.decode(line) or {} end   -- (a GET: {})
      sf:close()
    end
    os.remove(rpath)
    os.remove(spath)
    return bodies
  end
  return srv
end

--- A chat with toolset `ts` against a scripted server giving `replies`:
-- the result, the error, and the request bodies the server received.
-- @usage local res, err, sent = scripted.tool_chat(ts, { scripted.chat { tool_calls = ... }, scripted.chat "ok" })
function M.tool_chat (ts, replies, params)
  local s = M.start(replies)
  local c = require("aigc").client { base_url = s.base_url, api_key = "k", max_retries = 0 }
  local p = { messages = { { role = "user", content = "go" } }, tools = ts }
  for k, v in pairs(params or {}) do p[k] = v end
  local res, err = c:chat(p)
  c:close()
  return res, err, s.finish()
end

return M
