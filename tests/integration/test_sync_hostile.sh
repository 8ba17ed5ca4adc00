#!/usr/bin/env bash
# One sync over a corpus of broken and hostile export files and two good
# ones. Each bad file must end in the error folder with a reason file that
# gives the expected reason, must give no output document, and must be
# named with its reason in the log. The good files are delivered, sync
# exits 1, and no file makes the agent connect to the loopback listener
# that their URLs point at.
#
# Environment:
#   TCP_LISTEN  the tcp_listen binary (set by tests/CMakeLists.txt)
# Needs jq and iconv.
. "$(dirname "$0")/lib.sh"

: "${TCP_LISTEN:?TCP_LISTEN must name the tcp_listen binary}"

setup_case hostile
write_config "remote.include = *.xml *.csv *.json"
inbox="$REMOTE/inbox"

# The listener stops by itself after 60 s if the test dies before it
# stops the listener.
"$TCP_LISTEN" 60 >"$LOCAL/listener.out" &
listener_pid=$!
trap 'kill "$listener_pid" 2>/dev/null' EXIT
for _ in $(seq 50); do
  grep -qs '^port ' "$LOCAL/listener.out" && break
  sleep 0.1
done
port=$(sed -n 's/^port //p' "$LOCAL/listener.out")
[ -n "$port" ] || fail "tcp_listen printed no port"

# Print an export whose only annotation nests sections down to level $1
# (<export> is level 1), one element per line.
nested_export() {
  awk -v levels="$1" 'BEGIN {
    print "<export><results><annotation url=\"https://x.example/a/1\"><content>"
    for (i = 5; i <= levels; i++) print "<section schema_id=\"s" i "\">"
    for (i = 5; i <= levels; i++) printf "</section>"
    print "</content></annotation></results></export>"
  }'
}

# Print a start tag with $1 attributes.
many_attributes_export() {
  awk -v count="$1" 'BEGIN {
    printf "<export><results>\n<annotation"
    for (i = 0; i < count; i++) printf " a%d=\"%d\"", i, i
    print "/></results></export>"
  }'
}

# The corpus: name, then the expected text of the reason.
declare -A reason
printf '<?xml version="1.0"?>\n<export>\n<results>\n<annotation url="x"><status>expo' >"$inbox/truncated.xml"
reason[truncated.xml]="line 4: truncated or malformed XML: Premature end of data in tag status line 4"

printf '<export><results><annotation>\n<status>caf\xe9</status></annotation></results></export>\n' >"$inbox/bad_utf8.xml"
reason[bad_utf8.xml]="line 2: Input is not proper UTF-8, indicate encoding ! Bytes: 0xE9"

printf '\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00' >"$inbox/image.xml"
reason[image.xml]="line 1: not an XML document (no root element): Start tag expected, '<' not found"

printf '<?xml version="1.0"?>\n<invoice><results/></invoice>\n' >"$inbox/wrong_root.xml"
reason[wrong_root.xml]="line 2: root element is <invoice>, expected <export>"

printf '<!DOCTYPE export [\n<!ENTITY a "aaaaaaaaaa">\n<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">\n]>\n<export><results><annotation><status>&b;</status></annotation></results></export>\n' >"$inbox/internal_entity.xml"
reason[internal_entity.xml]="line 1: DOCTYPE is not allowed in an export file"

printf '<?xml version="1.0"?>\n<!DOCTYPE export [<!ENTITY x SYSTEM "http://127.0.0.1:%s/x">]>\n<export><results><annotation><status>&x;</status></annotation></results></export>\n' "$port" >"$inbox/external_entity.xml"
reason[external_entity.xml]="line 2: DOCTYPE is not allowed in an export file"

# In UTF-16 the raw scan cannot see the DOCTYPE, so libxml2 reads its
# name before the agent rejects it, but not its declarations.
printf '<?xml version="1.0" encoding="UTF-16"?>\n<!DOCTYPE export [<!ENTITY x SYSTEM "http://127.0.0.1:%s/x">]>\n<export><results><annotation><status>&x;</status></annotation></results></export>\n' "$port" |
  iconv -f UTF-8 -t UTF-16 >"$inbox/external_entity_utf16.xml"
reason[external_entity_utf16.xml]="line 2: DOCTYPE is not allowed in an export file"

printf '<export><results>\n<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="http://127.0.0.1:%s/a.xml"/></results></export>\n' "$port" >"$inbox/xinclude.xml"
reason[xinclude.xml]="line 2: unexpected element <xi:include> in <results>"

nested_export 65 >"$inbox/too_deep.xml"
reason[too_deep.xml]="line 62: element nesting deeper than the limit of 64 levels (annotation https://x.example/a/1)"

{
  printf '<export><results><annotation>\n<status>'
  head -c 11000000 /dev/zero | tr '\0' 'x'
  printf '</status></annotation></results></export>\n'
} >"$inbox/huge_text.xml"
reason[huge_text.xml]="line 2: text node longer than the limit of 10000000 bytes"

many_attributes_export 1000 >"$inbox/many_attributes.xml"
reason[many_attributes.xml]="line 2: start tag with more than the limit of 64 attributes"

printf 'Invoice number,Total,Currency\r\n2024-0042,1.00,eur\r\n2024-0043,2.00\r\n' >"$inbox/field_count.csv"
reason[field_count.csv]="line 3: found 2 fields, expected 3 as in the header"

printf 'Invoice number,Vendor\r\n2024-0042,Caf\xe9 Ol\xe9\r\n' >"$inbox/bad_utf8.csv"
reason[bad_utf8.csv]="line 2, byte offset 36: invalid UTF-8"

printf 'this is not JSON\n' >"$inbox/not_json.json"
reason[not_json.json]="line 1, column 4 (byte offset 4): '[' or '{' expected near 'this'"

: >"$inbox/empty.xml"
reason[empty.xml]="empty file"

cp "$TEST_DATA_DIR/rossum_export_single.xml" "$inbox/good.xml"
cp "$TEST_DATA_DIR/rossum_export_multi.csv" "$inbox/good.csv"
bad_count=${#reason[@]}

start=$SECONDS
run_agent sync
elapsed=$((SECONDS - start))

# One connection of the test's own shows that the listener counts: any
# connection from the agent would raise the count above 1.
exec {probe}<>"/dev/tcp/127.0.0.1/$port" || fail "cannot connect to tcp_listen"
exec {probe}>&-
kill -TERM "$listener_pid"
wait "$listener_pid"
trap - EXIT
assert_eq "connections 1" "$(tail -n 1 "$LOCAL/listener.out")" "connections to the listener"

assert_eq 1 "$RC" "exit code with failed files"
assert_contains "$STDOUT" "2 delivered" "summary delivered"
assert_contains "$STDOUT" "$bad_count failed" "summary failed"

sources=$(jq -r .source.name "$OUT"/*.json)
for name in "${!reason[@]}"; do
  assert_exists "$REMOTE/error/$name" "$name in the error folder"
  assert_missing "$inbox/$name" "$name left the inbox"
  assert_exists "$REMOTE/error/$name.reason.txt" "$name reason file"
  assert_contains "$(cat "$REMOTE/error/$name.reason.txt")" "reason: ${reason[$name]}" "$name reason text"
  assert_not_contains "$sources"$'\n' "$name"$'\n' "$name has no output"
  assert_contains "$STDERR" "failed '$name': ${reason[$name]}" "$name logged with its reason"
done

# libxml2's wording for its depth and text limits is replaced.
assert_not_contains "$STDERR" "XML_PARSE_HUGE" "libxml2 depth wording replaced"
assert_not_contains "$STDERR" "xmlSAX2Characters" "libxml2 text wording replaced"

assert_eq 2 "$(count_files "$OUT" '*.json')" "output documents"
assert_exists "$REMOTE/archive/good.xml" "good XML archived"
assert_exists "$REMOTE/archive/good.csv" "good CSV archived"
assert_eq 1 "$(json_of good.xml '.annotations | length')" "annotations of good.xml"
assert_eq 4410001 "$(json_of good.xml '.annotations[0].id')" "annotation id of good.xml"
assert_eq 5 "$(json_of good.csv '.records | length')" "records of good.csv"

if [ "$elapsed" -gt 30 ]; then
  fail "sync took $elapsed s, more than 30 s"
fi
pass

finish
