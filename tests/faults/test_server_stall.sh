#!/usr/bin/env bash
# A server that stops answering: `sync` gives up within 2T+2 seconds of
# the stall for a [server] timeout of T, exits with code 3 and a message
# that names the file, leaves no partial output, and the next run
# delivers each file exactly once.
#
# STALL_FILE_MB sets the size of the file that is downloaded while the
# server freezes (default 200).
. "$(dirname "$0")/stall_lib.sh"

T=3
LIMIT_MS=$(((2 * T + 2) * 1000))
STALL_FILE_MB=${STALL_FILE_MB:-200}

# The agent's config: original documents (copied, not parsed, so that
# the download is the slow step) and a timeout of T.
configure() {
  write_config "remote.passthrough = big-* doc-*"
  set_timeout "$T"
}

# Case 1: the sshd processes of the connection freeze while a large file
# downloads. The read times out, the download is discarded, the file stays
# in the inbox, and the connection is closed without waiting.
setup_case download_stall
configure
upload_random big-1 "$STALL_FILE_MB"
sha=$(sha_of_upload big-1)

start_sync
for i in $(seq 1 600); do
  size=$(stat -c %s "$STATE"/tmp/download.* 2>/dev/null | head -n 1)
  [ "${size:-0}" -gt $((4 * 1024 * 1024)) ] && break
  is_running "$SYNC_PID" || break
  sleep 0.05
done
[ "${size:-0}" -gt $((4 * 1024 * 1024)) ] ||
  fail "download_stall: the download did not start within 30 s"
stall_freeze
frozen=$STALLED
frozen_at=$(now_ms)
wait_sync 60 "download_stall"
elapsed=$((EXITED_MS - frozen_at))
echo "download_stall: gave up ${elapsed} ms after the stall (T = $T s)"
[ "$elapsed" -le "$LIMIT_MS" ] ||
  fail "download_stall: gave up after $elapsed ms, limit $LIMIT_MS ms"
assert_eq 3 "$RC" "download_stall: exit code of a timeout"
assert_contains "$STDERR" "inbox/big-1'" "download_stall: message names the file"
assert_contains "$STDERR" "no response within $T s" "download_stall: reason"
assert_no_partial_output download_stall
assert_eq 0 "$(count_files "$OUT")" "download_stall: outputs"
assert_exists "$REMOTE/inbox/big-1" "download_stall: file left in the inbox"
assert_eq 0 "$(count_files "$REMOTE/error")" "download_stall: error folder"

# The agent closed its end, so the session ends once it runs again.
stall_thaw
wait_gone 10 "$frozen" "download_stall: session after the thaw"

run_agent sync
assert_eq 0 "$RC" "download_stall: next sync"
assert_eq 1 "$(count_deliveries big-1 "$sha")" "download_stall: deliveries"
assert_eq 2 "$(count_files "$OUT")" "download_stall: copy and sidecar"
copy=$(ls "$OUT"/big-1.*.bin)
assert_eq "$sha" "$(sha256sum <"$copy" | cut -d' ' -f1)" \
  "download_stall: content of the copy"
assert_exists "$REMOTE/archive/big-1" "download_stall: archived"
assert_no_partial_output "download_stall after the next sync"

# Case 2: the listener freezes before the agent connects. TCP connects
# through the kernel's backlog, but no SSH banner ever arrives, and the
# handshake times out.
setup_case handshake_stall
configure
upload_random doc-1 1
listener=$(head -n 1 "$SSHD_FIXTURE/sshd.pid")
FROZEN_PIDS="$FROZEN_PIDS $listener"
kill -STOP "$listener"
started_at=$(now_ms)
start_sync
wait_sync 60 "handshake_stall"
elapsed=$((EXITED_MS - started_at))
echo "handshake_stall: gave up after ${elapsed} ms (T = $T s)"
[ "$elapsed" -le "$LIMIT_MS" ] ||
  fail "handshake_stall: gave up after $elapsed ms, limit $LIMIT_MS ms"
assert_eq 3 "$RC" "handshake_stall: exit code of a timeout"
assert_contains "$STDERR" "handshake" "handshake_stall: message names the step"
assert_contains "$STDERR" "no response within $T s" "handshake_stall: reason"
stall_thaw
run_agent sync
assert_eq 0 "$RC" "handshake_stall: next sync"
assert_eq 1 "$(count_deliveries doc-1 "$(sha256sum <"$REMOTE/archive/doc-1" |
  cut -d' ' -f1)")" "handshake_stall: deliveries"

# Case 3: the server stops in the middle of a backlog: the processes of
# the connection end and the listener stops (sshd.sh stop). The pass
# fails at once with a connection error; after a restart the next pass
# delivers the rest, and every file is delivered exactly once.
setup_case stop_backlog
configure
FILES=12
declare -A shas
for i in $(seq -w 1 "$FILES"); do
  upload_random "doc-$i" 8
  shas[doc-$i]=$(sha_of_upload "doc-$i")
done
start_sync
for i in $(seq 1 600); do
  [ "$(count_files "$OUT" '*.bin.json')" -ge 1 ] && break
  is_running "$SYNC_PID" || break
  sleep 0.05
done
[ "$(count_files "$OUT" '*.bin.json')" -ge 1 ] ||
  fail "stop_backlog: no file delivered within 30 s"
sessions=$(stall_session_pids)
SESSION_PIDS_SEEN="$SESSION_PIDS_SEEN $sessions"
stopped_at=$(now_ms)
kill -TERM $sessions
bash "$STALL_SSHD_SCRIPT" stop "$SSHD_FIXTURE" >/dev/null ||
  fail "stop_backlog: sshd.sh stop failed"
wait_sync 60 "stop_backlog"
elapsed=$((EXITED_MS - stopped_at))
echo "stop_backlog: failed ${elapsed} ms after the server stopped"
[ "$elapsed" -le "$LIMIT_MS" ] ||
  fail "stop_backlog: failed after $elapsed ms, limit $LIMIT_MS ms"
assert_eq 3 "$RC" "stop_backlog: exit code of a lost connection"
delivered=$(count_files "$OUT" '*.bin.json')
[ "$delivered" -lt "$FILES" ] ||
  fail "stop_backlog: all $FILES files were delivered before the stop"
assert_no_partial_output stop_backlog

bash "$STALL_SSHD_SCRIPT" restart "$SSHD_FIXTURE" >/dev/null ||
  fail "stop_backlog: sshd.sh restart failed"
run_agent sync
assert_eq 0 "$RC" "stop_backlog: next sync"
for name in "${!shas[@]}"; do
  assert_eq 1 "$(count_deliveries "$name" "${shas[$name]}")" \
    "stop_backlog: deliveries of $name"
done
assert_eq "$FILES" "$(count_files "$OUT" '*.bin.json')" "stop_backlog: sidecars"
assert_eq "$FILES" "$(count_files "$REMOTE/archive")" "stop_backlog: archived"
assert_eq 0 "$(count_files "$REMOTE/inbox")" "stop_backlog: inbox"
assert_no_partial_output "stop_backlog after the next sync"

# Case 4: a slow but live server. The processes of the connection are
# frozen for 2 s out of every 2.1 s, so data arrives in bursts and the
# download takes several times T, but a gap never reaches T. The timeout
# bounds the time without progress, not the download, so it succeeds.
setup_case slow_server
configure
upload_random doc-slow 24
sha=$(sha_of_upload doc-slow)
start_sync
for i in $(seq 1 600); do
  ls "$STATE"/tmp/download.* >/dev/null 2>&1 && break
  is_running "$SYNC_PID" || break
  sleep 0.05
done
sessions=$(stall_session_pids)
[ -n "$sessions" ] || fail "slow_server: no sshd session to slow down"
SESSION_PIDS_SEEN="$SESSION_PIDS_SEEN $sessions"
FROZEN_PIDS="$FROZEN_PIDS $sessions"
(
  while :; do
    kill -STOP $sessions 2>/dev/null || exit 0
    sleep 2
    kill -CONT $sessions 2>/dev/null || exit 0
    sleep 0.1
  done
) &
CYCLER_PID=$!
AGENT_PIDS="$AGENT_PIDS $CYCLER_PID"
started_at=$(now_ms)
wait_sync 300 "slow_server"
elapsed=$((EXITED_MS - started_at))
kill -KILL "$CYCLER_PID" 2>/dev/null
wait "$CYCLER_PID" 2>/dev/null
stall_thaw
echo "slow_server: the download took ${elapsed} ms (T = $T s)"
assert_eq 0 "$RC" "slow_server: exit code"
# Longer than T in total shows that the deadline covers each call, not the
# whole download. On a quiet machine the 0.1 s windows move most of the
# file, so more than T is all that can be counted on.
[ "$elapsed" -gt $((T * 1000)) ] ||
  fail "slow_server: took only $elapsed ms; the server was not slow enough"
assert_eq 1 "$(count_deliveries doc-slow "$sha")" "slow_server: deliveries"

finish
