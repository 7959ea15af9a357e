--- `aigc chat`: an interactive conversation with line editing, history,
-- streaming, slash commands, and Ctrl-C that cancels the reply in progress
-- (the session goes on; the history is as before the canceled turn; at the
-- prompt Ctrl-C does nothing, see aigc.cli.lineinput).
--
-- Every turn is logged (unless logging is off) as a chain of replies, so
-- `aigc -c` and `aigc chat -c` continue where a session stopped, undone
-- and retried turns included.
--
-- @module aigc.cli.chat

local aigc = require "aigc"
local argparse = require "argparse"
local common = require "aigc.cli.common"
local compat = require "aigc.compat"
local config_mod = require "aigc.cli.config"
local util = require "aigc.util"
local credentials = require "aigc.credentials"
local lineinput = require "aigc.cli.lineinput"
local promptlog = require "aigc.promptlog"
local template = require "aigc.template"

local M = {}

M.HELP = [[
Commands:
  /system [TEXT]   show or set the system prompt
  /model [NAME]    show or set the model
  /save FILE       save the conversation (JSON)
  /load FILE       load a saved conversation (a new conversation in the log)
  /retry           ask the last question again (a new reply; a failed or canceled one too)
  /undo            forget the last turn
  /fork            continue in a new conversation (the old one stays as it is)
  /history         show the conversation
  /reset           start afresh (keeps the system prompt)
  /cid             the conversation id (aigc -c / --cid continue it)
  /help, /quit     (Ctrl-D quits too)
Multi-line input: end a line with \ to go on, or type """ alone, the lines, then """
(at the ... prompt, Ctrl-C then Enter abandons the input; Ctrl-D sends it, then quits).
Ctrl-C cancels the reply in progress (at the prompt it does nothing: Ctrl-U clears the line).]]

--- The parser of `aigc chat`.
-- @treturn table argparse parser
function M.parser ()
  local p = argparse("aigc chat", "An interactive conversation (/help inside for its commands).")
  p:help_max_width(100):help_description_margin(28)
  common.model_options(p)
  p:flag("-c --continue", "Continue the last conversation.")
  p:option("--cid", "Continue the conversation with this id (or a unique prefix).")
  p:flag("--no-stream", "Wait for whole replies instead of streaming them.")
  return p
end

local Session = {}
Session.__index = Session

-- Drives the client until the reply is in, canceled on Ctrl-C: whether it was.
function Session:wait_reply (req)
  local canceled = false
  -- SIGTERM (or SIGHUP: the terminal closed) cancels the reply as Ctrl-C
  -- does: the turn is logged (it was lost with the process), then the
  -- session ends by the signal (M.run).
  self.reader:catch_term()
  while true do
    local st = req:status()
    if st ~= "queued" and st ~= "running" then return canceled end
    self.client:step(0.05)
    if not canceled then
      local hit = self.reader:interrupted()
      if hit or self.reader:terminated() then
        canceled = true
        req:cancel()
        -- stdin a script: Ctrl-C ends the session (its next lines were
        -- written for the reply just lost; it went on to each in turn)
        if hit and not self.reader.tty then self.stopped = true end
      end
    end
  end
end

function Session:say_line (text)
  local client, conv = self.client, self.conv
  local streamed = {}
  local per_call = {}
  local flush = function () end
  if not self.no_stream then
    per_call.stream, flush = common.stream_out(streamed, function () return self.request end)
  end
  local context
  if self.log and self.leaf == nil then
    -- a first turn after /load or a continued file: the log needs what came before
    context = {}
    for _, m in ipairs(conv.messages) do if m.role ~= "system" then context[#context + 1] = m end end
    if #context == 0 then context = nil end
  end
  local t0 = aigc.now()
  local req = conv:say_async(text, per_call)
  self.request = req
  local canceled = self:wait_reply(req)
  local res, err = req:result()
  self.request = nil
  flush()   -- (the streamed reply's last word, held to be scrubbed whole)
  if canceled then
    -- A fresh copy of the unchanged history: on main, a canceled say_async
    -- leaves its conversation marked busy forever (fixed on lane/lua by
    -- on_abandon); a fork is never busy, whichever code is in.
    self.conv = conv:fork()
  end
  local latency = (aigc.now() - t0) * 1000
  local reply = res and (type(res.text) == "string" and res.text or "") or nil
  if res then
    if #streamed == 0 then common.out(reply) end
    if not reply:find("\n$") then common.out("\n") end
  else
    if #streamed > 0 then common.out("\n") end
    if canceled then common.out("[canceled]\n")
    elseif not common.out_error then common.note(common.call_error(err)) end
  end
  if self.log then
    if self.unlogged then
      self.unlogged = nil
      self.log:conversation_start { id = self.cid, model = conv.model }
    end
    local choice = res and type(res.choices) == "table" and res.choices[1] or nil
    local retries = res and res.retries or type(err) == "table" and err.retries   -- (as record_call keeps them)
    local id, lerr = self.log:record({
      conversation_id = self.cid, parent_id = self.leaf, leaf = res ~= nil, source = "chat",
      model = (res and type(res.model) == "string" and res.model) or conv.model,
      system = conv.system, prompt = text, response = reply or (#streamed > 0 and table.concat(streamed) or nil),
      context = context, params = conv.params, usage = res and res.usage, latency_ms = latency,
      status = res and "ok" or (canceled and "canceled" or (type(err) == "table" and err.kind or "error")),
      error = not res and tostring(err) or nil, request_id = res and res.request_id,
      finish_reason = choice and type(choice.finish_reason) == "string" and choice.finish_reason or nil,
      template = self.template_name,
      extra = type(retries) == "number" and retries > 0 and { retries = retries } or nil,
    }, { client = client, secrets = self.secrets })
    if id and res then self.leaf = id end
    if lerr then common.note("aigc: warning: not logged: " .. tostring(lerr.message)) end
  end
  -- (what /retry asks again: this question, which is not in the history)
  self.unanswered = not res and text or nil
  return res ~= nil
end

-- Moves the log's leaf one turn back (after conv:undo()).
function Session:leaf_back ()
  if not self.log or not self.leaf then return end
  local row = self.log:get(self.leaf)
  self.leaf = row and row.parent_id or nil
  self.log:set_leaf(self.cid, self.leaf)
end

-- A new conversation, in the log from its first turn on: started at once,
-- a session left without a turn (opened, then Ctrl-D; or /reset last) was
-- the log's last conversation, and `aigc -c` continued that empty one
-- instead of the one before.
function Session:new_conversation ()
  self.unanswered = nil
  self.cid = promptlog.new_id()
  self.leaf = nil
  self.unlogged = true
end

local function last_user_text (conv)
  for i = #conv.messages, 1, -1 do
    local m = conv.messages[i]
    if m.role == "user" then return type(m.content) == "string" and m.content or nil end
  end
  return nil
end

function Session:set_system (text)
  local conv = self.conv
  conv.system = text
  local msgs = conv.messages
  if msgs[1] and msgs[1].role == "system" then
    if text then msgs[1].content = text else table.remove(msgs, 1) end
  elseif text then
    table.insert(msgs, 1, { role = "system", content = text })
  end
end

local function copy (t)
  local out = {}
  for k, v in pairs(t) do out[k] = v end
  return out
end

-- The byte where `s` stops being UTF-8, or nil when it is UTF-8.
local function bad_utf8_at (s)
  local n, at = compat.utf8_len(s)
  if n then return nil end
  return at
end

-- Params a loaded file may carry that the REPL cannot honour: it runs no
-- tools, shows one choice, streams by its own flag, and prints text.
M.DROPPED_PARAMS = { "tools", "tool_choice", "parallel_tool_calls", "functions", "function_call", "n",
                     "stream", "stream_options", "modalities", "audio", "on_done", "on_error" }

-- Why a loaded message cannot be in the REPL's history, or nil: its
-- content is text, a list of content parts, or null beside tool calls.
local function message_problem (m, i)
  local c = m.content
  if type(c) == "string" then return nil end
  if c == aigc.null or c == nil then
    if m.role == "assistant" and type(m.tool_calls) == "table" then return nil end
    return ("message %d has no content"):format(i)
  end
  if type(c) == "table" and aigc.is_array(c) then
    for _, part in ipairs(c) do
      if type(part) ~= "table" or type(part.type) ~= "string" then
        return ("message %d: its content is a list whose items are not content parts"):format(i)
      end
    end
    return nil
  end
  return ("message %d: its content is not text or a list of content parts"):format(i)
end

-- A tool call as one line: name(arguments).
local function shown_call (call)
  local f = type(call) == "table" and call["function"] or nil
  local name = type(f) == "table" and type(f.name) == "string" and f.name or "?"
  local args = type(f) == "table" and type(f.arguments) == "string" and f.arguments or ""
  return name .. "(" .. args .. ")"
end

-- A history message as /history shows it: its text, its content parts'
-- text (other parts as [type]), its tool calls.
local function shown_message (m)
  local c, text = m.content, nil
  if type(c) == "string" then text = c
  elseif type(c) == "table" and aigc.is_array(c) then
    local parts = {}
    for _, part in ipairs(c) do
      local t = type(part) == "table" and part or {}
      parts[#parts + 1] = type(t.text) == "string" and t.text or ("[" .. tostring(t.type) .. "]")
    end
    text = table.concat(parts, " ")
  elseif c ~= aigc.null and c ~= nil then
    text = aigc.json.encode(c)
  end
  local calls = {}
  for _, call in ipairs(type(m.tool_calls) == "table" and m.tool_calls or {}) do
    calls[#calls + 1] = "[tool call: " .. shown_call(call) .. "]"
  end
  local role = tostring(m.role)
  if role == "tool" and type(m.tool_call_id) == "string" then role = "tool (" .. m.tool_call_id .. ")" end
  local shown = table.concat(calls, " ")
  if text and text ~= "" then shown = shown == "" and text or (text .. " " .. shown) end
  if shown == "" then shown = "(no text)" end
  return role .. ": " .. shown
end

-- /load FILE: the file's conversation replaces the session's (a new
-- conversation in the log), without what the REPL cannot honour.
function Session:load (path)
  local function refuse (why) common.note("aigc: /load " .. path .. ": " .. why) end
  local text, rerr = template.read_file(path)
  if not text then common.note("aigc: " .. tostring(rerr)); return end
  local loaded, err = aigc.conversation.load(text, self.client, { params = self.params })
  if not loaded then refuse(type(err) == "table" and tostring(err.message) or tostring(err)); return end
  for i, m in ipairs(loaded.messages) do
    local why = message_problem(m, i)
    if why then refuse("not loaded: " .. why); return end
  end
  local dropped = {}
  for _, k in ipairs(M.DROPPED_PARAMS) do
    if loaded.params[k] ~= nil and self.params[k] == nil then
      dropped[#dropped + 1] = k
      loaded.params[k] = nil
    end
  end
  if #dropped > 0 then refuse("ignored what the chat cannot honour: params " .. table.concat(dropped, ", ")) end
  self.conv = loaded
  self:new_conversation()
  common.out(string.format("loaded %d messages; conversation %s\n", #loaded.messages, self.cid))
end

-- A file name as a shell would take it: `~/` is $HOME's (`/save
-- ~/chat.json` looked for a directory named "~").
local function expand_home (path)
  local home = config_mod.env("HOME")
  if home and (path == "~" or path:find("^~/")) then return home .. path:sub(2) end
  return path
end

-- Why /save or /load will not open `path`, or nil: a FIFO (or a socket)
-- waited for a writer, or a reader, for ever -- the REPL stuck, Ctrl-C
-- unheard -- and /load of a device (/dev/urandom) read 1 GiB before
-- refusing it. A device is fine to /save to (/dev/null, /dev/stdout).
local SPECIAL = { fifo = "a FIFO", socket = "a socket", char = "a character device", block = "a block device" }
local function not_a_file (path, cmd)
  local kind = require("aigc.core").file_kind(path)
  if kind == nil or kind == "file" or kind == "directory" then return nil end
  if cmd == "save" and (kind == "char" or kind == "block") then return nil end
  -- (a descriptor's path -- /dev/stdout to a pipe -- has its reader: it is opened at once)
  if cmd == "save" and (path:find("^/dev/std") or path:find("^/dev/fd/") or path:find("^/proc/self/fd/")) then
    return nil
  end
  return "aigc: /" .. cmd .. " " .. path .. ": not a regular file (" .. (SPECIAL[kind] or kind) .. ")"
end

-- Writes a /save. A regular file (or a new one) with core.media.save:
-- PATH.part, whatever was under that name unlinked first (a link planted
-- there in a shared /tmp: written through, another file was overwritten
-- with the conversation; a FIFO: the REPL hung), made 0600 (the earlier
-- save's mode over one) before a byte is in it, renamed into place when
-- whole (over an earlier save on a full disk: the earlier one stays
-- whole). Anything else -- a symlink (kept a link), a device, /dev/stdout,
-- or a folder where no .part can be made -- is written directly. The
-- error, or nil.
local function save_file (path, text)
  local core = require "aigc.core"
  if core.file_kind(path) == "directory" then return path .. ": Is a directory" end
  local has_uv, uv = pcall(require, "luv")
  local st = has_uv and uv.fs_lstat(path)
  local dir = path:match("^(.*)/[^/]*$") or "."
  if has_uv and (st == nil or st.type == "file") and uv.fs_access(dir == "" and "/" or dir, "W") then
    local ok, why = core.media.save(path, text, st and st.mode % 4096 or 384)   -- (384: 0600)
    if ok then return nil end
    local prefix = "could not write " .. path .. ": "
    return "/save " .. path .. ": " .. (why:sub(1, #prefix) == prefix and why:sub(#prefix + 1) or why)
  end
  local f, err = io.open(path, "wb")
  if not f then return tostring(err) end
  local ok, werr = f:write(text)
  local closed, cerr = f:close()
  if ok and closed then return nil end
  return "/save " .. path .. ": " .. tostring(werr or cerr)
end

function Session:command (line)
  local cmd, rest = line:match("^/(%S+)%s*(.*)$")
  rest = rest and util.trim_end(rest)   -- (a lazy "(.-)%s*$" is quadratic in a run of spaces)
  if cmd == "save" or cmd == "load" then
    rest = expand_home(rest)
    local why = rest ~= "" and not_a_file(rest, cmd)
    if why then common.note(why); return end
  end
  local conv = self.conv
  if cmd == "help" or cmd == "?" then common.out(M.HELP .. "\n")
  elseif cmd == "quit" or cmd == "exit" or cmd == "q" then return "quit"
  elseif cmd == "system" then
    if rest == "" then common.out((conv.system or "(no system prompt)") .. "\n")
    else self:set_system(rest); common.out("system prompt set\n") end
  elseif cmd == "model" then
    if rest == "" then common.out(tostring(conv.model) .. "\n")
    else conv.model = rest; common.out("model " .. rest .. "\n") end
  elseif cmd == "save" then
    if rest == "" then common.out("usage: /save FILE\n"); return end
    local text = conv:save()
    -- SIGTERM or SIGHUP (the terminal closed) while the file is written
    -- is noted, as while a reply comes: the save ends whole, renamed into
    -- place, and then the session ends by the signal (dispatch releases
    -- them). Killed inside it, it left FILE.part beside the file. (Without
    -- luv, they kill, as before.)
    self.reader:catch_term()
    local why = save_file(rest, text)
    if why then common.note("aigc: " .. why); return end
    common.out("saved to " .. rest .. "\n")
  elseif cmd == "load" then
    if rest == "" then common.out("usage: /load FILE\n"); return end
    self:load(rest)
  elseif cmd == "retry" then
    -- A question that failed or was canceled is the last one asked: it
    -- was not in the history, so the answered turn before it was undone
    -- and asked again instead.
    if self.unanswered then self:say_line(self.unanswered); return end
    local text = last_user_text(conv)
    if not text then common.out("nothing to retry\n"); return end
    conv:undo()
    self:leaf_back()
    self:say_line(text)
  elseif cmd == "undo" then
    local removed = conv:undo()
    self.unanswered = nil
    if not removed then common.out("nothing to undo\n"); return end
    self:leaf_back()
    local t = removed[1] and removed[1].content
    common.out("undone: " .. (type(t) == "string" and t:sub(1, 60) or "the last turn") .. "\n")
  elseif cmd == "fork" then
    local old = self.cid
    self.conv = conv:fork()
    local leaf = self.leaf
    self.cid = promptlog.new_id()
    self.unlogged = not leaf or nil   -- (a fork of no turn: as a new conversation)
    if self.log and leaf then
      self.log:conversation_start { id = self.cid, model = self.conv.model }
      self.log:set_leaf(self.cid, leaf)
    end
    self.leaf = leaf
    common.out("forked: conversation " .. self.cid .. " (from " .. old .. ")\n")
  elseif cmd == "history" then
    for _, m in ipairs(conv.messages) do common.out(shown_message(m) .. "\n") end
  elseif cmd == "reset" or cmd == "clear" then
    conv:reset()
    conv.params = copy(self.params)   -- (the session's own, not a loaded file's)
    self:new_conversation()
    common.out("new conversation " .. self.cid .. "\n")
  elseif cmd == "cid" then
    common.out(self.cid .. "\n")
  else
    common.out("unknown command /" .. tostring(cmd) .. " (/help)\n")
  end
end

-- Commands whose text is a file name: bytes, not text (any name the
-- system takes is taken).
local PATH_COMMANDS = { save = true, load = true }

-- The message of an error raised inside a turn or a command:
-- common.fail/usage and a value the library refuses as misuse are the
-- user's; anything else is a bug, and says so: in words (`util.value_text`:
-- a table raised showed "table: 0x55d0..."), the session's keys
-- scrubbed as its log scrubs them (the client's engine, the config's and
-- the environment's keys: a key in the text showed as it was).
local function error_message (e, session)
  if getmetatable(e) == common.Exit then return e.message and tostring(e.message) or "aigc: failed" end
  if type(e) == "string" then
    local what = e:match("^bad argument #%d+ to '[^']*' %((.*)%)$")
      or e:match("^[^\n]-:%d+: bad argument #%d+ to '[^']*' %((.*)%)$")
    if what and (what:find("^input") or what:find("^params[%.%[]") or what:find("^opts%.")) then
      return "aigc: invalid input: " .. common.as_typed(what)
    end
  end
  local clean = require("aigc.promptlog_redact").scrubber { client = session.client, secrets = session.secrets }
  return "aigc: internal error: " .. clean(util.value_text(e))
end

--- Runs one input, a turn or a slash command: text that is not UTF-8 is
-- refused (nothing sent, nothing changed), and an error inside it is one
-- line on stderr, the session going on (a request it left running is
-- canceled, the history is as before the turn).
-- @tparam string input
-- @tparam[opt] boolean text a """ block: text, never a command
-- @treturn string|nil "quit" to end the session
function Session:dispatch (input, text)
  local cmd = not text and input:match("^/(%a%S*)") or nil
  if not (cmd and PATH_COMMANDS[cmd]) then
    local at = bad_utf8_at(input)
    if at then
      common.note(("aigc: the input: invalid UTF-8 at byte %d: %s"):format(
        at, cmd and ("/" .. cmd .. " ignored") or "not sent"))
      return nil
    end
  end
  local conv = self.conv
  local ok, res = compat.xpcall(function ()
    if cmd then return self:command(input) end
    self:say_line(input)
  end, function (e) return error_message(e, self) end)
  self.terminated = self.reader:release_term()   -- (the turn, logged: say_line)
  if ok then return res end
  local req = self.request
  if req and (req:status() == "queued" or req:status() == "running") then
    req:cancel()
    pcall(function () while req:status() == "queued" or req:status() == "running" do self.client:step(0.05) end end)
  end
  if self.conv == conv and req then self.conv = conv:fork() end   -- (never left busy)
  self.request = nil
  common.note(res .. " (the session goes on)")
  return nil
end

-- Reads one input: a line, a \-continued line, or a """ block (then true
-- too: a block is text, whatever its first line); nil at EOF.
-- EOF (Ctrl-D) inside a block or after a \ ends the input there: what was
-- typed is the input (then `self.eof` is set: the session ends after it).
-- Ctrl-C at a `...` prompt abandons the input: "" (nothing sent) once
-- that line ends (Readline's blocking read goes on until Enter).
-- The input is one history entry, as it was sent (an abandoned one: what
-- was typed of it), however many lines it took.
function Session:read_input ()
  self.typed = nil
  local input, block = self:read_lines()
  self.reader:remember(self.typed or input or "")
  return input, block
end

function Session:read_lines ()
  local reader = self.reader
  local line, interrupted = reader:read("> ")
  if interrupted and not reader.tty then self.stopped = true; return nil end   -- (a script's Ctrl-C: as in wait_reply)
  if line == nil then return nil end
  local parts = {}
  local function typed ()
    self.eof = true
    return #parts > 0 and table.concat(parts, "\n") or nil
  end
  local function more ()
    local l, hit = reader:read("... ")
    if hit then
      parts[#parts + 1] = l
      self.typed = table.concat(parts, "\n")
      common.note("aigc: input abandoned (Ctrl-C): nothing sent")
      self.eof = l == nil   -- (Ctrl-C, then Ctrl-D: abandoned, and the end)
      self.stopped = not reader.tty or nil
      return nil, true
    end
    return l
  end
  if line:match("^%s*\"\"\"%s*$") then
    while true do
      local l, abandoned = more()
      if abandoned then return "" end
      if l == nil then return typed(), true end
      if l:match("^%s*\"\"\"%s*$") then break end
      parts[#parts + 1] = l
    end
    return table.concat(parts, "\n"), true
  end
  while line:find("\\$") do
    parts[#parts + 1] = line:sub(1, -2)
    local l, abandoned = more()
    if abandoned then return "" end
    if l == nil then return typed() end
    line = l
  end
  parts[#parts + 1] = line
  return table.concat(parts, "\n")
end

-- The session's params (-o, then the template's), its system prompt and
-- the template's model, from the arguments.
local function session_params (args)
  local params = common.options_table(args.options)
  -- What the REPL cannot honour, as /load refuses it: `-o n=3` was sent
  -- (three replies paid for, one shown), `-o tools=...` gave empty replies.
  for _, k in ipairs(M.DROPPED_PARAMS) do
    if params[k] ~= nil then
      common.usage("aigc chat: -o " .. k .. ": not for the chat (it runs no tools, shows one choice, "
                   .. "streams unless --no-stream)")
    end
  end
  local system, tpl_model
  local vars = common.params_table(args.params)
  if args.template then
    local tpl = common.template(args.template)
    vars = common.template_vars(tpl, args.template, args.params)
    tpl_model = tpl.model
    local dropped = {}   -- (a list of the names, and a set)
    for _, k in ipairs(M.DROPPED_PARAMS) do
      if tpl.params[k] ~= nil then dropped[#dropped + 1] = k; dropped[k] = true end
    end
    if #dropped > 0 then
      common.note("aigc: template '" .. args.template .. "': ignored what the chat cannot honour: params "
                  .. table.concat(dropped, ", "))
    end
    for k, v in pairs(tpl.params) do
      if params[k] == nil and not dropped[k] then params[k] = v end
    end
    if tpl.system then
      -- Its variables take -p, then the template's defaults. (The template's
      -- prompt is for one-shot calls: in the REPL each typed line is a turn.)
      local all = {}
      for k, v in pairs(tpl.defaults) do all[k] = v end
      for k, v in pairs(vars) do all[k] = v end
      local text, err = template.render(tpl.system, all)
      if not text and #err.missing == 0 then common.usage("template '" .. args.template .. "': " .. err.message) end
      if not text then
        common.usage(("template '%s': missing variable%s: %s (give it with -p NAME=VALUE)"):format(
          args.template, #err.missing > 1 and "s" or "", table.concat(err.missing, ", ")))
      end
      system = text
    end
  elseif next(vars) ~= nil then
    common.usage("-p sets template variables: it needs -t TEMPLATE")
  end
  return params, system, tpl_model
end

--- Runs `aigc chat`.
-- @tparam table args
-- @treturn integer exit code
function M.run (args)
  local config = common.config()
  local client, secrets, endpoint = common.client(config, args.endpoint)
  local log = common.open_log(config, args)
  local params, system, tpl_model = session_params(args)
  local history, cid, leaf
  local c = common.continued(log, args)
  if c then
    cid, leaf, history = c.id, c.leaf_id, c.messages
    system = system or c.system
    tpl_model = tpl_model or c.model
  end
  system = args.system or system
  local bad = system and bad_utf8_at(system)
  if bad then common.usage(("aigc: the system prompt: invalid UTF-8 at byte %d"):format(bad)) end
  local conv = aigc.conversation { client = client, system = system, params = params,
                                   model = config_mod.model(config, endpoint, args.model, tpl_model) }
  for i, m in ipairs(history or {}) do
    -- (a log written by a program's own log:record may hold what no request
    -- can carry -- a tool result without its call -- that add refuses)
    local ok, e = true, nil
    if m.role ~= "system" then ok, e = pcall(conv.add, conv, m) end
    if not ok then
      common.usage(("aigc: the continued conversation cannot be sent: message %d: %s")
                   :format(i, tostring(e):match("%(msg%.(.*)%)$") or tostring(e)))
    end
  end

  local tty = common.isatty(io.stdin)
  config_mod.mkdir(config_mod.home())
  local reader = lineinput.new { tty = tty, histfile = config_mod.home() .. "/history" }
  local session = setmetatable({ client = client, conv = conv, log = log, cid = cid, leaf = leaf, reader = reader,
                                 secrets = secrets, params = params, no_stream = args.no_stream,
                                 template_name = args.template }, Session)
  if not cid then session:new_conversation() end
  if tty then
    common.out(string.format("aigc chat: %s at %s, conversation %s%s. /help for commands, Ctrl-D to quit.\n",
      tostring(conv.model), credentials.shown_url(client.base_url), session.cid,   -- (no password shown)
      history and (" (" .. #history .. " messages)") or ""))
  end
  -- Output that cannot be written (a full disk, a closed stdout with
  -- SIGPIPE ignored) ends the session: each question was sent and its
  -- reply streamed whole, paid for and lost, until the input ended.
  while not common.out_error do
    local input, block = session:read_input()
    if input == nil then if tty then common.out("\n") end break end
    if input and input:find("%S") then
      if tty and session.eof then common.out("\n") end   -- (the reply below the typed lines)
      if session:dispatch(input, block) == "quit" then break end
    end
    if session.eof or session.terminated or session.stopped then break end
  end
  reader:close()
  if log then log:close() end
  client:close()
  if session.terminated then
    -- the turn logged and the history saved: end by the signal (143, 129)
    io.stdout:flush()
    local uv = require "luv"
    uv.kill(uv.os_getpid(), session.terminated)
    os.exit(session.terminated == "sighup" and 129 or 143)
  end
  return session.stopped and 130 or 0
end

return M
