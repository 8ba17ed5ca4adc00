#!/usr/bin/env bash
# The backup command while the service runs with the state folder's
# lock: backups succeed, never replace a file without --force, and a
# backup restored into a fresh state folder lets the agent go on without
# delivering anything again. Starts its own sshd in $TEST_TMP/sshd.
here=$(cd "$(dirname "$0")" && pwd)
: "${TEST_TMP:?TEST_TMP must name a scratch folder}"
SSHD_FIXTURE=$TEST_TMP/sshd
bash "$here/../integration/sshd.sh" start "$SSHD_FIXTURE" >/dev/null ||
  exit 1

RUN_PID=""
cleanup() {
  if [ -n "$RUN_PID" ]; then
    kill -KILL "$RUN_PID" 2>/dev/null || true
    wait "$RUN_PID" 2>/dev/null || true
  fi
  bash "$here/../integration/sshd.sh" stop "$SSHD_FIXTURE" >/dev/null
}
trap cleanup EXIT
# shellcheck disable=SC1091
. "$here/../integration/lib.sh"

single=$TEST_DATA_DIR/rossum_export_single.xml
csv=$TEST_DATA_DIR/rossum_export_single.csv

# Wait up to 60 s until the archive contains $1 files.
wait_archived() {
  local i
  for i in $(seq 1 600); do
    [ "$(count_files "$REMOTE/archive")" -ge "$1" ] && return 0
    sleep 0.1
  done
  STDERR=$(cat "$LOCAL/run.log")
  fail "the service archived $(count_files "$REMOTE/archive") of $1 files"
}

# Print the number of entries in folder $1, dot files included.
entries() {
  find "$1" -mindepth 1 -maxdepth 1 | wc -l
}

setup_case backup
printf '[agent]\npoll_interval = 1\n' >>"$CONFIG"
mkdir -p "$LOCAL/backups"

# Before the first run there is nothing to back up.
run_agent backup "$LOCAL/backups/early.mdb"
assert_eq 4 "$RC" "backup before the first run"
assert_contains "$STDERR" "has not run" "message says why"
assert_eq 0 "$(entries "$LOCAL/backups")" "nothing written before the first run"
run_agent backup
assert_eq 2 "$RC" "backup without DEST"
run_agent status --force
assert_eq 2 "$RC" "--force with another command"

# The service takes the first files and keeps the lock.
cp "$single" "$REMOTE/inbox/a.xml"
cp "$single" "$REMOTE/inbox/b.xml"
cp "$csv" "$REMOTE/inbox/c.csv"
"$AGENT_BIN" run -c "$CONFIG" >"$LOCAL/run.out" 2>"$LOCAL/run.log" &
RUN_PID=$!
wait_archived 3
run_agent sync
assert_eq 5 "$RC" "the service holds the lock"

run_agent backup "$LOCAL/backups/first.mdb"
assert_eq 0 "$RC" "backup while the service runs"
assert_contains "$STDOUT" "backup: wrote a copy of the manifest in '$STATE' to '$LOCAL/backups/first.mdb'" "backup reported"
assert_eq 600 "$(stat -c %a "$LOCAL/backups/first.mdb")" "backup mode"
assert_eq 1 "$(entries "$LOCAL/backups")" "no temporary file left"

# Backups while the service delivers and archives more files.
for i in $(seq 1 20); do
  sed "s/<export>/<export><!-- $i -->/" "$single" >"$REMOTE/inbox/more-$i.xml"
done
for i in 1 2 3 4 5; do
  run_agent backup "$LOCAL/backups/busy-$i.mdb"
  assert_eq 0 "$RC" "backup $i during deliveries"
done
wait_archived 23
assert_eq 23 "$(count_files "$OUT" '*.json')" "the service delivered every file"

# An existing file is replaced only with --force.
before=$(cksum <"$LOCAL/backups/first.mdb")
run_agent backup "$LOCAL/backups/first.mdb"
assert_eq 2 "$RC" "backup onto an existing file"
assert_contains "$STDERR" "already exists" "existing file named"
assert_contains "$STDERR" "--force" "message names --force"
assert_eq "$before" "$(cksum <"$LOCAL/backups/first.mdb")" "existing file kept"
run_agent backup --force "$LOCAL/backups/first.mdb"
assert_eq 0 "$RC" "backup --force"
assert_eq 600 "$(stat -c %a "$LOCAL/backups/first.mdb")" "replaced backup mode"
assert_eq 6 "$(entries "$LOCAL/backups")" "one file per backup"

run_agent backup "$LOCAL/backups/final.mdb"
assert_eq 0 "$RC" "final backup"
kill -TERM "$RUN_PID"
run_rc=0
wait "$RUN_PID" || run_rc=$?
RUN_PID=""
assert_eq 0 "$run_rc" "the service stopped cleanly"
STDERR=$(cat "$LOCAL/run.log")
assert_not_contains "$STDERR" " error: " "the service logged no error"

# Restore the final backup as the manifest of a fresh state folder, with
# the marker of the old one, as the README describes.
restored=$LOCAL/restored
mkdir -p "$restored"
cp "$STATE/agent-id" "$restored/agent-id"
install -m 600 "$LOCAL/backups/final.mdb" "$restored/manifest.mdb"
sed -i "s|^state_dir = .*|state_dir = $restored|" "$CONFIG"
run_agent status --json
assert_eq 0 "$RC" "status on the restored manifest"
assert_eq "$(cat "$STATE/agent-id")" "$(jq -r .agent_id <<<"$STDOUT")" "agent id kept"
assert_eq 23 "$(jq -r .records.archived <<<"$STDOUT")" "every record restored"

# Identical re-uploads are recognised, and nothing is delivered again.
cp "$REMOTE/archive/a.xml" "$REMOTE/inbox/a.xml"
cp "$REMOTE/archive/c.csv" "$REMOTE/inbox/c.csv"
cp "$REMOTE/archive/more-7.xml" "$REMOTE/inbox/more-7.xml"
run_agent sync
assert_eq 0 "$RC" "sync on the restored manifest"
assert_contains "$STDOUT" "0 delivered, 3 duplicates" "re-uploads recognised"
assert_eq 23 "$(count_files "$OUT" '*.json')" "nothing delivered again"
assert_eq 0 "$(count_files "$REMOTE/inbox")" "re-uploads archived"

# Every backup taken during deliveries is a readable manifest.
for i in 1 2 3 4 5; do
  rm -rf "$restored"
  mkdir -p "$restored"
  cp "$STATE/agent-id" "$restored/agent-id"
  install -m 600 "$LOCAL/backups/busy-$i.mdb" "$restored/manifest.mdb"
  run_agent status --json
  assert_eq 0 "$RC" "status on busy backup $i"
  count=$(jq -r '.records | add' <<<"$STDOUT")
  if [ "$count" -lt 3 ] || [ "$count" -gt 23 ]; then
    fail "busy backup $i has $count records, expected 3 to 23"
  fi
  pass
done

finish
