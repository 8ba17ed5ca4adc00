#!/usr/bin/env bash
# sync ingests every sample export from a real sshd into correct JSON,
# archives the remote files and delivers nothing the second time.
. "$(dirname "$0")/lib.sh"

setup_case samples
cp "$TEST_DATA_DIR"/*.xml "$TEST_DATA_DIR"/rossum_export_multi.csv \
  "$TEST_DATA_DIR"/rossum_export_single.csv \
  "$TEST_DATA_DIR"/rossum_export_bom_quoted.csv \
  "$TEST_DATA_DIR"/public/rossum_sdk_annotation_export.xml "$REMOTE/inbox/"
sources=$(count_files "$REMOTE/inbox")

run_agent sync
assert_eq 0 "$RC" "exit code of the first sync"
assert_contains "$STDOUT" "$sources delivered" "summary"
assert_eq "$sources" "$(count_files "$OUT" '*.json')" "one output per source"
assert_eq 0 "$(count_files "$REMOTE/inbox")" "inbox is empty"
assert_eq "$sources" "$(count_files "$REMOTE/archive")" "archive holds every file"
assert_eq 0 "$(count_files "$OUT" '.*.tmp')" "no temporary files"

# rossum_export_single.xml
n=rossum_export_single.xml
assert_eq 1 "$(json_of $n '.format_version')" "format_version"
assert_eq "$REMOTE/inbox/$n" "$(json_of $n '.source.path')" "source.path"
assert_eq xml "$(json_of $n '.source.format')" "source.format"
assert_eq "$(stat -c %s "$TEST_DATA_DIR/$n")" "$(json_of $n '.source.size')" "source.size"
assert_eq "$(sha256sum "$TEST_DATA_DIR/$n" | cut -d' ' -f1)" "$(json_of $n '.source.sha256')" "source.sha256"
assert_eq 4410001 "$(json_of $n '.annotations[0].id')" "annotation id"
assert_eq number "$(json_of $n '.annotations[0].id | type')" "id is a number"
assert_eq exported "$(json_of $n '.annotations[0].status')" "status"
assert_eq 2024-11-04T09:02:47.009114Z "$(json_of $n '.annotations[0].exported_at')" "exported_at"
assert_eq INV-2024-0042.pdf "$(json_of $n '.annotations[0].file_name')" "file_name"
assert_eq 1512.50 "$(json_of $n '.annotations[0].fields.amount_total')" "amount_total stays text"
assert_eq string "$(json_of $n '.annotations[0].fields.amount_total | type')" "amount is a string"
assert_eq "" "$(json_of $n '.annotations[0].fields.var_sym')" "empty field"
assert_eq $'Kanaalweg 88\n3526 KM Utrecht\nNetherlands' "$(json_of $n '.annotations[0].fields.sender_address')" "multi-line value"
assert_eq 2 "$(json_of $n '.annotations[0].tables.line_items | length')" "line items"
assert_eq TNR-K-220 "$(json_of $n '.annotations[0].tables.line_items[1].item_code')" "second item code"
assert_eq 21 "$(json_of $n '.annotations[0].tables.tax_details[0].tax_detail_rate')" "tax rate"

# rossum_export_multi.xml
n=rossum_export_multi.xml
assert_eq 3 "$(json_of $n '.annotations | length')" "multi annotations"
assert_eq null "$(json_of $n '.annotations[1].exported_at')" "missing exported_at is null"
assert_eq confirmed "$(json_of $n '.annotations[1].status')" "confirmed status"
assert_eq B-2024-11-04 "$(json_of $n '.annotations[1].metadata.erp_batch')" "metadata item"
assert_eq ap.lead@example.com "$(json_of $n '.annotations[1].modifier')" "modifier"
assert_eq true "$(json_of $n '.annotations[2].automated')" "automated"
assert_eq 0 "$(json_of $n '.annotations[2].tables.line_items | length')" "empty multivalue"
assert_eq "Annual subscription; 25 seats, billed yearly" "$(json_of $n '.annotations[2].fields.notes')" "notes"

# rossum_export_edge_cases.xml
n=rossum_export_edge_cases.xml
assert_eq "Žluťoučký kůň s.r.o." "$(json_of $n '.annotations[0].fields.sender_name')" "UTF-8 value"
assert_eq "Müller & Söhne GmbH" "$(json_of $n '.annotations[0].fields.recipient_name')" "entity"
assert_eq 'Dodávka dle obj. č. 42 – "expres" <urgentní> & 5 % sleva; splatnost 14 dní, cena 1 234,50 €' \
  "$(json_of $n '.annotations[0].fields.notes')" "notes with references"
assert_eq null "$(json_of $n '.annotations[1].modifier')" "empty modifier"
assert_eq -144.00 "$(json_of $n '.annotations[1].fields.amount_total')" "credit note total"
assert_eq '{}' "$(json_of $n '.annotations[1].tables.tax_details[0] | tojson')" "empty tuple"
assert_eq 'A&B "quoted" <x>' "$(json_of $n '.annotations[1].metadata.ticket')" "metadata text"

# rossum_export_empty.xml and the public sample
assert_eq 0 "$(json_of rossum_export_empty.xml '.annotations | length')" "empty export"
n=rossum_sdk_annotation_export.xml
assert_eq 315777 "$(json_of $n '.annotations[0].id')" "public sample id"
assert_eq 12345 "$(json_of $n '.annotations[0].fields.document_id')" "public sample field"
assert_eq template_invoice.pdf "$(json_of $n '.annotations[0].file_name')" "public sample file name"

# CSV exports become records.
n=rossum_export_multi.csv
assert_eq csv "$(json_of $n '.source.format')" "csv format"
assert_eq 5 "$(json_of $n '.records | length')" "csv records"
assert_eq "Ocean freight Rotterdam - Newark, 1x40HC" "$(json_of $n '.records[3].Description')" "quoted comma"
assert_eq confirmed "$(json_of $n '.records[3].meta_status')" "meta_status"
n=rossum_export_bom_quoted.csv
assert_eq meta_file_name "$(json_of $n '.records[0] | keys_unsorted | .[0]')" "BOM stripped"
assert_eq 3 "$(json_of $n '.records | length')" "bom csv records"
assert_eq "Müller & Söhne GmbH" "$(json_of $n '.records[0]["Customer name"]')" "csv UTF-8"
assert_eq 2 "$(json_of rossum_export_single.csv '.records | length')" "single csv records"

# The second sync finds nothing new and changes nothing.
before=$(ls "$OUT" | sort)
run_agent sync
assert_eq 0 "$RC" "exit code of the second sync"
assert_contains "$STDOUT" "0 delivered" "second summary"
assert_eq "$before" "$(ls "$OUT" | sort)" "outputs unchanged"

run_agent status
assert_eq 0 "$RC" "status exit code"
assert_contains "$STDOUT" "archived   $sources" "status counts archived files"

finish
