--- `aigc logs`: the prompt log, newest last; `-q` searches it.
--
-- @module aigc.cli.logs

local argparse = require "argparse"
local common = require "aigc.cli.common"
local promptlog = require "aigc.promptlog"

local M = {}

-- What a listing shows of each text (system, prompt, reply, error): a
-- terminal got a 2 MB prompt and its reply whole (4 MB, the entries around
-- them scrolled away). `show ID`, --full and --json give them whole.
M.MAX_LINES, M.MAX_BYTES = 12, 1000

--- The parser of `aigc logs`.
-- @treturn table argparse parser
function M.parser ()
  local p = argparse("aigc logs", "Show the prompt log (newest last), or search it.")
  p:help_max_width(100):help_description_margin(28)
  p:epilog([[Examples:
  aigc logs                 the last 3 entries
  aigc logs -n 10 -q paris  the last 10 whose prompt, reply, system prompt, choice or candidate has "paris"
  aigc logs -c --json       the last conversation (its turns, first to last), as JSON
  aigc logs -c --all        every entry of it: undone turns, retried replies, failed calls
  aigc logs show 42         entry #42 whole (a listing shortens long texts)
  aigc logs path            where the log is]])
  p:argument("action", "'list' (default), 'show ID' or 'path'."):args("?")
  p:argument("id", "With 'show': the entry's id (#N in a listing)."):args("?")
  p:option("-n --count", "How many entries (0: all).", "3", tonumber):target("count")
  p:option("-q --query", "Full-text search: entries with every word (a non-ASCII one also inside longer text: CJK; "
           .. "in the other choices and candidates, inside their text).")
  p:option("--cid", "Only this conversation (id or unique prefix).")
  p:flag("-c --conversation", "Only the last conversation.")
  p:flag("--all", "With -c/--cid: every entry logged in the conversation, not only its turns.")
  p:option("--source", "Only entries from this source (cli, chat, run, script...).")
  p:flag("--full", "Every text whole (a listing shows each up to " .. M.MAX_LINES .. " lines, "
         .. M.MAX_BYTES .. " bytes).")
  p:flag("--json", "As JSON: an array of entries (texts whole).")
  p:option("--log-db", "The log database.")
  return p
end

local function quote_lines (s)
  return "> " .. s:gsub("\n", "\n> ")
end

-- The text cut to `M.MAX_LINES` lines and `M.MAX_BYTES` bytes (at a whole
-- UTF-8 character), with how much was left out; the text whole if `full`.
local function shorten (s, id, full)
  if full then return s end
  local cut = #s
  local nl, at = 0, 0
  while true do
    at = s:find("\n", at + 1, true)
    if not at then break end
    nl = nl + 1
    -- (12 lines and their last newline: nothing left out, the text is whole)
    if nl == M.MAX_LINES then cut = at < #s and at - 1 or #s; break end
  end
  if cut > M.MAX_BYTES then
    cut = M.MAX_BYTES
    while cut > 0 and (s:byte(cut + 1) or 0) >= 128 and s:byte(cut + 1) < 192 do cut = cut - 1 end
  end
  if cut >= #s then return s end
  return ("%s\n[... %d more bytes: aigc logs show %s]"):format(s:sub(1, cut), #s - cut, tostring(id))
end

local function show (row, full)
  local function cut (s) return shorten(s, row.id, full) end
  local head = { "## " .. tostring(row.created_at), "#" .. row.id }
  if row.model then head[#head + 1] = row.model end
  if row.conversation_id then head[#head + 1] = "conversation " .. row.conversation_id end
  if row.total_tokens then head[#head + 1] = row.total_tokens .. " tokens" end
  if row.latency_ms then head[#head + 1] = row.latency_ms .. " ms" end
  local retries = type(row.extra) == "table" and tonumber(row.extra.retries)
  if retries and retries > 0 then head[#head + 1] = retries .. (retries == 1 and " retry" or " retries") end
  if row.template then head[#head + 1] = "template " .. row.template end
  if row.source and row.source ~= "cli" then head[#head + 1] = "from " .. row.source end
  local lines = { table.concat(head, "  "), "" }
  if row.system then
    lines[#lines + 1] = "system: " .. cut(row.system):gsub("\n", "\n        ")
    lines[#lines + 1] = ""
  end
  lines[#lines + 1] = quote_lines(cut(row.prompt or ""))
  lines[#lines + 1] = ""
  -- (a call with several choices, `aigc -n 3`: each one, as the call printed
  -- them; the first alone was shown, and logged)
  local choices = type(row.extra) == "table" and type(row.extra.choices) == "table" and row.extra.choices or {}
  if #choices > 1 then
    for i, c in ipairs(choices) do
      local text = type(c) == "table" and type(c.text) == "string" and c.text or ""
      lines[#lines + 1] = ("[choice %d of %d]"):format(i, #choices)
      if text ~= "" then lines[#lines + 1] = cut(text) end
      lines[#lines + 1] = ""
    end
  elseif row.response and row.response ~= "" then
    lines[#lines + 1] = cut(row.response); lines[#lines + 1] = ""
  end
  -- (--best-of, --vote: the candidates after the reply they gave)
  local cands = type(row.extra) == "table" and type(row.extra.candidates) == "table" and row.extra.candidates or {}
  for i, c in ipairs(cands) do
    c = type(c) == "table" and c or {}
    local notes = {}
    if type(c.score) == "number" then notes[#notes + 1] = "score " .. c.score end
    if c.answer ~= nil then notes[#notes + 1] = "answer " .. tostring(c.answer) end
    if row.extra.chosen == i then notes[#notes + 1] = "chosen" end
    lines[#lines + 1] = ("[candidate %d of %d%s]"):format(i, #cands, #notes > 0 and ": " .. table.concat(notes, ", ")
                                                           or "")
    local text = type(c.text) == "string" and c.text or type(c.error) == "string" and "[error] " .. c.error or ""
    if text ~= "" then lines[#lines + 1] = cut(text) end
    lines[#lines + 1] = ""
  end
  if row.status ~= "ok" then
    lines[#lines + 1] = "[" .. tostring(row.status) .. "] " .. cut(tostring(row.error or ""))
    lines[#lines + 1] = ""
  end
  common.out(table.concat(lines, "\n") .. "\n")
end

-- Text as it was logged may hold bytes that are not UTF-8 (a proxy's
-- Latin-1 error page in `error`; in `extra`, the context or the params, a
-- string of 4 KiB or more, kept as it is in `blobs`), which JSON cannot
-- carry: --json raised (a traceback, every time) where it now shows U+FFFD,
-- at every depth (keys too).
local repair_utf8 = require("aigc.tools").repair_utf8
local function repaired (v, depth)
  if type(v) == "string" then return repair_utf8(v) end
  if type(v) ~= "table" or depth > 200 then return v end
  local t = {}
  for k, x in pairs(v) do t[repaired(k, depth + 1)] = repaired(x, depth + 1) end
  return setmetatable(t, getmetatable(v))
end

-- Fails (exit 1) when no entry of the log came from `source`, saying which
-- sources it has: a mistyped `--source rnu` listed nothing and exited 0, and
-- a script took it for a quiet log.
local function check_source (log, source, path)
  local sources = log:sources()
  for _, name in ipairs(sources) do
    if name == source then return end
  end
  log:close()
  common.fail(("aigc: no entries from source '%s' in %s (%s)"):format(source, path, #sources > 0
              and "its sources: " .. table.concat(sources, ", ") or "nothing logged there yet"))
end

-- The largest entry id `logs show` takes: every Lua's numbers hold it exactly (2^53 - 1).
local MAX_ID = 9007199254740991

--- The entry `logs show ID` asks for (nil for the other actions); a usage
-- error (exit 2) for an ID that is no entry's.
local function shown_id (args)
  local show_id = args.action == "show" and tonumber(args.id) or nil
  if args.action == "show" and not (show_id and show_id == math.floor(show_id) and show_id > 0) then
    common.usage("aigc logs show: give the entry's id (a whole number: #N in a listing)")
  end
  -- (99999999999999999999 was taken as 1e+20, and "no entry #1e+20" named no id the user typed)
  if show_id and show_id > MAX_ID then
    common.usage(("aigc logs show: the id '%s' is out of range (at most %.0f)"):format(args.id, MAX_ID))
  end
  if args.id ~= nil and not show_id then common.usage("aigc logs: unexpected argument '" .. args.id .. "'") end
  return show_id
end

--- Runs `aigc logs`.
-- @tparam table args
-- @treturn integer exit code
function M.run (args)
  local config = common.config()
  local path = args.log_db or config.log_db or promptlog.default_path()
  if args.action == "path" then
    if args.id ~= nil then common.usage("aigc logs: unexpected argument '" .. args.id .. "'") end
    common.out(path .. "\n"); return 0
  end
  if args.action ~= nil and args.action ~= "list" and args.action ~= "show" then
    common.usage("aigc logs: unknown action '" .. args.action .. "'")
  end
  local show_id = shown_id(args)
  -- Reading makes nothing: a log that is not there (nothing logged yet, a
  -- mistyped --log-db) is said, not created empty.
  -- (not a regular file: promptlog.open says what it is; a FIFO's io.open waited for a writer for ever)
  local kind = require("aigc.core").file_kind(path)
  local f = (kind == nil or kind == "file") and io.open(path, "rb")
  if f == nil then
    if args.conversation or args.cid then common.fail("aigc: no conversation: no log at " .. path) end
    -- (an entry asked for by its id is not there: as with a log that lacks it, exit 1 -- it said
    -- "nothing logged there yet", exit 0, and with --json printed [], an entry's shape for a script)
    if show_id then common.fail("aigc: no entry #" .. args.id .. ": no log at " .. path) end
    if args.source then common.fail("aigc: no entries from source '" .. args.source .. "': no log at " .. path) end
    common.note("aigc: no log at " .. path .. " (nothing logged there yet)")
    if args.json then common.print_json(require("aigc").array {}) end
    return 0
  end
  if f then f:close() end
  local log, err = promptlog.open(path)
  if not log then common.fail("aigc: " .. tostring(err.message)) end
  local cid = args.cid
  if args.conversation then
    cid = log:last_conversation()
    if not cid then log:close(); common.fail("aigc: no conversation in " .. path) end
  end
  if args.all and not cid then log:close(); common.usage("aigc logs: --all goes with -c or --cid") end
  -- A conversation is its chain, from its leaf up parent_id (turns before
  -- a fork included; undone turns, other replies and failures left out);
  -- --all: every entry logged under its id.
  local ids
  if cid then
    local conv, cerr = log:conversation(cid)
    if not conv then log:close(); common.fail("aigc: " .. tostring(cerr.message)) end
    cid = conv.id
    if not args.all then
      ids = {}
      for i, row in ipairs(conv.chain) do ids[i] = row.id end
    end
  end
  local n = args.count
  if not n or n < 0 or n ~= math.floor(n) then log:close(); common.usage("-n must be a whole number >= 0") end
  if show_id then n, ids = 0, { show_id } end
  local rows, lerr = log:list { n = n, query = args.query, conversation_id = args.all and cid or nil, ids = ids,
                                source = args.source }
  if rows and #rows == 0 and args.source then check_source(log, args.source, path) end
  log:close()
  if not rows then common.fail("aigc: " .. tostring(lerr.message)) end
  -- (with --json too: it printed [] and exited 0 for an entry the log lacks)
  if show_id and #rows == 0 then common.fail("aigc: no entry #" .. args.id .. " in " .. path) end
  local ordered = {}
  for i = #rows, 1, -1 do ordered[#ordered + 1] = rows[i] end
  if args.json then
    for _, r in ipairs(ordered) do r.context_json, r.params_json, r.extra_json = nil, nil, nil end
    common.print_json(require("aigc").array(repaired(ordered, 0)))
    return 0
  end
  for _, r in ipairs(ordered) do show(r, args.full or show_id) end
  -- (a terminal showed a blank: a conversation of failed turns looked lost)
  if #ordered == 0 then
    common.note(ids and ("aigc: conversation " .. cid .. " has no turns (a failed or canceled call is none: "
                         .. "--all shows them)") or "aigc: no entries")
  end
  return 0
end

return M
