#!/usr/bin/env bash
# `run` against a server that freezes again and again. Each time the
# service notices within poll_interval + 2T + 2 seconds, connects again,
# keeps running and delivers the next file. Its count of open file
# descriptors stays the same from round to round.
#
# STALL_ROUNDS sets the number of freezes (default 4).
. "$(dirname "$0")/stall_lib.sh"

T=3
POLL=1
LIMIT_MS=$(((POLL + 2 * T + 2) * 1000))
STALL_ROUNDS=${STALL_ROUNDS:-4}
RUN_PID=""

setup_case daemon_stall
write_config "remote.passthrough = doc-*"
set_timeout "$T"
printf '[agent]\npoll_interval = %s\nkeepalive_interval = 1\n' "$POLL" \
  >>"$CONFIG"
printf 'reconnect_base = 1\nreconnect_max = 2\n' >>"$CONFIG"

# Show the service's log when a check fails.
fail_run() {
  STDERR=$(cat "$LOCAL/run.log" 2>/dev/null || true)
  fail "$@"
}

# Wait up to $2 seconds for the delivery of the inbox file $1, whose
# SHA-256 is $3.
wait_for_delivery() { # name seconds sha256
  local i
  for i in $(seq 1 $(($2 * 10))); do
    if [ "$(count_deliveries "$1" "$3")" -ge 1 ]; then
      pass
      return 0
    fi
    is_running "$RUN_PID" || fail_run "$1: the service exited"
    sleep 0.1
  done
  fail_run "$1: not delivered within $2 s"
}

# Print the service's count of open file descriptors: the smallest of
# five samples over a second, so that a file open for a moment in a pass
# is not counted.
open_fds() {
  local i count least=""
  for i in 1 2 3 4 5; do
    count=$(ls "/proc/$RUN_PID/fd" | wc -l)
    if [ -z "$least" ] || [ "$count" -lt "$least" ]; then
      least=$count
    fi
    sleep 0.2
  done
  echo "$least"
}

declare -A shas
"$AGENT_BIN" run -v -c "$CONFIG" >"$LOCAL/run.out" 2>"$LOCAL/run.log" &
RUN_PID=$!
AGENT_PIDS="$AGENT_PIDS $RUN_PID"

upload_random doc-0 1
shas[doc-0]=$(sha_of_upload doc-0)
wait_for_delivery doc-0 30 "${shas[doc-0]}"
fds_before=$(open_fds)
echo "daemon_stall: $fds_before open file descriptors after the first delivery"

for round in $(seq 1 "$STALL_ROUNDS"); do
  stall_freeze
  frozen=$STALLED
  frozen_at=$(now_ms)
  for i in $(seq 1 $((LIMIT_MS / 50 + 100))); do
    [ "$(grep -c 'lost the connection' "$LOCAL/run.log")" -ge "$round" ] &&
      break
    is_running "$RUN_PID" || fail_run "round $round: the service exited"
    sleep 0.05
  done
  noticed_ms=$(($(now_ms) - frozen_at))
  echo "daemon_stall: round $round: lost connection noticed after" \
    "$noticed_ms ms"
  [ "$(grep -c 'lost the connection' "$LOCAL/run.log")" -ge "$round" ] ||
    fail_run "round $round: the stall was not noticed"
  [ "$noticed_ms" -le "$LIMIT_MS" ] ||
    fail_run "round $round: noticed after $noticed_ms ms, limit $LIMIT_MS ms"
  stall_thaw
  wait_gone 10 "$frozen" "round $round: frozen session after the thaw"

  upload_random "doc-$round" 1
  shas[doc-$round]=$(sha_of_upload "doc-$round")
  wait_for_delivery "doc-$round" 30 "${shas[doc-$round]}"
  assert_eq "$fds_before" "$(open_fds)" \
    "round $round: open file descriptors"
done

assert_contains "$(cat "$LOCAL/run.log")" "no response within $T s" \
  "daemon_stall: reason of the lost connection"
kill -TERM "$RUN_PID"
for i in $(seq 1 100); do
  is_running "$RUN_PID" || break
  sleep 0.1
done
RC=0
wait "$RUN_PID" || RC=$?
assert_eq 0 "$RC" "daemon_stall: exit code after SIGTERM"
for name in "${!shas[@]}"; do
  assert_eq 1 "$(count_deliveries "$name" "${shas[$name]}")" \
    "daemon_stall: deliveries of $name"
done
assert_no_partial_output daemon_stall

finish
