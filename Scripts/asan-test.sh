#!/usr/bin/env bash
# The whole test suite once more, with geogate, its C shims and the test bundle
# built under AddressSanitizer (its own build directory, .build-asan/): the CLI
# tests run the ASan geogate, so every parser, compile, apply and the daemon are
# checked for reads out of bounds and use after free on the suite's inputs, and
# the fuzz regressions (Tests/Fuzz/regressions) replay with ASan watching.
# Not part of CI (it doubles the build time); run it before closing an issue that
# touches a parser. Arguments go to `swift test` (e.g. --filter FuzzRegressions).
set -euo pipefail
cd "$(dirname "$0")/.."
bash Scripts/install-deps.sh
# The package tests unpack the plain .deb build; make sure it exists.
bash Scripts/package-deb.sh --build-only
# Leaks are not errors here: the daemon's and the CLI's process-wide state is
# freed by exit, not before (LeakSanitizer would list it at every process end).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1}
# The tests skip their peak-memory bounds then (ASan adds its shadow and quarantine).
export GEOGATE_TEST_ASAN=1
swift test -c release -Xswiftc -enable-testing --scratch-path .build-asan \
    -Xswiftc -sanitize=address -Xcc -fsanitize=address "$@"
