#!/usr/bin/env bash
# A backlog of a few hundred files taken by parallel workers: exactly one
# output per file with the right source path and SHA-256, every file
# archived and recorded as archived, bad files in the error folder, peak
# RSS under 32 MiB, also while 20,000 unselected entries are listed, the
# hook run once per output, and exactly one output per file after the
# agent is killed in the middle of a backlog and run again. This is a
# correctness and memory test: it measures no time.
#
# Needs GNU time (/usr/bin/time, Debian package time) for the peak RSS.
. "$(dirname "$0")/lib.sh"

files=${PARALLEL_BACKLOG_FILES:-300}
rss_limit_kib=$((32 * 1024))
samples=(
  "$TEST_DATA_DIR/rossum_export_single.xml"
  "$TEST_DATA_DIR/rossum_export_multi.xml"
  "$TEST_DATA_DIR/rossum_export_edge_cases.xml"
  "$TEST_DATA_DIR/rossum_export_single.csv"
  "$TEST_DATA_DIR/rossum_export_multi.csv"
  "$TEST_DATA_DIR/rossum_export_multi.json"
)

# Fill the inbox with $1 exports, copies of the samples in turn under
# distinct names, with mtimes a minute apart so that their order is known.
fill_inbox() { # count
  local i sample name base=$(($(date +%s) - 100000))
  for i in $(seq 1 "$1"); do
    sample=${samples[$((i % ${#samples[@]}))]}
    name=$(printf 'export_%04d.%s' "$i" "${sample##*.}")
    cp "$sample" "$REMOTE/inbox/$name"
    touch -d "@$((base + i * 60))" "$REMOTE/inbox/$name"
  done
}

# Print "name sha256" for each file in the inbox, sorted by name.
inbox_hashes() {
  (cd "$REMOTE/inbox" && sha256sum -- * | awk '{ print $2, $1 }' | sort)
}

# Print "name sha256 path" for each output, sorted by name: source.name,
# source.sha256 and source.path of every JSON output, read by one jq.
output_sources() {
  find "$OUT" -maxdepth 1 -name '*.json' -print0 |
    xargs -0 -r jq -r '.source | .name + " " + .sha256 + " " + .path' | sort
}

# Check that each file of $1 ("name sha256" lines) has exactly one output
# with that name, hash and source path, and that nothing else was output.
check_one_output_each() { # expected_hashes what
  local sources
  sources=$(output_sources)
  assert_eq "$1" "$(awk '{ print $1, $2 }' <<<"$sources")" \
    "$2: one output per file, same SHA-256"
  assert_eq "" "$(awk '{ print $1 }' <<<"$sources" | uniq -d)" \
    "$2: no file has two outputs"
  assert_eq "$(awk -v inbox="$REMOTE/inbox" '{ print inbox "/" $1 }' \
    <<<"$1")" "$(awk '{ print $3 }' <<<"$sources")" \
    "$2: source.path names the inbox file"
  assert_eq 0 "$(count_files "$OUT" '.incoming.*')" "$2: no temporary output"
}

# Print a jq query over the output of `status --json`.
status_json() {
  run_agent status --json
  [ "$RC" == 0 ] || fail "status --json exited $RC"
  jq -r "$1" <<<"$STDOUT"
}

# A backlog with 4 workers, 5 unparseable files among the good ones.
setup_case parallel
write_config "remote.parallel = 4" "remote.include = *.xml *.csv *.json"
fill_inbox "$files"
for i in 1 2 3 4 5; do
  printf '<?xml version="1.0"?>\n<export><results><annotation>\n' \
    >"$REMOTE/inbox/broken_$i.xml"
done
expected=$(inbox_hashes | grep -v '^broken_')
RC=0
/usr/bin/time -f %M -o "$LOCAL/rss" timeout 300 "$AGENT_BIN" sync \
  -c "$CONFIG" >"$LOCAL/stdout" 2>"$LOCAL/stderr" || RC=$?
STDOUT=$(cat "$LOCAL/stdout")
STDERR=$(cat "$LOCAL/stderr")
assert_eq 1 "$RC" "sync exit code with 5 bad files"
assert_contains "$STDOUT" "sync: $files delivered, 0 duplicates, $files archived, 5 failed" \
  "summary line"
check_one_output_each "$expected" "parallel sync"
assert_eq 0 "$(count_files "$REMOTE/inbox")" "inbox emptied"
assert_eq "$files" "$(count_files "$REMOTE/archive" 'export_*')" \
  "every good file archived"
assert_eq 5 "$(count_files "$REMOTE/error" 'broken_*.xml')" \
  "bad files in the error folder"
assert_eq 5 "$(count_files "$REMOTE/error" 'broken_*.reason.txt')" \
  "a reason file for each bad file"
assert_eq 0 "$(count_files "$LOCAL/state/tmp")" "no download left behind"
assert_eq "$files" "$(status_json .records.archived)" "manifest: archived"
assert_eq 5 "$(status_json .records.failed)" "manifest: failed"
for state in seen downloaded delivered; do
  assert_eq 0 "$(status_json ".records.$state")" "manifest: no $state record"
done
rss=$(tail -n 1 "$LOCAL/rss")
if [ "$rss" -lt "$rss_limit_kib" ]; then
  pass
else
  fail "peak RSS $rss KiB, limit $rss_limit_kib KiB"
fi
echo "parallel sync of $files files: peak RSS $rss KiB"

# The same files listed again are new uploads with delivered content, so
# they are archived without a second delivery.
cp -p "$REMOTE/archive"/export_0001.* "$REMOTE/archive"/export_0002.* \
  "$REMOTE/inbox/"
run_agent sync
assert_eq 0 "$RC" "sync of re-uploads"
assert_contains "$STDOUT" "sync: 0 delivered, 2 duplicates" "re-uploads"
check_one_output_each "$expected" "after re-uploads"

# A wide inbox: 20,000 entries that include does not select are listed and
# dropped, so memory stays bounded, and only the exports are taken.
setup_case parallel-wide
write_config "remote.parallel = 4" "remote.include = *.xml *.csv *.json"
(cd "$REMOTE/inbox" && seq -f 'document_%05g.pdf' 1 20000 | xargs touch)
fill_inbox 10
expected=$(inbox_hashes | grep -v '^document_')
RC=0
/usr/bin/time -f %M -o "$LOCAL/rss" timeout 300 "$AGENT_BIN" sync \
  -c "$CONFIG" >"$LOCAL/stdout" 2>"$LOCAL/stderr" || RC=$?
STDOUT=$(cat "$LOCAL/stdout")
STDERR=$(cat "$LOCAL/stderr")
assert_eq 0 "$RC" "sync of a wide inbox"
check_one_output_each "$expected" "wide inbox"
assert_eq 20000 "$(count_files "$REMOTE/inbox" 'document_*.pdf')" \
  "unselected entries left alone"
rss=$(tail -n 1 "$LOCAL/rss")
if [ "$rss" -lt "$rss_limit_kib" ]; then
  pass
else
  fail "peak RSS $rss KiB listing 20,000 entries, limit $rss_limit_kib KiB"
fi

# parallel = 1 takes the files one by one, as before the workers existed.
setup_case parallel-one
write_config "remote.parallel = 1" "remote.include = *.xml *.csv *.json"
fill_inbox 20
expected=$(inbox_hashes)
run_agent sync
assert_eq 0 "$RC" "sync with parallel = 1"
check_one_output_each "$expected" "parallel = 1"
assert_eq 20 "$(status_json .records.archived)" "parallel = 1: archived"

# The hook runs exactly once for each output, from whichever worker
# delivered it.
setup_case parallel-hook
write_config "remote.parallel = 3" "remote.include = *.xml *.csv *.json"
printf '#!/bin/bash\nprintf "%%s\\n" "$2" >>"%s"\n' "$LOCAL/calls" \
  >"$LOCAL/hook.sh"
chmod 755 "$LOCAL/hook.sh"
printf '[hook]\nexec = %s\n' "$LOCAL/hook.sh" >>"$CONFIG"
fill_inbox 30
expected_names=$(inbox_hashes | awk '{ print $1 }')
run_agent sync
assert_eq 0 "$RC" "sync with a hook"
assert_eq "$expected_names" "$(sort "$LOCAL/calls")" \
  "one hook run per output"
assert_eq 30 "$(count_files "$REMOTE/archive")" "hooked files archived"

# Killed at any moment, the agent still delivers each file exactly once:
# SIGKILL once a given number of outputs exists, while workers are busy,
# then a sync that finishes the backlog.
for threshold in 1 20 60; do
  setup_case "parallel-kill-$threshold"
  write_config "remote.parallel = 4" "remote.include = *.xml *.csv *.json"
  fill_inbox 120
  expected=$(inbox_hashes)
  "$AGENT_BIN" sync -c "$CONFIG" >"$LOCAL/killed.out" 2>&1 &
  pid=$!
  while [ "$(count_files "$OUT" '*.json')" -lt "$threshold" ] &&
    kill -0 "$pid" 2>/dev/null; do
    sleep 0.01
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  left=$(count_files "$REMOTE/inbox")
  if [ "$left" -gt 0 ]; then pass; else fail "killed after the backlog"; fi
  # The kernel may release the killed process's lock a few milliseconds
  # after its parent saw it end; the lock then reports code 5.
  for attempt in $(seq 1 50); do
    run_agent sync
    [ "$RC" != 5 ] && break
    sleep 0.1
  done
  assert_eq 0 "$RC" "sync after SIGKILL at $threshold outputs"
  check_one_output_each "$expected" "SIGKILL at $threshold outputs"
  assert_eq 0 "$(count_files "$REMOTE/inbox")" "inbox emptied after SIGKILL"
  assert_eq 120 "$(count_files "$REMOTE/archive")" \
    "archived once after SIGKILL at $threshold outputs"
  assert_eq 120 "$(status_json .records.archived)" \
    "manifest all archived after SIGKILL at $threshold outputs"
done

finish
