#!/usr/bin/env bash
# geogate's benchmarks (compiler and firewall-sets issues), each measured side by side with its
# reference in one run and reported as a ratio. Release build. Prints one line per
# figure and PASS/FAIL against Benchmarks/thresholds.env.
#
#   bash Benchmarks/run.sh            # everything, about a minute
#
# Not part of the test suite: shared, noisy machines make timings poor assertions.
set -euo pipefail
cd "$(dirname "$0")/.."
source Benchmarks/thresholds.env

bash Scripts/install-deps.sh
command -v hyperfine >/dev/null || { echo "hyperfine is needed: apt-get install -y hyperfine" >&2; exit 1; }
swift build -c release 2>&1 | tail -1
bin=.build/release
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

check() {  # name value op limit
    if awk "BEGIN { exit !($2 $3 $4) }"; then echo "PASS  $1: $2 (target $3 $4)"; else echo "FAIL  $1: $2 (target $3 $4)"; fi
}

echo "== reference MMDB: MaxMind's writer on the same data"
gzip -dc Data/geoip.gz > "$work/geoip"
gzip -dc Data/geoip6.gz > "$work/geoip6"
perl Scripts/make-mmdb.pl "$work/ref.mmdb" "$work/geoip" "$work/geoip6"

echo "== compile the embedded dataset (wall time, peak memory)"
$bin/geogate compile -o "$work/countries.trie" --build-time 0
hyperfine --warmup 1 --runs 10 --export-json "$work/compile.json" \
    "$bin/geogate compile -q -o $work/c.trie" | grep -E "Time|Range"
compile_ms=$(python3 -c "import json;print(round(json.load(open('$work/compile.json'))['results'][0]['mean']*1000))")
peak_kb=$(/usr/bin/time -f %M $bin/geogate compile -q -o "$work/c.trie" 2>&1 >/dev/null | tail -1)
check "compile wall time ms" "$compile_ms" "<=" "$COMPILE_MS_MAX"
check "compile peak memory MB" "$((peak_kb / 1024))" "<=" "$COMPILE_MB_MAX"

echo "== size"
trie_size=$(stat -c %s "$work/countries.trie")
mmdb_size=$(stat -c %s "$work/ref.mmdb")
size_ratio=$(awk "BEGIN { printf \"%.3f\", $trie_size / $mmdb_size }")
echo "trie $trie_size bytes, MMDB $mmdb_size bytes"
check "trie size / MMDB size" "$size_ratio" "<=" "$SIZE_RATIO_MAX"

echo "== open (mmap + validation)"
open_ms=$($bin/geogate-bench open --db "$work/countries.trie" | sed -nE 's/open\+validate: ([0-9.]+) ms.*/\1/p')
echo "open+validate median: $open_ms ms"
check "open ms" "$open_ms" "<=" "$OPEN_MS_MAX"

echo "== lookups against libmaxminddb, same addresses, same run"
$bin/geogate-bench queries --db "$work/countries.trie" --family 4 --mode uniform --count 1000000 -o "$work/q4"
$bin/geogate-bench queries --db "$work/countries.trie" --family 6 --mode allocated --count 1000000 -o "$work/q6"
for q in q4 q6; do
    echo "-- $q ($( [ $q = q4 ] && echo 'uniform-random IPv4' || echo 'IPv6 inside allocated ranges'))"
    out=$($bin/geogate-bench lookup --db "$work/countries.trie" --queries "$work/$q" --mmdb "$work/ref.mmdb")
    echo "$out"
    ratio=$(echo "$out" | sed -nE 's/^ratio: ([0-9.]+)/\1/p')
    check "$q lookup ratio vs libmaxminddb" "$ratio" ">=" "$LOOKUP_RATIO_MIN"
done

echo "== firewall sets (Benchmarks/bench.conf: 25 countries)"
out=$($bin/geogate-bench sets --db "$work/countries.trie" --config Benchmarks/bench.conf --profile bench)
echo "$out"
sets_ms=$(echo "$out" | sed -nE 's/^compute sets: ([0-9.]+) ms.*/\1/p')
check "compute sets ms" "$sets_ms" "<=" "$SETS_MS_MAX"
# Loading runs in a network namespace of its own: never this machine's sets.
ns="gg-bench-$$"
ip netns add "$ns"
out=$(ip netns exec "$ns" $bin/geogate-bench ipset-load --db "$work/countries.trie" --config Benchmarks/bench.conf \
      --profile bench --scratch "$work/bench.ipset") || { ip netns del "$ns"; exit 1; }
ip netns del "$ns"
echo "$out"
ratio=$(echo "$out" | sed -nE 's/^ratio: ([0-9.]+)/\1/p')
check "libipset load vs ipset restore ratio" "$ratio" ">=" "$IPSET_LOAD_RATIO_MIN"
