#!/usr/bin/env bash
# Where files go: recursive inboxes, date folders, name clashes in the
# archive, delete and keep, re-uploads, settling, the per-pass limit and
# names that are not UTF-8.
. "$(dirname "$0")/lib.sh"

single=$TEST_DATA_DIR/rossum_export_single.xml
multi=$TEST_DATA_DIR/rossum_export_multi.xml

# Recursive inbox with the archive and error folders inside it.
setup_case recursive
mkdir -p "$REMOTE/inbox/doc1/deep" "$REMOTE/inbox/archive" "$REMOTE/inbox/error"
cp "$single" "$REMOTE/inbox/doc1/deep/a.xml"
cp "$multi" "$REMOTE/inbox/b.xml"
cp "$multi" "$REMOTE/inbox/archive/old.xml"
write_config "remote.recursive = yes"
sed -i "s|^archive = .*|archive = $REMOTE/inbox/archive|; s|^error = .*|error = $REMOTE/inbox/error|" "$CONFIG"
run_agent sync
assert_eq 0 "$RC" "recursive sync"
assert_contains "$STDOUT" "2 delivered" "two files delivered, archive skipped"
assert_exists "$REMOTE/inbox/archive/doc1/deep/a.xml" "relative path kept in the archive"
assert_exists "$REMOTE/inbox/archive/old.xml" "file in the archive untouched"
assert_eq "$REMOTE/inbox/doc1/deep/a.xml" "$(json_of a.xml .source.path)" "source.path keeps folders"
assert_exists "$(ls "$OUT"/doc1%2Fdeep%2Fa.xml.*.json)" "output name escapes '/'"

# Date folders, and a name clash in the archive gets a distinct name.
setup_case layout
write_config "remote.archive_layout = %Y/%m/%d"
day=$(date -u +%Y/%m/%d)
mkdir -p "$REMOTE/archive/$day"
echo "older file" >"$REMOTE/archive/$day/x.xml"
cp "$single" "$REMOTE/inbox/x.xml"
run_agent sync
assert_eq 0 "$RC" "layout sync"
assert_eq "older file" "$(cat "$REMOTE/archive/$day/x.xml")" "existing archive file not overwritten"
sha8=$(sha256sum "$single" | cut -c1-8)
assert_exists "$REMOTE/archive/$day/x.$sha8.xml" "clash gets a distinct name"

# Re-uploads: identical content is archived without a second delivery;
# changed content is a new version.
cp "$single" "$REMOTE/inbox/x.xml"
run_agent sync
assert_eq 0 "$RC" "identical re-upload"
assert_contains "$STDOUT" "1 duplicates" "duplicate counted"
assert_contains "$STDERR" "without a second delivery" "duplicate logged"
assert_eq 1 "$(count_files "$OUT" '*.json')" "still one output"
assert_eq 0 "$(count_files "$REMOTE/inbox")" "duplicate archived"
assert_exists "$REMOTE/archive/$day/x.$sha8-2.xml" "second copy archived under a third name"
cp "$multi" "$REMOTE/inbox/x.xml"
run_agent sync
assert_contains "$STDOUT" "1 delivered" "changed content delivered"
assert_eq 2 "$(count_files "$OUT" '*.json')" "two versions, two outputs"

# The same content under two names is two deliveries; a name's earlier
# version is recognised even after another name delivered that content.
setup_case same_content
cp "$single" "$REMOTE/inbox/a.xml"
run_agent sync
cp "$single" "$REMOTE/inbox/b.xml"
run_agent sync
assert_contains "$STDOUT" "1 delivered" "same content under another name"
cp "$single" "$REMOTE/inbox/a.xml"
run_agent sync
assert_contains "$STDOUT" "1 duplicates" "a.xml again is a duplicate"
assert_eq 2 "$(count_files "$OUT" '*.json')" "two outputs for two names"

# A refused move stays pending; if the file is replaced meanwhile, the new
# version is delivered instead of being archived unseen.
setup_case pending_replaced
write_config "remote.archive_layout = blocked"
echo "not a folder" >"$REMOTE/archive/blocked"
cp "$single" "$REMOTE/inbox/p.xml"
run_agent sync
assert_eq 1 "$RC" "a pending move exits 1"
assert_contains "$STDOUT" "1 pending" "pending counted"
assert_contains "$STDERR" "could not be archived" "pending logged"
cp "$multi" "$REMOTE/inbox/p.xml"
rm "$REMOTE/archive/blocked"
run_agent sync
assert_eq 0 "$RC" "sync after the archive is fixed"
assert_contains "$STDERR" "was replaced on the server" "replacement logged"
assert_eq 2 "$(count_files "$OUT" '*.json')" "both versions delivered"
assert_eq "1,3" "$(jq -s -r 'map(.annotations | length) | sort | map(tostring) | join(",")' "$OUT"/p.xml.*.json)" "old and new version delivered"
assert_exists "$REMOTE/archive/blocked/p.xml" "new version archived"

# on_success = delete
setup_case delete
write_config "remote.on_success = delete"
cp "$single" "$REMOTE/inbox/"
run_agent sync
assert_eq 0 "$RC" "delete sync"
assert_eq 0 "$(count_files "$REMOTE/inbox")" "deleted from the inbox"
assert_eq 0 "$(count_files "$REMOTE/archive")" "nothing archived"
assert_eq 1 "$(count_files "$OUT" '*.json')" "delivered"
assert_contains "$STDERR" "deleted 'rossum_export_single.xml' on the server" "deletion logged"
assert_not_contains "$STDERR" "archived '" "no archive path logged"

# on_success = keep: the manifest alone remembers; a change is taken again.
setup_case keep
write_config "remote.on_success = keep"
cp "$single" "$REMOTE/inbox/k.xml"
run_agent sync
assert_eq 0 "$RC" "keep sync"
assert_exists "$REMOTE/inbox/k.xml" "kept in place"
run_agent sync
assert_contains "$STDOUT" "0 delivered" "kept file not taken twice"
cp "$multi" "$REMOTE/inbox/k.xml"
touch -d '2024-01-01 00:00:00' "$REMOTE/inbox/k.xml"
run_agent sync
assert_contains "$STDOUT" "1 delivered" "changed kept file taken again"

# stable_seconds: sync waits, lists again and takes what held still.
setup_case settle
write_config "remote.stable_seconds = 2"
cp "$single" "$REMOTE/inbox/"
start=$(date +%s)
run_agent sync
assert_eq 0 "$RC" "settle sync"
assert_contains "$STDOUT" "1 delivered" "settled file delivered"
[ $(( $(date +%s) - start )) -ge 2 ] && pass || fail "sync did not wait stable_seconds"

# A file that keeps growing is reported as settling, not taken.
setup_case growing
write_config "remote.stable_seconds = 2"
( for i in $(seq 1 40); do echo "<!-- $i -->" >>"$REMOTE/inbox/growing.xml"; sleep 0.2; done ) &
writer=$!
sleep 0.3
run_agent sync
wait "$writer"
assert_eq 0 "$RC" "sync with a growing file"
assert_contains "$STDOUT" "1 settling" "growing file reported"
assert_contains "$STDERR" "'growing.xml' is still changing" "growing file named"
assert_exists "$REMOTE/inbox/growing.xml" "growing file left alone"

# max_files_per_poll takes the oldest first and defers the rest.
setup_case limit
write_config "remote.max_files_per_poll = 1"
cp "$single" "$REMOTE/inbox/new.xml"
cp "$single" "$REMOTE/inbox/old.xml"
touch -d '2024-01-01 00:00:00' "$REMOTE/inbox/old.xml"
run_agent sync
assert_contains "$STDOUT" "1 deferred" "one file deferred"
assert_exists "$REMOTE/archive/old.xml" "oldest taken first"
assert_exists "$REMOTE/inbox/new.xml" "newer file waits"

# Names that are not UTF-8, with spaces or a leading dash, and symlinks.
setup_case odd_names
cp "$single" "$REMOTE/inbox/$(printf 'caf\xe9 -x.xml')"
cp "$single" "$REMOTE/inbox/-lead ing.xml"
ln -s /etc/passwd "$REMOTE/inbox/link.xml"
run_agent sync
assert_eq 0 "$RC" "odd names sync"
assert_contains "$STDOUT" "2 delivered" "both odd names delivered"
assert_contains "$STDOUT" "1 skipped" "symlink skipped"
assert_exists "$REMOTE/archive/$(printf 'caf\xe9 -x.xml')" "raw bytes archived as they were"
assert_exists "$REMOTE/archive/-lead ing.xml" "leading dash archived"
assert_exists "$REMOTE/inbox/link.xml" "symlink not moved"
raw=$(json_of 'caf%E9 -x.xml' .source.name_raw)
assert_eq "$(printf 'caf\xe9 -x.xml' | base64)" "$raw" "name_raw holds the exact bytes"

finish
