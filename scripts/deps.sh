#!/usr/bin/env bash
# The one place that knows which system packages aigc needs.
#
#   scripts/deps.sh demo    build the module and run the demo (and the dev server)
#   scripts/deps.sh test    everything `make test` runs: every interpreter of
#                           the matrix (Lua 5.1, 5.2, 5.3, 5.4, LuaJIT 2.1)
#                           with its headers and compat-5.3, busted, luacheck,
#                           sanitizers, valgrind, the contract tests' Node,
#                           Python's yaml + jsonschema (the devserver's OpenAPI
#                           check), the `aigc` command's libraries and tmux
#                           (its REPL tests), and a comma-decimal locale
#                           (de_DE.UTF-8) for the JSON C test of number formatting
#   scripts/deps.sh love    what `make love` adds: LuaJIT's headers, LÖVE
#   scripts/deps.sh bench   what `make bench` adds: nginx, wrk, lua-socket,
#                           LuaJIT (its column of the report), strace (the
#                           system calls per request)...
#
# Only missing packages are installed, with one `apt-get update` first; a
# machine that already has them all is not touched (and needs no network).
set -euo pipefail

profile=${1:-test}

build_pkgs=(gcc make libc6-dev pkg-config ca-certificates
            lua5.4 liblua5.4-dev libcurl4-openssl-dev lua-cjson lua-luv)
# The other interpreters of the matrix (issue 12) and their headers; compat-5.3
# gives 5.1/5.2 (and LuaJIT) the 5.3 C API (its headers live in
# /usr/include/lua5.1 and /usr/include/lua5.2). Debian's Lua libraries
# (busted, cjson, luv, socket...) install for every version at once.
matrix_pkgs=(lua5.1 liblua5.1-0-dev lua5.2 liblua5.2-dev lua5.3 liblua5.3-dev
             luajit libluajit-5.1-dev lua-compat53 lua-compat53-dev)
test_pkgs=("${matrix_pkgs[@]}"
           lua-busted lua-check luarocks lua-socket valgrind
           clang libclang-rt-14-dev curl nodejs npm git procps
           nginx-light openssl locales
           python3-yaml python3-jsonschema
           lua-argparse lua-readline lua-term lua-sql-sqlite3 sqlite3 lua-rex-pcre2
           lua-ldoc lua-markdown tmux gdb
           love xvfb xauth libgl1-mesa-dri imagemagick sox)
# python3-yaml / python3-jsonschema: spec/support/oas_check.py, run by
# /usr/bin/python3 (Debian's, which has them) whatever python3 is first on PATH.
# lua-argparse, lua-readline, lua-term, lua-sql-sqlite3: the `aigc` command
# (bin/aigc) and its prompt logs (sqlite3: one check reads them with it);
# lua-rex-pcre2: the dataset runner's `regex` assertion; lua-ldoc and
# lua-markdown (Debian's LDoc has no Markdown of its own; lua5.1 runs it):
# `make docs` and its warning check; tmux: the REPL driven through a real terminal;
# gdb: the lifecycle tester's hang diagnosis (spec/lifecycle/hangwatch.sh; optional).
# love, xvfb, xauth, libgl1-mesa-dri (software OpenGL), imagemagick: the LÖVE
# game played under xvfb-run and its screenshot checked (spec/love_spec.lua).
# imagemagick (identify), sox (soxi): the media specs check the PNGs and WAVs
# the client writes with tools that share no code with aigc or the devserver.
bench_pkgs=(nginx-light wrk hyperfine lua-socket valgrind util-linux
            nodejs npm procps time gnuplot-nox openssl strace
            luajit libluajit-5.1-dev lua-compat53-dev)

case "$profile" in
  demo)  wanted=("${build_pkgs[@]}") ;;
  love)  wanted=("${build_pkgs[@]}" luajit libluajit-5.1-dev lua-compat53-dev love) ;;
  test)  wanted=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
  bench) wanted=("${build_pkgs[@]}" "${bench_pkgs[@]}") ;;
  *) echo "usage: $0 demo|love|test|bench" >&2; exit 2 ;;
esac

# Node 20 and npm may come from outside Debian (nodesource, nvm); a working
# `node` and `npm` on PATH is enough, so do not ask apt for them then.
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  filtered=()
  for p in "${wanted[@]}"; do
    [ "$p" = nodejs ] || [ "$p" = npm ] || filtered+=("$p")
  done
  wanted=("${filtered[@]}")
fi

missing=()
for p in "${wanted[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
    missing+=("$p")
  fi
done

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q >/dev/null
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# spec/c/json_test.c checks that numbers parse and print with '.' under a
# comma-decimal locale; without one that test is reported as skipped.
# Debian's `locales` ships none generated: generate de_DE.UTF-8 once.
if [ "$profile" = test ] && ! locale -a 2>/dev/null | grep -qiE '^de_DE\.utf-?8$'; then
  echo "deps: generating the de_DE.UTF-8 locale" >&2
  if grep -qE '^# *de_DE\.UTF-8 UTF-8' /etc/locale.gen 2>/dev/null; then
    $sudo sed -i -E 's/^# *(de_DE\.UTF-8 UTF-8)/\1/' /etc/locale.gen
  elif ! grep -qE '^de_DE\.UTF-8 UTF-8' /etc/locale.gen 2>/dev/null; then
    echo 'de_DE.UTF-8 UTF-8' | $sudo tee -a /etc/locale.gen >/dev/null
  fi
  $sudo locale-gen >/dev/null
fi
