#!/usr/bin/env bash
# check and sync log in with ed25519, ECDSA and RSA user keys, a
# passphrase-protected key, and a pinned host key fingerprint.
. "$(dirname "$0")/lib.sh"

setup_case keys
for key in "$KEY_ED25519" "$KEY_ECDSA" "$KEY_RSA"; do
  write_config "server.private_key = $key"
  run_agent check
  assert_eq 0 "$RC" "check with $(basename "$key")"
  assert_contains "$STDOUT" "ok    login" "login line for $(basename "$key")"
  assert_contains "$STDOUT" "ok    archive" "archive checked"
  assert_contains "$STDOUT" "ok    error" "error folder checked"
  assert_eq 0 "$(count_files "$REMOTE/archive" '.*')" "no probe file left"
done

write_config "server.private_key = $KEY_PASSPHRASE" "server.passphrase_file = $PASSPHRASE_FILE"
run_agent check
assert_eq 0 "$RC" "check with a passphrase-protected key"
assert_not_contains "$STDERR$STDOUT" "$(cat "$PASSPHRASE_FILE")" "passphrase never printed"

# RSA key end to end, with the host key pinned instead of known_hosts.
write_config "server.private_key = $KEY_RSA" "server.host_key_sha256 = $HOSTKEY_SHA256_ED25519"
cp "$TEST_DATA_DIR/rossum_export_single.xml" "$REMOTE/inbox/"
run_agent sync
assert_eq 0 "$RC" "sync with RSA and a pinned key"
assert_exists "$REMOTE/archive/rossum_export_single.xml" "archived"
assert_eq 4410001 "$(json_of rossum_export_single.xml '.annotations[0].id')" "delivered"

# A missing error folder makes check fail with exit 3 and name the folder.
rm -rf "$REMOTE/error"
run_agent check
assert_eq 3 "$RC" "check with a missing error folder"
assert_contains "$STDOUT" "FAIL  error" "failed folder named"

finish
