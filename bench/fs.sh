# shellcheck shell=bash
# The file system that bench/run.sh and bench/backlog_probe.sh run on.
# Source it, then:
#
#   bench_fs_check            validate BENCH_FS and BENCH_FS_SIZE, check for
#                             root and the programs, before any other work
#   bench_fs_mount WORK       set bench_fs_dir to the folder for data, runs
#                             and the sshd: WORK itself, or a fresh file
#                             system mounted on WORK/fs
#   bench_fs_unmount          undo bench_fs_mount; call it from the EXIT trap
#   bench_fs_describe DIR     print the type, journal and mount options of
#                             the file system that contains DIR
#
# BENCH_FS=root (default) runs in WORK on whatever file system it is on.
# BENCH_FS=ext4-journal makes the sparse image WORK/ext4-journal.img of
# BENCH_FS_SIZE (default 4G, as truncate(1) reads it), formats it as ext4
# with a journal and mounts it with `mount -o loop` on WORK/fs. That needs
# root. ext4 without a journal skips inodes freed in the last minutes when
# it allocates new ones (recently_deleted() in fs/ext4/ialloc.c), so every
# run that removes many files slows the runs after it down. With a journal,
# an fsync waits for a journal commit. See docs/benchmarks.md.
#
# The functions touch no mount and no loop device other than the image's:
# bench_fs_unmount unmounts WORK/fs only when the loop device of the image
# is mounted there, and removes the image only once `losetup -j` lists no
# loop device for it. They set no shell options, and they exit through
# bench_fs_fail, so the caller's EXIT trap runs.

bench_fs=${BENCH_FS:-root}
bench_fs_size=${BENCH_FS_SIZE:-4G}
# The folder for data, runs and the sshd, read by the caller.
# shellcheck disable=SC2034
bench_fs_dir=''
# Set by bench_fs_mount before it formats the image, cleared once the
# image is gone.
bench_fs_image=''
bench_fs_mount_point=''
bench_fs_missing=''
bench_fs_packages=''

bench_fs_fail() {
  printf '%s: %s\n' "$0" "$*" >&2
  exit 1
}

bench_fs_note() {
  printf '%s: %s\n' "$0" "$*" >&2
}

bench_fs_require() { # program package
  command -v "$1" >/dev/null && return
  bench_fs_missing+=" $1"
  [[ " $bench_fs_packages " == *" $2 "* ]] || bench_fs_packages+=" $2"
}

bench_fs_check() {
  case "$bench_fs" in
    root) return 0 ;;
    ext4-journal) ;;
    *) bench_fs_fail "invalid BENCH_FS '$bench_fs', expected root or ext4-journal" ;;
  esac
  [[ "$bench_fs_size" =~ ^[1-9][0-9]*[KMGT]?$ ]] ||
    bench_fs_fail "invalid BENCH_FS_SIZE '$bench_fs_size', expected a size such as 4G or 512M"
  [ "$(id -u)" -eq 0 ] ||
    bench_fs_fail "BENCH_FS=ext4-journal needs root to loop-mount a file system image; run as root or with BENCH_FS=root"

  bench_fs_require mkfs.ext4 e2fsprogs
  bench_fs_require dumpe2fs e2fsprogs
  bench_fs_require mount mount
  bench_fs_require umount mount
  bench_fs_require losetup mount
  bench_fs_require findmnt util-linux
  bench_fs_require mountpoint util-linux
  bench_fs_require truncate coreutils
  [ -z "$bench_fs_missing" ] ||
    bench_fs_fail "BENCH_FS=ext4-journal needs${bench_fs_missing}; install them with: apt-get install${bench_fs_packages}"
}

# Stop when DIR or a folder below it is a mount point, such as the mount
# of a run that was killed, so that no later rm -rf or mount reaches into
# a mounted file system.
bench_fs_check_unmounted() { # dir
  local dir target
  dir=$(realpath -m "$1")
  while read -r target; do
    case "$target" in
      "$dir" | "$dir"/*)
        bench_fs_fail "a file system is mounted on $target, probably left by a run that was killed; unmount it (umount $target), then run again"
        ;;
    esac
  done < <(findmnt -rn -o TARGET)
}

bench_fs_mount() { # work_dir
  if [ "$bench_fs" = root ]; then
    bench_fs_dir=$1
    return 0
  fi
  local work image mount_point
  # Absolute, as findmnt prints mount points.
  work=$(realpath -m "$1")
  image=$work/ext4-journal.img
  mount_point=$work/fs

  bench_fs_check_unmounted "$mount_point"
  if [ -e "$image" ] && [ -n "$(losetup -j "$image")" ]; then
    bench_fs_fail "$image is still attached ($(losetup -j "$image")), probably by a run that was killed; unmount and detach it, then run again"
  fi
  rm -f "$image"
  mkdir -p "$mount_point"

  bench_fs_image=$image
  bench_fs_mount_point=$mount_point
  truncate -s "$bench_fs_size" "$image"
  # Zeroed inode tables and journal, so that the kernel's ext4lazyinit
  # thread writes nothing in the background during the runs. In a sparse
  # image mkfs.ext4 punches holes, which read as zeros, in place of writing
  # the inode tables.
  mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$image"
  mount -o loop "$image" "$mount_point"
  # shellcheck disable=SC2034
  bench_fs_dir=$mount_point
  bench_fs_note "running on a fresh ext4 file system with a journal: $image ($bench_fs_size) on $mount_point"
}

# Return whether the mount on the mount point is the image's loop device.
bench_fs_is_ours() {
  local source
  source=$(findmnt -n -o SOURCE --mountpoint "$bench_fs_mount_point") || return 1
  [ -n "$source" ] && losetup -j "$bench_fs_image" | grep -q "^$source:"
}

# Unmount the image and remove it. Never fails, so that the rest of an
# EXIT trap runs. Processes that still use the file system (such as a
# tool that was being timed when the script was stopped) keep it busy for
# a moment, so umount is tried for up to 10 seconds.
bench_fs_unmount() {
  [ -n "$bench_fs_image" ] || return 0
  local tries

  if bench_fs_is_ours; then
    for ((tries = 1; tries <= 20; tries++)); do
      umount "$bench_fs_mount_point" 2>/dev/null && break
      sleep 0.5
    done
  fi
  # umount detaches the loop device that mount -o loop made (autoclear),
  # which may take a moment after umount returns.
  for ((tries = 1; tries <= 20; tries++)); do
    [ -n "$(losetup -j "$bench_fs_image")" ] || break
    mountpoint -q "$bench_fs_mount_point" && break
    sleep 0.25
  done

  if [ -n "$(losetup -j "$bench_fs_image")" ] ||
    mountpoint -q "$bench_fs_mount_point"; then
    bench_fs_note "could not unmount $bench_fs_mount_point or detach the loop device of $bench_fs_image: $(losetup -j "$bench_fs_image")"
    bench_fs_note "once no process uses it: umount $bench_fs_mount_point && rm $bench_fs_image"
    return 0
  fi
  rm -f "$bench_fs_image"
  rmdir "$bench_fs_mount_point" 2>/dev/null || true
  bench_fs_image=''
}

# Print whether the file system has a journal. dumpe2fs reads the device,
# which can fail even for root ("Operation not permitted"). Then the
# result comes from /proc/fs/jbd2, where the kernel's jbd2 lists every
# journal in use as DEVICE-INODE, such as loop0-8.
bench_fs_journal() { # fstype source
  local features device
  case "$1" in
    ext2 | ext3 | ext4) ;;
    xfs) echo "yes (XFS always has a log)" && return ;;
    tmpfs) echo "no (tmpfs)" && return ;;
    *) echo unknown && return ;;
  esac

  features=$(dumpe2fs -h "$2" 2>/dev/null | sed -n 's/^Filesystem features://p')
  if [ -n "$features" ]; then
    if [[ " $features " == *" has_journal "* ]]; then
      echo "yes (dumpe2fs)"
    else
      echo "no (dumpe2fs)"
    fi
    return
  fi

  device=$(readlink -f "$2")
  device=${device##*/}
  if [ -z "$device" ] || [ ! -d /proc/fs/jbd2 ]; then
    echo unknown
  elif compgen -G "/proc/fs/jbd2/$device-*" >/dev/null; then
    echo "yes (/proc/fs/jbd2/$device-*)"
  else
    echo "no (no /proc/fs/jbd2 entry for $device)"
  fi
}

bench_fs_describe() { # dir
  local target source fstype options line
  line=$(findmnt -rn -o TARGET,SOURCE,FSTYPE,OPTIONS -T "$1" 2>/dev/null) || {
    echo "unknown (findmnt failed on $1)"
    return
  }
  read -r target source fstype options <<<"$line"
  printf '%s on %s at %s, journal: %s, options %s' "$fstype" "$source" \
    "$target" "$(bench_fs_journal "$fstype" "$source")" "$options"
  if [ -n "$bench_fs_image" ] && [ "$target" = "$bench_fs_mount_point" ]; then
    line=$(findmnt -rn -o SOURCE,FSTYPE -T "$bench_fs_image")
    printf '; a fresh %s image file on %s %s' "$bench_fs_size" "${line#* }" \
      "${line%% *}"
  fi
  printf '\n'
}
