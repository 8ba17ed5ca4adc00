#!/usr/bin/env bash
# Re-uploads under the same name: identical content is archived without a
# second delivery and the log names it a duplicate, changed content is a new version
# delivered once, and the archive keeps every version under its own name.
# A kill between the steps changes none of that.
. "$(dirname "$0")/lib.sh"

start_case reuploads
write_config "remote.include = *.xml *.csv *.json"
sample=$TEST_DATA_DIR/rossum_export_single.xml
changed=$LOCAL/changed.xml
{ cat "$sample"; printf '<!-- version 2 -->\n'; } >"$changed"

# The first version, delivered.
upload "$sample" inv.xml deliver
run_logged sync
assert_eq 0 "$RC" "first version delivered"

# The same bytes again: archived under a second name, no second document.
upload "$sample" inv.xml duplicate
run_logged sync
assert_eq 0 "$RC" "identical re-upload"
assert_contains "$STDERR" "'inv.xml' is identical to the version delivered before" \
  "the log names the duplicate"
assert_contains "$STDOUT" "1 duplicates" "the summary counts the duplicate"

# Changed content: a new version, delivered once.
upload "$changed" inv.xml deliver
run_logged sync
assert_eq 0 "$RC" "changed version delivered"
assert_contains "$STDERR" "delivered 'inv.xml'" "the new version is delivered"

# The first version once more, with a kill at the duplicate's archive move
# and after it: still no second document, and no version is overwritten.
if have_fault_points; then
  for point in before_remote_rename after_remote_rename; do
    upload "$sample" inv.xml duplicate
    AGENT_FAULT_POINT=$point run_logged sync
    assert_eq 137 "$RC" "killed at $point"
    finish_agent
    assert_eq 0 "$RC" "finished after the kill at $point"
  done
fi

# The changed version again, then both versions back to back in one pass
# under two names.
upload "$changed" inv.xml duplicate
upload "$sample" other.xml deliver
finish_agent
assert_eq 0 "$RC" "last pass"

# Every version is kept under a distinct name; none was overwritten.
versions=$(find "$REMOTE/archive" -name 'inv*.xml' | wc -l)
expected=$(grep -c '"rel":"696e762e786d6c"' "$UPLOADS")
assert_eq "$expected" "$versions" "archive keeps every upload of inv.xml"
check_invariants
finish
