#!/usr/bin/env bash
# Install the Debian packages the agent needs, build pinned libraries that
# the system lacks, then configure and build into build/.
#
# Usage: scripts/bootstrap.sh [extra cmake arguments]
# Environment: BUILD_DIR (default: build), SKIP_APT=1 to skip apt-get.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${BUILD_DIR:-$top/build}

packages=(
  build-essential cmake pkg-config dpkg-dev
  libssl-dev libxml2-dev liblmdb-dev libjansson-dev libcsv-dev libinih-dev
  libcmocka-dev
  libsystemd-dev
  openssh-server openssh-client jq time scdoc
  lmdb-utils python3
)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" ||
    missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ] && [ "${SKIP_APT:-0}" != 1 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "bootstrap: missing packages: ${missing[*]}" >&2
    echo "bootstrap: install them as root (apt-get install ${missing[*]}) and run again" >&2
    exit 1
  fi
  echo "bootstrap: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

"$top/scripts/deps.sh"
# The fault points are off unless the arguments turn them on, as
# scripts/test.sh does, so a build folder that the tests used becomes a
# release build again.
cmake -S "$top" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DAGENT_FAULT_INJECTION=OFF "$@" >/dev/null
cmake --build "$build_dir" -j "$(nproc)"
