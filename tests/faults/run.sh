#!/usr/bin/env bash
# Run one fault-injection scenario outside ctest, with no time limit,
# against the build in BUILD_DIR (default: build/). For long runs:
#
#   FAULT_ROUNDS=1000 tests/faults/run.sh test_crash_points
#
# FAULT_SEED repeats a run; the scenario prints the seed it used.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$top/build}
name=${1:?usage: tests/faults/run.sh SCENARIO, for example test_crash_points}
name=${name%.sh}
[ -f "$top/tests/faults/$name.sh" ] || {
  echo "run.sh: no scenario tests/faults/$name.sh" >&2
  exit 2
}

export AGENT_BIN=$build/rossum-sftp-agent
export TEST_DATA_DIR=$top/tests/data
export TEST_TMP=$build/tests/tmp/faults/$name
FAULT_INJECTION=0
if grep -q '^AGENT_FAULT_INJECTION:BOOL=ON' "$build/CMakeCache.txt"; then
  FAULT_INJECTION=1
fi
export FAULT_INJECTION
exec bash "$top/tests/faults/$name.sh"
