#!/usr/bin/env bash
# The [csv] options reach the parser through sync: a semicolon file grouped
# into documents, a windows-1250 file, a tab file with delimiter = auto,
# and a byte that windows-1252 does not define, which sends the file to
# the error folder with its offset.
. "$(dirname "$0")/lib.sh"

# Append a [csv] section with the given "key = value" lines to $CONFIG.
write_csv_section() {
  local line
  echo "[csv]" >>"$CONFIG"
  for line in "$@"; do
    echo "$line" >>"$CONFIG"
  done
}

# Semicolons, grouped by meta_url.
setup_case csv_semicolon_grouped
write_csv_section "delimiter = semicolon" "group_by = meta_url"
cp "$TEST_DATA_DIR/rossum_export_multi_semicolon.csv" "$REMOTE/inbox/"
run_agent sync
assert_eq 0 "$RC" "exit code with delimiter ;"
n=rossum_export_multi_semicolon.csv
assert_eq 5 "$(json_of $n '.records | length')" "records stay with group_by"
assert_eq "Annual subscription; 25 seats, billed yearly" \
  "$(json_of $n '.records[4].Notes')" "quoted semicolon is data"
assert_eq 3 "$(json_of $n '.documents | length')" "documents by meta_url"
assert_eq "3 1 0" "$(json_of $n '[.documents[].items | length] | map(tostring) | join(" ")')" \
  "items per document"
assert_eq GC-118230 "$(json_of $n '.documents[0].fields["Invoice number"]')" "first document"
assert_eq "Coffee service per person" \
  "$(json_of $n '.documents[0].items[2].Description')" "third item"
assert_eq null "$(json_of $n '.documents[0].fields.Description')" "item column not in fields"
assert_eq confirmed "$(json_of $n '.documents[1].fields.meta_status')" "second document"
assert_eq "Ocean freight Rotterdam - Newark, 1x40HC" \
  "$(json_of $n '.documents[1].items[0].Description')" "comma inside a ; file"
assert_eq "Item code,Description,Quantity,Unit,Unit price,Line total" \
  "$(json_of $n '.documents[0].items[0] | keys_unsorted | join(",")')" "item columns"
assert_contains "$STDOUT" "1 delivered" "summary with delimiter ;"

# windows-1250, converted to UTF-8, grouped.
setup_case csv_windows_1250
write_csv_section "encoding = windows-1250" "group_by = meta_url"
tail -c +4 "$TEST_DATA_DIR/rossum_export_bom_quoted.csv" |
  iconv -f UTF-8 -t WINDOWS-1250 >"$REMOTE/inbox/faktury-1250.csv"
run_agent sync
assert_eq 0 "$RC" "exit code with encoding = windows-1250"
n=faktury-1250.csv
assert_eq 3 "$(json_of $n '.records | length')" "windows-1250 records"
assert_eq "Žluťoučký kůň s.r.o." "$(json_of $n '.records[0]["Vendor name"]')" "converted letters"
assert_eq 'Dodávka dle obj. č. 42 – "expres" <urgentní> & 5 % sleva; splatnost 14 dní, cena 1 234,50 €' \
  "$(json_of $n '.records[0].Notes')" "converted en dash and euro sign"
assert_eq "Remboursement acompte « réservation salle »" \
  "$(json_of $n '.records[2].Description')" "converted guillemets"
assert_eq "2 1" "$(json_of $n '[.documents[].items | length] | map(tostring) | join(" ")')" \
  "windows-1250 items per document"
assert_eq "Müller & Söhne GmbH" "$(json_of $n '.documents[0].fields["Customer name"]')" \
  "converted field"

# Tabs, found by delimiter = auto.
setup_case csv_auto_tab
write_csv_section "delimiter = auto"
printf 'Invoice number\tDescription\tLine total\r\n2024-0042\t"Copy paper, 500 sheets"\t450.00\r\n' \
  >"$REMOTE/inbox/tabs.csv"
run_agent sync
assert_eq 0 "$RC" "exit code with delimiter = auto"
assert_eq "Copy paper, 500 sheets" "$(json_of tabs.csv '.records[0].Description')" "tab value"
assert_eq 450.00 "$(json_of tabs.csv '.records[0]["Line total"]')" "last tab column"
assert_eq null "$(json_of tabs.csv '.documents')" "no documents without group_by"

# A byte that windows-1252 does not define.
setup_case csv_invalid_byte
write_csv_section "encoding = windows-1252"
printf 'a,b\r\n1,x\x81y\r\n' >"$REMOTE/inbox/bad-1252.csv"
run_agent sync
assert_eq 1 "$RC" "exit code for an undefined byte"
assert_exists "$REMOTE/error/bad-1252.csv" "file in the error folder"
assert_contains "$(cat "$REMOTE/error/bad-1252.csv.reason.txt")" \
  "line 2, byte offset 8: invalid windows-1252 byte 0x81" "reason gives line and offset"
assert_eq 0 "$(count_files "$OUT" '*.json')" "no output for the bad file"

finish
