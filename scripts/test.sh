#!/usr/bin/env bash
# Install what is missing, build with warnings as errors and with the
# fault points of tests/faults, and run the whole test suite: unit tests,
# then integration and fault-injection tests against real OpenSSH sshd
# servers that the suite starts on 127.0.0.1.
#
# Usage: scripts/test.sh [ctest arguments, e.g. -R integration]
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
export BUILD_DIR=${BUILD_DIR:-$top/build}
"$top/scripts/bootstrap.sh" -DAGENT_WERROR=ON -DAGENT_FAULT_INJECTION=ON
cd "$BUILD_DIR"
ctest --output-on-failure -j 1 "$@"
