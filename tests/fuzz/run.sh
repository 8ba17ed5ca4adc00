#!/usr/bin/env bash
# Build the export parser fuzzers with libFuzzer, AddressSanitizer and
# UndefinedBehaviorSanitizer, then run each for SECONDS. Exits non-zero
# when a fuzzer crashes, leaks, hits a sanitizer report or a broken
# invariant; the input that did it is saved in BUILD/crashes/.
#
# Usage: tests/fuzz/run.sh [SECONDS]
# Environment:
#   FUZZ_SECONDS    seconds per fuzzer when no argument is given (default 30)
#   FUZZ_BUILD_DIR  build, corpus and crash folder (default build-fuzz); the
#                   corpus grows there from run to run
#   FUZZ_TARGETS    fuzzers to run (default "xml csv")
#   FUZZ_ALLOW_CUT_UTF8=1  accept a cut UTF-8 character in XML error
#                   messages, a defect fixed since (tests/fuzz/crashes/README.md)
#   CC              compiler (default clang; needs Debian's clang and
#                   libclang-rt-14-dev)
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-${FUZZ_SECONDS:-30}}
build_dir=${FUZZ_BUILD_DIR:-$top/build-fuzz}
targets=${FUZZ_TARGETS:-xml csv}
cc=${CC:-clang}

case "$seconds" in
  '' | *[!0-9]* | 0)
    echo "run.sh: invalid SECONDS '$seconds', expected a positive number" >&2
    exit 2
    ;;
esac

# The parsers and the modules they call; the rest of the agent is not
# needed, so no CMake build is involved.
common_sources=(
  "$top/src/export.c" "$top/src/log.c" "$top/src/utf8.c" "$top/src/error.c"
  "$top/src/posix/platform_posix.c" "$top/src/posix/system_posix.c"
  "$top/src/posix/thread_posix.c"
  "$top/tests/fuzz/fuzz_common.c"
)
cflags=(
  -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -g -O1
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
  -fno-omit-frame-pointer -Wall -Wextra -Werror
  -I"$top/include" -I"$top/tests/fuzz"
)
read -r -a pkg_cflags <<<"$(pkg-config --cflags libxml-2.0 jansson)"
read -r -a pkg_libs <<<"$(pkg-config --libs libxml-2.0 jansson)"

build() { # target
  local parser_sources
  if [ "$1" = xml ]; then
    parser_sources=("$top"/src/export_xml*.c)
  else
    parser_sources=("$top"/src/export_csv*.c "$top/src/posix/textconv_posix.c")
  fi
  echo "run.sh: building fuzz_$1" >&2
  "$cc" "${cflags[@]}" "${pkg_cflags[@]}" -o "$build_dir/fuzz_$1" \
    "${common_sources[@]}" "${parser_sources[@]}" "$top/tests/fuzz/fuzz_$1.c" \
    "${pkg_libs[@]}" -lcsv
}

# Fill the seed folder from tests/data and the committed corpus. fuzz_csv
# reads its options from the first byte, so each CSV seed goes in three
# times: commas, a sniffed delimiter, and a sniffed delimiter with rows
# grouped by meta_url.
seed() { # target
  local seeds=$build_dir/seeds/$1 file name
  rm -rf "$seeds"
  mkdir -p "$seeds" "$build_dir/corpus/$1"
  for file in "$top/tests/data"/*."$1" "$top/tests/data"/*/*."$1" \
    "$top/tests/fuzz/corpus/$1"/*; do
    [ -f "$file" ] || continue
    name=$(basename "$file")
    if [ "$1" = csv ]; then
      { printf '\000'; cat "$file"; } >"$seeds/comma-$name"
      { printf '\003'; cat "$file"; } >"$seeds/auto-$name"
      { printf '\023'; cat "$file"; } >"$seeds/grouped-$name"
    else
      cp "$file" "$seeds/$name"
    fi
  done
}

# Print "N execs, corpus M inputs (SIZE)" from a finished fuzzer's log,
# where the corpus is libFuzzer's own count after dropping redundant
# inputs.
summary() { # log
  local execs corpus
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$1" | tail -n 1)
  corpus=$(grep -a -o 'corp: [0-9]*/[0-9A-Za-z]*' "$1" | tail -n 1)
  corpus=${corpus#corp: }
  echo "${execs:-0} execs, corpus ${corpus%%/*} inputs (${corpus#*/})"
}

run() { # target
  local log=$build_dir/fuzz_$1.log status=0
  "$build_dir/fuzz_$1" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 \
    -dict="$top/tests/fuzz/$1.dict" \
    -artifact_prefix="$build_dir/crashes/$1-" \
    "$build_dir/corpus/$1" "$build_dir/seeds/$1" >"$log" 2>&1 || status=$?
  if [ "$status" -ne 0 ]; then
    echo "run.sh: fuzz_$1 failed with exit code $status; last lines of $log:" >&2
    tail -n 40 "$log" >&2
    # The cause comes before the stack trace, so repeat it last.
    echo "run.sh: cause:" >&2
    grep -a -E '^fuzz:|^SUMMARY|ERROR: ' "$log" | head -n 5 | cut -c 1-300 >&2
    echo "fuzz_$1: FAILED after $(summary "$log")"
    return 1
  fi
  echo "fuzz_$1: $seconds s, $(summary "$log"), no crash"
}

mkdir -p "$build_dir/crashes"
failed=0
for target in $targets; do
  case "$target" in
    xml | csv) ;;
    *)
      echo "run.sh: unknown fuzz target '$target', expected xml or csv" >&2
      exit 2
      ;;
  esac
  build "$target"
  seed "$target"
  run "$target" || failed=1
done
exit "$failed"
