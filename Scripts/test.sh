#!/usr/bin/env bash
# The README's second command (and CI's): install what is missing, then run the
# whole test suite. Tests build in release (with -enable-testing): the
# differential test does millions of lookups, which unoptimised SIMD code makes slow.
set -euo pipefail
cd "$(dirname "$0")/.."

bash Scripts/install-deps.sh
# The package's static release binary, in its own build directory (.build-deb/):
# the package tests package it, unpack it and run it without the toolchain.
bash Scripts/package-deb.sh --build-only
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
swift test -c release -Xswiftc -enable-testing 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One plain summary line: "N passed, N failed".
summary=$(grep -E "Test run with [0-9]+ tests? in" "$log" | tail -1)
total=$(echo "$summary" | sed -nE 's/.*Test run with ([0-9]+) tests?.*/\1/p')
if [ -z "$total" ]; then
    echo "geogate: no test summary found (swift test exit $status)" >&2
    exit 1
fi
failed_tests=$(grep -E "^✘ Test " "$log" | grep -c "failed after" || true)
echo "$((total - failed_tests)) passed, $failed_tests failed"
exit "$status"
