#!/usr/bin/env bash
# Time downloads from a private sshd on 127.0.0.1: the agent's
# remote_download() (bench/download_driver.c) against `sftp` getting the
# same files. Both write what they get into a local folder without fsync,
# and both times include the SSH connection. Nothing is parsed or moved.
#
# Usage: bench/download_probe.sh [SIZE] [ROUNDS] [VARIANT...]
#   SIZE     "80M" for one file of 80 MiB of random data (the default),
#            or "2000x8K" for 2000 files of 8 KiB each. The driver
#            downloads the files one after the other over one session, and
#            sftp gets them with `get *`.
#   ROUNDS   rounds; each round runs every variant once (default 5)
#   VARIANT  "agent" or "sftp", optionally with ":CIPHER", which sets
#            [server] ciphers for the agent and `sftp -c` for sftp
#            (default: agent sftp). "base" runs the driver in
#            $BENCH_BASE_DRIVER like "agent", to compare two builds.
# Environment:
#   BENCH_BUILD_DIR  CMake build folder with tests/download_driver
#                    (default build)
#   BENCH_BASE_DRIVER  download_driver of another build, for "base"
#   BENCH_WORK       scratch folder (default /tmp/download-probe)
# Prints one line per run (variant, seconds, MB/s, CPU seconds of the
# client and of the server's session processes) and the median of each
# variant with the range of its seconds. MB means 10^6 bytes. Server CPU
# is the growth of the sshd listener's cutime and cstime (/proc/PID/stat),
# as in backlog_probe.sh.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
size=${1:-80M}
rounds=${2:-5}
shift 2 || shift $#
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(agent sftp)
build_dir=${BENCH_BUILD_DIR:-$top/build}
work=${BENCH_WORK:-/tmp/download-probe}
driver=$build_dir/tests/download_driver

[ -x "$driver" ] || {
  echo "download_probe.sh: $driver not found; build the target download_driver" >&2
  exit 1
}
case "$size" in
  [1-9]*M) count=1 file_bytes=$((${size%M} * 1024 * 1024)) ;;
  [1-9]*x[1-9]*K)
    count=${size%%x*}
    file_kib=${size##*x}
    file_bytes=$((${file_kib%K} * 1024))
    ;;
  *)
    echo "download_probe.sh: invalid SIZE '$size', expected 80M or 2000x8K" >&2
    exit 2
    ;;
esac

rm -rf "$work"
mkdir -p "$work/local"
bash "$top/tests/integration/sshd.sh" start "$work/sshd" >/dev/null
trap 'bash "$top/tests/integration/sshd.sh" stop "$work/sshd"' EXIT
# shellcheck disable=SC1091
. "$work/sshd/env"

remote=$SFTP_ROOT/files
mkdir -p "$remote"
head -c "$file_bytes" /dev/urandom >"$work/one.bin"
for i in $(seq 1 "$count"); do
  cp "$work/one.bin" "$remote/file_$(printf '%06d' "$i").bin"
done
paths=("$remote"/*.bin)
bytes=$((count * file_bytes))

write_config() { # cipher or ""
  {
    echo "[server]"
    echo "host = $SSHD_HOST"
    echo "port = $SSHD_PORT"
    echo "user = $SSHD_USER"
    echo "private_key = $KEY_ED25519"
    echo "known_hosts = $KNOWN_HOSTS"
    [ -z "$1" ] || echo "ciphers = $1"
    echo "[remote]"
    echo "inbox = $remote"
    echo "archive = $SFTP_ROOT/archive"
    echo "error = $SFTP_ROOT/error"
    echo "[local]"
    echo "state_dir = $work/state"
    echo "output_dir = $work/out"
  } >"$work/agent.conf"
}

server_cpu() {
  local ticks
  ticks=$(sed 's/.*) //' "/proc/$(cat "$work/sshd/sshd.pid")/stat" |
    awk '{ print $14 + $15 }')
  echo "scale=2; $ticks / $(getconf CLK_TCK)" | bc
}

run_variant() { # variant
  local name=${1%%:*} cipher="" start end server_before server_after
  [[ "$1" != *:* ]] || cipher=${1#*:}
  rm -rf "$work/local"
  mkdir -p "$work/local"
  server_before=$(server_cpu)
  case "$name" in
    sftp)
      local options=(-q -b "$work/batch")
      [ -z "$cipher" ] || options+=(-c "$cipher")
      printf 'lcd %s\ncd %s\nget *\n' "$work/local" "$remote" >"$work/batch"
      start=$EPOCHREALTIME
      /usr/bin/time -f '%U %S' -o "$work/time" sftp "${options[@]}" \
        -i "$KEY_ED25519" -o UserKnownHostsFile="$KNOWN_HOSTS" \
        -P "$SSHD_PORT" "$SSHD_USER@$SSHD_HOST" >/dev/null
      ;;
    agent | base)
      local binary=$driver
      [ "$name" = agent ] ||
        binary=${BENCH_BASE_DRIVER:?BENCH_BASE_DRIVER is not set}
      write_config "$cipher"
      start=$EPOCHREALTIME
      /usr/bin/time -f '%U %S' -o "$work/time" "$binary" "$work/agent.conf" \
        -o "$work/local/all.bin" "${paths[@]}" >/dev/null
      ;;
    *)
      echo "download_probe.sh: unknown variant '$1'; use agent, base or sftp" >&2
      exit 2
      ;;
  esac
  end=$EPOCHREALTIME
  local got
  got=$(du -cb "$work/local" | tail -n 1 | cut -f1)
  [ "$got" -ge "$bytes" ] || {
    echo "download_probe.sh: $1 wrote $got bytes, expected $bytes" >&2
    exit 1
  }
  sleep 0.5 # let the session process end and be counted
  server_after=$(server_cpu)
  read -r user sys <"$work/time"
  local seconds
  seconds=$(echo "$end - $start" | bc)
  printf '%s %.3f %.1f %.2f %.2f\n' "$1" "$seconds" \
    "$(echo "$bytes / $seconds / 1000000" | bc -l)" \
    "$(echo "$user + $sys" | bc)" \
    "$(echo "$server_after - $server_before" | bc)" | tee -a "$work/results"
}

: >"$work/results"
echo "# $count files, $bytes bytes, $rounds rounds, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# variant seconds MB/s client_cpu_s server_cpu_s"
for _ in $(seq 1 "$rounds"); do
  for variant in "${variants[@]}"; do
    run_variant "$variant"
  done
done
echo "# load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# medians: variant seconds MB/s client_cpu_s server_cpu_s (seconds min-max)"
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
for variant in "${variants[@]}"; do
  printf '%s' "$variant"
  for column in 2 3 4 5; do
    printf ' %s' "$(awk -v n="$variant" -v c="$column" '$1 == n { print $c }' \
      "$work/results" | median)"
  done
  printf ' (%s)\n' "$(awk -v n="$variant" '$1 == n { print $2 }' \
    "$work/results" | sort -n | sed -n '1p;$p' | paste -sd-)"
done
