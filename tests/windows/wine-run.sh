#!/usr/bin/env bash
# Run a Windows program under wine for CTest (CMAKE_CROSSCOMPILING_EMULATOR
# of the Windows build), within a time limit: a failed SSH handshake or a
# wine problem can otherwise hang a test for minutes.
#
# Usage: wine-run.sh PROGRAM.exe [ARGUMENTS...]
# Environment: WINEPREFIX (set by tests/CMakeLists.txt), WINE_TIMEOUT
# (seconds, default 300), WINE (the wine launcher, default wine).
set -u
export WINEDEBUG=${WINEDEBUG:--all}
exec timeout -k 10 "${WINE_TIMEOUT:-300}" "${WINE:-wine}" "$@"
