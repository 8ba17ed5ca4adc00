#!/usr/bin/env bash
# Check that a Windows executable imports only DLLs that every Windows 10
# and Server 2016 system has, so that it runs without any runtime DLL
# beside it (no libwinpthread, libgcc, OpenSSL or other library DLL).
#
# Usage: packaging/windows/check-imports.sh FILE.exe
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: check-imports.sh FILE.exe" >&2; exit 2; }
objdump=${OBJDUMP:-x86_64-w64-mingw32-objdump}

# Lower-case names of the system DLLs that may be imported.
allowed=(advapi32.dll bcrypt.dll crypt32.dll kernel32.dll msvcrt.dll
         ole32.dll shell32.dll user32.dll userenv.dll ws2_32.dll)

dlls=$("$objdump" -p "$1" | sed -n 's/^[[:space:]]*DLL Name: //p' |
       tr '[:upper:]' '[:lower:]' | sort -u)
[ -n "$dlls" ] || { echo "check-imports: no imports found in $1" >&2; exit 1; }
bad=0
for dll in $dlls; do
  ok=0
  for name in "${allowed[@]}"; do
    [ "$dll" = "$name" ] && ok=1
  done
  case "$dll" in api-ms-win-*) ok=1 ;; esac
  if [ "$ok" = 0 ]; then
    echo "check-imports: $1 imports $dll, which is not a system DLL" >&2
    bad=1
  fi
done
[ "$bad" = 0 ] || exit 1
echo "check-imports: $(basename "$1") imports only system DLLs:" "${dlls//$'\n'/ }"
