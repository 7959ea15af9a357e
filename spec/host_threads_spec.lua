-- A C host running aigc in many lua_States on many threads at once (a job
-- system, a server with a state per worker), built with clang's
-- ThreadSanitizer: spec/c/host_threads_probe.c. Five threads make states,
-- open aigc, stream, cancel, call, close and collect, again and again, two
-- of them closing their states with streams in flight; once with aigc linked
-- in (libaigc.a), once loaded from disk by every state (dlopen, and dlclose
-- at lua_close). Every round must end as its script says, every state must
-- give back every byte, and TSan must report nothing. And eight states
-- opening aigc at the same moment (spec/c/host_curlinfo_probe.c). (README
-- "Threads".)
--
-- Pending, saying why, where clang or its TSan runtime (Debian:
-- libclang-rt-14-dev) is missing. A C program, the same under every Lua: it
-- runs once, in busted-5.4 (or by hand). It builds into a folder of its own
-- (the host suite builds build/c-host-tsan at the same time).
local devserver = require "devserver"
local proc = require "procutil"

local TSAN = "-fsanitize=thread -fno-omit-frame-pointer"

local function why_not (dir)
  local suite = os.getenv("AIGC_SUITE_NAME")
  -- (5.4's busted run is cut in parts: busted-part1-5.4 ...; this file is in one of them)
  if suite and suite ~= "" and not suite:match("^busted%-part%d+%-5%.4$") then
    return "the TSan host runs once, in a part of busted-5.4 (a C program: the same under every Lua)"
  end
  if not proc.execute("command -v clang >/dev/null 2>&1") then
    return "clang is not installed (ThreadSanitizer is clang's here)"
  end
  local probe = dir .. "/tsan-probe"
  if not proc.execute(("printf 'int main(void){return 0;}\\n' | clang -x c -fsanitize=thread -o %s - "
                       .. ">/dev/null 2>&1 && %s"):format(proc.quote(probe), proc.quote(probe))) then
    return "clang's ThreadSanitizer runtime is missing or does not run here (Debian: libclang-rt-14-dev)"
  end
  return nil
end

describe("a C host with aigc in lua_States on five threads, under ThreadSanitizer", function ()
  local root = proc.first_line("cd " .. proc.quote(proc.root()) .. " && pwd")   -- (absolute: the probe runs elsewhere)
  local dir = os.tmpname()
  os.remove(dir)
  assert(proc.execute("mkdir -p " .. proc.quote(dir)))
  local reason = why_not(dir)
  if reason then
    proc.execute("rm -rf " .. proc.quote(dir))
    it("runs", function () pending(reason) end)
    return
  end

  local srv, built, build_log
  setup(function ()
    srv = devserver.start { pause_ms = 2 }
    -- The probe and the module, from the same TSan objects.
    local d = proc.quote(dir)
    built, build_log = proc.sh(("make -C %s -j2 --no-print-directory BUILD=%s MODULE=%s/aigc/core.so CC=clang "
                                .. "CFLAGS='-O1 -g' SANITIZE='%s' WERROR=-Werror %s/aigc-host-threads "
                                .. "%s/aigc-host-curlinfo %s/aigc/core.so")
                               :format(proc.quote(root), d, d, TSAN, d, d, d))
  end)
  teardown(function ()
    if srv then srv:stop() end
    proc.execute("rm -rf " .. proc.quote(dir))
  end)

  -- Runs the probe for `seconds`; its exit status, stdout and stderr.
  local function run (seconds, ...)
    local args = { proc.quote(srv.base_url), tostring(seconds) }
    for _, a in ipairs { ... } do args[#args + 1] = proc.quote(a) end
    local out, err = dir .. "/out.txt", dir .. "/err.txt"
    local ok = proc.execute(("cd %s && TSAN_OPTIONS='halt_on_error=0:exitcode=66' %s/aigc-host-threads %s > %s 2> %s")
                            :format(proc.quote(dir), proc.quote(dir), table.concat(args, " "), proc.quote(out),
                                    proc.quote(err)))
    return ok, proc.read_file(out) or "", proc.read_file(err) or ""
  end

  local function check (ok, out, err)
    assert.is_nil(err:find("ThreadSanitizer", 1, true), err)
    assert(ok, out .. err)
    assert.matches("\naigc%-host%-threads: ok\n$", out)
    -- every thread ran at least one round: states came and went
    local _, threads = out:gsub("\naigc%-host%-threads: %a+ %d: ok: (%d+) states made", "")
    assert.equal(4, threads)   -- (the first line has no newline before it)
    assert.matches("^aigc%-host%-threads: worker 0: ok: %d+ states made", out)
  end

  it("aigc linked in (libaigc.a, aigc_preload): no race, every round as the script says", function ()
    assert(built, build_log)
    check(run(3))
  end)

  -- libcurl 7.88's curl_version_info fills its static struct again at each
  -- call; aigc asked it in every luaopen, so states opening aigc at once
  -- wrote libcurl's statics from several threads. The probe stands in a
  -- curl_version_info TSan sees (libcurl is not instrumented).
  it("eight states opening aigc at the same moment: libcurl's curl_version_info asked once", function ()
    assert(built, build_log)
    local out, err = dir .. "/ci-out.txt", dir .. "/ci-err.txt"
    local ok = proc.execute(("TSAN_OPTIONS='halt_on_error=0:exitcode=66' %s/aigc-host-curlinfo > %s 2> %s")
                            :format(proc.quote(dir), proc.quote(out), proc.quote(err)))
    out, err = proc.read_file(out) or "", proc.read_file(err) or ""
    assert.is_nil(err:find("ThreadSanitizer", 1, true), err)
    assert(ok, out .. err)
    assert.matches("\naigc%-host%-curlinfo: ok\n$", out)
  end)

  it("aigc loaded from disk by each state (dlopen; dlclose at lua_close): no race", function ()
    assert(built, build_log)
    check(run(3, dir .. "/?.so", root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua"))
  end)
end)
