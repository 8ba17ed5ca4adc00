#!/usr/bin/env bash
# Local faults: an output folder that is full or read-only makes the pass
# fail with exit code 4 (local failure). Nothing partial is left in the
# output folder, the file stays in the inbox, and a later pass delivers it
# once the folder is usable again. Needs root for the mounts.
if [ "$(id -u)" != 0 ]; then
  echo "test_local_faults: skipped: mounting a small file system needs root"
  exit 77
fi
. "$(dirname "$0")/lib.sh"

# Mount a tmpfs of SIZE over the case's output folder: small_out SIZE.
small_out() {
  mkdir -p "$OUT"
  mount -t tmpfs -o "size=$1,mode=0750" tmpfs "$OUT" || fail "cannot mount a tmpfs on $OUT"
  MOUNTS+=("$OUT")
}

# Return whether the output folder has temporary files.
temps_in_out() {
  find "$OUT" -maxdepth 1 \( -name '.*' -o -name '*.tmp' \) ! -path "$OUT" | grep -q .
}

# Output folder full: 32 KiB hold a few documents, not all.
start_case full
write_config "remote.include = *.xml *.csv *.json" \
             "remote.passthrough = *invoice_file-*"
consumer_stop
small_out 32k
upload_backlog f 20
run_logged sync
assert_eq 4 "$RC" "exit code when the output folder is full"
assert_contains "$STDERR" "No space left on device" "the error names the cause"
if temps_in_out; then fail "temporary files left in the full output folder"; else pass; fi
left=$(find "$REMOTE/inbox" -type f | wc -l)
[ "$left" -gt 0 ] && pass || fail "the full folder stopped nothing"
status_json=$(timeout 60 "$AGENT_BIN" status --json -c "$CONFIG")
assert_eq 0 "$(jq .pending_archive <<<"$status_json")" "nothing delivered and unmoved"
# The target system takes the documents away, and the next passes finish.
consumer_start
finish_agent 10
assert_eq 0 "$RC" "later passes finish"
check_invariants

# Read-only output folder: nothing taken, nothing lost.
start_case read_only
write_config "remote.include = *.xml *.csv *.json" \
             "remote.passthrough = *invoice_file-*"
small_out 4m
upload_backlog r 3
mount -o remount,ro "$OUT"
run_logged sync
assert_eq 4 "$RC" "exit code when the output folder is read-only"
assert_contains "$STDERR" "Read-only file system" "the error names the cause"
assert_eq 3 "$(find "$REMOTE/inbox" -type f | wc -l)" "every file still in the inbox"
mount -o remount,rw "$OUT"
finish_agent
assert_eq 0 "$RC" "delivered once the folder is writable"
check_invariants

# Read-only between the recorded intent and the rename: the pass fails,
# the written document waits under its temporary name, and the next pass
# renames it instead of writing it again.
if have_fault_points; then
  start_case read_only_at_rename
  small_out 4m
  upload "$TEST_DATA_DIR/rossum_export_multi.xml" late.xml deliver
  AGENT_FAULT_POINT=after_publish_intent AGENT_FAULT_ACTION=stop \
    "$AGENT_BIN" sync -c "$CONFIG" >"$LOCAL/stdout" 2>"$LOCAL/stderr" &
  AGENT_PID=$!
  for i in $(seq 1 200); do
    [ "$(sed 's/.*) //' "/proc/$AGENT_PID/stat" 2>/dev/null | cut -d' ' -f1)" = T ] && break
    sleep 0.05
  done
  consumer_stop
  mount -o remount,ro "$OUT"
  kill -CONT "$AGENT_PID"
  RC=0
  wait "$AGENT_PID" || RC=$?
  AGENT_PID=""
  STDERR=$(cat "$LOCAL/stderr")
  assert_eq 4 "$RC" "exit code when the rename fails"
  assert_eq 1 "$(find "$OUT" -name '.incoming.*.tmp' | wc -l)" \
    "the recorded temporary document is kept"
  mount -o remount,rw "$OUT"
  consumer_start
  finish_agent
  assert_eq 0 "$RC" "delivered by the next pass"
  assert_contains "$(cat "$LOCAL/agent.log")" "finished publishing 'late.xml'" \
    "the kept document was renamed, not written again"
  check_invariants
fi

finish
