#!/usr/bin/env bash
# Archive moves that the server refuses: the file is delivered once and
# stays DELIVERED ("archive pending"). Every later pass tries the move
# again without a second delivery, sync exits 1, status and the metrics
# file show the pending file, and from archive_alert_after failed attempts
# on each failure is logged as an error. Once the archive folder is
# writable again, the move completes. Starts its own sshd in
# $TEST_TMP/sshd.
here=$(cd "$(dirname "$0")" && pwd)
: "${TEST_TMP:?TEST_TMP must name a scratch folder}"
SSHD_FIXTURE=$TEST_TMP/sshd
bash "$here/../integration/sshd.sh" start "$SSHD_FIXTURE" >/dev/null ||
  exit 1

RUN_PID=""
BLOCKED=""
cleanup() {
  if [ -n "$RUN_PID" ]; then
    kill -KILL "$RUN_PID" 2>/dev/null || true
    wait "$RUN_PID" 2>/dev/null || true
  fi
  [ -n "$BLOCKED" ] && unblock "$BLOCKED"
  bash "$here/../integration/sshd.sh" stop "$SSHD_FIXTURE" >/dev/null
}
trap cleanup EXIT
# shellcheck disable=SC1091
. "$here/../integration/lib.sh"

single=$TEST_DATA_DIR/rossum_export_single.xml

# Make folder $1 unwritable for the SFTP user, who is the user running
# this script. Mode 0555 is enough for other users; root ignores modes,
# so for root the folder is also made immutable.
block() {
  chmod 0555 "$1"
  if [ "$(id -u)" -eq 0 ]; then
    chattr +i "$1" 2>/dev/null || true
  fi
  BLOCKED=$1
}

unblock() {
  if [ "$(id -u)" -eq 0 ]; then
    chattr -i "$1" 2>/dev/null || true
  fi
  chmod 0755 "$1"
  BLOCKED=""
}

# Print the value of sample $1 in the metrics file.
metric() {
  awk -v sample="$1" '$1 == sample { print $2 }' "$LOCAL/agent.prom"
}

status_json() {
  run_agent status --json
  [ "$RC" == 0 ] || fail "status --json exited $RC"
  jq -r "$1" <<<"$STDOUT"
}

setup_case pending
write_config "remote.archive_alert_after = 2"
printf '[agent]\npoll_interval = 1\nmetrics_file = %s\n' "$LOCAL/agent.prom" \
  >>"$CONFIG"
block "$REMOTE/archive"
if touch "$REMOTE/archive/.probe" 2>/dev/null; then
  rm -f "$REMOTE/archive/.probe"
  unblock "$REMOTE/archive"
  echo "SKIP: cannot make a folder unwritable for $(id -un) here" >&2
  exit 77
fi
cp "$single" "$REMOTE/inbox/x.xml"

# First pass: delivered once, the move fails, logged as a warning.
run_agent sync
assert_eq 1 "$RC" "sync with a blocked archive"
assert_contains "$STDOUT" "1 delivered" "delivered once"
assert_contains "$STDOUT" "1 pending" "counted as pending"
assert_contains "$STDERR" "warn: 'x.xml' was delivered but could not be archived (failed attempt 1)" "first failure is a warning"
assert_not_contains "$STDERR" " error: " "no error below the threshold"
assert_eq 1 "$(count_files "$OUT" '*.json')" "one output"
assert_exists "$REMOTE/inbox/x.xml" "file stays in the inbox"
assert_eq 1 "$(metric rossum_sftp_agent_pending_archive_files)" "metrics count the pending file"

run_agent status
assert_eq 0 "$RC" "status"
assert_contains "$STDOUT" "1 delivered files wait for their remote move" "status text counts it"
assert_contains "$STDOUT" "x.xml: 1 failed attempts, the last: " "status text lists it"
assert_eq 1 "$(status_json .pending_archive)" "status --json counts it"
assert_eq 1 "$(status_json '.records.delivered')" "record stays delivered"
assert_eq x.xml "$(status_json '.archive_failures[0].name')" "status --json names it"
assert_eq 1 "$(status_json '.archive_failures[0].attempts')" "status --json counts the attempts"
assert_contains "$(status_json '.archive_failures[0].error')" "x.xml" "status --json gives the error"

# Second pass: no second delivery, and from the second attempt on an error.
run_agent sync
assert_eq 1 "$RC" "second sync"
assert_contains "$STDOUT" "0 delivered" "not delivered again"
assert_contains "$STDOUT" "1 pending" "still pending"
assert_contains "$STDERR" "error: 'x.xml' was delivered but could not be archived, and 2 attempts have failed" "second failure is an error"
assert_contains "$STDERR" "permission denied" "error gives the server's reason"
assert_contains "$STDERR" "does not deliver it again" "error says that nothing is delivered again"
assert_eq 1 "$(count_files "$OUT" '*.json')" "still one output"
run_agent sync --dry-run
assert_eq 0 "$RC" "dry run"
assert_contains "$STDOUT" "retry  x.xml: delivered, but not yet moved to the archive" "dry run plans the move"

# The service logs an error at every poll.
"$AGENT_BIN" run -c "$CONFIG" >"$LOCAL/run.out" 2>"$LOCAL/run.log" &
RUN_PID=$!
for _ in $(seq 1 100); do
  [ "$(grep -c 'could not be archived' "$LOCAL/run.log")" -ge 3 ] && break
  sleep 0.1
done
kill -TERM "$RUN_PID"
wait "$RUN_PID" || true
RUN_PID=""
STDERR=$(cat "$LOCAL/run.log")
polls=$(grep -c 'could not be archived' "$LOCAL/run.log")
[ "$polls" -ge 3 ] || fail "the service logged $polls failed moves, expected 3 or more"
pass
assert_eq "$polls" "$(grep -c 'error: .x.xml. was delivered but could not be archived' "$LOCAL/run.log")" "every poll logs an error"
assert_not_contains "$STDERR" "delivered 'x.xml'" "the service did not deliver it again"
assert_eq 1 "$(count_files "$OUT" '*.json')" "still one output after the service"
attempts=$(status_json '.archive_failures[0].attempts')
assert_eq $((polls + 2)) "$attempts" "every attempt recorded"

# Writable again: the next pass completes the move.
unblock "$REMOTE/archive"
run_agent sync
assert_eq 0 "$RC" "sync after the archive is writable"
assert_contains "$STDOUT" "0 delivered" "not delivered again after the fix"
assert_contains "$STDERR" "archived 'x.xml' as '$REMOTE/archive/x.xml' after $attempts failed attempts" "completion logged"
assert_exists "$REMOTE/archive/x.xml" "moved to the archive"
assert_missing "$REMOTE/inbox/x.xml" "gone from the inbox"
assert_eq 1 "$(count_files "$OUT" '*.json')" "one output in the end"
assert_eq 0 "$(metric rossum_sftp_agent_pending_archive_files)" "metrics show nothing pending"
assert_eq 0 "$(status_json .pending_archive)" "status shows nothing pending"
assert_eq 0 "$(status_json '.archive_failures | length')" "no archive failure listed"
assert_eq 1 "$(status_json .records.archived)" "record archived"

finish
