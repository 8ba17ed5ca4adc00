#!/usr/bin/env bash
# Count the instructions that the export parsers and the JSON writer
# execute, with valgrind's callgrind, on one XML, CSV and JSON export and
# on the XML export through a [mapping]. A small XML export of one
# annotation (9.7 KB) is counted per parse, in a process that parses it
# 101 times as the agent does a backlog of small files. Instruction
# counts, unlike times, do not change with the machine's load, so they
# show whether a change to the parsing code made it cheaper. Prints the total count of
# each run (Ir, instructions read) and the functions with the most
# instructions of their own. The callgrind files stay in the work folder
# for callgrind_annotate.
#
# Usage: bench/parse_profile.sh
# Environment:
#   BENCH_BUILD_DIR     CMake build folder (default build-bench)
#   PROFILE_XML_MB      size of the XML export in MiB (default 4)
#   PROFILE_CSV_MB      size of the CSV export in MiB (default 2)
#   PROFILE_JSON_COPIES copies of the 3 annotations of
#                       tests/data/rossum_export_multi.json (default 100)
#   PROFILE_SMALL_REPEAT parses of the small export in the second of its
#                       two runs (default 101); the difference of the two
#                       counts, divided by PROFILE_SMALL_REPEAT - 1, is one
#                       parse
#   PROFILE_TOP         functions listed per run (default 12)
# Needs valgrind and jq.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${BENCH_BUILD_DIR:-$top/build-bench}
xml_mb=${PROFILE_XML_MB:-4}
csv_mb=${PROFILE_CSV_MB:-2}
json_copies=${PROFILE_JSON_COPIES:-100}
top_count=${PROFILE_TOP:-12}
small_repeat=${PROFILE_SMALL_REPEAT:-101}
seed=20241104

case "$small_repeat" in
  '' | *[!0-9]* | 0 | 1)
    echo "parse_profile.sh: invalid PROFILE_SMALL_REPEAT '$small_repeat'," \
      "expected a number of at least 2" >&2
    exit 2
    ;;
esac
for tool in valgrind callgrind_annotate jq; do
  if ! command -v "$tool" >/dev/null; then
    echo "parse_profile.sh: $tool not found: install valgrind and jq" >&2
    exit 1
  fi
done

if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  cmake -S "$top" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$build_dir" -j "$(nproc)" --target gen_export parse_driver \
  >/dev/null
gen=$build_dir/tests/gen_export
driver=$build_dir/tests/parse_driver
work=$build_dir/profile
rm -rf "$work"
mkdir -p "$work/out"

"$gen" --format xml --seed "$seed" --size-mb "$xml_mb" --totals /dev/null \
  "$work/export.xml"
"$gen" --format csv --seed "$seed" --size-mb "$csv_mb" --totals /dev/null \
  "$work/export.csv"
# The first of the exports that bench/backlog_probe.sh uploads.
"$gen" --annotations 1 --max-items 6 --seed 1 "$work/small.xml" >/dev/null
jq --argjson copies "$json_copies" \
  '.results = [range($copies) as $copy | .results[]]' \
  "$top/tests/data/rossum_export_multi.json" >"$work/export.json"

# The mapping renames two fields and a table column and drops a field, as
# a typical [mapping] section does.
mapping=(document_id=invoice_number item_amount_total=amount
  line_items=items sender_ic=-)

# Run the driver under callgrind and print "name bytes Ir".
# driver_options go before the format, such as --repeat N.
driver_options=()
profile() { # name format file [mapping...]
  local name=$1 format=$2 file=$3 out
  shift 3
  out=$work/callgrind.$name.out
  valgrind --tool=callgrind --callgrind-out-file="$out" \
    "$driver" "${driver_options[@]}" "$format" "$file" "$work/out" "$@" \
    >/dev/null 2>"$work/$name.log"
  printf '%s %s %s\n' "$name" "$(stat -c %s "$file")" \
    "$(sed -n 's/^totals: //p' "$out" | cut -d' ' -f1)"
}

# Run the driver twice on the small export, once and small_repeat times,
# and print "xml-small bytes Ir" with the instructions of one parse.
profile_small() {
  local once many
  once=$(profile small-once xml "$work/small.xml" | cut -d' ' -f3)
  driver_options=(--repeat "$small_repeat")
  many=$(profile small xml "$work/small.xml" | cut -d' ' -f3)
  driver_options=()
  printf 'xml-small %s %s\n' "$(stat -c %s "$work/small.xml")" \
    "$(((many - once) / (small_repeat - 1)))"
}

{
  profile xml xml "$work/export.xml"
  profile xml-mapping xml "$work/export.xml" "${mapping[@]}"
  profile csv csv "$work/export.csv"
  profile json json "$work/export.json"
  profile_small
} >"$work/totals"

echo
echo "valgrind $(valgrind --version | sed 's/^valgrind-//'), $(date -u +%Y-%m-%d)"
echo
echo '| run | input bytes | instructions (Ir) | Ir per input byte |'
echo '| --- | --- | --- | --- |'
awk '{ printf "| %s | %d | %d | %.1f |\n", $1, $2, $3, $3 / $2 }' "$work/totals"
echo
echo "xml-small is one parse of $(stat -c %s "$work/small.xml") bytes: the" \
  "difference of runs with 1 and $small_repeat parses, divided by" \
  "$((small_repeat - 1))."
for name in xml xml-mapping csv json small; do
  echo
  echo "== $name: functions by own instructions"
  callgrind_annotate --inclusive=no "$work/callgrind.$name.out" 2>/dev/null |
    awk -v n="$top_count" '/^ *[0-9,]+ / && shown++ < n'
done
