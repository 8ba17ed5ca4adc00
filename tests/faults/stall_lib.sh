# Shared helpers for the tests in which the SFTP server stalls or stops.
#
# Sourcing this file starts a private OpenSSH sshd for the calling script
# (tests/integration/sshd.sh, in $TEST_TMP/sshd with its own port) and
# loads the integration helpers (setup_case, write_config, run_agent,
# assert_*, output_for). The script then freezes the sshd processes that
# serve the agent's connection with SIGSTOP (stall_freeze), and the EXIT
# trap thaws them, stops the agents the script started (by PID) and stops
# that sshd.
#
# Environment: AGENT_BIN, TEST_DATA_DIR and TEST_TMP as for the
# integration tests.
set -u

: "${AGENT_BIN:?AGENT_BIN must name the agent binary}"
: "${TEST_DATA_DIR:?TEST_DATA_DIR must name tests/data}"

STALL_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STALL_SSHD_SCRIPT=$STALL_SRC/../integration/sshd.sh
STALL_DIR=${TEST_TMP:-/tmp/agent-stall/$(basename "$0" .sh)}
STALL_SSHD_DIR=$STALL_DIR/sshd

# Processes this script started (agents and helper loops) or froze, for
# the EXIT trap.
AGENT_PIDS=""
FROZEN_PIDS=""
SESSION_PIDS_SEEN=""

# Return whether PID $1 exists and is not a zombie.
is_running() {
  local state
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) ||
    return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# Return whether PID $1 is still an sshd process, so that a PID reused by
# another program is never signalled.
is_sshd() {
  tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q '^sshd'
}

stall_cleanup() {
  local pid
  for pid in $AGENT_PIDS; do
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "$FROZEN_PIDS" ]; then
    kill -CONT $FROZEN_PIDS 2>/dev/null || true
  fi
  bash "$STALL_SSHD_SCRIPT" stop "$STALL_SSHD_DIR" >/dev/null 2>&1 || true
  # Sessions outlive the listener; end those that are left.
  for pid in $SESSION_PIDS_SEEN; do
    if is_running "$pid" && is_sshd "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
}

rm -rf "$STALL_DIR"
mkdir -p "$STALL_DIR"
if ! bash "$STALL_SSHD_SCRIPT" start "$STALL_SSHD_DIR" \
     >"$STALL_DIR/sshd-start.log" 2>&1; then
  cat "$STALL_DIR/sshd-start.log" >&2
  echo "$(basename "$0"): cannot start sshd" >&2
  exit 1
fi
trap stall_cleanup EXIT

SSHD_FIXTURE=$STALL_SSHD_DIR
TEST_TMP=$STALL_DIR/cases
# shellcheck source=../integration/lib.sh
. "$STALL_SRC/../integration/lib.sh"

now_ms() {
  echo $(($(date +%s%N) / 1000000))
}

# Set [server] timeout in $CONFIG to $1 seconds. write_config writes 10.
set_timeout() {
  sed -i "s/^timeout = 10\$/timeout = $1/" "$CONFIG"
  grep -q "^timeout = $1\$" "$CONFIG" || fail "cannot set timeout in $CONFIG"
}

# Print the PIDs of the processes below our sshd's listener: the
# processes that serve the open connections.
stall_session_pids() {
  local listener queue pid child pids=""
  listener=$(head -n 1 "$STALL_SSHD_DIR/sshd.pid")
  queue=$listener
  while [ -n "$queue" ]; do
    set -- $queue
    pid=$1
    shift
    queue="$*"
    for child in $(ps -o pid= --ppid "$pid"); do
      pids="$pids $child"
      queue="$queue $child"
    done
  done
  echo $pids
}

# Freeze the processes that serve the current connections; fails when
# there are none. Sets STALLED to their PIDs.
stall_freeze() {
  STALLED=$(stall_session_pids)
  [ -n "$STALLED" ] || fail "no sshd session to freeze"
  SESSION_PIDS_SEEN="$SESSION_PIDS_SEEN $STALLED"
  FROZEN_PIDS="$FROZEN_PIDS $STALLED"
  kill -STOP $STALLED
}

# Let every frozen process run again.
stall_thaw() {
  if [ -n "$FROZEN_PIDS" ]; then
    kill -CONT $FROZEN_PIDS 2>/dev/null || true
  fi
  FROZEN_PIDS=""
}

# Wait up to $1 seconds until none of the PIDs $2 runs any more; the
# session processes exit once the agent has closed its end.
wait_gone() { # seconds pids what
  local i pid alive
  for i in $(seq 1 $(($1 * 10))); do
    alive=""
    for pid in $2; do
      is_running "$pid" && is_sshd "$pid" && alive="$alive $pid"
    done
    if [ -z "$alive" ]; then
      pass
      return 0
    fi
    sleep 0.1
  done
  fail "$3: sshd processes$alive still run after $1 s"
}

# Start `sync` in the background with output in $LOCAL/sync.out and
# $LOCAL/sync.err. Sets SYNC_PID.
start_sync() {
  "$AGENT_BIN" sync -c "$CONFIG" >"$LOCAL/sync.out" 2>"$LOCAL/sync.err" &
  SYNC_PID=$!
  AGENT_PIDS="$AGENT_PIDS $SYNC_PID"
}

# Wait up to $1 seconds for the background sync to exit. Sets RC, STDOUT,
# STDERR and EXITED_MS (the time of the exit by now_ms).
wait_sync() { # seconds what
  local i
  for i in $(seq 1 $(($1 * 20))); do
    if ! is_running "$SYNC_PID"; then
      EXITED_MS=$(now_ms)
      RC=0
      wait "$SYNC_PID" || RC=$?
      STDOUT=$(cat "$LOCAL/sync.out")
      STDERR=$(cat "$LOCAL/sync.err")
      return 0
    fi
    sleep 0.05
  done
  STDOUT=$(cat "$LOCAL/sync.out")
  STDERR=$(cat "$LOCAL/sync.err")
  fail "$2: sync still runs after $1 s"
}

# Write a file of $2 MiB of random bytes to the inbox as $1.
upload_random() { # name mib
  head -c "$(($2 * 1024 * 1024))" /dev/urandom >"$REMOTE/inbox/$1"
}

# Print the SHA-256 of the inbox file $1.
sha_of_upload() {
  sha256sum <"$REMOTE/inbox/$1" | cut -d' ' -f1
}

# Print the number of sidecars in $OUT whose source name is $1 and whose
# SHA-256 is $2.
count_deliveries() { # name sha256
  local n=0 f
  for f in "$OUT"/*.bin.json; do
    [ -e "$f" ] || continue
    if [ "$(jq -r .source.name "$f")" == "$1" ] &&
       [ "$(jq -r .source.sha256 "$f")" == "$2" ]; then
      n=$((n + 1))
    fi
  done
  echo "$n"
}

# Check that no temporary or partial file is left in the output folder
# and the download folder.
assert_no_partial_output() { # what
  assert_eq 0 "$(count_files "$OUT" '.incoming*')" "$1: temporary outputs"
  assert_eq 0 "$(count_files "$STATE/tmp" 'download*')" "$1: partial downloads"
}
