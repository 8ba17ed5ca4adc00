#!/usr/bin/env bash
# Demo: build the agent, start a throwaway OpenSSH sshd on 127.0.0.1 with
# the sample Rossum exports in its inbox, run one sync against it and show
# what was ingested and where. Everything lives under demo/ and the server
# is stopped at the end.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/bootstrap.sh"

demo="$top/demo"
rm -rf "$demo"
mkdir -p "$demo"
bash "$top/tests/integration/sshd.sh" start "$demo/sshd" >/dev/null
trap 'bash "$top/tests/integration/sshd.sh" stop "$demo/sshd" >/dev/null' EXIT
# shellcheck disable=SC1091
. "$demo/sshd/env"

export_dir="$SFTP_ROOT/export"
mkdir -p "$export_dir/archive" "$export_dir/error"
cp "$top"/tests/data/*.xml "$top"/tests/data/public/*.xml \
  "$top"/tests/data/rossum_export_multi.csv \
  "$top"/tests/data/rossum_export_bom_quoted.csv "$export_dir/"
printf '<export><results><annotation>\n' >"$export_dir/truncated_export.xml"

cat >"$demo/agent.conf" <<CONF
[server]
host = $SSHD_HOST
port = $SSHD_PORT
user = $SSHD_USER
private_key = $KEY_ED25519
known_hosts = $KNOWN_HOSTS
[remote]
inbox = $export_dir
archive = $export_dir/archive
error = $export_dir/error
stable_seconds = 1
[local]
state_dir = $demo/state
output_dir = $demo/outbox
CONF

agent="$top/build/rossum-sftp-agent"
echo "== check"
"$agent" check -c "$demo/agent.conf"
echo
echo "== sync (the truncated file is meant to fail)"
status=0
"$agent" sync -c "$demo/agent.conf" || status=$?
echo "exit code: $status"
echo
echo "== outputs in $demo/outbox"
for file in "$demo"/outbox/*.json; do
  jq -r '"\(.source.name): \((.annotations // .records) | length) \(if .annotations then "annotations" else "records" end) -> '"$(basename "$file")"'"' "$file"
done
echo
echo "== remote archive: $(ls "$export_dir/archive" | tr '\n' ' ')"
echo "== remote error:   $(ls "$export_dir/error" | tr '\n' ' ')"
echo
echo "== first annotation of rossum_export_single.xml"
jq '.annotations[0] | {id, status, file_name, fields: (.fields | {document_id, amount_total, currency}), line_items: (.tables.line_items | length)}' \
  "$demo"/outbox/rossum_export_single.xml.*.json
