# Shared helpers for the integration tests. Each test script sources this
# file, calls setup_case, runs the agent against the sshd fixture and
# checks values with the assert_* functions. A failed assert prints the
# agent's last output and exits non-zero.
set -u

: "${AGENT_BIN:?AGENT_BIN must name the agent binary}"
: "${SSHD_FIXTURE:?SSHD_FIXTURE must name the sshd fixture folder}"
: "${TEST_DATA_DIR:?TEST_DATA_DIR must name tests/data}"
# shellcheck disable=SC1091
. "$SSHD_FIXTURE/env"

checks_passed=0
checks_failed=0

# Create fresh local and remote folders for case $1 and a config for them.
setup_case() {
  CASE=$1
  LOCAL="${TEST_TMP:-/tmp/agent-tests}/$CASE"
  REMOTE="$SFTP_ROOT/$CASE"
  rm -rf "$LOCAL" "$REMOTE"
  mkdir -p "$LOCAL" "$REMOTE/inbox" "$REMOTE/archive" "$REMOTE/error"
  STATE="$LOCAL/state"
  OUT="$LOCAL/out"
  CONFIG="$LOCAL/agent.conf"
  write_config
}

# Write $CONFIG. Extra lines "section.key = value" replace or add keys.
write_config() {
  local server_extra="" remote_extra="" line
  for line in "$@"; do
    case "$line" in
      server.*) server_extra+="${line#server.}"$'\n' ;;
      remote.*) remote_extra+="${line#remote.}"$'\n' ;;
    esac
  done
  {
    echo "[server]"
    echo "host = $SSHD_HOST"
    echo "port = $SSHD_PORT"
    echo "user = $SSHD_USER"
    if [[ "$server_extra" != *private_key* && "$server_extra" != *password_file* ]]; then
      echo "private_key = $KEY_ED25519"
    fi
    if [[ "$server_extra" != *known_hosts* && "$server_extra" != *host_key_sha256* ]]; then
      echo "known_hosts = $KNOWN_HOSTS"
    fi
    echo "timeout = 10"
    printf '%s' "$server_extra"
    echo "[remote]"
    echo "inbox = $REMOTE/inbox"
    echo "archive = $REMOTE/archive"
    echo "error = $REMOTE/error"
    if [[ "$remote_extra" != *stable_seconds* ]]; then
      echo "stable_seconds = 0"
    fi
    printf '%s' "$remote_extra"
    echo "[local]"
    echo "state_dir = $STATE"
    echo "output_dir = $OUT"
  } >"$CONFIG"
}

# Run the agent; sets RC, STDOUT and STDERR.
run_agent() {
  local out_file="$LOCAL/stdout" err_file="$LOCAL/stderr"
  RC=0
  timeout 120 "$AGENT_BIN" "$@" -c "$CONFIG" >"$out_file" 2>"$err_file" || RC=$?
  STDOUT=$(cat "$out_file")
  STDERR=$(cat "$err_file")
}

fail() {
  checks_failed=$((checks_failed + 1))
  echo "FAIL [$CASE]: $*" >&2
  echo "--- agent stdout ---" >&2
  echo "${STDOUT:-}" >&2
  echo "--- agent stderr ---" >&2
  echo "${STDERR:-}" >&2
  exit 1
}

pass() {
  checks_passed=$((checks_passed + 1))
}

assert_eq() { # expected actual what
  if [ "$1" == "$2" ]; then pass; else fail "$3: expected '$1', got '$2'"; fi
}

assert_contains() { # haystack needle what
  if [[ "$1" == *"$2"* ]]; then pass; else fail "$3: '$2' not found"; fi
}

assert_not_contains() { # haystack needle what
  if [[ "$1" != *"$2"* ]]; then pass; else fail "$3: '$2' found"; fi
}

assert_exists() { # path what
  if [ -e "$1" ]; then pass; else fail "$2: $1 does not exist"; fi
}

assert_missing() { # path what
  if [ ! -e "$1" ]; then pass; else fail "$2: $1 exists"; fi
}

# Count the entries of a folder matching a glob (default: all but dot files).
count_files() { # dir [glob]
  local n=0 f
  for f in "$1"/${2:-*}; do
    [ -e "$f" ] && n=$((n + 1))
  done
  echo "$n"
}

# Print the single output document whose source name is $1.
output_for() {
  local f
  for f in "$OUT"/*.json; do
    [ -e "$f" ] || continue
    if [ "$(jq -r .source.name "$f")" == "$1" ]; then
      echo "$f"
      return 0
    fi
  done
  return 1
}

# Print a jq query over the output of source name $1.
json_of() { # name query
  local file
  file=$(output_for "$1") || fail "no output for '$1'"
  jq -r "$2" "$file"
}

finish() {
  echo "$checks_passed passed, $checks_failed failed"
}
