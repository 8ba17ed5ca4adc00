#!/usr/bin/env bash
# The run command as a service: delivery while running, the state folder's
# lock, reconnects after the server went down, SIGHUP reloads, stops during
# the settle wait and during a download, and systemd notifications.
. "$(dirname "$0")/lib.sh"

: "${NOTIFY_LISTEN:?NOTIFY_LISTEN must name the notify_listen test tool}"
SSHD_SCRIPT="$(dirname "$0")/sshd.sh"

single=$TEST_DATA_DIR/rossum_export_single.xml
multi=$TEST_DATA_DIR/rossum_export_multi.xml

# Processes that this script started. The trap stops them by PID, and
# starts the fixture's sshd again if a failed check left it stopped, so
# the tests after this one find it running.
RUN_PID=""
LISTEN_PID=""
SSHD_STOPPED=0

stop_started() {
  local pid
  for pid in $RUN_PID $LISTEN_PID; do
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  RUN_PID=""
  LISTEN_PID=""
  if [ "$SSHD_STOPPED" -eq 1 ]; then
    bash "$SSHD_SCRIPT" restart "$SSHD_FIXTURE" >/dev/null || true
  fi
}
trap stop_started EXIT

now_ms() {
  echo $(($(date +%s%N) / 1000000))
}

# Show the service's log when a check fails.
fail_run() {
  STDOUT=$(cat "$LOCAL/notify.out" 2>/dev/null || true)
  STDERR=$(cat "$LOCAL/run.log" 2>/dev/null || true)
  fail "$@"
}

# Write $CONFIG for the service: poll every second, files settle for one
# second, reconnect after 1 s, then every 2 s. Arguments as write_config.
write_run_config() {
  write_config "remote.stable_seconds = 1" "$@"
  printf '[agent]\npoll_interval = 1\nreconnect_base = 1\nreconnect_max = 2\n' \
    >>"$CONFIG"
  printf 'metrics_file = %s\n' "$LOCAL/agent.prom" >>"$CONFIG"
}

# Start a notification listener on socket $1 for at most 120 s.
start_listener() {
  : >"$LOCAL/notify.out"
  "$NOTIFY_LISTEN" "$1" 120 >"$LOCAL/notify.out" &
  LISTEN_PID=$!
  local i
  for i in $(seq 1 50); do
    if [[ "$1" == @* ]] || [ -S "$1" ]; then
      sleep 0.1
      return 0
    fi
    sleep 0.1
  done
  fail_run "notify_listen did not create $1"
}

# Start the service in the background with debug logging. Extra
# environment assignments for it may be given as arguments.
start_run() {
  : >"$LOCAL/run.log"
  env "$@" "$AGENT_BIN" run -v -c "$CONFIG" >"$LOCAL/run.out" \
    2>"$LOCAL/run.log" &
  RUN_PID=$!
}

is_running() {
  local state
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) ||
    return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# Wait up to $2 seconds until the service's log contains $1 at least $4
# times (default once).
wait_for_log() { # text seconds what [count]
  local i
  for i in $(seq 1 $(($2 * 10))); do
    if [ "$(grep -cF -- "$1" "$LOCAL/run.log")" -ge "${4:-1}" ]; then
      pass
      return 0
    fi
    is_running "$RUN_PID" || fail_run "$3: the service exited"
    sleep 0.1
  done
  fail_run "$3: '$1' not logged ${4:-1} times within $2 s"
}

# Wait up to $2 seconds for the output of source name $1.
wait_for_output() { # name seconds what
  local i
  for i in $(seq 1 $(($2 * 10))); do
    if output_for "$1" >/dev/null; then
      pass
      return 0
    fi
    sleep 0.1
  done
  fail_run "$3: no output for '$1' within $2 s"
}

# Wait up to $1 seconds for the service to exit; sets RC.
wait_for_exit() { # seconds what
  local i
  for i in $(seq 1 $(($1 * 10))); do
    if ! is_running "$RUN_PID"; then
      RC=0
      wait "$RUN_PID" || RC=$?
      RUN_PID=""
      pass
      return 0
    fi
    sleep 0.1
  done
  fail_run "$2: still running after $1 s"
}

# Print the number of logins that the fixture's sshd accepted since it
# last started.
sshd_logins() {
  grep -c 'Accepted publickey' "$SSHD_DIR/sshd.log" || true
}

# Print the PIDs of the processes below $1, depth first.
descendants() {
  local child
  for child in $(ps -o pid= --ppid "$1"); do
    echo "$child"
    descendants "$child"
  done
}

# Stop the fixture's sshd as a server crash would: its listener and the
# session processes it forked. Stopping only the listener, as sshd.sh stop
# does, would leave the agent's open session working.
stop_sshd() {
  local listener sessions pid
  listener=$(head -n 1 "$SSHD_DIR/sshd.pid")
  sessions=$(descendants "$listener")
  SSHD_STOPPED=1
  bash "$SSHD_SCRIPT" stop "$SSHD_FIXTURE"
  for pid in $sessions; do
    kill -TERM "$pid" 2>/dev/null || true
  done
}

start_sshd() {
  bash "$SSHD_SCRIPT" restart "$SSHD_FIXTURE" >/dev/null ||
    fail_run "the fixture's sshd did not start again"
  SSHD_STOPPED=0
}

# ---------------------------------------------------------------------------
# An invalid config ends run at start-up with exit code 2, before any
# readiness is reported.
setup_case run_bad_config
write_run_config
sed -i 's/^poll_interval = 1$/poll_interval = often/' "$CONFIG"
start_listener "$LOCAL/notify.sock"
start_run NOTIFY_SOCKET="$LOCAL/notify.sock"
wait_for_exit 10 "run with an invalid config"
assert_eq 2 "$RC" "exit code for an invalid config"
STDERR=$(cat "$LOCAL/run.log")
assert_contains "$STDERR" "poll_interval" "the message names the key"
sleep 0.3
assert_not_contains "$(cat "$LOCAL/notify.out")" "READY=1" \
  "no readiness after a failed start"
stop_started

# ---------------------------------------------------------------------------
# The main scenario: one service, many events.
setup_case run_daemon
write_run_config
start_listener "$LOCAL/notify.sock"
start_run NOTIFY_SOCKET="$LOCAL/notify.sock"
wait_for_log "poll 1 done" 10 "first poll"
assert_contains "$(cat "$LOCAL/notify.out")" \
  "STATUS=connected to $SSHD_HOST:$SSHD_PORT; polling every 1 s" \
  "readiness reports the connection"

# A dropped file is delivered within poll_interval + stable_seconds + 2 s.
cp "$single" "$REMOTE/inbox/a.xml"
dropped=$(now_ms)
wait_for_output a.xml 4 "delivery while running"
delay=$(($(now_ms) - dropped))
[ "$delay" -le 4000 ] && pass || fail_run "a.xml took $delay ms"
wait_for_log "pass done: 1 delivered" 5 "pass logged"
assert_exists "$REMOTE/archive/a.xml" "a.xml archived"
assert_contains "$(cat "$LOCAL/agent.prom")" \
  'rossum_sftp_agent_files_delivered_total{format="xml"} 1' \
  "metrics count the delivery"

# The service holds the state folder's lock; sync exits 5 and names it.
run_agent sync
assert_eq 5 "$RC" "sync while run holds the lock"
assert_contains "$STDERR" "process $RUN_PID" "the message names the run's PID"

# Idle polls reuse the connection: no new login.
logins=$(sshd_logins)
polls=$(grep -c "done;" "$LOCAL/run.log")
wait_for_log "done;" 10 "three idle polls" $((polls + 3))
assert_eq "$logins" "$(sshd_logins)" "idle polls log in no more"

# The server goes down while the service runs, and comes back.
stop_sshd
wait_for_log "lost the connection to $SSHD_HOST:$SSHD_PORT" 10 \
  "dropped connection noticed"
wait_for_log "attempt 1 to reach $SSHD_HOST:$SSHD_PORT failed" 10 \
  "first reconnect attempt logged"
wait_for_log "retrying in 1 s" 5 "first backoff is reconnect_base"
wait_for_log "attempt 3 to reach" 10 "third reconnect attempt logged"
wait_for_log "retrying in 2 s" 5 "backoff capped at reconnect_max"
is_running "$RUN_PID" && pass || fail_run "run exited while the server was down"
start_sshd
cp "$multi" "$REMOTE/inbox/b.xml"
wait_for_log "connected to $SSHD_HOST:$SSHD_PORT again after" 10 \
  "reconnect logged"
wait_for_output b.xml 10 "delivery after the reconnect"
assert_eq 1 "$(sshd_logins)" "one login after the restart"

# SIGHUP with an invalid config is logged and ignored.
sed -i 's/^poll_interval = 1$/poll_interval = often/' "$CONFIG"
kill -HUP "$RUN_PID"
wait_for_log "reload failed, so the agent keeps the config it runs with" 5 \
  "invalid reload logged"
assert_contains "$(grep 'reload failed' "$LOCAL/run.log")" "poll_interval" \
  "invalid reload names the key"
cp "$single" "$REMOTE/inbox/c.xml"
wait_for_output c.xml 5 "delivery with the old config after a failed reload"

# SIGHUP with a valid changed config is applied: a new archive folder and
# host key pinning take effect (the latter with a new login), and a new
# output_dir is reported as needing a restart.
mkdir -p "$REMOTE/archive2"
write_run_config "server.host_key_sha256 = $HOSTKEY_SHA256_ED25519"
sed -i "s|^archive = .*|archive = $REMOTE/archive2|; s|^output_dir = .*|output_dir = $LOCAL/out2|" \
  "$CONFIG"
kill -HUP "$RUN_PID"
wait_for_log "reloaded the config from '$CONFIG'" 5 "valid reload logged"
wait_for_log "output_dir changed from '$OUT' to '$LOCAL/out2'" 1 \
  "output_dir change needs a restart"
wait_for_log "the server settings changed; reconnecting" 1 \
  "server change reconnects"
cp "$single" "$REMOTE/inbox/d.xml"
wait_for_output d.xml 5 "delivery after the reload"
assert_exists "$REMOTE/archive2/d.xml" "new archive folder used"
assert_missing "$LOCAL/out2" "output_dir kept until a restart"
assert_eq 2 "$(sshd_logins)" "one new login for the new server settings"

# SIGTERM ends the run with exit code 0 within 10 s.
kill -TERM "$RUN_PID"
stopped=$(now_ms)
wait_for_exit 10 "stop on SIGTERM"
assert_eq 0 "$RC" "exit code after SIGTERM"
STDERR=$(cat "$LOCAL/run.log")
assert_contains "$STDERR" "stopping on SIGTERM" "stop logged"
assert_contains "$STDERR" "info: stopped" "end logged"
[ $(($(now_ms) - stopped)) -le 10000 ] && pass || fail_run "stop took too long"

# The listener received readiness, status lines and the shutdown.
sleep 0.3
notes=$(cat "$LOCAL/notify.out")
assert_contains "$notes" "READY=1" "READY sent"
assert_contains "$notes" "STATUS=poll " "STATUS sent after polls"
assert_contains "$notes" "STATUS=cannot use the server (connection failed)" \
  "STATUS sent while the server was down"
assert_contains "$notes" "STOPPING=1" "STOPPING sent"
assert_eq 1 "$(grep -c 'READY=1' "$LOCAL/notify.out")" "READY sent once"
stop_started

# ---------------------------------------------------------------------------
# Keepalives while idle keep the session, so the next poll needs no login.
setup_case run_keepalive
write_run_config
sed -i 's/^poll_interval = 1$/poll_interval = 6\nkeepalive_interval = 2/' \
  "$CONFIG"
logins=$(sshd_logins)
start_run
wait_for_log "poll 1 done" 10 "first poll"
wait_for_log "keepalive to $SSHD_HOST:$SSHD_PORT done" 10 \
  "two keepalives between polls" 2
cp "$single" "$REMOTE/inbox/e.xml"
wait_for_output e.xml 12 "delivery after keepalives"
assert_eq $((logins + 1)) "$(sshd_logins)" "one login for the whole run"
kill -TERM "$RUN_PID"
wait_for_exit 10 "stop after keepalives"
assert_eq 0 "$RC" "exit code after keepalives"
stop_started

# ---------------------------------------------------------------------------
# SIGTERM during the wait for settling files ends the run at once.
setup_case run_stop_settling
write_run_config
sed -i 's/^stable_seconds = .*/stable_seconds = 600/' "$CONFIG"
start_run
wait_for_log "poll 1 done" 10 "first poll"
cp "$single" "$REMOTE/inbox/slow.xml"
wait_for_log "waiting 600 s for 1 files to settle" 10 "settle wait started"
kill -TERM "$RUN_PID"
wait_for_exit 10 "stop during the settle wait"
assert_eq 0 "$RC" "exit code after a stop during the settle wait"
assert_exists "$REMOTE/inbox/slow.xml" "settling file left in the inbox"
assert_eq 0 "$(count_files "$OUT" '*.json')" "nothing delivered"
stop_started

# ---------------------------------------------------------------------------
# SIGTERM during a download abandons it: no partial file and no output
# stay behind, and the remote file stays in the inbox. The watchdog is
# pinged while the download runs. The notification socket is abstract.
setup_case run_stop_download
write_run_config
sed -i 's/^stable_seconds = .*/stable_seconds = 0/' "$CONFIG"
truncate -s 4G "$REMOTE/inbox/big.xml"
socket="@rossum-sftp-agent-test-$$"
start_listener "$socket"
start_run NOTIFY_SOCKET="$socket" WATCHDOG_USEC=400000
downloading=0
for i in $(seq 1 200); do
  if [ -n "$(find "$STATE/tmp" -name 'download.*.tmp' -size +1M 2>/dev/null)" ]; then
    downloading=1
    break
  fi
  sleep 0.05
done
assert_eq 1 "$downloading" "download of big.xml under way"
# The watchdog is pinged every 100 ms while the download runs.
pings=$(grep -c 'WATCHDOG=1' "$LOCAL/notify.out" || true)
sleep 0.6
assert_eq 1 "$(find "$STATE/tmp" -name 'download.*.tmp' | wc -l)" \
  "download of big.xml still under way"
[ "$(grep -c 'WATCHDOG=1' "$LOCAL/notify.out")" -ge $((pings + 2)) ] && pass ||
  fail_run "fewer than two watchdog pings during the download"
kill -TERM "$RUN_PID"
wait_for_exit 10 "stop during a download"
assert_eq 0 "$RC" "exit code after a stop during a download"
STDERR=$(cat "$LOCAL/run.log")
assert_contains "$STDERR" "stopped downloading 'big.xml' because the agent is stopping" \
  "abandoned download logged"
assert_eq 0 "$(count_files "$STATE/tmp")" "partial download removed"
assert_eq 0 "$(count_files "$OUT")" "no output"
assert_exists "$REMOTE/inbox/big.xml" "remote file left in the inbox"
sleep 0.3
notes=$(cat "$LOCAL/notify.out")
assert_contains "$notes" "READY=1" "READY sent on the abstract socket"
assert_contains "$notes" "STOPPING=1" "STOPPING sent on the abstract socket"
rm -f "$REMOTE/inbox/big.xml"
stop_started

finish
