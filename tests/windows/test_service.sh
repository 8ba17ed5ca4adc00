#!/usr/bin/env bash
# The Windows service end to end under wine, in a wine prefix of its own.
# `install` registers the service and `sc start` runs it. A file dropped
# into the inbox comes out as JSON. `sc stop` ends the service cleanly, and
# `uninstall` removes it but keeps the data folder.
#
# wine's sc has no qc or qfailure, so the registration is read from the
# registry with reg. NOTE: wine 8 accepts the recovery actions but does
# not store them, so they are not checked here; nor is the folder access
# list, which wine does not enforce.
set -euo pipefail
# shellcheck source=../integration/lib.sh
. "$(dirname "$0")/../integration/lib.sh"

: "${AGENT_EXE:?AGENT_EXE must name rossum-sftp-agent.exe}"
here=$(cd "$(dirname "$0")" && pwd)
service=rossum-sftp-agent
service_key='HKLM\SYSTEM\CurrentControlSet\Services\rossum-sftp-agent'

setup_case service
export WINEPREFIX="$LOCAL/wine"
"$here/wine-prefix.sh" start "$WINEPREFIX" >/dev/null
trap '"$here/wine-prefix.sh" stop "$WINEPREFIX"' EXIT

# Run a Windows program in the prefix; sets RC and STDOUT (LF line ends).
win() {
  RC=0
  STDOUT=$(WINE_TIMEOUT=60 "$here/wine-run.sh" "$@" 2>"$LOCAL/win.err" |
           tr -d '\r') || RC=$?
  STDERR=$(tr -d '\r' <"$LOCAL/win.err")
}

# Print the state of the service that sc query reports, such as RUNNING.
service_state() {
  win sc query "$service"
  sed -n 's/^ *STATE *: *[0-9]* *\([A-Z_]*\).*/\1/p' <<<"$STDOUT"
}

# Wait up to $2 seconds for the service to reach state $1.
wait_state() {
  local i state=
  for i in $(seq 1 "$2"); do
    state=$(service_state)
    [ "$state" = "$1" ] && return 0
    sleep 1
  done
  fail "service state: expected $1 after $2 s, got '$state'"
}

wine_path() { printf 'Z:%s\n' "${1//\//\\}"; }

data="$WINEPREFIX/drive_c/ProgramData/rossum-sftp-agent"
config='C:\ProgramData\rossum-sftp-agent\agent.conf'

# install: the service and an example config.
win "$AGENT_EXE" install
assert_eq 0 "$RC" "install exit code"
win reg query "$service_key"
assert_eq 0 "$RC" "service key"
assert_contains "$STDOUT" "service -c" "ImagePath"
assert_contains "$STDOUT" "$config" "ImagePath names the config"
assert_contains "$(grep -i ' Start ' <<<"$STDOUT")" "0x2" "automatic start"
assert_contains "$STDOUT" 'NT SERVICE\rossum-sftp-agent' "service account"
assert_exists "$data/agent.conf" "example config"

# A config for the loopback sshd, written where the service reads it.
cat >"$data/agent.conf" <<CONF
[server]
host = $SSHD_HOST
port = $SSHD_PORT
user = $SSHD_USER
private_key = $(wine_path "$KEY_ED25519")
known_hosts = $(wine_path "$KNOWN_HOSTS")
timeout = 10
[remote]
inbox = $REMOTE/inbox
archive = $REMOTE/archive
error = $REMOTE/error
stable_seconds = 0
[local]
state_dir = C:\\ProgramData\\rossum-sftp-agent\\state
output_dir = C:\\ProgramData\\rossum-sftp-agent\\out
[agent]
poll_interval = 1
log_target = file
log_file = C:\\ProgramData\\rossum-sftp-agent\\agent.log
CONF

win sc start "$service"
assert_eq 0 "$RC" "sc start exit code"
wait_state RUNNING 60

cp "$TEST_DATA_DIR/rossum_export_single.xml" "$REMOTE/inbox/invoice.xml"
for i in $(seq 1 60); do
  [ "$(count_files "$data/out" '*.json')" -ge 1 ] && break
  sleep 1
done
assert_eq 1 "$(count_files "$data/out" '*.json')" "outputs of the service"
output=$(ls "$data"/out/*.json)
assert_eq "invoice.xml" "$(jq -r .source.name "$output")" "output source"
for i in $(seq 1 30); do
  [ -e "$REMOTE/archive/invoice.xml" ] && break
  sleep 1
done
assert_exists "$REMOTE/archive/invoice.xml" "archived remote file"

win sc stop "$service"
assert_eq 0 "$RC" "sc stop exit code"
wait_state STOPPED 60
log_text=$(tr -d '\r' <"$data/agent.log")
assert_contains "$log_text" "started: polling" "start logged"
assert_contains "$log_text" "stopping on" "stop request logged"
assert_contains "$log_text" "stopped" "clean stop logged"

# uninstall: the service goes, the data stays.
win "$AGENT_EXE" uninstall
assert_eq 0 "$RC" "uninstall exit code"
win reg query "$service_key"
assert_eq 1 "$RC" "service key after uninstall"
assert_exists "$data/agent.conf" "config kept"
assert_exists "$data/state" "state kept"
assert_exists "$output" "output kept"

finish
