#!/usr/bin/env bash
# The README's first command: install what is missing, build in release, compile
# the embedded dataset (Data/) into a trie file, and show lookups and `info`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash Scripts/install-deps.sh
echo "==> swift build -c release" >&2
swift build -c release --product geogate 2>&1 | tail -1 >&2
bin=.build/release/geogate
mkdir -p out

echo "==> geogate compile -o out/countries.trie   (the embedded IPFire Location data)" >&2
$bin compile -o out/countries.trie

echo "==> geogate lookup --db out/countries.trie 81.2.69.160 8.8.8.8 2a02:8070::1 ::ffff:1.1.1.1 192.168.1.10" >&2
$bin lookup --db out/countries.trie 81.2.69.160 8.8.8.8 2a02:8070::1 ::ffff:1.1.1.1 192.168.1.10

echo "==> geogate export --db out/countries.trie --country CH --family 4 (first 5)" >&2
$bin export --db out/countries.trie --country CH --family 4 | sed -n 1,5p

echo "==> geogate info --db out/countries.trie" >&2
$bin info --db out/countries.trie
