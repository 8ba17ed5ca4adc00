#!/usr/bin/env bash
# Cross-build the Windows agent and its installer on Debian 12, from a
# clean checkout:
#
#   build-windows/rossum-sftp-agent.exe            one static executable
#   build-windows/rossum-sftp-agent-VERSION-x64.msi the installer
#
# It installs the Debian packages it needs (as root), builds the pinned
# libraries into .deps/windows (scripts/deps.sh --target windows, about
# five minutes on two idle cores the first time), configures with
# cmake/mingw-w64.cmake, builds, checks that the executable imports only
# system DLLs, and builds the MSI with wixl.
#
# Usage: packaging/windows/build.sh [--test] [extra cmake arguments]
#   --test  also run the Windows tests under wine (ctest in build-windows)
# Environment: BUILD_DIR (default: build-windows), SKIP_APT=1 to skip
# apt-get, JOBS (default: number of cores).
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
build_dir=${BUILD_DIR:-$top/build-windows}
jobs=${JOBS:-$(nproc)}
run_tests=0
if [ "${1:-}" = --test ]; then
  run_tests=1
  shift
fi

packages=(
  cmake pkg-config perl dpkg-dev make
  mingw-w64 binutils-mingw-w64-x86-64
  msitools wixl
)
if [ "$run_tests" = 1 ]; then
  packages+=(wine wine64 openssh-server openssh-client jq)
fi

log() { printf 'windows-build: %s\n' "$*" >&2; }
die() { printf 'windows-build: error: %s\n' "$*" >&2; exit 1; }

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" ||
    missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ] && [ "${SKIP_APT:-0}" != 1 ]; then
  [ "$(id -u)" = 0 ] ||
    die "missing packages: ${missing[*]}; install them as root and run again"
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

DEPS_JOBS=$jobs "$top/scripts/deps.sh" --target windows

log "configuring $build_dir"
cmake -S "$top" -B "$build_dir" \
  -DCMAKE_TOOLCHAIN_FILE="$top/cmake/mingw-w64.cmake" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF "$@" >/dev/null
cmake --build "$build_dir" -j "$jobs"

exe="$build_dir/rossum-sftp-agent.exe"
[ -f "$exe" ] || die "$exe was not built"
"$top/packaging/windows/check-imports.sh" "$exe"

msi=$(ls "$build_dir"/rossum-sftp-agent-*-x64.msi)
log "built $exe"
log "built $msi"

if [ "$run_tests" = 1 ]; then
  cd "$build_dir"
  ctest --output-on-failure -j 1
fi
