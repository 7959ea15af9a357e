#!/bin/sh
# The lifecycle tester's time limit for one child (spec/lifecycle/run.lua),
# like `timeout -k 5 SECONDS CMD...`, except that a child which is still
# running at the limit is looked at BEFORE it is killed, so that a hang is a
# diagnosis and not only "no end within 60 s":
#   * whether it spins or sleeps: its CPU time over one second, its state and
#     the kernel function it waits in (/proc/PID/stat, /proc/PID/wchan);
#   * where it is in C: every thread's backtrace (gdb, when installed);
#   * where it is in Lua: from the innermost frame of aigc's C code (src/*.c)
#     holding a `lua_State *L`, gdb calls luaL_traceback(L, L, ...) with the
#     collector stopped first (so no finalizer runs inside gdb's call). A
#     child spinning in Lua code or in LuaJIT's machine code has no such
#     frame: the backtrace's unnamed innermost frames and the CPU time say so.
# The report goes to REPORT_FILE (the child's stdout and stderr stay the
# caller's). Exit status: the child's (128+N when it died by signal N), or
# 124 when the limit was reached (as timeout(1)).
#
#   sh spec/lifecycle/hangwatch.sh SECONDS REPORT_FILE CMD [ARG...]
#
# POSIX sh; gdb is optional (Debian: apt-get install gdb), without it the
# report has the /proc part only. The child must be CMD itself (exec'd:
# `env VAR=x lua ...` is fine), since PID is the one traced and killed.

limit=$1; report=$2; shift 2
rm -f "$report"
"$@" &
child=$!

# The Lua traceback from a frame of aigc's C code that has `L` (see above).
# gdb's Python is used only to find the frame; the calls are plain gdb.
lua_traceback_py='
import gdb
def aigc_frame_with_L ():
    f = gdb.newest_frame()
    while f is not None:
        sal = f.find_sal()
        name = sal.symtab.filename if sal and sal.symtab else ""
        if "src/" in name and name.endswith(".c"):
            try:
                f.read_var("L")
                return f
            except (ValueError, RuntimeError):
                pass
        f = f.older()
    return None
f = aigc_frame_with_L()
if f is None:
    print("lua traceback: no frame of aigc C code holds a lua_State (the child runs Lua or JIT code, or is outside aigc)")
else:
    f.select()
    print("lua traceback, from %s (%s:%d):" % (f.name(), f.find_sal().symtab.filename, f.find_sal().line))
    gdb.execute("set unwindonsignal on")
    gdb.execute("call (void) lua_gc(L, 0, 0)")
    gdb.execute("call (void) luaL_traceback(L, L, (const char *) 0, 0)")
    gdb.execute("printf \"%s\\n\", (const char *) lua_tolstring(L, -1, (size_t *) 0)")
'

diagnose () {
  pid=$1
  {
    echo "hang diagnosis of pid $pid after ${limit} s:"
    if [ -r "/proc/$pid/stat" ]; then
      # utime + stime (fields 14, 15, in clock ticks) now and one second later
      t1=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
      sleep 1
      t2=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo "$t1")
      hz=$(getconf CLK_TCK 2>/dev/null || echo 100)
      state=$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)
      wchan=$(cat "/proc/$pid/wchan" 2>/dev/null)
      threads=$(ls "/proc/$pid/task" 2>/dev/null | wc -l)
      used=$((t2 - t1))
      if [ "$used" -ge $((hz / 2)) ]; then verdict="SPINNING"; else verdict="SLEEPING"; fi
      echo "cpu: $verdict: $used of $hz clock ticks used in 1 s; state $state; kernel wait: ${wchan:-?}; threads: $threads"
    fi
    if command -v gdb >/dev/null 2>&1; then
      timeout 60 gdb -nx -batch -p "$pid" -ex 'set pagination off' -ex 'set width 0' \
        -ex 'thread apply all bt 40' -ex "python $lua_traceback_py" 2>&1 |
        grep -v -e ': No such file or directory.$' -e '^\[New LWP' -e '^\[Thread debugging' -e '^Using host libthread_db' -e '^warning: ' \
          -e '^\[Inferior 1 .* detached\]'
    else
      echo "(gdb not installed: no backtrace)"
    fi
  } > "$report" 2>&1
}

(
  waited=0
  while [ "$waited" -lt "$limit" ]; do
    sleep 1
    kill -0 "$child" 2>/dev/null || exit 0
    waited=$((waited + 1))
  done
  diagnose "$child"
  : > "$report.hang"
  kill -KILL "$child" 2>/dev/null
) &
watcher=$!

wait "$child" 2>/dev/null   # (no "Killed" from the shell in the child's stderr)
status=$?
kill "$watcher" 2>/dev/null
wait "$watcher" 2>/dev/null
if [ -e "$report.hang" ]; then
  rm -f "$report.hang"
  exit 124
fi
exit "$status"
