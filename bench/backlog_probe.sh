#!/usr/bin/env bash
# Time `sync` on a backlog of many small exports, against a private sshd
# on 127.0.0.1, and compare with the sftp client and rclone on the same files.
#
# Usage: bench/backlog_probe.sh [FILES] [ROUNDS] [VARIANT...]
#   FILES    number of exports in the inbox (default 2000)
#   ROUNDS   rounds; each round runs every variant once (default 3)
#   VARIANT  "name:key=value,key=value" with [remote] keys added to the
#            config, for example "p1:parallel=1" "p4:parallel=4"; a key
#            "server.NAME" goes into [server] as NAME, for example
#            "gcm:server.ciphers=aes128-gcm@openssh.com";
#            "sftp-get" runs `sftp -b` with `get *` into a local folder,
#            "sftp-move" runs `sftp -b` with get and rename per file,
#            "rclone-move" runs `rclone move` with 4 transfers (downloads,
#            then deletes each remote file), and a variant named "base"
#            runs the agent binary in $BENCH_BASE_AGENT.
# Environment:
#   BENCH_BUILD_DIR  CMake build folder with the agent (default build)
#   BENCH_WORK       scratch folder, emptied at the start
#                    (default /tmp/backlog-probe)
#   BENCH_FS         file system of the runs and the sshd (bench/fs.sh):
#                    root (default) uses BENCH_WORK where it is.
#                    ext4-journal makes a fresh ext4 file system with a
#                    journal in an image in BENCH_WORK, mounts it on
#                    BENCH_WORK/fs and removes it at the end. It needs
#                    root, e2fsprogs and mount.
#   BENCH_FS_SIZE    size of the sparse image of ext4-journal (default 4G)
#   BENCH_AGENT_WRAP command put before the agent, such as
#                    "perf record -g -o /tmp/agent.perf --" or
#                    "strace -f -c -o /tmp/agent.strace"
# Prints one line per run (variant, seconds, peak RSS in KiB, CPU seconds
# of the client and of the server's session processes) and the median of
# each variant. The inbox is refilled before each run by copying on the
# server's file system, which is not timed. Client CPU comes from GNU time;
# server CPU is the growth of the sshd listener's cutime and cstime
# (/proc/PID/stat), which gains the time of each session process when it
# ends.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/fs.sh
. "$top/bench/fs.sh"
files=${1:-2000}
rounds=${2:-3}
shift 2 || shift $#
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=("default:")
build_dir=${BENCH_BUILD_DIR:-$top/build}
bench_work=${BENCH_WORK:-/tmp/backlog-probe}
agent=$build_dir/rossum-sftp-agent
gen=$build_dir/tests/gen_export

bench_fs_check
bench_fs_check_unmounted "$bench_work"
rm -rf "$bench_work"
mkdir -p "$bench_work"

# The folder of the samples, runs and sshd: bench_work, or the file
# system that bench_fs_mount made. The results stay in bench_work.
work=''
# The EXIT trap, which also runs after a failure or an interrupt. A second
# Ctrl-C must not stop it halfway.
clean_up() {
  trap '' INT
  if [ -n "$work" ]; then
    bash "$top/tests/integration/sshd.sh" stop "$work/sshd"
    rm -rf "$work/runs"
  fi
  bench_fs_unmount
}
trap clean_up EXIT
# bash waits for a foreground command before it acts on a SIGINT sent to
# the script alone, and then goes on unless the command died of it too.
trap 'exit 130' INT
bench_fs_mount "$bench_work"
work=$bench_fs_dir
mkdir -p "$work/samples"
bash "$top/tests/integration/sshd.sh" start "$work/sshd" >/dev/null
# shellcheck disable=SC1091
. "$work/sshd/env"

# 16 distinct exports of 5 to 10 KB (8 KB on average), copied under
# distinct names.
for seed in $(seq 1 16); do
  "$gen" --annotations 1 --max-items 6 --seed "$seed" \
    "$work/samples/s$seed.xml" >/dev/null
done
remote=$SFTP_ROOT/probe
mkdir -p "$remote/seed"
for i in $(seq 1 "$files"); do
  cp "$work/samples/s$(( (i % 16) + 1 )).xml" \
    "$remote/seed/export_$(printf '%06d' "$i").xml"
done
touch -d '2 minutes ago' "$remote/seed"/*.xml 2>/dev/null ||
  find "$remote/seed" -name '*.xml' -exec touch -d '2 minutes ago' {} +

# Each run writes into a new local folder, and all of them are removed
# only at the end. ext4 without a journal skips inodes freed in the last
# minutes when it allocates new ones. Removing the outputs of one run just
# before the next would make file creation in the next run slower. A
# journaled ext4 (BENCH_FS=ext4-journal) does not skip them.
run_number=0
refill() {
  rm -rf "$remote/inbox" "$remote/archive" "$remote/error"
  cp -a "$remote/seed" "$remote/inbox"
  mkdir -p "$remote/archive" "$remote/error"
  run_number=$((run_number + 1))
  local_dir=$work/runs/$run_number
  mkdir -p "$local_dir"
  sync
}

write_config() { # extra "key=value,..."
  local extra=$1 kv
  IFS=, read -ra pairs <<<"$extra"
  {
    echo "[server]"
    echo "host = $SSHD_HOST"
    echo "port = $SSHD_PORT"
    echo "user = $SSHD_USER"
    echo "private_key = $KEY_ED25519"
    echo "known_hosts = $KNOWN_HOSTS"
    echo "timeout = 30"
    for kv in "${pairs[@]}"; do
      case "$kv" in
        server.*) kv=${kv#server.} && echo "${kv%%=*} = ${kv#*=}" ;;
      esac
    done
    echo "[remote]"
    echo "inbox = $remote/inbox"
    echo "archive = $remote/archive"
    echo "error = $remote/error"
    echo "stable_seconds = 0"
    for kv in "${pairs[@]}"; do
      case "$kv" in
        '' | server.*) ;;
        *) echo "${kv%%=*} = ${kv#*=}" ;;
      esac
    done
    echo "[local]"
    echo "state_dir = $local_dir/state"
    echo "output_dir = $local_dir/out"
    echo "[agent]"
    echo "log_target = file"
    echo "log_file = $local_dir/agent.log"
  } >"$work/agent.conf"
}

# Print the CPU seconds of the sshd listener's ended children.
server_cpu() {
  local ticks
  ticks=$(sed 's/.*) //' "/proc/$(cat "$work/sshd/sshd.pid")/stat" |
    awk '{ print $14 + $15 }')
  echo "scale=2; $ticks / $(getconf CLK_TCK)" | bc
}

run_variant() { # variant
  local name=${1%%:*} extra=${1#*:} start end rss server_before server_after
  refill
  server_before=$(server_cpu)
  start=$EPOCHREALTIME
  case "$name" in
    sftp-get)
      printf 'lcd %s\ncd %s\nget *\n' "$local_dir" "$remote/inbox" >"$work/batch"
      /usr/bin/time -f '%M %U %S' -o "$work/rss" sftp -q -b "$work/batch" \
        -i "$KEY_ED25519" -o UserKnownHostsFile="$KNOWN_HOSTS" \
        -P "$SSHD_PORT" "$SSHD_USER@$SSHD_HOST" >/dev/null
      ;;
    sftp-move)
      {
        printf 'lcd %s\ncd %s\n' "$local_dir" "$remote/inbox"
        for f in "$remote/inbox"/*.xml; do
          b=${f##*/}
          printf 'get %s\nrename %s %s/archive/%s\n' "$b" "$b" "$remote" "$b"
        done
      } >"$work/batch"
      start=$EPOCHREALTIME
      /usr/bin/time -f '%M %U %S' -o "$work/rss" sftp -q -b "$work/batch" \
        -i "$KEY_ED25519" -o UserKnownHostsFile="$KNOWN_HOSTS" \
        -P "$SSHD_PORT" "$SSHD_USER@$SSHD_HOST" >/dev/null
      ;;
    rclone-move)
      /usr/bin/time -f '%M %U %S' -o "$work/rss" rclone move \
        ":sftp,host=$SSHD_HOST,port=$SSHD_PORT,user=$SSHD_USER,key_file=$KEY_ED25519,known_hosts_file=$KNOWN_HOSTS:$remote/inbox" \
        "$local_dir" --sftp-disable-hashcheck --transfers 4 --config /dev/null \
        -q
      ;;
    *)
      write_config "$extra"
      local binary=$agent
      [ "$name" = base ] && binary=${BENCH_BASE_AGENT:?BENCH_BASE_AGENT is not set}
      # BENCH_AGENT_WRAP is split into words on purpose.
      # shellcheck disable=SC2086
      /usr/bin/time -f '%M %U %S' -o "$work/rss" ${BENCH_AGENT_WRAP:-} "$binary" sync -c "$work/agent.conf" \
        >/dev/null 2>"$work/stderr" || {
        echo "sync failed ($name):" >&2
        tail -n 5 "$work/stderr" "$local_dir/agent.log" >&2
        exit 1
      }
      local left outputs
      left=$(find "$remote/inbox" -type f | wc -l)
      outputs=$(find "$local_dir/out" -name '*.json' | wc -l)
      if [ "$left" -ne 0 ] || [ "$outputs" -ne "$files" ]; then
        echo "sync ($name) left $left files and wrote $outputs outputs" >&2
        exit 1
      fi
      ;;
  esac
  end=$EPOCHREALTIME
  sleep 0.5 # let the session processes end and be counted
  server_after=$(server_cpu)
  read -r rss user sys <<<"$(tail -n 1 "$work/rss")"
  printf '%s %.2f %s %.2f %.2f\n' "$name" "$(echo "$end - $start" | bc)" \
    "$rss" "$(echo "$user + $sys" | bc)" \
    "$(echo "$server_after - $server_before" | bc)" | tee -a "$bench_work/results"
}

: >"$bench_work/results"
echo "# $files files, $rounds rounds, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# file system (BENCH_FS=$bench_fs): $(bench_fs_describe "$work")"
echo "# variant seconds peak_rss_kib client_cpu_s server_cpu_s"
for _ in $(seq 1 "$rounds"); do
  for variant in "${variants[@]}"; do
    run_variant "$variant"
  done
done
echo "# medians: variant seconds peak_rss_kib client_cpu_s server_cpu_s"
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
for variant in "${variants[@]}"; do
  name=${variant%%:*}
  printf '%s' "$name"
  for column in 2 3 4 5; do
    printf ' %s' "$(awk -v n="$name" -v c="$column" '$1 == n { print $c }' \
      "$bench_work/results" | median)"
  done
  printf '\n'
done
