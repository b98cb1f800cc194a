#!/usr/bin/env bash
# geogate's benchmarks, each measured side by side with its reference in one run and
# reported as a ratio. Release build. Prints one line per figure and PASS/FAIL against
# Benchmarks/thresholds.env.
#
#   bash Benchmarks/run.sh                    # everything, about three minutes
#   bash Benchmarks/run.sh compiler sets daemon   # some of: compiler, lookup, sets, entries, daemon, fleet
#
# Not part of the test suite: shared, noisy machines make timings poor assertions.
set -euo pipefail
cd "$(dirname "$0")/.."
source Benchmarks/thresholds.env

sections="${*:-compiler lookup sets entries daemon fleet}"
wants() { [[ " $sections " == *" $1 "* ]]; }

bash Scripts/install-deps.sh bench
# GEOGATE_BENCH_BIN=DIR measures the binaries already built there (e.g. the tests'
# .build/release) instead of building: a plain release build after a test build
# recompiles every module.
if [ -n "${GEOGATE_BENCH_BIN:-}" ]; then
    bin=$GEOGATE_BENCH_BIN
else
    swift build -c release 2>&1 | tail -1
    bin=.build/release
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

check() {  # name value op limit
    if awk "BEGIN { exit !($2 $3 $4) }"; then echo "PASS  $1: $2 (target $3 $4)"; else echo "FAIL  $1: $2 (target $3 $4)"; fi
}

echo "== reference MMDB: MaxMind's writer on the same data"
gzip -dc Data/geoip.gz > "$work/geoip"
gzip -dc Data/geoip6.gz > "$work/geoip6"
perl Scripts/make-mmdb.pl "$work/ref.mmdb" "$work/geoip" "$work/geoip6"

$bin/geogate compile -q -o "$work/countries.trie" --build-time 0

if wants compiler; then
echo "== compile the embedded dataset (wall time, peak memory)"
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
    batched=$(echo "$out" | sed -nE 's/^batched ratio: ([0-9.]+)/\1/p')
    check "$q batched lookup ratio vs libmaxminddb" "$batched" ">=" "$( [ $q = q4 ] && echo "$BATCH_V4_RATIO_MIN" || echo "$BATCH_V6_RATIO_MIN" )"
done

fi

if wants lookup; then
echo "== geogate lookup end to end (stdin -> stdout), against a C loop over libmaxminddb"
# Benchmarks/reference/mmdb-lookup.c: getline, MMDB_lookup_string, country.iso_code,
# printf "IP CC": what an admin would write in C. Same files, same data (the MMDB
# made by MaxMind's writer above), output to /dev/null, rounds alternating.
cc -O2 -o "$work/mmdb-lookup" Benchmarks/reference/mmdb-lookup.c -lmaxminddb
$bin/geogate-bench queries --db "$work/countries.trie" --family 4 --mode uniform --count 1000000 -o "$work/s4"
$bin/geogate-bench queries --db "$work/countries.trie" --family 6 --mode allocated --count 1000000 -o "$work/s6"
ms() { local t0 t1; t0=$(date +%s%N); "$@"; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000000 )); }
for s in s4 s6; do
    # The two must print the same lines (but for MMDB's aliased tunnel networks).
    "$work/mmdb-lookup" "$work/ref.mmdb" < "$work/$s" > "$work/$s.c"
    $bin/geogate lookup --db "$work/countries.trie" < "$work/$s" > "$work/$s.g"
    differing=$(diff "$work/$s.c" "$work/$s.g" | grep '^>' | grep -vcE '^> 200[12]:' || true)
    : > "$work/c.txt"; : > "$work/g.txt"
    for _ in $(seq "$STREAM_ROUNDS"); do
        ms sh -c "'$work/mmdb-lookup' '$work/ref.mmdb' < '$work/$s' > /dev/null" >> "$work/c.txt"
        ms sh -c "'$bin/geogate' lookup --db '$work/countries.trie' < '$work/$s' > /dev/null" >> "$work/g.txt"
    done
    c=$(sort -n "$work/c.txt" | sed -n "$(( (STREAM_ROUNDS + 1) / 2 ))p"); g=$(sort -n "$work/g.txt" | sed -n "$(( (STREAM_ROUNDS + 1) / 2 ))p")
    empty=$(ms sh -c "'$bin/geogate' lookup --db '$work/countries.trie' < /dev/null")
    echo "$( [ $s = s4 ] && echo 'IPv4 (uniform)' || echo 'IPv6 (allocated)' ), 1,000,000 lines: C libmaxminddb $c ms, geogate $g ms (medians of $STREAM_ROUNDS; geogate on empty input: $empty ms); lines differing: $differing"
    check "$s lookup end to end, C time / geogate time" "$(awk "BEGIN { printf \"%.2f\", $c / $g }")" ">=" "$STREAM_RATIO_MIN"
    check "$s lines answered differently" "$differing" "==" 0
done
fi

if wants sets; then
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

echo "== the daily re-apply: \`geogate apply\` on live sets against \`ipset restore\` of the same sets"
# End to end, as the timer and the boot unit run it (config, trie, lock, lockout
# check, plan, load), in a namespace of its own. Two plans, A and B, differ by one
# allowed network, so each changed apply replaces both sets; the reference is
# `ipset restore` of `geogate sets --format ipset` (temporary set, fill, swap,
# destroy: the same work). Rounds alternate: unchanged apply, changed apply, restore.
ns="gg-bench-apply-$$"
ip netns add "$ns"
for plan in A B; do
    { echo "database: $work/countries.trie"; echo "runtime-dir: $work/run-apply"; echo "state-dir: $work/state-apply"
      sed "s#allow-countries:#allow-networks: [$( [ $plan = A ] && echo 203.0.113.0/24 || echo 198.51.100.0/24 )]\n    allow-countries:#" Benchmarks/bench.conf
    } > "$work/apply-$plan.conf"
    $bin/geogate sets --config "$work/apply-$plan.conf" --format ipset > "$work/apply-$plan.ipset"
done
ms() { local t0 t1; t0=$(date +%s%N); "$@" > /dev/null; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000000 )); }
ip netns exec "$ns" $bin/geogate apply --config "$work/apply-A.conf" > /dev/null
: > "$work/same.txt"; : > "$work/changed.txt"; : > "$work/restore.txt"
live=A
for _ in $(seq "$APPLY_ROUNDS"); do
    next=$( [ "$live" = A ] && echo B || echo A )
    ms ip netns exec "$ns" $bin/geogate apply --config "$work/apply-$live.conf" >> "$work/same.txt"
    ms ip netns exec "$ns" $bin/geogate apply --config "$work/apply-$next.conf" >> "$work/changed.txt"
    # The same sets again through `ipset restore`: a full replace, as the changed apply did.
    ms ip netns exec "$ns" ipset restore -f "$work/apply-$next.ipset" >> "$work/restore.txt"
    live=$next
done
ip netns del "$ns"
median() { sort -n "$1" | sed -n "$(( (APPLY_ROUNDS + 1) / 2 ))p"; }
same=$(median "$work/same.txt"); changed=$(median "$work/changed.txt"); restore=$(median "$work/restore.txt")
echo "geogate apply, nothing changed: $same ms; changed: $changed ms; ipset restore of the same sets: $restore ms (medians of $APPLY_ROUNDS)"
check "ipset restore / geogate apply (changed)" "$(awk "BEGIN { printf \"%.2f\", $restore / $changed }")" ">=" "$APPLY_RATIO_MIN"
check "ipset restore / geogate apply (unchanged)" "$(awk "BEGIN { printf \"%.2f\", $restore / ($same > 0 ? $same : 1) }")" ">=" "$APPLY_RATIO_MIN"
fi

if wants entries; then
echo "== run-time entries: a block reaching the kernel, against \`ipset add\` (fail2ban's ipset action); daemon memory per 10,000 entries"
# In a namespace of its own: the daemon answers BLOCK only after the run-time set
# was swapped in, so a request's round trip is the time to the kernel. Measured
# with no other entry and with 10,000 (each change rebuilds its family's set).
ns="gg-bench-entries-$$"
ip netns add "$ns"
printf '%s\n' "database: $work/countries.trie" "runtime-dir: $work/run-entries" "state-dir: $work/state-entries" \
    "daemon:" "  socket: $work/entries.sock" "  watch-interval: 0" "entries:" "  max-per-profile: 20000" \
    "profiles:" "  full:" "    scope: full-server" "    allow-countries: [IT, CH, FR, DE]" > "$work/entries.conf"
mkdir -p "$work/state-entries"
ip netns exec "$ns" ipset create gg-bench-ref hash:net timeout 0
declare -A rss change reference
for size in 0 10000; do
    $bin/geogate-bench entries-file --profile full --count "$size" -o "$work/state-entries/entries"
    ip netns exec "$ns" $bin/geogate apply --config "$work/entries.conf" > /dev/null
    ip netns exec "$ns" $bin/geogate serve --config "$work/entries.conf" 2> "$work/entries-serve.log" &
    daemon=$!
    for _ in $(seq 100); do [ -S "$work/entries.sock" ] && break; sleep 0.1; done
    echo PING | socat - UNIX-CONNECT:"$work/entries.sock" > /dev/null
    rss[$size]=$(awk '/^VmRSS/ { print $2 }' /proc/$daemon/status)
    out=$(ip netns exec "$ns" $bin/geogate-bench entries --socket "$work/entries.sock" --profile full --set gg-bench-ref --count "$ENTRY_CHANGES")
    kill $daemon; wait $daemon 2>/dev/null || true
    rm -f "$work/entries.sock"
    echo "-- with $size entries:"
    echo "$out"
    change[$size]=$(echo "$out" | sed -nE 's/^geogate.*median ([0-9.]+) ms.*/\1/p')
    reference[$size]=$(echo "$out" | sed -nE 's/^ipset add.*median ([0-9.]+) ms.*/\1/p')
    check "run-time entry changes refused at $size entries" "$(echo "$out" | sed -nE 's/^failed: ([0-9]+)/\1/p')" "==" 0
done
ip netns del "$ns"
echo "daemon resident memory: ${rss[0]} kB with no entry, ${rss[10000]} kB with 10,000 ($(( rss[10000] - rss[0] )) kB per 10,000 entries)"
check "block to the kernel, ipset add time / geogate time, no other entry" "$(awk "BEGIN { printf \"%.2f\", ${reference[0]} / ${change[0]} }")" ">=" "$ENTRY_CHANGE_RATIO_MIN"
check "block to the kernel with 10,000 entries, ms (median)" "${change[10000]}" "<=" "$ENTRY_CHANGE_10K_MS_MAX"
check "daemon memory per 10,000 entries, kB" "$(( rss[10000] - rss[0] ))" "<=" "$ENTRY_MEMORY_10K_KB_MAX"
fi

if wants fleet; then
echo "== fleet: $FLEET_NODES nodes following one publisher (signed trie behind nginx), against $FLEET_NODES nodes each downloading and compiling the sources"
# nginx on loopback serves both: the publisher's directory (/geogate/) and the
# sources (/sources/, standing in for the providers). Each node has its own config,
# state and trie, and runs alone (real nodes are separate machines): its wall time
# and CPU are one node's; "converged" is the publisher's refresh and publish plus
# the slowest node. Day 1 is the embedded dataset; day 2 drops its last 2000 IPv4
# ranges (a change the guard lets through); the days alternate over the rounds.
fw=$work/fleet
mkdir -p "$fw/www/geogate" "$fw/www/sources" "$fw/nginx-tmp" "$fw/day1" "$fw/day2"
cp Data/geoip.gz Data/geoip6.gz "$fw/day1/"
gzip -dc Data/geoip.gz | head -n -2000 | gzip -9n > "$fw/day2/geoip.gz"
cp Data/geoip6.gz "$fw/day2/"
port=$(( 20000 + $$ % 20000 ))
cat > "$fw/nginx.conf" <<NGINX
user root;
daemon off;
master_process off;
error_log $fw/nginx-error.log;
pid $fw/nginx.pid;
events {}
http {
    log_format fleet '\$request_uri \$status \$bytes_sent';
    access_log $fw/access.log fleet;
    client_body_temp_path $fw/nginx-tmp; proxy_temp_path $fw/nginx-tmp;
    fastcgi_temp_path $fw/nginx-tmp; uwsgi_temp_path $fw/nginx-tmp; scgi_temp_path $fw/nginx-tmp;
    server { listen 127.0.0.1:$port; root $fw/www; }
}
NGINX
/usr/sbin/nginx -p "$fw" -c "$fw/nginx.conf" &
nginx_pid=$!
trap 'kill $nginx_pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do [ -s "$fw/nginx.pid" ] && break; sleep 0.1; done
$bin/geogate keygen --out "$fw/keys" > /dev/null
base="http://127.0.0.1:$port"
node_conf() {  # dir, sources YAML lines, extra refresh lines
    mkdir -p "$1"
    printf '%s\n' "database: $1/live.trie" "runtime-dir: $1/run" "state-dir: $1/state" \
        "daemon:" "  socket: $1/geogate.sock" "  watch-interval: 0" \
        "profiles:" "  web:" "    scope: web-only" "    allow-countries: [IT]" \
        "refresh:" "  state-dir: $1/state" "  apply-sets: false" "  reload-daemon: false" \
        "  max-family-change: 100" "  max-country-change: 100" "$3" "  sources:" "$2" > "$1/geogate.conf"
}
sources_yaml="    - url: $base/sources/geoip.gz"$'\n'"    - url: $base/sources/geoip6.gz"
node_conf "$fw/publisher" "$sources_yaml" "  publish: { dir: $fw/www/geogate, sign-key: $fw/keys/geogate.key }"
for i in $(seq "$FLEET_NODES"); do
    node_conf "$fw/fleet$i" "    - trie: $base/geogate/"$'\n'"      public-key: $fw/keys/geogate.pub" ""
    node_conf "$fw/ref$i" "$sources_yaml" ""
done
log_lines() { wc -l < "$fw/access.log"; }
bytes_since() {  # first line, URI prefix
    tail -n +"$1" "$fw/access.log" | awk -v p="$2" 'index($1, p) == 1 { b += $3 } END { print b + 0 }'
}
# One refresh of one node: "wall_ms cpu_ms peak_kb", its exit status checked.
refresh_node() {
    local expect=$2 out status
    out=$( { /usr/bin/time -f "%e %U %S %M" $bin/geogate refresh -q --config "$1/geogate.conf" 2>&1 >/dev/null; echo "exit $?"; } | tail -2)
    status=$(echo "$out" | sed -nE 's/^exit ([0-9]+)$/\1/p')
    if [[ ! " $expect " == *" $status "* ]]; then echo "refresh of $1 exited $status (expected $expect):" >&2; echo "$out" >&2; exit 1; fi
    echo "$out" | head -1 | awk '{ printf "%d %d %d\n", $1 * 1000, ($2 + $3) * 1000, $4 }'
}
# Every node once; the slowest wall time, the median CPU, the largest peak.
all_nodes() {  # prefix, expected exit statuses
    for i in $(seq "$FLEET_NODES"); do refresh_node "$fw/$1$i" "$2" || exit 1; done > "$fw/times"
    echo "$(sort -n "$fw/times" | tail -1 | cut -d' ' -f1) $(cut -d' ' -f2 "$fw/times" | sort -n | sed -n "$(( (FLEET_NODES + 1) / 2 ))p") $(cut -d' ' -f3 "$fw/times" | sort -n | tail -1)"
}
# Day 1 everywhere first (not measured).
cp "$fw/day1/"* "$fw/www/sources/"
refresh_node "$fw/publisher" "0 3" > /dev/null
for i in $(seq "$FLEET_NODES"); do refresh_node "$fw/fleet$i" "0 3" > /dev/null; refresh_node "$fw/ref$i" "0 3" > /dev/null; done
: > "$fw/rounds"
for round in $(seq "$FLEET_ROUNDS"); do
    day=$(( round % 2 + 1 ))
    cp "$fw/day$day/"* "$fw/www/sources/"
    # A day with a change: the fleet (publisher, then its nodes) and the reference, in alternating order.
    for side in $( (( round % 2 )) && echo "fleet ref" || echo "ref fleet"); do
        start=$(log_lines); start=$(( start + 1 ))
        if [ "$side" = fleet ]; then
            pub=$(refresh_node "$fw/publisher" 0)
            nodes=$(all_nodes fleet 0)
            echo "fleet changed $(( ${pub%% *} + ${nodes%% *} )) $(echo "$nodes" | cut -d' ' -f2,3) $(bytes_since "$start" /geogate/) $(bytes_since "$start" /sources/)" >> "$fw/rounds"
        else
            nodes=$(all_nodes ref 0)
            echo "ref changed ${nodes} $(bytes_since "$start" /geogate/) $(bytes_since "$start" /sources/)" >> "$fw/rounds"
        fi
    done
    # A day without: one conditional request per node (and per source).
    for side in fleet ref; do
        start=$(log_lines); start=$(( start + 1 ))
        [ "$side" = fleet ] && refresh_node "$fw/publisher" 3 > /dev/null
        nodes=$(all_nodes "$side" 3)
        echo "$side unchanged ${nodes} $(bytes_since "$start" /geogate/) $(bytes_since "$start" /sources/)" >> "$fw/rounds"
    done
done
# Columns: side day converged_ms cpu_ms(median node) peak_kb(largest node) bytes_from_publisher bytes_from_sources
med() { awk -v s="$1" -v d="$2" '$1 == s && $2 == d { print $'"$3"' }' "$fw/rounds" | sort -n | sed -n "$(( (FLEET_ROUNDS + 1) / 2 ))p"; }
trie_bytes=$(stat -c %s "$fw/publisher/live.trie")
echo "trie $trie_bytes bytes; sources $(cat "$fw/day1/"* | wc -c) bytes (gzip); $FLEET_ROUNDS rounds, medians"
for day in changed unchanged; do
    for side in fleet ref; do
        label=$([ "$side" = fleet ] && echo "fleet (publisher + $FLEET_NODES nodes)" || echo "reference ($FLEET_NODES nodes from the sources)")
        echo "-- day $day, $label: converged $(med $side $day 3) ms; per node CPU $(med $side $day 4) ms, peak $(( $(med $side $day 5) / 1024 )) MB; bytes to the nodes: from the publisher $(med $side $day 6), from the sources $(med $side $day 7)"
    done
done
fleet_changed=$(( $(med fleet changed 6) + $(med fleet changed 7) ))
ref_changed=$(med ref changed 7)
check "day with a change: bytes from the providers, $FLEET_NODES nodes on their own / the publisher" "$(awk "BEGIN { printf \"%.1f\", $ref_changed / $(med fleet changed 7) }")" ">=" "$FLEET_UPSTREAM_RATIO_MIN"
check "day with a change: all bytes moved, $FLEET_NODES nodes on their own / the fleet (publisher included)" "$(awk "BEGIN { printf \"%.2f\", $ref_changed / $fleet_changed }")" ">=" "$FLEET_BYTES_RATIO_MIN"
check "day without a change: fleet bytes, all $FLEET_NODES nodes" "$(med fleet unchanged 6)" "<=" "$FLEET_UNCHANGED_BYTES_MAX"
check "per node CPU, reference / fleet (day with a change)" "$(awk "BEGIN { printf \"%.1f\", $(med ref changed 4) / ($(med fleet changed 4) + 1) }")" ">=" "$FLEET_CPU_RATIO_MIN"
check "publish to all nodes converged, ms" "$(med fleet changed 3)" "<=" "$FLEET_CONVERGED_MS_MAX"
kill $nginx_pid; wait $nginx_pid 2>/dev/null || true
trap 'rm -rf "$work"' EXIT
fi

if wants daemon; then
echo "== daemon vs Redis and vs a bare SwiftNIO line server (same load generator, same run)"
# Both servers on sockets in $work; nothing else on this machine is touched.
sed -e "s#^database: .*#database: $work/live.trie#" -e "s#socket: /run/geogate/geogate.sock#socket: $work/geogate.sock#" \
    Data/geogate.conf > "$work/geogate.conf"
cp "$work/countries.trie" "$work/live.trie"
$bin/geogate serve --config "$work/geogate.conf" 2> "$work/serve.log" &
daemon=$!
redis-server --port 0 --unixsocket "$work/redis.sock" --save "" --appendonly no --daemonize yes \
    --pidfile "$work/redis.pid" --logfile "$work/redis.log"
# The framework's floor: SwiftNIO with the daemon's bootstrap answering a fixed line.
$bin/geogate-bench floor --socket "$work/floor.sock" &
floor=$!
trap 'kill $daemon $floor 2>/dev/null; [ -f "$work/redis.pid" ] && kill "$(cat "$work/redis.pid")" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do [ -S "$work/geogate.sock" ] && [ -S "$work/redis.sock" ] && [ -S "$work/floor.sock" ] && [ -f "$work/redis.pid" ] && break; sleep 0.1; done
redis=$(cat "$work/redis.pid")
# CHECK web <ip> over addresses inside allocated IPv4 and IPv6 ranges (3:1).
$bin/geogate-bench queries --db "$work/countries.trie" --family 4 --mode allocated --count 3072 -o "$work/l4"
$bin/geogate-bench queries --db "$work/countries.trie" --family 6 --mode allocated --count 1024 -o "$work/l6"
awk 'NR == FNR { v6[FNR] = $0; next } { print; if (FNR % 3 == 0) print v6[FNR / 3] }' "$work/l6" "$work/l4" > "$work/load-queries"
field() { sed -nE "s/.*$1: ([0-9.]+).*/\\1/p"; }
for point in "1 1" "50 1" "50 16"; do
    set -- $point
    echo "-- $1 connections x $2 pipelined (median of $DAEMON_ROUNDS alternating rounds)"
    : > "$work/g.txt"; : > "$work/r.txt"; : > "$work/f.txt"
    for _ in $(seq "$DAEMON_ROUNDS"); do
        $bin/geogate-bench load --socket "$work/geogate.sock" --target geogate -c "$1" -p "$2" --duration 2 --warmup 0.5 \
            --queries "$work/load-queries" --server-pid $daemon >> "$work/g.txt"
        $bin/geogate-bench load --socket "$work/redis.sock" --target redis -c "$1" -p "$2" --duration 2 --warmup 0.5 \
            --server-pid "$redis" >> "$work/r.txt"
        $bin/geogate-bench load --socket "$work/floor.sock" --target geogate -c "$1" -p "$2" --duration 2 --warmup 0.5 \
            --queries "$work/load-queries" --server-pid $floor >> "$work/f.txt"
    done
    failed=$(cat "$work/g.txt" "$work/r.txt" | field failed | awk '{s+=$1} END {print s+0}')
    g=$(field throughput < "$work/g.txt" | sort -n | sed -n "$(( (DAEMON_ROUNDS + 1) / 2 ))p")
    r=$(field throughput < "$work/r.txt" | sort -n | sed -n "$(( (DAEMON_ROUNDS + 1) / 2 ))p")
    gp99=$(field p99 < "$work/g.txt" | sort -n | sed -n "$(( (DAEMON_ROUNDS + 1) / 2 ))p")
    rp99=$(field p99 < "$work/r.txt" | sort -n | sed -n "$(( (DAEMON_ROUNDS + 1) / 2 ))p")
    gcpu=$(field "server CPU" < "$work/g.txt" | sort -n | sed -n "$(( (DAEMON_ROUNDS + 1) / 2 ))p")
    rcpu=$(field "server CPU" < "$work/r.txt" | sort -n | sed -n "$(( (DAEMON_ROUNDS + 1) / 2 ))p")
    echo "geogate: $g requests/s, p99 $gp99 ms, $gcpu us CPU per request"
    echo "redis:   $r requests/s, p99 $rp99 ms, $rcpu us CPU per request"
    f=$(field throughput < "$work/f.txt" | sort -n | sed -n "$(( (DAEMON_ROUNDS + 1) / 2 ))p")
    fcpu=$(field "server CPU" < "$work/f.txt" | sort -n | sed -n "$(( (DAEMON_ROUNDS + 1) / 2 ))p")
    echo "floor:   $f requests/s, $fcpu us CPU per request (bare SwiftNIO, fixed answer)"
    case "$point" in
        "50 16") check "throughput ratio vs the NIO floor at 50x16" "$(awk "BEGIN { printf \"%.2f\", $g / $f }")" ">=" "$DAEMON_FLOOR_RATIO_PIPELINED_MIN" ;;
        "50 1") check "throughput ratio vs the NIO floor at 50x1" "$(awk "BEGIN { printf \"%.2f\", $g / $f }")" ">=" "$DAEMON_FLOOR_RATIO_MIN" ;;
    esac
    check "failed requests at $1x$2" "$failed" "==" 0
    check "throughput ratio vs Redis at $1x$2" "$(awk "BEGIN { printf \"%.2f\", $g / $r }")" ">=" "$DAEMON_RATIO_MIN"
    [ "$point" = "50 1" ] && check "p99 ms at 50x1" "$gp99" "<=" "$DAEMON_P99_MS_MAX"
done

echo "-- the decision log: a second daemon with daemon.log-decisions: deny (its lines to a file), alternating with the first"
sed -e "s#socket: $work/geogate.sock#socket: $work/logging.sock#" -e "s#^daemon:#daemon:\n  log-decisions: deny#" \
    "$work/geogate.conf" > "$work/logging.conf"
$bin/geogate serve --config "$work/logging.conf" 2> "$work/decisions.log" &
logging=$!
for _ in $(seq 50); do [ -S "$work/logging.sock" ] && break; sleep 0.1; done
for point in "50 1" "50 16"; do
    set -- $point
    : > "$work/off.txt"; : > "$work/on.txt"
    for _ in $(seq "$DAEMON_ROUNDS"); do
        $bin/geogate-bench load --socket "$work/geogate.sock" --target geogate -c "$1" -p "$2" --duration 2 --warmup 0.5 \
            --queries "$work/load-queries" --server-pid $daemon >> "$work/off.txt"
        $bin/geogate-bench load --socket "$work/logging.sock" --target geogate -c "$1" -p "$2" --duration 2 --warmup 0.5 \
            --queries "$work/load-queries" --server-pid $logging >> "$work/on.txt"
    done
    off=$(field throughput < "$work/off.txt" | sort -n | sed -n "$(( (DAEMON_ROUNDS + 1) / 2 ))p")
    on=$(field throughput < "$work/on.txt" | sort -n | sed -n "$(( (DAEMON_ROUNDS + 1) / 2 ))p")
    echo "$1x$2: logging off $off requests/s, deny logged $on requests/s ($(awk "BEGIN { printf \"%.2f\", $on / $off }")x); $(grep -c ' DENY ' "$work/decisions.log") lines logged so far"
done
kill $logging; wait $logging 2>/dev/null || true

echo "-- 10 trie reloads under 50 connections of load"
$bin/geogate compile -q -o "$work/other.trie" --build-time 1
$bin/geogate-bench load --socket "$work/geogate.sock" --target geogate -c 50 -p 1 --duration 6 --warmup 0.5 \
    --queries "$work/load-queries" > "$work/reload-load.txt" &
loader=$!
sleep 1
reloaded=0
for i in $(seq 10); do
    # Replace the live file the way refresh does (a new file renamed over it), then RELOAD.
    if [ $((i % 2)) = 1 ]; then cp "$work/other.trie" "$work/next.trie"; else cp "$work/countries.trie" "$work/next.trie"; fi
    mv "$work/next.trie" "$work/live.trie"
    answer=$(printf 'RELOAD\n' | socat -t 5 - "UNIX-CONNECT:$work/geogate.sock")
    [[ "$answer" == "OK reloaded"* ]] && reloaded=$((reloaded + 1)) || echo "RELOAD answered: $answer"
    sleep 0.4
done
wait $loader
cat "$work/reload-load.txt" | grep -E "answered|first failure" || true
check "reloads answered OK" "$reloaded" "==" 10
check "failed requests during reloads" "$(field failed < "$work/reload-load.txt")" "==" 0

rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$daemon/status")
echo "daemon peak resident memory (VmHWM): $rss_kb kB"
check "daemon peak resident memory MB" "$(awk "BEGIN { printf \"%.1f\", $rss_kb / 1024 }")" "<=" "$DAEMON_RSS_MB_MAX"
fi
