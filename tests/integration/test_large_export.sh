#!/usr/bin/env bash
# sync delivers a large XML export and a large CSV export from the sshd
# fixture with exact annotation and line item counts and the exact sum of
# all line totals, and a 2 MiB XML export, too large to be kept in memory,
# with exact counts. The agent's peak RSS stays under 64 MiB, because both
# parsers stream. This is a correctness and memory test: it measures no
# time.
#
# Environment:
#   GEN_EXPORT           the gen_export binary (set by tests/CMakeLists.txt)
#   LARGE_EXPORT_MB      size of the XML export in MiB (default 80)
#   LARGE_EXPORT_CSV_MB  size of the CSV export in MiB (default 40)
# Needs GNU time (/usr/bin/time, Debian package time) for the peak RSS.
. "$(dirname "$0")/lib.sh"

: "${GEN_EXPORT:?GEN_EXPORT must name the gen_export binary}"
xml_mb=${LARGE_EXPORT_MB:-80}
csv_mb=${LARGE_EXPORT_CSV_MB:-40}
rss_limit_kib=$((64 * 1024))
seed=20241104

# Print the exact sum of the amounts on stdin, one [-]DIGITS.DD per line,
# in the same form. awk numbers are doubles, exact only up to 2^53. So
# each amount in cents is split into 9-digit limbs from the right, and each
# limb is summed on its own. A limb grows by less than 10^9 per line, which
# keeps it exact for millions of lines. The carries are resolved at the
# end.
exact_sum() {
  awk '
    function add(text,   sign, point, cents, len, limb, start) {
      sign = 1
      if (substr(text, 1, 1) == "-") {
        sign = -1
        text = substr(text, 2)
      }
      point = index(text, ".")
      if (text !~ /^[0-9]+\.[0-9][0-9]$/) {
        print "exact_sum: invalid amount \"" text "\"" > "/dev/stderr"
        failed = 1
        exit 1
      }
      cents = substr(text, 1, point - 1) substr(text, point + 1)
      len = length(cents)
      for (limb = 0; len > 0; limb++) {
        start = len > 9 ? len - 8 : 1
        sum[limb] += sign * substr(cents, start, len - start + 1)
        len = start - 1
      }
      if (limb > limbs)
        limbs = limb
    }
    # Move carries up so that every limb but the top one is in [0, 10^9).
    function normalise(   i, carry) {
      for (i = 0; i < limbs; i++) {
        carry = int(sum[i] / 1e9)
        sum[i] -= carry * 1e9
        while (sum[i] < 0) { sum[i] += 1e9; carry-- }
        while (sum[i] >= 1e9) { sum[i] -= 1e9; carry++ }
        sum[i + 1] += carry
      }
      limbs++
    }
    NF > 0 { add($1) }
    END {
      if (failed)
        exit 1
      limbs += 2
      normalise()
      sign = ""
      if (sum[limbs - 1] < 0) {
        sign = "-"
        for (i = 0; i < limbs; i++)
          sum[i] = -sum[i]
        limbs--
        normalise()
      }
      top = limbs - 1
      while (top > 0 && sum[top] == 0)
        top--
      digits = sprintf("%d", sum[top])
      for (i = top - 1; i >= 0; i--)
        digits = digits sprintf("%09d", sum[i])
      while (length(digits) < 3)
        digits = "0" digits
      print sign substr(digits, 1, length(digits) - 2) "." \
        substr(digits, length(digits) - 1)
    }
  '
}

# Check the helper itself on sums whose carries cross limbs and signs.
check_exact_sum() { # expected amounts...
  local expected=$1
  shift
  assert_eq "$expected" "$(printf '%s\n' "$@" | exact_sum)" \
    "exact_sum of $*"
}

# Run the agent under GNU time; sets RC, STDOUT, STDERR and PEAK_KIB.
run_agent_measured() {
  local rss_file="$LOCAL/peak_rss"
  RC=0
  timeout 240 /usr/bin/time -f %M -o "$rss_file" \
    "$AGENT_BIN" "$@" -c "$CONFIG" >"$LOCAL/stdout" 2>"$LOCAL/stderr" || RC=$?
  STDOUT=$(cat "$LOCAL/stdout")
  STDERR=$(cat "$LOCAL/stderr")
  PEAK_KIB=$(tail -n 1 "$rss_file")
}

# Print the path of the only document in $OUT; fail unless there is one.
single_output() {
  local files=("$OUT"/*.json)
  if [ "${#files[@]}" -ne 1 ] || [ ! -f "${files[0]}" ]; then
    fail "expected one output document in $OUT, found: ${files[*]}"
  fi
  echo "${files[0]}"
}

# Read gen_export's KEY=VALUE totals into expected_<KEY> variables.
read_totals() { # file
  local key value
  while IFS='=' read -r key value; do
    case "$key" in
      annotations | line_items | records | item_amount_total_sum | bytes)
        printf -v "expected_$key" '%s' "$value"
        ;;
    esac
  done <"$1"
}

setup_case large_export
if [ ! -x /usr/bin/time ]; then
  fail "/usr/bin/time is missing: install the Debian package time"
fi

check_exact_sum 0.00
check_exact_sum 1000000000.00 999999999.99 0.01
check_exact_sum -0.05 0.05 -0.10
check_exact_sum 123456789012345678901.23 \
  123456789012345678900.00 1.23
check_exact_sum -99999999999999999.99 -99999999999999999.98 -0.01
check_exact_sum 0.00 99999999999999999.99 -99999999999999999.99

# XML: one sync of one large export.
"$GEN_EXPORT" --format xml --seed "$seed" --size-mb "$xml_mb" \
  --totals "$LOCAL/xml.totals" "$REMOTE/inbox/large.xml" ||
  fail "gen_export failed for the XML export"
read_totals "$LOCAL/xml.totals"

run_agent_measured sync
assert_eq 0 "$RC" "exit code of the XML sync"
assert_contains "$STDOUT" "1 delivered" "XML summary"
assert_exists "$REMOTE/archive/large.xml" "archived XML export"
if [ "$PEAK_KIB" -lt "$rss_limit_kib" ]; then pass; else
  fail "peak RSS of the XML sync is $PEAK_KIB KiB, limit $rss_limit_kib KiB"
fi
echo "XML: $expected_bytes bytes, $expected_annotations annotations, peak RSS $PEAK_KIB KiB"

# One jq pass, because each pass parses the whole document: the source,
# the counts, the value types, then every line total.
out=$(single_output)
jq -r '
  .source.name, .source.size,
  (.annotations | length),
  ([.annotations[].tables.line_items | length] | add // 0),
  ([.annotations[].tables.line_items[].item_amount_total | type]
    | unique | join(",")),
  (.annotations[].tables.line_items[].item_amount_total)
' "$out" >"$LOCAL/xml.values" || fail "jq failed on the XML output"
assert_eq large.xml "$(sed -n 1p "$LOCAL/xml.values")" "XML source.name"
assert_eq "$expected_bytes" "$(sed -n 2p "$LOCAL/xml.values")" "XML source.size"
assert_eq "$expected_annotations" "$(sed -n 3p "$LOCAL/xml.values")" "XML annotations"
assert_eq "$expected_line_items" "$(sed -n 4p "$LOCAL/xml.values")" "XML line items"
assert_eq string "$(sed -n 5p "$LOCAL/xml.values")" "XML line totals are strings"
assert_eq "$expected_item_amount_total_sum" \
  "$(tail -n +6 "$LOCAL/xml.values" | exact_sum)" "XML sum of item_amount_total"
rm -f "$out" "$LOCAL/xml.values"

# XML of 2 MiB: above the 1 MiB that a download keeps in memory and below
# the 4 MiB from which it is parsed while it downloads, so it is parsed
# from its local copy after the download.
"$GEN_EXPORT" --format xml --seed "$seed" --size-mb 2 \
  --totals "$LOCAL/mid.totals" "$REMOTE/inbox/mid.xml" ||
  fail "gen_export failed for the 2 MiB XML export"
read_totals "$LOCAL/mid.totals"
run_agent_measured sync
assert_eq 0 "$RC" "exit code of the 2 MiB XML sync"
assert_contains "$STDOUT" "1 delivered" "2 MiB XML summary"
out=$(single_output)
jq -r '.source.size, (.annotations | length),
  ([.annotations[].tables.line_items | length] | add // 0)' "$out" \
  >"$LOCAL/mid.values" || fail "jq failed on the 2 MiB XML output"
assert_eq "$expected_bytes" "$(sed -n 1p "$LOCAL/mid.values")" \
  "2 MiB XML source.size"
assert_eq "$expected_annotations" "$(sed -n 2p "$LOCAL/mid.values")" \
  "2 MiB XML annotations"
assert_eq "$expected_line_items" "$(sed -n 3p "$LOCAL/mid.values")" \
  "2 MiB XML line items"
rm -f "$out" "$LOCAL/mid.values"

# CSV: the same generator seed, as one row per line item.
"$GEN_EXPORT" --format csv --seed "$seed" --size-mb "$csv_mb" \
  --totals "$LOCAL/csv.totals" "$REMOTE/inbox/large.csv" ||
  fail "gen_export failed for the CSV export"
read_totals "$LOCAL/csv.totals"

run_agent_measured sync
assert_eq 0 "$RC" "exit code of the CSV sync"
assert_contains "$STDOUT" "1 delivered" "CSV summary"
assert_exists "$REMOTE/archive/large.csv" "archived CSV export"
if [ "$PEAK_KIB" -lt "$rss_limit_kib" ]; then pass; else
  fail "peak RSS of the CSV sync is $PEAK_KIB KiB, limit $rss_limit_kib KiB"
fi
echo "CSV: $expected_bytes bytes, $expected_records records, peak RSS $PEAK_KIB KiB"

# A row with an empty line total stands for an annotation without items.
out=$(single_output)
jq -r '
  .source.name, .source.size,
  (.records | length),
  ([.records[].meta_url] | unique | length),
  ([.records[] | select(.["Line total"] != "")] | length),
  (.records[] | .["Line total"] | select(. != ""))
' "$out" >"$LOCAL/csv.values" || fail "jq failed on the CSV output"
assert_eq large.csv "$(sed -n 1p "$LOCAL/csv.values")" "CSV source.name"
assert_eq "$expected_bytes" "$(sed -n 2p "$LOCAL/csv.values")" "CSV source.size"
assert_eq "$expected_records" "$(sed -n 3p "$LOCAL/csv.values")" "CSV records"
assert_eq "$expected_annotations" "$(sed -n 4p "$LOCAL/csv.values")" "CSV annotations"
assert_eq "$expected_line_items" "$(sed -n 5p "$LOCAL/csv.values")" "CSV line items"
assert_eq "$expected_item_amount_total_sum" \
  "$(tail -n +6 "$LOCAL/csv.values" | exact_sum)" "CSV sum of Line total"

# The exports are large, so nothing is kept after a pass.
rm -rf "$OUT" "$LOCAL/csv.values" "$REMOTE"
finish
