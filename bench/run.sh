#!/usr/bin/env bash
# make bench: installs what is missing (scripts/deps.sh bench has run
# already under make), the Node SDK from bench/package-lock.json, builds
# the C floor and the Lua bound's module, then runs bench/run.lua from
# the repo root.
#
#   BENCH_QUICK=1 make bench     a fast pass (2 rounds, a quarter of the work)
#   BENCH_ROUNDS=7 make bench    more rounds
#   BENCH_OUT=file make bench    also write the report to file
#   BENCH_JIT=0 make bench       leave LuaJIT out (by default its build is
#                                made here and measured beside Lua 5.4's)
set -euo pipefail
cd "$(dirname "$0")/.."

command -v node >/dev/null && command -v npm >/dev/null || bash scripts/deps.sh bench

# The Node SDK, exactly as locked (again only when the lockfile changed).
stamp=bench/node_modules/.aigc-lock
if [ ! -f "$stamp" ] || ! cmp -s bench/package-lock.json "$stamp"; then
  echo "bench: npm ci (openai, as locked in bench/package-lock.json)" >&2
  (cd bench && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  cp bench/package-lock.json "$stamp"
fi

# LuaJIT's build of the module (its rows in the report), when the Makefile
# builds per version (a folder of its own: never over ./aigc/core.so).
if [ "${BENCH_JIT:-1}" != 0 ] && command -v luajit >/dev/null; then
  jit_cpath=$(make -s --no-print-directory cpath LUA_VERSION=jit 2>/dev/null || true)
  if [ -n "$jit_cpath" ] && [ "$jit_cpath" != "./?.so" ]; then
    make --no-print-directory LUA_VERSION=jit >&2 || echo "bench: the LuaJIT build failed; its rows are left out" >&2
  else
    echo "bench: no per-version build in this Makefile; LuaJIT is left out" >&2
  fi
fi

# The C floor.
mkdir -p build/bench
CURL_CFLAGS=$(curl-config --cflags 2>/dev/null || true)
CURL_LIBS=$(curl-config --libs 2>/dev/null || echo -lcurl)
if [ ! -x build/bench/floor ] || [ bench/floor.c -nt build/bench/floor ]; then
  ${CC:-cc} -O2 -g -std=c99 -Wall -Wextra $CURL_CFLAGS -o build/bench/floor bench/floor.c $CURL_LIBS
fi

# The Lua bound's module (bench/lua_bound_core.c), for Lua 5.4 and LuaJIT.
# (a failed build leaves its rows "failed" in the report, nothing else)
lua_bound() {   # out, Lua's include folder
  if [ ! -f "$1" ] || [ bench/lua_bound_core.c -nt "$1" ]; then
    mkdir -p "$(dirname "$1")"
    ${CC:-cc} -O2 -g -std=c99 -Wall -Wextra -shared -fPIC -I"$2" $CURL_CFLAGS \
      -o "$1" bench/lua_bound_core.c $CURL_LIBS || echo "bench: the Lua bound's build ($1) failed" >&2
  fi
}
lua_bound build/bench/lua_bound_core.so /usr/include/lua5.4
if command -v luajit >/dev/null && [ -d /usr/include/luajit-2.1 ]; then
  lua_bound build/bench/jit/lua_bound_core.so /usr/include/luajit-2.1
fi

# Stop our nginx if we are interrupted (run.lua stops it otherwise): by
# the pid it wrote, never by name.
cleanup() {
  if [ -f build/bench/nginx/nginx.pid ]; then
    kill "$(cat build/bench/nginx/nginx.pid)" 2>/dev/null || true
  fi
}
trap cleanup INT TERM

lua5.4 bench/run.lua

# The frame loop (issue 13 item 6): step(0) per 60 Hz frame with 8, 64 and
# 256 NPC streams open against the bundled server (BENCH_FRAME=0 skips it).
if [ "${BENCH_FRAME:-1}" != 0 ]; then
  echo
  lua5.4 bench/frame_bench.lua
fi
