#!/usr/bin/env bash
# `make love`: the tavern (examples/love) in LÖVE, against the bundled local
# server (started here, stopped on exit) unless OPENAI_API_KEY or
# OPENAI_BASE_URL point at a real endpoint -- as `make demo` does.
#
# LÖVE runs LuaJIT, so the game loads the LuaJIT build of the module
# (make LUA_VERSION=jit -> build/jit/aigc/core.so) and lua/aigc from this
# checkout: LUA_PATH / LUA_CPATH below (main.lua adds the same paths itself,
# so `love examples/love` works from a checkout too).
#
# Extra arguments go to love. Headless (no display): AIGC_LOVE_HEADLESS=1, or
# run it under `xvfb-run -a`. The test mode: AIGC_LOVE_TEST=frames:N,report:PATH,shot:PATH.
set -eu
cd "$(dirname "$0")/../.."
root=$PWD
export LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;;"
export LUA_CPATH="$root/build/jit/?.so;;"

command -v love >/dev/null 2>&1 || { echo "love: LÖVE is not installed (apt-get install -y love)" >&2; exit 1; }
[ -f build/jit/aigc/core.so ] || make --no-print-directory LUA_VERSION=jit >&2

server_pid=""
cleanup () { if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi; }
trap cleanup EXIT INT TERM

if [ -n "${OPENAI_API_KEY:-}" ] || [ -n "${OPENAI_BASE_URL:-}" ]; then
  echo "love: talking to ${OPENAI_BASE_URL:-https://api.openai.com/v1} (model ${AIGC_MODEL:-gpt-4o-mini})"
else
  portfile=$(mktemp)
  rm -f "$portfile"
  # A pause between streamed tokens, so the replies stream as a model's would.
  lua5.4 lua/aigc/devserver.lua --port 0 --port-file "$portfile" --pause-ms "${AIGC_LOVE_PAUSE_MS:-40}" \
    --quiet --parent-pid $$ &
  server_pid=$!
  for _ in $(seq 1 100); do [ -s "$portfile" ] && break; sleep 0.05; done
  [ -s "$portfile" ] || { echo "love: the local server did not start" >&2; exit 1; }
  export OPENAI_BASE_URL="http://127.0.0.1:$(cat "$portfile")/v1"
  rm -f "$portfile"
  echo "love: using the bundled local server at $OPENAI_BASE_URL"
fi

if [ -n "${AIGC_LOVE_HEADLESS:-}" ]; then
  xvfb-run -a -s "-screen 0 1024x768x24" love examples/love "$@"
else
  love examples/love "$@"
fi
