#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser of outside bytes, under AddressSanitizer
# (libFuzzer, from the Swift toolchain). Tests/Fuzz/README.md explains the targets.
#
#   Scripts/fuzz.sh TARGET SECONDS     fuzz one target (geogate-fuzz --list names them)
#   Scripts/fuzz.sh all SECONDS        every target in turn, SECONDS each
#   Scripts/fuzz.sh build              only build .build-fuzz/release/geogate-fuzz
#   Scripts/fuzz.sh replay TARGET PATH...  run saved inputs once under ASan
#
# Each target starts from its seeds (Tests/Fuzz/corpus/TARGET) plus what earlier
# runs found (.build-fuzz/corpus/TARGET, kept between runs, not committed). A crash
# or a broken invariant leaves its input in .build-fuzz/crashes/TARGET/; copy it to
# Tests/Fuzz/regressions/TARGET/ with the fix, and the test suite replays it.
# GEOGATE_FUZZ_PARALLEL=2 runs two targets at once under `all`.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=.build-fuzz
binary=$scratch/release/geogate-fuzz

usage() { sed -n '4,8p' "$0" | sed 's/^# *//' >&2; exit 2; }

build() {
    # One build serves every target. GEOGATE_FUZZING gives the driver the main that
    # runs libFuzzer; the C targets (libyaml in Yams, the shims) get coverage and
    # ASan too. Linked with the toolchain's lld: gold fails on this link with an
    # internal error. The system's libmaxminddb, zlib, liblzma and
    # libarchive are not instrumented: their reads are checked only as far as
    # geogate's own code and the mapped pages go.
    swift build -c release --scratch-path "$scratch" --product geogate-fuzz \
        -Xswiftc -sanitize=fuzzer,address -Xswiftc -DGEOGATE_FUZZING \
        -Xcc -fsanitize=fuzzer-no-link,address -Xswiftc -use-ld=lld >&2
}

# The largest input each target takes: whole small files, not the fuzzer's default 4 KiB.
max_len() {
    case $1 in
        trie) echo 400000 ;;
        mmdb|archive) echo 65536 ;;
        tor|dbip-csv|maxmind-csv|rir|cidr-list|config) echo 16384 ;;
        lookup) echo 140000 ;;  # room for a line past the 64 KiB limit
        *) echo 8192 ;;
    esac
}

dictionary() {
    case $1 in
        tor|dbip-csv|maxmind-csv|cidr-list|feed) echo Tests/Fuzz/dict/csv.dict ;;
        address|rir|mmdb|config|protocol|http|entries|ami) echo "Tests/Fuzz/dict/$1.dict" ;;
        lookup) echo Tests/Fuzz/dict/address.dict ;;
        archive) echo Tests/Fuzz/dict/csv.dict ;;
        *) echo "" ;;
    esac
}

fuzz() {
    local target=$1 seconds=$2
    local corpus=$scratch/corpus/$target crashes=$scratch/crashes/$target log=$scratch/logs/$target.log
    mkdir -p "$corpus" "$crashes" "$scratch/logs"
    local dict; dict=$(dictionary "$target")
    local args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="$(max_len "$target")"
                -artifact_prefix="$crashes/" -print_final_stats=1)
    [ -n "$dict" ] && args+=(-dict="$dict")
    echo "fuzzing $target for $seconds s (log: $log)" >&2
    # The targets' scratch files (an MMDB, archive members, the daemon's trie), in
    # memory, removed here even when the run ends in a crash.
    local work; work=$(mktemp -d /dev/shm/geogate-fuzz-XXXXXX 2>/dev/null || mktemp -d)
    # Exit status 0: no crash; anything else is reported from the log below.
    # Swift's own crash backtracer is off: it runs after ASan's handler and its
    # memory reader shows up as a bogus "unknown-crash" over the real report.
    GEOGATE_FUZZ_TARGET=$target GEOGATE_FUZZ_SCRATCH=$work ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} SWIFT_BACKTRACE=enable=no \
        LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/Tests/Fuzz/lsan.supp:print_suppressions=0} \
        "$binary" "${args[@]}" "$corpus" "Tests/Fuzz/corpus/$target" >"$log" 2>&1 || true
    rm -rf "$work"
    summarize "$target"
}

# "tor: 9,812,345 runs in 600 s (16,354/s), cov 1234, ft 2345, corpus 210, crashes 0"
summarize() {
    local target=$1 log=$scratch/logs/$1.log crashes=$scratch/crashes/$1
    local runs secs cov ft corp found
    runs=$(sed -nE 's/^stat::number_of_executed_units: ([0-9]+)/\1/p' "$log" | tail -1)
    secs=$(sed -nE 's/^Done [0-9]+ runs in ([0-9]+) second.*/\1/p' "$log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
    ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
    corp=$(grep -oE 'corp: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
    found=$(find "$crashes" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
    local rate=""
    [ -n "$runs" ] && [ -n "$secs" ] && [ "$secs" -gt 0 ] && rate=" ($((runs / secs))/s)"
    echo "$target: ${runs:-?} runs in ${secs:-?} s$rate, cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?}, crashes $found"
    if [ "$found" -gt 0 ]; then
        grep -m3 -E 'ERROR: AddressSanitizer|ERROR: LeakSanitizer|ERROR: libFuzzer|invariant broken|Fatal error|deadly signal' "$log" | sed 's/^/    /'
        find "$crashes" -type f | sed 's/^/    reproducer: /'
        return 1
    fi
}

[ $# -ge 1 ] || usage
case $1 in
    build) build ;;
    replay)
        [ $# -ge 3 ] || usage
        [ "${GEOGATE_FUZZ_NO_BUILD:-}" = 1 ] || build
        target=$2; shift 2
        status=0
        work=$(mktemp -d /dev/shm/geogate-fuzz-XXXXXX 2>/dev/null || mktemp -d)
        for path in "$@"; do
            GEOGATE_FUZZ_TARGET=$target GEOGATE_FUZZ_SCRATCH=$work SWIFT_BACKTRACE=enable=no \
                "$binary" -runs=1 "$path" || status=1
        done
        rm -rf "$work"
        exit $status ;;
    all)
        [ $# -eq 2 ] || usage
        [ "${GEOGATE_FUZZ_NO_BUILD:-}" = 1 ] || build
        mapfile -t targets < <(GEOGATE_FUZZ_TARGET=--list "$binary")
        parallel=${GEOGATE_FUZZ_PARALLEL:-1}
        mkdir -p "$scratch/logs"
        failed=0
        for ((i = 0; i < ${#targets[@]}; i += parallel)); do
            pids=()
            for ((j = i; j < i + parallel && j < ${#targets[@]}; j++)); do
                fuzz "${targets[j]}" "$2" > "$scratch/logs/${targets[j]}.summary" &
                pids+=($!)
            done
            for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
            for ((j = i; j < i + parallel && j < ${#targets[@]}; j++)); do cat "$scratch/logs/${targets[j]}.summary"; done
        done
        exit $failed ;;
    *)
        [ $# -eq 2 ] || usage
        [ "${GEOGATE_FUZZ_NO_BUILD:-}" = 1 ] || build
        fuzz "$1" "$2" ;;
esac
