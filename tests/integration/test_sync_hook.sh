#!/usr/bin/env bash
# The post-delivery hook: its arguments, a failing hook that delays the
# remote move until it succeeds, retries with backoff, timeouts that
# end the whole process group, config checks, and the hook under run.
. "$(dirname "$0")/lib.sh"

single=$TEST_DATA_DIR/rossum_export_single.xml
multi=$TEST_DATA_DIR/rossum_export_multi.xml

# The run service that this script starts; the trap stops it by PID.
RUN_PID=""
stop_run() {
  if [ -n "$RUN_PID" ]; then
    kill -KILL "$RUN_PID" 2>/dev/null || true
    wait "$RUN_PID" 2>/dev/null || true
    RUN_PID=""
  fi
}
trap stop_run EXIT

now_ms() {
  echo $(($(date +%s%N) / 1000000))
}

# Append a [hook] section to $CONFIG. $1 is the exec value, $2 the timeout.
add_hook() {
  printf '[hook]\nexec = %s\n' "$1" >>"$CONFIG"
  if [ -n "${2:-}" ]; then
    printf 'timeout = %s\n' "$2" >>"$CONFIG"
  fi
}

# Write an executable bash script $1 with the body $2.
write_hook() {
  printf '#!/bin/bash\n%s\n' "$2" >"$1"
  chmod 755 "$1"
}

# The recording hook: one line per call in $LOCAL/calls with the argument
# count and the arguments separated by '|', and what its stdin is and
# whether it leads its own process group.
write_recording_hook() { # exit_status
  write_hook "$LOCAL/hook.sh" "
printf '%s' \"\$#\" >>'$LOCAL/calls'
printf '|%s' \"\$@\" >>'$LOCAL/calls'
printf '\\n' >>'$LOCAL/calls'
readlink /proc/self/fd/0 >'$LOCAL/stdin'
[ \"\$(ps -o pgid= \$\$ | tr -d ' ')\" = \"\$\$\" ] && echo leader >'$LOCAL/group'
echo 'to stdout'
printf 'bad\\tthing\\033[31m\\n' >&2
exit ${1:-0}"
}

call_count() {
  if [ -f "$LOCAL/calls" ]; then wc -l <"$LOCAL/calls"; else echo 0; fi
}

# Return whether process $1 runs: it exists and is not a zombie, which a
# PID 1 in a container may never reap.
runs() {
  local state
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) ||
    return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# Print the PIDs in the files given whose processes still run after up
# to 1 s, so that an empty result means none is left. A process that got
# SIGKILL ends shortly after the kill returned.
alive() {
  local file pid i
  for file in "$@"; do
    pid=$(cat "$file" 2>/dev/null) || continue
    for i in $(seq 1 10); do
      runs "$pid" || break
      sleep 0.1
    done
    if runs "$pid"; then echo "$pid"; fi
  done
}

# Each delivered output gets one call with three more arguments: the
# output's full path, the source name and the content's SHA-256. A
# duplicate gets none. A passthrough copy's hook gets its sidecar.
setup_case arguments
write_config "remote.passthrough = invoice_file-*"
write_recording_hook 0
add_hook "$LOCAL/hook.sh 'first word' \"it's\""
cp "$single" "$REMOTE/inbox/a.xml"
cp "$multi" "$REMOTE/inbox/b.xml"
printf '%%PDF-1.4 test\n' >"$REMOTE/inbox/invoice_file-7"
run_agent sync
assert_eq 0 "$RC" "sync with a hook"
assert_contains "$STDOUT" "3 delivered" "three outputs"
assert_contains "$STDOUT" "3 archived" "all three archived"
assert_eq 3 "$(call_count)" "one call per delivered output"
for name in a.xml b.xml; do
  sha=$(sha256sum "$REMOTE/archive/$name" | cut -d' ' -f1)
  out=$(output_for "$name") || fail "no output for $name"
  assert_eq 1 "$(grep -cxF "5|first word|it's|$out|$name|$sha" "$LOCAL/calls")" \
    "arguments for $name"
  assert_eq "$sha" "$(jq -r .source.sha256 "$out")" "hash argument is source.sha256"
  assert_contains "$out" ".${sha:0:16}.json" "hash in the output name"
done
sha=$(sha256sum "$REMOTE/archive/invoice_file-7" | cut -d' ' -f1)
sidecar=$(ls "$OUT"/invoice_file-7.*.bin.json)
assert_eq 1 "$(grep -cxF "5|first word|it's|$sidecar|invoice_file-7|$sha" "$LOCAL/calls")" \
  "a passthrough copy's hook gets its sidecar"
assert_eq /dev/null "$(cat "$LOCAL/stdin")" "stdin is /dev/null"
assert_eq leader "$(cat "$LOCAL/group" 2>/dev/null)" "the hook leads its own process group"
assert_contains "$STDERR" "hook succeeded for 'a.xml'" "success logged"
cp "$single" "$REMOTE/inbox/a.xml"
run_agent sync
assert_eq 0 "$RC" "sync of an identical re-upload"
assert_contains "$STDOUT" "1 duplicates" "re-upload is a duplicate"
assert_eq 3 "$(call_count)" "a duplicate runs no hook"
assert_eq 0 "$(count_files "$REMOTE/inbox")" "duplicate archived"

# A failing hook delays the remote move: sync exits 1, the output
# stays, status names the file with the hook's output, and the hook runs
# again on the next pass. Once it succeeds, the file is archived, without
# a second output.
setup_case failing
write_recording_hook 3
add_hook "$LOCAL/hook.sh"
cp "$single" "$REMOTE/inbox/f.xml"
run_agent sync
assert_eq 1 "$RC" "a failed hook exits 1"
assert_contains "$STDOUT" "1 delivered" "delivered before the hook"
assert_contains "$STDOUT" "1 pending" "failed hook counted as pending"
assert_contains "$STDOUT" "0 archived" "nothing archived"
assert_exists "$REMOTE/inbox/f.xml" "file left in the inbox"
assert_eq 0 "$(count_files "$REMOTE/archive")" "archive empty"
assert_eq 1 "$(count_files "$OUT" '*.json')" "output published"
assert_eq 1 "$(call_count)" "hook ran once"
assert_contains "$STDERR" "hook failed for 'f.xml'" "failure logged with the file"
assert_contains "$STDERR" "exit status 3" "exit status logged"
assert_contains "$STDERR" 'to stdout\x0Abad\x09thing\x1B[31m\x0A' "output logged, escaped"
assert_contains "$STDERR" "runs again on the next pass" "first retry at the next pass"
run_agent status
assert_contains "$STDOUT" "1 delivered files wait for their hook" "status counts the hook"
assert_contains "$STDOUT" "f.xml: 1 failed runs" "status names the file"
assert_contains "$STDOUT" 'exit status 3 after' "status shows the exit status"
assert_contains "$STDOUT" 'bad\x09thing' "status shows the output"
run_agent status --json
assert_eq f.xml "$(jq -r '.pending_hooks[0].name' <<<"$STDOUT")" "json names the file"
assert_eq 1 "$(jq -r '.pending_hooks[0].attempts' <<<"$STDOUT")" "json counts the runs"
assert_contains "$(jq -r '.pending_hooks[0].error' <<<"$STDOUT")" "exit status 3" "json gives the error"
assert_eq 1 "$(jq -r '.records.delivered' <<<"$STDOUT")" "record stays delivered"

write_recording_hook 0
run_agent sync
assert_eq 0 "$RC" "sync after the hook was fixed"
assert_eq 2 "$(call_count)" "hook ran once more"
assert_exists "$REMOTE/archive/f.xml" "archived after the hook succeeded"
assert_eq 1 "$(count_files "$OUT" '*.json')" "no second output"
assert_contains "$STDOUT" "0 delivered" "not delivered again"
run_agent status --json
assert_eq 0 "$(jq -r '.pending_hooks | length' <<<"$STDOUT")" "no hook pending"
assert_eq 1 "$(jq -r '.records.archived' <<<"$STDOUT")" "record archived"

# Repeated failures back off: the second failure sets a delay of 10 s, so
# a pass right after it does not run the hook.
setup_case backoff
write_recording_hook 3
add_hook "$LOCAL/hook.sh"
cp "$single" "$REMOTE/inbox/g.xml"
run_agent sync
run_agent sync
assert_eq 1 "$RC" "second failure"
assert_eq 2 "$(call_count)" "second run at the next pass"
assert_contains "$STDERR" "failed run 2" "second failure counted"
assert_contains "$STDERR" "on the first pass after 10 s" "backoff logged"
run_agent sync -v
assert_eq 1 "$RC" "waiting hook exits 1"
assert_eq 2 "$(call_count)" "no run before the retry time"
assert_contains "$STDERR" "'g.xml' waits for its hook" "wait logged"
assert_exists "$REMOTE/inbox/g.xml" "still not archived"
run_agent sync --dry-run
assert_contains "$STDOUT" "its hook has not succeeded yet (2 failed runs)" "dry run names the hook"

# forget would archive the file without its hook, so it is rejected;
# retry clears the wait, and the next pass runs the fixed hook at once.
run_agent forget g.xml
assert_eq 2 "$RC" "forget of a file whose hook is pending"
assert_contains "$STDERR" "waits for its post-delivery hook" "forget names the hook"
write_recording_hook 0
run_agent retry g.xml
assert_eq 0 "$RC" "retry of a failed hook"
run_agent sync
assert_eq 0 "$RC" "sync after retry"
assert_eq 3 "$(call_count)" "hook ran again at once"
assert_exists "$REMOTE/archive/g.xml" "archived after the hook succeeded"

# A hook that runs past its timeout is ended with its whole process group.
setup_case timeout
write_hook "$LOCAL/slow.sh" "
echo \$\$ >'$LOCAL/slow.pid'
sleep 30 &
echo \$! >'$LOCAL/slow-child.pid'
wait"
add_hook "$LOCAL/slow.sh" 1
cp "$single" "$REMOTE/inbox/t.xml"
start=$(now_ms)
run_agent sync
elapsed=$(($(now_ms) - start))
assert_eq 1 "$RC" "timed-out hook exits 1"
[ "$elapsed" -ge 1000 ] && [ "$elapsed" -lt 3000 ] && pass ||
  fail "sync took $elapsed ms; expected 1 s of hook and little more"
assert_contains "$STDERR" "timed out after 1 s" "timeout logged"
assert_exists "$LOCAL/slow-child.pid" "hook started its child"
assert_eq "" "$(alive "$LOCAL/slow.pid" "$LOCAL/slow-child.pid")" "no process of the hook is left"
assert_exists "$REMOTE/inbox/t.xml" "not archived after a timeout"

# A hook that ignores SIGTERM gets SIGKILL 2 s later.
setup_case timeout_kill
write_hook "$LOCAL/stubborn.sh" "
trap '' TERM
echo \$\$ >'$LOCAL/slow.pid'
sleep 30 &
echo \$! >'$LOCAL/slow-child.pid'
wait"
add_hook "$LOCAL/stubborn.sh" 1
cp "$single" "$REMOTE/inbox/k.xml"
start=$(now_ms)
run_agent sync
elapsed=$(($(now_ms) - start))
assert_eq 1 "$RC" "killed hook exits 1"
[ "$elapsed" -ge 3000 ] && [ "$elapsed" -lt 5000 ] && pass ||
  fail "sync took $elapsed ms; expected 1 s of hook and 2 s of grace"
assert_contains "$STDERR" "timed out after 1 s" "timeout logged"
assert_eq "" "$(alive "$LOCAL/slow.pid" "$LOCAL/slow-child.pid")" "SIGKILL left no process"

# A program that cannot start is a failed run, and exec is checked when
# the config is loaded.
setup_case bad_exec
add_hook "$LOCAL/missing-hook"
cp "$single" "$REMOTE/inbox/m.xml"
run_agent sync
assert_eq 1 "$RC" "missing program exits 1"
assert_contains "$STDERR" "cannot start '$LOCAL/missing-hook': No such file or directory" "start failure logged"
assert_exists "$REMOTE/inbox/m.xml" "not archived"
write_config
add_hook "hook.sh --flag"
run_agent sync
assert_eq 2 "$RC" "relative program is a config error"
assert_contains "$STDERR" "[hook] exec must start with the absolute path of a program, not 'hook.sh'" "relative program named"
write_config
add_hook "/bin/true 'open"
run_agent sync
assert_eq 2 "$RC" "unclosed quote is a config error"
assert_contains "$STDERR" "$CONFIG: [hook] exec has a ' quote that is not closed" "unclosed quote named"

# run delivers and runs the hook too. A stop while the hook runs ends the
# hook at once, and the hook runs again on the next start.
setup_case run
write_config "remote.stable_seconds = 1"
printf '[agent]\npoll_interval = 1\n' >>"$CONFIG"
write_hook "$LOCAL/hook.sh" "
printf '%s\n' \"\$2\" >>'$LOCAL/calls'
if [ \"\$2\" = slow.xml ] && [ ! -e '$LOCAL/slow-ran' ]; then
  touch '$LOCAL/slow-ran'
  echo \$\$ >'$LOCAL/slow.pid'
  exec sleep 30
fi"
add_hook "$LOCAL/hook.sh" 60
cp "$single" "$REMOTE/inbox/r.xml"
"$AGENT_BIN" run -c "$CONFIG" >"$LOCAL/run.out" 2>"$LOCAL/run.log" &
RUN_PID=$!
for _ in $(seq 1 100); do
  [ -e "$REMOTE/archive/r.xml" ] && break
  sleep 0.1
done
STDERR=$(cat "$LOCAL/run.log")
assert_exists "$REMOTE/archive/r.xml" "run archived the file"
assert_eq "r.xml" "$(cat "$LOCAL/calls")" "run called the hook once"
cp "$multi" "$REMOTE/inbox/slow.xml"
for _ in $(seq 1 100); do
  [ -e "$LOCAL/slow.pid" ] && break
  sleep 0.1
done
assert_exists "$LOCAL/slow.pid" "slow hook started"
start=$(now_ms)
kill -TERM "$RUN_PID"
RC=0
wait "$RUN_PID" || RC=$?
RUN_PID=""
elapsed=$(($(now_ms) - start))
STDERR=$(cat "$LOCAL/run.log")
assert_eq 0 "$RC" "run stops with 0 during a hook"
[ "$elapsed" -lt 3000 ] && pass || fail "stop took $elapsed ms"
assert_contains "$STDERR" "because the agent is stopping" "stopped hook logged"
assert_eq "" "$(alive "$LOCAL/slow.pid")" "stopped hook ended"
assert_exists "$REMOTE/inbox/slow.xml" "not archived after a stopped hook"
run_agent sync
assert_eq 0 "$RC" "next start runs the hook again"
assert_eq 2 "$(grep -c '^slow.xml$' "$LOCAL/calls")" "slow hook ran a second time"
assert_exists "$REMOTE/archive/slow.xml" "archived after the second run"

finish
