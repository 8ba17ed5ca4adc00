#!/usr/bin/env bash
# Run a throwaway OpenSSH sshd on 127.0.0.1 for the integration tests.
#
# Usage:
#   sshd.sh start DIR    create DIR afresh with host and user keys, a config
#                        and an SFTP area, start sshd on a free port
#   sshd.sh stop DIR     stop the sshd whose PID is in DIR/sshd.pid
#   sshd.sh restart DIR  stop, then start again with the same keys and port
#
# A test script may also source this file and call
# `sshd_fixture restart "$SSHD_FIXTURE"`. The function runs in a subshell,
# so it changes no shell options of the caller and returns non-zero on
# failure instead of exiting.
#
# start writes DIR/env, KEY='value' lines that bash can source:
#   SSHD_HOST, SSHD_PORT, SSHD_USER, SSHD_DIR, SFTP_ROOT (an empty folder
#   for the tests), KEY_ED25519, KEY_ECDSA, KEY_RSA, KEY_PASSPHRASE (an
#   ed25519 key protected with the passphrase in PASSPHRASE_FILE),
#   KNOWN_HOSTS (entries for all three host keys) and HOSTKEY_SHA256_ED25519.
#
# The server accepts public keys only and logs in as the user who runs
# this script, root included. Its log is DIR/sshd.log.

SSHD=/usr/sbin/sshd
HOST=127.0.0.1
PORT_ATTEMPTS=20
PASSPHRASE='test passphrase'

die() {
  printf 'sshd.sh: error: %s\n' "$*" >&2
  exit 1
}

show_log() {
  if [ -f "$dir/sshd.log" ]; then
    printf 'sshd.sh: last lines of %s:\n' "$dir/sshd.log" >&2
    tail -n 20 "$dir/sshd.log" >&2
  fi
}

# Print the PID recorded in DIR/sshd.pid if that process is still our
# sshd (its command line names our config), so a reused PID is never hit.
running_pid() {
  local pid
  [ -f "$dir/sshd.pid" ] || return 1
  pid=$(head -n 1 "$dir/sshd.pid")
  case "$pid" in '' | *[!0-9]*) return 1 ;; esac
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null |
    grep -qF -- "$dir/sshd_config" || return 1
  printf '%s\n' "$pid"
}

make_keys() {
  local type bits
  # SSHD_KEY_CACHE names a folder where the first start stores its keys
  # and later starts copy them from, which saves seconds of RSA key
  # generation for test suites that start many servers.
  if [ -n "${SSHD_KEY_CACHE:-}" ] && [ -f "$SSHD_KEY_CACHE/passphrase" ]; then
    cp -p "$SSHD_KEY_CACHE"/* "$dir/"
    return
  fi
  for type in ed25519 ecdsa rsa; do
    bits=()
    [ "$type" = rsa ] && bits=(-b 3072)
    ssh-keygen -q -t "$type" "${bits[@]}" -N '' -C "test host $type" \
      -f "$dir/ssh_host_${type}_key"
    ssh-keygen -q -t "$type" "${bits[@]}" -N '' -C "test user $type" \
      -f "$dir/id_$type"
  done
  ssh-keygen -q -t ed25519 -N "$PASSPHRASE" -C 'test user passphrase' \
    -f "$dir/id_passphrase"
  printf '%s' "$PASSPHRASE" >"$dir/passphrase"
  chmod 600 "$dir/passphrase"
  cat "$dir"/id_*.pub >"$dir/authorized_keys"
  if [ -n "${SSHD_KEY_CACHE:-}" ]; then
    mkdir -p "$SSHD_KEY_CACHE"
    cp -p "$dir"/ssh_host_* "$dir"/id_* "$dir/authorized_keys" \
      "$SSHD_KEY_CACHE/"
    cp -p "$dir/passphrase" "$SSHD_KEY_CACHE/"
  fi
}

write_config() {
  local port=$1
  cat >"$dir/sshd_config" <<EOF
Port $port
ListenAddress $HOST
HostKey $dir/ssh_host_ed25519_key
HostKey $dir/ssh_host_ecdsa_key
HostKey $dir/ssh_host_rsa_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
Subsystem sftp internal-sftp
LogLevel VERBOSE
EOF
  # OpenSSH 9.8 and later block a source address after repeated failed
  # logins, which the negative tests cause on purpose.
  if "$SSHD" -t -f "$dir/sshd_config" -o PerSourcePenalties=no \
       >/dev/null 2>&1; then
    printf 'PerSourcePenalties no\n' >>"$dir/sshd_config"
  fi
}

# Start sshd without a controlling terminal and wait until it listens.
# sshd -D stays in the foreground and writes its own PID to DIR/sshd.pid
# once it listens. Returns 2 when the port is taken, 1 on any other
# failure.
launch() {
  local port=$1 pid i
  : >"$dir/sshd.log"
  rm -f "$dir/sshd.pid"
  setsid "$SSHD" -D -f "$dir/sshd_config" -E "$dir/sshd.log" \
    </dev/null >>"$dir/sshd.log" 2>&1 &
  for i in $(seq 1 100); do
    if grep -q "Server listening on $HOST port $port" "$dir/sshd.log" &&
       pid=$(running_pid); then
      return 0
    fi
    if grep -q 'Address already in use' "$dir/sshd.log"; then
      return 2
    fi
    if grep -qE 'fatal|Cannot bind' "$dir/sshd.log"; then
      return 1
    fi
    sleep 0.1
  done
  return 1
}

# Check that the server on the port presents our ed25519 host key.
check_listening() {
  local port=$1 expected scanned
  expected=$(cut -d' ' -f2 "$dir/ssh_host_ed25519_key.pub")
  scanned=$(ssh-keyscan -T 5 -t ed25519 -p "$port" "$HOST" 2>/dev/null |
            cut -d' ' -f3)
  [ "$scanned" = "$expected" ]
}

write_known_hosts() {
  local port=$1 type
  : >"$dir/known_hosts"
  for type in ed25519 ecdsa rsa; do
    printf '[%s]:%s %s\n' "$HOST" "$port" \
      "$(cut -d' ' -f1,2 "$dir/ssh_host_${type}_key.pub")" \
      >>"$dir/known_hosts"
  done
}

# Print KEY='value', rejecting values that the quoting cannot carry.
env_line() {
  case "$2" in *"'"* | *$'\n'*) die "cannot write $1 to env: '$2'" ;; esac
  printf "%s='%s'\n" "$1" "$2"
}

write_env() {
  local port=$1 fingerprint
  fingerprint=$(ssh-keygen -l -f "$dir/ssh_host_ed25519_key.pub" |
                cut -d' ' -f2)
  {
    env_line SSHD_HOST "$HOST"
    env_line SSHD_PORT "$port"
    env_line SSHD_USER "$(id -un)"
    env_line SSHD_DIR "$dir"
    env_line SFTP_ROOT "$dir/root"
    env_line KEY_ED25519 "$dir/id_ed25519"
    env_line KEY_ECDSA "$dir/id_ecdsa"
    env_line KEY_RSA "$dir/id_rsa"
    env_line KEY_PASSPHRASE "$dir/id_passphrase"
    env_line PASSPHRASE_FILE "$dir/passphrase"
    env_line KNOWN_HOSTS "$dir/known_hosts"
    env_line HOSTKEY_SHA256_ED25519 "$fingerprint"
  } >"$dir/env"
}

prepare_privsep() {
  # sshd running as root needs its privilege separation folder.
  if [ "$(id -u)" -eq 0 ] && [ ! -d /run/sshd ]; then
    mkdir -p /run/sshd
    chmod 755 /run/sshd
  fi
}

start() {
  local attempt port status
  [ -x "$SSHD" ] || die "$SSHD not found; install openssh-server"
  if [ -d "$dir" ]; then
    # An interrupted test run can leave the server of this folder running.
    dir=$(cd "$dir" && pwd)
    if running_pid >/dev/null; then
      printf 'sshd.sh: stopping the sshd left running in %s\n' "$dir" >&2
      stop_server
    fi
  fi
  rm -rf "$dir"
  mkdir -p "$dir/root"
  dir=$(cd "$dir" && pwd)
  make_keys
  prepare_privsep

  for attempt in $(seq 1 "$PORT_ATTEMPTS"); do
    port=$((20000 + (RANDOM * 32768 + RANDOM) % 40001))
    write_config "$port"
    status=0
    launch "$port" || status=$?
    [ "$status" -eq 0 ] && break
    if [ "$status" -ne 2 ]; then
      show_log
      die "sshd did not start on port $port"
    fi
    printf 'sshd.sh: port %s is in use, trying another (attempt %s)\n' \
      "$port" "$attempt" >&2
  done
  [ "$status" -eq 0 ] ||
    die "no free port found in $PORT_ATTEMPTS attempts"

  if ! check_listening "$port"; then
    show_log
    stop_server
    die "sshd on port $port does not present the expected host key"
  fi
  write_known_hosts "$port"
  write_env "$port"
  printf 'sshd.sh: sshd %s listens on %s:%s, env in %s/env\n' \
    "$(cat "$dir/sshd.pid")" "$HOST" "$port" "$dir"
}

# Return whether the process exists and is not a zombie. A zombie waits
# for its new parent (PID 1) to reap it, and it no longer listens.
is_alive() {
  local state
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) ||
    return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

stop_server() {
  local pid i
  pid=$(running_pid) || return 0
  kill -TERM "$pid"
  for i in $(seq 1 100); do
    is_alive "$pid" || break
    sleep 0.1
  done
  if is_alive "$pid"; then
    printf 'sshd.sh: sshd %s ignored SIGTERM, sending SIGKILL\n' "$pid" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/sshd.pid"
}

restart() {
  local port status=0
  [ -f "$dir/sshd_config" ] || die "no sshd_config in $dir; run start first"
  dir=$(cd "$dir" && pwd)
  port=$(sed -n 's/^Port //p' "$dir/sshd_config")
  stop_server
  prepare_privsep
  launch "$port" || status=$?
  if [ "$status" -ne 0 ]; then
    show_log
    die "sshd did not start again on port $port"
  fi
  if ! check_listening "$port"; then
    show_log
    die "sshd on port $port does not present the expected host key"
  fi
}

sshd_fixture() (
  set -euo pipefail
  [ $# -eq 2 ] || die "usage: sshd.sh start|stop|restart DIR"
  dir=$2
  case "$1" in
    start) start ;;
    stop)
      [ -d "$dir" ] || exit 0
      dir=$(cd "$dir" && pwd)
      stop_server
      ;;
    restart) restart ;;
    *) die "unknown command '$1'; use start, stop or restart" ;;
  esac
)

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  sshd_fixture "$@"
fi
