#!/usr/bin/env bash
# The Windows agent never reads an OpenSSL config file. A cross-built
# libcrypto looks for openssl.cnf in the folder it was configured with, and
# on Windows the folder below the build prefix would be one that any user
# can create under C:\. The build sets it to an admin-only folder below
# Program Files, and src/main.c makes OpenSSL skip the file altogether.
#
# The test plants an openssl.cnf that activates only OpenSSL's null
# provider, so that a program that reads it can compute no digest. A
# control program shows that the file sits where OpenSSL looks (and in
# OPENSSL_CONF) and breaks a program that loads it. The agent then syncs
# over SSH with the same file in place, and wine's file trace shows that
# it never opened a file named openssl.cnf.
set -euo pipefail
# shellcheck source=../integration/lib.sh
. "$(dirname "$0")/../integration/lib.sh"

: "${OPENSSL_PROBE:?OPENSSL_PROBE must name openssl_probe.exe}"
: "${WINEPREFIX:?WINEPREFIX must name the wine prefix}"
here=$(cd "$(dirname "$0")" && pwd)

ssl_dir="$WINEPREFIX/drive_c/Program Files/rossum-sftp-agent/ssl"
planted="$ssl_dir/openssl.cnf"
cleanup() { rm -rf "$WINEPREFIX/drive_c/Program Files/rossum-sftp-agent"; }
trap cleanup EXIT

setup_case openssl_config
mkdir -p "$ssl_dir"
cat >"$planted" <<'CNF'
openssl_conf = openssl_init

[openssl_init]
providers = provider_sect

[provider_sect]
null = null_sect

[null_sect]
activate = 1
CNF
cp "$planted" "$LOCAL/openssl.cnf"
conf_env="Z:${LOCAL//\//\\}\\openssl.cnf"

probe() {
  "$here/wine-run.sh" "$OPENSSL_PROBE" "$@" | tr -d '\r'
}

# The folders baked into libcrypto are the admin-only ones, not the build
# prefix.
STDOUT=$(probe)
assert_eq 'OPENSSLDIR: "C:/Program Files/rossum-sftp-agent/ssl"' \
  "$(sed -n 1p <<<"$STDOUT")" "OPENSSLDIR"
assert_eq 'ENGINESDIR: "C:/Program Files/rossum-sftp-agent/ssl/engines-3"' \
  "$(sed -n 2p <<<"$STDOUT")" "ENGINESDIR"
assert_eq 'MODULESDIR: "C:/Program Files/rossum-sftp-agent/ssl/modules"' \
  "$(sed -n 3p <<<"$STDOUT")" "MODULESDIR"
assert_eq "sha256 available" "$(sed -n 4p <<<"$STDOUT")" \
  "probe without the config"

# Controls: loading the planted file, from OPENSSLDIR or from
# OPENSSL_CONF, leaves no digest.
STDOUT=$(probe --load-config)
assert_eq "sha256 unavailable" "$(tail -n 1 <<<"$STDOUT")" \
  "probe that loads the planted OPENSSLDIR config"
mv "$planted" "$planted.off"
STDOUT=$(OPENSSL_CONF=$conf_env probe --load-config)
assert_eq "sha256 unavailable" "$(tail -n 1 <<<"$STDOUT")" \
  "probe that loads the config named by OPENSSL_CONF"
mv "$planted.off" "$planted"

# wine's file trace shows the control program opening the file.
trace="$LOCAL/probe-trace.log"
WINEDEBUG=+file "$here/wine-run.sh" "$OPENSSL_PROBE" --load-config \
  >/dev/null 2>"$trace"
[ "$(grep -ci 'openssl\.cnf' "$trace")" -gt 0 ] ||
  fail "wine's file trace did not show the probe opening openssl.cnf"
pass

# The agent logs in with OpenSSL's ciphers and digests and delivers a
# file, with the planted config in both places.
cp "$TEST_DATA_DIR/rossum_export_single.xml" "$REMOTE/inbox/invoice.xml"
export OPENSSL_CONF=$conf_env
WINEDEBUG=+file run_agent sync
unset OPENSSL_CONF
assert_eq 0 "$RC" "sync exit code"
assert_eq 1 "$(count_files "$OUT" '*.json')" "outputs"
assert_eq 1 "$(count_files "$REMOTE/archive")" "archived files"
assert_eq 0 "$(grep -ci 'openssl\.cnf' <<<"$STDERR" || true)" \
  "openssl.cnf opened by the agent"
STDERR=""

finish
