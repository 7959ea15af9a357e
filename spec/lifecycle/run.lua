--- The random lifecycle tester of aigc (issue 10): seeded, reproducible
-- sequences of calls, callbacks, cancels, closes, finalizers and server
-- faults, each run in a child process against the bundled server, with the
-- lifecycle contract checked after every operation (spec/lifecycle/child.lua)
-- and the sanitizers' reports read from the child's stderr.
--
--   lua5.4 spec/lifecycle/run.lua [--seconds 60] [--seed N] [--max-ops 40]
--       [--lua lua5.4] [--cpath './?.so'] [--path 'lua/?.lua;lua/?/init.lua']
--       (--lua luajit, lua5.1...: --cpath defaults to that Lua's build, build/jit/?.so...)
--       [--devserver FILE] [--ignore name,name] [--findings FILE] [--no-shrink]
--       [--shrink-runs 40] [--child-timeout 60] [--verbose]
--       [--drain S]   (the child's bound on the drain without progress; default:
--                      the longest request's timeouts + 6 s; a small one shows
--                      what a loaded machine would: seed 5100383 sequence 394)
--   lua5.4 spec/lifecycle/run.lua --seed N --sequence I [--keep 1,3,5-9] ...   one sequence
--   lua5.4 spec/lifecycle/run.lua --ops FILE ...                             an op list file
--   lua5.4 spec/lifecycle/run.lua --layers ...   the Lua layers above the core instead
--       (conversations, tools, strategies, tasks, sentences, hooks, cache, ratelimit:
--       spec/lifecycle/gen_layers.lua draws, spec/lifecycle/layers_child.lua runs and checks)
--
-- Under ASan + UBSan: `make asan`, then
--   lua5.4 spec/lifecycle/run.lua --lua build/asan/lua --cpath 'build/asan/?.so'
-- Against another checkout's build: --cpath '/work/wt-core/?.so' --path '/work/wt-core/lua/?.lua;...'
--
-- Sequence I of a run with seed N has its own seed (gen.sequence_seed), so
-- `--seed N --sequence I` replays it alone. A failing sequence is shrunk by
-- deleting operations while it still fails the same way; the runner prints
-- the shrunk list and the one-line command that replays it (`--keep` lists
-- the operations kept). The last line is
--   lifecycle: N sequences, M operations, K failures[, S skipped (...)]
-- and the exit status is non-zero when K > 0. A sequence is skipped only
-- when LeakSanitizer's own tracer fails at exit twice in a row ("Tracer
-- caught signal 11 ... LeakSanitizer has encountered a fatal error", seen
-- under load) after the child ran every operation and passed every check:
-- an environment problem, not a finding.
--
-- Failure classes: crash:SIGNAL (the child died by a signal), asan:TYPE and
-- ubsan (a sanitizer report), leak (LeakSanitizer), hang (the child did not
-- end within --child-timeout; spec/lifecycle/hangwatch.sh first records whether
-- it spins or sleeps, its C backtrace and its Lua traceback: the FAIL report
-- prints that diagnosis), invariant:NAME (the model's check NAME, see
-- child.lua), error-lost (a callback error that no channel reported, not
-- even stderr), child-error (the child failed otherwise).

local here = arg[0]:match("^(.*)/[^/]*$") or "."
local root = here .. "/../.."

local args = { seconds = "60", ["max-ops"] = "40", lua = "lua5.4",
               path = "lua/?.lua;lua/?/init.lua", ["shrink-runs"] = "40", ["child-timeout"] = "60" }
local flags = {}
do
  local i = 1
  while arg[i] do
    local k = arg[i]:match("^%-%-(.+)$")
    if not k then io.stderr:write("run.lua: unexpected argument ", arg[i], "\n"); os.exit(2) end
    if k == "no-shrink" or k == "verbose" or k == "layers" then
      flags[k] = true
      i = i + 1
    else
      if arg[i + 1] == nil then io.stderr:write("run.lua: --", k, " needs a value\n"); os.exit(2) end
      args[k] = arg[i + 1]
      i = i + 2
    end
  end
end

-- The build the children load, by default the one `make LUA_VERSION=V` made
-- for --lua: ./?.so for lua5.4, build/V/?.so for lua5.1-5.3 and luajit.
if not args.cpath then
  local name = args.lua:match("([^/]+)$")
  local v = name == "luajit" and "jit" or name:match("^lua(5%.%d)$")
  args.cpath = (v == nil or v == "5.4") and "./?.so" or ("build/" .. v .. "/?.so")
end

package.path = here .. "/?.lua;" .. root .. "/spec/support/?.lua;" .. args.path .. ";" .. package.path
local gen = require(flags.layers and "gen_layers" or "gen")
local CHILD = flags.layers and "layers_child.lua" or "child.lua"
local devserver = require "devserver"
local proc = require "procutil"
local socket = require "socket"

local seed = tonumber(args.seed) or (os.time() % 1000000)
local budget = tonumber(args.seconds)
local max_ops = tonumber(args["max-ops"])
local child_timeout = tonumber(args["child-timeout"])
local shrink_runs = tonumber(args["shrink-runs"])
-- The children's files: $AIGC_LIFECYCLE_DIR (scripts/run-tests.sh gives each
-- suite its own), else a folder of this run's own under build/lifecycle,
-- removed at the end when nothing failed. (One shared folder let two runs
-- in one tree overwrite each other's child-N files: a child's output read
-- back was the other run's, "child-error, exit 0" with no cause.)
local workdir, own_workdir = os.getenv("AIGC_LIFECYCLE_DIR"), false
if workdir then
  os.execute("mkdir -p " .. proc.quote(workdir))
else
  os.execute("mkdir -p " .. proc.quote(root .. "/build/lifecycle"))
  local p = io.popen("mktemp -d " .. proc.quote(root .. "/build/lifecycle/run-XXXXXX"))
  workdir = p and p:read("*l")
  if p then p:close() end
  if not workdir then io.stderr:write("run.lua: mktemp -d failed under build/lifecycle\n"); os.exit(2) end
  own_workdir = true
end
local t0 = socket.gettime()

local function printf (...) io.stdout:write(string.format(...)); io.stdout:flush() end

-- {======================================================
-- The server and what it (and the build) can do
-- =======================================================

-- devserver.start finds the server's script as `aigc.devserver` on package.path.
if args.devserver then
  local dir = args.devserver:match("^(.*)/aigc/devserver%.lua$")
  if not dir then io.stderr:write("run.lua: --devserver must end in aigc/devserver.lua\n"); os.exit(2) end
  package.path = dir .. "/?.lua;" .. package.path
end
if not package.searchpath("aigc.devserver", package.path) then
  io.stderr:write("run.lua: aigc.devserver not found in --path\n"); os.exit(2)
end
local srv = devserver.start { pause_ms = 2, exit_after = math.floor(budget * 4 + 3600) }

local faults = {}
for _, f in ipairs(gen.BASE_FAULTS) do faults[#faults + 1] = f end
-- Whether the server knows a fault: an unknown name is a 400 that names it.
-- Only the status line is read, with a deadline (a known fault may hold
-- the response open forever: hang, comment-drip).
local function knows_fault (spec)
  local body = '{"model":"aigc-dev","messages":[{"role":"user","content":"Hi"}]}'
  local tcp = assert(socket.tcp())
  tcp:settimeout(2)
  local ok = tcp:connect("127.0.0.1", srv.port)
  if not ok then tcp:close(); return false end
  tcp:send(table.concat({
    "POST /v1/chat/completions HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json",
    "Content-Length: " .. #body, "x-aigc-fault: " .. spec, "Connection: close", "", body }, "\r\n"))
  local line = tcp:receive("*l")
  tcp:close()
  if not line then return true end   -- nothing within 2 s: a fault that holds the response
  return not line:match("^HTTP/1%.%d 400")
end

local missing = {}
for _, f in ipairs(gen.NEW_FAULTS) do
  if knows_fault(f) then faults[#faults + 1] = f else missing[#missing + 1] = f end
end

local function run_lua_snippet (code)
  local file = workdir .. "/probe.lua"
  local fh = assert(io.open(file, "w"))
  fh:write("package.path = ", string.format("%q", args.path), " .. ';' .. package.path\n",
           "package.cpath = ", string.format("%q", args.cpath), " .. ';' .. package.cpath\n", code)
  fh:close()
  local ok = os.execute(args.lua .. " " .. proc.quote(file) .. " >/dev/null 2>&1")
  os.remove(file)
  return ok == true
end
local has_deadline = run_lua_snippet(
  "assert(require('aigc').client { base_url = 'http://127.0.0.1:9/v1', deadline = 1 })")

-- }======================================================


-- {======================================================
-- Running one op list in a child
-- =======================================================

local SAN_ENV = "ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=23:detect_stack_use_after_return=0"
  .. " LSAN_OPTIONS=" .. proc.quote("suppressions=" .. root .. "/spec/support/lsan.supp:print_suppressions=0:use_tls=0")
  .. " UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1"

local SIGNALS = { [4] = "SIGILL", [6] = "SIGABRT", [7] = "SIGBUS", [8] = "SIGFPE", [9] = "SIGKILL",
                  [11] = "SIGSEGV", [13] = "SIGPIPE", [15] = "SIGTERM" }

local nchild = 0
local total_ops = 0
local slowest = 0   -- the longest a passing sequence took (to size --child-timeout)

-- The guessed owner lane of a failure, from the first frame of aigc's own
-- code in a sanitizer's stack, or from the failing operation.
local function owner_of (err, out, last_op)
  for file in err:gmatch("#%d+ 0x%x+ in [^\n]- ([%w_/%.%-]+%.c):%d+") do
    local base = file:match("([^/]+)%.c$")
    if base == "engine" or base == "request" or base == "core" then return "core (" .. base .. ".c)" end
    if base == "json" or base == "jsonlua" or base == "accum" or base == "error" or base == "sse" or base == "buf" then
      return "codec (" .. base .. ".c)"
    end
  end
  if out:find("violation secret%-leak") then return "codec (redaction)" end
  local v = out:match("\nviolation ([^\n]*)") or ""
  if v:find("%((tools|schema|say)[,)]") or v:find("%(tools") or v:find("%(schema") or v:find("%(say")
     or v:find("best_of") or v:find("race") or v:find("conversation") then
    return "lua (dialogue layer)"
  end
  if out:find("sleeping tasks: [1-9]") then return "lua (tasks)" end
  if last_op and (last_op:find('"tools"') or last_op:find('"schema"') or last_op:find('"say"')
                  or last_op:find('"best_of"') or last_op:find('"race"')) then
    return "lua (dialogue layer) or core"
  end
  return "core"
end

-- The guessed owner of a hang, from hangwatch.sh's diagnosis (nil: no guess).
local function hang_owner (diagnosis)
  if diagnosis:find("cpu: SPINNING", 1, true) and diagnosis:find("no frame of aigc C code", 1, true) then
    return "a loop in Lua code (LuaJIT: a compiled pairs() loop inside __gc, LuaJIT #1045? see compat.lua)"
  end
  if diagnosis:find("cpu: SLEEPING", 1, true) and diagnosis:find("lua/aigc/task.lua", 1, true) then
    return "lua (task scheduler: a wait whose wake-up never came?) or core (a request that never ends)"
  end
end

--- Runs an op list; returns a result table:
-- { fail = category or nil, detail =, ops_run =, out =, err = }
-- Errors no channel reported in the process must at least be on stderr:
-- "error-lost" (r.detail says which) when one is not.
local function lost_error (r, out, err)
  for tag, class in out:gmatch("unreported (LCTAG#%d+#) (%a+)") do
    if not err:find(tag, 1, true) then
      r.detail = tag .. " (" .. class .. "): raised by a callback, reported nowhere (not to error_handler, "
        .. "not by step(), not on stderr)"
      return "error-lost"
    end
  end
end

local function run_child (ops, counted)
  nchild = nchild + 1
  local base = string.format("%s/child-%d", workdir, nchild % 4)
  local ops_file, out_file, err_file = base .. ".ops.lua", base .. ".out", base .. ".err"
  local hang_file = base .. ".hang"
  gen.write(ops_file, ops)
  -- hangwatch.sh is timeout(1) that first looks at a child still running at
  -- the limit (spinning or sleeping, C backtrace, Lua traceback) into hang_file.
  local cmd = table.concat({
    "sh", proc.quote(here .. "/hangwatch.sh"), tostring(child_timeout), proc.quote(hang_file),
    "env", SAN_ENV, args.lua, proc.quote(here .. "/" .. CHILD),
    "--ops", proc.quote(ops_file), "--base-url", proc.quote(srv.base_url),
    "--path", proc.quote(args.path), "--cpath", proc.quote(args.cpath),
    args.ignore and ("--ignore " .. proc.quote(args.ignore)) or "",
    args.drain and ("--drain " .. proc.quote(args.drain)) or "",
    ">", proc.quote(out_file), "2>", proc.quote(err_file), "</dev/null",
  }, " ")
  local started = socket.gettime()
  local _, how, code = os.execute(cmd)
  local took = socket.gettime() - started
  local out = proc.read_file(out_file) or ""
  local err = proc.read_file(err_file) or ""
  local r = { out = out, err = err, code = code, how = how, took = took }
  local last_op
  for i, line in out:gmatch("op (%d+) ([^\n]*)") do r.ops_run = tonumber(i); last_op = line end
  r.last_op = last_op
  local finished = out:match("\ndone ops=") or out:match("^done ops=")
  if finished then r.ops_run = #ops end
  if counted then
    total_ops = total_ops + math.min(r.ops_run or 0, #ops)
    if finished and took > slowest then slowest = took end
  end

  local asan = err:match("ERROR: AddressSanitizer: ([%w%-]+)")
  local violation = out:match("\nviolation ([%w%-]+)") or out:match("^violation ([%w%-]+)")
  if asan then
    r.fail = "asan:" .. asan
  elseif err:find("runtime error:", 1, true) then
    r.fail = "ubsan"
  elseif how == "exit" and code == 124 then   -- (hangwatch.sh: the limit was reached)
    r.fail = "hang"
  elseif how == "signal" or (how == "exit" and code > 128 and SIGNALS[code - 128]) then
    local sig = how == "signal" and code or code - 128
    r.fail = "crash:" .. (SIGNALS[sig] or ("signal " .. sig))
  elseif violation then
    r.fail = "invariant:" .. violation
  elseif err:find("ERROR: LeakSanitizer", 1, true) then
    r.fail = "leak"
  elseif finished and err:find("LeakSanitizer has encountered a fatal error", 1, true) then
    -- The child ran every operation and its checks, then LSan's own tracer
    -- failed at exit ("Tracer caught signal 11": it happens on a loaded
    -- machine): no verdict on leaks, nothing about aigc. The caller runs it
    -- again, then counts it skipped. (Lost errors are still looked for.)
    r.fail = lost_error(r, out, err) or "lsan-internal"
  elseif not finished or code ~= 0 then
    r.fail = "child-error"
  else
    r.fail = lost_error(r, out, err)
  end
  if r.fail and not r.detail then
    if violation then
      r.detail = out:match("violation ([^\n]*)")
    elseif asan or r.fail == "ubsan" or r.fail == "leak" then
      local lines = {}
      for line in err:gmatch("[^\n]+") do
        if line:find("ERROR:") or line:find("runtime error") or line:find("^%s+#%d") then
          lines[#lines + 1] = line
          if #lines >= 14 then break end
        end
      end
      r.detail = table.concat(lines, "\n")
    elseif r.fail == "hang" then
      r.detail = "no end within " .. child_timeout .. " s; last operation started: " .. tostring(last_op)
        .. "\n" .. (proc.read_file(hang_file) or "(no hang diagnosis: " .. hang_file .. " missing)")
    else
      local tail = err:sub(-1500)
      r.detail = string.format("exit %s %s; last operation started: %s; stderr: %s", tostring(how), tostring(code),
        tostring(last_op), tail)
    end
    r.owner = owner_of(err, out, last_op)
    if r.fail == "hang" then r.owner = hang_owner(r.detail) or r.owner end
  end
  return r
end

-- }======================================================


-- {======================================================
-- Shrinking
-- =======================================================

local function ranges (idx)
  local parts, i = {}, 1
  while i <= #idx do
    local j = i
    while j < #idx and idx[j + 1] == idx[j] + 1 do j = j + 1 end
    parts[#parts + 1] = (i == j) and tostring(idx[i]) or (idx[i] .. "-" .. idx[j])
    i = j + 1
  end
  return table.concat(parts, ",")
end

local function parse_ranges (s)
  local set = {}
  for part in s:gmatch("[^,]+") do
    local a, b = part:match("^(%d+)%-(%d+)$")
    if a then for i = tonumber(a), tonumber(b) do set[i] = true end
    else set[tonumber(part)] = true end
  end
  return set
end

local function select (ops, idx)
  local out = {}
  for i, k in ipairs(idx) do out[i] = ops[k] end
  return out
end

--- Deletes operations while the failure stays the same class (ddmin by
-- chunks, halving); returns the kept indices and the last failing result.
local function shrink (ops, idx, first, limit)
  local cur, best = idx, first
  local runs = 0
  local chunk = math.max(1, #cur // 2)
  local stop_at = t0 + math.max(budget * 1.5, budget + 60)
  while runs < limit and socket.gettime() < stop_at do
    local progressed = false
    local i = 1
    while i <= #cur and runs < limit and socket.gettime() < stop_at do
      local cand = {}
      for j = 1, #cur do if j < i or j >= i + chunk then cand[#cand + 1] = cur[j] end end
      if #cand > 0 then
        runs = runs + 1
        local r = run_child(select(ops, cand))
        if r.fail == first.fail then
          cur, best, progressed = cand, r, true
        else
          i = i + chunk
        end
      else
        i = i + chunk
      end
    end
    if not progressed then
      if chunk == 1 then break end
      chunk = math.max(1, chunk // 2)
    end
  end
  return cur, best, runs
end

-- }======================================================


-- {======================================================
-- Findings
-- =======================================================

local function replay_command (seq, keep)
  local parts
  if seq then
    parts = { "lua5.4 spec/lifecycle/run.lua --seed", tostring(seed), "--sequence", tostring(seq) }
  else
    parts = { "lua5.4 spec/lifecycle/run.lua --ops", proc.quote(args.ops) }
  end
  if keep then parts[#parts + 1] = "--keep " .. keep end
  if flags.layers then parts[#parts + 1] = "--layers" end
  if args.lua ~= "lua5.4" then parts[#parts + 1] = "--lua " .. proc.quote(args.lua) end
  if args.cpath ~= "./?.so" then parts[#parts + 1] = "--cpath " .. proc.quote(args.cpath) end
  if args.path ~= "lua/?.lua;lua/?/init.lua" then parts[#parts + 1] = "--path " .. proc.quote(args.path) end
  if args.devserver then parts[#parts + 1] = "--devserver " .. proc.quote(args.devserver) end
  if args.ignore then parts[#parts + 1] = "--ignore " .. proc.quote(args.ignore) end
  if args.drain then parts[#parts + 1] = "--drain " .. proc.quote(args.drain) end
  if max_ops ~= 40 then parts[#parts + 1] = "--max-ops " .. max_ops end
  return table.concat(parts, " ")
end

local function append_finding (text)
  if not args.findings then return end
  local f = io.open(args.findings, "a")
  if f then f:write(text); f:close() end
end

-- }======================================================


-- {======================================================
-- The run
-- =======================================================

printf("lifecycle: seed %d, %s s, %sgenerator v%d, build %s (cpath %s), server %s\n", seed, args.seconds,
  flags.layers and "the layers' " or "", gen.VERSION, args.lua, args.cpath, srv.base_url)
if #missing > 0 then
  printf("lifecycle: the server does not know these faults yet, not drawn: %s\n", table.concat(missing, " "))
end
if not has_deadline then
  printf("lifecycle: the build has no `deadline` option: comment-drip is not drawn\n")
end

local gen_opts = { faults = faults, max_ops = max_ops, deadline = has_deadline }
local sequences, failures = 0, 0
local shrunk_classes = {}
local classes = {}

local function handle_failure (seq, ops, idx, r)
  failures = failures + 1
  classes[r.fail] = (classes[r.fail] or 0) + 1
  printf("\nFAIL sequence %s (seed %d): %s\n  %s\n  owner (guess): %s\n", tostring(seq), seed, r.fail,
    tostring(r.detail):gsub("\n", "\n  "), r.owner or "?")
  if flags["no-shrink"] or shrunk_classes[r.fail] then
    printf("  replay: %s\n", replay_command(seq, idx and #idx < #ops and ranges(idx) or nil))
    return
  end
  shrunk_classes[r.fail] = true
  -- (each try of a hanging list costs the whole --child-timeout)
  local kept, best, runs = shrink(ops, idx, r, r.fail == "hang" and math.min(shrink_runs, 8) or shrink_runs)
  local again = 0
  for _ = 1, 2 do
    if run_child(select(ops, kept)).fail == r.fail then again = again + 1 end
  end
  local lines = {}
  for _, k in ipairs(kept) do lines[#lines + 1] = string.format("  %3d  %s", k, gen.describe(ops[k])) end
  local keep = #kept < #ops and ranges(kept) or nil
  printf("  shrunk to %d of %d operations in %d runs (fails again %d of 2 times):\n%s\n  symptom: %s\n"
    .. "  replay: %s\n", #kept, #ops, runs, again, table.concat(lines, "\n"), tostring(best.detail):gsub("\n", "\n  "),
    replay_command(seq, keep))
  append_finding(string.format("\n## %s — %s (owner, guess: %s)\n\n- generator v" .. gen.VERSION
    .. ", build: `%s` cpath `%s` path `%s`\n"
    .. "- replay: `%s`\n- reproduced %d of 2 re-runs after shrinking\n- symptom:\n\n```\n%s\n```\n"
    .. "- operations (%d of %d):\n\n```lua\n%s\n```\n",
    os.date("!%Y-%m-%d %H:%M UTC"), best.fail, best.owner or r.owner or "?", args.lua, args.cpath, args.path,
    replay_command(seq, keep), again, tostring(best.detail), #kept, #ops,
    table.concat(lines, "\n")))
end

-- Runs a sequence, counted. LeakSanitizer's own fatal error at exit (the
-- child passed everything else) is an environment problem: the sequence is
-- run again once, and if LSan fails the same way it is skipped, with a note.
local lsan_skipped = 0
local function run_counted (ops, seq)
  local r = run_child(ops, true)
  if r.fail ~= "lsan-internal" then return r end
  printf("note: sequence %s: LeakSanitizer failed internally at exit; running it again\n", tostring(seq))
  r = run_child(ops, false)
  if r.fail == "lsan-internal" then
    lsan_skipped = lsan_skipped + 1
    printf("note: sequence %s skipped: LeakSanitizer failed internally again (%s); every operation ran and "
      .. "passed its checks, no verdict on leaks\n", tostring(seq),
      r.err:match("Tracer caught signal %d+") or "fatal error")
    r.fail = nil
  end
  return r
end

if args.ops then
  local ops = gen.read(args.ops)
  local idx = {}
  local keep = args.keep and parse_ranges(args.keep)
  for i = 1, #ops do if not keep or keep[i] then idx[#idx + 1] = i end end
  sequences = 1
  local r = run_counted(select(ops, idx), nil)
  if r.fail then
    if args.keep then flags["no-shrink"] = true end
    handle_failure(nil, ops, idx, r)
  end
elseif args.sequence then
  local seq = tonumber(args.sequence)
  local ops = gen.sequence(gen.sequence_seed(seed, seq), gen_opts)
  local idx = {}
  local keep = args.keep and parse_ranges(args.keep)
  for i = 1, #ops do if not keep or keep[i] then idx[#idx + 1] = i end end
  if flags.verbose then
    for _, k in ipairs(idx) do printf("  %3d  %s\n", k, gen.describe(ops[k])) end
  end
  sequences = 1
  local r = run_counted(select(ops, idx), seq)
  if flags.verbose then io.stdout:write(r.out) end
  if r.fail then
    if args.keep then flags["no-shrink"] = true end
    handle_failure(seq, ops, idx, r)
  end
else
  local seq = 0
  while socket.gettime() - t0 < budget do
    seq = seq + 1
    local ops = gen.sequence(gen.sequence_seed(seed, seq), gen_opts)
    local idx = {}
    for i = 1, #ops do idx[i] = i end
    sequences = sequences + 1
    local r = run_counted(ops, seq)
    if flags.verbose then
      printf("sequence %d: %d operations, %.1f s, %s\n", seq, #ops, r.took or 0, r.fail or "ok")
    end
    if r.fail then handle_failure(seq, ops, idx, r) end
  end
end

srv:stop()
if failures > 0 then
  local list = {}
  for k, v in pairs(classes) do list[#list + 1] = k .. " ×" .. v end
  table.sort(list)
  printf("\nfailure classes: %s\n", table.concat(list, ", "))
end
printf("lifecycle: the slowest finished sequence took %.1f s (a sequence is a hang after %d s)\n", slowest,
  child_timeout)
-- (the last line; scripts/run-tests.sh reads it)
printf("lifecycle: %d sequences, %d operations, %d failures%s\n", sequences, total_ops, failures,
  lsan_skipped > 0 and string.format(", %d skipped (LeakSanitizer's own fatal error, twice)", lsan_skipped) or "")
if own_workdir and failures == 0 then os.execute("rm -rf " .. proc.quote(workdir)) end
os.exit(failures == 0 and 0 or 1)
