#!/usr/bin/env bash
# Two agents with their own state and output folders on one inbox, with
# [remote] claim_dir. A shared backlog is delivered exactly once in total.
# An agent killed with SIGKILL while it holds a claim gets it back when it
# starts again, or else another agent returns it to the inbox after
# claim_timeout and delivers it; a file it had delivered is archived
# without a second delivery. The test starts its own sshd.
set -u

here=$(cd "$(dirname "$0")" && pwd)
: "${AGENT_BIN:?AGENT_BIN must name the agent binary}"
: "${TEST_DATA_DIR:?TEST_DATA_DIR must name tests/data}"
TEST_TMP=${TEST_TMP:-/tmp/agent-tests/test_two_agents}
SSHD_SCRIPT=$here/../integration/sshd.sh
SSHD_DIR=$TEST_TMP/sshd

# Seconds after its last heartbeat when an agent counts as stopped: the
# smallest value the config accepts.
CLAIM_TIMEOUT=10

# Processes that this script started, stopped by PID when it ends.
STARTED_PIDS=""

stop_started() {
  local pid
  for pid in $STARTED_PIDS; do
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  STARTED_PIDS=""
  if [ -f "${LOCAL:-/nonexistent}/hook.pid" ]; then
    kill -KILL "$(cat "$LOCAL/hook.pid")" 2>/dev/null || true
  fi
  bash "$SSHD_SCRIPT" stop "$SSHD_DIR" >/dev/null 2>&1 || true
}
trap stop_started EXIT

mkdir -p "$TEST_TMP"
if ! bash "$SSHD_SCRIPT" start "$SSHD_DIR" >"$TEST_TMP/sshd.out" 2>&1; then
  cat "$TEST_TMP/sshd.out" >&2
  echo "FAIL: cannot start the private sshd" >&2
  exit 1
fi
export SSHD_FIXTURE=$SSHD_DIR
# shellcheck source=../integration/lib.sh
. "$here/../integration/lib.sh"

single=$TEST_DATA_DIR/rossum_export_single.xml

# Show both agents' logs when a check fails.
fail_agents() {
  STDOUT=$(cat "$LOCAL"/*.out 2>/dev/null || true)
  STDERR=$(tail -n 40 "$LOCAL"/*.log 2>/dev/null || true)
  fail "$@"
}

# Start case $1 with folders for two agents a and b and a claim folder.
setup_two() {
  setup_case "$1"
  mkdir -p "$REMOTE/claims"
  : >"$LOCAL/expected"
}

# Write the config of agent $1 ($LOCAL/$1.conf) with state and outputs
# in $LOCAL/$1/. Further arguments as write_config.
write_agent_config() {
  local name=$1
  shift
  STATE=$LOCAL/$name/state
  OUT=$LOCAL/$name/out
  CONFIG=$LOCAL/$name.conf
  write_config "remote.claim_dir = $REMOTE/claims" \
    "remote.claim_timeout = $CLAIM_TIMEOUT" "$@"
  printf '[agent]\npoll_interval = 1\n' >>"$CONFIG"
}

# Put export $2 (a number) into the inbox as exp-$2.xml with content that
# no other file has, and add "<source path> <sha256>" to the expected
# deliveries. $1 is a text that makes the version unique.
put_export() { # version number
  local path="$REMOTE/inbox/exp-$2.xml"
  { cat "$single"; printf '<!-- %s %s -->\n' "$1" "$2"; } >"$path.part"
  mv "$path.part" "$path"
  printf '%s %s\n' "$path" "$(sha256sum "$path" | cut -d' ' -f1)" \
    >>"$LOCAL/expected"
}

put_backlog() { # count
  local i
  for i in $(seq -w 1 "$1"); do
    put_export v1 "$i"
  done
}

# Start agent $1 as the run service, with debug logging.
start_agent() {
  "$AGENT_BIN" run -v -c "$LOCAL/$1.conf" >"$LOCAL/$1.out" \
    2>"$LOCAL/$1.log" &
  eval "PID_$1=$!"
  STARTED_PIDS+=" $!"
}

pid_of() {
  eval "echo \$PID_$1"
}

# Stop agent $1 with SIGTERM and wait for it.
stop_agent() {
  local pid
  pid=$(pid_of "$1")
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# Kill agent $1 with SIGKILL and wait for it.
kill_agent() {
  local pid
  pid=$(pid_of "$1")
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

agent_id() {
  cat "$LOCAL/$1/state/agent-id"
}

# Print the claimed files below the claim folder: every file except the
# heartbeats.
claimed_files() {
  find "$REMOTE/claims" -type f ! -name '*.alive.*' | sort
}

# Print "<source path> <sha256>" of every output of both agents, sorted.
delivered_pairs() {
  local files=() f
  for f in "$LOCAL"/a/out/*.json "$LOCAL"/b/out/*.json; do
    [ -e "$f" ] && files+=("$f")
  done
  [ ${#files[@]} -gt 0 ] || return 0
  jq -r '.source.path + " " + .source.sha256' "${files[@]}" | sort
}

# Wait up to $1 seconds until the inbox and the claim folders are empty
# and the archive has $2 files.
wait_all_archived() { # seconds count
  local deadline=$((SECONDS + $1))
  while [ $SECONDS -lt $deadline ]; do
    if [ "$(count_files "$REMOTE/inbox")" -eq 0 ] &&
       [ -z "$(claimed_files)" ] &&
       [ "$(count_files "$REMOTE/archive")" -eq "$2" ]; then
      return 0
    fi
    sleep 0.2
  done
  fail_agents "after $1 s: $(count_files "$REMOTE/inbox") files in the inbox, $(claimed_files | wc -l) claimed, $(count_files "$REMOTE/archive") of $2 archived"
}

# Every expected version was delivered exactly once in total.
assert_delivered_once() {
  local pairs duplicates
  pairs=$(delivered_pairs)
  duplicates=$(printf '%s\n' "$pairs" | uniq -d)
  assert_eq "" "$duplicates" "versions delivered more than once"
  assert_eq "$(sort "$LOCAL/expected")" "$pairs" "delivered versions"
}

# Wait until process $1 is stopped by SIGSTOP.
wait_stopped() {
  local i state
  for i in $(seq 1 200); do
    state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
    [ "$state" = T ] && return 0
    sleep 0.005
  done
  return 1
}

# Kill agent $1 with SIGKILL at a moment when its claim folder contains a
# file that it has not delivered yet, and store that file's name in HELD.
# The agent is stopped with SIGSTOP to look, and continued when the
# moment is wrong.
kill_holding_claim() {
  local pid id attempt file name
  pid=$(pid_of "$1")
  HELD=""
  for attempt in $(seq 1 1000); do
    id=$(cat "$LOCAL/$1/state/agent-id" 2>/dev/null || true)
    if [ -n "$id" ] && [ -d "$REMOTE/claims/$id" ]; then
      kill -STOP "$pid"
      wait_stopped "$pid" || fail_agents "agent $1 did not stop"
      file=$(find "$REMOTE/claims/$id" -type f | head -n 1)
      name=${file##*/}
      if [ -n "$file" ] && ! compgen -G "$LOCAL/$1/out/$name.*.json" \
           >/dev/null; then
        kill_agent "$1"
        HELD=$name
        return 0
      fi
      kill -CONT "$pid"
    fi
    sleep 0.01
  done
  fail_agents "agent $1 was never caught holding an undelivered claim"
}

# Print the age of the heartbeat after which agent b took agent $1 for
# stopped, as its log shows it.
stopped_age() {
  sed -n "s/.*agent $1 wrote its last heartbeat \([0-9]*\) s ago.*/\1/p" \
    "$LOCAL/b.log" | head -n 1
}

# ---- A backlog shared by two running agents ----

setup_two backlog_shared
put_backlog 200
write_agent_config a
write_agent_config b

# check proves the claim folder and the rename into it, and a missing
# claim folder fails check and a pass without creating it.
CONFIG=$LOCAL/a.conf
run_agent check
assert_eq 0 "$RC" "check exit code"
assert_contains "$STDOUT" "ok    claims   $REMOTE/claims (exists, writable)" \
  "check of the claim folder"
assert_contains "$STDOUT" "ok    claims   a file in the inbox can be renamed into $REMOTE/claims" \
  "check of the rename"
assert_eq 200 "$(count_files "$REMOTE/inbox")" "inbox files after check"
mv "$REMOTE/claims" "$REMOTE/claims.moved"
run_agent check
assert_eq 3 "$RC" "check exit code without the claim folder"
assert_contains "$STDOUT" "FAIL  claims   $REMOTE/claims" \
  "check without the claim folder"
run_agent sync
assert_eq 3 "$RC" "sync exit code without the claim folder"
assert_contains "$STDERR" "the claim folder '$REMOTE/claims' does not exist on the server" \
  "sync without the claim folder"
assert_missing "$REMOTE/claims" "claim folder after the failed pass"
assert_eq 200 "$(count_files "$REMOTE/inbox")" "inbox files after the failed pass"
mv "$REMOTE/claims.moved" "$REMOTE/claims"
rm -rf "$LOCAL/a/state" "$LOCAL/a/out"

start_agent a
start_agent b
wait_all_archived 120 200
stop_agent a
stop_agent b

assert_delivered_once
a_count=$(count_files "$LOCAL/a/out" '*.json')
b_count=$(count_files "$LOCAL/b/out" '*.json')
assert_eq 200 "$((a_count + b_count))" "outputs of both agents"
[ "$a_count" -gt 0 ] || fail_agents "agent a delivered nothing"
[ "$b_count" -gt 0 ] || fail_agents "agent b delivered nothing"
assert_eq 0 "$(count_files "$REMOTE/error")" "files in the error folder"
assert_eq "" "$(claimed_files)" "files left in the claim folders"
for name in a b; do
  CONFIG=$LOCAL/$name.conf
  run_agent status --json
  out=$(count_files "$LOCAL/$name/out" '*.json')
  assert_eq "$out" "$(jq .records.archived <<<"$STDOUT")" \
    "archived records of agent $name"
  assert_eq 0 "$(jq '.records.seen + .records.downloaded + .records.delivered' <<<"$STDOUT")" \
    "unfinished records of agent $name"
  # Each agent keeps one heartbeat file, its current one.
  assert_eq 1 "$(count_files "$REMOTE/claims" "$(agent_id "$name").alive.*")" \
    "heartbeat files of agent $name"
done
echo "backlog_shared: agent a delivered $a_count, agent b $b_count;" \
  "$(grep -c 'claimed by another agent first' "$LOCAL/a.log" "$LOCAL/b.log" | tr '\n' ' ')"

# ---- Files left in an agent's own claim folder ----

setup_two own_claims_resumed
put_backlog 40
write_agent_config a
start_agent a
kill_holding_claim a
held=$HELD
id_a=$(agent_id a)
assert_exists "$REMOTE/claims/$id_a/$held" "claimed file after the kill"
assert_missing "$REMOTE/inbox/$held" "claimed file in the inbox"

# A claim without a record: the agent stopped between the claim and the
# first manifest write.
put_export v1 99
mv "$REMOTE/inbox/exp-99.xml" "$REMOTE/claims/$id_a/exp-99.xml"

CONFIG=$LOCAL/a.conf
run_agent sync --dry-run
assert_contains "$STDOUT" "claims: files are claimed into '$REMOTE/claims/$id_a'" \
  "dry run names the claim folder"
assert_contains "$STDOUT" "retry  $held: in this agent's claim folder" \
  "dry run lists the held claim"
assert_contains "$STDOUT" "retry  exp-99.xml: in this agent's claim folder" \
  "dry run lists the claim without a record"

run_agent sync
assert_eq 0 "$RC" "sync after the kill"
# The kill may come after the publication intent of the held file was
# committed, though before its rename; then crash recovery finishes it.
case "$STDERR" in
  *"taking '$held' from this agent's claim folder"*) pass ;;
  *"finished publishing '$held'"*) pass ;;
  *) fail "held claim resumed: neither taking nor finishing '$held' logged" ;;
esac
assert_contains "$STDERR" "taking 'exp-99.xml' from this agent's claim folder" \
  "claim without a record resumed"
assert_eq "" "$(claimed_files)" "files left in the claim folders"
assert_eq 41 "$(count_files "$REMOTE/archive")" "archived files"
assert_delivered_once

# ---- A killed agent's claim returned by the other ----

setup_two killed_claim_returned
put_backlog 40
write_agent_config a
write_agent_config b
start_agent a
kill_holding_claim a
held=$HELD
id_a=$(agent_id a)

CONFIG=$LOCAL/b.conf
run_agent sync --dry-run
assert_contains "$STDOUT" "peer   $id_a: last heartbeat" "dry run names agent a"
assert_contains "$STDOUT" "; running" "dry run shows agent a as running"

start_agent b
wait_all_archived $((CLAIM_TIMEOUT + 60)) 40
stop_agent b

# The age is measured by the server's clock, from the mtime of agent a's
# last heartbeat to that of agent b's newest.
age=$(stopped_age "$id_a")
[ -n "$age" ] || fail_agents "agent b never took agent a for stopped"
[ "$age" -gt "$CLAIM_TIMEOUT" ] ||
  fail_agents "agent a was taken for stopped $age s after its heartbeat"
b_log=$(cat "$LOCAL/b.log")
assert_contains "$b_log" "returning its 1 claimed files to the inbox" \
  "one claim returned"
assert_contains "$b_log" "returned '$held' from the claim folder of stopped agent $id_a" \
  "held claim returned"
assert_missing "$LOCAL/a/out/$held" "output of agent a for the held file"
assert_eq 1 "$(count_files "$LOCAL/b/out" "$held.*.json")" \
  "outputs of agent b for the held file"
assert_delivered_once

# ---- A newer upload under the name of a returned claim ----

setup_two newer_upload_taken_over
put_backlog 40
write_agent_config a
write_agent_config b
start_agent a
kill_holding_claim a
held=$HELD
id_a=$(agent_id a)
old_sha=$(sha256sum "$REMOTE/claims/$id_a/$held" | cut -d' ' -f1)

# Once agent a counts as stopped, a newer version arrives under the same
# name, and a single pass of agent b finds both.
sleep $((CLAIM_TIMEOUT + 2))
put_export v2 "$(basename "$held" .xml | cut -d- -f2)"
new_sha=$(sha256sum "$REMOTE/inbox/$held" | cut -d' ' -f1)
CONFIG=$LOCAL/b.conf
run_agent sync
assert_eq 0 "$RC" "sync of agent b"
assert_contains "$STDERR" "the inbox has a newer '$held', so this agent takes the version claimed by stopped agent $id_a" \
  "older version taken over"

# The older version is delivered first, then the newer one.
order=$(grep -o "delivered '$held' .*" <<<"$STDERR" |
        sed -n 's/.*\.\([0-9a-f]\{16\}\)\.json.*/\1/p' | tr '\n' ' ')
assert_eq "${old_sha:0:16} ${new_sha:0:16} " "$order" "delivery order"
assert_eq "" "$(claimed_files)" "files left in the claim folders"
assert_eq 41 "$(count_files "$REMOTE/archive")" "archived files"
assert_delivered_once

# ---- A killed agent's delivered file archived by the other ----

setup_two killed_delivered_archived
put_backlog 3
write_agent_config a
printf '#!/bin/bash\necho $$ >%q\nexec sleep 300\n' "$LOCAL/hook.pid" \
  >"$LOCAL/hook.sh"
chmod 755 "$LOCAL/hook.sh"
printf '[hook]\nexec = %s\ntimeout = 600\n' "$LOCAL/hook.sh" >>"$CONFIG"
write_agent_config b
start_agent a

# Agent a runs the hook for its first file, which waits in its delivered
# folder meanwhile.
deadline=$((SECONDS + 30))
until [ -s "$LOCAL/hook.pid" ]; do
  [ $SECONDS -lt $deadline ] || fail_agents "the hook of agent a never ran"
  sleep 0.1
done
id_a=$(agent_id a)
staged=$(find "$REMOTE/claims/$id_a.delivered" -type f)
assert_eq "$REMOTE/claims/$id_a.delivered/exp-1.xml" "$staged" \
  "file in the delivered folder while the hook runs"
kill_agent a
kill -KILL "$(cat "$LOCAL/hook.pid")"
rm -f "$LOCAL/hook.pid"
assert_eq 1 "$(count_files "$LOCAL/a/out" 'exp-1.xml.*.json')" \
  "output of agent a for exp-1.xml"

start_agent b
wait_all_archived $((CLAIM_TIMEOUT + 60)) 3
stop_agent b

b_log=$(cat "$LOCAL/b.log")
assert_contains "$b_log" "archiving its 1 delivered files" "delivered file counted"
assert_contains "$b_log" "archived 'exp-1.xml' as '$REMOTE/archive/exp-1.xml' for stopped agent $id_a" \
  "delivered file archived for agent a"
assert_eq 0 "$(count_files "$LOCAL/b/out" 'exp-1.xml.*.json')" \
  "outputs of agent b for exp-1.xml"
assert_delivered_once

finish
