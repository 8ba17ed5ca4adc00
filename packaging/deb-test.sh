#!/usr/bin/env bash
# Build the Debian package, install it on this machine, check the
# installation, purge it and check what is left.
#
# Usage: packaging/deb-test.sh BUILD_DIR
#
# BUILD_DIR is a configured build folder (cmake -S . -B BUILD_DIR). Run as
# root on Debian 12. The test installs with apt-get, which also installs
# missing dependencies, and purges the package at the end, also when a
# check fails. It then removes the user, group and state folder that the
# package keeps on purge, but only when they did not exist before the test.
# Dependencies that apt-get installed stay and are listed. The test refuses
# to run when the package is already installed.
#
# Ends with "deb-test: N passed, N failed" and exits 1 when a check failed,
# or 2 when the test cannot run (not root, no build folder, build failed).
set -uo pipefail

package=rossum-sftp-agent
user_name=rossum-sftp-agent
config_dir=/etc/rossum-sftp-agent
config_file=$config_dir/agent.conf
state_dir=/var/lib/rossum-sftp-agent
log_dir=/var/log/rossum-sftp-agent
unit_dir=/lib/systemd/system
units=(rossum-sftp-agent.service rossum-sftp-agent-sync.service
       rossum-sftp-agent-sync.timer)
apt_options=(-y -q -o DPkg::Lock::Timeout=300)

passed=0
failed=0
failures=()

log() { printf 'deb-test: %s\n' "$*"; }
die() { printf 'deb-test: error: %s\n' "$*" >&2; exit 2; }

pass() {
  passed=$((passed + 1))
  printf '  ok    %s\n' "$1"
}

fail() {
  failed=$((failed + 1))
  failures+=("$1")
  printf '  FAIL  %s\n' "$1"
  if [ -n "${2:-}" ]; then
    printf '%s\n' "$2" | sed 's/^/        /'
  fi
}

# Record a check: check NAME COMMAND... passes when COMMAND exits 0, and
# prints the command's output when it fails.
check() {
  local name=$1 output
  shift
  if output=$("$@" 2>&1); then
    pass "$name"
  else
    fail "$name" "$output"
  fi
}

# Print a file's mode, owner and group as "640 root:rossum-sftp-agent".
mode_owner() { stat -c '%a %U:%G' "$1" 2>&1; }

expect_equal() {
  local name=$1 expected=$2 actual=$3
  if [ "$expected" = "$actual" ]; then
    pass "$name"
  else
    fail "$name" "expected '$expected', got '$actual'"
  fi
}

# Return whether dpkg has a record of the package in any state, including
# the config files that remain after a removal without purge.
is_known() {
  local status
  status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null)
  [ -n "$status" ] && [ "$status" != not-installed ]
}

[ $# -eq 1 ] || die "usage: packaging/deb-test.sh BUILD_DIR"
[ "$(id -u)" = 0 ] || die "run as root: the test installs and purges the package"
[ -f "$1/CMakeCache.txt" ] || die "'$1' is not a configured build folder; run cmake -S . -B $1 first"
build_dir=$(cd "$1" && pwd)
if is_known; then
  die "$package is installed or has config files left; the test would purge them, so purge it yourself first (apt-get purge $package)"
fi

# What exists before the test, so that cleanup removes only what it made.
user_existed=0; getent passwd "$user_name" >/dev/null && user_existed=1
group_existed=0; getent group "$user_name" >/dev/null && group_existed=1
state_existed=0; [ -e "$state_dir" ] && state_existed=1
# systemd-analyze verify runs man for each Documentation= page, and man-db
# then caches formatted pages in /var/cache/man.
man_cache_before=$(find /var/cache/man -name 'rossum-sftp-agent*' 2>/dev/null | sort)
packages_before=$(dpkg-query -W -f='${Package}\n' | sort)

installed_by_test=0
cleanup() {
  if [ "$installed_by_test" = 1 ] && is_known; then
    log "purging $package after an interrupted test"
    apt-get purge "${apt_options[@]}" "$package" >/dev/null 2>&1
  fi
  if [ "$user_existed" = 0 ] && getent passwd "$user_name" >/dev/null; then
    deluser --system --quiet "$user_name" >/dev/null 2>&1
  fi
  if [ "$group_existed" = 0 ] && getent group "$user_name" >/dev/null; then
    delgroup --system --quiet "$user_name" >/dev/null 2>&1
  fi
  if [ "$state_existed" = 0 ]; then
    rm -rf "$state_dir"
  fi
  comm -13 <(printf '%s\n' "$man_cache_before") \
    <(find /var/cache/man -name 'rossum-sftp-agent*' 2>/dev/null | sort) |
    while read -r cached; do
      [ -n "$cached" ] && rm -f "$cached"
    done
}
trap cleanup EXIT

log "building in $build_dir"
cmake --build "$build_dir" -j "$(nproc)" >"$build_dir/deb-test-build.log" 2>&1 ||
  { tail -n 30 "$build_dir/deb-test-build.log" >&2; die "build failed; see $build_dir/deb-test-build.log"; }
rm -f "$build_dir"/${package}_*.deb
(cd "$build_dir" && cpack -G DEB) >"$build_dir/deb-test-cpack.log" 2>&1 ||
  { cat "$build_dir/deb-test-cpack.log" >&2; die "cpack -G DEB failed"; }
deb=$(find "$build_dir" -maxdepth 1 -name "${package}_*.deb" | head -n 1)
[ -n "$deb" ] || die "cpack wrote no ${package}_*.deb into $build_dir"
log "package: $deb"

echo "== package contents"
version=$(dpkg-deb -f "$deb" Version)
arch=$(dpkg-deb -f "$deb" Architecture)
expect_equal "file name" "${package}_${version}_${arch}.deb" "$(basename "$deb")"
contents=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's#^\./#/#')
for path in /usr/bin/$package $config_file \
    $unit_dir/rossum-sftp-agent.service \
    $unit_dir/rossum-sftp-agent-sync.service \
    $unit_dir/rossum-sftp-agent-sync.timer \
    /usr/share/man/man1/rossum-sftp-agent.1.gz \
    /usr/share/man/man5/rossum-sftp-agent.conf.5.gz \
    /usr/share/doc/$package/copyright \
    /usr/share/doc/$package/changelog.gz \
    /usr/share/doc/$package/README.md \
    /usr/share/doc/$package/agent.conf.example; do
  if grep -qx "$path" <<<"$contents"; then
    pass "contains $path"
  else
    fail "contains $path" "not in dpkg-deb -c output"
  fi
done
if [ -f "$(dirname "$0")/logrotate/$package" ]; then
  if grep -qx "/etc/logrotate.d/$package" <<<"$contents"; then
    pass "contains /etc/logrotate.d/$package"
  else
    fail "contains /etc/logrotate.d/$package" "packaging/logrotate/$package exists; run cmake again"
  fi
fi
conffiles=$(dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./conffiles)
check "agent.conf is a conffile" grep -qx "$config_file" <<<"$conffiles"
if grep -qx "/etc/logrotate.d/$package" <<<"$contents"; then
  check "logrotate snippet is a conffile" \
    grep -qx "/etc/logrotate.d/$package" <<<"$conffiles"
fi
depends=$(dpkg-deb -f "$deb" Depends)
log "Depends: $depends"
if grep -q libssh2 <<<"$depends"; then
  fail "libssh2 is not a dependency" "Depends: $depends"
else
  pass "libssh2 is not a dependency"
fi
check "depends on adduser" grep -qw adduser <<<"$depends"
check "depends on libc6" grep -qw libc6 <<<"$depends"
packaged_config=$(dpkg-deb --fsys-tarfile "$deb" | tar -xOf - ".$config_file")
if grep -qE '^[[:space:]]*host[[:space:]]*=' <<<"$packaged_config"; then
  fail "packaged config sets no host" "$(grep -E '^[[:space:]]*host' <<<"$packaged_config")"
else
  pass "packaged config sets no host"
fi

if command -v lintian >/dev/null; then
  # The default maintainer address is a placeholder until the project
  # names one (AGENT_DEB_MAINTAINER); its two tags are reported, not failed.
  suppress=()
  if dpkg-deb -f "$deb" Maintainer | grep -q '@invalid>'; then
    log "NOTE: Maintainer is the placeholder address; set -DAGENT_DEB_MAINTAINER"
    suppress=(--suppress-tags "bogus-mail-host,bogus-mail-host-in-debian-changelog")
  fi
  check "lintian reports no errors or warnings" \
    lintian --fail-on error,warning "${suppress[@]}" "$deb"
else
  log "lintian is not installed; skipping it (apt-get install lintian)"
fi

echo "== install"
# apt-get reads a local package as the user _apt when it can, so copy it
# to a folder that user can read.
deb_copy_dir=$(mktemp -d)
chmod 0755 "$deb_copy_dir"
cp "$deb" "$deb_copy_dir/"
installed_by_test=1
if ! apt-get install "${apt_options[@]}" "$deb_copy_dir/$(basename "$deb")" \
    >"$build_dir/deb-test-install.log" 2>&1; then
  cat "$build_dir/deb-test-install.log" >&2
  die "apt-get install failed; see $build_dir/deb-test-install.log"
fi
rm -rf "$deb_copy_dir"
pass "apt-get install"

expect_equal "--version" "$package $version" "$(/usr/bin/$package --version 2>&1)"
# The fault points of tests/faults exist only in test builds.
check "no fault points in the binary" \
  bash -c "! grep -q AGENT_FAULT_POINT /usr/bin/$package"
expect_equal "user's home and shell" "$state_dir:/usr/sbin/nologin" \
  "$(getent passwd "$user_name" | cut -d: -f6,7)"
check "group exists" getent group "$user_name"
expect_equal "system user" "yes" \
  "$(uid=$(id -u "$user_name" 2>/dev/null) && [ "$uid" -lt 1000 ] && echo yes)"
expect_equal "config mode and owner" "640 root:$user_name" "$(mode_owner "$config_file")"
expect_equal "config folder mode and owner" "750 root:$user_name" "$(mode_owner "$config_dir")"
expect_equal "state folder mode and owner" "750 $user_name:$user_name" "$(mode_owner "$state_dir")"
expect_equal "log folder mode and owner" "750 $user_name:$user_name" "$(mode_owner "$log_dir")"
check "conffile registered" grep -q "$config_file" <<<"$(dpkg-query -W -f='${Conffiles}' "$package")"

# The packaged config must stop the agent before it connects anywhere,
# and the service user must be able to read it.
output=$(runuser -u "$user_name" -- /usr/bin/$package check -c "$config_file" 2>&1)
status=$?
if [ "$status" = 2 ] && grep -q 'host is missing' <<<"$output"; then
  pass "unconfigured agent exits 2 as the service user"
else
  fail "unconfigured agent exits 2 as the service user" "exit $status: $output"
fi

enabled=$(find /etc/systemd/system -name 'rossum-sftp-agent*' 2>/dev/null)
if [ -z "$enabled" ]; then
  pass "no unit enabled"
else
  fail "no unit enabled" "$enabled"
fi

installed_units=()
for unit in "${units[@]}"; do
  installed_units+=("$unit_dir/$unit")
done
# verify also runs man for each Documentation= page, so this checks that
# the installed man pages are found. verify needs only the unit files and
# the programs they name, so it works without systemd as PID 1.
output=$(systemd-analyze verify "${installed_units[@]}" 2>&1)
status=$?
if [ "$status" = 0 ] && [ -z "$output" ]; then
  pass "systemd-analyze verify"
else
  fail "systemd-analyze verify" "exit $status: $output"
fi

for page in /usr/share/man/man1/rossum-sftp-agent.1.gz \
    /usr/share/man/man5/rossum-sftp-agent.conf.5.gz; do
  output=$(zcat "$page" | LC_ALL=C.UTF-8 groff -ww -man -Tutf8 2>&1 >/dev/null)
  if [ -z "$output" ]; then
    pass "groff warns about nothing in $(basename "$page")"
  else
    fail "groff warns about nothing in $(basename "$page")" "$output"
  fi
done
check "man finds rossum-sftp-agent(1)" man -w 1 rossum-sftp-agent
check "man finds rossum-sftp-agent.conf(5)" man -w 5 rossum-sftp-agent.conf

echo "== purge"
if apt-get purge "${apt_options[@]}" "$package" >"$build_dir/deb-test-purge.log" 2>&1; then
  pass "apt-get purge"
else
  fail "apt-get purge" "$(cat "$build_dir/deb-test-purge.log")"
fi
if is_known; then
  fail "package is gone from dpkg" "$(dpkg-query -W -f='${Status}' "$package")"
else
  pass "package is gone from dpkg"
fi
leftovers=$(find /usr/bin/$package $unit_dir/rossum-sftp-agent* "$config_dir" \
  /usr/share/doc/$package /usr/share/man/man1/rossum-sftp-agent.1.gz \
  /usr/share/man/man5/rossum-sftp-agent.conf.5.gz \
  /usr/share/lintian/overrides/$package /etc/logrotate.d/$package "$log_dir" \
  /etc/systemd/system /var/lib/systemd/deb-systemd-helper-enabled \
  /var/lib/systemd/deb-systemd-helper-masked /var/lib/dpkg/info \
  -name "*rossum-sftp-agent*" 2>/dev/null)
if [ -z "$leftovers" ]; then
  pass "purge removes files, units, symlinks and logs"
else
  fail "purge removes files, units, symlinks and logs" "$leftovers"
fi
# Kept on purge by design (packaging/deb/postrm).
check "purge keeps the state folder" test -d "$state_dir"
check "purge keeps the user" getent passwd "$user_name"

cleanup
installed_by_test=0
if [ "$user_existed" = 0 ]; then
  if getent passwd "$user_name" >/dev/null || getent group "$user_name" >/dev/null; then
    fail "test removes the user and group it caused" "$(getent passwd "$user_name"; getent group "$user_name")"
  else
    pass "test removes the user and group it caused"
  fi
fi

new_packages=$(comm -13 <(printf '%s\n' "$packages_before") \
  <(dpkg-query -W -f='${Package}\n' | sort))
if [ -n "$new_packages" ]; then
  log "dependencies that apt-get installed and that stay: $(tr '\n' ' ' <<<"$new_packages")"
fi

echo
if [ "$failed" -gt 0 ]; then
  log "failed checks:"
  printf '  %s\n' "${failures[@]}"
fi
echo "deb-test: $passed passed, $failed failed"
[ "$failed" = 0 ]
