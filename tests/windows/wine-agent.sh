#!/usr/bin/env bash
# Run rossum-sftp-agent.exe under wine in place of the Linux binary, so
# that the integration tests in tests/integration/ drive the Windows
# build unchanged (tests/windows/tests.cmake sets AGENT_BIN to this
# script).
#
# The config named by -c/--config is copied to FILE.win with every local
# path (keys, secret files, known_hosts, state, output, log and metrics)
# written as a Windows path on drive Z:, which wine maps to /. Remote
# paths stay as they are. The agent's CR LF line ends become LF.
#
# Environment: AGENT_EXE (the .exe), WINEPREFIX, WINE_TIMEOUT (seconds,
# default 120).
set -euo pipefail

: "${AGENT_EXE:?AGENT_EXE must name rossum-sftp-agent.exe}"
here=$(cd "$(dirname "$0")" && pwd)

# Print a Linux path as the Windows path that wine maps to it.
wine_path() {
  printf 'Z:%s\n' "${1//\//\\}"
}

local_keys='private_key|passphrase_file|password_file|known_hosts|state_dir|output_dir|log_file|metrics_file'

# Write FILE.win from FILE with local paths converted.
convert_config() {
  local line key value
  while IFS= read -r line || [ -n "$line" ]; do
    if [[ "$line" =~ ^[[:space:]]*($local_keys)[[:space:]]*=[[:space:]]*(/.*)$ ]]; then
      key=${BASH_REMATCH[1]}
      value=${BASH_REMATCH[2]}
      printf '%s = %s\n' "$key" "$(wine_path "$value")"
    else
      printf '%s\n' "$line"
    fi
  done <"$1" >"$1.win"
}

args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -c | --config)
      convert_config "$2"
      args+=("$1" "$(wine_path "$2.win")")
      shift 2
      ;;
    --config=*)
      convert_config "${1#--config=}"
      args+=("--config=$(wine_path "${1#--config=}.win")")
      shift
      ;;
    *)
      args+=("$1")
      shift
      ;;
  esac
done

out=$(mktemp)
err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
rc=0
WINE_TIMEOUT=${WINE_TIMEOUT:-120} "$here/wine-run.sh" "$AGENT_EXE" "${args[@]}" \
  >"$out" 2>"$err" </dev/null || rc=$?
tr -d '\r' <"$out"
tr -d '\r' <"$err" >&2
exit "$rc"
