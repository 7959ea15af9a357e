--- Runs a Lua script in a child interpreter with this checkout's aigc, for
-- the specs whose failure would be a crash (a crash in the child is a
-- failed assertion, not a dead test run), that need a signal sent to the
-- process (Ctrl-C), or that need the test host's allocator limit.
--
-- The child uses the same Lua and build as the specs: the ASan suites run
-- with `--cpath=build/asan/?.so` (LuaJIT's: build/asan-jit/?.so) and the
-- interpreter beside it (build/asan/lua), so a child gets those too;
-- otherwise the interpreter under test and its build, which `make test`
-- exports for each cell of its matrix ($AIGC_LUA, $AIGC_CPATH,
-- $AIGC_LUA_VERSION), else $LUA or lua5.4 and ./aigc/core.so. Runs on Lua
-- 5.1-5.4 and LuaJIT.
--
-- @usage
-- local luachild = require "luachild"
-- local r = luachild.run([[ local aigc = require "aigc" ... print("ok") ]], { args = { url } })
-- assert.equal(0, r.status, r.stderr)

local proc = require "procutil"

local M = {}

local function getenv (name)
  local v = os.getenv(name)
  if v ~= nil and v ~= "" then return v end
  return nil
end

-- The folder of the ASan build this process loads aigc from (build/asan,
-- build/asan-jit...), or nil.
local function asan_build ()
  return package.cpath:match("(build/asan[%w.%-]*)/%?%.so")
end

--- The interpreter for children: the sanitizer host under an ASan suite,
-- else the interpreter under test ($AIGC_LUA), else $LUA or lua5.4.
-- @treturn string
-- @usage local lua = luachild.interpreter()
function M.interpreter ()
  local asan = asan_build()
  if asan then return asan .. "/lua" end
  return getenv("AIGC_LUA") or getenv("LUA") or "lua5.4"
end

-- The cpath entry of the build children load: the ASan one, else the one
-- under test, else ./?.so.
local function child_cpath ()
  local asan = asan_build()
  if asan then return asan .. "/?.so" end
  return getenv("AIGC_CPATH") or "./?.so"
end

-- How to compile and link spec/support/lua_host.c for the Lua under test.
local HOST_FLAGS = {
  ["5.1"] = "-I/usr/include/lua5.1 %s -llua5.1", ["5.2"] = "-I/usr/include/lua5.2 %s -llua5.2",
  ["5.3"] = "-I/usr/include/lua5.3 %s -llua5.3", ["5.4"] = "-I/usr/include/lua5.4 %s -llua5.4",
  jit = "-I/usr/include/luajit-2.1 -I/usr/include/lua5.1 %s -lluajit-5.1",
}

--- The test host (spec/support/lua_host.c) with `aigc_host_memlimit`: the
-- ASan one under the ASan suite, else a plain build made on first use in
-- build/host/lua. Returns nil and why when it cannot be built.
-- @treturn string|nil
-- @usage local host = assert(luachild.host())
function M.host ()
  local asan = asan_build()
  if asan then return asan .. "/lua" end
  local v = getenv("AIGC_LUA_VERSION") or "5.4"
  local flags = HOST_FLAGS[v]
  if not flags then return nil, "no host build for Lua " .. v end
  local dir = v == "5.4" and "build/host" or ("build/host-" .. v)
  local out = dir .. "/lua"
  local src = "spec/support/lua_host.c"
  local ok = proc.execute("mkdir -p " .. dir .. " && test " .. out .. " -nt " .. src .. " || cc -O1 -g "
                          .. flags:format("-o " .. out .. " " .. src) .. " -lm -ldl 2>/dev/null")
  if not ok then return nil, "cc could not build " .. src .. " for Lua " .. v end
  return out
end

--- Writes `script` to a file and runs it: `opts.args` (strings) as its
-- arguments, `opts.lua` as the interpreter, `opts.env` (a table) added to
-- the environment, `opts.timeout` seconds (default 60; 600 in the background)
-- before it is killed; with `opts.default_signals`, every signal's
-- disposition the default one (`env --default-signal`: a signal ignored
-- here, SIGPIPE by luasocket, is no longer ignored in the child).
-- With `opts.background`, returns at once: `{ pid =, wait = function () }`.
-- @tparam string script
-- @tparam[opt] table opts
-- @treturn table `{ status = exit code (or 128 + signal, or 124 when killed
-- by the timeout), stdout =, stderr = }`
-- @usage local r = luachild.run("print(1)"); assert.equal("1\n", r.stdout)
local function run_once (script, opts)
  opts = opts or {}
  local file = os.tmpname()
  local out, err = os.tmpname(), os.tmpname()
  local f = assert(io.open(file, "w"))
  -- The child finds aigc as the specs do.
  f:write(("package.path = %q .. package.path\npackage.cpath = %q .. package.cpath\n")
          :format("lua/?.lua;lua/?/init.lua;spec/support/?.lua;", child_cpath() .. ";"))
  f:write(script)
  f:close()
  local env = ""
  for k, v in pairs(opts.env or {}) do env = env .. k .. "=" .. proc.quote(v) .. " " end
  local argv = {}
  for i, a in ipairs(opts.args or {}) do argv[i] = proc.quote(a) end
  local cmd = ("%s timeout -s KILL %d %s%s %s %s >%s 2>%s"):format(env, opts.timeout or 60,
    opts.default_signals and "env --default-signal " or "",
    proc.quote(opts.lua or M.interpreter()), proc.quote(file), table.concat(argv, " "), out, err)
  local function collect (ok, how, code)
    local r = { stdout = proc.read_file(out) or "", stderr = proc.read_file(err) or "" }
    if how == "exit" then r.status = code else r.status = 128 + (code or 0) end
    if r.status == 137 then r.status = 124 end
    os.remove(file); os.remove(out); os.remove(err)
    r.ok = ok
    return r
  end
  if opts.background then
    -- `exec`: the pid written is the interpreter's own (signals go to it).
    -- The timeout holds here too: without it a child whose test failed
    -- before its wait (a one-shot server never connected to blocks in
    -- accept() for ever) outlived the test run.
    local pidfile = out .. ".pid"
    local bg = ("%s timeout -s KILL %d sh -c 'echo $$ >%s; exec \"$@\"' sh %s %s %s >%s 2>%s; echo $? >%s.rc"):format(
      env, opts.timeout or 600, pidfile, proc.quote(opts.lua or M.interpreter()), proc.quote(file),
      table.concat(argv, " "), out, err, out)
    local p = assert(io.popen("(" .. bg .. ") </dev/null >/dev/null 2>&1 & echo $!", "r"))
    p:read("*a")   -- (closing unread made the shell's echo fail: "I/O error")
    p:close()
    local pid
    for _ = 1, 500 do
      pid = tonumber((proc.read_file(pidfile) or ""):match("%d+"))
      if pid then break end
      os.execute("sleep 0.01")
    end
    os.remove(pidfile)
    return {
      pid = pid,
      stdout_path = out,   -- (what it wrote so far can be read there)
      --- Waits until the child has printed `text` (a plain string), at most
      -- `seconds` (default 20), then raises "the child never printed TEXT".
      until_printed = function (_, text, seconds)
        local deadline = os.time() + (seconds or 20)
        while not (proc.read_file(out) or ""):find(text, 1, true) do
          assert(os.time() <= deadline, "the child never printed " .. text)
          os.execute("sleep 0.02")
        end
      end,
      --- Waits for the child's end (at most `seconds`, then kills it);
      -- returns run()'s table (status 124 when it had to be killed).
      wait = function (_, seconds)
        local deadline = os.time() + (seconds or 60)
        while os.time() <= deadline do
          local rc = proc.read_file(out .. ".rc")
          if rc and rc:match("%d+") then
            os.remove(out .. ".rc")
            return collect(true, "exit", tonumber(rc:match("%d+")))
          end
          os.execute("sleep 0.02")
        end
        if pid then os.execute("kill -KILL " .. pid .. " 2>/dev/null") end
        os.execute("sleep 0.2")
        os.remove(out .. ".rc")
        return collect(true, "exit", 124)
      end,
    }
  end
  return collect(proc.execute3(cmd))
end

-- LeakSanitizer's own tracer crashing at the child's exit ("Tracer caught
-- signal 11 ... LeakSanitizer has encountered a fatal error": gcc 12's LSan
-- misreading glibc 2.36's thread-local storage under load) says nothing of
-- the child: it ran to its end, but its status and stderr are LSan's. The
-- run is made again (twice at most), as the lifecycle runner does, and the
-- parent's stderr says so; a real leak report ("ERROR: LeakSanitizer") is
-- never retried.
local function lsan_crashed (r)
  return r.stderr:find("LeakSanitizer has encountered a fatal error", 1, true) ~= nil
     and r.stderr:find("ERROR: LeakSanitizer", 1, true) == nil
end

local function again_if_lsan_crashed (r, script, opts)
  for _ = 1, 2 do
    if not lsan_crashed(r) then break end
    io.stderr:write("luachild: LeakSanitizer's tracer crashed at the child's exit; running it again\n")
    r = run_once(script, opts)
  end
  return r
end

function M.run (script, opts)
  if opts and opts.background then   -- (a run again is in the foreground, from wait())
    local child = run_once(script, opts)
    local wait = child.wait
    local fg = {}
    for k, v in pairs(opts) do fg[k] = v end
    fg.background = nil
    child.wait = function (self, seconds) return again_if_lsan_crashed(wait(self, seconds), script, fg) end
    return child
  end
  return again_if_lsan_crashed(run_once(script, opts), script, opts)
end

return M
