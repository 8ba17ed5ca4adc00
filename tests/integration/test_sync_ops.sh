#!/usr/bin/env bash
# Operations around sync: the metrics file, status --json, retry and forget
# (at once, and queued while another agent holds the lock), sync --dry-run,
# the file and journal log targets and the progress line on a terminal.
. "$(dirname "$0")/lib.sh"

single_xml=$TEST_DATA_DIR/rossum_export_single.xml
single_csv=$TEST_DATA_DIR/rossum_export_single.csv
broken_xml='<?xml version="1.0"?>\n<export><results><annotation url="x">\n'

# Fail unless $1 is valid Prometheus text format as node_exporter's
# textfile collector reads it. Every line is a HELP or TYPE comment or a
# sample. Each metric has HELP and TYPE before its samples, TYPE is counter
# or gauge, counters end in _total, and no sample repeats.
check_prometheus() {
  awk '
    /^# HELP rossum_sftp_agent_[a-z_]+ [^ ].*$/ { help[$3] = 1; next }
    /^# TYPE rossum_sftp_agent_[a-z_]+ (counter|gauge)$/ {
      if ($3 in type) { print "second TYPE for " $3; bad = 1 }
      type[$3] = $4; next
    }
    /^rossum_sftp_agent_[a-z_]+(\{[a-z_]+="[^"\\]*"(,[a-z_]+="[^"\\]*")*\})? -?[0-9]+(\.[0-9]+)?$/ {
      name = $1; sub(/\{.*/, "", name)
      if (!(name in help)) { print "no HELP before " $1; bad = 1 }
      if (!(name in type)) { print "no TYPE before " $1; bad = 1 }
      if (type[name] == "counter" && name !~ /_total$/) { print "counter without _total: " name; bad = 1 }
      if (++seen[$1] > 1) { print "repeated sample " $1; bad = 1 }
      next
    }
    { print "invalid line " NR ": " $0; bad = 1 }
    END { exit bad }
  ' "$1"
}

# Print the value of sample $2 (name with labels) in metrics file $1.
metric() {
  awk -v sample="$2" '$1 == sample { print $2 }' "$1"
}

# Print a jq query over the output of `status --json`.
status_json() {
  run_agent status --json
  [ "$RC" == 0 ] || fail "status --json exited $RC"
  jq -r "$1" <<<"$STDOUT"
}

# A sync with 2 good files (XML and CSV) and 1 bad one: metrics and status.
setup_case ops
mkdir -p "$LOCAL/metrics"
printf '[agent]\nmetrics_file = %s\n' "$LOCAL/metrics/agent.prom" >>"$CONFIG"
cp "$single_xml" "$REMOTE/inbox/a.xml"
cp "$single_csv" "$REMOTE/inbox/b.csv"
printf "$broken_xml" >"$REMOTE/inbox/bad.xml"
bytes=$(cat "$REMOTE/inbox/"* | wc -c)
start=$(date +%s)
run_agent sync
end=$(date +%s)
assert_eq 1 "$RC" "sync with a bad file"
prom=$LOCAL/metrics/agent.prom
assert_exists "$prom" "metrics file written"
problems=$(check_prometheus "$prom") && pass || fail "metrics file is not Prometheus text: $problems"
assert_eq 1 "$(metric "$prom" 'rossum_sftp_agent_files_delivered_total{format="xml"}')" "delivered xml"
assert_eq 1 "$(metric "$prom" 'rossum_sftp_agent_files_delivered_total{format="csv"}')" "delivered csv"
assert_eq 0 "$(metric "$prom" 'rossum_sftp_agent_files_delivered_total{format="json"}')" "delivered json"
assert_eq 1 "$(metric "$prom" 'rossum_sftp_agent_files_failed_total{format="xml"}')" "failed xml"
assert_eq 0 "$(metric "$prom" 'rossum_sftp_agent_files_failed_total{format="csv"}')" "failed csv"
assert_eq "$bytes" "$(metric "$prom" rossum_sftp_agent_downloaded_bytes_total)" "bytes downloaded"
assert_eq 1 "$(metric "$prom" rossum_sftp_agent_polls_total)" "one pass"
assert_eq 0 "$(metric "$prom" rossum_sftp_agent_poll_errors_total)" "no pass error"
assert_eq 0 "$(metric "$prom" rossum_sftp_agent_reconnects_total)" "no reconnect"
assert_eq 0 "$(metric "$prom" rossum_sftp_agent_backlog_files)" "no backlog"
assert_eq 0 "$(metric "$prom" rossum_sftp_agent_pending_archive_files)" "nothing pending"
stamp=$(metric "$prom" rossum_sftp_agent_last_success_timestamp_seconds)
[ "$stamp" -ge "$start" ] && [ "$stamp" -le "$end" ] && pass || fail "last success $stamp not in [$start, $end]"
duration=$(metric "$prom" rossum_sftp_agent_poll_duration_seconds)
awk -v d="$duration" -v limit=$((end - start + 1)) 'BEGIN { exit !(d > 0 && d <= limit) }' && pass || fail "poll duration $duration"
assert_eq 640 "$(stat -c %a "$prom")" "metrics file readable by the group"
assert_eq 0 "$(count_files "$LOCAL/metrics" '.*.tmp')" "no temporary metrics file left"

assert_eq "$STATE/manifest.mdb" "$(status_json .manifest)" "status --json names the manifest"
assert_eq 2 "$(status_json .records.archived)" "status --json archived"
assert_eq 1 "$(status_json .records.failed)" "status --json failed"
assert_eq 0 "$(status_json .records.delivered)" "status --json delivered"
assert_eq 0 "$(status_json .backlog)" "status --json backlog"
assert_eq 0 "$(status_json .pending_archive)" "status --json pending archive"
assert_eq 1 "$(status_json '.failures | length')" "one failure listed"
assert_eq bad.xml "$(status_json '.failures[0].name')" "failure name"
assert_eq "$REMOTE/error/bad.xml" "$(status_json '.failures[0].error_path')" "failure error path"
assert_contains "$(status_json '.failures[0].reason')" "line" "failure reason"
assert_eq 1 "$(status_json '.failures[0].attempts')" "failure attempts"
last=$(status_json .last_success_unix)
[ "$last" -ge "$start" ] && [ "$last" -le "$end" ] && pass || fail "last_success_unix $last not in [$start, $end]"
assert_eq "$(date -u -d "@$last" +%Y-%m-%dT%H:%M:%SZ)" "$(status_json .last_success)" "last_success as UTC text"
run_agent status
assert_contains "$STDOUT" "last successful poll: $(date -u -d "@$last" +%Y-%m-%dT%H:%M:%SZ)" "status shows the last successful poll"
assert_contains "$STDOUT" "backlog after it: 0 files" "status shows the backlog"
assert_contains "$STDOUT" "bad.xml: " "status lists the failure"

# sync --dry-run lists the plan and changes nothing: no download, output,
# manifest write, remote move or metrics update.
cp "$single_xml" "$REMOTE/inbox/c.xml"
echo "not an export" >"$REMOTE/inbox/notes.txt"
manifest_mtime=$(stat -c %y "$STATE/manifest.mdb")
metrics_mtime=$(stat -c %y "$prom")
inbox_before=$(ls -A "$REMOTE/inbox" "$REMOTE/archive" "$REMOTE/error")
outputs_before=$(ls -A "$OUT")
records_before=$(status_json '.records | [.[]] | add')
run_agent sync --dry-run
assert_eq 0 "$RC" "dry run"
assert_contains "$STDOUT" "take   c.xml: $(wc -c <"$single_xml") bytes" "dry run lists the file to take"
assert_contains "$STDOUT" "skip   notes.txt: not selected by include and exclude" "dry run gives the skip reason"
assert_contains "$STDOUT" "dry run: 1 to take, 1 to skip, 0 to retry, 0 queued requests" "dry run totals"
assert_eq "$manifest_mtime" "$(stat -c %y "$STATE/manifest.mdb")" "manifest not written"
assert_eq "$metrics_mtime" "$(stat -c %y "$prom")" "metrics not written"
assert_eq "$inbox_before" "$(ls -A "$REMOTE/inbox" "$REMOTE/archive" "$REMOTE/error")" "remote folders unchanged"
assert_eq "$outputs_before" "$(ls -A "$OUT")" "no output written"
assert_eq "$records_before" "$(status_json '.records | [.[]] | add')" "manifest records unchanged"
assert_eq 0 "$(count_files "$STATE/tmp")" "no download left"
rm "$REMOTE/inbox/notes.txt"

# retry: the failed file goes back into the inbox under its name, and the
# next sync delivers it once its content is fixed.
run_agent retry bad.xml
assert_eq 0 "$RC" "retry"
assert_eq "retry 'bad.xml': done" "$STDOUT" "retry output"
assert_exists "$REMOTE/inbox/bad.xml" "failed file back in the inbox"
assert_missing "$REMOTE/error/bad.xml" "failed file left the error folder"
assert_missing "$REMOTE/error/bad.xml.reason.txt" "reason file removed"
assert_eq 0 "$(status_json .records.failed)" "no failed record after retry"
assert_eq 1 "$(status_json .records.seen)" "record reset to seen"
cp "$single_xml" "$REMOTE/inbox/bad.xml"
run_agent sync
assert_eq 0 "$RC" "sync after the fix"
assert_contains "$STDOUT" "2 delivered" "fixed file and c.xml delivered"
assert_exists "$REMOTE/archive/bad.xml" "fixed file archived"
assert_eq 4410001 "$(json_of bad.xml '.annotations[0].id')" "fixed file delivered with its content"

# retry and forget reject names without a record and files that did not fail.
run_agent retry a.xml
assert_eq 2 "$RC" "retry of an archived file"
assert_contains "$STDERR" "'a.xml' is archived, not failed" "retry names the state"
run_agent retry nothing.xml
assert_eq 2 "$RC" "retry of an unknown name"
assert_contains "$STDERR" "no record of 'nothing.xml'" "retry names the missing record"
run_agent retry
assert_eq 2 "$RC" "retry without a name"

# forget drops one manifest entry.
archived=$(status_json .records.archived)
run_agent forget a.xml
assert_eq 0 "$RC" "forget"
assert_eq "forget 'a.xml': done" "$STDOUT" "forget output"
assert_eq $((archived - 1)) "$(status_json .records.archived)" "one record fewer"
run_agent forget a.xml
assert_eq 2 "$RC" "forget of a forgotten name"

# A name that is not UTF-8 is shown with \xHH escapes, and retry takes it
# in that form.
raw_name=$(printf 'caf\xe9.xml')
printf "$broken_xml" >"$REMOTE/inbox/$raw_name"
run_agent sync
assert_eq 1 "$RC" "latin-1 name fails"
assert_eq 'caf\xE9.xml' "$(status_json '.failures[0].name')" "escaped name in status"
run_agent retry 'caf\xE9.xml'
assert_eq 0 "$RC" "retry by the escaped name"
assert_exists "$REMOTE/inbox/$raw_name" "raw name back in the inbox"
assert_missing "$REMOTE/error/$raw_name" "raw name left the error folder"
run_agent forget 'caf\xE9.xml'
assert_eq 0 "$RC" "forget by the escaped name"
rm "$REMOTE/inbox/$raw_name"

# While another agent holds the lock, retry is checked, then queued as a
# request file, and the next pass carries it out first.
printf "$broken_xml" >"$REMOTE/inbox/late.xml"
run_agent sync
assert_eq 1 "$RC" "late.xml fails"
exec {lock_fd}>"$STATE/lock"
flock -n "$lock_fd" || fail "could not take the lock for the test"
run_agent retry late.xml
assert_eq 0 "$RC" "queued retry"
assert_contains "$STDOUT" "retry 'late.xml': queued" "queued retry output"
assert_eq 1 "$(count_files "$STATE/requests" '*.json')" "one request file"
assert_eq late.xml "$(jq -r .name "$STATE"/requests/*.json)" "request names the file"
assert_exists "$REMOTE/error/late.xml" "queued retry moves nothing yet"
run_agent forget nothing.xml
assert_eq 2 "$RC" "queued forget of an unknown name is rejected at once"
assert_eq 1 "$(count_files "$STATE/requests" '*.json')" "no request for the rejected forget"
run_agent sync --dry-run
assert_eq 0 "$RC" "dry run while locked"
assert_contains "$STDOUT" "retry  late.xml: queued retry request" "dry run lists the queued request"
exec {lock_fd}>&-
cp "$single_xml" "$REMOTE/error/late.xml"
run_agent sync
assert_eq 0 "$RC" "sync carries out the queued retry"
assert_contains "$STDERR" "retry: moved 'late.xml' back into the inbox" "queued retry logged"
assert_eq 0 "$(count_files "$STATE/requests" '*.json')" "request file removed"
assert_exists "$REMOTE/archive/late.xml" "retried file delivered and archived"
output_for late.xml >/dev/null && pass || fail "no output for the retried file"

# An invalid request file is logged and removed, and the pass goes on.
echo '{"v":1,"action":"explode","name":"x"}' >"$STATE/requests/00000000000000000001-bad.json"
run_agent sync
assert_eq 0 "$RC" "sync with an invalid request"
assert_contains "$STDERR" "needs \"v\": 1, \"action\": \"retry\" or \"forget\"" "invalid request logged"
assert_eq 0 "$(count_files "$STATE/requests" '*.json')" "invalid request removed"

# sync --dry-run before the first run creates nothing, not even the state
# folder.
setup_case dry_fresh
cp "$single_xml" "$REMOTE/inbox/"
ln -s /etc/passwd "$REMOTE/inbox/link.xml"
run_agent sync --dry-run
assert_eq 0 "$RC" "dry run before the first run"
assert_contains "$STDOUT" "take   rossum_export_single.xml" "dry run lists the file"
assert_contains "$STDOUT" "skip   link.xml: not a regular file" "dry run skips the link"
assert_missing "$STATE" "no state folder"
assert_missing "$OUT" "no output folder"
assert_exists "$REMOTE/inbox/rossum_export_single.xml" "file left in the inbox"
run_agent status --json
assert_eq 0 "$RC" "status --json before the first run"
assert_eq null "$(jq -r .manifest <<<"$STDOUT")" "no manifest yet"
assert_eq null "$(jq -r .last_success <<<"$STDOUT")" "no last success yet"
assert_eq 0 "$(jq -r '.failures | length' <<<"$STDOUT")" "no failures yet"
run_agent status --dry-run
assert_eq 2 "$RC" "--dry-run only with sync"

# log_target = file: timestamped lines in the file, nothing on stderr.
setup_case log_file
printf '[agent]\nlog_target = file\nlog_file = %s\n' "$LOCAL/agent.log" >>"$CONFIG"
cp "$single_xml" "$REMOTE/inbox/"
run_agent sync
assert_eq 0 "$RC" "sync logging to a file"
assert_eq "" "$STDERR" "nothing on stderr"
assert_contains "$(cat "$LOCAL/agent.log")" "info: delivered 'rossum_export_single.xml'" "delivery in the log file"
bad_lines=$(grep -cvE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z (error|warn|info|debug): ' "$LOCAL/agent.log")
assert_eq 0 "$bad_lines" "every log line has a UTC time and a level"
run_agent status
assert_eq 0 "$RC" "status with a log file"

# stderr that is a journal stream (JOURNAL_STREAM matches its device and
# inode) gets syslog priority prefixes and no time.
setup_case journal
cp "$single_xml" "$REMOTE/inbox/"
: >"$LOCAL/stderr"
JOURNAL_STREAM=$(stat -c '%d:%i' "$LOCAL/stderr") run_agent sync
assert_eq 0 "$RC" "sync with a journal stream"
assert_contains "$STDERR" "<6>delivered 'rossum_export_single.xml'" "info has priority 6"
bad_lines=$(grep -cvE '^<[3467]>' <<<"$STDERR")
assert_eq 0 "$bad_lines" "every journal line starts with a priority"

# On a terminal, sync draws a progress line on stderr with '\r'.
if command -v script >/dev/null; then
  setup_case progress
  cp "$single_xml" "$REMOTE/inbox/"
  script -qec "'$AGENT_BIN' sync -c '$CONFIG'" "$LOCAL/typescript" >/dev/null
  assert_contains "$(cat "$LOCAL/typescript")" $'\rsync: 1/1 files' "progress line on a terminal"
fi

finish
