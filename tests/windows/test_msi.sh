#!/usr/bin/env bash
# The MSI: its tables as msiinfo reads them, then an install and an
# uninstall with msiexec under wine, in a wine prefix of its own.
set -euo pipefail

: "${AGENT_MSI:?AGENT_MSI must name the .msi}"
: "${AGENT_VERSION:?AGENT_VERSION must give the agent version}"
: "${TEST_TMP:?TEST_TMP must name a scratch folder}"
here=$(cd "$(dirname "$0")" && pwd)

checks_passed=0
CASE=msi
fail() {
  echo "FAIL [$CASE]: $*" >&2
  exit 1
}
pass() { checks_passed=$((checks_passed + 1)); }
assert_eq() { # expected actual what
  if [ "$1" == "$2" ]; then pass; else fail "$3: expected '$1', got '$2'"; fi
}
assert_contains() { # haystack needle what
  if [[ "$1" == *"$2"* ]]; then pass; else fail "$3: '$2' not found in: $1"; fi
}

# Print the rows of an MSI table after its three header lines, with tabs.
table() {
  msiinfo export "$AGENT_MSI" "$1" | tail -n +4 | tr -d '\r'
}

# ---- Tables ----

files=$(table File | cut -f 3 | sort | tr '\n' ' ')
assert_eq "agent.conf.example rossum-sftp-agent.exe " "$files" "files"
assert_eq "INSTALLDIR	ProgramFiles64Folder	rossum-sftp-agent" \
  "$(table Directory | grep '^INSTALLDIR')" "install folder"

# Type 3090: an executable from an installed file (18), deferred (0x400),
# not impersonated (0x800); 3154 adds "ignore the exit code" (0x40).
assert_eq "RegisterService	3090	AgentExe	install" \
  "$(table CustomAction | grep '^RegisterService' | cut -f 1-4)" \
  "install custom action"
assert_eq "UnregisterService	3154	AgentExe	uninstall" \
  "$(table CustomAction | grep '^UnregisterService' | cut -f 1-4)" \
  "uninstall custom action"

sequence=$(table InstallExecuteSequence)
position() { awk -F '\t' -v a="$1" '$1 == a { print $3 }' <<<"$sequence"; }
assert_eq "NOT Installed" \
  "$(awk -F '\t' '$1 == "RegisterService" { print $2 }' <<<"$sequence")" \
  "install condition"
assert_eq 'REMOVE="ALL"' \
  "$(awk -F '\t' '$1 == "UnregisterService" { print $2 }' <<<"$sequence")" \
  "uninstall condition"
# Fail unless action $1 comes before action $2 in the install sequence.
assert_before() {
  if [ "$(position "$1")" -lt "$(position "$2")" ]; then
    pass
  else
    fail "$1 ($(position "$1")) does not come before $2 ($(position "$2"))"
  fi
}
# Deferred actions run between InstallInitialize and InstallFinalize. The
# service is registered after its file is installed and removed before
# the files are. An upgrade removes the old version before anything else.
assert_before InstallInitialize UnregisterService
assert_before UnregisterService RemoveFiles
assert_before InstallFiles RegisterService
assert_before RegisterService InstallFinalize
assert_before InstallValidate RemoveExistingProducts
assert_before RemoveExistingProducts InstallInitialize

properties=$(table Property)
assert_contains "$properties" "ProductVersion	$AGENT_VERSION" "product version"
assert_contains "$properties" \
  "UpgradeCode	{9D60F348-5C1B-4725-8800-0EE2C443A027}" "upgrade code"
assert_contains "$(msiinfo suminfo "$AGENT_MSI")" "Template: x64;1033" \
  "64-bit package"

# ---- msiexec under wine ----

CASE=msiexec
export WINEPREFIX="$TEST_TMP/wine-msi"
"$here/wine-prefix.sh" start "$WINEPREFIX" >/dev/null
trap '"$here/wine-prefix.sh" stop "$WINEPREFIX"' EXIT
msi_windows="Z:${AGENT_MSI//\//\\}"
program="$WINEPREFIX/drive_c/Program Files/rossum-sftp-agent"
data="$WINEPREFIX/drive_c/ProgramData/rossum-sftp-agent"
service_key='HKLM\SYSTEM\CurrentControlSet\Services\rossum-sftp-agent'

rc=0
WINE_TIMEOUT=300 "$here/wine-run.sh" msiexec /i "$msi_windows" /qn || rc=$?
assert_eq 0 "$rc" "msiexec /i exit code"
[ -f "$program/rossum-sftp-agent.exe" ] || fail "the executable was not installed"
pass
[ -f "$program/agent.conf.example" ] || fail "the example config was not installed"
pass
[ -f "$data/agent.conf" ] || fail "the install action wrote no agent.conf"
pass
keys=$("$here/wine-run.sh" reg query "$service_key" 2>/dev/null | tr -d '\r') ||
  fail "the install action registered no service"
assert_contains "$keys" "rossum-sftp-agent.exe\" service -c" "service command line"

rc=0
WINE_TIMEOUT=300 "$here/wine-run.sh" msiexec /x "$msi_windows" /qn || rc=$?
assert_eq 0 "$rc" "msiexec /x exit code"
[ ! -e "$program/rossum-sftp-agent.exe" ] || fail "the executable is still there"
pass
rc=0
"$here/wine-run.sh" reg query "$service_key" >/dev/null 2>&1 || rc=$?
assert_eq 1 "$rc" "service key after the uninstall"
[ -f "$data/agent.conf" ] || fail "the uninstall removed the config"
pass

echo "$checks_passed passed, 0 failed"
