#!/usr/bin/env bash
# Compare the agent with the tools that users would script instead, on a
# private OpenSSH sshd on 127.0.0.1 (tests/integration/sshd.sh):
#
#   backlog  BENCH_FILES small XML exports (about 8 KB each): the agent's
#            `sync` (download, parse, JSON output, manifest, archive) against
#            `sftp -b` (get + rename per file), `rclone move` and
#            `lftp mirror --Remove-source-files`
#   large    one XML export of BENCH_LARGE_MB MiB: `sync` against `sftp get`
#   listing  a folder of BENCH_ENTRIES entries, 1 % of them exports:
#            `sync --dry-run` against `sftp ls -l`
#
# Every run gets a fresh copy of its input and its own empty local folder,
# the tool order is reversed in every second repetition, and a run counts
# only after its result has been checked (file counts). Prints the medians
# of wall time and peak RSS with agent/tool ratios as a Markdown table and
# the machine it ran on. Installs nothing: a missing tool is named with the
# package that provides it. See docs/benchmarks.md.
#
# Usage: bench/run.sh
# Environment:
#   BENCH_QUICK=1       smoke test: 500 files, 8 MiB, 5,000 entries, 1 round
#   BENCH_FILES         files in the backlog (default 10000)
#   BENCH_LARGE_MB      size of the large export in MiB (default 80)
#   BENCH_ENTRIES       entries in the listed folder (default 50000)
#   BENCH_REPEAT        repetitions of each run (default 3)
#   BENCH_TOOLS         tools to run (default "agent sftp rclone lftp")
#   BENCH_AGENT_CONFIG_EXTRA
#                       lines appended to the agent's config, section
#                       headers included, such as $'[agent]\nlog_level = warn';
#                       a key that the script sets already may not repeat
#   BENCH_BUILD_DIR     CMake build folder with the agent (default build)
#   BENCH_WORK_DIR      folder for data, runs, results and the sshd
#                       (default BENCH_BUILD_DIR/bench-run)
#   BENCH_TIMEOUT       seconds after which one run fails (default 3600)
#   BENCH_FS            file system of the data, runs and sshd (bench/fs.sh):
#                       root (default) uses BENCH_WORK_DIR where it is.
#                       ext4-journal makes a fresh ext4 file system with a
#                       journal in an image in BENCH_WORK_DIR, mounts it on
#                       BENCH_WORK_DIR/fs and removes it at the end. It
#                       needs root, e2fsprogs and mount, and generates the
#                       workloads again in every run.
#   BENCH_FS_SIZE       size of the sparse image of ext4-journal (default 4G)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/fs.sh
. "$top/bench/fs.sh"
quick=${BENCH_QUICK:-0}
if [ "$quick" = 1 ]; then
  files=${BENCH_FILES:-500}
  large_mb=${BENCH_LARGE_MB:-8}
  entries=${BENCH_ENTRIES:-5000}
  repeat=${BENCH_REPEAT:-1}
else
  files=${BENCH_FILES:-10000}
  large_mb=${BENCH_LARGE_MB:-80}
  entries=${BENCH_ENTRIES:-50000}
  repeat=${BENCH_REPEAT:-3}
fi
tools=${BENCH_TOOLS:-agent sftp rclone lftp}
agent_extra=${BENCH_AGENT_CONFIG_EXTRA:-}
build_dir=${BENCH_BUILD_DIR:-$top/build}
work=${BENCH_WORK_DIR:-$build_dir/bench-run}
run_timeout=${BENCH_TIMEOUT:-3600}
seed=20241104
# The folder for data, runs and the sshd: work, or the file system that
# bench_fs_mount made. Set in main.
fs_dir=''

die() {
  printf 'bench/run.sh: %s\n' "$*" >&2
  exit 1
}

note() {
  printf 'bench/run.sh: %s\n' "$*" >&2
}

# ---- Settings and tools ----

check_number() { # name value
  case "$2" in
    '' | *[!0-9]* | 0) die "invalid $1 '$2', expected a positive number" ;;
  esac
}

check_settings() {
  local tool
  check_number BENCH_FILES "$files"
  check_number BENCH_LARGE_MB "$large_mb"
  check_number BENCH_ENTRIES "$entries"
  check_number BENCH_REPEAT "$repeat"
  check_number BENCH_TIMEOUT "$run_timeout"
  for tool in $tools; do
    case "$tool" in
      agent | sftp | rclone | lftp) ;;
      *) die "unknown tool '$tool' in BENCH_TOOLS; use agent, sftp, rclone, lftp" ;;
    esac
  done
  # lftp and the sftp batch files take the paths unquoted.
  case "$work" in
    *[[:space:]\'\"\\]*) die "BENCH_WORK_DIR '$work' contains a space, quote or backslash" ;;
  esac
}

uses() { # tool
  [[ " $tools " == *" $1 "* ]]
}

# Name every missing program with its Debian package, then stop.
check_programs() {
  local missing=() packages=() entry program package
  local needed=(/usr/sbin/sshd:openssh-server ssh-keygen:openssh-client
    ssh-keyscan:openssh-client sftp:openssh-client /usr/bin/time:time
    timeout:coreutils cmake:cmake)
  uses rclone && needed+=(rclone:rclone)
  uses lftp && needed+=(lftp:lftp)
  for entry in "${needed[@]}"; do
    program=${entry%%:*}
    package=${entry#*:}
    if ! command -v "$program" >/dev/null; then
      missing+=("$program")
      [[ " ${packages[*]} " == *" $package "* ]] || packages+=("$package")
    fi
  done
  if [ ${#missing[@]} -gt 0 ]; then
    note "missing: ${missing[*]}"
    note "install them with: apt-get install ${packages[*]}"
    note "or leave tools out with BENCH_TOOLS (now '$tools')"
    exit 1
  fi
}

# Build the agent and the export generator; configure the build folder
# first when it has no cache yet.
build_agent() {
  if [ ! -f "$build_dir/CMakeCache.txt" ]; then
    note "configuring $build_dir (RelWithDebInfo)"
    cmake -S "$top" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  fi
  cmake --build "$build_dir" -j "$(nproc)" --target rossum-sftp-agent gen_export \
    >/dev/null
  agent=$build_dir/rossum-sftp-agent
  gen=$build_dir/tests/gen_export
  build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build_dir/CMakeCache.txt")
  case "$build_type" in
    Release | RelWithDebInfo) ;;
    *) note "warning: $build_dir is a '${build_type:-default}' build; use RelWithDebInfo for numbers" ;;
  esac
}

# ---- Workloads ----

# Each workload is generated once per size and kept in $fs_dir/data. A
# folder counts only with its .complete marker, so an interrupted
# generation starts over.
make_backlog() {
  local dir=$fs_dir/data/backlog-$files i
  backlog=$dir
  [ -f "$dir/.complete" ] && return
  note "generating $files exports of about 8 KB in $dir"
  rm -rf "$dir"
  mkdir -p "$dir"
  # One annotation with 0 to 8 line items averages 7.8 KB.
  for ((i = 1; i <= files; i++)); do
    "$gen" --seed "$i" --annotations 1 --max-items 8 \
      --totals /dev/null "$(printf '%s/export-%06d.xml' "$dir" "$i")"
  done
  touch "$dir/.complete"
}

make_large() {
  local dir=$fs_dir/data/large-$large_mb
  large=$dir
  [ -f "$dir/.complete" ] && return
  note "generating one XML export of $large_mb MiB in $dir"
  rm -rf "$dir"
  mkdir -p "$dir"
  "$gen" --seed "$seed" --size-mb "$large_mb" --totals "$dir/totals" \
    "$dir/export-large.xml"
  touch "$dir/.complete"
}

# The listed folder is read by both tools and changed by neither, so it is
# made once on the server. Most entries are empty original documents that
# the include pattern (*.xml) does not select.
make_listing() {
  local dir=$sftp_root/listing
  listing_exports=$((entries / 100))
  [ "$listing_exports" -gt 0 ] || listing_exports=1
  note "creating $entries entries, $listing_exports of them exports, in $dir/inbox"
  mkdir -p "$dir/inbox" "$dir/archive" "$dir/error"
  (cd "$dir/inbox" &&
    seq -f 'invoice_file-%07.0f.pdf' 1 $((entries - listing_exports)) |
    xargs touch)
  local i
  for ((i = 1; i <= listing_exports; i++)); do
    printf '<export><results/></export>\n' \
      >"$(printf '%s/inbox/export-%07d.xml' "$dir" "$i")"
  done
}

# ---- Running one tool ----

# Start a run: fresh remote folders with a copy of the workload, and an
# empty local folder. Sets run_local and run_remote. Everything written so
# far goes to disk first: the tools that do not sync leave their outputs
# dirty in the page cache, and their write-back during the next run would
# slow down a tool that syncs, such as the agent.
prepare_run() { # name source_dir
  run_local=$fs_dir/runs/$1
  run_remote=$sftp_root/runs/$1
  rm -rf "$run_local" "$run_remote"
  mkdir -p "$run_local/out" "$run_remote/inbox" "$run_remote/archive" \
    "$run_remote/error"
  find "$2" -maxdepth 1 -name '*.xml' -exec cp -t "$run_remote/inbox" {} +
  sync
}

# Run a command with GNU time under a timeout, with its output in
# $run_local/stdout and stderr. Stores the wall time in seconds (%e) in
# run_seconds and the peak RSS in KiB (%M) in run_kib. %M is the peak of
# the largest single process in the tree, such as sftp or its ssh. Returns
# the command's status.
timed() {
  local status=0
  /usr/bin/time -f '%e %M' -o "$run_local/time" \
    timeout "$run_timeout" "$@" </dev/null >"$run_local/stdout" \
    2>"$run_local/stderr" || status=$?
  read -r run_seconds run_kib < <(tail -n 1 "$run_local/time")
  return "$status"
}

# Stop the benchmark because a tool failed or did not do the work.
run_failed() { # what
  local kept=$run_local
  note "$1"
  if [ "$fs_dir" != "$work" ]; then
    # The file system of BENCH_FS=ext4-journal goes away at exit.
    kept=$work/failed-run
    rm -rf "$kept"
    mkdir -p "$kept"
    find "$run_local" -maxdepth 1 -type f -exec cp -t "$kept" {} +
  fi
  note "stdout and stderr of the run are in $kept; last lines:"
  tail -n 5 "$run_local/stdout" "$run_local/stderr" >&2 || true
  exit 1
}

count_entries() { # dir [find tests...]
  local dir=$1
  shift
  find "$dir" -mindepth 1 -maxdepth 1 "$@" | wc -l
}

expect_count() { # what expected actual
  [ "$2" -eq "$3" ] || run_failed "$1: expected $2, found $3"
}

write_agent_config() { # include
  cat >"$run_local/agent.conf" <<EOF
[server]
host = $SSHD_HOST
port = $SSHD_PORT
user = $SSHD_USER
private_key = $KEY_ED25519
known_hosts = $KNOWN_HOSTS
timeout = 60
[remote]
inbox = $run_remote/inbox
archive = $run_remote/archive
error = $run_remote/error
include = $1
stable_seconds = 0
[local]
state_dir = $run_local/state
output_dir = $run_local/out
EOF
  if [ -n "$agent_extra" ]; then
    printf '%s\n' "$agent_extra" >>"$run_local/agent.conf"
  fi
}

# OpenSSH options of sftp and of lftp's ssh: the fixture's key and
# known_hosts only, no user config, no prompts. Set once the sshd runs.
ssh_options=()

# The sftp batch files are written before the timed run from the names
# that are known, so sftp lists nothing.
write_get_rename_batch() { # source_dir
  local path name
  for path in "$1"/*.xml; do
    name=${path##*/}
    printf 'get %s/inbox/%s %s/out/%s\nrename %s/inbox/%s %s/archive/%s\n' \
      "$run_remote" "$name" "$run_local" "$name" \
      "$run_remote" "$name" "$run_remote" "$name"
  done >"$run_local/batch"
}

run_agent_sync() { # expected_files
  write_agent_config '*.xml'
  timed "$agent" sync -c "$run_local/agent.conf" ||
    run_failed "agent sync exited with status $?"
  expect_count "agent outputs" "$1" \
    "$(count_entries "$run_local/out" -type f -name '*.json' ! -name '.*')"
  expect_count "files in the remote archive" "$1" \
    "$(count_entries "$run_remote/archive")"
  expect_count "files left in the remote inbox" 0 \
    "$(count_entries "$run_remote/inbox")"
}

# Check the agent's log line for the large export against the number of
# annotations that gen_export wrote.
check_large_output() {
  local annotations
  annotations=$(sed -n 's/^annotations=//p' "$large/totals")
  grep -q "delivered 'export-large.xml' (xml, $annotations annotations," \
    "$run_local/stderr" ||
    run_failed "the agent's log does not show $annotations annotations delivered"
}

run_sftp_get_rename() { # source_dir expected_files
  write_get_rename_batch "$1"
  timed sftp -b "$run_local/batch" -P "$SSHD_PORT" "${ssh_options[@]}" \
    "$SSHD_USER@$SSHD_HOST" || run_failed "sftp exited with status $?"
  expect_count "files downloaded by sftp" "$2" \
    "$(count_entries "$run_local/out" -type f)"
  expect_count "files in the remote archive" "$2" \
    "$(count_entries "$run_remote/archive")"
}

run_sftp_get() { # source_dir expected_files
  local path
  for path in "$1"/*.xml; do
    printf 'get %s/inbox/%s %s/out/\n' "$run_remote" "${path##*/}" "$run_local"
  done >"$run_local/batch"
  timed sftp -b "$run_local/batch" -P "$SSHD_PORT" "${ssh_options[@]}" \
    "$SSHD_USER@$SSHD_HOST" || run_failed "sftp exited with status $?"
  expect_count "files downloaded by sftp" "$2" \
    "$(count_entries "$run_local/out" -type f)"
  for path in "$1"/*.xml; do
    cmp -s "$path" "$run_local/out/${path##*/}" ||
      run_failed "sftp's copy of ${path##*/} differs from the original"
  done
}

run_rclone_move() { # expected_files
  timed env RCLONE_CONFIG="$work/home/rclone.conf" \
    RCLONE_CONFIG_BENCH_TYPE=sftp RCLONE_CONFIG_BENCH_HOST="$SSHD_HOST" \
    RCLONE_CONFIG_BENCH_PORT="$SSHD_PORT" RCLONE_CONFIG_BENCH_USER="$SSHD_USER" \
    RCLONE_CONFIG_BENCH_KEY_FILE="$KEY_ED25519" \
    RCLONE_CONFIG_BENCH_KNOWN_HOSTS_FILE="$KNOWN_HOSTS" \
    RCLONE_CONFIG_BENCH_SHELL_TYPE=none \
    rclone move --sftp-disable-hashcheck "bench:$run_remote/inbox" \
    "$run_local/out" || run_failed "rclone exited with status $?"
  expect_count "files downloaded by rclone" "$1" \
    "$(count_entries "$run_local/out" -type f)"
  expect_count "files left in the remote inbox" 0 \
    "$(count_entries "$run_remote/inbox")"
}

run_lftp_mirror() { # expected_files
  local connect="ssh -a -x ${ssh_options[*]}"
  timed lftp -c "set cmd:fail-exit yes; set sftp:connect-program \"$connect\";
    open -u $SSHD_USER, -p $SSHD_PORT sftp://$SSHD_HOST;
    mirror --Remove-source-files $run_remote/inbox $run_local/out" ||
    run_failed "lftp exited with status $?"
  expect_count "files downloaded by lftp" "$1" \
    "$(count_entries "$run_local/out" -type f)"
  expect_count "files left in the remote inbox" 0 \
    "$(count_entries "$run_remote/inbox")"
}

run_agent_plan() {
  local remote=$sftp_root/listing
  run_local=$fs_dir/runs/listing-agent
  rm -rf "$run_local"
  mkdir -p "$run_local/out"
  run_remote=$remote
  write_agent_config '*.xml'
  timed "$agent" sync --dry-run -c "$run_local/agent.conf" ||
    run_failed "agent sync --dry-run exited with status $?"
  expect_count "files the agent would take" "$listing_exports" \
    "$(grep -c '^take ' "$run_local/stdout" || true)"
  expect_count "files the agent would skip" $((entries - listing_exports)) \
    "$(grep -c '^skip ' "$run_local/stdout" || true)"
}

run_sftp_ls() {
  run_local=$fs_dir/runs/listing-sftp
  rm -rf "$run_local"
  mkdir -p "$run_local"
  printf 'ls -l %s/listing/inbox\n' "$sftp_root" >"$run_local/batch"
  timed sftp -b "$run_local/batch" -P "$SSHD_PORT" "${ssh_options[@]}" \
    "$SSHD_USER@$SSHD_HOST" || run_failed "sftp exited with status $?"
  expect_count "entries listed by sftp" "$entries" \
    "$(grep -vc '^sftp>' "$run_local/stdout" || true)"
}

# Run one tool on one workload and record its time and peak RSS.
run_case() { # workload tool
  local workload=$1 tool=$2
  case "$workload:$tool" in
    backlog:agent)
      prepare_run backlog-agent "$backlog"
      run_agent_sync "$files"
      ;;
    backlog:sftp)
      prepare_run backlog-sftp "$backlog"
      run_sftp_get_rename "$backlog" "$files"
      ;;
    backlog:rclone)
      prepare_run backlog-rclone "$backlog"
      run_rclone_move "$files"
      ;;
    backlog:lftp)
      prepare_run backlog-lftp "$backlog"
      run_lftp_mirror "$files"
      ;;
    large:agent)
      prepare_run large-agent "$large"
      run_agent_sync 1
      check_large_output
      ;;
    large:sftp)
      prepare_run large-sftp "$large"
      run_sftp_get "$large" 1
      ;;
    listing:agent) run_agent_plan ;;
    listing:sftp) run_sftp_ls ;;
  esac
  printf '%s %s\n' "$run_seconds" "$run_kib" >>"$work/results/$workload.$tool"
  note "$workload, $tool: $run_seconds s, $((run_kib / 1024)) MiB"
  rm -rf "$fs_dir/runs"
}

# Print the tools that run on a workload in the given round, one a line.
# Every second round reverses the order, so that no tool always runs
# first.
tools_for() { # workload round
  local list=() tool ordered=() i
  for tool in $tools; do
    case "$1:$tool" in
      backlog:*) list+=("$tool") ;;
      large:agent | large:sftp | listing:agent | listing:sftp) list+=("$tool") ;;
    esac
  done
  if (($2 % 2 == 0)); then
    for ((i = ${#list[@]} - 1; i >= 0; i--)); do ordered+=("${list[i]}"); done
  else
    ordered=("${list[@]}")
  fi
  printf '%s\n' "${ordered[@]}"
}

# ---- Report ----

median() { # file column
  sort -n -k "$2,$2" "$1" | awk -v c="$2" '{ v[NR] = $c }
    END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

describe_machine() {
  local cpu libssh2
  cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
  libssh2=$(sed -n 's/^LIBSSH2_VERSION:INTERNAL=//p' "$build_dir/CMakeCache.txt")
  echo "Machine: ${cpu:-unknown CPU}, $(nproc) cores, $(uname -sr)"
  echo "File system (BENCH_FS=$bench_fs): $(bench_fs_describe "$fs_dir")"
  echo "OpenSSH: $(ssh -V 2>&1)"
  echo "Agent: $("$agent" --version), libssh2 ${libssh2:-unknown}, ${build_type:-default} build"
  uses rclone && echo "rclone: $(rclone version 2>/dev/null | head -n 1)"
  uses lftp && echo "lftp: $(lftp --version | head -n 1 | sed 's/ | Copyright.*//')"
  echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'), load average $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
  echo "Repetitions: $repeat, medians; agent config extra: ${agent_extra:-none}"
}

workload_title() { # workload
  case "$1" in
    backlog)
      local bytes
      bytes=$(find "$backlog" -maxdepth 1 -name '*.xml' -printf '%s\n' |
        awk '{ sum += $1 } END { print sum }')
      echo "backlog of $files XML exports of $((bytes / files)) bytes on average"
      ;;
    large) echo "one XML export of $(stat -c %s "$large/export-large.xml") bytes" ;;
    listing) echo "listing of $entries entries, $listing_exports of them exports" ;;
  esac
}

# The backquotes are Markdown, not commands.
# shellcheck disable=SC2016
tool_title() { # workload tool
  case "$1:$2" in
    backlog:agent | large:agent) echo 'agent `sync`' ;;
    listing:agent) echo 'agent `sync --dry-run`' ;;
    backlog:sftp) echo '`sftp -b`, get + rename' ;;
    large:sftp) echo '`sftp -b`, get' ;;
    listing:sftp) echo '`sftp -b`, ls -l' ;;
    backlog:rclone) echo '`rclone move`' ;;
    backlog:lftp) echo '`lftp mirror --Remove-source-files`' ;;
  esac
}

# Print one table row per tool of the workload, with the agent's ratio.
report_workload() { # workload
  local workload=$1 tool file seconds kib agent_seconds agent_kib ratio
  local agent_file=$work/results/$workload.agent
  [ -n "$(ls "$work/results/$workload".* 2>/dev/null)" ] || return 0
  if [ -f "$agent_file" ]; then
    agent_seconds=$(median "$agent_file" 1)
    agent_kib=$(median "$agent_file" 2)
  fi
  for tool in $tools; do
    file=$work/results/$workload.$tool
    [ -f "$file" ] || continue
    seconds=$(median "$file" 1)
    kib=$(median "$file" 2)
    ratio='-'
    if [ "$tool" != agent ] && [ -f "$agent_file" ]; then
      ratio=$(awk -v a="$agent_seconds" -v t="$seconds" -v ak="$agent_kib" \
        -v tk="$kib" 'BEGIN { printf "%.2f / %.2f", a / t, ak / tk }')
    fi
    printf '| %s | %s | %.2f | %s | %s | %.1f | %s |\n' \
      "$(workload_title "$workload")" "$(tool_title "$workload" "$tool")" \
      "$seconds" "$(sort -n "$file" | awk 'NR == 1 { min = $1 } { max = $1 }
        END { printf "%.2f-%.2f", min, max }')" \
      "$(rate "$workload" "$seconds")" \
      "$(awk -v k="$kib" 'BEGIN { print k / 1024 }')" "$ratio"
  done
}

rate() { # workload seconds
  case "$1" in
    backlog) awk -v n="$files" -v s="$2" 'BEGIN { printf "%.0f files/s", n / s }' ;;
    large) awk -v b="$(stat -c %s "$large/export-large.xml")" -v s="$2" \
      'BEGIN { printf "%.1f MB/s", b / 1e6 / s }' ;;
    listing) awk -v n="$entries" -v s="$2" 'BEGIN { printf "%.0f entries/s", n / s }' ;;
  esac
}

report() {
  echo
  describe_machine
  echo
  echo '| workload | tool | seconds | range | rate | peak RSS (MiB) | agent/tool: time / RSS |'
  echo '| --- | --- | --- | --- | --- | --- | --- |'
  report_workload backlog
  report_workload large
  report_workload listing
  echo
  echo "Each run's seconds and peak KiB are in $work/results."
}

# ---- Main ----

stop_sshd() {
  [ -n "$fs_dir" ] || return 0
  bash "$top/tests/integration/sshd.sh" stop "$fs_dir/sshd" >/dev/null || true
}

# The EXIT trap, which also runs after a failure or an interrupt. A second
# Ctrl-C must not stop it halfway.
clean_up() {
  trap '' INT
  stop_sshd
  bench_fs_unmount
}

main() {
  check_settings
  check_programs
  bench_fs_check
  build_agent
  load_start=$(cut -d' ' -f1-3 /proc/loadavg)

  mkdir -p "$work"
  rm -rf "${work:?}/results" "${work:?}/runs" "${work:?}/home" \
    "${work:?}/failed-run"
  mkdir -p "$work/results" "$work/home"
  : >"$work/home/rclone.conf"
  # rclone and lftp keep settings and caches below HOME.
  export HOME=$work/home XDG_CONFIG_HOME=$work/home/config \
    XDG_CACHE_HOME=$work/home/cache

  trap clean_up EXIT
  # bash waits for a foreground command before it acts on a SIGINT sent to
  # the script alone, and then goes on unless the command died of it too.
  trap 'exit 130' INT
  bench_fs_mount "$work"
  fs_dir=$bench_fs_dir
  bash "$top/tests/integration/sshd.sh" start "$fs_dir/sshd" >/dev/null
  # shellcheck disable=SC1091
  . "$fs_dir/sshd/env"
  # shellcheck disable=SC2153
  sftp_root=$SFTP_ROOT
  ssh_options=(-F /dev/null -i "$KEY_ED25519" -o IdentitiesOnly=yes
    -o "UserKnownHostsFile=$KNOWN_HOSTS" -o StrictHostKeyChecking=yes
    -o BatchMode=yes)

  make_backlog
  make_large
  make_listing

  local round workload tool
  for ((round = 1; round <= repeat; round++)); do
    note "round $round of $repeat"
    for workload in backlog large listing; do
      for tool in $(tools_for "$workload" "$round"); do
        run_case "$workload" "$tool"
      done
    done
  done
  report
}

main "$@"
