--- The dataset runner's files (`aigc.runner`): the cases (JSONL), the
-- results file it appends to and resumes from, and that file's lock.
--
-- A results file is only ever appended to by one run at a time: a run
-- holds `OUT.lock` (`core.lockfile`: released by the kernel however the
-- process ends, so a killed run leaves no lock that blocks the next one)
-- and a second run on the same file is refused with an error naming it.
--
-- @module aigc.runfile

local compat = require "aigc.compat"
local core = require "aigc.core"
local util = require "aigc.util"

local json_encode, json_decode = core.json.encode, core.json.decode
local ipairs, pairs, pcall, tonumber, tostring, type = ipairs, pairs, pcall, tonumber, tostring, type
local string_char, string_format = string.char, string.format
local math_floor = math.floor
local table_concat = table.concat
local math_type, tointeger = rawget(math, "type"), compat.tointeger

util.own_module()

local M = {}

local function run_error (message, fields)
  local t = { kind = "runner", message = message }
  for k, v in pairs(fields or {}) do t[k] = v end
  return core.error(t)
end


-- {======================================================
-- Cases and results files
-- =======================================================

-- Standard input by its names, when a pipe: read through io.stdin, never
-- opened again. A named FIFO given as stdin (`aigc run - < fifo`), opened
-- again by name, waited for a writer for ever once its writer had closed
-- (the run hung before reading a case). The third value: it is stdin (not
-- to close).
local STDIN = { ["/dev/stdin"] = true, ["/dev/fd/0"] = true, ["/proc/self/fd/0"] = true }
local function open_read (path)
  if STDIN[path] and core.file_kind(path) == "fifo" then return io.stdin, nil, true end
  local f, err = io.open(path, "rb")
  return f, err, false
end

local function read_lines (path)
  local f, err, std = open_read(path)
  if not std then return util.read_file(path) end
  local text, rerr = f:read("*a")
  if not text then return nil, path .. ": " .. tostring(rerr or err) end
  return text
end

-- An error in the cases (code "input": the user's to fix; nothing runs).
local function input_error (message)
  return run_error(message, { code = "input" })
end

-- What is wrong with a case id, or nil: an id names a case in the results
-- file, where a resumed run finds it again, so it is a string or a number
-- (an object or a list would never compare equal to its copy read back).
local function id_problem (id)
  if type(id) == "number" or (type(id) == "string" and id ~= "") then
    -- The id goes into each result line, JSON: one JSON cannot carry (a
    -- string that is not UTF-8, NaN) made the run raise at that line.
    local ok, why = pcall(json_encode, id)
    if ok then return nil end
    util.reraise_memory(why)   -- (Lua out of memory says nothing of the id)
    why = tostring(why)
    return "id cannot be written in the results (JSON): " .. (why:match("%(value: (.*)%)$") or why)
  end
  local ok, text = pcall(json_encode, id)
  text = ok and text or type(id)
  return "id must be a non-empty string or a number, got " .. (#text > 40 and text:sub(1, 37) .. "..." or text)
end

-- The case of line `n` of the cases file `path` (nil for a blank line),
-- or nil, err: a line that is not a JSON object, or whose id is not a
-- string or a number, names its line.
local function decode_case (path, line, n)
  if not line:find("%S") then return nil end
  local c, jerr = json_decode(line)
  -- (a JSON list is no case: it ran as one with no prompt, its first item taken for nothing)
  -- (a line `null` said "(userdata)", the Lua type of the decoder's null)
  local what = type(c) == "table" and core.is_array(c) and "a list" or jerr or (c == core.null and "null")
    or type(c)
  if type(c) ~= "table" or what == "a list" then
    return nil, input_error(string_format("%s:%d: not a JSON object (%s)", path, n, tostring(what)))
  end
  if c.id == nil then c.id = n end
  local why = id_problem(c.id)
  if why then return nil, input_error(string_format("%s:%d: %s", path, n, why)) end
  return c
end

--- What went wrong with `path`, from an io function's error `err`: without
-- the "PATH: " io.open puts first ("cannot open X: X: No such file or
-- directory" named the path twice).
-- @tparam string path
-- @param err
-- @treturn string
function M.io_why (path, err)
  err = tostring(err)
  local prefix = path .. ": "
  return err:sub(1, #prefix) == prefix and err:sub(#prefix + 1) or err
end

local function cannot_read (path, err)
  if core.file_kind(path) == "directory" then
    return input_error("cannot read the cases: " .. path .. " is a directory, not a JSONL file")
  end
  return input_error("cannot read the cases: " .. tostring(err))
end

--- Reads a JSONL file of cases.
-- @tparam string path
-- @treturn[1] table cases (each with `id`; numbered from 1 by line when absent)
-- @treturn[1] table the line of each case (by its index), for messages
-- @treturn[2] nil
-- @treturn[2] aigc.error err (a line that is not a JSON object, or whose id is not a string or a
-- number, names its line)
-- @usage local cases = assert(runner.read_cases "cases.jsonl")
function M.read_cases (path)
  if core.file_kind(path) == "directory" then return nil, cannot_read(path) end
  local text, err = read_lines(path)
  if not text then return nil, cannot_read(path, err) end
  -- (a UTF-8 byte order mark, as Windows editors and spreadsheet exports
  -- write one, is not part of the first case: it made line 1 "not JSON")
  if text:sub(1, 3) == "\239\187\191" then text = text:sub(4) end
  local cases, lines, n = {}, {}, 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    local c, cerr = decode_case(path, line, n)
    if cerr then return nil, cerr end
    if c then
      cases[#cases + 1] = c
      lines[#cases] = n
    end
  end
  return cases, lines
end

--- The cases of a JSONL file one at a time, as they are needed: a run
-- of a million lines held them all (and the file's text), 0.9 GB.
-- `reader:next()` gives the next case and its line, nil at the end, or
-- nil, err (a line `decode_case` refuses: the file changed since it was
-- checked). Only for a regular file (it is read again after its check).
-- @tparam string path
-- @tparam[opt] string name what the messages call it (a pipe's cases kept in `path`: `spool`)
-- @treturn[1] table reader (`next`, `close`)
-- @treturn[2] nil
-- @treturn[2] aigc.error err
function M.case_reader (path, name)
  local f, err = io.open(path, "rb")
  if not f then return nil, cannot_read(name or path, err) end
  local n = 0
  local reader = {}
  function reader.next ()
    while f do
      local line = f:read("*l")
      if not line then reader.close(); return nil end
      n = n + 1
      if n == 1 and line:sub(1, 3) == "\239\187\191" then line = line:sub(4) end   -- (a BOM, as above)
      local c, cerr = decode_case(name or path, line, n)
      if cerr then reader.close(); return nil, cerr end
      if c then return c, n end
    end
  end
  function reader.close ()
    if f then f:close(); f = nil end
  end
  return reader
end

-- A new private (0600) file for spool, in $TMPDIR (else /tmp):
-- aigc-cases.PID.RANDOM, and the flock its run holds on it (core.lockfile,
-- dropped by the kernel however the run ends). os.tmpname's name (lua_
-- and six random characters) told no one whose it was: a run killed
-- (SIGKILL, a crash) left its copy of the cases for ever. Each new one
-- removes those no run holds (ours only, by name; a file another user owns
-- stays where /tmp is sticky). (The lock, not the pid: a /tmp shared with
-- a container is another pid namespace, whose live runs' pids are no
-- process here.) Made new (O_EXCL: never a file or a link already there),
-- or nil and why not: it fell back to os.tmpname's, in /tmp whatever
-- $TMPDIR said, opened again by name, unlocked (a killed run's copy of the
-- cases never removed).
local SPOOLED = "^aigc%-cases%.%d+%.%x+$"
local spool_count = 0
local function spool_file ()
  local dir = (os.getenv("TMPDIR") or ""):gsub("(.)/+$", "%1")
  if dir == "" or core.file_kind(dir) ~= "directory" then dir = "/tmp" end
  local f = io.open("/proc/self/stat", "rb")
  local pid = f and (f:read("*l") or ""):match("^(%d+)") or "0"
  if f then f:close() end
  for _, e in ipairs(core.list_dir(dir) or {}) do
    local path = dir .. "/" .. e.name
    local free = e.kind == "file" and e.name:find(SPOOLED) and core.lockfile(path, "file")
    if free then
      os.remove(path)
      free:close()
    end
  end
  local why
  for _ = 1, 3 do   -- (a name taken: another)
    -- (no /dev/urandom: a name from the clock and a count, made exclusive all the same)
    spool_count = spool_count + 1
    local hex = util.random_hex(8) or string_format("%x%x%x", os.time(), math_floor(os.clock() * 1e6), spool_count)
    local tmp = dir .. "/aigc-cases." .. pid .. "." .. hex
    local ok, err, errno = core.create_private(tmp, true)
    if ok then return tmp, core.lockfile(tmp, "file") end
    why = err
    if errno ~= 17 then break end   -- (EEXIST)
  end
  return nil, string_format("cannot make a private file in %s (%s): set TMPDIR to a folder you can write",
                            dir, tostring(why))
end

--- Keeps the cases of a pipe (stdin) in a private temporary file (0600,
-- in $TMPDIR or /tmp, locked while its run lasts: those of killed runs are
-- removed by the next), read in pieces, so that a run reads them as it reads a
-- regular file's: checked whole first, then read as it sends them. Read
-- whole into memory, a million piped cases held 0.9 GB. The caller removes
-- the file.
-- @tparam string path
-- @treturn[1] string the temporary file's path
-- @treturn[1] nil
-- @treturn[1] table|nil the lock held on it (kept while the file is read; closed or collected after)
-- @treturn[2] nil
-- @treturn[2] aigc.error err
function M.spool (path)
  local src, err, std = open_read(path)
  if not src then return nil, cannot_read(path, err) end
  local tmp, hold = spool_file()
  if not tmp then
    if not std then src:close() end
    return nil, input_error("cannot keep the cases of " .. path .. ": " .. hold)
  end
  local dst, derr = io.open(tmp, "wb")
  local ok, why = dst ~= nil, derr
  -- (pcall: Ctrl-C's "interrupted!" while it waits for the pipe leaves no file behind)
  local pok, perr = pcall(function ()
    while ok do
      local chunk = src:read(65536)
      if not chunk then break end
      ok, why = dst:write(chunk)
    end
  end)
  if not std then src:close() end
  if dst then
    local cok, cerr = dst:close()
    if ok and not cok then ok, why = false, cerr end
  end
  if not (pok and ok) then
    os.remove(tmp)
    if hold then hold:close() end
    if not pok then error(perr, 0) end
    return nil, input_error("cannot keep the cases of " .. path .. " (" .. tmp .. "): " .. M.io_why(tmp, why))
  end
  return tmp, nil, hold
end

-- A case's key (its results line's, its batch line's custom_id). An integer
-- is its digits where Lua has integers (5.3, 5.4): "%.17g" made 64-bit ids
-- (a database's, a snowflake's) one key past 2^53, 1789456123456789012 and
-- ...013 alike: two cases refused as one id, or one skipped as done on
-- resume because the other was. A float with an integer value keys as
-- that integer (1.0 read back from a results file is case 1).
local function id_key (id)
  if type(id) ~= "number" then return tostring(id) end
  local i = math_type and tointeger(id)
  return i and string_format("%d", i) or string_format("%.17g", id)
end

-- A line the runner wrote: a JSON object with an `id` and a boolean `ok`.
local function result_line (line)
  local r = json_decode(line)
  if type(r) == "table" and r.id ~= nil and type(r.ok) == "boolean" then return r end
end

local function not_results (path, n)
  return run_error(string_format("%s is not a results file (line %d is not a result line): "
    .. "refusing to write results into it", path, n))
end

local CHUNK = 65536

-- A digest of 16 lowercase hex digits as its 8 bytes, or nil (a line
-- edited by hand): a short row takes 8 bytes of it, not 16.
local function raw8 (h)
  if type(h) ~= "string" or #h ~= 16 or h:find("[^0-9a-f]") then return nil end
  local a, b = tonumber(h:sub(1, 8), 16), tonumber(h:sub(9), 16)
  return string_char(math_floor(a / 16777216), math_floor(a / 65536) % 256, math_floor(a / 256) % 256, a % 256,
                     math_floor(b / 16777216), math_floor(b / 65536) % 256, math_floor(b / 256) % 256, b % 256)
end

local function hex8 (raw)
  return (string_format("%02x%02x%02x%02x%02x%02x%02x%02x", raw:byte(1, 8)))
end

-- The `checks` of short rows, each kept once: most rows of a run share
-- one (the run's assertions), and a row names it by one byte (1 to 255);
-- past 255 of them, a row holds its own 8 bytes.
local checks_by_raw, checks_list = {}, {}

-- A byte offset as its bytes, high first (5 of them up to 1 TB).
local function raw_at (at)
  local t = {}
  repeat
    t[#t + 1] = string_char(at % 256)
    at = math_floor(at / 256)
  until at == 0
  return table_concat(t):reverse()
end

-- What a run that keeps no results (`results = false`) keeps of a done
-- line: what the summary counts of it (`pass`, the assertions') and its
-- request's digest and its `checks` (with where the line is in the file, `at`:
-- a case judged again reads its answer there), as a string when it has no
-- assertions: "1" or "0" for pass, then the digest's 8 bytes, then the
-- checks (a byte naming them in `checks_list`, or "\0" and their 8 bytes)
-- and `at`'s bytes (a line without a digest: pass alone; without checks:
-- pass and digest). The lines of a million done cases, whole, were 1.4 GB;
-- the row fits Lua's short strings. (Its usage and cost are not kept: a
-- run's are its client's.)
local function slim_row (r, at)
  local digest, checks = raw8(r.digest), raw8(r.checks)
  if type(r.assertions) == "table" and next(r.assertions) ~= nil or r.digest ~= nil and not digest
     or r.checks ~= nil and not (checks and digest) or math_floor(at) ~= at then
    return { ok = true, pass = r.pass, digest = r.digest, checks = r.checks, assertions = r.assertions, at = at }
  end
  local tag = checks and checks_by_raw[checks]
  if checks and not tag and #checks_list < 255 then
    checks_list[#checks_list + 1] = r.checks
    tag = string_char(#checks_list)
    checks_by_raw[checks] = tag
  end
  return (r.pass == true and "1" or "0") .. (digest or "") .. (checks and (tag or "\0" .. checks) .. raw_at(at) or "")
end

--- Reads a results file: the last `ok` result of each case id. Only a
-- regular file is read (a pipe, a terminal or `/dev/stdout` is written to,
-- never read: reading it would wait for ever). A file whose lines are not
-- all result lines (the cases file, notes) is refused, so that a run never
-- writes into it. A last line without its newline is kept when it is a
-- result line; a fragment that is not JSON (a killed run's last write) is
-- to be dropped.
-- @tparam string path
-- @tparam[opt] boolean slim keep of each line only what a run counts (`done_row` reads it)
-- @treturn[1] table|nil results by id (nil when there is no regular file to resume from)
-- @treturn[1] string|nil what the file needs before results are appended: "newline" (its last
-- line has none), "partial" (rewrite it as its complete lines), or nil
-- @treturn[1] integer the complete lines' length in bytes
-- @treturn[2] nil
-- @treturn[2] aigc.error err (not a results file, or unreadable)
-- @usage local done = runner.read_results "results.jsonl"
function M.read_results (path, slim)
  if core.file_kind(path) ~= "file" then return nil end
  local f, rerr = io.open(path, "rb")
  if not f then return nil, run_error("cannot read " .. path .. ": " .. M.io_why(path, rerr)) end
  local done, n, complete, any, parts = {}, 0, 0, false, {}
  local function take (line, at)
    n = n + 1
    if not line:find("%S") then return true end
    any = true
    local r = result_line(line)
    if r and r.ok == true then done[id_key(r.id)] = slim and slim_row(r, at) or r end
    return r ~= nil
  end
  -- (read a piece at a time, not whole: a million lines' text was 128 MB
  -- more at the run's start)
  while true do
    local chunk = f:read(CHUNK)
    if not chunk then break end
    local from = 1
    while true do
      local nl = chunk:find("\n", from, true)
      if not nl then parts[#parts + 1] = chunk:sub(from); break end
      parts[#parts + 1] = chunk:sub(from, nl - 1)
      local line = table_concat(parts)
      parts = {}
      complete = complete + #line + 1
      if not take(line, complete - #line - 1) then f:close(); return nil, not_results(path, n) end
      from = nl + 1
    end
  end
  f:close()
  local had = any
  local rest = table_concat(parts)
  if rest == "" then return done, nil, complete end
  if take(rest, complete) then return done, "newline", complete + #rest end
  -- Not a result line: a killed run's partial write (it is not JSON, and
  -- the file has results, or it starts as the runner's lines do), or not ours.
  if json_decode(rest) == nil and (next(done) or had or rest:find('^{"[%w_]+":')) then
    return done, "partial", complete
  end
  return nil, not_results(path, n)
end

--- A done line as `read_results(path, true)` keeps it, as a table (`ok`,
-- `pass`, `digest`, `checks`, `assertions`, `at`).
-- @tparam string|table row
-- @treturn table
function M.done_row (row)
  if type(row) ~= "string" then return row end
  local r = { ok = true, pass = row:sub(1, 1) == "1", digest = #row >= 9 and hex8(row:sub(2, 9)) or nil }
  if #row < 10 then return r end
  local tag, from = row:byte(10), 11
  if tag == 0 then r.checks, from = hex8(row:sub(11, 18)), 19 else r.checks = checks_list[tag] end
  local at = 0
  for i = from, #row do at = at * 256 + row:byte(i) end
  r.at = at
  return r
end

--- The result line of case `key` at byte `at` of results file `path` (a
-- done row kept short: its answer, to judge again), or nil when it is no
-- longer there.
-- @tparam string path
-- @tparam integer at
-- @tparam string key the case's `id_key`
-- @treturn table|nil
function M.line_at (path, at, key)
  local f = io.open(path, "rb")
  if not f then return nil end
  local line = f:seek("set", at) and f:read("*l")
  f:close()
  local r = line and result_line(line)
  if r and r.ok == true and id_key(r.id) == key then return r end
end

-- Opens the results file for appending, dropping a killed run's partial
-- last line first (or ending a last line that lacks its newline). Returns
-- the file and the done results by id.
local function open_out (spec)
  local path = spec.out
  if not path then return nil, {} end
  local done, fix, complete = M.read_results(path, spec.results == false)
  if not done and fix then return nil, nil, fix end
  if done and spec.resume == false then
    return nil, nil, run_error(path .. " exists: remove it, or resume from it")
  end
  -- (cut in place: no free space needed, no line but the partial one
  -- lost; a copy to OUT.partial wrote through a link planted there, and
  -- waited for ever on a FIFO)
  if fix == "partial" then
    local ok, err = core.truncate(path, complete)
    if not ok then return nil, nil, run_error("cannot rewrite " .. path .. ": " .. tostring(err)) end
  end
  local f, err = io.open(path, "ab")
  if not f then return nil, nil, run_error("cannot open " .. path .. ": " .. M.io_why(path, err)) end
  if fix == "newline" then f:write("\n") end
  return f, done or {}
end

--- Flushes the results file `f` opened at `path`, and checks that `path`
-- still names a file: true, or nil and why not. Removed (or renamed away)
-- during a run, its lines went on into the unlinked file, lost, and the
-- run ended "ok" with nothing to resume from (every case paid again): it
-- stops at the next line now. (A stat per line: microseconds beside a call.)
-- @tparam file f
-- @tparam string path
function M.flush_out (f, path)
  local ok, err = f:flush()
  if not ok then return nil, err end
  if not core.file_kind(path) then
    return nil, "it was removed during the run (the lines written since are lost: run again to resume)"
  end
  return true
end

--- A result's line in the results file: its JSON (without `parsed` when that
-- cannot be JSON) scrubbed of the client's secrets, as the prompt log keeps
-- it: a reply that repeats the key (a server, a proxy echoing it) is not
-- written to disk. The run's result and `on_result` keep the text as it came.
-- Failing closed: a line that could not be scrubbed (no memory for it)
-- keeps no server text (`text`, `parsed`, `error`).
-- @tparam table client
-- @tparam table result
-- @treturn string
function M.result_line (client, result)
  local ok, line = pcall(json_encode, result)
  if not ok then
    result.parsed = nil
    line = json_encode(result)
  end
  local engine = type(client) == "table" and rawget(client, "_engine") or nil
  if engine == nil then return line end
  local sok, clean = util.pcall_passing_interrupts(engine.scrub, engine, line)
  if sok and type(clean) == "string" then return clean end
  local kept = {}
  for k, v in pairs(result) do if k ~= "text" and k ~= "parsed" and k ~= "error" then kept[k] = v end end
  kept.error = not result.ok and { message = "[text withheld: it could not be scrubbed of secrets]" } or nil
  return json_encode(kept)
end

-- The lock of a results file (`OUT.lock`, see core.lockfile): a second run
-- on the same file is refused rather than running every case again beside
-- the first. Only a regular file (or one to make) is locked: a pipe or
-- /dev/stdout is not shared. Where no lock can be made (a read-only
-- folder), the run goes on without one. The lock is beside the file
-- itself (util.real_path): two runs through two links to one file took
-- two locks and both appended to it, each case run twice (a dangling
-- link's lock was beside the link, not the target it is to make: followed
-- now). And a file that exists is locked itself too (an flock is its
-- inode's): two hard links to one file are two names, each its OUT.lock.
local function locked (path, name, pid)
  return run_error(string_format("%s is in use: another run%s is writing it (its lock is %s): "
    .. "wait for it to end, or give another results file", path, pid and " (pid " .. pid .. ")" or "", name),
    { code = "locked" })
end

local function lock_out (path)
  if not path then return nil end
  local kind = core.file_kind(path)
  if kind and kind ~= "file" then return nil end
  local name = util.real_path(path) .. ".lock"
  local lock, _, code, pid = core.lockfile(name)
  if code == "locked" then return nil, locked(path, name, pid) end
  if core.file_kind(path) ~= "file" then return lock end
  local itself, _, code2 = core.lockfile(path, "file")
  if code2 == "locked" then
    if lock then lock:close() end
    return nil, locked(path, "the file itself, reached through another of its names", nil)
  end
  if not (lock and itself) then return lock or itself end
  return { close = function () itself:close(); lock:close() end }
end

--- Where a batch run keeps its batch's id (`OUT.batch`): beside a regular
-- results file (or one to make), else nil -- a device or a pipe
-- (`--out /dev/stdout`) keeps no results to resume, and its OUT.batch went
-- beside it, into /dev (as root). A descriptor's name that leads to a file
-- (`--out /dev/stdout > r.jsonl`): beside that file (/dev/stdout.batch was
-- made in /dev as root; /dev/fd/1.batch could not be, and the run failed).
-- @tparam string|nil out
-- @treturn string|nil
function M.batch_file (out)
  if not out then return nil end
  local kind = core.file_kind(out)
  if kind and kind ~= "file" then return nil end
  if kind and util.names_descriptor(out) then
    return util.real_path(out) .. ".batch"
  end
  return out .. ".batch"
end

-- }======================================================

M.run_error, M.input_error, M.id_problem, M.id_key, M.open_out, M.lock_out =
  run_error, input_error, id_problem, id_key, open_out, lock_out

return M
