#!/usr/bin/env bash
# Count the instructions that the export parsers and the JSON writer
# execute, with valgrind's callgrind, on one XML, CSV and JSON export and
# on the XML export through a [mapping]. Instruction counts, unlike
# times, do not change with the machine's load, so they show whether a
# change to the parsing code made it cheaper. Prints the total count of
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
#   PROFILE_TOP         functions listed per run (default 12)
# Needs valgrind and jq.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${BENCH_BUILD_DIR:-$top/build-bench}
xml_mb=${PROFILE_XML_MB:-4}
csv_mb=${PROFILE_CSV_MB:-2}
json_copies=${PROFILE_JSON_COPIES:-100}
top_count=${PROFILE_TOP:-12}
seed=20241104

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
jq --argjson copies "$json_copies" \
  '.results = [range($copies) as $copy | .results[]]' \
  "$top/tests/data/rossum_export_multi.json" >"$work/export.json"

# The mapping renames two fields and a table column and drops a field, as
# a typical [mapping] section does.
mapping=(document_id=invoice_number item_amount_total=amount
  line_items=items sender_ic=-)

# Run the driver under callgrind and print "name bytes Ir".
profile() { # name format file [mapping...]
  local name=$1 format=$2 file=$3 out
  shift 3
  out=$work/callgrind.$name.out
  valgrind --tool=callgrind --callgrind-out-file="$out" \
    "$driver" "$format" "$file" "$work/out" "$@" >/dev/null 2>"$work/$name.log"
  printf '%s %s %s\n' "$name" "$(stat -c %s "$file")" \
    "$(sed -n 's/^totals: //p' "$out" | cut -d' ' -f1)"
}

{
  profile xml xml "$work/export.xml"
  profile xml-mapping xml "$work/export.xml" "${mapping[@]}"
  profile csv csv "$work/export.csv"
  profile json json "$work/export.json"
} >"$work/totals"

echo
echo "valgrind $(valgrind --version | sed 's/^valgrind-//'), $(date -u +%Y-%m-%d)"
echo
echo '| run | input bytes | instructions (Ir) | Ir per input byte |'
echo '| --- | --- | --- | --- |'
awk '{ printf "| %s | %d | %d | %.1f |\n", $1, $2, $3, $3 / $2 }' "$work/totals"
for name in xml xml-mapping csv json; do
  echo
  echo "== $name: functions by own instructions"
  callgrind_annotate --inclusive=no "$work/callgrind.$name.out" 2>/dev/null |
    awk -v n="$top_count" '/^ *[0-9,]+ / && shown++ < n'
done
