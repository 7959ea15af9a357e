#!/usr/bin/env bash
# host-test.sh — the C host suite (issue 13 item 3): builds the static
# library and examples/host (make host, host-tsan, host-asan), then runs each
# build for AIGC_HOST_SECONDS (default 3) against the bundled server: two
# threads, two lua_States, two clients at 60 Hz. Passes when every run says
# "aigc-host: ok" (both scripts got their replies, nothing failed), exits 0,
# and ThreadSanitizer / AddressSanitizer / LeakSanitizer / UBSan reported
# nothing. The runs start in an empty folder: the host reads no file. Each
# build also runs aigc-host-media (spec/c/host_media_probe.c) and
# aigc-host-preload (spec/c/host_preload_probe.c) and aigc-host-threads
# (spec/c/host_threads_probe.c: states made and closed on five threads at
# once); the plain and TSan builds run aigc-host-threads a second time with
# aigc loaded from disk (aigc/core.so, build/tsan: make all, make tsan), each
# state dlopen'ing the module and its lua_close dlclose'ing it; and
# aigc-host-curlinfo (spec/c/host_curlinfo_probe.c: eight states open aigc
# at once, libcurl's curl_version_info asked once). The plain build
# is also made for LuaJIT (build/c-host-jit: a LuaJIT engine's static aigc,
# README "Defold and other LuaJIT engines").
# Prints one line per run and "host: N passed, N failed"; exit 1 on a failure.
set -u
cd "$(dirname "$0")/.." || exit 2
root=$PWD
seconds=${AIGC_HOST_SECONDS:-3}
mkdir -p build
pass=0; fail=0

for target in all tsan host host-tsan host-asan host-jit; do
  if [ $target = host-jit ]; then set -- host LUA_VERSION=jit; else set -- "$target"; fi
  if ! make --no-print-directory "$@" WERROR=-Werror > "build/$target-build.log" 2>&1; then
    tail -n 30 "build/$target-build.log"
    echo "host: make $* failed (build/$target-build.log)"; fail=$((fail + 1))
  fi
done

scratch=$(mktemp -d)
port_file=$scratch/port
lua5.4 -e "package.path='$root/lua/?.lua;$root/lua/?/init.lua;'..package.path" lua/aigc/devserver.lua \
  --port 0 --port-file "$port_file" --quiet --parent-pid $$ --exit-after 600 > "$scratch/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$scratch"' EXIT
for _ in $(seq 100); do [ -s "$port_file" ] && break; sleep 0.1; done
if [ ! -s "$port_file" ]; then cat "$scratch/server.log"; echo "host: the bundled server did not start"; exit 1; fi
url=http://127.0.0.1:$(cat "$port_file")/v1

# Each build runs aigc-host (the example), then aigc-host-media
# (spec/c/host_media_probe.c: four threads' voice and image calls, three
# states closed with them in flight, no part file left; its own folder).
for dir in c-host c-host-tsan c-host-asan c-host-jit; do
  for prog in aigc-host aigc-host-media aigc-host-preload aigc-host-threads aigc-host-threads-disk \
              aigc-host-curlinfo; do
    exe=$root/build/$dir/${prog%-disk}
    set --
    case $dir/$prog in
      c-host/aigc-host-threads-disk) set -- "$root/?.so" "$root/lua/?.lua;$root/lua/?/init.lua" ;;
      c-host-tsan/aigc-host-threads-disk) set -- "$root/build/tsan/?.so" "$root/lua/?.lua;$root/lua/?/init.lua" ;;
      */aigc-host-threads-disk) continue ;;
    esac
    [ -x "$exe" ] || continue
    out=$scratch/$dir-$prog.out; err=$scratch/$dir-$prog.err
    arg2=$seconds
    if [ $prog = aigc-host-media ]; then arg2=$scratch/$dir-media; mkdir -p "$arg2"; fi
    (cd "$scratch" && env TSAN_OPTIONS="halt_on_error=0:exitcode=66" \
       ASAN_OPTIONS="detect_leaks=1:exitcode=23" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
       "$exe" "$url" "$arg2" "$@" > "$out" 2> "$err")
    rc=$?
    cat "$out"
    if [ $rc -eq 0 ] && grep -q "^${prog%-disk}: ok\$" "$out" \
       && ! grep -qE 'ThreadSanitizer|AddressSanitizer|LeakSanitizer|runtime error:' "$err"; then
      echo "host: $dir/$prog: ok (exit 0, no sanitizer report)"; pass=$((pass + 1))
    else
      head -n 80 "$err"; echo "host: $dir/$prog: FAILED (exit $rc)"; fail=$((fail + 1))
    fi
  done
done
echo "host: $pass passed, $fail failed"
[ $fail -eq 0 ] && [ $pass -eq 22 ]
