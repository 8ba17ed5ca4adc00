#!/usr/bin/env bash
# Files that change or vanish. A file still being written is taken only
# once it has held still for stable_seconds, even when the writer resets
# its mtime after every write. A file deleted between listing and download
# is logged once as vanished, not failed. A file that changes during its
# download is discarded and taken again later.
. "$(dirname "$0")/lib.sh"

# Start the agent with a fault point that stops it (SIGSTOP), wait until
# it has stopped, and set AGENT_PID: stop_at POINT COMMAND...
stop_at() {
  local point=$1 i state
  shift
  AGENT_FAULT_POINT=$point AGENT_FAULT_ACTION=stop \
    "$AGENT_BIN" "$@" -c "$CONFIG" >"$LOCAL/stdout" 2>"$LOCAL/stderr" &
  AGENT_PID=$!
  for i in $(seq 1 200); do
    state=$(sed 's/.*) //' "/proc/$AGENT_PID/stat" 2>/dev/null | cut -d' ' -f1)
    [ "$state" = T ] && return 0
    sleep 0.05
  done
  fail "the agent did not stop at $point"
}

# Let the stopped agent go on and wait for it; sets RC, STDOUT, STDERR.
resume_agent() {
  RC=0
  kill -CONT "$AGENT_PID"
  wait "$AGENT_PID" || RC=$?
  AGENT_PID=""
  STDOUT=$(cat "$LOCAL/stdout")
  STDERR=$(cat "$LOCAL/stderr")
  printf '%s\n' "$STDERR" >>"$LOCAL/agent.log"
}

# A CSV export that grows by one row every 0.3 s, with its mtime set back
# to the same old value after every write, is not taken while it grows.
start_case growing
write_config "remote.stable_seconds = 2"
file=$REMOTE/inbox/growing.csv
head -n 2 "$TEST_DATA_DIR/rossum_export_single.csv" >"$file"
touch -d '2020-01-01 00:00:00' "$file"
(
  row=$(sed -n 2p "$TEST_DATA_DIR/rossum_export_single.csv")
  while [ ! -e "$LOCAL/writer.stop" ]; do
    printf '%s\n' "$row" >>"$file"
    touch -d '2020-01-01 00:00:00' "$file"
    sleep 0.3
  done
) &
writer=$!
run_logged sync
assert_eq 0 "$RC" "sync while the file grows"
assert_contains "$STDERR" "'growing.csv' is still changing" "growing file waits"
assert_not_contains "$STDERR" "delivered 'growing.csv'" "growing file not taken"
assert_eq 0 "$(find "$COLLECT" "$OUT" -name 'growing*' | wc -l)" "no output yet"
touch "$LOCAL/writer.stop"
wait "$writer"
upload_note growing.csv deliver
finish_agent
assert_contains "$(cat "$LOCAL/agent.log")" "delivered 'growing.csv'" \
  "taken once it held still"
check_invariants

if ! have_fault_points; then
  echo "skipped the vanish and change cases: build with -DAGENT_FAULT_INJECTION=ON"
  finish
  exit 0
fi

# Deleted between listing and download: logged once as vanished, not
# failed, and nothing is left half done in the manifest.
start_case vanished
upload "$TEST_DATA_DIR/rossum_export_single.xml" gone.xml deliver
upload "$TEST_DATA_DIR/rossum_export_multi.xml" stays.xml deliver
sed -i "/$(hex_of gone.xml)/d" "$UPLOADS"
stop_at before_download sync
rm "$REMOTE/inbox/gone.xml"
resume_agent
assert_eq 0 "$RC" "a vanished file is no failure"
assert_eq 1 "$(grep -c "'gone.xml' vanished" <<<"$STDERR")" "vanish logged once"
assert_not_contains "$STDERR" "failed 'gone.xml'" "vanished file not failed"
assert_contains "$STDOUT" "1 vanished" "summary counts it"
finish_agent
assert_not_contains "$STDERR" "gone.xml" "not logged again by the next pass"
check_invariants

# Changed during download (size, then only mtime): the copy is discarded,
# nothing is published, and the file is taken again once stable.
for change in append touch; do
  start_case "changed_$change"
  upload "$TEST_DATA_DIR/rossum_export_single.csv" moving.csv deliver
  stop_at before_download sync
  if [ "$change" = append ]; then
    sed -n 2p "$TEST_DATA_DIR/rossum_export_single.csv" >>"$REMOTE/inbox/moving.csv"
  else
    touch -d '2021-06-01 00:00:00' "$REMOTE/inbox/moving.csv"
  fi
  sed -i '/"expect"/d' "$UPLOADS"
  upload_note moving.csv deliver
  resume_agent
  assert_eq 0 "$RC" "$change: a changed file is no failure"
  assert_contains "$STDERR" "'moving.csv' changed during download" \
    "$change: change logged"
  assert_not_contains "$STDERR" "delivered 'moving.csv'" \
    "$change: changed copy not delivered"
  assert_eq 0 "$(ls "$STATE/tmp" | wc -l)" "$change: partial copy removed"
  finish_agent
  assert_contains "$(cat "$LOCAL/agent.log")" "delivered 'moving.csv'" \
    "$change: taken again later"
  check_invariants
done

finish
