#!/usr/bin/env bash
# The one place that knows which system packages aigc needs.
#
#   scripts/deps.sh demo    build the module and run the demo (and the dev server)
#   scripts/deps.sh test    everything `make test` runs: busted, luacheck,
#                           sanitizers, valgrind, the contract tests' Node
#   scripts/deps.sh bench   what `make bench` adds: nginx, wrk, lua-socket...
#
# Only missing packages are installed, with one `apt-get update` first; a
# machine that already has them all is not touched (and needs no network).
set -euo pipefail

profile=${1:-test}

build_pkgs=(gcc make libc6-dev pkg-config ca-certificates
            lua5.4 liblua5.4-dev libcurl4-openssl-dev lua-cjson lua-luv)
test_pkgs=(lua-busted lua-check luarocks lua-socket valgrind
           clang libclang-rt-14-dev curl nodejs npm git procps
           nginx-light openssl)
bench_pkgs=(nginx-light wrk hyperfine lua-socket valgrind util-linux
            nodejs npm procps time)

case "$profile" in
  demo)  wanted=("${build_pkgs[@]}") ;;
  test)  wanted=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
  bench) wanted=("${build_pkgs[@]}" "${bench_pkgs[@]}") ;;
  *) echo "usage: $0 demo|test|bench" >&2; exit 2 ;;
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

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "deps: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >/dev/null
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
