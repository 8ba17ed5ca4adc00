#!/usr/bin/env bash
# Measure the export parsers: MB/s and peak RSS of the agent's XML parser
# with its JSON writer (bench/parse_driver.c) against libxml2's own
# streaming parser (`xmllint --stream --noout`) on the same generated
# file, and MB/s of the CSV parser. Rounds alternate the two XML parsers,
# so a change in machine load hits both alike. Prints medians and a
# Markdown block for docs/benchmarks.md. Not run in CI.
#
# Usage: bench/parse_bench.sh [ROUNDS]       (default 5)
# Environment:
#   BENCH_BUILD_DIR  CMake build folder (default build-bench)
#   BENCH_XML_MB     size of the XML export in MiB (default 80)
#   BENCH_CSV_MB     size of the CSV export in MiB (default 40)
# Needs xmllint (Debian package libxml2-utils) and GNU time (package time).
# MB means 10^6 bytes.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
rounds=${1:-5}
build_dir=${BENCH_BUILD_DIR:-$top/build-bench}
xml_mb=${BENCH_XML_MB:-80}
csv_mb=${BENCH_CSV_MB:-40}
seed=20241104

case "$rounds" in
  '' | *[!0-9]* | 0)
    echo "parse_bench.sh: invalid ROUNDS '$rounds', expected a positive number" >&2
    exit 2
    ;;
esac
for tool in xmllint /usr/bin/time; do
  if ! command -v "$tool" >/dev/null; then
    echo "parse_bench.sh: $tool not found: install libxml2-utils and time" >&2
    exit 1
  fi
done

cmake -S "$top" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build_dir" -j "$(nproc)" --target gen_export parse_driver \
  >/dev/null
gen=$build_dir/tests/gen_export
driver=$build_dir/tests/parse_driver
work=$build_dir/bench
rm -rf "$work"
mkdir -p "$work/out"

"$gen" --format xml --seed "$seed" --size-mb "$xml_mb" --totals "$work/xml.totals" \
  "$work/export.xml"
"$gen" --format csv --seed "$seed" --size-mb "$csv_mb" --totals "$work/csv.totals" \
  "$work/export.csv"
xml_bytes=$(stat -c %s "$work/export.xml")
csv_bytes=$(stat -c %s "$work/export.csv")

# Run a command once; append "seconds peak_kib" to the file $1.
measure() { # result_file command...
  local result=$1 start end
  shift
  start=$EPOCHREALTIME
  /usr/bin/time -f %M -o "$work/rss" "$@" >/dev/null
  end=$EPOCHREALTIME
  echo "$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f", e - s }') $(tail -n 1 "$work/rss")" >>"$result"
}

# Print the median of column $2 of file $1.
median() { # file column
  sort -n -k "$2,$2" "$1" | awk -v c="$2" '{ v[NR] = $c }
    END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

mb_per_s() { # bytes seconds
  awk -v b="$1" -v s="$2" 'BEGIN { printf "%.1f", b / 1e6 / s }'
}

# Warm the page cache so that the first round reads from memory too.
cat "$work/export.xml" "$work/export.csv" >/dev/null
: >"$work/agent.times"
: >"$work/xmllint.times"
: >"$work/csv.times"
for round in $(seq "$rounds"); do
  echo "parse_bench.sh: round $round of $rounds" >&2
  measure "$work/agent.times" "$driver" xml "$work/export.xml" "$work/out"
  measure "$work/xmllint.times" xmllint --stream --noout "$work/export.xml"
  measure "$work/csv.times" "$driver" csv "$work/export.csv" "$work/out"
done

agent_s=$(median "$work/agent.times" 1)
xmllint_s=$(median "$work/xmllint.times" 1)
csv_s=$(median "$work/csv.times" 1)
agent_mbs=$(mb_per_s "$xml_bytes" "$agent_s")
xmllint_mbs=$(mb_per_s "$xml_bytes" "$xmllint_s")
csv_mbs=$(mb_per_s "$csv_bytes" "$csv_s")
ratio=$(awk -v a="$agent_s" -v x="$xmllint_s" 'BEGIN { printf "%.2f", a / x }')
kib_to_mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# xmllint prints the version as one number, 20914 for 2.9.14.
libxml_number=$(xmllint --version 2>&1 | sed -n 's/.*using libxml version \([0-9]*\).*/\1/p' | head -n 1)
libxml_version=$(awk -v v="${libxml_number:-0}" \
  'BEGIN { printf "%d.%d.%d", v / 10000, (v / 100) % 100, v % 100 }')
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
cat <<EOF

Machine: $(nproc) cores, ${cpu:-unknown CPU}, $(uname -sr), $(date -u +%Y-%m-%d)
libxml2 $libxml_version, $rounds rounds, medians

| parser | file | MB/s | seconds | peak RSS (MiB) |
| --- | --- | --- | --- | --- |
| agent XML parser + JSON writer | XML, $xml_bytes bytes | $agent_mbs | $agent_s | $(kib_to_mib "$(median "$work/agent.times" 2)") |
| xmllint --stream --noout | XML, $xml_bytes bytes | $xmllint_mbs | $xmllint_s | $(kib_to_mib "$(median "$work/xmllint.times" 2)") |
| agent CSV parser + JSON writer | CSV, $csv_bytes bytes | $csv_mbs | $csv_s | $(kib_to_mib "$(median "$work/csv.times" 2)") |

The agent's XML parse takes $ratio times as long as xmllint's.
EOF
