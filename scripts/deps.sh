#!/usr/bin/env bash
# Build pinned third-party libraries from Debian source packages into a
# private prefix, for platforms whose system packages are too old.
#
# Usage: scripts/deps.sh [--prefix DIR] [--force]
#
# Today this builds libssh2 for the native (Linux) build when the system
# libssh2 is older than 1.11. Debian 12 ships 1.10, which cannot sign with
# rsa-sha2-256/512 (so RSA keys cannot log in to OpenSSH 8.8 and later) and
# costs more than twice as much per file.
#
# Sources come from `apt-get source` with a private apt configuration in the
# work folder, so the machine's own apt setup is never changed. The mirror
# address is taken from the machine's apt sources. Each package is pinned by
# its upstream version and the SHA-256 of its original tarball; the Debian
# revision is not pinned, because superseded revisions leave the mirror.
#
# Environment: DEPS_WORK (scratch folder, default: <prefix>/../work),
# DEPS_JOBS (parallel make jobs, default: number of cores).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
prefix="$top/.deps/linux"
force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=$2; shift 2 ;;
    --force) force=1; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "deps.sh: unknown argument '$1'; see --help" >&2; exit 2 ;;
  esac
done
mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)
work=${DEPS_WORK:-$(dirname "$prefix")/work}
jobs=${DEPS_JOBS:-$(nproc)}

# Pins: package, upstream version, SHA-256 of the .orig tarball, suite.
LIBSSH2_VERSION=1.11.1
LIBSSH2_SHA256=d9ec76cbe34db98eec3539fe2c899d26b0c837cb3eb466a56b0f109cabf658f7
LIBSSH2_SUITE=trixie

log() { printf 'deps: %s\n' "$*" >&2; }
die() { printf 'deps: error: %s\n' "$*" >&2; exit 1; }

# Print the Debian mirror URI from the machine's apt sources (deb822 or
# one-line format), falling back to the public default.
mirror_uri() {
  local uri
  uri=$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources \
          /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        grep -vE 'security|updates' |
        sed -nE 's#^URIs:[[:space:]]*([^[:space:]]+).*#\1#p; s#^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+).*#\2#p' |
        grep -E '/debian/?$' | head -n 1)
  printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

# Run apt-get against the private configuration in $work/apt.
private_apt() {
  apt-get -q \
    -o Dir::Etc::SourceList="$work/apt/sources.list" \
    -o Dir::Etc::SourceParts=/dev/null \
    -o Dir::State::Lists="$work/apt/lists" \
    -o Dir::Cache="$work/apt/cache" \
    -o APT::Sandbox::User=root \
    "$@"
}

setup_private_apt() {
  local suite=$1
  mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial"
  printf 'deb-src %s %s main\n' "$(mirror_uri)" "$suite" >"$work/apt/sources.list"
  log "updating private apt source lists ($suite)"
  private_apt update >"$work/apt/update.log" 2>&1 ||
    { cat "$work/apt/update.log" >&2; die "apt-get update failed for the private deb-src list"; }
}

# Download a source package and verify its original tarball; print the
# unpacked source folder. Debian's patches are applied, because stable
# revisions carry security fixes.
fetch_source() {
  local package=$1 version=$2 sha=$3 dir="$work/src/$1"
  rm -rf "$dir"
  mkdir -p "$dir"
  (cd "$dir" && private_apt source --download-only "$package" >download.log 2>&1) ||
    { cat "$dir/download.log" >&2; die "apt-get source $package failed"; }
  local orig
  orig=$(ls "$dir"/"${package}_${version}".orig.tar.* 2>/dev/null | grep -v '\.asc$' | head -n 1)
  [ -n "$orig" ] || die "$package: the mirror no longer offers upstream version $version; move the pin (docs/dependencies.md)"
  echo "$sha  $orig" | sha256sum -c --quiet - ||
    die "$package: SHA-256 of $(basename "$orig") does not match the pin"
  (cd "$dir" && dpkg-source --no-check -x ./*.dsc src >extract.log 2>&1) ||
    { cat "$dir/extract.log" >&2; die "dpkg-source could not unpack $package"; }
  printf '%s\n' "$dir/src"
}

build_libssh2() {
  local stamp="$prefix/.libssh2-$LIBSSH2_VERSION-$LIBSSH2_SHA256"
  if [ "$force" = 0 ] && [ -f "$stamp" ]; then
    log "libssh2 $LIBSSH2_VERSION already in $prefix"
    return
  fi
  setup_private_apt "$LIBSSH2_SUITE"
  local src
  src=$(fetch_source libssh2 "$LIBSSH2_VERSION" "$LIBSSH2_SHA256")
  log "building libssh2 $LIBSSH2_VERSION (static, OpenSSL backend)"
  cmake -S "$src" -B "$work/build/libssh2" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_INSTALL_LIBDIR=lib \
    -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
    -DBUILD_SHARED_LIBS=OFF -DBUILD_STATIC_LIBS=ON \
    -DCRYPTO_BACKEND=OpenSSL -DENABLE_ZLIB_COMPRESSION=OFF \
    -DCMAKE_DISABLE_FIND_PACKAGE_ZLIB=ON \
    -DBUILD_EXAMPLES=OFF -DBUILD_TESTING=OFF \
    -DCMAKE_EXPORT_NO_PACKAGE_REGISTRY=ON >"$work/libssh2-configure.log" 2>&1 ||
    { cat "$work/libssh2-configure.log" >&2; die "libssh2 configure failed"; }
  cmake --build "$work/build/libssh2" -j "$jobs" >"$work/libssh2-build.log" 2>&1 ||
    { tail -50 "$work/libssh2-build.log" >&2; die "libssh2 build failed"; }
  cmake --install "$work/build/libssh2" >/dev/null
  rm -f "$prefix"/.libssh2-*
  touch "$stamp"
  log "libssh2 $LIBSSH2_VERSION installed in $prefix"
}

system_libssh2_ok() {
  pkg-config --atleast-version=1.11 libssh2 2>/dev/null
}

if [ "$force" = 0 ] && system_libssh2_ok; then
  log "system libssh2 $(pkg-config --modversion libssh2) is new enough; nothing to build"
  exit 0
fi
build_libssh2
