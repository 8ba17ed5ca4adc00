#!/usr/bin/env bash
# JSON exports, original documents copied by passthrough, and [mapping]
# renames, run through sync against the real server.
. "$(dirname "$0")/lib.sh"

multi_json=$TEST_DATA_DIR/rossum_export_multi.json
multi_xml=$TEST_DATA_DIR/rossum_export_multi.xml
single_xml=$TEST_DATA_DIR/rossum_export_single.xml
single_csv=$TEST_DATA_DIR/rossum_export_single.csv

# Append a [mapping] section with the lines given.
add_mapping() {
  printf '[mapping]\n' >>"$CONFIG"
  printf '%s\n' "$@" >>"$CONFIG"
}

# A JSON export gives the same annotations as the XML export of the same
# content; a broken one fails with its position.
setup_case json
write_config "remote.include = *.xml *.csv *.json"
cp "$multi_json" "$REMOTE/inbox/"
cp "$multi_xml" "$REMOTE/inbox/"
printf '{"results":[{"url":"u/1","content":[' >"$REMOTE/inbox/broken.json"
run_agent sync
assert_eq 1 "$RC" "exit code with one broken file"
assert_contains "$STDOUT" "2 delivered" "both samples delivered"
assert_contains "$STDOUT" "1 failed" "broken JSON failed"
assert_eq json "$(json_of rossum_export_multi.json .source.format)" "source.format"
assert_eq 3 "$(json_of rossum_export_multi.json '.annotations | length')" "annotation count"
assert_eq 4410021 "$(json_of rossum_export_multi.json '.annotations[0].id')" "first id"
assert_eq 394.80 "$(json_of rossum_export_multi.json '.annotations[0].fields.amount_total')" "amount_total stays text"
assert_eq string "$(json_of rossum_export_multi.json '.annotations[0].fields.amount_total | type')" "amount_total is a string"
assert_eq null "$(json_of rossum_export_multi.json '.annotations[1].exported_at')" "exported_at of the confirmed annotation"
assert_eq B-2024-11-04 "$(json_of rossum_export_multi.json '.annotations[1].metadata.erp_batch')" "metadata"
assert_eq true "$(json_of rossum_export_multi.json '.annotations[2].automated')" "automated"
assert_eq 0 "$(json_of rossum_export_multi.json '.annotations[2].tables.line_items | length')" "empty line_items"
assert_eq "$(json_of rossum_export_multi.xml '.annotations' | jq -S .)" \
  "$(json_of rossum_export_multi.json '.annotations' | jq -S .)" "JSON and XML give the same annotations"
assert_exists "$REMOTE/archive/rossum_export_multi.json" "JSON export archived"
assert_exists "$REMOTE/error/broken.json" "broken JSON in the error folder"
assert_contains "$(cat "$REMOTE/error/broken.json.reason.txt")" "line 1, column" "reason gives the position"
assert_contains "$STDERR" "(json, 3 annotations," "delivery logged with the format"

# JSON is not taken unless include selects it.
setup_case json_not_included
cp "$multi_json" "$REMOTE/inbox/"
run_agent sync
assert_eq 0 "$RC" "sync without *.json in include"
assert_exists "$REMOTE/inbox/rossum_export_multi.json" "JSON export left in the inbox"
assert_eq 0 "$(count_files "$OUT" '*.json')" "no output"

# Original documents are copied byte for byte, with a sidecar, and
# archived; exclude still wins, and a name that is also included is not
# parsed.
setup_case passthrough
write_config "remote.passthrough = invoice_file-*" "remote.exclude = *.part"
head -c 200000 /dev/urandom >"$REMOTE/inbox/invoice_file-4410021"
printf '%%PDF-1.7\n\0binary\r\n' >>"$REMOTE/inbox/invoice_file-4410021"
: >"$REMOTE/inbox/invoice_file-empty"
printf 'not an export' >"$REMOTE/inbox/invoice_file-7.xml"
cp "$REMOTE/inbox/invoice_file-4410021" "$REMOTE/inbox/invoice_file-9.part"
cp "$single_xml" "$REMOTE/inbox/"
original=$LOCAL/original
cp "$REMOTE/inbox/invoice_file-4410021" "$original"
run_agent sync
assert_eq 0 "$RC" "passthrough sync"
assert_contains "$STDOUT" "4 delivered" "three originals and one export delivered"
sha=$(sha256sum "$original" | cut -d' ' -f1)
copy=$OUT/invoice_file-4410021.${sha:0:16}.bin
assert_exists "$copy" "copy named with the hash and .bin"
cmp -s "$original" "$copy" && pass || fail "copy differs from the original"
sidecar=$copy.json
assert_exists "$sidecar" "sidecar beside the copy"
assert_eq '["format_version","source"]' "$(jq -c keys_unsorted "$sidecar")" "sidecar keys"
assert_eq 1 "$(jq .format_version "$sidecar")" "sidecar format_version"
assert_eq passthrough "$(jq -r .source.format "$sidecar")" "sidecar source.format"
assert_eq "$sha" "$(jq -r .source.sha256 "$sidecar")" "sidecar source.sha256"
assert_eq "$(stat -c %s "$original")" "$(jq .source.size "$sidecar")" "sidecar source.size"
assert_eq invoice_file-4410021 "$(jq -r .source.name "$sidecar")" "sidecar source.name"
assert_eq "$REMOTE/inbox/invoice_file-4410021" "$(jq -r .source.path "$sidecar")" "sidecar source.path"
assert_eq 640 "$(stat -c %a "$copy")" "copy readable by the group"
assert_eq 640 "$(stat -c %a "$sidecar")" "sidecar readable by the group"
empty_sha=$(sha256sum </dev/null | cut -d' ' -f1)
assert_eq 0 "$(stat -c %s "$OUT/invoice_file-empty.${empty_sha:0:16}.bin")" "empty original copied"
xml_sha=$(printf 'not an export' | sha256sum | cut -d' ' -f1)
assert_eq "not an export" "$(cat "$OUT/invoice_file-7.xml.${xml_sha:0:16}.bin")" "included name copied, not parsed"
assert_exists "$REMOTE/archive/invoice_file-4410021" "original archived"
assert_exists "$REMOTE/inbox/invoice_file-9.part" "excluded original left in the inbox"
assert_eq 0 "$(count_files "$OUT" '.incoming*')" "no temporary file left"
assert_eq 3 "$(count_files "$OUT" '*.bin.json')" "one sidecar per original"
assert_eq 4 "$(count_files "$OUT" '*.json')" "three sidecars and one document"
assert_contains "$STDERR" "delivered 'invoice_file-4410021' (original document, $(stat -c %s "$original") bytes)" "copy logged"

# An identical re-upload of an original is not delivered twice.
cp "$original" "$REMOTE/inbox/invoice_file-4410021"
run_agent sync
assert_eq 0 "$RC" "re-upload sync"
assert_contains "$STDOUT" "1 duplicates" "re-upload counted as duplicate"
assert_eq 3 "$(count_files "$OUT" '*.bin')" "still three copies"

# [mapping] renames a field and drops another, in XML and CSV outputs.
setup_case mapping
cp "$single_xml" "$REMOTE/inbox/"
cp "$single_csv" "$REMOTE/inbox/"
add_mapping "document_id = invoice_number" "sender_ic = -" \
  "item_code = code" "Invoice number = invoice_number" "PO number = -"
run_agent sync
assert_eq 0 "$RC" "mapping sync"
assert_contains "$STDOUT" "2 delivered" "both files delivered"
assert_eq 2024-0042 "$(json_of rossum_export_single.xml '.annotations[0].fields.invoice_number')" "XML field renamed"
assert_eq false "$(json_of rossum_export_single.xml '.annotations[0].fields | has("document_id")')" "XML old name gone"
assert_eq false "$(json_of rossum_export_single.xml '.annotations[0].fields | has("sender_ic")')" "XML field dropped"
assert_eq PAP-A4-80 "$(json_of rossum_export_single.xml '.annotations[0].tables.line_items[0].code')" "XML table column renamed"
assert_eq 2024-0042 "$(json_of rossum_export_single.csv '.records[0].invoice_number')" "CSV header renamed"
assert_eq false "$(json_of rossum_export_single.csv '.records[0] | has("Invoice number")')" "CSV old header gone"
assert_eq false "$(json_of rossum_export_single.csv '.records[1] | has("PO number")')" "CSV column dropped"
assert_eq invoice_number "$(json_of rossum_export_single.csv '.records[0] | keys_unsorted | .[0]')" "CSV column order kept"

# A rename onto a name the object already has fails the file.
setup_case mapping_clash
cp "$single_xml" "$REMOTE/inbox/"
add_mapping "document_id = amount_total"
run_agent sync
assert_eq 1 "$RC" "exit code with a mapping clash"
assert_exists "$REMOTE/error/rossum_export_single.xml" "file in the error folder"
assert_contains "$(cat "$REMOTE/error/rossum_export_single.xml.reason.txt")" \
  '[mapping] gives "document_id" and "amount_total" the same name "amount_total" in fields of annotation 1' \
  "reason names both keys"
assert_eq 0 "$(count_files "$OUT" '*.json')" "no output"

# A [mapping] name that is not UTF-8 stops the agent before it connects.
setup_case mapping_not_utf8
cp "$single_xml" "$REMOTE/inbox/"
add_mapping "$(printf 'caf\xe9') = cafe"
run_agent sync
assert_eq 2 "$RC" "exit code with a name that is not UTF-8"
assert_contains "$STDERR" "is not valid UTF-8" "message names the problem"
assert_exists "$REMOTE/inbox/rossum_export_single.xml" "file left in the inbox"

finish
