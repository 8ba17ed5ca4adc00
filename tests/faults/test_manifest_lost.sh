#!/usr/bin/env bash
# A lost or unreadable manifest after earlier runs: every command that
# opens the manifest exits with code 6, names both ways out (restore a
# backup, or sync --rebuild-manifest) and changes nothing. Each damage is
# applied to a copy of an intact manifest: removed, empty, truncated in
# three places, random bytes, and data pages overwritten with zeros.
# Starts its own sshd in $TEST_TMP/sshd.
here=$(cd "$(dirname "$0")" && pwd)
: "${TEST_TMP:?TEST_TMP must name a scratch folder}"
SSHD_FIXTURE=$TEST_TMP/sshd
bash "$here/../integration/sshd.sh" start "$SSHD_FIXTURE" >/dev/null ||
  exit 1
trap 'bash "$here/../integration/sshd.sh" stop "$SSHD_FIXTURE" >/dev/null' EXIT
# shellcheck disable=SC1091
. "$here/../integration/lib.sh"

single=$TEST_DATA_DIR/rossum_export_single.xml

setup_case lost
cp "$single" "$REMOTE/inbox/a.xml"
for i in $(seq 1 40); do
  cp "$single" "$REMOTE/inbox/f$i.xml"
done
run_agent sync
assert_eq 0 "$RC" "first sync"
assert_eq 41 "$(count_files "$OUT" '*.json')" "first sync delivered all"
cp "$REMOTE/archive/a.xml" "$REMOTE/inbox/a.xml"
cp "$single" "$REMOTE/inbox/new.xml"
cp "$STATE/manifest.mdb" "$LOCAL/intact.mdb"
db_size=$(stat -c %s "$LOCAL/intact.mdb")
[ "$db_size" -gt 16384 ] || fail "the manifest has only $db_size bytes"

# Apply damage $1 to the manifest, starting from the intact copy.
damage() {
  rm -f "$STATE/manifest.mdb"
  case "$1" in
    removed) ;;
    empty) : >"$STATE/manifest.mdb" ;;
    header_cut) head -c 100 "$LOCAL/intact.mdb" >"$STATE/manifest.mdb" ;;
    meta_only) head -c 8192 "$LOCAL/intact.mdb" >"$STATE/manifest.mdb" ;;
    half) head -c $((db_size / 2)) "$LOCAL/intact.mdb" >"$STATE/manifest.mdb" ;;
    random) head -c "$db_size" /dev/urandom >"$STATE/manifest.mdb" ;;
    zeroed)
      { head -c 8192 "$LOCAL/intact.mdb"
        head -c $((db_size - 8192)) /dev/zero; } >"$STATE/manifest.mdb" ;;
  esac
}

# Run the agent with arguments $2... and expect exit code 6 with both ways
# out in the message; $1 names the case.
expect_lost() {
  local what=$1
  shift
  run_agent "$@"
  assert_eq 6 "$RC" "$what: exit code of '$*'"
  assert_contains "$STDERR" "Restore the manifest from a backup" "$what: '$*' names a restore"
  assert_contains "$STDERR" "sync --rebuild-manifest" "$what: '$*' names the rebuild"
}

for what in removed empty header_cut meta_only half random zeroed; do
  damage "$what"
  before=$(cksum <"$STATE/manifest.mdb" 2>/dev/null || echo none)
  expect_lost "$what" sync
  expect_lost "$what" sync --dry-run
  expect_lost "$what" status
  expect_lost "$what" status --json
  expect_lost "$what" retry f1.xml
  expect_lost "$what" forget f1.xml
  expect_lost "$what" backup "$LOCAL/backup-$what.mdb"
  expect_lost "$what" run
  assert_eq "$before" "$(cksum <"$STATE/manifest.mdb" 2>/dev/null || echo none)" "$what: manifest left as it was"
  assert_missing "$LOCAL/backup-$what.mdb" "$what: no backup written"
  assert_exists "$REMOTE/inbox/a.xml" "$what: inbox untouched"
  assert_exists "$REMOTE/inbox/new.xml" "$what: new file not taken"
  assert_eq 41 "$(count_files "$OUT" '*.json')" "$what: nothing delivered"
  assert_eq 0 "$(count_files "$STATE" 'manifest.mdb.broken-*')" "$what: nothing set aside"
done

# The intact manifest back in place: the re-upload is a duplicate.
cp "$LOCAL/intact.mdb" "$STATE/manifest.mdb"
run_agent sync
assert_eq 0 "$RC" "sync with the manifest restored"
assert_contains "$STDOUT" "1 delivered, 1 duplicates" "restored manifest recognises the re-upload"

# The second way out: a rebuild sets the damaged file aside and starts
# afresh, so a file in the inbox is delivered again.
damage half
cp "$single" "$REMOTE/inbox/a.xml"
run_agent sync --rebuild-manifest
assert_eq 0 "$RC" "sync --rebuild-manifest over a truncated manifest"
assert_contains "$STDOUT" "1 delivered" "rebuilt manifest delivers the file again"
assert_eq 1 "$(count_files "$STATE" 'manifest.mdb.broken-*')" "truncated manifest set aside"
run_agent status --json
assert_eq 0 "$RC" "status after the rebuild"
assert_eq 1 "$(jq -r .records.archived <<<"$STDOUT")" "one record after the rebuild"

finish
