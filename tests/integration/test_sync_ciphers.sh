#!/usr/bin/env bash
# [server] ciphers: the agent's default choice against OpenSSH, a
# configured cipher end to end, and the errors for a cipher that libssh2
# does not support, one the server does not offer, and a malformed list.
. "$(dirname "$0")/lib.sh"

setup_case ciphers

# `-v` logs what the handshake negotiated. Without the key the agent
# offers chacha20-poly1305 first, which OpenSSH takes.
cp "$TEST_DATA_DIR/rossum_export_single.xml" "$REMOTE/inbox/"
run_agent sync -v
assert_eq 0 "$RC" "sync with the default ciphers"
assert_contains "$STDERR" \
  "client->server cipher chacha20-poly1305@openssh.com MAC <implicit>, server->client cipher chacha20-poly1305@openssh.com MAC <implicit>" \
  "default cipher negotiated"
assert_exists "$REMOTE/archive/rossum_export_single.xml" "archived with the default"

# AES-GCM from the config, end to end.
write_config "server.ciphers = aes128-gcm@openssh.com,aes256-ctr"
cp "$TEST_DATA_DIR/rossum_export_multi.xml" "$REMOTE/inbox/"
run_agent sync -v
assert_eq 0 "$RC" "sync with AES-GCM"
assert_contains "$STDERR" "ciphers offered to $SSHD_HOST:$SSHD_PORT: aes128-gcm@openssh.com,aes256-ctr" \
  "only the configured ciphers offered"
assert_contains "$STDERR" \
  "server->client cipher aes128-gcm@openssh.com MAC <implicit>" \
  "AES-GCM negotiated"
assert_exists "$REMOTE/archive/rossum_export_multi.xml" "archived with AES-GCM"
assert_eq 2 "$(count_files "$OUT" '*.json')" "both exports delivered"

# AES-CTR takes the first MAC the agent prefers.
write_config "server.ciphers = aes128-ctr"
run_agent check -v
assert_eq 0 "$RC" "check with AES-CTR"
assert_contains "$STDERR" \
  "server->client cipher aes128-ctr MAC hmac-sha2-256-etm@openssh.com" \
  "AES-CTR with an encrypt-then-MAC MAC"

# A name libssh2 does not know is a config error (exit code 2), and the
# message lists the names that work. check prints it on stdout.
write_config "server.ciphers = aes128-gcm@openssh.com,serpent256-ctr"
run_agent check
assert_eq 2 "$RC" "check with an unknown cipher"
assert_contains "$STDOUT" "FAIL  server" "check names the failed step"
assert_contains "$STDOUT" "[server] ciphers names 'serpent256-ctr'" "unknown name shown"
assert_contains "$STDOUT" "chacha20-poly1305@openssh.com, aes256-gcm@openssh.com" \
  "supported names listed"
run_agent sync
assert_eq 2 "$RC" "sync with an unknown cipher"
assert_contains "$STDERR" "[server] ciphers names 'serpent256-ctr'" "sync shows it too"

# A cipher that OpenSSH 9.2 does not offer by default fails the handshake
# (exit code 3) with a hint at the setting.
write_config "server.ciphers = 3des-cbc"
cp "$TEST_DATA_DIR/rossum_export_single.csv" "$REMOTE/inbox/"
run_agent sync
assert_eq 3 "$RC" "sync with a cipher the server does not offer"
assert_contains "$STDERR" "none of the ciphers '3des-cbc' that [server] ciphers sets" \
  "handshake failure names the setting"
assert_exists "$REMOTE/inbox/rossum_export_single.csv" "nothing taken"

# A malformed list fails when the config loads, with the line.
write_config "server.ciphers = aes128-gcm@openssh.com, aes256-ctr"
run_agent check
assert_eq 2 "$RC" "check with a space in the list"
assert_contains "$STDERR" "agent.conf" "file named"
assert_contains "$STDERR" "invalid ciphers 'aes128-gcm@openssh.com, aes256-ctr'" \
  "malformed list shown"

finish
