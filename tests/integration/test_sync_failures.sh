#!/usr/bin/env bash
# Bad files go to the error folder with a reason and exit code 1 while the
# good ones carry on; server, config, lock and state failures get their
# own exit codes and touch nothing.
. "$(dirname "$0")/lib.sh"

# A malformed XML and an empty file fail; the good file is delivered.
setup_case bad_files
cp "$TEST_DATA_DIR/rossum_export_single.xml" "$REMOTE/inbox/good.xml"
printf '<?xml version="1.0"?>\n<export><results><annotation url="x">\n' >"$REMOTE/inbox/broken.xml"
: >"$REMOTE/inbox/empty.xml"
printf '<!DOCTYPE export [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n<export>&x;</export>\n' >"$REMOTE/inbox/doctype.xml"
run_agent sync
assert_eq 1 "$RC" "exit code with failed files"
assert_contains "$STDOUT" "1 delivered" "summary delivered"
assert_contains "$STDOUT" "3 failed" "summary failed"
assert_exists "$REMOTE/archive/good.xml" "good file archived"
for name in broken.xml empty.xml doctype.xml; do
  assert_exists "$REMOTE/error/$name" "$name in the error folder"
  assert_exists "$REMOTE/error/$name.reason.txt" "$name reason file"
  assert_missing "$REMOTE/inbox/$name" "$name left the inbox"
done
assert_contains "$(cat "$REMOTE/error/empty.xml.reason.txt")" "empty file" "empty reason"
assert_contains "$(cat "$REMOTE/error/broken.xml.reason.txt")" "line" "broken reason gives the line"
assert_contains "$(cat "$REMOTE/error/doctype.xml.reason.txt")" "DOCTYPE" "doctype reason"
assert_contains "$STDERR" "failed 'broken.xml'" "log names the file"
assert_eq 1 "$(count_files "$OUT" '*.json')" "only the good file has output"
assert_not_contains "$(cat "$OUT"/*.json)" "root:" "no local file leaked"
run_agent status
assert_contains "$STDOUT" "failed     3" "status counts failures"
assert_contains "$STDOUT" "empty.xml: empty file" "status lists the reason"

# Partial files from a crashed run are removed at the next start.
touch "$OUT/.incoming.AbC123.tmp" "$STATE/tmp/download.XyZ789.tmp" "$OUT/keep.tmp"
run_agent sync
assert_missing "$OUT/.incoming.AbC123.tmp" "partial output removed"
assert_missing "$STATE/tmp/download.XyZ789.tmp" "partial download removed"
assert_exists "$OUT/keep.tmp" "other files in the output folder kept"
assert_contains "$STDERR" "removed 1 partial downloads and 1 partial outputs" "removal logged"

# status before the first run creates nothing in the state folder.
setup_case status_first
mkdir -p "$STATE"
run_agent status
assert_eq 0 "$RC" "status before the first run"
assert_contains "$STDOUT" "the agent has not run" "first run reported"
assert_missing "$STATE/manifest.mdb" "status created no manifest"
assert_missing "$STATE/agent-id" "status created no marker"

# A missing archive folder fails the pass before anything is taken.
setup_case archive_missing
cp "$TEST_DATA_DIR/rossum_export_single.xml" "$REMOTE/inbox/"
rmdir "$REMOTE/archive"
run_agent sync
assert_eq 3 "$RC" "exit code with a missing archive folder"
assert_contains "$STDERR" "the archive folder '$REMOTE/archive' does not exist" "missing folder named"
assert_missing "$REMOTE/archive" "archive folder not created"
assert_exists "$REMOTE/inbox/rossum_export_single.xml" "file left in the inbox"

# Upper-case extensions are selected too; an empty include is rejected.
setup_case upper_case
cp "$TEST_DATA_DIR/rossum_export_single.xml" "$REMOTE/inbox/LOUD.XML"
run_agent sync
assert_contains "$STDOUT" "1 delivered" "LOUD.XML taken"
sed -i "s/^\[remote\]$/[remote]\ninclude =/" "$CONFIG"
run_agent sync
assert_eq 2 "$RC" "empty include rejected"
assert_contains "$STDERR" "'include' has no pattern" "empty include message"

# A private key that others can read is refused like OpenSSH does.
setup_case key_mode
cp "$KEY_ED25519" "$LOCAL/open_key"
chmod 644 "$LOCAL/open_key"
write_config "server.private_key = $LOCAL/open_key"
run_agent check
assert_eq 2 "$RC" "exit code for a readable private key"
assert_contains "$STDOUT" "chmod 600 $LOCAL/open_key" "fix named"

# A changed host key: exit 3, both fingerprints, nothing touched.
setup_case host_key_changed
cp "$TEST_DATA_DIR/rossum_export_single.xml" "$REMOTE/inbox/"
ssh-keygen -q -t ed25519 -N '' -f "$LOCAL/other_key"
echo "[$SSHD_HOST]:$SSHD_PORT $(cut -d' ' -f1,2 "$LOCAL/other_key.pub")" >"$LOCAL/known_hosts"
write_config "server.known_hosts = $LOCAL/known_hosts"
run_agent sync
assert_eq 3 "$RC" "exit code for a changed host key"
assert_contains "$STDERR" "$(ssh-keygen -lf "$LOCAL/other_key.pub" | cut -d' ' -f2)" "expected fingerprint shown"
assert_contains "$STDERR" "$HOSTKEY_SHA256_ED25519" "presented fingerprint shown"
assert_exists "$REMOTE/inbox/rossum_export_single.xml" "inbox untouched"
assert_eq 0 "$(count_files "$OUT")" "no output"

# An unknown host and a wrong pin are refused too.
setup_case host_key_unknown
: >"$LOCAL/empty_known_hosts"
write_config "server.known_hosts = $LOCAL/empty_known_hosts"
run_agent sync
assert_eq 3 "$RC" "exit code for an unknown host"
assert_contains "$STDERR" "$HOSTKEY_SHA256_ED25519" "unknown host shows the fingerprint"
write_config "server.host_key_sha256 = SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
run_agent check
assert_eq 3 "$RC" "exit code for a wrong pin"

# A key the server does not accept: exit 3.
setup_case auth_rejected
ssh-keygen -q -t ed25519 -N '' -f "$LOCAL/stranger"
write_config "server.private_key = $LOCAL/stranger"
run_agent sync
assert_eq 3 "$RC" "exit code for a rejected key"
assert_contains "$STDERR" "$SSHD_USER" "auth error names the user"

# Nothing listens: exit 3 quickly.
setup_case no_server
sed -i "s/^port = .*/port = 1/" "$CONFIG"
run_agent sync
assert_eq 3 "$RC" "exit code without a server"

# A config error: exit 2 with file and line.
setup_case bad_config
echo "colour = blue" >>"$CONFIG"
run_agent sync
assert_eq 2 "$RC" "exit code for an unknown key"
assert_contains "$STDERR" "$CONFIG:$(wc -l <"$CONFIG"): unknown key 'colour'" "config error names file and line"
setup_case secret_in_config
sed -i "s/^\[server\]$/[server]\npassword = hunter2/" "$CONFIG"
run_agent check
assert_eq 2 "$RC" "exit code for a password in the config"
assert_contains "$STDERR" "password_file" "message names password_file"
assert_not_contains "$STDERR" "hunter2" "secret not logged"
run_agent --bogus
assert_eq 2 "$RC" "exit code for an unknown option"

# Another agent holds the lock: exit 5.
setup_case locked
cp "$TEST_DATA_DIR/rossum_export_single.xml" "$REMOTE/inbox/"
mkdir -p "$STATE"
exec {lock_fd}>"$STATE/lock"
flock -n "$lock_fd" || fail "could not take the lock for the test"
run_agent sync
exec {lock_fd}>&-
assert_eq 5 "$RC" "exit code while locked"
assert_contains "$STDERR" "another agent" "lock message"
assert_exists "$REMOTE/inbox/rossum_export_single.xml" "locked run touched nothing"

# The manifest is gone after earlier runs: exit 6, no redelivery.
setup_case state_lost
cp "$TEST_DATA_DIR/rossum_export_single.xml" "$REMOTE/inbox/"
run_agent sync
assert_eq 0 "$RC" "first run"
rm -f "$STATE/manifest.mdb"
cp "$TEST_DATA_DIR/rossum_export_multi.xml" "$REMOTE/inbox/"
run_agent sync
assert_eq 6 "$RC" "exit code with a lost manifest"
assert_contains "$STDERR" "rebuild-manifest" "message names the way out"
assert_exists "$REMOTE/inbox/rossum_export_multi.xml" "nothing taken without a manifest"
run_agent status
assert_eq 6 "$RC" "status with a lost manifest"
run_agent sync --rebuild-manifest
assert_eq 0 "$RC" "sync --rebuild-manifest"
assert_contains "$STDERR" "delivered again" "rebuild warns about redelivery"
assert_exists "$REMOTE/archive/rossum_export_multi.xml" "rebuilt manifest takes new files"
assert_exists "$STATE/manifest.mdb" "new manifest created"
run_agent sync
assert_eq 0 "$RC" "next sync after the rebuild"

# An unreadable manifest is set aside, not deleted.
head -c 8192 /dev/urandom >"$STATE/manifest.mdb"
run_agent sync
assert_eq 6 "$RC" "exit code with a garbage manifest"
run_agent sync --rebuild-manifest
assert_eq 0 "$RC" "rebuild over a garbage manifest"
assert_eq 1 "$(count_files "$STATE" 'manifest.mdb.broken-*')" "garbage manifest kept aside"
run_agent check --rebuild-manifest
assert_eq 2 "$RC" "--rebuild-manifest only with sync"

finish
