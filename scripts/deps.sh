#!/usr/bin/env bash
# Build pinned third-party libraries from Debian source packages into a
# private prefix, for builds whose system packages are too old or missing.
#
# Usage: scripts/deps.sh [--target linux|windows] [--prefix DIR] [--force]
#
# linux (the default) builds libssh2 for the native build when the system
# libssh2 is older than 1.11, into .deps/linux. Debian 12 ships 1.10, which
# cannot sign with rsa-sha2-256/512 (so RSA keys cannot log in to OpenSSH
# 8.8 and later) and costs more than twice as much per file.
#
# windows cross-builds every library that the agent and its tests link
# (OpenSSL, libssh2, libxml2, LMDB, jansson, libcsv, inih, cmocka) as
# static libraries for x86_64-w64-mingw32 into .deps/windows, with
# cmake/mingw-w64.cmake. It needs the Debian packages mingw-w64, cmake and
# perl. See docs/windows.md.
#
# Sources come from `apt-get source` with a private apt configuration in the
# work folder (deb-src lines for Debian 12 bookworm and 13 trixie), so the
# machine's own apt setup is never changed. The mirror address is taken
# from the machine's apt sources. Each package is pinned by its upstream
# version and the SHA-256 of its original tarball. The Debian revision is
# not pinned, because superseded revisions leave the mirror: the newest
# revision with the pinned upstream version that downloads completely is
# used. A stamp file in the prefix records the pins, so a second run with
# the same pins builds nothing.
#
# Environment: DEPS_WORK (scratch folder, default: <prefix>/../work),
# DEPS_JOBS (parallel make jobs, default: number of cores).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
target=linux
prefix=
force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --target) target=$2; shift 2 ;;
    --prefix) prefix=$2; shift 2 ;;
    --force) force=1; shift ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "deps.sh: unknown argument '$1'; see --help" >&2; exit 2 ;;
  esac
done
case "$target" in
  linux | windows) ;;
  *) echo "deps.sh: unknown target '$target'; use linux or windows" >&2; exit 2 ;;
esac
prefix=${prefix:-$top/.deps/$target}
mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)
if [ "$target" = windows ]; then
  # The pkg-config files name the prefix, and CMake accepts their paths
  # only below a root of cmake/mingw-w64.cmake, which resolves symbolic
  # links: so the prefix is written without them too.
  prefix=$(cd "$prefix" && pwd -P)
fi
work=${DEPS_WORK:-$(dirname "$prefix")/work}
jobs=${DEPS_JOBS:-$(nproc)}

# Pins: upstream version and SHA-256 of the .orig tarball. The comment
# names the Debian release whose source package the pin comes from.
LIBSSH2_VERSION=1.11.1 # trixie
LIBSSH2_SHA256=d9ec76cbe34db98eec3539fe2c899d26b0c837cb3eb466a56b0f109cabf658f7

# Windows only. Debian repacks libxml2 and libcsv (+dfsg), so their
# tarballs differ from upstream's; the hash pins Debian's repack.
OPENSSL_VERSION=3.5.7 # trixie
OPENSSL_SHA256=a8c0d28a529ca480f9f36cf5792e2cd21984552a3c8e4aa11a24aa31aeac98e8
LIBXML2_VERSION=2.9.14+dfsg # bookworm
LIBXML2_SHA256=4fe913dec8b1ab89d13b489b419a8203176ea39e931eaa0d25b17eafb9c279e9
LMDB_VERSION=0.9.31 # trixie
LMDB_SHA256=d35d4f6f46313d62fd342c9dcbf574432919ce5e802d2b6cbe2ebd549821e5c4
JANSSON_VERSION=2.14 # bookworm and trixie
JANSSON_SHA256=c739578bf6b764aa0752db9a2fdadcfe921c78f1228c7ec0bb47fa804c55d17b
LIBCSV_VERSION=3.0.3+dfsg # bookworm and trixie
LIBCSV_SHA256=06fddfaca720a4be7603bad63eb1833bca5b6c5a69b42b1c518a02cda2a73aef
INIH_VERSION=59 # trixie (source package libinih)
INIH_SHA256=062279922805f5e9a369551a08d5ddb506140fe50774183ffdbb7c22bb97e3f4
CMOCKA_VERSION=1.1.5 # bookworm
CMOCKA_SHA256=f0ccd8242d55e2fd74b16ba518359151f6f8383ff8aef4976e48393f77bba8b6

# Where the Windows OpenSSL looks for openssl.cnf, engines and provider
# modules. The build bakes these paths into libcrypto. The default would be
# a folder below this build's prefix, which on Windows resolves to a path
# under C:\ that any user may create, while the agent may run as
# LocalSystem. The agent also never loads openssl.cnf (src/main.c), so
# these paths are a second line of defense. An install under another
# Program Files folder does not move them.
WINDOWS_OPENSSLDIR='C:/Program Files/rossum-sftp-agent/ssl'

# Bump when the Windows build steps change, so that the stamp no longer
# matches and the prefix is built again.
WINDOWS_RECIPE=2

mingw=x86_64-w64-mingw32

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

# The options that point apt at the private configuration in $work/apt.
private_apt_options=()
set_private_apt_options() {
  private_apt_options=(
    -o Dir::Etc::SourceList="$work/apt/sources.list"
    -o Dir::Etc::SourceParts=/dev/null
    -o Dir::State::Lists="$work/apt/lists"
    -o Dir::Cache="$work/apt/cache"
  )
}

# Run apt-get against the private configuration in $work/apt.
private_apt() {
  apt-get -q "${private_apt_options[@]}" -o APT::Sandbox::User=root "$@"
}

# Write deb-src lines for bookworm and trixie and update their lists, once
# per run. Security updates of bookworm are not on every mirror, so only
# the main suites are listed.
apt_ready=0
setup_private_apt() {
  [ "$apt_ready" = 1 ] && return
  set_private_apt_options
  mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial"
  local uri
  uri=$(mirror_uri)
  printf 'deb-src %s %s main\n' "$uri" bookworm "$uri" trixie \
    >"$work/apt/sources.list"
  log "updating private apt source lists (bookworm, trixie)"
  private_apt update >"$work/apt/update.log" 2>&1 ||
    { cat "$work/apt/update.log" >&2; die "apt-get update failed for the private deb-src list"; }
  apt_ready=1
}

# Print the Debian versions of source package $1 whose upstream version is
# $2, newest first.
debian_revisions() {
  local package=$1 upstream=$2
  apt-cache "${private_apt_options[@]}" showsrc "$package" 2>/dev/null |
    sed -n 's/^Version: //p' | sort -u |
    while read -r version; do
      local plain=${version#*:}
      if [ "${plain%-*}" = "$upstream" ]; then
        printf '%s\n' "$version"
      fi
    done | sort -rV
}

# Download a source package and verify its original tarball; print the
# unpacked source folder. Debian's patches are applied, because stable
# revisions carry security fixes.
fetch_source() {
  local package=$1 version=$2 sha=$3 dir="$work/src/$1" revision found=
  setup_private_apt
  for revision in $(debian_revisions "$package" "$version"); do
    rm -rf "$dir"
    mkdir -p "$dir"
    if (cd "$dir" && private_apt source --download-only "$package=$revision" \
          >download.log 2>&1); then
      found=$revision
      break
    fi
    log "$package $revision is incomplete on the mirror; trying an older revision"
  done
  [ -n "$found" ] ||
    die "$package: the mirror offers no complete source package of upstream version $version; move the pin (docs/dependencies.md, docs/windows.md)"
  log "fetched $package $found"
  local orig
  orig=$(ls "$dir"/"${package}_${version}".orig.tar.* 2>/dev/null | grep -v '\.asc$' | head -n 1)
  [ -n "$orig" ] || die "$package $found has no ${package}_${version}.orig tarball"
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
  local src
  setup_private_apt
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

# ---- Windows ----

# Run a build step with its output in $wwork/NAME.log; show the end of the
# log and stop on failure.
step() {
  local name=$1
  shift
  "$@" >"$wwork/$name.log" 2>&1 ||
    { tail -40 "$wwork/$name.log" >&2; die "$name failed; the full log is $wwork/$name.log"; }
}

# Configure, build and install a CMake project for Windows.
cmake_windows() {
  local name=$1 src=$2
  shift 2
  step "$name-configure" cmake -S "$src" -B "$wwork/build/$name" \
    -DCMAKE_TOOLCHAIN_FILE="$top/cmake/mingw-w64.cmake" \
    -DAGENT_DEPS_PREFIX="$prefix" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_INSTALL_LIBDIR=lib \
    -DBUILD_SHARED_LIBS=OFF \
    -DCMAKE_EXPORT_NO_PACKAGE_REGISTRY=ON \
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF "$@"
  step "$name-build" cmake --build "$wwork/build/$name" -j "$jobs"
  step "$name-install" cmake --install "$wwork/build/$name"
}

# Compile C sources into the static library lib$1.a in the prefix.
archive_windows() {
  local name=$1 objdir="$wwork/build/$1"
  shift
  rm -rf "$objdir"
  mkdir -p "$objdir" "$prefix/lib"
  local source objects=()
  for source in "$@"; do
    [ -f "$source" ] || die "$source not found in the $name source package"
    objects+=("$objdir/$(basename "${source%.c}").o")
    step "$name-compile" "$mingw-gcc-win32" -O2 -g -c "$source" \
      -o "${objects[-1]}"
  done
  step "$name-archive" "$mingw-ar" rcs "$prefix/lib/lib$name.a" "${objects[@]}"
}

# Write a pkg-config file: name, version, libs, [Libs.private], [cflags].
write_pc() {
  mkdir -p "$prefix/lib/pkgconfig"
  cat >"$prefix/lib/pkgconfig/$1.pc" <<EOF
prefix=$prefix
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: $1
Description: $1 (static, x86_64-w64-mingw32)
Version: $2
Libs: -L\${libdir} $3
Libs.private: ${4:-}
Cflags: -I\${includedir} ${5:-}
EOF
}

build_openssl_windows() {
  local src build="$wwork/build/openssl"
  src=$(fetch_source openssl "$OPENSSL_VERSION" "$OPENSSL_SHA256")
  log "building OpenSSL $OPENSSL_VERSION (libcrypto, static; this takes the longest)"
  # OPENSSLDIR, ENGINESDIR and MODULESDIR are make variables; Configure
  # would put a --openssldir without a leading slash below the prefix, so
  # every make call sets all three.
  local dirs=(
    "OPENSSLDIR=$WINDOWS_OPENSSLDIR"
    "ENGINESDIR=$WINDOWS_OPENSSLDIR/engines-3"
    "MODULESDIR=$WINDOWS_OPENSSLDIR/modules"
  )
  # Only libcrypto is built, without loadable modules and without the
  # algorithms and protocols that libssh2 never uses. That leaves 706
  # files to compile, where libcrypto and libssl with all of them take
  # 1139.
  local unused=(
    no-legacy no-quic no-dtls no-ssl3 no-srp no-cms no-ts no-ocsp no-ct
    no-cmp no-comp no-rfc3779 no-ec2m no-camellia no-aria no-seed
    no-idea no-rc2 no-rc5 no-md4 no-mdc2 no-whirlpool no-sm2 no-sm3 no-sm4
    no-siphash no-ml-dsa no-ml-kem no-slh-dsa no-http no-scrypt no-argon2
    no-blake2 no-ocb no-siv
  )
  rm -rf "$build"
  mkdir -p "$build"
  (cd "$build" && step openssl-configure perl "$src/Configure" mingw64 \
    --cross-compile-prefix="$mingw-" --prefix="$prefix" --libdir=lib \
    --openssldir="$WINDOWS_OPENSSLDIR" \
    no-shared no-module no-dso no-apps no-tests no-docs "${unused[@]}" -O2)
  step openssl-generate make -C "$build" -j "$jobs" build_generated "${dirs[@]}"
  step openssl-build make -C "$build" -j "$jobs" libcrypto.a libcrypto.pc \
    "${dirs[@]}"

  # install_dev would also want libssl: install libcrypto by hand, the
  # headers of the source first and the generated ones over them.
  mkdir -p "$prefix/include/openssl" "$prefix/lib/pkgconfig"
  cp "$src"/include/openssl/*.h "$prefix/include/openssl/"
  cp "$build"/include/openssl/*.h "$prefix/include/openssl/"
  cp "$build/libcrypto.a" "$prefix/lib/"
  # The libcrypto.pc of the build folder points into the build folder.
  write_pc libcrypto "$OPENSSL_VERSION" -lcrypto \
    "-lws2_32 -lgdi32 -lcrypt32 -lbcrypt"
}

build_libssh2_windows() {
  local src
  src=$(fetch_source libssh2 "$LIBSSH2_VERSION" "$LIBSSH2_SHA256")
  log "building libssh2 $LIBSSH2_VERSION (OpenSSL backend)"
  # The OpenSSL backend, not WinCNG: wine lacks the CNG functions that
  # WinCNG's key exchange needs, and OpenSSL behaves as on Linux.
  cmake_windows libssh2 "$src" \
    -DBUILD_STATIC_LIBS=ON -DCRYPTO_BACKEND=OpenSSL \
    -DOPENSSL_ROOT_DIR="$prefix" -DOPENSSL_USE_STATIC_LIBS=ON \
    -DENABLE_ZLIB_COMPRESSION=OFF -DCMAKE_DISABLE_FIND_PACKAGE_ZLIB=ON \
    -DBUILD_EXAMPLES=OFF -DBUILD_TESTING=OFF
  # Debian's libssh2.pc.in adds -lgpg-error for its libgcrypt builds.
  sed -i 's/ -lgpg-error//' "$prefix/lib/pkgconfig/libssh2.pc"
}

build_libxml2_windows() {
  local src
  src=$(fetch_source libxml2 "$LIBXML2_VERSION" "$LIBXML2_SHA256")
  log "building libxml2 $LIBXML2_VERSION"
  # An empty HAVE_PTHREAD_H makes libxml2 use Windows threads instead of
  # winpthreads, whose header mingw-w64 ships. Without iconv, libxml2
  # decodes UTF-8, UTF-16, ISO-8859-1 to -16 and ASCII only.
  cmake_windows libxml2 "$src" \
    -DHAVE_PTHREAD_H= \
    -DLIBXML2_WITH_ICONV=OFF -DLIBXML2_WITH_ICU=OFF \
    -DLIBXML2_WITH_LZMA=OFF -DLIBXML2_WITH_ZLIB=OFF \
    -DLIBXML2_WITH_PYTHON=OFF -DLIBXML2_WITH_PROGRAMS=OFF \
    -DLIBXML2_WITH_TESTS=OFF -DLIBXML2_WITH_HTTP=OFF \
    -DLIBXML2_WITH_FTP=OFF -DLIBXML2_WITH_MODULES=OFF
  # libxml2 lists CMake's thread library even when it uses Windows threads.
  sed -i 's/ -lpthread//' "$prefix/lib/pkgconfig/libxml-2.0.pc"
}

build_lmdb_windows() {
  local src
  src=$(fetch_source lmdb "$LMDB_VERSION" "$LMDB_SHA256")
  log "building LMDB $LMDB_VERSION"
  local dir="$src/libraries/liblmdb"
  archive_windows lmdb "$dir/mdb.c" "$dir/midl.c"
  install -D -m 0644 "$dir/lmdb.h" "$prefix/include/lmdb.h"
  write_pc lmdb "$LMDB_VERSION" -llmdb
}

build_jansson_windows() {
  local src
  src=$(fetch_source jansson "$JANSSON_VERSION" "$JANSSON_SHA256")
  log "building jansson $JANSSON_VERSION"
  cmake_windows jansson "$src" \
    -DJANSSON_BUILD_SHARED_LIBS=OFF -DJANSSON_BUILD_DOCS=OFF \
    -DJANSSON_EXAMPLES=OFF -DJANSSON_WITHOUT_TESTS=ON
}

build_libcsv_windows() {
  local src
  src=$(fetch_source libcsv "$LIBCSV_VERSION" "$LIBCSV_SHA256")
  log "building libcsv ${LIBCSV_VERSION%+*}"
  archive_windows csv "$src/libcsv.c"
  install -D -m 0644 "$src/csv.h" "$prefix/include/csv.h"
}

build_inih_windows() {
  local src
  src=$(fetch_source libinih "$INIH_VERSION" "$INIH_SHA256")
  log "building inih r$INIH_VERSION"
  # Built with the defaults of ini.h. Debian's build also sets
  # INI_HANDLER_LINENO, which passes a line number that the agent's
  # handler does not take.
  archive_windows inih "$src/ini.c"
  install -D -m 0644 "$src/ini.h" "$prefix/include/ini.h"
  write_pc inih "$INIH_VERSION" -linih
}

build_cmocka_windows() {
  local src
  src=$(fetch_source cmocka "$CMOCKA_VERSION" "$CMOCKA_SHA256")
  log "building cmocka $CMOCKA_VERSION"
  # cmocka's CMake always builds a DLL and names the static library
  # cmocka-static; build only that and install it as libcmocka.a.
  step cmocka-configure cmake -S "$src" -B "$wwork/build/cmocka" \
    -DCMAKE_TOOLCHAIN_FILE="$top/cmake/mingw-w64.cmake" \
    -DAGENT_DEPS_PREFIX="$prefix" -DCMAKE_BUILD_TYPE=Release \
    -DWITH_STATIC_LIB=ON -DWITH_EXAMPLES=OFF -DUNIT_TESTING=OFF \
    -DCMAKE_EXPORT_NO_PACKAGE_REGISTRY=ON -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
  step cmocka-build cmake --build "$wwork/build/cmocka" -j "$jobs" \
    --target cmocka-static
  install -D -m 0644 "$wwork/build/cmocka/src/libcmocka-static.a" \
    "$prefix/lib/libcmocka.a"
  install -D -m 0644 "$src/include/cmocka.h" "$prefix/include/cmocka.h"
  install -D -m 0644 "$src/include/cmocka_pbc.h" "$prefix/include/cmocka_pbc.h"
  write_pc cmocka "$CMOCKA_VERSION" -lcmocka
}

# Print the text that the stamp file of a complete Windows prefix holds.
windows_pins() {
  cat <<EOF
recipe $WINDOWS_RECIPE
compiler $("$mingw-gcc-win32" -dumpversion) $mingw win32
openssldir $WINDOWS_OPENSSLDIR
openssl $OPENSSL_VERSION $OPENSSL_SHA256
libssh2 $LIBSSH2_VERSION $LIBSSH2_SHA256
libxml2 $LIBXML2_VERSION $LIBXML2_SHA256
lmdb $LMDB_VERSION $LMDB_SHA256
jansson $JANSSON_VERSION $JANSSON_SHA256
libcsv $LIBCSV_VERSION $LIBCSV_SHA256
inih $INIH_VERSION $INIH_SHA256
cmocka $CMOCKA_VERSION $CMOCKA_SHA256
EOF
}

build_windows() {
  command -v "$mingw-gcc-win32" >/dev/null ||
    die "$mingw-gcc-win32 not found; install the Debian package mingw-w64"
  local stamp="$prefix/.pins" pins
  pins=$(windows_pins)
  if [ "$force" = 0 ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$pins" ]; then
    log "Windows libraries already in $prefix"
    return
  fi
  # Start from an empty prefix, so that nothing of an older pin remains.
  # A folder with other content is not ours to empty.
  if [ -n "$(ls -A "$prefix")" ] && [ ! -f "$stamp" ] &&
     [ ! -f "$prefix/.incomplete" ]; then
    die "$prefix is not empty and has no stamp file; pass an empty --prefix"
  fi
  find "$prefix" -mindepth 1 -delete
  touch "$prefix/.incomplete"
  wwork="$work/windows"
  rm -rf "$wwork"
  mkdir -p "$wwork"

  local start=$SECONDS
  setup_private_apt
  build_openssl_windows
  build_libssh2_windows
  build_libxml2_windows
  build_lmdb_windows
  build_jansson_windows
  build_libcsv_windows
  build_inih_windows
  build_cmocka_windows

  printf '%s\n' "$pins" >"$stamp"
  rm -f "$prefix/.incomplete"
  log "Windows libraries installed in $prefix in $((SECONDS - start)) s"
}

if [ "$target" = windows ]; then
  build_windows
  exit 0
fi
if [ "$force" = 0 ] && system_libssh2_ok; then
  log "system libssh2 $(pkg-config --modversion libssh2) is new enough; nothing to build"
  exit 0
fi
build_libssh2
