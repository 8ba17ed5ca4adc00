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
cmake -S "$top" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$build_dir" -j "$(nproc)"
