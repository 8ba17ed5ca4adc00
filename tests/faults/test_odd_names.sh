#!/usr/bin/env bash
# Odd names and entries. Names with spaces, a leading dash, non-ASCII
# UTF-8 and bytes that are not UTF-8 are delivered and archived byte for
# byte. Symbolic links and other non-regular entries are skipped, logged
# once and never followed or archived. No remote name reaches the local
# file system unescaped, including names that are devices on Windows and
# names that differ only in case.
. "$(dirname "$0")/lib.sh"

start_case odd_names
write_config "remote.include = *.xml *.csv *.XML *.json" "remote.recursive = yes"
printf '[agent]\npoll_interval = 1\n' >>"$CONFIG"
sample=$TEST_DATA_DIR/rossum_export_single.xml
n=0
# Each name gets its own content, so each has its own delivery.
odd() { # name
  n=$((n + 1))
  { cat "$sample"; printf '<!-- %d -->\n' "$n"; } >"$LOCAL/odd.tmp"
  upload "$LOCAL/odd.tmp" "$1" deliver
}
odd 'with space.xml'
odd '-leading-dash.xml'
odd '--.xml'
odd 'Žluťoučký kůň.xml'
odd $'latin1-\xe9t\xe9.xml'
odd $'bad-\xff\xfe.xml'
odd 'CON.xml'
odd 'nul.xml'
odd 'COM1.xml'
odd 'lpt9 .xml'
odd 'Invoice.xml'
odd 'invoice.xml'
odd 'INVOICE.XML'
odd 'a:b*c?.xml'
odd 'back\slash.xml'
odd '..two-dots.xml'
odd 'dots...xml'
odd '%41percent.xml'
odd $'tab\there.xml'
odd 'sub dir/-inner.xml'
odd $'sub dir/\xc3(.xml'
# The same content under two names that differ only in case.
cp "$sample" "$REMOTE/inbox/Same.xml"
cp "$sample" "$REMOTE/inbox/same.xml"
touch -d '-1 min' "$REMOTE/inbox/Same.xml" "$REMOTE/inbox/same.xml"
upload_note Same.xml deliver
upload_note same.xml deliver

# Entries that must be skipped: links to a file outside the inbox, to a
# file inside it and to a folder, a dangling link, and a FIFO.
mkdir -p "$LOCAL/outside"
printf '<export><results></results></export>\n' >"$LOCAL/outside/secret.xml"
ln -s "$LOCAL/outside/secret.xml" "$REMOTE/inbox/link-out.xml"
ln -s "with space.xml" "$REMOTE/inbox/link-in.xml"
ln -s "$LOCAL/outside" "$REMOTE/inbox/link-dir.xml"
ln -s /nonexistent "$REMOTE/inbox/dangling.xml"
mkfifo "$REMOTE/inbox/fifo.xml"

# `run` makes several passes; each skipped entry is logged once.
"$AGENT_BIN" run -c "$CONFIG" >"$LOCAL/run.out" 2>"$LOCAL/run.err" &
AGENT_PID=$!
sleep 3.5
kill -TERM "$AGENT_PID"
RC=0
wait "$AGENT_PID" || RC=$?
AGENT_PID=""
STDERR=$(cat "$LOCAL/run.err")
cat "$LOCAL/run.err" >>"$LOCAL/agent.log"
assert_eq 0 "$RC" "run stops with exit code 0"
passes=$(grep -c 'pass done\|waiting' "$LOCAL/run.err" || true)
for link in link-out.xml link-in.xml link-dir.xml dangling.xml fifo.xml; do
  assert_eq 1 "$(grep -c "skipped '$link'" <<<"$STDERR")" \
    "$link skipped and logged once"
  if [ -L "$REMOTE/inbox/$link" ] || [ -p "$REMOTE/inbox/$link" ]; then
    pass
  else
    fail "$link was not left in place"
  fi
  if [ -L "$REMOTE/archive/$link" ] || [ -e "$REMOTE/archive/$link" ]; then
    fail "$link was archived"
  else
    pass
  fi
done
assert_exists "$LOCAL/outside/secret.xml" "link target untouched"
assert_eq 0 "$(grep -rl 'secret' "$COLLECT" "$OUT" 2>/dev/null | wc -l)" \
  "link target not delivered"

# Every odd name is archived under its exact bytes.
"$PYTHON" - "$UPLOADS" "$REMOTE/archive" <<'EOF' >"$LOCAL/archived.txt" ||
import json, os, sys
uploads, archive = sys.argv[1], os.fsencode(sys.argv[2])
missing = []
for line in open(uploads, encoding="utf-8"):
    rel = bytes.fromhex(json.loads(line)["rel"])
    if not os.path.isfile(os.path.join(archive, rel)):
        missing.append(repr(rel))
print("not archived under the same bytes: " + ", ".join(missing) if missing else "")
sys.exit(1 if missing else 0)
EOF
  fail "$(cat "$LOCAL/archived.txt")"
pass

# No output name is unsafe on Windows, and no two differ only in case.
consumer_stop
names=$(ls "$COLLECT" | sed 's/^[0-9]\{8\}-//')
"$PYTHON" - "$names" <<'EOF' >"$LOCAL/names.txt" || fail "$(cat "$LOCAL/names.txt")"
import re, sys
names = sys.argv[1].split("\n")
bad = []
seen = {}
for name in names:
    stem = name.split(".")[0].rstrip(" ").upper()
    if re.fullmatch(r"CON|PRN|AUX|NUL|COM[0-9¹²³]|LPT[0-9¹²³]", stem):
        bad.append("reserved device name: " + name)
    if re.search(r'[\\/:*?"<>|\x00-\x1f\x7f]', name):
        bad.append("unsafe character: " + repr(name))
    if name.startswith(".") or name.endswith((".", " ")):
        bad.append("leading or trailing dot or space: " + name)
    folded = name.casefold()
    if folded in seen:
        bad.append("differ only in case: %s and %s" % (seen[folded], name))
    seen[folded] = name
print("\n".join(bad))
sys.exit(1 if bad else 0)
EOF
pass
consumer_start
finish_agent
check_invariants
finish
