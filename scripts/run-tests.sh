#!/usr/bin/env bash
# Runs every suite of aigc and prints, last, one line:
#   N passed, N failed[, N skipped]
# summing them all. Called by `make test` (after the module is built).
#
# Suites, in order (cheap first); each line of the closing sum is what ran:
#   lint       luacheck over lua/ spec/ examples/ bench/: one result (clean or not)
#   ctest      C unit tests of the plain-C parts (SSE parser, JSON, accumulator):
#              one result per test; a test that cannot run here is skipped
#   busted     the Lua specs, against real local servers they start themselves
#   rockspec   `luarocks make` into a scratch tree, then require "aigc" from it
#   fuzz       libFuzzer on the SSE parser (60 s) and the JSON parser (30 s)
#   lifecycle  the random lifecycle tester (spec/lifecycle/run.lua), 90 s: one result
#   asan       the busted specs again, the module built with ASan + UBSan
#   lifecycle-asan  the lifecycle tester again under ASan + UBSan, 120 s: one result
#   valgrind   the busted specs under valgrind memcheck: no definite leak, no error
#   soak       20,000 mixed requests through one client: RSS growth < 1 MiB
#
# Environment knobs: AIGC_SKIP="fuzz valgrind" skips suites (reported as
# skipped; "lifecycle" skips both lifecycle runs), FUZZ_SSE_SECONDS /
# FUZZ_JSON_SECONDS shorten the fuzz runs, LIFECYCLE_SECONDS /
# LIFECYCLE_ASAN_SECONDS the lifecycle runs, LIFECYCLE_SEED fixes their seed
# (default: a new one each run, printed, so a failure can be replayed).
set -u
cd "$(dirname "$0")/.."

mkdir -p build
SUMMARY=build/test-summary
: > build/suite-results
export AIGC_SPEC_ROOT=$PWD
LUA=${LUA:-lua5.4}
# busted's runner started by lua5.4 itself (what `busted --lua=lua5.4` does
# through a re-exec), so that valgrind and LD_PRELOAD see the right process.
BUSTED_RUNNER=$(command -v busted)

total_pass=0; total_fail=0; total_skip=0
record () {   # suite passed failed skipped
  echo "$1: $2 passed, $3 failed, $4 skipped" >> build/suite-results
  total_pass=$((total_pass + $2)); total_fail=$((total_fail + $3)); total_skip=$((total_skip + $4))
}
banner () { printf '\n==== %s ====\n' "$1"; }
skipped () { case " ${AIGC_SKIP:-} " in *" $1 "*) return 0 ;; esac; return 1; }

# Sums "... N passed, N failed[, N skipped]" lines matching $2 in file $1.
sum_counts () {
  awk -v pat="$2" '$0 ~ pat {
      for (i = 1; i <= NF; i++) {
        if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^skipped/) s += $i
      }
      n++
    } END { printf "%d %d %d %d\n", p, f, s, n }' "$1"
}

# Runs busted over the specs with $1 as the suite name; the rest, if any, is
# a wrapper command (env settings, valgrind ...) put in front of lua5.4.
run_busted () {
  local name=$1; shift
  local log=build/$name.log
  env AIGC_SUITE_NAME="$name" "$@" "${BUSTED_LUA:-$LUA}" "$BUSTED_RUNNER" -o spec/support/summary_output.lua \
    ${BUSTED_ARGS:-} 2>&1 | tee "$log"
  read -r p f s n < <(sum_counts "$log" "^busted $name:")
  if [ "$n" -eq 0 ]; then   # busted died before its summary
    echo "$name: busted did not finish"; f=$((f + 1))
  fi
  record "$name" "$p" "$f" "$s"
}

# Runs the lifecycle tester for $2 seconds as suite $1, the rest being its
# build arguments; one result.
run_lifecycle () {
  local name=$1 secs=$2; shift 2
  local seed=${LIFECYCLE_SEED:-$(( $(date +%s) % 1000000 ))}
  local log=build/$name.log
  AIGC_LIFECYCLE_DIR=build/$name $LUA spec/lifecycle/run.lua --seconds "$secs" --seed "$seed" "$@" 2>&1 | tee "$log"
  if grep -qE '^lifecycle: [0-9]+ sequences, [0-9]+ operations, 0 failures$' "$log"; then
    record "$name" 1 0 0
  else
    record "$name" 0 1 0
  fi
}

# ---- lint: one result, however many files (a clean file is not a test)
banner lint
if skipped lint; then record lint 0 0 1; else
  files=$(find lua spec examples bench -name '*.lua' 2>/dev/null | sort)
  nfiles=$(echo "$files" | grep -c . || true)
  luacheck --formatter plain --codes $files > build/lint.log 2>&1
  cat build/lint.log
  bad=$(cut -d: -f1 build/lint.log | grep -E '\.lua$' | sort -u | wc -l)
  echo "lint: $nfiles files, $bad with warnings"
  if [ "$bad" -eq 0 ] && [ "$nfiles" -gt 0 ]; then record lint 1 0 0; else record lint 0 1 0; fi
fi

# ---- ctest
banner ctest
if skipped ctest; then record ctest 0 0 1; else
  if make --no-print-directory ctest WERROR=-Werror > build/ctest.log 2>&1; then :; fi
  cat build/ctest.log
  read -r p f s n < <(sum_counts build/ctest.log "^ctest ")
  nexpected=$(ls spec/c/*_test.c 2>/dev/null | wc -l)
  if [ "$n" -lt "$nexpected" ]; then f=$((f + nexpected - n)); echo "ctest: $((nexpected - n)) test program(s) did not build or run"; fi
  record ctest "$p" "$f" "$s"
fi

# ---- busted
banner busted
if skipped busted; then record busted 0 0 1; else
  run_busted busted
fi

# ---- rockspec
banner rockspec
if skipped rockspec; then record rockspec 0 0 1; else
  tree=build/rocktree
  rm -rf "$tree"
  multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
  version=$(make --no-print-directory -s version)
  rockspec=rockspec/aigc-$version-1.rockspec
  if luarocks --lua-version=5.4 --tree "$tree" make --deps-mode=none "$rockspec" \
       CURL_INCDIR=/usr/include/$multiarch CURL_LIBDIR=/usr/lib/$multiarch > build/rockspec.log 2>&1 \
     && (root=$PWD; cd /tmp && $LUA -e "
          package.path = '$root/$tree/share/lua/5.4/?.lua;$root/$tree/share/lua/5.4/?/init.lua;' .. package.path
          package.cpath = '$root/$tree/lib/lua/5.4/?.so;' .. package.cpath
          local aigc = require 'aigc'
          assert(aigc._VERSION == '$version', 'the rock says $version, aigc._VERSION is ' .. aigc._VERSION)
          assert(package.searchpath('aigc.core', package.cpath):find('$tree', 1, true), 'aigc.core not from the rock tree')
          assert(aigc.client { base_url = 'http://127.0.0.1:9/v1' })
          print('rockspec: require \"aigc\" ' .. aigc._VERSION .. ' from ' .. package.searchpath('aigc', package.path))
        ") >> build/rockspec.log 2>&1; then
    tail -n 3 build/rockspec.log; record rockspec 1 0 0
  else
    cat build/rockspec.log; record rockspec 0 1 0
  fi
fi

# ---- fuzz
banner fuzz
if skipped fuzz; then record fuzz 0 0 2; else
  fp=0; ff=0
  for h in fuzz_sse:${FUZZ_SSE_SECONDS:-60} fuzz_json:${FUZZ_JSON_SECONDS:-30}; do
    name=${h%%:*}; secs=${h##*:}
    if [ ! -f "spec/fuzz/$name.c" ]; then echo "$name: no harness"; ff=$((ff + 1)); continue; fi
    mkdir -p "build/corpus/$name"
    if make --no-print-directory "build/fuzz/$name" > "build/$name.log" 2>&1 \
       && "build/fuzz/$name" -max_total_time="$secs" -print_final_stats=1 \
            "build/corpus/$name" "spec/fuzz/seeds/$name" >> "build/$name.log" 2>&1; then
      echo "$name: $(grep -E 'stat::number_of_executed_units' "build/$name.log" | awk '{print $2}') runs in ${secs}s, nothing found"
      fp=$((fp + 1))
    else
      tail -n 40 "build/$name.log"; ff=$((ff + 1))
    fi
  done
  record fuzz "$fp" "$ff" 0
fi

# ---- lifecycle: random call sequences against the contract (normal build)
banner lifecycle
if skipped lifecycle; then record lifecycle 0 0 1; else
  run_lifecycle lifecycle "${LIFECYCLE_SECONDS:-90}"
fi

# ---- asan: the module built with ASan + UBSan, run by a Lua interpreter linked with them
banner asan
if skipped asan; then record asan 0 0 1; else
  if make --no-print-directory -s asan > build/asan-build.log 2>&1; then
    # The interpreter itself carries the sanitizer runtime (spec/support/lua_host.c):
    # the servers the specs start run uninstrumented, as usual.
    BUSTED_LUA=build/asan/lua BUSTED_ARGS="--cpath=build/asan/?.so" run_busted asan env \
      ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=23:detect_stack_use_after_return=0 \
      LSAN_OPTIONS=suppressions=$PWD/spec/support/lsan.supp:print_suppressions=0 \
      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    if grep -qE '^(=+[0-9]+=+ *)?ERROR: (Address|Leak)Sanitizer|runtime error:' build/asan.log; then
      echo "asan: the sanitizers reported problems (see build/asan.log)"; record asan-reports 0 1 0
    else
      record asan-reports 1 0 0
    fi
  else
    cat build/asan-build.log; record asan 0 1 0
  fi
fi

# ---- lifecycle-asan: the same tester, the module and the interpreter under ASan + UBSan
banner lifecycle-asan
if skipped lifecycle || skipped asan; then record lifecycle-asan 0 0 1
elif [ -x build/asan/lua ] && [ -f build/asan/aigc/core.so ]; then
  run_lifecycle lifecycle-asan "${LIFECYCLE_ASAN_SECONDS:-120}" --lua build/asan/lua --cpath 'build/asan/?.so'
else
  echo "lifecycle-asan: no ASan build (see the asan suite)"; record lifecycle-asan 0 1 0
fi

# ---- valgrind
banner valgrind
if skipped valgrind; then record valgrind 0 0 1; else
  run_busted valgrind env AIGC_VALGRIND=1 AIGC_TIMEOUT_SCALE=4 \
    valgrind --quiet --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite \
      --error-exitcode=0 --log-file=build/valgrind-%p.txt --trace-children=no \
      --suppressions=spec/support/valgrind.supp
  # One log per process; the busted process is the one that loaded aigc.
  vfail=0
  for f in build/valgrind-*.txt; do
    [ -f "$f" ] || continue
    if grep -qE 'definitely lost: [1-9]|Invalid (read|write)|uninitialised|Mismatched free|invalid free' "$f"; then
      echo "valgrind: problems in $f:"; cat "$f"; vfail=1
    fi
  done
  grep -h -E 'definitely lost' build/valgrind-*.txt 2>/dev/null | head -n 3
  if [ $vfail -eq 0 ]; then echo "valgrind: definitely lost: 0 bytes, no invalid accesses"; record valgrind-memcheck 1 0 0
  else record valgrind-memcheck 0 1 0; fi
  rm -f build/valgrind-*.txt
fi

# ---- soak
banner soak
if skipped soak; then record soak 0 0 1; elif [ -f spec/soak.lua ]; then
  if $LUA spec/soak.lua 2>&1 | tee build/soak.log | tail -n 5 && grep -q '^soak: ok' build/soak.log; then
    record soak 1 0 0
  else record soak 0 1 0; fi
fi

banner summary
cat build/suite-results
line="$total_pass passed, $total_fail failed"
if [ "$total_skip" -gt 0 ]; then line="$line, $total_skip skipped"; fi
echo "$line" > "$SUMMARY"
echo "$line"
[ "$total_fail" -eq 0 ]
