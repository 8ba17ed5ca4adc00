#!/usr/bin/env bash
# Create or stop the wine prefix that the Windows tests share.
#
# Usage:
#   wine-prefix.sh start DIR  create DIR as a fresh 64-bit wine prefix and
#                             keep its wineserver running until stop
#   wine-prefix.sh stop DIR   end the wineserver of DIR and the programs
#                             that still run in it
#
# Only the wineserver of DIR is ever ended, never another prefix's.
set -euo pipefail

die() {
  printf 'wine-prefix.sh: error: %s\n' "$*" >&2
  exit 1
}

[ $# -eq 2 ] || die "usage: wine-prefix.sh start|stop DIR"
export WINEDEBUG=-all WINEARCH=win64
export WINEPREFIX=$2

case "$1" in
  start)
    command -v wine >/dev/null || die "wine not found; install the Debian packages wine and wine64"
    if [ -d "$WINEPREFIX" ]; then
      timeout 30 wineserver -k 2>/dev/null || true
      rm -rf "$WINEPREFIX"
    fi
    mkdir -p "$WINEPREFIX"
    # wineboot needs no X server when DISPLAY is unset.
    unset DISPLAY
    timeout 300 wineboot --init >"$WINEPREFIX.log" 2>&1 ||
      { tail -20 "$WINEPREFIX.log" >&2; die "wineboot --init failed for $WINEPREFIX"; }
    timeout 120 wineserver -w
    # A persistent wineserver keeps every later wine start fast, and the
    # services alive (it would end them 3 s after the last client). It
    # goes to the background, so it must not hold the caller's output
    # open, or CTest would wait for it.
    wineserver -p </dev/null >>"$WINEPREFIX.log" 2>&1
    # The first program starts wine's own services (services.exe, rpcss
    # and more). They stay until the wineserver ends and keep the output
    # of that program open, so they are started here with the log as
    # their output.
    timeout 120 wine cmd.exe /c exit 0 </dev/null >>"$WINEPREFIX.log" 2>&1
    printf 'wine-prefix.sh: wine prefix ready in %s\n' "$WINEPREFIX"
    ;;
  stop)
    [ -d "$WINEPREFIX" ] || exit 0
    timeout 30 wineserver -k 2>/dev/null || true
    ;;
  *) die "unknown command '$1'; use start or stop" ;;
esac
