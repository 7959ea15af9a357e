--- Helpers shared by the `aigc` command's parts: failing with an exit
-- code, key=value options, terminals, JSON output, the client and the log
-- of an invocation.
--
-- @module aigc.cli.common

local aigc = require "aigc"
local compat = require "aigc.compat"
local config_mod = require "aigc.cli.config"
local lineinput = require "aigc.cli.lineinput"
local promptlog = require "aigc.promptlog"
local strategy_shared = require "aigc.strategy_shared"
local template = require "aigc.template"
local util = require "aigc.util"
local credentials = require "aigc.credentials"

local json = aigc.json

local M = {}

-- The error a command raises to stop with a message and an exit code;
-- aigc.cli.main catches it.
local Exit = { __name = "aigc.cli.exit" }
Exit.__index = Exit
Exit.__tostring = function (e) return e.message end
M.Exit = Exit

--- Stops the command: `message` on stderr (if any) and exit `code`
-- (default 1: a failure; 2: a usage error).
-- @tparam string|nil message
-- @tparam[opt=1] integer code
function M.fail (message, code)
  error(setmetatable({ message = message, code = code or 1 }, Exit), 0)
end

--- Stops with a usage error (exit 2).
-- @tparam string message
function M.usage (message)
  M.fail(message, 2)
end

--- `key=value` split; the value is JSON when it parses as JSON (numbers,
-- true, false, null, arrays, objects), else the string as it is.
-- @tparam string s
-- @tparam string what the option, for the error message
-- @treturn string key
-- @return value
function M.key_value (s, what)
  local k, v = s:match("^([^=]+)=(.*)$")
  if not k then M.usage(what .. " expects KEY=VALUE, got '" .. s .. "'") end
  k = util.trim(k)   -- (loops: "^%s*(.-)%s*$" was quadratic in a run of spaces)
  local first = v:match("^%s*(.)")
  if first and (first:find("[%d%-%[{\"]") or v == "true" or v == "false" or v == "null") then
    local decoded = json.decode(v)
    if decoded ~= nil then return k, decoded end
  end
  return k, v
end

--- Whether a file (io.stdin, io.stdout, io.stderr) is a terminal.
-- @tparam file f
-- @treturn boolean
local term_ok, term = pcall(require, "term")
function M.isatty (f)
  if config_mod.env("AIGC_FORCE_TTY") == "1" then return true end
  if term_ok and term.isatty then
    local ok, r = pcall(term.isatty, f)
    if ok then return r and true or false end
  end
  local fd = f == io.stdin and 0 or f == io.stdout and 1 or 2
  local r = os.execute("test -t " .. fd)   -- true (5.2+) or 0 (5.1) when it is
  return r == true or r == 0
end

--- argparse's converter of a `-m` value: an empty one is refused (`-m
-- "$MODEL"` with MODEL unset sent the model "", which a server answers
-- with its own error, or the default model of a proxy).
-- @tparam string s
-- @treturn string|nil
-- @treturn[opt] string
function M.model_name (s)
  if s == "" then return nil, "-m: an empty model name" end
  return s
end

--- The options every prompting command shares (`aigc`, `aigc chat`, `aigc run`).
-- @tparam table parser an argparse parser
function M.model_options (parser)
  parser:option("-m --model", "The model."):convert(M.model_name)
  parser:option("-s --system", "The system prompt.")
  parser:option("-o --option", "A request param KEY=VALUE (VALUE as JSON when it parses: -o temperature=0).")
    :count("*"):target("options")
  parser:option("-t --template", "A template by name (aigc templates list).")
  parser:option("-p --param", "A template variable NAME=VALUE."):count("*"):target("params")
  parser:option("-e --endpoint", "A named endpoint (config file; built in: local, openai).")
  parser:flag("--no-log", "Do not log (also AIGC_NO_LOG=1).")
  parser:option("--log-db", "The log database (default $AIGC_LOG_DB, else $AIGC_HOME/logs.db, else "
                .. "~/.local/share/aigc/logs.db: aigc logs path).")
end

--- The request params of `-o` options.
-- @tparam table list the `-o` values
-- @treturn table
-- A credential given with -o ("-o api_key=sk-...", a header or query
-- parameter named like one) is refused: the command line is shown to
-- every user of the machine (ps, /proc/PID/cmdline) and kept in the
-- shell's history; the config file refuses keys for the same reason.
local CREDENTIAL_PARAMS = { api_key = true, azure_ad_token = true }
local function credential_in (k, v)
  if CREDENTIAL_PARAMS[k] then return k end
  if type(v) ~= "table" then return nil end
  local test = (k == "headers" or k == "extra_headers") and credentials.credential_header
    or (k == "query" or k == "extra_query") and credentials.secret_param
  for name in pairs(test and v or {}) do
    if test(name) then return k .. "." .. tostring(name) end
  end
end

M.option_keys = {}   -- the keys given with -o (options_table), for as_typed

function M.options_table (list)
  local t = {}
  M.option_keys = {}   -- (this command's: main may run again in one process)
  for _, s in ipairs(list or {}) do
    local k, v = M.key_value(s, "-o")
    local what = credential_in(k, v)
    if what then
      M.usage("-o " .. what .. ": a secret on the command line is visible to every user (ps) and kept in "
        .. "the shell's history: put the key in the environment (OPENAI_API_KEY, or an endpoint's api_key_env)")
    end
    t[k] = v
    M.option_keys[k] = true
  end
  return t
end

--- A misuse error's text with a request param given by -o named as the
-- user typed it: `params.stop: ...` (`opts.params.stop` in the REPL, `spec.params.stop` with
-- --vote, `(params.stop[1]: ...)` in a run's case) is `-o stop: ...`; the internal name meant
-- nothing on the command line.
-- @tparam string text
-- @treturn string
function M.as_typed (text)
  local function typed (k) return M.option_keys[k] and ("-o " .. k) or nil end   -- (nil: kept)
  text = text:gsub("^opts%.params%.([%a_][%w_]*)", typed):gsub("^spec%.params%.([%a_][%w_]*)", typed)
  return (text:gsub("%f[%w_%.]params%.([%a_][%w_]*)", typed))
end

--- The template variables of `-p` options.
-- @tparam table list the `-p` values
-- @treturn table
function M.params_table (list)
  local t = {}
  for _, s in ipairs(list or {}) do
    local k = s:match("^([^=]+)=")
    if not k then M.usage("-p expects NAME=VALUE, got '" .. s .. "'") end
    t[k] = s:sub(#k + 2)    -- template values stay text
  end
  return t
end

--- The `-p NAME=VALUE` variables for template `tpl` (named `name`), or
-- exits: a NAME the template does not use is a usage error (a mistyped
-- `-p lnag=French` was dropped without a word, and the default went).
-- @tparam aigc.template tpl
-- @tparam string name
-- @tparam table list the `-p` values
-- @treturn table
function M.template_vars (tpl, name, list)
  local vars, names, known, unknown = M.params_table(list), tpl:variables(true), {}, {}
  for _, v in ipairs(names) do known[v] = true end
  for k in pairs(vars) do
    if not known[k] then unknown[#unknown + 1] = k end
  end
  table.sort(unknown)
  if unknown[1] then
    M.usage(("-p %s: template '%s' has no variable '%s' (%s)"):format(unknown[1], name, unknown[1],
            #names > 0 and "its variables: " .. table.concat(names, ", ") or "it has none"))
  end
  return vars
end

--- Loads a template by name from the templates directory, or exits.
-- @tparam string name
-- @treturn aigc.template
function M.template (name)
  local t, err = template.find(config_mod.templates_dir(), name)
  if not t then
    -- (the file's name typed, extension and all: say which name is meant)
    local stem = name:match("^(.+)%.lua$") or name:match("^(.+)%.json$")
    local hint = stem and template.find(config_mod.templates_dir(), stem) and (" (its name is '" .. stem .. "')") or ""
    M.usage(tostring(err.message or err) .. hint)
  end
  return t
end

--- Writes and flushes (a stream's deltas appear as they arrive). A write
-- that fails (a full disk, a closed stdout) is kept in `M.out_error`, the
-- first one: `main` makes the command fail with it at the end (it ended 0,
-- the output lost: `aigc --json ... >out.json` on a full disk).
-- @tparam string s
-- @treturn boolean whether it was written
-- What a model writes reaches the terminal as text, never as commands: an
-- ESC sequence in a reply (a prompt injection in a page the model read)
-- could set the clipboard (OSC 52), retitle the window or rewrite lines
-- above. On a terminal, control characters other than tab and newline are
-- shown in caret notation (ESC as ^[, a lone CR as ^M, DEL as ^?) and the
-- C1 controls (U+0080..U+009F, 8-bit CSI among them) as U+FFFD; a pipe or
-- a file gets the bytes as they are. The same on stderr: a server's text
-- in a note (a batch's status) retitled the window.
local is_tty = {}
local function on_terminal (f)
  if is_tty[f] == nil then is_tty[f] = M.isatty(f) end
  return is_tty[f]
end

-- A byte 0x80..0x9F that is no part of a UTF-8 character is a C1 control
-- itself to a terminal that takes 8-bit controls (0x9B: CSI): a proxy's
-- error page in another encoding, in a message or the log, had it raw.
-- It is shown as U+FFFD; the bytes of valid UTF-8 (U+201C is E2 80 9C) and
-- the other bytes of text that is not UTF-8 (a Latin-1 e acute, E9) stay.
local utf8_len = compat.utf8_len
local function lone_c1_shown (s)
  local out, i = {}, 1
  while true do
    local ok, bad = utf8_len(s, i)
    if ok then out[#out + 1] = s:sub(i); break end
    local b = s:byte(bad)
    out[#out + 1] = s:sub(i, bad - 1)
    out[#out + 1] = b <= 159 and "\239\191\189" or string.char(b)   -- (a bad byte is >= 0x80)
    i = bad + 1
  end
  return table.concat(out)
end

local function shown_on_terminal (s, f)
  if not on_terminal(f or io.stdout) then return s end
  if not (s:find("[%z\1-\8\11-\31\127]") or s:find("[\128-\159]")) then return s end
  if s:find("[\128-\159]") then s = lone_c1_shown(s) end
  s = s:gsub("\r\n", "\n")
  s = s:gsub("[%z\1-\8\11-\31]", function (c) return "^" .. string.char(c:byte() + 64) end)
  return (s:gsub("\127", "^?"):gsub("\194[\128-\159]", "\239\191\189"))
end

-- A CR that ends a piece written to a terminal, held until the next one:
-- a streamed reply of CR LF lines cut between the two showed ^M at every
-- line's end.
local held_cr = false

-- What the command writes is scrubbed of the secrets its log is scrubbed
-- of (the client's engine -- every live client's --, the config's and the
-- environment's keys): a server or a proxy echoing the key in a reply's
-- header (`--json` printed `x-request-id: req_sk-...`), its text or an
-- error reached stdout as it came. Set by `M.client`; before any client,
-- the environment's keys. Binary data (`M.out_bytes`) is not touched.
local clean_text
local function cleaned (s)
  if clean_text == nil then clean_text = require("aigc.promptlog_redact").scrubber(nil) end
  return clean_text(s)
end
M.cleaned = cleaned

local function write_out (s)
  if held_cr then s, held_cr = "\r" .. s, false end
  if s:sub(-1) == "\r" and on_terminal(io.stdout) then s, held_cr = s:sub(1, -2), true end
  local ok, err = io.stdout:write(shown_on_terminal(s))
  if ok then ok, err = io.stdout:flush() end
  if not ok and M.out_error == nil then M.out_error = tostring(err) end
  return ok and true or false
end

function M.out (s) return write_out(cleaned(s)) end

--- Writes bytes as they are (an image, audio to a pipe): `M.out` unscrubbed.
-- @tparam string s
-- @treturn boolean whether it was written
M.out_bytes = write_out

--- A stream callback: each delta printed, and kept in `streamed`. The
-- output lost (a full disk, a closed stdout with SIGPIPE ignored): the
-- reply streamed to its end, generated and paid for, then the command
-- failed. The call (`current()`, once made) is canceled at once.
-- @tparam table streamed
-- @tparam function current
-- @treturn function
--
-- Each delta is scrubbed as `M.out` scrubs, a word at a time: a key the
-- server streams a few characters a time is whole in the text held (the
-- last word, up to HOLD bytes) when it is scrubbed. The second function
-- returned writes what is held: call it once the call ended.
-- @treturn function the flush
local HOLD = 1024
function M.stream_out (streamed, current)
  local held = ""
  local function write (s)
    local req = s ~= "" and not M.out(s) and current()
    if req then pcall(req.cancel, req) end
  end
  return function (delta)
    if delta and delta ~= "" then
      streamed[#streamed + 1] = delta
      local s = held .. delta
      local cut = s:find("%s[^%s]*$")
      if not cut and #s > HOLD then   -- (no space: at a character's start, HOLD bytes back)
        cut = #s - HOLD
        while cut > 1 and s:byte(cut + 1) >= 128 and s:byte(cut + 1) < 192 do cut = cut - 1 end
      end
      if cut then write(s:sub(1, cut)); held = s:sub(cut + 1) else held = s end
    end
  end, function ()
    local s = held
    held = ""
    write(s)
  end
end

--- A line on stderr.
-- @tparam string s
function M.note (s)
  io.stderr:write(shown_on_terminal(cleaned(s), io.stderr), "\n")
  io.stderr:flush()
end

--- Prints a value as one line of JSON.
-- @param v
-- (JSON escapes the C0 controls; DEL and the C1 ones it writes as they
-- are, which a terminal showed as ^? and U+FFFD: not the value. There they
-- are JSON escapes, the same value; they are only ever inside a string.)
function M.print_json (v)
  local s = json.encode(v)
  if on_terminal(io.stdout) then
    s = s:gsub("\127", "\\u007f"):gsub("\194([\128-\159])", function (c) return ("\\u%04x"):format(c:byte()) end)
  end
  M.out(s .. "\n")
end

--- The config file, or exit 2 with its error.
-- @treturn table
function M.config ()
  local c, err = config_mod.load()
  if not c then M.usage(err) end
  return c
end

--- Makes the client of an invocation (`-e NAME` and the config), or exits.
-- @tparam table config
-- @tparam[opt] string endpoint_name
-- @tparam[opt] table extra client options
-- @treturn aigc.client
-- @treturn table secrets (for the log's redaction)
-- @treturn table|nil the endpoint
function M.client (config, endpoint_name, extra)
  local opts, secrets, endpoint, from = config_mod.client_options(config, endpoint_name)
  if not opts then M.usage(secrets) end
  for k, v in pairs(extra or {}) do opts[k], from[k] = v, nil end
  local ok, client = pcall(aigc.client, opts)
  if not ok then M.usage(config_mod.client_error(config, client, opts, from)) end
  local function set (v) return v ~= nil and v ~= "" end
  M.endpoint_facts = { base_url = client.base_url, azure = opts.azure or opts.provider == "azure",
                       keyless = not (set(opts.api_key) or set(os.getenv("OPENAI_API_KEY"))) }
  clean_text = require("aigc.promptlog_redact").scrubber { client = client, secrets = secrets }
  return client, secrets, endpoint
end

--- The message of a call that failed (`tostring(err)`), with a line saying
-- what to do when the endpoint is the likely cause. With no key and no
-- server named, `aigc "Hi"` said only "connect error: Could not resolve
-- host: api.openai.com" (or OpenAI's 401); a server not started, "Couldn't
-- connect to server"; a base URL without its /v1, "http error 404".
-- @param err the call's error
-- @treturn string
function M.call_error (err)
  local msg, facts = tostring(err), M.endpoint_facts or {}
  if type(err) ~= "table" or type(facts.base_url) ~= "string" then return msg end
  local base = facts.base_url:gsub("^(%a+://)[^/@]*@", "%1")   -- (a password in it is never shown)
  local host, path = base:match("^%a+://([^/]*)(.*)$")
  host = (host or ""):gsub(":%d*$", "")
  if facts.keyless and host == "api.openai.com" and (err.kind == "connect" or err.status == 401) then
    return msg .. "\naigc: no API key: set OPENAI_API_KEY for OpenAI, or name another server with "
      .. "OPENAI_BASE_URL=URL or -e NAME (-e local: the bundled server, `make server`)"
  elseif err.kind == "connect" and (host == "127.0.0.1" or host == "localhost" or host == "[::1]") then
    return msg .. "\naigc: nothing answers at " .. base .. ": is the server running? (the bundled one: "
      .. "`make server`)"
  elseif err.kind == "http" and err.status == 404 and not facts.azure and not (path or ""):find("/openai/", 1, true)
         and not (path or ""):find("/v1/?$") then
    return msg .. "\naigc: is the base URL right? " .. base .. ": an OpenAI-compatible server's ends in /v1 (each "
      .. "call adds its path, /chat/completions..., after it)"
  end
  return msg
end

--- Opens the prompt log unless logging is off (`--no-log`, `AIGC_NO_LOG`,
-- `log = false` in the config). A log that cannot open is a warning: the
-- prompt still runs.
-- @tparam table config
-- @tparam table args the parsed arguments (`no_log`, `log_db`)
-- @treturn aigc.promptlog|nil
function M.open_log (config, args)
  if args.no_log or promptlog.disabled() or config.log == false then return nil end
  local log, err = promptlog.open(args.log_db or config.log_db)
  if not log then M.note("aigc: warning: not logging: " .. tostring(err.message or err)) end
  return log
end

--- The conversation `-c` (the last one) or `--cid ID` continues, from the
-- prompt log; nil when neither was given. Exits with a message when
-- logging is off, there is none, or the log cannot read it.
-- @tparam aigc.promptlog|nil log
-- @tparam table args the parsed arguments (`continue`, `cid`)
-- @treturn table|nil the log's conversation (`id`, `leaf_id`, `messages`, `system`, `model`)
function M.continued (log, args)
  if not (args.continue or args.cid) then return nil end
  if not log then M.usage("-c and --cid continue a conversation from the prompt log, and logging is off") end
  local cid = args.cid or log:last_conversation()
  if not cid then M.fail("aigc: no conversation to continue in " .. log.path) end
  local conv, err = log:conversation(cid)
  if not conv then M.fail("aigc: " .. tostring(err.message)) end
  return conv
end

--- Reads all of stdin when it is not a terminal (a pipe or a file), else nil.
-- @treturn string|nil
function M.piped_stdin ()
  if M.isatty(io.stdin) then return nil end
  local s = io.stdin:read("*a")
  if s == nil or s == "" then return nil end
  return s
end

local TYPES = {
  str = "string", string = "string", int = "integer", integer = "integer", float = "number",
  number = "number", num = "number", bool = "boolean", boolean = "boolean",
}

--- A JSON schema from `--schema`: a file (JSON or a Lua table), inline JSON,
-- or the concise form `name, age int, bio: a short bio` (fields separated
-- by commas or newlines; each `NAME [TYPE][: description]`, TYPE one of
-- str, int, float, bool; every field required).
-- @tparam string s
-- @treturn table schema
function M.parse_schema (s)
  local text, rerr, code = template.read_file(s, template.MAX_BYTES, "a schema file")
  if code == "limit" then M.usage("--schema: " .. rerr) end
  if text then
    local t, err = template.load_data(text, s)
    if not t then M.usage("--schema: " .. err) end
    -- (a JSON array or a Lua list is no schema: sent, it made every reply "valid")
    if t[1] ~= nil or aigc.is_array(t) then M.usage("--schema: " .. s .. ": a schema is an object, not a list") end
    return t
  end
  if s:match("^%s*[{%[]") then
    local t, err = json.decode(s)
    if type(t) ~= "table" or t[1] ~= nil or aigc.is_array(t) then
      M.usage("--schema: not a JSON object: " .. tostring(err or s))
    end
    return t
  end
  -- A file name (a field name has no '/' or '.'): the file's error, not
  -- "cannot read the field".
  if not s:find("[,\n:]") and s:find("[/.]") then M.usage("--schema: cannot read " .. tostring(rerr)) end
  local props, required = {}, {}
  local sep = s:find("\n", 1, true) and "\n" or ","
  for field in (s .. sep):gmatch("(.-)" .. sep) do
    field = util.trim(field)   -- (loops: "^%s*(.-)%s*$" was quadratic in a run of spaces)
    if field ~= "" then
      local head, desc = field:match("^([^:]*):%s*(.*)$")
      head = head or field
      local name, ty = head:match("^([%w_]+)%s*(%w*)%s*$")
      if not name then M.usage("--schema: cannot read the field '" .. field .. "'") end
      local jt = ty == "" and "string" or TYPES[ty:lower()]
      if not jt then M.usage("--schema: unknown type '" .. ty .. "' (str, int, float, bool)") end
      -- (the second one replaced the first, and `required` named it twice: a schema servers refuse)
      if props[name] then M.usage("--schema: the field '" .. name .. "' is given twice") end
      props[name] = { type = jt, description = desc ~= "" and desc or nil }
      required[#required + 1] = name
    end
  end
  if #required == 0 then M.usage("--schema: no fields") end
  return { type = "object", properties = props, required = aigc.array(required), additionalProperties = false }
end

--- The input of a command: piped stdin first, then the arguments' text.
-- @tparam string|nil stdin
-- @tparam string text
-- @treturn string
function M.join_input (stdin, text)
  if stdin then stdin = util.trim_end(stdin) end   -- (gsub("%s+$", "") is quadratic in a run of spaces)
  if stdin and stdin ~= "" and text ~= "" then return stdin .. "\n\n" .. text end
  if stdin and stdin ~= "" then return stdin end
  return text
end

--- Stops with a usage error when `v` (a string, or a table of them: an
-- option's value) holds text that is not UTF-8, naming the option.
-- @param v
-- @tparam string what the option ("-s")
function M.check_text (v, what)
  if type(v) == "table" then
    for _, x in pairs(v) do M.check_text(x, what) end
  elseif type(v) == "string" then
    local ok, at = compat.utf8_len(v)
    -- (worded as every message that places a byte: "invalid UTF-8 at byte N", counted from 1)
    if not ok then M.usage(what .. ": invalid UTF-8 at byte " .. tostring(at) .. " of '" .. v:gsub("[\128-\255]", "?")
                           .. "'") end
  end
end

--- The most candidates of --best-of and --vote: each is a request sent at
-- once (--best-of 1e9 built a billion of them, until the kernel killed the
-- process), as -n asks at most 128 choices of one call (the library's bound).
M.MAX_CANDIDATES = strategy_shared.MAX_CANDIDATES

--- A whole number >= 1 (nil stays nil), or a usage error naming `what`.
-- @tparam number|nil v
-- @tparam string what the option
-- @tparam[opt] integer max the most it may be (`what: at most MAX`)
-- @treturn integer|nil
function M.positive (v, what, max)
  if v == nil then return nil end
  if v ~= math.floor(v) or v < 1 then M.usage(what .. " must be a whole number >= 1") end
  if max and v > max then M.usage(what .. ": at most " .. max) end
  return math.floor(v)
end

local SPECIAL = { fifo = "a FIFO", char = "a device", block = "a device", socket = "a socket" }

-- Whether a path is a directory ("p/." opens only then; never opens a
-- FIFO, which would block).
local function is_directory (p)
  local f = io.open(p .. "/.", "rb")
  if f then f:close() end
  return f ~= nil
end

local STDOUT_NAMES = { ["/dev/stdout"] = true, ["/dev/fd/1"] = true, ["/proc/self/fd/1"] = true }

-- Whether `-o PATH` is written as it is, not renamed into place: a FIFO,
-- a character device, or a name of a descriptor (/dev/stdout, /dev/fd/N
-- of `-o >(player)`), whatever it leads to (a file there renamed over
-- would replace the link itself: /dev/stdout, as root).
local function written_through (p, kind)
  return kind == "fifo" or kind == "char" or util.names_descriptor(p)
end

--- Where a command writes binary data (an image, audio): `-o PATH`, or
-- "-" (stdout) when `-o -` or no `-o` with stdout not a terminal; binary
-- data is never written to a terminal.
-- @tparam string|nil output the `-o` value
-- @tparam string command for the message
-- @treturn string a path or "-"
-- @return a writer (core.media.open_through's) when the path is a FIFO, a
-- device or a descriptor's name, opened before the call: one that cannot be
-- written (a FIFO nobody reads, a terminal) exits 2 before the paid call
function M.binary_output (output, command)
  if output == "" then M.usage(command .. ": -o needs a file name (or - for stdout)") end
  if (output == nil or output == "-") and M.isatty(io.stdout) then
    M.usage(command .. ": give -o FILE (stdout is a terminal: binary data is not written there; "
            .. "-o - with a pipe)")
  end
  -- A file that cannot be made is told before the request: after it, the
  -- image or the audio was made (and paid for), then lost.
  if output and output ~= "-" then
    local kind = aigc.core.file_kind(output)
    -- (stdout itself named: written as `-o -` writes it, whatever it is --
    -- a socket, journald's under systemd, cannot be opened by its name)
    if kind == "socket" and STDOUT_NAMES[output] then
      return M.binary_output("-", command)
    end
    if written_through(output, kind) then
      local writer, why = aigc.core.media.open_through(output)
      if not writer then M.usage(command .. ": -o " .. why:gsub("^could not write ", "", 1)) end
      return output, writer
    end
    local dir = output:match("^(.*)/[^/]*$") or "."
    if output:find("/$") or is_directory(output) then
      M.usage(command .. ": -o " .. output .. " is a directory: give a file name")
    end
    if not is_directory(dir == "" and "/" or dir) then
      M.usage(command .. ": -o " .. output .. ": no directory " .. dir)
    end
    -- (a block device or a socket is refused: a file is renamed into place)
    if kind ~= nil and kind ~= "file" then
      M.usage(command .. ": -o " .. output .. " is " .. (SPECIAL[kind] or "a special file")
              .. ", not a regular file: give a file name (or - for stdout)")
    end
  end
  return output or "-"
end

--- Drives an async call (a request or a future) until it ends; Ctrl-C
-- (SIGINT, through luv) cancels it instead of ending the process.
-- @tparam aigc.client client
-- @param req the request or future
-- @return res, or nil
-- @return err
-- @treturn boolean whether Ctrl-C canceled it
function M.wait_interruptible (client, req)
  local signals = lineinput.new { tty = false }   -- (only its SIGINT handler)
  local canceled = false
  while true do
    local st = req:status()
    if st ~= "queued" and st ~= "running" then break end
    client:step(0.05)
    if not canceled and signals:interrupted() then
      canceled = true
      req:cancel()
    end
  end
  signals:close()
  local res, err = req:wait()
  return res, err, canceled and not res
end

--- A number of seconds as "1.2s", "3m04s".
-- @tparam number s
-- @treturn string
function M.duration (s)
  if s ~= s or s == math.huge then return "?" end
  if s < 60 then return string.format("%.1fs", s) end
  if s < 3600 then return string.format("%dm%02ds", math.floor(s / 60), math.floor(s % 60)) end
  return string.format("%dh%02dm", math.floor(s / 3600), math.floor(s % 3600 / 60))
end

--- The usage of a list of responses, summed.
-- @tparam table list responses (nil entries skipped)
-- @treturn table usage
function M.sum_usage (list)
  local u = { prompt_tokens = 0, completion_tokens = 0, total_tokens = 0 }
  for _, res in pairs(list) do
    local x = type(res) == "table" and res.usage
    if type(x) == "table" then
      for k in pairs(u) do u[k] = u[k] + (tonumber(x[k]) or 0) end
    end
  end
  return u
end

return M
