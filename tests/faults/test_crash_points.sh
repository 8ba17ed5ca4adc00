#!/usr/bin/env bash
# Crash at any point: SIGKILL `sync` and `run` at random moments while
# they work through a backlog, and kill the agent at each fault point. Once
# the agent has finished, every file has exactly one delivery and nothing
# is lost or half done. Each case runs with files taken one by one
# ([remote] parallel = 1) and by four workers (parallel = 4), whose
# records a recorder commits in batches.
#
# FAULT_ROUNDS sets the number of random kills (default 12; long runs use
# 1000 or more), FAULT_FILES the backlog (default 300), and FAULT_SEED the
# seed of the kill moments and fault hits, which the test prints.
. "$(dirname "$0")/lib.sh"

FAULT_ROUNDS=${FAULT_ROUNDS:-12}
FAULT_FILES=${FAULT_FILES:-300}
POINTS=(after_download output_written after_publish_intent
        before_delivered_commit after_delivered_commit
        before_remote_rename after_remote_rename)
# Points of the recorder, which only a parallel pass has: between the
# output folder sync of a batch and its commit, and after the commit,
# before the workers rename the outputs or move the files of that batch.
RECORDER_POINTS=(before_batch_commit after_batch_commit)

# The agent's config for these cases: exports of all three formats and
# original documents, $1 workers, and a fast poll for `run`.
configure() {
  write_config "remote.include = *.xml *.csv *.json" \
               "remote.passthrough = *invoice_file-*" \
               "remote.parallel = $1"
  printf '[agent]\npoll_interval = 1\n' >>"$CONFIG"
}

# Kill sync and run at random moments. Three new files arrive after each
# kill, so that a long run still has work when the backlog is gone, and
# some kills hit files that a killed pass had half done.
random_kills() {
  local parallel=$1 round ms delivered_before started
  started=$(date +%s)
  start_case "random_kills_parallel_$parallel"
  configure "$parallel"
  upload_backlog a "$FAULT_FILES"
  for round in $(seq 1 "$FAULT_ROUNDS"); do
    ms=$((30 + RANDOM % 1200))
    if [ $((round % 3)) -eq 0 ]; then
      kill_after "$ms" run
    else
      kill_after "$ms" sync
    fi
    upload_backlog "r${round}-" 3
  done
  delivered_before=$(grep -c "delivered '" "$LOCAL/agent.log" || true)
  finish_agent 10
  assert_eq 0 "$RC" "parallel $parallel: exit code of the last pass"
  check_invariants
  echo "random kills with parallel = $parallel: $FAULT_ROUNDS rounds in" \
       "$(( $(date +%s) - started )) s, $delivered_before deliveries logged" \
       "by the killed runs"
}

for parallel in 1 4; do
  random_kills "$parallel"
done

# Each fault point, at a hit drawn from the seed: the process dies there
# without any cleanup, and the next run finishes the work.
if ! have_fault_points; then
  echo "skipped the fault points: build with -DAGENT_FAULT_INJECTION=ON"
  finish
  exit 0
fi
for parallel in 1 4; do
  points=("${POINTS[@]}")
  [ "$parallel" -gt 1 ] && points+=("${RECORDER_POINTS[@]}")
  for point in "${points[@]}"; do
    hit=$((1 + RANDOM % 4))
    start_case "point_${point}_${hit}_parallel_$parallel"
    configure "$parallel"
    upload_backlog p 10
    printf '<export><results>\n' >"$LOCAL/broken.xml"
    upload "$LOCAL/broken.xml" p0002b.xml fail
    AGENT_FAULT_POINT=$point AGENT_FAULT_HIT=$hit run_logged sync
    what="$point hit $hit, parallel $parallel"
    assert_eq 137 "$RC" "$what: killed by SIGKILL"
    assert_contains "$STDERR" "killing the agent at $point, hit $hit" \
      "$what: the fault point fired"
    finish_agent
    assert_eq 0 "$RC" "$what: exit code of the last pass"
    check_invariants
  done
done
finish
